//! The comparison's grouped bars: one panel per metric (ops/s, p99 latency, errors, and each
//! later metric marked `bar` in `prepare::METRICS`), one bar per run in the run's colour, the
//! value written above it. Panels, not one shared axis, because the metrics' units differ.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{style, text_style, Figure, LegendEntry};
use crate::prepare::{Hue, MetricRow, Quantity};

/// Panels per row of the figure.
const PANELS_PER_ROW: usize = 3;

pub fn figure(rows: &[MetricRow], labels: &[String]) -> Option<Figure> {
    let rows: Vec<&MetricRow> = rows
        .iter()
        .filter(|r| r.metric.bar && r.values.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() || labels.is_empty() {
        return None;
    }
    let panel_rows = rows.len().div_ceil(PANELS_PER_ROW);
    let panel_cols = rows.len().min(PANELS_PER_ROW);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(
            &mut svg,
            (style::WIDTH, style::BARS_HEIGHT * panel_rows as u32),
        )
        .into_drawing_area();
        root.fill(&style::BACKGROUND).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((panel_rows, panel_cols));
        for (row, panel) in rows.iter().zip(panels.iter()) {
            draw_panel(panel, row, labels.len())?;
        }
        root.present().map_err(|e| e.to_string())
    })();
    if let Err(e) = drawn {
        eprintln!("report: chart comparison bars not drawn: {e}");
        return None;
    }
    Some(Figure {
        id: "cmp-bars".into(),
        kind: "comparison-bars",
        title: "Runs side by side".into(),
        svg: style::mark_series(&svg),
        points: rows.iter().map(|r| r.values.iter().flatten().count()).sum(),
        downsampled: false,
        legend: labels
            .iter()
            .enumerate()
            .map(|(n, label)| LegendEntry {
                name: format!("#{} {label}", n + 1),
                colour: super::hex(style::colour(Hue::Index(n))),
                thick: true,
            })
            .collect(),
    })
}

/// The divisor to display units and the unit's name.
fn unit(quantity: Quantity, max: f64) -> (f64, &'static str) {
    match quantity {
        Quantity::OpsPerS => (1.0, "ops/s"),
        Quantity::MbitPerS => (1.0, "Mbit/s"),
        Quantity::LatencyUs => style::latency_unit(max),
        Quantity::Count => (1.0, "count"),
        Quantity::PerKiloOps => (1.0, "per 1000 ops"),
        Quantity::CpuUsPerOp => (1.0, "µs/op"),
        Quantity::Bytes => style::bytes_unit(max),
        Quantity::FramesPerS => (1.0, "fps"),
        Quantity::Share => (0.01, "%"),
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    row: &MetricRow,
    runs: usize,
) -> Result<(), String> {
    let max = row.values.iter().flatten().fold(0.0, |a: f64, &b| a.max(b));
    let (divisor, unit) = unit(row.metric.quantity, max);
    let top = if max > 0.0 { max / divisor * 1.18 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} ({unit})", row.metric.name),
            text_style(style::AXIS_DESC_PX + 2),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        // Integer ranges are inclusive in plotters: 0..=runs-1 is one segment per run.
        .build_cartesian_2d((0..runs as i32 - 1).into_segmented(), 0.0..top)
        .map_err(|e| e.to_string())?;
    let x_fmt = |x: &SegmentValue<i32>| match x {
        SegmentValue::CenterOf(n) | SegmentValue::Exact(n) => format!("#{}", n + 1),
        SegmentValue::Last => String::new(),
    };
    let y_fmt = |y: &f64| style::si(*y);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(runs + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .y_labels(6)
        .axis_style(style::AXIS)
        .bold_line_style(style::GRID_BOLD)
        .light_line_style(style::GRID_LIGHT)
        .label_style(text_style(style::LABEL_PX))
        .draw()
        .map_err(|e| e.to_string())?;
    for (n, value) in row.values.iter().enumerate() {
        let n = n as i32;
        let Some(value) = value else {
            chart
                .draw_series(std::iter::once(Text::new(
                    "n/a",
                    (SegmentValue::CenterOf(n), top * 0.05),
                    text_style(style::LABEL_PX).pos(center()),
                )))
                .map_err(|e| e.to_string())?;
            continue;
        };
        let v = value / divisor;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(n), 0.0),
                (SegmentValue::Exact(n + 1), v),
            ],
            ShapeStyle::from(style::colour(Hue::Index(n as usize))).filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        chart
            .draw_series(std::iter::once(bar))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                style::si(v),
                (SegmentValue::CenterOf(n), v + top * 0.02),
                text_style(style::LABEL_PX).pos(center()),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Text centred above its anchor point.
fn center() -> Pos {
    Pos::new(HPos::Center, VPos::Bottom)
}
