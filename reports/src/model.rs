//! The result of one `loadgen run`, as written to `result.json`: every field carries its unit in
//! its name, histograms travel in HdrHistogram's standard V2-deflate form (base64) so they can be
//! merged and re-analysed later, and `schema_version` changes whenever the shape does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Bumped on every incompatible change of the shape below.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a stored JSON document (`result.json`, `comparison.json`, `check.json`, `claims.json`, a
/// saved baseline) could not be read or written; each message names the file and says what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum ResultFileError {
    /// The file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file ends in the middle of its JSON: a copy cut short, a disk that filled up under a
    /// writer that does not write atomically, or an empty file.
    #[error(
        "{} is {}: not a whole {what}",
        path.display(),
        if *.bytes == 0 { "empty".to_string() } else {
            format!("truncated at byte {}: its JSON stops in the middle", .bytes)
        }
    )]
    Truncated {
        /// The file read.
        path: PathBuf,
        /// Its length: where the JSON stops.
        bytes: usize,
        /// What it was read as, e.g. `loadgen result.json`.
        what: &'static str,
    },
    /// The file is not JSON at all.
    #[error("{} is not JSON ({error}): not a {what}", path.display())]
    NotJson {
        /// The file read.
        path: PathBuf,
        /// Where the JSON syntax breaks.
        error: serde_json::Error,
        /// What it was read as.
        what: &'static str,
    },
    /// The file is JSON but not of the expected shape.
    #[error("{} is not a {what}: {error}", path.display())]
    Parse {
        /// The file read.
        path: PathBuf,
        /// Where and why the JSON does not fit the model.
        error: serde_json::Error,
        /// What it was read as.
        what: &'static str,
    },
    /// The file was written by a loadgen with another shape of the document.
    #[error(
        "{} has schema version {found}, {}",
        path.display(),
        if .found > .expected {
            format!(
                "newer than this loadgen's {expected}: upgrade loadgen (or read it with the \
                 loadgen that wrote it, {})", .writer.as_deref().unwrap_or("a newer one")
            )
        } else {
            format!(
                "older than this loadgen's {expected}, which cannot read it: read it with the \
                 loadgen that wrote it ({})", .writer.as_deref().unwrap_or("an older one")
            )
        }
    )]
    Schema {
        /// The file read.
        path: PathBuf,
        /// Its `schema_version`.
        found: u32,
        /// The one this build reads and writes.
        expected: u32,
        /// `tool tool_version` of the loadgen that wrote it, when the file says.
        writer: Option<String>,
    },
    /// The file (or its temporary sibling) could not be written or renamed into place; the file
    /// under `path` is untouched (see [`crate::files::write_atomically`]).
    #[error("writing {}: {error}", path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// What the system said, e.g. `No space left on device (os error 28)`.
        error: std::io::Error,
    },
}

impl ResultFileError {
    /// True for a failed write; false when an existing file could not be read or understood.
    pub fn is_write(&self) -> bool {
        matches!(self, ResultFileError::Write { .. })
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ResultFileError::Read { path, .. }
            | ResultFileError::Truncated { path, .. }
            | ResultFileError::NotJson { path, .. }
            | ResultFileError::Parse { path, .. }
            | ResultFileError::Schema { path, .. }
            | ResultFileError::Write { path, .. } => path,
        }
    }
}

impl RunResult {
    /// Reads a stored result. Errors name the file: unreadable, empty or truncated (with the
    /// byte where it stops), not JSON, not a result, or of another `schema_version` than
    /// [`SCHEMA_VERSION`] (newer: upgrade; older: use the loadgen that wrote it).
    pub fn read(path: &Path) -> Result<RunResult, ResultFileError> {
        read_document(path, "loadgen result.json", SCHEMA_VERSION)
    }

    /// Writes the result atomically ([`crate::files::write_atomically`]): a reader sees the old
    /// file or the whole new one, never half a result, even when the disk fills up.
    pub fn write_atomically(&self, path: &Path) -> Result<(), ResultFileError> {
        write_json_atomically(self, path)
    }
}

/// Reads a stored JSON document described as `what` (for messages) whose `schema_version` must
/// be `expected`. The syntax is checked first (a truncated file is told from a corrupt one), then
/// the version, then the shape: a newer file is reported as newer even when its shape changed.
pub(crate) fn read_document<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    expected: u32,
) -> Result<T, ResultFileError> {
    let bytes = std::fs::read(path).map_err(|error| ResultFileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        if error.classify() == serde_json::error::Category::Eof {
            ResultFileError::Truncated {
                path: path.to_path_buf(),
                bytes: bytes.len(),
                what,
            }
        } else {
            ResultFileError::NotJson {
                path: path.to_path_buf(),
                error,
                what,
            }
        }
    })?;
    let found = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    if let Some(found) = found.filter(|&found| found != u64::from(expected)) {
        let writer = match (value.get("tool"), value.get("tool_version")) {
            (Some(serde_json::Value::String(tool)), Some(serde_json::Value::String(version))) => {
                Some(format!("{tool} {version}"))
            }
            _ => None,
        };
        return Err(ResultFileError::Schema {
            path: path.to_path_buf(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            expected,
            writer,
        });
    }
    // From the bytes again rather than the value: shape errors then carry a line and column.
    serde_json::from_slice(&bytes).map_err(|error| ResultFileError::Parse {
        path: path.to_path_buf(),
        error,
        what,
    })
}

/// Writes `value` as pretty JSON to `path` atomically ([`crate::files::write_atomically`]).
pub(crate) fn write_json_atomically(
    value: &impl Serialize,
    path: &Path,
) -> Result<(), ResultFileError> {
    let write_error = |error| ResultFileError::Write {
        path: path.to_path_buf(),
        error,
    };
    let json = serde_json::to_vec_pretty(value).map_err(|e| write_error(e.into()))?;
    crate::files::write_atomically(path, &json).map_err(write_error)
}

