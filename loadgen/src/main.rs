//! The `loadgen` binary: parse the command line, dispatch, print `Error: ...` and exit 1 on failure.

use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use loadgen::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    if let Err(error) = dispatch(cli.command) {
        eprintln!("Error: {error:#}");
        std::process::exit(1);
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => {
            let mut plan = loadgen::run::RunPlan::load(&args.scenario, &args.overrides())?;
            plan.out = args.out.clone();
            plan.builtin_exe = std::env::current_exe()?;
            plan.private_netns = !args.no_netns;
            plan.sample_interval = args.sample_interval;
            plan.progress = !args.quiet;
            // Ctrl-C ends the load and still writes the result; the server under test leads a
            // process group of its own, so the signal reaches only us, and we stop it.
            signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&plan.stop))?;
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
