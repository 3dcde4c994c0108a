//! The model of `loadgen check` (`check.json`), CI's regression verdict between a baseline and a
//! candidate server, and the pure statistics it rests on: the relative change of each metric
//! with a distribution-free confidence interval, and the verdict (improved, regressed, unchanged,
//! inconclusive) that follows from it and the metric's threshold.
//!
//! The statistics. Interleaved rounds (A B, B A, A B, ...) are paired: the change is estimated
//! from the per-round log ratios ln(candidate / baseline) by the Hodges–Lehmann estimator (the
//! median of the Walsh averages) with the exact Wilcoxon signed-rank confidence interval
//! (Hollander, Wolfe and Chicken, "Nonparametric Statistical Methods", 3rd ed., section 3.2).
//! Against a saved baseline, which shares no rounds with the candidate, the two samples are
//! unpaired: Hodges–Lehmann shift of the log values with the exact Mann–Whitney interval
//! (section 4.3 there). Both are rank methods: one round hit by a neighbour's cron job moves
//! them by one rank, not by its size, which is what a shared, noisy machine needs; and both are
//! exact for any number of rounds (no normal approximation), so a run with too few rounds gets
//! no interval rather than a wrong one.
//!
//! Early stopping looks at the data at round `min_rounds`, then every `look_every` rounds, and at
//! `max_rounds`. Each look is taken at the Bonferroni-corrected level
//! `1 - (1 - confidence) / looks`, so that the chance of a false verdict over all looks stays
//! within `1 - confidence` (a conservative stand-in for Pocock's group-sequential boundary:
//! Pocock, "Group sequential methods in the design and analysis of clinical trials", Biometrika
//! 1977). Few looks keep each look's interval narrow: on the machine this was tuned on, looking
//! after every one of 11 rounds (99.5 % each) missed one 10 % slowdown in ten, three looks
//! (98.3 % each) none.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{read_document, write_json_atomically, ResultFileError};

/// The shape of `check.json`; what this build writes and reads.
pub const CHECK_SCHEMA_VERSION: u32 = 1;

/// The shape of a saved baseline (`runs/baselines/NAME/SCENARIO.json`).
pub const SAVED_BASELINE_SCHEMA_VERSION: u32 = 1;

/// One `loadgen check`: the root of `check.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckReport {
    /// [`CHECK_SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The scenario both sides ran; empty for an instruction-count check alone.
    pub scenario_name: String,
    /// When the check started, RFC 3339 UTC.
    pub started_utc: String,
    /// The command line as typed.
    pub command_line: String,
    /// What the baseline is, as given (`loop`, `./target/release/afterburner`, a command, or
    /// `saved baseline NAME`).
    pub baseline: String,
    /// What the candidate is, as given.
    pub candidate: String,
    /// How the two sides' rounds relate.
    pub pairing: Pairing,
    /// Rounds and confidence.
    pub settings: CheckSettings,
    /// Measured rounds completed (warm-up rounds not counted).
    pub rounds: u32,
    /// True when the verdicts were certain before `settings.max_rounds`.
    pub stopped_early: bool,
    /// One entry per metric checked, in the order given.
    pub metrics: Vec<MetricCheck>,
    /// One entry per instruction-count benchmark, when instruction counts were compared.
    pub instructions: Vec<InstructionCheck>,
    /// Why the measurement cannot be trusted (a run that failed, a server that died, a
    /// generator at its limit, Ctrl-C); empty when it can.
    pub problems: Vec<String>,
    /// What the reader should know but does not make the measurement invalid (a saved baseline
    /// from another machine or another version of the scenario).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The check's result, what the exit status says.
    pub outcome: Outcome,
}

