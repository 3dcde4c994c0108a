//! The server under test: start it (the built-in `afterburner` as a child of the loadgen, any
//! command line, or a server already running at a URL), wait until it answers, watch it during
//! the run, stop it and read back what it reports.
//!
//! This is process plumbing only; nothing here measures traffic. The probe that decides "it
//! answers" is one blocking HTTP/1.0 GET over a std `TcpStream`, never the engine.
//!
//! Started servers lead a process group of their own. A Ctrl-C at the terminal then reaches
//! only the loadgen, which can stop its clients first and the server second and still read the
//! server's stats; and everything the server starts (a command's `sh` and its children, the
//! workers of a forking design) can be killed with one signal, so nothing is left behind. The
//! flip side: a loadgen killed without unwinding (SIGINT not handled, SIGKILL) leaves the server
//! running, so `main` must catch SIGINT. A panic is covered: dropping a handle kills what it
//! started.
//!
//! A group ID stays reserved while any member lives, so signalling our groups is safe; a
//! child's PID only until it is reaped, so a reaped child is never signalled by PID.
//!
//! Network namespaces: a child starts in the namespace of the thread that spawns it. In the
//! split mode of `isolation` (server and clients in two namespaces joined by a veth pair) call
//! [`ServerHandle::start`] from inside the server's namespace
//! (`SplitNetwork::in_server_namespace`) with `TargetOptions::listen_ip` set to the server's
//! address there (198.18.0.1); the handle works from any namespace afterwards. A command server
//! must then listen where the clients can reach it: `{host}` in its command line is
//! `listen_ip`, and a command that answers its `ready_url` but not `listen_ip:PORT` is reported.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::scenario::ServerSpec;

/// Lines of the server's stderr quoted in errors and in the stop outcome.
const STDERR_TAIL_LINES: usize = 20;
/// How much of the end of the stderr file is read to find those lines: a server that logged
/// gigabytes must not make an error message expensive.
const STDERR_TAIL_BYTES: u64 = 64 * 1024;
/// Readiness polling period.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Period of the exit checks while stopping: short, because a stop's latency ends the run.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// One readiness probe may take this long before the next one starts.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(1);
/// What `afterburner` prints on stdout, once, when it listens.
const LISTENING_PREFIX: &str = "afterburner listening on ";

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

/// A server under test, started (or found) and answering.
#[derive(Debug)]
pub struct ServerHandle {
    kind: Kind,
    addr: SocketAddr,
    command_line: String,
    /// `None` for a URL: nothing was started, nothing is stopped.
    process: Option<Process>,
}

/// What `ServerHandle::stop` found.
#[derive(Clone, Debug, Default)]
pub struct StopOutcome {
    /// The built-in server's `--stats` JSON; `None` for other kinds or when unreadable (see
    /// `notes`).
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
    /// - Url: checks once that the URL answers; nothing is started.
    ///
    /// Errors name the command line or URL, and quote the exit status and the stderr tail when
    /// the server exited or did not get ready in `options.ready_timeout`; a server that did not
    /// get ready is killed.
    pub fn start(spec: &ServerSpec, options: &TargetOptions) -> Result<ServerHandle> {
        match spec {
            ServerSpec::Builtin { args, cpu } => {
                start_builtin(args, cpu.or(options.server_cpu), options)
            }
            ServerSpec::Command {
                command,
                ready_url,
                cpu,
            } => start_command(command, ready_url, cpu.or(options.server_cpu), options),
            ServerSpec::Url { url } => start_url(url, options),
        }
    }

    /// Where the clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server process: the built-in child, or the command's `sh` (its process group's
    /// leader). `None` for a URL.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    /// What was run (or the URL), for the result file.
    pub fn command_line(&self) -> String {
        self.command_line.clone()
    }

    /// `"builtin"`, `"command"` or `"url"`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Builtin => "builtin",
            Kind::Command => "command",
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
                process.child.id(),
                exited.text,
                context_block(&self.command_line, &process.stderr_path)
            )),
        }
    }

    /// Sends SIGTERM (to the whole group for a command, to the process for the built-in server,
    /// which stops its own workers), waits up to `grace` for the server and everything in its
    /// process group to exit, then SIGKILLs the group and says so in `notes`. For the built-in server, reads back its
    /// `--stats` JSON. A URL is left alone.
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
        let pgid = process.child.id();
        while group_has_live_members(pgid) && Instant::now() < deadline {
            std::thread::sleep(STOP_POLL_INTERVAL);
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
                Ok(stats) => Some(stats),
                Err(why) => {
                    notes.push(why);
                    None
                }
            });
        StopOutcome {
            stats,
            exit: process.poll_exit().map(|e| e.text).unwrap_or_default(),
            stderr_tail: stderr_tail(&process.stderr_path),
            notes,
        }
    }
}

