//! Synthetic results for the report tests: realistic shapes (three populations of the kinds the
//! scenarios use, SPECweb96 classes, a timeline with a warm-up, a spike and a dip) built from
//! real HDR histograms, deterministic (a fixed xorshift, no clock, no network).

#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use reports::model::*;

/// A deterministic xorshift64 stream.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A long-tailed latency around `median_us` (log-normal-ish, occasional 20x outliers).
    pub fn latency_us(&mut self, median_us: f64) -> u64 {
        let u = self.next_f64().max(1e-12);
        let tail = if self.next_f64() < 0.001 { 20.0 } else { 1.0 };
        (median_us * (-(u.ln()) * 0.7).exp() * tail).clamp(1.0, 59e6) as u64
    }
}

pub fn histogram(rng: &mut Rng, samples: usize, median_us: f64) -> HistogramData {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for _ in 0..samples {
        h.record(rng.latency_us(median_us)).unwrap();
    }
    HistogramData::from_histogram(&h)
}

fn totals(ops: u64, bytes: u64, measured_s: f64, errors: &[(&str, u64)]) -> Totals {
    let errors: BTreeMap<String, u64> = errors.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Totals {
        ops,
        ops_per_s: ops as f64 / measured_s,
        bytes,
        mbit_per_s: bytes as f64 * 8.0 / 1e6 / measured_s,
        errors_total: errors.values().sum(),
        errors,
    }
}

/// (name, kind, offered, ops/s, median latency µs, connections)
const POPULATIONS: [(&str, &str, f64, f64, f64, u64); 3] = [
    ("lan", "closed", 32.0, 12_000.0, 1_500.0, 32),
    ("modem", "closed", 2_000.0, 400.0, 900_000.0, 2_000),
    ("arrivals", "open", 500.0, 500.0, 2_500.0, 60),
];

/// One load point of `intervals` intervals (1 s each, the first `warmup` of them warm-up) with
/// the populations above scaled by `load_fraction`. `samples` per population histogram.
pub fn load_point(
    rng: &mut Rng,
    intervals: usize,
    warmup: usize,
    load_fraction: f64,
    samples: usize,
) -> LoadPoint {
    let measured_s = (intervals - warmup) as f64;
    let mut populations = Vec::new();
    let mut timelines = Vec::new();
    for (p, &(name, kind, offered, rate, median_us, conns)) in POPULATIONS.iter().enumerate() {
        let rate = rate * load_fraction;
        let median_us = median_us * (1.0 + load_fraction * load_fraction);
        let mut tl = PopulationTimeline {
            name: name.into(),
            ..Default::default()
        };
        for i in 0..intervals {
            let noise = 0.9 + 0.2 * rng.next_f64();
            // A stall a third of the way in and a burst at two thirds: the extremes a
            // down-sampled line must keep.
            let factor = if i == intervals / 3 {
                0.0
            } else if i == 2 * intervals / 3 {
                2.5
            } else {
                1.0
            };
            let ops = (rate * noise * factor) as u64;
            tl.ops.push(ops);
            tl.bytes.push(ops * 14_000);
            tl.errors.push(u64::from(i % 97 == 0 && p == 1));
            tl.open_connections
                .push((conns as f64 * (0.95 + 0.05 * rng.next_f64())) as u64);
            let spike = if i == intervals / 2 { 30.0 } else { 1.0 };
            tl.latency_p50_us
                .push(if ops == 0 { 0 } else { median_us as u64 });
            tl.latency_p99_us.push(if ops == 0 {
                0
            } else {
                (median_us * 3.0 * spike) as u64
            });
        }
        let ops: u64 = tl.ops[warmup..].iter().sum();
        let bytes: u64 = tl.bytes[warmup..].iter().sum();
        let errors: &[(&str, u64)] = if p == 1 {
            &[("timeout", 3), ("reset", 1)]
        } else {
            &[]
        };
        let classes = (0..4)
            .map(|c| ClassResult {
                class: format!("class{c}"),
                ops: ops / 4,
                bytes: bytes / 4,
                latency: LatencySet {
                    connect_us: histogram(rng, samples / 8, median_us / 4.0),
                    first_byte_us: histogram(rng, samples / 8, median_us / 2.0),
                    total_us: histogram(rng, samples / 4, median_us * (1.0 + c as f64 * 0.3)),
                },
            })
            .collect();
        populations.push(PopulationResult {
            name: name.into(),
            kind: kind.into(),
            offered: offered * load_fraction,
            totals: totals(ops, bytes, measured_s, errors),
            latency: LatencySet {
                connect_us: histogram(rng, samples / 4, median_us / 4.0),
                first_byte_us: histogram(rng, samples / 4, median_us / 2.0),
                total_us: histogram(rng, samples, median_us),
            },
            classes,
            schedule_lag_us: (kind == "open").then(|| histogram(rng, samples / 4, 80.0)),
            queued_arrivals: 0,
            peak_open_connections: conns,
            requests_sent: ops + 10,
            responses_completed: ops,
            connections_established: ops / 2,
            // Little's law and line figures: see `with_slow_lines`.
            ..Default::default()
        });
        timelines.push(tl);
    }
    let ops = populations.iter().map(|p| p.totals.ops).sum();
    let bytes = populations.iter().map(|p| p.totals.bytes).sum();
    let mut point = LoadPoint {
        label: format!("{:.0}% load", load_fraction * 100.0),
        load_fraction,
        warmup_s: warmup as f64,
        measured_s,
        totals: totals(ops, bytes, measured_s, &[("timeout", 3), ("reset", 1)]),
        populations,
        timeline: Timeline {
            interval_s: 1.0,
            measured_from_index: warmup,
            populations: timelines,
        },
        ..Default::default()
    };
    point.kernel = Some(kernel(rng, intervals, warmup, load_fraction));
    point
}

