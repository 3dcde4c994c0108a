//! Whether a load point can be trusted: pure checks over its figures that give warnings (worth
//! reading) and reasons that make the measurement invalid (the generator, not the server, set
//! the pace; nothing or too little was answered). The run marks the result and exits 3 on an
//! invalid point. What the scenario expects comes in [`Rules`], from its `[validity]` table.

use std::time::Duration;

use reports::model::{KernelAccounting, LoadPoint, PopulationResult};

use crate::record::ErrorKind;
use crate::scenario::{Measures, Population, Scenario};

/// A side busier than this share of its cores may have set the pace.
pub const CPU_LIMIT: f64 = 0.90;
/// Open-loop schedule lag p99 above this is reported: requests left later than planned.
pub const SCHEDULE_LAG_P99_LIMIT_US: u64 = 1_000;
/// A viewer population's timer lag p99 above the larger of this and a tenth of the frame
/// period makes the point invalid: a reader that is late leaves frames unread, and the
/// server's `latest` policy then skips frames the line could have carried.
pub const VIEWER_LAG_P99_FLOOR_US: u64 = 10_000;
/// The server's skips and drops may differ from the viewers' gaps by one per viewer (a frame
/// under way when a viewer joined or the point ended) plus this share.
pub const SKIP_AGREEMENT_SHARE: f64 = 0.01;
/// A sampler above this share of one core is reported: it may have perturbed the run. Its
/// budget keeps it near 2 % on a loaded two-core machine; 5 % means something went wrong.
pub const SAMPLER_CPU_LIMIT: f64 = 0.05;
/// Little's law (L = λW) measured against predicted outside these bounds: the window was not a
/// steady state (a ramp-up inside it, or a point too short for its latencies).
pub const LITTLE_RATIO_BOUNDS: (f64, f64) = (0.8, 1.25);
/// Levels below this are too small for a ratio to mean anything.
const LITTLE_MIN_LEVEL: f64 = 1.0;

/// What the scenario expects of its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// More failed requests than this share of all makes a point invalid.
    pub max_error_share: f64,
    /// Which side is meant to be the limit.
    pub measures: Measures,
    /// The warm-up before each point's measured window.
    pub warmup: Duration,
    /// Per population by name, the time its users take to arrive (slow lines' `ramp_up`).
    pub ramp_ups: Vec<(String, Duration)>,
    /// The scenario's `request_timeout`: a reply not complete by then is a `timeout` error.
    pub request_timeout: Duration,
}

