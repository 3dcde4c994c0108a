//! The `threads` design: the main thread accepts and starts a thread per connection, which
//! serves it to its end asleep in poll(2) on its one socket ([`Worker::serve`]): a stack and a
//! kernel thread per connection, the classic blocking server. At most `--max-conns` connections
//! are open at once; at the limit the main thread stops accepting until one ends. (The limit
//! counts connections: a thread whose connection is closed may still be exiting, so for a
//! moment a few more threads than that can exist.)
//!
//! Counters: each thread counts into its own [`Counters`] and publishes them to the shared
//! totals after every step of its connection, so a SIGUSR1 snapshot includes every request
//! answered so far, in-flight connections' included; the main thread counts accepts itself.
//!
//! Live stream (`--live`): every connection thread reads one [`SharedRing`], published lazily
//! by the first viewer that needs a due frame; a viewer waiting for the next frame sleeps in
//! poll(2) until its due instant, watching its socket for the client's close. So all waiting
//! threads wake at the same instant, and the per-frame spread measures the scheduler handing
//! them the CPU. The main thread reports `frames_published` from the stream's clock and the
//! ring's frames alive; the workers' shares of the other gauges are summed in the shared
//! counters.

use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::net::{accept_with, SocketFlags};

use super::event_loop::is_transient_accept_error;
use super::event_loop::loop_error;
use super::one_connection::{pause_accepting, stop_pipe, timespec, Worker};
use super::shared_counters::SharedCounters;
use super::shared_ring::SharedRing;
use super::write_snapshot;
use super::Serving;
use crate::stats::{CloseSide, Counters};
use crate::ServerError;

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[(
    "--workers",
    "a thread per connection; --max-conns bounds the threads",
)];

/// Stack of each connection thread: 64 KiB. The deepest path (`on_ready`, `parse_request`'s 64
/// httparse header slots of 32 bytes, routing, `writev`) takes a few KiB even in a debug
/// build, so 64 KiB leaves a wide margin; std's default of 2 MiB would only reserve address
/// space (40 GB for 20,000 threads) that is never touched. A thread-per-connection server
/// tunes its stacks down like this (Apache's ThreadStackSize), and resident memory is what the
/// thread touches either way. An overflow hits the guard page and std reports it; it cannot
/// corrupt memory.
const CONNECTION_STACK_BYTES: usize = 64 * 1024;

/// Wakes the main thread when a connection thread ends, by return or by panic: at the
/// connection limit it waits for one. ([`Worker::serve`] lowered the open-connection gauge the
/// limit is checked against just before closing the socket.)
struct ThreadEnd<'a> {
    ended: BorrowedFd<'a>,
}

impl Drop for ThreadEnd<'_> {
    fn drop(&mut self) {
        // An eventfd counter: one write per end, never full in practice (2^64 - 2).
        let _ = rustix::io::write(self.ended, &1u64.to_ne_bytes());
    }
}

