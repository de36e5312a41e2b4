//! RFC 2784 (GRE) and RFC 2890 (its key and sequence number extensions)
//! at the tunnel end, and TCP MSS clamping for the tunnel's overhead
//! (RFC 4459 §3.2). Datagrams from t1's 10.0.0.7 to 8.8.8.8, each from its
//! own port.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::{EtherType, TcpOptionElement};

fn inner(sport: u16) -> Vec<u8> {
    eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &udp(VM, sport, REMOTE, 2700, b"gre"),
    )
}

/// A SYN with an MSS option of 1460.
fn syn_with_mss(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut h = etherparse::TcpHeader::new(sport, dport, 1000, 64240);
    h.syn = true;
    h.set_options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap();
    let mut out = Vec::new();
    etherparse::PacketBuilder::ipv4(src, dst, 64)
        .tcp_header(h)
        .write(&mut out, &[])
        .unwrap();
    out
}

pub fn frames(p: &mut Plan) {
    let key = T1.key();
    p.tunnel_raw(0, T1, 0x2001, &[key], 0x6558, &inner(2701), 0); // version 1
    p.tunnel_raw(0, T1, 0x6000, &[key], 0x6558, &inner(2702), 0); // routing present
    p.tunnel_raw(0, T1, 0x2000 | 0x0100, &[key], 0x6558, &inner(2703), 0); // reserved bit 7
                                                                           // Checksum present: right, then wrong.
    for (sport, spoil) in [(2704, 0), (2705, 1)] {
        let body = inner(sport);
        let mut gre = vec![0xa0, 0, 0x65, 0x58, 0, 0, 0, 0];
        gre.extend_from_slice(&key.to_be_bytes());
        gre.extend_from_slice(&body);
        let sum = checksum(&gre) ^ spoil;
        p.tunnel_raw(
            0,
            T1,
            0xa000,
            &[u32::from(sum) << 16, key],
            0x6558,
            &body,
            0,
        );
    }
    p.tunnel_raw(0, T1, 0x2000, &[3000], 0x6558, &inner(2706), 0); // unknown key
    p.tunnel_raw(0, T1, 0x0000, &[], 0x6558, &inner(2707), 0); // no key
                                                               // Plain IPv4 (0x0800) to a gretap tenant.
    let ip = udp(VM, 2712, REMOTE, 2700, b"gre");
    p.tunnel_raw(0, T1, 0x2000, &[key], 0x0800, &ip, 0);
    // Sequence numbers, the later first.
    p.tunnel_raw(0, T1, 0x3000, &[key, 10], 0x6558, &inner(2708), 0);
    p.tunnel_raw(0, T1, 0x3000, &[key, 5], 0x6558, &inner(2709), 0);
    // MSS clamping, both ways.
    p.public(0, syn_with_mss(CLIENT, 2710, EIP1, 22));
    p.tunnel(0, T1, syn_with_mss(VM, 2711, REMOTE, 2711));
}

fn delivered(sport: u16) -> usize {
    outcome()
        .public_where(|p| p.sport() == Some(sport) && p.dport() == Some(2700))
        .len()
}

/// RFC 2784 §2.1/§2.2 and RFC 2890 §2: what tgw sends is version 0, no
/// checksum, the key present, no sequence number, reserved bits zero.
#[test]
fn rfc2784_2_1_headers_sent() {
    let got = outcome().tunnelled();
    assert!(!got.is_empty());
    for t in got {
        assert_eq!(t.gre[..4], [0x20, 0, 0x65, 0x58]);
    }
}

/// RFC 2784 §2.3 and §2.3.1: a version other than 0, or any of bits 1-5
/// (routing, strict source route, recursion: RFC 1701), is discarded;
/// reserved bits 6-12 are ignored.
#[test]
fn rfc2784_2_3_version_and_reserved_bits() {
    assert_eq!(delivered(2701), 0, "version 1");
    assert_eq!(delivered(2702), 0, "routing present");
    assert_eq!(delivered(2703), 1, "reserved bit 7 ignored");
    assert!(outcome().drops("gre_version") >= 2);
}

/// RFC 2784 §2.5: with C set, the checksum covers the GRE header and
/// payload; a wrong one is dropped (`gre_checksum`).
#[test]
fn rfc2784_2_5_checksum_verified() {
    assert_eq!(delivered(2704), 1);
    assert_eq!(delivered(2705), 0);
    assert_eq!(outcome().drops("gre_checksum"), 1);
}

/// RFC 2784 §2.4: the protocol type names the payload; a tenant takes the
/// one it is configured for (gretap: 0x6558), others are `gre_protocol`.
#[test]
fn rfc2784_2_4_protocol_type_is_the_tenants() {
    assert_eq!(delivered(2712), 0);
    assert_eq!(outcome().drops("gre_protocol"), 1);
}

/// RFC 2890 §2.1: the key names the tunnel (here the tenant); a key no
/// tenant has, or none, is dropped.
#[test]
fn rfc2890_2_1_key_selects_the_tenant() {
    let out = outcome();
    assert_eq!(delivered(2706), 0);
    assert_eq!(delivered(2707), 0);
    assert!(out.drops("gre_unknown_key") >= 1);
    assert!(out.drops("gre_no_key") >= 1);
}

/// RFC 2890 §2.2: tgw's choice differs from the SHOULD (discard what is
/// out of sequence): packets with S are delivered in arrival order, as
/// Linux does on a tunnel without `iseq` (docs/packet-path.md: in-order
/// delivery would need per-tunnel state written by every worker).
#[test]
fn rfc2890_2_2_sequence_numbers_do_not_reorder_or_drop() {
    let sports: Vec<_> = outcome()
        .public_where(|p| matches!(p.sport(), Some(2708 | 2709)))
        .iter()
        .map(|p| p.sport().unwrap())
        .collect();
    assert_eq!(sports, vec![2708, 2709]);
}

/// RFC 4459 §3.2: SYNs' MSS is clamped to what fits the tunnel (1458 less
/// 40), both ways.
#[test]
fn rfc4459_3_2_mss_clamped_both_ways() {
    let mss = |p: &Pkt| {
        let (h, _) = etherparse::TcpHeader::from_slice(&p.payload).unwrap();
        assert!(p.l4_checksum_ok());
        h.options_iterator().find_map(|o| match o {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
    };
    let into = outcome().tunnelled_where(|t| t.pkt.sport() == Some(2710));
    assert_eq!(into.len(), 1);
    assert_eq!(mss(&into[0].pkt), Some(1418));
    let out = outcome().public_where(|p| p.sport() == Some(2711));
    assert_eq!(out.len(), 1);
    assert_eq!(mss(&out[0]), Some(1418));
}
