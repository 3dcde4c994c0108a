//! `[check]`: what `loadgen check` gates on for this scenario — the metrics and the smallest
//! change of each that matters, the rounds, the confidence, and the instruction-count threshold.
//! The command line's `--threshold`, `--rounds` and `--min-rounds` replace these values.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// The `[check]` table; every key is optional.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckTable {
    /// Most measured rounds (each runs the baseline and the candidate once); 20 by default.
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// The first look at the data, after which the check may stop because every verdict is
    /// certain; 10 by default. Each look is taken at `1 - (1 - confidence) / looks`, and an
    /// exact signed-rank interval at level `1 - a` needs `2 / 2^n <= a`: 7 pairs for the
    /// default 3 looks (98.3 %); a look with fewer is always inconclusive.
    #[serde(default = "default_min_rounds")]
    pub min_rounds: u32,
    /// Rounds between looks after the first (the last round is always one); 5 by default, so
    /// the default looks are after rounds 10, 15 and 20.
    #[serde(default = "default_look_every")]
    pub look_every: u32,
    /// Rounds run first and thrown away (caches, page cache, CPU frequency); 1 by default.
    #[serde(default = "default_warmup_rounds")]
    pub warmup_rounds: u32,
    /// Confidence of the verdicts over all looks, e.g. 0.95 (the default).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Metric id -> the smallest relative change that matters (`"5%"` or `0.05`). The ids are
    /// those of `comparison.json`: `ops_per_s`, `server_cpu_us_per_op`, `p99`,
    /// `server_memory_per_connection`, ... [default: `server_cpu_us_per_op` and `ops_per_s` at
    /// 5 %].
    #[serde(
        default = "default_thresholds",
        deserialize_with = "thresholds_from_text"
    )]
    pub thresholds: BTreeMap<String, f64>,
    /// The relative change of an instruction count that fails the check; 1 % by default.
    #[serde(
        default = "default_instructions_threshold",
        deserialize_with = "percent"
    )]
    pub instructions_threshold: f64,
}

impl Default for CheckTable {
    fn default() -> Self {
        CheckTable {
            rounds: default_rounds(),
            min_rounds: default_min_rounds(),
            look_every: default_look_every(),
            warmup_rounds: default_warmup_rounds(),
            confidence: default_confidence(),
            thresholds: default_thresholds(),
            instructions_threshold: default_instructions_threshold(),
        }
    }
}

impl CheckTable {
    /// The checks that involve several keys, or the metrics' names; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.rounds == 0 {
            return Err("check.rounds: must be at least 1".into());
        }
        if self.min_rounds == 0 || self.min_rounds > self.rounds {
            return Err(format!(
                "check.min_rounds: {} must be from 1 to check.rounds ({})",
                self.min_rounds, self.rounds
            ));
        }
        if self.look_every == 0 {
            return Err("check.look_every: must be at least 1".into());
        }
        if !(0.5..1.0).contains(&self.confidence) {
            return Err(format!(
                "check.confidence: {} must be at least 0.5 and below 1 (e.g. 0.95)",
                self.confidence
            ));
        }
        if self.thresholds.is_empty() {
            return Err("check.thresholds: name at least one metric".into());
        }
        for (metric, threshold) in &self.thresholds {
            check_metric(metric).map_err(|e| format!("check.thresholds.{e}"))?;
            check_threshold(*threshold).map_err(|e| format!("check.thresholds.{metric}: {e}"))?;
        }
        check_threshold(self.instructions_threshold)
            .map_err(|e| format!("check.instructions_threshold: {e}"))
    }
}

/// `Ok` when `metric` is a comparison metric's id; else the list of ids.
pub fn check_metric(metric: &str) -> Result<(), String> {
    if reports::prepare::METRICS.iter().any(|m| m.id == metric) {
        return Ok(());
    }
    let ids: Vec<&str> = reports::prepare::METRICS.iter().map(|m| m.id).collect();
    Err(format!(
        "{metric}: no such metric; the metrics are {}",
        ids.join(", ")
    ))
}

