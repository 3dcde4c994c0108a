//! `loadgen check`: CI's regression verdict. A scenario runs against a baseline and a candidate
//! server in interleaved rounds (A B, B A, A B, ...) after a warm-up, so a drift of the machine
//! hits both alike; after every round from `min_rounds` on, each metric's change gets a rank
//! interval and a verdict ([`reports::check`]), and the rounds stop early once every verdict is
//! certain. Instruction counts of both builds (callgrind, [`instructions`]) are compared beside
//! them. A baseline can also be one saved earlier ([`baseline`]).
//!
//! Layout: `OUT/<scenario>-check/<UTC time>/` holds `check.json` (rewritten after every round),
//! `check.md`, `junit.xml`, `comparison.json` and `comparison.html` (the two sides' rounds, as
//! `loadgen compare` writes them), and each run in `<side>/round-<k>/` (warm-up runs in
//! `warmup/`). Exit status: 0 pass, 1 regression, 2 usage or configuration, 3 invalid.

pub mod baseline;
pub mod instructions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use reports::check::{
    instruction_verdict, paired_change, unpaired_change, verdict, CheckReport, CheckSettings,
    InstructionCheck, MetricCheck, Pairing, SavedBaseline, Verdict, CHECK_SCHEMA_VERSION,
};
use reports::comparison::{Comparison, RoundOutcome, ServerRows, COMPARISON_SCHEMA_VERSION};
use reports::model::ResultFileError;
use reports::prepare::{Better, METRICS};

use crate::run::RunPlan;
use crate::scenario::ServerSpec;

/// What one check does: a load, instruction counts, or both.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    /// The load run against both sides; `None` for instruction counts alone.
    pub load: Option<LoadCheck>,
    /// Instruction counts of two builds; `None` when not asked for.
    pub instructions: Option<InstructionsPlan>,
    /// Results directory (`--out`); saved baselines live in `OUT/baselines/`.
    pub out: PathBuf,
    /// The command line as typed.
    pub command_line: String,
    /// Write into exactly this directory instead of a new `OUT/<scenario>-check/<UTC time>/`.
    pub dir: Option<PathBuf>,
}

/// The load half of a check.
#[derive(Clone, Debug)]
pub struct LoadCheck {
    /// The scenario and the settings every run shares (its `[server]` is replaced per side).
    pub base: RunPlan,
    /// What the candidate is compared against.
    pub baseline: Baseline,
    /// What is checked: its name as given and its `[server]`.
    pub candidate: Side,
    /// Rounds and confidence.
    pub settings: CheckSettings,
    /// Metric id and the smallest relative change that matters, in order.
    pub thresholds: Vec<(String, f64)>,
    /// Save the candidate's rounds under this name when done.
    pub save_baseline: Option<String>,
}

/// One side of a check: the server as the user named it, and what runs.
#[derive(Clone, Debug)]
pub struct Side {
    /// As given: a design, a real server, a path to an afterburner build, or a command.
    pub what: String,
    /// Its `[server]`.
    pub spec: ServerSpec,
}

/// The baseline of a check.
#[derive(Clone, Debug)]
pub enum Baseline {
    /// A server run in this check, interleaved with the candidate.
    Run(Side),
    /// Rounds saved by an earlier check.
    Saved(Box<SavedBaseline>),
    /// None: the check only measures the candidate to save it (`--save-baseline` alone).
    Nothing,
}

/// Instruction counts of two builds, as gungraun wrote them.
#[derive(Clone, Debug)]
pub struct InstructionsPlan {
    /// The baseline build's results directory.
    pub baseline: PathBuf,
    /// The candidate build's.
    pub candidate: PathBuf,
    /// The relative change that fails a benchmark, e.g. 0.01.
    pub threshold: f64,
}

