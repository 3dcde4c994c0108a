//! The site a run serves and requests: the SPECweb96 file set, written once per size and seed
//! under `OUT/filesets/`, or an existing directory with its list of `WEIGHT PATH` lines. Either
//! way the result is the directory the server gets and the [`Workload`] the clients draw from.

use std::path::{Path, PathBuf};

use crate::engine::workload::{UrlEntry, Workload};
use crate::scenario::{Scenario, SiteSpec};
use crate::specweb96::fileset::{write_fileset, ContentPattern};
use crate::specweb96::RequestMix;

/// A site that cannot be prepared; each names the file or key to fix.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A `[site]` key the scenario check could not catch alone (the mix against the size).
    #[error("site.{0}")]
    Key(String),
    /// The SPECweb96 file set could not be written.
    #[error("writing the SPECweb96 file set to {}: {error}", root.display())]
    Fileset {
        /// The file set's directory.
        root: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A directory site's `root` is not a directory.
    #[error("site.root {}: not a directory the server could serve", path.display())]
    Root {
        /// The path, relative paths resolved against the scenario's directory.
        path: PathBuf,
    },
    /// The URL list could not be read.
    #[error("reading site.urls {}: {error}", path.display())]
    ReadUrls {
        /// The list's file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A line of the URL list is not `WEIGHT PATH`.
    #[error("{}:{line}: {message}", path.display())]
    UrlLine {
        /// The list's file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The URL list has no entry.
    #[error("{}: no URLs listed", path.display())]
    NoUrls {
        /// The list's file.
        path: PathBuf,
    },
}

/// Prepares the scenario's site: returns the directory to serve and what to request.
/// `root` and `urls` of a directory site are relative to `scenario_dir`; file sets go to
/// `out/filesets/specweb96-<dirs>dirs-seed<seed>`.
pub fn prepare_site(
    scenario: &Scenario,
    scenario_dir: &Path,
    out: &Path,
) -> Result<(PathBuf, Workload), SiteError> {
    match &scenario.site {
        SiteSpec::Specweb96 { mix, .. } => {
            let dirs = scenario
                .site
                .specweb96_dirs()
                .map_err(SiteError::Key)?
                .expect("a SPECweb96 site has a directory count");
            let root = out
                .join("filesets")
                .join(format!("specweb96-{dirs}dirs-seed{}", scenario.seed));
            write_fileset(&root, dirs, scenario.seed).map_err(|error| SiteError::Fileset {
                root: root.clone(),
                error,
            })?;
            let mix = RequestMix::new(mix, dirs).map_err(|e| SiteError::Key(format!("mix.{e}")))?;
            let pattern = scenario
                .verify_content
                .then(|| ContentPattern::new(scenario.seed));
            // Absolute: a real server resolves a relative root against its own directory.
            let root = std::fs::canonicalize(&root).unwrap_or(root);
            Ok((root, Workload::Specweb96 { mix, pattern }))
        }
        SiteSpec::Directory { root, urls } => {
            let root = scenario_dir.join(root);
            if !root.is_dir() {
                return Err(SiteError::Root { path: root });
            }
            // Absolute: a real server resolves a relative root against its own directory.
            let root = std::fs::canonicalize(&root).unwrap_or(root);
            let urls = scenario_dir.join(urls);
            let text = std::fs::read_to_string(&urls).map_err(|error| SiteError::ReadUrls {
                path: urls.clone(),
                error,
            })?;
            let entries = parse_url_list(&text, &urls)?
                .into_iter()
                .map(|(weight, path)| {
                    // A missing file is the server's to answer (404); its length is then unknown.
                    let on_disk = root.join(path.trim_start_matches('/'));
                    let expected_bytes = std::fs::metadata(&on_disk)
                        .ok()
                        .filter(|m| m.is_file())
                        .map(|m| m.len());
                    UrlEntry {
                        path,
                        weight,
                        expected_bytes,
                    }
                })
                .collect();
            Ok((root, Workload::urls(entries)))
        }
    }
}

/// Reads a URL list: one `WEIGHT PATH` a line, `#` starts a comment, blank lines are skipped.
/// Weights are positive numbers (relative shares), paths start with `/`. `path` names the file
/// in errors.
pub fn parse_url_list(text: &str, path: &Path) -> Result<Vec<(f64, String)>, SiteError> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bad = |message: String| SiteError::UrlLine {
            path: path.to_path_buf(),
            line: number + 1,
            message,
        };
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(weight), Some(url_path), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected `WEIGHT PATH`".into()));
        };
        let weight: f64 = weight
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w > 0.0)
            .ok_or_else(|| bad(format!("weight `{weight}` must be a positive number")))?;
        if !url_path.starts_with('/') {
            return Err(bad(format!("path `{url_path}` must start with `/`")));
        }
        entries.push((weight, url_path.to_string()));
    }
    if entries.is_empty() {
        return Err(SiteError::NoUrls {
            path: path.to_path_buf(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lists_skip_comments_and_blank_lines() {
        let text = "# the wrk comparison\n3 /1k.bin\n\n1 /index.html   # the page\n";
        let entries = parse_url_list(text, Path::new("onek.urls")).unwrap();
        assert_eq!(
            entries,
            vec![
                (3.0, "/1k.bin".to_string()),
                (1.0, "/index.html".to_string())
            ]
        );
    }

    #[test]
    fn a_bad_url_line_is_named_by_file_and_line() {
        let cases = [
            ("1 /a\n/b\n", "onek.urls:2: expected `WEIGHT PATH`"),
            (
                "0 /a\n",
                "onek.urls:1: weight `0` must be a positive number",
            ),
            (
                "1 a.html\n",
                "onek.urls:1: path `a.html` must start with `/`",
            ),
            ("1 /a /b\n", "onek.urls:1: expected `WEIGHT PATH`"),
            ("# nothing\n", "onek.urls: no URLs listed"),
        ];
        for (text, expected) in cases {
            let error = parse_url_list(text, Path::new("onek.urls"))
                .unwrap_err()
                .to_string();
            assert_eq!(error, expected, "for {text:?}");
        }
    }

    #[test]
    fn a_directory_site_without_its_root_names_the_key() {
        let scenario = Scenario::parse(
            "[site]\nkind = \"directory\"\nroot = \"no/such/dir\"\nurls = \"u\"\n\n\
             [[clients]]\nname = \"c\"\nkind = \"closed\"\nclients = 1\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let dir = std::env::temp_dir();
        let error = prepare_site(&scenario, &dir, &dir)
            .err()
            .expect("must fail")
            .to_string();
        assert!(error.starts_with("site.root "), "{error}");
        assert!(error.contains("no/such/dir"), "{error}");
    }
}
