//! The Markdown summary of a `loadgen check` (`check.md`), for CI pages (a GitHub job summary,
//! a merge-request comment) and the terminal: the outcome, how it was measured, and a table of
//! metrics and instruction counts with their verdicts.

use std::fmt::Write as _;

use super::format;
use crate::check::{CheckReport, Outcome, Pairing, Verdict};
use crate::prepare::METRICS;

/// `check.md`'s text.
pub fn check_summary(report: &CheckReport) -> String {
    let mut out = String::new();
    let outcome = match report.outcome {
        Outcome::Pass => "pass",
        Outcome::Regression => "REGRESSION",
        Outcome::Invalid => "INVALID MEASUREMENT",
    };
    let subject = if report.scenario_name.is_empty() {
        "instruction counts".to_string()
    } else {
        format!("scenario `{}`", report.scenario_name)
    };
    let _ = writeln!(out, "## loadgen check: {outcome} ({subject})\n");
    let _ = writeln!(
        out,
        "Baseline `{}`, candidate `{}`.",
        report.baseline, report.candidate
    );
    let settings = &report.settings;
    match &report.pairing {
        Pairing::InstructionsOnly => {}
        pairing => {
            let how = match pairing {
                Pairing::CandidateOnly => format!(
                    "{} rounds of the candidate alone, measured to be saved as a baseline; \
                     nothing compared",
                    report.rounds
                ),
                Pairing::Saved { name, saved_utc } => format!(
                    "{} rounds of the candidate against the baseline saved as `{name}` on \
                     {saved_utc} (unpaired: drift of the machine between the two sessions \
                     counts as change; Hodges–Lehmann change with the exact Mann–Whitney interval)",
                    report.rounds
                ),
                _ => format!(
                    "{} interleaved rounds (baseline then candidate, then the other way round) \
                     after {} warm-up round{} (Hodges–Lehmann change of the per-round ratios with \
                     the exact Wilcoxon signed-rank interval)",
                    report.rounds,
                    settings.warmup_rounds,
                    if settings.warmup_rounds == 1 { "" } else { "s" }
                ),
            };
            let stop = if report.stopped_early {
                format!(
                    "; stopped before the {} allowed because every verdict was certain",
                    settings.max_rounds
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{how}{stop}. Intervals at {:.2}% per look, {} over the {} looks (after rounds {}).\n",
                settings.look_confidence() * 100.0,
                format::percent(settings.confidence),
                settings.looks(),
                settings
                    .look_rounds()
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    if !report.metrics.is_empty() {
        let _ = writeln!(
            out,
            "| metric | threshold | baseline (median) | candidate (median) | change | interval | verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for check in &report.metrics {
            let metric = METRICS.iter().find(|m| m.id == check.metric);
            let (name, show): (String, Box<dyn Fn(f64) -> String>) = match metric {
                Some(metric) => {
                    let unit = format::quantity_unit(metric.quantity);
                    let name = if unit.is_empty() {
                        metric.name.to_string()
                    } else {
                        format!("{} ({unit})", metric.name)
                    };
                    (
                        name,
                        Box::new(move |v| format::quantity(metric.quantity, v)),
                    )
                }
                None => (check.metric.clone(), Box::new(format::compact)),
            };
            let median = |values: &[f64]| {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                match sorted.len() {
                    0 => format::MISSING.to_string(),
                    n if n % 2 == 1 => show(sorted[n / 2]),
                    n => show((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
                }
            };
            let (change, interval) = match check.change {
                Some(c) => (
                    format::change(c.estimate),
                    format!("{} … {}", format::change(c.low), format::change(c.high)),
                ),
                None if check.baseline.is_empty() || check.candidate.is_empty() => (
                    format::MISSING.to_string(),
                    if report.pairing == Pairing::CandidateOnly {
                        "nothing compared".to_string()
                    } else {
                        "not measured in any valid round".to_string()
                    },
                ),
                None => (
                    format::MISSING.to_string(),
                    "too few rounds for an interval".to_string(),
                ),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {change} | {interval} | {} |",
                format::percent(check.threshold),
                median(&check.baseline),
                median(&check.candidate),
                verdict_cell(check.verdict)
            );
        }
        let _ = writeln!(out);
    }

    if !report.instructions.is_empty() {
        let _ = writeln!(out, "### Instruction counts (callgrind)\n");
        let _ = writeln!(
            out,
            "| benchmark | threshold | baseline | candidate | change | verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        for bench in &report.instructions {
            let count = |n: Option<u64>| n.map_or("absent".to_string(), format::count);
            let (change, verdict) = match bench.change {
                Some(change) => (format::change(change), verdict_cell(bench.verdict)),
                None => (format::MISSING.to_string(), "not compared".to_string()),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {change} | {verdict} |",
                bench.bench,
                format::percent(bench.threshold),
                count(bench.baseline),
                count(bench.candidate)
            );
        }
        let _ = writeln!(out);
    }

    if !report.warnings.is_empty() {
        let _ = writeln!(out, "### Warnings\n");
        for warning in &report.warnings {
            let _ = writeln!(out, "- {warning}");
        }
        let _ = writeln!(out);
    }
    if !report.problems.is_empty() {
        let _ = writeln!(out, "### Why the measurement cannot be trusted\n");
        for problem in &report.problems {
            let _ = writeln!(out, "- {problem}");
        }
        let _ = writeln!(out);
    }
    out
}

fn verdict_cell(verdict: Verdict) -> String {
    match verdict {
        Verdict::Regressed => "**regressed**".to_string(),
        other => other.word().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Change, InstructionCheck, MetricCheck};

    #[test]
    fn the_summary_gives_outcome_rows_and_problems() {
        let report = CheckReport {
            scenario_name: "check".into(),
            baseline: "loop".into(),
            candidate: "./slow/afterburner".into(),
            rounds: 6,
            stopped_early: true,
            outcome: Outcome::Regression,
            metrics: vec![MetricCheck {
                metric: "server_cpu_us_per_op".into(),
                threshold: 0.05,
                baseline: vec![10.0, 10.2, 9.8],
                candidate: vec![11.0, 11.2, 10.8],
                change: Some(Change {
                    estimate: 0.1,
                    low: 0.08,
                    high: 0.12,
                    coverage: 0.99,
                }),
                verdict: Verdict::Regressed,
                ..MetricCheck::default()
            }],
            instructions: vec![InstructionCheck {
                bench: "server::cycle".into(),
                baseline: Some(1000),
                candidate: None,
                threshold: 0.01,
                change: None,
                verdict: Verdict::Inconclusive,
            }],
            problems: vec!["round 3, candidate: the server exited".into()],
            ..CheckReport::default()
        };
        let text = check_summary(&report);
        assert!(
            text.starts_with("## loadgen check: REGRESSION (scenario `check`)"),
            "{text}"
        );
        assert!(text.contains("| server CPU"), "{text}");
        assert!(
            text.contains("| 10.0 | 11.0 | +10% | +8.0% … +12% | **regressed** |"),
            "{text}"
        );
        assert!(text.contains("stopped before the 20 allowed"), "{text}");
        assert!(
            text.contains("| `server::cycle` | 1.0% | 1000 | absent |"),
            "{text}"
        );
        assert!(
            text.contains("- round 3, candidate: the server exited"),
            "{text}"
        );
    }
}
