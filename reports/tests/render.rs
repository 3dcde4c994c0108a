//! Rendered pages, read as text the way a browser would get them: every chart a realistic run
//! calls for is there with data, none is there without data, scenario text stays text, problems
//! are said first, a page needs nothing from elsewhere, and a one-hour run stays light.

mod common;

use std::time::Instant;

use common::chart_kinds;
use reports::render::{render_comparison, render_run, write_report};

/// The `<figure ...>...</figure>` blocks of a page.
fn figures(html: &str) -> Vec<&str> {
    html.split("<figure ")
        .skip(1)
        .map(|s| &s[..s.find("</figure>").unwrap()])
        .collect()
}

/// Vertex counts of the data lines (`class="series"` polylines) in `svg`.
fn series_polylines(svg: &str) -> Vec<usize> {
    svg.lines()
        .filter(|l| l.starts_with("<polyline class=\"series\""))
        .map(|l| {
            let points = &l[l.find("points=\"").unwrap() + 8..];
            points[..points.find('"').unwrap()]
                .split_whitespace()
                .count()
        })
        .collect()
}

fn assert_every_chart_has_data(html: &str) {
    for figure in figures(html) {
        let head = &figure[..figure.find('>').unwrap()];
        assert!(figure.contains("<svg "), "no svg in {head}");
        let points: usize = head
            .split("data-points=\"")
            .nth(1)
            .and_then(|s| s[..s.find('"')?].parse().ok())
            .unwrap_or_else(|| panic!("no data-points in {head}"));
        assert!(points > 0, "{head}");
        let lines = series_polylines(figure);
        let bars = figure.matches("<rect class=\"series\"").count();
        assert!(
            lines.iter().any(|&n| n >= 2) || bars > 0,
            "no data drawn in {head}"
        );
    }
}

fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for forbidden in [
        "<script", "<link", "@import", "url(", "<img", "<iframe", "https://",
    ] {
        assert!(!html.contains(forbidden), "page contains {forbidden}");
    }
    // The only address is the SVG namespace, which is a name, not a fetch.
    let other = html
        .match_indices("http://")
        .filter(|(i, _)| !html[*i..].starts_with("http://www.w3.org/2000/svg"))
        .count();
    assert_eq!(other, 0, "page names an address");
    assert!(!html.contains("{{style}}") && !html.contains("{{body}}\n</main>"));
}

