//! One connection's life as a state machine: read a request, send its response, keep alive or
//! close the way the close mode says. Knows nothing of the loop: the loop hands it readiness and
//! expired timers, and it answers with what it wants next (`Step`).
//!
//! States, after thttpd's READING / SENDING / LINGERING:
//! * `Reading`: waiting for (the rest of) a request head. Idle keep-alive connections are here
//!   with an empty input buffer, which then holds no allocation at all.
//! * `Sending`: a response is partly written and the socket is full; wait for writability.
//! * `Lingering`: the last reply is with the kernel; wait for the client's FIN, for the send
//!   queue to drain, or for the linger deadline, then close in the configured way (`pause`:
//!   the client's FIN, or the linger duration after the reply, whatever the send queue holds).
//! * `Live`: a viewer of the live stream (`--live`) after its response head: frames are written
//!   as they are published, as the policy picks them ([`crate::live::Viewer`]), until the
//!   client closes or the policy kicks it; whatever the client sends is read and discarded.

use std::io::{self, IoSlice, Read, Write};
use std::time::Instant;

use crate::http::{parse_request, Parsed, Status};
use crate::live::{FrameSource, LiveStream, Next, Viewer};
use crate::site::{Answer, ConnectionHeader, Selection, Site, StreamFraming};
use crate::stats::{CloseSide, Counters, Timeout};
use crate::timers::TimerKind;

/// How the server ends a connection after its last reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// Close right after the last byte: the server holds the TIME_WAIT.
    Server,
    /// Wait for the client's FIN (the client then holds the TIME_WAIT), or for the linger
    /// duration after the send queue drained.
    WaitClient,
    /// `--close pause[=DURATION]` (default 500 ms, the 1996 Afterburner page's half-second
    /// pause): keep reading after the last reply is with the kernel, then close when the client's
    /// FIN arrives ([`CloseSide::ClientFirst`]) or when the linger duration has passed since the
    /// reply was handed over ([`CloseSide::ServerFirst`]), even if the kernel send queue still
    /// holds bytes the client has not acknowledged (SIOCOUTQ > 0): the close then queues the
    /// server's FIN behind them, and the client receives the whole reply before it.
    ///
    /// Unlike [`CloseMode::WaitClient`], the clock starts when the reply was written, not when
    /// the send queue drained, so the pause does not move the TIME_WAIT to slow clients: a 56k
    /// modem receives about 7 KB a second (56 kbit/s), 3.5 KB in 500 ms, so any reply larger
    /// than that is still on its way when the pause ends; the server's FIN goes first and the
    /// server holds the TIME_WAIT, exactly as in [`CloseMode::Server`]. Only clients that
    /// receive the reply and close within the pause (LAN clients) take the TIME_WAIT.
    /// `wait-client` waits for as long as the send queue keeps draining, then the deadline, so
    /// a slow client has had all the data, and time to close first, before the server gives up.
    Pause,
    /// Once the send queue drained, close with SO_LINGER 0: RST, no TIME_WAIT on either side.
    Reset,
}

/// The socket operations a connection needs beyond reading and writing.
pub trait Transport: Read + Write {
    /// Sends our FIN but keeps the read side open (`shutdown(SHUT_WR)`): server mode's lingering
    /// close after an error reply.
    fn shutdown_write(&self) -> io::Result<()>;
    /// Bytes handed to the kernel that the peer has not acknowledged yet (SIOCOUTQ).
    fn unacked_bytes(&self) -> io::Result<usize>;
    /// Makes the coming close send an RST instead of a FIN (SO_LINGER 0).
    fn set_reset_on_close(&self) -> io::Result<()>;
    /// Turns Nagle's algorithm off (TCP_NODELAY).
    fn set_nodelay(&self) -> io::Result<()>;
    /// Bytes handed to the kernel that it has not sent yet (SIOCOUTQNSD, Linux 2.6.38); part
    /// of [`Transport::unacked_bytes`], which is what a transport without the split reports.
    fn unsent_bytes(&self) -> io::Result<usize> {
        self.unacked_bytes()
    }
    /// Limits the unsent bytes the kernel takes to `bytes` (TCP_NOTSENT_LOWAT, Linux commit
    /// c9bee3b7fdec, 3.12): writes beyond it fail with EAGAIN, and the socket reports
    /// writable again only once fewer than `bytes / 2` are unsent (commit a74f0fa082b7).
    /// A transport without the option accepts the call and does nothing.
    fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        let _ = bytes;
        Ok(())
    }
    /// Whether the socket is writable now (poll(2) for POLLOUT, no wait). A socket found not
    /// writable is flagged by the kernel (`SOCK_NOSPACE` in `tcp_poll`) to announce writability
    /// later, so an edge-triggered waiter gets its EPOLLOUT edge even though no write failed.
    /// The default says "not writable": the caller then waits for readiness.
    fn poll_writable(&self) -> io::Result<bool> {
        Ok(false)
    }
}

/// Settings every connection of a loop shares.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// `--close`: how a connection ends after its last reply.
    pub close_mode: CloseMode,
    /// `--max-header-bytes`: the most a request line plus headers may take, in bytes; more is a
    /// 414 or 431.
    pub max_header_bytes: usize,
    /// Linger checks without send-queue progress before a lingering connection is given up on
    /// (the send timeout divided by the linger duration).
    pub max_stalled_linger_checks: u16,
    /// Requests served in one go before the connection yields to the others.
    pub requests_per_turn: u32,
}

