//! The live source of the blocking designs: one [`FrameRing`] shared by every connection thread
//! of `threads` (and, after fork, one per worker process of `prefork`), published lazily: there
//! is no publishing thread; whichever viewer first needs a frame that is due builds it, under
//! the ring's write lock, and every later reader takes the same `Arc<Frame>`.
//!
//! Frames are a pure function of (epoch, period, seq) ([`LiveConfig::frame`]), so two rings with
//! the same epoch hold byte-identical frames: `prefork`'s worker processes each build their own
//! copy (inherited empty at fork, the parent never publishes) and still agree on every byte.
//!
//! Lazy publication builds a frame only when a viewer looks: frames due while nobody watched
//! are never built. So the designs report `frames_published` from the clock
//! ([`SharedRing::frames_due`]: every frame due since the epoch, as the `loop` publishes them),
//! and `source_late` counts only publications that were late for a viewer waiting on them (see
//! [`SharedRing::begin_wait`]), never the catch-up after an idle spell.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::live::{Frame, FrameRing, FrameSource, LiveConfig, LiveStream};
use crate::stats::LiveCounters;

/// What a ring counted since the last [`SharedRing::take_counts`]: the deltas a worker adds to
/// its own counters before publishing them to the shared totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounts {
    /// Publications that found more than one frame due while a viewer waited (`source_late`).
    pub source_late: u64,
    /// Finished per-frame spreads in microseconds (`spread_log2_us` samples): for each frame a
    /// viewer waited for, publication (its due instant) to the last waiting viewer's first byte.
    pub spreads_us: SpreadSamples,
}

/// At most [`SpreadSamples::CAPACITY`] spread samples, inline (no allocation on the hot path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpreadSamples {
    len: usize,
    samples: [u64; SpreadSamples::CAPACITY],
}

impl SpreadSamples {
    /// Samples held before older ones are dropped: frames finish one per period and a worker
    /// takes them at least once per frame it sends, so more than a few never pile up.
    pub const CAPACITY: usize = 8;

    fn push(&mut self, sample: u64) {
        if self.len < Self::CAPACITY {
            self.samples[self.len] = sample;
            self.len += 1;
        }
    }

    /// The samples, in microseconds.
    pub fn as_slice(&self) -> &[u64] {
        &self.samples[..self.len]
    }
}

/// The spread of the frame viewers are being served now: the largest dispatch delay seen for it.
#[derive(Debug, Default)]
struct Spread {
    /// (seq, largest dispatch delay in µs) of the frame being dispatched.
    open: Option<(u64, u64)>,
    /// Spreads of frames whose dispatch is over, not taken yet.
    done: SpreadSamples,
}

/// Counts not yet taken by [`SharedRing::take_counts`].
#[derive(Debug, Default)]
struct Pending {
    source_late: u64,
    spread: Spread,
}

/// A [`FrameRing`] behind a read-write lock, published lazily on access (see the module doc).
/// Readers of frames that are already published share the read lock; only a publication takes
/// the write lock, once per period.
#[derive(Debug)]
pub struct SharedRing {
    ring: RwLock<FrameRing>,
    /// Frame 0's due instant.
    epoch: Instant,
    period_us: u64,
    /// The first frame not yet built, as a sequence number: a reader that sees the current frame
    /// not due yet (`(now - epoch) / period < next_seq`) skips the write lock.
    next_seq: AtomicU64,
    /// Viewers between [`SharedRing::begin_wait`] and [`SharedRing::end_wait`].
    waiting: AtomicUsize,
    pending: Mutex<Pending>,
}

impl SharedRing {
    /// An empty ring for `config` whose frame 0 is due at `epoch` (monotonic) and captured at
    /// `epoch_unix_us` (Unix microseconds): the pair the server takes once at start, so that
    /// threads, processes and loops agree on every frame.
    pub fn new(config: LiveConfig, epoch: Instant, epoch_unix_us: u64) -> SharedRing {
        let period_us = config.period_us();
        let ring = FrameRing::new(config, epoch_unix_us);
        SharedRing {
            ring: RwLock::new(ring),
            epoch,
            period_us,
            next_seq: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            pending: Mutex::default(),
        }
    }

