//! GRE (RFC 2784 / 2890) in every flag combination, inside an outer IPv4
//! written by etherparse, carrying inner packets that etherparse reads back.

mod wire_common;

use dataplane::wire::{
    Error, EtherType, EthernetFrame, GrePacket, GreRepr, IpProtocol, Ipv4Packet, TcpPacket,
};
use etherparse::SlicedPacket;
use wire_common::*;

fn combos() -> impl Iterator<Item = (bool, Option<u32>, Option<u32>, bool)> {
    (0..16u32).map(|bits| {
        (
            bits & 1 != 0,
            (bits & 2 != 0).then_some(0x0000_03e8 ^ bits),
            (bits & 4 != 0).then_some(0xfedc_ba98 ^ bits),
            bits & 8 != 0,
        )
    })
}

#[test]
fn every_flag_combination_both_protocols() {
    for (c, key, seq, teb) in combos() {
        let frame = gre_frame(c, key, seq, teb);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.ethertype(), EtherType::IPV4);
        let outer = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(outer.protocol(), IpProtocol::GRE);
        assert!(outer.verify_checksum());

        let g = GrePacket::new_checked(outer.payload()).unwrap();
        let what = format!("c={c} key={key:?} seq={seq:?} teb={teb}");
        assert_eq!(g.version(), 0, "{what}");
        assert_eq!(g.checksum_present(), c, "{what}");
        assert_eq!(g.key_present(), key.is_some(), "{what}");
        assert_eq!(g.seq_present(), seq.is_some(), "{what}");
        let words = usize::from(c) + usize::from(key.is_some()) + usize::from(seq.is_some());
        assert_eq!(g.header_len(), 4 + 4 * words, "{what}");
        assert_eq!(g.key(), key, "{what}");
        assert_eq!(g.sequence(), seq, "{what}");
        assert_eq!(g.checksum().is_some(), c, "{what}");
        assert_eq!(g.reserved1(), c.then_some(0), "{what}");
        assert!(g.verify_checksum(), "{what}");
        let proto = if teb {
            EtherType::TRANSPARENT_ETHERNET_BRIDGING
        } else {
            EtherType::IPV4
        };
        assert_eq!(g.protocol_type(), proto, "{what}");
        assert_eq!(g.payload(), &tunnel_inner(teb)[..], "{what}");

        let r = GreRepr::parse(&g).unwrap();
        assert_eq!(
            r,
            GreRepr {
                protocol: proto,
                checksum: c,
                key,
                sequence: seq
            }
        );
        assert_eq!(r.header_len(), g.header_len());

        // The inner packet, found through our views, is what etherparse reads.
        let inner_ip = if teb {
            let ie = EthernetFrame::new_checked(g.payload()).unwrap();
            assert_eq!(ie.ethertype(), EtherType::IPV4);
            let sliced = SlicedPacket::from_ethernet(g.payload()).unwrap();
            assert!(sliced.transport.is_some());
            &g.payload()[ie.payload_offset()..]
        } else {
            let sliced = SlicedPacket::from_ip(g.payload()).unwrap();
            assert!(sliced.transport.is_some());
            g.payload()
        };
        let ip = Ipv4Packet::new_checked(inner_ip).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 22));
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    }
}

#[test]
fn emit_matches_the_rfc_layout() {
    for (c, key, seq, teb) in combos() {
        let inner = tunnel_inner(teb);
        let repr = GreRepr {
            protocol: if teb {
                EtherType::TRANSPARENT_ETHERNET_BRIDGING
            } else {
                EtherType::IPV4
            },
            checksum: c,
            key,
            sequence: seq,
        };
        let mut buf = vec![0xcc; repr.buffer_len(inner.len())];
        let mut g = GrePacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut g);
        g.payload_mut().copy_from_slice(&inner);
        assert_eq!(g.fill_checksum(), c);

        // Compare with the hand-built header (checksum from etherparse).
        let frame = gre_frame(c, key, seq, teb);
        let expect = &frame[14 + 20..];
        assert_eq!(&buf[..], expect, "c={c} key={key:?} seq={seq:?} teb={teb}");

        let back = GreRepr::parse(&GrePacket::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, repr);
    }
}

#[test]
fn version_1_and_rfc1701_bits_are_refused() {
    for (c, key, seq, teb) in combos() {
        let frame = gre_frame(c, key, seq, teb);
        let mut gre = frame[34..].to_vec();
        for version in 1..8u8 {
            gre[1] = version;
            assert_eq!(
                GrePacket::new_checked(&gre[..]).err(),
                Some(Error::Unsupported),
                "version {version}"
            );
        }
        gre[1] = 0;
        // R (routing present), s (strict source route), top recursion bit.
        for bit in [0x40u8, 0x08, 0x04] {
            let mut b = gre.clone();
            b[0] |= bit;
            assert_eq!(
                GrePacket::new_checked(&b[..]).err(),
                Some(Error::Unsupported)
            );
        }
        // Bits 6-12 are reserved, sent as zero, and ignored on receipt.
        let mut b = gre.clone();
        b[0] |= 0x03;
        b[1] |= 0xf8;
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(g.key(), key);
    }
}

#[test]
fn other_payloads_are_unsupported() {
    let gre = gre_header(false, Some(1000), None, 0x86dd);
    let g = GrePacket::new_checked(&gre[..]).unwrap();
    assert_eq!(GreRepr::parse(&g).err(), Some(Error::Unsupported));
}

#[test]
fn truncated_optional_words() {
    for (c, key, seq, teb) in combos() {
        let hdr = gre_header(c, key, seq, if teb { 0x6558 } else { 0x0800 });
        assert!(GrePacket::new_checked(&hdr[..]).is_ok());
        for len in 0..hdr.len() {
            assert_eq!(
                GrePacket::new_checked(&hdr[..len]).err(),
                Some(Error::Truncated),
                "len {len}"
            );
        }
    }
}

#[test]
fn setters_only_touch_present_fields() {
    let mut frame = gre_frame(true, None, Some(5), true);
    let gre = &mut frame[34..];
    let mut g = GrePacket::new_checked(&mut gre[..]).unwrap();
    assert!(!g.set_key(2000));
    assert!(g.set_sequence(6));
    assert!(!g.verify_checksum());
    assert!(g.fill_checksum());
    assert!(g.verify_checksum());
    assert_eq!(g.sequence(), Some(6));
    assert_eq!(g.key(), None);

    let mut frame = gre_frame(false, Some(1000), None, false);
    let mut g = GrePacket::new_checked(&mut frame[34..]).unwrap();
    assert!(g.set_key(2000));
    assert!(!g.set_sequence(1));
    assert!(!g.fill_checksum());
    assert_eq!(g.key(), Some(2000));
    g.set_protocol_type(EtherType::TRANSPARENT_ETHERNET_BRIDGING);
    assert_eq!(g.protocol_type(), EtherType::TRANSPARENT_ETHERNET_BRIDGING);
}

#[test]
fn corrupted_checksum_is_detected() {
    let mut frame = gre_frame(true, Some(1000), Some(1), true);
    let last = frame.len() - 1;
    frame[last] ^= 0x40;
    let g = GrePacket::new_checked(&frame[34..]).unwrap();
    assert!(!g.verify_checksum());
}
