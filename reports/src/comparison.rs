//! The model of `loadgen compare` (`comparison.json`): several servers run under the same
//! scenario in interleaved rounds, each round's figures, and per server and metric the median,
//! the spread and the ratio to the first server with its confidence interval.
//!
//! The statistics: rounds run the servers in turn (A B C A B C ...), so a drift of the machine
//! hits every server of a round alike. A server's ratio to the baseline is therefore taken
//! round by round (paired), and summed up as the geometric mean of the paired ratios with a
//! Student-t confidence interval on their logarithms, the usual treatment of ratios of run
//! times (Kalibera and Jones, "Rigorous Benchmarking in Reasonable Time", ISMM 2013, section 4;
//! Fleming and Wallace, "How not to lie with statistics", CACM 1986, for the geometric mean).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::model::{read_document, write_json_atomically, ResultFileError, RunResult};
use crate::prepare::{run_summary, METRICS};

/// The shape of `comparison.json`; what this build writes and reads.
pub const COMPARISON_SCHEMA_VERSION: u32 = 1;

/// The confidence level of every ratio's interval.
pub const CONFIDENCE: f64 = 0.95;

/// One `loadgen compare`: the root of `comparison.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    /// [`COMPARISON_SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The scenario every server ran.
    pub scenario_name: String,
    /// When the first round started, RFC 3339 UTC.
    pub started_utc: String,
    /// The command line as typed.
    pub command_line: String,
    /// Rounds asked for (`--repeat`); each server ran once per round.
    pub rounds: u32,
    /// The servers in the order given; the first is the baseline of every ratio.
    pub servers: Vec<ServerRows>,
}

/// One server of the comparison: what it ran as, each round, and its figures over the rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerRows {
    /// The name given to `--servers` (`loop`, `nginx`, `apache-prefork`, ...).
    pub name: String,
    /// Each round, in order.
    pub rounds: Vec<RoundOutcome>,
    /// Per metric id ([`METRICS`]), the figures over the rounds; filled by
    /// [`Comparison::summarize`]. Metrics the server has in no round are left out.
    pub metrics: BTreeMap<String, MetricStats>,
}

/// One server in one round.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RoundOutcome {
    /// From 1.
    pub round: u32,
    /// The run's `result.json`, relative to the directory of `comparison.json`; `None` when
    /// the run produced no result (the server did not start).
    pub result: Option<PathBuf>,
    /// Whether the run's measurement is valid; `None` without a result.
    pub valid: Option<bool>,
    /// Why the run failed, or why its measurement is invalid; `None` for a valid run.
    pub problem: Option<String>,
    /// The run's figures at its headline load point, by metric id ([`METRICS`]); empty without
    /// a result.
    pub values: BTreeMap<String, f64>,
}

/// One metric of one server over its rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetricStats {
    /// Rounds the figures come from: the valid ones, or, when no round was valid, every round
    /// with a result (then `trusted` is false).
    pub n: usize,
    /// Median over those rounds, in the metric's unit.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// False when the figures come from invalid runs only.
    pub trusted: bool,
    /// Against the baseline (the first server); `None` for the baseline itself and when no
    /// round has both figures.
    pub ratio: Option<RatioEstimate>,
}

/// A server's figure over the baseline's, from the rounds where both have it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RatioEstimate {
    /// Geometric mean of the paired (same-round) ratios.
    pub ratio: f64,
    /// Lower end of the [`CONFIDENCE`] interval; `None` with fewer than two pairs.
    pub low: Option<f64>,
    /// Upper end of the interval; `None` with fewer than two pairs.
    pub high: Option<f64>,
    /// Rounds paired.
    pub pairs: usize,
}

