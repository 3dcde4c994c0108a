//! The text summary printed at the end of a run: throughput, latency percentiles per population
//! and class, slow-line figures, live viewers' figures (and the server's live source) and
//! Little's law per population, errors, warnings, and for
//! several load points each population side by side. The numbers come from `reports::prepare`
//! and are written by `render::format`, as the HTML report's are, so both say the same: every
//! all-populations latency is the pooled one (`prepare::pooled_latency`), and TIME_WAIT is the
//! point's own in its window, with what it inherited and what its teardown left said apart.
//! The server's context switches are a lower bound (live threads only), said so when only main
//! threads could be counted. A merged run (`loadgen merge`) adds a table of its shards.

use std::io::Write;

use super::format::{
    age_us, bytes, compact, count, cpu_us, errors_by_kind, fps, line_rate, mean_count, ms,
    or_missing, per_minute, percent, rate, seconds, times, whole, window_s, MISSING,
};
use crate::claims::ClaimsReport;
use crate::comparison::{Comparison, RoundOutcome};
use crate::model::{HistogramData, KernelAccounting, LoadPoint, RunResult};
use crate::prepare::{self, LittleRow, LiveView, LowEnd, PooledLatency, SlowLineRow, ViewerRow};

/// One row of the latency table: mean, p50, p90, p99, p99.9 and max in µs, `None` for a group
/// with no completed request (it has no latency, not a latency of zero).
fn latency_row(
    out: &mut impl Write,
    population: &str,
    class: &str,
    ops: u64,
    us: Option<[f64; 6]>,
) {
    let [mean, p50, p90, p99, p999, max] = match us {
        Some(v) => v.map(ms),
        None => std::array::from_fn(|_| MISSING.to_string()),
    };
    let _ = writeln!(
        out,
        "  {population:<12} {class:<8} {:>10} {mean:>9} {p50:>9} {p90:>9} {p99:>9} {p999:>9} {max:>9}",
        count(ops)
    );
}

/// The latency row's figures of one stored histogram.
fn histogram_figures(h: &HistogramData) -> Option<[f64; 6]> {
    (h.count > 0).then_some([
        h.mean,
        h.p50 as f64,
        h.p90 as f64,
        h.p99 as f64,
        h.p999 as f64,
        h.max as f64,
    ])
}

/// The latency row's figures of all populations pooled.
fn pooled_figures(l: &PooledLatency) -> [f64; 6] {
    [l.mean_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us]
}

