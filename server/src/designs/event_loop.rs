//! Afterburner's design: one thread, one mio readiness loop over the listener and every
//! connection. Connections live in a slab and are driven by readiness; deadlines come from
//! `timers::Deadlines`, whose nearest one is the poll timeout. Signals arrive as readiness of
//! the [`SignalSockets`]: stop, or write a `--stats` snapshot between two events.
//!
//! With `--live` the loop also owns a [`FrameRing`]: it publishes the frames due at each wake-up
//! (the next one bounds the poll timeout) and then drives the viewers that were waiting for a
//! frame. No readiness announces a new frame, so those viewers ([`Step::AwaitFrame`]) are kept
//! in a set of slab keys, taken out when they close (keys are reused).

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::conn::{Connection, LiveShared, LoopShared, Step};
use crate::live::{FrameRing, FrameSource, LiveStream, Policy};
use crate::site::Site;
use crate::stats::{CloseSide, Counters, StatsFile};
use crate::timers::{Deadlines, TimerKind};
use crate::{ServerConfig, ServerError, SignalSockets};

const LISTENER: Token = Token(usize::MAX - 1);
const STOP: Token = Token(usize::MAX - 2);
const SNAPSHOT: Token = Token(usize::MAX - 3);

/// How long accepting pauses after EMFILE/ENFILE: long enough not to spin, short enough that
/// the server recovers by itself as soon as descriptors free up.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[(
    "--workers",
    "one thread, one loop (--design reactors runs one loop per worker)",
)];

/// The failure of `action` in the loop.
pub(crate) fn loop_error(action: &'static str) -> impl FnOnce(io::Error) -> ServerError {
    move |error| ServerError::EventLoop { action, error }
}

struct Slot<'site> {
    stream: TcpStream,
    conn: Connection<'site>,
}

struct EventLoop<'a, 'site> {
    poll: Poll,
    listener: Option<TcpListener>,
    slots: Slab<Slot<'site>>,
    deadlines: Deadlines,
    /// Connections that used their turn with work left; run again before the next poll waits.
    yielded: VecDeque<usize>,
    site: &'site Site,
    config: &'a ServerConfig,
    settings: crate::conn::ConnSettings,
    counters: Counters,
    read_buf: Vec<u8>,
    path_scratch: Vec<u8>,
    max_conns: usize,
    accept_paused_until: Option<Instant>,
    at_conn_limit: bool,
    shutdown_deadline: Option<Instant>,
    /// SIGUSR1's socket, drained at each wake-up.
    snapshot_signal: UnixStream,
    /// Where snapshots go.
    snapshots: Snapshots<'a>,
    /// The live stream's ring and waiting viewers, with `--live`.
    live: Option<LiveLoop<'site>>,
}

/// One loop's share of the live stream: its own ring (the frames are a function of the
/// stream's epoch, so every loop builds the same ones) and the viewers waiting for a frame.
struct LiveLoop<'site> {
    stream: &'site LiveStream,
    ring: FrameRing,
    /// Slab keys of the viewers that answered [`Step::AwaitFrame`].
    waiters: BTreeSet<usize>,
}

/// Where a loop's SIGUSR1 snapshots go.
pub enum Snapshots<'a> {
    /// `--stats`, if given: the loop writes its counters there itself. The caller writes the
    /// final document to it after the loop, so the numbers run on.
    File(Option<&'a mut StatsFile>),
    /// One loop of several (`reactors`): each snapshot request hands the loop's counters so far
    /// to this function, whose owner sums every loop's into one document. Called only at a
    /// request, so the hot path shares nothing.
    Report(Box<dyn FnMut(&Counters) + 'a>),
}

/// Serves until `signals.stop` becomes readable (SIGINT or SIGTERM arrived), then drains within
/// the grace period. Each time `signals.snapshot` becomes readable (SIGUSR1), writes the
/// counters so far to `stats` as a snapshot and goes on serving; without `stats` the signal is
/// ignored. Returns the counters for the final write.
pub fn serve<'a>(
    listener: std::net::TcpListener,
    signals: SignalSockets,
    site: &Site,
    config: &'a ServerConfig,
    max_conns: usize,
    stats: Option<&'a mut StatsFile>,
) -> Result<Counters, ServerError> {
    let poll = Poll::new().map_err(loop_error("creating the epoll instance"))?;
    serve_with(
        poll,
        listener,
        signals,
        site,
        config,
        max_conns,
        Snapshots::File(stats),
    )
}

