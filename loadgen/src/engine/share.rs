//! Each shard's and each worker's share of each population (pure): closed-loop clients and
//! slow-line users are numbered across the whole run and dealt out, open-loop arrivals are one
//! schedule whose slots are taken in turn, so the shards and their workers together make exactly
//! the run on one host.
//!
//! Shards follow k6's execution segments (grafana/k6 `lib/execution_segment.go`) split into N
//! equal parts: shard I owns global number `g` of a count when `g % N == I` (k6's striping of
//! equal segments), so its share is `floor(v / N) + (I < v % N)` (k6's `ScaleInt64`): the shares
//! sum to exactly `v` and differ by at most one, and nothing is rounded per shard. One deliberate
//! difference from k6: each population's dealing continues where the one before stopped (a
//! rotation), so the leftovers of several populations spread over the shards instead of all
//! going to shard 0.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::modem::{LineProfile, RttMode};
use crate::scenario::{Arrival, Audience, Population, Think, ViewerSpec};

/// Which of N generator shards runs this share: `I/N`, I counting from 0. `0/1` is the whole
/// run on one generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    /// I, from 0 to `count - 1`.
    pub index: u32,
    /// N, at least 1.
    pub count: u32,
}

/// A shard written wrong (`--shard`): the message shows the form expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardSpecError {
    /// Not `I/N` with two whole numbers.
    #[error("'{0}' is not a shard: write I/N, e.g. 0/3 for the first of three (I counts from 0)")]
    Malformed(String),
    /// N is 0.
    #[error("'{0}': a run has at least one shard (N >= 1)")]
    NoShards(String),
    /// I is not below N.
    #[error("'{0}': shard index {1} is not below the shard count {2} (I counts from 0)")]
    IndexTooLarge(String, u32, u32),
}

impl ShardSpec {
    /// The whole run on one generator.
    pub const WHOLE: ShardSpec = ShardSpec { index: 0, count: 1 };

    /// Shard `index` of `count`; errors when `count` is 0 or `index >= count`.
    pub fn new(index: u32, count: u32) -> Result<ShardSpec, ShardSpecError> {
        let text = format!("{index}/{count}");
        if count == 0 {
            return Err(ShardSpecError::NoShards(text));
        }
        if index >= count {
            return Err(ShardSpecError::IndexTooLarge(text, index, count));
        }
        Ok(ShardSpec { index, count })
    }

    /// This shard's share of `total` things numbered `0..total`: how many `g` have
    /// `g % count == index`, i.e. `floor(total / count) + (index < total % count)` (k6's
    /// `ScaleInt64` for equal segments). The shares of all shards sum to `total` exactly.
    pub fn scale(&self, total: u32) -> u32 {
        total / self.count + u32::from(self.index < total % self.count)
    }

    /// Whether this is the whole run (one shard).
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = ShardSpecError;

    /// `I/N`, e.g. `0/3`.
    fn from_str(text: &str) -> Result<ShardSpec, ShardSpecError> {
        let malformed = || ShardSpecError::Malformed(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(malformed)?;
        let index: u32 = index.trim().parse().map_err(|_| malformed())?;
        let count: u32 = count.trim().parse().map_err(|_| malformed())?;
        ShardSpec::new(index, count).map_err(|error| match error {
            ShardSpecError::NoShards(_) => ShardSpecError::NoShards(text.to_string()),
            ShardSpecError::IndexTooLarge(_, i, n) => {
                ShardSpecError::IndexTooLarge(text.to_string(), i, n)
            }
            other => other,
        })
    }
}

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
    /// Viewers of a live stream.
    Viewer {
        /// The population as the scenario gives it.
        spec: Arc<ViewerSpec>,
        /// Their slow line's profile (`line = "modem"`); `None` on LAN lines.
        profile: Option<Arc<LineProfile>>,
        /// Which viewers are this worker's.
        seats: ViewerSeats,
    },
}

