//! One generator worker: a thread, one mio readiness loop, and the client connections it owns
//! as state machines (connect, send the request, read the reply, reuse or close, think).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use slab::Slab;

use crate::engine::modem::LineProfile;
use crate::engine::pacing::{think_time, ArrivalSchedule};
use crate::engine::precise_timer::PreciseTimer;
use crate::engine::source::{connect_nonblocking, SlowLineSocket, SourceAddresses};
use crate::engine::workload::{Pick, RequestStyle, Workload};
use crate::record::{ErrorKind, IntervalFigures, IntervalReport, LineRecorder, PopulationRecorder};
use crate::scenario::{Arrival, Think};
use crate::specweb96::fileset::ContentVerifier;

mod slow_line;
use slow_line::{ModemClient, Wake};

/// A failed closed-loop client tries again after at least this long, so a server that refuses
/// everything is not hammered in a tight loop.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);
/// How often in-flight requests are checked against the request timeout.
const TIMEOUT_SWEEP: Duration = Duration::from_millis(100);
/// Waits shorter than this use the timerfd: epoll's millisecond timeout is too coarse for
/// open-loop schedules.
const PRECISE_BELOW: Duration = Duration::from_millis(5);
const TIMER: Token = Token(usize::MAX);

/// This worker's share of one population.
#[derive(Clone, Debug)]
pub struct PopulationShare {
    pub load: ShareLoad,
    pub requests_per_connection: u32,
    /// A request with no complete reply after this long is counted as a timeout.
    pub request_timeout: Duration,
    /// Source addresses of this population's connections; empty: the worker's.
    pub sources: Vec<IpAddr>,
}

#[derive(Clone, Debug)]
pub enum ShareLoad {
    Closed {
        clients: u32,
        think: Think,
    },
    Open {
        rate: f64,
        arrival: Arrival,
        max_in_flight: u32,
    },
    /// Users on slow lines: page views, a token-bucket reader per user, lingering.
    Modem {
        clients: u32,
        profile: Arc<LineProfile>,
    },
}

/// Everything a worker needs; built by the engine before the thread starts.
pub struct WorkerPlan<'a> {
    pub index: usize,
    pub cpu: Option<usize>,
    pub target: SocketAddr,
    pub host_header: String,
    pub populations: Vec<PopulationShare>,
    pub sources: Vec<IpAddr>,
    pub start: Instant,
    pub measure_from: Instant,
    pub end: Instant,
    pub interval: Duration,
    pub request_timeout: Duration,
    pub seed: u64,
    pub workload: &'a Workload,
    pub reports: Sender<IntervalReport>,
    pub abort: &'a AtomicBool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Receiving,
    /// Connected, between requests of a keep-alive connection.
    Idle,
    /// Slow lines: waiting for `wake_at` before sending more of the request (the upload's
    /// pace, or the round trip the application adds).
    Delayed,
}

const NO_CLIENT: u32 = u32::MAX;

struct InFlight<'w> {
    pick: Pick,
    /// Latency origin: when the request was due (open loop) or issued (closed loop).
    origin: Instant,
    issued: Instant,
    connect_us: Option<u64>,
    first_byte: Option<Instant>,
    sent: usize,
    style: RequestStyle,
    status: u16,
    /// Only used when a response head arrives split over several reads.
    head: Vec<u8>,
    head_done: bool,
    content_length: Option<u64>,
    received: u64,
    server_closes: bool,
    verifier: Option<ContentVerifier<'w>>,
    /// Slow lines: when the request's upload began and ended, and the line time its user had
    /// used when it ended (for the slowdown figure).
    upload_began: Option<Instant>,
    sent_at: Option<Instant>,
    line_used_at_sent_s: f64,
}

struct Conn<'w> {
    stream: TcpStream,
    pop: u16,
    client: u32,
    phase: Phase,
    requests_done: u32,
    connect_started: Instant,
    request: Option<Box<InFlight<'w>>>,
    /// Slow lines: when this connection's timer (upload pace, added round trip, linger) fires.
    wake_at: Option<Instant>,
    /// Slow lines: the last read found the socket empty; the next data raises an event.
    drained: bool,
    /// The server's FIN has arrived: no request may follow on this connection.
    peer_closed: bool,
}

struct ClosedClient {
    pop: u16,
    conn: Option<usize>,
}

struct OpenState {
    schedule: ArrivalSchedule,
    in_flight: u32,
    max_in_flight: u32,
    /// Due times of arrivals waiting for an in-flight slot; they keep their due time, so the
    /// wait shows in their latency.
    queued: VecDeque<Instant>,
    idle: Vec<usize>,
}

