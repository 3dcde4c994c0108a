//! Pure data preparation for the report: everything the charts and tables draw, computed from a
//! `RunResult` without touching plotters or HTML. Down-sampling that keeps spikes, percentile
//! spectra decoded from the stored HDR histograms, sweep curves, the comparison metrics with
//! their ratios against the first run, slow-line and Little's law figures, the live viewers'
//! figures and the server's live counters, each population across load points or runs, and
//! which populations share a connections panel all live here, so they are tested as plain
//! numbers.
//!
//! Not here: colours, sizes and units of display (`plot::style`), markup (`render`).

use hdrhistogram::Histogram;

use crate::model::{HistogramData, KernelSample, KernelSummary, LoadPoint, RunResult};

/// At most this many points per drawn time series: a one-hour run at one-second intervals would
/// otherwise put 3600 vertices per line into the page, most of them on the same pixel column.
pub const MAX_POINTS_PER_SERIES: usize = 600;

/// The percentile axis of a spectrum ends at 99.999 %, i.e. `1 / (1 - p) = 100_000`.
pub const SPECTRUM_MAX_X: f64 = 100_000.0;

/// Points per decade of the percentile axis: smooth enough at 1200 px, small in the page.
const SPECTRUM_POINTS_PER_DECADE: usize = 24;

/// Which colour slot a series takes: the total (drawn in black), or the n-th population, class
/// or run (the n-th colour of the palette). The slot is data, the colour is `plot::style`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hue {
    /// The sum of all populations (or all classes): black.
    Total,
    /// The n-th population, class or run, from 0.
    Index(usize),
}

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's name for it.
    pub name: String,
    /// `(x, y)` in the chart's data units, sorted by x.
    pub points: Vec<(f64, f64)>,
    /// Its colour slot.
    pub hue: Hue,
    /// Drawn thicker: the p99 beside a thin p50, the total beside its parts.
    pub thick: bool,
    /// True when `points` is a down-sampled copy of longer data.
    pub downsampled: bool,
}

impl Series {
    /// A thin series of `points`, not down-sampled.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, hue: Hue) -> Series {
        Series {
            name: name.into(),
            points,
            hue,
            thick: false,
            downsampled: false,
        }
    }

    /// The same series drawn thick.
    pub fn thick(mut self) -> Series {
        self.thick = true;
        self
    }

    /// The same series with at most `MAX_POINTS_PER_SERIES` points, extremes kept.
    pub fn for_drawing(mut self) -> Series {
        let (points, downsampled) = downsample_min_max(&self.points, MAX_POINTS_PER_SERIES);
        self.points = points;
        self.downsampled |= downsampled;
        self
    }
}

/// Reduces `points` (sorted by x) to at most `max_points` for drawing, keeping the first and the
/// last point and, in each of the buckets the rest is cut into, the lowest and the highest point
/// in their original order: a one-second spike of a one-hour run survives at any zoom, which an
/// average or a stride would lose. Returns the points and whether anything was dropped.
pub fn downsample_min_max(points: &[(f64, f64)], max_points: usize) -> (Vec<(f64, f64)>, bool) {
    // Below 4 there is no room for first + last + one bucket's pair.
    let max_points = max_points.max(4);
    if points.len() <= max_points {
        return (points.to_vec(), false);
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let inner = &points[1..points.len() - 1];
    let buckets = (max_points - 2) / 2;
    let mut out = Vec::with_capacity(max_points);
    out.push(first);
    for b in 0..buckets {
        // Bucket bounds by index: every inner point falls in exactly one bucket.
        let start = b * inner.len() / buckets;
        let end = (b + 1) * inner.len() / buckets;
        let bucket = &inner[start..end];
        if bucket.is_empty() {
            continue;
        }
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in bucket.iter().enumerate() {
            if p.1 < bucket[lo].1 {
                lo = i;
            }
            if p.1 > bucket[hi].1 {
                hi = i;
            }
        }
        match lo.cmp(&hi) {
            std::cmp::Ordering::Less => out.extend([bucket[lo], bucket[hi]]),
            std::cmp::Ordering::Greater => out.extend([bucket[hi], bucket[lo]]),
            std::cmp::Ordering::Equal => out.push(bucket[lo]),
        }
    }
    out.push(last);
    (out, true)
}

/// The HdrHistogram percentile spectrum of `histogram`: points `(1 / (1 - p), latency_us)` on a
/// log-spaced grid of `1 / (1 - p)` from 1 (p = 0, the minimum) up to 99.999 %, or up to the
/// sample count when there are fewer samples than that (beyond it every percentile is the
/// maximum, and the curve ends there at the maximum). Empty for an empty histogram.
pub fn percentile_spectrum(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let count = histogram.len();
    if count == 0 {
        return Vec::new();
    }
    let x_max = (count as f64).clamp(10.0, SPECTRUM_MAX_X);
    let steps = (x_max.log10() * SPECTRUM_POINTS_PER_DECADE as f64).ceil() as usize;
    let mut points = Vec::with_capacity(steps + 1);
    for i in 0..=steps {
        let x = 10f64
            .powf(i as f64 / SPECTRUM_POINTS_PER_DECADE as f64)
            .min(x_max);
        let quantile = 1.0 - 1.0 / x;
        points.push((x, histogram.value_at_quantile(quantile) as f64));
    }
    if (count as f64) < SPECTRUM_MAX_X {
        // The quantile at x = count is the second-highest sample; the curve ends at the highest.
        if let Some(last) = points.last_mut() {
            last.1 = histogram.max() as f64;
        }
    }
    points
}

/// The spectrum of a stored histogram; `None` when it is empty or does not decode.
pub fn spectrum_of(data: &HistogramData) -> Option<Vec<(f64, f64)>> {
    if data.count == 0 {
        return None;
    }
    let histogram = data.decode().ok()?;
    let points = percentile_spectrum(&histogram);
    (!points.is_empty()).then_some(points)
}

/// `value / base`, or `None` when there is nothing to compare against (a zero base; two zeros
/// are equal, so their ratio is 1).
pub fn ratio(value: f64, base: f64) -> Option<f64> {
    if !value.is_finite() || !base.is_finite() {
        None
    } else if base == 0.0 {
        (value == 0.0).then_some(1.0)
    } else {
        Some(value / base)
    }
}

/// All populations' total latencies of one load point merged into one histogram; `None` when
/// nothing was recorded or a population's histogram does not decode (a pool without it would
/// pass for all of them).
pub fn merged_latency(point: &LoadPoint) -> Option<Histogram<u64>> {
    // Auto-resizing, so histograms recorded with different bounds merge.
    let mut merged = Histogram::<u64>::new(3).ok()?;
    for population in &point.populations {
        if population.latency.total_us.count == 0 {
            continue;
        }
        let histogram = population.latency.total_us.decode().ok()?;
        merged.add(&histogram).ok()?;
    }
    (!merged.is_empty()).then_some(merged)
}

/// The response times of all populations of one load point pooled: their histograms merged, so
/// that the p99 is the 99th percentile of every request of the point, not the worst
/// population's. Every all-populations latency of the reports, text and HTML alike, is this.
/// Microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PooledLatency {
    /// Requests measured, all populations.
    pub count: u64,
    /// Mean response time.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// The pooled response times of `point` (`merged_latency`); `None` when nothing was recorded
/// or a population's histogram does not decode.
pub fn pooled_latency(point: &LoadPoint) -> Option<PooledLatency> {
    let h = merged_latency(point)?;
    let at = |q: f64| h.value_at_quantile(q) as f64;
    Some(PooledLatency {
        count: h.len(),
        mean_us: h.mean(),
        p50_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: h.max() as f64,
    })
}

/// A load point's TIME_WAITs of the server's port at their peak, as the reports head them: the
/// point's own within its measured window when the result tells origins apart, else (results
/// from before that) every origin over the whole point, said so by `own`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeWaitPeak {
    /// True: the point's own in its window; false: every origin, earlier points' and the
    /// teardown's included.
    pub own: bool,
    /// Server side, sockets.
    pub server_side: u64,
    /// Client side, sockets.
    pub client_side: u64,
    /// Both sides' memory, bytes.
    pub bytes: u64,
}

/// The TIME_WAIT peak of `kernel` as the reports head it (see `TimeWaitPeak`).
pub fn time_wait_peak(kernel: &KernelSummary) -> TimeWaitPeak {
    let k = kernel;
    match (
        k.own_peak_time_wait_server_side,
        k.own_peak_time_wait_client_side,
    ) {
        (None, None) => TimeWaitPeak {
            own: false,
            server_side: k.peak_time_wait_server_side,
            client_side: k.peak_time_wait_client_side,
            bytes: k.peak_time_wait_server_side_bytes + k.peak_time_wait_client_side_bytes,
        },
        (server_side, client_side) => TimeWaitPeak {
            own: true,
            server_side: server_side.unwrap_or(0),
            client_side: client_side.unwrap_or(0),
            bytes: k.own_peak_time_wait_server_side_bytes.unwrap_or(0)
                + k.own_peak_time_wait_client_side_bytes.unwrap_or(0),
        },
    }
}

/// The load point a run is summed up by: the one at the highest load (the last of a sweep, the
/// only one otherwise).
pub fn headline_point(result: &RunResult) -> Option<&LoadPoint> {
    headline_index(result).map(|n| &result.load_points[n])
}

