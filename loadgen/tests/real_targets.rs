//! Real web servers as targets (`[server] kind = "real"`): each one the machine has is started
//! through `ServerHandle::start` from the configuration the loadgen generates, serves a file of
//! the site with status 200 and the exact bytes, answers a second request on the same connection
//! (all but mini-httpd, which closes after each reply), and stops with nothing of its process
//! group left. Then a short `loadgen run` of a scenario with `kind = "real"` against nginx.
//!
//! Needs Debian's `nginx-light`, `lighttpd`, `apache2`, `mini-httpd`, `h2o` and `caddy`
//! (`.ci/run` installs them). A missing server's test prints a SKIPPED line naming the package;
//! with `AFTERBURNER_REQUIRE_REAL_SERVERS=1` (CI) it fails instead.
//!
//! Time: each server starts and stops in about a second (apache-prefork forks its 256 processes
//! first); the run is 0.5 s of warm-up and 1.5 s measured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loadgen::run::{run, RunPlan};
use loadgen::scenario::{server_spec_for_name, Overrides, RealServer, Scenario, ServerSpec};
use loadgen::target::{ServerHandle, TargetError, TargetOptions};

/// The file every server serves: 1 KiB of every byte value, so a wrong offset shows.
fn body() -> Vec<u8> {
    (0..1024).map(|i| (i % 251) as u8).collect()
}

/// The binary of `server`, or `None` after printing a SKIPPED line (a panic when CI requires
/// every server).
fn present(server: RealServer) -> Option<PathBuf> {
    if let Some(binary) = server.find_binary() {
        return Some(binary);
    }
    let message = format!(
        "{server} is not installed: apt-get install {}",
        server.package()
    );
    if std::env::var("AFTERBURNER_REQUIRE_REAL_SERVERS").as_deref() == Ok("1") {
        panic!("{message} (AFTERBURNER_REQUIRE_REAL_SERVERS=1)");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// A tempdir open to others (apache2 serves as `nobody` when started as root) holding
/// `site/1k.bin` and `work/`.
fn site() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("1k.bin"), body()).unwrap();
    for (path, mode) in [
        (tmp.path().to_path_buf(), 0o755),
        (site.clone(), 0o755),
        (site.join("1k.bin"), 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    tmp
}

fn options<'a>(site: &'a Path, work: &'a Path) -> TargetOptions<'a> {
    TargetOptions {
        builtin_exe: Path::new("/nonexistent"),
        site_root: site,
        workdir: work,
        server_cpu: None,
        ready_timeout: Duration::from_secs(15),
        listen_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        listen_port: None,
        url_grace: Duration::ZERO,
    }
}

/// One reply: status, headers (names lowercased) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET PATH HTTP/1.1` on `stream` and reads one reply framed by its `Content-Length`
/// (without one, until the server closes).
fn get(stream: &mut BufReader<TcpStream>, addr: SocketAddr, path: &str) -> Reply {
    stream
        .get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    match reply.header("content-length") {
        Some(length) => {
            reply.body = vec![0; length.parse().unwrap()];
            stream.read_exact(&mut reply.body).unwrap();
        }
        None => {
            stream.read_to_end(&mut reply.body).unwrap();
        }
    }
    reply
}

/// The PIDs of the live processes in process group `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold anything, so split after its `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str()) {
            members.push(pid);
        }
    }
    members
}

