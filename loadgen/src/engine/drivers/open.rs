//! Open-loop arrivals: requests due on a schedule fixed in advance, whatever the server does.
//! Each request's latency counts from when it was due, so a stalled server cannot hide its
//! stall (no coordinated omission); arrivals beyond `max_in_flight` wait for a slot, and their
//! wait is part of their latency.

use std::collections::VecDeque;
use std::time::Instant;

use rand_pcg::Pcg64Mcg;

use crate::engine::pacing::ArrivalSchedule;
use crate::engine::streams::{stream, SCHEDULE};
use crate::engine::timers::{DriverWake, Wake};
use crate::engine::worker::{Outcome, Shared};
use crate::record::MAX_LATENCY_US;
use crate::scenario::Arrival;

/// One open-loop population's arrivals in one worker: its share of the population's one
/// schedule, arrival `i` when `i % stride == offset`.
pub struct OpenDriver {
    pop: u16,
    schedule: ArrivalSchedule,
    /// The schedule's own stream (the gaps), the same in every worker.
    gaps: Pcg64Mcg,
    stride: u32,
    offset: u32,
    seed: u64,
    in_flight: u32,
    max_in_flight: u32,
    /// Arrivals (number, due time) waiting for an in-flight slot.
    queued: VecDeque<(u64, Instant)>,
    /// Kept-alive connections between requests.
    idle: Vec<usize>,
}

impl OpenDriver {
    /// Population `pop`'s arrivals in this worker: `rate` per second from `start`, gaps drawn as
    /// `arrival` says, at most `max_in_flight` outstanding (later arrivals queue).
    /// The share `(stride, offset)` of population `pop`'s schedule of `rate` per second from
    /// `start`, at most `max_in_flight` outstanding.
    pub fn new(
        pop: u16,
        start: Instant,
        (rate, arrival): (f64, Arrival),
        (stride, offset): (u32, u32),
        max_in_flight: u32,
        seed: u64,
    ) -> OpenDriver {
        let mut gaps = stream(seed, pop, SCHEDULE);
        let mut schedule = ArrivalSchedule::new(start, rate, arrival, &mut gaps);
        schedule.advance_to_own(stride, offset, &mut gaps);
        OpenDriver {
            pop,
            schedule,
            gaps,
            stride,
            offset,
            seed,
            in_flight: 0,
            max_in_flight,
            queued: VecDeque::new(),
            idle: Vec::new(),
        }
    }

    /// Sets the timer for the first arrival.
    pub fn start(&mut self, shared: &mut Shared<'_>, _now: Instant) {
        self.wake_at_next_arrival(shared);
    }

    /// Connection `key` is ready (`trust`: no FIN yet, so a short read emptied the socket); a
    /// finished request frees its slot for the oldest queued arrival.
    pub fn on_ready(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant, trust: bool) {
        let outcome = shared.advance(key, now, trust);
        self.settle(shared, key, outcome, now);
    }

    /// Every arrival due by now leaves, or queues for a slot.
    pub fn on_wake(&mut self, shared: &mut Shared<'_>, what: DriverWake, now: Instant) {
        if what != DriverWake::Arrival {
            return;
        }
        loop {
            let due = self.schedule.next_due();
            if due > now || due >= shared.plan.end {
                break;
            }
            let arrival = self.schedule.index();
            self.schedule.advance(&mut self.gaps);
            self.schedule
                .advance_to_own(self.stride, self.offset, &mut self.gaps);
            if self.in_flight >= self.max_in_flight {
                self.queued.push_back((arrival, due));
                if now >= shared.plan.measure_from {
                    shared.recorders[self.pop as usize].queued_arrivals += 1;
                }
            } else {
                self.issue(shared, arrival, due, now);
            }
        }
        self.wake_at_next_arrival(shared);
    }

    /// The request on connection `key` timed out: counted as an error, the connection closed,
    /// its slot freed.
    pub fn on_timeout(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        let outcome = shared.time_out(key, now);
        self.settle(shared, key, outcome, now);
    }

