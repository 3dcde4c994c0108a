//! The concurrency cores the server can run, one file each, chosen with `--design`. All of them
//! share the in-RAM site (`site.rs`), the HTTP layer (`http.rs`) and the connection state machine
//! (`conn.rs`), so that only the concurrency core differs between them: the rule of the Flash
//! paper (Pai, Druschel, Zwaenepoel, "Flash: An efficient and portable Web server", USENIX 1999).

pub mod event_loop;
pub mod fork;
pub mod one_connection;
pub mod poll;
pub mod prefork;
pub mod processes;
pub mod reactors;
pub mod rebuilt_set;
pub mod select;
pub mod shared_counters;
pub mod shared_ring;
pub mod socket;
pub mod threads;
pub mod uring;

use std::fmt;
use std::io::Read;

use crate::reftab::Rule;
use crate::site::Site;
use crate::stats::{Counters, StatsFile};
use crate::{ServerConfig, ServerError, SignalSockets};

/// A concurrency core (`--design NAME`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Design {
    /// Afterburner's own: one thread, one epoll readiness loop (mio) over every connection.
    #[default]
    Loop,
    /// One thread, one loop over poll(2), the descriptor array rebuilt each round: O(n) per wait.
    Poll,
    /// One thread, one loop over select(2), the fd_set rebuilt each round; at most FD_SETSIZE
    /// (1024) descriptors.
    Select,
    /// A thread per connection, blocking in its own socket; at most `--max-conns` threads.
    Threads,
    /// `--workers` processes forked at start, each serving one connection at a time (Apache
    /// 1.3's model).
    Prefork,
    /// A process forked per connection (NCSA, CERN, inetd).
    Fork,
    /// One `loop` per CPU (`--workers` of them), each with its own SO_REUSEPORT listener.
    Reactors,
    /// One thread on io_uring: multishot accept and receive, buffers from a provided ring.
    Uring,
}

impl Design {
    /// Every design, in the order `--help` lists them.
    pub const ALL: [Design; 8] = [
        Design::Loop,
        Design::Poll,
        Design::Select,
        Design::Threads,
        Design::Prefork,
        Design::Fork,
        Design::Reactors,
        Design::Uring,
    ];

    /// The name `--design` takes.
    pub fn name(self) -> &'static str {
        match self {
            Design::Loop => "loop",
            Design::Poll => "poll",
            Design::Select => "select",
            Design::Threads => "threads",
            Design::Prefork => "prefork",
            Design::Fork => "fork",
            Design::Reactors => "reactors",
            Design::Uring => "uring",
        }
    }

    /// The design `--design NAME` names, if any.
    pub fn from_name(name: &str) -> Option<Design> {
        Design::ALL.into_iter().find(|design| design.name() == name)
    }

    /// The flags this design does not honour, each with the reason, as `--flag: why`; printed
    /// at start when one of them was given.
    pub fn ignored_flags(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Design::Loop => event_loop::IGNORED_FLAGS,
            Design::Poll => poll::IGNORED_FLAGS,
            Design::Select => select::IGNORED_FLAGS,
            Design::Threads => threads::IGNORED_FLAGS,
            Design::Prefork => prefork::IGNORED_FLAGS,
            Design::Fork => fork::IGNORED_FLAGS,
            Design::Reactors => reactors::IGNORED_FLAGS,
            Design::Uring => uring::IGNORED_FLAGS,
        }
    }
}

