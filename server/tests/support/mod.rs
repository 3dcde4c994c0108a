//! Shared helpers for the black-box tests: a temporary site, starting and stopping the real
//! `afterburner` binary (port from its stdout, SIGTERM, `--stats` JSON at exit and SIGUSR1
//! snapshots; optionally under a low descriptor limit), raw HTTP/1.x clients with timeouts over
//! plain TCP, a reader of /proc/net/tcp{,6} that tells which side of a test's own connection
//! holds TIME_WAIT and how many bytes wait in its queues, and the server's CPU time and memory
//! (its child processes included) from /proc.
//!
//! Nothing here knows the server's internals: every check goes through sockets, signals, exit
//! codes and files, as a user of the binary would see them.

// Each test file compiles this module separately and uses only part of it.
#![allow(dead_code, unused_macros)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for any single blocking socket operation in a test. Generous, because tests run
/// in parallel on a small machine; a healthy server answers within milliseconds.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a SIGTERM'd server may take to exit (well above the `--grace` the tests use).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a SIGUSR1'd server may take to write its snapshot: milliseconds when healthy, but
/// tests run in parallel on a small machine.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift64*), so a body with a lost, repeated or reordered
/// chunk never compares equal to the original.
pub fn pattern_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A temporary directory holding the site root (`<dir>/site`) plus room outside the root for
/// reftab files, the stats file and "secret" files that must never be served.
pub struct Site {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("create tempdir");
        let root = dir.path().join("site");
        fs::create_dir(&root).expect("create site root");
        Site { dir, root }
    }

    /// Writes `bytes` to `rel` under the site root, creating parent directories.
    pub fn file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> &Site {
        let path = self.root.join(rel.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).expect("create site subdir");
        fs::write(&path, bytes).expect("write site file");
        self
    }

    /// Writes a file next to (not inside) the site root and returns its path.
    pub fn outside(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).expect("write file outside the site");
        path
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stats_path(&self) -> PathBuf {
        self.dir.path().join("stats.json")
    }
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

pub fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_afterburner")
}

/// Collects a child's pipe in the background so the child never blocks on a full pipe.
fn drain_into(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&sink);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => writer.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    sink
}

/// A running `afterburner` on 127.0.0.1 with an ephemeral port. Killed on drop if still running.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    stats_path: PathBuf,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Whatever the server printed on stdout after its listening line.
    stdout_rest: Arc<Mutex<Vec<u8>>>,
}

/// What a stopped server left behind.
pub struct Stopped {
    pub status: ExitStatus,
    /// Time from the signal to the process exit.
    pub elapsed: Duration,
    stats_path: PathBuf,
    pub stderr: String,
    /// Stdout after the listening line (the contract says there is none).
    pub stdout_rest: String,
}

impl Stopped {
    /// The `--stats` JSON the server wrote at exit; panics with the server's stderr if absent.
    pub fn stats(&self) -> Stats {
        let text = fs::read_to_string(&self.stats_path).unwrap_or_else(|e| {
            panic!(
                "stats file {} not written at exit ({e}); server stderr:\n{}",
                self.stats_path.display(),
                self.stderr
            )
        });
        let value: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("stats file is not JSON ({e}):\n{text}"));
        Stats(value)
    }

    pub fn assert_exit_0(&self) {
        assert_eq!(
            self.status.code(),
            Some(0),
            "server must exit 0 after SIGTERM/SIGINT, got {:?}; stderr:\n{}",
            self.status,
            self.stderr
        );
    }
}

/// The behaviour suite runs once per server design: `#[apply(designs)]` on a test taking
/// `design: &str` makes one test per design (`NAME::design_1___loop__`, ...), each starting the
/// server with `--design NAME`. A behaviour a design cannot have is skipped inside the test with
/// [`skip_for`], which says why.
#[rstest_reuse::template]
#[rstest::rstest]
pub fn designs(
    #[values(
        "loop", "poll", "select", "threads", "prefork", "fork", "reactors", "uring"
    )]
    design: &str,
) {
}

/// Whether `design` is one of `skipped`; if so, prints that the test does not apply to it and
/// why, for the test's output (`cargo test -- --nocapture` shows it).
pub fn skip_for(design: &str, skipped: &[&str], why: &str) -> bool {
    let skip = skipped.contains(&design);
    if skip {
        eprintln!("skipped for --design {design}: {why}");
    }
    skip
}

