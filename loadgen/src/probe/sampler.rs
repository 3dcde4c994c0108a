//! The sampler: one thread that reads every probe each `interval` (250 ms by default) until
//! stopped, so kernel and server figures share the load's timeline (`elapsed_ms` since the run's
//! start `Instant`). It never touches the load: a source that fails leaves its field `None` in
//! that sample and its error is kept once in the report.
//!
//! The thread inherits the network namespace of the thread that starts it, and counts what that
//! namespace holds: start it from inside the run's namespace.
//!
//! Split namespaces (`netns::enter_split_netns`: server and clients in two namespaces joined
//! by a veth pair): start the sampler in the clients' namespace and give it the server's in
//! `SamplerConfig::server_netns`. It then opens a second sock_diag socket inside the server's
//! namespace (entering it for the moment of the `socket()` call; a netlink socket stays in the
//! namespace it was made in) and takes the server-side TIME_WAITs (local port = server port)
//! from the server's namespace and the client-side ones (remote port = server port) from the
//! clients'. `sockstat` counts and TcpExt counters exist per namespace: each sample reads the
//! server's by entering its namespace for the reads (two `setns` calls, about 3 us) and adds
//! them to the clients'. This needs no server PID (`/proc/PID/net` would) and cannot read a
//! reused PID's namespace. `sockstat`'s `orphan`, `alloc` and `mem` are machine-wide (global
//! counters, `tcp_memory_allocated`), so they are taken once, not added. Listen drops and
//! overflows happen in the server's namespace and are in the sum.
//!
//! Cost: each sample is a few small `/proc` reads, the server's process figures (with a scan of
//! all `/proc` for its descendants once a second) and one sock_diag dump filtered in the kernel
//! by the server's port. Only the dump grows with the load: the kernel walks every socket of its
//! TCP hash table, other namespaces' included unless the run's namespace has a table of its own.
//! Measured on a busy 2-vCPU VM with 10,000 TIME_WAITs and 10,000 established sockets: 2-5 ms
//! per dump with a private table, 16 ms with the host's. So the dumps run under a CPU budget:
//! when they have used more than `time_wait_max_core_share` of one core since the start, a sample
//! repeats the last counts and says how old they are (`age_ms`). Each sample records its own CPU
//! time (`sample_cpu_us`) so that a run can show that the sampler did not perturb it.
//!
//! Each dump also tells the TIME_WAITs apart by when they began (`time_wait_origin`, from the
//! time left on each one's timer): those begun since `SamplerConfig::start` are this load
//! point's, the others were left by earlier points or runs on the same port (a TIME_WAIT lives
//! 60 s); those begun since `SamplerConfig::window_end` are the teardown's. A run starts one
//! sampler per load point with `start` at the point's start, so the accounting can say, per
//! point, what it inherited, what it made in its window and what its end left behind.

use std::fs::File;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procfs::process::StatM;
use procfs::FromRead as _;
use serde::{Deserialize, Serialize};

use super::netstat::{read_tcp_ext, TcpExtCounters};
use super::process::{
    process_tree_pids, read_tree_figures, self_cpu, thread_cpu_us, CpuTime, ProcessTreeFigures,
};
use super::slab::{read_slab_sizes, SlabSizes};
use super::sock_diag::{PortFilter, Side, SockDiag};
use super::sockstat::{read_sockstat, SockStat};
use super::time_wait_origin::{OriginClock, TimeWaitByOrigin};
use super::{page_size_bytes, ProbeError};
use crate::netns::with_namespace;

/// How the errors of the server's side of the split mode are labelled.
const SERVER_SIDE: &str = "the server's namespace";
/// How the errors of the clients' side of the split mode are labelled.
const CLIENTS_SIDE: &str = "the clients' namespace";

