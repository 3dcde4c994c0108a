//! The `[site]` table: what the clients ask for, the SPECweb96 file set or an existing directory
//! with a list of URLs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::specweb96::{DirScaling, MixParams};

/// What the clients ask for (read through the flat `SiteTable`, like `Population`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "SiteTable")]
pub enum SiteSpec {
    /// The SPECweb96 file set, written (once per seed and size) under `OUT/filesets/` (`--out`, `runs` by default).
    Specweb96 {
        /// Directory count; or leave it out and give `target_ops_per_s`.
        dirs: Option<u32>,
        /// Derive the directory count from this load with `scaling`.
        target_ops_per_s: Option<f64>,
        /// The rule that turns `target_ops_per_s` into a directory count.
        scaling: DirScaling,
        /// How each request picks its class, file and directory.
        mix: MixParams,
    },
    /// An existing directory served as is, and a list of `WEIGHT PATH` lines to request.
    Directory {
        /// The directory served, relative to the scenario file.
        root: PathBuf,
        /// The URL list, relative to the scenario file.
        urls: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SiteKind {
    Specweb96,
    Directory,
}

/// A `[site]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteTable {
    kind: SiteKind,
    #[serde(default)]
    dirs: Option<u32>,
    #[serde(default)]
    target_ops_per_s: Option<f64>,
    #[serde(default)]
    scaling: Option<DirScaling>,
    #[serde(default)]
    mix: Option<MixParams>,
    #[serde(default)]
    root: Option<PathBuf>,
    #[serde(default)]
    urls: Option<PathBuf>,
}

impl TryFrom<SiteTable> for SiteSpec {
    type Error = String;

    fn try_from(table: SiteTable) -> Result<Self, String> {
        match table.kind {
            SiteKind::Specweb96 => {
                if table.root.is_some() || table.urls.is_some() {
                    return Err("site: `root` and `urls` belong to kind = \"directory\"".into());
                }
                Ok(SiteSpec::Specweb96 {
                    dirs: table.dirs,
                    target_ops_per_s: table.target_ops_per_s,
                    scaling: table.scaling.unwrap_or_default(),
                    mix: table.mix.unwrap_or_default(),
                })
            }
            SiteKind::Directory => {
                if table.dirs.is_some()
                    || table.target_ops_per_s.is_some()
                    || table.scaling.is_some()
                    || table.mix.is_some()
                {
                    return Err(
                        "site: `dirs`, `target_ops_per_s`, `scaling` and `mix` belong to kind = \"specweb96\""
                            .into(),
                    );
                }
                let (Some(root), Some(urls)) = (table.root, table.urls) else {
                    return Err("site: kind = \"directory\" needs `root` and `urls`".into());
                };
                Ok(SiteSpec::Directory { root, urls })
            }
        }
    }
}

impl SiteSpec {
    /// The SPECweb96 directory count: given, or derived from `target_ops_per_s` with the
    /// scaling rule. None for a directory site.
    pub fn specweb96_dirs(&self) -> Result<Option<u32>, String> {
        let SiteSpec::Specweb96 {
            dirs,
            target_ops_per_s,
            scaling,
            ..
        } = self
        else {
            return Ok(None);
        };
        scaling
            .validate()
            .map_err(|e| format!("site.scaling.{e}"))?;
        match (dirs, target_ops_per_s) {
            (Some(_), Some(_)) => {
                Err("site: give either `dirs` or `target_ops_per_s`, not both".into())
            }
            (None, None) => Err("site: give `dirs` or `target_ops_per_s`".into()),
            (Some(0), _) => Err("site.dirs: must be at least 1".into()),
            (Some(dirs), None) => Ok(Some(*dirs)),
            (None, Some(ops)) if *ops <= 0.0 || !ops.is_finite() => {
                Err("site.target_ops_per_s: must be a positive number".into())
            }
            (None, Some(ops)) => scaling
                .dirs_for(*ops)
                .map(Some)
                .map_err(|e| format!("site.scaling.{e}")),
        }
    }
}

impl Default for SiteSpec {
    fn default() -> Self {
        SiteSpec::Specweb96 {
            dirs: Some(1),
            target_ops_per_s: None,
            scaling: DirScaling::default(),
            mix: MixParams::default(),
        }
    }
}
