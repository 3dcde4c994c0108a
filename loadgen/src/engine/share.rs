//! Each worker's share of each population (pure): closed-loop clients and slow-line users are
//! dealt out by count, open-loop rates divided evenly, so the workers together make the whole.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::modem::{LineProfile, RttMode};
use crate::scenario::{Arrival, Population, Think};

/// A worker's share of one population.
#[derive(Clone, Debug)]
pub struct PopulationShare {
    /// How many clients, or what rate, this worker runs.
    pub load: ShareLoad,
    /// Requests a connection carries at most (1: a new connection per request).
    pub requests_per_connection: u32,
    /// A request with no complete reply after this long is counted as a timeout.
    pub request_timeout: Duration,
    /// Source addresses of this population's connections; empty: the worker's.
    pub sources: Vec<IpAddr>,
}

/// How much of the population's load the worker carries, by kind.
#[derive(Clone, Debug)]
pub enum ShareLoad {
    /// `kind = "closed"`: clients that request, wait for the reply, think, repeat.
    Closed {
        /// This worker's part of `ceil(clients x load_fraction)` (at least 1 overall); the parts
        /// differ by one at most.
        clients: u32,
        /// Pause between a reply and a client's next request.
        think: Think,
    },
    /// `kind = "open"`: arrivals on a schedule fixed in advance.
    Open {
        /// Requests per second from this worker.
        rate: f64,
        /// How the gaps between arrivals are drawn.
        arrival: Arrival,
        /// This worker's cap on requests outstanding: the population's divided by the workers,
        /// rounded up.
        max_in_flight: u32,
    },
    /// Users on slow lines: page views, a token-bucket reader per user, lingering.
    Modem {
        /// This worker's users, dealt out like closed-loop clients.
        clients: u32,
        /// The population's line profile (rate mix, upstream, round trip), shared by the workers.
        profile: Arc<LineProfile>,
    },
}

impl ShareLoad {
    /// Whether the share is of slow-line users (their recorder keeps line figures).
    pub fn is_slow_line(&self) -> bool {
        matches!(self, ShareLoad::Modem { .. })
    }
}

/// Splits each population over the workers: closed and slow-line clients by count, open rates
/// by share. `request_timeout` is the scenario's (slow lines have their own).
pub fn split_shares(
    populations: &[Population],
    load_fraction: f64,
    workers: usize,
    request_timeout: Duration,
    rtt_mode: RttMode,
) -> Vec<Vec<PopulationShare>> {
    let workers = workers.max(1);
    let count_share = |count: u32, w: usize| {
        let total = (f64::from(count) * load_fraction).ceil().max(1.0) as u32;
        let base = total / workers as u32;
        base + u32::from((w as u32) < total % workers as u32)
    };
    let profiles: Vec<Option<Arc<LineProfile>>> = populations
        .iter()
        .map(|p| match p {
            Population::Modem(spec) => Some(Arc::new(LineProfile::new(spec, rtt_mode))),
            _ => None,
        })
        .collect();
    (0..workers)
        .map(|w| {
            populations
                .iter()
                .enumerate()
                .map(|(index, population)| {
                    let load = match population {
                        Population::Closed { clients, think, .. } => ShareLoad::Closed {
                            clients: count_share(*clients, w),
                            think: *think,
                        },
                        Population::Modem(spec) => ShareLoad::Modem {
                            clients: count_share(spec.clients, w),
                            profile: Arc::clone(
                                profiles[index]
                                    .as_ref()
                                    .expect("a profile per modem population"),
                            ),
                        },
                        Population::Open {
                            rate,
                            arrival,
                            max_in_flight,
                            ..
                        } => ShareLoad::Open {
                            rate: rate * load_fraction / workers as f64,
                            arrival: *arrival,
                            max_in_flight: max_in_flight.div_ceil(workers as u32),
                        },
                    };
                    PopulationShare {
                        load,
                        requests_per_connection: population.requests_per_connection(),
                        request_timeout: match population {
                            Population::Modem(spec) => spec.request_timeout,
                            _ => request_timeout,
                        },
                        sources: Vec::new(),
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_clients_and_rates_over_workers() {
        let populations = vec![
            Population::Closed {
                name: "lan".into(),
                clients: 10,
                think: Think::None,
                requests_per_connection: 1,
            },
            Population::Open {
                name: "open".into(),
                rate: 900.0,
                arrival: Arrival::Poisson,
                max_in_flight: 100,
                requests_per_connection: 5,
            },
        ];
        let timeout = Duration::from_secs(10);
        let shares = split_shares(&populations, 1.0, 3, timeout, RttMode::Application);
        let clients: Vec<u32> = shares
            .iter()
            .map(|w| match w[0].load {
                ShareLoad::Closed { clients, .. } => clients,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(clients, vec![4, 3, 3]);
        for worker in &shares {
            match worker[1].load {
                ShareLoad::Open {
                    rate,
                    max_in_flight,
                    ..
                } => {
                    assert!((rate - 300.0).abs() < 1e-9);
                    assert_eq!(max_in_flight, 34);
                }
                _ => unreachable!(),
            }
            assert_eq!(worker[1].requests_per_connection, 5);
        }
        // A sweep point at 30 % of the load: 3 clients, 90 req/s per worker.
        let shares = split_shares(&populations, 0.3, 3, timeout, RttMode::Application);
        let total: u32 = shares
            .iter()
            .map(|w| match w[0].load {
                ShareLoad::Closed { clients, .. } => clients,
                _ => 0,
            })
            .sum();
        assert_eq!(total, 3);
    }
}
