//! One private network namespace for the whole run ([`enter_private_netns`]): loopback up, a
//! TCP hash table of its own, and the sysctls a benchmark depends on set to known values. The
//! server child and the worker and sampler threads started afterwards inherit it; clients talk
//! to the server over loopback.
//!
//! The split mode builds each of its two namespaces the same way ([`new_namespace`]); the veth
//! path between them is `split`'s.
//!
//! Sysctls are plain writes under `/proc/sys/net`: they are per namespace, and the `procfs`
//! crate reads and writes only the `kernel`, `vm` and `fs` ones.

use std::path::Path;
use std::time::Duration;

use reports::model::{Isolation, IsolationMode};

use super::interface::bring_loopback_up;
use super::{host, unshare_network_namespace, NetnsError};

/// TIME_WAIT buckets allowed in the private namespace: above anything one run can create
/// (the kernel silently drops TIME_WAITs past it and only bumps TCPTimeWaitOverflow).
pub const PRIVATE_TW_BUCKETS: u64 = 4_000_000;

/// Size of the run namespace's own TCP hash table (a power of two; 65,536 slots, ~0.5 MiB).
pub const PRIVATE_EHASH_ENTRIES: u64 = 65_536;

/// Moves the calling thread (and every thread and process it starts afterwards) into a new
/// network namespace with loopback up. Call it before starting any thread or child that must
/// share the namespace.
///
/// Without root, or when the kernel refuses the namespace, the run stays in the host's
/// namespace and the returned [`Isolation`] says why; `Err` means the new namespace could not
/// be set up (loopback stayed down).
pub fn enter_private_netns() -> Result<Isolation, NetnsError> {
    if !crate::os::is_root() {
        return Ok(host(
            "not root: a private network namespace needs CAP_SYS_ADMIN",
        ));
    }
    if let Err(error) = unshare_network_namespace() {
        return Ok(host(format!("unshare(CLONE_NEWNET) failed: {error}")));
    }
    let mut sysctls_set = Vec::new();
    // A new namespace shares the host's TCP hash table unless its parent set
    // tcp_child_ehash_entries; then every sock_diag dump walks every socket on the machine
    // (16 ms instead of 3 ms per dump with 100k foreign TIME_WAITs). Set it in this intermediate
    // namespace, never the host's, and unshare once more to get a table of our own.
    if set_child_ehash() && unshare_network_namespace().is_ok() {
        sysctls_set.push(format!(
            "own TCP hash table of {PRIVATE_EHASH_ENTRIES} entries"
        ));
    }
    new_namespace("", &mut sysctls_set)?;
    Ok(Isolation {
        mode: IsolationMode::PrivateNetns,
        reason: None,
        sysctls_set,
        delay_path: None,
    })
}

/// Asks for an own TCP hash table in the namespaces the calling thread creates from now on.
pub(super) fn set_child_ehash() -> bool {
    let child_ehash = "/proc/sys/net/ipv4/tcp_child_ehash_entries";
    std::fs::write(child_ehash, PRIVATE_EHASH_ENTRIES.to_string()).is_ok()
}

/// Loopback up and the per-namespace sysctls, in the calling thread's (new) namespace; what
/// was set goes to `sysctls_set`, each entry prefixed by `prefix`.
pub(super) fn new_namespace(prefix: &str, sysctls_set: &mut Vec<String>) -> Result<(), NetnsError> {
    bring_loopback_up()?;
    // Per-namespace sysctls start from the kernel defaults, not the host's values; set the ones
    // a benchmark depends on explicitly so every run starts the same.
    set_sysctl(
        prefix,
        "net/ipv4/tcp_max_tw_buckets",
        &PRIVATE_TW_BUCKETS.to_string(),
        sysctls_set,
    );
    set_sysctl(prefix, "net/core/somaxconn", "4096", sysctls_set);
    // Give the kernel a moment to finish bringing the interface up before the first bind.
    std::thread::sleep(Duration::from_millis(5));
    Ok(())
}

/// Writes `/proc/sys/NAME` and records it (or the failure) in `sysctls_set` as
/// `PREFIXdotted.name=VALUE`.
pub(super) fn set_sysctl(prefix: &str, name: &str, value: &str, sysctls_set: &mut Vec<String>) {
    let dotted = name.replace('/', ".");
    match std::fs::write(Path::new("/proc/sys").join(name), value) {
        Ok(()) => sysctls_set.push(format!("{prefix}{dotted}={value}")),
        Err(e) => sysctls_set.push(format!("{prefix}{dotted} not set: {e}")),
    }
}
