//! Closed-loop clients: each sends a request, waits for the reply, thinks, and sends the next,
//! keeping its connection while the population's `requests_per_connection` allows.

use std::time::{Duration, Instant};

use rand_pcg::Pcg64Mcg;

use crate::engine::client::Request;
use crate::engine::pacing::think_time;
use crate::engine::streams::stream;
use crate::engine::timers::{DriverWake, Wake};
use crate::engine::worker::{Outcome, Shared};
use crate::scenario::Think;

/// A client whose connect fails at once tries again after at least this long, so a server that
/// refuses everything is not hammered in a tight loop.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// The clients of one closed-loop population in one worker.
pub struct ClosedDriver {
    pop: u16,
    think: Think,
    /// Per client: the connection it holds, if any.
    connections: Vec<Option<usize>>,
    /// Per client: its random stream (its URLs and think times), named by its global number.
    streams: Vec<Pcg64Mcg>,
}

impl ClosedDriver {
    /// The clients numbered `clients` (global numbers) of population `pop` (its index in the
    /// scenario), pausing per `think` between a reply and their next request.
    pub fn new(pop: u16, clients: &[u32], think: Think, seed: u64) -> ClosedDriver {
        ClosedDriver {
            pop,
            think,
            connections: vec![None; clients.len()],
            streams: clients
                .iter()
                .map(|&global| stream(seed, pop, u64::from(global)))
                .collect(),
        }
    }

    /// The clients of this worker's share; each holds one connection at most.
    pub fn clients(&self) -> usize {
        self.connections.len()
    }

    /// Every client sends its first request.
    pub fn start(&mut self, shared: &mut Shared<'_>, now: Instant) {
        for client in 0..self.connections.len() as u32 {
            self.issue(shared, client, now);
        }
    }

    /// Connection `key` is ready (`trust`: no FIN yet, so a short read emptied the socket);
    /// once its request is over, the client thinks and sends its next.
    pub fn on_ready(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant, trust: bool) {
        let outcome = shared.advance(key, now, trust);
        self.settle(shared, key, outcome, now);
    }

    /// A client's think time is over: it sends its next request.
    pub fn on_wake(&mut self, shared: &mut Shared<'_>, what: DriverWake, now: Instant) {
        if let DriverWake::Think(client) = what {
            self.issue(shared, client, now);
        }
    }

    /// The request on connection `key` timed out: counted as an error, the connection closed,
    /// and the client thinks before its next.
    pub fn on_timeout(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        let outcome = shared.time_out(key, now);
        self.settle(shared, key, outcome, now);
    }

    /// The client's next request: on its idle connection, or on a new one.
    fn issue(&mut self, shared: &mut Shared<'_>, client: u32, now: Instant) {
        let pick = shared
            .plan
            .workload
            .sample(&mut self.streams[client as usize]);
        if let Some(key) = self.connections[client as usize] {
            if shared
                .conns
                .get(key)
                .is_some_and(|slot| slot.conn.is_idle())
            {
                let outcome = shared.reuse(key, pick, now, now);
                return self.settle(shared, key, outcome, now);
            }
        }
        self.connections[client as usize] = None;
        match shared.connect(self.pop, client, None, None, now) {
            Ok(key) => {
                self.connections[client as usize] = Some(key);
                shared.attach(key, pick, now, now);
            }
            Err(kind) => {
                shared.count_error(self.pop, kind, now);
                self.think(shared, client, now, true);
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
        let Some(client) = shared.conns.get(key).map(|slot| slot.client) else {
            return;
        };
        match outcome {
            Outcome::Pending | Outcome::Sent | Outcome::Paced(_) => {}
            Outcome::Replied {
                request, reusable, ..
            } => {
                shared.recycle(request);
                if !reusable {
                    self.close(shared, key, now);
                }
                if shared.running(now) {
                    self.think(shared, client, now, false);
                }
            }
            Outcome::Failed { kind, request } => {
                if shared.may_resend(key, kind, request.as_deref()) {
                    let request = request.expect("a request to send again");
                    self.close(shared, key, now);
                    return self.resend(shared, client, request, now);
                }
                if let Some(request) = request {
                    shared.recycle(request);
                }
                shared.count_error(self.pop, kind, now);
                self.close(shared, key, now);
                if shared.running(now) {
                    self.think(shared, client, now, false);
                }
            }
            Outcome::IdleClosed => self.close(shared, key, now),
        }
    }

    /// The server closed a reused connection under the client's request: it goes again on a
    /// new one, as a browser's would.
    fn resend<'w>(
        &mut self,
        shared: &mut Shared<'w>,
        client: u32,
        request: Box<Request<'w>>,
        now: Instant,
    ) {
        match shared.resend(self.pop, client, (None, None), request, now) {
            Ok(key) => self.connections[client as usize] = Some(key),
            Err(kind) => {
                shared.count_error(self.pop, kind, now);
                self.think(shared, client, now, true);
            }
        }
    }

    fn close(&mut self, shared: &mut Shared<'_>, key: usize, now: Instant) {
        if let Some((_, client)) = shared.close(key, now) {
            // The slab reuses keys: the client must not keep pointing at one that is gone.
            if self.connections[client as usize] == Some(key) {
                self.connections[client as usize] = None;
            }
        }
    }

    fn think(&mut self, shared: &mut Shared<'_>, client: u32, now: Instant, after_error: bool) {
        let mut pause = think_time(&self.think, &mut self.streams[client as usize]);
        if after_error {
            pause = pause.max(RETRY_BACKOFF);
        }
        if pause.is_zero() {
            self.issue(shared, client, now);
        } else {
            let wake = Wake::Driver {
                pop: self.pop,
                what: DriverWake::Think(client),
            };
            shared.timers.wake_at(now + pause, wake);
        }
    }
}
