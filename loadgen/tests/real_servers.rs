//! The loadgen against real Debian web servers (nginx, lighttpd, apache2), with the replies
//! every real server sends: a file with `Content-Length`, a `Transfer-Encoding: chunked` body,
//! `204 No Content` and `304 Not Modified` without a length. Each server's own access log is the
//! referee: the loadgen must have sent, and read to their end, as many requests as the server
//! logged, and each kind of reply must end where RFC 9112 section 6.3 says it ends (a 204 or 304
//! at its head, a chunked body at its last chunk), on a connection that is then reused.
//!
//! Each reply is first fetched once with a reference client (`real_servers_support::raw_http`,
//! two pipelined GETs of `PATH?raw`), so a test proves the server really sends what the test
//! claims before it judges the loadgen on it.
//!
//! Time: the three servers start side by side, and each one's four loadgen runs (0.5 s warm-up,
//! 2 s measured) run side by side too, all on the first test's call; the other tests wait for
//! those results. About 4 s in all on 2 cores, whichever tests are selected.
//!
//! Needs Debian's `nginx-light`, `lighttpd` and `apache2` (`.ci/run` installs them). A missing
//! server's tests print a SKIPPED line naming the package; with
//! `AFTERBURNER_REQUIRE_REAL_SERVERS=1` (CI) they fail instead.

mod real_servers_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use loadgen::run::{run, RunPlan};
use loadgen::scenario::Overrides;
use real_servers_support::raw_http::{pipelined_gets, Framing, Reply};
use real_servers_support::{
    cgi_chunked_body, read_access_log, static_body, Kind, LogLine, Running, Server, ServerDir,
};
use reports::model::{PopulationResult, RunResult};

/// Keep-alive clients per run. Also the tolerance of every count against the access log: when
/// the load stops, each client may have one request in flight, which the loadgen counted as
/// sent and the server may or may not have read (the loadgen's close can reset it first), and
/// whose reply, if the server sent and logged it, the loadgen no longer reads. So the loadgen's
/// `requests_sent` and `responses_completed` may each differ from the log by at most one
/// request a client, and no more.
const CLIENTS: u64 = 4;

/// GETs of `PATH?raw` pipelined on the raw check's one connection: two, so that the first
/// reply's end is proven by the second's status line following it byte for byte.
const RAW_REQUESTS: usize = 2;

/// The loadgen's scenario for one URL. `request_timeout` is shorter than the run, so that a
/// reply whose end the loadgen misses (a 204 or a chunked body read as "until the close" on a
/// connection the server keeps open) shows as `timeout` errors inside the measured window
/// instead of as a run that merely did little.
fn scenario(server: Server, kind: Kind, running: &Running, htdocs: &Path) -> String {
    format!(
        r#"
name = "{server}-{kind}"
description = "the loadgen against {server}: {kind} replies"
warmup = "500ms"
duration = "2s"
request_timeout = "2s"

[server]
kind = "url"
# The loadgen's one check that the server is up, at a target no test counts.
url = "http://{addr}/1k.bin?probe"

[site]
kind = "directory"
root = "{htdocs}"
urls = "urls.txt"

[[clients]]
name = "keepalive"
kind = "closed"
clients = {CLIENTS}
requests_per_connection = 1000000
"#,
        server = server.name(),
        kind = kind.name(),
        addr = running.addr,
        htdocs = htdocs.display(),
    )
}

/// One kind of reply on one server: what the raw check got and what the loadgen measured.
struct Case {
    kind: Kind,
    path: &'static str,
    /// The replies to the raw check's pipelined GETs of `PATH?raw`.
    raw: Result<Vec<Reply>, String>,
    /// The loadgen's run against `PATH`, or why there is none.
    run: Result<RunResult, String>,
}

/// A server that ran: its cases and its whole access log, read after it stopped.
struct Served {
    cases: Vec<Case>,
    log: Vec<LogLine>,
}

