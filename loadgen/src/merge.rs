//! `loadgen merge`: reads the parts of a sharded run, refuses parts that do not belong together,
//! and writes the merged `result.json` and report (the merging itself is `reports::merge`).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use reports::merge::Part;
use reports::model::RunResult;

use crate::cli::{ExitStatus, MergeArgs};

/// Why `loadgen merge` ended without a merged run: its exit status (2 refused, 4 not written)
/// and the message, naming the part or file at fault.
#[derive(Debug)]
pub struct MergeFailure {
    /// 2 when the parts were refused, 4 when the merged files could not be written.
    pub status: ExitStatus,
    /// What went wrong, naming the culprit.
    pub error: anyhow::Error,
}

impl MergeFailure {
    fn refused(error: impl Into<anyhow::Error>) -> MergeFailure {
        MergeFailure {
            status: ExitStatus::Refused,
            error: error.into(),
        }
    }

    fn not_written(error: impl Into<anyhow::Error>) -> MergeFailure {
        MergeFailure {
            status: ExitStatus::NotWritten,
            error: error.into(),
        }
    }
}

/// Runs `loadgen merge`: prints the merged summary (with its shards table) and where it went;
/// `Ok(Success)` for a valid merged run, `Ok(Invalid)` for a merged but invalid one (the first
/// reason on stderr).
pub fn command(args: &MergeArgs) -> Result<ExitStatus, MergeFailure> {
    let parts = find_parts(&args.parts).map_err(MergeFailure::refused)?;
    let out = match &args.out {
        Some(out) => std::path::absolute(out).map_err(MergeFailure::refused)?,
        None => common_parent(&parts).map_err(MergeFailure::refused)?,
    };
    crate::run::output::check_writable(&out).map_err(MergeFailure::refused)?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let mut merged = reports::merge::merge(&parts, &command_line).map_err(MergeFailure::refused)?;
    // The merged file is this loadgen's writing, whichever wrote the parts.
    merged.tool = "loadgen".into();
    merged.tool_version = env!("CARGO_PKG_VERSION").into();
    let written = write_merged(&merged, &out).map_err(MergeFailure::not_written)?;
    reports::render::text::print_summary(&merged, &mut std::io::stdout().lock());
    println!("merged {} parts", parts.len());
    println!("result: {}", written.result.display());
    println!("report: {}", written.report.display());
    if merged.valid {
        return Ok(ExitStatus::Success);
    }
    eprintln!(
        "Invalid measurement: {}",
        merged.invalid_reasons.first().map_or("", String::as_str)
    );
    eprintln!(
        "The merged run is in {}, marked invalid{}",
        written.result.display(),
        if merged.partial { " and partial" } else { "" }
    );
    Ok(ExitStatus::Invalid)
}

/// Where the merged files went.
struct Written {
    result: PathBuf,
    report: PathBuf,
}

/// Writes `out/result.json` and `out/report.html`, each atomically, creating `out` if needed.
fn write_merged(merged: &RunResult, out: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(out).map_err(|e| anyhow!("creating {}: {e}", out.display()))?;
    let result = out.join("result.json");
    merged.write_atomically(&result)?;
    let report = out.join("report.html");
    reports::render::write_report(&report, std::slice::from_ref(merged)).map_err(|e| {
        anyhow!(
            "writing {}: {e}; {} is whole: `loadgen report {}` renders it later",
            report.display(),
            result.display(),
            result.display()
        )
    })?;
    Ok(Written { result, report })
}

