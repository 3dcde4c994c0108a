//! Scenario files: TOML parsing and validation into a checked `Scenario`.
//!
//! Range checks run inside deserialization (`deserialize_with`), so the `toml` crate reports them
//! with the file's line and column like any type error; unknown keys are rejected the same way.
//! Checks that involve several fields run afterwards and name the field path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::specweb96::{DirScaling, MixParams};

/// A scenario as written, after parsing and validation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used for the output directory; defaults to the file's stem.
    #[serde(default)]
    pub name: String,
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
    #[serde(default)]
    pub server: ServerSpec,
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
}

/// Where slow-line round-trip times come from (`rtt` in a scenario, `--rtt` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
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

/// SPECweb96's reporting rule: ten load points evenly spaced up to the full load.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
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
    },
    /// Any server started from a command line with `{port}`, `{root}` and `{workdir}` filled in.
    Command {
        command: String,
        /// Polled until it answers (any HTTP status) before the run starts.
        ready_url: String,
        #[serde(default)]
        cpu: Option<usize>,
    },
    /// A server already running; nothing is started or stopped.
    Url { url: String },
}

impl ServerSpec {
    /// The same server with a variant's flags added (built-in server only).
    pub fn with_extra_args(&self, extra: &[String]) -> ServerSpec {
        match self {
            ServerSpec::Builtin { args, cpu } => ServerSpec::Builtin {
                args: args.iter().chain(extra).cloned().collect(),
                cpu: *cpu,
            },
            other => other.clone(),
        }
    }
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec::Builtin {
            args: Vec::new(),
            cpu: None,
        }
    }
}

/// What the clients ask for (read through the flat `SiteTable`, like `Population`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "SiteTable")]
pub enum SiteSpec {
    /// The SPECweb96 file set, written (once per seed and size) under `runs/filesets/`.
    Specweb96 {
        /// Directory count; or leave it out and give `target_ops_per_s`.
        dirs: Option<u32>,
        /// Derive the directory count from this load with `scaling`.
        target_ops_per_s: Option<f64>,
        scaling: DirScaling,
        mix: MixParams,
    },
    /// An existing directory served as is, and a list of `WEIGHT PATH` lines to request.
    Directory { root: PathBuf, urls: PathBuf },
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

/// One client population.
///
/// Read through the flat `PopulationTable` rather than as an internally tagged enum: serde
/// buffers tagged enums, and the `toml` crate then loses the line and name of a bad key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "PopulationTable")]
pub enum Population {
    /// N clients, each: request, wait for the reply, think, repeat.
    Closed {
        name: String,
        clients: u32,
        think: Think,
        /// Requests per TCP connection: 1 is SPECweb96 (a new connection per request).
        requests_per_connection: u32,
    },
    /// Requests arrive on a schedule whatever the server does; latency counts from the time
    /// each request was due, so a stalled server cannot hide its stall (no coordinated omission).
    Open {
        name: String,
        /// Requests per second.
        rate: f64,
        arrival: Arrival,
        /// Requests outstanding at most; arrivals beyond it wait for a slot, and the wait counts
        /// in their latency (it is measured from when they were due).
        max_in_flight: u32,
        requests_per_connection: u32,
    },
    /// Users behind slow lines (56k modems by default): browser-like page views over
    /// rate-limited, flow-controlled connections that linger after the last reply.
    Modem(Box<ModemSpec>),
}

/// A population of slow-line users. Every field has a default from the late 1990s
/// (WORKLOADS.md): 53.3 kbit/s down, 33.6 kbit/s up, 150 ms round trip, an 8 KiB receive
/// window and a 536-byte MSS.
///
/// Serialized with the keys and forms a scenario file uses, so a result's scenario text reads
/// back as the same scenario.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModemSpec {
    pub name: String,
    /// Users at once; each runs page views one after the other.
    pub clients: u32,
    /// Downstream line rates in bit/s and the share of users on each.
    #[serde(rename = "downstream_mix")]
    pub downstream: Vec<RateShare>,
    /// Upstream line rate in bit/s: requests are uploaded at its pace.
    #[serde(rename = "upstream")]
    pub upstream_bps: f64,
    #[serde(with = "duration_text")]
    pub rtt: Duration,
    /// Receive window each connection advertises (`SO_RCVBUF` + `TCP_WINDOW_CLAMP`).
    pub receive_window: u32,
    /// MSS announced in the SYN (`TCP_MAXSEG`).
    pub mss: u32,
    /// Bytes of framing per segment besides the payload: 40 TCP/IP + 8 PPP by default. The
    /// payload share of the line is `mss / (mss + link_overhead_bytes)`.
    pub link_overhead_bytes: u32,
    /// Think time between the end of one page view and the start of the next.
    pub think: Think,
    /// Inline images fetched after each page.
    pub images_per_page: Count,
    /// Connections a user opens at most at once (browsers of 1999 used 2 to 4).
    pub connections_per_client: u32,
    /// HTTP/1.1 persistent connections (kept between requests and pages); false: HTTP/1.0,
    /// one request per connection.
    pub keep_alive: bool,
    /// How long a persistent connection stays open idle after its last reply before the
    /// client closes it (unless the next page reuses it first).
    pub linger: Think,
    /// Users start their first page spread evenly over this time.
    #[serde(with = "duration_text")]
    pub ramp_up: Duration,
    /// Give up on a reply after this long (a 900 KB class-3 file takes ~150 s at 53.3k).
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
}

