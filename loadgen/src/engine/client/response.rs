//! Response framing by RFC 9112 section 6.3, pure: bytes in as they arrive, split anywhere, and
//! out the head (status, how the body is delimited, whether the server closes), the body's
//! decoded bytes for the content check, and where the response ends. Knows nothing of sockets:
//! the connection feeds it what it read and tells it when the server closed.
//!
//! The rules, in RFC 9112 section 6.3's order:
//! 1. a response to HEAD, any 1xx, 204 and 304 end at the blank line after the head; interim
//!    1xx responses (100 Continue, 103 Early Hints) are skipped and the final one read;
//!    101 Switching Protocols was never asked for and is an error;
//! 2. (CONNECT does not apply: the loadgen never sends it);
//! 3. `Transfer-Encoding` with `chunked` last: the chunked coding (section 7.1: chunk sizes in
//!    hex, chunk extensions, a trailer section), the decoded bytes counted; with another coding
//!    last, the body runs to the server's close; either way `Content-Length` is ignored and the
//!    connection is not reused (section 6.3 point 3);
//! 4. a valid `Content-Length` (one value, or a list of identical values, RFC 9110 section
//!    8.6): that many bytes; an invalid one is an unrecoverable error (point 5);
//! 5. otherwise the body runs to the server's close.
//!
//! Lines may end in CRLF or a bare LF (section 2.2 lets a recipient accept the latter). Header
//! fields are not limited in number, only the head in size ([`MAX_HEAD_BYTES`]).

use std::mem::MaybeUninit;

/// Largest response head accepted (status line and headers), like a browser's limit; also the
/// most a chunked body's framing (one size line, the trailer section) may take.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields parsed without an allocation; a head with more is parsed again on the heap.
const STACK_HEADERS: usize = 32;
/// Hex digits of a chunk size at most: 16 fill a u64.
const MAX_CHUNK_SIZE_DIGITS: u32 = 16;

/// How a response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a response to HEAD, a 204 or a 304.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// The parts of a final response's head the client acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, e.g. 200.
    pub status: u16,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// The connection ends after this response: HTTP/1.0 without keep-alive, `Connection:
    /// close`, a body delimited by the close, or `Transfer-Encoding` beside `Content-Length`.
    pub closes: bool,
}

/// What the next piece of input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// Everything given was taken; the response needs more bytes.
    NeedMore,
    /// Decoded bytes of the body, to be checked against what was asked for.
    Body(&'a [u8]),
    /// The response is complete; bytes left in the input belong to no request.
    Complete,
}

/// Bytes that cannot be a response (RFC 9112 says the client must close the connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Not an HTTP/1.x status line and header fields.
    #[error("malformed response head")]
    Malformed,
    /// No end of the head within [`MAX_HEAD_BYTES`].
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// `Content-Length` not a decimal number, or several different values (RFC 9112 6.3 ¶5).
    #[error("invalid Content-Length")]
    BadContentLength,
    /// A chunk size that is not hex, too large, or a chunk not followed by CRLF (RFC 9112 7.1).
    #[error("malformed chunked body")]
    BadChunk,
    /// A chunk-size line or the trailer section beyond [`MAX_HEAD_BYTES`].
    #[error("chunk framing larger than {MAX_HEAD_BYTES} bytes")]
    ChunkFramingTooLarge,
    /// `101 Switching Protocols`, which the client never asked for.
    #[error("unexpected 101 Switching Protocols")]
    UnexpectedSwitch,
}

/// How a response stands when the server closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtClose {
    /// The close delimited the body (or the response was already complete).
    Complete,
    /// Not one byte of a response came: the server closed (or reset) under the request.
    NothingReceived,
    /// The response began and was cut short.
    Truncated,
}

