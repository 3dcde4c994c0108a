//! One `[[clients]]` population of a scenario: closed-loop clients, open-loop arrivals,
//! slow-line (56k modem) users, or live-stream viewers, with their distributions (think time,
//! arrivals, images per page, watch time).
//!
//! A table is read flat (`PopulationTable`: every key of every kind, each range-checked where it
//! stands) and then turned into its kind, so a key of the wrong kind is named with the population.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units::{
    bit_rate, duration_text, positive_f64, some_bit_rate, some_duration, some_positive_f64,
    some_positive_u32,
};

/// One client population.
///
/// Read through the flat `PopulationTable` rather than as an internally tagged enum: serde
/// buffers tagged enums, and the `toml` crate then loses the line and name of a bad key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "PopulationTable")]
pub enum Population {
    /// N clients, each: request, wait for the reply, think, repeat.
    Closed {
        /// Labels the population's results; not empty, unique in the scenario.
        name: String,
        /// Concurrent clients, at least 1; each holds one connection at a time.
        clients: u32,
        /// Pause between a reply and the client's next request.
        think: Think,
        /// Requests per TCP connection: 1 is SPECweb96 (a new connection per request).
        requests_per_connection: u32,
    },
    /// Requests arrive on a schedule whatever the server does; latency counts from the time
    /// each request was due, so a stalled server cannot hide its stall (no coordinated omission).
    Open {
        /// Labels the population's results; not empty, unique in the scenario.
        name: String,
        /// Requests per second.
        rate: f64,
        /// How the gaps between arrivals are drawn.
        arrival: Arrival,
        /// Requests outstanding at most; arrivals beyond it wait for a slot, and the wait counts
        /// in their latency (it is measured from when they were due).
        max_in_flight: u32,
        /// Requests per TCP connection, as for closed populations; an idle kept-alive connection
        /// is reused by the next arrival.
        requests_per_connection: u32,
    },
    /// Users behind slow lines (56k modems by default): browser-like page views over
    /// rate-limited, flow-controlled connections that linger after the last reply.
    Modem(Box<ModemSpec>),
    /// Viewers of a live stream (`GET` of an endless multipart or CBR response), on LAN lines
    /// or on slow lines shaped like a modem population's.
    Viewer(Box<ViewerSpec>),
}

/// A population of live-stream viewers (`kind = "viewer"`).
///
/// Serialized with the keys and forms a scenario file uses, so a result's scenario text reads
/// back as the same scenario.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ViewerSpec {
    /// Labels the population's results; not empty, unique in the scenario.
    pub name: String,
    /// The stream's path, as the server serves it (`/cam.mjpg`).
    pub stream: String,
    /// How many watch: a fixed number, or Poisson joins.
    #[serde(flatten)]
    pub audience: Audience,
    /// How long each viewer watches; `None`: to the end of the load point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Think>,
    /// `lan` or `modem`.
    pub line: LineKind,
    /// The slow line's shape when `line = "modem"` (the modem keys, same meanings).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub modem: Option<ViewerLine>,
    /// The CBR playout model's thresholds.
    pub playout: PlayoutSpec,
    /// A viewer with no complete first frame this long after its connect began is counted as a
    /// `timeout` error and leaves.
    #[serde(with = "duration_text")]
    pub startup_timeout: Duration,
}

/// How many viewers watch.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Audience {
    /// A fixed number, joining spread evenly over `ramp_up`; a viewer whose watch time ends
    /// is replaced by a new one at once (the number stays fixed).
    Fixed {
        /// Viewers at once, at least 1.
        clients: u32,
        /// The first joins are spread evenly over this time.
        #[serde(with = "duration_text")]
        ramp_up: Duration,
    },
    /// Joins arrive as a Poisson process of this many per second (exponential gaps).
    Joins {
        /// Mean joins per second, positive.
        joins_per_s: f64,
    },
}

/// A viewer population's line.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LineKind {
    /// No emulated line: read as fast as the socket gives.
    #[default]
    Lan,
    /// A slow line: window, MSS, token-bucket reader and round trip as for `kind = "modem"`.
    Modem,
}

impl LineKind {
    /// `lan` or `modem`, as the scenario spells it.
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Lan => "lan",
            LineKind::Modem => "modem",
        }
    }
}

