//! The charts of a report, as inline SVG: the only module that uses plotters. One file per chart;
//! each turns prepared data (`crate::prepare`) into zero or more `Figure`s and returns none when
//! its data is absent, so a page never shows an empty chart. Sizes, colours and number formats
//! are `style`'s.
//!
//! Adding a chart is one more module here, one field in the prepared data it draws, and one line
//! in `load_point_figures` (or `run_figures`, `comparison_figures`); the kernel charts
//! (TIME_WAIT, socket memory, server memory, CPU) and the live viewers' (frame age, fps per
//! viewer) were added that way.

mod comparison_bars;
mod connections;
mod cpu;
mod frame_age;
mod latency_time;
mod server_memory;
mod socket_memory;
mod spectrum;
pub mod style;
mod sweep;
mod throughput;
mod time_wait;
mod viewer_fps;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::model::{LoadPoint, RunResult};
use crate::prepare::{self, Series};

/// One chart, ready to put into a page.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Unique within the page (`id` attribute).
    pub id: String,
    /// Which chart module drew it (`data-chart` attribute).
    pub kind: &'static str,
    pub title: String,
    pub svg: String,
    /// Data points drawn, all series together.
    pub points: usize,
    pub downsampled: bool,
    /// Shown under the chart, in HTML: a legend never hides data in the plot.
    pub legend: Vec<LegendEntry>,
}

#[derive(Clone, Debug)]
pub struct LegendEntry {
    pub name: String,
    /// `#RRGGBB`.
    pub colour: String,
    pub thick: bool,
}

/// The charts of one load point, in page order.
pub fn load_point_figures(point: &LoadPoint, id_prefix: &str) -> Vec<Figure> {
    let timeline = prepare::timeline_view(point);
    let mut figures = Vec::new();
    if let Some(view) = &timeline {
        figures.extend(throughput::figures(view, id_prefix));
        figures.extend(connections::figures(view, id_prefix));
        figures.extend(latency_time::figure(view, id_prefix));
        figures.extend(frame_age::figure(view, id_prefix));
        figures.extend(viewer_fps::figure(view, id_prefix));
    }
    if let Some(view) = prepare::kernel_view(point) {
        figures.extend(time_wait::figure(&view, id_prefix));
        figures.extend(socket_memory::figure(&view, id_prefix));
        figures.extend(server_memory::figure(&view, id_prefix));
        figures.extend(cpu::figure(&view, id_prefix));
    }
    figures.extend(spectrum::population_figures(point, id_prefix));
    figures
}

/// The charts of a whole run that span its load points (a sweep's curves).
pub fn run_figures(result: &RunResult) -> Vec<Figure> {
    prepare::sweep_view(result)
        .map(|view| sweep::figures(&view, "run"))
        .unwrap_or_default()
}

/// The charts of the comparison page.
pub fn comparison_figures(
    rows: &[prepare::MetricRow],
    results: &[RunResult],
    labels: &[String],
) -> Vec<Figure> {
    let mut figures = Vec::new();
    figures.extend(comparison_bars::figure(rows, labels));
    for (n, (population, series)) in prepare::spectra_by_run(results, labels)
        .into_iter()
        .enumerate()
    {
        figures.extend(spectrum::figure(
            &format!("cmp-spectrum-{n}"),
            &format!("Latency percentile spectrum of population {population}, by run"),
            series,
        ));
    }
    figures.extend(throughput::by_run(
        &prepare::throughput_by_run(results, labels),
        "cmp",
    ));
    if let Some(view) = prepare::sweeps_by_run(results, labels) {
        figures.extend(sweep::figures(&view, "cmp"));
    }
    figures
}

// ---- what the line charts share --------------------------------------------------------------

/// One axis of a line chart. Values arrive in display units (the chart module divides).
pub(crate) struct Axis {
    pub desc: String,
    pub range: std::ops::Range<f64>,
    /// Log scale, ticks at `ticks` (the percentile axis).
    pub log_ticks: Option<Vec<f64>>,
    pub format: fn(f64) -> String,
}

impl Axis {
    pub fn linear(desc: impl Into<String>, range: std::ops::Range<f64>) -> Axis {
        Axis {
            desc: desc.into(),
            range,
            log_ticks: None,
            format: style::si,
        }
    }
}

