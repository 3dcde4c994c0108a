//! The server's process, as the operating system sees it: started as the leader of a process
//! group of its own (pinned to a CPU before it runs anything, when asked), signalled by group,
//! reaped once, and killed with everything it started when its handle goes away. Also what it
//! leaves behind to read: its stdout, while it starts, and the tail of its stderr.
//!
//! A group ID stays reserved while any member lives, so signalling our groups is safe; a
//! child's PID only until it is reaped, so a reaped child is never signalled by PID.
//!
//! Not here: what to start and when it counts as ready (`ServerHandle::start`, `ready`).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, Pid, Signal};

/// Lines of the server's stderr quoted in errors and in the stop outcome.
pub(super) const STDERR_TAIL_LINES: usize = 20;
/// How much of the end of the stderr file is read to find those lines: a server that logged
/// gigabytes must not make an error message expensive.
const STDERR_TAIL_BYTES: u64 = 64 * 1024;
/// Period of the exit checks while stopping: short, because a stop's latency ends the run.
pub(super) const STOP_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Makes `command` start as the leader of a process group of its own, pinned to `cpu` before
/// it runs anything when one is given. Pinning happens between fork and exec rather than by
/// PID afterwards: `sh` may start the server before the parent gets to it, and only what is
/// pinned before the fork inherits it.
pub(super) fn as_group_leader(command: &mut Command, cpu: Option<usize>) -> &mut Command {
    command.process_group(0);
    if let Some(cpu) = cpu {
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe work is allowed: `pin_this_process_raw` makes one syscall on a
        // stack value and allocates nothing (the caller checked the CPU beforehand, so no
        // error message needs building).
        unsafe {
            command.pre_exec(move || crate::os::pin_this_process_raw(cpu));
        }
    }
    command
}

/// How a server process ended.
#[derive(Clone, Debug)]
pub(super) struct Exited {
    /// `exit status: 3`, `signal: 9 (SIGKILL)`.
    pub(super) text: String,
    pub(super) success: bool,
}

impl From<ExitStatus> for Exited {
    fn from(status: ExitStatus) -> Exited {
        Exited {
            text: status.to_string(),
            success: status.success(),
        }
    }
}

/// A process the loadgen started, leader of its own process group. Dropping it kills the group
/// and reaps the leader, so an error or a panic anywhere never leaves a server behind.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) child: Child,
    /// SIGTERM goes to the whole group (a command: `sh` may not pass it on), not only the leader.
    pub(super) terminate_group: bool,
    pub(super) stderr_path: PathBuf,
    /// The built-in server's `--stats` file.
    pub(super) stats_path: Option<PathBuf>,
    /// Set once the child has been reaped; after that its PID may belong to someone else and
    /// is never signalled again.
    exited: Option<Exited>,
}

impl Process {
    /// A freshly spawned group leader (see [`as_group_leader`]).
    pub(super) fn new(
        child: Child,
        terminate_group: bool,
        stderr_path: PathBuf,
        stats_path: Option<PathBuf>,
    ) -> Process {
        Process {
            child,
            terminate_group,
            stderr_path,
            stats_path,
            exited: None,
        }
    }

    /// The leader's PID, which is also the group's ID.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reaps the child if it has exited, without blocking.
    pub(super) fn poll_exit(&mut self) -> Option<Exited> {
        if self.exited.is_none() {
            self.exited = match self.child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.into()),
                // Only possible if someone else reaped it (SIGCHLD ignored): it is gone.
                Err(e) => Some(self.unknown_exit(e)),
            };
        }
        self.exited.clone()
    }

    /// Polls until the child exited (true) or `deadline` passed (false).
    pub(super) fn wait_until(&mut self, deadline: Instant) -> bool {
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

    /// Waits for the child to exit and reaps it.
    pub(super) fn wait_blocking(&mut self) {
        if self.exited.is_none() {
            self.exited = Some(match self.child.wait() {
                Ok(status) => status.into(),
                Err(e) => self.unknown_exit(e),
            });
        }
    }

    fn unknown_exit(&self, error: io::Error) -> Exited {
        Exited {
            text: format!(
                "an unknown status (waiting for pid {} failed: {error})",
                self.pid()
            ),
            success: false,
        }
    }

    /// Asks the server to stop: SIGTERM to the group or to the leader while it is not reaped.
    pub(super) fn terminate(&self) {
        if self.terminate_group {
            signal_group(self.pid(), Signal::TERM);
        } else {
            // If it is exiting anyway, the failed signal changes nothing.
            let _ = self.signal_leader(Signal::TERM);
        }
    }

    /// Sends `signal` to the leader alone; false if it was already reaped (its PID may be
    /// someone else's by now) or the kill failed.
    pub(super) fn signal_leader(&self, signal: Signal) -> bool {
        if self.exited.is_some() {
            return false;
        }
        // Our child, not yet reaped, so its PID is not reused.
        Pid::from_raw(self.pid() as i32).is_some_and(|pid| kill_process(pid, signal).is_ok())
    }

    /// SIGKILL to the whole group.
    pub(super) fn kill_all(&self) {
        signal_group(self.pid(), Signal::KILL);
    }

    /// The last lines of the server's stderr (read from the end of the file only), or why
    /// they cannot be read.
    pub(super) fn stderr_tail(&self) -> String {
        stderr_tail(&self.stderr_path)
    }

    /// What an error about this server should show besides its own words.
    pub(super) fn context(&self, command_line: &str) -> ServerContext {
        ServerContext {
            command_line: command_line.to_string(),
            stderr_path: self.stderr_path.clone(),
            stderr_tail: self.stderr_tail(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_none() || group_has_live_members(self.pid()) {
            // Kill before reaping: the zombie keeps the group ID ours meanwhile.
            self.kill_all();
        }
        self.wait_blocking();
    }
}

/// A started server's command line and the tail of its stderr: what an error about it shows,
/// on lines of their own after the error's first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerContext {
    /// The command line that was run.
    pub command_line: String,
    /// Where its stderr went.
    pub stderr_path: PathBuf,
    /// Its last lines (20 at most) at the time of the error.
    pub stderr_tail: String,
}

impl fmt::Display for ServerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\ncommand: {}\n", self.command_line)?;
        // A run refused before measuring removes its directory, stderr file included: name the
        // file only while it is there to be read.
        let path = self
            .stderr_path
            .exists()
            .then(|| self.stderr_path.display().to_string());
        match (path, self.stderr_tail.trim().is_empty()) {
            (Some(path), true) => write!(f, "stderr ({path}): empty"),
            (None, true) => write!(f, "stderr: empty"),
            (Some(path), false) => write!(
                f,
                "stderr ({path}, last {STDERR_TAIL_LINES} lines at most):\n{}",
                indent(&self.stderr_tail)
            ),
            (None, false) => write!(
                f,
                "stderr (last {STDERR_TAIL_LINES} lines at most):\n{}",
                indent(&self.stderr_tail)
            ),
        }
    }
}

