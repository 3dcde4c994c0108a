//! Callgrind instruction counts (gungraun) of the server's per-request work: parse a request head,
//! normalise its target, select the response (with and without a Referer-table check), and one
//! connection's whole request cycle over an in-memory transport, extra-cost hook included. The
//! requests and the site are those of `request_path.rs`; the site, the transport and the buffers
//! are built in gungraun's `setup`, so only the request's own work is counted.
//!
//! Run through `scripts/instructions.sh` (needs valgrind and `gungraun-runner` 0.20.0).

use std::hint::black_box;

use afterburner::conn::{CloseMode, ConnSettings, Connection, LoopShared, Step};
use afterburner::http::{normalize_target, parse_request, Parsed, Request};
use afterburner::memory_transport::MemoryTransport;
use afterburner::site::Site;
use afterburner::stats::Counters;
use gungraun::prelude::*;

mod common;
use common::{bench_site, BROWSER_LIKE, HOTLINKED_IMAGE, WRK_KEEPALIVE};

/// `--max-header-bytes`' default.
const MAX_HEADER_BYTES: usize = 8192;

/// The site of `request_path.rs`: 360 files of 100 to 900 bytes in 10 directories, two images
/// and one reftab rule. The directory lives as long as the site.
struct SiteFixture {
    _dir: tempfile::TempDir,
    site: Site,
    /// The loop's decoded-path buffer, allocated once.
    scratch: Vec<u8>,
}

fn site() -> SiteFixture {
    let (dir, site) = bench_site();
    SiteFixture {
        _dir: dir,
        site,
        scratch: Vec::with_capacity(512),
    }
}

fn parsed(raw: &'static [u8]) -> Request<'static> {
    match parse_request(raw, MAX_HEADER_BYTES) {
        Parsed::Complete { request, .. } => request,
        other => panic!("bench request must parse, got {other:?}"),
    }
}

#[library_benchmark]
#[bench::wrk_keepalive(WRK_KEEPALIVE)]
#[bench::browser_like(BROWSER_LIKE)]
#[bench::hotlinked_image(HOTLINKED_IMAGE)]
fn request_head(raw: &'static [u8]) -> usize {
    match parse_request(black_box(raw), MAX_HEADER_BYTES) {
        Parsed::Complete { consumed, .. } => black_box(consumed),
        _ => panic!("bench request must parse"),
    }
}

library_benchmark_group!(name = parse, benchmarks = [request_head]);

fn scratch(target: &'static [u8]) -> (&'static [u8], Vec<u8>) {
    (target, Vec::with_capacity(512))
}

#[library_benchmark]
#[bench::plain(args = (b"/dir00003/class1_4"), setup = scratch)]
#[bench::with_query(args = (b"/dir00007/class2_9?x=1"), setup = scratch)]
fn target((target, mut out): (&'static [u8], Vec<u8>)) -> Vec<u8> {
    normalize_target(black_box(target), &mut out).expect("a valid target");
    black_box(out)
}

library_benchmark_group!(name = route, benchmarks = [target]);

fn site_and_request(raw: &'static [u8]) -> (SiteFixture, Request<'static>) {
    (site(), parsed(raw))
}

// Normalise the target, look it up in the site, and choose the head (and, under a reftab rule,
// check the Referer): what `Connection` does for a parsed request.
#[library_benchmark]
#[bench::plain_file(args = (WRK_KEEPALIVE), setup = site_and_request)]
#[bench::browser_like(args = (BROWSER_LIKE), setup = site_and_request)]
#[bench::referer_checked(args = (HOTLINKED_IMAGE), setup = site_and_request)]
fn response((mut fixture, request): (SiteFixture, Request<'static>)) -> SiteFixture {
    let selection = fixture
        .site
        .select(black_box(&request), &mut fixture.scratch);
    black_box(selection.resource.body().len());
    fixture
}

library_benchmark_group!(name = select, benchmarks = [response]);

/// A loop's state for one connection: the site, the settings and counters, its read buffer, and
/// the client's socket.
struct ConnFixture {
    site: SiteFixture,
    settings: ConnSettings,
    counters: Counters,
    /// The loop's read buffer, 64 KiB as in the `loop` design.
    read_buf: Vec<u8>,
    /// The client's socket: the request waits to be read, then reads would block; its send
    /// buffer is allocated here, so the reply's writes allocate nothing.
    socket: MemoryTransport,
}

fn connection_with(raw: &'static [u8]) -> ConnFixture {
    let site = site();
    let counters = Counters::new(site.site.rules().count());
    ConnFixture {
        site,
        settings: ConnSettings {
            close_mode: CloseMode::Server,
            max_header_bytes: MAX_HEADER_BYTES,
            max_stalled_linger_checks: 10,
            requests_per_turn: 64,
        },
        counters,
        read_buf: vec![0; 64 * 1024],
        socket: MemoryTransport::new(vec![raw.to_vec()]).with_send_capacity(16 * 1024),
    }
}

// A new connection's first request: read it, parse, route, select, write the reply, then wait
// for the next request (kept alive) or close (HTTP/1.0). Includes the `extra-cost` hook.
#[library_benchmark]
#[bench::wrk_keepalive(args = (WRK_KEEPALIVE), setup = connection_with)]
#[bench::browser_like(args = (BROWSER_LIKE), setup = connection_with)]
#[bench::hotlinked_image(args = (HOTLINKED_IMAGE), setup = connection_with)]
fn request_cycle(mut fixture: ConnFixture) -> ConnFixture {
    let step = {
        let mut conn = Connection::new();
        let mut shared = LoopShared {
            site: &fixture.site.site,
            settings: &fixture.settings,
            counters: &mut fixture.counters,
            path_scratch: &mut fixture.site.scratch,
            shutting_down: false,
            live: None,
        };
        loop {
            match conn.on_ready(
                &mut fixture.socket,
                &mut shared,
                &mut fixture.read_buf,
                true,
            ) {
                Step::Yield => continue,
                step => break step,
            }
        }
    };
    assert!(
        !fixture.socket.send_queue().is_empty(),
        "the connection must answer"
    );
    black_box(step);
    fixture
}

library_benchmark_group!(name = connection, benchmarks = [request_cycle]);

main!(library_benchmark_groups = parse, route, select, connection);
