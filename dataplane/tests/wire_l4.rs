//! UDP and TCP views against etherparse, the UDP zero-checksum rule, and MSS
//! clamping.

mod wire_common;

use dataplane::wire::{
    clamp_mss, ChecksumDelta, Error, TcpFlags, TcpOption, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use etherparse::{TcpHeader, TcpOptionElement, UdpHeader};
use wire_common::*;

/// One's-complement zero has two forms; TCP may carry either.
fn same_tcp_checksum(a: u16, b: u16) -> bool {
    a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

fn udp_datagram(rng: &mut Rng, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let h =
        UdpHeader::with_ipv4_checksum(rng.u16(), rng.u16(), &ipv4_for(src, dst), payload).unwrap();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn ipv4_for(src: [u8; 4], dst: [u8; 4]) -> etherparse::Ipv4Header {
    etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::UDP, src, dst).unwrap()
}

fn udp_calc(src: [u8; 4], dst: [u8; 4], datagram: &[u8]) -> u16 {
    let (h, payload) = UdpHeader::from_slice(datagram).unwrap();
    h.calc_checksum_ipv4_raw(src, dst, &payload[..usize::from(h.length) - 8])
        .unwrap()
}

#[test]
fn udp_getters_match_etherparse() {
    let mut rng = Rng::new(0x17);
    for _ in 0..300 {
        let (src, dst) = (rng.addr(), rng.addr());
        let n = rng.below(80);
        let payload = rng.bytes(n);
        let d = udp_datagram(&mut rng, src, dst, &payload);
        let (h, _) = UdpHeader::from_slice(&d).unwrap();
        let p = UdpPacket::new_checked(&d[..]).unwrap();
        assert_eq!(p.src_port(), h.source_port);
        assert_eq!(p.dst_port(), h.destination_port);
        assert_eq!(p.len(), h.length);
        assert_eq!(p.checksum(), h.checksum);
        assert_eq!(p.payload(), &payload[..]);
        assert_eq!(p.is_empty(), payload.is_empty());
        assert!(p.verify_checksum(ip(src), ip(dst)));
        // A one-bit change never keeps a one's-complement sum.
        let mut bad = d.clone();
        bad[1] ^= 0x10;
        assert!(!UdpPacket::new_checked(&bad[..])
            .unwrap()
            .verify_checksum(ip(src), ip(dst)));
    }
}

#[test]
fn udp_emit_parses_in_etherparse() {
    let mut rng = Rng::new(0x18);
    for _ in 0..300 {
        let (src, dst) = (rng.addr(), rng.addr());
        let repr = UdpRepr {
            src_port: rng.u16(),
            dst_port: rng.u16(),
            payload_len: rng.below(80),
        };
        let payload = rng.bytes(repr.payload_len);
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&payload);
        p.fill_checksum(ip(src), ip(dst));

        let (h, rest) = UdpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            (h.source_port, h.destination_port),
            (repr.src_port, repr.dst_port)
        );
        assert_eq!(usize::from(h.length), repr.buffer_len());
        assert_eq!(rest, &payload[..]);
        assert_eq!(h.checksum, udp_calc(src, dst, &buf));
        let back = UdpRepr::parse(&UdpPacket::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, repr);
    }
}

#[test]
fn udp_computed_zero_is_sent_as_ffff() {
    let (src, dst) = (TENANT_IP, CLIENT);
    let mut buf = vec![0u8; 10];
    let repr = UdpRepr {
        src_port: 40000,
        dst_port: 53,
        payload_len: 2,
    };
    repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]));
    // A payload word equal to the checksum of the rest brings the sum to
    // 0xffff, whose complement is zero.
    let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
    p.fill_checksum(ip(src), ip(dst));
    let c = p.checksum();
    p.payload_mut().copy_from_slice(&c.to_be_bytes());
    p.fill_checksum(ip(src), ip(dst));
    assert_eq!(p.checksum(), 0xffff);
    assert!(p.verify_checksum(ip(src), ip(dst)));
    assert_eq!(udp_calc(src, dst, &buf), 0xffff, "etherparse agrees");
}

