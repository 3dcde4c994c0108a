//! One client connection's life as a state machine: connect, send the request, read the reply,
//! then stay idle for the next request or close. Knows nothing of the loop or of mio: the worker
//! hands it readiness (and slow lines a read budget), and it answers with what happened and what
//! it wants next (a [`Step`]), as the server's `conn.rs` does.
//!
//! States:
//! * `Connecting`: the non-blocking connect is under way.
//! * `Sending`: the request is being written; a slow line releases it segment by segment at its
//!   upstream pace, and waits (`Paced`) between segments.
//! * `Receiving`: the reply is being read and framed (`response`), its body checked.
//! * `Idle`: between requests of a kept-alive connection.
//!
//! The pure parts live beside it: `request` (encoding) and `response` (framing).

pub mod request;
pub mod response;
pub mod stream;

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::engine::modem::UploadPace;
use crate::engine::workload::{Pick, Workload};
use crate::record::{ErrorKind, Lifetime};
use crate::specweb96::fileset::ContentVerifier;
use request::{encode_request, RequestStyle};
use response::{AtClose, Framed, ResponseReader};

/// What a connection needs from its socket beyond reading and writing.
pub trait Transport: Read + Write {
    /// How the non-blocking connect went: `Ok(true)` connected, `Ok(false)` still under way,
    /// `Err` failed (refused, timed out, unreachable).
    fn connect_result(&self) -> io::Result<bool>;
}

/// What a connection borrows from its worker for one step.
pub struct ConnEnv<'a, 'w> {
    /// What is requested: a pick's target, expected length and content check.
    pub workload: &'w Workload,
    /// The `Host` header's value.
    pub host: &'a str,
    /// Reused for every request's bytes.
    pub request_buf: &'a mut Vec<u8>,
    /// Reused for every read.
    pub read_buf: &'a mut [u8],
    /// Whole-point counters the server's own counts are checked against.
    pub lifetime: &'a mut Lifetime,
}

/// What a connection wants after a step, or what happened in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Nothing more until the socket is ready again (or a timer of its owner fires).
    Wait,
    /// A slow line's upload goes on at this instant: wake the connection then.
    PaceUntil(Instant),
    /// The request is out; the reply is awaited.
    Sent,
    /// The reply is complete; `reusable`: the connection may carry another request.
    Replied {
        /// Below its request cap, not closed or told `close` by the server, a keep-alive
        /// style, and a reply framed by `Content-Length`.
        reusable: bool,
    },
    /// The request failed; the connection must be closed.
    Failed(ErrorKind),
    /// An idle connection was closed by the server (or it sent something unasked).
    IdleClosed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    /// A slow line's upload waits for the line to carry the next segment.
    Paced,
    Receiving,
    Idle,
}

/// One request on a connection, from the moment it was wanted to its reply's last byte.
pub struct Request<'w> {
    /// What is requested.
    pub pick: Pick,
    /// Latency origin: when the request was due (open loop) or wanted (closed loop, users).
    pub origin: Instant,
    /// When it was handed to the connection: its timeout counts from here.
    pub issued: Instant,
    /// The connect's time when this request opened the connection; 0 on a reused one.
    pub connect_us: Option<u64>,
    /// When the reply's first byte arrived; `None` until then.
    pub first_byte: Option<Instant>,
    /// The request's framing on its connection: HTTP version and `Connection` header.
    pub style: RequestStyle,
    /// Request bytes written so far.
    sent: usize,
    /// Frames the reply as it arrives: head, then body.
    pub reader: ResponseReader,
    verifier: Option<ContentVerifier<'w>>,
    /// Slow lines: when the request's upload began; `None` before it, and for fast clients.
    pub upload_began: Option<Instant>,
    /// Slow lines: when the request's last byte was written, from which the reply's time on the
    /// line counts; `None` before it, and for fast clients.
    pub sent_at: Option<Instant>,
    /// Slow lines: the line time its user had used when the upload ended, in seconds
    /// ([`LineBucket::used_s`](crate::engine::modem::LineBucket::used_s)); the slowdown figure
    /// counts only what the line spent after it.
    pub line_used_at_sent_s: f64,
    /// Already sent again once on a new connection (RFC 9112 section 9.3.1): a second failure
    /// is an error.
    pub resent: bool,
}