/// How the rounds of the two sides relate.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pairing {
    /// Both sides ran in this check, interleaved round by round: paired statistics.
    #[default]
    Interleaved,
    /// The baseline's rounds come from a saved baseline: unpaired statistics, and drift of the
    /// machine between the two sessions counts as change.
    Saved {
        /// The baseline's name (`--baseline NAME`).
        name: String,
        /// When it was saved, RFC 3339 UTC.
        saved_utc: String,
    },
    /// No load was run: instruction counts only.
    InstructionsOnly,
    /// Only the candidate ran, to be saved as a baseline (`--save-baseline` without
    /// `--baseline`): nothing compared.
    CandidateOnly,
}

/// How many rounds, and at what confidence.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckSettings {
    /// Most measured rounds; each runs both sides once.
    pub max_rounds: u32,
    /// Rounds before the first look at the data (the earliest a check can stop).
    pub min_rounds: u32,
    /// Rounds between looks after the first; the last round is always a look.
    pub look_every: u32,
    /// Rounds run first and discarded.
    pub warmup_rounds: u32,
    /// Confidence of the whole check's verdicts, e.g. 0.95.
    pub confidence: f64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            max_rounds: 20,
            min_rounds: 10,
            look_every: 5,
            warmup_rounds: 1,
            confidence: 0.95,
        }
    }
}

impl CheckSettings {
    /// Whether the check looks at the data after `round` (from 1): at `min_rounds`, every
    /// `look_every` rounds after it, and at `max_rounds`.
    pub fn is_look(&self, round: u32) -> bool {
        round == self.max_rounds
            || (round >= self.min_rounds
                && round < self.max_rounds
                && (round - self.min_rounds).is_multiple_of(self.look_every.max(1)))
    }

    /// How many looks at the data: see [`CheckSettings::is_look`].
    pub fn looks(&self) -> u32 {
        (1..=self.max_rounds).filter(|&r| self.is_look(r)).count() as u32
    }

    /// The rounds after which the check looks, in order.
    pub fn look_rounds(&self) -> Vec<u32> {
        (1..=self.max_rounds).filter(|&r| self.is_look(r)).collect()
    }

    /// The confidence of each look's interval: `1 - (1 - confidence) / looks` (Bonferroni).
    pub fn look_confidence(&self) -> f64 {
        1.0 - (1.0 - self.confidence) / f64::from(self.looks())
    }
}

/// One metric of the check.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetricCheck {
    /// Metric id (`ops_per_s`, `server_cpu_us_per_op`, `p99`, ...: the comparison's ids).
    pub metric: String,
    /// True when more is better (throughput); false when less is (CPU, latency, memory).
    pub higher_is_better: bool,
    /// The smallest relative change that matters, e.g. 0.05 for 5 %.
    pub threshold: f64,
    /// The baseline's value per usable round, in the metric's unit (paired with `candidate`
    /// index by index when interleaved).
    pub baseline: Vec<f64>,
    /// The candidate's value per usable round.
    pub candidate: Vec<f64>,
    /// The candidate's relative change against the baseline (`0.10`: 10 % more); `None` with
    /// too few rounds for an interval at the look's confidence.
    pub change: Option<Change>,
    /// What the change means.
    pub verdict: Verdict,
}

/// A relative change, candidate over baseline minus one, with its interval.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Change {
    /// Hodges–Lehmann estimate, as a relative change (0.10 = 10 % more).
    pub estimate: f64,
    /// Lower end of the interval, as a relative change.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// The interval's exact coverage (at least the confidence asked for; rank intervals come
    /// in steps).
    pub coverage: f64,
}

/// A verdict on one metric or benchmark.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better by more than the threshold, and the whole interval on the better side of no
    /// change.
    Improved,
    /// Worse by more than the threshold, and the whole interval on the worse side.
    Regressed,
    /// The whole interval within the threshold either way: any change is too small to matter.
    Unchanged,
    /// None of these: more rounds (or a quieter machine) would tell.
    #[default]
    Inconclusive,
}

