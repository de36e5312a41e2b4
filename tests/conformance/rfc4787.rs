//! RFC 4787, NAT behavioural requirements for unicast UDP, through the
//! tenants' pools: t1's (2.2.2.100, address-and-port-dependent filtering)
//! and t2's (2.2.2.200, endpoint-independent), from 10.0.0.8 and 10.0.0.9,
//! which have no elastic IP.

use crate::harness::Tenant::{T1, T2};
use crate::harness::*;

const OTHER: [u8; 4] = [10, 0, 0, 9];
const STRANGER: [u8; 4] = [7, 7, 7, 7];

pub fn frames(p: &mut Plan) {
    // REQ-1: one private end, two destinations.
    p.tunnel(0, T1, udp(POOLED, 4001, REMOTE, 4700, b"req1 a"));
    p.tunnel(0, T1, udp(POOLED, 4001, REMOTE2, 4701, b"req1 b"));
    let mapped = p.snat_port(T1, POOLED, 4001);
    // REQ-3, REQ-4: the host's next ports, and another host's.
    for sport in [4002, 4003, 53] {
        p.tunnel(0, T1, udp(POOLED, sport, REMOTE, 4702, b"req3"));
        p.snat_port(T1, POOLED, sport);
    }
    p.tunnel(0, T1, udp(OTHER, 4001, REMOTE, 4703, b"req3 other host"));
    p.snat_port(T1, OTHER, 4001);
    // REQ-8, t2 (endpoint-independent): a mapping anyone may reach.
    p.tunnel(0, T2, udp(POOLED, 4010, REMOTE, 4710, b"req8 eif"));
    let eif = p.snat_port(T2, POOLED, 4010);
    // REQ-9: t1's pooled host to t2's mapping, turned around inside.
    p.tunnel(0, T1, udp(POOLED, 4020, POOL2, eif, b"req9 hairpin"));
    p.snat_port(T1, POOLED, 4020);

    // REQ-8, t1 (address and port dependent): the reply gets in, the
    // same port from another remote port or address does not.
    p.public(1, udp(REMOTE, 4700, POOL1, mapped, b"req8 reply"));
    p.public(1, udp(REMOTE, 4799, POOL1, mapped, b"req8 other port"));
    p.public(1, udp(STRANGER, 4700, POOL1, mapped, b"req8 other address"));
    p.public(1, udp(STRANGER, 4711, POOL2, eif, b"req8 eif stranger"));
    // REQ-12: an error from a router on the path about the mapping's
    // packet, then another reply on the same mapping.
    let sent = udp(POOL1, mapped, REMOTE2, 4701, b"req1 b");
    p.public(1, icmp_error(ROUTER, POOL1, (3, 1), 0, &quote(&sent, 8)));
    p.public(
        2,
        udp(REMOTE2, 4701, POOL1, mapped, b"req12 after the error"),
    );
}

/// UDP datagrams that left by the public side from t1's pool and `sport`.
fn out_from(sport: u16) -> Vec<Pkt> {
    outcome().public_where(|p| {
        p.h.protocol == etherparse::IpNumber::UDP && p.h.source == POOL1 && p.sport() == Some(sport)
    })
}

/// RFC 4787 §4.1, REQ-1: endpoint-independent mapping. Both datagrams of
/// 10.0.0.8:4001 leave from the same pool address and port.
#[test]
fn rfc4787_req1_endpoint_independent_mapping() {
    let out = outcome();
    let port = out.mapped(T1, POOLED, 4001);
    let sent = out_from(port);
    let dsts: Vec<_> = sent
        .iter()
        .map(|p| (p.h.source, p.h.destination, p.dport()))
        .collect();
    assert_eq!(
        dsts,
        vec![(POOL1, REMOTE, Some(4700)), (POOL1, REMOTE2, Some(4701))],
        "one public end for both destinations"
    );
    assert!(sent.iter().all(Pkt::l4_checksum_ok));
}

/// RFC 4787 §4.2.1, REQ-3: no port overloading (another private host
/// gets another port) and REQ-3a, which tgw does not follow: a source
/// port below 1024 is mapped into the pool's range (1024-65535 unless
/// configured) like any other. REQ-2 (paired pooling) holds with one
/// address per pool, as here.
#[test]
fn rfc4787_req3_no_port_overloading() {
    let out = outcome();
    let mine = out.mapped(T1, POOLED, 4001);
    let other = out.mapped(T1, [10, 0, 0, 9], 4001);
    assert_ne!(mine, other);
    let from_other = out_from(other);
    assert_eq!(
        from_other.len(),
        1,
        "10.0.0.9's datagram left by its own port"
    );
    assert_eq!(from_other[0].dport(), Some(4703));
    let low = out.mapped(T1, POOLED, 53);
    assert!(low >= 1024, "tgw's choice: port 53 maps to {low}");
    assert_eq!(out_from(low).len(), 1);
}

