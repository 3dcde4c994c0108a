//! Criterion bench of the per-request work: parse the head, normalise and route the target,
//! select the precomputed response (with and without a Referer-table check).

use std::hint::black_box;

use afterburner::http::{parse_request, Parsed};
use afterburner::reftab;
use afterburner::site::Site;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn site() -> (tempfile::TempDir, Site) {
    let dir = tempfile::tempdir().unwrap();
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

fn request_path(c: &mut Criterion) {
    let (_dir, site) = site();
    let mut scratch = Vec::with_capacity(512);
    let requests: [(&str, &[u8]); 3] = [
        (
            "wrk_keepalive",
            b"GET /dir00003/class1_4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        ),
        (
            "browser_like",
            b"GET /dir00007/class2_9?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n",
        ),
        (
            "hotlinked_image",
            b"GET /img/logo.gif HTTP/1.0\r\nReferer: http://www.elsewhere.net/page.html\r\n\r\n",
        ),
    ];
    let mut group = c.benchmark_group("parse_route_select");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in requests {
        group.bench_function(name, |b| {
            b.iter(|| {
                let Parsed::Complete { request, .. } = parse_request(black_box(raw), 8192) else {
                    panic!("bench request must parse");
                };
                let selection = site.select(&request, &mut scratch);
                black_box(selection.resource.body().len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
