//! The referer table (`--reftab`): allowed hosts and subdomains get the original, other referers
//! get the alternate, the empty-referer switch, first match wins, and per-rule stats counts.

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use support::*;

const LOGO_LEN: usize = 300;
const STOLEN_LEN: usize = 500;

/// Rules sit on lines 1..=5 so rule numbers and line numbers coincide.
const REFTAB: &str = "\
/img/*.gif    mysite.com,.example.org   /alt/stolen.png
/strict/*     mysite.com                /alt/stolen.png   empty=alternate
/pics/*       -                         /alt/stolen.png   empty=allow
/first/*      mysite.com                /alt/one.png
/first/x.gif  -                         /alt/two.png
# the last rule is shadowed by rule 4 for every referer
";

fn logo() -> Vec<u8> {
    pattern_bytes(LOGO_LEN, 1)
}

fn stolen() -> Vec<u8> {
    pattern_bytes(STOLEN_LEN, 2)
}

fn site() -> Site {
    let site = Site::new();
    site.file("img/logo.gif", logo())
        .file("img/sub/deep.gif", pattern_bytes(50, 3))
        .file("strict/s.gif", pattern_bytes(60, 4))
        .file("pics/p.jpg", pattern_bytes(70, 5))
        .file("first/x.gif", pattern_bytes(80, 6))
        .file("alt/stolen.png", stolen())
        .file("alt/one.png", "one")
        .file("alt/two.png", "two")
        .file("docs/a.txt", "plain doc\n");
    site
}

fn start(design: &str, site: &Site, reftab: &str) -> Server {
    let path = site.outside("reftab", reftab);
    Server::start(design, site, &["--reftab", path.to_str().unwrap()])
}

/// GET `path` with an optional Referer on `c`; returns the response.
fn get_with_referer(c: &mut Client, path: &str, referer: Option<&str>) -> Response {
    let header = referer.map(|r| format!("Referer: {r}"));
    let extra: Vec<&str> = header.iter().map(String::as_str).collect();
    let resp = c.roundtrip(get11(path, &extra));
    assert_eq!(
        resp.status, 200,
        "{path} with referer {referer:?}: alternates are served with 200"
    );
    resp
}

fn assert_original(resp: &Response, referer: &str) {
    assert!(
        resp.body == logo(),
        "referer {referer}: expected the original /img/logo.gif, got {} bytes of {:?}",
        resp.body.len(),
        resp.header("Content-Type")
    );
    assert_eq!(resp.header("Content-Type"), Some("image/gif"));
    assert_eq!(resp.content_length(), LOGO_LEN);
}

fn assert_alternate(resp: &Response, referer: &str) {
    assert!(
        resp.body == stolen(),
        "referer {referer}: expected the alternate /alt/stolen.png, got {} bytes of {:?}",
        resp.body.len(),
        resp.header("Content-Type")
    );
    assert_eq!(
        resp.header("Content-Type"),
        Some("image/png"),
        "the alternate keeps its own type"
    );
    assert_eq!(resp.content_length(), STOLEN_LEN, "and its own length");
}

#[apply(designs)]
fn allowed_referer_host_gets_the_original(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    for referer in [
        "http://mysite.com/page.html",
        "http://mysite.com",
        "https://mysite.com/deep/page?x=1",
        "http://MySite.COM/upper-case",
        "http://mysite.com:8080/with-port",
    ] {
        let resp = get_with_referer(&mut c, "/img/logo.gif", Some(referer));
        assert_original(&resp, referer);
    }
}

#[apply(designs)]
fn exact_host_does_not_cover_its_subdomains(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    for referer in ["http://www.mysite.com/", "http://notmysite.com/"] {
        let resp = get_with_referer(&mut c, "/img/logo.gif", Some(referer));
        assert_alternate(&resp, referer);
    }
}

#[apply(designs)]
fn dot_prefixed_host_covers_the_domain_and_all_subdomains(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    for referer in [
        "http://example.org/",
        "http://www.example.org/index.html",
        "http://a.b.example.org:81/x",
        "http://WWW.EXAMPLE.ORG/",
    ] {
        let resp = get_with_referer(&mut c, "/img/logo.gif", Some(referer));
        assert_original(&resp, referer);
    }
    // Suffix matches that are not subdomains are other hosts.
    for referer in [
        "http://badexample.org/",
        "http://example.org.evil.com/",
        "http://example.com/",
    ] {
        let resp = get_with_referer(&mut c, "/img/logo.gif", Some(referer));
        assert_alternate(&resp, referer);
    }
}

#[apply(designs)]
fn other_referer_gets_the_alternate_with_its_own_type_and_length(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    let resp = get_with_referer(
        &mut c,
        "/img/logo.gif",
        Some("http://evil.com/hotlink.html"),
    );
    assert_alternate(&resp, "evil.com");
    assert_common_headers(&resp);

    // HEAD tells the same story without a body.
    c.send(head11("/img/logo.gif", &["Referer: http://evil.com/"]));
    let head = c.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("image/png"));
    assert_eq!(head.content_length(), STOLEN_LEN);

    // The wildcard runs across slashes.
    let resp = get_with_referer(&mut c, "/img/sub/deep.gif", Some("http://evil.com/"));
    assert_alternate(&resp, "evil.com (deep path)");
}

#[apply(designs)]
fn query_strings_and_encoding_do_not_bypass_a_rule(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    for path in [
        "/img/logo.gif?nocache=1",
        "/img/logo%2Egif",
        "/%69mg/logo.gif",
    ] {
        let resp = get_with_referer(&mut c, path, Some("http://evil.com/"));
        assert_alternate(&resp, &format!("evil.com for {path}"));
    }
}

#[apply(designs)]
fn empty_referer_gets_the_original_by_default(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    let resp = get_with_referer(&mut c, "/img/logo.gif", None);
    assert_original(&resp, "(none)");

    // `-` allows no host at all, but `empty=allow` still lets a missing Referer through.
    let resp = get_with_referer(&mut c, "/pics/p.jpg", None);
    assert!(resp.body == pattern_bytes(70, 5), "no referer, empty=allow");
    let resp = get_with_referer(&mut c, "/pics/p.jpg", Some("http://mysite.com/"));
    assert_alternate(&resp, "mysite.com on a `-` rule");
}

#[apply(designs)]
fn empty_referer_gets_the_alternate_with_empty_alternate(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    let resp = get_with_referer(&mut c, "/strict/s.gif", None);
    assert_alternate(&resp, "(none) with empty=alternate");
    let resp = get_with_referer(&mut c, "/strict/s.gif", Some("http://mysite.com/"));
    assert!(
        resp.body == pattern_bytes(60, 4),
        "allowed host still gets the original"
    );
    let resp = get_with_referer(&mut c, "/strict/s.gif", Some("http://evil.com/"));
    assert_alternate(&resp, "evil.com");
}

#[apply(designs)]
fn paths_outside_every_pattern_are_untouched(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    let resp = get_with_referer(&mut c, "/docs/a.txt", Some("http://evil.com/"));
    assert_eq!(resp.body_text(), "plain doc\n");
    let resp = get_with_referer(&mut c, "/alt/stolen.png", Some("http://evil.com/"));
    assert!(resp.body == stolen());
}

#[apply(designs)]
fn first_matching_rule_wins(design: &str) {
    let site = site();
    let server = start(design, &site, REFTAB);
    let mut c = server.connect();
    // Rule 4 allows mysite.com; rule 5 (which allows nobody) is never consulted.
    let resp = get_with_referer(&mut c, "/first/x.gif", Some("http://mysite.com/"));
    assert!(
        resp.body == pattern_bytes(80, 6),
        "rule 4 allows mysite.com"
    );
    let resp = get_with_referer(&mut c, "/first/x.gif", Some("http://evil.com/"));
    assert_eq!(resp.body_text(), "one", "rule 4's alternate, not rule 5's");
}

#[apply(designs)]
fn comments_blank_lines_and_spacing_are_ignored(design: &str) {
    let site = site();
    let reftab = "\
# anti-hotlinking rules

   # indented comment
\t/img/*.gif \t mysite.com,.example.org\t\t/alt/stolen.png   

";
    let server = start(design, &site, reftab);
    let mut c = server.connect();
    let resp = get_with_referer(&mut c, "/img/logo.gif", Some("http://www.example.org/"));
    assert_original(&resp, "www.example.org");
    let resp = get_with_referer(&mut c, "/img/logo.gif", Some("http://evil.com/"));
    assert_alternate(&resp, "evil.com");
}

#[apply(designs)]
fn alternates_are_counted_per_rule_in_stats(design: &str) {
    let site = site();
    let mut server = start(design, &site, REFTAB);
    let mut c = server.connect();
    let plan: &[(&str, Option<&str>, bool)] = &[
        // (path, referer, alternate expected)
        ("/img/logo.gif", Some("http://evil.com/"), true),
        ("/img/logo.gif", Some("http://www.mysite.com/"), true),
        ("/img/logo.gif", Some("http://badexample.org/"), true),
        ("/img/logo.gif", Some("http://mysite.com/"), false),
        ("/img/logo.gif", None, false),
        ("/strict/s.gif", None, true),
        ("/strict/s.gif", Some("http://evil.com/"), true),
        ("/strict/s.gif", Some("http://mysite.com/"), false),
        ("/pics/p.jpg", Some("http://mysite.com/"), true),
        ("/pics/p.jpg", None, false),
        ("/first/x.gif", Some("http://evil.com/"), true),
        ("/docs/a.txt", Some("http://evil.com/"), false),
    ];
    for (path, referer, alternate) in plan {
        let resp = get_with_referer(&mut c, path, *referer);
        let got_alternate = resp.header("Content-Type") == Some("image/png");
        assert_eq!(got_alternate, *alternate, "{path} with {referer:?}");
    }
    drop(c);
    let stopped = server.stop();
    stopped.assert_exit_0();
    let stats = stopped.stats();
    assert_eq!(stats.u(&["requests_total"]), plan.len() as u64);
    assert_eq!(stats.by_status(), statuses(&[(200, plan.len() as u64)]));

    let expected = [
        (1, "/img/*.gif", 3),
        (2, "/strict/*", 2),
        (3, "/pics/*", 1),
        (4, "/first/*", 1),
    ];
    for (rule, pattern, served) in expected {
        let (got_pattern, got_served) = stats
            .alternates(rule)
            .unwrap_or_else(|| panic!("rule {rule} missing from reftab_alternates: {stats:?}"));
        assert_eq!(got_pattern, pattern, "pattern of rule {rule}");
        assert_eq!(got_served, served, "alternates served by rule {rule}");
    }
    assert_eq!(
        stats.alternates(5).map_or(0, |(_, n)| n),
        0,
        "rule 5 is shadowed"
    );
    assert_eq!(stats.alternates_total(), 7);
}
