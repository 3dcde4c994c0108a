//! One run of a scenario: the single pipeline every command calls (`loadgen run` today; the
//! comparisons, CI checks and shards call the same [`run`] many times). A checked [`RunPlan`]
//! goes in, a [`RunOutput`] with the `RunResult` comes out; `result.json` is written atomically
//! after every load point (marked partial until the run ends), so a later failure loses nothing
//! already measured and a file left by a killed run never looks complete.
//!
//! Faults: `--out` is checked before anything starts (`output`); a server that dies, Ctrl-C
//! and SIGTERM end the load and give a result marked invalid (and partial, and interrupted);
//! an error after something was measured (a later variant's server does not start) does too;
//! only a run that measured nothing is an error. A result that cannot be written (a full
//! disk) is kept in the system's temporary folder and the error says where.
//!
//! This file holds the orchestration only: per variant, place the run in its network namespaces,
//! start the server, run each load point with the sampler beside it, stop the server. The parts
//! are rooms of their own: `site` (the file set or URL list), `point` (a load point's result from
//! the engine's and the sampler's figures), `validity` (pure checks), `progress` (the terminal
//! line); namespaces are `netns::policy`'s, the server `target`'s, the load `engine`'s.

pub mod output;
pub mod point;
pub mod progress;
pub mod site;
pub mod validity;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reports::model::{
    GeneratorInfo, LoadPoint, ResultFileError, RunResult, ServerInfo, SCHEMA_VERSION,
};

use crate::engine::modem::RttMode;
use crate::engine::share::ShardSpec;
use crate::engine::source::{sources_for, DEFAULT_LOOPBACK_SOURCES};
use crate::engine::workload::Workload;
use crate::engine::{run_load_point, PointPlan};
use crate::netns::policy::{place_variant, NetworkWish, Placement, PlacementError};
use crate::netns::DelayMechanism;
use crate::os::{AffinityError, CpuPlan};
use crate::probe::sampler::{Sampler, SamplerConfig};
use crate::scenario::{
    Overrides, Population, RttChoice, Scenario, ScenarioError, ServerSpec, Variant,
};
use crate::shard::{ShardError, ShardPart};
use crate::target::{ServerHandle, TargetError, TargetOptions};
use point::{
    build_point, load_fractions, point_counters, point_label, with_gauges_from, PointContext,
    RttOutcome,
};
use progress::ProgressLine;
use site::{prepare_site, SiteError};

/// How long before the measured window's end the server's gauges are read (see
/// [`with_gauges_from`]): early enough that every client is still connected, late enough to
/// show the steady state.
const GAUGE_SNAPSHOT_LEAD: Duration = Duration::from_secs(1);

/// Everything one run needs, checked before any work starts.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The scenario with the command-line overrides applied and checked.
    pub scenario: Scenario,
    /// The scenario file's directory: a directory site's `root` and `urls` are relative to it.
    pub scenario_dir: PathBuf,
    /// Results go to `OUT/<scenario>/<UTC time>/`; file sets to `OUT/filesets/`.
    pub out: PathBuf,
    /// The executable with the `serve-builtin` subcommand (the loadgen itself).
    pub builtin_exe: PathBuf,
    /// Run in a private network namespace when root (false: `--no-netns`).
    pub private_netns: bool,
    /// Time between kernel and server samples.
    pub sample_interval: Duration,
    /// Draw a live progress line when stderr is a terminal.
    pub progress: bool,
    /// Set it (Ctrl-C and SIGTERM do, through the command line's handler) to end the run early;
    /// what was measured is kept and the result marked invalid, partial and interrupted.
    pub stop: Arc<AtomicBool>,
    /// The command line as typed, recorded in the result.
    pub command_line: String,
    /// Write the run into exactly this directory (created) instead of a new
    /// `OUT/<scenario>/<UTC time>/`; file sets still go to `OUT/filesets/`. `loadgen compare`
    /// puts each of its runs beside its `comparison.json` this way.
    pub run_dir: Option<PathBuf>,
    /// A part of a sharded run (`run --shard`, `serve`): its share, the agreed start, and the
    /// server it measures or runs; `None` for a run on one generator.
    pub part: Option<ShardPart>,
}

