//! The live-viewer section of the reports (issue 17): a hand-made viewer population with the
//! numbers a reader needs (fps against the line, frame age, age of information, skips,
//! freezes, startup, by line rate), the server's `live` counters and what the stream cost,
//! in the text summary and the HTML page alike; the comparison metrics; and results from
//! before live viewers, which load and render without the section.

mod common;

use common::{exact_histogram, load_point, run_result, Rng};
use reports::model::*;
use reports::prepare::{self, log2_quantile_upper_us, run_summary, skip_rate};
use reports::render::render_run;
use reports::render::text::print_summary;

/// A modem viewer population of 9,000 on two line rates. Every value is below 2048 or one
/// less than a multiple of its HDR bucket's unit, so the percentiles come back exact:
/// - fps p50 1.52 (1 519 thousandths), efficiency p50 x0.96;
/// - frame age p50 1.20 s (1 200 127 µs), p99 3.40 s (3 401 727 µs);
/// - age of information p50 1.50 s (1 499 135 µs); startup p50 800 ms (800 255 µs), p99
///   2.50 s (2 500 607 µs);
/// - 1 000 frames, 1 500 skipped (60 %); 45 freezes over 5 400 viewer-seconds (0.50 per
///   viewer-minute); 10 MB received.
fn modem_viewers() -> PopulationResult {
    let age = exact_histogram(&[(1_200_127, 60), (2_200_063, 30), (3_401_727, 10)]);
    PopulationResult {
        name: "cam-modem".into(),
        kind: "viewer".into(),
        offered: 9_000.0,
        viewer: Some(ViewerFigures {
            stream: "/cam.mjpg".into(),
            format: "mjpeg".into(),
            source_fps: 4.0,
            frame_bytes: 3_072,
            line: "modem".into(),
            joins: 9_000,
            leaves: 12,
            kicks: 3,
            frames: 1_000,
            bytes: 10_000_000,
            frames_skipped: 1_500,
            lifetime_frames_skipped: 1_800,
            lifetime_frames: 1_200,
            freezes: 45,
            freeze_ms: 90_000,
            viewer_seconds: 5_400.0,
            startup_us: exact_histogram(&[(800_255, 90), (2_500_607, 10)]),
            frame_age_us: age.clone(),
            age_of_information_us: exact_histogram(&[(1_499_135, 100)]),
            fps_milli: exact_histogram(&[(1_039, 20), (1_519, 80)]),
            efficiency_milli: exact_histogram(&[(960, 100)]),
            playout: None,
            by_line_rate: vec![
                // Given fastest first: the report puts the slowest line first.
                ViewerRateFigures {
                    bps: 53_300.0,
                    viewers: 8_100,
                    line_bound_fps: 1.92,
                    frames: 750,
                    frames_skipped: 750,
                    freezes: 5,
                    frame_age_us: exact_histogram(&[(1_200_127, 100)]),
                    age_of_information_us: exact_histogram(&[(1_499_135, 100)]),
                    fps_milli: exact_histogram(&[(1_519, 100)]),
                    efficiency_milli: exact_histogram(&[(990, 100)]),
                },
                ViewerRateFigures {
                    bps: 28_800.0,
                    viewers: 900,
                    line_bound_fps: 1.04,
                    frames: 250,
                    frames_skipped: 750,
                    freezes: 40,
                    frame_age_us: exact_histogram(&[(2_200_063, 50), (3_401_727, 50)]),
                    age_of_information_us: exact_histogram(&[(1_999_871, 100)]),
                    fps_milli: exact_histogram(&[(1_000, 100)]),
                    efficiency_milli: exact_histogram(&[(962, 100)]),
                },
            ],
        }),
        ..Default::default()
    }
}

