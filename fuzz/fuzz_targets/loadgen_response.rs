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

use response::{AtClose, BodyFraming, Framed, FramingError, ResponseHead, ResponseReader};

/// The worker's read buffer: the most one read hands the framing.
const READ_BYTES: usize = 64 * 1024;

/// One response the reader completed: its head, body, and where in the stream it began and
/// where the reader said it ended.
#[derive(Debug, PartialEq)]
struct Completed {
    head: ResponseHead,
    body: Vec<u8>,
    start: usize,
    end: usize,
}

/// The responses completed (a new reader after each, as a kept-alive connection does), then
/// the error that stopped the reading, or how the last response stood at the server's close.
#[derive(Debug, PartialEq)]
struct Framing {
    completed: Vec<Completed>,
    error: Option<FramingError>,
    at_close: Option<AtClose>,
}

fn new_reader(head_requests: bool) -> ResponseReader {
    if head_requests {
        ResponseReader::for_head_request()
    } else {
        ResponseReader::new()
    }
}

fn frame(pieces: &[&[u8]], head_requests: bool) -> Framing {
    let mut framing = Framing {
        completed: Vec::new(),
        error: None,
        at_close: None,
    };
    let mut reader = new_reader(head_requests);
    let mut body = Vec::new();
    let (mut start, mut base) = (0, 0);
    for piece in pieces {
        let mut input: &[u8] = piece;
        loop {
            let result = reader.next(&mut input);
            let at = base + piece.len() - input.len();
            match result {
                Err(error) => {
                    framing.error = Some(error);
                    return framing;
                }
                Ok(Framed::NeedMore) => break,
                Ok(Framed::Body(bytes)) => body.extend_from_slice(bytes),
                Ok(Framed::Complete) => {}
            }
            if reader.is_complete() {
                framing.completed.push(Completed {
                    head: *reader.head().expect("a complete response has a head"),
                    body: std::mem::take(&mut body),
                    start,
                    end: at,
                });
                start = at;
                reader = new_reader(head_requests);
            }
        }
        base += piece.len();
    }
    let was_complete = reader.is_complete();
    let at_close = reader.at_close();
    if at_close == AtClose::Complete && !was_complete {
        let head = *reader
            .head()
            .expect("a response completed by the close has a head");
        assert_eq!(
            head.framing,
            BodyFraming::UntilClose,
            "the close completed {head:?}"
        );
        framing.completed.push(Completed {
            head,
            body,
            start,
            end: base,
        });
    }
    framing.at_close = Some(at_close);
    framing
}

/// A head as a plain line-by-line reading sees it.
struct PlainHead {
    end: usize,
    status: u16,
    /// `Some(Some(n))`: every `Content-Length` value is `n`; `Some(None)`: values that are not
    /// one decimal number; `None`: no field.
    content_length: Option<Option<u64>>,
    /// A `Transfer-Encoding` field names a coding: the length no longer frames the body.
    transfer_encoding: bool,
}

/// Empty lines skipped, a status line `HTTP/1.x NNN`, `name: value` lines, a blank line; lines
/// end in LF, a CR before it dropped. `None`: no complete head of that shape.
fn plain_head(bytes: &[u8]) -> Option<PlainHead> {
    let mut offset = 0;
    let mut next_line = || {
        let rest = &bytes[offset..];
        let end = rest.iter().position(|&b| b == b'\n')?;
        offset += end + 1;
        Some(rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]))
    };
    let mut status_line = next_line()?;
    while status_line.is_empty() {
        status_line = next_line()?;
    }
    let code = status_line.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = std::str::from_utf8(code).ok()?.parse().ok()?;
    let mut content_length: Option<Option<u64>> = None;
    let mut transfer_encoding = false;
    loop {
        let line = next_line()?;
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // A field with no coding at all says nothing about the body.
            transfer_encoding |= value
                .split(|&b| b == b',')
                .any(|c| !c.trim_ascii().is_empty());
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for item in value.split(|&b| b == b',') {
                let item = item.trim_ascii();
                let number = (!item.is_empty() && item.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(item).ok()?.parse::<u64>().ok())
                    .flatten();
                content_length = match (content_length, number) {
                    (None, n) => Some(n),
                    (Some(Some(a)), Some(b)) if a == b => Some(Some(a)),
                    _ => Some(None),
                };
            }
        }
    }
    Some(PlainHead {
        end: offset,
        status,
        content_length,
        transfer_encoding,
    })
}

fn check_against_plain_reading(stream: &[u8], response: &Completed, head_requests: bool) {
    let mut head_start = response.start;
    let head = loop {
        let head = plain_head(&stream[head_start..]).unwrap_or_else(|| {
            panic!(
                "a response completed where no head is: {:?}",
                String::from_utf8_lossy(&stream[response.start..response.end])
            )
        });
        if !(100..200).contains(&head.status) {
            break head;
        }
        head_start += head.end;
    };
    assert_eq!(head.status, response.head.status);
    let body_start = head_start + head.end;
    let no_body = head_requests || matches!(head.status, 204 | 304);
    match response.head.framing {
        BodyFraming::None => {
            assert!(no_body);
            assert_eq!(response.end, body_start);
        }
        BodyFraming::Length(length) => {
            assert!(!no_body && !head.transfer_encoding);
            assert_eq!(head.content_length, Some(Some(length)));
            assert_eq!(response.end as u64, body_start as u64 + length);
            assert_eq!(&response.body[..], &stream[body_start..response.end]);
        }
        BodyFraming::Chunked => assert!(head.transfer_encoding && !no_body),
        BodyFraming::UntilClose => {
            assert!(!no_body && (head.content_length.is_none() || head.transfer_encoding));
            assert_eq!(response.end, stream.len());
        }
    }
}

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
    let whole: Vec<&[u8]> = stream.chunks(READ_BYTES).collect();
    let whole = frame(&whole, head_requests);
    let cut = frame(&pieces(stream, seed), head_requests);
    assert_eq!(
        whole, cut,
        "the framing depends on where the stream was cut"
    );
    for response in &whole.completed {
        check_against_plain_reading(stream, response, head_requests);
    }
});
