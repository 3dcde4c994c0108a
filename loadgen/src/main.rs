//! The `loadgen` binary: parse the command line, dispatch, print `Error: ...` and exit 1 on failure.

use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use loadgen::cli::{CheckArgs, Cli, Command, RunFlags};

fn main() {
    let cli = Cli::parse();
    if let Err(error) = dispatch(cli.command) {
        eprintln!("Error: {error:#}");
        std::process::exit(1);
    }
}

/// The plan of one run of `scenario` with the shared flags applied; Ctrl-C ends the load and
/// still writes what was measured (the server under test leads a process group of its own, so
/// the signal reaches only us, and we stop it).
fn run_plan(scenario: &std::path::Path, flags: &RunFlags) -> Result<loadgen::run::RunPlan> {
    let mut plan = loadgen::run::RunPlan::load(scenario, &flags.overrides())?;
    // Absolute: a real server resolves relative paths in its configuration against its own
    // directory (Apache's `-f` under `-d`), so a relative `runs/...` would be doubled.
    plan.out = std::path::absolute(&flags.out)?;
    plan.builtin_exe = std::env::current_exe()?;
    plan.private_netns = !flags.watch.no_netns;
    plan.sample_interval = flags.watch.sample_interval;
    plan.progress = !flags.watch.quiet;
    stop_on_signals(&plan.stop)?;
    Ok(plan)
}

/// Ctrl-C (SIGINT) and a CI job's cancel or timeout (SIGTERM) set `stop`: the load ends, what
/// was measured is written and marked interrupted, and the server under test is stopped rather
/// than left running.
fn stop_on_signals(stop: &Arc<std::sync::atomic::AtomicBool>) -> Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(stop))?;
    }
    Ok(())
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => {
            let plan = run_plan(&args.scenario, &args.flags)?;
            let output = loadgen::run::run(&plan)?;
            reports::render::text::print_summary(&output.result, &mut std::io::stdout().lock());
            println!("result: {}", output.result_path.display());
            let report = output.result_path.with_file_name("report.html");
            if report.exists() {
                println!("report: {}", report.display());
            }
            if !output.result.valid {
                std::process::exit(3);
            }
            Ok(())
        }
        Command::Compare(args) => {
            let mut base = run_plan(&args.scenario, &args.flags)?;
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
            })?;
            reports::render::text::print_comparison(
                &output.comparison,
                &mut std::io::stdout().lock(),
            );
            println!(
                "comparison: {}",
                output.dir.join("comparison.json").display()
            );
            println!("report: {}", output.report.display());
            if output
                .comparison
                .servers
                .iter()
                .any(|s| s.valid_rounds() == 0)
            {
                std::process::exit(3);
            }
            Ok(())
        }
        Command::Claims(args) => {
            let plan = loadgen::claims::ClaimsPlan {
                file: loadgen::claims::plan::ClaimsFile::load(&args.claims_file)?,
                path: args.claims_file.clone(),
                quick: args.quick,
                out: std::path::absolute(&args.out)?,
                builtin_exe: std::env::current_exe()?,
                private_netns: !args.watch.no_netns,
                sample_interval: args.watch.sample_interval,
                stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                command_line: std::env::args().collect::<Vec<_>>().join(" "),
            };
            stop_on_signals(&plan.stop)?;
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
            })?;
            reports::render::text::print_claims(&output.report, &mut std::io::stdout().lock());
            println!("claims: {}", output.dir.join("claims.json").display());
            println!("report: {}", output.page.display());
            if output
                .report
                .measurements
                .iter()
                .any(|m| m.problem.is_some())
                || output.incomplete_servers > 0
            {
                std::process::exit(3);
            }
            Ok(())
        }
        Command::Check(args) => check(args),
        Command::Report(args) => {
            let mut results = Vec::new();
            for path in &args.results {
                results.push(reports::model::RunResult::read(path)?);
            }
            let out = match (&args.out, args.results.as_slice()) {
                (Some(out), _) => out.clone(),
                (None, [one]) => one.with_file_name("report.html"),
                (None, _) => "comparison.html".into(),
            };
            reports::render::write_report(&out, &results)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            println!("report: {}", out.display());
            Ok(())
        }
        Command::Fileset(args) => {
            let summary =
                loadgen::specweb96::fileset::write_fileset(&args.out, args.dirs, args.seed)?;
            println!(
                "{} directories, {} files, {} bytes in {} ({} written, {} already there)",
                summary.dirs,
                summary.files,
                summary.total_bytes,
                args.out.display(),
                summary.files_written,
                summary.files_skipped
            );
            Ok(())
        }
        Command::ServeBuiltin { args } => {
            let argv = std::iter::once("afterburner".to_string()).chain(args);
            let config = afterburner::cli::Args::parse_config_from(argv);
            if let Err(error) = afterburner::run(&config) {
                eprintln!("afterburner: error: {error:#}");
                std::process::exit(2);
            }
            Ok(())
        }
    }
}

/// `loadgen check`: its own exit statuses (0 pass, 1 regression, 2 usage or configuration,
/// 3 invalid), so every error here exits 2 rather than `main`'s 1.
fn check(args: CheckArgs) -> Result<()> {
    let usage = |error: anyhow::Error| -> ! {
        eprintln!("Error: {error:#}");
        std::process::exit(2);
    };
    let base = match &args.scenario {
        Some(scenario) => {
            let mut plan = run_plan(scenario, &args.flags).unwrap_or_else(|e| usage(e));
            // One progress line per run, not a live one per point.
            plan.progress = false;
            Some(plan)
        }
        None => None,
    };
    let out = std::path::absolute(&args.flags.out).unwrap_or_else(|e| usage(e.into()));
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
        .unwrap_or_else(|e| usage(e.into()));
    let quiet = args.flags.watch.quiet;
    let output = loadgen::check::check(&plan, |event| {
        if !quiet {
            let line = reports::render::text::round_line(event.outcome, event.rounds, event.side);
            let warmup = if event.warmup { "warm-up " } else { "" };
            eprintln!("{warmup}{line}");
        }
    })
    .unwrap_or_else(|e| usage(e.into()));
    println!("{}", output.summary.trim_end());
    println!();
    println!("check: {}", output.dir.join("check.json").display());
    println!("summary: {}", output.dir.join("check.md").display());
    println!("junit: {}", output.dir.join("junit.xml").display());
    if let Some(page) = &output.comparison_page {
        println!("report: {}", page.display());
    }
    if let Some(saved) = &output.saved_baseline {
        println!("saved baseline: {}", saved.display());
    }
    std::process::exit(output.exit_status());
}