/// Default time between samples.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// Default cap on kept samples: 12 hours at 250 ms (a sample is 376 bytes: under 66 MB), so
/// memory stays bounded. A 1-hour run keeps 14,400 samples, under 6 MB.
pub const DEFAULT_MAX_SAMPLES: usize = 12 * 3600 * 4;
/// Default CPU budget of the TIME_WAIT dumps: 1 % of one core. A dump walks every socket of the
/// kernel's TCP hash table (other namespaces' too, unless the run's namespace has its own table),
/// so its cost is not bounded by the run; the rest of a sample costs about 0.3 %, which keeps the
/// whole sampler under 2 % however many sockets there are.
pub const DEFAULT_TIME_WAIT_MAX_CORE_SHARE: f64 = 0.01;
/// How often the server's process tree is looked for anew in all of `/proc` (about 1 ms with a
/// hundred processes); between scans the known PIDs are read again.
const TREE_RESCAN: Duration = Duration::from_secs(1);
/// Distinct error messages kept in a report; later ones are dropped.
const MAX_ERRORS: usize = 16;

/// What to sample, how often, on which timeline.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    /// Time between samples.
    pub interval: Duration,
    /// Origin of `Sample::elapsed_ms`: the load point's start, shared with the load's
    /// timeline. TIME_WAITs begun since then are the point's own (`TimeWaitSample`).
    pub start: Instant,
    /// The end of the point's measured window: TIME_WAITs begun since then are counted apart
    /// as its teardown's. `None`: not counted apart (the `*_since_window_end` counts stay 0).
    pub window_end: Option<Instant>,
    /// The server's listening port: TIME_WAITs are split by side for it. `None`: not sampled.
    pub server_port: Option<u16>,
    /// PID of the server under test: its process tree is sampled. `None`: not sampled.
    pub server_pid: Option<u32>,
    /// Object sizes that turn TIME_WAIT counts into bytes; read once, not every sample.
    pub slab: SlabSizes,
    /// Samples kept at most; later ones are dropped and counted in the report.
    pub max_samples: usize,
    /// Largest share of one core the TIME_WAIT dumps may use, averaged since the sampler
    /// started; past it a sample repeats the last counts (`TimeWaitSample::age_ms` > 0).
    pub time_wait_max_core_share: f64,
    /// The server's network namespace (an open `/proc/.../ns/net`) when it is not the
    /// sampler's: the split mode of `netns`. `None`: server and clients share the
    /// sampler's namespace.
    pub server_netns: Option<Arc<File>>,
}

impl SamplerConfig {
    /// Defaults: every 250 ms from `start`, no window end, nothing server-specific, slab sizes
    /// read now.
    pub fn new(start: Instant) -> SamplerConfig {
        SamplerConfig {
            interval: DEFAULT_INTERVAL,
            start,
            window_end: None,
            server_port: None,
            server_pid: None,
            slab: read_slab_sizes(),
            max_samples: DEFAULT_MAX_SAMPLES,
            time_wait_max_core_share: DEFAULT_TIME_WAIT_MAX_CORE_SHARE,
            server_netns: None,
        }
    }
}

/// TIME_WAIT sockets of the server's port in one sample, by side, counted and costed, and by
/// when they began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWaitSample {
    /// TIME_WAITs held by the server (local port = server port), whenever they began.
    pub server_side: u64,
    /// TIME_WAITs held by the clients (remote port = server port), whenever they began.
    pub client_side: u64,
    /// Of `server_side`, those begun since `SamplerConfig::start`: this point's own.
    #[serde(default)]
    pub server_side_since_point_start: u64,
    /// Of `client_side`, those begun since `SamplerConfig::start`.
    #[serde(default)]
    pub client_side_since_point_start: u64,
    /// Of `server_side`, those begun since `SamplerConfig::window_end`: the teardown's. 0
    /// before the window's end, or without one.
    #[serde(default)]
    pub server_side_since_window_end: u64,
    /// Of `client_side`, those begun since `SamplerConfig::window_end`.
    #[serde(default)]
    pub client_side_since_window_end: u64,
    /// `server_side` x the `tw_sock_TCP` object size.
    pub server_side_bytes: u64,
    /// `client_side` x the `tw_sock_TCP` object size.
    pub client_side_bytes: u64,
    /// True when the object size is the documented fallback, not read from `/proc/slabinfo`.
    pub bytes_estimated: bool,
    /// Age of these counts: 0 when dumped for this sample; more when the dump was skipped to
    /// keep within `SamplerConfig::time_wait_max_core_share` and the last counts are repeated.
    pub age_ms: u64,
}

