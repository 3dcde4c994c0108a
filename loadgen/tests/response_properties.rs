//! Property tests of the loadgen's response framing (`ResponseReader`) against hostile servers:
//! whatever bytes arrive, cut wherever, the framing gives the same result as for the same bytes
//! read whole, and it never reports a response complete that the bytes do not hold, checked
//! against a separate, deliberately plain reading of `Content-Length` framing (RFC 9112
//! section 6.3). The coverage-guided counterpart is `fuzz/fuzz_targets/loadgen_response.rs`.

use loadgen::engine::client::response::{
    AtClose, BodyFraming, Framed, FramingError, ResponseHead, ResponseReader, MAX_HEAD_BYTES,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// The worker's read buffer: the most one read hands the framing.
const READ_BYTES: usize = 64 * 1024;

/// One response the reader completed.
#[derive(Clone, Debug, PartialEq)]
struct Completed {
    head: ResponseHead,
    body: Vec<u8>,
    /// Offsets in the stream where the response began and where the reader said it ended.
    start: usize,
    end: usize,
}

/// Everything the reader made of one connection's stream: the responses it completed (a new
/// reader after each, as a kept-alive connection does), then the error that stopped it or how
/// the last response stood when the server closed.
#[derive(Clone, Debug, PartialEq)]
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

/// Frames `pieces` (the stream as successive reads) and then the server's close.
fn frame(pieces: &[&[u8]], head_requests: bool) -> Framing {
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
        framing.completed.push(Completed {
            head: *reader
                .head()
                .expect("a response completed by the close has a head"),
            body,
            start,
            end: base,
        });
    }
    framing.at_close = Some(at_close);
    framing
}

/// The stream read as the worker reads it whole: `READ_BYTES` at a time.
fn frame_whole(stream: &[u8], head_requests: bool) -> Framing {
    let pieces: Vec<&[u8]> = stream.chunks(READ_BYTES).collect();
    frame(&pieces, head_requests)
}

/// `stream` cut at the given points; pieces over `READ_BYTES` are cut again.
fn pieces<'a>(stream: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in at.into_iter().chain([stream.len()]) {
        pieces.extend(stream[from..cut].chunks(READ_BYTES));
        from = cut;
    }
    pieces
}

/// A head as a plain reading of RFC 9112 sees it: what the oracle needs.
#[derive(Debug)]
struct PlainHead {
    /// Bytes from the start of the input to the end of the blank line.
    end: usize,
    status: u16,
    /// `Some(Some(n))`: every `Content-Length` value is `n`; `Some(None)`: values that are not
    /// one decimal number; `None`: no field.
    content_length: Option<Option<u64>>,
    /// A `Transfer-Encoding` field names a coding: the length no longer frames the body.
    transfer_encoding: bool,
}

/// Reads the head at the start of `bytes` line by line, independently of the reader: empty
/// lines first are skipped (RFC 9112 section 2.2), then a status line `HTTP/1.x NNN`, field
/// lines `name: value`, and a blank line; lines end in LF, a CR before it is dropped. `None`:
/// no complete head of that shape.
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

/// Checks one completed response against the plain reading of the stream at its start: the
/// interim heads skipped, the final head's status, and for a body framed by `Content-Length`
/// (or none at all), that the response ends exactly where the length says and the body is
/// those bytes. Chunked and close-delimited bodies are only checked for their status here.
fn check_against_plain_reading(
    stream: &[u8],
    response: &Completed,
    head_requests: bool,
) -> Result<(), TestCaseError> {
    let mut head_start = response.start;
    let head = loop {
        let head = plain_head(&stream[head_start..]);
        prop_assert!(
            head.is_some(),
            "a response completed where no head is: {:?}",
            String::from_utf8_lossy(&stream[response.start..response.end])
        );
        let head = head.unwrap();
        if !(100..200).contains(&head.status) {
            break head;
        }
        head_start += head.end;
    };
    prop_assert_eq!(head.status, response.head.status);
    let body_start = head_start + head.end;
    let no_body = head_requests || matches!(head.status, 204 | 304);
    match response.head.framing {
        BodyFraming::None => {
            prop_assert!(no_body);
            prop_assert_eq!(response.end, body_start);
        }
        BodyFraming::Length(length) => {
            prop_assert!(!no_body && !head.transfer_encoding);
            prop_assert_eq!(head.content_length, Some(Some(length)));
            prop_assert_eq!(response.end as u64, body_start as u64 + length);
            prop_assert_eq!(&response.body[..], &stream[body_start..response.end]);
        }
        BodyFraming::Chunked => prop_assert!(head.transfer_encoding && !no_body),
        BodyFraming::UntilClose => {
            prop_assert!(!no_body && (head.content_length.is_none() || head.transfer_encoding));
            prop_assert_eq!(response.end, stream.len());
        }
    }
    Ok(())
}

/// The checks for any stream: the same framing whole and cut, and each completed response
/// confirmed by the plain reading.
fn check_stream(stream: &[u8], cuts: &[Index], head_requests: bool) -> Result<(), TestCaseError> {
    let whole = frame_whole(stream, head_requests);
    let cut = frame(&pieces(stream, cuts), head_requests);
    prop_assert_eq!(&whole, &cut);
    for response in &whole.completed {
        check_against_plain_reading(stream, response, head_requests)?;
    }
    Ok(())
}

