//! The live source: frames built once and shared by reference (`Arc<Frame>`), the ring that
//! publishes them at a fixed rate from an epoch, and the per-viewer policies for slow viewers
//! (`latest`, `queue:N`, `queue:BYTES:disconnect`, `fifo`) as pure state machines over the ring.
//!
//! Nothing here touches a socket or a clock: time comes in as "time since the epoch", a viewer's
//! kernel state as plain numbers (unsent bytes, bytes the kernel accepted). The loop drives it.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::units::{parse_bytes, UnitError};

/// The multipart boundary of the MJPEG stream (RFC 2046 §5.1.1: 1 to 70 `bcharsnospace`).
pub const BOUNDARY: &str = "afterburnerframe";
/// Default frames per second (`--live-fps`).
pub const DEFAULT_FPS: f64 = 4.0;
/// Default MJPEG body bytes per frame (`--live-frame-bytes`), a 1990s webcam JPEG.
pub const DEFAULT_FRAME_BYTES: usize = 3072;
/// Default `TCP_NOTSENT_LOWAT` mark in bytes (`--live-lowat`).
pub const DEFAULT_LOWAT: u32 = 4096;
/// Default burst on connect in bytes (`--live-burst`): Icecast's `CONFIG_DEFAULT_BURST_SIZE`
/// (64 * 1024, xiph/Icecast-Server `src/cfgfile.c`).
pub const DEFAULT_BURST_BYTES: u64 = 64 * 1024;
/// Default hard cap in bytes of the `fifo` policy's backlog (`--live-fifo-cap`).
pub const DEFAULT_FIFO_CAP_BYTES: u64 = 8 * 1024 * 1024;

/// The 62 bytes a frame body is made of (`A-Z a-z 0-9`): none is CR, LF or `-`, so a body can
/// never contain the RFC 2046 §5.1.1 delimiter `CRLF "--" boundary`.
pub const BODY_ALPHABET: &[u8; 62] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// What the stream carries (`--live-format`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// `multipart/x-mixed-replace` parts (Netscape server push, as mjpg-streamer sends it).
    Mjpeg,
    /// A constant-bitrate byte stream like an Icecast radio stream; `bytes_per_second` is the
    /// `--live-rate` in bits per second divided by 8.
    Cbr {
        /// Stream rate in bytes per second.
        bytes_per_second: u64,
    },
}

/// The live source's settings, as `afterburner --live ...` gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveConfig {
    /// The request path that serves the stream, like `/cam.mjpg`.
    pub path: String,
    /// Frames (CBR: chunks) published per second; the period is `1/fps`.
    pub fps: f64,
    /// MJPEG body bytes per frame (ignored for CBR, whose chunk size follows from the rate).
    pub frame_bytes: usize,
    /// MJPEG parts or a CBR byte stream.
    pub format: Format,
    /// What a slow viewer gets.
    pub policy: Policy,
    /// `TCP_NOTSENT_LOWAT` in bytes; `None` leaves the kernel default (no mark: the send buffer,
    /// megabytes, becomes a hidden queue). Linux commit c9bee3b7fdec (3.12).
    pub lowat: Option<u32>,
    /// Burst on connect in bytes for CBR under `queue:BYTES:disconnect` (Icecast `burst-size`).
    pub burst_bytes: u64,
    /// The `fifo` policy's hard cap on retained bytes; a viewer further behind is disconnected.
    pub fifo_cap_bytes: u64,
}

impl LiveConfig {
    /// The defaults for a stream at `path`: 4 fps MJPEG of 3 KiB frames, `latest`, mark 4 KiB.
    pub fn new(path: &str) -> LiveConfig {
        LiveConfig {
            path: path.to_string(),
            fps: DEFAULT_FPS,
            frame_bytes: DEFAULT_FRAME_BYTES,
            format: Format::Mjpeg,
            policy: Policy::Latest,
            lowat: Some(DEFAULT_LOWAT),
            burst_bytes: DEFAULT_BURST_BYTES,
            fifo_cap_bytes: DEFAULT_FIFO_CAP_BYTES,
        }
    }

    /// Refuses settings no stream can have: fps not in (0, 1000], an MJPEG frame of 0 bytes
    /// or over 16 MiB, a path not starting with `/`, a CBR rate under 8 bytes per frame.
    pub fn check(&self) -> Result<(), LiveConfigError> {
        let error = |why: String| Err(LiveConfigError(why));
        if !self.path.starts_with('/') {
            return error(format!(
                "--live: the path `{}` must start with /",
                self.path
            ));
        }
        if !(self.fps > 0.0 && self.fps <= 1000.0) {
            return error(format!("--live-fps: {} fps is not in (0, 1000]", self.fps));
        }
        match self.format {
            Format::Mjpeg if self.frame_bytes == 0 || self.frame_bytes > 16 << 20 => {
                error(format!(
                    "--live-frame-bytes: a frame of {} bytes is not in 1 B..=16 MiB",
                    self.frame_bytes
                ))
            }
            Format::Cbr { bytes_per_second } if (bytes_per_second as f64) < 8.0 * self.fps => {
                error(format!(
                    "--live-rate: {bytes_per_second} bytes/s at {} fps is under 8 bytes per chunk",
                    self.fps
                ))
            }
            _ => Ok(()),
        }
    }

    /// The publication period in microseconds: `round(10^6 / fps)`, at least 1.
    pub fn period_us(&self) -> u64 {
        ((1e6 / self.fps).round() as u64).max(1)
    }

    /// Body bytes of one frame: `frame_bytes` for MJPEG; for CBR `bytes_per_second / fps`
    /// rounded down to a multiple of 8 (at least 8), since the body is made of 8-byte words.
    pub fn body_bytes(&self) -> usize {
        match self.format {
            Format::Mjpeg => self.frame_bytes,
            Format::Cbr { bytes_per_second } => {
                let per_chunk = (bytes_per_second as f64 / self.fps) as usize;
                (per_chunk / 8 * 8).max(8)
            }
        }
    }

    /// Bytes a new viewer is given from the past at once: `burst_bytes` for CBR under
    /// `queue:BYTES:disconnect` (Icecast `find_client_start`, `src/format.c`), else 0 (the
    /// viewer starts at the newest frame).
    pub fn join_burst_bytes(&self) -> u64 {
        match (self.format, self.policy) {
            (Format::Cbr { .. }, Policy::QueueBytesDisconnect { .. }) => self.burst_bytes,
            _ => 0,
        }
    }

    /// Whether a response to a request of this HTTP version is `Transfer-Encoding: chunked`
    /// (RFC 9112 §7.1): CBR to HTTP/1.1 only. MJPEG and HTTP/1.0 are close-delimited (RFC 9112
    /// §6.3 rule 8), as mjpg-streamer sends it.
    pub fn chunked(&self, http11: bool) -> bool {
        http11 && matches!(self.format, Format::Cbr { .. })
    }

