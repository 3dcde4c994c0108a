//! Turns the sampler's raw samples into the result's kernel accounting: per-sample figures on
//! the load's time axis and the derived figures the 1999 argument was about (TIME_WAIT per side
//! and its bytes, socket memory, server CPU per operation and memory per connection, the
//! server's context switches per second and per operation), plus the checks that tell whether
//! the run can be trusted. Pure: samples in, figures out.
//!
//! The generator's own memory (`loadgen_*_rss_bytes`) comes from the raw samples: the result's
//! per-sample figures do not carry it, only the summary does.
//!
//! TIME_WAIT by origin: every sample counts, per side, the TIME_WAITs begun since the point's
//! start and since its window's end (`time_wait_origin`). From those the summary says what the
//! point inherited (present at the window's start, begun before the point), what it made itself
//! (its own, at their peak and integrated within the window: nothing begun after the window is
//! in them) and what its teardown left (begun after the window). The totals of every origin
//! stay beside them.

use reports::model::{KernelAccounting, KernelSample, KernelSummary};

use crate::probe::sampler::{Sample, SamplerReport, TimeWaitSample};
use crate::probe::slab::SlabSizes;

/// What the accounting needs to know about the load point the samples cover.
pub struct PointWindow {
    /// Start of the measured window on the samples' axis (ms since the start of the warm-up).
    pub measure_from_ms: u64,
    /// Its end, on the same axis.
    pub measure_to_ms: u64,
    /// Operations completed in the measured window.
    pub ops: u64,
    /// Peak open connections, all populations.
    pub peak_open_connections: u64,
    /// CPUs the generator may use.
    pub generator_cpus: usize,
    /// Time between samples, as the sampler was configured.
    pub sample_interval_ms: u64,
}

/// The kernel accounting of one load point: each sample on the load's time axis, and the
/// summary over the measured window, with the probes' errors.
pub fn kernel_accounting(
    report: &SamplerReport,
    slab: &SlabSizes,
    window: &PointWindow,
) -> KernelAccounting {
    let samples: Vec<KernelSample> = report.samples.iter().map(kernel_sample).collect();
    KernelAccounting {
        sample_interval_ms: window.sample_interval_ms,
        time_wait_object_bytes: slab.tw_sock_tcp_bytes,
        time_wait_bytes_estimated: slab.estimated,
        summary: summarize(&samples, &report.samples, window, slab.tw_sock_tcp_bytes),
        samples,
        probe_errors: report.errors.clone(),
    }
}

fn kernel_sample(sample: &Sample) -> KernelSample {
    let sockstat = sample.sockstat.unwrap_or_default();
    let tcp_ext = sample.tcp_ext.unwrap_or_default();
    let time_wait = sample.time_wait.unwrap_or_default();
    // The attributed counts exist only where a fresh dump does: no dump is unknown, not zero,
    // and a dump skipped for the CPU budget repeats an older one's counts, whose split by age
    // was true then, not now (its teardown count would still be 0 after the window's end).
    let fresh = sample.time_wait.filter(|t| t.age_ms == 0);
    let attributed = |f: fn(&TimeWaitSample) -> u64| fresh.as_ref().map(f);
    let server = sample.server.as_ref();
    KernelSample {
        elapsed_ms: sample.elapsed_ms,
        tcp_in_use: sockstat.tcp_inuse,
        tcp_orphans: sockstat.tcp_orphan,
        tcp_time_wait: sockstat.tcp_tw,
        tcp_allocated: sockstat.tcp_alloc,
        tcp_memory_bytes: sockstat.tcp_mem_bytes,
        time_wait_server_side: time_wait.server_side,
        time_wait_client_side: time_wait.client_side,
        time_wait_server_side_bytes: time_wait.server_side_bytes,
        time_wait_client_side_bytes: time_wait.client_side_bytes,
        time_wait_server_side_since_point_start: attributed(|t| t.server_side_since_point_start),
        time_wait_client_side_since_point_start: attributed(|t| t.client_side_since_point_start),
        time_wait_server_side_since_window_end: attributed(|t| t.server_side_since_window_end),
        time_wait_client_side_since_window_end: attributed(|t| t.client_side_since_window_end),
        server_rss_bytes: server.map(|s| s.rss_bytes),
        server_pss_bytes: server.and_then(|s| s.pss_bytes),
        server_cpu_us: server.map(|s| s.cpu_user_us + s.cpu_system_us),
        server_ctx_switches: server.map(|s| s.voluntary_ctx_switches + s.involuntary_ctx_switches),
        server_ctx_switches_main_only: server.is_some_and(|s| s.ctx_switches_main_only),
        server_threads: server.map(|s| s.threads),
        server_open_fds: server.map(|s| s.open_fds),
        server_processes: server.map(|s| s.process_count),
        loadgen_cpu_us: sample.loadgen_cpu.total_us(),
        listen_overflows: tcp_ext.listen_overflows,
        listen_drops: tcp_ext.listen_drops,
        time_wait_overflows: tcp_ext.tcp_time_wait_overflow,
    }
}

