//! RFC 5508, NAT behavioural requirements for ICMP: queries through a
//! pool and errors about elastic-IP flows, both ways and hairpinned.
//! REQ-2's timer is in `timeouts`.

use crate::harness::Tenant::{T1, T2};
use crate::harness::*;
use etherparse::IpNumber;

/// The ICMP error from a router about what 10.0.0.7 of t1 sent from
/// `port` to 8.8.8.8 (as it left: from its elastic IP).
fn router_error_about(port: u16) -> (Vec<u8>, Vec<u8>) {
    let sent = udp(EIP1, port, REMOTE, port, b"to be refused");
    let error = icmp_error(ROUTER, EIP1, (3, 3), 0, &quote(&sent, 8));
    (sent, error)
}

pub fn frames(p: &mut Plan) {
    // REQ-1: a ping from 10.0.0.8 to two hosts.
    p.tunnel(0, T1, echo_request(POOLED, REMOTE, 0x5501, b"req1"));
    p.tunnel(0, T1, echo_request(POOLED, REMOTE2, 0x5501, b"req1"));
    let id = p.snat_port(T1, POOLED, 0x5501);
    // The flows the errors below are about.
    for port in 5520..=5525 {
        p.tunnel(0, T1, udp(VM, port, REMOTE, port, b"to be refused"));
    }
    // REQ-7: a hairpinned ping and a hairpinned SYN between the EIPs.
    p.tunnel(0, T1, echo_request(VM, EIP2, 0x5540, b"req7"));
    p.tunnel(0, T1, tcp_syn(VM, 5541, EIP2, 23, None));
    // REQ-8: a SYN t1's rules refuse (TCP 22 outbound).
    p.tunnel(0, T1, tcp_syn(VM, 5550, REMOTE, 22, None));
    // REQ-5: the client's SYN to t1, refused later by 10.0.0.7.
    p.public(0, tcp_syn(CLIENT, 5530, EIP1, 22, None));

    // REQ-1: the reply.
    p.public(1, echo_reply(REMOTE, POOL1, id, b"req1"));
    // REQ-4 (a live flow), REQ-3 (bad ICMP checksum), REQ-3a (bad quoted
    // IPv4 checksum), REQ-3b (quoted header with options), REQ-4 (no flow).
    p.public(1, router_error_about(5520).1);
    let mut bad = router_error_about(5521).1;
    bad[22] ^= 0xff;
    p.public(1, bad);
    let (sent, _) = router_error_about(5522);
    let mut q = quote(&sent, 8);
    q[10] ^= 0xff;
    p.public(1, icmp_error(ROUTER, EIP1, (3, 3), 0, &q));
    let (sent, _) = router_error_about(5523);
    let with_nops = with_options(&sent, &[1, 1, 1, 1]);
    p.public(
        1,
        icmp_error(ROUTER, EIP1, (3, 3), 0, &quote(&with_nops, 8)),
    );
    p.public(1, router_error_about(5529).1);
    // REQ-10: time exceeded and parameter problem (pointer 8: the TTL).
    for (port, kind, rest) in [(5524, (11, 0), 0), (5525, (12, 0), 8 << 24)] {
        let sent = udp(EIP1, port, REMOTE, port, b"to be refused");
        p.public(1, icmp_error(ROUTER, EIP1, kind, rest, &quote(&sent, 8)));
    }
    // REQ-5: 10.0.0.7 refuses the client's SYN with an error.
    let received = tcp_syn(CLIENT, 5530, VM, 22, None);
    p.tunnel(
        1,
        T1,
        icmp_error(VM, CLIENT, (3, 3), 0, &quote(&received, 8)),
    );
    // REQ-6: an error about the ping to 9.9.9.9, then its reply.
    let ping = echo_request(POOL1, REMOTE2, id, b"req1");
    p.public(1, icmp_error(ROUTER, POOL1, (3, 1), 0, &quote(&ping, 8)));
    p.public(2, echo_reply(REMOTE2, POOL1, id, b"req6"));
    // REQ-7: t2's 10.0.0.7 answers the ping, and refuses the SYN with an
    // error (about the SYN as it arrived: from t1's elastic IP).
    p.tunnel(1, T2, echo_reply(VM, EIP1, 0x5540, b"req7"));
    let arrived = tcp_syn(EIP1, 5541, VM, 23, None);
    p.tunnel(1, T2, icmp_error(VM, EIP1, (3, 3), 0, &quote(&arrived, 8)));
    // REQ-5 through a pool: t2's 10.0.0.8 refuses what a stranger sent
    // to its mapping (rfc4787's REQ-8 check, round 1).
    let received = udp([7, 7, 7, 7], 4711, POOLED, 4010, b"req8 eif stranger");
    p.tunnel(
        2,
        T2,
        icmp_error(POOLED, [7, 7, 7, 7], (3, 3), 0, &quote(&received, 8)),
    );
}

