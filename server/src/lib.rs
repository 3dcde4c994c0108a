//! `afterburner`: the reference web server of afterburner-bench, as a library so that tests and
//! benches reach its parts. `main.rs` only parses the command line and calls `run`.

pub mod cli;
pub mod conn;
pub mod designs;
pub mod http;
pub mod reftab;
pub mod site;
pub mod stats;
pub mod timers;
pub mod units;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use conn::{CloseMode, ConnSettings};
use site::Site;

/// Descriptors kept back from `--max-conns`'s default for the listener, epoll, the signal pipe
/// and the stats file.
const RESERVED_FDS: u64 = 32;

/// A validated server configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub root: PathBuf,
    pub listen: SocketAddr,
    pub max_site_bytes: u64,
    pub max_header_bytes: usize,
    pub reftab: Option<PathBuf>,
    pub close_mode: CloseMode,
    /// wait-client: how long after the send queue drained to wait for the client's FIN; also
    /// the interval at which lingering connections check their send queue.
    pub linger: Duration,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub send_timeout: Duration,
    pub max_conns: Option<usize>,
    pub grace: Duration,
    pub stats: Option<PathBuf>,
    pub backlog: i32,
    pub cpu: Option<usize>,
}

impl ServerConfig {
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

/// Loads the site, binds, announces the address on stdout, serves until SIGINT/SIGTERM, and
/// writes the stats.
pub fn run(config: &ServerConfig) -> Result<()> {
    let nofile = raise_nofile_limit();
    if let Some(cpu) = config.cpu {
        pin_to_cpu(cpu)?;
    }
    let rules = match &config.reftab {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --reftab {}", path.display()))?;
            reftab::parse(&text, path)?
        }
        None => Vec::new(),
    };
    let site = Site::load(&config.root, config.max_site_bytes, rules)?;
    let listener = bind(config.listen, config.backlog)?;
    let max_conns = config
        .max_conns
        .unwrap_or(nofile.saturating_sub(RESERVED_FDS).max(1) as usize);

    // Signals become bytes on a socket the loop polls, so shutdown is just another event.
    let (stop_reader, stop_writer) = std::os::unix::net::UnixStream::pair()?;
    stop_reader.set_nonblocking(true)?;
    stop_writer.set_nonblocking(true)?;
    let stop_writer2 = stop_writer.try_clone()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, stop_writer)?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, stop_writer2)?;

    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "afterburner listening on {address}")?;
    stdout.flush()?;
    drop(stdout);
    eprintln!(
        "afterburner: {} files, {} bytes in RAM from {}; close mode {:?}; at most {max_conns} connections",
        site.file_count(),
        site.body_bytes(),
        config.root.display(),
        config.close_mode
    );

    let counters = designs::event_loop::serve(
        listener,
        mio::net::UnixStream::from_std(stop_reader),
        &site,
        config,
        max_conns,
    )?;
    if let Some(path) = &config.stats {
        counters.report(site.rules()).write_to(path)?;
    }
    Ok(())
}

fn bind(address: SocketAddr, backlog: i32) -> Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&address.into())
        .with_context(|| format!("binding --listen {address}"))?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Pins the calling thread (the whole server, which is one thread) to one CPU.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning to --cpu {cpu}"));
        }
    }
    Ok(())
}