/// A response a kept-alive connection can carry: framed by `Content-Length` (plainly or in
/// the forms RFC 9110 section 8.6 allows), chunked, or without a body, some after interim
/// responses, some larger than one read.
fn well_framed_response() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (body.clone(), 0..3usize).prop_map(|(body, style)| {
            let n = body.len();
            let head = match style {
                0 => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
                1 => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {n}, {n}\r\ncontent-length:\t{n} \r\n\r\n"
                ),
                _ => format!(
                    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\nConnection: keep-alive\nContent-Length: {n}\n\n"
                ),
            };
            [head.as_bytes(), &body].concat()
        }),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..4).prop_map(
            |chunks| {
                let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for chunk in chunks {
                    bytes.extend(format!("{:X};x=y\r\n", chunk.len()).bytes());
                    bytes.extend(chunk);
                    bytes.extend(b"\r\n");
                }
                bytes.extend(b"0\r\nTrailer: t\r\n\r\n");
                bytes
            }
        ),
        Just(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        Just(b"\r\n\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec()),
        (0..3usize).prop_map(|k| {
            let length = READ_BYTES + 1000 * k;
            let mut bytes =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n").into_bytes();
            bytes.resize(bytes.len() + length, b'x');
            bytes
        }),
    ]
}

/// Any response a server might send: well framed, framed by its close, or refused by the
/// framing rules (lengths that disagree, are signed or overflow, an unasked-for 101).
fn response() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        4 => well_framed_response(),
        1 => body.clone().prop_map(|body| {
            [&b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"[..], &body].concat()
        }),
        1 => (body, any::<bool>()).prop_map(|(body, disagree)| {
            let n = body.len();
            let field = if disagree {
                format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1)
            } else {
                format!("Content-Length: +{n}\r\n")
            };
            [format!("HTTP/1.1 200 OK\r\n{field}\r\n").as_bytes(), &body].concat()
        }),
        1 => Just(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec()),
        1 => Just(b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec()),
    ]
}

/// One change a broken or hostile server might make to a response.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'\r'),
        Just(b'\n'),
        Just(b' '),
        Just(b':'),
        Just(b'0'),
        Just(b'9'),
        Just(b',')
    ];
    prop_oneof![
        (any::<Index>(), interesting.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match *mutation {
        Mutation::Replace(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
    }
}

/// A connection's stream: responses one after the other, some of them damaged, or noise.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (
            proptest::collection::vec(response(), 1..5),
            proptest::collection::vec(mutation(), 0..4),
        )
            .prop_map(|(responses, mutations)| {
                let mut stream = responses.concat();
                for mutation in &mutations {
                    mutate(&mut stream, mutation);
                }
                stream
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

proptest! {
    /// Whatever the server sends, cut anywhere: the same responses, errors and end as for the
    /// bytes read whole, and no response completed that the plain reading does not find.
    #[test]
    fn hostile_bytes_frame_the_same_however_cut_and_never_complete_falsely(
        stream in stream(),
        cuts in proptest::collection::vec(any::<Index>(), 0..16),
        head_requests in proptest::bool::weighted(0.2),
    ) {
        check_stream(&stream, &cuts, head_requests)?;
    }

    /// An undamaged stream of responses is read to its end: every response completes.
    #[test]
    fn well_framed_responses_all_complete(
        responses in proptest::collection::vec(well_framed_response(), 1..5),
        cuts in proptest::collection::vec(any::<Index>(), 0..16),
    ) {
        let stream = responses.concat();
        check_stream(&stream, &cuts, false)?;
        let framing = frame(&pieces(&stream, &cuts), false);
        prop_assert_eq!(framing.error, None);
        prop_assert_eq!(framing.completed.len(), responses.len());
        prop_assert_eq!(framing.at_close, Some(AtClose::NothingReceived));
    }

    /// A head that arrives cut, its rest coming with the body in a read as large as the
    /// worker's buffer (`MAX_HEAD_BYTES` of it), is a head like any other. The framing used to
    /// refuse it as too large: it counted the whole read, body included, against the head limit.
    #[test]
    fn a_cut_head_completed_by_a_full_read_is_not_too_large(
        head_cut in 1..60usize,
        extra_fields in 0..40usize,
    ) {
        let length = 2 * MAX_HEAD_BYTES;
        let mut stream = b"HTTP/1.1 200 OK\r\n".to_vec();
        for n in 0..extra_fields {
            stream.extend(format!("X-Field-{n}: {n}\r\n").bytes());
        }
        stream.extend(format!("Content-Length: {length}\r\n\r\n").bytes());
        stream.resize(stream.len() + length, b'b');
        let mut pieces = vec![&stream[..head_cut]];
        pieces.extend(stream[head_cut..].chunks(MAX_HEAD_BYTES));
        let framing = frame(&pieces, false);
        prop_assert_eq!(framing.error, None);
        prop_assert_eq!(framing.completed.len(), 1);
        prop_assert_eq!(framing.completed[0].body.len(), length);
    }
}

/// The limit still holds when the head is cut: a head that has not ended within
/// `MAX_HEAD_BYTES` is refused, however its bytes arrive.
#[test]
fn a_head_over_the_limit_is_refused_however_cut() {
    let mut stream = b"HTTP/1.1 200 OK\r\n".to_vec();
    while stream.len() <= MAX_HEAD_BYTES {
        stream.extend(b"X-Filler: 0123456789\r\n");
    }
    stream.extend(b"Content-Length: 0\r\n\r\n");
    for first in [1, 100, MAX_HEAD_BYTES - 1] {
        let pieces = [&stream[..first], &stream[first..]];
        assert_eq!(
            frame(&pieces, false).error,
            Some(FramingError::HeadTooLarge),
            "first read {first}"
        );
    }
}
