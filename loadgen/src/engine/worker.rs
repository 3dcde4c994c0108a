//! One generator worker: a thread and its mio readiness loop. The loop polls, hands each ready
//! connection to its population's driver, pops what the timers have due, and closes the
//! timeline's intervals; the drivers (`drivers/`) decide what their clients do, the connections
//! (`client/`) how a request goes over a socket. `Shared` is what the drivers borrow from the
//! loop: the connection slab, the timers, the random stream, the recorders and the buffers.
//!
//! This is the only file of the engine that uses mio.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::engine::client::{ClientConn, ConnEnv, Request, Step, Transport};
use crate::engine::drivers::Driver;
use crate::engine::modem::UploadPace;
use crate::engine::precise_timer::PreciseTimer;
use crate::engine::share::{PopulationShare, ShareLoad};
use crate::engine::source::{connect_nonblocking, SlowLineSocket, SourceAddresses};
use crate::engine::timers::{Due, Timers, Wake};
use crate::engine::workload::{Pick, Workload};
use crate::record::{
    ErrorKind, IntervalFigures, IntervalReport, PopulationRecorder, ViewerInterval, ViewerRecorder,
};

/// Waits shorter than this use the timerfd: epoll's millisecond timeout is too coarse for
/// open-loop schedules.
const PRECISE_BELOW: Duration = Duration::from_millis(5);
const TIMER: Token = Token(usize::MAX);
/// Finished requests kept for reuse at most; more than the connections in flight is waste.
const SPARE_REQUESTS: usize = 1024;

/// Everything a worker needs; built by the engine before the thread starts.
pub struct WorkerPlan<'a> {
    /// The worker's number from 0: names its thread, tags its interval reports and, with `seed`,
    /// seeds its random stream.
    pub index: usize,
    /// The CPU the worker's thread is pinned to; `None`: not pinned.
    pub cpu: Option<usize>,
    /// The server's address.
    pub target: SocketAddr,
    /// The `Host` header's value.
    pub host_header: String,
    /// This worker's share of each population, in the scenario's order.
    pub populations: Vec<PopulationShare>,
    /// Source addresses of connections whose population has none of its own.
    pub sources: Vec<IpAddr>,
    /// The zero of the timeline: the warm-up begins.
    pub start: Instant,
    /// End of the warm-up: the measured window opens.
    pub measure_from: Instant,
    /// End of the load point: the measured window closes and nothing new starts.
    pub end: Instant,
    /// Length of a timeline interval.
    pub interval: Duration,
    /// The run's seed, mixed with `index` so every worker draws its own stream.
    pub seed: u64,
    /// What the clients request and how replies are checked.
    pub workload: &'a Workload,
    /// Where each closed timeline interval goes: the engine's thread.
    pub reports: Sender<IntervalReport>,
    /// Set by the engine to end the point early (server died, Ctrl-C).
    pub abort: &'a AtomicBool,
}

impl Transport for TcpStream {
    fn connect_result(&self) -> io::Result<bool> {
        if let Some(error) = self.take_error()? {
            return Err(error);
        }
        match self.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// One connection in the slab: its socket, its state machine, and whose it is.
pub struct Slot<'w> {
    stream: TcpStream,
    /// The connection's state machine and its request in flight.
    pub conn: ClientConn<'w>,
    /// Index of the population (and its driver).
    pub pop: u16,
    /// The client of the driver that owns it (closed-loop client, slow-line user); unused by
    /// open-loop populations.
    pub client: u32,
}

/// What became of a connection's request in a step, bookkept by [`Shared::advance`].
pub enum Outcome<'w> {
    /// Nothing final yet: waiting for the socket or a timer.
    Pending,
    /// The request is out (slow lines note the time).
    Sent,
    /// A slow line's upload waits for its next segment until this instant.
    Paced(Instant),
    /// The reply is complete and recorded: a success, or counted as a bad status or a failed
    /// check. `reusable`: the connection may carry another request (else close it).
    Replied {
        /// The finished request, for [`Shared::recycle`].
        request: Box<Request<'w>>,
        /// The connection may carry another request; else close it.
        reusable: bool,
        /// A 200 with the body asked for (else it was counted as an error).
        ok: bool,
    },
    /// The request failed and is not counted yet (a slow line may send it again instead):
    /// count it and close the connection.
    Failed {
        /// What went wrong.
        kind: ErrorKind,
        /// The request, for [`Shared::recycle`]; `None` when the connection carried none.
        request: Option<Box<Request<'w>>>,
    },
    /// An idle connection was closed by the server: close it here too.
    IdleClosed,
}

