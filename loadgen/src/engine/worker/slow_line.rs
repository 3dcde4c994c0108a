//! Slow-line users inside a worker: browser-like page views (a page, then its inline images
//! over a few connections), the upload paced at the upstream rate, replies read through each
//! user's token bucket so the server's send buffer really fills, lingering idle connections,
//! and the one timer heap that drives all of it.

use std::cmp::Reverse;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{Absorbed, Phase, Worker};
use crate::engine::modem::{draw_count, LineBucket};
use crate::engine::pacing::think_time;
use crate::record::ErrorKind;

/// Connections one user may hold (the scenario's `connections_per_client` is at most this).
pub const MAX_CONNECTIONS: usize = 8;
const NO_CONN: u32 = u32::MAX;

/// What a slow-line timer entry wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    /// A user: its next page view, or its line's next read.
    Client(u32),
    /// A user's new connections, one (application-added) round trip after they were wanted:
    /// the SYN and SYN-ACK a real line would have carried first.
    Dial(u32),
    /// A connection: its upload's next segment, the round trip the application adds, or the
    /// end of its lingering.
    Conn(u32),
}

/// One slow-line user.
pub struct ModemClient {
    pub pop: u16,
    pub line: LineBucket,
    /// The next page view (while thinking) or the line's next read (while a page loads).
    pub wake_at: Option<Instant>,
    conns: [u32; MAX_CONNECTIONS],
    /// Requests of this page view not issued yet.
    queued: u32,
    /// Inline images to ask for once the page itself has arrived.
    images: u32,
    in_flight: u32,
    page_loading: bool,
    /// The page itself is on its way; images wait for it, as a browser must.
    page_pending: bool,
    /// Connections wanted and not opened yet (application round trip), and when they open.
    dialing: u32,
    dial_at: Option<Instant>,
}

impl ModemClient {
    pub fn new(pop: u16, payload_rate: f64, first_page: Instant) -> ModemClient {
        ModemClient {
            pop,
            line: LineBucket::new(payload_rate, first_page),
            wake_at: Some(first_page),
            conns: [NO_CONN; MAX_CONNECTIONS],
            queued: 0,
            images: 0,
            in_flight: 0,
            page_loading: false,
            page_pending: false,
            dialing: 0,
            dial_at: None,
        }
    }

    /// A closed connection leaves the user's list.
    pub fn forget(&mut self, key: usize) {
        for slot in &mut self.conns {
            if *slot == key as u32 {
                *slot = NO_CONN;
            }
        }
    }

    /// Some connection has data the line has not delivered yet: a line read is scheduled (while
    /// a page loads, the user's only timer is its line's).
    fn line_busy(&self) -> bool {
        self.page_loading && self.wake_at.is_some()
    }

    fn connections(&self) -> impl Iterator<Item = usize> + '_ {
        self.conns
            .iter()
            .filter(|&&k| k != NO_CONN)
            .map(|&k| k as usize)
    }

    fn adopt(&mut self, key: usize) -> bool {
        match self.conns.iter_mut().find(|slot| **slot == NO_CONN) {
            Some(slot) => {
                *slot = key as u32;
                true
            }
            None => false,
        }
    }
}

impl<'w> Worker<'w> {
    fn set_client_wake(&mut self, client: u32, at: Instant) {
        self.modem_clients[client as usize].wake_at = Some(at);
        self.wakeups.push(Reverse((at, Wake::Client(client))));
    }

    fn set_conn_wake(&mut self, key: usize, at: Instant) {
        self.conns[key].wake_at = Some(at);
        self.wakeups.push(Reverse((at, Wake::Conn(key as u32))));
    }

