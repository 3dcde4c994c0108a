//! `/proc/net/sockstat` and `sockstat6`: the kernel's TCP socket counts and TCP memory for the
//! network namespace of the calling thread. Counts are instantaneous, not cumulative.
//!
//! `tw` counts IPv4 and IPv6 TIME_WAIT (and FIN_WAIT2 minisockets) together: the kernel keeps one
//! counter per namespace. `mem` is in pages and moves with queued data, not with idle sockets.
//!
//! Not everything in the file is the namespace's (net/ipv4/proc.c): `sockets: used`, `TCP: inuse`,
//! `tw` and `TCP6: inuse` are per namespace, but `orphan`, `alloc` and `mem` are the machine's
//! (global per-CPU counters and `tcp_memory_allocated`), whatever namespace reads them.
//!
//! The parser is ours: the `procfs` crate has no reader for `sockstat`.

use serde::{Deserialize, Serialize};

use super::{page_size_bytes, read_text, ProbeError};

/// One reading of `/proc/net/sockstat` (+ `sockstat6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockStat {
    /// `sockets: used`: all sockets of all families.
    pub sockets_used: u64,
    /// `TCP: inuse`: IPv4 TCP sockets in any state but TIME_WAIT, listeners included.
    pub tcp_inuse: u64,
    /// `TCP: orphan`: TCP sockets no longer attached to a file descriptor (closing); machine-wide.
    pub tcp_orphan: u64,
    /// `TCP: tw`: TIME_WAIT minisockets, IPv4 and IPv6 together.
    pub tcp_tw: u64,
    /// `TCP: alloc`: allocated TCP sockets (IPv4 and IPv6, any state but TIME_WAIT); machine-wide.
    pub tcp_alloc: u64,
    /// `TCP: mem`: pages charged to TCP buffers; machine-wide (`tcp_memory_allocated`).
    pub tcp_mem_pages: u64,
    /// `tcp_mem_pages` x the page size.
    pub tcp_mem_bytes: u64,
    /// `TCP6: inuse` from `sockstat6`; `None` when that file is absent (no IPv6).
    pub tcp6_inuse: Option<u64>,
}

impl SockStat {
    /// This namespace's counts plus `other`'s (the split mode's two namespaces as one run).
    /// The per-namespace counts add up; `orphan`, `alloc` and `mem` are machine-wide, the same
    /// whichever namespace reads them, so they are this reading's alone, not doubled.
    pub fn with_other_namespace(&self, other: &SockStat) -> SockStat {
        SockStat {
            sockets_used: self.sockets_used + other.sockets_used,
            tcp_inuse: self.tcp_inuse + other.tcp_inuse,
            tcp_orphan: self.tcp_orphan,
            tcp_tw: self.tcp_tw + other.tcp_tw,
            tcp_alloc: self.tcp_alloc,
            tcp_mem_pages: self.tcp_mem_pages,
            tcp_mem_bytes: self.tcp_mem_bytes,
            tcp6_inuse: match (self.tcp6_inuse, other.tcp6_inuse) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            },
        }
    }
}

/// Parses the text of `/proc/net/sockstat`, and of `sockstat6` when given.
pub fn parse_sockstat(
    sockstat: &str,
    sockstat6: Option<&str>,
    page_size_bytes: u64,
) -> Result<SockStat, ProbeError> {
    let mut out = SockStat::default();
    let mut saw_tcp = false;
    for line in sockstat.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        match proto.trim() {
            "sockets" => out.sockets_used = field(rest, "used").unwrap_or(0),
            "TCP" => {
                saw_tcp = true;
                let get = |name| {
                    field(rest, name).ok_or_else(|| {
                        ProbeError::parse("sockstat", format!("no number for TCP {name}"))
                    })
                };
                out.tcp_inuse = get("inuse")?;
                out.tcp_orphan = get("orphan")?;
                out.tcp_tw = get("tw")?;
                out.tcp_alloc = get("alloc")?;
                out.tcp_mem_pages = get("mem")?;
            }
            _ => {}
        }
    }
    if !saw_tcp {
        return Err(ProbeError::parse("sockstat", "no `TCP:` line"));
    }
    out.tcp_mem_bytes = out.tcp_mem_pages * page_size_bytes;
    out.tcp6_inuse = sockstat6.and_then(|text| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(proto, _)| proto.trim() == "TCP6")
            .and_then(|(_, rest)| field(rest, "inuse"))
    });
    Ok(out)
}