/// One `loadgen run`: what ran, whether its numbers can be trusted, where it ran, and the
/// measurements of each load point. The root of `result.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// The shape of this file; `SCHEMA_VERSION` for the results this build writes and reads.
    pub schema_version: u32,
    /// The program that wrote the result (`loadgen`).
    pub tool: String,
    /// Its version (the crate version).
    pub tool_version: String,
    /// The scenario's `name`.
    pub scenario_name: String,
    /// The scenario file as it ran (after command-line overrides, as TOML).
    pub scenario_toml: String,
    /// Seed of every random choice of the run (file picks, arrivals, think times), so a run can
    /// be repeated.
    pub seed: u64,
    /// Start of the run, UTC, RFC 3339.
    pub started_utc: String,
    /// False when the measurement cannot be trusted; `invalid_reasons` says why.
    pub valid: bool,
    /// Why the run is invalid, one sentence each; empty for a valid run.
    pub invalid_reasons: Vec<String>,
    /// What a reader should know before trusting the numbers, short of making them invalid.
    pub warnings: Vec<String>,
    /// True when Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// True when the load points are not all the run planned: the run was still going when this
    /// file was written (it is rewritten after every load point), or it ended early (the server
    /// died, Ctrl-C, an error); `invalid_reasons` says which. Absent (false) in results from
    /// before it was recorded.
    #[serde(default)]
    pub partial: bool,
    /// The server under test.
    pub server: ServerInfo,
    /// The load generator's own set-up.
    pub generator: GeneratorInfo,
    /// How the run's sockets were kept apart from the rest of the machine.
    pub isolation: Isolation,
    /// The machine and the kernel settings the run ran with; absent in results from before it
    /// was recorded.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// The loadgen command line as typed.
    #[serde(default)]
    pub command_line: String,
    /// One per load point: a single run has one, a sweep has one per step.
    pub load_points: Vec<LoadPoint>,
    /// The part of a sharded run this result is (`loadgen run --shard I/N`, `loadgen serve`);
    /// absent for a run on one generator and in a merged result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// A merged result (`loadgen merge`): every part it was made of, with its own figures and
    /// validity. Empty for a run on one generator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardSummary>,
}

/// Which part of a sharded run a result is, and the facts `loadgen merge` checks before it
/// trusts the parts' clocks to line up (one `boot_id`: one kernel clock; otherwise each host's
/// clock must be synchronised, `adjtimex(2)`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    /// `generator` (`loadgen run --shard`) or `server` (`loadgen serve`).
    pub role: String,
    /// The generator shard's index I, counting from 0; 0 for the server's part.
    pub index: u32,
    /// Generator shards in the run, N.
    pub count: u32,
    /// The agreed wall-clock start of the first load point's warm-up (`--start-at`), Unix time
    /// in milliseconds; load point k starts `k` slots later.
    pub start_at_unix_ms: u64,
    /// Length of one load point's slot (warm-up, measured window and the settling time after
    /// it), in milliseconds.
    pub slot_ms: u64,
    /// The host's name (`gethostname(2)`).
    pub hostname: String,
    /// The running kernel's boot id (`/proc/sys/kernel/random/boot_id`): parts with the same
    /// one ran on one kernel, so on one clock.
    pub boot_id: Option<String>,
    /// The kernel's view of its clock's synchronisation when the part started.
    pub clock: ClockSync,
    /// The part's network namespace (`readlink /proc/self/ns/net`, e.g. `net:[4026531840]`):
    /// parts with one boot id and one namespace see the same sockets, so `loadgen merge`
    /// counts their client-side TIME_WAIT once. Absent when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_namespace: Option<String>,
}

/// The kernel's clock discipline, from `adjtimex(2)` with no change (modes 0).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClockSync {
    /// False when the kernel says its clock is not synchronised (`STA_UNSYNC`, or the call
    /// returned `TIME_ERROR`); `None` when it could not be asked.
    pub synchronised: Option<bool>,
    /// The kernel's maximum error of its clock, in microseconds (`maxerror`).
    pub max_error_us: Option<i64>,
    /// The kernel's estimated error, in microseconds (`esterror`).
    pub est_error_us: Option<i64>,
}

/// One part of a merged result: where it came from, what it measured and whether it was valid.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardSummary {
    /// `generator` or `server`.
    pub role: String,
    /// The generator shard's index I (0 for the server's part).
    pub index: u32,
    /// The directory its `result.json` was read from.
    pub source: String,
    /// Its host's name.
    pub hostname: String,
    /// Its kernel's boot id.
    pub boot_id: Option<String>,
    /// Its clock when it started.
    pub clock: ClockSync,
    /// Whether its own measurement was valid.
    pub valid: bool,
    /// Why it was not, as it said.
    pub invalid_reasons: Vec<String>,
    /// Requests completed in the measured windows of all its load points.
    pub ops: u64,
    /// Errors in those windows.
    pub errors: u64,
    /// How many milliseconds after its slot the part's first load point started (negative:
    /// early), from the point's recorded wall-clock start; `None` when not recorded.
    pub start_offset_ms: Option<f64>,
    /// The generator's CPU share over its headline point (1.0 = all of its CPUs), when sampled.
    pub loadgen_cpu_share: Option<f64>,
    /// The peak of its host's client-side TIME_WAIT sockets, when sampled.
    pub peak_time_wait_client_side: Option<u64>,
    /// The generator's peak resident memory, in bytes, when sampled.
    pub loadgen_peak_rss_bytes: Option<u64>,
}

/// The server under test and how it ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerInfo {
    /// `builtin`, `command`, `real` (a real web server from a generated configuration: the
    /// command line names it) or `url`.
    pub kind: String,
    /// The command line the loadgen started the server with (for `url`, the URL it was given).
    pub command_line: String,
    /// Where the clients connected, `host:port`.
    pub address: String,
    /// The server's own counters (afterburner's `--stats` JSON), when it has them.
    pub stats: Option<serde_json::Value>,
    /// How the server ended, e.g. `exit status: 0`.
    pub exit: String,
    /// What happened to the server that a reader should know (it had exited before it was
    /// asked to stop, it needed a SIGKILL, ...).
    pub notes: Vec<String>,
}

/// How the run was kept apart from the machine's other sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// A private network namespace: the kernel's counters are this run's alone.
    PrivateNetns,
    /// The host's namespace: kernel counters are shared with everything else on the machine.
    #[default]
    HostNamespace,
}

/// Where the run's sockets lived, and why.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Isolation {
    /// Private network namespace or the host's.
    pub mode: IsolationMode,
    /// Why the run is not in a private namespace, when it is not.
    pub reason: Option<String>,
    /// Sysctls written inside the private namespace, as `name=value`.
    pub sysctls_set: Vec<String>,
    /// Set when the server and the clients ran in two namespaces joined by a veth pair, with
    /// netem or a user-space delay line delaying the slow-line clients' packets.
    #[serde(default)]
    pub delay_path: Option<DelayPath>,
}

