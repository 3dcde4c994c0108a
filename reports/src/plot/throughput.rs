//! Throughput over time: completed requests per second and megabits per second, the total (when
//! there are several populations) and each population; warm-up and time after the measured
//! window shaded.

use super::{scaled_x, Axis, Figure, LineChart};
use crate::prepare::{Series, TimelineView};

/// Two charts: ops/s, then Mbit/s.
pub fn figures(view: &TimelineView, id_prefix: &str) -> Vec<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    let chart = |kind: &'static str, title: &str, y_desc: &str, series: &[Series]| {
        LineChart {
            id: format!("{id_prefix}-{kind}"),
            kind,
            title: title.to_string(),
            x: time.axis(),
            y: Axis::linear(y_desc, 0.0..super::max_y(series)),
            series: scaled_x(series, time.div),
            shade: time.shade(),
            dots: false,
            secondary: None,
        }
        .draw()
    };
    [
        chart(
            "throughput-ops",
            "Throughput over time",
            "completed requests (ops/s)",
            &view.ops_per_s,
        ),
        chart(
            "throughput-mbit",
            "Bandwidth over time",
            "response data (Mbit/s)",
            &view.mbit_per_s,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The comparison page's overlay: each run's total ops/s over time (warm-ups differ, so none is
/// shaded; each run's own page shows its warm-up).
pub fn by_run(series: &[Series], id_prefix: &str) -> Option<Figure> {
    let duration_s = series
        .iter()
        .flat_map(|s| s.points.last().map(|p| p.0))
        .fold(0.0, f64::max);
    // Warm-ups differ between runs: nothing is shaded.
    let time = super::TimeFrame::of(0.0, duration_s, duration_s);
    LineChart {
        id: format!("{id_prefix}-throughput-ops"),
        kind: "throughput-by-run",
        title: "Throughput over time, by run (warm-up included)".into(),
        x: time.axis(),
        y: Axis::linear("completed requests (ops/s)", 0.0..super::max_y(series)),
        series: scaled_x(series, time.div),
        shade: Vec::new(),
        dots: false,
        secondary: None,
    }
    .draw()
}