/// `ip` with IPv4 options `opts` (a multiple of 4 bytes) after its header.
pub fn with_options(ip: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut out = ip[..20].to_vec();
    out.extend_from_slice(opts);
    out.extend_from_slice(&ip[20..]);
    out[0] = 0x40 | ((20 + opts.len()) / 4) as u8;
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out[10..12].fill(0);
    let sum = checksum(&out[..20 + opts.len()]);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    out
}

/// Errors tunnelled to t1's 10.0.0.7 about what it sent from `port`.
fn errors_about(port: u16) -> Vec<Tunnelled> {
    outcome().tunnelled_where(|t| {
        t.key == 1000
            && t.pkt.icmp().is_some_and(|(ty, _)| ty == 3)
            && t.pkt.quoted().sport() == Some(port)
    })
}

/// RFC 5508 §3.1, REQ-1 and REQ-1a: a private host's ping goes out, its
/// identifier mapped the same whatever the destination, and the reply
/// comes back with the host's own identifier.
#[test]
fn rfc5508_req1_icmp_query_mapping() {
    let out = outcome();
    let id = out.mapped(T1, POOLED, 0x5501);
    let pings = out
        .public_where(|p| p.icmp() == Some((8, 0)) && p.h.source == POOL1 && p.sport() == Some(id));
    let dsts: Vec<_> = pings.iter().map(|p| p.h.destination).collect();
    assert_eq!(dsts, vec![REMOTE, REMOTE2], "one identifier for both hosts");
    assert!(pings.iter().all(Pkt::icmp_checksum_ok));
    let replies = out.tunnelled_where(|t| {
        t.key == 1000
            && t.pkt.icmp() == Some((0, 0))
            && t.pkt.h.destination == POOLED
            && t.pkt.payload.ends_with(b"req1")
    });
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].pkt.sport(), Some(0x5501));
    assert!(replies[0].pkt.icmp_checksum_ok());
}

/// RFC 5508 §4.1, REQ-3: an error whose ICMP checksum is wrong is
/// dropped (SHOULD): translated and summed anew, it would reach the host
/// looking sound (`icmp_checksum`).
#[test]
fn rfc5508_req3_errors_with_a_bad_icmp_checksum_are_dropped() {
    assert!(errors_about(5521).is_empty());
}

/// RFC 5508 §4.1, REQ-3a: an error whose quoted IPv4 header checksum is
/// wrong is dropped (SHOULD, `icmp_quote_checksum`).
#[test]
fn rfc5508_req3a_errors_with_a_bad_quoted_checksum_are_dropped() {
    assert!(errors_about(5522).is_empty());
}

/// RFC 5508 §4.1, REQ-3b: the quoted header's options are skipped to find
/// its ports (MUST).
#[test]
fn rfc5508_req3b_quoted_options_are_traversed() {
    let got = errors_about(5523);
    assert_eq!(
        got.len(),
        1,
        "the error about the datagram with options gets in"
    );
    let q = got[0].pkt.quoted();
    assert_eq!((q.h.source, q.h.header_len()), (VM, 24));
    assert!(got[0].pkt.icmp_checksum_ok());
}

