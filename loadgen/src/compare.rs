//! `loadgen compare`: one scenario against several servers (the built-in server's designs and
//! real servers), in interleaved rounds (A B C A B C ...) so that drift of the machine hits
//! every server alike; each run through the one run pipeline ([`crate::run::run`]), each with a
//! fresh server (and a fresh network namespace as root). Writes `comparison.json` after every
//! run, so that nothing measured is lost to a later failure, and the comparison report at the
//! end.
//!
//! Layout: `OUT/<scenario>-compare/<UTC time>/comparison.{json,html}`, and each run's own
//! `result.json`, `report.html` and server files in `<server>/round-<k>/` beside them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use reports::comparison::{Comparison, RoundOutcome, ServerRows, COMPARISON_SCHEMA_VERSION};
use reports::model::{ResultFileError, RunResult};

use crate::run::{RunOutput, RunPlan};
use crate::scenario::ServerSpec;

/// What one comparison runs.
#[derive(Clone, Debug)]
pub struct ComparePlan {
    /// The scenario and settings every run shares; its `[server]` is replaced per server (a
    /// built-in server's `args` are kept, with `--design NAME` added).
    pub base: RunPlan,
    /// The servers, in order; the first is the baseline of every ratio.
    pub servers: Vec<CompareServer>,
    /// Rounds; each runs every server once.
    pub rounds: u32,
    /// Write the comparison into exactly this directory (created) instead of a new
    /// `OUT/<scenario>-compare/<UTC time>/`; `loadgen claims` puts each of its measurements
    /// beside its `claims.json` this way.
    pub dir: Option<PathBuf>,
}

/// One server of a comparison: the name it goes by, and what runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareServer {
    /// Its name in the comparison's rows and directories; unique within the comparison.
    pub label: String,
    /// A design of the built-in server or a real server (see [`server_spec`]).
    pub server: String,
    /// Flags for a built-in design (e.g. `--close pause`), each `--flag VALUE` or
    /// `--flag=VALUE`, replacing the scenario's own value of the same flag; must be empty for a
    /// real server.
    pub extra_args: Vec<String>,
}

impl CompareServer {
    /// The server `name` (a design or a real server) as it is, labelled with its own name:
    /// what `--servers` gives.
    pub fn named(name: &str) -> CompareServer {
        CompareServer {
            label: name.to_string(),
            server: name.to_string(),
            extra_args: Vec::new(),
        }
    }

    /// Its `[server]`, from the scenario's: see [`server_spec`], plus `extra_args`.
    pub fn spec(&self, scenario_server: &ServerSpec) -> Result<ServerSpec, String> {
        match server_spec(&self.server, scenario_server)? {
            ServerSpec::Builtin { args, cpu, binary } => {
                let mut args = args;
                for flag in self.extra_args.iter().filter(|arg| arg.starts_with("--")) {
                    let name = flag.split_once('=').map_or(flag.as_str(), |(name, _)| name);
                    args = without_flag(&args, name);
                }
                args.extend(self.extra_args.iter().cloned());
                Ok(ServerSpec::Builtin { args, cpu, binary })
            }
            _ if !self.extra_args.is_empty() => Err(format!(
                "`{}`: extra flags ({}) are for the built-in server's designs, not for `{}`",
                self.label,
                self.extra_args.join(" "),
                self.server
            )),
            spec => Ok(spec),
        }
    }
}

/// A finished comparison.
#[derive(Debug)]
pub struct CompareOutput {
    /// The directory holding `comparison.json`, `comparison.html` and every run.
    pub dir: PathBuf,
    /// What `comparison.json` holds.
    pub comparison: Comparison,
    /// `comparison.html`.
    pub report: PathBuf,
}

