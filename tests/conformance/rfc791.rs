//! RFC 791 fragmentation, and RFC 4787 REQ-13/REQ-14 (fragments through a
//! NAT). The checks against crafted fragments — RFC 1858 and RFC 3128
//! overlaps, RFC 791's 65,535-byte limit — are being built (issue 10) and
//! have their tests there.

use crate::harness::Tenant::T1;
use crate::harness::*;

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
