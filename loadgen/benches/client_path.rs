//! Criterion bench of a client's per-request work outside the kernel: encode the request head,
//! then frame its reply (head parsed straight from the read buffer, body handed on), for a
//! SPECweb96 request on a fresh connection and a kept-alive one, with the reply arriving in one
//! read and split over three.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use loadgen::engine::client::request::{encode_request, RequestStyle};
use loadgen::engine::client::response::{Framed, ResponseReader};

/// A 1 KiB reply as afterburner sends it.
fn reply() -> Vec<u8> {
    let mut reply = b"HTTP/1.1 200 OK\r\nServer: afterburner\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n".to_vec();
    reply.extend(vec![b'x'; 1024]);
    reply
}

/// Frames `pieces` as consecutive reads; returns the body bytes seen.
fn frame(pieces: &[&[u8]]) -> u64 {
    let mut reader = ResponseReader::new();
    let mut body = 0;
    for piece in pieces {
        let mut input = *piece;
        loop {
            match reader.next(&mut input).expect("a valid reply") {
                Framed::NeedMore => break,
                Framed::Body(bytes) => body += bytes.len() as u64,
                Framed::Complete => return body,
            }
        }
    }
    body
}

fn client_path(c: &mut Criterion) {
    let reply = reply();
    let mut out = Vec::with_capacity(256);
    let mut group = c.benchmark_group("client_path");
    group.throughput(Throughput::Elements(1));
    for (name, style) in [
        ("http10_new_connection", RequestStyle::Http10),
        ("keepalive", RequestStyle::KeepAlive),
    ] {
        group.bench_function(format!("encode+frame/{name}/one_read"), |b| {
            b.iter(|| {
                encode_request(
                    &mut out,
                    black_box(b"/dir00042/class1_3"),
                    black_box("127.0.0.1:8080"),
                    style,
                );
                black_box(frame(&[black_box(&reply)]))
            })
        });
    }
    let (head_part, rest) = reply.split_at(40);
    let (middle, tail) = rest.split_at(500);
    group.bench_function("frame/three_reads", |b| {
        b.iter(|| black_box(frame(&[head_part, middle, tail])))
    });
    group.bench_function("encode/browser", |b| {
        b.iter(|| {
            encode_request(
                &mut out,
                black_box(b"/index.html"),
                black_box("198.18.0.1:8080"),
                RequestStyle::BrowserKeepAlive,
            );
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, client_path);
criterion_main!(benches);
