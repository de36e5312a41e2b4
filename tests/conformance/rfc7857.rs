//! RFC 7857, updates to the NAT behavioural requirements. §2.1 (the TCP
//! state machine) and §2.2 (reopening closed connections) are being
//! reworked with TCP tracking (issue 10) and have their tests there.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::IpNumber;

const SYN: u8 = 2;
const RST: u8 = 4;
const ACK: u8 = 16;

pub fn frames(p: &mut Plan) {
    // §2.3: a connection through 10.0.0.7's elastic IP, then a RST.
    p.tunnel(0, T1, tcp(VM, 7801, REMOTE, 7800, SYN, 1000, 0));
    p.public(1, tcp(REMOTE, 7800, EIP1, 7801, SYN | ACK, 5000, 1001));
    p.tunnel(2, T1, tcp(VM, 7801, REMOTE, 7800, ACK, 1001, 5001));
    p.public(3, tcp(REMOTE, 7800, EIP1, 7801, RST, 5001, 0));
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
    assert_eq!(flags, vec![SYN | ACK, RST], "the SYN+ACK, then the RST");
    let rst = &got[1].pkt;
    assert_eq!((rst.h.source, rst.h.destination), (REMOTE, VM));
    assert!(rst.l4_checksum_ok());
}

/// RFC 7857 §11 (after RFC 6864 §5.3.1): the IP identification of a
/// translated datagram is kept.
#[test]
fn rfc7857_11_ip_identification_is_kept() {
    let got = outcome().public_where(|p| p.sport() == Some(7810));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].h.source, got[0].h.identification), (EIP1, 0x7857));
}