/// A line chart: the frame, optional shaded region, the series, each in its hue.
pub(crate) struct LineChart {
    pub id: String,
    pub kind: &'static str,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    /// Shaded x intervals with their names (the warm-up, the time after the measured window).
    pub shade: Vec<(std::ops::Range<f64>, &'static str)>,
    /// Mark every point with a dot (few points, e.g. a sweep's load points).
    pub dots: bool,
    /// A right-hand axis for the same lines in another unit: its description and the factor
    /// from the left axis' values (TIME_WAIT sockets on the left, their memory on the right).
    /// Linear y only.
    pub secondary: Option<(String, f64)>,
}

/// The unmeasured parts of a time axis, in its display unit (`divisor` from seconds): the
/// warm-up, and whatever was recorded after the measured window ended.
/// The time axis every over-time chart shares: time since the start of the warm-up, in seconds,
/// minutes or hours as the length asks, with the warm-up and anything after the measured window
/// shaded.
pub(crate) struct TimeFrame {
    /// Seconds per axis unit.
    pub div: f64,
    unit: &'static str,
    duration_s: f64,
    warmup_end_s: f64,
    measured_end_s: f64,
}

impl TimeFrame {
    pub fn of(warmup_end_s: f64, measured_end_s: f64, duration_s: f64) -> TimeFrame {
        let (div, unit) = style::time_unit(duration_s);
        TimeFrame {
            div,
            unit,
            duration_s,
            warmup_end_s,
            measured_end_s,
        }
    }

    pub fn axis(&self) -> Axis {
        Axis::linear(
            format!("time since start of warm-up ({})", self.unit),
            0.0..self.duration_s / self.div,
        )
    }

    pub fn shade(&self) -> Vec<(std::ops::Range<f64>, &'static str)> {
        unmeasured(
            self.warmup_end_s,
            self.measured_end_s,
            self.duration_s,
            self.div,
        )
    }
}

fn unmeasured(
    warmup_end_s: f64,
    measured_end_s: f64,
    duration_s: f64,
    divisor: f64,
) -> Vec<(std::ops::Range<f64>, &'static str)> {
    let mut regions = Vec::new();
    if warmup_end_s > 0.0 {
        regions.push((0.0..warmup_end_s / divisor, "warm-up"));
    }
    // A little slack: a sample a few ms past the end is the end.
    if measured_end_s > warmup_end_s && duration_s > measured_end_s + 0.05 {
        regions.push((measured_end_s / divisor..duration_s / divisor, "ended"));
    }
    regions
}

/// Headroom above the highest value, so a line at the top is not drawn on the frame.
fn y_top(max: f64) -> f64 {
    if max > 0.0 && max.is_finite() {
        max * 1.08
    } else {
        1.0
    }
}

/// The highest y of all series (0 when empty).
pub(crate) fn max_y(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
}

/// The lowest y above zero of all series.
pub(crate) fn min_positive_y(series: &[Series]) -> Option<f64> {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|&y| y > 0.0)
        .min_by(f64::total_cmp)
}

/// When the series' peaks differ by more than this factor (a LAN population in milliseconds
/// beside modem clients in seconds), latency goes on a log axis so both stay readable.
const LOG_WHEN_PEAKS_DIFFER_BY: f64 = 20.0;

/// The y axis for latencies in `series` (µs): the unit that reads best, log scale when the
/// series' peaks are far apart; and the series in that unit.
pub(crate) fn latency_axis(series: &[Series]) -> (Axis, Vec<Series>) {
    let (divisor, unit) = style::latency_unit(max_y(series));
    let series = scaled(series, divisor);
    let peaks: Vec<f64> = series
        .iter()
        .map(|s| s.points.iter().map(|p| p.1).fold(0.0, f64::max))
        .filter(|&p| p > 0.0)
        .collect();
    let spread = peaks.iter().copied().fold(0.0, f64::max)
        / peaks.iter().copied().fold(f64::INFINITY, f64::min);
    let max = max_y(&series);
    let axis = if spread > LOG_WHEN_PEAKS_DIFFER_BY {
        let lo = min_positive_y(&series).unwrap_or(1.0) / 1.3;
        Axis {
            desc: format!("response time ({unit}, log scale)"),
            range: 0.0..max,
            log_ticks: Some(ticks_1_2_5(lo, max * 1.3)),
            format: style::si,
        }
    } else {
        Axis::linear(format!("response time ({unit})"), 0.0..max)
    };
    (axis, series)
}

