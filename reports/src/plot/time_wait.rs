//! TIME_WAIT over time by side: sockets on the server's port held by the server (it closed
//! first) and by the clients, with the memory they pin on the right-hand axis (count x the
//! `tw_sock_TCP` object size). The 1999 story of a server that closes first is this chart.

use super::{scaled_x, style, Axis, Figure, LineChart};
use crate::prepare::KernelView;

pub fn figure(view: &KernelView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    let max = super::max_y(&view.time_wait);
    let secondary = (view.time_wait_object_bytes > 0).then(|| {
        let (divisor, unit) = style::bytes_unit(max * view.time_wait_object_bytes as f64);
        let how = if view.time_wait_bytes_estimated {
            "estimated "
        } else {
            ""
        };
        (
            format!(
                "memory held ({unit}, {how}{} B a socket)",
                view.time_wait_object_bytes
            ),
            view.time_wait_object_bytes as f64 / divisor,
        )
    });
    LineChart {
        id: format!("{id_prefix}-time-wait"),
        kind: "time-wait",
        title: "TIME_WAIT sockets over time, by the side that holds them".into(),
        x: time.axis(),
        y: Axis::linear("sockets in TIME_WAIT (count)", 0.0..max),
        series: scaled_x(&view.time_wait, time.div),
        shade: time.shade(),
        dots: false,
        secondary,
    }
    .draw()
}