#[test]
fn a_realistic_run_has_every_chart_with_data() {
    let html = render_run(&common::realistic());
    let kinds = chart_kinds(&html);
    assert_eq!(
        kinds,
        [
            "throughput-ops",
            "throughput-mbit",
            // 2 000 modem users on their own panel, 32 LAN clients and 60 arrivals on another
            "connections",
            "connections",
            "latency-time",
            "time-wait",
            "socket-memory",
            "server-memory",
            "cpu",
            // per population by class, then the populations overlaid
            "spectrum",
            "spectrum",
            "spectrum",
            "spectrum",
        ]
    );
    assert_every_chart_has_data(&html);
    assert_self_contained(&html);
    // ids are unique in the page
    let mut ids: Vec<&str> = html
        .split("<figure class=\"chart\" id=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n);
    // warm-up marked, axes labelled with units, percentile ticks
    assert!(html.contains("\nwarm-up\n</text>"));
    for label in [
        "completed requests (ops/s)",
        "response data (Mbit/s)",
        "open connections (count)",
        "sockets in TIME_WAIT (count)",
        "memory held (MiB, 248 B a socket)",
        "TCP socket memory (MiB)",
        "resident memory (MiB)",
        "CPU (% of one core)",
        "time since start of warm-up (s)",
        "percentile (log scale of 1/(1-p))",
        "99.999%",
    ] {
        assert!(html.contains(label), "no axis label {label}");
    }
    assert!(html.contains("response time (ms)") || html.contains("response time (s)"));
    // legends name the populations and classes
    for name in [
        "lan p99",
        "modem p50",
        "arrivals",
        "class3",
        "all classes",
        "server side",
        "client side",
        "server RSS",
        "loadgen",
    ] {
        assert!(
            html.contains(&format!("</span>{name}</li>")),
            "legend lacks {name}"
        );
    }
    // tables
    for text in [
        "Populations",
        "Latency by population and class",
        "reset 1, timeout 3",
        "The server's own counters",
        "&#34;requests_total&#34;: 12345",
        "host network namespace",
        "not root",
        "127.0.10.1",
        "Kernel and server",
        "TIME_WAIT peak in the window, server side (this point's own)",
        "TIME_WAIT carried over from before this point",
        "TIME_WAIT after the window: teardown",
        "(tw_sock_TCP slab object)",
        "<h2>Machine</h2>\n<table class=\"kv\">",
    ] {
        assert!(html.contains(text), "page lacks {text}");
    }
    assert!(html.contains("<div class=\"status valid\">"));
}

#[test]
fn time_after_the_measured_window_is_shaded() {
    let mut result = common::realistic();
    let html = render_run(&result);
    assert!(!html.contains("\nended\n</text>"));
    // An interval recorded after the measured window (the engine's last, partial one): shaded,
    // not drawn as if throughput had dropped while measuring.
    for p in &mut result.load_points[0].timeline.populations {
        p.ops.push(0);
        p.bytes.push(0);
        p.open_connections.push(0);
        p.latency_p50_us.push(0);
        p.latency_p99_us.push(0);
    }
    let html = render_run(&result);
    assert!(html.contains("\nended\n</text>"));
}

#[test]
fn scenario_text_stays_text() {
    let html = render_run(&common::realistic());
    assert!(html.contains(
        "# a comment with &#34;quotes&#34;, &#60;b&#62;tags&#60;/b&#62; &#38; {{body}} that must \
         stay text"
    ));
    assert!(!html.contains("<b>tags</b>"));
    // the description in the subtitle, escaped too
    assert!(html.contains("three populations &#60;lan &#38; modem &#38; arrivals&#62;"));
    // the {{body}} in the scenario was not filled with the page body
    assert_eq!(html.matches("<main>").count(), 1);
}

#[test]
fn invalid_runs_say_so_before_anything_else() {
    let mut result = common::realistic();
    result.valid = false;
    result.invalid_reasons =
        vec!["generator CPU at 100 %: <the generator> was the bottleneck".into()];
    result.warnings = vec!["asked 2000 connections, got 1800".into()];
    result.interrupted = true;
    let html = render_run(&result);
    let invalid = html
        .find("class=\"status invalid\"")
        .expect("no invalid banner");
    let summary = html.find("id=\"summary\"").unwrap();
    assert!(invalid < summary);
    assert!(html.contains("Invalid run"));
    assert!(html.contains("&#60;the generator&#62; was the bottleneck"));
    assert!(html.contains("asked 2000 connections, got 1800"));
    assert!(html.contains("Interrupted"));
    assert!(!html.contains("status valid"));
}

#[test]
fn no_chart_for_absent_data() {
    let mut result = common::realistic();
    let point = &mut result.load_points[0];
    for p in &mut point.timeline.populations {
        *p = reports::model::PopulationTimeline {
            name: p.name.clone(),
            ..Default::default()
        };
    }
    point.kernel = None;
    for p in &mut point.populations {
        p.latency.total_us = Default::default();
        for c in &mut p.classes {
            c.latency.total_us = Default::default();
        }
    }
    let html = render_run(&result);
    assert!(chart_kinds(&html).is_empty(), "{:?}", chart_kinds(&html));
    assert!(!html.contains("<svg"));
    assert!(html.contains("no request completed"));
    assert_self_contained(&html);
}

#[test]
fn no_kernel_chart_without_kernel_accounting() {
    let mut result = common::realistic();
    let kernel = result.load_points[0].kernel.as_mut().unwrap();
    // A server the sampler could not read (a URL target): no server memory or CPU line.
    for sample in &mut kernel.samples {
        sample.server_rss_bytes = None;
        sample.server_pss_bytes = None;
        sample.server_cpu_us = None;
    }
    let html = render_run(&result);
    let kinds = chart_kinds(&html);
    assert!(kinds.iter().all(|k| k != "server-memory"), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k == "cpu"),
        "the generator's CPU is still there"
    );
    assert!(html.contains("server CPU per op"));

    // Results from before kernel accounting: no kernel chart, table or machine table at all.
    result.load_points[0].kernel = None;
    result.environment = None;
    let html = render_run(&result);
    let kinds = chart_kinds(&html);
    for kind in ["time-wait", "socket-memory", "server-memory", "cpu"] {
        assert!(
            !kinds.iter().any(|k| k == kind),
            "{kind} drawn without data"
        );
    }
    assert!(!html.contains("Kernel and server"));
    assert!(html.contains("Not recorded in this result."));
}

