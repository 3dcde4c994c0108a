//! One load point's result from what the engine recorded and the sampler read: per population
//! figures (throughput, latency sets per class, Little's law, slow-line figures), the kernel
//! accounting over the measured window, and the point's name in a sweep or a variant.

use std::time::Duration;

use reports::model::{
    HistogramData, LineFigures, LineRateShare, LoadPoint, PlayoutFigures, PopulationResult,
    ViewerFigures, ViewerRateFigures,
};

use crate::engine::modem::RttMode;
use crate::engine::PointOutcome;
use crate::probe::accounting::{kernel_accounting, PointWindow};
use crate::probe::sampler::SamplerReport;
use crate::probe::slab::SlabSizes;
use crate::record::{totals_from, ErrorKind, LineRecorder, ViewerRecorder};
use crate::scenario::{ModemSpec, Population, ViewerSpec};

/// How a variant's slow lines got their round trip, and why not from the kernel if not.
#[derive(Clone, Debug)]
pub struct RttOutcome {
    /// Who adds the round trip: netem, the delay line, or the client.
    pub mode: RttMode,
    /// Why the round trip is not the kernel's, or not netem's; `None`: netem, or no slow lines.
    pub reason: Option<String>,
}

/// What one point's result is built from besides the engine's and the sampler's figures.
pub struct PointContext<'a> {
    /// `full load`, `3/10 (30%)`, a variant's label, or both.
    pub label: String,
    /// Share of the full load this point ran at.
    pub load_fraction: f64,
    /// The point's warm-up: where the measured window begins on the sampler's time axis.
    pub warmup: Duration,
    /// The populations that ran, in the order of the engine's recorders.
    pub populations: &'a [Population],
    /// The workload's class names, in the order of each recorder's classes.
    pub class_names: &'a [String],
    /// How the variant's slow lines got their round trip, for their line figures.
    pub rtt: &'a RttOutcome,
    /// CPUs the generator had, to turn its CPU time into a share.
    pub generator_cpus: usize,
    /// Time between the sampler's readings, as configured; recorded with the kernel figures.
    pub sample_interval: Duration,
}

/// The name of point `index` of `count` at `fraction` of the load, in `variant` if named.
pub fn point_label(variant: Option<&str>, index: usize, count: usize, fraction: f64) -> String {
    let step = format!("{}/{count} ({:.0}%)", index + 1, fraction * 100.0);
    match (variant, count > 1) {
        (Some(variant), true) => format!("{variant} {step}"),
        (Some(variant), false) => variant.to_string(),
        (None, true) => step,
        (None, false) => "full load".to_string(),
    }
}

/// The load fractions of a run: `points` evenly spaced up to the full load (SPECweb96's rule),
/// or the full load alone.
pub fn load_fractions(sweep_points: Option<u32>) -> Vec<f64> {
    match sweep_points {
        Some(points) => (1..=points)
            .map(|i| f64::from(i) / f64::from(points))
            .collect(),
        None => vec![1.0],
    }
}