/// The index of `headline_point` in `result.load_points`.
pub fn headline_index(result: &RunResult) -> Option<usize> {
    result
        .load_points
        .iter()
        .enumerate()
        // `max_by` keeps the last of equals: the later of two points at the same load.
        .max_by(|a, b| a.1.load_fraction.total_cmp(&b.1.load_fraction))
        .map(|(n, _)| n)
}

// ---- one load point's timeline ---------------------------------------------------------------

/// One load point's timeline, ready to draw: times are the end of each interval in seconds from
/// the start of the warm-up; every series already down-sampled.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineView {
    /// The end of the last interval: the time axis' length, in seconds.
    pub duration_s: f64,
    /// The warm-up region is `0 ..= warmup_end_s`.
    pub warmup_end_s: f64,
    /// Where the measured window ends; intervals after it (the last, partial one) are not
    /// measured either.
    pub measured_end_s: f64,
    /// The total first (when there are several populations), then one per population.
    pub ops_per_s: Vec<Series>,
    /// Response data in Mbit/s: the total first (when there are several populations), then one
    /// per population.
    pub mbit_per_s: Vec<Series>,
    /// Connections open at the end of each interval, one per population that recorded them.
    pub open_connections: Vec<Series>,
    /// Response time (µs) per population, p50 then p99; intervals without a completed request are left out.
    pub latency_us: Vec<Series>,
    /// Live viewers: frame age at receipt (µs) per viewer population, p50 then p99; intervals
    /// without a frame are left out.
    pub frame_age_us: Vec<Series>,
    /// Live viewers: frames per second per connected viewer in each interval, per viewer
    /// population, received (thick) then skipped (thin); intervals with no viewer connected
    /// are left out.
    pub viewer_fps: Vec<Series>,
}

/// The drawable timeline of `point`, or `None` when it has no interval at all.
pub fn timeline_view(point: &LoadPoint) -> Option<TimelineView> {
    let timeline = &point.timeline;
    let intervals = timeline
        .populations
        .iter()
        .map(|p| p.ops.len().max(p.open_connections.len()))
        .max()
        .unwrap_or(0);
    if intervals == 0 || timeline.interval_s <= 0.0 {
        return None;
    }
    let dt = timeline.interval_s;
    let t = |i: usize| (i + 1) as f64 * dt;
    let several = timeline.populations.len() > 1;

    let mut ops_per_s = Vec::new();
    let mut mbit_per_s = Vec::new();
    if several {
        let sum = |f: &dyn Fn(&crate::model::PopulationTimeline, usize) -> f64| {
            (0..intervals)
                .map(|i| (t(i), timeline.populations.iter().map(|p| f(p, i)).sum()))
                .collect::<Vec<_>>()
        };
        let ops = sum(&|p, i| p.ops.get(i).copied().unwrap_or(0) as f64 / dt);
        let mbit = sum(&|p, i| p.bytes.get(i).copied().unwrap_or(0) as f64 * 8.0 / 1e6 / dt);
        ops_per_s.push(Series::new("total", ops, Hue::Total).thick().for_drawing());
        mbit_per_s.push(Series::new("total", mbit, Hue::Total).thick().for_drawing());
    }
    let mut open_connections = Vec::new();
    let mut latency_us = Vec::new();
    let mut frame_age_us = Vec::new();
    let mut viewer_fps = Vec::new();
    for (n, population) in timeline.populations.iter().enumerate() {
        let hue = Hue::Index(n);
        let per_interval = |values: &[u64], scale: f64| {
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| (t(i), v as f64 * scale))
                .collect::<Vec<_>>()
        };
        let name = &population.name;
        ops_per_s
            .push(Series::new(name, per_interval(&population.ops, 1.0 / dt), hue).for_drawing());
        mbit_per_s.push(
            Series::new(name, per_interval(&population.bytes, 8.0 / 1e6 / dt), hue).for_drawing(),
        );
        if !population.open_connections.is_empty() {
            open_connections.push(
                Series::new(name, per_interval(&population.open_connections, 1.0), hue)
                    .for_drawing(),
            );
        }
        // A percentile of no request is not zero latency: leave such intervals out.
        let measured = |values: &[u64]| {
            values
                .iter()
                .enumerate()
                .filter(|&(i, &v)| population.ops.get(i).map_or(v > 0, |&ops| ops > 0))
                .map(|(i, &v)| (t(i), v as f64))
                .collect::<Vec<_>>()
        };
        for (label, values, thick) in [
            ("p50", &population.latency_p50_us, false),
            ("p99", &population.latency_p99_us, true),
        ] {
            let points = measured(values);
            if !points.is_empty() {
                let mut series = Series::new(format!("{name} {label}"), points, hue).for_drawing();
                series.thick = thick;
                latency_us.push(series);
            }
        }
        // Live viewers: an age of no frame is no age; a rate per viewer needs viewers.
        let with_frames = |values: &[u64]| {
            values
                .iter()
                .enumerate()
                .filter(|&(i, _)| population.frames.get(i).is_some_and(|&f| f > 0))
                .map(|(i, &v)| (t(i), v as f64))
                .collect::<Vec<_>>()
        };
        for (label, values, thick) in [
            ("p50", &population.frame_age_p50_us, false),
            ("p99", &population.frame_age_p99_us, true),
        ] {
            let points = with_frames(values);
            if !points.is_empty() {
                let mut series = Series::new(format!("{name} {label}"), points, hue).for_drawing();
                series.thick = thick;
                frame_age_us.push(series);
            }
        }
        let per_viewer = |values: &[u64]| {
            values
                .iter()
                .zip(&population.open_connections)
                .enumerate()
                .filter(|&(_, (_, &viewers))| viewers > 0)
                .map(|(i, (&v, &viewers))| (t(i), v as f64 / dt / viewers as f64))
                .collect::<Vec<_>>()
        };
        for (label, values, thick) in [
            ("received", &population.frames, true),
            ("skipped", &population.frames_skipped, false),
        ] {
            let points = per_viewer(values);
            if !points.is_empty() {
                let mut series = Series::new(format!("{name} {label}"), points, hue).for_drawing();
                series.thick = thick;
                viewer_fps.push(series);
            }
        }
    }
    ops_per_s.retain(|s| !s.points.is_empty());
    mbit_per_s.retain(|s| !s.points.is_empty());
    let warmup_end_s = timeline.measured_from_index.min(intervals) as f64 * dt;
    Some(TimelineView {
        duration_s: intervals as f64 * dt,
        warmup_end_s,
        measured_end_s: warmup_end_s + point.measured_s,
        ops_per_s,
        mbit_per_s,
        open_connections,
        latency_us,
        frame_age_us,
        viewer_fps,
    })
}

/// One load point's kernel and server samples, ready to draw: times in seconds from the start
/// of the warm-up (the timeline's axis); every series already down-sampled. A series the sampler
/// could not fill (no server process to read, say) is absent, not zero.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelView {
    /// The time axis' length, in seconds: the last sample or the timeline's end, whichever is
    /// later.
    pub duration_s: f64,
    /// The warm-up region is `0 ..= warmup_end_s`.
    pub warmup_end_s: f64,
    /// Where the measured window ends.
    pub measured_end_s: f64,
    /// Server side, then client side: sockets in TIME_WAIT on the server's port, whatever
    /// their origin; then, when there are any, those of both sides begun before this point
    /// (left by earlier points or runs on the same port).
    pub time_wait: Vec<Series>,
    /// Size of one TIME_WAIT socket in bytes, for the bytes axis.
    pub time_wait_object_bytes: u64,
    /// True when that size is the fallback, not read from /proc/slabinfo.
    pub time_wait_bytes_estimated: bool,
    /// The kernel's TCP memory (sockstat `mem`), bytes.
    pub tcp_memory_bytes: Vec<Series>,
    /// The server's RSS and PSS (process tree), bytes.
    pub server_memory_bytes: Vec<Series>,
    /// CPU use in % of one core between samples: the server's tree, the generator.
    pub cpu_percent: Vec<Series>,
}

