//! `loadgen claims`: re-measures the 1999 claims of a claims file (`scenarios/claims-1999.toml`).
//! Each measurement is a `loadgen compare` ([`crate::compare::compare`]) of one scenario over
//! the servers the file lists; the rows of the claims table are then built from the
//! comparisons by pure functions (`rows`), each with the rule its verdict follows from.
//! `claims.json` is rewritten after every measurement, so nothing measured is lost to a later
//! failure or to Ctrl-C.
//!
//! Layout: `OUT/<name>/<UTC time>/claims.{json,html}`, each measurement's comparison in
//! `<measurement>/` beside them.

pub mod plan;
pub mod rows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reports::claims::{ClaimsReport, MeasurementEntry, CLAIMS_SCHEMA_VERSION};
use reports::model::{ResultFileError, RunResult};

use crate::compare::{ComparePlan, RunEvent};
use crate::run::RunPlan;
use crate::scenario::ScenarioError;
use plan::{ClaimsFile, ClaimsFileError};
use rows::{Measured, Measurements};

/// What one `loadgen claims` runs.
#[derive(Clone, Debug)]
pub struct ClaimsPlan {
    /// The claims file.
    pub file: ClaimsFile,
    /// Where it is: its scenarios are relative to its directory.
    pub path: PathBuf,
    /// Every measurement at its reduced size.
    pub quick: bool,
    /// Results go to `OUT/<name>/<UTC time>/`; file sets to `OUT/filesets/`.
    pub out: PathBuf,
    /// The executable with the `serve-builtin` subcommand (the loadgen itself).
    pub builtin_exe: PathBuf,
    /// Run each run in a private network namespace when root.
    pub private_netns: bool,
    /// Time between kernel and server samples.
    pub sample_interval: Duration,
    /// Set (by Ctrl-C) to end the run in progress and start no other; what was measured is
    /// kept.
    pub stop: Arc<AtomicBool>,
    /// The command line as typed.
    pub command_line: String,
}

/// A finished claims run.
#[derive(Debug)]
pub struct ClaimsOutput {
    /// The directory of `claims.json`, `claims.html` and the measurements.
    pub dir: PathBuf,
    /// What `claims.json` holds.
    pub report: ClaimsReport,
    /// `claims.html`.
    pub page: PathBuf,
    /// Servers (over all measurements) without a valid round: they failed to start, died or
    /// measured invalid, and their rows say why.
    pub incomplete_servers: usize,
}

