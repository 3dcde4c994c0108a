//! Response framing, pure: bytes in as they arrive, split anywhere, and out the head (status,
//! length, whether the server closes), the body's bytes for the content check, and where the
//! response ends. Knows nothing of sockets: the connection feeds it what it read and tells it
//! when the server closed.
//!
//! The framing today (RFC 9112 section 6.3 in part): a body of `Content-Length` bytes, or one
//! delimited by the server's close when no length is given. HTTP/1.0 responses close unless
//! they say `Connection: keep-alive`; HTTP/1.1 ones stay open unless they say `close`.

/// Largest response head accepted (status line and headers), like a browser's limit.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields parsed at most; a head with more is malformed here.
pub const MAX_HEADERS: usize = 32;

/// The parts of a response head the client acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The body's length from `Content-Length`; `None`: the body ends when the server closes.
    pub content_length: Option<u64>,
    /// The server will close after this response (HTTP/1.0 without keep-alive, or
    /// `Connection: close`).
    pub closes: bool,
}

/// What the next piece of input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// Everything given was taken; the response needs more bytes.
    NeedMore,
    /// Bytes of the body, to be checked against what was asked for.
    Body(&'a [u8]),
    /// The response is complete; bytes left in the input belong to no request.
    Complete,
}

/// Bytes that cannot be a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Not an HTTP/1.x status line and headers (or more than [`MAX_HEADERS`] fields).
    #[error("malformed response head")]
    Malformed,
    /// No end of the head within [`MAX_HEAD_BYTES`].
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
}

/// How a response stands when the server closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtClose {
    /// The close delimited the body: the response is complete.
    Complete,
    /// Not one byte of a response came: the server closed (or reset) under the request.
    NothingReceived,
    /// The response began and was cut short.
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still to come: `Some(n)` by `Content-Length`, `None` until the server closes.
    Body {
        remaining: Option<u64>,
    },
    Done,
}

/// One response being read.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    /// A head that arrived split over reads; empty (unallocated) in the common case of a head
    /// that arrives whole, which is parsed straight from the read buffer.
    partial_head: Vec<u8>,
    head: Option<ResponseHead>,
    body_bytes: u64,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader::new()
    }
}

impl ResponseReader {
    /// A reader waiting for a response's first byte; allocates nothing.
    pub fn new() -> ResponseReader {
        ResponseReader {
            state: State::Head,
            partial_head: Vec::new(),
            head: None,
            body_bytes: 0,
        }
    }

    /// The head, once it is complete.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether any byte of the response has arrived.
    pub fn started(&self) -> bool {
        self.head.is_some() || !self.partial_head.is_empty()
    }

    /// Takes the next piece of `input`, advancing it past what was used. Call until it returns
    /// `NeedMore` (read more) or `Complete`.
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Result<Framed<'a>, FramingError> {
        if self.state == State::Head {
            if input.is_empty() {
                return Ok(Framed::NeedMore);
            }
            let Some(consumed) = self.take_head(input)? else {
                *input = &[];
                return Ok(Framed::NeedMore);
            };
            *input = &input[consumed..];
            self.state = match self.head.and_then(|h| h.content_length) {
                Some(0) => State::Done,
                remaining => State::Body { remaining },
            };
        }
        let State::Body { remaining } = self.state else {
            return Ok(Framed::Complete);
        };
        if input.is_empty() {
            return Ok(Framed::NeedMore);
        }
        let take = match remaining {
            Some(left) => input.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => input.len(),
        };
        let (body, rest) = input.split_at(take);
        *input = rest;
        self.body_bytes += take as u64;
        if let Some(left) = remaining {
            let left = left - take as u64;
            self.state = if left == 0 {
                State::Done
            } else {
                State::Body {
                    remaining: Some(left),
                }
            };
        }
        Ok(Framed::Body(body))
    }

    /// The server closed the connection (a read returned 0).
    pub fn at_close(&mut self) -> AtClose {
        match self.state {
            State::Done => AtClose::Complete,
            State::Body { remaining: None } => {
                self.state = State::Done;
                AtClose::Complete
            }
            _ if !self.started() => AtClose::NothingReceived,
            _ => AtClose::Truncated,
        }
    }

    /// Parses the head from `input` (after what an earlier read left). `Some(n)`: complete, and
    /// its last byte is `input[n - 1]`; `None`: all of `input` was kept, more is needed.
    fn take_head(&mut self, input: &[u8]) -> Result<Option<usize>, FramingError> {
        if self.partial_head.is_empty() {
            return match parse_head(input)? {
                Some((length, head)) => {
                    self.head = Some(head);
                    Ok(Some(length))
                }
                None => {
                    self.keep_partial(input)?;
                    Ok(None)
                }
            };
        }
        let before = self.partial_head.len();
        self.keep_partial(input)?;
        match parse_head(&self.partial_head)? {
            Some((length, head)) => {
                self.head = Some(head);
                self.partial_head = Vec::new();
                // The head did not end in the bytes kept before (it would have parsed then).
                Ok(Some(length - before))
            }
            None => Ok(None),
        }
    }

    fn keep_partial(&mut self, input: &[u8]) -> Result<(), FramingError> {
        if self.partial_head.len() + input.len() > MAX_HEAD_BYTES {
            return Err(FramingError::HeadTooLarge);
        }
        self.partial_head.extend_from_slice(input);
        Ok(())
    }
}