/// What a user-space delay line carried ("up": clients to server) and what it cost.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DelayLineFigures {
    /// Packets delivered from the clients to the server.
    pub packets_up: u64,
    /// Packets delivered from the server to the clients.
    pub packets_down: u64,
    /// Bytes delivered up, whole IP packets.
    pub bytes_up: u64,
    /// Bytes delivered down, whole IP packets.
    pub bytes_down: u64,
    /// Packets lost on the line (queue bound, failed write, or the kernel's TUN queue).
    pub dropped: u64,
    /// The most packets one direction's queue held at once.
    pub max_queue_packets: u64,
    /// CPU time of the relay thread, which includes the kernel's receive work for every packet
    /// it writes; it runs on the generator's CPUs and counts in the generator's CPU share.
    pub cpu_us: u64,
}

/// The veth path between the clients' and the server's namespaces.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DelayPath {
    /// The server's address on the server's side of the veth pair, `host:port`.
    pub server_address: String,
    /// Fast (undelayed) client source addresses, as a prefix.
    pub fast_sources: String,
    /// Delayed client source addresses, as a prefix.
    pub delayed_sources: String,
    /// Delay each way, in milliseconds (the round-trip time is twice it): netem's, or the
    /// user-space delay line's.
    pub one_way_delay_ms: f64,
    /// When a user-space delay line (TUN devices and a relay thread) did the delaying: what it
    /// carried and what it cost, over the variant it served.
    #[serde(default)]
    pub delay_line: Option<DelayLineFigures>,
    /// The `ip` and `tc` commands that built it.
    pub commands: Vec<String>,
}

/// The load generator's own set-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GeneratorInfo {
    /// Worker threads, each with its own event loop and connections.
    pub workers: usize,
    /// CPUs the generator's workers were pinned to; empty when not pinned.
    pub cpus: Vec<usize>,
    /// Source addresses the clients were spread over; empty when the system chose.
    pub source_addresses: Vec<String>,
}

/// One load point: a run without a sweep has one, a sweep one per step, a run of variants one
/// per variant. Everything measured at it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadPoint {
    /// Its name in the report: `100% load`, a sweep step, a variant's name.
    pub label: String,
    /// Fraction of the scenario's full load applied at this point (1.0 without a sweep).
    pub load_fraction: f64,
    /// Warm-up before the measured window, in seconds: counted in the timeline, not in the
    /// totals.
    pub warmup_s: f64,
    /// Length of the measured window, in seconds: the divisor of every rate.
    pub measured_s: f64,
    /// All populations together, over the measured window.
    pub totals: Totals,
    /// Each population of clients, in scenario order.
    pub populations: Vec<PopulationResult>,
    /// Per-interval series over the whole point, warm-up included.
    pub timeline: Timeline,
    /// What the kernel and the server spent, sampled on the load's time axis. Absent in results
    /// from before kernel accounting, or when the sampler could not run.
    #[serde(default)]
    pub kernel: Option<KernelAccounting>,
    /// The server's own counters (`--stats`) over this point, warm-up included: the difference
    /// of the snapshots it wrote before and after the point (`connections_peak` is not a
    /// count: it is the server's peak so far). A point that lost its snapshots but was its
    /// server's only one carries the counters the server wrote on exit.
    #[serde(default)]
    pub server_stats: Option<serde_json::Value>,
    /// Wall-clock time of the start of the warm-up (timeline index 0), Unix time in
    /// nanoseconds: what lines up the timelines of parts run on several hosts. Absent in
    /// results from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_unix_ns: Option<u64>,
}

/// The kernel's and the server's side of one load point.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KernelAccounting {
    /// Time between two samples, in milliseconds.
    pub sample_interval_ms: u64,
    /// Size of one TIME_WAIT socket (`tw_sock_TCP` slab object), in bytes.
    pub time_wait_object_bytes: u64,
    /// True when that size is the documented fallback, not read from /proc/slabinfo.
    pub time_wait_bytes_estimated: bool,
    /// The samples, oldest first.
    pub samples: Vec<KernelSample>,
    /// Peaks, integrals and per-op figures computed from the samples.
    pub summary: KernelSummary,
    /// Probe failures (each distinct message once).
    pub probe_errors: Vec<String>,
}

/// One sample; `elapsed_ms` is on the same axis as the timeline (0 = start of the warm-up).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KernelSample {
    /// When the sample was taken, in milliseconds since the start of the warm-up.
    pub elapsed_ms: u64,
    /// /proc/net/sockstat TCP `inuse`: TCP sockets in use (listening ones included).
    pub tcp_in_use: u64,
    /// /proc/net/sockstat TCP `orphan`: sockets no process holds any more, still closing.
    pub tcp_orphans: u64,
    /// /proc/net/sockstat TCP `tw`: sockets in TIME_WAIT, all ports and sides.
    pub tcp_time_wait: u64,
    /// /proc/net/sockstat TCP `alloc`: TCP sockets allocated.
    pub tcp_allocated: u64,
    /// Kernel TCP memory (sockstat `mem` pages as bytes).
    pub tcp_memory_bytes: u64,
    /// TIME_WAITs of the server's port held by the server (its side closed first), from
    /// sock_diag, whenever they began: those left by earlier points or runs included.
    pub time_wait_server_side: u64,
    /// TIME_WAITs of the server's port held by the clients (their side closed first), whenever
    /// they began.
    pub time_wait_client_side: u64,
    /// `time_wait_server_side` x the size of one TIME_WAIT socket, in bytes.
    pub time_wait_server_side_bytes: u64,
    /// `time_wait_client_side` x the size of one TIME_WAIT socket, in bytes.
    pub time_wait_client_side_bytes: u64,
    /// Of `time_wait_server_side`, the sockets that entered TIME_WAIT since this load point
    /// began (the start of its warm-up): the point's own. When each began is 60 s less the
    /// time left on its timer (sock_diag's `idiag_expires`). `None` when the sample has no
    /// fresh TIME_WAIT dump (none, or one skipped for the sampler's CPU budget, whose totals
    /// repeat an older dump's), and in results from before TIME_WAITs were told apart.
    #[serde(default)]
    pub time_wait_server_side_since_point_start: Option<u64>,
    /// Of `time_wait_client_side`, the sockets that entered TIME_WAIT since this load point
    /// began.
    #[serde(default)]
    pub time_wait_client_side_since_point_start: Option<u64>,
    /// Of `time_wait_server_side`, the sockets that entered TIME_WAIT since the measured window
    /// ended: the teardown's (connections closed when the load stopped). 0 before the end.
    #[serde(default)]
    pub time_wait_server_side_since_window_end: Option<u64>,
    /// Of `time_wait_client_side`, the sockets that entered TIME_WAIT since the measured window
    /// ended.
    #[serde(default)]
    pub time_wait_client_side_since_window_end: Option<u64>,
    /// Resident memory of the server's process tree (children included), in bytes; `None` when
    /// the server is not a process the loadgen can read (a URL).
    pub server_rss_bytes: Option<u64>,
    /// Proportional set size of the server's tree (shared pages split among sharers), bytes.
    pub server_pss_bytes: Option<u64>,
    /// Cumulative user + system CPU of the server's tree, in microseconds.
    pub server_cpu_us: Option<u64>,
    /// Cumulative context switches of the server's tree, voluntary (the task blocked: waiting
    /// for a socket, a lock, a timer) plus involuntary (preempted), in switches: each live
    /// thread's `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches`
    /// (`/proc/PID/task/TID/status`), summed over the tree's live processes. `None` when the
    /// server is not a process the loadgen can read (a URL), and in results from before it was
    /// recorded.
    ///
    /// A lower bound, twice over. A process with more threads than the generator reads one by
    /// one (64) is counted by its main thread only (`server_ctx_switches_main_only`). And only
    /// live tasks count: the kernel adds an exited thread's switches to its process's own
    /// totals and a reaped child's to its parent's children's totals, which `getrusage` of that
    /// process alone can read and `/proc` does not show (`/proc/PID/status` has the main
    /// thread's counts only). So the sum drops when a thread or a child exits, and the
    /// switches of a worker that lived between two samples (or, for a child process, between
    /// two scans of the tree, once a second) are never seen.
    #[serde(default)]
    pub server_ctx_switches: Option<u64>,
    /// True when `server_ctx_switches` counts some process of the tree by its main thread only
    /// (it had more than 64 threads): for a thread-per-connection server, far below the truth.
    #[serde(default)]
    pub server_ctx_switches_main_only: bool,
    /// Threads in the server's tree.
    pub server_threads: Option<u64>,
    /// File descriptors open in the server's tree.
    pub server_open_fds: Option<u64>,
    /// Processes in the server's tree.
    pub server_processes: Option<u64>,
    /// Cumulative CPU of the generator process (all threads, the sampler's included), in
    /// microseconds.
    pub loadgen_cpu_us: u64,
    /// Cumulative TcpExt `ListenOverflows`: connections that found a full accept queue.
    pub listen_overflows: u64,
    /// Cumulative TcpExt `ListenDrops`: connection attempts a listener dropped.
    pub listen_drops: u64,
    /// Cumulative TcpExt `TCPTimeWaitOverflow`: closes that skipped TIME_WAIT because
    /// `tcp_max_tw_buckets` was reached.
    pub time_wait_overflows: u64,
}

