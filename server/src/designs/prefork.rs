//! The `prefork` design, Apache 1.3's model: `--workers` processes (64 by default) forked at
//! start, each blocking in accept(2) on the shared listener and serving one connection at a
//! time to its end ([`Worker::serve`]). The parent only supervises: it writes SIGUSR1
//! snapshots from the counters the workers share ([`SharedCounters`]), starts a new worker
//! when one dies, and stops them all on SIGINT/SIGTERM.
//!
//! Stop: the parent announces it through the stop pipe (workers serving a connection wake in
//! poll and close it when idle, after its reply, or at the end of `--grace`), then shuts the
//! listener down, which makes the accept(2) every idle worker is blocked in fail at once
//! (EINVAL) and resets connections still in the backlog, as the `loop` dropping its listener
//! does. A signal to each worker would do the same job with a race (a signal landing just
//! before accept(2) is called is missed); the pipe and the shutdown cannot be missed. Workers
//! still running at the end of `--grace` are killed; no worker outlives the parent
//! ([`Children`] and the workers' parent-death signal).
//!
//! Live stream (`--live`): a viewer holds its worker process for as long as it watches, so
//! `--workers` must exceed the viewers plus the other clients. Each process has its own
//! [`SharedRing`] (the parent's empty one, copied by fork) and builds the frames its viewer
//! needs: the same bytes in every process, since frames are a function of the stream's epoch,
//! but built once per process instead of once. Per-frame spread would need every process's
//! dispatch delays for the frame, so none is counted here; the per-viewer dispatch delays are
//! (summed in the shared counters with the other live counts and gauges).

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::net::{accept_with, Shutdown, SocketFlags};

use super::event_loop::loop_error;
use super::event_loop::{is_transient_accept_error, ACCEPT_PAUSE};
use super::one_connection::{is_readable_now, stop_pipe, wait_readable, Stop, Worker};
use super::processes::{check_single_threaded, ChildExits, Children};
use super::shared_counters::SharedCounters;
use super::shared_ring::SharedRing;
use super::write_snapshot;
use super::Serving;
use crate::stats::Counters;
use crate::ServerError;

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[(
    "--max-conns",
    "each of the --workers processes serves one connection at a time: the workers bound the \
     connections",
)];

/// Worker processes without `--workers`: 256, Apache 1.3's HARD_SERVER_LIMIT (httpd.h), the
/// most its MaxClients could be without recompiling, so that the pool holds as many
/// connections at once as Apache 1.3 could. The pool is fixed, where Apache 1.3 grew and shrank it between its spare-server
/// bounds and MaxClients, so that it does not resize in the middle of a measurement.
pub const DEFAULT_WORKERS: usize = 256;

