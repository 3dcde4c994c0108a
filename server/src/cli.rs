//! The command line: flags, their defaults and help, and parsing of sizes, durations and close
//! modes into a validated `ServerConfig`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::conn::CloseMode;
use crate::designs::Design;
use crate::live::{Format, LiveConfig, Policy, PolicyError};
use crate::site::Dotfiles;
use crate::units::{parse_bit_rate, parse_bytes, parse_duration};
use crate::ServerConfig;

const ABOUT: &str =
    "Afterburner: one process, one thread, one readiness loop, the whole site in RAM.";

const AFTER_HELP: &str = "\
Examples:
  afterburner --root ./site
  afterburner --root ./site --listen 0.0.0.0:8080 --close wait-client=500ms --stats stats.json
  afterburner --root ./site --reftab hotlink.reftab --max-conns 10000
  afterburner --root ./site --design prefork --workers 150
  afterburner --root ./site --design reactors --workers 2

Designs (--design), all on the same site, HTTP layer and connection state machine:
  loop       one thread, one epoll readiness loop (the default; Afterburner's own)
  poll       one thread, poll(2) over a descriptor array rebuilt each round
  select     one thread, select(2) over an fd_set rebuilt each round (at most 1024 descriptors)
  threads    a thread per connection, blocking on its socket (at most --max-conns threads)
  prefork    --workers processes forked at start, one connection at a time each (Apache 1.3)
  fork       a process forked per connection (NCSA, CERN, inetd)
  reactors   --workers loops, one per CPU, each with its own SO_REUSEPORT listener
  uring      one thread on io_uring (exits 2 where the kernel refuses io_uring)
A design says at start which of the given flags do not apply to it.

Close modes:
  server              close after the last byte; the server holds the TIME_WAIT
  wait-client[=DUR]   keep reading after the reply; close when the client's FIN arrives (the
                      client holds the TIME_WAIT) or DUR (default 500ms) after the send queue drained
  pause[=DUR]         keep reading after the reply; close when the client's FIN arrives or DUR
                      (default 500ms) after the reply was handed to the kernel, even with bytes
                      not yet acknowledged: a client slower than DUR (a 56k modem) is still
                      receiving, so the server's FIN goes first and the server holds the TIME_WAIT
  reset               once the send queue drained, close with SO_LINGER 0: RST, no TIME_WAIT