/// Figures derived from the samples (measured window only, where it matters).
///
/// TIME_WAIT: a socket stays in TIME_WAIT for 60 s, longer than many load points, so the
/// sockets of the server's port at any moment mix three origins, told apart by when each
/// began: those left by earlier points or runs (`carried_over_*`), the point's own
/// (`own_*`, begun since the point's start, counted within its measured window), and those the
/// point's teardown left when its connections closed after the window (`teardown_*`). The
/// `peak_*` and `time_wait_seconds_*` figures count every origin together, over the whole
/// point. The attributed figures are `None` in results from before they were recorded.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KernelSummary {
    /// Most server-side TIME_WAIT sockets of the server's port at once, over the whole point
    /// (warm-up, window and teardown), whatever their origin.
    pub peak_time_wait_server_side: u64,
    /// Most client-side TIME_WAIT sockets of the server's port at once, over the whole point,
    /// whatever their origin.
    pub peak_time_wait_client_side: u64,
    /// Memory of the server-side TIME_WAIT sockets at `peak_time_wait_server_side`, in bytes.
    pub peak_time_wait_server_side_bytes: u64,
    /// Memory of the client-side TIME_WAIT sockets at `peak_time_wait_client_side`, in bytes.
    pub peak_time_wait_client_side_bytes: u64,
    /// Integral of the server-side TIME_WAIT count over the whole point, whatever their
    /// origin, in socket-seconds.
    pub time_wait_seconds_server_side: f64,
    /// Integral of the client-side TIME_WAIT count over the whole point, whatever their
    /// origin, in socket-seconds.
    pub time_wait_seconds_client_side: f64,
    /// The point's own server-side TIME_WAITs (begun since the point's start, warm-up
    /// included, and before its window's end): the most at once within the measured window,
    /// in sockets. Samples after the window count those of them they still see (none has
    /// expired yet), so the window's last moments are in, and the teardown's are not.
    #[serde(default)]
    pub own_peak_time_wait_server_side: Option<u64>,
    /// The point's own client-side TIME_WAITs (begun since its start and before its window's
    /// end): the most at once within the measured window, in sockets.
    #[serde(default)]
    pub own_peak_time_wait_client_side: Option<u64>,
    /// Memory of `own_peak_time_wait_server_side` sockets, in bytes.
    #[serde(default)]
    pub own_peak_time_wait_server_side_bytes: Option<u64>,
    /// Memory of `own_peak_time_wait_client_side` sockets, in bytes.
    #[serde(default)]
    pub own_peak_time_wait_client_side_bytes: Option<u64>,
    /// Integral of the point's own server-side TIME_WAIT count over the measured window (cut
    /// at its edges, linearly between samples), in socket-seconds.
    #[serde(default)]
    pub own_time_wait_seconds_server_side: Option<f64>,
    /// Integral of the point's own client-side TIME_WAIT count over the measured window, in
    /// socket-seconds.
    #[serde(default)]
    pub own_time_wait_seconds_client_side: Option<f64>,
    /// Server-side TIME_WAITs present at the start of the measured window that began before
    /// the point did (left by earlier points, or by other runs on the same port), in sockets.
    #[serde(default)]
    pub carried_over_time_wait_server_side: Option<u64>,
    /// Client-side TIME_WAITs present at the start of the measured window that began before
    /// the point did, in sockets.
    #[serde(default)]
    pub carried_over_time_wait_client_side: Option<u64>,
    /// Server-side TIME_WAITs begun after the measured window ended, when the load stopped and
    /// its connections closed (the most seen at once), in sockets.
    #[serde(default)]
    pub teardown_time_wait_server_side: Option<u64>,
    /// Client-side TIME_WAITs begun after the measured window ended (the most seen at once),
    /// in sockets.
    #[serde(default)]
    pub teardown_time_wait_client_side: Option<u64>,
    /// Most kernel TCP memory at once (sockstat `mem`), in bytes.
    pub peak_tcp_memory_bytes: u64,
    /// Server CPU (user + system) per completed operation in the measured window, in
    /// microseconds.
    pub server_cpu_us_per_op: Option<f64>,
    /// Context switches of the server's tree per second of the measured window (between the
    /// samples that bracket it, as for `server_cpu_us_per_op`), in switches/s. The increases of
    /// `KernelSample::server_ctx_switches` from one sample to the next are added up; a
    /// decrease (a thread or a child exited and took its count along) adds nothing, and
    /// neither does a step where the main-thread-only counting began or ended. A lower bound
    /// (see `KernelSample::server_ctx_switches`). `None` when either bracketing sample lacks
    /// the figure, and in results from before it was recorded.
    #[serde(default)]
    pub server_ctx_switches_per_s: Option<f64>,
    /// The same context switches per completed operation in the measured window, in
    /// switches/op; `None` also when no operation completed.
    #[serde(default)]
    pub server_ctx_switches_per_op: Option<f64>,
    /// True when some sample in the measured window counted a process of the server's tree by
    /// its main thread only (`KernelSample::server_ctx_switches_main_only`): the two figures
    /// above are then well below the truth.
    #[serde(default)]
    pub server_ctx_switches_main_only: bool,
    /// The server tree's highest resident memory, in bytes.
    pub server_peak_rss_bytes: Option<u64>,
    /// (peak RSS - RSS before the load) / peak open connections, in bytes.
    pub server_memory_per_connection_bytes: Option<f64>,
    /// Accept-queue overflows during the point (TcpExt `ListenOverflows`).
    pub listen_overflows: u64,
    /// Connection attempts listeners dropped during the point (TcpExt `ListenDrops`).
    pub listen_drops: u64,
    /// Closes that skipped TIME_WAIT during the point (TcpExt `TCPTimeWaitOverflow`).
    pub time_wait_overflows: u64,
    /// Generator CPU as a share of its cores over the measured window (1.0 = all busy).
    pub loadgen_cpu_share: f64,
    /// The sampler's own CPU as a share of one core.
    pub sampler_cpu_share: f64,
    /// The generator's resident memory before the load, in bytes.
    #[serde(default)]
    pub loadgen_rss_start_bytes: Option<u64>,
    /// The generator's highest resident memory during the point, in bytes.
    #[serde(default)]
    pub loadgen_peak_rss_bytes: Option<u64>,
    /// (generator peak RSS - RSS before the load) / peak open client connections: the
    /// generator's user-space cost of one connection.
    #[serde(default)]
    pub loadgen_memory_per_connection_bytes: Option<f64>,
}

