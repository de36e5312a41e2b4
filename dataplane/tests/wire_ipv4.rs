//! The IPv4 view against etherparse.

mod wire_common;

use dataplane::wire::{Error, Frag, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr};
use etherparse::{IpFragOffset, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv4Options};
use wire_common::*;

fn random_header(rng: &mut Rng, payload_len: usize) -> Ipv4Header {
    let mut h = Ipv4Header::new(
        payload_len as u16,
        rng.u8(),
        IpNumber(rng.u8()),
        rng.addr(),
        rng.addr(),
    )
    .unwrap();
    h.dscp = Ipv4Dscp::try_new(rng.u8() & 0x3f).unwrap();
    h.ecn = Ipv4Ecn::try_new(rng.u8() & 3).unwrap();
    h.identification = rng.u16();
    h.dont_fragment = rng.bool();
    h.more_fragments = rng.bool();
    h.fragment_offset =
        IpFragOffset::try_new(if rng.bool() { 0 } else { rng.u16() & 0x1fff }).unwrap();
    let words = rng.below(11);
    let opts = rng.bytes(words * 4);
    h.options = Ipv4Options::try_from(&opts[..]).unwrap();
    h.set_payload_len(payload_len).unwrap();
    h.header_checksum = h.calc_header_checksum();
    h
}

#[test]
fn getters_match_etherparse() {
    let mut rng = Rng::new(0x1f4);
    for _ in 0..500 {
        let n = rng.below(100);
        let payload = rng.bytes(n);
        let h = random_header(&mut rng, payload.len());
        let mut buf = h.to_bytes().to_vec();
        buf.extend_from_slice(&payload);
        // Ethernet pads short frames: the view must stop at total_len.
        let pad = rng.below(8);
        buf.extend(std::iter::repeat_n(0xee, pad));

        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), h.ihl());
        assert_eq!(p.header_len(), h.header_len());
        assert_eq!(p.dscp(), h.dscp.value());
        assert_eq!(p.ecn(), h.ecn.value());
        assert_eq!(p.total_len(), h.total_len);
        assert_eq!(p.ident(), h.identification);
        assert_eq!(p.dont_frag(), h.dont_fragment);
        assert_eq!(p.more_frags(), h.more_fragments);
        assert_eq!(p.frag_offset(), h.fragment_offset.byte_offset());
        assert_eq!(p.is_fragment(), h.is_fragmenting_payload());
        // The one decoder of the flags/offset word, on a bare slice too,
        // and its encoding gives back the bytes on the wire.
        let frag = Frag::of(&buf).unwrap();
        assert_eq!(frag, p.frag());
        assert_eq!(frag.is_later(), h.fragment_offset.value() != 0);
        assert_eq!(frag.word().to_be_bytes(), buf[6..8]);
        assert_eq!(p.ttl(), h.time_to_live);
        assert_eq!(p.protocol(), IpProtocol(h.protocol.0));
        assert_eq!(p.checksum(), h.header_checksum);
        assert_eq!(p.src_addr(), Ipv4Addr::from(h.source));
        assert_eq!(p.dst_addr(), Ipv4Addr::from(h.destination));
        assert_eq!(p.has_options(), !h.options.is_empty());
        assert_eq!(p.options(), &h.options[..]);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &payload[..]);

        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, payload.len());
    }
}

/// `is_fragment` tests the flags/offset word under a mask of its own,
/// not through `Frag`: every word, so that no bit of the mask is wrong.
#[test]
fn is_fragment_answers_as_frag_does_for_every_word() {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    for word in 0..=u16::MAX {
        h[6..8].copy_from_slice(&word.to_be_bytes());
        let p = Ipv4Packet::new_unchecked(&h[..]);
        assert_eq!(
            p.is_fragment(),
            Frag::from_word(word).is_fragment(),
            "{word:#06x}"
        );
    }
}

#[test]
fn emit_parses_in_etherparse() {
    let mut rng = Rng::new(0x1f5);
    for _ in 0..500 {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::from(rng.addr()),
            dst_addr: Ipv4Addr::from(rng.addr()),
            protocol: IpProtocol(rng.u8()),
            payload_len: rng.below(200),
            ttl: rng.u8(),
            dscp: rng.u8() & 0x3f,
            ecn: rng.u8() & 3,
            ident: rng.u16(),
            dont_frag: rng.bool(),
            more_frags: rng.bool(),
            frag_offset: rng.u16() & 0xfff8,
        };
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));

        let (h, rest) = Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.source, repr.src_addr.octets());
        assert_eq!(h.destination, repr.dst_addr.octets());
        assert_eq!(h.protocol.0, repr.protocol.0);
        assert_eq!(usize::from(h.payload_len().unwrap()), repr.payload_len);
        assert_eq!(h.time_to_live, repr.ttl);
        assert_eq!(h.dscp.value(), repr.dscp);
        assert_eq!(h.ecn.value(), repr.ecn);
        assert_eq!(h.identification, repr.ident);
        assert_eq!(h.dont_fragment, repr.dont_frag);
        assert_eq!(h.more_fragments, repr.more_frags);
        assert_eq!(h.fragment_offset.byte_offset(), repr.frag_offset);
        assert!(h.options.is_empty());
        assert_eq!(rest.len(), repr.payload_len);

        let back = Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, repr);
    }
}

