//! Opens a flow with every frame, as `tgw-perf run --profile new-flows`
//! does, for callgrind's instructions per new flow (docs/working.md):
//!
//!   cargo build --release -p dataplane --example pipeline_newflows
//!   valgrind --tool=callgrind target/release/examples/pipeline_newflows new-flows [FRAMES [RULES]]
//!
//! `new-flows [FRAMES [RULES]]`: see [`new_flows`]; `new-flows-out
//! [FRAMES]`: each from a tenant host's new port, through the tenant's
//! source NAT pool. Apart from `pipeline_profile` so that neither
//! program's inlining moves the other's counts.

#[path = "../benches/scenario/mod.rs"]
mod scenario;

use dataplane::conntrack::Timeouts;
use dataplane::firewall::{Action, Direction, FirewallSpec, PortRange, ProtoMatch, RuleSpec};
use dataplane::flow::Prefetch;
use dataplane::pipeline::{Hint, Pipeline};
use dataplane::ratelimit::TokenBucket;
use dataplane::steer::Steering;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use scenario::{
    nat_frames, nat_tables, nat_tables_with, snat_frame, snat_tables, SNAT_INNER_IP, TENANTS,
};

fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "new-flows".into());
    let arg = |i| std::env::args().nth(i).unwrap_or_default();
    let frames = arg(2).parse().unwrap_or(NEW_FLOWS_FRAMES);
    match which.as_str() {
        "new-flows-out" => new_flows(frames, Way::Out),
        _ => new_flows(frames, Way::In(arg(3).parse().unwrap_or(0))),
    }
}

/// Frames `new-flows` sends after its warm-up, unless told.
const NEW_FLOWS_FRAMES: u64 = 131_072;
/// The flow table of `new-flows`, as `tgw-perf run --profile new-flows
/// --flows 65536` configures it (capacity, quota and unreplied quota).
const NEW_FLOWS_TABLE: usize = 65_536;
/// Frames in one burst, as the worker's.
const BURST: usize = 32;

/// The worker's loop over the `new-flows` profile: bursts of 32 frames,
/// each from a client never seen before to the elastic IP (stamped as
/// tgw-perf's generator does), staged then processed, and a sweep every
/// two bursts (the worker sweeps at each TX drain, every 100 µs: 69
/// frames at 0.69 M frames/s). The clock ticks once a frame and 16,384
/// times a "second": the first half of the table takes flows of 120 s
/// that outlive the run, every later one lives a second, so the table
/// holds about three quarters of its capacity and the sweep recycles
/// them, as in the daemon's steady state. A warm-up of one table's worth
/// of frames reaches it; the per-frame figure is the difference of two
/// runs with different `frames` divided by theirs.
///
/// With `rules` > 0 the tenant's firewall has that many rules and denies
/// by default: `rules - 1` that the frames do not match (UDP to other
/// ports, inbound and outbound in turn), then the one that lets them in,
/// so a new flow walks them all.
///
/// [`Way::Out`] sends instead, in GRE from tenant 0's host, a datagram
/// from one of 254 of its hosts (10.0.0.1 up) and a port none of them
/// used before, to 8.8.8.8 through the default route: each opens a
/// flow through the tenant's pool (`snat_tables`), and every flow lives
/// a second (UDP's timeout, here 1 s: an outbound flow is answered
/// from the start).
fn new_flows(frames: u64, way: Way) {
    const HZ: u64 = 16_384;
    let t = match way {
        Way::In(0) => nat_tables(),
        Way::In(rules) => nat_tables_with(firewall(rules)),
        Way::Out => snat_tables(),
    };
    let counters = WorkerCounters::new(TENANTS as usize);
    let timeouts = Timeouts {
        unreplied: 1,
        udp: if way == Way::Out { 1 } else { 120 },
        ..Timeouts::default()
    };
    let table = NEW_FLOWS_TABLE as u64;
    let mut pipeline = Pipeline::new(TokenBucket::new(1000, 50, HZ), 0)
        .with_flows(NEW_FLOWS_TABLE, timeouts, HZ)
        .expect("flow table")
        .with_quota(table)
        .with_unreplied(table)
        .with_tenants(TENANTS as usize)
        .with_fragments(0x5eed, TENANTS as usize)
        .with_steering(Steering::new(0, 1).expect("one worker"))
        .with_neighbours(&t.neighbours)
        .with_snat(&t.pools);
    let (template, port, out) = match way {
        Way::In(_) => (nat_frames(1).remove(0), 0, 1),
        Way::Out => (snat_frame(), 1, 0),
    };
    let mut burst: Vec<VecFrame> = (0..BURST).map(|_| VecFrame::new(&template, port)).collect();
    let mut stamped = template.clone();
    let (mut forwarded, mut i, mut other) = (0u64, 0u64, None);
    let total = table + frames;
    while i < total {
        for frame in &mut burst {
            match way {
                Way::In(_) => stamp(&mut stamped, i),
                Way::Out => stamp_host(&mut stamped, i),
            }
            frame.refill(&stamped);
            i += 1;
        }
        let mut hints = [Hint::default(); BURST];
        let datas = burst.iter().map(|f| f.data());
        pipeline.stage_public(&t, port, datas, &NoPrefetch, i, &mut hints);
        for (frame, hint) in burst.iter_mut().zip(&hints) {
            match pipeline.process_staged(&t, &counters, frame, i, hint) {
                Verdict::Forward(p) if p == out => forwarded += 1,
                v => other = Some(v),
            }
        }
        if i % (2 * BURST as u64) == 0 {
            pipeline.sweep(&t, &counters, i);
        }
    }
    println!(
        "new-flows: {forwarded} of {i} frames forwarded, {} flows live; last other verdict {other:?}",
        pipeline.flows(),
    );
}

