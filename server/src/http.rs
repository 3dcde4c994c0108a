//! HTTP/1.x request parsing and request-target normalisation: pure functions, no I/O, no loop.
//!
//! The parser answers the question thttpd's `httpd_got_request` answers: not yet, got a request,
//! or bad request (here with the [`Violation`] that names the broken rule and its status).
//! Everything that can be decided from the bytes alone is decided here, so the connection code
//! only routes and writes.
//!
//! # The order of checks
//!
//! A request can break several rules at once; the answer is the status of the first rule broken,
//! in this order, which is also the declaration order of [`Violation`]. Every rejection is sent
//! with `Connection: close`, and the connection then closes (after a lingering read, so that the
//! reply reaches a client that is still sending).
//!
//! 1. **Size** (while the head arrives): a request line longer than `--max-header-bytes` is 414
//!    ([`Violation::RequestLineTooLong`], RFC 9110 section 15.5.15); a head longer than it, or
//!    with more than [`MAX_HEADERS`] fields, is 431 ([`Violation::HeadTooLarge`],
//!    [`Violation::TooManyFields`], RFC 6585 section 5). Size and the syntax of step 2 are
//!    judged as the bytes arrive, on the first `--max-header-bytes` only: a syntax error inside
//!    them is a 400 even if the head then runs over, and bytes past them are never looked at, so
//!    the answer is the same however the client's bytes were split into reads.
//! 2. **Framing and syntax** (RFC 9112 sections 2 to 6), all 400:
//!    the request line is exactly `method SP request-target SP HTTP-version CRLF`, the method a
//!    token (RFC 9110 section 5.6.2), one SP between the parts and none inside the target
//!    ([`Violation::MalformedRequestLine`], RFC 9112 section 3); a CR not followed by LF
//!    ([`Violation::BareCarriageReturn`], RFC 9112 section 2.2); each field line is
//!    `token ":" OWS value OWS` with no whitespace before the colon (RFC 9112 section 5.1), no
//!    obs-fold (section 5.2), no whitespace before the first field (section 2.2), and no CR, LF,
//!    NUL or other control but HTAB in the value (RFC 9110 section 5.5)
//!    ([`Violation::MalformedField`]); `Transfer-Encoding` together with `Content-Length`
//!    ([`Violation::TransferEncodingWithContentLength`], RFC 9112 section 6.3 item 3), a
//!    transfer coding list not ending in `chunked`
//!    ([`Violation::TransferEncodingNotChunked`], item 4), `Transfer-Encoding` in an HTTP/1.0
//!    request ([`Violation::TransferEncodingInHttp10`], section 6.1), a `Content-Length` that is
//!    not digits or whose values differ ([`Violation::InvalidContentLength`], section 6.3 item 5
//!    and RFC 9110 section 8.6).
//! 3. **Version** (RFC 9112 section 2.3, RFC 9110 section 2.5): `HTTP/1.0` and `HTTP/1.1` are
//!    served; `HTTP/1.x` with x > 1 is served as HTTP/1.1; another well-formed `HTTP/x.y` is 505
//!    ([`Violation::UnsupportedVersion`]); anything else is 400
//!    ([`Violation::MalformedVersion`]; the name is case-sensitive).
//! 4. **Host** (RFC 9112 section 3.2), all 400: HTTP/1.1 without `Host`
//!    ([`Violation::MissingHost`]), more than one `Host` line in any version
//!    ([`Violation::DuplicateHost`]), a value that is not `uri-host [ ":" port ]`
//!    ([`Violation::InvalidHost`], RFC 3986 section 3.2.2; an empty value is valid).
//! 5. **Method** (RFC 9110 section 9): `GET` and `HEAD` are served (case-sensitive); any other
//!    token is 405 with `Allow: GET, HEAD` ([`Violation::MethodNotAllowed`]). The server never
//!    reads a request body: a 405 is answered without reading one and the connection closes after
//!    the reply, as RFC 9112 section 9.3 requires of a server that does not read the body; the
//!    close is a lingering one (section 9.6), so the client sees the reply before the close. A GET or
//!    HEAD with content (`Content-Length` above 0, or any `Transfer-Encoding`) is 400
//!    ([`Violation::ContentInGetOrHead`]): RFC 9110 section 9.3.1 gives such content no meaning
//!    and allows rejecting it; closing means its bytes are never parsed as a next request
//!    (request smuggling, RFC 9112 section 11.2).
//! 6. **Target**, all 400: a byte that RFC 3986 does not allow in a request-target (a byte from
//!    0x80, a control, space, `"`, `#`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`)
//!    ([`Violation::InvalidTargetByte`], RFC 9112 section 3.2, RFC 3986 section 2: `#` starts a
//!    fragment, which no request-target carries); then, in [`normalize_target`]: a target in
//!    neither origin-form nor absolute-form ([`Violation::TargetForm`], RFC 9112 section 3.2),
//!    a `%` not followed by two hex digits ([`Violation::BadPercentEncoding`], RFC 3986
//!    section 2.1), an encoded `/` or NUL ([`Violation::EncodedSlashOrNul`]), a `..` above the
//!    root ([`Violation::AboveRoot`]).
//!
//! Lenient where the RFCs allow it: empty lines before the request line are skipped and a bare
//! LF ends a line (RFC 9112 section 2.2); `Content-Length: 3, 3` or two equal `Content-Length`
//! lines count as one (RFC 9110 section 8.6).

