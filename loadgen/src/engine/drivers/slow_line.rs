//! Slow-line users: browser-like page views (a page, then its inline images over a few
//! connections), each request uploaded at the upstream pace, replies read through each user's
//! token bucket so the server's send buffer really fills, idle connections lingering before
//! the browser closes them, and the application's round trip where the kernel adds none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_pcg::Pcg64Mcg;

use crate::engine::client::Request;
use crate::engine::modem::{draw_count, LineBucket, LineProfile};
use crate::engine::pacing::think_time;
use crate::engine::source::SlowLineSocket;
use crate::engine::streams::stream;
use crate::engine::timers::{DriverWake, Wake};
use crate::engine::worker::{Outcome, Shared};
use crate::record::ErrorKind;

/// Connections one user may hold (the scenario's `connections_per_client` is at most this).
pub const MAX_CONNECTIONS: usize = 8;
const NO_CONN: u32 = u32::MAX;

/// One slow-line user.
pub struct ModemUser {
    /// The user's random stream (line rate, pages, images, think and linger times), named by
    /// its global number.
    rng: Pcg64Mcg,
    /// The user's downstream line: every reply to the user is read through it.
    pub line: LineBucket,
    /// The instant the user's timer is set for: its next page view (while thinking) or its
    /// line's next read (while a page loads); other timer entries for it are stale.
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

impl ModemUser {
    fn new(mut rng: Pcg64Mcg, profile: &LineProfile, first_page: Instant) -> ModemUser {
        let payload_rate = profile.draw_payload_rate(&mut rng);
        ModemUser {
            rng,
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
    fn forget(&mut self, key: usize) {
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

/// The users of one slow-line population in one worker.
pub struct SlowLineDriver {
    pop: u16,
    profile: Arc<LineProfile>,
    users: Vec<ModemUser>,
}

impl SlowLineDriver {
    /// The users numbered `users` (global numbers) of a population of `population`: their
    /// first page views start spread evenly over the ramp-up from `start` by global number,
    /// each on a line rate drawn from the population's mix.
    pub fn new(
        pop: u16,
        (users, population): (&[u32], u32),
        profile: Arc<LineProfile>,
        start: Instant,
        seed: u64,
    ) -> SlowLineDriver {
        let ramp = profile.spec.ramp_up;
        let users = users
            .iter()
            .map(|&global| {
                let spread = f64::from(global) / f64::from(population.max(1));
                let first_page = start + ramp.mul_f64(spread);
                ModemUser::new(stream(seed, pop, u64::from(global)), &profile, first_page)
            })
            .collect();
        SlowLineDriver {
            pop,
            profile,
            users,
        }
    }

    /// The users of this worker's share.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Sets each user's timer for its first page view, spread over the ramp-up.
    pub fn start(&mut self, shared: &mut Shared<'_>, _now: Instant) {
        for user in 0..self.users.len() as u32 {
            if let Some(at) = self.users[user as usize].wake_at {
                shared.timers.wake_at(at, self.wake(DriverWake::User(user)));
            }
        }
    }

    fn wake(&self, what: DriverWake) -> Wake {
        Wake::Driver {
            pop: self.pop,
            what,
        }
    }

    fn set_user_wake(&mut self, shared: &mut Shared<'_>, user: u32, at: Instant) {
        self.users[user as usize].wake_at = Some(at);
        shared.timers.wake_at(at, self.wake(DriverWake::User(user)));
    }

    fn set_conn_wake(&self, shared: &mut Shared<'_>, key: usize, at: Instant) {
        shared.conns[key].conn.wake_at = Some(at);
        shared
            .timers
            .wake_at(at, self.wake(DriverWake::Conn(key as u32)));
    }

    /// Runs a timer that is due; entries whose target moved on are skipped.
    pub fn on_wake(
        &mut self,
        shared: &mut Shared<'_>,
        what: DriverWake,
        at: Instant,
        now: Instant,
    ) {
        match what {
            DriverWake::User(user) => {
                let state = &mut self.users[user as usize];
                if state.wake_at != Some(at) {
                    return;
                }
                state.wake_at = None;
                if state.page_loading {
                    self.read_line(shared, user, now);
                } else {
                    self.start_page(shared, user, now);
                }
            }
            DriverWake::Dial(user) => {
                let state = &mut self.users[user as usize];
                if state.dial_at != Some(at) {
                    return;
                }
                state.dial_at = None;
                let wanted = std::mem::take(&mut state.dialing);
                let rtt = self.profile.application_rtt();
                for _ in 0..wanted {
                    // The user wanted it one round trip ago: its latency counts from then.
                    self.open_and_request(shared, user, at - rtt, now);
                }
                self.maybe_finish_page(shared, user, now);
            }
            DriverWake::Conn(key) => {
                let key = key as usize;
                let Some(slot) = shared.conns.get_mut(key) else {
                    return;
                };
                if slot.conn.wake_at != Some(at) {
                    return;
                }
                slot.conn.wake_at = None;
                let user = slot.client;
                if slot.conn.is_paced() {
                    slot.conn.resume_upload();
                    let outcome = shared.advance(key, now, false);
                    self.settle(shared, key, outcome, now);
                } else if slot.conn.is_idle() {
                    // Lingered long enough: the browser closes first.
                    if shared.measuring(now) {
                        if let Some(line) = shared.recorders[self.pop as usize].line.as_mut() {
                            line.lingering_closes += 1;
                        }
                    }
                    self.close(shared, key, now);
                } else if slot.conn.is_receiving() {
                    // The round trip the application adds is over: the reply may come.
                    slot.conn.drained = false;
                    self.line_takes_data(shared, user, key, now);
                }
            }
            DriverWake::Arrival | DriverWake::Think(_) => {}
        }
    }

    /// Data, a close, or writability on one of the users' connections.
    pub fn on_ready(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant, trust: bool) {
        let Some(slot) = shared.conns.get_mut(key) else {
            return;
        };
        if slot.conn.is_receiving() {
            // A reply's bytes are the line's to deliver, not the socket's.
            slot.conn.drained = false;
            if slot.conn.wake_at.is_some() {
                // The application's round trip is not over; the timer takes it from there.
                return;
            }
            let user = slot.client;
            return self.line_takes_data(shared, user, key, now);
        }
        let outcome = shared.advance(key, now, trust);
        self.settle(shared, key, outcome, now);
    }

    /// The request on connection `key` timed out: counted as an error, the connection closed,
    /// and the user's page view goes on without it.
    pub fn on_timeout(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        let outcome = shared.time_out(key, now);
        self.settle(shared, key, outcome, now);
    }

    fn settle<'w>(
        &mut self,
        shared: &mut Shared<'w>,
        key: usize,
        outcome: Outcome<'w>,
        now: Instant,
    ) {
        let Some(user) = shared.conns.get(key).map(|slot| slot.client) else {
            return;
        };
        match outcome {
            Outcome::Pending => {}
            Outcome::Paced(at) => self.set_conn_wake(shared, key, at),
            Outcome::Sent => self.request_sent(shared, key, now),
            Outcome::Replied {
                request,
                reusable,
                ok,
            } => {
                if ok {
                    self.record_line(shared, user, &request, now);
                }
                shared.recycle(request);
                if !reusable {
                    self.close(shared, key, now);
                }
                self.after_request(shared, user, now);
            }
            Outcome::Failed { kind, request } => {
                let retried =
                    self.retry_on_new_connection(shared, key, kind, request.as_deref(), now);
                if let Some(request) = request {
                    shared.recycle(request);
                }
                if retried {
                    return;
                }
                shared.count_error(self.pop, kind, now);
                self.close(shared, key, now);
                self.after_request(shared, user, now);
            }
            Outcome::IdleClosed => self.close(shared, key, now),
        }
    }

    fn close(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        if let Some((_, user)) = shared.close(key, now) {
            // The slab reuses keys: the user must not keep pointing at one that is gone.
            self.users[user as usize].forget(key);
        }
    }

    /// A page view begins: the page alone first, its images once it has arrived.
    fn start_page(&mut self, shared: &mut Shared<'_>, user: u32, now: Instant) {
        if !shared.running(now) {
            return;
        }
        let images = draw_count(
            &self.profile.spec.images_per_page,
            &mut self.users[user as usize].rng,
        );
        if shared.measuring(now) {
            if let Some(line) = shared.recorders[self.pop as usize].line.as_mut() {
                line.pages_started += 1;
            }
        }
        let state = &mut self.users[user as usize];
        state.page_loading = true;
        state.page_pending = true;
        state.queued = 1;
        state.images = images;
        self.issue_queued(shared, user, now);
    }

    /// Sends what the page view still needs on the user's connections: an idle one first,
    /// else a new one while the user has fewer than its limit.
    fn issue_queued(&mut self, shared: &mut Shared<'_>, user: u32, now: Instant) {
        let limit = (self.profile.spec.connections_per_client as usize).min(MAX_CONNECTIONS);
        while self.users[user as usize].queued > 0 && shared.running(now) {
            let state = &self.users[user as usize];
            let idle = state
                .connections()
                .find(|&key| shared.conns.get(key).is_some_and(|s| s.conn.is_idle()));
            let open = state.connections().count() + state.dialing as usize;
            if idle.is_none() && open >= limit {
                break;
            }
            let state = &mut self.users[user as usize];
            state.queued -= 1;
            state.in_flight += 1;
            if let Some(key) = idle {
                let pick = shared
                    .plan
                    .workload
                    .sample(&mut self.users[user as usize].rng);
                shared.conns[key].conn.wake_at = None;
                let outcome = shared.reuse(key, pick, now, now);
                self.settle(shared, key, outcome, now);
                continue;
            }
            let rtt = self.profile.application_rtt();
            if rtt.is_zero() {
                self.open_and_request(shared, user, now, now);
            } else {
                // The handshake's round trip comes first: the server sees the connection one
                // round trip after the user wanted it, and the request right behind it.
                let state = &mut self.users[user as usize];
                state.dialing += 1;
                if state.dial_at.is_none() {
                    state.dial_at = Some(now + rtt);
                    shared
                        .timers
                        .wake_at(now + rtt, self.wake(DriverWake::Dial(user)));
                }
            }
        }
        self.maybe_finish_page(shared, user, now);
    }

    /// Opens a connection for the user with the next request attached (`origin`: when the
    /// user wanted it). A failed connect counts an error and the page view goes on without it.
    fn open_and_request(
        &mut self,
        shared: &mut Shared<'_>,
        user: u32,
        origin: Instant,
        now: Instant,
    ) {
        let pick = shared
            .plan
            .workload
            .sample(&mut self.users[user as usize].rng);
        let shape = SlowLineSocket {
            receive_window: self.profile.spec.receive_window,
            mss: self.profile.spec.mss,
        };
        match shared.connect(self.pop, user, Some(shape), Some(self.profile.upload), now) {
            Ok(key) => {
                self.users[user as usize].adopt(key);
                shared.attach(key, pick, origin, now);
            }
            Err(kind) => {
                shared.count_error(self.pop, kind, now);
                let state = &mut self.users[user as usize];
                state.in_flight -= 1;
                if state.page_pending {
                    // No page, no images: the user sees an error and moves on.
                    state.page_pending = false;
                    state.images = 0;
                }
            }
        }
    }

    /// The whole request is out: its reply comes through the user's line, after the round
    /// trip the application adds where the kernel adds none.
    fn request_sent(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        let slot = &mut shared.conns[key];
        let used = self.users[slot.client as usize].line.used_s;
        if let Some(request) = slot.conn.request_mut() {
            request.sent_at = Some(now);
            request.line_used_at_sent_s = used;
        }
        slot.conn.drained = false;
        let rtt = self.profile.application_rtt();
        if !rtt.is_zero() {
            self.set_conn_wake(shared, key, now + rtt);
        }
        // Otherwise the reply's arrival raises an event.
    }

    /// `key` has data for the user's line: if the line is already delivering, its scheduled
    /// read will take it; if it was idle, it starts now, with nothing banked, and delivers the
    /// first bytes once it could have carried them.
    fn line_takes_data(&mut self, shared: &mut Shared<'_>, user: u32, key: usize, now: Instant) {
        if self.users[user as usize].line_busy() {
            return;
        }
        let quantum = self.profile.read_quantum();
        let waiting = shared.bytes_waiting(key);
        if waiting == 0 {
            // A close with no data (or nothing after all): read now to see which.
            return self.read_line(shared, user, now);
        }
        let line = &mut self.users[user as usize].line;
        line.restart(now);
        let at = now + line.wait_for(waiting.min(quantum));
        self.set_user_wake(shared, user, at);
    }

    /// The line's scheduled read: hands each receiving connection the bytes the line carried
    /// since the last one, and schedules the next read while data waits.
    fn read_line(&mut self, shared: &mut Shared<'_>, user: u32, now: Instant) {
        let quantum = self.profile.read_quantum();
        let state = &mut self.users[user as usize];
        state.wake_at = None;
        state.line.refill(now, quantum);
        let keys: Vec<usize> = state.connections().collect();
        for key in keys {
            let ready = shared.conns.get(key).is_some_and(|s| {
                s.client == user
                    && s.conn.is_receiving()
                    && !s.conn.drained
                    && s.conn.wake_at.is_none()
            });
            if ready {
                self.read_through_line(shared, user, key, now);
            }
        }
        // Still data waiting (the line ran out of tokens before the sockets ran dry)?
        let state = &self.users[user as usize];
        if state.wake_at.is_some() || !state.page_loading {
            return;
        }
        let mut need = 0usize;
        for key in state.connections() {
            let Some(slot) = shared.conns.get(key) else {
                continue;
            };
            let conn = &slot.conn;
            if conn.is_receiving() && !conn.drained && conn.wake_at.is_none() {
                let remaining = conn
                    .request()
                    .and_then(|r| r.reader.body_remaining())
                    .map_or(quantum, |r| (r as usize).max(1));
                need += remaining;
            }
        }
        if need > 0 {
            let wait = state
                .line
                .wait_for(need.min(quantum))
                .max(Duration::from_micros(100));
            self.set_user_wake(shared, user, now + wait);
        }
    }

    /// Reads from one connection as many bytes as the user's line has carried.
    fn read_through_line(&mut self, shared: &mut Shared<'_>, user: u32, key: usize, now: Instant) {
        loop {
            let allowed = self.users[user as usize].line.available();
            let (outcome, read) = shared.receive_metered(key, allowed, now);
            self.users[user as usize].line.spend(read);
            match outcome {
                Outcome::Pending => {
                    let drained = shared.conns.get(key).is_none_or(|s| s.conn.drained);
                    if drained || allowed <= read {
                        return;
                    }
                }
                other => return self.settle(shared, key, other, now),
            }
        }
    }

    /// A request of the user finished (or failed): the page's images may follow, on the
    /// connection if it stayed idle or on new ones.
    fn after_request(&mut self, shared: &mut Shared<'_>, user: u32, now: Instant) {
        if !shared.running(now) {
            return;
        }
        let state = &mut self.users[user as usize];
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.page_pending {
            state.page_pending = false;
            state.queued += state.images;
            state.images = 0;
        }
        self.issue_queued(shared, user, now);
    }

    /// A request on a reused connection that the server had closed (nothing of a reply came):
    /// a browser sends it again on a new connection (RFC 9112, 9.3.1), and so does this one.
    /// Returns true when the request was re-queued instead of failing.
    fn retry_on_new_connection(
        &mut self,
        shared: &mut Shared<'_>,
        key: usize,
        kind: ErrorKind,
        request: Option<&Request<'_>>,
        now: Instant,
    ) -> bool {
        if !shared.may_resend(key, kind, request) {
            return false;
        }
        let user = shared.conns[key].client;
        if shared.measuring(now) {
            let recorder = &mut shared.recorders[self.pop as usize];
            recorder.retries += 1;
            if let Some(line) = recorder.line.as_mut() {
                line.retries_on_new_connection += 1;
            }
        }
        self.close(shared, key, now);
        let state = &mut self.users[user as usize];
        state.in_flight = state.in_flight.saturating_sub(1);
        state.queued += 1;
        if shared.running(now) {
            self.issue_queued(shared, user, now);
        }
        true
    }

    /// When nothing of the page view is left: count it, let idle connections linger, think.
    fn maybe_finish_page(&mut self, shared: &mut Shared<'_>, user: u32, now: Instant) {
        let state = &self.users[user as usize];
        if !state.page_loading
            || state.queued > 0
            || state.in_flight > 0
            || state.page_pending
            || state.dialing > 0
        {
            return;
        }
        if shared.measuring(now) {
            if let Some(line) = shared.recorders[self.pop as usize].line.as_mut() {
                line.pages_completed += 1;
            }
        }
        let keys: Vec<usize> = state.connections().collect();
        for key in keys {
            if shared.conns.get(key).is_some_and(|s| s.conn.is_idle()) {
                let linger = think_time(
                    &self.profile.spec.linger,
                    &mut self.users[user as usize].rng,
                );
                self.set_conn_wake(shared, key, now + linger);
            }
        }
        let think = think_time(&self.profile.spec.think, &mut self.users[user as usize].rng);
        self.users[user as usize].page_loading = false;
        self.set_user_wake(shared, user, now + think);
    }

    /// Per reply: its time from the end of the upload to the last byte against the time the
    /// line needed (one round trip plus the line time the user spent meanwhile, on this reply
    /// or its siblings), and the bytes per second it got.
    fn record_line(&self, shared: &mut Shared<'_>, user: u32, request: &Request<'_>, now: Instant) {
        if !shared.measuring(now) {
            return;
        }
        let Some(sent_at) = request.sent_at else {
            return;
        };
        let rtt = self.profile.spec.rtt.as_secs_f64();
        let used = self.users[user as usize].line.used_s - request.line_used_at_sent_s;
        let took = now.saturating_duration_since(sent_at).as_secs_f64();
        let line_time = rtt + used;
        let Some(line) = shared.recorders[self.pop as usize].line.as_mut() else {
            return;
        };
        if line_time > 0.0 {
            let slowdown = (took / line_time * 1000.0).round() as u64;
            let _ = line.slowdown_milli.record(slowdown.clamp(1, 1_000_000_000));
        }
        let transfer = (took - rtt).max(0.001);
        let achieved = (request.received() as f64 / transfer).round() as u64;
        let _ = line
            .achieved_bytes_per_s
            .record(achieved.clamp(1, 1_000_000_000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::worker::Slot;

    /// The user-space memory of one idle slow-line user with its lingering connection, by
    /// construction: its slab slot, its user record and its two timer entries (the stale ones
    /// are popped when due). Kernel socket buffers are the kernel's, not counted here.
    #[test]
    fn an_idle_modem_connection_costs_far_less_than_2_kib_in_user_space() {
        // A slab slot is the value plus the vacant/occupied tag, rounded to the alignment.
        let slot = std::mem::size_of::<Option<Slot<'static>>>().next_multiple_of(8) + 8;
        let user = std::mem::size_of::<ModemUser>();
        let timers = 2 * std::mem::size_of::<std::cmp::Reverse<(Instant, Wake)>>();
        let total = slot + user + timers;
        eprintln!("slab slot {slot} B + user {user} B + timers {timers} B = {total} B");
        assert!(total <= 512, "{total} B per idle modem connection");
    }
}