fn print_kernel(out: &mut impl Write, kernel: &KernelAccounting) {
    let k = &kernel.summary;
    let estimated = if kernel.time_wait_bytes_estimated {
        " (estimated size)"
    } else {
        ""
    };
    let peak = prepare::time_wait_peak(k);
    if peak.own {
        let sockets = |n: Option<u64>| or_missing(n, count);
        let memory = |b: Option<u64>| or_missing(b, |b| bytes(b as f64));
        let _ = writeln!(
            out,
            "  TIME_WAIT peak in the window, this point's own: server {} ({}), clients {} ({}) at {} each{estimated}; {} / {} socket-seconds",
            sockets(k.own_peak_time_wait_server_side),
            memory(k.own_peak_time_wait_server_side_bytes),
            sockets(k.own_peak_time_wait_client_side),
            memory(k.own_peak_time_wait_client_side_bytes),
            bytes(kernel.time_wait_object_bytes as f64),
            or_missing(k.own_time_wait_seconds_server_side, whole),
            or_missing(k.own_time_wait_seconds_client_side, whole)
        );
        let _ = writeln!(
            out,
            "  TIME_WAIT carried over from before this point: server {}, clients {}; after the window: teardown: server {}, clients {}; most at once, any origin: server {}, clients {}",
            sockets(k.carried_over_time_wait_server_side),
            sockets(k.carried_over_time_wait_client_side),
            sockets(k.teardown_time_wait_server_side),
            sockets(k.teardown_time_wait_client_side),
            count(k.peak_time_wait_server_side),
            count(k.peak_time_wait_client_side)
        );
    } else {
        // A result from before TIME_WAITs were told apart by when they began.
        let _ = writeln!(
            out,
            "  TIME_WAIT peak, any origin (earlier points' and the teardown's included): server {} ({}), clients {} ({}) at {} each{estimated}; {} / {} socket-seconds",
            count(k.peak_time_wait_server_side),
            bytes(k.peak_time_wait_server_side_bytes as f64),
            count(k.peak_time_wait_client_side),
            bytes(k.peak_time_wait_client_side_bytes as f64),
            bytes(kernel.time_wait_object_bytes as f64),
            whole(k.time_wait_seconds_server_side),
            whole(k.time_wait_seconds_client_side)
        );
    }
    let per_op = or_missing(k.server_cpu_us_per_op, |v| format!("{} µs/op", cpu_us(v)));
    let switches = or_missing(k.server_ctx_switches_per_s, |v| {
        format!(
            "{}/s ({}/op){}",
            rate(v),
            or_missing(k.server_ctx_switches_per_op, mean_count),
            if k.server_ctx_switches_main_only {
                ", main threads only: a lower bound"
            } else {
                ""
            }
        )
    });
    let rss = or_missing(k.server_peak_rss_bytes, |v| bytes(v as f64));
    let per_conn = or_missing(k.server_memory_per_connection_bytes, |v| {
        format!("{}/connection", bytes(v))
    });
    let _ = writeln!(
        out,
        "  server: CPU {per_op}, context switches {switches}, peak RSS {rss}, {per_conn}; kernel TCP memory peak {}; accept queue overflows {}",
        bytes(k.peak_tcp_memory_bytes as f64),
        count(k.listen_overflows)
    );
    let memory = match (
        k.loadgen_memory_per_connection_bytes,
        k.loadgen_rss_start_bytes,
        k.loadgen_peak_rss_bytes,
    ) {
        (None, None, None) => String::new(),
        (per_conn, start, peak) => format!(
            "; memory {}/connection (RSS {} before the load, {} at peak)",
            or_missing(per_conn, bytes),
            or_missing(start, |v| bytes(v as f64)),
            or_missing(peak, |v| bytes(v as f64))
        ),
    };
    let _ = writeln!(
        out,
        "  generator CPU {} of its cores; sampler {} of a core{memory}",
        percent(k.loadgen_cpu_share),
        percent(k.sampler_cpu_share)
    );
}

