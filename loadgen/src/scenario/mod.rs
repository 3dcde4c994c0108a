//! Scenario files: TOML parsing and validation into a checked `Scenario`, and the command-line
//! overrides applied to it (`overrides`), so that what runs is always a checked scenario.
//!
//! Range checks run inside deserialization (`deserialize_with`, in `units`), so the `toml` crate
//! reports them with the file's line and column like any type error; unknown keys are rejected
//! the same way. Checks that involve several fields run afterwards and name the field path.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the scenario, its server and variants, loading and cross-field checks |
//! | `check.rs` | `[check]`: what `loadgen check` gates on |
//! | `population.rs` | `[[clients]]`: closed, open and slow-line populations |
//! | `site.rs` | `[site]`: the SPECweb96 file set or a directory and URL list |
//! | `overrides.rs` | command-line values replacing the file's, checked again |
//! | `units.rs` | durations, counts and bit rates as the file writes them |

pub mod check;
mod overrides;
mod population;
mod site;
pub mod units;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::target::real::RealServer;
pub use overrides::Overrides;
pub use population::{
    Arrival, Audience, Count, LineKind, ModemSpec, PlayoutSpec, Population, RateShare, Think,
    ViewerLine, ViewerSpec, DEFAULT_DOWNSTREAM_BPS, DEFAULT_UPSTREAM_BPS,
};
pub use site::SiteSpec;
use units::{duration_text, positive_u32, positive_usize};

/// A scenario as written, after parsing and validation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used for the output directory; defaults to the file's stem.
    #[serde(default)]
    pub name: String,
    /// Free text, kept in `result.json` with the scenario's text.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw (request mix, think times, arrivals, file contents).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Load applied before measuring, not recorded.
    #[serde(default = "default_warmup", with = "duration_text")]
    pub warmup: Duration,
    /// Measured time (per load point when sweeping).
    #[serde(default = "default_duration", with = "duration_text")]
    pub duration: Duration,
    /// Generator worker threads, each one readiness loop.
    #[serde(default = "default_workers", deserialize_with = "positive_usize")]
    pub workers: usize,
    /// Give up on a request (count a timeout) after this long.
    #[serde(default = "default_request_timeout", with = "duration_text")]
    pub request_timeout: Duration,
    /// Check each body's bytes against the file set, not just its length.
    #[serde(default)]
    pub verify_content: bool,
    /// Run several evenly spaced load points instead of one.
    #[serde(default)]
    pub sweep: Option<Sweep>,
    /// The server under test; by default the built-in one.
    #[serde(default)]
    pub server: ServerSpec,
    /// What the clients request; by default a one-directory SPECweb96 file set.
    #[serde(default)]
    pub site: SiteSpec,
    /// Where slow-line (modem) round trips come from; `--rtt` replaces it. None: `auto`.
    #[serde(default)]
    pub rtt: Option<RttChoice>,
    /// Client populations; at least one.
    pub clients: Vec<Population>,
    /// Server configurations to run the same load against, one after the other, each with a
    /// fresh server (and a fresh network namespace); e.g. the three close modes.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// What makes a load point's measurement untrustworthy.
    #[serde(default)]
    pub validity: Validity,
    /// What `loadgen check` gates on; `None`: its defaults.
    #[serde(default)]
    pub check: Option<check::CheckTable>,
}

/// Where slow-line round-trip times come from (`rtt` in a scenario, `--rtt` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RttChoice {
    /// The kernel delays the packets where it can (root: netem, else a user-space delay line
    /// on TUN devices), else the client waits in the application.
    Auto,
    /// netem on a veth pair; the run fails if that cannot be set up.
    Netem,
    /// A user-space delay line (TUN devices and a relay thread) even where netem exists.
    TunRelay,
    /// The client waits one round trip where a real line would.
    Application,
}

