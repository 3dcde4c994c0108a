//! Harness faults, through the `loadgen` binary as a user meets them: the server killed mid-run,
//! a server that never answers, Ctrl-C and SIGTERM, an output folder that cannot be written, a
//! full disk while the results are written, a broken `result.json` given to `loadgen report`,
//! and a server command that does not exist. Each must give one message naming the culprit,
//! an exit status of the documented list (`loadgen --help`, README "Exit statuses and faults"),
//! and keep whatever was measured.
//!
//! Every load is a few seconds against the built-in server or a python3 stand-in, on a URL list
//! of one small file (no SPECweb96 file set), and every loadgen is killed if it outlives its
//! time limit. The full-disk and read-only cases mount a small tmpfs and need root; without it
//! they say so and skip.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    child_process, finish_within, loadgen, process_exists, run_dir, run_within, small_scenario,
    spawn, text,
};
use reports::model::RunResult;

/// Long enough for a debug build on a busy two-core machine; every run here is shorter.
const LIMIT: Duration = Duration::from_secs(90);

const BUILTIN: &str = r#"kind = "builtin""#;

/// `warmup = 0s`, `duration = D`.
fn timing(duration: &str) -> String {
    format!("warmup = \"0s\"\nduration = \"{duration}\"")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_result(path: &Path) -> RunResult {
    RunResult::read(path).unwrap_or_else(|e| panic!("{e}"))
}

/// `loadgen run SCENARIO --out OUT --quiet`.
fn run_command(scenario: &Path, out: &Path) -> std::process::Command {
    let mut command = loadgen();
    command
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--quiet");
    command
}

// ---- 1. the server killed mid-run -------------------------------------------------------------

#[test]
fn a_server_killed_mid_run_exits_3_naming_it_and_keeps_what_was_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = small_scenario(tmp.path(), "killed", BUILTIN, &timing("8s"));
    let out = tmp.path().join("out");
    let child = spawn(&mut run_command(&scenario, &out));
    let server = child_process(child.id(), "serve-builtin", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain syscall; `server` is a child of our child, found by its command line.
    assert_eq!(
        unsafe { libc::kill(server as libc::pid_t, libc::SIGKILL) },
        0
    );
    let killed = Instant::now();
    let output = finish_within(child, LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(3), "{all}");
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "the run went on for {:?} of its 8 s after the kill",
        killed.elapsed()
    );
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "Invalid measurement: stopped early: the server under test (pid {server}) exited \
             mid-run with signal: 9 (SIGKILL)"
        )),
        "{all}"
    );

    let result = read_result(&run_dir(&out, "killed").join("result.json"));
    assert!(
        !result.valid && result.partial && !result.interrupted,
        "{all}"
    );
    assert!(
        result.invalid_reasons[0].starts_with("stopped early: the server under test"),
        "{:?}",
        result.invalid_reasons
    );
    let point = &result.load_points[0];
    assert!(point.totals.ops > 0, "nothing measured before the kill");
    assert!(
        point.measured_s < 7.0,
        "measured {} s of a run killed after 1.5 s",
        point.measured_s
    );
}

// ---- 2. a server that never answers -----------------------------------------------------------

/// The never-answering stand-in as a `[server]` body; `ready_path` is what its readiness URL
/// asks (it answers only `/ready`).
fn mute_server(ready_path: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faults/mute_server.py");
    format!(
        "kind = \"command\"\ncommand = \"exec python3 {} {{port}}\"\nready_url = \
         \"http://127.0.0.1:{{port}}{ready_path}\"",
        script.display()
    )
}

fn python3_missing() -> bool {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("SKIPPED: python3 is not installed (apt-get install python3)");
    }
    !found
}

#[test]
fn a_server_that_never_answers_ends_at_the_duration_with_timeouts_and_exit_3() {
    if python3_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let timing = format!("{}\nrequest_timeout = \"500ms\"", timing("2s"));
    let scenario = small_scenario(tmp.path(), "mute", &mute_server("/ready"), &timing);
    let out = tmp.path().join("out");
    let started = Instant::now();
    let output = run_within(&mut run_command(&scenario, &out), LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(3), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a 2 s run took {:?}",
        started.elapsed()
    );
    assert!(
        stderr(&output).contains("Invalid measurement: full load: no response in 2.0 s: ")
            && stderr(&output).contains("requests timed out (request_timeout 500ms)"),
        "{all}"
    );
    let result = read_result(&run_dir(&out, "mute").join("result.json"));
    assert!(!result.valid && !result.partial, "{all}");
    let totals = &result.load_points[0].totals;
    assert_eq!(totals.ops, 0);
    // Four clients, each waiting 500 ms per try over 2 s: a dozen timeouts or so.
    assert!(totals.errors["timeout"] >= 4, "{:?}", totals.errors);
}