Live source (--live PATH; designs loop, reactors, uring, threads, prefork): GET PATH is an
  endless stream, frames published at --live-fps from the server's start, built once and shared
  by every viewer (prefork: once per process; uring copies each into the viewer's send queue).
  mjpeg  multipart/x-mixed-replace;boundary=afterburnerframe, one part of --live-frame-bytes per
         frame with Content-Length, X-Frame-Seq, X-Timestamp (capture, Unix s.us); close-delimited
  cbr    application/octet-stream at --live-rate bits/s (X-Stream-Rate in bytes/s), chunks whose
         8-byte words count the stream offset; chunked on HTTP/1.1
  Policies for a viewer slower than the stream (--live-policy):
  latest                   the newest frame whenever the socket takes one; frames in between
                           are skipped (counted); the kernel queue is capped by --live-lowat
  queue:N                  every frame in order from a backlog of N frames; older ones drop
  queue:BYTES:disconnect   every frame in order; a viewer BYTES behind is disconnected (Icecast)
  fifo                     every frame in order, unbounded up to --live-fifo-cap, then disconnected
  HEAD PATH gets the head only. --stats then has a \"live\" object: counters and *_now gauges.

Referer table (--reftab), one rule a line, first match wins:
  # PATTERN       ALLOWED-REFERER-HOSTS      ALTERNATE           [empty=allow|empty=alternate]
  /images/*.gif   example.com,.example.org   /images/hotlink.gif empty=allow

Security: binds 127.0.0.1 unless --listen says otherwise; serves only the files loaded at start
  (a symlink is followed only to a file inside --root; dotfiles only with --dotfiles); no
  directory listing; a connection buffers at most --max-header-bytes of request (plus one read).

Sizes take K/KiB, M/MiB, G/GiB (all powers of 1024); durations take ms, s, m.
SIGINT/SIGTERM: stop accepting, finish replies in flight within --grace, write --stats, exit 0.
SIGUSR1: write --stats now and keep serving (ignored without --stats); each write of the file
  numbers itself, \"snapshot\": 1, 2, ..., and the one at exit also says \"final\": true.";

/// The flags as clap parses them; [`Args::into_config`] turns them into a [`ServerConfig`].
#[derive(Parser, Debug)]
#[command(name = "afterburner", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Directory whose regular files are the site, loaded into RAM at start.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,

    /// Address and port to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Also load files and directories whose names begin with `.` (.git, .env, .htpasswd); by
    /// default they are not loaded, so requests for them are 404.
    #[arg(long)]
    pub dotfiles: bool,

    /// Refuse to start if the site is larger than this.
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub max_site_bytes: u64,

    /// Largest request line plus headers; over it: 414 (line) or 431 (headers).
    #[arg(long, value_name = "BYTES", default_value = "8KiB", value_parser = parse_bytes)]
    pub max_header_bytes: u64,

    /// Referer table: serve other content to pages of other sites (format below).
    #[arg(long, value_name = "FILE")]
    pub reftab: Option<PathBuf>,

    /// How connections end after the last reply: server, wait-client[=DURATION],
    /// pause[=DURATION] or reset (list below).
    #[arg(long, value_name = "MODE", default_value = "server", value_parser = parse_close_mode)]
    pub close: (CloseMode, Duration),

    /// Close a connection whose request head is not complete after this long (slowloris).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Close an idle keep-alive connection after this long.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// Close a connection whose reply makes no progress for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub send_timeout: Duration,

    /// Most concurrent connections; at the limit new ones wait in the backlog
    /// [default: the open-files limit, raised to its hard limit, minus 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,

    /// On SIGINT/SIGTERM, how long replies in flight may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Write the counters as JSON to this file at exit, and on each SIGUSR1 while serving
    /// (without --stats, SIGUSR1 is ignored).
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub backlog: i32,

    /// Pin the server to this CPU.
    #[arg(long, value_name = "CPU")]
    pub cpu: Option<usize>,

    /// The concurrency core (list below).
    #[arg(long, value_name = "NAME", value_enum, default_value_t = Design::Loop)]
    pub design: Design,

    /// Processes of `prefork` [default: 256, Apache 1.3's MaxClients], loops of `reactors` [default: the CPUs the server
    /// may run on]; other designs ignore it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub workers: Option<u64>,

    /// Serve a live stream at this path (like /cam.mjpg); see "Live source" below.
    #[arg(long, value_name = "PATH")]
    pub live: Option<String>,

    /// Frames (CBR: chunks) the live source publishes per second.
    #[arg(long, value_name = "F", default_value_t = crate::live::DEFAULT_FPS, requires = "live")]
    pub live_fps: f64,

    /// Body bytes of one MJPEG frame.
    #[arg(long, value_name = "BYTES", default_value = "3KiB", value_parser = parse_bytes, requires = "live")]
    pub live_frame_bytes: u64,

    /// What the live stream carries: mjpeg parts or a cbr byte stream.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LiveFormat::Mjpeg, requires = "live")]
    pub live_format: LiveFormat,

    /// The cbr stream's rate in bits per second (24k = 24,000 bit/s = 3,000 bytes/s).
    #[arg(long, value_name = "BITS", default_value = "24k", value_parser = parse_bit_rate, requires = "live")]
    pub live_rate: f64,

    /// What a viewer slower than the stream gets: latest, queue:N, queue:BYTES:disconnect or
    /// fifo (list below).
    #[arg(long, value_name = "POLICY", default_value = "latest", value_parser = parse_policy, requires = "live")]
    pub live_policy: Policy,

    /// TCP_NOTSENT_LOWAT on each viewer's socket: the unsent bytes the kernel may hold for it,
    /// or `off` (the send buffer, megabytes, becomes a hidden queue).
    #[arg(long, value_name = "BYTES|off", default_value = "4KiB", value_parser = parse_lowat, requires = "live")]
    pub live_lowat: Lowat,

    /// Burst on connect: body bytes of recent stream a new cbr viewer gets at once under
    /// queue:BYTES:disconnect (Icecast's burst-size, 64 KiB).
    #[arg(long, value_name = "BYTES", default_value = "64KiB", value_parser = parse_bytes, requires = "live")]
    pub live_burst: u64,

    /// The fifo policy's hard cap on the frames kept, in bytes; a viewer further behind is
    /// disconnected.
    #[arg(long, value_name = "BYTES", default_value = "8MiB", value_parser = parse_bytes, requires = "live")]
    pub live_fifo_cap: u64,
}

/// `--live-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LiveFormat {
    /// `multipart/x-mixed-replace` parts.
    Mjpeg,
    /// A constant-bitrate byte stream.
    Cbr,
}

/// `--live-lowat`: the mark in bytes, `None` for `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lowat(pub Option<u32>);

/// `off`, or a size as [`parse_bytes`] reads it from 1 byte to 4 GiB - 1 (the option is a
/// C `int` the kernel reads as unsigned).
pub fn parse_lowat(text: &str) -> Result<Lowat, String> {
    if text.trim() == "off" {
        return Ok(Lowat(None));
    }
    let bytes = parse_bytes(text).map_err(|e| format!("{e}, or off"))?;
    match u32::try_from(bytes) {
        Ok(0) => Err("the mark must be at least 1 byte (or off)".to_string()),
        Ok(mark) => Ok(Lowat(Some(mark))),
        Err(_) => Err(format!("{bytes} bytes is over the 4 GiB - 1 a mark can be")),
    }
}

/// A `--live-policy` ([`Policy::from_str`](std::str::FromStr)).
pub fn parse_policy(text: &str) -> Result<Policy, PolicyError> {
    text.parse()
}

impl Args {
    /// The configuration the flags ask for: `--close` split into the mode and its linger
    /// duration; `given` the long flags written on the command line (see
    /// [`ServerConfig::flags_given`]).
    pub fn into_config_with(self, given: Vec<&'static str>) -> ServerConfig {
        let (close_mode, linger) = self.close;
        ServerConfig {
            root: self.root,
            dotfiles: if self.dotfiles {
                Dotfiles::Serve
            } else {
                Dotfiles::Skip
            },
            listen: self.listen,
            max_site_bytes: self.max_site_bytes,
            max_header_bytes: self.max_header_bytes.min(usize::MAX as u64) as usize,
            reftab: self.reftab,
            close_mode,
            linger,
            header_timeout: self.header_timeout,
            keepalive_timeout: self.keepalive_timeout,
            send_timeout: self.send_timeout,
            max_conns: self.max_conns.map(|n| n as usize),
            grace: self.grace,
            stats: self.stats,
            backlog: self.backlog,
            cpu: self.cpu,
            design: self.design,
            workers: self.workers.map(|n| n as usize),
            flags_given: given,
            live: self.live.map(|path| LiveConfig {
                fps: self.live_fps,
                frame_bytes: self.live_frame_bytes.min(usize::MAX as u64) as usize,
                format: match self.live_format {
                    LiveFormat::Mjpeg => Format::Mjpeg,
                    LiveFormat::Cbr => Format::Cbr {
                        bytes_per_second: (self.live_rate / 8.0).round() as u64,
                    },
                },
                policy: self.live_policy,
                lowat: self.live_lowat.0,
                burst_bytes: self.live_burst,
                fifo_cap_bytes: self.live_fifo_cap,
                ..LiveConfig::new(&path)
            }),
        }
    }

    /// The configuration the flags ask for, with no record of which flags were written.
    pub fn into_config(self) -> ServerConfig {
        self.into_config_with(Vec::new())
    }

    /// Parses a command line (`argv[0]` first) and records which flags it wrote, so that a
    /// design can say which of them it ignores. A wrong command line prints clap's message
    /// and exits 2 (`--help` and `--version` exit 0).
    pub fn parse_config_from<I, T>(argv: I) -> ServerConfig
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().get_matches_from(argv);
        let given = Args::command()
            .get_arguments()
            .filter(|arg| {
                matches.value_source(arg.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
            })
            .filter_map(|arg| arg.get_long())
            .filter_map(|long| FLAG_NAMES.iter().copied().find(|name| name[2..] == *long))
            .collect();
        let args = Args::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        args.into_config_with(given)
    }
}

/// Every flag's name as a design's `IGNORED_FLAGS` writes it.
const FLAG_NAMES: &[&str] = &[
    "--root",
    "--dotfiles",
    "--listen",
    "--max-site-bytes",
    "--max-header-bytes",
    "--reftab",
    "--close",
    "--header-timeout",
    "--keepalive-timeout",
    "--send-timeout",
    "--max-conns",
    "--grace",
    "--stats",
    "--backlog",
    "--cpu",
    "--design",
    "--workers",
    "--live",
    "--live-fps",
    "--live-frame-bytes",
    "--live-format",
    "--live-rate",
    "--live-policy",
    "--live-lowat",
    "--live-burst",
    "--live-fifo-cap",
];

/// The linger duration when `wait-client` or `pause` names none: the original's half second.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(500);

/// `server`, `wait-client`, `wait-client=2s`, `pause`, `pause=300ms` or `reset`; the duration
/// (that of `wait-client` and `pause` only) must be more than 0.
pub fn parse_close_mode(text: &str) -> Result<(CloseMode, Duration), String> {
    let (name, duration) = match text.split_once('=') {
        Some((name, duration)) => (name, Some(duration)),
        None => (text, None),
    };
    let mode = match name {
        "server" => CloseMode::Server,
        "wait-client" => CloseMode::WaitClient,
        "pause" => CloseMode::Pause,
        "reset" => CloseMode::Reset,
        _ => {
            return Err(format!(
                "unknown close mode `{text}`: expected server, wait-client[=DURATION], \
                 pause[=DURATION] or reset"
            ))
        }
    };
    let Some(duration) = duration else {
        return Ok((mode, DEFAULT_LINGER));
    };
    if matches!(mode, CloseMode::Server | CloseMode::Reset) {
        return Err(format!("`{name}` takes no duration"));
    }
    let linger = parse_duration(duration).map_err(|e| e.to_string())?;
    if linger.is_zero() {
        return Err(format!("the {name} duration must be more than 0"));
    }
    Ok((mode, linger))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(live: &[&str]) -> Result<ServerConfig, clap::Error> {
        let mut argv = vec!["afterburner", "--root", "."];
        argv.extend_from_slice(live);
        Args::try_parse_from(argv).map(Args::into_config)
    }

    #[test]
    fn live_flags_fill_the_live_config_with_their_defaults() {
        assert_eq!(config(&[]).unwrap().live, None);
        let live = config(&["--live", "/cam.mjpg"]).unwrap().live.unwrap();
        assert_eq!(live, LiveConfig::new("/cam.mjpg"));
        assert_eq!(live.lowat, Some(4096));
        assert_eq!(live.frame_bytes, 3072);
        let cbr = config(&[
            "--live",
            "/radio",
            "--live-format",
            "cbr",
            "--live-rate",
            "24k",
            "--live-fps",
            "2",
            "--live-policy",
            "queue:512KiB:disconnect",
            "--live-lowat",
            "off",
            "--live-burst",
            "8KiB",
            "--live-fifo-cap",
            "1MiB",
        ])
        .unwrap()
        .live
        .unwrap();
        assert_eq!(
            cbr.format,
            Format::Cbr {
                bytes_per_second: 3000
            }
        );
        assert_eq!(cbr.fps, 2.0);
        assert_eq!(
            cbr.policy,
            Policy::QueueBytesDisconnect { bytes: 512 * 1024 }
        );
        assert_eq!(cbr.lowat, None);
        assert_eq!((cbr.burst_bytes, cbr.fifo_cap_bytes), (8192, 1 << 20));
    }

    #[test]
    fn live_settings_need_live_and_bad_ones_name_the_text() {
        let orphan = config(&["--live-fps", "10"]).unwrap_err().to_string();
        assert!(orphan.contains("--live"), "{orphan}");
        let policy = config(&["--live", "/c", "--live-policy", "newest"])
            .unwrap_err()
            .to_string();
        assert!(
            policy.contains("newest") && policy.contains("latest"),
            "{policy}"
        );
        let rate = config(&["--live", "/c", "--live-rate", "fast"])
            .unwrap_err()
            .to_string();
        assert!(rate.contains("fast"), "{rate}");
    }

    #[test]
    fn the_lowat_is_a_size_or_off() {
        assert_eq!(parse_lowat("off"), Ok(Lowat(None)));
        assert_eq!(parse_lowat("4KiB"), Ok(Lowat(Some(4096))));
        assert_eq!(parse_lowat("1"), Ok(Lowat(Some(1))));
        assert!(parse_lowat("0").unwrap_err().contains("at least 1"));
        assert!(parse_lowat("4GiB").unwrap_err().contains("4 GiB"));
        assert!(parse_lowat("lots").unwrap_err().contains("`lots`"));
    }

    #[test]
    fn close_modes_parse_with_optional_duration() {
        assert_eq!(
            parse_close_mode("server"),
            Ok((CloseMode::Server, DEFAULT_LINGER))
        );
        assert_eq!(
            parse_close_mode("reset"),
            Ok((CloseMode::Reset, DEFAULT_LINGER))
        );
        assert_eq!(
            parse_close_mode("wait-client=2s"),
            Ok((CloseMode::WaitClient, Duration::from_secs(2)))
        );
        assert_eq!(
            parse_close_mode("wait-client"),
            Ok((CloseMode::WaitClient, DEFAULT_LINGER))
        );
        assert!(parse_close_mode("server=1s").is_err());
        assert!(parse_close_mode("linger").unwrap_err().contains("linger"));
        assert!(parse_close_mode("wait-client=0s").is_err());
    }

    #[test]
    fn pause_parses_with_optional_duration_and_refuses_zero() {
        assert_eq!(
            parse_close_mode("pause"),
            Ok((CloseMode::Pause, DEFAULT_LINGER))
        );
        assert_eq!(DEFAULT_LINGER, Duration::from_millis(500));
        assert_eq!(
            parse_close_mode("pause=300ms"),
            Ok((CloseMode::Pause, Duration::from_millis(300)))
        );
        assert_eq!(
            parse_close_mode("pause=2s"),
            Ok((CloseMode::Pause, Duration::from_secs(2)))
        );
        let zero = parse_close_mode("pause=0s").unwrap_err();
        assert!(
            zero.contains("pause") && zero.contains("more than 0"),
            "{zero}"
        );
        assert!(parse_close_mode("pause=").is_err());
        assert!(parse_close_mode("pause=soon").is_err());
        assert!(parse_close_mode("reset=1s")
            .unwrap_err()
            .contains("takes no duration"));
        let unknown = parse_close_mode("pauses").unwrap_err();
        assert!(
            unknown.contains("pauses") && unknown.contains("pause[=DURATION]"),
            "{unknown}"
        );
    }
}