/// A worker's viewers: dealt like slow-line users (a fixed number), or taken from one join
/// schedule like open-loop arrivals (Poisson joins).
#[derive(Clone, Debug, PartialEq)]
pub enum ViewerSeats {
    /// A fixed number of viewers.
    Fixed {
        /// The global numbers of this worker's viewers.
        viewers: Vec<u32>,
        /// Viewers in the whole population at this load point (their first joins are spread
        /// over the ramp-up by global number).
        population: u32,
    },
    /// Poisson joins: the population's one schedule, of which this worker takes join `i` when
    /// `i % stride == offset`.
    Joins {
        /// The whole population's joins per second at this load point.
        rate: f64,
        /// Workers sharing the schedule.
        stride: u32,
        /// This worker's place among them.
        offset: u32,
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

/// Splits each population over the shards, then the shard's part over its workers. Closed-loop
/// clients and slow-line users are dealt out one by one by global number, each population
/// continuing from where the one before left off (at both levels), so leftovers spread instead
/// of piling up on the first shard or worker; open-loop arrivals are dealt the same way from
/// one schedule: worker `w` of shard `I` takes arrival `i` when `i % (N * W) == I + N * w`.
/// `max_in_flight` is split exactly over the shards ([`ShardSpec::scale`]) and then over the
/// workers, each keeping at least one. `request_timeout` is the scenario's (slow lines have
/// their own). With [`ShardSpec::WHOLE`] this is the run on one host.
pub fn split_shares(
    populations: &[Population],
    load_fraction: f64,
    shard: ShardSpec,
    workers: usize,
    request_timeout: Duration,
    rtt_mode: RttMode,
) -> Vec<Vec<PopulationShare>> {
    let workers = workers.max(1) as u32;
    let shards = shard.count.max(1);
    let mut shard_dealt: u32 = 0;
    let mut worker_dealt: u32 = 0;
    let mut deal = |count: u32| -> Vec<Vec<u32>> {
        let own: Vec<u32> = (0..count)
            .filter(|global| (shard_dealt + global) % shards == shard.index)
            .collect();
        shard_dealt = (shard_dealt + count) % shards;
        let mut hands = vec![Vec::new(); workers as usize];
        for (local, &global) in own.iter().enumerate() {
            hands[((worker_dealt + local as u32) % workers) as usize].push(global);
        }
        worker_dealt = (worker_dealt + own.len() as u32) % workers;
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
            Population::Viewer(spec) => {
                let shared_spec = Arc::new((**spec).clone());
                let profile = spec
                    .modem_spec()
                    .map(|modem| Arc::new(LineProfile::new(&modem, rtt_mode)));
                let seats: Vec<ViewerSeats> = match spec.audience {
                    Audience::Fixed { clients, .. } => {
                        let population = clients_at(clients, load_fraction);
                        deal(population)
                            .into_iter()
                            .map(|viewers| ViewerSeats::Fixed {
                                viewers,
                                population,
                            })
                            .collect()
                    }
                    Audience::Joins { joins_per_s } => (0..workers)
                        .map(|w| ViewerSeats::Joins {
                            rate: joins_per_s * load_fraction,
                            stride: shards * workers,
                            offset: shard.index + shards * w,
                        })
                        .collect(),
                };
                seats
                    .into_iter()
                    .map(|seats| ShareLoad::Viewer {
                        spec: Arc::clone(&shared_spec),
                        profile: profile.clone(),
                        seats,
                    })
                    .collect()
            }
            Population::Open {
                rate,
                arrival,
                max_in_flight,
                ..
            } => {
                let shard_in_flight = shard.scale(*max_in_flight);
                (0..workers)
                    .map(|w| ShareLoad::Open {
                        rate: rate * load_fraction,
                        arrival: *arrival,
                        stride: shards * workers,
                        offset: shard.index + shards * w,
                        max_in_flight: ShardSpec {
                            index: w,
                            count: workers,
                        }
                        .scale(shard_in_flight)
                        .max(1),
                    })
                    .collect()
            }
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
                        Population::Viewer(spec) => spec.startup_timeout,
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
            ShardSpec::WHOLE,
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
            ShardSpec::WHOLE,
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
                    assert_eq!(max_in_flight, [34, 33, 33][w]);
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
            ShardSpec::WHOLE,
            3,
            Duration::from_secs(10),
            RttMode::Application,
        );
        let total: usize = shares.iter().map(|w| clients_of(&w[0]).len()).sum();
        assert_eq!(total, 3);
        assert_eq!(clients_at(10, 0.01), 1, "at least one client");
    }

    fn open_population(rate: f64, max_in_flight: u32) -> Population {
        Population::Open {
            name: "open".into(),
            rate,
            arrival: Arrival::Poisson,
            max_in_flight,
            requests_per_connection: 1,
        }
    }

    /// Every share of every worker of every shard of a run split `shards` ways.
    fn all_shards(
        populations: &[Population],
        shards: u32,
        workers: usize,
    ) -> Vec<Vec<Vec<PopulationShare>>> {
        (0..shards)
            .map(|index| {
                split_shares(
                    populations,
                    1.0,
                    ShardSpec::new(index, shards).unwrap(),
                    workers,
                    Duration::from_secs(10),
                    RttMode::Application,
                )
            })
            .collect()
    }

    #[test]
    fn shard_shares_follow_k6_scale_for_equal_segments() {
        // k6's TestExecutionSegmentScaleConsistency table for thirds, v = 1..7.
        let thirds: Vec<Vec<u32>> = (1..=7)
            .map(|v| {
                (0..3)
                    .map(|i| ShardSpec::new(i, 3).unwrap().scale(v))
                    .collect()
            })
            .collect();
        assert_eq!(
            thirds,
            vec![
                vec![1, 0, 0],
                vec![1, 1, 0],
                vec![1, 1, 1],
                vec![2, 1, 1],
                vec![2, 2, 1],
                vec![2, 2, 2],
                vec![3, 2, 2]
            ]
        );
    }

    #[test]
    fn shards_are_written_i_of_n_and_wrong_ones_are_named() {
        assert_eq!("2/3".parse(), Ok(ShardSpec { index: 2, count: 3 }));
        assert_eq!(ShardSpec { index: 2, count: 3 }.to_string(), "2/3");
        for (text, says) in [
            ("3/3", "not below the shard count 3"),
            ("0/0", "at least one shard"),
            ("1", "write I/N"),
            ("a/2", "write I/N"),
            ("-1/2", "write I/N"),
        ] {
            let error = text.parse::<ShardSpec>().unwrap_err().to_string();
            assert!(
                error.contains(text) && error.contains(says),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn open_loop_max_in_flight_is_split_exactly_over_shards() {
        let populations = [open_population(1000.0, 10)];
        let per_shard: Vec<u32> = all_shards(&populations, 4, 1)
            .iter()
            .map(|shard| match shard[0][0].load {
                ShareLoad::Open { max_in_flight, .. } => max_in_flight,
                ref other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(per_shard, vec![3, 3, 2, 2]);
    }

    #[test]
    fn shards_together_send_the_one_host_schedule() {
        use crate::engine::pacing::ArrivalSchedule;
        use crate::engine::streams::{stream, SCHEDULE};
        use std::time::Instant;
        let origin = Instant::now();
        let arrivals = 600u64;
        let walk = |stride: u32, offset: u32| -> Vec<(u64, Instant)> {
            let mut gaps = stream(7, 0, SCHEDULE);
            let mut schedule = ArrivalSchedule::new(origin, 500.0, Arrival::Poisson, &mut gaps);
            schedule.advance_to_own(stride, offset, &mut gaps);
            let mut own = Vec::new();
            while schedule.index() < arrivals {
                own.push((schedule.index(), schedule.next_due()));
                for _ in 0..stride {
                    schedule.advance(&mut gaps);
                }
            }
            own
        };
        let one_host = walk(1, 0);
        assert_eq!(one_host.len() as u64, arrivals);
        for (shards, workers) in [(2, 1), (3, 2), (5, 3)] {
            let mut together = Vec::new();
            for shard in all_shards(&[open_population(500.0, 64)], shards, workers) {
                for worker in shard {
                    match worker[0].load {
                        ShareLoad::Open { stride, offset, .. } => {
                            together.extend(walk(stride, offset))
                        }
                        ref other => panic!("{other:?}"),
                    }
                }
            }
            together.sort();
            assert_eq!(together, one_host, "{shards} shards of {workers} workers");
        }
    }

    fn viewers_of(share: &PopulationShare) -> Vec<u32> {
        match &share.load {
            ShareLoad::Viewer {
                seats: ViewerSeats::Fixed { viewers, .. },
                ..
            } => viewers.clone(),
            ShareLoad::Modem { users, .. } => users.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn scenario_populations(text: &str) -> Vec<Population> {
        crate::scenario::Scenario::parse(text, std::path::Path::new("t.toml"))
            .unwrap()
            .clients
    }

    #[test]
    fn fixed_viewers_are_dealt_exactly_like_modem_users() {
        // The same counts behind the same populations: each shard's workers get the same
        // global numbers whether the population watches or browses.
        let text = |kind_keys: &str| {
            format!(
                "[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 7\n\n\
                 [[clients]]\nname = \"slow\"\n{kind_keys}\nclients = 23\nrtt = \"100ms\"\n"
            )
        };
        let modem = scenario_populations(&text("kind = \"modem\""));
        let viewer = scenario_populations(&text(
            "kind = \"viewer\"\nstream = \"/cam.mjpg\"\nline = \"modem\"",
        ));
        for (shards, workers, fraction) in [(1, 1, 1.0), (3, 2, 1.0), (2, 3, 0.4), (4, 5, 0.7)] {
            for index in 0..shards {
                let shard = ShardSpec::new(index, shards).unwrap();
                let split = |populations: &[Population]| {
                    split_shares(
                        populations,
                        fraction,
                        shard,
                        workers,
                        Duration::from_secs(10),
                        RttMode::Application,
                    )
                };
                let (as_modem, as_viewer) = (split(&modem), split(&viewer));
                for (m, v) in as_modem.iter().zip(&as_viewer) {
                    assert_eq!(viewers_of(&m[1]), viewers_of(&v[1]), "{shard} x {workers}");
                    match (&m[1].load, &v[1].load) {
                        (
                            ShareLoad::Modem { population, .. },
                            ShareLoad::Viewer {
                                seats: ViewerSeats::Fixed { population: p, .. },
                                profile: Some(profile),
                                ..
                            },
                        ) => {
                            assert_eq!(population, p);
                            assert_eq!(profile.spec.rtt, Duration::from_millis(100));
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn viewer_joins_share_one_schedule_like_open_arrivals() {
        let viewer = scenario_populations(
            "[[clients]]\nname = \"v\"\nkind = \"viewer\"\nstream = \"/cam.mjpg\"\njoins_per_s = 30\n",
        );
        let open = [open_population(30.0, 64)];
        for (shards, workers) in [(1, 1), (2, 3)] {
            for index in 0..shards {
                let shard = ShardSpec::new(index, shards).unwrap();
                let split = |populations: &[Population]| {
                    split_shares(
                        populations,
                        0.5,
                        shard,
                        workers,
                        Duration::from_secs(10),
                        RttMode::Application,
                    )
                };
                for (o, v) in split(&open).iter().zip(split(&viewer)) {
                    match (&o[0].load, &v[0].load) {
                        (
                            ShareLoad::Open {
                                rate,
                                stride,
                                offset,
                                ..
                            },
                            ShareLoad::Viewer {
                                seats:
                                    ViewerSeats::Joins {
                                        rate: r,
                                        stride: s,
                                        offset: f,
                                    },
                                profile: None,
                                ..
                            },
                        ) => assert_eq!((rate, stride, offset), (r, s, f)),
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn shards_deal_every_client_once_and_evenly(
            counts in proptest::collection::vec(1u32..300, 1..5),
            shards in 1u32..9,
            workers in 1usize..5,
        ) {
            let populations: Vec<Population> = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| closed(&format!("p{i}"), c))
                .collect();
            let split = all_shards(&populations, shards, workers);
            let mut shard_totals = vec![0usize; shards as usize];
            for (pop, &count) in counts.iter().enumerate() {
                let mut all = Vec::new();
                let mut per_shard = Vec::new();
                for (i, shard) in split.iter().enumerate() {
                    let own: Vec<u32> = shard.iter().flat_map(|w| clients_of(&w[pop])).collect();
                    per_shard.push(own.len());
                    shard_totals[i] += own.len();
                    all.extend(own);
                }
                all.sort_unstable();
                proptest::prop_assert_eq!(all, (0..count).collect::<Vec<_>>());
                let (min, max) = (per_shard.iter().min(), per_shard.iter().max());
                proptest::prop_assert!(max.unwrap() - min.unwrap() <= 1, "{:?}", per_shard);
            }
            let (min, max) = (shard_totals.iter().min(), shard_totals.iter().max());
            proptest::prop_assert!(max.unwrap() - min.unwrap() <= 1, "{:?}", shard_totals);
        }
    }
}