    /// An empty ring of the server's live `stream` (its settings and epoch).
    pub fn for_stream(stream: &LiveStream) -> SharedRing {
        SharedRing::new(stream.config.clone(), stream.epoch, stream.epoch_unix_us)
    }

    /// Puts what the design reports for the stream itself into `live` at `now`:
    /// `frames_published` from the clock ([`SharedRing::frames_due`]), and, when `shared` (one
    /// ring read by every thread, whose workers report no frames alive), this ring's frames
    /// alive now and at peak, added to the gauges.
    pub fn report_into(&self, live: &mut LiveCounters, now: Instant, shared: bool) {
        live.frames_published = live.frames_published.max(self.frames_due(now));
        if shared {
            let (alive, peak) = self.frames_alive();
            live.gauges.frames_alive_now += alive;
            live.gauges.frames_alive_peak += peak;
        }
    }

    /// The stream's settings.
    pub fn config(&self) -> LiveConfig {
        self.read().config().clone()
    }

    /// The publication period.
    pub fn period(&self) -> Duration {
        Duration::from_micros(self.period_us)
    }

    /// The sequence number of the newest frame due at `now` (frame 0 is due at the epoch; an
    /// instant before it counts as the epoch).
    pub fn due_seq(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64 / self.period_us
    }

    /// The instant frame `seq` is due (its publication instant).
    pub fn due_at(&self, seq: u64) -> Instant {
        self.epoch + Duration::from_micros(seq.saturating_mul(self.period_us))
    }

    /// The next publication after `now`: (its sequence number, its instant). A viewer that
    /// answered "await a frame" sleeps until then.
    pub fn next_publication(&self, now: Instant) -> (u64, Instant) {
        let seq = self.due_seq(now) + 1;
        (seq, self.due_at(seq))
    }

    /// The first frame not built yet: (its sequence number, its due instant). A viewer that
    /// found nothing newer to send sleeps until then: its read of the ring built every frame
    /// due at that moment, so this is the frame it waits for, even if that frame came due in
    /// the meantime (then the wait is zero; [`SharedRing::next_publication`] of a later
    /// instant would skip it).
    pub fn next_unbuilt(&self) -> (u64, Instant) {
        let seq = self.next_seq.load(Ordering::Acquire);
        (seq, self.due_at(seq))
    }

    /// Publishes every frame due at `now` that is not built yet (building only those the
    /// policy's ring would keep). Returns how many it built. Called by every read, so nobody
    /// needs to call it, but a waiter woken for a frame may, to build it before taking a lock
    /// to read it.
    pub fn publish_due(&self, now: Instant) -> u64 {
        let due_end = self.due_seq(now) + 1;
        if due_end <= self.next_seq.load(Ordering::Acquire) {
            return 0;
        }
        let mut ring = self.ring.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have published while this one waited for the lock.
        let before = ring.next_due().as_micros() as u64 / self.period_us;
        if due_end <= before {
            return 0;
        }
        let built = ring.publish(now.saturating_duration_since(self.epoch));
        self.next_seq.store(due_end, Ordering::Release);
        drop(ring);
        // Late only for someone: a viewer waiting for frame `before` wakes at its due instant and
        // builds it alone; finding a second one due means it (or the scheduler) was a period late.
        if due_end - before > 1 && self.waiting.load(Ordering::Relaxed) > 0 {
            self.pending().source_late += 1;
        }
        built
    }