/// The server's `--stats` with a `live` object: dispatch delays 100 in [1024, 2048) µs and one
/// in [16384, 32768) (p99 in the first: bound 2048 µs), spreads all in [16384, 32768) (bound
/// 32 768 µs); 9,000 viewers with 3 KiB unsent each at the end.
fn live_stats() -> serde_json::Value {
    let mut dispatch = vec![0u64; 24];
    dispatch[10] = 100;
    dispatch[14] = 1;
    let mut spread = vec![0u64; 24];
    spread[14] = 240;
    serde_json::json!({
        "requests_total": 5000,
        "live": {
            "path": "/cam.mjpg", "format": "mjpeg", "policy": "latest", "fps": 4.0,
            "frame_bytes": 3072, "lowat_bytes": 4096,
            "frames_published": 240, "source_late": 2, "viewers_joined": 9000,
            "frames_sent": 1200, "bytes_sent": 3_900_000, "frames_skipped": 1800,
            "frames_dropped": 0, "kicks": 3, "fifo_cap_kicks": 0,
            "dispatch_delay_log2_us": dispatch, "spread_log2_us": spread,
            "viewers_now": 9000, "queue_bytes_now": 0, "unsent_bytes_now": 27_648_000u64,
            "unacked_bytes_now": 1_000_000, "frames_alive_now": 1, "frames_alive_peak": 2
        }
    })
}

/// A run whose one point has the three web populations of the synthetic runs, the modem
/// viewers, the server's live counters, and kernel samples in which the server used 5 s of
/// CPU over the 10 s window.
fn live_run() -> RunResult {
    let mut rng = Rng::new(17);
    let mut point = load_point(&mut rng, 12, 2, 1.0, 2_000);
    let mut viewers = modem_viewers();
    // Modem-line viewers also carry the line's figures, as the generator writes them.
    viewers.line = Some(common::modem_line());
    point.populations.push(viewers);
    // 12 one-second intervals: 9,000 viewers from the third on, each receiving 1.5 frames and
    // skipping 2.5 a second; frame ages p50 1.2 s, p99 3.4 s; nothing yet in the first two.
    let ramp = |i: usize, v: u64| if i < 2 { 0 } else { v };
    point.timeline.populations.push(PopulationTimeline {
        name: "cam-modem".into(),
        ops: vec![0; 12],
        bytes: vec![0; 12],
        errors: vec![0; 12],
        open_connections: (0..12).map(|i| ramp(i, 9_000)).collect(),
        frames: (0..12).map(|i| ramp(i, 13_500)).collect(),
        frames_skipped: (0..12).map(|i| ramp(i, 22_500)).collect(),
        frame_age_p50_us: (0..12).map(|i| ramp(i, 1_200_000)).collect(),
        frame_age_p99_us: (0..12).map(|i| ramp(i, 3_400_000)).collect(),
        ..Default::default()
    });
    point.server_stats = Some(live_stats());
    let kernel = point.kernel.as_mut().unwrap();
    kernel.samples = [(0, 0), (2_000, 1_000_000), (12_000, 6_000_000)]
        .into_iter()
        .map(|(elapsed_ms, cpu_us)| KernelSample {
            elapsed_ms,
            server_cpu_us: Some(cpu_us),
            ..KernelSample::default()
        })
        .collect();
    kernel.summary.server_memory_per_connection_bytes = Some(1_536.0);
    run_result(vec![point])
}

fn summary(result: &RunResult) -> String {
    let mut out = Vec::new();
    print_summary(result, &mut out);
    String::from_utf8(out).unwrap()
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle} in\n{text}"))
}

#[test]
fn the_viewer_rows_hold_the_numbers_a_reader_needs() {
    let result = live_run();
    let view = prepare::live_view(&result.load_points[0]).unwrap();
    let [r] = view.viewers.as_slice() else {
        panic!("one viewer population, got {:?}", view.viewers);
    };
    assert_eq!(r.fps_p50, Some(1.519));
    assert_eq!(r.efficiency_p50, Some(0.96));
    assert_eq!(r.frame_age_p50_us, Some(1_200_127.0));
    assert_eq!(r.frame_age_p99_us, Some(3_401_727.0));
    assert_eq!(r.age_of_information_p50_us, Some(1_499_135.0));
    assert_eq!(r.skip_rate, Some(0.6));
    assert_eq!(r.freezes_per_viewer_minute, Some(0.5));
    assert_eq!(r.startup_p50_us, Some(800_255.0));
    assert_eq!(r.startup_p99_us, Some(2_500_607.0));
    // Slowest line first.
    let rates: Vec<f64> = r.by_line_rate.iter().map(|k| k.bps).collect();
    assert_eq!(rates, [28_800.0, 53_300.0]);
    assert_eq!(r.by_line_rate[0].skip_rate, Some(0.75));
    assert_eq!(r.by_line_rate[0].efficiency_p50, Some(0.962));
    let s = view.server.as_ref().unwrap();
    assert_eq!(s.policy, "latest");
    assert_eq!(s.lowat_bytes, Some(4_096));
    assert_eq!(s.dispatch_delay_p99_upper_us, Some(2_048));
    assert_eq!(s.spread_p99_upper_us, Some(32_768));
    assert_eq!(s.unsent_bytes_per_viewer, Some(3_072.0));
    // 5 s of server CPU over 10 MB the viewers received.
    assert_eq!(s.cpu_s_per_delivered_mb, Some(0.5));
    let web: Vec<&str> = view
        .web_clients
        .iter()
        .map(|w| w.population.as_str())
        .collect();
    assert_eq!(web, ["lan", "modem", "arrivals"]);
    assert!(view.web_clients.iter().all(|w| w.p99_us.is_some()));
}

