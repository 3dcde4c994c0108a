//! What a worker measures: HDR histograms per population and class, counters, errors by kind,
//! and per-interval figures for the timeline. Each worker owns its recorder (no locks on the hot
//! path, as in wrk) and hands it over once at the end; interval figures go to the main thread as
//! each interval closes, so memory stays flat however long the run.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;
use reports::model::{ClassResult, HistogramData, LatencySet, Totals};

/// Longest latency a histogram holds (larger values are clamped to it): 10 minutes in µs.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// Why a request failed. A fixed taxonomy, like wrk's, so runs compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// ECONNREFUSED: nothing listening, or the accept queue overflowed.
    Refused,
    /// The connect did not complete: ETIMEDOUT while connecting, or still connecting when the
    /// request timeout ran out.
    ConnectTimeout,
    /// EADDRNOTAVAIL: the client ran out of ephemeral ports.
    AddrNotAvailable,
    /// EMFILE/ENFILE: the generator ran out of descriptors.
    Emfile,
    /// ECONNRESET/EPIPE from the server.
    Reset,
    /// The server closed the connection (a FIN, not a reset) before any byte of the reply.
    Closed,
    /// The connection closed before the body's Content-Length was reached.
    ShortBody,
    /// A status other than 200.
    BadStatus,
    /// Length or content differs from the file set.
    VerifyFailed,
    /// No complete reply within the request timeout (a viewer: no complete first frame within
    /// its `startup_timeout`).
    Timeout,
    /// A live stream that cannot be read: its framing (multipart delimiters, `Content-Length`,
    /// part heads, chunking) is broken, or its head does not announce a stream.
    BadStream,
    /// Anything else: another socket error, a reply that cannot be framed, or bytes beyond the
    /// reply's end.
    Other,
}

impl ErrorKind {
    /// Every kind in declaration order, so `ALL[k as usize] == k`: the order of the error
    /// counters.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Refused,
        ErrorKind::ConnectTimeout,
        ErrorKind::AddrNotAvailable,
        ErrorKind::Emfile,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::ShortBody,
        ErrorKind::BadStatus,
        ErrorKind::VerifyFailed,
        ErrorKind::Timeout,
        ErrorKind::BadStream,
        ErrorKind::Other,
    ];

    /// The kind's key in `result.json`'s `errors` and in the summary: `refused`,
    /// `connect_timeout`, ...
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::AddrNotAvailable => "addr_not_available",
            ErrorKind::Emfile => "emfile",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::ShortBody => "short_body",
            ErrorKind::BadStatus => "bad_status",
            ErrorKind::VerifyFailed => "verify_failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadStream => "bad_stream",
            ErrorKind::Other => "other",
        }
    }

    /// Classifies a socket error from connect, read or write.
    pub fn from_io(error: &std::io::Error, connecting: bool) -> ErrorKind {
        match error.raw_os_error() {
            Some(libc::ECONNREFUSED) => ErrorKind::Refused,
            Some(libc::EADDRNOTAVAIL) => ErrorKind::AddrNotAvailable,
            Some(libc::EMFILE | libc::ENFILE) => ErrorKind::Emfile,
            Some(libc::ETIMEDOUT) if connecting => ErrorKind::ConnectTimeout,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => ErrorKind::Reset,
            _ => ErrorKind::Other,
        }
    }
}

/// A latency histogram in µs: 1 µs to [`MAX_LATENCY_US`], 3 significant digits (0.1 %
/// resolution).
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Coarser histograms for per-interval percentiles: 2 significant digits are plenty for a plot.
pub fn new_interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

/// Latencies of one class of one population.
#[derive(Clone)]
pub struct ClassRecorder {
    /// Successful replies (status 200, the body asked for) in the measured window.
    pub ops: u64,
    /// Their body bytes.
    pub bytes: u64,
    /// Connect time per successful reply, µs; 1 µs (the histogram's floor) on a kept-alive
    /// connection.
    pub connect_us: Histogram<u64>,
    /// From when the request was wanted (closed loop) or due (open loop) to its reply's first
    /// byte, µs.
    pub first_byte_us: Histogram<u64>,
    /// From the same origin to the reply's last byte, µs: the response time.
    pub total_us: Histogram<u64>,
}

