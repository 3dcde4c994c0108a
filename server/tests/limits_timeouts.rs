//! Timeouts and limits: the header timeout (silent and slowloris connections), the keep-alive
//! idle timeout, the send-progress timeout, and `--max-conns` (backlog, then resume).

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::time::{Duration, Instant};
use support::*;

fn site() -> Site {
    let site = Site::new();
    site.file("a.txt", "alpha\n")
        .file("huge.bin", pattern_bytes(16 * MIB, 21))
        .file("big.bin", pattern_bytes(8 * MIB, 22));
    site
}

/// Bytes a server may send when it gives up on a request head: nothing, or a 408.
fn assert_nothing_or_408(bytes: &[u8]) {
    assert!(
        bytes.is_empty()
            || bytes.starts_with(b"HTTP/1.1 408")
            || bytes.starts_with(b"HTTP/1.0 408"),
        "unexpected bytes on a timed-out connection: {:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(100)])
    );
}

#[apply(designs)]
fn header_timeout_closes_a_silent_connection(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--header-timeout", "300ms"]);
    let mut c = server.connect();
    let opened = Instant::now();
    let (bytes, end) = c.read_until_closed(Duration::from_secs(4));
    let after = opened.elapsed();
    assert!(
        end.is_some(),
        "silent connection still open after {after:?}"
    );
    assert_nothing_or_408(&bytes);
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(3),
        "closed after {after:?}, expected about 300ms"
    );
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_eq!(stopped.stats().u(&["timeouts", "header"]), 1);
}

#[apply(designs)]
fn header_timeout_closes_a_slowloris_that_keeps_trickling(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--header-timeout", "500ms"]);
    let mut c = server.connect();
    let opened = Instant::now();
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
    // One byte every 50 ms, never the blank line: the deadline covers the whole head, so
    // trickling must not keep the connection alive.
    let closed_after = loop {
        let elapsed = opened.elapsed();
        assert!(
            elapsed < Duration::from_secs(4),
            "slowloris connection still open after {elapsed:?}"
        );
        if c.try_send(b"a").is_err() || !c.stays_silent(Duration::from_millis(50)) {
            break opened.elapsed();
        }
    };
    let (bytes, end) = c.read_until_closed(Duration::from_secs(2));
    assert!(end.is_some(), "connection not closed");
    assert_nothing_or_408(&bytes);
    assert!(
        closed_after >= Duration::from_millis(450) && closed_after < Duration::from_millis(2500),
        "slowloris closed after {closed_after:?}, expected about 500ms"
    );
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(stats.u(&["timeouts", "header"]), 1);
    assert_eq!(stats.u(&["requests_total"]), 0, "no request was completed");
}

#[apply(designs)]
fn keepalive_idle_timeout_closes_an_idle_connection(design: &str) {
    let site = site();
    let mut server = Server::start(
        design,
        &site,
        &["--keepalive-timeout", "300ms", "--header-timeout", "5s"],
    );
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.status, 200);
    let answered = Instant::now();
    assert_eq!(c.expect_closed(Duration::from_secs(4)), Closed::Eof);
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_secs(3),
        "idle connection closed after {idle:?}, expected about 300ms"
    );
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(stats.u(&["timeouts", "keepalive"]), 1);
    assert_eq!(stats.u(&["timeouts", "header"]), 0);
}

#[apply(designs)]
fn idle_keepalive_connection_outlives_a_shorter_header_timeout(design: &str) {
    let site = site();
    let server = Server::start(
        design,
        &site,
        &["--keepalive-timeout", "5s", "--header-timeout", "200ms"],
    );
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.status, 200);
    // Idle between requests is governed by the keep-alive timeout, not the header timeout.
    assert!(
        c.stays_silent(Duration::from_millis(700)),
        "idle keep-alive connection closed by the 200ms header timeout"
    );
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.body_text(), "alpha\n");
}

#[apply(designs)]
fn send_timeout_drops_a_client_that_stops_reading(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--send-timeout", "300ms"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 4096);
    // Keep-alive request: only the send timeout can end this connection.
    c.send(get11("/huge.bin", &[]));
    sleep_ms(1500);
    let (bytes, end) = c.read_until_closed(Duration::from_secs(5));
    assert!(
        end.is_some(),
        "a client that read nothing for 1.5s was not dropped by a 300ms send timeout \
         (received {} bytes)",
        bytes.len()
    );
    assert!(
        bytes.len() < 16 * MIB,
        "the whole 16 MiB arrived although the client stalled"
    );
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_eq!(stopped.stats().u(&["timeouts", "send"]), 1);
}

