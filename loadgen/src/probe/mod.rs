//! Probes: what the kernel and the server under test spend during a run, read from `/proc` and
//! NETLINK_SOCK_DIAG. One file per source; each has a pure parser (text in, struct out, tested on
//! text copied from a real machine) and a thin reader. `sampler` puts them on one timeline.
//! Nothing here drives load or writes results: that is `engine` and `run`.
//!
//! | file | source | what |
//! |---|---|---|
//! | `sockstat` | `/proc/net/sockstat{,6}` | TCP inuse, orphan, tw, alloc, mem |
//! | `netstat` | `/proc/net/netstat` | TcpExt counters (TW, ListenOverflows, ...) |
//! | `sock_diag` | NETLINK_SOCK_DIAG | TIME_WAIT sockets, split by side for a server port |
//! | `time_wait_origin` | `idiag_expires` of each | when each TIME_WAIT began: this point's or not |
//! | `slab` | `/proc/slabinfo` | object sizes of `tw_sock_TCP`, `TCP`, `request_sock_TCP` |
//! | `process` | `/proc/PID/*`, `getrusage` | a process tree's RSS, PSS, CPU, threads, fds |
//! | `environment` | uname, `/proc/cpuinfo`, `/proc/sys`, rlimits, git | what a run ran on |
//! | `sampler` | all of the above | one thread sampling every 250 ms |
//!
//! The `procfs` crate reads the per-process files, the process list, `/proc/cpuinfo` and
//! `/proc/net/dev` (the delay line's drop counter). It has no reader for `sockstat`, TcpExt
//! in `netstat`, `slabinfo` or the sysctls under `/proc/sys/net`: those keep the parsers here.
//!
//! Errors are [`ProbeError`]s; each names the file, the field or the request that failed, with
//! the cause in its message (not a separate `source()`), so a sampler can keep it as one line.

pub mod accounting;
pub mod environment;
pub mod netstat;
pub mod process;
pub mod sampler;
pub mod slab;
pub mod sock_diag;
pub mod sockstat;
pub mod time_wait_origin;

use std::io;
use std::path::{Path, PathBuf};

pub use environment::Environment;
pub use netstat::{TcpExt, TcpExtCounters};
pub use process::{CpuTime, ProcessFigures, ProcessTreeFigures};
pub use sampler::{Sample, Sampler, SamplerConfig, SamplerHandle, SamplerReport, TimeWaitSample};
pub use slab::SlabSizes;
pub use sock_diag::{PortFilter, Side, SockDiag, TimeWaitBySide, TimeWaitSocket};
pub use sockstat::SockStat;
pub use time_wait_origin::{OriginClock, TimeWaitByOrigin};

/// Why a probe could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The kernel's answer.
        error: io::Error,
    },
    /// A file's text is not what its parser expects.
    #[error("{file}: {problem}")]
    Parse {
        /// The file, as named in the probes' docs: `sockstat`, `netstat`, `slabinfo`.
        file: &'static str,
        /// What is missing or malformed, quoting it.
        problem: String,
    },
    /// `procfs` could not read or parse a file of a process.
    #[error("{path}: {error}")]
    Proc {
        /// The file, e.g. `/proc/42/status`.
        path: String,
        /// procfs's answer (it names the path or the field itself).
        error: procfs::ProcError,
    },
    /// The process is gone (or never was).
    #[error("process {pid} does not exist")]
    NoSuchProcess {
        /// Its PID.
        pid: u32,
    },
    /// A NETLINK_SOCK_DIAG socket or dump failed.
    #[error(transparent)]
    SockDiag(#[from] sock_diag::SockDiagError),
    /// The server's namespace could not be entered to read its side.
    #[error("entering the server's namespace: {error}")]
    ServerNamespace {
        /// Why not.
        error: crate::netns::NetnsError,
    },
    /// A probe failed in one namespace of the split mode.
    #[error("{namespace}: {error}")]
    InNamespace {
        /// `the server's namespace` or `the clients' namespace`.
        namespace: &'static str,
        /// What failed there.
        error: Box<ProbeError>,
    },
}

impl ProbeError {
    /// A parse error of `file`.
    pub(crate) fn parse(file: &'static str, problem: impl Into<String>) -> ProbeError {
        ProbeError::Parse {
            file,
            problem: problem.into(),
        }
    }

    /// This error, said to have happened in `namespace`.
    pub(crate) fn in_namespace(self, namespace: &'static str) -> ProbeError {
        ProbeError::InNamespace {
            namespace,
            error: Box::new(self),
        }
    }
}

/// Reads a whole `/proc` (or any) text file; the error names the path.
pub(crate) fn read_text(path: impl AsRef<Path>) -> Result<String, ProbeError> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|error| ProbeError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The kernel's page size in bytes (from the auxiliary vector, as `sysconf(_SC_PAGESIZE)`).
pub fn page_size_bytes() -> u64 {
    rustix::param::page_size() as u64
}

/// Clock ticks per second of `/proc/PID/stat` times (from the auxiliary vector, as
/// `sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_s() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// Helpers shared by the probes' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use crate::netns::interface::bring_loopback_up;
    use crate::netns::unshare_network_namespace;

    /// Runs `f` on a new thread inside a private network namespace with loopback up, so that the
    /// machine's other TIME_WAITs (tens of thousands on a shared host, near
    /// `tcp_max_tw_buckets`) neither mix in nor make the kernel skip ours. Without root it runs in
    /// the host namespace; the port filter still keeps the counts exact. Returns whether the
    /// namespace was private.
    pub fn in_private_netns<T: Send + 'static>(f: impl FnOnce(bool) -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            let private = unshare_network_namespace().is_ok();
            if private {
                bring_loopback_up().expect("bringing lo up in the private namespace");
            }
            f(private)
        })
        .join()
        .unwrap()
    }

    /// For benches: with `PROBE_CHILD_EHASH=N` set (and root), moves this thread into a further
    /// namespace with its own N-bucket TCP hash table (`tcp_child_ehash_entries`, Linux 5.19+),
    /// set in the current private namespace so the host's setting is not touched. A sock_diag
    /// dump walks the whole table, other namespaces' sockets included, unless it is private.
    pub fn own_ehash_from_env() {
        let Ok(n) = std::env::var("PROBE_CHILD_EHASH") else {
            return;
        };
        std::fs::write("/proc/sys/net/ipv4/tcp_child_ehash_entries", &n).unwrap();
        unshare_network_namespace().unwrap();
        bring_loopback_up().unwrap();
        let own = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_ehash_entries").unwrap();
        println!("own TCP hash table: {} buckets", own.trim());
    }

    /// One connection to `listener`, closed first by the client or by the server; the other side
    /// closes only after reading the FIN, so the close is never simultaneous.
    pub fn one_connection(listener: &TcpListener, client_first: bool) {
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1];
        if client_first {
            drop(client);
            assert_eq!(server.read(&mut buf).unwrap(), 0);
            drop(server);
        } else {
            drop(server);
            assert_eq!(client.read(&mut buf).unwrap(), 0);
            drop(client);
        }
    }
}
