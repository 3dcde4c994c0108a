//! The server's counters, kept by the loop and written as JSON for `loadgen` to read: at exit,
//! and on SIGUSR1 as numbered snapshots while the server keeps serving ([`StatsFile`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::http::Status;
use crate::live::{Format, LiveConfig, ViewerCounts};
use crate::reftab::Rule;
use crate::ServerError;

/// Why a connection ended; each end is counted once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseSide {
    /// The client's FIN (or RST) came first: the client holds the TIME_WAIT.
    ClientFirst,
    /// The server sent its FIN first: the server holds the TIME_WAIT.
    ServerFirst,
    /// The server closed with SO_LINGER 0: an RST, no TIME_WAIT anywhere.
    Reset,
}

/// Which timer closed a connection; the index into [`Counters::timeouts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// `--header-timeout`: the request head was not complete in time (slowloris).
    Header,
    /// `--keepalive-timeout`: no new request, and the client no longer taking in the last reply.
    KeepAlive,
    /// `--send-timeout`: a reply made no progress, while sending or in the kernel's send queue
    /// while lingering.
    Send,
    /// wait-client: the send queue drained and no FIN came within the linger duration.
    /// (The end of a `pause` is not a timeout: it is counted only as a server-first close.)
    WaitClient,
}

/// Plain counters: one loop owns them, no atomics needed.
#[derive(Default, Debug, Clone)]
pub struct Counters {
    /// Requests answered (the response started), by status; indexed by [`Status::index`].
    pub requests_by_status: [u64; Status::ALL.len()],
    /// Header and body bytes handed to the kernel.
    pub response_bytes: u64,
    /// Connections taken from the listener.
    pub connections_accepted: u64,
    /// Most connections open at once (for several loops, `merge` adds their peaks).
    pub connections_peak: u64,
    /// Connections ended, indexed by `CloseSide as usize`: client first, server first, reset.
    pub closes: [u64; 3],
    /// Per reftab rule, in table order: requests given the rule's alternate.
    pub hotlink_alternates: Vec<u64>,
    /// Connections closed by a timer, indexed by `Timeout as usize`.
    pub timeouts: [u64; 4],
    /// Times accepting paused (`ACCEPT_PAUSE` of the loop, 100 ms) because `accept` failed for
    /// want of a resource: EMFILE, ENFILE, ENOBUFS, ENOMEM.
    pub accept_pauses: u64,
    /// The live stream's counters and gauges (all zero without `--live`).
    pub live: LiveCounters,
}

/// Buckets of the live latency histograms: bucket `i` counts values in `[2^i, 2^(i+1))` µs,
/// bucket 0 also those under 1 µs, the last also everything above (2^23 µs = 8.4 s).
pub const LIVE_BUCKETS: usize = 24;

/// The bucket of [`LIVE_BUCKETS`] a duration of `micros` µs falls in: `floor(log2(micros))`.
pub fn log2_bucket(micros: u64) -> usize {
    (micros.max(1).ilog2() as usize).min(LIVE_BUCKETS - 1)
}

/// The live stream's counters (monotonic: a reader may diff two snapshots) and gauges (values
/// at the snapshot, set by the loop just before it writes one: never diffed).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct LiveCounters {
    /// Frames the source published. Every loop (and worker) publishes the same frames from
    /// the same epoch, so [`LiveCounters::merge`] keeps the largest, not the sum.
    pub frames_published: u64,
    /// Publications that found more than one frame due: the loop woke late (summed over loops).
    pub source_late: u64,
    /// Viewers that got the stream's head and started (HEAD requests not counted).
    pub viewers_joined: u64,
    /// Frames whose last byte the kernel accepted, over all viewers.
    pub frames_sent: u64,
    /// Stream bytes (frames, not the response head) the kernel accepted.
    pub bytes_sent: u64,
    /// Frames `latest` passed over for a newer one.
    pub frames_skipped: u64,
    /// Frames that fell off a `queue:N` backlog before the viewer got them.
    pub frames_dropped: u64,
    /// Viewers the server disconnected for lagging (`queue:BYTES:disconnect`, `fifo` cap):
    /// server-first closes, not errors.
    pub kicks: u64,
    /// The subset of `kicks` by the `fifo` hard cap.
    pub fifo_cap_kicks: u64,
    /// Per frame start: its due (capture) instant to the write of its first byte to one viewer,
    /// log2 µs buckets ([`log2_bucket`]).
    pub dispatch_delay_log2_us: [u64; LIVE_BUCKETS],
    /// Per publication round: the frame's due instant to the first byte to the last viewer that
    /// was waiting for it, log2 µs buckets.
    pub spread_log2_us: [u64; LIVE_BUCKETS],
    /// Values at the snapshot, not counts.
    pub gauges: LiveGauges,
}