/// The status codes the server can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200 (RFC 9110 section 15.3.1): a file of the site, or a reftab rule's alternate.
    Ok,
    /// 301 (RFC 9110 section 15.4.2): `/dir` sent on to `/dir/` when `/dir/index.html` exists.
    MovedPermanently,
    /// 400 (RFC 9110 section 15.5.1): a malformed head, a bad or missing `Host`, content on a
    /// GET or HEAD, or a target that is malformed or climbs out of the site (the module docs list
    /// every rule).
    BadRequest,
    /// 404 (RFC 9110 section 15.5.5): no file at the normalised path; the connection may stay
    /// open.
    NotFound,
    /// 405 (RFC 9110 section 15.5.6): a method other than GET and HEAD; sent with
    /// `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// 414 (RFC 9110 section 15.5.15): the request line alone is over `--max-header-bytes`.
    UriTooLong,
    /// 431 (RFC 6585 section 5): the head is longer than `--max-header-bytes`, or has more than
    /// [`MAX_HEADERS`] headers.
    HeadersTooLarge,
    /// 505 (RFC 9110 section 15.6.6): a well-formed `HTTP/x.y` whose major version is not 1.
    VersionNotSupported,
}

impl Status {
    /// Every status in declaration order, so `ALL[s.index()] == s`: the order of the per-status
    /// counters.
    pub const ALL: [Status; 8] = [
        Status::Ok,
        Status::MovedPermanently,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::UriTooLong,
        Status::HeadersTooLarge,
        Status::VersionNotSupported,
    ];

    /// The three-digit code of the status line.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::MovedPermanently => 301,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::UriTooLong => 414,
            Status::HeadersTooLarge => 431,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase of the status line, as RFC 9110 section 15 spells it (RFC 6585
    /// section 5 for 431); also the heading of the error page.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::MovedPermanently => "Moved Permanently",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::UriTooLong => "URI Too Long",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }

    /// Index into per-status counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A rule of the order of checks (module docs) that a request broke, in the order the rules are
/// checked; [`Violation::status`] is the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// 414: the request line does not fit `--max-header-bytes` (RFC 9110 section 15.5.15).
    RequestLineTooLong,
    /// 431: the head does not fit `--max-header-bytes` (RFC 6585 section 5).
    HeadTooLarge,
    /// 431: more than [`MAX_HEADERS`] field lines (RFC 6585 section 5).
    TooManyFields,
    /// 400: not `method SP request-target SP HTTP-version CRLF` (RFC 9112 section 3): a method
    /// byte outside `tchar` (RFC 9110 section 5.6.2), an empty method or target, a space inside
    /// the target or after the version, a line that ends before the version.
    MalformedRequestLine,
    /// 400: a CR not followed by LF in the request line (RFC 9112 section 2.2).
    BareCarriageReturn,
    /// 400: a field line that is not `token ":" OWS value OWS`: a byte outside `tchar` in the
    /// name, whitespace before the colon (RFC 9112 section 5.1), obs-fold (section 5.2),
    /// whitespace before the first field (section 2.2), a CR, NUL or other control but HTAB in
    /// the value (RFC 9110 section 5.5).
    MalformedField,
    /// 400: `Transfer-Encoding` and `Content-Length` together (RFC 9112 section 6.3 item 3:
    /// a sign of request smuggling).
    TransferEncodingWithContentLength,
    /// 400: a `Transfer-Encoding` whose last coding is not `chunked`: the body's length cannot be
    /// known (RFC 9112 section 6.3 item 4).
    TransferEncodingNotChunked,
    /// 400: `Transfer-Encoding` in an HTTP/1.0 request, whose framing must be treated as faulty
    /// (RFC 9112 section 6.1).
    TransferEncodingInHttp10,
    /// 400: a `Content-Length` that is not 1*DIGIT (or does not fit 64 bits), or values that
    /// differ (RFC 9112 section 6.3 item 5, RFC 9110 section 8.6).
    InvalidContentLength,
    /// 400: an HTTP-version that is not `HTTP/` DIGIT `.` DIGIT, case-sensitive (RFC 9112
    /// section 2.3).
    MalformedVersion,
    /// 505: a well-formed version whose major version is not 1 (RFC 9110 sections 2.5 and
    /// 15.6.6).
    UnsupportedVersion,
    /// 400: HTTP/1.1 without `Host` (RFC 9112 section 3.2: a MUST).
    MissingHost,
    /// 400: more than one `Host` field line, in any version (RFC 9112 section 3.2).
    DuplicateHost,
    /// 400: a `Host` value that is not `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986
    /// section 3.2.2).
    InvalidHost,
    /// 405 with `Allow: GET, HEAD`: a method other than GET and HEAD (RFC 9110 sections 9.1 and
    /// 15.5.6).
    MethodNotAllowed,
    /// 400: a GET or HEAD with content, `Content-Length` above 0 or any `Transfer-Encoding`
    /// (RFC 9110 sections 9.3.1 and 9.3.2: no defined meaning, and may be rejected).
    ContentInGetOrHead,
    /// 400: a target byte RFC 3986 does not allow in a request-target: a byte from 0x80, a
    /// control, space, `"`, `#`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|` or `}` (RFC 9112 section
    /// 3.2, RFC 3986 section 2; `#` would start a fragment, which a request-target never has).
    InvalidTargetByte,
    /// 400: a target in neither origin-form (`/path?query`) nor absolute-form
    /// (`http://host/path`) (RFC 9112 section 3.2; authority-form and asterisk-form belong to
    /// CONNECT and OPTIONS, which are 405 before this).
    TargetForm,
    /// 400: a `%` not followed by two hex digits (RFC 3986 section 2.1).
    BadPercentEncoding,
    /// 400: `%2F` or `%00` in the path: an encoded slash would let one segment hide a `..`
    /// walk, and NUL has no place in a file name.
    EncodedSlashOrNul,
    /// 400: a `..` segment that would climb above the site root (RFC 3986 section 5.2.4 would
    /// drop it; refusing is plainer).
    AboveRoot,
}

impl Violation {
    /// Every rule in the order of checks.
    pub const ALL: [Violation; 22] = [
        Violation::RequestLineTooLong,
        Violation::HeadTooLarge,
        Violation::TooManyFields,
        Violation::MalformedRequestLine,
        Violation::BareCarriageReturn,
        Violation::MalformedField,
        Violation::TransferEncodingWithContentLength,
        Violation::TransferEncodingNotChunked,
        Violation::TransferEncodingInHttp10,
        Violation::InvalidContentLength,
        Violation::MalformedVersion,
        Violation::UnsupportedVersion,
        Violation::MissingHost,
        Violation::DuplicateHost,
        Violation::InvalidHost,
        Violation::MethodNotAllowed,
        Violation::ContentInGetOrHead,
        Violation::InvalidTargetByte,
        Violation::TargetForm,
        Violation::BadPercentEncoding,
        Violation::EncodedSlashOrNul,
        Violation::AboveRoot,
    ];