impl RoundOutcome {
    /// The outcome of a round that produced `result`, stored at `result_path` (relative to the
    /// comparison's directory).
    pub fn from_result(round: u32, result_path: PathBuf, result: &RunResult) -> RoundOutcome {
        let summary = run_summary(result);
        let values = METRICS
            .iter()
            .filter_map(|metric| Some((metric.id.to_string(), (metric.value)(&summary)?)))
            .filter(|(_, value)| value.is_finite())
            .collect();
        let problem = (!result.valid).then(|| {
            if result.invalid_reasons.is_empty() {
                "invalid measurement".to_string()
            } else {
                result.invalid_reasons.join("; ")
            }
        });
        RoundOutcome {
            round,
            result: Some(result_path),
            valid: Some(result.valid),
            problem,
            values,
        }
    }

    /// The outcome of a round whose run failed before producing a result, with why.
    pub fn failed(round: u32, problem: String) -> RoundOutcome {
        RoundOutcome {
            round,
            problem: Some(problem),
            ..RoundOutcome::default()
        }
    }
}

impl ServerRows {
    /// Rounds whose measurement is valid.
    pub fn valid_rounds(&self) -> usize {
        self.rounds.iter().filter(|r| r.valid == Some(true)).count()
    }

    /// What went wrong in the rounds that were not valid, one line per distinct problem with
    /// the rounds it hit (`round 2, 3: the server exited ...`).
    pub fn problems(&self) -> Vec<String> {
        let mut by_problem: Vec<(&str, Vec<u32>)> = Vec::new();
        for round in &self.rounds {
            if let Some(problem) = round.problem.as_deref() {
                match by_problem.iter_mut().find(|(p, _)| *p == problem) {
                    Some((_, rounds)) => rounds.push(round.round),
                    None => by_problem.push((problem, vec![round.round])),
                }
            }
        }
        by_problem
            .into_iter()
            .map(|(problem, rounds)| {
                let rounds: Vec<String> = rounds.iter().map(u32::to_string).collect();
                let word = if rounds.len() == 1 { "round" } else { "rounds" };
                format!("{word} {}: {problem}", rounds.join(", "))
            })
            .collect()
    }

    /// The round that stands for the server in side-by-side pages: of the rounds the
    /// statistics use, the one whose throughput is closest to their median (the earliest on a
    /// tie); `None` when no round produced a result.
    pub fn representative_round(&self) -> Option<&RoundOutcome> {
        let (values, _) = self.usable_values("ops_per_s");
        let stats = spread(&values)?;
        let &(round, _) = values.iter().min_by(|a, b| {
            (a.1 - stats.median)
                .abs()
                .total_cmp(&(b.1 - stats.median).abs())
        })?;
        self.rounds.iter().find(|r| r.round == round)
    }

    /// The rounds the statistics use for `metric`: (round, value) of the valid rounds, or of
    /// every round with a result when none is valid; and whether they are the valid ones.
    fn usable_values(&self, metric: &str) -> (Vec<(u32, f64)>, bool) {
        let pick = |valid_only: bool| -> Vec<(u32, f64)> {
            self.rounds
                .iter()
                .filter(|r| !valid_only || r.valid == Some(true))
                .filter_map(|r| Some((r.round, *r.values.get(metric)?)))
                .collect()
        };
        let valid = pick(true);
        if valid.is_empty() {
            (pick(false), false)
        } else {
            (valid, true)
        }
    }
}

impl Comparison {
    /// Fills every server's [`ServerRows::metrics`] from its rounds: median, spread, and the
    /// paired ratio to the first server with its confidence interval.
    pub fn summarize(&mut self) {
        let baseline: Option<ServerRows> = self.servers.first().cloned();
        for (index, server) in self.servers.iter_mut().enumerate() {
            let mut metrics = BTreeMap::new();
            for metric in METRICS {
                let (values, trusted) = server.usable_values(metric.id);
                let Some(mut stats) = spread(&values) else {
                    continue;
                };
                stats.trusted = trusted;
                if index > 0 {
                    if let Some(baseline) = &baseline {
                        let (base, _) = baseline.usable_values(metric.id);
                        stats.ratio = paired_ratio(&base, &values);
                    }
                }
                metrics.insert(metric.id.to_string(), stats);
            }
            server.metrics = metrics;
        }
    }

