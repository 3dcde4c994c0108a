//! `/proc/net/netstat` TcpExt counters: how many TIME_WAITs the kernel created, recycled, killed
//! or skipped for lack of buckets, and how many connections the accept queue dropped. All are
//! cumulative since the network namespace was created: a run reports differences.
//!
//! The file holds pairs of lines, `TcpExt: Name Name ...` then `TcpExt: value value ...`; other
//! prefixes (IpExt, MPTcpExt) are ignored here.
//!
//! The parser is ours: the `procfs` crate reads `/proc/net/snmp` but not the TcpExt lines of
//! `/proc/net/netstat`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sockstat::proc_net_path;
use super::{read_text, ProbeError};

/// Every TcpExt field of one reading, by its kernel name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpExt {
    /// Kernel name (`TW`, `ListenDrops`, ...) to cumulative count.
    pub fields: BTreeMap<String, u64>,
}

/// The TcpExt counters a run watches, cumulative counts since the namespace was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpExtCounters {
    /// `TW`: TIME_WAIT sockets that ended by their timer (the 60 s ran out).
    pub tw: u64,
    /// `TWRecycled`: TIME_WAIT sockets reused for a new outgoing connection (`tcp_tw_reuse`).
    pub tw_recycled: u64,
    /// `TWKilled`: TIME_WAIT sockets killed early (by an RST, or by the recycle logic).
    pub tw_killed: u64,
    /// `TCPTimeWaitOverflow`: closes that skipped TIME_WAIT because `tcp_max_tw_buckets` was full.
    pub tcp_time_wait_overflow: u64,
    /// `ListenOverflows`: SYNs or ACKs dropped because a listener's accept queue was full.
    pub listen_overflows: u64,
    /// `ListenDrops`: all drops at a listener (overflows included).
    pub listen_drops: u64,
    /// `TCPAbortOnData`: connections reset because data arrived after the application closed them.
    pub tcp_abort_on_data: u64,
    /// `TCPAbortOnClose`: connections reset because unread data remained at close().
    pub tcp_abort_on_close: u64,
}

impl TcpExt {
    /// The field of that kernel name, if the kernel has it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields.get(name).copied()
    }

    /// `TW`.
    pub fn tw(&self) -> Option<u64> {
        self.get("TW")
    }

    /// `TWRecycled`.
    pub fn tw_recycled(&self) -> Option<u64> {
        self.get("TWRecycled")
    }

    /// `TWKilled`.
    pub fn tw_killed(&self) -> Option<u64> {
        self.get("TWKilled")
    }

    /// `TCPTimeWaitOverflow`.
    pub fn tcp_time_wait_overflow(&self) -> Option<u64> {
        self.get("TCPTimeWaitOverflow")
    }

    /// `ListenOverflows`.
    pub fn listen_overflows(&self) -> Option<u64> {
        self.get("ListenOverflows")
    }

    /// `ListenDrops`.
    pub fn listen_drops(&self) -> Option<u64> {
        self.get("ListenDrops")
    }

    /// `TCPAbortOnData`.
    pub fn tcp_abort_on_data(&self) -> Option<u64> {
        self.get("TCPAbortOnData")
    }

    /// `TCPAbortOnClose`.
    pub fn tcp_abort_on_close(&self) -> Option<u64> {
        self.get("TCPAbortOnClose")
    }

    /// The watched counters; a field this kernel lacks reads 0.
    pub fn counters(&self) -> TcpExtCounters {
        let g = |name| self.get(name).unwrap_or(0);
        TcpExtCounters {
            tw: g("TW"),
            tw_recycled: g("TWRecycled"),
            tw_killed: g("TWKilled"),
            tcp_time_wait_overflow: g("TCPTimeWaitOverflow"),
            listen_overflows: g("ListenOverflows"),
            listen_drops: g("ListenDrops"),
            tcp_abort_on_data: g("TCPAbortOnData"),
            tcp_abort_on_close: g("TCPAbortOnClose"),
        }
    }
}

impl TcpExtCounters {
    /// `self + other`, field by field: two namespaces' counters as one run's.
    pub fn plus(&self, other: &TcpExtCounters) -> TcpExtCounters {
        TcpExtCounters {
            tw: self.tw + other.tw,
            tw_recycled: self.tw_recycled + other.tw_recycled,
            tw_killed: self.tw_killed + other.tw_killed,
            tcp_time_wait_overflow: self.tcp_time_wait_overflow + other.tcp_time_wait_overflow,
            listen_overflows: self.listen_overflows + other.listen_overflows,
            listen_drops: self.listen_drops + other.listen_drops,
            tcp_abort_on_data: self.tcp_abort_on_data + other.tcp_abort_on_data,
            tcp_abort_on_close: self.tcp_abort_on_close + other.tcp_abort_on_close,
        }
    }