impl RunPlan {
    /// A plan for the scenario file at `path` with `overrides` applied and checked, results
    /// under `runs/`, the built-in server started from this executable, a private namespace
    /// when root, samples every 250 ms, no progress line.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<RunPlan, ScenarioError> {
        let scenario = Scenario::load_with_overrides(path, overrides)?;
        Ok(RunPlan {
            scenario,
            scenario_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            out: PathBuf::from("runs"),
            builtin_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("loadgen")),
            private_netns: true,
            sample_interval: crate::probe::sampler::DEFAULT_INTERVAL,
            progress: false,
            stop: Arc::new(AtomicBool::new(false)),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            run_dir: None,
            part: None,
        })
    }
}

/// A finished run: where its result is and what it says.
pub struct RunOutput {
    /// `OUT/<scenario>/<UTC time>/result.json`; `report.html` is beside it.
    pub result_path: PathBuf,
    /// The result as written there; `valid` says whether its numbers can be trusted.
    pub result: RunResult,
    /// Why `report.html` could not be written (`writing PATH: what the system said`); the
    /// result says so in a warning, and `result.json` is whole. `None` when it was written.
    pub report_not_written: Option<String>,
}

/// A run that measured nothing, or whose result could not be written (an invalid measurement is
/// a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--out` cannot take results; found before anything started.
    #[error(transparent)]
    OutputDir(#[from] output::OutputDirError),
    /// The site could not be prepared (file set, URL list).
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The run's directory could not be created.
    #[error("creating {}: {error}", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The load ran but `result.json` could not be written (a full disk): what was measured is
    /// kept elsewhere when it can be, and in `result` for the caller to print.
    #[error("{error}; {}", kept_text(.kept))]
    NotWritten {
        /// The write that failed, naming `result.json` and the system's reason.
        error: ResultFileError,
        /// Where the result was kept instead (the system's temporary folder), or why it could
        /// not be kept there either.
        kept: Result<PathBuf, String>,
        /// What was measured.
        result: Box<RunResult>,
    },
    /// A network placement asked for explicitly (`rtt = "netem"` or `"tun-relay"`) cannot be had,
    /// or a namespace could not be entered.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The generator could not be pinned to its CPUs.
    #[error(transparent)]
    Affinity(#[from] AffinityError),
    /// The server under test could not be started or found answering.
    #[error(transparent)]
    Server(#[from] TargetError),
    /// The sampler could not be given the server's namespace.
    #[error("keeping the server's namespace for the sampler: {0}")]
    Sampler(std::io::Error),
    /// The engine could not run the load (a worker's poll or timer failed).
    #[error("running the load: {0}")]
    Load(std::io::Error),
    /// A part of a sharded run that cannot run (a start already past, several variants).
    #[error(transparent)]
    Shard(#[from] ShardError),
}

/// What [`RunError::NotWritten`] says about where the result went instead.
fn kept_text(kept: &Result<PathBuf, String>) -> String {
    match kept {
        Ok(path) => format!("what was measured is kept in {} instead", path.display()),
        Err(why) => format!(
            "what was measured could not be kept elsewhere either ({why}): only the summary \
             printed is left"
        ),
    }
}

/// Runs the plan: every variant, every load point; writes `result.json` (after each point) and
/// `report.html` into a new directory `OUT/<scenario>/<UTC time>/`.
///
/// Errors: `--out` cannot be written (checked first, before the site, the server or any load),
/// a set-up failure before anything was measured (the site, the namespaces, the server does
/// not start), or `result.json` could not be written ([`RunError::NotWritten`], which carries
/// the result and where it was kept instead).
pub fn run(plan: &RunPlan) -> Result<RunOutput, RunError> {
    // The run pins this thread to the generator's CPUs; the caller gets its own mask back.
    let _affinity = crate::os::AffinityRestore::save();
    let scenario = &plan.scenario;
    output::check_writable(&plan.out)?;
    if let Some(part) = &plan.part {
        crate::shard::check_start_at(part.start_at, SystemTime::now())?;
        crate::shard::check_shardable(
            scenario,
            part.generator_shard().unwrap_or(ShardSpec::WHOLE),
        )?;
    }
    // A generator shard measures a server someone else started.
    if plan.part.as_ref().and_then(ShardPart::target).is_none() {
        crate::target::check_startable(&scenario.server)?;
    }
    let (site_root, workload) = prepare_site(scenario, &plan.scenario_dir, &plan.out)?;
    let started = SystemTime::now();
    let started_utc = humantime::format_rfc3339_seconds(started).to_string();
    let run_dir = match (&plan.run_dir, &plan.part) {
        (Some(dir), _) => dir.clone(),
        // Every part of a sharded run lands in one directory named by the agreed start.
        (None, Some(part)) => plan
            .out
            .join(&scenario.name)
            .join(crate::shard::run_directory(part.start_at))
            .join(crate::shard::part_directory(&part.role)),
        (None, None) => plan
            .out
            .join(&scenario.name)
            .join(started_utc.replace(':', "-")),
    };
    create_dir(&run_dir)?;
    let outcome = run_into(plan, &run_dir, started_utc, &site_root, &workload);
    // A directory the caller named is kept: it holds the server's stderr, which says why.
    if outcome.is_err() && plan.run_dir.is_none() && !run_dir.join("result.json").exists() {
        // Nothing was measured, or the result is kept elsewhere (the disk is full): leave no
        // directory a later `loadgen report runs/X/*/...` would trip over (the error already
        // shows what the server said, and where the result went).
        let _ = std::fs::remove_dir_all(&run_dir);
        if let Some(scenario_dir) = run_dir.parent() {
            let _ = std::fs::remove_dir(scenario_dir);
        }
    }
    outcome
}

/// [`run`] once its directory exists.
fn run_into(
    plan: &RunPlan,
    run_dir: &Path,
    started_utc: String,
    site_root: &Path,
    workload: &Workload,
) -> Result<RunOutput, RunError> {
    let scenario = &plan.scenario;
    let cpus = crate::os::cpu_plan();
    let mut result = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "loadgen".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario_name: scenario.name.clone(),
        scenario_toml: toml::to_string(scenario).unwrap_or_default(),
        seed: scenario.seed,
        started_utc,
        valid: true,
        generator: GeneratorInfo {
            workers: scenario.workers,
            cpus: cpus.generator.clone(),
            source_addresses: Vec::new(),
        },
        environment: Some(crate::probe::environment::read_environment()),
        command_line: plan.command_line.clone(),
        shard: plan
            .part
            .as_ref()
            .map(|part| crate::shard::shard_info(part, scenario)),
        ..RunResult::default()
    };
    let result_path = run_dir.join("result.json");
    let variants = scenario.variants_or_default();
    let planned_points =
        variants.len() * load_fractions(scenario.sweep.as_ref().map(|s| s.points)).len();
    let context = RunContext {
        plan,
        workload,
        site_root,
        cpus: &cpus,
        result_path: &result_path,
        planned_points,
    };
    for variant in &variants {
        if plan.stop.load(Ordering::Relaxed) {
            // Ctrl-C between two variants (or before the first): none is started.
            mark_stopped(
                &mut result,
                "interrupted by Ctrl-C or SIGTERM before it began",
                true,
            );
            break;
        }
        let workdir = match &variant.label {
            Some(label) => run_dir.join(label),
            None => run_dir.to_path_buf(),
        };
        let outcome = create_dir(&workdir)
            .and_then(|()| run_variant(&context, variant, &workdir, &mut result));
        match outcome {
            Ok(Continue::Next) => {}
            Ok(Continue::Stop) => break,
            // A generator shard whose server never answered before its slot: a late part,
            // written (invalid) so the merge names it rather than missing it.
            Err(RunError::Server(error @ crate::target::TargetError::UrlNotAnswering { .. }))
                if plan.part.is_some() =>
            {
                mark_stopped(
                    &mut result,
                    &format!("the server under test did not answer before the slot began: {error}"),
                    false,
                );
                break;
            }
            // Nothing measured: an error, and no result.
            Err(error) if result.load_points.is_empty() => return Err(error),
            // Something was: it is kept, marked with what ended the run.
            Err(error) => {
                let what = variant.label.as_deref().unwrap_or("the run");
                mark_stopped(&mut result, &format!("{what}: {error}"), false);
                break;
            }
        }
    }
    if let Err(error) = result.write_atomically(&result_path) {
        let kept = keep_result_elsewhere(&result, run_dir);
        return Err(RunError::NotWritten {
            error,
            kept,
            result: Box::new(result),
        });
    }
    let report_path = run_dir.join("report.html");
    let mut report_not_written = None;
    if let Err(e) = reports::render::write_report(&report_path, std::slice::from_ref(&result)) {
        let why = format!("writing {}: {e}", report_path.display());
        result.warnings.push(format!(
            "the HTML report could not be written ({why}): `loadgen report {}` renders it later",
            result_path.display()
        ));
        report_not_written = Some(why);
        // The result without the warning is already whole on disk: keep it if this fails too.
        let _ = result.write_atomically(&result_path);
    }
    Ok(RunOutput {
        result_path,
        result,
        report_not_written,
    })
}

/// Marks `result` as ended before its plan, `reason` first among its invalid reasons (it is
/// the cause; what the points measured after it is the consequence).
fn mark_stopped(result: &mut RunResult, reason: &str, interrupted: bool) {
    result.valid = false;
    result.partial = true;
    result.interrupted |= interrupted;
    result
        .invalid_reasons
        .insert(0, format!("stopped early: {reason}"));
}

/// Writes `result` where it is kept when `result.json` cannot be written: the system's
/// temporary folder, named after the scenario and the run's directory.
fn keep_result_elsewhere(result: &RunResult, run_dir: &Path) -> Result<PathBuf, String> {
    let json = serde_json::to_vec_pretty(result).map_err(|e| e.to_string())?;
    let run = run_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!(
        "{}-{run}-{}-result.json",
        result.scenario_name,
        std::process::id()
    );
    output::keep_elsewhere(&name, &json).map_err(|error| {
        format!(
            "writing {}: {error}",
            std::env::temp_dir()
                .join(format!("loadgen-{name}"))
                .display()
        )
    })
}

/// Writes the result of a run still going: marked partial and invalid, with how many of the
/// planned points it holds, so a file left behind by a loadgen killed outright (SIGKILL, a
/// power cut) never passes for a whole run. A failure is not fatal here: the run goes on, and
/// the final write tries again (and keeps the result elsewhere if it fails too).
fn write_progress(result: &RunResult, path: &Path, planned_points: usize) {
    let mut progress = result.clone();
    progress.valid = false;
    progress.partial = true;
    progress.invalid_reasons.insert(
        0,
        format!(
            "incomplete: the run was still going when this file was written ({} of {} load \
             points measured)",
            result.load_points.len(),
            planned_points
        ),
    );
    let _ = progress.write_atomically(path);
}

fn create_dir(path: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(path).map_err(|error| RunError::Output {
        path: path.to_path_buf(),
        error,
    })
}

/// What every variant of a run shares.
struct RunContext<'a> {
    plan: &'a RunPlan,
    workload: &'a Workload,
    site_root: &'a Path,
    cpus: &'a CpuPlan,
    result_path: &'a Path,
    /// Load points over all variants, for the partial results written as the run goes.
    planned_points: usize,
}

/// Whether the run goes on after a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Continue {
    Next,
    /// Ctrl-C, or the server died.
    Stop,
}