impl ClassRecorder {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        ClassRecorder {
            ops: 0,
            bytes: 0,
            connect_us: new_latency_histogram(),
            first_byte_us: new_latency_histogram(),
            total_us: new_latency_histogram(),
        }
    }

    /// Adds another worker's figures for the same class.
    pub fn merge(&mut self, other: &ClassRecorder) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.connect_us.add(&other.connect_us);
        let _ = self.first_byte_us.add(&other.first_byte_us);
        let _ = self.total_us.add(&other.total_us);
    }

    /// One successful reply of `bytes` body bytes, with its latencies in µs (clamped into the
    /// histograms' range); `connect_us` and `first_byte_us` when known.
    pub fn record(
        &mut self,
        bytes: u64,
        connect_us: Option<u64>,
        first_byte_us: Option<u64>,
        total_us: u64,
    ) {
        let clamp = |v: u64| v.clamp(1, MAX_LATENCY_US);
        self.ops += 1;
        self.bytes += bytes;
        if let Some(connect_us) = connect_us {
            let _ = self.connect_us.record(clamp(connect_us));
        }
        if let Some(first_byte_us) = first_byte_us {
            let _ = self.first_byte_us.record(clamp(first_byte_us));
        }
        let _ = self.total_us.record(clamp(total_us));
    }

    /// A request the end of the point caught unanswered after `waited_us`: its latency is at
    /// least that, and goes into the total latency (not the ops, bytes or other histograms).
    pub fn record_unanswered(&mut self, waited_us: u64) {
        let _ = self.total_us.record(waited_us.clamp(1, MAX_LATENCY_US));
    }

    /// The three histograms as `result.json` stores them.
    pub fn latency_set(&self) -> LatencySet {
        LatencySet {
            connect_us: HistogramData::from_histogram(&self.connect_us),
            first_byte_us: HistogramData::from_histogram(&self.first_byte_us),
            total_us: HistogramData::from_histogram(&self.total_us),
        }
    }
}

impl Default for ClassRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything measured for one population in the measured window.
#[derive(Clone)]
pub struct PopulationRecorder {
    /// Per class, in the order of
    /// [`Workload::class_names`](crate::engine::workload::Workload::class_names).
    pub classes: Vec<ClassRecorder>,
    /// Failed requests in the measured window, indexed by `ErrorKind as usize`.
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Open loop: how late each request went out against its due time, µs; empty otherwise.
    pub schedule_lag_us: Histogram<u64>,
    /// Open loop: arrivals that waited for a slot under `max_in_flight`, in the measured window.
    pub queued_arrivals: u64,
    /// Requests still unanswered when the load point ended: in flight, or (open loop) queued
    /// for a slot. Open loop: each one's lower bound, from its due time to the end, is in the
    /// total latency histogram of its class, as wrk2 counts them.
    pub unanswered: u64,
    /// Requests sent again on a new connection after the server closed a reused one under
    /// them (RFC 9112 section 9.3.1), in the measured window; not errors.
    pub retries: u64,
    /// Most connections open at once in the measured window; summed over workers by `merge`,
    /// an upper bound of the true peak.
    pub peak_open_connections: u64,
    /// Whole point, warm-up included: what the server's own counters can be checked against.
    pub lifetime: Lifetime,
    /// What Little's law is checked with, over the measured window.
    pub concurrency: ConcurrencyRecorder,
    /// Slow-line populations only.
    pub line: Option<LineRecorder>,
    /// Live-stream viewer populations only.
    pub viewer: Option<ViewerRecorder>,
}

/// The time integral of a level (open connections, requests in flight) over the measured
/// window, updated at every change, so its mean is exact rather than sampled.
#[derive(Clone, Copy, Debug, Default)]
pub struct LevelIntegral {
    /// The level now (for connections: the worker's count of open ones).
    pub level: u64,
    /// Level x seconds inside the window so far.
    pub area_s: f64,
    last: Option<Instant>,
}

impl LevelIntegral {
    /// Adds the time since the last change, clipped to `window`, at the current level.
    /// Times may come slightly out of order (a loop's `now` and a fresh clock reading): time
    /// never runs backwards here, so nothing is counted twice.
    pub fn advance(&mut self, now: Instant, window: (Instant, Instant)) {
        let now = match self.last {
            Some(last) if now <= last => return,
            Some(last) => {
                let from = last.max(window.0);
                let to = now.min(window.1);
                if to > from {
                    self.area_s += self.level as f64 * (to - from).as_secs_f64();
                }
                now
            }
            None => now,
        };
        self.last = Some(now);
    }

    /// Adds one item's stay from `from` to `to` without changing the level (an arrival that
    /// waited before it was counted as open).
    pub fn add_stay(&mut self, from: Instant, to: Instant, window: (Instant, Instant)) {
        let (from, to) = (from.max(window.0), to.min(window.1));
        if to > from {
            self.area_s += (to - from).as_secs_f64();
        }
    }

    /// The level rises by one at `now` (a connection opened, a request started).
    pub fn up(&mut self, now: Instant, window: (Instant, Instant)) {
        self.advance(now, window);
        self.level += 1;
    }

    /// The level falls by one at `now`, never below zero.
    pub fn down(&mut self, now: Instant, window: (Instant, Instant)) {
        self.advance(now, window);
        self.level = self.level.saturating_sub(1);
    }
}