/// Flags a design needs in every test: `select` cannot hold more descriptors than FD_SETSIZE,
/// so it runs with `--max-conns 1000` unless the test sets its own.
fn design_flags(design: &str, extra: &[&str]) -> Vec<String> {
    let mut flags = vec!["--design".to_string(), design.to_string()];
    if design == "select" && !extra.contains(&"--max-conns") {
        flags.extend(["--max-conns".to_string(), "1000".to_string()]);
    }
    flags
}

impl Server {
    /// Starts the server as `--design DESIGN` on `site` with `--listen 127.0.0.1:0 --stats
    /// <tmp>/stats.json` plus `extra` flags. Unless `extra` sets `--grace`, a short `--grace 1s`
    /// keeps shutdown quick.
    pub fn start(design: &str, site: &Site, extra: &[&str]) -> Server {
        Server::start_with_stats(design, site, extra, true)
    }

    /// Like [`Server::start`], with `--stats` only if `stats`.
    pub fn start_with_stats(design: &str, site: &Site, extra: &[&str], stats: bool) -> Server {
        Server::spawn(design, site, extra, stats, None)
    }

    /// Like [`Server::start`], with the server's RLIMIT_NOFILE (soft and hard, so that its
    /// start-up raise to the hard limit changes nothing) set to `nofile` before it runs:
    /// descriptor exhaustion at a size a test can reach.
    pub fn start_with_nofile(design: &str, site: &Site, extra: &[&str], nofile: u64) -> Server {
        Server::spawn(design, site, extra, true, Some(nofile))
    }