#[test]
fn udp_incremental_zero_result_is_sent_as_ffff() {
    let (src, dst) = (TENANT_IP, CLIENT);
    let mut rng = Rng::new(0x19);
    let d = udp_datagram(&mut rng, src, dst, b"payload!");
    // Find the source port for which the full checksum computes to zero.
    let target = (0..=u16::MAX)
        .find(|port| {
            let mut t = d.clone();
            t[0..2].copy_from_slice(&port.to_be_bytes());
            udp_calc(src, dst, &t) == 0xffff
        })
        .unwrap();
    let mut t = d.clone();
    let mut p = UdpPacket::new_checked(&mut t[..]).unwrap();
    p.rewrite_src_port(target);
    assert_eq!(p.checksum(), 0xffff);
    assert!(p.verify_checksum(ip(src), ip(dst)));
}

#[test]
fn udp_zero_checksum_means_none_and_stays_zero() {
    let mut rng = Rng::new(0x1a);
    let mut d = udp_datagram(&mut rng, TENANT_IP, CLIENT, b"no checksum here");
    d[6..8].copy_from_slice(&[0, 0]);
    let mut p = UdpPacket::new_checked(&mut d[..]).unwrap();
    assert!(p.verify_checksum(ip(TENANT_IP), ip(CLIENT)));
    assert!(p.verify_checksum(ip([1, 2, 3, 4]), ip([5, 6, 7, 8])));
    p.rewrite_src_port(1);
    p.rewrite_dst_port(2);
    p.update_checksum_for_addr(ip(TENANT_IP), ip(EIP1));
    p.apply_checksum_delta(ChecksumDelta::new().add_u16(0x1234, 0x4321));
    assert_eq!(p.checksum(), 0);
}

#[test]
fn udp_nat_rewrite_matches_full_checksum() {
    let mut rng = Rng::new(0x1b);
    for _ in 0..1000 {
        let (src, dst) = (rng.addr(), rng.addr());
        let n = rng.below(40);
        let payload = rng.bytes(n);
        let mut d = udp_datagram(&mut rng, src, dst, &payload);
        let (new_src, new_port) = (rng.addr(), rng.u16());
        let mut p = UdpPacket::new_checked(&mut d[..]).unwrap();
        p.update_checksum_for_addr(ip(src), ip(new_src));
        p.rewrite_src_port(new_port);
        assert_eq!(p.checksum(), udp_calc(new_src, dst, &d));
    }
}