/// The drawable kernel samples of `point`, or `None` when it has none.
pub fn kernel_view(point: &LoadPoint) -> Option<KernelView> {
    let kernel = point.kernel.as_ref()?;
    let samples = &kernel.samples;
    if samples.is_empty() {
        return None;
    }
    let t = |s: &KernelSample| s.elapsed_ms as f64 / 1000.0;
    let series = |name: &str, hue: usize, value: &dyn Fn(&KernelSample) -> Option<f64>| {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((t(s), value(s)?)))
            .collect();
        (!points.is_empty()).then(|| Series::new(name, points, Hue::Index(hue)).for_drawing())
    };
    // Cumulative CPU microseconds to a share of one core over each sampling interval.
    let cpu = |name: &str, hue: usize, value: &dyn Fn(&KernelSample) -> Option<u64>| {
        let known: Vec<(f64, u64)> = samples
            .iter()
            .filter_map(|s| Some((t(s), value(s)?)))
            .collect();
        let points: Vec<(f64, f64)> = known
            .windows(2)
            .filter(|w| w[1].0 > w[0].0)
            .map(|w| {
                let used_s = w[1].1.saturating_sub(w[0].1) as f64 / 1e6;
                (w[1].0, 100.0 * used_s / (w[1].0 - w[0].0))
            })
            .collect();
        // A counter that never moved was not read (the generator always uses some CPU).
        let moved = known.last().map(|l| l.1) > known.first().map(|f| f.1);
        (moved && !points.is_empty())
            .then(|| Series::new(name, points, Hue::Index(hue)).for_drawing())
    };
    let interval_s = point.timeline.interval_s.max(0.0);
    let timeline_s = point
        .timeline
        .populations
        .iter()
        .map(|p| p.ops.len())
        .max()
        .unwrap_or(0) as f64
        * interval_s;
    let warmup_end_s = point.timeline.measured_from_index as f64 * interval_s;
    Some(KernelView {
        duration_s: samples.iter().map(t).fold(timeline_s, f64::max),
        warmup_end_s,
        measured_end_s: warmup_end_s + point.measured_s,
        time_wait: [
            series("server side", 0, &|s| Some(s.time_wait_server_side as f64)),
            series("client side", 1, &|s| Some(s.time_wait_client_side as f64)),
            series("begun before this point, both sides", 2, &|s| {
                let own = s.time_wait_server_side_since_point_start?
                    + s.time_wait_client_side_since_point_start?;
                let all = s.time_wait_server_side + s.time_wait_client_side;
                Some(all.saturating_sub(own) as f64)
            })
            // A line along zero would only say that nothing was left over.
            .filter(|earlier| earlier.points.iter().any(|p| p.1 > 0.0)),
        ]
        .into_iter()
        .flatten()
        .collect(),
        time_wait_object_bytes: kernel.time_wait_object_bytes,
        time_wait_bytes_estimated: kernel.time_wait_bytes_estimated,
        tcp_memory_bytes: series("TCP memory (sockstat mem)", 0, &|s| {
            Some(s.tcp_memory_bytes as f64)
        })
        .into_iter()
        .collect(),
        server_memory_bytes: [
            series("server RSS", 0, &|s| s.server_rss_bytes.map(|b| b as f64)),
            series("server PSS", 2, &|s| s.server_pss_bytes.map(|b| b as f64)),
        ]
        .into_iter()
        .flatten()
        .collect(),
        cpu_percent: [
            cpu("server", 0, &|s| s.server_cpu_us),
            cpu("loadgen", 1, &|s| Some(s.loadgen_cpu_us)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    })
}

/// The latency spectra of one population at one load point: all classes together (black, thick)
/// and each class.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationSpectra {
    /// The population's name.
    pub population: String,
    /// Points `(1 / (1 - p), latency µs)`: all classes first, then each class that recorded
    /// anything.
    pub series: Vec<Series>,
}

/// The spectra of every population of `point` that recorded a latency.
pub fn population_spectra(point: &LoadPoint) -> Vec<PopulationSpectra> {
    point
        .populations
        .iter()
        .filter_map(|population| {
            let mut series = Vec::new();
            if let Some(points) = spectrum_of(&population.latency.total_us) {
                series.push(Series::new("all classes", points, Hue::Total).thick());
            }
            for (n, class) in population.classes.iter().enumerate() {
                if let Some(points) = spectrum_of(&class.latency.total_us) {
                    series.push(Series::new(&class.class, points, Hue::Index(n)));
                }
            }
            (!series.is_empty()).then(|| PopulationSpectra {
                population: population.name.clone(),
                series,
            })
        })
        .collect()
}

/// The populations' spectra of one load point overlaid; empty with fewer than two populations
/// (the per-population chart already shows the only one).
pub fn populations_overlay(point: &LoadPoint) -> Vec<Series> {
    if point.populations.len() < 2 {
        return Vec::new();
    }
    point
        .populations
        .iter()
        .enumerate()
        .filter_map(|(n, p)| {
            spectrum_of(&p.latency.total_us).map(|pts| Series::new(&p.name, pts, Hue::Index(n)))
        })
        .collect()
}

// ---- sweeps ----------------------------------------------------------------------------------

/// A sweep's curves: throughput against offered load, latency against throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepView {
    /// What the x axis of the throughput chart counts, with its unit.
    pub offered_axis: String,
    /// Completed ops/s against the offered load: all populations (or runs), then each
    /// population.
    pub throughput: Vec<Series>,
    /// Response time (µs) against completed ops/s, p50 and p99 per population (p99 per run).
    pub latency: Vec<Series>,
}

/// The offered load of each point, on an axis every population shares: clients when all are
/// closed loops (slow-line users included), requests/s when all are open, otherwise the
/// percentage of the full load.
fn offered_axis(result: &RunResult) -> (String, Vec<f64>) {
    let kinds: Vec<&str> = result
        .load_points
        .iter()
        .flat_map(|p| p.populations.iter().map(|q| q.kind.as_str()))
        .collect();
    let all = |of: &[&str]| !kinds.is_empty() && kinds.iter().all(|k| of.contains(k));
    let summed = |p: &LoadPoint| p.populations.iter().map(|q| q.offered).sum::<f64>();
    // Slow-line (modem) users are closed loops too: both count clients.
    if all(&["closed", "modem"]) {
        let xs = result.load_points.iter().map(summed).collect();
        ("offered load (clients)".into(), xs)
    } else if all(&["open"]) {
        let xs = result.load_points.iter().map(summed).collect();
        ("offered load (requests/s)".into(), xs)
    } else {
        let xs = result
            .load_points
            .iter()
            .map(|p| p.load_fraction * 100.0)
            .collect();
        ("offered load (% of full load)".into(), xs)
    }
}

/// The sweep curves of one run; `None` unless it has several load points at different loads.
pub fn sweep_view(result: &RunResult) -> Option<SweepView> {
    if result.load_points.len() < 2 {
        return None;
    }
    // Variants at one load (server configurations, or populations joining) are no sweep: an
    // "offered load" axis would draw a trend between unrelated setups.
    let first = result.load_points[0].load_fraction;
    if result
        .load_points
        .iter()
        .all(|p| (p.load_fraction - first).abs() < 1e-9)
    {
        return None;
    }
    let (offered_axis, xs) = offered_axis(result);
    let points = &result.load_points;
    let mut throughput = vec![Series::new(
        "all populations",
        xs.iter()
            .zip(points)
            .map(|(&x, p)| (x, p.totals.ops_per_s))
            .collect(),
        Hue::Total,
    )
    .thick()];
    // Population names in order of first appearance across the points.
    let mut names: Vec<&str> = Vec::new();
    for point in points {
        for population in &point.populations {
            if !names.contains(&population.name.as_str()) {
                names.push(&population.name);
            }
        }
    }
    let mut latency = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let of = |p: &LoadPoint| p.populations.iter().find(|q| q.name == *name).cloned();
        if names.len() > 1 {
            let pts = xs
                .iter()
                .zip(points)
                .filter_map(|(&x, p)| of(p).map(|q| (x, q.totals.ops_per_s)))
                .collect();
            throughput.push(Series::new(*name, pts, Hue::Index(n)));
        }
        for (label, thick) in [("p50", false), ("p99", true)] {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|p| {
                    let q = of(p)?;
                    let l = &q.latency.total_us;
                    let v = if thick { l.p99 } else { l.p50 };
                    (l.count > 0).then_some((p.totals.ops_per_s, v as f64))
                })
                .collect();
            if !pts.is_empty() {
                let mut series = Series::new(format!("{name} {label}"), pts, Hue::Index(n));
                series.thick = thick;
                latency.push(series);
            }
        }
    }
    Some(SweepView {
        offered_axis,
        throughput,
        latency,
    })
}

// ---- comparisons -----------------------------------------------------------------------------

/// The figures one run is compared by, all from its headline load point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    /// Completed operations per second, all populations.
    pub ops_per_s: f64,
    /// Response data in Mbit/s, all populations.
    pub mbit_per_s: f64,
    /// Errors of all kinds.
    pub errors_total: f64,
    /// Errors per 1000 completed ops; `None` when nothing completed.
    pub errors_per_1k_ops: Option<f64>,
    /// Median latency of all populations together (µs); `None` when nothing was recorded.
    pub p50_us: Option<f64>,
    /// 99th percentile latency of all populations together (µs).
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency of all populations together (µs).
    pub p999_us: Option<f64>,
    /// Largest latency of all populations together (µs).
    pub max_us: Option<f64>,
    /// Server CPU per completed op (µs), from the kernel accounting when the run has it.
    pub server_cpu_us_per_op: Option<f64>,
    /// Context switches of the server's tree per second of the measured window (switches/s),
    /// from the kernel accounting; a lower bound (`KernelSummary::server_ctx_switches_per_s`).
    pub server_ctx_switches_per_s: Option<f64>,
    /// Context switches of the server's tree per completed op (switches/op); a lower bound.
    pub server_ctx_switches_per_op: Option<f64>,
    /// Server memory per connection (bytes), from the kernel accounting.
    pub server_memory_per_connection_bytes: Option<f64>,
    /// Server peak RSS (bytes), from the kernel accounting.
    pub server_peak_rss_bytes: Option<f64>,
    /// The generator's own user-space memory per client connection.
    pub loadgen_memory_per_connection_bytes: Option<f64>,
    /// Peak memory of the point's own TIME_WAITs in its measured window, server and client
    /// side together (bytes); `None` for results from before TIME_WAITs were told apart by
    /// origin.
    pub peak_time_wait_bytes: Option<f64>,
    /// Most of the point's own TIME_WAITs held by the server at once in its measured window
    /// (sockets); `None` as for `peak_time_wait_bytes`.
    pub peak_time_wait_server_side: Option<f64>,
    /// Most of the point's own TIME_WAITs held by the clients at once in its measured window
    /// (sockets); `None` as for `peak_time_wait_bytes`.
    pub peak_time_wait_client_side: Option<f64>,
    /// Peak kernel TCP memory (bytes).
    pub peak_tcp_memory_bytes: Option<f64>,
    /// Live viewers (kind `viewer`), all viewer populations pooled: the 99th percentile frame
    /// age at receipt (µs); `None` for a point without viewers.
    pub viewer_frame_age_p99_us: Option<f64>,
    /// Live viewers pooled: the median of the viewers' frames per second.
    pub viewer_fps_p50: Option<f64>,
    /// Live viewers pooled: frames skipped over frames received plus skipped (a fraction).
    pub viewer_skip_rate: Option<f64>,
}

