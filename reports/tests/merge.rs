//! `reports::merge` over synthetic parts of a sharded run: merged histograms equal the histogram
//! of all samples (counts exact, percentiles equal, per interval too), counters add up and
//! rates are recomputed, timelines line up by wall clock, client-side TIME_WAITs add up while
//! the server's figures come once; parts that do not belong together are refused naming them,
//! and an invalid, late or unsynchronised part makes the merged run invalid naming it.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::Rng;
use hdrhistogram::Histogram;
use reports::merge::{merge, MergeError, Part, CLOCK_MAX_ERROR_US};
use reports::model::*;

/// Agreed start of the synthetic run: 2026-11-30T09:00:00Z.
const START_AT_MS: u64 = 1_796_029_200_000;
const INTERVALS: usize = 4;
const WARMUP_INTERVALS: usize = 1;

fn latency_histogram(values: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 600_000_000, 3).unwrap();
    for &v in values {
        h.record(v).unwrap();
    }
    h
}

fn interval_histogram(values: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 600_000_000, 2).unwrap();
    for &v in values {
        h.record(v).unwrap();
    }
    h
}

fn data(values: &[u64]) -> HistogramData {
    HistogramData::from_histogram(&latency_histogram(values))
}

/// What one synthetic shard measured, kept to check the merge against.
struct Measured {
    /// Response times per interval, warm-up interval first.
    per_interval: Vec<Vec<u64>>,
    /// Schedule lags of the measured window.
    lags: Vec<u64>,
}

impl Measured {
    fn window(&self) -> Vec<u64> {
        self.per_interval[WARMUP_INTERVALS..].concat()
    }
}

