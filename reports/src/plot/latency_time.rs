//! Latency over time: p50 (thin) and p99 (thick) of each interval, per population. Intervals
//! without a completed request have no percentile and are left out rather than drawn as zero.

use super::{latency_axis, scaled_x, Figure, LineChart};
use crate::prepare::TimelineView;

pub fn figure(view: &TimelineView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    let (y, series) = latency_axis(&view.latency_us);
    let series = scaled_x(&series, time.div);
    LineChart {
        id: format!("{id_prefix}-latency-time"),
        kind: "latency-time",
        title: "Latency over time: p50 (thin) and p99 (thick) of each interval".into(),
        x: time.axis(),
        y,
        series,
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