/// The slow-line keys of a viewer population (their meanings and defaults are
/// [`ModemSpec`]'s).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ViewerLine {
    /// Downstream line rates in bit/s and the share of viewers on each.
    #[serde(rename = "downstream_mix")]
    pub downstream: Vec<RateShare>,
    /// Upstream line rate in bit/s: the request is uploaded at its pace.
    #[serde(rename = "upstream")]
    pub upstream_bps: f64,
    /// Round-trip time of each viewer's line.
    #[serde(with = "duration_text")]
    pub rtt: Duration,
    /// Receive window each connection advertises.
    pub receive_window: u32,
    /// MSS announced in the SYN.
    pub mss: u32,
    /// Bytes of framing per segment besides the payload.
    pub link_overhead_bytes: u32,
}

/// The playout-buffer thresholds of a CBR viewer (issue 17 research section 1.6; the defaults,
/// 2 s and 1 s, are a choice, not a citation).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlayoutSpec {
    /// Media buffered before playback first starts.
    #[serde(with = "duration_text", default = "default_playout_start")]
    pub start: Duration,
    /// Media buffered before playback resumes after a stall.
    #[serde(with = "duration_text", default = "default_playout_resume")]
    pub resume: Duration,
}

impl Default for PlayoutSpec {
    fn default() -> Self {
        PlayoutSpec {
            start: default_playout_start(),
            resume: default_playout_resume(),
        }
    }
}

fn default_playout_start() -> Duration {
    Duration::from_secs(2)
}
fn default_playout_resume() -> Duration {
    Duration::from_secs(1)
}

impl ViewerSpec {
    /// The viewers' line as a modem population with the same line keys and a modem's page
    /// defaults (which viewers never use), so the slow-line machinery ([`ModemSpec`] ->
    /// `LineProfile`) serves both; `None` for LAN viewers.
    pub fn modem_spec(&self) -> Option<ModemSpec> {
        let line = self.modem.as_ref()?;
        Some(ModemSpec {
            name: self.name.clone(),
            clients: match self.audience {
                Audience::Fixed { clients, .. } => clients,
                Audience::Joins { .. } => 1,
            },
            downstream: line.downstream.clone(),
            upstream_bps: line.upstream_bps,
            rtt: line.rtt,
            receive_window: line.receive_window,
            mss: line.mss,
            link_overhead_bytes: line.link_overhead_bytes,
            think: Think::None,
            images_per_page: Count::Constant { count: 0 },
            connections_per_client: 1,
            keep_alive: true,
            linger: Think::None,
            ramp_up: Duration::ZERO,
            request_timeout: self.startup_timeout,
        })
    }

    /// Viewers watching at once on average: the fixed number, or joins/s x mean watch time
    /// (Little's law) capped by the point's length `duration`, at `load_fraction` of the load.
    pub fn offered(&self, load_fraction: f64, duration: Duration) -> f64 {
        match self.audience {
            Audience::Fixed { clients, .. } => (f64::from(clients) * load_fraction).ceil(),
            Audience::Joins { joins_per_s } => {
                let mean = match self.watch {
                    Some(watch) => mean_think(&watch).min(duration),
                    None => duration,
                };
                joins_per_s * load_fraction * mean.as_secs_f64()
            }
        }
    }

    /// Range checks across the fields; the message starts with the key.
    pub fn validate(&self) -> Result<(), String> {
        if !self.stream.starts_with('/') {
            return Err(format!(
                "stream: `{}` must be a path beginning with `/`",
                self.stream
            ));
        }
        if let Some(spec) = self.modem_spec() {
            spec.validate()?;
        }
        if let Some(Think::Uniform { min, max }) = self.watch {
            if min > max {
                return Err("watch: min is more than max".into());
            }
        }
        if self.playout.start.is_zero() || self.playout.resume.is_zero() {
            return Err("playout: start and resume must be more than 0".into());
        }
        if self.startup_timeout.is_zero() {
            return Err("startup_timeout: must be more than 0".into());
        }
        Ok(())
    }
}

