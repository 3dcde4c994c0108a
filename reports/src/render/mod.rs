//! Self-contained HTML reports: one run (`render_run`) or several side by side
//! (`render_comparison`), written atomically by `write_report`. Pages are the templates in
//! `templates/` (pulled in at compile time) filled with escaped text, tables and the inline SVG
//! charts of `plot`; no script, no font or style sheet from elsewhere, nothing fetched.
//!
//! Not here: numbers (`prepare`), drawing (`plot`).

mod format;
pub mod text;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::model::{HistogramData, IsolationMode, LoadPoint, RunResult, Totals};
use crate::plot::{self, Figure};
use crate::prepare::{self, Better, MetricRow, Quantity};
use format::{
    bytes, compact, count, cpu_us, errors_by_kind, line_rate, mean_count, ms, or_missing,
    per_kilo_ops, percent, rate, seconds, times, whole, window_s, MISSING,
};

const PAGE: &str = include_str!("../../templates/page.html");
const RUN: &str = include_str!("../../templates/run.html");
const COMPARISON: &str = include_str!("../../templates/comparison.html");
const STYLE: &str = include_str!("../../templates/style.css");

/// The single-run page of `result`.
pub fn render_run(result: &RunResult) -> String {
    let title = format!("{} — {}", result.scenario_name, result.started_utc);
    let sweep = plot::run_figures(result);
    let sweep_html = if sweep.is_empty() {
        String::new()
    } else {
        format!(
            "<section id=\"sweep\">\n<h2>Sweep: {} load points</h2>\n{}</section>\n",
            result.load_points.len(),
            figures_html(&sweep)
        )
    };
    let headline = prepare::headline_index(result);
    let mut points = String::new();
    let mut nav = String::from("<a href=\"#summary\">summary</a>");
    let populations = run_populations_html(result);
    if !populations.is_empty() {
        nav.push_str("<a href=\"#populations-across\">populations across points</a>");
    }
    if !sweep.is_empty() {
        nav.push_str("<a href=\"#sweep\">sweep</a>");
    }
    for (n, point) in result.load_points.iter().enumerate() {
        // A sweep opens its headline point only, so the page starts short.
        let open = headline == Some(n);
        points.push_str(&point_section(point, n, open));
        let _ = write!(nav, "<a href=\"#point-{n}\">{}</a>", escape(&point.label));
    }
    nav.push_str("<a href=\"#environment\">server &amp; environment</a>");
    nav.push_str("<a href=\"#scenario\">scenario</a>");
    let body = fill(
        RUN,
        &[
            ("title", &escape(&title)),
            ("subtitle", &run_subtitle(result)),
            ("validity", &validity_html(result)),
            ("nav", &nav),
            ("summary", &summary_table(result)),
            ("populations", &populations),
            ("sweep", &sweep_html),
            ("points", &points),
            ("server", &server_html(result)),
            ("generator", &generator_html(result)),
            ("isolation", &isolation_html(result)),
            ("machine", &environment_html(result)),
            ("scenario", &escape(&result.scenario_toml)),
        ],
    );
    page(&title, &body, result)
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
    let summaries: Vec<prepare::RunSummary> = results.iter().map(prepare::run_summary).collect();
    let rows = prepare::comparison_rows(&summaries);
    let figures = plot::comparison_figures(&rows, results, &labels);
    let title = format!("Comparison of {} runs", results.len());

    let mut validity = String::new();
    for (n, (result, label)) in results.iter().zip(&labels).enumerate() {
        let html = validity_problems(result);
        if !html.is_empty() {
            let _ = write!(
                validity,
                "<div class=\"run-status\"><h3>#{} {}</h3>{html}</div>",
                n + 1,
                escape(label)
            );
        }
    }
    if validity.is_empty() {
        validity = "<div class=\"status valid\"><strong>&#10003; All runs valid</strong>, \
                    no warnings.</div>"
            .into();
    }

    let mut details = String::new();
    for (n, (result, label)) in results.iter().zip(&labels).enumerate() {
        let _ = write!(
            details,
            "<details id=\"run-{n}\"><summary>#{} {}</summary>\n{}\n<h3>Server</h3>\n{}\
             <h3>Scenario as it ran</h3>\n<pre class=\"scenario\">{}</pre>\n</details>\n",
            n + 1,
            escape(label),
            summary_table(result),
            server_html(result),
            escape(&result.scenario_toml)
        );
    }
    let body = fill(
        COMPARISON,
        &[
            ("title", &escape(&title)),
            (
                "subtitle",
                &escape(&format!(
                    "Baseline: #1 {}",
                    labels.first().map_or("", |l| l)
                )),
            ),
            ("validity", &validity),
            ("runs", &runs_table(results, &labels)),
            ("ratios", &ratio_table(&rows, &labels)),
            (
                "populations",
                &comparison_populations_html(results, &labels),
            ),
            ("charts", &figures_html(&figures)),
            ("details", &details),
        ],
    );
    match results.first() {
        Some(first) => page(&title, &body, first),
        None => fill(
            PAGE,
            &[
                ("generator", "reports"),
                ("title", &escape(&title)),
                ("style", STYLE),
                ("body", &body),
                ("footer", ""),
            ],
        ),
    }
}