/// The samples bracketing the measured window: the last at or before its start, the last at or
/// before its end.
fn window_bounds<'a>(
    samples: &'a [KernelSample],
    window: &PointWindow,
) -> Option<(&'a KernelSample, &'a KernelSample)> {
    let first = samples
        .iter()
        .rev()
        .find(|s| s.elapsed_ms <= window.measure_from_ms)
        .or_else(|| samples.first())?;
    let last = samples
        .iter()
        .rev()
        .find(|s| s.elapsed_ms <= window.measure_to_ms)
        .or_else(|| samples.last())?;
    (last.elapsed_ms > first.elapsed_ms).then_some((first, last))
}

/// The server tree's context switches between the bracketing samples `a` and `b` (both must
/// have the figure): each step up from one sample with the figure to the next, added up, and
/// whether any of them counted a process by its main thread only.
///
/// The sum over live tasks is not a counter: it drops when a thread or a child process exits
/// and takes its count along (`KernelSample::server_ctx_switches`). `b - a` would subtract the
/// departed worker's whole count from the others' switches; a step down adds nothing here, so
/// what is lost is the departed worker's switches since the last sample that saw it, and the
/// others' in that one step. A step where main-thread-only counting began or ended adds
/// nothing either: the other threads' whole counts would leave or join the sum at once.
fn window_ctx_switches(
    samples: &[KernelSample],
    a: &KernelSample,
    b: &KernelSample,
) -> Option<(u64, bool)> {
    a.server_ctx_switches?;
    b.server_ctx_switches?;
    let known: Vec<(u64, bool)> = samples
        .iter()
        .filter(|s| (a.elapsed_ms..=b.elapsed_ms).contains(&s.elapsed_ms))
        .filter_map(|s| Some((s.server_ctx_switches?, s.server_ctx_switches_main_only)))
        .collect();
    let switches = known
        .windows(2)
        .filter(|w| w[0].1 == w[1].1)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .sum();
    Some((switches, known.iter().any(|k| k.1)))
}

/// The TIME_WAITs of one point by origin (see the module's doc), per side.
#[derive(Debug, Default, PartialEq)]
struct TimeWaitOrigins {
    own_peak: Option<u64>,
    own_seconds: Option<f64>,
    carried_over: Option<u64>,
    teardown: Option<u64>,
}

/// `total` and `since_start`: one side's count of every origin and of the point's own;
/// `since_end`: of the teardown's.
struct SideOf {
    total: fn(&KernelSample) -> u64,
    since_start: fn(&KernelSample) -> Option<u64>,
    since_end: fn(&KernelSample) -> Option<u64>,
}

const SERVER_SIDE: SideOf = SideOf {
    total: |s| s.time_wait_server_side,
    since_start: |s| s.time_wait_server_side_since_point_start,
    since_end: |s| s.time_wait_server_side_since_window_end,
};

const CLIENT_SIDE: SideOf = SideOf {
    total: |s| s.time_wait_client_side,
    since_start: |s| s.time_wait_client_side_since_point_start,
    since_end: |s| s.time_wait_client_side_since_window_end,
};

fn time_wait_origins(
    samples: &[KernelSample],
    window: &PointWindow,
    side: &SideOf,
) -> TimeWaitOrigins {
    let (from, to) = (window.measure_from_ms, window.measure_to_ms);
    // The point's own begun before the window's end. A sample after the end still sees all of
    // them (none is 60 s old yet), so it tells the count at the end, which the last sample in
    // the window, up to an interval earlier, would miss; the teardown's are left out.
    let own = |s: &KernelSample| {
        Some((side.since_start)(s)?.saturating_sub((side.since_end)(s).unwrap_or(0)))
    };
    let own_peak = samples
        .iter()
        .filter(|s| s.elapsed_ms >= from)
        .filter_map(own)
        .max();
    // Present when the window opened: a TIME_WAIT begun before the point cannot appear later,
    // so no later moment has more of them. The last sample with the split by age at or before
    // the window's start, else the first after it.
    let split = || samples.iter().filter(|s| (side.since_start)(s).is_some());
    let at_start = split()
        .rev()
        .find(|s| s.elapsed_ms <= from)
        .or_else(|| split().next());
    let carried_over =
        at_start.and_then(|s| Some((side.total)(s).saturating_sub((side.since_start)(s)?)));
    TimeWaitOrigins {
        own_peak,
        own_seconds: window_integral(samples, from, to, own),
        carried_over,
        teardown: samples.iter().filter_map(side.since_end).max(),
    }
}

