//! Routing, headers and every status code: 200 (types by extension, index.html, percent-decoding,
//! query strings), 301, 404, and the closing errors 400, 405, 414, 431 and 505; HEAD.

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::time::Duration;
use support::*;

/// Files served by most tests here, with their expected Content-Type.
const TYPED: &[(&str, &str)] = &[
    ("/t.html", "text/html; charset=utf-8"),
    ("/t.txt", "text/plain; charset=utf-8"),
    ("/t.gif", "image/gif"),
    ("/t.png", "image/png"),
    ("/t.jpg", "image/jpeg"),
    ("/t.css", "text/css"),
    ("/t.js", "text/javascript"),
    ("/noext", "application/octet-stream"),
    ("/t.xyz", "application/octet-stream"),
];

const SECRET: &[u8] = b"TOP SECRET: outside the site root\n";

fn site() -> Site {
    let site = Site::new();
    site.file("index.html", "<h1>root index</h1>\n")
        .file("a.txt", "hello a\n")
        .file("a b.txt", "file with a space\n")
        .file("sub/index.html", "<p>sub index</p>\n")
        .file("sub/page.txt", "sub page\n")
        .file("noindex/file.txt", "no index here\n");
    for (i, (path, _)) in TYPED.iter().enumerate() {
        site.file(path, pattern_bytes(100 + i * 37, i as u64));
    }
    site.outside("secret.txt", SECRET);
    site
}

/// The response is `status`, announces `Connection: close`, and the server then closes.
fn assert_closing_error(resp: &Response, client: &mut Client, status: u16) {
    assert_eq!(resp.status, status, "status; headers {:?}", resp.headers);
    assert_common_headers(resp);
    assert_eq!(resp.content_length(), resp.body.len());
    assert!(
        resp.says_close(),
        "{status} must carry `Connection: close`: {:?}",
        resp.headers
    );
    client.expect_closed(IO_TIMEOUT);
}

#[apply(designs)]
fn content_type_by_extension_and_exact_body(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    for (i, (path, ctype)) in TYPED.iter().enumerate() {
        let resp = c.roundtrip(get11(path, &[]));
        assert_eq!(resp.status, 200, "{path}");
        assert_common_headers(&resp);
        assert_eq!(resp.header("Content-Type"), Some(*ctype), "{path}");
        let expected = pattern_bytes(100 + i * 37, i as u64);
        assert_eq!(resp.content_length(), expected.len(), "{path}");
        assert!(resp.body == expected, "{path}: body differs from the file");
    }
}

#[apply(designs)]
fn root_and_directory_with_slash_serve_index_html(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();

    let resp = c.roundtrip(get11("/", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "<h1>root index</h1>\n");
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );

    let resp = c.roundtrip(get11("/sub/", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "<p>sub index</p>\n");
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );

    let resp = c.roundtrip(get11("/sub/page.txt", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "sub page\n");
}

#[apply(designs)]
fn directory_without_slash_redirects_301_to_slash(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/sub", &[]));
    assert_eq!(resp.status, 301);
    assert_common_headers(&resp);
    assert_eq!(resp.header("Location"), Some("/sub/"));
    assert_eq!(resp.content_length(), resp.body.len());
}

#[apply(designs)]
fn directory_without_index_is_404(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    for path in ["/noindex/", "/noindex"] {
        let resp = c.roundtrip(get11(path, &[]));
        assert_eq!(resp.status, 404, "{path}");
        assert_common_headers(&resp);
    }
    // The file inside is still there.
    let resp = c.roundtrip(get11("/noindex/file.txt", &[]));
    assert_eq!(resp.status, 200);
}

#[apply(designs)]
fn missing_file_is_404_and_keeps_the_connection_open(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/nope.html", &[]));
    assert_eq!(resp.status, 404);
    assert_common_headers(&resp);
    assert_eq!(resp.content_length(), resp.body.len());
    assert!(!resp.says_close(), "404 must not close: {:?}", resp.headers);

    // Same connection, next request is served.
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello a\n");
}

#[apply(designs)]
fn query_string_is_ignored(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    for path in ["/a.txt?x=1", "/a.txt?", "/a.txt?q=/../secret.txt&y=%zz"] {
        let resp = c.roundtrip(get11(path, &[]));
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.body_text(), "hello a\n", "{path}");
        assert_eq!(
            resp.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
    }
    let resp = c.roundtrip(get11("/sub/?page=2", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "<p>sub index</p>\n");
}

#[apply(designs)]
fn percent_encoded_path_is_decoded(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/a%20b.txt", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "file with a space\n");

    // Any byte may be encoded, in either hex case.
    for path in ["/%61.txt", "/%61%2E%74%78%74", "/%61%2e%74%78%74"] {
        let resp = c.roundtrip(get11(path, &[]));
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.body_text(), "hello a\n", "{path}");
    }
}

#[apply(designs)]
fn invalid_percent_encoding_is_400_and_closes(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    for path in ["/a%2.txt", "/a%zz.txt", "/a.txt%", "/%G1a.txt"] {
        let mut c = server.connect();
        let resp = c.roundtrip(get11(path, &[]));
        assert_closing_error(&resp, &mut c, 400);
    }
}

#[apply(designs)]
fn paths_escaping_the_root_never_serve_outside_files(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/./../secret.txt",
    ] {
        let mut c = server.connect();
        let resp = c.roundtrip(get11(path, &[]));
        assert!(
            resp.status == 400 || resp.status == 404,
            "{path}: escaping path must be 400 or 404, got {}",
            resp.status
        );
        assert_common_headers(&resp);
        assert!(
            !resp.body.windows(10).any(|w| w == &SECRET[..10]),
            "{path}: served the file outside the root"
        );
    }
}