/// The value after `name` in a `name value name value ...` list.
fn field(rest: &str, name: &str) -> Option<u64> {
    let mut words = rest.split_whitespace();
    while let Some(w) = words.next() {
        let value = words.next()?;
        if w == name {
            return value.parse().ok();
        }
    }
    None
}

/// Path of a `/proc/net` file for the calling thread's network namespace. `/proc/net` follows the
/// thread-group leader, which is wrong when only some thread entered a private namespace.
pub(crate) fn proc_net_path(name: &str) -> String {
    let thread = format!("/proc/thread-self/net/{name}");
    if std::path::Path::new(&thread).exists() {
        thread
    } else {
        format!("/proc/net/{name}")
    }
}

/// Reads and parses `sockstat` (+ `sockstat6` if present) for the calling thread's namespace.
pub fn read_sockstat() -> Result<SockStat, ProbeError> {
    let v4 = read_text(proc_net_path("sockstat"))?;
    let v6 = read_text(proc_net_path("sockstat6")).ok();
    parse_sockstat(&v4, v6.as_deref(), page_size_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/probe/sockstat.txt");
    const FIXTURE6: &str = include_str!("../../tests/fixtures/probe/sockstat6.txt");

    #[test]
    fn parses_real_sockstat() {
        // Copied from this machine: "TCP: inuse 108 orphan 0 tw 129851 alloc 108 mem 113".
        let s = parse_sockstat(FIXTURE, Some(FIXTURE6), 4096).unwrap();
        assert_eq!(s.sockets_used, 123);
        assert_eq!(s.tcp_inuse, 108);
        assert_eq!(s.tcp_orphan, 0);
        assert_eq!(s.tcp_tw, 129_851);
        assert_eq!(s.tcp_alloc, 108);
        assert_eq!(s.tcp_mem_pages, 113);
        assert_eq!(s.tcp_mem_bytes, 113 * 4096);
        assert_eq!(s.tcp6_inuse, Some(0));
    }

    #[test]
    fn mem_pages_become_bytes() {
        let text =
            "sockets: used 9\nTCP: inuse 5 orphan 1 tw 7 alloc 6 mem 12\nUDP: inuse 0 mem 0\n";
        let s = parse_sockstat(text, None, 4096).unwrap();
        assert_eq!(s.tcp_mem_pages, 12);
        assert_eq!(s.tcp_mem_bytes, 12 * 4096);
        assert_eq!(s.tcp6_inuse, None);
        assert_eq!((s.tcp_orphan, s.tcp_tw), (1, 7));
    }

    #[test]
    fn two_namespaces_add_counts_but_not_the_global_memory() {
        let clients = parse_sockstat(
            "sockets: used 9\nTCP: inuse 5 orphan 1 tw 7 alloc 6 mem 12\n",
            Some("TCP6: inuse 1\n"),
            4096,
        )
        .unwrap();
        let server = parse_sockstat(
            "sockets: used 4\nTCP: inuse 2 orphan 2 tw 30 alloc 7 mem 11\n",
            None,
            4096,
        )
        .unwrap();
        let both = clients.with_other_namespace(&server);
        assert_eq!(both.sockets_used, 13);
        assert_eq!((both.tcp_inuse, both.tcp_tw), (7, 37));
        // Machine-wide: the first reading's, not a sum.
        assert_eq!((both.tcp_orphan, both.tcp_alloc), (1, 6));
        assert_eq!((both.tcp_mem_pages, both.tcp_mem_bytes), (12, 12 * 4096));
        assert_eq!(both.tcp6_inuse, Some(1));
    }

    #[test]
    fn missing_tcp_line_is_an_error() {
        let err = parse_sockstat("sockets: used 1\nUDP: inuse 0 mem 0\n", None, 4096);
        assert!(err.unwrap_err().to_string().contains("TCP"));
        let err = parse_sockstat("TCP: inuse 1 orphan 0 alloc 1 mem 0\n", None, 4096);
        assert_eq!(
            err.unwrap_err().to_string(),
            "sockstat: no number for TCP tw"
        );
    }

    #[test]
    fn reads_this_machine() {
        // An open listener is a TCP socket in use: the count cannot be zero while it lives.
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = read_sockstat().unwrap();
        assert!(s.tcp_inuse >= 1 && s.tcp_alloc >= 1, "{s:?}");
        assert_eq!(s.tcp_mem_bytes, s.tcp_mem_pages * page_size_bytes());
    }
}