/// One downstream line rate and the share of users on it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateShare {
    /// Bits per second: a number or text like `"28.8k"`.
    #[serde(deserialize_with = "bit_rate")]
    pub rate: f64,
    #[serde(default = "default_weight", deserialize_with = "positive_f64")]
    pub weight: f64,
}

/// A count drawn per page view (inline images).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "distribution", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Count {
    Constant {
        count: u32,
    },
    /// Every count from `min` to `max` inclusive, equally likely.
    Uniform {
        min: u32,
        max: u32,
    },
    /// 0, 1, 2, ... with P(k) = (1-p)^k p and mean (1-p)/p: many small pages, a few big ones.
    Geometric {
        mean: f64,
    },
}

impl ModemSpec {
    /// The payload share of the line: what is left of each segment after framing.
    pub fn payload_share(&self) -> f64 {
        f64::from(self.mss) / f64::from(self.mss + self.link_overhead_bytes)
    }

    /// Each downstream line rate (bit/s) with the share of users on it (the weights
    /// normalised).
    pub fn downstream_shares(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let total: f64 = self.downstream.iter().map(|r| r.weight).sum();
        self.downstream
            .iter()
            .map(move |r| (r.rate, r.weight / total))
    }

    /// Mean downstream payload bytes per second over the users.
    pub fn mean_payload_bytes_per_s(&self) -> f64 {
        self.downstream_shares()
            .map(|(rate, share)| rate / 8.0 * self.payload_share() * share)
            .sum()
    }
}