/// Where the reader is inside a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// The chunk-size line: its hex digits so far.
    Size { size: u64, digits: u32 },
    /// After a chunk's size, up to the line's end: whitespace and chunk extensions, ignored.
    Extension { size: u64 },
    /// A CR ended a line whose LF is due; then `next`.
    LineFeed { next: AfterLine },
    /// Chunk data still to come.
    Data { remaining: u64 },
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section: `line_bytes` of the current field line so far.
    Trailer { line_bytes: usize },
}

/// What a completed line leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterLine {
    /// The end of a chunk-size line of this size.
    Size(u64),
    /// The end of a chunk's data.
    Data,
    /// The end of a trailer line (`empty`: the blank line that ends the message).
    Trailer { empty: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// `Content-Length` bytes still to come.
    Length {
        remaining: u64,
    },
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// One response being read.
#[derive(Debug)]
pub struct ResponseReader {
    /// The request was HEAD: the response has no body whatever its head says.
    head_request: bool,
    state: State,
    /// A head that arrived split over reads; empty (unallocated) in the common case of a head
    /// that arrives whole, which is parsed straight from the read buffer.
    partial_head: Vec<u8>,
    head: Option<ResponseHead>,
    /// Interim (1xx) responses skipped.
    interim: u32,
    /// Decoded body bytes so far.
    body_bytes: u64,
    /// Bytes of chunk framing (size lines, trailers) taken so far, against the limit.
    chunk_framing_bytes: usize,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader::new()
    }
}

impl ResponseReader {
    /// A reader for the response to a GET.
    pub fn new() -> ResponseReader {
        ResponseReader {
            head_request: false,
            state: State::Head,
            partial_head: Vec::new(),
            head: None,
            interim: 0,
            body_bytes: 0,
            chunk_framing_bytes: 0,
        }
    }

    /// A reader for the response to a HEAD: it ends at its head.
    pub fn for_head_request() -> ResponseReader {
        ResponseReader {
            head_request: true,
            ..ResponseReader::new()
        }
    }

    /// The final response's head, once it is complete.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Decoded body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Interim (1xx) responses skipped before the final one.
    pub fn interim_responses(&self) -> u32 {
        self.interim
    }

