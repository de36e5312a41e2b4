//! The worker's own cost per frame, I/O excluded: the pipeline over frames
//! of the perf profiles (1k tenants), on `VecFrame`s refilled in place;
//! and the flow-hit fast path over bursts of 32 staged as the daemon's
//! workers stage them, with 1k and 1M flows visited in random order.
//!
//!   cargo bench -p dataplane --bench pipeline

mod scenario;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::conntrack::Timeouts;
use dataplane::flow::{TouchLoads, BULK_MAX};
use dataplane::pipeline::{Hint, Pipeline};
use dataplane::ratelimit::TokenBucket;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use scenario::{decap_frames, encap_frames, nat_frames, nat_tables, tables, TENANTS};

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

/// Flow hits to an elastic IP, DNAT and gretap encapsulation, in staged
/// bursts: the fast path's cost per frame, for the issue's "cycles per
/// packet in the worker" without the memif copies.
fn flow_hits(c: &mut Criterion) {
    let t = nat_tables();
    let counters = WorkerCounters::new(TENANTS as usize);
    for flows in [1_000u32, 1_000_000] {
        let mut frames = nat_frames(flows);
        let mut pipeline = Pipeline::new(TokenBucket::new(1000, 50, 2_000_000_000), 0)
            .with_flows(flows as usize, Timeouts::default(), 1_000_000_000)
            .expect("flow table");
        let mut frame = VecFrame::new(&frames[0], 0);
        for f in &frames {
            frame.refill(f);
            assert_eq!(
                pipeline.process(&t, &counters, &mut frame, 0),
                Verdict::Forward(1)
            );
        }
        // Visited in random order, as a million clients would arrive: in
        // creation order the entries would be read one after another. The
        // frames themselves lie one after another, as in an RX ring, so
        // that fetching them is not what is measured.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for i in (1..frames.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            frames.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let len = frames[0].len();
        let ring: Vec<u8> = frames.concat();
        drop(frames);
        let bursts: Vec<&[u8]> = ring.chunks_exact(BULK_MAX * len).collect();
        let mut next = 0;
        let mut group = c.benchmark_group("pipeline");
        group.throughput(Throughput::Elements(BULK_MAX as u64));
        group.bench_function(format!("flow-hits/{flows}-flows"), |b| {
            b.iter(|| {
                let burst = bursts[next];
                next = (next + 1) % bursts.len();
                let mut hints = [Hint::default(); BULK_MAX];
                let data = burst.chunks_exact(len);
                pipeline.stage_public(&t, 0, data, &TouchLoads, 0, &mut hints);
                for (f, hint) in burst.chunks_exact(len).zip(&hints) {
                    frame.refill(f);
                    let v = pipeline.process_staged(&t, &counters, &mut frame, 0, hint);
                    assert_eq!(v, Verdict::Forward(1));
                }
                frame.len()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench, flow_hits);
criterion_main!(benches);