#[test]
fn decrement_ttl_matches_full_checksum() {
    let mut rng = Rng::new(0x1f6);
    for _ in 0..2000 {
        let h = random_header(&mut rng, 0);
        let mut buf = h.to_bytes().to_vec();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        match p.decrement_ttl() {
            None => {
                assert_eq!(h.time_to_live, 0);
                assert_eq!(&buf[..], &h.to_bytes()[..], "TTL 0 must be left alone");
            }
            Some(ttl) => {
                assert_eq!(ttl, h.time_to_live - 1);
                let mut expect = h.clone();
                expect.time_to_live -= 1;
                let (got, _) = Ipv4Header::from_slice(&buf).unwrap();
                assert_eq!(got.time_to_live, ttl);
                assert_eq!(got.header_checksum, expect.calc_header_checksum());
            }
        }
    }
}

#[test]
fn decrement_ttl_down_to_zero() {
    let mut rng = Rng::new(0x1f7);
    let mut h = random_header(&mut rng, 0);
    h.time_to_live = 3;
    h.header_checksum = h.calc_header_checksum();
    let mut buf = h.to_bytes().to_vec();
    let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
    assert_eq!(p.decrement_ttl(), Some(2));
    assert_eq!(p.decrement_ttl(), Some(1));
    assert_eq!(p.decrement_ttl(), Some(0));
    assert_eq!(p.decrement_ttl(), None);
    assert_eq!(p.decrement_ttl(), None);
    assert_eq!(p.ttl(), 0);
    assert!(p.verify_checksum());
}

#[test]
fn address_rewrites_match_full_checksum() {
    let mut rng = Rng::new(0x1f8);
    for _ in 0..1000 {
        let h = random_header(&mut rng, 0);
        let mut buf = h.to_bytes().to_vec();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        let (s, d) = (rng.addr(), rng.addr());
        assert_eq!(
            p.rewrite_src_addr(Ipv4Addr::from(s)),
            Ipv4Addr::from(h.source)
        );
        assert_eq!(
            p.rewrite_dst_addr(Ipv4Addr::from(d)),
            Ipv4Addr::from(h.destination)
        );
        let mut expect = h.clone();
        expect.source = s;
        expect.destination = d;
        assert_eq!(p.checksum(), expect.calc_header_checksum());
        assert!(p.verify_checksum());
    }
}

#[test]
fn length_checks() {
    let frame = tcp_syn_frame(1460);
    let ip = &frame[14..];
    assert!(Ipv4Packet::new_checked(ip).is_ok());
    // total_len beyond the buffer.
    assert_eq!(
        Ipv4Packet::new_checked(&ip[..ip.len() - 1]).err(),
        Some(Error::Truncated)
    );
    let mut b = ip.to_vec();
    b[0] = 0x65; // version 6
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).err(),
        Some(Error::Malformed)
    );
    let mut b = ip.to_vec();
    b[0] = 0x4f; // IHL 15: 60 bytes of header, within the buffer, beyond total_len
    b[2..4].copy_from_slice(&40u16.to_be_bytes());
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).err(),
        Some(Error::Malformed)
    );
    let mut b = ip.to_vec();
    b[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).err(),
        Some(Error::Malformed)
    );
    let mut b = ip.to_vec();
    b[0] = 0x4f;
    b.truncate(40);
    assert_eq!(
        Ipv4Packet::new_checked(&b[..]).err(),
        Some(Error::Truncated)
    );
    // A checksum error is the caller's to look for.
    let mut b = ip.to_vec();
    b[10] ^= 1;
    let p = Ipv4Packet::new_checked(&b[..]).unwrap();
    assert!(!p.verify_checksum());
}

#[test]
fn setters_round_trip_through_etherparse() {
    let mut rng = Rng::new(0x1f9);
    for _ in 0..200 {
        let h = random_header(&mut rng, 4);
        let mut buf = h.to_bytes().to_vec();
        buf.extend_from_slice(&[1, 2, 3, 4]);
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        let (dscp, ecn, id, ttl, proto) =
            (rng.u8() & 0x3f, rng.u8() & 3, rng.u16(), rng.u8(), rng.u8());
        let (df, mf, off) = (rng.bool(), rng.bool(), rng.u16() & 0xfff8);
        p.set_dscp(dscp);
        p.set_ecn(ecn);
        p.set_ident(id);
        p.set_ttl(ttl);
        p.set_protocol(IpProtocol(proto));
        p.set_dont_frag(df);
        p.set_more_frags(mf);
        p.set_frag_offset(off);
        p.payload_mut().copy_from_slice(&[9, 9, 9, 9]);
        p.fill_checksum();
        let (g, rest) = Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(g.header_checksum, g.calc_header_checksum());
        assert_eq!(
            (
                g.dscp.value(),
                g.ecn.value(),
                g.identification,
                g.time_to_live,
                g.protocol.0
            ),
            (dscp, ecn, id, ttl, proto)
        );
        assert_eq!((g.dont_fragment, g.more_fragments), (df, mf));
        assert_eq!(g.fragment_offset.byte_offset(), off);
        assert_eq!(&g.options[..], &h.options[..]);
        assert_eq!(rest, &[9, 9, 9, 9]);
    }
}
