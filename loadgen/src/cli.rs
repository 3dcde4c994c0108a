//! The `loadgen` command line: subcommands, flags with human-friendly values, help and examples.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};

use afterburner::units::{parse_count, parse_duration};

use crate::engine::share::ShardSpec;
use crate::scenario::{Overrides, RttChoice};

/// The exit statuses of every command, ending every `--help` (the README's "Exit statuses and
/// faults" gives them too, with what is kept on each fault); a macro so that `concat!` can
/// join it to each command's own text.
macro_rules! exit_statuses {
    () => {
        "\
Exit statuses (the same for every command):
  0    success: a valid measurement, no regression, the file written
  1    `check` only: a regression
  2    refused before measuring anything: a malformed command line, scenario or claims file,
       an unknown server, a server command that does not exist or does not start, an output
       folder that cannot be written, a result.json that cannot be read (corrupt, truncated,
       newer schema); the message names the flag, file, key, command or folder
  3    measured, but invalid or incomplete: the server died or never answered, the generator
       was the limit, too many errors; results are written and marked, the summary says why
  4    measured, but a result file could not be written (a full disk): the message names the
       file and the reason, and where what was measured was kept instead
  130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM: the load and the server under test
       are stopped, what was measured is written and marked interrupted, and the loadgen
       ends by the same signal (so a shell loop running it stops too)"
    };
}

