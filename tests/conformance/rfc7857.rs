//! RFC 7857, updates to the NAT behavioural requirements. §2.1's state
//! machine is docs/conntrack.md, with its dataplane tests.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::IpNumber;

const FIN: u8 = 1;
const SYN: u8 = 2;
const RST: u8 = 4;
const ACK: u8 = 16;

pub fn frames(p: &mut Plan) {
    // §2.3: a connection through 10.0.0.7's elastic IP, then a RST.
    p.tunnel(0, T1, tcp(VM, 7801, REMOTE, 7800, SYN, 1000, 0));
    p.public(1, tcp(REMOTE, 7800, EIP1, 7801, SYN | ACK, 5000, 1001));
    p.tunnel(2, T1, tcp(VM, 7801, REMOTE, 7800, ACK, 1001, 5001));
    p.public(3, tcp(REMOTE, 7800, EIP1, 7801, RST, 5001, 0));
    // §2.2: the same 5-tuple opened again after the RST.
    p.tunnel(4, T1, tcp(VM, 7801, REMOTE, 7800, SYN, 9000, 0));
    p.public(5, tcp(REMOTE, 7800, EIP1, 7801, SYN | ACK, 8000, 9001));
    // §2.2 and RFC 1122 §4.2.2.13: and after a FIN exchange.
    p.tunnel(0, T1, tcp(VM, 7821, REMOTE, 7820, SYN, 1000, 0));
    p.public(1, tcp(REMOTE, 7820, EIP1, 7821, SYN | ACK, 5000, 1001));
    p.tunnel(2, T1, tcp(VM, 7821, REMOTE, 7820, FIN | ACK, 1001, 5001));
    p.public(3, tcp(REMOTE, 7820, EIP1, 7821, FIN | ACK, 5001, 1002));
    p.tunnel(4, T1, tcp(VM, 7821, REMOTE, 7820, ACK, 1002, 5002));
    p.tunnel(5, T1, tcp(VM, 7821, REMOTE, 7820, SYN, 90000, 0));
    p.public(6, tcp(REMOTE, 7820, EIP1, 7821, SYN | ACK, 70000, 90001));
    // §11: IP identification through the NAT.
    let d = with_header(&udp(VM, 7810, REMOTE, 7810, b"ip id"), |h| {
        h.identification = 0x7857
    });
    p.tunnel(0, T1, d);
}

/// RFC 7857 §2.3: a RST of a live mapping is translated (MUST). Its
/// SHOULD, keeping the session 4 minutes after the RST, tgw does not
/// follow: the flow lives 10 s after a RST (a RST within the window
/// ends the connection for both ends; 10 s covers a lost RST's
/// retransmission without holding a port of the pool for minutes).
#[test]
fn rfc7857_2_3_rst_is_translated() {
    let got = outcome()
        .tunnelled_where(|t| t.pkt.h.protocol == IpNumber::TCP && t.pkt.dport() == Some(7801));
    let flags: Vec<u8> = got.iter().map(|t| t.pkt.payload[13] & 0x17).collect();
    assert_eq!(
        flags,
        vec![SYN | ACK, RST, SYN | ACK],
        "the SYN+ACK, the RST, the reopened connection's SYN+ACK"
    );
    let rst = &got[1].pkt;
    assert_eq!((rst.h.source, rst.h.destination), (REMOTE, VM));
    assert!(rst.l4_checksum_ok());
}

/// The TCP flags of the segments that left on the public side from
/// `sport`.
fn outward(sport: u16) -> Vec<u8> {
    outcome()
        .public_where(|p| p.h.protocol == IpNumber::TCP && p.sport() == Some(sport))
        .iter()
        .map(|p| p.payload[13] & 0x17)
        .collect()
}

/// RFC 7857 §2.2 (with RFC 6146 §3.5.2.2): a SYN reopens the mapping of a
/// connection closed by a RST, through the same elastic IP and port.
#[test]
fn rfc7857_2_2_a_syn_reopens_after_a_rst() {
    assert_eq!(outward(7801), vec![SYN, ACK, SYN]);
    let reopened = outcome().public_where(|p| p.sport() == Some(7801));
    assert_eq!(reopened[2].h.source, EIP1);
}

/// RFC 7857 §2.2 and RFC 1122 §4.2.2.13: a SYN with a higher sequence
/// number reopens a connection closed by FINs (TIME-WAIT), and its
/// answer comes back in.
#[test]
fn rfc7857_2_2_a_syn_reopens_after_fins() {
    assert_eq!(
        outward(7821),
        vec![SYN, FIN | ACK, ACK, SYN],
        "the handshake, the close, the new SYN"
    );
    let inward: Vec<u8> = outcome()
        .tunnelled_where(|t| t.pkt.h.protocol == IpNumber::TCP && t.pkt.dport() == Some(7821))
        .iter()
        .map(|t| t.pkt.payload[13] & 0x17)
        .collect();
    assert_eq!(inward, vec![SYN | ACK, FIN | ACK, SYN | ACK]);
}

/// RFC 7857 §11 (after RFC 6864 §5.3.1): the IP identification of a
/// translated datagram is kept.
#[test]
fn rfc7857_11_ip_identification_is_kept() {
    let got = outcome().public_where(|p| p.sport() == Some(7810));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].h.source, got[0].h.identification), (EIP1, 0x7857));
}
