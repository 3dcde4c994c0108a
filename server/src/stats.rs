//! The server's counters, kept by the loop and written as JSON at exit for `loadgen` to read.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    Header,
    KeepAlive,
    Send,
    WaitClient,
}

/// Plain counters: one loop owns them, no atomics needed.
#[derive(Default, Debug, Clone)]
pub struct Counters {
    pub requests_by_status: [u64; Status::ALL.len()],
    pub response_bytes: u64,
    pub connections_accepted: u64,
    pub connections_peak: u64,
    pub closes: [u64; 3],
    pub hotlink_alternates: Vec<u64>,
    pub timeouts: [u64; 4],
    pub accept_pauses: u64,
}

impl Counters {
    pub fn new(rule_count: usize) -> Counters {
        Counters {
            hotlink_alternates: vec![0; rule_count],
            ..Counters::default()
        }
    }

    pub fn count_close(&mut self, side: CloseSide) {
        self.closes[side as usize] += 1;
    }

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

    pub fn report<'a>(&self, rules: impl Iterator<Item = &'a Rule>) -> StatsReport {
        let requests_by_status: BTreeMap<String, u64> = Status::ALL
            .iter()
            .zip(self.requests_by_status)
            .filter(|(_, n)| *n > 0)
            .map(|(status, n)| (status.code().to_string(), n))
            .collect();
        StatsReport {
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
    pub requests_total: u64,
    pub requests_by_status: BTreeMap<String, u64>,
    /// Header and body bytes handed to the kernel.
    pub response_bytes: u64,
    pub connections_accepted: u64,
    pub connections_peak: u64,
    pub closes: Closes,
    pub reftab_alternates: Vec<RuleCount>,
    pub timeouts: Timeouts,
    pub accept_pauses: u64,
}

#[derive(Serialize, Debug)]
pub struct Closes {
    pub client_first: u64,
    pub server_first: u64,
    pub reset: u64,
}

#[derive(Serialize, Debug)]
pub struct RuleCount {
    pub rule: usize,
    pub pattern: String,
    pub served: u64,
}

#[derive(Serialize, Debug)]
pub struct Timeouts {
    pub header: u64,
    pub keepalive: u64,
    pub send: u64,
    pub wait_client: u64,
}

impl StatsReport {
    /// Writes the report atomically (to `PATH.tmp`, then renamed): a reader never sees half a
    /// file.
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
        file.sync_all().ok();
        fs::rename(&tmp, path).map_err(failed(path))
    }
}