    /// The status the request is answered with; the connection then closes.
    pub fn status(self) -> Status {
        match self {
            Violation::RequestLineTooLong => Status::UriTooLong,
            Violation::HeadTooLarge | Violation::TooManyFields => Status::HeadersTooLarge,
            Violation::UnsupportedVersion => Status::VersionNotSupported,
            Violation::MethodNotAllowed => Status::MethodNotAllowed,
            _ => Status::BadRequest,
        }
    }
}

/// The request methods served; any other is answered 405.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: head and body.
    Get,
    /// `HEAD`: the same head as `GET`, no body (RFC 9110 section 9.3.2).
    Head,
}

/// The protocol versions served; another major version is answered 505, a malformed version
/// 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the reply unless `Connection: keep-alive` asks.
    Http10,
    /// HTTP/1.1, and HTTP/1.x with x > 1, served as the highest minor version the server
    /// implements (RFC 9110 section 2.5): the connection stays open unless `Connection: close`;
    /// `Host` is required.
    Http11,
}

/// A parsed request head, borrowing from the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// GET or HEAD; any other method is a [`Parsed::Reject`] with 405, never a `Request`.
    pub method: Method,
    /// Decides the keep-alive default and the reply's `Connection` header.
    pub version: Version,
    /// The raw request-target as sent (not decoded, query included); only bytes RFC 3986 allows
    /// in a request-target ([`Violation::InvalidTargetByte`]).
    pub target: &'a [u8],
    /// Whether the connection stays open after the response, from the version and `Connection`.
    pub keep_alive: bool,
    /// The `Referer` header's value, whitespace trimmed; `None` without the header (an empty value
    /// is `Some` of an empty slice).
    pub referer: Option<&'a [u8]>,
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The head is not complete yet: read more.
    Partial,
    /// A complete head of `consumed` bytes.
    Complete {
        /// The head, borrowing from the buffer.
        request: Request<'a>,
        /// Bytes of the buffer the head took, blank line included; whatever follows is the next
        /// (pipelined) request.
        consumed: usize,
    },
    /// A request that breaks this rule: answer with its [`Violation::status`], then close.
    Reject(Violation),
}

/// Most headers a request may carry; more is answered with 431 like an oversized head.
pub const MAX_HEADERS: usize = 64;

/// A `tchar` of RFC 9110 section 5.6.2: the bytes of a method or a field name.
const TCHAR: u8 = 1;
/// A byte RFC 3986 allows in a request-target (RFC 9112 section 3.2): unreserved, sub-delims,
/// `%`, and the gen-delims but `#`.
const TARGET: u8 = 2;
/// A byte of a `reg-name` (RFC 3986 section 3.2.2): unreserved, sub-delims, `%`.
const REG_NAME: u8 = 4;
/// SP, CR and LF: where a request-target ends.
const TARGET_END: u8 = 8;
/// A `reg-name` byte but `%`: the common host names, checked without decoding escapes.
const PLAIN_REG_NAME: u8 = 16;

/// The classes of every byte, one table lookup per byte of the request line.
static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let unreserved = alnum || matches!(c, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        let mut class = 0;
        if alnum
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            class |= TCHAR;
        }
        if unreserved || sub_delim || matches!(c, b'%' | b':' | b'/' | b'?' | b'[' | b']' | b'@') {
            class |= TARGET;
        }
        if unreserved || sub_delim || c == b'%' {
            class |= REG_NAME;
        }
        if unreserved || sub_delim {
            class |= PLAIN_REG_NAME;
        }
        if matches!(c, b' ' | b'\r' | b'\n') {
            class |= TARGET_END;
        }
        table[b] = class;
        b += 1;
    }
    table
}

fn class(byte: u8) -> u8 {
    BYTE_CLASSES[byte as usize]
}

/// The request line, split; the version is checked later, in its place in the order.
struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    /// Every byte of the target is one RFC 3986 allows ([`Violation::InvalidTargetByte`]).
    target_bytes_allowed: bool,
    version: &'a [u8],
    /// Bytes from the start of the buffer to just past the line's LF, empty lines before it
    /// included.
    end: usize,
}