/// Where and how the run ran, so it can be reproduced from its result alone (with the scenario
/// text and seed above). Sysctls this kernel lacks, or that cannot be read, are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -m`.
    pub machine: String,
    /// First `model name` of `/proc/cpuinfo`, if any.
    pub cpu_model: Option<String>,
    /// Online CPUs.
    pub cpu_count: u64,
    /// CPUs this process may run on, which pinning may make fewer.
    pub cpus_allowed: u64,
    /// The memory page size, in bytes (sockstat counts TCP memory in pages).
    pub page_size_bytes: u64,
    /// `net.ipv4.ip_local_port_range`: first and last ephemeral port.
    pub ip_local_port_range: Option<(u16, u16)>,
    /// `net.ipv4.tcp_tw_reuse` (0 off, 1 on, 2 loopback only).
    pub tcp_tw_reuse: Option<u64>,
    /// `net.ipv4.tcp_max_tw_buckets`: past it, closes skip TIME_WAIT (`TCPTimeWaitOverflow`).
    pub tcp_max_tw_buckets: Option<u64>,
    /// `net.core.somaxconn`: the cap on a listener's accept queue.
    pub somaxconn: Option<u64>,
    /// `net.ipv4.tcp_rmem`: min, default, max receive buffer in bytes.
    pub tcp_rmem_bytes: Option<[u64; 3]>,
    /// `net.ipv4.tcp_wmem`: min, default, max send buffer in bytes.
    pub tcp_wmem_bytes: Option<[u64; 3]>,
    /// `net.ipv4.tcp_fin_timeout` in seconds (FIN_WAIT2, not TIME_WAIT, which is fixed at 60 s).
    pub tcp_fin_timeout_s: Option<u64>,
    /// The generator's soft limit of open files (`RLIMIT_NOFILE`): its cap on connections.
    pub nofile_soft_limit: Option<u64>,
    /// The hard limit the soft one may be raised to.
    pub nofile_hard_limit: Option<u64>,
    /// The loadgen binary's own revision: `git rev-parse HEAD` of the source tree it was built
    /// from, at build time; `None` for a build without git or outside a checkout.
    pub git_revision: Option<String>,
    /// True when the sources the loadgen was built from (its own, afterburner's, the reports')
    /// differed from `git_revision` then, or had files not yet committed.
    pub git_dirty: Option<bool>,
}

/// What a population (or all of them) completed and failed in the measured window.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Completed requests with the expected status and body.
    pub ops: u64,
    /// `ops` per second of the measured window.
    pub ops_per_s: f64,
    /// Response body bytes of the completed requests.
    pub bytes: u64,
    /// `bytes` as megabits (10^6 bits) per second of the measured window.
    pub mbit_per_s: f64,
    /// Failed requests and connections, all kinds together.
    pub errors_total: u64,
    /// Errors by kind (`refused`, `connect_timeout`, `addr_not_available`, `emfile`, `reset`,
    /// `short_body`, `bad_status`, `verify_failed`, `timeout`, `other`).
    pub errors: BTreeMap<String, u64>,
}

/// One population of clients at one load point: what it offered, completed and waited.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PopulationResult {
    /// Its `name` in the scenario.
    pub name: String,
    /// `closed`, `open` or `modem` (slow-line users, a closed loop on an emulated line).
    pub kind: String,
    /// Closed loop: clients; open loop: target requests per second; modem: users.
    pub offered: f64,
    /// What it completed and failed in the measured window.
    pub totals: Totals,
    /// All classes together.
    pub latency: LatencySet,
    /// Per SPECweb96 class (or one `urls` entry for a URL-list site).
    pub classes: Vec<ClassResult>,
    /// Open loop only: how late requests were sent against their schedule.
    pub schedule_lag_us: Option<HistogramData>,
    /// Open loop only: arrivals that found `max_in_flight` requests outstanding and waited.
    pub queued_arrivals: u64,
    /// Requests still unanswered when the load point ended: in flight, or (open loop) queued
    /// for a slot. Open loop: each one's wait so far (a lower bound of its latency) is in the
    /// latency figures, as wrk2 counts them.
    #[serde(default)]
    pub unanswered: u64,
    /// Requests sent again on a new connection because the server had closed the reused one
    /// before any of the reply came (RFC 9112 section 9.3.1); not counted as errors.
    #[serde(default)]
    pub retries_on_new_connection: u64,
    /// Largest number of this population's connections open at once.
    pub peak_open_connections: u64,
    /// Requests written completely to a socket over the whole load point, warm-up included:
    /// comparable with the server's own counters.
    pub requests_sent: u64,
    /// Replies read completely (any status) over the whole load point, warm-up included.
    pub responses_completed: u64,
    /// Connections whose connect completed over the whole load point, warm-up included.
    pub connections_established: u64,
    /// Little's law over the measured window: concurrency measured against rate x time.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// Kind `modem` only: the emulated line and what the clients got out of it.
    #[serde(default)]
    pub line: Option<LineFigures>,
    /// Kind `viewer` only: what the live stream's viewers saw (frame age, fps, skips, freezes,
    /// playout). Absent in results written before live viewers existed.
    #[serde(default)]
    pub viewer: Option<ViewerFigures>,
}

