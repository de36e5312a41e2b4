//! Every prefix of a valid frame either fails `new_checked` or reads without
//! panicking, at every layer; and a prefix too short for what a header
//! declares fails as `Truncated`, not as anything else.

mod wire_common;

use dataplane::wire::{
    ArpPacket, Error, EtherType, EthernetFrame, GrePacket, IcmpPacket, IpProtocol, Ipv4Packet,
    TcpPacket, UdpPacket,
};
use wire_common::*;

#[test]
fn every_prefix_at_every_offset_reads_without_panic() {
    let mut views = 0u64;
    for frame in corpus() {
        for end in 0..=frame.len() {
            for start in 0..=end {
                let slice = &frame[start..end];
                views = views.wrapping_add(touch_all(slice));
                let mut copy = slice.to_vec();
                mutate_all(&mut copy);
            }
        }
    }
    std::hint::black_box(views);
}

/// The full length each layer of `frame` declares, as (offset, length, kind).
fn layers(frame: &[u8]) -> Vec<(usize, usize, &'static str)> {
    let mut out = Vec::new();
    let eth = EthernetFrame::new_checked(frame).unwrap();
    out.push((0, eth.header_len(), "ethernet"));
    let off = eth.payload_offset();
    if eth.ethertype() == EtherType::ARP {
        out.push((off, 28, "arp"));
        return out;
    }
    ip_layers(&frame[off..], off, &mut out);
    out
}

fn ip_layers(buf: &[u8], off: usize, out: &mut Vec<(usize, usize, &'static str)>) {
    let ip = Ipv4Packet::new_checked(buf).unwrap();
    out.push((off, usize::from(ip.total_len()), "ipv4"));
    let l4 = off + ip.header_len();
    match ip.protocol() {
        IpProtocol::TCP => {
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            out.push((l4, t.header_len(), "tcp"));
        }
        IpProtocol::UDP => {
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            out.push((l4, usize::from(u.len()), "udp"));
        }
        IpProtocol::ICMP => out.push((l4, 8, "icmp")),
        IpProtocol::GRE => {
            let g = GrePacket::new_checked(ip.payload()).unwrap();
            out.push((l4, g.header_len(), "gre"));
            let inner = l4 + g.header_len();
            if g.protocol_type() == EtherType::IPV4 {
                ip_layers(g.payload(), inner, out);
            } else {
                let e = EthernetFrame::new_checked(g.payload()).unwrap();
                out.push((inner, e.header_len(), "ethernet"));
                ip_layers(e.payload(), inner + e.header_len(), out);
            }
        }
        _ => {}
    }
}

fn check(kind: &str, buf: &[u8]) -> Result<(), Error> {
    match kind {
        "ethernet" => EthernetFrame::new_checked(buf).map(drop),
        "arp" => ArpPacket::new_checked(buf).map(drop),
        "ipv4" => Ipv4Packet::new_checked(buf).map(drop),
        "tcp" => TcpPacket::new_checked(buf).map(drop),
        "udp" => UdpPacket::new_checked(buf).map(drop),
        "icmp" => IcmpPacket::new_checked(buf).map(drop),
        "gre" => GrePacket::new_checked(buf).map(drop),
        _ => unreachable!(),
    }
}

#[test]
fn short_prefixes_are_truncated() {
    let mut checked = 0;
    for frame in corpus() {
        for (off, len, kind) in layers(&frame) {
            assert!(
                check(kind, &frame[off..off + len]).is_ok(),
                "{kind} at {off}"
            );
            for cut in 0..len {
                assert_eq!(
                    check(kind, &frame[off..off + cut]),
                    Err(Error::Truncated),
                    "{kind} at {off}, {cut} of {len} bytes"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
}