impl RttChoice {
    /// Every choice by the name the scenario and `--rtt` use.
    pub const NAMES: [(&'static str, RttChoice); 4] = [
        ("auto", RttChoice::Auto),
        ("netem", RttChoice::Netem),
        ("tun-relay", RttChoice::TunRelay),
        ("application", RttChoice::Application),
    ];

    /// The name the scenario and `--rtt` use.
    pub fn name(self) -> &'static str {
        RttChoice::NAMES
            .iter()
            .find(|(_, choice)| *choice == self)
            .map_or("auto", |(name, _)| name)
    }
}

impl FromStr for RttChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<RttChoice, String> {
        RttChoice::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, choice)| *choice)
            .ok_or_else(|| format!("`{text}` is not auto, netem, tun-relay or application"))
    }
}

/// One server configuration of a multi-variant scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Names the variant in the results (and its working directory). None: the only variant.
    pub label: Option<String>,
    /// Flags added to the built-in server's `args`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Names of the populations this variant runs; empty: all of them. Lets one scenario
    /// compare, say, LAN clients alone with the same LAN clients plus slow-line users.
    #[serde(default)]
    pub clients: Vec<String>,
}

/// The `[validity]` table: when a load point's figures cannot be trusted.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    /// A point whose failed requests exceed this share of its requests (errors over ops plus
    /// errors, in the measured window) is invalid; 0.02 by default, 0 to 1.
    #[serde(default = "default_max_error_share")]
    pub max_error_share: f64,
    /// What the scenario measures: `"server"` (the default: a generator that saturated its
    /// CPUs makes the point invalid) or `"generator"` (a comparison of load generators, like
    /// the wrk ones: the generator is expected to be the limit, and the point is invalid if
    /// the server was instead).
    #[serde(default)]
    pub measures: Measures,
}

impl Default for Validity {
    fn default() -> Self {
        Validity {
            max_error_share: default_max_error_share(),
            measures: Measures::default(),
        }
    }
}

/// Which side of the run is meant to be the limit (`[validity] measures`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measures {
    /// The server under test: the generator must have headroom.
    #[default]
    Server,
    /// The load generator itself: the server must have headroom.
    Generator,
    /// Either side may set the pace (a closed loop to saturation on a small machine, where the
    /// fastest servers outrun the generator): a side at its CPU limit is a warning, not an
    /// invalid point, and server CPU per operation is the figure to compare.
    Either,
}

fn default_max_error_share() -> f64 {
    0.02
}

/// SPECweb96's reporting rule: ten load points evenly spaced up to the full load.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Load points, at `k/points` of the full load for k = 1..=points; 10 by default, at least 1.
    #[serde(default = "default_sweep_points", deserialize_with = "positive_u32")]
    pub points: u32,
}

/// The server under test.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ServerSpec {
    /// `afterburner`, started by the loadgen as its own child on a free port.
    Builtin {
        /// Extra afterburner flags, e.g. `["--close", "wait-client"]`.
        #[serde(default)]
        args: Vec<String>,
        /// CPU to pin the server to; the generator takes the others.
        #[serde(default)]
        cpu: Option<usize>,
        /// An `afterburner` executable to run instead of the loadgen's own copy of the server
        /// (another build of it, e.g. the baseline of `loadgen check`); it gets the same flags.
        /// `None`: the loadgen's own (`loadgen serve-builtin`).
        #[serde(default)]
        binary: Option<PathBuf>,
    },
    /// Any server started from a command line with `{port}`, `{root}` and `{workdir}` filled in.
    Command {
        /// Run with `sh -c` in a process group of its own; must hold `{port}`.
        command: String,
        /// Polled until it answers (any HTTP status) before the run starts.
        ready_url: String,
        /// CPU the server's shell (and what it starts) is pinned to; `None`: the last CPU,
        /// unless there is only one.
        #[serde(default)]
        cpu: Option<usize>,
    },
    /// A real web server (nginx, lighttpd, apache2, mini_httpd, h2o, caddy) from its Debian
    /// package, started from a configuration the loadgen writes into the run's work directory
    /// (site root, `{host}:{port}`, access log off, one worker, keep-alive limits raised), its
    /// pid and port managed like a command server's.
    Real {
        /// Which server: `nginx`, `lighttpd`, `apache-prefork`, `apache-event`, `mini-httpd`,
        /// `h2o` or `caddy`.
        server: RealServer,
        /// Worker processes or threads, as the server counts them (nginx and apache-event:
        /// processes, apache-prefork: its process limit, lighttpd: forked workers, h2o:
        /// threads, caddy: `GOMAXPROCS`); `None`: 1, or 256 for apache-prefork. mini-httpd,
        /// a process per connection, takes none.
        #[serde(default, deserialize_with = "crate::target::real::some_workers")]
        workers: Option<u32>,
        /// CPU the server (and all it starts) is pinned to; `None`: the last CPU, unless there
        /// is only one.
        #[serde(default)]
        cpu: Option<usize>,
    },
    /// A server already running; nothing is started or stopped.
    Url {
        /// `http://HOST[:PORT][/PATH]`, HOST an IP literal or `localhost` (names are not
        /// resolved).
        url: String,
    },
}

