//! Live-stream viewers: each joins (a fixed number spread over the ramp-up, or Poisson joins),
//! connects (shaped like a slow line's end when `line = "modem"`), sends one `GET` of the
//! stream, and reads the endless response through [`StreamReader`], on readiness (LAN) or
//! through its line's token bucket (modem); every complete frame goes through [`Watch`], the
//! pure per-viewer bookkeeping (frame age, skips, freezes, age of information, CBR playout).
//! A viewer leaves when its watch time ends; a server close while it watches is a kick, not an
//! error; a stream that cannot be read is a `bad_stream` (or `verify_failed`) error; no
//! complete first frame by `startup_timeout` is a `timeout`. On a slow line the request (one
//! line and three header fields, under one segment) goes out at once, not at the upstream's
//! pace; where the kernel adds no round trip the application waits one before the connect
//! (the handshake) and one before the first byte may be read, as the modem users do.
//!
//! Times: capture times are the server's wall clock (`X-Timestamp`, Unix seconds); arrivals are
//! this worker's `Instant`s turned into Unix time through one (`Instant`, `SystemTime`) anchor
//! taken when the driver is made, so a clock step during the point does not move arrivals
//! (issue 17 research section 1.5, "Clocks").

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_pcg::Pcg64Mcg;

use crate::engine::client::stream::{
    cbr_capture_unix_us, BodyCheck, Part, StreamError, StreamKind, StreamReader,
};
use crate::engine::modem::{LineBucket, LineProfile};
use crate::engine::pacing::{think_time, ArrivalSchedule};
use crate::engine::share::ViewerSeats;
use crate::engine::source::SlowLineSocket;
use crate::engine::streams::{stream, SCHEDULE};
use crate::engine::timers::{DriverWake, Wake};
use crate::engine::viewing::{
    line_bound_fps, AgeIntegral, FreezeDetector, PlayoutBuffer, SeqVerdict, SkipCounter,
};
use crate::engine::worker::Shared;
use crate::record::{ErrorKind, PlayoutSummary, ViewerSummary, MAX_LATENCY_US};
use crate::scenario::{Arrival, Audience, ViewerSpec};

/// A viewer whose connect failed, that timed out or that the server kicked rejoins after this
/// (a fixed number of viewers stays fixed; a user presses reload after a moment, not at once).
pub const REJOIN_AFTER: Duration = Duration::from_secs(1);

/// Line reads of a slow-line viewer take at least this much of the line's time: the quantum is
/// max(MSS, payload rate x 50 ms), which bounds the generator's wake-ups per viewer at ~20/s
/// however fast the line (issue 17 research, risk 7).
pub const LINE_READ_TIME: Duration = Duration::from_millis(50);

/// The least time between two line reads of one viewer (as the modem users' reader has it).
const MIN_LINE_WAIT: Duration = Duration::from_micros(100);

/// What one frame did to a viewer's figures, for the recorder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameSeen {
    /// The frame arrived inside the measured window.
    pub measured: bool,
    /// It was the viewer's first complete frame.
    pub first: bool,
    /// Arrival minus capture time, µs (0 if the clocks put the capture after the arrival);
    /// `None` when the part carried no capture time.
    pub age_us: Option<u64>,
    /// Frames skipped before it (its sequence number's gap).
    pub skipped: u64,
    /// The interval before it was a freeze of this many ms.
    pub freeze_ms: Option<u64>,
    /// False for a duplicate or an older frame than the last (counted apart, not a frame).
    pub in_order: bool,
}

/// One viewer's per-frame bookkeeping, pure: sequence gaps ([`SkipCounter`]), freezes
/// ([`FreezeDetector`]), the age-of-information integral clipped to the measured window
/// ([`AgeIntegral`]) and, for CBR, the playout buffer ([`PlayoutBuffer`]). Times are Unix
/// seconds.
#[derive(Clone, Debug)]
pub struct Watch {
    window: (f64, f64),
    joined: f64,
    skips: SkipCounter,
    freeze: FreezeDetector,
    age: AgeIntegral,
    playout: Option<PlayoutBuffer>,
    first_frame: Option<f64>,
    /// Frames received complete inside the window.
    pub frames_in_window: u64,
    ended: Option<f64>,
}

impl Watch {
    /// A viewer that began connecting at `joined`, measured over `window` (Unix seconds).
    pub fn new(joined: f64, window: (f64, f64)) -> Watch {
        Watch {
            window,
            joined,
            skips: SkipCounter::new(),
            freeze: FreezeDetector::new(),
            age: AgeIntegral::new(window.0, window.1),
            playout: None,
            first_frame: None,
            frames_in_window: 0,
            ended: None,
        }
    }

    fn measuring(&self, at: f64) -> bool {
        at >= self.window.0 && at < self.window.1
    }

