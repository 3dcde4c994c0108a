//! The model of `loadgen claims` (`claims.json`): the 1999 claims of Afterburner's author, each
//! a row with the figure then, the figure measured now, and a verdict that follows from the
//! figures by a rule stored beside it ([`Rule`], pure, so anyone can re-derive the verdict).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{read_document, write_json_atomically, ResultFileError};

/// The shape of `claims.json`; what this build writes and reads.
pub const CLAIMS_SCHEMA_VERSION: u32 = 1;

/// One `loadgen claims`: the root of `claims.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClaimsReport {
    /// [`CLAIMS_SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The claims file's `name` (`claims-1999`).
    pub name: String,
    /// The claims file's `description`.
    pub description: String,
    /// When the first measurement started, RFC 3339 UTC.
    pub started_utc: String,
    /// The command line as typed.
    pub command_line: String,
    /// True for `--quick`: every measurement at a reduced size (fewer servers, shorter runs,
    /// fewer connections); the figures are then indications, not the full measurement.
    pub quick: bool,
    /// The machine of 1999, in words, from the claims file.
    pub hardware_then: String,
    /// This machine, in words: CPU model, cores, kernel, loopback.
    pub hardware_now: String,
    /// The measurements the rows draw on, in the order they ran.
    pub measurements: Vec<MeasurementEntry>,
    /// One per claim, in the claims file's order.
    pub rows: Vec<ClaimRow>,
}

/// One measurement of a claims run: a `loadgen compare` of one scenario over some servers.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MeasurementEntry {
    /// Its id in the claims file (`specweb96`, `files-512`, ...).
    pub id: String,
    /// What it measures, in words.
    pub what: String,
    /// The scenario file, as the claims file names it.
    pub scenario: String,
    /// The servers, by their labels.
    pub servers: Vec<String>,
    /// Rounds.
    pub rounds: u32,
    /// Its `comparison.json`, relative to the directory of `claims.json`; `None` when it did
    /// not run.
    pub comparison: Option<PathBuf>,
    /// Why it did not run (stopped, or an error); `None` when it ran.
    pub problem: Option<String>,
}

/// One claim of 1999 against today's measurement.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClaimRow {
    /// Stable id (`specweb96-one-loop`, `files-512-apache`, ...).
    pub id: String,
    /// The claim, in words.
    pub claim: String,
    /// Where the 1999 figure comes from.
    pub source: String,
    /// The figure then, in words with units.
    pub then: String,
    /// The figure now, in words with units, or what stands in for it.
    pub now: String,
    /// Which measurement and servers `now` comes from, and the differences of hardware and
    /// setting that stand between the two figures.
    pub basis: String,
    /// The verdict; for every verdict but [`Verdict::CannotBeMeasured`] it is
    /// `rule.verdict()`.
    pub verdict: Verdict,
    /// The rule the verdict follows from, with the figures it was applied to; `None` when the
    /// claim cannot be measured.
    pub rule: Option<Rule>,
}

/// What the measurement says of a claim.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The figure measured now meets the claim.
    Holds,
    /// The claim's absolute figures belong to 1999's hardware, but its ratio (or ordering)
    /// is reproduced now.
    HoldsInRatio,
    /// The measured figures contradict the claim.
    DoesNotHold,
    /// Nothing here can measure it, or the runs do not decide (an interval across the
    /// threshold); the row says which.
    #[default]
    CannotBeMeasured,
}

impl Verdict {
    /// The verdict in words, as the table shows it.
    pub fn words(&self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::HoldsInRatio => "holds in ratio",
            Verdict::DoesNotHold => "does not hold",
            Verdict::CannotBeMeasured => "cannot be measured here",
        }
    }
}