/// RFC 4787 §4.2.2, REQ-4 (port parity preservation, RECOMMENDED): not
/// done. tgw hands out each private host's ports from its own block of
/// 64 (a log line per block tells who used a port, RFC 7422's
/// deterministic style), in order: 4001, 4002, 4003 take the block's
/// first three ports whatever their parity.
#[test]
fn rfc4787_req4_ports_come_in_order_from_the_hosts_block_not_by_parity() {
    let out = outcome();
    let ports: Vec<u16> = [4001, 4002, 4003]
        .iter()
        .map(|&s| out.mapped(T1, POOLED, s))
        .collect();
    assert_eq!((ports[0] - 1024) % 64, 0, "the first port of a block");
    assert_eq!(ports, vec![ports[0], ports[0] + 1, ports[0] + 2]);
    for p in &ports[1..] {
        let sent = out_from(*p);
        assert_eq!(sent.len(), 1, "port {p} in use");
        assert_eq!(sent[0].dport(), Some(4702));
    }
}

/// RFC 4787 §5, REQ-8: address-and-port-dependent filtering (t1, the
/// default) lets in the flow's reply only; endpoint-independent (t2)
/// lets anyone reach a live mapping.
#[test]
fn rfc4787_req8_filtering_address_and_port_dependent_and_endpoint_independent() {
    let out = outcome();
    let to_pooled = |key: u32, payload: &[u8]| {
        out.tunnelled_where(|t| {
            t.key == key && t.pkt.h.destination == POOLED && t.pkt.payload.ends_with(payload)
        })
    };
    let reply = to_pooled(1000, b"req8 reply");
    assert_eq!(reply.len(), 1, "the reply reaches 10.0.0.8 in t1");
    assert_eq!(reply[0].pkt.dport(), Some(4001));
    assert!(reply[0].pkt.l4_checksum_ok());
    assert!(to_pooled(1000, b"req8 other port").is_empty());
    assert!(to_pooled(1000, b"req8 other address").is_empty());
    assert!(out.drops("nat_filtered") >= 2);
    let stranger = to_pooled(2000, b"req8 eif stranger");
    assert_eq!(
        stranger.len(),
        1,
        "t2's mapping takes a stranger's datagram"
    );
    assert_eq!(
        (stranger[0].pkt.h.source, stranger[0].pkt.dport()),
        (STRANGER, Some(4010))
    );
}

/// RFC 4787 §6, REQ-9 and REQ-9a: hairpinning, with the external source
/// address and port. 10.0.0.8 of t1 sends to t2's public mapping; it
/// arrives at 10.0.0.8 of t2 from t1's pool address and port.
#[test]
fn rfc4787_req9_hairpinning_with_the_external_source() {
    let out = outcome();
    let got = out.tunnelled_where(|t| t.key == 2000 && t.pkt.payload.ends_with(b"req9 hairpin"));
    assert_eq!(got.len(), 1, "the hairpinned datagram reaches t2");
    let p = &got[0].pkt;
    assert_eq!(
        (p.h.source, p.sport(), p.h.destination, p.dport()),
        (
            POOL1,
            Some(out.mapped(T1, POOLED, 4020)),
            POOLED,
            Some(4010)
        )
    );
    assert!(p.l4_checksum_ok());
}

/// RFC 4787 §11, REQ-12 and REQ-12a: an ICMP error does not end the
/// mapping, and one from a router on the path (not the remote end) is
/// not filtered by its source: it reaches 10.0.0.8, and the next reply
/// on the mapping does too.
#[test]
fn rfc4787_req12_icmp_neither_ends_nor_is_filtered_by_source() {
    let out = outcome();
    let errors = out.tunnelled_where(|t| {
        t.key == 1000 && t.pkt.icmp() == Some((3, 1)) && t.pkt.h.source == ROUTER
    });
    let about_mapping: Vec<_> = errors
        .iter()
        .filter(|t| t.pkt.quoted().dport() == Some(4701))
        .collect();
    assert_eq!(
        about_mapping.len(),
        1,
        "the router's error reaches 10.0.0.8"
    );
    let q = about_mapping[0].pkt.quoted();
    assert_eq!((q.h.source, q.sport()), (POOLED, Some(4001)));
    let after =
        out.tunnelled_where(|t| t.key == 1000 && t.pkt.payload.ends_with(b"req12 after the error"));
    assert_eq!(after.len(), 1, "the mapping outlived the error");
}