impl Rules {
    /// The rules of `scenario`.
    pub fn of(scenario: &Scenario) -> Rules {
        Rules {
            max_error_share: scenario.validity.max_error_share,
            measures: scenario.validity.measures,
            warmup: scenario.warmup,
            ramp_ups: scenario
                .clients
                .iter()
                .filter_map(|p| match p {
                    Population::Modem(spec) => Some((spec.name.clone(), spec.ramp_up)),
                    Population::Viewer(spec) => match spec.audience {
                        crate::scenario::Audience::Fixed { ramp_up, .. } if !ramp_up.is_zero() => {
                            Some((spec.name.clone(), ramp_up))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            request_timeout: scenario.request_timeout,
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_error_share: 0.02,
            measures: Measures::Server,
            warmup: Duration::ZERO,
            ramp_ups: Vec::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What the checks found about one load point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Worth reading, but the figures stand.
    pub warnings: Vec<String>,
    /// Why the figures cannot be trusted; empty for a valid point.
    pub invalid: Vec<String>,
}

/// Checks a finished load point against `rules`.
pub fn check_point(point: &LoadPoint, rules: &Rules) -> Verdict {
    let mut verdict = Verdict::default();
    if let Some(kernel) = &point.kernel {
        check_kernel(point, kernel, rules, &mut verdict);
    }
    check_answers(point, rules, &mut verdict);
    for population in &point.populations {
        check_population(&point.label, population, &mut verdict);
    }
    check_viewer_skips(point, &mut verdict);
    for (name, ramp_up) in &rules.ramp_ups {
        let ran = point.populations.iter().any(|p| &p.name == name);
        if ran && rules.warmup < *ramp_up {
            verdict.warnings.push(format!(
                "{}: the measured window begins {} into population {name}'s {} ramp-up: its \
                 users were still arriving (give --warmup {} or more)",
                point.label,
                afterburner::units::format_duration(rules.warmup),
                afterburner::units::format_duration(*ramp_up),
                afterburner::units::format_duration(*ramp_up),
            ));
        }
    }
    verdict
}

/// Who set the pace, and what the kernel dropped or the sampler cost.
fn check_kernel(point: &LoadPoint, kernel: &KernelAccounting, rules: &Rules, v: &mut Verdict) {
    let label = &point.label;
    let k = &kernel.summary;
    match rules.measures {
        Measures::Server if k.loadgen_cpu_share > CPU_LIMIT => v.invalid.push(format!(
            "{label}: the generator used {:.0} % of its CPUs: it, not the server, may have set \
             the pace (a comparison of generators says so with [validity] measures = \"generator\")",
            k.loadgen_cpu_share * 100.0
        )),
        Measures::Generator => {
            let window_ms = (point.warmup_s * 1000.0, (point.warmup_s + point.measured_s) * 1000.0);
            if let Some(share) = server_cpu_share(kernel, window_ms) {
                if share > CPU_LIMIT {
                    v.invalid.push(format!(
                        "{label}: the server used {:.0} % of its CPU: it, not the generator this \
                         scenario measures, may have set the pace",
                        share * 100.0
                    ));
                }
            }
        }
        Measures::Either => {
            if k.loadgen_cpu_share > CPU_LIMIT {
                v.warnings.push(format!(
                    "{label}: the generator used {:.0} % of its CPUs: the throughput may be the \
                     generator's; compare the server's CPU per operation",
                    k.loadgen_cpu_share * 100.0
                ));
            }
        }
        Measures::Server => {}
    }
    if k.time_wait_overflows > 0 {
        v.warnings.push(format!(
            "{label}: {} closes skipped TIME_WAIT (TCPTimeWaitOverflow): tcp_max_tw_buckets is too low",
            k.time_wait_overflows
        ));
    }
    if k.listen_drops > 0 || k.listen_overflows > 0 {
        v.warnings.push(format!(
            "{label}: the accept queue overflowed {} times and dropped {} connections",
            k.listen_overflows, k.listen_drops
        ));
    }
    if k.sampler_cpu_share > SAMPLER_CPU_LIMIT {
        v.warnings.push(format!(
            "{label}: the sampler used {:.1} % of a core",
            k.sampler_cpu_share * 100.0
        ));
    }
}

/// The server's share of one CPU between the samples bracketing the window (`ms` on the
/// samples' axis); `None` without its CPU times.
fn server_cpu_share(kernel: &KernelAccounting, (from_ms, to_ms): (f64, f64)) -> Option<f64> {
    let inside = |s: &&reports::model::KernelSample| {
        (s.elapsed_ms as f64) >= from_ms && (s.elapsed_ms as f64) <= to_ms
    };
    let first = kernel.samples.iter().find(inside)?;
    let last = kernel.samples.iter().rev().find(inside)?;
    let used_us = last.server_cpu_us?.checked_sub(first.server_cpu_us?)?;
    let span_ms = last
        .elapsed_ms
        .checked_sub(first.elapsed_ms)
        .filter(|&ms| ms > 0)?;
    Some(used_us as f64 / (span_ms as f64 * 1000.0))
}

/// Whether enough was answered: something, and few enough failures.
fn check_answers(point: &LoadPoint, rules: &Rules, v: &mut Verdict) {
    let label = &point.label;
    let totals = &point.totals;
    let unanswered: u64 = point.populations.iter().map(|p| p.unanswered).sum();
    let offered = point.populations.iter().any(|p| p.offered > 0.0);
    let timeouts = |kind: ErrorKind| totals.errors.get(kind.name()).copied().unwrap_or(0);
    let timed_out = timeouts(ErrorKind::Timeout) + timeouts(ErrorKind::ConnectTimeout);
    // A viewer's frames are its answers, and each viewer is one try: those that joined in the
    // window and those already watching when it opened (bounded by the most open at once).
    let (frames, joins) = point
        .populations
        .iter()
        .filter_map(|p| p.viewer.as_ref().map(|v| (p, v)))
        .fold((0, 0), |(f, j), (p, v)| {
            (f + v.frames, j + v.joins + p.peak_open_connections)
        });
    let nothing_answered = offered && point.measured_s > 0.0 && totals.ops == 0 && frames == 0;
    if nothing_answered && totals.errors_total > 0 && timed_out == totals.errors_total {
        // Only waits that ran out: the server took connections, or at least did not refuse
        // them, and never replied.
        v.invalid.push(format!(
            "{label}: no response in {:.1} s: {} requests timed out (request_timeout {}) and \
             {unanswered} were still unanswered at the end: the server under test never \
             answered (hung, deadlocked, or not an HTTP server)",
            point.measured_s,
            totals.errors_total,
            afterburner::units::format_duration(rules.request_timeout),
        ));
    } else if nothing_answered {
        let failed = if totals.errors_total > 0 {
            format!("{} failed: {}", totals.errors_total, errors_text(totals))
        } else {
            "none failed".to_string()
        };
        v.invalid.push(format!(
            "{label}: no request was answered successfully ({failed}; {unanswered} unanswered \
             at the end): the server is down, wrong, or not serving what the scenario asks for"
        ));
    } else if totals.errors_total > 0 {
        let tries = totals.ops + joins + totals.errors_total;
        let share = totals.errors_total as f64 / tries as f64;
        if share > rules.max_error_share {
            v.invalid.push(format!(
                "{label}: {:.1} % of the requests failed ({}), more than validity.max_error_share \
                 ({:.1} %)",
                share * 100.0,
                errors_text(totals),
                rules.max_error_share * 100.0
            ));
        }
    }
    if totals.errors_total > 0 {
        v.warnings.push(format!(
            "{label}: {} request errors ({})",
            totals.errors_total,
            errors_text(totals)
        ));
    }
}

fn errors_text(totals: &reports::model::Totals) -> String {
    totals
        .errors
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server's own count of frames it skipped or dropped for its viewers (`live` in its
/// `--stats`, this point's share) against the gaps the viewers saw over the whole point: they
/// must agree within one per viewer and [`SKIP_AGREEMENT_SHARE`], or one side miscounts (or
/// the stream had viewers this run did not make).
fn check_viewer_skips(point: &LoadPoint, v: &mut Verdict) {
    let Some(live) = point.server_stats.as_ref().and_then(|s| s.get("live")) else {
        return;
    };
    // MJPEG only: a CBR viewer's gaps are offset jumps, not the server's chunks.
    let viewers: Vec<&PopulationResult> = point
        .populations
        .iter()
        .filter(|p| p.viewer.as_ref().is_some_and(|v| v.format != "cbr"))
        .collect();
    if viewers.is_empty() {
        return;
    }
    let count = |key: &str| live.get(key).and_then(|n| n.as_u64()).unwrap_or(0);
    let server = count("frames_skipped") + count("frames_dropped");
    let figures = || viewers.iter().filter_map(|p| p.viewer.as_ref());
    let seen: u64 = figures().map(|f| f.lifetime_frames_skipped).sum();
    let received: u64 = figures().map(|f| f.lifetime_frames).sum();
    let viewer_count = viewers
        .iter()
        .map(|p| p.peak_open_connections)
        .sum::<u64>()
        .max(count("viewers_now"));
    // The widest gap one frame can carry: the source's fps over the slowest population's
    // median fps (a viewer that takes one frame in k skips k - 1).
    let gap_per_frame = figures()
        .filter(|f| f.fps_milli.count > 0 && f.fps_milli.p50 > 0)
        .map(|f| (f.source_fps * 1000.0 / f.fps_milli.p50 as f64).ceil() as u64)
        .max()
        .unwrap_or(1);
    if let Err(reason) = skips_agree(
        (server, count("frames_sent")),
        (seen, received),
        viewer_count,
        gap_per_frame,
    ) {
        v.invalid.push(format!("{}: {reason}", point.label));
    }
}

/// Whether the server's count of frames skipped or dropped for its viewers (`server`, with the
/// frames it sent) agrees with the gaps the viewers saw (`seen`, with the frames they
/// received). The server counts a skip when it dispatches a frame, a viewer when the frame
/// arrives, so frames the server sent that no viewer received (still on a line when the point
/// ended) carry gaps only the server counted; each carries at most `gap_per_frame`. Beyond
/// that they may differ by one per viewer (`viewers`: a frame under way when one joined or
/// left) and [`SKIP_AGREEMENT_SHARE`]. The error says both numbers.
pub fn skips_agree(
    (server, sent): (u64, u64),
    (seen, received): (u64, u64),
    viewers: u64,
    gap_per_frame: u64,
) -> Result<(), String> {
    let in_flight = sent.saturating_sub(received);
    let share = SKIP_AGREEMENT_SHARE * server.max(seen) as f64;
    let below = seen as f64 - server as f64 > viewers as f64 + share;
    let above = server as f64 - seen as f64 > (viewers + in_flight * gap_per_frame) as f64 + share;
    if below || above {
        return Err(format!(
            "the server counts {server} frames skipped or dropped for its viewers, the viewers \
             saw {seen} missing (sequence gaps): more apart than one per viewer ({viewers}), \
             {in_flight} frames still on their lines at {gap_per_frame} each and {:.0} %",
            SKIP_AGREEMENT_SHARE * 100.0
        ));
    }
    Ok(())
}

/// One population's lags, shortfalls, leftovers and Little's law.
fn check_population(label: &str, population: &PopulationResult, v: &mut Verdict) {
    let name = &population.name;
    if let (Some(lag), Some(viewer)) = (&population.schedule_lag_us, &population.viewer) {
        let period_us = if viewer.source_fps > 0.0 {
            (1e6 / viewer.source_fps) as u64
        } else {
            0
        };
        let limit = VIEWER_LAG_P99_FLOOR_US.max(period_us / 10);
        if lag.p99 > limit {
            v.invalid.push(format!(
                "{label}: population {name}: the viewers' timers ran {:.1} ms late at p99 (limit \
                 {:.1} ms, max(10 ms, a tenth of the frame period)): a late reader fakes skips",
                lag.p99 as f64 / 1000.0,
                limit as f64 / 1000.0
            ));
        }
    } else if let Some(lag) = &population.schedule_lag_us {
        if lag.p99 > SCHEDULE_LAG_P99_LIMIT_US {
            v.warnings.push(format!(
                "{label}: population {name}: schedule lag p99 {:.2} ms: requests left later than planned",
                lag.p99 as f64 / 1000.0
            ));
        }
    }
    if population.kind == "closed" {
        let asked = population.offered as u64;
        if population.peak_open_connections < asked {
            v.warnings.push(format!(
                "{label}: population {name}: at most {} connections open at once, {asked} asked",
                population.peak_open_connections
            ));
        }
    }
    if let Some(n) = population
        .totals
        .errors
        .get(ErrorKind::AddrNotAvailable.name())
    {
        v.warnings.push(format!(
            "{label}: population {name}: {n} connects failed with EADDRNOTAVAIL: the client ran out of ports"
        ));
    }
    // A closed loop's clients each have a request in flight whenever the point ends: expected,
    // counted in the result, and not worth a warning unless the population got no answer.
    let expected_in_flight = population.kind == "closed" && population.totals.ops > 0;
    if population.unanswered > 0 && !expected_in_flight {
        let counted = if population.kind == "open" {
            " (each one's wait so far is in its latency figures)"
        } else {
            ""
        };
        v.warnings.push(format!(
            "{label}: population {name}: {} requests were still unanswered when the point ended{counted}",
            population.unanswered
        ));
    }
    if let Some(c) = &population.concurrency {
        let checks = [
            (
                "requests in flight",
                c.mean_requests_in_flight,
                c.predicted_requests_in_flight,
            ),
            (
                "open connections",
                c.mean_open_connections,
                c.predicted_open_connections,
            ),
        ];
        for (what, measured, predicted) in checks {
            if measured < LITTLE_MIN_LEVEL || predicted < LITTLE_MIN_LEVEL {
                continue;
            }
            let ratio = measured / predicted;
            if ratio < LITTLE_RATIO_BOUNDS.0 || ratio > LITTLE_RATIO_BOUNDS.1 {
                v.warnings.push(format!(
                    "{label}: population {name}: Little's law does not hold for {what} \
                     ({measured:.1} measured, {predicted:.1} predicted, x{ratio:.2}): the window \
                     was not a steady state"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::model::{Concurrency, HistogramData, KernelSample};

    fn viewer_point(lag_p99_us: u64, seen: u64, server: serde_json::Value) -> LoadPoint {
        let mut p = point();
        p.populations.push(PopulationResult {
            name: "cam".into(),
            kind: "viewer".into(),
            offered: 2.0,
            peak_open_connections: 2,
            schedule_lag_us: Some(HistogramData {
                p99: lag_p99_us,
                ..HistogramData::default()
            }),
            viewer: Some(reports::model::ViewerFigures {
                source_fps: 10.0,
                frames: 80,
                joins: 2,
                lifetime_frames_skipped: seen,
                ..Default::default()
            }),
            ..PopulationResult::default()
        });
        p.server_stats = Some(server);
        p
    }

    #[test]
    fn a_lagging_viewer_population_is_invalid() {
        let live = serde_json::json!({"live": {"frames_skipped": 30, "frames_dropped": 0}});
        // 10 fps: a tenth of the period is 10 ms, the floor too.
        assert!(
            check_point(&viewer_point(9_000, 30, live.clone()), &Rules::default())
                .invalid
                .is_empty()
        );
        let verdict = check_point(&viewer_point(12_000, 30, live), &Rules::default());
        assert!(
            verdict
                .invalid
                .iter()
                .any(|r| r.contains("fakes skips") && r.contains("cam")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_viewer_only_point_is_answered_by_its_frames() {
        let live = serde_json::json!({"live": {"frames_skipped": 30, "frames_dropped": 0}});
        let mut p = viewer_point(100, 30, live);
        p.populations.remove(0);
        p.totals.ops = 0;
        assert_eq!(
            check_point(&p, &Rules::default()).invalid,
            Vec::<String>::new()
        );
        // One failed rejoin among two viewers watching is not 100 % of the tries.
        p.totals.errors_total = 1;
        p.totals.errors.insert("timeout".into(), 1);
        let lenient = Rules {
            max_error_share: 0.5,
            ..Rules::default()
        };
        assert_eq!(check_point(&p, &lenient).invalid, Vec::<String>::new());
        p.populations[0].viewer.as_mut().unwrap().frames = 0;
        let verdict = check_point(&p, &Rules::default());
        assert!(
            verdict
                .invalid
                .iter()
                .any(|r| r.contains("no response") || r.contains("no request was answered")),
            "{verdict:?}"
        );
    }

    #[test]
    fn skips_agree_once_the_frames_still_on_the_lines_are_allowed_for() {
        // Measured against the built-in server: a slow viewer saw 31 gaps in 7 frames, the
        // server counted 62 after sending 4 frames more than the viewers received; at ~1 fps
        // of 10 each carries up to 10.
        assert_eq!(skips_agree((62, 102), (31, 98), 2, 10), Ok(()));
        let error = skips_agree((62, 98), (31, 98), 2, 10).unwrap_err();
        assert!(
            error.contains("62") && error.contains("31 missing"),
            "{error}"
        );
        // The viewers never see more than the server made, beyond one each.
        assert_eq!(skips_agree((40, 100), (42, 100), 2, 10), Ok(()));
        assert!(skips_agree((40, 100), (45, 100), 2, 10).is_err());
    }

    #[test]
    fn viewers_and_server_must_agree_on_skips() {
        let live = |skipped: u64, dropped: u64| {
            serde_json::json!({"live": {"frames_skipped": skipped, "frames_dropped": dropped,
                                        "viewers_now": 0}})
        };
        // Two viewers: two apart (plus 1 % of 100) is within.
        assert!(
            check_point(&viewer_point(100, 100, live(90, 12)), &Rules::default())
                .invalid
                .is_empty()
        );
        let verdict = check_point(&viewer_point(100, 100, live(90, 20)), &Rules::default());
        assert!(
            verdict
                .invalid
                .iter()
                .any(|r| r.contains("110") && r.contains("100 missing")),
            "{verdict:?}"
        );
        // Without a live object in the server's stats there is nothing to hold them against.
        assert!(check_point(
            &viewer_point(100, 100, serde_json::json!({})),
            &Rules::default()
        )
        .invalid
        .is_empty());
    }

    fn point() -> LoadPoint {
        let mut point = LoadPoint {
            label: "full load".into(),
            kernel: Some(KernelAccounting::default()),
            measured_s: 10.0,
            populations: vec![PopulationResult {
                name: "lan".into(),
                kind: "closed".into(),
                offered: 50.0,
                peak_open_connections: 50,
                ..PopulationResult::default()
            }],
            ..LoadPoint::default()
        };
        point.totals.ops = 10_000;
        point
    }

    fn check(point: &LoadPoint) -> Verdict {
        check_point(point, &Rules::default())
    }

    #[test]
    fn a_quiet_point_is_valid_without_warnings() {
        assert_eq!(check(&point()), Verdict::default());
    }

    #[test]
    fn a_saturated_generator_makes_the_point_invalid() {
        let mut p = point();
        p.kernel.as_mut().unwrap().summary.loadgen_cpu_share = 0.95;
        let verdict = check(&p);
        assert_eq!(verdict.invalid.len(), 1, "{verdict:?}");
        assert!(verdict.invalid[0].contains("95 %"), "{verdict:?}");
        p.kernel.as_mut().unwrap().summary.loadgen_cpu_share = CPU_LIMIT;
        assert!(check(&p).invalid.is_empty());
    }

    #[test]
    fn a_generator_comparison_is_invalid_when_the_server_set_the_pace_instead() {
        let rules = Rules {
            measures: Measures::Generator,
            ..Rules::default()
        };
        let mut p = point();
        p.warmup_s = 1.0;
        let kernel = p.kernel.as_mut().unwrap();
        kernel.summary.loadgen_cpu_share = 0.99;
        let sample = |elapsed_ms, server_cpu_us| KernelSample {
            elapsed_ms,
            server_cpu_us: Some(server_cpu_us),
            ..KernelSample::default()
        };
        // The server used 40 % of its CPU over the window: the generator was the limit.
        kernel.samples = vec![sample(1_000, 0), sample(11_000, 4_000_000)];
        assert_eq!(check_point(&p, &rules), Verdict::default());
        // 95 %: the server was.
        kernel_samples(&mut p)[1].server_cpu_us = Some(9_500_000);
        let verdict = check_point(&p, &rules);
        assert_eq!(verdict.invalid.len(), 1, "{verdict:?}");
        assert!(
            verdict.invalid[0].contains("the server used 95 %"),
            "{verdict:?}"
        );
    }

    #[test]
    fn when_either_side_may_set_the_pace_a_saturated_generator_is_a_warning() {
        let rules = Rules {
            measures: Measures::Either,
            ..Rules::default()
        };
        let mut p = point();
        p.kernel.as_mut().unwrap().summary.loadgen_cpu_share = 0.97;
        let verdict = check_point(&p, &rules);
        assert!(verdict.invalid.is_empty(), "{verdict:?}");
        assert_eq!(verdict.warnings.len(), 1, "{verdict:?}");
        assert!(verdict.warnings[0].contains("97 %"), "{verdict:?}");
        p.kernel.as_mut().unwrap().summary.loadgen_cpu_share = 0.5;
        assert_eq!(check_point(&p, &rules), Verdict::default());
    }

    #[test]
    fn a_closed_loops_requests_in_flight_at_the_end_are_counted_not_warned() {
        let mut p = point();
        p.populations[0].totals.ops = 10_000;
        p.populations[0].unanswered = 50;
        assert!(check(&p).warnings.is_empty(), "{:?}", check(&p));
        p.populations[0].kind = "open".into();
        let verdict = check(&p);
        assert!(
            verdict.warnings[0].contains("50 requests were still unanswered"),
            "{verdict:?}"
        );
    }

    fn kernel_samples(point: &mut LoadPoint) -> &mut Vec<KernelSample> {
        &mut point.kernel.as_mut().unwrap().samples
    }

    #[test]
    fn a_point_where_every_request_timed_out_says_the_server_never_answered() {
        let mut p = point();
        p.totals.ops = 0;
        p.totals.errors_total = 16;
        p.totals.errors.insert("timeout".into(), 12);
        p.totals.errors.insert("connect_timeout".into(), 4);
        p.populations[0].unanswered = 4;
        let rules = Rules {
            request_timeout: Duration::from_millis(500),
            ..Rules::default()
        };
        let verdict = check_point(&p, &rules);
        assert_eq!(verdict.invalid.len(), 1, "{verdict:?}");
        assert!(
            verdict.invalid[0].starts_with(
                "full load: no response in 10.0 s: 16 requests timed out (request_timeout \
                 500ms) and 4 were still unanswered at the end"
            ),
            "{verdict:?}"
        );
        // A refused connection is another story: the server is not there at all.
        p.totals.errors.insert("refused".into(), 1);
        p.totals.errors_total = 17;
        let verdict = check_point(&p, &rules);
        assert!(
            verdict.invalid[0].contains("no request was answered successfully"),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_point_where_nothing_was_answered_is_invalid() {
        let mut p = point();
        p.totals.ops = 0;
        p.populations[0].unanswered = 60;
        let verdict = check(&p);
        assert_eq!(verdict.invalid.len(), 1, "{verdict:?}");
        assert!(
            verdict.invalid[0].contains("no request was answered"),
            "{verdict:?}"
        );
        assert!(verdict.invalid[0].contains("60 unanswered"), "{verdict:?}");
        assert!(verdict
            .warnings
            .iter()
            .any(|w| w.contains("60 requests were still unanswered")));
    }

    #[test]
    fn an_error_share_above_the_scenarios_limit_is_invalid() {
        let mut p = point();
        p.totals.errors_total = 300;
        p.totals.errors.insert("bad_status".into(), 300);
        // 300 of 10,300 is 2.9 %: over the 2 % default, under a scenario's 5 %.
        let verdict = check(&p);
        assert_eq!(verdict.invalid.len(), 1, "{verdict:?}");
        assert!(verdict.invalid[0].contains("2.9 % of the requests failed (bad_status 300)"));
        let lenient = Rules {
            max_error_share: 0.05,
            ..Rules::default()
        };
        assert!(check_point(&p, &lenient).invalid.is_empty());
    }

    #[test]
    fn kernel_drops_and_a_busy_sampler_are_warnings() {
        let mut p = point();
        let summary = &mut p.kernel.as_mut().unwrap().summary;
        summary.time_wait_overflows = 7;
        summary.listen_overflows = 2;
        summary.sampler_cpu_share = 0.08;
        let verdict = check(&p);
        assert!(verdict.invalid.is_empty());
        let text = verdict.warnings.join("\n");
        assert!(text.contains("7 closes skipped TIME_WAIT"), "{text}");
        assert!(text.contains("overflowed 2 times"), "{text}");
        assert!(text.contains("sampler used 8.0 %"), "{text}");
    }

    #[test]
    fn population_shortfalls_lag_and_port_exhaustion_are_warnings() {
        let mut p = point();
        p.populations[0].peak_open_connections = 40;
        p.populations[0]
            .totals
            .errors
            .insert("addr_not_available".into(), 12);
        p.populations.push(PopulationResult {
            name: "arrivals".into(),
            kind: "open".into(),
            schedule_lag_us: Some(HistogramData {
                p99: 2_500,
                ..HistogramData::default()
            }),
            ..PopulationResult::default()
        });
        p.totals.errors_total = 12;
        p.totals.errors.insert("addr_not_available".into(), 12);
        let text = check(&p).warnings.join("\n");
        assert!(
            text.contains("at most 40 connections open at once, 50 asked"),
            "{text}"
        );
        assert!(
            text.contains("12 connects failed with EADDRNOTAVAIL"),
            "{text}"
        );
        assert!(text.contains("schedule lag p99 2.50 ms"), "{text}");
        assert!(
            text.contains("12 request errors (addr_not_available 12)"),
            "{text}"
        );
    }

    #[test]
    fn a_window_inside_a_ramp_up_and_littles_law_off_are_flagged() {
        let mut p = point();
        p.populations[0].name = "dialup".into();
        p.populations[0].kind = "modem".into();
        p.populations[0].concurrency = Some(Concurrency {
            mean_requests_in_flight: 3_000.0,
            predicted_requests_in_flight: 1_800.0,
            mean_open_connections: 5_000.0,
            predicted_open_connections: 4_900.0,
            ..Concurrency::default()
        });
        let rules = Rules {
            warmup: Duration::from_secs(3),
            ramp_ups: vec![("dialup".into(), Duration::from_secs(10))],
            ..Rules::default()
        };
        let text = check_point(&p, &rules).warnings.join("\n");
        assert!(
            text.contains("begins 3s into population dialup's 10s ramp-up"),
            "{text}"
        );
        assert!(text.contains("give --warmup 10s or more"), "{text}");
        assert!(
            text.contains("Little's law does not hold for requests in flight"),
            "{text}"
        );
        assert!(text.contains("x1.67"), "{text}");
        assert!(
            !text.contains("open connections ("),
            "x1.02 is fine: {text}"
        );
    }
}