impl fmt::Display for Design {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a signal socket until it is empty: one snapshot or stop for however many signals it
/// holds, and no byte left to raise another event (edge-triggered) or wake every round
/// (level-triggered).
pub fn drain_signal(socket: &mio::net::UnixStream) {
    let mut bytes = [0u8; 64];
    loop {
        match (&*socket).read(&mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break, // WouldBlock: drained
        }
    }
}

/// Empties the SIGUSR1 socket and, with `--stats`, writes `counters()` to it as the next
/// snapshot, once for however many signals the socket held. A failed write is reported on
/// stderr and serving goes on: a snapshot is for watching the run, not worth stopping it.
pub fn write_snapshot<'a>(
    signal: &mio::net::UnixStream,
    stats: Option<&mut StatsFile>,
    rules: impl Iterator<Item = &'a Rule>,
    counters: impl FnOnce() -> Counters,
) {
    drain_signal(signal);
    let Some(stats) = stats else {
        return; // no --stats: SIGUSR1 is ignored
    };
    if let Err(error) = stats.write(&counters(), rules, false) {
        eprintln!("afterburner: stats snapshot: {error}");
    }
}

/// What every design is handed to serve with.
pub struct Serving<'a> {
    /// The bound, listening, non-blocking socket (SO_REUSEPORT set for `reactors`, so that it
    /// can bind more on the same address).
    pub listener: std::net::TcpListener,
    /// SIGINT/SIGTERM (stop) and SIGUSR1 (snapshot) as readable sockets.
    pub signals: SignalSockets,
    /// The site, in RAM.
    pub site: &'a Site,
    /// The whole configuration.
    pub config: &'a ServerConfig,
    /// Connections open at once at most (`--max-conns` or what the descriptor limit allows).
    pub max_conns: usize,
    /// `--stats`: where SIGUSR1 snapshots go; the caller writes the final document from the
    /// counters returned.
    pub stats: Option<&'a mut StatsFile>,
}

/// The most connections `design` holds at once: one per worker process for `prefork`,
/// `max_conns` (from `--max-conns` or the descriptor limit) for the others.
pub fn connection_limit(design: Design, config: &ServerConfig, max_conns: usize) -> usize {
    match design {
        Design::Prefork => config.workers.unwrap_or(prefork::DEFAULT_WORKERS),
        _ => max_conns,
    }
}

/// The designs that serve `--live`: the one list to extend when another design learns it.
/// `poll`, `select` and `fork` never will (a stream per process, or a loop rebuilt each round,
/// is not what they are there to show).
pub const LIVE_DESIGNS: &[Design] = &[
    Design::Loop,
    Design::Reactors,
    Design::Uring,
    Design::Threads,
    Design::Prefork,
];

/// Whether `design` serves `--live` ([`LIVE_DESIGNS`]).
pub fn serves_live(design: Design) -> bool {
    LIVE_DESIGNS.contains(&design)
}

/// What a design checks before the server announces its address, so that a design that
/// cannot run here fails as a start-up error (exit 2, nothing listening) rather than after
/// clients were told to come: `select` its descriptor room, `uring` the kernel's io_uring,
/// every design whether it serves `--live`.
pub fn preflight(
    design: Design,
    config: &ServerConfig,
    max_conns: usize,
) -> Result<(), ServerError> {
    if config.live.is_some() && !serves_live(design) {
        let names: Vec<&str> = LIVE_DESIGNS.iter().map(|design| design.name()).collect();
        return Err(ServerError::Design {
            design: design.name(),
            message: format!(
                "--live is not served by this design; use --design {}",
                names.join(" or ")
            ),
        });
    }
    match design {
        Design::Select => select::preflight(config, max_conns),
        Design::Uring => uring::preflight(),
        _ => Ok(()),
    }
}

/// Runs `design` until SIGINT/SIGTERM and the grace period are over; returns the counters of
/// the whole server (every thread and child process summed) for the final `--stats` write.
pub fn serve(design: Design, serving: Serving<'_>) -> Result<Counters, ServerError> {
    match design {
        Design::Loop => event_loop::serve(
            serving.listener,
            serving.signals,
            serving.site,
            serving.config,
            serving.max_conns,
            serving.stats,
        ),
        Design::Poll => poll::serve(serving),
        Design::Select => select::serve(serving),
        Design::Threads => threads::serve(serving),
        Design::Prefork => prefork::serve(serving),
        Design::Fork => fork::serve(serving),
        Design::Reactors => reactors::serve(serving),
        Design::Uring => uring::serve(serving),
    }
}