enum Outcome {
    /// The server's binary is not installed: the message says which package to install.
    Missing(String),
    /// The harness failed (the server did not start or stop, the log is unreadable).
    Failed(String),
    Served(Served),
}

/// Every server's outcome: the first test to ask runs all three servers at once (each in a
/// thread of its own, each of its runs in a thread of its own); the others wait for it.
fn outcomes() -> &'static HashMap<Server, Outcome> {
    static OUTCOMES: OnceLock<HashMap<Server, Outcome>> = OnceLock::new();
    OUTCOMES.get_or_init(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = Server::ALL
                .into_iter()
                .map(|server| (server, scope.spawn(move || serve(server))))
                .collect();
            handles
                .into_iter()
                .map(|(server, handle)| {
                    let outcome = handle
                        .join()
                        .unwrap_or_else(|panic| Outcome::Failed(panic_message(&*panic)));
                    (server, outcome)
                })
                .collect()
        })
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// Starts `server`, checks each kind of reply raw, runs the loadgen against each URL at once,
/// stops the server (so lighttpd flushes its log) and reads its access log.
fn serve(server: Server) -> Outcome {
    let Some(binary) = server.binary() else {
        return Outcome::Missing(format!(
            "{name} is not installed (not in PATH nor /usr/sbin): the real-server tests need it. \
             Install it with `apt-get install {package}` (Debian); `.ci/run` does.",
            name = server.name(),
            package = server.package()
        ));
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Outcome::Failed(format!("{}: {what}: {e}", server.name()))
    };
    let server_tmp = match tempfile::tempdir() {
        Ok(tmp) => tmp,
        Err(e) => return failed("tempdir", &e),
    };
    let dir = match ServerDir::create(server_tmp.path()) {
        Ok(dir) => dir,
        Err(e) => return failed("writing the site", &e),
    };
    let mut running = match Running::start(server, &binary, &dir) {
        Ok(running) => running,
        Err(e) => return Outcome::Failed(e),
    };
    let runs_tmp = match tempfile::tempdir() {
        Ok(tmp) => tmp,
        Err(e) => return failed("tempdir", &e),
    };
    let raws: Vec<_> = Kind::ALL
        .iter()
        .map(|&kind| {
            let target = format!("{}?raw", server.path(kind));
            pipelined_gets(running.addr, &target, RAW_REQUESTS)
        })
        .collect();
    let runs: Vec<Result<RunResult, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = Kind::ALL
            .iter()
            .map(|&kind| {
                let case_dir = runs_tmp.path().join(kind.name());
                let text = scenario(server, kind, &running, &dir.htdocs());
                scope.spawn(move || run_case(&case_dir, &text, server.path(kind)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| Err(panic_message(&*p))))
            .collect()
    });
    if let Err(e) = running.stop() {
        return Outcome::Failed(format!("{e}{}", running.diagnostics()));
    }
    let log = match read_access_log(&dir.access_log()) {
        Ok(log) => log,
        Err(e) => return Outcome::Failed(e),
    };
    let cases = Kind::ALL
        .into_iter()
        .zip(raws.into_iter().zip(runs))
        .map(|(kind, (raw, run))| Case {
            kind,
            path: server.path(kind),
            raw,
            run,
        })
        .collect();
    Outcome::Served(Served { cases, log })
}

/// One loadgen run, in-process as `loadgen run` does it, in the host namespace (the server is
/// there).
fn run_case(dir: &Path, scenario: &str, path: &str) -> Result<RunResult, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("urls.txt"), format!("1 {path}\n")).map_err(|e| e.to_string())?;
    let mut plan = RunPlan::load(&file, &Overrides::default()).map_err(|e| format!("{e:#}"))?;
    plan.out = dir.join("out");
    plan.builtin_exe = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    plan.private_netns = false;
    plan.sample_interval = Duration::from_millis(250);
    run(&plan)
        .map(|output| output.result)
        .map_err(|e| format!("the loadgen run failed: {e:#}"))
}

