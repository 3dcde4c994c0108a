//! A reference HTTP/1.1 client for the real-server tests, over a blocking std `TcpStream`: it
//! pipelines GETs on one connection, reads until the server closes, and splits what came back
//! into replies by the message-body rules of RFC 9112 section 6.3. The tests use it to prove
//! what each server really sends (chunked, 204, 304, a length) before they judge how the
//! loadgen reads the same replies; it is written apart from the loadgen's framing on purpose.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Past this a server that should answer in milliseconds is stuck, not slow.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How a reply's body was delimited (RFC 9112 section 6.3; the rule numbers are its list's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body, whatever the headers say: a 1xx, 204 or 304 reply (rule 1).
    NoBody,
    /// `Transfer-Encoding` whose last coding is `chunked` (rule 4): `chunks` data chunks
    /// before the last (zero-size) one.
    Chunked { chunks: usize },
    /// `Content-Length` (rule 6).
    Length(u64),
    /// Neither: the body ran to the server's close (rule 8).
    UntilClose,
}

/// One reply as it came over the wire.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// The body as an application sees it: chunk framing removed.
    pub body: Vec<u8>,
    /// Bytes on the wire: status line, headers, framed body.
    pub wire_len: usize,
}

impl Reply {
    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The reply in one line, for assertion messages.
    pub fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        format!(
            "status {}, {:?}, {} body bytes, {} on the wire; headers [{}]",
            self.status,
            self.framing,
            self.body.len(),
            self.wire_len,
            headers.join("; ")
        )
    }
}

/// Sends `count` GETs of `target` pipelined on one HTTP/1.1 connection to `addr` (the last
/// with `Connection: close`, so the server's close ends the exchange rather than a timeout),
/// and returns the replies in order.
pub fn pipelined_gets(addr: SocketAddr, target: &str, count: usize) -> Result<Vec<Reply>, String> {
    let talk = |e: std::io::Error| format!("GET {target} from {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(talk)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(talk)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(talk)?;
    let mut requests = String::new();
    for i in 0..count {
        let close = if i + 1 == count {
            "Connection: close\r\n"
        } else {
            ""
        };
        requests.push_str(&format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{close}\r\n"
        ));
    }
    stream.write_all(requests.as_bytes()).map_err(talk)?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).map_err(talk)?;
    let replies = split_replies(&bytes).map_err(|e| format!("GET {target}: {e}"))?;
    if replies.len() != count {
        return Err(format!(
            "GET {target}: {} replies to {count} requests: {:?}",
            replies.len(),
            replies.iter().map(Reply::describe).collect::<Vec<_>>()
        ));
    }
    Ok(replies)
}

/// Splits a connection's bytes, read to the server's close, into replies (to GETs).
pub fn split_replies(mut bytes: &[u8]) -> Result<Vec<Reply>, String> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let (reply, used) =
            one_reply(bytes).map_err(|e| format!("reply {}: {e}", replies.len() + 1))?;
        bytes = &bytes[used..];
        replies.push(reply);
    }
    Ok(replies)
}

/// The reply at the start of `bytes` and its length on the wire.
fn one_reply(bytes: &[u8]) -> Result<(Reply, usize), String> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the head is cut short".into()),
        Err(e) => {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
            return Err(format!("not a reply head ({e}): {start:?}"));
        }
    };
    let status = response.code.unwrap_or(0);
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let rest = &bytes[head_len..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let (framing, body, body_len) =
        if (100..200).contains(&status) || status == 204 || status == 304 {
            (Framing::NoBody, Vec::new(), 0)
        } else if let Some(codings) = find("transfer-encoding") {
            let last = codings.rsplit(',').next().unwrap_or("").trim();
            if last.eq_ignore_ascii_case("chunked") {
                let (body, chunks, used) = dechunk(rest)?;
                (Framing::Chunked { chunks }, body, used)
            } else {
                (Framing::UntilClose, rest.to_vec(), rest.len())
            }
        } else if let Some(length) = find("content-length") {
            let n: usize = length
                .parse()
                .map_err(|_| format!("Content-Length `{length}` is not a length"))?;
            if rest.len() < n {
                return Err(format!("{} of {n} body bytes", rest.len()));
            }
            (Framing::Length(n as u64), rest[..n].to_vec(), n)
        } else {
            (Framing::UntilClose, rest.to_vec(), rest.len())
        };
    let wire_len = head_len + body_len;
    Ok((
        Reply {
            status,
            headers,
            framing,
            body,
            wire_len,
        },
        wire_len,
    ))
}

/// Decodes a chunked body (RFC 9112 section 7.1) at the start of `bytes`: the body, the number
/// of data chunks, and the bytes used up to the end of the trailer section.
fn dechunk(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    let mut body = Vec::new();
    let mut chunks = 0;
    let mut at = 0;
    loop {
        let line = line_at(bytes, at).ok_or("a chunk-size line is cut short")?;
        let text = std::str::from_utf8(line).map_err(|_| "a chunk-size line is not text")?;
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size `{size_text}` is not hexadecimal"))?;
        at += line.len() + 2;
        if size == 0 {
            break;
        }
        let data = bytes
            .get(at..at + size)
            .ok_or_else(|| format!("a chunk of {size} bytes is cut short"))?;
        body.extend_from_slice(data);
        at += size;
        if bytes.get(at..at + 2) != Some(b"\r\n") {
            return Err(format!("chunk {} does not end with CRLF", chunks + 1));
        }
        at += 2;
        chunks += 1;
    }
    // Trailer fields, then the empty line.
    loop {
        let line = line_at(bytes, at).ok_or("the trailer section is cut short")?;
        at += line.len() + 2;
        if line.is_empty() {
            return Ok((body, chunks, at));
        }
    }
}

/// The line starting at `at`, without its CRLF; `None` if no CRLF follows.
fn line_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let rest = bytes.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some(&rest[..end])
}

/// The framing rules themselves, on replies written out by hand, so that a wrong verdict on a
/// server's reply is the server's and not this parser's.
#[test]
fn the_reference_client_frames_replies_by_rfc_9112() {
    let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
        3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n\
        HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n\
        HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
        HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end";
    let replies = split_replies(bytes).unwrap();
    let got: Vec<(u16, Framing, &[u8])> = replies
        .iter()
        .map(|r| (r.status, r.framing, r.body.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            (200, Framing::Chunked { chunks: 2 }, &b"abcde"[..]),
            (204, Framing::NoBody, b""),
            (304, Framing::NoBody, b""),
            (200, Framing::Length(2), b"ok"),
            (200, Framing::UntilClose, b"to the end"),
        ]
    );
    assert_eq!(
        replies.iter().map(|r| r.wire_len).sum::<usize>(),
        bytes.len()
    );
    assert!(split_replies(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok").is_err());
    assert!(
        split_replies(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").is_err()
    );
}