/// What the command line asks of a check, before it is checked against the scenario.
#[derive(Clone, Debug, Default)]
pub struct CheckRequest {
    /// `--baseline`: a server, a path, a command, or a saved baseline's name.
    pub baseline: Option<String>,
    /// `--candidate`: a server, a path or a command.
    pub candidate: Option<String>,
    /// `--rounds`, replacing `[check] rounds`.
    pub rounds: Option<u32>,
    /// `--min-rounds`, replacing `[check] min_rounds`.
    pub min_rounds: Option<u32>,
    /// `--warmup-rounds`, replacing `[check] warmup_rounds`.
    pub warmup_rounds: Option<u32>,
    /// `--threshold METRIC=PCT`, each: when any is given, these metrics only, instead of
    /// `[check] thresholds`.
    pub thresholds: Vec<(String, f64)>,
    /// `--instructions BASELINE_DIR CANDIDATE_DIR`.
    pub instructions: Option<(PathBuf, PathBuf)>,
    /// `--instructions-threshold`, replacing `[check] instructions_threshold`.
    pub instructions_threshold: Option<f64>,
    /// `--save-baseline NAME`.
    pub save_baseline: Option<String>,
}

impl CheckPlan {
    /// The plan for `request` with the scenario's plan `base` (`None`: no scenario given),
    /// results under `out`. Errors (exit status 2) name the flag or key.
    pub fn new(
        request: CheckRequest,
        base: Option<RunPlan>,
        out: PathBuf,
        command_line: String,
    ) -> Result<CheckPlan, CheckError> {
        let table = base
            .as_ref()
            .and_then(|base| base.scenario.check.clone())
            .unwrap_or_default();
        let instructions = request
            .instructions
            .map(|(baseline, candidate)| InstructionsPlan {
                baseline,
                candidate,
                threshold: request
                    .instructions_threshold
                    .unwrap_or(table.instructions_threshold),
            });
        let Some(base) = base else {
            if request.baseline.is_some() || request.candidate.is_some() {
                return Err(CheckError::Usage(
                    "--baseline and --candidate name servers to run a scenario against: give the \
                     scenario first (loadgen check SCENARIO --baseline A --candidate B)"
                        .into(),
                ));
            }
            if instructions.is_none() {
                return Err(CheckError::Usage(
                    "nothing to check: give a scenario (loadgen check SCENARIO --baseline A \
                     --candidate B) or instruction counts (--instructions BASELINE_DIR \
                     CANDIDATE_DIR)"
                        .into(),
                ));
            }
            return Ok(CheckPlan {
                load: None,
                instructions,
                out,
                command_line,
                dir: None,
            });
        };
        let scenario = &base.scenario;
        if !scenario.variants.is_empty() {
            return Err(CheckError::Usage(format!(
                "scenario {}: `loadgen check` runs one configuration per side; remove its \
                 [[variants]]",
                scenario.name
            )));
        }
        let Some(candidate) = request.candidate else {
            return Err(CheckError::Usage(
                "--candidate: name the server to check (a design such as loop, a path to an \
                 afterburner build, a real server, or a command with {port})"
                    .into(),
            ));
        };
        // A command whose program does not exist is refused here, before any round: the check
        // could only be invalid.
        let side = |what: &str, flag: &str| -> Result<Side, CheckError> {
            let spec = crate::compare::server_spec(what, &scenario.server)
                .map_err(|error| CheckError::Usage(format!("{flag}: {error}")))?;
            crate::target::check_startable(&spec)
                .map_err(|error| CheckError::Usage(format!("{flag}: {error}")))?;
            Ok(Side {
                what: what.to_string(),
                spec,
            })
        };
        let candidate = side(&candidate, "--candidate")?;
        if let Some(name) = &request.save_baseline {
            baseline::check_name(name)?;
        }
        let baseline =
            match &request.baseline {
                Some(name) => match baseline::find(&out, name, &scenario.name)? {
                    Some(saved) => {
                        let here = toml::to_string(scenario).unwrap_or_default();
                        if let Some(difference) = first_difference(&saved.scenario_toml, &here) {
                            return Err(CheckError::Usage(format!(
                                "--baseline {name}: it was saved with another scenario or other \
                                 command-line values ({difference}); its figures would compare \
                                 unlike with like: re-save it, or give the same values"
                            )));
                        }
                        Baseline::Saved(Box::new(saved))
                    }
                    None => Baseline::Run(side(name, "--baseline").map_err(|error| {
                        CheckError::Usage(format!(
                            "{error}; nor is it a baseline saved in {} (saved baselines live \
                             under --out)",
                            out.join("baselines").display()
                        ))
                    })?),
                },
                None if request.save_baseline.is_some() => Baseline::Nothing,
                None => return Err(CheckError::Usage(
                    "--baseline: name what the candidate is compared against (a server, a path, \
                     a command, or a baseline saved with --save-baseline), or give only \
                     --save-baseline NAME to measure and save the candidate"
                        .into(),
                )),
            };
        let mut thresholds: Vec<(String, f64)> = Vec::new();
        if request.thresholds.is_empty() {
            thresholds.extend(table.thresholds.clone());
        }
        for (metric, threshold) in &request.thresholds {
            crate::scenario::check::check_metric(metric)
                .map_err(|error| CheckError::Usage(format!("--threshold {error}")))?;
            // A metric given twice keeps its last threshold, in its first place.
            match thresholds.iter_mut().find(|(m, _)| m == metric) {
                Some(entry) => entry.1 = *threshold,
                None => thresholds.push((metric.clone(), *threshold)),
            }
        }
        let max_rounds = request.rounds.unwrap_or(table.rounds);
        // A --rounds below the table's min_rounds lowers it with it.
        let min_rounds = request
            .min_rounds
            .unwrap_or(table.min_rounds.min(max_rounds));
        if max_rounds == 0 || min_rounds == 0 || min_rounds > max_rounds {
            return Err(CheckError::Usage(format!(
                "--min-rounds {min_rounds} must be from 1 to --rounds ({max_rounds})"
            )));
        }
        let settings = CheckSettings {
            max_rounds,
            min_rounds,
            look_every: table.look_every,
            warmup_rounds: request.warmup_rounds.unwrap_or(table.warmup_rounds),
            confidence: table.confidence,
        };
        Ok(CheckPlan {
            load: Some(LoadCheck {
                base,
                baseline,
                candidate,
                settings,
                thresholds,
                save_baseline: request.save_baseline,
            }),
            instructions,
            out,
            command_line,
            dir: None,
        })
    }
}

