//! The server's counters, kept by the loop and written as JSON for `loadgen` to read: at exit,
//! and on SIGUSR1 as numbered snapshots while the server keeps serving ([`StatsFile`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::http::Status;
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
}

impl StatsFile {
    /// The file at `path`, nothing written to it yet.
    pub fn new(path: PathBuf) -> StatsFile {
        StatsFile { path, written: 0 }
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
        counters
            .report(rules, number, is_final)
            .write_to(&self.path)?;
        self.written = number;
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
