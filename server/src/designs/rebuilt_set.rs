//! The loop the `poll` and `select` designs share: one thread, and each round the whole set of
//! descriptors handed to the kernel again, as servers of the 1990s did (thttpd's fdwatch, Squid's
//! comm_select, Apache 1.3's select loop). The kernel scans every descriptor at every wait and
//! the loop scans every answer, so a round costs O(open connections) whether or not they are
//! busy: what epoll was made to remove (Banga, Mogul, Druschel, "A scalable and explicit event
//! delivery mechanism for UNIX", USENIX 1999). [`ReadinessSet`] is the one call that differs
//! between the two designs; everything else (accept, the connection state machine, deadlines,
//! the yielded queue, signals, graceful stop, the accept pause) is the `loop` design's
//! (`event_loop.rs`) made level-triggered.

use std::collections::VecDeque;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use rustix::net::SocketFlags;
use slab::Slab;

use super::event_loop::loop_error;
use super::Serving;
use crate::conn::{ConnSettings, Connection, LoopShared, Step};
use crate::site::Site;
use crate::stats::{CloseSide, Counters, StatsFile};
use crate::timers::{Deadlines, TimerKind};
use crate::{ServerConfig, ServerError, SignalSockets};

/// How long accepting pauses after EMFILE/ENFILE: the `loop` design's pause (100 ms), long
/// enough not to spin, short enough to recover by itself once descriptors free up.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What a descriptor is watched for in one round. Level-triggered readiness fires for as long
/// as the condition holds, so each descriptor asks for exactly what its owner waits on: a
/// connection with a reply blocked asks for writability only (readable request bytes it will
/// not read until the reply is out would wake every round), every other one for readability
/// only (a socket is writable nearly always).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Data, a FIN or an error to read; for a listener, a connection to accept.
    Read,
    /// Room in the send buffer, or an error.
    Write,
}

/// One descriptor the kernel reported ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// Where it was in the round's [`ReadinessSet::watch`] calls, from 0.
    pub position: usize,
    /// The peer's FIN or an error may be pending (POLLRDHUP, POLLHUP, POLLERR), so a short
    /// read does not prove the socket empty. Always false where the call cannot tell
    /// (`select`): see [`Connection::on_ready`]'s `trust_short_read`, and why trusting is safe
    /// with level-triggered readiness in `RebuiltSetLoop::drive`.
    pub read_closed: bool,
}

/// One readiness call over a set of descriptors that the loop rebuilds from scratch each round:
/// `clear`, `watch` each descriptor, `wait`, `collect_ready`.
pub trait ReadinessSet {
    /// The design's name (`--design`), for messages.
    const DESIGN: &'static str;
    /// The system call, for error messages: `poll`, `select`.
    const CALL: &'static str;

    /// Whether `fd` can be watched at all (`select`: below FD_SETSIZE). A connection accepted
    /// on a descriptor that cannot is closed at once.
    fn can_watch(fd: RawFd) -> bool;

    /// Empties the set for a new round.
    fn clear(&mut self);

    /// Adds `fd` for `wanted`; its position is the number of `watch` calls since `clear`. Each
    /// descriptor is watched at most once a round, and only if [`Self::can_watch`] allows it.
    fn watch(&mut self, fd: RawFd, wanted: Wanted);

    /// Waits until a watched descriptor is ready or `timeout` passes (`None`: no limit). Every
    /// descriptor watched since `clear` must stay open until this returns.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Appends the descriptors the last `wait` found ready to `ready`, each once.
    fn collect_ready(&self, ready: &mut Vec<Ready>);
}

/// What a position of the rebuilt set stands for.
#[derive(Clone, Copy, Debug)]
enum Watched {
    Listener,
    Stop,
    Snapshot,
    Connection(usize),
}

struct Slot<'site> {
    stream: TcpStream,
    conn: Connection<'site>,
    /// The connection's reply is blocked on a full socket: watch it for writability, not
    /// readability. From its last [`Step`]: a connection waits under the send timer exactly
    /// when it is in the middle of a reply (`conn.rs`: `Step::Wait { timer: Send }` comes only
    /// from its `Sending` state).
    wants_write: bool,
}

/// The shared loop over a [`ReadinessSet`]; its fields are the `loop` design's.
pub struct RebuiltSetLoop<'a, 'site, S: ReadinessSet> {
    set: S,
    /// What each position of this round's set stands for.
    watched: Vec<Watched>,
    /// This round's ready descriptors, kept for its capacity.
    ready: Vec<Ready>,
    listener: Option<TcpListener>,
    slots: Slab<Slot<'site>>,
    deadlines: Deadlines,
    /// Connections that used their turn with work left; run again before the next wait blocks.
    yielded: VecDeque<usize>,
    site: &'site Site,
    config: &'a ServerConfig,
    settings: ConnSettings,
    counters: Counters,
    read_buf: Vec<u8>,
    path_scratch: Vec<u8>,
    max_conns: usize,
    accept_paused_until: Option<Instant>,
    at_conn_limit: bool,
    shutdown_deadline: Option<Instant>,
    /// A connection was closed for a descriptor `S` cannot watch; said once on stderr.
    told_unwatchable: bool,
    stop_signal: UnixStream,
    snapshot_signal: UnixStream,
    /// `--stats`, if given: where snapshots go; the caller writes the final document.
    stats: Option<&'a mut StatsFile>,
}