/// The comparison figures of `result`, at its headline point; all zero or `None` for a result
/// without a load point.
pub fn run_summary(result: &RunResult) -> RunSummary {
    let Some(point) = headline_point(result) else {
        return RunSummary::default();
    };
    let totals = &point.totals;
    let pooled = pooled_latency(point);
    let kernel = point.kernel.as_ref().map(|k| &k.summary);
    // The point's own: a ratio against a figure that counts earlier runs' sockets, or one from
    // before origins were told apart, would compare unlike things.
    let own_peak = kernel.map(time_wait_peak).filter(|peak| peak.own);
    let (viewer_frame_age_p99_us, viewer_fps_p50, viewer_skip_rate) =
        pooled_viewer_figures(point).unwrap_or((None, None, None));
    RunSummary {
        ops_per_s: totals.ops_per_s,
        mbit_per_s: totals.mbit_per_s,
        errors_total: totals.errors_total as f64,
        errors_per_1k_ops: (totals.ops > 0)
            .then(|| totals.errors_total as f64 * 1000.0 / totals.ops as f64),
        p50_us: pooled.map(|l| l.p50_us),
        p99_us: pooled.map(|l| l.p99_us),
        p999_us: pooled.map(|l| l.p999_us),
        max_us: pooled.map(|l| l.max_us),
        server_cpu_us_per_op: kernel.and_then(|k| k.server_cpu_us_per_op),
        server_ctx_switches_per_s: kernel.and_then(|k| k.server_ctx_switches_per_s),
        server_ctx_switches_per_op: kernel.and_then(|k| k.server_ctx_switches_per_op),
        server_memory_per_connection_bytes: kernel
            .and_then(|k| k.server_memory_per_connection_bytes),
        server_peak_rss_bytes: kernel.and_then(|k| k.server_peak_rss_bytes.map(|b| b as f64)),
        loadgen_memory_per_connection_bytes: kernel
            .and_then(|k| k.loadgen_memory_per_connection_bytes),
        peak_time_wait_bytes: own_peak.map(|peak| peak.bytes as f64),
        peak_time_wait_server_side: own_peak.map(|peak| peak.server_side as f64),
        peak_time_wait_client_side: own_peak.map(|peak| peak.client_side as f64),
        peak_tcp_memory_bytes: kernel.map(|k| k.peak_tcp_memory_bytes as f64),
        viewer_frame_age_p99_us,
        viewer_fps_p50,
        viewer_skip_rate,
    }
}

/// Which way is better, for marking ratios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, errors, memory, CPU, context switches).
    Lower,
}

/// What a comparison metric is measured in; the display unit is chosen when drawing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Operations per second.
    OpsPerS,
    /// Megabits per second.
    MbitPerS,
    /// A latency in microseconds.
    LatencyUs,
    /// A plain count, or a count per second or per operation (context switches): the metric's
    /// name says which.
    Count,
    /// Occurrences per 1000 operations.
    PerKiloOps,
    /// CPU microseconds per operation.
    CpuUsPerOp,
    /// Bytes.
    Bytes,
    /// Frames per second (a live viewer's).
    FramesPerS,
    /// A fraction of a whole (0 to 1), shown as a percentage.
    Share,
}

/// One figure compared across runs.
pub struct Metric {
    /// Stable name, for element ids (`metric-ops_per_s`).
    pub id: &'static str,
    /// What a reader calls it.
    pub name: &'static str,
    /// What it is measured in.
    pub quantity: Quantity,
    /// Which way is better.
    pub better: Better,
    /// Drawn in the grouped bar chart (the table shows every metric).
    pub bar: bool,
    /// Its value in a run; `None` where the run lacks it.
    pub value: fn(&RunSummary) -> Option<f64>,
}

/// Every metric of the comparison table, in table order. A new measured quantity is one field of
/// `RunSummary` and one entry here; a metric no run has (kernel figures of results from before
/// kernel accounting) is left out of table and bars alike.
pub const METRICS: &[Metric] = &[
    Metric {
        id: "ops_per_s",
        name: "throughput",
        quantity: Quantity::OpsPerS,
        better: Better::Higher,
        bar: true,
        value: |s| Some(s.ops_per_s),
    },
    Metric {
        id: "mbit_per_s",
        name: "bandwidth",
        quantity: Quantity::MbitPerS,
        better: Better::Higher,
        bar: false,
        value: |s| Some(s.mbit_per_s),
    },
    Metric {
        id: "p50",
        name: "latency p50",
        quantity: Quantity::LatencyUs,
        better: Better::Lower,
        bar: false,
        value: |s| s.p50_us,
    },
    Metric {
        id: "p99",
        name: "latency p99",
        quantity: Quantity::LatencyUs,
        better: Better::Lower,
        bar: true,
        value: |s| s.p99_us,
    },
    Metric {
        id: "p999",
        name: "latency p99.9",
        quantity: Quantity::LatencyUs,
        better: Better::Lower,
        bar: false,
        value: |s| s.p999_us,
    },
    Metric {
        id: "max",
        name: "latency max",
        quantity: Quantity::LatencyUs,
        better: Better::Lower,
        bar: false,
        value: |s| s.max_us,
    },
    Metric {
        id: "server_cpu_us_per_op",
        name: "server CPU per op",
        quantity: Quantity::CpuUsPerOp,
        better: Better::Lower,
        bar: true,
        value: |s| s.server_cpu_us_per_op,
    },
    Metric {
        id: "server_ctx_switches_per_s",
        name: "server context switches/s",
        quantity: Quantity::Count,
        better: Better::Lower,
        bar: false,
        value: |s| s.server_ctx_switches_per_s,
    },
    Metric {
        id: "server_ctx_switches_per_op",
        name: "server context switches per op",
        quantity: Quantity::Count,
        better: Better::Lower,
        bar: false,
        value: |s| s.server_ctx_switches_per_op,
    },
    Metric {
        id: "server_memory_per_connection",
        name: "server memory per connection",
        quantity: Quantity::Bytes,
        better: Better::Lower,
        bar: true,
        value: |s| s.server_memory_per_connection_bytes,
    },
    Metric {
        id: "server_peak_rss",
        name: "server peak RSS",
        quantity: Quantity::Bytes,
        better: Better::Lower,
        bar: false,
        value: |s| s.server_peak_rss_bytes,
    },
    Metric {
        id: "loadgen_memory_per_connection",
        name: "generator memory per connection",
        quantity: Quantity::Bytes,
        better: Better::Lower,
        bar: false,
        value: |s| s.loadgen_memory_per_connection_bytes,
    },
    Metric {
        id: "peak_time_wait_bytes",
        name: "TIME_WAIT memory, peak",
        quantity: Quantity::Bytes,
        better: Better::Lower,
        bar: true,
        value: |s| s.peak_time_wait_bytes,
    },
    Metric {
        id: "peak_time_wait_server_side",
        name: "TIME_WAITs on the server, peak",
        quantity: Quantity::Count,
        better: Better::Lower,
        bar: false,
        value: |s| s.peak_time_wait_server_side,
    },
    Metric {
        id: "peak_time_wait_client_side",
        name: "TIME_WAITs on the clients, peak",
        quantity: Quantity::Count,
        better: Better::Lower,
        bar: false,
        value: |s| s.peak_time_wait_client_side,
    },
    Metric {
        id: "peak_tcp_memory",
        name: "kernel TCP memory, peak",
        quantity: Quantity::Bytes,
        better: Better::Lower,
        bar: false,
        value: |s| s.peak_tcp_memory_bytes,
    },
    Metric {
        id: "frame_age_p99",
        name: "live viewers' frame age p99",
        quantity: Quantity::LatencyUs,
        better: Better::Lower,
        bar: false,
        value: |s| s.viewer_frame_age_p99_us,
    },
    Metric {
        id: "viewer_fps_p50",
        name: "live viewers' fps p50",
        quantity: Quantity::FramesPerS,
        better: Better::Higher,
        bar: false,
        value: |s| s.viewer_fps_p50,
    },
    Metric {
        id: "viewer_skip_rate",
        name: "live viewers' skip rate",
        quantity: Quantity::Share,
        better: Better::Lower,
        bar: false,
        value: |s| s.viewer_skip_rate,
    },
    Metric {
        id: "errors",
        name: "errors",
        quantity: Quantity::Count,
        better: Better::Lower,
        bar: true,
        value: |s| Some(s.errors_total),
    },
    Metric {
        id: "errors_per_1k_ops",
        name: "errors per 1000 ops",
        quantity: Quantity::PerKiloOps,
        better: Better::Lower,
        bar: false,
        value: |s| s.errors_per_1k_ops,
    },
];