#[test]
fn histograms_without_timeline_draw_only_spectra() {
    let mut result = common::realistic();
    result.load_points[0].timeline.populations.clear();
    result.load_points[0].kernel = None;
    let html = render_run(&result);
    assert!(chart_kinds(&html).iter().all(|k| k == "spectrum"));
    assert_eq!(chart_kinds(&html).len(), 4);
}

#[test]
fn a_sweep_has_its_curves_and_every_point_its_charts() {
    let html = render_run(&common::sweep(5));
    let kinds = chart_kinds(&html);
    assert_eq!(&kinds[..2], ["sweep-throughput", "sweep-latency"]);
    assert_eq!(kinds.iter().filter(|k| *k == "throughput-ops").count(), 5);
    assert_eq!(kinds.iter().filter(|k| *k == "time-wait").count(), 5);
    assert_every_chart_has_data(&html);
    assert!(html.contains("offered load (% of full load)"));
    // only the headline point starts open
    assert_eq!(html.matches("<details open>").count(), 1);
}

#[test]
fn comparison_puts_runs_side_by_side() {
    let mut slower = common::realistic();
    for p in &mut slower.load_points[0].populations {
        p.totals.ops_per_s /= 2.0;
    }
    slower.load_points[0].totals.ops_per_s /= 2.0;
    slower.valid = false;
    slower.invalid_reasons = vec!["server died".into()];
    let results = [common::realistic(), slower, common::sweep(3)];
    let labels: Vec<String> = ["before", "after <patch>", "sweep"]
        .map(String::from)
        .to_vec();
    let html = render_comparison(&results, &labels);
    let kinds = chart_kinds(&html);
    assert_eq!(kinds[0], "comparison-bars");
    for kind in [
        "spectrum",
        "throughput-by-run",
        "sweep-throughput",
        "sweep-latency",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    // one overlay per population, one line per run in it
    assert_eq!(kinds.iter().filter(|k| *k == "spectrum").count(), 3);
    assert_every_chart_has_data(&html);
    assert_self_contained(&html);
    // the bars: ops/s, p99, server CPU per op, memory per connection, TIME_WAIT memory,
    // errors; one bar per run each
    let bars = figures(&html)[0].matches("<rect class=\"series\"").count();
    assert_eq!(bars, 18);
    for metric in [
        "server CPU per op (µs/op)",
        "server memory per connection (B)",
        "TIME_WAIT memory, peak (MiB)",
    ] {
        assert!(figures(&html)[0].contains(metric), "no bars for {metric}");
    }
    // ratios against the first run
    assert!(
        html.contains("&#9660; ×0.50"),
        "halved throughput not shown as ×0.50"
    );
    assert!(html.contains("after &#60;patch&#62;"));
    assert!(html.contains("server died"));
    assert!(html.find("server died").unwrap() < html.find("id=\"ratios\"").unwrap());
}

#[test]
fn write_report_writes_atomically_the_right_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, "old").unwrap();
    let one = common::realistic();
    write_report(&path, std::slice::from_ref(&one)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), render_run(&one));
    write_report(&path, &[one.clone(), common::sweep(2)]).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains("Comparison of 2 runs"));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.html"], "temporary file left behind");
    let err = write_report(&path, &[]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = write_report(&dir.path().join("missing/report.html"), &[one]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

/// A one-hour run (3600 one-second intervals, three populations) renders quickly into a small
/// page whose every line is down-sampled. Prints the figures for the record; run in release
/// (`cargo test --release -p reports --test render one_hour -- --nocapture`) for real timings.
#[test]
fn a_one_hour_run_stays_light() {
    let result = common::one_hour();
    let json = serde_json::to_string(&result).unwrap();
    let started = Instant::now();
    let html = render_run(&result);
    let elapsed = started.elapsed();
    println!(
        "one-hour result: {} KiB of JSON -> {} KiB of HTML in {:.0} ms",
        json.len() / 1024,
        html.len() / 1024,
        elapsed.as_secs_f64() * 1000.0
    );
    assert!(html.len() < 1_000_000, "{} bytes", html.len());
    assert!(html.contains("down-sampled"));
    for figure in figures(&html) {
        let head = &figure[..figure.find('>').unwrap()];
        let timeline = !head.contains("data-chart=\"spectrum\"");
        assert_eq!(
            head.contains("data-downsampled=\"true\""),
            timeline,
            "{head}"
        );
        for n in series_polylines(figure) {
            assert!(
                n <= reports::prepare::MAX_POINTS_PER_SERIES,
                "{n} points: {head}"
            );
        }
    }
    // the one-second latency spike at the half hour survives down-sampling: the p99 axis
    // reaches 30 times the usual p99 of the slowest population
    assert_every_chart_has_data(&html);
}

/// Writes sample pages to $REPORT_SAMPLES for a developer to open in a browser; with
/// $REPORT_RESULTS (result.json paths, `:`-separated) also the report of those real results.
#[test]
fn write_samples_when_asked() {
    let Some(dir) = std::env::var_os("REPORT_SAMPLES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    if let Some(paths) = std::env::var_os("REPORT_RESULTS") {
        let results: Vec<reports::model::RunResult> = std::env::split_paths(&paths)
            .map(|p| serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap())
            .collect();
        write_report(&dir.join("results.html"), &results).unwrap();
    }
    write_report(&dir.join("realistic.html"), &[common::realistic()]).unwrap();
    write_report(&dir.join("sweep.html"), &[common::sweep(5)]).unwrap();
    write_report(&dir.join("variants.html"), &[common::variants()]).unwrap();
    write_report(&dir.join("one-hour.html"), &[common::one_hour()]).unwrap();
    write_report(
        &dir.join("comparison.html"),
        &[common::realistic(), common::sweep(3)],
    )
    .unwrap();
}

/// The text of the element with `id` up to its first closing `</table>`.
fn table_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("page lacks {marker}"));
    let rest = &html[start..];
    &rest[..rest.find("</table>").unwrap()]
}

