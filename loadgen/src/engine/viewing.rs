//! What one live-stream viewer saw, as pure per-viewer state fed with arrival events: the
//! time-averaged age of information ([`AgeIntegral`]), freezes by the W3C webrtc-stats rule
//! ([`FreezeDetector`]), a constant-bitrate player's buffer ([`PlayoutBuffer`]), frames skipped
//! from sequence gaps ([`SkipCounter`]) and the frame rate the viewer's line allows
//! ([`line_bound_fps`]). Times are `f64` seconds on one clock the caller chooses (Unix time for
//! capture times from `X-Timestamp`), except where a unit is named.

use std::collections::VecDeque;

/// The time-averaged age of information of one viewer over a measured window.
///
/// Age at time `t` is `t - u(t)`, `u(t)` the capture time of the newest frame received by `t`
/// (Kaul, Yates and Gruteser, "Real-time status: How often should one update?", IEEE INFOCOM
/// 2012; as restated in Yates et al., arXiv:2007.08564). Between arrivals `r_k` and `r_{k+1}`
/// the age grows linearly from `r_k - g_k`, so each segment's area is
/// `((b - g_k)^2 - (a - g_k)^2) / 2` over `[a, b)`, clipped to the window. Before the first
/// frame the age is undefined: that time (the startup delay) is not covered.
#[derive(Clone, Debug)]
pub struct AgeIntegral {
    window_start: f64,
    window_end: f64,
    /// The newest frame so far: (arrival, capture time), seconds.
    newest: Option<(f64, f64)>,
    area: f64,
    covered: f64,
    finished: bool,
}

impl AgeIntegral {
    /// An integral over the window `[window_start, window_end)`, seconds.
    pub fn new(window_start: f64, window_end: f64) -> AgeIntegral {
        AgeIntegral {
            window_start,
            window_end,
            newest: None,
            area: 0.0,
            covered: 0.0,
            finished: false,
        }
    }

    /// A frame captured at `captured` arrived at `arrived` (seconds; arrivals in order). A
    /// frame older than the newest so far changes nothing: the viewer shows the newest.
    pub fn on_frame(&mut self, arrived: f64, captured: f64) {
        debug_assert!(!self.finished, "a frame after finish");
        let captured = match self.newest {
            Some((_, newest)) if newest >= captured => newest,
            _ => captured,
        };
        self.close_segment(arrived);
        self.newest = Some((arrived, captured));
    }

    /// The viewer left (or the measurement ended) at `end`, seconds: the last segment is
    /// closed there (or at the window's end, whichever is first). Call once.
    pub fn finish(&mut self, end: f64) {
        if !self.finished {
            self.close_segment(end);
            self.finished = true;
        }
    }

    fn close_segment(&mut self, until: f64) {
        let Some((since, captured)) = self.newest else {
            return;
        };
        let a = since.max(self.window_start);
        let b = until.min(self.window_end);
        if a < b {
            self.area += ((b - captured).powi(2) - (a - captured).powi(2)) / 2.0;
            self.covered += b - a;
        }
    }

    /// The area under the age curve inside the window so far, seconds squared (to pool a
    /// population as sum of areas over sum of covered times).
    pub fn area(&self) -> f64 {
        self.area
    }

    /// Time inside the window with a frame on screen so far, seconds.
    pub fn covered(&self) -> f64 {
        self.covered
    }

    /// The time-averaged age, seconds: area over covered time; `None` when no frame was on
    /// screen inside the window.
    pub fn time_average(&self) -> Option<f64> {
        (self.covered > 0.0).then(|| self.area / self.covered)
    }
}

/// Intervals the freeze rule averages over (webrtc-stats `freezeCount`: "last 30 rendered
/// frames"; libwebrtc `video_quality_observer2.cc`'s window).
pub const FREEZE_WINDOW: usize = 30;
/// Intervals needed (the current one included) before a freeze can be called
/// (libwebrtc's `kMinFrameSamplesToDetectFreeze`).
pub const FREEZE_MIN_SAMPLES: usize = 5;
/// The least a freeze exceeds the average interval by, milliseconds (libwebrtc's
/// `kMinIncreaseForFreezeMs`, the spec's `avg_frame_duration_ms + 150`).
pub const FREEZE_MIN_INCREASE_MS: u64 = 150;