/// Why a comparison could not run or be written (a server that fails is a row, not an error).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// `--servers` names something that is neither a design nor a known server.
    #[error("--servers: {0}")]
    UnknownServer(String),
    /// `--servers` names the same server twice.
    #[error("--servers: `{0}` is named twice")]
    DuplicateServer(String),
    /// The scenario has `[[variants]]`: each server is one configuration here.
    #[error(
        "scenario {scenario}: `loadgen compare` runs one configuration per server; remove its \
         [[variants]] (or run it with `loadgen run`)"
    )]
    Variants {
        /// The scenario's name.
        scenario: String,
    },
    /// The comparison's directory could not be created.
    #[error("creating {}: {error}", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// `comparison.json` could not be written.
    #[error(transparent)]
    ComparisonFile(#[from] ResultFileError),
    /// `comparison.html` could not be written.
    #[error("writing {}: {error}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

impl CompareError {
    /// True when runs were measured but `comparison.json` or `comparison.html` could not be
    /// written (a full disk): `loadgen` exits 4 then, not 2.
    pub fn is_write(&self) -> bool {
        match self {
            CompareError::ComparisonFile(error) => error.is_write(),
            CompareError::Report { .. } => true,
            CompareError::UnknownServer(_)
            | CompareError::DuplicateServer(_)
            | CompareError::Variants { .. }
            | CompareError::Output { .. } => false,
        }
    }
}

/// One finished run, as `compare` reports it to its caller for progress lines.
#[derive(Debug)]
pub struct RunEvent<'a> {
    /// From 1.
    pub round: u32,
    /// Rounds in all.
    pub rounds: u32,
    /// The server's name.
    pub server: &'a str,
    /// What the round recorded.
    pub outcome: &'a RoundOutcome,
}

/// The `[server]` a name of `--servers` (or `check`'s `--baseline` / `--candidate`) stands for:
/// - a design of the built-in server (`loop`, `poll`, ..., with the scenario's built-in `args`
///   kept and `--design NAME` set), or a real server (`nginx`, `apache-prefork`, ...; see
///   `scenario::server_spec_for_name`);
/// - a path (holding a `/`) to another `afterburner` executable, e.g. `./target/release/afterburner`
///   of another tree: run like the built-in server, with the scenario's built-in `args`;
/// - a command holding `{port}` (and optionally `{host}`, `{root}`, `{workdir}`), started as a
///   scenario's `kind = "command"` server and ready once `http://{host}:{port}/` answers.
pub fn server_spec(name: &str, scenario_server: &ServerSpec) -> Result<ServerSpec, String> {
    let (kept, cpu) = match scenario_server {
        ServerSpec::Builtin { args, cpu, .. } => (args.clone(), *cpu),
        _ => (Vec::new(), None),
    };
    if name.contains("{port}") {
        return Ok(ServerSpec::Command {
            command: name.to_string(),
            ready_url: "http://{host}:{port}/".into(),
            cpu,
        });
    }
    if name.contains('/') {
        let path = std::path::absolute(name).map_err(|error| format!("`{name}`: {error}"))?;
        if !path.is_file() {
            return Err(format!(
                "`{name}`: no such file (a path names another afterburner executable, e.g. \
                 ./target/release/afterburner; a command needs `{{port}}`)"
            ));
        }
        return Ok(ServerSpec::Builtin {
            args: kept,
            cpu,
            binary: Some(path),
        });
    }
    match (
        crate::scenario::server_spec_for_name(name)?,
        scenario_server,
    ) {
        (
            ServerSpec::Builtin { args, .. },
            ServerSpec::Builtin {
                args: kept,
                cpu,
                binary,
            },
        ) => Ok(ServerSpec::Builtin {
            args: args
                .into_iter()
                .chain(without_flag(kept, "--design"))
                .collect(),
            cpu: *cpu,
            binary: binary.clone(),
        }),
        (spec, _) => Ok(spec),
    }
}

/// The directory of server `index` named `label`: the label itself when it is a plain name
/// (`loop`, `nginx`, `pause`), else (a path or a command) `<index>-` and the label with every
/// character but letters, digits, `-`, `_` and `.` turned into `_`, so that it stays one
/// directory below the comparison's and two servers never share one.
fn dir_name(index: usize, label: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !label.is_empty() && !label.starts_with('.') && label.chars().all(plain) {
        return label.to_string();
    }
    let cleaned: String = label
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    format!("{}-{}", index + 1, cleaned.trim_matches('_'))
}

/// `args` without any `FLAG VALUE` / `FLAG=VALUE` (every flag of the built-in server but
/// `--help` and `--version` takes a value).
fn without_flag(args: &[String], flag: &str) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_next = false;
    let with_value = format!("{flag}=");
    for arg in args {
        if skip_next {
            skip_next = false;
        } else if arg == flag {
            skip_next = true;
        } else if !arg.starts_with(&with_value) {
            kept.push(arg.clone());
        }
    }
    kept
}

