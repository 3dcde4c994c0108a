//! The four `--close` modes and who ends in TIME_WAIT for the test's own 4-tuple (read from
//! /proc/net/tcp): `server` (server holds it), `wait-client` (client holds it, or the server after
//! the deadline), `pause` (the client if it closes within the pause, else the server, even while
//! the client is still receiving), `reset` (nobody; the body still arrives whole); plus the
//! `closes` counters.

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::time::{Duration, Instant};
use support::*;

const FILE_LEN: usize = 64 * KIB;

fn site() -> Site {
    let site = Site::new();
    site.file("f.bin", pattern_bytes(FILE_LEN, 11))
        .file("big.bin", pattern_bytes(MIB, 12));
    site
}

/// Asserts the closes counters are exactly (client_first, server_first, reset).
fn assert_closes(stats: &Stats, client_first: u64, server_first: u64, reset: u64) {
    let got = (
        stats.u(&["closes", "client_first"]),
        stats.u(&["closes", "server_first"]),
        stats.u(&["closes", "reset"]),
    );
    assert_eq!(
        got,
        (client_first, server_first, reset),
        "closes (client_first, server_first, reset) in {stats:?}"
    );
}

/// Connections the server closed by any timer.
fn timeouts_total(stats: &Stats) -> u64 {
    ["header", "keepalive", "send", "wait_client"]
        .iter()
        .map(|timer| stats.u(&["timeouts", timer]))
        .sum()
}

/// (client port, server port) of a connection, for looking both sides up in /proc.
fn ports(c: &Client) -> (u16, u16) {
    (c.local_port(), c.peer_port())
}

fn assert_server_holds_time_wait(client_port: u16, server_port: u16) {
    assert!(
        wait_time_wait(server_port, client_port, Duration::from_secs(3)),
        "server side {server_port}->{client_port} not in TIME_WAIT; states: server {:?}, client {:?}",
        tcp_states(server_port, client_port),
        tcp_states(client_port, server_port)
    );
    assert!(
        !in_time_wait(client_port, server_port),
        "client side {client_port}->{server_port} must not be in TIME_WAIT too"
    );
}

fn assert_client_holds_time_wait(client_port: u16, server_port: u16) {
    assert!(
        wait_time_wait(client_port, server_port, Duration::from_secs(3)),
        "client side {client_port}->{server_port} not in TIME_WAIT; states: client {:?}, server {:?} \
         (client in FIN_WAIT2 = 5 means the server never closed after the client's FIN)",
        tcp_states(client_port, server_port),
        tcp_states(server_port, client_port)
    );
    assert!(
        !in_time_wait(server_port, client_port),
        "server side {server_port}->{client_port} must not be in TIME_WAIT too"
    );
}

fn server_mode_case(design: &str, extra: &[&str]) {
    let site = site();
    let mut server = Server::start(design, &site, extra);
    let mut c = server.connect();
    let (cp, sp) = ports(&c);
    let resp = c.roundtrip(get11("/f.bin", &["Connection: close"]));
    assert!(resp.body == pattern_bytes(FILE_LEN, 11));
    // The server closes right after the last byte; only then does the client close.
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
    drop(c);
    assert_server_holds_time_wait(cp, sp);

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_closes(&stopped.stats(), 0, 1, 0);
}

#[apply(designs)]
fn server_mode_is_the_default_and_the_server_holds_time_wait(design: &str) {
    server_mode_case(design, &[]);
}

#[apply(designs)]
fn explicit_server_mode_the_server_holds_time_wait(design: &str) {
    server_mode_case(design, &["--close", "server"]);
}

