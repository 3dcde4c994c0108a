//! Kernel accounting end to end: the three close modes put their TIME_WAITs on the server, on
//! the clients and nowhere, as the sampler counts them through sock_diag, and those counts agree
//! with `ss` and with the server's own count of who closed first. TIME_WAITs are told apart by
//! when they began: those made before a point's sampler started are carried over, not the
//! point's, and those made after its window are its teardown's.
//!
//! Needs root for the private network namespace that makes the counts this run's alone; without
//! it the test says so and checks nothing (the per-port counts are covered by the sock_diag unit
//! tests, which need no privileges).

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use loadgen::netns::enter_private_netns;
use loadgen::os::is_root;
use loadgen::probe::accounting::{kernel_accounting, PointWindow};
use loadgen::probe::{Sampler, SamplerConfig, SlabSizes};
use loadgen::run::{run, RunOutput, RunPlan};
use loadgen::scenario::Overrides;
use reports::model::{IsolationMode, LoadPoint};

const SCENARIO: &str = r#"
warmup = "500ms"
duration = "2s"

[site]
kind = "specweb96"
dirs = 1

[[clients]]
name = "arrivals"
kind = "open"
rate = 1000
arrival = "uniform"
requests_per_connection = 1

[[variants]]
label = "close=server"
args = ["--close", "server"]

[[variants]]
label = "close=wait-client"
args = ["--close", "wait-client=500ms"]

[[variants]]
label = "close=reset"
args = ["--close", "reset"]
"#;

/// Runs `scenario` in a private namespace (as `loadgen run` does as root), results under `dir`.
fn run_in(scenario: &Path, dir: &Path) -> RunOutput {
    let mut plan = RunPlan::load(scenario, &Overrides::default()).unwrap();
    plan.out = dir.join("out");
    plan.builtin_exe = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    plan.private_netns = true;
    plan.sample_interval = Duration::from_millis(250);
    run(&plan).unwrap_or_else(|e| panic!("run failed: {e:#}"))
}

fn closes(point: &LoadPoint, side: &str) -> u64 {
    point.server_stats.as_ref().expect("server stats")["closes"][side]
        .as_u64()
        .expect("a count")
}

/// `counted` is `expected` give or take what the end of the run does: requests the generator
/// abandons when the load stops are still answered and closed by the server (so counted in its
/// closes) but end in an RST, not a TIME_WAIT, and the closes around the server's shutdown come
/// after the last sample. On a loaded machine the server lags, and more are abandoned: allow up
/// to 10 % fewer, and a few more.
fn assert_close_to(counted: u64, expected: u64, what: &str) {
    let slack = expected / 50 + 5;
    assert!(
        counted >= expected - expected / 10 && counted <= expected + slack,
        "{what}: counted {counted}, expected {expected} (-10 %, +{slack})"
    );
}

