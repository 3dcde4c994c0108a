//! Merging the parts of a sharded run (`loadgen run --shard I/N` on each generator, `loadgen
//! serve` on the server's host) into one ordinary [`RunResult`]: the checks that the parts
//! belong together, and the rule each field merges by. Pure: results in, a result or a refusal
//! out; reading and writing files is `loadgen merge`'s.
//!
//! How the fields merge:
//! - Counts add up: ops, bytes, errors by kind, requests sent, connections, queued arrivals,
//!   page views. Rates are recomputed over the common window: the shortest measured window of
//!   the generator shards (they all measure the scenario's `duration`, give or take the
//!   scheduler's milliseconds).
//! - Histograms are decoded and added (HdrHistogram's `add`: bucket by bucket, exact, when the
//!   configurations match, as they do for parts written by one loadgen), then their figures are
//!   read off the sum. Percentiles are never averaged.
//! - `offered` is the whole population's (each shard records the scenario's figure, not its
//!   own share): taken once.
//! - `peak_open_connections` is not mergeable exactly: the shards' peaks need not coincide. The
//!   merged figure is the larger of the highest interval of the summed timelines (connections
//!   open at the end of each interval, all shards together) and the largest single shard's
//!   peak: a lower bound of the true peak, which is at most the sum of the shards' peaks.
//! - Little's law (`concurrency`): the time averages add up, the mean connection lifetime is
//!   weighted by the connections that closed, and the predictions are recomputed as the
//!   generator computes them (connections/s x lifetime; completed ops/s x mean latency).
//! - Timelines are lined up by wall clock (each point's `start_unix_ns`): a part that began
//!   more than half an interval after the earliest is shifted by whole intervals. The series
//!   add up interval by interval (a shorter series counts as zero past its end), and each
//!   interval's latency histograms are added before its p50 and p99 are read off.
//! - Live viewers (`viewer`): every histogram added, every count summed, the stream and line
//!   as the first part announced them; the per-line-rate figures are matched by their bit rate.
//!   Their timeline series (frames, skips, joins, leaves, kicks) add up per interval, and each
//!   interval's frame-age histograms are added before its p50 and p99 are read off.
//! - Kernel figures: what concerns the server (its process, its port's server-side TIME_WAIT,
//!   its listener's overflows and drops, the host-wide sockstat) comes from the server's part
//!   alone, once. Client-side TIME_WAITs are the generators' hosts': their samples are lined up
//!   by time since the point's start (the nearest sample of each) and added for the merged
//!   series; integrals, carried-over counts and peaks add up over the hosts (one shard per
//!   network namespace). A sum of peaks is the peak of the sum whenever the hosts peak
//!   together, which they do when the load point is shorter than the TIME_WAIT lifetime (60 s
//!   on Linux): TIME_WAITs then only accumulate, and every host peaks at the window's end.
//!   Reading the peak off the summed samples instead would lose each host's last sockets to
//!   the samplers' different ticks. The server's per-op figures are recomputed with the
//!   merged ops. The generator CPU share is the busiest shard's (a generator-bound shard is
//!   what makes a run generator-bound); generator memory adds up over the processes.
//!
//! - Where it ran: the server's part gives the server (its command, address and counters) and
//!   the machine (else shard 0's); shard 0 gives the isolation and the pinned CPUs; the worker
//!   threads add up; the start is the agreed `--start-at`.
//!
//! Validity: the merged run is valid only when every part was, the clocks can be trusted to
//! line up (one kernel, or every host's clock synchronised within [`CLOCK_MAX_ERROR_US`]), and
//! every shard measured every point. Each part's reasons and warnings are kept, prefixed with
//! `shard I/N: ` or `server: `.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::model::{
    decode_histogram, encode_histogram, ClassResult, Concurrency, HistogramData, KernelAccounting,
    KernelSample, KernelSummary, LatencySet, LineFigures, LoadPoint, PopulationResult,
    PopulationTimeline, RunResult, ShardInfo, ShardSummary, Timeline, Totals, ViewerFigures,
    ViewerRateFigures, SCHEMA_VERSION,
};

/// The largest `maxerror` (`adjtimex(2)`) a host's clock may report for the timelines of parts
/// on several kernels to be trusted to line up, in microseconds: 100 ms, a tenth of the
/// one-second timeline interval and a twentieth of a two-second window. NTP or chrony on a LAN
/// keep it at a few milliseconds; a clock that was never synchronised grows it by 500 µs/s
/// (RFC 5905 section 6, `PHI`) until the kernel marks it unsynchronised at 16 s.
pub const CLOCK_MAX_ERROR_US: i64 = 100_000;

/// The CPU share above which generator shards that ran on the same CPUs of one kernel set the
/// pace together (the limit `loadgen run` applies to one generator: 90 % of its CPUs). Each shard measures its share against its CPUs alone, so a dozen
/// shards on one busy core each look idle; their sum does not.
pub const SHARED_GENERATOR_CPU_LIMIT: f64 = 0.9;

/// Generator shards that ran on the same CPUs of one kernel (same `boot_id`, same pinned CPUs)
/// and their CPU shares added up, largest first; shards whose kernel is unknown stand alone.
fn shared_cpu_groups<'a>(
    shards: impl Iterator<Item = (&'a Known<'a>, f64)>,
) -> Vec<(Vec<String>, f64)> {
    let mut groups: BTreeMap<(String, Vec<usize>), (Vec<String>, f64)> = BTreeMap::new();
    for (k, share) in shards {
        let key = match &k.info.boot_id {
            Some(boot) => (boot.clone(), k.result().generator.cpus.clone()),
            None => (k.role.to_string(), Vec::new()),
        };
        let group = groups.entry(key).or_default();
        group.0.push(k.role.to_string());
        group.1 += share;
    }
    let mut groups: Vec<_> = groups.into_values().collect();
    groups.sort_by(|a, b| b.1.total_cmp(&a.1));
    groups
}

/// One part of a sharded run: the directory its `result.json` was read from, and the result.
#[derive(Clone, Debug)]
pub struct Part {
    /// The part's directory (`.../shard-1-of-3`, `.../server`), as the messages name it.
    pub source: PathBuf,
    /// What it wrote.
    pub result: RunResult,
}

/// Why the parts were not merged: each message names the parts at fault by their directory.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no parts given: name the directories of a sharded run's parts")]
    NoParts,
    /// A result of a run on one generator (or a merged result) among the parts.
    #[error(
        "{0}: not part of a sharded run (its result.json has no `shard`): give the shard-I-of-N \
         and server directories of one `loadgen run --shard` run"
    )]
    NotSharded(String),
    /// A part whose `shard.role` is neither `generator` nor `server`, or whose index is not
    /// below its count.
    #[error("{part}: {what}")]
    BadPart {
        /// The part's directory.
        part: String,
        /// What is wrong with its `shard`.
        what: String,
    },
    /// Only the server's part: nothing was measured from the clients' side.
    #[error("no generator shard among the parts, only the server's ({0})")]
    NoGenerators(String),
    /// Two generator parts that say different N.
    #[error(
        "the shards disagree on their number: {first} says {first_count} shards, {second} says \
         {second_count}"
    )]
    ShardCount {
        /// The first part, described.
        first: String,
        /// Its N.
        first_count: u32,
        /// The part that disagrees.
        second: String,
        /// Its N.
        second_count: u32,
    },
    /// Generator shards that were not given.
    #[error("{} missing (parts given: {given})", missing_text(.missing, *.count))]
    Missing {
        /// The indices not given.
        missing: Vec<u32>,
        /// N.
        count: u32,
        /// The directories that were given.
        given: String,
    },
    /// One shard given twice.
    #[error("shard {index}/{count} is given twice: {first} and {second}")]
    Duplicate {
        /// Its index.
        index: u32,
        /// N.
        count: u32,
        /// One directory.
        first: String,
        /// The other.
        second: String,
    },
    /// Two server parts.
    #[error("two server parts: {first} and {second} (a sharded run has one server side)")]
    TwoServers {
        /// One directory.
        first: String,
        /// The other.
        second: String,
    },
    /// Two parts that differ where the parts of one run agree.
    #[error(
        "the parts do not belong to one run: {field} differs between {first} ({first_value}) \
         and {second} ({second_value})"
    )]
    Mismatch {
        /// What differs: `scenario_toml`, `seed`, `load point 2 label`, ...
        field: String,
        /// The part compared against, described.
        first: String,
        /// Its value.
        first_value: String,
        /// The part that differs, described.
        second: String,
        /// Its value.
        second_value: String,
    },
    /// A stored histogram that does not decode.
    #[error("{part}: {field} does not decode: {error}")]
    Histogram {
        /// The part, described.
        part: String,
        /// Where the histogram is.
        field: String,
        /// What the decoder said.
        error: String,
    },
}