/// The parts named on the command line, read: a directory holding a part's `result.json` is
/// that part; a directory of parts (`OUT/<scenario>/<start>/`, which the merged result of an
/// earlier merge may share) gives each subdirectory holding a `result.json`, in name order.
///
/// Errors: a directory that holds neither, or a `result.json` that cannot be read.
pub fn find_parts(dirs: &[PathBuf]) -> anyhow::Result<Vec<Part>> {
    let mut parts = Vec::new();
    for dir in dirs {
        let own = dir.join("result.json");
        let own = if own.is_file() {
            Some(RunResult::read(&own)?)
        } else {
            None
        };
        match own {
            Some(result) if result.shard.is_some() => parts.push(Part {
                source: dir.clone(),
                result,
            }),
            own => {
                let inside = part_directories(dir)?;
                if inside.is_empty() {
                    match own {
                        // Not a part: `reports::merge` says so, naming it.
                        Some(result) => parts.push(Part {
                            source: dir.clone(),
                            result,
                        }),
                        None => {
                            return Err(anyhow!(
                                "{} holds no result.json, nor directories holding one: name \
                                 the part directories (shard-I-of-N, server) or the directory \
                                 that holds them",
                                dir.display()
                            ))
                        }
                    }
                }
                for source in inside {
                    let result = RunResult::read(&source.join("result.json"))?;
                    parts.push(Part { source, result });
                }
            }
        }
    }
    Ok(parts)
}

/// The subdirectories of `dir` that hold a `result.json`, by name.
fn part_directories(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow!("reading {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| anyhow!("reading {}: {e}", dir.display()))?
            .path();
        if path.join("result.json").is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The directory every part lies in (`OUT/<scenario>/<start>/` for parts written by their
/// default paths), where the merged files go without `--out`.
///
/// Errors: the parts lie in different directories.
pub fn common_parent(parts: &[Part]) -> anyhow::Result<PathBuf> {
    let mut parents = Vec::new();
    for part in parts {
        let absolute = std::path::absolute(&part.source)?;
        let parent = absolute
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("{} has no parent directory: give --out", absolute.display()))?;
        if !parents.contains(&parent) {
            parents.push(parent);
        }
    }
    match parents.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(anyhow!(
            "the parts lie in different directories ({}): give --out DIR for the merged result",
            parents
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::model::ShardInfo;

    fn write_part(dir: &Path, shard: Option<ShardInfo>) {
        std::fs::create_dir_all(dir).unwrap();
        let result = RunResult {
            schema_version: reports::model::SCHEMA_VERSION,
            shard,
            ..RunResult::default()
        };
        result.write_atomically(&dir.join("result.json")).unwrap();
    }

    fn generator(index: u32) -> Option<ShardInfo> {
        Some(ShardInfo {
            role: "generator".into(),
            index,
            count: 2,
            ..ShardInfo::default()
        })
    }

    #[test]
    fn a_run_directory_gives_its_parts_even_beside_an_earlier_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("quick/2026-11-30T09-00-00Z");
        write_part(&run.join("shard-1-of-2"), generator(1));
        write_part(&run.join("shard-0-of-2"), generator(0));
        // The merged result of an earlier `loadgen merge`, written into the run directory.
        write_part(&run, None);
        let parts = find_parts(std::slice::from_ref(&run)).unwrap();
        let sources: Vec<_> = parts.iter().map(|p| p.source.clone()).collect();
        assert_eq!(
            sources,
            vec![run.join("shard-0-of-2"), run.join("shard-1-of-2")]
        );
        assert_eq!(common_parent(&parts).unwrap(), run);
        let one = find_parts(&[run.join("shard-1-of-2")]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].result.shard.as_ref().unwrap().index, 1);
    }

    #[test]
    fn parts_in_different_directories_need_an_out_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a/shard-0-of-2");
        let b = tmp.path().join("b/shard-1-of-2");
        write_part(&a, generator(0));
        write_part(&b, generator(1));
        let parts = find_parts(&[a, b]).unwrap();
        let error = common_parent(&parts).unwrap_err().to_string();
        assert!(error.contains("give --out"), "{error}");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let error = find_parts(&[empty]).unwrap_err().to_string();
        assert!(error.contains("holds no result.json"), "{error}");
    }
}
