//! The askama templates of the HTML report (`templates/`) and the view models they are filled
//! with: the prepared figures of `prepare` arranged per page, table and row, and the number
//! formatters of `format` as template filters. Askama escapes every value it writes, so text
//! from a result (labels, scenario, error kinds) stays text.

use askama::Template;

use super::format;
use crate::claims::{ClaimRow, ClaimsReport, Verdict};
use crate::comparison::Comparison;
use crate::model::{IsolationMode, LoadPoint, PopulationResult, RunResult, ServerInfo};
use crate::plot::{self, Figure};
use crate::prepare::{
    self, Better, LittleRow, LiveView, LowEnd, MetricRow, PopulationAcross, SlowLineRow,
};

/// What every page's `<head>` and footer say.
pub(super) struct Page {
    title: String,
    /// The tool that wrote the result, for `<meta name="generator">` and the footer.
    generator: String,
    /// The result schema the footer names; `None` for a comparison of no run at all.
    schema_version: Option<u32>,
}

impl Page {
    fn of(title: String, result: Option<&RunResult>) -> Page {
        match result {
            Some(r) => Page {
                title,
                generator: format!("{} {} (reports)", r.tool, r.tool_version),
                schema_version: Some(r.schema_version),
            },
            None => Page {
                title,
                generator: "reports".into(),
                schema_version: None,
            },
        }
    }
}

/// The claims page of `loadgen claims`.
#[derive(Template)]
#[template(path = "claims.html")]
pub(super) struct ClaimsPage<'a> {
    page: Page,
    report: &'a ClaimsReport,
}

impl<'a> ClaimsPage<'a> {
    pub(super) fn new(report: &'a ClaimsReport) -> ClaimsPage<'a> {
        ClaimsPage {
            page: Page {
                title: format!("The 1999 claims, measured: {}", report.name),
                generator: "loadgen claims (reports)".into(),
                schema_version: Some(report.schema_version),
            },
            report,
        }
    }

    /// The verdict cell's class, for its colour.
    fn verdict_class(&self, row: &ClaimRow) -> &'static str {
        match row.verdict {
            Verdict::Holds | Verdict::HoldsInRatio => "holds",
            Verdict::DoesNotHold => "does-not-hold",
            Verdict::CannotBeMeasured => "cannot",
        }
    }
}

/// The single-run page.
#[derive(Template)]
#[template(path = "run.html")]
pub(super) struct RunPage<'a> {
    page: Page,
    result: &'a RunResult,
    /// The scenario's `description`, for the subtitle.
    description: Option<String>,
    /// Valid, not interrupted, no warning: the page says so in one green line.
    clean: bool,
    summary: Vec<SummaryRow<'a>>,
    /// Each population across the load points; `None` when no population ran in two.
    populations_across: Option<AcrossTable>,
    /// The sweep's curves; empty unless the run is a sweep.
    sweep: Vec<Figure>,
    points: Vec<PointView<'a>>,
    server: ServerView<'a>,
    generator: GeneratorView<'a>,
    /// The machine, field by field; `None` in results from before it was recorded.
    machine: Option<Vec<(String, String)>>,
    /// A merged run's parts, one row each; empty for a run on one generator.
    shards: Vec<super::shards::ShardRow>,
}

