//! The claims table, built from the figures of 1999 ([`super::plan::Figures1999`]) and the
//! measurements' comparisons: one pure function per claim, each returning rows whose verdict
//! follows from their stored [`Rule`]. No I/O here; `claims/mod.rs` runs the measurements and reads the
//! results these functions are given.
//!
//! Ranking servers: on a small machine a connection per request costs the generator more CPU than
//! the fastest servers spend, so their ops/s is the generator's. What ranks servers is the
//! server's CPU per operation; one core's ceiling is 1 s / (CPU per op), and a ratio of two
//! servers' ceilings is the inverse ratio of their CPU per op (paired by round, as `compare`
//! gives it).

use std::collections::BTreeMap;

use reports::claims::{figure, ClaimRow, RowHead, Rule};
use reports::comparison::{Comparison, ServerRows};
use reports::model::RunResult;
use reports::render::format::bytes;

use super::plan::{ClaimsFile, ServerFigures};

/// What one measurement left: its comparison (`None` when it did not run, with `problem`
/// saying why), and the representative run of each server that has one, by label.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// The comparison, as `comparison.json` holds it.
    pub comparison: Option<Comparison>,
    /// Why there is no comparison.
    pub problem: Option<String>,
    /// Each server's representative run (see `ServerRows::representative_round`), by label.
    pub results: BTreeMap<String, RunResult>,
    /// Its size in words where the rows name it (`1,000 modem users`); may be empty.
    pub size: String,
}

/// The measured figures of the claims, by measurement id.
pub type Measurements = BTreeMap<String, Measured>;

/// Metric ids of `reports::prepare::METRICS` the rows read.
const CPU_PER_OP: &str = "server_cpu_us_per_op";
const OPS_PER_S: &str = "ops_per_s";
const MBIT_PER_S: &str = "mbit_per_s";
const MEMORY_PER_CONNECTION: &str = "server_memory_per_connection";
const CTX_SWITCHES_PER_S: &str = "server_ctx_switches_per_s";

/// Every row of the claims table, in the claims file's order.
pub fn claim_rows(file: &ClaimsFile, measured: &Measurements, now: &str) -> Vec<ClaimRow> {
    let specweb = measured.get("specweb96");
    let files_512 = measured.get("files-512");
    let mut rows = vec![
        single_loop_row(file, specweb, now),
        bytes_per_op_row(file, specweb),
        best_of_class_row(file, specweb, now),
    ];
    rows.extend(ratio_rows(
        file,
        specweb,
        &file.claims.specweb96_mix,
        "mix",
        "the SPECweb96-like mix",
        now,
    ));
    rows.extend(ratio_rows(
        file,
        files_512,
        &file.claims.files_512,
        "files-512",
        "512-byte files",
        now,
    ));
    for id in ["slow-small", "slow-large"] {
        rows.push(copies_row(file, id, measured.get(id)));
    }
    rows.push(time_wait_arithmetic_row(file));
    rows.push(time_wait_measured_row(file, measured.get("time-wait")));
    rows.extend(close_mode_rows(file, measured.get("close-modes")));
    rows.push(site_1996_row(file, specweb, now));
    rows.push(afpa_row(file, specweb, now));
    rows
}

/// A figure of `label` in `measured`: the median of its valid rounds, or why there is none.
fn median(measured: Option<&Measured>, label: &str, metric: &str) -> Result<f64, String> {
    let server = server_rows(measured, label)?;
    match server.metrics.get(metric) {
        Some(stats) if stats.trusted => Ok(stats.median),
        Some(_) => Err(no_valid_round(label, server)),
        None if server.valid_rounds() == 0 => Err(no_valid_round(label, server)),
        None => Err(format!("{label}: the runs did not record {metric}")),
    }
}

/// `label: no valid round (...)` with the first line of each problem, cut short: the full
/// messages are in the measurement's comparison.
fn no_valid_round(label: &str, server: &ServerRows) -> String {
    const MOST: usize = 160;
    let problems: Vec<String> = server
        .problems()
        .iter()
        .map(|problem| {
            let line = problem.lines().next().unwrap_or_default();
            match line.char_indices().nth(MOST) {
                Some((cut, _)) => format!("{}...", &line[..cut]),
                None => line.to_string(),
            }
        })
        .collect();
    format!(
        "{label}: no valid round ({}; the measurement's comparison has the whole message)",
        problems.join("; ")
    )
}

fn server_rows<'a>(measured: Option<&'a Measured>, label: &str) -> Result<&'a ServerRows, String> {
    let measured = measured.ok_or("the measurement is not in the claims file")?;
    let comparison = measured.comparison.as_ref().ok_or_else(|| {
        measured
            .problem
            .clone()
            .unwrap_or_else(|| "the measurement did not run".into())
    })?;
    comparison
        .servers
        .iter()
        .find(|server| server.name == label)
        .ok_or_else(|| format!("{label} was not measured (not among this size's servers)"))
}

/// A ratio of two servers with its 95 % interval where the rounds give one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairedRatio {
    /// The geometric mean of the same-round ratios (or the ratio of medians).
    pub value: f64,
    /// Its 95 % interval; `None` with fewer than two paired rounds.
    pub interval: Option<(f64, f64)>,
}