/// Freezes by the W3C webrtc-stats rule (`RTCInboundRtpStreamStats.freezeCount`,
/// <https://w3c.github.io/webrtc-stats/#dom-rtcinboundrtpstreamstats-freezecount>): "It is a
/// freeze if frame duration, which is time interval between two consecutively rendered frames,
/// is equal or exceeds Max(3 * avg_frame_duration_ms, avg_frame_duration_ms + 150), where
/// avg_frame_duration_ms is linear average of durations of last 30 rendered frames."
/// As libwebrtc does it: the current interval joins the average first, the average is rounded
/// down to whole milliseconds, and no verdict is given before [`FREEZE_MIN_SAMPLES`] intervals.
/// A frame counts as rendered when its part is complete.
#[derive(Clone, Debug, Default)]
pub struct FreezeDetector {
    intervals: VecDeque<u64>,
    sum_ms: u64,
    last_frame_ms: Option<u64>,
    /// Freezes so far (`freezeCount`).
    pub freezes: u64,
    /// The intervals that were freezes, summed, milliseconds (`totalFreezesDuration`).
    pub freeze_ms: u64,
}

impl FreezeDetector {
    /// A detector before any frame.
    pub fn new() -> FreezeDetector {
        FreezeDetector::default()
    }

    /// A frame was rendered at `at_ms` (milliseconds on any steady clock); returns whether the
    /// interval since the previous frame was a freeze.
    pub fn on_frame(&mut self, at_ms: u64) -> bool {
        let previous = self.last_frame_ms.replace(at_ms);
        previous.is_some_and(|previous| self.on_interval(at_ms.saturating_sub(previous)))
    }

    /// The interval between two consecutively rendered frames, milliseconds; returns whether
    /// it was a freeze.
    pub fn on_interval(&mut self, interval_ms: u64) -> bool {
        self.intervals.push_back(interval_ms);
        self.sum_ms += interval_ms;
        if self.intervals.len() > FREEZE_WINDOW {
            self.sum_ms -= self.intervals.pop_front().unwrap_or_default();
        }
        if self.intervals.len() < FREEZE_MIN_SAMPLES {
            return false;
        }
        let average = self.sum_ms / self.intervals.len() as u64;
        let threshold = (3 * average).max(average + FREEZE_MIN_INCREASE_MS);
        let freeze = interval_ms >= threshold;
        if freeze {
            self.freezes += 1;
            self.freeze_ms += interval_ms;
        }
        freeze
    }
}

/// Where a [`PlayoutBuffer`]'s player stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayoutState {
    /// Filling the buffer before playback first starts.
    Initial,
    /// Playing media out of the buffer.
    Playing,
    /// The buffer ran dry; refilling up to the resume threshold.
    Stalled,
}

/// A constant-bitrate player's buffer with start and resume thresholds (the two-threshold model
/// of Ameigeiras et al., "A Simple Model for Predicting the Number and Duration of Rebuffering
/// Events for YouTube Flows", IEEE Comm. Letters 16(2), 2012), exact and event-driven: playback
/// starts once the buffer holds `start_s` of media, and after a stall resumes once it holds
/// `resume_s`. Playing drains one media second per second. Times are seconds.
#[derive(Clone, Debug)]
pub struct PlayoutBuffer {
    rate_bytes_per_s: f64,
    start_s: f64,
    resume_s: f64,
    state: PlayoutState,
    /// Media in the buffer, seconds.
    buffered_s: f64,
    joined: f64,
    last: f64,
    stall_began: f64,
    initial_buffering_s: Option<f64>,
    /// Stalls so far (the buffer ran dry while playing).
    pub stalls: u64,
    /// Time spent stalled so far, seconds (initial buffering excluded).
    pub stall_s: f64,
    /// Time spent playing so far, seconds.
    pub play_s: f64,
}

impl PlayoutBuffer {
    /// A player joined at `joined` (seconds) to a stream of `rate_bytes_per_s` (`X-Stream-Rate`)
    /// with start and resume thresholds in media seconds (defaults in the plan: 2 and 1, a
    /// choice rather than a citation).
    pub fn new(rate_bytes_per_s: f64, start_s: f64, resume_s: f64, joined: f64) -> PlayoutBuffer {
        PlayoutBuffer {
            rate_bytes_per_s,
            start_s,
            resume_s,
            state: PlayoutState::Initial,
            buffered_s: 0.0,
            joined,
            last: joined,
            stall_began: joined,
            initial_buffering_s: None,
            stalls: 0,
            stall_s: 0.0,
            play_s: 0.0,
        }
    }