    /// Reads a stored comparison and checks its `schema_version`.
    pub fn read(path: &Path) -> Result<Comparison, ResultFileError> {
        let comparison: Comparison =
            read_document(path, "loadgen comparison.json", COMPARISON_SCHEMA_VERSION)?;
        Ok(comparison)
    }

    /// Writes the comparison atomically ([`crate::files::write_atomically`]): a reader sees the
    /// old file or the whole new one.
    pub fn write_atomically(&self, path: &Path) -> Result<(), ResultFileError> {
        write_json_atomically(self, path)
    }
}

/// Median, smallest and largest of the values; `None` for none.
fn spread(values: &[(u32, f64)]) -> Option<MetricStats> {
    let mut sorted: Vec<f64> = values.iter().map(|&(_, v)| v).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(MetricStats {
        n,
        median,
        min: sorted[0],
        max: sorted[n - 1],
        trusted: true,
        ratio: None,
    })
}

/// The geometric mean of `values[k] / base[k]` over the rounds both have (and where both are
/// positive: a ratio to or of zero has no logarithm), with a Student-t interval on the mean of
/// the logarithms when there are at least two pairs. When every pair is 0/0 (no errors on
/// either side), the ratio is 1 exactly.
pub fn paired_ratio(base: &[(u32, f64)], values: &[(u32, f64)]) -> Option<RatioEstimate> {
    let mut both_zero = 0;
    let logs: Vec<f64> = values
        .iter()
        .filter_map(|&(round, value)| {
            let &(_, base) = base.iter().find(|(r, _)| *r == round)?;
            if base == 0.0 && value == 0.0 {
                both_zero += 1;
            }
            (base > 0.0 && value > 0.0).then(|| (value / base).ln())
        })
        .collect();
    if logs.is_empty() {
        return (both_zero > 0).then_some(RatioEstimate {
            ratio: 1.0,
            low: None,
            high: None,
            pairs: both_zero,
        });
    }
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let (low, high) = if logs.len() >= 2 {
        let variance = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let t = StudentsT::new(0.0, 1.0, n - 1.0)
            .expect("n - 1 >= 1 degrees of freedom")
            .inverse_cdf(0.5 + CONFIDENCE / 2.0);
        let half_width = t * (variance / n).sqrt();
        (
            Some((mean - half_width).exp()),
            Some((mean + half_width).exp()),
        )
    } else {
        (None, None)
    };
    Some(RatioEstimate {
        ratio: mean.exp(),
        low,
        high,
        pairs: logs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(values: &[f64]) -> Vec<(u32, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32 + 1, v))
            .collect()
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let stats = spread(&rounds(&[4.0, 1.0, 3.0, 2.0])).unwrap();
        assert_eq!(
            (stats.median, stats.min, stats.max, stats.n),
            (2.5, 1.0, 4.0, 4)
        );
        assert_eq!(spread(&rounds(&[5.0, 1.0, 3.0])).unwrap().median, 3.0);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn a_constant_paired_ratio_has_a_zero_width_interval() {
        let base = rounds(&[100.0, 200.0, 150.0]);
        let other = rounds(&[50.0, 100.0, 75.0]);
        let estimate = paired_ratio(&base, &other).unwrap();
        assert!((estimate.ratio - 0.5).abs() < 1e-12);
        assert!((estimate.low.unwrap() - 0.5).abs() < 1e-12);
        assert!((estimate.high.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(estimate.pairs, 3);
    }

    #[test]
    fn drift_shared_by_a_round_cancels_in_the_paired_ratio() {
        // The machine halves its speed in round 2: both servers slow down alike.
        let base = rounds(&[1000.0, 500.0, 1000.0]);
        let other = rounds(&[1200.0, 600.0, 1200.0]);
        let estimate = paired_ratio(&base, &other).unwrap();
        assert!((estimate.ratio - 1.2).abs() < 1e-12);
        assert!((estimate.high.unwrap() - estimate.low.unwrap()).abs() < 1e-9);
    }

    #[test]
    fn the_interval_matches_a_hand_computed_t_interval() {
        // ln ratios 0, ln 2: mean ln(2)/2, sd ln(2)/sqrt(2), n = 2, t(0.975, 1) = 12.706.
        let estimate = paired_ratio(&rounds(&[1.0, 1.0]), &rounds(&[1.0, 2.0])).unwrap();
        let mean = std::f64::consts::LN_2 / 2.0;
        let half = 12.706_204_736 * (std::f64::consts::LN_2 / 2f64.sqrt()) / 2f64.sqrt();
        assert!((estimate.ratio - mean.exp()).abs() < 1e-9);
        assert!((estimate.low.unwrap() - (mean - half).exp()).abs() < 1e-6);
        assert!((estimate.high.unwrap() - (mean + half).exp()).abs() < 1e-3);
    }

    #[test]
    fn only_rounds_both_servers_have_are_paired() {
        let base = vec![(1, 100.0), (3, 100.0)];
        let other = vec![(1, 200.0), (2, 1.0), (3, 200.0)];
        let estimate = paired_ratio(&base, &other).unwrap();
        assert_eq!(estimate.pairs, 2);
        assert!((estimate.ratio - 2.0).abs() < 1e-12);
        assert!(paired_ratio(&[], &other).is_none());
        let none_either = paired_ratio(&rounds(&[0.0]), &rounds(&[0.0])).unwrap();
        assert_eq!((none_either.ratio, none_either.pairs), (1.0, 1));
    }

    #[test]
    fn summarize_uses_valid_rounds_and_falls_back_to_invalid_ones_untrusted() {
        let round = |n: u32, valid: bool, ops: f64| RoundOutcome {
            round: n,
            result: Some(PathBuf::from(format!("r{n}/result.json"))),
            valid: Some(valid),
            problem: (!valid).then(|| "the server exited".to_string()),
            values: BTreeMap::from([("ops_per_s".to_string(), ops)]),
        };
        let mut comparison = Comparison {
            schema_version: COMPARISON_SCHEMA_VERSION,
            rounds: 3,
            servers: vec![
                ServerRows {
                    name: "loop".into(),
                    rounds: vec![
                        round(1, true, 100.0),
                        round(2, true, 110.0),
                        round(3, true, 90.0),
                    ],
                    ..ServerRows::default()
                },
                ServerRows {
                    name: "threads".into(),
                    rounds: vec![
                        round(1, true, 50.0),
                        round(2, false, 1.0),
                        round(3, true, 45.0),
                    ],
                    ..ServerRows::default()
                },
                ServerRows {
                    name: "fork".into(),
                    rounds: vec![
                        round(1, false, 10.0),
                        round(2, false, 20.0),
                        RoundOutcome::failed(3, "did not start".into()),
                    ],
                    ..ServerRows::default()
                },
            ],
            ..Comparison::default()
        };
        comparison.summarize();
        let ops = |s: usize| comparison.servers[s].metrics["ops_per_s"].clone();
        assert_eq!((ops(0).median, ops(0).ratio.clone()), (100.0, None));
        assert_eq!((ops(1).n, ops(1).median, ops(1).trusted), (2, 47.5, true));
        assert!((ops(1).ratio.unwrap().ratio - (0.5f64 * 0.5).sqrt()).abs() < 1e-12);
        assert_eq!((ops(2).n, ops(2).median, ops(2).trusted), (2, 15.0, false));
        assert_eq!(
            comparison.servers[0].representative_round().unwrap().round,
            1
        );
        assert_eq!(
            comparison.servers[1].representative_round().unwrap().round,
            1
        );
        assert_eq!(
            comparison.servers[2].problems(),
            vec![
                "rounds 1, 2: the server exited".to_string(),
                "round 3: did not start".to_string()
            ]
        );
    }
}