/// How many times one core of `baseline` outserves one of `other`: `other`'s CPU per op over
/// `baseline`'s, paired by round (with its interval) when `baseline` is the comparison's first
/// server, else the ratio of their medians.
fn capacity_ratio(
    measured: Option<&Measured>,
    baseline: &str,
    other: &str,
) -> Result<PairedRatio, String> {
    let base = median(measured, baseline, CPU_PER_OP)?;
    let other_cpu = median(measured, other, CPU_PER_OP)?;
    let paired = server_rows(measured, other)?
        .metrics
        .get(CPU_PER_OP)
        .and_then(|stats| stats.ratio.as_ref())
        .filter(|_| {
            measured
                .and_then(|m| m.comparison.as_ref())
                .and_then(|c| c.servers.first())
                .is_some_and(|first| first.name == baseline)
        })
        .map(|ratio| PairedRatio {
            value: ratio.ratio,
            interval: ratio.low.zip(ratio.high),
        });
    Ok(paired.unwrap_or(PairedRatio {
        value: other_cpu / base,
        interval: None,
    }))
}

/// `2.50x [2.10-2.90]`: the ratio and, where there is one, its 95 % interval.
fn ratio_words(ratio: &PairedRatio) -> String {
    match ratio.interval {
        Some((low, high)) => format!(
            "{}x [{}-{}]",
            figure(ratio.value),
            figure(low),
            figure(high)
        ),
        None => format!("{}x", figure(ratio.value)),
    }
}

/// One core's ceiling of `label`: 1 s over its CPU per op.
fn per_core_ops(measured: Option<&Measured>, label: &str) -> Result<(f64, f64), String> {
    let cpu_us = median(measured, label, CPU_PER_OP)?;
    Ok((1e6 / cpu_us, cpu_us))
}

/// Bytes in decimal megabytes, as the TIME_WAIT claim counts them: `76.8 MB`.
fn megabytes(bytes: f64) -> String {
    format!("{} MB", figure(bytes / 1e6))
}

/// `text` with its first letter in upper case.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn head(id: &str, claim: &str, source: &str, then: String) -> RowHead {
    RowHead {
        id: id.into(),
        claim: claim.into(),
        source: source.into(),
        then,
    }
}

fn single_loop_row(file: &ClaimsFile, specweb: Option<&Measured>, now: &str) -> ClaimRow {
    let claim = &file.claims.specweb96;
    let single_loop = &file.stand_ins.single_loop;
    let head = head(
        "specweb96-one-loop",
        &format!(
            "One loop on one CPU serves {} SPECweb96 ops/s",
            figure(claim.ops_per_s)
        ),
        &claim.source,
        format!(
            "{} ops/s ({} in-house) on {}",
            figure(claim.ops_per_s),
            figure(claim.in_house_ops_per_s),
            claim.machine
        ),
    );
    let basis = format!(
        "measurement specweb96, server {single_loop}, its median over the rounds; the ceiling is 1 s / \
         server CPU per op; {now}"
    );
    let ops = median(specweb, single_loop, OPS_PER_S);
    match (ops, per_core_ops(specweb, single_loop)) {
        (Ok(ops), ceiling) => {
            let ceiling = match ceiling {
                Ok((ceiling, cpu_us)) => format!(
                    "; {} µs of server CPU per op: a ceiling of {} ops/s per core, {}x the 1999 \
                     figure, {}x the in-house one",
                    figure(cpu_us),
                    figure(ceiling),
                    figure(ceiling / claim.ops_per_s),
                    figure(ceiling / claim.in_house_ops_per_s)
                ),
                Err(_) => String::new(),
            };
            ClaimRow::ruled(
                head,
                format!(
                    "{} ops/s measured (a lower bound: the generator may have set the pace){ceiling}",
                    figure(ops)
                ),
                basis,
                Rule::AtLeast {
                    measured: ops,
                    threshold: claim.ops_per_s,
                    unit: "the ops/s measured".into(),
                },
            )
        }
        (Err(why), _) => ClaimRow::unmeasured(head, why, basis),
    }
}

