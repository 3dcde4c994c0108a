//! The slow-line model, free of sockets: a population's line profile as the workers use it,
//! each user's line as a token bucket, and the draws that shape a browsing session (line rate,
//! inline images per page, think and linger times). Pure functions of a seeded RNG, so their
//! distributions are tested without a network.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::scenario::{Count, ModemSpec};

/// How the round-trip time of a slow line is produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RttMode {
    /// The kernel delays the packets (netem on the veth pair between the clients' and the
    /// server's namespaces): TCP's own dynamics see the round trip.
    Netem,
    /// The packets cross a user-space delay line (two TUN devices and a relay thread between
    /// the namespaces) where the kernel has no netem: TCP still sees the round trip.
    TunRelay,
    /// The client waits: one round trip before the first request of a connection (the
    /// handshake) and one between sending a request and reading its reply.
    Application,
}

impl RttMode {
    /// The mode as `--rtt` spells it and `result.json` records it: `netem`, `tun-relay` or
    /// `application`.
    pub fn name(self) -> &'static str {
        match self {
            RttMode::Netem => "netem",
            RttMode::TunRelay => "tun-relay",
            RttMode::Application => "application",
        }
    }
}

/// A slow line's upstream as the request sees it: whole segments, each released once its last
/// byte has crossed the line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UploadPace {
    /// Payload bytes per second the upstream carries.
    pub bytes_per_s: f64,
    /// Bytes per segment (the MSS).
    pub segment: usize,
}

impl UploadPace {
    /// When the bytes `[0, sent_after)` of an upload begun at `began` have crossed the line.
    pub fn done_at(&self, began: Instant, sent_after: usize) -> Instant {
        began + Duration::from_secs_f64(sent_after as f64 / self.bytes_per_s)
    }

    /// How far into a `total`-byte request, `sent` bytes of which are out, the line has
    /// carried it by `now`: whole segments only.
    pub fn released(&self, began: Instant, sent: usize, total: usize, now: Instant) -> usize {
        let mut released = sent;
        while released < total {
            let next = (released + self.segment).min(total);
            if self.done_at(began, next) > now {
                break;
            }
            released = next;
        }
        released
    }

    /// When the segment after the first `sent` bytes will have crossed the line.
    pub fn next_segment_at(&self, began: Instant, sent: usize, total: usize) -> Instant {
        self.done_at(began, (sent + self.segment).min(total))
    }
}

/// A modem population as a worker runs it.
#[derive(Clone, Debug)]
pub struct LineProfile {
    /// The population as the scenario gives it.
    pub spec: ModemSpec,
    /// Downstream payload bytes per second per line rate, with cumulative shares for a draw.
    pub payload_rates: Vec<(f64, f64)>,
    /// The upstream, at its payload rate.
    pub upload: UploadPace,
    /// How the round trip is produced; decides [`LineProfile::application_rtt`].
    pub rtt_mode: RttMode,
}

impl LineProfile {
    /// The profile of `spec`: line rates (bit/s) turned into payload bytes per second, the
    /// framing's share (`mss / (mss + link_overhead_bytes)`) taken off.
    pub fn new(spec: &ModemSpec, rtt_mode: RttMode) -> LineProfile {
        let share = spec.payload_share();
        let mut running = 0.0;
        let payload_rates = spec
            .downstream_shares()
            .map(|(rate, user_share)| {
                running += user_share;
                (rate / 8.0 * share, running)
            })
            .collect();
        LineProfile {
            spec: spec.clone(),
            payload_rates,
            upload: UploadPace {
                bytes_per_s: spec.upstream_bps / 8.0 * share,
                segment: spec.mss as usize,
            },
            rtt_mode,
        }
    }

    /// A user's downstream payload rate, drawn from the mix.
    pub fn draw_payload_rate<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let index = self.draw_rate_index(rng);
        self.payload_rates
            .get(index)
            .map(|(rate, _)| *rate)
            .unwrap_or(1.0)
    }

    /// A user's downstream line rate, drawn from the mix: its index in the spec's
    /// `downstream` (and in `payload_rates`), so figures can be kept per line rate. The same
    /// draw as [`LineProfile::draw_payload_rate`] (one uniform number).
    pub fn draw_rate_index<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.gen();
        self.payload_rates
            .iter()
            .position(|(_, cumulative)| u < *cumulative)
            .unwrap_or(self.payload_rates.len().saturating_sub(1))
    }

    /// The delay the application adds where the kernel does not (zero under netem).
    pub fn application_rtt(&self) -> Duration {
        match self.rtt_mode {
            RttMode::Netem | RttMode::TunRelay => Duration::ZERO,
            RttMode::Application => self.spec.rtt,
        }
    }

    /// Bytes the line delivers in one read at most: one segment.
    pub fn read_quantum(&self) -> usize {
        self.spec.mss as usize
    }
}