/// The mean of a think-time distribution.
fn mean_think(think: &Think) -> Duration {
    match *think {
        Think::None => Duration::ZERO,
        Think::Constant { time } => time,
        Think::Exponential { mean } => mean,
        Think::Uniform { min, max } => (min + max) / 2,
    }
}

/// A population of slow-line users. Every field has a default from the late 1990s (the
/// sources are listed in `scenarios/README.md`): 53.3 kbit/s down, 33.6 kbit/s up, 150 ms round trip, an 8 KiB receive
/// window and a 536-byte MSS.
///
/// Serialized with the keys and forms a scenario file uses, so a result's scenario text reads
/// back as the same scenario.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModemSpec {
    /// Labels the population's results; not empty, unique in the scenario.
    pub name: String,
    /// Users at once; each runs page views one after the other.
    pub clients: u32,
    /// Downstream line rates in bit/s and the share of users on each.
    #[serde(rename = "downstream_mix")]
    pub downstream: Vec<RateShare>,
    /// Upstream line rate in bit/s: requests are uploaded at its pace.
    #[serde(rename = "upstream")]
    pub upstream_bps: f64,
    /// Round-trip time of each user's line (150 ms by default, 10 s at most); the scenario's
    /// `rtt` decides whether the kernel or the client adds it.
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
    /// Relative share of the users on this rate: positive, 1 by default; normalised over the mix.
    #[serde(default = "default_weight", deserialize_with = "positive_f64")]
    pub weight: f64,
}

/// A count drawn per page view (inline images).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "distribution", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Count {
    /// The same count for every page.
    Constant {
        /// Images per page.
        count: u32,
    },
    /// Every count from `min` to `max` inclusive, equally likely.
    Uniform {
        /// Fewest, inclusive.
        min: u32,
        /// Most, inclusive; at least `min`.
        max: u32,
    },
    /// 0, 1, 2, ... with P(k) = (1-p)^k p and mean (1-p)/p: many small pages, a few big ones.
    Geometric {
        /// Mean count, 0 or more: p = 1/(1+mean).
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
    Viewer,
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
    #[serde(default)]
    stream: Option<String>,
    #[serde(default, deserialize_with = "some_positive_f64")]
    joins_per_s: Option<f64>,
    #[serde(default)]
    watch: Option<Think>,
    #[serde(default)]
    line: Option<LineKind>,
    #[serde(default)]
    playout: Option<PlayoutSpec>,
    #[serde(default, deserialize_with = "some_duration")]
    startup_timeout: Option<Duration>,
}