#[apply(designs)]
fn steady_slow_reader_is_not_cut_by_the_send_timeout(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--send-timeout", "300ms"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 64 * KIB);
    c.send(get11("/big.bin", &[]));
    // 64 KiB per read, 10 ms apart: the whole reply takes well over 300ms, but the client never
    // stops reading for more than 10 ms. (Linux wakes a blocked writer only once a third of its
    // send buffer, here ~4 MB, has drained, so a server that measures progress only by its own
    // write() calls sees ~300 ms gaps here; the contract counts the client's reading.)
    let started = Instant::now();
    let resp = c.slow_read_response(64 * KIB, Duration::from_millis(10), Duration::from_secs(8));
    let took = started.elapsed();
    assert!(
        resp.body == pattern_bytes(8 * MIB, 22),
        "8 MiB body corrupted"
    );
    assert!(
        took > Duration::from_millis(600),
        "read took only {took:?}; too fast to exercise the send timeout"
    );
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_eq!(stopped.stats().u(&["timeouts", "send"]), 0);
}

#[apply(designs)]
fn max_conns_holds_new_connections_in_the_backlog_until_one_closes(design: &str) {
    let site = site();
    // Two connections at most: `prefork` holds one per worker process, and `reactors` splits
    // --max-conns over its loops, each connection waiting in its own loop's backlog, so it runs
    // one loop here.
    let limit: &[&str] = match design {
        "prefork" => &["--workers", "2"],
        "reactors" => &["--max-conns", "2", "--workers", "1"],
        _ => &["--max-conns", "2"],
    };
    let mut server = Server::start(design, &site, limit);
    let mut c1 = server.connect();
    assert_eq!(c1.roundtrip(get11("/a.txt", &[])).status, 200);
    let mut c2 = server.connect();
    assert_eq!(c2.roundtrip(get11("/a.txt", &[])).status, 200);

    // The third connection completes its handshake in the kernel backlog (not refused)...
    let mut c3 = server.connect();
    c3.send(get11("/a.txt", &[]));
    // ...but is not served while two connections are open.
    assert!(
        c3.stays_silent(Duration::from_millis(600)),
        "third connection served (or closed) while --max-conns 2 were open"
    );
    // The two open ones still work.
    assert_eq!(c2.roundtrip(get11("/a.txt", &[])).status, 200);

    // One closes; the server resumes accepting by itself and serves the waiting one.
    drop(c1);
    let resp = c3
        .try_read_response(false, Duration::from_secs(3))
        .expect("third connection not served after a slot freed up");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "alpha\n");
    drop(c2);
    drop(c3);
    sleep_ms(100);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(stats.u(&["connections_accepted"]), 3);
    assert_eq!(stats.u(&["connections_peak"]), 2);
    // `accept_pauses` is not asserted: whether reaching --max-conns counts as a pause (or only
    // EMFILE/ENFILE back-off does) is not pinned down by the contract.
    assert_eq!(stats.u(&["requests_total"]), 4);
}

#[apply(designs)]
fn keepalive_timeout_counts_from_when_a_slow_client_has_the_whole_reply(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--keepalive-timeout", "1s"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 64 * KIB);
    c.send(get11("/big.bin", &[]));
    // The server hands its last bytes to the kernel long before this reader has them all (its
    // send buffer holds megabytes): a keep-alive timer counted from that last write would close
    // the connection under the client, which then needs a new connection (and leaves the
    // server a TIME_WAIT) for its next request.
    let started = Instant::now();
    // 64 KiB every 30 ms: about 4 s for the 8 MiB, several timeouts long. The timeout is 1 s,
    // not less, so that a loaded machine (the suite runs every design at once) does not turn
    // the client's 100 ms pause below into more than the timeout.
    let resp = c.slow_read_response(64 * KIB, Duration::from_millis(30), Duration::from_secs(15));
    assert!(
        resp.body == pattern_bytes(8 * MIB, 22),
        "8 MiB body corrupted"
    );
    assert!(
        started.elapsed() > Duration::from_millis(2500),
        "read took only {:?}; too fast to outlast the keep-alive timeout",
        started.elapsed()
    );
    // Idle for less than the timeout since the last byte arrived: the connection still serves.
    sleep_ms(100);
    let second = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(second.status, 200);
    assert_eq!(second.body_text(), "alpha\n");
    // And an idle connection still times out.
    c.expect_closed(Duration::from_secs(3));
    drop(c);
    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_eq!(stopped.stats().u(&["timeouts", "keepalive"]), 1);
}