/// A population of live-stream viewers (kind `viewer`): the stream as the server announced it
/// and what the viewers saw of it over the measured window.
///
/// Frame age at receipt is the arrival time minus the capture time the server wrote in the part
/// head (`X-Timestamp`), both Unix wall-clock times. The time-averaged age of information is
/// Kaul, Yates and Gruteser's (IEEE INFOCOM 2012): the area under age(t) = t - capture time of
/// the newest frame received by t, over the time covered, one value per viewer. Freezes follow
/// the W3C webrtc-stats rule (an interval between two frames of at least max(3 x mean, mean +
/// 150 ms) over the last 30 intervals).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ViewerFigures {
    /// The stream's path (the scenario's `stream`).
    pub stream: String,
    /// `mjpeg` (multipart/x-mixed-replace parts) or `cbr` (a constant-bitrate byte stream).
    pub format: String,
    /// Frames (or CBR chunks) per second the server announced (`X-Stream-Fps`); 0 if unknown.
    pub source_fps: f64,
    /// Body bytes per frame (MJPEG), or bytes per second of media (CBR).
    pub frame_bytes: u64,
    /// `lan` or `modem`: the viewers' lines (modem: the `line` figures hold the line's shape).
    pub line: String,
    /// Viewers that joined (connect begun) in the measured window.
    pub joins: u64,
    /// Viewers that left by themselves (their watch time ended) in the measured window.
    pub leaves: u64,
    /// Viewers the server disconnected while they watched (a policy's kick, not an error).
    pub kicks: u64,
    /// Frames received complete and verified in the measured window.
    pub frames: u64,
    /// Body bytes received in the measured window.
    pub bytes: u64,
    /// Frames the viewers never got: sequence-number gaps between consecutive frames received
    /// in the measured window.
    pub frames_skipped: u64,
    /// Sequence-number gaps over the whole load point (warm-up included), to hold against the
    /// server's own skip and drop counts.
    pub lifetime_frames_skipped: u64,
    /// Frames received over the whole load point (warm-up included).
    pub lifetime_frames: u64,
    /// Freezes (W3C webrtc-stats `freezeCount`) in the measured window.
    pub freezes: u64,
    /// Their total length, in milliseconds (`totalFreezesDuration`).
    pub freeze_ms: u64,
    /// Viewer-seconds watched in the measured window (the time integral of viewers connected).
    pub viewer_seconds: f64,
    /// Per join: from the start of its connect to its first complete frame, in microseconds,
    /// over the whole load point (warm-up included: a fixed audience joins during its ramp).
    pub startup_us: HistogramData,
    /// Per frame: arrival minus capture time, in microseconds.
    pub frame_age_us: HistogramData,
    /// Per viewer: its time-averaged age of information over the measured window, in
    /// microseconds.
    pub age_of_information_us: HistogramData,
    /// Per viewer: frames received per second while it watched, in thousandths of a frame.
    pub fps_milli: HistogramData,
    /// Per viewer, in thousandths: its fps over what its line could carry (min of the source's
    /// fps and the line's payload rate over a frame's wire bytes). Below 1000 on a slow line
    /// means the server, not the line, held the frames back.
    pub efficiency_milli: HistogramData,
    /// CBR only: the playout-buffer model's figures.
    #[serde(default)]
    pub playout: Option<PlayoutFigures>,
    /// The same figures split by downstream line rate (one entry for LAN viewers).
    pub by_line_rate: Vec<ViewerRateFigures>,
}

/// A live population's viewers on one downstream line rate.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ViewerRateFigures {
    /// The line rate in bit/s; 0 for LAN viewers (no emulated line).
    pub bps: f64,
    /// Viewers on it that watched in the measured window.
    pub viewers: u64,
    /// The fps its line can carry: min(source fps, payload bytes/s over a frame's wire bytes).
    pub line_bound_fps: f64,
    /// Frames received and skipped on it in the measured window.
    pub frames: u64,
    /// Sequence gaps on it in the measured window.
    pub frames_skipped: u64,
    /// Freezes on it.
    pub freezes: u64,
    /// Per frame: arrival minus capture, in microseconds.
    pub frame_age_us: HistogramData,
    /// Per viewer: time-averaged age of information, in microseconds.
    pub age_of_information_us: HistogramData,
    /// Per viewer: frames per second, in thousandths.
    pub fps_milli: HistogramData,
    /// Per viewer: fps over line-bound fps, in thousandths.
    pub efficiency_milli: HistogramData,
}

/// The playout-buffer model of a CBR viewer: playback starts when the buffer holds `start_s`
/// of media and resumes after a stall when it holds `resume_s` (the two-threshold model of
/// Ameigeiras et al., IEEE Communications Letters 16(2), 2012).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PlayoutFigures {
    /// Media seconds buffered before playback starts.
    pub start_s: f64,
    /// Media seconds buffered before playback resumes after a stall.
    pub resume_s: f64,
    /// Per viewer: from joining to the start of playback, in microseconds.
    pub initial_buffering_us: HistogramData,
    /// Viewers whose playback never started.
    pub never_started: u64,
    /// Stalls (the buffer ran dry while playing) in the measured window.
    pub stalls: u64,
    /// Per viewer, in thousandths: stall time over (play time + stall time).
    pub stall_ratio_milli: HistogramData,
}

/// Little's law (L = lambda x W) checked on one population over the measured window: the time
/// average of what was open, against the arrival rate times the mean time each one stayed.
/// Agreement says the counts are consistent and the window was in steady state; the figures
/// also show who set the pace (slow clients hold connections for long, so many are open).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Concurrency {
    /// Time average of the connections open (integrated at every open and close).
    pub mean_open_connections: f64,
    /// Connections opened per second.
    pub connections_per_s: f64,
    /// Mean lifetime of the connections that closed in the window, in seconds.
    pub mean_connection_lifetime_s: f64,
    /// Connections that closed in the window. Fewer than the mean open means most connections
    /// outlived the window, and the prediction for connections says nothing.
    #[serde(default)]
    pub connections_closed: u64,
    /// `connections_per_s x mean_connection_lifetime_s`.
    pub predicted_open_connections: f64,
    /// Time average of the requests outstanding (sent or waiting to be sent, not yet answered).
    pub mean_requests_in_flight: f64,
    /// Completed requests per second x their mean latency.
    pub predicted_requests_in_flight: f64,
}