#[test]
fn a_server_that_never_answers_its_readiness_probe_is_refused_with_exit_2() {
    if python3_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // It answers only /ready; asked for /, it never answers: the 15 s ready timeout runs out.
    let scenario = small_scenario(tmp.path(), "never-ready", &mute_server("/"), &timing("2s"));
    let out = tmp.path().join("out");
    let output = run_within(&mut run_command(&scenario, &out), LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        stderr(&output).contains(&format!(
            "Error: scenario {}: [server]: the server command did not answer at http://127.0.0.1:",
            scenario.display()
        )) && stderr(&output).contains("within 15s"),
        "{all}"
    );
    assert!(!out.join("never-ready").exists(), "{all}");
}

// ---- 3. Ctrl-C and SIGTERM --------------------------------------------------------------------

/// Sends `signal` to a loadgen 1.5 s into its load: it must write what was measured, marked
/// interrupted, stop the server under test, and end by that same signal.
fn interrupt_mid_run(signal: libc::c_int, words: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = small_scenario(tmp.path(), "interrupted", BUILTIN, &timing("8s"));
    let out = tmp.path().join("out");
    let child = spawn(&mut run_command(&scenario, &out));
    let loadgen_pid = child.id();
    let server = child_process(loadgen_pid, "serve-builtin", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain syscall on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(loadgen_pid as libc::pid_t, signal) }, 0);
    let output = finish_within(child, LIMIT);
    let all = text(&output);
    assert_eq!(output.status.signal(), Some(signal), "{all}");
    let result_path = run_dir(&out, "interrupted").join("result.json");
    assert!(
        stderr(&output).contains(&format!(
            "Interrupted by {words}: the load was stopped and so was the server under test; what \
             was measured is in {}, marked interrupted",
            result_path.display()
        )),
        "{all}"
    );
    assert!(
        !process_exists(server),
        "the server under test (pid {server}) outlived the loadgen"
    );
    let result = read_result(&result_path);
    assert!(
        result.interrupted && result.partial && !result.valid,
        "{all}"
    );
    assert_eq!(
        result.invalid_reasons[0],
        "stopped early: interrupted by Ctrl-C or SIGTERM"
    );
    let point = &result.load_points[0];
    assert!(point.totals.ops > 0 && point.measured_s < 7.0, "{point:?}");
    // The server was asked to stop, not killed: it wrote its final counters.
    assert!(result.server.stats.is_some(), "{:?}", result.server);
}

#[test]
fn ctrl_c_keeps_what_was_measured_stops_the_server_and_ends_by_sigint() {
    interrupt_mid_run(libc::SIGINT, "SIGINT (Ctrl-C)");
}

#[test]
fn sigterm_keeps_what_was_measured_stops_the_server_and_ends_by_sigterm() {
    interrupt_mid_run(libc::SIGTERM, "SIGTERM");
}

// ---- 4. an output folder that cannot be written -----------------------------------------------

/// A server command that leaves `marker` behind if it is ever started.
fn marking_server(marker: &Path) -> String {
    format!(
        "kind = \"command\"\ncommand = \"touch {} && exec sleep 30 {{port}}\"\nready_url = \
         \"http://127.0.0.1:{{port}}/\"",
        marker.display()
    )
}

