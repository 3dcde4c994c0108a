//! `/proc/slabinfo`: what one TIME_WAIT (`tw_sock_TCP`), one full TCP socket (`TCP`) and one
//! pending connection request (`request_sock_TCP`) cost in kernel memory on this kernel.
//!
//! The file is readable by root only. When it cannot be read (or lacks the cache), a TIME_WAIT is
//! costed at [`TW_SOCK_FALLBACK_BYTES`] and the result says `estimated: true`: 256 B is what
//! `tw_sock_TCP` measures on x86-64 kernels of the 5.x/6.x series (some builds show 264 B).
//!
//! The parser is ours: the `procfs` crate has no reader for `/proc/slabinfo`.

use serde::{Deserialize, Serialize};

use super::{read_text, ProbeError};

/// Bytes assumed for one TIME_WAIT socket when `/proc/slabinfo` gives no figure.
pub const TW_SOCK_FALLBACK_BYTES: u64 = 256;

/// One line of `/proc/slabinfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabEntry {
    /// Cache name, e.g. `tw_sock_TCP`.
    pub name: String,
    /// Objects in use.
    pub active_objs: u64,
    /// Objects allocated (in use or free in partial slabs).
    pub num_objs: u64,
    /// Bytes per object, alignment and metadata included (the kernel's `s->size`).
    pub object_size_bytes: u64,
    /// Objects per slab.
    pub objects_per_slab: u64,
    /// Pages per slab.
    pub pages_per_slab: u64,
}

/// Object sizes of the TCP caches a run is costed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabSizes {
    /// One IPv4 TIME_WAIT socket (`tw_sock_TCP`), or [`TW_SOCK_FALLBACK_BYTES`] when estimated.
    pub tw_sock_tcp_bytes: u64,
    /// One IPv6 TIME_WAIT socket (`tw_sock_TCPv6`), when readable.
    pub tw_sock_tcpv6_bytes: Option<u64>,
    /// One full IPv4 TCP socket (`TCP`), when readable.
    pub tcp_bytes: Option<u64>,
    /// One pending connection request (`request_sock_TCP`), when readable.
    pub request_sock_tcp_bytes: Option<u64>,
    /// True when `tw_sock_tcp_bytes` is the fallback, not read from this kernel.
    pub estimated: bool,
}

impl SlabSizes {
    /// The documented fallback, used when `/proc/slabinfo` is unreadable.
    pub fn fallback() -> SlabSizes {
        SlabSizes {
            tw_sock_tcp_bytes: TW_SOCK_FALLBACK_BYTES,
            tw_sock_tcpv6_bytes: None,
            tcp_bytes: None,
            request_sock_tcp_bytes: None,
            estimated: true,
        }
    }

    /// Picks the TCP caches out of parsed slabinfo entries.
    pub fn from_entries(entries: &[SlabEntry]) -> SlabSizes {
        let size = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.object_size_bytes)
        };
        let tw = size("tw_sock_TCP");
        SlabSizes {
            tw_sock_tcp_bytes: tw.unwrap_or(TW_SOCK_FALLBACK_BYTES),
            tw_sock_tcpv6_bytes: size("tw_sock_TCPv6"),
            tcp_bytes: size("TCP"),
            request_sock_tcp_bytes: size("request_sock_TCP"),
            estimated: tw.is_none(),
        }
    }
}

/// Parses the text of `/proc/slabinfo` (version 2.x) into its entries.
pub fn parse_slabinfo(text: &str) -> Result<Vec<SlabEntry>, ProbeError> {
    let mut lines = text.lines();
    match lines.next() {
        Some(first) if first.starts_with("slabinfo - version: 2") => {}
        other => {
            return Err(ProbeError::parse(
                "slabinfo",
                format!("unknown header {:?}", other.unwrap_or("")),
            ))
        }
    }
    let mut out = Vec::new();
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        // name active_objs num_objs objsize objperslab pagesperslab : tunables ... : slabdata ...
        let mut w = line.split_whitespace();
        let Some(name) = w.next() else { continue };
        let nums: Vec<u64> = w.take(5).map_while(|x| x.parse().ok()).collect();
        if nums.len() != 5 {
            return Err(ProbeError::parse(
                "slabinfo",
                format!("cannot read line `{line}`"),
            ));
        }
        out.push(SlabEntry {
            name: name.to_string(),
            active_objs: nums[0],
            num_objs: nums[1],
            object_size_bytes: nums[2],
            objects_per_slab: nums[3],
            pages_per_slab: nums[4],
        });
    }
    Ok(out)
}

/// Reads `/proc/slabinfo`; on any failure (not root, no such file, unknown format) returns
/// [`SlabSizes::fallback`], flagged `estimated`.
pub fn read_slab_sizes() -> SlabSizes {
    match read_text("/proc/slabinfo").and_then(|t| parse_slabinfo(&t)) {
        Ok(entries) => SlabSizes::from_entries(&entries),
        Err(_) => SlabSizes::fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/probe/slabinfo.txt");

    #[test]
    fn parses_real_slabinfo() {
        let entries = parse_slabinfo(FIXTURE).unwrap();
        assert_eq!(entries.len(), 8);
        let tw = entries.iter().find(|e| e.name == "tw_sock_TCP").unwrap();
        assert_eq!(
            (
                tw.active_objs,
                tw.num_objs,
                tw.object_size_bytes,
                tw.objects_per_slab
            ),
            (129_952, 129_952, 256, 16)
        );
        let s = SlabSizes::from_entries(&entries);
        assert_eq!(
            s,
            SlabSizes {
                tw_sock_tcp_bytes: 256,
                tw_sock_tcpv6_bytes: Some(256),
                tcp_bytes: Some(2368),
                request_sock_tcp_bytes: Some(320),
                estimated: false,
            }
        );
    }

    #[test]
    fn missing_cache_falls_back_flagged() {
        let text = "slabinfo - version: 2.1\n# name ...\nTCP 1 13 2368 13 8 : tunables 0 0 0 : slabdata 1 1 0\n";
        let s = SlabSizes::from_entries(&parse_slabinfo(text).unwrap());
        assert_eq!(s.tw_sock_tcp_bytes, TW_SOCK_FALLBACK_BYTES);
        assert!(s.estimated);
        assert_eq!(s.tcp_bytes, Some(2368));
    }

    #[test]
    fn unknown_format_is_an_error() {
        assert_eq!(
            parse_slabinfo("slabinfo - version: 1.1\n")
                .unwrap_err()
                .to_string(),
            "slabinfo: unknown header \"slabinfo - version: 1.1\""
        );
        assert!(parse_slabinfo("slabinfo - version: 2.1\nTCP x y\n").is_err());
    }

    #[test]
    fn reads_this_machine_or_falls_back() {
        let s = read_slab_sizes();
        // As root the kernel's figure (256 or 264 B on x86-64); otherwise the flagged fallback.
        let is_root = crate::os::is_root();
        if is_root {
            assert!(!s.estimated);
            assert!((128..=512).contains(&s.tw_sock_tcp_bytes), "{s:?}");
        } else {
            assert_eq!(s, SlabSizes::fallback());
        }
    }
}