/// One row of the comparison: a metric's value in each run and its ratio to the first run's.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// The metric.
    pub metric: &'static Metric,
    /// Its value in each run, in the metric's quantity; `None` where a run lacks it.
    pub values: Vec<Option<f64>>,
    /// Each value over run #1's (`ratio`); `None` where either is missing.
    pub ratios: Vec<Option<f64>>,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

impl PartialEq for Metric {
    fn eq(&self, other: &Metric) -> bool {
        self.id == other.id
    }
}

/// The comparison rows of `summaries` (one per run, the first being the baseline); metrics no
/// run has are left out.
pub fn comparison_rows(summaries: &[RunSummary]) -> Vec<MetricRow> {
    METRICS
        .iter()
        .filter_map(|metric| {
            let values: Vec<Option<f64>> = summaries.iter().map(|s| (metric.value)(s)).collect();
            if values.iter().all(Option::is_none) {
                return None;
            }
            let base = values.first().copied().flatten();
            let ratios = values
                .iter()
                .map(|v| ratio((*v)?, base?))
                .collect::<Vec<_>>();
            Some(MetricRow {
                metric,
                values,
                ratios,
            })
        })
        .collect()
}

/// One overlay of the comparison page: the spectrum of one population (by name) in each run that
/// has it, at the run's headline point.
pub fn spectra_by_run(results: &[RunResult], labels: &[String]) -> Vec<(String, Vec<Series>)> {
    let mut names: Vec<&str> = Vec::new();
    for result in results {
        for population in headline_point(result).iter().flat_map(|p| &p.populations) {
            if !names.contains(&population.name.as_str()) {
                names.push(&population.name);
            }
        }
    }
    names
        .iter()
        .filter_map(|name| {
            let series: Vec<Series> = results
                .iter()
                .zip(labels)
                .enumerate()
                .filter_map(|(n, (result, label))| {
                    let population = headline_point(result)?
                        .populations
                        .iter()
                        .find(|p| p.name == *name)?;
                    let points = spectrum_of(&population.latency.total_us)?;
                    Some(Series::new(label, points, Hue::Index(n)))
                })
                .collect();
            (!series.is_empty()).then(|| (name.to_string(), series))
        })
        .collect()
}

/// Total ops/s over time of each run's headline point, one series per run.
pub fn throughput_by_run(results: &[RunResult], labels: &[String]) -> Vec<Series> {
    results
        .iter()
        .zip(labels)
        .enumerate()
        .filter_map(|(n, (result, label))| {
            let point = headline_point(result)?;
            let dt = point.timeline.interval_s;
            let intervals = point
                .timeline
                .populations
                .iter()
                .map(|p| p.ops.len())
                .max()?;
            if intervals == 0 || dt <= 0.0 {
                return None;
            }
            let points = (0..intervals)
                .map(|i| {
                    let ops: u64 = point
                        .timeline
                        .populations
                        .iter()
                        .map(|p| p.ops.get(i).copied().unwrap_or(0))
                        .sum();
                    ((i + 1) as f64 * dt, ops as f64 / dt)
                })
                .collect();
            Some(Series::new(label, points, Hue::Index(n)).for_drawing())
        })
        .collect()
}

/// Sweep curves of several runs overlaid (one series per run with several load points): total
/// ops/s against offered load, and p99 of all populations against ops/s.
pub fn sweeps_by_run(results: &[RunResult], labels: &[String]) -> Option<SweepView> {
    let mut axis = None;
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for (n, (result, label)) in results.iter().zip(labels).enumerate() {
        if result.load_points.len() < 2 {
            continue;
        }
        let (name, xs) = offered_axis(result);
        // Runs whose offered loads are counted differently share the percentage axis.
        let xs = match &axis {
            Some(a) if *a != name => {
                axis = Some("offered load (% of full load)".to_string());
                result
                    .load_points
                    .iter()
                    .map(|p| p.load_fraction * 100.0)
                    .collect()
            }
            _ => {
                axis.get_or_insert(name);
                xs
            }
        };
        throughput.push(Series::new(
            label,
            xs.iter()
                .zip(&result.load_points)
                .map(|(&x, p)| (x, p.totals.ops_per_s))
                .collect(),
            Hue::Index(n),
        ));
        let pts: Vec<(f64, f64)> = result
            .load_points
            .iter()
            .filter_map(|p| Some((p.totals.ops_per_s, pooled_latency(p)?.p99_us)))
            .collect();
        if !pts.is_empty() {
            latency.push(Series::new(format!("{label} p99"), pts, Hue::Index(n)).thick());
        }
    }
    Some(SweepView {
        offered_axis: axis?,
        throughput,
        latency,
    })
}

// ---- slow lines, Little's law, populations across points ------------------------------------

/// The value at `quantile` of a stored histogram, decoded; `None` when it is empty or does not
/// decode (a result whose histogram text was lost keeps its stored percentiles only).
pub fn quantile_of(data: &HistogramData, quantile: f64) -> Option<u64> {
    if data.count == 0 {
        return None;
    }
    let histogram = data.decode().ok()?;
    Some(histogram.value_at_quantile(quantile))
}

/// The low end of the bytes per second the replies achieved: the 10th percentile when the stored
/// histogram decodes, else the stored minimum (which the report then names as such).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LowEnd {
    /// The 10th percentile, bytes per second.
    P10(f64),
    /// The smallest value, bytes per second.
    Min(f64),
}

/// One slow-line population's figures, as the report shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowLineRow {
    /// The population's name.
    pub population: String,
    /// Its users (the population's `offered`).
    pub clients: f64,
    /// (bit/s, share of clients), as configured.
    pub downstream_bps: Vec<(f64, f64)>,
    /// Upstream line rate, bit/s.
    pub upstream_bps: f64,
    /// Payload bytes per second the downstream lines carry, averaged over the users.
    pub payload_bytes_per_s: f64,
    /// Round-trip time as configured, milliseconds.
    pub rtt_ms: f64,
    /// `netem` or `application`: who produced the round trip.
    pub rtt_mode: String,
    /// Why the round trip is not the kernel's, when it is not.
    pub rtt_mode_reason: Option<String>,
    /// Receive window each user advertises, bytes.
    pub receive_window_bytes: u32,
    /// MSS the users announce, bytes.
    pub mss_bytes: u32,
    /// Median payload bytes per second of a reply; `None` when no reply was measured.
    pub achieved_p50_bytes_per_s: Option<f64>,
    /// The low end of the same; `None` when no reply was measured.
    pub achieved_low_bytes_per_s: Option<LowEnd>,
    /// Median reply time over line time (1.0 = the line set the pace).
    pub slowdown_p50: Option<f64>,
    /// 99th percentile of the same.
    pub slowdown_p99: Option<f64>,
    /// Page views begun in the measured window.
    pub pages_started: u64,
    /// Page views completed in the measured window.
    pub pages_completed: u64,
    /// Connections the users closed after lingering idle.
    pub lingering_closes: u64,
    /// Requests sent again on a new connection because the server had closed the reused one.
    pub retries_on_new_connection: u64,
}

/// The slow-line figures of every population of `point` that has them, in population order.
/// Live viewers on modem lines are left out: they fetch no replies or pages, and the
/// live-viewer section gives their lines' figures (`viewer_rows`).
pub fn slow_line_rows(point: &LoadPoint) -> Vec<SlowLineRow> {
    point
        .populations
        .iter()
        .filter(|p| p.viewer.is_none())
        .filter_map(|p| {
            let line = p.line.as_ref()?;
            let achieved = &line.achieved_bytes_per_s;
            let slowdown = &line.slowdown_milli;
            let measured = |h: &HistogramData| h.count > 0;
            Some(SlowLineRow {
                population: p.name.clone(),
                clients: p.offered,
                downstream_bps: line
                    .downstream_bps
                    .iter()
                    .map(|r| (r.bps, r.share))
                    .collect(),
                upstream_bps: line.upstream_bps,
                payload_bytes_per_s: line.payload_bytes_per_s,
                rtt_ms: line.rtt_ms,
                rtt_mode: line.rtt_mode.clone(),
                rtt_mode_reason: line.rtt_mode_reason.clone(),
                receive_window_bytes: line.receive_window_bytes,
                mss_bytes: line.mss_bytes,
                achieved_p50_bytes_per_s: measured(achieved).then_some(achieved.p50 as f64),
                achieved_low_bytes_per_s: measured(achieved).then(|| {
                    quantile_of(achieved, 0.10)
                        .map_or(LowEnd::Min(achieved.min as f64), |v| LowEnd::P10(v as f64))
                }),
                slowdown_p50: measured(slowdown).then_some(slowdown.p50 as f64 / 1000.0),
                slowdown_p99: measured(slowdown).then_some(slowdown.p99 as f64 / 1000.0),
                pages_started: line.pages_started,
                pages_completed: line.pages_completed,
                lingering_closes: line.lingering_closes,
                retries_on_new_connection: line.retries_on_new_connection,
            })
        })
        .collect()
}

