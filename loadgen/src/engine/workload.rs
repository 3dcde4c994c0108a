//! What the clients request, as the engine sees it: a sampler of picks, the request target of a
//! pick, and what its reply must look like (length, and content where verification is on).

use rand::Rng;

use crate::specweb96::fileset::{ContentPattern, ContentVerifier};
use crate::specweb96::{FileId, RequestMix, CLASSES, PATH_LEN};

/// One request's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// A file of the SPECweb96 file set.
    Specweb(FileId),
    /// Index into a URL list.
    Url(u32),
}

/// A URL list entry: path, relative weight, expected body length when known.
#[derive(Clone, Debug)]
pub struct UrlEntry {
    /// The request target, origin form (starts with `/`).
    pub path: String,
    /// Relative share of the draws: positive; only its ratio to the others' matters.
    pub weight: f64,
    /// The file's length on disk when the list was read; `None` (no such file) leaves the body
    /// length unchecked.
    pub expected_bytes: Option<u64>,
}

/// What a run's clients request and how their replies are checked: the SPECweb96 mix over
/// its file set, or a weighted URL list.
pub enum Workload {
    /// The SPECweb96 file set, drawn by its request mix.
    Specweb96 {
        /// The draw of directory, class and file.
        mix: RequestMix,
        /// Present when bodies are verified byte by byte.
        pattern: Option<ContentPattern>,
    },
    /// A directory site's `WEIGHT PATH` list.
    Urls {
        /// The list, in file order; [`Pick::Url`] indexes it.
        entries: Vec<UrlEntry>,
        /// Cumulative normalised weights, for a binary-search draw.
        cumulative: Vec<f64>,
    },
}

impl Workload {
    /// A URL-list workload, its weights normalised for the draw. `entries` must not be empty:
    /// [`Workload::sample`] would panic.
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

    /// Draws the next request's target.
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

    /// The classes latencies are recorded by: `class0`..`class3` for SPECweb96, a single `urls`
    /// for a list.
    pub fn class_names(&self) -> Vec<String> {
        match self {
            Workload::Specweb96 { .. } => (0..CLASSES).map(|c| format!("class{c}")).collect(),
            Workload::Urls { .. } => vec!["urls".to_string()],
        }
    }

    /// The class `pick` is recorded under: an index into [`Workload::class_names`].
    pub fn class_index(&self, pick: Pick) -> usize {
        match pick {
            Pick::Specweb(id) => id.class() as usize,
            Pick::Url(_) => 0,
        }
    }

    /// The body length a reply to `pick` must have; `None`: unknown (a listed path with no file
    /// on disk), not checked.
    pub fn expected_bytes(&self, pick: Pick) -> Option<u64> {
        match (self, pick) {
            (_, Pick::Specweb(id)) => Some(id.size_bytes()),
            (Workload::Urls { entries, .. }, Pick::Url(i)) => entries[i as usize].expected_bytes,
            _ => None,
        }
    }

    /// A byte-by-byte check of the reply's body for `pick`; `None` unless the workload is
    /// SPECweb96 with `verify_content` on.
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
    /// `/dir00042/class1_3`, built on the stack.
    Specweb([u8; PATH_LEN + 1]),
    /// A URL list's path, borrowed from the workload.
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