/// 1, 2, 5, 10, 20, 50 ... within `lo..=hi`: tick marks of a log axis; over more decades,
/// 1, 3, 10, 30 ... or only the powers of ten, so labels never crowd.
fn ticks_1_2_5(lo: f64, hi: f64) -> Vec<f64> {
    let lo = lo.max(1e-9);
    let decades = (hi / lo).log10();
    let steps: &[f64] = if decades > 4.5 {
        &[1.0]
    } else if decades > 2.5 {
        &[1.0, 3.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in steps {
            let t = decade * m;
            if t >= lo && t <= hi {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// The highest x of all series (0 when empty).
pub(crate) fn max_x(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::max)
}

/// `series` with every y divided by `divisor` (to display units).
pub(crate) fn scaled(series: &[Series], divisor: f64) -> Vec<Series> {
    series
        .iter()
        .map(|s| Series {
            points: s.points.iter().map(|&(x, y)| (x, y / divisor)).collect(),
            ..s.clone()
        })
        .collect()
}

/// `series` with every x divided by `divisor`.
pub(crate) fn scaled_x(series: &[Series], divisor: f64) -> Vec<Series> {
    series
        .iter()
        .map(|s| Series {
            points: s.points.iter().map(|&(x, y)| (x / divisor, y)).collect(),
            ..s.clone()
        })
        .collect()
}

impl LineChart {
    /// The figure, or `None` when no series has a point.
    pub fn draw(mut self) -> Option<Figure> {
        self.series.retain(|s| !s.points.is_empty());
        if self.series.is_empty() {
            return None;
        }
        let downsampled = self.series.iter().any(|s| s.downsampled);
        // A degenerate range (one point, all zero) still gets a frame plotters can divide by.
        if self.x.range.end.partial_cmp(&self.x.range.start) != Some(std::cmp::Ordering::Greater) {
            self.x.range.end = self.x.range.start + 1.0;
        }
        let (y_lo, y_hi) = match &self.y.log_ticks {
            // Log: from a little under the lowest positive value (zero has no place on it).
            Some(_) => {
                let lo = min_positive_y(&self.series).unwrap_or(1.0);
                (lo / 1.3, y_top(self.y.range.end.max(lo)) * 1.2)
            }
            None => (0.0, y_top(self.y.range.end)),
        };
        let x = self.x.range.clone();
        let svg = match (self.x.log_ticks.clone(), self.y.log_ticks.clone()) {
            (Some(xt), Some(yt)) => self.svg(
                x.log_scale().with_key_points(xt),
                (y_lo..y_hi).log_scale().with_key_points(yt),
                (y_lo, y_hi),
                downsampled,
            ),
            (Some(xt), None) => self.svg(
                x.log_scale().with_key_points(xt),
                y_lo..y_hi,
                (y_lo, y_hi),
                downsampled,
            ),
            (None, Some(yt)) => self.svg(
                x,
                (y_lo..y_hi).log_scale().with_key_points(yt),
                (y_lo, y_hi),
                downsampled,
            ),
            (None, None) => self.svg(x, y_lo..y_hi, (y_lo, y_hi), downsampled),
        };
        let svg = match svg {
            Ok(svg) => svg,
            // A drawing error is a bug of ours; a report without that chart beats no report.
            Err(e) => {
                eprintln!("report: chart {} not drawn: {e}", self.id);
                return None;
            }
        };
        Some(Figure {
            points: self.series.iter().map(|s| s.points.len()).sum(),
            legend: legend(&self.series),
            id: self.id,
            kind: self.kind,
            title: self.title,
            svg,
            downsampled,
        })
    }

    fn svg<X, Y>(
        &self,
        x_spec: X,
        y_spec: Y,
        (y_lo, y_hi): (f64, f64),
        downsampled: bool,
    ) -> Result<String, String>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (style::WIDTH, style::HEIGHT))
                .into_drawing_area();
            root.fill(&style::BACKGROUND).map_err(|e| e.to_string())?;
            let caption = caption(&self.title, downsampled);
            let mut chart = ChartBuilder::on(&root)
                .caption(caption, text_style(style::CAPTION_PX))
                .margin(12)
                .margin_right(if self.secondary.is_some() { 12 } else { 52 })
                .x_label_area_size(58)
                .y_label_area_size(88)
                .right_y_label_area_size(if self.secondary.is_some() { 96 } else { 0 })
                .build_cartesian_2d(x_spec, y_spec)
                .map_err(|e| e.to_string())?;
            match &self.secondary {
                Some((desc, factor)) => {
                    // Set before the primary mesh is drawn: the right-hand label area then
                    // belongs to the secondary axis alone.
                    let mut dual =
                        chart.set_secondary_coord(0.0..1.0, y_lo * factor..y_hi * factor);
                    let y2_fmt = |v: &f64| style::si(*v);
                    dual.configure_secondary_axes()
                        .x_labels(0)
                        .y_labels(8)
                        .y_desc(desc.as_str())
                        .y_label_formatter(&y2_fmt)
                        .axis_style(style::AXIS)
                        .label_style(text_style(style::LABEL_PX))
                        .axis_desc_style(text_style(style::AXIS_DESC_PX))
                        .draw()
                        .map_err(|e| e.to_string())?;
                    self.draw_body(&mut dual, (y_lo, y_hi))?;
                }
                None => self.draw_body(&mut chart, (y_lo, y_hi))?,
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(style::mark_series(&svg))
    }
}

impl LineChart {
    /// Mesh, shaded region and series on the primary axes.
    fn draw_body<XC, YC>(
        &self,
        chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<XC, YC>>,
        (y_lo, y_hi): (f64, f64),
    ) -> Result<(), String>
    where
        XC: Ranged<ValueType = f64> + ValueFormatter<f64>,
        YC: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let (x_format, y_format) = (self.x.format, self.y.format);
        let x_fmt = move |v: &f64| x_format(*v);
        let y_fmt = move |v: &f64| y_format(*v);
        chart
            .configure_mesh()
            .x_desc(self.x.desc.as_str())
            .y_desc(self.y.desc.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_labels(12)
            .y_labels(8)
            .axis_style(style::AXIS)
            .bold_line_style(style::GRID_BOLD)
            .light_line_style(style::GRID_LIGHT)
            .max_light_lines(4)
            .label_style(text_style(style::LABEL_PX))
            .axis_desc_style(text_style(style::AXIS_DESC_PX))
            .draw()
            .map_err(|e| e.to_string())?;
        for (region, name) in &self.shade {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(region.start, y_lo), (region.end, y_hi)],
                    ShapeStyle::from(style::WARMUP.mix(0.7)).filled(),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    name.to_string(),
                    (region.start, y_hi),
                    text_style(style::LABEL_PX),
                )))
                .map_err(|e| e.to_string())?;
        }
        // Thin lines first, so a thick total or p99 is never hidden under its parts.
        let mut order: Vec<&Series> = self.series.iter().collect();
        order.sort_by_key(|s| s.thick);
        for series in order {
            let line_style = style::stroke(series.hue, series.thick);
            chart
                .draw_series(LineSeries::new(series.points.iter().copied(), line_style))
                .map_err(|e| e.to_string())?;
            if self.dots {
                chart
                    .draw_series(series.points.iter().map(|&p| {
                        Circle::new(p, 5, ShapeStyle::from(style::colour(series.hue)).filled())
                    }))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

pub(crate) fn text_style(px: u32) -> TextStyle<'static> {
    (style::FONT, px).into_font().color(&style::TEXT)
}

pub(crate) fn caption(title: &str, downsampled: bool) -> String {
    if downsampled {
        format!(
            "{title} (down-sampled: min and max of each bucket, ≤{} points a line)",
            prepare::MAX_POINTS_PER_SERIES
        )
    } else {
        title.to_string()
    }
}

pub(crate) fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

fn legend(series: &[Series]) -> Vec<LegendEntry> {
    series
        .iter()
        .map(|s| LegendEntry {
            name: s.name.clone(),
            colour: hex(style::colour(s.hue)),
            thick: s.thick,
        })
        .collect()
}