/// RFC 5508 §4.2, REQ-4: an error from outside about a live flow goes to
/// the private host, the quote reverted, type and code kept; one about no
/// flow is dropped (`untracked`).
#[test]
fn rfc5508_req4_external_errors_translated_or_dropped() {
    let out = outcome();
    let got = errors_about(5520);
    assert_eq!(got.len(), 1);
    let e = &got[0].pkt;
    assert_eq!(
        (e.h.source, e.h.destination, e.icmp()),
        (ROUTER, VM, Some((3, 3)))
    );
    assert!(e.icmp_checksum_ok());
    let q = e.quoted();
    assert_eq!(
        q.h.header_checksum,
        q.h.calc_header_checksum(),
        "the quoted header's checksum fixed"
    );
    assert_eq!(
        (q.h.source, q.h.destination, q.dport()),
        (VM, REMOTE, Some(5520))
    );
    // Counted as `no_route` (docs/packet-path.md says `untracked`): the
    // miss falls through to the stateless ingress.
    assert!(errors_about(5529).is_empty());
    assert!(out.drops("no_route") >= 1);
}

/// RFC 5508 §4.2, REQ-4, through a pool (NAPT): the errors about 10.0.0.8's
/// mappings (UDP, TCP, ping) must reach it as it could accept them. tgw
/// reverts the quote, sums the ICMP message anew, and then applies the
/// flow's port rewrite to the error itself: the private port lands in the
/// error's unused word (bytes 4-5, as if it were an echo identifier) and
/// the ICMP checksum is wrong, so the host drops the error.
#[test]
fn rfc5508_req4_errors_about_pool_mappings() {
    let got =
        outcome().tunnelled_where(|t| t.pkt.h.source == ROUTER && t.pkt.h.destination == POOLED);
    assert_eq!(got.len(), 3);
    for t in got {
        assert_eq!(
            t.pkt.payload[4..8],
            [0, 0, 0, 0],
            "the unused word as the router sent it"
        );
        assert!(t.pkt.icmp_checksum_ok());
    }
}

/// RFC 5508 §4.2, REQ-5: an error from a tenant about a flow it received
/// leaves from the elastic IP (REQ-5c: the mapping's public address),
/// quoting the packet as the client sent it.
#[test]
fn rfc5508_req5_internal_errors_translated() {
    let got = outcome().public_where(|p| p.icmp() == Some((3, 3)) && p.h.destination == CLIENT);
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(e.h.source, EIP1);
    assert!(e.icmp_checksum_ok());
    let q = e.quoted();
    assert_eq!(
        (q.h.source, q.sport(), q.h.destination, q.dport()),
        (CLIENT, Some(5530), EIP1, Some(22))
    );
}

/// RFC 5508 §4.2, REQ-5 through a pool (NAPT): the error leaves from the
/// pool address (REQ-5c: the NAT's own public address), the quote's
/// destination the mapping's public end. tgw gets those right and then,
/// as in the other direction, writes the mapping's public port into the
/// error's unused word and leaves its ICMP checksum wrong.
#[test]
fn rfc5508_req5_internal_errors_through_a_pool() {
    let got =
        outcome().public_where(|p| p.icmp() == Some((3, 3)) && p.h.destination == [7, 7, 7, 7]);
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(e.h.source, POOL2);
    let q = e.quoted();
    let mapped = outcome().mapped(T2, POOLED, 4010);
    assert_eq!(
        (q.h.source, q.sport(), q.h.destination, q.dport()),
        ([7, 7, 7, 7], Some(4711), POOL2, Some(mapped))
    );
    assert_eq!(e.payload[4..8], [0, 0, 0, 0], "the unused word as sent");
    assert!(e.icmp_checksum_ok());
}