/// A finished check.
#[derive(Debug)]
pub struct CheckOutput {
    /// The directory holding `check.json` and the rest.
    pub dir: PathBuf,
    /// What `check.json` holds.
    pub report: CheckReport,
    /// `check.md`'s text (also printed).
    pub summary: String,
    /// The saved baseline's file, when `--save-baseline` was given and there were rounds to save.
    pub saved_baseline: Option<PathBuf>,
    /// `comparison.html`, when a load ran.
    pub comparison_page: Option<PathBuf>,
}

/// Why a check could not run: all exit status 2 (usage or configuration). A run that fails is
/// not an error but a problem of the report (exit status 3).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The command line or the `[check]` table asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// Instruction counts could not be read.
    #[error(transparent)]
    Instructions(#[from] instructions::InstructionsError),
    /// The check's directory could not be created (before anything was measured).
    #[error("creating {}: {error}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A file (or the saved baseline's directory) could not be written, after the measuring.
    #[error("writing {}: {error}", path.display())]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A JSON file (`check.json`, `comparison.json`, a saved baseline) could not be read or
    /// written.
    #[error(transparent)]
    File(#[from] ResultFileError),
    /// The XML writer failed.
    #[error("writing junit.xml: {0}")]
    Junit(String),
}

/// One run finished, for progress lines.
#[derive(Debug)]
pub struct CheckEvent<'a> {
    /// A warm-up run, whose figures are thrown away.
    pub warmup: bool,
    /// Most rounds.
    pub rounds: u32,
    /// `baseline` or `candidate`.
    pub side: &'static str,
    /// What the run recorded.
    pub outcome: &'a RoundOutcome,
}

