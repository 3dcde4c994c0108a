//! A live stream's body read as it arrives, pure: [`MultipartReader`] splits a
//! `multipart/x-mixed-replace` body (Netscape server push, RFC 2046 section 5.1.1) into parts
//! by their `Content-Length`, and [`CbrChecker`] follows a constant-bitrate byte stream whose
//! bytes encode their own offset. Both take the body's decoded bytes (the HTTP framing, chunked
//! or until-close, is [`ResponseReader`](super::response::ResponseReader)'s), split anywhere.
//! [`StreamReader`] puts them together for a whole response: the head read for
//! [`StreamHead`] (`Content-Type` and its boundary, `X-Stream-Fps`, `-Epoch`, `-Rate`), the
//! framing decoded, the body handed to the reader the head chose.
//!
//! Tolerated beyond what afterburner sends, because other servers send it: header names in any
//! case (FFmpeg's `Content-length`), lines ending in a bare LF (old libav), blank lines before
//! the first delimiter (ESP32 sketches put `\r\n` before every `--boundary`), transport padding
//! after a delimiter (RFC 2046: receivers must accept it).

use std::fmt;

/// Largest part head accepted (the delimiter line and the part's header fields), in bytes;
/// also the most a preamble before the first delimiter may take.
pub const MAX_PART_HEAD_BYTES: usize = 16 * 1024;

/// The longest boundary RFC 2046 section 5.1.1 allows (`boundary := 0*69<bchars> bcharsnospace`).
pub const MAX_BOUNDARY_LEN: usize = 70;

/// Bytes a verified frame body is drawn from (`A`-`Z`, `a`-`z`, `0`-`9`, so a body can never
/// hold `\r\n--` and end a part early): the server's own alphabet.
pub use afterburner::live::BODY_ALPHABET as FRAME_ALPHABET;

/// How a part's body is checked as it arrives.
#[derive(Clone, Copy)]
pub enum BodyCheck {
    /// Only its length is checked.
    LengthOnly,
    /// Body byte `i` of the frame with sequence number `seq` is
    /// `FRAME_ALPHABET[(mix(seq) + i) % 62]` (the plan's rule, issue 17 research section 1.1);
    /// `mix` is the server's, passed in so both sides share one definition. A part with no
    /// `X-Frame-Seq` cannot be checked and is reported unverified.
    Alphabet {
        /// The per-sequence offset into [`FRAME_ALPHABET`].
        mix: fn(u64) -> u64,
    },
}

impl BodyCheck {
    /// The check of afterburner's frames: [`BodyCheck::Alphabet`] with [`frame_body_seed`].
    pub fn afterburner() -> BodyCheck {
        BodyCheck::Alphabet {
            mix: frame_body_seed,
        }
    }
}

/// The seed of afterburner's frame `seq` body: the server's own function, so the two sides
/// share one definition. Body byte `i` of frame `seq` is
/// `FRAME_ALPHABET[(frame_body_seed(seq) % 62 + i) % 62]`.
pub use afterburner::live::body_seed as frame_body_seed;

impl fmt::Debug for BodyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyCheck::LengthOnly => f.write_str("LengthOnly"),
            BodyCheck::Alphabet { .. } => f.write_str("Alphabet"),
        }
    }
}

/// One complete part of a multipart stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// `Content-Type` of the part, as sent (`image/jpeg`); `None` when absent.
    pub content_type: Option<String>,
    /// `X-Frame-Seq`: the frame's sequence number; `None` when absent (not afterburner).
    pub seq: Option<u64>,
    /// The capture time from `X-Timestamp` (`seconds.fraction` since the Unix epoch, as
    /// afterburner, mjpg-streamer and ustreamer send it), in microseconds; `None` when absent.
    pub capture_unix_us: Option<u64>,
    /// Body bytes (its `Content-Length`).
    pub len: u64,
    /// The body passed the [`BodyCheck::Alphabet`] rule; false under
    /// [`BodyCheck::LengthOnly`] or without a sequence number.
    pub verified: bool,
}

/// Bytes that cannot be the stream announced; the viewer closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The boundary parameter is empty, longer than 70 characters, or has characters outside
    /// RFC 2046's `bchars`.
    #[error("invalid multipart boundary {0:?}")]
    BadBoundary(String),
    /// A line where the delimiter `--boundary` must be held something else (after a body
    /// this must be CRLF then the delimiter, RFC 2046 section 5.1.1).
    #[error("missing boundary: expected {expected:?}, found {found:?}")]
    MissingBoundary {
        /// The delimiter line expected.
        expected: String,
        /// What came instead (at most 80 bytes, lossy UTF-8).
        found: String,
    },
    /// A part without `Content-Length`: parts are framed by it (bodies are not searched).
    #[error("part without Content-Length")]
    MissingContentLength,
    /// `Content-Length` not a decimal number, or two different values.
    #[error("bad Content-Length {0:?}")]
    BadContentLength(String),
    /// `X-Frame-Seq` not a decimal number.
    #[error("bad X-Frame-Seq {0:?}")]
    BadSeq(String),
    /// `X-Timestamp` not `seconds[.fraction]`.
    #[error("bad X-Timestamp {0:?}")]
    BadTimestamp(String),
    /// A header line without a colon, or a name with characters a field name cannot have.
    #[error("malformed part header line {0:?}")]
    MalformedHeader(String),
    /// No end of a part head (or of the preamble) within [`MAX_PART_HEAD_BYTES`].
    #[error("part head larger than {MAX_PART_HEAD_BYTES} bytes")]
    PartHeadTooLarge,
    /// A body byte other than the one [`BodyCheck::Alphabet`] derives from the sequence number.
    #[error("frame {seq} body differs at byte {offset}")]
    BodyMismatch {
        /// The part's `X-Frame-Seq`.
        seq: u64,
        /// The body offset of the first wrong byte.
        offset: u64,
    },
    /// The stream's response is not `200 OK`.
    #[error("stream answered with status {0}")]
    BadStatus(u16),
    /// The response's `Content-Type` is neither `multipart/*` with a boundary nor a CBR stream.
    #[error("not a live stream: Content-Type {0:?}")]
    NotAStream(String),
    /// An `X-Stream-*` header whose value cannot be read.
    #[error("bad {0} {1:?}")]
    BadStreamHeader(&'static str, String),
    /// The HTTP framing failed (RFC 9112 section 6.3).
    #[error("{0}")]
    Http(#[from] super::response::FramingError),
    /// Bytes after the response's own end.
    #[error("bytes after the end of the stream's response")]
    AfterEnd,
    /// A constant-bitrate stream's offset word went backwards or is not the one its position
    /// implies.
    #[error("CBR stream word {found} where {expected} or later was due")]
    CbrBackwards {
        /// The word index due next.
        expected: u64,
        /// The word index read.
        found: u64,
    },
}

/// The boundary of a `multipart/*` `Content-Type` value, e.g.
/// `multipart/x-mixed-replace;boundary="b c"` gives `b c`. The type and the parameter name
/// match in any case (RFC 9110 section 8.3.1); `None` when not multipart or without one.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            return Some(value.to_string());
        }
    }
    None
}

