//! Serving one connection to its end on the calling thread or process, asleep in poll(2) on
//! that one socket between steps: how the blocking designs (`threads`, `prefork`, `fork`)
//! drive the same [`Connection`] state machine as the `loop`, with the same deadlines and the
//! same shutdown rules. Also the stop announcement they share ([`Stop`], [`StopAnnouncer`]).

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::pipe::{pipe_with, PipeFlags};

use super::event_loop::ACCEPT_PAUSE;
use super::shared_counters::SharedCounters;
use super::shared_ring::SharedRing;
use crate::conn::{ConnSettings, Connection, LiveShared, LoopShared, Step};
use crate::live::LiveStream;
use crate::site::Site;
use crate::stats::{CloseSide, Counters, LiveGauges};
use crate::timers::TimerKind;
use crate::ServerConfig;

/// Bytes of the read buffer each worker (thread or process) owns: the `loop`'s size, so that
/// reads are the same; only the pages a read touches become resident (one page for a small
/// request), which the memory-per-connection figures include.
const READ_BUF_BYTES: usize = 64 * 1024;

/// Makes the pair of ends of the server's stop: a pipe whose read end ([`Stop`]) becomes
/// readable (end of file) for all its holders, threads and processes alike, when the last copy
/// of the write end ([`StopAnnouncer`]) is closed. Nothing is ever written to it, so nothing
/// needs draining, and it stays readable, so no one can miss it. A parent killed outright closes
/// its copy too, so its children see the stop even then. Errors: pipe2's.
pub fn stop_pipe() -> io::Result<(Stop, StopAnnouncer)> {
    let (reader, writer) = pipe_with(PipeFlags::CLOEXEC)?;
    Ok((Stop { reader }, StopAnnouncer { _writer: writer }))
}

/// The end of the stop pipe that workers watch (see [`stop_pipe`]).
pub struct Stop {
    reader: OwnedFd,
}

impl Stop {
    /// The descriptor to poll: readable once the stop is announced.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }
}

/// The end of the stop pipe that announces the stop when dropped (see [`stop_pipe`]). A forked
/// child must drop its copy at once, so that the parent's drop is the last one.
pub struct StopAnnouncer {
    /// Held only to be closed.
    _writer: OwnedFd,
}

/// Whether `fd` is readable (or at end of file, or in error) right now, without waiting.
pub fn is_readable_now(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
}

/// Waits in poll(2) until `fd` is readable or `timeout` passed (`None`: no limit). Returns
/// whether it is readable. EINTR counts as a wake without readiness.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let timeout = timeout.map(timespec);
    matches!(poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0)
}

/// `duration` as poll's timeout.
pub fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: duration.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: duration.subsec_nanos() as _,
    }
}

/// The [`LoopShared`] a worker lends its connection for one step (a macro: it borrows fields
/// of the worker one by one, which a method borrowing all of it could not).
macro_rules! loop_shared {
    ($worker:ident) => {
        LoopShared {
            site: $worker.site,
            settings: &$worker.settings,
            counters: &mut $worker.counters,
            path_scratch: &mut $worker.path_scratch,
            shutting_down: $worker.stop_seen.is_some(),
            live: $worker.live.as_ref().map(|live| LiveShared {
                stream: live.stream,
                source: live.ring,
            }),
        }
    };
}

/// One worker's means to serve connections one after another: its own read buffer, path
/// scratch and counters (published to `totals` after every step), the settings, and the stop
/// to watch. A thread or process makes one and reuses it for each connection it serves.
pub struct Worker<'a, 'site> {
    site: &'site Site,
    settings: ConnSettings,
    /// Timeout durations in [`TimerKind`] order: header, keep-alive, send, linger (what the
    /// `loop` gives its `Deadlines`).
    durations: [Duration; 4],
    grace: Duration,
    stop: BorrowedFd<'a>,
    /// When this worker saw the stop announced; its connections are cut off `grace` later.
    stop_seen: Option<Instant>,
    totals: &'a SharedCounters,
    counters: Counters,
    read_buf: Vec<u8>,
    path_scratch: Vec<u8>,
    /// The live stream and the ring this worker reads it from, with `--live`.
    live: Option<WorkerLive<'a>>,
}