    /// Body bytes still to come when the length is known (`Content-Length`); `None` otherwise.
    pub fn body_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } => Some(remaining),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Whether the response is complete: after a `Body` it saves the call that would only say
    /// `Complete`.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Whether any byte of the response has arrived.
    pub fn started(&self) -> bool {
        self.head.is_some() || self.interim > 0 || !self.partial_head.is_empty()
    }

    /// Takes the next piece of `input`, advancing it past what was used. Call until it returns
    /// `NeedMore` (read more) or `Complete`.
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Result<Framed<'a>, FramingError> {
        // The hot path, a head and then a Content-Length body, kept small; the rest out of line.
        if self.state == State::Head {
            if input.is_empty() {
                return Ok(Framed::NeedMore);
            }
            let Some(consumed) = self.take_head(input)? else {
                *input = &[];
                return Ok(Framed::NeedMore);
            };
            *input = &input[consumed..];
        }
        match self.state {
            State::Length { remaining } => {
                if input.is_empty() {
                    return Ok(Framed::NeedMore);
                }
                let take = input
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::Done
                } else {
                    State::Length { remaining: left }
                };
                Ok(Framed::Body(self.take_body(input, take)))
            }
            State::Done => Ok(Framed::Complete),
            _ => self.next_other(input),
        }
    }

    /// [`ResponseReader::next`] past a head (an interim one leaves the state at `Head`), in a
    /// chunked body, or in one delimited by the close.
    #[inline(never)]
    fn next_other<'a>(&mut self, input: &mut &'a [u8]) -> Result<Framed<'a>, FramingError> {
        loop {
            match self.state {
                State::Head | State::Length { .. } | State::Done => return self.next(input),
                State::UntilClose => {
                    if input.is_empty() {
                        return Ok(Framed::NeedMore);
                    }
                    return Ok(Framed::Body(self.take_body(input, input.len())));
                }
                State::Chunked(Chunk::Data { remaining }) => {
                    if input.is_empty() {
                        return Ok(Framed::NeedMore);
                    }
                    let take = input
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let left = remaining - take as u64;
                    self.state = State::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data { remaining: left }
                    });
                    return Ok(Framed::Body(self.take_body(input, take)));
                }
                State::Chunked(chunk) => {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(Framed::NeedMore);
                    };
                    *input = rest;
                    self.chunk_framing_bytes += 1;
                    if self.chunk_framing_bytes > MAX_HEAD_BYTES {
                        return Err(FramingError::ChunkFramingTooLarge);
                    }
                    self.state = chunk_byte(chunk, byte)?;
                }
            }
        }
    }

    /// The server closed the connection (a read returned 0).
    pub fn at_close(&mut self) -> AtClose {
        match self.state {
            State::Done => AtClose::Complete,
            State::UntilClose => {
                self.state = State::Done;
                AtClose::Complete
            }
            _ if !self.started() => AtClose::NothingReceived,
            _ => AtClose::Truncated,
        }
    }

    fn take_body<'a>(&mut self, input: &mut &'a [u8], take: usize) -> &'a [u8] {
        let (body, rest) = input.split_at(take);
        *input = rest;
        self.body_bytes += take as u64;
        body
    }

    /// Parses a head from `input` (after what an earlier read left). `Some(n)`: a head ended at
    /// `input[n - 1]` (an interim one is skipped, the state moves on); `None`: all of `input`
    /// was kept, more is needed.
    #[inline(never)]
    fn take_head(&mut self, input: &[u8]) -> Result<Option<usize>, FramingError> {
        let (parsed, before) = if self.partial_head.is_empty() {
            (parse_head(input)?, 0)
        } else {
            let before = self.partial_head.len();
            // Only the bytes that could still end a head within the limit are kept: the read
            // that completes a head usually carries body bytes too, and may be as large as the
            // limit itself (the worker's read buffer is).
            let kept = input.len().min(MAX_HEAD_BYTES - before);
            self.partial_head.extend_from_slice(&input[..kept]);
            let parsed = parse_head(&self.partial_head)?;
            if parsed.is_none() && kept < input.len() {
                return Err(FramingError::HeadTooLarge);
            }
            (parsed, before)
        };
        let Some((length, head)) = parsed else {
            if before == 0 {
                self.keep_partial(input)?;
            }
            return Ok(None);
        };
        self.partial_head = Vec::new();
        self.start_body(head)?;
        // The head did not end in the bytes kept before (it would have parsed then).
        Ok(Some(length - before))
    }

    fn keep_partial(&mut self, input: &[u8]) -> Result<(), FramingError> {
        if self.partial_head.len() + input.len() > MAX_HEAD_BYTES {
            return Err(FramingError::HeadTooLarge);
        }
        self.partial_head.extend_from_slice(input);
        Ok(())
    }

    /// A head is complete: skip it if interim, else decide the body's framing.
    fn start_body(&mut self, parsed: ParsedHead) -> Result<(), FramingError> {
        if parsed.status == 101 {
            return Err(FramingError::UnexpectedSwitch);
        }
        if (100..200).contains(&parsed.status) {
            self.interim += 1;
            return Ok(());
        }
        let no_body = self.head_request || parsed.status == 204 || parsed.status == 304;
        let framing = if no_body {
            BodyFraming::None
        } else if let Some(chunked_last) = parsed.transfer_coding_chunked {
            if chunked_last {
                BodyFraming::Chunked
            } else {
                BodyFraming::UntilClose
            }
        } else {
            match parsed.content_length {
                LengthField::Absent => BodyFraming::UntilClose,
                LengthField::Valid(length) => BodyFraming::Length(length),
                LengthField::Invalid => return Err(FramingError::BadContentLength),
            }
        };
        // A Transfer-Encoding beside a Content-Length may be a smuggling attempt: the
        // connection must not carry another request (RFC 9112 6.3 point 3).
        let both = parsed.transfer_coding_chunked.is_some()
            && parsed.content_length != LengthField::Absent;
        let closes = parsed.closes || framing == BodyFraming::UntilClose || both;
        self.head = Some(ResponseHead {
            status: parsed.status,
            framing,
            closes,
        });
        self.state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(length) => State::Length { remaining: length },
            BodyFraming::Chunked => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
            BodyFraming::UntilClose => State::UntilClose,
        };
        Ok(())
    }
}