// ---- live viewers ----------------------------------------------------------------------------

/// The share of frames a group of viewers never got: skipped / (received + skipped); `None`
/// when there was neither.
pub fn skip_rate(frames: u64, skipped: u64) -> Option<f64> {
    let all = frames + skipped;
    (all > 0).then(|| skipped as f64 / all as f64)
}

/// The value at `quantile` of a stored histogram divided by `scale` (thousandths to units);
/// `None` when nothing was recorded. Read from the stored figures when the quantile is one
/// of them, so a result whose histogram text was lost still shows its median and p99.
fn stored_quantile(h: &HistogramData, quantile: f64, scale: f64) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let v = if quantile == 0.5 {
        h.p50
    } else if quantile == 0.99 {
        h.p99
    } else {
        quantile_of(h, quantile)?
    };
    Some(v as f64 / scale)
}

/// The viewers of one population on one downstream line rate, as the report shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewerRateRow {
    /// The line rate in bit/s; 0 for LAN viewers.
    pub bps: f64,
    /// Viewers on it that watched in the measured window.
    pub viewers: u64,
    /// What the line can carry, frames per second (min of the source's fps and the line's
    /// payload rate over a frame's wire bytes).
    pub line_bound_fps: f64,
    /// Median of the viewers' frames per second.
    pub fps_p50: Option<f64>,
    /// Median of the viewers' fps over `line_bound_fps` (1.0 = the line set the pace).
    pub efficiency_p50: Option<f64>,
    /// Median and 99th percentile frame age at receipt, microseconds.
    pub frame_age_p50_us: Option<f64>,
    /// 99th percentile frame age at receipt, microseconds.
    pub frame_age_p99_us: Option<f64>,
    /// Median of the viewers' time-averaged age of information, microseconds.
    pub age_of_information_p50_us: Option<f64>,
    /// Frames received in the measured window.
    pub frames: u64,
    /// Frames skipped (sequence gaps) in the measured window.
    pub frames_skipped: u64,
    /// `skip_rate(frames, frames_skipped)`.
    pub skip_rate: Option<f64>,
    /// Freezes (W3C webrtc-stats rule) in the measured window.
    pub freezes: u64,
}

/// The CBR playout model's figures of one population, as the report shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayoutRow {
    /// Media seconds buffered before playback starts.
    pub start_s: f64,
    /// Media seconds buffered before playback resumes after a stall.
    pub resume_s: f64,
    /// Median time from joining to the start of playback, microseconds.
    pub initial_buffering_p50_us: Option<f64>,
    /// 99th percentile of the same, microseconds.
    pub initial_buffering_p99_us: Option<f64>,
    /// Viewers whose playback never started.
    pub never_started: u64,
    /// Stalls in the measured window.
    pub stalls: u64,
    /// 99th percentile of the viewers' stall time over (play + stall time), a fraction.
    pub stall_ratio_p99: Option<f64>,
}

/// One viewer population's figures (kind `viewer`), as the report shows them: all its viewers,
/// then one row per line rate.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewerRow {
    /// The population's name.
    pub population: String,
    /// The stream's path.
    pub stream: String,
    /// `mjpeg` or `cbr`.
    pub format: String,
    /// `lan` or `modem`.
    pub line: String,
    /// Frames per second the server announced; 0 if unknown.
    pub source_fps: f64,
    /// Body bytes per frame (MJPEG) or media bytes per second (CBR).
    pub frame_bytes: u64,
    /// The population's `offered`: viewers (or joins/s x mean watch time).
    pub viewers: f64,
    /// Viewers that joined, left by themselves, and were disconnected by the server, in the
    /// measured window.
    pub joins: u64,
    /// Viewers that left when their watch time ended.
    pub leaves: u64,
    /// Viewers the server disconnected (a policy's kick, not an error).
    pub kicks: u64,
    /// Frames received in the measured window.
    pub frames: u64,
    /// Frames skipped (sequence gaps) in the measured window.
    pub frames_skipped: u64,
    /// `skip_rate(frames, frames_skipped)`.
    pub skip_rate: Option<f64>,
    /// Median of the viewers' frames per second.
    pub fps_p50: Option<f64>,
    /// Median of the viewers' efficiency (fps over line-bound fps).
    pub efficiency_p50: Option<f64>,
    /// Median frame age at receipt, microseconds.
    pub frame_age_p50_us: Option<f64>,
    /// 99th percentile frame age at receipt, microseconds.
    pub frame_age_p99_us: Option<f64>,
    /// Median time-averaged age of information, microseconds.
    pub age_of_information_p50_us: Option<f64>,
    /// Freezes in the measured window.
    pub freezes: u64,
    /// Freezes per viewer-minute watched; `None` when nobody watched.
    pub freezes_per_viewer_minute: Option<f64>,
    /// Median startup delay (connect to the first complete frame), microseconds.
    pub startup_p50_us: Option<f64>,
    /// 99th percentile startup delay, microseconds.
    pub startup_p99_us: Option<f64>,
    /// CBR only: the playout model.
    pub playout: Option<PlayoutRow>,
    /// One row per downstream line rate, slowest first.
    pub by_line_rate: Vec<ViewerRateRow>,
}

/// The viewer figures of every population of `point` that has them, in population order.
pub fn viewer_rows(point: &LoadPoint) -> Vec<ViewerRow> {
    point
        .populations
        .iter()
        .filter_map(|p| {
            let v = p.viewer.as_ref()?;
            let mut by_line_rate: Vec<ViewerRateRow> = v
                .by_line_rate
                .iter()
                .map(|r| ViewerRateRow {
                    bps: r.bps,
                    viewers: r.viewers,
                    line_bound_fps: r.line_bound_fps,
                    fps_p50: stored_quantile(&r.fps_milli, 0.5, 1000.0),
                    efficiency_p50: stored_quantile(&r.efficiency_milli, 0.5, 1000.0),
                    frame_age_p50_us: stored_quantile(&r.frame_age_us, 0.5, 1.0),
                    frame_age_p99_us: stored_quantile(&r.frame_age_us, 0.99, 1.0),
                    age_of_information_p50_us: stored_quantile(&r.age_of_information_us, 0.5, 1.0),
                    frames: r.frames,
                    frames_skipped: r.frames_skipped,
                    skip_rate: skip_rate(r.frames, r.frames_skipped),
                    freezes: r.freezes,
                })
                .collect();
            by_line_rate.sort_by(|a, b| a.bps.total_cmp(&b.bps));
            let viewer_minutes = v.viewer_seconds / 60.0;
            Some(ViewerRow {
                population: p.name.clone(),
                stream: v.stream.clone(),
                format: v.format.clone(),
                line: v.line.clone(),
                source_fps: v.source_fps,
                frame_bytes: v.frame_bytes,
                viewers: p.offered,
                joins: v.joins,
                leaves: v.leaves,
                kicks: v.kicks,
                frames: v.frames,
                frames_skipped: v.frames_skipped,
                skip_rate: skip_rate(v.frames, v.frames_skipped),
                fps_p50: stored_quantile(&v.fps_milli, 0.5, 1000.0),
                efficiency_p50: stored_quantile(&v.efficiency_milli, 0.5, 1000.0),
                frame_age_p50_us: stored_quantile(&v.frame_age_us, 0.5, 1.0),
                frame_age_p99_us: stored_quantile(&v.frame_age_us, 0.99, 1.0),
                age_of_information_p50_us: stored_quantile(&v.age_of_information_us, 0.5, 1.0),
                freezes: v.freezes,
                freezes_per_viewer_minute: (viewer_minutes > 0.0)
                    .then(|| v.freezes as f64 / viewer_minutes),
                startup_p50_us: stored_quantile(&v.startup_us, 0.5, 1.0),
                startup_p99_us: stored_quantile(&v.startup_us, 0.99, 1.0),
                playout: v.playout.as_ref().map(|o| PlayoutRow {
                    start_s: o.start_s,
                    resume_s: o.resume_s,
                    initial_buffering_p50_us: stored_quantile(&o.initial_buffering_us, 0.5, 1.0),
                    initial_buffering_p99_us: stored_quantile(&o.initial_buffering_us, 0.99, 1.0),
                    never_started: o.never_started,
                    stalls: o.stalls,
                    stall_ratio_p99: stored_quantile(&o.stall_ratio_milli, 0.99, 1000.0),
                }),
                by_line_rate,
            })
        })
        .collect()
}

/// Buckets of the server's log2 histograms (`dispatch_delay_log2_us`, `spread_log2_us`):
/// bucket i counts values in [2^i, 2^(i+1)) microseconds, bucket 0 also those below 1.
pub const LOG2_BUCKETS: usize = 24;

/// The upper bound, in microseconds, of the log2 bucket that holds the `quantile` of `buckets`
/// (bucket i covers [2^i, 2^(i+1)) µs, so the bound is 2^(i+1)): the true quantile is below
/// it and at least half of it. `None` when every bucket is empty.
pub fn log2_quantile_upper_us(buckets: &[u64], quantile: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile, as HdrHistogram counts it: at least one value.
    let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, &n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(1u64 << (i + 1).min(63));
        }
    }
    None
}