#[apply(designs)]
fn wait_client_the_client_closes_first_and_holds_time_wait(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "wait-client=5s"]);
    let mut c = server.connect();
    let (cp, sp) = ports(&c);
    let resp = c.roundtrip(get10("/f.bin", &[]));
    assert_eq!(resp.status, 200);
    assert!(resp.body == pattern_bytes(FILE_LEN, 11));
    // The server waits for us: no FIN after the reply.
    assert!(
        c.stays_silent(Duration::from_millis(300)),
        "wait-client must not close before the client does"
    );
    drop(c);
    assert_client_holds_time_wait(cp, sp);
    // The server closed its side when our FIN arrived (no CLOSE_WAIT left behind).
    let left = wait_gone(sp, cp, Duration::from_secs(3));
    assert!(
        left.is_empty(),
        "server socket still present: states {left:?}"
    );

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_closes(&stats, 1, 0, 0);
    assert_eq!(stats.u(&["timeouts", "wait_client"]), 0);
}

#[apply(designs)]
fn wait_client_deadline_makes_the_server_close_first(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "wait-client=300ms"]);
    let mut c = server.connect();
    let (cp, sp) = ports(&c);
    let sent = Instant::now();
    let resp = c.roundtrip(get10("/f.bin", &[]));
    assert!(resp.body == pattern_bytes(FILE_LEN, 11));
    // A client that never closes: the server does, 300 ms after its send queue drained.
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(280),
        "server closed after {waited:?}, before the 300ms wait-client deadline"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?}"
    );
    drop(c);
    assert_server_holds_time_wait(cp, sp);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_closes(&stats, 0, 1, 0);
    assert_eq!(stats.u(&["timeouts", "wait_client"]), 1);
}

#[apply(designs)]
fn wait_client_default_deadline_is_500ms(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &["--close", "wait-client"]);
    let mut c = server.connect();
    let sent = Instant::now();
    let resp = c.roundtrip(get10("/f.bin", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(480) && waited < Duration::from_secs(3),
        "default wait-client deadline should be 500ms, server closed after {waited:?}"
    );
}

/// The reason wait-client measures from the drained send queue: a slow client that needs longer
/// than the deadline to read the reply still gets to close first.
#[apply(designs)]
fn wait_client_slow_reader_still_closes_first(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "wait-client=300ms"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 4096);
    let (cp, sp) = ports(&c);
    c.send(get10("/big.bin", &[]));
    let started = Instant::now();
    let resp = c.slow_read_response(4096, Duration::from_millis(4), Duration::from_secs(8));
    let took = started.elapsed();
    assert!(resp.body == pattern_bytes(MIB, 12), "1 MiB body corrupted");
    assert!(
        took > Duration::from_millis(400),
        "the slow read took only {took:?}; it must outlast the 300ms deadline to mean anything"
    );
    assert!(
        c.stays_silent(Duration::from_millis(50)),
        "the server closed first although the slow reader was still reading {took:?} after the \
         reply was queued"
    );
    drop(c);
    assert_client_holds_time_wait(cp, sp);

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_closes(&stopped.stats(), 1, 0, 0);
}

#[apply(designs)]
fn pause_closes_after_the_pause_even_if_the_client_stays(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "pause=300ms"]);
    let mut c = server.connect();
    let (cp, sp) = ports(&c);
    let sent = Instant::now();
    let resp = c.roundtrip(get10("/f.bin", &[]));
    assert_eq!(resp.status, 200);
    assert!(resp.body == pattern_bytes(FILE_LEN, 11), "body corrupted");
    // A client that has the whole reply and never closes: the server does, after the pause.
    assert_eq!(c.expect_closed(Duration::from_secs(5)), Closed::Eof);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "server closed after {waited:?}, before the 300ms pause"
    );
    drop(c);
    assert_server_holds_time_wait(cp, sp);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_closes(&stats, 0, 1, 0);
    // The end of a pause is the mode's close, not a timeout.
    assert_eq!(stats.u(&["timeouts", "wait_client"]), 0);
    assert_eq!(stats.u(&["timeouts", "send"]), 0);
}