/// Inline images of one page view.
pub fn draw_count<R: Rng + ?Sized>(count: &Count, rng: &mut R) -> u32 {
    match *count {
        Count::Constant { count } => count,
        Count::Uniform { min, max } => rng.gen_range(min..=max.max(min)),
        Count::Geometric { mean } => {
            if mean <= 0.0 {
                return 0;
            }
            // P(k) = (1-p)^k p with mean (1-p)/p: p = 1/(1+mean); inverse transform.
            let p = 1.0 / (1.0 + mean);
            let u: f64 = 1.0 - rng.gen::<f64>();
            (u.ln() / (1.0 - p).ln()).floor().min(10_000.0) as u32
        }
    }
}

/// One user's downstream line: bytes may be read at `rate` per second. The bucket holds at
/// most one segment, and starts empty when data reaches an idle line, so a reply's bytes are
/// delivered no faster than the line could carry them, and a line left idle by a slow server
/// does not bank time it never used.
#[derive(Clone, Copy, Debug)]
pub struct LineBucket {
    /// Payload bytes per second.
    pub rate: f32,
    tokens: f32,
    refilled_at: Instant,
    /// Seconds of line time used so far (bytes read / rate), for the slowdown figure.
    pub used_s: f64,
}

impl LineBucket {
    /// An empty bucket for a line of `rate` payload bytes per second, last refilled at `now`.
    pub fn new(rate: f64, now: Instant) -> LineBucket {
        LineBucket {
            rate: rate as f32,
            tokens: 0.0,
            refilled_at: now,
            used_s: 0.0,
        }
    }

    /// Adds the tokens earned since the last refill, up to `cap` bytes.
    pub fn refill(&mut self, now: Instant, cap: usize) {
        let earned = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f32()
            * self.rate;
        self.tokens = (self.tokens + earned).min(cap as f32);
        self.refilled_at = now;
    }

    /// Data reached an idle line: nothing is banked.
    pub fn restart(&mut self, now: Instant) {
        self.tokens = 0.0;
        self.refilled_at = now;
    }

    /// Whole bytes that may be read now.
    pub fn available(&self) -> usize {
        self.tokens.max(0.0) as usize
    }