/// The cells of the table row whose first cell is `first`.
fn row_cells<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    let row = table
        .split("<tr>")
        .find(|r| r.starts_with(&format!("<td>{first}</td>")))
        .unwrap_or_else(|| panic!("no row {first}"));
    row.split("<td")
        .skip(1)
        .map(|c| {
            let c = &c[c.find('>').unwrap() + 1..];
            &c[..c.find("</td>").unwrap()]
        })
        .collect()
}

#[test]
fn slow_line_clients_have_their_table() {
    let html = render_run(&common::with_slow_lines(common::realistic()));
    let table = table_after(&html, "<h3>Slow-line clients</h3>");
    let cells = row_cells(table, "modem");
    let expected = [
        "modem",
        "56k (75%)<br>28.8k (25%)",
        "33.6k",
        "5900",
        "300 ms (netem)",
        "8192 / 536",
        "5003",
        "p10 1500",
        "×1.02",
        "×1.80",
        "1234 / 1200",
        "345",
    ];
    assert_eq!(cells, expected);
    // only the population with a line is in it
    assert!(!table.contains("<td>lan</td>"));
    // and the reader is told how to read the slowdown
    assert!(html.contains("×1.00 means the line set the pace"));
    // the kind reads as what it is
    let populations = table_after(&html, "<table class=\"populations\">");
    let modem = row_cells(populations, "modem");
    assert_eq!(&modem[1..3], ["modem (slow line)", "2k users"]);
}

#[test]
fn a_slow_line_histogram_that_does_not_decode_shows_its_minimum() {
    let mut result = common::with_slow_lines(common::realistic());
    let modem = &mut result.load_points[0].populations[1];
    modem
        .line
        .as_mut()
        .unwrap()
        .achieved_bytes_per_s
        .hdr_v2_deflate_base64 = "not base64 at all!".into();
    let html = render_run(&result);
    let cells = row_cells(table_after(&html, "<h3>Slow-line clients</h3>"), "modem");
    assert_eq!(cells[7], "min 1500".to_string());
    assert_eq!(
        cells[6],
        "5003".to_string(),
        "the stored median still shows"
    );
}

#[test]
fn littles_law_is_shown_for_every_population() {
    let html = render_run(&common::with_slow_lines(common::realistic()));
    let table = table_after(&html, "<h3>Little's law</h3>");
    // measured, opened per s, lifetime, predicted, ratio; in flight measured, predicted, ratio
    assert_eq!(
        row_cells(table, "lan")[2..],
        ["31.8", "8000", "4.00 ms", "32.0", "×0.99", "30.2", "30.5", "×0.99"]
    );
    assert_eq!(
        row_cells(table, "modem")[2..],
        ["1900", "20.0", "100.00 s", "2000", "×0.95", "1500", "1600", "×0.94",]
    );
    assert_eq!(row_cells(table, "arrivals")[1], "open");
    assert_eq!(row_cells(table, "arrivals")[9], "×1.00");
}