/// Why a claims run could not start or be written (a measurement that fails is a row that
/// cannot be measured, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// The claims file is malformed.
    #[error(transparent)]
    File(#[from] ClaimsFileError),
    /// A scenario the claims file names is malformed.
    #[error("measurements.{measurement}: {error}")]
    Scenario {
        /// The measurement's id.
        measurement: String,
        /// What is wrong with its scenario.
        error: ScenarioError,
    },
    /// A server a measurement names is unknown, or takes no extra flags.
    #[error("measurements.{measurement}.servers: {message}")]
    Server {
        /// The measurement's id.
        measurement: String,
        /// What is wrong.
        message: String,
    },
    /// The output directory could not be created.
    #[error("creating {}: {error}", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// `claims.json` could not be written.
    #[error(transparent)]
    ClaimsFile(#[from] ResultFileError),
    /// `claims.html` could not be written.
    #[error("writing {}: {error}", path.display())]
    Page {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

impl ClaimsError {
    /// True when measurements ran but `claims.json` or `claims.html` could not be written (a
    /// full disk): `loadgen` exits 4 then, not 2.
    pub fn is_write(&self) -> bool {
        match self {
            ClaimsError::ClaimsFile(error) => error.is_write(),
            ClaimsError::Page { .. } => true,
            ClaimsError::File(_)
            | ClaimsError::Scenario { .. }
            | ClaimsError::Server { .. }
            | ClaimsError::Output { .. } => false,
        }
    }
}

/// One finished run of a measurement, for progress lines.
#[derive(Debug)]
pub struct ClaimsEvent<'a> {
    /// The measurement's id.
    pub measurement: &'a str,
    /// The run.
    pub run: RunEvent<'a>,
}

/// A measurement ready to run: its id, its comparison plan and its entry in `claims.json`.
struct Prepared {
    id: String,
    compare: ComparePlan,
    entry: MeasurementEntry,
    size: String,
}

/// Runs every measurement of `plan.file` in order, then writes the claims table; `on_run`
/// hears of each run as it ends. Every scenario and server is checked before the first run.
pub fn claims(
    plan: &ClaimsPlan,
    mut on_run: impl FnMut(ClaimsEvent<'_>),
) -> Result<ClaimsOutput, ClaimsError> {
    let started_utc = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let dir = plan
        .out
        .join(&plan.file.name)
        .join(started_utc.replace(':', "-"));
    let prepared = prepare(plan, &dir)?;
    std::fs::create_dir_all(&dir).map_err(|error| ClaimsError::Output {
        path: dir.clone(),
        error,
    })?;

    let mut report = ClaimsReport {
        schema_version: CLAIMS_SCHEMA_VERSION,
        name: plan.file.name.clone(),
        description: plan.file.description.clone(),
        started_utc,
        command_line: plan.command_line.clone(),
        quick: plan.quick,
        hardware_then: plan.file.hardware_then.clone(),
        hardware_now: String::new(),
        measurements: prepared.iter().map(|p| p.entry.clone()).collect(),
        rows: Vec::new(),
    };
    let json_path = dir.join("claims.json");
    let mut measured = Measurements::new();
    for (index, prepared) in prepared.into_iter().enumerate() {
        let entry = &mut report.measurements[index];
        if plan.stop.load(Ordering::Relaxed) {
            entry.problem = Some("not run: stopped (Ctrl-C or SIGTERM)".into());
            measured.insert(
                prepared.id.clone(),
                Measured {
                    problem: entry.problem.clone(),
                    ..Measured::default()
                },
            );
            continue;
        }
        let id = prepared.id.clone();
        let outcome = crate::compare::compare(&prepared.compare, |run| {
            on_run(ClaimsEvent {
                measurement: &id,
                run,
            })
        });
        let mut result = Measured {
            size: prepared.size,
            ..Measured::default()
        };
        match outcome {
            Ok(output) => {
                if plan.stop.load(Ordering::Relaxed) {
                    entry.problem = Some(
                        "stopped (Ctrl-C or SIGTERM) during this measurement: the rows use the \
                         rounds that ran"
                            .into(),
                    );
                }
                entry.comparison = output
                    .dir
                    .join("comparison.json")
                    .strip_prefix(&dir)
                    .ok()
                    .map(Path::to_path_buf);
                result.results = representative_results(&output.comparison, &output.dir);
                result.comparison = Some(output.comparison);
            }
            Err(error) => {
                entry.problem = Some(error.to_string());
                result.problem = Some(error.to_string());
            }
        }
        measured.insert(id, result);
        report.hardware_now = hardware_now(&measured);
        report.rows = rows::claim_rows(&plan.file, &measured, &report.hardware_now);
        report.write_atomically(&json_path)?;
    }
    report.hardware_now = hardware_now(&measured);
    report.rows = rows::claim_rows(&plan.file, &measured, &report.hardware_now);
    report.write_atomically(&json_path)?;
    let page = dir.join("claims.html");
    reports::render::write_html(&page, &reports::render::render_claims(&report)).map_err(
        |error| ClaimsError::Page {
            path: page.clone(),
            error,
        },
    )?;
    let incomplete_servers = measured
        .values()
        .filter_map(|m| m.comparison.as_ref())
        .flat_map(|c| &c.servers)
        .filter(|s| s.valid_rounds() == 0)
        .count();
    Ok(ClaimsOutput {
        dir,
        report,
        page,
        incomplete_servers,
    })
}

/// Every measurement's plan, checked: its scenario loads with its overrides, its servers are
/// known.
fn prepare(plan: &ClaimsPlan, dir: &Path) -> Result<Vec<Prepared>, ClaimsError> {
    let base_dir = plan.path.parent().unwrap_or(Path::new("."));
    let mut prepared = Vec::new();
    for (id, measurement) in plan.file.ordered_measurements() {
        let sized = measurement.sized(plan.quick);
        let scenario_path = base_dir.join(&measurement.scenario);
        let mut base = RunPlan::load(&scenario_path, &sized.overrides).map_err(|error| {
            ClaimsError::Scenario {
                measurement: id.to_string(),
                error,
            }
        })?;
        base.out = plan.out.clone();
        base.builtin_exe = plan.builtin_exe.clone();
        base.private_netns = plan.private_netns;
        base.sample_interval = plan.sample_interval;
        base.progress = false;
        base.stop = Arc::clone(&plan.stop);
        base.command_line = plan.command_line.clone();
        if !base.scenario.variants.is_empty() {
            return Err(ClaimsError::Server {
                measurement: id.to_string(),
                message: format!(
                    "its scenario {} has [[variants]]: a measurement runs one configuration per \
                     server",
                    scenario_path.display()
                ),
            });
        }
        // The other size is checked too: a broken claims file fails whichever size runs.
        let other = measurement.sized(!plan.quick);
        RunPlan::load(&scenario_path, &other.overrides).map_err(|error| ClaimsError::Scenario {
            measurement: id.to_string(),
            error,
        })?;
        for server in sized.servers.iter().chain(&other.servers) {
            server
                .spec(&base.scenario.server)
                .map_err(|message| ClaimsError::Server {
                    measurement: id.to_string(),
                    message,
                })?;
        }
        let size = sized
            .overrides
            .modem_clients
            .map(|users| format!("{} modem users", reports::claims::figure(users.into())))
            .unwrap_or_default();
        prepared.push(Prepared {
            id: id.to_string(),
            entry: MeasurementEntry {
                id: id.to_string(),
                what: if plan.quick {
                    format!(
                        "{} (--quick: {})",
                        measurement.what,
                        quick_size_words(&sized.overrides, sized.rounds)
                    )
                } else {
                    measurement.what.clone()
                },
                scenario: measurement.scenario.display().to_string(),
                servers: sized.servers.iter().map(|s| s.label.clone()).collect(),
                rounds: sized.rounds,
                comparison: None,
                problem: None,
            },
            compare: ComparePlan {
                base,
                servers: sized.servers,
                rounds: sized.rounds,
                dir: Some(dir.join(id)),
            },
            size,
        });
    }
    Ok(prepared)
}

/// What `--quick` changed, in words: `100 modem users, 3 s measured, 1 round`.
fn quick_size_words(overrides: &crate::scenario::Overrides, rounds: u32) -> String {
    let mut words = Vec::new();
    if let Some(users) = overrides.modem_clients {
        words.push(format!("{users} modem users"));
    }
    if let Some(clients) = overrides.clients {
        words.push(format!("{clients} clients"));
    }
    if let Some(duration) = overrides.duration {
        words.push(format!("{} measured", humantime::format_duration(duration)));
    }
    words.push(format!(
        "{rounds} round{}",
        if rounds == 1 { "" } else { "s" }
    ));
    words.join(", ")
}

/// Each server's representative run, read back from `dir` (a run that cannot be read is left
/// out: the comparison's figures still stand).
fn representative_results(
    comparison: &reports::comparison::Comparison,
    dir: &Path,
) -> BTreeMap<String, RunResult> {
    comparison
        .servers
        .iter()
        .filter_map(|server| {
            let path = server.representative_round()?.result.as_ref()?;
            Some((server.name.clone(), RunResult::read(&dir.join(path)).ok()?))
        })
        .collect()
}

/// This machine in words, from the first run's environment.
fn hardware_now(measured: &Measurements) -> String {
    let environment = measured
        .values()
        .flat_map(|m| m.results.values())
        .find_map(|result| result.environment.as_ref());
    match environment {
        Some(env) => format!(
            "{}{}, {} CPUs ({}); Linux {}; server and generator pinned to one CPU each; \
             clients on loopback",
            env.cpu_model.as_deref().unwrap_or("an unnamed CPU"),
            crate::probe::environment::cpu_mhz()
                .map(|mhz| format!(" at {mhz:.0} MHz"))
                .unwrap_or_default(),
            env.cpu_count,
            env.machine,
            env.kernel_release
        ),
        None => "this machine (no run recorded its environment)".into(),
    }
}