/// The live stream's state at a snapshot (`*_now`, `*_peak`): a reader must not diff them.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LiveGauges {
    /// Viewers connected.
    pub viewers_now: u64,
    /// Body bytes between each viewer's place and the newest frame's end, summed.
    pub queue_bytes_now: u64,
    /// Bytes the kernel holds unsent for the viewers (SIOCOUTQNSD), summed.
    pub unsent_bytes_now: u64,
    /// Bytes the kernel holds unacknowledged or unsent for the viewers (SIOCOUTQ), summed.
    pub unacked_bytes_now: u64,
    /// Distinct frames in memory (rings and viewers); summed over loops, each has its own ring.
    pub frames_alive_now: u64,
    /// The most frames in memory at once (for several loops the sum of their peaks: a bound).
    pub frames_alive_peak: u64,
}

impl LiveCounters {
    /// Adds another loop's (or worker's): counts, buckets and gauges are summed, except
    /// `frames_published`, the same frames in every loop, of which the largest is kept.
    pub fn merge(&mut self, other: &LiveCounters) {
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        self.frames_published = self.frames_published.max(other.frames_published);
        self.source_late += other.source_late;
        self.viewers_joined += other.viewers_joined;
        self.frames_sent += other.frames_sent;
        self.bytes_sent += other.bytes_sent;
        self.frames_skipped += other.frames_skipped;
        self.frames_dropped += other.frames_dropped;
        self.kicks += other.kicks;
        self.fifo_cap_kicks += other.fifo_cap_kicks;
        add(
            &mut self.dispatch_delay_log2_us,
            &other.dispatch_delay_log2_us,
        );
        add(&mut self.spread_log2_us, &other.spread_log2_us);
        let (g, o) = (&mut self.gauges, &other.gauges);
        g.viewers_now += o.viewers_now;
        g.queue_bytes_now += o.queue_bytes_now;
        g.unsent_bytes_now += o.unsent_bytes_now;
        g.unacked_bytes_now += o.unacked_bytes_now;
        g.frames_alive_now += o.frames_alive_now;
        g.frames_alive_peak += o.frames_alive_peak;
    }

    /// Adds what one viewer was given between two readings of its counts.
    pub fn add_viewer(&mut self, before: ViewerCounts, after: ViewerCounts) {
        self.frames_sent += after.sent - before.sent;
        self.bytes_sent += after.bytes_sent - before.bytes_sent;
        self.frames_skipped += after.skipped - before.skipped;
        self.frames_dropped += after.dropped - before.dropped;
        self.kicks += after.kicks - before.kicks;
        self.fifo_cap_kicks += after.fifo_cap_kicks - before.fifo_cap_kicks;
    }

    /// Counts one frame's dispatch delay ([`LiveCounters::dispatch_delay_log2_us`]).
    pub fn count_dispatch_delay(&mut self, delay: Duration) {
        self.dispatch_delay_log2_us[log2_bucket(delay.as_micros() as u64)] += 1;
    }

    /// Counts one publication round's spread ([`LiveCounters::spread_log2_us`]).
    pub fn count_spread(&mut self, spread: Duration) {
        self.spread_log2_us[log2_bucket(spread.as_micros() as u64)] += 1;
    }

    /// The `"live"` object of the `--stats` document for `stream`.
    pub fn report(&self, stream: &LiveConfig) -> LiveReport {
        LiveReport {
            path: stream.path.clone(),
            format: match stream.format {
                Format::Mjpeg => "mjpeg",
                Format::Cbr { .. } => "cbr",
            },
            policy: stream.policy.to_string(),
            fps: stream.fps,
            frame_bytes: stream.body_bytes() as u64,
            lowat_bytes: stream.lowat,
            frames_published: self.frames_published,
            source_late: self.source_late,
            viewers_joined: self.viewers_joined,
            frames_sent: self.frames_sent,
            bytes_sent: self.bytes_sent,
            frames_skipped: self.frames_skipped,
            frames_dropped: self.frames_dropped,
            kicks: self.kicks,
            fifo_cap_kicks: self.fifo_cap_kicks,
            dispatch_delay_log2_us: self.dispatch_delay_log2_us,
            spread_log2_us: self.spread_log2_us,
            gauges: self.gauges,
        }
    }
}