impl TimeWaitSample {
    /// Costs counts with a TIME_WAIT object size.
    pub fn new(counts: TimeWaitByOrigin, slab: &SlabSizes) -> TimeWaitSample {
        let all = counts.all;
        TimeWaitSample {
            server_side: all.server_side,
            client_side: all.client_side,
            server_side_since_point_start: counts.since_point_start.server_side,
            client_side_since_point_start: counts.since_point_start.client_side,
            server_side_since_window_end: counts.since_window_end.server_side,
            client_side_since_window_end: counts.since_window_end.client_side,
            server_side_bytes: all.server_side * slab.tw_sock_tcp_bytes,
            client_side_bytes: all.client_side * slab.tw_sock_tcp_bytes,
            bytes_estimated: slab.estimated,
            age_ms: 0,
        }
    }
}

/// One sample: every probe read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since `SamplerConfig::start` when the sample began.
    pub elapsed_ms: u64,
    /// `/proc/net/sockstat`; `None` if unreadable.
    pub sockstat: Option<SockStat>,
    /// TcpExt counters (cumulative); `None` if unreadable.
    pub tcp_ext: Option<TcpExtCounters>,
    /// TIME_WAIT by side for the server port; `None` without a port or if sock_diag failed.
    pub time_wait: Option<TimeWaitSample>,
    /// The server's process tree; `None` without a PID or once the server is gone.
    pub server: Option<ProcessTreeFigures>,
    /// The generator's own CPU time (all its threads, cumulative).
    pub loadgen_cpu: CpuTime,
    /// The generator's resident memory (`/proc/self/statm`); `None` if unreadable.
    #[serde(default)]
    pub loadgen_rss_bytes: Option<u64>,
    /// CPU time the sampler spent taking this sample, in microseconds.
    pub sample_cpu_us: u64,
}

/// What a stopped sampler hands back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerReport {
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// Samples taken after `max_samples` was reached, and dropped.
    pub dropped_samples: u64,
    /// Distinct errors met by the probes, first ones first (at most 16 kept).
    pub errors: Vec<String>,
}

/// The probes and their open handles; takes samples one at a time (the thread calls this, and
/// so can tests and benches).
pub struct Sampler {
    config: SamplerConfig,
    /// In the sampler's namespace.
    sock_diag: Option<SockDiag>,
    /// In the server's namespace, when `config.server_netns` is set.
    server_sock_diag: Option<SockDiag>,
    errors: Vec<String>,
    created: Instant,
    /// CPU time spent in TIME_WAIT dumps so far.
    dump_cpu_us: u64,
    /// The last dumped counts and when they were dumped.
    last_time_wait: Option<(TimeWaitSample, Instant)>,
    /// The server's process tree (root first) and when `/proc` was last scanned for it.
    tree: Option<(Vec<u32>, Instant)>,
}

impl Sampler {
    /// Opens what the probes keep open (the sock_diag socket, if a port is given, and its twin
    /// in the server's namespace if that is another).
    pub fn new(config: SamplerConfig) -> Sampler {
        let mut errors = Vec::new();
        let mut open = |r: Result<SockDiag, ProbeError>| match r {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };
        let sock_diag = config
            .server_port
            .and_then(|_| open(SockDiag::new().map_err(ProbeError::from)));
        let server_sock_diag = match (config.server_port, &config.server_netns) {
            (Some(_), Some(ns)) => open(match with_namespace(ns, SockDiag::new) {
                Ok(opened) => opened.map_err(|e| ProbeError::from(e).in_namespace(SERVER_SIDE)),
                Err(error) => Err(ProbeError::ServerNamespace { error }),
            }),
            _ => None,
        };
        Sampler {
            config,
            sock_diag,
            server_sock_diag,
            errors,
            created: Instant::now(),
            dump_cpu_us: 0,
            last_time_wait: None,
            tree: None,
        }
    }