#[test]
fn generator_memory_sits_beside_the_servers() {
    let html = render_run(&common::with_slow_lines(common::realistic()));
    let kernel = table_after(&html, "<h3>Kernel and server</h3>");
    let server = kernel.find("<th>server memory per connection</th><td>1.21 KiB</td>");
    let generator = kernel.find("<th>generator memory per connection</th><td>2.00 KiB</td>");
    assert!(server.is_some() && generator.is_some(), "{kernel}");
    assert!(generator > server);
    assert!(kernel.contains("8.00 MiB before the load, 12.00 MiB at its peak"));
}

/// The realistic run's point as a sweep's later point on the same port would see it: 63,000
/// server-side TIME_WAITs left over when its window opened (expiring through it), its own
/// 1,200 at their peak, and 10,000 client-side ones begun when its clients closed at the end.
fn with_time_waits_of_three_origins() -> reports::model::RunResult {
    let mut result = common::realistic();
    let kernel = result.load_points[0].kernel.as_mut().unwrap();
    let object_bytes = kernel.time_wait_object_bytes;
    let end_ms = kernel.samples.last().unwrap().elapsed_ms;
    for s in &mut kernel.samples {
        let left_over = 63_000 * end_ms.saturating_sub(s.elapsed_ms) / end_ms.max(1);
        s.time_wait_server_side += left_over;
        s.time_wait_server_side_bytes = s.time_wait_server_side * object_bytes;
    }
    let k = &mut kernel.summary;
    k.peak_time_wait_server_side = 64_200;
    k.peak_time_wait_server_side_bytes = 64_200 * object_bytes;
    k.peak_time_wait_client_side = 10_003;
    k.peak_time_wait_client_side_bytes = 10_003 * object_bytes;
    k.own_peak_time_wait_server_side = Some(1_200);
    k.own_peak_time_wait_server_side_bytes = Some(1_200 * object_bytes);
    k.own_peak_time_wait_client_side = Some(3);
    k.own_peak_time_wait_client_side_bytes = Some(3 * object_bytes);
    k.own_time_wait_seconds_server_side = Some(5_400.0);
    k.own_time_wait_seconds_client_side = Some(12.0);
    k.carried_over_time_wait_server_side = Some(63_000);
    k.carried_over_time_wait_client_side = Some(0);
    k.teardown_time_wait_server_side = Some(0);
    k.teardown_time_wait_client_side = Some(10_000);
    result
}

/// The cells of the comparison's row of metric `id`, one per run (with its ratio mark, if any).
fn metric_cells<'a>(html: &'a str, id: &str) -> Vec<&'a str> {
    let row = &html[html
        .find(&format!("<tr id=\"metric-{id}\">"))
        .unwrap_or_else(|| panic!("no metric {id}"))..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("<td class=\"num\">")
        .skip(1)
        .map(|c| &c[..c.find("</td>").unwrap()])
        .collect()
}

/// The value cell of the `kv` table row headed `th`.
fn kv_cell<'a>(table: &'a str, th: &str) -> &'a str {
    let row = &table[table
        .find(&format!("<th>{th}</th><td>"))
        .unwrap_or_else(|| panic!("no row {th} in {table}"))..];
    let cell = &row[row.find("<td>").unwrap() + 4..];
    &cell[..cell.find("</td>").unwrap()]
}