    /// Runs every slow-line timer that is due; entries whose target moved on are skipped.
    pub(super) fn fire_wakeups(&mut self, now: Instant) {
        while let Some(Reverse((at, wake))) = self.wakeups.peek().copied() {
            if at > now || now >= self.plan.end {
                break;
            }
            self.wakeups.pop();
            match wake {
                Wake::Client(client) => {
                    let state = &mut self.modem_clients[client as usize];
                    if state.wake_at != Some(at) {
                        continue;
                    }
                    state.wake_at = None;
                    if state.page_loading {
                        self.read_line(client, now);
                    } else {
                        self.start_page(client, now);
                    }
                }
                Wake::Dial(client) => {
                    let state = &mut self.modem_clients[client as usize];
                    if state.dial_at != Some(at) {
                        continue;
                    }
                    state.dial_at = None;
                    let wanted = std::mem::take(&mut state.dialing);
                    let pop = state.pop as usize;
                    let rtt = self.profiles[pop]
                        .as_ref()
                        .expect("slow line")
                        .application_rtt();
                    for _ in 0..wanted {
                        // The user wanted it one round trip ago: its latency counts from then.
                        self.open_and_request(client, at - rtt, now);
                    }
                    self.maybe_finish_page(client, now);
                }
                Wake::Conn(key) => {
                    let key = key as usize;
                    let Some(conn) = self.conns.get_mut(key) else {
                        continue;
                    };
                    if conn.wake_at != Some(at) {
                        continue;
                    }
                    conn.wake_at = None;
                    match conn.phase {
                        Phase::Delayed => {
                            conn.phase = Phase::Sending;
                            self.on_ready(key, now, false);
                        }
                        Phase::Idle => {
                            // Lingered long enough: the browser closes first.
                            let pop = conn.pop as usize;
                            if self.measuring(now) {
                                if let Some(line) = self.recorders[pop].line.as_mut() {
                                    line.lingering_closes += 1;
                                }
                            }
                            self.close(key, now);
                        }
                        Phase::Receiving => {
                            // The round trip the application adds is over: the reply may come.
                            let client = conn.client;
                            conn.drained = false;
                            self.line_takes_data(client, key, now);
                        }
                        Phase::Connecting | Phase::Sending => {}
                    }
                }
            }
        }
    }

    /// A page view begins: the page alone first, its images once it has arrived.
    fn start_page(&mut self, client: u32, now: Instant) {
        if now >= self.plan.end {
            return;
        }
        let pop = self.modem_clients[client as usize].pop as usize;
        let profile = self.profiles[pop].clone().expect("a slow-line population");
        let images = draw_count(&profile.spec.images_per_page, &mut self.rng);
        let measuring = self.measuring(now);
        if let (true, Some(line)) = (measuring, self.recorders[pop].line.as_mut()) {
            line.pages_started += 1;
        }
        let state = &mut self.modem_clients[client as usize];
        state.page_loading = true;
        state.page_pending = true;
        state.queued = 1;
        state.images = images;
        self.issue_queued(client, now);
    }

    /// Sends what the page view still needs on the user's connections: an idle one first,
    /// else a new one while the user has fewer than its limit.
    fn issue_queued(&mut self, client: u32, now: Instant) {
        let pop = self.modem_clients[client as usize].pop;
        let profile = self.profiles[pop as usize].clone().expect("slow line");
        let limit = (profile.spec.connections_per_client as usize).min(MAX_CONNECTIONS);
        while self.modem_clients[client as usize].queued > 0 && now < self.plan.end {
            let idle = self.modem_clients[client as usize]
                .connections()
                .find(|&key| {
                    self.conns
                        .get(key)
                        .is_some_and(|c| c.phase == Phase::Idle && c.request.is_none())
                });
            let state = &self.modem_clients[client as usize];
            let open = state.connections().count() + state.dialing as usize;
            if idle.is_none() && open >= limit {
                break;
            }
            let state = &mut self.modem_clients[client as usize];
            state.queued -= 1;
            state.in_flight += 1;
            if let Some(key) = idle {
                let pick = self.plan.workload.sample(&mut self.rng);
                self.conns[key].wake_at = None;
                self.start_request(key, pick, now, now);
                continue;
            }
            let rtt = profile.application_rtt();
            if rtt.is_zero() {
                self.open_and_request(client, now, now);
            } else {
                // The handshake's round trip comes first: the server sees the connection one
                // round trip after the user wanted it, and the request right behind it.
                let state = &mut self.modem_clients[client as usize];
                state.dialing += 1;
                if state.dial_at.is_none() {
                    state.dial_at = Some(now + rtt);
                    self.wakeups.push(Reverse((now + rtt, Wake::Dial(client))));
                }
            }
        }
        self.maybe_finish_page(client, now);
    }

