//! The server's memory over time: RSS and PSS of its whole process tree (a process-per-connection
//! server's children count), as sampled from /proc.

use super::{scaled, scaled_x, style, Axis, Figure, LineChart};
use crate::prepare::KernelView;

pub fn figure(view: &KernelView, id_prefix: &str) -> Option<Figure> {
    let (t_div, t_unit) = style::time_unit(view.duration_s);
    let (b_div, b_unit) = style::bytes_unit(super::max_y(&view.server_memory_bytes));
    let series = scaled_x(&scaled(&view.server_memory_bytes, b_div), t_div);
    LineChart {
        id: format!("{id_prefix}-server-memory"),
        kind: "server-memory",
        title: "Server memory over time (process tree)".into(),
        x: Axis::linear(
            format!("time since start of warm-up ({t_unit})"),
            0.0..view.duration_s / t_div,
        ),
        y: Axis::linear(
            format!("resident memory ({b_unit})"),
            0.0..super::max_y(&series),
        ),
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