/// Shard `index` of `count`: one open-loop population with two classes, `samples` replies per
/// interval, its point beginning `late_ms` after the agreed start, on host `host`.
fn generator(index: u32, count: u32, samples: usize, late_ms: u64) -> (Part, Measured) {
    let mut rng = Rng::new(7 + u64::from(index) * 1000);
    let per_interval: Vec<Vec<u64>> = (0..INTERVALS)
        .map(|_| {
            (0..samples)
                .map(|_| rng.latency_us(800.0 + 300.0 * f64::from(index)))
                .collect()
        })
        .collect();
    let lags: Vec<u64> = (0..samples).map(|_| 1 + rng.latency_us(20.0)).collect();
    let measured = Measured { per_interval, lags };
    let window = measured.window();
    // Every third reply is of class 0, the others of class 1.
    let class0: Vec<u64> = window.iter().copied().step_by(3).collect();
    let class1: Vec<u64> = window
        .iter()
        .copied()
        .enumerate()
        .filter(|(n, _)| n % 3 != 0)
        .map(|(_, v)| v)
        .collect();
    let latency_set = |values: &[u64]| LatencySet {
        connect_us: data(&values.iter().map(|v| v / 10 + 1).collect::<Vec<_>>()),
        first_byte_us: data(&values.iter().map(|v| v / 2 + 1).collect::<Vec<_>>()),
        total_us: data(values),
    };
    let ops = window.len() as u64;
    let errors = u64::from(index) + 1;
    let measured_s = 3.0 - 0.001 * f64::from(index);
    let bytes = ops * 1000;
    let totals = Totals {
        ops,
        ops_per_s: ops as f64 / measured_s,
        bytes,
        mbit_per_s: bytes as f64 * 8.0 / 1e6 / measured_s,
        errors_total: errors,
        errors: BTreeMap::from([("reset".to_string(), errors)]),
    };
    let population = PopulationResult {
        name: "web".into(),
        kind: "open".into(),
        offered: 900.0,
        totals: totals.clone(),
        latency: latency_set(&window),
        classes: vec![
            ClassResult {
                class: "class0".into(),
                ops: class0.len() as u64,
                bytes: class0.len() as u64 * 1000,
                latency: latency_set(&class0),
            },
            ClassResult {
                class: "class1".into(),
                ops: class1.len() as u64,
                bytes: class1.len() as u64 * 1000,
                latency: latency_set(&class1),
            },
        ],
        schedule_lag_us: Some(data(&measured.lags)),
        queued_arrivals: 2 * u64::from(index),
        unanswered: 1,
        retries_on_new_connection: 3,
        peak_open_connections: 40 + u64::from(index),
        requests_sent: (INTERVALS * samples) as u64 + 5,
        responses_completed: (INTERVALS * samples) as u64,
        connections_established: (INTERVALS * samples) as u64 + 5,
        concurrency: Some(Concurrency {
            mean_open_connections: 10.0 + f64::from(index),
            connections_per_s: 100.0,
            mean_connection_lifetime_s: 0.1 * f64::from(index + 1),
            connections_closed: 300 * u64::from(index + 1),
            predicted_open_connections: 0.0,
            mean_requests_in_flight: 5.0,
            predicted_requests_in_flight: 0.0,
        }),
        line: None,
        viewer: None,
    };
    let timeline = Timeline {
        interval_s: 1.0,
        measured_from_index: WARMUP_INTERVALS,
        populations: vec![PopulationTimeline {
            name: "web".into(),
            ops: measured
                .per_interval
                .iter()
                .map(|v| v.len() as u64)
                .collect(),
            bytes: measured
                .per_interval
                .iter()
                .map(|v| v.len() as u64 * 1000)
                .collect(),
            errors: vec![0; INTERVALS],
            open_connections: (0..INTERVALS as u64)
                .map(|i| 30 + i + u64::from(index))
                .collect(),
            latency_p50_us: measured
                .per_interval
                .iter()
                .map(|v| interval_histogram(v).value_at_quantile(0.5))
                .collect(),
            latency_p99_us: measured
                .per_interval
                .iter()
                .map(|v| interval_histogram(v).value_at_quantile(0.99))
                .collect(),
            latency_hdr_v2_deflate_base64: measured
                .per_interval
                .iter()
                .map(|v| encode_histogram(&interval_histogram(v)))
                .collect(),
            ..PopulationTimeline::default()
        }],
    };
    let point = LoadPoint {
        label: "full load".into(),
        load_fraction: 1.0,
        warmup_s: 1.0,
        measured_s,
        totals,
        populations: vec![population],
        timeline,
        kernel: Some(client_kernel(index)),
        server_stats: None,
        start_unix_ns: Some((START_AT_MS + late_ms) * 1_000_000 + 300_000),
    };
    let result = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "loadgen".into(),
        tool_version: "0.1.0".into(),
        scenario_name: "quick".into(),
        scenario_toml: "name = \"quick\"\nseed = 1996\nduration = \"3s\"\n".into(),
        seed: 1996,
        started_utc: "2026-11-30T08:59:55Z".into(),
        valid: true,
        load_points: vec![point],
        // Each generator on a CPU of its own, as on hosts of their own.
        generator: reports::model::GeneratorInfo {
            workers: 1,
            cpus: vec![index as usize],
            source_addresses: Vec::new(),
        },
        shard: Some(ShardInfo {
            role: "generator".into(),
            index,
            count,
            start_at_unix_ms: START_AT_MS,
            slot_ms: 9000,
            hostname: format!("gen{index}"),
            boot_id: Some("6d1f0c2e-0000-4000-8000-000000000001".into()),
            clock: ClockSync {
                synchronised: Some(false),
                max_error_us: Some(16_000_000),
                est_error_us: Some(16_000_000),
            },
            net_namespace: Some(format!("net:[40265320{index}]")),
        }),
        ..RunResult::default()
    };
    let part = Part {
        source: PathBuf::from(format!(
            "runs/quick/2026-11-30T09-00-00Z/shard-{index}-of-{count}"
        )),
        result,
    };
    (part, measured)
}

/// A generator host's samples: client-side TIME_WAITs growing by `10 x (index + 1)` a sample.
fn client_kernel(index: u32) -> KernelAccounting {
    let step = 10 * u64::from(index + 1);
    let samples = (0..9u64)
        .map(|n| KernelSample {
            elapsed_ms: n * 500 + u64::from(index),
            time_wait_client_side: n * step,
            time_wait_client_side_bytes: n * step * 256,
            time_wait_client_side_since_point_start: Some(n * step),
            time_wait_client_side_since_window_end: Some(0),
            time_wait_server_side: 999,
            loadgen_cpu_us: n * 100_000,
            ..KernelSample::default()
        })
        .collect();
    KernelAccounting {
        sample_interval_ms: 500,
        time_wait_object_bytes: 256,
        time_wait_bytes_estimated: false,
        samples,
        summary: KernelSummary {
            peak_time_wait_client_side: 8 * step,
            time_wait_seconds_client_side: 16.0 * step as f64,
            loadgen_cpu_share: 0.2 + 0.1 * f64::from(index),
            loadgen_rss_start_bytes: Some(10_000_000),
            loadgen_peak_rss_bytes: Some(12_000_000),
            loadgen_memory_per_connection_bytes: Some(50_000.0),
            peak_time_wait_server_side: 999,
            ..KernelSummary::default()
        },
        probe_errors: vec!["slabinfo unreadable".into()],
    }
}