/// Little's law inputs: levels integrated over the window, and the arrivals and times that
/// predict them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConcurrencyRecorder {
    /// Connections open, from the connect's start to the close.
    pub open_connections: LevelIntegral,
    /// Requests handed to a connection and not finished; open-loop arrivals count from their due
    /// time.
    pub requests_in_flight: LevelIntegral,
    /// Connections opened inside the window.
    pub connections_opened: u64,
    /// Connections closed inside the window.
    pub connections_closed: u64,
    /// Sum of those connections' lifetimes, from the connect's start to the close, in seconds.
    pub connection_lifetime_s: f64,
}

impl ConcurrencyRecorder {
    /// Adds another worker's areas and counts; the levels, which only matter while a worker runs,
    /// are left as they are.
    pub fn merge(&mut self, other: &ConcurrencyRecorder) {
        self.open_connections.area_s += other.open_connections.area_s;
        self.requests_in_flight.area_s += other.requests_in_flight.area_s;
        self.connections_opened += other.connections_opened;
        self.connections_closed += other.connections_closed;
        self.connection_lifetime_s += other.connection_lifetime_s;
    }

    /// The figures for a window of `measured_s` seconds in which `ops` requests completed
    /// with a mean latency of `mean_latency_s`.
    pub fn figures(
        &self,
        measured_s: f64,
        ops: u64,
        mean_latency_s: f64,
    ) -> reports::model::Concurrency {
        let per_s = |x: f64| {
            if measured_s > 0.0 {
                x / measured_s
            } else {
                0.0
            }
        };
        let connections_per_s = per_s(self.connections_opened as f64);
        let mean_connection_lifetime_s = if self.connections_closed > 0 {
            self.connection_lifetime_s / self.connections_closed as f64
        } else {
            0.0
        };
        reports::model::Concurrency {
            mean_open_connections: per_s(self.open_connections.area_s),
            connections_per_s,
            mean_connection_lifetime_s,
            predicted_open_connections: connections_per_s * mean_connection_lifetime_s,
            connections_closed: self.connections_closed,
            mean_requests_in_flight: per_s(self.requests_in_flight.area_s),
            predicted_requests_in_flight: per_s(ops as f64) * mean_latency_s,
        }
    }
}

/// Per-reply figures of a slow-line population, and its page views.
#[derive(Clone)]
pub struct LineRecorder {
    /// Per successful reply: its body bytes over its time from the end of the upload to the last
    /// byte less one round trip, in bytes per second.
    pub achieved_bytes_per_s: Histogram<u64>,
    /// Per successful reply, in thousandths: its time from the end of the upload to the last byte
    /// over the time the line needed (one round trip plus the line time its user spent meanwhile);
    /// 1000: the line set the pace.
    pub slowdown_milli: Histogram<u64>,
    /// Page views begun in the measured window.
    pub pages_started: u64,
    /// Page views over in the measured window: the page and its images each answered or failed.
    pub pages_completed: u64,
    /// Idle connections the client closed after lingering, in the measured window.
    pub lingering_closes: u64,
    /// Requests sent again on a new connection because the server had closed the reused one
    /// before any reply came (RFC 9112 section 9.3.1); not errors.
    pub retries_on_new_connection: u64,
}

impl LineRecorder {
    /// Nothing recorded yet; histograms from 1 to 10^9 at 3 significant digits.
    pub fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid histogram bounds");
        LineRecorder {
            achieved_bytes_per_s: histogram(),
            slowdown_milli: histogram(),
            pages_started: 0,
            pages_completed: 0,
            lingering_closes: 0,
            retries_on_new_connection: 0,
        }
    }

    /// Adds another worker's figures for the same population.
    pub fn merge(&mut self, other: &LineRecorder) {
        let _ = self.achieved_bytes_per_s.add(&other.achieved_bytes_per_s);
        let _ = self.slowdown_milli.add(&other.slowdown_milli);
        self.pages_started += other.pages_started;
        self.pages_completed += other.pages_completed;
        self.lingering_closes += other.lingering_closes;
        self.retries_on_new_connection += other.retries_on_new_connection;
    }
}

impl Default for LineRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// A histogram of per-viewer or per-frame figures: 1 to 10^9 at 3 significant digits (µs up to
/// 16 minutes, thousandths up to a million).
fn viewer_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid histogram bounds")
}

fn record_clamped(histogram: &mut Histogram<u64>, value: u64) {
    let _ = histogram.record(value.clamp(1, 1_000_000_000));
}

