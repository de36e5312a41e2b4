//! The offload manager's cost: requests a second it takes through a
//! worker's queue, builds a spec for from the tables and hands to a device
//! that records, and end notices it removes the rules of — the control
//! plane's side of issue 14, on the 1000-tenant scenario's tables.
//!
//!   cargo bench -p dataplane --bench offload

mod scenario;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::offload::{
    macs_of, Candidate, Device, FlowSpec, Installed, Limits, Link, Offloads, Refusal, Request,
};
use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::{VecFrame, Verdict, WorkerCounters};
use etherparse::PacketBuilder;
use scenario::{nat_frames, nat_tables_routed, TENANTS};

/// Flows offered and ended per iteration.
const FLOWS: u32 = 1024;

/// A device that keeps the last spec it was given and counts nothing.
struct Recorder {
    installed: u64,
    last: Option<FlowSpec>,
}

impl Device for Recorder {
    type Rule = u32;

    fn install(&mut self, spec: &FlowSpec) -> Result<Installed<u32>, Refusal> {
        self.installed += 1;
        self.last = Some(spec.clone());
        Ok(Installed::Done(self.installed as u32))
    }

    fn remove(&mut self, _rule: u32) {}

    fn counts(&mut self, _rule: &mut u32) -> Option<(u64, u64)> {
        None
    }
}

/// Tenant 0's VM answering client `i` of the `nat` frames, in gretap
/// from the tenant's host.
fn answer(i: u32) -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0xa, 7], [2, 0x74, 0, 0, 0, 0])
        .ipv4([10, 0, 0, 7], (0x0100_0001 + i).to_be_bytes(), 64)
        .udp(5001, 40000)
        .write(&mut inner, &[0; 18])
        .unwrap();
    let mut gre = vec![0x20, 0, 0x65, 0x58];
    gre.extend_from_slice(&1000u32.to_be_bytes());
    gre.extend_from_slice(&inner);
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0xb, 0xb], [2, 0, 0, 0, 1, 1])
        .ipv4([172, 16, 1, 1], [172, 16, 0, 1], 64)
        .write(&mut f, etherparse::IpNumber(47), &gre)
        .unwrap();
    f
}

/// Real candidates: `FLOWS` clients' flows to the elastic IP, answered
/// (the answer is the first packet the other way: the offer).
fn candidates(t: &dataplane::tables::Tables) -> Vec<Candidate> {
    let link = Arc::new(Link::new(0, 4 * FLOWS as usize, 1));
    let counters = WorkerCounters::new(TENANTS as usize);
    let mut p =
        Pipeline::new(TokenBucket::new(1000, 50, 1_000_000_000), 0).with_offload(link.clone());
    for (i, f) in nat_frames(FLOWS).iter().enumerate() {
        let mut frame = VecFrame::new(f, 0);
        assert_eq!(p.process(t, &counters, &mut frame, 0), Verdict::Forward(1));
        let mut frame = VecFrame::new(&answer(i as u32), 1);
        assert_eq!(p.process(t, &counters, &mut frame, 0), Verdict::Forward(0));
    }
    let out: Vec<Candidate> = std::iter::from_fn(|| link.next_request())
        .map(|r| match r {
            Request::Candidate(c) => c,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(out.len(), FLOWS as usize);
    out
}

fn manager(c: &mut Criterion) {
    let t = nat_tables_routed();
    let offered = candidates(&t);
    let link = Arc::new(Link::new(0, 2 * FLOWS as usize, 2 * FLOWS as usize));
    let limits = Limits {
        flows: FLOWS as usize,
        per_tenant: FLOWS as usize,
        tenants: TENANTS as usize,
        query_interval: u64::MAX,
    };
    let mut m = Offloads::new(vec![link.clone()], limits);
    let mut nic = Recorder {
        installed: 0,
        last: None,
    };
    let mut macs = macs_of(&t);
    // Sanity: every candidate is offloadable.
    for c in &offered {
        assert!(link.request(Request::Candidate(*c)));
    }
    m.tick(0, usize::MAX, &t, &mut macs, &mut nic);
    assert_eq!(m.len(), FLOWS as usize, "{:?}", m.stats());
    m.pull_back_all(&mut nic);
    while link.next_feedback().is_some() {}

    let mut group = c.benchmark_group("offload");
    // A candidate and an end notice per flow.
    group.throughput(Throughput::Elements(2 * u64::from(FLOWS)));
    group.bench_function("manager/requests", |b| {
        b.iter(|| {
            for c in &offered {
                link.request(Request::Candidate(*c));
            }
            m.tick(1, usize::MAX, &t, &mut macs, &mut nic);
            for c in &offered {
                link.request(Request::Ended {
                    worker: 0,
                    id: c.id,
                });
            }
            m.tick(2, usize::MAX, &t, &mut macs, &mut nic);
            m.len()
        })
    });
    // The spec alone: what a candidate costs before the device.
    group.throughput(Throughput::Elements(u64::from(FLOWS)));
    group.bench_function("spec/build", |b| {
        b.iter(|| {
            let mut n = 0;
            for c in &offered {
                n += FlowSpec::build(c, &t, &mut macs).map_or(0, |s| s.legs.len());
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, manager);
criterion_main!(benches);