/// `loadgen --help`'s examples and exit statuses.
const AFTER_HELP: &str = concat!(
    "\
Examples:
  loadgen run scenarios/quick.toml
  loadgen run scenarios/quick.toml --duration 30s --rate 2k
  loadgen run scenarios/bench-1k-keepalive.toml --clients 64
  loadgen run scenarios/specweb96.toml --out /tmp/runs --quiet
  loadgen run scenarios/modem10k.toml --modem-clients 2k --duration 30s
  loadgen run scenarios/mixed.toml --rtt application
  loadgen compare scenarios/designs.toml --servers loop,poll,threads,nginx,apache-prefork
  loadgen compare scenarios/bench-1k-keepalive.toml --servers loop,uring --repeat 5 --duration 5s
  loadgen claims --quick
  loadgen check scenarios/check.toml --baseline ./main/afterburner --candidate target/release/afterburner
  loadgen fileset --dirs 10 --out /tmp/specweb96
  loadgen report runs/quick/*/result.json --out compare.html
  loadgen plan scenarios/modem50k.toml --shard 1/4
  loadgen serve scenarios/quick.toml --listen 198.19.16.11:8080 --start-at 1796029200
  loadgen run scenarios/quick.toml --shard 0/2 --start-at 1796029200 --target http://198.19.16.11:8080/
  loadgen merge runs/quick/2026-11-30T09-00-00Z

",
    exit_statuses!()
);

/// How `loadgen` ends: the list at the end of every `--help`, the README's "Exit statuses and
/// faults". Interrupted commands end by the signal instead (128 + its number in a shell's `$?`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: a valid measurement (`run`), every server with a valid round (`compare`, `claims`),
    /// no regression (`check`), the file written (`report`, `fileset`).
    Success = 0,
    /// 1: `check` found a regression.
    Regression = 1,
    /// 2: nothing was measured: a usage, configuration or set-up error (bad flag, malformed
    /// scenario, server command not found or not starting, `--out` not writable, a
    /// `result.json` that cannot be read).
    Refused = 2,
    /// 3: measured, but the measurement is invalid or incomplete (server died or never
    /// answered, generator saturated, too many errors); results written and marked.
    Invalid = 3,
    /// 4: measured, but a result file could not be written (a full disk); the message names
    /// the file and where the result was kept instead.
    NotWritten = 4,
}

/// `loadgen run --help`'s examples and exit statuses.
const RUN_EXAMPLES: &str = concat!(
    "\
Examples:
  loadgen run scenarios/quick.toml
  loadgen run scenarios/quick.toml --duration 30s --warmup 5s --rate 2k
  loadgen run scenarios/bench-1k-keepalive.toml --clients 64 --workers 2
  loadgen run scenarios/specweb96.toml --out /tmp/runs --quiet
  loadgen run scenarios/modem10k.toml --modem-clients 2k --rtt application
  loadgen run scenarios/quick.toml --shard 0/2 --start-at 1796029200 --target http://198.19.16.11:8080/
  JOB_COMPLETION_INDEX=1 loadgen run scenarios/quick.toml --shards 2 --start-at 1796029200 \\
      --target http://198.19.16.11:8080/

For `run`: 0 a valid measurement; 3 a measurement that cannot be trusted (the summary, the
first line on stderr and result.json say why; a run cut short is marked partial).

",
    exit_statuses!()
);

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
    /// when the measurement is invalid (server died, generator saturated).
    Run(RunArgs),
    /// Run a scenario against several servers in interleaved rounds: writes
    /// `runs/<scenario>-compare/<UTC time>/comparison.{json,html}` with every run beside them;
    /// exits 3 when some server has no valid round.
    Compare(CompareArgs),
    /// Re-measure the 1999 claims (a claims file, scenarios/claims-1999.toml by default): writes
    /// `runs/<name>/<UTC time>/claims.{json,html}`, a table of claim, figure then, figure now and
    /// verdict; exits 3 when some measurement could not run or some server has no valid round.
    Claims(ClaimsArgs),
    /// Gate CI on regressions: run a scenario against a baseline and a candidate server in
    /// interleaved rounds until each metric's verdict (improved, regressed, unchanged,
    /// inconclusive) is certain, and compare instruction counts of two builds; writes
    /// `runs/<scenario>-check/<UTC time>/` (check.json, check.md, junit.xml, comparison.html);
    /// exits 0 pass, 1 regression, 2 usage or configuration error, 3 invalid measurement, 4 a
    /// file not written.
    Check(CheckArgs),
    /// Write the SPECweb96 file set (36 files per directory, four classes).
    Fileset(FilesetArgs),
    /// Render stored results as a self-contained HTML report (several: side by side).
    Report(ReportArgs),
    /// Print one generator shard's share of a scenario (`--shard I/N`): per load point and
    /// population, its clients (global numbers), its slots of the open-loop schedule and its
    /// share of `max_in_flight`, beside the whole run's; runs nothing.
    Plan(PlanArgs),
    /// The server side of a sharded run: start the scenario's server on a fixed address, take
    /// the server-side probes (its CPU and memory, the server host's TIME_WAIT and sockets)
    /// through every load point's slot from `--start-at`, write its part of the result, stop.
    Serve(ServeArgs),
    /// Merge the parts of a sharded run (the generator shards' and the server's result.json)
    /// into one result.json and report: histograms added, counters summed, timelines aligned
    /// by wall clock, each part's own figures in a `shards` section.
    Merge(MergeArgs),
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
    /// Where results go and what replaces the scenario's values.
    #[command(flatten)]
    pub flags: RunFlags,
    /// One part of a run sharded over several generators.
    #[command(flatten)]
    pub shard: ShardFlags,
}

/// The flags of one generator shard of a sharded run (`loadgen run`). All shards of a run get
/// the same scenario, overrides, `--start-at` and `--target`, and differ only in I.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Sharded runs (several generators; see deploy/README.md)")]
pub struct ShardFlags {
    /// Run shard I of N (I counts from 0): this generator's share of the load, worked out from
    /// the scenario, the seed and (I, N) alone (k6's execution segments). Needs --start-at and
    /// --target.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<ShardSpec>,
    /// Run one of N shards, I read from the environment: JOB_COMPLETION_INDEX (a Kubernetes
    /// Indexed Job), else SLURM_PROCID (a Slurm task), else LOADGEN_SHARD_INDEX.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: Option<u32>,
    /// When the first load point's warm-up begins, the same for every part of the run: Unix
    /// seconds (e.g. $(( $(date +%s) + 20 ))) or RFC 3339 (2026-11-30T09:00:00Z). Load point k
    /// begins k slots later (a slot: warm-up + duration + 5 s). A time already past is refused;
    /// a shard that cannot start a point on time is marked invalid, never shifted.
    #[arg(long, env = "LOADGEN_START_AT", value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<SystemTime>,
    /// The server under test, already running (started by `loadgen serve`): http://IP:PORT/.
    /// The scenario's `[server]` is not started.
    #[arg(long, env = "LOADGEN_TARGET", value_name = "URL")]
    pub target: Option<String>,
    /// Write exactly into this directory (by default a shard writes into
    /// `OUT/<scenario>/<start-at, UTC>/shard-I-of-N`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

/// `loadgen plan`: the scenario, the shard, and the overrides `run` would take.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// The shard whose share is printed, I/N (0/1: the whole run).
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    pub shard: ShardSpec,
    /// What replaces the scenario's values, as for `run`.
    #[command(flatten)]
    pub flags: RunFlags,
}

/// `loadgen serve --help`'s examples.
const SERVE_EXAMPLES: &str = concat!(
    "\
Examples:
  loadgen serve scenarios/quick.toml --listen 198.19.16.11:8080 --start-at 1796029200
  START=$(( $(date +%s) + 20 ))
  loadgen serve scenarios/quick.toml --listen 127.0.0.1:8080 --start-at $START &
  loadgen run scenarios/quick.toml --shard 0/2 --start-at $START --target http://127.0.0.1:8080/ &
  loadgen run scenarios/quick.toml --shard 1/2 --start-at $START --target http://127.0.0.1:8080/
  wait; loadgen merge runs/quick/$(date -u -d @$START +%Y-%m-%dT%H-%M-%SZ)

The server starts at once (generators check it answers before their slot), is measured through
each load point's slot and stops after the last; its part goes to
OUT/<scenario>/<start-at, UTC>/server/.

For `serve`: 0 the part written; 2 refused (a bad address, a start time already past, a server
that does not start); 3 the server died.

",
    exit_statuses!()
);

/// `loadgen serve`: the server side of a sharded run.
#[derive(clap::Args, Debug)]
#[command(after_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    /// The scenario file (TOML); its `[server]` is started.
    pub scenario: PathBuf,
    /// Where the server listens: IP:PORT (the generators' --target is http://IP:PORT/).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddr,
    /// When the first load point's warm-up begins, as for `run --start-at`.
    #[arg(long, env = "LOADGEN_START_AT", value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: SystemTime,
    /// Write exactly into this directory (by default `OUT/<scenario>/<start-at, UTC>/server`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Where results go and what replaces the scenario's values, as for `run`.
    #[command(flatten)]
    pub flags: RunFlags,
}

/// `loadgen merge --help`'s examples.
const MERGE_EXAMPLES: &str = concat!(
    "\
Examples:
  loadgen merge runs/quick/2026-11-30T09-00-00Z
  loadgen merge /results/shard-0 /results/shard-1 /results/server --out /results/merged

A DIR holding result.json is one part; a DIR holding part directories (shard-I-of-N/,
server/) gives them all. The parts must be one run: the same scenario, seed, N and start
time, every shard exactly once, at most one server part, clocks that agree (one boot_id, or
synchronised clocks). Missing, duplicate or mismatched parts are refused, naming them.

For `merge`: 0 a valid merged run; 3 merged, but invalid (a shard invalid, late or
generator-bound: the shards section says which); 2 the parts refused; 4 not written.

",
    exit_statuses!()
);

/// `loadgen merge`: the parts and where the merged run goes.
#[derive(clap::Args, Debug)]
#[command(after_help = MERGE_EXAMPLES)]
pub struct MergeArgs {
    /// Part directories (each holding a result.json), or a directory holding them.
    #[arg(required = true, value_name = "DIR")]
    pub parts: Vec<PathBuf>,
    /// Where the merged result.json and report.html go [default: the directory that holds
    /// the parts, when they share one].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `--start-at`: Unix seconds (a whole or decimal number) or an RFC 3339 time.
/// More than [`START_AT_HORIZON`] ahead is refused: such a time is a slip (milliseconds given
/// for seconds), not a plan.
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let at = if let Ok(seconds) = text.parse::<f64>() {
        if !(seconds.is_finite() && (0.0..1e11).contains(&seconds)) {
            return Err(format!(
                "`{text}` is not a time: give Unix seconds, e.g. $(( $(date +%s) + 20 ))"
            ));
        }
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds)
    } else {
        humantime::parse_rfc3339_weak(text).map_err(|error| {
            format!(
                "`{text}` is not a time ({error}): give Unix seconds, e.g. $(( $(date +%s) + \
                 20 )), or RFC 3339, e.g. 2026-11-30T09:00:00Z"
            )
        })?
    };
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) if ahead > START_AT_HORIZON => Err(format!(
            "`{text}` is {} days ahead: give Unix seconds (not milliseconds), a few seconds \
             ahead, e.g. $(( $(date +%s) + 20 ))",
            ahead.as_secs() / 86_400
        )),
        _ => Ok(at),
    }
}

/// How far ahead `--start-at` may be: a week.
pub const START_AT_HORIZON: Duration = Duration::from_secs(7 * 86_400);

/// `loadgen compare --help`'s examples and exit statuses.
const COMPARE_EXAMPLES: &str = concat!(
    "\
Server names: the built-in server's designs (loop, poll, select, threads, prefork, fork,
reactors, uring; see afterburner --help) and real servers started from configurations generated
for the scenario (nginx, lighttpd, apache-prefork, apache-event, mini-httpd, h2o, caddy; a
missing one is reported with the Debian package to install, and the others still run).

Examples:
  loadgen compare scenarios/designs.toml --servers loop,poll,threads,nginx,apache-prefork
  loadgen compare scenarios/designs-modem.toml --servers loop,threads,prefork --repeat 3
  loadgen compare scenarios/bench-1k-keepalive.toml --servers loop,uring --repeat 5 --duration 5s

Each round runs every server once, in the order given, each with a fresh server (and a fresh
network namespace as root). The first server is the baseline: per metric the report gives each
server's median over its valid rounds, their range, and the ratio to the baseline (geometric
mean of same-round ratios) with a 95% confidence interval.

For `compare`: 0 every server has a valid round; 3 some server has none (it failed to start,
died, or measured invalid: its row says why); 2 also for an unknown or repeated name in
--servers.

",
    exit_statuses!()
);

/// `loadgen compare`: the scenario, the servers, the rounds, and the flags `run` takes.
#[derive(clap::Args, Debug)]
#[command(after_help = COMPARE_EXAMPLES)]
pub struct CompareArgs {
    /// The scenario file (TOML); its `[server]` is replaced by each server in turn.
    pub scenario: PathBuf,
    /// The servers, comma-separated; the first is the baseline of the ratios.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "NAME,NAME,..."
    )]
    pub servers: Vec<String>,
    /// Rounds; each runs every server once. More rounds narrow the confidence intervals.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Where results go and what replaces the scenario's values, as for `run`.
    #[command(flatten)]
    pub flags: RunFlags,
}

/// The flags `run` and `compare` share: where results go, what replaces the scenario's values,
/// and how the run is watched.
#[derive(clap::Args, Debug)]
pub struct RunFlags {
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
    /// How the runs are watched.
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// How runs are watched, for every command that runs load (`run`, `compare`, `claims`).
#[derive(clap::Args, Debug)]
pub struct WatchFlags {
    /// No progress output (`run`'s live line; `compare`'s and `claims`' line per run).
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

impl RunFlags {
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

/// `loadgen claims --help`'s examples and exit statuses.
const CLAIMS_EXAMPLES: &str = concat!(
    "\
Each claim of 1999 becomes a row: the figure then (with its source), the figure measured now, and
a verdict (holds, holds in ratio, does not hold, cannot be measured here) with the rule it follows
from. The figures of 1999, the measurements (scenarios, servers, rounds) and the --quick sizes
are in the claims file; real servers that are not installed make their rows 'cannot be
measured', naming the Debian package.

Examples:
  loadgen claims                       # the full run, about 25 minutes on 2 cores
  loadgen claims --quick               # every row at a reduced size, about 2 minutes
  loadgen claims --quick --out /tmp/runs --quiet

--quick runs one round per server: ratio verdicts then rest on one pair of runs, with no
interval; the full run's three rounds give each ratio a 95% interval.

For `claims`: 0 every measurement ran and every server has a valid round; 3 some measurement
could not run (an error it names) or some server has no valid round (its rows say why); 2 also
for a malformed claims file or one of its scenarios.

",
    exit_statuses!()
);

/// `loadgen claims`: the claims file, its size, and where results go.
#[derive(clap::Args, Debug)]
#[command(after_help = CLAIMS_EXAMPLES)]
pub struct ClaimsArgs {
    /// The claims file (TOML): measurements and the figures of 1999.
    #[arg(default_value = "scenarios/claims-1999.toml")]
    pub claims_file: PathBuf,
    /// Every measurement at its reduced size (fewer servers, shorter runs, fewer connections).
    #[arg(long)]
    pub quick: bool,
    /// Directory for results and generated file sets.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// How the runs are watched.
    #[command(flatten)]
    pub watch: WatchFlags,
}

/// `loadgen check --help`'s examples and exit statuses.
const CHECK_EXAMPLES: &str = concat!(
    "\
A side (--baseline, --candidate) is one of:
  a design of the built-in server    loop, poll, threads, ... (see afterburner --help)
  a real server                      nginx, lighttpd, apache-prefork, ... (as for compare)
  another afterburner build          a path holding a '/', e.g. ../main/target/release/afterburner
  a command                          anything holding {port}: 'my-server --port {port}'
  a saved baseline (--baseline only) a NAME saved earlier with --save-baseline NAME

Examples:
  loadgen check scenarios/check.toml --baseline ../main/target/release/afterburner \\
                --candidate target/release/afterburner
  loadgen check scenarios/check.toml --baseline loop --candidate poll --threshold server_cpu_us_per_op=3%
  loadgen check scenarios/check.toml --candidate target/release/afterburner --save-baseline main
  loadgen check scenarios/check.toml --baseline main --candidate target/release/afterburner
  loadgen check --instructions target/instructions-main target/instructions-branch
  scripts/instructions.sh target/instructions-branch    # writes a build's instruction counts

How it decides: rounds run both sides, A B then B A, after --warmup-rounds thrown away. At
--min-rounds and every [check] look_every (5) rounds after, each metric gets the Hodges-Lehmann change of the paired
per-round ratios with an exact Wilcoxon signed-rank interval (rank statistics: one disturbed
round moves them by one rank). Regressed: worse by more than the threshold with the whole
interval on the worse side; unchanged: the whole interval within the threshold; else
inconclusive. The check stops at the first look where every verdict is certain; each look
uses the Bonferroni share of 1 - confidence, so looking early does not raise false alarms. Instruction
counts (callgrind, deterministic) regress past --instructions-threshold.

The scenario's [check] table sets the metrics, thresholds and rounds (scenarios/README.md);
these flags replace its values.

For `check`: 0 pass (nothing regressed; inconclusive is not a failure); 1 a regression; 2 a
usage or configuration error (the message names the flag, file or key); 3 the measurement is
invalid (a run failed, a server died, the generator was the limit: check.md says which); an
interrupted check ends by the signal, with check.md saying where it stopped.

",
    exit_statuses!()
);

/// `loadgen check`: the scenario, the two sides, the rounds and thresholds, instruction
/// counts, saved baselines, and the flags `run` takes.
#[derive(clap::Args, Debug)]
#[command(after_help = CHECK_EXAMPLES)]
pub struct CheckArgs {
    /// The scenario file (TOML); its `[server]` is replaced by each side in turn. Leave it out
    /// to compare instruction counts only.
    pub scenario: Option<PathBuf>,
    /// What the candidate is compared against: a server, a path to an afterburner build, a
    /// command with {port}, or a baseline saved with --save-baseline.
    #[arg(long, value_name = "SERVER|PATH|COMMAND|SAVED")]
    pub baseline: Option<String>,
    /// What is checked: a server, a path to an afterburner build, or a command with {port}.
    #[arg(long, value_name = "SERVER|PATH|COMMAND")]
    pub candidate: Option<String>,
    /// Most measured rounds [default: the scenario's `[check]` rounds, else 20].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,
    /// Rounds before the check may stop early [default: `[check]` min_rounds, else 10].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub min_rounds: Option<u32>,
    /// Rounds run first and thrown away [default: `[check]` warmup_rounds, else 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub warmup_rounds: Option<u32>,
    /// A metric and the smallest relative change of it that matters, e.g.
    /// server_cpu_us_per_op=5%; repeat for several. Given, these replace the scenario's
    /// `[check]` thresholds [default: server_cpu_us_per_op=5% and ops_per_s=5%].
    #[arg(long, value_name = "METRIC=PCT", value_parser = parse_threshold)]
    pub threshold: Vec<(String, f64)>,
    /// Compare instruction counts of two builds: the directories scripts/instructions.sh
    /// wrote for the baseline and for the candidate.
    #[arg(long, num_args = 2, value_names = ["BASELINE_DIR", "CANDIDATE_DIR"])]
    pub instructions: Option<Vec<PathBuf>>,
    /// The relative change of an instruction count that fails the check
    /// [default: `[check]` instructions_threshold, else 1%].
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub instructions_threshold: Option<f64>,
    /// Save the candidate's rounds as the baseline NAME (OUT/baselines/NAME/), for a later
    /// --baseline NAME; alone (without --baseline) it only measures and saves.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Where results go and what replaces the scenario's values, as for `run`.
    #[command(flatten)]
    pub flags: RunFlags,
}

/// `--threshold`'s `METRIC=PCT`.
fn parse_threshold(text: &str) -> Result<(String, f64), String> {
    let (metric, percent) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write METRIC=PCT, e.g. server_cpu_us_per_op=5%"))?;
    crate::scenario::check::check_metric(metric.trim())?;
    Ok((
        metric.trim().to_string(),
        crate::scenario::check::parse_percent(percent)?,
    ))
}

/// A relative change: `1%`, `0.5%` or `0.01`.
fn parse_percent(text: &str) -> Result<f64, String> {
    crate::scenario::check::parse_percent(text)
}

/// `loadgen report --help`'s exit statuses.
const REPORT_HELP: &str = concat!(
    "\
For `report`: 0 the page written; 2 a result.json that cannot be read (missing, not JSON,
truncated, of a newer or older schema version: the message names the file and what to do);
4 the page could not be written.

",
    exit_statuses!()
);

/// `loadgen fileset --help`'s exit statuses.
const FILESET_HELP: &str = concat!(
    "\
For `fileset`: 0 the file set written; 2 --out cannot be written or --dirs is out of range;
4 a file could not be written (a full disk: the message names it; rerunning writes only what
is missing or damaged).

",
    exit_statuses!()
);

/// `loadgen report`: stored results and where the page goes.
#[derive(clap::Args, Debug)]
#[command(after_help = REPORT_HELP)]
pub struct ReportArgs {
    /// One or more result.json files; the first is the baseline of the ratios.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Where to write the page [default: report.html beside the first result for one result,
    /// comparison.html in the current directory for several]; an existing folder gets that name
    /// inside it. A folder that cannot be written is refused before rendering (exit 2).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `loadgen fileset`: how many SPECweb96 directories, where, and their seed.
#[derive(clap::Args, Debug)]
#[command(after_help = FILESET_HELP)]
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
