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

/// How much of the population's load the worker carries, by kind. Clients and users are
/// numbered across the whole population and dealt out, so each draws from its own stream
/// ([`crate::engine::streams`]) whichever worker runs it.
#[derive(Clone, Debug)]
pub enum ShareLoad {
    /// Closed-loop clients.
    Closed {
        /// The global numbers of this worker's clients.
        clients: Vec<u32>,
        /// Their think time.
        think: Think,
    },
    /// Open-loop arrivals: the population's one schedule, of which this worker takes arrival
    /// `i` when `i % stride == offset`, so the workers' arrivals together are the schedule.
    Open {
        /// The whole population's requests per second at this load point.
        rate: f64,
        /// The gaps between arrivals.
        arrival: Arrival,
        /// Workers sharing the schedule.
        stride: u32,
        /// This worker's place among them.
        offset: u32,
        /// This worker's share of the population's `max_in_flight`.
        max_in_flight: u32,
    },
    /// Users on slow lines: page views, a token-bucket reader per user, lingering.
    Modem {
        /// The global numbers of this worker's users.
        users: Vec<u32>,
        /// Users in the whole population at this load point (their first pages are spread
        /// over the ramp-up by global number).
        population: u32,
        /// The population's line profile.
        profile: Arc<LineProfile>,
    },
}

impl ShareLoad {
    /// Whether the share is of slow-line users (their recorder keeps line figures).
    pub fn is_slow_line(&self) -> bool {
        matches!(self, ShareLoad::Modem { .. })
    }
}

/// The clients of a population of `count` at `load_fraction` of the load: rounded up once,
/// for the whole population, and at least one.
pub fn clients_at(count: u32, load_fraction: f64) -> u32 {
    (f64::from(count) * load_fraction).ceil().max(1.0) as u32
}

/// Splits each population over the workers. Closed-loop clients and slow-line users are dealt
/// out one by one, continuing from where the population before left off, so leftovers spread
/// over the workers instead of piling up on the first; open-loop arrivals are dealt the same
/// way from one schedule. `request_timeout` is the scenario's (slow lines have their own).
pub fn split_shares(
    populations: &[Population],
    load_fraction: f64,
    workers: usize,
    request_timeout: Duration,
    rtt_mode: RttMode,
) -> Vec<Vec<PopulationShare>> {
    let workers = workers.max(1) as u32;
    let mut dealt: u32 = 0;
    let mut deal = |count: u32| -> Vec<Vec<u32>> {
        let mut hands = vec![Vec::new(); workers as usize];
        for global in 0..count {
            hands[((dealt + global) % workers) as usize].push(global);
        }
        dealt = (dealt + count) % workers;
        hands
    };
    let per_population: Vec<Vec<ShareLoad>> = populations
        .iter()
        .map(|population| match population {
            Population::Closed { clients, think, .. } => deal(clients_at(*clients, load_fraction))
                .into_iter()
                .map(|clients| ShareLoad::Closed {
                    clients,
                    think: *think,
                })
                .collect(),
            Population::Modem(spec) => {
                let profile = Arc::new(LineProfile::new(spec, rtt_mode));
                let population = clients_at(spec.clients, load_fraction);
                deal(population)
                    .into_iter()
                    .map(|users| ShareLoad::Modem {
                        users,
                        population,
                        profile: Arc::clone(&profile),
                    })
                    .collect()
            }
            Population::Open {
                rate,
                arrival,
                max_in_flight,
                ..
            } => (0..workers)
                .map(|w| ShareLoad::Open {
                    rate: rate * load_fraction,
                    arrival: *arrival,
                    stride: workers,
                    offset: w,
                    max_in_flight: max_in_flight.div_ceil(workers),
                })
                .collect(),
        })
        .collect();
    (0..workers as usize)
        .map(|w| {
            populations
                .iter()
                .zip(&per_population)
                .map(|(population, loads)| PopulationShare {
                    load: loads[w].clone(),
                    requests_per_connection: population.requests_per_connection(),
                    request_timeout: match population {
                        Population::Modem(spec) => spec.request_timeout,
                        _ => request_timeout,
                    },
                    sources: Vec::new(),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Arrival, Think};

    fn closed(name: &str, clients: u32) -> Population {
        Population::Closed {
            name: name.into(),
            clients,
            think: Think::None,
            requests_per_connection: 1,
        }
    }

    fn clients_of(share: &PopulationShare) -> Vec<u32> {
        match &share.load {
            ShareLoad::Closed { clients, .. } => clients.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_client_goes_to_exactly_one_worker_and_leftovers_spread() {
        let populations = vec![closed("a", 10), closed("b", 10), closed("c", 10)];
        let shares = split_shares(
            &populations,
            1.0,
            3,
            Duration::from_secs(10),
            RttMode::Application,
        );
        for pop in 0..3 {
            let mut all: Vec<u32> = shares.iter().flat_map(|w| clients_of(&w[pop])).collect();
            all.sort_unstable();
            assert_eq!(all, (0..10).collect::<Vec<_>>(), "population {pop}");
        }
        // 30 clients on 3 workers: 10 each, though each population alone leaves one over.
        let per_worker: Vec<usize> = shares
            .iter()
            .map(|w| w.iter().map(|s| clients_of(s).len()).sum())
            .collect();
        assert_eq!(per_worker, vec![10, 10, 10]);
    }

    #[test]
    fn open_loop_workers_share_one_schedule() {
        let populations = vec![Population::Open {
            name: "open".into(),
            rate: 900.0,
            arrival: Arrival::Poisson,
            max_in_flight: 100,
            requests_per_connection: 5,
        }];
        let shares = split_shares(
            &populations,
            0.5,
            3,
            Duration::from_secs(10),
            RttMode::Application,
        );
        for (w, worker) in shares.iter().enumerate() {
            match worker[0].load {
                ShareLoad::Open {
                    rate,
                    stride,
                    offset,
                    max_in_flight,
                    ..
                } => {
                    assert_eq!((rate, stride, offset), (450.0, 3, w as u32));
                    assert_eq!(max_in_flight, 34);
                }
                ref other => panic!("{other:?}"),
            }
            assert_eq!(worker[0].requests_per_connection, 5);
        }
    }

    #[test]
    fn a_sweep_point_rounds_up_once_for_the_whole_population() {
        // 30 % of 10 clients is 3 in all, not one per worker rounded up to 3 each.
        let shares = split_shares(
            &[closed("a", 10)],
            0.3,
            3,
            Duration::from_secs(10),
            RttMode::Application,
        );
        let total: usize = shares.iter().map(|w| clients_of(&w[0]).len()).sum();
        assert_eq!(total, 3);
        assert_eq!(clients_at(10, 0.01), 1, "at least one client");
    }
}
