//! The server under test: start it (the built-in `afterburner` as a child of the loadgen, any
//! command line, or a server already running at a URL), wait until it answers, watch it during
//! the run, stop it and read back what it reports. [`ServerHandle`] is the whole public face;
//! the plumbing lives beside it: `process` (process groups, spawning, signals, reaping, the
//! server's stdout and stderr) and `ready` (the `http://` URL parser and the readiness probe).
//!
//! This is process plumbing only; nothing here measures traffic. The probe that decides "it
//! answers" is one blocking HTTP/1.0 GET over a std `TcpStream`, never the engine. The
//! built-in server's own counters are read from its `--stats` file: at the stop, and between
//! load points as snapshots it writes on SIGUSR1 ([`ServerHandle::stats_snapshot`]).
//!
//! Started servers lead a process group of their own. A Ctrl-C at the terminal then reaches
//! only the loadgen, which can stop its clients first and the server second and still read the
//! server's stats; and everything the server starts (a command's `sh` and its children, the
//! workers of a forking design) can be killed with one signal, so nothing is left behind. The
//! flip side: a loadgen killed without unwinding (SIGINT not handled, SIGKILL) leaves the server
//! running, so `main` must catch SIGINT. A panic is covered: dropping a handle kills what it
//! started.
//!
//! Network namespaces: a child starts in the namespace of the thread that spawns it. In the
//! split mode of `netns` (server and clients in two namespaces joined by a veth pair) call
//! [`ServerHandle::start`] from inside the server's namespace
//! (`SplitNetwork::in_server_namespace`) with `TargetOptions::listen_ip` set to the server's
//! address there (198.18.0.1); the handle works from any namespace afterwards. A command server
//! must then listen where the clients can reach it: `{host}` in its command line is
//! `listen_ip`, and a command that answers its `ready_url` but not `listen_ip:PORT` is reported.
//!
//! Errors are [`TargetError`]s: each names the command line or URL, and quotes the exit status
//! and the tail of the server's stderr ([`ServerContext`]) when the server exited or did not
//! get ready; the message stands on its own (no separate `source()`).

mod process;
mod ready;
pub mod real;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::os::AffinityError;
use crate::scenario::ServerSpec;
use real::RealServer;

use process::{as_group_leader, group_has_live_members, indent, watch_stdout, Process};
use ready::{parse_http_url, probe, HttpUrl};

pub use process::ServerContext;
pub use ready::{NoAnswer, UrlError};

/// Readiness polling period.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// One readiness probe may take this long before the next one starts.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(1);
/// What `afterburner` prints on stdout, once, when it listens.
const LISTENING_PREFIX: &str = "afterburner listening on ";
/// How long `stats_snapshot` waits for the built-in server's snapshot after SIGUSR1: a healthy
/// server writes it within milliseconds, between two events of its loop.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often `stats_snapshot` looks at the stats file meanwhile.
const SNAPSHOT_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// What a server command that exits at once with success probably did.
const DAEMON_HINT: &str = " (a server command must stay in the foreground: no daemon mode, e.g. \
                           nginx -g 'daemon off;')";

/// What `ServerHandle::start` needs besides the scenario's `[server]` table.
#[derive(Clone, Copy, Debug)]
pub struct TargetOptions<'a> {
    /// The executable that has the hidden `serve-builtin` subcommand: the loadgen itself.
    pub builtin_exe: &'a Path,
    /// The directory served: `--root` of the built-in server, `{root}` of a command.
    pub site_root: &'a Path,
    /// Where the server's stdout, stderr and stats go; `{workdir}` of a command.
    pub workdir: &'a Path,
    /// CPU for the server when the scenario names none.
    pub server_cpu: Option<usize>,
    /// How long the server may take to start answering.
    pub ready_timeout: Duration,
    /// Where a started server listens and the clients connect: 127.0.0.1 normally, the
    /// server's veth address in the split namespaces. `{host}` of a command. Not used for a URL.
    pub listen_ip: IpAddr,
}