/// How a server process ended.
#[derive(Clone, Debug)]
struct Exited {
    /// `exit status: 3`, `signal: 9 (SIGKILL)`.
    text: String,
    success: bool,
}

/// A process the loadgen started, leader of its own process group. Dropping it kills the group
/// and reaps the leader, so an error or a panic anywhere never leaves a server behind.
#[derive(Debug)]
struct Process {
    child: Child,
    /// SIGTERM goes to the whole group (a command: `sh` may not pass it on), not only the leader.
    terminate_group: bool,
    stderr_path: PathBuf,
    /// The built-in server's `--stats` file.
    stats_path: Option<PathBuf>,
    /// Set once the child has been reaped; after that its PID may belong to someone else and
    /// is never signalled again.
    exited: Option<Exited>,
}

impl Process {
    /// Reaps the child if it has exited, without blocking.
    fn poll_exit(&mut self) -> Option<Exited> {
        if self.exited.is_none() {
            self.exited = match self.child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(exited(status)),
                // Only possible if someone else reaped it (SIGCHLD ignored): it is gone.
                Err(e) => Some(Exited {
                    text: format!(
                        "an unknown status (waiting for pid {} failed: {e})",
                        self.child.id()
                    ),
                    success: false,
                }),
            };
        }
        self.exited.clone()
    }

    /// Polls until the child exited (true) or `deadline` passed (false).
    fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.poll_exit().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(STOP_POLL_INTERVAL);
        }
    }

    fn wait_blocking(&mut self) {
        if self.exited.is_none() {
            self.exited = Some(match self.child.wait() {
                Ok(status) => exited(status),
                Err(e) => Exited {
                    text: format!(
                        "an unknown status (waiting for pid {} failed: {e})",
                        self.child.id()
                    ),
                    success: false,
                },
            });
        }
    }

    /// Asks the server to stop: SIGTERM to the group or to the leader while it is not reaped.
    fn terminate(&self) {
        let pid = self.child.id();
        if self.terminate_group {
            signal_group(pid, libc::SIGTERM);
        } else if self.exited.is_none() {
            // SAFETY: plain syscall; the PID is our child, not yet reaped, so not reused.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// SIGKILL to the whole group.
    fn kill_all(&self) {
        signal_group(self.child.id(), libc::SIGKILL);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_none() || group_has_live_members(self.child.id()) {
            // Kill before reaping: the zombie keeps the group ID ours meanwhile.
            self.kill_all();
        }
        self.wait_blocking();
    }
}

fn exited(status: ExitStatus) -> Exited {
    Exited {
        text: status.to_string(),
        success: status.success(),
    }
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: plain syscall. The group was created by `process_group(0)` for our child; its ID
    // stays reserved while any member lives (or the leader is unreaped).
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
}

/// Whether a process group still has members that are not zombies. `kill(-pgid, 0)` would count
/// zombies too, and an orphaned member's zombie may linger when PID 1 does not reap (containers).
fn group_has_live_members(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may contain anything, so parse after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        pgrp == Some(pgid.to_string().as_str()) && !matches!(state, Some("Z" | "X"))
    })
}