    /// Opens a connection for the user with the next request attached (`origin`: when the
    /// user wanted it). A failed connect counts an error and the page view goes on without it.
    fn open_and_request(&mut self, client: u32, origin: Instant, now: Instant) {
        let pop = self.modem_clients[client as usize].pop;
        let pick = self.plan.workload.sample(&mut self.rng);
        match self.connect(pop, client, now) {
            Ok(key) => {
                self.modem_clients[client as usize].adopt(key);
                self.attach_request(key, pick, origin, now);
            }
            Err(kind) => {
                self.count_error(pop, kind, now);
                let state = &mut self.modem_clients[client as usize];
                state.in_flight -= 1;
                if state.page_pending {
                    // No page, no images: the user sees an error and moves on.
                    state.page_pending = false;
                    state.images = 0;
                }
            }
        }
    }

    /// The request starts crossing the upstream line now (on a new connection, as soon as the
    /// connect completes: an application-added handshake round trip was spent before it).
    pub(super) fn begin_upload(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        if let Some(request) = conn.request.as_mut() {
            request.upload_began = Some(now);
        }
        conn.phase = Phase::Sending;
        self.on_ready(key, now, false);
    }

    /// The next segment of the request has not crossed the line yet: wait for it.
    pub(super) fn wait_for_upload(&mut self, key: usize, now: Instant) {
        let pop = self.conns[key].pop as usize;
        let profile = self.profiles[pop].clone().expect("slow line");
        let request = self.conns[key].request.as_ref().expect("uploading");
        let began = request.upload_began.unwrap_or(now);
        let next = (request.sent + profile.spec.mss as usize).min(self.request_buf.len());
        let at = profile.upload_done_at(began, next).max(now);
        self.conns[key].phase = Phase::Delayed;
        self.set_conn_wake(key, at);
    }

    /// The whole request is out: its reply comes through the user's line.
    pub(super) fn modem_request_sent(&mut self, key: usize, now: Instant) {
        let client = self.conns[key].client as usize;
        let used = self.modem_clients[client].line.used_s;
        let pop = self.conns[key].pop as usize;
        let rtt = self.profiles[pop]
            .as_ref()
            .expect("slow line")
            .application_rtt();
        let conn = &mut self.conns[key];
        if let Some(request) = conn.request.as_mut() {
            request.sent_at = Some(now);
            request.line_used_at_sent_s = used;
        }
        conn.drained = false;
        if !rtt.is_zero() {
            self.set_conn_wake(key, now + rtt);
        }
        // Otherwise the reply's arrival raises an event.
    }

    /// Data (or a close) arrived on a receiving connection.
    pub(super) fn modem_data_arrived(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        conn.drained = false;
        if conn.wake_at.is_some() {
            // The application's round trip is not over; the timer takes it from there.
            return;
        }
        let client = conn.client;
        self.line_takes_data(client, key, now);
    }

    /// `key` has data for the user's line: if the line is already delivering, its scheduled
    /// read will take it; if it was idle, it starts now, with nothing banked, and delivers the
    /// first bytes once it could have carried them.
    fn line_takes_data(&mut self, client: u32, key: usize, now: Instant) {
        let state = &self.modem_clients[client as usize];
        if state.line_busy() {
            return;
        }
        let pop = state.pop as usize;
        let quantum = self.profiles[pop]
            .as_ref()
            .expect("slow line")
            .read_quantum();
        let waiting = bytes_waiting(&self.conns[key].stream);
        if waiting == 0 {
            // A close with no data (or nothing after all): read now to see which.
            return self.read_line(client, now);
        }
        let state = &mut self.modem_clients[client as usize];
        state.line.restart(now);
        let at = now + state.line.wait_for(waiting.min(quantum));
        self.set_client_wake(client, at);
    }

