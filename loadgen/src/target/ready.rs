//! Whether a server answers: the `http://` URLs of a scenario's `[server]` table, reduced to
//! an address, a `Host` header and a path ([`parse_http_url`]), and the readiness probe, one
//! blocking HTTP/1.0 GET over a std `TcpStream` ([`probe`]). Any status line counts as an
//! answer: a 404 still proves the server is up.
//!
//! Not here: starting and stopping the server (`process`, `ServerHandle`), and real traffic
//! (`engine`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// An `http://` URL reduced to what the probe needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HttpUrl {
    pub(super) addr: SocketAddr,
    /// `host[:port]` as written, for the `Host` header.
    pub(super) authority: String,
    /// The path and query, `/` when empty.
    pub(super) path: String,
}

/// Why a text is not an `http://` URL the loadgen can use.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// `https://`: the probe and the clients speak plain HTTP.
    #[error("https is not supported; give an http:// URL")]
    Https,
    /// Another scheme, or none.
    #[error("not an http:// URL")]
    NotHttp,
    /// `http://user@host/`.
    #[error("user names in URLs are not supported")]
    UserInfo,
    /// `http://[::1/`.
    #[error("an IPv6 address must end with `]`")]
    UnclosedBracket,
    /// Something other than `:PORT` after `]`.
    #[error("expected `:PORT` after `]`")]
    AfterBracket,
    /// Brackets around something that is not an IPv6 address.
    #[error("`{host}` is not an IPv6 address")]
    NotIpv6 {
        /// What the brackets held.
        host: String,
    },
    /// `http://::1/`.
    #[error("IPv6 addresses go in brackets: http://[::1]:8080/")]
    UnbracketedIpv6,
    /// `http:///path`.
    #[error("the host is missing")]
    NoHost,
    /// A host name: names are not resolved, so that a benchmark does not depend on DNS.
    #[error("host `{host}` must be an IP address or localhost (names are not resolved)")]
    HostName {
        /// The name.
        host: String,
    },
    /// A port of 0, above 65535, or not a number.
    #[error("`{port}` is not a port (1-65535)")]
    BadPort {
        /// The port as written.
        port: String,
    },
}

/// Why the readiness probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// The connection was refused, timed out, or the address is unreachable.
    #[error("connecting to {addr}: {error}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// The kernel's answer.
        error: io::Error,
    },
    /// Sending the request or reading the answer failed (a timeout included).
    #[error("talking to {addr}: {error}")]
    Talk {
        /// Where.
        addr: SocketAddr,
        /// What failed.
        error: io::Error,
    },
    /// The server accepted and closed without a byte.
    #[error("{addr} closed the connection without answering")]
    Closed {
        /// Where.
        addr: SocketAddr,
    },
    /// The server answered something else than HTTP.
    #[error("{addr} answered `{}`, not an HTTP status line", .line.escape_debug())]
    NotHttp {
        /// Where.
        addr: SocketAddr,
        /// The first line of what came back.
        line: String,
    },
}

/// Parses `http://HOST[:PORT][/PATH]`, HOST being an IPv4 literal, a bracketed IPv6 literal or
/// `localhost` (taken as 127.0.0.1). Names are not resolved: the clients need one address, and
/// a benchmark should not depend on DNS.
pub(super) fn parse_http_url(text: &str) -> Result<HttpUrl, UrlError> {
    let Some(rest) = text.strip_prefix("http://") else {
        return Err(if text.starts_with("https://") {
            UrlError::Https
        } else {
            UrlError::NotHttp
        });
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(UrlError::UnclosedBracket)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlError::AfterBracket)?),
        };
        let ip: IpAddr = host
            .parse::<Ipv6Addr>()
            .map_err(|_| UrlError::NotIpv6 { host: host.into() })?
            .into();
        (ip, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST.into()
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            ip.into()
        } else if port.is_some_and(|p| p.contains(':')) {
            return Err(UrlError::UnbracketedIpv6);
        } else if host.is_empty() {
            return Err(UrlError::NoHost);
        } else {
            return Err(UrlError::HostName { host: host.into() });
        };
        (ip, port)
    };
    let port = match port {
        None => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(UrlError::BadPort { port: port.into() }),
            Ok(port) => port,
        },
    };
    Ok(HttpUrl {
        addr: SocketAddr::new(host, port),
        authority: authority.to_string(),
        path,
    })
}