/// What a connection lends from its loop for one step.
pub struct LoopShared<'a, 'site> {
    /// The preloaded site: its routes and the responses built at start-up.
    pub site: &'site Site,
    /// The close mode and limits every connection of the loop shares.
    pub settings: &'a ConnSettings,
    /// The loop's counters: statuses, hotlink alternates, bytes sent, timeouts.
    pub counters: &'a mut Counters,
    /// Reused for decoded request paths, so routing allocates nothing.
    pub path_scratch: &'a mut Vec<u8>,
    /// The server is stopping (within `--grace`): a connection closes after its current reply
    /// instead of staying open.
    pub shutting_down: bool,
    /// The live stream and where its frames are, with `--live`; `None` without.
    pub live: Option<LiveShared<'a>>,
}

/// The live stream as a loop lends it to its connections for one step.
#[derive(Clone, Copy)]
pub struct LiveShared<'a> {
    /// The stream's settings and epoch.
    pub stream: &'a LiveStream,
    /// Where the published frames are: the loop's own ring, or one shared by threads.
    pub source: &'a dyn FrameSource,
}

/// What a connection wants after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Wait for readiness under `timer`; `restart` says progress was made, so the timer starts
    /// over even if it was already armed.
    Wait {
        /// The timeout to wait under.
        timer: TimerKind,
        /// Restart `timer` from now even if it is already armed.
        restart: bool,
    },
    /// More work is ready but the connection used its turn: run it again soon.
    Yield,
    /// Drop the socket now; `side` says who closed first.
    Close(CloseSide),
    /// A live viewer sent every frame there is and waits for the next publication: no timer,
    /// no readiness will announce it (edge-triggered epoll has no event for "a new frame"), so
    /// the loop keeps the connection on a list and calls [`Connection::on_frame`] after each
    /// publication. Readiness may still come meanwhile (the client closing, writability):
    /// then [`Connection::on_ready`] as usual.
    AwaitFrame,
}

/// `State::Reading::keepalive_unacked` before the first keep-alive check of an idle period.
const NOT_CHECKED: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests or inside one. `keepalive_unacked`: the kernel send queue when the
    /// keep-alive timer last fired in this idle period (`NOT_CHECKED` before). A slow client
    /// may still be receiving the last reply long after the server wrote it; it is not idle
    /// until it has it all, so the timer starts over while the queue shrinks.
    Reading { keepalive_unacked: u32 },
    /// `unacked` is the kernel send queue when the write blocked: if it shrank by the time the
    /// send timer fires, the client is reading and the timer starts over. A blocked writer is
    /// only woken once a third of the buffer drains, which a modem-speed client may take minutes
    /// to do while reading steadily.
    Sending { unacked: u32 },
    Lingering {
        /// We already sent our FIN (server mode after an error) and only drain the client.
        fin_sent: bool,
        /// The send queue was seen empty at the previous check.
        drained: bool,
        last_unacked: u32,
        stalled_checks: u16,
    },
    /// A live viewer (the stream in [`Connection::viewer`]); `unacked` as in `Sending`, for the
    /// send timer while the socket is full.
    Live { unacked: u32 },
}

/// A response in progress: a resource and a cursor. The resource is borrowed from the site,
/// never copied; only a redirect that keeps the request's query owns one built for it.
struct Outgoing<'site> {
    resource: Answer<'site>,
    connection: ConnectionHeader,
    send_body: bool,
    sent: usize,
    /// A rejected request: the client may still be sending, so never close with input pending.
    rejected: bool,
    /// The live stream's head: a GET goes on with the stream once the head is out.
    stream: Option<StreamFraming>,
}

impl Outgoing<'_> {
    fn closes(&self) -> bool {
        self.connection == ConnectionHeader::Close
    }
}

/// One connection: its state (see the module docs), the unanswered request bytes and the
/// response in progress, which borrows from the `'site` and is never copied (but for the rare
/// redirect built for its request, [`Answer::Built`]).
pub struct Connection<'site> {
    state: State,
    /// Bytes of requests not yet answered; empty (unallocated) whenever the client is idle.
    input: Vec<u8>,
    outgoing: Option<Outgoing<'site>>,
    served_any: bool,
    /// TCP_NODELAY is set once a reply is sent on a connection that stays open: pipelined
    /// replies must not wait for the client's delayed ACK. A one-reply connection never needs
    /// it, and skipping it lets the FIN leave with the reply's last segment.
    nodelay: bool,
    /// The live viewer's place in the stream, in `State::Live` only. Boxed: 8 bytes for every
    /// other connection.
    viewer: Option<Box<LiveViewer>>,
}

/// A live viewer: the policy machine and the mark in force on its socket.
struct LiveViewer {
    viewer: Viewer,
    /// `TCP_NOTSENT_LOWAT` as set on the socket; `None` when off or refused (then the viewer is
    /// always ready and the kernel's send buffer is its queue).
    mark: Option<u64>,
}

enum WriteOutcome {
    Done,
    Blocked { progress: bool },
}

impl Default for Connection<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'site> Connection<'site> {
    /// A connection waiting for its first request head; allocates nothing.
    pub fn new() -> Self {
        Connection {
            state: State::Reading {
                keepalive_unacked: NOT_CHECKED,
            },
            input: Vec::new(),
            outgoing: None,
            served_any: false,
            nodelay: false,
            viewer: None,
        }
    }