impl ModemSpec {
    /// Range checks across the fields; the message starts with the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("clients: must be at least 1".into());
        }
        if !(88..=65_000).contains(&self.mss) {
            return Err(format!(
                "mss: {} is outside 88..=65000 (Linux's TCP_MAXSEG range)",
                self.mss
            ));
        }
        if self.receive_window < self.mss {
            return Err(format!(
                "receive_window: {} is less than one segment (mss {})",
                self.receive_window, self.mss
            ));
        }
        if !(1..=8).contains(&self.connections_per_client) {
            return Err("connections_per_client: must be 1 to 8".into());
        }
        if self.rtt > Duration::from_secs(10) {
            return Err("rtt: more than 10 s is not a modem".into());
        }
        for (key, think) in [("think", &self.think), ("linger", &self.linger)] {
            if let Think::Uniform { min, max } = think {
                if min > max {
                    return Err(format!("{key}: min is more than max"));
                }
            }
        }
        match self.images_per_page {
            Count::Uniform { min, max } if min > max => {
                return Err("images_per_page: min is more than max".into())
            }
            Count::Geometric { mean } if !(mean.is_finite() && mean >= 0.0) => {
                return Err("images_per_page: mean must be 0 or more".into())
            }
            _ => {}
        }
        if self.request_timeout.is_zero() {
            return Err("request_timeout: must be more than 0".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PopulationKind {
    Closed,
    Open,
    Modem,
}

/// A `[[clients]]` table as written; every key of every kind, checked where it stands.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PopulationTable {
    name: String,
    kind: PopulationKind,
    #[serde(default, deserialize_with = "some_positive_u32")]
    clients: Option<u32>,
    #[serde(default)]
    think: Option<Think>,
    #[serde(default, deserialize_with = "some_positive_u32")]
    requests_per_connection: Option<u32>,
    #[serde(default, deserialize_with = "some_positive_f64")]
    rate: Option<f64>,
    #[serde(default)]
    arrival: Option<Arrival>,
    #[serde(default, deserialize_with = "some_positive_u32")]
    max_in_flight: Option<u32>,
    #[serde(default, deserialize_with = "some_bit_rate")]
    downstream: Option<f64>,
    #[serde(default)]
    downstream_mix: Option<Vec<RateShare>>,
    #[serde(default, deserialize_with = "some_bit_rate")]
    upstream: Option<f64>,
    #[serde(default, deserialize_with = "some_duration")]
    rtt: Option<Duration>,
    #[serde(default, deserialize_with = "some_positive_u32")]
    receive_window: Option<u32>,
    #[serde(default, deserialize_with = "some_positive_u32")]
    mss: Option<u32>,
    #[serde(default)]
    link_overhead_bytes: Option<u32>,
    #[serde(default)]
    images_per_page: Option<Count>,
    #[serde(default, deserialize_with = "some_positive_u32")]
    connections_per_client: Option<u32>,
    #[serde(default)]
    keep_alive: Option<bool>,
    #[serde(default)]
    linger: Option<Think>,
    #[serde(default, deserialize_with = "some_duration")]
    ramp_up: Option<Duration>,
    #[serde(default, deserialize_with = "some_duration")]
    request_timeout: Option<Duration>,
}

impl PopulationTable {
    /// The slow-line keys given, by name: they belong to kind = "modem" only.
    fn modem_keys(&self) -> Vec<&'static str> {
        [
            ("downstream", self.downstream.is_some()),
            ("downstream_mix", self.downstream_mix.is_some()),
            ("upstream", self.upstream.is_some()),
            ("rtt", self.rtt.is_some()),
            ("receive_window", self.receive_window.is_some()),
            ("mss", self.mss.is_some()),
            ("link_overhead_bytes", self.link_overhead_bytes.is_some()),
            ("images_per_page", self.images_per_page.is_some()),
            (
                "connections_per_client",
                self.connections_per_client.is_some(),
            ),
            ("keep_alive", self.keep_alive.is_some()),
            ("linger", self.linger.is_some()),
            ("ramp_up", self.ramp_up.is_some()),
            ("request_timeout", self.request_timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }
}

impl TryFrom<PopulationTable> for Population {
    type Error = String;

    fn try_from(table: PopulationTable) -> Result<Self, String> {
        let requests_per_connection = table
            .requests_per_connection
            .unwrap_or_else(default_requests_per_connection);
        let only = |present: bool, key: &str, kind: &str| {
            if present {
                Err(format!(
                    "population `{}`: `{key}` is not a key of kind = \"{kind}\"",
                    table.name
                ))
            } else {
                Ok(())
            }
        };
        if !matches!(table.kind, PopulationKind::Modem) {
            if let Some(key) = table.modem_keys().first() {
                return Err(format!(
                    "population `{}`: `{key}` belongs to kind = \"modem\"",
                    table.name
                ));
            }
        }
        match table.kind {
            PopulationKind::Modem => {
                only(table.rate.is_some(), "rate", "modem")?;
                only(table.arrival.is_some(), "arrival", "modem")?;
                only(table.max_in_flight.is_some(), "max_in_flight", "modem")?;
                only(
                    table.requests_per_connection.is_some(),
                    "requests_per_connection (use keep_alive)",
                    "modem",
                )?;
                let clients = table.clients.ok_or_else(|| {
                    format!(
                        "population `{}`: kind = \"modem\" needs `clients`",
                        table.name
                    )
                })?;
                let downstream = match (table.downstream, table.downstream_mix) {
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "population `{}`: give `downstream` or `downstream_mix`, not both",
                            table.name
                        ))
                    }
                    (Some(rate), None) => vec![RateShare { rate, weight: 1.0 }],
                    (None, Some(mix)) if mix.is_empty() => {
                        return Err(format!(
                            "population `{}`: `downstream_mix` needs at least one rate",
                            table.name
                        ))
                    }
                    (None, Some(mix)) => mix,
                    (None, None) => vec![RateShare {
                        rate: DEFAULT_DOWNSTREAM_BPS,
                        weight: 1.0,
                    }],
                };
                Ok(Population::Modem(Box::new(ModemSpec {
                    name: table.name,
                    clients,
                    downstream,
                    upstream_bps: table.upstream.unwrap_or(DEFAULT_UPSTREAM_BPS),
                    rtt: table.rtt.unwrap_or(Duration::from_millis(150)),
                    receive_window: table.receive_window.unwrap_or(8192),
                    mss: table.mss.unwrap_or(536),
                    link_overhead_bytes: table.link_overhead_bytes.unwrap_or(48),
                    think: table.think.unwrap_or(Think::Exponential {
                        mean: Duration::from_secs(15),
                    }),
                    images_per_page: table
                        .images_per_page
                        .unwrap_or(Count::Uniform { min: 0, max: 4 }),
                    connections_per_client: table.connections_per_client.unwrap_or(2),
                    keep_alive: table.keep_alive.unwrap_or(true),
                    linger: table.linger.unwrap_or(Think::Constant {
                        time: Duration::from_secs(15),
                    }),
                    ramp_up: table.ramp_up.unwrap_or(Duration::from_secs(10)),
                    request_timeout: table.request_timeout.unwrap_or(Duration::from_secs(600)),
                })))
            }
            PopulationKind::Closed => {
                only(table.rate.is_some(), "rate", "closed")?;
                only(table.arrival.is_some(), "arrival", "closed")?;
                only(table.max_in_flight.is_some(), "max_in_flight", "closed")?;
                let clients = table.clients.ok_or_else(|| {
                    format!(
                        "population `{}`: kind = \"closed\" needs `clients`",
                        table.name
                    )
                })?;
                Ok(Population::Closed {
                    name: table.name,
                    clients,
                    think: table.think.unwrap_or_default(),
                    requests_per_connection,
                })
            }
            PopulationKind::Open => {
                only(table.clients.is_some(), "clients", "open")?;
                only(table.think.is_some(), "think", "open")?;
                let rate = table.rate.ok_or_else(|| {
                    format!("population `{}`: kind = \"open\" needs `rate`", table.name)
                })?;
                Ok(Population::Open {
                    name: table.name,
                    rate,
                    arrival: table.arrival.unwrap_or_default(),
                    max_in_flight: table.max_in_flight.unwrap_or_else(default_max_in_flight),
                    requests_per_connection,
                })
            }
        }
    }
}