/// A worker's share of the live stream.
struct WorkerLive<'a> {
    stream: &'a LiveStream,
    ring: &'a SharedRing,
    /// The ring is this worker's alone (`prefork`: one per process), so its frames alive are
    /// this worker's to report; with a ring shared by threads the design reports them.
    owns_ring: bool,
    /// What this worker added to the shared live gauges so far.
    contributed: LiveGauges,
}

/// Where a connection's timer stands: the kind it waits on and when that fires.
#[derive(Clone, Copy)]
struct Armed {
    kind: TimerKind,
    deadline: Instant,
}

/// What one wait in poll(2) brought.
struct Woken {
    socket_ready: bool,
    stop_announced: bool,
}

impl<'a, 'site> Worker<'a, 'site> {
    /// A worker for `site` under `config`'s timeouts and close mode; counts go to `totals`,
    /// and `stop` (a [`Stop`]) says when the server stops.
    pub fn new(
        site: &'site Site,
        config: &ServerConfig,
        stop: BorrowedFd<'a>,
        totals: &'a SharedCounters,
    ) -> Worker<'a, 'site> {
        Worker {
            site,
            settings: config.conn_settings(),
            durations: [
                config.header_timeout,
                config.keepalive_timeout,
                config.send_timeout,
                config.linger,
            ],
            grace: config.grace,
            stop,
            stop_seen: None,
            totals,
            counters: Counters::new(site.rules().count()),
            read_buf: vec![0; READ_BUF_BYTES],
            path_scratch: Vec::with_capacity(512),
            live: None,
        }
    }

    /// Serves the live stream of `stream` (the site's) from `ring`. `owns_ring`: no other worker
    /// reads `ring` (one per `prefork` process), so this worker reports its frames alive in the
    /// shared gauges; a ring shared by threads is reported by the design instead.
    pub fn with_live(
        mut self,
        stream: &'a LiveStream,
        ring: &'a SharedRing,
        owns_ring: bool,
    ) -> Self {
        self.live = Some(WorkerLive {
            stream,
            ring,
            owns_ring,
            contributed: LiveGauges::default(),
        });
        self
    }

    /// Whether this worker has seen the stop announced (during a connection, or now).
    pub fn stopping(&mut self) -> bool {
        if self.stop_seen.is_none() && is_readable_now(self.stop) {
            self.stop_seen = Some(Instant::now());
        }
        self.stop_seen.is_some()
    }

    /// Counts into this worker's counters and publishes them at once: for what the accepting
    /// code counts itself (accepts, accept pauses).
    pub fn count(&mut self, update: impl FnOnce(&mut Counters)) {
        update(&mut self.counters);
        self.totals.publish(&mut self.counters);
    }