    fn spawn(
        design: &str,
        site: &Site,
        extra: &[&str],
        stats: bool,
        nofile: Option<u64>,
    ) -> Server {
        let stats_path = site.stats_path();
        let _ = fs::remove_file(&stats_path);
        let mut cmd = Command::new(server_bin());
        cmd.arg("--root")
            .arg(site.root())
            .args(["--listen", "127.0.0.1:0"]);
        if stats {
            cmd.arg("--stats").arg(&stats_path);
        }
        if !extra.contains(&"--grace") {
            cmd.args(["--grace", "1s"]);
        }
        cmd.args(design_flags(design, extra))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(nofile) = nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            // SAFETY: runs in the forked child before exec; setrlimit is async-signal-safe, and
            // `limit` is a plain value copied into the child.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn afterburner");
        let stderr = drain_into(child.stderr.take().unwrap());

        // The first stdout line carries the port; keep draining stdout afterwards.
        let stdout = child.stdout.take().unwrap();
        let stdout_rest = Arc::new(Mutex::new(Vec::new()));
        let rest = Arc::clone(&stdout_rest);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line.clone());
            let _ = tx.send(first);
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => rest.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "server did not print its listening line ({other:?}); exit {status:?}; \
                     args {extra:?}; stderr:\n{}",
                    String::from_utf8_lossy(&stderr.lock().unwrap())
                );
            }
        };
        let port = parse_listening_line(&line).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "first stdout line must be `afterburner listening on 127.0.0.1:PORT`, got {line:?}; \
                 stderr:\n{}",
                String::from_utf8_lossy(&stderr.lock().unwrap())
            )
        });
        Server {
            child: Some(child),
            port,
            stats_path,
            stderr,
            stdout_rest,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server already stopped").id() as i32
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: i32) {
        // Our own child's PID: the child has not been reaped yet because `self.child` is still
        // Some, so the PID cannot have been recycled.
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("a child's PID is not 0");
        let signal = rustix::process::Signal::from_named_raw(sig).expect("a named signal");
        rustix::process::kill_process(pid, signal)
            .unwrap_or_else(|e| panic!("kill({}, {sig}) failed: {e}", self.pid()));
    }

    /// Sends SIGUSR1 and waits until the `--stats` file holds snapshot `number`; returns it.
    /// Panics with the server's stderr if it does not come within 5 s, or if a newer one does.
    pub fn snapshot(&self, number: u64) -> Stats {
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + SNAPSHOT_TIMEOUT;
        loop {
            // The server renames a complete file into place: whatever parses is a whole one.
            let stats = fs::read_to_string(&self.stats_path)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .map(Stats);
            let seen = stats.as_ref().map(|stats| stats.u(&["snapshot"]));
            if seen == Some(number) {
                return stats.expect("just read");
            }
            assert!(
                seen < Some(number) && Instant::now() < deadline,
                "waiting for snapshot {number} after SIGUSR1: the stats file shows {seen:?}; \
                 stderr:\n{}",
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("server already stopped");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then wait for the exit (panics after 10 s).
    pub fn stop(&mut self) -> Stopped {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `sig`, waits for the exit and returns the exit status and stats location.
    pub fn stop_with(&mut self, sig: i32) -> Stopped {
        let start = Instant::now();
        self.signal(sig);
        self.finish(start, EXIT_TIMEOUT)
    }

    /// Waits (from `signalled_at`) for an exit already requested; panics after `timeout`.
    pub fn finish(&mut self, signalled_at: Instant, timeout: Duration) -> Stopped {
        let status = match self.wait_exit(timeout) {
            Some(status) => status,
            None => panic!(
                "server still running {:?} after the signal; stderr:\n{}",
                signalled_at.elapsed(),
                self.stderr_text()
            ),
        };
        let elapsed = signalled_at.elapsed();
        self.child = None;
        // Give the stderr drain thread a moment to see EOF.
        thread::sleep(Duration::from_millis(20));
        Stopped {
            status,
            elapsed,
            stats_path: self.stats_path.clone(),
            stderr: self.stderr_text(),
            stdout_rest: String::from_utf8_lossy(&self.stdout_rest.lock().unwrap()).into_owned(),
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// CPU time (user + system) the server has used so far, its child processes (`prefork`
    /// workers, `fork` children) included: see [`tree_cpu_time`].
    pub fn cpu_time(&self) -> Duration {
        tree_cpu_time(self.pid())
    }

    /// Proportional set size of the server and its child processes, in KiB: see
    /// [`tree_pss_kib`].
    pub fn memory_kib(&self) -> u64 {
        tree_pss_kib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if thread::panicking() {
                eprintln!("--- afterburner stderr ---\n{}", self.stderr_text());
            }
        }
    }
}

/// Parses `afterburner listening on 127.0.0.1:PORT\n` (exactly that shape) into PORT.
fn parse_listening_line(line: &str) -> Option<u16> {
    let line = line.strip_suffix('\n')?;
    let port = line.strip_prefix("afterburner listening on 127.0.0.1:")?;
    port.parse().ok().filter(|p| *p != 0)
}

/// Result of running the binary until it exits by itself (start-up error paths).
pub struct Exited {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `afterburner ARGS` and expects it to exit by itself within 5 s; a server that starts
/// listening instead is killed and the test fails.
pub fn run_to_exit(args: &[&std::ffi::OsStr]) -> Exited {
    let mut child = Command::new(server_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn afterburner");
    let stdout = drain_into(child.stdout.take().unwrap());
    let stderr = drain_into(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server with args {args:?} kept running (expected a start-up error); stdout:\n{}",
                String::from_utf8_lossy(&stdout.lock().unwrap())
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    thread::sleep(Duration::from_millis(20));
    let stdout = String::from_utf8_lossy(&stdout.lock().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
    Exited {
        code: status.code(),
        stdout,
        stderr,
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: CPU time and memory from /proc
// ---------------------------------------------------------------------------------------------

/// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses,
/// so the split is at the last `)`), as numbers: index `i` is field `i + 3` of proc(5). Field 3,
/// `state`, is a letter and reads as 0.
fn stat_fields(pid: i32) -> Option<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    Some(
        after_name
            .split_whitespace()
            .map(|field| field.parse().unwrap_or(0))
            .collect(),
    )
}

/// `pid` and every process descended from it (found by parent pid in /proc/*/stat), zombies
/// not yet reaped included.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(child) {
                // proc(5) field 4, ppid.
                parent_of.push((child, fields.get(1).copied().unwrap_or(0) as i32));
            }
        }
    }
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        tree.extend(
            parent_of
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(child, _)| child),
        );
        next += 1;
    }
    tree
}

/// CPU time (user + system, every thread) used by `pid` and its descendants, plus what the
/// children they already reaped used (cutime + cstime): a process that forks per connection is
/// charged for the children gone since. Resolution: one clock tick (10 ms at USER_HZ 100).
pub fn tree_cpu_time(pid: i32) -> Duration {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = process_tree(pid)
        .into_iter()
        .filter_map(stat_fields)
        // proc(5) fields 14-17: utime, stime, cutime, cstime.
        .map(|fields| fields.get(11..15).map_or(0, |times| times.iter().sum()))
        .sum();
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// Proportional set size (Pss, /proc/PID/smaps_rollup) of `pid` and its descendants, in KiB.
/// Pages shared between them (a forked child's copy-on-write view of its parent) count once
/// in total, so the sum is the memory the tree holds, however many processes it has.
pub fn tree_pss_kib(pid: i32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("Pss:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Stats JSON
// ---------------------------------------------------------------------------------------------

/// The `--stats` JSON with accessors that panic with the whole document on a missing field.
#[derive(Debug)]
pub struct Stats(pub serde_json::Value);

impl Stats {
    /// The unsigned integer at `path` (e.g. `["closes", "reset"]`).
    pub fn u(&self, path: &[&str]) -> u64 {
        let mut v = &self.0;
        for key in path {
            v = v
                .get(key)
                .unwrap_or_else(|| panic!("stats has no {path:?}: {:#}", self.0));
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("stats {path:?} is not an unsigned integer: {:#}", self.0))
    }

    /// `requests_by_status` as a map; statuses never seen may be absent or 0.
    pub fn by_status(&self) -> BTreeMap<String, u64> {
        let obj = self
            .0
            .get("requests_by_status")
            .and_then(|v| v.as_object())
            .unwrap_or_else(|| panic!("stats has no requests_by_status object: {:#}", self.0));
        obj.iter()
            .map(|(k, v)| {
                let n = v
                    .as_u64()
                    .unwrap_or_else(|| panic!("requests_by_status[{k}] not a number"));
                (k.clone(), n)
            })
            .filter(|(_, n)| *n != 0)
            .collect()
    }

    /// `(pattern, served)` for reftab rule `rule` (1-based), or None if the rule is not listed.
    pub fn alternates(&self, rule: u64) -> Option<(String, u64)> {
        let list = self
            .0
            .get("reftab_alternates")
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("stats has no reftab_alternates array: {:#}", self.0));
        list.iter()
            .find(|e| e.get("rule").and_then(|r| r.as_u64()) == Some(rule))
            .map(|e| {
                let pattern = e.get("pattern").and_then(|p| p.as_str()).unwrap_or("");
                let served = e
                    .get("served")
                    .and_then(|s| s.as_u64())
                    .unwrap_or_else(|| panic!("reftab_alternates entry without served: {e}"));
                (pattern.to_string(), served)
            })
    }

    /// Sum of `served` over all reftab rules.
    pub fn alternates_total(&self) -> u64 {
        self.0
            .get("reftab_alternates")
            .and_then(|v| v.as_array())
            .map(|l| {
                l.iter()
                    .filter_map(|e| e.get("served").and_then(|s| s.as_u64()))
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Builds the expected `requests_by_status` map from `(status, count)` pairs.
pub fn statuses(pairs: &[(u16, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .filter(|(_, n)| *n != 0)
        .map(|(s, n)| (s.to_string(), *n))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP client
// ---------------------------------------------------------------------------------------------

/// One parsed HTTP response as it came over the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes of status line + headers + blank line.
    pub head_len: usize,
}

impl Response {
    /// The value of header `name` (case-insensitive); panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        assert!(
            found.next().is_none(),
            "header {name} appears more than once: {:?}",
            self.headers
        );
        first
    }

    pub fn content_length(&self) -> usize {
        self.header("Content-Length")
            .expect("Content-Length")
            .parse()
            .expect("numeric Content-Length")
    }

    /// Total bytes of this response on the wire.
    pub fn wire_len(&self) -> usize {
        self.head_len + self.body.len()
    }

    /// True if the response announces `Connection: close` (token compared case-insensitively).
    pub fn says_close(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    pub fn says_keep_alive(&self) -> bool {
        self.header("Connection").is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"))
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Checks the headers the contract promises on every response.
pub fn assert_common_headers(resp: &Response) {
    assert!(
        resp.header("Content-Length").is_some(),
        "every response needs Content-Length: {resp:?}"
    );
    assert!(
        resp.header("Content-Type").is_some(),
        "every response needs Content-Type: {resp:?}"
    );
    assert_eq!(
        resp.header("Server"),
        Some("afterburner"),
        "every response needs `Server: afterburner`: {:?}",
        resp.headers
    );
}

/// How a connection ended from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// read() returned 0: the server sent FIN.
    Eof,
    /// read() failed with ECONNRESET: the server sent RST.
    Reset,
}

/// A raw TCP client with its own read buffer, so pipelined responses can be read one by one.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Every byte received from the server on this connection so far.
    pub received: usize,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to server");
        Client::from_stream(stream)
    }

    /// Connects with a small SO_RCVBUF set before connect(), so the advertised window stays
    /// small and the server's send queue fills like a slow real client's would.
    pub fn connect_small_rcvbuf(port: u16, rcvbuf: usize) -> Client {
        use socket2::{Domain, Protocol, Socket, Type};
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        sock.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        sock.connect_timeout(&addr.into(), IO_TIMEOUT)
            .expect("connect to server");
        Client::from_stream(sock.into())
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            received: 0,
        }
    }

    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    pub fn peer_port(&self) -> u16 {
        self.stream.peer_addr().unwrap().port()
    }

    /// Writes all of `data` (panics on error).
    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        self.stream
            .write_all(data.as_ref())
            .expect("write request to server");
    }

    /// Writes `data`, returning the error instead of panicking (for servers that may already
    /// have closed).
    pub fn try_send(&mut self, data: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(data.as_ref())
    }

    /// One read with a deadline. Ok(0) = EOF. Err(TimedOut) when nothing came in time.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(ErrorKind::TimedOut, "deadline passed"));
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.received += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return Err(io::Error::new(ErrorKind::TimedOut, "read timed out"))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one response; `head` = the request was HEAD (no body follows the headers).
    pub fn try_read_response(&mut self, head: bool, timeout: Duration) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        let head_len = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if self.buf.len() > 256 * 1024 {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "response head too long",
                ));
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a complete response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        let text = String::from_utf8_lossy(&self.buf[..head_len - 4]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| {
                io::Error::new(
                    ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                )
            })?;
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line.split_once(':').ok_or_else(|| {
                io::Error::new(ErrorKind::InvalidData, format!("bad header line {line:?}"))
            })?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Response {
            version,
            status,
            headers,
            body: Vec::new(),
            head_len,
        };
        let body_len = if head {
            0
        } else {
            resp.header("Content-Length")
                .ok_or_else(|| {
                    io::Error::new(ErrorKind::InvalidData, "response without Content-Length")
                })?
                .parse::<usize>()
                .map_err(|_| io::Error::new(ErrorKind::InvalidData, "bad Content-Length"))?
        };
        while self.buf.len() < head_len + body_len {
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed after {} of {body_len} body bytes (status {status})",
                        self.buf.len() - head_len
                    ),
                ));
            }
        }
        resp.body = self.buf[head_len..head_len + body_len].to_vec();
        self.buf.drain(..head_len + body_len);
        Ok(resp)
    }

    /// Reads one response to a GET-like request or panics.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    /// Reads one response to a HEAD request (headers only) or panics.
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("reading HEAD response: {e}"))
    }

    /// Sends `request` and reads its response.
    pub fn roundtrip(&mut self, request: impl AsRef<[u8]>) -> Response {
        self.send(request);
        self.read_response()
    }

    /// Waits up to `timeout` for the server to end the connection, with no further bytes.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Closed, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buf.is_empty() {
                return Err(format!(
                    "unexpected bytes before close: {:?}",
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                ));
            }
            match self.fill(deadline) {
                Ok(0) => return Ok(Closed::Eof),
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(Closed::Reset),
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(format!("connection still open after {timeout:?}"))
                }
                Err(e) => return Err(format!("read error while waiting for close: {e}")),
            }
        }
    }

    /// Panics unless the server closes the connection (FIN or RST) within `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) -> Closed {
        self.wait_closed(timeout)
            .unwrap_or_else(|e| panic!("expected the server to close the connection: {e}"))
    }

    /// True if nothing at all (no byte, no FIN, no RST) arrives for `quiet`.
    pub fn stays_silent(&mut self, quiet: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        matches!(self.fill(Instant::now() + quiet), Err(e) if e.kind() == ErrorKind::TimedOut)
    }

    /// Reads whatever arrives until EOF/RST or `timeout`; returns (bytes, how it ended).
    pub fn read_until_closed(&mut self, timeout: Duration) -> (Vec<u8>, Option<Closed>) {
        let deadline = Instant::now() + timeout;
        let end = loop {
            match self.fill(deadline) {
                Ok(0) => break Some(Closed::Eof),
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break Some(Closed::Reset),
                Err(_) => break None,
            }
        };
        (std::mem::take(&mut self.buf), end)
    }

    /// Reads until the buffer holds at least `n` bytes, at most `chunk` bytes per read() and
    /// sleeping `pause` after each read: a slow reader that keeps the receive window small.
    fn slow_fill_to(&mut self, n: usize, chunk: usize, pause: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut tmp = vec![0u8; chunk];
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "slow read: only {} of {n} bytes after {timeout:?}",
                self.buf.len()
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut tmp) {
                Ok(0) => panic!(
                    "slow read: connection closed after {} of {n} bytes",
                    self.buf.len()
                ),
                Ok(k) => {
                    self.buf.extend_from_slice(&tmp[..k]);
                    self.received += k;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!(
                    "slow read failed after {} of {n} bytes: {e}",
                    self.buf.len()
                ),
            }
            thread::sleep(pause);
        }
    }

    /// Reads one full response (with body) slowly: `chunk` bytes per read, `pause` between
    /// reads, everything within `timeout`.
    pub fn slow_read_response(
        &mut self,
        chunk: usize,
        pause: Duration,
        timeout: Duration,
    ) -> Response {
        let started = Instant::now();
        // First the head, slowly too, then the exact body length it announces.
        while find(&self.buf, b"\r\n\r\n").is_none() {
            let want = self.buf.len() + 1;
            let left = timeout.saturating_sub(started.elapsed());
            self.slow_fill_to(want, chunk, pause, left);
        }
        let head_len = find(&self.buf, b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&self.buf[..head_len]).to_ascii_lowercase();
        let body_len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("Content-Length in slow response")
            .trim()
            .parse()
            .expect("numeric Content-Length");
        let remaining = timeout.saturating_sub(started.elapsed());
        self.slow_fill_to(head_len + body_len, chunk, pause, remaining);
        self.try_read_response(false, IO_TIMEOUT)
            .expect("parse slowly read response")
    }

    /// Reads until at least `n` bytes are buffered (they stay available to `read_response`).
    pub fn read_at_least(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            match self.fill(deadline) {
                Ok(0) => panic!("connection closed after {} of {n} bytes", self.buf.len()),
                Ok(_) => {}
                Err(e) => panic!("reading {n} bytes: {e} after {}", self.buf.len()),
            }
        }
    }

    /// Half-closes our sending side (sends FIN) but keeps reading possible.
    pub fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `GET path HTTP/1.1` with a Host header and optional extra header lines (without CRLF).
