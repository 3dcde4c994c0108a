//! The `loadgen` command line: subcommands, flags with human-friendly values, help and examples.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use afterburner::units::{parse_count, parse_duration};

use crate::scenario::{Overrides, RttChoice};

const AFTER_HELP: &str = "\
Examples:
  loadgen run scenarios/quick.toml
  loadgen run scenarios/quick.toml --duration 30s --rate 2k
  loadgen run scenarios/bench-1k-keepalive.toml --clients 64
  loadgen run scenarios/specweb96.toml --out /tmp/runs --quiet
  loadgen run scenarios/modem10k.toml --modem-clients 2k --duration 30s
  loadgen run scenarios/mixed.toml --rtt application
  loadgen fileset --dirs 10 --out /tmp/specweb96
  loadgen report runs/quick/*/result.json --out compare.html";

/// `loadgen run --help`'s examples.
const RUN_EXAMPLES: &str = "\
Examples:
  loadgen run scenarios/quick.toml
  loadgen run scenarios/quick.toml --duration 30s --warmup 5s --rate 2k
  loadgen run scenarios/bench-1k-keepalive.toml --clients 64 --workers 2
  loadgen run scenarios/specweb96.toml --out /tmp/runs --quiet
  loadgen run scenarios/modem10k.toml --modem-clients 2k --rtt application

Exit status: 0 a valid measurement, 1 an error (the message names the file, key or flag),
3 a measurement that cannot be trusted (the summary and result.json say why).";

/// The whole command line: one subcommand.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, about = "Load generator of afterburner-bench: SPECweb96 and real-world client loads, measured honestly.", after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; `main.rs` dispatches on them.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario: writes `runs/<scenario>/<UTC time>/result.json` and `report.html`; exits 3
    /// when the measurement is invalid (server died, Ctrl-C, generator saturated).
    Run(RunArgs),
    /// Write the SPECweb96 file set (36 files per directory, four classes).
    Fileset(FilesetArgs),
    /// Render stored results as a self-contained HTML report (several: side by side).
    Report(ReportArgs),
    /// Run the built-in afterburner server (used by `run`; takes afterburner's own flags).
    #[command(hide = true)]
    ServeBuiltin {
        /// afterburner's own flags, passed on untouched.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `loadgen run`: the scenario, where results go, and the values that replace the scenario's.
#[derive(clap::Args, Debug)]
#[command(after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    /// The scenario file (TOML); see scenarios/README.md.
    pub scenario: PathBuf,
    /// Directory for results and generated file sets.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Measured duration per load point, e.g. 30s (replaces the scenario's).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before measuring, e.g. 2s.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Requests per second of every open-loop population, e.g. 2k or 10000.
    #[arg(long, value_parser = parse_count)]
    pub rate: Option<f64>,
    /// Clients of every closed-loop population, e.g. 50 or 1k.
    #[arg(long, value_parser = parse_whole_count)]
    pub clients: Option<u32>,
    /// Users of every slow-line (kind = "modem") population, e.g. 2k.
    #[arg(long, value_parser = parse_whole_count)]
    pub modem_clients: Option<u32>,
    /// How slow-line clients get their round-trip time: `netem` (the kernel delays their
    /// packets on a veth pair between the clients' and the server's namespaces; needs root,
    /// iproute2 and sch_netem), `tun-relay` (a user-space delay line on TUN devices between the
    /// namespaces; needs root), `application` (the client waits), or `auto` (netem, else the
    /// delay line, else the application).
    /// [default: the scenario's `rtt`, else auto]
    #[arg(long, value_name = "MODE", value_parser = rtt_parser())]
    pub rtt: Option<RttChoice>,
    /// Seed of every random draw [default: the scenario's `seed`, else 1996].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Generator worker threads [default: the scenario's `workers`, else 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub workers: Option<u64>,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stay in the host's network namespace even as root (kernel counters then include
    /// every other socket on the machine; only this run's ports are counted).
    #[arg(long)]
    pub no_netns: bool,
    /// Time between samples of the kernel's and the server's figures.
    #[arg(long, value_parser = parse_duration, default_value = "250ms")]
    pub sample_interval: Duration,
}

impl RunArgs {
    /// The flags that replace scenario values; those not given are `None` and keep the scenario's.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            duration: self.duration,
            warmup: self.warmup,
            rate: self.rate,
            clients: self.clients,
            modem_clients: self.modem_clients,
            rtt: self.rtt,
            seed: self.seed,
            workers: self.workers.map(|w| w as usize),
        }
    }
}

/// `loadgen report`: stored results and where the page goes.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// One or more result.json files; the first is the baseline of the ratios.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Where to write the page [default: report.html beside the first result for one result,
    /// comparison.html in the current directory for several].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `loadgen fileset`: how many SPECweb96 directories, where, and their seed.
#[derive(clap::Args, Debug)]
pub struct FilesetArgs {
    /// Number of directories (5,119,484 bytes each).
    #[arg(long)]
    pub dirs: u32,
    /// Where to write it.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the file contents.
    #[arg(long, default_value_t = 1996)]
    pub seed: u64,
}

/// `--rtt`'s values, listed in `--help` and checked by clap.
fn rtt_parser() -> impl clap::builder::TypedValueParser<Value = RttChoice> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(RttChoice::NAMES.map(|(name, _)| name))
        .map(|name| name.parse::<RttChoice>().expect("one of RttChoice::NAMES"))
}

/// A count for `--clients` and `--modem-clients`: `64`, `2k`; whole numbers only.
fn parse_whole_count(text: &str) -> Result<u32, String> {
    let value = parse_count(text).map_err(|e| e.to_string())?;
    if value.fract() != 0.0 || value > f64::from(u32::MAX) {
        return Err(format!("`{text}` is not a whole number of clients"));
    }
    Ok(value as u32)
}
