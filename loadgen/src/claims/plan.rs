//! The claims file (`scenarios/claims-1999.toml`): the measurements that re-measure the 1999
//! claims (scenarios, servers, rounds, with a `--quick` size) and every figure of 1999 with its
//! source. Parsed with serde; unknown keys are errors that name the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::compare::CompareServer;
use crate::scenario::units::{duration_text, some_duration};
use crate::scenario::Overrides;

/// A claims file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsFile {
    /// Its name, for the output directory and the report (`claims-1999`).
    pub name: String,
    /// One line on what it does.
    pub description: String,
    /// The machine the claims were made on, in words.
    pub hardware_then: String,
    /// A ratio measured now "holds in ratio" when it is at least the 1999 ratio divided by
    /// this.
    pub ratio_tolerance: f64,
    /// Which server stands for which of 1999.
    pub stand_ins: StandIns,
    /// By id, the measurements; they run in the order of [`MEASUREMENT_ORDER`] where listed
    /// there, then the others by id.
    pub measurements: BTreeMap<String, Measurement>,
    /// The figures of 1999.
    pub claims: Figures1999,
}

/// The ids the row builder reads, in the order the measurements run.
pub const MEASUREMENT_ORDER: [&str; 6] = [
    "specweb96",
    "files-512",
    "slow-small",
    "slow-large",
    "time-wait",
    "close-modes",
];

/// Which server (a name `loadgen compare --servers` takes) stands for which of 1999.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandIns {
    /// Afterburner: one process, one thread, one loop.
    pub single_loop: String,
    /// Apache 1.3.
    pub apache: String,
    /// thttpd.
    pub thttpd: String,
    /// The servers of 1999's kinds the single loop is ranked against.
    pub rivals_1999: Vec<String>,
    /// The designs that pay for a connection with a thread or process of its own.
    pub per_connection: Vec<String>,
}

/// One measurement: a `loadgen compare` of `scenario` over `servers`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// What it measures, in words.
    pub what: String,
    /// The scenario file, relative to the claims file.
    pub scenario: PathBuf,
    /// The servers; the first is the baseline.
    pub servers: Vec<ServerEntry>,
    /// Rounds.
    pub repeat: u32,
    /// Replaces the scenario's warm-up.
    #[serde(default, deserialize_with = "some_duration")]
    pub warmup: Option<Duration>,
    /// Replaces the scenario's measured duration.
    #[serde(default, deserialize_with = "some_duration")]
    pub duration: Option<Duration>,
    /// Replaces every closed population's clients.
    #[serde(default)]
    pub clients: Option<u32>,
    /// Replaces every modem population's users.
    #[serde(default)]
    pub modem_clients: Option<u32>,
    /// Replaces every open population's rate, requests per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// What `--quick` replaces.
    #[serde(default)]
    pub quick: QuickSize,
}

/// A measurement's `--quick` size: each given value replaces the full one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickSize {
    /// The servers.
    pub servers: Option<Vec<ServerEntry>>,
    /// Rounds.
    pub repeat: Option<u32>,
    /// Warm-up.
    #[serde(default, deserialize_with = "some_duration")]
    pub warmup: Option<Duration>,
    /// Measured duration.
    #[serde(default, deserialize_with = "some_duration")]
    pub duration: Option<Duration>,
    /// Closed populations' clients.
    pub clients: Option<u32>,
    /// Modem populations' users.
    pub modem_clients: Option<u32>,
    /// Open populations' rate, requests per second.
    pub rate: Option<f64>,
}

/// A server of a measurement: a name, or a built-in design with extra flags under a label.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ServerEntry {
    /// A design or real server, by name.
    Name(String),
    /// `{ label, server, args }`.
    Labelled {
        /// Its name in rows and directories.
        label: String,
        /// The design.
        server: String,
        /// Flags added after the scenario's.
        #[serde(default)]
        args: Vec<String>,
    },
}

impl ServerEntry {
    /// As `loadgen compare` takes it.
    pub fn compare_server(&self) -> CompareServer {
        match self {
            ServerEntry::Name(name) => CompareServer::named(name),
            ServerEntry::Labelled {
                label,
                server,
                args,
            } => CompareServer {
                label: label.clone(),
                server: server.clone(),
                extra_args: args.clone(),
            },
        }
    }
}

/// A measurement at the size it runs: full, or with `--quick`'s values.
#[derive(Clone, Debug)]
pub struct SizedMeasurement {
    /// The servers.
    pub servers: Vec<CompareServer>,
    /// Rounds.
    pub rounds: u32,
    /// The values that replace the scenario's.
    pub overrides: Overrides,
}

