//! The server under test (`loadgen::target`): started as a command, as the built-in server or
//! found at a URL; its failures reported with what the user needs; the built-in server's
//! counters snapshotted while it serves; stopped without leftovers.
//!
//! Command tests use `python3 -m http.server`; built-in tests run the loadgen binary's hidden
//! `serve-builtin` subcommand. All traffic stays on 127.0.0.1.

mod target_support;
use target_support::{dirs, options, python3_missing, PAGE};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use loadgen::scenario::ServerSpec;
use loadgen::target::{ServerHandle, TargetOptions};

fn python_server() -> ServerSpec {
    ServerSpec::Command {
        command: "python3 -m http.server {port} --bind 127.0.0.1 --directory {root}".into(),
        ready_url: "http://127.0.0.1:{port}/".into(),
        cpu: None,
    }
}

fn builtin(args: &[&str]) -> ServerSpec {
    ServerSpec::Builtin {
        args: args.iter().map(|a| a.to_string()).collect(),
        cpu: None,
        binary: None,
    }
}

/// One HTTP/1.0 GET, the whole reply as text.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// A port nothing listens on (free a moment ago).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `pid` is a running (not zombie) process.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// Whether any running process is in process group `pgid`.
fn group_running(pgid: u32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X")
    })
}

/// SIGKILL to the server this test started.
fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

