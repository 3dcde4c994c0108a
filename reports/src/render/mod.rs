//! Self-contained HTML reports: one run (`render_run`) or several side by side
//! (`render_comparison`), written atomically by `write_report`. The pages are askama templates
//! (`templates/`, compiled in) filled by `html` with escaped text, tables and the inline SVG
//! charts of `plot`; no script, no font or style sheet from elsewhere, nothing fetched. The text
//! summary printed after a run is `text`; both write numbers through `format`, and a merged run's
//! table of its parts through `shards`. `loadgen check`'s CI outputs are `markdown` (`check.md`)
//! and `junit` (`junit.xml`).
//!
//! Not here: numbers (`prepare`), drawing (`plot`).

pub mod format;
mod html;
pub mod junit;
pub mod markdown;
mod shards;
pub mod text;

use std::path::Path;

use askama::Template;

use crate::claims::ClaimsReport;
use crate::comparison::Comparison;
use crate::model::RunResult;

/// The single-run page of `result`.
pub fn render_run(result: &RunResult) -> String {
    render(&html::RunPage::new(result))
}

/// The comparison page of `results`, run #1 being the baseline of every ratio. `labels` name the
/// runs in legends and tables; missing labels default to the scenario name and start time.
pub fn render_comparison(results: &[RunResult], labels: &[String]) -> String {
    let defaults = default_labels(results);
    let labels: Vec<String> = (0..results.len())
        .map(|n| {
            labels
                .get(n)
                .cloned()
                .unwrap_or_else(|| defaults[n].clone())
        })
        .collect();
    render(&html::ComparisonPage::new(results, &labels))
}

/// The page of a `loadgen compare`: the rounds table of `comparison`, then the side-by-side
/// sections over `results` (one representative run per server that has one) labelled `labels`.
pub fn render_rounds_comparison(
    comparison: &Comparison,
    results: &[RunResult],
    labels: &[String],
) -> String {
    render(&html::ComparisonPage::of_rounds(
        comparison, results, labels,
    ))
}

/// The page of a `loadgen claims`: the claims table of `report` and its measurements.
pub fn render_claims(report: &ClaimsReport) -> String {
    render(&html::ClaimsPage::new(report))
}

fn render(page: &impl Template) -> String {
    // Rendering into a String fails only when a filter does, and none of ours can.
    page.render()
        .expect("the report templates render into memory without error")
}

/// Writes the report of `results` to `path`: the single-run page for one result, the comparison
/// page for several. Atomic: a reader sees the old file or the whole new one, never a part.
pub fn write_report(path: &Path, results: &[RunResult]) -> std::io::Result<()> {
    let html = match results {
        [] => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no result to report on",
            ))
        }
        [one] => render_run(one),
        several => render_comparison(several, &default_labels(several)),
    };
    write_html(path, &html)
}

/// Writes `html` to `path` atomically ([`crate::files::write_atomically`]): a reader sees the
/// old file or the whole new one.
pub fn write_html(path: &Path, html: &str) -> std::io::Result<()> {
    crate::files::write_atomically(path, html.as_bytes())
}

/// Labels for runs: the scenario names when they tell the runs apart, else name and start time,
/// numbered when even that repeats.
pub fn default_labels(results: &[RunResult]) -> Vec<String> {
    let distinct = |labels: &[String]| {
        labels
            .iter()
            .enumerate()
            .all(|(i, l)| !labels[..i].contains(l))
    };
    let names: Vec<String> = results.iter().map(|r| r.scenario_name.clone()).collect();
    if distinct(&names) {
        return names;
    }
    let timed: Vec<String> = results
        .iter()
        .map(|r| format!("{} {}", r.scenario_name, r.started_utc))
        .collect();
    if distinct(&timed) {
        return timed;
    }
    timed
        .into_iter()
        .enumerate()
        .map(|(n, l)| format!("{l} ({})", n + 1))
        .collect()
}