/// The trapezoid integral of `f` over `from_ms..to_ms`, in units x seconds, cut at the window's
/// edges (linearly between the samples around them); `None` when no two samples with the
/// figure span any of the window.
fn window_integral(
    samples: &[KernelSample],
    from_ms: u64,
    to_ms: u64,
    f: impl Fn(&KernelSample) -> Option<u64>,
) -> Option<f64> {
    let known: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.elapsed_ms as f64, f(s)? as f64)))
        .collect();
    let (from, to) = (from_ms as f64, to_ms as f64);
    let mut spanned = false;
    let mut area = 0.0;
    for w in known.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        let (a, b) = (t0.max(from), t1.min(to));
        if t1 <= t0 || b <= a {
            continue;
        }
        let at = |t: f64| v0 + (v1 - v0) * (t - t0) / (t1 - t0);
        area += (at(a) + at(b)) / 2.0 * (b - a) / 1000.0;
        spanned = true;
    }
    spanned.then_some(area)
}

fn summarize(
    samples: &[KernelSample],
    raw: &[Sample],
    window: &PointWindow,
    time_wait_object_bytes: u64,
) -> KernelSummary {
    let peak = |f: fn(&KernelSample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    // Socket-seconds: the trapezoid integral of the count over time.
    let integral = |f: fn(&KernelSample) -> u64| {
        samples
            .windows(2)
            .map(|w| {
                let dt_s = (w[1].elapsed_ms.saturating_sub(w[0].elapsed_ms)) as f64 / 1000.0;
                (f(&w[0]) + f(&w[1])) as f64 / 2.0 * dt_s
            })
            .sum::<f64>()
    };
    let delta = |f: fn(&KernelSample) -> u64| match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => f(b).saturating_sub(f(a)),
        _ => 0,
    };
    let bounds = window_bounds(samples, window);
    let server_cpu_us_per_op = bounds.and_then(|(a, b)| {
        let used = b.server_cpu_us?.checked_sub(a.server_cpu_us?)?;
        (window.ops > 0).then(|| used as f64 / window.ops as f64)
    });
    let ctx_switches = bounds.and_then(|(a, b)| {
        let (switches, main_only) = window_ctx_switches(samples, a, b)?;
        let span_s = (b.elapsed_ms - a.elapsed_ms) as f64 / 1000.0;
        Some((switches as f64, span_s, main_only))
    });
    let loadgen_cpu_share = bounds
        .map(|(a, b)| {
            let used_us = b.loadgen_cpu_us.saturating_sub(a.loadgen_cpu_us) as f64;
            let span_us = (b.elapsed_ms - a.elapsed_ms) as f64 * 1000.0;
            used_us / (span_us * window.generator_cpus.max(1) as f64)
        })
        .unwrap_or(0.0);
    let server_peak_rss_bytes = samples.iter().filter_map(|s| s.server_rss_bytes).max();
    let server_base_rss = samples.iter().find_map(|s| s.server_rss_bytes);
    let server_memory_per_connection_bytes = match (server_peak_rss_bytes, server_base_rss) {
        // RSS moves in whole pages: no growth at all says "too small to see", not "zero".
        (Some(peak), Some(base)) if window.peak_open_connections > 0 && peak > base => {
            Some((peak - base) as f64 / window.peak_open_connections as f64)
        }
        _ => None,
    };
    let span_us = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.elapsed_ms > a.elapsed_ms => {
            (b.elapsed_ms - a.elapsed_ms) as f64 * 1000.0
        }
        _ => 0.0,
    };
    let sampler_cpu_us: u64 = raw.iter().map(|s| s.sample_cpu_us).sum();
    let loadgen = loadgen_memory(raw, window.peak_open_connections);
    let server_side = time_wait_origins(samples, window, &SERVER_SIDE);
    let client_side = time_wait_origins(samples, window, &CLIENT_SIDE);
    let bytes = |n: Option<u64>| n.map(|n| n * time_wait_object_bytes);
    KernelSummary {
        peak_time_wait_server_side: peak(|s| s.time_wait_server_side),
        peak_time_wait_client_side: peak(|s| s.time_wait_client_side),
        peak_time_wait_server_side_bytes: peak(|s| s.time_wait_server_side_bytes),
        peak_time_wait_client_side_bytes: peak(|s| s.time_wait_client_side_bytes),
        time_wait_seconds_server_side: integral(|s| s.time_wait_server_side),
        time_wait_seconds_client_side: integral(|s| s.time_wait_client_side),
        own_peak_time_wait_server_side: server_side.own_peak,
        own_peak_time_wait_client_side: client_side.own_peak,
        own_peak_time_wait_server_side_bytes: bytes(server_side.own_peak),
        own_peak_time_wait_client_side_bytes: bytes(client_side.own_peak),
        own_time_wait_seconds_server_side: server_side.own_seconds,
        own_time_wait_seconds_client_side: client_side.own_seconds,
        carried_over_time_wait_server_side: server_side.carried_over,
        carried_over_time_wait_client_side: client_side.carried_over,
        teardown_time_wait_server_side: server_side.teardown,
        teardown_time_wait_client_side: client_side.teardown,
        peak_tcp_memory_bytes: peak(|s| s.tcp_memory_bytes),
        server_cpu_us_per_op,
        server_ctx_switches_per_s: ctx_switches.map(|(n, span_s, _)| n / span_s),
        server_ctx_switches_per_op: ctx_switches
            .filter(|_| window.ops > 0)
            .map(|(n, _, _)| n / window.ops as f64),
        server_ctx_switches_main_only: ctx_switches.is_some_and(|(_, _, main_only)| main_only),
        server_peak_rss_bytes,
        server_memory_per_connection_bytes,
        listen_overflows: delta(|s| s.listen_overflows),
        listen_drops: delta(|s| s.listen_drops),
        time_wait_overflows: delta(|s| s.time_wait_overflows),
        loadgen_cpu_share,
        sampler_cpu_share: if span_us > 0.0 {
            sampler_cpu_us as f64 / span_us
        } else {
            0.0
        },
        loadgen_rss_start_bytes: loadgen.start_bytes,
        loadgen_peak_rss_bytes: loadgen.peak_bytes,
        loadgen_memory_per_connection_bytes: loadgen.per_connection_bytes,
    }
}

