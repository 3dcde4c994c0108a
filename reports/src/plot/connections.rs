//! Open connections over time, one line per population (the kernel's view of the same, TIME_WAIT
//! included, is the job of a probe chart once the model has it). Populations of very different
//! sizes (10 000 slow-line users beside 50 LAN clients) get a panel each, every panel on a
//! linear axis from zero, so the small population is not a line on the floor of the large one's.

use super::{scaled_x, Axis, Figure, LineChart};
use crate::prepare::{self, TimelineView};

pub fn figures(view: &TimelineView, id_prefix: &str) -> Vec<Figure> {
    let time = super::TimeFrame::of(view.warmup_end_s, view.measured_end_s, view.duration_s);
    let panels = prepare::panels_by_magnitude(&view.open_connections);
    let several = panels.len() > 1;
    panels
        .iter()
        .enumerate()
        .filter_map(|(n, series)| {
            // The legend under each panel names its populations; the title says why they split.
            let (id, title) = if several {
                (
                    format!("{id_prefix}-connections-{}", n + 1),
                    format!(
                        "Open connections over time ({} of {}: peaks over {}x apart are split)",
                        n + 1,
                        panels.len(),
                        prepare::SEPARATE_PANEL_RATIO
                    ),
                )
            } else {
                (
                    format!("{id_prefix}-connections"),
                    "Open connections over time, by population".to_string(),
                )
            };
            LineChart {
                id,
                kind: "connections",
                title,
                x: time.axis(),
                y: Axis::linear("open connections (count)", 0.0..super::max_y(series)),
                series: scaled_x(series, time.div),
                shade: time.shade(),
                dots: false,
                secondary: None,
            }
            .draw()
        })
        .collect()
}
