//! Fuzz target: one server connection (`afterburner::conn::Connection`) fed arbitrary client
//! bytes over the in-memory transport, split at arbitrary points, under arbitrary limits.
//!
//! Input: an 8-byte header of settings, then the client's bytes as sent (so a seed is a real
//! request with 8 bytes in front; see `decode`). Each input runs twice: cut as the header says
//! through a send buffer the client drains at its own pace, and whole through a roomy one.
//! Checked: no panic and no livelock; the replies are well formed (status line, headers, a
//! `Content-Length` the body has in full); every error but 404 says `Connection: close` and is
//! the last reply; nothing is written after the server shut its side; no allocation while the
//! connection handles an event exceeds twice `max_header_bytes` plus the read buffer (the only
//! growing buffer is the request head's, a `Vec` that doubles) or the size a directory redirect
//! built for one request can reach (see `check`); and both runs give byte for
//! byte the same replies and the same close. (Until issue 15's fix of `parse_request`, the status
//! of an error could depend on how much of the request had arrived.)

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use afterburner::conn::{CloseMode, ConnSettings, Connection, LoopShared};
use afterburner::memory_transport::{LoopEvent, MemoryTransport};
use afterburner::reftab;
use afterburner::site::Site;
use afterburner::stats::{CloseSide, Counters};
use libfuzzer_sys::fuzz_target;

/// The largest single allocation (or reallocation) while `MEASURING`; libFuzzer runs one
/// input at a time on one thread.
struct LargestAllocation;

static MEASURING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note_allocation(bytes: usize) {
    if MEASURING.load(Ordering::Relaxed) {
        LARGEST.fetch_max(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged; the bookkeeping is two atomics.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// A send buffer few inputs' replies fill (a 4 KB input holds about 110 requests, whose
/// replies take at most 1.1 KB each), allocated before the connection runs so that it never
/// grows while measured. When it does fill, the client empties it and the server goes on.
const ROOMY_SEND_BUFFER: usize = 256 * 1024;

/// The site: `/dir{d}/file{f}` (bodies never start like a status line, so a reply to HEAD is
/// told from a body by the bytes alone), `/docs/index.html` (so `/docs` is a 301), and two
/// images under a reftab rule. Loaded once per process.
fn site() -> &'static Site {
    static SITE: OnceLock<(tempfile::TempDir, Site)> = OnceLock::new();
    &SITE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            for d in 0..3 {
                let sub = dir.path().join(format!("dir{d}"));
                std::fs::create_dir_all(&sub).unwrap();
                for f in 0..8 {
                    let body = format!("<{d}/{f}>").repeat(8 * (f + 1) * (d + 1));
                    std::fs::write(sub.join(format!("file{f}")), body).unwrap();
                }
            }
            std::fs::create_dir_all(dir.path().join("docs")).unwrap();
            std::fs::write(dir.path().join("docs/index.html"), "<p>docs</p>").unwrap();
            std::fs::create_dir_all(dir.path().join("img")).unwrap();
            std::fs::write(dir.path().join("img/logo.gif"), b"GIF89a logo").unwrap();
            std::fs::write(dir.path().join("img/stolen.gif"), b"GIF89a stolen").unwrap();
            let rules = reftab::parse(
                "/img/*.gif example.com /img/stolen.gif",
                std::path::Path::new("fuzz.reftab"),
            )
            .unwrap();
            let site = Site::load(dir.path(), 1 << 30, rules).unwrap();
            (dir, site)
        })
        .1
}

/// One run's settings, decoded from the input's header.
#[derive(Debug)]
struct Setup {
    settings: ConnSettings,
    read_buf: usize,
    trust_short_read: bool,
    fin: bool,
    /// The split run's send buffer, and how much the client reads each time it is full.
    send_capacity: usize,
    pace: Vec<usize>,
    /// The split run's cut points, from a seed.
    cut_seed: u32,
}