/// The generator's resident memory over one point.
#[derive(Debug, Default, PartialEq)]
struct LoadgenMemory {
    start_bytes: Option<u64>,
    peak_bytes: Option<u64>,
    per_connection_bytes: Option<f64>,
}

/// Start: the first sample that has the figure (the sampler's first sample is taken before
/// the point's load starts). Peak: the largest. Per connection: their difference over the peak
/// open connections; `None` without connections, and (as for the server) when the RSS did not
/// grow, since RSS moves in whole pages and "too small to see" is not "zero".
fn loadgen_memory(raw: &[Sample], peak_open_connections: u64) -> LoadgenMemory {
    let start_bytes = raw.iter().find_map(|s| s.loadgen_rss_bytes);
    let peak_bytes = raw.iter().filter_map(|s| s.loadgen_rss_bytes).max();
    let per_connection_bytes = match (start_bytes, peak_bytes) {
        (Some(start), Some(peak)) if peak_open_connections > 0 && peak > start => {
            Some((peak - start) as f64 / peak_open_connections as f64)
        }
        _ => None,
    };
    LoadgenMemory {
        start_bytes,
        peak_bytes,
        per_connection_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProcessTreeFigures;

    fn sample(
        elapsed_ms: u64,
        tw_server: u64,
        server_cpu_us: u64,
        loadgen_cpu_us: u64,
        rss: u64,
    ) -> KernelSample {
        KernelSample {
            elapsed_ms,
            time_wait_server_side: tw_server,
            time_wait_server_side_bytes: tw_server * 256,
            server_cpu_us: Some(server_cpu_us),
            server_rss_bytes: Some(rss),
            loadgen_cpu_us,
            listen_drops: elapsed_ms / 1000,
            ..KernelSample::default()
        }
    }

    #[test]
    fn summary_integrates_peaks_and_divides_by_the_window() {
        let samples = vec![
            sample(0, 0, 0, 0, 1_000_000),
            sample(1000, 100, 100_000, 500_000, 1_100_000),
            sample(2000, 200, 300_000, 1_000_000, 1_200_000),
            sample(3000, 200, 500_000, 1_500_000, 1_150_000),
        ];
        let window = PointWindow {
            measure_from_ms: 1000,
            measure_to_ms: 3000,
            ops: 4000,
            peak_open_connections: 100,
            generator_cpus: 1,
            sample_interval_ms: 1000,
        };
        let summary = summarize(&samples, &[], &window, 256);
        assert_eq!(summary.peak_time_wait_server_side, 200);
        assert_eq!(summary.peak_time_wait_server_side_bytes, 51_200);
        // 0->100 over 1 s (50), 100->200 (150), 200->200 (200): 400 socket-seconds.
        assert!((summary.time_wait_seconds_server_side - 400.0).abs() < 1e-9);
        // (500,000 - 100,000) us over 4000 ops.
        assert_eq!(summary.server_cpu_us_per_op, Some(100.0));
        // 1,000,000 us of generator CPU in 2 s on one core.
        assert!((summary.loadgen_cpu_share - 0.5).abs() < 1e-9);
        // (1,200,000 - 1,000,000) / 100 connections.
        assert_eq!(summary.server_memory_per_connection_bytes, Some(2000.0));
        assert_eq!(summary.listen_drops, 3);
    }

    /// A sample of the second point of a sweep on one port: `server` server-side TIME_WAITs of
    /// which `server_own` began in this point; `client` client-side ones, all begun after the
    /// window (the clients closed when the load stopped).
    fn tw(elapsed_ms: u64, server: u64, server_own: u64, client: u64) -> KernelSample {
        KernelSample {
            elapsed_ms,
            time_wait_server_side: server,
            time_wait_client_side: client,
            time_wait_server_side_since_point_start: Some(server_own),
            time_wait_client_side_since_point_start: Some(client),
            time_wait_server_side_since_window_end: Some(0),
            time_wait_client_side_since_window_end: Some(client),
            ..KernelSample::default()
        }
    }

    fn window(measure_from_ms: u64, measure_to_ms: u64) -> PointWindow {
        PointWindow {
            measure_from_ms,
            measure_to_ms,
            ops: 0,
            peak_open_connections: 0,
            generator_cpus: 1,
            sample_interval_ms: 500,
        }
    }

    #[test]
    fn time_waits_are_the_points_own_in_its_window_apart_from_earlier_and_teardown() {
        // Warm-up 0-1 s, window 1-3 s, teardown after. 100 server-side TIME_WAITs left by the
        // point before, expiring as this one makes its own; 10,000 client-side ones when the
        // clients close after the window.
        let samples = vec![
            tw(0, 100, 0, 0),
            tw(500, 120, 20, 0),
            tw(1000, 130, 40, 0),
            tw(1500, 150, 70, 0),
            tw(2000, 160, 90, 0),
            tw(2500, 170, 110, 0),
            tw(3000, 175, 120, 0),
            tw(3500, 170, 120, 10_000),
            tw(4000, 165, 120, 10_000),
        ];
        let summary = summarize(&samples, &[], &window(1000, 3000), 256);
        // Every origin together, as before: the teardown's and the earlier point's inside.
        assert_eq!(
            (
                summary.peak_time_wait_server_side,
                summary.peak_time_wait_client_side
            ),
            (175, 10_000)
        );
        // The point's own within its window.
        assert_eq!(summary.own_peak_time_wait_server_side, Some(120));
        assert_eq!(
            summary.own_peak_time_wait_server_side_bytes,
            Some(120 * 256)
        );
        assert_eq!(summary.own_peak_time_wait_client_side, Some(0));
        assert_eq!(summary.own_peak_time_wait_client_side_bytes, Some(0));
        // (40+70)/2 x 0.5 + (70+90)/2 x 0.5 + (90+110)/2 x 0.5 + (110+120)/2 x 0.5 = 175.
        let own_s = summary.own_time_wait_seconds_server_side.unwrap();
        assert!((own_s - 175.0).abs() < 1e-9, "{own_s}");
        assert_eq!(summary.own_time_wait_seconds_client_side, Some(0.0));
        // Present at the window's start and begun before the point: 130 - 40.
        assert_eq!(summary.carried_over_time_wait_server_side, Some(90));
        assert_eq!(summary.carried_over_time_wait_client_side, Some(0));
        // Begun after the window.
        assert_eq!(summary.teardown_time_wait_server_side, Some(0));
        assert_eq!(summary.teardown_time_wait_client_side, Some(10_000));
    }

    #[test]
    fn the_windows_last_moments_count_from_the_sample_after_it() {
        // The window ends at 1.2 s, between two samples: 30 more of the point's own began
        // after the sample at 1 s and before the end, then 40 in the teardown.
        let mut after = tw(1500, 100, 100, 0);
        after.time_wait_server_side += 40;
        after.time_wait_server_side_since_point_start = Some(140);
        after.time_wait_server_side_since_window_end = Some(40);
        let samples = vec![tw(0, 0, 0, 0), tw(1000, 70, 70, 0), after];
        let summary = summarize(&samples, &[], &window(500, 1200), 256);
        assert_eq!(summary.own_peak_time_wait_server_side, Some(100));
        assert_eq!(summary.teardown_time_wait_server_side, Some(40));
        // 0.5-1 s: 35 to 70; 1-1.2 s: 70 to 82 (towards 100 at 1.5 s, not 140).
        let own_s = summary.own_time_wait_seconds_server_side.unwrap();
        assert!((own_s - (26.25 + 15.2)).abs() < 1e-9, "{own_s}");
    }

    #[test]
    fn the_window_integral_is_cut_at_the_windows_edges() {
        let samples = vec![
            tw(1000, 0, 40, 0),
            tw(1500, 0, 70, 0),
            tw(2000, 0, 90, 0),
            tw(2500, 0, 110, 0),
            tw(3000, 0, 120, 0),
        ];
        let own = |s: &KernelSample| s.time_wait_server_side_since_point_start;
        // 1.25-2.75 s: 55 at 1.25 s, 115 at 2.75 s, by straight lines between the samples.
        let area = window_integral(&samples, 1250, 2750, own).unwrap();
        assert!((area - 133.75).abs() < 1e-9, "{area}");
        // A window no two samples span has no integral; one before the samples neither.
        assert_eq!(window_integral(&samples[..1], 0, 5000, own), None);
        assert_eq!(window_integral(&samples, 0, 900, own), None);
        // Samples without the figure (results from before it) are skipped.
        let mut older = samples.clone();
        for s in &mut older {
            s.time_wait_server_side_since_point_start = None;
        }
        assert_eq!(window_integral(&older, 1000, 3000, own), None);
    }

    #[test]
    fn samples_without_a_fresh_dump_leave_the_attributed_figures_unknown() {
        // A dump skipped for the CPU budget: its counts are an older dump's, totals and all.
        let repeated = |elapsed_ms, age_ms| Sample {
            elapsed_ms,
            time_wait: Some(TimeWaitSample {
                server_side: 100,
                age_ms,
                ..TimeWaitSample::default()
            }),
            ..Sample::default()
        };
        let report = SamplerReport {
            samples: vec![repeated(0, 0), repeated(500, 500), repeated(1000, 1000)],
            ..SamplerReport::default()
        };
        let accounting = kernel_accounting(&report, &SlabSizes::fallback(), &window(250, 1000));
        let own: Vec<Option<u64>> = accounting
            .samples
            .iter()
            .map(|s| s.time_wait_server_side_since_point_start)
            .collect();
        assert_eq!(own, [Some(0), None, None]);
        let summary = accounting.summary;
        // The carried over are read at the last fresh dump before the window.
        assert_eq!(summary.carried_over_time_wait_server_side, Some(100));
        // No fresh dump in the window or after it: its own are unknown, not 0.
        assert_eq!(summary.own_peak_time_wait_server_side, None);
        assert_eq!(summary.own_time_wait_seconds_server_side, None);

        // A sampler with no port, or a dump that failed: the totals read 0 as before, the
        // attributed figures are unknown, not 0.
        let report = SamplerReport {
            samples: vec![raw(0, None), raw(500, None), raw(1000, None)],
            ..SamplerReport::default()
        };
        let accounting = kernel_accounting(&report, &SlabSizes::fallback(), &window(0, 1000));
        assert!(accounting
            .samples
            .iter()
            .all(|s| s.time_wait_server_side_since_point_start.is_none()));
        let summary = accounting.summary;
        assert_eq!(summary.peak_time_wait_server_side, 0);
        assert_eq!(summary.own_peak_time_wait_server_side, None);
        assert_eq!(summary.own_time_wait_seconds_client_side, None);
        assert_eq!(summary.carried_over_time_wait_server_side, None);
        assert_eq!(summary.teardown_time_wait_client_side, None);
    }

    #[test]
    fn raw_time_wait_counts_by_origin_reach_the_result() {
        let dumped = |elapsed_ms, own: u64, teardown: u64| Sample {
            elapsed_ms,
            time_wait: Some(TimeWaitSample {
                server_side: 50 + own,
                server_side_since_point_start: own,
                server_side_since_window_end: teardown,
                ..TimeWaitSample::default()
            }),
            ..Sample::default()
        };
        let report = SamplerReport {
            samples: vec![dumped(0, 0, 0), dumped(500, 10, 0), dumped(1200, 14, 4)],
            ..SamplerReport::default()
        };
        let slab = SlabSizes {
            tw_sock_tcp_bytes: 200,
            ..SlabSizes::fallback()
        };
        let accounting = kernel_accounting(&report, &slab, &window(250, 1000));
        let last = accounting.samples.last().unwrap();
        assert_eq!(
            (
                last.time_wait_server_side,
                last.time_wait_server_side_since_point_start,
                last.time_wait_server_side_since_window_end
            ),
            (64, Some(14), Some(4))
        );
        let summary = accounting.summary;
        assert_eq!(summary.carried_over_time_wait_server_side, Some(50));
        assert_eq!(summary.own_peak_time_wait_server_side, Some(10));
        assert_eq!(summary.own_peak_time_wait_server_side_bytes, Some(2_000));
        assert_eq!(summary.teardown_time_wait_server_side, Some(4));
    }

    fn raw(elapsed_ms: u64, loadgen_rss_bytes: Option<u64>) -> Sample {
        Sample {
            elapsed_ms,
            loadgen_rss_bytes,
            ..Sample::default()
        }
    }

    #[test]
    fn generator_memory_per_connection_is_growth_over_peak_connections() {
        // Start before the load, a peak mid-point, some given back at the end.
        let samples = vec![
            raw(0, Some(10_000_000)),
            raw(250, Some(14_000_000)),
            raw(500, Some(18_000_000)),
            raw(750, Some(16_000_000)),
        ];
        let memory = loadgen_memory(&samples, 2000);
        assert_eq!(memory.start_bytes, Some(10_000_000));
        assert_eq!(memory.peak_bytes, Some(18_000_000));
        // 8,000,000 bytes of growth over 2,000 connections.
        assert_eq!(memory.per_connection_bytes, Some(4000.0));

        // Through the whole accounting, from the raw samples.
        let report = SamplerReport {
            samples,
            ..SamplerReport::default()
        };
        let window = PointWindow {
            measure_from_ms: 250,
            measure_to_ms: 750,
            ops: 0,
            peak_open_connections: 2000,
            generator_cpus: 1,
            sample_interval_ms: 250,
        };
        let summary = kernel_accounting(&report, &SlabSizes::fallback(), &window).summary;
        assert_eq!(summary.loadgen_rss_start_bytes, Some(10_000_000));
        assert_eq!(summary.loadgen_peak_rss_bytes, Some(18_000_000));
        assert_eq!(summary.loadgen_memory_per_connection_bytes, Some(4000.0));
    }

    #[test]
    fn generator_memory_skips_unreadable_samples() {
        // The first readable sample is the start, even if earlier ones failed.
        let samples = vec![
            raw(0, None),
            raw(250, Some(5_000_000)),
            raw(500, None),
            raw(750, Some(5_400_000)),
        ];
        let memory = loadgen_memory(&samples, 100);
        assert_eq!(memory.start_bytes, Some(5_000_000));
        assert_eq!(memory.peak_bytes, Some(5_400_000));
        assert_eq!(memory.per_connection_bytes, Some(4000.0));
    }

    #[test]
    fn generator_memory_per_connection_needs_connections_and_growth() {
        let grew = vec![raw(0, Some(1_000_000)), raw(250, Some(2_000_000))];
        // No connections: no per-connection figure, but start and peak stay.
        let memory = loadgen_memory(&grew, 0);
        assert_eq!(memory.per_connection_bytes, None);
        assert_eq!(
            (memory.start_bytes, memory.peak_bytes),
            (Some(1_000_000), Some(2_000_000))
        );
        // No growth (whole pages): unknown, not zero.
        let flat = vec![raw(0, Some(1_000_000)), raw(250, Some(1_000_000))];
        assert_eq!(loadgen_memory(&flat, 10).per_connection_bytes, None);
        // No readable sample at all.
        assert_eq!(
            loadgen_memory(&[raw(0, None)], 10),
            LoadgenMemory::default()
        );
        assert_eq!(loadgen_memory(&[], 10), LoadgenMemory::default());
    }

    /// A sample with the server tree's context switches and nothing else.
    fn ctx(elapsed_ms: u64, switches: Option<u64>, main_only: bool) -> KernelSample {
        KernelSample {
            elapsed_ms,
            server_ctx_switches: switches,
            server_ctx_switches_main_only: main_only,
            ..KernelSample::default()
        }
    }

    fn window_with_ops(measure_from_ms: u64, measure_to_ms: u64, ops: u64) -> PointWindow {
        PointWindow {
            ops,
            ..window(measure_from_ms, measure_to_ms)
        }
    }

    #[test]
    fn context_switches_are_a_rate_and_a_cost_per_op_over_the_window() {
        // Warm-up 0-1 s, window 1-3 s with 4,000 ops, teardown after.
        let samples = vec![
            ctx(0, Some(0), false),
            ctx(1000, Some(1_000), false),
            ctx(2000, Some(3_000), false),
            ctx(3000, Some(5_000), false),
            ctx(3500, Some(9_000), false),
        ];
        let summary = summarize(&samples, &[], &window_with_ops(1000, 3000, 4000), 256);
        // 4,000 switches in the 2 s between the bracketing samples: the warm-up's 1,000 and
        // the teardown's 4,000 left out.
        assert_eq!(summary.server_ctx_switches_per_s, Some(2_000.0));
        assert_eq!(summary.server_ctx_switches_per_op, Some(1.0));
        assert!(!summary.server_ctx_switches_main_only);
        // Nothing completed: a rate, but no cost per op.
        let summary = summarize(&samples, &[], &window_with_ops(1000, 3000, 0), 256);
        assert_eq!(summary.server_ctx_switches_per_s, Some(2_000.0));
        assert_eq!(summary.server_ctx_switches_per_op, None);
        // A sample inside the window without the figure (the server could not be read then)
        // is stepped over.
        let gap = vec![
            ctx(1000, Some(1_000), false),
            ctx(2000, None, false),
            ctx(3000, Some(5_000), false),
        ];
        let summary = summarize(&gap, &[], &window_with_ops(1000, 3000, 2000), 256);
        assert_eq!(summary.server_ctx_switches_per_s, Some(2_000.0));
        assert_eq!(summary.server_ctx_switches_per_op, Some(2.0));
    }

    #[test]
    fn a_worker_that_exits_takes_only_its_own_switches_along() {
        // Between 1 and 2 s a worker with 1,500 switches exited and its count left the sum, so
        // the sum fell by 500 though the others switched 1,000 times; then 2,000 more. A step
        // down adds nothing: 2,000 in 2 s, not the 1,500 of last - first.
        let samples = vec![
            ctx(1000, Some(1_000), false),
            ctx(2000, Some(500), false),
            ctx(3000, Some(2_500), false),
        ];
        let summary = summarize(&samples, &[], &window_with_ops(1000, 3000, 1000), 256);
        assert_eq!(summary.server_ctx_switches_per_s, Some(1_000.0));
        assert_eq!(summary.server_ctx_switches_per_op, Some(2.0));
    }

    #[test]
    fn steps_where_main_thread_only_counting_begins_or_ends_add_nothing() {
        // From 2 s the server has too many threads to read one by one: only the main thread's
        // 300 count (a step down); at 3 s all its threads are read again, and their whole
        // counts come back at once (a step up of 4,600 that is mostly older switches). Neither
        // counts; the steps within one way of counting do: 100 + 1,000 in 3 s.
        let samples = vec![
            ctx(1000, Some(1_000), false),
            ctx(2000, Some(300), true),
            ctx(2500, Some(400), true),
            ctx(3000, Some(5_000), false),
            ctx(4000, Some(6_000), false),
        ];
        let summary = summarize(&samples, &[], &window_with_ops(1000, 4000, 1100), 256);
        let per_s = summary.server_ctx_switches_per_s.unwrap();
        assert!((per_s - 1_100.0 / 3.0).abs() < 1e-9, "{per_s}");
        assert_eq!(summary.server_ctx_switches_per_op, Some(1.0));
        // A lower bound, and the summary says so.
        assert!(summary.server_ctx_switches_main_only);
        // Main-thread-only counting outside the window does not mark the window's figure.
        let summary = summarize(&samples[2..], &[], &window_with_ops(3000, 4000, 1), 256);
        assert_eq!(summary.server_ctx_switches_per_s, Some(1_000.0));
        assert!(!summary.server_ctx_switches_main_only);
    }

    #[test]
    fn context_switches_are_unknown_without_a_readable_server() {
        // A server given by URL (no process to read), or a result from before the figure: no
        // sample has it.
        let samples = vec![ctx(0, None, false), ctx(1000, None, false)];
        let summary = summarize(&samples, &[], &window_with_ops(0, 1000, 100), 256);
        assert_eq!(summary.server_ctx_switches_per_s, None);
        assert_eq!(summary.server_ctx_switches_per_op, None);
        assert!(!summary.server_ctx_switches_main_only);
        // A bracketing sample without it: unknown, not a count from the samples that have it.
        let samples = vec![
            ctx(0, None, false),
            ctx(500, Some(10), false),
            ctx(1000, Some(20), false),
        ];
        let summary = summarize(&samples, &[], &window_with_ops(0, 1000, 100), 256);
        assert_eq!(summary.server_ctx_switches_per_s, None);

        // From the sampler: no server figures give no count; the tree's voluntary and
        // involuntary switches are added, and main-thread-only counting is passed on.
        let tree = |voluntary, involuntary, main_only| ProcessTreeFigures {
            voluntary_ctx_switches: voluntary,
            involuntary_ctx_switches: involuntary,
            ctx_switches_main_only: main_only,
            ..ProcessTreeFigures::default()
        };
        let with_server = |elapsed_ms, server| Sample {
            elapsed_ms,
            server,
            ..Sample::default()
        };
        let report = SamplerReport {
            samples: vec![with_server(0, None), with_server(500, None)],
            ..SamplerReport::default()
        };
        let accounting = kernel_accounting(&report, &SlabSizes::fallback(), &window(0, 500));
        assert!(accounting
            .samples
            .iter()
            .all(|s| s.server_ctx_switches.is_none() && !s.server_ctx_switches_main_only));
        assert_eq!(accounting.summary.server_ctx_switches_per_s, None);
        let report = SamplerReport {
            samples: vec![
                with_server(0, Some(tree(70, 5, false))),
                with_server(500, Some(tree(90, 10, true))),
            ],
            ..SamplerReport::default()
        };
        let accounting = kernel_accounting(&report, &SlabSizes::fallback(), &window(0, 500));
        let counted: Vec<(Option<u64>, bool)> = accounting
            .samples
            .iter()
            .map(|s| (s.server_ctx_switches, s.server_ctx_switches_main_only))
            .collect();
        assert_eq!(counted, [(Some(75), false), (Some(100), true)]);
    }

    #[test]
    fn no_samples_give_empty_figures_not_a_panic() {
        let window = PointWindow {
            measure_from_ms: 0,
            measure_to_ms: 1000,
            ops: 10,
            peak_open_connections: 0,
            generator_cpus: 1,
            sample_interval_ms: 250,
        };
        let summary = summarize(&[], &[], &window, 256);
        assert_eq!(summary.server_cpu_us_per_op, None);
        assert_eq!(summary.server_ctx_switches_per_s, None);
        assert_eq!(summary.server_ctx_switches_per_op, None);
        assert_eq!(summary.peak_time_wait_client_side, 0);
    }
}