    /// Serves `stream` (non-blocking, just accepted) to its end and closes it, blocking the
    /// calling thread: the connection's state machine runs whenever poll(2) says the socket is
    /// ready or its deadline passed. After the stop is announced, an idle connection closes at
    /// once and a reply in flight gets until `--grace` after the stop was seen, then is cut off
    /// (a server-first close, as in the `loop`). Every count, the close included, is published
    /// before this returns, and the open-connection gauge lowered (the caller raised it with
    /// [`SharedCounters::connection_opened`] when it accepted).
    pub fn serve(&mut self, mut stream: TcpStream) {
        let mut conn = Connection::new();
        let mut now = Instant::now();
        let mut armed = Some(self.arm(TimerKind::Header, now));
        // Clients send the request right after connecting: often it is already here. A short
        // read can be trusted here and below, since poll is level-triggered: data or a FIN
        // left behind is reported by the next poll.
        let mut step = self.ready(&mut conn, &mut stream);
        if self.stop_seen.is_some() {
            if let Some(shutdown_step) = conn.on_shutdown() {
                step = shutdown_step;
            }
        }
        loop {
            self.publish_counts(&conn, &stream);
            let (kind, restart) = match step {
                Step::Yield => {
                    step = self.ready(&mut conn, &mut stream);
                    continue;
                }
                Step::Close(side) => return self.close(side),
                Step::Wait { timer, restart } => (timer, restart),
                Step::AwaitFrame => {
                    // No timer while a viewer waits for a frame, as in the `loop`.
                    armed = None;
                    step = self.await_frame(&mut conn, &mut stream);
                    // A timer armed next starts from now, not from before the wait.
                    now = Instant::now();
                    continue;
                }
            };
            if restart || armed.map(|a| a.kind) != Some(kind) {
                armed = Some(self.arm(kind, now));
            }
            let timer = armed.expect("armed just above");
            let cutoff = self.stop_seen.map(|seen| seen + self.grace);
            let mut until = cutoff.map_or(timer.deadline, |cutoff| cutoff.min(timer.deadline));
            // A viewer waiting to write still wakes at each publication: the `loop` checks every
            // viewer then (`queue:BYTES:disconnect` kicks one too far behind), and its gauges
            // (its lag, the kernel's queues) are refreshed, which reads the ring and so
            // publishes the frame even if no other viewer does (frames alive stay as in the
            // `loop`). One wake per frame per stalled viewer.
            let publication = match &self.live {
                Some(live) if conn.is_viewer() => {
                    Some(live.ring.next_publication(Instant::now()).1)
                }
                _ => None,
            };
            if let Some(publication) = publication {
                until = until.min(publication);
            }
            let woken = self.wait(&stream, kind, until);
            now = Instant::now();
            // Poll again for the same reason unless something below changes the step.
            step = Step::Wait {
                timer: kind,
                restart: false,
            };
            if woken.stop_announced && self.stop_seen.is_none() {
                self.stop_seen = Some(now);
                if let Some(shutdown_step) = conn.on_shutdown() {
                    step = shutdown_step;
                    continue;
                }
            }
            if woken.socket_ready {
                step = self.ready(&mut conn, &mut stream);
            } else if now >= timer.deadline {
                armed = None;
                step = self.on_timer(&mut conn, &mut stream, kind);
            } else if self.stop_seen.is_some_and(|seen| now >= seen + self.grace) {
                // Still open at the end of the grace period: cut off.
                return self.close(CloseSide::ServerFirst);
            } else if publication.is_some_and(|publication| now >= publication) {
                if let Some(kick) = self.on_publish(&mut conn) {
                    step = kick;
                }
            }
        }
    }

    /// A viewer sent every frame there is: sleeps in poll(2) until the next publication,
    /// watching its socket for input (the client's FIN ends the stream) and the stop, then
    /// hands it the new frame ([`Connection::on_frame`]). The ring builds the frame for whichever
    /// waiting thread comes first. Counts the frame's spread through the ring.
    fn await_frame(&mut self, conn: &mut Connection<'site>, stream: &mut TcpStream) -> Step {
        let Some((ring, owns_ring)) = self.live.as_ref().map(|live| (live.ring, live.owns_ring))
        else {
            // Only a viewer awaits a frame, and a worker has viewers only with a ring.
            return Step::Close(CloseSide::ServerFirst);
        };
        let (seq, due) = ring.next_unbuilt();
        let cutoff = self.stop_seen.map(|seen| seen + self.grace);
        let until = cutoff.map_or(due, |cutoff| cutoff.min(due));
        ring.begin_wait();
        let woken = self.wait_for(stream, PollFlags::IN, until);
        let now = Instant::now();
        let step = if woken.stop_announced && self.stop_seen.is_none() {
            self.stop_seen = Some(now);
            conn.on_shutdown().unwrap_or(Step::AwaitFrame)
        } else if woken.socket_ready {
            self.ready(conn, stream)
        } else if now >= due {
            let sent_before = self.counters.live.bytes_sent;
            let step = self.on_frame(conn, stream);
            // A ring of its own (`prefork`) sees one viewer per frame, whose delay is no spread
            // (that would need every process's delays): only the dispatch delay is counted.
            if !owns_ring && self.counters.live.bytes_sent > sent_before {
                // The delay `Connection` counts is to its first write, just after `now`.
                ring.record_dispatch(seq, now.saturating_duration_since(due));
            }
            step
        } else if cutoff.is_some_and(|cutoff| now >= cutoff) {
            Step::Close(CloseSide::ServerFirst)
        } else {
            Step::AwaitFrame // EINTR: wait again
        };
        ring.end_wait();
        step
    }