    /// Takes `bytes` just read off the line: the tokens go (below zero if more was read than
    /// available) and `used_s` grows by `bytes / rate`.
    pub fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f32;
        self.used_s += bytes as f64 / f64::from(self.rate);
    }

    /// How long until `bytes` may be read (zero if they may be now).
    pub fn wait_for(&self, bytes: usize) -> Duration {
        let missing = bytes as f32 - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f32(missing / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::RateShare;
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn spec() -> ModemSpec {
        let text = r#"
            [[clients]]
            name = "modem"
            kind = "modem"
            clients = 1
        "#;
        let scenario =
            crate::scenario::Scenario::parse(text, std::path::Path::new("t.toml")).unwrap();
        match &scenario.clients[0] {
            crate::scenario::Population::Modem(spec) => (**spec).clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_give_the_payload_rate_of_a_56k_line() {
        let profile = LineProfile::new(&spec(), RttMode::Application);
        // 53,300 bit/s = 6,662.5 B/s, of which 536/584 is payload: 6,115 B/s.
        let rate = profile.draw_payload_rate(&mut Pcg64Mcg::seed_from_u64(1));
        assert!((rate - 6115.0).abs() < 1.0, "{rate}");
        assert!((profile.upload.bytes_per_s - 3854.8).abs() < 1.0);
        assert_eq!(profile.upload.segment, 536);
        assert_eq!(profile.application_rtt(), Duration::from_millis(150));
        let netem = LineProfile::new(&spec(), RttMode::Netem);
        assert_eq!(netem.application_rtt(), Duration::ZERO);
    }

    #[test]
    fn line_rates_are_drawn_with_their_weights() {
        let mut spec = spec();
        spec.downstream = vec![
            RateShare {
                rate: 28_800.0,
                weight: 1.0,
            },
            RateShare {
                rate: 33_600.0,
                weight: 1.0,
            },
            RateShare {
                rate: 53_300.0,
                weight: 2.0,
            },
        ];
        let profile = LineProfile::new(&spec, RttMode::Application);
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        let n = 100_000;
        let fastest = (0..n)
            .filter(|_| profile.draw_payload_rate(&mut rng) > 5000.0)
            .count() as f64
            / n as f64;
        assert!((fastest - 0.5).abs() < 0.01, "{fastest}");
        let expected_mean = (28_800.0 + 33_600.0 + 2.0 * 53_300.0) / 4.0 / 8.0 * (536.0 / 584.0);
        assert!((spec.mean_payload_bytes_per_s() - expected_mean).abs() < 1e-6);
    }

    #[test]
    fn image_counts_follow_their_distributions() {
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        let n = 200_000;
        let mean_of = |count: Count, rng: &mut Pcg64Mcg| {
            (0..n).map(|_| draw_count(&count, rng) as f64).sum::<f64>() / n as f64
        };
        let uniform = Count::Uniform { min: 2, max: 6 };
        let draws: Vec<u32> = (0..n).map(|_| draw_count(&uniform, &mut rng)).collect();
        assert!(draws.iter().all(|d| (2..=6).contains(d)));
        for k in 2..=6 {
            let share = draws.iter().filter(|&&d| d == k).count() as f64 / n as f64;
            assert!((share - 0.2).abs() < 0.01, "P({k}) = {share}");
        }
        let geometric = Count::Geometric { mean: 3.0 };
        let mean = mean_of(geometric, &mut rng);
        assert!((mean - 3.0).abs() < 0.05, "geometric mean {mean}");
        // P(0) = p = 1/(1+mean) = 0.25.
        let zeros = (0..n)
            .filter(|_| draw_count(&geometric, &mut rng) == 0)
            .count() as f64
            / n as f64;
        assert!((zeros - 0.25).abs() < 0.01, "P(0) = {zeros}");
        assert_eq!(mean_of(Count::Constant { count: 4 }, &mut rng), 4.0);
        assert_eq!(draw_count(&Count::Geometric { mean: 0.0 }, &mut rng), 0);
    }

    #[test]
    fn an_upload_leaves_in_whole_segments_at_the_line_rate() {
        let t0 = Instant::now();
        let pace = UploadPace {
            bytes_per_s: 1000.0,
            segment: 100,
        };
        let ms = Duration::from_millis;
        assert_eq!(pace.released(t0, 0, 250, t0 + ms(99)), 0);
        assert_eq!(pace.released(t0, 0, 250, t0 + ms(100)), 100);
        assert_eq!(pace.released(t0, 100, 250, t0 + ms(240)), 200);
        // The short last segment leaves when its own last byte has crossed.
        assert_eq!(pace.released(t0, 200, 250, t0 + ms(250)), 250);
        assert_eq!(pace.next_segment_at(t0, 200, 250), t0 + ms(250));
        assert_eq!(pace.next_segment_at(t0, 0, 250), t0 + ms(100));
    }

    #[test]
    fn the_bucket_meters_bytes_at_the_line_rate() {
        let t0 = Instant::now();
        let mut bucket = LineBucket::new(6000.0, t0);
        assert_eq!(bucket.available(), 0);
        let wait = bucket.wait_for(600).as_secs_f64();
        assert!((wait - 0.1).abs() < 1e-6, "{wait}");
        bucket.refill(t0 + Duration::from_millis(100), 536);
        // 600 bytes earned, capped at one segment.
        assert_eq!(bucket.available(), 536);
        bucket.spend(536);
        assert!((bucket.used_s - 536.0 / 6000.0).abs() < 1e-9);
        bucket.refill(t0 + Duration::from_millis(150), 536);
        assert_eq!(bucket.available(), 300);
        bucket.restart(t0 + Duration::from_secs(5));
        assert_eq!(bucket.available(), 0);
        // Over a long run the bytes read match the rate: 10 s of reading segment by segment.
        let mut bucket = LineBucket::new(6000.0, t0);
        let mut now = t0;
        let mut read = 0;
        while now < t0 + Duration::from_secs(10) {
            now += bucket.wait_for(536);
            bucket.refill(now, 536);
            let n = bucket.available();
            bucket.spend(n);
            read += n;
        }
        assert!((read as f64 - 60_000.0).abs() < 600.0, "{read}");
    }
}