/// The input's header, 8 bytes (missing ones read as 0):
/// * 0: `max_header_bytes`: below 0x80 the default 8192, else 16 + 8 x (low 7 bits);
/// * 1: read buffer: 0 is 64 KiB, 1..=16 that many bytes, else 16 x the byte;
/// * 2: bits 0-1 the close mode, bit 2 trust short reads, bit 3 the client's FIN at the end,
///   bits 4-5 requests per turn (64, 1, 2, 3), bits 6-7 the send buffer (roomy, or small);
/// * 3: the small send buffer's size, 1 + 4 x the byte, and the client's pace;
/// * 4-7: the seed of the cut points (little-endian).
fn decode(data: &[u8]) -> (Setup, &[u8]) {
    let mut header = [0u8; 8];
    let taken = data.len().min(8);
    header[..taken].copy_from_slice(&data[..taken]);
    let max_header_bytes = if header[0] < 0x80 {
        8192
    } else {
        16 + 8 * usize::from(header[0] & 0x7f)
    };
    let read_buf = match header[1] {
        0 => 64 * 1024,
        b @ 1..=16 => usize::from(b),
        b => 16 * usize::from(b),
    };
    let close_mode = [
        CloseMode::Server,
        CloseMode::WaitClient,
        CloseMode::Pause,
        CloseMode::Reset,
    ][usize::from(header[2] & 3)];
    let requests_per_turn = [64, 1, 2, 3][usize::from((header[2] >> 4) & 3)];
    let small_send_buffer = header[2] >> 6 != 0;
    let send_capacity = if small_send_buffer {
        1 + 4 * usize::from(header[3])
    } else {
        ROOMY_SEND_BUFFER
    };
    let pace = vec![
        1 + usize::from(header[3]) * 3,
        1,
        1 + usize::from(header[3] / 2),
    ];
    let setup = Setup {
        settings: ConnSettings {
            close_mode,
            max_header_bytes,
            max_stalled_linger_checks: 4,
            requests_per_turn,
        },
        read_buf,
        trust_short_read: header[2] & 4 != 0,
        fin: header[2] & 8 != 0,
        send_capacity,
        pace,
        cut_seed: u32::from_le_bytes([header[4], header[5], header[6], header[7]]),
    };
    (setup, &data[taken..])
}

/// The stream cut at up to 15 points drawn from `seed` (xorshift32).
fn segments(stream: &[u8], seed: u32) -> Vec<Vec<u8>> {
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    let mut cuts: Vec<usize> = (0..next() % 16)
        .map(|_| next() % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts {
        pieces.push(stream[from..cut].to_vec());
        from = cut;
    }
    pieces.push(stream[from..].to_vec());
    pieces
}

/// What the client got, how the connection ended, and the largest allocation meanwhile.
struct Served {
    received: Vec<u8>,
    closed: CloseSide,
    writes_after_shutdown: usize,
    largest_allocation: usize,
}

/// Runs the connection as a loop would until it closes, within a number of events
/// proportional to the bytes moved.
fn serve(setup: &Setup, mut transport: MemoryTransport) -> Served {
    let site = site();
    let mut counters = Counters::new(site.rules().count());
    let mut scratch = Vec::new();
    let mut read_buf = vec![0u8; setup.read_buf];
    let mut shared = LoopShared {
        site,
        settings: &setup.settings,
        counters: &mut counters,
        path_scratch: &mut scratch,
        shutting_down: false,
        live: None,
    };
    let mut conn = Connection::new();
    let mut event = LoopEvent::Ready;
    LARGEST.store(0, Ordering::Relaxed);
    let mut turn = 0usize;
    let closed = loop {
        assert!(
            turn < 1000 + 4 * (transport.bytes_read() + transport.bytes_written()),
            "the connection neither closes nor makes progress: {event:?} after {turn} events"
        );
        turn += 1;
        MEASURING.store(true, Ordering::Relaxed);
        let step = match event {
            LoopEvent::Ready => conn.on_ready(
                &mut transport,
                &mut shared,
                &mut read_buf,
                setup.trust_short_read,
            ),
            LoopEvent::Timer(kind) => conn.on_timer(kind, &mut transport, &mut shared),
            LoopEvent::Closed(closed) => {
                MEASURING.store(false, Ordering::Relaxed);
                break closed;
            }
        };
        MEASURING.store(false, Ordering::Relaxed);
        event = transport.after(step);
    };
    transport.client_reads(usize::MAX);
    Served {
        received: transport.received().to_vec(),
        closed,
        writes_after_shutdown: transport.writes_after_shutdown(),
        largest_allocation: LARGEST.load(Ordering::Relaxed),
    }
}

/// One reply: its status, whether it closes, and its bytes.
#[derive(Debug, PartialEq)]
struct Reply<'a> {
    status: u16,
    closes: bool,
    bytes: &'a [u8],
}