    /// Publishes this worker's counts to the shared totals, with the live ring's late
    /// publications and finished spreads, and (for a viewer) its share of the live gauges:
    /// two ioctls (SIOCOUTQNSD, SIOCOUTQ) per step of a viewer, so the gauges are as fresh as
    /// its last frame.
    fn publish_counts(&mut self, conn: &Connection<'site>, stream: &TcpStream) {
        if let Some(live) = self.live.as_mut() {
            let counts = live.ring.take_counts();
            self.counters.live.source_late += counts.source_late;
            for &spread_us in counts.spreads_us.as_slice() {
                self.counters
                    .live
                    .count_spread(Duration::from_micros(spread_us));
            }
            if conn.is_viewer() {
                let mut gauges = LiveGauges::default();
                conn.add_live_gauges(stream, live.ring, &mut gauges);
                if live.owns_ring {
                    gauges.frames_alive_now = live.ring.frames_alive().0;
                }
                self.totals.set_live_gauges(&mut live.contributed, gauges);
            }
        }
        self.totals.publish(&mut self.counters);
    }

    fn arm(&self, kind: TimerKind, now: Instant) -> Armed {
        Armed {
            kind,
            deadline: now + self.durations[kind as usize],
        }
    }

    /// Counts the close and lowers the open-connection gauge before the caller drops the
    /// socket: the client sees the close only after both, so a connection it opens next never
    /// counts this one as still open (`connections_peak` stays exact, as in the `loop`).
    fn close(&mut self, side: CloseSide) {
        self.counters.count_close(side);
        if let Some(live) = self.live.as_mut() {
            // The viewer's share of the gauges goes with it; frames its process's ring holds
            // stay until they are replaced.
            let gauges = LiveGauges {
                frames_alive_now: match live.owns_ring {
                    true => live.ring.frames_alive().0,
                    false => 0,
                },
                ..LiveGauges::default()
            };
            self.totals.set_live_gauges(&mut live.contributed, gauges);
        }
        self.totals.publish(&mut self.counters);
        self.totals.connection_ended();
    }

    fn ready(&mut self, conn: &mut Connection<'site>, stream: &mut TcpStream) -> Step {
        let mut shared = loop_shared!(self);
        conn.on_ready(stream, &mut shared, &mut self.read_buf, true)
    }

    fn on_frame(&mut self, conn: &mut Connection<'site>, stream: &mut TcpStream) -> Step {
        let mut shared = loop_shared!(self);
        conn.on_frame(stream, &mut shared)
    }

    fn on_publish(&mut self, conn: &mut Connection<'site>) -> Option<Step> {
        let mut shared = loop_shared!(self);
        conn.on_publish(&mut shared)
    }

    fn on_timer(
        &mut self,
        conn: &mut Connection<'site>,
        stream: &mut TcpStream,
        kind: TimerKind,
    ) -> Step {
        let mut shared = loop_shared!(self);
        conn.on_timer(kind, stream, &mut shared)
    }

    /// Sleeps in poll(2) on the socket (and on the stop until it is seen) until one is ready or
    /// `until` passed. A reply blocked on a full socket (the send timer) waits to write; every
    /// other state waits to read (a request, or the client's FIN while lingering). Error and
    /// hang-up are always reported, and the state machine's next read or write finds them.
    fn wait(&self, stream: &TcpStream, kind: TimerKind, until: Instant) -> Woken {
        let interest = if kind == TimerKind::Send {
            PollFlags::OUT
        } else {
            PollFlags::IN
        };
        self.wait_for(stream, interest, until)
    }

