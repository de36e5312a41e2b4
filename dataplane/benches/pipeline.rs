//! The worker's own cost per frame, I/O excluded: the pipeline over frames
//! of the perf profiles (1k tenants), on `VecFrame`s refilled in place.
//!
//!   cargo bench -p dataplane --bench pipeline

mod scenario;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use scenario::{decap_frames, encap_frames, tables, TENANTS};

fn bench(c: &mut Criterion) {
    let t = tables();
    let counters = WorkerCounters::new(TENANTS as usize);
    for (name, frames, port, out) in [
        ("encap", encap_frames(), 0u16, 1u16),
        ("decap", decap_frames(), 1, 0),
    ] {
        let mut pipeline = Pipeline::new(TokenBucket::new(1000, 50, 2_000_000_000), 0);
        let mut frame = VecFrame::new(&frames[0], port);
        let mut group = c.benchmark_group("pipeline");
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(format!("{name}/1k-tenants"), |b| {
            b.iter_batched_ref(
                || (),
                |_| {
                    for f in &frames {
                        frame.refill(f);
                        let v = pipeline.process(&t, &counters, &mut frame, 0);
                        assert_eq!(v, Verdict::Forward(out));
                    }
                    frame.len()
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