impl<'a> RunPage<'a> {
    pub(super) fn new(result: &'a RunResult) -> RunPage<'a> {
        let headline = prepare::headline_index(result);
        let points = result
            .load_points
            .iter()
            .enumerate()
            // A sweep opens its headline point only, so the page starts short.
            .map(|(n, point)| PointView::new(point, n, headline == Some(n)))
            .collect();
        let populations_across = (result.load_points.len() >= 2)
            .then(|| {
                let points: Vec<&LoadPoint> = result.load_points.iter().collect();
                let columns = points.iter().map(|p| p.label.clone()).collect();
                AcrossTable::new(&points, columns, "load point")
            })
            .flatten();
        RunPage {
            page: Page::of(
                format!("{} — {}", result.scenario_name, result.started_utc),
                Some(result),
            ),
            result,
            description: scenario_description(&result.scenario_toml),
            clean: is_clean(result),
            summary: SummaryRow::of(result),
            populations_across,
            sweep: plot::run_figures(result),
            points,
            server: ServerView::new(&result.server),
            generator: GeneratorView::new(result),
            machine: machine_fields(result),
            shards: super::shards::rows(result),
        }
    }
}

/// The comparison page: run #1 is the baseline of every ratio.
#[derive(Template)]
#[template(path = "comparison.html")]
pub(super) struct ComparisonPage<'a> {
    page: Page,
    runs: Vec<RunEntry<'a>>,
    /// No run is invalid, interrupted or warned about.
    all_clean: bool,
    /// The run labels, numbered, as the ratio table's column heads.
    columns: Vec<String>,
    ratios: Vec<RatioRow>,
    /// Each population across the runs, at each run's headline point.
    populations_across: Option<AcrossTable>,
    figures: Vec<Figure>,
    /// For `loadgen compare`: every server over its rounds; `None` for `loadgen report`.
    rounds: Option<RoundsView>,
}

impl<'a> ComparisonPage<'a> {
    /// The page of a `loadgen compare`: the rounds table of `comparison` first, then the
    /// side-by-side sections over `results`, one representative run per server that has one,
    /// labelled `labels`.
    pub(super) fn of_rounds(
        comparison: &Comparison,
        results: &'a [RunResult],
        labels: &[String],
    ) -> ComparisonPage<'a> {
        let mut page = ComparisonPage::new(results, labels);
        page.page.title = format!(
            "{}: {} servers over {} rounds",
            comparison.scenario_name,
            comparison.servers.len(),
            comparison.rounds
        );
        page.rounds = Some(RoundsView::new(comparison));
        page
    }

    pub(super) fn new(results: &'a [RunResult], labels: &[String]) -> ComparisonPage<'a> {
        let summaries: Vec<prepare::RunSummary> =
            results.iter().map(prepare::run_summary).collect();
        let rows = prepare::comparison_rows(&summaries);
        let runs: Vec<RunEntry> = results
            .iter()
            .zip(labels)
            .enumerate()
            .map(|(n, (result, label))| RunEntry {
                number: n + 1,
                label: label.clone(),
                result,
                colour: plot::hex(plot::style::colour(prepare::Hue::Index(n))),
                clean: is_clean(result),
                summary: SummaryRow::of(result),
                server: ServerView::new(&result.server),
            })
            .collect();
        let columns: Vec<String> = runs
            .iter()
            .map(|r| format!("#{} {}", r.number, r.label))
            .collect();
        let default = LoadPoint::default();
        // A run without a load point ran no population: its column says "not run".
        let headline_points: Vec<&LoadPoint> = results
            .iter()
            .map(|r| prepare::headline_point(r).unwrap_or(&default))
            .collect();
        ComparisonPage {
            page: Page::of(
                format!("Comparison of {} runs", results.len()),
                results.first(),
            ),
            all_clean: runs.iter().all(|r| r.clean),
            ratios: rows.iter().map(RatioRow::new).collect(),
            populations_across: AcrossTable::new(&headline_points, columns.clone(), "run"),
            columns,
            figures: plot::comparison_figures(&rows, results, labels),
            runs,
            rounds: None,
        }
    }

    /// The label of run #1, for the subtitle.
    fn baseline(&self) -> &str {
        self.runs.first().map_or("", |r| r.label.as_str())
    }
}

/// The rounds of a `loadgen compare`: each server's state, and each metric's median, spread and
/// ratio to the first server with its confidence interval.
struct RoundsView {
    rounds: u32,
    baseline: String,
    servers: Vec<RoundsServer>,
    rows: Vec<RoundsRow>,
}

/// One server's column head and state line.
struct RoundsServer {
    name: String,
    valid_rounds: usize,
    rounds: usize,
    problems: Vec<String>,
}

/// One metric across the servers.
struct RoundsRow {
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    /// Per server: `None` where it has no figure.
    cells: Vec<Option<RoundsCell>>,
}

/// One server's figure for one metric.
struct RoundsCell {
    median: String,
    /// `min–max`, `None` for a single round.
    spread: Option<String>,
    /// From invalid runs only.
    untrusted: bool,
    /// Against the baseline, with its interval as `[low–high]`.
    ratio: Option<(Ratio, Option<String>)>,
}