    /// A complete frame (`X-Frame-Seq` `seq`, captured at `captured`) arrived at `at`.
    pub fn on_frame(&mut self, at: f64, seq: Option<u64>, captured: Option<f64>) -> FrameSeen {
        let measured = self.measuring(at);
        let verdict = seq.map(|seq| self.skips.on_seq(seq));
        if matches!(
            verdict,
            Some(SeqVerdict::Duplicate | SeqVerdict::OutOfOrder)
        ) {
            return FrameSeen {
                measured,
                first: false,
                age_us: None,
                skipped: 0,
                freeze_ms: None,
                in_order: false,
            };
        }
        let skipped = match verdict {
            Some(SeqVerdict::Gap(skipped)) => skipped,
            _ => 0,
        };
        let first = self.first_frame.is_none();
        if first {
            self.first_frame = Some(at);
        }
        let age_us = captured.map(|captured| ((at - captured).max(0.0) * 1e6).round() as u64);
        if let Some(captured) = captured {
            self.age.on_frame(at, captured);
        }
        let frozen_before = self.freeze.freeze_ms;
        let freeze_ms = self
            .freeze
            .on_frame((at * 1000.0).max(0.0) as u64)
            // The freeze is the interval just added: the last frame's to this one's.
            .then(|| self.freeze.freeze_ms - frozen_before);
        if measured {
            self.frames_in_window += 1;
        }
        FrameSeen {
            measured,
            first,
            age_us,
            skipped,
            freeze_ms,
            in_order: true,
        }
    }

    /// CBR: `bytes` of media arrived at `at`, the newest of them captured at `captured`.
    /// The first arrival starts the playout model (at `rate_bytes_per_s`, thresholds `start_s`
    /// and `resume_s`).
    pub fn on_media(
        &mut self,
        at: f64,
        bytes: u64,
        captured: Option<f64>,
        (rate_bytes_per_s, start_s, resume_s): (f64, f64, f64),
    ) -> Option<u64> {
        let joined = self.joined;
        let playout = self
            .playout
            .get_or_insert_with(|| PlayoutBuffer::new(rate_bytes_per_s, start_s, resume_s, joined));
        playout.on_bytes(at, bytes);
        if self.first_frame.is_none() {
            self.first_frame = Some(at);
        }
        let captured = captured?;
        self.age.on_frame(at, captured);
        Some(((at - captured).max(0.0) * 1e6).round() as u64)
    }

    /// Frames skipped so far (all sequence gaps, warm-up included).
    pub fn skipped(&self) -> u64 {
        self.skips.skipped
    }

    /// Frames received in order so far.
    pub fn frames(&self) -> u64 {
        self.skips.frames
    }

    /// The viewer's first complete frame has arrived.
    pub fn started(&self) -> bool {
        self.first_frame.is_some()
    }

    /// The viewer is done at `end`: its per-viewer values. `rate_index` names its line rate;
    /// `line_bound_fps` is what its line could carry (`None`: unknown).
    pub fn finish(
        &mut self,
        end: f64,
        rate_index: usize,
        line_bound_fps: Option<f64>,
    ) -> ViewerSummary {
        let end = *self.ended.get_or_insert(end);
        self.age.finish(end);
        if let Some(playout) = self.playout.as_mut() {
            playout.finish(end);
        }
        let watched_s = (end.min(self.window.1) - self.joined.max(self.window.0)).max(0.0);
        ViewerSummary {
            rate_index,
            watched_s,
            frames: self.frames_in_window,
            age_of_information_s: self.age.time_average(),
            age_area: (self.age.area(), self.age.covered()),
            line_bound_fps,
            playout: self.playout.as_ref().map(|p| PlayoutSummary {
                initial_buffering_s: p.initial_buffering_s(),
                stalls: p.stalls,
                stall_ratio: p.stall_ratio(),
            }),
        }
    }
}

/// The Unix time (seconds) of `t`, from an `(Instant, Unix seconds)` anchor read together.
fn unix_at((instant, unix): (Instant, f64), t: Instant) -> f64 {
    if t >= instant {
        unix + (t - instant).as_secs_f64()
    } else {
        unix - (instant - t).as_secs_f64()
    }
}

/// Where a viewer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not joined: waits for its join (a fixed seat) or is free (a join slot).
    Waiting,
    /// Joined; the application adds the handshake's round trip before the connect.
    Dialing,
    /// The connect is under way.
    Connecting,
    /// The request is being written.
    Sending,
    /// Request out; the application adds the round trip before the first bytes may come.
    RoundTrip,
    /// Reading the stream.
    Watching,
    /// A join slot nobody uses.
    Free,
}

/// A viewer's stream: its reader and its bookkeeping.
struct Live {
    reader: StreamReader,
    watch: Watch,
    /// Decoded body bytes already counted.
    body_counted: u64,
    /// CBR media bytes already fed to the playout model.
    media_counted: u64,
    /// CBR offset jumps already counted.
    cbr_skipped_counted: u64,
}