/// Where the reader is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter: blank lines (a preamble) may come first.
    Preamble,
    /// A delimiter line is due: right after a body's line end, nothing else may come first.
    Delimiter,
    /// Header lines of a part, up to the blank line.
    Headers,
    /// Body bytes still to come.
    Body { remaining: u64 },
    /// The line end after a body: CR LF, or a bare LF; `cr`: the CR came.
    BodyEnd { cr: bool },
    /// The close delimiter came: what follows is the epilogue, ignored.
    Closed,
}

/// A `multipart/x-mixed-replace` body split into parts as bytes arrive.
///
/// A part is complete, and returned, when its `Content-Length` body bytes and the line end after
/// them have arrived: afterburner sends `--b` head, body and `\r\n` as one frame and the next
/// `--b` only with the next frame, so waiting for the next delimiter would hold every frame back
/// one frame period. That delimiter is checked when it comes.
#[derive(Debug)]
pub struct MultipartReader {
    /// `--` and the boundary: a delimiter line's content.
    dash_boundary: Vec<u8>,
    check: BodyCheck,
    state: State,
    /// The current line, when it arrived split over inputs (and always for header lines).
    line: Vec<u8>,
    /// Bytes of the current part head (or preamble) so far, against the limit.
    head_bytes: usize,
    part: Part,
    /// The part's `Content-Length`, once seen.
    content_length: Option<u64>,
    /// Bytes of the current body taken so far.
    body_offset: u64,
    /// The frame body's first byte's alphabet index, when the body is checked.
    alphabet_start: Option<u64>,
    /// Complete parts so far.
    parts: u64,
}

