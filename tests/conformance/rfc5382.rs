//! RFC 5382, NAT behavioural requirements for TCP. REQ-5's timeouts are
//! in `timeouts`; the whole state machine, with its dataplane tests, is
//! docs/conntrack.md.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::IpNumber;

const OTHER: [u8; 4] = [10, 0, 0, 9];

pub fn frames(p: &mut Plan) {
    // REQ-1: one private end, two servers.
    p.tunnel(0, T1, tcp_syn(POOLED, 5301, REMOTE, 80, None));
    p.tunnel(0, T1, tcp_syn(POOLED, 5301, REMOTE2, 80, None));
    let mapped = p.snat_port(T1, POOLED, 5301);
    // REQ-7: another host, the same private port.
    p.tunnel(0, T1, tcp_syn(OTHER, 5301, REMOTE, 80, None));
    p.snat_port(T1, OTHER, 5301);
    // REQ-8: hairpinning between elastic IPs (t2 lets TCP 23 in).
    p.tunnel(0, T1, tcp_syn(VM, 5310, EIP2, 23, None));

    // REQ-4: unsolicited SYNs, to the mapping from elsewhere and to a
    // port nobody holds.
    p.public(1, tcp_syn(REMOTE, 5399, POOL1, mapped, None));
    p.public(1, tcp_syn(REMOTE, 5398, POOL1, 5398, None));
    // REQ-9 and REQ-10: a router's host unreachable about the SYN to
    // 9.9.9.9, then that server's SYN+ACK.
    let sent = tcp_syn(POOL1, mapped, REMOTE2, 80, None);
    p.public(1, icmp_error(ROUTER, POOL1, (3, 1), 0, &quote(&sent, 8)));
    p.public(2, tcp_syn(REMOTE2, 80, POOL1, mapped, Some(1001)));

    // REQ-2: a SYN sent again, through 10.0.0.7's elastic IP: once before
    // any answer, once after a SYN+ACK that was lost beyond tgw.
    p.tunnel(0, T1, tcp(VM, 5321, REMOTE, 80, SYN, 1000, 0));
    p.tunnel(1, T1, tcp(VM, 5321, REMOTE, 80, SYN, 1000, 0));
    p.public(2, tcp(REMOTE, 80, EIP1, 5321, SYN | ACK, 5000, 1001));
    p.tunnel(3, T1, tcp(VM, 5321, REMOTE, 80, SYN, 1000, 0));
    p.public(4, tcp(REMOTE, 80, EIP1, 5321, SYN | ACK, 5000, 1001));
    // REQ-2: a simultaneous open: both ends send a SYN, then a SYN+ACK.
    p.tunnel(0, T1, tcp(VM, 5331, REMOTE, 5330, SYN, 1000, 0));
    p.public(1, tcp(REMOTE, 5330, EIP1, 5331, SYN, 7000, 0));
    p.tunnel(2, T1, tcp(VM, 5331, REMOTE, 5330, SYN | ACK, 1000, 7001));
    p.public(2, tcp(REMOTE, 5330, EIP1, 5331, SYN | ACK, 7000, 1001));
    p.tunnel(3, T1, tcp(VM, 5331, REMOTE, 5330, ACK, 1001, 7001));
    // A SYN+ACK that does not acknowledge the SYN is no answer to it
    // (RFC 9293 §3.10.7.3; conntrack drops it too); the true one passes.
    p.tunnel(0, T1, tcp(VM, 5341, REMOTE, 80, SYN, 1000, 0));
    p.public(1, tcp(REMOTE, 80, EIP1, 5341, SYN | ACK, 5000, 999));
    p.public(2, tcp(REMOTE, 80, EIP1, 5341, SYN | ACK, 5000, 1001));
}

const SYN: u8 = 2;
const ACK: u8 = 16;

/// The TCP segments of (remote port, tenant port) that came out on the
/// public side (`out`) or in t1's tunnel, as (flags, from the VM).
fn segments(lport: u16) -> (Vec<u8>, Vec<u8>) {
    let out = outcome();
    let outward = out
        .public_where(|p| p.h.protocol == IpNumber::TCP && p.sport() == Some(lport))
        .iter()
        .map(|p| p.payload[13] & 0x17)
        .collect();
    let inward = out
        .tunnelled_where(|t| {
            t.key == 1000 && t.pkt.h.protocol == IpNumber::TCP && t.pkt.dport() == Some(lport)
        })
        .iter()
        .map(|t| t.pkt.payload[13] & 0x17)
        .collect();
    (outward, inward)
}

/// RFC 5382 §4.1, REQ-2 (MUST support all valid sequences of TCP
/// packets): a SYN retransmitted while the handshake waits goes out again
/// — before any answer, and after a SYN+ACK lost beyond tgw — and the
/// answers still come in.
#[test]
fn rfc5382_req2_a_retransmitted_syn_passes() {
    assert_eq!(
        segments(5321),
        (vec![SYN, SYN, SYN], vec![SYN | ACK, SYN | ACK])
    );
}