#[test]
fn udp_length_checks() {
    let mut rng = Rng::new(0x1c);
    let d = udp_datagram(&mut rng, TENANT_IP, CLIENT, b"abcd");
    assert_eq!(
        UdpPacket::new_checked(&d[..11]).err(),
        Some(Error::Truncated)
    );
    assert_eq!(
        UdpPacket::new_checked(&d[..7]).err(),
        Some(Error::Truncated)
    );
    let mut b = d.clone();
    b[4..6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(UdpPacket::new_checked(&b[..]).err(), Some(Error::Malformed));
    // A buffer longer than the length field: the payload stops at the field.
    let mut b = d.clone();
    b.extend_from_slice(&[0xee; 6]);
    let p = UdpPacket::new_checked(&b[..]).unwrap();
    assert_eq!(p.payload(), b"abcd");
}

fn random_options(rng: &mut Rng) -> Vec<TcpOptionElement> {
    let mut v = Vec::new();
    let mut room = 40usize;
    for _ in 0..rng.below(6) {
        let o = match rng.below(6) {
            0 => TcpOptionElement::Noop,
            1 => TcpOptionElement::MaximumSegmentSize(rng.u16()),
            2 => TcpOptionElement::WindowScale(rng.u8()),
            3 => TcpOptionElement::SelectiveAcknowledgementPermitted,
            4 => TcpOptionElement::Timestamp(rng.u32(), rng.u32()),
            _ => TcpOptionElement::SelectiveAcknowledgement((rng.u32(), rng.u32()), [None; 3]),
        };
        let len = match o {
            TcpOptionElement::Noop => 1,
            TcpOptionElement::MaximumSegmentSize(_) => 4,
            TcpOptionElement::WindowScale(_) => 3,
            TcpOptionElement::SelectiveAcknowledgementPermitted => 2,
            TcpOptionElement::Timestamp(..) => 10,
            TcpOptionElement::SelectiveAcknowledgement(..) => 10,
        };
        // Leave room for etherparse's end-of-list padding.
        if len + 1 > room {
            break;
        }
        room -= len;
        v.push(o);
    }
    v
}

fn random_tcp(rng: &mut Rng, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> (TcpHeader, Vec<u8>) {
    let mut h = TcpHeader::new(rng.u16(), rng.u16(), rng.u32(), rng.u16());
    h.acknowledgment_number = rng.u32();
    h.urgent_pointer = rng.u16();
    let f = rng.u16();
    h.fin = f & 1 != 0;
    h.syn = f & 2 != 0;
    h.rst = f & 4 != 0;
    h.psh = f & 8 != 0;
    h.ack = f & 16 != 0;
    h.urg = f & 32 != 0;
    h.ece = f & 64 != 0;
    h.cwr = f & 128 != 0;
    h.ns = f & 256 != 0;
    h.set_options(&random_options(rng)).unwrap();
    h.checksum = h.calc_checksum_ipv4_raw(src, dst, payload).unwrap();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    (h, v)
}

fn to_etherparse(o: TcpOption<'_>) -> Option<TcpOptionElement> {
    Some(match o {
        TcpOption::NoOp => TcpOptionElement::Noop,
        TcpOption::Mss(m) => TcpOptionElement::MaximumSegmentSize(m),
        TcpOption::WindowScale(s) => TcpOptionElement::WindowScale(s),
        TcpOption::SackPermitted => TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOption::Timestamps { tsval, tsecr } => TcpOptionElement::Timestamp(tsval, tsecr),
        TcpOption::Unknown { kind: 5, data } => {
            let w = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            let mut more = [None; 3];
            for (k, m) in more.iter_mut().enumerate() {
                if data.len() >= 16 + 8 * k {
                    *m = Some((w(8 + 8 * k), w(12 + 8 * k)));
                }
            }
            TcpOptionElement::SelectiveAcknowledgement((w(0), w(4)), more)
        }
        TcpOption::Unknown { .. } => return None,
    })
}

#[test]
fn tcp_getters_match_etherparse() {
    let mut rng = Rng::new(0x7c);
    for _ in 0..500 {
        let (src, dst) = (rng.addr(), rng.addr());
        let n = rng.below(60);
        let payload = rng.bytes(n);
        let (h, seg) = random_tcp(&mut rng, src, dst, &payload);
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(p.src_port(), h.source_port);
        assert_eq!(p.dst_port(), h.destination_port);
        assert_eq!(p.seq_number(), h.sequence_number);
        assert_eq!(p.ack_number(), h.acknowledgment_number);
        assert_eq!(p.data_offset(), h.data_offset());
        assert_eq!(p.header_len(), h.header_len());
        assert_eq!(
            (p.fin(), p.syn(), p.rst(), p.psh(), p.ack()),
            (h.fin, h.syn, h.rst, h.psh, h.ack)
        );
        assert_eq!(
            (p.urg(), p.ece(), p.cwr(), p.ns()),
            (h.urg, h.ece, h.cwr, h.ns)
        );
        assert_eq!(p.window_len(), h.window_size);
        assert_eq!(p.checksum(), h.checksum);
        assert_eq!(p.urgent_ptr(), h.urgent_pointer);
        assert_eq!(p.options_raw(), h.options.as_slice());
        assert_eq!(p.payload(), &payload[..]);
        assert!(p.verify_checksum(ip(src), ip(dst)));

        let ours: Vec<_> = p
            .options()
            .map(|o| to_etherparse(o.unwrap().1).unwrap())
            .collect();
        let theirs: Vec<_> = h.options_iterator().map(|o| o.unwrap()).collect();
        assert_eq!(ours, theirs);

        let r = TcpRepr::parse(&p).unwrap();
        let mss = theirs.iter().rev().find_map(|o| match o {
            TcpOptionElement::MaximumSegmentSize(m) => Some(*m),
            _ => None,
        });
        assert_eq!(r.max_seg_size, mss);
        assert_eq!(r.payload_len, payload.len());
    }
}

#[test]
fn tcp_emit_parses_in_etherparse() {
    let mut rng = Rng::new(0x7d);
    for i in 0..300 {
        let (src, dst) = (rng.addr(), rng.addr());
        let repr = TcpRepr {
            src_port: rng.u16(),
            dst_port: rng.u16(),
            seq_number: rng.u32(),
            ack_number: rng.u32(),
            flags: TcpFlags(rng.u16() & 0x1ff),
            window_len: rng.u16(),
            urgent_ptr: rng.u16(),
            max_seg_size: (i % 2 == 0).then(|| rng.u16()),
            payload_len: rng.below(50),
        };
        let payload = rng.bytes(repr.payload_len);
        let mut buf = vec![0x5a; repr.buffer_len()];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&payload);
        p.fill_checksum(ip(src), ip(dst));

        let (h, rest) = TcpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            (h.source_port, h.destination_port),
            (repr.src_port, repr.dst_port)
        );
        assert_eq!(h.sequence_number, repr.seq_number);
        assert_eq!(h.acknowledgment_number, repr.ack_number);
        assert_eq!(h.window_size, repr.window_len);
        assert_eq!(h.urgent_pointer, repr.urgent_ptr);
        let f = repr.flags;
        assert_eq!(
            (h.fin, h.syn, h.rst, h.psh, h.ack, h.urg, h.ece, h.cwr, h.ns),
            (
                f.contains(TcpFlags::FIN),
                f.contains(TcpFlags::SYN),
                f.contains(TcpFlags::RST),
                f.contains(TcpFlags::PSH),
                f.contains(TcpFlags::ACK),
                f.contains(TcpFlags::URG),
                f.contains(TcpFlags::ECE),
                f.contains(TcpFlags::CWR),
                f.contains(TcpFlags::NS)
            )
        );
        let opts: Vec<_> = h.options_iterator().map(|o| o.unwrap()).collect();
        match repr.max_seg_size {
            Some(m) => assert_eq!(opts, vec![TcpOptionElement::MaximumSegmentSize(m)]),
            None => assert!(opts.is_empty()),
        }
        assert_eq!(rest, &payload[..]);
        let expect = h.calc_checksum_ipv4_raw(src, dst, rest).unwrap();
        assert!(same_tcp_checksum(h.checksum, expect));
        let back = TcpRepr::parse(&TcpPacket::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, repr);
    }
}