    /// Arrivals still queued for a slot at the end: unanswered, each with its wait so far as a
    /// lower bound of its latency.
    pub fn wind_up(&mut self, shared: &mut Shared<'_>, end: Instant) {
        let recorder = &mut shared.recorders[self.pop as usize];
        for (_, due) in self.queued.drain(..) {
            recorder.unanswered += 1;
            // Nothing was picked for it yet; the lower bound goes to the first class.
            let waited_us = end.saturating_duration_since(due).as_micros() as u64;
            recorder.classes[0].record_unanswered(waited_us);
        }
    }

    fn wake_at_next_arrival(&self, shared: &mut Shared<'_>) {
        let due = self.schedule.next_due();
        if due < shared.plan.end {
            let wake = Wake::Driver {
                pop: self.pop,
                what: DriverWake::Arrival,
            };
            shared.timers.wake_at(due, wake);
        }
    }

    /// Arrival number `arrival`, due at `due`, leaves now: on an idle connection, or a new one.
    fn issue(&mut self, shared: &mut Shared<'_>, arrival: u64, due: Instant, now: Instant) {
        let window = shared.window;
        let measuring = shared.measuring(now);
        let recorder = &mut shared.recorders[self.pop as usize];
        if measuring {
            let lag_us = now.saturating_duration_since(due).as_micros() as u64;
            let _ = recorder
                .schedule_lag_us
                .record(lag_us.clamp(1, MAX_LATENCY_US));
        }
        // Its latency counts from when it was due: so does its stay in flight.
        recorder
            .concurrency
            .requests_in_flight
            .add_stay(due, now, window);
        // Its URL comes from its own stream: whichever worker sends it, it asks for the same.
        let pick = shared
            .plan
            .workload
            .sample(&mut stream(self.seed, self.pop, arrival));
        self.in_flight += 1;
        while let Some(key) = self.idle.pop() {
            if shared
                .conns
                .get(key)
                .is_some_and(|slot| slot.conn.is_idle())
            {
                let outcome = shared.reuse(key, pick, due, now);
                return self.settle(shared, key, outcome, now);
            }
        }
        match shared.connect(self.pop, 0, None, None, now) {
            Ok(key) => shared.attach(key, pick, due, now),
            Err(kind) => {
                shared.count_error(self.pop, kind, now);
                self.slot_freed(shared, now);
            }
        }
    }

    fn settle<'w>(
        &mut self,
        shared: &mut Shared<'w>,
        key: usize,
        outcome: Outcome<'w>,
        now: Instant,
    ) {
        match outcome {
            Outcome::Pending | Outcome::Sent | Outcome::Paced(_) => {}
            Outcome::Replied {
                request, reusable, ..
            } => {
                shared.recycle(request);
                if !reusable {
                    shared.close(key, now);
                }
                if shared.running(now) {
                    if reusable {
                        self.idle.push(key);
                    }
                    self.slot_freed(shared, now);
                }
            }
            Outcome::Failed { kind, request } => {
                if shared.may_resend(key, kind, request.as_deref()) {
                    // The server closed a reused connection under it: it goes again on a new
                    // one, keeping its slot and its due time.
                    let request = request.expect("a request to send again");
                    shared.close(key, now);
                    if let Err(kind) = shared.resend(self.pop, 0, (None, None), request, now) {
                        shared.count_error(self.pop, kind, now);
                        if shared.running(now) {
                            self.slot_freed(shared, now);
                        }
                    }
                    return;
                }
                if let Some(request) = request {
                    shared.recycle(request);
                }
                shared.count_error(self.pop, kind, now);
                shared.close(key, now);
                if shared.running(now) {
                    self.slot_freed(shared, now);
                }
            }
            Outcome::IdleClosed => {
                shared.close(key, now);
            }
        }
    }

    fn slot_freed(&mut self, shared: &mut Shared<'_>, now: Instant) {
        self.in_flight -= 1;
        if let Some((arrival, due)) = self.queued.pop_front() {
            self.issue(shared, arrival, due, now);
        }
    }
}