/// Each population across the runs, at each run's headline point; empty when no population
/// ran in two runs.
fn comparison_populations_html(results: &[RunResult], labels: &[String]) -> String {
    let default = LoadPoint::default();
    // A run without a load point ran no population: its column says "not run".
    let points: Vec<&LoadPoint> = results
        .iter()
        .map(|r| prepare::headline_point(r).unwrap_or(&default))
        .collect();
    let columns: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(n, l)| format!("#{} {l}", n + 1))
        .collect();
    let table = populations_across_html(&points, &columns, "run");
    if table.is_empty() {
        return table;
    }
    format!(
        "<section id=\"populations\">\n<h2>By population</h2>\n<p class=\"note\">Each \
         population's own figures in each run (at its highest load point), so a reader sees how \
         one group of clients fared when another joined. Ratios are against the first run that \
         ran it: &#9650; better, &#9660; worse.</p>\n{table}</section>\n"
    )
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
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    // Beside the target, so the rename stays on one file system.
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(html.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

// ---- text helpers ----------------------------------------------------------------------------

/// `text` safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `template` with each `{{name}}` replaced by its value, in one pass: a value is never scanned
/// for placeholders, so text from a result (a scenario with `{{body}}` in a comment) stays text.
/// An unknown placeholder is a bug of ours and left visible.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = &after[..end];
                match values.iter().find(|(k, _)| *k == key) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        debug_assert!(false, "template placeholder {{{{{key}}}}} not filled");
                        out.push_str(&rest[start..start + 2 + end + 2]);
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn page(title: &str, body: &str, result: &RunResult) -> String {
    let generator = format!("{} {} (reports)", result.tool, result.tool_version);
    fill(
        PAGE,
        &[
            ("generator", &escape(&generator)),
            ("title", &escape(title)),
            ("style", STYLE),
            ("body", body),
            (
                "footer",
                &format!(
                    "Written by {}; result schema {}. Self-contained: no script, nothing fetched.",
                    escape(&generator),
                    result.schema_version
                ),
            ),
        ],
    )
}

fn num(text: impl std::fmt::Display) -> String {
    format!("<td class=\"num\">{text}</td>")
}

// ---- run page pieces -------------------------------------------------------------------------

fn run_subtitle(result: &RunResult) -> String {
    let mut parts = vec![
        format!(
            "scenario <strong>{}</strong>",
            escape(&result.scenario_name)
        ),
        format!("started {} UTC", escape(&result.started_utc)),
        format!("seed {}", result.seed),
        format!(
            "{} load point{}",
            result.load_points.len(),
            if result.load_points.len() == 1 {
                ""
            } else {
                "s"
            }
        ),
    ];
    if let Some(description) = scenario_description(&result.scenario_toml) {
        parts.push(escape(&description));
    }
    parts.join(" · ")
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

/// The invalid reasons, the interruption and the warnings, as status boxes; empty when none.
fn validity_problems(result: &RunResult) -> String {
    let mut html = String::new();
    if !result.valid || !result.invalid_reasons.is_empty() {
        html.push_str(
            "<div class=\"status invalid\"><h2>&#9888; Invalid run: do not trust these numbers</h2>",
        );
        html.push_str(&list(&result.invalid_reasons));
        html.push_str("</div>\n");
    }
    if result.interrupted {
        html.push_str(
            "<div class=\"status warning\"><strong>&#9888; Interrupted:</strong> Ctrl-C ended \
             the run early; the measured time is shorter than the scenario asked.</div>\n",
        );
    }
    if !result.warnings.is_empty() {
        html.push_str("<div class=\"status warning\"><h2>&#9888; Warnings</h2>");
        html.push_str(&list(&result.warnings));
        html.push_str("</div>\n");
    }
    html
}

fn validity_html(result: &RunResult) -> String {
    let problems = validity_problems(result);
    if problems.is_empty() {
        "<div class=\"status valid\"><strong>&#10003; Valid run</strong>, no warnings.</div>\n"
            .into()
    } else {
        problems
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut html = String::from("<ul>");
    for item in items {
        let _ = write!(html, "<li>{}</li>", escape(item));
    }
    html.push_str("</ul>");
    html
}

fn errors_text(totals: &Totals) -> String {
    if totals.errors.is_empty() {
        return "none".into();
    }
    escape(&errors_by_kind(&totals.errors))
}

/// One row per load point: throughput, latency of all populations together, errors.
fn summary_table(result: &RunResult) -> String {
    let mut html = String::from(
        "<table class=\"summary\"><thead><tr><th>load point</th><th class=\"num\">load</th>\
         <th class=\"num\">measured (s)</th><th class=\"num\">ops</th><th class=\"num\">ops/s</th>\
         <th class=\"num\">Mbit/s</th><th class=\"num\">p50 (ms)</th><th class=\"num\">p90 (ms)</th>\
         <th class=\"num\">p99 (ms)</th><th class=\"num\">p99.9 (ms)</th><th class=\"num\">max (ms)</th>\
         <th class=\"num\">errors</th><th>errors by kind</th></tr></thead><tbody>",
    );
    for point in &result.load_points {
        let merged = prepare::merged_latency(point);
        let at = |q: f64| {
            merged
                .as_ref()
                .map_or(MISSING.into(), |h| ms(h.value_at_quantile(q) as f64))
        };
        let _ = write!(
            html,
            "<tr><td>{}</td>{}{}{}{}{}{}{}{}{}{}{}<td>{}</td></tr>",
            escape(&point.label),
            num(percent(point.load_fraction)),
            num(window_s(point.measured_s)),
            num(count(point.totals.ops)),
            num(rate(point.totals.ops_per_s)),
            num(rate(point.totals.mbit_per_s)),
            num(at(0.5)),
            num(at(0.9)),
            num(at(0.99)),
            num(at(0.999)),
            num(or_missing(merged.as_ref(), |h| ms(h.max() as f64))),
            num(count(point.totals.errors_total)),
            errors_text(&point.totals)
        );
    }
    html.push_str("</tbody></table>\n");
    html
}

/// Each population across the load points of a run (variants, or a sweep's steps); empty for a
/// single point or when no population ran in two points.
fn run_populations_html(result: &RunResult) -> String {
    if result.load_points.len() < 2 {
        return String::new();
    }
    let points: Vec<&LoadPoint> = result.load_points.iter().collect();
    let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
    let table = populations_across_html(&points, &labels, "load point");
    if table.is_empty() {
        return table;
    }
    format!(
        "<h3 id=\"populations-across\">Each population across the load points</h3>\n\
         <p class=\"note\">One population's own figures at each point, so a reader sees how \
         it fared when others joined or the load grew. Ratios are against the first point that \
         ran it: &#9650; better, &#9660; worse.</p>\n{table}"
    )
}

fn point_section(point: &LoadPoint, n: usize, open: bool) -> String {
    let figures = plot::load_point_figures(point, &format!("p{n}"));
    format!(
        "<section class=\"point\" id=\"point-{n}\">\n<details{}>\n<summary>Load point: {} \
         ({} load, {} s measured after {} s warm-up)</summary>\n\
         <h3>Populations</h3>\n{}<h3>Latency by population and class</h3>\n{}{}{}{}{}</details>\n\
         </section>\n",
        if open { " open" } else { "" },
        escape(&point.label),
        percent(point.load_fraction),
        window_s(point.measured_s),
        window_s(point.warmup_s),
        population_table(point),
        latency_table(point),
        slow_line_html(point),
        little_html(point),
        kernel_html(point),
        figures_html(&figures)
    )
}

fn population_table(point: &LoadPoint) -> String {
    let mut html = String::from(
        "<table class=\"populations\"><thead><tr><th>population</th><th>kind</th>\
         <th class=\"num\">offered</th><th class=\"num\">ops</th><th class=\"num\">ops/s</th>\
         <th class=\"num\">Mbit/s</th><th class=\"num\">peak open conns</th>\
         <th class=\"num\">requests sent</th><th class=\"num\">responses</th>\
         <th class=\"num\">connections</th><th class=\"num\">queued arrivals</th>\
         <th class=\"num\">schedule lag p99 (ms)</th><th>errors</th></tr></thead><tbody>",
    );
    for p in &point.populations {
        let offered = match p.kind.as_str() {
            "open" => format!("{} req/s", compact(p.offered)),
            "modem" => format!("{} users", compact(p.offered)),
            _ => format!("{} clients", compact(p.offered)),
        };
        let kind = match p.kind.as_str() {
            "modem" => "modem (slow line)".to_string(),
            other => escape(other),
        };
        let lag = p
            .schedule_lag_us
            .as_ref()
            .filter(|h| h.count > 0)
            .map_or(MISSING.into(), |h| ms(h.p99 as f64));
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}{}{}<td>{}</td></tr>",
            escape(&p.name),
            kind,
            num(offered),
            num(count(p.totals.ops)),
            num(rate(p.totals.ops_per_s)),
            num(rate(p.totals.mbit_per_s)),
            num(count(p.peak_open_connections)),
            num(count(p.requests_sent)),
            num(count(p.responses_completed)),
            num(count(p.connections_established)),
            num(count(p.queued_arrivals)),
            num(lag),
            errors_text(&p.totals)
        );
    }
    html.push_str(
        "</tbody></table>\n<p class=\"note\">Requests, responses and connections \
                   count the whole load point, warm-up included (comparable with the server's \
                   own counters); ops and rates count the measured time only.</p>\n",
    );
    html
}

fn latency_cells(h: &HistogramData) -> String {
    if h.count == 0 {
        return "<td class=\"num\" colspan=\"6\">no request completed</td>".into();
    }
    [
        h.mean,
        h.p50 as f64,
        h.p90 as f64,
        h.p99 as f64,
        h.p999 as f64,
        h.max as f64,
    ]
    .iter()
    .map(|&v| num(ms(v)))
    .collect()
}

fn latency_table(point: &LoadPoint) -> String {
    let mut html = String::from(
        "<table class=\"latency\"><thead><tr><th>population</th><th>class</th>\
         <th class=\"num\">ops</th><th class=\"num\">mean (ms)</th><th class=\"num\">p50</th>\
         <th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">p99.9</th>\
         <th class=\"num\">max</th><th class=\"num\">connect p99</th>\
         <th class=\"num\">first byte p99</th></tr></thead><tbody>",
    );
    for p in &point.populations {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>all</td>{}{}{}{}</tr>",
            escape(&p.name),
            num(count(p.totals.ops)),
            latency_cells(&p.latency.total_us),
            num(ms(p.latency.connect_us.p99 as f64)),
            num(ms(p.latency.first_byte_us.p99 as f64)),
        );
        for c in &p.classes {
            let _ = write!(
                html,
                "<tr><td></td><td class=\"sub\">{}</td>{}{}{}{}</tr>",
                escape(&c.class),
                num(count(c.ops)),
                latency_cells(&c.latency.total_us),
                num(ms(c.latency.connect_us.p99 as f64)),
                num(ms(c.latency.first_byte_us.p99 as f64)),
            );
        }
    }
    html.push_str(
        "</tbody></table>\n<p class=\"note\">Response time from connect (closed loop) or from \
         when the request was due (open loop) to the last byte; milliseconds.",
    );
    if point.populations.iter().any(|p| p.line.is_some()) {
        html.push_str(
            " Slow-line (modem) users take seconds by design: their line, not the server, sets \
             most of it (the slowdown below says how much was the server's).",
        );
    }
    html.push_str("</p>\n");
    html
}