/// What one viewer saw, handed over when it leaves (or the point ends): the per-viewer values
/// its population's histograms take.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ViewerSummary {
    /// Index of its downstream line rate in the population's mix (0 for LAN viewers).
    pub rate_index: usize,
    /// Seconds it was connected inside the measured window (from its connect's start).
    pub watched_s: f64,
    /// Frames it received complete inside the window.
    pub frames: u64,
    /// Its time-averaged age of information inside the window, seconds.
    pub age_of_information_s: Option<f64>,
    /// The area under its age curve and the time it covered (to pool the population).
    pub age_area: (f64, f64),
    /// The fps its line can carry (min of the source's fps and the line's payload rate over a
    /// frame's wire bytes); `None` when unknown (no frame, no announced fps).
    pub line_bound_fps: Option<f64>,
    /// CBR: its playout model's figures (initial buffering s, or never started; stall ratio).
    pub playout: Option<PlayoutSummary>,
}

/// A CBR viewer's playout-buffer figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlayoutSummary {
    /// From joining to the start of playback, seconds; `None`: never started.
    pub initial_buffering_s: Option<f64>,
    /// Stalls while it watched.
    pub stalls: u64,
    /// Stall time over (play + stall time); `None` before either.
    pub stall_ratio: Option<f64>,
}

/// A viewer population's figures on one downstream line rate.
#[derive(Clone)]
pub struct ViewerRateRecorder {
    /// The line rate in bit/s; 0 on a LAN.
    pub bps: f64,
    /// Payload bytes per second of the line (0 on a LAN: unbounded).
    pub payload_bytes_per_s: f64,
    /// Viewers on it that watched inside the window.
    pub viewers: u64,
    /// Frames received on it in the window.
    pub frames: u64,
    /// Sequence gaps on it in the window.
    pub frames_skipped: u64,
    /// Freezes on it in the window.
    pub freezes: u64,
    /// Sum of the viewers' line-bound fps (its mean is reported).
    pub line_bound_fps_sum: f64,
    /// Viewers with a line-bound fps.
    pub line_bound_viewers: u64,
    /// Per frame: arrival minus capture, µs.
    pub frame_age_us: Histogram<u64>,
    /// Per viewer: time-averaged age of information, µs.
    pub aoi_us: Histogram<u64>,
    /// Per viewer: fps, thousandths.
    pub fps_milli: Histogram<u64>,
    /// Per viewer: fps over line-bound fps, thousandths.
    pub efficiency_milli: Histogram<u64>,
}

impl ViewerRateRecorder {
    fn new(bps: f64, payload_bytes_per_s: f64) -> Self {
        ViewerRateRecorder {
            bps,
            payload_bytes_per_s,
            viewers: 0,
            frames: 0,
            frames_skipped: 0,
            freezes: 0,
            line_bound_fps_sum: 0.0,
            line_bound_viewers: 0,
            frame_age_us: viewer_histogram(),
            aoi_us: viewer_histogram(),
            fps_milli: viewer_histogram(),
            efficiency_milli: viewer_histogram(),
        }
    }

    fn merge(&mut self, other: &ViewerRateRecorder) {
        self.viewers += other.viewers;
        self.frames += other.frames;
        self.frames_skipped += other.frames_skipped;
        self.freezes += other.freezes;
        self.line_bound_fps_sum += other.line_bound_fps_sum;
        self.line_bound_viewers += other.line_bound_viewers;
        let _ = self.frame_age_us.add(&other.frame_age_us);
        let _ = self.aoi_us.add(&other.aoi_us);
        let _ = self.fps_milli.add(&other.fps_milli);
        let _ = self.efficiency_milli.add(&other.efficiency_milli);
    }
}

/// The playout model's figures of a CBR viewer population.
#[derive(Clone)]
pub struct PlayoutRecorder {
    /// Per viewer: joining to the start of playback, µs.
    pub initial_buffering_us: Histogram<u64>,
    /// Viewers whose playback never started.
    pub never_started: u64,
    /// Stalls.
    pub stalls: u64,
    /// Per viewer: stall ratio, thousandths.
    pub stall_ratio_milli: Histogram<u64>,
}