impl PopulationTable {
    /// The line keys given, by name: they shape a slow line, for kind = "modem" and for
    /// kind = "viewer" with line = "modem".
    fn line_keys(&self) -> Vec<&'static str> {
        [
            ("downstream", self.downstream.is_some()),
            ("downstream_mix", self.downstream_mix.is_some()),
            ("upstream", self.upstream.is_some()),
            ("rtt", self.rtt.is_some()),
            ("receive_window", self.receive_window.is_some()),
            ("mss", self.mss.is_some()),
            ("link_overhead_bytes", self.link_overhead_bytes.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }

    /// The viewer keys given, by name: they belong to kind = "viewer" only.
    fn viewer_keys(&self) -> Vec<&'static str> {
        [
            ("stream", self.stream.is_some()),
            ("joins_per_s", self.joins_per_s.is_some()),
            ("watch", self.watch.is_some()),
            ("line", self.line.is_some()),
            ("playout", self.playout.is_some()),
            ("startup_timeout", self.startup_timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }

    /// The downstream rates given (`downstream` or `downstream_mix`), or the default 53.3k.
    fn downstream_rates(&self) -> Result<Vec<RateShare>, String> {
        match (self.downstream, &self.downstream_mix) {
            (Some(_), Some(_)) => Err(format!(
                "population `{}`: give `downstream` or `downstream_mix`, not both",
                self.name
            )),
            (Some(rate), None) => Ok(vec![RateShare { rate, weight: 1.0 }]),
            (None, Some(mix)) if mix.is_empty() => Err(format!(
                "population `{}`: `downstream_mix` needs at least one rate",
                self.name
            )),
            (None, Some(mix)) => Ok(mix.clone()),
            (None, None) => Ok(vec![RateShare {
                rate: DEFAULT_DOWNSTREAM_BPS,
                weight: 1.0,
            }]),
        }
    }

    /// The page keys given, by name: they belong to kind = "modem" only.
    fn modem_keys(&self) -> Vec<&'static str> {
        let mut keys = self.line_keys();
        keys.extend(self.page_keys());
        if self.ramp_up.is_some() {
            keys.push("ramp_up");
        }
        keys
    }

    /// The browsing keys of a modem population given, by name.
    fn page_keys(&self) -> Vec<&'static str> {
        [
            ("images_per_page", self.images_per_page.is_some()),
            (
                "connections_per_client",
                self.connections_per_client.is_some(),
            ),
            ("keep_alive", self.keep_alive.is_some()),
            ("linger", self.linger.is_some()),
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
        if !matches!(table.kind, PopulationKind::Viewer) {
            if let Some(key) = table.viewer_keys().first() {
                return Err(format!(
                    "population `{}`: `{key}` belongs to kind = \"viewer\"",
                    table.name
                ));
            }
        }
        if !matches!(table.kind, PopulationKind::Modem | PopulationKind::Viewer) {
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
                let downstream = table.downstream_rates()?;
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
            PopulationKind::Viewer => viewer_from(table),
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

/// A `[[clients]]` table of kind = "viewer": its keys checked against each other, every error
/// naming the population and the key.
fn viewer_from(table: PopulationTable) -> Result<Population, String> {
    let name = &table.name;
    let not_viewer = [
        ("think", table.think.is_some()),
        ("rate", table.rate.is_some()),
        ("arrival", table.arrival.is_some()),
        ("max_in_flight", table.max_in_flight.is_some()),
        (
            "requests_per_connection",
            table.requests_per_connection.is_some(),
        ),
    ];
    let page = table.page_keys();
    if let Some(key) = not_viewer
        .iter()
        .filter_map(|(key, given)| given.then_some(*key))
        .chain(page.iter().copied())
        .next()
    {
        return Err(format!(
            "population `{name}`: `{key}` is not a key of kind = \"viewer\""
        ));
    }
    let stream = table
        .stream
        .clone()
        .ok_or_else(|| format!("population `{name}`: kind = \"viewer\" needs `stream`"))?;
    let audience = match (table.clients, table.joins_per_s) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "population `{name}`: give `clients` (a fixed number) or `joins_per_s` (Poisson joins), not both"
            ))
        }
        (None, None) => {
            return Err(format!(
                "population `{name}`: kind = \"viewer\" needs `clients` or `joins_per_s`"
            ))
        }
        (Some(clients), None) => Audience::Fixed {
            clients,
            ramp_up: table.ramp_up.unwrap_or(Duration::ZERO),
        },
        (None, Some(joins_per_s)) => {
            if table.ramp_up.is_some() {
                return Err(format!(
                    "population `{name}`: `ramp_up` is for a fixed number of viewers (`clients`), not `joins_per_s`"
                ));
            }
            Audience::Joins { joins_per_s }
        }
    };
    let line = table.line.unwrap_or_default();
    let modem = match line {
        LineKind::Lan => {
            if let Some(key) = table.line_keys().first() {
                return Err(format!(
                    "population `{name}`: `{key}` shapes a slow line: it needs line = \"modem\""
                ));
            }
            None
        }
        LineKind::Modem => Some(ViewerLine {
            downstream: table.downstream_rates()?,
            upstream_bps: table.upstream.unwrap_or(DEFAULT_UPSTREAM_BPS),
            rtt: table.rtt.unwrap_or(Duration::from_millis(150)),
            receive_window: table.receive_window.unwrap_or(8192),
            mss: table.mss.unwrap_or(536),
            link_overhead_bytes: table.link_overhead_bytes.unwrap_or(48),
        }),
    };
    let spec = ViewerSpec {
        name: table.name,
        stream,
        audience,
        watch: table.watch,
        line,
        modem,
        playout: table.playout.unwrap_or_default(),
        startup_timeout: table.startup_timeout.unwrap_or(Duration::from_secs(10)),
    };
    spec.validate()
        .map_err(|e| format!("population `{}`: {e}", spec.name))?;
    Ok(Population::Viewer(Box::new(spec)))
}

