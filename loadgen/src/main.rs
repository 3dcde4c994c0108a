//! The `loadgen` binary: parse the command line, dispatch, and end with one of the documented
//! exit statuses ([`ExitStatus`], README "Exit statuses and faults"): a failure prints one
//! message naming its culprit on stderr, and Ctrl-C or SIGTERM end the process by that signal
//! once what was measured is written.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::anyhow;
use clap::Parser;
use loadgen::cli::{
    CheckArgs, Cli, Command, ExitStatus, PlanArgs, RunFlags, ServeArgs, ShardFlags,
};
use loadgen::run::RunError;
use loadgen::shard::{shard_from_environment, ShardError, ShardPart, ShardRole};
use reports::check::Outcome;

fn main() {
    let cli = Cli::parse();
    let status = match dispatch(cli.command) {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("Error: {:#}", failure.error);
            failure.status
        }
    };
    let _ = std::io::stdout().flush();
    if let Some(signal) = caught_signal() {
        // Die of the signal, as a program that did not catch it would: a shell loop or `make`
        // running the loadgen then stops too (POSIX.1-2017 XCU 2.11 and 2.8.2: the caller sees
        // a death by signal, 128 + N in `$?`: 130 for SIGINT, 143 for SIGTERM).
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    std::process::exit(status as i32);
}

/// A command that ended in failure: its exit status and the message for stderr.
struct Failure {
    status: ExitStatus,
    error: anyhow::Error,
}

impl Failure {
    /// Nothing was measured: a usage, configuration or set-up error (exit status 2).
    fn refused(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::Refused,
            error: error.into(),
        }
    }

    /// Something was measured but a file of it could not be written (exit status 4).
    fn not_written(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::NotWritten,
            error: error.into(),
        }
    }

    /// Exit status 4 for a failed write (`is_write`), else 2.
    fn refused_or_not_written(error: impl Into<anyhow::Error>, is_write: bool) -> Failure {
        if is_write {
            Failure::not_written(error)
        } else {
            Failure::refused(error)
        }
    }
}

/// The signal number a handler stored, 0 while none came.
fn signal_slot() -> &'static Arc<AtomicUsize> {
    static SLOT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    SLOT.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// SIGINT or SIGTERM, if one came while the load ran.
fn caught_signal() -> Option<i32> {
    match signal_slot().load(Ordering::Relaxed) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// The signal's name as a user knows it.
fn signal_words(signal: i32) -> &'static str {
    if signal == signal_hook::consts::SIGINT {
        "SIGINT (Ctrl-C)"
    } else {
        "SIGTERM"
    }
}

/// Says on stderr that a signal ended the command, and where what was measured is.
fn say_interrupted(kept: &str) {
    if let Some(signal) = caught_signal() {
        eprintln!(
            "Interrupted by {}: the load was stopped and so was the server under test; {kept}",
            signal_words(signal)
        );
    }
}

/// The plan of one run of `scenario` with the shared flags applied; `--out` is checked before
/// anything starts. Ctrl-C ends the load and still writes what was measured (the server under
/// test leads a process group of its own, so the signal reaches only us, and we stop it).
fn run_plan(scenario: &Path, flags: &RunFlags) -> anyhow::Result<loadgen::run::RunPlan> {
    let mut plan = loadgen::run::RunPlan::load(scenario, &flags.overrides())?;
    // Absolute: a real server resolves relative paths in its configuration against its own
    // directory (Apache's `-f` under `-d`), so a relative `runs/...` would be doubled.
    plan.out = std::path::absolute(&flags.out)?;
    loadgen::run::output::check_writable(&plan.out)?;
    plan.builtin_exe = std::env::current_exe()?;
    plan.private_netns = !flags.watch.no_netns;
    plan.sample_interval = flags.watch.sample_interval;
    plan.progress = !flags.watch.quiet;
    stop_on_signals(&plan.stop)?;
    Ok(plan)
}

/// Ctrl-C (SIGINT) and a CI job's cancel or timeout (SIGTERM) set `stop`: the load ends, what
/// was measured is written and marked interrupted, the server under test is stopped rather
/// than left running, and `main` then ends the process by the same signal.
fn stop_on_signals(stop: &Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(stop))?;
        signal_hook::flag::register_usize(signal, Arc::clone(signal_slot()), signal as usize)?;
    }
    Ok(())
}