impl<'w> Request<'w> {
    /// A request for `pick`, wanted at `origin`, handed to a connection at `now`.
    pub fn new(
        workload: &'w Workload,
        pick: Pick,
        style: RequestStyle,
        origin: Instant,
        now: Instant,
    ) -> Request<'w> {
        Request {
            pick,
            origin,
            issued: now,
            connect_us: None,
            first_byte: None,
            style,
            sent: 0,
            reader: ResponseReader::new(),
            verifier: workload.verifier(pick),
            upload_began: None,
            sent_at: None,
            line_used_at_sent_s: 0.0,
            resent: false,
        }
    }

    /// Body bytes received.
    pub fn received(&self) -> u64 {
        self.reader.body_bytes()
    }

    /// Whether nothing of a reply came (a reused connection closed under the request).
    pub fn nothing_received(&self) -> bool {
        !self.reader.started()
    }

    /// A complete reply is a success when its status is 200 and its body is the file asked
    /// for (its length, and its bytes when the content is verified).
    pub fn outcome(&self, workload: &Workload) -> Result<(), ErrorKind> {
        let status = self.reader.head().map_or(0, |h| h.status);
        if status != 200 {
            return Err(ErrorKind::BadStatus);
        }
        let expected = workload.expected_bytes(self.pick);
        let verified = self.verifier.as_ref().is_none_or(|v| v.finish().is_ok());
        if expected.is_some_and(|e| e != self.received()) || !verified {
            return Err(ErrorKind::VerifyFailed);
        }
        Ok(())
    }
}

/// One client connection.
pub struct ClientConn<'w> {
    phase: Phase,
    /// Requests answered on it so far.
    pub requests_done: u32,
    /// Requests it may carry at most (1: HTTP/1.0, one per connection).
    max_requests: u32,
    /// When the connect began.
    pub connect_started: Instant,
    request: Option<Box<Request<'w>>>,
    /// Slow lines: the upstream line the request is released through.
    upload: Option<UploadPace>,
    /// The server's FIN has arrived: no request may follow on this connection.
    pub peer_closed: bool,
    /// Slow lines: the last read found the socket empty; the next data raises an event.
    pub drained: bool,
    /// Slow lines: the instant this connection's owner set a timer for (upload pace, the
    /// round trip the application adds, lingering); other timer entries for it are stale.
    pub wake_at: Option<Instant>,
}

impl<'w> ClientConn<'w> {
    /// A connection whose connect began at `now`, carrying at most `max_requests` requests,
    /// its requests released through `upload` when it is a slow line's.
    pub fn connecting(max_requests: u32, upload: Option<UploadPace>, now: Instant) -> Self {
        ClientConn {
            phase: Phase::Connecting,
            requests_done: 0,
            max_requests,
            connect_started: now,
            request: None,
            upload,
            peer_closed: false,
            drained: false,
            wake_at: None,
        }
    }

    /// A connection whose owner reads and writes it itself (a live-stream viewer) is open: it
    /// leaves the connecting phase, so the end of the point does not count its connect again.
    pub fn mark_open(&mut self) {
        self.phase = Phase::Idle;
    }

