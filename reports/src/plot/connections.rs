//! Open connections over time, one line per population (the kernel's view of the same, TIME_WAIT
//! included, is the job of a probe chart once the model has it).

use super::{scaled_x, style, Axis, Figure, LineChart};
use crate::prepare::TimelineView;

pub fn figure(view: &TimelineView, id_prefix: &str) -> Option<Figure> {
    let (divisor, unit) = style::time_unit(view.duration_s);
    LineChart {
        id: format!("{id_prefix}-connections"),
        kind: "connections",
        title: "Open connections over time, by population".into(),
        x: Axis::linear(
            format!("time since start of warm-up ({unit})"),
            0.0..view.duration_s / divisor,
        ),
        y: Axis::linear(
            "open connections (count)",
            0.0..super::max_y(&view.open_connections),
        ),
        series: scaled_x(&view.open_connections, divisor),
        shade: super::unmeasured(
            view.warmup_end_s,
            view.measured_end_s,
            view.duration_s,
            divisor,
        ),
        dots: false,
        secondary: None,
    }
    .draw()
}
