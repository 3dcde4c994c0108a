//! The server's memory over time: RSS and PSS of its whole process tree (a process-per-connection
//! server's children count), as sampled from /proc.

use super::{scaled, scaled_x, style, Axis, Figure, LineChart};
use crate::prepare::KernelView;

pub fn figure(view: &KernelView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    let (b_div, b_unit) = style::bytes_unit(super::max_y(&view.server_memory_bytes));
    let series = scaled_x(&scaled(&view.server_memory_bytes, b_div), time.div);
    LineChart {
        id: format!("{id_prefix}-server-memory"),
        kind: "server-memory",
        title: "Server memory over time (process tree)".into(),
        x: time.axis(),
        y: Axis::linear(
            format!("resident memory ({b_unit})"),
            0.0..super::max_y(&series),
        ),
        series,
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
