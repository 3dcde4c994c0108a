//! Sharded runs: which part of the run this process is (a generator shard or the server side),
//! the wall-clock slots every part agrees on, and what each part records so `loadgen merge` can
//! trust their clocks to line up (host name, kernel boot id, clock synchronisation).
//!
//! No part talks to another: each works out its share from the scenario, the seed and (I, N)
//! ([`crate::engine::share`]), and its load points from the agreed `--start-at` alone. Whatever
//! launches the parts (Slurm, a Kubernetes Indexed Job, ssh) is the only coordinator.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use reports::model::{ClockSync, ShardInfo};

use crate::engine::modem::RttMode;
use crate::engine::share::{split_shares, ShardSpec, ShareLoad, ViewerSeats};
use crate::run::point::load_fractions;
use crate::scenario::{Population, Scenario};

/// Time after a load point's measured window before the next one's warm-up: the server side
/// takes its closing snapshot in it (after the last request the generators sent has arrived),
/// and every part writes its result.
pub const SETTLE: Duration = Duration::from_secs(5);

/// A part must be ready this long before its slot begins, or it counts as late: the engine
/// needs a moment to start its workers on the agreed instant.
pub const READY_BEFORE: Duration = Duration::from_millis(20);

/// The server side waits this long after a window's end before its closing snapshot, so the
/// requests generators sent in their last instant are counted (loopback or a LAN delivers them
/// within milliseconds; a slow line's in-flight request is answered or timed out by then
/// only if the scenario's timeouts are shorter).
pub const SERVER_SNAPSHOT_DELAY: Duration = Duration::from_secs(1);

/// What this process is in a sharded run.
#[derive(Clone, Debug)]
pub enum ShardRole {
    /// A generator shard (`loadgen run --shard I/N --target URL`).
    Generator {
        /// Its place among the generators.
        shard: ShardSpec,
        /// The server under test, already running: `http://IP:PORT/`.
        target: String,
    },
    /// The server side (`loadgen serve --listen IP:PORT`).
    Server {
        /// Where the server listens.
        listen: SocketAddr,
    },
}

/// One part of a sharded run: its role and the agreed start.
#[derive(Clone, Debug)]
pub struct ShardPart {
    /// Generator shard or server side.
    pub role: ShardRole,
    /// The wall-clock start of the first load point's warm-up (`--start-at`).
    pub start_at: SystemTime,
}

impl ShardPart {
    /// The generator shard's place, `None` for the server side.
    pub fn generator_shard(&self) -> Option<ShardSpec> {
        match &self.role {
            ShardRole::Generator { shard, .. } => Some(*shard),
            ShardRole::Server { .. } => None,
        }
    }

    /// The generator shard's `--target`, `None` for the server side.
    pub fn target(&self) -> Option<&str> {
        match &self.role {
            ShardRole::Generator { target, .. } => Some(target),
            ShardRole::Server { .. } => None,
        }
    }

    /// The server side's `--listen`, `None` for a generator shard.
    pub fn listen(&self) -> Option<SocketAddr> {
        match &self.role {
            ShardRole::Server { listen } => Some(*listen),
            ShardRole::Generator { .. } => None,
        }
    }
}

/// Why a part of a sharded run cannot run: each message names the flag or variable.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `--start-at` is already past (or too close to set up in time).
    #[error(
        "--start-at {at} is {late} in the past: every part must be started before it (give a \
         time a few seconds ahead, e.g. $(( $(date +%s) + 20 )))"
    )]
    StartInThePast {
        /// The time given, RFC 3339.
        at: String,
        /// How far past, e.g. `3s 200ms`.
        late: String,
    },
    /// `--shard` or `--shards` without `--start-at`, or without `--target`.
    #[error("--shard needs {0}: every shard of a run gets the same one")]
    Missing(&'static str),
    /// `--start-at` or `--target` without `--shard`/`--shards`.
    #[error("{0} is for a sharded run: give --shard I/N (or --shards N) too")]
    NotSharded(&'static str),
    /// `--shards N` and no index in the environment.
    #[error(
        "--shards {0}: no shard index in the environment (JOB_COMPLETION_INDEX of a Kubernetes \
         Indexed Job, SLURM_PROCID of a Slurm task, or LOADGEN_SHARD_INDEX): give --shard I/{0}"
    )]
    NoIndex(u32),
    /// The index in the environment is not a number below N.
    #[error("--shards {count}: {variable}={value} is not a shard index below {count}")]
    BadIndex {
        /// N.
        count: u32,
        /// The variable read.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The scenario has several variants (each its own server): one sharded run measures one
    /// server.
    #[error(
        "scenario {0}: a sharded run measures one server, but the scenario has {1} variants; \
         shard a scenario without [[variants]] tables"
    )]
    Variants(String, usize),
    /// A shard whose share of an open-loop population's `max_in_flight` is zero could send
    /// nothing.
    #[error(
        "population '{population}': max_in_flight = {max_in_flight} cannot be split over {shards} \
         shards (shard {index} would get none): raise it to at least {shards}"
    )]
    InFlightTooSmall {
        /// The population.
        population: String,
        /// Its `max_in_flight`.
        max_in_flight: u32,
        /// N.
        shards: u32,
        /// The shard left without any.
        index: u32,
    },
}

