//! Saved baselines of `loadgen check`, criterion's named baselines for load runs:
//! `--save-baseline NAME` keeps the candidate's rounds of a scenario in
//! `OUT/baselines/NAME/<scenario>.json`; a later `--baseline NAME` compares against them.

use std::path::{Path, PathBuf};

use reports::check::{SavedBaseline, SAVED_BASELINE_SCHEMA_VERSION};
use reports::model::Environment;

use super::CheckError;

/// Where the baselines saved under `name` live: `OUT/baselines/NAME/`.
pub fn baseline_dir(out: &Path, name: &str) -> PathBuf {
    out.join("baselines").join(name)
}

/// The file of `scenario`'s baseline saved under `name`.
pub fn baseline_file(out: &Path, name: &str, scenario: &str) -> PathBuf {
    baseline_dir(out, name).join(format!("{scenario}.json"))
}

/// Whether `name` can name a saved baseline: letters, digits, `-`, `_`, `.`, not starting with
/// a dot, and not a server (`loop`, `nginx`, ...), which `--baseline` would mean instead.
pub fn check_name(name: &str) -> Result<(), CheckError> {
    let allowed = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !allowed {
        return Err(CheckError::Usage(format!(
            "--save-baseline `{name}`: use letters, digits, `-`, `_` and `.` (it names a directory)"
        )));
    }
    if crate::scenario::server_spec_for_name(name).is_ok() {
        return Err(CheckError::Usage(format!(
            "--save-baseline `{name}`: that is a server's name, which `--baseline {name}` would \
             run; choose another (e.g. main)"
        )));
    }
    Ok(())
}

/// The saved baseline `--baseline name` means for `scenario`, if there is a directory of that
/// name: `Ok(None)` when there is none (the name is then a server); an error when the
/// directory holds no baseline of this scenario (naming those it holds) or the file is bad.
pub fn find(out: &Path, name: &str, scenario: &str) -> Result<Option<SavedBaseline>, CheckError> {
    let dir = baseline_dir(out, name);
    if name.contains('/') || !dir.is_dir() {
        return Ok(None);
    }
    let file = baseline_file(out, name, scenario);
    if !file.exists() {
        let mut held: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".json").map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        held.sort();
        return Err(CheckError::Usage(format!(
            "--baseline {name}: {} holds no baseline of scenario `{scenario}` (it holds: {}); \
             save one with `loadgen check SCENARIO --candidate SERVER --save-baseline {name}`",
            dir.display(),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            }
        )));
    }
    let saved = SavedBaseline::read(&file).map_err(CheckError::File)?;
    Ok(Some(saved))
}

/// One line naming the machine, to notice a baseline saved elsewhere.
pub fn machine(environment: &Environment) -> String {
    format!(
        "{}, {} CPUs, Linux {}",
        environment.cpu_model.as_deref().unwrap_or("unknown CPU"),
        environment.cpu_count,
        environment.kernel_release
    )
}

/// A baseline to save: `rounds` of the candidate `server` of `scenario`.
pub struct ToSave<'a> {
    /// The name.
    pub name: &'a str,
    /// The scenario's name.
    pub scenario_name: &'a str,
    /// The scenario's text.
    pub scenario_toml: &'a str,
    /// What ran.
    pub server: &'a str,
    /// The saving check's command line.
    pub command_line: &'a str,
    /// Each valid round's figures by metric id.
    pub rounds: Vec<std::collections::BTreeMap<String, f64>>,
}

/// Writes the baseline atomically under `OUT/baselines/NAME/`; returns its file.
pub fn save(out: &Path, to_save: ToSave<'_>) -> Result<PathBuf, CheckError> {
    let dir = baseline_dir(out, to_save.name);
    std::fs::create_dir_all(&dir).map_err(|error| CheckError::Output {
        path: dir.clone(),
        error,
    })?;
    let file = baseline_file(out, to_save.name, to_save.scenario_name);
    let saved = SavedBaseline {
        schema_version: SAVED_BASELINE_SCHEMA_VERSION,
        name: to_save.name.to_string(),
        scenario_name: to_save.scenario_name.to_string(),
        scenario_toml: to_save.scenario_toml.to_string(),
        server: to_save.server.to_string(),
        saved_utc: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        command_line: to_save.command_line.to_string(),
        machine: machine(&crate::probe::environment::read_environment()),
        rounds: to_save.rounds,
    };
    saved.write_atomically(&file).map_err(CheckError::File)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_servers_or_paths_are_refused() {
        assert!(check_name("main").is_ok());
        assert!(check_name("v1.2_rc-3").is_ok());
        for bad in ["loop", "nginx", "", ".hidden", "a/b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_saved_baseline_is_found_by_name_and_scenario() {
        let out = tempfile::tempdir().unwrap();
        assert!(find(out.path(), "main", "check").unwrap().is_none());
        let file = save(
            out.path(),
            ToSave {
                name: "main",
                scenario_name: "check",
                scenario_toml: "name = \"check\"",
                server: "loop",
                command_line: "loadgen check",
                rounds: vec![[("ops_per_s".to_string(), 100.0)].into_iter().collect()],
            },
        )
        .unwrap();
        assert_eq!(file, out.path().join("baselines/main/check.json"));
        let saved = find(out.path(), "main", "check").unwrap().unwrap();
        assert_eq!(saved.values("ops_per_s"), [100.0]);
        let error = find(out.path(), "main", "other").unwrap_err().to_string();
        assert!(error.contains("no baseline of scenario `other`"), "{error}");
        assert!(error.contains("it holds: check"), "{error}");
    }
}