struct Worker<'w> {
    plan: &'w WorkerPlan<'w>,
    poll: Poll,
    conns: Slab<Conn<'w>>,
    clients: Vec<ClosedClient>,
    modem_clients: Vec<ModemClient>,
    /// Slow-line timers of every connection and user, soonest first; an entry whose target
    /// no longer waits for that instant is stale and skipped.
    wakeups: BinaryHeap<Reverse<(Instant, Wake)>>,
    /// Per population: its line profile when it is a slow-line population.
    profiles: Vec<Option<Arc<LineProfile>>>,
    /// Per population: round-robin over its own source addresses, if it has some.
    population_sources: Vec<Option<SourceAddresses>>,
    /// The measured window, for the Little's law integrals.
    window: (Instant, Instant),
    open: Vec<Option<OpenState>>,
    thinking: BinaryHeap<Reverse<(Instant, u32)>>,
    rng: Pcg64Mcg,
    sources: SourceAddresses,
    recorders: Vec<PopulationRecorder>,
    interval_index: usize,
    interval: Vec<IntervalFigures>,
    read_buf: Vec<u8>,
    request_buf: Vec<u8>,
    next_sweep: Instant,
    timer: PreciseTimer,
    timer_armed_for: Option<Instant>,
}

/// Runs the worker to the end of its plan and returns what it measured, per population.
pub fn run_worker(plan: &WorkerPlan<'_>) -> io::Result<Vec<PopulationRecorder>> {
    if let Some(cpu) = plan.cpu {
        crate::os::pin_current_thread(&[cpu]).map_err(std::io::Error::other)?;
    }
    let class_count = plan.workload.class_names().len();
    let mut rng = Pcg64Mcg::seed_from_u64(
        plan.seed ^ (plan.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let open = plan
        .populations
        .iter()
        .map(|share| match share.load {
            ShareLoad::Open {
                rate,
                arrival,
                max_in_flight,
            } => Some(OpenState {
                schedule: ArrivalSchedule::new(plan.start, rate, arrival, &mut rng),
                in_flight: 0,
                max_in_flight,
                queued: VecDeque::new(),
                idle: Vec::new(),
            }),
            ShareLoad::Closed { .. } | ShareLoad::Modem { .. } => None,
        })
        .collect();
    let mut clients = Vec::new();
    for (pop, share) in plan.populations.iter().enumerate() {
        if let ShareLoad::Closed { clients: n, .. } = share.load {
            clients.extend((0..n).map(|_| ClosedClient {
                pop: pop as u16,
                conn: None,
            }));
        }
    }
    let mut modem_clients = Vec::new();
    for (pop, share) in plan.populations.iter().enumerate() {
        if let ShareLoad::Modem {
            clients: n,
            profile,
        } = &share.load
        {
            // Users start their first page spread evenly over the ramp-up.
            let ramp = profile.spec.ramp_up;
            for i in 0..*n {
                let first_page = plan.start + ramp.mul_f64(f64::from(i) / f64::from(*n));
                let rate = profile.draw_payload_rate(&mut rng);
                modem_clients.push(ModemClient::new(pop as u16, rate, first_page));
            }
        }
    }
    let profiles = plan
        .populations
        .iter()
        .map(|share| match &share.load {
            ShareLoad::Modem { profile, .. } => Some(Arc::clone(profile)),
            _ => None,
        })
        .collect();
    let population_sources = plan
        .populations
        .iter()
        .map(|share| {
            (!share.sources.is_empty()).then(|| SourceAddresses::new(share.sources.clone()))
        })
        .collect();
    let pops = plan.populations.len();
    let poll = Poll::new()?;
    let timer = PreciseTimer::new(poll.registry(), TIMER)?;
    let mut worker = Worker {
        plan,
        poll,
        timer,
        timer_armed_for: None,
        conns: Slab::with_capacity((clients.len() + modem_clients.len()).max(64)),
        clients,
        modem_clients,
        wakeups: BinaryHeap::new(),
        profiles,
        population_sources,
        window: (plan.measure_from, plan.end),
        open,
        thinking: BinaryHeap::new(),
        rng,
        sources: SourceAddresses::new(plan.sources.clone()),
        recorders: plan
            .populations
            .iter()
            .map(|share| {
                let mut recorder = PopulationRecorder::new(class_count);
                if matches!(share.load, ShareLoad::Modem { .. }) {
                    recorder.line = Some(LineRecorder::new());
                }
                recorder
            })
            .collect(),
        interval_index: 0,
        interval: (0..pops).map(|_| IntervalFigures::new()).collect(),
        read_buf: vec![0; 64 * 1024],
        request_buf: Vec::with_capacity(256),
        next_sweep: plan.start + TIMEOUT_SWEEP,
    };
    worker.run()?;
    Ok(worker.recorders)
}

impl<'w> Worker<'w> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let now = Instant::now();
        for client in 0..self.clients.len() as u32 {
            self.issue_closed(client, now);
        }
        for client in 0..self.modem_clients.len() as u32 {
            let first_page = self.modem_clients[client as usize].wake_at;
            if let Some(at) = first_page {
                self.wakeups.push(Reverse((at, Wake::Client(client))));
            }
        }
        loop {
            let now = Instant::now();
            if now >= self.plan.end || self.plan.abort.load(Ordering::Relaxed) {
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
                // Without RDHUP the server's FIN has not arrived: a short read emptied the socket.
                if event.is_read_closed() {
                    // Remembered: the event may be spent while the reply is still being read,
                    // and the connection must not then be reused.
                    if let Some(conn) = self.conns.get_mut(event.token().0) {
                        conn.peer_closed = true;
                    }
                }
                self.on_ready(event.token().0, now, !event.is_read_closed());
            }
            self.wake_thinkers(now);
            self.fire_wakeups(now);
            self.open_arrivals(now);
            if now >= self.next_sweep {
                self.next_sweep = now + TIMEOUT_SWEEP;
                self.sweep_timeouts(now);
            }
            self.roll_intervals(now);
        }
        // Connections whose connect completed in the last turn were never looked at; the server
        // accepted them all the same, so count them to keep both sides' figures comparable.
        for (_, conn) in self.conns.iter() {
            if conn.phase == Phase::Connecting && conn.stream.peer_addr().is_ok() {
                self.recorders[conn.pop as usize]
                    .lifetime
                    .connections_established += 1;
            }
        }
        // The Little's law integrals run to the end of the window.
        for recorder in &mut self.recorders {
            let concurrency = &mut recorder.concurrency;
            concurrency
                .open_connections
                .advance(self.plan.end, self.window);
            concurrency
                .requests_in_flight
                .advance(self.plan.end, self.window);
        }
        // Close the last interval if it began before the end (a partial one when the run was
        // stopped early); one that would begin at the end is not part of the run.
        let last_begins = self.plan.start + self.plan.interval * self.interval_index as u32;
        if last_begins < self.plan.end {
            self.send_interval();
        }
        Ok(())
    }

    fn poll_timeout(&mut self, now: Instant) -> Duration {
        let mut next = self.plan.end.min(self.next_sweep).min(self.interval_end());
        if let Some(Reverse((at, _))) = self.thinking.peek() {
            next = next.min(*at);
        }
        if let Some(Reverse((at, _))) = self.wakeups.peek() {
            next = next.min(*at);
        }
        for open in self.open.iter().flatten() {
            next = next.min(open.schedule.next_due());
        }
        let wait = next.saturating_duration_since(now);
        if wait.is_zero() {
            return Duration::ZERO;
        }
        if wait < PRECISE_BELOW
            && self.timer_armed_for != Some(next)
            && self.timer.arm(wait).is_ok()
        {
            self.timer_armed_for = Some(next);
        }
        if wait < PRECISE_BELOW {
            // The timerfd wakes us; this is only a backstop (mio rounds it up to whole ms).
            wait + Duration::from_millis(1)
        } else {
            // Wake a little early and let the timerfd take the last few milliseconds.
            wait - (PRECISE_BELOW - Duration::from_millis(1))
        }
    }

    fn interval_end(&self) -> Instant {
        self.plan.start + self.plan.interval * (self.interval_index as u32 + 1)
    }

    fn roll_intervals(&mut self, now: Instant) {
        if self.measuring(now) {
            // Connections opened during the warm-up count as soon as the window opens (idle
            // slow-line connections may never open another one).
            for recorder in &mut self.recorders {
                let open = recorder.concurrency.open_connections.level;
                recorder.peak_open_connections = recorder.peak_open_connections.max(open);
            }
        }
        while now >= self.interval_end() && self.interval_end() <= self.plan.end {
            self.send_interval();
            self.interval_index += 1;
        }
    }

    fn send_interval(&mut self) {
        let mut populations: Vec<IntervalFigures> = (0..self.interval.len())
            .map(|_| IntervalFigures::new())
            .collect();
        std::mem::swap(&mut populations, &mut self.interval);
        for (figures, recorder) in populations.iter_mut().zip(&self.recorders) {
            figures.open_connections = recorder.concurrency.open_connections.level;
        }
        let _ = self.plan.reports.send(IntervalReport {
            worker: self.plan.index,
            index: self.interval_index,
            populations,
        });
    }

    fn measuring(&self, now: Instant) -> bool {
        now >= self.plan.measure_from && now < self.plan.end
    }

    // ---- issuing requests -------------------------------------------------------------------

    fn issue_closed(&mut self, client: u32, now: Instant) {
        let pick = self.plan.workload.sample(&mut self.rng);
        let pop = self.clients[client as usize].pop;
        match self.clients[client as usize].conn {
            Some(key) if self.conns.contains(key) && self.conns[key].phase == Phase::Idle => {
                self.start_request(key, pick, now, now)
            }
            _ => {
                self.clients[client as usize].conn = None;
                match self.connect(pop, client, now) {
                    Ok(key) => {
                        self.clients[client as usize].conn = Some(key);
                        self.attach_request(key, pick, now, now);
                    }
                    Err(kind) => {
                        self.count_error(pop, kind, now);
                        self.schedule_think(client, now, true);
                    }
                }
            }
        }
    }

    fn issue_open(&mut self, pop: u16, due: Instant, now: Instant) {
        if self.measuring(now) {
            let lag_us = now.saturating_duration_since(due).as_micros() as u64;
            let _ = self.recorders[pop as usize]
                .schedule_lag_us
                .record(lag_us.clamp(1, crate::record::MAX_LATENCY_US));
        }
        // Its latency counts from when it was due: so does its stay in flight.
        let window = self.window;
        self.recorders[pop as usize]
            .concurrency
            .requests_in_flight
            .add_stay(due, now, window);
        let pick = self.plan.workload.sample(&mut self.rng);
        let state = self.open[pop as usize].as_mut().expect("open population");
        state.in_flight += 1;
        while let Some(key) = state.idle.pop() {
            if self.conns.get(key).is_some_and(|c| c.phase == Phase::Idle) {
                self.start_request(key, pick, due, now);
                return;
            }
        }
        match self.connect(pop, NO_CLIENT, now) {
            Ok(key) => self.attach_request(key, pick, due, now),
            Err(kind) => {
                self.count_error(pop, kind, now);
                self.open_slot_freed(pop, now);
            }
        }
    }

    fn open_arrivals(&mut self, now: Instant) {
        for pop in 0..self.open.len() {
            while let Some(state) = self.open[pop].as_mut() {
                let due = state.schedule.next_due();
                if due > now || due >= self.plan.end {
                    break;
                }
                state.schedule.advance(&mut self.rng);
                if state.in_flight >= state.max_in_flight {
                    state.queued.push_back(due);
                    if now >= self.plan.measure_from {
                        self.recorders[pop].queued_arrivals += 1;
                    }
                } else {
                    self.issue_open(pop as u16, due, now);
                }
            }
        }
    }

    fn open_slot_freed(&mut self, pop: u16, now: Instant) {
        let state = self.open[pop as usize].as_mut().expect("open population");
        state.in_flight -= 1;
        if let Some(due) = state.queued.pop_front() {
            self.issue_open(pop, due, now);
        }
    }

    fn schedule_think(&mut self, client: u32, now: Instant, after_error: bool) {
        let pop = self.clients[client as usize].pop as usize;
        let ShareLoad::Closed { think, .. } = self.plan.populations[pop].load else {
            return;
        };
        let mut pause = think_time(&think, &mut self.rng);
        if after_error {
            pause = pause.max(RETRY_BACKOFF);
        }
        if pause.is_zero() {
            self.issue_closed(client, now);
        } else {
            self.thinking.push(Reverse((now + pause, client)));
        }
    }

    fn wake_thinkers(&mut self, now: Instant) {
        while let Some(Reverse((at, client))) = self.thinking.peek().copied() {
            if at > now || now >= self.plan.end {
                break;
            }
            self.thinking.pop();
            self.issue_closed(client, now);
        }
    }

    fn connect(&mut self, pop: u16, client: u32, now: Instant) -> Result<usize, ErrorKind> {
        let source = match &mut self.population_sources[pop as usize] {
            Some(own) => own.next_source(),
            None => self.sources.next_source(),
        };
        let shape = self.profiles[pop as usize]
            .as_ref()
            .map(|profile| SlowLineSocket {
                receive_window: profile.spec.receive_window,
                mss: profile.spec.mss,
            });
        let std_stream = connect_nonblocking(self.plan.target, source, shape)
            .map_err(|e| ErrorKind::from_io(&e, true))?;
        let mut stream = TcpStream::from_std(std_stream);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| ErrorKind::from_io(&e, true))?;
        entry.insert(Conn {
            stream,
            pop,
            client,
            phase: Phase::Connecting,
            requests_done: 0,
            connect_started: now,
            request: None,
            wake_at: None,
            drained: false,
            peer_closed: false,
        });
        let window = self.window;
        let concurrency = &mut self.recorders[pop as usize].concurrency;
        concurrency.open_connections.up(now, window);
        if now >= window.0 && now < window.1 {
            concurrency.connections_opened += 1;
        }
        if self.measuring(now) {
            let recorder = &mut self.recorders[pop as usize];
            let open = recorder.concurrency.open_connections.level;
            recorder.peak_open_connections = recorder.peak_open_connections.max(open);
        }
        Ok(key)
    }

    fn new_request(
        &self,
        key: usize,
        pick: Pick,
        origin: Instant,
        now: Instant,
    ) -> Box<InFlight<'w>> {
        let conn = &self.conns[key];
        let per_conn = self.plan.populations[conn.pop as usize].requests_per_connection;
        let style = if self.profiles[conn.pop as usize].is_some() {
            if per_conn == 1 {
                RequestStyle::BrowserHttp10
            } else {
                RequestStyle::BrowserKeepAlive
            }
        } else if per_conn == 1 {
            RequestStyle::Http10
        } else if conn.requests_done + 1 >= per_conn {
            RequestStyle::LastOnConnection
        } else {
            RequestStyle::KeepAlive
        };
        Box::new(InFlight {
            pick,
            origin,
            issued: now,
            connect_us: None,
            first_byte: None,
            sent: 0,
            style,
            status: 0,
            head: Vec::new(),
            head_done: false,
            content_length: None,
            received: 0,
            server_closes: false,
            verifier: self.plan.workload.verifier(pick),
            upload_began: None,
            sent_at: None,
            line_used_at_sent_s: 0.0,
        })
    }

    /// A fresh connection: the request goes out once the connect completes.
    fn attach_request(&mut self, key: usize, pick: Pick, origin: Instant, now: Instant) {
        let request = self.new_request(key, pick, origin, now);
        let pop = self.conns[key].pop as usize;
        self.conns[key].request = Some(request);
        self.recorders[pop]
            .concurrency
            .requests_in_flight
            .up(now, self.window);
    }

    /// A reused keep-alive connection: send now.
    fn start_request(&mut self, key: usize, pick: Pick, origin: Instant, now: Instant) {
        let mut request = self.new_request(key, pick, origin, now);
        request.connect_us = Some(0);
        let conn = &mut self.conns[key];
        let pop = conn.pop as usize;
        conn.request = Some(request);
        conn.phase = Phase::Sending;
        self.recorders[pop]
            .concurrency
            .requests_in_flight
            .up(now, self.window);
        if self.profiles[pop].is_some() {
            return self.begin_upload(key, now);
        }
        self.on_ready(key, now, false);
    }

    // ---- driving connections ----------------------------------------------------------------

    /// Drives one connection as far as it goes. `trust_short_read`: a read shorter than the
    /// buffer means the socket is empty (wrk's trick), saving a read that would say EAGAIN.
    fn on_ready(&mut self, key: usize, now: Instant, trust_short_read: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.phase {
                Phase::Connecting => match conn.stream.take_error() {
                    Ok(Some(e)) | Err(e) => {
                        return self.fail(key, ErrorKind::from_io(&e, true), now)
                    }
                    Ok(None) => match conn.stream.peer_addr() {
                        Ok(_) => {
                            self.recorders[conn.pop as usize]
                                .lifetime
                                .connections_established += 1;
                            let connect_us = now
                                .saturating_duration_since(conn.connect_started)
                                .as_micros() as u64;
                            if let Some(request) = conn.request.as_mut() {
                                request.connect_us = Some(connect_us);
                            }
                            conn.phase = Phase::Sending;
                            if self.profiles[conn.pop as usize].is_some() {
                                return self.begin_upload(key, now);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                        Err(e) => return self.fail(key, ErrorKind::from_io(&e, true), now),
                    },
                },
                Phase::Sending => {
                    let request = conn.request.as_mut().expect("sending a request");
                    self.plan.workload.write_request(
                        request.pick,
                        &self.plan.host_header,
                        request.style,
                        &mut self.request_buf,
                    );
                    // A slow line releases the request no faster than its upstream carries it.
                    let profile = self.profiles[conn.pop as usize].as_deref();
                    let released = match (profile, request.upload_began) {
                        (Some(profile), Some(began)) => {
                            upload_released(profile, began, request.sent, &self.request_buf, now)
                        }
                        _ => self.request_buf.len(),
                    };
                    if released <= request.sent {
                        return self.wait_for_upload(key, now);
                    }
                    match conn.stream.write(&self.request_buf[request.sent..released]) {
                        Ok(n) => {
                            request.sent += n;
                            if request.sent >= self.request_buf.len() {
                                conn.phase = Phase::Receiving;
                                self.recorders[conn.pop as usize].lifetime.requests_sent += 1;
                                if profile.is_some() {
                                    return self.modem_request_sent(key, now);
                                }
                                // The reply cannot be here yet; its arrival raises an event.
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return self.fail(key, ErrorKind::from_io(&e, false), now),
                    }
                }
                Phase::Receiving if self.profiles[conn.pop as usize].is_some() => {
                    return self.modem_data_arrived(key, now);
                }
                // The timer moves it on; a close or reset shows at the next read or write.
                Phase::Delayed => return,
                Phase::Receiving => match conn.stream.read(&mut self.read_buf) {
                    Ok(0) => {
                        let request = conn.request.as_ref().expect("receiving");
                        if request.head_done && request.content_length.is_none() {
                            return self.complete(key, now);
                        }
                        let kind = if request.received == 0
                            && !request.head_done
                            && request.head.is_empty()
                        {
                            ErrorKind::Reset
                        } else {
                            ErrorKind::ShortBody
                        };
                        return self.fail(key, kind, now);
                    }
                    Ok(n) => match self.absorb(key, n, now) {
                        Absorbed::More => {
                            if trust_short_read && n < self.read_buf.len() {
                                return;
                            }
                        }
                        Absorbed::Complete => {
                            self.complete(key, now);
                            // A reused connection may have a new request to send already.
                            if !self
                                .conns
                                .get(key)
                                .is_some_and(|c| c.phase == Phase::Sending)
                            {
                                return;
                            }
                        }
                        Absorbed::Failed(kind) => return self.fail(key, kind, now),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(key, ErrorKind::from_io(&e, false), now),
                },
                Phase::Idle => {
                    // The server closed an idle keep-alive connection (or sent something
                    // unasked): drop it; the next request opens a new one.
                    match conn.stream.read(&mut self.read_buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        _ => return self.close(key, now),
                    }
                }
            }
        }
    }

    /// Takes `n` bytes just read into `read_buf`.
    fn absorb(&mut self, key: usize, n: usize, now: Instant) -> Absorbed {
        let conn = &mut self.conns[key];
        let request = conn.request.as_mut().expect("receiving");
        if request.first_byte.is_none() {
            request.first_byte = Some(now);
        }
        let mut body: &[u8] = &self.read_buf[..n];
        if !request.head_done {
            let parsed = if request.head.is_empty() {
                parse_head(body)
            } else {
                request.head.extend_from_slice(body);
                parse_head(&request.head)
            };
            match parsed {
                HeadParse::Partial => {
                    if request.head.is_empty() {
                        request.head.extend_from_slice(body);
                    }
                    if request.head.len() > 64 * 1024 {
                        return Absorbed::Failed(ErrorKind::Other);
                    }
                    return Absorbed::More;
                }
                HeadParse::Invalid => return Absorbed::Failed(ErrorKind::Other),
                HeadParse::Complete {
                    len,
                    status,
                    content_length,
                    closes,
                } => {
                    request.head_done = true;
                    request.status = status;
                    request.content_length = content_length;
                    request.server_closes = closes;
                    if request.head.is_empty() {
                        body = &body[len..];
                    } else {
                        let rest = request.head.split_off(len);
                        request.head = Vec::new();
                        return absorb_body(request, &rest);
                    }
                }
            }
        }
        absorb_body(request, body)
    }

    fn complete(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        let request = conn.request.take().expect("completed request");
        conn.requests_done += 1;
        let (pop, client) = (conn.pop, conn.client);
        self.recorders[pop as usize]
            .concurrency
            .requests_in_flight
            .down(now, self.window);
        self.recorders[pop as usize].lifetime.responses_completed += 1;
        let per_conn = self.plan.populations[pop as usize].requests_per_connection;
        let reusable = conn.requests_done < per_conn
            && !conn.peer_closed
            && !request.server_closes
            && request.style.keeps_alive()
            && request.content_length.is_some();

        let expected = self.plan.workload.expected_bytes(request.pick);
        let outcome = if request.status != 200 {
            Err(ErrorKind::BadStatus)
        } else if expected.is_some_and(|e| e != request.received)
            || request
                .verifier
                .as_ref()
                .is_some_and(|v| v.finish().is_err())
        {
            Err(ErrorKind::VerifyFailed)
        } else {
            Ok(())
        };
        match outcome {
            Ok(()) => {
                self.record_success(pop, &request, now);
                if self.profiles[pop as usize].is_some() {
                    self.record_line(pop, client, &request, now);
                }
            }
            Err(kind) => self.count_error(pop, kind, now),
        }
        if reusable {
            self.conns[key].phase = Phase::Idle;
        } else {
            self.close(key, now);
        }
        self.after_request(key, pop, client, reusable, now);
    }

    fn fail(&mut self, key: usize, kind: ErrorKind, now: Instant) {
        let (pop, client) = (self.conns[key].pop, self.conns[key].client);
        if self.conns[key].request.is_some() {
            self.recorders[pop as usize]
                .concurrency
                .requests_in_flight
                .down(now, self.window);
        }
        if self.profiles[pop as usize].is_some() && self.retry_on_new_connection(key, kind, now) {
            return;
        }
        self.count_error(pop, kind, now);
        self.close(key, now);
        self.after_request(key, pop, client, false, now);
    }

    /// What follows a finished or failed request: a closed client thinks, an open population
    /// frees its slot.
    fn after_request(&mut self, key: usize, pop: u16, client: u32, reusable: bool, now: Instant) {
        if now >= self.plan.end {
            return;
        }
        if self.profiles[pop as usize].is_some() {
            return self.modem_after_request(client, now);
        }
        match self.open[pop as usize].as_mut() {
            Some(state) => {
                if reusable {
                    state.idle.push(key);
                }
                self.open_slot_freed(pop, now);
            }
            None if client != NO_CLIENT => {
                if !reusable {
                    self.clients[client as usize].conn = None;
                }
                self.schedule_think(client, now, false);
            }
            None => {}
        }
    }

    fn close(&mut self, key: usize, now: Instant) {
        if let Some(conn) = self.conns.try_remove(key) {
            let window = self.window;
            let concurrency = &mut self.recorders[conn.pop as usize].concurrency;
            concurrency.open_connections.down(now, window);
            if now >= window.0 && now < window.1 {
                concurrency.connections_closed += 1;
                concurrency.connection_lifetime_s += now
                    .saturating_duration_since(conn.connect_started)
                    .as_secs_f64();
            }
            // The slab reuses keys: a client must not keep pointing at one that is gone.
            if self.profiles[conn.pop as usize].is_some() {
                self.modem_clients[conn.client as usize].forget(key);
            } else if conn.client != NO_CLIENT
                && self.clients[conn.client as usize].conn == Some(key)
            {
                self.clients[conn.client as usize].conn = None;
            }
            // Dropping the stream closes it, which also removes it from epoll.
        }
    }

    fn record_success(&mut self, pop: u16, request: &InFlight<'_>, now: Instant) {
        let total_us = now.saturating_duration_since(request.origin).as_micros() as u64;
        let figures = &mut self.interval[pop as usize];
        figures.ops += 1;
        figures.bytes += request.received;
        let _ = figures
            .total_us
            .record(total_us.clamp(1, crate::record::MAX_LATENCY_US));
        if !self.measuring(now) {
            return;
        }
        let class = self.plan.workload.class_index(request.pick);
        let recorder = &mut self.recorders[pop as usize].classes[class];
        recorder.ops += 1;
        recorder.bytes += request.received;
        let clamp = |v: u64| v.clamp(1, crate::record::MAX_LATENCY_US);
        if let Some(connect_us) = request.connect_us {
            let _ = recorder.connect_us.record(clamp(connect_us));
        }
        if let Some(first) = request.first_byte {
            let _ = recorder.first_byte_us.record(clamp(
                first.saturating_duration_since(request.origin).as_micros() as u64,
            ));
        }
        let _ = recorder.total_us.record(clamp(total_us));
    }

    fn count_error(&mut self, pop: u16, kind: ErrorKind, now: Instant) {
        self.interval[pop as usize].errors += 1;
        if self.measuring(now) {
            self.recorders[pop as usize].errors[kind as usize] += 1;
        }
    }

    fn sweep_timeouts(&mut self, now: Instant) {
        let expired: Vec<(usize, ErrorKind)> = self
            .conns
            .iter()
            .filter_map(|(key, conn)| {
                let request = conn.request.as_ref()?;
                let timeout = self.plan.populations[conn.pop as usize].request_timeout;
                (now.saturating_duration_since(request.issued) >= timeout).then_some((
                    key,
                    if conn.phase == Phase::Connecting {
                        ErrorKind::ConnectTimeout
                    } else {
                        ErrorKind::Timeout
                    },
                ))
            })
            .collect();
        for (key, kind) in expired {
            if self.conns.contains(key) {
                self.fail(key, kind, now);
            }
        }
    }
}

/// How far into the request a slow line has carried it by `now`: whole segments, each sent
/// once its last byte has crossed the upstream line.
fn upload_released(
    profile: &LineProfile,
    began: Instant,
    sent: usize,
    request: &[u8],
    now: Instant,
) -> usize {
    let segment = profile.spec.mss as usize;
    let mut released = sent;
    while released < request.len() {
        let next = (released + segment).min(request.len());
        if profile.upload_done_at(began, next) > now {
            break;
        }
        released = next;
    }
    released
}

enum Absorbed {
    More,
    Complete,
    Failed(ErrorKind),
}

fn absorb_body(request: &mut InFlight<'_>, body: &[u8]) -> Absorbed {
    request.received += body.len() as u64;
    if let Some(verifier) = request.verifier.as_mut() {
        if !verifier.feed(body) {
            return Absorbed::Failed(ErrorKind::VerifyFailed);
        }
    }
    match request.content_length {
        Some(length) if request.received == length => Absorbed::Complete,
        // More than announced: the server is broken or we lost framing.
        Some(length) if request.received > length => Absorbed::Failed(ErrorKind::Other),
        _ => Absorbed::More,
    }
}

enum HeadParse {
    Partial,
    Invalid,
    Complete {
        len: usize,
        status: u16,
        content_length: Option<u64>,
        closes: bool,
    },
}

fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(_) => HeadParse::Invalid,
        Ok(httparse::Status::Complete(len)) => {
            let mut content_length = None;
            let mut closes = response.version == Some(0);
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    content_length = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok());
                } else if header.name.eq_ignore_ascii_case("connection") {
                    let value = header.value.to_ascii_lowercase();
                    if value.windows(5).any(|w| w == b"close") {
                        closes = true;
                    } else if value.windows(10).any(|w| w == b"keep-alive") {
                        closes = false;
                    }
                }
            }
            HeadParse::Complete {
                len,
                status: response.code.unwrap_or(0),
                content_length,
                closes,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_give_status_length_and_close() {
        let HeadParse::Complete {
            len,
            status,
            content_length,
            closes,
        } = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello")
        else {
            panic!("complete head expected");
        };
        assert_eq!(
            (len, status, content_length, closes),
            (39, 200, Some(12), false)
        );
        let HeadParse::Complete { closes, .. } = parse_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
        else {
            panic!("complete head expected");
        };
        assert!(closes, "HTTP/1.0 closes by default");
        let HeadParse::Complete { closes, .. } =
            parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        else {
            panic!("complete head expected");
        };
        assert!(closes);
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-"),
            HeadParse::Partial
        ));
        assert!(matches!(
            parse_head(b"SSH-2.0-OpenSSH\r\n\r\n"),
            HeadParse::Invalid
        ));
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    /// The user-space memory of one idle slow-line user with its lingering connection, by
    /// construction: its slab slot, its user record and its two timer entries (the stale ones
    /// are popped when due). Kernel socket buffers are the kernel's, not counted here.
    #[test]
    fn an_idle_modem_connection_costs_far_less_than_2_kib_in_user_space() {
        // A slab slot is the value plus the vacant/occupied tag, rounded to the alignment.
        let slot = std::mem::size_of::<Option<Conn<'static>>>().next_multiple_of(8) + 8;
        let user = std::mem::size_of::<ModemClient>();
        let timers = 2 * std::mem::size_of::<Reverse<(Instant, Wake)>>();
        let total = slot + user + timers;
        eprintln!("slab slot {slot} B + user {user} B + timers {timers} B = {total} B");
        assert!(total <= 512, "{total} B per idle modem connection");
    }
}