    /// The response head, built once: `HTTP/1.1 200 OK`, `Server`, `Content-Type`
    /// (`multipart/x-mixed-replace;boundary=afterburnerframe` or `application/octet-stream`),
    /// `Cache-Control: no-store`, `Connection: close`, then `Transfer-Encoding: chunked` for
    /// [`LiveConfig::chunked`], `X-Stream-Fps` (MJPEG) or `X-Stream-Rate` (CBR, bytes per second
    /// actually sent: chunk bytes x fps), and `X-Stream-Epoch` (capture time of frame 0, Unix
    /// seconds with 6 decimals), a blank line. No `Content-Length`: the stream never ends.
    pub fn response_head(&self, epoch_unix_us: u64, http11: bool) -> String {
        let (content_type, pace) = match self.format {
            Format::Mjpeg => (
                format!("multipart/x-mixed-replace;boundary={BOUNDARY}"),
                format!("X-Stream-Fps: {}\r\n", self.fps),
            ),
            Format::Cbr { .. } => (
                "application/octet-stream".to_string(),
                format!(
                    "X-Stream-Rate: {}\r\n",
                    (self.body_bytes() as f64 * self.fps).round() as u64
                ),
            ),
        };
        let framing = if self.chunked(http11) {
            "Transfer-Encoding: chunked\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 200 OK\r\nServer: afterburner\r\nContent-Type: {content_type}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n{framing}{pace}\
             X-Stream-Epoch: {}.{:06}\r\n\r\n",
            epoch_unix_us / 1_000_000,
            epoch_unix_us % 1_000_000
        )
    }

    /// Frame `seq` of this stream whose capture time is `epoch_unix_us + seq * period_us`.
    pub fn frame(&self, epoch_unix_us: u64, seq: u64) -> Frame {
        let capture_unix_us = epoch_unix_us + seq * self.period_us();
        match self.format {
            Format::Mjpeg => build_frame(seq, capture_unix_us, self.frame_bytes, BOUNDARY),
            Format::Cbr { .. } => build_cbr_chunk(seq, capture_unix_us, self.body_bytes()),
        }
    }
}

/// Live settings refused by [`LiveConfig::check`], saying which and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("live source: {0}")]
pub struct LiveConfigError(pub String);

/// What a viewer whose line is slower than the stream gets (`--live-policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `latest`: a viewer that finished a frame, with its unsent kernel bytes below the mark,
    /// gets the newest frame; the frames in between count as skipped (what mjpg-streamer's
    /// `send_stream` does implicitly, minus the hidden kernel queue).
    Latest,
    /// `queue:N`: the viewer gets every frame in order from a backlog of at most `frames`;
    /// older ones are dropped (counted).
    Queue {
        /// Backlog length in frames, at least 1.
        frames: usize,
    },
    /// `queue:BYTES:disconnect`: every frame in order; a viewer more than `bytes` behind the
    /// newest frame's end is disconnected (a kick). Icecast's `queue-size` rule
    /// (xiph/Icecast-Server `src/source.c` `send_to_listener`: "has fallen too far behind").
    QueueBytesDisconnect {
        /// Allowed lag in stream body bytes, at least 1.
        bytes: u64,
    },
    /// `fifo`: every frame in order, unbounded up to the hard cap (`LiveConfig::fifo_cap_bytes`),
    /// then disconnected: the negative control, its frame age grows without bound.
    Fifo,
}

/// A `--live-policy` text that is not a policy; names the text and the valid forms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a live policy: {why}; use latest, queue:N (frames), queue:BYTES:disconnect (like queue:512KiB:disconnect) or fifo")]
pub struct PolicyError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// `latest`, `queue:8`, `queue:512KiB:disconnect` (sizes as [`parse_bytes`]), `fifo`.
    fn from_str(text: &str) -> Result<Policy, PolicyError> {
        let error = |why: String| PolicyError {
            text: text.to_string(),
            why,
        };
        let parts: Vec<&str> = text.trim().split(':').collect();
        match parts.as_slice() {
            ["latest"] => Ok(Policy::Latest),
            ["fifo"] => Ok(Policy::Fifo),
            ["queue", frames] => match frames.parse::<usize>() {
                Ok(0) => Err(error("a queue holds at least 1 frame".into())),
                Ok(frames) => Ok(Policy::Queue { frames }),
                Err(_) => Err(error(format!("`{frames}` is not a number of frames"))),
            },
            ["queue", bytes, "disconnect"] => match parse_bytes(bytes) {
                Ok(0) => Err(error("the allowed lag is at least 1 byte".into())),
                Ok(bytes) => Ok(Policy::QueueBytesDisconnect { bytes }),
                Err(UnitError { expected, .. }) => {
                    Err(error(format!("`{bytes}` is not {expected}")))
                }
            },
            _ => Err(error("unknown form".into())),
        }
    }
}

impl fmt::Display for Policy {
    /// The form [`Policy::from_str`] reads back (`queue:524288:disconnect` in bytes).
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Latest => write!(out, "latest"),
            Policy::Queue { frames } => write!(out, "queue:{frames}"),
            Policy::QueueBytesDisconnect { bytes } => write!(out, "queue:{bytes}:disconnect"),
            Policy::Fifo => write!(out, "fifo"),
        }
    }
}

/// How many distinct frames exist now and at most, for one ring (`frames_alive_now/peak`).
/// Viewers hold frames by `Arc`, so a frame the ring let go stays alive while a viewer sends it.
#[derive(Debug, Default)]
pub struct FrameTally {
    alive: AtomicU64,
    peak: AtomicU64,
}

impl FrameTally {
    /// Frames built and not yet dropped.
    pub fn alive(&self) -> u64 {
        self.alive.load(Ordering::Relaxed)
    }

    /// The most frames alive at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn born(&self) {
        let now = self.alive.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

/// One frame (MJPEG part or CBR chunk) as sent on the wire, built once, shared by every viewer.
#[derive(Debug)]
pub struct Frame {
    /// Sequence number: the frame published at `epoch + seq * period`.
    pub seq: u64,
    /// Capture time, Unix microseconds (`X-Timestamp` in the part head).
    pub capture_unix_us: u64,
    /// Stream offset of the body's first byte, in body bytes (`seq * body length`): the unit of
    /// the `queue:BYTES:disconnect` lag and of the CBR words.
    pub stream_start: u64,
    /// Stream offset just past the body (`stream_start + body length`).
    pub stream_end: u64,
    /// All bytes of the frame; [`Frame::wire`] picks the range a connection sends.
    pub bytes: Box<[u8]>,
    /// The bytes of a close-delimited stream (MJPEG: the whole part; CBR: the raw chunk).
    pub plain: Range<usize>,
    /// The bytes of a `Transfer-Encoding: chunked` stream (RFC 9112 §7.1; MJPEG: the whole
    /// part, CBR: chunk-size line, data, CRLF).
    pub chunked: Range<usize>,
    tally: Option<Arc<FrameTally>>,
}

impl Frame {
    /// The bytes to send: the chunked framing for an HTTP/1.1 CBR response, else the plain one.
    pub fn wire(&self, chunked: bool) -> &[u8] {
        let range = if chunked { &self.chunked } else { &self.plain };
        &self.bytes[range.clone()]
    }