/// Which way `new-flows`' flows are opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the Internet to the elastic IP, through this many firewall
    /// rules (0: none, default allow).
    In(u32),
    /// From tenant 0's hosts, through its source NAT pool.
    Out,
}

/// Host `i % 254` of tenant 0 (10.0.0.1 up) and a port of its own into a
/// [`snat_frame`], with the inner IPv4 checksum.
fn stamp_host(frame: &mut [u8], i: u64) {
    const INNER: usize = SNAT_INNER_IP;
    let src = 0x0a00_0001 + (i % 254) as u32;
    let port = 1024 + (i / 254 % 64_000) as u16;
    frame[INNER + 12..INNER + 16].copy_from_slice(&src.to_be_bytes());
    frame[INNER + 20..INNER + 22].copy_from_slice(&port.to_be_bytes());
    ipv4_checksum(&mut frame[INNER..INNER + 20]);
}

/// Writes the checksum of the IPv4 header `h`.
fn ipv4_checksum(h: &mut [u8]) {
    h[10..12].fill(0);
    let sum = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Client `i`'s address (1.2.0.1 up) and port into a `nat_frames` frame,
/// with its IPv4 checksum (the UDP one is left: tgw does not check it).
/// The clients start past 1.1.0.0/16, which holds the public port's
/// address (1.1.1.1/24): those of the Internet are rarely the gateway's
/// neighbours.
fn stamp(frame: &mut [u8], i: u64) {
    let src = 0x0102_0001 + (i % 0x00fd_ffff) as u32;
    let port = 1024 + (i / 0x00fd_ffff) as u16;
    frame[26..30].copy_from_slice(&src.to_be_bytes());
    frame[34..36].copy_from_slice(&port.to_be_bytes());
    ipv4_checksum(&mut frame[14..34]);
}

/// A prefetch that does nothing: the worker's is an instruction that
/// retires at once, which callgrind would not see either.
struct NoPrefetch;

impl Prefetch for NoPrefetch {
    const INSTRUCTION: bool = true;
    fn prefetch<T>(&self, _: &T) {}
}

/// `rules` rules of which only the last lets the `nat_frames` datagrams
/// (UDP to port 5001) in.
fn firewall(rules: u32) -> FirewallSpec {
    let udp_to = |port: u16| ProtoMatch::Udp {
        sport: PortRange::ANY,
        dport: PortRange::new(port, port).expect("a port"),
    };
    let mut spec = FirewallSpec {
        rules: (1..rules)
            .map(|i| {
                let dir = if i % 2 == 0 {
                    Direction::In
                } else {
                    Direction::Out
                };
                RuleSpec::new(dir, Action::Deny, udp_to(10_000 + i as u16))
            })
            .collect(),
        default_in: Action::Deny,
        default_out: Action::Allow,
    };
    spec.rules
        .push(RuleSpec::new(Direction::In, Action::Allow, udp_to(5001)));
    spec
}
