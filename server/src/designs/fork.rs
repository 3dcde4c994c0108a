//! The `fork` design, the model of NCSA httpd, CERN httpd and inetd: the parent accepts and
//! forks a child per connection, which serves it to its end ([`Worker::serve`]) and `_exit`s.
//! At most `--max-conns` children live at once; at the limit the parent stops accepting until
//! one is reaped (SIGCHLD wakes it). The children add their counts to shared memory
//! ([`SharedCounters`]) as they go, which the parent reads for SIGUSR1 snapshots and the end.
//!
//! Stop: the parent closes its listener and announces the stop through the stop pipe; each
//! child closes its connection when idle, after its reply, or at the end of `--grace`. The
//! parent waits for them up to `--grace`, then kills the rest, whose connections count as
//! server-first closes. No child outlives the parent ([`Children`] and the children's
//! parent-death signal).

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::net::{accept_with, SocketFlags};

use super::event_loop::is_transient_accept_error;
use super::event_loop::loop_error;
use super::one_connection::{pause_accepting, stop_pipe, timespec, Worker};
use super::processes::{check_single_threaded, ChildExits, Children};
use super::shared_counters::SharedCounters;
use super::write_snapshot;
use super::Serving;
use crate::stats::{CloseSide, Counters};
use crate::ServerError;

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[(
    "--workers",
    "a process per connection; --max-conns bounds the processes",
)];

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
    check_single_threaded("fork")?;
    let totals = SharedCounters::new(site.rules().count())
        .map_err(loop_error("mapping the shared counters"))?;
    let (stop, announcer) = stop_pipe().map_err(loop_error("creating the stop pipe"))?;
    let mut announcer = Some(announcer);
    let mut listener = Some(listener);
    let exits = ChildExits::install().map_err(loop_error("routing SIGCHLD to a socket"))?;
    // Declared after what the children use, so that on an early return it is dropped first:
    // every child is killed and reaped before anything else goes.
    let mut children = Children::new();
    // The parent's own counts: accepts, accept pauses, connections it could not fork for.
    let mut counters = Counters::new(site.rules().count());

    // Made once here and inherited by every child: the child's writes copy only the pages they
    // touch (one of the read buffer's for a small request), where a buffer allocated (and
    // zeroed) in each child would cost it all 64 KiB.
    let mut worker = Worker::new(site, config, stop.fd(), &totals);
    let mut accept_paused_until: Option<Instant> = None;
    loop {
        let can_accept = accept_paused_until.is_none() && children.len() < max_conns;
        let Some(listening) = listener.as_ref() else {
            unreachable!("the listener is closed only at the stop");
        };
        let mut fds = vec![
            PollFd::new(&signals.stop, PollFlags::IN),
            PollFd::new(&signals.snapshot, PollFlags::IN),
            PollFd::from_borrowed_fd(exits.fd(), PollFlags::IN),
        ];
        if can_accept {
            fds.push(PollFd::new(listening, PollFlags::IN));
        }
        let timeout = accept_paused_until
            .map(|until| timespec(until.saturating_duration_since(Instant::now())));
        if poll(&mut fds, timeout.as_ref()).is_err() {
            continue; // EINTR: SIGCHLD or another signal's handler ran
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
                || totals.running_total(&counters),
            );
        }
        if ready[2] {
            exits.drain();
        }
        // Reap at every wake: a SIGCHLD may have interrupted the poll instead of waking it.
        children.reap();
        if accept_paused_until.is_some_and(|until| Instant::now() >= until) {
            accept_paused_until = None;
        }
        if !ready.get(3).copied().unwrap_or(false) {
            continue;
        }
        while children.len() < max_conns {
            let accepted = accept_with(
                listener.as_ref().expect("listening"),
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            );
            let socket = match accepted {
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
            // The closure owns the stream: the child serves it; in the parent the closure is
            // dropped unrun, which closes the parent's copy.
            let forked = children.fork(|| {
                // The child's copies the parent must be the last holder of.
                drop(listener.take());
                drop(announcer.take());
                worker.serve(stream);
                0
            });
            if let Err(e) = forked {
                // EAGAIN at the process limit, ENOMEM: the connection is closed unserved and
                // accepting pauses as for EMFILE.
                totals.connection_ended();
                counters.count_close(CloseSide::ServerFirst);
                pause_accepting(&mut counters, &mut accept_paused_until, &e);
                break;
            }
        }
    }

    // Stop: refuse new connections (and reset those in the backlog), tell every child.
    drop(listener.take());
    drop(announcer.take());
    let until = Instant::now() + config.grace;
    children.wait_until(
        until,
        &exits,
        |_| {},
        signals.snapshot.as_fd(),
        || {
            write_snapshot(
                &signals.snapshot,
                stats.as_deref_mut(),
                site.rules(),
                || totals.running_total(&counters),
            )
        },
    );
    // Each child cuts its connection off at the end of --grace; one still running is killed,
    // and its connection counted as a server-first close by `final_total`.
    children.kill_all(|_| {});
    Ok(totals.final_total(&counters))
}