/// One HTTP/1.0 GET; the status line if anything that looks like one comes back (any status: a
/// 404 still proves the server is up).
pub(super) fn probe(target: &HttpUrl, timeout: Duration) -> Result<String, NoAnswer> {
    let addr = target.addr;
    // `connect_timeout` refuses a zero duration.
    let timeout = timeout.max(Duration::from_millis(1));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|error| NoAnswer::Connect { addr, error })?;
    let talk = |error| NoAnswer::Talk { addr, error };
    stream.set_read_timeout(Some(timeout)).map_err(talk)?;
    stream.set_write_timeout(Some(timeout)).map_err(talk)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: loadgen\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(talk)?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
            Err(error) => return Err(talk(error)),
        }
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first_line).trim_end().to_string();
    if is_status_line(&line) {
        Ok(line)
    } else if head.is_empty() {
        Err(NoAnswer::Closed { addr })
    } else {
        Err(NoAnswer::NotHttp { addr, line })
    }
}

/// `HTTP/1.1 200 OK`, `HTTP/1.0 404`: a version, a space, three digits.
fn is_status_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("HTTP/") else {
        return false;
    };
    let Some((_, after_version)) = rest.split_once(' ') else {
        return false;
    };
    let code = after_version.as_bytes();
    code.len() >= 3
        && code[..3].iter().all(u8::is_ascii_digit)
        && (code.len() == 3 || code[3] == b' ')
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn urls_parse_with_default_port_and_path() {
        let url = parse_http_url("http://127.0.0.1:8080/index.html?x=1").unwrap();
        assert_eq!(url.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(url.path, "/index.html?x=1");
        assert_eq!(url.authority, "127.0.0.1:8080");

        let url = parse_http_url("http://localhost").unwrap();
        assert_eq!(url.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(url.path, "/");

        let url = parse_http_url("http://[::1]:81/a").unwrap();
        assert_eq!(url.addr, "[::1]:81".parse().unwrap());
        assert_eq!(url.path, "/a");
        assert_eq!(parse_http_url("http://[::1]").unwrap().addr.port(), 80);
        assert_eq!(parse_http_url("http://10.0.0.1?q").unwrap().path, "/?q");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let error = |url| parse_http_url(url).unwrap_err();
        assert_eq!(error("https://127.0.0.1/"), UrlError::Https);
        assert!(error("ftp://x/").to_string().contains("http://"));
        assert_eq!(
            error("http://example.com/").to_string(),
            "host `example.com` must be an IP address or localhost (names are not resolved)"
        );
        assert!(error("http://127.0.0.1:0/").to_string().contains("`0`"));
        assert!(error("http://127.0.0.1:99999/")
            .to_string()
            .contains("99999"));
        assert!(error("http://::1/").to_string().contains("brackets"));
        assert_eq!(error("http:///x"), UrlError::NoHost);
        assert_eq!(error("http://[::1/"), UrlError::UnclosedBracket);
        assert_eq!(error("http://[::1]x/"), UrlError::AfterBracket);
        assert_eq!(error("http://u@127.0.0.1/"), UrlError::UserInfo);
    }

    #[test]
    fn status_lines_are_recognised() {
        assert!(is_status_line("HTTP/1.1 200 OK"));
        assert!(is_status_line("HTTP/1.0 404"));
        assert!(!is_status_line("SSH-2.0-OpenSSH_9.6"));
        assert!(!is_status_line("HTTP/1.1 20"));
        assert!(!is_status_line("HTTP/1.1 2000 OK"));
    }

    #[test]
    fn the_probe_tells_silence_from_another_protocol() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = HttpUrl {
            addr: listener.local_addr().unwrap(),
            authority: "127.0.0.1".into(),
            path: "/".into(),
        };
        let answer = |reply: &'static [u8]| {
            let listener = listener.try_clone().unwrap();
            let server = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 256];
                let _ = stream.read(&mut request);
                stream.write_all(reply).unwrap();
            });
            let outcome = probe(&target, Duration::from_secs(5));
            server.join().unwrap();
            outcome
        };
        assert_eq!(
            answer(b"HTTP/1.0 404 Not Found\r\n\r\n").unwrap(),
            "HTTP/1.0 404 Not Found"
        );
        assert!(matches!(answer(b""), Err(NoAnswer::Closed { .. })));
        let other = answer(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap_err();
        assert!(
            other
                .to_string()
                .ends_with("answered `SSH-2.0-OpenSSH_9.6`, not an HTTP status line"),
            "{other}"
        );
    }
}