pub fn get11(path: &str, extra: &[&str]) -> Vec<u8> {
    request("GET", path, "HTTP/1.1", true, extra)
}

/// `HEAD path HTTP/1.1` with a Host header.
pub fn head11(path: &str, extra: &[&str]) -> Vec<u8> {
    request("HEAD", path, "HTTP/1.1", true, extra)
}

/// `GET path HTTP/1.0` without Host.
pub fn get10(path: &str, extra: &[&str]) -> Vec<u8> {
    request("GET", path, "HTTP/1.0", false, extra)
}

/// Builds a request head: request line, optional `Host: localhost`, extra lines, blank line.
pub fn request(method: &str, path: &str, version: &str, host: bool, extra: &[&str]) -> Vec<u8> {
    let mut s = format!("{method} {path} {version}\r\n");
    if host {
        s.push_str("Host: localhost\r\n");
    }
    for line in extra {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// One request on a fresh connection with `Connection: close`; returns the response after
/// checking the server then closes the connection.
pub fn fetch(port: u16, path: &str, extra: &[&str]) -> Response {
    let mut c = Client::connect(port);
    let mut headers = vec!["Connection: close"];
    headers.extend_from_slice(extra);
    let resp = c.roundtrip(get11(path, &headers));
    c.expect_closed(IO_TIMEOUT);
    resp
}

/// Sends raw bytes on a fresh connection and reads one response.
pub fn fetch_raw(port: u16, raw: &[u8]) -> (Response, Client) {
    let mut c = Client::connect(port);
    c.send(raw);
    let resp = c.read_response();
    (resp, c)
}

// ---------------------------------------------------------------------------------------------
// TIME_WAIT from /proc/net/tcp{,6}
// ---------------------------------------------------------------------------------------------

pub const TCP_ESTABLISHED: u8 = 0x01;
pub const TCP_FIN_WAIT1: u8 = 0x04;
pub const TCP_FIN_WAIT2: u8 = 0x05;
pub const TCP_TIME_WAIT: u8 = 0x06;

/// `127.0.0.1` as /proc prints it: one host-order word in tcp, v4-mapped in tcp6.
fn is_loopback_v4(hex_addr: &str) -> bool {
    hex_addr.eq_ignore_ascii_case("0100007F")
        || hex_addr.eq_ignore_ascii_case("0000000000000000FFFF00000100007F")
}

/// Splits `ADDR:PORT` (hex) into (addr, port).
fn parse_endpoint(field: &str) -> Option<(&str, u16)> {
    let (addr, port) = field.rsplit_once(':')?;
    Some((addr, u16::from_str_radix(port, 16).ok()?))
}

/// One socket of /proc/net/tcp{,6}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpEntry {
    /// `st`: TCP_ESTABLISHED, TCP_TIME_WAIT, ...
    pub state: u8,
    /// `tx_queue`: bytes in the send queue (sent or not, not yet acknowledged).
    pub tx_queue: u64,
    /// `rx_queue`: bytes received that the application has not read yet.
    pub rx_queue: u64,
}

/// Every socket on 127.0.0.1 whose local port is `local_port` and whose remote port is
/// `remote_port`, from /proc/net/tcp and /proc/net/tcp6.
pub fn tcp_entries(local_port: u16, remote_port: u16) -> Vec<TcpEntry> {
    // Machines can hold tens of thousands of unrelated sockets: a cheap substring test on the
    // local port skips almost every line before any parsing.
    let local_tag = format!(":{local_port:04X} ");
    let mut entries = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if !line.contains(&local_tag) {
                continue;
            }
            let mut fields = line.split_whitespace().skip(1);
            let (Some(local), Some(remote), Some(state), Some(queues)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Some((laddr, lport)), Some((raddr, rport))) =
                (parse_endpoint(local), parse_endpoint(remote))
            else {
                continue;
            };
            if lport != local_port
                || rport != remote_port
                || !is_loopback_v4(laddr)
                || !is_loopback_v4(raddr)
            {
                continue;
            }
            let Some((tx, rx)) = queues.split_once(':') else {
                continue;
            };
            if let (Ok(state), Ok(tx_queue), Ok(rx_queue)) = (
                u8::from_str_radix(state, 16),
                u64::from_str_radix(tx, 16),
                u64::from_str_radix(rx, 16),
            ) {
                entries.push(TcpEntry {
                    state,
                    tx_queue,
                    rx_queue,
                });
            }
        }
    }
    entries
}

/// The TCP states of every socket on 127.0.0.1 whose local port is `local_port` and whose
/// remote port is `remote_port`, from /proc/net/tcp and /proc/net/tcp6.
pub fn tcp_states(local_port: u16, remote_port: u16) -> Vec<u8> {
    tcp_entries(local_port, remote_port)
        .into_iter()
        .map(|entry| entry.state)
        .collect()
}

/// True if the socket (127.0.0.1:local_port -> 127.0.0.1:remote_port) is in TIME_WAIT now.
pub fn in_time_wait(local_port: u16, remote_port: u16) -> bool {
    tcp_states(local_port, remote_port).contains(&TCP_TIME_WAIT)
}

/// Polls until (local, remote) is in TIME_WAIT or `timeout` passes.
pub fn wait_time_wait(local_port: u16, remote_port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if in_time_wait(local_port, remote_port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls until no socket with (local, remote) exists at all or `timeout` passes; returns the
/// states still present.
pub fn wait_gone(local_port: u16, remote_port: u16, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        let states = tcp_states(local_port, remote_port);
        if states.is_empty() || Instant::now() >= deadline {
            return states;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sleeps for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}
