//! CPU use over time, in % of one core between samples: the server's process tree beside the
//! generator's own (a generator near 100 % of its cores is the bottleneck, not the server).

use super::{scaled_x, Axis, Figure, LineChart};
use crate::prepare::KernelView;

pub fn figure(view: &KernelView, id_prefix: &str) -> Option<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    LineChart {
        id: format!("{id_prefix}-cpu"),
        kind: "cpu",
        title: "CPU use over time (user + system)".into(),
        x: time.axis(),
        y: Axis::linear(
            "CPU (% of one core)",
            0.0..super::max_y(&view.cpu_percent).max(100.0),
        ),
        series: scaled_x(&view.cpu_percent, time.div),
        shade: time.shade(),
        dots: false,
        secondary: None,
    }
    .draw()
}
