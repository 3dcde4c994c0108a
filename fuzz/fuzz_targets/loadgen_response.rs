//! Fuzz target: the loadgen's response framing (`ResponseReader`) fed arbitrary server bytes,
//! read whole (in reads of the worker's 64 KiB) and cut at arbitrary points.
//!
//! Input: a 5-byte header (byte 0, bit 0: the requests were HEAD; bytes 1-4: the seed of the
//! cut points), then the server's bytes (a seed is a real response with 5 bytes in front).
//! Checked: no panic; the same responses, error and end whether read whole or cut; and no
//! response reported complete that the bytes do not hold: each one is checked against a plain
//! line-by-line reading of its head, and for `Content-Length` framing (or no body) it must end
//! exactly where that reading says, with exactly those body bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// The loadgen's framing module, compiled from its source: it is pure (httparse and thiserror
/// only), and the rest of the loadgen would only slow the instrumented build down.
#[allow(dead_code)]
#[path = "../../loadgen/src/engine/client/response.rs"]
mod response;

// The framing types the shared oracle takes from here (`super::`).
use response::{AtClose, BodyFraming, Framed, FramingError, ResponseHead, ResponseReader};

/// The framing harness and the plain reading it is checked against, shared with the property
/// tests (`loadgen/tests/response_properties.rs`).
#[path = "../../loadgen/tests/response_oracle/mod.rs"]
mod response_oracle;

use response_oracle::{check_against_plain_reading, frame, frame_whole, READ_BYTES};

/// The stream cut at up to 15 points drawn from `seed` (xorshift32); no piece over a read.
fn pieces(stream: &[u8], seed: u32) -> Vec<&[u8]> {
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
    for cut in cuts.into_iter().chain([stream.len()]) {
        pieces.extend(stream[from..cut].chunks(READ_BYTES));
        from = cut;
    }
    pieces
}

fuzz_target!(|data: &[u8]| {
    let mut header = [0u8; 5];
    let taken = data.len().min(5);
    header[..taken].copy_from_slice(&data[..taken]);
    let stream = &data[taken..];
    let head_requests = header[0] & 1 != 0;
    let seed = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let whole = frame_whole(stream, head_requests);
    let cut = frame(&pieces(stream, seed), head_requests);
    assert_eq!(
        whole, cut,
        "the framing depends on where the stream was cut"
    );
    for response in &whole.completed {
        if let Err(problem) = check_against_plain_reading(stream, response, head_requests) {
            panic!("{problem}");
        }
    }
});
