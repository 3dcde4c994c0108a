//! The framing harness and the oracle that the response-framing properties
//! (`response_properties.rs`) and the fuzz target `fuzz/fuzz_targets/loadgen_response.rs` share:
//! a stream framed as the worker frames it, and a deliberately plain line-by-line reading of
//! each completed response's head (RFC 9112 section 6.3) to check it against.
//!
//! Included by path in both; the includer brings the framing types into scope at its root
//! (`AtClose`, `BodyFraming`, `Framed`, `FramingError`, `ResponseHead`, `ResponseReader`), from
//! the loadgen crate or from the module compiled from its source.

use super::{AtClose, BodyFraming, Framed, FramingError, ResponseHead, ResponseReader};

/// `Err` with the message unless `condition` holds.
macro_rules! ensure {
    ($condition:expr) => {
        if !$condition {
            return Err(format!("failed: {}", stringify!($condition)));
        }
    };
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// `Err` naming both sides unless they are equal.
macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {
        if $left != $right {
            return Err(format!(
                "{} != {}: {:?} against {:?}",
                stringify!($left),
                stringify!($right),
                $left,
                $right
            ));
        }
    };
}

/// The worker's read buffer: the most one read hands the framing.
pub const READ_BYTES: usize = 64 * 1024;

/// One response the reader completed.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// Offsets in the stream where the response began and where the reader said it ended.
    pub start: usize,
    pub end: usize,
}

/// Everything the reader made of one connection's stream: the responses it completed (a new
/// reader after each, as a kept-alive connection does), then the error that stopped it or how
/// the last response stood when the server closed.
#[derive(Clone, Debug, PartialEq)]
pub struct Framing {
    pub completed: Vec<Completed>,
    pub error: Option<FramingError>,
    pub at_close: Option<AtClose>,
}

pub fn new_reader(head_requests: bool) -> ResponseReader {
    if head_requests {
        ResponseReader::for_head_request()
    } else {
        ResponseReader::new()
    }
}

/// Frames `pieces` (the stream as successive reads) and then the server's close.
pub fn frame(pieces: &[&[u8]], head_requests: bool) -> Framing {
    let mut framing = Framing {
        completed: Vec::new(),
        error: None,
        at_close: None,
    };
    let mut reader = new_reader(head_requests);
    let mut body = Vec::new();
    let mut start = 0;
    let mut base = 0;
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

/// The stream read as the worker reads it whole: `READ_BYTES` at a time.
pub fn frame_whole(stream: &[u8], head_requests: bool) -> Framing {
    let pieces: Vec<&[u8]> = stream.chunks(READ_BYTES).collect();
    frame(&pieces, head_requests)
}

/// A head as a plain reading of RFC 9112 sees it: what the oracle needs.
#[derive(Debug)]
pub struct PlainHead {
    /// Bytes from the start of the input to the end of the blank line.
    pub end: usize,
    pub status: u16,
    /// `Some(Some(n))`: every `Content-Length` value is `n`; `Some(None)`: values that are not
    /// one decimal number; `None`: no field.
    pub content_length: Option<Option<u64>>,
    /// A `Transfer-Encoding` field names a coding: the length no longer frames the body.
    pub transfer_encoding: bool,
}

/// Reads the head at the start of `bytes` line by line, independently of the reader: empty
/// lines first are skipped (RFC 9112 section 2.2), then a status line `HTTP/1.x NNN`, field
/// lines `name: value`, and a blank line; lines end in LF, a CR before it is dropped. `None`:
/// no complete head of that shape.
pub fn plain_head(bytes: &[u8]) -> Option<PlainHead> {
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

/// Checks one completed response against the plain reading of the stream at its start: the
/// interim heads skipped, the final head's status, and for a body framed by `Content-Length`
/// (or none at all), that the response ends exactly where the length says and the body is
/// those bytes. Chunked and close-delimited bodies are only checked for their status here.
pub fn check_against_plain_reading(
    stream: &[u8],
    response: &Completed,
    head_requests: bool,
) -> Result<(), String> {
    let mut head_start = response.start;
    let head = loop {
        let head = plain_head(&stream[head_start..]).ok_or_else(|| {
            format!(
                "a response completed where no head is: {:?}",
                String::from_utf8_lossy(&stream[response.start..response.end])
            )
        })?;
        if !(100..200).contains(&head.status) {
            break head;
        }
        head_start += head.end;
    };
    ensure_eq!(head.status, response.head.status);
    let body_start = head_start + head.end;
    let no_body = head_requests || matches!(head.status, 204 | 304);
    match response.head.framing {
        BodyFraming::None => {
            ensure!(no_body);
            ensure_eq!(response.end, body_start);
        }
        BodyFraming::Length(length) => {
            ensure!(!no_body && !head.transfer_encoding);
            ensure_eq!(head.content_length, Some(Some(length)));
            ensure_eq!(response.end as u64, body_start as u64 + length);
            ensure_eq!(&response.body[..], &stream[body_start..response.end]);
        }
        BodyFraming::Chunked => ensure!(head.transfer_encoding && !no_body),
        BodyFraming::UntilClose => {
            ensure!(!no_body && (head.content_length.is_none() || head.transfer_encoding));
            ensure_eq!(response.end, stream.len());
        }
    }
    Ok(())
}