fn dispatch(command: Command) -> Result<ExitStatus, Failure> {
    match command {
        Command::Run(args) => run(&args.scenario, &args.flags, &args.shard),
        Command::Compare(args) => {
            let mut base = run_plan(&args.scenario, &args.flags).map_err(Failure::refused)?;
            // One progress line per run, not a live one per point: the runs are many.
            base.progress = false;
            let plan = loadgen::compare::ComparePlan {
                base,
                servers: args
                    .servers
                    .iter()
                    .map(|name| loadgen::compare::CompareServer::named(name))
                    .collect(),
                rounds: args.repeat,
                dir: None,
            };
            let quiet = args.flags.watch.quiet;
            let output = loadgen::compare::compare(&plan, |event| {
                if !quiet {
                    eprintln!(
                        "{}",
                        reports::render::text::round_line(
                            event.outcome,
                            event.rounds,
                            event.server
                        )
                    );
                }
            })
            .map_err(|error| {
                let is_write = error.is_write();
                Failure::refused_or_not_written(error, is_write)
            })?;
            reports::render::text::print_comparison(
                &output.comparison,
                &mut std::io::stdout().lock(),
            );
            let json = output.dir.join("comparison.json");
            println!("comparison: {}", json.display());
            println!("report: {}", output.report.display());
            say_interrupted(&format!(
                "the rounds that ran are in {}, the one cut short marked interrupted",
                json.display()
            ));
            let without = output
                .comparison
                .servers
                .iter()
                .filter(|s| s.valid_rounds() == 0)
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>();
            if without.is_empty() {
                return Ok(ExitStatus::Success);
            }
            eprintln!(
                "Invalid measurement: no valid round for {} (the rows above say why)",
                without.join(", ")
            );
            Ok(ExitStatus::Invalid)
        }
        Command::Claims(args) => {
            let file = loadgen::claims::plan::ClaimsFile::load(&args.claims_file)
                .map_err(Failure::refused)?;
            let out = std::path::absolute(&args.out).map_err(Failure::refused)?;
            loadgen::run::output::check_writable(&out).map_err(Failure::refused)?;
            let plan = loadgen::claims::ClaimsPlan {
                file,
                path: args.claims_file.clone(),
                quick: args.quick,
                out,
                builtin_exe: std::env::current_exe().map_err(Failure::refused)?,
                private_netns: !args.watch.no_netns,
                sample_interval: args.watch.sample_interval,
                stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                command_line: std::env::args().collect::<Vec<_>>().join(" "),
            };
            stop_on_signals(&plan.stop).map_err(Failure::refused)?;
            let quiet = args.watch.quiet;
            let output = loadgen::claims::claims(&plan, |event| {
                if !quiet {
                    eprintln!(
                        "{}: {}",
                        event.measurement,
                        reports::render::text::round_line(
                            event.run.outcome,
                            event.run.rounds,
                            event.run.server
                        )
                    );
                }
            })
            .map_err(|error| {
                let is_write = error.is_write();
                Failure::refused_or_not_written(error, is_write)
            })?;
            reports::render::text::print_claims(&output.report, &mut std::io::stdout().lock());
            let json = output.dir.join("claims.json");
            println!("claims: {}", json.display());
            println!("report: {}", output.page.display());
            say_interrupted(&format!(
                "the measurements that ran are in {}, the others marked not run",
                json.display()
            ));
            let problems = output
                .report
                .measurements
                .iter()
                .filter(|m| m.problem.is_some())
                .count();
            if problems == 0 && output.incomplete_servers == 0 {
                return Ok(ExitStatus::Success);
            }
            eprintln!(
                "Invalid measurement: {problems} measurements could not run and {} servers have \
                 no valid round (the rows above say why)",
                output.incomplete_servers
            );
            Ok(ExitStatus::Invalid)
        }
        Command::Check(args) => check(args),
        Command::Report(args) => {
            let mut results = Vec::new();
            for path in &args.results {
                results.push(reports::model::RunResult::read(path).map_err(Failure::refused)?);
            }
            let page_name = match args.results.as_slice() {
                [_] => "report.html",
                _ => "comparison.html",
            };
            let out = match (&args.out, args.results.as_slice()) {
                // An existing folder gets the page inside it, as `cp FILE DIR` would.
                (Some(out), _) if out.is_dir() => out.join(page_name),
                (Some(out), _) => out.clone(),
                (None, [one]) => one.with_file_name(page_name),
                (None, _) => page_name.into(),
            };
            // The page's folder must be writable before anything is rendered: exit 2, not 4.
            let folder = match out.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            loadgen::run::output::check_writable(&folder).map_err(Failure::refused)?;
            reports::render::write_report(&out, &results)
                .map_err(|e| Failure::not_written(anyhow!("writing {}: {e}", out.display())))?;
            println!("report: {}", out.display());
            Ok(ExitStatus::Success)
        }
        Command::Fileset(args) => {
            let out = std::path::absolute(&args.out).map_err(Failure::refused)?;
            loadgen::run::output::check_writable(&out).map_err(Failure::refused)?;
            let summary =
                loadgen::specweb96::fileset::write_fileset(&args.out, args.dirs, args.seed)
                    .map_err(|error| {
                        let is_write = error.kind() != std::io::ErrorKind::InvalidInput;
                        Failure::refused_or_not_written(error, is_write)
                    })?;
            println!(
                "{} directories, {} files, {} bytes in {} ({} written, {} already there)",
                summary.dirs,
                summary.files,
                summary.total_bytes,
                args.out.display(),
                summary.files_written,
                summary.files_skipped
            );
            Ok(ExitStatus::Success)
        }
        Command::Plan(args) => plan(&args),
        Command::Serve(args) => serve(&args),
        Command::Merge(args) => loadgen::merge::command(&args).map_err(|failure| Failure {
            status: failure.status,
            error: failure.error,
        }),
        Command::ServeBuiltin { args } => {
            let argv = std::iter::once("afterburner".to_string()).chain(args);
            let config = afterburner::cli::Args::parse_config_from(argv);
            if let Err(error) = afterburner::run(&config) {
                eprintln!("afterburner: error: {error:#}");
                std::process::exit(2);
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// `loadgen run`'s part of a sharded run from its flags: `None` without `--shard`/`--shards`;
/// refused when a sharded run lacks `--start-at` or `--target`, or they come without a shard.
fn generator_part(shard: &ShardFlags) -> Result<Option<ShardPart>, ShardError> {
    let spec = match (shard.shard, shard.shards) {
        (Some(spec), _) => spec,
        (None, Some(count)) => shard_from_environment(count, |name| std::env::var(name).ok())?,
        (None, None) => {
            // The environment may carry LOADGEN_START_AT or LOADGEN_TARGET for another
            // command; only the flags themselves are refused without a shard.
            let given = |flag: &str| std::env::args().any(|arg| arg.starts_with(flag));
            if given("--start-at") {
                return Err(ShardError::NotSharded("--start-at"));
            }
            if given("--target") {
                return Err(ShardError::NotSharded("--target"));
            }
            return Ok(None);
        }
    };
    let start_at = shard
        .start_at
        .ok_or(ShardError::Missing("--start-at (or LOADGEN_START_AT)"))?;
    let target = shard
        .target
        .clone()
        .ok_or(ShardError::Missing("--target (or LOADGEN_TARGET)"))?;
    Ok(Some(ShardPart {
        role: ShardRole::Generator {
            shard: spec,
            target,
        },
        start_at,
    }))
}

/// `loadgen run`: the summary on stdout, then one line on stderr when the run is not a clean
/// success, saying why.
fn run(scenario: &Path, flags: &RunFlags, shard: &ShardFlags) -> Result<ExitStatus, Failure> {
    let mut plan = run_plan(scenario, flags).map_err(Failure::refused)?;
    plan.part = generator_part(shard).map_err(Failure::refused)?;
    if let Some(dir) = &shard.run_dir {
        plan.run_dir = Some(std::path::absolute(dir).map_err(Failure::refused)?);
    }
    run_and_report(scenario, &plan)
}

/// `loadgen serve`: the server side of a sharded run, written as a run is.
fn serve(args: &ServeArgs) -> Result<ExitStatus, Failure> {
    let mut plan = run_plan(&args.scenario, &args.flags).map_err(Failure::refused)?;
    plan.part = Some(ShardPart {
        role: ShardRole::Server {
            listen: args.listen,
        },
        start_at: args.start_at,
    });
    if let Some(dir) = &args.run_dir {
        plan.run_dir = Some(std::path::absolute(dir).map_err(Failure::refused)?);
    }
    if plan.progress {
        eprintln!(
            "serving {} on {} for the generators; its first load point begins at {}",
            plan.scenario.name,
            args.listen,
            humantime::format_rfc3339_millis(args.start_at)
        );
    }
    run_and_report(&args.scenario, &plan)
}

/// `loadgen plan`: one shard's share, printed; nothing runs.
fn plan(args: &PlanArgs) -> Result<ExitStatus, Failure> {
    let scenario =
        loadgen::scenario::Scenario::load_with_overrides(&args.scenario, &args.flags.overrides())
            .map_err(Failure::refused)?;
    loadgen::shard::check_shardable(&scenario, args.shard)
        .map_err(|error| Failure::refused(anyhow!("{}: {error}", args.scenario.display())))?;
    print!("{}", loadgen::shard::plan_text(&scenario, args.shard));
    Ok(ExitStatus::Success)
}

/// Runs `plan` and prints its summary and, when it is not a clean success, why.
fn run_and_report(scenario: &Path, plan: &loadgen::run::RunPlan) -> Result<ExitStatus, Failure> {
    let output = match loadgen::run::run(plan) {
        Ok(output) => output,
        Err(RunError::NotWritten {
            error,
            kept,
            result,
        }) => {
            // What was measured, at least on the terminal.
            reports::render::text::print_summary(&result, &mut std::io::stdout().lock());
            let error = RunError::NotWritten {
                error,
                kept,
                result,
            };
            return Err(Failure::not_written(error));
        }
        Err(RunError::Server(error)) => {
            // A generator shard's server is its --target, not the scenario's [server].
            let culprit = match plan.part.as_ref().and_then(ShardPart::target) {
                Some(_) => "--target (or LOADGEN_TARGET; is `loadgen serve` running there?)".into(),
                None => format!("scenario {}: [server]", scenario.display()),
            };
            return Err(Failure::refused(anyhow!("{culprit}: {error}")));
        }
        Err(error) => return Err(Failure::refused(error)),
    };
    let result = &output.result;
    reports::render::text::print_summary(result, &mut std::io::stdout().lock());
    println!("result: {}", output.result_path.display());
    if output.report_not_written.is_none() {
        println!(
            "report: {}",
            output.result_path.with_file_name("report.html").display()
        );
    }
    if result.interrupted && caught_signal().is_some() {
        say_interrupted(&format!(
            "what was measured is in {}, marked interrupted",
            output.result_path.display()
        ));
    } else if !result.valid {
        // The first reason is the cause (a stop comes first); the summary above has them all.
        eprintln!(
            "Invalid measurement: {}",
            result.invalid_reasons.first().map_or("", String::as_str)
        );
        eprintln!(
            "{} is in {}, marked invalid{}",
            if result.partial {
                "What was measured up to then"
            } else {
                "What was measured"
            },
            output.result_path.display(),
            if result.partial { " and partial" } else { "" }
        );
    }
    if let Some(why) = &output.report_not_written {
        eprintln!(
            "Error: {why}; {} is whole: `loadgen report {} --out OTHER.html` renders it",
            output.result_path.display(),
            output.result_path.display()
        );
        return Ok(ExitStatus::NotWritten);
    }
    Ok(if result.valid {
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    })
}

/// `loadgen check`: 0 pass, 1 regression, 2 usage or configuration error, 3 invalid, 4 a file
/// not written; Ctrl-C and SIGTERM end it by the signal, as every command.
fn check(args: CheckArgs) -> Result<ExitStatus, Failure> {
    let base = match &args.scenario {
        Some(scenario) => {
            let mut plan = run_plan(scenario, &args.flags).map_err(Failure::refused)?;
            // One progress line per run, not a live one per point.
            plan.progress = false;
            Some(plan)
        }
        None => None,
    };
    let out = std::path::absolute(&args.flags.out).map_err(Failure::refused)?;
    loadgen::run::output::check_writable(&out).map_err(Failure::refused)?;
    let request = loadgen::check::CheckRequest {
        baseline: args.baseline,
        candidate: args.candidate,
        rounds: args.rounds,
        min_rounds: args.min_rounds,
        warmup_rounds: args.warmup_rounds,
        thresholds: args.threshold,
        instructions: args
            .instructions
            .map(|dirs| (dirs[0].clone(), dirs[1].clone())),
        instructions_threshold: args.instructions_threshold,
        save_baseline: args.save_baseline,
    };
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let plan = loadgen::check::CheckPlan::new(request, base, out, command_line)
        .map_err(Failure::refused)?;
    let quiet = args.flags.watch.quiet;
    let output = loadgen::check::check(&plan, |event| {
        if !quiet {
            let line = reports::render::text::round_line(event.outcome, event.rounds, event.side);
            let warmup = if event.warmup { "warm-up " } else { "" };
            eprintln!("{warmup}{line}");
        }
    })
    .map_err(|error| {
        let is_write = error.is_write();
        Failure::refused_or_not_written(error, is_write)
    })?;
    println!("{}", output.summary.trim_end());
    println!();
    let json = output.dir.join("check.json");
    println!("check: {}", json.display());
    println!("summary: {}", output.dir.join("check.md").display());
    println!("junit: {}", output.dir.join("junit.xml").display());
    if let Some(page) = &output.comparison_page {
        println!("report: {}", page.display());
    }
    if let Some(saved) = &output.saved_baseline {
        println!("saved baseline: {}", saved.display());
    }
    say_interrupted(&format!(
        "the rounds that ran are in {}, the check marked invalid",
        json.display()
    ));
    Ok(match output.report.outcome {
        Outcome::Pass => ExitStatus::Success,
        Outcome::Regression => ExitStatus::Regression,
        Outcome::Invalid => ExitStatus::Invalid,
    })
}
