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
use crate::conn::{ConnSettings, Connection, LoopShared, Step};
use crate::site::Site;
use crate::stats::{CloseSide, Counters};
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
        }
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
            self.totals.publish(&mut self.counters);
            let (kind, restart) = match step {
                Step::Yield => {
                    step = self.ready(&mut conn, &mut stream);
                    continue;
                }
                Step::Close(side) => return self.close(side),
                Step::Wait { timer, restart } => (timer, restart),
                Step::AwaitFrame => {
                    unreachable!("designs::preflight refuses --live for threads and prefork")
                }
            };
            if restart || armed.map(|a| a.kind) != Some(kind) {
                armed = Some(self.arm(kind, now));
            }
            let timer = armed.expect("armed just above");
            let cutoff = self.stop_seen.map(|seen| seen + self.grace);
            let until = cutoff.map_or(timer.deadline, |cutoff| cutoff.min(timer.deadline));
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
            }
        }
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
        self.totals.publish(&mut self.counters);
        self.totals.connection_ended();
    }

    fn ready(&mut self, conn: &mut Connection<'site>, stream: &mut TcpStream) -> Step {
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.stop_seen.is_some(),
            live: None,
        };
        conn.on_ready(stream, &mut shared, &mut self.read_buf, true)
    }

    fn on_timer(
        &mut self,
        conn: &mut Connection<'site>,
        stream: &mut TcpStream,
        kind: TimerKind,
    ) -> Step {
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.stop_seen.is_some(),
            live: None,
        };
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
