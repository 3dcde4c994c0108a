//! The loadgen against small servers over real sockets, each replying the way real servers do
//! and the loadgen once got wrong: chunked bodies, 204 without a length, kept-alive connections
//! closed without warning, a server that never answers, one that answers 404 to everything.
//! Each runs a short `[server] kind = "url"` scenario through the run pipeline and checks what
//! the result says against what the server saw.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use loadgen::run::{run, RunPlan};
use loadgen::scenario::Overrides;
use reports::model::{PopulationResult, RunResult};

/// How a test server answers each request on a connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `200` with a 2-byte body and `Content-Length`, kept alive; the target is recorded.
    Ok,
    /// `200`, chunked, a 60-byte and a 40-byte chunk, kept alive.
    Chunked60And40,
    /// `204 No Content` without `Content-Length`, kept alive.
    NoContent,
    /// `200` with `Content-Length`, no `Connection: close`, then the connection is closed
    /// after `n` replies as if by an idle timeout the client could not see coming.
    CloseAfter(u64),
    /// Answers the first request it ever sees (the loadgen's readiness probe), then reads
    /// requests and never answers.
    NeverAfterTheProbe,
}

/// A test server on a free port: a thread per connection; what it saw is in its counters.
struct TestServer {
    port: u16,
    requests: Arc<AtomicU64>,
    hosts: Arc<Mutex<Vec<String>>>,
    targets: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = Seen {
            requests: Arc::clone(&requests),
            hosts: Arc::clone(&hosts),
            targets: Arc::clone(&targets),
        };
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                thread::spawn(move || serve(stream, behaviour, &seen));
            }
        });
        TestServer {
            port,
            requests,
            hosts,
            targets,
        }
    }
}

/// What a test server saw, shared by its connections' threads.
#[derive(Clone)]
struct Seen {
    requests: Arc<AtomicU64>,
    hosts: Arc<Mutex<Vec<String>>>,
    targets: Arc<Mutex<Vec<String>>>,
}

/// Answers the requests of one connection until the client goes or the behaviour closes it.
fn serve(stream: TcpStream, behaviour: Behaviour, seen: &Seen) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut answered = 0u64;
    loop {
        let mut host = None;
        let mut target = None;
        let mut line = String::new();
        // The request head: lines until the blank one.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if target.is_none() {
                target = line.split(' ').nth(1).map(str::to_string);
            }
            if let Some(value) = line.strip_prefix("Host: ") {
                host = Some(value.trim().to_string());
            }
            if line == "\r\n" {
                break;
            }
        }
        let seen_before = seen.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(host) = host {
            seen.hosts.lock().unwrap().push(host);
        }
        if let Some(target) = target {
            seen.targets.lock().unwrap().push(target);
        }
        let reply: Vec<u8> = match behaviour {
            Behaviour::Ok => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            Behaviour::Chunked60And40 => {
                let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n".to_vec();
                r.extend([b'a'; 60]);
                r.extend(b"\r\n28\r\n");
                r.extend([b'b'; 40]);
                r.extend(b"\r\n0\r\n\r\n");
                r
            }
            Behaviour::NoContent => b"HTTP/1.1 204 No Content\r\nServer: test\r\n\r\n".to_vec(),
            Behaviour::CloseAfter(_) => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()
            }
            Behaviour::NeverAfterTheProbe if seen_before == 0 => {
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
            }
            Behaviour::NeverAfterTheProbe => {
                // Hold the connection, reading whatever comes, until the client closes.
                let mut sink = [0u8; 1024];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
        };
        if writer.write_all(&reply).is_err() {
            return;
        }
        answered += 1;
        if let Behaviour::CloseAfter(n) = behaviour {
            if answered >= n {
                return;
            }
        }
    }
}

/// Runs `clients` as the scenario's `[[clients]]` tables against `http://HOST:PORT/` for one
/// URL path, for `duration` after a short warm-up; results under a tempdir.
fn run_against(host: &str, port: u16, path: &str, clients: &str, duration: &str) -> RunResult {
    run_urls(
        host,
        port,
        &format!("1 {path}\n"),
        clients,
        ("300ms", duration, 1),
    )
}