/// Splits the client's bytes into replies, panicking on any that is not well formed.
fn replies(mut received: &[u8]) -> Vec<Reply<'_>> {
    let mut replies = Vec::new();
    while !received.is_empty() {
        let head_end = received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a reply head ends with a blank line")
            + 4;
        let head = std::str::from_utf8(&received[..head_end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.split_once(' '))
            .filter(|(code, reason)| code.len() == 3 && !reason.is_empty())
            .and_then(|(code, _)| code.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("a malformed status line: {status_line:?}"));
        let mut length = None;
        let mut closes = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("a malformed header line: {line:?}"));
            if name.eq_ignore_ascii_case("content-length") {
                assert!(length.is_none(), "two Content-Length headers: {head:?}");
                length = Some(value.parse::<usize>().expect("a decimal Content-Length"));
            } else if name.eq_ignore_ascii_case("connection") {
                closes = value.eq_ignore_ascii_case("close");
            }
        }
        let length = length.unwrap_or_else(|| panic!("no Content-Length: {head:?}"));
        let rest = &received[head_end..];
        let body_len = if rest.is_empty() || rest.starts_with(b"HTTP/1.1 ") {
            0
        } else {
            assert!(rest.len() >= length, "a body cut short: {head:?}");
            length
        };
        replies.push(Reply {
            status,
            closes,
            bytes: &received[..head_end + body_len],
        });
        received = &rest[body_len..];
    }
    replies
}

fn check(setup: &Setup, served: &Served) {
    let replies = replies(&served.received);
    for (i, reply) in replies.iter().enumerate() {
        if !matches!(reply.status, 200 | 301 | 404) {
            assert!(
                reply.closes,
                "an error {} that keeps the connection",
                reply.status
            );
        }
        if reply.closes {
            assert_eq!(i + 1, replies.len(), "replies after one that closes");
        }
    }
    assert_eq!(
        served.writes_after_shutdown, 0,
        "writes after shutdown(SHUT_WR)"
    );
    // The head's buffer doubles as it grows; the one response built per request, a directory
    // redirect that keeps the query, is at most the target percent-encoded (x3) in `Location`
    // and twice HTML-escaped in its body (`&` to `&amp;`, x5), plus fixed text.
    let max_header_bytes = setup.settings.max_header_bytes;
    let head_buffer = 2 * (max_header_bytes + setup.read_buf);
    let redirect = 3 * max_header_bytes + 2 * 5 * 3 * max_header_bytes + 512;
    let bound = head_buffer.max(redirect);
    assert!(
        served.largest_allocation <= bound,
        "an allocation of {} bytes, over the bound of the head buffer ({head_buffer}) and a \
         redirect ({redirect})",
        served.largest_allocation
    );
}

fuzz_target!(|data: &[u8]| {
    let (setup, stream) = decode(data);
    let mut split = MemoryTransport::new(segments(stream, setup.cut_seed))
        .with_send_capacity(setup.send_capacity)
        .with_client_pace(setup.pace.clone());
    let mut whole =
        MemoryTransport::new(vec![stream.to_vec()]).with_send_capacity(ROOMY_SEND_BUFFER);
    if setup.fin {
        split = split.with_fin();
        whole = whole.with_fin();
    }
    let split = serve(&setup, split);
    check(&setup, &split);
    let whole = serve(&setup, whole);
    check(&setup, &whole);
    assert!(
        whole.received == split.received,
        "the replies depend on the segmentation:\nwhole: {:?}\nsplit: {:?}",
        String::from_utf8_lossy(&whole.received),
        String::from_utf8_lossy(&split.received)
    );
    assert_eq!(
        whole.closed, split.closed,
        "the close depends on the segmentation"
    );
});