    /// `self - earlier`, field by field (saturating: counters never go back within a namespace).
    pub fn since(&self, earlier: &TcpExtCounters) -> TcpExtCounters {
        TcpExtCounters {
            tw: self.tw.saturating_sub(earlier.tw),
            tw_recycled: self.tw_recycled.saturating_sub(earlier.tw_recycled),
            tw_killed: self.tw_killed.saturating_sub(earlier.tw_killed),
            tcp_time_wait_overflow: self
                .tcp_time_wait_overflow
                .saturating_sub(earlier.tcp_time_wait_overflow),
            listen_overflows: self
                .listen_overflows
                .saturating_sub(earlier.listen_overflows),
            listen_drops: self.listen_drops.saturating_sub(earlier.listen_drops),
            tcp_abort_on_data: self
                .tcp_abort_on_data
                .saturating_sub(earlier.tcp_abort_on_data),
            tcp_abort_on_close: self
                .tcp_abort_on_close
                .saturating_sub(earlier.tcp_abort_on_close),
        }
    }
}

/// Parses the text of `/proc/net/netstat` into its TcpExt fields.
pub fn parse_netstat(text: &str) -> Result<TcpExt, ProbeError> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(ProbeError::parse(
            "netstat",
            "no TcpExt header and value lines",
        ));
    };
    let names: Vec<&str> = names["TcpExt:".len()..].split_whitespace().collect();
    let values: Vec<&str> = values["TcpExt:".len()..].split_whitespace().collect();
    if names.len() != values.len() {
        return Err(ProbeError::parse(
            "netstat",
            format!(
                "TcpExt has {} names but {} values",
                names.len(),
                values.len()
            ),
        ));
    }
    let mut fields = BTreeMap::new();
    for (name, value) in names.into_iter().zip(values) {
        let v: u64 = value
            .parse()
            .map_err(|e| ProbeError::parse("netstat", format!("TcpExt {name} = `{value}`: {e}")))?;
        fields.insert(name.to_string(), v);
    }
    Ok(TcpExt { fields })
}

/// Reads and parses `/proc/net/netstat` for the calling thread's network namespace.
pub fn read_tcp_ext() -> Result<TcpExt, ProbeError> {
    parse_netstat(&read_text(proc_net_path("netstat"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/probe/netstat.txt");

    #[test]
    fn parses_real_netstat() {
        let t = parse_netstat(FIXTURE).unwrap();
        // Values copied from the fixture's TcpExt value line, by position of each name.
        assert_eq!(t.tw(), Some(10_378_136));
        assert_eq!(t.tw_recycled(), Some(29_489));
        assert_eq!(t.tw_killed(), Some(0));
        assert_eq!(t.listen_overflows(), Some(0));
        assert_eq!(t.listen_drops(), Some(0));
        assert_eq!(t.tcp_abort_on_data(), Some(175));
        assert_eq!(t.tcp_abort_on_close(), Some(1964));
        assert_eq!(t.tcp_time_wait_overflow(), Some(0));
        assert_eq!(t.get("DelayedACKs"), Some(15_736));
        // IpExt and MPTcpExt names must not leak in.
        assert_eq!(t.get("InOctets"), None);
        assert_eq!(t.fields.len(), 135);
        let c = t.counters();
        assert_eq!(
            (c.tw, c.tw_recycled, c.tcp_abort_on_data),
            (10_378_136, 29_489, 175)
        );
    }

    #[test]
    fn counters_since_subtracts() {
        let a = TcpExtCounters {
            tw: 5,
            listen_drops: 2,
            ..Default::default()
        };
        let b = TcpExtCounters {
            tw: 12,
            listen_drops: 2,
            tw_recycled: 1,
            ..Default::default()
        };
        let d = b.since(&a);
        assert_eq!((d.tw, d.listen_drops, d.tw_recycled), (7, 0, 1));
        let sum = a.plus(&b);
        assert_eq!((sum.tw, sum.listen_drops, sum.tw_recycled), (17, 4, 1));
    }

    #[test]
    fn mismatched_lines_are_an_error() {
        assert!(parse_netstat("TcpExt: TW TWKilled\nTcpExt: 1\n").is_err());
        assert!(parse_netstat("IpExt: A\nIpExt: 1\n").is_err());
        let error = parse_netstat("TcpExt: TW\nTcpExt: x\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("netstat: TcpExt TW = `x`: invalid digit"),
            "{error}"
        );
    }

    #[test]
    fn reads_this_machine() {
        let t = read_tcp_ext().unwrap();
        assert!(t.tw().is_some() && t.listen_overflows().is_some());
    }
}