impl ServerSpec {
    /// The same server with a variant's flags added (built-in server only).
    pub fn with_extra_args(&self, extra: &[String]) -> ServerSpec {
        match self {
            ServerSpec::Builtin { args, cpu, binary } => ServerSpec::Builtin {
                args: args.iter().chain(extra).cloned().collect(),
                cpu: *cpu,
                binary: binary.clone(),
            },
            other => other.clone(),
        }
    }
}

/// The server a short name stands for (`loadgen compare --servers loop,nginx,...`): a design of
/// the built-in server (`loop`, `poll`, `select`, `threads`, `prefork`, `fork`, `reactors`,
/// `uring`: `kind = "builtin"` with `--design NAME`) or a real server (`nginx`, `lighttpd`,
/// `apache-prefork`, `apache-event`, `mini-httpd`, `h2o`, `caddy`: `kind = "real"` with its
/// default workers). The error lists every valid name.
pub fn server_spec_for_name(name: &str) -> Result<ServerSpec, String> {
    if let Some(design) = afterburner::designs::Design::from_name(name) {
        return Ok(ServerSpec::Builtin {
            args: vec!["--design".into(), design.name().into()],
            cpu: None,
            binary: None,
        });
    }
    if let Some(server) = RealServer::from_name(name) {
        return Ok(ServerSpec::Real {
            server,
            workers: None,
            cpu: None,
        });
    }
    let designs: Vec<&str> = afterburner::designs::Design::ALL
        .iter()
        .map(|design| design.name())
        .collect();
    let real: Vec<&str> = RealServer::ALL.iter().map(|server| server.name()).collect();
    Err(format!(
        "`{name}` is no server: the built-in server's designs are {}; the real servers are {}",
        designs.join(", "),
        real.join(", ")
    ))
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec::Builtin {
            args: Vec::new(),
            cpu: None,
            binary: None,
        }
    }
}

/// A scenario that cannot run, with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("scenario {}: {message}", file.display())]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// What is wrong, starting with the key (`clients[0].rate: ...`), the line and column for
    /// a syntax or type error, or the command-line flag for an override.
    pub message: String,
}