impl RoundsView {
    fn new(comparison: &Comparison) -> RoundsView {
        let servers = comparison
            .servers
            .iter()
            .map(|server| RoundsServer {
                name: server.name.clone(),
                valid_rounds: server.valid_rounds(),
                rounds: server.rounds.len(),
                problems: server.problems(),
            })
            .collect();
        let rows = prepare::METRICS
            .iter()
            .filter(|metric| {
                comparison
                    .servers
                    .iter()
                    .any(|s| s.metrics.contains_key(metric.id))
            })
            .map(|metric| RoundsRow {
                id: metric.id,
                name: metric.name,
                unit: format::quantity_unit(metric.quantity),
                cells: comparison
                    .servers
                    .iter()
                    .map(|server| {
                        let stats = server.metrics.get(metric.id)?;
                        let value = |v: f64| format::quantity(metric.quantity, v);
                        Some(RoundsCell {
                            median: value(stats.median),
                            spread: (stats.n > 1)
                                .then(|| format!("{}–{}", value(stats.min), value(stats.max))),
                            untrusted: !stats.trusted,
                            ratio: stats.ratio.as_ref().map(|r| {
                                let interval = r.low.zip(r.high).map(|(low, high)| {
                                    format!("[{}–{}]", format::times(low), format::times(high))
                                });
                                (Ratio::new(Some(r.ratio), metric.better), interval)
                            }),
                        })
                    })
                    .collect(),
            })
            .collect();
        RoundsView {
            rounds: comparison.rounds,
            baseline: comparison
                .servers
                .first()
                .map_or_else(String::new, |s| s.name.clone()),
            servers,
            rows,
        }
    }
}

/// One run of the comparison page.
struct RunEntry<'a> {
    /// From 1, as the page counts runs.
    number: usize,
    label: String,
    result: &'a RunResult,
    /// The run's colour in every chart, as `#RRGGBB`.
    colour: String,
    clean: bool,
    summary: Vec<SummaryRow<'a>>,
    server: ServerView<'a>,
}

/// Valid, not interrupted, and nothing to warn about.
fn is_clean(result: &RunResult) -> bool {
    result.valid
        && result.invalid_reasons.is_empty()
        && !result.interrupted
        && result.warnings.is_empty()
}

/// The scenario's `description = "..."`, read without a TOML parser (the report needs only this).
fn scenario_description(toml: &str) -> Option<String> {
    let line = toml
        .lines()
        .find(|l| l.trim_start().starts_with("description"))?;
    let value = line.split_once('=')?.1.trim();
    let value = value.strip_prefix('"')?;
    Some(value[..value.rfind('"')?].to_string())
}

/// One load point in the summary table: its totals and the latency of all its populations
/// pooled (`prepare::pooled_latency`, as the text summary gives it).
struct SummaryRow<'a> {
    point: &'a LoadPoint,
    /// p50, p90, p99, p99.9 and max (µs); `None` when nothing was recorded or decodes.
    latency_us: [Option<f64>; 5],
}

impl<'a> SummaryRow<'a> {
    fn of(result: &'a RunResult) -> Vec<SummaryRow<'a>> {
        result
            .load_points
            .iter()
            .map(|point| {
                let pooled = prepare::pooled_latency(point);
                let at = |f: fn(&prepare::PooledLatency) -> f64| pooled.as_ref().map(f);
                SummaryRow {
                    point,
                    latency_us: [
                        at(|l| l.p50_us),
                        at(|l| l.p90_us),
                        at(|l| l.p99_us),
                        at(|l| l.p999_us),
                        at(|l| l.max_us),
                    ],
                }
            })
            .collect()
    }
}

/// One load point's section: its tables and charts.
struct PointView<'a> {
    /// Index in the run, for the section's id and its charts' ids.
    n: usize,
    point: &'a LoadPoint,
    /// Shown unfolded: the headline point.
    open: bool,
    populations: Vec<PopulationRow<'a>>,
    /// Some population is on a slow line: the latency note says what that means.
    any_slow_line: bool,
    slow_lines: Vec<SlowLineRow>,
    little: Vec<LittleRow>,
    /// The live-viewer section, when the point had viewers or a live source.
    live: Option<LiveView>,
    figures: Vec<Figure>,
}

