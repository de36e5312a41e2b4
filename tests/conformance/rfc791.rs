//! RFC 791 fragmentation, RFC 4787 REQ-13/REQ-14 (fragments through a
//! NAT), and the checks against crafted fragments: RFC 791's 65,535-byte
//! limit, RFC 1858 and RFC 3128 (tiny first fragments, fragments over the
//! transport header), overlaps and duplicates.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::{IpFragOffset, PacketBuilder, TcpOptionElement};

fn no_df(ip: Vec<u8>, id: u16) -> Vec<u8> {
    with_header(&ip, |h| {
        h.dont_fragment = false;
        h.identification = id;
    })
}

pub fn frames(p: &mut Plan) {
    // REQ-13a: a ping too big for the tunnel, without DF.
    p.public(
        0,
        no_df(echo_request(CLIENT, EIP1, 0x7901, &[0x79; 1600]), 0x7901),
    );
    // REQ-14: a datagram from 10.0.0.7 in two fragments, the later first.
    let d = no_df(udp(VM, 7902, REMOTE, 7902, &[0x14; 1000]), 0x7902);
    p.tunnel(0, T1, fragment(&d, 512, 600, false));
    p.tunnel(0, T1, fragment(&d, 0, 512, true));
    // REQ-14: the client's in order.
    let d = no_df(echo_request(CLIENT, EIP1, 0x7903, &[0x15; 600]), 0x7903);
    p.public(0, fragment(&d, 0, 304, true));
    p.public(0, fragment(&d, 304, 400, false));
    // RFC 791 §3.1: a later fragment ending past 65,535 bytes.
    let d = no_df(echo_request(CLIENT, EIP1, 0x7910, &[0x10; 192]), 0x7910);
    p.public(0, fragment(&d, 0, 96, true));
    let far = IpFragOffset::try_new(65_520 / 8).unwrap();
    p.public(
        0,
        with_header(&fragment(&d, 96, 40, false), |h| h.fragment_offset = far),
    );
    // RFC 3128: a SYN's first fragment cut inside its options (28 bytes of
    // header, 24 in the first fragment).
    let mut syn = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .tcp(7911, 22, 1000, 64240)
        .syn()
        .options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
        ])
        .unwrap()
        .write(&mut syn, &[0x11; 16])
        .unwrap();
    let syn = no_df(syn, 0x7911);
    p.public(0, fragment(&syn, 0, 24, true));
    // RFC 1858 §3.2: a SYN's whole header first, then a fragment at
    // offset 8 over its flags.
    let mut syn = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .tcp(7912, 22, 1000, 64240)
        .syn()
        .write(&mut syn, &[0x12; 40])
        .unwrap();
    let syn = no_df(syn, 0x7912);
    p.public(0, fragment(&syn, 0, 24, true));
    p.public(0, fragment(&syn, 8, 52, false));
    // Overlap: a piece over the first fragment's bytes, then the rest.
    let d = no_df(echo_request(CLIENT, EIP1, 0x7913, &[0x13; 192]), 0x7913);
    p.public(0, fragment(&d, 0, 96, true));
    p.public(0, fragment(&d, 88, 48, true));
    p.public(0, fragment(&d, 96, 104, false));
    // Duplicates: the first fragment and the middle one twice.
    let d = no_df(echo_request(CLIENT, EIP1, 0x7914, &[0x14; 192]), 0x7914);
    p.public(0, fragment(&d, 0, 64, true));
    p.public(0, fragment(&d, 0, 64, true));
    p.public(0, fragment(&d, 64, 64, true));
    p.public(0, fragment(&d, 64, 64, true));
    p.public(0, fragment(&d, 128, 72, false));
}

fn tunnelled_pieces(id: u16) -> Vec<Pkt> {
    outcome()
        .tunnelled_where(|t| t.pkt.h.identification == id)
        .into_iter()
        .map(|t| t.pkt)
        .collect()
}

/// The pieces' payloads put together by offset, checked to cover the
/// datagram once.
fn reassemble(mut pieces: Vec<Pkt>) -> Vec<u8> {
    pieces.sort_by_key(|p| p.h.fragment_offset.value());
    let mut data = Vec::new();
    for p in &pieces {
        assert_eq!(
            usize::from(p.h.fragment_offset.value()) * 8,
            data.len(),
            "no gap, no overlap"
        );
        data.extend_from_slice(&p.payload);
    }
    assert!(!pieces.last().unwrap().h.more_fragments);
    data
}

