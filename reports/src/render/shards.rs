//! The rows of the "Shards" table of a merged run (`loadgen merge`), one per part, formatted
//! once for the text summary and the HTML report: which part, where it ran, whether it was
//! valid, what it measured, when it began against its slot, and what it cost its host.

use super::format::{bytes, count, or_missing, percent};
use crate::model::{RunResult, ShardSummary};

/// One part of a merged run, every figure already written out.
pub(crate) struct ShardRow {
    /// `shard 1/3` or `server`.
    pub part: String,
    /// Its host's name and the start of its kernel's boot id.
    pub host: String,
    /// `valid` or `INVALID`.
    pub validity: &'static str,
    /// Requests it completed in its measured windows.
    pub ops: String,
    /// Its errors there.
    pub errors: String,
    /// Its first load point's start against its slot, in ms (`+0.4`).
    pub start_offset_ms: String,
    /// Its clock: `synchronised ±12 ms`, `not synchronised`, or unknown.
    pub clock: String,
    /// The generator's CPU share at its headline point.
    pub cpu: String,
    /// The peak of its host's client-side TIME_WAITs.
    pub time_wait_client_side: String,
    /// The generator's peak resident memory.
    pub rss: String,
    /// The directory it was read from.
    pub source: String,
    /// Why it was invalid, as it said.
    pub invalid_reasons: Vec<String>,
}

/// The rows of `result.shards` (empty for a run that is not a merged one).
pub(crate) fn rows(result: &RunResult) -> Vec<ShardRow> {
    let count_of = result
        .shards
        .iter()
        .filter(|s| s.role == "generator")
        .count();
    result
        .shards
        .iter()
        .map(|shard| row(shard, count_of))
        .collect()
}

fn row(shard: &ShardSummary, generators: usize) -> ShardRow {
    let boot = shard
        .boot_id
        .as_deref()
        .map(|id| format!(" (boot {})", &id[..id.len().min(8)]))
        .unwrap_or_default();
    let clock = match (shard.clock.synchronised, shard.clock.max_error_us) {
        (Some(true), Some(error)) => format!("synchronised ±{} ms", error as f64 / 1000.0),
        (Some(true), None) => "synchronised".into(),
        (Some(false), _) => "not synchronised".into(),
        (None, _) => "unknown".into(),
    };
    ShardRow {
        part: if shard.role == "generator" {
            format!("shard {}/{generators}", shard.index)
        } else {
            shard.role.clone()
        },
        host: format!("{}{boot}", shard.hostname),
        validity: if shard.valid { "valid" } else { "INVALID" },
        ops: count(shard.ops),
        errors: count(shard.errors),
        start_offset_ms: or_missing(shard.start_offset_ms, |ms| format!("{ms:+.1}")),
        clock,
        cpu: or_missing(shard.loadgen_cpu_share, percent),
        time_wait_client_side: or_missing(shard.peak_time_wait_client_side, count),
        rss: or_missing(shard.loadgen_peak_rss_bytes, |b| bytes(b as f64)),
        source: shard.source.clone(),
        invalid_reasons: shard.invalid_reasons.clone(),
    }
}
