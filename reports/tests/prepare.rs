//! Data preparation of the report, as plain numbers: down-sampling keeps what a reader must see,
//! percentile spectra come out of the stored histograms right, ratios and comparison rows.

mod common;

use hdrhistogram::Histogram;
use reports::model::HistogramData;
use reports::prepare::*;

fn wavy(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| (i as f64, 100.0 + 10.0 * (i as f64 / 30.0).sin()))
        .collect()
}

#[test]
fn downsampling_keeps_spikes_dips_and_both_ends() {
    let mut points = wavy(3600);
    points[1234].1 = 1e6; // one-second spike
    points[2222].1 = -5.0; // one-second stall
    points[0].1 = 42.0;
    points[3599].1 = 43.0;
    let (out, downsampled) = downsample_min_max(&points, 600);
    assert!(downsampled);
    assert!(out.len() <= 600 && out.len() > 500, "{} points", out.len());
    assert_eq!(out.first(), Some(&(0.0, 42.0)));
    assert_eq!(out.last(), Some(&(3599.0, 43.0)));
    assert!(out.contains(&(1234.0, 1e6)), "spike lost");
    assert!(out.contains(&(2222.0, -5.0)), "dip lost");
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "order lost");
    assert!(out.iter().all(|p| points.contains(p)), "invented a point");
}

#[test]
fn downsampling_keeps_every_window_extreme() {
    // Whatever window of 100 input points one looks at, its max and min lie within the output's
    // range over the same window's x span, widened by one bucket (6 input points here).
    let mut rng = common::Rng::new(5);
    let points: Vec<(f64, f64)> = (0..3000).map(|i| (i as f64, rng.next_f64())).collect();
    let (out, _) = downsample_min_max(&points, 600);
    let global_max = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let global_min = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    assert!(out.iter().any(|p| p.1 == global_max));
    assert!(out.iter().any(|p| p.1 == global_min));
    for start in (0..2900).step_by(100) {
        let window = &points[start..start + 100];
        let max = window.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let kept_max = out
            .iter()
            .filter(|p| p.0 >= (start as f64 - 6.0) && p.0 < (start + 106) as f64)
            .map(|p| p.1)
            .fold(f64::MIN, f64::max);
        assert!(
            kept_max >= max,
            "window at {start}: max {max} drawn as {kept_max}"
        );
    }
}

#[test]
fn series_for_drawing_says_when_it_was_downsampled() {
    let short = Series::new("s", wavy(600), Hue::Total).for_drawing();
    assert!(!short.downsampled);
    assert_eq!(short.points.len(), 600);
    let long = Series::new("s", wavy(601), Hue::Total).for_drawing();
    assert!(long.downsampled);
    assert!(long.points.len() <= MAX_POINTS_PER_SERIES);
}

/// 1, 2, ... 100 000 µs once each: percentile p is p * 100 000 µs, to HdrHistogram's precision.
fn uniform_histogram(n: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for v in 1..=n {
        h.record(v).unwrap();
    }
    h
}

fn y_at(points: &[(f64, f64)], x: f64) -> f64 {
    points
        .iter()
        .find(|p| (p.0 - x).abs() < 1e-6 * x)
        .unwrap_or_else(|| panic!("no point at x = {x}: {points:?}"))
        .1
}