/// What the start of the buffer holds as a request line.
enum LineScan<'a> {
    Partial,
    Line(RequestLine<'a>),
    Broken(Violation),
}

/// Splits the request line in one pass: `method SP target SP version (CR)LF`, after any empty
/// lines (RFC 9112 section 2.2).
fn scan_request_line(buf: &[u8]) -> LineScan<'_> {
    use LineScan::{Broken, Partial};
    let mut line = buf;
    loop {
        match line {
            [b'\n', rest @ ..] | [b'\r', b'\n', rest @ ..] => line = rest,
            [] | [b'\r'] => return Partial,
            [b'\r', ..] => return Broken(Violation::BareCarriageReturn),
            _ => break,
        }
    }

    // `GET ` and `HTTP/1.1` CRLF, by far the most common, are compared whole.
    let method_end = if line.starts_with(b"GET ") {
        Some(3)
    } else {
        line.iter().position(|&b| class(b) & TCHAR == 0)
    };
    let Some(method_len) = method_end else {
        return Partial;
    };
    if method_len == 0 || line[method_len] != b' ' {
        return Broken(Violation::MalformedRequestLine);
    }
    let (method, rest) = (&line[..method_len], &line[method_len + 1..]);

    // One pass: find the target's end and AND the classes of its bytes.
    let mut classes = TARGET;
    let mut target_end = None;
    for (i, &byte) in rest.iter().enumerate() {
        let byte_class = class(byte);
        if byte_class & TARGET_END != 0 {
            target_end = Some(i);
            break;
        }
        classes &= byte_class;
    }
    let Some(target_len) = target_end else {
        return Partial;
    };
    // An empty target, or a line that ends without a version (HTTP/0.9's `GET /`).
    if target_len == 0 || rest[target_len] != b' ' {
        return Broken(Violation::MalformedRequestLine);
    }
    let (target, rest) = (&rest[..target_len], &rest[target_len + 1..]);

    let version_end = if rest.starts_with(b"HTTP/1.1\r\n") {
        Some(8)
    } else {
        rest.iter().position(|&b| matches!(b, b'\r' | b'\n' | b' '))
    };
    let Some(version_len) = version_end else {
        return Partial;
    };
    let line_break = match &rest[version_len..] {
        [b'\n', ..] => 1,
        [b'\r', b'\n', ..] => 2,
        [b'\r'] => return Partial,
        [b'\r', ..] => return Broken(Violation::BareCarriageReturn),
        // A space inside the target (`GET /a b HTTP/1.1`) or after the version.
        _ => return Broken(Violation::MalformedRequestLine),
    };
    LineScan::Line(RequestLine {
        method,
        target,
        target_bytes_allowed: classes & TARGET != 0,
        version: &rest[..version_len],
        end: buf.len() - rest.len() + version_len + line_break,
    })
}

