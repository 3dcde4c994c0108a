//! The `uring` design: one thread on one io_uring, the completion-based answer to the question
//! the `loop` design answers with epoll readiness. A multishot accept brings connections, a
//! multishot receive per connection fills buffers from a provided buffer ring, and replies
//! leave through `IORING_OP_SEND` from a per-connection copy, so that one `io_uring_enter`
//! submits every send of a round and collects every completion. The connection state machine
//! is the same as every design's (`conn.rs`), driven through `stream::UringStream`.
//!
//! Sends are completion-based rather than direct `send(2)` calls: batching them into the one
//! enter per round is what io_uring offers over epoll on this workload, where a direct send
//! would keep one syscall per reply. The price is a copy of each reply (the connection writes
//! through `Write`, whose slices the kernel may not keep) and a close that waits for the last
//! send to finish.
//!
//! With `--live` the loop owns a [`FrameRing`], as the `loop` design does: it publishes the
//! frames due at each wake-up (the next one bounds the wait) and drives the viewers waiting for
//! a frame. Each frame a viewer is sent is copied into its send queue (see `stream`). A viewer
//! takes its next frame by the same rule as in every design, fewer than the mark unsent, where
//! unsent counts the bytes queued here too; one that must wait is driven again when its queued
//! bytes are sent, or, with nothing queued and the kernel holding the mark unsent, when a
//! one-shot POLLOUT poll completes (no send would complete to wake it).
//!
//! Deadlines are the loop's own `Deadlines`; the nearest is the wait's timeout
//! (`IORING_ENTER_EXT_ARG`). SIGINT/SIGTERM and SIGUSR1 arrive as multishot polls of the
//! [`crate::SignalSockets`]. `--max-conns` cancels the accept at the limit; connections the kernel
//! handed over in the meantime wait unserved, like the backlog, until a slot frees.
//!
//! The kernel must offer io_uring with multishot accept (Linux 5.19), provided buffer rings
//! (5.19) and multishot receive (6.0); otherwise `serve` says what was refused and suggests
//! `--design loop`.

mod stream;

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use slab::Slab;

use self::stream::{BufRing, ConnIo, OpState, UringStream};
use super::event_loop::loop_error;
use super::Serving;
use crate::conn::{CloseMode, ConnSettings, Connection, LiveShared, LoopShared, Step};
use crate::live::{FrameRing, FrameSource, LiveStream, Policy};
use crate::site::Site;
use crate::stats::{CloseSide, Counters, StatsFile};
use crate::timers::{Deadlines, TimerKind};
use crate::{ServerConfig, ServerError};

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[(
    "--workers",
    "one thread on one ring (run several servers with --cpu for more)",
)];

/// Submission queue entries: room for a round's sends and re-arms at a few thousand
/// connections; a full queue is submitted early, never lost.
const SQ_ENTRIES: u32 = 4096;

/// Completion queue entries: multishot requests post many completions per submission, so the
/// queue is four times the submission queue. An overflow is not lost either (the kernel keeps
/// it, IORING_FEAT_NODROP) but costs a slower path.
const CQ_ENTRIES: u32 = 4 * SQ_ENTRIES;

/// The buffer group id of the ring's one provided buffer ring.
const BUF_GROUP: u16 = 0;

/// Receive buffers a connection may hold unread before its receive is cancelled (4 x 4 KiB:
/// a few pipelined request heads); it is re-armed once the connection has read them.
const MAX_HELD_BUFFERS: usize = 4;

/// How long accepting pauses after EMFILE/ENFILE (as the `loop` design).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// At exit, how long to wait for the kernel to finish the cancelled requests before leaking
/// the memory they may still write to.
const TEARDOWN_WAIT: Duration = Duration::from_secs(1);

/// What a completion is for: the top byte of its user data; the slot key is the low 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Accept = 1,
    StopSignal = 2,
    SnapshotSignal = 3,
    Recv = 4,
    Send = 5,
    /// The completion of an `AsyncCancel`: the cancelled request's own completion follows.
    Cancel = 6,
    /// A live viewer's one-shot POLLOUT: the kernel holds less than half the mark unsent.
    Writable = 7,
}

impl Op {
    fn user_data(self, key: usize) -> u64 {
        ((self as u64) << 56) | key as u64
    }