/// [`run_against`] with a whole URL list (`WEIGHT PATH` lines), its own warm-up and `workers`
/// worker threads.
fn run_urls(
    host: &str,
    port: u16,
    urls: &str,
    clients: &str,
    (warmup, duration, workers): (&str, &str, usize),
) -> RunResult {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(dir.path().join("urls"), urls).unwrap();
    let scenario = dir.path().join("replies.toml");
    std::fs::write(
        &scenario,
        format!(
            "warmup = \"{warmup}\"\nduration = \"{duration}\"\nrequest_timeout = \"10s\"\n\
             workers = {workers}\n\
             [server]\nkind = \"url\"\nurl = \"http://{host}:{port}/\"\n\
             [site]\nkind = \"directory\"\nroot = \"site\"\nurls = \"urls\"\n\
             # The test server runs in this process: its CPU counts as the generator's.\n\
             [validity]\nmeasures = \"generator\"\n\n{clients}"
        ),
    )
    .unwrap();
    let mut plan =
        RunPlan::load(&scenario, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    plan.out = dir.path().join("out");
    plan.builtin_exe = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    plan.private_netns = false;
    plan.sample_interval = Duration::from_millis(250);
    run(&plan)
        .unwrap_or_else(|e| panic!("run failed: {e:#}"))
        .result
}

const KEEP_ALIVE_CLIENTS: &str = "[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 4\n\
                                  requests_per_connection = 1000000\n";

fn population(result: &RunResult) -> &PopulationResult {
    &result.load_points[0].populations[0]
}

fn errors(result: &RunResult) -> String {
    format!("{:?}", result.load_points[0].totals.errors)
}

#[test]
fn chunked_replies_complete_at_the_last_chunk_and_the_connection_is_reused() {
    let server = TestServer::start(Behaviour::Chunked60And40);
    let result = run_against(
        "127.0.0.1",
        server.port,
        "/chunked",
        KEEP_ALIVE_CLIENTS,
        "1s",
    );
    let p = population(&result);
    assert!(p.totals.ops > 100, "ops {}", p.totals.ops);
    assert_eq!(p.totals.errors_total, 0, "{}", errors(&result));
    assert_eq!(
        p.totals.bytes,
        100 * p.totals.ops,
        "100 decoded bytes a reply"
    );
    assert!(
        p.connections_established <= 4,
        "{} connections",
        p.connections_established
    );
    assert!(result.valid, "{:?}", result.invalid_reasons);
}

#[test]
fn a_204_without_length_ends_at_the_blank_line_and_the_connection_is_reused() {
    let server = TestServer::start(Behaviour::NoContent);
    let result = run_against("127.0.0.1", server.port, "/empty", KEEP_ALIVE_CLIENTS, "1s");
    let p = population(&result);
    // Only 200 counts as a success, as it always did; but each 204 completes at once instead of
    // waiting out the request timeout.
    let bad_status = p.totals.errors.get("bad_status").copied().unwrap_or(0);
    assert!(bad_status > 100, "{}", errors(&result));
    assert_eq!(bad_status, p.totals.errors_total, "{}", errors(&result));
    assert!(
        p.connections_established <= 4,
        "{} connections",
        p.connections_established
    );
    assert!(!result.valid, "nothing succeeded: the run is invalid");
}

#[test]
fn a_reused_connection_closed_under_a_request_sends_it_again_as_a_retry() {
    let server = TestServer::start(Behaviour::CloseAfter(3));
    let result = run_against("127.0.0.1", server.port, "/", KEEP_ALIVE_CLIENTS, "1s");
    let p = population(&result);
    assert!(p.totals.ops > 100, "ops {}", p.totals.ops);
    assert_eq!(
        p.totals.errors_total,
        0,
        "no reset, no error: {}",
        errors(&result)
    );
    assert!(
        p.retries_on_new_connection > 10,
        "every third reply closes the connection: {} retries",
        p.retries_on_new_connection
    );
    assert!(result.valid, "{:?}", result.invalid_reasons);
    // Requests written to a connection the server had already closed never reach it; their
    // retries do, so it saw at least every answered one.
    let seen = server.requests.load(Ordering::Relaxed);
    assert!(
        seen >= p.totals.ops,
        "the server saw {seen}, {} answered",
        p.totals.ops
    );
}

#[test]
fn requests_a_server_never_answers_are_counted_unanswered_and_the_point_is_invalid() {
    let server = TestServer::start(Behaviour::NeverAfterTheProbe);
    let open_loop = "[[clients]]\nname = \"arrivals\"\nkind = \"open\"\nrate = 20\n\
                     arrival = \"uniform\"\n";
    let result = run_against("127.0.0.1", server.port, "/", open_loop, "3s");
    let p = population(&result);
    assert_eq!(p.totals.ops, 0);
    // 20/s from the start of the 0.3 s warm-up to the end of the 3 s window, none answered.
    assert!(
        (64..=68).contains(&p.unanswered),
        "{} unanswered",
        p.unanswered
    );
    assert!(
        p.latency.total_us.count >= p.unanswered,
        "their waits are in the latency"
    );
    assert!(!result.valid);
    let reasons = result.invalid_reasons.join("\n");
    assert!(reasons.contains("no request was answered"), "{reasons}");
    assert!(
        result
            .warnings
            .iter()
            .any(|w| w.contains("requests were still unanswered when the point ended")),
        "{:?}",
        result.warnings
    );
}

#[test]
fn the_host_header_is_the_one_written_in_the_url() {
    let server = TestServer::start(Behaviour::Chunked60And40);
    run_against("localhost", server.port, "/", KEEP_ALIVE_CLIENTS, "500ms");
    let hosts = server.hosts.lock().unwrap();
    assert!(!hosts.is_empty());
    let expected = format!("localhost:{}", server.port);
    assert!(
        hosts.iter().all(|h| *h == expected),
        "{:?}",
        &hosts[..hosts.len().min(3)]
    );
}

/// `python3 -m http.server` started in a directory without the file: every request is a 404.
#[test]
fn a_server_answering_404_to_everything_makes_the_run_invalid() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: python3 is missing (apt-get install python3)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(dir.path().join("site")).unwrap();
    std::fs::write(dir.path().join("urls"), "1 /index.html\n").unwrap();
    let scenario = dir.path().join("404.toml");
    std::fs::write(
        &scenario,
        format!(
            "warmup = \"300ms\"\nduration = \"1s\"\n\
             [server]\nkind = \"command\"\n\
             command = \"python3 -m http.server {{port}} --bind {{host}} --directory {}\"\n\
             ready_url = \"http://{{host}}:{{port}}/\"\n\
             [site]\nkind = \"directory\"\nroot = \"site\"\nurls = \"urls\"\n\n{KEEP_ALIVE_CLIENTS}",
            empty.display()
        ),
    )
    .unwrap();
    let mut plan = RunPlan::load(&scenario, &Overrides::default()).unwrap();
    plan.out = dir.path().join("out");
    plan.builtin_exe = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let result = run(&plan).unwrap_or_else(|e| panic!("{e:#}")).result;
    assert!(!result.valid, "a run of 404s must not pass");
    let reasons = result.invalid_reasons.join("\n");
    assert!(reasons.contains("no request was answered"), "{reasons}");
    assert!(reasons.contains("bad_status"), "{reasons}");
    let _ = Path::new(&scenario);
}

/// The same scenario run by one worker and by three asks for the same URLs: every arrival draws
/// its URL from its own stream, and the workers take turns over one schedule.
#[test]
fn a_load_split_over_workers_makes_the_same_draws() {
    let urls: String = (0..20).map(|n| format!("1 /file{n}\n")).collect();
    let arrivals = "[[clients]]\nname = \"arrivals\"\nkind = \"open\"\nrate = 300\n\
                    arrival = \"uniform\"\nrequests_per_connection = 1000\n";
    let mut asked = Vec::new();
    for workers in [1, 3] {
        let server = TestServer::start(Behaviour::Ok);
        let result = run_urls(
            "127.0.0.1",
            server.port,
            &urls,
            arrivals,
            ("300ms", "1s", workers),
        );
        assert!(
            result.load_points[0].totals.ops > 100,
            "workers = {workers}"
        );
        // The first request is the readiness probe's, not the load's.
        let mut targets: Vec<String> = server.targets.lock().unwrap()[1..].to_vec();
        targets.sort();
        asked.push(targets);
    }
    assert_eq!(asked[0].len(), asked[1].len(), "the same arrivals");
    assert_eq!(asked[0], asked[1], "the same URLs");
}