#[test]
fn an_output_folder_below_a_file_is_refused_before_the_server_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("server-started");
    let scenario = small_scenario(
        tmp.path(),
        "blocked",
        &marking_server(&marker),
        &timing("2s"),
    );
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = file.join("runs");
    let started = Instant::now();
    let output = run_within(&mut run_command(&scenario, &out), LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert_eq!(
        stderr(&output),
        format!(
            "Error: the output folder {} cannot be written: {} is a file, not a folder\n",
            out.display(),
            file.display()
        )
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{all}");
    assert!(!marker.exists(), "the server was started");

    // The other commands that write results refuse it alike.
    let scenario = scenario.to_str().unwrap();
    let claims = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/claims-1999.toml");
    for args in [
        vec!["compare", scenario, "--servers", "loop", "--quiet"],
        vec![
            "check",
            scenario,
            "--baseline",
            "loop",
            "--candidate",
            "poll",
            "--quiet",
        ],
        vec!["claims", claims.to_str().unwrap(), "--quick", "--quiet"],
        vec!["fileset", "--dirs", "1"],
    ] {
        let output = run_within(loadgen().args(&args).arg("--out").arg(&out), LIMIT);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {all}");
        assert!(stderr(&output).contains("is a file, not a folder"), "{all}");
    }
    assert!(!marker.exists(), "the server was started");
}

/// A tmpfs mounted on a fresh temporary directory, unmounted when dropped (also when the test
/// fails); `None`, after saying why, when this process may not mount (not root).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            println!("SKIPPED: mounting a tmpfs needs root (run the tests as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            println!("SKIPPED: `mount -t tmpfs -o {options}` failed (needs CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_read_only_output_folder_is_refused_before_the_server_starts() {
    let Some(read_only) = Tmpfs::mount("ro,size=64k") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("server-started");
    let scenario = small_scenario(
        tmp.path(),
        "read-only",
        &marking_server(&marker),
        &timing("2s"),
    );
    let out = read_only.path().join("runs");
    let output = run_within(&mut run_command(&scenario, &out), LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        stderr(&output).contains(&format!(
            "Error: the output folder {} cannot be written: it would be created in {}: \
             Read-only file system",
            out.display(),
            read_only.path().display()
        )),
        "{all}"
    );
    assert!(!marker.exists(), "the server was started");
}

// ---- 5. a full disk while the results are written ---------------------------------------------

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_full_disk_keeps_the_result_elsewhere_says_where_and_leaves_no_torn_file() {
    // 16 KiB: room for the run's directory and the server's small files, not for result.json
    // (about 30 KiB).
    let Some(tiny) = Tmpfs::mount("size=16k") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let kept_dir = tmp.path().join("kept");
    std::fs::create_dir(&kept_dir).unwrap();
    let scenario = small_scenario(tmp.path(), "full", BUILTIN, &timing("2s"));
    let out = tiny.path().join("runs");
    let output = run_within(run_command(&scenario, &out).env("TMPDIR", &kept_dir), LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(4), "{all}");
    let kept = files_under(&kept_dir);
    assert_eq!(kept.len(), 1, "{kept:?}\n{all}");
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!("Error: writing {}/full/", out.display()))
            && message.contains(&format!(
                "/result.json: No space left on device (os error 28); what was measured is kept \
                 in {} instead",
                kept[0].display()
            )),
        "{all}"
    );
    // What was measured: whole, in the kept file, and summarized on stdout.
    // Whole, not a run cut short (valid or not: a busy machine may saturate the generator).
    let result = read_result(&kept[0]);
    assert!(!result.partial, "{all}");
    assert!(result.load_points[0].totals.ops > 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("full load: 2.0 s measured"));
    // Nothing torn or temporary is left on the full disk.
    let left = files_under(tiny.path());
    assert!(
        left.iter()
            .all(|path| !path.to_string_lossy().contains("json")),
        "{left:?}"
    );
}

#[test]
fn a_disk_too_full_for_the_report_keeps_a_whole_result_json_and_exits_4() {
    // 96 KiB: room for result.json (about 30 KiB, twice while it is replaced), not for
    // report.html (about 115 KiB).
    let Some(small) = Tmpfs::mount("size=96k") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let scenario = small_scenario(tmp.path(), "no-room", BUILTIN, &timing("2s"));
    let out = small.path().join("runs");
    let output = run_within(&mut run_command(&scenario, &out), LIMIT);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(4), "{all}");
    let dir = run_dir(&out, "no-room");
    assert!(
        stderr(&output).contains(&format!(
            "Error: writing {}: No space left on device (os error 28); {} is whole",
            dir.join("report.html").display(),
            dir.join("result.json").display()
        )),
        "{all}"
    );
    let result = read_result(&dir.join("result.json"));
    assert!(!result.partial, "{all}");
    assert!(
        result
            .warnings
            .iter()
            .any(|w| w.contains("report could not be written")),
        "{:?}",
        result.warnings
    );
    let left = files_under(small.path());
    assert!(
        left.iter()
            .all(|path| !path.to_string_lossy().contains(".tmp-")),
        "{left:?}"
    );
    assert!(!dir.join("report.html").exists());
}

// ---- 6. a broken result.json given to `loadgen report` ----------------------------------------