/// The server side's part: its process's CPU over the samples, its own counters.
fn server(requests_total: u64) -> Part {
    let (mut part, _) = generator(0, 1, 1, 0);
    let result = &mut part.result;
    result.shard = Some(ShardInfo {
        role: "server".into(),
        index: 0,
        count: 0,
        ..result.shard.clone().unwrap()
    });
    let point = &mut result.load_points[0];
    point.populations.clear();
    point.timeline.populations.clear();
    point.totals = Totals::default();
    point.server_stats = Some(serde_json::json!({
        "requests_total": requests_total, "connections_accepted": 10
    }));
    point.kernel = Some(KernelAccounting {
        sample_interval_ms: 500,
        time_wait_object_bytes: 256,
        time_wait_bytes_estimated: false,
        samples: (0..9u64)
            .map(|n| KernelSample {
                elapsed_ms: n * 500,
                time_wait_server_side: 7 * n,
                time_wait_client_side: 12_345,
                server_cpu_us: Some(n * 50_000),
                server_rss_bytes: Some(1_000_000 + n * 1000),
                ..KernelSample::default()
            })
            .collect(),
        summary: KernelSummary {
            peak_time_wait_server_side: 56,
            peak_tcp_memory_bytes: 4096,
            server_peak_rss_bytes: Some(1_008_000),
            listen_drops: 3,
            server_ctx_switches_per_s: Some(2000.0),
            ..KernelSummary::default()
        },
        probe_errors: Vec::new(),
    });
    part.source = PathBuf::from("runs/quick/2026-11-30T09-00-00Z/server");
    part
}

fn shards(count: u32, samples: usize) -> (Vec<Part>, Vec<Measured>) {
    (0..count).map(|i| generator(i, count, samples, 0)).unzip()
}

