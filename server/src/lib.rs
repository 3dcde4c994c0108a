//! `afterburner`: the reference web server of afterburner-bench, as a library so that tests and
//! benches reach its parts. `main.rs` only parses the command line and calls `run`.
//!
//! Here: [`run`] (start-up, serving, shutdown), the process settings it makes (descriptor
//! limit, CPU), the signals it takes ([`SignalSockets`]), and [`ServerError`], every way
//! start-up or serving can fail. Each error names the flag, file or call at fault with the
//! kernel's answer in its message (no separate `source()`), so `afterburner: error: {error}` is
//! the whole story.

// Every public item says what it is for, in which unit; clippy's `-D warnings` keeps it so.
#![warn(missing_docs)]

pub mod cli;
pub mod conn;
pub mod designs;
pub mod http;
pub mod live;
pub mod memory_transport;
pub mod reftab;
pub mod site;
pub mod stats;
pub mod timers;
pub mod units;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use rustix::thread::CpuSet;

use conn::{CloseMode, ConnSettings};
use site::Site;
use stats::StatsFile;

/// Descriptors kept back from `--max-conns`'s default for the listener, epoll, the signal
/// sockets and the stats file.
const RESERVED_FDS: u64 = 32;

/// Why the server could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The `--reftab` file could not be read.
    #[error("reading --reftab {}: {error}", path.display())]
    ReftabFile {
        /// The file.
        path: PathBuf,
        /// Why not.
        error: io::Error,
    },
    /// A line of the `--reftab` file is wrong (file and line in the message).
    #[error(transparent)]
    Reftab(#[from] reftab::ReftabError),
    /// The site root is missing or not a directory, or a file of the site could not be read.
    #[error("{action} {}: {error}", path.display())]
    SiteFile {
        /// What was being done: `site root`, `reading directory`, `opening`, ...
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why not.
        error: io::Error,
    },
    /// `--root` names something other than a directory.
    #[error("site root {} is not a directory", path.display())]
    RootNotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file changed size while it was read into RAM.
    #[error("{} changed size while the site was loading", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// The site does not fit `--max-site-bytes`.
    #[error(
        "site {} holds {bytes} bytes in {files} files, more than --max-site-bytes {limit}",
        root.display()
    )]
    SiteTooLarge {
        /// The site root.
        root: PathBuf,
        /// What the files add up to.
        bytes: u64,
        /// How many files.
        files: usize,
        /// `--max-site-bytes`.
        limit: u64,
    },
    /// The reftab has more rules than a route can index.
    #[error("the reftab has {rules} rules; at most {max} are supported")]
    TooManyRules {
        /// Rules in the file.
        rules: usize,
        /// The most supported.
        max: usize,
    },
    /// A reftab rule's alternate is not a file of the site.
    #[error(
        "reftab rule {number} (pattern {pattern}): alternate {alternate} is not a file of the site"
    )]
    UnknownAlternate {
        /// The rule's number.
        number: usize,
        /// Its pattern.
        pattern: String,
        /// The missing alternate.
        alternate: String,
    },
    /// `--cpu` could not be honoured.
    #[error("pinning to --cpu {cpu}: {error}")]
    Pin {
        /// The CPU.
        cpu: usize,
        /// The kernel's answer.
        error: io::Error,
    },
    /// The listening socket could not be made.
    #[error("{action} --listen {address}: {error}")]
    Listen {
        /// What was being done: `binding`, `listening on`, ...
        action: &'static str,
        /// `--listen`.
        address: SocketAddr,
        /// The kernel's answer.
        error: io::Error,
    },
    /// SIGINT, SIGTERM and SIGUSR1 could not be routed to the loop.
    #[error("setting up the SIGINT/SIGTERM/SIGUSR1 sockets: {error}")]
    Signals {
        /// Why not.
        error: io::Error,
    },
    /// The `afterburner listening on ADDR` line could not be written.
    #[error("announcing the address on stdout: {error}")]
    Announce {
        /// Why not.
        error: io::Error,
    },
    /// The readiness loop failed: epoll could not be created or waited on.
    #[error("{action}: {error}")]
    EventLoop {
        /// What was being done, e.g. `epoll_wait`.
        action: &'static str,
        /// The kernel's answer.
        error: io::Error,
    },
    /// The chosen `--design` cannot run here or with these flags (e.g. `select` above
    /// FD_SETSIZE descriptors, `uring` where the kernel refuses io_uring).
    #[error("--design {design}: {message}")]
    Design {
        /// The design's name.
        design: &'static str,
        /// What stops it, and what to do instead.
        message: String,
    },
    /// The `--live-*` settings describe no stream.
    #[error(transparent)]
    Live(#[from] live::LiveConfigError),
    /// `--stats` could not be written.
    #[error("writing --stats {}: {error}", path.display())]
    Stats {
        /// The file (or its temporary sibling) that could not be written.
        path: PathBuf,
        /// The kernel's answer.
        error: io::Error,
    },
}