/// A verdict rule with the figures it is applied to. Pure: [`Rule::verdict`] depends on the
/// fields alone, and [`Rule::describe`] says the rule in words.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Holds when `measured >= threshold`; does not hold otherwise.
    AtLeast {
        /// The figure now.
        measured: f64,
        /// The least it must be.
        threshold: f64,
        /// Unit or name of both figures, for the description.
        unit: String,
    },
    /// Holds when `measured <= limit`; does not hold otherwise.
    AtMost {
        /// The figure now.
        measured: f64,
        /// The most it may be.
        limit: f64,
        /// Unit or name of both figures.
        unit: String,
    },
    /// A ratio of 1999 against the same ratio now (servers on one machine in one run): holds in
    /// ratio when `measured >= claimed / tolerance` and, for a claimed ratio above 1, the
    /// measured one is above 1 too (the same server ahead); does not hold otherwise. With an
    /// `interval`, the whole interval must be on one side of that threshold; one across it
    /// decides nothing ([`Verdict::CannotBeMeasured`]: more rounds).
    RatioAtLeast {
        /// The ratio measured now (geometric mean of the paired ratios).
        measured: f64,
        /// Its 95 % confidence interval (low, high); `None` with fewer than two rounds.
        #[serde(default)]
        interval: Option<(f64, f64)>,
        /// The ratio claimed in 1999.
        claimed: f64,
        /// How far below the claimed ratio still counts (1.5: two thirds of it).
        tolerance: f64,
    },
    /// Holds when `claimed` lies within `relative` of `expected` (|claimed - expected| <=
    /// relative x expected); does not hold otherwise.
    Within {
        /// The figure the claim states.
        claimed: f64,
        /// The figure it should be, measured or worked out.
        expected: f64,
        /// The relative difference allowed (0.1 = 10 %).
        relative: f64,
        /// Unit of both figures.
        unit: String,
    },
    /// Holds when `low <= value <= high`; does not hold otherwise.
    InRange {
        /// The figure.
        value: f64,
        /// The range's lower end.
        low: f64,
        /// The range's upper end.
        high: f64,
        /// Unit or name of the figure.
        unit: String,
    },
}

impl Rule {
    /// The verdict the rule gives on its figures. A figure that is not a number (NaN) never
    /// meets a rule.
    pub fn verdict(&self) -> Verdict {
        let holds = match self {
            Rule::AtLeast {
                measured,
                threshold,
                ..
            } => measured >= threshold,
            Rule::AtMost {
                measured, limit, ..
            } => measured <= limit,
            Rule::RatioAtLeast {
                measured,
                interval,
                claimed,
                tolerance,
            } => {
                let threshold = ratio_threshold(*claimed, *tolerance);
                let (low, high) = interval.unwrap_or((*measured, *measured));
                return if low >= threshold && *measured >= threshold {
                    Verdict::HoldsInRatio
                } else if high < threshold && *measured < threshold {
                    Verdict::DoesNotHold
                } else {
                    Verdict::CannotBeMeasured
                };
            }
            Rule::Within {
                claimed,
                expected,
                relative,
                ..
            } => (claimed - expected).abs() <= relative * expected.abs(),
            Rule::InRange {
                value, low, high, ..
            } => low <= value && value <= high,
        };
        if holds {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        }
    }

    /// The rule in words, with its figures.
    pub fn describe(&self) -> String {
        match self {
            Rule::AtLeast {
                measured,
                threshold,
                unit,
            } => format!(
                "holds when {unit} is at least {}: it is {}",
                figure(*threshold),
                figure(*measured)
            ),
            Rule::AtMost {
                measured,
                limit,
                unit,
            } => format!(
                "holds when {unit} is at most {}: it is {}",
                figure(*limit),
                figure(*measured)
            ),
            Rule::RatioAtLeast {
                measured,
                interval,
                claimed,
                tolerance,
            } => format!(
                "holds in ratio when the ratio now is at least 1999's {}x / {} = {}x{}{}: it is \
                 {}x{}",
                figure(*claimed),
                figure(*tolerance),
                figure(claimed / tolerance),
                if ratio_threshold(*claimed, *tolerance) > claimed / tolerance {
                    " and above 1 (the same server ahead)"
                } else {
                    ""
                },
                if interval.is_some() {
                    ", with its whole 95 % interval on that side (an interval across it decides \
                     nothing: more rounds)"
                } else {
                    ""
                },
                figure(*measured),
                match interval {
                    Some((low, high)) => format!(" [{}-{}]", figure(*low), figure(*high)),
                    None => " (no interval: fewer than two rounds)".to_string(),
                }
            ),
            Rule::Within {
                claimed,
                expected,
                relative,
                unit,
            } => format!(
                "holds when the claimed {} {unit} is within {} % of {} {unit}: it is {} % off",
                figure(*claimed),
                figure(relative * 100.0),
                figure(*expected),
                figure(((claimed - expected) / expected * 100.0).abs())
            ),
            Rule::InRange {
                value,
                low,
                high,
                unit,
            } => format!(
                "holds when {unit} lies between {} and {}: it is {}",
                figure(*low),
                figure(*high),
                figure(*value)
            ),
        }
    }
}