#[test]
fn tcp_nat_rewrite_matches_full_checksum() {
    let mut rng = Rng::new(0x7e);
    for _ in 0..1000 {
        let (src, dst) = (rng.addr(), rng.addr());
        let n = rng.below(30);
        let payload = rng.bytes(n);
        let (_, mut seg) = random_tcp(&mut rng, src, dst, &payload);
        let (new_dst, new_port) = (rng.addr(), rng.u16());
        let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
        p.update_checksum_for_addr(ip(dst), ip(new_dst));
        p.rewrite_dst_port(new_port);
        assert!(p.verify_checksum(ip(src), ip(new_dst)));
        let (h, rest) = TcpHeader::from_slice(&seg).unwrap();
        let expect = h.calc_checksum_ipv4_raw(src, new_dst, rest).unwrap();
        assert!(same_tcp_checksum(h.checksum, expect));
    }
}

#[test]
fn tcp_length_checks() {
    let frame = tcp_syn_frame(1460);
    let seg = &frame[34..];
    let p = TcpPacket::new_checked(seg).unwrap();
    assert!(p.header_len() > 20);
    assert_eq!(
        TcpPacket::new_checked(&seg[..p.header_len() - 1]).err(),
        Some(Error::Truncated)
    );
    let mut b = seg.to_vec();
    b[12] = 0x40; // data offset 4
    assert_eq!(TcpPacket::new_checked(&b[..]).err(), Some(Error::Malformed));
    assert_eq!(
        TcpPacket::new_checked(&seg[..19]).err(),
        Some(Error::Truncated)
    );
}

/// Builds a SYN with the given options between 1.1.1.7 and 2.2.2.11.
fn syn_with(options: &[TcpOptionElement], syn: bool) -> Vec<u8> {
    let mut h = TcpHeader::new(40000, 22, 1, 64240);
    h.syn = syn;
    h.ack = !syn;
    h.set_options(options).unwrap();
    h.checksum = h.calc_checksum_ipv4_raw(CLIENT, EIP1, b"data").unwrap();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(b"data");
    v
}

fn etherparse_mss(seg: &[u8]) -> Option<u16> {
    let (h, _) = TcpHeader::from_slice(seg).unwrap();
    h.options_iterator().find_map(|o| match o.unwrap() {
        TcpOptionElement::MaximumSegmentSize(m) => Some(m),
        _ => None,
    })
}

