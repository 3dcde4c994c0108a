//! What the clients request, as the engine sees it: a sampler of picks, the request target of a
//! pick, and what its reply must look like (length, and content where verification is on).

use rand::Rng;

use crate::specweb96::fileset::{ContentPattern, ContentVerifier};
use crate::specweb96::{FileId, RequestMix, CLASSES, PATH_LEN};

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

    /// The request target for `pick`: `/dir00042/class1_3` or the URL list's path.
    pub fn request_path(&self, pick: Pick) -> RequestPath<'_> {
        match (self, pick) {
            (_, Pick::Specweb(id)) => {
                let mut path = [b'/'; PATH_LEN + 1];
                path[1..].copy_from_slice(&id.path_bytes());
                RequestPath::Specweb(path)
            }
            (Workload::Urls { entries, .. }, Pick::Url(i)) => {
                RequestPath::Listed(&entries[i as usize].path)
            }
            (Workload::Specweb96 { .. }, Pick::Url(_)) => RequestPath::Listed("/"),
        }
    }
}

/// A request target, without an allocation: a SPECweb96 path built on the stack, or a listed one.
pub enum RequestPath<'a> {
    Specweb([u8; PATH_LEN + 1]),
    Listed(&'a str),
}

impl AsRef<[u8]> for RequestPath<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            RequestPath::Specweb(bytes) => bytes,
            RequestPath::Listed(path) => path.as_bytes(),
        }
    }
}
