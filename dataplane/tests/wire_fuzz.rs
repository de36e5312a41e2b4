//! A bounded, deterministic fuzz run of every parser: random bytes and
//! mutated valid frames through every `new_checked`, every accessor, every
//! `Repr::parse`, and the content-dependent writers, asserting no panic.
//!
//! It runs in the ordinary test suite (a couple of seconds in debug); a
//! longer run only needs a larger `ITERATIONS` or another `SEED`.

mod wire_common;

use dataplane::wire::{
    EtherType, EthernetFrame, GrePacket, IcmpPacket, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};
use wire_common::*;

const SEED: u64 = 0x7467_772d_7769_7265; // "tgw-wire"
const ITERATIONS: usize = 200_000;

/// Values that sit on the edges of length and flag fields.
const INTERESTING: [u8; 12] = [
    0x00, 0x01, 0x04, 0x05, 0x0f, 0x10, 0x45, 0x4f, 0x7f, 0x80, 0xf0, 0xff,
];

/// Offsets of the length-bearing fields of the corpus frames, so that
/// mutations land where parsers make decisions, not only in payloads.
const HOT: [usize; 16] = [
    12, 13, 14, 15, 16, 17, 18, 19, 24, 26, 27, 46, 47, 38, 39, 54,
];

fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        if buf.is_empty() {
            buf.push(rng.u8());
            continue;
        }
        let at = if rng.bool() {
            HOT[rng.below(HOT.len())] % buf.len()
        } else {
            rng.below(buf.len())
        };
        match rng.below(9) {
            0 => buf[at] ^= 1 << rng.below(8),
            1 => buf[at] = rng.u8(),
            2 => buf[at] = INTERESTING[rng.below(INTERESTING.len())],
            3 => {
                let n = rng.below(buf.len() + 1);
                buf.truncate(n);
            }
            4 => {
                let n = rng.below(32);
                buf.extend((0..n).map(|_| rng.u8()));
            }
            5 => {
                buf.remove(at);
            }
            6 => buf.insert(at, rng.u8()),
            7 => {
                // A 16-bit length field set near the buffer's own length.
                let v = (buf.len() as i64 + rng.below(9) as i64 - 4).clamp(0, 0xffff) as u16;
                if at + 1 < buf.len() {
                    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
            _ => {
                let v = rng.u16();
                if at + 1 < buf.len() {
                    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

/// Random bytes behind a plausible Ethernet + IPv4 start, so that random
/// input also reaches the transport parsers.
fn plausible(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(120);
    let mut v = rng.bytes(14 + len);
    v[12..14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
    if v.len() > 15 {
        v[14] = 0x40 | (5 + rng.below(3) as u8);
        let total = (v.len() - 14) as u16;
        if v.len() > 18 {
            v[16..18].copy_from_slice(&total.to_be_bytes());
        }
        if v.len() > 24 {
            v[23] = [1u8, 6, 17, 47][rng.below(4)];
        }
    }
    v
}

#[derive(Default, Debug)]
struct Reached {
    ethernet: usize,
    ipv4: usize,
    tcp: usize,
    udp: usize,
    icmp: usize,
    gre: usize,
    inner_ipv4: usize,
}

fn walk(frame: &[u8], r: &mut Reached) {
    let Ok(e) = EthernetFrame::new_checked(frame) else {
        return;
    };
    r.ethernet += 1;
    if e.ethertype() != EtherType::IPV4 {
        return;
    }
    let Ok(ip) = Ipv4Packet::new_checked(e.payload()) else {
        return;
    };
    r.ipv4 += 1;
    match ip.protocol() {
        IpProtocol::TCP => r.tcp += usize::from(TcpPacket::new_checked(ip.payload()).is_ok()),
        IpProtocol::UDP => r.udp += usize::from(UdpPacket::new_checked(ip.payload()).is_ok()),
        IpProtocol::ICMP => r.icmp += usize::from(IcmpPacket::new_checked(ip.payload()).is_ok()),
        IpProtocol::GRE => {
            if let Ok(g) = GrePacket::new_checked(ip.payload()) {
                r.gre += 1;
                let inner = if g.protocol_type() == EtherType::IPV4 {
                    Some(g.payload())
                } else {
                    EthernetFrame::new_checked(g.payload())
                        .ok()
                        .filter(|e| e.ethertype() == EtherType::IPV4)
                        .map(|e| &g.payload()[e.payload_offset()..])
                };
                if inner.is_some_and(|b| Ipv4Packet::new_checked(b).is_ok()) {
                    r.inner_ipv4 += 1;
                }
            }
        }
        _ => {}
    }
}

#[test]
fn fuzz_all_parsers() {
    let corpus = corpus();
    let mut rng = Rng::new(SEED);
    let mut reached = Reached::default();
    let mut digest = 0u64;
    let mut buf = Vec::with_capacity(512);
    for i in 0..ITERATIONS {
        buf.clear();
        match i % 8 {
            0 => {
                let n = rng.below(160);
                buf.extend((0..n).map(|_| rng.u8()));
            }
            1 => buf.extend_from_slice(&plausible(&mut rng)),
            _ => {
                buf.extend_from_slice(&corpus[rng.below(corpus.len())]);
                mutate(&mut rng, &mut buf);
            }
        }
        walk(&buf, &mut reached);
        digest = digest.rotate_left(1) ^ touch_all(&buf);
        // Every layer on its own too, from a random start.
        let start = rng.below(buf.len() + 1);
        digest ^= touch_all(&buf[start..]);
        // The writers on half the frames: they cost more than the readers
        // and share their bounds checks.
        if i % 2 == 0 {
            mutate_all(&mut buf);
            digest ^= touch_all(&buf);
        }
    }
    std::hint::black_box(digest);
    println!("{ITERATIONS} frames, reached {reached:?}");
    // The run is only worth something if it gets past the outer headers.
    assert!(reached.ethernet > ITERATIONS / 2, "{reached:?}");
    assert!(reached.ipv4 > ITERATIONS / 10, "{reached:?}");
    for (name, n) in [
        ("tcp", reached.tcp),
        ("udp", reached.udp),
        ("icmp", reached.icmp),
        ("gre", reached.gre),
        ("inner ipv4", reached.inner_ipv4),
    ] {
        assert!(
            n > ITERATIONS / 100,
            "{name} reached only {n} times: {reached:?}"
        );
    }
}