/// The chunked coding, one framing byte at a time (chunk data is taken in bulk elsewhere).
fn chunk_byte(chunk: Chunk, byte: u8) -> Result<State, FramingError> {
    // A line ends at CRLF or a bare LF; after a CR only the LF may follow.
    let end_line = |next: AfterLine| {
        if byte == b'\r' {
            State::Chunked(Chunk::LineFeed { next })
        } else {
            state_after_line(next)
        }
    };
    Ok(match chunk {
        Chunk::Size { size, digits } => match byte {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                if digits == MAX_CHUNK_SIZE_DIGITS {
                    return Err(FramingError::BadChunk);
                }
                let value = u64::from((byte as char).to_digit(16).expect("a hex digit"));
                State::Chunked(Chunk::Size {
                    size: size << 4 | value,
                    digits: digits + 1,
                })
            }
            _ if digits == 0 => return Err(FramingError::BadChunk),
            b'\r' | b'\n' => end_line(AfterLine::Size(size)),
            // Extensions are opaque to a client that asked for none: only the line's end matters.
            b';' | b' ' | b'\t' => State::Chunked(Chunk::Extension { size }),
            _ => return Err(FramingError::BadChunk),
        },
        Chunk::Extension { size } => match byte {
            b'\r' | b'\n' => end_line(AfterLine::Size(size)),
            _ => State::Chunked(Chunk::Extension { size }),
        },
        Chunk::LineFeed { next } => match byte {
            b'\n' => state_after_line(next),
            _ => return Err(FramingError::BadChunk),
        },
        Chunk::DataEnd => match byte {
            b'\r' | b'\n' => end_line(AfterLine::Data),
            _ => return Err(FramingError::BadChunk),
        },
        Chunk::Trailer { line_bytes } => match byte {
            b'\r' | b'\n' => end_line(AfterLine::Trailer {
                empty: line_bytes == 0,
            }),
            _ => State::Chunked(Chunk::Trailer {
                line_bytes: line_bytes + 1,
            }),
        },
        Chunk::Data { .. } => unreachable!("chunk data is taken in bulk"),
    })
}

/// Where a completed line leads.
fn state_after_line(next: AfterLine) -> State {
    match next {
        AfterLine::Size(0) => State::Chunked(Chunk::Trailer { line_bytes: 0 }),
        AfterLine::Size(size) => State::Chunked(Chunk::Data { remaining: size }),
        AfterLine::Data => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
        AfterLine::Trailer { empty: true } => State::Done,
        AfterLine::Trailer { empty: false } => State::Chunked(Chunk::Trailer { line_bytes: 0 }),
    }
}

/// What a `Content-Length` field says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LengthField {
    Absent,
    Valid(u64),
    /// Not digits, or several different values.
    Invalid,
}

/// A head as written, before the framing rules are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ParsedHead {
    status: u16,
    /// HTTP/1.0 without keep-alive, or `Connection: close`.
    closes: bool,
    content_length: LengthField,
    /// `Some(true)`: `Transfer-Encoding` ends in `chunked`; `Some(false)`: another coding last.
    transfer_coding_chunked: Option<bool>,
}