impl<'a> PointView<'a> {
    fn new(point: &'a LoadPoint, n: usize, open: bool) -> PointView<'a> {
        PointView {
            n,
            point,
            open,
            populations: point.populations.iter().map(PopulationRow::new).collect(),
            any_slow_line: point.populations.iter().any(|p| p.line.is_some()),
            slow_lines: prepare::slow_line_rows(point),
            little: prepare::little_rows(point),
            live: prepare::live_view(point),
            figures: plot::load_point_figures(point, &format!("p{n}")),
        }
    }
}

/// One population in a load point's populations table.
struct PopulationRow<'a> {
    p: &'a PopulationResult,
    /// The kind as a reader knows it.
    kind: &'a str,
    /// What `offered` counts.
    offered_unit: &'static str,
    /// Open loop only: how late the 99th percentile request was sent (µs).
    schedule_lag_p99_us: Option<f64>,
}

impl<'a> PopulationRow<'a> {
    fn new(p: &'a PopulationResult) -> PopulationRow<'a> {
        let (kind, offered_unit) = match p.kind.as_str() {
            "open" => ("open", "req/s"),
            "modem" => ("modem (slow line)", "users"),
            "viewer" => ("viewer (live stream)", "viewers"),
            other => (other, "clients"),
        };
        PopulationRow {
            p,
            kind,
            offered_unit,
            schedule_lag_p99_us: p
                .schedule_lag_us
                .as_ref()
                .filter(|h| h.count > 0)
                .map(|h| h.p99 as f64),
        }
    }
}

/// Each population across load points or runs, with ratios against the first column that ran
/// it.
struct AcrossTable {
    /// What a column is: `load point` or `run`.
    what: &'static str,
    groups: Vec<AcrossGroup>,
}

impl AcrossTable {
    /// `None` when no population ran in two of `points`.
    fn new(points: &[&LoadPoint], columns: Vec<String>, what: &'static str) -> Option<AcrossTable> {
        let rows = prepare::populations_across(points);
        (!rows.is_empty()).then(|| AcrossTable {
            what,
            groups: rows
                .iter()
                .map(|row| AcrossGroup::new(row, &columns))
                .collect(),
        })
    }
}

/// One population's rows of the across table, one per column.
struct AcrossGroup {
    population: String,
    rows: Vec<(String, Option<AcrossCell>)>,
}

impl AcrossGroup {
    fn new(row: &PopulationAcross, columns: &[String]) -> AcrossGroup {
        let base_column = row.cells.iter().position(Option::is_some);
        let base = base_column.and_then(|n| row.cells[n].as_ref());
        let rows = row
            .cells
            .iter()
            .zip(columns)
            .enumerate()
            .map(|(n, (cell, column))| {
                let cell = cell.as_ref().map(|c| {
                    // The baseline itself carries no ratio.
                    let against = |value: Option<f64>, of: Option<f64>, better| {
                        (base_column != Some(n)).then(|| {
                            Ratio::new(
                                value.zip(of).and_then(|(v, b)| prepare::ratio(v, b)),
                                better,
                            )
                        })
                    };
                    AcrossCell {
                        ops_ratio: against(
                            Some(c.ops_per_s),
                            base.map(|b| b.ops_per_s),
                            Better::Higher,
                        ),
                        p99_ratio: against(c.p99_us, base.and_then(|b| b.p99_us), Better::Lower),
                        cell: c.clone(),
                    }
                });
                (column.clone(), cell)
            })
            .collect();
        AcrossGroup {
            population: row.population.clone(),
            rows,
        }
    }
}

/// One population in one column, with its ratios to the baseline column.
struct AcrossCell {
    cell: prepare::PopulationCell,
    /// `None` in the baseline column.
    ops_ratio: Option<Ratio>,
    p99_ratio: Option<Ratio>,
}

/// A ratio against a baseline, judged by the figure's own direction.
struct Ratio {
    /// `None` when there is no baseline to divide by.
    value: Option<f64>,
    /// `better`, `worse` or `same`; `None` with no value.
    verdict: Option<&'static str>,
}

impl Ratio {
    fn new(value: Option<f64>, better: Better) -> Ratio {
        let verdict = value.map(|r| {
            let improved = match better {
                Better::Higher => r > 1.0,
                Better::Lower => r < 1.0,
            };
            // Within half a percent reads as the same: the ratio is shown to two decimals.
            if (r - 1.0).abs() < 0.005 {
                "same"
            } else if improved {
                "better"
            } else {
                "worse"
            }
        });
        Ratio { value, verdict }
    }
}

/// One metric of the comparison table, its values already written in the metric's unit.
struct RatioRow {
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    /// Per run: the value (`None` where the run lacks it) and, from run #2 on, its ratio.
    cells: Vec<(Option<String>, Option<Ratio>)>,
}

impl RatioRow {
    fn new(row: &MetricRow) -> RatioRow {
        let metric = row.metric;
        RatioRow {
            id: metric.id,
            name: metric.name,
            unit: format::quantity_unit(metric.quantity),
            cells: row
                .values
                .iter()
                .zip(&row.ratios)
                .enumerate()
                .map(|(n, (value, ratio))| {
                    let ratio = (n > 0).then(|| Ratio::new(*ratio, metric.better));
                    (value.map(|v| format::quantity(metric.quantity, v)), ratio)
                })
                .collect(),
        }
    }
}

/// The server block: its model and its own counters, pretty-printed.
struct ServerView<'a> {
    server: &'a ServerInfo,
    /// The server's `--stats` JSON, indented; `None` when it reported none.
    stats: Option<String>,
}

