//! Latency percentile spectrum, HdrHistogram style: x is the percentile on a log scale of
//! `1 / (1 - p)` (90 %, 99 %, 99.9 % ... 99.999 % equally spaced), y the response time, so the
//! tail gets as much room as the median. Decoded from the stored histograms, not from the few
//! percentiles stored beside them.

use super::{latency_axis, Axis, Figure, LineChart};
use crate::model::LoadPoint;
use crate::prepare::{self, Series, SPECTRUM_MAX_X};

/// Per population, its classes (and all classes together); then, with several populations, the
/// populations overlaid.
pub fn population_figures(point: &LoadPoint, id_prefix: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (n, spectra) in prepare::population_spectra(point).into_iter().enumerate() {
        figures.extend(figure(
            &format!("{id_prefix}-spectrum-pop{n}"),
            &format!(
                "Latency percentile spectrum of population {}, by class",
                spectra.population
            ),
            spectra.series,
        ));
    }
    figures.extend(figure(
        &format!("{id_prefix}-spectrum-populations"),
        "Latency percentile spectrum, by population",
        prepare::populations_overlay(point),
    ));
    figures
}

/// One spectrum chart of `series` (points `(1 / (1 - p), latency_us)`); `None` without data.
pub fn figure(id: &str, title: &str, series: Vec<Series>) -> Option<Figure> {
    let (y, series) = latency_axis(&series);
    LineChart {
        id: id.to_string(),
        kind: "spectrum",
        title: title.to_string(),
        x: Axis {
            desc: "percentile (log scale of 1/(1-p))".into(),
            range: 1.0..SPECTRUM_MAX_X,
            log_ticks: Some(vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5]),
            format: percentile_label,
        },
        y,
        series,
        shade: Vec::new(),
        dots: false,
        secondary: None,
    }
    .draw()
}

/// `x = 1 / (1 - p)` as the percentile it stands for: 100 -> `99%`.
fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

#[cfg(test)]
mod tests {
    use super::percentile_label;

    #[test]
    fn percentile_ticks_read_as_percentiles() {
        let labels: Vec<String> = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5]
            .into_iter()
            .map(percentile_label)
            .collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }
}