fn wait_for_death(handle: &mut ServerHandle) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Err(reason) = handle.check_alive() {
            return reason;
        }
        assert!(
            Instant::now() < deadline,
            "check_alive still Ok 5 s after the server was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn command_server_starts_answers_and_stops_with_its_group() {
    if python3_missing() {
        return;
    }
    let dirs = dirs();
    let mut server = ServerHandle::start(&python_server(), &options(&dirs)).unwrap();
    assert_eq!(server.kind(), "command");
    assert!(server.addr().ip().is_loopback());
    let pid = server.pid().expect("a command has a pid");
    assert!(
        server
            .command_line()
            .contains(&format!("http.server {} --bind", server.addr().port())),
        "{{port}} not filled in: {}",
        server.command_line()
    );
    assert!(server
        .command_line()
        .contains(&dirs.site.display().to_string()));

    let reply = get(server.addr(), "/index.html");
    assert!(
        reply.starts_with("HTTP/1.") && reply.contains(" 200 "),
        "{reply}"
    );
    assert!(reply.ends_with(PAGE), "{reply}");
    assert_eq!(server.check_alive(), Ok(()));
    // No counters to snapshot, and no SIGUSR1 sent: it would have killed python.
    assert_eq!(server.stats_snapshot(), None);
    assert_eq!(server.check_alive(), Ok(()));

    let addr = server.addr();
    let started = Instant::now();
    let outcome = server.stop(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(
        outcome.exit.contains("SIGTERM"),
        "exit: {}; notes: {:?}",
        outcome.exit,
        outcome.notes
    );
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    assert_eq!(outcome.stats, None);
    assert!(!group_running(pid), "a process of the group survived stop");
    assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts");
}

#[test]
fn url_of_a_running_server_is_checked_and_left_alone() {
    if python3_missing() {
        return;
    }
    let dirs = dirs();
    let command = ServerHandle::start(&python_server(), &options(&dirs)).unwrap();
    let url = format!("http://127.0.0.1:{}/index.html", command.addr().port());
    let mut found =
        ServerHandle::start(&ServerSpec::Url { url: url.clone() }, &options(&dirs)).unwrap();
    assert_eq!(found.kind(), "url");
    assert_eq!(found.addr(), command.addr());
    assert_eq!(found.pid(), None);
    assert_eq!(found.command_line(), url);
    assert_eq!(found.check_alive(), Ok(()));
    assert_eq!(found.stats_snapshot(), None);
    let outcome = found.stop(Duration::from_secs(1));
    assert_eq!(outcome.stats, None);
    // Stopping a URL does not touch the server behind it.
    assert!(get(command.addr(), "/index.html").ends_with(PAGE));
}

#[test]
fn url_at_a_closed_port_names_the_url() {
    let dirs = dirs();
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let error =
        ServerHandle::start(&ServerSpec::Url { url: url.clone() }, &options(&dirs)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("refused"), "{message}");
}

#[test]
fn url_with_a_host_name_is_refused_before_any_traffic() {
    let dirs = dirs();
    let spec = ServerSpec::Url {
        url: "http://example.com/".into(),
    };
    let message = ServerHandle::start(&spec, &options(&dirs))
        .unwrap_err()
        .to_string();
    assert!(message.contains("example.com"), "{message}");
    assert!(message.contains("IP address or localhost"), "{message}");
}

#[test]
fn command_that_exits_at_once_reports_its_stderr_and_status() {
    let dirs = dirs();
    let spec = ServerSpec::Command {
        command: "sh -c 'echo boom >&2; exit 3'".into(),
        ready_url: "http://127.0.0.1:{port}/".into(),
        cpu: None,
    };
    let started = Instant::now();
    let message = ServerHandle::start(&spec, &options(&dirs))
        .unwrap_err()
        .to_string();
    assert!(message.contains("boom"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(
        message.contains("echo boom"),
        "the command line is missing: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "noticed the exit only after {:?}",
        started.elapsed()
    );
}

#[test]
fn command_that_never_answers_times_out_and_is_killed() {
    let dirs = dirs();
    let spec = ServerSpec::Command {
        command: "echo $$ > {workdir}/pid; echo still starting >&2; exec sleep 60".into(),
        ready_url: "http://127.0.0.1:{port}/ready".into(),
        cpu: None,
    };
    let options = TargetOptions {
        ready_timeout: Duration::from_millis(600),
        ..options(&dirs)
    };
    let message = ServerHandle::start(&spec, &options)
        .unwrap_err()
        .to_string();
    assert!(message.contains("did not answer"), "{message}");
    assert!(message.contains("/ready"), "the URL is missing: {message}");
    assert!(message.contains("still starting"), "{message}");
    let pid: u32 = std::fs::read_to_string(dirs.work.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !running(pid),
        "the server that never answered was left running"
    );
}

#[test]
fn daemonising_command_is_told_to_stay_in_the_foreground() {
    let dirs = dirs();
    let spec = ServerSpec::Command {
        command: "true {port}".into(),
        ready_url: "http://127.0.0.1:{port}/".into(),
        cpu: None,
    };
    let message = ServerHandle::start(&spec, &options(&dirs))
        .unwrap_err()
        .to_string();
    assert!(message.contains("exit status: 0"), "{message}");
    assert!(message.contains("foreground"), "{message}");
}

#[test]
fn command_ignoring_sigterm_is_killed_after_the_grace_period() {
    if python3_missing() {
        return;
    }
    let dirs = dirs();
    let spec = ServerSpec::Command {
        command:
            "trap '' TERM; exec python3 -m http.server {port} --bind 127.0.0.1 --directory {root}"
                .into(),
        ready_url: "http://127.0.0.1:{port}/".into(),
        cpu: None,
    };
    let server = ServerHandle::start(&spec, &options(&dirs)).unwrap();
    let pid = server.pid().unwrap();
    let started = Instant::now();
    let outcome = server.stop(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&took),
        "stop took {took:?}"
    );
    assert!(
        outcome.notes.iter().any(|n| n.contains("SIGKILL")),
        "{outcome:?}"
    );
    assert!(outcome.exit.contains("SIGKILL"), "{outcome:?}");
    assert!(!group_running(pid));
}

#[test]
fn killed_command_server_fails_check_alive() {
    if python3_missing() {
        return;
    }
    let dirs = dirs();
    let mut server = ServerHandle::start(&python_server(), &options(&dirs)).unwrap();
    assert_eq!(server.check_alive(), Ok(()));
    let pid = server.pid().unwrap();
    kill(pid);
    let reason = wait_for_death(&mut server);
    assert!(reason.contains("SIGKILL"), "{reason}");
    assert!(reason.contains(&pid.to_string()), "{reason}");
    let outcome = server.stop(Duration::from_secs(1));
    assert!(
        outcome.notes.iter().any(|n| n.contains("already exited")),
        "{outcome:?}"
    );
}

#[test]
fn dropping_a_handle_kills_the_server() {
    let dirs = dirs();
    let server = ServerHandle::start(&python_server(), &options(&dirs)).unwrap();
    let pid = server.pid().unwrap();
    assert!(running(pid));
    drop(server);
    // SIGKILL is delivered at once, but the group's other members (the server under `sh`) take a
    // moment to be gone from /proc on a busy machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while group_running(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!group_running(pid), "the server outlived its handle");
}

#[test]
fn command_pinned_to_a_cpu_runs_there() {
    let dirs = dirs();
    let spec = ServerSpec::Command {
        command: "exec python3 -m http.server {port} --bind 127.0.0.1 --directory {root}".into(),
        ready_url: "http://127.0.0.1:{port}/".into(),
        cpu: Some(0),
    };
    let server = ServerHandle::start(&spec, &options(&dirs)).unwrap();
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid().unwrap())).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(allowed, "0");
    server.stop(Duration::from_secs(5));

    let spec = ServerSpec::Command {
        command: "true {port}".into(),
        ready_url: "http://127.0.0.1:{port}/".into(),
        cpu: Some(100_000),
    };
    let message = ServerHandle::start(&spec, &options(&dirs))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("[server] cpu 100000 is not one"),
        "{message}"
    );
}