#[apply(designs)]
fn pause_counts_a_client_fin_during_the_pause_as_client_first(design: &str) {
    let site = site();
    // A pause far longer than the test needs: the FIN surely arrives inside it.
    let mut server = Server::start(design, &site, &["--close", "pause=10s"]);
    let mut c = server.connect();
    let (cp, sp) = ports(&c);
    let resp = c.roundtrip(get10("/f.bin", &[]));
    assert_eq!(resp.status, 200);
    assert!(resp.body == pattern_bytes(FILE_LEN, 11), "body corrupted");
    let closed = Instant::now();
    drop(c);
    assert_client_holds_time_wait(cp, sp);
    // The server closed its side on our FIN, long before its pause would have ended.
    let left = wait_gone(sp, cp, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "server socket still present {:?} after our FIN: states {left:?}",
        closed.elapsed()
    );

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_closes(&stats, 1, 0, 0);
    assert_eq!(timeouts_total(&stats), 0, "timeouts in {stats:?}");
}

/// What `pause` is for: unlike `wait-client` (see `wait_client_slow_reader_still_closes_first`),
/// it does not wait for a slow client to have the reply. The client here takes nothing for
/// well over the pause, as a modem would still be receiving: the server closes anyway, with its
/// reply still in the send queue (FIN_WAIT1), the reply still arrives whole before the FIN, and
/// the server holds the TIME_WAIT.
#[apply(designs)]
fn pause_does_not_wait_for_a_slow_client_the_server_holds_time_wait(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "pause=300ms"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 4096);
    let (cp, sp) = ports(&c);
    let sent = Instant::now();
    c.send(get10("/f.bin", &[]));
    // Read nothing: the 64 KiB reply waits in the server's send queue, our window closed.
    let deadline = sent + Duration::from_secs(5);
    let states = loop {
        let states = tcp_states(sp, cp);
        if states.contains(&TCP_FIN_WAIT1) || Instant::now() >= deadline {
            break states;
        }
        sleep_ms(10);
    };
    let waited = sent.elapsed();
    assert!(
        states.contains(&TCP_FIN_WAIT1),
        "the server did not close (FIN_WAIT1) within {waited:?} while the client read nothing; \
         server states {states:?}"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "the server closed after {waited:?}, before the 300ms pause"
    );
    assert_eq!(c.received, 0, "the client has read nothing yet");
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert!(
        resp.body == pattern_bytes(FILE_LEN, 11),
        "the close after the pause cut the body"
    );
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
    drop(c);
    assert_server_holds_time_wait(cp, sp);

    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_closes(&stats, 0, 1, 0);
    assert_eq!(timeouts_total(&stats), 0, "timeouts in {stats:?}");
}

#[apply(designs)]
fn reset_mode_leaves_no_time_wait_on_either_side(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "reset"]);
    let mut c = server.connect();
    let (cp, sp) = ports(&c);
    let resp = c.roundtrip(get10("/f.bin", &[]));
    assert_eq!(resp.status, 200);
    assert!(resp.body == pattern_bytes(FILE_LEN, 11), "body corrupted");
    assert_eq!(
        c.expect_closed(IO_TIMEOUT),
        Closed::Reset,
        "reset mode must end with RST, not FIN"
    );
    drop(c);
    let server_left = wait_gone(sp, cp, Duration::from_secs(2));
    let client_left = wait_gone(cp, sp, Duration::from_secs(2));
    assert!(
        !server_left.contains(&TCP_TIME_WAIT) && !client_left.contains(&TCP_TIME_WAIT),
        "no TIME_WAIT expected after RST: server {server_left:?}, client {client_left:?}"
    );

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_closes(&stopped.stats(), 0, 0, 1);
}

#[apply(designs)]
fn reset_mode_slow_reader_still_gets_the_full_body(design: &str) {
    let site = site();
    let mut server = Server::start(design, &site, &["--close", "reset"]);
    let mut c = Client::connect_small_rcvbuf(server.port, 4096);
    c.send(get11("/big.bin", &["Connection: close"]));
    let resp = c.slow_read_response(4096, Duration::from_millis(2), Duration::from_secs(8));
    assert!(
        resp.body == pattern_bytes(MIB, 12),
        "RST before the send queue drained cut the body"
    );
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Reset);
    drop(c);

    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_closes(&stopped.stats(), 0, 0, 1);
}
