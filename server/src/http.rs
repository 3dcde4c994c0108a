//! HTTP/1.x request parsing and request-target normalisation: pure functions, no I/O, no loop.
//!
//! The parser answers the question thttpd's `httpd_got_request` answers: not yet, got a request,
//! or bad request (here with the status to send). Everything that can be decided from the bytes
//! alone is decided here, so the connection code only routes and writes.

/// The status codes the server can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200 (RFC 9110 section 15.3.1): a file of the site, or a reftab rule's alternate.
    Ok,
    /// 301 (RFC 9110 section 15.4.2): `/dir` sent on to `/dir/` when `/dir/index.html` exists.
    MovedPermanently,
    /// 400 (RFC 9110 section 15.5.1): a malformed head, HTTP/1.1 without `Host`, a request
    /// body, or a target that is malformed or climbs out of the site.
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
    /// 505 (RFC 9110 section 15.6.6): a well-formed `HTTP/x.y` other than 1.0 and 1.1.
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

/// The request methods served; any other is answered 405.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: head and body.
    Get,
    /// `HEAD`: the same head as `GET`, no body (RFC 9110 section 9.3.2).
    Head,
}

/// The protocol versions served; another well-formed `HTTP/x.y` is answered 505, anything else
/// 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the reply unless `Connection: keep-alive` asks.
    Http10,
    /// HTTP/1.1: the connection stays open unless `Connection: close`; `Host` is required.
    Http11,
}

/// A parsed request head, borrowing from the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// GET or HEAD; any other method is a [`Parsed::Reject`] with 405, never a `Request`.
    pub method: Method,
    /// Decides the keep-alive default and the reply's `Connection` header.
    pub version: Version,
    /// The raw request-target as sent (not decoded, query included).
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
    /// A request that must be answered with this error status, after which the connection closes.
    Reject(Status),
}

/// Most headers a request may carry; more is answered with 431 like an oversized head.
pub const MAX_HEADERS: usize = 64;

/// Parses one request head from the start of `buf`, which holds at most what the client sent.
///
/// `max_head_bytes` bounds the request line plus headers: a request line alone over it is 414, a
/// head over it is 431, so a client can never make the server buffer more than that.
pub fn parse_request(buf: &[u8], max_head_bytes: usize) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_head_bytes {
                return Parsed::Reject(oversize_status(buf, max_head_bytes));
            }
            return Parsed::Partial;
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::Version) => return Parsed::Reject(version_error_status(buf)),
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(Status::HeadersTooLarge),
        Err(_) => return Parsed::Reject(Status::BadRequest),
    };
    if consumed > max_head_bytes {
        return Parsed::Reject(oversize_status(buf, max_head_bytes));
    }
    // httparse only completes with all of these present.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(Status::BadRequest);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };

    let mut has_host = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut referer = None;
    for header in req.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            has_host = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = trim_ascii(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"referer") {
            referer = Some(trim_ascii(header.value));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // GET and HEAD carry no body; accepting one here would open request smuggling.
            return Parsed::Reject(Status::BadRequest);
        } else if name.eq_ignore_ascii_case(b"content-length") && trim_ascii(header.value) != b"0" {
            return Parsed::Reject(Status::BadRequest);
        }
    }

    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Parsed::Reject(Status::MethodNotAllowed),
    };
    if version == Version::Http11 && !has_host {
        return Parsed::Reject(Status::BadRequest);
    }
    let keep_alive = match version {
        Version::Http10 => conn_keep_alive && !conn_close,
        Version::Http11 => !conn_close,
    };
    Parsed::Complete {
        request: Request {
            method,
            version,
            target: target.as_bytes(),
            keep_alive,
            referer,
        },
        consumed,
    }
}

/// 414 when the request line alone does not fit, 431 when the headers do not.
fn oversize_status(buf: &[u8], max_head_bytes: usize) -> Status {
    let window = &buf[..buf.len().min(max_head_bytes + 1)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) if end <= max_head_bytes => Status::HeadersTooLarge,
        _ => Status::UriTooLong,
    }
}

/// httparse rejects every version but 1.0 and 1.1 alike; a well-formed `HTTP/x.y` gets 505, junk 400.
fn version_error_status(buf: &[u8]) -> Status {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = trim_ascii(&buf[..line_end]);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Status::VersionNotSupported
        }
        _ => Status::BadRequest,
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return &[];
    };
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(start);
    &bytes[start..=end]
}

/// Turns a request-target into the normalised site path it names, written into `out`.
///
/// Accepts origin-form (`/a/b?q`) and absolute-form (`http://host/a/b`). The query and fragment
/// are dropped, `%XX` escapes decoded, `.` and `..` segments resolved. A `..` that would climb
/// above the root, a bad escape or a decoded NUL or `/` is a 400: the path can never leave the
/// site. A trailing slash is kept, since `/dir/` and `/dir` route differently.
pub fn normalize_target(target: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
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
        return Err(Status::BadRequest);
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
                    return Err(Status::BadRequest);
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

fn percent_decode_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(Status::BadRequest)?;
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
            return Err(Status::BadRequest);
        }
        out.push(byte);
    }
    Ok(())
}

fn hex_value(digit: u8) -> Result<u8, Status> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(Status::BadRequest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse_request(buf, 8192) {
            Parsed::Complete { request, consumed } => (request, consumed),
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    #[test]
    fn http11_keeps_alive_unless_close() {
        let (req, n) = complete(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET");
        assert_eq!(n, 28);
        assert!(req.keep_alive);
        assert_eq!(req.method, Method::Get);
        let (req, _) = complete(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
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
    fn partial_until_blank_line() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n", 8192),
            Parsed::Partial
        );
        assert_eq!(parse_request(b"GE", 8192), Parsed::Partial);
    }

    #[test]
    fn rejections_carry_their_status() {
        let cases: [(&[u8], Status); 7] = [
            (b"GET / HTTP/1.1\r\n\r\n", Status::BadRequest),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
                Status::MethodNotAllowed,
            ),
            (
                b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
                Status::VersionNotSupported,
            ),
            (
                b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
                Status::VersionNotSupported,
            ),
            (b"GET / FTP/1.0\r\n\r\n", Status::BadRequest),
            (b"G\x01T / HTTP/1.1\r\n\r\n", Status::BadRequest),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                Status::BadRequest,
            ),
        ];
        for (input, status) in cases {
            assert_eq!(
                parse_request(input, 8192),
                Parsed::Reject(status),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn oversized_line_is_414_and_oversized_head_is_431() {
        let mut long_line = b"GET /".to_vec();
        long_line.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(
            parse_request(&long_line, 64),
            Parsed::Reject(Status::UriTooLong)
        );
        let mut long_head = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        long_head.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(
            parse_request(&long_head, 64),
            Parsed::Reject(Status::HeadersTooLarge)
        );
        long_head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_request(&long_head, 64),
            Parsed::Reject(Status::HeadersTooLarge)
        );
    }

    fn norm(target: &str) -> Result<String, Status> {
        let mut out = Vec::new();
        normalize_target(target.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn targets_normalise_inside_the_site() {
        assert_eq!(norm("/"), Ok("/".into()));
        assert_eq!(norm("/a/b.txt?x=1#f"), Ok("/a/b.txt".into()));
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
        for bad in [
            "/..",
            "/../etc/passwd",
            "/%2e%2e/x",
            "/a/../../x",
            "/a%2fb",
            "/%00",
            "/%zz",
            "/%4",
            "x",
            "*",
        ] {
            assert_eq!(norm(bad), Err(Status::BadRequest), "{bad}");
        }
    }
}