/// `Some((head length, head))` for a complete head at the start of `bytes`, `None` for a
/// partial one.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, ResponseHead)>, FramingError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(bytes) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(length)) => length,
        Err(_) => return Err(FramingError::Malformed),
    };
    let mut content_length = None;
    let mut closes = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            content_length = parse_decimal(header.value);
        } else if header.name.eq_ignore_ascii_case("connection") {
            if contains_token(header.value, b"close") {
                closes = true;
            } else if contains_token(header.value, b"keep-alive") {
                closes = false;
            }
        }
    }
    Ok(Some((
        length,
        ResponseHead {
            status: response.code.unwrap_or(0),
            content_length,
            closes,
        },
    )))
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

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .windows(token.len())
        .any(|w| w.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one after the other; returns the head, the body and whether it completed,
    /// and the bytes left after the end.
    fn frame(pieces: &[&[u8]]) -> (Option<ResponseHead>, Vec<u8>, bool, Vec<u8>) {
        let mut reader = ResponseReader::new();
        let mut body = Vec::new();
        let mut left = Vec::new();
        let mut complete = false;
        for piece in pieces {
            let mut input: &[u8] = piece;
            loop {
                match reader.next(&mut input).expect("valid framing") {
                    Framed::NeedMore => break,
                    Framed::Body(bytes) => body.extend_from_slice(bytes),
                    Framed::Complete => {
                        complete = true;
                        left.extend_from_slice(input);
                        break;
                    }
                }
            }
        }
        (reader.head().copied(), body, complete, left)
    }

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello, world";

    #[test]
    fn a_content_length_body_ends_at_its_length() {
        let (head, body, complete, left) = frame(&[RESPONSE]);
        assert_eq!(
            head,
            Some(ResponseHead {
                status: 200,
                content_length: Some(12),
                closes: false
            })
        );
        assert_eq!(body, b"hello, world");
        assert!(complete);
        assert!(left.is_empty());
    }

    #[test]
    fn a_response_cut_at_every_byte_frames_the_same() {
        for cut in 0..=RESPONSE.len() {
            let (head, body, complete, _) = frame(&[&RESPONSE[..cut], &RESPONSE[cut..]]);
            assert_eq!(head.map(|h| h.status), Some(200), "cut at {cut}");
            assert_eq!(body, b"hello, world", "cut at {cut}");
            assert!(complete, "cut at {cut}");
        }
        // And one byte at a time.
        let bytes: Vec<&[u8]> = RESPONSE.chunks(1).collect();
        let (_, body, complete, _) = frame(&bytes);
        assert_eq!((body.as_slice(), complete), (&b"hello, world"[..], true));
    }

    #[test]
    fn bytes_beyond_the_length_are_left_over() {
        let (_, body, complete, left) =
            frame(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"]);
        assert_eq!((body.as_slice(), complete), (&b"ok"[..], true));
        assert_eq!(left, b"EXTRA");
    }

    #[test]
    fn an_empty_body_completes_at_the_head() {
        let (head, body, complete, _) = frame(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]);
        assert_eq!(head.unwrap().content_length, Some(0));
        assert!(body.is_empty() && complete);
    }

    #[test]
    fn without_a_length_the_close_ends_the_body() {
        let mut reader = ResponseReader::new();
        let mut input: &[u8] = b"HTTP/1.0 200 OK\r\n\r\npart";
        assert_eq!(reader.next(&mut input), Ok(Framed::Body(&b"part"[..])));
        assert_eq!(reader.next(&mut input), Ok(Framed::NeedMore));
        assert!(reader.head().unwrap().closes, "HTTP/1.0 closes by default");
        assert_eq!(reader.at_close(), AtClose::Complete);
        assert_eq!(reader.body_bytes(), 4);
    }

    #[test]
    fn a_close_before_the_end_says_how_far_the_response_got() {
        assert_eq!(ResponseReader::new().at_close(), AtClose::NothingReceived);
        let mut partial_head = ResponseReader::new();
        assert_eq!(
            partial_head.next(&mut &b"HTTP/1.1 200 OK\r\nCont"[..]),
            Ok(Framed::NeedMore)
        );
        assert_eq!(partial_head.at_close(), AtClose::Truncated);
        let mut short_body = ResponseReader::new();
        let mut input = &RESPONSE[..RESPONSE.len() - 3];
        while short_body.next(&mut input) != Ok(Framed::NeedMore) {}
        assert_eq!(short_body.at_close(), AtClose::Truncated);
    }

    #[test]
    fn connection_headers_decide_who_closes() {
        let closes = |head: &[u8]| frame(&[head]).0.unwrap().closes;
        assert!(!closes(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(closes(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
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