/// Serves with `set` until SIGINT/SIGTERM and the grace period are over, writing a `--stats`
/// snapshot at each SIGUSR1; returns the counters for the final write. Fails with
/// [`ServerError::Design`] if the listener or a signal socket cannot be watched by `S`, and with
/// [`ServerError::EventLoop`] if the wait itself fails.
pub fn serve<S: ReadinessSet>(serving: Serving<'_>, set: S) -> Result<Counters, ServerError> {
    let Serving {
        listener,
        signals: SignalSockets { stop, snapshot },
        site,
        config,
        max_conns,
        stats,
    } = serving;
    for (what, fd) in [
        ("the listening socket", listener.as_raw_fd()),
        ("the SIGINT/SIGTERM socket", stop.as_raw_fd()),
        ("the SIGUSR1 socket", snapshot.as_raw_fd()),
    ] {
        if !S::can_watch(fd) {
            return Err(ServerError::Design {
                design: S::DESIGN,
                message: format!("{what} is descriptor {fd}, which {} cannot watch", S::CALL),
            });
        }
    }
    let mut event_loop = RebuiltSetLoop {
        set,
        watched: Vec::new(),
        ready: Vec::new(),
        listener: Some(listener),
        slots: Slab::new(),
        deadlines: Deadlines::new([
            config.header_timeout,
            config.keepalive_timeout,
            config.send_timeout,
            config.linger,
        ]),
        yielded: VecDeque::new(),
        site,
        config,
        settings: config.conn_settings(),
        counters: Counters::new(site.rules().count()),
        read_buf: vec![0; 64 * 1024],
        path_scratch: Vec::with_capacity(512),
        max_conns,
        accept_paused_until: None,
        at_conn_limit: false,
        shutdown_deadline: None,
        told_unwatchable: false,
        stop_signal: stop,
        snapshot_signal: snapshot,
        stats,
    };
    event_loop.run()?;
    Ok(event_loop.counters)
}