/// RFC 4787 §11, REQ-13a, and RFC 791 §3.2: without DF, a datagram too
/// big for the tunnel is fragmented (by the control plane), and the
/// pieces put together are the datagram, translated.
#[test]
fn rfc4787_req13a_too_big_without_df_is_fragmented() {
    let pieces: Vec<Pkt> = outcome()
        .tunnelled_where(|t| t.pkt.h.identification == 0x7901)
        .into_iter()
        .map(|t| {
            assert!(t.outer.total_len <= 1500);
            t.pkt
        })
        .collect();
    assert_eq!(pieces.len(), 2);
    assert!(pieces
        .iter()
        .all(|p| p.h.destination == VM && p.h.source == CLIENT));
    let data = reassemble(pieces);
    let sent = echo_request(CLIENT, EIP1, 0x7901, &[0x79; 1600]);
    assert_eq!(data, sent[20..], "the echo request whole");
}

/// RFC 4787 §11, REQ-14: fragments out of order are translated and sent
/// on (the later one parked until the first has passed); the datagram
/// they make has its UDP checksum right for the elastic IP.
#[test]
fn rfc4787_req14_fragments_out_of_order() {
    let out = outcome();
    let pieces = out.public_where(|p| p.h.identification == 0x7902);
    assert_eq!(pieces.len(), 2);
    assert!(pieces
        .iter()
        .all(|p| p.h.source == EIP1 && p.h.destination == REMOTE));
    let data = reassemble(pieces.clone());
    let whole = Pkt::parse(&{
        let mut ip = with_header(&pieces[0].bytes[..20], |h| {
            h.fragment_offset = etherparse::IpFragOffset::ZERO;
            h.more_fragments = false;
            h.set_payload_len(data.len()).unwrap();
        });
        ip.extend_from_slice(&data);
        ip
    });
    assert!(
        whole.l4_checksum_ok(),
        "the first fragment's checksum update covers the datagram"
    );
    assert_eq!(whole.ports(), Some((7902, 7902)));
    assert!(out.worker()["fragments_parked"].as_u64() >= Some(1));
}

/// RFC 4787 §11, REQ-14, in order from the Internet.
#[test]
fn rfc4787_req14_fragments_in_order() {
    let pieces: Vec<Pkt> = outcome()
        .tunnelled_where(|t| t.pkt.h.identification == 0x7903)
        .into_iter()
        .map(|t| t.pkt)
        .collect();
    assert_eq!(pieces.len(), 2);
    let sent = echo_request(CLIENT, EIP1, 0x7903, &[0x15; 600]);
    assert_eq!(reassemble(pieces), sent[20..]);
}

/// RFC 791 §3.1: a datagram is at most 65,535 bytes; a fragment whose
/// offset and length pass that (the "ping of death") is dropped, though
/// its first fragment went through.
#[test]
fn rfc791_3_1_no_fragment_ends_past_65535_bytes() {
    let pieces = tunnelled_pieces(0x7910);
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].h.fragment_offset.value(), 0);
    assert_eq!(outcome().drops("fragment_too_long"), 1);
}

/// RFC 3128 (and RFC 1858 §3.1): a first fragment without the whole TCP
/// header is dropped, so no later fragment can bring the header the
/// firewall decided on; its datagram goes nowhere.
#[test]
fn rfc3128_a_tiny_first_fragment_is_dropped() {
    assert!(tunnelled_pieces(0x7911).is_empty());
    assert_eq!(outcome().drops("fragment_tiny_first"), 1);
}

/// RFC 1858 §3.2 and §4: "if FO=1 and PROTOCOL=TCP then drop packet": a
/// fragment at offset 8 would rewrite the flags of the first fragment,
/// which passed the firewall, at the receiver.
#[test]
fn rfc1858_3_2_a_tcp_fragment_at_offset_8_is_dropped() {
    let pieces = tunnelled_pieces(0x7912);
    assert_eq!(pieces.len(), 1, "the first fragment only");
    assert_eq!(pieces[0].h.fragment_offset.value(), 0);
    assert_eq!(outcome().drops("fragment_header_overlap"), 1);
}

/// RFC 1858 §3.2 generalised, as Linux drops IPv4 datagrams with
/// overlapping fragments (RFC 5722's rule for IPv6): a fragment over
/// bytes already forwarded is dropped and condemns its datagram.
#[test]
fn rfc1858_3_2_an_overlapping_fragment_condemns_its_datagram() {
    assert_eq!(tunnelled_pieces(0x7913).len(), 1, "the first fragment only");
    assert_eq!(outcome().drops("fragment_overlap"), 2);
}

/// RFC 791 §3.2 (reassembly takes each piece once): a fragment seen again
/// is dropped, the datagram goes on whole.
#[test]
fn rfc791_3_2_a_fragment_seen_twice_goes_through_once() {
    let pieces = tunnelled_pieces(0x7914);
    assert_eq!(pieces.len(), 3);
    let sent = echo_request(CLIENT, EIP1, 0x7914, &[0x14; 192]);
    assert_eq!(reassemble(pieces), sent[20..]);
    assert_eq!(outcome().drops("fragment_duplicate"), 2);
}