/// The `"live"` object of the `--stats` document (only with `--live`): the stream's settings,
/// then the counters of [`LiveCounters`], then the gauges of [`LiveGauges`], all at top level.
#[derive(Serialize, Debug)]
pub struct LiveReport {
    /// The stream's request path.
    pub path: String,
    /// `mjpeg` or `cbr`.
    pub format: &'static str,
    /// The policy as `--live-policy` reads it (`queue:BYTES:disconnect` in bytes).
    pub policy: String,
    /// Frames (CBR: chunks) per second.
    pub fps: f64,
    /// Body bytes per frame (CBR: per chunk).
    pub frame_bytes: u64,
    /// `TCP_NOTSENT_LOWAT` in bytes, `null` when not set (`--live-lowat off`).
    pub lowat_bytes: Option<u32>,
    /// See [`LiveCounters::frames_published`].
    pub frames_published: u64,
    /// See [`LiveCounters::source_late`].
    pub source_late: u64,
    /// See [`LiveCounters::viewers_joined`].
    pub viewers_joined: u64,
    /// See [`LiveCounters::frames_sent`].
    pub frames_sent: u64,
    /// See [`LiveCounters::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`LiveCounters::frames_skipped`].
    pub frames_skipped: u64,
    /// See [`LiveCounters::frames_dropped`].
    pub frames_dropped: u64,
    /// See [`LiveCounters::kicks`].
    pub kicks: u64,
    /// See [`LiveCounters::fifo_cap_kicks`].
    pub fifo_cap_kicks: u64,
    /// See [`LiveCounters::dispatch_delay_log2_us`].
    pub dispatch_delay_log2_us: [u64; LIVE_BUCKETS],
    /// See [`LiveCounters::spread_log2_us`].
    pub spread_log2_us: [u64; LIVE_BUCKETS],
    /// The gauges, flattened into this object.
    #[serde(flatten)]
    pub gauges: LiveGauges,
}

impl Counters {
    /// Zeroed counters with one hotlink counter per reftab rule.
    pub fn new(rule_count: usize) -> Counters {
        Counters {
            hotlink_alternates: vec![0; rule_count],
            ..Counters::default()
        }
    }

    /// Counts one connection ended.
    pub fn count_close(&mut self, side: CloseSide) {
        self.closes[side as usize] += 1;
    }

    /// Counts one timer that fired and closed its connection (the close itself is counted by
    /// [`Counters::count_close`]).
    pub fn count_timeout(&mut self, timeout: Timeout) {
        self.timeouts[timeout as usize] += 1;
    }

    /// Adds another loop's counters (for designs with several loops).
    pub fn merge(&mut self, other: &Counters) {
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.requests_by_status, &other.requests_by_status);
        add(&mut self.closes, &other.closes);
        add(&mut self.hotlink_alternates, &other.hotlink_alternates);
        add(&mut self.timeouts, &other.timeouts);
        self.response_bytes += other.response_bytes;
        self.connections_accepted += other.connections_accepted;
        self.connections_peak += other.connections_peak;
        self.accept_pauses += other.accept_pauses;
        self.live.merge(&other.live);
    }

    /// The `--stats` document numbered `snapshot` (see [`StatsReport::snapshot`]), the last one
    /// of the run when `is_final`; `rules` are the reftab rules in table order, one per
    /// `hotlink_alternates` entry.
    pub fn report<'a>(
        &self,
        rules: impl Iterator<Item = &'a Rule>,
        snapshot: u64,
        is_final: bool,
    ) -> StatsReport {
        let requests_by_status: BTreeMap<String, u64> = Status::ALL
            .iter()
            .zip(self.requests_by_status)
            .filter(|(_, n)| *n > 0)
            .map(|(status, n)| (status.code().to_string(), n))
            .collect();
        StatsReport {
            snapshot,
            is_final,
            requests_total: self.requests_by_status.iter().sum(),
            requests_by_status,
            response_bytes: self.response_bytes,
            connections_accepted: self.connections_accepted,
            connections_peak: self.connections_peak,
            closes: Closes {
                client_first: self.closes[CloseSide::ClientFirst as usize],
                server_first: self.closes[CloseSide::ServerFirst as usize],
                reset: self.closes[CloseSide::Reset as usize],
            },
            reftab_alternates: rules
                .zip(&self.hotlink_alternates)
                .map(|(rule, &served)| RuleCount {
                    rule: rule.number,
                    pattern: rule.pattern.clone(),
                    served,
                })
                .collect(),
            timeouts: Timeouts {
                header: self.timeouts[Timeout::Header as usize],
                keepalive: self.timeouts[Timeout::KeepAlive as usize],
                send: self.timeouts[Timeout::Send as usize],
                wait_client: self.timeouts[Timeout::WaitClient as usize],
            },
            accept_pauses: self.accept_pauses,
            live: None,
        }
    }
}

