//! Kernel accounting end to end: the three close modes put their TIME_WAITs on the server, on
//! the clients and nowhere, as the sampler counts them through sock_diag, and those counts agree
//! with `ss` and with the server's own count of who closed first.
//!
//! Needs root for the private network namespace that makes the counts this run's alone; without
//! it the test says so and checks nothing (the per-port counts are covered by the sock_diag unit
//! tests, which need no privileges).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use loadgen::os::is_root;
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