    /// The line's scheduled read: hands each receiving connection the bytes the line carried
    /// since the last one, and schedules the next read while data waits.
    fn read_line(&mut self, client: u32, now: Instant) {
        let pop = self.modem_clients[client as usize].pop as usize;
        let quantum = self.profiles[pop]
            .as_ref()
            .expect("slow line")
            .read_quantum();
        let state = &mut self.modem_clients[client as usize];
        state.wake_at = None;
        state.line.refill(now, quantum);
        let keys: Vec<usize> = state.connections().collect();
        for key in keys {
            let ready = self.conns.get(key).is_some_and(|c| {
                c.client == client
                    && c.phase == Phase::Receiving
                    && !c.drained
                    && c.wake_at.is_none()
            });
            if ready {
                self.read_through_line(client, key, now);
            }
        }
        // Still data waiting (the line ran out of tokens before the sockets ran dry)?
        let state = &self.modem_clients[client as usize];
        if state.wake_at.is_some() || !state.page_loading {
            return;
        }
        let mut need = 0usize;
        for key in state.connections() {
            if let Some(c) = self.conns.get(key) {
                if c.phase == Phase::Receiving && !c.drained && c.wake_at.is_none() {
                    let remaining = c
                        .request
                        .as_ref()
                        .and_then(|r| r.content_length.map(|l| l.saturating_sub(r.received)))
                        .map_or(quantum, |r| (r as usize).max(1));
                    need += remaining;
                }
            }
        }
        if need > 0 {
            let state = &self.modem_clients[client as usize];
            let at = now
                + state
                    .line
                    .wait_for(need.min(quantum))
                    .max(Duration::from_micros(100));
            self.set_client_wake(client, at);
        }
    }