/// The `--stats` JSON document.
#[derive(Serialize, Debug)]
pub struct StatsReport {
    /// Which write of the file this is: 1 for the first, one more for each after it, SIGUSR1
    /// snapshots and the exit write alike. A reader that saw N knows a newer document is there
    /// once it reads more than N.
    pub snapshot: u64,
    /// True for the write at exit, after the grace period: these counters are the run's last.
    /// False for a SIGUSR1 snapshot taken while the server was serving.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Requests answered, every status together.
    pub requests_total: u64,
    /// Requests answered per status code (`"200"`, `"404"`, ...); codes never sent are left out.
    pub requests_by_status: BTreeMap<String, u64>,
    /// Header and body bytes handed to the kernel.
    pub response_bytes: u64,
    /// Connections taken from the listener.
    pub connections_accepted: u64,
    /// Most connections open at once.
    pub connections_peak: u64,
    /// How the connections ended.
    pub closes: Closes,
    /// Per reftab rule, in table order: how often its alternate was served; empty without
    /// `--reftab`.
    pub reftab_alternates: Vec<RuleCount>,
    /// Connections closed by each timer.
    pub timeouts: Timeouts,
    /// Times accepting paused for 100 ms because `accept` ran out of descriptors or memory
    /// (EMFILE, ENFILE, ENOBUFS, ENOMEM).
    pub accept_pauses: u64,
    /// The live stream's settings, counters and gauges; only with `--live`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveReport>,
}

/// Connections ended, by who closed first (see [`CloseSide`]); each connection counts once.
#[derive(Serialize, Debug)]
pub struct Closes {
    /// The client's FIN or RST came first: the client holds the TIME_WAIT.
    pub client_first: u64,
    /// The server sent its FIN first (timeouts and connections cut off at the end of `--grace`
    /// included): the server holds the TIME_WAIT.
    pub server_first: u64,
    /// Closed with SO_LINGER 0 (`--close reset`): an RST, no TIME_WAIT on either side.
    pub reset: u64,
}

/// How often one reftab rule served its alternate.
#[derive(Serialize, Debug)]
pub struct RuleCount {
    /// The rule's 1-based number among the table's rules ([`Rule::number`]).
    pub rule: usize,
    /// Its pattern, as written in the table.
    pub pattern: String,
    /// Requests given the alternate instead of the original.
    pub served: u64,
}

/// Connections closed by each timer (see [`Timeout`]).
#[derive(Serialize, Debug)]
pub struct Timeouts {
    /// The request head was not complete within `--header-timeout`.
    pub header: u64,
    /// Idle for `--keepalive-timeout` between requests.
    pub keepalive: u64,
    /// A reply made no progress for `--send-timeout` (while sending, or lingering after it).
    pub send: u64,
    /// wait-client: no FIN from the client within the linger duration after the send queue
    /// drained.
    pub wait_client: u64,
}

impl StatsReport {
    /// Writes the report atomically (to `PATH.tmp`, then renamed): a reader never sees half a
    /// file. The final report is also synced to disk before the rename; a snapshot is not,
    /// since the rename alone already shows readers the whole file, and the one loop that
    /// serves every connection should not wait for the disk.
    pub fn write_to(&self, path: &Path) -> Result<(), ServerError> {
        let tmp = path.with_extension("json.tmp");
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |error| ServerError::Stats { path, error }
        };
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| failed(path)(e.into()))?;
        json.push(b'\n');
        let mut file = fs::File::create(&tmp).map_err(failed(&tmp))?;
        file.write_all(&json).map_err(failed(&tmp))?;
        if self.is_final {
            file.sync_all().ok();
        }
        fs::rename(&tmp, path).map_err(failed(path))
    }
}

/// The `--stats` file and how many documents have been written to it, so that each write
/// (SIGUSR1 snapshots, then the one at exit) carries the next [`StatsReport::snapshot`] number.
#[derive(Debug)]
pub struct StatsFile {
    path: PathBuf,
    written: u64,
    live: Option<LiveConfig>,
}

impl StatsFile {
    /// The file at `path`, nothing written to it yet.
    pub fn new(path: PathBuf) -> StatsFile {
        StatsFile {
            path,
            written: 0,
            live: None,
        }
    }

    /// The file at `path` of a server with a live stream: each document gets the `"live"`
    /// object of [`LiveCounters::report`] for `stream`.
    pub fn with_live(path: PathBuf, stream: Option<LiveConfig>) -> StatsFile {
        StatsFile {
            live: stream,
            ..StatsFile::new(path)
        }
    }