#[test]
fn report_refuses_corrupt_truncated_and_newer_results_with_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = small_scenario(tmp.path(), "stored", BUILTIN, &timing("1s"));
    let out = tmp.path().join("out");
    let output = run_within(&mut run_command(&scenario, &out), LIMIT);
    // Valid or not (a busy machine may saturate the generator), it is a whole result.json.
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "{}",
        text(&output)
    );
    let good = run_dir(&out, "stored").join("result.json");
    let bytes = std::fs::read(&good).unwrap();

    let truncated = tmp.path().join("truncated.json");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let corrupt = tmp.path().join("corrupt.json");
    std::fs::write(&corrupt, b"<html>not json</html>").unwrap();
    let newer = tmp.path().join("newer.json");
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["schema_version"] = 99.into();
    std::fs::write(&newer, serde_json::to_vec(&value).unwrap()).unwrap();
    let missing = tmp.path().join("missing.json");

    let cases = [
        (
            &truncated,
            format!(
                "{} is truncated at byte {}: its JSON stops in the middle: not a whole loadgen \
                 result.json",
                truncated.display(),
                bytes.len() / 3
            ),
        ),
        (
            &corrupt,
            format!(
                "{} is not JSON (expected value at line 1 column 1): not a loadgen result.json",
                corrupt.display()
            ),
        ),
        (
            &newer,
            format!(
                "{} has schema version 99, newer than this loadgen's {}: upgrade loadgen",
                newer.display(),
                reports::model::SCHEMA_VERSION
            ),
        ),
        (
            &missing,
            format!("reading {}: No such file or directory", missing.display()),
        ),
    ];
    let page = tmp.path().join("page.html");
    for (file, expected) in cases {
        // Named second: the culprit is told apart from a good file beside it.
        let output = run_within(
            loadgen()
                .arg("report")
                .arg(&good)
                .arg(file)
                .arg("--out")
                .arg(&page),
            LIMIT,
        );
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{all}");
        assert!(
            stderr(&output).starts_with(&format!("Error: {expected}")),
            "expected `{expected}`\n{all}"
        );
        assert!(!page.exists(), "a page was written: {all}");
    }
    let output = run_within(
        loadgen().arg("report").arg(&good).arg("--out").arg(&page),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(page.exists());

    // A page below a regular file: refused before rendering, like any unwritable output (2).
    let below_a_file = page.join("x.html");
    let output = run_within(
        loadgen()
            .arg("report")
            .arg(&good)
            .arg("--out")
            .arg(&below_a_file),
        LIMIT,
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        stderr(&output).contains(&format!("{} is a file, not a folder", page.display())),
        "{all}"
    );
    // An existing folder gets the page inside it.
    let folder = tmp.path().join("pages");
    std::fs::create_dir(&folder).unwrap();
    let output = run_within(
        loadgen().arg("report").arg(&good).arg("--out").arg(&folder),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(folder.join("report.html").exists());
}

// ---- 7. a server command that does not exist --------------------------------------------------

#[test]
fn a_server_command_that_does_not_exist_is_refused_naming_it_and_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let not_executable = tmp.path().join("server.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let cases = [
        (
            "/nonexistent/afterburner-server --port {port}".to_string(),
            "/nonexistent/afterburner-server does not exist".to_string(),
        ),
        (
            "no-such-server-anywhere-4711 --port {port}".to_string(),
            format!(
                "`no-such-server-anywhere-4711` is not in any directory of PATH ({})",
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        (
            format!("{} {{port}}", not_executable.display()),
            format!("{} is not executable", not_executable.display()),
        ),
    ];
    for (command, why) in cases {
        let server = format!(
            "kind = \"command\"\ncommand = \"{command}\"\nready_url = \"http://127.0.0.1:{{port}}/\""
        );
        let scenario = small_scenario(tmp.path(), "missing-command", &server, &timing("2s"));
        let out = tmp.path().join("out");
        let started = Instant::now();
        let output = run_within(&mut run_command(&scenario, &out), LIMIT);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{all}");
        assert_eq!(
            stderr(&output),
            format!(
                "Error: scenario {}: [server]: the server command `{command}` cannot start: {why}\n",
                scenario.display()
            )
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{all}");
        assert!(
            !out.exists(),
            "something was written before the refusal: {all}"
        );
    }
    // `check` refuses such a side before its first round.
    let scenario = small_scenario(tmp.path(), "check-side", BUILTIN, &timing("1s"));
    let out = tmp.path().join("out");
    let command = "/nonexistent/afterburner-server --port {port}";
    let output = run_within(
        loadgen()
            .arg("check")
            .arg(&scenario)
            .args([
                "--baseline",
                "loop",
                "--candidate",
                command,
                "--quiet",
                "--out",
            ])
            .arg(&out),
        LIMIT,
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert_eq!(
        stderr(&output),
        format!(
            "Error: --candidate: the server command `{command}` cannot start: \
             /nonexistent/afterburner-server does not exist\n"
        )
    );
    assert!(
        !out.exists(),
        "something was written before the refusal: {all}"
    );
}