impl Verdict {
    /// The word shown in tables.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Whether more rounds could change it.
    pub fn is_decided(self) -> bool {
        self != Verdict::Inconclusive
    }
}

/// The check's result.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No metric and no benchmark regressed (exit status 0).
    #[default]
    Pass,
    /// Some metric or benchmark regressed (exit status 1).
    Regression,
    /// The measurement cannot be trusted (exit status 3); `problems` says why.
    Invalid,
}

impl Outcome {
    /// The exit status CI reads: 0 pass, 1 regression, 3 invalid (2 is a usage or
    /// configuration error, which never gets this far).
    pub fn exit_status(self) -> i32 {
        match self {
            Outcome::Pass => 0,
            Outcome::Regression => 1,
            Outcome::Invalid => 3,
        }
    }
}

/// One instruction-count benchmark of both builds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct InstructionCheck {
    /// The benchmark's id.
    pub bench: String,
    /// Instructions executed by the baseline build (callgrind's Ir); `None`: no such bench.
    pub baseline: Option<u64>,
    /// Instructions executed by the candidate build.
    pub candidate: Option<u64>,
    /// The threshold, e.g. 0.01.
    pub threshold: f64,
    /// Candidate over baseline minus one; `None` when a side lacks the bench.
    pub change: Option<f64>,
    /// Callgrind counts the same instructions from run to run of one binary on one input, so
    /// the verdict needs no interval: beyond the threshold is a change.
    pub verdict: Verdict,
}

impl CheckReport {
    /// The outcome from the metrics, benchmarks and problems: invalid when there is a problem,
    /// else a regression when anything regressed, else pass.
    pub fn decide_outcome(&self) -> Outcome {
        if !self.problems.is_empty() {
            Outcome::Invalid
        } else if self
            .metrics
            .iter()
            .map(|m| m.verdict)
            .chain(self.instructions.iter().map(|i| i.verdict))
            .any(|v| v == Verdict::Regressed)
        {
            Outcome::Regression
        } else {
            Outcome::Pass
        }
    }

    /// Reads `check.json`, refusing another schema version.
    pub fn read(path: &Path) -> Result<CheckReport, ResultFileError> {
        let report: CheckReport = read_document(path, "loadgen check.json", CHECK_SCHEMA_VERSION)?;
        Ok(report)
    }

    /// Writes `check.json` atomically (a temporary file renamed over it).
    pub fn write_atomically(&self, path: &Path) -> Result<(), ResultFileError> {
        write_json_atomically(self, path)
    }
}

/// A saved baseline: one side's rounds of one scenario, kept under a name for later checks
/// (`--save-baseline NAME`, then `--baseline NAME`), as criterion keeps named baselines.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SavedBaseline {
    /// [`SAVED_BASELINE_SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The name it was saved under.
    pub name: String,
    /// The scenario's name.
    pub scenario_name: String,
    /// The scenario file's text as run (with the command line's overrides shown in
    /// `command_line`); a later check warns when its scenario differs.
    pub scenario_toml: String,
    /// What ran (the `--candidate` of the check that saved it).
    pub server: String,
    /// When it was saved, RFC 3339 UTC.
    pub saved_utc: String,
    /// The saving check's command line.
    pub command_line: String,
    /// The machine: CPU model and kernel, as `result.json` records them; a later check on
    /// another machine is warned.
    pub machine: String,
    /// Each valid round's figures by metric id.
    pub rounds: Vec<BTreeMap<String, f64>>,
}

impl SavedBaseline {
    /// Reads a saved baseline, refusing another schema version.
    pub fn read(path: &Path) -> Result<SavedBaseline, ResultFileError> {
        let saved: SavedBaseline = read_document(
            path,
            "loadgen saved baseline",
            SAVED_BASELINE_SCHEMA_VERSION,
        )?;
        Ok(saved)
    }

    /// Writes it atomically.
    pub fn write_atomically(&self, path: &Path) -> Result<(), ResultFileError> {
        write_json_atomically(self, path)
    }