impl Measurement {
    /// The measurement at its full size, or at its quick one.
    pub fn sized(&self, quick: bool) -> SizedMeasurement {
        let q = if quick {
            self.quick.clone()
        } else {
            QuickSize::default()
        };
        let servers = q.servers.as_ref().unwrap_or(&self.servers);
        SizedMeasurement {
            servers: servers.iter().map(ServerEntry::compare_server).collect(),
            rounds: q.repeat.unwrap_or(self.repeat),
            overrides: Overrides {
                warmup: q.warmup.or(self.warmup),
                duration: q.duration.or(self.duration),
                clients: q.clients.or(self.clients),
                modem_clients: q.modem_clients.or(self.modem_clients),
                rate: q.rate.or(self.rate),
                ..Overrides::default()
            },
        }
    }
}

/// The figures of 1999, one table per claim (see `scenarios/claims-1999.toml` for each
/// figure's meaning and source).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures1999 {
    /// The SPECweb96 result.
    pub specweb96: Specweb96Claim,
    /// The benchmark page's 512-byte files.
    pub files_512: ServerFigures,
    /// The benchmark page's SPECweb96-like mix.
    pub specweb96_mix: ServerFigures,
    /// "500 connections = 500 copies of the server".
    pub copies: CopiesClaim,
    /// The TIME_WAIT arithmetic.
    pub time_wait: TimeWaitClaim,
    /// The half-second pause.
    pub pause: PauseClaim,
    /// The 1996 site.
    pub site_1996: Site1996Claim,
    /// IBM's kernel-mode AFPA.
    pub afpa: AfpaClaim,
}

/// The SPECweb96 result of 1999.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Specweb96Claim {
    /// Where it comes from.
    pub source: String,
    /// The machine it was measured on, in words.
    pub machine: String,
    /// SPECweb96 ops/s.
    pub ops_per_s: f64,
    /// The author's own figure, ops/s.
    pub in_house_ops_per_s: f64,
    /// The throughput quoted with it, Mbit/s (10^6 bits).
    pub mbit_per_s: f64,
    /// The best other server of the class, ops/s (unconfirmed).
    pub best_of_class_ops_per_s: f64,
    /// Bytes per op fit the mix within this relative difference.
    pub relative_difference: f64,
}

/// Ops/s of four servers on one benchmark of 1999.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFigures {
    /// Where it comes from.
    pub source: String,
    /// Afterburner, ops/s.
    pub afterburner: f64,
    /// Apache, ops/s.
    pub apache: f64,
    /// thttpd, ops/s.
    pub thttpd: f64,
    /// Zeus, ops/s.
    pub zeus: f64,
}

/// "500 connections = 500 copies of the server".
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopiesClaim {
    /// Where it comes from.
    pub source: String,
    /// The connections the claim speaks of.
    pub connections: u32,
    /// A per-connection design's memory per connection is at least this many times the loop's.
    pub min_ratio: f64,
}

/// The TIME_WAIT arithmetic.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWaitClaim {
    /// Where it comes from.
    pub source: String,
    /// Bytes of one TIME_WAIT socket, as claimed.
    pub object_bytes: f64,
    /// Connections closed per second, as claimed.
    pub ops_per_s: f64,
    /// How long the claim holds each socket, in its own words (`60 s x 5 min`).
    pub claimed_hold: String,
    /// The same, in seconds.
    pub claimed_hold_s: f64,
    /// The claimed total, bytes.
    pub claimed_bytes: f64,
    /// TIME_WAIT length of 1999's systems, seconds.
    pub time_wait_1999_s: f64,
    /// Linux's TIME_WAIT length, seconds.
    pub time_wait_linux_s: f64,
    /// The claimed total holds within this relative difference.
    pub relative_difference: f64,
    /// The server holds at least this many TIME_WAITs per connection it closed first.
    pub min_per_close: f64,
}

/// The half-second pause.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseClaim {
    /// Where it comes from.
    pub source: String,
    /// The pause.
    #[serde(with = "duration_text")]
    pub pause: Duration,
    /// Holds when at least this share of the TIME_WAITs are the clients'.
    pub min_client_share: f64,
}

/// The 1996 site.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site1996Claim {
    /// Where it comes from.
    pub source: String,
    /// The machine that served it, in words.
    pub machine: String,
    /// Hits a day.
    pub hits_per_day: f64,
    /// Mbit/s (10^6 bits).
    pub mbit_per_s: f64,
    /// The site's size, bytes.
    pub site_bytes: f64,
}

/// IBM's kernel-mode AFPA.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfpaClaim {
    /// Where it comes from.
    pub source: String,
    /// The machine it was measured on, in words.
    pub machine: String,
    /// SPECweb96 ops/s, kernel mode.
    pub ops_per_s: f64,
    /// User-space servers were this many times slower, at least...
    pub user_mode_slowdown_low: f64,
    /// ... and at most.
    pub user_mode_slowdown_high: f64,
}