/// Serves until SIGINT/SIGTERM; see [`super::serve`].
pub fn serve(serving: Serving<'_>) -> Result<Counters, ServerError> {
    let Serving {
        listener,
        signals,
        site,
        config,
        max_conns: _,
        mut stats,
    } = serving;
    check_single_threaded("prefork")?;
    let workers = config.workers.unwrap_or(DEFAULT_WORKERS);
    if workers == 0 {
        return Err(ServerError::Design {
            design: "prefork",
            message: "--workers must be at least 1".into(),
        });
    }
    // Workers block in accept(2). With one listener the kernel wakes one waiting process per
    // connection (an exclusive wait), so there is no thundering herd and no accept mutex is
    // needed (Apache 1.3's SINGLE_LISTEN_UNSERIALIZED_ACCEPT). O_NONBLOCK belongs to the open
    // file description all workers share, so it is cleared once, here.
    listener
        .set_nonblocking(false)
        .map_err(loop_error("making the listener blocking"))?;
    let totals = SharedCounters::new(site.rules().count())
        .map_err(loop_error("mapping the shared counters"))?;
    let (stop, announcer) = stop_pipe().map_err(loop_error("creating the stop pipe"))?;
    let mut announcer = Some(announcer);
    let exits = ChildExits::install().map_err(loop_error("routing SIGCHLD to a socket"))?;
    // Declared after what the children use, so that on an early return it is dropped first:
    // every worker is killed and reaped before anything else goes.
    let mut children = Children::new();
    // Made once here and inherited by every worker: a worker's writes copy only the pages they
    // touch (one of the read buffer's for a small request), where a buffer allocated (and
    // zeroed) in each worker would cost it all 64 KiB.
    // With --live, each worker process gets its own ring: this one, empty, copied by fork (the
    // parent never reads it). Frames are a function of the stream's epoch, so the processes'
    // rings agree on every byte; each builds the frames its own viewer needs.
    let ring = site.live().map(SharedRing::for_stream);
    let mut template = Worker::new(site, config, stop.fd(), &totals);
    if let (Some(live), Some(ring)) = (site.live(), ring.as_ref()) {
        template = template.with_live(live, ring, true);
    }
    let total_now = || {
        let mut total = totals.total();
        if let Some(ring) = ring.as_ref() {
            ring.report_into(&mut total.live, Instant::now(), false);
        }
        total
    };
    let mut start_worker = |children: &mut Children, announcer: &mut Option<_>| {
        children.fork(|| {
            drop(announcer.take()); // the parent's copy must be the last one
            accept_and_serve(&listener, &mut template, &stop, &totals)
        })
    };
    for _ in 0..workers {
        // The address is announced before this design starts, and forking the pool takes a
        // while on a loaded machine (hundreds of milliseconds for 64 workers in a debug build
        // beside a test suite): a stop asked for meanwhile is honoured at once.
        if is_readable_now(signals.stop.as_fd()) {
            break;
        }
        start_worker(&mut children, &mut announcer)
            .map_err(loop_error("forking a prefork worker"))?;
    }

    loop {
        let mut fds = [
            PollFd::new(&signals.stop, PollFlags::IN),
            PollFd::new(&signals.snapshot, PollFlags::IN),
            PollFd::from_borrowed_fd(exits.fd(), PollFlags::IN),
        ];
        if poll(&mut fds, None).is_err() {
            continue; // EINTR: SIGCHLD or another signal's handler ran
        }
        let [stop_now, snapshot, exited] = fds.map(|fd| !fd.revents().is_empty());
        if stop_now {
            break;
        }
        if snapshot {
            // The shared totals as they are: every step of every worker is in them.
            write_snapshot(
                &signals.snapshot,
                stats.as_deref_mut(),
                site.rules(),
                total_now,
            );
        }
        if exited {
            exits.drain();
            for pid in children.reap() {
                eprintln!("afterburner: prefork worker {pid:?} exited; starting another");
                if let Err(e) = start_worker(&mut children, &mut announcer) {
                    eprintln!("afterburner: starting a prefork worker failed: {e}");
                }
            }
        }
    }

    drop(announcer.take());
    // Idle workers are blocked in accept(2): shutting the shared listener down wakes them all.
    let _ = rustix::net::shutdown(&listener, Shutdown::Both);
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
                total_now,
            )
        },
    );
    // Each worker cuts its connection off at the end of --grace; one still running is killed,
    // and its connection counted as a server-first close by `final_total`.
    children.kill_all(|_| {});
    // The parent counts nothing itself: workers count their accepts too.
    let mut total = totals.final_total(&Counters::new(site.rules().count()));
    if let Some(ring) = ring.as_ref() {
        ring.report_into(&mut total.live, Instant::now(), false);
    }
    Ok(total)
}

/// A worker's life: accept a connection, serve it to its end, again, until the stop. Returns
/// its exit code.
fn accept_and_serve(
    listener: &std::net::TcpListener,
    worker: &mut Worker<'_, '_>,
    stop: &Stop,
    totals: &SharedCounters,
) -> i32 {
    let mut paused = false;
    loop {
        if worker.stopping() {
            return 0;
        }
        match accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok(socket) => {
                worker.count(|counters| counters.connections_accepted += 1);
                totals.connection_opened();
                worker.serve(TcpStream::from(socket));
            }
            Err(e) if is_transient_accept_error(&e.into()) => {}
            // EINVAL: the parent shut the listener down, which it does only to stop. The stop
            // pipe was closed first, but on the kernel measured on (6.18) a worker woken by the
            // shutdown may not see the pipe's hang-up for a moment yet: EINVAL alone decides.
            Err(rustix::io::Errno::INVAL) => return 0,
            Err(_) if worker.stopping() => return 0,
            Err(e) => {
                // EMFILE, ENOBUFS, ENOMEM: pause as the `loop` does, but wake for the stop.
                if !paused {
                    eprintln!("afterburner: prefork worker: accept failed ({e}); pausing");
                    paused = true;
                }
                worker.count(|counters| counters.accept_pauses += 1);
                wait_readable(stop.fd(), Some(ACCEPT_PAUSE));
            }
        }
    }
}