fn etherparse_checksum_ok(seg: &[u8]) -> bool {
    let (h, rest) = TcpHeader::from_slice(seg).unwrap();
    same_tcp_checksum(
        h.checksum,
        h.calc_checksum_ipv4_raw(CLIENT, EIP1, rest).unwrap(),
    )
}

#[test]
fn mss_clamp_even_and_odd_offsets() {
    use TcpOptionElement::*;
    let layouts: [&[TcpOptionElement]; 4] = [
        &[MaximumSegmentSize(1460), SelectiveAcknowledgementPermitted],
        &[Noop, MaximumSegmentSize(1460), WindowScale(7)],
        &[Noop, Noop, Noop, MaximumSegmentSize(1460)],
        &[WindowScale(7), MaximumSegmentSize(1460), Timestamp(1, 2)],
    ];
    for layout in layouts {
        let mut seg = syn_with(layout, true);
        let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
        let (at, mss) = p.mss_option().unwrap();
        assert_eq!(mss, 1460);
        assert!(clamp_mss(&mut p, 1436), "{layout:?} at {at}");
        assert_eq!(p.mss_option().unwrap(), (at, 1436));
        assert!(
            p.verify_checksum(ip(CLIENT), ip(EIP1)),
            "{layout:?} at {at}"
        );
        // Clamping again changes nothing.
        assert!(!clamp_mss(&mut p, 1436));
        assert_eq!(etherparse_mss(&seg), Some(1436));
        assert!(etherparse_checksum_ok(&seg), "{layout:?}");
    }
}

#[test]
fn mss_clamp_leaves_the_rest_alone() {
    use TcpOptionElement::*;
    // Not a SYN.
    let mut seg = syn_with(&[MaximumSegmentSize(1460)], false);
    let before = seg.clone();
    assert!(!clamp_mss(
        &mut TcpPacket::new_checked(&mut seg[..]).unwrap(),
        1400
    ));
    assert_eq!(seg, before);
    // Already small enough.
    let mut seg = syn_with(&[MaximumSegmentSize(1200)], true);
    let before = seg.clone();
    assert!(!clamp_mss(
        &mut TcpPacket::new_checked(&mut seg[..]).unwrap(),
        1400
    ));
    assert_eq!(seg, before);
    // No MSS option.
    let mut seg = syn_with(&[WindowScale(3)], true);
    let before = seg.clone();
    assert!(!clamp_mss(
        &mut TcpPacket::new_checked(&mut seg[..]).unwrap(),
        1400
    ));
    assert_eq!(seg, before);
    // Options malformed before the MSS: left alone rather than guessed at.
    let mut seg = syn_with(&[WindowScale(3), MaximumSegmentSize(1460)], true);
    seg[21] = 0;
    let before = seg.clone();
    assert!(!clamp_mss(
        &mut TcpPacket::new_checked(&mut seg[..]).unwrap(),
        1400
    ));
    assert_eq!(seg, before);
}

#[test]
fn mss_clamp_random() {
    let mut rng = Rng::new(0x7f);
    let mut clamped = 0;
    for _ in 0..2000 {
        let mut opts = random_options(&mut rng);
        let mss = rng.u16();
        if opts.len() < 3 {
            let at = rng.below(opts.len() + 1);
            opts.insert(at, TcpOptionElement::MaximumSegmentSize(mss));
        }
        let mut seg = syn_with(&opts, true);
        let max = rng.u16();
        let before = etherparse_mss(&seg);
        let did = clamp_mss(&mut TcpPacket::new_checked(&mut seg[..]).unwrap(), max);
        assert_eq!(did, before.is_some_and(|m| m > max));
        assert_eq!(etherparse_mss(&seg), before.map(|m| m.min(max)));
        assert!(etherparse_checksum_ok(&seg));
        clamped += usize::from(did);
    }
    assert!(clamped > 500, "only {clamped} clamps exercised");
}

#[test]
fn tcp_option_iterator_on_the_reference_syn() {
    let frame = tcp_syn_frame(1460);
    let p = TcpPacket::new_checked(&frame[34..]).unwrap();
    let got: Vec<_> = p.options().map(|o| o.unwrap().1).collect();
    assert_eq!(
        got,
        vec![
            TcpOption::Mss(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps { tsval: 1, tsecr: 0 },
            TcpOption::NoOp,
            TcpOption::WindowScale(7),
        ]
    );
    assert!(p.syn() && !p.ack());
    assert_eq!(p.flags(), TcpFlags::SYN);
}