#[test]
fn spectrum_of_a_known_histogram() {
    let points = percentile_spectrum(&uniform_histogram(100_000));
    let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1.0;
    assert_eq!(points[0], (1.0, 1.0), "p0 is the minimum");
    for (x, want) in [
        (10.0, 90_000.0),
        (100.0, 99_000.0),
        (1_000.0, 99_900.0),
        (10_000.0, 99_990.0),
        (100_000.0, 99_999.0),
    ] {
        let got = y_at(&points, x);
        assert!(close(got, want), "x = {x}: {got}, want {want}");
    }
    assert_eq!(points.last().unwrap().0, SPECTRUM_MAX_X);
    assert!(points
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    // 24 points a decade over five decades: smooth, and small in the page.
    assert_eq!(points.len(), 121);
}

#[test]
fn spectrum_of_few_samples_ends_at_the_count_with_the_maximum() {
    let h = uniform_histogram(1000);
    let points = percentile_spectrum(&h);
    let last = *points.last().unwrap();
    assert_eq!(last.0, 1000.0);
    assert_eq!(last.1, h.max() as f64);
    assert!(percentile_spectrum(&Histogram::<u64>::new(3).unwrap()).is_empty());
}

#[test]
fn spectrum_is_decoded_from_the_stored_form() {
    let h = uniform_histogram(20_000);
    let stored = HistogramData::from_histogram(&h);
    assert_eq!(spectrum_of(&stored), Some(percentile_spectrum(&h)));
    assert_eq!(spectrum_of(&HistogramData::default()), None);
    let broken = HistogramData {
        count: 5,
        hdr_v2_deflate_base64: "not base64!".into(),
        ..Default::default()
    };
    assert_eq!(spectrum_of(&broken), None);
}

#[test]
fn ratios_against_the_baseline() {
    assert_eq!(ratio(30.0, 20.0), Some(1.5));
    assert_eq!(ratio(0.0, 0.0), Some(1.0));
    assert_eq!(ratio(3.0, 0.0), None);
    assert_eq!(ratio(f64::NAN, 1.0), None);

    let base = RunSummary {
        ops_per_s: 20_000.0,
        p99_us: Some(2_000.0),
        errors_total: 0.0,
        ..Default::default()
    };
    let other = RunSummary {
        ops_per_s: 10_000.0,
        p99_us: None,
        errors_total: 5.0,
        ..Default::default()
    };
    let rows = comparison_rows(&[base, other]);
    let row = |id: &str| rows.iter().find(|r| r.metric.id == id);
    let ops = row("ops_per_s").unwrap();
    assert_eq!(ops.ratios, [Some(1.0), Some(0.5)]);
    let p99 = row("p99").unwrap();
    assert_eq!(p99.values, [Some(2_000.0), None]);
    assert_eq!(p99.ratios, [Some(1.0), None]);
    assert_eq!(row("errors").unwrap().ratios, [Some(1.0), None]);
    // No run has a p50: the metric is left out, not shown empty.
    assert!(row("p50").is_none());
    assert!(row("errors_per_1k_ops").is_none());
}

#[test]
fn run_summary_merges_the_populations() {
    let result = common::realistic();
    let summary = run_summary(&result);
    let point = &result.load_points[0];
    assert_eq!(summary.ops_per_s, point.totals.ops_per_s);
    let merged = merged_latency(point).unwrap();
    let samples: u64 = point
        .populations
        .iter()
        .map(|p| p.latency.total_us.count)
        .sum();
    assert_eq!(merged.len(), samples);
    // The slow modem population dominates the merged tail.
    let modem_p99 = point.populations[1].latency.total_us.p99 as f64;
    assert!(summary.p99_us.unwrap() > point.populations[0].latency.total_us.p99 as f64);
    assert!(summary.p99_us.unwrap() <= modem_p99 * 1.01);
}

#[test]
fn timeline_view_of_a_realistic_point() {
    let result = common::realistic();
    let view = timeline_view(&result.load_points[0]).unwrap();
    assert_eq!((view.duration_s, view.warmup_end_s), (60.0, 5.0));
    // total + three populations
    let names: Vec<&str> = view.ops_per_s.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["total", "lan", "modem", "arrivals"]);
    assert_eq!(view.ops_per_s[0].hue, Hue::Total);
    assert_eq!(view.open_connections.len(), 3);
    assert_eq!(view.latency_us.len(), 6, "p50 and p99 of each population");
    // The stall at interval 20 has no latency to show: left out, not drawn as 0 µs.
    let lan_p50 = &view.latency_us[0];
    assert_eq!(lan_p50.points.len(), 59);
    assert!(lan_p50.points.iter().all(|p| p.1 > 0.0 && p.0 != 21.0));
    assert!(view.ops_per_s.iter().all(|s| !s.downsampled));
}