    /// Sleeps in poll(2) on the socket for `interest` (and on the stop until it is seen) until
    /// one is ready or `until` passed.
    fn wait_for(&self, stream: &TcpStream, interest: PollFlags, until: Instant) -> Woken {
        let watch_stop = self.stop_seen.is_none();
        let mut fds = [
            PollFd::new(stream, interest),
            PollFd::from_borrowed_fd(self.stop, PollFlags::IN),
        ];
        let watched = if watch_stop { 2 } else { 1 };
        let timeout = timespec(until.saturating_duration_since(Instant::now()));
        match poll(&mut fds[..watched], Some(&timeout)) {
            Ok(_) => Woken {
                socket_ready: !fds[0].revents().is_empty(),
                stop_announced: watch_stop && !fds[1].revents().is_empty(),
            },
            // EINTR (a signal landed on this thread), or ENOMEM: look again after the checks.
            Err(_) => Woken {
                socket_ready: false,
                stop_announced: false,
            },
        }
    }
}

/// Accepting (or starting the thread or process for a connection) failed for want of a
/// resource the server cannot free by retrying at once (EMFILE, ENFILE, ENOBUFS, ENOMEM, EAGAIN
/// from clone or fork): pause accepting for `ACCEPT_PAUSE` (100 ms), as the `loop` does, and say so on
/// stderr the first time.
pub fn pause_accepting(
    counters: &mut Counters,
    accept_paused_until: &mut Option<Instant>,
    error: &io::Error,
) {
    if counters.accept_pauses == 0 {
        eprintln!("afterburner: accepting failed ({error}); pausing accepts briefly");
    }
    counters.accept_pauses += 1;
    *accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::cli::Args;

    fn config(extra: &[&str]) -> ServerConfig {
        let mut argv = vec!["afterburner", "--root", "unused"];
        argv.extend_from_slice(extra);
        Args::parse_config_from(argv)
    }

    /// A site of one file, a listener, and a connected pair: (site dir, client, server side).
    fn setup() -> (tempfile::TempDir, Site, TcpStream, TcpStream) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
        let site = Site::load(dir.path(), 1 << 20, Vec::new()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (dir, site, client, server)
    }

    #[test]
    fn an_unfinished_head_times_out_under_the_header_timer() {
        let (_dir, site, mut client, server) = setup();
        let config = config(&["--header-timeout", "200ms"]);
        let totals = SharedCounters::new(0).unwrap();
        let (stop, _announcer) = stop_pipe().unwrap();
        totals.connection_opened();
        client.write_all(b"GET /a.txt HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        Worker::new(&site, &config, stop.fd(), &totals).serve(server);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "closed after {took:?}");
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
        let total = totals.total();
        assert_eq!(total.timeouts[crate::stats::Timeout::Header as usize], 1);
        assert_eq!(total.closes[CloseSide::ServerFirst as usize], 1);
        assert_eq!(totals.open(), 0, "serve lowers the gauge it was given");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "nothing was answered");
    }

    #[test]
    fn the_stop_closes_an_idle_keepalive_connection_after_its_reply() {
        let (_dir, site, mut client, server) = setup();
        let config = config(&["--keepalive-timeout", "30s"]);
        let totals = SharedCounters::new(0).unwrap();
        let (stop, announcer) = stop_pipe().unwrap();
        totals.connection_opened();
        client
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::scope(|scope| {
            let serving =
                scope.spawn(|| Worker::new(&site, &config, stop.fd(), &totals).serve(server));
            let mut reply = vec![0u8; 4096];
            let n = client.read(&mut reply).unwrap();
            assert!(reply[..n].starts_with(b"HTTP/1.1 200"));
            let stopped = Instant::now();
            drop(announcer);
            serving.join().unwrap();
            assert!(
                stopped.elapsed() < Duration::from_secs(1),
                "idle: closed at once"
            );
        });
        let total = totals.total();
        assert_eq!(total.requests_by_status.iter().sum::<u64>(), 1);
        assert_eq!(total.closes[CloseSide::ServerFirst as usize], 1);
        assert_eq!(total.timeouts.iter().sum::<u64>(), 0);
    }
}
