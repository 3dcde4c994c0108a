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
//! | `slab` | `/proc/slabinfo` | object sizes of `tw_sock_TCP`, `TCP`, `request_sock_TCP` |
//! | `process` | `/proc/PID/*`, `getrusage` | a process tree's RSS, PSS, CPU, threads, fds |
//! | `environment` | uname, `/proc/cpuinfo`, `/proc/sys`, rlimits, git | what a run ran on |
//! | `sampler` | all of the above | one thread sampling every 250 ms |

pub mod environment;
pub mod netstat;
pub mod process;
pub mod sampler;
pub mod slab;
pub mod sock_diag;
pub mod sockstat;

use std::path::Path;

use anyhow::{Context, Result};

pub use environment::Environment;
pub use netstat::{TcpExt, TcpExtCounters};
pub use process::{CpuTime, ProcessFigures, ProcessTreeFigures};
pub use sampler::{Sample, Sampler, SamplerConfig, SamplerHandle};
pub use slab::SlabSizes;
pub use sock_diag::{TimeWaitBySide, TimeWaitSocket};
pub use sockstat::SockStat;

/// Reads a whole `/proc` (or any) text file; the error names the path.
pub(crate) fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The kernel's page size in bytes (`sysconf(_SC_PAGESIZE)`); 4096 if sysconf fails.
pub fn page_size_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// Clock ticks per second of `/proc/PID/stat` times (`sysconf(_SC_CLK_TCK)`); 100 if it fails.
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}