#[test]
fn log2_buckets_give_the_upper_bound_of_the_quantiles_bucket() {
    assert_eq!(log2_quantile_upper_us(&[0; 24], 0.99), None);
    // Bucket 0 holds delays below 2 µs.
    assert_eq!(log2_quantile_upper_us(&[5], 0.99), Some(2));
    // 99 in bucket 3, 1 in bucket 20: the p99 (rank 99 of 100) is in bucket 3.
    let mut b = [0u64; 24];
    b[3] = 99;
    b[20] = 1;
    assert_eq!(log2_quantile_upper_us(&b, 0.99), Some(16));
    // One more in bucket 20 moves the rank-100 of 101 there.
    b[20] = 2;
    assert_eq!(log2_quantile_upper_us(&b, 0.99), Some(1 << 21));
    assert_eq!(skip_rate(0, 0), None);
    assert_eq!(skip_rate(3, 1), Some(0.25));
}

#[test]
fn the_text_summary_has_the_viewer_lines() {
    let text = summary(&live_run());
    let all = line_with(&text, "viewers on modem lines");
    for expected in [
        "9k viewers on modem lines (mjpeg /cam.mjpg at 4.00 fps, 3.00 KiB a frame)",
        "fps p50 1.52 (efficiency p50 ×0.96)",
        "frame age p50 1.20 s p99 3.40 s",
        "age of information p50 1.50 s",
        "skipped 60% (1500 frames of 2500)",
        "45 freezes (0.50 per viewer-minute)",
        "startup p50 800 ms p99 2.50 s",
        "joins 9000, leaves 12, kicks 3",
    ] {
        assert!(all.contains(expected), "{expected} not in\n{all}");
    }
    let slow = line_with(&text, "28.8k: 900 viewers");
    assert!(
        slow.contains("line-bound 1.04 fps, fps p50 1.00 (efficiency ×0.96)"),
        "{slow}"
    );
    assert!(slow.contains("skipped 75%, 40 freezes"), "{slow}");
    let source = line_with(&text, "live source:");
    for expected in [
        "policy latest, unsent mark 4.00 KiB",
        "240 frames published (2 late)",
        "frames sent 1200, skipped 1800, dropped 0",
        "kicks 3 (0 at the fifo cap)",
        "dispatch delay p99 <= 2.05 ms, spread p99 <= 32.8 ms",
    ] {
        assert!(source.contains(expected), "{expected} not in\n{source}");
    }
    let cost = line_with(&text, "live cost:");
    for expected in [
        "unsent kernel bytes per viewer 3.00 KiB (9000 viewers near the window's end)",
        "server memory per connection 1.50 KiB",
        "frames alive at most 2",
        "server CPU 500 ms per delivered MB",
    ] {
        assert!(cost.contains(expected), "{expected} not in\n{cost}");
    }
    // Their line has no replies or pages to show: no slow-line line for them.
    assert!(!text.contains("pages 1200/1234"), "{text}");
    let beside = line_with(&text, "beside the stream, web clients' p99:");
    assert!(
        beside.contains("lan ") && beside.contains("arrivals "),
        "{beside}"
    );
    assert!(!beside.contains("cam-modem"), "{beside}");
}

