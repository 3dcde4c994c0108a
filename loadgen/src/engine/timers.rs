//! Every wake-up of a worker from one structure: the timeline's interval ticks, open-loop
//! arrivals, think times, slow-line users' page views, line reads, dials and lingering, upload
//! pacing, and request timeouts. The loop asks it for the nearest instant (its poll timeout)
//! and pops what is due.
//!
//! Two stores behind one API, because the two kinds of deadline behave differently:
//! - instants chosen freely (think and arrival times, line reads) go on a binary heap; an entry
//!   whose owner has since moved on is *stale* and the owner skips it when it pops (it keeps the
//!   instant it waits for and compares). Owners re-arm rarely, so stale entries stay few.
//! - request timeouts have one fixed duration per population and are re-armed at every request:
//!   on a heap with lazy deletion a keep-alive run at 100k requests/s would pile up a million
//!   stale entries per 10 s of timeout. They go on intrusive FIFO lists instead (one per
//!   population, `afterburner::timers::DeadlineLists`, the server's own structure): a deadline
//!   set now is never earlier than one set before on the same list, so arming and disarming
//!   are O(1) and nothing goes stale.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use afterburner::timers::DeadlineLists;

/// What a heap entry wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    /// The timeline's current interval ends.
    Interval,
    /// Population `pop`'s driver asked for it.
    Driver {
        /// The population's index, in the scenario's order.
        pop: u16,
        /// What the driver asked to be woken for.
        what: DriverWake,
    },
}

/// The wake-ups a population driver asks for; the driver knows what each index means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DriverWake {
    /// An open-loop population's next arrival is due.
    Arrival,
    /// A closed-loop client's think time is over.
    Think(u32),
    /// A slow-line user: its next page view, or its line's next read.
    User(u32),
    /// A slow-line user's new connections, one application round trip after they were wanted.
    Dial(u32),
    /// A connection (by slab key): its upload's next segment, the round trip the application
    /// adds before the reply, or the end of its lingering.
    Conn(u32),
}

/// Something due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// A heap entry, with the instant it was set for (owners compare it to skip stale ones).
    Wake {
        /// The instant the entry was set for (not when it popped).
        at: Instant,
        /// What it wakes.
        wake: Wake,
    },
    /// The request on connection `slot` has had no complete reply for its population's
    /// request timeout.
    RequestTimeout {
        /// The connection's slab key.
        slot: usize,
    },
}

/// The worker's timers.
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Wake)>>,
    timeouts: DeadlineLists,
}

impl Timers {
    /// `request_timeouts[pop]`: population `pop`'s request timeout.
    pub fn new(request_timeouts: Vec<Duration>) -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            timeouts: DeadlineLists::new(request_timeouts),
        }
    }

    /// Wakes `wake` at `at` (at once if `at` has passed).
    pub fn wake_at(&mut self, at: Instant, wake: Wake) {
        self.heap.push(Reverse((at, wake)));
    }

    /// Starts the request timeout of the connection in `slot`, of population `pop`.
    pub fn start_request_timeout(&mut self, slot: usize, pop: u16, now: Instant) {
        self.timeouts.arm(slot, pop as usize, now);
    }

    /// The request on `slot` is over (answered, failed, or its connection closed).
    pub fn stop_request_timeout(&mut self, slot: usize) {
        self.timeouts.disarm(slot);
    }

    /// The nearest instant anything is due.
    pub fn next_due(&self) -> Option<Instant> {
        let wake = self.heap.peek().map(|Reverse((at, _))| *at);
        match (wake, self.timeouts.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one thing due at `now`; call until it returns None.
    pub fn pop_due(&mut self, now: Instant) -> Option<Due> {
        if let Some(Reverse((at, wake))) = self.heap.peek().copied() {
            if at <= now {
                self.heap.pop();
                return Some(Due::Wake { at, wake });
            }
        }
        self.timeouts
            .pop_expired(now)
            .map(|(slot, _)| Due::RequestTimeout { slot })
    }

    /// Heap entries waiting (stale ones included): what the memory figures count.
    pub fn pending_wakes(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn wakes_and_timeouts_come_out_in_time_order() {
        let t0 = Instant::now();
        let mut timers = Timers::new(vec![ms(100), ms(30)]);
        let think = Wake::Driver {
            pop: 0,
            what: DriverWake::Think(3),
        };
        timers.wake_at(t0 + ms(50), think);
        timers.wake_at(t0 + ms(10), Wake::Interval);
        timers.start_request_timeout(5, 1, t0); // due at 30 ms
        timers.start_request_timeout(6, 0, t0); // due at 100 ms
        assert_eq!(timers.next_due(), Some(t0 + ms(10)));
        assert_eq!(timers.pop_due(t0 + ms(5)), None);
        let due: Vec<Due> = std::iter::from_fn(|| timers.pop_due(t0 + ms(60))).collect();
        assert_eq!(
            due,
            vec![
                Due::Wake {
                    at: t0 + ms(10),
                    wake: Wake::Interval
                },
                Due::Wake {
                    at: t0 + ms(50),
                    wake: think
                },
                Due::RequestTimeout { slot: 5 },
            ]
        );
        assert_eq!(timers.next_due(), Some(t0 + ms(100)));
    }

    #[test]
    fn a_stopped_timeout_never_fires_and_a_restart_counts_from_the_new_request() {
        let t0 = Instant::now();
        let mut timers = Timers::new(vec![ms(100)]);
        timers.start_request_timeout(1, 0, t0);
        timers.stop_request_timeout(1);
        assert_eq!(timers.next_due(), None);
        timers.start_request_timeout(2, 0, t0);
        timers.start_request_timeout(2, 0, t0 + ms(80)); // a new request on the same connection
        assert_eq!(timers.pop_due(t0 + ms(150)), None);
        assert_eq!(
            timers.pop_due(t0 + ms(180)),
            Some(Due::RequestTimeout { slot: 2 })
        );
    }

    #[test]
    fn many_requests_leave_nothing_behind() {
        let t0 = Instant::now();
        let mut timers = Timers::new(vec![ms(10_000)]);
        for n in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(n) * 10);
            timers.start_request_timeout((n % 50) as usize, 0, now);
            timers.stop_request_timeout((n % 50) as usize);
        }
        assert_eq!(timers.next_due(), None);
        assert_eq!(timers.pending_wakes(), 0);
    }
}
