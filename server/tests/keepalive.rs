//! Connection reuse: HTTP/1.1 keep-alive and `Connection: close`, HTTP/1.0 close and
//! `Connection: keep-alive`, and pipelined requests answered in order.

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::time::Duration;
use support::*;

fn site() -> Site {
    let site = Site::new();
    site.file("a.txt", "alpha\n")
        .file("b.html", "<b>bravo</b>\n")
        .file("c.css", "p { color: red }\n")
        .file("big.bin", pattern_bytes(MIB, 7));
    site
}

#[apply(designs)]
fn http11_keeps_the_connection_alive(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    for (path, body) in [
        ("/a.txt", "alpha\n"),
        ("/b.html", "<b>bravo</b>\n"),
        ("/a.txt", "alpha\n"),
    ] {
        let resp = c.roundtrip(get11(path, &[]));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_text(), body);
        assert!(!resp.says_close(), "{:?}", resp.headers);
    }
    // The server leaves the idle connection open.
    assert!(c.stays_silent(Duration::from_millis(300)));
    let resp = c.roundtrip(get11("/c.css", &[]));
    assert_eq!(resp.body_text(), "p { color: red }\n");
}

#[apply(designs)]
fn http11_connection_close_is_honoured(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.status, 200);
    let resp = c.roundtrip(get11("/b.html", &["Connection: close"]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "<b>bravo</b>\n");
    assert!(resp.says_close(), "{:?}", resp.headers);
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
}

#[apply(designs)]
fn http10_closes_by_default(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let resp = c.roundtrip(get10("/a.txt", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "alpha\n");
    assert!(!resp.says_keep_alive(), "{:?}", resp.headers);
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
}

#[apply(designs)]
fn http10_keep_alive_is_honoured(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let resp = c.roundtrip(get10("/a.txt", &["Connection: keep-alive"]));
    assert_eq!(resp.status, 200);
    assert!(
        resp.says_keep_alive(),
        "HTTP/1.0 keep-alive response must say so: {:?}",
        resp.headers
    );
    assert!(c.stays_silent(Duration::from_millis(200)));

    // Browsers of the time spelled it `Keep-Alive`; tokens are case-insensitive.
    let resp = c.roundtrip(get10("/b.html", &["Connection: Keep-Alive"]));
    assert_eq!(resp.body_text(), "<b>bravo</b>\n");
    assert!(resp.says_keep_alive(), "{:?}", resp.headers);
    assert!(c.stays_silent(Duration::from_millis(200)));

    // A plain HTTP/1.0 request on the same connection ends it.
    let resp = c.roundtrip(get10("/c.css", &[]));
    assert_eq!(resp.body_text(), "p { color: red }\n");
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
}

#[apply(designs)]
fn three_pipelined_requests_in_one_write_are_answered_in_order(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let mut batch = get11("/b.html", &[]);
    batch.extend(get11("/a.txt", &[]));
    batch.extend(get11("/c.css", &[]));
    c.send(&batch);
    let bodies: Vec<String> = (0..3).map(|_| c.read_response().body_text()).collect();
    assert_eq!(
        bodies,
        ["<b>bravo</b>\n", "alpha\n", "p { color: red }\n"],
        "pipelined responses out of order"
    );
    assert!(c.stays_silent(Duration::from_millis(100)));
}

#[apply(designs)]
fn pipelined_large_body_then_small_ones_stay_in_order_and_intact(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let mut batch = get11("/big.bin", &[]);
    batch.extend(head11("/big.bin", &[]));
    batch.extend(get11("/missing", &[]));
    batch.extend(get11("/a.txt", &["Connection: close"]));
    c.send(&batch);

    let big = c.read_response();
    assert_eq!(big.status, 200);
    assert!(big.body == pattern_bytes(MIB, 7), "1 MiB body corrupted");
    let head = c.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), MIB);
    let missing = c.read_response();
    assert_eq!(missing.status, 404);
    let last = c.read_response();
    assert_eq!(last.status, 200);
    assert_eq!(last.body_text(), "alpha\n");
    assert!(last.says_close());
    assert_eq!(c.expect_closed(IO_TIMEOUT), Closed::Eof);
}

#[apply(designs)]
fn pipelined_error_stops_the_connection_after_earlier_answers(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let mut batch = get11("/a.txt", &[]);
    batch.extend(request("DELETE", "/a.txt", "HTTP/1.1", true, &[]));
    batch.extend(get11("/b.html", &[]));
    c.send(&batch);
    let first = c.read_response();
    assert_eq!(first.body_text(), "alpha\n");
    let second = c.read_response();
    assert_eq!(second.status, 405);
    assert!(second.says_close());
    // The request after the error is not answered.
    c.expect_closed(IO_TIMEOUT);
}