#[test]
fn the_html_page_has_the_viewer_section() {
    let html = render_run(&live_run());
    assert!(html.contains("<h3>Live viewers</h3>"));
    let table = html
        .split("<table class=\"viewers\">")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    for expected in [
        "<td>cam-modem</td>",
        "<td class=\"num\">1.52</td>",
        "<td class=\"num\">×0.96</td>",
        "<td class=\"num\">1.20 s</td>",
        "<td class=\"num\">3.40 s</td>",
        "<td class=\"num\">1.50 s</td>",
        "<td class=\"num\">60%</td>",
        "<td class=\"num\">0.50</td>",
        "<td class=\"num\">800 ms</td>",
        "<td class=\"num\">9000 / 12 / 3</td>",
        "<td class=\"sub\">28.8k</td>",
        "<td class=\"num\">1.04</td>",
        "<td class=\"num\">75%</td>",
    ] {
        assert!(table.contains(expected), "{expected} not in\n{table}");
    }
    // The slowest line's row comes before the fastest's.
    assert!(table.find("28.8k").unwrap() < table.find("53.3k").unwrap());
    let server = html
        .split("<table class=\"live-server\">")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    for expected in [
        "latest, unsent mark (TCP_NOTSENT_LOWAT) 4.00 KiB",
        "≤ 2.05 ms",
        "≤ 32.8 ms",
        "3.00 KiB (9000 viewers near the window's end)",
        "500 ms",
    ] {
        assert!(server.contains(expected), "{expected} not in\n{server}");
    }
    assert!(html.contains("Beside the stream, the web clients' p99:"));
    assert!(html.contains("viewer (live stream)"));
    let kinds = common::chart_kinds(&html);
    for kind in ["frame-age", "viewer-fps"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} chart in {kinds:?}"
        );
    }
    assert!(html.contains("frame age at receipt (s)"));
}

#[test]
fn the_timeline_has_frame_age_and_fps_per_viewer() {
    let view = prepare::timeline_view(&live_run().load_points[0]).unwrap();
    let names: Vec<&str> = view.frame_age_us.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cam-modem p50", "cam-modem p99"]);
    // Intervals without a frame have no age.
    assert_eq!(view.frame_age_us[1].points.len(), 10);
    assert_eq!(view.frame_age_us[1].points[0], (3.0, 3_400_000.0));
    assert!(view.frame_age_us[1].thick);
    let [received, skipped] = view.viewer_fps.as_slice() else {
        panic!("{:?}", view.viewer_fps);
    };
    assert_eq!(received.name, "cam-modem received");
    assert!(received.points.iter().all(|&(_, fps)| fps == 1.5));
    assert!(skipped.points.iter().all(|&(_, fps)| fps == 2.5));
    assert_eq!(received.points.len(), 10);
    // A run without viewers draws neither.
    let mut rng = Rng::new(3);
    let web = prepare::timeline_view(&load_point(&mut rng, 12, 2, 1.0, 200)).unwrap();
    assert!(web.frame_age_us.is_empty() && web.viewer_fps.is_empty());
}

#[test]
fn the_comparison_metrics_have_the_viewers_figures_only_where_there_are_viewers() {
    let live = run_summary(&live_run());
    assert_eq!(live.viewer_frame_age_p99_us, Some(3_401_727.0));
    assert_eq!(live.viewer_fps_p50, Some(1.519));
    assert_eq!(live.viewer_skip_rate, Some(0.6));
    let mut rng = Rng::new(17);
    let web_only = run_summary(&run_result(vec![load_point(&mut rng, 12, 2, 1.0, 500)]));
    assert_eq!(web_only.viewer_frame_age_p99_us, None);
    assert_eq!(web_only.viewer_fps_p50, None);
    assert_eq!(web_only.viewer_skip_rate, None);
    let rows = prepare::comparison_rows(&[live.clone(), live]);
    let row = |id: &str| rows.iter().find(|r| r.metric.id == id).unwrap();
    assert_eq!(row("frame_age_p99").metric.better, prepare::Better::Lower);
    assert_eq!(row("viewer_fps_p50").metric.better, prepare::Better::Higher);
    assert_eq!(row("viewer_skip_rate").ratios, [Some(1.0), Some(1.0)]);
    let rows = prepare::comparison_rows(&[web_only]);
    assert!(rows
        .iter()
        .all(|r| !r.metric.id.contains("viewer") && r.metric.id != "frame_age_p99"));
}

