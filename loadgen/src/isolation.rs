//! Run isolation: as root, a run happens in a private network namespace of its own, so the
//! kernel's socket counters (TIME_WAIT above all) count this run's sockets and nothing else on
//! the machine. The namespace has no name and disappears with the last process inside it.

use std::io;
use std::time::Duration;

pub use reports::model::{Isolation, IsolationMode};

/// TIME_WAIT buckets allowed in the private namespace: above anything one run can create
/// (the kernel silently drops TIME_WAITs past it and only bumps TCPTimeWaitOverflow).
pub const PRIVATE_TW_BUCKETS: u64 = 4_000_000;

/// Size of the run namespace's own TCP hash table (a power of two; 65,536 slots, ~0.5 MiB).
pub const PRIVATE_EHASH_ENTRIES: u64 = 65_536;

/// The host namespace, and why.
pub fn host(reason: impl Into<String>) -> Isolation {
    Isolation {
        mode: IsolationMode::HostNamespace,
        reason: Some(reason.into()),
        sysctls_set: Vec::new(),
        delay_path: None,
    }
}

/// Moves the calling thread (and every thread and process it starts afterwards) into a new
/// network namespace with loopback up. Call it before starting any thread or child that must
/// share the namespace.
pub fn enter_private_netns() -> io::Result<Isolation> {
    // SAFETY: plain syscalls without pointers.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(host(
            "not root: a private network namespace needs CAP_SYS_ADMIN",
        ));
    }
    // SAFETY: plain syscall; affects only the calling thread and its future children.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let error = io::Error::last_os_error();
        return Ok(host(format!("unshare(CLONE_NEWNET) failed: {error}")));
    }
    let mut sysctls_set = Vec::new();
    // A new namespace shares the host's TCP hash table unless its parent set
    // tcp_child_ehash_entries; then every sock_diag dump walks every socket on the machine
    // (16 ms instead of 3 ms per dump with 100k foreign TIME_WAITs). Set it in this intermediate
    // namespace, never the host's, and unshare once more to get a table of our own.
    let child_ehash = "/proc/sys/net/ipv4/tcp_child_ehash_entries";
    if std::fs::write(child_ehash, PRIVATE_EHASH_ENTRIES.to_string()).is_ok() {
        // SAFETY: as above.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
            sysctls_set.push(format!(
                "own TCP hash table of {PRIVATE_EHASH_ENTRIES} entries"
            ));
        }
    }
    bring_loopback_up()?;
    // Per-namespace sysctls start from the kernel defaults, not the host's values; set the ones
    // a benchmark depends on explicitly so every run starts the same.
    for (name, value) in [
        (
            "net/ipv4/tcp_max_tw_buckets",
            PRIVATE_TW_BUCKETS.to_string(),
        ),
        ("net/core/somaxconn", "4096".to_string()),
    ] {
        let path = format!("/proc/sys/{name}");
        match std::fs::write(&path, &value) {
            Ok(()) => sysctls_set.push(format!("{}={value}", name.replace('/', "."))),
            Err(e) => sysctls_set.push(format!("{} not set: {e}", name.replace('/', "."))),
        }
    }
    // Give the kernel a moment to finish bringing the interface up before the first bind.
    std::thread::sleep(Duration::from_millis(5));
    Ok(Isolation {
        mode: IsolationMode::PrivateNetns,
        reason: None,
        sysctls_set,
        delay_path: None,
    })
}

fn bring_loopback_up() -> io::Result<()> {
    // SAFETY: a throwaway datagram socket for the interface ioctls; ifreq is plain data and
    // its name is NUL-terminated within IFNAMSIZ.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let result = if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) < 0 {
            Err(io::Error::last_os_error())
        } else {
            request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        libc::close(fd);
        result
    }
}