/// One server configuration: place it, start the server, run every load point, stop it.
fn run_variant(
    context: &RunContext<'_>,
    variant: &Variant,
    workdir: &Path,
    result: &mut RunResult,
) -> Result<Continue, RunError> {
    let mut setup = VariantSetup::start(context, variant, workdir)?;
    setup.describe_in(result);
    let fractions = load_fractions(context.plan.scenario.sweep.as_ref().map(|s| s.points));
    let first_point = result.load_points.len();
    let mut next = Continue::Next;
    for (index, &fraction) in fractions.iter().enumerate() {
        let label = point_label(variant.label.as_deref(), index, fractions.len(), fraction);
        let start = match &context.plan.part {
            Some(part) => match wait_for_slot(context.plan, part, index) {
                Slot::Ready(start) => start,
                Slot::Late(reason) => {
                    mark_stopped(result, &reason, false);
                    next = Continue::Stop;
                    break;
                }
                Slot::Stopped => {
                    mark_stopped(
                        result,
                        "interrupted by Ctrl-C or SIGTERM before it began",
                        true,
                    );
                    next = Continue::Stop;
                    break;
                }
            },
            None => Instant::now() + Duration::from_millis(50),
        };
        let (point, stopped_early) = setup.run_point(context, label, index, fraction, start)?;
        let verdict = if setup.serves_only() {
            // The server side sends no requests: only a death or a stop makes it invalid.
            validity::Verdict::default()
        } else {
            validity::check_point(&point, &validity::Rules::of(&context.plan.scenario))
        };
        result.load_points.push(point);
        result.warnings.extend(verdict.warnings);
        if !verdict.invalid.is_empty() {
            result.valid = false;
            result.invalid_reasons.extend(verdict.invalid);
        }
        if let Some(reason) = stopped_early {
            let interrupted = context.plan.stop.load(Ordering::Relaxed);
            mark_stopped(result, &reason, interrupted);
            next = Continue::Stop;
        }
        write_progress(result, context.result_path, context.planned_points);
        if next == Continue::Stop {
            break;
        }
    }
    setup.stop(variant, first_point, result);
    write_progress(result, context.result_path, context.planned_points);
    Ok(next)
}