/// Why a server could not be started or found answering. Whatever was started is killed and
/// reaped before the error is returned.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The work directory, or a file in it, could not be created or cleared.
    #[error("{action} {}: {error}", path.display())]
    Workdir {
        /// What was being done: `creating the work directory`, `creating`, `removing the old`.
        action: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The kernel's answer.
        error: io::Error,
    },
    /// The CPU for the server is not one the loadgen may use.
    #[error("[server] {error}")]
    Cpu {
        /// The CPU and the ones allowed.
        error: AffinityError,
    },
    /// No port could be reserved on the address the server is to listen on.
    #[error(
        "finding a free port on {ip}{}: {error}",
        if .ip.is_loopback() { "" }
        else { " (start the server from inside the namespace that has that address)" }
    )]
    NoFreePort {
        /// The listen address.
        ip: IpAddr,
        /// Why binding it failed.
        error: io::Error,
    },
    /// The server's process could not be started at all.
    #[error("starting {what}: {command_line}: {error}")]
    Spawn {
        /// `the built-in server` or `the server command`.
        what: &'static str,
        /// What was run.
        command_line: String,
        /// Why not.
        error: io::Error,
    },
    /// A URL of the `[server]` table cannot be used.
    #[error("{key} `{url}`: {error}")]
    BadUrl {
        /// `server.url` or `server.ready_url`.
        key: &'static str,
        /// The URL, its placeholders filled in.
        url: String,
        /// What is wrong with it.
        error: UrlError,
    },
    /// Nothing answers at the scenario's `server.url`.
    #[error("the server at {url} does not answer: {error}")]
    UrlNotAnswering {
        /// The URL.
        url: String,
        /// The probe's failure.
        error: NoAnswer,
    },
    /// The built-in server announced an address that does not parse.
    #[error("the built-in server announced an address that is not one: `{line}`{server}")]
    BadAnnouncement {
        /// The line it printed.
        line: String,
        /// Its command line and stderr.
        server: Box<ServerContext>,
    },
    /// The built-in server exited before it listened.
    #[error(
        "the built-in server exited with {exit} before it was listening{}{server}",
        stdout_block(.stdout)
    )]
    BuiltinExited {
        /// How it ended, e.g. `exit status: 2`.
        exit: String,
        /// What it printed on stdout meanwhile.
        stdout: Vec<String>,
        /// Its command line and stderr.
        server: Box<ServerContext>,
    },
    /// The built-in server did not announce its address in time.
    #[error(
        "the built-in server did not print `{LISTENING_PREFIX}ADDR` within {}{}{}{server}",
        humantime::format_duration(*.timeout),
        if *.stdout_closed { " (it closed its stdout)" } else { "" },
        stdout_block(.stdout)
    )]
    BuiltinNotListening {
        /// The ready timeout.
        timeout: Duration,
        /// Whether it closed its stdout.
        stdout_closed: bool,
        /// What it printed on stdout meanwhile.
        stdout: Vec<String>,
        /// Its command line and stderr.
        server: Box<ServerContext>,
    },
    /// The server command exited before its `ready_url` answered.
    #[error(
        "the server command exited with {exit} before {ready_url} answered{}{server}",
        if *.success { DAEMON_HINT } else { "" }
    )]
    CommandExited {
        /// How it ended, e.g. `exit status: 3`.
        exit: String,
        /// Whether it ended with success: then it probably went into the background.
        success: bool,
        /// The URL it was to answer.
        ready_url: String,
        /// Its command line and stderr.
        server: Box<ServerContext>,
    },
    /// A real server's binary is not installed.
    #[error(
        "{server} is not installed (looked for {names} in PATH, /usr/sbin, /usr/bin and /sbin): \
         install it with `apt-get install {package}`",
        names = .looked_for.join(", ")
    )]
    RealServerMissing {
        /// The server's name, e.g. `apache-event`.
        server: RealServer,
        /// The binary names looked for.
        looked_for: Vec<&'static str>,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A real server that serves as an unprivileged user could not read the site.
    #[error(
        "{server} serves the site as `nobody` when started as root, but {} (mode {mode:o}) is \
         closed to others: make the site's directories readable (chmod o+rx) or put the run \
         elsewhere (--out)",
        dir.display()
    )]
    RealSiteUnreadable {
        /// The server.
        server: RealServer,
        /// The directory others cannot enter or list.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A real server's configuration could not be written into the work directory.
    #[error("configuring {server} in {}: {error}", workdir.display())]
    RealConfig {
        /// The server.
        server: RealServer,
        /// The work directory.
        workdir: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// The server command's `ready_url` did not answer in time.
    #[error(
        "the server command did not answer at {ready_url} (port {port}) within {}; last try: \
         {last_try}{server}",
        humantime::format_duration(*.timeout)
    )]
    CommandNotReady {
        /// The URL.
        ready_url: String,
        /// The port it was given.
        port: u16,
        /// The ready timeout.
        timeout: Duration,
        /// Why the last probe failed.
        last_try: NoAnswer,
        /// Its command line and stderr.
        server: Box<ServerContext>,
    },
    /// The server command answers its `ready_url` but not where the clients connect.
    #[error(
        "the server command answers at {ready_url} but not at {addr}, where the clients \
         connect: make it listen on {{host}} (or on all addresses); {error}{server}"
    )]
    CommandWrongAddress {
        /// The URL that answered.
        ready_url: String,
        /// `listen_ip:PORT`, which did not.
        addr: SocketAddr,
        /// The probe's failure there.
        error: NoAnswer,
        /// Its command line and stderr.
        server: Box<ServerContext>,
    },
}

