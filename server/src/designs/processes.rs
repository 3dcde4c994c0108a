//! Child processes of the `prefork` and `fork` designs: forking a child that runs a closure and
//! leaves with `_exit`, the child's set-up (its signal dispositions, death with its parent),
//! the parent's record of live children, which kills and reaps whatever is left when dropped
//! (so no error path leaves a child behind), and SIGCHLD as a readable socket.
//!
//! Forking is only safe while the process has one thread: the child of a multi-threaded
//! process may only make async-signal-safe calls, and ours allocate. The server is
//! single-threaded when these designs start (signal-hook's pipe registration starts no
//! thread); `loadgen serve-builtin` runs the server in a fresh process of its own, also
//! single-threaded. [`check_single_threaded`] makes sure of it at start.

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rustix::process::{
    getpid, getppid, kill_process, set_parent_process_death_signal, waitpid, Pid, Signal,
    WaitOptions,
};
use signal_hook::SigId;

use crate::ServerError;

/// Refuses to start `design` when the process has more than one thread (see the module docs).
pub fn check_single_threaded(design: &'static str) -> Result<(), ServerError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    match threads {
        Some(n) if n > 1 => Err(ServerError::Design {
            design,
            message: format!(
                "the process has {n} threads; forking one safely needs it to have one \
                 (run the afterburner binary, or `loadgen serve-builtin`)"
            ),
        }),
        _ => Ok(()),
    }
}

/// SIGCHLD as a readable socket (signal-hook writes a byte from the handler), so that a parent
/// asleep in poll(2) wakes when a child exits. Unregistered when dropped.
pub struct ChildExits {
    reader: std::os::unix::net::UnixStream,
    id: SigId,
}

impl ChildExits {
    /// Routes SIGCHLD to a new socket. Errors: socketpair's, or sigaction's.
    pub fn install() -> io::Result<ChildExits> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let id = signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, writer)?;
        Ok(ChildExits { reader, id })
    }

    /// The socket to poll: readable once a child exited since the last [`ChildExits::drain`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }

    /// Empties the socket; reap with [`Children::reap`] afterwards.
    pub fn drain(&self) {
        let mut bytes = [0u8; 64];
        while matches!((&self.reader).read(&mut bytes), Ok(n) if n > 0) {}
    }
}

impl Drop for ChildExits {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// The parent's live children, by pid. Dropping it SIGKILLs and reaps every child still there.
#[derive(Default)]
pub struct Children {
    pids: HashSet<Pid>,
}

impl Children {
    /// None yet.
    pub fn new() -> Children {
        Children::default()
    }

    /// Children not reaped yet.
    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// Whether every child was reaped.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    /// Forks a child that sets itself up (`child_setup`), runs `child` and leaves with
    /// `_exit` and the code `child` returned (101 if it panicked), never returning here.
    /// Returns the child's pid in the parent. Errors: fork's (EAGAIN at the process limit,
    /// ENOMEM).
    pub fn fork(&mut self, child: impl FnOnce() -> i32) -> io::Result<Pid> {
        let parent = getpid();
        // SAFETY: the process is single-threaded (see the module docs), so the child may do
        // anything the parent could; it never returns into the parent's code: it `_exit`s.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                let code = catch_unwind(AssertUnwindSafe(|| {
                    child_setup(parent);
                    child()
                }))
                .unwrap_or(101);
                // SAFETY: leaves without running the parent's atexit handlers or destructors,
                // which belong to the parent (its stdout buffer, its stats file, ...).
                unsafe { libc::_exit(code) }
            }
            pid => {
                let pid = Pid::from_raw(pid).expect("fork returned a positive pid");
                self.pids.insert(pid);
                Ok(pid)
            }
        }
    }

    /// Reaps every child that has exited, without waiting; returns their pids.
    pub fn reap(&mut self) -> Vec<Pid> {
        let mut reaped = Vec::new();
        while let Ok(Some((pid, _status))) = waitpid(None, WaitOptions::NOHANG) {
            if self.pids.remove(&pid) {
                reaped.push(pid);
            }
        }
        reaped
    }

    /// Waits until every child has exited or `until` passed, reaping them (`on_reaped` is told
    /// each pid), and writing a snapshot through `on_snapshot` whenever `snapshot` becomes
    /// readable meanwhile.
    pub fn wait_until(
        &mut self,
        until: Instant,
        exits: &ChildExits,
        mut on_reaped: impl FnMut(Pid),
        snapshot: BorrowedFd<'_>,
        mut on_snapshot: impl FnMut(),
    ) {
        loop {
            self.reap().into_iter().for_each(&mut on_reaped);
            let now = Instant::now();
            if self.is_empty() || now >= until {
                return;
            }
            let mut fds = [
                rustix::event::PollFd::from_borrowed_fd(exits.fd(), rustix::event::PollFlags::IN),
                rustix::event::PollFd::from_borrowed_fd(snapshot, rustix::event::PollFlags::IN),
            ];
            let timeout = super::one_connection::timespec(until - now);
            if rustix::event::poll(&mut fds, Some(&timeout)).is_ok() {
                if !fds[0].revents().is_empty() {
                    exits.drain();
                }
                if !fds[1].revents().is_empty() {
                    on_snapshot();
                }
            }
        }
    }

    /// SIGKILLs every child still there and reaps them all (`on_reaped` is told each pid);
    /// returns how many were killed.
    pub fn kill_all(&mut self, mut on_reaped: impl FnMut(Pid)) -> usize {
        let killed = self.pids.len();
        for &pid in &self.pids {
            let _ = kill_process(pid, Signal::KILL);
        }
        for pid in std::mem::take(&mut self.pids) {
            // Blocking: a SIGKILLed child exits at once.
            while let Err(rustix::io::Errno::INTR) = waitpid(Some(pid), WaitOptions::empty()) {}
            on_reaped(pid);
        }
        killed
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all(|_| {});
    }
}

/// The child's first steps after fork. It dies with its parent (PR_SET_PDEATHSIG, SIGKILL),
/// so that a parent killed outright (a test's `kill`, the loadgen's SIGKILL) leaves no child
/// behind; if the parent is already gone, it leaves at once. It runs none of the parent's
/// signal handling: SIGINT, SIGTERM and SIGUSR1 are ignored (the parent alone takes them, and
/// tells its children to stop through the stop pipe, so a signal sent to the whole process
/// group, like Ctrl-C's, still makes a graceful stop), and SIGCHLD takes its default action.
fn child_setup(parent: Pid) {
    if set_parent_process_death_signal(Some(Signal::KILL)).is_err() || getppid() != Some(parent) {
        // SAFETY: leaves at once; nothing of the parent's is run.
        unsafe { libc::_exit(1) };
    }
    for (signal, action) in [
        (libc::SIGINT, libc::SIG_IGN),
        (libc::SIGTERM, libc::SIG_IGN),
        (libc::SIGUSR1, libc::SIG_IGN),
        (libc::SIGCHLD, libc::SIG_DFL),
    ] {
        // SAFETY: replaces signal-hook's handler in this process only; SIG_IGN and SIG_DFL run
        // no code of ours.
        unsafe { libc::signal(signal, action) };
    }
}