/// Kernel samples every 250 ms: server-side TIME_WAIT building up for 60 s (the server closes
/// first), a few client-side ones, all begun in this point, socket memory, a server growing
/// slowly, both CPUs busy.
pub fn kernel(rng: &mut Rng, intervals: usize, warmup: usize, load: f64) -> KernelAccounting {
    let object_bytes = 248;
    let mut samples = Vec::new();
    let (mut server_cpu_us, mut loadgen_cpu_us) = (0u64, 0u64);
    for i in 0..=intervals * 4 {
        let t_s = i as f64 / 4.0;
        let tw_server = (12_000.0 * load * t_s.min(60.0) * (0.97 + 0.06 * rng.next_f64())) as u64;
        let tw_client = (20.0 * rng.next_f64()) as u64;
        server_cpu_us += (250_000.0 * 0.8 * load * (0.9 + 0.2 * rng.next_f64())) as u64;
        loadgen_cpu_us += (250_000.0 * 0.9 * (0.9 + 0.2 * rng.next_f64())) as u64;
        let rss = 40_000_000 + (t_s * 20_000.0) as u64;
        samples.push(KernelSample {
            elapsed_ms: (t_s * 1000.0) as u64,
            tcp_in_use: 2_100,
            tcp_time_wait: tw_server + tw_client,
            tcp_memory_bytes: (3_000_000.0 + 1_000_000.0 * rng.next_f64()) as u64,
            time_wait_server_side: tw_server,
            time_wait_client_side: tw_client,
            time_wait_server_side_bytes: tw_server * object_bytes,
            time_wait_client_side_bytes: tw_client * object_bytes,
            time_wait_server_side_since_point_start: Some(tw_server),
            time_wait_client_side_since_point_start: Some(tw_client),
            time_wait_server_side_since_window_end: Some(0),
            time_wait_client_side_since_window_end: Some(0),
            server_rss_bytes: Some(rss),
            server_pss_bytes: Some(rss - 4_000_000),
            server_cpu_us: Some(server_cpu_us),
            server_threads: Some(1),
            server_open_fds: Some(2_100),
            server_processes: Some(1),
            loadgen_cpu_us,
            ..Default::default()
        });
    }
    let peak_server = samples
        .iter()
        .map(|s| s.time_wait_server_side)
        .max()
        .unwrap();
    let peak_client = samples
        .iter()
        .map(|s| s.time_wait_client_side)
        .max()
        .unwrap();
    let measured_ops = 12_900.0 * load * (intervals - warmup) as f64;
    KernelAccounting {
        sample_interval_ms: 250,
        time_wait_object_bytes: object_bytes,
        time_wait_bytes_estimated: false,
        summary: KernelSummary {
            peak_time_wait_server_side: peak_server,
            peak_time_wait_client_side: peak_client,
            peak_time_wait_server_side_bytes: peak_server * object_bytes,
            peak_time_wait_client_side_bytes: peak_client * object_bytes,
            time_wait_seconds_server_side: peak_server as f64 * 30.0,
            time_wait_seconds_client_side: peak_client as f64 * 30.0,
            own_peak_time_wait_server_side: Some(peak_server),
            own_peak_time_wait_client_side: Some(peak_client),
            own_peak_time_wait_server_side_bytes: Some(peak_server * object_bytes),
            own_peak_time_wait_client_side_bytes: Some(peak_client * object_bytes),
            own_time_wait_seconds_server_side: Some(peak_server as f64 * 30.0),
            own_time_wait_seconds_client_side: Some(peak_client as f64 * 30.0),
            carried_over_time_wait_server_side: Some(0),
            carried_over_time_wait_client_side: Some(0),
            teardown_time_wait_server_side: Some(0),
            teardown_time_wait_client_side: Some(0),
            peak_tcp_memory_bytes: 4_000_000,
            server_cpu_us_per_op: Some(server_cpu_us as f64 / measured_ops),
            server_peak_rss_bytes: samples.last().and_then(|s| s.server_rss_bytes),
            server_memory_per_connection_bytes: Some(1_234.0),
            loadgen_cpu_share: 0.9,
            sampler_cpu_share: 0.01,
            ..Default::default()
        },
        samples,
        probe_errors: vec![],
    }
}