/// What a live-stream viewer population saw, in the measured window unless named
/// `lifetime_*` (the whole point, warm-up included, to hold against the server's counters).
#[derive(Clone)]
pub struct ViewerRecorder {
    /// `mjpeg` or `cbr`, from the first stream head read; empty before.
    pub format: String,
    /// The source's frame rate as announced (`X-Stream-Fps`); 0 if unknown.
    pub source_fps: f64,
    /// Body bytes of the last frame received (MJPEG) or media bytes/s (CBR).
    pub frame_bytes: u64,
    /// Viewers that joined (connect begun) in the window.
    pub joins: u64,
    /// Viewers that left when their watch ended, in the window.
    pub leaves: u64,
    /// Viewers the server disconnected while they watched, in the window.
    pub kicks: u64,
    /// Frames received complete and verified in the window.
    pub frames: u64,
    /// Stream body bytes received in the window.
    pub bytes: u64,
    /// Sequence gaps (frames never received) in the window.
    pub frames_skipped: u64,
    /// Frames received over the whole point.
    pub lifetime_frames: u64,
    /// Sequence gaps over the whole point.
    pub lifetime_frames_skipped: u64,
    /// Freezes in the window.
    pub freezes: u64,
    /// Their total length, ms.
    pub freeze_ms: u64,
    /// Viewer-seconds watched inside the window.
    pub viewer_s: f64,
    /// Age area and covered time summed over viewers (seconds^2, seconds).
    pub age_area: (f64, f64),
    /// Per viewer: connect start to first complete frame, µs.
    pub startup_us: Histogram<u64>,
    /// Per frame: arrival minus capture, µs.
    pub frame_age_us: Histogram<u64>,
    /// Per viewer: time-averaged age of information, µs.
    pub aoi_us: Histogram<u64>,
    /// Per viewer: fps while watching, thousandths.
    pub fps_milli: Histogram<u64>,
    /// Per viewer: fps over line-bound fps, thousandths.
    pub efficiency_milli: Histogram<u64>,
    /// CBR viewers' playout figures; `None` until a CBR viewer finished.
    pub playout: Option<PlayoutRecorder>,
    /// Per downstream line rate, in the mix's order (one entry, bps 0, on a LAN).
    pub by_rate: Vec<ViewerRateRecorder>,
}

impl ViewerRecorder {
    /// Nothing recorded yet, for viewers on `profile`'s line rates (`None`: LAN, one entry).
    pub fn new(profile: Option<&crate::engine::modem::LineProfile>) -> Self {
        let by_rate = match profile {
            Some(profile) => profile
                .spec
                .downstream
                .iter()
                .zip(&profile.payload_rates)
                .map(|(share, (payload, _))| ViewerRateRecorder::new(share.rate, *payload))
                .collect(),
            None => vec![ViewerRateRecorder::new(0.0, 0.0)],
        };
        ViewerRecorder {
            format: String::new(),
            source_fps: 0.0,
            frame_bytes: 0,
            joins: 0,
            leaves: 0,
            kicks: 0,
            frames: 0,
            bytes: 0,
            frames_skipped: 0,
            lifetime_frames: 0,
            lifetime_frames_skipped: 0,
            freezes: 0,
            freeze_ms: 0,
            viewer_s: 0.0,
            age_area: (0.0, 0.0),
            startup_us: viewer_histogram(),
            frame_age_us: viewer_histogram(),
            aoi_us: viewer_histogram(),
            fps_milli: viewer_histogram(),
            efficiency_milli: viewer_histogram(),
            playout: None,
            by_rate,
        }
    }

    /// The rate entry of `index` (the last one if out of range, which cannot happen for a
    /// draw from the same mix).
    pub fn rate(&mut self, index: usize) -> &mut ViewerRateRecorder {
        let last = self.by_rate.len() - 1;
        &mut self.by_rate[index.min(last)]
    }

    /// One frame received inside the window on line rate `rate_index`: its age (µs), the
    /// frames skipped before it, and whether it ended a freeze.
    pub fn record_frame(&mut self, rate_index: usize, age_us: Option<u64>, skipped: u64) {
        self.frames += 1;
        self.frames_skipped += skipped;
        if let Some(age) = age_us {
            record_clamped(&mut self.frame_age_us, age);
        }
        let rate = self.rate(rate_index);
        rate.frames += 1;
        rate.frames_skipped += skipped;
        if let Some(age) = age_us {
            record_clamped(&mut rate.frame_age_us, age);
        }
    }

    /// A freeze of `ms` ended inside the window, on line rate `rate_index`.
    pub fn record_freeze(&mut self, rate_index: usize, ms: u64) {
        self.freezes += 1;
        self.freeze_ms += ms;
        self.rate(rate_index).freezes += 1;
    }

