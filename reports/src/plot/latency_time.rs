//! Latency over time: p50 (thin) and p99 (thick) of each interval, per population. Intervals
//! without a completed request have no percentile and are left out rather than drawn as zero.

use super::{latency_axis, scaled_x, style, Axis, Figure, LineChart};
use crate::prepare::TimelineView;

pub fn figure(view: &TimelineView, id_prefix: &str) -> Option<Figure> {
    let (t_div, t_unit) = style::time_unit(view.duration_s);
    let (y, series) = latency_axis(&view.latency_us);
    let series = scaled_x(&series, t_div);
    LineChart {
        id: format!("{id_prefix}-latency-time"),
        kind: "latency-time",
        title: "Latency over time: p50 (thin) and p99 (thick) of each interval".into(),
        x: Axis::linear(
            format!("time since start of warm-up ({t_unit})"),
            0.0..view.duration_s / t_div,
        ),
        y,
        series,
        shade: super::unmeasured(
            view.warmup_end_s,
            view.measured_end_s,
            view.duration_s,
            t_div,
        ),
        dots: false,
        secondary: None,
    }
    .draw()
}
