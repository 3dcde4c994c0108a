//! Callgrind instruction counts (gungraun) of a client's per-request work outside the kernel:
//! encode the request head, frame the reply (`Content-Length` in one read and over three,
//! chunked), and record a reply's sample into the class's histograms and the timeline's
//! interval. Inputs are those of `client_path.rs` and `record.rs`; buffers, replies and
//! recorders are built in gungraun's `setup`, so only the request's own work is counted.
//!
//! Run through `scripts/instructions.sh` (needs valgrind and `gungraun-runner` 0.20.0).

use std::hint::black_box;

use gungraun::prelude::*;
use loadgen::engine::client::request::{encode_request, RequestStyle};
use loadgen::engine::client::response::{Framed, ResponseReader};
use loadgen::record::{ClassRecorder, IntervalFigures};

/// Body bytes of the replies framed: a 1 KiB file, as in `client_path.rs`.
const BODY_BYTES: usize = 1024;

/// A request buffer with room for any head encoded here.
fn out_buffer(style: RequestStyle) -> (RequestStyle, Vec<u8>) {
    (style, Vec::with_capacity(256))
}

#[library_benchmark]
#[bench::http10_new_connection(args = (RequestStyle::Http10), setup = out_buffer)]
#[bench::keepalive(args = (RequestStyle::KeepAlive), setup = out_buffer)]
fn specweb96((style, mut out): (RequestStyle, Vec<u8>)) -> Vec<u8> {
    encode_request(
        &mut out,
        black_box(b"/dir00042/class1_3"),
        black_box("127.0.0.1:8080"),
        style,
    );
    black_box(out)
}

#[library_benchmark]
#[bench::keepalive(args = (RequestStyle::BrowserKeepAlive), setup = out_buffer)]
fn browser((style, mut out): (RequestStyle, Vec<u8>)) -> Vec<u8> {
    encode_request(
        &mut out,
        black_box(b"/index.html"),
        black_box("198.18.0.1:8080"),
        style,
    );
    black_box(out)
}

library_benchmark_group!(name = encode, benchmarks = [specweb96, browser]);

/// A 1 KiB reply as afterburner sends it.
fn content_length_reply() -> Vec<u8> {
    let mut reply = b"HTTP/1.1 200 OK\r\nServer: afterburner\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n".to_vec();
    reply.extend(vec![b'x'; BODY_BYTES]);
    reply
}

/// The same 1 KiB body chunked, in two 512-byte chunks.
fn chunked_reply() -> Vec<u8> {
    let mut reply =
        b"HTTP/1.1 200 OK\r\nServer: afterburner\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..2 {
        reply.extend_from_slice(b"200\r\n");
        reply.extend(vec![b'x'; BODY_BYTES / 2]);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"0\r\n\r\n");
    reply
}

/// A reply as consecutive reads: cut at these offsets.
struct Reads {
    reply: Vec<u8>,
    cuts: Vec<usize>,
    reader: ResponseReader,
}

fn reads(reply: fn() -> Vec<u8>, cuts: &[usize]) -> Reads {
    Reads {
        reply: reply(),
        cuts: cuts.to_vec(),
        reader: ResponseReader::new(),
    }
}

#[library_benchmark]
#[bench::content_length_one_read(args = (content_length_reply, &[]), setup = reads)]
// The head's first 40 bytes, 500 more, the rest: as `client_path.rs`'s `frame/three_reads`.
#[bench::content_length_three_reads(args = (content_length_reply, &[40, 540]), setup = reads)]
#[bench::chunked_one_read(args = (chunked_reply, &[]), setup = reads)]
fn reply(mut reads: Reads) -> Reads {
    let mut body = 0u64;
    let mut start = 0;
    let ends = reads.cuts.iter().copied().chain([reads.reply.len()]);
    'reads: for end in ends {
        let mut input = &reads.reply[start..end];
        start = end;
        loop {
            match reads.reader.next(&mut input).expect("a valid reply") {
                Framed::NeedMore => break,
                Framed::Body(bytes) => body += bytes.len() as u64,
                Framed::Complete => break 'reads,
            }
        }
    }
    assert_eq!(body, BODY_BYTES as u64, "the whole body must be framed");
    black_box(body);
    reads
}

library_benchmark_group!(name = frame, benchmarks = [reply]);

/// A worker's recorders for one class and the current timeline interval.
fn recorders(total_us: u64) -> (u64, ClassRecorder, IntervalFigures) {
    (total_us, ClassRecorder::new(), IntervalFigures::new())
}

// One reply of 1 KiB into the class's histograms (connect, first byte, total) and the
// interval's figures, as `record.rs` does for every reply in the measured window.
#[library_benchmark]
#[bench::lan(args = (850), setup = recorders)]
#[bench::modem(args = (412_550), setup = recorders)]
fn sample(
    (total_us, mut class, mut interval): (u64, ClassRecorder, IntervalFigures),
) -> (ClassRecorder, IntervalFigures) {
    class.record(
        black_box(1024),
        black_box(Some(total_us / 4)),
        black_box(Some(total_us / 2)),
        black_box(total_us),
    );
    interval.record(black_box(1024), black_box(total_us));
    (class, interval)
}

library_benchmark_group!(name = record, benchmarks = [sample]);

main!(library_benchmark_groups = encode, frame, record);