impl Scenario {
    /// The variants to run: the scenario's, or one unnamed variant.
    pub fn variants_or_default(&self) -> Vec<Variant> {
        if self.variants.is_empty() {
            vec![Variant {
                label: None,
                args: Vec::new(),
                clients: Vec::new(),
            }]
        } else {
            self.variants.clone()
        }
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses and validates scenario text; `path` names it in errors and gives the default name.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let error = |message: String| ScenarioError {
            file: path.to_path_buf(),
            message,
        };
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        if scenario.name.is_empty() {
            scenario.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into());
        }
        scenario.validate().map_err(error)?;
        Ok(scenario)
    }

    /// Cross-field checks; the message names the field path.
    pub fn validate(&self) -> Result<(), String> {
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "name `{}`: use letters, digits, `-`, `_` and `.` only (it names a directory)",
                self.name
            ));
        }
        if let Some(check) = &self.check {
            check.validate()?;
        }
        if self.duration.is_zero() {
            return Err("duration: must be more than 0".into());
        }
        let share = self.validity.max_error_share;
        if !(0.0..=1.0).contains(&share) {
            return Err(format!(
                "validity.max_error_share: {share} is not a share from 0 to 1"
            ));
        }
        if self.clients.is_empty() {
            return Err("clients: at least one `[[clients]]` population is needed".into());
        }
        // Repeated here for values that command-line overrides replaced after parsing.
        if self.workers == 0 {
            return Err("workers: must be at least 1".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, population) in self.clients.iter().enumerate() {
            let name = population.name();
            if name.is_empty() {
                return Err(format!("clients[{i}].name: must not be empty"));
            }
            if !names.insert(name) {
                return Err(format!("clients[{i}].name: `{name}` is used twice"));
            }
            match population {
                Population::Closed { clients: 0, .. } => {
                    return Err(format!("clients[{i}].clients: must be at least 1"));
                }
                Population::Open { rate, .. } if !(rate.is_finite() && *rate > 0.0) => {
                    return Err(format!("clients[{i}].rate: must be a positive number"));
                }
                _ => {}
            }
            if let Population::Closed {
                think: Think::Uniform { min, max },
                ..
            } = population
            {
                if min > max {
                    return Err(format!("clients[{i}].think: min is more than max"));
                }
            }
            if let Population::Modem(spec) = population {
                spec.validate()
                    .map_err(|e| format!("clients[{i}] (`{name}`).{e}"))?;
            }
            if let Population::Viewer(spec) = population {
                spec.validate()
                    .map_err(|e| format!("clients[{i}] (`{name}`).{e}"))?;
            }
        }
        if let SiteSpec::Specweb96 { mix, .. } = &self.site {
            self.site.specweb96_dirs()?;
            mix.validate().map_err(|e| format!("site.mix.{e}"))?;
        }
        let mut labels = std::collections::HashSet::new();
        for (i, variant) in self.variants.iter().enumerate() {
            let Some(label) = &variant.label else {
                return Err(format!("variants[{i}].label: each variant needs a label"));
            };
            if label.is_empty()
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='))
            {
                return Err(format!(
                    "variants[{i}].label `{label}`: use letters, digits, `-`, `_`, `.` and `=` (it names a directory)"
                ));
            }
            if !labels.insert(label) {
                return Err(format!("variants[{i}].label: `{label}` is used twice"));
            }
            for name in &variant.clients {
                if !self.clients.iter().any(|p| p.name() == name) {
                    return Err(format!(
                        "variants[{i}].clients: no population is named `{name}`"
                    ));
                }
            }
            if !variant.args.is_empty() && !matches!(self.server, ServerSpec::Builtin { .. }) {
                return Err(format!(
                    "variants[{i}].args: only the built-in server takes variant flags"
                ));
            }
        }
        match &self.server {
            ServerSpec::Command {
                command, ready_url, ..
            } => {
                if !command.contains("{port}") {
                    return Err("server.command: must contain `{port}` so the server listens where the loadgen looks".into());
                }
                if !ready_url.starts_with("http://") {
                    return Err("server.ready_url: must be an http:// URL".into());
                }
            }
            ServerSpec::Url { url } if !url.starts_with("http://") => {
                return Err(format!("server.url: `{url}` must be an http:// URL"));
            }
            ServerSpec::Real {
                server,
                workers: Some(_),
                ..
            } if !server.takes_workers() => {
                return Err(format!(
                    "server.workers: {server} forks a process per connection and takes no `workers`"
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

fn default_seed() -> u64 {
    1996
}
fn default_warmup() -> Duration {
    Duration::from_secs(2)
}
fn default_duration() -> Duration {
    Duration::from_secs(10)
}
fn default_workers() -> usize {
    1
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_sweep_points() -> u32 {
    10
}