    fn note<T>(&mut self, r: Result<T, ProbeError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string();
                if self.errors.len() < MAX_ERRORS && !self.errors.contains(&msg) {
                    self.errors.push(msg);
                }
                None
            }
        }
    }

    /// Reads every probe now (TIME_WAITs within the dump budget).
    pub fn sample(&mut self) -> Sample {
        self.sample_with(false)
    }

    /// Reads every probe now with a fresh TIME_WAIT dump whatever the budget: the last sample of
    /// a run, whose counts the run's totals are read from.
    pub fn final_sample(&mut self) -> Sample {
        self.sample_with(true)
    }

    fn sample_with(&mut self, fresh_time_wait: bool) -> Sample {
        let cpu0 = thread_cpu_us();
        let elapsed_ms = self.config.start.elapsed().as_millis() as u64;
        let (sockstat, tcp_ext) = read_namespace_counters();
        let (mut sockstat, mut tcp_ext) = (self.note(sockstat), self.note(tcp_ext));
        if let Some(ns) = self.config.server_netns.clone() {
            // Both namespaces' counts, or none: half of them would pass for a drop.
            let (server_sockstat, server_tcp_ext) =
                match with_namespace(&ns, read_namespace_counters) {
                    Ok((sockstat, tcp_ext)) => (
                        self.note(sockstat.map_err(|e| e.in_namespace(SERVER_SIDE))),
                        self.note(tcp_ext.map_err(|e| e.in_namespace(SERVER_SIDE))),
                    ),
                    Err(error) => {
                        self.note::<()>(Err(ProbeError::ServerNamespace { error }));
                        (None, None)
                    }
                };
            sockstat = sockstat
                .zip(server_sockstat)
                .map(|(clients, server)| clients.with_other_namespace(&server));
            tcp_ext = tcp_ext
                .zip(server_tcp_ext)
                .map(|(clients, server)| clients.plus(&server));
        }
        let time_wait = self.time_wait(fresh_time_wait);
        let server = self.server_tree();
        let loadgen_rss_bytes = read_self_rss();
        let loadgen_rss_bytes = self.note(loadgen_rss_bytes);
        Sample {
            elapsed_ms,
            sockstat,
            tcp_ext,
            time_wait,
            server,
            loadgen_cpu: self_cpu(),
            loadgen_rss_bytes,
            sample_cpu_us: thread_cpu_us() - cpu0,
        }
    }

    /// TIME_WAIT by side for the server port: a fresh dump while within the CPU budget, else the
    /// last counts with their age.
    fn time_wait(&mut self, fresh_required: bool) -> Option<TimeWaitSample> {
        let port = self.config.server_port?;
        let budget_us =
            self.config.time_wait_max_core_share * self.created.elapsed().as_micros() as f64;
        if let Some((last, at)) = self.last_time_wait {
            if !fresh_required && self.dump_cpu_us as f64 > budget_us {
                return Some(TimeWaitSample {
                    age_ms: at.elapsed().as_millis() as u64,
                    ..last
                });
            }
        }
        let cpu0 = thread_cpu_us();
        let clock = OriginClock {
            dump_ms: signed_ms(self.config.start, Instant::now()),
            window_end_ms: self
                .config
                .window_end
                .map(|end| signed_ms(self.config.start, end)),
        };
        let r = match (&mut self.sock_diag, &mut self.server_sock_diag) {
            (Some(diag), None) if self.config.server_netns.is_none() => diag
                .time_wait_by_origin(port, &clock)
                .map_err(ProbeError::from),
            (Some(clients), Some(server)) => {
                split_time_wait_by_origin(clients, server, port, &clock)
            }
            // A socket failed to open; its error is in the report already.
            _ => return None,
        };
        self.dump_cpu_us += thread_cpu_us() - cpu0;
        let fresh = TimeWaitSample::new(self.note(r)?, &self.config.slab);
        self.last_time_wait = Some((fresh, Instant::now()));
        Some(fresh)
    }

    /// The server's process tree, rescanning `/proc` for its members every [`TREE_RESCAN`].
    fn server_tree(&mut self) -> Option<ProcessTreeFigures> {
        let root = self.config.server_pid?;
        let rescan = match &self.tree {
            Some((_, at)) => at.elapsed() >= TREE_RESCAN,
            None => true,
        };
        if rescan {
            let pids = process_tree_pids(root);
            self.tree = Some((self.note(pids)?, Instant::now()));
        }
        let pids = &self.tree.as_ref()?.0;
        let r = read_tree_figures(root, pids);
        self.note(r)
    }

    /// Starts the sampling thread: a first sample now, then one every `interval` on a fixed
    /// grid (a late sample does not shift the later ones; missed ticks are skipped), and a last
    /// one when stopped.
    pub fn start(config: SamplerConfig) -> SamplerHandle {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("probe-sampler".into())
            .spawn(move || {
                let interval = config.interval.max(Duration::from_millis(1));
                let max_samples = config.max_samples;
                let mut sampler = Sampler::new(config);
                let mut report = SamplerReport::default();
                let keep = |report: &mut SamplerReport, s: Sample| {
                    if report.samples.len() < max_samples {
                        report.samples.push(s);
                    } else {
                        report.dropped_samples += 1;
                    }
                };
                let mut next = Instant::now();
                loop {
                    keep(&mut report, sampler.sample());
                    let now = Instant::now();
                    next += interval;
                    while next <= now {
                        next += interval;
                    }
                    match stop_rx.recv_timeout(next - now) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        // Stopped, or the handle was dropped.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                keep(&mut report, sampler.final_sample());
                report.errors = sampler.errors;
                report
            })
            .expect("spawning the sampler thread");
        SamplerHandle { stop_tx, thread }
    }
}

