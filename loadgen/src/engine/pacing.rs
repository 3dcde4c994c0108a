//! When requests happen: open-loop arrival schedules and closed-loop think times. Pure
//! functions of a seeded RNG, so their distributions are tested without sockets.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::scenario::{Arrival, Think};

/// The due times of an open population's requests, fixed in advance of the server's behaviour:
/// a slow reply never delays the next arrival (that would be coordinated omission).
#[derive(Clone, Debug)]
pub struct ArrivalSchedule {
    next_due: Instant,
    mean_gap_s: f64,
    arrival: Arrival,
    /// Accumulated gaps in seconds from `origin`, so rounding never drifts the rate.
    elapsed_s: f64,
    origin: Instant,
    /// The number of the arrival `next_due` is for: 0 for the first.
    index: u64,
}

impl ArrivalSchedule {
    /// `rate_per_s` arrivals per second from `origin`, gaps drawn as `arrival` says; the first
    /// arrival is one gap after `origin`, not at it.
    pub fn new<R: Rng + ?Sized>(
        origin: Instant,
        rate_per_s: f64,
        arrival: Arrival,
        rng: &mut R,
    ) -> Self {
        let mut schedule = ArrivalSchedule {
            next_due: origin,
            mean_gap_s: 1.0 / rate_per_s,
            arrival,
            elapsed_s: 0.0,
            origin,
            index: 0,
        };
        // The first arrival is one gap in, like every other.
        schedule.step(rng);
        schedule
    }

    /// The number of the arrival [`ArrivalSchedule::next_due`] is for, counting from 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Moves to the next arrival whose number is `offset` modulo `stride`: the share of one
    /// of `stride` workers taking turns over one schedule (every arrival when `stride` is 1).
    /// Call it once after `new` to reach the worker's first.
    pub fn advance_to_own<R: Rng + ?Sized>(&mut self, stride: u32, offset: u32, rng: &mut R) {
        while self.index % u64::from(stride.max(1)) != u64::from(offset) {
            self.advance(rng);
        }
    }

    /// When the next arrival is due; it stays due until [`ArrivalSchedule::advance`].
    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// Moves to the following arrival.
    pub fn advance<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        self.index += 1;
        self.step(rng);
    }

    fn step<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let gap_s = match self.arrival {
            Arrival::Uniform => self.mean_gap_s,
            // Inverse transform of an exponential; 1-u is in (0, 1], so ln is finite.
            Arrival::Poisson => -(1.0 - rng.gen::<f64>()).ln() * self.mean_gap_s,
        };
        self.elapsed_s += gap_s;
        self.next_due = self.origin + Duration::from_secs_f64(self.elapsed_s);
    }
}

/// One think time drawn from the population's distribution.
pub fn think_time<R: Rng + ?Sized>(think: &Think, rng: &mut R) -> Duration {
    match *think {
        Think::None => Duration::ZERO,
        Think::Constant { time } => time,
        Think::Exponential { mean } => mean.mul_f64(-(1.0 - rng.gen::<f64>()).ln()),
        Think::Uniform { min, max } => {
            if max <= min {
                min
            } else {
                min + (max - min).mul_f64(rng.gen::<f64>())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn arrivals_in(seconds: f64, rate: f64, arrival: Arrival, seed: u64) -> Vec<f64> {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let t0 = Instant::now();
        let mut schedule = ArrivalSchedule::new(t0, rate, arrival, &mut rng);
        let mut times = Vec::new();
        while schedule.next_due().duration_since(t0).as_secs_f64() < seconds {
            times.push(schedule.next_due().duration_since(t0).as_secs_f64());
            schedule.advance(&mut rng);
        }
        times
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced_at_the_rate() {
        let times = arrivals_in(10.0, 1000.0, Arrival::Uniform, 1);
        assert!((times.len() as i64 - 10_000).abs() <= 1, "{}", times.len());
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 0.001).abs() < 1e-6);
        }
    }

    #[test]
    fn poisson_arrivals_have_the_rate_and_exponential_gaps() {
        let times = arrivals_in(100.0, 1000.0, Arrival::Poisson, 7);
        // 100,000 expected; Poisson sd ~316, allow 4 sd.
        assert!(
            (times.len() as f64 - 100_000.0).abs() < 1300.0,
            "{}",
            times.len()
        );
        let gaps: Vec<f64> = times.windows(2).map(|p| p[1] - p[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.001).abs() < 0.00002, "mean gap {mean}");
        // Exponential: P(gap > mean) = e^-1 = 0.368.
        let above = gaps.iter().filter(|&&g| g > 0.001).count() as f64 / gaps.len() as f64;
        assert!(
            (above - (-1f64).exp()).abs() < 0.01,
            "share above mean {above}"
        );
    }

    /// The arrivals each of `workers` takes from one schedule, as (number, seconds from t0).
    fn dealt(seconds: f64, rate: f64, arrival: Arrival, workers: u32) -> Vec<(u64, f64)> {
        let t0 = Instant::now();
        let mut all = Vec::new();
        for offset in 0..workers {
            let mut rng = Pcg64Mcg::seed_from_u64(42);
            let mut schedule = ArrivalSchedule::new(t0, rate, arrival, &mut rng);
            schedule.advance_to_own(workers, offset, &mut rng);
            while schedule.next_due().duration_since(t0).as_secs_f64() < seconds {
                let at = schedule.next_due().duration_since(t0).as_secs_f64();
                all.push((schedule.index(), at));
                schedule.advance(&mut rng);
                schedule.advance_to_own(workers, offset, &mut rng);
            }
        }
        all.sort_by_key(|a| a.0);
        all
    }

    #[test]
    fn workers_taking_turns_make_exactly_the_one_schedule() {
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let one = dealt(2.0, 1000.0, arrival, 1);
            assert_eq!(dealt(2.0, 1000.0, arrival, 3), one, "{arrival:?}");
        }
    }

    #[test]
    fn uniform_arrivals_of_several_workers_interleave_evenly() {
        // Two workers at 1000/s together: one arrival every millisecond, never two at once.
        let times: Vec<f64> = dealt(1.0, 1000.0, Arrival::Uniform, 2)
            .into_iter()
            .map(|(_, at)| at)
            .collect();
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 0.001).abs() < 1e-6, "{pair:?}");
        }
    }

    #[test]
    fn think_times_follow_their_distributions() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let n = 200_000;
        let ms = Duration::from_millis;
        let exp = Think::Exponential { mean: ms(100) };
        let mean_s = (0..n)
            .map(|_| think_time(&exp, &mut rng).as_secs_f64())
            .sum::<f64>()
            / n as f64;
        assert!((mean_s - 0.1).abs() < 0.002, "exponential mean {mean_s}");
        let uni = Think::Uniform {
            min: ms(10),
            max: ms(30),
        };
        let draws: Vec<Duration> = (0..n).map(|_| think_time(&uni, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d >= ms(10) && *d <= ms(30)));
        let mean_s = draws.iter().map(|d| d.as_secs_f64()).sum::<f64>() / n as f64;
        assert!((mean_s - 0.02).abs() < 0.0002, "uniform mean {mean_s}");
        assert_eq!(
            think_time(&Think::Constant { time: ms(5) }, &mut rng),
            ms(5)
        );
        assert_eq!(think_time(&Think::None, &mut rng), Duration::ZERO);
    }
}