/// RFC 5382 §4.1, REQ-2: a simultaneous open (RFC 9293 §3.5, figure 8)
/// is carried both ways to the end.
#[test]
fn rfc5382_req2_a_simultaneous_open_passes() {
    assert_eq!(
        segments(5331),
        (vec![SYN, SYN | ACK, ACK], vec![SYN, SYN | ACK])
    );
}

/// RFC 9293 §3.10.7.3: a SYN+ACK must acknowledge the SYN; one that does
/// not is dropped (`invalid_state`), the true one passes.
#[test]
fn rfc9293_3_10_7_3_a_syn_ack_must_acknowledge_the_syn() {
    let (_, inward) = segments(5341);
    assert_eq!(inward, vec![SYN | ACK], "only the true SYN+ACK");
    let acks: Vec<u32> = outcome()
        .tunnelled_where(|t| t.key == 1000 && t.pkt.dport() == Some(5341))
        .iter()
        .map(|t| u32::from_be_bytes(t.pkt.payload[8..12].try_into().unwrap()))
        .collect();
    assert_eq!(acks, vec![1001]);
}

fn tcp_out(sport: u16) -> Vec<Pkt> {
    outcome().public_where(|p| p.h.protocol == IpNumber::TCP && p.sport() == Some(sport))
}

/// RFC 5382 §4.1, REQ-1: endpoint-independent mapping for TCP.
#[test]
fn rfc5382_req1_endpoint_independent_mapping() {
    let out = outcome();
    let port = out.mapped(T1, POOLED, 5301);
    let syns: Vec<_> = tcp_out(port)
        .iter()
        .map(|p| (p.h.source, p.h.destination))
        .collect();
    assert_eq!(syns, vec![(POOL1, REMOTE), (POOL1, REMOTE2)]);
    assert!(tcp_out(port).iter().all(Pkt::l4_checksum_ok));
}

/// RFC 5382 §4.3, REQ-4 (with REQ-3's filtering, address-and-port
/// dependent here): an unsolicited SYN gets no answer at all. REQ-4's
/// SHOULD (a port unreachable after 6 s) is not done: REQ-4a lets a NAT
/// whose security policy forbids it stay silent, and tgw's does (a scan
/// of the pools learns nothing).
#[test]
fn rfc5382_req4_unsolicited_syn_is_dropped_silently() {
    let out = outcome();
    let answers = out.public_where(|p| {
        p.h.destination == REMOTE
            && (matches!(p.dport(), Some(5399 | 5398))
                || (p.icmp().is_some_and(|(t, _)| t == 3)
                    && matches!(p.quoted().sport(), Some(5399 | 5398))))
    });
    assert!(answers.is_empty(), "no RST, no ICMP: {answers:?}");
    assert!(out
        .tunnelled_where(|t| matches!(t.pkt.sport(), Some(5399 | 5398)))
        .is_empty());
}

/// RFC 5382 §5 / RFC 4787 REQ-3, REQ-7: no port overloading for TCP.
#[test]
fn rfc5382_req7_no_port_overloading() {
    let out = outcome();
    let (mine, other) = (out.mapped(T1, POOLED, 5301), out.mapped(T1, OTHER, 5301));
    assert_ne!(mine, other);
    assert_eq!(tcp_out(other).len(), 1);
}

/// RFC 5382 §6, REQ-8: hairpinning for TCP. t1's 10.0.0.7 reaches t2's
/// elastic IP and arrives in t2 from t1's elastic IP, port kept.
#[test]
fn rfc5382_req8_hairpinning() {
    let got = outcome().tunnelled_where(|t| t.key == 2000 && t.pkt.sport() == Some(5310));
    assert_eq!(got.len(), 1);
    let p = &got[0].pkt;
    assert_eq!(
        (p.h.source, p.h.destination, p.dport()),
        (EIP1, VM, Some(23))
    );
    assert!(p.l4_checksum_ok());
}

/// RFC 5382 §7, REQ-9 (translate ICMP destination unreachable) and
/// REQ-10 (no ICMP ends the mapping or the connection).
#[test]
fn rfc5382_req9_req10_icmp_unreachable_translated_and_harmless() {
    let out = outcome();
    let errors = out.tunnelled_where(|t| {
        t.key == 1000 && t.pkt.icmp() == Some((3, 1)) && t.pkt.quoted().h.protocol == IpNumber::TCP
    });
    assert_eq!(errors.len(), 1, "the router's error reaches 10.0.0.8");
    let e = &errors[0].pkt;
    // Its ICMP checksum is wrong: rfc5508_req4_errors_about_pool_mappings.
    assert_eq!(e.h.destination, POOLED);
    let q = e.quoted();
    assert_eq!(
        (q.h.source, q.sport(), q.h.destination, q.dport()),
        (POOLED, Some(5301), REMOTE2, Some(80))
    );
    let synack = out.tunnelled_where(|t| {
        t.key == 1000
            && t.pkt.h.protocol == IpNumber::TCP
            && t.pkt.sport() == Some(80)
            && t.pkt.h.source == REMOTE2
    });
    assert_eq!(synack.len(), 1, "the connection lives on after the error");
    assert_eq!(synack[0].pkt.dport(), Some(5301));
}