const BASELINE: &str = "baseline";
const CANDIDATE: &str = "candidate";

/// Runs the check; `on_run` hears of every run as it ends. Ctrl-C (`load.base.stop`) ends the
/// run in progress and the check, which is then invalid; what was measured is kept.
pub fn check(
    plan: &CheckPlan,
    mut on_run: impl FnMut(CheckEvent<'_>),
) -> Result<CheckOutput, CheckError> {
    let started_utc = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let name = plan
        .load
        .as_ref()
        .map(|load| load.base.scenario.name.clone());
    let dir = plan.dir.clone().unwrap_or_else(|| {
        plan.out
            .join(format!(
                "{}-check",
                name.as_deref().unwrap_or("instructions")
            ))
            .join(started_utc.replace(':', "-"))
    });
    // Instruction counts first: they are quick, and a missing directory is better said before
    // minutes of load.
    let instruction_checks = match &plan.instructions {
        Some(instructions) => compare_instructions(instructions)?,
        None => Vec::new(),
    };
    create_dir(&dir)?;
    let mut report = CheckReport {
        schema_version: CHECK_SCHEMA_VERSION,
        scenario_name: name.unwrap_or_default(),
        started_utc: started_utc.clone(),
        command_line: plan.command_line.clone(),
        instructions: instruction_checks,
        pairing: Pairing::InstructionsOnly,
        ..CheckReport::default()
    };
    if let Some(instructions) = &plan.instructions {
        report.baseline = instructions.baseline.display().to_string();
        report.candidate = instructions.candidate.display().to_string();
    }
    let mut comparison_page = None;
    let mut saved_baseline = None;
    if let Some(load) = &plan.load {
        let comparison = run_load(load, &dir, &mut report, &started_utc, &mut on_run)?;
        let page = dir.join("comparison.html");
        crate::compare::write_report(&comparison, &dir, &page).map_err(|error| match error {
            crate::compare::CompareError::Report { path, error } => {
                CheckError::Output { path, error }
            }
            other => CheckError::Usage(other.to_string()),
        })?;
        comparison_page = Some(page);
        if let Some(name) = &load.save_baseline {
            saved_baseline = save_candidate(plan, load, name, &comparison, &mut report)?;
        }
    }
    report.outcome = report.decide_outcome();
    report.write_atomically(&dir.join("check.json"))?;
    let summary = reports::render::markdown::check_summary(&report);
    write_file(&dir.join("check.md"), &summary)?;
    write_file(
        &dir.join("junit.xml"),
        &reports::render::junit::check_junit(&report)
            .map_err(|error| CheckError::Junit(error.to_string()))?,
    )?;
    Ok(CheckOutput {
        dir,
        report,
        summary,
        saved_baseline,
        comparison_page,
    })
}

/// The load half: warm-up, then the rounds until every verdict is certain or the rounds run
/// out; fills `report` and returns the two sides' rounds as a comparison.
fn run_load(
    load: &LoadCheck,
    dir: &Path,
    report: &mut CheckReport,
    started_utc: &str,
    on_run: &mut impl FnMut(CheckEvent<'_>),
) -> Result<Comparison, CheckError> {
    let settings = load.settings;
    report.settings = settings;
    let needed = reports::check::fewest_pairs(settings.look_confidence());
    if matches!(load.baseline, Baseline::Run(_)) && settings.max_rounds < needed {
        report.warnings.push(format!(
            "with at most {} rounds no interval exists at {:.2}% per look (it takes {needed} \
             pairs): every verdict can only be inconclusive, which passes",
            settings.max_rounds,
            settings.look_confidence() * 100.0
        ));
    }
    report.candidate = load.candidate.what.clone();
    let baseline_side = match &load.baseline {
        Baseline::Run(side) => {
            report.baseline = side.what.clone();
            report.pairing = Pairing::Interleaved;
            Some(side)
        }
        Baseline::Saved(saved) => {
            report.baseline = format!("saved baseline {} ({})", saved.name, saved.server);
            let here = baseline::machine(&crate::probe::environment::read_environment());
            if saved.machine != here {
                report.warnings.push(format!(
                    "the baseline `{}` was saved on another machine ({}; this is {here})",
                    saved.name, saved.machine
                ));
            }
            report.pairing = Pairing::Saved {
                name: saved.name.clone(),
                saved_utc: saved.saved_utc.clone(),
            };
            None
        }
        Baseline::Nothing => {
            report.baseline = "none (measuring the candidate to save it)".into();
            report.pairing = Pairing::CandidateOnly;
            None
        }
    };
    let mut comparison = Comparison {
        schema_version: COMPARISON_SCHEMA_VERSION,
        scenario_name: load.base.scenario.name.clone(),
        started_utc: started_utc.to_string(),
        command_line: load.base.command_line.clone(),
        rounds: settings.max_rounds,
        servers: baseline_side
            .map(|_| BASELINE)
            .into_iter()
            .chain([CANDIDATE])
            .map(|label| ServerRows {
                name: label.to_string(),
                ..ServerRows::default()
            })
            .collect(),
    };
    let candidate_index = comparison.servers.len() - 1;
    let stop = &load.base.stop;
    let json_path = dir.join("comparison.json");
    let check_path = dir.join("check.json");

    // (server index, label, spec) of each side run in this check.
    let mut sides: Vec<(usize, &'static str, &ServerSpec)> = Vec::new();
    if let Some(side) = baseline_side {
        sides.push((0, BASELINE, &side.spec));
    }
    sides.push((candidate_index, CANDIDATE, &load.candidate.spec));

    for warmup in 1..=settings.warmup_rounds {
        for &(_, label, spec) in &sides {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let relative = PathBuf::from("warmup")
                .join(label)
                .join(format!("round-{warmup}"));
            let outcome = crate::compare::run_round(&load.base, spec, dir, &relative, warmup);
            on_run(CheckEvent {
                warmup: true,
                rounds: settings.warmup_rounds,
                side: label,
                outcome: &outcome,
            });
            if outcome.result.is_none() {
                // A server that cannot start will not start in the rounds either.
                report.problems.push(problem(label, "warm-up", &outcome));
                return Ok(comparison);
            }
        }
    }

    for round in 1..=settings.max_rounds {
        // A B, then B A: whichever side runs second in a round gets the warmer machine, and
        // alternating gives that to each side alike.
        let order: Vec<_> = if round % 2 == 1 {
            sides.clone()
        } else {
            sides.iter().rev().cloned().collect()
        };
        for (index, label, spec) in order {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let relative = PathBuf::from(label).join(format!("round-{round}"));
            let outcome = crate::compare::run_round(&load.base, spec, dir, &relative, round);
            on_run(CheckEvent {
                warmup: false,
                rounds: settings.max_rounds,
                side: label,
                outcome: &outcome,
            });
            if outcome.valid != Some(true) {
                report
                    .problems
                    .push(problem(label, &format!("round {round}"), &outcome));
            }
            comparison.servers[index].rounds.push(outcome);
        }
        if stop.load(Ordering::Relaxed) {
            report
                .problems
                .push(format!("stopped by Ctrl-C or SIGTERM in round {round}"));
        }
        comparison.summarize();
        comparison.write_atomically(&json_path)?;
        report.rounds = comparison.servers[candidate_index]
            .rounds
            .iter()
            .filter(|r| r.valid == Some(true))
            .count() as u32;
        report.metrics = metric_checks(load, &comparison, settings.look_confidence());
        report.outcome = report.decide_outcome();
        report.write_atomically(&check_path)?;
        if !report.problems.is_empty() {
            // An invalid run makes the check invalid whatever follows: say so now.
            break;
        }
        let decided = !matches!(load.baseline, Baseline::Nothing)
            && report.metrics.iter().all(|m| m.verdict.is_decided());
        if settings.is_look(round) && decided {
            report.stopped_early = round < settings.max_rounds;
            break;
        }
    }
    Ok(comparison)
}

/// The first line where the saved scenario text and this one differ, as `` `there` saved,
/// `here` now ``; `None` when they are the same.
fn first_difference(saved: &str, here: &str) -> Option<String> {
    let mut saved_lines = saved.lines();
    let mut here_lines = here.lines();
    loop {
        match (saved_lines.next(), here_lines.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => {
                return Some(format!(
                    "`{}` saved, `{}` now",
                    a.unwrap_or("(nothing)"),
                    b.unwrap_or("(nothing)")
                ))
            }
        }
    }
}

/// A problem line: which side, which round, what happened.
fn problem(label: &str, round: &str, outcome: &RoundOutcome) -> String {
    format!(
        "{round}, {label}: {}",
        outcome.problem.as_deref().unwrap_or("invalid measurement")
    )
}

/// Every metric's check over the rounds so far, at `confidence`.
fn metric_checks(load: &LoadCheck, comparison: &Comparison, confidence: f64) -> Vec<MetricCheck> {
    let candidate = comparison.servers.last().expect("the candidate has a row");
    load.thresholds
        .iter()
        .map(|(metric, threshold)| {
            let higher_is_better = METRICS
                .iter()
                .find(|m| m.id == metric)
                .is_some_and(|m| m.better == Better::Higher);
            let (baseline_values, candidate_values, change) = match &load.baseline {
                Baseline::Run(_) => {
                    let (a, b) = paired_values(&comparison.servers[0], candidate, metric);
                    let change = paired_change(&a, &b, confidence);
                    (a, b, change)
                }
                Baseline::Saved(saved) => {
                    let a = saved.values(metric);
                    let b = valid_values(candidate, metric);
                    let change = unpaired_change(&a, &b, confidence);
                    (a, b, change)
                }
                Baseline::Nothing => (Vec::new(), valid_values(candidate, metric), None),
            };
            MetricCheck {
                metric: metric.clone(),
                higher_is_better,
                threshold: *threshold,
                baseline: baseline_values,
                candidate: candidate_values,
                change,
                verdict: verdict(change, *threshold, higher_is_better),
            }
        })
        .collect()
}

/// The metric's values of the rounds where both sides measured validly, in round order.
fn paired_values(
    baseline: &ServerRows,
    candidate: &ServerRows,
    metric: &str,
) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for round in baseline.rounds.iter().filter(|r| r.valid == Some(true)) {
        let other = candidate
            .rounds
            .iter()
            .find(|r| r.round == round.round && r.valid == Some(true));
        if let (Some(x), Some(y)) = (
            round.values.get(metric),
            other.and_then(|r| r.values.get(metric)),
        ) {
            a.push(*x);
            b.push(*y);
        }
    }
    (a, b)
}

fn valid_values(rows: &ServerRows, metric: &str) -> Vec<f64> {
    rows.rounds
        .iter()
        .filter(|r| r.valid == Some(true))
        .filter_map(|r| r.values.get(metric).copied())
        .collect()
}

/// Saves the candidate's valid rounds under `name`; `None` (and a problem) when there are none.
fn save_candidate(
    plan: &CheckPlan,
    load: &LoadCheck,
    name: &str,
    comparison: &Comparison,
    report: &mut CheckReport,
) -> Result<Option<PathBuf>, CheckError> {
    let candidate = comparison.servers.last().expect("the candidate has a row");
    let rounds: Vec<BTreeMap<String, f64>> = candidate
        .rounds
        .iter()
        .filter(|r| r.valid == Some(true))
        .map(|r| r.values.clone())
        .collect();
    if rounds.is_empty() {
        report.problems.push(format!(
            "--save-baseline {name}: the candidate has no valid round to save"
        ));
        return Ok(None);
    }
    let scenario_toml = toml::to_string(&load.base.scenario).unwrap_or_default();
    let file = baseline::save(
        &plan.out,
        baseline::ToSave {
            name,
            scenario_name: &load.base.scenario.name,
            scenario_toml: &scenario_toml,
            server: &load.candidate.what,
            command_line: &plan.command_line,
            rounds,
        },
    )?;
    Ok(Some(file))
}

/// Joins the two builds' instruction counts by benchmark.
fn compare_instructions(plan: &InstructionsPlan) -> Result<Vec<InstructionCheck>, CheckError> {
    let baseline = instructions::read_instruction_counts(&plan.baseline)?;
    let candidate = instructions::read_instruction_counts(&plan.candidate)?;
    let mut by_bench: BTreeMap<&str, (Option<u64>, Option<u64>)> = BTreeMap::new();
    for count in &baseline {
        by_bench.entry(&count.bench).or_default().0 = Some(count.instructions);
    }
    for count in &candidate {
        by_bench.entry(&count.bench).or_default().1 = Some(count.instructions);
    }
    Ok(by_bench
        .into_iter()
        .map(|(bench, (a, b))| {
            let change = match (a, b) {
                (Some(a), Some(b)) if a > 0 => Some(b as f64 / a as f64 - 1.0),
                _ => None,
            };
            InstructionCheck {
                bench: bench.to_string(),
                baseline: a,
                candidate: b,
                threshold: plan.threshold,
                change,
                verdict: change.map_or(Verdict::Inconclusive, |c| {
                    instruction_verdict(c, plan.threshold)
                }),
            }
        })
        .collect())
}

fn create_dir(dir: &Path) -> Result<(), CheckError> {
    std::fs::create_dir_all(dir).map_err(|error| CheckError::Directory {
        path: dir.to_path_buf(),
        error,
    })
}

/// Writes `text` atomically (`reports::files::write_atomically`): CI never reads half a file.
fn write_file(path: &Path, text: &str) -> Result<(), CheckError> {
    reports::files::write_atomically(path, text.as_bytes()).map_err(|error| CheckError::Output {
        path: path.to_path_buf(),
        error,
    })
}

impl CheckError {
    /// True when the check measured but a file could not be written (a full disk): `loadgen`
    /// exits 4 then, not 2.
    pub fn is_write(&self) -> bool {
        match self {
            CheckError::Output { .. } | CheckError::Junit(_) => true,
            CheckError::File(error) => error.is_write(),
            CheckError::Usage(_) | CheckError::Instructions(_) | CheckError::Directory { .. } => {
                false
            }
        }
    }
}

impl CheckOutput {
    /// The exit status CI reads (see [`reports::check::Outcome::exit_status`]).
    pub fn exit_status(&self) -> i32 {
        self.report.outcome.exit_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[(u32, Option<f64>, bool)]) -> ServerRows {
        ServerRows {
            name: "x".into(),
            rounds: values
                .iter()
                .map(|&(round, value, valid)| RoundOutcome {
                    round,
                    valid: Some(valid),
                    values: value
                        .map(|v| [("ops_per_s".to_string(), v)].into_iter().collect())
                        .unwrap_or_default(),
                    ..RoundOutcome::default()
                })
                .collect(),
            ..ServerRows::default()
        }
    }

    #[test]
    fn only_rounds_valid_on_both_sides_are_paired() {
        let baseline = rows(&[
            (1, Some(1.0), true),
            (2, Some(2.0), false),
            (3, Some(3.0), true),
        ]);
        let candidate = rows(&[
            (1, Some(10.0), true),
            (2, Some(20.0), true),
            (3, None, true),
        ]);
        let (a, b) = paired_values(&baseline, &candidate, "ops_per_s");
        assert_eq!((a, b), (vec![1.0], vec![10.0]));
    }

    #[test]
    fn an_outcome_word_per_exit_status() {
        use reports::check::Outcome;
        assert_eq!(Outcome::Pass.exit_status(), 0);
        assert_eq!(Outcome::Regression.exit_status(), 1);
    }
}