#[test]
fn builtin_with_a_bad_flag_fails_with_its_stderr() {
    let dirs = dirs();
    let message = ServerHandle::start(&builtin(&["--no-such-flag"]), &options(&dirs))
        .unwrap_err()
        .to_string();
    assert!(message.contains("--no-such-flag"), "{message}");
    assert!(message.contains("exit status: 2"), "{message}");
    assert!(
        message.contains("serve-builtin"),
        "the command line is missing: {message}"
    );
}

#[test]
fn builtin_starts_serves_and_stops_with_its_stats() {
    let dirs = dirs();
    let mut server = ServerHandle::start(&builtin(&["--grace", "2s"]), &options(&dirs)).unwrap();
    assert_eq!(server.kind(), "builtin");
    assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
    assert!(
        server.command_line().contains("--grace 2s"),
        "{}",
        server.command_line()
    );
    assert!(get(server.addr(), "/index.html").ends_with(PAGE));
    assert!(get(server.addr(), "/missing").contains(" 404 "));
    assert_eq!(server.check_alive(), Ok(()));

    let outcome = server.stop(Duration::from_secs(5));
    assert_eq!(outcome.exit, "exit status: 0", "{outcome:?}");
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    let stats = outcome.stats.expect("the built-in server's stats");
    assert_eq!(stats["requests_total"], 2, "{stats}");
}

#[test]
fn builtin_stats_from_an_earlier_run_are_not_reported() {
    let dirs = dirs();
    std::fs::create_dir_all(&dirs.work).unwrap();
    std::fs::write(
        dirs.work.join("server-stats.json"),
        r#"{"requests_total": 99}"#,
    )
    .unwrap();
    let mut server = ServerHandle::start(&builtin(&[]), &options(&dirs)).unwrap();
    let pid = server.pid().unwrap();
    kill(pid);
    let reason = wait_for_death(&mut server);
    assert!(reason.contains("SIGKILL"), "{reason}");
    let outcome = server.stop(Duration::from_secs(1));
    assert_eq!(outcome.stats, None);
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("server-stats.json")),
        "{outcome:?}"
    );
}

