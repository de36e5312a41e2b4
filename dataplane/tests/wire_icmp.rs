//! ICMPv4 against etherparse: echo, Fragmentation Needed with its next-hop
//! MTU, Time Exceeded, and the quoted datagram of errors.

mod wire_common;

use dataplane::wire::icmp::{time_exceeded, unreachable, IcmpType};
use dataplane::wire::{
    Error, EthernetFrame, IcmpMessage, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Addr, Ipv4Packet,
};
use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Slice, Icmpv4Type};
use wire_common::*;

/// The ICMP message of an Ethernet + IPv4 frame.
fn icmp_of(frame: &[u8]) -> &[u8] {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let off = eth.payload_offset();
    let ip = Ipv4Packet::new_checked(&frame[off..]).unwrap();
    assert_eq!(ip.protocol(), IpProtocol::ICMP);
    let start = off + ip.header_len();
    &frame[start..start + ip.payload().len()]
}

/// What etherparse computes as the checksum of this message.
fn etherparse_checksum(msg: &[u8]) -> u16 {
    let s = Icmpv4Slice::from_slice(msg).unwrap();
    Icmpv4Header::with_checksum(s.icmp_type(), s.payload()).checksum
}

#[test]
fn echo_request_getters() {
    let mut rng = Rng::new(0x1c);
    for _ in 0..100 {
        let (id, seq) = (rng.u16(), rng.u16());
        let n = rng.below(64);
        let data = rng.bytes(n);
        let frame = icmp_echo_frame(id, seq, &data);
        let msg = icmp_of(&frame);
        let p = IcmpPacket::new_checked(msg).unwrap();
        assert_eq!(p.msg_type(), IcmpType::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), id);
        assert_eq!(p.echo_seq_no(), seq);
        assert_eq!(
            p.checksum(),
            Icmpv4Slice::from_slice(msg).unwrap().checksum()
        );
        assert!(p.verify_checksum());
        assert!(!p.is_error());
        assert_eq!(p.payload(), &data[..]);
        assert_eq!(p.quoted_ipv4().err(), Some(Error::Unsupported));
        assert_eq!(
            IcmpRepr::parse(&p).unwrap(),
            IcmpRepr {
                message: IcmpMessage::EchoRequest {
                    ident: id,
                    seq_no: seq
                },
                payload_len: data.len()
            }
        );
    }
}