    /// `bytes` of media arrived at `at` (seconds, in order).
    pub fn on_bytes(&mut self, at: f64, bytes: u64) {
        self.drain_until(at);
        self.buffered_s += bytes as f64 / self.rate_bytes_per_s;
        match self.state {
            PlayoutState::Initial if self.buffered_s >= self.start_s => {
                self.state = PlayoutState::Playing;
                self.initial_buffering_s = Some(at - self.joined);
            }
            PlayoutState::Stalled if self.buffered_s >= self.resume_s => {
                self.stall_s += at - self.stall_began;
                self.state = PlayoutState::Playing;
            }
            _ => {}
        }
    }

    /// The viewer left (or the measurement ended) at `end`: plays out what it can and closes
    /// an open stall there. Call once, last.
    pub fn finish(&mut self, end: f64) {
        self.drain_until(end);
        if self.state == PlayoutState::Stalled {
            self.stall_s += end - self.stall_began;
            self.stall_began = end;
        }
    }

    fn drain_until(&mut self, at: f64) {
        let elapsed = (at - self.last).max(0.0);
        if self.state == PlayoutState::Playing {
            let played = self.buffered_s.min(elapsed);
            self.play_s += played;
            if self.buffered_s < elapsed {
                self.stalls += 1;
                self.stall_began = self.last + self.buffered_s;
                self.state = PlayoutState::Stalled;
            }
            self.buffered_s -= played;
        }
        self.last = self.last.max(at);
    }

    /// Where the player stands.
    pub fn state(&self) -> PlayoutState {
        self.state
    }

    /// Media in the buffer after the last event, seconds.
    pub fn buffered_s(&self) -> f64 {
        self.buffered_s
    }

    /// From joining to the start of playback, seconds; `None`: it never started.
    pub fn initial_buffering_s(&self) -> Option<f64> {
        self.initial_buffering_s
    }

    /// Stalled time over stalled plus playing time (initial buffering excluded); `None`
    /// before any of either.
    pub fn stall_ratio(&self) -> Option<f64> {
        let total = self.stall_s + self.play_s;
        (total > 0.0).then(|| self.stall_s / total)
    }
}

/// What a part's sequence number said about the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqVerdict {
    /// The viewer's first frame.
    First,
    /// The one after the last.
    Next,
    /// This many frames were skipped before it (`seq - last - 1`).
    Gap(u64),
    /// The same as the last.
    Duplicate,
    /// Older than the last: the server sent frames out of order.
    OutOfOrder,
}

/// Frames a viewer missed, from the `X-Frame-Seq` of the frames it got: a gap of
/// `seq - last - 1` after the first frame (issue 17 research section 2.2). Duplicates and
/// older frames are counted apart and do not move the last sequence number.
#[derive(Clone, Debug, Default)]
pub struct SkipCounter {
    last: Option<u64>,
    /// Frames received (every verdict but duplicates and out-of-order ones).
    pub frames: u64,
    /// Frames skipped over all gaps.
    pub skipped: u64,
    /// Gaps seen.
    pub gaps: u64,
    /// Frames repeating the last sequence number.
    pub duplicates: u64,
    /// Frames older than the last.
    pub out_of_order: u64,
}

impl SkipCounter {
    /// A counter before any frame.
    pub fn new() -> SkipCounter {
        SkipCounter::default()
    }

    /// The last in-order sequence number; `None` before the first frame.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// A frame with sequence number `seq` arrived.
    pub fn on_seq(&mut self, seq: u64) -> SeqVerdict {
        let verdict = match self.last {
            None => SeqVerdict::First,
            Some(last) if seq == last => SeqVerdict::Duplicate,
            Some(last) if seq < last => SeqVerdict::OutOfOrder,
            Some(last) if seq == last + 1 => SeqVerdict::Next,
            Some(last) => SeqVerdict::Gap(seq - last - 1),
        };
        match verdict {
            SeqVerdict::Duplicate => self.duplicates += 1,
            SeqVerdict::OutOfOrder => self.out_of_order += 1,
            SeqVerdict::Gap(skipped) => {
                self.gaps += 1;
                self.skipped += skipped;
            }
            SeqVerdict::First | SeqVerdict::Next => {}
        }
        if !matches!(verdict, SeqVerdict::Duplicate | SeqVerdict::OutOfOrder) {
            self.frames += 1;
            self.last = Some(seq);
        }
        verdict
    }
}

