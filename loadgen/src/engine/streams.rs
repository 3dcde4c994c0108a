//! Random streams named by what they drive, not by who runs them: each client, each slow-line
//! user and each open-loop arrival draws from a stream derived from the run's seed, its
//! population and its global index. A load split over one worker or several (or, later, several
//! generator hosts) therefore makes the same draws: the same think times, the same URLs, the
//! same arrival instants.

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

/// The index of a population's open-loop arrival schedule's own stream (the gaps between
/// arrivals); arrival `i` draws its URL from stream `i`, which never reaches this.
pub const SCHEDULE: u64 = u64::MAX;

/// The stream of thing `index` (a client, a user, an arrival) of population `population`.
pub fn stream(seed: u64, population: u16, index: u64) -> Pcg64Mcg {
    // SplitMix64 of each part in turn: neighbouring indices give unrelated seeds, which
    // Pcg64Mcg's own seeding would not guarantee for seeds that differ in one bit.
    let mixed = mix(mix(mix(seed) ^ u64::from(population)) ^ index);
    Pcg64Mcg::seed_from_u64(mixed)
}

/// SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_stream_is_named_by_seed_population_and_index() {
        let draw = |seed, pop, index| stream(seed, pop, index).gen::<u64>();
        assert_eq!(draw(1996, 0, 7), draw(1996, 0, 7));
        let others = [
            draw(1996, 0, 8),
            draw(1996, 1, 7),
            draw(1997, 0, 7),
            draw(1996, 0, SCHEDULE),
        ];
        assert!(others.iter().all(|&o| o != draw(1996, 0, 7)));
    }

    #[test]
    fn neighbouring_streams_are_unrelated() {
        // The first draws of 10,000 neighbouring streams look uniform: their mean is near 0.5.
        let n = 10_000;
        let mean = (0..n).map(|i| stream(1, 0, i).gen::<f64>()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }
}