impl Population {
    pub fn name(&self) -> &str {
        match self {
            Population::Closed { name, .. } | Population::Open { name, .. } => name,
            Population::Modem(spec) => &spec.name,
        }
    }

    /// `closed`, `open` or `modem`, as in the scenario.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Population::Closed { .. } => "closed",
            Population::Open { .. } => "open",
            Population::Modem(_) => "modem",
        }
    }

    /// Requests per connection at most (a modem population keeps persistent connections
    /// open as long as it likes: unlimited).
    pub fn requests_per_connection(&self) -> u32 {
        match self {
            Population::Modem(spec) => {
                if spec.keep_alive {
                    u32::MAX
                } else {
                    1
                }
            }
            Population::Closed {
                requests_per_connection,
                ..
            }
            | Population::Open {
                requests_per_connection,
                ..
            } => *requests_per_connection,
        }
    }
}

/// Inter-arrival pattern of an open population.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// Exponential gaps: independent arrivals, like many users.
    #[default]
    Poisson,
    /// Equal gaps.
    Uniform,
}

/// Think time between a reply and the client's next request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(tag = "distribution", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Think {
    #[default]
    None,
    Constant {
        #[serde(with = "duration_text")]
        time: Duration,
    },
    Exponential {
        #[serde(with = "duration_text")]
        mean: Duration,
    },
    Uniform {
        #[serde(with = "duration_text")]
        min: Duration,
        #[serde(with = "duration_text")]
        max: Duration,
    },
}