pub const SCENARIO_TOML: &str = r#"name = "synthetic"
description = "three populations <lan & modem & arrivals>"
# a comment with "quotes", <b>tags</b> & {{body}} that must stay text
seed = 1996
"#;

pub fn run_result(points: Vec<LoadPoint>) -> RunResult {
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "loadgen".into(),
        tool_version: "0.1.0".into(),
        scenario_name: "synthetic".into(),
        scenario_toml: SCENARIO_TOML.into(),
        seed: 1996,
        started_utc: "2026-01-01T00:00:00Z".into(),
        valid: true,
        server: ServerInfo {
            kind: "builtin".into(),
            command_line: "loadgen serve-builtin --listen 127.0.0.1:0 --close server".into(),
            address: "127.0.0.1:40000".into(),
            stats: Some(
                serde_json::json!({"requests_total": 12345, "closes": {"server_first": 1}}),
            ),
            exit: "exit status: 0".into(),
            notes: vec![],
        },
        generator: GeneratorInfo {
            workers: 1,
            cpus: vec![0],
            source_addresses: (1..=4).map(|i| format!("127.0.10.{i}")).collect(),
        },
        isolation: Isolation {
            mode: IsolationMode::HostNamespace,
            reason: Some("not root".into()),
            sysctls_set: vec![],
            delay_path: None,
        },
        environment: Some(Environment::default()),
        load_points: points,
        // Fields added to the model later keep their defaults here.
        ..Default::default()
    }
}

/// A realistic single-point run: 60 one-second intervals, 5 of them warm-up.
pub fn realistic() -> RunResult {
    let mut rng = Rng::new(7);
    run_result(vec![load_point(&mut rng, 60, 5, 1.0, 4_000)])
}

/// A sweep of `points` load points, 10 % to 100 %.
pub fn sweep(points: usize) -> RunResult {
    let mut rng = Rng::new(11);
    let lps = (1..=points)
        .map(|k| load_point(&mut rng, 12, 2, k as f64 / points as f64, 2_000))
        .collect();
    run_result(lps)
}

/// One hour at one-second intervals, three populations.
pub fn one_hour() -> RunResult {
    let mut rng = Rng::new(3);
    run_result(vec![load_point(&mut rng, 3600, 60, 1.0, 50_000)])
}