/// A validated server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `--root`: the directory loaded into RAM and served.
    pub root: PathBuf,
    /// `--dotfiles`: whether names beginning with `.` under the root are loaded.
    pub dotfiles: site::Dotfiles,
    /// `--listen`: the address to bind (port 0: any free one, announced on stdout).
    pub listen: SocketAddr,
    /// `--max-site-bytes`: the most the site's files may add up to.
    pub max_site_bytes: u64,
    /// `--max-header-bytes`: the longest request head accepted.
    pub max_header_bytes: usize,
    /// `--reftab`: the Referer table, if any.
    pub reftab: Option<PathBuf>,
    /// `--close`: who closes a connection first, and how.
    pub close_mode: CloseMode,
    /// wait-client: how long after the send queue drained to wait for the client's FIN; also
    /// the interval at which lingering connections check their send queue. pause: how long
    /// after the last reply was handed to the kernel the server closes, unless the client's FIN
    /// came first.
    pub linger: Duration,
    /// `--header-timeout`: how long a request head may take to arrive.
    pub header_timeout: Duration,
    /// `--keepalive-timeout`: how long an idle kept-alive connection stays open.
    pub keepalive_timeout: Duration,
    /// `--send-timeout`: how long a reply may stall before the connection is dropped.
    pub send_timeout: Duration,
    /// `--max-conns`: open connections at most; `None`: what the descriptor limit allows.
    pub max_conns: Option<usize>,
    /// `--grace`: how long open connections may finish after SIGINT or SIGTERM.
    pub grace: Duration,
    /// `--stats`: where the counters are written at exit and on SIGUSR1, if anywhere.
    pub stats: Option<PathBuf>,
    /// `--backlog`: the listen queue's length.
    pub backlog: i32,
    /// `--cpu`: the CPU the server pins itself to, if any.
    pub cpu: Option<usize>,
    /// `--design`: the concurrency core.
    pub design: designs::Design,
    /// `--workers`: processes of `prefork`, loops of `reactors`; `None`: the design's default.
    pub workers: Option<usize>,
    /// The flags given on the command line (long names, `--close` style), so that a design can
    /// say which of them it does not honour. Empty when the configuration was built in code.
    pub flags_given: Vec<&'static str>,
    /// `--live` and its `--live-*` settings: the live stream, if any.
    pub live: Option<live::LiveConfig>,
}

impl ServerConfig {
    /// What each connection needs to know of the configuration.
    pub fn conn_settings(&self) -> ConnSettings {
        let linger_ms = self.linger.as_millis().max(1);
        let checks = (self.send_timeout.as_millis() / linger_ms).clamp(1, u16::MAX as u128);
        ConnSettings {
            close_mode: self.close_mode,
            max_header_bytes: self.max_header_bytes,
            max_stalled_linger_checks: checks as u16,
            requests_per_turn: 64,
        }
    }
}

