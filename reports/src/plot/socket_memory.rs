//! The kernel's TCP memory over time (`/proc/net/sockstat` `mem`, pages as bytes): what all
//! sockets' buffers cost, the whole namespace's when the run is not in a private one.

use super::{scaled, scaled_x, style, Axis, Figure, LineChart};
use crate::prepare::KernelView;

pub fn figure(view: &KernelView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    let (b_div, b_unit) = style::bytes_unit(super::max_y(&view.tcp_memory_bytes));
    let series = scaled_x(&scaled(&view.tcp_memory_bytes, b_div), time.div);
    LineChart {
        id: format!("{id_prefix}-socket-memory"),
        kind: "socket-memory",
        title: "Kernel TCP memory over time".into(),
        x: time.axis(),
        y: Axis::linear(
            format!("TCP socket memory ({b_unit})"),
            0.0..super::max_y(&series),
        ),
        series,
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