/// Serves until SIGINT/SIGTERM; see [`super::serve`].
pub fn serve(serving: Serving<'_>) -> Result<Counters, ServerError> {
    let Serving {
        listener,
        signals,
        site,
        config,
        max_conns,
        mut stats,
    } = serving;
    let totals = SharedCounters::new(site.rules().count())
        .map_err(loop_error("mapping the shared counters"))?;
    let (stop, announcer) = stop_pipe().map_err(loop_error("creating the stop pipe"))?;
    let ended: OwnedFd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
        .map_err(|e| loop_error("creating the thread-end eventfd")(e.into()))?;
    // The main thread's own counts: accepts, accept pauses, connections it could not start.
    let mut counters = Counters::new(site.rules().count());
    // With --live: one ring for every connection thread, published lazily by the first viewer
    // that needs a due frame (no publishing thread).
    let ring = site.live().map(SharedRing::for_stream);
    let ring = ring.as_ref();
    let running_total = |counters: &Counters| {
        let mut total = totals.running_total(counters);
        if let Some(ring) = ring {
            ring.report_into(&mut total.live, Instant::now(), true);
        }
        total
    };

    std::thread::scope(|scope| {
        let mut accept_paused_until: Option<Instant> = None;
        loop {
            let can_accept = accept_paused_until.is_none() && totals.open() < max_conns as u64;
            let mut fds = vec![
                PollFd::new(&signals.stop, PollFlags::IN),
                PollFd::new(&signals.snapshot, PollFlags::IN),
                PollFd::new(&ended, PollFlags::IN),
            ];
            if can_accept {
                fds.push(PollFd::new(&listener, PollFlags::IN));
            }
            let timeout = accept_paused_until
                .map(|until| timespec(until.saturating_duration_since(Instant::now())));
            if poll(&mut fds, timeout.as_ref()).is_err() {
                continue; // EINTR: a signal handler ran on this thread
            }
            let ready: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
            drop(fds);
            if ready[0] {
                break;
            }
            if ready[1] {
                write_snapshot(
                    &signals.snapshot,
                    stats.as_deref_mut(),
                    site.rules(),
                    || running_total(&counters),
                );
            }
            if ready[2] {
                let mut count = [0u8; 8];
                let _ = rustix::io::read(&ended, &mut count);
            }
            if accept_paused_until.is_some_and(|until| Instant::now() >= until) {
                accept_paused_until = None;
            }
            if !ready.get(3).copied().unwrap_or(false) {
                continue;
            }
            // Accept while the backlog has connections and the limit allows.
            while totals.open() < max_conns as u64 {
                let socket =
                    match accept_with(&listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                        Ok(socket) => socket,
                        Err(rustix::io::Errno::AGAIN) => break,
                        Err(e) if is_transient_accept_error(&e.into()) => continue,
                        Err(e) => {
                            pause_accepting(&mut counters, &mut accept_paused_until, &e.into());
                            break;
                        }
                    };
                counters.connections_accepted += 1;
                totals.connection_opened();
                let stream = TcpStream::from(socket);
                let (totals, stop, ended) = (&totals, &stop, ended.as_fd());
                let started = std::thread::Builder::new()
                    .stack_size(CONNECTION_STACK_BYTES)
                    .spawn_scoped(scope, move || {
                        let _end = ThreadEnd { ended };
                        let mut worker = Worker::new(site, config, stop.fd(), totals);
                        if let (Some(live), Some(ring)) = (site.live(), ring) {
                            worker = worker.with_live(live, ring, false);
                        }
                        worker.serve(stream);
                    });
                if let Err(e) = started {
                    // Out of threads or memory: the connection is closed unserved, and
                    // accepting pauses as for EMFILE. The gauge was raised for it.
                    totals.connection_ended();
                    counters.count_close(CloseSide::ServerFirst);
                    pause_accepting(&mut counters, &mut accept_paused_until, &e);
                    break;
                }
            }
        }

        // Stop: refuse new connections, tell every thread, and wait for them: each closes its
        // connection when idle, or after its reply, or at the end of --grace at the latest.
        drop(listener);
        drop(announcer);
        while totals.open() > 0 {
            let mut fds = [
                PollFd::new(&ended, PollFlags::IN),
                PollFd::new(&signals.snapshot, PollFlags::IN),
            ];
            if poll(&mut fds, None).is_err() {
                continue;
            }
            let (thread_ended, snapshot) =
                (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
            if thread_ended {
                let mut count = [0u8; 8];
                let _ = rustix::io::read(&ended, &mut count);
            }
            if snapshot {
                write_snapshot(
                    &signals.snapshot,
                    stats.as_deref_mut(),
                    site.rules(),
                    || running_total(&counters),
                );
            }
        }
    });
    let mut total = totals.final_total(&counters);
    if let Some(ring) = ring {
        ring.report_into(&mut total.live, Instant::now(), true);
    }
    Ok(total)
}