/// Builds the result of one load point.
pub fn build_point(
    context: &PointContext<'_>,
    outcome: &PointOutcome,
    samples: &SamplerReport,
    slab: &SlabSizes,
) -> LoadPoint {
    let fraction = context.load_fraction;
    let populations = context
        .populations
        .iter()
        .zip(&outcome.recorders)
        .map(|(population, recorder)| {
            let all = recorder.all_classes();
            let mean_latency_s = all.total_us.mean() / 1e6;
            PopulationResult {
                name: population.name().to_string(),
                kind: population.kind_name().into(),
                offered: match population {
                    Population::Closed { clients, .. } => (f64::from(*clients) * fraction).ceil(),
                    Population::Modem(spec) => (f64::from(spec.clients) * fraction).ceil(),
                    Population::Open { rate, .. } => rate * fraction,
                    Population::Viewer(spec) => spec.offered(
                        fraction,
                        Duration::from_secs_f64(outcome.measured_s.max(0.0)),
                    ),
                },
                totals: recorder.totals(outcome.measured_s),
                latency: all.latency_set(),
                classes: recorder.class_results(context.class_names),
                // Viewers too: a late line read fakes skips (run/validity.rs checks it).
                schedule_lag_us: matches!(
                    population,
                    Population::Open { .. } | Population::Viewer(_)
                )
                .then(|| HistogramData::from_histogram(&recorder.schedule_lag_us)),
                queued_arrivals: recorder.queued_arrivals,
                unanswered: recorder.unanswered,
                retries_on_new_connection: recorder.retries,
                peak_open_connections: recorder.peak_open_connections,
                requests_sent: recorder.lifetime.requests_sent,
                responses_completed: recorder.lifetime.responses_completed,
                connections_established: recorder.lifetime.connections_established,
                concurrency: Some(recorder.concurrency.figures(
                    outcome.measured_s,
                    all.ops,
                    mean_latency_s,
                )),
                line: match (population, &recorder.line) {
                    (Population::Modem(spec), Some(line)) => {
                        Some(line_figures(spec, line, context.rtt))
                    }
                    // Modem-line viewers: the line's shape (their per-reply histograms stay
                    // empty: a stream has no replies to time).
                    (Population::Viewer(spec), _) => spec
                        .modem_spec()
                        .map(|modem| line_figures(&modem, &LineRecorder::new(), context.rtt)),
                    _ => None,
                },
                viewer: match (population, &recorder.viewer) {
                    (Population::Viewer(spec), Some(viewer)) => Some(viewer_figures(spec, viewer)),
                    _ => None,
                },
            }
        })
        .collect::<Vec<_>>();
    let mut errors = [0u64; ErrorKind::ALL.len()];
    let (mut ops, mut bytes) = (0, 0);
    for recorder in &outcome.recorders {
        for (sum, n) in errors.iter_mut().zip(recorder.errors) {
            *sum += n;
        }
        for class in &recorder.classes {
            ops += class.ops;
            bytes += class.bytes;
        }
    }
    let warmup_ms = context.warmup.as_secs_f64() * 1000.0;
    LoadPoint {
        label: context.label.clone(),
        load_fraction: fraction,
        warmup_s: context.warmup.as_secs_f64(),
        measured_s: outcome.measured_s,
        totals: totals_from(ops, bytes, &errors, outcome.measured_s),
        kernel: Some(kernel_accounting(
            samples,
            slab,
            &PointWindow {
                measure_from_ms: warmup_ms as u64,
                measure_to_ms: (warmup_ms + outcome.measured_s * 1000.0) as u64,
                ops,
                peak_open_connections: populations.iter().map(|p| p.peak_open_connections).sum(),
                generator_cpus: context.generator_cpus.max(1),
                sample_interval_ms: context.sample_interval.as_millis() as u64,
            },
        )),
        populations,
        timeline: outcome.timeline.clone(),
        server_stats: None,
        start_unix_ns: None,
    }
}

/// The viewer figures of one population.
fn viewer_figures(spec: &ViewerSpec, viewer: &ViewerRecorder) -> ViewerFigures {
    let h = HistogramData::from_histogram;
    ViewerFigures {
        stream: spec.stream.clone(),
        format: viewer.format.clone(),
        source_fps: viewer.source_fps,
        frame_bytes: viewer.frame_bytes,
        line: spec.line.name().into(),
        joins: viewer.joins,
        leaves: viewer.leaves,
        kicks: viewer.kicks,
        frames: viewer.frames,
        bytes: viewer.bytes,
        frames_skipped: viewer.frames_skipped,
        lifetime_frames_skipped: viewer.lifetime_frames_skipped,
        lifetime_frames: viewer.lifetime_frames,
        freezes: viewer.freezes,
        freeze_ms: viewer.freeze_ms,
        viewer_seconds: viewer.viewer_s,
        startup_us: h(&viewer.startup_us),
        frame_age_us: h(&viewer.frame_age_us),
        age_of_information_us: h(&viewer.aoi_us),
        fps_milli: h(&viewer.fps_milli),
        efficiency_milli: h(&viewer.efficiency_milli),
        playout: viewer.playout.as_ref().map(|playout| PlayoutFigures {
            start_s: spec.playout.start.as_secs_f64(),
            resume_s: spec.playout.resume.as_secs_f64(),
            initial_buffering_us: h(&playout.initial_buffering_us),
            never_started: playout.never_started,
            stalls: playout.stalls,
            stall_ratio_milli: h(&playout.stall_ratio_milli),
        }),
        by_line_rate: viewer
            .by_rate
            .iter()
            .map(|rate| ViewerRateFigures {
                bps: rate.bps,
                viewers: rate.viewers,
                line_bound_fps: if rate.line_bound_viewers > 0 {
                    rate.line_bound_fps_sum / rate.line_bound_viewers as f64
                } else {
                    0.0
                },
                frames: rate.frames,
                frames_skipped: rate.frames_skipped,
                freezes: rate.freezes,
                frame_age_us: h(&rate.frame_age_us),
                age_of_information_us: h(&rate.aoi_us),
                fps_milli: h(&rate.fps_milli),
                efficiency_milli: h(&rate.efficiency_milli),
            })
            .collect(),
    }
}