impl MultipartReader {
    /// A reader for parts delimited by `boundary` (the `Content-Type` parameter, without the
    /// leading `--`). Errors: [`StreamError::BadBoundary`] when RFC 2046 section 5.1.1 does not
    /// allow it (1 to 70 `bchars`, not ending in a space).
    pub fn new(boundary: &str, check: BodyCheck) -> Result<MultipartReader, StreamError> {
        let allowed = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c);
        if boundary.is_empty()
            || boundary.len() > MAX_BOUNDARY_LEN
            || boundary.ends_with(' ')
            || !boundary.bytes().all(allowed)
        {
            return Err(StreamError::BadBoundary(boundary.to_string()));
        }
        let mut dash_boundary = b"--".to_vec();
        dash_boundary.extend_from_slice(boundary.as_bytes());
        Ok(MultipartReader {
            dash_boundary,
            check,
            state: State::Preamble,
            line: Vec::new(),
            head_bytes: 0,
            part: empty_part(),
            content_length: None,
            body_offset: 0,
            alphabet_start: None,
            parts: 0,
        })
    }

    /// Complete parts returned so far.
    pub fn parts(&self) -> u64 {
        self.parts
    }

    /// The close delimiter (`--boundary--`) has come: the stream ended properly.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// A part has begun (its delimiter line came) and is not complete: a close now cuts it.
    pub fn in_part(&self) -> bool {
        matches!(
            self.state,
            State::Headers | State::Body { .. } | State::BodyEnd { .. }
        )
    }

    /// Takes bytes from the front of `input` until a part completes (`Ok(Some(part))`, the
    /// rest of `input` left for the next call) or `input` is used up (`Ok(None)`). After an
    /// error the stream is lost: the reader must not be fed again.
    pub fn next(&mut self, input: &mut &[u8]) -> Result<Option<Part>, StreamError> {
        while !input.is_empty() {
            match self.state {
                State::Closed => *input = &[],
                State::Body { remaining } => {
                    let take = remaining.min(input.len() as u64) as usize;
                    let (body, rest) = input.split_at(take);
                    self.check_body(body)?;
                    self.body_offset += take as u64;
                    *input = rest;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::BodyEnd { cr: false }
                    } else {
                        State::Body { remaining }
                    };
                }
                State::BodyEnd { cr } => {
                    let byte = input[0];
                    match (cr, byte) {
                        (false, b'\r') => {
                            *input = &input[1..];
                            self.state = State::BodyEnd { cr: true };
                        }
                        (_, b'\n') => {
                            *input = &input[1..];
                            self.state = State::Delimiter;
                            return Ok(Some(self.complete_part()));
                        }
                        _ => return Err(self.missing_boundary(input)),
                    }
                }
                State::Preamble | State::Delimiter | State::Headers => {
                    let Some(line_len) = self.take_line(input)? else {
                        return Ok(None);
                    };
                    let line = std::mem::take(&mut self.line);
                    let result = self.on_line(&line[..line_len]);
                    self.line = line;
                    self.line.clear();
                    result?;
                }
            }
        }
        Ok(None)
    }

    /// Moves bytes of the current line from `input` into `self.line`; `Some(len)` when the
    /// line ended (its content without CR LF or LF is `self.line[..len]`).
    fn take_line(&mut self, input: &mut &[u8]) -> Result<Option<usize>, StreamError> {
        let newline = input.iter().position(|&b| b == b'\n');
        let take = newline.map_or(input.len(), |at| at + 1);
        self.head_bytes += take;
        if self.head_bytes > MAX_PART_HEAD_BYTES {
            return Err(StreamError::PartHeadTooLarge);
        }
        self.line.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if newline.is_none() {
            return Ok(None);
        }
        let mut len = self.line.len() - 1;
        if len > 0 && self.line[len - 1] == b'\r' {
            len -= 1;
        }
        Ok(Some(len))
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), StreamError> {
        match self.state {
            State::Preamble | State::Delimiter => {
                if let Some(after) = line.strip_prefix(self.dash_boundary.as_slice()) {
                    if after.starts_with(b"--") {
                        self.state = State::Closed;
                        return Ok(());
                    }
                    // Transport padding: linear white space only.
                    if after.iter().all(|&b| b == b' ' || b == b'\t') {
                        self.state = State::Headers;
                        return Ok(());
                    }
                }
                if self.state == State::Preamble && line.is_empty() {
                    return Ok(());
                }
                Err(self.missing_boundary(line))
            }
            State::Headers if line.is_empty() => self.begin_body(),
            State::Headers => self.on_header(line),
            _ => unreachable!("lines are read only before bodies"),
        }
    }

    fn on_header(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let text = String::from_utf8_lossy(line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(StreamError::MalformedHeader(text.into_owned()));
        };
        let field_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(field_char) {
            return Err(StreamError::MalformedHeader(text.into_owned()));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let len = parse_decimal(value)
                .ok_or_else(|| StreamError::BadContentLength(value.to_string()))?;
            if self.content_length.is_some_and(|seen| seen != len) {
                return Err(StreamError::BadContentLength(value.to_string()));
            }
            self.content_length = Some(len);
        } else if name.eq_ignore_ascii_case("content-type") {
            self.part.content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("x-frame-seq") {
            self.part.seq =
                Some(parse_decimal(value).ok_or_else(|| StreamError::BadSeq(value.to_string()))?);
        } else if name.eq_ignore_ascii_case("x-timestamp") {
            self.part.capture_unix_us = Some(
                parse_unix_us(value).ok_or_else(|| StreamError::BadTimestamp(value.to_string()))?,
            );
        }
        Ok(())
    }

    fn begin_body(&mut self) -> Result<(), StreamError> {
        let len = self
            .content_length
            .ok_or(StreamError::MissingContentLength)?;
        self.part.len = len;
        self.body_offset = 0;
        self.alphabet_start = match (self.check, self.part.seq) {
            (BodyCheck::Alphabet { mix }, Some(seq)) => Some(mix(seq) % 62),
            _ => None,
        };
        self.state = if len == 0 {
            State::BodyEnd { cr: false }
        } else {
            State::Body { remaining: len }
        };
        Ok(())
    }

    fn check_body(&self, body: &[u8]) -> Result<(), StreamError> {
        let Some(start) = self.alphabet_start else {
            return Ok(());
        };
        let mut index = ((start + self.body_offset) % 62) as usize;
        for (i, &byte) in body.iter().enumerate() {
            if byte != FRAME_ALPHABET[index] {
                return Err(StreamError::BodyMismatch {
                    seq: self.part.seq.unwrap_or_default(),
                    offset: self.body_offset + i as u64,
                });
            }
            index = if index == 61 { 0 } else { index + 1 };
        }
        Ok(())
    }

    fn complete_part(&mut self) -> Part {
        let mut part = std::mem::replace(&mut self.part, empty_part());
        part.verified = self.alphabet_start.is_some();
        self.content_length = None;
        self.alphabet_start = None;
        self.head_bytes = 0;
        self.parts += 1;
        part
    }

    fn missing_boundary(&self, found: &[u8]) -> StreamError {
        StreamError::MissingBoundary {
            expected: String::from_utf8_lossy(&self.dash_boundary).into_owned(),
            found: String::from_utf8_lossy(&found[..found.len().min(80)]).into_owned(),
        }
    }
}

fn empty_part() -> Part {
    Part {
        content_type: None,
        seq: None,
        capture_unix_us: None,
        len: 0,
        verified: false,
    }
}

/// A decimal number of digits only (no sign, no spaces), as RFC 9110 section 8.6 has
/// `Content-Length = 1*DIGIT`; `None` when not one or beyond `u64`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `seconds[.fraction]` since the Unix epoch in microseconds; digits past the sixth of the
/// fraction are dropped.
fn parse_unix_us(text: &str) -> Option<u64> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds = parse_decimal(seconds)?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros = 0u64;
    for i in 0..6 {
        let digit = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |d| u64::from(d - b'0'));
        micros = micros * 10 + digit;
    }
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