fn refusal(parts: &[Part]) -> String {
    match merge(parts, "loadgen merge test") {
        Ok(_) => panic!("the parts were merged"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn merged_histograms_are_the_histogram_of_all_samples() {
    let (parts, measured) = shards(3, 700);
    let merged = merge(&parts, "loadgen merge test").unwrap();
    let population = &merged.load_points[0].populations[0];
    let all: Vec<u64> = measured.iter().flat_map(Measured::window).collect();
    let expected = latency_histogram(&all);
    let total = population.latency.total_us.decode().unwrap();
    assert_eq!(total.len(), all.len() as u64);
    assert_eq!(total.len(), expected.len());
    for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
        assert_eq!(
            total.value_at_quantile(q),
            expected.value_at_quantile(q),
            "q {q}"
        );
    }
    assert_eq!(population.latency.total_us, data(&all));
    let lags: Vec<u64> = measured.iter().flat_map(|m| m.lags.clone()).collect();
    assert_eq!(population.schedule_lag_us, Some(data(&lags)));
    // The classes too: each the histogram of its own samples over every shard.
    let class0: Vec<u64> = measured
        .iter()
        .flat_map(|m| m.window().into_iter().step_by(3).collect::<Vec<_>>())
        .collect();
    assert_eq!(population.classes[0].latency.total_us, data(&class0));
    assert_eq!(
        population.classes[0].ops + population.classes[1].ops,
        all.len() as u64
    );
    // Not an average of the shards' percentiles: shard 2 is slower than shard 0.
    let p99s: Vec<u64> = parts
        .iter()
        .map(|p| p.result.load_points[0].populations[0].latency.total_us.p99)
        .collect();
    let mean_p99 = p99s.iter().sum::<u64>() / 3;
    assert_ne!(population.latency.total_us.p99, mean_p99);
    // Each interval of the timeline: its histograms added, its percentiles read off the sum.
    let series = &merged.load_points[0].timeline.populations[0];
    for i in 0..INTERVALS {
        let values: Vec<u64> = measured
            .iter()
            .flat_map(|m| m.per_interval[i].clone())
            .collect();
        let h = interval_histogram(&values);
        let back = decode_histogram(&series.latency_hdr_v2_deflate_base64[i]).unwrap();
        assert_eq!(back.len(), values.len() as u64);
        assert_eq!(series.latency_p50_us[i], h.value_at_quantile(0.5));
        assert_eq!(series.latency_p99_us[i], h.value_at_quantile(0.99));
        assert_eq!(series.ops[i], values.len() as u64);
    }
}

#[test]
fn counters_add_up_and_rates_use_the_common_window() {
    let (mut parts, _) = shards(3, 100);
    parts.push(server(3 * (INTERVALS as u64 * 100 + 5)));
    let merged = merge(&parts, "loadgen merge a b c").unwrap();
    assert!(merged.valid, "{:?}", merged.invalid_reasons);
    assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
    let point = &merged.load_points[0];
    let each = |f: fn(&PopulationResult) -> u64| -> u64 {
        parts[..3]
            .iter()
            .map(|p| f(&p.result.load_points[0].populations[0]))
            .sum()
    };
    let population = &point.populations[0];
    assert_eq!(population.totals.ops, each(|p| p.totals.ops));
    assert_eq!(point.totals.ops, 3 * 300);
    assert_eq!(point.totals.bytes, 3 * 300 * 1000);
    assert_eq!(point.totals.errors_total, 1 + 2 + 3);
    assert_eq!(point.totals.errors["reset"], 6);
    assert_eq!(population.requests_sent, each(|p| p.requests_sent));
    assert_eq!(
        population.queued_arrivals,
        2 + 4,
        "shard 0's none, 1's 2, 2's 4"
    );
    assert_eq!(population.retries_on_new_connection, 9);
    assert_eq!(
        population.offered, 900.0,
        "the whole population's, not a sum"
    );
    // The common window is the shortest shard's.
    assert_eq!(point.measured_s, 2.998);
    assert!((point.totals.ops_per_s - 900.0 / 2.998).abs() < 1e-9);
    // Little's law: the lifetime weighted by closes, the predictions recomputed.
    let concurrency = population.concurrency.as_ref().unwrap();
    assert_eq!(concurrency.connections_closed, 300 + 600 + 900);
    let lifetime = (0.1 * 300.0 + 0.2 * 600.0 + 0.3 * 900.0) / 1800.0;
    assert!((concurrency.mean_connection_lifetime_s - lifetime).abs() < 1e-12);
    assert!(
        (concurrency.predicted_open_connections
            - concurrency.connections_per_s * concurrency.mean_connection_lifetime_s)
            .abs()
            < 1e-9
    );
    assert!((concurrency.mean_open_connections - 33.0).abs() < 1e-12);
    // Peak open connections: the summed timeline's highest interval (30+31+32 + 3 x 3).
    assert_eq!(population.peak_open_connections, 102);
    // Kernel: client-side TIME_WAITs add up over the shards, the server's come once.
    let kernel = point.kernel.as_ref().unwrap();
    assert_eq!(
        kernel.summary.peak_time_wait_client_side,
        8 * (10 + 20 + 30)
    );
    assert_eq!(kernel.summary.time_wait_seconds_client_side, 16.0 * 60.0);
    assert_eq!(kernel.summary.peak_time_wait_server_side, 56);
    assert_eq!(kernel.summary.listen_drops, 3);
    assert!(kernel.samples.iter().all(|s| s.time_wait_server_side < 999));
    assert!((kernel.summary.loadgen_cpu_share - 0.4).abs() < 1e-12);
    assert_eq!(kernel.summary.loadgen_peak_rss_bytes, Some(36_000_000));
    // The server's CPU (50 ms a sample, 500 ms apart) between the samples bracketing the
    // window (1 s to 3.998 s: those at 1.0 s and 3.5 s), per merged op.
    let cpu = kernel.summary.server_cpu_us_per_op.unwrap();
    assert!((cpu - 250_000.0 / 900.0).abs() < 1e-9, "{cpu}");
    assert!(kernel
        .probe_errors
        .iter()
        .any(|e| e.starts_with("shard 0/3: ")));
    // The parts, generators by index then the server, each with its own figures.
    let roles: Vec<(String, u32)> = merged
        .shards
        .iter()
        .map(|s| (s.role.clone(), s.index))
        .collect();
    assert_eq!(
        roles,
        [
            ("generator", 0),
            ("generator", 1),
            ("generator", 2),
            ("server", 0)
        ]
        .map(|(r, i)| (r.to_string(), i))
    );
    assert_eq!(merged.shards[1].ops, 300);
    assert_eq!(merged.shards[1].start_offset_ms, Some(0.3));
    assert!(merged.shard.is_none());
    assert_eq!(merged.started_utc, "2026-11-30T09:00:00Z");
    assert_eq!(merged.command_line, "loadgen merge a b c");
    assert_eq!(merged.generator.workers, 3, "worker threads add up");
}

#[test]
fn a_server_count_apart_from_the_requests_sent_is_a_warning_with_both_numbers() {
    let (mut parts, _) = shards(2, 50);
    parts.push(server(400));
    let merged = merge(&parts, "m").unwrap();
    assert!(merged.valid);
    let sent = 2 * (INTERVALS as u64 * 50 + 5);
    assert!(
        merged
            .warnings
            .iter()
            .any(|w| w.contains("the server counted 400 requests")
                && w.contains(&format!("the shards sent {sent}"))),
        "{:?}",
        merged.warnings
    );
}

#[test]
fn without_a_server_part_the_merge_warns_that_its_figures_are_absent() {
    let (parts, _) = shards(2, 50);
    let merged = merge(&parts, "m").unwrap();
    assert!(merged.valid);
    assert!(
        merged.warnings.iter().any(|w| w.contains("no server part")),
        "{:?}",
        merged.warnings
    );
    let kernel = merged.load_points[0].kernel.as_ref().unwrap();
    assert_eq!(kernel.summary.server_cpu_us_per_op, None);
    assert_eq!(kernel.summary.peak_time_wait_client_side, 8 * 30);
}

#[test]
fn shards_in_one_network_namespace_count_its_time_wait_once() {
    let (mut parts, _) = shards(3, 50);
    // Shards 1 and 2 shared one namespace of one kernel: each saw the other's sockets.
    for part in &mut parts[1..] {
        part.result.shard.as_mut().unwrap().net_namespace = Some("net:[4026531840]".into());
    }
    let merged = merge(&parts, "m").unwrap();
    let kernel = merged.load_points[0].kernel.as_ref().unwrap();
    assert_eq!(kernel.summary.peak_time_wait_client_side, 8 * (10 + 20));
    assert!(
        merged
            .warnings
            .iter()
            .any(|w| w.contains("shared a network namespace") && w.contains("counted once")),
        "{:?}",
        merged.warnings
    );
}

#[test]
fn shards_on_the_same_cpus_of_one_kernel_add_up_their_cpu_shares() {
    let (mut parts, _) = shards(3, 50);
    // Shards 0.2, 0.3 and 0.4 of their CPU: apart, none is near the limit; on one CPU, 0.9+.
    for part in &mut parts {
        part.result.generator.cpus = vec![0];
        for point in &mut part.result.load_points {
            point.kernel.as_mut().unwrap().summary.loadgen_cpu_share += 0.01;
        }
    }
    let merged = merge(&parts, "m").unwrap();
    let share = merged.load_points[0]
        .kernel
        .as_ref()
        .unwrap()
        .summary
        .loadgen_cpu_share;
    assert!((share - 0.93).abs() < 1e-9, "{share}");
    assert!(!merged.valid);
    assert!(
        merged
            .invalid_reasons
            .iter()
            .any(|r| r.contains("same CPUs of one kernel") && r.contains("93 %")),
        "{:?}",
        merged.invalid_reasons
    );
    // On CPUs of their own (or other kernels), the busiest shard is the figure, and all is well.
    for (cpu, part) in parts.iter_mut().enumerate() {
        part.result.generator.cpus = vec![cpu];
    }
    let merged = merge(&parts, "m").unwrap();
    assert!(merged.valid, "{:?}", merged.invalid_reasons);
}

#[test]
fn a_late_timeline_is_shifted_by_whole_intervals() {
    let (a, _) = generator(0, 2, 10, 0);
    // 0.4 interval late: not shifted; 1.3 intervals late: one interval.
    let (b, _) = generator(1, 2, 10, 400);
    let merged = merge(&[a.clone(), b], "m").unwrap();
    assert_eq!(
        merged.load_points[0].timeline.populations[0].ops.len(),
        INTERVALS
    );
    let (c, _) = generator(1, 2, 10, 1300);
    let merged = merge(&[a, c], "m").unwrap();
    let series = &merged.load_points[0].timeline.populations[0];
    assert_eq!(series.ops.len(), INTERVALS + 1);
    assert_eq!(series.ops[0], 10);
    assert_eq!(series.ops[INTERVALS], 10);
    assert_eq!(series.ops[1], 20);
    assert!(
        merged
            .warnings
            .iter()
            .any(|w| w.contains("shard 1/2 began 1300 ms")),
        "{:?}",
        merged.warnings
    );
}

#[test]
fn missing_duplicate_and_foreign_parts_are_refused_naming_them() {
    let (parts, _) = shards(3, 5);
    let message = refusal(&[parts[0].clone(), parts[1].clone()]);
    assert!(message.contains("shard 2/3 is missing"), "{message}");
    assert!(message.contains("shard-1-of-3"), "{message}");

    let mut twice = parts[1].clone();
    twice.source = PathBuf::from("elsewhere/shard-1-of-3");
    let message = refusal(&[parts[0].clone(), parts[1].clone(), twice, parts[2].clone()]);
    assert!(
        message.contains("shard 1/3 is given twice")
            && message.contains("runs/quick/2026-11-30T09-00-00Z/shard-1-of-3")
            && message.contains("elsewhere/shard-1-of-3"),
        "{message}"
    );

    let mut single = parts[0].clone();
    single.result.shard = None;
    single.source = PathBuf::from("runs/quick/one-host");
    let message = refusal(&[single]);
    assert!(
        message.contains("runs/quick/one-host: not part of a sharded run"),
        "{message}"
    );

    let message = refusal(&[server(1), server(2), parts[0].clone()]);
    assert!(message.contains("two server parts"), "{message}");
    let message = refusal(&[server(1)]);
    assert!(message.contains("no generator shard"), "{message}");
    let (other_n, _) = generator(1, 4, 5, 0);
    let message = refusal(&[parts[0].clone(), other_n]);
    assert!(
        message.contains("says 3 shards") && message.contains("shard-1-of-4"),
        "{message}"
    );
    assert!(matches!(merge(&[], "m"), Err(MergeError::NoParts)));
}

#[test]
fn parts_of_other_runs_are_refused_naming_the_field_and_both_parts() {
    let (parts, _) = shards(2, 5);
    let with = |change: fn(&mut RunResult)| {
        let mut other = parts[1].clone();
        change(&mut other.result);
        refusal(&[parts[0].clone(), other])
    };
    type Change = fn(&mut RunResult);
    let cases: [(Change, &str); 7] = [
        (|r| r.seed = 7, "seed differs"),
        (
            |r| r.scenario_name = "other".into(),
            "scenario_name differs",
        ),
        (
            |r| r.scenario_toml = r.scenario_toml.replace("3s", "4s"),
            "scenario_toml (line 3) differs",
        ),
        (
            |r| r.shard.as_mut().unwrap().start_at_unix_ms += 1000,
            "start_at_unix_ms (--start-at) differs",
        ),
        (|r| r.shard.as_mut().unwrap().slot_ms = 1, "slot_ms differs"),
        (
            |r| r.load_points[0].label = "1/2 (50%)".into(),
            "load point 1 label differs",
        ),
        (
            |r| r.load_points[0].timeline.interval_s = 0.5,
            "timeline interval_s differs",
        ),
    ];
    for (change, field) in cases {
        let message = with(change);
        assert!(
            message.contains(field)
                && message.contains("shard 0/2 (runs/quick/2026-11-30T09-00-00Z/shard-0-of-2)")
                && message.contains("shard 1/2 (runs/quick/2026-11-30T09-00-00Z/shard-1-of-2)"),
            "{field}: {message}"
        );
    }
    let message = with(|r| {
        let point = r.load_points[0].clone();
        r.load_points.push(point);
    });
    assert!(
        message.contains("number of load points differs"),
        "{message}"
    );
}

#[test]
fn an_invalid_shard_makes_the_merged_run_invalid_naming_it() {
    let (mut parts, _) = shards(3, 5);
    parts[1].result.valid = false;
    parts[1]
        .result
        .invalid_reasons
        .push("the generator was busier than 90% of its CPUs".into());
    parts[2]
        .result
        .warnings
        .push("schedule lag p99 2 ms".into());
    let merged = merge(&parts, "m").unwrap();
    assert!(!merged.valid);
    assert_eq!(
        merged.invalid_reasons,
        vec!["shard 1/3: the generator was busier than 90% of its CPUs".to_string()]
    );
    assert!(merged
        .warnings
        .contains(&"shard 2/3: schedule lag p99 2 ms".to_string()));
    assert!(!merged.shards[1].valid && merged.shards[0].valid);
}

#[test]
fn a_shard_that_stopped_before_a_point_makes_the_merged_run_invalid_and_partial() {
    let (mut parts, _) = shards(2, 5);
    let late = &mut parts[1].result;
    late.load_points.clear();
    late.valid = false;
    late.partial = true;
    late.invalid_reasons
        .push("stopped early: shard 1/2 was not ready for load point 1 on time".into());
    let merged = merge(&parts, "m").unwrap();
    assert!(!merged.valid && merged.partial);
    assert_eq!(merged.load_points.len(), 1);
    assert_eq!(merged.load_points[0].totals.ops, 15);
    let reasons = merged.invalid_reasons.join("\n");
    assert!(
        reasons.contains("shard 1/2: stopped early: shard 1/2 was not ready")
            && reasons.contains("lacks the share of shard 1/2 (runs/quick/"),
        "{reasons}"
    );
}

#[test]
fn unsynchronised_clocks_on_several_kernels_make_the_run_invalid_naming_the_part() {
    let (mut parts, _) = shards(2, 5);
    // One kernel: one clock, whatever its synchronisation.
    assert!(merge(&parts, "m").unwrap().valid);
    parts[1].result.shard.as_mut().unwrap().boot_id = Some("another-kernel".into());
    let merged = merge(&parts, "m").unwrap();
    assert!(!merged.valid);
    let reasons = merged.invalid_reasons.join("\n");
    assert!(
        reasons.contains("clocks cannot be trusted to line up")
            && reasons.contains("shard 0/2 (runs/quick/2026-11-30T09-00-00Z/shard-0-of-2) on gen0: its clock is not synchronised"),
        "{reasons}"
    );
    let synchronised = ClockSync {
        synchronised: Some(true),
        max_error_us: Some(CLOCK_MAX_ERROR_US / 10),
        est_error_us: Some(100),
    };
    for part in &mut parts {
        part.result.shard.as_mut().unwrap().clock = synchronised.clone();
    }
    assert!(merge(&parts, "m").unwrap().valid);
    parts[1].result.shard.as_mut().unwrap().clock.max_error_us = Some(CLOCK_MAX_ERROR_US * 3);
    let merged = merge(&parts, "m").unwrap();
    let reasons = merged.invalid_reasons.join("\n");
    assert!(!merged.valid);
    assert!(
        reasons.contains("shard 1/2 (") && reasons.contains("maximum error is 300 ms"),
        "{reasons}"
    );
    assert!(!reasons.contains("shard 0/2 ("), "{reasons}");
}

#[test]
fn the_summary_and_the_report_show_the_shards() {
    let (mut parts, _) = shards(2, 5);
    parts.push(server(40));
    parts[1].result.valid = false;
    parts[1].result.invalid_reasons.push("too slow".into());
    let merged = merge(&parts, "m").unwrap();
    let mut text = Vec::new();
    reports::render::text::print_summary(&merged, &mut text);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("shards: 3 parts merged"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("shard 1/2") && l.contains("INVALID"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("gen1") && row.contains("+0.3"), "{row}");
    let html = reports::render::render_run(&merged);
    assert!(html.contains("<h2>Shards: 3 parts merged</h2>"));
    assert!(html.contains("shard 1/2 was invalid"));
    assert!(html.contains("runs/quick/2026-11-30T09-00-00Z/server"));
    // A run on one generator has no such section.
    let mut single = parts[0].result.clone();
    single.shard = None;
    assert!(!reports::render::render_run(&single).contains("id=\"shards\""));
}

/// Shard `index`'s viewers: frame ages `1000 * (index + 1) + k` µs for k in 0..n, one viewer
/// per line rate given, `rates` (bit/s), and per interval `index + 2` frames aged
/// `interval * 10_000 + index` µs.
fn viewer_share(index: u64, rates: &[f64]) -> (ViewerFigures, Vec<u64>) {
    let ages: Vec<u64> = (0..50).map(|k| 1000 * (index + 1) + k * 37).collect();
    let figures = ViewerFigures {
        stream: "/cam.mjpg".into(),
        format: "mjpeg".into(),
        source_fps: 4.0,
        frame_bytes: 3072,
        line: "modem".into(),
        joins: 10 + index,
        kicks: index,
        frames: ages.len() as u64,
        bytes: 1_000 * (index + 1),
        frames_skipped: 7 * (index + 1),
        freezes: index + 1,
        viewer_seconds: 60.0,
        startup_us: data(&[500_000 + index]),
        frame_age_us: data(&ages),
        age_of_information_us: data(&[2_000 + index]),
        fps_milli: data(&[1_500 + index]),
        efficiency_milli: data(&[900 + index]),
        playout: Some(PlayoutFigures {
            start_s: 2.0,
            resume_s: 1.0,
            initial_buffering_us: data(&[2_100_000 + index]),
            never_started: 1,
            stalls: 2 + index,
            stall_ratio_milli: data(&[10 + index]),
        }),
        by_line_rate: rates
            .iter()
            .map(|&bps| ViewerRateFigures {
                bps,
                viewers: 1,
                line_bound_fps: bps / 28_800.0,
                frames: 5,
                frames_skipped: index + 1,
                freezes: 1,
                frame_age_us: data(&[bps as u64 / 10 + index]),
                age_of_information_us: data(&[3_000 + index]),
                fps_milli: data(&[1_000 + index]),
                efficiency_milli: data(&[950 + index]),
            })
            .collect(),
        ..ViewerFigures::default()
    };
    (figures, ages)
}

#[test]
fn viewer_figures_merge_exactly_histograms_added_counts_summed_rates_matched() {
    let (mut parts, _) = shards(2, 40);
    let rates: [&[f64]; 2] = [&[28_800.0, 53_300.0], &[53_300.0, 33_600.0]];
    let mut all_ages = Vec::new();
    for (index, part) in parts.iter_mut().enumerate() {
        let index = index as u64;
        let point = &mut part.result.load_points[0];
        let population = &mut point.populations[0];
        population.kind = "viewer".into();
        let (figures, ages) = viewer_share(index, rates[index as usize]);
        all_ages.extend(ages);
        population.viewer = Some(figures);
        let series = &mut point.timeline.populations[0];
        series.frames = (0..INTERVALS as u64).map(|_| index + 2).collect();
        series.frames_skipped = vec![index; INTERVALS];
        series.viewer_joins = vec![1; INTERVALS];
        series.viewer_leaves = vec![0; INTERVALS];
        series.viewer_kicks = vec![index; INTERVALS];
        let interval_ages = |i: usize| vec![i as u64 * 10_000 + index + 1; index as usize + 2];
        series.frame_age_hdr_v2_deflate_base64 = (0..INTERVALS)
            .map(|i| encode_histogram(&interval_histogram(&interval_ages(i))))
            .collect();
        series.frame_age_p50_us = (0..INTERVALS)
            .map(|i| interval_histogram(&interval_ages(i)).value_at_quantile(0.5))
            .collect();
        series.frame_age_p99_us = series.frame_age_p50_us.clone();
    }
    let merged = merge(&parts, "m").unwrap();
    let viewer = merged.load_points[0].populations[0]
        .viewer
        .as_ref()
        .expect("the viewer figures are merged");
    // Every histogram is that of all the shards' samples.
    assert_eq!(viewer.frame_age_us, data(&all_ages));
    assert_eq!(viewer.startup_us, data(&[500_000, 500_001]));
    assert_eq!(viewer.fps_milli, data(&[1_500, 1_501]));
    assert_eq!(viewer.efficiency_milli, data(&[900, 901]));
    assert_eq!(viewer.age_of_information_us, data(&[2_000, 2_001]));
    // Counts add up; the stream is the first part's.
    assert_eq!(
        (viewer.joins, viewer.kicks, viewer.frames, viewer.bytes),
        (21, 1, 100, 3_000)
    );
    assert_eq!((viewer.frames_skipped, viewer.freezes), (21, 3));
    assert_eq!(viewer.viewer_seconds, 120.0);
    assert_eq!(
        (viewer.stream.as_str(), viewer.source_fps),
        ("/cam.mjpg", 4.0)
    );
    let playout = viewer.playout.as_ref().unwrap();
    assert_eq!((playout.never_started, playout.stalls), (2, 5));
    assert_eq!(playout.stall_ratio_milli, data(&[10, 11]));
    // Line rates matched by bps, in order of first appearance; 53.3k from both shards.
    let bps: Vec<f64> = viewer.by_line_rate.iter().map(|r| r.bps).collect();
    assert_eq!(bps, [28_800.0, 53_300.0, 33_600.0]);
    let fast = &viewer.by_line_rate[1];
    assert_eq!((fast.viewers, fast.frames, fast.frames_skipped), (2, 10, 3));
    assert_eq!(fast.frame_age_us, data(&[5_330, 5_331]));
    assert_eq!(viewer.by_line_rate[0].frame_age_us, data(&[2_880]));
    // The timeline: counts added per interval, the frame-age histograms added before their
    // percentiles are read.
    let series = &merged.load_points[0].timeline.populations[0];
    assert_eq!(series.frames, vec![5; INTERVALS]);
    assert_eq!(series.viewer_kicks, vec![1; INTERVALS]);
    for i in 0..INTERVALS {
        let mut values = vec![i as u64 * 10_000 + 1; 2];
        values.extend(vec![i as u64 * 10_000 + 2; 3]);
        let h = interval_histogram(&values);
        let back = decode_histogram(&series.frame_age_hdr_v2_deflate_base64[i]).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(series.frame_age_p50_us[i], h.value_at_quantile(0.5));
        assert_eq!(series.frame_age_p99_us[i], h.value_at_quantile(0.99));
    }
    // A web population's timeline gets no viewer series.
    let (web_parts, _) = shards(2, 40);
    let web = merge(&web_parts, "m").unwrap();
    let series = &web.load_points[0].timeline.populations[0];
    assert!(series.frames.is_empty() && series.frame_age_hdr_v2_deflate_base64.is_empty());
    assert!(web.load_points[0].populations[0].viewer.is_none());
}