    /// Reads from one connection as many bytes as the user's line has carried.
    fn read_through_line(&mut self, client: u32, key: usize, now: Instant) {
        loop {
            let allowed = self.modem_clients[client as usize]
                .line
                .available()
                .min(self.read_buf.len());
            // With nothing banked, one byte still shows a close that came without data.
            let asked = allowed.max(1);
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.phase != Phase::Receiving {
                return;
            }
            match conn.stream.read(&mut self.read_buf[..asked]) {
                Ok(0) => {
                    let request = conn.request.as_ref().expect("receiving");
                    if request.head_done && request.content_length.is_none() {
                        return self.complete(key, now);
                    }
                    let kind = if request.received == 0 && !request.head_done {
                        ErrorKind::Reset
                    } else {
                        ErrorKind::ShortBody
                    };
                    return self.fail(key, kind, now);
                }
                Ok(n) => {
                    self.modem_clients[client as usize].line.spend(n);
                    let short = n < asked;
                    match self.absorb(key, n, now) {
                        Absorbed::More => {
                            if short {
                                self.conns[key].drained = true;
                                return;
                            }
                            if allowed <= n {
                                return;
                            }
                        }
                        Absorbed::Complete => return self.complete(key, now),
                        Absorbed::Failed(kind) => return self.fail(key, kind, now),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.drained = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, ErrorKind::from_io(&e, false), now),
            }
        }
    }

    /// A request of a slow-line user finished (or failed): the page's images may follow, on
    /// the connection if it stayed idle or on new ones.
    pub(super) fn modem_after_request(&mut self, client: u32, now: Instant) {
        let state = &mut self.modem_clients[client as usize];
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.page_pending {
            state.page_pending = false;
            state.queued += state.images;
            state.images = 0;
        }
        self.issue_queued(client, now);
    }

    /// A request on a reused connection that the server had closed (nothing of a reply came):
    /// a browser sends it again on a new connection (RFC 9112, 9.3.1), and so does this one.
    /// Returns true when the request was re-queued instead of failing.
    pub(super) fn retry_on_new_connection(
        &mut self,
        key: usize,
        kind: ErrorKind,
        now: Instant,
    ) -> bool {
        let conn = &self.conns[key];
        let nothing_came = conn
            .request
            .as_ref()
            .is_some_and(|r| r.received == 0 && !r.head_done && r.head.is_empty());
        let closed_under_it = matches!(kind, ErrorKind::Reset | ErrorKind::ShortBody);
        if conn.requests_done == 0 || !nothing_came || !closed_under_it {
            return false;
        }
        let (pop, client) = (conn.pop as usize, conn.client);
        if self.measuring(now) {
            if let Some(line) = self.recorders[pop].line.as_mut() {
                line.retries_on_new_connection += 1;
            }
        }
        self.close(key, now);
        let state = &mut self.modem_clients[client as usize];
        state.in_flight = state.in_flight.saturating_sub(1);
        state.queued += 1;
        if now < self.plan.end {
            self.issue_queued(client, now);
        }
        true
    }

    /// When nothing of the page view is left: count it, let idle connections linger, think.
    fn maybe_finish_page(&mut self, client: u32, now: Instant) {
        let state = &self.modem_clients[client as usize];
        if !state.page_loading
            || state.queued > 0
            || state.in_flight > 0
            || state.page_pending
            || state.dialing > 0
        {
            return;
        }
        let pop = state.pop as usize;
        let profile = self.profiles[pop].clone().expect("slow line");
        if self.measuring(now) {
            if let Some(line) = self.recorders[pop].line.as_mut() {
                line.pages_completed += 1;
            }
        }
        let keys: Vec<usize> = state.connections().collect();
        for key in keys {
            let idle = self
                .conns
                .get(key)
                .is_some_and(|c| c.phase == Phase::Idle && c.request.is_none());
            if idle {
                let linger = think_time(&profile.spec.linger, &mut self.rng);
                self.set_conn_wake(key, now + linger);
            }
        }
        let think = think_time(&profile.spec.think, &mut self.rng);
        let state = &mut self.modem_clients[client as usize];
        state.page_loading = false;
        self.set_client_wake(client, now + think);
    }

    /// Per reply: its time from the end of the upload to the last byte against the time the
    /// line needed (one round trip plus the line time the user spent meanwhile, on this reply
    /// or its siblings), and the bytes per second it got.
    pub(super) fn record_line(
        &mut self,
        pop: u16,
        client: u32,
        request: &super::InFlight<'_>,
        now: Instant,
    ) {
        if !self.measuring(now) {
            return;
        }
        let Some(sent_at) = request.sent_at else {
            return;
        };
        let rtt = self.profiles[pop as usize]
            .as_ref()
            .expect("slow line")
            .spec
            .rtt
            .as_secs_f64();
        let used = self.modem_clients[client as usize].line.used_s - request.line_used_at_sent_s;
        let took = now.saturating_duration_since(sent_at).as_secs_f64();
        let line_time = rtt + used;
        let Some(line) = self.recorders[pop as usize].line.as_mut() else {
            return;
        };
        if line_time > 0.0 {
            let slowdown = (took / line_time * 1000.0).round() as u64;
            let _ = line.slowdown_milli.record(slowdown.clamp(1, 1_000_000_000));
        }
        let transfer = (took - rtt).max(0.001);
        let achieved = (request.received as f64 / transfer).round() as u64;
        let _ = line
            .achieved_bytes_per_s
            .record(achieved.clamp(1, 1_000_000_000));
    }
}

/// Bytes waiting in a socket's receive queue (FIONREAD); 0 when unknown.
fn bytes_waiting(stream: &mio::net::TcpStream) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut waiting) };
    if rc == 0 && waiting > 0 {
        waiting as usize
    } else {
        0
    }
}
