//! Large replies over partial writes: a slow reader with a small receive buffer gets the body
//! intact, concurrent slow readers do too, and a stalled reader does not hold up anyone else.

mod support;

#[allow(unused_imports)]
use rstest_reuse::apply;
use std::thread;
use std::time::{Duration, Instant};
use support::*;

fn site() -> Site {
    let site = Site::new();
    site.file("a.txt", "alpha\n")
        .file("one.bin", pattern_bytes(MIB, 31))
        .file("four.bin", pattern_bytes(4 * MIB, 32))
        .file("eight.bin", pattern_bytes(8 * MIB, 34))
        .file("huge.bin", pattern_bytes(16 * MIB, 33));
    site
}

#[apply(designs)]
fn slow_reader_with_small_receive_buffer_gets_1mib_intact(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = Client::connect_small_rcvbuf(server.port, 4096);
    c.send(get11("/one.bin", &[]));
    let resp = c.slow_read_response(4096, Duration::from_millis(3), Duration::from_secs(8));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), MIB);
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert!(resp.body == pattern_bytes(MIB, 31), "1 MiB body corrupted");
    // The connection is still in a sane state for the next request.
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.body_text(), "alpha\n");
}

/// 1 MiB still fits in the kernel's send buffer on loopback; 8 MiB does not, so the server has
/// to resume the reply on writability many times while the reader dawdles.
#[apply(designs)]
fn slow_reader_of_a_body_larger_than_the_socket_buffers_gets_it_intact(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = Client::connect_small_rcvbuf(server.port, 16 * KIB);
    c.send(get11("/eight.bin", &[]));
    let resp = c.slow_read_response(16 * KIB, Duration::from_millis(1), Duration::from_secs(8));
    assert_eq!(resp.content_length(), 8 * MIB);
    assert!(
        resp.body == pattern_bytes(8 * MIB, 34),
        "8 MiB body corrupted"
    );
    let resp = c.roundtrip(get11("/a.txt", &[]));
    assert_eq!(resp.body_text(), "alpha\n");
}

#[apply(designs)]
fn large_bodies_back_to_back_on_one_connection_are_intact(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut c = server.connect();
    let expected = pattern_bytes(4 * MIB, 32);
    for round in 0..3 {
        let resp = c.roundtrip(get11("/four.bin", &[]));
        assert_eq!(resp.status, 200);
        assert!(resp.body == expected, "round {round}: 4 MiB body corrupted");
    }
}

#[apply(designs)]
fn concurrent_slow_readers_all_get_intact_bodies(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let port = server.port;
    let readers: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                let mut c = Client::connect_small_rcvbuf(port, 4096);
                c.send(get11("/one.bin", &["Connection: close"]));
                let pause = Duration::from_millis(1 + (i % 3));
                let resp = c.slow_read_response(8192, pause, Duration::from_secs(8));
                assert!(
                    resp.body == pattern_bytes(MIB, 31),
                    "reader {i}: body corrupted"
                );
                c.expect_closed(IO_TIMEOUT);
            })
        })
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        r.join()
            .unwrap_or_else(|_| panic!("slow reader {i} failed"));
    }
}

#[apply(designs)]
fn a_stalled_reader_does_not_hold_up_other_clients(design: &str) {
    let site = site();
    let server = Server::start(design, &site, &[]);
    let mut stalled = Client::connect_small_rcvbuf(server.port, 4096);
    stalled.send(get11("/huge.bin", &[]));
    sleep_ms(200);
    // While the server's send queue to `stalled` is full, others are served promptly.
    for _ in 0..5 {
        let t = Instant::now();
        let resp = fetch(server.port, "/a.txt", &[]);
        assert_eq!(resp.body_text(), "alpha\n");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a small request took {:?} next to a stalled reader",
            t.elapsed()
        );
    }
    // The stalled one still gets everything once it reads.
    let resp = stalled
        .try_read_response(false, Duration::from_secs(8))
        .expect("stalled reader's response");
    assert!(
        resp.body == pattern_bytes(16 * MIB, 33),
        "16 MiB body corrupted"
    );
}
