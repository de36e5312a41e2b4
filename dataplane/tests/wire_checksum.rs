//! The Internet checksum: the fast sum against etherparse and a naive loop,
//! and RFC 1624 incremental updates against full recomputation.

mod wire_common;

use dataplane::wire::checksum::{
    self, checksum as full, fold, pseudo_header, sum, transport, udp_final, update_addr,
    update_u16, update_u32, Delta,
};
use dataplane::wire::{IpProtocol, Ipv4Addr};
use wire_common::*;

fn naive(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for pair in data.chunks(2) {
        let w = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        s += w;
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn etherparse_sum(data: &[u8]) -> u16 {
    etherparse::checksum::Sum16BitWords::new()
        .add_slice(data)
        .ones_complement()
        .to_be()
}

#[test]
fn full_checksum_matches_references() {
    let mut rng = Rng::new(0xc5);
    let big = rng.bytes(4096);
    for _ in 0..3000 {
        // Random start: the sum must not care about alignment.
        let start = rng.below(64);
        let len = rng.below(1600);
        let data = &big[start..start + len];
        let c = full(data);
        assert_eq!(c, naive(data), "start {start} len {len}");
        assert_eq!(c, etherparse_sum(data), "start {start} len {len}");
    }
    assert_eq!(full(&[]), 0xffff);
    assert_eq!(full(&[0xff; 9000]), naive(&[0xff; 9000]));
}

#[test]
fn pieces_add_up() {
    let mut rng = Rng::new(0xc6);
    for _ in 0..500 {
        let n = rng.below(300);
        let data = rng.bytes(n);
        let cut = rng.below(data.len() / 2 + 1) * 2;
        let (a, b) = data.split_at(cut);
        assert_eq!(!fold(sum(a) + sum(b)), full(&data));
    }
}

#[test]
fn transport_matches_etherparse() {
    let mut rng = Rng::new(0xc7);
    for _ in 0..500 {
        let (src, dst) = (rng.addr(), rng.addr());
        let n = rng.below(200);
        let payload = rng.bytes(n);
        let udp = etherparse::UdpHeader {
            source_port: rng.u16(),
            destination_port: rng.u16(),
            length: (8 + payload.len()) as u16,
            checksum: 0,
        };
        let mut seg = udp.to_bytes().to_vec();
        seg.extend_from_slice(&payload);
        let ours = udp_final(transport(ip(src), ip(dst), IpProtocol::UDP, &seg));
        assert_eq!(
            ours,
            udp.calc_checksum_ipv4_raw(src, dst, &payload).unwrap()
        );
        seg[6..8].copy_from_slice(&ours.to_be_bytes());
        assert!(checksum::verify_transport(
            ip(src),
            ip(dst),
            IpProtocol::UDP,
            &seg
        ));
        // The pseudo-header alone, against a by-hand sum.
        let by_hand = [
            &src[..],
            &dst[..],
            &[0, 17],
            &(seg.len() as u16).to_be_bytes(),
        ]
        .concat();
        assert_eq!(
            fold(pseudo_header(ip(src), ip(dst), IpProtocol::UDP, seg.len())),
            fold(sum(&by_hand))
        );
    }
}

/// Full recomputation over data whose checksum field sits at `at`.
fn recompute(data: &mut [u8], at: usize) -> u16 {
    data[at..at + 2].copy_from_slice(&[0, 0]);
    let c = full(data);
    data[at..at + 2].copy_from_slice(&c.to_be_bytes());
    c
}

#[test]
fn incremental_u16_agrees_with_full() {
    let mut rng = Rng::new(0xc8);
    for _ in 0..20_000 {
        let words = 2 + rng.below(40);
        let mut data = rng.bytes(words * 2);
        let ck_at = rng.below(words) * 2;
        // Keep the data from being all zero: there one's complement has two
        // zeros and the two methods may pick different ones.
        data[if ck_at == 0 { 2 } else { 0 }] |= 1;
        let hc = recompute(&mut data, ck_at);

        let mut field = rng.below(words) * 2;
        if field == ck_at {
            field = (field + 2) % (words * 2);
        }
        let old = u16::from_be_bytes([data[field], data[field + 1]]);
        let new = if rng.below(8) == 0 { old } else { rng.u16() };
        data[field..field + 2].copy_from_slice(&new.to_be_bytes());
        let inc = update_u16(hc, old, new);
        assert_eq!(
            inc,
            recompute(&mut data, ck_at),
            "old {old:#x} new {new:#x}"
        );
    }
}

#[test]
fn incremental_u16_at_odd_offsets_with_swapped_bytes() {
    let mut rng = Rng::new(0xc9);
    for _ in 0..10_000 {
        let mut data = rng.bytes(40);
        data[0] |= 1;
        let hc = recompute(&mut data, 16);
        let at = 1 + rng.below(8) * 2 + 18; // odd, after the checksum
        let old = u16::from_be_bytes([data[at], data[at + 1]]);
        let new = rng.u16();
        data[at..at + 2].copy_from_slice(&new.to_be_bytes());
        let inc = update_u16(hc, old.swap_bytes(), new.swap_bytes());
        assert_eq!(inc, recompute(&mut data, 16));
    }
}

#[test]
fn incremental_u32_and_deltas_agree_with_full() {
    let mut rng = Rng::new(0xca);
    for _ in 0..10_000 {
        let mut data = rng.bytes(64);
        data[0] |= 1;
        let hc = recompute(&mut data, 10);
        let mut delta = Delta::new();
        let mut one_by_one = hc;
        for _ in 0..1 + rng.below(4) {
            let at = 12 + rng.below(13) * 4;
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let new = rng.u32();
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            delta = delta.add_u32(old, new);
            one_by_one = update_u32(one_by_one, old, new);
        }
        let expect = recompute(&mut data, 10);
        assert_eq!(delta.apply(hc), expect);
        assert_eq!(one_by_one, expect);
    }
}

#[test]
fn address_change_fixes_ip_and_transport_checksums() {
    // A NAT rewrite of the source address: one delta serves the IPv4 header
    // and, through the pseudo-header, the TCP checksum.
    let mut rng = Rng::new(0xcb);
    for _ in 0..5000 {
        let (src, dst, new_src) = (rng.addr(), rng.addr(), rng.addr());
        let n = rng.below(60);
        let payload = rng.bytes(n);
        let mut seg = vec![0u8; 20];
        seg[..4].copy_from_slice(&rng.u32().to_be_bytes());
        seg[12] = 0x50;
        seg.extend_from_slice(&payload);
        let c = transport(ip(src), ip(dst), IpProtocol::TCP, &seg);
        let inc = update_addr(c, ip(src), ip(new_src));
        let d = Delta::new().add_addr(Ipv4Addr::from(src), Ipv4Addr::from(new_src));
        assert_eq!(inc, transport(ip(new_src), ip(dst), IpProtocol::TCP, &seg));
        assert_eq!(d.apply(c), inc);
    }
}

#[test]
fn udp_rules_in_incremental_updates() {
    let mut rng = Rng::new(0xcc);
    let mut zero_results = 0;
    for _ in 0..200_000 {
        let hc = rng.u16();
        let (old, new) = (rng.u16(), rng.u16());
        let d = Delta::new().add_u16(old, new);
        assert_eq!(d.apply_udp(0), 0, "none stays none");
        if hc != 0 {
            let plain = d.apply(hc);
            let udp = d.apply_udp(hc);
            assert_ne!(udp, 0);
            if plain == 0 {
                zero_results += 1;
                assert_eq!(udp, 0xffff);
            } else {
                assert_eq!(udp, plain);
            }
        }
    }
    assert!(zero_results > 0, "the zero case was not reached");
}