/// What the server's `--stats` said about its live source over one load point (the `live`
/// object: counters are the point's own, gauges the value at the point's end), and what the
/// stream cost it.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveServerRow {
    /// The slow-viewer policy (`latest`, `queue:8`, `queue:65536:disconnect`, `fifo`).
    pub policy: String,
    /// `mjpeg` or `cbr`.
    pub format: String,
    /// Frames per second published.
    pub fps: Option<f64>,
    /// Body bytes per frame.
    pub frame_bytes: Option<u64>,
    /// The `TCP_NOTSENT_LOWAT` mark in bytes; `None` when off (the kernel's default, no mark).
    pub lowat_bytes: Option<u64>,
    /// Frames the source published.
    pub frames_published: u64,
    /// Publications that had to build more than one due frame at once (the loop was late).
    pub source_late: u64,
    /// Viewers that joined.
    pub viewers_joined: u64,
    /// Frames sent (begun), over all viewers.
    pub frames_sent: u64,
    /// Bytes the viewers were sent.
    pub bytes_sent: u64,
    /// Frames a `latest` viewer skipped for the newest one.
    pub frames_skipped: u64,
    /// Frames a `queue:N` viewer lost off its bounded queue.
    pub frames_dropped: u64,
    /// Viewers disconnected by the policy.
    pub kicks: u64,
    /// Of those, `fifo` viewers that fell off the hard cap.
    pub fifo_cap_kicks: u64,
    /// The 99th percentile of the delay from a frame's publication to a waiting viewer's first
    /// byte of it: the upper bound of its log2 bucket, microseconds.
    pub dispatch_delay_p99_upper_us: Option<u64>,
    /// The 99th percentile of the per-frame spread (publication to the last waiting viewer's
    /// first byte): the upper bound of its log2 bucket, microseconds.
    pub spread_p99_upper_us: Option<u64>,
    /// Viewers connected at the point's end.
    pub viewers_now: Option<u64>,
    /// Bytes the viewers lag behind the newest frame, summed, at the point's end.
    pub queue_bytes_now: Option<u64>,
    /// Unsent bytes in the viewers' kernel send queues (`SIOCOUTQNSD`), summed, at the end.
    pub unsent_bytes_now: Option<u64>,
    /// Sent but unacknowledged bytes (`SIOCOUTQ`), summed, at the end.
    pub unacked_bytes_now: Option<u64>,
    /// Most distinct frames alive at once in the server.
    pub frames_alive_peak: Option<u64>,
    /// `unsent_bytes_now / viewers_now`: the kernel's hidden queue per viewer, bytes.
    pub unsent_bytes_per_viewer: Option<f64>,
    /// The server's user-space memory per connection from the kernel accounting ((peak RSS -
    /// RSS before the load) / peak open connections; viewers and web clients alike), bytes.
    pub server_memory_per_connection_bytes: Option<f64>,
    /// Server CPU seconds over the measured window per MB (10^6 bytes) the viewers received:
    /// all of the server's CPU, the web clients' share included (the `no-stream` variant
    /// gives the web clients' own).
    pub cpu_s_per_delivered_mb: Option<f64>,
}

/// The server's CPU seconds over `point`'s measured window, from the kernel samples that
/// bracket it (the last at or before its start, the first at or after its end), scaled to the
/// window's length; `None` without two such samples with the server's CPU.
pub fn server_cpu_s_in_window(point: &LoadPoint) -> Option<f64> {
    let kernel = point.kernel.as_ref()?;
    let start_ms =
        (point.timeline.measured_from_index as f64 * point.timeline.interval_s.max(0.0) * 1000.0)
            .round() as u64;
    let end_ms = start_ms + (point.measured_s * 1000.0).round() as u64;
    let with_cpu = || {
        kernel
            .samples
            .iter()
            .filter_map(|s| Some((s.elapsed_ms, s.server_cpu_us?)))
    };
    let before = with_cpu().rfind(|(t, _)| *t <= start_ms)?;
    let after = with_cpu().find(|(t, _)| *t >= end_ms)?;
    if after.0 <= before.0 {
        return None;
    }
    let cpu_s = after.1.saturating_sub(before.1) as f64 / 1e6;
    Some(cpu_s * point.measured_s * 1000.0 / (after.0 - before.0) as f64)
}

/// The `live` object of `point`'s server counters, with what it cost; `None` when the server
/// had no live source (or its counters were not read).
pub fn live_server_row(point: &LoadPoint) -> Option<LiveServerRow> {
    let live = point.server_stats.as_ref()?.get("live")?.as_object()?;
    let number = |key: &str| live.get(key).and_then(serde_json::Value::as_u64);
    let text = |key: &str| {
        live.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let buckets = |key: &str| -> Vec<u64> {
        live.get(key)
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default()
    };
    let viewers_now = number("viewers_now");
    let unsent_bytes_now = number("unsent_bytes_now");
    let viewer_bytes: u64 = point
        .populations
        .iter()
        .filter_map(|p| p.viewer.as_ref().map(|v| v.bytes))
        .sum();
    let kernel = point.kernel.as_ref().map(|k| &k.summary);
    Some(LiveServerRow {
        policy: text("policy"),
        format: text("format"),
        fps: live.get("fps").and_then(serde_json::Value::as_f64),
        frame_bytes: number("frame_bytes"),
        lowat_bytes: number("lowat_bytes"),
        frames_published: number("frames_published").unwrap_or(0),
        source_late: number("source_late").unwrap_or(0),
        viewers_joined: number("viewers_joined").unwrap_or(0),
        frames_sent: number("frames_sent").unwrap_or(0),
        bytes_sent: number("bytes_sent").unwrap_or(0),
        frames_skipped: number("frames_skipped").unwrap_or(0),
        frames_dropped: number("frames_dropped").unwrap_or(0),
        kicks: number("kicks").unwrap_or(0),
        fifo_cap_kicks: number("fifo_cap_kicks").unwrap_or(0),
        dispatch_delay_p99_upper_us: log2_quantile_upper_us(
            &buckets("dispatch_delay_log2_us"),
            0.99,
        ),
        spread_p99_upper_us: log2_quantile_upper_us(&buckets("spread_log2_us"), 0.99),
        viewers_now,
        queue_bytes_now: number("queue_bytes_now"),
        unsent_bytes_now,
        unacked_bytes_now: number("unacked_bytes_now"),
        frames_alive_peak: number("frames_alive_peak"),
        unsent_bytes_per_viewer: match (unsent_bytes_now, viewers_now) {
            (Some(unsent), Some(viewers)) if viewers > 0 => Some(unsent as f64 / viewers as f64),
            _ => None,
        },
        server_memory_per_connection_bytes: kernel
            .and_then(|k| k.server_memory_per_connection_bytes),
        cpu_s_per_delivered_mb: server_cpu_s_in_window(point)
            .filter(|_| viewer_bytes > 0)
            .map(|cpu_s| cpu_s / (viewer_bytes as f64 / 1e6)),
    })
}

/// A population beside the viewers that asked for pages (any kind but `viewer`): its
/// response time, to read what the stream did to it.
#[derive(Clone, Debug, PartialEq)]
pub struct WebClientRow {
    /// The population's name.
    pub population: String,
    /// Its kind (`closed`, `open`, `modem`).
    pub kind: String,
    /// Completed requests per second.
    pub ops_per_s: f64,
    /// Its 99th percentile response time, microseconds; `None` when nothing completed.
    pub p99_us: Option<f64>,
}

/// Everything the live-viewer section of one load point shows.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveView {
    /// One per viewer population.
    pub viewers: Vec<ViewerRow>,
    /// The server's side, when its `--stats` had a `live` object.
    pub server: Option<LiveServerRow>,
    /// The other populations of the same point, with their p99.
    pub web_clients: Vec<WebClientRow>,
}

/// The live-viewer section of `point`; `None` also for a point whose server published a stream
/// nobody watched (a `no-stream` variant: the web clients' baseline, nothing to say about
/// viewers).
pub fn live_view(point: &LoadPoint) -> Option<LiveView> {
    let viewers = viewer_rows(point);
    let server = live_server_row(point);
    if viewers.is_empty() && server.as_ref().is_none_or(|s| s.viewers_joined == 0) {
        return None;
    }
    let web_clients = point
        .populations
        .iter()
        .filter(|p| p.viewer.is_none() && p.kind != "viewer")
        .map(|p| {
            let l = &p.latency.total_us;
            WebClientRow {
                population: p.name.clone(),
                kind: p.kind.clone(),
                ops_per_s: p.totals.ops_per_s,
                p99_us: (l.count > 0).then_some(l.p99 as f64),
            }
        })
        .collect();
    Some(LiveView {
        viewers,
        server,
        web_clients,
    })
}