/// A constant-bitrate stream followed by the offsets its bytes encode: each 8-byte word at
/// stream offset `o` (a multiple of 8) is the little-endian `u64` `o / 8` (issue 17 research
/// section 1.1), and the server sends whole words, so a viewer that joins at a chunk start reads
/// whole words too. A word further on than the one due is a gap (the server skipped bytes for
/// this viewer); one behind it is an error.
#[derive(Clone, Debug, Default)]
pub struct CbrChecker {
    word: [u8; 8],
    filled: usize,
    /// The word index due next; `None` before the first word.
    next_word: Option<u64>,
    /// Stream offset of the first byte read, in bytes.
    first_offset: Option<u64>,
    /// Bytes read (whole words only).
    pub bytes: u64,
    /// Gaps seen: times a word came further on than the one due.
    pub gaps: u64,
    /// Bytes skipped over all gaps.
    pub skipped_bytes: u64,
}

impl CbrChecker {
    /// A checker before any byte.
    pub fn new() -> CbrChecker {
        CbrChecker::default()
    }

    /// Takes the next body bytes, split anywhere. Errors: [`StreamError::CbrBackwards`] when a
    /// word is behind the one due (the stream is not the offset-encoded one, or was corrupted).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), StreamError> {
        while !bytes.is_empty() {
            let take = (8 - self.filled).min(bytes.len());
            self.word[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled < 8 {
                break;
            }
            self.filled = 0;
            let found = u64::from_le_bytes(self.word);
            match self.next_word {
                None => self.first_offset = Some(found * 8),
                Some(expected) if found < expected => {
                    return Err(StreamError::CbrBackwards { expected, found })
                }
                Some(expected) if found > expected => {
                    self.gaps += 1;
                    self.skipped_bytes += (found - expected) * 8;
                }
                Some(_) => {}
            }
            self.next_word = Some(found + 1);
            self.bytes += 8;
        }
        Ok(())
    }

    /// Stream offset just past the last whole word read, in bytes; `None` before the first.
    pub fn end_offset(&self) -> Option<u64> {
        self.next_word.map(|w| w * 8)
    }

    /// Stream offset of the first byte read, in bytes; `None` before the first word.
    pub fn first_offset(&self) -> Option<u64> {
        self.first_offset
    }
}

/// The capture time of the byte at stream `offset` of a CBR stream of `rate_bytes_per_s`
/// started at `epoch_unix_us` (`X-Stream-Epoch`, `X-Stream-Rate`): `epoch + offset / rate`,
/// in microseconds since the Unix epoch.
pub fn cbr_capture_unix_us(epoch_unix_us: u64, offset: u64, rate_bytes_per_s: u64) -> u64 {
    let rate = rate_bytes_per_s.max(1);
    epoch_unix_us + (u128::from(offset) * 1_000_000 / u128::from(rate)) as u64
}

/// What a live stream's response head announces.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamHead {
    /// How the body is made.
    pub kind: StreamKind,
    /// `X-Stream-Fps`: the source's frame rate, frames/s; `None` when absent.
    pub fps: Option<f64>,
    /// `X-Stream-Epoch`: the stream's time origin, microseconds since the Unix epoch; `None`
    /// when absent.
    pub epoch_unix_us: Option<u64>,
    /// `X-Stream-Rate`: a CBR stream's media rate, bytes/s; `None` when absent.
    pub rate_bytes_per_s: Option<u64>,
}

/// The body of a live stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// `multipart/*` (`x-mixed-replace`) parts delimited by this boundary.
    Multipart {
        /// The `boundary` parameter, without the leading `--`.
        boundary: String,
    },
    /// A constant-bitrate byte stream (`application/octet-stream`, or any type beside
    /// `X-Stream-Rate`) whose bytes encode their offsets.
    Cbr,
}

/// Header fields of a response head the stream needs, at most.
const STREAM_HEAD_FIELDS: usize = 64;

impl StreamHead {
    /// Reads a complete response head (status line and header fields, HTTP/1.x, names in any
    /// case). Errors: [`StreamError::BadStatus`] for a status other than 200,
    /// [`StreamError::NotAStream`] for a body that is neither multipart with a boundary nor
    /// CBR, and the boundary's and header values' errors.
    pub fn parse(status: u16, headers: &[httparse::Header<'_>]) -> Result<StreamHead, StreamError> {
        if status != 200 {
            return Err(StreamError::BadStatus(status));
        }
        let field = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let content_type = field("content-type").unwrap_or_default();
        let rate_bytes_per_s = match field("x-stream-rate") {
            Some(rate) => Some(
                parse_decimal(&rate).ok_or(StreamError::BadStreamHeader("X-Stream-Rate", rate))?,
            ),
            None => None,
        };
        let fps = match field("x-stream-fps") {
            Some(fps) => Some(
                fps.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .ok_or(StreamError::BadStreamHeader("X-Stream-Fps", fps))?,
            ),
            None => None,
        };
        let epoch_unix_us = match field("x-stream-epoch") {
            Some(epoch) => Some(
                parse_unix_us(&epoch)
                    .ok_or(StreamError::BadStreamHeader("X-Stream-Epoch", epoch))?,
            ),
            None => None,
        };
        let kind = if let Some(boundary) = boundary_of(&content_type) {
            // Checked here, so that a bad one is named before the body.
            MultipartReader::new(&boundary, BodyCheck::LengthOnly)?;
            StreamKind::Multipart { boundary }
        } else if rate_bytes_per_s.is_some()
            || content_type
                .to_ascii_lowercase()
                .starts_with("application/octet-stream")
        {
            StreamKind::Cbr
        } else {
            return Err(StreamError::NotAStream(content_type));
        };
        Ok(StreamHead {
            kind,
            fps,
            epoch_unix_us,
            rate_bytes_per_s,
        })
    }
}

/// The body reader a stream's head chose.
#[derive(Debug)]
enum BodyReader {
    Multipart(MultipartReader),
    Cbr(CbrChecker),
}

/// A live stream's whole response read as it arrives: the head (kept until complete, read for
/// [`StreamHead`]), the HTTP framing by [`ResponseReader`](super::response::ResponseReader)
/// (close-delimited or chunked, RFC 9112 section 6.3), and the decoded body by
/// [`MultipartReader`] or [`CbrChecker`].
#[derive(Debug)]
pub struct StreamReader {
    http: super::response::ResponseReader,
    check: BodyCheck,
    /// The head's bytes while it is incomplete.
    head_bytes: Vec<u8>,
    head: Option<StreamHead>,
    body: Option<BodyReader>,
    /// The HTTP response ended (a `Content-Length` or chunked body's end): nothing may follow.
    ended: bool,
}

impl StreamReader {
    /// A reader for the response to a stream's GET, frame bodies checked by `check`.
    pub fn new(check: BodyCheck) -> StreamReader {
        StreamReader {
            http: super::response::ResponseReader::new(),
            check,
            head_bytes: Vec::new(),
            head: None,
            body: None,
            ended: false,
        }
    }