/// The slow-line users of one load point: their line and how close each reply came to it; empty
/// when no population has a line.
fn slow_line_html(point: &LoadPoint) -> String {
    let rows = prepare::slow_line_rows(point);
    if rows.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h3>Slow-line clients</h3>\n<div class=\"wide\"><table class=\"slow-lines\"><thead><tr>\
         <th rowspan=\"2\">population</th><th class=\"group\" colspan=\"5\">the line</th>\
         <th class=\"group\" colspan=\"4\">each reply</th><th class=\"group\" colspan=\"2\">\
         the users</th></tr><tr><th>down (bit/s)</th><th>up (bit/s)</th><th class=\"num\">payload (B/s)</th>\
         <th>RTT</th><th class=\"num\">window / MSS (B)</th>\
         <th class=\"num\">achieved p50 (B/s)</th><th class=\"num\">low end (B/s)</th>\
         <th class=\"num\">slowdown p50</th><th class=\"num\">slowdown p99</th>\
         <th class=\"num\">pages started / completed</th>\
         <th class=\"num\">lingering closes</th></tr></thead><tbody>",
    );
    for r in &rows {
        // One rate a line: a mix of 56k and 28.8k users reads as two lines of the table cell.
        let downstream = match r.downstream_bps.as_slice() {
            [(bps, _)] => line_rate(*bps),
            rates => rates
                .iter()
                .map(|(bps, share)| format!("{} ({})", line_rate(*bps), percent(*share)))
                .collect::<Vec<_>>()
                .join("<br>"),
        };
        let low = match r.achieved_low_bytes_per_s {
            Some(prepare::LowEnd::P10(v)) => format!("p10 {}", whole(v)),
            Some(prepare::LowEnd::Min(v)) => format!("min {}", whole(v)),
            None => MISSING.into(),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td>{}\
             <td class=\"nowrap\">{} ms ({})</td>{}{}{}{}{}{}{}</tr>",
            escape(&r.population),
            downstream,
            line_rate(r.upstream_bps),
            num(whole(r.payload_bytes_per_s)),
            ms(r.rtt_ms * 1000.0),
            escape(&r.rtt_mode),
            num(format!(
                "{} / {}",
                count(u64::from(r.receive_window_bytes)),
                count(u64::from(r.mss_bytes))
            )),
            num(or_missing(r.achieved_p50_bytes_per_s, whole)),
            num(low),
            num(or_missing(r.slowdown_p50, times)),
            num(or_missing(r.slowdown_p99, times)),
            num(format!(
                "{} / {}",
                count(r.pages_started),
                count(r.pages_completed)
            )),
            num(count(r.lingering_closes)),
        );
    }
    html.push_str(
        "</tbody></table></div>\n<p class=\"note\">Slowdown is each reply's time from the end of \
         its upload to its last byte over the time its user's line needed: one round trip plus \
         the line time the user spent meanwhile (on this reply or on its siblings sharing the \
         line). ×1.00 means the line set the pace; ×2.00 that the reply took twice that because \
         the server (or this machine) held it back. Achieved is the payload bytes per second of \
         each reply after its first round trip, to set beside the line's payload rate. RTT \
         <em>netem</em> is the kernel's delay on a veth pair; <em>application</em> is the client \
         waiting.</p>\n",
    );
    for r in &rows {
        if r.retries_on_new_connection > 0 {
            let _ = writeln!(
                html,
                "<p class=\"note\">{}: {} requests were sent again on a new connection because \
                 the server had closed the reused one before any of the reply came (as browsers \
                 do); they are not errors.</p>",
                escape(&r.population),
                r.retries_on_new_connection
            );
        }
        if let Some(reason) = &r.rtt_mode_reason {
            let _ = writeln!(
                html,
                "<p class=\"note\">{}: round trip by the {}, because {}.</p>",
                escape(&r.population),
                escape(&r.rtt_mode),
                escape(reason)
            );
        }
    }
    html
}