    fn counted(mut self, tally: &Arc<FrameTally>) -> Frame {
        tally.born();
        self.tally = Some(Arc::clone(tally));
        self
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if let Some(tally) = &self.tally {
            tally.alive.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The seed of frame `seq`'s body: SplitMix64's finaliser of `seq` (Steele, Lea, Flood 2014,
/// as in `java.util.SplittableRandom`), so neighbouring frames start at unrelated letters.
pub fn body_seed(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Body byte `index` of MJPEG frame `seq`: `BODY_ALPHABET[(body_seed(seq) % 62 + index) % 62]`.
/// A viewer checks a body in one pass against this.
pub fn body_byte(seq: u64, index: usize) -> u8 {
    let start = (body_seed(seq) % 62) as usize;
    BODY_ALPHABET[(start + index % 62) % 62]
}

/// Checks an MJPEG body of frame `seq` against [`body_byte`] in one pass: `Err(index)` of the
/// first byte that differs.
pub fn verify_body(seq: u64, body: &[u8]) -> Result<(), usize> {
    let start = (body_seed(seq) % 62) as usize;
    match body
        .iter()
        .enumerate()
        .position(|(index, byte)| *byte != BODY_ALPHABET[(start + index) % 62])
    {
        Some(index) => Err(index),
        None => Ok(()),
    }
}

/// MJPEG part `seq`: `--BOUNDARY CRLF`, the part head (`Content-Type: image/jpeg`,
/// `Content-Length`, `X-Frame-Seq`, `X-Timestamp: SECONDS.MICROS` of `capture_unix_us`), a blank
/// line, `frame_bytes` body bytes from [`body_byte`], CRLF. That CRLF and the next part's
/// `--BOUNDARY` form the RFC 2046 §5.1.1 delimiter, so a viewer may be moved to any later part
/// at a part boundary. Stream offsets count body bytes: `stream_start = seq * frame_bytes`.
pub fn build_frame(seq: u64, capture_unix_us: u64, frame_bytes: usize, boundary: &str) -> Frame {
    let head = format!(
        "--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {frame_bytes}\r\n\
         X-Frame-Seq: {seq}\r\nX-Timestamp: {}.{:06}\r\n\r\n",
        capture_unix_us / 1_000_000,
        capture_unix_us % 1_000_000
    );
    let mut bytes = Vec::with_capacity(head.len() + frame_bytes + 2);
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend((0..frame_bytes).map(|index| body_byte(seq, index)));
    bytes.extend_from_slice(b"\r\n");
    let whole = 0..bytes.len();
    Frame {
        seq,
        capture_unix_us,
        stream_start: seq * frame_bytes as u64,
        stream_end: (seq + 1) * frame_bytes as u64,
        bytes: bytes.into_boxed_slice(),
        plain: whole.clone(),
        chunked: whole,
        tally: None,
    }
}

/// CBR chunk `seq` of `chunk_bytes` (a multiple of 8) bytes starting at stream offset
/// `o0 = seq * chunk_bytes`: the 8-byte word at stream offset `o` is `o / 8` as a little-endian
/// u64, so a viewer finds gaps and knows each byte's capture time (`epoch + o / rate`). The
/// chunked form (RFC 9112 §7.1) is `HEX-SIZE CRLF data CRLF`.
pub fn build_cbr_chunk(seq: u64, capture_unix_us: u64, chunk_bytes: usize) -> Frame {
    assert!(
        chunk_bytes > 0 && chunk_bytes.is_multiple_of(8),
        "CBR chunks are whole 8-byte words"
    );
    let size_line = format!("{chunk_bytes:x}\r\n");
    let stream_start = seq * chunk_bytes as u64;
    let mut bytes = Vec::with_capacity(size_line.len() + chunk_bytes + 2);
    bytes.extend_from_slice(size_line.as_bytes());
    for word in 0..(chunk_bytes / 8) as u64 {
        bytes.extend_from_slice(&(stream_start / 8 + word).to_le_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    let data = size_line.len()..size_line.len() + chunk_bytes;
    Frame {
        seq,
        capture_unix_us,
        stream_start,
        stream_end: stream_start + chunk_bytes as u64,
        chunked: 0..bytes.len(),
        plain: data,
        bytes: bytes.into_boxed_slice(),
        tally: None,
    }
}

/// Where viewers find frames: one loop's [`FrameRing`], or a ring shared by threads.
pub trait FrameSource {
    /// The newest published frame, `None` before the first publication.
    fn newest(&self) -> Option<Arc<Frame>>;
    /// Frame `seq` if the ring still holds it.
    fn get(&self, seq: u64) -> Option<Arc<Frame>>;
    /// The oldest frame the ring holds, `None` when empty.
    fn oldest(&self) -> Option<Arc<Frame>>;
}

/// The frames of one stream in publication order, kept as long as the policy may still hand
/// them to a viewer: `latest` 1, `queue:N` N, `queue:BYTES:disconnect` the frames within
/// `max(BYTES, burst)` body bytes of the newest frame's end (Icecast frees buffers behind the
/// queue limit, `src/source.c`), `fifo` up to the hard cap in wire bytes. At least the newest.
#[derive(Debug)]
pub struct FrameRing {
    config: LiveConfig,
    epoch_unix_us: u64,
    frames: VecDeque<Arc<Frame>>,
    retained_bytes: u64,
    next_seq: u64,
    keep_frames: usize,
    keep_bytes: u64,
    tally: Arc<FrameTally>,
    published: u64,
    source_late: u64,
}

impl FrameRing {
    /// An empty ring for `config` whose frame 0 is captured at `epoch_unix_us`.
    pub fn new(config: LiveConfig, epoch_unix_us: u64) -> FrameRing {
        let body = config.body_bytes().max(1) as u64;
        let (keep_frames, keep_bytes) = match config.policy {
            Policy::Latest => (1, u64::MAX),
            Policy::Queue { frames } => (frames.max(1), u64::MAX),
            Policy::QueueBytesDisconnect { bytes } => {
                let lag = bytes.max(config.join_burst_bytes());
                (((lag / body).max(1)) as usize, u64::MAX)
            }
            Policy::Fifo => (usize::MAX, config.fifo_cap_bytes),
        };
        FrameRing {
            config,
            epoch_unix_us,
            frames: VecDeque::new(),
            retained_bytes: 0,
            next_seq: 0,
            keep_frames,
            keep_bytes,
            tally: Arc::default(),
            published: 0,
            source_late: 0,
        }
    }

    /// Publishes every frame due at `since_epoch` (frame `seq` is due at `seq * period`), in
    /// order, and returns how many it built. Frames that would fall out of the ring at once are
    /// not built. Counts `source_late` once when more than one frame was due (the caller was late).
    pub fn publish(&mut self, since_epoch: Duration) -> u64 {
        let due_end = since_epoch.as_micros() as u64 / self.config.period_us() + 1;
        if due_end <= self.next_seq {
            return 0;
        }
        if due_end - self.next_seq > 1 {
            self.source_late += 1;
        }
        let body = self.config.body_bytes().max(1) as u64;
        let most_kept = (self.keep_frames as u64).min((self.keep_bytes / body).max(1));
        self.next_seq = self.next_seq.max(due_end.saturating_sub(most_kept));
        let mut built = 0;
        while self.next_seq < due_end {
            let frame = self
                .config
                .frame(self.epoch_unix_us, self.next_seq)
                .counted(&self.tally);
            self.retained_bytes += frame.bytes.len() as u64;
            self.frames.push_back(Arc::new(frame));
            self.next_seq += 1;
            self.published += 1;
            built += 1;
            self.retain();
        }
        built
    }

    fn retain(&mut self) {
        while self.frames.len() > 1
            && (self.frames.len() > self.keep_frames || self.retained_bytes > self.keep_bytes)
        {
            if let Some(old) = self.frames.pop_front() {
                self.retained_bytes -= old.bytes.len() as u64;
            }
        }
    }

    /// When the next frame is due, as time since the epoch.
    pub fn next_due(&self) -> Duration {
        Duration::from_micros(self.next_seq * self.config.period_us())
    }

    /// Frames published so far (`frames_published`).
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Publications that found more than one frame due (`source_late`).
    pub fn source_late(&self) -> u64 {
        self.source_late
    }

    /// Frames the ring holds now.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing was published yet.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Wire bytes the ring holds now.
    pub fn retained_bytes(&self) -> u64 {
        self.retained_bytes
    }

    /// Distinct frames alive (ring plus those only viewers still hold), now and at peak.
    pub fn tally(&self) -> &FrameTally {
        &self.tally
    }

    /// The stream's settings.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }
}

impl FrameSource for FrameRing {
    fn newest(&self) -> Option<Arc<Frame>> {
        self.frames.back().cloned()
    }

    fn get(&self, seq: u64) -> Option<Arc<Frame>> {
        let oldest = self.frames.front()?.seq;
        let index = usize::try_from(seq.checked_sub(oldest)?).ok()?;
        self.frames.get(index).cloned()
    }

    fn oldest(&self) -> Option<Arc<Frame>> {
        self.frames.front().cloned()
    }
}

/// What one viewer was given, summed by the loop into the `--stats` live counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewerCounts {
    /// Frames whose every byte the kernel accepted.
    pub sent: u64,
    /// Bytes the kernel accepted.
    pub bytes_sent: u64,
    /// Frames passed over by `latest` (newer frame sent instead).
    pub skipped: u64,
    /// Frames that fell off the front of a `queue:N` backlog.
    pub dropped: u64,
    /// Disconnections for lag: `queue:BYTES:disconnect` over its bytes, `fifo` past its cap.
    pub kicks: u64,
    /// The subset of `kicks` by the `fifo` hard cap.
    pub fifo_cap_kicks: u64,
}

impl std::ops::AddAssign for ViewerCounts {
    /// Sums viewers (and loops) field by field, as the `--stats` counters add up.
    fn add_assign(&mut self, other: ViewerCounts) {
        self.sent += other.sent;
        self.bytes_sent += other.bytes_sent;
        self.skipped += other.skipped;
        self.dropped += other.dropped;
        self.kicks += other.kicks;
        self.fifo_cap_kicks += other.fifo_cap_kicks;
    }
}

/// Why a viewer is disconnected by the server (counted as a kick, not an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kick {
    /// More than the policy's bytes behind the newest frame (Icecast's "fallen too far behind").
    TooFarBehind,
    /// The next frame it needs fell out of the `fifo` ring (the hard cap).
    FifoCap,
}

/// The viewer's next move, answered to [`Viewer::next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Write [`Viewer::pending`] and report what the kernel took with [`Viewer::accepted`].
    Write,
    /// A frame is finished but the kernel holds at least the mark unsent: wait until writable.
    Drain,
    /// Nothing newer to send: wait for the next publication.
    AwaitFrame,
    /// Disconnect the viewer.
    Disconnect(Kick),
}

/// One viewer's place in the stream: the frame it is sending (a reference into the ring, never
/// a copy), its byte cursor, the last sequence number it finished, and its counts.
#[derive(Debug)]
pub struct Viewer {
    current: Option<Arc<Frame>>,
    cursor: usize,
    chunked: bool,
    last_seq: Option<u64>,
    stream_pos: Option<u64>,
    kicked: Option<Kick>,
    /// What this viewer was given so far.
    pub counts: ViewerCounts,
}

impl Viewer {
    /// A viewer that joined now; `chunked` when its response uses `Transfer-Encoding: chunked`.
    pub fn new(chunked: bool) -> Viewer {
        Viewer {
            current: None,
            cursor: 0,
            chunked,
            last_seq: None,
            stream_pos: None,
            kicked: None,
            counts: ViewerCounts::default(),
        }
    }

    /// The unsent rest of the current frame (empty when none).
    pub fn pending(&self) -> &[u8] {
        match &self.current {
            Some(frame) => &frame.wire(self.chunked)[self.cursor..],
            None => &[],
        }
    }

    /// The sequence number of the frame being sent, if any.
    pub fn current_seq(&self) -> Option<u64> {
        self.current.as_ref().map(|frame| frame.seq)
    }

    /// The last frame this viewer finished.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The kernel accepted `bytes` of [`Viewer::pending`]; a finished frame is let go.
    pub fn accepted(&mut self, bytes: usize) {
        let Some(frame) = &self.current else { return };
        let length = frame.wire(self.chunked).len();
        let taken = bytes.min(length - self.cursor);
        self.cursor += taken;
        self.counts.bytes_sent += taken as u64;
        if self.cursor == length {
            self.last_seq = Some(frame.seq);
            self.stream_pos = Some(frame.stream_end);
            self.counts.sent += 1;
            self.current = None;
            self.cursor = 0;
        }
    }

    /// Body bytes between this viewer's place (the start of the frame it sends, else the end of
    /// the last it finished) and the newest frame's end: its share of the queue (`queue_bytes`).
    pub fn lag_bytes(&self, source: &dyn FrameSource) -> u64 {
        let Some(newest) = source.newest() else {
            return 0;
        };
        let position = match (&self.current, self.stream_pos) {
            (Some(frame), _) => frame.stream_start,
            (None, Some(position)) => position,
            (None, None) => newest.stream_end,
        };
        newest.stream_end.saturating_sub(position)
    }

    /// The check at each publication (Icecast checks every listener on every source pass,
    /// `src/source.c`): `Some(kick)` when the viewer lags more than `queue:BYTES:disconnect`'s
    /// bytes, or when the next frame a `fifo` viewer needs fell out of the ring (the cap), so
    /// a stalled viewer is let go when the cap is reached, not only when it next writes. Other
    /// policies never kick here. Counts the kick once.
    pub fn on_publish(&mut self, policy: Policy, source: &dyn FrameSource) -> Option<Kick> {
        if let Some(kick) = self.kicked {
            return Some(kick);
        }
        match policy {
            Policy::QueueBytesDisconnect { bytes } if self.lag_bytes(source) > bytes => {
                Some(self.kick(Kick::TooFarBehind))
            }
            Policy::Fifo => {
                let wanted = match (&self.current, self.last_seq) {
                    (Some(frame), _) => frame.seq + 1,
                    (None, Some(last)) => last + 1,
                    (None, None) => return None,
                };
                if wanted < source.oldest()?.seq {
                    self.counts.fifo_cap_kicks += 1;
                    Some(self.kick(Kick::FifoCap))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// What to do now. `unsent_bytes` is what the kernel holds unsent for this socket
    /// (`SIOCOUTQNSD`), `mark` the `TCP_NOTSENT_LOWAT` in force (`None`: no mark, always ready).
    /// `join_burst_bytes` applies to the first pick only ([`LiveConfig::join_burst_bytes`]).
    /// A viewer is never counted a skip or drop for frames before its first.
    pub fn next(
        &mut self,
        policy: Policy,
        source: &dyn FrameSource,
        unsent_bytes: u64,
        mark: Option<u64>,
        join_burst_bytes: u64,
    ) -> Next {
        if let Some(kick) = self.kicked {
            return Next::Disconnect(kick);
        }
        if self.current.is_some() {
            return Next::Write;
        }
        if mark.is_some_and(|mark| unsent_bytes >= mark) {
            return Next::Drain;
        }
        if let Some(kick) = self.on_publish(policy, source) {
            return Next::Disconnect(kick);
        }
        let Some(newest) = source.newest() else {
            return Next::AwaitFrame;
        };
        let Some(last) = self.last_seq else {
            let first = if join_burst_bytes > 0 {
                self.burst_start(source, &newest, join_burst_bytes)
            } else {
                newest
            };
            return self.start(first);
        };
        if newest.seq <= last {
            return Next::AwaitFrame;
        }
        let wanted = last + 1;
        match policy {
            Policy::Latest => {
                self.counts.skipped += newest.seq - wanted;
                self.start(newest)
            }
            Policy::Queue { frames } => {
                let oldest = source.oldest().map_or(newest.seq, |frame| frame.seq);
                let floor = oldest.max((newest.seq + 1).saturating_sub(frames as u64));
                let take = wanted.max(floor);
                self.counts.dropped += take - wanted;
                match source.get(take) {
                    Some(frame) => self.start(frame),
                    None => self.start(newest),
                }
            }
            Policy::QueueBytesDisconnect { .. } => match source.get(wanted) {
                Some(frame) => self.start(frame),
                None => Next::Disconnect(self.kick(Kick::TooFarBehind)),
            },
            Policy::Fifo => match source.get(wanted) {
                Some(frame) => self.start(frame),
                None => {
                    self.counts.fifo_cap_kicks += 1;
                    Next::Disconnect(self.kick(Kick::FifoCap))
                }
            },
        }
    }

    /// The oldest held frame that starts within `burst` body bytes of the newest frame's end
    /// (Icecast's burst point, `src/source.c` and `find_client_start` in `src/format.c`).
    fn burst_start(&self, source: &dyn FrameSource, newest: &Arc<Frame>, burst: u64) -> Arc<Frame> {
        let oldest = source.oldest().map_or(newest.seq, |frame| frame.seq);
        (oldest..newest.seq)
            .filter_map(|seq| source.get(seq))
            .find(|frame| newest.stream_end - frame.stream_start <= burst)
            .unwrap_or_else(|| Arc::clone(newest))
    }

    fn start(&mut self, frame: Arc<Frame>) -> Next {
        self.current = Some(frame);
        self.cursor = 0;
        Next::Write
    }

    fn kick(&mut self, kick: Kick) -> Kick {
        if self.kicked.is_none() {
            self.counts.kicks += 1;
            self.kicked = Some(kick);
            self.current = None;
        }
        kick
    }
}

/// One server's live stream: its settings and its epoch, the instant frame 0 is due, taken once
/// before any design starts so that every loop, thread and forked worker publishes the same
/// frames at the same instants without talking to the others.
#[derive(Clone, Debug)]
pub struct LiveStream {
    /// The stream's settings (`--live*`).
    pub config: LiveConfig,
    /// When frame 0 was due, on the monotonic clock.
    pub epoch: Instant,
    /// The same instant as Unix microseconds (`X-Stream-Epoch`, frame capture times).
    pub epoch_unix_us: u64,
}

impl LiveStream {
    /// The stream of `config` whose frame 0 is due now.
    pub fn start(config: LiveConfig) -> LiveStream {
        let epoch_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as u64);
        LiveStream {
            config,
            epoch: Instant::now(),
            epoch_unix_us,
        }
    }

    /// An empty ring of this stream, for one loop (frames built on its first publication).
    pub fn ring(&self) -> FrameRing {
        FrameRing::new(self.config.clone(), self.epoch_unix_us)
    }

    /// Time since the epoch at `now` (zero before it), what [`FrameRing::publish`] takes.
    pub fn since_epoch(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    /// The instant frame `seq` is due (its capture time on the monotonic clock).
    pub fn due(&self, seq: u64) -> Instant {
        self.epoch + Duration::from_micros(seq * self.config.period_us())
    }

    /// The instant `ring`'s next frame is due: the latest a loop may sleep.
    pub fn next_publication(&self, ring: &FrameRing) -> Instant {
        self.instant_at(ring.next_due())
    }

    /// The instant `since_epoch` after the epoch (as [`FrameRing::next_due`] gives it).
    pub fn instant_at(&self, since_epoch: Duration) -> Instant {
        self.epoch + since_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mjpeg(policy: Policy, frame_bytes: usize) -> LiveConfig {
        LiveConfig {
            fps: 10.0,
            frame_bytes,
            policy,
            ..LiveConfig::new("/cam.mjpg")
        }
    }

    fn at_frame(seq: u64) -> Duration {
        Duration::from_millis(100 * seq)
    }

    /// Sends everything pending, as a viewer on a fast line.
    fn drain(viewer: &mut Viewer) {
        let length = viewer.pending().len();
        viewer.accepted(length);
    }

    #[test]
    fn frames_0_and_1_are_these_exact_bytes() {
        let zero = build_frame(0, 1_733_000_000_000_000, 8, BOUNDARY);
        assert_eq!(
            &*zero.bytes,
            &b"--afterburnerframe\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\
               X-Frame-Seq: 0\r\nX-Timestamp: 1733000000.000000\r\n\r\nvwxyz012\r\n"[..]
        );
        let one = build_frame(1, 1_733_000_000_250_000, 8, BOUNDARY);
        assert_eq!(
            &*one.bytes,
            &b"--afterburnerframe\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\
               X-Frame-Seq: 1\r\nX-Timestamp: 1733000000.250000\r\n\r\nz0123456\r\n"[..]
        );
        assert_eq!((one.stream_start, one.stream_end), (8, 16));
        assert_eq!(one.wire(true), one.wire(false));
        let config = LiveConfig::new("/cam.mjpg");
        assert_eq!(config.period_us(), 250_000);
        assert_eq!(
            config.frame(1_733_000_000_000_000, 1).bytes.len(),
            one.bytes.len() - 8 + 3072 + 3
        );
    }

    #[test]
    fn response_heads_are_these_exact_bytes() {
        let mjpeg = LiveConfig::new("/cam.mjpg");
        let head = "HTTP/1.1 200 OK\r\nServer: afterburner\r\n\
                    Content-Type: multipart/x-mixed-replace;boundary=afterburnerframe\r\n\
                    Cache-Control: no-store\r\nConnection: close\r\nX-Stream-Fps: 4\r\n\
                    X-Stream-Epoch: 1733000000.000000\r\n\r\n";
        assert_eq!(mjpeg.response_head(1_733_000_000_000_000, true), head);
        assert_eq!(mjpeg.response_head(1_733_000_000_000_000, false), head);
        let cbr = LiveConfig {
            format: Format::Cbr {
                bytes_per_second: 3000,
            },
            ..mjpeg
        };
        assert_eq!(
            cbr.response_head(1_733_000_000_500_000, true),
            "HTTP/1.1 200 OK\r\nServer: afterburner\r\nContent-Type: application/octet-stream\r\n\
             Cache-Control: no-store\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\
             X-Stream-Rate: 2976\r\nX-Stream-Epoch: 1733000000.500000\r\n\r\n"
        );
        assert!(!cbr.response_head(0, false).contains("chunked"));
    }

    #[test]
    fn impossible_settings_are_refused_saying_why() {
        assert_eq!(LiveConfig::new("/cam.mjpg").check(), Ok(()));
        let refused = |config: LiveConfig| config.check().unwrap_err().to_string();
        assert!(refused(LiveConfig::new("cam")).contains("`cam` must start with /"));
        for fps in [0.0, -1.0, f64::NAN, 1001.0] {
            let message = refused(LiveConfig {
                fps,
                ..LiveConfig::new("/c")
            });
            assert!(message.contains("fps is not in (0, 1000]"), "{message}");
        }
        let empty = LiveConfig {
            frame_bytes: 0,
            ..LiveConfig::new("/c")
        };
        assert!(refused(empty).contains("a frame of 0 bytes"));
        let trickle = LiveConfig {
            format: Format::Cbr {
                bytes_per_second: 31,
            },
            ..LiveConfig::new("/c")
        };
        assert!(refused(trickle).contains("31 bytes/s at 4 fps"));
    }

    #[test]
    fn bodies_never_hold_a_delimiter_and_wrap_the_alphabet() {
        let frame = build_frame(7, 0, 200, BOUNDARY);
        let body = &frame.bytes[frame.bytes.len() - 202..frame.bytes.len() - 2];
        assert!(body.iter().all(|byte| byte.is_ascii_alphanumeric()));
        assert_eq!(body[0], body[62]);
        assert_ne!(body[0], body[1]);
        assert_ne!(body_seed(0) % 62, body_seed(1) % 62);
        assert_eq!(verify_body(7, body), Ok(()));
        assert_eq!(verify_body(8, body), Err(0));
        let mut damaged = body.to_vec();
        damaged[150] = b'-';
        assert_eq!(verify_body(7, &damaged), Err(150));
    }

    #[test]
    fn cbr_chunks_encode_their_stream_offset_and_carry_chunk_framing() {
        let config = LiveConfig {
            fps: 4.0,
            format: Format::Cbr {
                bytes_per_second: 3000,
            },
            ..LiveConfig::new("/radio")
        };
        assert_eq!(config.body_bytes(), 744);
        let chunk = build_cbr_chunk(2, 5, 16);
        assert_eq!(
            chunk.wire(false),
            &[4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0][..]
        );
        let mut chunked = b"10\r\n".to_vec();
        chunked.extend_from_slice(chunk.wire(false));
        chunked.extend_from_slice(b"\r\n");
        assert_eq!(chunk.wire(true), &chunked[..]);
        assert_eq!((chunk.stream_start, chunk.stream_end), (32, 48));
    }

    #[test]
    fn policies_parse_print_and_refuse_naming_the_text() {
        for (text, policy) in [
            ("latest", Policy::Latest),
            ("fifo", Policy::Fifo),
            ("queue:8", Policy::Queue { frames: 8 }),
            (
                "queue:512KiB:disconnect",
                Policy::QueueBytesDisconnect { bytes: 524_288 },
            ),
        ] {
            assert_eq!(text.parse::<Policy>(), Ok(policy));
            assert_eq!(policy.to_string().parse::<Policy>(), Ok(policy));
        }
        for bad in [
            "newest",
            "queue:0",
            "queue:x",
            "queue:lots:disconnect",
            "queue:8:drop",
        ] {
            let message = bad.parse::<Policy>().unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("`{bad}` is not a live policy")),
                "{message}"
            );
        }
        let message = "queue:x".parse::<Policy>().unwrap_err().to_string();
        assert!(
            message.contains("`x` is not a number of frames"),
            "{message}"
        );
    }

    #[test]
    fn the_ring_publishes_on_schedule_and_keeps_what_the_policy_needs() {
        let mut ring = FrameRing::new(mjpeg(Policy::Queue { frames: 3 }, 100), 1_000_000);
        assert!(ring.newest().is_none());
        assert_eq!(ring.publish(Duration::ZERO), 1);
        assert_eq!(ring.publish(Duration::from_millis(99)), 0);
        assert_eq!(ring.next_due(), at_frame(1));
        assert_eq!(ring.publish(at_frame(4)), 3);
        assert_eq!(ring.source_late(), 1);
        assert_eq!(ring.published(), 4);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.oldest().map(|frame| frame.seq), Some(2));
        assert_eq!(
            ring.newest().map(|frame| frame.capture_unix_us),
            Some(1_400_000)
        );
        assert!(ring.get(1).is_none());
        assert_eq!(ring.get(3).map(|frame| frame.seq), Some(3));
        assert_eq!(ring.tally().alive(), 3);
        // A viewer holding frame 2 keeps it alive after the ring lets it go.
        let held = ring.get(2).unwrap();
        ring.publish(at_frame(5));
        assert_eq!((ring.len(), ring.tally().alive()), (3, 4));
        drop(held);
        assert_eq!(ring.tally().alive(), 3);
        // A loop that wakes far too late builds only what the ring would keep.
        assert_eq!(ring.publish(at_frame(100)), 3);
        assert_eq!(ring.published(), 8);
        assert_eq!(ring.tally().peak(), 4);

        let mut latest = FrameRing::new(mjpeg(Policy::Latest, 100), 0);
        latest.publish(at_frame(3));
        assert_eq!((latest.len(), latest.tally().alive()), (1, 1));

        let mut fifo = FrameRing::new(
            LiveConfig {
                fifo_cap_bytes: 1000,
                ..mjpeg(Policy::Fifo, 100)
            },
            0,
        );
        fifo.publish(at_frame(20));
        assert_eq!(fifo.published(), 10, "at most cap / body frames built");
        assert_eq!((fifo.len(), fifo.retained_bytes()), (4, 4 * 211));

        let bytes = FrameRing::new(mjpeg(Policy::QueueBytesDisconnect { bytes: 450 }, 100), 0);
        assert_eq!(bytes.keep_frames, 4);
    }

    #[test]
    fn latest_skips_to_the_newest_frame_once_the_kernel_drained_below_the_mark() {
        let policy = Policy::Latest;
        let mut ring = FrameRing::new(mjpeg(policy, 100), 0);
        let mut viewer = Viewer::new(false);
        assert_eq!(
            viewer.next(policy, &ring, 0, Some(4096), 0),
            Next::AwaitFrame
        );
        ring.publish(at_frame(2));
        assert_eq!(viewer.next(policy, &ring, 0, Some(4096), 0), Next::Write);
        assert_eq!(viewer.current_seq(), Some(2));
        viewer.accepted(50);
        // Mid-frame the viewer always finishes its frame, whatever was published.
        ring.publish(at_frame(3));
        assert_eq!(viewer.next(policy, &ring, 9999, Some(4096), 0), Next::Write);
        assert_eq!(viewer.current_seq(), Some(2));
        drain(&mut viewer);
        ring.publish(at_frame(7));
        assert_eq!(viewer.next(policy, &ring, 4096, Some(4096), 0), Next::Drain);
        assert_eq!(viewer.next(policy, &ring, 4095, Some(4096), 0), Next::Write);
        assert_eq!(viewer.current_seq(), Some(7));
        assert_eq!(viewer.counts.skipped, 4, "frames 3 to 6");
        drain(&mut viewer);
        assert_eq!(
            viewer.next(policy, &ring, 0, Some(4096), 0),
            Next::AwaitFrame
        );
        ring.publish(at_frame(8));
        assert_eq!(viewer.next(policy, &ring, 0, None, 0), Next::Write);
        drain(&mut viewer);
        assert_eq!(viewer.counts.skipped, 4);
        assert_eq!(viewer.counts.sent, 3);
        assert_eq!(viewer.counts.bytes_sent, 3 * 210);
        assert_eq!(viewer.counts.kicks, 0);
    }

    #[test]
    fn queue_sends_in_order_and_drops_the_oldest_beyond_n() {
        let policy = Policy::Queue { frames: 3 };
        let mut ring = FrameRing::new(mjpeg(policy, 100), 0);
        let mut viewer = Viewer::new(false);
        ring.publish(at_frame(0));
        assert_eq!(viewer.next(policy, &ring, 0, None, 0), Next::Write);
        drain(&mut viewer);
        ring.publish(at_frame(2));
        viewer.next(policy, &ring, 0, None, 0);
        assert_eq!(viewer.current_seq(), Some(1), "in order while within N");
        drain(&mut viewer);
        ring.publish(at_frame(8));
        viewer.next(policy, &ring, 0, None, 0);
        assert_eq!(viewer.current_seq(), Some(6), "6, 7, 8 kept");
        assert_eq!(viewer.counts.dropped, 4, "frames 2 to 5");
        drain(&mut viewer);
        viewer.next(policy, &ring, 0, None, 0);
        assert_eq!(viewer.current_seq(), Some(7));
        drain(&mut viewer);
        viewer.next(policy, &ring, 0, None, 0);
        drain(&mut viewer);
        assert_eq!(viewer.next(policy, &ring, 0, None, 0), Next::AwaitFrame);
        assert_eq!((viewer.counts.sent, viewer.counts.skipped), (5, 0));
        assert_eq!(viewer.counts.dropped, 4);
    }

    #[test]
    fn queue_bytes_disconnect_kicks_a_viewer_too_far_behind() {
        let policy = Policy::QueueBytesDisconnect { bytes: 450 };
        let mut ring = FrameRing::new(mjpeg(policy, 100), 0);
        let mut slow = Viewer::new(false);
        ring.publish(at_frame(0));
        assert_eq!(slow.next(policy, &ring, 0, None, 0), Next::Write);
        slow.accepted(10);
        // Sending frame 0 (stream 0..100): lag = newest end - 0.
        ring.publish(at_frame(3));
        assert_eq!(slow.lag_bytes(&ring), 400);
        assert_eq!(slow.on_publish(policy, &ring), None);
        ring.publish(at_frame(4));
        assert_eq!(slow.lag_bytes(&ring), 500);
        assert_eq!(slow.on_publish(policy, &ring), Some(Kick::TooFarBehind));
        assert_eq!(
            slow.next(policy, &ring, 0, None, 0),
            Next::Disconnect(Kick::TooFarBehind)
        );
        assert_eq!(slow.on_publish(policy, &ring), Some(Kick::TooFarBehind));
        assert_eq!((slow.counts.kicks, slow.counts.fifo_cap_kicks), (1, 0));
        assert!(slow.pending().is_empty());

        // A viewer keeping up gets every frame in order and is never kicked.
        let mut fast = Viewer::new(false);
        for seq in 5..12 {
            ring.publish(at_frame(seq));
            assert_eq!(fast.on_publish(policy, &ring), None);
            while fast.next(policy, &ring, 0, None, 0) == Next::Write {
                drain(&mut fast);
            }
        }
        assert_eq!((fast.counts.sent, fast.counts.kicks), (7, 0));
        assert_eq!(fast.last_seq(), Some(11));
    }

    #[test]
    fn cbr_joins_with_a_burst_of_recent_stream() {
        let policy = Policy::QueueBytesDisconnect { bytes: 400 };
        let config = LiveConfig {
            fps: 10.0,
            format: Format::Cbr {
                bytes_per_second: 1000,
            },
            policy,
            burst_bytes: 300,
            ..LiveConfig::new("/radio")
        };
        assert_eq!(config.body_bytes(), 96);
        let burst = config.join_burst_bytes();
        assert_eq!(burst, 300);
        assert_eq!(
            LiveConfig {
                policy: Policy::Latest,
                ..config.clone()
            }
            .join_burst_bytes(),
            0
        );
        let mut ring = FrameRing::new(config, 0);
        ring.publish(at_frame(9));
        let mut viewer = Viewer::new(true);
        assert_eq!(viewer.next(policy, &ring, 0, None, burst), Next::Write);
        // Newest chunk 9 ends at 960; chunk 7 starts at 672 (288 <= 300), chunk 6 at 576.
        assert_eq!(viewer.current_seq(), Some(7));
        assert_eq!(&viewer.pending()[..4], b"60\r\n");
        let mut seen = Vec::new();
        loop {
            match viewer.next(policy, &ring, 0, None, burst) {
                Next::Write => {
                    seen.push(viewer.current_seq().unwrap());
                    drain(&mut viewer);
                }
                other => {
                    assert_eq!(other, Next::AwaitFrame);
                    break;
                }
            }
        }
        assert_eq!(seen, [7, 8, 9]);
        assert_eq!(viewer.counts.bytes_sent, 3 * (4 + 96 + 2));
    }

    #[test]
    fn fifo_queues_everything_until_its_cap_then_kicks() {
        let policy = Policy::Fifo;
        let config = LiveConfig {
            fifo_cap_bytes: 212 * 5,
            ..mjpeg(policy, 100)
        };
        let mut ring = FrameRing::new(config, 0);
        let mut viewer = Viewer::new(false);
        ring.publish(at_frame(0));
        viewer.next(policy, &ring, 0, None, 0);
        drain(&mut viewer);
        ring.publish(at_frame(5));
        for expected in 1..=3 {
            assert_eq!(viewer.next(policy, &ring, 0, None, 0), Next::Write);
            assert_eq!(viewer.current_seq(), Some(expected), "no skips under fifo");
            drain(&mut viewer);
        }
        assert_eq!(viewer.lag_bytes(&ring), 200);
        assert_eq!(
            viewer.on_publish(policy, &ring),
            None,
            "fifo never kicks on lag"
        );
        ring.publish(at_frame(12));
        assert_eq!(ring.oldest().map(|frame| frame.seq), Some(8));
        assert_eq!(
            viewer.on_publish(policy, &ring),
            Some(Kick::FifoCap),
            "frame 4, the next it needs, is gone: kicked at the publication"
        );
        assert_eq!(
            viewer.next(policy, &ring, 0, None, 0),
            Next::Disconnect(Kick::FifoCap)
        );
        assert_eq!(viewer.counts.kicks, 1);
        assert_eq!(viewer.counts.fifo_cap_kicks, 1);
        assert_eq!(viewer.counts.sent, 4);
        assert_eq!((viewer.counts.skipped, viewer.counts.dropped), (0, 0));
        let mut total = ViewerCounts {
            skipped: 2,
            ..ViewerCounts::default()
        };
        total += viewer.counts;
        total += viewer.counts;
        assert_eq!((total.sent, total.kicks, total.skipped), (8, 2, 2));
        assert_eq!(total.bytes_sent, 2 * viewer.counts.bytes_sent);
    }

    #[derive(Clone, Debug)]
    enum Event {
        /// Time moves on by this many frame periods (0: none due).
        Publish(u64),
        /// The kernel takes this many bytes of what is pending.
        Accept(usize),
        /// The kernel now holds this many bytes unsent.
        Unsent(u64),
    }

    fn events() -> impl proptest::strategy::Strategy<Value = Vec<Event>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                (0u64..6).prop_map(Event::Publish),
                (0usize..400).prop_map(Event::Accept),
                (0u64..8000).prop_map(Event::Unsent),
            ],
            1..120,
        )
    }

    /// Plays `script` for one viewer and returns the sequence numbers it started, in order.
    fn play(policy: Policy, script: &[Event]) -> (Vec<u64>, Viewer, FrameRing) {
        let config = LiveConfig {
            fifo_cap_bytes: 2000,
            ..mjpeg(policy, 100)
        };
        let mut ring = FrameRing::new(config, 0);
        let mut viewer = Viewer::new(false);
        let (mut frames, mut unsent, mut started) = (0, 0, Vec::new());
        for event in script {
            match *event {
                Event::Publish(periods) => {
                    frames += periods;
                    ring.publish(at_frame(frames));
                    if viewer.on_publish(policy, &ring).is_some() {
                        break;
                    }
                }
                Event::Accept(bytes) => viewer.accepted(bytes),
                Event::Unsent(bytes) => unsent = bytes,
            }
            let before = viewer.current_seq();
            match viewer.next(policy, &ring, unsent, Some(4096), 0) {
                Next::Disconnect(_) => break,
                Next::Write if before.is_none() => started.extend(viewer.current_seq()),
                _ => {}
            }
        }
        (started, viewer, ring)
    }

    fn gaps(started: &[u64]) -> u64 {
        started.windows(2).map(|pair| pair[1] - pair[0] - 1).sum()
    }

    proptest::proptest! {
        #[test]
        fn every_gap_a_viewer_sees_is_counted_once_by_its_policy(script in events()) {
            for policy in [
                Policy::Latest,
                Policy::Queue { frames: 3 },
                Policy::QueueBytesDisconnect { bytes: 450 },
                Policy::Fifo,
            ] {
                let (started, viewer, ring) = play(policy, &script);
                proptest::prop_assert!(started.windows(2).all(|pair| pair[0] < pair[1]));
                let counts = viewer.counts;
                let held_outside_ring = viewer
                    .current_seq()
                    .is_some_and(|seq| ring.get(seq).is_none());
                proptest::prop_assert_eq!(
                    ring.tally().alive(),
                    ring.len() as u64 + u64::from(held_outside_ring)
                );
                match policy {
                    Policy::Latest => {
                        proptest::prop_assert_eq!(gaps(&started), counts.skipped);
                        proptest::prop_assert_eq!((counts.dropped, counts.kicks), (0, 0));
                    }
                    Policy::Queue { .. } => {
                        proptest::prop_assert_eq!(gaps(&started), counts.dropped);
                        proptest::prop_assert_eq!((counts.skipped, counts.kicks), (0, 0));
                    }
                    Policy::QueueBytesDisconnect { .. } | Policy::Fifo => {
                        proptest::prop_assert_eq!(gaps(&started), 0);
                        proptest::prop_assert_eq!((counts.skipped, counts.dropped), (0, 0));
                        proptest::prop_assert!(counts.kicks <= 1);
                    }
                }
            }
        }
    }
}