/// The lines a server printed on stdout before an error, as a block of an error message.
fn stdout_block(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\nstdout:\n{}", indent(&lines.join("\n")))
    }
}

/// A server under test, started (or found) and answering.
#[derive(Debug)]
pub struct ServerHandle {
    kind: Kind,
    addr: SocketAddr,
    /// A URL server's `host[:port]` exactly as the URL has it; `None` for started servers.
    authority: Option<String>,
    command_line: String,
    /// `None` for a URL: nothing was started, nothing is stopped.
    process: Option<Process>,
}

/// What `ServerHandle::stop` found.
#[derive(Clone, Debug, Default)]
pub struct StopOutcome {
    /// The built-in server's `--stats` JSON, the one it wrote at exit (`"final": true`); `None`
    /// for other kinds, when unreadable, or when the file holds only a snapshot taken while it
    /// ran (see `notes`).
    pub stats: Option<serde_json::Value>,
    /// How the server process ended, e.g. `exit status: 0` or `signal: 9 (SIGKILL)`.
    pub exit: String,
    /// The last lines of the server's stderr.
    pub stderr_tail: String,
    /// Anything unusual: a SIGKILL after the grace period, an early exit, missing stats.
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Builtin,
    Command,
    Real,
    Url,
}

impl ServerHandle {
    /// Starts the server the scenario describes and returns once it answers.
    ///
    /// - Builtin: runs `BUILTIN_EXE serve-builtin --root SITE --listen LISTEN_IP:0 --stats
    ///   WORKDIR/server-stats.json [--cpu N] ARGS...` (the scenario's `cpu` wins over
    ///   `options.server_cpu`), stderr to `WORKDIR/server.stderr`, and reads the address from the
    ///   `afterburner listening on ADDR` line on its stdout.
    /// - Command: picks a port free on `listen_ip`, fills in `{port}`, `{host}` (`listen_ip`),
    ///   `{root}` and `{workdir}`, runs it with `sh -c` in a new process group (pinned to the CPU
    ///   if one is given), stdout and stderr to `WORKDIR/server.stdout` and `.stderr`, and polls
    ///   `ready_url` every 50 ms until any HTTP status line comes back. The clients then go to
    ///   `LISTEN_IP:PORT`, which must answer too when it is not the `ready_url`'s address.
    /// - Real: finds the server's binary (an error names the Debian package when it is
    ///   missing), writes its configuration into WORKDIR for a free port on `listen_ip`
    ///   ([`real`]), and runs `exec BINARY ARGS...` as a command (same process group, pinning,
    ///   readiness poll of `http://LISTEN_IP:PORT/` and stop).
    /// - Url: checks once that the URL answers; nothing is started.
    ///
    /// A server that did not get ready is killed.
    pub fn start(spec: &ServerSpec, options: &TargetOptions) -> Result<ServerHandle, TargetError> {
        match spec {
            ServerSpec::Builtin { args, cpu } => {
                start_builtin(args, cpu.or(options.server_cpu), options)
            }
            ServerSpec::Command {
                command,
                ready_url,
                cpu,
            } => start_command(command, ready_url, cpu.or(options.server_cpu), options),
            ServerSpec::Real {
                server,
                workers,
                cpu,
            } => start_real(*server, *workers, cpu.or(options.server_cpu), options),
            ServerSpec::Url { url } => start_url(url, options),
        }
    }

