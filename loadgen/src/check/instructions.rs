//! Instruction counts of the callgrind benches (the `instructions` benches of `afterburner` and
//! `loadgen`, run by gungraun 0.20), read back from the summaries gungraun wrote.
//!
//! `scripts/instructions.sh DIR` runs the benches with `GUNGRAUN_HOME=DIR` and
//! `--save-summary=json`; gungraun then writes one `summary.json` per benchmark at
//! `DIR/<package>/<bench file>/<group>/<function>.<id>/summary.json` (`<function>` alone for a
//! benchmark without an id), beside callgrind's `.out` and `.log` files. Of each summary only
//! the fields below are read; the rest (cache simulation, timings, paths) is ignored. The
//! instruction count is `profiles[tool = "Callgrind"].data.total.metrics.Ir.values.new`: `Ir`,
//! callgrind's instructions executed, of the run just made (`old` is the previous run's, present
//! when the directory already held one), summed over the benchmark process's threads.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One benchmark's instruction count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionCount {
    /// Stable id, the same from run to run and machine to machine:
    /// `<package>::<bench file>::<group>::<function>::<id>`, e.g.
    /// `afterburner::instructions::connection::request_cycle::wrk_keepalive` (no `::<id>` for a
    /// benchmark without one).
    pub bench: String,
    /// Instructions executed by one call of the benchmark function, setup and teardown excluded
    /// (callgrind's `Ir`, a count, summed over the process's threads).
    pub instructions: u64,
}

/// Why the instruction counts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InstructionsError {
    /// Not one `summary.json` under the directory.
    #[error(
        "no gungraun summaries (summary.json) under {}: `scripts/instructions.sh {}` makes them \
         (the `instructions` benches run with GUNGRAUN_HOME set to that directory and \
         --save-summary=json)",
        dir.display(),
        dir.display()
    )]
    NoSummaries {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A directory or a summary could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The kernel's answer.
        error: io::Error,
    },
    /// A summary is not JSON, or lacks a field every gungraun summary has.
    #[error("{}: not a gungraun summary: {error}", path.display())]
    Malformed {
        /// The `summary.json`.
        path: PathBuf,
        /// What serde_json found wrong, with line and column.
        error: serde_json::Error,
    },
    /// A summary is not where gungraun puts it
    /// (`<package>/<bench file>/<group>/<function>.<id>/summary.json`), so its package is unknown.
    #[error(
        "{}: not at <package>/{bench_file}/{group}/<function>.<id>/summary.json, where gungraun \
         writes the summary of bench {module_path}",
        path.display()
    )]
    Layout {
        /// The `summary.json`.
        path: PathBuf,
        /// The bench file its `module_path` names (first segment).
        bench_file: String,
        /// Its `group`.
        group: String,
        /// Its `module_path`.
        module_path: String,
    },
    /// A summary without callgrind's `Ir` for the run: the benchmark ran under another tool, or
    /// only an older run's figure is there.
    #[error(
        "{}: bench {bench} has no callgrind instruction count (profiles[tool = \"Callgrind\"]\
         .data.total.metrics.Ir.values.new)",
        path.display()
    )]
    NoInstructionCount {
        /// The `summary.json`.
        path: PathBuf,
        /// The benchmark's id.
        bench: String,
    },
    /// Two summaries give the same benchmark id (e.g. a home written with `--separate-targets`
    /// for two targets).
    #[error(
        "bench {bench} has two summaries, {} and {}: give the directory of one run",
        first.display(),
        second.display()
    )]
    Duplicate {
        /// The benchmark's id.
        bench: String,
        /// The summary read first.
        first: PathBuf,
        /// The other one.
        second: PathBuf,
    },
}

/// The fields read of a gungraun `summary.json` (schema version 7, gungraun 0.20).
#[derive(Deserialize)]
struct Summary {
    /// `<bench file>::<group>::<function>`.
    module_path: String,
    group: String,
    id: Option<String>,
    profiles: Vec<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    /// `Callgrind`, `DHAT`, ...
    tool: String,
    data: Option<ProfileData>,
}