#[apply(designs)]
fn malformed_request_is_400_and_closes(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n",
        b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",
    ] {
        let (resp, mut c) = fetch_raw(server.port, raw);
        assert_closing_error(&resp, &mut c, 400);
    }
}

#[apply(designs)]
fn http11_without_host_is_400_and_closes(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let (resp, mut c) = fetch_raw(server.port, b"GET /a.txt HTTP/1.1\r\n\r\n");
    assert_closing_error(&resp, &mut c, 400);
}

#[apply(designs)]
fn http10_without_host_is_served(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let (resp, mut c) = fetch_raw(server.port, &get10("/a.txt", &[]));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello a\n");
    c.expect_closed(IO_TIMEOUT);
}

#[apply(designs)]
fn other_methods_are_405_with_allow_and_close(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"] {
        let raw = request(method, "/a.txt", "HTTP/1.1", true, &["Content-Length: 0"]);
        let (resp, mut c) = fetch_raw(server.port, &raw);
        assert_eq!(resp.header("Allow"), Some("GET, HEAD"), "{method}");
        assert_closing_error(&resp, &mut c, 405);
    }
}

#[apply(designs)]
fn request_line_over_limit_is_414_and_closes(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &["--max-header-bytes", "1KiB"]);
    let long_path = format!("/{}", "a".repeat(3000));
    let (resp, mut c) = fetch_raw(server.port, &get11(&long_path, &[]));
    assert_closing_error(&resp, &mut c, 414);
}

#[apply(designs)]
fn header_block_over_limit_is_431_and_closes(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &["--max-header-bytes", "1KiB"]);

    // Under the limit: served.
    let filler = format!("X-Fill: {}", "b".repeat(600));
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/a.txt", &[&filler]));
    assert_eq!(resp.status, 200, "a 0.7 KiB head is under a 1 KiB limit");

    // A short request line but 2 KiB of headers.
    let fillers: Vec<String> = (0..4)
        .map(|i| format!("X-Fill-{i}: {}", "b".repeat(500)))
        .collect();
    let refs: Vec<&str> = fillers.iter().map(String::as_str).collect();
    let (resp, mut c) = fetch_raw(server.port, &get11("/a.txt", &refs));
    assert_closing_error(&resp, &mut c, 431);
}

#[apply(designs)]
fn default_header_limit_is_8kib(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let big_cookie = format!("Cookie: {}", "c".repeat(6000));
    let mut c = server.connect();
    let resp = c.roundtrip(get11("/a.txt", &[&big_cookie]));
    assert_eq!(
        resp.status, 200,
        "6 KB of headers is under the 8 KiB default"
    );

    let huge_cookie = format!("Cookie: {}", "c".repeat(10_000));
    let (resp, mut c) = fetch_raw(server.port, &get11("/a.txt", &[&huge_cookie]));
    assert_closing_error(&resp, &mut c, 431);

    let long_path = format!("/{}", "a".repeat(10_000));
    let (resp, mut c) = fetch_raw(server.port, &get11(&long_path, &[]));
    assert_closing_error(&resp, &mut c, 414);
}

#[apply(designs)]
fn unsupported_versions_are_505_and_close(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    for version in ["HTTP/2.0", "HTTP/3.1", "HTTP/0.9"] {
        let raw = request("GET", "/a.txt", version, true, &[]);
        let (resp, mut c) = fetch_raw(server.port, &raw);
        assert_closing_error(&resp, &mut c, 505);
    }
}

#[apply(designs)]
fn head_has_get_headers_and_no_body(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    for (path, ctype) in TYPED {
        c.send(head11(path, &[]));
        let head = c.read_head_response();
        // If HEAD leaked a body, these bytes would be parsed as the next status line.
        let get = c.roundtrip(get11(path, &[]));
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(get.status, 200, "{path}");
        assert_common_headers(&head);
        assert_eq!(head.header("Content-Type"), Some(*ctype), "{path}");
        assert_eq!(
            head.header("Content-Length"),
            get.header("Content-Length"),
            "{path}: HEAD and GET must announce the same length"
        );
        assert!(get.content_length() > 0);
    }
    // HEAD of a missing file: a 404 head, no body, connection still usable.
    c.send(head11("/missing.txt", &[]));
    let head = c.read_head_response();
    assert_eq!(head.status, 404);
    let get = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(get.body_text(), "hello a\n");
    // Nothing else is pending on the connection.
    assert!(c.stays_silent(Duration::from_millis(100)));
}

#[apply(designs)]
fn request_split_across_writes_is_served(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    c.send("GET /a.t");
    sleep_ms(50);
    c.send("xt HTTP/1.1\r\nHo");
    sleep_ms(50);
    c.send("st: localhost\r\n");
    sleep_ms(50);
    c.send("\r\n");
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello a\n");

    // One byte per write.
    for b in get11("/sub/page.txt", &[]) {
        c.send([b]);
    }
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "sub page\n");
}