/// Counts TIME_WAIT sockets of `port` in the calling thread's network namespace with `ss`:
/// (server side, client side). None when `ss` is not installed.
fn ss_time_waits(port: u16) -> Option<(u64, u64)> {
    let output = Command::new("ss")
        .args(["-Htan", "state", "time-wait"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let suffix = format!(":{port}");
    let (mut server, mut client) = (0, 0);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Recv-Q Send-Q Local:Port Peer:Port (state omitted when filtered)
        let (Some(local), Some(peer)) = (fields.get(2), fields.get(3)) else {
            continue;
        };
        if local.ends_with(&suffix) {
            server += 1;
        } else if peer.ends_with(&suffix) {
            client += 1;
        }
    }
    Some((server, client))
}

#[test]
fn close_modes_put_time_waits_on_the_server_on_the_clients_and_nowhere() {
    if !is_root() {
        eprintln!("skipped: needs root for a private network namespace (run the tests as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("timewait.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let output = run_in(&scenario, tmp.path());
    let result = &output.result;
    assert_eq!(
        result.isolation.mode,
        IsolationMode::PrivateNetns,
        "as root the run must be isolated: {:?}",
        result.isolation
    );
    assert_eq!(result.load_points.len(), 3);
    let summary = |i: usize| {
        let point = &result.load_points[i];
        let kernel = point.kernel.as_ref().expect("kernel accounting");
        assert!(kernel.probe_errors.is_empty(), "{:?}", kernel.probe_errors);
        (point, kernel.summary.clone(), kernel.time_wait_object_bytes)
    };

    // close=server: every server-first close leaves a server-side TIME_WAIT, and the clients
    // hold at most the few simultaneous closes (the client closes once it has the whole body).
    let (point, k, object_bytes) = summary(0);
    let server_first = closes(point, "server_first");
    assert!(server_first > 2000, "server-first closes: {server_first}");
    assert_close_to(
        k.peak_time_wait_server_side,
        server_first,
        "server-side TIME_WAITs, close=server",
    );
    assert_eq!(
        k.peak_time_wait_server_side_bytes,
        k.peak_time_wait_server_side * object_bytes
    );
    assert!(k.peak_time_wait_client_side < server_first / 5, "{k:?}");
    assert!(k.time_wait_seconds_server_side > 0.0);

    // close=wait-client: the server waits for the client's FIN, so the clients hold them all.
    let (point, k, _) = summary(1);
    let client_first = closes(point, "client_first");
    assert!(client_first > 2000, "client-first closes: {client_first}");
    // The server closes first only when a client is slower than the linger period to close, or
    // at the server's shutdown: a handful at most on a loaded machine.
    assert!(closes(point, "server_first") <= client_first / 100 + 2);
    assert!(
        k.peak_time_wait_server_side <= client_first / 100 + 2,
        "{k:?}"
    );
    assert_close_to(
        k.peak_time_wait_client_side,
        client_first,
        "client-side TIME_WAITs, close=wait-client",
    );

    // close=reset: RST once the reply is acknowledged, no TIME_WAIT on either side.
    let (point, k, _) = summary(2);
    assert!(closes(point, "reset") > 2000);
    assert_eq!(k.peak_time_wait_server_side, 0, "{k:?}");
    assert_eq!(k.peak_time_wait_client_side, 0, "{k:?}");

    // Each variant has a server, a port and a namespace of its own: nothing is carried over,
    // and a variant's TIME_WAITs are its own or its teardown's.
    for i in 0..3 {
        let (_, k, _) = summary(i);
        assert_eq!(k.carried_over_time_wait_server_side, Some(0), "{k:?}");
        assert_eq!(k.carried_over_time_wait_client_side, Some(0), "{k:?}");
        let own = k.own_peak_time_wait_server_side.unwrap();
        let teardown = k.teardown_time_wait_server_side.unwrap();
        assert!(own <= k.peak_time_wait_server_side, "{k:?}");
        assert!(own + teardown >= k.peak_time_wait_server_side, "{k:?}");
    }
}

/// One connection to `listener`, closed first by the client or by the server; the other side
/// closes only after reading the FIN, so the close is never simultaneous.
fn one_connection(listener: &TcpListener, client_first: bool) {
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let mut byte = [0u8; 1];
    if client_first {
        drop(client);
        assert_eq!(server.read(&mut byte).unwrap(), 0);
    } else {
        drop(server);
        assert_eq!(client.read(&mut byte).unwrap(), 0);
    }
}

/// Sleeps until `at` (at once if it has passed).
fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// A load point played by hand on one port, through the sampler thread and the accounting as a
/// run uses them: TIME_WAITs made before the point's sampler started are reported as carried
/// over, not as the point's; those of its warm-up and window as its own; those made after its
/// window as its teardown's.
#[test]
fn time_waits_made_before_a_point_are_carried_over_not_its_own() {
    if !is_root() {
        eprintln!("skipped: needs root for a private network namespace (run the tests as root)");
        return;
    }
    std::thread::spawn(|| {
        let isolation = enter_private_netns().unwrap();
        assert_eq!(isolation.mode, IsolationMode::PrivateNetns, "{isolation:?}");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        // What an earlier point (or an earlier run) left on the port.
        for _ in 0..4 {
            one_connection(&listener, false);
        }
        one_connection(&listener, true);
        std::thread::sleep(Duration::from_millis(300));

        // The point: warm-up 0-0.4 s, window 0.4-1.6 s, then the teardown. Wide margins, for a
        // busy machine.
        let start = Instant::now();
        let (measure_from, measure_to) = (Duration::from_millis(400), Duration::from_millis(1600));
        let mut config = SamplerConfig::new(start);
        config.interval = Duration::from_millis(50);
        config.server_port = Some(listener.local_addr().unwrap().port());
        config.window_end = Some(start + measure_to);
        config.time_wait_max_core_share = f64::INFINITY; // every sample dumps
        config.slab = SlabSizes {
            tw_sock_tcp_bytes: 256,
            estimated: false,
            ..SlabSizes::fallback()
        };
        let sampler = Sampler::start(config);
        sleep_until(start + Duration::from_millis(100));
        for _ in 0..2 {
            one_connection(&listener, false); // warm-up: the point's own
        }
        sleep_until(start + Duration::from_millis(700));
        for _ in 0..3 {
            one_connection(&listener, false); // in the window
        }
        one_connection(&listener, true);
        sleep_until(start + Duration::from_millis(1800));
        for _ in 0..5 {
            one_connection(&listener, true); // the clients close after the window
        }
        sleep_until(start + Duration::from_millis(2100));
        let report = sampler.stop_report();
        assert!(report.errors.is_empty(), "{:?}", report.errors);

        let kernel = kernel_accounting(
            &report,
            &SlabSizes {
                tw_sock_tcp_bytes: 256,
                estimated: false,
                ..SlabSizes::fallback()
            },
            &PointWindow {
                measure_from_ms: measure_from.as_millis() as u64,
                measure_to_ms: measure_to.as_millis() as u64,
                ops: 0,
                peak_open_connections: 0,
                generator_cpus: 1,
                sample_interval_ms: 50,
            },
        );
        let k = &kernel.summary;
        let samples = &kernel.samples;
        // Carried over: the earlier TIME_WAITs, not the point's.
        assert_eq!(
            (
                k.carried_over_time_wait_server_side,
                k.carried_over_time_wait_client_side
            ),
            (Some(4), Some(1)),
            "{samples:#?}"
        );
        assert_eq!(samples[0].time_wait_server_side, 4, "{samples:#?}");
        assert_eq!(
            samples[0].time_wait_server_side_since_point_start,
            Some(0),
            "{samples:#?}"
        );
        // The point's own in its window: warm-up and window, not the teardown.
        assert_eq!(
            (
                k.own_peak_time_wait_server_side,
                k.own_peak_time_wait_client_side
            ),
            (Some(5), Some(1)),
            "{samples:#?}"
        );
        assert_eq!(k.own_peak_time_wait_server_side_bytes, Some(5 * 256));
        assert!(k.own_time_wait_seconds_server_side.unwrap() > 0.0);
        // The teardown's.
        assert_eq!(
            (
                k.teardown_time_wait_server_side,
                k.teardown_time_wait_client_side
            ),
            (Some(0), Some(5)),
            "{samples:#?}"
        );
        // Every origin together, as before.
        assert_eq!(
            (k.peak_time_wait_server_side, k.peak_time_wait_client_side),
            (9, 7),
            "{samples:#?}"
        );
    })
    .join()
    .unwrap();
}

/// A sweep's points share the server and its port: the second point inherits the TIME_WAITs
/// of the first, and reports them as carried over, not as its own.
#[test]
fn a_sweeps_second_point_reports_the_firsts_time_waits_as_carried_over() {
    if !is_root() {
        eprintln!("skipped: needs root for a private network namespace (run the tests as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("tw-sweep.toml");
    // One server closing first, two load points (50 % and 100 %); `sweep` is a top-level key,
    // so it goes before the first table.
    let single = SCENARIO.split("[[variants]]").next().unwrap();
    let sweep = single.replacen("\n[site]", "\nsweep = { points = 2 }\n\n[site]", 1)
        + "\n[server]\nkind = \"builtin\"\nargs = [\"--close\", \"server\"]\n";
    std::fs::write(&scenario, sweep).unwrap();
    let output = run_in(&scenario, tmp.path());
    let result = &output.result;
    assert_eq!(result.load_points.len(), 2);
    let kernel = |i: usize| {
        result.load_points[i]
            .kernel
            .clone()
            .expect("kernel accounting")
    };
    let (first, second) = (kernel(0), kernel(1));
    assert!(first.probe_errors.is_empty(), "{:?}", first.probe_errors);
    // The first point starts on a fresh port: nothing carried over.
    assert_eq!(first.summary.carried_over_time_wait_server_side, Some(0));
    // All it left on the port (its last sample, after its teardown) is still there: 60 s have
    // not passed.
    let left = first.samples.last().unwrap().time_wait_server_side;
    assert!(
        left > 500,
        "the first point left {left} server-side TIME_WAITs"
    );
    let k = &second.summary;
    let carried = k.carried_over_time_wait_server_side.unwrap();
    assert!(
        carried >= left - left / 50 && carried <= left + 20,
        "carried over {carried}, the first point left {left}"
    );
    // The second point's own are its own: at 100 % load it closes about twice what the first
    // did in the same time, and none of the first's are among them.
    let own = k.own_peak_time_wait_server_side.unwrap();
    assert!(own > left, "own {own}, the first point's {left}");
    assert!(
        own + carried <= k.peak_time_wait_server_side + 20,
        "own {own} + carried over {carried} > every origin {}",
        k.peak_time_wait_server_side
    );
    // The old figure mixed both: the first point's TIME_WAITs counted as the second's.
    assert!(k.peak_time_wait_server_side > own + carried / 2, "{k:?}");
}

/// The sampler's per-side counts agree with `ss` for the same namespace and port.
#[test]
fn time_wait_counts_agree_with_ss() {
    if !is_root() {
        eprintln!("skipped: needs root for a private network namespace (run the tests as root)");
        return;
    }
    if Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: `ss` is not installed (apt-get install iproute2)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("tw-ss.toml");
    let single = SCENARIO.split("[[variants]]").next().unwrap().to_string()
        + "\n[server]\nkind = \"builtin\"\nargs = [\"--close\", \"server\"]\n";
    std::fs::write(&scenario, single).unwrap();
    let output = run_in(&scenario, tmp.path());
    let result = &output.result;
    let port: u16 = result
        .server
        .address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let kernel = result.load_points[0].kernel.as_ref().unwrap();
    let last = kernel.samples.last().unwrap();
    // The run is over: nothing new can appear, and 60 s have not passed, so `ss` must see every
    // TIME_WAIT the last sample saw (plus the closes of the very end, after that sample).
    let (ss_server, ss_client) = ss_time_waits(port).expect("ss output");
    assert!(
        ss_server >= last.time_wait_server_side
            && ss_server <= last.time_wait_server_side + 50 + last.time_wait_server_side / 50,
        "ss {ss_server} vs sampler {}",
        last.time_wait_server_side
    );
    assert!(
        ss_client >= last.time_wait_client_side
            && ss_client <= last.time_wait_client_side + 50 + last.time_wait_client_side / 50,
        "ss {ss_client} vs sampler {}",
        last.time_wait_client_side
    );
}