#[derive(Deserialize)]
struct ProfileData {
    /// All parts (threads, subprocesses) together.
    total: Option<ProfileTotal>,
}

#[derive(Deserialize)]
struct ProfileTotal {
    metrics: Option<CallgrindMetrics>,
}

#[derive(Deserialize)]
struct CallgrindMetrics {
    #[serde(rename = "Ir")]
    ir: Option<Metric>,
}

#[derive(Deserialize)]
struct Metric {
    values: Values,
}

#[derive(Deserialize)]
struct Values {
    /// This run's figure; `old` (not read) is the previous run's.
    new: Option<u64>,
}

/// The instruction count of every benchmark whose gungraun summary lies under `dir` (at any
/// depth: `dir` is normally the `GUNGRAUN_HOME` of one `scripts/instructions.sh` run), sorted by
/// [`InstructionCount::bench`].
pub fn read_instruction_counts(dir: &Path) -> Result<Vec<InstructionCount>, InstructionsError> {
    let mut summaries = Vec::new();
    find_summaries(dir, &mut summaries)?;
    if summaries.is_empty() {
        return Err(InstructionsError::NoSummaries {
            dir: dir.to_path_buf(),
        });
    }
    summaries.sort();
    let mut counts: BTreeMap<String, (u64, PathBuf)> = BTreeMap::new();
    for path in summaries {
        let (bench, instructions) = read_summary(&path)?;
        if let Some((_, first)) = counts.get(&bench) {
            return Err(InstructionsError::Duplicate {
                bench,
                first: first.clone(),
                second: path,
            });
        }
        counts.insert(bench, (instructions, path));
    }
    Ok(counts
        .into_iter()
        .map(|(bench, (instructions, _))| InstructionCount {
            bench,
            instructions,
        })
        .collect())
}

/// Collects every `summary.json` under `dir`.
fn find_summaries(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InstructionsError> {
    let read_error = |error| InstructionsError::Read {
        path: dir.to_path_buf(),
        error,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|error| InstructionsError::Read {
            path: path.clone(),
            error,
        })?;
        if kind.is_dir() {
            find_summaries(&path, out)?;
        } else if entry.file_name() == "summary.json" {
            out.push(path);
        }
    }
    Ok(())
}