/// One viewer seat: a fixed viewer (rejoining after it leaves) or a slot for Poisson joins.
struct Seat {
    rng: Pcg64Mcg,
    phase: Phase,
    fixed: bool,
    /// The instant the seat's timer is set for; other timer entries for it are stale.
    wake_at: Option<Instant>,
    /// Waiting: when to join; Dialing / RoundTrip: when that round trip is over.
    step_at: Option<Instant>,
    /// The line's next read (modem), while data waits.
    line_at: Option<Instant>,
    leave_at: Option<Instant>,
    key: Option<usize>,
    line: Option<LineBucket>,
    quantum: usize,
    rate_index: usize,
    payload_rate: Option<f64>,
    sent: usize,
    started: Instant,
    live: Option<Box<Live>>,
}

/// The viewers of one viewer population in one worker.
pub struct ViewerDriver {
    pop: u16,
    spec: Arc<ViewerSpec>,
    profile: Option<Arc<LineProfile>>,
    seats: Vec<Seat>,
    free: Vec<u32>,
    joins: Option<(ArrivalSchedule, Pcg64Mcg, u32, u32)>,
    seed: u64,
    request: Vec<u8>,
    parts: Vec<Part>,
    anchor: (Instant, f64),
    window_unix: (f64, f64),
}