    /// Where the documents go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Documents written so far: the `snapshot` number of the last one, 0 before the first.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes `counters` atomically as the next snapshot and returns its number. A failed
    /// write does not use up a number: the next one that succeeds takes it, so the numbers a
    /// reader sees have no gaps.
    pub fn write<'a>(
        &mut self,
        counters: &Counters,
        rules: impl Iterator<Item = &'a Rule>,
        is_final: bool,
    ) -> Result<u64, ServerError> {
        let number = self.written + 1;
        let mut report = counters.report(rules, number, is_final);
        report.live = self
            .live
            .as_ref()
            .map(|stream| counters.live.report(stream));
        report.write_to(&self.path)?;
        self.written = number;
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets_take_their_lower_power_of_two() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(1024), 10);
        assert_eq!(log2_bucket(2047), 10);
        assert_eq!(log2_bucket(u64::MAX), LIVE_BUCKETS - 1);
    }

    #[test]
    fn live_counters_merge_by_sum_but_frames_published_by_max() {
        let mut one = LiveCounters {
            frames_published: 40,
            kicks: 1,
            ..LiveCounters::default()
        };
        one.count_dispatch_delay(Duration::from_micros(1500));
        one.gauges.viewers_now = 3;
        let mut two = LiveCounters {
            frames_published: 41,
            kicks: 2,
            ..LiveCounters::default()
        };
        two.count_dispatch_delay(Duration::from_micros(1024));
        two.gauges.viewers_now = 4;
        one.merge(&two);
        assert_eq!(one.frames_published, 41);
        assert_eq!(one.kicks, 3);
        assert_eq!(one.dispatch_delay_log2_us[10], 2);
        assert_eq!(one.gauges.viewers_now, 7);
    }

    #[test]
    fn the_live_object_is_written_only_with_a_live_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let mut counters = Counters::new(0);
        StatsFile::new(path.clone())
            .write(&counters, std::iter::empty(), true)
            .unwrap();
        assert!(read(&path).get("live").is_none());

        counters.live.frames_skipped = 5;
        counters.live.gauges.frames_alive_peak = 2;
        let config = LiveConfig {
            lowat: None,
            ..LiveConfig::new("/cam.mjpg")
        };
        StatsFile::with_live(path.clone(), Some(config))
            .write(&counters, std::iter::empty(), true)
            .unwrap();
        let live = &read(&path)["live"];
        assert_eq!(live["path"], "/cam.mjpg");
        assert_eq!(live["format"], "mjpeg");
        assert_eq!(live["policy"], "latest");
        assert_eq!(live["fps"], 4.0);
        assert_eq!(live["frame_bytes"], 3072);
        assert!(live["lowat_bytes"].is_null());
        assert_eq!(live["frames_skipped"], 5);
        assert_eq!(live["frames_alive_peak"], 2);
        assert_eq!(live["dispatch_delay_log2_us"].as_array().unwrap().len(), 24);
        let keys: Vec<&str> = live
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        for key in [
            "source_late",
            "viewers_joined",
            "frames_sent",
            "bytes_sent",
            "frames_dropped",
            "kicks",
            "fifo_cap_kicks",
            "spread_log2_us",
            "viewers_now",
            "queue_bytes_now",
            "unsent_bytes_now",
            "unacked_bytes_now",
            "frames_alive_now",
        ] {
            assert!(keys.contains(&key), "no {key} in {keys:?}");
        }
    }

    fn read(path: &Path) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn each_write_takes_the_next_number_and_a_failed_one_takes_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let mut counters = Counters::new(0);
        let mut file = StatsFile::new(path.clone());
        assert_eq!(file.written(), 0);

        counters.requests_by_status[0] = 2;
        assert_eq!(file.write(&counters, std::iter::empty(), false).unwrap(), 1);
        let first = read(&path);
        assert_eq!(first["snapshot"], 1);
        assert_eq!(first["final"], false);
        assert_eq!(first["requests_total"], 2);

        // A directory in the file's place: the rename fails and the number stays free.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(file.write(&counters, std::iter::empty(), false).is_err());
        assert_eq!(file.written(), 1);
        fs::remove_dir(&path).unwrap();

        counters.requests_by_status[0] = 5;
        assert_eq!(file.write(&counters, std::iter::empty(), true).unwrap(), 2);
        let last = read(&path);
        assert_eq!(last["snapshot"], 2);
        assert_eq!(last["final"], true);
        assert_eq!(last["requests_total"], 5);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