/// The server's results, or `None` (and a SKIPPED line) when it is not installed and CI did
/// not ask for it.
fn served(server: Server) -> Option<&'static Served> {
    match &outcomes()[&server] {
        Outcome::Missing(message) => {
            if std::env::var("AFTERBURNER_REQUIRE_REAL_SERVERS").as_deref() == Ok("1") {
                panic!("{message} (AFTERBURNER_REQUIRE_REAL_SERVERS=1)");
            }
            eprintln!("SKIPPED: {message}");
            None
        }
        Outcome::Failed(message) => panic!("{message}"),
        Outcome::Served(served) => Some(served),
    }
}

impl Served {
    fn case(&self, kind: Kind) -> &Case {
        self.cases.iter().find(|c| c.kind == kind).unwrap()
    }

    /// The access log's lines whose request target is exactly `target`.
    fn lines(&self, target: &str) -> Vec<&LogLine> {
        self.log.iter().filter(|l| l.target == target).collect()
    }
}

/// Failed checks, gathered so that one run reports every way it is wrong, not the first.
struct Checks {
    context: String,
    failures: Vec<String>,
}

impl Checks {
    fn new(context: String) -> Checks {
        Checks {
            context,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(failure());
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}:\n  - {}",
            self.context,
            self.failures.join("\n  - ")
        );
    }
}

/// How the raw replies to `PATH?raw` differ from what `kind` claims; empty when they are that
/// kind of reply.
fn raw_check_failures(server: Server, kind: Kind, replies: &[Reply]) -> Vec<String> {
    let mut checks = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            checks.push(what.to_string());
        }
    };
    for reply in replies {
        check(reply.status == kind.status(), "wrong status");
        match kind {
            Kind::ContentLength => {
                check(
                    reply.framing == Framing::Length(static_body().len() as u64),
                    "not framed by a Content-Length of the file's size",
                );
                check(reply.body == static_body(), "not the file's bytes");
            }
            Kind::Chunked => {
                check(
                    matches!(reply.framing, Framing::Chunked { chunks } if chunks >= 1),
                    "not chunked",
                );
                check(
                    reply.header("content-length").is_none(),
                    "has a Content-Length besides",
                );
                let expected_body = match server {
                    // A listing of list/'s two files.
                    Server::Nginx => {
                        let text = String::from_utf8_lossy(&reply.body);
                        text.contains("a.txt") && text.contains("b.txt")
                    }
                    _ => reply.body == cgi_chunked_body(),
                };
                check(expected_body, "not the body the URL serves");
            }
            Kind::NoContent | Kind::NotModified => {
                // A length would let a client that knows only lengths frame it; the test is
                // of the status rule.
                check(
                    reply.header("content-length").is_none(),
                    "has a Content-Length",
                );
                check(
                    reply.header("transfer-encoding").is_none(),
                    "has a Transfer-Encoding",
                );
            }
        }
    }
    check(
        replies.windows(2).all(|w| w[0].body == w[1].body),
        "the two replies' bodies differ, so a body size cannot be expected",
    );
    if checks.is_empty() {
        return checks;
    }
    let replies: Vec<String> = replies.iter().map(Reply::describe).collect();
    vec![format!(
        "the raw {} check of {server:?} is not what it claims ({}): {replies:#?}",
        kind.name(),
        checks.join(", ")
    )]
}

/// The raw check's replies for `kind`, proven to be that kind of reply.
fn proven_raw(server: Server, served: &Served, kind: Kind) -> &[Reply] {
    let case = served.case(kind);
    let replies = case
        .raw
        .as_ref()
        .unwrap_or_else(|e| panic!("raw check of {server:?} {}: {e}", case.path));
    let failures = raw_check_failures(server, kind, replies);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    replies
}