/// One line per slow-line population: its line, what the replies got out of it, the pages.
fn print_slow_line(out: &mut impl Write, r: &SlowLineRow) {
    let down = match r.downstream_bps.as_slice() {
        [(bps, _)] => line_rate(*bps),
        rates => rates
            .iter()
            .map(|(bps, share)| format!("{}({})", line_rate(*bps), percent(*share)))
            .collect::<Vec<_>>()
            .join("+"),
    };
    let low = match r.achieved_low_bytes_per_s {
        Some(LowEnd::P10(v)) => format!("p10 {}", whole(v)),
        Some(LowEnd::Min(v)) => format!("min {}", whole(v)),
        None => MISSING.into(),
    };
    let _ = writeln!(
        out,
        "  {:<12} line {down}/{} bit/s, RTT {} ms ({}): achieved p50 {} B/s ({low}) of {} \
         B/s payload; slowdown p50 {} p99 {}; pages {}/{} completed, {} lingering closes",
        "",
        line_rate(r.upstream_bps),
        compact(r.rtt_ms),
        r.rtt_mode,
        or_missing(r.achieved_p50_bytes_per_s, whole),
        whole(r.payload_bytes_per_s),
        or_missing(r.slowdown_p50, times),
        or_missing(r.slowdown_p99, times),
        count(r.pages_completed),
        count(r.pages_started),
        count(r.lingering_closes)
    );
    if r.retries_on_new_connection > 0 {
        let _ = writeln!(
            out,
            "  {:<12} {} requests sent again on a new connection: the server had closed the reused one",
            "",
            count(r.retries_on_new_connection)
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

/// A time in microseconds as `format::age_us` writes it, or the missing mark.
fn age(us: Option<f64>) -> String {
    or_missing(us, age_us)
}

/// The lines of one live-viewer population: what all its viewers saw, then each line rate,
/// then the CBR playout model. `name` heads the first line: the population's name when no
/// latency row was printed for it (viewers make no requests), else blank.
fn print_viewer(out: &mut impl Write, r: &ViewerRow, name: &str) {
    let _ = writeln!(
        out,
        "  {:<12} {} viewers on {} lines ({} {} at {} fps, {} a frame): fps p50 {} \
         (efficiency p50 {}); frame age p50 {} p99 {}; age of information p50 {}; skipped {} \
         ({} frames of {}); {} freezes ({} per viewer-minute); startup p50 {} p99 {}; \
         joins {}, leaves {}, kicks {}",
        name,
        compact(r.viewers),
        r.line,
        r.format,
        r.stream,
        fps(r.source_fps),
        bytes(r.frame_bytes as f64),
        or_missing(r.fps_p50, fps),
        or_missing(r.efficiency_p50, times),
        age(r.frame_age_p50_us),
        age(r.frame_age_p99_us),
        age(r.age_of_information_p50_us),
        or_missing(r.skip_rate, percent),
        count(r.frames_skipped),
        count(r.frames + r.frames_skipped),
        count(r.freezes),
        or_missing(r.freezes_per_viewer_minute, per_minute),
        age(r.startup_p50_us),
        age(r.startup_p99_us),
        count(r.joins),
        count(r.leaves),
        count(r.kicks)
    );
    for rate_row in &r.by_line_rate {
        let line = if rate_row.bps > 0.0 {
            line_rate(rate_row.bps)
        } else {
            "LAN".to_string()
        };
        let _ = writeln!(
            out,
            "  {:<12}   {line}: {} viewers, line-bound {} fps, fps p50 {} (efficiency {}), \
             frame age p50 {} p99 {}, age of information p50 {}, skipped {}, {} freezes",
            "",
            count(rate_row.viewers),
            fps(rate_row.line_bound_fps),
            or_missing(rate_row.fps_p50, fps),
            or_missing(rate_row.efficiency_p50, times),
            age(rate_row.frame_age_p50_us),
            age(rate_row.frame_age_p99_us),
            age(rate_row.age_of_information_p50_us),
            or_missing(rate_row.skip_rate, percent),
            count(rate_row.freezes)
        );
    }
    if let Some(o) = &r.playout {
        let _ = writeln!(
            out,
            "  {:<12}   CBR playout (start at {}, resume at {} of media): initial buffering p50 {} \
             p99 {}, {} never started, {} stalls, stall ratio p99 {}",
            "",
            seconds(o.start_s),
            seconds(o.resume_s),
            age(o.initial_buffering_p50_us),
            age(o.initial_buffering_p99_us),
            count(o.never_started),
            count(o.stalls),
            or_missing(o.stall_ratio_p99, percent)
        );
    }
}

/// The server's side of the live stream at one load point, and the web clients beside it.
fn print_live_server(out: &mut impl Write, view: &LiveView) {
    if let Some(s) = &view.server {
        let mark = or_missing(s.lowat_bytes, |b| bytes(b as f64));
        let _ = writeln!(
            out,
            "  live source: policy {}, unsent mark {mark}; {} frames published ({} late); \
             frames sent {}, skipped {}, dropped {}; kicks {} ({} at the fifo cap); dispatch \
             delay p99 <= {}, spread p99 <= {} (upper bounds of log2 buckets; the server's \
             counters over the point, warm-up included)",
            s.policy,
            count(s.frames_published),
            count(s.source_late),
            count(s.frames_sent),
            count(s.frames_skipped),
            count(s.frames_dropped),
            count(s.kicks),
            count(s.fifo_cap_kicks),
            age(s.dispatch_delay_p99_upper_us.map(|v| v as f64)),
            age(s.spread_p99_upper_us.map(|v| v as f64))
        );
        let _ = writeln!(
            out,
            "  live cost: unsent kernel bytes per viewer {} ({} viewers near the window's end), \
             server memory per connection {}, frames alive at most {}; server CPU {} per \
             delivered MB",
            or_missing(s.unsent_bytes_per_viewer, bytes),
            or_missing(s.viewers_now, count),
            or_missing(s.server_memory_per_connection_bytes, bytes),
            or_missing(s.frames_alive_peak, count),
            or_missing(s.cpu_s_per_delivered_mb, seconds)
        );
    }
    if !view.web_clients.is_empty() {
        let beside = view
            .web_clients
            .iter()
            .map(|w| format!("{} {} ms", w.population, or_missing(w.p99_us, ms)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "  beside the stream, web clients' p99: {beside}");
    }
}

/// Little's law on one population: measured concurrency against rate x time.
fn print_little(out: &mut impl Write, r: &LittleRow) {
    let connections = if r.connections_outlive_window {
        format!(
            "connections {} open, most outliving the window (no prediction to check)",
            mean_count(r.mean_open_connections)
        )
    } else {
        format!(
            "connections {} open vs {} predicted ({})",
            mean_count(r.mean_open_connections),
            mean_count(r.predicted_open_connections),
            or_missing(r.connections_ratio, times)
        )
    };
    let _ = writeln!(
        out,
        "  {:<12} Little's law: {connections}; requests in flight {} vs {} ({})",
        "",
        mean_count(r.mean_requests_in_flight),
        mean_count(r.predicted_requests_in_flight),
        or_missing(r.requests_ratio, times)
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
                    let _ = writeln!(
                        out,
                        "  {name:<12} {:<24} {:>10} {:>9} {:>9}",
                        point.label,
                        rate(c.ops_per_s),
                        or_missing(c.p50_us, ms),
                        or_missing(c.p99_us, ms)
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
/// went and what they cost. The p99 is of all populations pooled; the TIME_WAITs are each
/// point's own at their peak in its window.
fn print_point_table(result: &RunResult, out: &mut impl Write) {
    let _ = writeln!(
        out,
        "\n  {:<24} {:>10} {:>9} {:>12} {:>12} {:>12} {:>11}",
        "load point", "ops/s", "p99 ms", "TW server", "TW clients", "TW memory", "server µs/op"
    );
    for point in &result.load_points {
        let p99 = or_missing(prepare::pooled_latency(point), |l| ms(l.p99_us));
        let (tw_server, tw_client, tw_bytes, cpu) = match &point.kernel {
            Some(k) => {
                let peak = prepare::time_wait_peak(&k.summary);
                (
                    count(peak.server_side),
                    count(peak.client_side),
                    bytes(peak.bytes as f64),
                    or_missing(k.summary.server_cpu_us_per_op, cpu_us),
                )
            }
            None => (
                MISSING.into(),
                MISSING.into(),
                MISSING.into(),
                MISSING.into(),
            ),
        };
        let _ = writeln!(
            out,
            "  {:<24} {:>10} {:>9} {:>12} {:>12} {:>12} {:>11}",
            point.label,
            rate(point.totals.ops_per_s),
            p99,
            tw_server,
            tw_client,
            tw_bytes,
            cpu
        );
    }
}

/// The parts of a merged run (`loadgen merge`), one row each: where it ran, whether it was
/// valid, what it measured, how far its start was from its slot, what it cost its host; then
/// each part's directory. Nothing for a run that is not a merged one.
pub fn print_shards(result: &RunResult, out: &mut impl Write) {
    let rows = super::shards::rows(result);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "
shards: {} parts merged
  {:<12} {:<24} {:<8} {:>10} {:>7} {:>9} {:>8} {:>11} {:>11}  clock",
        rows.len(),
        "part",
        "host",
        "validity",
        "ops",
        "errors",
        "start ms",
        "gen CPU",
        "TW clients",
        "gen memory"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "  {:<12} {:<24} {:<8} {:>10} {:>7} {:>9} {:>8} {:>11} {:>11}  {}",
            r.part,
            r.host,
            r.validity,
            r.ops,
            r.errors,
            r.start_offset_ms,
            r.cpu,
            r.time_wait_client_side,
            r.rss,
            r.clock
        );
    }
    for r in &rows {
        let _ = writeln!(out, "  {:<12} {}", r.part, r.source);
    }
}

/// Writes the summary of `result` to `out` (the terminal, at the end of `loadgen run`). Write
/// errors are ignored: a closed terminal must not fail the run whose result is already saved.
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
            path.delayed_sources,
            compact(path.one_way_delay_ms),
            path.fast_sources,
            path.server_address
        );
        if let Some(line) = &path.delay_line {
            let _ = writeln!(
                out,
                "delay line: {} packets up, {} down ({}), {} dropped, deepest queue {} \
                 packets, relay CPU {} ({} µs/packet)",
                count(line.packets_up),
                count(line.packets_down),
                bytes((line.bytes_up + line.bytes_down) as f64),
                count(line.dropped),
                count(line.max_queue_packets),
                seconds(line.cpu_us as f64 / 1e6),
                cpu_us(line.cpu_us as f64 / (line.packets_up + line.packets_down).max(1) as f64)
            );
        }
    }
    for point in &result.load_points {
        let slow_lines = prepare::slow_line_rows(point);
        let little = prepare::little_rows(point);
        let live = prepare::live_view(point);
        let t = &point.totals;
        let _ = writeln!(
            out,
            "\n{}: {} s measured after {} s warm-up: {} ops, {} ops/s, {} Mbit/s, {} errors",
            point.label,
            window_s(point.measured_s),
            window_s(point.warmup_s),
            count(t.ops),
            rate(t.ops_per_s),
            rate(t.mbit_per_s),
            count(t.errors_total)
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
            let viewer_row = live
                .iter()
                .flat_map(|v| &v.viewers)
                .find(|r| r.population == population.name);
            // A viewer population makes no requests: its viewer line stands for the latency row.
            let viewer_only = viewer_row.is_some() && population.totals.ops == 0;
            if let (Some(r), true) = (viewer_row, viewer_only) {
                print_viewer(out, r, &population.name);
            } else {
                latency_row(
                    out,
                    &population.name,
                    "all",
                    population.totals.ops,
                    histogram_figures(&population.latency.total_us),
                );
                for class in &population.classes {
                    latency_row(
                        out,
                        "",
                        &class.class,
                        class.ops,
                        histogram_figures(&class.latency.total_us),
                    );
                }
            }
            if let Some(lag) = &population.schedule_lag_us {
                let _ = writeln!(
                    out,
                    "  {:<12} schedule lag p50 {} ms, p99 {} ms, max {} ms; {} arrivals waited for a slot",
                    "",
                    ms(lag.p50 as f64),
                    ms(lag.p99 as f64),
                    ms(lag.max as f64),
                    count(population.queued_arrivals)
                );
            }
            if !population.totals.errors.is_empty() {
                let errors = errors_by_kind(&population.totals.errors);
                let _ = writeln!(out, "  {:<12} errors: {errors}", "");
            }
            if population.retries_on_new_connection > 0 || population.unanswered > 0 {
                let _ = writeln!(
                    out,
                    "  {:<12} {} sent again on a new connection (the server had closed the kept one); \
                     {} unanswered when the point ended",
                    "",
                    count(population.retries_on_new_connection),
                    count(population.unanswered)
                );
            }
            if let Some(r) = slow_lines.iter().find(|r| r.population == population.name) {
                print_slow_line(out, r);
            }
            if let (Some(r), false) = (viewer_row, viewer_only) {
                print_viewer(out, r, "");
            }
            if let Some(r) = little.iter().find(|r| r.population == population.name) {
                print_little(out, r);
            }
        }
        if point.populations.len() > 1 {
            // Every request of the point in one histogram, as the HTML report's summary gives
            // it: not the worst population's figure.
            latency_row(
                out,
                "all pooled",
                "all",
                point.totals.ops,
                prepare::pooled_latency(point).as_ref().map(pooled_figures),
            );
        }
        if let Some(kernel) = &point.kernel {
            print_kernel(out, kernel);
        }
        if let Some(view) = &live {
            print_live_server(out, view);
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
            "{}server counted, warm-up included: {} requests, {} connections (peak so far {}), closes {}",
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
    print_shards(result, out);
    for warning in &result.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if !result.valid {
        for reason in &result.invalid_reasons {
            let _ = writeln!(out, "INVALID: {reason}");
        }
    }
}

/// The line printed as one run of `loadgen compare` ends: `round 2/3 nginx: 12.3k ops/s,
/// p99 1.20 ms, valid` (or what went wrong).
pub fn round_line(outcome: &RoundOutcome, rounds: u32, server: &str) -> String {
    let figure = |id: &str| outcome.values.get(id).copied();
    let state = match (&outcome.valid, &outcome.problem) {
        (Some(true), _) => "valid".to_string(),
        (_, Some(problem)) => format!("INVALID: {problem}"),
        (_, None) => "invalid".to_string(),
    };
    let figures = match figure("ops_per_s") {
        Some(ops) => format!(
            "{} ops/s, p99 {} ms, ",
            rate(ops),
            or_missing(figure("p99"), ms)
        ),
        None => String::new(),
    };
    format!(
        "round {}/{rounds} {server}: {figures}{state}",
        outcome.round
    )
}

/// A column of the text table of `loadgen compare`: metric id, heading, how a value is written.
type TextColumn = (&'static str, &'static str, fn(f64) -> String);

/// The columns of the text table of `loadgen compare`; the HTML report has every metric.
const COMPARED_IN_TEXT: [TextColumn; 7] = [
    ("ops_per_s", "ops/s", rate),
    ("p99", "p99 ms", ms),
    ("server_cpu_us_per_op", "CPU µs/op", cpu_us),
    ("server_ctx_switches_per_s", "ctx switches/s", rate),
    ("server_memory_per_connection", "mem/conn", bytes),
    ("peak_time_wait_server_side", "TW server", whole),
    ("errors", "errors", whole),
];

/// Columns added to that table when some server's runs had live viewers (kind `viewer`).
const VIEWER_COLUMNS_IN_TEXT: [TextColumn; 3] = [
    ("frame_age_p99", "frame age p99 ms", ms),
    ("viewer_fps_p50", "viewer fps p50", fps),
    ("viewer_skip_rate", "skip rate", percent),
];

/// The table printed at the end of `loadgen compare`: per server, its valid rounds and, per
/// metric, the median and the ratio to the first server (`×0.52 [0.48–0.57]`, the 95%
/// interval), then each server's problems.
pub fn print_comparison(comparison: &Comparison, out: &mut impl Write) {
    let baseline = comparison.servers.first().map_or("", |s| s.name.as_str());
    let _ = writeln!(
        out,
        "\n{}: {} servers, {} rounds; medians over valid rounds, ratios to {baseline} (95% interval)",
        comparison.scenario_name,
        comparison.servers.len(),
        comparison.rounds
    );
    let viewers = comparison
        .servers
        .iter()
        .any(|s| s.metrics.contains_key(VIEWER_COLUMNS_IN_TEXT[0].0));
    let columns: Vec<TextColumn> = COMPARED_IN_TEXT
        .into_iter()
        .chain(VIEWER_COLUMNS_IN_TEXT.into_iter().filter(|_| viewers))
        .collect();
    let _ = write!(out, "  {:<16} {:>6}", "server", "valid");
    for (_, heading, _) in &columns {
        let _ = write!(out, " {heading:>24}");
    }
    let _ = writeln!(out);
    for server in &comparison.servers {
        let _ = write!(
            out,
            "  {:<16} {:>6}",
            server.name,
            format!("{}/{}", server.valid_rounds(), server.rounds.len())
        );
        for (id, _, format) in &columns {
            let cell = match server.metrics.get(*id) {
                None => MISSING.to_string(),
                Some(stats) => {
                    let ratio = match &stats.ratio {
                        Some(r) => match (r.low, r.high) {
                            (Some(low), Some(high)) => format!(
                                " {}[{}–{}]",
                                times(r.ratio),
                                times(low).trim_start_matches('×'),
                                times(high).trim_start_matches('×')
                            ),
                            _ => format!(" {}", times(r.ratio)),
                        },
                        None => String::new(),
                    };
                    let mark = if stats.trusted { "" } else { "!" };
                    format!("{mark}{}{ratio}", format(stats.median))
                }
            };
            let _ = write!(out, " {cell:>24}");
        }
        let _ = writeln!(out);
    }
    for server in &comparison.servers {
        for problem in server.problems() {
            // The first line says what happened; the server's stderr that follows is in
            // comparison.json and the report.
            let first = problem.lines().next().unwrap_or_default();
            let _ = writeln!(out, "  {}: {first}", server.name);
        }
    }
    if comparison.rounds < 3 {
        let _ = writeln!(
            out,
            "  {} round(s): too few for useful intervals (none from 1, very wide from 2); \
             --repeat 5 narrows them",
            comparison.rounds
        );
    }
    if comparison
        .servers
        .iter()
        .any(|s| s.metrics.values().any(|m| !m.trusted))
    {
        let _ = writeln!(out, "  !: from invalid runs only");
    }
}

/// Prints the claims table of a `loadgen claims`: per claim its id, verdict, the figure then
/// and now, and the rule the verdict follows from; lines are wrapped at about 100 columns.
pub fn print_claims(report: &ClaimsReport, out: &mut impl Write) {
    let _ = writeln!(
        out,
        "\n{}{}: {} claims",
        report.name,
        if report.quick { " (--quick)" } else { "" },
        report.rows.len()
    );
    let _ = writeln!(out, "  1999: {}", report.hardware_then);
    let _ = writeln!(out, "  now:  {}", report.hardware_now);
    for row in &report.rows {
        let _ = writeln!(out, "\n{} [{}]", row.claim, row.verdict.words());
        for (label, text) in [
            ("then", row.then.as_str()),
            ("now", row.now.as_str()),
            ("from", row.basis.as_str()),
            ("rule", row.rule_words().as_str()),
        ] {
            for (index, line) in wrap(text, 92).into_iter().enumerate() {
                let head = if index == 0 { label } else { "" };
                let _ = writeln!(out, "  {head:<5} {line}");
            }
        }
    }
}

/// `text` cut into lines of at most `width` characters at spaces (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comparison::{MetricStats, ServerRows};
    use crate::model::KernelSummary;

    fn comparison_table(metrics: &[(&str, f64)]) -> String {
        let server = ServerRows {
            name: "loop".into(),
            metrics: metrics
                .iter()
                .map(|&(id, median)| {
                    let stats = MetricStats {
                        n: 3,
                        median,
                        trusted: true,
                        ..MetricStats::default()
                    };
                    (id.to_string(), stats)
                })
                .collect(),
            ..ServerRows::default()
        };
        let comparison = Comparison {
            scenario_name: "livecam1k".into(),
            rounds: 3,
            servers: vec![server],
            ..Comparison::default()
        };
        let mut out = Vec::new();
        print_comparison(&comparison, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_compare_table_has_viewer_columns_only_with_viewers() {
        let web = comparison_table(&[("ops_per_s", 1000.0), ("p99", 2_000.0)]);
        assert!(!web.contains("frame age p99"), "{web}");
        let live = comparison_table(&[
            ("ops_per_s", 1000.0),
            ("frame_age_p99", 3_400_000.0),
            ("viewer_fps_p50", 1.52),
            ("viewer_skip_rate", 0.6),
        ]);
        for heading in ["frame age p99 ms", "viewer fps p50", "skip rate"] {
            assert!(live.contains(heading), "{heading} not in {live}");
        }
        let row = live.lines().find(|l| l.starts_with("  loop")).unwrap();
        for cell in ["3400", "1.52", "60%"] {
            assert!(
                row.split_whitespace().any(|w| w == cell),
                "{cell} not in {row}"
            );
        }
    }

    fn server_line(summary: KernelSummary) -> String {
        let mut out = Vec::new();
        print_kernel(
            &mut out,
            &KernelAccounting {
                summary,
                ..KernelAccounting::default()
            },
        );
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .find(|line| line.starts_with("  server: "))
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_server_line_gives_context_switches_beside_the_cpu() {
        let line = server_line(KernelSummary {
            server_cpu_us_per_op: Some(12.5),
            server_ctx_switches_per_s: Some(15_234.4),
            server_ctx_switches_per_op: Some(1.27),
            ..KernelSummary::default()
        });
        assert!(
            line.contains("CPU 12.5 µs/op, context switches 15234/s (1.3/op), peak RSS"),
            "{line}"
        );
        let line = server_line(KernelSummary {
            server_ctx_switches_per_s: Some(40.0),
            server_ctx_switches_main_only: true,
            ..KernelSummary::default()
        });
        assert!(
            line.contains("context switches 40.0/s (–/op), main threads only: a lower bound,"),
            "{line}"
        );
        // Not measured (a server given by URL, or an older result).
        let line = server_line(KernelSummary::default());
        assert!(
            line.contains("CPU –, context switches –, peak RSS"),
            "{line}"
        );
    }
}