#[test]
fn one_population_has_no_separate_total() {
    let mut result = common::realistic();
    let point = &mut result.load_points[0];
    point.populations.truncate(1);
    point.timeline.populations.truncate(1);
    let view = timeline_view(point).unwrap();
    assert_eq!(view.ops_per_s.len(), 1);
    assert!(populations_overlay(point).is_empty());
}

#[test]
fn an_empty_timeline_has_no_view() {
    let mut result = common::realistic();
    let point = &mut result.load_points[0];
    for p in &mut point.timeline.populations {
        *p = reports::model::PopulationTimeline {
            name: p.name.clone(),
            ..Default::default()
        };
    }
    assert_eq!(timeline_view(point), None);
}

#[test]
fn sweeps_have_curves_and_single_points_do_not() {
    assert!(sweep_view(&common::realistic()).is_none());
    let result = common::sweep(4);
    let view = sweep_view(&result).unwrap();
    // closed and open populations together: the shared axis is the percentage of full load
    assert_eq!(view.offered_axis, "offered load (% of full load)");
    assert_eq!(view.throughput[0].points.len(), 4);
    assert_eq!(view.throughput[0].points[3].0, 100.0);
    assert_eq!(view.throughput.len(), 4, "all + three populations");
    assert_eq!(view.latency.len(), 6);
    assert_eq!(headline_point(&result).map(|p| p.load_fraction), Some(1.0));
}

fn flat(name: &str, value: f64, hue: usize) -> Series {
    Series::new(name, vec![(1.0, 0.0), (2.0, value)], Hue::Index(hue))
}

#[test]
fn ten_thousand_modems_and_fifty_lan_clients_get_separate_panels() {
    let series = [
        flat("lan", 50.0, 0),
        flat("modem", 10_000.0, 1),
        flat("idle", 0.0, 2),
    ];
    let panels = panels_by_magnitude(&series);
    let names: Vec<Vec<&str>> = panels
        .iter()
        .map(|p| p.iter().map(|s| s.name.as_str()).collect())
        .collect();
    // Largest first; a population that never opened a connection goes with the small ones,
    // and each keeps its colour.
    assert_eq!(names, [vec!["modem"], vec!["lan", "idle"]]);
    assert_eq!(panels[1][1].hue, Hue::Index(2));
    // Within the ratio, one panel in the original order.
    let close = [
        flat("a", 60.0, 0),
        flat("b", 60.0 * SEPARATE_PANEL_RATIO, 1),
    ];
    assert_eq!(panels_by_magnitude(&close), [close.to_vec()]);
    assert!(panels_by_magnitude(&[]).is_empty());
}

#[test]
fn slow_line_rows_decode_the_low_end() {
    let result = common::with_slow_lines(common::realistic());
    let rows = slow_line_rows(&result.load_points[0]);
    assert_eq!(rows.len(), 1, "only the modem population has a line");
    let modem = &rows[0];
    assert_eq!(modem.achieved_p50_bytes_per_s, Some(5_003.0));
    assert_eq!(modem.achieved_low_bytes_per_s, Some(LowEnd::P10(1_500.0)));
    assert_eq!(modem.slowdown_p50, Some(1.02));
    assert_eq!(modem.slowdown_p99, Some(1.8));
    assert_eq!(modem.downstream_bps, [(56_000.0, 0.75), (28_800.0, 0.25)]);
    // No reply measured: no figure rather than a zero rate.
    let mut idle = result.load_points[0].clone();
    let line = idle.populations[1].line.as_mut().unwrap();
    line.achieved_bytes_per_s = HistogramData::default();
    line.slowdown_milli = HistogramData::default();
    let rows = slow_line_rows(&idle);
    assert_eq!(rows[0].achieved_low_bytes_per_s, None);
    assert_eq!(rows[0].slowdown_p99, None);
}