/// The environment variables a shard index is read from by `--shards N`, in order: a Kubernetes
/// Indexed Job's, a Slurm task's, and the loadgen's own.
pub const INDEX_VARIABLES: [&str; 3] = [
    "JOB_COMPLETION_INDEX",
    "SLURM_PROCID",
    "LOADGEN_SHARD_INDEX",
];

/// Shard I of `count`, I read from the first of [`INDEX_VARIABLES`] set in `lookup` (the
/// process environment in use).
pub fn shard_from_environment(
    count: u32,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ShardSpec, ShardError> {
    for variable in INDEX_VARIABLES {
        if let Some(value) = lookup(variable) {
            return value
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(|index| ShardSpec::new(index, count).ok())
                .ok_or(ShardError::BadIndex {
                    count,
                    variable,
                    value,
                });
        }
    }
    Err(ShardError::NoIndex(count))
}

/// Refuses a start time that is past, or nearer than `lead` (the time a part needs to set up).
pub fn check_start_at(start_at: SystemTime, now: SystemTime) -> Result<(), ShardError> {
    match start_at.duration_since(now) {
        Ok(_) => Ok(()),
        Err(past) => Err(ShardError::StartInThePast {
            at: humantime::format_rfc3339_millis(start_at).to_string(),
            late: humantime::format_duration(Duration::from_millis(
                past.duration().as_millis() as u64
            ))
            .to_string(),
        }),
    }
}

/// One load point's slot: its warm-up, its measured window and [`SETTLE`].
pub fn slot_length(scenario: &Scenario) -> Duration {
    scenario.warmup + scenario.duration + SETTLE
}

/// When load point `index` begins (its warm-up): `start_at` plus `index` slots.
pub fn slot_start(start_at: SystemTime, scenario: &Scenario, index: usize) -> SystemTime {
    start_at + slot_length(scenario) * index as u32
}

/// The directory name of a part: `shard-I-of-N` or `server`.
pub fn part_directory(role: &ShardRole) -> String {
    match role {
        ShardRole::Generator { shard, .. } => format!("shard-{}-of-{}", shard.index, shard.count),
        ShardRole::Server { .. } => "server".into(),
    }
}

/// The run's directory name from its start: `2026-11-30T09-00-00Z` (RFC 3339, seconds,
/// colons replaced), the same for every part.
pub fn run_directory(start_at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(start_at)
        .to_string()
        .replace(':', "-")
}

/// What a part records about itself and its host ([`ShardInfo`]).
pub fn shard_info(part: &ShardPart, scenario: &Scenario) -> ShardInfo {
    let (role, index, count) = match &part.role {
        ShardRole::Generator { shard, .. } => ("generator", shard.index, shard.count),
        ShardRole::Server { .. } => ("server", 0, 0),
    };
    ShardInfo {
        role: role.into(),
        index,
        count,
        start_at_unix_ms: part
            .start_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        slot_ms: slot_length(scenario).as_millis() as u64,
        hostname: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_string()),
        clock: clock_sync(),
        net_namespace: std::fs::read_link("/proc/self/ns/net")
            .ok()
            .map(|link| link.to_string_lossy().into_owned()),
    }
}

/// The kernel's clock discipline, asked with `adjtimex(2)` changing nothing (modes 0): not
/// synchronised when the call returns `TIME_ERROR` or the status holds `STA_UNSYNC`.
pub fn clock_sync() -> ClockSync {
    // SAFETY: timex is plain data; adjtimex with modes 0 only reads the kernel's state into it.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut timex) };
    if state < 0 {
        return ClockSync::default();
    }
    ClockSync {
        synchronised: Some(state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0),
        max_error_us: Some(timex.maxerror as i64),
        est_error_us: Some(timex.esterror as i64),
    }
}