/// Starts `server` from its generated configuration, fetches the file (twice on one connection
/// where it keeps connections), stops it and checks that nothing of it is left.
fn serves_and_stops(server: RealServer) {
    if present(server).is_none() {
        return;
    }
    let tmp = site();
    let site = tmp.path().join("site");
    let work = tmp.path().join("work");
    let spec = ServerSpec::Real {
        server,
        workers: None,
        cpu: None,
    };
    let handle = ServerHandle::start(&spec, &options(&site, &work))
        .unwrap_or_else(|e| panic!("starting {server}: {e}"));
    assert_eq!(handle.kind(), "real");
    let pid = handle.pid().unwrap();
    let addr = handle.addr();
    assert!(
        handle.command_line().starts_with("exec "),
        "{}",
        handle.command_line()
    );
    assert!(!group_members(pid).is_empty());

    let mut stream = BufReader::new(TcpStream::connect(addr).unwrap());
    stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let first = get(&mut stream, addr, "/1k.bin");
    assert_eq!(first.status, 200, "{server}");
    assert!(
        first.body == body(),
        "{server}: the body differs from the file"
    );
    if server.keeps_alive() {
        // The same connection again: the keep-alive the benchmarks depend on.
        let second = get(&mut stream, addr, "/1k.bin");
        assert_eq!(second.status, 200, "{server}");
        assert!(second.body == body(), "{server}: the second body differs");
        assert_ne!(
            second.header("connection").map(str::to_ascii_lowercase),
            Some("close".into()),
            "{server} closes after the second request"
        );
    } else {
        assert_eq!(
            first.header("connection").map(str::to_ascii_lowercase),
            Some("close".into()),
            "{server}"
        );
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{server}: bytes after the reply");
    }
    // A missing file is a 404, not a 200 of something else.
    let mut other = BufReader::new(TcpStream::connect(addr).unwrap());
    assert_eq!(
        get(&mut other, addr, "/nothing-here").status,
        404,
        "{server}"
    );
    drop(other);
    drop(stream);

    let outcome = handle.stop(Duration::from_secs(10));
    assert!(
        outcome.notes.is_empty(),
        "{server} stopped untidily: {:?}\nstderr:\n{}",
        outcome.notes,
        outcome.stderr_tail
    );
    // Everything in the group is gone at once (the stop waited for it); give the kernel's
    // reaping of the group's last children a moment anyway.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !group_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        group_members(pid),
        Vec::<u32>::new(),
        "{server}: processes of its group are still running"
    );
    assert!(
        work.join(config_file(server)).is_file(),
        "{server}: no configuration in the work directory"
    );
}

fn config_file(server: RealServer) -> &'static str {
    match server {
        RealServer::Nginx => "nginx.conf",
        RealServer::Lighttpd => "lighttpd.conf",
        RealServer::ApachePrefork | RealServer::ApacheEvent => "apache2.conf",
        RealServer::MiniHttpd => "mini_httpd.conf",
        RealServer::H2o => "h2o.conf",
        RealServer::Caddy => "Caddyfile",
    }
}

#[test]
fn nginx_serves_and_stops() {
    serves_and_stops(RealServer::Nginx);
}

#[test]
fn lighttpd_serves_and_stops() {
    serves_and_stops(RealServer::Lighttpd);
}

#[test]
fn apache_prefork_serves_and_stops() {
    serves_and_stops(RealServer::ApachePrefork);
}

#[test]
fn apache_event_serves_and_stops() {
    serves_and_stops(RealServer::ApacheEvent);
}

#[test]
fn mini_httpd_serves_and_stops() {
    serves_and_stops(RealServer::MiniHttpd);
}

#[test]
fn h2o_serves_and_stops() {
    serves_and_stops(RealServer::H2o);
}

#[test]
fn caddy_serves_and_stops() {
    serves_and_stops(RealServer::Caddy);
}

#[test]
fn a_missing_server_names_its_package() {
    let error = TargetError::RealServerMissing {
        server: RealServer::MiniHttpd,
        looked_for: vec!["mini_httpd", "mini-httpd"],
        package: "mini-httpd",
    };
    assert_eq!(
        error.to_string(),
        "mini-httpd is not installed (looked for mini_httpd, mini-httpd in PATH, /usr/sbin, \
         /usr/bin and /sbin): install it with `apt-get install mini-httpd`"
    );
    // Every server has a package to name.
    for server in RealServer::ALL {
        assert!(!server.package().is_empty());
    }
}

#[test]
fn names_map_to_designs_and_real_servers() {
    match server_spec_for_name("loop").unwrap() {
        ServerSpec::Builtin { args, .. } => assert_eq!(args, ["--design", "loop"]),
        other => panic!("{other:?}"),
    }
    match server_spec_for_name("apache-prefork").unwrap() {
        ServerSpec::Real {
            server, workers, ..
        } => {
            assert_eq!(server, RealServer::ApachePrefork);
            assert_eq!(workers, None);
        }
        other => panic!("{other:?}"),
    }
    let error = server_spec_for_name("apache").unwrap_err();
    for name in [
        "loop",
        "uring",
        "nginx",
        "apache-event",
        "mini-httpd",
        "caddy",
    ] {
        assert!(error.contains(name), "{error}");
    }
}