    /// A viewer is done (left, was kicked, failed, or the point ended): its per-viewer values.
    /// A viewer that watched nothing inside the window adds nothing.
    pub fn record_viewer(&mut self, viewer: &ViewerSummary) {
        if viewer.watched_s <= 0.0 {
            return;
        }
        self.viewer_s += viewer.watched_s;
        self.age_area.0 += viewer.age_area.0;
        self.age_area.1 += viewer.age_area.1;
        // Frames per second of the time a frame was on screen (from the first frame on, inside
        // the window): the startup delay is its own figure and does not lower the fps.
        let showing_s = if viewer.age_area.1 > 0.0 {
            viewer.age_area.1
        } else {
            viewer.watched_s
        };
        let fps = viewer.frames as f64 / showing_s;
        let fps_milli = (fps * 1000.0).round() as u64;
        let aoi_us = viewer
            .age_of_information_s
            .map(|s| (s.max(0.0) * 1e6).round() as u64);
        let efficiency = viewer
            .line_bound_fps
            .filter(|bound| *bound > 0.0)
            .map(|bound| (fps / bound * 1000.0).round() as u64);
        record_clamped(&mut self.fps_milli, fps_milli);
        if let Some(aoi) = aoi_us {
            record_clamped(&mut self.aoi_us, aoi);
        }
        if let Some(efficiency) = efficiency {
            record_clamped(&mut self.efficiency_milli, efficiency);
        }
        if let Some(playout) = viewer.playout {
            let recorder = self.playout.get_or_insert_with(|| PlayoutRecorder {
                initial_buffering_us: viewer_histogram(),
                never_started: 0,
                stalls: 0,
                stall_ratio_milli: viewer_histogram(),
            });
            match playout.initial_buffering_s {
                Some(s) => record_clamped(
                    &mut recorder.initial_buffering_us,
                    (s.max(0.0) * 1e6).round() as u64,
                ),
                None => recorder.never_started += 1,
            }
            recorder.stalls += playout.stalls;
            if let Some(ratio) = playout.stall_ratio {
                // A ratio of 0 is recorded as the floor: no stall.
                record_clamped(
                    &mut recorder.stall_ratio_milli,
                    (ratio * 1000.0).round() as u64,
                );
            }
        }
        let rate = self.rate(viewer.rate_index);
        rate.viewers += 1;
        record_clamped(&mut rate.fps_milli, fps_milli);
        if let Some(aoi) = aoi_us {
            record_clamped(&mut rate.aoi_us, aoi);
        }
        if let Some(efficiency) = efficiency {
            record_clamped(&mut rate.efficiency_milli, efficiency);
        }
        if let Some(bound) = viewer.line_bound_fps {
            rate.line_bound_fps_sum += bound;
            rate.line_bound_viewers += 1;
        }
    }

    /// Adds another worker's figures for the same population.
    pub fn merge(&mut self, other: &ViewerRecorder) {
        if self.format.is_empty() {
            self.format = other.format.clone();
        }
        if self.source_fps == 0.0 {
            self.source_fps = other.source_fps;
        }
        self.frame_bytes = self.frame_bytes.max(other.frame_bytes);
        self.joins += other.joins;
        self.leaves += other.leaves;
        self.kicks += other.kicks;
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.frames_skipped += other.frames_skipped;
        self.lifetime_frames += other.lifetime_frames;
        self.lifetime_frames_skipped += other.lifetime_frames_skipped;
        self.freezes += other.freezes;
        self.freeze_ms += other.freeze_ms;
        self.viewer_s += other.viewer_s;
        self.age_area.0 += other.age_area.0;
        self.age_area.1 += other.age_area.1;
        let _ = self.startup_us.add(&other.startup_us);
        let _ = self.frame_age_us.add(&other.frame_age_us);
        let _ = self.aoi_us.add(&other.aoi_us);
        let _ = self.fps_milli.add(&other.fps_milli);
        let _ = self.efficiency_milli.add(&other.efficiency_milli);
        match (&mut self.playout, &other.playout) {
            (Some(mine), Some(theirs)) => {
                let _ = mine.initial_buffering_us.add(&theirs.initial_buffering_us);
                mine.never_started += theirs.never_started;
                mine.stalls += theirs.stalls;
                let _ = mine.stall_ratio_milli.add(&theirs.stall_ratio_milli);
            }
            (None, Some(theirs)) => self.playout = Some(theirs.clone()),
            _ => {}
        }
        for (mine, theirs) in self.by_rate.iter_mut().zip(&other.by_rate) {
            mine.merge(theirs);
        }
    }
}

/// One viewer population's events in one timeline interval, from one worker (warm-up
/// included, as the rest of the timeline).
#[derive(Clone)]
pub struct ViewerInterval {
    /// Frames received complete.
    pub frames: u64,
    /// Sequence gaps.
    pub frames_skipped: u64,
    /// Viewers that joined.
    pub joins: u64,
    /// Viewers that left when their watch ended.
    pub leaves: u64,
    /// Viewers the server disconnected.
    pub kicks: u64,
    /// Frame age at receipt, µs, at 2 significant digits.
    pub frame_age_us: Histogram<u64>,
}

impl ViewerInterval {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        ViewerInterval {
            frames: 0,
            frames_skipped: 0,
            joins: 0,
            leaves: 0,
            kicks: 0,
            frame_age_us: new_interval_histogram(),
        }
    }

    /// Adds another worker's figures for the same population and interval.
    pub fn merge(&mut self, other: &ViewerInterval) {
        self.frames += other.frames;
        self.frames_skipped += other.frames_skipped;
        self.joins += other.joins;
        self.leaves += other.leaves;
        self.kicks += other.kicks;
        let _ = self.frame_age_us.add(&other.frame_age_us);
    }
}