/// [`serve`] on `poll`, a new epoll instance, with SIGUSR1 snapshots going to `snapshots`: what
/// each loop of a design with several loops runs, on its own thread with its own listener and
/// signal sockets. The caller makes `poll`, so that a design whose loops share one descriptor
/// table can make every loop's descriptors before any loop accepts: connections taken by the
/// first loop could otherwise leave none for the epoll instance of the next (EMFILE under a
/// low `ulimit -n`), and the server would fail instead of serving.
pub fn serve_with<'a>(
    poll: Poll,
    listener: std::net::TcpListener,
    signals: SignalSockets,
    site: &Site,
    config: &'a ServerConfig,
    max_conns: usize,
    snapshots: Snapshots<'a>,
) -> Result<Counters, ServerError> {
    let SignalSockets {
        mut stop,
        snapshot: mut snapshot_signal,
    } = signals;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(loop_error("registering the listener with epoll"))?;
    poll.registry()
        .register(&mut stop, STOP, Interest::READABLE)
        .map_err(loop_error(
            "registering the SIGINT/SIGTERM socket with epoll",
        ))?;
    poll.registry()
        .register(&mut snapshot_signal, SNAPSHOT, Interest::READABLE)
        .map_err(loop_error("registering the SIGUSR1 socket with epoll"))?;
    let mut event_loop = EventLoop {
        poll,
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
        snapshot_signal,
        snapshots,
        live: site.live().map(|stream| LiveLoop {
            stream,
            ring: stream.ring(),
            waiters: BTreeSet::new(),
        }),
    };
    event_loop.run()?;
    event_loop.update_live_gauges();
    Ok(event_loop.counters)
}