    /// Between requests, with nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle && self.request.is_none()
    }

    /// The connect has not completed yet.
    pub fn is_connecting(&self) -> bool {
        self.phase == Phase::Connecting
    }

    /// A reply is being read (or awaited).
    pub fn is_receiving(&self) -> bool {
        self.phase == Phase::Receiving
    }

    /// A slow line's upload waits for its next segment.
    pub fn is_paced(&self) -> bool {
        self.phase == Phase::Paced
    }

    /// The request in flight.
    pub fn request(&self) -> Option<&Request<'w>> {
        self.request.as_deref()
    }

    /// The request in flight, to note slow-line times on.
    pub fn request_mut(&mut self) -> Option<&mut Request<'w>> {
        self.request.as_deref_mut()
    }

    /// Takes the finished (or failed) request off the connection.
    pub fn take_request(&mut self) -> Option<Box<Request<'w>>> {
        self.request.take()
    }

    /// The style of the next request on this connection.
    pub fn next_style(&self) -> RequestStyle {
        RequestStyle::for_request(self.upload.is_some(), self.max_requests, self.requests_done)
    }

    /// Hands a request to a connection still connecting: it goes out once the connect completes.
    pub fn attach(&mut self, request: Box<Request<'w>>) {
        debug_assert!(self.phase == Phase::Connecting && self.request.is_none());
        self.request = Some(request);
    }

    /// Hands a request to an idle connection; call [`ClientConn::on_ready`] to send it.
    pub fn reuse(&mut self, mut request: Box<Request<'w>>, now: Instant) {
        debug_assert!(self.is_idle());
        request.connect_us = Some(0);
        self.request = Some(request);
        self.begin_sending(now);
    }

    /// A slow line's pace timer fired: the upload goes on.
    pub fn resume_upload(&mut self) {
        if self.phase == Phase::Paced {
            self.phase = Phase::Sending;
        }
    }

    fn begin_sending(&mut self, now: Instant) {
        self.phase = Phase::Sending;
        if let (Some(_), Some(request)) = (self.upload, self.request.as_mut()) {
            request.upload_began = Some(now);
        }
    }

    /// The socket is ready (readable, writable or both): do all that can be done now.
    /// `trust_short_read`: the peer's FIN has not arrived (no RDHUP), so a read shorter than
    /// the buffer emptied the socket and the next data raises an event (wrk's trick, saving
    /// the read that would only say EAGAIN).
    pub fn on_ready(
        &mut self,
        io: &mut impl Transport,
        env: &mut ConnEnv<'_, 'w>,
        now: Instant,
        trust_short_read: bool,
    ) -> Step {
        loop {
            match self.phase {
                Phase::Connecting => match io.connect_result() {
                    Err(e) => return Step::Failed(ErrorKind::from_io(&e, true)),
                    Ok(false) => return Step::Wait,
                    Ok(true) => {
                        env.lifetime.connections_established += 1;
                        if let Some(request) = self.request.as_mut() {
                            let connect = now.saturating_duration_since(self.connect_started);
                            request.connect_us = Some(connect.as_micros() as u64);
                        }
                        self.begin_sending(now);
                    }
                },
                Phase::Sending => return self.send(io, env, now),
                // The owner's pace timer moves it on.
                Phase::Paced => return Step::Wait,
                Phase::Receiving => return self.receive(io, env, now, trust_short_read),
                Phase::Idle => {
                    return match io.read(env.read_buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
                        // The server closed an idle connection (or sent something unasked).
                        _ => Step::IdleClosed,
                    };
                }
            }
        }
    }

    /// Slow lines: one read of at most `budget` bytes (at least one, so that a close without
    /// data still shows). Returns what happened and the bytes read, which the line spends.
    /// Sets `drained` when the socket had less than asked.
    pub fn receive_metered(
        &mut self,
        io: &mut impl Transport,
        env: &mut ConnEnv<'_, 'w>,
        budget: usize,
        now: Instant,
    ) -> (Step, usize) {
        if self.phase != Phase::Receiving {
            return (Step::Wait, 0);
        }
        let asked = budget.clamp(1, env.read_buf.len());
        loop {
            match io.read(&mut env.read_buf[..asked]) {
                Ok(0) => return (self.at_close(), 0),
                Ok(n) => {
                    self.drained = n < asked;
                    let step = match self.absorb(&env.read_buf[..n], now) {
                        Absorbed::More => Step::Wait,
                        Absorbed::Complete => self.replied(),
                        Absorbed::Failed(kind) => Step::Failed(kind),
                    };
                    return (step, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return (Step::Wait, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Step::Failed(ErrorKind::from_io(&e, false)), 0),
            }
        }
    }

    /// Writes what may go of the request.
    fn send(&mut self, io: &mut impl Transport, env: &mut ConnEnv<'_, 'w>, now: Instant) -> Step {
        let Some(request) = self.request.as_mut() else {
            // Connected with nothing to send (the request was abandoned): idle.
            self.phase = Phase::Idle;
            return Step::Wait;
        };
        let path = env.workload.request_path(request.pick);
        encode_request(env.request_buf, path.as_ref(), env.host, request.style);
        let total = env.request_buf.len();
        loop {
            // A slow line releases the request no faster than its upstream carries it.
            let released = match (self.upload, request.upload_began) {
                (Some(pace), Some(began)) => pace.released(began, request.sent, total, now),
                _ => total,
            };
            if released <= request.sent {
                let began = request.upload_began.unwrap_or(now);
                let pace = self.upload.expect("only a paced upload holds bytes back");
                self.phase = Phase::Paced;
                return Step::PaceUntil(pace.next_segment_at(began, request.sent, total).max(now));
            }
            match io.write(&env.request_buf[request.sent..released]) {
                Ok(n) => {
                    request.sent += n;
                    if request.sent >= total {
                        self.phase = Phase::Receiving;
                        self.drained = false;
                        env.lifetime.requests_sent += 1;
                        return Step::Sent;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(ErrorKind::from_io(&e, false)),
            }
        }
    }

    fn receive(
        &mut self,
        io: &mut impl Transport,
        env: &mut ConnEnv<'_, 'w>,
        now: Instant,
        trust_short_read: bool,
    ) -> Step {
        loop {
            match io.read(env.read_buf) {
                Ok(0) => return self.at_close(),
                Ok(n) => match self.absorb(&env.read_buf[..n], now) {
                    Absorbed::More if trust_short_read && n < env.read_buf.len() => {
                        return Step::Wait
                    }
                    Absorbed::More => {}
                    Absorbed::Complete => return self.replied(),
                    Absorbed::Failed(kind) => return Step::Failed(kind),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(ErrorKind::from_io(&e, false)),
            }
        }
    }

    /// Frames bytes just read and checks the body's.
    fn absorb(&mut self, bytes: &[u8], now: Instant) -> Absorbed {
        let request = self.request.as_mut().expect("a request is being received");
        request.first_byte.get_or_insert(now);
        let mut input = bytes;
        loop {
            match request.reader.next(&mut input) {
                Err(_) => return Absorbed::Failed(ErrorKind::Other),
                Ok(Framed::NeedMore) => return Absorbed::More,
                Ok(Framed::Body(body)) => {
                    if let Some(verifier) = request.verifier.as_mut() {
                        if !verifier.feed(body) {
                            return Absorbed::Failed(ErrorKind::VerifyFailed);
                        }
                    }
                    // The common end: the last body bytes; no call only to hear `Complete`.
                    if request.reader.is_complete() {
                        if !input.is_empty() {
                            return Absorbed::Failed(ErrorKind::Other);
                        }
                        return Absorbed::Complete;
                    }
                }
                // More than the response holds: the server is broken or the framing was lost.
                Ok(Framed::Complete) if !input.is_empty() => {
                    return Absorbed::Failed(ErrorKind::Other)
                }
                Ok(Framed::Complete) => return Absorbed::Complete,
            }
        }
    }

    /// The server closed while the reply was read.
    fn at_close(&mut self) -> Step {
        let request = self.request.as_mut().expect("a request is being received");
        match request.reader.at_close() {
            AtClose::Complete => self.replied(),
            AtClose::NothingReceived => Step::Failed(ErrorKind::Closed),
            AtClose::Truncated => Step::Failed(ErrorKind::ShortBody),
        }
    }

    fn replied(&mut self) -> Step {
        self.requests_done += 1;
        let request = self.request.as_ref().expect("a request was replied to");
        let head = request.reader.head().copied();
        let reusable = self.requests_done < self.max_requests
            && !self.peer_closed
            && request.style.keeps_alive()
            && head.is_some_and(|h| !h.closes);
        self.phase = Phase::Idle;
        Step::Replied { reusable }
    }
}

enum Absorbed {
    More,
    Complete,
    Failed(ErrorKind),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::workload::UrlEntry;
    use std::time::Duration;

    /// A socket in memory: `incoming` is what the server sends (each element one read; an
    /// empty one is the server's close), `written` what the client sent.
    struct Fake {
        connected: bool,
        incoming: std::collections::VecDeque<Vec<u8>>,
        written: Vec<u8>,
        write_limit: usize,
    }

    impl Fake {
        fn new(replies: &[&[u8]]) -> Fake {
            Fake {
                connected: true,
                incoming: replies.iter().map(|r| r.to_vec()).collect(),
                written: Vec::new(),
                write_limit: usize::MAX,
            }
        }
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(mut next) = self.incoming.pop_front() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = next.len().min(buf.len());
            buf[..n].copy_from_slice(&next[..n]);
            if n < next.len() {
                self.incoming.push_front(next.split_off(n));
            }
            Ok(n)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.write_limit);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.written.extend_from_slice(&buf[..n]);
            self.write_limit -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Fake {
        fn connect_result(&self) -> io::Result<bool> {
            Ok(self.connected)
        }
    }

    fn workload(expected: Option<u64>) -> Workload {
        Workload::urls(vec![UrlEntry {
            path: "/1k.bin".into(),
            weight: 1.0,
            expected_bytes: expected,
        }])
    }

    /// The worker's side of a step: buffers and counters.
    struct Bench {
        request_buf: Vec<u8>,
        read_buf: Vec<u8>,
        lifetime: Lifetime,
    }

    impl Bench {
        fn new() -> Bench {
            Bench {
                request_buf: Vec::new(),
                read_buf: vec![0; 4096],
                lifetime: Lifetime::default(),
            }
        }

        fn env<'a, 'w>(&'a mut self, workload: &'w Workload) -> ConnEnv<'a, 'w> {
            ConnEnv {
                workload,
                host: "127.0.0.1:80",
                request_buf: &mut self.request_buf,
                read_buf: &mut self.read_buf,
                lifetime: &mut self.lifetime,
            }
        }
    }

    fn connection_with_request<'w>(
        workload: &'w Workload,
        max_requests: u32,
        now: Instant,
    ) -> ClientConn<'w> {
        let mut conn = ClientConn::connecting(max_requests, None, now);
        let style = conn.next_style();
        let pick = Pick::Url(0);
        conn.attach(Box::new(Request::new(workload, pick, style, now, now)));
        conn
    }

    const OK_5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn a_request_goes_out_once_connected_and_its_reply_completes() {
        let mut bench = Bench::new();
        let t0 = Instant::now();
        let workload = workload(Some(5));
        let mut conn = connection_with_request(&workload, 1, t0);
        let mut socket = Fake::new(&[]);
        socket.connected = false;
        assert_eq!(
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
            Step::Wait
        );
        socket.connected = true;
        let later = t0 + Duration::from_millis(3);
        assert_eq!(
            conn.on_ready(&mut socket, &mut bench.env(&workload), later, true),
            Step::Sent
        );
        assert_eq!(
            socket.written,
            b"GET /1k.bin HTTP/1.0\r\nHost: 127.0.0.1:80\r\n\r\n"
        );
        assert_eq!(
            (
                bench.lifetime.connections_established,
                bench.lifetime.requests_sent
            ),
            (1, 1)
        );
        socket.incoming.push_back(OK_5.to_vec());
        let step = conn.on_ready(&mut socket, &mut bench.env(&workload), later, true);
        assert_eq!(
            step,
            Step::Replied { reusable: false },
            "HTTP/1.0: one request"
        );
        let request = conn.take_request().unwrap();
        assert_eq!(request.connect_us, Some(3_000));
        assert_eq!(request.received(), 5);
        assert_eq!(request.outcome(&workload), Ok(()));
    }

    #[test]
    fn a_kept_alive_connection_is_reused_until_its_last_request() {
        let mut bench = Bench::new();
        let t0 = Instant::now();
        let workload = workload(Some(5));
        let mut conn = connection_with_request(&workload, 2, t0);
        let mut socket = Fake::new(&[]);
        assert_eq!(
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
            Step::Sent
        );
        socket.incoming.push_back(OK_5.to_vec());
        assert_eq!(
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
            Step::Replied { reusable: true }
        );
        conn.take_request();
        assert!(conn.is_idle());
        let style = conn.next_style();
        assert_eq!(style, RequestStyle::LastOnConnection);
        conn.reuse(
            Box::new(Request::new(&workload, Pick::Url(0), style, t0, t0)),
            t0,
        );
        socket.written.clear();
        assert_eq!(
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
            Step::Sent
        );
        assert!(socket.written.ends_with(b"Connection: close\r\n\r\n"));
        socket.incoming.push_back(OK_5.to_vec());
        assert_eq!(
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
            Step::Replied { reusable: false }
        );
        assert_eq!(conn.take_request().unwrap().connect_us, Some(0));
    }

    #[test]
    fn a_close_under_the_request_or_mid_body_fails_it_by_kind() {
        let t0 = Instant::now();
        let workload = workload(Some(5));
        for (server_sends, expected) in [
            (vec![Vec::new()], ErrorKind::Closed),
            (
                vec![OK_5[..OK_5.len() - 2].to_vec(), Vec::new()],
                ErrorKind::ShortBody,
            ),
            (vec![b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()], ErrorKind::Other),
            (
                vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab".to_vec()],
                ErrorKind::Other,
            ),
        ] {
            let mut bench = Bench::new();
            let mut conn = connection_with_request(&workload, 1, t0);
            let mut socket = Fake::new(&[]);
            assert_eq!(
                conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
                Step::Sent
            );
            socket.incoming.extend(server_sends);
            assert_eq!(
                conn.on_ready(&mut socket, &mut bench.env(&workload), t0, false),
                Step::Failed(expected)
            );
        }
    }

    #[test]
    fn statuses_and_lengths_decide_the_outcome() {
        let t0 = Instant::now();
        let workload = workload(Some(5));
        for (reply, expected) in [
            (
                &b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!"[..],
                Err(ErrorKind::BadStatus),
            ),
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhell"[..],
                Err(ErrorKind::VerifyFailed),
            ),
            (OK_5, Ok(())),
        ] {
            let mut bench = Bench::new();
            let mut conn = connection_with_request(&workload, 1, t0);
            let mut socket = Fake::new(&[]);
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true);
            socket.incoming.push_back(reply.to_vec());
            assert!(matches!(
                conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true),
                Step::Replied { .. }
            ));
            assert_eq!(conn.take_request().unwrap().outcome(&workload), expected);
        }
    }

    #[test]
    fn a_slow_line_uploads_segment_by_segment_and_reads_within_its_budget() {
        let t0 = Instant::now();
        let workload = workload(Some(5));
        let mut bench = Bench::new();
        // 100 bytes/s in 10-byte segments: the ~45-byte request takes about half a second.
        let pace = UploadPace {
            bytes_per_s: 100.0,
            segment: 10,
        };
        let mut conn = ClientConn::connecting(1, Some(pace), t0);
        let style = conn.next_style();
        assert_eq!(style, RequestStyle::BrowserHttp10);
        conn.attach(Box::new(Request::new(
            &workload,
            Pick::Url(0),
            style,
            t0,
            t0,
        )));
        let mut socket = Fake::new(&[]);
        let Step::PaceUntil(first) =
            conn.on_ready(&mut socket, &mut bench.env(&workload), t0, true)
        else {
            panic!("the first segment leaves once the line carried it");
        };
        assert_eq!(first, t0 + Duration::from_millis(100));
        assert!(socket.written.is_empty());
        let mut now = first;
        let mut steps = 0;
        loop {
            conn.resume_upload();
            match conn.on_ready(&mut socket, &mut bench.env(&workload), now, true) {
                Step::PaceUntil(at) => now = at,
                Step::Sent => break,
                other => panic!("{other:?}"),
            }
            steps += 1;
            assert!(socket.written.len() <= 10 * (steps + 1));
        }
        let request_len = socket.written.len();
        assert!(
            request_len > 190,
            "a browser's request: {request_len} bytes"
        );
        let took = now.duration_since(t0).as_secs_f64();
        assert!((took - request_len as f64 / 100.0).abs() < 0.11, "{took} s");
        socket.incoming.push_back(OK_5.to_vec());
        let (step, read) = conn.receive_metered(&mut socket, &mut bench.env(&workload), 20, now);
        assert_eq!((step, read), (Step::Wait, 20));
        let (step, read) = conn.receive_metered(&mut socket, &mut bench.env(&workload), 100, now);
        assert_eq!(step, Step::Replied { reusable: false });
        assert_eq!(read, OK_5.len() - 20);
        assert!(conn.drained, "the socket had less than the budget");
    }
}