#[test]
fn killed_builtin_server_fails_check_alive() {
    let dirs = dirs();
    let mut server = ServerHandle::start(&builtin(&[]), &options(&dirs)).unwrap();
    let pid = server.pid().unwrap();
    kill(pid);
    let reason = wait_for_death(&mut server);
    assert!(reason.contains("signal: 9"), "{reason}");
    assert!(reason.contains("serve-builtin"), "{reason}");
}

/// `stats[key]` as an unsigned integer, or a panic that shows the document.
fn count(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no unsigned `{key}` in {stats}"))
}

#[test]
fn builtin_stats_snapshots_grow_while_it_serves() {
    let dirs = dirs();
    let mut server = ServerHandle::start(&builtin(&[]), &options(&dirs)).unwrap();
    for _ in 0..2 {
        assert!(get(server.addr(), "/index.html").ends_with(PAGE));
    }
    let first = server.stats_snapshot().expect("a first snapshot");
    assert_eq!(count(&first, "requests_total"), 2, "{first}");
    assert_eq!(first["final"], false, "{first}");

    for _ in 0..3 {
        assert!(get(server.addr(), "/index.html").ends_with(PAGE));
    }
    let second = server.stats_snapshot().expect("a second snapshot");
    assert!(
        count(&second, "snapshot") > count(&first, "snapshot"),
        "{first} then {second}"
    );
    assert!(
        count(&second, "requests_total") > count(&first, "requests_total"),
        "{first} then {second}"
    );
    assert_eq!(count(&second, "requests_total"), 5, "{second}");

    // Snapshots do not stop it; the stop reads the write at exit, not the last snapshot.
    assert!(get(server.addr(), "/index.html").ends_with(PAGE));
    assert_eq!(server.check_alive(), Ok(()));
    let outcome = server.stop(Duration::from_secs(5));
    assert_eq!(outcome.exit, "exit status: 0", "{outcome:?}");
    let stats = outcome.stats.expect("the built-in server's stats");
    assert_eq!(stats["final"], true, "{stats}");
    assert_eq!(count(&stats, "requests_total"), 6, "{stats}");
    assert!(count(&stats, "snapshot") > count(&second, "snapshot"));
}

#[test]
fn a_snapshot_left_by_a_killed_builtin_is_not_its_final_stats() {
    let dirs = dirs();
    let mut server = ServerHandle::start(&builtin(&[]), &options(&dirs)).unwrap();
    assert!(get(server.addr(), "/index.html").ends_with(PAGE));
    let snapshot = server.stats_snapshot().expect("a snapshot");
    assert_eq!(count(&snapshot, "requests_total"), 1, "{snapshot}");
    kill(server.pid().unwrap());
    wait_for_death(&mut server);
    assert_eq!(
        server.stats_snapshot(),
        None,
        "a dead server has no snapshot"
    );
    let outcome = server.stop(Duration::from_secs(1));
    assert_eq!(outcome.stats, None);
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("holds only snapshot 1")),
        "{outcome:?}"
    );
}

/// A built-in server that takes a while to print its address (a big site to load) is waited
/// for up to `ready_timeout`, not one poll: a regression test for a deadline once taken from
/// the URL grace (zero) instead.
#[test]
fn builtin_slow_to_announce_is_waited_for() {
    use std::os::unix::fs::PermissionsExt;
    let dirs = dirs();
    let script = dirs.work.join("slow-afterburner");
    std::fs::create_dir_all(&dirs.work).unwrap();
    std::fs::write(
        &script,
        "#!/bin/sh\nsleep 0.5\necho 'afterburner listening on 127.0.0.1:9'\nexec sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = ServerSpec::Builtin {
        args: Vec::new(),
        cpu: None,
        binary: Some(script),
    };
    let handle = ServerHandle::start(&spec, &options(&dirs)).unwrap();
    assert_eq!(handle.addr(), "127.0.0.1:9".parse().unwrap());
}
