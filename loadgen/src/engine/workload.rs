//! What the clients request, as the engine sees it: a sampler of picks, the request bytes for a
//! pick, and what its reply must look like (length, and content where verification is on).

use std::io::Write as _;

use rand::Rng;

use crate::specweb96::fileset::{ContentPattern, ContentVerifier};
use crate::specweb96::{FileId, RequestMix, CLASSES};

/// One request's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Specweb(FileId),
    /// Index into a URL list.
    Url(u32),
}

/// A URL list entry: path, relative weight, expected body length when known.
#[derive(Clone, Debug)]
pub struct UrlEntry {
    pub path: String,
    pub weight: f64,
    pub expected_bytes: Option<u64>,
}

pub enum Workload {
    Specweb96 {
        mix: RequestMix,
        /// Present when bodies are verified byte by byte.
        pattern: Option<ContentPattern>,
    },
    Urls {
        entries: Vec<UrlEntry>,
        /// Cumulative normalised weights, for a binary-search draw.
        cumulative: Vec<f64>,
    },
}

impl Workload {
    pub fn urls(entries: Vec<UrlEntry>) -> Workload {
        let total: f64 = entries.iter().map(|e| e.weight).sum();
        let mut running = 0.0;
        let cumulative = entries
            .iter()
            .map(|e| {
                running += e.weight / total;
                running
            })
            .collect();
        Workload::Urls {
            entries,
            cumulative,
        }
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Pick {
        match self {
            Workload::Specweb96 { mix, .. } => Pick::Specweb(mix.sample(rng)),
            Workload::Urls { cumulative, .. } => {
                let u: f64 = rng.gen();
                let index = cumulative.partition_point(|&c| c < u);
                Pick::Url(index.min(cumulative.len() - 1) as u32)
            }
        }
    }

    pub fn class_names(&self) -> Vec<String> {
        match self {
            Workload::Specweb96 { .. } => (0..CLASSES).map(|c| format!("class{c}")).collect(),
            Workload::Urls { .. } => vec!["urls".to_string()],
        }
    }

    pub fn class_index(&self, pick: Pick) -> usize {
        match pick {
            Pick::Specweb(id) => id.class() as usize,
            Pick::Url(_) => 0,
        }
    }

    pub fn expected_bytes(&self, pick: Pick) -> Option<u64> {
        match (self, pick) {
            (_, Pick::Specweb(id)) => Some(id.size_bytes()),
            (Workload::Urls { entries, .. }, Pick::Url(i)) => entries[i as usize].expected_bytes,
            _ => None,
        }
    }

    pub fn verifier(&self, pick: Pick) -> Option<ContentVerifier<'_>> {
        match (self, pick) {
            (
                Workload::Specweb96 {
                    pattern: Some(p), ..
                },
                Pick::Specweb(id),
            ) => Some(p.verifier(id)),
            _ => None,
        }
    }

    /// The request head for `pick`. One request per connection is SPECweb96's HTTP/1.0; a
    /// connection that carries more uses HTTP/1.1 and says `close` on its last request.
    pub fn write_request(&self, pick: Pick, host: &str, style: RequestStyle, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"GET ");
        match (self, pick) {
            (_, Pick::Specweb(id)) => {
                out.push(b'/');
                out.extend_from_slice(&id.path_bytes());
            }
            (Workload::Urls { entries, .. }, Pick::Url(i)) => {
                out.extend_from_slice(entries[i as usize].path.as_bytes())
            }
            _ => out.push(b'/'),
        }
        let _ = match style {
            RequestStyle::Http10 => write!(out, " HTTP/1.0\r\nHost: {host}\r\n\r\n"),
            RequestStyle::KeepAlive => write!(out, " HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            RequestStyle::LastOnConnection => {
                write!(
                    out,
                    " HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                )
            }
            RequestStyle::BrowserHttp10 => {
                write!(out, " HTTP/1.0\r\nHost: {host}\r\n{BROWSER_HEADERS}\r\n")
            }
            RequestStyle::BrowserKeepAlive => {
                write!(out, " HTTP/1.1\r\nHost: {host}\r\n{BROWSER_HEADERS}\r\n")
            }
        };
    }
}

/// What a 1999 browser sent besides the request line and Host: with them a request is about
/// 200 bytes, which a 33.6k upstream takes ~50 ms to carry.
const BROWSER_HEADERS: &str =
    "Accept: image/gif, image/x-xbitmap, image/jpeg, image/pjpeg, */*\r\n\
Accept-Language: en-us\r\n\
User-Agent: Mozilla/4.0 (compatible; MSIE 5.0; Windows 98; DigExt)\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStyle {
    Http10,
    KeepAlive,
    LastOnConnection,
    /// A slow-line user's browser: HTTP/1.0, one request per connection.
    BrowserHttp10,
    /// A slow-line user's browser on a persistent HTTP/1.1 connection.
    BrowserKeepAlive,
}

impl RequestStyle {
    /// The connection may carry another request after this one.
    pub fn keeps_alive(self) -> bool {
        matches!(
            self,
            RequestStyle::KeepAlive | RequestStyle::BrowserKeepAlive
        )
    }
}