/// The `data-chart` kinds of a page, in order.
pub fn chart_kinds(html: &str) -> Vec<String> {
    html.split("data-chart=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

/// A histogram holding exactly `values` (each `(value, times)`). Values below 2048, or one less
/// than a multiple of the bucket's unit above it, come back from percentiles unchanged.
pub fn exact_histogram(values: &[(u64, u64)]) -> HistogramData {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for &(value, times) in values {
        h.record_n(value, times).unwrap();
    }
    HistogramData::from_histogram(&h)
}

/// The slow-line figures of the `modem` population below: two line rates, netem RTT; replies
/// achieved 1 500 B/s at the low end (p10) and 5 003 B/s at the median; slowdown ×1.02 at the
/// median and ×1.80 at p99.
pub fn modem_line() -> LineFigures {
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
        achieved_bytes_per_s: exact_histogram(&[(1_500, 10), (5_003, 40), (6_003, 50)]),
        slowdown_milli: exact_histogram(&[(1_020, 90), (1_800, 10)]),
        pages_started: 1_234,
        pages_completed: 1_200,
        lingering_closes: 345,
        retries_on_new_connection: 0,
    }
}

/// Little's law figures: (mean open, per s, lifetime s, predicted, in flight, predicted).
pub const CONCURRENCY: [(&str, [f64; 6]); 3] = [
    ("lan", [31.8, 8_000.0, 0.004, 32.0, 30.2, 30.5]),
    ("modem", [1_900.0, 20.0, 100.0, 2_000.0, 1_500.0, 1_600.0]),
    ("arrivals", [12.0, 500.0, 0.025, 12.5, 6.0, 6.0]),
];

/// `result` as a run with slow-line users: the `modem` population of every point becomes kind
/// `modem` with `modem_line()`, every population gets Little's law figures, the kernel summary
/// the generator's memory, the isolation a delay path.
pub fn with_slow_lines(mut result: RunResult) -> RunResult {
    for point in &mut result.load_points {
        for p in &mut point.populations {
            if p.name == "modem" {
                p.kind = "modem".into();
                p.line = Some(modem_line());
            }
            if let Some((_, c)) = CONCURRENCY.iter().find(|(name, _)| *name == p.name) {
                p.concurrency = Some(Concurrency {
                    mean_open_connections: c[0],
                    connections_per_s: c[1],
                    mean_connection_lifetime_s: c[2],
                    predicted_open_connections: c[3],
                    mean_requests_in_flight: c[4],
                    predicted_requests_in_flight: c[5],
                    connections_closed: 0,
                });
            }
        }
        if let Some(kernel) = &mut point.kernel {
            kernel.summary.loadgen_rss_start_bytes = Some(8 << 20);
            kernel.summary.loadgen_peak_rss_bytes = Some(12 << 20);
            kernel.summary.loadgen_memory_per_connection_bytes = Some(2_048.0);
        }
    }
    result.isolation.delay_path = Some(DelayPath {
        server_address: "10.77.0.1:8080".into(),
        fast_sources: "10.77.1.0/24".into(),
        delayed_sources: "10.77.2.0/24".into(),
        one_way_delay_ms: 150.0,
        delay_line: None,
        commands: vec![
            "ip link add lg0 type veth peer name srv0".into(),
            "tc qdisc add dev lg0 root handle 1: prio bands 3 priomap <all fast>".into(),
        ],
    });
    result
}

/// Two variants of one run: `lan-alone` (the LAN clients and the arrivals) and `lan+modem`
/// (the same plus the slow-line users), where the LAN clients' latency doubles and their
/// throughput drops by a fifth.
pub fn variants() -> RunResult {
    let mut rng = Rng::new(13);
    let mut alone = load_point(&mut rng, 12, 2, 1.0, 2_000);
    alone.label = "lan-alone".into();
    alone.populations.retain(|p| p.name != "modem");
    alone.timeline.populations.retain(|p| p.name != "modem");
    let mut joined = load_point(&mut rng, 12, 2, 1.0, 2_000);
    joined.label = "lan+modem".into();
    for (point, ops_per_s, p50, p99) in [
        (&mut alone, 12_000.0, 1_500, 4_500),
        (&mut joined, 9_600.0, 3_000, 9_000),
    ] {
        let lan = &mut point.populations[0];
        lan.totals.ops_per_s = ops_per_s;
        lan.latency.total_us.p50 = p50;
        lan.latency.total_us.p99 = p99;
    }
    with_slow_lines(run_result(vec![alone, joined]))
}