/// RFC 5508 §5, REQ-6: an error about a query session does not end it:
/// the reply after it still reaches 10.0.0.8.
#[test]
fn rfc5508_req6_errors_leave_query_sessions_alone() {
    let out = outcome();
    let error = out.tunnelled_where(|t| {
        t.key == 1000 && t.pkt.icmp() == Some((3, 1)) && t.pkt.quoted().h.protocol == IpNumber::ICMP
    });
    assert_eq!(error.len(), 1, "the error about the ping reaches 10.0.0.8");
    assert_eq!(error[0].pkt.quoted().sport(), Some(0x5501));
    let reply = out.tunnelled_where(|t| t.key == 1000 && t.pkt.payload.ends_with(b"req6"));
    assert_eq!(reply.len(), 1);
}

/// RFC 5508 §6, REQ-7: hairpinned queries (Basic NAT: the elastic IPs).
#[test]
fn rfc5508_req7_hairpinned_queries() {
    let out = outcome();
    let ping = out.tunnelled_where(|t| {
        t.key == 2000 && t.pkt.icmp() == Some((8, 0)) && t.pkt.sport() == Some(0x5540)
    });
    assert_eq!(ping.len(), 1);
    assert_eq!(
        (ping[0].pkt.h.source, ping[0].pkt.h.destination),
        (EIP1, VM)
    );
    let reply = out.tunnelled_where(|t| {
        t.key == 1000 && t.pkt.icmp() == Some((0, 0)) && t.pkt.sport() == Some(0x5540)
    });
    assert_eq!(reply.len(), 1);
    assert_eq!(
        (reply[0].pkt.h.source, reply[0].pkt.h.destination),
        (EIP2, VM)
    );
}

/// RFC 5508 §6, REQ-7 and REQ-7a: hairpinned errors (MUST), the error's
/// destination the quoted source after translation: t2's error about
/// t1's hairpinned SYN turns around in the gateway and reaches t1.
#[test]
fn rfc5508_req7_hairpinned_errors() {
    let out = outcome();
    assert!(
        out.public_where(|p| p.h.destination == EIP1).is_empty(),
        "nothing leaves toward a gateway address"
    );
    let error = errors_about(5541);
    assert_eq!(
        error.len(),
        1,
        "t2's error about the hairpinned SYN reaches t1"
    );
    let e = &error[0].pkt;
    assert_eq!((e.h.source, e.h.destination), (EIP2, VM));
    let q = e.quoted();
    assert_eq!(
        (q.h.source, q.h.destination, q.dport()),
        (VM, EIP2, Some(23))
    );
}

/// RFC 5508 §7, REQ-10: the other errors about a flow — time exceeded
/// (b) and parameter problem (e), its pointer kept — are translated as
/// destination unreachable is.
#[test]
fn rfc5508_req10_time_exceeded_and_parameter_problem_translated() {
    let out = outcome();
    for (port, kind, rest) in [(5524, (11, 0), [0; 4]), (5525, (12, 0), [8, 0, 0, 0])] {
        let got = out.tunnelled_where(|t| {
            t.key == 1000 && t.pkt.icmp() == Some(kind) && t.pkt.quoted().sport() == Some(port)
        });
        assert_eq!(got.len(), 1, "{kind:?}");
        let e = &got[0].pkt;
        assert_eq!((e.h.destination, e.quoted().h.source), (VM, VM));
        assert_eq!(e.payload[4..8], rest);
        assert!(e.icmp_checksum_ok());
    }
}

/// RFC 5508 §7, REQ-8 (SHOULD send "administratively prohibited" when a
/// session cannot be made): not done. A packet the tenant's rules refuse
/// is dropped silently (`firewall`): the rules are the tenant's policy,
/// and an answer would tell a scanner what they are.
#[test]
fn rfc5508_req8_refused_sessions_are_dropped_silently() {
    let out = outcome();
    assert!(errors_about(5550).is_empty());
    assert!(out.public_where(|p| p.sport() == Some(5550)).is_empty());
    assert!(out.drops("firewall") >= 1);
}