/// The least ratio that holds in ratio: the claimed one over the tolerance, and for a claimed
/// ratio above 1 never 1 or less (a measured ratio must keep the claimed order).
fn ratio_threshold(claimed: f64, tolerance: f64) -> f64 {
    let scaled = claimed / tolerance;
    if claimed > 1.0 && scaled <= 1.0 {
        1.0 + f64::EPSILON
    } else {
        scaled
    }
}

/// A number for a rule's description: three significant figures, thousands separated.
pub fn figure(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text.as_str(), None),
    };
    let (sign, digits) = match whole.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", whole),
    };
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

impl ClaimRow {
    /// A row whose verdict follows from `rule`.
    pub fn ruled(head: RowHead, now: String, basis: String, rule: Rule) -> ClaimRow {
        ClaimRow {
            id: head.id,
            claim: head.claim,
            source: head.source,
            then: head.then,
            now,
            basis,
            verdict: rule.verdict(),
            rule: Some(rule),
        }
    }

    /// A row that cannot be measured here, saying why in `now`.
    pub fn unmeasured(head: RowHead, why: String, basis: String) -> ClaimRow {
        ClaimRow {
            id: head.id,
            claim: head.claim,
            source: head.source,
            then: head.then,
            now: why,
            basis,
            verdict: Verdict::CannotBeMeasured,
            rule: None,
        }
    }

    /// The rule in words, or why there is none.
    pub fn rule_words(&self) -> String {
        match &self.rule {
            Some(rule) => rule.describe(),
            None => "no verdict: the figure is missing (why is said under now)".to_string(),
        }
    }
}

/// What a row says of the claim before anything is measured: id, claim, source and the 1999
/// figure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowHead {
    /// See [`ClaimRow::id`].
    pub id: String,
    /// See [`ClaimRow::claim`].
    pub claim: String,
    /// See [`ClaimRow::source`].
    pub source: String,
    /// See [`ClaimRow::then`].
    pub then: String,
}

impl ClaimsReport {
    /// Reads `claims.json`, checking its schema version.
    pub fn read(path: &Path) -> Result<ClaimsReport, ResultFileError> {
        let report: ClaimsReport =
            read_document(path, "loadgen claims.json", CLAIMS_SCHEMA_VERSION)?;
        Ok(report)
    }