/// `shard 2/3 is missing` or `shards 0/4 and 2/4 are missing`.
fn missing_text(missing: &[u32], count: u32) -> String {
    let names: Vec<String> = missing.iter().map(|i| format!("{i}/{count}")).collect();
    match names.as_slice() {
        [one] => format!("shard {one} is"),
        [rest @ .., last] => format!("shards {} and {last} are", rest.join(", ")),
        [] => "no shard is".into(),
    }
}

/// Which part a part is: a generator shard or the server side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Generator { index: u32, count: u32 },
    Server,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Generator { index, count } => write!(f, "shard {index}/{count}"),
            Role::Server => write!(f, "server"),
        }
    }
}

/// A part with its role read and checked.
struct Known<'a> {
    part: &'a Part,
    info: &'a ShardInfo,
    role: Role,
}

impl Known<'_> {
    fn result(&self) -> &RunResult {
        &self.part.result
    }

    /// `shard 1/3 (runs/quick/2026-11-30T09-00-00Z/shard-1-of-3)`.
    fn describe(&self) -> String {
        format!("{} ({})", self.role, self.part.source.display())
    }
}

/// Merges the parts of one sharded run into one result: the generator shards 0..N each exactly
/// once, and at most one server part. `command_line` is recorded as the merged result's (the
/// `loadgen merge` that made it).
///
/// Refused, naming the parts: a result that is not a part of a sharded run; no generator
/// shard; shards that disagree on N; a shard missing or given twice; two server parts; parts
/// that differ in scenario name or text, seed, agreed start, slot, the number or labels of the
/// load points (a part that stopped early may have fewer), the timeline's interval, or the
/// populations and classes of a point; a histogram that does not decode.
///
/// Merged but invalid: a part was invalid (its reasons kept, prefixed), a shard did not measure
/// a point the others did, or the parts ran on several kernels whose clocks are not all
/// synchronised within [`CLOCK_MAX_ERROR_US`]. Without a server part the merge goes on with a
/// warning: the server-side figures are then absent.
pub fn merge(parts: &[Part], command_line: &str) -> Result<RunResult, MergeError> {
    let ordered = order_parts(parts)?;
    let generators: Vec<&Known> = ordered
        .iter()
        .filter(|k| matches!(k.role, Role::Generator { .. }))
        .collect();
    let server = ordered.iter().find(|k| k.role == Role::Server);
    check_agreement(&ordered)?;

    let first = generators[0];
    let mut merged = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: first.result().tool.clone(),
        tool_version: first.result().tool_version.clone(),
        scenario_name: first.result().scenario_name.clone(),
        scenario_toml: first.result().scenario_toml.clone(),
        seed: first.result().seed,
        started_utc: humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + Duration::from_millis(first.info.start_at_unix_ms),
        )
        .to_string(),
        valid: true,
        interrupted: ordered.iter().any(|k| k.result().interrupted),
        partial: ordered.iter().any(|k| k.result().partial),
        server: server.unwrap_or(first).result().server.clone(),
        generator: generator_info(&generators),
        isolation: first.result().isolation.clone(),
        environment: server.unwrap_or(first).result().environment.clone(),
        command_line: command_line.to_string(),
        shard: None,
        shards: ordered.iter().map(shard_summary).collect(),
        ..RunResult::default()
    };
    for known in &ordered {
        let result = known.result();
        if !result.valid {
            merged.valid = false;
        }
        merged.invalid_reasons.extend(
            result
                .invalid_reasons
                .iter()
                .map(|reason| format!("{}: {reason}", known.role)),
        );
        merged.warnings.extend(
            result
                .warnings
                .iter()
                .map(|warning| format!("{}: {warning}", known.role)),
        );
    }
    if !merged.valid && merged.invalid_reasons.is_empty() {
        merged
            .invalid_reasons
            .push("a part is marked invalid without saying why".into());
    }
    let clock_problems = clock_problems(&ordered);
    if !clock_problems.is_empty() {
        merged.valid = false;
        merged.invalid_reasons.push(format!(
            "the parts ran on several kernels and their clocks cannot be trusted to line up \
             (each must be synchronised with a maximum error under {} ms): {}",
            CLOCK_MAX_ERROR_US / 1000,
            clock_problems.join("; ")
        ));
    }
    if server.is_none() {
        merged.warnings.push(
            "no server part (`loadgen serve`) was given: the server-side figures (its CPU, \
             memory and counters, server-side TIME_WAIT, listen queue drops) are absent"
                .into(),
        );
    }
    if let Some(warning) = shared_host_warning(&generators) {
        merged.warnings.push(warning);
    }

    let planned = planned_points(&ordered);
    for index in 0..planned {
        let measured: Vec<(&Known, &LoadPoint)> = generators
            .iter()
            .filter_map(|k| k.result().load_points.get(index).map(|p| (*k, p)))
            .collect();
        if measured.is_empty() {
            merged.valid = false;
            merged.partial = true;
            merged.invalid_reasons.push(format!(
                "load points {} to {planned} were measured by no generator shard",
                index + 1
            ));
            break;
        }
        let label = &measured[0].1.label;
        let absent: Vec<String> = generators
            .iter()
            .filter(|k| k.result().load_points.len() <= index)
            .map(|k| k.describe())
            .collect();
        if !absent.is_empty() {
            merged.valid = false;
            merged.partial = true;
            merged.invalid_reasons.push(format!(
                "load point '{label}' lacks the share of {} (stopped before it): its figures \
                 count the other shards' load only",
                absent.join(", ")
            ));
        }
        let server_point = server.and_then(|k| k.result().load_points.get(index).map(|p| (k, p)));
        let point = merge_point(&measured, server_point, &mut merged.warnings)?;
        let shared = shared_cpu_groups(
            measured
                .iter()
                .filter_map(|(k, p)| Some((*k, p.kernel.as_ref()?.summary.loadgen_cpu_share))),
        );
        for (shards, share) in &shared {
            if shards.len() > 1 && *share > SHARED_GENERATOR_CPU_LIMIT {
                merged.valid = false;
                merged.invalid_reasons.push(format!(
                    "load point '{label}': {} ran on the same CPUs of one kernel and used {:.0} % \
                     of them together (over {:.0} %): the generators, not the server, may have \
                     set the pace; give them more CPUs or fewer shards per CPU",
                    shards.join(", "),
                    share * 100.0,
                    SHARED_GENERATOR_CPU_LIMIT * 100.0
                ));
            }
        }
        if absent.is_empty() {
            if let Some(warning) = request_count_warning(&point) {
                merged.warnings.push(warning);
            }
        }
        merged.load_points.push(point);
    }
    Ok(merged)
}