impl<'a> ServerView<'a> {
    fn new(server: &'a ServerInfo) -> ServerView<'a> {
        ServerView {
            server,
            stats: server.stats.as_ref().map(|stats| {
                serde_json::to_string_pretty(stats).unwrap_or_else(|_| stats.to_string())
            }),
        }
    }
}

/// The generator block.
struct GeneratorView<'a> {
    result: &'a RunResult,
    /// `2, 3`, or `not pinned`.
    cpus: String,
    addresses: SourceAddresses<'a>,
}

/// Where the clients' connections came from.
enum SourceAddresses<'a> {
    SystemChoice,
    One(&'a str),
    /// Folded: hundreds of addresses would fill the page.
    Many {
        first: &'a str,
        last: &'a str,
        count: usize,
        all: String,
    },
}

impl<'a> GeneratorView<'a> {
    fn new(result: &'a RunResult) -> GeneratorView<'a> {
        let g = &result.generator;
        let cpus = if g.cpus.is_empty() {
            "not pinned".to_string()
        } else {
            g.cpus
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let addresses = match g.source_addresses.as_slice() {
            [] => SourceAddresses::SystemChoice,
            [one] => SourceAddresses::One(one),
            many => SourceAddresses::Many {
                first: &many[0],
                last: &many[many.len() - 1],
                count: many.len(),
                all: many.join(" "),
            },
        };
        GeneratorView {
            result,
            cpus,
            addresses,
        }
    }
}

/// Where the run ran, every recorded field by its own name (which carries its unit), so the
/// table follows the model as fields are added; `None` when the result has no environment.
fn machine_fields(result: &RunResult) -> Option<Vec<(String, String)>> {
    let fields = result
        .environment
        .as_ref()
        .and_then(|e| serde_json::to_value(e).ok());
    let Some(serde_json::Value::Object(fields)) = fields else {
        return None;
    };
    Some(
        fields
            .into_iter()
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::Null => "unknown".to_string(),
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other.to_string(),
                };
                (name.replace('_', " "), text)
            })
            .collect(),
    )
}

/// The formatters of `format` as template filters. Each takes a figure or an `Option` of one
/// and writes `format::MISSING` for a missing value, so a table cell needs no `match`.
mod filters {
    use super::format;

    /// A figure a filter can write: a number, or an `Option` of one that may be missing.
    pub trait Number {
        /// The figure as `f64`; `None` when it is missing.
        fn number(&self) -> Option<f64>;
    }

    impl Number for f64 {
        fn number(&self) -> Option<f64> {
            Some(*self)
        }
    }

    impl Number for u64 {
        fn number(&self) -> Option<f64> {
            Some(*self as f64)
        }
    }