/// Refuses what a sharded run cannot do: several variants, or an open-loop `max_in_flight` some
/// shard would get none of.
pub fn check_shardable(scenario: &Scenario, shard: ShardSpec) -> Result<(), ShardError> {
    let variants = scenario.variants_or_default();
    if variants.len() > 1 {
        return Err(ShardError::Variants(scenario.name.clone(), variants.len()));
    }
    for population in &scenario.clients {
        if let Population::Open { max_in_flight, .. } = population {
            if *max_in_flight < shard.count {
                return Err(ShardError::InFlightTooSmall {
                    population: population.name().to_string(),
                    max_in_flight: *max_in_flight,
                    shards: shard.count,
                    index: shard.count - 1,
                });
            }
        }
    }
    Ok(())
}

/// `loadgen plan`'s text: per load point and population, the whole run's load and this shard's
/// share of it (clients as ranges of global numbers, open-loop slots, `max_in_flight`).
pub fn plan_text(scenario: &Scenario, shard: ShardSpec) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "scenario {}: shard {shard} of a run on {} generator{}, {} worker{} each, seed {}",
        scenario.name,
        shard.count,
        if shard.count == 1 { "" } else { "s" },
        scenario.workers,
        if scenario.workers == 1 { "" } else { "s" },
        scenario.seed
    );
    let fractions = load_fractions(scenario.sweep.as_ref().map(|s| s.points));
    let _ = writeln!(
        text,
        "load points: {} (each a slot of {} from --start-at: warm-up {}, measured {}, settle {})",
        fractions.len(),
        humantime::format_duration(slot_length(scenario)),
        humantime::format_duration(scenario.warmup),
        humantime::format_duration(scenario.duration),
        humantime::format_duration(SETTLE),
    );
    for (index, &fraction) in fractions.iter().enumerate() {
        let _ = writeln!(
            text,
            "\npoint {} at {:.0}% load (starts {} after --start-at)",
            index + 1,
            fraction * 100.0,
            humantime::format_duration(slot_length(scenario) * index as u32)
        );
        let mine = split_shares(
            &scenario.clients,
            fraction,
            shard,
            scenario.workers,
            scenario.request_timeout,
            RttMode::Application,
        );
        for (pop, population) in scenario.clients.iter().enumerate() {
            let loads: Vec<&ShareLoad> = mine.iter().map(|worker| &worker[pop].load).collect();
            let _ = writeln!(
                text,
                "  {}",
                population_line(population, fraction, &loads, shard)
            );
        }
    }
    text
}