/// A population of slow-line users (kind `modem`): the line as configured and how close each
/// reply came to it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LineFigures {
    /// How the round-trip time was produced: `netem` (in the kernel, on a veth pair between the
    /// clients' and the server's network namespaces) or `application` (the client waits).
    pub rtt_mode: String,
    /// Why the round trip is not the kernel's, when it is not (no root, no sch_netem, asked).
    #[serde(default)]
    pub rtt_mode_reason: Option<String>,
    /// The line's round-trip time as configured, in milliseconds.
    pub rtt_ms: f64,
    /// Downstream line rates in bit/s and the share of clients on each.
    pub downstream_bps: Vec<LineRateShare>,
    /// Upstream line rate (clients to server), in bit/s.
    pub upstream_bps: f64,
    /// Payload bytes per second the downstream lines carry, averaged over the clients (line rate
    /// x the payload share left after TCP/IP and link framing).
    pub payload_bytes_per_s: f64,
    /// Receive window each client advertises (`SO_RCVBUF` and `TCP_WINDOW_CLAMP`).
    pub receive_window_bytes: u32,
    /// MSS the clients announce (`TCP_MAXSEG`).
    pub mss_bytes: u32,
    /// Per reply: its payload bytes per second, over its time from the end of the request's
    /// upload to its last byte less one round trip.
    pub achieved_bytes_per_s: HistogramData,
    /// Per reply, in thousandths: its time from the end of the request's upload to its last
    /// byte, over one round trip plus the line time its user spent meanwhile (on this reply or
    /// its siblings). 1000 means the line set the pace; more means the server (or the machine)
    /// held the reply back.
    pub slowdown_milli: HistogramData,
    /// Page views (a page and its inline images) begun in the measured window.
    pub pages_started: u64,
    /// Page views finished in the measured window: the page and every inline image answered,
    /// or failed (a failed page is counted too, without its images).
    pub pages_completed: u64,
    /// Connections closed by the client after lingering idle, in the measured window.
    pub lingering_closes: u64,
    /// Requests sent again on a new connection because the reused one had been closed by the
    /// server before any of the reply came (as browsers do); not counted as errors.
    #[serde(default)]
    pub retries_on_new_connection: u64,
}

/// One downstream line rate of a slow-line population.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LineRateShare {
    /// The line rate, in bit/s.
    pub bps: f64,
    /// The fraction of the population's users on it (the shares add up to 1).
    pub share: f64,
}

/// One class of requests of a population (a SPECweb96 file class, or one URL of a list).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClassResult {
    /// The class's name (`class0` .. `class3`, or the URL).
    pub class: String,
    /// Completed requests of the class in the measured window.
    pub ops: u64,
    /// Their response body bytes.
    pub bytes: u64,
    /// Their latencies.
    pub latency: LatencySet,
}

/// Latencies of one group of requests. Open loop: measured from the time each request was due.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySet {
    /// TCP connect time, in microseconds: from `connect()` to the connection being up. A
    /// request sent on a kept-alive connection records the histogram's lowest value, 1 µs.
    pub connect_us: HistogramData,
    /// From when the request was issued (closed loop) or due (open loop) to the first byte of
    /// the reply, in microseconds.
    pub first_byte_us: HistogramData,
    /// From when the request was issued (closed loop) or due (open loop) to the last byte of
    /// the reply, in microseconds: the response time.
    pub total_us: HistogramData,
}

/// A histogram's headline figures and the histogram itself. Values are in the unit the field
/// holding it names: microseconds for `*_us` latencies, bytes per second for
/// `achieved_bytes_per_s`, thousandths for `slowdown_milli`. All zero when nothing was
/// recorded.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HistogramData {
    /// Values recorded.
    pub count: u64,
    /// The smallest value.
    pub min: u64,
    /// The mean value.
    pub mean: f64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p999: u64,
    /// The largest value.
    pub max: u64,
    /// HdrHistogram V2 + deflate, base64 (what HdrHistogram's own tools read).
    pub hdr_v2_deflate_base64: String,
}

impl HistogramData {
    /// The headline figures of `histogram` and its encoded form; all zero when it is empty.
    pub fn from_histogram(histogram: &Histogram<u64>) -> HistogramData {
        let mut encoded = Vec::new();
        let serialized = V2DeflateSerializer::new()
            .serialize(histogram, &mut encoded)
            .is_ok();
        let count = histogram.len();
        let at = |q: f64| {
            if count == 0 {
                0
            } else {
                histogram.value_at_quantile(q)
            }
        };
        HistogramData {
            count,
            min: if count == 0 { 0 } else { histogram.min() },
            mean: if count == 0 { 0.0 } else { histogram.mean() },
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: if count == 0 { 0 } else { histogram.max() },
            hdr_v2_deflate_base64: if serialized {
                base64::engine::general_purpose::STANDARD.encode(&encoded)
            } else {
                String::new()
            },
        }
    }

    /// The histogram back, for merging or for percentiles not stored above.
    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hdr_v2_deflate_base64)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram does not decode: {e:?}"))
    }
}

/// `histogram` in HdrHistogram's V2-deflate form, base64: what the timeline stores per interval.
/// Empty when it cannot be serialized.
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut encoded = Vec::new();
    match V2DeflateSerializer::new().serialize(histogram, &mut encoded) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&encoded),
        Err(_) => String::new(),
    }
}

/// A histogram from [`encode_histogram`]'s form.
pub fn decode_histogram(encoded: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

/// Per-interval series on one time axis; index 0 is the start of the warm-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timeline {
    /// Length of one interval, in seconds.
    pub interval_s: f64,
    /// Index of the first measured interval (the ones before are warm-up).
    pub measured_from_index: usize,
    /// One series set per population, in scenario order.
    pub populations: Vec<PopulationTimeline>,
}