fn start_builtin(
    args: &[String],
    cpu: Option<usize>,
    options: &TargetOptions,
) -> Result<ServerHandle> {
    create_workdir(options.workdir)?;
    let stats_path = options.workdir.join("server-stats.json");
    // A stats file left from an earlier run must never pass for this run's.
    match fs::remove_file(&stats_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", stats_path.display()))
        }
        _ => {}
    }
    let stderr_path = options.workdir.join("server.stderr");
    let stderr = File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;

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

    let mut child = Command::new(options.builtin_exe)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // Its own group: see the top of this file.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the built-in server: {command_line}"))?;
    let lines = watch_stdout(child.stdout.take().expect("stdout is piped"));
    let mut process = Process {
        child,
        terminate_group: false,
        stderr_path,
        stats_path: Some(stats_path),
        exited: None,
    };

    let deadline = Instant::now() + options.ready_timeout;
    let mut stdout_open = true;
    let mut other_lines = Vec::new();
    let addr = loop {
        if stdout_open {
            match lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => match line.strip_prefix(LISTENING_PREFIX) {
                    Some(addr) => match addr.trim().parse::<SocketAddr>() {
                        Ok(addr) => break addr,
                        Err(_) => bail!(
                            "the built-in server announced an address that is not one: `{line}`{}",
                            context_block(&command_line, &process.stderr_path)
                        ),
                    },
                    None => other_lines.push(line),
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else {
            std::thread::sleep(POLL_INTERVAL);
        }
        let stdout_text = if other_lines.is_empty() {
            String::new()
        } else {
            format!("\nstdout:\n{}", indent(&other_lines.join("\n")))
        };
        if let Some(exited) = process.poll_exit() {
            bail!(
                "the built-in server exited with {} before it was listening{stdout_text}{}",
                exited.text,
                context_block(&command_line, &process.stderr_path)
            );
        }
        if Instant::now() >= deadline {
            // `process` is dropped on return: killed and reaped.
            bail!(
                "the built-in server did not print `{LISTENING_PREFIX}ADDR` within {}{}{stdout_text}{}",
                humantime::format_duration(options.ready_timeout),
                if stdout_open { "" } else { " (it closed its stdout)" },
                context_block(&command_line, &process.stderr_path)
            );
        }
    };
    Ok(ServerHandle {
        kind: Kind::Builtin,
        addr,
        command_line,
        process: Some(process),
    })
}

/// Reads the server's stdout on a thread of its own and passes each line on. After the
/// listening line nobody listens any more, but the thread keeps draining the pipe so that a
/// chatty server never blocks on a full one.
fn watch_stdout(stdout: ChildStdout) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("server-stdout".into())
        .spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_string();
                        if sender.send(text).is_err() {
                            let _ = io::copy(&mut reader, &mut io::sink());
                            break;
                        }
                    }
                }
            }
        });
    // Without the thread the receiver reports a disconnect at once and the start times out on
    // the server's exit or the deadline, which is the best we can do anyway.
    drop(spawned);
    receiver
}

