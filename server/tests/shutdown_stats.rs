//! SIGTERM/SIGINT: stop accepting, finish replies in flight within `--grace`, exit 0; the
//! `--stats` JSON written at exit agreeing exactly with the traffic the test sent; and SIGUSR1:
//! numbered snapshots of the same JSON while the server keeps serving.

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

fn site() -> Site {
    let site = Site::new();
    site.file("a.txt", "alpha\n")
        .file("b.html", "<b>bravo</b>\n")
        .file("huge.bin", pattern_bytes(16 * MIB, 41));
    site
}

/// After shutdown began, a new connection is refused or never answered.
fn assert_not_served_after_shutdown(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return; // refused: the listener is closed
    };
    let mut c = Client::from_stream(stream);
    let _ = c.try_send(get11("/a.txt", &[]));
    let (bytes, _) = c.read_until_closed(Duration::from_millis(700));
    assert!(
        bytes.is_empty(),
        "a connection made after SIGTERM was served: {:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(100)])
    );
}

#[apply(designs)]
fn sigterm_finishes_the_reply_in_flight_and_exits_0(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--grace", "4s"]);
    let mut c = server.connect();
    c.send(get11("/huge.bin", &["Connection: close"]));
    // Take a little, then stop reading: most of the 16 MiB is still in the server's hands.
    c.read_at_least(64 * KIB, IO_TIMEOUT);
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    sleep_ms(300);
    assert!(server.is_running(), "server exited with a reply in flight");
    assert_not_served_after_shutdown(server.port);

    let resp = c
        .try_read_response(false, Duration::from_secs(5))
        .expect("the reply in flight must complete after SIGTERM");
    assert_eq!(resp.status, 200);
    assert!(
        resp.body == pattern_bytes(16 * MIB, 41),
        "16 MiB body corrupted"
    );
    c.expect_closed(IO_TIMEOUT);

    let stopped = server.finish(signalled, Duration::from_secs(8));
    stopped.assert_exit_0();
    assert!(
        stopped.elapsed < Duration::from_secs(4),
        "exit took {:?} although the last reply finished long before the 4s grace",
        stopped.elapsed
    );
    let stats = stopped.stats();
    assert_eq!(stats.by_status(), statuses(&[(200, 1)]));
    assert_eq!(stats.u(&["connections_accepted"]), 1);
}

#[apply(designs)]
fn sigint_also_exits_0_and_writes_stats(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &[]);
    let resp = fetch(server.port, "/a.txt", &[]);
    assert_eq!(resp.status, 200);
    let stopped = server.stop_with(libc::SIGINT);
    stopped.assert_exit_0();
    assert_eq!(stopped.stats().u(&["requests_total"]), 1);
    // The listening line is the only thing the server ever prints on stdout.
    assert_eq!(
        stopped.stdout_rest, "",
        "unexpected stdout after the listening line"
    );
}

#[apply(designs)]
fn grace_period_bounds_shutdown_with_a_stalled_client(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--grace", "500ms"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 4096);
    c.send(get11("/huge.bin", &[]));
    c.read_at_least(1, IO_TIMEOUT);
    // The client never reads again; the server must give up after the grace period.
    let stopped = server.stop();
    stopped.assert_exit_0();
    assert!(
        stopped.elapsed < Duration::from_secs(3),
        "shutdown with --grace 500ms took {:?}",
        stopped.elapsed
    );
    let (bytes, end) = c.read_until_closed(Duration::from_secs(5));
    assert!(
        end.is_some(),
        "connection left open after the server exited"
    );
    assert!(bytes.len() < 16 * MIB, "stalled client got the whole body");
}

#[apply(designs)]
fn idle_keepalive_connections_do_not_delay_shutdown(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--grace", "5s"]);
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut c = server.connect();
        assert_eq!(c.roundtrip(get11("/a.txt", &[])).status, 200);
        idle.push(c);
    }
    let stopped = server.stop();
    stopped.assert_exit_0();
    assert!(
        stopped.elapsed < Duration::from_secs(2),
        "idle keep-alive connections held shutdown for {:?} (no reply was in flight)",
        stopped.elapsed
    );
    for c in &mut idle {
        c.expect_closed(IO_TIMEOUT);
    }
}

