//! One driver per population kind: what the population's clients do, when, and what they do
//! after each reply. The worker's loop knows only this enum; each kind lives in its own file.
//!
//! | kind | driver | its clients |
//! |---|---|---|
//! | `closed` | [`ClosedDriver`] | N clients: request, reply, think, repeat |
//! | `open` | [`OpenDriver`] | arrivals on a fixed schedule, latency from when each was due |
//! | `modem` | [`SlowLineDriver`] | users on slow lines browsing pages over paced, metered connections |
//! | `viewer` | [`ViewerDriver`] | viewers of a live stream, on LAN or slow lines, frame by frame |

mod closed;
mod open;
mod slow_line;
mod viewer;

use std::time::Instant;

pub use closed::ClosedDriver;
pub use open::OpenDriver;
pub use slow_line::{ModemUser, SlowLineDriver, MAX_CONNECTIONS};
pub use viewer::{FrameSeen, ViewerDriver, Watch, LINE_READ_TIME, REJOIN_AFTER};

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
    /// `kind = "viewer"`: viewers of a live stream.
    Viewer(ViewerDriver),
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
            ShareLoad::Viewer {
                spec,
                profile,
                seats,
            } => Driver::Viewer(ViewerDriver::new(
                pop,
                (spec.clone(), profile.clone(), seats),
                (plan.start, plan.measure_from, plan.end),
                &plan.host_header,
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
            Driver::Viewer(d) => d.viewers(),
        }
    }

    /// The load point begins.
    pub fn start(&mut self, shared: &mut Shared<'_>, now: Instant) {
        match self {
            Driver::Closed(d) => d.start(shared, now),
            Driver::Open(d) => d.start(shared, now),
            Driver::SlowLine(d) => d.start(shared, now),
            Driver::Viewer(d) => d.start(shared, now),
        }
    }

    /// Connection `key` of this population is ready.
    pub fn on_ready(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant, trust: bool) {
        match self {
            Driver::Closed(d) => d.on_ready(shared, key, now, trust),
            Driver::Open(d) => d.on_ready(shared, key, now, trust),
            Driver::SlowLine(d) => d.on_ready(shared, key, now, trust),
            Driver::Viewer(d) => d.on_ready(shared, key, now),
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
            Driver::Viewer(d) => d.on_wake(shared, what, at, now),
        }
    }

    /// Whether the population's latency counts from each request's due time (open loop): then
    /// a request the end caught unanswered has a lower bound worth recording.
    pub fn latency_from_due_time(&self) -> bool {
        matches!(self, Driver::Open(_))
    }

    /// The load point is over: what the driver still holds is counted (open loop: arrivals
    /// queued for a slot; viewers: those still watching).
    pub fn wind_up(&mut self, shared: &mut Shared<'_>, end: Instant) {
        match self {
            Driver::Open(d) => d.wind_up(shared, end),
            // Every viewer still watching is recorded as watching to the end.
            Driver::Viewer(d) => d.wind_up(shared, end),
            _ => {}
        }
    }

    /// The request on connection `key` of this population timed out.
    pub fn on_timeout(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        match self {
            Driver::Closed(d) => d.on_timeout(shared, key, now),
            Driver::Open(d) => d.on_timeout(shared, key, now),
            Driver::SlowLine(d) => d.on_timeout(shared, key, now),
            // Viewers arm no request timeouts (their startup timeout is their own timer).
            Driver::Viewer(_) => {}
        }
    }
}
