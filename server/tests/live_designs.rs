//! The live stream (`--live`) in the designs that are not one event loop: `uring` (frames copied
//! into per-connection send queues), `threads` (one ring shared by every connection thread,
//! published lazily) and `prefork` (a ring per worker process): parts arrive in order and
//! whole, a viewer that stops reading gets skips under `latest` without holding the others
//! back, and the `--stats` live counters add up over threads and processes.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use afterburner::live::verify_body;
use support::*;

/// Frames per second of every test stream: fast, so that a second holds many frames.
const FPS: u64 = 20;

/// The flags of a stream at `/cam.mjpg`, 20 fps of 2 KiB frames, policy `policy`.
fn live_flags(policy: &'static str) -> Vec<&'static str> {
    vec![
        "--live",
        "/cam.mjpg",
        "--live-fps",
        "20",
        "--live-frame-bytes",
        "2KiB",
        "--live-policy",
        policy,
        // prefork serves one connection per process: a few processes are enough here.
        "--workers",
        "6",
    ]
}

/// One part of the stream as a viewer received it.
#[derive(Debug)]
struct Part {
    seq: u64,
}

/// A viewer: the socket, the bytes not parsed yet, whether the response head was read.
struct Viewer {
    stream: TcpStream,
    buf: Vec<u8>,
    head: Option<String>,
    parts: Vec<Part>,
    /// Stream bytes received after the response head.
    body_bytes: u64,
}

impl Viewer {
    /// Connects (with `rcvbuf` as SO_RCVBUF before connect, when given) and asks for the stream.
    fn join(port: u16, rcvbuf: Option<usize>) -> Viewer {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = match rcvbuf {
            Some(rcvbuf) => Client::connect_small_rcvbuf(port, rcvbuf).stream,
            None => TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"),
        };
        let mut viewer = Viewer {
            stream,
            buf: Vec::new(),
            head: None,
            parts: Vec::new(),
            body_bytes: 0,
        };
        viewer
            .stream
            .write_all(b"GET /cam.mjpg HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        viewer
    }

    /// Reads for `time` (or until the server closes): returns whether the stream is still open.
    fn watch(&mut self, time: Duration) -> bool {
        let until = Instant::now() + time;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.parse();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return true
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Takes the head and every whole part off the buffer, checking each part's framing and
    /// body (RFC 2046 §5.1.1 delimiter, `Content-Length`, the server's body alphabet).
    fn parse(&mut self) {
        if self.head.is_none() {
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8(self.buf[..end + 4].to_vec()).unwrap();
            self.buf.drain(..end + 4);
            self.head = Some(head);
        }
        loop {
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                return;
            };
            let headers = std::str::from_utf8(&self.buf[..end]).unwrap().to_string();
            assert!(
                headers.starts_with("--afterburnerframe\r\n"),
                "a part starts with the boundary: {headers:?}"
            );
            let field = |name: &str| -> u64 {
                headers
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
                    .trim()
                    .parse()
                    .unwrap()
            };
            let length = field("Content-Length:") as usize;
            let seq = field("X-Frame-Seq:");
            let whole = end + 4 + length + 2;
            if self.buf.len() < whole {
                return;
            }
            let body = &self.buf[end + 4..end + 4 + length];
            assert_eq!(length, 2048);
            assert!(verify_body(seq, body).is_ok(), "frame {seq}'s body");
            assert_eq!(
                &self.buf[whole - 2..whole],
                b"\r\n",
                "frame {seq} ends in CRLF"
            );
            if let Some(last) = self.parts.last() {
                assert!(seq > last.seq, "frame {seq} after frame {}", last.seq);
            }
            self.parts.push(Part { seq });
            self.body_bytes += whole as u64;
            self.buf.drain(..whole);
        }
    }

    /// Frames passed over between the first and last part received.
    fn gaps(&self) -> u64 {
        self.parts
            .windows(2)
            .map(|pair| pair[1].seq - pair[0].seq - 1)
            .sum()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The designs this file covers (the others are `server/tests/live.rs`'s).
#[rstest_reuse::template]
#[rstest::rstest]
fn live_designs(#[values("uring", "threads", "prefork")] design: &str) {}

#[rstest_reuse::apply(live_designs)]
fn parts_arrive_in_order_whole_and_at_the_stream_rate(design: &str) {
    let site = Site::new();
    let mut server = Server::start(design, &site, &live_flags("latest"));
    let mut viewer = Viewer::join(server.port, None);
    assert!(viewer.watch(Duration::from_millis(1500)), "stream ended");
    let head = viewer.head.as_deref().expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("Content-Type: multipart/x-mixed-replace;boundary=afterburnerframe"),
        "{head}"
    );
    let got = viewer.parts.len() as u64;
    // 1.5 s at 20 fps is 30 frames; a loaded test machine may be late for a few.
    assert!(got >= 20, "{got} parts in 1.5 s at {FPS} fps");
    assert!(
        viewer.gaps() <= 2,
        "a fast viewer misses (almost) nothing: {:?}",
        viewer.parts
    );
    drop(viewer);
    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(stats.u(&["live", "viewers_joined"]), 1);
    assert!(stats.u(&["live", "frames_sent"]) >= got);
}

#[rstest_reuse::apply(live_designs)]
fn a_viewer_that_stops_reading_gets_skips_under_latest_and_holds_nobody_back(design: &str) {
    let site = Site::new();
    let mut server = Server::start(design, &site, &live_flags("latest"));
    // A small window: the server's send queue fills at once, like a very slow line's.
    let mut stalled = Viewer::join(server.port, Some(4096));
    assert!(stalled.watch(Duration::from_millis(200)));
    let mut reader = Viewer::join(server.port, None);
    // The stalled viewer reads nothing for 1.5 s; the other reads all along.
    assert!(reader.watch(Duration::from_millis(1500)));
    let read_meanwhile = reader.parts.len();
    assert!(
        read_meanwhile >= 20,
        "{read_meanwhile} parts in 1.5 s beside a stalled viewer"
    );
    assert!(
        reader.gaps() <= 2,
        "the reader was held back: {:?}",
        reader.parts
    );
    // The stalled viewer reads again: what was queued, then the newest frames, with a gap.
    assert!(
        stalled.watch(Duration::from_millis(700)),
        "the stalled viewer was dropped"
    );
    let newest_seen = reader.parts.last().unwrap().seq;
    let last = stalled.parts.last().expect("parts after resuming").seq;
    assert!(
        last >= newest_seen,
        "the resumed viewer is at the newest frame: {last} < {newest_seen}"
    );
    assert!(
        stalled.gaps() >= 10,
        "the stalled viewer skipped frames: {:?}",
        stalled.parts
    );
    drop((stalled, reader));
    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert!(
        stats.u(&["live", "frames_skipped"]) >= 10,
        "skips counted: {:#}",
        stats.0["live"]
    );
    assert_eq!(stats.u(&["live", "kicks"]), 0, "latest never kicks");
}

#[rstest_reuse::apply(live_designs)]
fn live_counters_add_up_over_threads_and_processes(design: &str) {
    let site = Site::new();
    let server = Server::start(design, &site, &live_flags("latest"));
    let mut viewers: Vec<Viewer> = (0..3).map(|_| Viewer::join(server.port, None)).collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        for viewer in &mut viewers {
            assert!(viewer.watch(Duration::from_millis(50)));
        }
    }
    let snapshot = server.snapshot(1);
    let live = &snapshot.0["live"];
    assert_eq!(snapshot.u(&["live", "viewers_now"]), 3, "{live:#}");
    assert_eq!(snapshot.u(&["live", "viewers_joined"]), 3, "{live:#}");
    assert!(snapshot.u(&["live", "frames_alive_now"]) >= 1, "{live:#}");
    let published = snapshot.u(&["live", "frames_published"]);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        (published as f64) >= elapsed * FPS as f64 - 2.0,
        "{published} frames published by the clock in {elapsed:.2} s: {live:#}"
    );
    for viewer in &mut viewers {
        viewer.watch(Duration::from_millis(100));
    }
    let received: u64 = viewers.iter().map(|viewer| viewer.parts.len() as u64).sum();
    let bytes: u64 = viewers.iter().map(|viewer| viewer.body_bytes).sum();
    drop(viewers);
    let mut server = server;
    // Let every worker see its viewer's close before the stop.
    std::thread::sleep(Duration::from_millis(300));
    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    let live = &stats.0["live"];
    let sent = stats.u(&["live", "frames_sent"]);
    // Every part a viewer received whole was sent whole; the server may have sent a few more
    // that were in flight when the viewers closed.
    assert!(
        sent >= received && sent <= received + 3 * 5,
        "{sent} frames sent, {received} received: {live:#}"
    );
    assert!(stats.u(&["live", "bytes_sent"]) >= bytes, "{live:#}");
    let dispatched: u64 = (0..24)
        .map(|i| live["dispatch_delay_log2_us"][i].as_u64().unwrap())
        .sum();
    assert!(
        dispatched >= received,
        "one dispatch delay per frame started: {dispatched} < {received}: {live:#}"
    );
    assert_eq!(stats.u(&["live", "viewers_now"]), 0, "{live:#}");
    assert_eq!(stats.u(&["live", "unsent_bytes_now"]), 0, "{live:#}");
    if design != "prefork" {
        // Prefork's viewers are in separate processes, with a ring each: no process sees
        // every viewer of a frame, so no spread is counted there.
        let spreads: u64 = (0..24)
            .map(|i| live["spread_log2_us"][i].as_u64().unwrap())
            .sum();
        assert!(spreads >= 5, "per-frame spreads counted: {live:#}");
    }
}

#[rstest_reuse::apply(live_designs)]
fn a_viewer_too_far_behind_is_kicked_under_queue_bytes_disconnect(design: &str) {
    let site = Site::new();
    let mut server = Server::start(design, &site, &live_flags("queue:8KiB:disconnect"));
    // A small window, never read: the viewer falls behind by 40 KiB a second.
    let mut stalled = Viewer::join(server.port, Some(4096));
    let mut reader = Viewer::join(server.port, None);
    assert!(reader.watch(Duration::from_millis(1500)));
    assert!(reader.parts.len() >= 20, "the reader kept up");
    // Now read what the server queued: the stream must end (the kick), after a few parts.
    let mut open = true;
    let until = Instant::now() + Duration::from_secs(3);
    while open && Instant::now() < until {
        open = stalled.watch(Duration::from_millis(100));
    }
    assert!(
        !open,
        "the stalled viewer was not kicked: {:?}",
        stalled.parts
    );
    assert!(
        reader.watch(Duration::from_millis(200)),
        "the reader was kicked too"
    );
    drop((stalled, reader));
    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(stats.u(&["live", "kicks"]), 1, "{:#}", stats.0["live"]);
    assert_eq!(stats.u(&["live", "fifo_cap_kicks"]), 0);
}

/// A pause shorter than `--send-timeout` is not a timeout, however long the viewer watched
/// before it (the send timer starts when the viewer starts waiting to write).
#[rstest_reuse::apply(live_designs)]
fn a_long_watch_then_a_short_stall_is_not_a_send_timeout(design: &str) {
    let site = Site::new();
    let mut flags = live_flags("latest");
    flags.extend(["--send-timeout", "1s"]);
    let mut server = Server::start(design, &site, &flags);
    let mut viewer = Viewer::join(server.port, Some(4096));
    // Watch for longer than the send timeout, reading all along.
    assert!(viewer.watch(Duration::from_millis(1800)));
    let watched = viewer.parts.len();
    // Stall for half the send timeout: the server's queue fills and it waits to write.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        viewer.watch(Duration::from_millis(700)),
        "the stream ended after a 0.5 s stall under a 1 s send timeout: {:?}",
        viewer.parts
    );
    assert!(viewer.parts.len() > watched + 5, "the stream went on");
    drop(viewer);
    let stats = server.stop().stats();
    assert_eq!(stats.u(&["timeouts", "send"]), 0, "{:#}", stats.0);
}

/// Without the mark (`--live-lowat off`) a viewer is always ready: the stream flows the same.
#[rstest_reuse::apply(live_designs)]
fn the_stream_flows_with_the_mark_off(design: &str) {
    let site = Site::new();
    let mut flags = live_flags("queue:4");
    flags.extend(["--live-lowat", "off"]);
    let mut server = Server::start(design, &site, &flags);
    let mut viewer = Viewer::join(server.port, None);
    assert!(viewer.watch(Duration::from_millis(1200)));
    assert!(viewer.parts.len() >= 15, "{:?}", viewer.parts);
    assert!(viewer.gaps() <= 2, "{:?}", viewer.parts);
    drop(viewer);
    let stats = server.stop().stats();
    assert_eq!(stats.0["live"]["lowat_bytes"], serde_json::Value::Null);
    assert_eq!(stats.0["live"]["policy"], "queue:4");
}