#[apply(designs)]
fn stats_json_counts_agree_exactly_with_the_traffic(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &[]);
    let port = server.port;
    let mut bytes = 0usize;

    // Each connection below is dropped once the server has closed it, so its slot is gone
    // before the next one opens and `connections_peak` is exact. The one error reply (405) comes
    // last: after an error the server may linger (FIN sent, waiting for ours) before freeing
    // the slot, which would otherwise race with the next connection.

    // A: keep-alive HTTP/1.1 with 200, 404, HEAD, then `Connection: close`.
    let mut a = server.connect();
    assert_eq!(a.roundtrip(get11("/a.txt", &[])).status, 200);
    assert_eq!(a.roundtrip(get11("/missing", &[])).status, 404);
    a.send(head11("/b.html", &[]));
    assert_eq!(a.read_head_response().status, 200);
    assert_eq!(
        a.roundtrip(get11("/b.html", &["Connection: close"])).status,
        200
    );
    a.expect_closed(IO_TIMEOUT);
    bytes += a.received;
    drop(a);

    // B: HTTP/1.0, closed by the server.
    let mut b = server.connect();
    assert_eq!(b.roundtrip(get10("/a.txt", &[])).status, 200);
    b.expect_closed(IO_TIMEOUT);
    bytes += b.received;
    drop(b);

    // D: a 404 that asks to close.
    let mut d = server.connect();
    assert_eq!(
        d.roundtrip(get11("/nope", &["Connection: close"])).status,
        404
    );
    d.expect_closed(IO_TIMEOUT);
    bytes += d.received;
    drop(d);

    // E and F: two at once (the peak), each closed by the server.
    let mut e = server.connect();
    let mut f = server.connect();
    assert_eq!(e.roundtrip(get11("/a.txt", &[])).status, 200);
    assert_eq!(f.roundtrip(get11("/a.txt", &[])).status, 200);
    assert_eq!(
        e.roundtrip(get11("/a.txt", &["Connection: close"])).status,
        200
    );
    assert_eq!(
        f.roundtrip(get11("/a.txt", &["Connection: close"])).status,
        200
    );
    e.expect_closed(IO_TIMEOUT);
    f.expect_closed(IO_TIMEOUT);
    bytes += e.received + f.received;
    drop((e, f));

    // G: the client closes an idle keep-alive connection first. shutdown() sends the FIN now;
    // a bare close() may not, while a server another test is spawning still holds a copy of
    // the descriptor (the child shares it until its exec). The server's answering close proves
    // it counted G client-first.
    let mut g = server.connect();
    assert_eq!(g.roundtrip(get11("/a.txt", &[])).status, 200);
    bytes += g.received;
    g.shutdown_write();
    g.expect_closed(IO_TIMEOUT);
    drop(g);

    // H: one more round trip (G and H together stay within the peak of 2).
    let mut h = Client::connect(port);
    assert_eq!(
        h.roundtrip(get11("/b.html", &["Connection: close"])).status,
        200
    );
    h.expect_closed(IO_TIMEOUT);
    bytes += h.received;
    drop(h);

    // C: a method that is not allowed; the server closes.
    let mut c = server.connect();
    let resp = c.roundtrip(request("DELETE", "/a.txt", "HTTP/1.1", true, &[]));
    assert_eq!(resp.status, 405);
    c.expect_closed(IO_TIMEOUT);
    bytes += c.received;
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(
        stats.by_status(),
        statuses(&[(200, 10), (404, 2), (405, 1)]),
        "requests_by_status in {stats:?}"
    );
    assert_eq!(stats.u(&["requests_total"]), 13);
    assert_eq!(
        stats.u(&["response_bytes"]),
        bytes as u64,
        "response_bytes must equal the header+body bytes the clients received"
    );
    assert_eq!(stats.u(&["connections_accepted"]), 8);
    if design == "reactors" {
        // Each loop counts its own peak and the stats add them: an upper bound of the peak.
        let peak = stats.u(&["connections_peak"]);
        assert!((2..=4).contains(&peak), "reactors' summed peak {peak}");
    } else {
        assert_eq!(stats.u(&["connections_peak"]), 2);
    }
    assert_eq!(stats.u(&["closes", "client_first"]), 1, "G");
    assert_eq!(
        stats.u(&["closes", "server_first"]),
        7,
        "A, B, D, E, F, H, C"
    );
    assert_eq!(stats.u(&["closes", "reset"]), 0);
    for kind in ["header", "keepalive", "send", "wait_client"] {
        assert_eq!(stats.u(&["timeouts", kind]), 0, "timeouts.{kind}");
    }
    assert_eq!(stats.u(&["accept_pauses"]), 0);
    assert_eq!(stats.alternates_total(), 0, "no reftab, no alternates");
}

#[apply(designs)]
fn sigusr1_writes_numbered_snapshots_and_the_server_keeps_serving(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &[]);
    let port = server.port;
    for _ in 0..3 {
        assert_eq!(fetch(port, "/a.txt", &[]).status, 200);
    }
    assert_eq!(fetch(port, "/missing", &[]).status, 404);

    let first = server.snapshot(1);
    assert_eq!(first.0["final"], false, "{first:?}");
    assert_eq!(first.by_status(), statuses(&[(200, 3), (404, 1)]));
    assert_eq!(first.u(&["requests_total"]), 4);
    assert_eq!(first.u(&["connections_accepted"]), 4);
    assert!(server.is_running(), "SIGUSR1 stopped the server");

    for _ in 0..2 {
        assert_eq!(fetch(port, "/b.html", &[]).status, 200);
    }
    let second = server.snapshot(2);
    assert_eq!(second.0["final"], false, "{second:?}");
    assert_eq!(second.by_status(), statuses(&[(200, 5), (404, 1)]));
    assert_eq!(second.u(&["requests_total"]), 6);
    assert_eq!(second.u(&["connections_accepted"]), 6);
    assert!(
        second.u(&["response_bytes"]) > first.u(&["response_bytes"]),
        "{first:?} then {second:?}"
    );

    // Still serving after two snapshots; the write at exit takes the next number.
    assert_eq!(fetch(port, "/a.txt", &[]).status, 200);
    let stopped = server.stop();
    stopped.assert_exit_0();
    let last = stopped.stats();
    assert_eq!(last.u(&["snapshot"]), 3);
    assert_eq!(last.0["final"], true, "{last:?}");
    assert_eq!(last.u(&["requests_total"]), 7);
    assert_eq!(stopped.stdout_rest, "", "snapshots print nothing on stdout");
}

#[apply(designs)]
fn sigusr1_without_stats_is_ignored(design: &str) {
    let site = site();
    let mut server = Server::start_with_stats(design, &site, &[], false);
    assert_eq!(fetch(server.port, "/a.txt", &[]).status, 200);
    server.signal(libc::SIGUSR1);
    server.signal(libc::SIGUSR1);
    assert_eq!(fetch(server.port, "/a.txt", &[]).status, 200);
    assert!(
        server.is_running(),
        "SIGUSR1 without --stats stopped the server"
    );
    assert!(!site.stats_path().exists(), "a stats file appeared");
    server.stop().assert_exit_0();
    assert!(!site.stats_path().exists(), "a stats file appeared at exit");
}
