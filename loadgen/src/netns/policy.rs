//! Where one variant of a run happens, decided once: the host's namespace (not root, an outside
//! URL, `--no-netns`), one private namespace, or, when slow-line users need a kernel-side round
//! trip, two namespaces joined by a delaying path (netem, else the user-space delay line). The
//! calling thread ends up where the server and the workers must start; every fallback records
//! its reason, and an explicit `rtt = "netem"` or `"tun-relay"` that cannot be had is an error.

use std::time::Duration;

use super::{
    enter_private_netns, enter_split_netns_with, host, DelayMechanism, DelayPreference, Isolation,
    NetnsError, SplitNetwork,
};
use crate::scenario::RttChoice;

/// What the variant asks of the network.
#[derive(Clone, Debug)]
pub struct NetworkWish {
    /// False with `--no-netns`: stay in the host's namespace even as root.
    pub private_namespace: bool,
    /// The server is an outside URL, reachable only from the host's namespace.
    pub server_outside: bool,
    /// A part of a sharded run: it stays in the namespace it was started in (where the
    /// launcher gave it the address the other parts reach).
    pub sharded: bool,
    /// Where slow-line round trips should come from.
    pub rtt: RttChoice,
    /// The round trip of each slow-line population of the variant (empty: no slow lines).
    pub round_trips: Vec<Duration>,
    /// CPUs for the delay line's relay thread, if one is built.
    pub relay_cpus: Vec<usize>,
}

/// Where the variant runs, as built.
#[derive(Debug)]
pub struct Placement {
    /// What the result records about the isolation.
    pub isolation: Isolation,
    /// The two namespaces, when slow lines got a kernel-side round trip.
    pub split: Option<SplitNetwork>,
    /// What delays the slow lines' packets; `None`: the clients add the round trip themselves.
    pub kernel_delay: Option<DelayMechanism>,
    /// Why the round trip is not the kernel's (or why not netem's), when slow lines run.
    pub rtt_reason: Option<String>,
}

/// A placement that was asked for explicitly and cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// `rtt = "netem"` or `"tun-relay"` (or `--rtt`) where it cannot be built.
    #[error("--rtt {}: {reason}", choice.name())]
    RttUnavailable {
        /// `netem` or `tun-relay`, as asked.
        choice: RttChoice,
        /// Why it cannot be had: no namespaces of the run's own, differing round trips, or
        /// what building the delayed path ran into.
        reason: String,
    },
    /// Entering or building a namespace failed in a way that leaves the thread unsure where it
    /// is: the run must stop.
    #[error("{what}: {error}")]
    Namespace {
        /// What was being done, e.g. `entering a private network namespace`.
        what: &'static str,
        /// Why it failed.
        error: NetnsError,
    },
}

/// Puts the calling thread (and so the server and the workers it starts) where `wish` says.
pub fn place_variant(wish: &NetworkWish) -> Result<Placement, PlacementError> {
    let explicit_kernel = matches!(wish.rtt, RttChoice::Netem | RttChoice::TunRelay);
    let host_reason = if wish.sharded {
        Some("a part of a sharded run stays in the network namespace it was started in")
    } else if !wish.private_namespace {
        Some("--no-netns given")
    } else if wish.server_outside {
        Some("the server is an outside URL, reachable only from the host namespace")
    } else {
        None
    };
    if let Some(reason) = host_reason {
        let rtt_reason = if wish.round_trips.is_empty() {
            None
        } else if explicit_kernel {
            return Err(PlacementError::RttUnavailable {
                choice: wish.rtt,
                reason: format!("needs the run's own namespaces, but {reason}"),
            });
        } else {
            Some(format!("in the host namespace ({reason})"))
        };
        return Ok(Placement {
            isolation: host(reason),
            split: None,
            kernel_delay: None,
            rtt_reason,
        });
    }
    let private = || -> Result<Placement, PlacementError> {
        Ok(Placement {
            isolation: enter_private_netns().map_err(|error| PlacementError::Namespace {
                what: "entering a private network namespace",
                error,
            })?,
            split: None,
            kernel_delay: None,
            rtt_reason: None,
        })
    };
    let Some(&round_trip) = wish.round_trips.first() else {
        return private();
    };
    let why_not_kernel = if wish.rtt == RttChoice::Application {
        "rtt = \"application\" (the scenario's or --rtt)".to_string()
    } else if wish.round_trips.iter().any(|r| *r != round_trip) {
        "the slow-line populations have different round-trip times; netem gives one".to_string()
    } else {
        let prefer = match wish.rtt {
            RttChoice::Netem => DelayPreference::Netem,
            RttChoice::TunRelay => DelayPreference::TunRelay,
            RttChoice::Auto | RttChoice::Application => DelayPreference::Auto,
        };
        match enter_split_netns_with(round_trip / 2, prefer, &wish.relay_cpus).map_err(|error| {
            PlacementError::Namespace {
                what: "building the delayed path between the namespaces",
                error,
            }
        })? {
            Ok(split) => {
                return Ok(Placement {
                    isolation: split.isolation.clone(),
                    kernel_delay: Some(split.delay_mechanism.unwrap_or(DelayMechanism::Netem)),
                    rtt_reason: split.why_not_netem.clone(),
                    split: Some(split),
                })
            }
            Err(reason) => reason,
        }
    };
    if explicit_kernel {
        return Err(PlacementError::RttUnavailable {
            choice: wish.rtt,
            reason: why_not_kernel,
        });
    }
    let mut placement = private()?;
    placement.rtt_reason = Some(why_not_kernel);
    Ok(placement)
}