/// A scenario that cannot run, with where it came from.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scenario {}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ScenarioError {}

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
        if self.duration.is_zero() {
            return Err("duration: must be more than 0".into());
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
fn default_requests_per_connection() -> u32 {
    1
}
fn default_max_in_flight() -> u32 {
    10_000
}

/// 53.3 kbit/s: the V.90 cap on a 56k modem's downstream rate.
pub const DEFAULT_DOWNSTREAM_BPS: f64 = 53_300.0;
/// 33.6 kbit/s: a V.90 modem's upstream (V.34).
pub const DEFAULT_UPSTREAM_BPS: f64 = 33_600.0;

fn default_weight() -> f64 {
    1.0
}

/// A bit rate: a number of bits per second, or text with a `k` or `M` multiplier and an
/// optional `bit`/`bps` unit: `"53.3k"`, `"28.8kbit"`, `"1.5M"`.
pub fn parse_bit_rate(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let unitless = lower
        .strip_suffix("bit/s")
        .or_else(|| lower.strip_suffix("bps"))
        .or_else(|| lower.strip_suffix("bit"))
        .unwrap_or(&lower)
        .trim_end();
    let (number, multiplier) = if let Some(n) = unitless.strip_suffix('k') {
        (n, 1e3)
    } else if let Some(n) = unitless.strip_suffix('m') {
        (n, 1e6)
    } else {
        (unitless, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value * multiplier),
        _ => Err(format!(
            "`{trimmed}` is not a bit rate; write bits per second like 53300, \"53.3k\" or \"28.8kbit\""
        )),
    }
}

fn bit_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(f64),
        Text(String),
    }
    let value = match Written::deserialize(d)? {
        Written::Number(n) => n,
        Written::Text(text) => parse_bit_rate(&text).map_err(serde::de::Error::custom)?,
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(serde::de::Error::custom(
            "a bit rate must be a positive number",
        ));
    }
    Ok(value)
}

fn some_bit_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    bit_rate(d).map(Some)
}

fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_text::deserialize(d).map(Some)
}

fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let value = u32::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(value)
}

fn some_positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    positive_u32(d).map(Some)
}

fn some_positive_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    positive_f64(d).map(Some)
}

fn positive_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let value = usize::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(value)
}

fn positive_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    if !(value.is_finite() && value > 0.0) {
        return Err(serde::de::Error::custom("must be a positive number"));
    }
    Ok(value)
}

/// Durations as text in TOML and JSON: `"500ms"`, `"10s"`, `"2m"`.
pub mod duration_text {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text).map_err(|e| {
            format!("`{text}` is not a duration ({e}); write it like \"500ms\" or \"10s\"")
        })
    }
}
