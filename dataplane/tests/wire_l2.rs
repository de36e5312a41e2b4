//! Ethernet and ARP views against etherparse.

mod wire_common;

use dataplane::wire::{
    ArpOperation, ArpPacket, ArpRepr, Error, EtherType, EthernetFrame, EthernetRepr, Ipv4Addr,
    MacAddr,
};
use etherparse::{Ethernet2Header, SingleVlanHeader, VlanId, VlanPcp};
use wire_common::*;

#[test]
fn ethernet_getters_match_etherparse() {
    let mut rng = Rng::new(0xe7);
    for i in 0..200 {
        let tagged = i % 2 == 0;
        let eth = Ethernet2Header {
            source: rng.mac(),
            destination: rng.mac(),
            ether_type: if tagged {
                etherparse::EtherType::VLAN_TAGGED_FRAME
            } else {
                etherparse::EtherType(0x0600 + rng.u16() % 0x7000)
            },
        };
        let vlan = SingleVlanHeader {
            pcp: VlanPcp::try_new(rng.u8() & 7).unwrap(),
            drop_eligible_indicator: rng.bool(),
            vlan_id: VlanId::try_new(rng.u16() & 0x0fff).unwrap(),
            ether_type: etherparse::EtherType::IPV4,
        };
        let mut buf = eth.to_bytes().to_vec();
        if tagged {
            buf.extend_from_slice(&vlan.to_bytes());
        }
        let n = rng.below(64);
        let payload = rng.bytes(n);
        buf.extend_from_slice(&payload);

        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.src_addr(), MacAddr(eth.source));
        assert_eq!(f.dst_addr(), MacAddr(eth.destination));
        assert_eq!(f.is_tagged(), tagged);
        assert_eq!(f.payload(), &payload[..]);
        if tagged {
            let tci = (u16::from(vlan.pcp.value()) << 13)
                | (u16::from(vlan.drop_eligible_indicator) << 12)
                | vlan.vlan_id.value();
            assert_eq!(f.vlan_tci(), Some(tci));
            assert_eq!(f.vlan_id(), Some(vlan.vlan_id.value()));
            assert_eq!(f.ethertype(), EtherType(vlan.ether_type.0));
            assert_eq!(f.header_len(), 18);
            assert_eq!(f.payload_offset(), 18);
        } else {
            assert_eq!(f.vlan_tci(), None);
            assert_eq!(f.ethertype(), EtherType(eth.ether_type.0));
            assert_eq!(f.payload_offset(), 14);
        }
    }
}

#[test]
fn ethernet_emit_parses_in_etherparse() {
    let mut rng = Rng::new(0xe8);
    for i in 0..200 {
        let repr = EthernetRepr {
            src_addr: MacAddr(rng.mac()),
            dst_addr: MacAddr(rng.mac()),
            vlan_tci: (i % 2 == 0).then(|| rng.u16()),
            ethertype: EtherType(0x0600 + rng.u16() % 0x7000),
        };
        let mut buf = vec![0u8; repr.buffer_len(10)];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));

        let (eth, rest) = Ethernet2Header::from_slice(&buf).unwrap();
        assert_eq!(eth.source, repr.src_addr.0);
        assert_eq!(eth.destination, repr.dst_addr.0);
        match repr.vlan_tci {
            Some(tci) => {
                assert_eq!(eth.ether_type, etherparse::EtherType::VLAN_TAGGED_FRAME);
                let (vlan, rest) = SingleVlanHeader::from_slice(rest).unwrap();
                assert_eq!(vlan.vlan_id.value(), tci & 0x0fff);
                assert_eq!(vlan.pcp.value(), (tci >> 13) as u8);
                assert_eq!(vlan.drop_eligible_indicator, tci & 0x1000 != 0);
                assert_eq!(vlan.ether_type.0, repr.ethertype.0);
                assert_eq!(rest.len(), 10);
            }
            None => {
                assert_eq!(eth.ether_type.0, repr.ethertype.0);
                assert_eq!(rest.len(), 10);
            }
        }
        // And back through our own parser.
        let back = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, repr);
    }
}

