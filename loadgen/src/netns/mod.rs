//! Run isolation: as root, a run happens in network namespaces of its own, so the kernel's
//! socket counters (TIME_WAIT above all) count this run's sockets and nothing else on the
//! machine. The namespaces have no name and disappear with the last process, thread or file
//! handle that holds them.
//!
//! Two modes, each in a file of its own:
//!
//! - `private`: [`enter_private_netns`], one private namespace for everything (loopback up, its
//!   own TCP hash table, sysctls set). The server child and the worker and sampler threads
//!   started afterwards inherit it; clients talk to the server over loopback.
//! - `split`: [`enter_split_netns`] and [`enter_split_netns_with`], for scenarios with slow-line
//!   ("56k modem") clients: two namespaces, the server's and the clients', joined by a veth
//!   pair, with netem or the user-space [`delay_line`] delaying the slow clients' packets.
//!
//! Here: what both modes and their callers share. Moving the calling thread between namespaces
//! ([`enter_namespace`], [`with_namespace`], [`current_namespace`]), the host-namespace
//! fallback ([`host`]), a fresh namespace for the calling thread, and the errors
//! ([`NetnsError`]). `interface` holds the interface ioctls (flags, TUN devices), the only ones
//! no safe wrapper covers.
//!
//! Not here: what a run does inside the namespaces (`run`), and the probes that count there
//! (`probe`; the sampler enters the server's namespace through [`with_namespace`]).
//!
//! Errors say what was being done and the kernel's answer, and stand on their own: the cause
//! is part of the message, not a separate `source()`, so they read the same printed alone or
//! through `anyhow`.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking) and never leave the run's two
//! namespaces: no route joins them to the host's.

pub mod delay_line;
pub(crate) mod interface;
pub mod policy;
mod private;
mod split;

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

pub use reports::model::{DelayPath, Isolation, IsolationMode};

pub use private::{enter_private_netns, PRIVATE_EHASH_ENTRIES, PRIVATE_TW_BUCKETS};
pub use split::{
    enter_split_netns, enter_split_netns_with, BadDelayPreference, DelayMechanism, DelayPreference,
    SplitNetwork, CLIENT_TUN, CLIENT_VETH, DELAY_LINE_ENV, DELAY_LINE_TABLE, NETEM_LIMIT_PACKETS,
    SERVER_TUN, SERVER_VETH, SPLIT_CLIENT_ADDRESS, SPLIT_SERVER_ADDRESS, SPLIT_SOURCES_PER_KIND,
    TUN_TXQUEUELEN,
};

/// Where a namespace could not be created, entered or set up.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A namespace syscall (`unshare`, `setns`) or `/proc/thread-self/ns/net` failed.
    #[error("{action}: {error}")]
    Namespace {
        /// What was being done, e.g. `setns(CLONE_NEWNET)`.
        action: &'static str,
        /// The kernel's answer.
        error: io::Error,
    },
    /// An interface of the namespace could not be read or changed.
    #[error("{action} {interface}: {error}")]
    Interface {
        /// What was being done, e.g. `bringing up`.
        action: &'static str,
        /// The interface's name, e.g. `lo`.
        interface: String,
        /// The kernel's answer.
        error: io::Error,
    },
}

/// The host namespace, and why.
pub fn host(reason: impl Into<String>) -> Isolation {
    Isolation {
        mode: IsolationMode::HostNamespace,
        reason: Some(reason.into()),
        sysctls_set: Vec::new(),
        delay_path: None,
    }
}

/// Moves the calling thread into the network namespace `ns` (an open `/proc/.../ns/net`):
/// `setns(fd, CLONE_NEWNET)`. Threads and children started afterwards inherit it; sockets
/// already open stay in theirs.
pub fn enter_namespace(ns: &File) -> Result<(), NetnsError> {
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| NetnsError::Namespace {
        action: "setns(CLONE_NEWNET)",
        error: e.into(),
    })
}

/// A handle on the calling thread's current network namespace.
pub fn current_namespace() -> Result<File, NetnsError> {
    File::open("/proc/thread-self/ns/net").map_err(|error| NetnsError::Namespace {
        action: "opening /proc/thread-self/ns/net",
        error,
    })
}

/// Runs `f` with the calling thread in `ns`, then returns it to the namespace it was in.
/// An error means `f` did not run (entering failed) or the thread could not go back (and `f`'s
/// result is lost; the thread stays in `ns`).
pub fn with_namespace<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let home = current_namespace()?;
    enter_namespace(ns)?;
    let out = f();
    enter_namespace(&home)?;
    Ok(out)
}

/// Moves the calling thread (and every thread and process it starts afterwards) into a new,
/// empty network namespace: `unshare(CLONE_NEWNET)`. Loopback is down there; see
/// [`interface::bring_loopback_up`].
pub(crate) fn unshare_network_namespace() -> io::Result<()> {
    // SAFETY: rustix marks `unshare` unsafe for CLONE_FILES, after which descriptors opened by
    // other threads would no longer be this thread's. CLONE_NEWNET shares nothing less: open
    // descriptors, sockets included, stay valid and keep their namespace.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(io::Error::from)
}
