//! The text summary printed at the end of a run: throughput, latency percentiles per population
//! and class, slow-line figures and Little's law per population, errors, warnings, and for
//! several load points each population side by side. The numbers come from `reports::prepare`,
//! as the HTML report's do, so both say the same.

use std::io::Write;

use crate::model::{HistogramData, KernelAccounting, LoadPoint, RunResult};
use crate::prepare::{self, LittleRow, LowEnd, SlowLineRow};

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
    let memory = match (
        k.loadgen_memory_per_connection_bytes,
        k.loadgen_rss_start_bytes,
        k.loadgen_peak_rss_bytes,
    ) {
        (None, None, None) => String::new(),
        (per_conn, start, peak) => format!(
            "; memory {} B/connection (RSS {} before the load, {} at peak)",
            per_conn.map_or("-".into(), |v| format!("{v:.0}")),
            start.map_or("-".into(), |v| mib(v as f64)),
            peak.map_or("-".into(), |v| mib(v as f64))
        ),
    };
    let _ = writeln!(
        out,
        "  generator CPU {:.0} % of its cores; sampler {:.2} % of a core{memory}",
        k.loadgen_cpu_share * 100.0,
        k.sampler_cpu_share * 100.0
    );
}

/// A line rate as lines are sold: 56k, 28.8k, 1.5M (bit/s).
fn line_rate(bps: f64) -> String {
    let (value, suffix) = if bps >= 1e6 {
        (bps / 1e6, "M")
    } else if bps >= 1e3 {
        (bps / 1e3, "k")
    } else {
        (bps, "")
    };
    let text = format!("{value:.1}");
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

/// One line per slow-line population: its line, what the replies got out of it, the pages.
fn print_slow_line(out: &mut impl Write, r: &SlowLineRow) {
    let down = match r.downstream_bps.as_slice() {
        [(bps, _)] => line_rate(*bps),
        rates => rates
            .iter()
            .map(|(bps, share)| format!("{}({:.0}%)", line_rate(*bps), share * 100.0))
            .collect::<Vec<_>>()
            .join("+"),
    };
    let bytes_per_s = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    let low = match r.achieved_low_bytes_per_s {
        Some(LowEnd::P10(v)) => format!("p10 {v:.0}"),
        Some(LowEnd::Min(v)) => format!("min {v:.0}"),
        None => "p10 -".into(),
    };
    let times = |v: Option<f64>| v.map_or("-".into(), |v| format!("x{v:.2}"));
    let _ = writeln!(
        out,
        "  {:<12} line {down}/{} bit/s, RTT {:.0} ms ({}): achieved p50 {} B/s ({low}) of {:.0} \
         B/s payload; slowdown p50 {} p99 {}; pages {}/{} completed, {} lingering closes",
        "",
        line_rate(r.upstream_bps),
        r.rtt_ms,
        r.rtt_mode,
        bytes_per_s(r.achieved_p50_bytes_per_s),
        r.payload_bytes_per_s,
        times(r.slowdown_p50),
        times(r.slowdown_p99),
        r.pages_completed,
        r.pages_started,
        r.lingering_closes
    );
    if r.retries_on_new_connection > 0 {
        let _ = writeln!(
            out,
            "  {:<12} {} requests sent again on a new connection: the server had closed the reused one",
            "", r.retries_on_new_connection
        );
    }
    if let Some(reason) = &r.rtt_mode_reason {
        let _ = writeln!(
            out,
            "  {:<12} round trip by the {}: {reason}",
            "", r.rtt_mode
        );
    }
}

/// Little's law on one population: measured concurrency against rate x time.
fn print_little(out: &mut impl Write, r: &LittleRow) {
    let ratio = |v: Option<f64>| v.map_or("x-".into(), |v| format!("x{v:.2}"));
    let connections = if r.connections_outlive_window {
        format!(
            "connections {:.1} open, most outliving the window (no check)",
            r.mean_open_connections
        )
    } else {
        format!(
            "connections {:.1} open vs {:.1} predicted ({})",
            r.mean_open_connections,
            r.predicted_open_connections,
            ratio(r.connections_ratio)
        )
    };
    let _ = writeln!(
        out,
        "  {:<12} Little's law: {connections}; requests in flight {:.1} vs {:.1} ({})",
        "",
        r.mean_requests_in_flight,
        r.predicted_requests_in_flight,
        ratio(r.requests_ratio)
    );
}

/// Each population across the load points: how one group of clients fared when another joined
/// (variants) or as the load grew (a sweep). Nothing when no population ran in two points.
fn print_populations_across(result: &RunResult, out: &mut impl Write) {
    let points: Vec<&LoadPoint> = result.load_points.iter().collect();
    let rows = prepare::populations_across(&points);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n  {:<12} {:<24} {:>10} {:>9} {:>9}",
        "population", "load point", "ops/s", "p50 ms", "p99 ms"
    );
    for row in &rows {
        for (n, (cell, point)) in row.cells.iter().zip(&points).enumerate() {
            let name = if n == 0 { row.population.as_str() } else { "" };
            match cell {
                Some(c) => {
                    let latency = |v: Option<f64>| v.map_or("-".into(), |us| ms(us as u64));
                    let _ = writeln!(
                        out,
                        "  {name:<12} {:<24} {:>10.1} {:>9} {:>9}",
                        point.label,
                        c.ops_per_s,
                        latency(c.p50_us),
                        latency(c.p99_us)
                    );
                }
                None => {
                    let _ = writeln!(out, "  {name:<12} {:<24} {:>10}", point.label, "not run");
                }
            }
        }
    }
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
            crate::model::IsolationMode::PrivateNetns => "private network namespace".to_string(),
            crate::model::IsolationMode::HostNamespace => format!(
                "host network namespace ({})",
                result.isolation.reason.as_deref().unwrap_or("by request")
            ),
        }
    );
    if let Some(path) = &result.isolation.delay_path {
        let by = if path.delay_line.is_some() {
            "a user-space delay line (tun)"
        } else {
            "netem"
        };
        let _ = writeln!(
            out,
            "delay path: slow-line clients from {} delayed {} ms each way by {by}, fast clients \
             from {}, server {}",
            path.delayed_sources, path.one_way_delay_ms, path.fast_sources, path.server_address
        );
        if let Some(line) = &path.delay_line {
            let _ = writeln!(
                out,
                "delay line: {} packets up, {} down ({:.1} MB), {} dropped, deepest queue {} \
                 packets, relay CPU {:.1} s ({:.1} us/packet)",
                line.packets_up,
                line.packets_down,
                (line.bytes_up + line.bytes_down) as f64 / 1e6,
                line.dropped,
                line.max_queue_packets,
                line.cpu_us as f64 / 1e6,
                line.cpu_us as f64 / (line.packets_up + line.packets_down).max(1) as f64
            );
        }
    }
    for point in &result.load_points {
        let slow_lines = prepare::slow_line_rows(point);
        let little = prepare::little_rows(point);
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
            if let Some(r) = slow_lines.iter().find(|r| r.population == population.name) {
                print_slow_line(out, r);
            }
            if let Some(r) = little.iter().find(|r| r.population == population.name) {
                print_little(out, r);
            }
        }
        if let Some(kernel) = &point.kernel {
            print_kernel(out, kernel);
        }
    }
    if result.load_points.len() > 1 {
        print_point_table(result, out);
        print_populations_across(result, out);
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