    /// Writes `claims.json` atomically: a reader sees the old file or the whole new one.
    pub fn write_atomically(&self, path: &Path) -> Result<(), ResultFileError> {
        write_json_atomically(self, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_and_at_most_hold_on_their_edge() {
        let at_least = |measured, threshold| Rule::AtLeast {
            measured,
            threshold,
            unit: "ops/s".into(),
        };
        assert_eq!(at_least(3600.0, 3600.0).verdict(), Verdict::Holds);
        assert_eq!(at_least(3599.0, 3600.0).verdict(), Verdict::DoesNotHold);
        assert_eq!(at_least(f64::NAN, 1.0).verdict(), Verdict::DoesNotHold);
        let at_most = |measured, limit| Rule::AtMost {
            measured,
            limit,
            unit: "share".into(),
        };
        assert_eq!(at_most(0.5, 1.0).verdict(), Verdict::Holds);
        assert_eq!(at_most(1.5, 1.0).verdict(), Verdict::DoesNotHold);
    }

    #[test]
    fn a_ratio_holds_in_ratio_down_to_the_claim_over_the_tolerance() {
        let rule = |measured| Rule::RatioAtLeast {
            measured,
            interval: None,
            claimed: 6.0,
            tolerance: 1.5,
        };
        assert_eq!(rule(9.0).verdict(), Verdict::HoldsInRatio);
        assert_eq!(rule(4.0).verdict(), Verdict::HoldsInRatio);
        assert_eq!(rule(3.9).verdict(), Verdict::DoesNotHold);
        assert!(rule(4.0).describe().contains("6.00x / 1.50 = 4.00x"));
        // 1999: 1,290 against 1,140 (1.13x); a tolerance of 1.5 must not let the order flip.
        let close = |measured| Rule::RatioAtLeast {
            measured,
            interval: None,
            claimed: 1290.0 / 1140.0,
            tolerance: 1.5,
        };
        assert_eq!(close(0.9).verdict(), Verdict::DoesNotHold);
        assert_eq!(close(1.0).verdict(), Verdict::DoesNotHold);
        assert_eq!(close(1.05).verdict(), Verdict::HoldsInRatio);
        assert!(close(0.9).describe().contains("above 1"));
    }

    #[test]
    fn an_interval_across_the_threshold_decides_nothing() {
        let rule = |low, measured, high| Rule::RatioAtLeast {
            measured,
            interval: Some((low, high)),
            claimed: 6.0,
            tolerance: 1.5,
        };
        assert_eq!(rule(4.1, 5.0, 6.0).verdict(), Verdict::HoldsInRatio);
        assert_eq!(rule(2.0, 3.0, 3.9).verdict(), Verdict::DoesNotHold);
        assert_eq!(rule(2.85, 3.5, 4.3).verdict(), Verdict::CannotBeMeasured);
        assert!(rule(2.85, 3.5, 4.3).describe().contains("[2.85-4.30]"));
    }

    #[test]
    fn within_is_relative_to_the_expected_figure() {
        // The 384 MB claim against 256 B x 5,000/s x 240 s = 307.2 MB: 25 % off.
        let rule = Rule::Within {
            claimed: 384e6,
            expected: 307.2e6,
            relative: 0.1,
            unit: "B".into(),
        };
        assert_eq!(rule.verdict(), Verdict::DoesNotHold);
        assert!(
            rule.describe().contains("25.0 % off"),
            "{}",
            rule.describe()
        );
        let close = Rule::Within {
            claimed: 320e6,
            expected: 307.2e6,
            relative: 0.1,
            unit: "B".into(),
        };
        assert_eq!(close.verdict(), Verdict::Holds);
    }

    #[test]
    fn in_range_includes_both_ends() {
        let rule = |value| Rule::InRange {
            value,
            low: 2.0,
            high: 3.0,
            unit: "slowdown".into(),
        };
        assert_eq!(rule(2.0).verdict(), Verdict::Holds);
        assert_eq!(rule(3.0).verdict(), Verdict::Holds);
        assert_eq!(rule(3.01).verdict(), Verdict::DoesNotHold);
    }

    #[test]
    fn figures_have_three_significant_digits_and_separators() {
        assert_eq!(figure(10269.0), "10,269");
        assert_eq!(figure(-1234567.4), "-1,234,567");
        assert_eq!(figure(2.853), "2.85");
        assert_eq!(figure(0.0347), "0.035");
        assert_eq!(figure(15.25), "15.2");
        assert_eq!(figure(0.0), "0");
    }

    #[test]
    fn a_report_round_trips_through_json() {
        let report = ClaimsReport {
            schema_version: CLAIMS_SCHEMA_VERSION,
            rows: vec![ClaimRow::ruled(
                RowHead {
                    id: "x".into(),
                    ..RowHead::default()
                },
                "now".into(),
                "basis".into(),
                Rule::AtLeast {
                    measured: 2.0,
                    threshold: 1.0,
                    unit: "u".into(),
                },
            )],
            ..ClaimsReport::default()
        };
        let dir = std::env::temp_dir().join(format!("claims-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("claims.json");
        report.write_atomically(&path).unwrap();
        assert_eq!(ClaimsReport::read(&path).unwrap(), report);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
