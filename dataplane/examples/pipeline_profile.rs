//! Runs the pipeline over the frames of the bench for a fixed count, for
//! instruction-level profiles that wall-clock benches cannot give on a VM
//! without hardware counters:
//!
//!   cargo build --release -p dataplane --example pipeline_profile
//!   valgrind --tool=callgrind --cache-sim=yes target/release/examples/pipeline_profile decap
//!   callgrind_annotate callgrind.out.<pid>

use std::net::Ipv4Addr;

use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::tables::{PortSpec, Role, Spec, Tables, Target, TenantSpec};
use dataplane::tenant::Encap;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use etherparse::PacketBuilder;

const TENANTS: u32 = 1000;

fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

fn public(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(2, 2, (i / 250) as u8, (1 + i % 250) as u8)
}

fn tables() -> Tables {
    let vm = [2, 0, 0, 0, 0xa, 7];
    let spec = Spec {
        ports: vec![
            PortSpec {
                id: 0,
                role: Role::Public,
                mac: [2, 0, 0, 0, 0, 1],
                addrs: vec![(Ipv4Addr::new(1, 1, 1, 1), 24)],
                mtu: 1500,
            },
            PortSpec {
                id: 1,
                role: Role::Underlay,
                mac: [2, 0, 0, 0, 1, 1],
                addrs: vec![(Ipv4Addr::new(172, 16, 0, 1), 16)],
                mtu: 1500,
            },
        ],
        tenants: (0..TENANTS)
            .map(|i| TenantSpec {
                name: format!("t{i}"),
                key: 1000 + i,
                encap: Encap::Gretap,
                hosts: vec![host(i)],
                prefixes: vec![(Ipv4Addr::new(10, 0, 0, 0), 24), (public(i), 32)],
                mac: [2, 0x74, 0, 0, (i >> 8) as u8, i as u8],
                routes: vec![
                    (Ipv4Addr::new(10, 0, 0, 0), 24, Target::Host(host(i))),
                    (public(i), 32, Target::Host(host(i))),
                    (Ipv4Addr::UNSPECIFIED, 0, Target::Public),
                ],
            })
            .collect(),
        routes: vec![],
        neighbours: (0..TENANTS)
            .map(|i| (1, host(i), [2, 0, 0, 0, 0xb, 0xb]))
            .chain([(0, Ipv4Addr::new(1, 1, 1, 7), [2, 0, 0, 0, 7, 7])])
            .collect(),
        inner_neighbours: (0..TENANTS)
            .flat_map(|i| {
                [
                    (1000 + i, Ipv4Addr::new(10, 0, 0, 7), vm),
                    (1000 + i, public(i), vm),
                ]
            })
            .collect(),
        ingress: (0..TENANTS).map(|i| (public(i), 32, 1000 + i)).collect(),
        mss_clamp: true,
    };
    Tables::build(&spec, 1).expect("tables")
}

fn encap_frames() -> Vec<Vec<u8>> {
    (0..TENANTS)
        .map(|i| {
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 7, 7], [2, 0, 0, 0, 0, 1])
                .ipv4([1, 1, 1, 7], public(i).octets(), 64)
                .udp(40000, 5001)
                .write(&mut f, &[0; 18])
                .unwrap();
            f
        })
        .collect()
}

fn decap_frames() -> Vec<Vec<u8>> {
    (0..TENANTS)
        .map(|i| {
            let mut inner = Vec::new();
            PacketBuilder::ethernet2(
                [2, 0, 0, 0, 0xa, 7],
                [2, 0x74, 0, 0, (i >> 8) as u8, i as u8],
            )
            .ipv4([10, 0, 0, 7], [1, 1, 1, 7], 64)
            .udp(40000, 5001)
            .write(&mut inner, &[0; 18])
            .unwrap();
            let mut gre = vec![0x20, 0, 0x65, 0x58];
            gre.extend_from_slice(&(1000 + i).to_be_bytes());
            gre.extend_from_slice(&inner);
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0xb, 0xb], [2, 0, 0, 0, 1, 1])
                .ipv4(host(i).octets(), [172, 16, 0, 1], 64)
                .write(&mut f, etherparse::IpNumber(47), &gre)
                .unwrap();
            f
        })
        .collect()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "encap".into());
    let (frames, port, out) = match which.as_str() {
        "decap" => (decap_frames(), 1, 0),
        _ => (encap_frames(), 0, 1),
    };
    let t = tables();
    let counters = WorkerCounters::new(TENANTS as usize);
    let mut pipeline = Pipeline::new(TokenBucket::new(1000, 50, 2_000_000_000), 0);
    let mut frame = VecFrame::new(&frames[0], port);
    let mut forwarded = 0u64;
    for _ in 0..100 {
        for f in &frames {
            frame.refill(f);
            if pipeline.process(&t, &counters, &mut frame, 0) == Verdict::Forward(out) {
                forwarded += 1;
            }
        }
    }
    println!(
        "{which}: {forwarded} of {} frames forwarded, last {} bytes",
        100 * frames.len(),
        frame.len()
    );
}