fn check_threshold(threshold: f64) -> Result<(), String> {
    if threshold > 0.0 && threshold < 10.0 {
        Ok(())
    } else {
        Err(format!(
            "{threshold} must be a positive relative change, e.g. \"5%\" or 0.05"
        ))
    }
}

/// A relative change as written: `"5%"`, `"0.5%"`, or a fraction (`0.05`).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(number) => number.trim().parse::<f64>().map(|v| v / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a percentage (e.g. 5% or 0.05)"))?;
    if !text.ends_with('%') && value >= 1.0 {
        // `1` is far more likely to mean 1 % than 100 %.
        return Err(format!(
            "`{text}`: a fraction of 1 or more is ambiguous; write {text}% or {}",
            value / 100.0
        ));
    }
    check_threshold(value)?;
    Ok(value)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PercentText {
    Text(String),
    Number(f64),
}

impl PercentText {
    fn value(self) -> Result<f64, String> {
        match self {
            PercentText::Text(text) => parse_percent(&text),
            PercentText::Number(value) => check_threshold(value).map(|()| value),
        }
    }
}

fn percent<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    PercentText::deserialize(deserializer)?
        .value()
        .map_err(serde::de::Error::custom)
}

fn thresholds_from_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    BTreeMap::<String, PercentText>::deserialize(deserializer)?
        .into_iter()
        .map(|(metric, text)| {
            let value = text
                .value()
                .map_err(|e| serde::de::Error::custom(format!("{metric}: {e}")))?;
            Ok((metric, value))
        })
        .collect()
}

fn default_rounds() -> u32 {
    20
}

fn default_min_rounds() -> u32 {
    10
}

fn default_look_every() -> u32 {
    5
}

fn default_warmup_rounds() -> u32 {
    1
}

fn default_confidence() -> f64 {
    0.95
}

fn default_thresholds() -> BTreeMap<String, f64> {
    [("server_cpu_us_per_op", 0.05), ("ops_per_s", 0.05)]
        .into_iter()
        .map(|(metric, threshold)| (metric.to_string(), threshold))
        .collect()
}

fn default_instructions_threshold() -> f64 {
    0.01
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<CheckTable, String> {
        let table: CheckTable = toml::from_str(text).map_err(|e| e.to_string())?;
        table.validate()?;
        Ok(table)
    }

    #[test]
    fn an_empty_table_takes_the_defaults() {
        assert_eq!(table("").unwrap(), CheckTable::default());
    }

    #[test]
    fn thresholds_read_as_percentages_or_fractions() {
        let check =
            table("rounds = 8\nmin_rounds = 6\n[thresholds]\np99 = \"10%\"\nops_per_s = 0.03\n")
                .unwrap();
        assert_eq!(check.thresholds["p99"], 0.10);
        assert_eq!(check.thresholds["ops_per_s"], 0.03);
        assert_eq!(check.rounds, 8);
    }

    #[test]
    fn errors_name_the_key() {
        let error = table("[thresholds]\nops = \"5%\"\n").unwrap_err();
        assert!(
            error.contains("check.thresholds.ops: no such metric"),
            "{error}"
        );
        assert!(error.contains("server_cpu_us_per_op"), "{error}");
        let error = table("[thresholds]\np99 = \"five\"\n").unwrap_err();
        assert!(
            error.contains("p99") && error.contains("not a percentage"),
            "{error}"
        );
        let error = table("rounds = 4\nmin_rounds = 6\n").unwrap_err();
        assert!(error.contains("check.min_rounds"), "{error}");
        let error = table("confidence = 1.5\n").unwrap_err();
        assert!(error.contains("check.confidence"), "{error}");
        let error = table("round = 4\n").unwrap_err();
        assert!(error.contains("unknown field `round`"), "{error}");
    }
}