/// Runs the comparison: every round, every server in turn; `on_run` hears of each run as it
/// ends. Ctrl-C (`plan.base.stop`) ends the run in progress, keeps what was measured, and
/// starts no other.
pub fn compare(
    plan: &ComparePlan,
    mut on_run: impl FnMut(RunEvent<'_>),
) -> Result<CompareOutput, CompareError> {
    let scenario = &plan.base.scenario;
    if !scenario.variants.is_empty() {
        return Err(CompareError::Variants {
            scenario: scenario.name.clone(),
        });
    }
    let mut specs = Vec::new();
    for (index, server) in plan.servers.iter().enumerate() {
        if server.label.trim().is_empty() || server.server.trim().is_empty() {
            return Err(CompareError::UnknownServer(format!(
                "an empty name (position {}): names are separated by single commas",
                index + 1
            )));
        }
        if plan.servers[..index]
            .iter()
            .any(|earlier| earlier.label == server.label)
        {
            return Err(CompareError::DuplicateServer(server.label.clone()));
        }
        specs.push(
            server
                .spec(&scenario.server)
                .map_err(CompareError::UnknownServer)?,
        );
    }

    let started_utc = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let dir = plan.dir.clone().unwrap_or_else(|| {
        plan.base
            .out
            .join(format!("{}-compare", scenario.name))
            .join(started_utc.replace(':', "-"))
    });
    std::fs::create_dir_all(&dir).map_err(|error| CompareError::Output {
        path: dir.clone(),
        error,
    })?;
    let mut comparison = Comparison {
        schema_version: COMPARISON_SCHEMA_VERSION,
        scenario_name: scenario.name.clone(),
        started_utc,
        command_line: plan.base.command_line.clone(),
        rounds: plan.rounds,
        servers: plan
            .servers
            .iter()
            .map(|server| ServerRows {
                name: server.label.clone(),
                ..ServerRows::default()
            })
            .collect(),
    };
    let json_path = dir.join("comparison.json");

    'rounds: for round in 1..=plan.rounds {
        for (index, spec) in specs.iter().enumerate() {
            if plan.base.stop.load(Ordering::Relaxed) {
                break 'rounds;
            }
            let name = &plan.servers[index].label;
            let relative = PathBuf::from(dir_name(index, name)).join(format!("round-{round}"));
            let outcome = run_round(&plan.base, spec, &dir, &relative, round);
            on_run(RunEvent {
                round,
                rounds: plan.rounds,
                server: name,
                outcome: &outcome,
            });
            comparison.servers[index].rounds.push(outcome);
            comparison.summarize();
            comparison.write_atomically(&json_path)?;
        }
    }

    let report = dir.join("comparison.html");
    write_report(&comparison, &dir, &report)?;
    Ok(CompareOutput {
        dir,
        comparison,
        report,
    })
}

/// Runs `spec` once under `base`'s scenario into `dir/relative/` and tells what the round
/// recorded: its figures (paths relative to `dir`), or why it produced none. Shared by
/// `compare` and `check`.
pub(crate) fn run_round(
    base: &RunPlan,
    spec: &ServerSpec,
    dir: &Path,
    relative: &Path,
    round: u32,
) -> RoundOutcome {
    let mut run_plan = base.clone();
    run_plan.scenario.server = spec.clone();
    run_plan.run_dir = Some(dir.join(relative));
    match crate::run::run(&run_plan) {
        Ok(RunOutput { result, .. }) => {
            RoundOutcome::from_result(round, relative.join("result.json"), &result)
        }
        Err(error) => RoundOutcome::failed(round, error.to_string()),
    }
}