    /// The stream's head, once complete.
    pub fn head(&self) -> Option<&StreamHead> {
        self.head.as_ref()
    }

    /// A CBR stream's checker (offsets, gaps); `None` before the head or for multipart.
    pub fn cbr(&self) -> Option<&CbrChecker> {
        match &self.body {
            Some(BodyReader::Cbr(checker)) => Some(checker),
            _ => None,
        }
    }

    /// The HTTP response ended by its own framing (not by the server's close).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Decoded body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.http.body_bytes()
    }

    /// A multipart stream's part has begun and is not complete (see
    /// [`MultipartReader::in_part`]); false for CBR and before the head.
    pub fn in_part(&self) -> bool {
        matches!(&self.body, Some(BodyReader::Multipart(reader)) if reader.in_part())
    }

    /// The server closed the connection: how the response stood (a close-delimited stream is
    /// complete at any close; whether a part was cut short is the caller's to judge).
    pub fn at_close(&mut self) -> super::response::AtClose {
        self.http.at_close()
    }

    /// Takes all of `input` (bytes as read, split anywhere) and appends the parts it completed
    /// to `parts`. After an error the stream is lost: the reader must not be fed again.
    pub fn feed(&mut self, input: &[u8], parts: &mut Vec<Part>) -> Result<(), StreamError> {
        let mut input = input;
        let owned;
        if self.head.is_none() {
            self.head_bytes.extend_from_slice(input);
            let mut fields = [httparse::EMPTY_HEADER; STREAM_HEAD_FIELDS];
            let mut response = httparse::Response::new(&mut fields);
            match response.parse(&self.head_bytes) {
                Ok(httparse::Status::Complete(_)) => {
                    let head = StreamHead::parse(response.code.unwrap_or(0), response.headers)?;
                    self.body = Some(match &head.kind {
                        StreamKind::Multipart { boundary } => {
                            BodyReader::Multipart(MultipartReader::new(boundary, self.check)?)
                        }
                        StreamKind::Cbr => BodyReader::Cbr(CbrChecker::new()),
                    });
                    self.head = Some(head);
                    // The framing reader reads the head again, then the body after it.
                    owned = std::mem::take(&mut self.head_bytes);
                    input = &owned;
                }
                Ok(httparse::Status::Partial) => {
                    if self.head_bytes.len() > super::response::MAX_HEAD_BYTES {
                        return Err(StreamError::Http(
                            super::response::FramingError::HeadTooLarge,
                        ));
                    }
                    return Ok(());
                }
                Err(_) => return Err(StreamError::Http(super::response::FramingError::Malformed)),
            }
        }
        loop {
            match self.http.next(&mut input).map_err(StreamError::Http)? {
                super::response::Framed::NeedMore => return Ok(()),
                super::response::Framed::Complete => {
                    self.ended = true;
                    if !input.is_empty() {
                        return Err(StreamError::AfterEnd);
                    }
                    return Ok(());
                }
                super::response::Framed::Body(mut body) => match self.body.as_mut() {
                    Some(BodyReader::Multipart(reader)) => {
                        while let Some(part) = reader.next(&mut body)? {
                            parts.push(part);
                        }
                    }
                    Some(BodyReader::Cbr(checker)) => checker.feed(body)?,
                    None => unreachable!("the body reader is chosen with the head"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(seq: u64) -> u64 {
        frame_body_seed(seq)
    }

    #[test]
    fn the_servers_frames_0_and_1_read_and_verify() {
        // The exact bytes afterburner's `live::build_frame` test pins for 8-byte bodies.
        let stream = b"--afterburnerframe\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\
            X-Frame-Seq: 0\r\nX-Timestamp: 1733000000.000000\r\n\r\nvwxyz012\r\n\
            --afterburnerframe\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\
            X-Frame-Seq: 1\r\nX-Timestamp: 1733000000.250000\r\n\r\nz0123456\r\n";
        let mut reader =
            MultipartReader::new("afterburnerframe", BodyCheck::afterburner()).unwrap();
        let parts = read_all(&mut reader, &[stream]).unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.seq, p.capture_unix_us, p.len, p.verified))
                .collect::<Vec<_>>(),
            [
                (Some(0), Some(1_733_000_000_000_000), 8, true),
                (Some(1), Some(1_733_000_000_250_000), 8, true)
            ]
        );
        // Frame 1's body under frame 0's number is caught.
        let swapped =
            String::from_utf8_lossy(stream).replacen("X-Frame-Seq: 1", "X-Frame-Seq: 0", 1);
        let mut reader =
            MultipartReader::new("afterburnerframe", BodyCheck::afterburner()).unwrap();
        assert_eq!(
            read_all(&mut reader, &[swapped.as_bytes()]),
            Err(StreamError::BodyMismatch { seq: 0, offset: 0 })
        );
        // The server's CBR chunk 2 of 16 bytes holds words 4 and 5.
        let mut checker = CbrChecker::new();
        checker
            .feed(&[4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        assert_eq!(
            (checker.first_offset(), checker.end_offset()),
            (Some(32), Some(48))
        );
    }

    fn body(seq: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| FRAME_ALPHABET[((mix(seq) % 62 + i) % 62) as usize])
            .collect()
    }

    /// A frame as afterburner sends it, lines ending in `eol`.
    fn frame(seq: u64, len: usize, eol: &str) -> Vec<u8> {
        let mut bytes = format!(
            "--afterburnerframe{eol}Content-Type: image/jpeg{eol}Content-Length: {len}{eol}\
             X-Frame-Seq: {seq}{eol}X-Timestamp: 1733000030.{:06}{eol}{eol}",
            seq * 250_000 % 1_000_000
        )
        .into_bytes();
        bytes.extend(body(seq, len));
        bytes.extend(eol.as_bytes());
        bytes
    }

    fn reader() -> MultipartReader {
        MultipartReader::new("afterburnerframe", BodyCheck::Alphabet { mix }).unwrap()
    }

    /// Feeds `chunks` in order and collects the parts, or the first error.
    fn read_all(reader: &mut MultipartReader, chunks: &[&[u8]]) -> Result<Vec<Part>, StreamError> {
        let mut parts = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(part) = reader.next(&mut input)? {
                parts.push(part);
            }
            assert!(input.is_empty());
        }
        Ok(parts)
    }

    fn three_parts(eol: &str) -> Vec<u8> {
        [frame(7, 100, eol), frame(8, 0, eol), frame(10, 333, eol)].concat()
    }

    #[test]
    fn three_parts_read_the_same_at_every_split_point() {
        for eol in ["\r\n", "\n"] {
            let stream = three_parts(eol);
            let whole = read_all(&mut reader(), &[&stream]).unwrap();
            assert_eq!(
                whole.iter().map(|p| (p.seq, p.len)).collect::<Vec<_>>(),
                [(Some(7), 100), (Some(8), 0), (Some(10), 333)]
            );
            assert!(whole.iter().all(|p| p.verified));
            assert_eq!(whole[0].content_type.as_deref(), Some("image/jpeg"));
            assert_eq!(whole[1].capture_unix_us, Some(1_733_000_030_000_000));
            assert_eq!(whole[2].capture_unix_us, Some(1_733_000_030_500_000));
            for split in 0..=stream.len() {
                let parts = read_all(&mut reader(), &[&stream[..split], &stream[split..]]);
                assert_eq!(parts.as_ref(), Ok(&whole), "split at {split} ({eol:?})");
            }
            // And one byte at a time.
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(read_all(&mut reader(), &bytes).unwrap(), whole);
        }
    }

    #[test]
    fn a_part_completes_only_with_its_last_body_byte_and_line_end() {
        let stream = frame(3, 50, "\r\n");
        let mut reader = reader();
        assert!(!reader.in_part());
        let mut head_and_body = &stream[..stream.len() - 1];
        assert_eq!(reader.next(&mut head_and_body), Ok(None));
        assert_eq!(reader.parts(), 0);
        assert!(reader.in_part());
        let mut end = &stream[stream.len() - 1..];
        assert_eq!(reader.next(&mut end).unwrap().unwrap().seq, Some(3));
        assert!(!reader.in_part());
        // A lone delimiter is no part either.
        let mut next_delimiter: &[u8] = b"--afterburnerframe\r\nContent-Length: 2\r\n\r\nAB";
        assert_eq!(reader.next(&mut next_delimiter), Ok(None));
        assert_eq!(reader.parts(), 1);
    }

    #[test]
    fn header_names_match_in_any_case_as_ffmpeg_sends_them() {
        let mut stream = b"\r\n--ffmpeg\r\nContent-type: image/jpeg\r\ncontent-LENGTH: 4\r\n\
            x-frame-seq: 2\r\n\r\n"
            .to_vec();
        stream.extend(body(2, 4));
        stream.extend(b"\r\n--ffmpeg--\r\nepilogue");
        let mut reader = MultipartReader::new("ffmpeg", BodyCheck::Alphabet { mix }).unwrap();
        let parts = read_all(&mut reader, &[&stream]).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            (parts[0].seq, parts[0].len, parts[0].verified),
            (Some(2), 4, true)
        );
        assert!(reader.is_closed());
    }

    #[test]
    fn bad_or_missing_content_length_is_named() {
        for (value, expected) in [
            ("12x", StreamError::BadContentLength("12x".into())),
            ("-1", StreamError::BadContentLength("-1".into())),
            ("", StreamError::BadContentLength("".into())),
        ] {
            let stream = format!("--b\r\nContent-Length: {value}\r\n\r\n");
            let error = read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[stream.as_bytes()],
            )
            .unwrap_err();
            assert_eq!(error, expected);
            assert!(error.to_string().contains("Content-Length"), "{error}");
        }
        let conflicting = b"--b\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(
            read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[conflicting]
            ),
            Err(StreamError::BadContentLength("4".into()))
        );
        let missing = b"--b\r\nContent-Type: image/jpeg\r\n\r\nxyz";
        assert_eq!(
            read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[missing]
            ),
            Err(StreamError::MissingContentLength)
        );
    }

    #[test]
    fn a_body_longer_than_its_content_length_is_a_missing_boundary() {
        let mut stream = frame(1, 10, "\r\n");
        // One body byte too many: the line end is not where Content-Length puts it.
        stream.insert(stream.len() - 2, FRAME_ALPHABET[0]);
        let error = read_all(&mut reader(), &[&stream]).unwrap_err();
        assert!(
            matches!(error, StreamError::MissingBoundary { .. }),
            "{error}"
        );
        // A line end and then something other than the delimiter.
        let stream = [frame(1, 10, "\r\n"), b"--otherboundary\r\n".to_vec()].concat();
        let error = read_all(&mut reader(), &[&stream]).unwrap_err();
        assert_eq!(
            error,
            StreamError::MissingBoundary {
                expected: "--afterburnerframe".into(),
                found: "--otherboundary".into()
            }
        );
        // No preamble may hold text.
        let error = read_all(&mut reader(), &[b"hello\r\n"]).unwrap_err();
        assert!(matches!(error, StreamError::MissingBoundary { .. }));
    }

    #[test]
    fn a_wrong_body_byte_is_found_and_an_unchecked_part_is_not_verified() {
        let mut stream = frame(5, 40, "\r\n");
        let at = stream.len() - 2 - 40 + 17;
        stream[at] = b'-';
        assert_eq!(
            read_all(&mut reader(), &[&stream]),
            Err(StreamError::BodyMismatch { seq: 5, offset: 17 })
        );
        let stream = frame(5, 40, "\r\n");
        let mut length_only = MultipartReader::new("afterburnerframe", BodyCheck::LengthOnly);
        let parts = read_all(length_only.as_mut().unwrap(), &[&stream]).unwrap();
        assert!(!parts[0].verified);
    }

    #[test]
    fn a_head_too_large_and_bad_boundaries_are_refused() {
        let mut stream = b"--b\r\n".to_vec();
        while stream.len() <= MAX_PART_HEAD_BYTES {
            stream.extend(b"X-Padding: 0123456789012345678901234567890123456789\r\n");
        }
        assert_eq!(
            read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[&stream]
            ),
            Err(StreamError::PartHeadTooLarge)
        );
        let endless_line = vec![b'-'; MAX_PART_HEAD_BYTES + 1];
        assert_eq!(
            read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[&endless_line]
            ),
            Err(StreamError::PartHeadTooLarge)
        );
        for bad in ["", "ends in space ", "semi;colon", &"x".repeat(71)] {
            assert!(matches!(
                MultipartReader::new(bad, BodyCheck::LengthOnly),
                Err(StreamError::BadBoundary(_))
            ));
        }
        assert!(MultipartReader::new(&"x".repeat(70), BodyCheck::LengthOnly).is_ok());
    }

    #[test]
    fn headers_parse_their_values() {
        assert_eq!(parse_unix_us("1733000030.75"), Some(1_733_000_030_750_000));
        assert_eq!(parse_unix_us("12"), Some(12_000_000));
        assert_eq!(parse_unix_us("1.1234567"), Some(1_123_456));
        assert_eq!(parse_unix_us("1.x"), None);
        let stream = b"--b\r\nContent-Length: 0\r\nX-Frame-Seq: seven\r\n\r\n";
        assert_eq!(
            read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[stream]
            ),
            Err(StreamError::BadSeq("seven".into()))
        );
        let stream = b"--b\r\nno colon here\r\n";
        assert!(matches!(
            read_all(
                &mut MultipartReader::new("b", BodyCheck::LengthOnly).unwrap(),
                &[stream]
            ),
            Err(StreamError::MalformedHeader(_))
        ));
        assert_eq!(
            boundary_of("multipart/x-mixed-replace;boundary=afterburnerframe").as_deref(),
            Some("afterburnerframe")
        );
        assert_eq!(
            boundary_of("Multipart/X-Mixed-Replace; BOUNDARY=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary_of("image/jpeg; boundary=x"), None);
        assert_eq!(boundary_of("multipart/mixed"), None);
    }

    /// `words` offset-encoded words starting at word index `first`.
    fn cbr_words(first: u64, words: u64) -> Vec<u8> {
        (first..first + words)
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn cbr_gaps_are_counted_at_every_split_point() {
        // Words 100..110, then the server skips 20 words, then 130..140.
        let stream = [cbr_words(100, 10), cbr_words(130, 10)].concat();
        for split in 0..=stream.len() {
            let mut checker = CbrChecker::new();
            checker.feed(&stream[..split]).unwrap();
            checker.feed(&stream[split..]).unwrap();
            assert_eq!(
                (checker.gaps, checker.skipped_bytes, checker.bytes),
                (1, 160, 160),
                "split at {split}"
            );
            assert_eq!(checker.first_offset(), Some(800));
            assert_eq!(checker.end_offset(), Some(140 * 8));
        }
        let mut checker = CbrChecker::new();
        checker.feed(&cbr_words(5, 3)).unwrap();
        checker.feed(&cbr_words(5, 3)[..5]).unwrap();
        assert_eq!(
            checker.end_offset(),
            Some(64),
            "a partial word is not counted"
        );
        let mut checker = CbrChecker::new();
        assert_eq!(
            checker.feed(&[cbr_words(5, 3), cbr_words(5, 1)].concat()),
            Err(StreamError::CbrBackwards {
                expected: 8,
                found: 5
            })
        );
        assert_eq!(cbr_capture_unix_us(1_000_000, 4500, 3000), 2_500_000);
    }

    const MJPEG_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: afterburner\r\n\
        Content-Type: multipart/x-mixed-replace;boundary=afterburnerframe\r\n\
        Cache-Control: no-store\r\nConnection: close\r\nX-Stream-Fps: 4\r\n\
        X-Stream-Epoch: 1733000000.000000\r\n\r\n";

    /// Feeds `chunks` to a whole-response reader and collects the parts.
    fn read_response(
        reader: &mut StreamReader,
        chunks: &[&[u8]],
    ) -> Result<Vec<Part>, StreamError> {
        let mut parts = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, &mut parts)?;
        }
        Ok(parts)
    }

    #[test]
    fn a_whole_mjpeg_response_reads_the_same_at_every_split_point() {
        let response = [MJPEG_HEAD.as_bytes().to_vec(), three_parts("\r\n")].concat();
        let whole = read_all(&mut reader(), &[&three_parts("\r\n")]).unwrap();
        for split in 0..=response.len() {
            let mut stream = StreamReader::new(BodyCheck::Alphabet { mix });
            let parts = read_response(&mut stream, &[&response[..split], &response[split..]]);
            assert_eq!(parts.as_ref(), Ok(&whole), "split at {split}");
            let head = stream.head().unwrap();
            assert_eq!(
                head.kind,
                StreamKind::Multipart {
                    boundary: "afterburnerframe".into()
                }
            );
            assert_eq!(head.fps, Some(4.0));
            assert_eq!(head.epoch_unix_us, Some(1_733_000_000_000_000));
        }
        let mut stream = StreamReader::new(BodyCheck::Alphabet { mix });
        read_response(&mut stream, &[&response]).unwrap();
        assert_eq!(stream.at_close(), super::super::response::AtClose::Complete);
    }

    #[test]
    fn a_chunked_cbr_response_is_decoded_and_its_gaps_counted() {
        let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
            Transfer-Encoding: chunked\r\nX-Stream-Rate: 3000\r\nX-Stream-Epoch: 100\r\n\r\n"
            .to_vec();
        for (first, words) in [(0u64, 4u64), (4, 4), (20, 4)] {
            response.extend(format!("{:x}\r\n", words * 8).as_bytes());
            response.extend(cbr_words(first, words));
            response.extend(b"\r\n");
        }
        for split in 0..=response.len() {
            let mut stream = StreamReader::new(BodyCheck::LengthOnly);
            let parts = read_response(&mut stream, &[&response[..split], &response[split..]]);
            assert_eq!(parts, Ok(Vec::new()));
            let checker = stream.cbr().unwrap();
            assert_eq!(
                (checker.bytes, checker.gaps, checker.skipped_bytes),
                (96, 1, 96),
                "split at {split}"
            );
            let head = stream.head().unwrap();
            assert_eq!(
                (head.rate_bytes_per_s, head.epoch_unix_us),
                (Some(3000), Some(100_000_000))
            );
        }
    }

    #[test]
    fn a_response_that_is_no_stream_is_refused_by_name() {
        for (response, expected) in [
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                StreamError::BadStatus(404),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
                StreamError::NotAStream("text/html".into()),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\
                 X-Stream-Fps: fast\r\n\r\n",
                StreamError::BadStreamHeader("X-Stream-Fps", "fast".into()),
            ),
            (
                "SSH-2.0-OpenSSH\r\n\r\n",
                StreamError::Http(super::super::response::FramingError::Malformed),
            ),
        ] {
            let mut stream = StreamReader::new(BodyCheck::LengthOnly);
            assert_eq!(
                read_response(&mut stream, &[response.as_bytes()]),
                Err(expected)
            );
        }
        let mut stream = StreamReader::new(BodyCheck::LengthOnly);
        let endless = vec![b'a'; super::super::response::MAX_HEAD_BYTES + 2];
        let mut head = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        head.extend(endless);
        assert_eq!(
            read_response(&mut stream, &[&head]),
            Err(StreamError::Http(
                super::super::response::FramingError::HeadTooLarge
            ))
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any number of parts of any sizes, with CRLF or LF lines, cut into any pieces, read
        /// as the same parts with the same figures; chunked framing around them changes nothing.
        #[test]
        fn any_cutting_of_any_stream_gives_the_same_parts(
            lens in proptest::collection::vec(0usize..200, 1..6),
            first_seq in 0u64..1_000_000,
            lf_only in any::<bool>(),
            chunked in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let eol = if lf_only { "\n" } else { "\r\n" };
            let mut body = Vec::new();
            let mut expected = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                let seq = first_seq + 2 * i as u64;
                let capture_unix_us = 1_733_000_000_000_000 + seq * 250_000;
                body.extend(format!(
                    "--afterburnerframe{eol}content-type: image/jpeg{eol}CONTENT-LENGTH: {len}{eol}\
                     X-Frame-Seq: {seq}{eol}X-Timestamp: {}.{:06}{eol}{eol}",
                    capture_unix_us / 1_000_000,
                    capture_unix_us % 1_000_000
                ).bytes());
                let start = frame_body_seed(seq) % 62;
                body.extend((0..len as u64).map(|i| FRAME_ALPHABET[((start + i) % 62) as usize]));
                body.extend(eol.bytes());
                expected.push(Part {
                    content_type: Some("image/jpeg".into()),
                    seq: Some(seq),
                    capture_unix_us: Some(capture_unix_us),
                    len: len as u64,
                    verified: true,
                });
            }
            let mut response = b"HTTP/1.1 200 OK\r\n\
                Content-Type: multipart/x-mixed-replace;boundary=afterburnerframe\r\n".to_vec();
            if chunked {
                response.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                for piece in body.chunks(97) {
                    response.extend(format!("{:x}\r\n", piece.len()).bytes());
                    response.extend(piece);
                    response.extend(b"\r\n");
                }
            } else {
                response.extend(b"\r\n");
                response.extend(&body);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(response.len() + 1)).collect();
            cuts.sort_unstable();
            let mut reader = StreamReader::new(BodyCheck::afterburner());
            let mut parts = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([response.len()]) {
                reader.feed(&response[from..cut], &mut parts).unwrap();
                from = cut;
            }
            prop_assert_eq!(parts, expected);
            prop_assert!(!reader.in_part());
        }
    }
}