/// One population's series, one value per interval of its `Timeline`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PopulationTimeline {
    /// The population's name.
    pub name: String,
    /// Requests completed in each interval.
    pub ops: Vec<u64>,
    /// Response body bytes of those requests.
    pub bytes: Vec<u64>,
    /// Errors in each interval, all kinds together.
    pub errors: Vec<u64>,
    /// Connections open at the end of each interval.
    pub open_connections: Vec<u64>,
    /// Median response time of the interval's completed requests, in microseconds; 0 when
    /// none completed.
    pub latency_p50_us: Vec<u64>,
    /// 99th percentile response time of the interval's completed requests, in microseconds; 0
    /// when none completed.
    pub latency_p99_us: Vec<u64>,
    /// Each interval's response-time histogram (µs, two significant digits) in
    /// [`encode_histogram`]'s form, so the timelines of several workers, runs or generator
    /// hosts merge exactly (percentiles are never averaged). Empty in results written before
    /// it was kept.
    #[serde(default)]
    pub latency_hdr_v2_deflate_base64: Vec<String>,
    /// Kind `viewer`: frames received complete in each interval.
    #[serde(default)]
    pub frames: Vec<u64>,
    /// Kind `viewer`: sequence gaps (frames the viewers never got) in each interval.
    #[serde(default)]
    pub frames_skipped: Vec<u64>,
    /// Kind `viewer`: viewers that joined in each interval.
    #[serde(default)]
    pub viewer_joins: Vec<u64>,
    /// Kind `viewer`: viewers that left by themselves in each interval.
    #[serde(default)]
    pub viewer_leaves: Vec<u64>,
    /// Kind `viewer`: viewers the server disconnected in each interval.
    #[serde(default)]
    pub viewer_kicks: Vec<u64>,
    /// Kind `viewer`: median frame age at receipt in each interval, in microseconds.
    #[serde(default)]
    pub frame_age_p50_us: Vec<u64>,
    /// Kind `viewer`: 99th percentile frame age at receipt in each interval, in microseconds.
    #[serde(default)]
    pub frame_age_p99_us: Vec<u64>,
    /// Kind `viewer`: each interval's frame-age histogram in [`encode_histogram`]'s form, so
    /// sharded timelines merge exactly.
    #[serde(default)]
    pub frame_age_hdr_v2_deflate_base64: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_through_the_encoded_form() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in [10, 200, 3_000, 45_000, 45_000, 1_000_000] {
            h.record(v).unwrap();
        }
        let data = HistogramData::from_histogram(&h);
        assert_eq!(data.count, 6);
        assert_eq!(data.max, h.max());
        let back = data.decode().unwrap();
        assert_eq!(back.len(), 6);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn kernel_figures_from_before_context_switches_still_load() {
        // What an older result.json holds: every field but the context switches'.
        let strip = |mut value: serde_json::Value| {
            let object = value.as_object_mut().unwrap();
            let before = object.len();
            object.retain(|key, _| !key.starts_with("server_ctx_switches"));
            assert!(object.len() < before);
            value
        };
        let sample = KernelSample {
            server_ctx_switches: Some(12),
            server_ctx_switches_main_only: true,
            ..KernelSample::default()
        };
        let older: KernelSample =
            serde_json::from_value(strip(serde_json::to_value(&sample).unwrap())).unwrap();
        assert_eq!(older, KernelSample::default());
        let summary = KernelSummary {
            server_ctx_switches_per_s: Some(1.5),
            server_ctx_switches_per_op: Some(0.5),
            server_ctx_switches_main_only: true,
            ..KernelSummary::default()
        };
        let older: KernelSummary =
            serde_json::from_value(strip(serde_json::to_value(&summary).unwrap())).unwrap();
        assert_eq!(older, KernelSummary::default());
    }

    /// A result as this build writes it, saved in `dir`; its path and bytes.
    fn stored_result(dir: &Path) -> (PathBuf, Vec<u8>) {
        let result = RunResult {
            schema_version: SCHEMA_VERSION,
            tool: "loadgen".into(),
            tool_version: "0.1.0".into(),
            scenario_name: "quick".into(),
            ..RunResult::default()
        };
        let path = dir.join("result.json");
        result.write_atomically(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(RunResult::read(&path).unwrap(), result);
        (path, bytes)
    }

    #[test]
    fn a_truncated_or_empty_result_says_where_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = stored_result(dir.path());
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let error = RunResult::read(&path).unwrap_err();
        assert!(
            matches!(error, ResultFileError::Truncated { bytes: n, .. } if n == bytes.len() / 2)
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "{} is truncated at byte {}",
                path.display(),
                bytes.len() / 2
            )),
            "{message}"
        );
        std::fs::write(&path, b"").unwrap();
        let message = RunResult::read(&path).unwrap_err().to_string();
        assert!(message.contains("result.json is empty"), "{message}");
    }

    #[test]
    fn a_corrupt_result_is_not_json_and_a_foreign_one_is_not_a_result() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = stored_result(dir.path());
        std::fs::write(&path, b"\x00\x17garbage{").unwrap();
        let message = RunResult::read(&path).unwrap_err().to_string();
        assert!(
            message.contains("is not JSON (expected value at line 1 column 1)"),
            "{message}"
        );
        std::fs::write(&path, br#"{"schema_version": 1, "name": "something else"}"#).unwrap();
        let message = RunResult::read(&path).unwrap_err().to_string();
        assert!(
            message.contains("is not a loadgen result.json: missing field"),
            "{message}"
        );
    }

    #[test]
    fn another_schema_version_says_newer_or_older_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = stored_result(dir.path());
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // A newer shape may also have dropped fields this build needs: the version is told first.
        value["schema_version"] = 99.into();
        value.as_object_mut().unwrap().remove("load_points");
        value["tool_version"] = "7.0.0".into();
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        let error = RunResult::read(&path).unwrap_err();
        assert!(matches!(
            error,
            ResultFileError::Schema {
                found: 99,
                expected: SCHEMA_VERSION,
                ..
            }
        ));
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "has schema version 99, newer than this loadgen's {SCHEMA_VERSION}: upgrade loadgen"
            )) && message.contains("loadgen 7.0.0"),
            "{message}"
        );
        value["schema_version"] = 0.into();
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        let message = RunResult::read(&path).unwrap_err().to_string();
        assert!(
            message.contains("schema version 0, older than"),
            "{message}"
        );
    }

    #[test]
    fn results_from_before_the_partial_flag_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = stored_result(dir.path());
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value.as_object_mut().unwrap().remove("partial").unwrap();
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        assert!(!RunResult::read(&path).unwrap().partial);
    }

    #[test]
    fn empty_histograms_have_zero_figures() {
        let h = Histogram::<u64>::new(3).unwrap();
        let data = HistogramData::from_histogram(&h);
        assert_eq!((data.count, data.p99, data.max), (0, 0, 0));
        assert_eq!(data.decode().unwrap().len(), 0);
    }
}