/// What the drivers borrow from their worker's loop.
pub struct Shared<'w> {
    /// The worker's plan: target, populations, the point's instants.
    pub plan: &'w WorkerPlan<'w>,
    registry: Registry,
    /// The open connections; a connection's key is its mio token.
    pub conns: Slab<Slot<'w>>,
    /// Every wake-up and request timeout of the worker.
    pub timers: Timers,
    /// What is measured, per population, in the scenario's order.
    pub recorders: Vec<PopulationRecorder>,
    /// The current timeline interval's figures, per population.
    interval: Vec<IntervalFigures>,
    sources: SourceAddresses,
    /// Per population: its own source addresses (slow lines on the delayed path), if any.
    population_sources: Vec<Option<SourceAddresses>>,
    read_buf: Vec<u8>,
    request_buf: Vec<u8>,
    /// Finished requests' allocations, reused for the next ones (see [`Shared::recycle`]).
    #[allow(clippy::vec_box, reason = "the boxes themselves are what is reused")]
    spare_requests: Vec<Box<Request<'w>>>,
    /// The measured window, for the Little's law integrals.
    pub window: (Instant, Instant),
}

impl<'w> Shared<'w> {
    /// Whether `now` is inside the measured window.
    pub fn measuring(&self, now: Instant) -> bool {
        now >= self.window.0 && now < self.window.1
    }

    /// Whether the load point is still running at `now` (nothing new starts after its end).
    pub fn running(&self, now: Instant) -> bool {
        now < self.plan.end
    }