#[test]
fn ethernet_setters() {
    let mut buf = udp_frame(b"x");
    let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
    f.set_dst_addr(MacAddr::BROADCAST);
    f.set_src_addr(MacAddr([2, 0, 0, 0, 0, 9]));
    assert!(f.set_vlan_tci(0x0fff));
    f.set_ethertype(EtherType::ARP);
    let (eth, rest) = Ethernet2Header::from_slice(&buf).unwrap();
    assert_eq!(eth.destination, [0xff; 6]);
    assert_eq!(eth.source, [2, 0, 0, 0, 0, 9]);
    let (vlan, _) = SingleVlanHeader::from_slice(rest).unwrap();
    assert_eq!(vlan.vlan_id.value(), 0x0fff);
    assert_eq!(vlan.ether_type, etherparse::EtherType::ARP);

    let mut untagged = tcp_syn_frame(1460);
    let mut f = EthernetFrame::new_checked(&mut untagged[..]).unwrap();
    assert!(!f.set_vlan_tci(5));
    assert_eq!(f.vlan_tci(), None);
}

#[test]
fn ethernet_refusals() {
    // QinQ: etherparse writes an S-tag then a C-tag.
    let b = etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(VlanId::try_new(1).unwrap(), VlanId::try_new(2).unwrap())
        .ipv4(CLIENT, EIP1, 64)
        .udp(1, 2);
    let mut qinq = Vec::new();
    b.write(&mut qinq, &[]).unwrap();
    assert_eq!(
        EthernetFrame::new_checked(&qinq[..]).err(),
        Some(Error::Unsupported)
    );
    assert_eq!(
        EthernetFrame::new_checked(&qinq[..13]).err(),
        Some(Error::Truncated)
    );
    let tagged = udp_frame(&[]);
    assert_eq!(
        EthernetFrame::new_checked(&tagged[..17]).err(),
        Some(Error::Truncated)
    );
}

#[test]
fn arp_getters() {
    let frame = arp_frame();
    let f = EthernetFrame::new_checked(&frame[..]).unwrap();
    assert_eq!(f.ethertype(), EtherType::ARP);
    let p = ArpPacket::new_checked(f.payload()).unwrap();
    assert_eq!(p.hardware_type(), 1);
    assert_eq!(p.protocol_type(), EtherType::IPV4);
    assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
    assert_eq!(p.operation(), ArpOperation::REQUEST);
    assert_eq!(p.source_hardware_addr(), MacAddr(MAC_A));
    assert_eq!(p.source_protocol_addr(), Ipv4Addr::from(CLIENT));
    assert_eq!(p.target_hardware_addr(), MacAddr::ZERO);
    assert_eq!(p.target_protocol_addr(), Ipv4Addr::from(EIP1));
}

#[test]
fn arp_reply_round_trip() {
    let frame = arp_frame();
    let f = EthernetFrame::new_checked(&frame[..]).unwrap();
    let req = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap();
    let gw_mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let reply = req.reply(gw_mac);

    let eth = EthernetRepr {
        src_addr: gw_mac,
        dst_addr: req.source_hardware_addr,
        vlan_tci: None,
        ethertype: EtherType::ARP,
    };
    let mut out = vec![0u8; eth.buffer_len(reply.buffer_len())];
    let mut of = EthernetFrame::new_unchecked(&mut out[..]);
    eth.emit(&mut of);
    reply.emit(&mut ArpPacket::new_unchecked(of.payload_mut()));

    let (e, body) = Ethernet2Header::from_slice(&out).unwrap();
    assert_eq!(e.ether_type, etherparse::EtherType::ARP);
    assert_eq!(e.destination, MAC_A);
    // RFC 826 layout, by hand: etherparse 0.16 has no ARP.
    assert_eq!(&body[..8], &[0, 1, 8, 0, 6, 4, 0, 2]);
    assert_eq!(&body[8..14], &gw_mac.0);
    assert_eq!(&body[14..18], &EIP1);
    assert_eq!(&body[18..24], &MAC_A);
    assert_eq!(&body[24..28], &CLIENT);
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_checked(body).unwrap()).unwrap(),
        reply
    );
}