fn bytes_per_op_row(file: &ClaimsFile, specweb: Option<&Measured>) -> ClaimRow {
    let claim = &file.claims.specweb96;
    let single_loop = &file.stand_ins.single_loop;
    let claimed_bytes_per_op = claim.mbit_per_s * 1e6 / 8.0 / claim.ops_per_s;
    let head = head(
        "specweb96-bytes-per-op",
        &format!(
            "{} Mbit/s and {} ops/s fit the SPECweb96 mix (the two figures quoted together)",
            figure(claim.mbit_per_s),
            figure(claim.ops_per_s)
        ),
        &claim.source,
        format!(
            "{} Mbit/s / {} ops/s = {} bytes per op",
            figure(claim.mbit_per_s),
            figure(claim.ops_per_s),
            figure(claimed_bytes_per_op)
        ),
    );
    let basis = format!(
        "measurement specweb96, server {single_loop}: the mix's mean reply (body bytes) as the generator \
         drew it"
    );
    let measured = median(specweb, single_loop, MBIT_PER_S)
        .and_then(|mbit| Ok(mbit * 1e6 / 8.0 / median(specweb, single_loop, OPS_PER_S)?));
    match measured {
        Ok(bytes_per_op) => ClaimRow::ruled(
            head,
            format!(
                "the SPECweb96 mix averages {} bytes per op: {} ops/s of it is {} Mbit/s, and \
                 {} Mbit/s is {} ops/s of it",
                figure(bytes_per_op),
                figure(claim.ops_per_s),
                figure(claim.ops_per_s * bytes_per_op * 8.0 / 1e6),
                figure(claim.mbit_per_s),
                figure(claim.mbit_per_s * 1e6 / 8.0 / bytes_per_op)
            ),
            basis,
            Rule::Within {
                claimed: claimed_bytes_per_op,
                expected: bytes_per_op,
                relative: claim.relative_difference,
                unit: "bytes per op".into(),
            },
        ),
        Err(why) => ClaimRow::unmeasured(head, why, basis),
    }
}

fn best_of_class_row(file: &ClaimsFile, specweb: Option<&Measured>, now: &str) -> ClaimRow {
    let claim = &file.claims.specweb96;
    let single_loop = &file.stand_ins.single_loop;
    let claimed = claim.ops_per_s / claim.best_of_class_ops_per_s;
    let head = head(
        "specweb96-best-of-class",
        "The single loop is far ahead of the best other server of its class",
        &format!(
            "{} (the ~{} is unconfirmed)",
            claim.source,
            figure(claim.best_of_class_ops_per_s)
        ),
        format!(
            "{} ops/s against ~{}: {}x",
            figure(claim.ops_per_s),
            figure(claim.best_of_class_ops_per_s),
            figure(claimed)
        ),
    );
    let mut ratios = Vec::new();
    let mut missing = Vec::new();
    for rival in &file.stand_ins.rivals_1999 {
        match capacity_ratio(specweb, single_loop, rival) {
            Ok(ratio) => ratios.push((rival.clone(), ratio)),
            Err(why) => missing.push(why),
        }
    }
    let others = others_for_information(specweb, single_loop, &file.stand_ins.rivals_1999);
    let basis = format!(
        "measurement specweb96: {single_loop}'s ceiling over each 1999-kind server's (CPU per op, \
         paired by round){}{}; {now}",
        if missing.is_empty() {
            String::new()
        } else {
            format!("; not measured: {}", missing.join("; "))
        },
        if others.is_empty() {
            String::new()
        } else {
            format!("; for information, later designs: {others}")
        }
    );
    let Some((best, ratio)) = ratios
        .iter()
        .min_by(|a, b| a.1.value.total_cmp(&b.1.value))
        .cloned()
    else {
        return ClaimRow::unmeasured(
            head,
            "no server of 1999's kinds has a valid figure".into(),
            basis,
        );
    };
    // A missing rival can only lower the best ratio: "does not hold" stands without it,
    // "holds" does not.
    let rule = Rule::RatioAtLeast {
        measured: ratio.value,
        interval: ratio.interval,
        claimed,
        tolerance: file.ratio_tolerance,
    };
    if !missing.is_empty() && rule.verdict() != reports::claims::Verdict::DoesNotHold {
        return ClaimRow::unmeasured(
            head,
            format!(
                "{single_loop} over the best measured ({best}): {}, but not every 1999-kind \
                 server was measured",
                ratio_words(&ratio)
            ),
            basis,
        );
    }
    let listed: Vec<String> = ratios
        .iter()
        .map(|(name, ratio)| format!("{name} {}", ratio_words(ratio)))
        .collect();
    ClaimRow::ruled(
        head,
        format!(
            "{single_loop} over the best of them ({best}): {}; over each: {}",
            ratio_words(&ratio),
            listed.join(", ")
        ),
        basis,
        rule,
    )
}