    impl Number for u32 {
        fn number(&self) -> Option<f64> {
            Some(f64::from(*self))
        }
    }

    impl<T: Number> Number for Option<T> {
        fn number(&self) -> Option<f64> {
            self.as_ref().and_then(Number::number)
        }
    }

    impl<T: Number + ?Sized> Number for &T {
        fn number(&self) -> Option<f64> {
            (**self).number()
        }
    }

    fn write(value: impl Number, format: fn(f64) -> String) -> askama::Result<String> {
        Ok(format::or_missing(value.number(), format))
    }

    /// Microseconds as milliseconds (`format::ms`).
    #[askama::filter_fn]
    pub fn ms(us: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(us, format::ms)
    }

    /// Seconds with their unit (`format::seconds`).
    #[askama::filter_fn]
    pub fn seconds(s: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(s, format::seconds)
    }

    /// A measured window or warm-up in seconds (`format::window_s`).
    #[askama::filter_fn]
    pub fn window_s(s: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(s, format::window_s)
    }

    /// A count, or a measured amount shown whole, thousands grouped (`format::whole`).
    #[askama::filter_fn]
    pub fn count(n: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(n, format::whole)
    }

    /// A time-averaged count (`format::mean_count`).
    #[askama::filter_fn]
    pub fn mean_count(v: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(v, format::mean_count)
    }

    /// A rate per second (`format::rate`).
    #[askama::filter_fn]
    pub fn rate(v: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(v, format::rate)
    }

    /// Bytes in binary units (`format::bytes`).
    #[askama::filter_fn]
    pub fn bytes(b: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(b, format::bytes)
    }

    /// A fraction as a percentage (`format::percent`).
    #[askama::filter_fn]
    pub fn percent(fraction: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(fraction, format::percent)
    }

    /// A ratio, `×1.02` (`format::times`).
    #[askama::filter_fn]
    pub fn times(ratio: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(ratio, format::times)
    }

    /// A line rate in bit/s, `56k` (`format::line_rate`).
    #[askama::filter_fn]
    pub fn line_rate(bps: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(bps, format::line_rate)
    }

    /// A configured amount in short form, `2k` (`format::compact`).
    #[askama::filter_fn]
    pub fn compact(v: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(v, format::compact)
    }

    /// A time in microseconds as seconds or milliseconds, `1.20 s` (`format::age_us`).
    #[askama::filter_fn]
    pub fn age(us: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(us, format::age_us)
    }

    /// Events per viewer-minute, `0.12` (`format::per_minute`).
    #[askama::filter_fn]
    pub fn per_minute(v: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(v, format::per_minute)
    }

    /// Frames per second, `1.04` (`format::fps`).
    #[askama::filter_fn]
    pub fn fps(v: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(v, format::fps)
    }

    /// CPU microseconds (`format::cpu_us`).
    #[askama::filter_fn]
    pub fn cpu_us(us: impl Number, _: &dyn askama::Values) -> askama::Result<String> {
        write(us, format::cpu_us)
    }

    /// Errors by kind, `reset 1, timeout 3`, or `none`.
    #[askama::filter_fn]
    pub fn errors(totals: &crate::model::Totals, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(if totals.errors.is_empty() {
            "none".to_string()
        } else {
            format::errors_by_kind(&totals.errors)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_read_from_the_scenario() {
        let toml = "name = \"quick\"\ndescription = \"SPECweb96 mix, \\\"fast\\\"\"\nseed = 1\n";
        assert_eq!(
            scenario_description(toml).as_deref(),
            Some("SPECweb96 mix, \\\"fast\\\"")
        );
        assert_eq!(scenario_description("name = \"x\"\n"), None);
    }

    #[test]
    fn ratios_are_judged_by_the_figures_direction() {
        let verdict = |r, better| Ratio::new(Some(r), better).verdict;
        assert_eq!(verdict(0.5, Better::Higher), Some("worse"));
        assert_eq!(verdict(0.5, Better::Lower), Some("better"));
        assert_eq!(verdict(1.004, Better::Lower), Some("same"));
        assert_eq!(Ratio::new(None, Better::Lower).verdict, None);
    }
}