impl ViewerDriver {
    /// Population `pop`'s viewers in this worker: `seats` says which; `profile` is their slow
    /// line (`None`: LAN). `host` is the `Host` header's value.
    pub fn new(
        pop: u16,
        (spec, profile, seats): (Arc<ViewerSpec>, Option<Arc<LineProfile>>, &ViewerSeats),
        (start, measure_from, end): (Instant, Instant, Instant),
        host: &str,
        seed: u64,
    ) -> ViewerDriver {
        // One anchor, read once: this instant and its Unix time (`start` may be in the future).
        let anchor = (
            Instant::now(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        let unix = |t: Instant| unix_at(anchor, t);
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: afterburner-loadgen viewer\r\n\r\n",
            spec.stream
        )
        .into_bytes();
        let mut driver = ViewerDriver {
            pop,
            spec,
            profile,
            seats: Vec::new(),
            free: Vec::new(),
            joins: None,
            seed,
            request,
            parts: Vec::new(),
            anchor,
            window_unix: (unix(measure_from), unix(end)),
        };
        match seats {
            ViewerSeats::Fixed {
                viewers,
                population,
            } => {
                let ramp = match driver.spec.audience {
                    Audience::Fixed { ramp_up, .. } => ramp_up,
                    Audience::Joins { .. } => Duration::ZERO,
                };
                for &global in viewers {
                    let spread = f64::from(global) / f64::from((*population).max(1));
                    let mut seat = driver.new_seat(stream(seed, pop, u64::from(global)), true);
                    seat.step_at = Some(start + ramp.mul_f64(spread));
                    driver.seats.push(seat);
                }
            }
            ViewerSeats::Joins {
                rate,
                stride,
                offset,
            } => {
                let mut gaps = stream(seed, pop, SCHEDULE);
                let mut schedule = ArrivalSchedule::new(start, *rate, Arrival::Poisson, &mut gaps);
                schedule.advance_to_own(*stride, *offset, &mut gaps);
                driver.joins = Some((schedule, gaps, *stride, *offset));
            }
        }
        driver
    }

    fn new_seat(&self, mut rng: Pcg64Mcg, fixed: bool) -> Seat {
        let (rate_index, payload_rate, quantum) = match &self.profile {
            Some(profile) => {
                let index = profile.draw_rate_index(&mut rng);
                let rate = profile.payload_rates.get(index).map_or(1.0, |r| r.0);
                let quantum = profile
                    .read_quantum()
                    .max((rate * LINE_READ_TIME.as_secs_f64()) as usize);
                (index, Some(rate), quantum)
            }
            None => (0, None, usize::MAX),
        };
        Seat {
            rng,
            phase: Phase::Waiting,
            fixed,
            wake_at: None,
            step_at: None,
            line_at: None,
            leave_at: None,
            key: None,
            line: None,
            quantum,
            rate_index,
            payload_rate,
            sent: 0,
            started: Instant::now(),
            live: None,
        }
    }

    /// Fixed viewers in this worker (the slab's first size).
    pub fn viewers(&self) -> usize {
        self.seats.len()
    }

    fn unix(&self, t: Instant) -> f64 {
        unix_at(self.anchor, t)
    }

    fn wake(&self, what: DriverWake) -> Wake {
        Wake::Driver {
            pop: self.pop,
            what,
        }
    }

    /// Sets the fixed viewers' first joins and the first Poisson join.
    pub fn start(&mut self, shared: &mut Shared<'_>, now: Instant) {
        for seat in 0..self.seats.len() as u32 {
            self.arm(shared, seat, now);
        }
        if let Some((schedule, ..)) = &self.joins {
            let due = schedule.next_due();
            shared.timers.wake_at(due, self.wake(DriverWake::Arrival));
        }
    }

    /// The seat's next deadline: its step, line read, leave, or startup timeout.
    fn arm(&mut self, shared: &mut Shared<'_>, seat: u32, _now: Instant) {
        let timeout = self.spec.startup_timeout;
        let state = &mut self.seats[seat as usize];
        let waiting_for_first = matches!(
            state.phase,
            Phase::Dialing
                | Phase::Connecting
                | Phase::Sending
                | Phase::RoundTrip
                | Phase::Watching
        ) && !state.live.as_ref().is_some_and(|l| l.watch.started());
        let next = [
            state.step_at,
            state.line_at,
            state.leave_at,
            waiting_for_first.then(|| state.started + timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next.filter(|_| next != state.wake_at) {
            state.wake_at = next;
            shared.timers.wake_at(
                at,
                Wake::Driver {
                    pop: self.pop,
                    what: DriverWake::User(seat),
                },
            );
        }
    }

    /// A timer this driver set is due.
    pub fn on_wake(
        &mut self,
        shared: &mut Shared<'_>,
        what: DriverWake,
        at: Instant,
        now: Instant,
    ) {
        match what {
            DriverWake::Arrival => self.joins_due(shared, at, now),
            DriverWake::User(seat) => {
                let Some(state) = self.seats.get_mut(seat as usize) else {
                    return;
                };
                if state.wake_at != Some(at) {
                    return;
                }
                state.wake_at = None;
                self.record_lag(shared, at, now);
                self.seat_due(shared, seat, now);
                if self.seats[seat as usize].phase != Phase::Free {
                    self.arm(shared, seat, now);
                }
            }
            _ => {}
        }
    }

    /// A late timer fakes skips (the reader was late, not the server): every timer's lateness
    /// goes into the population's schedule lag.
    fn record_lag(&self, shared: &mut Shared<'_>, at: Instant, now: Instant) {
        if shared.measuring(now) {
            let lag = now.saturating_duration_since(at).as_micros() as u64;
            let _ = shared.recorders[self.pop as usize]
                .schedule_lag_us
                .record(lag.clamp(1, MAX_LATENCY_US));
        }
    }

    fn joins_due(&mut self, shared: &mut Shared<'_>, at: Instant, now: Instant) {
        self.record_lag(shared, at, now);
        let Some((schedule, gaps, stride, offset)) = self.joins.as_mut() else {
            return;
        };
        let mut due_joins = Vec::new();
        loop {
            let due = schedule.next_due();
            if due > now || due >= shared.plan.end {
                break;
            }
            due_joins.push(schedule.index());
            schedule.advance(gaps);
            schedule.advance_to_own(*stride, *offset, gaps);
        }
        let next = schedule.next_due();
        if next < shared.plan.end {
            shared.timers.wake_at(next, self.wake(DriverWake::Arrival));
        }
        for index in due_joins {
            let seat = self.new_seat(stream(self.seed, self.pop, index), false);
            let number = match self.free.pop() {
                Some(free) => {
                    self.seats[free as usize] = seat;
                    free
                }
                None => {
                    self.seats.push(seat);
                    self.seats.len() as u32 - 1
                }
            };
            self.join(shared, number, now);
            self.arm(shared, number, now);
        }
    }

    fn seat_due(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        let state = &self.seats[seat as usize];
        if state.leave_at.is_some_and(|at| at <= now) {
            return self.leave(shared, seat, now);
        }
        let started = state.live.as_ref().is_some_and(|l| l.watch.started());
        if state.phase != Phase::Waiting
            && !started
            && now >= state.started + self.spec.startup_timeout
        {
            return self.fail(shared, seat, ErrorKind::Timeout, now);
        }
        if state.step_at.is_some_and(|at| at <= now) {
            self.seats[seat as usize].step_at = None;
            match self.seats[seat as usize].phase {
                Phase::Waiting => self.join(shared, seat, now),
                Phase::Dialing => self.connect(shared, seat, now),
                Phase::RoundTrip => {
                    self.seats[seat as usize].phase = Phase::Watching;
                    self.data_ready(shared, seat, now);
                }
                _ => {}
            }
        }
        if self.seats[seat as usize]
            .line_at
            .is_some_and(|at| at <= now)
        {
            self.read_line(shared, seat, now);
        }
    }

    /// A viewer joins: its watch time is drawn, its connect begins (after the handshake's
    /// round trip where the application adds it).
    fn join(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        if !shared.running(now) {
            return;
        }
        let measuring = shared.measuring(now);
        shared.viewer_interval(self.pop).joins += 1;
        if measuring {
            if let Some(viewer) = shared.recorders[self.pop as usize].viewer.as_mut() {
                viewer.joins += 1;
            }
        }
        let rtt = self
            .profile
            .as_ref()
            .map_or(Duration::ZERO, |p| p.application_rtt());
        let (joined, window) = (self.unix(now), self.window_unix);
        let state = &mut self.seats[seat as usize];
        state.started = now;
        state.leave_at = self
            .spec
            .watch
            .map(|watch| now + think_time(&watch, &mut state.rng));
        state.sent = 0;
        state.line = None;
        state.line_at = None;
        state.live = Some(Box::new(Live {
            reader: StreamReader::new(BodyCheck::afterburner()),
            watch: Watch::new(joined, window),
            body_counted: 0,
            media_counted: 0,
            cbr_skipped_counted: 0,
        }));
        if rtt.is_zero() {
            self.connect(shared, seat, now);
        } else {
            let state = &mut self.seats[seat as usize];
            state.phase = Phase::Dialing;
            state.step_at = Some(now + rtt);
        }
    }

    fn connect(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        let shape = self.profile.as_ref().map(|p| SlowLineSocket {
            receive_window: p.spec.receive_window,
            mss: p.spec.mss,
        });
        match shared.connect(self.pop, seat, shape, None, now) {
            Ok(key) => {
                let state = &mut self.seats[seat as usize];
                state.key = Some(key);
                state.phase = Phase::Connecting;
            }
            Err(kind) => self.fail(shared, seat, kind, now),
        }
    }

    /// Readiness on one of the viewers' connections.
    pub fn on_ready(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        let Some(seat) = shared.conns.get(key).map(|slot| slot.client) else {
            return;
        };
        if self.seats.get(seat as usize).and_then(|s| s.key) != Some(key) {
            return;
        }
        if self.seats[seat as usize].phase == Phase::Connecting {
            match shared.connect_done(key) {
                Err(e) => return self.fail(shared, seat, ErrorKind::from_io(&e, true), now),
                Ok(false) => return,
                Ok(true) => self.seats[seat as usize].phase = Phase::Sending,
            }
        }
        if self.seats[seat as usize].phase == Phase::Sending {
            self.send(shared, seat, now);
        }
        if self.seats[seat as usize].phase == Phase::Watching {
            self.data_ready(shared, seat, now);
        }
        if self.seats[seat as usize].phase != Phase::Free {
            self.arm(shared, seat, now);
        }
    }

    fn send(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        let Some(key) = self.seats[seat as usize].key else {
            return;
        };
        while self.seats[seat as usize].sent < self.request.len() {
            let from = self.seats[seat as usize].sent;
            match shared.write_raw(key, &self.request[from..]) {
                Ok(n) => self.seats[seat as usize].sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(shared, seat, ErrorKind::from_io(&e, false), now),
            }
        }
        shared.recorders[self.pop as usize].lifetime.requests_sent += 1;
        let rtt = self
            .profile
            .as_ref()
            .map_or(Duration::ZERO, |p| p.application_rtt());
        let state = &mut self.seats[seat as usize];
        if rtt.is_zero() {
            state.phase = Phase::Watching;
        } else {
            state.phase = Phase::RoundTrip;
            state.step_at = Some(now + rtt);
        }
    }

    /// The stream may have data: a LAN viewer reads it all now; a slow line starts delivering
    /// it (nothing banked) unless a line read is already scheduled.
    fn data_ready(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        let Some(key) = self.seats[seat as usize].key else {
            return;
        };
        if self.profile.is_none() {
            loop {
                let read = match shared.read_raw(key, usize::MAX).map(|b| b.len()) {
                    Ok(0) => return self.closed(shared, seat, None, now),
                    Ok(n) => self.feed(shared, seat, n, now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) => return self.closed(shared, seat, Some(e), now),
                };
                if !read {
                    return;
                }
            }
        }
        let state = &self.seats[seat as usize];
        if state.line_at.is_some() {
            return;
        }
        let waiting = shared.bytes_waiting(key);
        if waiting == 0 {
            // A close with no data, or nothing after all: one read tells which.
            return self.read_line(shared, seat, now);
        }
        let state = &mut self.seats[seat as usize];
        let rate = state.payload_rate.unwrap_or(1.0);
        let line = state.line.get_or_insert_with(|| LineBucket::new(rate, now));
        line.restart(now);
        state.line_at = Some(now + line.wait_for(waiting.min(state.quantum)));
    }

    /// The line's scheduled read: what it carried since the last one, at most one quantum.
    fn read_line(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        let Some(key) = self.seats[seat as usize].key else {
            return;
        };
        let state = &mut self.seats[seat as usize];
        state.line_at = None;
        let rate = state.payload_rate.unwrap_or(1.0);
        let quantum = state.quantum;
        let line = state.line.get_or_insert_with(|| LineBucket::new(rate, now));
        line.refill(now, quantum);
        loop {
            let allowed = self.seats[seat as usize]
                .line
                .as_ref()
                .map_or(1, |l| l.available())
                .max(1);
            let read = match shared.read_raw(key, allowed).map(|b| b.len()) {
                Ok(0) => return self.closed(shared, seat, None, now),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.closed(shared, seat, Some(e), now),
            };
            if let Some(line) = self.seats[seat as usize].line.as_mut() {
                line.spend(read);
            }
            if !self.feed(shared, seat, read, now) {
                return;
            }
            if read < allowed {
                // The socket is empty: the next data raises an event, but a FIN that came with
                // the data (its event spent while the line was busy) raises none: read it now.
                let closed = shared.conns.get(key).is_some_and(|s| s.conn.peer_closed);
                if closed {
                    continue;
                }
                return;
            }
            let state = &mut self.seats[seat as usize];
            if state.line.as_ref().is_some_and(|l| l.available() == 0) {
                let wait = state
                    .line
                    .as_ref()
                    .map_or(MIN_LINE_WAIT, |l| l.wait_for(state.quantum))
                    .max(MIN_LINE_WAIT);
                state.line_at = Some(now + wait);
                return;
            }
        }
    }

    /// Feeds the `read` bytes just read (in the worker's read buffer) to the seat's stream
    /// reader and books every complete frame. Returns false when the viewer is gone (a bad
    /// stream).
    fn feed(&mut self, shared: &mut Shared<'_>, seat: u32, read: usize, now: Instant) -> bool {
        let mut parts = std::mem::take(&mut self.parts);
        parts.clear();
        let fed = {
            let Some(live) = self.seats[seat as usize].live.as_mut() else {
                return false;
            };
            live.reader.feed(shared.last_read(read), &mut parts)
        };
        if let Err(error) = fed {
            self.parts = parts;
            let kind = match error {
                StreamError::BodyMismatch { .. } => ErrorKind::VerifyFailed,
                StreamError::BadStatus(_) => ErrorKind::BadStatus,
                _ => ErrorKind::BadStream,
            };
            self.fail(shared, seat, kind, now);
            return false;
        }
        let at = self.unix(now);
        let measuring = shared.measuring(now);
        let pop = self.pop as usize;
        let rate_index = self.seats[seat as usize].rate_index;
        let playout = (
            self.spec.playout.start.as_secs_f64(),
            self.spec.playout.resume.as_secs_f64(),
        );
        let state = &mut self.seats[seat as usize];
        let live = state.live.as_mut().expect("fed above");
        let body = live.reader.body_bytes();
        let new_body = body - live.body_counted;
        live.body_counted = body;
        let head = live.reader.head().cloned();
        let mut first_frame = false;
        {
            let recorder = shared.recorders[pop].viewer.as_mut();
            if let (Some(recorder), Some(head)) = (recorder, &head) {
                if recorder.format.is_empty() {
                    recorder.format = match head.kind {
                        StreamKind::Multipart { .. } => "mjpeg".into(),
                        StreamKind::Cbr => "cbr".into(),
                    };
                    recorder.source_fps = head.fps.unwrap_or(0.0);
                }
                if measuring {
                    recorder.bytes += new_body;
                }
            }
        }
        // CBR: the media that arrived, the age of its newest byte, and its offset gaps.
        if let (Some(checker), Some(head)) = (live.reader.cbr(), &head) {
            let media = checker.bytes - live.media_counted;
            // A CBR stream has no frame numbers: each jump in its offsets counts as one gap.
            let skipped = checker.gaps - live.cbr_skipped_counted;
            live.media_counted = checker.bytes;
            live.cbr_skipped_counted = checker.gaps;
            if media > 0 {
                let rate = head.rate_bytes_per_s.unwrap_or(0);
                let captured = match (head.epoch_unix_us, checker.end_offset()) {
                    (Some(epoch), Some(offset)) if rate > 0 => {
                        Some(cbr_capture_unix_us(epoch, offset, rate) as f64 / 1e6)
                    }
                    _ => None,
                };
                first_frame = !live.watch.started();
                let age = live.watch.on_media(
                    at,
                    media,
                    captured,
                    (rate.max(1) as f64, playout.0, playout.1),
                );
                let interval = shared.viewer_interval(self.pop);
                interval.frames_skipped += skipped;
                if let Some(age) = age {
                    let _ = interval.frame_age_us.record(age.clamp(1, MAX_LATENCY_US));
                }
                if let Some(recorder) = shared.recorders[pop].viewer.as_mut() {
                    recorder.frame_bytes = rate;
                    recorder.lifetime_frames_skipped += skipped;
                    if measuring {
                        recorder.frames_skipped += skipped;
                        if let Some(age) = age {
                            let _ = recorder.frame_age_us.record(age.clamp(1, 1_000_000_000));
                        }
                    }
                }
            }
        }
        for part in &parts {
            let captured = part.capture_unix_us.map(|us| us as f64 / 1e6);
            let seen = live.watch.on_frame(at, part.seq, captured);
            if !seen.in_order {
                continue;
            }
            first_frame |= seen.first;
            let interval = shared.viewer_interval(self.pop);
            interval.frames += 1;
            interval.frames_skipped += seen.skipped;
            if let Some(age) = seen.age_us {
                let _ = interval.frame_age_us.record(age.clamp(1, MAX_LATENCY_US));
            }
            if let Some(recorder) = shared.recorders[pop].viewer.as_mut() {
                recorder.lifetime_frames += 1;
                recorder.lifetime_frames_skipped += seen.skipped;
                recorder.frame_bytes = part.len;
                if seen.measured {
                    recorder.record_frame(rate_index, seen.age_us, seen.skipped);
                    if let Some(ms) = seen.freeze_ms {
                        recorder.record_freeze(rate_index, ms);
                    }
                }
            }
        }
        // Startup is recorded over the whole point, warm-up included: a fixed audience joins
        // during its ramp, before the window, and its startup is what the ramp measures.
        if first_frame {
            let startup = now.saturating_duration_since(state.started).as_micros() as u64;
            if let Some(recorder) = shared.recorders[pop].viewer.as_mut() {
                let _ = recorder.startup_us.record(startup.clamp(1, 1_000_000_000));
            }
        }
        self.parts = parts;
        true
    }

    /// The server closed the stream (`error`: with a reset): a kick once the stream's head
    /// has come, else the request's error.
    fn closed(
        &mut self,
        shared: &mut Shared<'_>,
        seat: u32,
        error: Option<io::Error>,
        now: Instant,
    ) {
        let watching = self.seats[seat as usize]
            .live
            .as_ref()
            .is_some_and(|l| l.reader.head().is_some());
        if !watching {
            let kind = match error {
                Some(e) => ErrorKind::from_io(&e, false),
                None => ErrorKind::Closed,
            };
            return self.fail(shared, seat, kind, now);
        }
        shared.viewer_interval(self.pop).kicks += 1;
        if shared.measuring(now) {
            if let Some(viewer) = shared.recorders[self.pop as usize].viewer.as_mut() {
                viewer.kicks += 1;
            }
        }
        self.done(shared, seat, now, Some(now + REJOIN_AFTER));
    }

    /// The viewer's watch time is over: it closes the stream.
    fn leave(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant) {
        shared.viewer_interval(self.pop).leaves += 1;
        if shared.measuring(now) {
            if let Some(viewer) = shared.recorders[self.pop as usize].viewer.as_mut() {
                viewer.leaves += 1;
            }
        }
        self.done(shared, seat, now, Some(now));
    }

    /// The viewer failed (`kind` counted as an error).
    fn fail(&mut self, shared: &mut Shared<'_>, seat: u32, kind: ErrorKind, now: Instant) {
        shared.count_error(self.pop, kind, now);
        self.done(shared, seat, now, Some(now + REJOIN_AFTER));
    }

    /// The viewer is done at `now`: its connection closed, its figures recorded; a fixed seat
    /// rejoins at `rejoin` (a new viewer), a join slot is freed.
    fn done(&mut self, shared: &mut Shared<'_>, seat: u32, now: Instant, rejoin: Option<Instant>) {
        if let Some(key) = self.seats[seat as usize].key.take() {
            shared.close(key, now);
        }
        self.summarise(shared, seat, now);
        let state = &mut self.seats[seat as usize];
        state.line_at = None;
        state.leave_at = None;
        state.wake_at = None;
        if state.fixed {
            state.phase = Phase::Waiting;
            state.step_at = rejoin.filter(|at| *at < shared.plan.end);
        } else {
            state.phase = Phase::Free;
            state.step_at = None;
            self.free.push(seat);
        }
    }

    /// Records the seat's viewer (if it has one) as finished at `end`.
    fn summarise(&mut self, shared: &mut Shared<'_>, seat: u32, end: Instant) {
        let end_unix = self.unix(end);
        let state = &mut self.seats[seat as usize];
        let Some(mut live) = state.live.take() else {
            return;
        };
        let source_fps = live.reader.head().and_then(|h| h.fps);
        let frames = live.watch.frames();
        let bound = match (source_fps, frames) {
            (Some(fps), frames) if frames > 0 => {
                let wire_per_frame = live.reader.body_bytes() / frames;
                Some(match state.payload_rate {
                    Some(rate) => line_bound_fps(fps, rate, wire_per_frame),
                    None => fps,
                })
            }
            (Some(fps), _) => Some(fps),
            _ => None,
        };
        let summary = live.watch.finish(end_unix, state.rate_index, bound);
        if let Some(viewer) = shared.recorders[self.pop as usize].viewer.as_mut() {
            viewer.record_viewer(&summary);
        }
    }

    /// The point is over: every viewer still watching is recorded as watching to `end`.
    pub fn wind_up(&mut self, shared: &mut Shared<'_>, end: Instant) {
        for seat in 0..self.seats.len() as u32 {
            self.summarise(shared, seat, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_booked_with_their_age_gaps_and_window() {
        // Window [10, 20); joined at 9.5.
        let mut watch = Watch::new(9.5, (10.0, 20.0));
        let first = watch.on_frame(9.8, Some(5), Some(9.6));
        assert!(first.first && !first.measured && first.in_order);
        assert_eq!(first.age_us, Some(200_000));
        assert_eq!(first.skipped, 0, "no gap before the first frame");
        let next = watch.on_frame(10.1, Some(6), Some(10.0));
        assert_eq!((next.first, next.measured, next.skipped), (false, true, 0));
        let gap = watch.on_frame(10.9, Some(9), Some(10.3));
        assert_eq!(gap.skipped, 2);
        assert_eq!(gap.age_us, Some(600_000));
        let old = watch.on_frame(11.0, Some(8), Some(10.2));
        assert!(!old.in_order, "an older frame is not a frame");
        assert_eq!((watch.frames(), watch.skipped()), (3, 2));
        // A capture after the arrival (clocks apart) is an age of 0, not a wrap-around.
        let ahead = watch.on_frame(11.5, Some(10), Some(11.6));
        assert_eq!(ahead.age_us, Some(0));
        let summary = watch.finish(12.0, 0, Some(10.0));
        // Watched inside the window from 10 to 12; three frames inside it.
        assert!((summary.watched_s - 2.0).abs() < 1e-9);
        assert_eq!(summary.frames, 3);
        // Age areas: [10, 10.1) at g 9.6: (0.5^2 - 0.4^2)/2 = 0.045; [10.1, 10.9) at 10.0:
        // (0.9^2 - 0.1^2)/2 = 0.4; [10.9, 11.5) at 10.3: (1.2^2 - 0.6^2)/2 = 0.54;
        // [11.5, 12) at 11.6: (0.4^2 - (-0.1)^2)/2 = 0.075. Sum 1.06 over 2 s.
        let (area, covered) = summary.age_area;
        assert!((area - 1.06).abs() < 1e-9, "{area}");
        assert!((covered - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_late_frame_after_a_steady_run_is_a_freeze_of_its_interval() {
        let mut watch = Watch::new(0.0, (0.0, 100.0));
        for k in 0..10u64 {
            let at = 1.0 + k as f64 * 0.25;
            assert_eq!(watch.on_frame(at, Some(k), Some(at)).freeze_ms, None);
        }
        // 9 intervals of 250 ms, then 1,000 ms: average (2250 + 1000)/10 = 325, threshold
        // max(975, 475) = 975 <= 1000: a freeze.
        let late = watch.on_frame(1.0 + 9.0 * 0.25 + 1.0, Some(10), None);
        assert_eq!(late.freeze_ms, Some(1000));
    }

    #[test]
    fn a_cbr_viewer_plays_out_and_ages_by_its_newest_byte() {
        let mut watch = Watch::new(0.0, (0.0, 10.0));
        // 1,000 B/s, start 2 s, resume 1 s: 2,000 bytes at 0 play 0-2 s; then a stall to 5.4.
        assert_eq!(
            watch.on_media(0.0, 2000, Some(-0.5), (1000.0, 2.0, 1.0)),
            Some(500_000)
        );
        watch.on_media(5.0, 500, None, (1000.0, 2.0, 1.0));
        watch.on_media(5.4, 600, None, (1000.0, 2.0, 1.0));
        let summary = watch.finish(5.4, 0, None);
        let playout = summary.playout.expect("a CBR viewer");
        assert_eq!(playout.stalls, 1);
        assert_eq!(playout.initial_buffering_s, Some(0.0));
        let ratio = playout.stall_ratio.unwrap();
        assert!((ratio - 3.4 / 5.4).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn a_slow_line_reads_in_quanta_of_at_least_fifty_milliseconds() {
        let text = r#"
            [[clients]]
            name = "v"
            kind = "viewer"
            stream = "/cam.mjpg"
            clients = 1
            line = "modem"
            downstream_mix = [{ rate = "16k" }, { rate = "1M" }]
            link_overhead_bytes = 0
        "#;
        let scenario =
            crate::scenario::Scenario::parse(text, std::path::Path::new("t.toml")).unwrap();
        let crate::scenario::Population::Viewer(spec) = &scenario.clients[0] else {
            panic!("a viewer population");
        };
        let profile = Arc::new(LineProfile::new(
            &spec.modem_spec().unwrap(),
            crate::engine::modem::RttMode::Application,
        ));
        let driver = ViewerDriver::new(
            0,
            (
                Arc::new((**spec).clone()),
                Some(profile),
                &ViewerSeats::Fixed {
                    viewers: (0..40).collect(),
                    population: 40,
                },
            ),
            (Instant::now(), Instant::now(), Instant::now()),
            "localhost",
            7,
        );
        let mut quanta: Vec<(usize, usize)> = driver
            .seats
            .iter()
            .map(|s| (s.rate_index, s.quantum))
            .collect();
        quanta.sort_unstable();
        quanta.dedup();
        // 16k: 2,000 B/s x 50 ms = 100 B, under one segment: 536. 1M: 125,000 x 0.05 = 6,250.
        assert_eq!(quanta, vec![(0, 536), (1, 6250)]);
    }
}