/// `name ratio` of every measured server not in `rivals` and not the baseline.
fn others_for_information(
    measured: Option<&Measured>,
    baseline: &str,
    rivals: &[String],
) -> String {
    let Some(comparison) = measured.and_then(|m| m.comparison.as_ref()) else {
        return String::new();
    };
    comparison
        .servers
        .iter()
        .filter(|s| s.name != baseline && !rivals.contains(&s.name))
        .map(|s| match capacity_ratio(measured, baseline, &s.name) {
            Ok(ratio) => format!("{baseline} / {} {}", s.name, ratio_words(&ratio)),
            Err(_) => format!("{}: no valid figure", s.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of one benchmark page table: Afterburner over Apache, over thttpd, over Zeus.
fn ratio_rows(
    file: &ClaimsFile,
    measured: Option<&Measured>,
    figures: &ServerFigures,
    id: &str,
    benchmark: &str,
    now: &str,
) -> Vec<ClaimRow> {
    let single_loop = &file.stand_ins.single_loop;
    let mut rows = Vec::new();
    for (rival, stand_in, claimed_ops) in [
        ("Apache", Some(&file.stand_ins.apache), figures.apache),
        ("thttpd", Some(&file.stand_ins.thttpd), figures.thttpd),
        ("Zeus", None, figures.zeus),
    ] {
        let claimed = figures.afterburner / claimed_ops;
        let head = head(
            &format!("{id}-{}", rival.to_lowercase()),
            &format!("On {benchmark}, Afterburner outserves {rival}"),
            &figures.source,
            format!(
                "{} against {} ops/s: {}x",
                figure(figures.afterburner),
                figure(claimed_ops),
                figure(claimed)
            ),
        );
        let Some(stand_in) = stand_in else {
            rows.push(ClaimRow::unmeasured(
                head,
                format!(
                    "Zeus was a commercial server, discontinued; no build of it runs here \
                     ({})",
                    others_for_information(measured, single_loop, &[])
                ),
                format!("measurement {}; {now}", measurement_of(id)),
            ));
            continue;
        };
        let built_in = if afterburner::designs::Design::from_name(stand_in).is_some() {
            " (a design of the built-in server: the same in-RAM site and HTTP code as the \
             loop, only the concurrency core differs; what else set the 1999 server apart is \
             not in it)"
        } else {
            ""
        };
        let basis = format!(
            "measurement {}: {single_loop} (Afterburner) over {stand_in} ({rival}){built_in}, server CPU \
             per op paired by round; {now}",
            measurement_of(id)
        );
        rows.push(match capacity_ratio(measured, single_loop, stand_in) {
            Ok(ratio) => ClaimRow::ruled(
                head,
                format!("{single_loop} over {stand_in}: {}", ratio_words(&ratio)),
                basis,
                Rule::RatioAtLeast {
                    measured: ratio.value,
                    interval: ratio.interval,
                    claimed,
                    tolerance: file.ratio_tolerance,
                },
            ),
            Err(why) => ClaimRow::unmeasured(head, why, basis),
        });
    }
    rows
}

fn measurement_of(row_id: &str) -> &'static str {
    if row_id.starts_with("files-512") {
        "files-512"
    } else {
        "specweb96"
    }
}

/// Memory per connection of `label`, PSS-based where the samples have PSS (shared pages
/// split among the processes that share them, so a forked copy is charged only what it does
/// not share), else RSS-based; and which it is.
fn memory_per_connection(
    measured: Option<&Measured>,
    label: &str,
) -> Result<(f64, &'static str), String> {
    let rss_based = median(measured, label, MEMORY_PER_CONNECTION)?;
    let pss_scale = measured
        .and_then(|m| m.results.get(label))
        .and_then(pss_over_rss_growth);
    Ok(match pss_scale {
        Some(scale) => (rss_based * scale, "PSS"),
        None => (rss_based, "RSS"),
    })
}

/// Whether `label`'s representative run counted context switches of main threads only (a
/// process with more threads than the probe reads each sample).
fn main_threads_only(measured: Option<&Measured>, label: &str) -> bool {
    measured
        .and_then(|m| m.results.get(label))
        .and_then(|result| result.load_points.last())
        .and_then(|point| point.kernel.as_ref())
        .is_some_and(|kernel| kernel.summary.server_ctx_switches_main_only)
}

/// (peak PSS - first PSS) / (peak RSS - first RSS) of the server over the headline point's
/// samples: how much of the RSS growth is the server's own.
fn pss_over_rss_growth(result: &RunResult) -> Option<f64> {
    let point = result.load_points.last()?;
    let samples = &point.kernel.as_ref()?.samples;
    let first_pss = samples.iter().find_map(|s| s.server_pss_bytes)?;
    let first_rss = samples.iter().find_map(|s| s.server_rss_bytes)?;
    let peak_pss = samples.iter().filter_map(|s| s.server_pss_bytes).max()?;
    let peak_rss = samples.iter().filter_map(|s| s.server_rss_bytes).max()?;
    let rss_growth = peak_rss.checked_sub(first_rss)? as f64;
    let pss_growth = peak_pss.checked_sub(first_pss)? as f64;
    (rss_growth > 0.0 && pss_growth > 0.0).then(|| (pss_growth / rss_growth).min(1.0))
}

/// What one server of a slow-connection measurement pays per connection.
struct ConnectionCost {
    /// Bytes per connection.
    bytes: f64,
    /// Its words in the row: bytes, what they are measured as, share of the whole server,
    /// context switches, and a pool's note.
    words: String,
    /// A fixed pool that served markedly fewer requests than the loop: most users waited in the
    /// backlog, so its figure is per queued socket, not per served connection.
    partial_pool: bool,
}

/// The cost per connection of `server` in `measured`, against the loop's throughput.
fn connection_cost(
    measured: Option<&Measured>,
    server: &str,
    single_loop: &str,
) -> Result<ConnectionCost, String> {
    let (bytes_each, kind) = memory_per_connection(measured, server)?;
    let share = measured
        .and_then(|m| m.results.get(server))
        .and_then(|result| result.load_points.last())
        .and_then(|point| point.kernel.as_ref())
        .and_then(|kernel| kernel.samples.iter().find_map(|s| s.server_rss_bytes))
        .filter(|rss| *rss > 0)
        .map(|rss| {
            format!(
                ", {} % of the whole server before the load",
                figure(bytes_each / rss as f64 * 100.0)
            )
        })
        .unwrap_or_default();
    let switches = if main_threads_only(measured, server) {
        ", context switches not counted (the probe reads only the main thread of a process \
         with many threads)"
            .to_string()
    } else {
        median(measured, server, CTX_SWITCHES_PER_S)
            .map(|s| format!(", {} context switches/s", figure(s)))
            .unwrap_or_default()
    };
    // A fixed pool (prefork, Apache 1.3) serves as many users as it has workers; the others
    // wait in the listen backlog, and their connections cost it nothing.
    let served = match (
        median(measured, server, OPS_PER_S),
        median(measured, single_loop, OPS_PER_S),
    ) {
        (Ok(ops), Ok(loop_ops)) if loop_ops > 0.0 => Some(ops / loop_ops),
        _ => None,
    };
    let partial_pool = served.is_some_and(|served| served < PARTIAL_SERVICE);
    let pool = match served {
        Some(served) if partial_pool => format!(
            " (served {} % of the loop's requests: a fixed pool serves as many users as it \
             has workers, the others wait in the backlog)",
            figure(served * 100.0)
        ),
        _ => String::new(),
    };
    Ok(ConnectionCost {
        bytes: bytes_each,
        words: format!(
            "{server} {} ({kind}{share}){switches}{pool}",
            bytes(bytes_each)
        ),
        partial_pool,
    })
}

/// A server that completed less than this share of the loop's requests held fewer
/// connections than there were users (a fixed pool), and its memory per connection is left out
/// of the verdict.
const PARTIAL_SERVICE: f64 = 0.9;

fn copies_row(file: &ClaimsFile, id: &str, measured: Option<&Measured>) -> ClaimRow {
    let claim = &file.claims.copies;
    let single_loop = &file.stand_ins.single_loop;
    let size = measured
        .map(|m| m.size.clone())
        .filter(|size| !size.is_empty())
        .unwrap_or_else(|| id.to_string());
    let head = head(
        &format!("copies-{id}"),
        &format!(
            "{} connections = {} copies of the server ({size})",
            figure(claim.connections.into()),
            figure(claim.connections.into())
        ),
        &claim.source,
        "a thread- or process-per-connection server pays for each connection with a copy of \
         itself"
            .into(),
    );
    let servers: Vec<String> = measured
        .and_then(|m| m.comparison.as_ref())
        .map(|c| c.servers.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let mut words = Vec::new();
    let mut missing = Vec::new();
    let mut per_connection = Vec::new();
    for server in &servers {
        match connection_cost(measured, server, single_loop) {
            Ok(cost) => {
                words.push(cost.words.clone());
                if file.stand_ins.per_connection.contains(server) && !cost.partial_pool {
                    per_connection.push((server.clone(), cost.bytes));
                }
            }
            Err(why) => missing.push(why),
        }
    }
    let basis = format!(
        "measurement {id}: server memory growth over peak connections (PSS where the samples \
         have it: a forked copy is charged only what it does not share with its parent){}",
        if missing.is_empty() {
            String::new()
        } else {
            format!("; no figure: {}", missing.join("; "))
        }
    );
    let now = format!("per connection: {}", words.join("; "));
    let loop_bytes = match memory_per_connection(measured, single_loop) {
        Ok((bytes, _)) => bytes,
        Err(why) => {
            return ClaimRow::unmeasured(head, format!("{now}; the loop: {why}"), basis);
        }
    };
    let Some((cheapest, bytes_each)) = per_connection
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
    else {
        return ClaimRow::unmeasured(
            head,
            format!("{now}; no thread- or process-per-connection design served every user"),
            basis,
        );
    };
    let ratio = bytes_each / loop_bytes;
    ClaimRow::ruled(
        head,
        format!(
            "{now}. The cheapest design that served every user with a thread or process of \
             its own ({cheapest}) pays {}x the loop's cost per connection",
            figure(ratio)
        ),
        basis,
        Rule::AtLeast {
            measured: ratio,
            threshold: claim.min_ratio,
            unit: "the cheapest thread- or process-per-connection design's memory per \
                   connection, in multiples of the loop's"
                .into(),
        },
    )
}

fn time_wait_arithmetic_row(file: &ClaimsFile) -> ClaimRow {
    let claim = &file.claims.time_wait;
    let at = |seconds: f64| claim.object_bytes * claim.ops_per_s * seconds;
    let head = head(
        "time-wait-arithmetic",
        &format!(
            "TIME_WAIT: {} B x {} ops/s x {} = {} MB of kernel memory",
            figure(claim.object_bytes),
            figure(claim.ops_per_s),
            claim.claimed_hold,
            figure(claim.claimed_bytes / 1e6)
        ),
        &claim.source,
        format!(
            "{} MB: each socket held {} s",
            figure(claim.claimed_bytes / 1e6),
            figure(claim.claimed_hold_s)
        ),
    );
    ClaimRow::ruled(
        head,
        format!(
            "a socket is held for the TIME_WAIT length, once: {} B x {}/s x {} s (Windows NT's \
             and Solaris's TIME_WAIT in 1999) = {} MB; with Linux's {} s (2.2 then, 6.x now), \
             {} MB. The claim's {} ({} s) multiplies a TIME_WAIT length by minutes: it holds \
             each socket longer than any of these systems did",
            figure(claim.object_bytes),
            figure(claim.ops_per_s),
            figure(claim.time_wait_1999_s),
            figure(at(claim.time_wait_1999_s) / 1e6),
            figure(claim.time_wait_linux_s),
            figure(at(claim.time_wait_linux_s) / 1e6),
            claim.claimed_hold,
            figure(claim.claimed_hold_s)
        ),
        "arithmetic on the claim's own figures (a socket is held for the TIME_WAIT length, \
         then freed); 10 % is a strict tolerance for an estimate, and the gap is 25 % against \
         the longest TIME_WAIT of 1999"
            .into(),
        Rule::Within {
            claimed: claim.claimed_bytes,
            expected: at(claim.time_wait_1999_s),
            relative: claim.relative_difference,
            unit: "bytes".into(),
        },
    )
}

fn time_wait_measured_row(file: &ClaimsFile, time_wait: Option<&Measured>) -> ClaimRow {
    let claim = &file.claims.time_wait;
    let single_loop = &file.stand_ins.single_loop;
    let head = head(
        "time-wait-per-connection",
        "Every connection the server closes leaves a TIME_WAIT in its kernel",
        &claim.source,
        format!(
            "one {} B socket per connection, for the TIME_WAIT length",
            figure(claim.object_bytes)
        ),
    );
    let basis = format!(
        "measurement time-wait, server {single_loop} (--close server): its own server-side TIME_WAITs \
         (sock_diag, begun since the run started, counted at the end of the measured window: \
         none has expired, the run is shorter than the TIME_WAIT length) over the connections \
         it closed first \
         in that time (its own counters); the object size from /proc/slabinfo"
    );
    let figures = (|| -> Result<(f64, f64, f64, f64), String> {
        let result = time_wait
            .and_then(|m| m.results.get(single_loop))
            .ok_or_else(|| match median(time_wait, single_loop, OPS_PER_S) {
                Err(why) => why,
                Ok(_) => format!("{single_loop}: no run to read"),
            })?;
        let point = result
            .load_points
            .last()
            .ok_or("the run has no load point")?;
        let kernel = point
            .kernel
            .as_ref()
            .ok_or("the run has no kernel accounting")?;
        let own = kernel
            .summary
            .own_peak_time_wait_server_side
            .ok_or("the run did not tell TIME_WAITs apart by origin")?;
        let closed = point
            .server_stats
            .as_ref()
            .and_then(|stats| stats.pointer("/closes/server_first"))
            .and_then(|value| value.as_f64())
            .filter(|closed| *closed > 0.0)
            .ok_or("the server's counters do not say how many connections it closed first")?;
        Ok((
            point.totals.ops_per_s,
            own as f64,
            closed,
            kernel.time_wait_object_bytes as f64,
        ))
    })();
    match figures {
        Ok((ops_per_s, own, closed, object_bytes)) => {
            let per_close = own / closed;
            let held = |seconds: f64| ops_per_s * per_close * seconds;
            ClaimRow::ruled(
                head,
                format!(
                    "{} TIME_WAITs for {} connections closed first: {} each, {} B a socket; at \
                     the measured {} ops/s that is {} sockets = {} with Linux's {} s, {} = {} \
                     with 1999's {} s",
                    figure(own),
                    figure(closed),
                    figure(per_close),
                    figure(object_bytes),
                    figure(ops_per_s),
                    figure(held(claim.time_wait_linux_s)),
                    megabytes(held(claim.time_wait_linux_s) * object_bytes),
                    figure(claim.time_wait_linux_s),
                    figure(held(claim.time_wait_1999_s)),
                    megabytes(held(claim.time_wait_1999_s) * object_bytes),
                    figure(claim.time_wait_1999_s)
                ),
                basis,
                Rule::AtLeast {
                    measured: per_close,
                    threshold: claim.min_per_close,
                    unit: "server-side TIME_WAITs per connection it closed first".into(),
                },
            )
        }
        Err(why) => ClaimRow::unmeasured(head, why, basis),
    }
}

/// The share of a run's own TIME_WAITs held by the clients, with both counts.
fn client_share(measured: Option<&Measured>, label: &str) -> Result<(f64, f64, f64), String> {
    let server = median(measured, label, "peak_time_wait_server_side")?;
    let client = median(measured, label, "peak_time_wait_client_side")?;
    if server + client == 0.0 {
        return Err(format!("{label}: no TIME_WAIT at all in the window"));
    }
    Ok((client / (server + client), server, client))
}

fn close_mode_rows(file: &ClaimsFile, measured: Option<&Measured>) -> Vec<ClaimRow> {
    let claim = &file.claims.pause;
    let pause = humantime::format_duration(claim.pause).to_string();
    [
        (
            "pause",
            "time-wait-pause",
            format!("A {pause} pause after the reply lets the browser close first"),
        ),
        (
            "wait-client",
            "time-wait-wait-for-fin",
            "What works instead (this project's control, not a 1999 claim): waiting for the \
             client's FIN after the reply lets the browser close first"
                .into(),
        ),
    ]
    .into_iter()
    .map(|(label, id, claim_text)| {
        let head = head(
            id,
            &claim_text,
            &claim.source,
            "the clients hold the TIME_WAITs, the server none".into(),
        );
        let basis = format!(
            "measurement close-modes, server {label}: modem users on a connection per request; \
             the run's own TIME_WAITs by side (sock_diag), the most at once in the window; the \
             pause counts from the moment the reply is in the kernel's send buffer, which \
             today's kernels size automatically (1999's were 8 to 64 KiB)"
        );
        match client_share(measured, label) {
            Ok((share, server, client)) => ClaimRow::ruled(
                head,
                format!(
                    "clients hold {} % ({} sockets), the server {} % ({} sockets)",
                    figure(share * 100.0),
                    figure(client),
                    figure((1.0 - share) * 100.0),
                    figure(server)
                ),
                basis,
                Rule::AtLeast {
                    measured: share * 100.0,
                    threshold: claim.min_client_share * 100.0,
                    unit: "the clients' percentage of the TIME_WAITs".into(),
                },
            ),
            Err(why) => ClaimRow::unmeasured(head, why, basis),
        }
    })
    .collect()
}

fn site_1996_row(file: &ClaimsFile, specweb: Option<&Measured>, now: &str) -> ClaimRow {
    let claim = &file.claims.site_1996;
    let single_loop = &file.stand_ins.single_loop;
    let hits_per_s = claim.hits_per_day / 86_400.0;
    let head = head(
        "site-1996",
        &format!(
            "{} carried the 1996 site: {} hits a day",
            capitalized(&claim.machine),
            figure(claim.hits_per_day)
        ),
        &claim.source,
        format!(
            "{} hits/day = {} hits/s on average, {} Mbit/s ({} B per hit), a {} site",
            figure(claim.hits_per_day),
            figure(hits_per_s),
            figure(claim.mbit_per_s),
            figure(claim.mbit_per_s * 1e6 / 8.0 / hits_per_s),
            bytes(claim.site_bytes)
        ),
    );
    let reply_bytes = median(specweb, single_loop, MBIT_PER_S)
        .and_then(|mbit| Ok(mbit * 1e6 / 8.0 / median(specweb, single_loop, OPS_PER_S)?))
        .map(|bytes| {
            format!(
                " (SPECweb96 reply bodies of {} B on average)",
                figure(bytes)
            )
        })
        .unwrap_or_default();
    let basis =
        format!("measurement specweb96, server {single_loop}: its CPU per op{reply_bytes}; {now}");
    match per_core_ops(specweb, single_loop) {
        Ok((ceiling, cpu_us)) => {
            let share = hits_per_s * cpu_us / 1e6;
            ClaimRow::ruled(
                head,
                format!(
                    "{} hits/s x {} µs = {} % of one core today ({} ops/s per core)",
                    figure(hits_per_s),
                    figure(cpu_us),
                    figure(share * 100.0),
                    figure(ceiling)
                ),
                basis,
                Rule::AtMost {
                    measured: share * 100.0,
                    limit: 100.0,
                    unit: "the percentage of one core the 1996 load needs".into(),
                },
            )
        }
        Err(why) => ClaimRow::unmeasured(head, why, basis),
    }
}

fn afpa_row(file: &ClaimsFile, specweb: Option<&Measured>, now: &str) -> ClaimRow {
    let claim = &file.claims.afpa;
    let specweb_claim = &file.claims.specweb96;
    let single_loop = &file.stand_ins.single_loop;
    let slowdown = claim.ops_per_s / specweb_claim.ops_per_s;
    let head = head(
        "afpa-ceiling",
        &format!(
            "{} ops/s sits where a user-space server could be on that hardware",
            figure(specweb_claim.ops_per_s)
        ),
        &claim.source,
        format!(
            "IBM AFPA (kernel mode) {} ops/s on {}; user-space servers {}-{}x slower",
            figure(claim.ops_per_s),
            claim.machine,
            figure(claim.user_mode_slowdown_low),
            figure(claim.user_mode_slowdown_high)
        ),
    );
    let today = match per_core_ops(specweb, single_loop) {
        Ok((ceiling, _)) => format!(
            "today {single_loop} on one core: {} ops/s, {}x AFPA's 1999 ceiling",
            figure(ceiling),
            figure(ceiling / claim.ops_per_s)
        ),
        Err(why) => format!("today's figure: {why}"),
    };
    ClaimRow::ruled(
        head,
        format!(
            "AFPA / Afterburner = {} / {} = {}x; {today}",
            figure(claim.ops_per_s),
            figure(specweb_claim.ops_per_s),
            figure(slowdown)
        ),
        format!(
            "arithmetic on the 1999 figures (no kernel-mode server runs on this kernel); \
             {now}"
        ),
        Rule::InRange {
            value: slowdown,
            low: claim.user_mode_slowdown_low,
            high: claim.user_mode_slowdown_high,
            unit: "AFPA's ops/s over Afterburner's".into(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::claims::Verdict;
    use reports::comparison::{RoundOutcome, ServerRows};

    fn claims_file() -> ClaimsFile {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/claims-1999.toml");
        ClaimsFile::load(&path).unwrap()
    }

    /// A comparison of `servers` (label, CPU µs per op, ops/s) over one valid round.
    fn measured(servers: &[(&str, f64, f64)]) -> Measured {
        let mut comparison = Comparison {
            rounds: 1,
            servers: servers
                .iter()
                .map(|(name, cpu, ops)| ServerRows {
                    name: name.to_string(),
                    rounds: vec![RoundOutcome {
                        round: 1,
                        valid: Some(true),
                        values: [
                            (CPU_PER_OP.to_string(), *cpu),
                            (OPS_PER_S.to_string(), *ops),
                            (MBIT_PER_S.to_string(), ops * 14_700.0 * 8.0 / 1e6),
                            (MEMORY_PER_CONNECTION.to_string(), cpu * 100.0),
                        ]
                        .into_iter()
                        .collect(),
                        ..RoundOutcome::default()
                    }],
                    ..ServerRows::default()
                })
                .collect(),
            ..Comparison::default()
        };
        comparison.summarize();
        Measured {
            comparison: Some(comparison),
            ..Measured::default()
        }
    }

    #[test]
    fn capacity_ratios_are_inverse_cpu_per_op() {
        let m = measured(&[("loop", 40.0, 15_000.0), ("apache-prefork", 200.0, 4_000.0)]);
        let ratio = capacity_ratio(Some(&m), "loop", "apache-prefork").unwrap();
        assert!((ratio.value - 5.0).abs() < 1e-9, "{ratio:?}");
        assert_eq!(ratio.interval, None, "one round has no interval");
        // Not the first server: the ratio of medians.
        let back = capacity_ratio(Some(&m), "apache-prefork", "loop").unwrap();
        assert!((back.value - 0.2).abs() < 1e-9, "{back:?}");
    }

    #[test]
    fn a_missing_server_says_so_and_its_row_cannot_be_measured() {
        let file = claims_file();
        let m = measured(&[("loop", 40.0, 15_000.0)]);
        let error = capacity_ratio(Some(&m), "loop", "apache-prefork").unwrap_err();
        assert!(error.contains("apache-prefork was not measured"), "{error}");
        let rows = ratio_rows(
            &file,
            Some(&m),
            &file.claims.files_512,
            "files-512",
            "x",
            "",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].verdict, Verdict::CannotBeMeasured);
        assert!(rows[0].now.contains("apache-prefork"), "{}", rows[0].now);
        // Zeus has no stand-in at all.
        assert_eq!(rows[2].verdict, Verdict::CannotBeMeasured);
    }

    #[test]
    fn every_row_is_there_and_its_verdict_follows_its_rule() {
        let file = claims_file();
        let specweb = measured(&[
            ("loop", 40.0, 15_000.0),
            ("poll", 45.0, 15_000.0),
            ("apache-prefork", 120.0, 8_000.0),
        ]);
        let measurements: Measurements = [("specweb96".to_string(), specweb)].into();
        let rows = claim_rows(&file, &measurements, "now");
        assert_eq!(rows.len(), 17);
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rows.len(), "row ids are unique");
        for row in &rows {
            match &row.rule {
                Some(rule) => assert_eq!(rule.verdict(), row.verdict, "{}", row.id),
                None => assert_eq!(row.verdict, Verdict::CannotBeMeasured, "{}", row.id),
            }
            assert!(!row.now.is_empty(), "{}", row.id);
        }
        let row = |id: &str| rows.iter().find(|r| r.id == id).unwrap();
        // 1 s / 40 µs = 25,000 ops/s per core, over 3,600.
        assert_eq!(row("specweb96-one-loop").verdict, Verdict::Holds);
        assert!(row("specweb96-one-loop").now.contains("25,000"));
        // 14,700 B per op against 11,146: not the mix.
        assert_eq!(row("specweb96-bytes-per-op").verdict, Verdict::DoesNotHold);
        // 1999: 1,290 / 660 = 1.95x; now 120 / 40 = 3x.
        assert_eq!(row("mix-apache").verdict, Verdict::HoldsInRatio);
        // 1999: 2.4x the best of the class; now poll is 45 / 40 = 1.125x.
        assert_eq!(row("specweb96-best-of-class").verdict, Verdict::DoesNotHold);
        assert_eq!(row("time-wait-arithmetic").verdict, Verdict::DoesNotHold);
        assert_eq!(row("afpa-ceiling").verdict, Verdict::Holds);
        assert_eq!(row("site-1996").verdict, Verdict::Holds);
        // Not measured here: the slow-line and close-mode measurements are missing.
        assert_eq!(row("copies-slow-small").verdict, Verdict::CannotBeMeasured);
        assert_eq!(row("time-wait-pause").verdict, Verdict::CannotBeMeasured);
    }
}