/// Whether a `--stats` key holds a value read at the snapshot rather than a count since the
/// server's start: gauges (`*_now`), peaks (`*_peak`), and the live stream's settings (`fps`,
/// `frame_bytes`, `lowat_bytes`). These are taken as they are, never diffed.
pub fn is_snapshot_value(key: &str) -> bool {
    key.ends_with("_now")
        || key.ends_with("_peak")
        || matches!(key, "fps" | "frame_bytes" | "lowat_bytes")
}

/// `counters` (a point's [`point_counters`]) with every gauge (`*_now`) replaced by its value in
/// `in_window`, a snapshot taken inside the measured window: the end-of-point snapshot comes
/// after the clients left (no viewers, nothing unsent), so what was held while the load ran
/// is read from the snapshot taken while it ran. Nested objects are walked; keys missing from
/// `in_window` keep their value.
pub fn with_gauges_from(
    mut counters: serde_json::Value,
    in_window: &serde_json::Value,
) -> serde_json::Value {
    use serde_json::Value;
    if let (Value::Object(counters_map), Value::Object(window_map)) = (&mut counters, in_window) {
        for (key, value) in counters_map.iter_mut() {
            match (window_map.get(key), key.ends_with("_now")) {
                (Some(window_value), true) => *value = window_value.clone(),
                (Some(window_value), false) if value.is_object() => {
                    *value = with_gauges_from(value.take(), window_value);
                }
                _ => {}
            }
        }
    }
    counters
}

/// A load point's own share of the server's counters: `after` minus `before`, two snapshots of
/// its `--stats` taken when the point began and when it ended, field by field (nested maps
/// too; a key missing before counts from 0). A peak or a gauge is not a count:
/// `connections_peak` and every key ending in `_now` or `_peak` (the live source's
/// `viewers_now`, `queue_bytes_now`, `frames_alive_peak`, ...) and the stream's settings keep
/// their snapshot value ([`is_snapshot_value`]).
/// The snapshot's own number and `final` flag are left out.
pub fn point_counters(before: &serde_json::Value, after: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (before, after) {
        (Value::Object(before), Value::Object(after)) => Value::Object(
            after
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "snapshot" | "final"))
                .map(|(key, now)| {
                    let gauge = is_snapshot_value(key);
                    let own = match (key.as_str(), before.get(key)) {
                        (_, None) => now.clone(),
                        _ if gauge => now.clone(),
                        (_, Some(then)) => point_counters(then, now),
                    };
                    (key.clone(), own)
                })
                .collect(),
        ),
        (Value::Array(before), Value::Array(after)) => Value::Array(
            after
                .iter()
                .enumerate()
                .map(|(i, now)| match before.get(i) {
                    Some(then) => point_counters(then, now),
                    None => now.clone(),
                })
                .collect(),
        ),
        (Value::Number(then), Value::Number(now)) => match (then.as_u64(), now.as_u64()) {
            (Some(then), Some(now)) => Value::from(now.saturating_sub(then)),
            _ => Value::Number(now.clone()),
        },
        (_, now) => now.clone(),
    }
}