/// Renders `comparison.html`: the rounds table, then one run per server side by side, all of
/// the same round where they can be: the round in which the baseline came closest to its
/// median throughput (a server without a result in that round shows its own such round).
pub fn write_report(
    comparison: &Comparison,
    dir: &Path,
    report: &Path,
) -> Result<(), CompareError> {
    let shared_round = comparison
        .servers
        .first()
        .and_then(|baseline| baseline.representative_round())
        .map(|round| round.round);
    let mut results = Vec::new();
    let mut labels = Vec::new();
    for server in &comparison.servers {
        let same_round = shared_round.and_then(|k| {
            server
                .rounds
                .iter()
                .find(|round| round.round == k && round.result.is_some())
        });
        let Some(round) = same_round.or_else(|| server.representative_round()) else {
            continue;
        };
        let Some(path) = &round.result else {
            continue;
        };
        // A result that cannot be read back is left out of the side-by-side sections; the
        // rounds table already holds its figures.
        if let Ok(result) = RunResult::read(&dir.join(path)) {
            results.push(result);
            labels.push(format!("{} (round {})", server.name, round.round));
        }
    }
    let html = reports::render::render_rounds_comparison(comparison, &results, &labels);
    reports::render::write_html(report, &html).map_err(|error| CompareError::Report {
        path: report.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_design_keeps_the_scenarios_builtin_flags_and_replaces_its_design() {
        let scenario_server = ServerSpec::Builtin {
            args: [
                "--close",
                "wait-client",
                "--design",
                "poll",
                "--design=fork",
            ]
            .map(String::from)
            .to_vec(),
            cpu: Some(1),
            binary: None,
        };
        let ServerSpec::Builtin { args, cpu, .. } =
            server_spec("threads", &scenario_server).unwrap()
        else {
            panic!("a design is the built-in server");
        };
        assert_eq!(args, ["--design", "threads", "--close", "wait-client"]);
        assert_eq!(cpu, Some(1));
    }

    #[test]
    fn a_path_is_another_afterburner_and_a_command_needs_its_port() {
        let scenario_server = ServerSpec::Builtin {
            args: ["--design", "poll"].map(String::from).to_vec(),
            cpu: Some(1),
            binary: None,
        };
        let exe = std::env::current_exe().unwrap();
        let ServerSpec::Builtin { args, cpu, binary } =
            server_spec(exe.to_str().unwrap(), &scenario_server).unwrap()
        else {
            panic!("a path is another build of the built-in server");
        };
        assert_eq!(
            (args, cpu, binary),
            (
                vec!["--design".to_string(), "poll".to_string()],
                Some(1),
                Some(exe)
            )
        );
        let error = server_spec("./no/such/afterburner", &scenario_server).unwrap_err();
        assert!(error.contains("no such file"), "{error}");
        let ServerSpec::Command {
            command, ready_url, ..
        } = server_spec("python3 -m http.server {port}", &scenario_server).unwrap()
        else {
            panic!("a command with {{port}} is a command server");
        };
        assert_eq!(command, "python3 -m http.server {port}");
        assert_eq!(ready_url, "http://{host}:{port}/");
    }

    #[test]
    fn extra_flags_replace_the_scenarios_own_and_are_refused_for_real_servers() {
        let scenario_server = ServerSpec::Builtin {
            args: ["--close", "wait-client=2s", "--max-conns", "9"]
                .map(String::from)
                .to_vec(),
            cpu: None,
            binary: None,
        };
        let pause = CompareServer {
            label: "pause".into(),
            server: "loop".into(),
            extra_args: vec!["--close".into(), "pause=500ms".into()],
        };
        let ServerSpec::Builtin { args, .. } = pause.spec(&scenario_server).unwrap() else {
            panic!("a design is the built-in server");
        };
        assert_eq!(
            args,
            [
                "--design",
                "loop",
                "--max-conns",
                "9",
                "--close",
                "pause=500ms"
            ]
        );
        let nginx = CompareServer {
            server: "nginx".into(),
            ..pause
        };
        let error = nginx.spec(&scenario_server).unwrap_err();
        assert!(error.contains("not for `nginx`"), "{error}");
    }

    #[test]
    fn paths_and_commands_get_a_directory_of_their_own() {
        assert_eq!(dir_name(0, "loop"), "loop");
        assert_eq!(dir_name(1, "/tmp/a/afterburner"), "2-tmp_a_afterburner");
        assert_eq!(dir_name(2, "../x"), "3-.._x");
        assert_eq!(dir_name(0, "srv --port {port}"), "1-srv_--port__port");
    }

    #[test]
    fn an_unknown_name_lists_the_names_there_are() {
        let error = server_spec("lop", &ServerSpec::default()).unwrap_err();
        assert!(error.contains("lop"), "{error}");
        assert!(error.contains("loop"), "{error}");
        assert!(error.contains("nginx"), "{error}");
    }
}
