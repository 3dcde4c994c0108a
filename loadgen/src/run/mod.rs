//! One `loadgen run`: prepare the site, start the server, run each load point, stop the server,
//! and write `result.json` (after every load point, so a later failure loses nothing).

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use reports::model::{
    GeneratorInfo, LoadPoint, PopulationResult, RunResult, ServerInfo, SCHEMA_VERSION,
};

use crate::engine::modem::RttMode;
use crate::engine::source::{sources_for, DEFAULT_LOOPBACK_SOURCES};
use crate::engine::workload::{UrlEntry, Workload};
use crate::engine::{run_load_point, PointPlan, Progress};
use crate::probe::accounting::{kernel_accounting, PointWindow};
use crate::probe::sampler::{Sampler, SamplerConfig};
use crate::record::{totals_from, ErrorKind};
use crate::scenario::{Population, Scenario, SiteSpec, Variant};
use crate::specweb96::fileset::{write_fileset, ContentPattern};
use crate::specweb96::RequestMix;
use crate::target::{ServerHandle, TargetOptions};
use reports::render::text::print_summary;

/// Command-line values that replace the scenario's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    /// Replaces the rate of every open population.
    pub rate: Option<f64>,
    /// Replaces the client count of every closed population.
    pub clients: Option<u32>,
    /// Replaces the user count of every slow-line (modem) population.
    pub modem_clients: Option<u32>,
    /// Where slow-line round-trip times come from; None: the scenario's `rtt`, else `auto`.
    pub rtt: Option<RttChoice>,
    pub seed: Option<u64>,
    pub workers: Option<usize>,
}

pub use crate::scenario::RttChoice;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub scenario: PathBuf,
    /// Results go to `OUT/<scenario>/<UTC time>/`; file sets to `OUT/filesets/`.
    pub out: PathBuf,
    pub overrides: Overrides,
    pub quiet: bool,
    /// The executable with the `serve-builtin` subcommand (the loadgen itself).
    pub builtin_exe: PathBuf,
    /// Run in a private network namespace when root (false: `--no-netns`).
    pub private_netns: bool,
    /// Time between kernel and server samples.
    pub sample_interval: Duration,
}

pub struct RunOutput {
    pub result_path: PathBuf,
    pub result: RunResult,
}

impl Scenario {
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(d) = overrides.duration {
            self.duration = d;
        }
        if let Some(w) = overrides.warmup {
            self.warmup = w;
        }
        if let Some(s) = overrides.seed {
            self.seed = s;
        }
        if let Some(w) = overrides.workers {
            self.workers = w;
        }
        for population in &mut self.clients {
            match population {
                Population::Open { rate, .. } => {
                    if let Some(r) = overrides.rate {
                        *rate = r;
                    }
                }
                Population::Closed { clients, .. } => {
                    if let Some(c) = overrides.clients {
                        *clients = c;
                    }
                }
                Population::Modem(spec) => {
                    if let Some(c) = overrides.modem_clients {
                        spec.clients = c;
                    }
                }
            }
        }
    }
}