/// Loads the site, binds, announces the address on stdout, serves until SIGINT/SIGTERM (writing
/// a stats snapshot on each SIGUSR1), and writes the final stats.
pub fn run(config: &ServerConfig) -> Result<(), ServerError> {
    let nofile = raise_nofile_limit();
    // A design that pins its own threads (reactors) lists --cpu among the flags it ignores.
    let design_ignores_cpu = config
        .design
        .ignored_flags()
        .iter()
        .any(|(flag, _)| *flag == "--cpu");
    if let Some(cpu) = config.cpu.filter(|_| !design_ignores_cpu) {
        pin_to_cpu(cpu)?;
    }
    let rules = match &config.reftab {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ServerError::ReftabFile {
                path: path.clone(),
                error,
            })?;
            reftab::parse(&text, path)?
        }
        None => Vec::new(),
    };
    let live = match &config.live {
        Some(stream) => {
            stream.check()?;
            Some(live::LiveStream::start(stream.clone()))
        }
        None => None,
    };
    let mut site = Site::load_with(&config.root, config.max_site_bytes, config.dotfiles, rules)?;
    if let Some(stream) = live {
        site.add_live(stream);
    }
    let skipped = site.skipped();
    let counted = |count: usize, one: &str, many: &str, what: String| {
        (count > 0).then(|| format!("{count} {} {what}", if count == 1 { one } else { many }))
    };
    let left_out: Vec<String> = [
        counted(
            skipped.dotfiles,
            "name",
            "names",
            "beginning with `.` (--dotfiles serves them)".into(),
        ),
        counted(
            skipped.outside_root,
            "symlink",
            "symlinks",
            format!("leading out of {}", config.root.display()),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !left_out.is_empty() {
        eprintln!("afterburner: not served: {}", left_out.join(", "));
    }
    let listener = bind(
        config.listen,
        config.backlog,
        config.design == designs::Design::Reactors,
    )?;
    let max_conns = config
        .max_conns
        .unwrap_or(nofile.saturating_sub(RESERVED_FDS).max(1) as usize);

    let signals = SignalSockets::install().map_err(|error| ServerError::Signals { error })?;
    let address = listener.local_addr().map_err(|error| ServerError::Listen {
        action: "reading the address bound for",
        address: config.listen,
        error,
    })?;
    designs::preflight(config.design, config, max_conns)?;
    announce(address).map_err(|error| ServerError::Announce { error })?;
    eprintln!(
        "afterburner: design {}; {} files, {} bytes in RAM from {}; close mode {}; at most {} connections",
        config.design,
        site.file_count(),
        site.body_bytes(),
        config.root.display(),
        match config.close_mode {
            CloseMode::Server => "server",
            CloseMode::WaitClient => "wait-client",
            CloseMode::Pause => "pause",
            CloseMode::Reset => "reset",
        },
        designs::connection_limit(config.design, config, max_conns)
    );

    if let Some(stream) = site.live() {
        let config = &stream.config;
        eprintln!(
            "afterburner: live stream at {}: {} fps of {} body bytes ({}), policy {}, lowat {}",
            config.path,
            config.fps,
            config.body_bytes(),
            match config.format {
                live::Format::Mjpeg => "mjpeg".to_string(),
                live::Format::Cbr { bytes_per_second } => format!("cbr {bytes_per_second} B/s"),
            },
            config.policy,
            config
                .lowat
                .map_or("off".to_string(), |mark| format!("{mark} bytes")),
        );
    }
    for (flag, why) in config.design.ignored_flags() {
        if config.flags_given.contains(flag) {
            eprintln!(
                "afterburner: --design {}: {flag} does not apply: {why}",
                config.design
            );
        }
    }

    let mut stats = config
        .stats
        .clone()
        .map(|path| StatsFile::with_live(path, config.live.clone()));
    let counters = designs::serve(
        config.design,
        designs::Serving {
            listener,
            signals,
            site: &site,
            config,
            max_conns,
            stats: stats.as_mut(),
        },
    )?;
    if let Some(stats) = &mut stats {
        stats.write(&counters, site.rules(), true)?;
    }
    Ok(())
}

/// The loop's ends of the signal sockets. Signals become bytes on a socket the loop polls
/// (signal_hook writes one from the handler), so shutdown and snapshots are just more events in
/// the one loop, with no thread and nothing done inside the handler. Two socket pairs rather
/// than one, because the byte does not say which signal sent it.
#[derive(Debug)]
pub struct SignalSockets {
    /// Readable after SIGINT or SIGTERM: stop accepting, drain within `--grace`, exit.
    pub stop: mio::net::UnixStream,
    /// Readable after SIGUSR1: write a `--stats` snapshot and keep serving. Several signals
    /// read at once make one snapshot.
    pub snapshot: mio::net::UnixStream,
}

impl SignalSockets {
    /// Routes SIGINT and SIGTERM to `stop`, SIGUSR1 to `snapshot`. SIGUSR1 is routed even
    /// without `--stats` (the loop then ignores it): its default action would kill the server.
    pub fn install() -> io::Result<SignalSockets> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        use signal_hook::low_level::pipe;
        let (stop, stop_writer) = nonblocking_pair()?;
        pipe::register(SIGTERM, stop_writer.try_clone()?)?;
        pipe::register(SIGINT, stop_writer)?;
        let (snapshot, snapshot_writer) = nonblocking_pair()?;
        pipe::register(SIGUSR1, snapshot_writer)?;
        Ok(SignalSockets {
            stop: mio::net::UnixStream::from_std(stop),
            snapshot: mio::net::UnixStream::from_std(snapshot),
        })
    }
}