#[test]
fn time_waits_are_shown_by_origin_the_points_own_first() {
    let html = render_run(&with_time_waits_of_three_origins());
    let kernel = table_after(&html, "<h3>Kernel and server</h3>");
    let row = |th| kv_cell(kernel, th);
    assert_eq!(
        row("TIME_WAIT peak in the window, server side (this point's own)"),
        "1200 sockets, 290.62 KiB"
    );
    assert_eq!(
        row("TIME_WAIT peak in the window, client side (this point's own)"),
        "3 sockets, 744 B"
    );
    assert_eq!(
        row("TIME_WAIT socket-seconds in the window (this point's own)"),
        "server side 5400, client side 12"
    );
    assert!(row("TIME_WAIT carried over from before this point")
        .starts_with("server side 63000, client side 0 (present when the window opened"));
    assert!(row("TIME_WAIT after the window: teardown")
        .starts_with("server side 0, client side 10000 (begun when the load stopped"));
    assert!(row("TIME_WAIT peak, any origin")
        .starts_with("server side 64200 (15.18 MiB), client side 10003 (2.37 MiB)"));
    // The point's own come first: a reader sees them before the mixed figure.
    assert!(
        kernel.find("this point's own").unwrap() < kernel.find("any origin").unwrap(),
        "{kernel}"
    );
    // The chart draws what was left over apart.
    assert!(html.contains("</span>begun before this point, both sides</li>"));
    // The comparison's TIME_WAIT memory is the point's own: 1,203 sockets of 248 B.
    let html = render_comparison(
        &[with_time_waits_of_three_origins(), common::realistic()],
        &[],
    );
    assert_eq!(metric_cells(&html, "peak_time_wait_bytes")[0], "291.35 KiB");
}

#[test]
fn a_result_from_before_origins_says_its_time_waits_are_of_any_origin() {
    // result.json as written before TIME_WAITs were told apart: the keys are absent.
    let mut json = serde_json::to_value(common::realistic()).unwrap();
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|key, _| {
                    !key.starts_with("own_")
                        && !key.starts_with("carried_over_")
                        && !key.starts_with("teardown_")
                        && !key.contains("_since_")
                });
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut json);
    let text = json.to_string();
    assert!(!text.contains("carried_over") && !text.contains("since_point_start"));
    let old: reports::model::RunResult = serde_json::from_str(&text).unwrap();
    let html = render_run(&old);
    assert_self_contained(&html);
    assert_every_chart_has_data(&html);
    let kernel = table_after(&html, "<h3>Kernel and server</h3>");
    let summary = &old.load_points[0].kernel.as_ref().unwrap().summary;
    assert!(
        kv_cell(kernel, "TIME_WAIT peak, server side (any origin)")
            .starts_with(&format!("{} sockets, ", summary.peak_time_wait_server_side)),
        "{kernel}"
    );
    for absent in ["this point's own", "carried over", "teardown"] {
        assert!(!kernel.contains(absent), "{absent} in {kernel}");
    }
    assert!(!html.contains("begun before this point"));
    // Compared, its TIME_WAIT memory is not set against a run's own.
    let html = render_comparison(&[old, common::realistic()], &[]);
    let cells = metric_cells(&html, "peak_time_wait_bytes");
    assert_eq!(cells[0], "–", "{cells:?}");
    assert!(cells[1].contains(" MiB"), "{cells:?}");
}

#[test]
fn the_delay_path_is_in_the_isolation_section() {
    let html = render_run(&common::with_slow_lines(common::realistic()));
    let isolation = table_after(&html, "<h2>Isolation</h2>");
    assert!(isolation.contains(
        "slow-line clients from <code>10.77.2.0/24</code> delayed 150 ms each way by netem \
         (round trip 300 ms)"
    ));
    assert!(isolation.contains("<details><summary>the 2 ip and tc commands that built it"));
    assert!(isolation.contains("prio bands 3 priomap &#60;all fast&#62;"));
}

#[test]
fn large_and_small_populations_get_their_own_connection_panels() {
    let html = render_run(&common::with_slow_lines(common::realistic()));
    let panels: Vec<&str> = figures(&html)
        .into_iter()
        .filter(|f| f.contains("data-chart=\"connections\""))
        .collect();
    assert_eq!(panels.len(), 2);
    assert!(panels[0].contains("(1 of 2: peaks over 20x apart are split)"));
    assert!(panels[0].contains("</span>modem</li>") && !panels[0].contains("</span>lan</li>"));
    assert!(panels[1].contains("</span>lan</li>") && panels[1].contains("</span>arrivals</li>"));
    for panel in panels {
        assert!(panel.contains("open connections (count)"));
    }
    // Close sizes share one chart.
    let mut result = common::realistic();
    result.load_points[0].timeline.populations.remove(1);
    let kinds = chart_kinds(&render_run(&result));
    assert_eq!(kinds.iter().filter(|k| *k == "connections").count(), 1);
}

