//! Turns the sampler's raw samples into the result's kernel accounting: per-sample figures on
//! the load's time axis and the derived figures the 1999 argument was about (TIME_WAIT per side
//! and its bytes, socket memory, server CPU per operation and memory per connection), plus the
//! checks that tell whether the run can be trusted. Pure: samples in, figures out.
//!
//! The generator's own memory (`loadgen_*_rss_bytes`) comes from the raw samples: the result's
//! per-sample figures do not carry it, only the summary does.

use reports::model::{KernelAccounting, KernelSample, KernelSummary};

use crate::probe::sampler::{Sample, SamplerReport};
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
        summary: summarize(&samples, &report.samples, window),
        samples,
        probe_errors: report.errors.clone(),
    }
}

fn kernel_sample(sample: &Sample) -> KernelSample {
    let sockstat = sample.sockstat.unwrap_or_default();
    let tcp_ext = sample.tcp_ext.unwrap_or_default();
    let time_wait = sample.time_wait.unwrap_or_default();
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
        server_rss_bytes: server.map(|s| s.rss_bytes),
        server_pss_bytes: server.and_then(|s| s.pss_bytes),
        server_cpu_us: server.map(|s| s.cpu_user_us + s.cpu_system_us),
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

fn summarize(samples: &[KernelSample], raw: &[Sample], window: &PointWindow) -> KernelSummary {
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
    KernelSummary {
        peak_time_wait_server_side: peak(|s| s.time_wait_server_side),
        peak_time_wait_client_side: peak(|s| s.time_wait_client_side),
        peak_time_wait_server_side_bytes: peak(|s| s.time_wait_server_side_bytes),
        peak_time_wait_client_side_bytes: peak(|s| s.time_wait_client_side_bytes),
        time_wait_seconds_server_side: integral(|s| s.time_wait_server_side),
        time_wait_seconds_client_side: integral(|s| s.time_wait_client_side),
        peak_tcp_memory_bytes: peak(|s| s.tcp_memory_bytes),
        server_cpu_us_per_op,
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
        let summary = summarize(&samples, &[], &window);
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
        let summary = summarize(&[], &[], &window);
        assert_eq!(summary.server_cpu_us_per_op, None);
        assert_eq!(summary.peak_time_wait_client_side, 0);
    }
}