/// The slow-line figures of one population.
fn line_figures(spec: &ModemSpec, line: &LineRecorder, rtt: &RttOutcome) -> LineFigures {
    LineFigures {
        rtt_mode: rtt.mode.name().into(),
        rtt_mode_reason: rtt.reason.clone(),
        rtt_ms: spec.rtt.as_secs_f64() * 1000.0,
        downstream_bps: spec
            .downstream_shares()
            .map(|(bps, share)| LineRateShare { bps, share })
            .collect(),
        upstream_bps: spec.upstream_bps,
        payload_bytes_per_s: spec.mean_payload_bytes_per_s(),
        receive_window_bytes: spec.receive_window,
        mss_bytes: spec.mss,
        achieved_bytes_per_s: HistogramData::from_histogram(&line.achieved_bytes_per_s),
        slowdown_milli: HistogramData::from_histogram(&line.slowdown_milli),
        pages_started: line.pages_started,
        pages_completed: line.pages_completed,
        lingering_closes: line.lingering_closes,
        retries_on_new_connection: line.retries_on_new_connection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_named_by_step_and_variant() {
        assert_eq!(point_label(None, 0, 1, 1.0), "full load");
        assert_eq!(point_label(None, 2, 10, 0.3), "3/10 (30%)");
        assert_eq!(point_label(Some("close=reset"), 0, 1, 1.0), "close=reset");
        assert_eq!(
            point_label(Some("close=reset"), 9, 10, 1.0),
            "close=reset 10/10 (100%)"
        );
    }

    #[test]
    fn a_points_server_counters_are_the_difference_of_two_snapshots() {
        let before = serde_json::json!({
            "snapshot": 3, "final": false, "requests_total": 100, "connections_peak": 40,
            "requests_by_status": {"200": 98, "404": 2},
            "closes": {"client_first": 0, "server_first": 100, "reset": 0},
            "reftab_alternates": [{"pattern": "/img/*", "count": 5}]
        });
        let after = serde_json::json!({
            "snapshot": 4, "final": false, "requests_total": 250, "connections_peak": 35,
            "requests_by_status": {"200": 240, "404": 2, "304": 8},
            "closes": {"client_first": 0, "server_first": 250, "reset": 0},
            "reftab_alternates": [{"pattern": "/img/*", "count": 9}]
        });
        assert_eq!(
            point_counters(&before, &after),
            serde_json::json!({
                "requests_total": 150, "connections_peak": 35,
                "requests_by_status": {"200": 142, "404": 0, "304": 8},
                "closes": {"client_first": 0, "server_first": 150, "reset": 0},
                "reftab_alternates": [{"pattern": "/img/*", "count": 4}]
            })
        );
    }

    #[test]
    fn server_gauges_keep_their_snapshot_value() {
        let before = serde_json::json!({
            "live": {"frames_skipped": 10, "viewers_now": 5, "queue_bytes_now": 90000,
                     "frames_alive_peak": 7, "dispatch_delay_log2_us": [1, 2]}
        });
        let after = serde_json::json!({
            "live": {"frames_skipped": 25, "viewers_now": 3, "queue_bytes_now": 120000,
                     "frames_alive_peak": 9, "dispatch_delay_log2_us": [4, 2]}
        });
        assert_eq!(
            point_counters(&before, &after),
            serde_json::json!({
                "live": {"frames_skipped": 15, "viewers_now": 3, "queue_bytes_now": 120000,
                         "frames_alive_peak": 9, "dispatch_delay_log2_us": [3, 0]}
            })
        );
    }

    #[test]
    fn live_settings_are_not_diffed_and_gauges_come_from_inside_the_window() {
        let before = serde_json::json!({
            "requests_total": 10,
            "live": {"fps": 4.0, "frame_bytes": 3072, "lowat_bytes": 4096, "policy": "latest",
                     "frames_sent": 100, "viewers_now": 0, "unsent_bytes_now": 0}
        });
        let after = serde_json::json!({
            "requests_total": 30,
            "live": {"fps": 4.0, "frame_bytes": 3072, "lowat_bytes": 4096, "policy": "latest",
                     "frames_sent": 400, "viewers_now": 0, "unsent_bytes_now": 0}
        });
        let in_window = serde_json::json!({
            "requests_total": 25,
            "live": {"frames_sent": 350, "viewers_now": 1000, "unsent_bytes_now": 3_500_000}
        });
        let counters = with_gauges_from(point_counters(&before, &after), &in_window);
        assert_eq!(
            counters,
            serde_json::json!({
                "requests_total": 20,
                "live": {"fps": 4.0, "frame_bytes": 3072, "lowat_bytes": 4096,
                         "policy": "latest", "frames_sent": 300, "viewers_now": 1000,
                         "unsent_bytes_now": 3_500_000}
            })
        );
    }

    #[test]
    fn a_sweep_spaces_its_points_evenly_up_to_the_full_load() {
        assert_eq!(load_fractions(None), vec![1.0]);
        assert_eq!(load_fractions(Some(4)), vec![0.25, 0.5, 0.75, 1.0]);
    }
}