impl Population {
    /// The population's `name`, which labels its results.
    pub fn name(&self) -> &str {
        match self {
            Population::Closed { name, .. } | Population::Open { name, .. } => name,
            Population::Modem(spec) => &spec.name,
            Population::Viewer(spec) => &spec.name,
        }
    }

    /// `closed`, `open`, `modem` or `viewer`, as in the scenario.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Population::Closed { .. } => "closed",
            Population::Open { .. } => "open",
            Population::Modem(_) => "modem",
            Population::Viewer(_) => "viewer",
        }
    }

    /// Requests per connection at most (a modem population keeps persistent connections
    /// open as long as it likes: unlimited; a viewer sends one request per connection).
    pub fn requests_per_connection(&self) -> u32 {
        match self {
            Population::Viewer(_) => 1,
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
    /// No pause: the next request goes at once.
    #[default]
    None,
    /// The same pause every time.
    Constant {
        /// The pause.
        #[serde(with = "duration_text")]
        time: Duration,
    },
    /// Exponentially distributed pauses: memoryless, like independent users.
    Exponential {
        /// Their mean.
        #[serde(with = "duration_text")]
        mean: Duration,
    },
    /// Every pause from `min` to `max` equally likely.
    Uniform {
        /// The shortest pause.
        #[serde(with = "duration_text")]
        min: Duration,
        /// The longest; not below `min`.
        #[serde(with = "duration_text")]
        max: Duration,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn parse(body: &str) -> Result<Population, String> {
        let text = format!("[[clients]]\nname = \"cam\"\n{body}\n");
        Scenario::parse(&text, std::path::Path::new("t.toml"))
            .map(|s| s.clients[0].clone())
            .map_err(|e| e.to_string())
    }

    fn viewer(body: &str) -> ViewerSpec {
        match parse(body) {
            Ok(Population::Viewer(spec)) => *spec,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fixed_lan_viewer_population_takes_its_defaults() {
        let spec = viewer("kind = \"viewer\"\nstream = \"/cam.mjpg\"\nclients = 3");
        assert_eq!(spec.stream, "/cam.mjpg");
        assert_eq!(
            spec.audience,
            Audience::Fixed {
                clients: 3,
                ramp_up: Duration::ZERO
            }
        );
        assert_eq!((spec.line, spec.modem.as_ref()), (LineKind::Lan, None));
        assert_eq!(spec.watch, None, "watch to the end of the point");
        assert_eq!(spec.playout, PlayoutSpec::default());
        assert_eq!(spec.startup_timeout, Duration::from_secs(10));
        assert_eq!(spec.offered(0.5, Duration::from_secs(60)), 2.0);
        assert_eq!(Population::Viewer(Box::new(spec)).kind_name(), "viewer");
    }

    #[test]
    fn modem_line_viewers_take_the_modem_line_keys() {
        let spec = viewer(
            "kind = \"viewer\"\nstream = \"/cam.mjpg\"\njoins_per_s = 2\nline = \"modem\"\n\
             downstream = \"16k\"\nlink_overhead_bytes = 0\nreceive_window = 4096\nrtt = \"80ms\"\n\
             watch = { distribution = \"exponential\", mean = \"30s\" }\n\
             playout = { start = \"3s\" }\nstartup_timeout = \"20s\"",
        );
        assert_eq!(spec.audience, Audience::Joins { joins_per_s: 2.0 });
        let line = spec.modem.clone().unwrap();
        assert_eq!(
            line.downstream,
            vec![RateShare {
                rate: 16_000.0,
                weight: 1.0
            }]
        );
        assert_eq!(
            (line.receive_window, line.mss, line.link_overhead_bytes),
            (4096, 536, 0)
        );
        assert_eq!(line.rtt, Duration::from_millis(80));
        let modem = spec.modem_spec().unwrap();
        // 16 kbit/s with no framing: 2,000 payload bytes per second.
        assert_eq!(modem.mean_payload_bytes_per_s(), 2000.0);
        assert_eq!(spec.playout.start, Duration::from_secs(3));
        assert_eq!(spec.playout.resume, Duration::from_secs(1));
        // Little's law: 2 joins/s x 30 s mean watch = 60 viewers at once (capped by the point).
        assert_eq!(spec.offered(1.0, Duration::from_secs(600)), 60.0);
        assert_eq!(spec.offered(1.0, Duration::from_secs(10)), 20.0);
    }

    #[test]
    fn a_viewer_scenario_reads_back_from_its_own_text() {
        let text = "[[clients]]\nname = \"cam\"\nkind = \"viewer\"\nstream = \"/cam.mjpg\"\n\
                    clients = 4\nramp_up = \"5s\"\nline = \"modem\"\n\
                    downstream_mix = [{ rate = \"28.8k\", weight = 2 }, { rate = \"53.3k\" }]\n";
        let scenario = Scenario::parse(text, std::path::Path::new("t.toml")).unwrap();
        let written = toml::to_string(&scenario).unwrap();
        let again = Scenario::parse(&written, std::path::Path::new("t.toml")).unwrap();
        match (&scenario.clients[0], &again.clients[0]) {
            (Population::Viewer(first), Population::Viewer(second)) => {
                assert_eq!(first, second, "{written}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_bad_viewer_key_is_named_with_its_population() {
        let base = "kind = \"viewer\"\nstream = \"/cam.mjpg\"";
        for (extra, says) in [
            ("clients = 2\njoins_per_s = 1", "not both"),
            ("", "needs `clients` or `joins_per_s`"),
            ("clients = 1\ndownstream = \"16k\"", "`downstream` shapes a slow line: it needs line = \"modem\""),
            ("clients = 1\nreceive_window = 4096", "`receive_window` shapes a slow line"),
            ("clients = 1\nthink = { distribution = \"none\" }", "`think` is not a key of kind = \"viewer\""),
            ("clients = 1\nrate = 5", "`rate` is not a key of kind = \"viewer\""),
            ("clients = 1\nimages_per_page = { distribution = \"constant\", count = 1 }", "`images_per_page` is not a key"),
            ("clients = 1\nkeep_alive = true", "`keep_alive` is not a key"),
            ("clients = 1\nrequest_timeout = \"5s\"", "`request_timeout` is not a key"),
            ("joins_per_s = 1\nramp_up = \"5s\"", "`ramp_up` is for a fixed number"),
            ("clients = 1\nline = \"modem\"\nmss = 50", "mss: 50 is outside"),
            ("clients = 1\nline = \"modem\"\nmss = 1000\nreceive_window = 900", "receive_window: 900"),
            ("clients = 1\nline = \"modem\"\ndownstream = \"16k\"\ndownstream_mix = [{ rate = \"8k\" }]", "not both"),
            ("clients = 1\nstartup_timeout = \"0s\"", "startup_timeout: must be more than 0"),
            ("clients = 1\nplayout = { start = \"0s\" }", "playout: start and resume"),
            ("clients = 1\nwatch = { distribution = \"uniform\", min = \"9s\", max = \"1s\" }", "watch: min is more than max"),
        ] {
            let error = parse(&format!("{base}\n{extra}")).unwrap_err();
            assert!(error.contains("cam") && error.contains(says), "{extra}: {error}");
        }
        for (body, says) in [
            ("kind = \"viewer\"\nclients = 1", "needs `stream`"),
            (
                "kind = \"viewer\"\nstream = \"cam.mjpg\"\nclients = 1",
                "must be a path beginning with `/`",
            ),
            (
                "kind = \"viewer\"\nstream = \"/c\"\nclients = 1\nline = \"isdn\"",
                "isdn",
            ),
            (
                "kind = \"viewer\"\nstream = \"/c\"\nclients = 1\nplayout = { begin = \"1s\" }",
                "begin",
            ),
            (
                "kind = \"closed\"\nclients = 1\nstream = \"/cam.mjpg\"",
                "`stream` belongs to kind = \"viewer\"",
            ),
            (
                "kind = \"modem\"\nclients = 1\nwatch = { distribution = \"none\" }",
                "`watch` belongs to kind = \"viewer\"",
            ),
            (
                "kind = \"open\"\nrate = 1\nline = \"modem\"",
                "`line` belongs to kind = \"viewer\"",
            ),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains(says), "{body}: {error}");
        }
    }
}
