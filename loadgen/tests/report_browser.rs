//! The report of a real run, opened in a real browser: a short run against the built-in server
//! (in-process, as `tests/run.rs` does), `reports::render::write_report`, then headless Chromium
//! dumps the DOM it built and takes a 1200 px wide screenshot. Asserts that every chart the run's
//! data calls for is in the DOM with data drawn in it, that the browser logged no console error,
//! and that the screenshot is a real picture.
//!
//! Needs Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it). Without it the
//! test prints a SKIPPED line saying what to install, so `cargo test` passes on a fresh machine;
//! CI sets `AFTERBURNER_REQUIRE_BROWSER=1`, and then a missing browser fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use loadgen::run::{run, RunPlan};
use loadgen::scenario::Overrides;
use reports::model::RunResult;

/// Debian's browser; `AFTERBURNER_CHROMIUM` names another (or a missing one, to try the
/// message below).
const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium_path() -> PathBuf {
    std::env::var_os("AFTERBURNER_CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from)
}
/// Chromium normally finishes in a few seconds; past this it is stuck, not slow.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

const SCENARIO: &str = r#"
name = "browser"
description = "a short run whose report a browser opens"
warmup = "1s"
duration = "2s"
verify_content = true

[server]
kind = "builtin"
args = ["--close", "server"]

[site]
kind = "specweb96"
dirs = 1

[[clients]]
name = "lan"
kind = "closed"
clients = 8
requests_per_connection = 1
"#;

/// A real run, written under `dir`; returns its result.
fn real_run(dir: &Path) -> RunResult {
    let scenario = dir.join("browser.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let mut plan = RunPlan::load(&scenario, &Overrides::default()).unwrap();
    plan.out = dir.join("out");
    plan.builtin_exe = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    plan.private_netns = false;
    plan.sample_interval = Duration::from_millis(250);
    let output = run(&plan).unwrap_or_else(|e| panic!("run failed: {e:#}"));
    assert!(
        output.result.load_points.iter().all(|p| p.totals.ops > 0),
        "the run completed no request"
    );
    output.result
}

/// The chart kinds the run's data calls for: what a reader must find on the page.
fn expected_charts(result: &RunResult) -> Vec<&'static str> {
    let mut kinds = vec![
        "throughput-ops",
        "throughput-mbit",
        "connections",
        "latency-time",
        "spectrum",
    ];
    let kernel = result.load_points[0].kernel.as_ref();
    if let Some(k) = kernel.filter(|k| k.samples.len() > 1) {
        kinds.extend(["time-wait", "socket-memory", "cpu"]);
        if k.samples.iter().any(|s| s.server_rss_bytes.is_some()) {
            kinds.push("server-memory");
        }
    }
    kinds
}

/// Runs chromium with `args`, killing it if it hangs.
fn chromium(args: &[String]) -> Output {
    let browser = chromium_path();
    let mut child = Command::new(&browser)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    // Read both pipes on threads, so a chatty browser never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).ok();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).ok();
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            panic!("chromium still running after {BROWSER_TIMEOUT:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Flags for a browser that touches nothing but the file it is given.
fn browser_args(profile: &Path, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend_from_slice(extra);
    args
}

/// Console errors and failed loads in chromium's log; its own D-Bus and GPU grumbles on a
/// machine without a desktop are not the page's.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("ERROR:CONSOLE")
                || l.contains(":CONSOLE(")
                || l.contains("Failed to load resource")
                || l.contains("net::ERR_")
        })
        .collect()
}

/// The `<figure class="chart" ...>...</figure>` blocks of the dumped DOM, by `data-chart`.
fn dom_figures(dom: &str) -> Vec<(String, &str)> {
    dom.split("<figure class=\"chart\"")
        .skip(1)
        .map(|s| {
            let body = &s[..s.find("</figure>").expect("unclosed figure")];
            let kind = body
                .split("data-chart=\"")
                .nth(1)
                .map(|k| k[..k.find('"').unwrap()].to_string())
                .unwrap_or_default();
            (kind, body)
        })
        .collect()
}