/// Whether a part of a sharded run reached its slot in time.
enum Slot {
    /// The slot's start, as an instant on this host's monotonic clock.
    Ready(Instant),
    /// Too late to start at the agreed time: why, for the result.
    Late(String),
    /// Ctrl-C or SIGTERM while waiting.
    Stopped,
}

/// Sleeps until just before load point `index`'s slot (looking at the stop flag every 100 ms)
/// and returns its start, or says by how much this part missed it: a late part is never
/// shifted (its load would fall outside the others' window), it is marked invalid instead.
fn wait_for_slot(plan: &RunPlan, part: &ShardPart, index: usize) -> Slot {
    let slot = crate::shard::slot_start(part.start_at, &plan.scenario, index);
    loop {
        if plan.stop.load(Ordering::Relaxed) {
            return Slot::Stopped;
        }
        let now = SystemTime::now();
        let ahead = slot.duration_since(now).unwrap_or(Duration::ZERO);
        if ahead < crate::shard::READY_BEFORE {
            let late = now
                .duration_since(slot)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64()
                * 1000.0;
            let what = match part.generator_shard() {
                Some(shard) => format!("shard {shard}"),
                None => "the server side".into(),
            };
            return Slot::Late(format!(
                "{what} was not ready for load point {} on time: its slot began at {}, and it \
                 was ready {late:.0} ms after that (parts of a sharded run are never shifted; \
                 start them earlier or give a later --start-at)",
                index + 1,
                humantime::format_rfc3339_millis(slot),
            ));
        }
        // Wake 300 ms before the slot to set the point up; the engine waits for the instant.
        let sleep = ahead.saturating_sub(Duration::from_millis(300));
        if sleep.is_zero() {
            return Slot::Ready(Instant::now() + ahead);
        }
        std::thread::sleep(sleep.min(Duration::from_millis(100)));
    }
}