/// `text` with each line indented by two spaces.
pub(super) fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sends `signal` to the process group `pgid`. The group was created by `process_group(0)` for
/// our child; its ID stays reserved while any member lives (or the leader is unreaped), and a
/// group already gone has nobody left to signal.
fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pgid) = Pid::from_raw(pgid as i32) {
        let _ = kill_process_group(pgid, signal);
    }
}

/// Whether a process group still has members that are not zombies. `kill(-pgid, 0)` would count
/// zombies too, and an orphaned member's zombie may linger when PID 1 does not reap (containers).
pub(super) fn group_has_live_members(pgid: u32) -> bool {
    let Ok(processes) = procfs::process::all_processes() else {
        return false;
    };
    processes
        .flatten()
        .filter_map(|process| process.stat().ok())
        .any(|stat| stat.pgrp == pgid as i32 && !matches!(stat.state, 'Z' | 'X'))
}

/// Reads the server's stdout on a thread of its own and passes each line on. After the
/// listening line nobody listens any more, but the thread keeps draining the pipe so that a
/// chatty server never blocks on a full one.
pub(super) fn watch_stdout(stdout: ChildStdout) -> Receiver<String> {
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

/// The last lines of the file at `path` (read from the end of the file only).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("err");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = stderr_tail(&path);
        assert_eq!(tail.lines().count(), STDERR_TAIL_LINES);
        assert!(
            tail.starts_with("line 31\n") && tail.ends_with("line 50"),
            "{tail}"
        );
        assert!(stderr_tail(&dir.path().join("missing")).contains("cannot read"));
    }

    #[test]
    fn the_context_quotes_the_command_and_the_indented_tail() {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("server.stderr");
        std::fs::write(&stderr_path, "boom\nbang\n").unwrap();
        let context = ServerContext {
            command_line: "sh -c 'exit 3'".into(),
            stderr_path: stderr_path.clone(),
            stderr_tail: "boom\nbang".into(),
        };
        assert_eq!(
            context.to_string(),
            format!(
                "\ncommand: sh -c 'exit 3'\n\
                 stderr ({}, last 20 lines at most):\n  boom\n  bang",
                stderr_path.display()
            )
        );
        let quiet = ServerContext {
            stderr_tail: " \n".into(),
            ..context.clone()
        };
        assert!(quiet
            .to_string()
            .ends_with(&format!("stderr ({}): empty", stderr_path.display())));
        // Once its run directory is removed (a run refused before measuring), the file is not
        // named; the tail quoted is all there is.
        std::fs::remove_file(&stderr_path).unwrap();
        assert!(context
            .to_string()
            .ends_with("stderr (last 20 lines at most):\n  boom\n  bang"));
        assert!(quiet.to_string().ends_with("stderr: empty"));
    }

    #[test]
    fn a_group_leader_and_its_children_are_killed_together() {
        let mut shell = Command::new("sh");
        shell.args(["-c", "sleep 30 & sleep 30 & wait"]);
        let child = as_group_leader(&mut shell, None).spawn().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut process = Process::new(child, true, dir.path().join("none"), None);
        let pgid = process.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_members(pgid) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(group_members(pgid), 3, "sh and its two sleeps");
        assert!(process.poll_exit().is_none());
        process.terminate();
        assert!(process.wait_until(Instant::now() + Duration::from_secs(5)));
        assert!(process.poll_exit().unwrap().text.contains("SIGTERM"));
        drop(process);
        let deadline = Instant::now() + Duration::from_secs(3);
        while group_has_live_members(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!group_has_live_members(pgid));
    }

    /// Live members of the process group `pgid`, counted independently of procfs.
    fn group_members(pgid: u32) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
                fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X")
            })
            .count()
    }
}