/// The rows of the populations-across table for one population: the point (or run) label and
/// the cells after it.
fn across_rows(table: &str, population: &str) -> Vec<Vec<String>> {
    let group = table
        .split("<tbody class=\"group\">")
        .find(|g| g.starts_with(&format!("<tr><td>{population}</td>")))
        .unwrap_or_else(|| panic!("no group for {population}"));
    group
        .split("<tr>")
        .skip(1)
        .map(|r| {
            r.split("<td")
                .skip(2)
                .map(|c| {
                    let c = &c[c.find('>').unwrap() + 1..];
                    c[..c.find("</td>").unwrap()].to_string()
                })
                .collect()
        })
        .collect()
}

#[test]
fn variants_set_each_population_side_by_side() {
    let html = render_run(&common::variants());
    assert!(html.contains("<a href=\"#populations-across\">"));
    let table = table_after(&html, "id=\"populations-across\"");
    let lan = across_rows(table, "lan");
    assert_eq!(lan.len(), 2);
    assert_eq!(
        lan[0][..5],
        ["lan-alone", "12000", lan[0][2].as_str(), "1.50", "4.50"]
    );
    assert_eq!(lan[1][0], "lan+modem");
    assert!(lan[1][1].starts_with("9600 <span class=\"ratio worse\">&#9660; ×0.80</span>"));
    assert_eq!(lan[1][3], "3.00");
    assert!(lan[1][4].starts_with("9.00 <span class=\"ratio worse\">&#9660; ×2.00</span>"));
    // the modem users did not run in the first variant
    let modem = across_rows(table, "modem");
    assert_eq!(modem[0], ["lan-alone", "not run"]);
    assert_eq!(modem[1][0], "lan+modem");
    assert_eq!(modem[1][7], "2000".to_string(), "peak open connections");
    // the Little's law table is in every point, the slow-line table only where modems ran
    assert_eq!(html.matches("<h3>Little's law</h3>").count(), 2);
    assert_eq!(html.matches("<h3>Slow-line clients</h3>").count(), 1);
}

#[test]
fn one_point_has_no_populations_across_table() {
    let html = render_run(&common::with_slow_lines(common::realistic()));
    assert!(!html.contains("populations-across"));
}

#[test]
fn comparison_sets_each_population_side_by_side() {
    let mut alone = common::realistic();
    alone.load_points[0]
        .populations
        .retain(|p| p.name != "modem");
    let joined = common::with_slow_lines(common::realistic());
    let labels: Vec<String> = ["lan-alone", "lan+modem"].map(String::from).to_vec();
    let html = render_comparison(&[alone, joined], &labels);
    let section = &html[html
        .find("<section id=\"populations\">")
        .expect("no section")..];
    assert!(section.find("<h2>By population</h2>").unwrap() < section.find("</section>").unwrap());
    let table = table_after(section, "<table class=\"across\">");
    assert_eq!(across_rows(table, "modem")[0], ["#1 lan-alone", "not run"]);
    let lan = across_rows(table, "lan");
    assert_eq!(lan[1][0], "#2 lan+modem");
    assert!(
        lan[1][1].contains("ratio same"),
        "same ops/s in both: {}",
        lan[1][1]
    );
    // the generator's memory per connection is a comparison metric once a run has it
    assert!(html.contains("<tr id=\"metric-loadgen_memory_per_connection\">"));
    assert_self_contained(&html);
}

#[test]
fn results_from_before_slow_lines_still_render() {
    // result.json as written before the model had Little's law, lines, generator memory or the
    // delay path: the keys are absent altogether.
    let mut json = serde_json::to_value(common::sweep(2)).unwrap();
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for key in [
                    "concurrency",
                    "line",
                    "delay_path",
                    "loadgen_rss_start_bytes",
                    "loadgen_peak_rss_bytes",
                    "loadgen_memory_per_connection_bytes",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut json);
    let text = json.to_string();
    assert!(!text.contains("concurrency") && !text.contains("loadgen_rss"));
    let old: reports::model::RunResult = serde_json::from_str(&text).unwrap();
    let html = render_run(&old);
    assert_self_contained(&html);
    assert_every_chart_has_data(&html);
    for absent in ["Slow-line clients", "Little's law", "delay path"] {
        assert!(!html.contains(absent), "page shows {absent}");
    }
    assert!(html.contains("<th>generator memory per connection</th><td>not measured</td>"));
    // a sweep's points share their populations: the across table is there
    assert!(html.contains("id=\"populations-across\""));
    let html = render_comparison(&[old.clone(), old], &[]);
    assert!(!html.contains("metric-loadgen_memory_per_connection"));
    assert!(html.contains("<h2>By population</h2>"));
}