/// The wall-clock time of `instant` (a moment near now), Unix nanoseconds.
fn unix_ns_of(instant: Instant) -> Option<u64> {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let at = if instant >= now {
        wall + (instant - now)
    } else {
        wall - (now - instant)
    };
    at.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as u64)
}

/// A variant while its points run: where it was placed, its server, its clients' addresses.
struct VariantSetup {
    populations: Vec<Population>,
    placement: Placement,
    rtt: RttOutcome,
    server: ServerHandle,
    /// Source addresses of the clients, and per population its own (slow lines on the delayed
    /// path; empty: the common ones).
    sources: Vec<IpAddr>,
    population_sources: Vec<Vec<IpAddr>>,
    /// The server side of a sharded run: no clients, a closing snapshot after the generators'
    /// last requests arrived.
    serves_only: bool,
}

impl VariantSetup {
    /// Whether this is the server side of a sharded run (it sends no requests).
    fn serves_only(&self) -> bool {
        self.serves_only
    }

    /// Places the variant in its network namespaces and starts its server there. Before the
    /// server and the workers start, so they are all inside; each variant gets fresh
    /// namespaces, so the TIME_WAITs of the one before cannot leak into its counts.
    fn start(
        context: &RunContext<'_>,
        variant: &Variant,
        workdir: &Path,
    ) -> Result<VariantSetup, RunError> {
        let plan = context.plan;
        let scenario = &plan.scenario;
        let listen = plan.part.as_ref().and_then(ShardPart::listen);
        let serves_only = listen.is_some();
        let target_url = plan.part.as_ref().and_then(ShardPart::target);
        let populations: Vec<Population> = scenario
            .clients
            .iter()
            .filter(|_| !serves_only)
            .filter(|p| variant.clients.is_empty() || variant.clients.iter().any(|n| n == p.name()))
            .cloned()
            .collect();
        let placement = place_variant(&NetworkWish {
            // The parts of a sharded run meet on addresses the launcher gave them: none makes a
            // private namespace of its own (run each in one, as deploy/ shows, to isolate it).
            private_namespace: plan.private_netns,
            sharded: plan.part.is_some(),
            server_outside: matches!(scenario.server, ServerSpec::Url { .. })
                || target_url.is_some(),
            rtt: scenario.rtt.unwrap_or(RttChoice::Auto),
            round_trips: populations
                .iter()
                .filter_map(|p| match p {
                    Population::Modem(spec) => Some(spec.rtt),
                    // Viewers on modem lines get the same round trip as modem users.
                    Population::Viewer(spec) => spec.modem.as_ref().map(|line| line.rtt),
                    _ => None,
                })
                .collect(),
            relay_cpus: context.cpus.generator.clone(),
        })?;
        let rtt = RttOutcome {
            mode: match placement.kernel_delay {
                Some(DelayMechanism::Netem) => RttMode::Netem,
                Some(DelayMechanism::TunRelay) => RttMode::TunRelay,
                None => RttMode::Application,
            },
            reason: placement.rtt_reason.clone(),
        };
        let server_spec = match target_url {
            Some(url) => ServerSpec::Url { url: url.into() },
            None => scenario.server.with_extra_args(&variant.args),
        };
        let split = placement.split.as_ref();
        let target_options = TargetOptions {
            builtin_exe: &plan.builtin_exe,
            site_root: context.site_root,
            workdir,
            server_cpu: context.cpus.server,
            listen_ip: match (split, listen) {
                (_, Some(listen)) => listen.ip(),
                (Some(net), None) => net.server_address.into(),
                (None, None) => std::net::Ipv4Addr::LOCALHOST.into(),
            },
            listen_port: listen.map(|listen| listen.port()),
            ready_timeout: Duration::from_secs(15),
            // A generator shard may be launched at the same moment as the server side (or long
            // before it answers, e.g. while its image is pulled): it is tried until the slot.
            url_grace: match &plan.part {
                Some(part) if target_url.is_some() => part
                    .start_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
                _ => Duration::ZERO,
            },
        };
        let server = match split {
            // The server's process is born in the server's namespace; the clients stay here.
            Some(net) => net
                .in_server_namespace(|| ServerHandle::start(&server_spec, &target_options))
                .map_err(|error| {
                    RunError::Placement(PlacementError::Namespace {
                        what: "entering the server's network namespace",
                        error,
                    })
                })?,
            None => ServerHandle::start(&server_spec, &target_options),
        }?;
        // The main thread and the sampler it starts stay off the server's CPU too.
        crate::os::pin_current_thread(&context.cpus.generator)?;
        let (sources, population_sources) = match split {
            Some(net) => (
                net.fast_sources.clone(),
                populations
                    .iter()
                    .map(|p| match p {
                        Population::Modem(_) => net.delayed_sources.clone(),
                        Population::Viewer(spec) if spec.modem.is_some() => {
                            net.delayed_sources.clone()
                        }
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            None => (
                sources_for(server.addr(), DEFAULT_LOOPBACK_SOURCES),
                Vec::new(),
            ),
        };
        Ok(VariantSetup {
            populations,
            placement,
            rtt,
            server,
            sources,
            population_sources,
            serves_only,
        })
    }

    /// What the result says about the server, the generator and the isolation: the first
    /// variant's, and the delay path of the first that built one.
    fn describe_in(&self, result: &mut RunResult) {
        if result.isolation.delay_path.is_none() && self.placement.isolation.delay_path.is_some() {
            result.isolation.delay_path = self.placement.isolation.delay_path.clone();
        }
        if result.load_points.is_empty() {
            result.isolation = self.placement.isolation.clone();
            result.server = ServerInfo {
                kind: self.server.kind().into(),
                command_line: self.server.command_line(),
                address: self.server.addr().to_string(),
                ..ServerInfo::default()
            };
            result.generator.source_addresses =
                self.sources.iter().map(|s| s.to_string()).collect();
        }
    }

    /// Runs load point `index` at `fraction` of the load with the sampler beside it; returns
    /// its result and, if it ended early, why.
    fn run_point(
        &mut self,
        context: &RunContext<'_>,
        label: String,
        index: usize,
        fraction: f64,
        start: Instant,
    ) -> Result<(LoadPoint, Option<String>), RunError> {
        let plan = context.plan;
        let scenario = &plan.scenario;
        let target = self.server.addr();
        let point_plan = PointPlan {
            start,
            target,
            host_header: self.server.host_header(),
            populations: &self.populations,
            load_fraction: fraction,
            shard: plan
                .part
                .as_ref()
                .and_then(ShardPart::generator_shard)
                .unwrap_or(ShardSpec::WHOLE),
            workers: scenario.workers,
            cpus: context.cpus.generator.clone(),
            warmup: scenario.warmup,
            duration: scenario.duration,
            interval: Duration::from_secs(1),
            request_timeout: scenario.request_timeout,
            seed: scenario.seed.wrapping_add(index as u64),
            workload: context.workload,
            sources: self.sources.clone(),
            population_sources: self.population_sources.clone(),
            rtt_mode: self.rtt.mode,
        };
        let mut sampler_config = SamplerConfig::new(start);
        // TIME_WAITs begun from here on are this point's; from the window's end, its teardown's.
        sampler_config.window_end = Some(start + scenario.warmup + scenario.duration);
        sampler_config.interval = plan.sample_interval;
        sampler_config.server_port = Some(target.port());
        sampler_config.server_pid = self.server.pid();
        if let Some(net) = &self.placement.split {
            let server_ns = net.server_ns.try_clone().map_err(RunError::Sampler)?;
            sampler_config.server_netns = Some(Arc::new(server_ns));
        }
        let slab = sampler_config.slab;
        let progress_line = ProgressLine::new(
            plan.progress,
            &label,
            (scenario.warmup + scenario.duration).as_secs_f64(),
        );
        // The point's own share of the server's counters: a snapshot now and one at its end.
        let counters_before = self.server.stats_snapshot();
        let server = &mut self.server;
        // The server's gauges (viewers connected, unsent kernel bytes) are read once inside the
        // measured window, before its end: at the end the clients have left.
        let gauges_at = (scenario.warmup + scenario.duration).saturating_sub(GAUGE_SNAPSHOT_LEAD);
        let mut gauges_in_window = None;
        let mut monitor = |progress: &crate::engine::Progress| -> Option<String> {
            progress_line.show(progress);
            if plan.stop.load(Ordering::Relaxed) {
                return Some("interrupted by Ctrl-C or SIGTERM".into());
            }
            if gauges_in_window.is_none()
                && !progress.warming_up
                && progress.elapsed >= gauges_at
                && counters_before.is_some()
            {
                gauges_in_window = Some(server.stats_snapshot());
            }
            server.check_alive().err()
        };
        let sampler = Sampler::start(sampler_config);
        let outcome = run_load_point(&point_plan, &mut monitor);
        let samples = sampler.stop_report();
        let outcome = outcome.map_err(RunError::Load)?;
        progress_line.finish();
        if self.serves_only && outcome.stopped_early.is_none() {
            // Requests the generators sent in their window's last instant are still on their
            // way: count them in this point, not in none.
            std::thread::sleep(crate::shard::SERVER_SNAPSHOT_DELAY);
        }
        let counters_after = self.server.stats_snapshot();
        let class_names = context.workload.class_names();
        let mut point = build_point(
            &PointContext {
                label,
                load_fraction: fraction,
                warmup: scenario.warmup,
                populations: &self.populations,
                class_names: &class_names,
                rtt: &self.rtt,
                generator_cpus: context.cpus.generator.len(),
                sample_interval: plan.sample_interval,
            },
            &outcome,
            &samples,
            &slab,
        );
        point.start_unix_ns = unix_ns_of(start);
        point.server_stats = match (counters_before, counters_after) {
            (Some(before), Some(after)) => Some(match gauges_in_window.flatten() {
                Some(in_window) => with_gauges_from(point_counters(&before, &after), &in_window),
                None => point_counters(&before, &after),
            }),
            _ => None,
        };
        Ok((point, outcome.stopped_early))
    }

    /// Stops the server (its stats go to the variant's points) and the delay line (its counts
    /// and drops to the result).
    fn stop(mut self, variant: &Variant, first_point: usize, result: &mut RunResult) {
        let stop = self.server.stop(Duration::from_secs(10));
        if let Some(line) = self
            .placement
            .split
            .as_mut()
            .and_then(|net| net.delay_line.take())
        {
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
        // A point without snapshots of its own (the server died under it) may still take the
        // variant's final counters when it was the variant's only point: then they are its.
        if let [only] = &mut result.load_points[first_point..] {
            if only.server_stats.is_none() {
                only.server_stats = stop.stats.clone();
            }
        }
        if variant.label.is_none() || result.server.stats.is_none() {
            result.server.stats = stop.stats;
        }
        result.server.exit = stop.exit;
        result.server.notes.extend(stop.notes);
    }
}