    /// A viewer starts waiting for the next publication: its publication counts for
    /// `source_late` while anyone waits. Pair with [`SharedRing::end_wait`].
    pub fn begin_wait(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// The viewer that called [`SharedRing::begin_wait`] woke and was served.
    pub fn end_wait(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// A viewer waiting for frame `seq` got its first byte out `delay` after the frame's
    /// publication (dispatch delay). Keeps the largest delay per frame: the frame's spread,
    /// finished when a delay for a later frame comes in.
    pub fn record_dispatch(&self, seq: u64, delay: Duration) {
        let delay_us = delay.as_micros().min(u64::MAX as u128) as u64;
        let mut pending = self.pending();
        let spread = &mut pending.spread;
        match spread.open {
            Some((open, ref mut most)) if open == seq => *most = (*most).max(delay_us),
            Some((open, most)) if open < seq => {
                spread.done.push(most);
                spread.open = Some((seq, delay_us));
            }
            // A delay for an older frame than the open one (a viewer that woke very late): its
            // frame's spread was already finished; it still counts as a dispatch delay.
            Some(_) => {}
            None => spread.open = Some((seq, delay_us)),
        }
    }

    /// Counts since the last call (each count goes to exactly one caller): late
    /// publications, finished spreads.
    pub fn take_counts(&self) -> RingCounts {
        let mut pending = self.pending();
        RingCounts {
            source_late: std::mem::take(&mut pending.source_late),
            spreads_us: std::mem::take(&mut pending.spread.done),
        }
    }

    /// Frames built so far (lazily: only frames someone read; see the module doc).
    pub fn built(&self) -> u64 {
        self.read().published()
    }

    /// Frames due by `now` since the epoch, `seq` 0 included: the `frames_published` of the
    /// stream as its clock publishes it, which the `loop` (publishing every period) reports, and
    /// what viewers' sent plus skipped frames add up to.
    pub fn frames_due(&self, now: Instant) -> u64 {
        self.due_seq(now) + 1
    }

    /// Distinct frames alive now and at peak (the ring's plus those only viewers still hold):
    /// `frames_alive_now` and `frames_alive_peak` of this ring.
    pub fn frames_alive(&self) -> (u64, u64) {
        let ring = self.read();
        (ring.tally().alive(), ring.tally().peak())
    }

    fn read(&self) -> RwLockReadGuard<'_, FrameRing> {
        self.ring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ring after publishing what is due now.
    fn current(&self) -> RwLockReadGuard<'_, FrameRing> {
        self.publish_due(Instant::now());
        self.read()
    }
}

impl FrameSource for SharedRing {
    fn newest(&self) -> Option<Arc<Frame>> {
        self.current().newest()
    }

    fn get(&self, seq: u64) -> Option<Arc<Frame>> {
        self.current().get(seq)
    }