    /// The values of `metric` over the saved rounds that have it.
    pub fn values(&self, metric: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|round| round.get(metric).copied())
            .collect()
    }
}

/// The verdict on a change: regressed or improved when the estimate is beyond `threshold` the
/// worse (better) way and the whole interval lies on that side of no change; unchanged when the
/// whole interval lies within `threshold` either way; else (and without an interval)
/// inconclusive. `higher_is_better` says which way is worse.
pub fn verdict(change: Option<Change>, threshold: f64, higher_is_better: bool) -> Verdict {
    let Some(change) = change else {
        return Verdict::Inconclusive;
    };
    // Turn the change into "how much worse", so one rule serves both directions.
    let sign = if higher_is_better { -1.0 } else { 1.0 };
    let (estimate, a, b) = (
        sign * change.estimate,
        sign * change.low,
        sign * change.high,
    );
    let (low, high) = (a.min(b), a.max(b));
    if estimate > threshold && low > 0.0 {
        Verdict::Regressed
    } else if estimate < -threshold && high < 0.0 {
        Verdict::Improved
    } else if low > -threshold && high < threshold {
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

/// The verdict on an instruction count: beyond `threshold` either way is a change.
pub fn instruction_verdict(change: f64, threshold: f64) -> Verdict {
    if change > threshold {
        Verdict::Regressed
    } else if change < -threshold {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    }
}

/// The fewest pairs for which an exact signed-rank interval at `confidence` exists: the
/// smallest two-sided level n pairs reach is 2 / 2^n.
pub fn fewest_pairs(confidence: f64) -> u32 {
    (1..64)
        .find(|&n| 2.0 / 2f64.powi(n as i32) <= 1.0 - confidence)
        .unwrap_or(64)
}

/// The relative change of paired rounds (`candidate[i]` ran in the same round as
/// `baseline[i]`): Hodges–Lehmann estimate of the per-round log ratios with the exact Wilcoxon
/// signed-rank interval at `confidence`. `None` when there are fewer pairs than the confidence
/// needs (6 for 95 %), or a value is not positive.
pub fn paired_change(baseline: &[f64], candidate: &[f64], confidence: f64) -> Option<Change> {
    if baseline.len() != candidate.len() || !all_positive(baseline) || !all_positive(candidate) {
        return None;
    }
    let logs: Vec<f64> = baseline
        .iter()
        .zip(candidate)
        .map(|(b, c)| (c / b).ln())
        .collect();
    let n = logs.len();
    let mut walsh = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        for j in i..n {
            walsh.push((logs[i] + logs[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    let (lower_rank, coverage) = rank_interval(&signed_rank_distribution(n), confidence)?;
    Some(Change {
        estimate: median(&walsh).exp_m1(),
        low: walsh[lower_rank].exp_m1(),
        high: walsh[walsh.len() - 1 - lower_rank].exp_m1(),
        coverage,
    })
}

/// The relative change of two independent samples (a saved baseline's rounds and this check's):
/// Hodges–Lehmann shift of the log values with the exact Mann–Whitney interval at
/// `confidence`. `None` when the samples are too small for the confidence or a value is not
/// positive.
pub fn unpaired_change(baseline: &[f64], candidate: &[f64], confidence: f64) -> Option<Change> {
    if baseline.is_empty()
        || candidate.is_empty()
        || !all_positive(baseline)
        || !all_positive(candidate)
    {
        return None;
    }
    let mut differences = Vec::with_capacity(baseline.len() * candidate.len());
    for c in candidate {
        for b in baseline {
            differences.push(c.ln() - b.ln());
        }
    }
    differences.sort_by(f64::total_cmp);
    let distribution = mann_whitney_distribution(baseline.len(), candidate.len());
    let (lower_rank, coverage) = rank_interval(&distribution, confidence)?;
    Some(Change {
        estimate: median(&differences).exp_m1(),
        low: differences[lower_rank].exp_m1(),
        high: differences[differences.len() - 1 - lower_rank].exp_m1(),
        coverage,
    })
}

fn all_positive(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite() && *v > 0.0)
}

/// The median of sorted `values` (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The null distribution of the Wilcoxon signed-rank statistic T+ for `n` pairs without ties:
/// `counts[t]` sign assignments give T+ = t, out of 2^n (a subset-sum count over ranks 1..=n).
fn signed_rank_distribution(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0.0; max + 1];
    counts[0] = 1.0;
    for rank in 1..=n {
        for t in (rank..=max).rev() {
            counts[t] += counts[t - rank];
        }
    }
    counts
}

/// The null distribution of the Mann–Whitney statistic U for samples of `m` and `n`:
/// `counts[u]` of the C(m+n, m) orderings give U = u (the number of partitions of u into at
/// most m parts no larger than n, built one sample element at a time).
fn mann_whitney_distribution(m: usize, n: usize) -> Vec<f64> {
    // ways[i][j][u]: orderings of i and j elements with U = u; rolled over i.
    let max = m * n;
    let mut previous: Vec<Vec<f64>> = (0..=n)
        .map(|_| {
            let mut v = vec![0.0; max + 1];
            v[0] = 1.0;
            v
        })
        .collect();
    for _ in 1..=m {
        let mut current: Vec<Vec<f64>> = vec![vec![0.0; max + 1]; n + 1];
        current[0][0] = 1.0;
        for j in 1..=n {
            for u in 0..=max {
                // The largest of all i + j elements is either from the first sample (it
                // exceeds all j of the second: U grows by j) or from the second.
                let from_first = if u >= j { previous[j][u - j] } else { 0.0 };
                current[j][u] = from_first + current[j - 1][u];
            }
        }
        previous = current;
    }
    previous.swap_remove(n)
}

/// From a symmetric null distribution's counts, the index `k` (from 0) such that the sorted
/// estimates' `[k, len - 1 - k]` is the narrowest interval with coverage at least `confidence`,
/// and its exact coverage; `None` when even the widest interval falls short.
fn rank_interval(counts: &[f64], confidence: f64) -> Option<(usize, f64)> {
    let total: f64 = counts.iter().sum();
    let alpha_half = (1.0 - confidence) / 2.0;
    // The largest c with P(T <= c) <= alpha/2; the interval is [W_(c+1), W_(N-c)], in ranks
    // from 1, i.e. index c from 0.
    let mut cumulative = 0.0;
    let mut critical = None;
    for (c, count) in counts.iter().enumerate() {
        cumulative += count;
        if cumulative / total <= alpha_half {
            critical = Some((c, cumulative / total));
        } else {
            break;
        }
    }
    let (c, tail) = critical?;
    Some((c, 1.0 - 2.0 * tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise sequence in [-1, 1] (no random crate in a model crate).
    fn noise(seed: u64, n: usize) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// `n` rounds of a metric around `level`, each round's drift shared by both sides, plus
    /// each run's own noise of about `spread` (relative).
    fn rounds(level: f64, factor: f64, spread: f64, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let drift = noise(seed, n);
        let own_a = noise(seed + 1, n);
        let own_b = noise(seed + 2, n);
        let base = (0..n)
            .map(|i| level * (1.0 + 0.2 * drift[i]) * (1.0 + spread * own_a[i]))
            .collect();
        let cand = (0..n)
            .map(|i| level * factor * (1.0 + 0.2 * drift[i]) * (1.0 + spread * own_b[i]))
            .collect();
        (base, cand)
    }

    #[test]
    fn the_signed_rank_critical_values_match_the_published_table() {
        // Two-sided 0.05: n = 6 -> 0, n = 10 -> 8, n = 20 -> 52 (Hollander and Wolfe, Table A.4).
        for (n, critical) in [(6, 0), (10, 8), (20, 52)] {
            let (index, coverage) = rank_interval(&signed_rank_distribution(n), 0.95).unwrap();
            assert_eq!(index, critical, "n = {n}");
            assert!(coverage >= 0.95, "n = {n}: {coverage}");
        }
        // Five pairs cannot give 95 %: 2/32 = 0.0625 is the smallest two-sided level.
        assert!(rank_interval(&signed_rank_distribution(5), 0.95).is_none());
    }

    #[test]
    fn the_mann_whitney_distribution_counts_every_ordering() {
        let counts = mann_whitney_distribution(4, 6);
        assert_eq!(counts.len(), 25);
        assert_eq!(counts.iter().sum::<f64>(), 210.0); // C(10, 4)
        assert_eq!(counts[0], 1.0);
        assert_eq!(counts[1], 1.0);
        assert_eq!(counts[2], 2.0);
        // Two-sided 0.05 for m = n = 10: critical U = 23 (Mann–Whitney table).
        let (index, _) = rank_interval(&mann_whitney_distribution(10, 10), 0.95).unwrap();
        assert_eq!(index, 23);
    }

    #[test]
    fn a_clear_regression_is_regressed() {
        // 10 % more CPU per operation, 2 % noise per run, 20 % drift shared by each round.
        let (base, cand) = rounds(30.0, 1.10, 0.02, 10, 7);
        let change = paired_change(&base, &cand, 0.99).unwrap();
        assert!((change.estimate - 0.10).abs() < 0.03, "{change:?}");
        assert_eq!(verdict(Some(change), 0.05, false), Verdict::Regressed);
        // The same drop in throughput is a regression too.
        let (base, cand) = rounds(20_000.0, 0.90, 0.02, 10, 8);
        let change = paired_change(&base, &cand, 0.99);
        assert_eq!(verdict(change, 0.05, true), Verdict::Regressed);
    }

    #[test]
    fn a_clear_improvement_is_improved() {
        let (base, cand) = rounds(30.0, 0.85, 0.02, 10, 9);
        assert_eq!(
            verdict(paired_change(&base, &cand, 0.99), 0.05, false),
            Verdict::Improved
        );
        let (base, cand) = rounds(20_000.0, 1.15, 0.02, 10, 10);
        assert_eq!(
            verdict(paired_change(&base, &cand, 0.99), 0.05, true),
            Verdict::Improved
        );
    }

    #[test]
    fn noise_alone_is_never_a_regression() {
        for seed in 0..200 {
            let (base, cand) = rounds(30.0, 1.0, 0.03, 10, seed * 3);
            let v = verdict(paired_change(&base, &cand, 0.99), 0.05, false);
            assert_ne!(v, Verdict::Regressed, "seed {seed}");
            assert_ne!(v, Verdict::Improved, "seed {seed}");
        }
        // With little noise the interval fits inside the threshold: unchanged.
        let (base, cand) = rounds(30.0, 1.0, 0.005, 10, 11);
        assert_eq!(
            verdict(paired_change(&base, &cand, 0.99), 0.05, false),
            Verdict::Unchanged
        );
    }

    #[test]
    fn drift_shared_by_a_round_cancels_when_paired() {
        // Rounds 40 % apart, each round's two runs alike: paired, no change at all.
        let base = [10.0, 14.0, 10.0, 14.0, 10.0, 14.0, 10.0, 14.0];
        let change = paired_change(&base, &base, 0.95).unwrap();
        assert_eq!((change.estimate, change.low, change.high), (0.0, 0.0, 0.0));
        assert_eq!(verdict(Some(change), 0.05, false), Verdict::Unchanged);
        // Unpaired, the same samples say only that nothing is certain.
        let change = unpaired_change(&base, &base, 0.95).unwrap();
        assert!(change.low < -0.05 && change.high > 0.05, "{change:?}");
        assert_eq!(verdict(Some(change), 0.05, false), Verdict::Inconclusive);
    }

    #[test]
    fn too_few_rounds_are_inconclusive_however_large_the_change() {
        let (base, cand) = rounds(30.0, 1.5, 0.0, 5, 12);
        assert_eq!(paired_change(&base, &cand, 0.95), None);
        assert_eq!(
            verdict(paired_change(&base, &cand, 0.95), 0.05, false),
            Verdict::Inconclusive
        );
        assert_eq!(unpaired_change(&base[..2], &cand[..2], 0.95), None);
        assert_eq!(paired_change(&[], &[], 0.95), None);
    }

    #[test]
    fn one_wild_round_moves_the_estimate_by_a_rank_not_by_its_size() {
        let (base, mut cand) = rounds(30.0, 1.10, 0.01, 10, 13);
        let calm = paired_change(&base, &cand, 0.99).unwrap();
        cand[3] *= 5.0; // a neighbour's cron job
        let wild = paired_change(&base, &cand, 0.99).unwrap();
        assert!(
            (wild.estimate - calm.estimate).abs() < 0.02,
            "{calm:?} {wild:?}"
        );
        assert_eq!(verdict(Some(wild), 0.05, false), Verdict::Regressed);
    }

    #[test]
    fn a_saved_baseline_is_compared_unpaired() {
        let base: Vec<f64> = noise(20, 10)
            .iter()
            .map(|e| 30.0 * (1.0 + 0.01 * e))
            .collect();
        let cand: Vec<f64> = noise(21, 10)
            .iter()
            .map(|e| 33.0 * (1.0 + 0.01 * e))
            .collect();
        let change = unpaired_change(&base, &cand, 0.95).unwrap();
        assert!((change.estimate - 0.10).abs() < 0.02, "{change:?}");
        assert_eq!(verdict(Some(change), 0.05, false), Verdict::Regressed);
    }

    #[test]
    fn the_looks_share_the_confidence() {
        let settings = CheckSettings {
            max_rounds: 10,
            min_rounds: 6,
            look_every: 1,
            warmup_rounds: 1,
            confidence: 0.95,
        };
        assert_eq!(settings.looks(), 5);
        assert!((settings.look_confidence() - 0.99).abs() < 1e-12);
        let settings = CheckSettings::default();
        assert_eq!(settings.look_rounds(), [10, 15, 20]);
        assert!((settings.look_confidence() - (1.0 - 0.05 / 3.0)).abs() < 1e-12);
        // The last round is a look even off the step.
        let settings = CheckSettings {
            max_rounds: 12,
            ..CheckSettings::default()
        };
        assert_eq!(settings.look_rounds(), [10, 12]);
    }

    #[test]
    fn the_fewest_pairs_for_an_interval() {
        assert_eq!(fewest_pairs(0.95), 6);
        assert_eq!(fewest_pairs(1.0 - 0.05 / 3.0), 7);
        assert_eq!(fewest_pairs(0.995), 9);
    }

    #[test]
    fn instruction_counts_change_beyond_the_threshold() {
        assert_eq!(instruction_verdict(0.02, 0.01), Verdict::Regressed);
        assert_eq!(instruction_verdict(-0.02, 0.01), Verdict::Improved);
        assert_eq!(instruction_verdict(0.0, 0.01), Verdict::Unchanged);
    }

    #[test]
    fn the_outcome_puts_problems_before_regressions() {
        let mut report = CheckReport {
            metrics: vec![MetricCheck {
                verdict: Verdict::Regressed,
                ..MetricCheck::default()
            }],
            ..CheckReport::default()
        };
        assert_eq!(report.decide_outcome(), Outcome::Regression);
        report
            .problems
            .push("round 2, candidate: the server exited".into());
        assert_eq!(report.decide_outcome(), Outcome::Invalid);
        assert_eq!(Outcome::Invalid.exit_status(), 3);
    }
}