/// Little's law (L = λ × W) on every population of one load point that has the figures.
fn little_html(point: &LoadPoint) -> String {
    let rows = prepare::little_rows(point);
    if rows.is_empty() {
        return String::new();
    }
    let ratio_cell = |r: Option<f64>| num(or_missing(r, times));
    let mut html = String::from(
        "<h3>Little's law</h3>\n<div class=\"wide\"><table class=\"little\"><thead><tr>\
         <th rowspan=\"2\">population</th><th rowspan=\"2\">kind</th>\
         <th class=\"group\" colspan=\"5\">open connections</th>\
         <th class=\"group\" colspan=\"3\">requests in flight</th></tr><tr>\
         <th class=\"num\">measured mean</th><th class=\"num\">opened per s</th>\
         <th class=\"num\">mean lifetime</th><th class=\"num\">predicted</th>\
         <th class=\"num\">measured / predicted</th><th class=\"num\">measured mean</th>\
         <th class=\"num\">predicted</th><th class=\"num\">measured / predicted</th>\
         </tr></thead><tbody>",
    );
    for r in &rows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}</tr>",
            escape(&r.population),
            escape(&r.kind),
            num(mean_count(r.mean_open_connections)),
            num(rate(r.connections_per_s)),
            num(seconds(r.mean_connection_lifetime_s)),
            num(mean_count(r.predicted_open_connections)),
            ratio_cell(r.connections_ratio),
            num(mean_count(r.mean_requests_in_flight)),
            num(mean_count(r.predicted_requests_in_flight)),
            ratio_cell(r.requests_ratio),
        );
    }
    html.push_str(
        "</tbody></table></div>\n<p class=\"note\">Over the measured window, the time average of \
         what was open against the rate times the mean time each stayed (connections opened per \
         second × their mean lifetime; requests completed per second × their mean latency). \
         Near ×1.00 the counts agree and the window was in steady state. Far from it, it was \
         not: a ramp, a backlog, or connections that outlive the window (they are missing from \
         the mean lifetime, so long-lived ones push the ratio above ×1.00). Where fewer \
         connections closed in the window than were open on average, most of them outlived it: \
         their lifetimes are unknown and the connections' ratio shows –.</p>\n",
    );
    html
}