impl<'site, S: ReadinessSet> RebuiltSetLoop<'_, 'site, S> {
    fn run(&mut self) -> Result<(), ServerError> {
        loop {
            self.rebuild();
            let timeout = self.wait_timeout(Instant::now());
            if let Err(e) = self.set.wait(timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(loop_error(S::CALL)(e));
            }
            let now = Instant::now();
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            self.set.collect_ready(&mut ready);
            let mut accept_ready = false;
            let mut snapshot = false;
            let mut stop = false;
            for &Ready {
                position,
                read_closed,
            } in &ready
            {
                match self.watched[position] {
                    Watched::Listener => accept_ready = true,
                    Watched::Stop => stop = true,
                    Watched::Snapshot => snapshot = true,
                    Watched::Connection(key) => self.drive(key, now, !read_closed),
                }
            }
            self.ready = ready;
            if stop {
                // After this round's connections were driven. A level-triggered round has no
                // order, and the stop socket is watched first: stopping at its position would
                // close idle connections whose FIN or next request came in before the signal
                // server-first, unread. The `loop` design meets them first in epoll's ready
                // list (which keeps arrival order), so they count as it would count them.
                super::drain_signal(&self.stop_signal);
                self.begin_shutdown(now);
            }
            for _ in 0..self.yielded.len() {
                let key = self.yielded.pop_front().expect("counted");
                if self.slots.contains(key) {
                    self.drive(key, now, false);
                }
            }
            while let Some((key, kind)) = self.deadlines.pop_expired(now) {
                self.expire(key, kind, now);
            }
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                accept_ready = true;
            }
            if accept_ready {
                self.accept(now);
            }
            if snapshot {
                // After this round's connections were driven: the snapshot counts every reply
                // the round started.
                self.write_snapshot();
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.slots.is_empty() || now >= deadline {
                    // Whatever is still open after the grace period is cut off.
                    for _ in 0..self.slots.len() {
                        self.counters.count_close(CloseSide::ServerFirst);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Hands the kernel everything again: the O(n) step this design exists to show.
    fn rebuild(&mut self) {
        self.set.clear();
        self.watched.clear();
        // Once stopping, the stop socket has nothing more to say; level-triggered, a byte left
        // in it would wake every round.
        if self.shutdown_deadline.is_none() {
            self.set.watch(self.stop_signal.as_raw_fd(), Wanted::Read);
            self.watched.push(Watched::Stop);
        }
        self.set
            .watch(self.snapshot_signal.as_raw_fd(), Wanted::Read);
        self.watched.push(Watched::Snapshot);
        // A listener not being accepted from (paused, or at --max-conns) must not be watched:
        // its backlog would wake every round.
        if let Some(listener) = &self.listener {
            if self.accept_paused_until.is_none() && !self.at_conn_limit {
                self.set.watch(listener.as_raw_fd(), Wanted::Read);
                self.watched.push(Watched::Listener);
            }
        }
        for (key, slot) in &self.slots {
            let wanted = if slot.wants_write {
                Wanted::Write
            } else {
                Wanted::Read
            };
            self.set.watch(slot.stream.as_raw_fd(), wanted);
            self.watched.push(Watched::Connection(key));
        }
    }

    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.deadlines.next_deadline(),
            self.accept_paused_until,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
        // Round up to the next millisecond: poll's resolution, and no busy wake just before.
        .map(|at| at.saturating_duration_since(now) + Duration::from_micros(999))
    }

    /// Runs the connection at `key`. `trust_short_read` as in [`Connection::on_ready`]: with
    /// level-triggered readiness a trusted short read can lose nothing, since anything left in
    /// the socket (data or a FIN) makes it ready again at the next wait; trusting only when no
    /// FIN may be pending saves that extra round on a close, as the `loop` design does.
    fn drive(&mut self, key: usize, now: Instant, trust_short_read: bool) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let (stream, conn) = (&mut slot.stream, &mut slot.conn);
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.shutdown_deadline.is_some(),
            live: None,
        };
        let step = conn.on_ready(stream, &mut shared, &mut self.read_buf, trust_short_read);
        self.apply(key, step, now);
    }

    fn expire(&mut self, key: usize, kind: TimerKind, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.shutdown_deadline.is_some(),
            live: None,
        };
        let step = slot.conn.on_timer(kind, &mut slot.stream, &mut shared);
        self.apply(key, step, now);
    }

    fn apply(&mut self, key: usize, step: Step, now: Instant) {
        match step {
            Step::Wait { timer, restart } => {
                self.slots[key].wants_write = timer == TimerKind::Send;
                if restart || self.deadlines.armed(key) != Some(timer) {
                    self.deadlines.arm(key, timer, now);
                }
            }
            Step::AwaitFrame => {
                unreachable!("designs::preflight refuses --live for poll and select")
            }
            Step::Yield => {
                // A yield comes after a finished reply: what is left is to read.
                self.slots[key].wants_write = false;
                self.yielded.push_back(key);
            }
            Step::Close(side) => {
                self.counters.count_close(side);
                self.deadlines.disarm(key);
                // The next round's set leaves it out: nothing to deregister.
                drop(self.slots.remove(key));
                if self.at_conn_limit {
                    self.at_conn_limit = false;
                    self.accept(now);
                }
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            if self.slots.len() >= self.max_conns {
                // Leave the rest in the backlog; a close resumes accepting.
                self.at_conn_limit = true;
                return;
            }
            // accept4 with SOCK_NONBLOCK, as mio does for the `loop` design: no fcntl after.
            match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => {
                    self.counters.connections_accepted += 1;
                    let stream = TcpStream::from(fd);
                    let raw = stream.as_raw_fd();
                    if !S::can_watch(raw) {
                        if !self.told_unwatchable {
                            self.told_unwatchable = true;
                            eprintln!(
                                "afterburner: --design {}: a connection got descriptor {raw}, \
                                 which {} cannot watch; closing such connections",
                                S::DESIGN,
                                S::CALL
                            );
                        }
                        drop(stream);
                        self.counters.count_close(CloseSide::ServerFirst);
                        continue;
                    }
                    let key = self.slots.insert(Slot {
                        stream,
                        conn: Connection::new(),
                        wants_write: false,
                    });
                    self.counters.connections_peak =
                        self.counters.connections_peak.max(self.slots.len() as u64);
                    self.deadlines.arm(key, TimerKind::Header, now);
                    // Clients send the request right after connecting: often it is already here,
                    // which saves a round. Level-triggered, whatever a short read leaves behind
                    // makes the socket ready at the next wait.
                    self.drive(key, now, true);
                }
                Err(e) if e == rustix::io::Errno::AGAIN => return,
                Err(e) if super::event_loop::is_transient_accept_errno(e.raw_os_error()) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of a resource the server cannot
                    // free by retrying at once. Pause instead of spinning on the listener.
                    if self.counters.accept_pauses == 0 {
                        eprintln!(
                            "afterburner: accept failed ({}); pausing accepts briefly",
                            io::Error::from(e)
                        );
                    }
                    self.counters.accept_pauses += 1;
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Drains SIGUSR1's socket and writes one snapshot for whatever number of signals it
    /// held. A failed write is reported on stderr and serving goes on.
    fn write_snapshot(&mut self) {
        super::write_snapshot(
            &self.snapshot_signal,
            self.stats.as_deref_mut(),
            self.site.rules(),
            || self.counters.clone(),
        );
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + self.config.grace);
        // Dropping the listener refuses new connections from here on.
        self.listener = None;
        let keys: Vec<usize> = self.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(step) = self.slots[key].conn.on_shutdown() {
                self.apply(key, step, now);
            }
        }
    }
}