/// `Some((head length, head))` for a complete head at the start of `bytes`, `None` for a
/// partial one. Tries a small array of header slots first; a head with more fields is parsed
/// again with as many slots as it has lines. The slots are left uninitialised (httparse fills
/// those it uses): zeroing a kilobyte of them for every reply showed in the profile.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, ParsedHead)>, FramingError> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    match parse_with(bytes, &mut headers) {
        Err(httparse::Error::TooManyHeaders) => {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count();
            let mut headers = Vec::with_capacity(lines);
            headers.resize_with(lines, MaybeUninit::uninit);
            parse_with(bytes, &mut headers).map_err(|_| FramingError::Malformed)
        }
        other => other.map_err(|_| FramingError::Malformed),
    }
}

#[inline]
fn parse_with<'b>(
    bytes: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(usize, ParsedHead)>, httparse::Error> {
    let mut response = httparse::Response::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        headers,
    )? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(length) => length,
    };
    let mut head = ParsedHead {
        status: response.code.unwrap_or(0),
        closes: response.version == Some(0),
        content_length: LengthField::Absent,
        transfer_coding_chunked: None,
    };
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = content_length(head.content_length, header.value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The codings of all the fields form one list; what counts is the last one.
            if let Some(last) = tokens(header.value).last() {
                head.transfer_coding_chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(header.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.closes = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && response.version == Some(0) {
                    head.closes = false;
                }
            }
        }
    }
    Ok(Some((length, head)))
}

/// Adds one `Content-Length` field to what earlier ones said: a list of identical values is
/// that value (RFC 9110 section 8.6); anything else is invalid.
fn content_length(so_far: LengthField, value: &[u8]) -> LengthField {
    // The common case, one field with one value, without splitting the list.
    if so_far == LengthField::Absent && !value.contains(&b',') {
        return parse_decimal(value).map_or(LengthField::Invalid, LengthField::Valid);
    }
    let mut result = so_far;
    for token in value.split(|&b| b == b',') {
        let this = match parse_decimal(token) {
            Some(n) => n,
            None => return LengthField::Invalid,
        };
        result = match result {
            LengthField::Absent => LengthField::Valid(this),
            LengthField::Valid(n) if n == this => LengthField::Valid(n),
            _ => return LengthField::Invalid,
        };
    }
    result
}