pub fn run(options: &RunOptions) -> Result<RunOutput> {
    let mut scenario = Scenario::load(&options.scenario)?;
    scenario.apply(&options.overrides);
    scenario.validate().map_err(|e| {
        anyhow::anyhow!(
            "scenario {} after command-line overrides: {e}",
            options.scenario.display()
        )
    })?;
    let scenario_toml = toml::to_string(&scenario).unwrap_or_default();

    let scenario_dir = options.scenario.parent().unwrap_or(Path::new("."));
    let (site_root, workload) = prepare_site(&scenario, scenario_dir, &options.out)?;
    let started = SystemTime::now();
    let run_dir = options
        .out
        .join(&scenario.name)
        .join(utc_stamp(started).replace(':', "-"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;

    let crate::os::CpuPlan {
        server: server_cpu,
        generator: generator_cpus,
    } = crate::os::cpu_plan();
    let interrupted = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted));
    let mut result = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "loadgen".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario_name: scenario.name.clone(),
        scenario_toml,
        seed: scenario.seed,
        started_utc: utc_stamp(started),
        valid: true,
        generator: GeneratorInfo {
            workers: scenario.workers,
            cpus: generator_cpus.clone(),
            source_addresses: Vec::new(),
        },
        environment: Some(crate::probe::environment::read_environment()),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        ..RunResult::default()
    };
    let result_path = run_dir.join("result.json");
    let context = RunContext {
        scenario: &scenario,
        options,
        workload: &workload,
        site_root: &site_root,
        server_cpu,
        generator_cpus: &generator_cpus,
        interrupted: &interrupted,
        result_path: &result_path,
    };
    let variants = scenario.variants_or_default();
    for variant in &variants {
        let workdir = match &variant.label {
            Some(label) => run_dir.join(label),
            None => run_dir.clone(),
        };
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("creating {}", workdir.display()))?;
        let stopped = run_variant(&context, variant, &workdir, &mut result)?;
        if stopped {
            break;
        }
    }
    for point in &result.load_points {
        if point.totals.errors_total > 0 {
            result.warnings.push(format!(
                "{}: {} request errors ({})",
                point.label,
                point.totals.errors_total,
                point
                    .totals
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    result.write_atomically(&result_path)?;
    let report_path = run_dir.join("report.html");
    if let Err(e) = reports::render::write_report(&report_path, std::slice::from_ref(&result)) {
        result
            .warnings
            .push(format!("the HTML report could not be written: {e}"));
        result.write_atomically(&result_path)?;
    }
    Ok(RunOutput {
        result_path,
        result,
    })
}

/// What every variant of a run shares.
struct RunContext<'a> {
    scenario: &'a Scenario,
    options: &'a RunOptions,
    workload: &'a Workload,
    site_root: &'a Path,
    server_cpu: Option<usize>,
    generator_cpus: &'a [usize],
    interrupted: &'a AtomicBool,
    result_path: &'a Path,
}

/// How a variant's slow lines got their round trip, and why not from the kernel if not.
#[derive(Clone, Debug)]
struct RttOutcome {
    mode: RttMode,
    reason: Option<String>,
}

/// One server configuration: isolate, start the server, run every load point, stop it.
/// Returns true when the run must stop (Ctrl-C, the server died).
fn run_variant(
    context: &RunContext<'_>,
    variant: &Variant,
    workdir: &Path,
    result: &mut RunResult,
) -> Result<bool> {
    let scenario = context.scenario;
    let options = context.options;
    let populations: Vec<Population> = scenario
        .clients
        .iter()
        .filter(|p| variant.clients.is_empty() || variant.clients.iter().any(|n| n == p.name()))
        .cloned()
        .collect();
    // Before the server and the workers start, so they are all inside it. Each variant gets a
    // fresh namespace: the TIME_WAITs of the one before cannot leak into its counts.
    let (isolation, mut split, rtt) =
        isolate(options, scenario, &populations, context.generator_cpus)?;
    let server_spec = scenario.server.with_extra_args(&variant.args);
    let target_options = TargetOptions {
        builtin_exe: &options.builtin_exe,
        site_root: context.site_root,
        workdir,
        server_cpu: context.server_cpu,
        ready_timeout: Duration::from_secs(15),
        listen_ip: match &split {
            Some(net) => net.server_address.into(),
            None => std::net::Ipv4Addr::LOCALHOST.into(),
        },
    };
    let mut server = match &split {
        // The server's process is born in the server's namespace; the clients stay here.
        Some(net) => net
            .in_server_namespace(|| ServerHandle::start(&server_spec, &target_options))
            .context("entering the server's network namespace")??,
        None => ServerHandle::start(&server_spec, &target_options)?,
    };
    let target = server.addr();
    let server_pid = server.pid();
    // The main thread and the sampler it starts stay off the server's CPU too.
    crate::os::pin_current_thread(context.generator_cpus)?;
    let (sources, population_sources) = match &split {
        Some(net) => (
            net.fast_sources.clone(),
            populations
                .iter()
                .map(|p| match p {
                    Population::Modem(_) => net.delayed_sources.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        ),
        None => (sources_for(target, DEFAULT_LOOPBACK_SOURCES), Vec::new()),
    };
    if result.isolation.delay_path.is_none() && isolation.delay_path.is_some() {
        result.isolation.delay_path = isolation.delay_path.clone();
    }
    if result.load_points.is_empty() {
        result.isolation = isolation;
        result.server = ServerInfo {
            kind: server.kind().into(),
            command_line: server.command_line(),
            address: target.to_string(),
            ..ServerInfo::default()
        };
        result.generator.source_addresses = sources.iter().map(|s| s.to_string()).collect();
    }

    let fractions: Vec<f64> = match &scenario.sweep {
        Some(sweep) => (1..=sweep.points)
            .map(|i| f64::from(i) / f64::from(sweep.points))
            .collect(),
        None => vec![1.0],
    };
    let show_progress = !options.quiet && std::io::stderr().is_terminal();
    let mut stopped = false;
    let first_point = result.load_points.len();
    for (point_index, fraction) in fractions.iter().enumerate() {
        let start = Instant::now() + Duration::from_millis(50);
        let plan = PointPlan {
            start,
            target,
            host_header: target.to_string(),
            populations: &populations,
            load_fraction: *fraction,
            workers: scenario.workers,
            cpus: context.generator_cpus.to_vec(),
            warmup: scenario.warmup,
            duration: scenario.duration,
            interval: Duration::from_secs(1),
            request_timeout: scenario.request_timeout,
            seed: scenario.seed.wrapping_add(point_index as u64),
            workload: context.workload,
            sources: sources.clone(),
            population_sources: population_sources.clone(),
            rtt_mode: rtt.mode,
        };
        let total_s = (scenario.warmup + scenario.duration).as_secs_f64();
        let mut label = if fractions.len() > 1 {
            format!(
                "{}/{} ({:.0}%)",
                point_index + 1,
                fractions.len(),
                fraction * 100.0
            )
        } else {
            "full load".to_string()
        };
        if let Some(variant_label) = &variant.label {
            label = if fractions.len() > 1 {
                format!("{variant_label} {label}")
            } else {
                variant_label.clone()
            };
        }
        let mut monitor = |progress: &Progress| -> Option<String> {
            if show_progress {
                eprint!(
                    "\r\x1b[2K[{label}] {:5.1}/{total_s:.0} s {}  {} ops/s  errors {}",
                    progress.elapsed.as_secs_f64(),
                    if progress.warming_up {
                        "warm-up  "
                    } else {
                        "measuring"
                    },
                    progress.last_interval_ops,
                    progress.errors_so_far
                );
                let _ = std::io::stderr().flush();
            }
            if context.interrupted.load(Ordering::Relaxed) {
                return Some("interrupted by Ctrl-C".into());
            }
            server.check_alive().err()
        };
        let mut sampler_config = SamplerConfig::new(start);
        sampler_config.interval = options.sample_interval;
        sampler_config.server_port = Some(target.port());
        sampler_config.server_pid = server_pid;
        if let Some(net) = &split {
            sampler_config.server_netns = Some(Arc::new(
                net.server_ns
                    .try_clone()
                    .context("keeping the server's namespace for the sampler")?,
            ));
        }
        let slab = sampler_config.slab;
        let sampler = Sampler::start(sampler_config);
        let outcome = run_load_point(&plan, &mut monitor);
        let samples = sampler.stop_report();
        let outcome = outcome.context("running the load")?;
        if show_progress {
            eprintln!();
        }
        let point = load_point(
            context,
            &populations,
            &rtt,
            (label, *fraction),
            &outcome,
            &samples,
            &slab,
        );
        let (warnings, invalid) = validity_checks(&point, &populations);
        result.load_points.push(point);
        result.warnings.extend(warnings);
        if !invalid.is_empty() {
            result.valid = false;
            result.invalid_reasons.extend(invalid);
        }
        if let Some(reason) = &outcome.stopped_early {
            result.valid = false;
            result.interrupted = reason.contains("Ctrl-C");
            result
                .invalid_reasons
                .push(format!("stopped early: {reason}"));
            stopped = true;
        }
        result.write_atomically(context.result_path)?;
        if stopped {
            break;
        }
    }

    let stop = server.stop(Duration::from_secs(10));
    if let Some(line) = split.as_mut().and_then(|net| net.delay_line.take()) {
        let stats = line.stop();
        if stats.dropped > 0 {
            result.warnings.push(format!(
                "{}: the user-space delay line dropped {} packets ({} by the kernel's TUN queue)",
                variant.label.as_deref().unwrap_or("run"),
                stats.dropped,
                stats.dropped_by_kernel
            ));
        }
        if let Some(path) = result.isolation.delay_path.as_mut() {
            let figures = path.delay_line.get_or_insert_with(Default::default);
            figures.packets_up += stats.packets_up;
            figures.packets_down += stats.packets_down;
            figures.bytes_up += stats.bytes_up;
            figures.bytes_down += stats.bytes_down;
            figures.dropped += stats.dropped;
            figures.max_queue_packets = figures.max_queue_packets.max(stats.max_queue_packets);
            figures.cpu_us += stats.cpu_us;
        }
    }
    for point in &mut result.load_points[first_point..] {
        point.server_stats = stop.stats.clone();
    }
    if variant.label.is_none() || result.server.stats.is_none() {
        result.server.stats = stop.stats;
    }
    result.server.exit = stop.exit;
    result.server.notes.extend(stop.notes);
    result.write_atomically(context.result_path)?;
    Ok(stopped)
}

/// Puts the calling thread (and so the server and the workers it starts) where the variant
/// runs: a private namespace, two namespaces joined by a delaying veth path for slow lines, or
/// the host's namespace.
fn isolate(
    options: &RunOptions,
    scenario: &Scenario,
    populations: &[Population],
    relay_cpus: &[usize],
) -> Result<(
    reports::model::Isolation,
    Option<crate::netns::SplitNetwork>,
    RttOutcome,
)> {
    let round_trips: Vec<Duration> = populations
        .iter()
        .filter_map(|p| match p {
            Population::Modem(spec) => Some(spec.rtt),
            _ => None,
        })
        .collect();
    let choice = options
        .overrides
        .rtt
        .or(scenario.rtt)
        .unwrap_or(RttChoice::Auto);
    let mut rtt = RttOutcome {
        mode: RttMode::Application,
        reason: None,
    };
    let host_reason = if !options.private_netns {
        Some("--no-netns given")
    } else if matches!(scenario.server, crate::scenario::ServerSpec::Url { .. }) {
        Some("the server is an outside URL, reachable only from the host namespace")
    } else {
        None
    };
    if let Some(reason) = host_reason {
        if !round_trips.is_empty() {
            if matches!(choice, RttChoice::Netem | RttChoice::TunRelay) {
                bail!("--rtt {choice:?} needs the run's own namespaces, but {reason}");
            }
            rtt.reason = Some(format!("in the host namespace ({reason})"));
        }
        return Ok((crate::netns::host(reason), None, rtt));
    }
    let private =
        || crate::netns::enter_private_netns().context("entering a private network namespace");
    let Some(&round_trip) = round_trips.first() else {
        return Ok((private()?, None, rtt));
    };
    let why_not_netem = if choice == RttChoice::Application {
        Some(if options.overrides.rtt.is_some() {
            "--rtt application given".to_string()
        } else {
            "the scenario says rtt = \"application\"".to_string()
        })
    } else if round_trips.iter().any(|r| *r != round_trip) {
        Some("the slow-line populations have different round-trip times; netem gives one".into())
    } else {
        let prefer = match choice {
            RttChoice::Netem => crate::netns::DelayPreference::Netem,
            RttChoice::TunRelay => crate::netns::DelayPreference::TunRelay,
            RttChoice::Auto | RttChoice::Application => crate::netns::DelayPreference::Auto,
        };
        match crate::netns::enter_split_netns_with(round_trip / 2, prefer, relay_cpus)
            .context("building the delayed path between the namespaces")?
        {
            Ok(net) => {
                rtt.mode = match net.delay_mechanism {
                    Some(crate::netns::DelayMechanism::TunRelay) => RttMode::TunRelay,
                    _ => RttMode::Netem,
                };
                rtt.reason = net.why_not_netem.clone();
                return Ok((net.isolation.clone(), Some(net), rtt));
            }
            Err(reason) => Some(reason),
        }
    };
    if matches!(choice, RttChoice::Netem | RttChoice::TunRelay) {
        let asked = if choice == RttChoice::Netem {
            "netem"
        } else {
            "tun-relay"
        };
        bail!("--rtt {asked}: {}", why_not_netem.unwrap_or_default());
    }
    rtt.reason = why_not_netem;
    Ok((private()?, None, rtt))
}

/// Builds the result of one load point from what the engine and the sampler measured.
fn load_point(
    context: &RunContext<'_>,
    populations: &[Population],
    rtt: &RttOutcome,
    (label, fraction): (String, f64),
    outcome: &crate::engine::PointOutcome,
    samples: &crate::probe::sampler::SamplerReport,
    slab: &crate::probe::slab::SlabSizes,
) -> LoadPoint {
    let scenario = context.scenario;
    let class_names = context.workload.class_names();
    let populations = populations
        .iter()
        .zip(&outcome.recorders)
        .map(|(population, recorder)| PopulationResult {
            name: population.name().to_string(),
            kind: population.kind_name().into(),
            offered: match population {
                Population::Closed { clients, .. } => (f64::from(*clients) * fraction).ceil(),
                Population::Modem(spec) => (f64::from(spec.clients) * fraction).ceil(),
                Population::Open { rate, .. } => rate * fraction,
            },
            totals: recorder.totals(outcome.measured_s),
            latency: recorder.all_classes().latency_set(),
            classes: recorder.class_results(&class_names),
            schedule_lag_us: matches!(population, Population::Open { .. })
                .then(|| reports::model::HistogramData::from_histogram(&recorder.schedule_lag_us)),
            queued_arrivals: recorder.queued_arrivals,
            peak_open_connections: recorder.peak_open_connections,
            requests_sent: recorder.lifetime.requests_sent,
            responses_completed: recorder.lifetime.responses_completed,
            connections_established: recorder.lifetime.connections_established,
            concurrency: Some({
                let all = recorder.all_classes();
                let mean_latency_s = all.total_us.mean() / 1e6;
                recorder
                    .concurrency
                    .figures(outcome.measured_s, all.ops, mean_latency_s)
            }),
            line: match (population, &recorder.line) {
                (Population::Modem(spec), Some(line)) => Some(line_figures(spec, line, rtt)),
                _ => None,
            },
        })
        .collect::<Vec<_>>();
    let mut errors = [0u64; ErrorKind::ALL.len()];
    let (mut ops, mut bytes) = (0, 0);
    for recorder in &outcome.recorders {
        for (sum, n) in errors.iter_mut().zip(recorder.errors) {
            *sum += n;
        }
        for class in &recorder.classes {
            ops += class.ops;
            bytes += class.bytes;
        }
    }
    let warmup_ms = scenario.warmup.as_secs_f64() * 1000.0;
    LoadPoint {
        label,
        load_fraction: fraction,
        warmup_s: scenario.warmup.as_secs_f64(),
        measured_s: outcome.measured_s,
        totals: totals_from(ops, bytes, &errors, outcome.measured_s),
        kernel: Some(kernel_accounting(
            samples,
            slab,
            &PointWindow {
                measure_from_ms: warmup_ms as u64,
                measure_to_ms: (warmup_ms + outcome.measured_s * 1000.0) as u64,
                ops,
                peak_open_connections: populations.iter().map(|p| p.peak_open_connections).sum(),
                generator_cpus: context.generator_cpus.len().max(1),
                sample_interval_ms: context.options.sample_interval.as_millis() as u64,
            },
        )),
        populations,
        timeline: outcome.timeline.clone(),
        server_stats: None,
    }
}

/// The slow-line figures of one population.
fn line_figures(
    spec: &crate::scenario::ModemSpec,
    line: &crate::record::LineRecorder,
    rtt: &RttOutcome,
) -> reports::model::LineFigures {
    reports::model::LineFigures {
        rtt_mode: rtt.mode.name().into(),
        rtt_mode_reason: rtt.reason.clone(),
        rtt_ms: spec.rtt.as_secs_f64() * 1000.0,
        downstream_bps: spec
            .downstream_shares()
            .map(|(bps, share)| reports::model::LineRateShare { bps, share })
            .collect(),
        upstream_bps: spec.upstream_bps,
        payload_bytes_per_s: spec.mean_payload_bytes_per_s(),
        receive_window_bytes: spec.receive_window,
        mss_bytes: spec.mss,
        achieved_bytes_per_s: reports::model::HistogramData::from_histogram(
            &line.achieved_bytes_per_s,
        ),
        slowdown_milli: reports::model::HistogramData::from_histogram(&line.slowdown_milli),
        pages_started: line.pages_started,
        pages_completed: line.pages_completed,
        lingering_closes: line.lingering_closes,
        retries_on_new_connection: line.retries_on_new_connection,
    }
}

/// A generator busier than this share of its cores may have been the bottleneck.
pub const GENERATOR_CPU_LIMIT: f64 = 0.90;
/// Open-loop schedule lag p99 above this is reported: requests left later than planned.
pub const SCHEDULE_LAG_P99_LIMIT_US: u64 = 1_000;

/// Checks a finished load point: warnings, and reasons that make the measurement invalid.
pub fn validity_checks(
    point: &LoadPoint,
    populations: &[Population],
) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut invalid) = (Vec::new(), Vec::new());
    let label = &point.label;
    if let Some(kernel) = &point.kernel {
        let k = &kernel.summary;
        if k.loadgen_cpu_share > GENERATOR_CPU_LIMIT {
            invalid.push(format!(
                "{label}: the generator used {:.0} % of its CPUs: it, not the server, may have set the pace",
                k.loadgen_cpu_share * 100.0
            ));
        }
        if k.time_wait_overflows > 0 {
            warnings.push(format!(
                "{label}: {} closes skipped TIME_WAIT (TCPTimeWaitOverflow): tcp_max_tw_buckets is too low",
                k.time_wait_overflows
            ));
        }
        if k.listen_drops > 0 || k.listen_overflows > 0 {
            warnings.push(format!(
                "{label}: the accept queue overflowed {} times and dropped {} connections",
                k.listen_overflows, k.listen_drops
            ));
        }
        if k.sampler_cpu_share > 0.02 {
            warnings.push(format!(
                "{label}: the sampler used {:.1} % of a core",
                k.sampler_cpu_share * 100.0
            ));
        }
    }
    for (population, spec) in point.populations.iter().zip(populations) {
        if let Some(lag) = &population.schedule_lag_us {
            if lag.p99 > SCHEDULE_LAG_P99_LIMIT_US {
                warnings.push(format!(
                    "{label}: population {}: schedule lag p99 {:.2} ms: requests left later than planned",
                    population.name,
                    lag.p99 as f64 / 1000.0
                ));
            }
        }
        if let Population::Closed { .. } = spec {
            let asked = population.offered as u64;
            if population.peak_open_connections < asked {
                warnings.push(format!(
                    "{label}: population {}: at most {} connections open at once, {} asked",
                    population.name, population.peak_open_connections, asked
                ));
            }
        }
        if let Some(n) = population
            .totals
            .errors
            .get(ErrorKind::AddrNotAvailable.name())
        {
            warnings.push(format!(
                "{label}: population {}: {n} connects failed with EADDRNOTAVAIL: the client ran out of ports",
                population.name
            ));
        }
    }
    (warnings, invalid)
}

/// Prints the summary of a finished run.
pub fn report_run(output: &RunOutput) {
    print_summary(&output.result, &mut std::io::stdout().lock());
    println!("result: {}", output.result_path.display());
    let report = output.result_path.with_file_name("report.html");
    if report.exists() {
        println!("report: {}", report.display());
    }
}

/// Relative `root` and `urls` of a directory site are relative to the scenario file.
fn prepare_site(
    scenario: &Scenario,
    scenario_dir: &Path,
    out: &Path,
) -> Result<(PathBuf, Workload)> {
    match &scenario.site {
        SiteSpec::Specweb96 { mix, .. } => {
            let dirs = scenario
                .site
                .specweb96_dirs()
                .map_err(anyhow::Error::msg)?
                .expect("a SPECweb96 site has a directory count");
            let root = out
                .join("filesets")
                .join(format!("specweb96-{dirs}dirs-seed{}", scenario.seed));
            write_fileset(&root, dirs, scenario.seed)
                .with_context(|| format!("writing the SPECweb96 file set to {}", root.display()))?;
            let mix = RequestMix::new(mix, dirs).map_err(|e| anyhow::anyhow!("site.mix.{e}"))?;
            let pattern = scenario
                .verify_content
                .then(|| ContentPattern::new(scenario.seed));
            Ok((root, Workload::Specweb96 { mix, pattern }))
        }
        SiteSpec::Directory { root, urls } => {
            let root = scenario_dir.join(root);
            let urls = scenario_dir.join(urls);
            let urls = urls.as_path();
            let text = std::fs::read_to_string(urls)
                .with_context(|| format!("reading site.urls {}", urls.display()))?;
            let mut entries = Vec::new();
            for (number, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let mut fields = line.split_whitespace();
                let (Some(weight), Some(path), None) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    bail!("{}:{}: expected `WEIGHT PATH`", urls.display(), number + 1);
                };
                let weight: f64 = weight
                    .parse()
                    .ok()
                    .filter(|w: &f64| w.is_finite() && *w > 0.0)
                    .with_context(|| {
                        format!(
                            "{}:{}: weight `{weight}` must be a positive number",
                            urls.display(),
                            number + 1
                        )
                    })?;
                if !path.starts_with('/') {
                    bail!(
                        "{}:{}: path `{path}` must start with `/`",
                        urls.display(),
                        number + 1
                    );
                }
                let on_disk = root.join(path.trim_start_matches('/'));
                let expected_bytes = std::fs::metadata(&on_disk)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len());
                entries.push(UrlEntry {
                    path: path.to_string(),
                    weight,
                    expected_bytes,
                });
            }
            if entries.is_empty() {
                bail!("{}: no URLs listed", urls.display());
            }
            Ok((root, Workload::urls(entries)))
        }
    }
}

/// `2026-11-24T23:50:36Z`: RFC 3339, UTC, whole seconds.
pub fn utc_stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