/// A claims file that cannot be used, naming it.
#[derive(Debug, thiserror::Error)]
#[error("claims file {}: {message}", file.display())]
pub struct ClaimsFileError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong (with the line and column where the TOML parser knows them).
    pub message: String,
}

impl ClaimsFile {
    /// Reads and checks a claims file: every measurement the rows need is there, rounds and
    /// servers are given, the tolerance is at least 1.
    pub fn load(path: &Path) -> Result<ClaimsFile, ClaimsFileError> {
        let error = |message: String| ClaimsFileError {
            file: path.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| error(format!("cannot read it: {e}")))?;
        let file: ClaimsFile = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        file.validate().map_err(error)?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), String> {
        if self.ratio_tolerance.is_nan() || self.ratio_tolerance < 1.0 {
            return Err(format!(
                "ratio_tolerance: {} is less than 1 (a ratio would have to beat the claim)",
                self.ratio_tolerance
            ));
        }
        for id in MEASUREMENT_ORDER {
            if !self.measurements.contains_key(id) {
                return Err(format!(
                    "measurements: `{id}` is missing (the rows need {})",
                    MEASUREMENT_ORDER.join(", ")
                ));
            }
        }
        for (key, name) in [
            ("single_loop", &self.stand_ins.single_loop),
            ("apache", &self.stand_ins.apache),
            ("thttpd", &self.stand_ins.thttpd),
        ]
        .into_iter()
        .chain(
            self.stand_ins
                .rivals_1999
                .iter()
                .chain(&self.stand_ins.per_connection)
                .map(|name| ("rivals_1999/per_connection", name)),
        ) {
            crate::scenario::server_spec_for_name(name)
                .map_err(|e| format!("stand_ins.{key}: {e}"))?;
        }
        self.check_close_modes()?;
        for (id, measurement) in &self.measurements {
            for quick in [false, true] {
                let sized = measurement.sized(quick);
                let size = if quick { ".quick" } else { "" };
                if sized.rounds == 0 {
                    return Err(format!(
                        "measurements.{id}{size}.repeat: must be at least 1"
                    ));
                }
                if sized.servers.is_empty() {
                    return Err(format!("measurements.{id}{size}.servers: none given"));
                }
                for (index, server) in sized.servers.iter().enumerate() {
                    if sized.servers[..index]
                        .iter()
                        .any(|earlier| earlier.label == server.label)
                    {
                        return Err(format!(
                            "measurements.{id}{size}.servers: `{}` is named twice",
                            server.label
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `close-modes` measures the claims' pause: it must have a `wait-client` server and a
    /// `pause` server closing with `--close pause=` exactly `claims.pause.pause`, so the row's
    /// words and the measurement cannot drift apart.
    fn check_close_modes(&self) -> Result<(), String> {
        let measurement = &self.measurements["close-modes"];
        for quick in [false, true] {
            let servers = measurement.sized(quick).servers;
            let find = |label: &str| servers.iter().find(|s| s.label == label);
            if find("wait-client").is_none() {
                return Err("measurements.close-modes: no server labelled `wait-client`".into());
            }
            let pause =
                find("pause").ok_or("measurements.close-modes: no server labelled `pause`")?;
            let close = pause
                .extra_args
                .iter()
                .position(|arg| arg == "--close")
                .and_then(|at| pause.extra_args.get(at + 1))
                .ok_or("measurements.close-modes: the `pause` server has no `--close pause=...`")?;
            match afterburner::cli::parse_close_mode(close) {
                Ok((afterburner::conn::CloseMode::Pause, duration))
                    if duration == self.claims.pause.pause => {}
                _ => {
                    return Err(format!(
                        "measurements.close-modes: the `pause` server closes with `{close}`, \
                         not `pause={}` as claims.pause.pause says",
                        humantime::format_duration(self.claims.pause.pause)
                    ))
                }
            }
        }
        Ok(())
    }

    /// The measurements in the order they run: [`MEASUREMENT_ORDER`], then any other by id.
    pub fn ordered_measurements(&self) -> Vec<(&str, &Measurement)> {
        let mut ordered: Vec<(&str, &Measurement)> = MEASUREMENT_ORDER
            .iter()
            .filter_map(|id| Some((*id, self.measurements.get(*id)?)))
            .collect();
        for (id, measurement) in &self.measurements {
            if !MEASUREMENT_ORDER.contains(&id.as_str()) {
                ordered.push((id.as_str(), measurement));
            }
        }
        ordered
    }
}
