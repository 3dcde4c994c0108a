//! The live source over real sockets (`--live`): the stream's head and parts byte for byte,
//! HEAD, a fast reader that gets (nearly) every frame, and the policies for a viewer that reads
//! nothing: `latest` skips and stays bounded, `queue:BYTES:disconnect` kicks, `fifo` queues.
//! The `--stats` `"live"` object is checked against what the viewers saw.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use afterburner::live::{verify_body, BOUNDARY};
use support::*;

fn site() -> Site {
    let site = Site::new();
    site.file("index.html", "<p>live</p>\n");
    site
}

/// `--live /cam.mjpg` plus `extra`.
fn live_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec!["--live", "/cam.mjpg"];
    flags.extend_from_slice(extra);
    flags
}

/// One MJPEG part as received.
#[derive(Debug)]
struct Part {
    seq: u64,
    timestamp: String,
    content_length: usize,
    body: Vec<u8>,
}

/// A viewer: the raw socket and what it has not parsed yet.
struct Viewer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Viewer {
    /// Connects (with a small receive buffer if `rcvbuf`) and sends `request`.
    fn open(port: u16, request: &[u8], rcvbuf: Option<usize>) -> Viewer {
        let client = match rcvbuf {
            Some(bytes) => Client::connect_small_rcvbuf(port, bytes),
            None => Client::connect(port),
        };
        let mut stream = client.stream;
        stream.write_all(request).expect("send the request");
        Viewer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more into the buffer; `Ok(0)` at the server's close, `Err` at the deadline.
    fn fill(&mut self, deadline: Instant) -> std::io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return Err(ErrorKind::TimedOut.into())
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The response head, up to and with its blank line.
    fn head(&mut self) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8(self.buf.drain(..end + 4).collect()).unwrap();
                return head;
            }
            match self.fill(deadline) {
                Ok(0) => panic!("closed before the head: {:?}", self.buf),
                Ok(_) => {}
                Err(e) => panic!("no head: {e}"),
            }
        }
    }

    /// The next part, `None` if the server closed first or `deadline` passed.
    fn part(&mut self, deadline: Instant) -> Option<Part> {
        loop {
            if let Some(part) = self.parse_part() {
                return Some(part);
            }
            match self.fill(deadline) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn parse_part(&mut self) -> Option<Part> {
        let head_end = find(&self.buf, b"\r\n\r\n")? + 4;
        let head = std::str::from_utf8(&self.buf[..head_end]).expect("part head is text");
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some(&*format!("--{BOUNDARY}")), "{head:?}");
        let mut seq = None;
        let mut timestamp = None;
        let mut content_length = None;
        let mut content_type = None;
        for line in lines.filter(|line| !line.is_empty()) {
            let (name, value) = line.split_once(": ").expect("header line");
            match name {
                "X-Frame-Seq" => seq = Some(value.parse::<u64>().unwrap()),
                "X-Timestamp" => timestamp = Some(value.to_string()),
                "Content-Length" => content_length = Some(value.parse::<usize>().unwrap()),
                "Content-Type" => content_type = Some(value.to_string()),
                other => panic!("unexpected part header {other}"),
            }
        }
        let content_length = content_length.expect("Content-Length");
        if self.buf.len() < head_end + content_length + 2 {
            return None;
        }
        assert_eq!(content_type.as_deref(), Some("image/jpeg"));
        let body = self.buf[head_end..head_end + content_length].to_vec();
        assert_eq!(
            &self.buf[head_end + content_length..head_end + content_length + 2],
            b"\r\n",
            "a part ends with the CRLF of the next delimiter"
        );
        self.buf.drain(..head_end + content_length + 2);
        Some(Part {
            seq: seq.expect("X-Frame-Seq"),
            timestamp: timestamp.expect("X-Timestamp"),
            content_length,
            body,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The value of header `name` in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .filter_map(|line| line.split_once(": "))
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// `s.us` as microseconds.
fn micros(text: &str) -> u64 {
    let (seconds, fraction) = text.split_once('.').expect("s.us");
    assert_eq!(fraction.len(), 6, "six decimals: {text}");
    seconds.parse::<u64>().unwrap() * 1_000_000 + fraction.parse::<u64>().unwrap()
}

#[rstest::rstest]
fn parts_arrive_in_order_with_their_headers_and_verified_bodies(
    #[values("loop", "reactors")] design: &str,
) {
    let site = site();
    let mut server = Server::start(
        design,
        &site,
        &live_flags(&["--live-fps", "10", "--live-frame-bytes", "1000"]),
    );
    let mut viewer = Viewer::open(server.port, &get11("/cam.mjpg", &[]), None);
    let head = viewer.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("multipart/x-mixed-replace;boundary=afterburnerframe")
    );
    assert_eq!(header(&head, "Connection"), Some("close"));
    assert_eq!(header(&head, "X-Stream-Fps"), Some("10"));
    assert_eq!(header(&head, "Content-Length"), None, "{head}");
    assert_eq!(header(&head, "Transfer-Encoding"), None, "{head}");
    let epoch = micros(header(&head, "X-Stream-Epoch").expect("X-Stream-Epoch"));

    let deadline = Instant::now() + Duration::from_millis(1200);
    let mut parts = Vec::new();
    while let Some(part) = viewer.part(deadline) {
        parts.push(part);
    }
    assert!(
        parts.len() >= 8,
        "only {} parts in 1.2 s at 10 fps",
        parts.len()
    );
    for pair in parts.windows(2) {
        assert!(pair[0].seq < pair[1].seq, "out of order: {pair:?}");
    }
    for part in &parts {
        assert_eq!(part.content_length, 1000);
        assert_eq!(
            verify_body(part.seq, &part.body),
            Ok(()),
            "frame {}",
            part.seq
        );
        assert_eq!(
            micros(&part.timestamp),
            epoch + part.seq * 100_000,
            "frame {}: capture = epoch + seq x period",
            part.seq
        );
    }
    // An HTTP/1.0 viewer gets the same close-delimited stream.
    let mut old = Viewer::open(server.port, &get10("/cam.mjpg", &[]), None);
    let old_head = old.head();
    assert_eq!(
        header(&old_head, "X-Stream-Epoch"),
        header(&head, "X-Stream-Epoch")
    );
    let part = old
        .part(Instant::now() + Duration::from_secs(2))
        .expect("a part for HTTP/1.0");
    assert_eq!(verify_body(part.seq, &part.body), Ok(()));
    drop(viewer);
    drop(old);
    let stats = server.stop().stats();
    assert_eq!(stats.u(&["live", "viewers_joined"]), 2);
    assert!(stats.u(&["live", "frames_sent"]) > parts.len() as u64);
    assert_eq!(stats.0["live"]["path"], "/cam.mjpg");
    assert_eq!(stats.0["live"]["format"], "mjpeg");
    assert_eq!(stats.0["live"]["policy"], "latest");
    assert_eq!(stats.0["live"]["lowat_bytes"], 4096);
    assert_eq!(stats.0["live"]["frame_bytes"], 1000);
    let delays: u64 = stats.0["live"]["dispatch_delay_log2_us"]
        .as_array()
        .expect("24 buckets")
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    // One delay per frame started; a frame cut short by the viewer leaving is started, not sent.
    let sent = stats.u(&["live", "frames_sent"]);
    assert!(
        (sent..=sent + 2).contains(&delays),
        "{delays} delays for {sent} frames sent"
    );
}

#[test]
fn head_gets_the_head_only() {
    let site = site();
    let mut server = Server::start("loop", &site, &live_flags(&[]));
    let mut viewer = Viewer::open(server.port, &head11("/cam.mjpg", &[]), None);
    let head = viewer.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(header(&head, "X-Stream-Epoch").is_some());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match viewer.fill(deadline) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("HEAD: the server must close after the head: {e}"),
        }
    }
    assert!(viewer.buf.is_empty(), "HEAD got a body: {:?}", viewer.buf);
    let stats = server.stop().stats();
    assert_eq!(stats.u(&["live", "viewers_joined"]), 0);
    assert_eq!(stats.u(&["live", "frames_sent"]), 0);
}

#[test]
fn a_fast_reader_gets_nearly_every_frame() {
    let site = site();
    let server = Server::start(
        "loop",
        &site,
        &live_flags(&["--live-fps", "10", "--live-frame-bytes", "3KiB"]),
    );
    let mut viewer = Viewer::open(server.port, &get11("/cam.mjpg", &[]), None);
    viewer.head();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seqs = Vec::new();
    while let Some(part) = viewer.part(deadline) {
        assert_eq!(verify_body(part.seq, &part.body), Ok(()));
        seqs.push(part.seq);
    }
    let span = seqs.last().unwrap() - seqs.first().unwrap() + 1;
    assert!(
        seqs.len() as f64 >= 0.95 * span as f64 && span >= 28,
        "got {} of {span} frames published meanwhile: {seqs:?}",
        seqs.len()
    );
    let stats = server.snapshot(1);
    assert!(
        stats.u(&["live", "frames_skipped"]) <= span / 20,
        "{:#}",
        stats.0["live"]
    );
    assert_eq!(stats.u(&["live", "viewers_now"]), 1);
}

/// Keeps reading the head only, then nothing: a viewer whose line is stalled.
fn stalled_viewer(port: u16) -> Viewer {
    let mut viewer = Viewer::open(port, &get11("/cam.mjpg", &[]), Some(4096));
    viewer.head();
    viewer
}

#[test]
fn a_stalled_viewer_under_latest_skips_and_holds_few_frames() {
    let site = site();
    let server = Server::start(
        "loop",
        &site,
        &live_flags(&["--live-fps", "50", "--live-frame-bytes", "16KiB"]),
    );
    let mut stalled = stalled_viewer(server.port);
    let memory_before = server.memory_kib();
    sleep_ms(1500);
    let stats = server.snapshot(1);
    let live = &stats.0["live"];
    assert!(stats.u(&["live", "frames_published"]) >= 60, "{live:#}");
    // The kernel takes at most the mark unsent plus the client's small window: a few frames
    // of 16 KiB at most, the rest of the 75 published are never queued.
    assert!(stats.u(&["live", "frames_sent"]) <= 20, "{live:#}");
    assert_eq!(stats.u(&["live", "viewers_now"]), 1);
    assert_eq!(stats.u(&["live", "kicks"]), 0);
    assert!(
        stats.u(&["live", "frames_alive_peak"]) <= 3,
        "latest keeps one frame and the viewer one more: {live:#}"
    );
    assert!(
        stats.u(&["live", "unsent_bytes_now"]) <= 2 * 16 * 1024,
        "the mark caps the unsent bytes: {live:#}"
    );
    assert!(server.memory_kib() < memory_before + 4096, "memory grew");
    // Now it reads: it gets whole, verified frames again, the ones in between skipped.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seqs = Vec::new();
    while seqs.len() < 40 {
        let Some(part) = stalled.part(deadline) else {
            break;
        };
        assert_eq!(verify_body(part.seq, &part.body), Ok(()));
        seqs.push(part.seq);
    }
    assert!(
        seqs.windows(2).any(|pair| pair[1] > pair[0] + 1),
        "no frame skipped after the stall: {seqs:?}"
    );
    let skipped = server.snapshot(2).u(&["live", "frames_skipped"]);
    assert!(skipped >= 40, "only {skipped} frames counted skipped");
}

#[test]
fn queue_bytes_disconnect_kicks_a_stalled_viewer() {
    let site = site();
    let mut server = Server::start(
        "loop",
        &site,
        &live_flags(&[
            "--live-fps",
            "20",
            "--live-frame-bytes",
            "4KiB",
            "--live-policy",
            "queue:16KiB:disconnect",
        ]),
    );
    let mut stalled = stalled_viewer(server.port);
    sleep_ms(2000);
    // Reading now: what the kernel held, then the server's close.
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Ok(n) = stalled.fill(deadline) {
        if n == 0 {
            closed = true;
            break;
        }
        stalled.buf.clear();
    }
    assert!(closed, "the server did not disconnect the stalled viewer");
    let stats = server.stop().stats();
    assert_eq!(stats.u(&["live", "kicks"]), 1, "{:#}", stats.0["live"]);
    assert_eq!(stats.u(&["live", "fifo_cap_kicks"]), 0);
    assert_eq!(stats.u(&["closes", "server_first"]), 1);
    assert_eq!(stats.0["live"]["policy"], "queue:16384:disconnect");
}

#[test]
fn fifo_queues_for_a_stalled_viewer() {
    let site = site();
    let server = Server::start(
        "loop",
        &site,
        &live_flags(&[
            "--live-fps",
            "20",
            "--live-frame-bytes",
            "4KiB",
            "--live-policy",
            "fifo",
        ]),
    );
    let _stalled = stalled_viewer(server.port);
    sleep_ms(700);
    let early = server.snapshot(1).u(&["live", "queue_bytes_now"]);
    sleep_ms(1000);
    let later = server.snapshot(2);
    let queued = later.u(&["live", "queue_bytes_now"]);
    assert!(
        queued >= early + 15 * 4096,
        "fifo queue {early} then {queued} bytes: it must grow by ~20 frames a second"
    );
    assert!(later.u(&["live", "frames_alive_now"]) >= 20);
    assert_eq!(later.u(&["live", "kicks"]), 0);
}

#[test]
fn queue_n_resumes_from_its_backlog_and_counts_the_drops() {
    let site = site();
    let server = Server::start(
        "loop",
        &site,
        &live_flags(&[
            "--live-fps",
            "50",
            "--live-frame-bytes",
            "16KiB",
            "--live-policy",
            "queue:4",
        ]),
    );
    let mut stalled = stalled_viewer(server.port);
    sleep_ms(1000);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seqs = Vec::new();
    while seqs.len() < 30 {
        let Some(part) = stalled.part(deadline) else {
            break;
        };
        assert_eq!(verify_body(part.seq, &part.body), Ok(()));
        seqs.push(part.seq);
    }
    assert!(seqs.len() >= 30, "{seqs:?}");
    // Every frame in order but for the one jump over what fell off the 4-frame backlog.
    let jumps: Vec<_> = seqs
        .windows(2)
        .filter(|pair| pair[1] != pair[0] + 1)
        .collect();
    assert!(!jumps.is_empty() && jumps.len() <= 2, "{seqs:?}");
    let stats = server.snapshot(1);
    let dropped = stats.u(&["live", "frames_dropped"]);
    let gap: u64 = jumps.iter().map(|pair| pair[1] - pair[0] - 1).sum();
    assert!(
        dropped >= gap && dropped >= 20,
        "{dropped} dropped, {gap} in the gaps seen"
    );
    assert_eq!(stats.u(&["live", "frames_skipped"]), 0);
}

#[test]
fn fifo_kicks_a_stalled_viewer_at_its_cap() {
    let site = site();
    let mut server = Server::start(
        "loop",
        &site,
        &live_flags(&[
            "--live-fps",
            "20",
            "--live-frame-bytes",
            "4KiB",
            "--live-policy",
            "fifo",
            "--live-fifo-cap",
            "32KiB",
        ]),
    );
    let mut stalled = stalled_viewer(server.port);
    sleep_ms(1500);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut closed = false;
    while let Ok(n) = stalled.fill(deadline) {
        if n == 0 {
            closed = true;
            break;
        }
        stalled.buf.clear();
    }
    assert!(closed, "the stalled fifo viewer was not let go at the cap");
    let stats = server.stop().stats();
    assert_eq!(stats.u(&["live", "kicks"]), 1, "{:#}", stats.0["live"]);
    assert_eq!(stats.u(&["live", "fifo_cap_kicks"]), 1);
    assert!(
        stats.u(&["live", "frames_alive_peak"]) <= 12,
        "{:#}",
        stats.0["live"]
    );
}

#[test]
fn without_the_mark_the_kernel_queues_what_latest_would_skip() {
    let site = site();
    let server = Server::start(
        "loop",
        &site,
        &live_flags(&[
            "--live-fps",
            "50",
            "--live-frame-bytes",
            "16KiB",
            "--live-lowat",
            "off",
        ]),
    );
    let _stalled = stalled_viewer(server.port);
    sleep_ms(1500);
    let stats = server.snapshot(1);
    let live = &stats.0["live"];
    assert!(live["lowat_bytes"].is_null());
    // The same stall as under the mark, but the send buffer (megabytes on loopback) takes
    // frame after frame: nothing is skipped, everything waits in the kernel.
    assert!(stats.u(&["live", "frames_sent"]) >= 40, "{live:#}");
    assert!(
        stats.u(&["live", "unsent_bytes_now"]) >= 40 * 16 * 1024,
        "{live:#}"
    );
    assert_eq!(stats.u(&["live", "frames_skipped"]), 0, "{live:#}");
}

#[test]
fn cbr_is_chunked_on_http11_and_close_delimited_on_http10() {
    let site = site();
    let server = Server::start(
        "loop",
        &site,
        &live_flags(&[
            "--live-format",
            "cbr",
            "--live-rate",
            "64k",
            "--live-fps",
            "10",
        ]),
    );
    let mut viewer = Viewer::open(server.port, &get11("/cam.mjpg", &[]), None);
    let head = viewer.head();
    assert_eq!(
        header(&head, "Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(header(&head, "Transfer-Encoding"), Some("chunked"));
    assert_eq!(header(&head, "X-Stream-Rate"), Some("8000"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while find(&viewer.buf, b"\r\n").is_none() {
        viewer.fill(deadline).expect("a chunk");
    }
    let line_end = find(&viewer.buf, b"\r\n").unwrap();
    let size = std::str::from_utf8(&viewer.buf[..line_end]).unwrap();
    assert_eq!(usize::from_str_radix(size, 16), Ok(800), "{size:?}");

    let mut old = Viewer::open(server.port, &get10("/cam.mjpg", &[]), None);
    let old_head = old.head();
    assert_eq!(header(&old_head, "Transfer-Encoding"), None);
    while old.buf.len() < 16 {
        old.fill(deadline).expect("bytes");
    }
    // Each 8-byte word holds its own stream offset / 8: no chunk-size line in front.
    let word = u64::from_le_bytes(old.buf[..8].try_into().unwrap());
    let next = u64::from_le_bytes(old.buf[8..16].try_into().unwrap());
    assert_eq!(next, word + 1);
}

#[test]
fn live_with_a_design_that_does_not_serve_it_is_refused_naming_it() {
    let site = site();
    let root = site.root().as_os_str();
    for design in ["poll", "select", "fork"] {
        let exited = run_to_exit(&[
            "--root".as_ref(),
            root,
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--design".as_ref(),
            design.as_ref(),
            "--live".as_ref(),
            "/cam.mjpg".as_ref(),
        ]);
        assert_eq!(exited.code, Some(2), "{}", exited.stderr);
        assert!(
            exited.stderr.contains(&format!("--design {design}"))
                && exited.stderr.contains("--live")
                && exited.stderr.contains("loop"),
            "{}",
            exited.stderr
        );
        assert!(exited.stdout.is_empty(), "announced: {}", exited.stdout);
    }
}

#[test]
fn live_flags_without_live_are_refused() {
    let site = site();
    let exited = run_to_exit(&[
        "--root".as_ref(),
        site.root().as_os_str(),
        "--live-fps".as_ref(),
        "10".as_ref(),
    ]);
    assert_eq!(exited.code, Some(2));
    assert!(exited.stderr.contains("--live"), "{}", exited.stderr);
}
