//! Request heads as bytes, a pure function of the target, the `Host` and the style of the
//! connection: SPECweb96's HTTP/1.0 request, HTTP/1.1 on a kept-alive connection (`Connection:
//! close` on its last request), and a 1999 browser's request for slow-line users.

/// How a request is framed on its connection (RFC 9112 section 9.3: HTTP/1.1 persists unless a
/// side says `close`; HTTP/1.0 closes unless both say `keep-alive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStyle {
    /// `GET /p HTTP/1.0`: one request per connection (SPECweb96).
    Http10,
    /// `GET /p HTTP/1.1`: the connection stays open for another request.
    KeepAlive,
    /// HTTP/1.1 with `Connection: close`: the last request of its connection.
    LastOnConnection,
    /// A slow-line user's browser: HTTP/1.0, one request per connection.
    BrowserHttp10,
    /// A slow-line user's browser on a persistent HTTP/1.1 connection.
    BrowserKeepAlive,
}

impl RequestStyle {
    /// The style of request number `done + 1` on a connection that carries at most
    /// `per_connection` requests; `browser` for slow-line users.
    pub fn for_request(browser: bool, per_connection: u32, done: u32) -> RequestStyle {
        match (browser, per_connection) {
            (true, 1) => RequestStyle::BrowserHttp10,
            (true, _) => RequestStyle::BrowserKeepAlive,
            (false, 1) => RequestStyle::Http10,
            (false, n) if done + 1 >= n => RequestStyle::LastOnConnection,
            (false, _) => RequestStyle::KeepAlive,
        }
    }

    /// The connection may carry another request after this one.
    pub fn keeps_alive(self) -> bool {
        matches!(
            self,
            RequestStyle::KeepAlive | RequestStyle::BrowserKeepAlive
        )
    }
}

/// What a 1999 browser sent besides the request line and Host: with them a request is about
/// 200 bytes, which a 33.6k upstream takes ~50 ms to carry.
pub const BROWSER_HEADERS: &[u8] =
    b"Accept: image/gif, image/x-xbitmap, image/jpeg, image/pjpeg, */*\r\n\
Accept-Language: en-us\r\n\
User-Agent: Mozilla/4.0 (compatible; MSIE 5.0; Windows 98; DigExt)\r\n";

/// Writes the request head `GET {path} ...` for `host` in `style` into `out` (cleared first).
/// `path` is the request target as sent (origin form, starting with `/`).
pub fn encode_request(out: &mut Vec<u8>, path: &[u8], host: &str, style: RequestStyle) {
    out.clear();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path);
    out.extend_from_slice(match style {
        RequestStyle::Http10 | RequestStyle::BrowserHttp10 => b" HTTP/1.0\r\nHost: ",
        _ => b" HTTP/1.1\r\nHost: ",
    });
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    match style {
        RequestStyle::Http10 | RequestStyle::KeepAlive => {}
        RequestStyle::LastOnConnection => out.extend_from_slice(b"Connection: close\r\n"),
        RequestStyle::BrowserHttp10 | RequestStyle::BrowserKeepAlive => {
            out.extend_from_slice(BROWSER_HEADERS)
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(path: &str, style: RequestStyle) -> String {
        let mut out = b"left over from before".to_vec();
        encode_request(&mut out, path.as_bytes(), "127.0.0.1:8080", style);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_style_frames_its_request() {
        assert_eq!(
            encoded("/dir00001/class1_3", RequestStyle::Http10),
            "GET /dir00001/class1_3 HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
        assert_eq!(
            encoded("/a", RequestStyle::KeepAlive),
            "GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
        assert_eq!(
            encoded("/a", RequestStyle::LastOnConnection),
            "GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
        let browser = encoded("/index.html", RequestStyle::BrowserHttp10);
        assert!(browser.starts_with("GET /index.html HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nAccept: "));
        assert!(browser.ends_with("DigExt)\r\n\r\n"));
        // A 1999 browser's request is about 200 bytes: what its upload is paced on.
        assert!((190..=230).contains(&browser.len()), "{}", browser.len());
        let kept = encoded("/index.html", RequestStyle::BrowserKeepAlive);
        assert!(kept.starts_with("GET /index.html HTTP/1.1\r\n"));
    }

    #[test]
    fn the_style_follows_the_requests_left_on_the_connection() {
        use RequestStyle::*;
        assert_eq!(RequestStyle::for_request(false, 1, 0), Http10);
        assert_eq!(RequestStyle::for_request(false, 3, 0), KeepAlive);
        assert_eq!(RequestStyle::for_request(false, 3, 1), KeepAlive);
        assert_eq!(RequestStyle::for_request(false, 3, 2), LastOnConnection);
        assert_eq!(RequestStyle::for_request(true, 1, 0), BrowserHttp10);
        assert_eq!(
            RequestStyle::for_request(true, u32::MAX, 7),
            BrowserKeepAlive
        );
        assert!(KeepAlive.keeps_alive() && BrowserKeepAlive.keeps_alive());
        assert!(!Http10.keeps_alive() && !LastOnConnection.keeps_alive());
    }
}