    /// Where the clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` header value clients must send. For a URL server, the URL's authority
    /// exactly as written (`http://localhost:8080/` gives `localhost:8080`, `http://10.0.0.1/`
    /// gives `10.0.0.1`): virtual hosts are chosen by the name, not the address it resolved to.
    /// For the built-in and command servers, which were started on an address of ours,
    /// `IP:PORT` of [`ServerHandle::addr`] (`[IPv6]:PORT` for IPv6).
    pub fn host_header(&self) -> String {
        match &self.authority {
            Some(authority) => authority.clone(),
            None => self.addr.to_string(),
        }
    }

    /// The server process: the built-in child, or the command's `sh` (its process group's
    /// leader). `None` for a URL.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// What was run (or the URL), for the result file.
    pub fn command_line(&self) -> String {
        self.command_line.clone()
    }

    /// `"builtin"`, `"command"`, `"real"` or `"url"`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Builtin => "builtin",
            Kind::Command => "command",
            Kind::Real => "real",
            Kind::Url => "url",
        }
    }

    /// Without blocking: `Err(reason)` once the server process has exited, with its exit status
    /// and the tail of its stderr. Always `Ok` for a URL (nothing to watch but traffic).
    pub fn check_alive(&mut self) -> Result<(), String> {
        let Some(process) = &mut self.process else {
            return Ok(());
        };
        match process.poll_exit() {
            None => Ok(()),
            Some(exited) => Err(format!(
                "the server (pid {}) exited with {}{}",
                process.pid(),
                exited.text,
                process.context(&self.command_line)
            )),
        }
    }

    /// The built-in server's counters now, while it keeps serving: sends it SIGUSR1, waits (2 s
    /// at most, looking every 10 ms) until its `--stats` file holds a snapshot numbered higher
    /// than the one there before the signal, and returns that document: afterburner's `--stats`
    /// JSON, with `"snapshot": N` and `"final": false`. Counters run from the server's start, so
    /// a load point's share is the difference of two snapshots.
    ///
    /// `None` for command and URL servers (they keep no such counters, and a signal they do not
    /// expect might stop them), for a server that has exited, and when no newer snapshot came
    /// in time.
    pub fn stats_snapshot(&mut self) -> Option<serde_json::Value> {
        if self.kind != Kind::Builtin {
            return None;
        }
        let process = self.process.as_mut()?;
        let path = process.stats_path.clone()?;
        // Checked (and reaped) first: a reaped child's PID is never signalled.
        if process.poll_exit().is_some() {
            return None;
        }
        let before = read_stats(&path).map_or(0, |stats| snapshot_number(&stats));
        if !process.signal_leader(rustix::process::Signal::USR1) {
            return None;
        }
        let deadline = Instant::now() + SNAPSHOT_TIMEOUT;
        loop {
            // The server renames a whole file into place: a read sees the old one or the new.
            if let Ok(stats) = read_stats(&path) {
                if snapshot_number(&stats) > before {
                    return Some(stats);
                }
            }
            if Instant::now() >= deadline || process.poll_exit().is_some() {
                return None;
            }
            std::thread::sleep(SNAPSHOT_POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM (to the whole group for a command, to the process for the built-in server,
    /// which stops its own workers), waits up to `grace` for the server and everything in its
    /// process group to exit, then SIGKILLs the group and says so in `notes`. For the built-in
    /// server, reads back the `--stats` JSON it wrote at exit; a snapshot left by a server
    /// that died without its final write is not taken for it. A URL is left alone.
    pub fn stop(mut self, grace: Duration) -> StopOutcome {
        let Some(mut process) = self.process.take() else {
            return StopOutcome {
                exit: "not started by the loadgen".into(),
                ..StopOutcome::default()
            };
        };
        let mut notes = Vec::new();
        let deadline = Instant::now() + grace;
        let grace_text = humantime::format_duration(grace);

        if let Some(exited) = process.poll_exit() {
            notes.push(format!(
                "the server had already exited ({}) before it was asked to stop",
                exited.text
            ));
        } else {
            process.terminate();
            if !process.wait_until(deadline) {
                process.kill_all();
                notes.push(format!(
                    "the server did not exit within {grace_text} of SIGTERM; killed it with SIGKILL"
                ));
                process.wait_blocking();
            }
        }
        // `sh` may have ended while what it started is still finishing its replies.
        let pgid = process.pid();
        while group_has_live_members(pgid) && Instant::now() < deadline {
            std::thread::sleep(process::STOP_POLL_INTERVAL);
        }
        if group_has_live_members(pgid) {
            process.kill_all();
            notes.push(format!(
                "processes of the server's group {pgid} were still running {grace_text} after \
                 SIGTERM; killed them with SIGKILL"
            ));
        }

        let stats = process
            .stats_path
            .as_deref()
            .and_then(|path| match read_stats(path) {
                Ok(stats) if stats["final"] == true => Some(stats),
                Ok(stats) => {
                    // Counters up to some point of the run, not its end: reported as such.
                    notes.push(format!(
                        "no final server stats: {} holds only snapshot {}, written on SIGUSR1 \
                         while the server ran; it exited without writing its counters",
                        path.display(),
                        snapshot_number(&stats)
                    ));
                    None
                }
                Err(why) => {
                    notes.push(why);
                    None
                }
            });
        StopOutcome {
            stats,
            exit: process.poll_exit().map(|e| e.text).unwrap_or_default(),
            stderr_tail: process.stderr_tail(),
            notes,
        }
    }
}

fn start_builtin(
    args: &[String],
    cpu: Option<usize>,
    options: &TargetOptions,
) -> Result<ServerHandle, TargetError> {
    create_workdir(options.workdir)?;
    let stats_path = options.workdir.join("server-stats.json");
    // A stats file left from an earlier run must never pass for this run's.
    match fs::remove_file(&stats_path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(TargetError::Workdir {
                action: "removing the old",
                path: stats_path,
                error,
            })
        }
        _ => {}
    }
    let stderr_path = options.workdir.join("server.stderr");
    let stderr = create_file(&stderr_path)?;

    let mut argv: Vec<OsString> = vec![
        "serve-builtin".into(),
        "--root".into(),
        options.site_root.into(),
        "--listen".into(),
        SocketAddr::new(options.listen_ip, 0).to_string().into(),
        "--stats".into(),
        stats_path.clone().into(),
    ];
    if let Some(cpu) = cpu {
        argv.push("--cpu".into());
        argv.push(cpu.to_string().into());
    }
    argv.extend(args.iter().map(OsString::from));
    let command_line = std::iter::once(options.builtin_exe.as_os_str())
        .chain(argv.iter().map(OsString::as_os_str))
        .map(|arg| shell_quote(&arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");

    // The server pins itself (`--cpu`): it knows its one thread.
    let mut child = as_group_leader(&mut Command::new(options.builtin_exe), None)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|error| TargetError::Spawn {
            what: "the built-in server",
            command_line: command_line.clone(),
            error,
        })?;
    let lines = watch_stdout(child.stdout.take().expect("stdout is piped"));
    let mut process = Process::new(child, false, stderr_path, Some(stats_path));

    let deadline = Instant::now() + options.ready_timeout;
    let mut stdout_open = true;
    let mut other_lines = Vec::new();
    let addr = loop {
        if stdout_open {
            match lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => match line.strip_prefix(LISTENING_PREFIX) {
                    Some(addr) => match addr.trim().parse::<SocketAddr>() {
                        Ok(addr) => break addr,
                        Err(_) => {
                            return Err(TargetError::BadAnnouncement {
                                server: Box::new(process.context(&command_line)),
                                line,
                            })
                        }
                    },
                    None => other_lines.push(line),
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else {
            std::thread::sleep(POLL_INTERVAL);
        }
        if let Some(exited) = process.poll_exit() {
            return Err(TargetError::BuiltinExited {
                exit: exited.text,
                stdout: other_lines,
                server: Box::new(process.context(&command_line)),
            });
        }
        if Instant::now() >= deadline {
            // `process` is dropped on return: killed and reaped.
            return Err(TargetError::BuiltinNotListening {
                timeout: options.ready_timeout,
                stdout_closed: !stdout_open,
                stdout: other_lines,
                server: Box::new(process.context(&command_line)),
            });
        }
    };
    Ok(ServerHandle {
        kind: Kind::Builtin,
        addr,
        authority: None,
        command_line,
        process: Some(process),
    })
}

fn start_command(
    command: &str,
    ready_url: &str,
    cpu: Option<usize>,
    options: &TargetOptions,
) -> Result<ServerHandle, TargetError> {
    create_workdir(options.workdir)?;
    if let Some(cpu) = cpu {
        crate::os::check_cpu(cpu).map_err(|error| TargetError::Cpu { error })?;
    }
    let port = free_port(options.listen_ip)?;
    let port_text = port.to_string();
    let host_text = options.listen_ip.to_string();
    let root = options.site_root.to_string_lossy();
    let workdir = options.workdir.to_string_lossy();
    // Paths are quoted for the shell only when they need it, so that a command which quotes
    // `'{root}'` itself still works with ordinary paths.
    let command_line = command
        .replace("{port}", &port_text)
        .replace("{host}", &host_text)
        .replace("{root}", &shell_quote(&root))
        .replace("{workdir}", &shell_quote(&workdir));
    let ready_url = ready_url
        .replace("{port}", &port_text)
        .replace("{host}", &host_text)
        .replace("{root}", &root)
        .replace("{workdir}", &workdir);
    run_command(Kind::Command, command_line, ready_url, port, cpu, options)
}

/// Starts a real server: its configuration for a free port, then its binary as a command.
fn start_real(
    server: RealServer,
    workers: Option<u32>,
    cpu: Option<usize>,
    options: &TargetOptions,
) -> Result<ServerHandle, TargetError> {
    let binary = server
        .find_binary()
        .ok_or_else(|| TargetError::RealServerMissing {
            server,
            looked_for: server.binary_names().to_vec(),
            package: server.package(),
        })?;
    create_workdir(options.workdir)?;
    if let Some(cpu) = cpu {
        crate::os::check_cpu(cpu).map_err(|error| TargetError::Cpu { error })?;
    }
    let as_root = rustix::process::geteuid().is_root();
    if as_root && server.drops_root() {
        if let Some((dir, mode)) = real::not_readable_by_others(options.site_root) {
            return Err(TargetError::RealSiteUnreadable { server, dir, mode });
        }
    }
    let port = free_port(options.listen_ip)?;
    let addr = SocketAddr::new(options.listen_ip, port);
    let launch = real::configure(
        server,
        &real::ConfigInput {
            addr,
            site_root: options.site_root,
            workdir: options.workdir,
            workers: workers.unwrap_or_else(|| server.default_workers()),
            as_root,
            max_connections: real::connection_limit(),
        },
    )
    .map_err(|error| TargetError::RealConfig {
        server,
        workdir: options.workdir.to_path_buf(),
        error,
    })?;
    // `exec`: the server replaces the shell, so the group's leader is the server itself.
    let mut words = vec!["exec".to_string()];
    if !launch.env.is_empty() {
        words.push("env".into());
        words.extend(
            launch
                .env
                .iter()
                .map(|(key, value)| shell_quote(&format!("{key}={value}"))),
        );
    }
    words.push(shell_quote(&binary.to_string_lossy()));
    words.extend(
        launch
            .args
            .iter()
            .map(|a| shell_quote(&a.to_string_lossy())),
    );
    let ready_url = format!("http://{addr}/");
    run_command(Kind::Real, words.join(" "), ready_url, port, cpu, options)
}

/// Runs `command_line` with `sh -c` as a group leader and polls `ready_url` until it answers;
/// the clients then go to `listen_ip:port`.
fn run_command(
    kind: Kind,
    command_line: String,
    ready_url: String,
    port: u16,
    cpu: Option<usize>,
    options: &TargetOptions,
) -> Result<ServerHandle, TargetError> {
    let target = parse_http_url(&ready_url).map_err(|error| TargetError::BadUrl {
        key: "server.ready_url",
        url: ready_url.clone(),
        error,
    })?;

    let stdout = create_file(&options.workdir.join("server.stdout"))?;
    let stderr_path = options.workdir.join("server.stderr");
    let stderr = create_file(&stderr_path)?;
    let child = as_group_leader(&mut Command::new("sh"), cpu)
        .arg("-c")
        .arg(&command_line)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|error| TargetError::Spawn {
            what: "the server command",
            command_line: format!("sh -c {}", shell_quote(&command_line)),
            error,
        })?;
    let mut process = Process::new(child, true, stderr_path, None);

    let started = Instant::now();
    let deadline = started + options.ready_timeout;
    loop {
        if let Some(exited) = process.poll_exit() {
            return Err(TargetError::CommandExited {
                exit: exited.text,
                success: exited.success,
                ready_url,
                server: Box::new(process.context(&command_line)),
            });
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last_try = match probe(&target, remaining.min(PROBE_TIMEOUT_MAX)) {
            Ok(_) => break,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            // `process` is dropped on return: its group is killed and it is reaped.
            return Err(TargetError::CommandNotReady {
                ready_url,
                port,
                timeout: options.ready_timeout,
                last_try,
                server: Box::new(process.context(&command_line)),
            });
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
    let addr = SocketAddr::new(options.listen_ip, port);
    if target.addr != addr {
        // The clients connect here, not to the ready URL: a server bound to 127.0.0.1 alone
        // would pass the readiness probe and then refuse every client.
        let clients_target = HttpUrl {
            addr,
            authority: addr.to_string(),
            path: target.path.clone(),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Err(error) = probe(
            &clients_target,
            remaining.clamp(POLL_INTERVAL, PROBE_TIMEOUT_MAX),
        ) {
            return Err(TargetError::CommandWrongAddress {
                ready_url,
                addr,
                error,
                server: Box::new(process.context(&command_line)),
            });
        }
    }
    Ok(ServerHandle {
        kind,
        addr,
        authority: None,
        command_line,
        process: Some(process),
    })
}

fn start_url(url: &str, options: &TargetOptions) -> Result<ServerHandle, TargetError> {
    let target = parse_http_url(url).map_err(|error| TargetError::BadUrl {
        key: "server.url",
        url: url.to_string(),
        error,
    })?;
    probe(&target, options.ready_timeout).map_err(|error| TargetError::UrlNotAnswering {
        url: url.to_string(),
        error,
    })?;
    Ok(ServerHandle {
        kind: Kind::Url,
        addr: target.addr,
        authority: Some(target.authority),
        command_line: url.to_string(),
        process: None,
    })
}

fn create_workdir(workdir: &Path) -> Result<(), TargetError> {
    fs::create_dir_all(workdir).map_err(|error| TargetError::Workdir {
        action: "creating the work directory",
        path: workdir.to_path_buf(),
        error,
    })
}

fn create_file(path: &Path) -> Result<File, TargetError> {
    File::create(path).map_err(|error| TargetError::Workdir {
        action: "creating",
        path: path.to_path_buf(),
        error,
    })
}

/// A port free on `ip` right now (in the calling thread's namespace). Another process could
/// take it before the server binds it; the readiness probe then fails or the server reports
/// the bind error.
fn free_port(ip: IpAddr) -> Result<u16, TargetError> {
    TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| TargetError::NoFreePort { ip, error })
}

fn read_stats(path: &Path) -> Result<serde_json::Value, String> {
    let text = fs::read_to_string(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!(
                "no server stats: the server did not write {}",
                path.display()
            )
        } else {
            format!("no server stats: reading {}: {e}", path.display())
        }
    })?;
    serde_json::from_str(&text)
        .map_err(|e| format!("no server stats: {} is not JSON: {e}", path.display()))
}

/// The `"snapshot"` number of a `--stats` document; 0 when it has none.
fn snapshot_number(stats: &serde_json::Value) -> u64 {
    stats["snapshot"].as_u64().unwrap_or(0)
}

/// `word` as one shell word: unchanged when it is plainly safe, single-quoted otherwise.
fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@=%".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Finds the server at `url` (`{port}` filled in) on a listener of this test that answers
    /// the readiness probe once.
    fn found_at(url: &str) -> ServerHandle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url.replace("{port}", &listener.local_addr().unwrap().port().to_string());
        let answer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.read(&mut [0u8; 512]);
            stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        });
        let nowhere = Path::new("/nonexistent");
        let options = TargetOptions {
            builtin_exe: nowhere,
            site_root: nowhere,
            workdir: nowhere,
            server_cpu: None,
            ready_timeout: Duration::from_secs(5),
            listen_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let handle = start_url(&url, &options).unwrap();
        answer.join().unwrap();
        handle
    }

    #[test]
    fn the_host_header_is_the_urls_authority_or_the_started_servers_address() {
        let found = found_at("http://localhost:{port}/index.html");
        let port = found.addr().port();
        assert_eq!(found.addr(), SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(found.host_header(), format!("localhost:{port}"));
        // As written, case and all: no port added, none taken away.
        let found = found_at("http://LocalHost:{port}");
        assert_eq!(
            found.host_header(),
            format!("LocalHost:{}", found.addr().port())
        );
        let found = found_at("http://127.0.0.1:{port}/?q#top");
        assert_eq!(
            found.host_header(),
            format!("127.0.0.1:{}", found.addr().port())
        );

        let started = |kind, addr: &str| ServerHandle {
            kind,
            addr: addr.parse().unwrap(),
            authority: None,
            command_line: String::new(),
            process: None,
        };
        assert_eq!(
            started(Kind::Builtin, "127.0.0.1:41234").host_header(),
            "127.0.0.1:41234"
        );
        assert_eq!(
            started(Kind::Command, "198.18.0.1:8080").host_header(),
            "198.18.0.1:8080"
        );
        assert_eq!(
            started(Kind::Command, "[::1]:8080").host_header(),
            "[::1]:8080"
        );
    }

    #[test]
    fn shell_quoting_leaves_plain_paths_alone() {
        assert_eq!(shell_quote("/tmp/site-1/x.y"), "/tmp/site-1/x.y");
        assert_eq!(shell_quote("/tmp/my site"), "'/tmp/my site'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn errors_read_as_one_message_with_the_server_context() {
        let server = ServerContext {
            command_line: "true 8080".into(),
            stderr_path: "/w/server.stderr".into(),
            stderr_tail: String::new(),
        };
        let exited = TargetError::CommandExited {
            exit: "exit status: 0".into(),
            success: true,
            ready_url: "http://127.0.0.1:8080/".into(),
            server: Box::new(server.clone()),
        };
        assert_eq!(
            exited.to_string(),
            format!(
                "the server command exited with exit status: 0 before http://127.0.0.1:8080/ \
                 answered{DAEMON_HINT}\ncommand: true 8080\nstderr (/w/server.stderr): empty"
            )
        );
        let wrong = TargetError::CommandWrongAddress {
            ready_url: "http://127.0.0.1:8080/".into(),
            addr: "198.18.0.1:8080".parse().unwrap(),
            error: NoAnswer::Closed {
                addr: "198.18.0.1:8080".parse().unwrap(),
            },
            server: Box::new(server.clone()),
        };
        assert!(
            wrong
                .to_string()
                .contains("make it listen on {host} (or on all addresses); "),
            "{wrong}"
        );
        let silent = TargetError::BuiltinNotListening {
            timeout: Duration::from_secs(15),
            stdout_closed: true,
            stdout: vec!["hello".into()],
            server: Box::new(server),
        };
        assert!(
            silent.to_string().starts_with(
                "the built-in server did not print `afterburner listening on ADDR` within 15s \
                 (it closed its stdout)\nstdout:\n  hello\ncommand: "
            ),
            "{silent}"
        );
        let port = TargetError::NoFreePort {
            ip: "198.18.0.1".parse().unwrap(),
            error: io::Error::from(io::ErrorKind::AddrNotAvailable),
        };
        assert!(
            port.to_string().contains("(start the server from inside"),
            "{port}"
        );
    }
}
