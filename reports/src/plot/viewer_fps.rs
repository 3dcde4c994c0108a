//! Live viewers' frames per second over time, per connected viewer: frames received (thick) and
//! frames skipped (thin) in each interval over the viewers connected at its end, per viewer
//! population. A modem viewer's received line sits near its line-bound fps and its skipped line
//! makes up the rest of the source's fps.

use super::{scaled_x, Axis, Figure, LineChart};
use crate::prepare::TimelineView;

pub fn figure(view: &TimelineView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    LineChart {
        id: format!("{id_prefix}-viewer-fps"),
        kind: "viewer-fps",
        title: "Live viewers' frames per second per viewer: received (thick) and skipped (thin)"
            .into(),
        x: time.axis(),
        y: Axis::linear(
            "frames per second per viewer",
            0.0..super::max_y(&view.viewer_fps),
        ),
        series: scaled_x(&view.viewer_fps, time.div),
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