    fn decode(user_data: u64) -> Option<(Op, usize)> {
        let op = match (user_data >> 56) as u8 {
            1 => Op::Accept,
            2 => Op::StopSignal,
            3 => Op::SnapshotSignal,
            4 => Op::Recv,
            5 => Op::Send,
            6 => Op::Cancel,
            7 => Op::Writable,
            _ => return None,
        };
        Some((op, (user_data & u32::MAX as u64) as usize))
    }
}

/// One completion, copied out of the queue so that handling it may submit more.
#[derive(Clone, Copy, Debug)]
struct Completion {
    user_data: u64,
    result: i32,
    flags: u32,
}

struct Slot<'site> {
    fd: OwnedFd,
    /// `None` once closed by the state machine: the slot stays until its requests finish.
    conn: Option<Connection<'site>>,
    io: ConnIo,
    /// Closing: a timeout cut the connection off, so unsent bytes are dropped, not flushed.
    aborting: bool,
}

struct UringLoop<'a, 'site> {
    // Dropped first: the ring goes before the buffers it was registered with.
    ring: IoUring,
    buffers: BufRing,
    listener: Option<std::net::TcpListener>,
    accept: OpState,
    /// Connections accepted beyond `--max-conns` before the accept's cancel took effect: held
    /// unserved, as the kernel's backlog would hold them, until a slot frees.
    accepted_over_limit: VecDeque<OwnedFd>,
    stop_signal: mio::net::UnixStream,
    snapshot_signal: mio::net::UnixStream,
    slots: Slab<Slot<'site>>,
    deadlines: Deadlines,
    /// Connections that used their turn with work left; run again before the next wait.
    yielded: VecDeque<usize>,
    /// Connections whose receive ended with ENOBUFS: re-armed once buffers are back.
    starved: Vec<usize>,
    completions: VecDeque<Completion>,
    /// Requests in the kernel (a multishot one counts until its last completion).
    in_flight: usize,
    site: &'site Site,
    config: &'a ServerConfig,
    settings: ConnSettings,
    counters: Counters,
    read_buf: Vec<u8>,
    path_scratch: Vec<u8>,
    max_conns: usize,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    snapshot_due: bool,
    stats: Option<&'a mut StatsFile>,
    /// A failure met where it cannot be returned at once (submitting from deep in a handler).
    fatal: Option<ServerError>,
    /// The live stream's ring and waiting viewers, with `--live`.
    live: Option<LiveLoop<'site>>,
}

/// The loop's share of the live stream: its ring and the viewers waiting for a frame.
struct LiveLoop<'site> {
    stream: &'site LiveStream,
    ring: FrameRing,
    /// Slab keys of the viewers that answered [`Step::AwaitFrame`]; a key leaves at its next
    /// step, a close included, before the slab can hand it to a new connection.
    waiters: BTreeSet<usize>,
}

/// What the loop lends its connections of the live stream: the stream and its ring.
fn live_shared<'a>(live: &'a Option<LiveLoop<'_>>) -> Option<LiveShared<'a>> {
    live.as_ref().map(|live| LiveShared {
        stream: live.stream,
        source: &live.ring,
    })
}