/// A connected pair of Unix sockets, both non-blocking: a signal handler must never block on a
/// full socket, nor the loop on an empty one.
fn nonblocking_pair() -> io::Result<(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
)> {
    let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.set_nonblocking(true)?;
    Ok((reader, writer))
}

/// Prints the line the loadgen (and the tests) wait for, and flushes it at once.
fn announce(address: SocketAddr) -> io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "afterburner listening on {address}")?;
    stdout.flush()
}

/// Binds and listens on `address`; with `reuse_port`, SO_REUSEPORT too, so that more sockets
/// (one per loop of `reactors`) can bind the same address and the kernel spreads connections
/// over them.
pub fn bind(
    address: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> Result<std::net::TcpListener, ServerError> {
    use socket2::{Domain, Socket, Type};
    let failed = |action| {
        move |error| ServerError::Listen {
            action,
            address,
            error,
        }
    };
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)
        .map_err(failed("opening a socket for"))?;
    socket
        .set_reuse_address(true)
        .map_err(failed("setting SO_REUSEADDR for"))?;
    if reuse_port {
        socket
            .set_reuse_port(true)
            .map_err(failed("setting SO_REUSEPORT for"))?;
    }
    socket.bind(&address.into()).map_err(failed("binding"))?;
    socket.listen(backlog).map_err(failed("listening on"))?;
    socket
        .set_nonblocking(true)
        .map_err(failed("making non-blocking the socket of"))?;
    Ok(socket.into())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the limit now in force
/// (`u64::MAX`, RLIM_INFINITY, for none). A refused raise leaves the soft limit in force.
pub fn raise_nofile_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY: above every number.
    let soft = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if soft < hard {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    soft
}

/// Pins the calling thread (the whole server, which is one thread) to one CPU.
pub fn pin_to_cpu(cpu: usize) -> Result<(), ServerError> {
    let mut set = CpuSet::new();
    if cpu >= CpuSet::MAX_CPU {
        // A CPU number the kernel's mask cannot hold: what sched_setaffinity says to an empty one.
        return Err(ServerError::Pin {
            cpu,
            error: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| ServerError::Pin {
        cpu,
        error: e.into(),
    })
}