#[test]
fn little_rows_compare_measured_with_predicted() {
    let result = common::with_slow_lines(common::realistic());
    let rows = little_rows(&result.load_points[0]);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].population, "modem");
    assert_eq!(rows[1].connections_ratio, Some(0.95));
    assert_eq!(rows[1].requests_ratio, Some(1_500.0 / 1_600.0));
    assert!(little_rows(&common::realistic().load_points[0]).is_empty());
}

#[test]
fn populations_across_points_say_where_one_did_not_run() {
    let result = common::variants();
    let points: Vec<_> = result.load_points.iter().collect();
    let rows = populations_across(&points);
    let names: Vec<&str> = rows.iter().map(|r| r.population.as_str()).collect();
    assert_eq!(names, ["lan", "arrivals", "modem"]);
    let lan = &rows[0].cells;
    assert_eq!(lan[0].as_ref().unwrap().p99_us, Some(4_500.0));
    assert_eq!(lan[1].as_ref().unwrap().ops_per_s, 9_600.0);
    assert!(rows[2].cells[0].is_none());
    // Nothing shared between the points: nothing to set side by side.
    let mut other = result.load_points[1].clone();
    for p in &mut other.populations {
        p.name.push_str("-2");
    }
    assert!(populations_across(&[&result.load_points[0], &other]).is_empty());
}

#[test]
fn little_rows_give_no_connection_check_when_most_connections_outlive_the_window() {
    use reports::model::{Concurrency, LoadPoint, PopulationResult};
    let population = |closed: u64| PopulationResult {
        name: "modem".into(),
        kind: "modem".into(),
        concurrency: Some(Concurrency {
            mean_open_connections: 9_884.0,
            connections_per_s: 11.3,
            mean_connection_lifetime_s: 36.0,
            predicted_open_connections: 408.1,
            connections_closed: closed,
            mean_requests_in_flight: 3_052.4,
            predicted_requests_in_flight: 2_547.6,
        }),
        ..Default::default()
    };
    let point = |closed| LoadPoint {
        populations: vec![population(closed)],
        ..Default::default()
    };
    // 680 closes against ~9,900 open: lifetimes unknown, no ratio.
    let rows = reports::prepare::little_rows(&point(680));
    assert!(rows[0].connections_outlive_window);
    assert_eq!(rows[0].connections_ratio, None);
    assert!(rows[0].requests_ratio.is_some());
    // Kept-alive connections, none closed in the window: no prediction, no ratio.
    let mut kept_alive = point(0);
    let concurrency = kept_alive.populations[0].concurrency.as_mut().unwrap();
    (
        concurrency.connections_per_s,
        concurrency.predicted_open_connections,
    ) = (0.0, 0.0);
    let rows = reports::prepare::little_rows(&kept_alive);
    assert!(rows[0].connections_outlive_window);
    assert_eq!(rows[0].connections_ratio, None);
    // Plenty of closes: the ratio is there. An old result (no count) keeps its ratio too.
    for closed in [50_000, 0] {
        let rows = reports::prepare::little_rows(&point(closed));
        assert!(!rows[0].connections_outlive_window);
        let ratio = rows[0].connections_ratio.expect("a ratio");
        assert!((ratio - 9_884.0 / 408.1).abs() < 1e-9);
    }
}

#[test]
fn variants_at_one_load_are_no_sweep() {
    use reports::model::{LoadPoint, RunResult};
    let point = |fraction: f64| LoadPoint {
        load_fraction: fraction,
        ..Default::default()
    };
    let run = |fractions: &[f64]| RunResult {
        load_points: fractions.iter().map(|&f| point(f)).collect(),
        ..Default::default()
    };
    assert!(reports::prepare::sweep_view(&run(&[1.0, 1.0, 1.0])).is_none());
    assert!(reports::prepare::sweep_view(&run(&[1.0])).is_none());
    assert!(reports::prepare::sweep_view(&run(&[0.5, 1.0])).is_some());
}
