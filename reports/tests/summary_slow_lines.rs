//! The text summary of runs with slow-line (modem) users: one line per modem population with its
//! line and what the replies got out of it, Little's law per population, the generator's memory
//! per connection, and for several load points each population side by side, "not run" where a
//! variant left it out. Results from before these fields print as they did.

use hdrhistogram::Histogram;
use reports::model::*;
use reports::render::text::print_summary;

/// A histogram holding exactly `values` (each `(value, times)`), all below 2048 or at the top of
/// their HDR bucket, so percentiles come back unchanged.
fn exact(values: &[(u64, u64)]) -> HistogramData {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for &(value, times) in values {
        h.record_n(value, times).unwrap();
    }
    HistogramData::from_histogram(&h)
}

fn population(
    name: &str,
    kind: &str,
    ops_per_s: f64,
    p50_us: u64,
    p99_us: u64,
) -> PopulationResult {
    PopulationResult {
        name: name.into(),
        kind: kind.into(),
        totals: Totals {
            ops: (ops_per_s * 10.0) as u64,
            ops_per_s,
            ..Default::default()
        },
        latency: LatencySet {
            total_us: exact(&[(p50_us, 60), (p99_us, 40)]),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn concurrency(c: [f64; 6]) -> Option<Concurrency> {
    Some(Concurrency {
        mean_open_connections: c[0],
        connections_per_s: c[1],
        mean_connection_lifetime_s: c[2],
        predicted_open_connections: c[3],
        mean_requests_in_flight: c[4],
        predicted_requests_in_flight: c[5],
        connections_closed: 0,
    })
}

fn modem_line() -> LineFigures {
    LineFigures {
        rtt_mode: "netem".into(),
        rtt_mode_reason: None,
        rtt_ms: 300.0,
        downstream_bps: vec![
            LineRateShare {
                bps: 56_000.0,
                share: 0.75,
            },
            LineRateShare {
                bps: 28_800.0,
                share: 0.25,
            },
        ],
        upstream_bps: 33_600.0,
        payload_bytes_per_s: 5_900.0,
        receive_window_bytes: 8_192,
        mss_bytes: 536,
        achieved_bytes_per_s: exact(&[(1_500, 10), (5_003, 40), (6_003, 50)]),
        slowdown_milli: exact(&[(1_020, 90), (1_800, 10)]),
        pages_started: 1_234,
        pages_completed: 1_200,
        lingering_closes: 345,
        retries_on_new_connection: 0,
    }
}

/// Two variants: the LAN clients alone (p50 1.50 ms at 12 000 ops/s), then with 2 000 modem
/// users beside them (LAN p50 doubles).
fn variants() -> RunResult {
    let kernel = |with_memory: bool| KernelAccounting {
        summary: KernelSummary {
            loadgen_rss_start_bytes: with_memory.then_some(8 << 20),
            loadgen_peak_rss_bytes: with_memory.then_some(12 << 20),
            loadgen_memory_per_connection_bytes: with_memory.then_some(2_048.0),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut lan_alone = population("lan", "closed", 12_000.0, 1_500, 1_999);
    lan_alone.concurrency = concurrency([31.8, 8_000.0, 0.004, 32.0, 30.2, 30.5]);
    let mut lan_joined = population("lan", "closed", 9_600.0, 1_800, 2_047);
    lan_joined.concurrency = concurrency([31.8, 8_000.0, 0.004, 32.0, 30.2, 30.5]);
    let mut modem = population("modem", "modem", 432.0, 1_000, 2_000);
    modem.line = Some(modem_line());
    modem.concurrency = concurrency([1_900.0, 20.0, 100.0, 2_000.0, 1_500.0, 1_600.0]);
    RunResult {
        scenario_name: "lan-and-modems".into(),
        isolation: Isolation {
            delay_path: Some(DelayPath {
                server_address: "10.77.0.1:8080".into(),
                fast_sources: "10.77.1.0/24".into(),
                delayed_sources: "10.77.2.0/24".into(),
                one_way_delay_ms: 150.0,
                delay_line: None,
                commands: vec![],
            }),
            ..Default::default()
        },
        valid: true,
        load_points: vec![
            LoadPoint {
                label: "lan-alone".into(),
                populations: vec![lan_alone],
                kernel: Some(kernel(true)),
                ..Default::default()
            },
            LoadPoint {
                label: "lan+modem".into(),
                populations: vec![lan_joined, modem],
                kernel: Some(kernel(true)),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn summary(result: &RunResult) -> String {
    let mut out = Vec::new();
    print_summary(result, &mut out);
    String::from_utf8(out).unwrap()
}

/// The whitespace-separated words of the first line that starts (after indentation) with
/// `first` and contains `with`.
fn words<'a>(text: &'a str, first: &str, with: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.trim_start().starts_with(first) && l.contains(with))
        .unwrap_or_else(|| panic!("no line {first} .. {with} in\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn a_modem_population_has_one_line_of_line_figures() {
    let text = summary(&variants());
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("line 56k")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(
        lines[0].trim(),
        "line 56k(75%)+28.8k(25%)/33.6k bit/s, RTT 300 ms (netem): achieved p50 5003 B/s \
         (p10 1500) of 5900 B/s payload; slowdown p50 ×1.02 p99 ×1.80; pages \
         1200/1234 completed, 345 lingering closes"
    );
    assert!(text.contains("delay path: slow-line clients from 10.77.2.0/24 delayed 150 ms"));
}

#[test]
fn every_population_has_its_littles_law_line() {
    let text = summary(&variants());
    // lan twice (one per variant), modem once
    assert_eq!(text.matches("Little's law:").count(), 3, "{text}");
    assert!(text.contains(
        "Little's law: connections 31.8 open vs 32.0 predicted (×0.99); requests in flight \
         30.2 vs 30.5 (×0.99)"
    ));
    assert!(text.contains(
        "Little's law: connections 1900 open vs 2000 predicted (×0.95); requests \
         in flight 1500 vs 1600 (×0.94)"
    ));
}

#[test]
fn the_generators_memory_per_connection_is_printed() {
    let text = summary(&variants());
    assert!(
        text.contains(
            "memory 2.00 KiB/connection (RSS 8.00 MiB before the load, 12.00 MiB at peak)"
        ),
        "{text}"
    );
}

#[test]
fn each_population_is_set_side_by_side_across_the_variants() {
    let text = summary(&variants());
    assert!(text.contains("population   load point"));
    assert_eq!(
        words(&text, "lan ", "lan-alone"),
        ["lan", "lan-alone", "12000", "1.50", "2.00"]
    );
    assert_eq!(
        words(&text, "lan+modem", "9600"),
        ["lan+modem", "9600", "1.80", "2.05"]
    );
    assert_eq!(
        words(&text, "modem ", "lan-alone"),
        ["modem", "lan-alone", "not", "run"]
    );
    assert_eq!(
        words(&text, "lan+modem", "432"),
        ["lan+modem", "432", "1.00", "2.00"]
    );
}

#[test]
fn results_without_the_new_fields_print_as_before() {
    let mut old = variants();
    old.isolation.delay_path = None;
    for point in &mut old.load_points {
        point.kernel = None;
        for p in &mut point.populations {
            p.concurrency = None;
            p.line = None;
        }
    }
    let text = summary(&old);
    for absent in ["Little's law", "line 56k", "delay path", "B/connection"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    // one load point: no side-by-side table
    old.load_points.truncate(1);
    assert!(!summary(&old).contains("population   load point"));
}