/// Data drawn in one chart: a data line of at least two vertices, or a bar.
fn has_data(figure: &str) -> bool {
    let lines = figure.split("<polyline class=\"series\"").skip(1).any(|s| {
        let points = s.split("points=\"").nth(1).unwrap_or("");
        points[..points.find('"').unwrap_or(0)]
            .split_whitespace()
            .count()
            >= 2
    });
    lines || figure.contains("<rect class=\"series\"")
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

#[test]
fn report_of_a_real_run_renders_in_a_browser() {
    let browser = chromium_path();
    if !browser.exists() {
        let message = format!(
            "{} is missing: the report browser test needs it. Install it with \
             `apt-get install chromium` (Debian); `.ci/run` does.",
            browser.display()
        );
        if std::env::var("AFTERBURNER_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{message} (AFTERBURNER_REQUIRE_BROWSER=1)");
        }
        eprintln!("SKIPPED: {message}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let result = real_run(tmp.path());
    let report = tmp.path().join("report.html");
    reports::render::write_report(&report, std::slice::from_ref(&result)).unwrap();
    let url = format!("file://{}", report.display());

    // The DOM as the browser built it.
    let dom_run = chromium(&browser_args(
        &tmp.path().join("profile-dom"),
        &[
            "--virtual-time-budget=2000".into(),
            "--dump-dom".into(),
            url.clone(),
        ],
    ));
    let dom = String::from_utf8_lossy(&dom_run.stdout);
    let log = String::from_utf8_lossy(&dom_run.stderr);
    assert!(
        dom_run.status.success(),
        "chromium --dump-dom failed: {log}"
    );
    assert!(dom.contains("<main>"), "no page in the dumped DOM: {log}");
    assert_eq!(console_errors(&log), Vec::<&str>::new(), "console errors");

    let figures = dom_figures(&dom);
    for kind in expected_charts(&result) {
        let of_kind: Vec<&str> = figures
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|f| f.1)
            .collect();
        assert!(
            !of_kind.is_empty(),
            "no {kind} chart in the page; charts: {:?}",
            figures.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        for figure in of_kind {
            assert!(figure.contains("<svg"), "{kind}: no svg");
            assert!(has_data(figure), "{kind}: no data drawn");
        }
    }
    for (kind, figure) in &figures {
        assert!(has_data(figure), "{kind}: an empty chart is on the page");
    }
    // What the reader sees first: validity and the summary.
    assert!(dom.contains("class=\"status"), "no validity status");
    assert!(dom.contains("id=\"summary\""));

    // A picture of the page at 1200 px.
    let shot = tmp.path().join("report.png");
    let shot_run = chromium(&browser_args(
        &tmp.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000".into(),
            "--virtual-time-budget=2000".into(),
            url,
        ],
    ));
    let log = String::from_utf8_lossy(&shot_run.stderr);
    assert!(
        shot_run.status.success(),
        "chromium --screenshot failed: {log}"
    );
    assert_eq!(console_errors(&log), Vec::<&str>::new(), "console errors");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot: {e}; {log}"));
    assert_eq!(png_size(&png), Some((1200, 3000)), "not a 1200x3000 PNG");
    // A blank 1200x3000 PNG compresses to a few KB; a page of charts and tables does not.
    assert!(
        png.len() > 50_000,
        "screenshot of {} bytes: blank?",
        png.len()
    );
    if let Some(keep) = std::env::var_os("AFTERBURNER_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&report, keep.join("report.html")).unwrap();
        std::fs::copy(&shot, keep.join("report.png")).unwrap();
    }
}

#[test]
fn console_error_lines_are_recognised() {
    let log = "[1:1:ERROR:dbus/object_proxy.cc:572] Failed to call method\n\
               [1:1:INFO:CONSOLE(3)] \"Uncaught ReferenceError: x is not defined\"\n";
    assert_eq!(console_errors(log).len(), 1);
    assert!(console_errors("[1:1:ERROR:dbus/bus.cc] no bus\n").is_empty());
}

#[test]
fn data_is_told_from_frames() {
    assert!(has_data(
        "<svg><polyline class=\"series\" fill=\"none\" points=\"1,2 3,4 \"></polyline></svg>"
    ));
    assert!(!has_data(
        "<svg><polyline fill=\"none\" stroke=\"#444444\" points=\"1,2 3,4 \"></polyline></svg>"
    ));
    assert!(!has_data(
        "<svg><polyline class=\"series\" points=\"1,2 \"></polyline></svg>"
    ));
}
