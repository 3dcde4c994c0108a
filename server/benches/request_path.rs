//! Criterion bench of the per-request work: parse the head, normalise and route the target,
//! select the precomputed response (with and without a Referer-table check).

use std::hint::black_box;

use afterburner::http::{parse_request, Parsed};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;
use common::{bench_site, BROWSER_LIKE, HOTLINKED_IMAGE, WRK_KEEPALIVE};

fn request_path(c: &mut Criterion) {
    let (_dir, site) = bench_site();
    let mut scratch = Vec::with_capacity(512);
    let requests: [(&str, &[u8]); 3] = [
        ("wrk_keepalive", WRK_KEEPALIVE),
        ("browser_like", BROWSER_LIKE),
        ("hotlinked_image", HOTLINKED_IMAGE),
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