/// Each population side by side across load points, or across runs: ops/s, Mbit/s, latency,
/// errors and peak connections, with ratios against the first column that ran it. `columns`
/// name the points (or runs); empty when no population ran in two of them.
fn populations_across_html(points: &[&LoadPoint], columns: &[String], what: &str) -> String {
    let rows = prepare::populations_across(points);
    if rows.is_empty() {
        return String::new();
    }
    let mut html = format!(
        "<div class=\"wide\"><table class=\"across\"><thead><tr><th>population</th><th>{}</th>\
         <th class=\"num\">ops/s</th><th class=\"num\">Mbit/s</th><th class=\"num\">p50 (ms)</th>\
         <th class=\"num\">p99 (ms)</th><th class=\"num\">p99.9 (ms)</th>\
         <th class=\"num\">errors</th><th class=\"num\">peak open conns</th></tr></thead>",
        escape(what)
    );
    for row in &rows {
        let base_column = row.cells.iter().position(Option::is_some);
        let base = base_column.and_then(|n| row.cells[n].as_ref());
        html.push_str("<tbody class=\"group\">");
        for (n, (cell, column)) in row.cells.iter().zip(columns).enumerate() {
            let name = if n == 0 {
                escape(&row.population)
            } else {
                String::new()
            };
            let _ = write!(html, "<tr><td>{name}</td><td>{}</td>", escape(column));
            let Some(cell) = cell else {
                html.push_str("<td class=\"not-run\" colspan=\"7\">not run</td></tr>");
                continue;
            };
            // The baseline itself carries no ratio.
            let is_base = base_column == Some(n);
            let with_ratio = |text: String, value: Option<f64>, of: Option<f64>, better| {
                if is_base {
                    return num(text);
                }
                let r = value.zip(of).and_then(|(v, b)| prepare::ratio(v, b));
                num(format!("{text}{}", ratio_span(r, better)))
            };
            let latency = |v: Option<f64>| or_missing(v, ms);
            let _ = write!(
                html,
                "{}{}{}{}{}{}{}</tr>",
                with_ratio(
                    rate(cell.ops_per_s),
                    Some(cell.ops_per_s),
                    base.map(|b| b.ops_per_s),
                    Better::Higher
                ),
                num(rate(cell.mbit_per_s)),
                num(latency(cell.p50_us)),
                with_ratio(
                    latency(cell.p99_us),
                    cell.p99_us,
                    base.and_then(|b| b.p99_us),
                    Better::Lower
                ),
                num(latency(cell.p999_us)),
                num(count(cell.errors_total)),
                num(count(cell.peak_open_connections)),
            );
        }
        html.push_str("</tbody>");
    }
    html.push_str("</table></div>\n");
    html
}