/// One summary's benchmark id and instruction count.
fn read_summary(path: &Path) -> Result<(String, u64), InstructionsError> {
    let text = std::fs::read_to_string(path).map_err(|error| InstructionsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let summary: Summary =
        serde_json::from_str(&text).map_err(|error| InstructionsError::Malformed {
            path: path.to_path_buf(),
            error,
        })?;
    let package = package_of(path, &summary)?;
    let mut bench = format!("{package}::{}", summary.module_path);
    if let Some(id) = &summary.id {
        bench.push_str("::");
        bench.push_str(id);
    }
    let instructions = summary
        .profiles
        .iter()
        .filter(|profile| profile.tool == "Callgrind")
        .find_map(|profile| {
            profile
                .data
                .as_ref()?
                .total
                .as_ref()?
                .metrics
                .as_ref()?
                .ir
                .as_ref()?
                .values
                .new
        });
    match instructions {
        Some(instructions) => Ok((bench, instructions)),
        None => Err(InstructionsError::NoInstructionCount {
            path: path.to_path_buf(),
            bench,
        }),
    }
}

/// The package a summary belongs to: the directory gungraun named after it, three above the
/// summary's own (`<package>/<bench file>/<group>/<function>.<id>/summary.json`), checked
/// against the bench file and group the summary names.
fn package_of(path: &Path, summary: &Summary) -> Result<String, InstructionsError> {
    let bench_file = summary
        .module_path
        .split("::")
        .next()
        .unwrap_or_default()
        .to_string();
    let name = |dir: Option<&Path>| {
        dir.and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .map(str::to_string)
    };
    let group_dir = path.parent().and_then(Path::parent);
    let bench_file_dir = group_dir.and_then(Path::parent);
    let package = name(bench_file_dir.and_then(Path::parent));
    match package {
        Some(package)
            if name(group_dir).as_deref() == Some(summary.group.as_str())
                && name(bench_file_dir).as_deref() == Some(bench_file.as_str()) =>
        {
            Ok(package)
        }
        _ => Err(InstructionsError::Layout {
            path: path.to_path_buf(),
            bench_file,
            group: summary.group.clone(),
            module_path: summary.module_path.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `summary.json` from a real run (`scripts/instructions.sh`, `--save-summary=pretty-json`)
    /// of `afterburner::instructions::connection::request_cycle::wrk_keepalive`.
    const REAL_SUMMARY: &str = include_str!("../../tests/data/gungraun-summary.json");

    /// Where gungraun puts the summary of `package`'s `instructions` bench `group::function.id`.
    fn place(home: &Path, package: &str, group: &str, function_dir: &str, text: &str) -> PathBuf {
        let dir = home
            .join(package)
            .join("instructions")
            .join(group)
            .join(function_dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The real summary as another benchmark with another count.
    fn variant(group: &str, function: &str, id: &str, ir: u64) -> String {
        let mut summary: serde_json::Value = serde_json::from_str(REAL_SUMMARY).unwrap();
        summary["group"] = group.into();
        summary["function_name"] = function.into();
        summary["id"] = id.into();
        summary["module_path"] = format!("instructions::{group}::{function}").into();
        summary["profiles"][0]["data"]["total"]["metrics"]["Ir"]["values"]["new"] = ir.into();
        summary.to_string()
    }

    #[test]
    fn reads_a_real_summary_where_gungraun_puts_it() {
        let home = tempfile::tempdir().unwrap();
        place(
            home.path(),
            "afterburner",
            "connection",
            "request_cycle.wrk_keepalive",
            REAL_SUMMARY,
        );
        // callgrind's own files beside it are not summaries.
        let beside = home
            .path()
            .join("afterburner/instructions/connection/request_cycle.wrk_keepalive");
        std::fs::write(beside.join("callgrind.request_cycle.wrk_keepalive.out"), "").unwrap();
        let counts = read_instruction_counts(home.path()).unwrap();
        assert_eq!(
            counts,
            vec![InstructionCount {
                bench: "afterburner::instructions::connection::request_cycle::wrk_keepalive".into(),
                instructions: 2867,
            }]
        );
    }

    #[test]
    fn counts_are_sorted_by_bench_across_packages() {
        let home = tempfile::tempdir().unwrap();
        place(
            home.path(),
            "loadgen",
            "record",
            "sample.lan",
            &variant("record", "sample", "lan", 500),
        );
        place(
            home.path(),
            "afterburner",
            "parse",
            "request_head.browser_like",
            &variant("parse", "request_head", "browser_like", 2613),
        );
        place(
            home.path(),
            "afterburner",
            "connection",
            "request_cycle.wrk_keepalive",
            REAL_SUMMARY,
        );
        let counts = read_instruction_counts(home.path()).unwrap();
        let benches: Vec<(&str, u64)> = counts
            .iter()
            .map(|c| (c.bench.as_str(), c.instructions))
            .collect();
        assert_eq!(
            benches,
            [
                (
                    "afterburner::instructions::connection::request_cycle::wrk_keepalive",
                    2867
                ),
                (
                    "afterburner::instructions::parse::request_head::browser_like",
                    2613
                ),
                ("loadgen::instructions::record::sample::lan", 500),
            ]
        );
    }

    #[test]
    fn the_new_figure_is_read_when_an_old_one_is_there() {
        let mut summary: serde_json::Value = serde_json::from_str(REAL_SUMMARY).unwrap();
        summary["profiles"][0]["data"]["total"]["metrics"]["Ir"]["values"]["old"] = 9999.into();
        let home = tempfile::tempdir().unwrap();
        place(
            home.path(),
            "afterburner",
            "connection",
            "request_cycle.wrk_keepalive",
            &summary.to_string(),
        );
        assert_eq!(
            read_instruction_counts(home.path()).unwrap()[0].instructions,
            2867
        );
    }

    #[test]
    fn an_empty_directory_says_which_command_makes_summaries() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("afterburner/instructions")).unwrap();
        let error = read_instruction_counts(home.path()).unwrap_err();
        assert!(matches!(error, InstructionsError::NoSummaries { .. }));
        let message = error.to_string();
        assert!(message.contains("scripts/instructions.sh"), "{message}");
        assert!(message.contains("--save-summary=json"), "{message}");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let home = tempfile::tempdir().unwrap();
        let missing = home.path().join("nowhere");
        let error = read_instruction_counts(&missing).unwrap_err();
        assert!(
            matches!(&error, InstructionsError::Read { path, .. } if path == &missing),
            "{error}"
        );
    }

    #[test]
    fn malformed_json_names_the_file() {
        let home = tempfile::tempdir().unwrap();
        let path = place(
            home.path(),
            "afterburner",
            "parse",
            "request_head.wrk_keepalive",
            &REAL_SUMMARY[..REAL_SUMMARY.len() / 2],
        );
        let error = read_instruction_counts(home.path()).unwrap_err();
        assert!(
            matches!(&error, InstructionsError::Malformed { path: p, .. } if p == &path),
            "{error}"
        );
        assert!(error.to_string().contains("summary.json"), "{error}");
    }

    #[test]
    fn json_that_is_no_summary_is_malformed() {
        let home = tempfile::tempdir().unwrap();
        place(
            home.path(),
            "afterburner",
            "parse",
            "request_head.wrk_keepalive",
            r#"{"benchmarks": []}"#,
        );
        let error = read_instruction_counts(home.path()).unwrap_err();
        assert!(
            matches!(error, InstructionsError::Malformed { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("module_path"), "{error}");
    }

    #[test]
    fn a_summary_without_ir_is_refused() {
        let mut summary: serde_json::Value = serde_json::from_str(REAL_SUMMARY).unwrap();
        summary["profiles"][0]["data"]["total"]["metrics"]
            .as_object_mut()
            .unwrap()
            .remove("Ir");
        let home = tempfile::tempdir().unwrap();
        let path = place(
            home.path(),
            "afterburner",
            "connection",
            "request_cycle.wrk_keepalive",
            &summary.to_string(),
        );
        let error = read_instruction_counts(home.path()).unwrap_err();
        match &error {
            InstructionsError::NoInstructionCount { path: p, bench } => {
                assert_eq!(p, &path);
                assert_eq!(
                    bench,
                    "afterburner::instructions::connection::request_cycle::wrk_keepalive"
                );
            }
            other => panic!("expected NoInstructionCount, got {other}"),
        }
    }

    #[test]
    fn a_summary_of_another_tool_has_no_instruction_count() {
        let mut summary: serde_json::Value = serde_json::from_str(REAL_SUMMARY).unwrap();
        summary["profiles"][0]["tool"] = "DHAT".into();
        let home = tempfile::tempdir().unwrap();
        place(
            home.path(),
            "afterburner",
            "connection",
            "request_cycle.wrk_keepalive",
            &summary.to_string(),
        );
        let error = read_instruction_counts(home.path()).unwrap_err();
        assert!(
            matches!(error, InstructionsError::NoInstructionCount { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_summary_out_of_place_is_refused() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("summary.json"), REAL_SUMMARY).unwrap();
        let error = read_instruction_counts(home.path()).unwrap_err();
        assert!(matches!(error, InstructionsError::Layout { .. }), "{error}");
    }

    #[test]
    fn two_summaries_of_one_bench_are_refused() {
        let home = tempfile::tempdir().unwrap();
        for target in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
            place(
                &home.path().join(target),
                "afterburner",
                "connection",
                "request_cycle.wrk_keepalive",
                REAL_SUMMARY,
            );
        }
        let error = read_instruction_counts(home.path()).unwrap_err();
        assert!(
            matches!(error, InstructionsError::Duplicate { .. }),
            "{error}"
        );
    }
}
