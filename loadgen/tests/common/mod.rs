//! Shared by the loadgen binary's tests: run it with a time limit, show what it said, find the
//! server it started among its children, and write small scenarios that need no file set.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `loadgen` binary built for these tests.
pub fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

/// The exit (status or signal), stdout and stderr of a finished loadgen, for failure messages.
pub fn text(output: &Output) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    format!(
        "exit {:?} signal {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        output.status.signal(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Starts `command` with stdout and stderr captured.
pub fn spawn(command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen")
}

/// Waits for `child` to end and returns what it printed; after `limit` it is killed (by its
/// PID) and the test fails, so no test waits forever on a loadgen that hangs.
pub fn finish_within(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match outcome.recv_timeout(limit) {
        Ok(output) => output.expect("wait for loadgen"),
        Err(_) => {
            // SAFETY: plain syscall on the PID of our own child, which has not been reaped
            // (the waiting thread is still blocked in wait).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("loadgen (pid {pid}) still running after {limit:?}: killed");
        }
    }
}

/// Runs `command` to its end within `limit` (see [`finish_within`]).
pub fn run_within(command: &mut Command, limit: Duration) -> Output {
    finish_within(spawn(command), limit)
}

/// The PID of a child of `parent` whose command line holds `needle`, waiting up to `within`
/// for it to appear.
pub fn child_process(parent: u32, needle: &str, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(pid) = find_child(parent, needle) {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no child of {parent} with `{needle}` in its command line after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_child(parent: u32, needle: &str) -> Option<u32> {
    let parent = parent.to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so from the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid != Some(parent.as_str()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            return Some(pid);
        }
    }
    None
}

/// Whether process `pid` still exists (a zombie counts: it was not reaped yet).
pub fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A scenario in `dir` that serves `dir/site/1k.bin` (written here) through a URL list, with
/// `server` as its `[server]` table body and four closed-loop clients: no SPECweb96 file set,
/// so it starts at once and writes nothing under `--out` but the run itself.
pub fn small_scenario(dir: &Path, name: &str, server: &str, timing: &str) -> PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("1k.bin"), vec![b'x'; 1024]).unwrap();
    std::fs::write(dir.join("site.urls"), "1 /1k.bin\n").unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"name = "{name}"
{timing}

[server]
{server}

[site]
kind = "directory"
root = "site"
urls = "site.urls"

[[clients]]
name = "lan"
kind = "closed"
clients = 4
"#
        ),
    )
    .unwrap();
    path
}

/// The one `OUT/<scenario>/<time>/` directory a run wrote.
pub fn run_dir(out: &Path, scenario: &str) -> PathBuf {
    let parent = out.join(scenario);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}
