//! One driver per population kind: what the population's clients do, when, and what they do
//! after each reply. The worker's loop knows only this enum; each kind lives in its own file.
//!
//! | kind | driver | its clients |
//! |---|---|---|
//! | `closed` | [`ClosedDriver`] | N clients: request, reply, think, repeat |
//! | `open` | [`OpenDriver`] | arrivals on a fixed schedule, latency from when each was due |
//! | `modem` | [`SlowLineDriver`] | users on slow lines browsing pages over paced, metered connections |

mod closed;
mod open;
mod slow_line;

use std::time::Instant;

pub use closed::ClosedDriver;
pub use open::OpenDriver;
pub use slow_line::{ModemUser, SlowLineDriver, MAX_CONNECTIONS};

use crate::engine::share::{PopulationShare, ShareLoad};
use crate::engine::timers::DriverWake;
use crate::engine::worker::{Shared, WorkerPlan};

/// A population's driver, by kind.
pub enum Driver {
    /// `kind = "closed"`: clients that request, wait for the reply, think, repeat.
    Closed(ClosedDriver),
    /// `kind = "open"`: arrivals on a schedule fixed in advance.
    Open(OpenDriver),
    /// `kind = "modem"`: users on slow lines browsing pages.
    SlowLine(SlowLineDriver),
}

impl Driver {
    /// The driver of population `pop`, for this worker's `share` of it.
    pub fn new(pop: u16, share: &PopulationShare, plan: &WorkerPlan<'_>) -> Driver {
        match &share.load {
            ShareLoad::Closed { clients, think } => {
                Driver::Closed(ClosedDriver::new(pop, clients, *think, plan.seed))
            }
            ShareLoad::Open {
                rate,
                arrival,
                stride,
                offset,
                max_in_flight,
            } => Driver::Open(OpenDriver::new(
                pop,
                plan.start,
                (*rate, *arrival),
                (*stride, *offset),
                *max_in_flight,
                plan.seed,
            )),
            ShareLoad::Modem {
                users,
                population,
                profile,
            } => Driver::SlowLine(SlowLineDriver::new(
                pop,
                (users, *population),
                profile.clone(),
                plan.start,
                plan.seed,
            )),
        }
    }

    /// About how many connections the population holds at once: the slab's first size.
    pub fn connections_hint(&self) -> usize {
        match self {
            Driver::Closed(d) => d.clients(),
            Driver::Open(_) => 0,
            Driver::SlowLine(d) => d.users(),
        }
    }

    /// The load point begins.
    pub fn start(&mut self, shared: &mut Shared<'_>, now: Instant) {
        match self {
            Driver::Closed(d) => d.start(shared, now),
            Driver::Open(d) => d.start(shared, now),
            Driver::SlowLine(d) => d.start(shared, now),
        }
    }

    /// Connection `key` of this population is ready.
    pub fn on_ready(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant, trust: bool) {
        match self {
            Driver::Closed(d) => d.on_ready(shared, key, now, trust),
            Driver::Open(d) => d.on_ready(shared, key, now, trust),
            Driver::SlowLine(d) => d.on_ready(shared, key, now, trust),
        }
    }

    /// A wake-up this driver asked for is due; `at` is the instant it was set for.
    pub fn on_wake(
        &mut self,
        shared: &mut Shared<'_>,
        what: DriverWake,
        at: Instant,
        now: Instant,
    ) {
        match self {
            Driver::Closed(d) => d.on_wake(shared, what, now),
            Driver::Open(d) => d.on_wake(shared, what, now),
            Driver::SlowLine(d) => d.on_wake(shared, what, at, now),
        }
    }

    /// Whether the population's latency counts from each request's due time (open loop): then
    /// a request the end caught unanswered has a lower bound worth recording.
    pub fn latency_from_due_time(&self) -> bool {
        matches!(self, Driver::Open(_))
    }

    /// The load point is over: what the driver still holds is counted (open loop: arrivals
    /// queued for a slot).
    pub fn wind_up(&mut self, shared: &mut Shared<'_>, end: Instant) {
        if let Driver::Open(d) = self {
            d.wind_up(shared, end);
        }
    }

    /// The request on connection `key` of this population timed out.
    pub fn on_timeout(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        match self {
            Driver::Closed(d) => d.on_timeout(shared, key, now),
            Driver::Open(d) => d.on_timeout(shared, key, now),
            Driver::SlowLine(d) => d.on_timeout(shared, key, now),
        }
    }
}
