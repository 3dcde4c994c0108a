//! A sweep's curves: throughput against offered load (where it stops rising is the capacity),
//! and latency against throughput (the knee: where response time leaves the floor).

use super::{latency_axis, Axis, Figure, LineChart};
use crate::prepare::SweepView;

pub fn figures(view: &SweepView, id_prefix: &str) -> Vec<Figure> {
    let throughput = LineChart {
        id: format!("{id_prefix}-sweep-throughput"),
        kind: "sweep-throughput",
        title: "Throughput against offered load".into(),
        x: Axis::linear(
            view.offered_axis.clone(),
            0.0..super::max_x(&view.throughput) * 1.05,
        ),
        y: Axis::linear(
            "completed requests (ops/s)",
            0.0..super::max_y(&view.throughput),
        ),
        series: view.throughput.clone(),
        shade: Vec::new(),
        dots: true,
        secondary: None,
    }
    .draw();
    let (y, series) = latency_axis(&view.latency);
    let latency = LineChart {
        id: format!("{id_prefix}-sweep-latency"),
        kind: "sweep-latency",
        title: "Latency against throughput: p50 (thin) and p99 (thick)".into(),
        x: Axis::linear(
            "completed requests (ops/s)",
            0.0..super::max_x(&series) * 1.05,
        ),
        y,
        series,
        shade: Vec::new(),
        dots: true,
        secondary: None,
    }
    .draw();
    [throughput, latency].into_iter().flatten().collect()
}
