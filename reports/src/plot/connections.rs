//! Open connections over time, one line per population (the kernel's view of the same, TIME_WAIT
//! included, is the job of a probe chart once the model has it).

use super::{scaled_x, Axis, Figure, LineChart};
use crate::prepare::TimelineView;

pub fn figure(view: &TimelineView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    LineChart {
        id: format!("{id_prefix}-connections"),
        kind: "connections",
        title: "Open connections over time, by population".into(),
        x: time.axis(),
        y: Axis::linear(
            "open connections (count)",
            0.0..super::max_y(&view.open_connections),
        ),
        series: scaled_x(&view.open_connections, time.div),
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
