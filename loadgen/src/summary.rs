//! The text summary printed at the end of a run: throughput, latency percentiles per population
//! and class, errors, warnings.

use std::io::Write;

use reports::model::{HistogramData, KernelAccounting, RunResult};

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn latency_row(out: &mut impl Write, population: &str, class: &str, ops: u64, h: &HistogramData) {
    let _ = writeln!(
        out,
        "  {population:<12} {class:<8} {ops:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        ms(h.mean as u64),
        ms(h.p50),
        ms(h.p90),
        ms(h.p99),
        ms(h.p999),
        ms(h.max)
    );
}

fn mib(bytes: f64) -> String {
    format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
}

fn print_kernel(out: &mut impl Write, kernel: &KernelAccounting) {
    let k = &kernel.summary;
    let estimated = if kernel.time_wait_bytes_estimated {
        " (estimated size)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  TIME_WAIT peak: server {} ({}), clients {} ({}) at {} B each{estimated}; {:.0} / {:.0} socket-seconds",
        k.peak_time_wait_server_side,
        mib(k.peak_time_wait_server_side_bytes as f64),
        k.peak_time_wait_client_side,
        mib(k.peak_time_wait_client_side_bytes as f64),
        kernel.time_wait_object_bytes,
        k.time_wait_seconds_server_side,
        k.time_wait_seconds_client_side
    );
    let per_op = k
        .server_cpu_us_per_op
        .map(|v| format!("{v:.1} us/op"))
        .unwrap_or_else(|| "-".into());
    let rss = k
        .server_peak_rss_bytes
        .map(|v| mib(v as f64))
        .unwrap_or_else(|| "-".into());
    let per_conn = k
        .server_memory_per_connection_bytes
        .map(|v| format!("{v:.0} B/connection"))
        .unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "  server: CPU {per_op}, peak RSS {rss}, {per_conn}; kernel TCP memory peak {}; accept queue overflows {}",
        mib(k.peak_tcp_memory_bytes as f64),
        k.listen_overflows
    );
    let _ = writeln!(
        out,
        "  generator CPU {:.0} % of its cores; sampler {:.2} % of a core",
        k.loadgen_cpu_share * 100.0,
        k.sampler_cpu_share * 100.0
    );
}

/// One row per load point, side by side: the sweep's curve, or where each variant's TIME_WAITs
/// went and what they cost.
fn print_point_table(result: &RunResult, out: &mut impl Write) {
    let _ = writeln!(
        out,
        "\n  {:<24} {:>10} {:>9} {:>12} {:>12} {:>12} {:>11}",
        "load point", "ops/s", "p99 ms", "TW server", "TW clients", "TW memory", "server us/op"
    );
    for point in &result.load_points {
        let p99 = point
            .populations
            .iter()
            .map(|p| p.latency.total_us.p99)
            .max()
            .unwrap_or(0);
        let (tw_server, tw_client, tw_bytes, cpu) = match &point.kernel {
            Some(k) => (
                k.summary.peak_time_wait_server_side.to_string(),
                k.summary.peak_time_wait_client_side.to_string(),
                mib((k.summary.peak_time_wait_server_side_bytes
                    + k.summary.peak_time_wait_client_side_bytes) as f64),
                k.summary
                    .server_cpu_us_per_op
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "  {:<24} {:>10.1} {:>9} {:>12} {:>12} {:>12} {:>11}",
            point.label,
            point.totals.ops_per_s,
            ms(p99),
            tw_server,
            tw_client,
            tw_bytes,
            cpu
        );
    }
}

pub fn print_summary(result: &RunResult, out: &mut impl Write) {
    let _ = writeln!(
        out,
        "scenario {} (seed {}), server {} at {}, {}",
        result.scenario_name,
        result.seed,
        result.server.kind,
        result.server.address,
        match result.isolation.mode {
            reports::model::IsolationMode::PrivateNetns => "private network namespace".to_string(),
            reports::model::IsolationMode::HostNamespace => format!(
                "host network namespace ({})",
                result.isolation.reason.as_deref().unwrap_or("by request")
            ),
        }
    );
    for point in &result.load_points {
        let t = &point.totals;
        let _ = writeln!(
            out,
            "\n{}: {:.1} s measured after {:.1} s warm-up: {} ops, {:.1} ops/s, {:.1} Mbit/s, {} errors",
            point.label, point.measured_s, point.warmup_s, t.ops, t.ops_per_s, t.mbit_per_s, t.errors_total
        );
        let _ = writeln!(
            out,
            "  {:<12} {:<8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "population",
            "class",
            "ops",
            "mean ms",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for population in &point.populations {
            latency_row(
                out,
                &population.name,
                "all",
                population.totals.ops,
                &population.latency.total_us,
            );
            for class in &population.classes {
                latency_row(out, "", &class.class, class.ops, &class.latency.total_us);
            }
            if let Some(lag) = &population.schedule_lag_us {
                let _ = writeln!(
                    out,
                    "  {:<12} schedule lag p50 {} ms, p99 {} ms, max {} ms; {} arrivals waited for a slot",
                    "",
                    ms(lag.p50),
                    ms(lag.p99),
                    ms(lag.max),
                    population.queued_arrivals
                );
            }
            if !population.totals.errors.is_empty() {
                let errors: Vec<String> = population
                    .totals
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let _ = writeln!(out, "  {:<12} errors: {}", "", errors.join(", "));
            }
        }
        if let Some(kernel) = &point.kernel {
            print_kernel(out, kernel);
        }
    }
    if result.load_points.len() > 1 {
        print_point_table(result, out);
    }
    // Each server's own counters once: one server for the run, or one per variant.
    let mut shown: Option<&serde_json::Value> = None;
    let _ = writeln!(out);
    for point in &result.load_points {
        let Some(stats) = point.server_stats.as_ref() else {
            continue;
        };
        if shown == Some(stats) {
            continue;
        }
        shown = Some(stats);
        let _ = writeln!(
            out,
            "{}server counted {} requests, {} connections (peak {}), closes {}",
            if result.load_points.len() > 1 {
                format!("{}: ", point.label)
            } else {
                String::new()
            },
            stats["requests_total"],
            stats["connections_accepted"],
            stats["connections_peak"],
            stats["closes"]
        );
    }
    for warning in &result.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if !result.valid {
        for reason in &result.invalid_reasons {
            let _ = writeln!(out, "INVALID: {reason}");
        }
    }
}