impl<'site> EventLoop<'_, 'site> {
    fn run(&mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(loop_error("epoll_wait")(e));
            }
            let now = Instant::now();
            let mut accept_ready = false;
            let mut snapshot = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept_ready = true,
                    STOP => self.begin_shutdown(now),
                    SNAPSHOT => snapshot = true,
                    // Without RDHUP the FIN has not arrived: a short read means the socket is empty.
                    Token(key) => self.drive(key, now, !event.is_read_closed()),
                }
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
            self.publish(now);
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

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let publication = self
            .live
            .as_ref()
            .map(|live| live.stream.next_publication(&live.ring));
        [
            self.deadlines.next_deadline(),
            self.accept_paused_until,
            self.shutdown_deadline,
            publication,
        ]
        .into_iter()
        .flatten()
        .min()
        // Round up to the next millisecond: epoll's resolution, and no busy wake just before.
        .map(|at| at.saturating_duration_since(now) + Duration::from_micros(999))
    }

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
            live: live_shared(&self.live),
        };
        let step = conn.on_ready(stream, &mut shared, &mut self.read_buf, trust_short_read);
        self.apply(key, step, now);
    }

    /// Publishes the frames due at `now`; then, under `queue:BYTES:disconnect` and `fifo`, kicks
    /// every viewer now too far behind (Icecast checks each listener at each source pass; a
    /// stalled `fifo` viewer past the cap), and drives
    /// the viewers that were waiting for a frame, counting the spread: the frame's due instant
    /// to the first byte to the last of them.
    fn publish(&mut self, now: Instant) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.ring.publish(live.stream.since_epoch(now)) == 0 {
            return;
        }
        self.counters.live.frames_published = live.ring.published();
        self.counters.live.source_late = live.ring.source_late();
        let due = live
            .ring
            .newest()
            .map_or(now, |frame| live.stream.due(frame.seq));
        if matches!(
            live.stream.config.policy,
            Policy::QueueBytesDisconnect { .. } | Policy::Fifo
        ) {
            let viewers: Vec<usize> = self
                .slots
                .iter()
                .filter(|(_, slot)| slot.conn.is_viewer())
                .map(|(key, _)| key)
                .collect();
            for key in viewers {
                let mut shared = LoopShared {
                    site: self.site,
                    settings: &self.settings,
                    counters: &mut self.counters,
                    path_scratch: &mut self.path_scratch,
                    shutting_down: self.shutdown_deadline.is_some(),
                    live: live_shared(&self.live),
                };
                if let Some(step) = self.slots[key].conn.on_publish(&mut shared) {
                    self.apply(key, step, now);
                }
            }
        }
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let waiters = std::mem::take(&mut live.waiters);
        if waiters.is_empty() {
            return;
        }
        for key in waiters {
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            let mut shared = LoopShared {
                site: self.site,
                settings: &self.settings,
                counters: &mut self.counters,
                path_scratch: &mut self.path_scratch,
                shutting_down: self.shutdown_deadline.is_some(),
                live: live_shared(&self.live),
            };
            let step = slot.conn.on_frame(&mut slot.stream, &mut shared);
            self.apply(key, step, now);
        }
        let spread = Instant::now().saturating_duration_since(due);
        self.counters.live.count_spread(spread);
    }

    /// Sets the live gauges to the values of now: viewers, their lag and kernel queues (two
    /// ioctls each), frames alive. Called before each `--stats` write.
    fn update_live_gauges(&mut self) {
        let Some(live) = &self.live else {
            return;
        };
        let mut gauges = crate::stats::LiveGauges::default();
        for (_, slot) in self.slots.iter() {
            slot.conn
                .add_live_gauges(&slot.stream, &live.ring, &mut gauges);
        }
        gauges.frames_alive_now = live.ring.tally().alive();
        gauges.frames_alive_peak = live.ring.tally().peak();
        self.counters.live.gauges = gauges;
        self.counters.live.frames_published = live.ring.published();
        self.counters.live.source_late = live.ring.source_late();
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
            live: live_shared(&self.live),
        };
        let step = slot.conn.on_timer(kind, &mut slot.stream, &mut shared);
        self.apply(key, step, now);
    }

    fn apply(&mut self, key: usize, step: Step, now: Instant) {
        if let Some(live) = self.live.as_mut() {
            // A key waits for a frame only after `AwaitFrame`, until its next step; a closed
            // key leaves at once, before the slab hands it to a new connection.
            live.waiters.remove(&key);
        }
        match step {
            Step::Wait { timer, restart } => {
                if restart || self.deadlines.armed(key) != Some(timer) {
                    self.deadlines.arm(key, timer, now);
                }
            }
            Step::Yield => self.yielded.push_back(key),
            Step::AwaitFrame => {
                self.deadlines.disarm(key);
                if let Some(live) = self.live.as_mut() {
                    live.waiters.insert(key);
                }
            }
            Step::Close(side) => {
                self.counters.count_close(side);
                self.deadlines.disarm(key);
                // Closing the descriptor removes it from the epoll set: no deregister call.
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
            match listener.accept() {
                Ok((mut stream, _peer)) => {
                    self.counters.connections_accepted += 1;
                    let entry = self.slots.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        eprintln!("afterburner: registering a connection failed: {e}");
                        continue;
                    }
                    entry.insert(Slot {
                        stream,
                        conn: Connection::new(),
                    });
                    self.counters.connections_peak =
                        self.counters.connections_peak.max(self.slots.len() as u64);
                    self.deadlines.arm(key, TimerKind::Header, now);
                    // Clients send the request right after connecting: often it is already here,
                    // which saves a trip through epoll. The socket was registered first, so data
                    // or a FIN arriving from here on raises an event: a short read can be trusted.
                    self.drive(key, now, true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_transient_accept_error(&e) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of a resource the server cannot
                    // free by retrying at once. Pause instead of spinning on the listener.
                    if self.counters.accept_pauses == 0 {
                        eprintln!("afterburner: accept failed ({e}); pausing accepts briefly");
                    }
                    self.counters.accept_pauses += 1;
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Drains SIGUSR1's socket and writes one snapshot for whatever number of signals it
    /// held. A failed write is reported on stderr and serving goes on: a snapshot is for
    /// watching the run, not worth stopping it.
    fn write_snapshot(&mut self) {
        super::drain_signal(&self.snapshot_signal);
        self.update_live_gauges();
        match &mut self.snapshots {
            Snapshots::File(None) => {} // no --stats: SIGUSR1 is ignored
            Snapshots::File(Some(stats)) => {
                if let Err(error) = stats.write(&self.counters, self.site.rules(), false) {
                    eprintln!("afterburner: stats snapshot: {error}");
                }
            }
            Snapshots::Report(report) => report(&self.counters),
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + self.config.grace);
        // Dropping the listener refuses new connections from here on.
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(step) = self.slots[key].conn.on_shutdown() {
                self.apply(key, step, now);
            }
        }
    }
}

/// What a loop lends its connections of the live stream: the stream and its ring.
fn live_shared<'a>(live: &'a Option<LiveLoop<'_>>) -> Option<LiveShared<'a>> {
    live.as_ref().map(|live| LiveShared {
        stream: live.stream,
        source: &live.ring,
    })
}

pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(is_transient_accept_errno)
}

/// The accept failures (as errno) that concern one connection only (it was aborted, or a
/// firewall refused it): the next one may well succeed. Every design's list.
pub(crate) fn is_transient_accept_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM
    )
}