/// The parts with their roles, checked: generator shards by index, then the server.
fn order_parts(parts: &[Part]) -> Result<Vec<Known<'_>>, MergeError> {
    if parts.is_empty() {
        return Err(MergeError::NoParts);
    }
    let mut known = Vec::new();
    for part in parts {
        let info = part
            .result
            .shard
            .as_ref()
            .ok_or_else(|| MergeError::NotSharded(part.source.display().to_string()))?;
        let role = match info.role.as_str() {
            "generator" if info.index < info.count => Role::Generator {
                index: info.index,
                count: info.count,
            },
            "generator" => {
                return Err(MergeError::BadPart {
                    part: part.source.display().to_string(),
                    what: format!(
                        "shard index {} is not below the number of shards, {}",
                        info.index, info.count
                    ),
                })
            }
            "server" => Role::Server,
            other => {
                return Err(MergeError::BadPart {
                    part: part.source.display().to_string(),
                    what: format!("unknown role `{other}` (a part is a generator or the server)"),
                })
            }
        };
        known.push(Known { part, info, role });
    }
    let servers: Vec<&Known> = known.iter().filter(|k| k.role == Role::Server).collect();
    if let [first, second, ..] = servers.as_slice() {
        return Err(MergeError::TwoServers {
            first: first.part.source.display().to_string(),
            second: second.part.source.display().to_string(),
        });
    }
    let mut generators: Vec<Known> = Vec::new();
    let mut server = None;
    for k in known {
        match k.role {
            Role::Generator { .. } => generators.push(k),
            Role::Server => server = Some(k),
        }
    }
    let Some(first) = generators.first() else {
        let given = parts
            .iter()
            .map(|p| p.source.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(MergeError::NoGenerators(given));
    };
    let count = first.info.count;
    if let Some(other) = generators.iter().find(|k| k.info.count != count) {
        return Err(MergeError::ShardCount {
            first: first.describe(),
            first_count: count,
            second: other.describe(),
            second_count: other.info.count,
        });
    }
    generators.sort_by_key(|k| k.info.index);
    if let Some(pair) = generators
        .windows(2)
        .find(|pair| pair[0].info.index == pair[1].info.index)
    {
        return Err(MergeError::Duplicate {
            index: pair[0].info.index,
            count,
            first: pair[0].part.source.display().to_string(),
            second: pair[1].part.source.display().to_string(),
        });
    }
    let missing: Vec<u32> = (0..count)
        .filter(|i| !generators.iter().any(|k| k.info.index == *i))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing,
            count,
            given: parts
                .iter()
                .map(|p| p.source.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    generators.extend(server);
    Ok(generators)
}

/// Refuses parts that differ where the parts of one run agree (see [`merge`]).
fn check_agreement(ordered: &[Known]) -> Result<(), MergeError> {
    let reference = &ordered[0];
    let mismatch = |field: &str, other: &Known, first_value: String, second_value: String| {
        MergeError::Mismatch {
            field: field.to_string(),
            first: reference.describe(),
            first_value,
            second: other.describe(),
            second_value,
        }
    };
    let r = reference.result();
    for other in &ordered[1..] {
        let o = other.result();
        if o.scenario_name != r.scenario_name {
            return Err(mismatch(
                "scenario_name",
                other,
                format!("`{}`", r.scenario_name),
                format!("`{}`", o.scenario_name),
            ));
        }
        if o.scenario_toml != r.scenario_toml {
            let (line, ours, theirs) = first_difference(&r.scenario_toml, &o.scenario_toml);
            return Err(mismatch(
                &format!("scenario_toml (line {line})"),
                other,
                format!("`{ours}`"),
                format!("`{theirs}`"),
            ));
        }
        if o.seed != r.seed {
            return Err(mismatch(
                "seed",
                other,
                r.seed.to_string(),
                o.seed.to_string(),
            ));
        }
        if other.info.start_at_unix_ms != reference.info.start_at_unix_ms {
            return Err(mismatch(
                "start_at_unix_ms (--start-at)",
                other,
                reference.info.start_at_unix_ms.to_string(),
                other.info.start_at_unix_ms.to_string(),
            ));
        }
        if other.info.slot_ms != reference.info.slot_ms {
            return Err(mismatch(
                "slot_ms",
                other,
                reference.info.slot_ms.to_string(),
                other.info.slot_ms.to_string(),
            ));
        }
    }
    // A part that stopped early (partial) may have fewer points; the others have them all.
    let complete: Vec<&Known> = ordered.iter().filter(|k| !k.result().partial).collect();
    let planned = planned_points(ordered);
    for other in ordered {
        let points = other.result().load_points.len();
        if points > planned || (!other.result().partial && points != planned) {
            let reference = complete.first().copied().unwrap_or(reference);
            return Err(MergeError::Mismatch {
                field: "number of load points".into(),
                first: reference.describe(),
                first_value: planned.to_string(),
                second: other.describe(),
                second_value: points.to_string(),
            });
        }
    }
    for index in 0..planned {
        let having: Vec<(&Known, &LoadPoint)> = ordered
            .iter()
            .filter_map(|k| k.result().load_points.get(index).map(|p| (k, p)))
            .collect();
        let Some(&(first, point)) = having.first() else {
            continue;
        };
        for &(other, theirs) in &having[1..] {
            let differs = |field: String, a: String, b: String| MergeError::Mismatch {
                field,
                first: first.describe(),
                first_value: a,
                second: other.describe(),
                second_value: b,
            };
            if theirs.label != point.label {
                return Err(differs(
                    format!("load point {} label", index + 1),
                    format!("'{}'", point.label),
                    format!("'{}'", theirs.label),
                ));
            }
            if theirs.timeline.interval_s != point.timeline.interval_s {
                return Err(differs(
                    format!("load point '{}' timeline interval_s", point.label),
                    point.timeline.interval_s.to_string(),
                    theirs.timeline.interval_s.to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// The load points of the run: those of the parts that ran to the end (all the same number, or
/// refused), else the most any part has.
fn planned_points(ordered: &[Known]) -> usize {
    ordered
        .iter()
        .find(|k| !k.result().partial)
        .or_else(|| ordered.iter().max_by_key(|k| k.result().load_points.len()))
        .map_or(0, |k| k.result().load_points.len())
}

/// The first line where two texts differ: its number (from 1) and both versions.
fn first_difference(a: &str, b: &str) -> (usize, String, String) {
    let (mut ours, mut theirs) = (a.lines(), b.lines());
    let mut line = 1;
    loop {
        match (ours.next(), theirs.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            (x, y) => {
                let show = |l: Option<&str>| l.unwrap_or("(end of text)").trim().to_string();
                return (line, show(x), show(y));
            }
        }
    }
}

/// Why the parts' clocks cannot be trusted to line up: nothing when they all ran on one
/// kernel (one `boot_id`), else one entry per part whose clock is not synchronised within
/// [`CLOCK_MAX_ERROR_US`].
fn clock_problems(ordered: &[Known]) -> Vec<String> {
    let first_boot = ordered[0].info.boot_id.as_ref();
    if first_boot.is_some()
        && ordered
            .iter()
            .all(|k| k.info.boot_id.as_ref() == first_boot)
    {
        return Vec::new();
    }
    ordered
        .iter()
        .filter_map(|k| {
            let clock = &k.info.clock;
            let problem = match (clock.synchronised, clock.max_error_us) {
                (Some(true), Some(error)) if error < CLOCK_MAX_ERROR_US => return None,
                (Some(true), Some(error)) => {
                    format!("its clock's maximum error is {} ms", error as f64 / 1000.0)
                }
                (Some(true), None) => "its clock's maximum error is unknown".into(),
                (Some(false), _) => "its clock is not synchronised (adjtimex: STA_UNSYNC)".into(),
                (None, _) => "its clock's synchronisation is unknown".into(),
            };
            Some(format!(
                "{} on {}: {problem}",
                k.describe(),
                k.info.hostname
            ))
        })
        .collect()
}

/// The network namespace a part ran in, as (boot id, namespace): parts with the same one saw the
/// same sockets. Keyed by kernel and namespace, not host name: containers on one node have host
/// names of their own but may share a namespace. `None` when either was not recorded.
fn network_namespace<'a>(k: &'a Known<'_>) -> Option<(&'a str, &'a str)> {
    Some((k.info.boot_id.as_deref()?, k.info.net_namespace.as_deref()?))
}

/// A warning when generator shards shared a network namespace of one kernel: each shard's
/// sampler read every client-side TIME_WAIT of the server's port there, so the merge counts
/// them once (from the first shard), and each shard's own figure in the shards section holds
/// the others' too. Shards whose namespace was not recorded are assumed apart, and said so.
fn shared_host_warning(generators: &[&Known]) -> Option<String> {
    let mut namespaces: BTreeMap<(&str, &str), (&str, Vec<String>)> = BTreeMap::new();
    let mut unknown = Vec::new();
    for k in generators {
        match network_namespace(k) {
            Some(key) => namespaces
                .entry(key)
                .or_insert_with(|| (k.info.hostname.as_str(), Vec::new()))
                .1
                .push(k.role.to_string()),
            None => unknown.push(k.role.to_string()),
        }
    }
    let shared: Vec<String> = namespaces
        .iter()
        .filter(|(_, (_, shards))| shards.len() > 1)
        .map(|((_, namespace), (host, shards))| {
            format!("{} in {namespace} on {host}", shards.join(", "))
        })
        .collect();
    let mut said = Vec::new();
    if !shared.is_empty() {
        said.push(format!(
            "several shards shared a network namespace ({}): its client-side TIME_WAIT is \
             counted once, and each of those shards' own TIME_WAIT figures include the others'",
            shared.join("; ")
        ));
    }
    if unknown.len() > 1 {
        said.push(format!(
            "the network namespaces of {} were not recorded: their client-side TIME_WAIT is \
             added up, which counts a shared namespace's sockets once per shard",
            unknown.join(", ")
        ));
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// The generators together: their worker threads added up, the first shard's CPUs (each
/// host pins its own), every source address once.
fn generator_info(generators: &[&Known]) -> crate::model::GeneratorInfo {
    let mut info = generators[0].result().generator.clone();
    info.workers = generators
        .iter()
        .map(|k| k.result().generator.workers)
        .sum();
    for k in &generators[1..] {
        for address in &k.result().generator.source_addresses {
            if !info.source_addresses.contains(address) {
                info.source_addresses.push(address.clone());
            }
        }
    }
    info
}

/// A part's own figures, for the merged result's `shards`.
fn shard_summary(known: &Known) -> ShardSummary {
    let result = known.result();
    let generator = matches!(known.role, Role::Generator { .. });
    let kernels = || result.load_points.iter().filter_map(|p| p.kernel.as_ref());
    let headline =
        crate::prepare::headline_index(result).and_then(|n| result.load_points[n].kernel.as_ref());
    ShardSummary {
        role: known.info.role.clone(),
        index: known.info.index,
        source: known.part.source.display().to_string(),
        hostname: known.info.hostname.clone(),
        boot_id: known.info.boot_id.clone(),
        clock: known.info.clock.clone(),
        valid: result.valid,
        invalid_reasons: result.invalid_reasons.clone(),
        ops: result.load_points.iter().map(|p| p.totals.ops).sum(),
        errors: result
            .load_points
            .iter()
            .map(|p| p.totals.errors_total)
            .sum(),
        start_offset_ms: result
            .load_points
            .first()
            .and_then(|p| p.start_unix_ns)
            // In integers first: Unix nanoseconds are beyond an f64's exact range.
            .map(|ns| {
                (i128::from(ns) - i128::from(known.info.start_at_unix_ms) * 1_000_000) as f64 / 1e6
            }),
        loadgen_cpu_share: headline
            .filter(|_| generator)
            .map(|k| k.summary.loadgen_cpu_share),
        peak_time_wait_client_side: kernels()
            .map(|k| k.summary.peak_time_wait_client_side)
            .max()
            .filter(|_| generator),
        loadgen_peak_rss_bytes: kernels()
            .filter_map(|k| k.summary.loadgen_peak_rss_bytes)
            .max()
            .filter(|_| generator),
    }
}

/// A warning when the server counted another number of requests over a point than the
/// generators sent (warm-up included on both sides); `None` when they agree or the server's
/// count is not known.
fn request_count_warning(point: &LoadPoint) -> Option<String> {
    let counted = point
        .server_stats
        .as_ref()?
        .get("requests_total")?
        .as_u64()?;
    let sent: u64 = point.populations.iter().map(|p| p.requests_sent).sum();
    (counted != sent).then(|| {
        format!(
            "load point '{}': the server counted {counted} requests and the shards sent {sent} \
             (both warm-up included)",
            point.label
        )
    })
}

/// One load point of the merged run from the generators' (`measured`, in shard order) and the
/// server's.
fn merge_point(
    measured: &[(&Known, &LoadPoint)],
    server: Option<(&Known, &LoadPoint)>,
    warnings: &mut Vec<String>,
) -> Result<LoadPoint, MergeError> {
    let (_, first) = measured[0];
    let measured_s = measured
        .iter()
        .map(|(_, p)| p.measured_s)
        .fold(f64::INFINITY, f64::min);
    let interval_s = first.timeline.interval_s;
    let earliest = measured.iter().filter_map(|(_, p)| p.start_unix_ns).min();
    let offsets: Vec<usize> = measured
        .iter()
        .map(|(k, p)| match (p.start_unix_ns, earliest) {
            (Some(start), Some(earliest)) if interval_s > 0.0 => {
                let late_s = (start - earliest) as f64 / 1e9;
                let shift = (late_s / interval_s).round() as usize;
                if shift > 0 {
                    warnings.push(format!(
                        "load point '{}': {} began {} ms after the earliest shard; its \
                         timeline is shifted by {shift} interval{}",
                        p.label,
                        k.role,
                        (late_s * 1000.0).round(),
                        if shift == 1 { "" } else { "s" }
                    ));
                }
                shift
            }
            _ => 0,
        })
        .collect();
    if earliest.is_some() && measured.iter().any(|(_, p)| p.start_unix_ns.is_none()) {
        warnings.push(format!(
            "load point '{}': some shards did not record when they began; their timelines are \
             taken as starting with the others'",
            first.label
        ));
    }
    let (timeline, peaks) = merge_timeline(measured, &offsets)?;

    for (k, p) in &measured[1..] {
        let names = |point: &LoadPoint| {
            point
                .populations
                .iter()
                .map(|q| q.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if names(p) != names(first) {
            return Err(MergeError::Mismatch {
                field: format!("load point '{}' populations", first.label),
                first: measured[0].0.describe(),
                first_value: names(first),
                second: k.describe(),
                second_value: names(p),
            });
        }
    }
    let mut populations = Vec::new();
    for (n, _) in first.populations.iter().enumerate() {
        let shares: Vec<Share> = measured
            .iter()
            .map(|(k, p)| Share {
                known: k,
                population: &p.populations[n],
                measured_s: p.measured_s,
            })
            .collect();
        let mut population = merge_population(&first.label, &shares, measured_s)?;
        let largest_shard = shares
            .iter()
            .map(|s| s.population.peak_open_connections)
            .max()
            .unwrap_or(0);
        let summed_timeline = peaks.get(&population.name).copied().unwrap_or(0);
        population.peak_open_connections = largest_shard.max(summed_timeline);
        populations.push(population);
    }
    let totals = sum_totals(measured.iter().map(|(_, p)| &p.totals), measured_s);
    let peak_open: u64 = populations.iter().map(|p| p.peak_open_connections).sum();
    let window = (
        (first.warmup_s * 1000.0) as u64,
        ((first.warmup_s + measured_s) * 1000.0) as u64,
    );
    let kernel = merge_kernel(
        measured,
        server,
        &KernelWindow {
            from_ms: window.0,
            to_ms: window.1,
            ops: totals.ops,
            peak_open_connections: peak_open,
        },
    );
    Ok(LoadPoint {
        label: first.label.clone(),
        load_fraction: first.load_fraction,
        warmup_s: first.warmup_s,
        measured_s,
        totals,
        populations,
        timeline,
        kernel,
        server_stats: server.and_then(|(_, p)| p.server_stats.clone()),
        start_unix_ns: earliest,
    })
}

/// Totals added up, with rates over `measured_s`.
fn sum_totals<'a>(all: impl Iterator<Item = &'a Totals>, measured_s: f64) -> Totals {
    let mut sum = Totals::default();
    for t in all {
        sum.ops += t.ops;
        sum.bytes += t.bytes;
        sum.errors_total += t.errors_total;
        for (kind, n) in &t.errors {
            *sum.errors.entry(kind.clone()).or_default() += n;
        }
    }
    let per_s = |x: u64| {
        if measured_s > 0.0 {
            x as f64 / measured_s
        } else {
            0.0
        }
    };
    sum.ops_per_s = per_s(sum.ops);
    sum.mbit_per_s = per_s(sum.bytes) * 8.0 / 1e6;
    sum
}

/// The sum of histograms (exact when they share a configuration, as the parts of one run do),
/// as stored figures. `field` and each part name a histogram that does not decode. A histogram
/// never stored (all zero, no encoding) counts as empty.
fn add_histograms<'a, 'b: 'a>(
    field: &str,
    all: impl Iterator<Item = (&'a Known<'b>, &'a HistogramData)>,
) -> Result<HistogramData, MergeError> {
    let mut sum: Option<Histogram<u64>> = None;
    for (known, data) in all {
        if data.hdr_v2_deflate_base64.is_empty() && data.count == 0 {
            continue;
        }
        let histogram = data.decode().map_err(|error| MergeError::Histogram {
            part: known.describe(),
            field: field.to_string(),
            error,
        })?;
        add_into(&mut sum, &histogram);
    }
    Ok(sum.map_or_else(HistogramData::default, |h| {
        HistogramData::from_histogram(&h)
    }))
}

/// Adds `histogram` to `sum` (the first one becomes it). The sum resizes itself when a value
/// lies outside its range, so adding cannot fail.
fn add_into(sum: &mut Option<Histogram<u64>>, histogram: &Histogram<u64>) {
    match sum {
        Some(sum) => sum
            .add(histogram)
            .expect("an auto-resizing histogram takes any value"),
        None => {
            let mut first = histogram.clone();
            first.auto(true);
            *sum = Some(first);
        }
    }
}

/// Latency sets added up.
fn add_latency_sets<'a, 'b: 'a>(
    field: &str,
    all: impl Iterator<Item = (&'a Known<'b>, &'a LatencySet)> + Clone,
) -> Result<LatencySet, MergeError> {
    Ok(LatencySet {
        connect_us: add_histograms(
            &format!("{field}.connect_us"),
            all.clone().map(|(k, l)| (k, &l.connect_us)),
        )?,
        first_byte_us: add_histograms(
            &format!("{field}.first_byte_us"),
            all.clone().map(|(k, l)| (k, &l.first_byte_us)),
        )?,
        total_us: add_histograms(
            &format!("{field}.total_us"),
            all.map(|(k, l)| (k, &l.total_us)),
        )?,
    })
}

/// One shard's share of a population at one point, and that shard's own measured window.
struct Share<'a> {
    known: &'a Known<'a>,
    population: &'a PopulationResult,
    measured_s: f64,
}

/// One population over the shards (its peak of open connections is set by the caller).
fn merge_population(
    label: &str,
    shares: &[Share],
    measured_s: f64,
) -> Result<PopulationResult, MergeError> {
    let (first_part, first) = (shares[0].known, shares[0].population);
    let field = format!("load point '{label}' population '{}'", first.name);
    for share in &shares[1..] {
        let p = share.population;
        let classes = |q: &PopulationResult| {
            q.classes
                .iter()
                .map(|c| c.class.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let differs = |what: &str, a: String, b: String| MergeError::Mismatch {
            field: format!("{field} {what}"),
            first: first_part.describe(),
            first_value: a,
            second: share.known.describe(),
            second_value: b,
        };
        if p.kind != first.kind {
            return Err(differs("kind", first.kind.clone(), p.kind.clone()));
        }
        if classes(p) != classes(first) {
            return Err(differs("classes", classes(first), classes(p)));
        }
    }
    let sum = |f: fn(&PopulationResult) -> u64| shares.iter().map(|s| f(s.population)).sum::<u64>();
    let latency = add_latency_sets(
        &format!("{field} latency"),
        shares.iter().map(|s| (s.known, &s.population.latency)),
    )?;
    let mut classes = Vec::new();
    for (n, class) in first.classes.iter().enumerate() {
        let of_class = || {
            shares
                .iter()
                .map(move |s| (s.known, &s.population.classes[n]))
        };
        classes.push(ClassResult {
            class: class.class.clone(),
            ops: of_class().map(|(_, c)| c.ops).sum(),
            bytes: of_class().map(|(_, c)| c.bytes).sum(),
            latency: add_latency_sets(
                &format!("{field} class '{}' latency", class.class),
                of_class().map(|(k, c)| (k, &c.latency)),
            )?,
        });
    }
    let schedule_lag_us = if shares
        .iter()
        .any(|s| s.population.schedule_lag_us.is_some())
    {
        Some(add_histograms(
            &format!("{field} schedule_lag_us"),
            shares
                .iter()
                .filter_map(|s| s.population.schedule_lag_us.as_ref().map(|h| (s.known, h))),
        )?)
    } else {
        None
    };
    let totals = sum_totals(shares.iter().map(|s| &s.population.totals), measured_s);
    let concurrency = merge_concurrency(shares, measured_s, totals.ops, &latency.total_us);
    let line = merge_line(&field, shares)?;
    Ok(PopulationResult {
        name: first.name.clone(),
        kind: first.kind.clone(),
        offered: first.offered,
        totals,
        latency,
        classes,
        schedule_lag_us,
        queued_arrivals: sum(|p| p.queued_arrivals),
        unanswered: sum(|p| p.unanswered),
        retries_on_new_connection: sum(|p| p.retries_on_new_connection),
        peak_open_connections: 0,
        requests_sent: sum(|p| p.requests_sent),
        responses_completed: sum(|p| p.responses_completed),
        connections_established: sum(|p| p.connections_established),
        concurrency,
        line,
        viewer: merge_viewer(&field, shares)?,
    })
}

/// Little's law over the shards: time averages and counts add up, the connections each shard
/// opened are its rate times its own window, the lifetime is weighted by the connections that
/// closed, and the predictions are recomputed as the generator computes them (loadgen's
/// `ConcurrencyRecorder::figures`) with the merged ops and mean latency.
fn merge_concurrency(
    shares: &[Share],
    measured_s: f64,
    ops: u64,
    total_us: &HistogramData,
) -> Option<Concurrency> {
    let parts: Vec<(&Concurrency, f64)> = shares
        .iter()
        .filter_map(|s| s.population.concurrency.as_ref().map(|c| (c, s.measured_s)))
        .collect();
    if parts.is_empty() {
        return None;
    }
    let per_s = |x: f64| {
        if measured_s > 0.0 {
            x / measured_s
        } else {
            0.0
        }
    };
    let opened: f64 = parts.iter().map(|(c, s)| c.connections_per_s * s).sum();
    let closed: u64 = parts.iter().map(|(c, _)| c.connections_closed).sum();
    let lifetime_total: f64 = parts
        .iter()
        .map(|(c, _)| c.mean_connection_lifetime_s * c.connections_closed as f64)
        .sum();
    let mean_connection_lifetime_s = if closed > 0 {
        lifetime_total / closed as f64
    } else {
        0.0
    };
    let connections_per_s = per_s(opened);
    Some(Concurrency {
        mean_open_connections: parts.iter().map(|(c, _)| c.mean_open_connections).sum(),
        connections_per_s,
        mean_connection_lifetime_s,
        connections_closed: closed,
        predicted_open_connections: connections_per_s * mean_connection_lifetime_s,
        mean_requests_in_flight: parts.iter().map(|(c, _)| c.mean_requests_in_flight).sum(),
        predicted_requests_in_flight: per_s(ops as f64) * total_us.mean / 1e6,
    })
}

/// The slow-line figures over the shards: the line as configured (the same scenario), the
/// per-reply histograms added, the page views and retries summed.
fn merge_line(field: &str, shares: &[Share]) -> Result<Option<LineFigures>, MergeError> {
    let lines: Vec<(&Known, &LineFigures)> = shares
        .iter()
        .filter_map(|s| s.population.line.as_ref().map(|l| (s.known, l)))
        .collect();
    let Some(&(_, first)) = lines.first() else {
        return Ok(None);
    };
    let sum = |f: fn(&LineFigures) -> u64| lines.iter().map(|(_, l)| f(l)).sum::<u64>();
    Ok(Some(LineFigures {
        achieved_bytes_per_s: add_histograms(
            &format!("{field} line.achieved_bytes_per_s"),
            lines.iter().map(|(k, l)| (*k, &l.achieved_bytes_per_s)),
        )?,
        slowdown_milli: add_histograms(
            &format!("{field} line.slowdown_milli"),
            lines.iter().map(|(k, l)| (*k, &l.slowdown_milli)),
        )?,
        pages_started: sum(|l| l.pages_started),
        pages_completed: sum(|l| l.pages_completed),
        lingering_closes: sum(|l| l.lingering_closes),
        retries_on_new_connection: sum(|l| l.retries_on_new_connection),
        ..first.clone()
    }))
}

/// The live-viewer figures over the shards: the stream and the line as announced (the same
/// scenario and server), every histogram decoded and added, every count summed; the per-rate
/// figures matched by line rate (a shard that drew no viewer on a rate has no entry for it).
fn merge_viewer(field: &str, shares: &[Share]) -> Result<Option<ViewerFigures>, MergeError> {
    let viewers: Vec<(&Known, &ViewerFigures)> = shares
        .iter()
        .filter_map(|s| s.population.viewer.as_ref().map(|v| (s.known, v)))
        .collect();
    let Some(&(_, first)) = viewers.first() else {
        return Ok(None);
    };
    let sum = |f: fn(&ViewerFigures) -> u64| viewers.iter().map(|(_, v)| f(v)).sum::<u64>();
    let add = |name: &str, f: fn(&ViewerFigures) -> &HistogramData| {
        add_histograms(
            &format!("{field} viewer.{name}"),
            viewers.iter().map(|(k, v)| (*k, f(v))),
        )
    };
    let playouts: Vec<(&Known, &crate::model::PlayoutFigures)> = viewers
        .iter()
        .filter_map(|(k, v)| v.playout.as_ref().map(|o| (*k, o)))
        .collect();
    let playout = match playouts.first() {
        None => None,
        Some(&(_, o)) => Some(crate::model::PlayoutFigures {
            initial_buffering_us: add_histograms(
                &format!("{field} viewer.playout.initial_buffering_us"),
                playouts.iter().map(|(k, o)| (*k, &o.initial_buffering_us)),
            )?,
            never_started: playouts.iter().map(|(_, o)| o.never_started).sum(),
            stalls: playouts.iter().map(|(_, o)| o.stalls).sum(),
            stall_ratio_milli: add_histograms(
                &format!("{field} viewer.playout.stall_ratio_milli"),
                playouts.iter().map(|(k, o)| (*k, &o.stall_ratio_milli)),
            )?,
            ..o.clone()
        }),
    };
    // Line rates in order of first appearance; a rate is the scenario's number, so the shards
    // write the same f64 for it.
    let mut rates: Vec<f64> = Vec::new();
    for (_, v) in &viewers {
        for r in &v.by_line_rate {
            if !rates.contains(&r.bps) {
                rates.push(r.bps);
            }
        }
    }
    let mut by_line_rate = Vec::with_capacity(rates.len());
    for bps in rates {
        let on_rate: Vec<(&Known, &ViewerRateFigures)> = viewers
            .iter()
            .flat_map(|(k, v)| {
                v.by_line_rate
                    .iter()
                    .filter(move |r| r.bps == bps)
                    .map(move |r| (*k, r))
            })
            .collect();
        let add = |name: &str, f: fn(&ViewerRateFigures) -> &HistogramData| {
            add_histograms(
                &format!("{field} viewer.by_line_rate[{bps}].{name}"),
                on_rate.iter().map(|(k, r)| (*k, f(r))),
            )
        };
        let sum = |f: fn(&ViewerRateFigures) -> u64| on_rate.iter().map(|(_, r)| f(r)).sum();
        by_line_rate.push(ViewerRateFigures {
            bps,
            viewers: sum(|r| r.viewers),
            line_bound_fps: on_rate[0].1.line_bound_fps,
            frames: sum(|r| r.frames),
            frames_skipped: sum(|r| r.frames_skipped),
            freezes: sum(|r| r.freezes),
            frame_age_us: add("frame_age_us", |r| &r.frame_age_us)?,
            age_of_information_us: add("age_of_information_us", |r| &r.age_of_information_us)?,
            fps_milli: add("fps_milli", |r| &r.fps_milli)?,
            efficiency_milli: add("efficiency_milli", |r| &r.efficiency_milli)?,
        });
    }
    Ok(Some(ViewerFigures {
        joins: sum(|v| v.joins),
        leaves: sum(|v| v.leaves),
        kicks: sum(|v| v.kicks),
        frames: sum(|v| v.frames),
        bytes: sum(|v| v.bytes),
        frames_skipped: sum(|v| v.frames_skipped),
        lifetime_frames_skipped: sum(|v| v.lifetime_frames_skipped),
        lifetime_frames: sum(|v| v.lifetime_frames),
        freezes: sum(|v| v.freezes),
        freeze_ms: sum(|v| v.freeze_ms),
        viewer_seconds: viewers.iter().map(|(_, v)| v.viewer_seconds).sum(),
        startup_us: add("startup_us", |v| &v.startup_us)?,
        frame_age_us: add("frame_age_us", |v| &v.frame_age_us)?,
        age_of_information_us: add("age_of_information_us", |v| &v.age_of_information_us)?,
        fps_milli: add("fps_milli", |v| &v.fps_milli)?,
        efficiency_milli: add("efficiency_milli", |v| &v.efficiency_milli)?,
        playout,
        by_line_rate,
        ..first.clone()
    }))
}

/// One series of per-interval histograms of a population over the shards (latency, or a
/// viewer's frame age): per merged interval, its p50, p99 and the histogram itself. Exact when
/// every part kept its interval histograms (`hdr(s).len() == len(s)`): they are added before
/// the percentiles are read. Otherwise (results from before the histograms were kept) the
/// larger of the parts' figures, an approximation that never hides a slow shard, and no
/// histograms.
struct IntervalSeries {
    /// The per-interval histograms of one part.
    hdr: fn(&PopulationTimeline) -> &Vec<String>,
    /// Its stored medians.
    p50: fn(&PopulationTimeline) -> &Vec<u64>,
    /// Its stored 99th percentiles.
    p99: fn(&PopulationTimeline) -> &Vec<u64>,
    /// Its number of intervals.
    len: fn(&PopulationTimeline) -> usize,
}

type MergedPercentiles = (Vec<u64>, Vec<u64>, Vec<String>);

impl IntervalSeries {
    fn merge(
        &self,
        label: &str,
        name: &str,
        parts: &[(&Known, &PopulationTimeline, usize)],
        length: usize,
    ) -> Result<MergedPercentiles, MergeError> {
        let (mut p50s, mut p99s, mut hdrs) = (Vec::new(), Vec::new(), Vec::new());
        let exact = parts
            .iter()
            .all(|(_, s, _)| (self.hdr)(s).len() == (self.len)(s));
        for i in 0..length {
            let here = parts
                .iter()
                .filter_map(|(k, s, offset)| Some((*k, s, i.checked_sub(*offset)?)))
                .filter(|(_, s, j)| *j < (self.len)(s));
            if exact {
                let mut sum = None;
                for (k, s, j) in here {
                    let histogram = decode_histogram(&(self.hdr)(s)[j]).map_err(|error| {
                        MergeError::Histogram {
                            part: k.describe(),
                            field: format!("load point '{label}' timeline '{name}' interval {j}"),
                            error,
                        }
                    })?;
                    add_into(&mut sum, &histogram);
                }
                let sum = sum.unwrap_or_else(|| {
                    Histogram::new(2).expect("two significant digits are valid")
                });
                let at = |q| {
                    if sum.is_empty() {
                        0
                    } else {
                        sum.value_at_quantile(q)
                    }
                };
                p50s.push(at(0.5));
                p99s.push(at(0.99));
                hdrs.push(encode_histogram(&sum));
            } else {
                let (mut p50, mut p99) = (0, 0);
                for (_, s, j) in here {
                    p50 = p50.max((self.p50)(s).get(j).copied().unwrap_or(0));
                    p99 = p99.max((self.p99)(s).get(j).copied().unwrap_or(0));
                }
                p50s.push(p50);
                p99s.push(p99);
            }
        }
        Ok((p50s, p99s, hdrs))
    }
}

/// The shards' timelines on one axis: part `n` shifted by `offsets[n]` intervals, the series
/// added up interval by interval, each interval's histograms added before its percentiles are
/// read. Also, per population, the most connections open at the end of any interval, all
/// shards together.
fn merge_timeline(
    measured: &[(&Known, &LoadPoint)],
    offsets: &[usize],
) -> Result<(Timeline, BTreeMap<String, u64>), MergeError> {
    let (first_part, first) = measured[0];
    let reference = offsets
        .iter()
        .position(|&o| o == 0)
        .map_or(first, |n| measured[n].1);
    let names = |t: &Timeline| {
        t.populations
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (k, p) in &measured[1..] {
        if names(&p.timeline) != names(&first.timeline) {
            return Err(MergeError::Mismatch {
                field: format!("load point '{}' timeline populations", first.label),
                first: first_part.describe(),
                first_value: names(&first.timeline),
                second: k.describe(),
                second_value: names(&p.timeline),
            });
        }
    }
    let mut peaks = BTreeMap::new();
    let mut populations = Vec::new();
    for (n, series) in first.timeline.populations.iter().enumerate() {
        let parts: Vec<(&Known, &PopulationTimeline, usize)> = measured
            .iter()
            .zip(offsets)
            .map(|((k, p), &offset)| (*k, &p.timeline.populations[n], offset))
            .collect();
        let length = parts
            .iter()
            .map(|(_, s, offset)| offset + s.ops.len().max(s.frames.len()))
            .max()
            .unwrap_or(0);
        let add = |f: fn(&PopulationTimeline) -> &Vec<u64>| -> Vec<u64> {
            (0..length)
                .map(|i| {
                    parts
                        .iter()
                        .filter_map(|(_, s, offset)| f(s).get(i.checked_sub(*offset)?))
                        .sum()
                })
                .collect()
        };
        let open_connections = add(|s| &s.open_connections);
        peaks.insert(
            series.name.clone(),
            open_connections.iter().copied().max().unwrap_or(0),
        );
        let mut merged = PopulationTimeline {
            name: series.name.clone(),
            ops: add(|s| &s.ops),
            bytes: add(|s| &s.bytes),
            errors: add(|s| &s.errors),
            open_connections,
            ..PopulationTimeline::default()
        };
        let latency = IntervalSeries {
            hdr: |s| &s.latency_hdr_v2_deflate_base64,
            p50: |s| &s.latency_p50_us,
            p99: |s| &s.latency_p99_us,
            len: |s| s.ops.len(),
        };
        (
            merged.latency_p50_us,
            merged.latency_p99_us,
            merged.latency_hdr_v2_deflate_base64,
        ) = latency.merge(&first.label, &series.name, &parts, length)?;
        // Live viewers' series, only where some part has them: a web population's timeline
        // stays as it was.
        let viewer = parts
            .iter()
            .any(|(_, s, _)| !s.frames.is_empty() || !s.frame_age_p50_us.is_empty());
        if viewer {
            merged.frames = add(|s| &s.frames);
            merged.frames_skipped = add(|s| &s.frames_skipped);
            merged.viewer_joins = add(|s| &s.viewer_joins);
            merged.viewer_leaves = add(|s| &s.viewer_leaves);
            merged.viewer_kicks = add(|s| &s.viewer_kicks);
            let frame_age = IntervalSeries {
                hdr: |s| &s.frame_age_hdr_v2_deflate_base64,
                p50: |s| &s.frame_age_p50_us,
                p99: |s| &s.frame_age_p99_us,
                len: |s| s.frames.len().max(s.frame_age_p50_us.len()),
            };
            (
                merged.frame_age_p50_us,
                merged.frame_age_p99_us,
                merged.frame_age_hdr_v2_deflate_base64,
            ) = frame_age.merge(&first.label, &series.name, &parts, length)?;
        }
        populations.push(merged);
    }
    Ok((
        Timeline {
            interval_s: first.timeline.interval_s,
            measured_from_index: reference.timeline.measured_from_index,
            populations,
        },
        peaks,
    ))
}

/// The measured window on the kernel samples' axis, and the merged figures the per-op and
/// per-connection figures divide by.
struct KernelWindow {
    from_ms: u64,
    to_ms: u64,
    ops: u64,
    peak_open_connections: u64,
}

/// The kernel figures of one merged point (see the module's doc): the server part's samples
/// give the time axis and everything about the server and its host; each generator's sample
/// nearest each time adds its client-side TIME_WAITs and its CPU. Without a server part, the
/// first shard's samples give the axis and its host's sockstat. `None` when no part sampled.
fn merge_kernel(
    measured: &[(&Known, &LoadPoint)],
    server: Option<(&Known, &LoadPoint)>,
    window: &KernelWindow,
) -> Option<KernelAccounting> {
    let generators: Vec<(&Known, &LoadPoint, &KernelAccounting)> = measured
        .iter()
        .filter_map(|(k, p)| p.kernel.as_ref().map(|kernel| (*k, *p, kernel)))
        .collect();
    let server_kernel = server.and_then(|(k, p)| p.kernel.as_ref().map(|kernel| (k, kernel)));
    let (_, base) =
        server_kernel.or_else(|| generators.first().map(|(k, _, kernel)| (*k, *kernel)))?;
    // Each part's sampler ticks on its own: the sample nearest in time stands for it.
    let at = |samples: &'_ [KernelSample], t: u64| -> Option<KernelSample> {
        samples
            .iter()
            .min_by_key(|s| s.elapsed_ms.abs_diff(t))
            .cloned()
    };
    let all_some = |values: Vec<Option<u64>>| values.into_iter().sum::<Option<u64>>();
    // Shards in one network namespace of one kernel see the same client-side sockets: their
    // TIME_WAIT is counted once, from the first of them.
    let mut namespaces_seen: Vec<(&str, &str)> = Vec::new();
    let distinct: Vec<bool> = generators
        .iter()
        .map(|(k, _, _)| match network_namespace(k) {
            Some(key) => {
                let first = !namespaces_seen.contains(&key);
                namespaces_seen.push(key);
                first
            }
            None => true,
        })
        .collect();
    let samples: Vec<KernelSample> = base
        .samples
        .iter()
        .map(|own| {
            let mut sample = if server_kernel.is_some() {
                own.clone()
            } else {
                // The host-wide sockstat of the first shard's host; nothing of a server.
                KernelSample {
                    elapsed_ms: own.elapsed_ms,
                    tcp_in_use: own.tcp_in_use,
                    tcp_orphans: own.tcp_orphans,
                    tcp_time_wait: own.tcp_time_wait,
                    tcp_allocated: own.tcp_allocated,
                    tcp_memory_bytes: own.tcp_memory_bytes,
                    ..KernelSample::default()
                }
            };
            let all_theirs: Vec<(bool, KernelSample)> = generators
                .iter()
                .zip(&distinct)
                .filter_map(|((_, _, k), &first)| Some((first, at(&k.samples, own.elapsed_ms)?)))
                .collect();
            sample.loadgen_cpu_us = all_theirs.iter().map(|(_, s)| s.loadgen_cpu_us).sum();
            let theirs: Vec<KernelSample> = all_theirs
                .into_iter()
                .filter_map(|(distinct, s)| distinct.then_some(s))
                .collect();
            sample.time_wait_client_side = theirs.iter().map(|s| s.time_wait_client_side).sum();
            sample.time_wait_client_side_bytes =
                theirs.iter().map(|s| s.time_wait_client_side_bytes).sum();
            sample.time_wait_client_side_since_point_start = all_some(
                theirs
                    .iter()
                    .map(|s| s.time_wait_client_side_since_point_start)
                    .collect(),
            );
            sample.time_wait_client_side_since_window_end = all_some(
                theirs
                    .iter()
                    .map(|s| s.time_wait_client_side_since_window_end)
                    .collect(),
            );
            sample
        })
        .collect();
    let distinct_generators: Vec<_> = generators
        .iter()
        .zip(&distinct)
        .filter_map(|(g, &own)| own.then_some(*g))
        .collect();
    let summary = merge_kernel_summary(
        &samples,
        (&generators, &distinct_generators),
        server_kernel,
        base,
        window,
    );
    let mut probe_errors: Vec<String> = Vec::new();
    let sampled = generators.iter().map(|(k, _, kernel)| (*k, *kernel));
    for (k, kernel) in sampled.chain(server_kernel) {
        for error in &kernel.probe_errors {
            let error = format!("{}: {error}", k.role);
            if !probe_errors.contains(&error) {
                probe_errors.push(error);
            }
        }
    }
    Some(KernelAccounting {
        sample_interval_ms: base.sample_interval_ms,
        time_wait_object_bytes: base.time_wait_object_bytes,
        time_wait_bytes_estimated: base.time_wait_bytes_estimated,
        samples,
        summary,
        probe_errors,
    })
}

/// A generator part's load point and its kernel figures.
type MeasuredKernel<'a> = (&'a Known<'a>, &'a LoadPoint, &'a KernelAccounting);

/// The merged point's kernel summary (see [`merge_kernel`] and the module's doc).
fn merge_kernel_summary(
    samples: &[KernelSample],
    (generators, distinct): (&[MeasuredKernel], &[MeasuredKernel]),
    server: Option<(&Known, &KernelAccounting)>,
    base: &KernelAccounting,
    window: &KernelWindow,
) -> KernelSummary {
    let own = server.map(|(_, k)| k.summary.clone()).unwrap_or_default();
    // Client-side TIME_WAIT over one shard per network namespace; the rest over every shard.
    let client = |f: fn(&KernelSummary) -> Option<f64>| -> Option<f64> {
        distinct.iter().map(|(_, _, k)| f(&k.summary)).sum()
    };
    let client_time_wait = |f: fn(&KernelSummary) -> Option<u64>| -> Option<u64> {
        distinct.iter().map(|(_, _, k)| f(&k.summary)).sum()
    };
    let client_count = |f: fn(&KernelSummary) -> Option<u64>| -> Option<u64> {
        generators.iter().map(|(_, _, k)| f(&k.summary)).sum()
    };
    let own_client = |s: &KernelSample| {
        Some(
            s.time_wait_client_side_since_point_start?
                .saturating_sub(s.time_wait_client_side_since_window_end.unwrap_or(0)),
        )
    };
    // Each host's own peak, added up (see the module's doc on peaks); from the summed samples
    // only when some host did not record it.
    let own_peak_client = client_time_wait(|s| s.own_peak_time_wait_client_side).or_else(|| {
        samples
            .iter()
            .filter(|s| s.elapsed_ms >= window.from_ms)
            .filter_map(own_client)
            .max()
    });
    // The server's CPU and context switches between the samples that bracket the window, as
    // the generator computes them, over the merged ops.
    let bracket = server.and_then(|(_, k)| {
        let first = k
            .samples
            .iter()
            .rev()
            .find(|s| s.elapsed_ms <= window.from_ms)
            .or_else(|| k.samples.first())?;
        let last = k
            .samples
            .iter()
            .rev()
            .find(|s| s.elapsed_ms <= window.to_ms)
            .or_else(|| k.samples.last())?;
        (last.elapsed_ms > first.elapsed_ms).then_some((first, last))
    });
    let server_cpu_us_per_op = bracket.and_then(|(a, b)| {
        let used = b.server_cpu_us?.checked_sub(a.server_cpu_us?)?;
        (window.ops > 0).then(|| used as f64 / window.ops as f64)
    });
    let server_ctx_switches_per_op = match (bracket, own.server_ctx_switches_per_s) {
        (Some((a, b)), Some(per_s)) if window.ops > 0 => {
            let span_s = (b.elapsed_ms - a.elapsed_ms) as f64 / 1000.0;
            Some(per_s * span_s / window.ops as f64)
        }
        _ => None,
    };
    let server_base_rss =
        server.and_then(|(_, k)| k.samples.iter().find_map(|s| s.server_rss_bytes));
    let server_memory_per_connection_bytes = match (own.server_peak_rss_bytes, server_base_rss) {
        (Some(peak), Some(base)) if window.peak_open_connections > 0 && peak > base => {
            Some((peak - base) as f64 / window.peak_open_connections as f64)
        }
        _ => None,
    };
    // Each generator's growth (its per-connection figure times its own peak) over all of
    // their peaks: the mean cost of a connection over the shards that measured it.
    let (growth, connections) = generators
        .iter()
        .filter_map(|(_, point, kernel)| {
            let per = kernel.summary.loadgen_memory_per_connection_bytes?;
            let peak: u64 = point
                .populations
                .iter()
                .map(|p| p.peak_open_connections)
                .sum();
            Some((per * peak as f64, peak))
        })
        .fold((0.0, 0u64), |(g, c), (pg, pc)| (g + pg, c + pc));
    let bytes = |n: Option<u64>| n.map(|n| n * base.time_wait_object_bytes);
    KernelSummary {
        peak_time_wait_client_side: distinct
            .iter()
            .map(|(_, _, k)| k.summary.peak_time_wait_client_side)
            .sum(),
        peak_time_wait_client_side_bytes: distinct
            .iter()
            .map(|(_, _, k)| k.summary.peak_time_wait_client_side_bytes)
            .sum(),
        time_wait_seconds_client_side: distinct
            .iter()
            .map(|(_, _, k)| k.summary.time_wait_seconds_client_side)
            .sum(),
        own_peak_time_wait_client_side: own_peak_client,
        own_peak_time_wait_client_side_bytes: bytes(own_peak_client),
        own_time_wait_seconds_client_side: client(|s| s.own_time_wait_seconds_client_side),
        carried_over_time_wait_client_side: client_time_wait(|s| {
            s.carried_over_time_wait_client_side
        }),
        teardown_time_wait_client_side: samples
            .iter()
            .filter_map(|s| s.time_wait_client_side_since_window_end)
            .max(),
        peak_tcp_memory_bytes: if server.is_some() {
            own.peak_tcp_memory_bytes
        } else {
            base.summary.peak_tcp_memory_bytes
        },
        server_cpu_us_per_op,
        server_ctx_switches_per_op,
        server_memory_per_connection_bytes,
        // The busiest CPUs: shards sharing them add up (a shard alone is its own group).
        loadgen_cpu_share: shared_cpu_groups(
            generators
                .iter()
                .map(|(k, _, kernel)| (*k, kernel.summary.loadgen_cpu_share)),
        )
        .first()
        .map_or(0.0, |(_, share)| *share),
        sampler_cpu_share: generators
            .iter()
            .map(|(_, _, k)| k)
            .chain(server.iter().map(|(_, k)| k))
            .map(|k| k.summary.sampler_cpu_share)
            .fold(0.0, f64::max),
        loadgen_rss_start_bytes: client_count(|s| s.loadgen_rss_start_bytes),
        loadgen_peak_rss_bytes: client_count(|s| s.loadgen_peak_rss_bytes),
        loadgen_memory_per_connection_bytes: (connections > 0).then(|| growth / connections as f64),
        // The server side's own: its port's server-side TIME_WAITs, its process, its
        // listener, the netstat counters of its host.
        ..own
    }
}
