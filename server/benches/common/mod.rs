//! What the server's benches share: the requests they time and the site they are served from.

use afterburner::reftab;
use afterburner::site::Site;

/// wrk's request on a kept-alive connection.
pub const WRK_KEEPALIVE: &[u8] = b"GET /dir00003/class1_4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
/// A browser's request: a query and the usual headers, kept alive.
pub const BROWSER_LIKE: &[u8] = b"GET /dir00007/class2_9?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";
/// An image under a reftab rule, linked from another site: served the rule's alternate.
pub const HOTLINKED_IMAGE: &[u8] =
    b"GET /img/logo.gif HTTP/1.0\r\nReferer: http://www.elsewhere.net/page.html\r\n\r\n";

/// The benches' site: 360 files of 100 to 900 bytes in 10 SPECweb96-named directories, two
/// images and one reftab rule. The directory must live as long as the site.
pub fn bench_site() -> (tempfile::TempDir, Site) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for d in 0..10 {
        let sub = dir.path().join(format!("dir{d:05}"));
        std::fs::create_dir_all(&sub).unwrap();
        for c in 0..4 {
            for k in 1..=9 {
                std::fs::write(sub.join(format!("class{c}_{k}")), vec![b'x'; 100 * k]).unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.path().join("img")).unwrap();
    std::fs::write(dir.path().join("img/logo.gif"), b"GIF89a").unwrap();
    std::fs::write(dir.path().join("img/stolen.gif"), b"GIF89a").unwrap();
    let rules = reftab::parse(
        "/img/*.gif example.com,.example.org /img/stolen.gif",
        std::path::Path::new("bench.reftab"),
    )
    .unwrap();
    let site = Site::load(dir.path(), 1 << 30, rules).unwrap();
    (dir, site)
}
