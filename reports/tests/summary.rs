//! The text summary beside the HTML report: the TIME_WAITs of a point told apart by origin
//! (its own in its window, those carried over from before it, its teardown's), and one meaning
//! of an all-populations percentile: the pooled one, in the terminal as on the page.

use hdrhistogram::Histogram;
use reports::model::*;
use reports::render::render_run;
use reports::render::text::print_summary;

fn summary(result: &RunResult) -> String {
    let mut out = Vec::new();
    print_summary(result, &mut out);
    String::from_utf8(out).unwrap()
}

/// The first line of `text` that contains `with`, trimmed.
fn line<'a>(text: &'a str, with: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(with))
        .unwrap_or_else(|| panic!("no line with {with} in\n{text}"))
        .trim()
}

/// A population of `requests` whose response times run evenly from `from_us` to `to_us`.
fn population(name: &str, requests: u64, from_us: u64, to_us: u64) -> PopulationResult {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for i in 0..requests {
        h.record(from_us + (to_us - from_us) * i / requests.max(2).saturating_sub(1))
            .unwrap();
    }
    PopulationResult {
        name: name.into(),
        kind: "closed".into(),
        totals: Totals {
            ops: requests,
            ..Default::default()
        },
        latency: LatencySet {
            total_us: HistogramData::from_histogram(&h),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A point whose kernel summary has `summary`.
fn point(label: &str, populations: Vec<PopulationResult>, summary: KernelSummary) -> LoadPoint {
    LoadPoint {
        label: label.into(),
        load_fraction: 1.0,
        measured_s: 10.0,
        totals: Totals {
            ops: populations.iter().map(|p| p.totals.ops).sum(),
            ..Default::default()
        },
        populations,
        kernel: Some(KernelAccounting {
            sample_interval_ms: 250,
            time_wait_object_bytes: 248,
            summary,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The second point of a sweep on one port: 63,000 server-side TIME_WAITs left by the first
/// when its window opened, its own 1,200 at their peak, 10,000 client-side ones when its
/// clients closed after the window.
fn three_origins() -> KernelSummary {
    KernelSummary {
        peak_time_wait_server_side: 64_200,
        peak_time_wait_server_side_bytes: 64_200 * 248,
        peak_time_wait_client_side: 10_003,
        peak_time_wait_client_side_bytes: 10_003 * 248,
        time_wait_seconds_server_side: 700_000.0,
        time_wait_seconds_client_side: 20_000.0,
        own_peak_time_wait_server_side: Some(1_200),
        own_peak_time_wait_server_side_bytes: Some(1_200 * 248),
        own_peak_time_wait_client_side: Some(3),
        own_peak_time_wait_client_side_bytes: Some(3 * 248),
        own_time_wait_seconds_server_side: Some(5_400.0),
        own_time_wait_seconds_client_side: Some(12.0),
        carried_over_time_wait_server_side: Some(63_000),
        carried_over_time_wait_client_side: Some(0),
        teardown_time_wait_server_side: Some(0),
        teardown_time_wait_client_side: Some(10_000),
        ..Default::default()
    }
}

fn run(points: Vec<LoadPoint>) -> RunResult {
    RunResult {
        schema_version: SCHEMA_VERSION,
        scenario_name: "window".into(),
        valid: true,
        load_points: points,
        ..Default::default()
    }
}

#[test]
fn time_waits_print_as_the_points_own_with_the_carried_over_and_the_teardown_apart() {
    let lan = || vec![population("lan", 1_000, 1_000, 3_000)];
    let text = summary(&run(vec![point("2/2 (100%)", lan(), three_origins())]));
    assert_eq!(
        line(&text, "TIME_WAIT peak"),
        "TIME_WAIT peak in the window, this point's own: server 1200 (290.62 KiB), clients 3 \
         (744 B) at 248 B each; 5400 / 12 socket-seconds"
    );
    assert_eq!(
        line(&text, "TIME_WAIT carried over"),
        "TIME_WAIT carried over from before this point: server 63000, clients 0; after the \
         window: teardown: server 0, clients 10000; most at once, any origin: server 64200, \
         clients 10003"
    );

    // Side by side, each point's TIME_WAITs are its own, not what the one before left.
    let first = KernelSummary {
        peak_time_wait_server_side: 64_000,
        own_peak_time_wait_server_side: Some(64_000),
        own_peak_time_wait_server_side_bytes: Some(64_000 * 248),
        own_peak_time_wait_client_side: Some(0),
        own_peak_time_wait_client_side_bytes: Some(0),
        ..Default::default()
    };
    let text = summary(&run(vec![
        point("1/2 (50%)", lan(), first),
        point("2/2 (100%)", lan(), three_origins()),
    ]));
    let row: Vec<&str> = line(&text, "2/2 (100%)    ").split_whitespace().collect();
    // load point (two words), ops/s, p99, TW server, TW clients, TW memory (value, unit),
    // server µs/op
    assert_eq!(row[4..9], ["1200", "3", "291.35", "KiB", "–"], "{text}");
}

#[test]
fn an_older_result_prints_its_time_waits_as_of_any_origin() {
    let older = KernelSummary {
        peak_time_wait_server_side: 64_200,
        peak_time_wait_server_side_bytes: 64_200 * 248,
        time_wait_seconds_server_side: 700_000.0,
        ..Default::default()
    };
    let lan = vec![population("lan", 1_000, 1_000, 3_000)];
    let text = summary(&run(vec![point("full load", lan, older)]));
    assert_eq!(
        line(&text, "TIME_WAIT peak"),
        "TIME_WAIT peak, any origin (earlier points' and the teardown's included): server \
         64200 (15.18 MiB), clients 0 (0 B) at 248 B each; 700000 / 0 socket-seconds"
    );
    assert!(!text.contains("carried over") && !text.contains("this point's own"));
}

/// The pooled 99th percentile of `populations`, merged here by hand, in ms as the reports
/// write it (three significant digits; the values here are above 100 ms).
fn pooled_p99_ms(populations: &[PopulationResult]) -> String {
    let mut all = Histogram::<u64>::new(3).unwrap();
    for p in populations {
        all.add(p.latency.total_us.decode().unwrap()).unwrap();
    }
    let ms = all.value_at_quantile(0.99) as f64 / 1000.0;
    assert!(ms >= 100.0, "{ms}");
    format!("{ms:.0}")
}

#[test]
fn a_fast_and_a_slow_population_print_the_pooled_p99_in_text_and_html_alike() {
    // 99,000 LAN requests of 1-3 ms, 2,000 modem requests of 1-20 s: the modem users' own p99
    // is near 20 s, the pooled p99 of all 101,000 requests near the slow ones' median.
    let populations = || {
        vec![
            population("lan", 99_000, 1_000, 3_000),
            population("modem", 2_000, 1_000_000, 20_000_000),
        ]
    };
    let pooled = pooled_p99_ms(&populations());
    let worst = format!(
        "{:.0}",
        populations()[1].latency.total_us.p99 as f64 / 1000.0
    );
    assert!(
        pooled.starts_with("10") && worst.starts_with("19"),
        "{pooled} {worst}"
    );
    let result = run(vec![
        point(
            "lan-alone",
            vec![population("lan", 99_000, 1_000, 3_000)],
            three_origins(),
        ),
        point("lan+modem", populations(), three_origins()),
    ]);

    // The text: the point's pooled row, and the side-by-side table.
    let text = summary(&result);
    let row: Vec<&str> = line(&text, "all pooled").split_whitespace().collect();
    // "all pooled", all, ops, mean, p50, p90, p99, p99.9, max
    assert_eq!(row[3], "101000");
    assert_eq!(row[7], pooled, "{text}");
    let table_row: Vec<&str> = line(&text, "lan+modem      ").split_whitespace().collect();
    assert_eq!(table_row[2], pooled, "{text}");
    assert!(!table_row.contains(&worst.as_str()), "{text}");

    // The HTML report's summary table says the same.
    let html = render_run(&result);
    let summary_row = html
        .split("<tr><td>")
        .find(|r| r.starts_with("lan+modem</td>"))
        .expect("a summary row of lan+modem");
    let cells: Vec<&str> = summary_row
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| &c[..c.find("</td>").unwrap()])
        .collect();
    // load, measured, ops, ops/s, Mbit/s, p50, p90, p99, p99.9, max, errors
    assert_eq!(cells[7], pooled, "{summary_row}");
}

/// Requests sent again and requests the end caught unanswered are in the terminal and on the
/// page, beside the errors, and a population without either says nothing of them.
#[test]
fn retries_and_unanswered_requests_are_reported_per_population() {
    let mut retried = population("lan", 1_000, 1_000, 3_000);
    retried.retries_on_new_connection = 7;
    retried.unanswered = 3;
    let quiet = population("other", 1_000, 1_000, 3_000);
    let result = run(vec![point(
        "full load",
        vec![retried, quiet],
        KernelSummary::default(),
    )]);
    let text = summary(&result);
    assert_eq!(
        line(&text, "sent again"),
        "7 sent again on a new connection (the server had closed the kept one); 3 unanswered \
         when the point ended"
    );
    assert_eq!(text.matches("sent again").count(), 1, "{text}");
    let html = render_run(&result);
    assert!(html.contains("<th class=\"num\">retries</th>"), "{html}");
    let lan_row = html
        .split("<tr><td>")
        .find(|r| r.starts_with("lan</td><td>"))
        .expect("lan's row in the populations table");
    assert!(
        lan_row.contains("<td class=\"num\">7</td>\n<td class=\"num\">3</td>"),
        "{lan_row}"
    );
}
