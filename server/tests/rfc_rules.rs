//! Request validation by RFC 9110/9112 over real sockets, raw bytes in, as a new user would try
//! it: the inputs of issue 15 with their right answers on every design, each rule of the order of
//! checks (server/src/http.rs) once, request smuggling, and what the site serves (no dotfiles
//! unless `--dotfiles`, no symlink out of the root).

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::time::{Duration, Instant};
use support::*;

fn site() -> Site {
    let site = Site::new();
    site.file("index.html", "<h1>root index</h1>\n")
        .file("a", "file a\n")
        .file("caf\u{e9}.html", "accented\n")
        .file("sub/index.html", "<p>sub index</p>\n");
    site
}

/// Sends `raw` on a fresh connection, reads one response and checks it is a closing error:
/// `status`, `Connection: close`, the common headers, then the server's close with no further
/// bytes (a second response would mean the server parsed what followed the rejected head).
fn rejected(server: &Server, raw: &[u8], status: u16, why: &str) -> Response {
    let (resp, mut client) = fetch_raw(server.port, raw);
    assert_eq!(
        resp.status,
        status,
        "{why}: {:?} answered {resp:?}",
        String::from_utf8_lossy(raw)
    );
    assert_common_headers(&resp);
    assert!(
        resp.says_close(),
        "{why}: a rejection carries `Connection: close`: {:?}",
        resp.headers
    );
    if let Err(problem) = client.wait_closed(IO_TIMEOUT) {
        panic!("{why}: after the {status}: {problem}");
    }
    resp
}

#[apply(designs)]
fn post_with_a_body_over_http10_is_405_with_allow(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let resp = rejected(
        &server,
        b"POST /index.html HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        405,
        "a well-framed POST is a method the server does not serve (RFC 9110 15.5.6)",
    );
    assert_eq!(resp.header("Allow"), Some("GET, HEAD"));
}

#[apply(designs)]
fn put_without_host_is_400_not_405(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    rejected(
        &server,
        b"PUT / HTTP/1.1\r\n\r\n",
        400,
        "Host is checked before the method (RFC 9112 3.2: a MUST)",
    );
}

#[apply(designs)]
fn two_host_lines_are_400_and_close(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    rejected(
        &server,
        b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        400,
        "more than one Host line (RFC 9112 3.2)",
    );
}

#[apply(designs)]
fn a_space_inside_the_target_is_400_not_505(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    rejected(
        &server,
        b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n",
        400,
        "a request line of four words (RFC 9112 3)",
    );
}

#[apply(designs)]
fn a_directory_redirect_keeps_the_query(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut client = server.connect();
    let resp = client.roundtrip(get11("/sub?x=1&y=2", &[]));
    assert_eq!(resp.status, 301);
    assert_common_headers(&resp);
    assert_eq!(resp.header("Location"), Some("/sub/?x=1&y=2"));
    assert_eq!(
        resp.body_text(),
        "<html><body><a href=\"/sub/?x=1&amp;y=2\">/sub/?x=1&amp;y=2</a></body></html>\n"
    );
    assert_eq!(resp.content_length(), resp.body.len());
    assert!(!resp.says_close(), "a redirect keeps the connection open");
    // The query-less redirect is the prebuilt one; the connection still serves.
    let resp = client.roundtrip(get11("/sub", &[]));
    assert_eq!((resp.status, resp.header("Location")), (301, Some("/sub/")));
    let resp = client.roundtrip(get11("/sub/?x=1&y=2", &[]));
    assert_eq!(
        (resp.status, resp.body_text().as_str()),
        (200, "<p>sub index</p>\n")
    );
}

#[apply(designs)]
fn a_higher_minor_version_is_served_as_http11(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut client = server.connect();
    for _ in 0..2 {
        let resp = client.roundtrip(request("GET", "/index.html", "HTTP/1.2", true, &[]));
        assert_eq!(resp.status, 200, "RFC 9110 2.5: {resp:?}");
        assert_eq!(resp.version, "HTTP/1.1");
        assert_eq!(resp.body_text(), "<h1>root index</h1>\n");
        assert!(
            !resp.says_close(),
            "HTTP/1.1 keeps alive: {:?}",
            resp.headers
        );
    }
    rejected(
        &server,
        &request("GET", "/index.html", "HTTP/1.2", false, &[]),
        400,
        "HTTP/1.2 is HTTP/1.1, whose Host is required",
    );
}

#[apply(designs)]
fn raw_non_ascii_target_bytes_are_400(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    // The file exists: a lenient server would serve it.
    for raw in [
        &b"GET /caf\xc3\xa9.html HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"GET /caf\xe9.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ] {
        rejected(&server, raw, 400, "bytes from 0x80 (RFC 3986 2)");
    }
    let mut client = server.connect();
    let resp = client.roundtrip(get11("/caf%C3%A9.html", &[]));
    assert_eq!(
        (resp.status, resp.body_text().as_str()),
        (200, "accented\n")
    );
}