impl Default for ViewerInterval {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts over the whole load point, warm-up and end included.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lifetime {
    /// Requests written completely to a socket.
    pub requests_sent: u64,
    /// Replies read completely (any status).
    pub responses_completed: u64,
    /// Connections whose connect completed.
    pub connections_established: u64,
}

impl PopulationRecorder {
    /// Nothing recorded yet, for `class_count` classes; `line` is for the caller to set.
    pub fn new(class_count: usize) -> Self {
        PopulationRecorder {
            classes: (0..class_count).map(|_| ClassRecorder::new()).collect(),
            errors: [0; ErrorKind::ALL.len()],
            schedule_lag_us: new_latency_histogram(),
            queued_arrivals: 0,
            unanswered: 0,
            retries: 0,
            peak_open_connections: 0,
            lifetime: Lifetime::default(),
            concurrency: ConcurrencyRecorder::default(),
            line: None,
            viewer: None,
        }
    }

    /// Adds another worker's figures for the same population.
    pub fn merge(&mut self, other: &PopulationRecorder) {
        for (mine, theirs) in self.classes.iter_mut().zip(&other.classes) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        let _ = self.schedule_lag_us.add(&other.schedule_lag_us);
        self.queued_arrivals += other.queued_arrivals;
        self.unanswered += other.unanswered;
        self.retries += other.retries;
        // Workers peak at different moments; the sum bounds the true peak from above.
        self.peak_open_connections += other.peak_open_connections;
        self.lifetime.requests_sent += other.lifetime.requests_sent;
        self.lifetime.responses_completed += other.lifetime.responses_completed;
        self.lifetime.connections_established += other.lifetime.connections_established;
        self.concurrency.merge(&other.concurrency);
        match (&mut self.line, &other.line) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.line = Some(theirs.clone()),
            _ => {}
        }
        match (&mut self.viewer, &other.viewer) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.viewer = Some(theirs.clone()),
            _ => {}
        }
    }

    /// All classes together.
    pub fn all_classes(&self) -> ClassRecorder {
        let mut all = ClassRecorder::new();
        for class in &self.classes {
            all.merge(class);
        }
        all
    }

    /// Ops, bytes and errors of the measured window, with rates over its `measured_s` seconds.
    pub fn totals(&self, measured_s: f64) -> Totals {
        let all_ops: u64 = self.classes.iter().map(|c| c.ops).sum();
        let all_bytes: u64 = self.classes.iter().map(|c| c.bytes).sum();
        totals_from(all_ops, all_bytes, &self.errors, measured_s)
    }

    /// The per-class results for `result.json`, named in order by `names` (the workload's
    /// classes).
    pub fn class_results(&self, names: &[String]) -> Vec<ClassResult> {
        self.classes
            .iter()
            .zip(names)
            .map(|(class, name)| ClassResult {
                class: name.clone(),
                ops: class.ops,
                bytes: class.bytes,
                latency: class.latency_set(),
            })
            .collect()
    }
}

/// `ops` replies of `bytes` body bytes and the error counts `errors` (indexed like
/// [`ErrorKind::ALL`]) as `Totals` of a `measured_s`-second window: rates are 0 for an empty
/// window, Mbit/s are 10^6 bits per second.
pub fn totals_from(ops: u64, bytes: u64, errors: &[u64], measured_s: f64) -> Totals {
    let per_s = |x: u64| {
        if measured_s > 0.0 {
            x as f64 / measured_s
        } else {
            0.0
        }
    };
    let named: BTreeMap<String, u64> = ErrorKind::ALL
        .iter()
        .zip(errors)
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| (kind.name().to_string(), *n))
        .collect();
    Totals {
        ops,
        ops_per_s: per_s(ops),
        bytes,
        mbit_per_s: per_s(bytes) * 8.0 / 1e6,
        errors_total: errors.iter().sum(),
        errors: named,
    }
}

/// One population's figures for one timeline interval, from one worker.
#[derive(Clone)]
pub struct IntervalFigures {
    /// Successful replies in the interval, warm-up included.
    pub ops: u64,
    /// Their body bytes.
    pub bytes: u64,
    /// Failed requests in the interval.
    pub errors: u64,
    /// Connections open when the interval closed; summed over workers by `merge`.
    pub open_connections: u64,
    /// Response times of the interval's successful replies, µs, at 2 significant digits.
    pub total_us: Histogram<u64>,
    /// Viewer populations: the interval's frames, skips, joins, leaves, kicks and frame ages.
    pub viewer: Option<ViewerInterval>,
}

impl IntervalFigures {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        IntervalFigures {
            ops: 0,
            bytes: 0,
            errors: 0,
            open_connections: 0,
            total_us: new_interval_histogram(),
            viewer: None,
        }
    }

    /// One successful reply of `bytes` body bytes that took `total_us`.
    pub fn record(&mut self, bytes: u64, total_us: u64) {
        self.ops += 1;
        self.bytes += bytes;
        let _ = self.total_us.record(total_us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds another worker's figures for the same population and interval.
    pub fn merge(&mut self, other: &IntervalFigures) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.open_connections += other.open_connections;
        let _ = self.total_us.add(&other.total_us);
        match (&mut self.viewer, &other.viewer) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.viewer = Some(theirs.clone()),
            _ => {}
        }
    }
}

