//! Live viewers' frame age over time: p50 (thin) and p99 (thick) of each interval's frames, per
//! viewer population. Intervals in which no frame arrived have no age and are left out.

use super::{latency_axis, scaled_x, Figure, LineChart};
use crate::prepare::TimelineView;

pub fn figure(view: &TimelineView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    // The latencies' axis (unit, log scale when a LAN viewer's milliseconds sit beside a modem
    // viewer's seconds), named for what it shows here.
    let (mut y, series) = latency_axis(&view.frame_age_us);
    y.desc = y.desc.replacen("response time", "frame age at receipt", 1);
    let series = scaled_x(&series, time.div);
    LineChart {
        id: format!("{id_prefix}-frame-age"),
        kind: "frame-age",
        title: "Live viewers' frame age over time: p50 (thin) and p99 (thick) of each interval"
            .into(),
        x: time.axis(),
        y,
        series,
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