/// The viewers of every viewer population of `point` pooled, for the comparison metrics:
/// frame age p99 (µs), fps p50, skip rate; `None` without viewer figures (or when a
/// histogram does not decode: a pool without it would pass for all of them).
fn pooled_viewer_figures(point: &LoadPoint) -> Option<(Option<f64>, Option<f64>, Option<f64>)> {
    let viewers: Vec<_> = point
        .populations
        .iter()
        .filter_map(|p| p.viewer.as_ref())
        .collect();
    if viewers.is_empty() {
        return None;
    }
    let pooled = |of: fn(&crate::model::ViewerFigures) -> &HistogramData| {
        let mut sum = Histogram::<u64>::new(3).ok()?;
        for v in &viewers {
            let data = of(v);
            if data.count > 0 {
                sum.add(&data.decode().ok()?).ok()?;
            }
        }
        (!sum.is_empty()).then_some(sum)
    };
    let frame_age_p99 = pooled(|v| &v.frame_age_us).map(|h| h.value_at_quantile(0.99) as f64);
    let fps_p50 = pooled(|v| &v.fps_milli).map(|h| h.value_at_quantile(0.5) as f64 / 1000.0);
    let frames = viewers.iter().map(|v| v.frames).sum();
    let skipped = viewers.iter().map(|v| v.frames_skipped).sum();
    Some((frame_age_p99, fps_p50, skip_rate(frames, skipped)))
}

/// Little's law on one population: what was measured, what rate x time predicts, their ratio.
#[derive(Clone, Debug, PartialEq)]
pub struct LittleRow {
    /// The population's name.
    pub population: String,
    /// Its kind (`closed`, `open`, `modem`).
    pub kind: String,
    /// Time average of the connections open.
    pub mean_open_connections: f64,
    /// Connections opened per second x their mean lifetime.
    pub predicted_open_connections: f64,
    /// measured / predicted; `None` when the prediction is zero and the measurement is not.
    pub connections_ratio: Option<f64>,
    /// Connections opened per second.
    pub connections_per_s: f64,
    /// Mean lifetime of the connections that closed in the window, seconds.
    pub mean_connection_lifetime_s: f64,
    /// Most connections outlived the window (fewer closed in it than were open on average):
    /// their lifetimes are unknown, so there is no prediction to check (`connections_ratio` is
    /// `None`).
    pub connections_outlive_window: bool,
    /// Time average of the requests outstanding.
    pub mean_requests_in_flight: f64,
    /// Completed requests per second x their mean latency.
    pub predicted_requests_in_flight: f64,
    /// measured / predicted for the requests in flight.
    pub requests_ratio: Option<f64>,
}

/// Little's law of every population of `point` that has the figures.
pub fn little_rows(point: &LoadPoint) -> Vec<LittleRow> {
    point
        .populations
        .iter()
        .filter_map(|p| {
            let c = p.concurrency.as_ref()?;
            // Fewer closes in the window than connections open on average (none at all on
            // kept-alive connections): their lifetimes are unknown, nothing predicts the level.
            // Results from before closes were counted have a prediction and no count: they
            // keep their ratio.
            let old_result = c.connections_closed == 0 && c.predicted_open_connections > 0.0;
            let outlive = !old_result && (c.connections_closed as f64) < c.mean_open_connections;
            Some(LittleRow {
                population: p.name.clone(),
                kind: p.kind.clone(),
                mean_open_connections: c.mean_open_connections,
                predicted_open_connections: c.predicted_open_connections,
                connections_ratio: if outlive {
                    None
                } else {
                    ratio(c.mean_open_connections, c.predicted_open_connections)
                },
                connections_outlive_window: outlive,
                connections_per_s: c.connections_per_s,
                mean_connection_lifetime_s: c.mean_connection_lifetime_s,
                mean_requests_in_flight: c.mean_requests_in_flight,
                predicted_requests_in_flight: c.predicted_requests_in_flight,
                requests_ratio: ratio(c.mean_requests_in_flight, c.predicted_requests_in_flight),
            })
        })
        .collect()
}

/// One population at one load point (or one run's headline point), for the side-by-side table.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationCell {
    /// Completed operations per second.
    pub ops_per_s: f64,
    /// Response data, Mbit/s.
    pub mbit_per_s: f64,
    /// Median response time (µs); `None` when no request completed.
    pub p50_us: Option<f64>,
    /// 99th percentile response time (µs); `None` when no request completed.
    pub p99_us: Option<f64>,
    /// 99.9th percentile response time (µs); `None` when no request completed.
    pub p999_us: Option<f64>,
    /// Errors of all kinds.
    pub errors_total: u64,
    /// Most of its connections open at once.
    pub peak_open_connections: u64,
}

/// One population across the points: `None` where the point did not run it.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationAcross {
    /// The population's name.
    pub population: String,
    /// One per point, in the points' order.
    pub cells: Vec<Option<PopulationCell>>,
}

/// Each population (by name, in order of first appearance) across `points`, so a reader sees
/// how one group of clients fared when another joined (variants `lan-alone` and `lan+modem`) or
/// as the load grew. Empty unless some population ran in at least two of the points: with
/// nothing to set side by side, the per-point tables already say it all.
pub fn populations_across(points: &[&LoadPoint]) -> Vec<PopulationAcross> {
    let mut names: Vec<&str> = Vec::new();
    for point in points {
        for population in &point.populations {
            if !names.contains(&population.name.as_str()) {
                names.push(&population.name);
            }
        }
    }
    let rows: Vec<PopulationAcross> = names
        .iter()
        .map(|name| PopulationAcross {
            population: name.to_string(),
            cells: points
                .iter()
                .map(|point| {
                    let p = point.populations.iter().find(|p| p.name == *name)?;
                    let l = &p.latency.total_us;
                    let at = |v: u64| (l.count > 0).then_some(v as f64);
                    Some(PopulationCell {
                        ops_per_s: p.totals.ops_per_s,
                        mbit_per_s: p.totals.mbit_per_s,
                        p50_us: at(l.p50),
                        p99_us: at(l.p99),
                        p999_us: at(l.p999),
                        errors_total: p.totals.errors_total,
                        peak_open_connections: p.peak_open_connections,
                    })
                })
                .collect(),
        })
        .collect();
    let shared = rows
        .iter()
        .any(|r| r.cells.iter().filter(|c| c.is_some()).count() >= 2);
    if shared {
        rows
    } else {
        Vec::new()
    }
}

/// When one population's peak is more than this many times another's (10 000 modem users beside
/// 50 LAN clients), they go on separate panels: on one linear axis the small one would be a line
/// under 5 % of the height, and a log axis has no place for the zero of an idle start.
pub const SEPARATE_PANEL_RATIO: f64 = 20.0;

/// `series` in groups that share a y axis: from the largest peak down, a new group starts where a
/// series' peak is more than `SEPARATE_PANEL_RATIO` times below the group's largest. Series
/// keep their hue and, within a group, their order. One group when the peaks are close.
pub fn panels_by_magnitude(series: &[Series]) -> Vec<Vec<Series>> {
    let peak = |s: &Series| s.points.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut by_peak: Vec<(usize, f64)> = series.iter().map(peak).enumerate().collect();
    by_peak.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut panels: Vec<(f64, Vec<usize>)> = Vec::new();
    for (index, value) in by_peak {
        match panels.last_mut() {
            // A population that stayed at zero is drawn with the smallest ones.
            Some((top, members)) if value <= 0.0 || *top <= value * SEPARATE_PANEL_RATIO => {
                members.push(index)
            }
            _ => panels.push((value, vec![index])),
        }
    }
    panels
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members.into_iter().map(|i| series[i].clone()).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_left_alone() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(downsample_min_max(&points, 600), (points.clone(), false));
    }

    #[test]
    fn context_switches_are_compared_lower_being_better() {
        let run = |per_s: Option<f64>, per_op: Option<f64>| RunResult {
            load_points: vec![LoadPoint {
                kernel: Some(crate::model::KernelAccounting {
                    summary: KernelSummary {
                        server_ctx_switches_per_s: per_s,
                        server_ctx_switches_per_op: per_op,
                        ..KernelSummary::default()
                    },
                    ..Default::default()
                }),
                ..LoadPoint::default()
            }],
            ..RunResult::default()
        };
        // An event loop, a thread per connection, and a server given by URL (no process).
        let summaries: Vec<RunSummary> = [
            run(Some(800.0), Some(0.1)),
            run(Some(16_000.0), Some(2.0)),
            run(None, None),
        ]
        .iter()
        .map(run_summary)
        .collect();
        assert_eq!(summaries[1].server_ctx_switches_per_s, Some(16_000.0));
        assert_eq!(summaries[1].server_ctx_switches_per_op, Some(2.0));
        let rows = comparison_rows(&summaries);
        let row = |id: &str| rows.iter().find(|r| r.metric.id == id).unwrap();
        let per_s = row("server_ctx_switches_per_s");
        assert_eq!(per_s.metric.better, Better::Lower);
        assert_eq!(per_s.values, [Some(800.0), Some(16_000.0), None]);
        assert_eq!(per_s.ratios, [Some(1.0), Some(20.0), None]);
        assert_eq!(row("server_ctx_switches_per_op").ratios[1], Some(20.0));
        // Results from before the figure: no row.
        let older = [RunSummary::default(), RunSummary::default()];
        assert!(comparison_rows(&older)
            .iter()
            .all(|r| !r.metric.id.starts_with("server_ctx_switches")));
    }

    #[test]
    fn equal_min_and_max_give_one_point_per_bucket() {
        let points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, 5.0)).collect();
        let (out, downsampled) = downsample_min_max(&points, 100);
        assert!(downsampled);
        assert!(out.len() <= 100);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