    /// Whether the connection is between requests with nothing buffered.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Reading { .. })
            && self.input.is_empty()
            && self.outgoing.is_none()
    }

    /// The socket is readable or writable (or both); do all the work that can be done now.
    ///
    /// `trust_short_read`: the caller knows the peer's FIN has not arrived (no EPOLLRDHUP), so
    /// a read that returns less than the buffer has emptied the socket and the next edge will
    /// announce new data. nginx saves the same `read` that would only say EAGAIN.
    pub fn on_ready(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        read_buf: &mut [u8],
        trust_short_read: bool,
    ) -> Step {
        match self.state {
            State::Reading { .. } | State::Sending { .. } => {
                self.serve(io, shared, read_buf, trust_short_read)
            }
            State::Lingering { fin_sent, .. } => self.linger_read(io, shared, read_buf, fin_sent),
            State::Live { .. } => self.live_ready(io, shared, read_buf),
        }
    }

    /// A live viewer that answered [`Step::AwaitFrame`] may go on: a frame was published since.
    /// Any other connection just reports what it waits for, as after a readiness with nothing
    /// to do.
    pub fn on_frame(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
    ) -> Step {
        match self.state {
            State::Live { .. } => self.live_write(io, shared, false),
            _ => Step::Yield,
        }
    }

    /// The check at each publication for a live viewer, whatever it is doing: `Some(close)`
    /// when the policy disconnects it (`queue:BYTES:disconnect` over its bytes, `fifo` past its
    /// cap), counted as a kick. Touches no socket. `None` for every other connection.
    pub fn on_publish(&mut self, shared: &mut LoopShared<'_, 'site>) -> Option<Step> {
        let live = shared.live?;
        let viewer = &mut self.viewer.as_deref_mut()?.viewer;
        let before = viewer.counts;
        let kick = viewer.on_publish(live.stream.config.policy, live.source);
        shared.counters.live.add_viewer(before, viewer.counts);
        kick.map(|_| Step::Close(CloseSide::ServerFirst))
    }

    /// Whether this connection is a live viewer.
    pub fn is_viewer(&self) -> bool {
        self.viewer.is_some()
    }

    /// Adds this connection to the live gauges if it is a viewer: its lag behind `source`'s
    /// newest frame and its socket's unsent and unacknowledged bytes (two ioctls).
    pub fn add_live_gauges(
        &self,
        io: &impl Transport,
        source: &dyn FrameSource,
        gauges: &mut crate::stats::LiveGauges,
    ) {
        let Some(live) = self.viewer.as_deref() else {
            return;
        };
        gauges.viewers_now += 1;
        gauges.queue_bytes_now += live.viewer.lag_bytes(source);
        gauges.unsent_bytes_now += io.unsent_bytes().unwrap_or(0) as u64;
        gauges.unacked_bytes_now += io.unacked_bytes().unwrap_or(0) as u64;
    }

    /// The timer this connection waited on has expired.
    pub fn on_timer(
        &mut self,
        kind: TimerKind,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
    ) -> Step {
        let timeout = match kind {
            TimerKind::Header => Timeout::Header,
            TimerKind::KeepAlive => {
                if let State::Reading {
                    keepalive_unacked: previous,
                } = self.state
                {
                    let now_unacked = unacked_u32(io);
                    // The client took more of the last reply since the previous check (at the
                    // first check: it is still taking it): not idle, the timer starts again.
                    let shrank = now_unacked < previous;
                    if shrank && (now_unacked > 0 || previous != NOT_CHECKED) {
                        self.state = State::Reading {
                            keepalive_unacked: now_unacked,
                        };
                        return Step::Wait {
                            timer: TimerKind::KeepAlive,
                            restart: true,
                        };
                    }
                }
                Timeout::KeepAlive
            }
            TimerKind::Send => {
                if let State::Sending { unacked } | State::Live { unacked } = self.state {
                    let now_unacked = unacked_u32(io);
                    if now_unacked < unacked {
                        self.state = match self.state {
                            State::Live { .. } => State::Live {
                                unacked: now_unacked,
                            },
                            _ => State::Sending {
                                unacked: now_unacked,
                            },
                        };
                        return Step::Wait {
                            timer: TimerKind::Send,
                            restart: true,
                        };
                    }
                }
                Timeout::Send
            }
            TimerKind::Linger => return self.linger_check(io, shared),
        };
        shared.counters.count_timeout(timeout);
        Step::Close(CloseSide::ServerFirst)
    }

    /// The server is stopping: idle connections close now, replies in flight finish first.
    pub fn on_shutdown(&self) -> Option<Step> {
        match self.state {
            State::Reading { .. } if self.outgoing.is_none() => {
                Some(Step::Close(CloseSide::ServerFirst))
            }
            // A stream never finishes: viewers are cut off at once.
            State::Lingering { .. } | State::Live { .. } => {
                Some(Step::Close(CloseSide::ServerFirst))
            }
            _ => None,
        }
    }

    fn serve(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        read_buf: &mut [u8],
        trust_short_read: bool,
    ) -> Step {
        let mut progress = false;
        let mut socket_drained = false;
        let mut answered = 0u32;
        loop {
            // 1. Finish the response in progress.
            if let Some(out) = self.outgoing.as_mut() {
                match write_out(io, out, shared.counters) {
                    Ok(WriteOutcome::Done) => {
                        progress = true;
                        answered += 1;
                        self.served_any = true;
                        let out = self.outgoing.take().expect("response in progress");
                        self.state = State::Reading {
                            keepalive_unacked: NOT_CHECKED,
                        };
                        if let Some(framing) = out.stream.filter(|_| out.send_body) {
                            return self.start_live(io, shared, framing);
                        }
                        if out.closes() || shared.shutting_down {
                            return self.begin_close(io, shared, out.rejected);
                        }
                        self.stays_open(io);
                        if answered >= shared.settings.requests_per_turn {
                            return Step::Yield;
                        }
                    }
                    Ok(WriteOutcome::Blocked { progress: wrote }) => {
                        self.state = State::Sending {
                            unacked: unacked_u32(io),
                        };
                        return Step::Wait {
                            timer: TimerKind::Send,
                            restart: wrote || progress,
                        };
                    }
                    // The peer reset or went away mid-reply.
                    Err(_) => return Step::Close(CloseSide::ClientFirst),
                }
            }

            // 2. Answer a request already buffered (pipelined, or left by a yield).
            if !self.input.is_empty() {
                match parse_request(&self.input, shared.settings.max_header_bytes) {
                    Parsed::Complete { request, consumed } => {
                        let selection = shared.site.select(&request, shared.path_scratch);
                        self.input.drain(..consumed);
                        self.start_response(selection, false, shared);
                        continue;
                    }
                    Parsed::Reject(violation) => {
                        self.input = Vec::new();
                        self.start_response(shared.site.error(violation.status()), true, shared);
                        continue;
                    }
                    Parsed::Partial => {}
                }
            }

            // 3. Read more.
            if socket_drained {
                return self.wait_for_request(progress);
            }
            match io.read(read_buf) {
                Ok(0) => return Step::Close(CloseSide::ClientFirst),
                Ok(n) => {
                    socket_drained = trust_short_read && n < read_buf.len();
                    if self.input.is_empty() {
                        // The common case: whole requests in one read, answered straight from
                        // the loop's buffer; only an unfinished tail is kept.
                        let (consumed, answered_now, step) =
                            self.answer_from(&read_buf[..n], io, shared);
                        if let Some(step) = step {
                            return step;
                        }
                        self.input.extend_from_slice(&read_buf[consumed..n]);
                        if answered_now > 0 {
                            progress = true;
                            answered += answered_now;
                            if answered >= shared.settings.requests_per_turn {
                                return Step::Yield;
                            }
                        }
                    } else {
                        self.input.extend_from_slice(&read_buf[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.wait_for_request(progress)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Close(CloseSide::ClientFirst),
            }
        }
    }

    /// Nothing more to read for now: idle between requests, or inside an unfinished head.
    fn wait_for_request(&mut self, progress: bool) -> Step {
        if self.input.is_empty() {
            self.input = Vec::new(); // idle connections hold no buffer
            if self.served_any {
                if progress {
                    // A new idle period: its keep-alive checks start afresh.
                    self.state = State::Reading {
                        keepalive_unacked: NOT_CHECKED,
                    };
                }
                return Step::Wait {
                    timer: TimerKind::KeepAlive,
                    restart: progress,
                };
            }
        }
        Step::Wait {
            timer: TimerKind::Header,
            restart: progress,
        }
    }

    /// Answers the complete requests at the start of `buf` (bytes just read, not yet copied).
    /// Returns the bytes consumed, the responses completed, and a step if the connection must
    /// stop here; bytes it neither consumed nor stashed are the caller's to keep.
    fn answer_from(
        &mut self,
        buf: &[u8],
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
    ) -> (usize, u32, Option<Step>) {
        let mut consumed = 0;
        let mut answered = 0;
        while consumed < buf.len() {
            match parse_request(&buf[consumed..], shared.settings.max_header_bytes) {
                Parsed::Complete {
                    request,
                    consumed: n,
                } => {
                    let selection = shared.site.select(&request, shared.path_scratch);
                    consumed += n;
                    self.start_response(selection, false, shared);
                }
                Parsed::Reject(violation) => {
                    // Whatever follows a rejected head (a body never read, a smuggled request) is
                    // never parsed: the connection closes after the reply.
                    consumed = buf.len();
                    self.start_response(shared.site.error(violation.status()), true, shared);
                }
                Parsed::Partial => return (consumed, answered, None),
            }
            let out = self.outgoing.as_mut().expect("response just started");
            match write_out(io, out, shared.counters) {
                Ok(WriteOutcome::Done) => {
                    self.served_any = true;
                    answered += 1;
                    let out = self.outgoing.take().expect("response in progress");
                    if let Some(framing) = out.stream.filter(|_| out.send_body) {
                        let step = self.start_live(io, shared, framing);
                        return (buf.len(), answered, Some(step));
                    }
                    if out.closes() || shared.shutting_down {
                        let step = self.begin_close(io, shared, out.rejected);
                        return (consumed, answered, Some(step));
                    }
                    self.stays_open(io);
                }
                Ok(WriteOutcome::Blocked { .. }) => {
                    // Keep the pipelined rest for when this response is out.
                    self.input.extend_from_slice(&buf[consumed..]);
                    self.state = State::Sending {
                        unacked: unacked_u32(io),
                    };
                    let step = Step::Wait {
                        timer: TimerKind::Send,
                        restart: true,
                    };
                    return (buf.len(), answered, Some(step));
                }
                Err(_) => {
                    return (
                        consumed,
                        answered,
                        Some(Step::Close(CloseSide::ClientFirst)),
                    )
                }
            }
        }
        (consumed, answered, None)
    }

    fn stays_open(&mut self, io: &impl Transport) {
        if !self.nodelay {
            self.nodelay = true;
            let _ = io.set_nodelay();
        }
    }

    /// Every request of every design, parsed or rejected, passes here once.
    fn start_response(
        &mut self,
        selection: Selection<'site>,
        rejected: bool,
        shared: &mut LoopShared<'_, 'site>,
    ) {
        #[cfg(feature = "extra-cost")]
        extra_cost::per_request();
        let counters = &mut *shared.counters;
        let status = selection.resource.status();
        counters.requests_by_status[status.index()] += 1;
        if let Some(rule) = selection.hotlink_rule {
            counters.hotlink_alternates[rule] += 1;
        }
        self.outgoing = Some(Outgoing {
            resource: selection.resource,
            connection: selection.connection,
            send_body: selection.send_body,
            sent: 0,
            rejected: rejected || status == Status::BadRequest,
            stream: selection.stream,
        });
    }

    /// The stream's head is out: the connection becomes a viewer. Whatever the client sent
    /// after the request is dropped (a stream answers one request).
    fn start_live(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        framing: StreamFraming,
    ) -> Step {
        self.input = Vec::new();
        let Some(live) = shared.live.filter(|_| !shared.shutting_down) else {
            return Step::Close(CloseSide::ServerFirst);
        };
        let mark = live
            .stream
            .config
            .lowat
            .filter(|&mark| io.set_notsent_lowat(mark).is_ok())
            .map(u64::from);
        shared.counters.live.viewers_joined += 1;
        self.viewer = Some(Box::new(LiveViewer {
            viewer: Viewer::new(framing == StreamFraming::Chunked),
            mark,
        }));
        self.state = State::Live { unacked: 0 };
        self.live_write(io, shared, true)
    }

    /// A viewer's socket is ready: discard what the client sent (its FIN ends the stream),
    /// then write what the policy gives.
    fn live_ready(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        read_buf: &mut [u8],
    ) -> Step {
        loop {
            match io.read(read_buf) {
                Ok(0) => return Step::Close(CloseSide::ClientFirst),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Close(CloseSide::ClientFirst),
            }
        }
        self.live_write(io, shared, false)
    }

    /// Writes frames as the viewer's policy picks them until the socket is full (wait for
    /// writability under the send timer), the kernel holds the mark unsent (the same), there is
    /// no newer frame ([`Step::AwaitFrame`]) or the policy kicks the viewer (server-first
    /// close, a kick). The viewer's counts go to the loop's live counters as they grow.
    fn live_write(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        mut progress: bool,
    ) -> Step {
        let (Some(live), Some(state)) = (shared.live, self.viewer.as_deref_mut()) else {
            return Step::Close(CloseSide::ServerFirst);
        };
        let config = &live.stream.config;
        let counters = &mut *shared.counters;
        let viewer = &mut state.viewer;
        let before = viewer.counts;
        // A socket that says writable while the kernel still holds the mark unsent (a race
        // with the ACK clock) is asked again only this often before the viewer waits.
        let mut drain_checks = 0;
        let step = loop {
            let unsent = match state.mark {
                Some(_) if viewer.pending().is_empty() => io.unsent_bytes().unwrap_or(0) as u64,
                _ => 0,
            };
            let starting = viewer.current_seq().is_none();
            match viewer.next(
                config.policy,
                live.source,
                unsent,
                state.mark,
                config.join_burst_bytes(),
            ) {
                Next::Write => {
                    if starting {
                        if let Some(seq) = viewer.current_seq() {
                            let delay =
                                Instant::now().saturating_duration_since(live.stream.due(seq));
                            counters.live.count_dispatch_delay(delay);
                        }
                    }
                    match io.write(viewer.pending()) {
                        Ok(0) => break Step::Close(CloseSide::ClientFirst),
                        Ok(n) => {
                            viewer.accepted(n);
                            counters.response_bytes += n as u64;
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.state = State::Live {
                                unacked: unacked_u32(io),
                            };
                            break Step::Wait {
                                timer: TimerKind::Send,
                                restart: progress,
                            };
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break Step::Close(CloseSide::ClientFirst),
                    }
                }
                Next::Drain => {
                    drain_checks += 1;
                    if drain_checks <= 2 && io.poll_writable().unwrap_or(false) {
                        continue;
                    }
                    self.state = State::Live {
                        unacked: unacked_u32(io),
                    };
                    break Step::Wait {
                        timer: TimerKind::Send,
                        restart: progress,
                    };
                }
                Next::AwaitFrame => break Step::AwaitFrame,
                Next::Disconnect(_) => break Step::Close(CloseSide::ServerFirst),
            }
        };
        counters.live.add_viewer(before, viewer.counts);
        step
    }

    /// The last reply is with the kernel: close the way the mode says.
    fn begin_close(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        rejected: bool,
    ) -> Step {
        self.input = Vec::new();
        let mode = shared.settings.close_mode;
        if mode == CloseMode::Server && !rejected {
            return Step::Close(CloseSide::ServerFirst);
        }
        // Server mode after an error: send our FIN but keep reading, so unread request bytes do
        // not turn our close into an RST that destroys the error reply (nginx's lingering close).
        let fin_sent = mode == CloseMode::Server;
        if fin_sent && io.shutdown_write().is_err() {
            return Step::Close(CloseSide::ServerFirst);
        }
        let unacked = io.unacked_bytes().unwrap_or(0);
        if mode == CloseMode::Reset && unacked == 0 {
            return self.reset(io);
        }
        // wait-client, pause, reset with bytes unacknowledged, server after an error: linger
        // under the linger timer, which a `pause` lets fire only once.
        self.state = State::Lingering {
            fin_sent,
            drained: unacked == 0,
            last_unacked: unacked.min(u32::MAX as usize) as u32,
            stalled_checks: 0,
        };
        Step::Wait {
            timer: TimerKind::Linger,
            restart: true,
        }
    }

    /// Lingering and readable: discard what the client sends; its FIN ends the wait. The
    /// client's bytes never restart the linger timer (a `pause` stays as long as it was).
    fn linger_read(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
        read_buf: &mut [u8],
        fin_sent: bool,
    ) -> Step {
        loop {
            match io.read(read_buf) {
                Ok(0) => {
                    return match (shared.settings.close_mode, fin_sent) {
                        (_, true) => Step::Close(CloseSide::ServerFirst),
                        (CloseMode::Reset, _) => self.reset(io),
                        _ => Step::Close(CloseSide::ClientFirst),
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Step::Wait {
                        timer: TimerKind::Linger,
                        restart: false,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if fin_sent => return Step::Close(CloseSide::ServerFirst),
                Err(_) => return Step::Close(CloseSide::ClientFirst),
            }
        }
    }

    /// The linger timer fired: check the send queue and decide (`pause`: close).
    fn linger_check(
        &mut self,
        io: &mut impl Transport,
        shared: &mut LoopShared<'_, 'site>,
    ) -> Step {
        let State::Lingering {
            fin_sent,
            drained,
            last_unacked,
            stalled_checks,
        } = self.state
        else {
            return Step::Close(CloseSide::ServerFirst);
        };
        if fin_sent {
            return Step::Close(CloseSide::ServerFirst);
        }
        let mode = shared.settings.close_mode;
        if mode == CloseMode::Pause {
            // The pause is over, whatever the send queue holds: the server closes first. Not a
            // timeout: the pause is the mode's rule, so only the close side is counted.
            return Step::Close(CloseSide::ServerFirst);
        }
        let unacked = unacked_u32(io);
        if unacked == 0 {
            if mode == CloseMode::Reset {
                return self.reset(io);
            }
            if drained {
                // A full linger period after the queue drained and no FIN: give up waiting.
                shared.counters.count_timeout(Timeout::WaitClient);
                return Step::Close(CloseSide::ServerFirst);
            }
        } else {
            let stalled = if unacked < last_unacked {
                0
            } else {
                stalled_checks + 1
            };
            if stalled >= shared.settings.max_stalled_linger_checks {
                shared.counters.count_timeout(Timeout::Send);
                return Step::Close(CloseSide::ServerFirst);
            }
            self.state = State::Lingering {
                fin_sent,
                drained: false,
                last_unacked: unacked,
                stalled_checks: stalled,
            };
            return Step::Wait {
                timer: TimerKind::Linger,
                restart: true,
            };
        }
        self.state = State::Lingering {
            fin_sent,
            drained: true,
            last_unacked: 0,
            stalled_checks: 0,
        };
        Step::Wait {
            timer: TimerKind::Linger,
            restart: true,
        }
    }

    fn reset(&mut self, io: &mut impl Transport) -> Step {
        match io.set_reset_on_close() {
            Ok(()) => Step::Close(CloseSide::Reset),
            Err(_) => Step::Close(CloseSide::ServerFirst),
        }
    }
}

fn unacked_u32(io: &impl Transport) -> u32 {
    io.unacked_bytes().unwrap_or(0).min(u32::MAX as usize) as u32
}

/// Writes as much of the response as the socket takes: head and body in one `writev`.
fn write_out(
    io: &mut impl Write,
    out: &mut Outgoing<'_>,
    counters: &mut Counters,
) -> io::Result<WriteOutcome> {
    let head = out.resource.head(out.connection);
    let body: &[u8] = if out.send_body {
        out.resource.body()
    } else {
        &[]
    };
    let total = head.len() + body.len();
    let mut progress = false;
    while out.sent < total {
        let result = if out.sent < head.len() {
            io.write_vectored(&[IoSlice::new(&head[out.sent..]), IoSlice::new(body)])
        } else {
            io.write(&body[out.sent - head.len()..])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.sent += n;
                counters.response_bytes += n as u64;
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(WriteOutcome::Blocked { progress })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(WriteOutcome::Done)
}

/// Test-only, behind the cargo feature `extra-cost`: a deliberate, fixed cost per request. It
/// exists only so CI can prove `loadgen check` catches a slower server; a server built without
/// the feature has none of it.
#[cfg(feature = "extra-cost")]
mod extra_cost {
    /// `AFTERBURNER_EXTRA_COST` as it was when the server was built. rustc records the variable
    /// in the dep-info, so cargo rebuilds when it changes.
    const SETTING: Option<&str> = option_env!("AFTERBURNER_EXTRA_COST");

    /// Loop iterations per request when `AFTERBURNER_EXTRA_COST` is unset: 5,400 instructions
    /// (4 per turn), about 0.6 µs, which is 8 to 11 % more server CPU per request in
    /// `scenarios/check.toml` on the 2-vCPU machine this was tuned on (its requests cost 5.5 or
    /// 8.4 µs of server CPU, depending on the host's mood).
    const DEFAULT_ITERATIONS: u64 = 1350;

    /// Loop iterations per request. Evaluated while compiling: a malformed setting stops the
    /// build with the message of [`parse`] rather than turning into 0.
    const ITERATIONS: u64 = match SETTING {
        Some(text) => parse(text),
        None => DEFAULT_ITERATIONS,
    };

    /// A count of iterations in decimal digits, nothing else.
    const fn parse(text: &str) -> u64 {
        let digits = text.as_bytes();
        assert!(
            !digits.is_empty(),
            "AFTERBURNER_EXTRA_COST is empty: give a count of loop iterations per request, \
             such as 1000, or unset it for 1350"
        );
        let mut value: u64 = 0;
        let mut i = 0;
        while i < digits.len() {
            assert!(
                digits[i].is_ascii_digit(),
                "AFTERBURNER_EXTRA_COST must be a count of loop iterations per request in \
                 decimal digits, such as 1000"
            );
            value = match value.checked_mul(10) {
                Some(tens) => match tens.checked_add((digits[i] - b'0') as u64) {
                    Some(sum) => sum,
                    None => panic!("AFTERBURNER_EXTRA_COST does not fit in 64 bits"),
                },
                None => panic!("AFTERBURNER_EXTRA_COST does not fit in 64 bits"),
            };
            i += 1;
        }
        value
    }

    /// The extra work of one request: [`ITERATIONS`] turns of a loop the compiler can neither
    /// drop nor shorten, the same instructions every time (callgrind counts them exactly).
    #[inline(never)]
    pub(super) fn per_request() {
        for i in 0..std::hint::black_box(ITERATIONS) {
            std::hint::black_box(i);
        }
    }
}

#[cfg(test)]
mod live_tests {
    //! A viewer's life in memory: head then frames, skips under `latest`, waiting for the
    //! kernel under the mark, a kick, the client's FIN, HEAD.

    use std::time::Duration;

    use super::*;
    use crate::live::{FrameRing, LiveConfig, LiveStream, Policy};
    use crate::memory_transport::MemoryTransport;
    use crate::stats::Counters;

    struct Fixture {
        _root: tempfile::TempDir,
        /// Leaked: connections borrow the site for `'static`, as from a loop that never ends.
        site: &'static Site,
        ring: FrameRing,
        settings: ConnSettings,
        counters: Counters,
        scratch: Vec<u8>,
        read_buf: Vec<u8>,
    }

    impl Fixture {
        /// A site serving a 10 fps MJPEG stream of `frame_bytes` frames at /cam.mjpg.
        fn new(policy: Policy, frame_bytes: usize, lowat: Option<u32>) -> Fixture {
            let root = tempfile::tempdir().unwrap();
            let mut site = Site::load(root.path(), 1 << 20, Vec::new()).unwrap();
            let stream = LiveStream::start(LiveConfig {
                fps: 10.0,
                frame_bytes,
                policy,
                lowat,
                ..LiveConfig::new("/cam.mjpg")
            });
            let ring = stream.ring();
            site.add_live(stream);
            Fixture {
                _root: root,
                site: Box::leak(Box::new(site)),
                ring,
                settings: ConnSettings {
                    close_mode: CloseMode::Server,
                    max_header_bytes: 8192,
                    max_stalled_linger_checks: 3,
                    requests_per_turn: 64,
                },
                counters: Counters::new(0),
                scratch: Vec::new(),
                read_buf: vec![0; 4096],
            }
        }

        /// Publishes every frame due `millis` after the epoch.
        fn publish_at(&mut self, millis: u64) {
            self.ring.publish(Duration::from_millis(millis));
        }

        fn ready(&mut self, conn: &mut Connection<'static>, io: &mut MemoryTransport) -> Step {
            let stream = self.site.live().expect("live site");
            let mut shared = LoopShared {
                site: self.site,
                settings: &self.settings,
                counters: &mut self.counters,
                path_scratch: &mut self.scratch,
                shutting_down: false,
                live: Some(LiveShared {
                    stream,
                    source: &self.ring,
                }),
            };
            conn.on_ready(io, &mut shared, &mut self.read_buf, true)
        }

        fn frame(&mut self, conn: &mut Connection<'static>, io: &mut MemoryTransport) -> Step {
            let stream = self.site.live().expect("live site");
            let mut shared = LoopShared {
                site: self.site,
                settings: &self.settings,
                counters: &mut self.counters,
                path_scratch: &mut self.scratch,
                shutting_down: false,
                live: Some(LiveShared {
                    stream,
                    source: &self.ring,
                }),
            };
            let step = conn.on_publish(&mut shared);
            step.unwrap_or_else(|| conn.on_frame(io, &mut shared))
        }

        fn head(&self, http11: bool) -> Vec<u8> {
            let stream = self.site.live().unwrap();
            stream
                .config
                .response_head(stream.epoch_unix_us, http11)
                .into_bytes()
        }

        fn frame_bytes(&self, seq: u64) -> Vec<u8> {
            let stream = self.site.live().unwrap();
            stream
                .config
                .frame(stream.epoch_unix_us, seq)
                .wire(false)
                .to_vec()
        }
    }

    fn get(path: &str) -> Vec<Vec<u8>> {
        vec![format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()]
    }

    #[test]
    fn a_viewer_gets_the_head_then_the_newest_frames_and_skips_are_counted() {
        let mut fixture = Fixture::new(Policy::Latest, 8, Some(4096));
        fixture.publish_at(0);
        let mut io = MemoryTransport::new(get("/cam.mjpg"));
        let mut conn = Connection::new();
        assert_eq!(fixture.ready(&mut conn, &mut io), Step::AwaitFrame);
        assert_eq!(io.notsent_lowat(), Some(4096));
        assert!(conn.is_viewer());
        let mut expected = fixture.head(true);
        expected.extend(fixture.frame_bytes(0));
        assert_eq!(io.send_queue(), &expected[..]);

        // Frames 1, 2 and 3 are due by 300 ms; `latest` keeps only 3 and sends it.
        fixture.publish_at(300);
        assert_eq!(fixture.frame(&mut conn, &mut io), Step::AwaitFrame);
        expected.extend(fixture.frame_bytes(3));
        assert_eq!(io.send_queue(), &expected[..]);
        // Nothing new: nothing written, still waiting.
        assert_eq!(fixture.frame(&mut conn, &mut io), Step::AwaitFrame);
        assert_eq!(io.send_queue(), &expected[..]);

        let live = &fixture.counters.live;
        assert_eq!(live.viewers_joined, 1);
        assert_eq!(live.frames_sent, 2);
        assert_eq!(live.frames_skipped, 2);
        assert_eq!(
            live.bytes_sent,
            (expected.len() - fixture.head(true).len()) as u64
        );
        assert_eq!(live.dispatch_delay_log2_us.iter().sum::<u64>(), 2);
        assert_eq!(fixture.counters.requests_by_status[Status::Ok.index()], 1);
        assert_eq!(fixture.counters.response_bytes, expected.len() as u64);
    }

    #[test]
    fn a_viewer_over_the_mark_waits_for_the_kernel_then_takes_the_newest() {
        let mut fixture = Fixture::new(Policy::Latest, 100, Some(16));
        fixture.publish_at(0);
        let mut io = MemoryTransport::new(get("/cam.mjpg"));
        let mut conn = Connection::new();
        let waiting = Step::Wait {
            timer: TimerKind::Send,
            restart: true,
        };
        // The head alone is more than the mark unsent: frame 0 waits for the client.
        assert_eq!(fixture.ready(&mut conn, &mut io), waiting);
        assert_eq!(io.send_queue(), &fixture.head(true)[..]);
        io.client_reads(usize::MAX);
        assert_eq!(fixture.ready(&mut conn, &mut io), waiting);
        assert_eq!(io.send_queue(), &fixture.frame_bytes(0)[..]);
        // Frames 1 and 2 are published while it waits; once the client read, the socket is
        // writable and the viewer takes the newest.
        fixture.publish_at(100);
        fixture.publish_at(200);
        io.client_reads(usize::MAX);
        assert_eq!(fixture.ready(&mut conn, &mut io), waiting);
        assert_eq!(io.send_queue(), &fixture.frame_bytes(2)[..]);
        assert_eq!(fixture.counters.live.frames_skipped, 1);
        assert_eq!(fixture.counters.live.frames_sent, 2);
    }

    #[test]
    fn queue_bytes_disconnect_kicks_at_the_publication_that_puts_it_too_far_behind() {
        let policy = Policy::QueueBytesDisconnect { bytes: 16 };
        let mut fixture = Fixture::new(policy, 8, Some(4096));
        fixture.publish_at(0);
        let room = fixture.head(true).len() + fixture.frame_bytes(0).len();
        let mut io = MemoryTransport::new(get("/cam.mjpg")).with_send_capacity(room);
        let mut conn = Connection::new();
        assert_eq!(fixture.ready(&mut conn, &mut io), Step::AwaitFrame);
        // The client reads nothing: frame 1 is started but blocked, 8 bytes behind; frame 2
        // puts it 16 behind (allowed), frame 3 24 (kicked).
        let blocked = Step::Wait {
            timer: TimerKind::Send,
            restart: false,
        };
        fixture.publish_at(100);
        assert_eq!(fixture.frame(&mut conn, &mut io), blocked);
        fixture.publish_at(200);
        assert_eq!(fixture.frame(&mut conn, &mut io), blocked);
        fixture.publish_at(300);
        assert_eq!(
            fixture.frame(&mut conn, &mut io),
            Step::Close(CloseSide::ServerFirst)
        );
        assert_eq!(fixture.counters.live.kicks, 1);
        assert_eq!(fixture.counters.live.fifo_cap_kicks, 0);
    }

    #[test]
    fn the_clients_fin_ends_the_stream_and_its_bytes_are_discarded() {
        let mut fixture = Fixture::new(Policy::Latest, 8, None);
        let mut segments = get("/cam.mjpg");
        segments.push(b"ignored bytes".to_vec());
        let mut io = MemoryTransport::new(segments).with_fin();
        let mut conn = Connection::new();
        // No frame published yet: the viewer waits.
        assert_eq!(fixture.ready(&mut conn, &mut io), Step::AwaitFrame);
        assert_eq!(io.notsent_lowat(), None, "--live-lowat off sets nothing");
        let mut step = Step::AwaitFrame;
        for _ in 0..4 {
            step = fixture.ready(&mut conn, &mut io);
            if matches!(step, Step::Close(_)) {
                break;
            }
        }
        assert_eq!(step, Step::Close(CloseSide::ClientFirst));
        assert_eq!(io.send_queue(), &fixture.head(true)[..]);
    }

    #[test]
    fn head_gets_the_head_only_and_no_viewer() {
        let mut fixture = Fixture::new(Policy::Latest, 8, Some(4096));
        fixture.publish_at(0);
        let mut io = MemoryTransport::new(vec![b"HEAD /cam.mjpg HTTP/1.0\r\n\r\n".to_vec()]);
        let mut conn = Connection::new();
        assert_eq!(
            fixture.ready(&mut conn, &mut io),
            Step::Close(CloseSide::ServerFirst)
        );
        assert_eq!(io.send_queue(), &fixture.head(false)[..]);
        assert!(!conn.is_viewer());
        assert_eq!(fixture.counters.live.viewers_joined, 0);
    }
}