/// `sockstat` and the TcpExt counters of the calling thread's namespace.
fn read_namespace_counters() -> (
    Result<SockStat, ProbeError>,
    Result<TcpExtCounters, ProbeError>,
) {
    (read_sockstat(), read_tcp_ext().map(|t| t.counters()))
}

/// `to - from` in milliseconds, negative when `to` is earlier.
fn signed_ms(from: Instant, to: Instant) -> i64 {
    match to.checked_duration_since(from) {
        Some(after) => after.as_millis() as i64,
        None => -(from.duration_since(to).as_millis() as i64),
    }
}

/// TIME_WAITs by side and by when they began, when server and clients live in two namespaces:
/// the server's own (local port = `port`) from its namespace, the clients' (remote port =
/// `port`) from theirs. A socket of the other kind in either namespace (a client whose
/// ephemeral port happens to be the server's) counts as `other`.
fn split_time_wait_by_origin(
    clients: &mut SockDiag,
    server: &mut SockDiag,
    port: u16,
    clock: &OriginClock,
) -> Result<TimeWaitByOrigin, ProbeError> {
    let mut out = TimeWaitByOrigin::default();
    server
        .for_each_time_wait(PortFilter::Port(port), |s| {
            let side = if s.local.port() == port {
                Side::Server
            } else {
                Side::Other
            };
            out.add(side, s.expires_ms, clock);
        })
        .map_err(|e| ProbeError::from(e).in_namespace(SERVER_SIDE))?;
    clients
        .for_each_time_wait(PortFilter::Port(port), |s| {
            let side = if s.remote.port() == port {
                Side::Client
            } else {
                Side::Other
            };
            out.add(side, s.expires_ms, clock);
        })
        .map_err(|e| ProbeError::from(e).in_namespace(CLIENTS_SIDE))?;
    Ok(out)
}

/// The calling process's resident memory in bytes: `/proc/self/statm`'s resident pages.
pub fn read_self_rss() -> Result<u64, ProbeError> {
    let statm = StatM::from_file("/proc/self/statm").map_err(|error| ProbeError::Proc {
        path: "/proc/self/statm".into(),
        error,
    })?;
    Ok(statm.resident * page_size_bytes())
}

/// A running sampler thread.
pub struct SamplerHandle {
    stop_tx: mpsc::Sender<()>,
    thread: JoinHandle<SamplerReport>,
}

impl SamplerHandle {
    /// Stops the thread (after one last sample) and returns the samples.
    pub fn stop(self) -> Vec<Sample> {
        self.stop_report().samples
    }

