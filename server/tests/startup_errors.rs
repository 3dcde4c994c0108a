//! Start-up errors: a missing root, a site over `--max-site-bytes` (with its units), and bad
//! reftab files each stop the server with exit code 2 and a message naming the culprit.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use support::*;

/// Runs the server with `--listen 127.0.0.1:0 --root ROOT ARGS` and expects exit code 2 with a
/// non-empty stderr; returns stderr.
fn expect_startup_error(root: &Path, args: &[&str]) -> String {
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--root"),
        root.as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    let exited = run_to_exit(&all);
    assert_eq!(
        exited.code,
        Some(2),
        "start-up error must exit 2; args {args:?}; stderr:\n{}",
        exited.stderr
    );
    assert!(
        !exited.stdout.contains("listening"),
        "printed a listening line despite the error: {:?}",
        exited.stdout
    );
    assert!(!exited.stderr.trim().is_empty(), "no message on stderr");
    exited.stderr
}

/// True if `msg` names line `n` in one of the usual ways (`line 4`, `reftab:4:`, `:4 `).
fn names_line(msg: &str, n: usize) -> bool {
    let lower = msg.to_ascii_lowercase();
    lower.contains(&format!("line {n}"))
        || [":", " ", ")", ",", "\n"]
            .iter()
            .any(|after| lower.contains(&format!(":{n}{after}")))
}

fn reftab_site() -> Site {
    let site = Site::new();
    site.file("img/a.gif", "GIF89a")
        .file("alt/stolen.png", "PNG");
    site
}

#[test]
fn missing_root_exits_2_naming_the_directory() {
    let site = Site::new();
    let missing = site.dir().join("no-such-site");
    let stderr = expect_startup_error(&missing, &[]);
    assert!(
        stderr.contains("no-such-site"),
        "message should name the missing root: {stderr}"
    );
}

#[test]
fn site_larger_than_max_site_bytes_exits_2() {
    let site = Site::new();
    // 6000 bytes in two files in different directories: the limit applies to the sum.
    site.file("a.bin", vec![b'a'; 3000])
        .file("deep/er/b.bin", vec![b'b'; 3000]);
    let stderr = expect_startup_error(site.root(), &["--max-site-bytes", "4KiB"]);
    let root = site.root().to_string_lossy();
    assert!(
        stderr.contains("max-site-bytes")
            || stderr.contains(root.as_ref())
            || stderr.contains("6000"),
        "message should name the limit flag, the root or the size: {stderr}"
    );
}

#[test]
fn max_site_bytes_units_are_binary_and_the_limit_is_inclusive() {
    // 4090 bytes fit in 4KiB (4096) but not in 4000: KiB means 1024.
    let site = Site::new();
    site.file("a.bin", vec![b'a'; 4090]);
    let mut server = Server::start("loop", &site, &["--max-site-bytes", "4KiB"]);
    server.stop().assert_exit_0();

    // Exactly at the limit starts; one byte over does not.
    let exact = Site::new();
    exact.file("a.bin", vec![b'a'; 4096]);
    let mut server = Server::start("loop", &exact, &["--max-site-bytes", "4096"]);
    server.stop().assert_exit_0();

    let over = Site::new();
    over.file("a.bin", vec![b'a'; 4097]);
    expect_startup_error(over.root(), &["--max-site-bytes", "4096"]);
    expect_startup_error(over.root(), &["--max-site-bytes", "4KiB"]);

    // MiB.
    let big = Site::new();
    big.file("a.bin", vec![b'a'; MIB + 1]);
    expect_startup_error(big.root(), &["--max-site-bytes", "1MiB"]);
    let mut server = Server::start("loop", &big, &["--max-site-bytes", "2MiB"]);
    server.stop().assert_exit_0();
}

#[test]
fn reftab_bad_line_exits_2_naming_the_line_number() {
    let site = reftab_site();
    let cases = [
        // (reftab text, bad line number)
        (
            "# rules\n/img/* mysite.com /alt/stolen.png\n\n/img/*.gif onlytwofields\n",
            4,
        ),
        (
            "/img/* mysite.com /alt/stolen.png\n/img/x.gif mysite.com /alt/stolen.png empty=sometimes\n",
            2,
        ),
        (
            "\n\n\n/img/* a.com /alt/stolen.png empty=allow extra-field\n",
            4,
        ),
    ];
    for (text, line) in cases {
        let reftab = site.outside("reftab.bad", text);
        let stderr = expect_startup_error(site.root(), &["--reftab", reftab.to_str().unwrap()]);
        assert!(
            names_line(&stderr, line),
            "message should name line {line} of\n{text}\ngot: {stderr}"
        );
    }
}

#[test]
fn reftab_alternate_that_does_not_exist_exits_2() {
    let site = reftab_site();
    let reftab = site.outside("reftab", "/img/* mysite.com /alt/nope.png\n");
    let stderr = expect_startup_error(site.root(), &["--reftab", reftab.to_str().unwrap()]);
    assert!(
        stderr.contains("nope.png"),
        "message should name the missing alternate: {stderr}"
    );
}

#[test]
fn missing_reftab_file_exits_2() {
    let site = reftab_site();
    let missing = site.dir().join("no-such-reftab");
    let stderr = expect_startup_error(site.root(), &["--reftab", missing.to_str().unwrap()]);
    assert!(
        stderr.contains("no-such-reftab"),
        "message should name the reftab file: {stderr}"
    );
}

#[test]
fn valid_reftab_starts() {
    let site = reftab_site();
    let reftab = site.outside(
        "reftab",
        "# ok\n\n/img/*  mysite.com,.example.org  /alt/stolen.png  empty=alternate\n/x/* - /alt/stolen.png empty=allow\n",
    );
    let mut server = Server::start("loop", &site, &["--reftab", reftab.to_str().unwrap()]);
    let resp = fetch(server.port, "/img/a.gif", &["Referer: http://mysite.com/"]);
    assert_eq!(resp.body_text(), "GIF89a");
    server.stop().assert_exit_0();
}