/// Serves until SIGINT/SIGTERM and the grace period are over, as the `loop` design does, on
/// io_uring. Errors: [`ServerError::Design`] when the kernel refuses io_uring or a feature this
/// design needs (the message names it and suggests `--design loop`); [`ServerError::EventLoop`]
/// when waiting on the ring fails.
pub fn serve(serving: Serving<'_>) -> Result<Counters, ServerError> {
    let Serving {
        listener,
        signals,
        site,
        config,
        max_conns,
        stats,
    } = serving;
    let ring = open_ring()?;
    let buffers = BufRing::new().map_err(loop_error("mapping the receive buffers"))?;
    // SAFETY: the ring and its buffers are mappings owned by `buffers`, which outlives the
    // registration: the ring is dropped first, and the buffers are leaked if requests may
    // still be writing into them at the end.
    unsafe {
        ring.submitter().register_buf_ring_with_flags(
            buffers.ring_addr(),
            stream::RECV_BUF_COUNT,
            BUF_GROUP,
            0,
        )
    }
    .map_err(|e| {
        refused(
            "a provided buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19)",
            &e,
        )
    })?;

    let mut uring = UringLoop {
        ring,
        buffers,
        listener: Some(listener),
        accept: OpState::Idle,
        accepted_over_limit: VecDeque::new(),
        stop_signal: signals.stop,
        snapshot_signal: signals.snapshot,
        slots: Slab::new(),
        deadlines: Deadlines::new([
            config.header_timeout,
            config.keepalive_timeout,
            config.send_timeout,
            config.linger,
        ]),
        yielded: VecDeque::new(),
        starved: Vec::new(),
        completions: VecDeque::new(),
        in_flight: 0,
        site,
        config,
        settings: config.conn_settings(),
        counters: Counters::new(site.rules().count()),
        read_buf: vec![0; 64 * 1024],
        path_scratch: Vec::with_capacity(512),
        max_conns,
        accept_paused_until: None,
        shutdown_deadline: None,
        snapshot_due: false,
        stats,
        fatal: None,
        live: site.live().map(|stream| LiveLoop {
            stream,
            ring: stream.ring(),
            waiters: BTreeSet::new(),
        }),
    };
    let outcome = uring.run();
    uring.update_live_gauges();
    uring.teardown();
    outcome.map(|()| uring.counters)
}

/// Builds the ring, checks the kernel offers what the design uses, or says what it refused.
/// Checked before the server announces its address: the kernel sets up a ring with every
/// operation this design needs, or [`ServerError::Design`] says what it refused.
pub fn preflight() -> Result<(), ServerError> {
    open_ring().map(drop)
}

fn open_ring() -> Result<IoUring, ServerError> {
    // One thread submits and reaps: the kernel may run completion work only when we wait
    // (DEFER_TASKRUN, 6.1) instead of interrupting the thread. Older kernels: plain setup.
    let ring = match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_cqsize(CQ_ENTRIES)
        .build(SQ_ENTRIES)
    {
        Ok(ring) => ring,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)
            .map_err(|e| refused("io_uring_setup", &e))?,
        Err(e) => return Err(refused("io_uring_setup", &e)),
    };
    if !ring.params().is_feature_ext_arg() {
        return Err(design_error(
            "the kernel's io_uring cannot wait with a timeout (IORING_FEAT_EXT_ARG, Linux 5.11)"
                .into(),
        ));
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| refused("IORING_REGISTER_PROBE (Linux 5.6)", &e))?;
    let needed = [
        (opcode::AcceptMulti::CODE, "IORING_OP_ACCEPT"),
        (opcode::RecvMulti::CODE, "IORING_OP_RECV"),
        (opcode::Send::CODE, "IORING_OP_SEND"),
        (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(design_error(format!(
                "the kernel's io_uring does not support {name}"
            )));
        }
    }
    // Multishot receive has no probe of its own (the opcode is IORING_OP_RECV): go by version.
    let release = rustix::system::uname();
    let release = release.release().to_string_lossy();
    if let Some(version) = kernel_version(&release) {
        if version < (6, 0) {
            return Err(design_error(format!(
                "kernel {release} has no multishot receive (IORING_RECV_MULTISHOT, Linux 6.0)"
            )));
        }
    }
    Ok(ring)
}

/// `(major, minor)` of a kernel release such as `6.18.44-fc-v782`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn design_error(what: String) -> ServerError {
    ServerError::Design {
        design: "uring",
        message: format!("{what}; use --design loop"),
    }
}

/// The kernel refused `what` with `error`.
fn refused(what: &str, error: &io::Error) -> ServerError {
    let why = match error.raw_os_error() {
        Some(libc::ENOSYS) => " (a kernel without io_uring, or a seccomp filter blocking it)",
        Some(libc::EPERM) => " (io_uring disabled: sysctl kernel.io_uring_disabled, or seccomp)",
        Some(libc::EINVAL) => " (a kernel too old for it)",
        _ => "",
    };
    design_error(format!("the kernel refused {what}: {error}{why}"))
}