/// The harness itself: the server started, each of its URLs sends the kind of reply it
/// claims, and its access log holds one line per raw request with the status and the exact
/// bytes the reference client received, so the log can referee the loadgen.
fn harness_holds(server: Server) {
    let Some(served) = served(server) else {
        return;
    };
    for kind in Kind::ALL {
        let replies = proven_raw(server, served, kind);
        let target = format!("{}?raw", server.path(kind));
        let logged: Vec<(u16, u64)> = served
            .lines(&target)
            .iter()
            .map(|l| (l.status, l.bytes))
            .collect();
        let received: Vec<(u16, u64)> = replies
            .iter()
            .map(|r| (r.status, r.wire_len as u64))
            .collect();
        assert_eq!(
            logged, received,
            "{server:?} {target}: the access log's (status, bytes) against what the raw check \
             received"
        );
    }
}

/// The one population's figures, for messages.
fn summary(pop: &PopulationResult) -> String {
    format!(
        "requests_sent {}, responses_completed {}, connections_established {}, ops {}, \
         bytes {}, errors {:?}",
        pop.requests_sent,
        pop.responses_completed,
        pop.connections_established,
        pop.totals.ops,
        pop.totals.bytes,
        pop.totals.errors
    )
}

/// The loadgen's run against one URL, judged against the server's access log.
fn loadgen_agrees_with_the_log(server: Server, kind: Kind) {
    let Some(served) = served(server) else {
        return;
    };
    let raw = proven_raw(server, served, kind);
    let case = served.case(kind);
    let result = case.run.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.load_points.len(), 1, "one load point");
    let point = &result.load_points[0];
    let pop = &point.populations[0];
    let lines = served.lines(case.path);
    let logged = lines.len() as u64;
    let mut checks = Checks::new(format!(
        "{server:?} {} ({} replies): loadgen {}; access log {logged} lines",
        case.path,
        kind.name(),
        summary(pop)
    ));

    checks.check(pop.requests_sent.abs_diff(logged) <= CLIENTS, || {
        format!(
            "requests_sent {} against {logged} access-log lines (at most {CLIENTS} apart: one \
             request per client in flight when the load stopped)",
            pop.requests_sent
        )
    });
    checks.check(pop.responses_completed.abs_diff(logged) <= CLIENTS, || {
        format!(
            "responses_completed {} against {logged} access-log lines (at most {CLIENTS} apart: \
             one request per client in flight when the load stopped)",
            pop.responses_completed
        )
    });
    // The load's replies were the raw check's, but for the few cut off at the end: the same
    // status and, so the same framing, the same bytes on the wire. Not for chunked bodies,
    // whose framing a server may choose reply by reply (lighttpd writes a chunk's size as
    // `3e8` or `03e8`), so that only their status is compared.
    let expected = (raw[0].status, raw[0].wire_len as u64);
    let unlike: Vec<(u16, u64)> = lines
        .iter()
        .map(|l| (l.status, l.bytes))
        .filter(|&(status, bytes)| {
            status != expected.0 || (kind != Kind::Chunked && bytes != expected.1)
        })
        .collect();
    checks.check(unlike.len() as u64 <= CLIENTS, || {
        format!(
            "{} logged replies differ from the raw check's (status, bytes) {expected:?}, e.g. \
             {:?}",
            unlike.len(),
            &unlike[..unlike.len().min(5)]
        )
    });

    let totals = &pop.totals;
    match kind {
        Kind::ContentLength | Kind::Chunked => {
            let body = raw[0].body.len() as u64;
            checks.check(totals.ops > 0, || "no successful reply (ops 0)".into());
            checks.check(totals.errors_total == 0, || {
                format!("errors {:?}", totals.errors)
            });
            checks.check(totals.bytes == totals.ops * body, || {
                format!(
                    "bytes {} for {} ops, not the body's {body} bytes a reply",
                    totals.bytes, totals.ops
                )
            });
        }
        Kind::NoContent | Kind::NotModified => {
            // Only a 200 is a success, so each reply is a `bad_status`, and nothing else: a
            // `timeout` means the loadgen waited for a body the status says is not there.
            let timeouts = totals.errors.get("timeout").copied().unwrap_or(0);
            checks.check(timeouts == 0, || {
                format!(
                    "{timeouts} timeouts: the replies did not complete at their head \
                     (RFC 9112 section 6.3: a {} has no body)",
                    kind.status()
                )
            });
            let bad_status = totals.errors.get("bad_status").copied().unwrap_or(0);
            checks.check(bad_status > 0 && totals.ops == 0, || {
                format!(
                    "bad_status {bad_status}, ops {}: every completed {} counts as one \
                     bad_status (only a 200 is a success), and some should have completed",
                    totals.ops,
                    kind.status()
                )
            });
            let others: Vec<_> = totals
                .errors
                .iter()
                .filter(|(k, &n)| n > 0 && k.as_str() != "bad_status")
                .collect();
            checks.check(others.is_empty(), || {
                format!("errors other than bad_status: {others:?}")
            });
        }
    }
    // Keep-alive: each client's connection carries request after request.
    checks.check(
        pop.connections_established * 10 <= pop.requests_sent,
        || {
            format!(
                "{} connections for {} requests: connections are not reused",
                pop.connections_established, pop.requests_sent
            )
        },
    );
    checks.finish();
}