/// One population's line of [`plan_text`].
fn population_line(
    population: &Population,
    fraction: f64,
    loads: &[&ShareLoad],
    shard: ShardSpec,
) -> String {
    let name = population.name();
    if let Some(ShareLoad::Viewer { seats, .. }) = loads.first() {
        return match seats {
            ViewerSeats::Fixed { population, .. } => {
                let mut numbers: Vec<u32> = loads
                    .iter()
                    .flat_map(|load| match load {
                        ShareLoad::Viewer {
                            seats: ViewerSeats::Fixed { viewers, .. },
                            ..
                        } => viewers.clone(),
                        _ => Vec::new(),
                    })
                    .collect();
                numbers.sort_unstable();
                format!(
                    "{name}: {} live-stream viewers of {population}, global numbers {}",
                    numbers.len(),
                    ranges(&numbers)
                )
            }
            ViewerSeats::Joins { rate, .. } => {
                let slots: Vec<String> = loads
                    .iter()
                    .map(|load| match load {
                        ShareLoad::Viewer {
                            seats: ViewerSeats::Joins { stride, offset, .. },
                            ..
                        } => format!("i % {stride} == {offset}"),
                        _ => String::new(),
                    })
                    .collect();
                format!(
                    "{name}: live-stream viewers joining {rate:.2}/s (Poisson) in all, this \
                     shard's joins i % {} == {} (per worker {})",
                    shard.count,
                    shard.index,
                    slots.join(", ")
                )
            }
        };
    }
    match loads.first() {
        Some(ShareLoad::Closed { .. }) | Some(ShareLoad::Modem { .. }) => {
            let mut numbers: Vec<u32> = loads
                .iter()
                .flat_map(|load| match load {
                    ShareLoad::Closed { clients, .. } => clients.clone(),
                    ShareLoad::Modem { users, .. } => users.clone(),
                    ShareLoad::Open { .. } | ShareLoad::Viewer { .. } => Vec::new(),
                })
                .collect();
            numbers.sort_unstable();
            let kind = if matches!(loads[0], ShareLoad::Modem { .. }) {
                "slow-line users"
            } else {
                "closed-loop clients"
            };
            let whole = match (loads[0], population) {
                (ShareLoad::Modem { population, .. }, _) => format!(" of {population}"),
                (_, Population::Closed { clients, .. }) => {
                    format!(
                        " of {}",
                        crate::engine::share::clients_at(*clients, fraction)
                    )
                }
                _ => String::new(),
            };
            format!(
                "{name}: {} {kind}{whole}, global numbers {}",
                numbers.len(),
                ranges(&numbers)
            )
        }
        Some(ShareLoad::Open { rate, .. }) => {
            let in_flight: u32 = loads
                .iter()
                .map(|load| match load {
                    ShareLoad::Open { max_in_flight, .. } => *max_in_flight,
                    _ => 0,
                })
                .sum();
            let slots: Vec<String> = loads
                .iter()
                .map(|load| match load {
                    ShareLoad::Open { stride, offset, .. } => format!("i % {stride} == {offset}"),
                    _ => String::new(),
                })
                .collect();
            let whole_in_flight = match population {
                Population::Open { max_in_flight, .. } => *max_in_flight,
                _ => 0,
            };
            format!(
                "{name}: open loop, the whole schedule {rate:.1}/s, this shard's arrivals \
                 i % {} == {} (about {:.1}/s; per worker {}), max_in_flight {in_flight} of \
                 {whole_in_flight}",
                shard.count,
                shard.index,
                rate / f64::from(shard.count),
                slots.join(", ")
            )
        }
        Some(ShareLoad::Viewer { .. }) | None => format!("{name}: nothing"),
    }
}

/// Sorted numbers as ranges with their step: `0..=9 step 3` style runs, comma-separated, at most
/// a handful shown.
fn ranges(numbers: &[u32]) -> String {
    if numbers.is_empty() {
        return "none".into();
    }
    let mut runs: Vec<(u32, u32, u32)> = Vec::new(); // first, last, step
    for &n in numbers {
        match runs.last_mut() {
            Some((first, last, step)) if *first == *last && n > *last => {
                *step = n - *last;
                *last = n;
            }
            Some((_, last, step)) if n == *last + *step => *last = n,
            _ => runs.push((n, n, 1)),
        }
    }
    let shown: Vec<String> = runs
        .iter()
        .take(6)
        .map(|&(first, last, step)| match (first == last, step) {
            (true, _) => first.to_string(),
            (false, 1) => format!("{first}-{last}"),
            (false, step) => format!("{first}-{last} every {step}"),
        })
        .collect();
    let more = runs.len().saturating_sub(6);
    if more > 0 {
        format!("{} and {more} more runs", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_comes_from_kubernetes_then_slurm_then_our_own_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = env(&[("SLURM_PROCID", "1"), ("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(shard_from_environment(3, both).unwrap().to_string(), "2/3");
        let slurm = env(&[("SLURM_PROCID", "1")]);
        assert_eq!(shard_from_environment(3, slurm).unwrap().to_string(), "1/3");
        let bad = env(&[("LOADGEN_SHARD_INDEX", "3")]);
        let error = shard_from_environment(3, bad).unwrap_err().to_string();
        assert!(error.contains("LOADGEN_SHARD_INDEX=3"), "{error}");
        let none = shard_from_environment(3, env(&[])).unwrap_err().to_string();
        assert!(none.contains("JOB_COMPLETION_INDEX"), "{none}");
    }

    #[test]
    fn a_start_in_the_past_is_refused_with_how_late() {
        let now = SystemTime::now();
        assert!(check_start_at(now + Duration::from_secs(5), now).is_ok());
        let error = check_start_at(now - Duration::from_secs(3), now)
            .unwrap_err()
            .to_string();
        assert!(error.contains("3s in the past"), "{error}");
    }

    #[test]
    fn number_runs_are_shown_with_their_step() {
        assert_eq!(ranges(&[0, 3, 6, 9]), "0-9 every 3");
        assert_eq!(ranges(&[1, 2, 3, 7]), "1-3, 7");
        assert_eq!(ranges(&[]), "none");
    }
}
