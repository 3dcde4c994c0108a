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

pub mod accounting;
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
pub use sampler::{Sample, Sampler, SamplerConfig, SamplerHandle, SamplerReport, TimeWaitSample};
pub use slab::SlabSizes;
pub use sock_diag::{PortFilter, SockDiag, TimeWaitBySide, TimeWaitSocket};
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

/// Helpers shared by the probes' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    /// Runs `f` on a new thread inside a private network namespace with loopback up, so that the
    /// machine's other TIME_WAITs (tens of thousands on a shared host, near
    /// `tcp_max_tw_buckets`) neither mix in nor make the kernel skip ours. Without root it runs in
    /// the host namespace; the port filter still keeps the counts exact. Returns whether the
    /// namespace was private.
    pub fn in_private_netns<T: Send + 'static>(f: impl FnOnce(bool) -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) affects only this thread's network namespace.
            let private = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0;
            if private {
                loopback_up().expect("bringing lo up in the private namespace");
            }
            f(private)
        })
        .join()
        .unwrap()
    }

    pub fn loopback_up() -> std::io::Result<()> {
        // SAFETY: plain socket and ioctl calls on a zeroed ifreq naming "lo"; the fd is closed.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *s as libc::c_char;
            }
            let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
            if rc == 0 {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
            }
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if rc == 0 {
                Ok(())
            } else {
                Err(err)
            }
        }
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
        // SAFETY: affects only this thread's network namespace.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        loopback_up().unwrap();
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