#[test]
fn a_result_from_before_live_viewers_loads_and_renders_without_the_section() {
    let mut rng = Rng::new(17);
    let old = run_result(vec![load_point(&mut rng, 12, 2, 1.0, 500)]);
    let mut json = serde_json::to_value(&old).unwrap();
    // Written before the fields existed: no `viewer`, no viewer timeline series.
    for point in json["load_points"].as_array_mut().unwrap() {
        for p in point["populations"].as_array_mut().unwrap() {
            assert!(p.as_object_mut().unwrap().remove("viewer").is_some());
        }
        for t in point["timeline"]["populations"].as_array_mut().unwrap() {
            let t = t.as_object_mut().unwrap();
            for key in [
                "frames",
                "frames_skipped",
                "frame_age_p99_us",
                "viewer_kicks",
            ] {
                assert!(t.remove(key).is_some(), "{key}");
            }
        }
    }
    let loaded: RunResult = serde_json::from_value(json).unwrap();
    assert_eq!(loaded, old);
    assert!(prepare::live_view(&loaded.load_points[0]).is_none());
    let text = summary(&loaded);
    for absent in [
        "viewers on",
        "live source:",
        "live cost:",
        "beside the stream",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    let html = render_run(&loaded);
    assert!(!html.contains("Live viewers"));
}

#[test]
fn a_point_without_viewers_beside_an_unwatched_stream_has_no_section() {
    // The `no-stream` variant: the server still publishes, nobody joins.
    let mut result = live_run();
    let point = &mut result.load_points[0];
    point.populations.retain(|p| p.viewer.is_none());
    let joined = |point: &mut LoadPoint, n: u64| {
        point.server_stats.as_mut().unwrap()["live"]["viewers_joined"] = n.into();
    };
    joined(point, 0);
    assert!(prepare::live_view(point).is_none());
    // One viewer joined: the server's side is shown even without viewer figures.
    joined(point, 1);
    let view = prepare::live_view(point).unwrap();
    assert!(view.viewers.is_empty() && view.server.is_some());
}

/// `cargo test -p reports --test viewers -- --ignored --nocapture` prints the text section;
/// with `VIEWERS_HTML=FILE` it also writes the HTML page there, to look at in a browser.
#[test]
#[ignore = "prints the section for a reader to look at"]
fn print_the_section() {
    print!("{}", summary(&live_run()));
    if let Some(path) = std::env::var_os("VIEWERS_HTML") {
        std::fs::write(path, render_run(&live_run())).unwrap();
    }
}

#[test]
fn a_cbr_population_shows_its_playout_figures() {
    let mut result = live_run();
    let point = &mut result.load_points[0];
    let viewer = point
        .populations
        .last_mut()
        .unwrap()
        .viewer
        .as_mut()
        .unwrap();
    viewer.format = "cbr".into();
    // Initial buffering p50 2.20 s, p99 4.00 s; stall ratio p99 3.0 %.
    viewer.playout = Some(PlayoutFigures {
        start_s: 2.0,
        resume_s: 1.0,
        initial_buffering_us: exact_histogram(&[(2_200_063, 90), (4_001_791, 10)]),
        never_started: 1,
        stalls: 4,
        stall_ratio_milli: exact_histogram(&[(0, 90), (30, 10)]),
    });
    let text = summary(&result);
    let playout = line_with(&text, "CBR playout");
    assert!(
        playout.contains(
            "CBR playout (start at 2.00 s, resume at 1.00 s of media): initial buffering p50 \
             2.20 s p99 4.00 s, 1 never started, 4 stalls, stall ratio p99 3.0%"
        ),
        "{playout}"
    );
    let html = render_run(&result);
    assert!(
        html.contains(
            "initial buffering p50 2.20 s, p99 4.00 s; 1 never started; 4 stalls; stall ratio \
             p99 3.0%"
        ),
        "no playout note"
    );
}