impl Default for IntervalFigures {
    fn default() -> Self {
        Self::new()
    }
}

/// What a worker sends when an interval closes.
pub struct IntervalReport {
    /// The sending worker's index.
    pub worker: usize,
    /// The interval's number from 0: it spans `index * interval` to `(index + 1) * interval`
    /// after the point's start.
    pub index: usize,
    /// Per population, in the scenario's order.
    pub populations: Vec<IntervalFigures>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn level_integrals_clip_to_the_window_and_never_count_twice() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let window = (t0 + s(10), t0 + s(20));
        let mut level = LevelIntegral::default();
        level.up(t0, window); // 1 from 0 s
        level.up(t0 + s(12), window); // 2 from 12 s
                                      // A reading a little older than the last one changes the level but adds no time.
        level.down(t0 + s(11), window);
        level.down(t0 + s(18), window); // 0 from 18 s
        level.advance(t0 + s(30), window);
        // 10-12 s at 1; the late close takes effect at 12 s (time did not go back): 12-18 s
        // at 1. 2 + 6.
        assert!((level.area_s - 8.0).abs() < 1e-9, "{}", level.area_s);
        level.add_stay(t0 + s(5), t0 + s(11), window);
        assert!((level.area_s - 9.0).abs() < 1e-9, "{}", level.area_s);
    }

    #[test]
    fn viewer_figures_merge_over_workers_per_line_rate() {
        let text = "[[clients]]\nname = \"cam\"\nkind = \"viewer\"\nstream = \"/c\"\nclients = 2\n\
                    line = \"modem\"\ndownstream_mix = [{ rate = \"28.8k\" }, { rate = \"53.3k\" }]\n";
        let scenario =
            crate::scenario::Scenario::parse(text, std::path::Path::new("t.toml")).unwrap();
        let crate::scenario::Population::Viewer(spec) = &scenario.clients[0] else {
            panic!("a viewer population");
        };
        let profile = crate::engine::modem::LineProfile::new(
            &spec.modem_spec().unwrap(),
            crate::engine::modem::RttMode::Application,
        );
        let mut a = ViewerRecorder::new(Some(&profile));
        let mut b = ViewerRecorder::new(Some(&profile));
        assert_eq!(a.by_rate.len(), 2);
        assert_eq!(a.by_rate[1].bps, 53_300.0);
        a.record_frame(0, Some(2_000_000), 3);
        b.record_frame(1, Some(1_000_000), 1);
        b.record_freeze(1, 900);
        let summary = ViewerSummary {
            rate_index: 1,
            watched_s: 10.0,
            frames: 8,
            age_of_information_s: Some(1.5),
            age_area: (6.0, 4.0),
            line_bound_fps: Some(1.6),
            playout: None,
        };
        b.record_viewer(&summary);
        a.merge(&b);
        assert_eq!(
            (a.frames, a.frames_skipped, a.freezes, a.freeze_ms),
            (2, 4, 1, 900)
        );
        assert_eq!(a.frame_age_us.len(), 2);
        assert_eq!((a.by_rate[0].frames, a.by_rate[1].frames), (1, 1));
        assert_eq!(a.by_rate[1].viewers, 1);
        // 8 frames over the 4 s a frame was on screen: 2 fps, 1.25 of the line's 1.6.
        assert_eq!(a.fps_milli.value_at_quantile(0.5), 2000);
        let efficiency = a.by_rate[1].efficiency_milli.value_at_quantile(0.5);
        assert!((1249..=1251).contains(&efficiency), "{efficiency}");
        assert_eq!(a.viewer_s, 10.0);
        assert_eq!(a.age_area, (6.0, 4.0));
    }

    #[test]
    fn littles_law_figures_divide_by_the_window() {
        let mut c = ConcurrencyRecorder {
            connections_opened: 100,
            connections_closed: 50,
            connection_lifetime_s: 100.0,
            ..Default::default()
        };
        c.open_connections.area_s = 200.0;
        c.requests_in_flight.area_s = 30.0;
        let f = c.figures(10.0, 60, 0.5);
        assert_eq!(f.mean_open_connections, 20.0);
        assert_eq!(f.connections_per_s, 10.0);
        assert_eq!(f.mean_connection_lifetime_s, 2.0);
        assert_eq!(f.predicted_open_connections, 20.0);
        assert_eq!(f.mean_requests_in_flight, 3.0);
        assert_eq!(f.predicted_requests_in_flight, 3.0);
    }
}