    /// Opens a connection for client `client` of population `pop`, shaped like a slow line's
    /// end when `shape` is given and uploading at `upload`'s pace. The error is the request's.
    pub fn connect(
        &mut self,
        pop: u16,
        client: u32,
        shape: Option<SlowLineSocket>,
        upload: Option<UploadPace>,
        now: Instant,
    ) -> Result<usize, ErrorKind> {
        let source = match &mut self.population_sources[pop as usize] {
            Some(own) => own.next_source(),
            None => self.sources.next_source(),
        };
        let std_stream = connect_nonblocking(self.plan.target, source, shape)
            .map_err(|e| ErrorKind::from_io(&e, true))?;
        let mut stream = TcpStream::from_std(std_stream);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.registry
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| ErrorKind::from_io(&e, true))?;
        let max_requests = self.plan.populations[pop as usize].requests_per_connection;
        entry.insert(Slot {
            stream,
            conn: ClientConn::connecting(max_requests, upload, now),
            pop,
            client,
        });
        let window = self.window;
        let measuring = self.measuring(now);
        let recorder = &mut self.recorders[pop as usize];
        recorder.concurrency.open_connections.up(now, window);
        if measuring {
            recorder.concurrency.connections_opened += 1;
            recorder.peak_open_connections = recorder
                .peak_open_connections
                .max(recorder.concurrency.open_connections.level);
        }
        Ok(key)
    }

    /// A request for `pick`, wanted at `origin`, in the style connection `key` gives it.
    fn new_request(
        &mut self,
        key: usize,
        pick: Pick,
        origin: Instant,
        now: Instant,
    ) -> Box<Request<'w>> {
        let style = self.conns[key].conn.next_style();
        let request = Request::new(self.plan.workload, pick, style, origin, now);
        match self.spare_requests.pop() {
            Some(mut spare) => {
                *spare = request;
                spare
            }
            None => Box::new(request),
        }
    }

    /// Gives a finished request's allocation back for the next request: a worker at 100k
    /// requests/s then allocates nothing per request.
    pub fn recycle(&mut self, request: Box<Request<'w>>) {
        if self.spare_requests.len() < SPARE_REQUESTS {
            self.spare_requests.push(request);
        }
    }

    fn request_started(&mut self, key: usize, now: Instant) {
        let pop = self.conns[key].pop;
        self.recorders[pop as usize]
            .concurrency
            .requests_in_flight
            .up(now, self.window);
        self.timers.start_request_timeout(key, pop, now);
    }

    /// Hands a request to a connection still connecting: it goes out when the connect completes.
    pub fn attach(&mut self, key: usize, pick: Pick, origin: Instant, now: Instant) {
        let request = self.new_request(key, pick, origin, now);
        self.conns[key].conn.attach(request);
        self.request_started(key, now);
    }

    /// Sends a request on idle connection `key` now.
    pub fn reuse(&mut self, key: usize, pick: Pick, origin: Instant, now: Instant) -> Outcome<'w> {
        let request = self.new_request(key, pick, origin, now);
        self.conns[key].conn.reuse(request, now);
        self.request_started(key, now);
        self.advance(key, now, false)
    }

    /// Drives connection `key` as far as it goes and settles what became of its request.
    pub fn advance(&mut self, key: usize, now: Instant, trust_short_read: bool) -> Outcome<'w> {
        let Some(slot) = self.conns.get_mut(key) else {
            return Outcome::Pending;
        };
        let pop = slot.pop as usize;
        let mut env = ConnEnv {
            workload: self.plan.workload,
            host: &self.plan.host_header,
            request_buf: &mut self.request_buf,
            read_buf: &mut self.read_buf,
            lifetime: &mut self.recorders[pop].lifetime,
        };
        let step = slot
            .conn
            .on_ready(&mut slot.stream, &mut env, now, trust_short_read);
        self.settle(key, step, now)
    }

    /// Slow lines: reads at most `budget` bytes of connection `key`'s reply; returns what
    /// became of the request and the bytes read.
    pub fn receive_metered(
        &mut self,
        key: usize,
        budget: usize,
        now: Instant,
    ) -> (Outcome<'w>, usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return (Outcome::Pending, 0);
        };
        let pop = slot.pop as usize;
        let mut env = ConnEnv {
            workload: self.plan.workload,
            host: &self.plan.host_header,
            request_buf: &mut self.request_buf,
            read_buf: &mut self.read_buf,
            lifetime: &mut self.recorders[pop].lifetime,
        };
        let (step, read) = slot
            .conn
            .receive_metered(&mut slot.stream, &mut env, budget, now);
        (self.settle(key, step, now), read)
    }

    /// Bookkeeping of a connection's step: a finished request leaves the in-flight count and
    /// its timeout; a reply is recorded.
    fn settle(&mut self, key: usize, step: Step, now: Instant) -> Outcome<'w> {
        match step {
            Step::Wait => Outcome::Pending,
            Step::PaceUntil(at) => Outcome::Paced(at),
            Step::Sent => Outcome::Sent,
            Step::IdleClosed => Outcome::IdleClosed,
            Step::Replied { reusable } => {
                let request = self.request_over(key, now).expect("a replied request");
                let pop = self.conns[key].pop;
                self.recorders[pop as usize].lifetime.responses_completed += 1;
                let ok = match request.outcome(self.plan.workload) {
                    Ok(()) => {
                        self.record_success(pop, &request, now);
                        true
                    }
                    Err(kind) => {
                        self.count_error(pop, kind, now);
                        false
                    }
                };
                Outcome::Replied {
                    request,
                    reusable,
                    ok,
                }
            }
            Step::Failed(kind) => Outcome::Failed {
                kind,
                request: self.request_over(key, now),
            },
        }
    }

    /// Takes the request off connection `key`: it leaves the in-flight count and its timeout.
    fn request_over(&mut self, key: usize, now: Instant) -> Option<Box<Request<'w>>> {
        let slot = self.conns.get_mut(key)?;
        let request = slot.conn.take_request()?;
        self.recorders[slot.pop as usize]
            .concurrency
            .requests_in_flight
            .down(now, self.window);
        self.timers.stop_request_timeout(key);
        Some(request)
    }

    /// Whether a failed request may go again on a new connection, as RFC 9112 section 9.3.1
    /// lets a client do with an idempotent request: it went out on a reused connection that the
    /// server had closed (a FIN or a reset before any byte of the reply), and it has not been
    /// sent again already.
    pub fn may_resend(&self, key: usize, kind: ErrorKind, request: Option<&Request<'_>>) -> bool {
        let Some(slot) = self.conns.get(key) else {
            return false;
        };
        matches!(kind, ErrorKind::Closed | ErrorKind::Reset)
            && slot.conn.requests_done > 0
            && request.is_some_and(|r| r.nothing_received() && !r.resent)
    }

    /// Sends `request` again on a new connection for `client` of population `pop`, shaped and
    /// paced as `shape` and `upload` say; its latency still counts from its origin. Counts the
    /// retry. The old connection is the caller's to close.
    pub fn resend(
        &mut self,
        pop: u16,
        client: u32,
        (shape, upload): (Option<SlowLineSocket>, Option<UploadPace>),
        request: Box<Request<'w>>,
        now: Instant,
    ) -> Result<usize, ErrorKind> {
        let key = self.connect(pop, client, shape, upload, now)?;
        let mut again = self.new_request(key, request.pick, request.origin, now);
        again.resent = true;
        self.recycle(request);
        self.conns[key].conn.attach(again);
        self.request_started(key, now);
        if self.measuring(now) {
            self.recorders[pop as usize].retries += 1;
        }
        Ok(key)
    }

    /// The request on `key` timed out: a connect that never completed, or a reply that did not.
    pub fn time_out(&mut self, key: usize, now: Instant) -> Outcome<'w> {
        let Some(slot) = self.conns.get(key) else {
            return Outcome::Pending;
        };
        let kind = if slot.conn.is_connecting() {
            ErrorKind::ConnectTimeout
        } else {
            ErrorKind::Timeout
        };
        Outcome::Failed {
            kind,
            request: self.request_over(key, now),
        }
    }

    /// Closes connection `key` (dropping the socket closes it and takes it out of epoll).
    /// Returns its owner, `(population, client)`.
    pub fn close(&mut self, key: usize, now: Instant) -> Option<(u16, u32)> {
        let slot = self.conns.try_remove(key)?;
        if slot.conn.request().is_some() {
            self.recorders[slot.pop as usize]
                .concurrency
                .requests_in_flight
                .down(now, self.window);
        }
        self.timers.stop_request_timeout(key);
        let window = self.window;
        let measuring = self.measuring(now);
        let concurrency = &mut self.recorders[slot.pop as usize].concurrency;
        concurrency.open_connections.down(now, window);
        if measuring {
            concurrency.connections_closed += 1;
            concurrency.connection_lifetime_s += now
                .saturating_duration_since(slot.conn.connect_started)
                .as_secs_f64();
        }
        Some((slot.pop, slot.client))
    }

    /// Raw connections (live-stream viewers): whether the connect of `key` has completed
    /// (`Ok(false)`: not yet); the first time it has, the connection is counted established and
    /// leaves the connecting phase. Errors are the connect's (`SO_ERROR`).
    pub fn connect_done(&mut self, key: usize) -> io::Result<bool> {
        let Some(slot) = self.conns.get_mut(key) else {
            return Err(io::Error::from(io::ErrorKind::NotConnected));
        };
        if !slot.conn.is_connecting() {
            return Ok(true);
        }
        let done = slot.stream.connect_result()?;
        if done {
            slot.conn.mark_open();
            self.recorders[slot.pop as usize]
                .lifetime
                .connections_established += 1;
        }
        Ok(done)
    }

    /// Raw connections: writes what the socket takes of `bytes`; `WouldBlock` when none.
    pub fn write_raw(&mut self, key: usize, bytes: &[u8]) -> io::Result<usize> {
        use std::io::Write as _;
        let slot = self
            .conns
            .get_mut(key)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        slot.stream.write(bytes)
    }

    /// Raw connections: one read of at most `max` bytes (at least 1) into the worker's read
    /// buffer. An empty slice is the server's close (a FIN); `WouldBlock` when nothing waits.
    pub fn read_raw(&mut self, key: usize, max: usize) -> io::Result<&[u8]> {
        use std::io::Read as _;
        let slot = self
            .conns
            .get_mut(key)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        let asked = max.clamp(1, self.read_buf.len());
        loop {
            match slot.stream.read(&mut self.read_buf[..asked]) {
                Ok(n) => return Ok(&self.read_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The first `n` bytes of the worker's read buffer: what the last [`Shared::read_raw`]
    /// returned, for a caller that could not hold its borrow.
    pub fn last_read(&self, n: usize) -> &[u8] {
        &self.read_buf[..n.min(self.read_buf.len())]
    }

    /// The current timeline interval's viewer figures of population `pop`.
    pub fn viewer_interval(&mut self, pop: u16) -> &mut ViewerInterval {
        self.interval[pop as usize]
            .viewer
            .get_or_insert_with(ViewerInterval::new)
    }

    /// Bytes waiting in connection `key`'s receive queue (FIONREAD); 0 when unknown.
    pub fn bytes_waiting(&self, key: usize) -> usize {
        self.conns.get(key).map_or(0, |slot| {
            rustix::io::ioctl_fionread(&slot.stream).map_or(0, |n| n as usize)
        })
    }

    /// A successful reply: into the interval's figures always, into the histograms when
    /// measuring.
    pub fn record_success(&mut self, pop: u16, request: &Request<'_>, now: Instant) {
        let micros =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_micros() as u64;
        let total_us = micros(request.origin, now);
        let received = request.received();
        self.interval[pop as usize].record(received, total_us);
        if self.measuring(now) {
            let class = self.plan.workload.class_index(request.pick);
            self.recorders[pop as usize].classes[class].record(
                received,
                request.connect_us,
                request
                    .first_byte
                    .map(|first| micros(request.origin, first)),
                total_us,
            );
        }
    }

    /// A failed request: into the interval's errors always, the error counts when measuring.
    pub fn count_error(&mut self, pop: u16, kind: ErrorKind, now: Instant) {
        self.interval[pop as usize].errors += 1;
        if self.measuring(now) {
            self.recorders[pop as usize].errors[kind as usize] += 1;
        }
    }
}

/// The loop: the poll, the precise timer, the drivers, and what they share.
struct Worker<'w> {
    poll: Poll,
    timer: PreciseTimer,
    timer_armed_for: Option<Instant>,
    drivers: Vec<Driver>,
    shared: Shared<'w>,
    interval_index: usize,
}

/// Runs the worker to the end of its plan and returns what it measured, per population.
pub fn run_worker(plan: &WorkerPlan<'_>) -> io::Result<Vec<PopulationRecorder>> {
    if let Some(cpu) = plan.cpu {
        crate::os::pin_current_thread(&[cpu]).map_err(io::Error::other)?;
    }
    let class_count = plan.workload.class_names().len();
    let drivers: Vec<Driver> = plan
        .populations
        .iter()
        .enumerate()
        .map(|(pop, share)| Driver::new(pop as u16, share, plan))
        .collect();
    let poll = Poll::new()?;
    let timer = PreciseTimer::new(poll.registry(), TIMER)?;
    let connections: usize = drivers.iter().map(Driver::connections_hint).sum();
    let shared = Shared {
        plan,
        registry: poll.registry().try_clone()?,
        conns: Slab::with_capacity(connections.max(64)),
        timers: Timers::new(
            plan.populations
                .iter()
                .map(|share| share.request_timeout)
                .collect(),
        ),
        recorders: plan
            .populations
            .iter()
            .map(|share| {
                let mut recorder = PopulationRecorder::new(class_count);
                recorder.line = share.load.is_slow_line().then(Default::default);
                if let ShareLoad::Viewer { profile, .. } = &share.load {
                    recorder.viewer = Some(ViewerRecorder::new(profile.as_deref()));
                }
                recorder
            })
            .collect(),
        interval: (0..plan.populations.len())
            .map(|_| IntervalFigures::new())
            .collect(),
        sources: SourceAddresses::new(plan.sources.clone()),
        population_sources: plan
            .populations
            .iter()
            .map(|share| {
                (!share.sources.is_empty()).then(|| SourceAddresses::new(share.sources.clone()))
            })
            .collect(),
        read_buf: vec![0; 64 * 1024],
        request_buf: Vec::with_capacity(256),
        spare_requests: Vec::new(),
        window: (plan.measure_from, plan.end),
    };
    let mut worker = Worker {
        poll,
        timer,
        timer_armed_for: None,
        drivers,
        shared,
        interval_index: 0,
    };
    worker.run()?;
    Ok(worker.shared.recorders)
}

impl Worker<'_> {
    fn run(&mut self) -> io::Result<()> {
        let plan = self.shared.plan;
        let mut events = Events::with_capacity(1024);
        let now = Instant::now();
        self.shared
            .timers
            .wake_at(self.interval_end(), Wake::Interval);
        for driver in &mut self.drivers {
            driver.start(&mut self.shared, now);
        }
        loop {
            let now = Instant::now();
            if now >= plan.end || plan.abort.load(Ordering::Relaxed) {
                break;
            }
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                if event.token() == TIMER {
                    self.timer.acknowledge();
                    self.timer_armed_for = None;
                    continue;
                }
                let key = event.token().0;
                let Some(slot) = self.shared.conns.get_mut(key) else {
                    continue;
                };
                // Remembered: the event may be spent while the reply is still being read, and
                // the connection must not then be reused.
                if event.is_read_closed() {
                    slot.conn.peer_closed = true;
                }
                let pop = slot.pop as usize;
                // Without RDHUP the server's FIN has not arrived: a short read emptied the socket.
                self.drivers[pop].on_ready(&mut self.shared, key, now, !event.is_read_closed());
            }
            // Nothing starts at or after the end; the loop stops at its top.
            while let Some(due) = self.due_before_end(now) {
                match due {
                    Due::Wake {
                        wake: Wake::Interval,
                        ..
                    } => self.roll_intervals(now),
                    Due::Wake {
                        at,
                        wake: Wake::Driver { pop, what },
                    } => self.drivers[pop as usize].on_wake(&mut self.shared, what, at, now),
                    Due::RequestTimeout { slot } => {
                        if let Some(pop) = self.shared.conns.get(slot).map(|s| s.pop) {
                            self.drivers[pop as usize].on_timeout(&mut self.shared, slot, now);
                        }
                    }
                }
            }
            if self.shared.measuring(now) {
                // Connections opened during the warm-up count as soon as the window opens
                // (idle slow-line connections may never open another one).
                for recorder in &mut self.shared.recorders {
                    let open = recorder.concurrency.open_connections.level;
                    recorder.peak_open_connections = recorder.peak_open_connections.max(open);
                }
            }
        }
        self.wind_up();
        Ok(())
    }

    /// The next timer due at `now`, unless the point is over.
    fn due_before_end(&mut self, now: Instant) -> Option<Due> {
        if now >= self.shared.plan.end {
            return None;
        }
        self.shared.timers.pop_due(now)
    }

    /// What the end of the point leaves to count.
    fn wind_up(&mut self) {
        let plan = self.shared.plan;
        // Requests the end caught unanswered are reported, not dropped: counted, and where
        // latency counts from the due time, their latency so far (a lower bound) recorded.
        let shared = &mut self.shared;
        for (_, slot) in shared.conns.iter() {
            let Some(request) = slot.conn.request() else {
                continue;
            };
            let pop = slot.pop as usize;
            shared.recorders[pop].unanswered += 1;
            if self.drivers[pop].latency_from_due_time() {
                let class = plan.workload.class_index(request.pick);
                let waited_us = plan
                    .end
                    .saturating_duration_since(request.origin)
                    .as_micros();
                shared.recorders[pop].classes[class].record_unanswered(waited_us as u64);
            }
        }
        for driver in &mut self.drivers {
            driver.wind_up(shared, plan.end);
        }
        // Connections whose connect completed in the last turn were never looked at; the server
        // accepted them all the same, so count them to keep both sides' figures comparable.
        for (_, slot) in self.shared.conns.iter() {
            if slot.conn.is_connecting() && slot.stream.peer_addr().is_ok() {
                self.shared.recorders[slot.pop as usize]
                    .lifetime
                    .connections_established += 1;
            }
        }
        // The Little's law integrals run to the end of the window.
        let window = self.shared.window;
        for recorder in &mut self.shared.recorders {
            let concurrency = &mut recorder.concurrency;
            concurrency.open_connections.advance(plan.end, window);
            concurrency.requests_in_flight.advance(plan.end, window);
        }
        // Close the last interval if it began before the end (a partial one when the run was
        // stopped early); one that would begin at the end is not part of the run.
        let last_begins = plan.start + plan.interval * self.interval_index as u32;
        if last_begins < plan.end {
            self.send_interval();
        }
    }

    fn poll_timeout(&mut self, now: Instant) -> Duration {
        let end = self.shared.plan.end;
        let next = self.shared.timers.next_due().map_or(end, |at| at.min(end));
        let wait = next.saturating_duration_since(now);
        if wait.is_zero() {
            return Duration::ZERO;
        }
        if wait < PRECISE_BELOW {
            if self.timer_armed_for != Some(next) && self.timer.arm(wait).is_ok() {
                self.timer_armed_for = Some(next);
            }
            // The timerfd wakes us; this is only a backstop (mio rounds it up to whole ms).
            wait + Duration::from_millis(1)
        } else {
            // Wake a little early and let the timerfd take the last few milliseconds.
            wait - (PRECISE_BELOW - Duration::from_millis(1))
        }
    }

    fn interval_end(&self) -> Instant {
        let plan = self.shared.plan;
        plan.start + plan.interval * (self.interval_index as u32 + 1)
    }

    fn roll_intervals(&mut self, now: Instant) {
        let end = self.shared.plan.end;
        while now >= self.interval_end() && self.interval_end() <= end {
            self.send_interval();
            self.interval_index += 1;
        }
        if self.interval_end() <= end {
            self.shared
                .timers
                .wake_at(self.interval_end(), Wake::Interval);
        }
    }

    fn send_interval(&mut self) {
        let shared = &mut self.shared;
        let mut populations: Vec<IntervalFigures> = (0..shared.interval.len())
            .map(|_| IntervalFigures::new())
            .collect();
        std::mem::swap(&mut populations, &mut shared.interval);
        for (figures, recorder) in populations.iter_mut().zip(&shared.recorders) {
            figures.open_connections = recorder.concurrency.open_connections.level;
            if recorder.viewer.is_some() && figures.viewer.is_none() {
                // Every interval of a viewer population carries its series, events or none.
                figures.viewer = Some(ViewerInterval::new());
            }
        }
        let _ = shared.plan.reports.send(IntervalReport {
            worker: shared.plan.index,
            index: self.interval_index,
            populations,
        });
    }
}