/// Each rule of the order of checks once, on the default design, and the counters they leave.
#[test]
fn each_rule_answers_its_status_and_closes() {
    let site = site();
    let mut server = Server::start("loop", &site, &[]);
    #[rustfmt::skip]
    let rules: &[(&[u8], u16, &str)] = &[
        (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method is a token (RFC 9110 5.6.2)"),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "one SP between the parts (RFC 9112 3)"),
        (b"GET /\r\n\r\n", 400, "HTTP/0.9's version-less line (RFC 9112 3)"),
        (b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400, "bare CR (RFC 9112 2.2)"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "whitespace before the colon (RFC 9112 5.1)"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400, "obs-fold (RFC 9112 5.2)"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "TE and CL (RFC 9112 6.3)"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "TE not ending in chunked (RFC 9112 6.3)"),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "TE in HTTP/1.0 (RFC 9112 6.1)"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "differing CL (RFC 9110 8.6)"),
        (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400, "malformed version (RFC 9112 2.3)"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "another major version (RFC 9110 15.6.6)"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host (RFC 9112 3.2)"),
        (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method (RFC 9110 15.5.6)"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab", 400, "content on GET (RFC 9110 9.3.1)"),
        (b"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n", 400, "no fragment in a target (RFC 9112 3.2)"),
        (b"GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "a byte outside RFC 3986 (RFC 3986 2)"),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "asterisk-form with GET (RFC 9112 3.2.4)"),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad escape (RFC 3986 2.1)"),
        (b"GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "above the root"),
    ];
    for (raw, status, why) in rules {
        let resp = rejected(&server, raw, *status, why);
        if *status == 405 {
            assert_eq!(resp.header("Allow"), Some("GET, HEAD"), "{why}");
        }
    }
    let stopped = server.stop();
    stopped.assert_exit_0();
    assert_eq!(
        stopped.stats().by_status(),
        statuses(&[(400, 18), (405, 1), (505, 1)]),
        "every rejection is counted once under its status"
    );
}

/// Bytes after a rejected head are never parsed as a request: a GET whose body (by
/// Content-Length or chunked) holds a second request gets one 400 and the close.
#[apply(designs)]
fn a_body_on_get_never_smuggles_a_second_request(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let smuggled = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let by_length = format!(
        "GET /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let chunked = format!(
        "GET /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
        smuggled.len()
    );
    for raw in [by_length, chunked] {
        rejected(
            &server,
            raw.as_bytes(),
            400,
            "content on a GET (RFC 9110 9.3.1)",
        );
    }
}

/// Pipelined valid requests are still answered in order after the new checks.
#[test]
fn pipelined_requests_are_still_served() {
    let site = site();
    let server = Server::start("loop", &site, &[]);
    let mut client = server.connect();
    let mut batch = get11("/a", &[]);
    batch.extend(request("GET", "/sub?q", "HTTP/1.2", true, &[]));
    batch.extend(head11("/index.html", &[]));
    batch.extend(get11("/index.html", &["Connection: close"]));
    client.send(batch);
    let first = client.read_response();
    assert_eq!(
        (first.status, first.body_text().as_str()),
        (200, "file a\n")
    );
    let second = client.read_response();
    assert_eq!(
        (second.status, second.header("Location")),
        (301, Some("/sub/?q"))
    );
    let third = client.read_head_response();
    assert_eq!(third.status, 200);
    let fourth = client.read_response();
    assert_eq!(fourth.body_text(), "<h1>root index</h1>\n");
    client.expect_closed(IO_TIMEOUT);
}

/// Waits (bounded) until the server's stderr holds `text`.
fn stderr_mentions(server: &Server, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if server.stderr_text().contains(text) {
            return true;
        }
        sleep_ms(10);
    }
    false
}

#[test]
fn only_what_the_root_holds_is_served_and_dotfiles_only_when_asked() {
    let site = site();
    site.file(".env", "SECRET=1\n")
        .file(".git/config", "[core]\n")
        .file("docs/.htpasswd", "user:hash\n");
    let secret = site.outside("secret.txt", "outside the root\n");
    std::os::unix::fs::symlink(&secret, site.root().join("leak.txt")).unwrap();
    std::os::unix::fs::symlink("a", site.root().join("alias")).unwrap();

    let server = Server::start("loop", &site, &[]);
    for path in ["/.env", "/.git/config", "/docs/.htpasswd", "/leak.txt"] {
        let resp = fetch(server.port, path, &[]);
        assert_eq!(resp.status, 404, "{path} must not be served: {resp:?}");
    }
    let resp = fetch(server.port, "/alias", &[]);
    assert_eq!((resp.status, resp.body_text().as_str()), (200, "file a\n"));
    assert!(
        stderr_mentions(&server, "not served: 3 names beginning with `.`"),
        "the start-up says what was left out: {}",
        server.stderr_text()
    );
    drop(server);

    let server = Server::start("loop", &site, &["--dotfiles"]);
    let resp = fetch(server.port, "/.env", &[]);
    assert_eq!(
        (resp.status, resp.body_text().as_str()),
        (200, "SECRET=1\n")
    );
    let resp = fetch(server.port, "/leak.txt", &[]);
    assert_eq!(
        resp.status, 404,
        "--dotfiles never lets a link out of the root"
    );
}