/// `HTTP/` DIGIT `.` DIGIT (RFC 9112 section 2.3) as (major, minor).
fn parse_version(version: &[u8]) -> Option<(u8, u8)> {
    match *version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

/// What the field lines say about framing, `Host` and the connection.
#[derive(Default)]
struct Fields<'a> {
    host_lines: u32,
    host: &'a [u8],
    content_length: Option<u64>,
    content_length_invalid: bool,
    transfer_encoding: bool,
    /// The last transfer coding named so far is `chunked`.
    chunked_last: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    referer: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn read(headers: &[httparse::Header<'a>]) -> Fields<'a> {
        let mut fields = Fields::default();
        for header in headers {
            let name = header.name.as_bytes();
            let value = header.value;
            if name.eq_ignore_ascii_case(b"host") {
                fields.host_lines += 1;
                fields.host = value;
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in list_elements(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        fields.conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        fields.conn_keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"referer") {
                fields.referer = Some(trim_ows(value));
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                fields.transfer_encoding = true;
                if let Some(last) = list_elements(value).last() {
                    fields.chunked_last = last.eq_ignore_ascii_case(b"chunked");
                }
            } else if name.eq_ignore_ascii_case(b"content-length") {
                fields.add_content_length(value);
            }
        }
        fields
    }

    /// RFC 9110 section 8.6: `1*DIGIT`; a list of equal values (or equal lines) is one value.
    fn add_content_length(&mut self, value: &[u8]) {
        let mut any = false;
        for item in value.split(|&b| b == b',').map(trim_ows) {
            any = true;
            let parsed = parse_decimal(item);
            match (parsed, self.content_length) {
                (None, _) => self.content_length_invalid = true,
                (Some(n), Some(seen)) if n != seen => self.content_length_invalid = true,
                (Some(n), _) => self.content_length = Some(n),
            }
        }
        if !any {
            self.content_length_invalid = true;
        }
    }

    /// The request announces content: a body we would have to read.
    fn has_content(&self) -> bool {
        self.transfer_encoding || self.content_length.is_some_and(|n| n > 0)
    }
}

/// 1*DIGIT as a u64; `None` for anything else, or a number that does not fit.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The non-empty elements of a comma-separated list (RFC 9110 section 5.6.1), OWS trimmed.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// Strips OWS (SP and HTAB, RFC 9110 section 5.6.3) from both ends.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2): a reg-name
/// (possibly empty) or a bracketed IP literal, then an optional port of digits.
fn is_valid_host(value: &[u8]) -> bool {
    let port = if let Some(literal) = value.strip_prefix(b"[") {
        // IPv6address or IPvFuture: hex digits, `:`, `.`, `v`, and for IPvFuture unreserved and
        // sub-delims; `%` for a zone (RFC 6874).
        let Some(close) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &literal[..close];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b == b':' || class(b) & REG_NAME != 0)
        {
            return false;
        }
        &literal[close + 1..]
    } else {
        let name_end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        if !is_reg_name(&value[..name_end]) {
            return false;
        }
        &value[name_end..]
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `*( unreserved / pct-encoded / sub-delims )` (RFC 3986 section 3.2.2).
fn is_reg_name(name: &[u8]) -> bool {
    if name.iter().all(|&b| class(b) & PLAIN_REG_NAME != 0) {
        return true;
    }
    let mut i = 0;
    while i < name.len() {
        let byte = name[i];
        if class(byte) & REG_NAME == 0 {
            return false;
        }
        if byte == b'%' {
            let escape_ok = name
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !escape_ok {
                return false;
            }
            i += 2;
        }
        i += 1;
    }
    true
}

/// Parses one request head from the start of `buf`, which holds at most what the client sent,
/// and checks it in the order of the module docs.
///
/// `max_head_bytes` bounds the request line plus headers: a request line not ended within it is
/// 414, a head not ended within it is 431, so a client can never make the server buffer more
/// than that.
///
/// Only the first `max_head_bytes` bytes are read: bytes past the limit can neither complete a
/// head nor excuse a broken one. So the answer never depends on how the bytes were split into
/// reads: whatever a prefix of the bytes was judged (a head, or a rule broken) stands once the
/// rest arrives, and a syntax error and an oversize are told apart by which comes first in the
/// stream, whole or in pieces (the fuzz target `server_parse` holds the parser to this).
pub fn parse_request(buf: &[u8], max_head_bytes: usize) -> Parsed<'_> {
    let over_limit = buf.len() > max_head_bytes;
    let window = &buf[..buf.len().min(max_head_bytes)];
    let line = match scan_request_line(window) {
        LineScan::Line(line) => line,
        LineScan::Broken(violation) => return Parsed::Reject(violation),
        LineScan::Partial if over_limit => return Parsed::Reject(Violation::RequestLineTooLong),
        LineScan::Partial => return Parsed::Partial,
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (fields_len, headers) = match httparse::parse_headers(&window[line.end..], &mut headers) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) if over_limit => {
            return Parsed::Reject(Violation::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(Violation::TooManyFields),
        Err(_) => return Parsed::Reject(Violation::MalformedField),
    };
    let consumed = line.end + fields_len;
    match check(&line, &Fields::read(headers)) {
        Ok(request) => Parsed::Complete { request, consumed },
        Err(violation) => Parsed::Reject(violation),
    }
}

/// Steps 2 to 6 of the order of checks, on a complete head.
fn check<'a>(line: &RequestLine<'a>, fields: &Fields<'a>) -> Result<Request<'a>, Violation> {
    let version = parse_version(line.version);

    // 2. Framing.
    if fields.transfer_encoding {
        if fields.content_length.is_some() || fields.content_length_invalid {
            return Err(Violation::TransferEncodingWithContentLength);
        }
        if !fields.chunked_last {
            return Err(Violation::TransferEncodingNotChunked);
        }
        if version == Some((1, 0)) {
            return Err(Violation::TransferEncodingInHttp10);
        }
    }
    if fields.content_length_invalid {
        return Err(Violation::InvalidContentLength);
    }

    // 3. Version.
    let version = match version {
        None => return Err(Violation::MalformedVersion),
        Some((1, 0)) => Version::Http10,
        Some((1, _)) => Version::Http11,
        Some(_) => return Err(Violation::UnsupportedVersion),
    };

    // 4. Host.
    match fields.host_lines {
        0 if version == Version::Http11 => return Err(Violation::MissingHost),
        0 => {}
        1 if is_valid_host(fields.host) => {}
        1 => return Err(Violation::InvalidHost),
        _ => return Err(Violation::DuplicateHost),
    }

    // 5. Method, then content the server will not read.
    let method = match line.method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => return Err(Violation::MethodNotAllowed),
    };
    if fields.has_content() {
        return Err(Violation::ContentInGetOrHead);
    }

    // 6. Target bytes; its form and path are checked by `normalize_target` when routing.
    if !line.target_bytes_allowed {
        return Err(Violation::InvalidTargetByte);
    }

    let keep_alive = match version {
        Version::Http10 => fields.conn_keep_alive && !fields.conn_close,
        Version::Http11 => !fields.conn_close,
    };
    Ok(Request {
        method,
        version,
        target: line.target,
        keep_alive,
        referer: fields.referer,
    })
}

/// Turns a request-target into the normalised site path it names, written into `out`.
///
/// Accepts origin-form (`/a/b?q`) and absolute-form (`http://host/a/b`). The query is dropped,
/// `%XX` escapes decoded, `.` and `..` segments resolved. The last rules of the order of checks
/// (module docs) are checked here, each a 400: [`Violation::TargetForm`],
/// [`Violation::BadPercentEncoding`], [`Violation::EncodedSlashOrNul`] and
/// [`Violation::AboveRoot`], so the path can never leave the site. A trailing slash is kept,
/// since `/dir/` and `/dir` route differently.
pub fn normalize_target(target: &[u8], out: &mut Vec<u8>) -> Result<(), Violation> {
    out.clear();
    let mut path = target;
    if let Some(rest) = strip_scheme(path) {
        path = match rest.iter().position(|&b| b == b'/') {
            Some(slash) => &rest[slash..],
            None => b"/",
        };
    }
    if let Some(end) = path.iter().position(|&b| b == b'?' || b == b'#') {
        path = &path[..end];
    }
    if path.first() != Some(&b'/') {
        return Err(Violation::TargetForm);
    }

    let mut trailing_slash = false;
    for raw_segment in path[1..].split(|&b| b == b'/') {
        // Decode straight into `out` (no allocation per request), then undo dot segments.
        let start = out.len();
        out.push(b'/');
        percent_decode_into(raw_segment, out)?;
        trailing_slash = false;
        match &out[start + 1..] {
            b"" | b"." => {
                out.truncate(start);
                trailing_slash = true;
            }
            b".." => {
                out.truncate(start);
                let Some(cut) = out.iter().rposition(|&b| b == b'/') else {
                    return Err(Violation::AboveRoot);
                };
                out.truncate(cut);
                trailing_slash = true;
            }
            _ => {}
        }
    }
    if out.is_empty() || trailing_slash {
        out.push(b'/');
    }
    Ok(())
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

fn percent_decode_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Violation> {
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(Violation::BadPercentEncoding)?;
                let value = (hex_value(hex[0])? << 4) | hex_value(hex[1])?;
                i += 3;
                value
            }
            other => {
                i += 1;
                other
            }
        };
        // An encoded slash would let one segment hide a `..` walk; NUL has no place in a path.
        if byte == 0 || byte == b'/' {
            return Err(Violation::EncodedSlashOrNul);
        }
        out.push(byte);
    }
    Ok(())
}

fn hex_value(digit: u8) -> Result<u8, Violation> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(Violation::BadPercentEncoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse_request(buf, 8192) {
            Parsed::Complete { request, consumed } => (request, consumed),
            other => panic!(
                "expected a complete request for {:?}, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    #[test]
    fn http11_keeps_alive_unless_close() {
        let (req, n) = complete(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET");
        assert_eq!(n, 28);
        assert!(req.keep_alive);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, b"/a");
        let (req, _) = complete(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(!req.keep_alive);
        let (req, _) =
            complete(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n");
        assert!(!req.keep_alive);
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let (req, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!req.keep_alive);
        assert_eq!(req.version, Version::Http10);
        let (req, _) = complete(b"HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(req.keep_alive);
        assert_eq!(req.method, Method::Head);
    }

    #[test]
    fn referer_is_trimmed_and_empty_is_some() {
        let (req, _) = complete(b"GET / HTTP/1.0\r\nReferer:  http://a/b \r\n\r\n");
        assert_eq!(req.referer, Some(&b"http://a/b"[..]));
        let (req, _) = complete(b"GET / HTTP/1.0\r\nReferer:\r\n\r\n");
        assert_eq!(req.referer, Some(&b""[..]));
        let (req, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(req.referer, None);
    }

    #[test]
    fn partial_until_blank_line() {
        for partial in [
            &b""[..],
            b"\r",
            b"\r\n",
            b"GE",
            b"GET ",
            b"GET /a",
            b"GET /a HTTP/1.",
            b"GET /a HTTP/1.1\r",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert_eq!(
                parse_request(partial, 8192),
                Parsed::Partial,
                "{:?}",
                String::from_utf8_lossy(partial)
            );
        }
    }

    /// One row per rule of the order of checks (module docs): the request, the rule it breaks
    /// and where the rule comes from.
    #[rustfmt::skip]
    const RULES: &[(&[u8], Violation, &str)] = &[
        (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::MalformedRequestLine, "RFC 9110 5.6.2: the method is a token"),
        (b" GET / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::MalformedRequestLine, "RFC 9112 3: no empty method"),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::MalformedRequestLine, "RFC 9112 3: exactly one SP"),
        (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", Violation::MalformedRequestLine, "RFC 9112 3: no space in the target"),
        (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", Violation::MalformedRequestLine, "RFC 9112 3: nothing after the version"),
        (b"GET /\r\n\r\n", Violation::MalformedRequestLine, "RFC 9112 3: HTTP/0.9's version-less line"),
        (b"GET\r\n\r\n", Violation::MalformedRequestLine, "RFC 9112 3: a method alone"),
        (b"GET / HTTP/1.1\rHost: x\r\n\r\n", Violation::BareCarriageReturn, "RFC 9112 2.2: bare CR"),
        (b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::BareCarriageReturn, "RFC 9112 2.2: bare CR"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", Violation::MalformedField, "RFC 9112 5.1: whitespace before the colon"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", Violation::MalformedField, "RFC 9112 5.2: obs-fold"),
        (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", Violation::MalformedField, "RFC 9112 2.2: whitespace before the first field"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", Violation::MalformedField, "RFC 9110 5.1: the name is a token"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", Violation::MalformedField, "RFC 9112 5: name colon value"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", Violation::MalformedField, "RFC 9112 2.2: bare CR in a value"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", Violation::MalformedField, "RFC 9110 5.5: NUL in a value"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", Violation::TransferEncodingWithContentLength, "RFC 9112 6.3 item 3"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Violation::TransferEncodingNotChunked, "RFC 9112 6.3 item 4"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", Violation::TransferEncodingNotChunked, "RFC 9112 6.3 item 4: the last line's last coding"),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Violation::TransferEncodingInHttp10, "RFC 9112 6.1"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n", Violation::InvalidContentLength, "RFC 9110 8.6: 1*DIGIT"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", Violation::InvalidContentLength, "RFC 9110 8.6: 1*DIGIT"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", Violation::InvalidContentLength, "RFC 9110 8.6: 1*DIGIT"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n", Violation::InvalidContentLength, "RFC 9112 6.3 item 5: differing values"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", Violation::InvalidContentLength, "RFC 9112 6.3 item 5: differing lines"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", Violation::InvalidContentLength, "RFC 9110 8.6: too large to frame"),
        (b"GET / FTP/1.0\r\n\r\n", Violation::MalformedVersion, "RFC 9112 2.3: HTTP-name"),
        (b"GET / http/1.1\r\nHost: x\r\n\r\n", Violation::MalformedVersion, "RFC 9112 2.3: HTTP-name is case-sensitive"),
        (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", Violation::MalformedVersion, "RFC 9112 2.3: one digit each"),
        (b"GET / HTTP/1\r\nHost: x\r\n\r\n", Violation::MalformedVersion, "RFC 9112 2.3: major.minor"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", Violation::UnsupportedVersion, "RFC 9110 15.6.6"),
        (b"GET / HTTP/0.9\r\n\r\n", Violation::UnsupportedVersion, "RFC 9110 15.6.6"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Violation::UnsupportedVersion, "RFC 9113 3.4: the HTTP/2 preface"),
        (b"GET / HTTP/1.1\r\n\r\n", Violation::MissingHost, "RFC 9112 3.2"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", Violation::DuplicateHost, "RFC 9112 3.2"),
        (b"GET / HTTP/1.0\r\nHost: a.test\r\nHost: a.test\r\n\r\n", Violation::DuplicateHost, "RFC 9112 3.2: any version"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Violation::InvalidHost, "RFC 3986 3.2.2"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Violation::InvalidHost, "RFC 3986 3.2.2"),
        (b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", Violation::InvalidHost, "RFC 3986 3.2.3: port is digits"),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Violation::InvalidHost, "RFC 3986 3.2.2: IP-literal"),
        (b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", Violation::InvalidHost, "RFC 3986 2.1: pct-encoded"),
        (b"GET / HTTP/1.1\r\nHost: \xc3\xa9.test\r\n\r\n", Violation::InvalidHost, "RFC 3986 3.2.2: ASCII only"),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::MethodNotAllowed, "RFC 9110 15.5.6"),
        (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", Violation::MethodNotAllowed, "RFC 9110 9.1: case-sensitive"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", Violation::ContentInGetOrHead, "RFC 9110 9.3.1"),
        (b"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", Violation::ContentInGetOrHead, "RFC 9110 9.3.2"),
        (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", Violation::InvalidTargetByte, "RFC 3986 2: bytes from 0x80"),
        (b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", Violation::InvalidTargetByte, "RFC 3986 2: controls"),
        (b"GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n", Violation::InvalidTargetByte, "RFC 3986 2: NUL"),
        (b"GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", Violation::InvalidTargetByte, "RFC 3986 2: DEL"),
        (b"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n", Violation::InvalidTargetByte, "RFC 9112 3.2: no fragment"),
    ];

    #[test]
    fn each_rule_rejects_with_its_status() {
        for &(input, violation, source) in RULES {
            assert_eq!(
                parse_request(input, 8192),
                Parsed::Reject(violation),
                "{source}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Every rule checked by the parser has a row; the size rules and normalisation have
        // their own tests.
        let by_normalisation = [
            Violation::TargetForm,
            Violation::BadPercentEncoding,
            Violation::EncodedSlashOrNul,
            Violation::AboveRoot,
        ];
        let by_size = [
            Violation::RequestLineTooLong,
            Violation::HeadTooLarge,
            Violation::TooManyFields,
        ];
        for rule in Violation::ALL {
            let covered = RULES.iter().any(|row| row.1 == rule)
                || by_normalisation.contains(&rule)
                || by_size.contains(&rule);
            assert!(covered, "{rule:?} has no row");
        }
    }

    #[test]
    fn every_disallowed_target_byte_is_refused_and_every_allowed_one_served() {
        let allowed: &[u8] = b"ABCXYZabcxyz0189-._~!$&'()*+,;=:@/?%[]";
        for byte in 0..=255u8 {
            if matches!(byte, b' ' | b'\r' | b'\n') {
                continue; // These end the target: request-line syntax, not target bytes.
            }
            let mut raw = b"GET /".to_vec();
            raw.push(byte);
            raw.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            let parsed = parse_request(&raw, 8192);
            if allowed.contains(&byte) || byte.is_ascii_alphanumeric() {
                assert!(
                    matches!(parsed, Parsed::Complete { .. }),
                    "byte {byte:#04x}: {parsed:?}"
                );
            } else {
                assert_eq!(
                    parsed,
                    Parsed::Reject(Violation::InvalidTargetByte),
                    "byte {byte:#04x}"
                );
            }
        }
    }

    #[test]
    fn earlier_rules_win() {
        let cases: &[(&[u8], Violation)] = &[
            // Framing before method: a TE+CL POST is 400, not 405.
            (
                b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                Violation::TransferEncodingWithContentLength,
            ),
            // Framing before version.
            (
                b"GET / HTTP/2.0\r\nContent-Length: x\r\n\r\n",
                Violation::InvalidContentLength,
            ),
            // Version before Host: HTTP/2.0 without Host is 505.
            (b"GET / HTTP/2.0\r\n\r\n", Violation::UnsupportedVersion),
            // Host before method: the issue's `PUT / HTTP/1.1` without Host.
            (b"PUT / HTTP/1.1\r\n\r\n", Violation::MissingHost),
            (
                b"DELETE / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Violation::DuplicateHost,
            ),
            // Method before content: the issue's HTTP/1.0 POST with a body is 405.
            (
                b"POST /index.html HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
                Violation::MethodNotAllowed,
            ),
            // Method before target bytes.
            (
                b"PUT /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
                Violation::MethodNotAllowed,
            ),
            // Content before target bytes.
            (
                b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
                Violation::ContentInGetOrHead,
            ),
            // Host before target bytes.
            (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", Violation::MissingHost),
        ];
        for &(input, violation) in cases {
            assert_eq!(
                parse_request(input, 8192),
                Parsed::Reject(violation),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn lenient_where_the_rfcs_allow() {
        // RFC 9110 2.5: a higher minor version is served as the highest one implemented.
        for version in ["HTTP/1.2", "HTTP/1.9"] {
            let raw = format!("GET / {version}\r\nHost: x\r\n\r\n");
            let (req, _) = complete(raw.as_bytes());
            assert_eq!(req.version, Version::Http11, "{version}");
            assert!(req.keep_alive);
        }
        let (req, _) = complete(b"GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(!req.keep_alive);
        assert_eq!(
            parse_request(b"GET / HTTP/1.2\r\n\r\n", 8192),
            Parsed::Reject(Violation::MissingHost),
            "HTTP/1.2 is HTTP/1.1, Host included"
        );
        // RFC 9112 2.2: empty lines before the request line; bare LF line ends.
        let (_, n) = complete(b"\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(n, 30);
        let (req, n) = complete(b"GET /a HTTP/1.1\nHost: x\n\nrest");
        assert_eq!((req.target, n), (&b"/a"[..], 25));
        // RFC 9110 8.6: equal Content-Length values are one; 0 is no content.
        complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        complete(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\nContent-Length: 00\r\n\r\n",
        );
        // RFC 9112 3.2: valid Host values, an empty one included.
        for host in [
            "",
            "a.test",
            "a.test:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "xn--bcher-kva.example",
            "a%41",
            "a:",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            complete(raw.as_bytes());
        }
        // HTTP/1.0 needs no Host; an absolute-form target is fine.
        complete(b"GET http://a.test/x?y HTTP/1.0\r\n\r\n");
        // Any other method token is a method, refused with 405, whatever its case.
        assert_eq!(
            parse_request(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 8192),
            Parsed::Reject(Violation::MethodNotAllowed)
        );
    }

    #[test]
    fn oversized_line_is_414_and_oversized_head_is_431() {
        let mut long_line = b"GET /".to_vec();
        long_line.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(
            parse_request(&long_line, 64),
            Parsed::Reject(Violation::RequestLineTooLong)
        );
        long_line.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse_request(&long_line, 64),
            Parsed::Reject(Violation::RequestLineTooLong)
        );
        let mut long_head = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        long_head.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(
            parse_request(&long_head, 64),
            Parsed::Reject(Violation::HeadTooLarge)
        );
        long_head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_request(&long_head, 64),
            Parsed::Reject(Violation::HeadTooLarge)
        );
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_request(&many, 8192),
            Parsed::Reject(Violation::TooManyFields)
        );
        for violation in [
            Violation::RequestLineTooLong,
            Violation::HeadTooLarge,
            Violation::TooManyFields,
        ] {
            assert_ne!(violation.status(), Status::BadRequest);
        }
    }

    #[test]
    fn statuses_of_the_rules() {
        assert_eq!(Violation::MethodNotAllowed.status().code(), 405);
        assert_eq!(Violation::UnsupportedVersion.status().code(), 505);
        assert_eq!(Violation::RequestLineTooLong.status().code(), 414);
        assert_eq!(Violation::TooManyFields.status().code(), 431);
        assert_eq!(Violation::DuplicateHost.status().code(), 400);
        assert_eq!(Violation::AboveRoot.status().code(), 400);
    }

    fn norm(target: &str) -> Result<String, Violation> {
        let mut out = Vec::new();
        normalize_target(target.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn targets_normalise_inside_the_site() {
        assert_eq!(norm("/"), Ok("/".into()));
        assert_eq!(norm("/a/b.txt?x=1"), Ok("/a/b.txt".into()));
        assert_eq!(norm("/a%20b.txt"), Ok("/a b.txt".into()));
        assert_eq!(norm("/dir/"), Ok("/dir/".into()));
        assert_eq!(norm("//a/./b/../c"), Ok("/a/c".into()));
        assert_eq!(norm("/a/.."), Ok("/".into()));
        assert_eq!(norm("/a/b/.."), Ok("/a/".into()));
        assert_eq!(norm("http://example.com/x"), Ok("/x".into()));
        assert_eq!(norm("HTTP://example.com"), Ok("/".into()));
    }

    #[test]
    fn targets_that_escape_or_are_malformed_are_400() {
        for (bad, violation) in [
            ("/..", Violation::AboveRoot),
            ("/../etc/passwd", Violation::AboveRoot),
            ("/%2e%2e/x", Violation::AboveRoot),
            ("/a/../../x", Violation::AboveRoot),
            ("/a%2fb", Violation::EncodedSlashOrNul),
            ("/%00", Violation::EncodedSlashOrNul),
            ("/%zz", Violation::BadPercentEncoding),
            ("/%4", Violation::BadPercentEncoding),
            ("x", Violation::TargetForm),
            ("*", Violation::TargetForm),
            ("example.com:80", Violation::TargetForm),
        ] {
            assert_eq!(norm(bad), Err(violation), "{bad}");
            assert_eq!(violation.status(), Status::BadRequest);
        }
    }
}