/// The kernel's and the server's figures of one load point; empty without kernel accounting.
fn kernel_html(point: &LoadPoint) -> String {
    let Some(kernel) = &point.kernel else {
        return String::new();
    };
    let k = &kernel.summary;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "not measured".into());
    let tw_size = format!(
        "{}{}",
        bytes(kernel.time_wait_object_bytes as f64),
        if kernel.time_wait_bytes_estimated {
            " (estimated: /proc/slabinfo unreadable)"
        } else {
            " (tw_sock_TCP slab object)"
        }
    );
    let rows: Vec<(&str, String)> = vec![
        (
            "TIME_WAIT peak, server side",
            format!(
                "{} sockets, {}",
                count(k.peak_time_wait_server_side),
                bytes(k.peak_time_wait_server_side_bytes as f64)
            ),
        ),
        (
            "TIME_WAIT peak, client side",
            format!(
                "{} sockets, {}",
                count(k.peak_time_wait_client_side),
                bytes(k.peak_time_wait_client_side_bytes as f64)
            ),
        ),
        (
            "TIME_WAIT socket-seconds",
            format!(
                "server side {}, client side {}",
                whole(k.time_wait_seconds_server_side),
                whole(k.time_wait_seconds_client_side)
            ),
        ),
        ("one TIME_WAIT socket", tw_size),
        (
            "kernel TCP memory, peak",
            bytes(k.peak_tcp_memory_bytes as f64),
        ),
        (
            "server CPU per op",
            opt(k.server_cpu_us_per_op.map(|v| format!("{} µs", cpu_us(v)))),
        ),
        (
            "server peak RSS",
            opt(k.server_peak_rss_bytes.map(|b| bytes(b as f64))),
        ),
        (
            "server memory per connection",
            opt(k.server_memory_per_connection_bytes.map(bytes)),
        ),
        (
            "generator memory per connection",
            opt(k.loadgen_memory_per_connection_bytes.map(bytes)),
        ),
        (
            "generator RSS",
            opt(
                match (k.loadgen_rss_start_bytes, k.loadgen_peak_rss_bytes) {
                    (Some(start), Some(peak)) => Some(format!(
                        "{} before the load, {} at its peak",
                        bytes(start as f64),
                        bytes(peak as f64)
                    )),
                    (None, Some(peak)) => Some(format!("{} at its peak", bytes(peak as f64))),
                    (Some(start), None) => Some(format!("{} before the load", bytes(start as f64))),
                    (None, None) => None,
                },
            ),
        ),
        (
            "listen queue overflows / drops",
            format!("{} / {}", count(k.listen_overflows), count(k.listen_drops)),
        ),
        ("TIME_WAIT overflows", count(k.time_wait_overflows)),
        (
            "generator CPU",
            format!(
                "{} of its cores (sampler {} of one core)",
                percent(k.loadgen_cpu_share),
                percent(k.sampler_cpu_share)
            ),
        ),
        (
            "sampled every",
            format!(
                "{} ms, {} samples",
                kernel.sample_interval_ms,
                kernel.samples.len()
            ),
        ),
    ];
    let mut html = String::from("<h3>Kernel and server</h3>\n<table class=\"kv\"><tbody>");
    for (name, value) in rows {
        let _ = write!(html, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    if !kernel.probe_errors.is_empty() {
        let _ = write!(
            html,
            "<tr><th>probe errors</th><td>{}</td></tr>",
            list(&kernel.probe_errors)
        );
    }
    html.push_str("</tbody></table>\n");
    html
}

/// Where the run ran, every recorded field by its own name (which carries its unit), so the
/// table follows the model as fields are added.
fn environment_html(result: &RunResult) -> String {
    let fields = result
        .environment
        .as_ref()
        .and_then(|e| serde_json::to_value(e).ok());
    let Some(serde_json::Value::Object(fields)) = fields else {
        return "<p class=\"note\">Not recorded in this result.</p>\n".into();
    };
    let mut html = String::from("<table class=\"kv\"><tbody>");
    for (name, value) in &fields {
        let text = match value {
            serde_json::Value::Null => "unknown".to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        let _ = write!(
            html,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&name.replace('_', " ")),
            escape(&text)
        );
    }
    html.push_str("</tbody></table>\n");
    html
}

fn server_html(result: &RunResult) -> String {
    let s = &result.server;
    let mut html = format!(
        "<table class=\"kv\"><tbody><tr><th>kind</th><td>{}</td></tr>\
         <tr><th>command line</th><td><code class=\"cmd\">{}</code></td></tr>\
         <tr><th>address</th><td>{}</td></tr><tr><th>exit</th><td>{}</td></tr>",
        escape(&s.kind),
        escape(&s.command_line),
        escape(&s.address),
        escape(&s.exit)
    );
    if !s.notes.is_empty() {
        let _ = write!(html, "<tr><th>notes</th><td>{}</td></tr>", list(&s.notes));
    }
    html.push_str("</tbody></table>\n");
    match &s.stats {
        Some(stats) => {
            let pretty = serde_json::to_string_pretty(stats).unwrap_or_else(|_| stats.to_string());
            let _ = writeln!(
                html,
                "<details><summary>The server's own counters (--stats)</summary>\
                 <pre>{}</pre></details>",
                escape(&pretty)
            );
        }
        None => html.push_str("<p class=\"note\">The server reported no counters.</p>\n"),
    }
    html
}

fn generator_html(result: &RunResult) -> String {
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
        [] => "the system's choice".to_string(),
        [one] => escape(one),
        many => format!(
            "<details><summary>{} addresses, {} … {}</summary><code>{}</code></details>",
            many.len(),
            escape(&many[0]),
            escape(&many[many.len() - 1]),
            escape(&many.join(" "))
        ),
    };
    format!(
        "<table class=\"kv\"><tbody><tr><th>tool</th><td>{} {}</td></tr>\
         <tr><th>workers</th><td>{}</td></tr><tr><th>pinned to CPUs</th><td>{}</td></tr>\
         <tr><th>source addresses</th><td>{}</td></tr></tbody></table>\n",
        escape(&result.tool),
        escape(&result.tool_version),
        g.workers,
        cpus,
        addresses
    )
}