#[test]
fn real_server_tables_parse_and_bad_ones_are_named() {
    let parse = |server: &str| {
        Scenario::parse(
            &format!("{server}\n[[clients]]\nname = \"c\"\nkind = \"closed\"\nclients = 1\n"),
            Path::new("t.toml"),
        )
    };
    let scenario =
        parse("[server]\nkind = \"real\"\nserver = \"apache-event\"\nworkers = 2\ncpu = 0")
            .unwrap();
    match scenario.server {
        ServerSpec::Real {
            server,
            workers,
            cpu,
        } => assert_eq!(
            (server, workers, cpu),
            (RealServer::ApacheEvent, Some(2), Some(0))
        ),
        other => panic!("{other:?}"),
    }
    let unknown = parse("[server]\nkind = \"real\"\nserver = \"apache\"")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("apache-prefork"), "{unknown}");
    let extra = parse("[server]\nkind = \"real\"\nserver = \"nginx\"\nthreads = 2")
        .unwrap_err()
        .to_string();
    assert!(extra.contains("threads"), "{extra}");
    let zero = parse("[server]\nkind = \"real\"\nserver = \"nginx\"\nworkers = 0")
        .unwrap_err()
        .to_string();
    assert!(zero.contains("workers"), "{zero}");
    let mini = parse("[server]\nkind = \"real\"\nserver = \"mini-httpd\"\nworkers = 2")
        .unwrap_err()
        .to_string();
    assert!(mini.contains("server.workers"), "{mini}");
}

/// A short `loadgen run` against nginx from a scenario with `kind = "real"`: a valid result,
/// requests answered, the server's CPU measured, nginx's configuration beside the result.
#[test]
fn a_run_against_nginx_gives_a_valid_result() {
    if present(RealServer::Nginx).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let scenario = tmp.path().join("nginx-real.toml");
    std::fs::write(
        &scenario,
        r#"
name = "nginx-real"
warmup = "500ms"
duration = "1500ms"

[validity]
measures = "either"   # 4 clients without think time: on 2 cores either side may be the limit

[server]
kind = "real"
server = "nginx"

[site]
kind = "specweb96"
dirs = 1

[[clients]]
name = "keepalive"
kind = "closed"
clients = 4
requests_per_connection = 1000
"#,
    )
    .unwrap();
    let mut plan: RunPlan = RunPlan::load(&scenario, &Overrides::default()).unwrap();
    plan.out = tmp.path().join("out");
    plan.builtin_exe = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    plan.private_netns = true;
    plan.sample_interval = Duration::from_millis(250);
    let output = run(&plan).unwrap_or_else(|e| panic!("run failed: {e:#}"));
    let result = &output.result;
    assert!(
        result.valid,
        "invalid: {:?}; warnings: {:?}",
        result.invalid_reasons, result.warnings
    );
    assert_eq!(result.server.kind, "real");
    assert!(
        result.server.command_line.contains("nginx"),
        "{}",
        result.server.command_line
    );
    let point = &result.load_points[0];
    assert!(
        point.totals.ops > 100,
        "only {} requests answered",
        point.totals.ops
    );
    assert_eq!(point.totals.errors_total, 0, "{:?}", point.totals.errors);
    // The probe found nginx's process tree: its CPU per request is measured.
    let cpu = point
        .kernel
        .as_ref()
        .and_then(|k| k.summary.server_cpu_us_per_op);
    assert!(
        cpu.is_some_and(|us| us > 0.0),
        "server CPU per request: {cpu:?}"
    );
    let dir = output.result_path.parent().unwrap();
    let configs: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "nginx.conf"))
        .collect();
    assert_eq!(
        configs.len(),
        1,
        "nginx.conf beside the result: {configs:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