#[test]
fn echo_reply_emit_parses_in_etherparse() {
    let frame = icmp_echo_frame(0x4242, 17, b"abcdefghijklmnopq");
    let req = IcmpPacket::new_checked(icmp_of(&frame)).unwrap();
    let IcmpMessage::EchoRequest { ident, seq_no } = IcmpRepr::parse(&req).unwrap().message else {
        panic!("not an echo request");
    };
    let reply = IcmpRepr {
        message: IcmpMessage::EchoReply { ident, seq_no },
        payload_len: req.payload().len(),
    };
    let mut out = vec![0u8; reply.buffer_len()];
    let mut p = IcmpPacket::new_unchecked(&mut out[..]);
    reply.emit(&mut p);
    p.payload_mut().copy_from_slice(req.payload());
    p.fill_checksum();

    let s = Icmpv4Slice::from_slice(&out).unwrap();
    assert_eq!(
        s.icmp_type(),
        Icmpv4Type::EchoReply(IcmpEchoHeader {
            id: 0x4242,
            seq: 17
        })
    );
    assert_eq!(s.payload(), b"abcdefghijklmnopq");
    assert_eq!(s.checksum(), etherparse_checksum(&out));
    let back = IcmpRepr::parse(&IcmpPacket::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(back, reply);
}

#[test]
fn frag_needed_mtu_and_quote() {
    for mtu in [0u16, 68, 576, 1476, 1500, 9000, 0xffff] {
        let frame = frag_needed_frame(mtu);
        let msg = icmp_of(&frame);
        let p = IcmpPacket::new_checked(msg).unwrap();
        assert_eq!(p.msg_type(), IcmpType::DEST_UNREACHABLE);
        assert_eq!(p.msg_code(), unreachable::FRAG_NEEDED);
        assert_eq!(p.next_hop_mtu(), mtu);
        assert!(p.is_error());
        assert!(p.verify_checksum());
        assert_eq!(
            IcmpRepr::parse(&p).unwrap().message,
            IcmpMessage::DestUnreachable {
                code: unreachable::FRAG_NEEDED,
                next_hop_mtu: mtu
            }
        );

        let q = p.quoted_ipv4().unwrap();
        assert_eq!(q.src_addr(), Ipv4Addr::from(TENANT_IP));
        assert_eq!(q.dst_addr(), Ipv4Addr::from(CLIENT));
        assert_eq!(q.protocol(), IpProtocol::TCP);
        assert_eq!(q.total_len(), 1500);
        assert!(q.verify_checksum());
        // The quote ends after the 8 bytes that hold the ports.
        assert_eq!(q.payload().len(), 8);
        assert_eq!(&q.payload()[..4], &[0x9c, 0x40, 0, 22]);
        // The strict view refuses it: the datagram is not all there.
        assert_eq!(
            Ipv4Packet::new_checked(p.payload()).err(),
            Some(Error::Truncated)
        );
    }
}

#[test]
fn dest_unreachable_emit_parses_in_etherparse() {
    let quote = quoted_datagram();
    let cases = [
        (unreachable::FRAG_NEEDED, 1476u16),
        (unreachable::PORT, 0),
        (unreachable::HOST, 0),
        (unreachable::ADMIN_PROHIBITED, 0),
    ];
    for (code, mtu) in cases {
        let repr = IcmpRepr {
            message: IcmpMessage::DestUnreachable {
                code,
                next_hop_mtu: mtu,
            },
            payload_len: quote.len(),
        };
        let mut out = vec![0xffu8; repr.buffer_len()];
        let mut p = IcmpPacket::new_unchecked(&mut out[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&quote);
        p.fill_checksum();

        let s = Icmpv4Slice::from_slice(&out).unwrap();
        let expect = DestUnreachableHeader::from_values(code, mtu).unwrap();
        assert_eq!(s.icmp_type(), Icmpv4Type::DestinationUnreachable(expect));
        assert_eq!(s.checksum(), etherparse_checksum(&out));
        assert_eq!(s.payload(), &quote[..]);
        assert_eq!(
            IcmpRepr::parse(&IcmpPacket::new_checked(&out[..]).unwrap()).unwrap(),
            repr
        );
    }
}

#[test]
fn time_exceeded_both_ways() {
    let frame = icmp_error_frame(Icmpv4Type::TimeExceeded(
        TimeExceededCode::TtlExceededInTransit,
    ));
    let p = IcmpPacket::new_checked(icmp_of(&frame)).unwrap();
    assert_eq!(p.msg_type(), IcmpType::TIME_EXCEEDED);
    assert_eq!(
        IcmpRepr::parse(&p).unwrap().message,
        IcmpMessage::TimeExceeded {
            code: time_exceeded::TTL
        }
    );
    assert_eq!(p.quoted_ipv4().unwrap().ttl(), 1);

    for code in [time_exceeded::TTL, time_exceeded::REASSEMBLY] {
        let quote = quoted_datagram();
        let repr = IcmpRepr {
            message: IcmpMessage::TimeExceeded { code },
            payload_len: quote.len(),
        };
        let mut out = vec![0x11u8; repr.buffer_len()];
        let mut p = IcmpPacket::new_unchecked(&mut out[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&quote);
        p.fill_checksum();
        let s = Icmpv4Slice::from_slice(&out).unwrap();
        assert_eq!(
            s.icmp_type(),
            Icmpv4Type::TimeExceeded(TimeExceededCode::from_u8(code).unwrap())
        );
        assert_eq!(s.checksum(), etherparse_checksum(&out));
    }
}

#[test]
fn other_types_are_unsupported_by_repr() {
    let frame = icmp_error_frame(Icmpv4Type::Redirect(etherparse::icmpv4::RedirectHeader {
        code: etherparse::icmpv4::RedirectCode::RedirectForNetwork,
        gateway_internet_address: [1, 2, 3, 4],
    }));
    let p = IcmpPacket::new_checked(icmp_of(&frame)).unwrap();
    assert_eq!(IcmpRepr::parse(&p).err(), Some(Error::Unsupported));
    // A redirect is still an error, and its quote is readable.
    assert!(p.quoted_ipv4().is_ok());
}

#[test]
fn rewrite_echo_ident_keeps_checksum_valid() {
    let mut rng = Rng::new(0x1d);
    for _ in 0..200 {
        let mut frame = icmp_echo_frame(rng.u16(), rng.u16(), b"0123456789");
        let start = 14 + 20;
        let mut p = IcmpPacket::new_checked(&mut frame[start..]).unwrap();
        let new = rng.u16();
        p.rewrite_echo_ident(new);
        assert_eq!(p.echo_ident(), new);
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), etherparse_checksum(&frame[start..]));
    }
}

#[test]
fn quoted_datagram_translation() {
    // RFC 5508: un-NAT the quoted datagram of an error coming back in.
    let mut frame = frag_needed_frame(1400);
    let start = 14 + 20;
    let mut p = IcmpPacket::new_checked(&mut frame[start..]).unwrap();
    {
        let mut q = p.quoted_ipv4_mut().unwrap();
        q.rewrite_src_addr(Ipv4Addr::from(EIP1));
        assert!(q.verify_checksum());
        q.payload_mut()[..2].copy_from_slice(&1024u16.to_be_bytes());
    }
    p.fill_checksum();
    let s = Icmpv4Slice::from_slice(&frame[start..]).unwrap();
    assert_eq!(s.checksum(), etherparse_checksum(&frame[start..]));
    let (quoted, _) = etherparse::Ipv4Header::from_slice(s.payload()).unwrap();
    assert_eq!(quoted.source, EIP1);
    assert_eq!(quoted.header_checksum, quoted.calc_header_checksum());
    assert_eq!(&s.payload()[20..22], &1024u16.to_be_bytes());
}

#[test]
fn short_messages() {
    let frame = icmp_echo_frame(1, 2, &[]);
    let msg = icmp_of(&frame);
    assert_eq!(msg.len(), 8);
    for len in 0..8 {
        assert_eq!(
            IcmpPacket::new_checked(&msg[..len]).err(),
            Some(Error::Truncated)
        );
    }
    // An error whose quote is not a full IPv4 header.
    let frame = frag_needed_frame(1400);
    let msg = icmp_of(&frame);
    let p = IcmpPacket::new_checked(&msg[..8 + 19]).unwrap();
    assert_eq!(p.quoted_ipv4().err(), Some(Error::Truncated));
}