/// The comma-separated tokens of a field value, trimmed; empty elements skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// `Content-Length = 1*DIGIT` (RFC 9110 section 8.6), surrounding whitespace allowed; `None` for
/// anything else or a value beyond `u64`. Read straight from the bytes: it runs for every reply.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One response's framing as seen from outside: its head, decoded body, whether it completed,
    /// and the bytes left after it.
    #[derive(Debug, PartialEq)]
    struct Seen {
        head: Option<ResponseHead>,
        body: Vec<u8>,
        complete: bool,
        left: Vec<u8>,
    }

    /// Feeds `pieces` one after the other to one reader.
    fn frame_with(mut reader: ResponseReader, pieces: &[&[u8]]) -> Result<Seen, FramingError> {
        let mut seen = Seen {
            head: None,
            body: Vec::new(),
            complete: false,
            left: Vec::new(),
        };
        for piece in pieces {
            let mut input: &[u8] = piece;
            if seen.complete {
                seen.left.extend_from_slice(input);
                continue;
            }
            loop {
                match reader.next(&mut input)? {
                    Framed::NeedMore => break,
                    Framed::Body(bytes) => seen.body.extend_from_slice(bytes),
                    Framed::Complete => {
                        seen.complete = true;
                        seen.left.extend_from_slice(input);
                        break;
                    }
                }
            }
        }
        seen.head = reader.head().copied();
        assert_eq!(reader.body_bytes(), seen.body.len() as u64);
        Ok(seen)
    }

    fn frame(pieces: &[&[u8]]) -> Seen {
        frame_with(ResponseReader::new(), pieces).expect("valid framing")
    }

    /// Every split of `response` into two pieces, and byte by byte, frames like the whole.
    fn frames_the_same_however_split(response: &[u8]) -> Seen {
        let whole = frame(&[response]);
        for cut in 0..=response.len() {
            let split = frame(&[&response[..cut], &response[cut..]]);
            assert_eq!(split, whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = response.chunks(1).collect();
        assert_eq!(frame(&bytes), whole, "byte by byte");
        whole
    }

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello, world";

    #[test]
    fn a_content_length_body_ends_at_its_length() {
        let seen = frames_the_same_however_split(RESPONSE);
        assert_eq!(
            seen.head,
            Some(ResponseHead {
                status: 200,
                framing: BodyFraming::Length(12),
                closes: false
            })
        );
        assert_eq!(
            (seen.body.as_slice(), seen.complete),
            (&b"hello, world"[..], true)
        );
    }

    #[test]
    fn bytes_beyond_the_length_are_left_over() {
        let seen = frame(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"]);
        assert_eq!((seen.body.as_slice(), seen.complete), (&b"ok"[..], true));
        assert_eq!(seen.left, b"EXTRA");
    }

    #[test]
    fn a_chunked_body_completes_at_the_last_chunk() {
        // The failing input of the issue: two chunks of 60 and 40 bytes, kept alive.
        let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n".to_vec();
        response.extend([b'a'; 60]);
        response.extend(b"\r\n28\r\n");
        response.extend([b'b'; 40]);
        response.extend(b"\r\n0\r\n\r\n");
        let seen = frames_the_same_however_split(&response);
        assert_eq!(seen.body.len(), 100);
        assert!(seen.body[..60].iter().all(|&b| b == b'a'));
        assert!(seen.complete && seen.left.is_empty());
        let head = seen.head.unwrap();
        assert_eq!((head.framing, head.closes), (BodyFraming::Chunked, false));
    }

    #[test]
    fn chunk_extensions_and_trailers_are_read_past() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;name=value;other\r\nhello\r\n1 ; ext\r\n!\r\n0;last\r\n\
            Expires: never\r\nX-Checksum: 12345\r\n\r\nNEXT";
        let seen = frames_the_same_however_split(response);
        assert_eq!(seen.body, b"hello!");
        assert!(seen.complete);
        assert_eq!(seen.left, b"NEXT");
    }

    #[test]
    fn chunked_lines_may_end_in_a_bare_lf() {
        let seen = frame(&[b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nhi\n0\n\n"]);
        assert_eq!((seen.body.as_slice(), seen.complete), (&b"hi"[..], true));
    }

    #[test]
    fn broken_chunk_framing_is_refused() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\rX",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
        ] {
            let error = frame_with(ResponseReader::new(), &[bad]).unwrap_err();
            assert_eq!(
                error,
                FramingError::BadChunk,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut endless_trailer =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        endless_trailer.extend(vec![b'x'; MAX_HEAD_BYTES + 1]);
        assert_eq!(
            frame_with(ResponseReader::new(), &[&endless_trailer]).unwrap_err(),
            FramingError::ChunkFramingTooLarge
        );
    }

    #[test]
    fn a_204_ends_at_the_blank_line_and_keeps_the_connection() {
        // The failing input of the issue: 204 without Content-Length, kept open.
        let seen = frames_the_same_however_split(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n");
        assert!(seen.complete && seen.body.is_empty());
        let head = seen.head.unwrap();
        assert_eq!(head.status, 204);
        assert_eq!((head.framing, head.closes), (BodyFraming::None, false));
    }

    #[test]
    fn a_304_and_a_head_response_have_no_body_whatever_their_length_says() {
        let seen = frame(&[b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1024\r\n\r\nNEXT"]);
        assert!(seen.complete && seen.body.is_empty());
        assert_eq!(seen.left, b"NEXT");
        let head = frame_with(
            ResponseReader::for_head_request(),
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n"],
        )
        .unwrap();
        assert!(head.complete && head.body.is_empty());
        assert_eq!(head.head.unwrap().framing, BodyFraming::None);
    }

    #[test]
    fn interim_responses_are_skipped_for_the_final_one() {
        let response = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let seen = frames_the_same_however_split(response);
        assert_eq!(seen.head.unwrap().status, 200);
        assert_eq!((seen.body.as_slice(), seen.complete), (&b"ok"[..], true));
        let mut reader = ResponseReader::new();
        assert_eq!(
            reader.next(&mut &response[..]),
            Ok(Framed::Body(&b"ok"[..]))
        );
        assert_eq!(reader.interim_responses(), 2);
        let mut switching = ResponseReader::new();
        assert_eq!(
            switching.next(&mut &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]),
            Err(FramingError::UnexpectedSwitch)
        );
    }

    #[test]
    fn without_a_length_the_close_ends_the_body() {
        let mut reader = ResponseReader::new();
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\n\r\npart";
        assert_eq!(reader.next(&mut input), Ok(Framed::Body(&b"part"[..])));
        assert_eq!(reader.next(&mut input), Ok(Framed::NeedMore));
        let head = *reader.head().unwrap();
        assert_eq!(head.framing, BodyFraming::UntilClose);
        assert!(
            head.closes,
            "a body delimited by the close ends the connection"
        );
        assert_eq!(reader.at_close(), AtClose::Complete);
        assert_eq!(reader.body_bytes(), 4);
        // Another coding than chunked last: the close delimits it too.
        let seen = frame(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nzz"]);
        assert_eq!(seen.head.unwrap().framing, BodyFraming::UntilClose);
        assert_eq!(seen.body, b"zz");
    }

    #[test]
    fn transfer_encoding_overrides_content_length_and_ends_the_connection() {
        let seen = frame(&[b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\
            Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"]);
        assert_eq!((seen.body.as_slice(), seen.complete), (&b"hi"[..], true));
        assert!(seen.head.unwrap().closes);
    }

    #[test]
    fn content_length_lists_must_agree() {
        let seen =
            frame(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"]);
        assert_eq!(seen.body, b"ok");
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        ] {
            assert_eq!(
                frame_with(ResponseReader::new(), &[bad]).unwrap_err(),
                FramingError::BadContentLength,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn any_number_of_header_fields_up_to_the_head_limit() {
        let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
        for n in 0..500 {
            response.extend(format!("X-Field-{n}: {n}\r\n").bytes());
        }
        response.extend(b"Content-Length: 2\r\n\r\nok");
        let seen = frame(&[&response]);
        assert_eq!((seen.body.as_slice(), seen.complete), (&b"ok"[..], true));
    }

    #[test]
    fn a_close_before_the_end_says_how_far_the_response_got() {
        assert_eq!(ResponseReader::new().at_close(), AtClose::NothingReceived);
        let mut partial_head = ResponseReader::new();
        let mut input = &b"HTTP/1.1 200 OK\r\nCont"[..];
        assert_eq!(partial_head.next(&mut input), Ok(Framed::NeedMore));
        assert_eq!(partial_head.at_close(), AtClose::Truncated);
        for cut_short in [
            &RESPONSE[..RESPONSE.len() - 3],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            let mut reader = ResponseReader::new();
            let mut input = cut_short;
            while !matches!(reader.next(&mut input), Ok(Framed::NeedMore)) {}
            assert_eq!(reader.at_close(), AtClose::Truncated, "{cut_short:?}");
        }
    }

    #[test]
    fn connection_headers_decide_who_closes() {
        let closes = |head: &[u8]| frame(&[head]).head.unwrap().closes;
        assert!(!closes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(closes(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(closes(
            b"HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(closes(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!closes(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn content_lengths_are_decimal_digits() {
        assert_eq!(parse_decimal(b"1024"), Some(1024));
        assert_eq!(parse_decimal(b" 0 "), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"-1",
            b"1e3",
            b"12 34",
            b"+5",
        ] {
            assert_eq!(
                parse_decimal(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn what_is_not_a_response_is_refused() {
        let mut reader = ResponseReader::new();
        assert_eq!(
            reader.next(&mut &b"SSH-2.0-OpenSSH\r\n\r\n"[..]),
            Err(FramingError::Malformed)
        );
        let mut reader = ResponseReader::new();
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless.extend(vec![b'x'; MAX_HEAD_BYTES]);
        let mut result = Ok(Framed::NeedMore);
        for piece in endless.chunks(1000) {
            result = reader.next(&mut &piece[..]);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(FramingError::HeadTooLarge));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One response of a kept-alive connection: its bytes, and what framing must find in them.
    #[derive(Clone, Debug)]
    struct Sample {
        bytes: Vec<u8>,
        status: u16,
        body: Vec<u8>,
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300)
    }

    /// A response framed any way a real server frames a kept-alive reply, with interim 1xx
    /// responses before it now and then.
    fn sample() -> impl Strategy<Value = Sample> {
        let interim = proptest::collection::vec(prop_oneof![Just(100u16), Just(103u16)], 0..3);
        let framed = prop_oneof![
            body().prop_map(|body| {
                let mut bytes =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                        .into_bytes();
                bytes.extend(&body);
                (bytes, 200u16, body)
            }),
            (
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..80), 0..5),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(chunks, extension, trailer)| {
                    let mut bytes =
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    let mut body = Vec::new();
                    for chunk in &chunks {
                        bytes.extend(format!("{:x}", chunk.len()).bytes());
                        if extension {
                            bytes.extend(b";name=\"value\"");
                        }
                        bytes.extend(b"\r\n");
                        bytes.extend(chunk);
                        bytes.extend(b"\r\n");
                        body.extend(chunk);
                    }
                    bytes.extend(b"0\r\n");
                    if trailer {
                        bytes.extend(b"X-Digest: abc\r\nX-Other: 1\r\n");
                    }
                    bytes.extend(b"\r\n");
                    (bytes, 200u16, body)
                }),
            Just((
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                204u16,
                Vec::new()
            )),
            Just((
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n".to_vec(),
                304u16,
                Vec::new()
            )),
        ];
        (interim, framed).prop_map(|(interim, (final_bytes, status, body))| {
            let mut bytes = Vec::new();
            for code in interim {
                bytes.extend(format!("HTTP/1.1 {code} Interim\r\n\r\n").bytes());
            }
            bytes.extend(final_bytes);
            Sample {
                bytes,
                status,
                body,
            }
        })
    }

    /// Reads one connection's stream given as `pieces`, a new reader after each complete
    /// response (bytes left over go to the next): the responses' statuses and bodies.
    fn read_stream(pieces: &[&[u8]]) -> Vec<(u16, Vec<u8>)> {
        let mut responses = Vec::new();
        let mut reader = ResponseReader::new();
        let mut body = Vec::new();
        for piece in pieces {
            let mut input: &[u8] = piece;
            loop {
                match reader.next(&mut input).expect("valid framing") {
                    Framed::NeedMore => break,
                    Framed::Body(bytes) => body.extend_from_slice(bytes),
                    Framed::Complete => {
                        let status = reader.head().expect("a final head").status;
                        responses.push((status, std::mem::take(&mut body)));
                        reader = ResponseReader::new();
                        if input.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        responses
    }

    proptest! {
        #[test]
        fn any_split_of_a_response_stream_gives_the_same_responses(
            samples in proptest::collection::vec(sample(), 1..5),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let stream: Vec<u8> = samples.iter().flat_map(|s| s.bytes.clone()).collect();
            let expected: Vec<(u16, Vec<u8>)> =
                samples.iter().map(|s| (s.status, s.body.clone())).collect();
            prop_assert_eq!(read_stream(&[&stream]), expected.clone());
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in at {
                pieces.push(&stream[from..cut]);
                from = cut;
            }
            pieces.push(&stream[from..]);
            prop_assert_eq!(read_stream(&pieces), expected);
        }
    }
}