fn isolation_html(result: &RunResult) -> String {
    let i = &result.isolation;
    let mode = match i.mode {
        IsolationMode::PrivateNetns => {
            "private network namespace: the kernel's socket counters are this run's alone"
        }
        IsolationMode::HostNamespace => {
            "host network namespace: kernel counters are shared with the rest of the machine"
        }
    };
    let mut html = format!(
        "<table class=\"kv\"><tbody><tr><th>mode</th><td>{}</td></tr>",
        escape(mode)
    );
    if let Some(reason) = &i.reason {
        let _ = write!(html, "<tr><th>why</th><td>{}</td></tr>", escape(reason));
    }
    if !i.sysctls_set.is_empty() {
        let _ = write!(
            html,
            "<tr><th>sysctls set</th><td><code>{}</code></td></tr>",
            i.sysctls_set
                .iter()
                .map(|s| escape(s))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    if let Some(path) = &i.delay_path {
        let _ = write!(
            html,
            "<tr><th>delay path</th><td>server at <code>{}</code> behind a veth pair; fast \
             clients from <code>{}</code> undelayed; slow-line clients from <code>{}</code> \
             delayed {} ms each way by {} (round trip {} ms)",
            escape(&path.server_address),
            escape(&path.fast_sources),
            escape(&path.delayed_sources),
            ms(path.one_way_delay_ms * 1000.0),
            if path.delay_line.is_some() {
                "a user-space delay line on TUN devices"
            } else {
                "netem"
            },
            ms(2.0 * path.one_way_delay_ms * 1000.0)
        );
        if let Some(line) = &path.delay_line {
            let _ = write!(
                html,
                "; it carried {} packets up and {} down, dropped {}, held at most {} packets, \
                 and its relay thread used {} of CPU (counted in the generator's share)",
                count(line.packets_up),
                count(line.packets_down),
                count(line.dropped),
                count(line.max_queue_packets),
                seconds(line.cpu_us as f64 / 1e6)
            );
        }
        if !path.commands.is_empty() {
            let _ = write!(
                html,
                "<details><summary>the {} ip and tc commands that built it</summary>\
                 <pre>{}</pre></details>",
                path.commands.len(),
                escape(&path.commands.join("\n"))
            );
        }
        html.push_str("</td></tr>");
    }
    html.push_str("</tbody></table>\n");
    html
}

/// Each chart as a `<figure>` carrying its kind and how many points it draws, for readers and
/// tests alike, with its legend under it.
fn figures_html(figures: &[Figure]) -> String {
    let mut html = String::new();
    for f in figures {
        let _ = write!(
            html,
            "<figure class=\"chart\" id=\"{}\" data-chart=\"{}\" data-points=\"{}\" \
             data-downsampled=\"{}\" aria-label=\"{}\">\n{}<figcaption><ul class=\"legend\">",
            escape(&f.id),
            f.kind,
            f.points,
            f.downsampled,
            escape(&f.title),
            f.svg
        );
        for entry in &f.legend {
            let _ = write!(
                html,
                "<li><span class=\"swatch {}\" style=\"background:{}\"></span>{}</li>",
                if entry.thick { "thick" } else { "thin" },
                entry.colour,
                escape(&entry.name)
            );
        }
        html.push_str("</ul>");
        if f.downsampled {
            let _ = write!(
                html,
                "<span class=\"downsampled\">Down-sampled for drawing: each line keeps the \
                 lowest and highest point of every bucket, at most {} points; the tables use \
                 all data.</span>",
                prepare::MAX_POINTS_PER_SERIES
            );
        }
        html.push_str("</figcaption></figure>\n");
    }
    html
}

// ---- comparison page pieces ------------------------------------------------------------------

fn runs_table(results: &[RunResult], labels: &[String]) -> String {
    let mut html = String::from(
        "<table class=\"runs\"><thead><tr><th>#</th><th>label</th><th>scenario</th>\
         <th>started (UTC)</th><th>seed</th><th>valid</th><th>server</th></tr></thead><tbody>",
    );
    for (n, (r, label)) in results.iter().zip(labels).enumerate() {
        let colour = plot::hex(plot::style::colour(prepare::Hue::Index(n)));
        let _ = write!(
            html,
            "<tr><td>{}</td><td><span class=\"swatch thick\" style=\"background:{colour}\">\
             </span>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}: \
             <code class=\"cmd\">{}</code></td></tr>",
            n + 1,
            escape(label),
            escape(&r.scenario_name),
            escape(&r.started_utc),
            r.seed,
            if r.valid {
                "&#10003; valid"
            } else {
                "&#9888; <strong>invalid</strong>"
            },
            escape(&r.server.kind),
            escape(&r.server.command_line)
        );
    }
    html.push_str("</tbody></table>\n");
    html
}

fn metric_value(quantity: Quantity, value: f64) -> (String, &'static str) {
    match quantity {
        Quantity::OpsPerS => (rate(value), "ops/s"),
        Quantity::MbitPerS => (rate(value), "Mbit/s"),
        Quantity::LatencyUs => (ms(value), "ms"),
        Quantity::Count => (whole(value), ""),
        Quantity::PerKiloOps => (per_kilo_ops(value), "per 1000 ops"),
        Quantity::CpuUsPerOp => (cpu_us(value), "µs/op"),
        Quantity::Bytes => (bytes(value), "bytes"),
    }
}

/// ` ×0.50` against a baseline, marked better or worse by the figure's own direction.
fn ratio_span(ratio: Option<f64>, better: Better) -> String {
    let Some(r) = ratio else {
        return format!(" <span class=\"ratio\">×{MISSING}</span>");
    };
    let improved = match better {
        Better::Higher => r > 1.0,
        Better::Lower => r < 1.0,
    };
    let (class, mark) = if (r - 1.0).abs() < 0.005 {
        ("same", "")
    } else if improved {
        ("better", "&#9650; ")
    } else {
        ("worse", "&#9660; ")
    };
    format!(" <span class=\"ratio {class}\">{mark}{}</span>", times(r))
}

fn ratio_table(rows: &[MetricRow], labels: &[String]) -> String {
    let mut html = String::from("<table class=\"ratios\"><thead><tr><th>metric</th><th>unit</th>");
    for (n, label) in labels.iter().enumerate() {
        let _ = write!(html, "<th class=\"num\">#{} {}</th>", n + 1, escape(label));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        let unit = metric_value(row.metric.quantity, 0.0).1;
        let _ = write!(
            html,
            "<tr id=\"metric-{}\"><td>{}</td><td>{}</td>",
            row.metric.id,
            escape(row.metric.name),
            unit
        );
        for (n, (value, ratio)) in row.values.iter().zip(&row.ratios).enumerate() {
            let Some(value) = value else {
                let _ = write!(html, "<td class=\"num\">{MISSING}</td>");
                continue;
            };
            let text = metric_value(row.metric.quantity, *value).0;
            let ratio_html = if n > 0 {
                ratio_span(*ratio, row.metric.better)
            } else {
                String::new()
            };
            let _ = write!(html, "<td class=\"num\">{text}{ratio_html}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_never_rescans_values() {
        let out = fill("<p>{{a}}</p><p>{{b}}</p>", &[("a", "{{b}}"), ("b", "x")]);
        assert_eq!(out, "<p>{{b}}</p><p>x</p>");
    }

    #[test]
    fn description_is_read_from_the_scenario() {
        let toml = "name = \"quick\"\ndescription = \"SPECweb96 mix, \\\"fast\\\"\"\nseed = 1\n";
        assert_eq!(
            scenario_description(toml).as_deref(),
            Some("SPECweb96 mix, \\\"fast\\\"")
        );
        assert_eq!(scenario_description("name = \"x\"\n"), None);
    }
}
