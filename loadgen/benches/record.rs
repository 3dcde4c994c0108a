//! Criterion bench of recording one reply: its latencies into the class's HdrHistograms (connect,
//! first byte, total) and the timeline interval's figures, as a worker does for every reply in
//! the measured window.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use loadgen::record::{ClassRecorder, IntervalFigures};

fn record(c: &mut Criterion) {
    let mut class = ClassRecorder::new();
    let mut interval = IntervalFigures::new();
    // Latencies spread over four decades, as a loaded server's are.
    let latencies_us: Vec<u64> = (0..1024u64).map(|i| 50 + (i * i * 37) % 500_000).collect();
    let mut next = 0;
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("reply", |b| {
        b.iter(|| {
            let total_us = latencies_us[next % latencies_us.len()];
            next += 1;
            class.record(
                black_box(1024),
                black_box(Some(total_us / 4)),
                black_box(Some(total_us / 2)),
                black_box(total_us),
            );
            interval.record(black_box(1024), black_box(total_us));
        })
    });
    group.finish();
    black_box((class.ops, interval.ops));
}

criterion_group!(benches, record);
criterion_main!(benches);