/// The frame rate a line can carry, frames/s: the source's rate, or fewer when the line's
/// payload rate (bytes/s, after its framing overhead, as
/// [`LineProfile::draw_payload_rate`](crate::engine::modem::LineProfile::draw_payload_rate)
/// gives it) cannot carry `wire_bytes_per_frame` (the part's head, body and delimiter) that
/// often: `min(source_fps, payload_rate / wire_bytes_per_frame)` (issue 17 research
/// section 2.2). A viewer's efficiency is its achieved fps over this.
pub fn line_bound_fps(source_fps: f64, payload_bytes_per_s: f64, wire_bytes_per_frame: u64) -> f64 {
    if wire_bytes_per_frame == 0 {
        return source_fps;
    }
    source_fps.min(payload_bytes_per_s / wire_bytes_per_frame as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_age_integral_is_the_sawtooth_area_clipped_to_the_window() {
        // Window [1, 10); frames (arrival, capture): (0, -0.5), (2, 1.5), (5, 3); leaves at 12.
        // [1, 2) at g = -0.5: (2.5^2 - 1.5^2)/2 = 2; [2, 5) at 1.5: (3.5^2 - 0.5^2)/2 = 6;
        // [5, 10) at 3: (7^2 - 2^2)/2 = 22.5. Area 30.5 over 9 s.
        let mut age = AgeIntegral::new(1.0, 10.0);
        assert_eq!(age.time_average(), None);
        age.on_frame(0.0, -0.5);
        age.on_frame(2.0, 1.5);
        age.on_frame(5.0, 3.0);
        age.finish(12.0);
        assert!(close(age.area(), 30.5), "{}", age.area());
        assert!(close(age.covered(), 9.0));
        assert!(close(age.time_average().unwrap(), 30.5 / 9.0));
        // The first frame inside the window: the time before it is not covered; leaving early
        // closes the last segment at the leave. [4, 6) at 3.5: (2.5^2 - 0.5^2)/2 = 3.
        let mut age = AgeIntegral::new(1.0, 10.0);
        age.on_frame(4.0, 3.5);
        age.on_frame(5.0, 2.0); // older than what is on screen: the age keeps growing
        age.finish(6.0);
        assert!(close(age.area(), 3.0), "{}", age.area());
        assert!(close(age.covered(), 2.0));
        // Everything after the window: nothing covered.
        let mut age = AgeIntegral::new(1.0, 10.0);
        age.on_frame(11.0, 10.5);
        age.finish(12.0);
        assert_eq!(age.time_average(), None);
    }

    #[test]
    fn the_freeze_rule_follows_webrtc_stats_and_libwebrtc() {
        // 29 x 250 then 800: average (7250 + 800)/30 = 268 (rounded down), threshold 804.
        let mut detector = FreezeDetector::new();
        for _ in 0..29 {
            assert!(!detector.on_interval(250));
        }
        assert!(!detector.on_interval(800));
        // 29 x 250 then 900: average 271, threshold 813: a freeze.
        let mut detector = FreezeDetector::new();
        for _ in 0..29 {
            detector.on_interval(250);
        }
        assert!(detector.on_interval(900));
        assert_eq!((detector.freezes, detector.freeze_ms), (1, 900));
        // Steady 4 fps: the current interval joins the average first, so 803 ms is judged
        // against (7250 + 803)/30 = 268, threshold 804; 804 itself ("equal or exceeds", average
        // still 268) is a freeze.
        let mut steady = FreezeDetector::new();
        for _ in 0..30 {
            steady.on_interval(250);
        }
        let mut at_threshold = steady.clone();
        assert!(!steady.on_interval(803));
        assert!(at_threshold.on_interval(804));
        // No verdict before five intervals, the current one included.
        let mut detector = FreezeDetector::new();
        for _ in 0..3 {
            detector.on_interval(250);
        }
        assert!(!detector.on_interval(5_000), "the fourth interval");
        let mut detector = FreezeDetector::new();
        for _ in 0..4 {
            detector.on_interval(250);
        }
        // The fifth: average 6000/5 = 1200, threshold 3600.
        assert!(detector.on_interval(5_000));
        // The window holds 30: a long-gone slow interval no longer raises the average.
        let mut detector = FreezeDetector::new();
        detector.on_interval(10_000);
        for _ in 0..30 {
            detector.on_interval(250);
        }
        assert!(detector.on_interval(900));
        // Timestamps: intervals between consecutive frames.
        let mut detector = FreezeDetector::new();
        let mut at = 1_000;
        assert!(!detector.on_frame(at));
        for _ in 0..10 {
            at += 1_000;
            assert!(!detector.on_frame(at));
        }
        // 1 fps: average (10 x 1000 + 3000)/11 = 1181, threshold 3543: 3000 is no freeze.
        assert!(!detector.on_frame(at + 3_000));
    }

    #[test]
    fn the_playout_buffer_starts_stalls_and_resumes_as_worked_by_hand() {
        // 1000 B/s, start 2 s, resume 1 s: 2000 B at 0 start playback at once; it plays 0..2,
        // runs dry at 2, 500 B at 5 leave it at 0.5 s (< 1), 600 B at 5.4 make 1.1 s: resume.
        let mut player = PlayoutBuffer::new(1000.0, 2.0, 1.0, 0.0);
        player.on_bytes(0.0, 2000);
        assert_eq!(player.state(), PlayoutState::Playing);
        assert_eq!(player.initial_buffering_s(), Some(0.0));
        player.on_bytes(5.0, 500);
        assert_eq!(player.state(), PlayoutState::Stalled);
        assert_eq!(player.stalls, 1);
        player.on_bytes(5.4, 600);
        assert_eq!(player.state(), PlayoutState::Playing);
        assert!(close(player.stall_s, 3.4), "{}", player.stall_s);
        assert!(close(player.buffered_s(), 1.1));
        // Ends at 6: 0.6 s more played, 0.5 s left.
        player.finish(6.0);
        assert!(close(player.play_s, 2.6), "{}", player.play_s);
        assert!(close(player.stall_ratio().unwrap(), 3.4 / 6.0));
        assert_eq!(player.stalls, 1);
    }

    #[test]
    fn the_playout_buffer_reports_initial_buffering_and_an_open_stall() {
        let mut player = PlayoutBuffer::new(1000.0, 2.0, 1.0, 10.0);
        player.on_bytes(10.5, 1500);
        assert_eq!(player.state(), PlayoutState::Initial);
        player.on_bytes(11.5, 600);
        assert_eq!(player.initial_buffering_s(), Some(1.5));
        // 2.1 s buffered at 11.5: dry at 13.6, still stalled at the end (15).
        player.finish(15.0);
        assert_eq!((player.state(), player.stalls), (PlayoutState::Stalled, 1));
        assert!(close(player.stall_s, 1.4), "{}", player.stall_s);
        assert!(close(player.play_s, 2.1));
        let mut never = PlayoutBuffer::new(1000.0, 2.0, 1.0, 0.0);
        never.on_bytes(1.0, 100);
        never.finish(9.0);
        assert_eq!(never.initial_buffering_s(), None);
        assert_eq!(never.stall_ratio(), None);
    }

    #[test]
    fn skips_are_counted_from_sequence_gaps() {
        let mut counter = SkipCounter::new();
        let verdicts: Vec<SeqVerdict> = [100, 101, 104, 104, 102, 105, 110]
            .into_iter()
            .map(|seq| counter.on_seq(seq))
            .collect();
        assert_eq!(
            verdicts,
            [
                SeqVerdict::First,
                SeqVerdict::Next,
                SeqVerdict::Gap(2),
                SeqVerdict::Duplicate,
                SeqVerdict::OutOfOrder,
                SeqVerdict::Next,
                SeqVerdict::Gap(4),
            ]
        );
        assert_eq!(
            (
                counter.frames,
                counter.skipped,
                counter.gaps,
                counter.duplicates,
                counter.out_of_order
            ),
            (5, 6, 2, 1, 1)
        );
        assert_eq!(counter.last(), Some(110));
        // Frames seen plus frames skipped span the sequence range.
        assert_eq!(counter.frames + counter.skipped, 110 - 100 + 1);
    }

    #[test]
    fn line_bound_fps_matches_the_modem_mix_figures() {
        // Payload = rate/8 x 536/584 (MSS 536, 48 bytes of framing), 3,192 wire bytes a frame,
        // a 4 fps source (issue 17 research, "Expected on the modem mix").
        let fps = |bits_per_s: f64| {
            let payload = bits_per_s / 8.0 * 536.0 / 584.0;
            line_bound_fps(4.0, payload, 3192)
        };
        let rounded = |x: f64| (x * 100.0).round() / 100.0;
        assert!(close(28_800.0 / 8.0 * 536.0 / 584.0, 3304.109589041096));
        assert_eq!(rounded(fps(28_800.0)), 1.04);
        assert_eq!(rounded(fps(33_600.0)), 1.21);
        assert_eq!(rounded(fps(44_000.0)), 1.58);
        assert_eq!(rounded(fps(53_300.0)), 1.92);
        // A LAN carries the source's rate.
        assert_eq!(line_bound_fps(4.0, 12_500_000.0, 3192), 4.0);
        assert_eq!(line_bound_fps(4.0, 1000.0, 0), 4.0);
    }
}
