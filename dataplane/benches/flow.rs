//! Flow table benchmarks: lookups of existing keys (either direction), one
//! at a time and in bulks of 32, in tables of 1k and 1M flows holding a
//! 64-byte value each; and insert + remove churn at 80 % fill.
//!
//! `cargo bench -p dataplane --bench flow -- --warm-up-time 1 --measurement-time 3`
//!
//! Throughput is in lookups (elements) per second. `tgw-perf flow` runs
//! the same lookups against DPDK's `rte_hash` in one process.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flow::testgen::{nat_flows, SplitMix64};
use dataplane::flow::{FlowKey, FlowTable, Lookup, BULK_MAX};

/// Queries per measured iteration.
const BATCH: usize = 1 << 16;

type Value = [u64; 8];

fn table(n: usize) -> (FlowTable<Value>, Vec<(FlowKey, FlowKey)>) {
    let flows = nat_flows(1, n, 1000);
    let mut t = FlowTable::with_seed(n, 1).expect("capacity");
    for (i, &(f, r)) in flows.iter().enumerate() {
        t.insert(f, r, u64::MAX, [i as u64; 8]).expect("room");
    }
    (t, flows)
}

fn queries(flows: &[(FlowKey, FlowKey)], seed: u64) -> Vec<FlowKey> {
    let mut rng = SplitMix64::new(seed);
    (0..BATCH)
        .map(|_| {
            let (f, r) = flows[rng.below(flows.len() as u64) as usize];
            if rng.below(2) == 0 {
                f
            } else {
                r
            }
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    for (name, n) in [("1k", 1_000usize), ("1m", 1_000_000)] {
        let (t, flows) = table(n);
        eprintln!(
            "flow_{name}: {:.1} bytes/flow own, {:.1} with the 64-byte values; {:?}",
            t.overhead_bytes() as f64 / n as f64,
            t.memory_bytes() as f64 / n as f64,
            t.stats()
        );
        let q = queries(&flows, 2);
        let mut g = c.benchmark_group(format!("flow_{name}"));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function("lookup_hit", |b| {
            b.iter(|| {
                let mut acc = 0usize;
                for k in &q {
                    if let Lookup::Hit(id, _) = t.lookup(k, 0) {
                        acc = acc.wrapping_add(id.index());
                    }
                }
                black_box(acc)
            })
        });
        g.bench_function("lookup_bulk32_hit", |b| {
            let mut out = [Lookup::Miss; BULK_MAX];
            b.iter(|| {
                let mut acc = 0usize;
                for k in q.chunks(BULK_MAX) {
                    t.lookup_bulk(k, 0, &mut out);
                    for o in &out {
                        if let Lookup::Hit(id, _) = o {
                            acc = acc.wrapping_add(id.index());
                        }
                    }
                }
                black_box(acc)
            })
        });
        g.finish();
    }
}

fn churn(c: &mut Criterion) {
    // 1M capacity at 80 %: remove one flow and insert another, the steady
    // state of a busy gateway.
    let n = 1_000_000;
    let flows = nat_flows(3, n, 1000);
    let live = n * 8 / 10;
    let mut t: FlowTable<Value> = FlowTable::with_seed(n, 3).expect("capacity");
    let mut ids = std::collections::VecDeque::with_capacity(n);
    for &(f, r) in &flows[..live] {
        ids.push_back(t.insert(f, r, u64::MAX, [0; 8]).expect("room"));
    }
    let mut next = live;
    let mut g = c.benchmark_group("flow_1m_churn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("remove_then_insert_at_80pct", |b| {
        b.iter(|| {
            if let Some(id) = ids.pop_front() {
                black_box(t.remove(id));
            }
            let (f, r) = flows[next % n];
            next += 1;
            // A flow removed long ago comes back: its keys are free.
            if let Ok(id) = t.insert(f, r, u64::MAX, [1; 8]) {
                ids.push_back(id);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, lookups, churn);
criterion_main!(benches);