#[test]
fn nginx_sends_each_kind_of_reply_as_claimed_and_logs_each_request_once() {
    harness_holds(Server::Nginx);
}

#[test]
fn nginx_content_length_replies_complete_at_their_length() {
    loadgen_agrees_with_the_log(Server::Nginx, Kind::ContentLength);
}

#[test]
fn nginx_chunked_replies_complete_at_the_last_chunk() {
    loadgen_agrees_with_the_log(Server::Nginx, Kind::Chunked);
}

#[test]
fn nginx_204_replies_complete_at_the_head_on_a_kept_connection() {
    loadgen_agrees_with_the_log(Server::Nginx, Kind::NoContent);
}

#[test]
fn nginx_304_replies_complete_at_the_head_on_a_kept_connection() {
    loadgen_agrees_with_the_log(Server::Nginx, Kind::NotModified);
}

#[test]
fn lighttpd_sends_each_kind_of_reply_as_claimed_and_logs_each_request_once() {
    harness_holds(Server::Lighttpd);
}

#[test]
fn lighttpd_content_length_replies_complete_at_their_length() {
    loadgen_agrees_with_the_log(Server::Lighttpd, Kind::ContentLength);
}

#[test]
fn lighttpd_chunked_replies_complete_at_the_last_chunk() {
    loadgen_agrees_with_the_log(Server::Lighttpd, Kind::Chunked);
}

#[test]
fn lighttpd_204_replies_complete_at_the_head_on_a_kept_connection() {
    loadgen_agrees_with_the_log(Server::Lighttpd, Kind::NoContent);
}

#[test]
fn lighttpd_304_replies_complete_at_the_head_on_a_kept_connection() {
    loadgen_agrees_with_the_log(Server::Lighttpd, Kind::NotModified);
}

#[test]
fn apache2_sends_each_kind_of_reply_as_claimed_and_logs_each_request_once() {
    harness_holds(Server::Apache2);
}

#[test]
fn apache2_content_length_replies_complete_at_their_length() {
    loadgen_agrees_with_the_log(Server::Apache2, Kind::ContentLength);
}

#[test]
fn apache2_chunked_replies_complete_at_the_last_chunk() {
    loadgen_agrees_with_the_log(Server::Apache2, Kind::Chunked);
}

#[test]
fn apache2_204_replies_complete_at_the_head_on_a_kept_connection() {
    loadgen_agrees_with_the_log(Server::Apache2, Kind::NoContent);
}

#[test]
fn apache2_304_replies_complete_at_the_head_on_a_kept_connection() {
    loadgen_agrees_with_the_log(Server::Apache2, Kind::NotModified);
}