fn start_command(
    command: &str,
    ready_url: &str,
    cpu: Option<usize>,
    options: &TargetOptions,
) -> Result<ServerHandle> {
    create_workdir(options.workdir)?;
    if let Some(cpu) = cpu {
        crate::os::check_cpu(cpu).context("server cpu")?;
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
    let target =
        parse_http_url(&ready_url).map_err(|e| anyhow!("server.ready_url `{ready_url}`: {e}"))?;

    let stdout_path = options.workdir.join("server.stdout");
    let stderr_path = options.workdir.join("server.stderr");
    let stdout = File::create(&stdout_path)
        .with_context(|| format!("creating {}", stdout_path.display()))?;
    let stderr = File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(&command_line)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if let Some(cpu) = cpu {
        // Pinned between fork and exec rather than by PID afterwards: `sh` may start the server
        // before the parent gets to it, and only what is pinned before the fork inherits it.
        // SAFETY: the closure only makes one syscall on a stack value (async-signal-safe);
        // `check_cpu` made sure the index is inside `cpu_set_t`.
        unsafe {
            shell.pre_exec(move || crate::os::pin_this_process_raw(cpu));
        }
    }
    let child = shell.spawn().with_context(|| {
        format!(
            "starting the server command: sh -c {}",
            shell_quote(&command_line)
        )
    })?;
    let mut process = Process {
        child,
        terminate_group: true,
        stderr_path,
        stats_path: None,
        exited: None,
    };

    let started = Instant::now();
    let deadline = started + options.ready_timeout;
    loop {
        if let Some(exited) = process.poll_exit() {
            let hint = if exited.success {
                " (a server command must stay in the foreground: no daemon mode, e.g. nginx -g 'daemon off;')"
            } else {
                ""
            };
            bail!(
                "the server command exited with {} before {ready_url} answered{hint}{}",
                exited.text,
                context_block(&command_line, &process.stderr_path)
            );
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last_error = match probe(&target, remaining.min(PROBE_TIMEOUT_MAX)) {
            Ok(_) => break,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            // `process` is dropped on return: its group is killed and it is reaped.
            bail!(
                "the server command did not answer at {ready_url} (port {port}) within {}; last try: {last_error}{}",
                humantime::format_duration(options.ready_timeout),
                context_block(&command_line, &process.stderr_path)
            );
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
        if let Err(e) = probe(
            &clients_target,
            remaining.clamp(POLL_INTERVAL, PROBE_TIMEOUT_MAX),
        ) {
            bail!(
                "the server command answers at {ready_url} but not at {addr}, where the clients \
                 connect: make it listen on {{host}} (or on all addresses); {e}{}",
                context_block(&command_line, &process.stderr_path)
            );
        }
    }
    Ok(ServerHandle {
        kind: Kind::Command,
        addr,
        command_line,
        process: Some(process),
    })
}

fn start_url(url: &str, options: &TargetOptions) -> Result<ServerHandle> {
    let target = parse_http_url(url).map_err(|e| anyhow!("server.url `{url}`: {e}"))?;
    probe(&target, options.ready_timeout)
        .map_err(|e| anyhow!("the server at {url} does not answer: {e}"))?;
    Ok(ServerHandle {
        kind: Kind::Url,
        addr: target.addr,
        command_line: url.to_string(),
        process: None,
    })
}

fn create_workdir(workdir: &Path) -> Result<()> {
    fs::create_dir_all(workdir)
        .with_context(|| format!("creating the work directory {}", workdir.display()))
}

/// A port free on `ip` right now (in the calling thread's namespace). Another process could
/// take it before the server binds it; the readiness probe then fails or the server reports
/// the bind error.
fn free_port(ip: IpAddr) -> Result<u16> {
    let context = || {
        format!(
            "finding a free port on {ip}{}",
            if ip.is_loopback() {
                ""
            } else {
                " (start the server from inside the namespace that has that address)"
            }
        )
    };
    let listener = TcpListener::bind((ip, 0)).with_context(context)?;
    Ok(listener.local_addr().with_context(context)?.port())
}

/// An `http://` URL reduced to what the probe needs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HttpUrl {
    addr: SocketAddr,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// The path and query, `/` when empty.
    path: String,
}

/// Parses `http://HOST[:PORT][/PATH]`, HOST being an IPv4 literal, a bracketed IPv6 literal or
/// `localhost` (taken as 127.0.0.1). Names are not resolved: the clients need one address, and
/// a benchmark should not depend on DNS.
fn parse_http_url(text: &str) -> std::result::Result<HttpUrl, String> {
    let Some(rest) = text.strip_prefix("http://") else {
        return Err(if text.starts_with("https://") {
            "https is not supported; give an http:// URL".into()
        } else {
            "not an http:// URL".into()
        });
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err("user names in URLs are not supported".into());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address must end with `]`")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected `:PORT` after `]`")?,
            ),
        };
        let ip: IpAddr = host
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{host}` is not an IPv6 address"))?
            .into();
        (ip, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST.into()
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            ip.into()
        } else if port.is_some_and(|p| p.contains(':')) {
            return Err("IPv6 addresses go in brackets: http://[::1]:8080/".into());
        } else if host.is_empty() {
            return Err("the host is missing".into());
        } else {
            return Err(format!(
                "host `{host}` must be an IP address or localhost (names are not resolved)"
            ));
        };
        (ip, port)
    };
    let port = match port {
        None => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("`{port}` is not a port (1-65535)")),
            Ok(port) => port,
        },
    };
    Ok(HttpUrl {
        addr: SocketAddr::new(host, port),
        authority: authority.to_string(),
        path,
    })
}

/// One HTTP/1.0 GET; `Ok(status line)` if anything that looks like an HTTP status line comes
/// back (any status: a 404 still proves the server is up), otherwise what went wrong.
fn probe(target: &HttpUrl, timeout: Duration) -> std::result::Result<String, String> {
    // `connect_timeout` refuses a zero duration.
    let timeout = timeout.max(Duration::from_millis(1));
    let mut stream = TcpStream::connect_timeout(&target.addr, timeout)
        .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
    let io_error = |e: io::Error| format!("talking to {}: {e}", target.addr);
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: loadgen\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io_error)?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
            Err(e) => return Err(io_error(e)),
        }
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first_line).trim_end().to_string();
    if is_status_line(&line) {
        Ok(line)
    } else if head.is_empty() {
        Err(format!(
            "{} closed the connection without answering",
            target.addr
        ))
    } else {
        Err(format!(
            "{} answered `{}`, not an HTTP status line",
            target.addr,
            line.escape_debug()
        ))
    }
}

/// `HTTP/1.1 200 OK`, `HTTP/1.0 404`: a version, a space, three digits.
fn is_status_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("HTTP/") else {
        return false;
    };
    let Some((_, after_version)) = rest.split_once(' ') else {
        return false;
    };
    let code = after_version.as_bytes();
    code.len() >= 3
        && code[..3].iter().all(u8::is_ascii_digit)
        && (code.len() == 3 || code[3] == b' ')
}

fn read_stats(path: &Path) -> std::result::Result<serde_json::Value, String> {
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

/// The last lines of the server's stderr (read from the end of the file only).
fn stderr_tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let start = len.saturating_sub(STDERR_TAIL_BYTES);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0); // probably cut in the middle
        }
        let first = lines.len().saturating_sub(STDERR_TAIL_LINES);
        Ok(lines[first..].join("\n"))
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// The lines appended to an error about a started server: its command line and stderr tail.
fn context_block(command_line: &str, stderr_path: &Path) -> String {
    let tail = stderr_tail(stderr_path);
    let mut text = format!("\ncommand: {command_line}\n");
    if tail.trim().is_empty() {
        let _ = write!(text, "stderr ({}): empty", stderr_path.display());
    } else {
        let _ = write!(
            text,
            "stderr ({}, last {STDERR_TAIL_LINES} lines at most):\n{}",
            stderr_path.display(),
            indent(&tail)
        );
    }
    text
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
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
    use super::*;

    #[test]
    fn urls_parse_with_default_port_and_path() {
        let url = parse_http_url("http://127.0.0.1:8080/index.html?x=1").unwrap();
        assert_eq!(url.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(url.path, "/index.html?x=1");
        assert_eq!(url.authority, "127.0.0.1:8080");

        let url = parse_http_url("http://localhost").unwrap();
        assert_eq!(url.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(url.path, "/");

        let url = parse_http_url("http://[::1]:81/a").unwrap();
        assert_eq!(url.addr, "[::1]:81".parse().unwrap());
        assert_eq!(url.path, "/a");
        assert_eq!(parse_http_url("http://[::1]").unwrap().addr.port(), 80);
        assert_eq!(parse_http_url("http://10.0.0.1?q").unwrap().path, "/?q");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(parse_http_url("https://127.0.0.1/")
            .unwrap_err()
            .contains("https"));
        assert!(parse_http_url("ftp://x/").unwrap_err().contains("http://"));
        assert!(parse_http_url("http://example.com/")
            .unwrap_err()
            .contains("example.com"));
        assert!(parse_http_url("http://127.0.0.1:0/")
            .unwrap_err()
            .contains("`0`"));
        assert!(parse_http_url("http://127.0.0.1:99999/")
            .unwrap_err()
            .contains("99999"));
        assert!(parse_http_url("http://::1/")
            .unwrap_err()
            .contains("brackets"));
        assert!(parse_http_url("http:///x").unwrap_err().contains("missing"));
        assert!(parse_http_url("http://[::1/").unwrap_err().contains("]"));
    }

    #[test]
    fn status_lines_are_recognised() {
        assert!(is_status_line("HTTP/1.1 200 OK"));
        assert!(is_status_line("HTTP/1.0 404"));
        assert!(!is_status_line("SSH-2.0-OpenSSH_9.6"));
        assert!(!is_status_line("HTTP/1.1 20"));
        assert!(!is_status_line("HTTP/1.1 2000 OK"));
    }

    #[test]
    fn shell_quoting_leaves_plain_paths_alone() {
        assert_eq!(shell_quote("/tmp/site-1/x.y"), "/tmp/site-1/x.y");
        assert_eq!(shell_quote("/tmp/my site"), "'/tmp/my site'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("err");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = stderr_tail(&path);
        assert_eq!(tail.lines().count(), STDERR_TAIL_LINES);
        assert!(
            tail.starts_with("line 31\n") && tail.ends_with("line 50"),
            "{tail}"
        );
        assert!(stderr_tail(&dir.path().join("missing")).contains("cannot read"));
    }
}
