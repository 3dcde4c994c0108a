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

mod response_oracle;
use response_oracle::{check_against_plain_reading, frame, frame_whole, READ_BYTES};

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

/// The checks for any stream: the same framing whole and cut, and each completed response
/// confirmed by the plain reading.
fn check_stream(stream: &[u8], cuts: &[Index], head_requests: bool) -> Result<(), TestCaseError> {
    let whole = frame_whole(stream, head_requests);
    let cut = frame(&pieces(stream, cuts), head_requests);
    prop_assert_eq!(&whole, &cut);
    for response in &whole.completed {
        check_against_plain_reading(stream, response, head_requests)
            .map_err(TestCaseError::fail)?;
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