    fn oldest(&self) -> Option<Arc<Frame>> {
        self.current().oldest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{verify_body, Policy};

    fn config(fps: f64, policy: Policy) -> LiveConfig {
        let mut config = LiveConfig::new("/cam.mjpg");
        config.fps = fps;
        config.frame_bytes = 64;
        config.policy = policy;
        config
    }

    fn body(frame: &Frame) -> &[u8] {
        let bytes = frame.wire(false);
        let start = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        &bytes[start..bytes.len() - 2]
    }

    #[test]
    fn a_frame_is_built_by_the_first_reader_after_it_is_due_and_not_before() {
        let epoch = Instant::now();
        let ring = SharedRing::new(config(10.0, Policy::Latest), epoch, 1_000_000);
        assert_eq!(ring.publish_due(epoch), 1, "frame 0 is due at the epoch");
        assert_eq!(ring.publish_due(epoch + Duration::from_millis(99)), 0);
        assert_eq!(ring.read().newest().map(|f| f.seq), Some(0));
        assert_eq!(
            ring.next_unbuilt(),
            (1, epoch + Duration::from_millis(100)),
            "frame 1, even once it is due, until someone builds it"
        );
        assert_eq!(ring.publish_due(epoch + Duration::from_millis(100)), 1);
        assert_eq!(ring.next_unbuilt().0, 2);
        assert_eq!(
            ring.next_publication(epoch + Duration::from_millis(150)).0,
            2
        );
        assert_eq!(
            ring.next_publication(epoch + Duration::from_millis(150)).1,
            epoch + Duration::from_millis(200)
        );
        assert_eq!(ring.built(), 2);
        assert_eq!(ring.frames_due(epoch + Duration::from_millis(150)), 2);
        assert_eq!(ring.take_counts().source_late, 0, "nobody waited");
    }

    #[test]
    fn frames_due_while_nobody_watched_are_not_built_nor_counted_late() {
        let epoch = Instant::now();
        let ring = SharedRing::new(config(10.0, Policy::Latest), epoch, 0);
        assert_eq!(ring.publish_due(epoch + Duration::from_secs(5)), 1);
        assert_eq!(ring.take_counts().source_late, 0);
        ring.begin_wait();
        assert_eq!(ring.publish_due(epoch + Duration::from_millis(5_250)), 1);
        ring.end_wait();
        let counts = ring.take_counts();
        assert_eq!(
            counts.source_late, 1,
            "frames 51 and 52 were due for a waiter"
        );
        assert_eq!(ring.take_counts().source_late, 0, "taken once");
        assert_eq!(ring.built(), 2, "frames 50 and 52, under `latest`");
    }

    #[test]
    fn two_rings_with_one_epoch_hold_the_same_bytes() {
        let epoch = Instant::now();
        let one = SharedRing::new(config(10.0, Policy::Queue { frames: 4 }), epoch, 7_000_000);
        let two = SharedRing::new(config(10.0, Policy::Queue { frames: 4 }), epoch, 7_000_000);
        one.publish_due(epoch + Duration::from_millis(350));
        two.publish_due(epoch + Duration::from_millis(150));
        two.publish_due(epoch + Duration::from_millis(350));
        for seq in 0..4 {
            let (a, b) = (one.read().get(seq).unwrap(), two.read().get(seq).unwrap());
            assert_eq!(a.bytes, b.bytes, "frame {seq}");
        }
    }

    #[test]
    fn spreads_keep_the_largest_delay_per_frame() {
        let ring = SharedRing::new(config(10.0, Policy::Latest), Instant::now(), 0);
        ring.record_dispatch(3, Duration::from_micros(40));
        ring.record_dispatch(3, Duration::from_micros(900));
        ring.record_dispatch(3, Duration::from_micros(70));
        assert_eq!(ring.take_counts().spreads_us.as_slice(), &[] as &[u64]);
        ring.record_dispatch(4, Duration::from_micros(10));
        ring.record_dispatch(2, Duration::from_micros(5_000));
        assert_eq!(ring.take_counts().spreads_us.as_slice(), &[900]);
        ring.record_dispatch(6, Duration::from_micros(1));
        assert_eq!(ring.take_counts().spreads_us.as_slice(), &[10]);
    }

    /// Eight threads read the ring as fast as they can for 300 ms at 50 fps: every frame any of
    /// them sees is whole and correct, each thread sees sequence numbers only grow, and every
    /// frame was built exactly once (the ring keeps 16 frames, 320 ms, so none is skipped).
    #[test]
    fn concurrent_readers_see_each_frame_once_built_in_order_and_whole() {
        let epoch = Instant::now();
        let ring = SharedRing::new(config(50.0, Policy::Queue { frames: 16 }), epoch, 0);
        let seen: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let readers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let mut seen = Vec::new();
                        let mut last = None;
                        while epoch.elapsed() < Duration::from_millis(300) {
                            let frame = ring.newest().expect("frame 0 is due at once");
                            assert!(last <= Some(frame.seq), "went back to {}", frame.seq);
                            verify_body(frame.seq, body(&frame)).unwrap();
                            if last != Some(frame.seq) {
                                seen.push(frame.seq);
                                last = Some(frame.seq);
                            }
                            if let Some(older) = frame.seq.checked_sub(1).and_then(|s| ring.get(s))
                            {
                                assert_eq!(older.seq + 1, frame.seq);
                            }
                        }
                        seen
                    })
                })
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let built = ring.built();
        let newest = ring.read().newest().unwrap().seq;
        assert_eq!(
            built,
            newest + 1,
            "every frame built exactly once while readers read"
        );
        assert!(newest >= 10, "300 ms at 50 fps, got {newest}");
        let mut all: Vec<u64> = seen.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        // A reader's last `get` may build one frame after its last `newest`.
        let contiguous: Vec<u64> = (0..all.len() as u64).collect();
        assert_eq!(all, contiguous, "the readers saw every frame in turn");
        assert!(
            newest + 1 - all.len() as u64 <= 1,
            "saw {} of {}",
            all.len(),
            newest + 1
        );
        let (alive, peak) = ring.frames_alive();
        assert!(alive <= 16, "only the ring holds frames now, {alive}");
        assert!(peak <= 16 + 2 * 8, "frames alive stay bounded, peak {peak}");
    }
}