    /// Stops the thread and returns the samples with the errors met on the way.
    pub fn stop_report(self) -> SamplerReport {
        let _ = self.stop_tx.send(());
        self.thread.join().unwrap_or_else(|_| SamplerReport {
            errors: vec!["the sampler thread panicked".into()],
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    use super::*;
    use crate::probe::test_support::in_private_netns;

    #[test]
    fn samples_on_a_grid_until_stopped() {
        in_private_netns(|_| {
            let start = Instant::now();
            let mut config = SamplerConfig::new(start);
            config.interval = Duration::from_millis(50);
            config.server_pid = Some(std::process::id());
            config.time_wait_max_core_share = f64::INFINITY; // every sample dumps
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            config.server_port = Some(listener.local_addr().unwrap().port());
            let handle = Sampler::start(config);
            std::thread::sleep(Duration::from_millis(200));
            // Mid-run, the server closes one connection first.
            crate::probe::test_support::one_connection(&listener, false);
            std::thread::sleep(Duration::from_millis(220));
            let report = handle.stop_report();
            let s = &report.samples;
            // First at ~0, then every 50 ms for 420 ms, then one at stop: about 10.
            assert!((8..=11).contains(&s.len()), "{} samples", s.len());
            assert!(s.windows(2).all(|w| w[0].elapsed_ms <= w[1].elapsed_ms));
            assert!(s[0].elapsed_ms < 100 && s.last().unwrap().elapsed_ms >= 400);
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            let sides: Vec<(u64, u64)> = s
                .iter()
                .map(|x| x.time_wait.map(|t| (t.server_side, t.client_side)).unwrap())
                .collect();
            assert_eq!(sides[0], (0, 0));
            assert_eq!(*sides.last().unwrap(), (1, 0), "{sides:?}");
            assert!(sides.windows(2).all(|w| w[0].0 <= w[1].0), "{sides:?}");
            for x in s {
                assert!(x.sockstat.is_some() && x.tcp_ext.is_some());
                let server = x.server.unwrap();
                assert_eq!(server.root_pid, std::process::id());
                assert!(server.rss_bytes > 0 && server.threads >= 2);
            }
            assert!(s.last().unwrap().loadgen_cpu.total_us() >= s[0].loadgen_cpu.total_us());
        });
    }

    #[test]
    fn counts_time_wait_in_bytes_and_survives_a_vanished_server() {
        in_private_netns(|_| {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            for _ in 0..4 {
                // Server closes first: the TIME_WAIT is on the server side.
                let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                drop(listener.accept().unwrap());
                assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
            }
            let mut config = SamplerConfig::new(Instant::now());
            config.server_port = Some(port);
            config.server_pid = Some(4_194_305); // cannot exist
            config.slab = SlabSizes {
                tw_sock_tcp_bytes: 256,
                estimated: false,
                ..SlabSizes::fallback()
            };
            let mut sampler = Sampler::new(config);
            let deadline = Instant::now() + Duration::from_secs(3);
            let s = loop {
                let s = sampler.sample();
                if s.time_wait.is_some_and(|t| t.server_side == 4) || Instant::now() > deadline {
                    break s;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let tw = s.time_wait.unwrap();
            assert_eq!((tw.server_side, tw.client_side), (4, 0));
            assert_eq!((tw.server_side_bytes, tw.client_side_bytes), (1024, 0));
            assert!(s.server.is_none());
            assert_eq!(sampler.errors.len(), 1, "{:?}", sampler.errors);
            assert!(sampler.errors[0].contains("4194305"));
            // The same error twice is kept once.
            sampler.sample();
            assert_eq!(sampler.errors.len(), 1);
        });
    }

    /// One connection to `listener` that the server closes first: a server-side TIME_WAIT.
    fn server_closes_first(listener: &TcpListener) {
        crate::probe::test_support::one_connection(listener, false);
    }

    /// Samples until the server-side TIME_WAITs begun since the point's start are `own` (3 s
    /// at most: loopback delivers the last ACK asynchronously).
    fn sample_until_own(sampler: &mut Sampler, own: u64) -> TimeWaitSample {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let t = sampler.sample().time_wait.unwrap();
            if t.server_side_since_point_start == own || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn time_waits_are_told_apart_by_when_they_began() {
        in_private_netns(|_| {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            // Left by an earlier point: made well before this sampler's start.
            for _ in 0..3 {
                server_closes_first(&listener);
            }
            std::thread::sleep(Duration::from_millis(200));
            let start = Instant::now();
            let mut config = SamplerConfig::new(start);
            config.server_port = Some(listener.local_addr().unwrap().port());
            config.window_end = Some(start + Duration::from_millis(400));
            config.time_wait_max_core_share = f64::INFINITY;
            let mut sampler = Sampler::new(config);
            let before = sampler.sample().time_wait.unwrap();
            assert_eq!(
                (before.server_side, before.server_side_since_point_start),
                (3, 0),
                "{before:?}"
            );
            // Made during the point.
            for _ in 0..2 {
                server_closes_first(&listener);
            }
            let during = sample_until_own(&mut sampler, 2);
            assert_eq!(
                (
                    during.server_side,
                    during.server_side_since_point_start,
                    during.server_side_since_window_end
                ),
                (5, 2, 0),
                "{during:?}"
            );
            // Made after the window's end: the teardown's, and the point's too.
            std::thread::sleep(
                (start + Duration::from_millis(450)).saturating_duration_since(Instant::now()),
            );
            server_closes_first(&listener);
            let after = sample_until_own(&mut sampler, 3);
            assert_eq!(
                (
                    after.server_side,
                    after.server_side_since_point_start,
                    after.server_side_since_window_end,
                    after.client_side_since_point_start
                ),
                (6, 3, 1, 0),
                "{after:?}"
            );
        });
    }

    #[test]
    fn samples_round_trip_through_json() {
        let mut config = SamplerConfig::new(Instant::now());
        config.server_pid = Some(std::process::id());
        let s = Sampler::new(config).sample();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"sample_cpu_us\"") && json.contains("\"tcp_mem_bytes\""));
        assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), s);
    }

    #[test]
    fn over_budget_samples_repeat_the_last_counts_with_their_age() {
        in_private_netns(|_| {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let mut config = SamplerConfig::new(Instant::now());
            config.server_port = Some(listener.local_addr().unwrap().port());
            config.time_wait_max_core_share = 0.0; // only the first dump is allowed
            let mut sampler = Sampler::new(config);
            let first = sampler.sample().time_wait.unwrap();
            assert_eq!(first.age_ms, 0);
            // A TIME_WAIT appears, but the next sample may not dump: it repeats the first counts.
            let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            drop(listener.accept().unwrap());
            assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
            drop(c);
            std::thread::sleep(Duration::from_millis(30));
            let again = sampler.sample().time_wait.unwrap();
            assert!(again.age_ms >= 30, "{again:?}");
            assert_eq!(
                (again.server_side, again.client_side),
                (first.server_side, first.client_side)
            );
            // Without a budget every sample dumps, and sees the new TIME_WAIT.
            sampler.config.time_wait_max_core_share = f64::INFINITY;
            let deadline = Instant::now() + Duration::from_secs(3);
            let fresh = loop {
                let t = sampler.sample().time_wait.unwrap();
                if t.server_side > first.server_side || Instant::now() > deadline {
                    break t;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            assert_eq!(
                (fresh.age_ms, fresh.server_side),
                (0, first.server_side + 1)
            );
        });
    }

    #[test]
    fn statm_gives_resident_bytes() {
        // /proc/self/statm of a loadgen: size resident shared text lib data dt, in pages.
        let statm = StatM::from_read("5874 1234 845 402 0 1123 0\n".as_bytes()).unwrap();
        assert_eq!(statm.resident, 1234);
        assert!(StatM::from_read("5874\n".as_bytes()).is_err());
        let rss = read_self_rss().unwrap();
        assert!(
            rss > 1 << 20 && rss.is_multiple_of(page_size_bytes()),
            "{rss}"
        );
        let mut config = SamplerConfig::new(Instant::now());
        config.server_pid = None;
        assert!(Sampler::new(config).sample().loadgen_rss_bytes.is_some());
    }

    #[test]
    fn a_sample_is_small() {
        // DEFAULT_MAX_SAMPLES' memory bound assumes this.
        assert!(
            std::mem::size_of::<Sample>() <= 400,
            "{}",
            std::mem::size_of::<Sample>()
        );
    }

    #[test]
    fn max_samples_bounds_memory() {
        let mut config = SamplerConfig::new(Instant::now());
        config.interval = Duration::from_millis(5);
        config.max_samples = 3;
        let handle = Sampler::start(config);
        std::thread::sleep(Duration::from_millis(100));
        let report = handle.stop_report();
        assert_eq!(report.samples.len(), 3);
        assert!(report.dropped_samples > 0);
    }

    /// The sampler's cost at 10,000 TIME_WAITs plus 5,000 idle connections (10,000 more sockets)
    /// on the server port, in a private namespace. Run with
    /// `cargo test --release -p loadgen probe::sampler::tests::cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn cost_at_10k_sockets() {
        in_private_netns(|private| {
            crate::probe::test_support::own_ehash_from_env();
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let addr = listener.local_addr().unwrap();
            for _ in 0..10_000 {
                crate::probe::test_support::one_connection(&listener, true);
            }
            let idle: Vec<(TcpStream, TcpStream)> = (0..5_000)
                .map(|_| {
                    let c = TcpStream::connect(addr).unwrap();
                    (c, listener.accept().unwrap().0)
                })
                .collect();
            let mut config = SamplerConfig::new(Instant::now());
            config.server_port = Some(addr.port());
            config.server_pid = Some(std::process::id());
            config.time_wait_max_core_share = f64::INFINITY;
            let mut sampler = Sampler::new(config.clone());
            let first = sampler.sample();
            let samples: Vec<Sample> = (0..20).map(|_| sampler.sample()).collect();
            let per_sample_us = samples.iter().map(|s| s.sample_cpu_us).sum::<u64>() / 20;
            println!(
                "private netns {private}; {:?}; server tree: {} fds, {} threads",
                first.time_wait.unwrap(),
                first.server.unwrap().open_fds,
                first.server.unwrap().threads
            );
            println!(
                "one sample: {per_sample_us} us CPU; at 4 samples/s = {:.2} % of one core",
                per_sample_us as f64 * 4.0 / 1e4
            );
            // Where a sample's time goes.
            let part = |label: &str, f: &mut dyn FnMut()| {
                let t = thread_cpu_us();
                for _ in 0..20 {
                    f();
                }
                println!("  {label}: {} us", (thread_cpu_us() - t) / 20);
            };
            let me = std::process::id();
            part("sockstat", &mut || drop(read_sockstat()));
            part("netstat", &mut || drop(read_tcp_ext()));
            let mut diag = SockDiag::new().unwrap();
            part("sock_diag dump", &mut || {
                drop(diag.time_wait_by_side(addr.port()))
            });
            part("process tree", &mut || {
                drop(crate::probe::process::read_process_tree(me))
            });
            part("  /proc scan", &mut || {
                drop(crate::probe::process::process_tree_pids(me))
            });
            part("  one process", &mut || {
                drop(crate::probe::process::read_process(me))
            });
            part("  smaps_rollup", &mut || {
                drop(std::fs::read_to_string(format!("/proc/{me}/smaps_rollup")))
            });
            part("loadgen cpu", &mut || {
                self_cpu();
            });
            // The thread as a run uses it: 250 ms, default budget, 5 s.
            config.time_wait_max_core_share = DEFAULT_TIME_WAIT_MAX_CORE_SHARE;
            let handle = Sampler::start(config);
            std::thread::sleep(Duration::from_secs(5));
            let samples = handle.stop();
            let cpu_us: u64 = samples.iter().map(|s| s.sample_cpu_us).sum();
            let stale = samples
                .iter()
                .filter(|s| s.time_wait.unwrap().age_ms > 0)
                .count();
            println!(
                "sampler thread over 5 s: {} samples, {cpu_us} us CPU = {:.2} % of one core; \
                 {stale} samples repeated the last TIME_WAIT counts",
                samples.len(),
                cpu_us as f64 / 5e6 * 100.0
            );
            drop(idle);
        });
    }
}