impl<'site> UringLoop<'_, 'site> {
    fn run(&mut self) -> Result<(), ServerError> {
        self.arm_signal(Op::StopSignal);
        self.arm_signal(Op::SnapshotSignal);
        self.update_accept(Instant::now());
        loop {
            let timeout = self.wait_timeout(Instant::now());
            self.wait(timeout)?;
            let now = Instant::now();
            self.reap();
            while let Some(completion) = self.completions.pop_front() {
                self.complete(completion, now)?;
            }
            for _ in 0..self.yielded.len() {
                let key = self.yielded.pop_front().expect("counted");
                self.drive(key, now);
            }
            while let Some((key, kind)) = self.deadlines.pop_expired(now) {
                self.expire(key, kind, now);
            }
            self.publish(now);
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
            }
            self.feed_starved();
            self.update_accept(now);
            if std::mem::take(&mut self.snapshot_due) {
                // After this round's connections were driven, as in the `loop` design.
                self.write_snapshot();
            }
            if let Some(error) = self.fatal.take() {
                return Err(error);
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.slots.is_empty() || now >= deadline {
                    let open = self.slots.iter().filter(|(_, s)| s.conn.is_some()).count();
                    for _ in 0..open {
                        self.counters.count_close(CloseSide::ServerFirst);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
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
        .map(|at| at.saturating_duration_since(now))
    }

    /// Submits what is queued and waits for a completion or the timeout.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), ServerError> {
        let result = match timeout {
            Some(timeout) => {
                let timespec = types::Timespec::new()
                    .sec(timeout.as_secs())
                    .nsec(timeout.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            // ETIME: the timeout passed. EINTR: a signal (its byte arrives as a completion).
            // EBUSY/EAGAIN: completions must be reaped first, which the caller does next.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(loop_error("io_uring_enter")(e)),
        }
    }

    /// Moves every posted completion to `self.completions`.
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            self.completions.push_back(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            });
        }
    }

    /// Queues `entry`; a full submission queue is submitted first. Every entry posts at least
    /// one completion, counted in `in_flight` until its last.
    fn push(&mut self, entry: squeue::Entry) {
        self.in_flight += 1;
        loop {
            // SAFETY: every buffer an entry points to (a connection's send queue) stays
            // allocated and untouched until the entry's completion: see `ConnIo::start_send`
            // and `finish_close`.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {
                    // The completion queue is full: take its entries (handled in this round)
                    // so the kernel can post more.
                    self.reap();
                    let _ = self.ring.submitter().submit_and_wait(0);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => {
                    self.in_flight -= 1;
                    self.fatal
                        .get_or_insert_with(|| loop_error("io_uring_enter (submitting)")(e));
                    return;
                }
            }
        }
    }

    fn arm_signal(&mut self, op: Op) {
        let fd = match op {
            Op::StopSignal => self.stop_signal.as_raw_fd(),
            _ => self.snapshot_signal.as_raw_fd(),
        };
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(op.user_data(0));
        self.push(entry);
    }

    fn cancel(&mut self, target: u64, key: usize) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(Op::Cancel.user_data(key));
        self.push(entry);
    }

    fn complete(&mut self, completion: Completion, now: Instant) -> Result<(), ServerError> {
        let Completion {
            user_data,
            result,
            flags,
        } = completion;
        let last = !cqueue::more(flags);
        if last {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let Some((op, key)) = Op::decode(user_data) else {
            return Ok(());
        };
        match op {
            Op::Accept => self.on_accept(result, last, now)?,
            Op::StopSignal => {
                self.begin_shutdown(now);
                if last && result >= 0 {
                    self.arm_signal(Op::StopSignal);
                }
            }
            Op::SnapshotSignal => {
                self.snapshot_due = true;
                if last && result >= 0 {
                    self.arm_signal(Op::SnapshotSignal);
                }
            }
            Op::Recv => self.on_recv(key, result, flags, last, now)?,
            Op::Send => self.on_send(key, result, now),
            Op::Writable => self.on_writable(key, now),
            Op::Cancel => {}
        }
        Ok(())
    }

    fn on_accept(&mut self, result: i32, last: bool, now: Instant) -> Result<(), ServerError> {
        if last {
            self.accept = OpState::Idle;
            if self.shutdown_deadline.is_some() {
                // The accept no longer holds the listener: closing it refuses new connections.
                self.listener = None;
            }
        }
        if result >= 0 {
            // SAFETY: a successful accept's result is a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            if self.shutdown_deadline.is_some() {
                drop(fd);
            } else if self.slots.len() >= self.max_conns || !self.accepted_over_limit.is_empty() {
                self.accepted_over_limit.push_back(fd);
            } else {
                self.admit(fd, now);
            }
            return Ok(());
        }
        let errno = -result;
        match errno {
            libc::ECANCELED => {}
            libc::EINVAL => {
                return Err(refused(
                    "multishot accept (IORING_ACCEPT_MULTISHOT, Linux 5.19)",
                    &io::Error::from_raw_os_error(errno),
                ))
            }
            errno if super::event_loop::is_transient_accept_errno(errno) => {}
            _ => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: pause instead of spinning, as `loop` does.
                if self.counters.accept_pauses == 0 {
                    eprintln!(
                        "afterburner: accept failed ({}); pausing accepts briefly",
                        io::Error::from_raw_os_error(errno)
                    );
                }
                self.counters.accept_pauses += 1;
                self.accept_paused_until = Some(now + ACCEPT_PAUSE);
            }
        }
        Ok(())
    }

    /// Admits held connections while slots are free, then arms or cancels the multishot
    /// accept to match: armed below `--max-conns`, unless paused or stopping.
    fn update_accept(&mut self, now: Instant) {
        while self.slots.len() < self.max_conns && self.shutdown_deadline.is_none() {
            let Some(fd) = self.accepted_over_limit.pop_front() else {
                break;
            };
            self.admit(fd, now);
        }
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        let wanted = self.shutdown_deadline.is_none()
            && self.accept_paused_until.is_none()
            && self.slots.len() < self.max_conns
            && self.accepted_over_limit.is_empty();
        match (self.accept, wanted) {
            (OpState::Idle, true) => {
                let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(Op::Accept.user_data(0));
                self.accept = OpState::Armed;
                self.push(entry);
            }
            (OpState::Armed, false) => {
                self.accept = OpState::Cancelling;
                self.cancel(Op::Accept.user_data(0), 0);
            }
            _ => {}
        }
    }

    fn admit(&mut self, fd: OwnedFd, now: Instant) {
        self.counters.connections_accepted += 1;
        let key = self.slots.insert(Slot {
            fd,
            conn: Some(Connection::new()),
            io: ConnIo::new(),
            aborting: false,
        });
        self.counters.connections_peak =
            self.counters.connections_peak.max(self.slots.len() as u64);
        self.deadlines.arm(key, TimerKind::Header, now);
        self.after_io(key);
    }

    fn on_recv(
        &mut self,
        key: usize,
        result: i32,
        flags: u32,
        last: bool,
        now: Instant,
    ) -> Result<(), ServerError> {
        let Some(slot) = self.slots.get_mut(key) else {
            return Ok(());
        };
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.buffers.taken();
            if result > 0 && slot.conn.is_some() {
                slot.io.push_received(bid, result as usize);
            } else {
                self.buffers.recycle(bid);
            }
        }
        if last {
            slot.io.recv = OpState::Idle;
        }
        match result {
            0 => slot.io.eof = true,
            1.. => {}
            _ => match -result {
                libc::ECANCELED => {}
                libc::ENOBUFS => {
                    // The ring ran dry: the bytes wait in the socket until buffers return.
                    if !slot.io.starved {
                        slot.io.starved = true;
                        self.starved.push(key);
                    }
                }
                libc::EINVAL => {
                    return Err(refused(
                        "multishot receive (IORING_RECV_MULTISHOT, Linux 6.0)",
                        &io::Error::from_raw_os_error(libc::EINVAL),
                    ))
                }
                errno => slot.io.recv_error = Some(errno),
            },
        }
        if slot.conn.is_none() {
            self.finish_close(key);
        } else {
            self.drive(key, now);
        }
        Ok(())
    }

    fn on_send(&mut self, key: usize, result: i32, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let emptied = if result >= 0 && !slot.aborting {
            slot.io.sent(result as usize)
        } else {
            slot.io
                .send_failed(if result < 0 { -result } else { libc::ECANCELED });
            true
        };
        if emptied && slot.io.shutdown_after_send.replace(false) && slot.io.send_error.is_none() {
            let _ = rustix::net::shutdown(&slot.fd, rustix::net::Shutdown::Write);
        }
        if slot.conn.is_none() {
            if emptied {
                self.finish_close(key);
            } else {
                self.after_io(key);
            }
            return;
        }
        if emptied && (std::mem::take(&mut slot.io.write_blocked) || slot.io.send_error.is_some()) {
            self.drive(key, now);
        } else {
            self.after_io(key);
        }
    }

    fn drive(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        // A short read empties the received queue, so it can be trusted, unless a FIN or an
        // error waits behind the bytes: then the connection must read once more to see it.
        let trust_short_read =
            !slot.io.eof && slot.io.recv_error.is_none() && slot.io.send_error.is_none();
        let mut stream = UringStream {
            fd: slot.fd.as_fd(),
            io: &mut slot.io,
            buffers: &mut self.buffers,
        };
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.shutdown_deadline.is_some(),
            live: live_shared(&self.live),
        };
        let step = conn.on_ready(
            &mut stream,
            &mut shared,
            &mut self.read_buf,
            trust_short_read,
        );
        self.apply(key, step, now, false);
    }

    fn expire(&mut self, key: usize, kind: TimerKind, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(conn) = slot.conn.as_mut() else {
            // A closed connection's last send did not finish within the send timeout.
            slot.aborting = true;
            if slot.io.send_in_flight {
                self.cancel(Op::Send.user_data(key), key);
            }
            self.finish_close(key);
            return;
        };
        let mut stream = UringStream {
            fd: slot.fd.as_fd(),
            io: &mut slot.io,
            buffers: &mut self.buffers,
        };
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.shutdown_deadline.is_some(),
            live: live_shared(&self.live),
        };
        let step = conn.on_timer(kind, &mut stream, &mut shared);
        // A timer's close drops the bytes still queued here, except the end of a `pause`: that
        // is the mode's ordinary close, and the reply (written, so with the kernel in every other
        // design) must still reach the client whole, before the FIN, as after `server`'s close.
        let pause_over = kind == TimerKind::Linger && self.settings.close_mode == CloseMode::Pause;
        self.apply(key, step, now, !pause_over);
    }

    /// Carries out `step`. `timed_out`: it answers a timer, so a close drops unsent bytes.
    fn apply(&mut self, key: usize, step: Step, now: Instant, timed_out: bool) {
        if let Some(live) = self.live.as_mut() {
            // A key waits for a frame only after `AwaitFrame`, until its next step.
            live.waiters.remove(&key);
        }
        match step {
            Step::Wait { timer, restart } => {
                if restart || self.deadlines.armed(key) != Some(timer) {
                    self.deadlines.arm(key, timer, now);
                }
                if timer == TimerKind::Send {
                    self.await_writable(key);
                }
                self.after_io(key);
            }
            Step::AwaitFrame => {
                // No timer: the next publication drives it. The receive stays armed, so the
                // client's FIN still ends the stream meanwhile.
                self.deadlines.disarm(key);
                if let Some(live) = self.live.as_mut() {
                    live.waiters.insert(key);
                }
                self.after_io(key);
            }
            Step::Yield => {
                self.yielded.push_back(key);
                self.after_io(key);
            }
            Step::Close(side) => {
                self.counters.count_close(side);
                self.deadlines.disarm(key);
                self.begin_close(key, now, timed_out);
            }
        }
    }

    /// A connection waits to write. With bytes queued, the send's completion drives it
    /// (`write_blocked`). A live viewer with nothing queued waits because the kernel holds its
    /// mark unsent: no send will complete to wake it, so a one-shot POLLOUT poll does.
    fn await_writable(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if slot.io.unsent() > 0 || slot.io.send_in_flight {
            slot.io.write_blocked = true;
            return;
        }
        let viewer = slot.conn.as_ref().is_some_and(|conn| conn.is_viewer());
        if !viewer || slot.io.poll_out != OpState::Idle {
            return;
        }
        slot.io.poll_out = OpState::Armed;
        let entry = opcode::PollAdd::new(types::Fd(slot.fd.as_raw_fd()), libc::POLLOUT as u32)
            .build()
            .user_data(Op::Writable.user_data(key));
        self.push(entry);
    }

    /// A live viewer's POLLOUT poll completed (or was cancelled): drive it, or finish its close.
    fn on_writable(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        slot.io.poll_out = OpState::Idle;
        if slot.conn.is_none() {
            self.finish_close(key);
        } else {
            self.drive(key, now);
        }
    }

    /// Publishes the frames due at `now`; then, under `queue:BYTES:disconnect` and `fifo`,
    /// kicks every viewer now too far behind (a stalled `fifo` viewer past the cap), and drives the viewers that were waiting for a frame (their
    /// frame is copied into their send queues, all sent by the next enter), counting the
    /// spread: the frame's due instant to the copy for the last of them. As the `loop` does.
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
                .filter(|(_, slot)| slot.conn.as_ref().is_some_and(|conn| conn.is_viewer()))
                .map(|(key, _)| key)
                .collect();
            for key in viewers {
                let Some(conn) = self.slots[key].conn.as_mut() else {
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
                if let Some(step) = conn.on_publish(&mut shared) {
                    self.apply(key, step, now, false);
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
            self.drive_frame(key, now);
        }
        let spread = Instant::now().saturating_duration_since(due);
        self.counters.live.count_spread(spread);
    }

    /// Hands a waiting viewer the frame just published.
    fn drive_frame(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        let mut stream = UringStream {
            fd: slot.fd.as_fd(),
            io: &mut slot.io,
            buffers: &mut self.buffers,
        };
        let mut shared = LoopShared {
            site: self.site,
            settings: &self.settings,
            counters: &mut self.counters,
            path_scratch: &mut self.path_scratch,
            shutting_down: self.shutdown_deadline.is_some(),
            live: live_shared(&self.live),
        };
        let step = conn.on_frame(&mut stream, &mut shared);
        self.apply(key, step, now, false);
    }

    /// Sets the live gauges to the values of now: viewers, their lag and kernel queues (two
    /// ioctls each, plus the bytes queued here as unsent), frames alive. Before each snapshot.
    fn update_live_gauges(&mut self) {
        let Some(live) = &self.live else {
            return;
        };
        let mut gauges = crate::stats::LiveGauges::default();
        for (_, slot) in self.slots.iter_mut() {
            let Some(conn) = slot.conn.as_ref() else {
                continue;
            };
            let stream = UringStream {
                fd: slot.fd.as_fd(),
                io: &mut slot.io,
                buffers: &mut self.buffers,
            };
            conn.add_live_gauges(&stream, &live.ring, &mut gauges);
        }
        gauges.frames_alive_now = live.ring.tally().alive();
        gauges.frames_alive_peak = live.ring.tally().peak();
        self.counters.live.gauges = gauges;
        self.counters.live.frames_published = live.ring.published();
        self.counters.live.source_late = live.ring.source_late();
    }

    /// Submits what a step left to do: the queued bytes' send, and the receive armed (or
    /// cancelled when the connection holds too many unread buffers).
    fn after_io(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let fd = slot.fd.as_raw_fd();
        let send = slot.io.start_send();
        let recv_wanted = slot.conn.is_some() && slot.io.wants_recv(MAX_HELD_BUFFERS);
        let recv = slot.io.recv;
        let starved = slot.io.starved;
        if let Some((bytes, len)) = send {
            let entry = opcode::Send::new(types::Fd(fd), bytes, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(Op::Send.user_data(key));
            self.push(entry);
        }
        match (recv, recv_wanted) {
            (OpState::Idle, true) if !starved => {
                if self.buffers.available() == 0 {
                    self.slots[key].io.starved = true;
                    self.starved.push(key);
                    return;
                }
                self.slots[key].io.recv = OpState::Armed;
                let entry = opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP)
                    .build()
                    .user_data(Op::Recv.user_data(key));
                self.push(entry);
            }
            (OpState::Armed, false) => {
                self.slots[key].io.recv = OpState::Cancelling;
                self.cancel(Op::Recv.user_data(key), key);
            }
            _ => {}
        }
    }

    /// Re-arms the receives that ran out of buffers, while there are buffers.
    fn feed_starved(&mut self) {
        while self.buffers.available() > 0 {
            let Some(key) = self.starved.pop() else {
                return;
            };
            if let Some(slot) = self.slots.get_mut(key) {
                slot.io.starved = false;
                self.after_io(key);
            }
        }
    }

    /// The state machine closed the connection: stop receiving, let the queued bytes leave
    /// (unless `abort`), then close the descriptor once the kernel holds no request on it.
    fn begin_close(&mut self, key: usize, now: Instant, abort: bool) {
        let slot = &mut self.slots[key];
        slot.conn = None;
        slot.aborting = abort;
        slot.io.release_received(&mut self.buffers);
        if slot.io.poll_out == OpState::Armed {
            slot.io.poll_out = OpState::Cancelling;
            self.cancel(Op::Writable.user_data(key), key);
        }
        let slot = &mut self.slots[key];
        if slot.io.recv == OpState::Armed {
            // A request in flight holds the socket open: close(2) alone would not end it.
            slot.io.recv = OpState::Cancelling;
            self.cancel(Op::Recv.user_data(key), key);
        }
        let slot = &mut self.slots[key];
        if abort {
            if slot.io.send_in_flight {
                self.cancel(Op::Send.user_data(key), key);
            } else {
                slot.io.send_failed(libc::ECANCELED);
            }
        } else {
            self.after_io(key);
            if self.slots[key].io.send_in_flight {
                // Bound the wait for the last bytes, as a blocked reply is bounded.
                self.deadlines.arm(key, TimerKind::Send, now);
            }
        }
        self.finish_close(key);
    }

    /// Closes a closing connection's descriptor and frees its slot once no request of it is
    /// in the kernel (so no completion can name a reused slot).
    fn finish_close(&mut self, key: usize) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        if slot.conn.is_some()
            || slot.io.recv != OpState::Idle
            || slot.io.send_in_flight
            || slot.io.poll_out != OpState::Idle
        {
            return;
        }
        self.deadlines.disarm(key);
        // Dropping the descriptor closes it: a FIN after the sent bytes, or an RST when the
        // state machine set SO_LINGER 0.
        drop(self.slots.remove(key));
    }

    /// Drains SIGUSR1's socket and writes one snapshot, as the `loop` design does.
    fn write_snapshot(&mut self) {
        self.update_live_gauges();
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
        // Connections accepted but never served are dropped, as a closed listener's backlog.
        self.accepted_over_limit.clear();
        match self.accept {
            OpState::Idle => self.listener = None,
            OpState::Armed => {
                self.accept = OpState::Cancelling;
                self.cancel(Op::Accept.user_data(0), 0);
            }
            OpState::Cancelling => {}
        }
        let keys: Vec<usize> = self.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            let step = match self.slots[key].conn.as_ref() {
                Some(conn) => conn.on_shutdown(),
                None => None,
            };
            if let Some(step) = step {
                self.apply(key, step, now, false);
            }
        }
    }

    /// Cancels every request still in the kernel and waits for their last completions, so
    /// that nothing writes into the buffers or reads the send queues once they are freed. If
    /// the kernel does not finish within [`TEARDOWN_WAIT`], that memory is leaked instead.
    fn teardown(&mut self) {
        if self.in_flight > 0 {
            let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(Op::Cancel.user_data(0));
            self.push(entry);
        }
        let until = Instant::now() + TEARDOWN_WAIT;
        while self.in_flight > 0 {
            let now = Instant::now();
            if now >= until {
                eprintln!(
                    "afterburner: {} io_uring requests still in the kernel at exit",
                    self.in_flight
                );
                self.buffers.leak();
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
            if self.wait(Some(until - now)).is_err() {
                self.in_flight = 0;
                self.buffers.leak();
                std::mem::forget(std::mem::take(&mut self.slots));
                return;
            }
            self.reap();
            while let Some(completion) = self.completions.pop_front() {
                if !cqueue::more(completion.flags) {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_op_and_key() {
        for op in [
            Op::Accept,
            Op::StopSignal,
            Op::SnapshotSignal,
            Op::Recv,
            Op::Send,
            Op::Cancel,
            Op::Writable,
        ] {
            for key in [0, 1, 4095, u32::MAX as usize] {
                assert_eq!(Op::decode(op.user_data(key)), Some((op, key)));
            }
        }
        assert_eq!(Op::decode(0), None);
    }

    #[test]
    fn kernel_version_reads_major_and_minor() {
        assert_eq!(kernel_version("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(kernel_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(kernel_version("6.1"), Some((6, 1)));
        assert_eq!(kernel_version("garbage"), None);
    }
}
