//! RFC 1812, requirements for IPv4 routers: forwarding, the ICMP errors a
//! router sends, (§5.2.4 with RFC 7126) IP options, and source validation
//! (§5.3.7 martians, §5.3.8 the gateway's own addresses from outside).

use crate::harness::Tenant::T1;
use crate::harness::*;
use crate::rfc5508::with_options;
use etherparse::IpNumber;

/// 1.1.1.99: on the public port's subnet, and nobody answers ARP for it.
const SILENT: [u8; 4] = [1, 1, 1, 99];

fn ping(id: u16, ttl: u8, len: usize) -> Vec<u8> {
    with_header(&echo_request(CLIENT, EIP1, id, &vec![0x18; len]), |h| {
        h.time_to_live = ttl;
        h.identification = id;
    })
}

pub fn frames(p: &mut Plan) {
    p.public(0, ping(0x1801, 64, 32));
    p.public(0, ping(0x1802, 1, 32));
    p.public(0, ping(0x1803, 1, 1000));
    // §4.3.2.7: a datagram in two fragments, the later one's TTL run out.
    let d = with_header(&ping(0x1804, 64, 64), |h| h.dont_fragment = false);
    p.public(0, fragment(&d, 0, 32, true));
    p.public(
        0,
        with_header(&fragment(&d, 32, 40, false), |h| h.time_to_live = 1),
    );
    // §4.3.2.7: an ICMP error whose TTL runs out, about a live flow.
    p.tunnel(0, T1, udp(VM, 1805, REMOTE, 1805, b"x"));
    let sent = udp(EIP1, 1805, REMOTE, 1805, b"x");
    p.public(
        1,
        with_header(
            &icmp_error(ROUTER, EIP1, (3, 3), 0, &quote(&sent, 8)),
            |h| h.time_to_live = 1,
        ),
    );
    // §4.3.3.1: to an on-link host that never answers.
    p.tunnel(0, T1, udp(VM, 1806, SILENT, 1806, b"nobody"));
    // §5.2.7.1 with RFC 1191: too big for the tunnel, DF set.
    p.public(0, ping(0x1807, 64, 1500 - 28));
    // §4.3.3.6: the gateway's echo server.
    p.public(0, echo_request(CLIENT, GW_PUB, 0x1808, b"echo server"));
    // §5.2.4 / RFC 7126: options.
    let lsrr = [131, 7, 4, 9, 9, 9, 9, 1];
    let router_alert = [148, 4, 0, 0];
    let record_route = [7, 7, 4, 0, 0, 0, 0, 1];
    p.public(0, with_options(&ping(0x1810, 64, 8), &lsrr));
    p.public(0, with_options(&ping(0x1811, 64, 8), &router_alert));
    p.public(0, with_options(&ping(0x1812, 64, 8), &record_route));
    // §5.3.7: martian sources from the Internet.
    for (id, src) in (0x1820..).zip(MARTIANS) {
        p.public(
            0,
            with_header(&echo_request(src, EIP1, id, b"m"), |h| {
                h.identification = id
            }),
        );
    }
    // §5.3.8: the gateway's own addresses, from outside.
    for (id, src) in (0x1828..).zip([EIP2, POOL1, GW_PUB]) {
        p.public(
            0,
            with_header(&echo_request(src, EIP1, id, b"o"), |h| {
                h.identification = id
            }),
        );
    }
    // §5.3.7: martian destinations, from a tenant.
    p.tunnel(0, T1, udp(VM, 1824, [127, 0, 0, 1], 1824, b"loopback"));
    p.tunnel(0, T1, udp(VM, 1825, [240, 0, 0, 1], 1825, b"class e"));
}

/// Sources no router may forward from (§5.3.7 with §4.2.2.11).
const MARTIANS: [[u8; 4]; 4] = [
    [127, 0, 0, 1],
    [0, 0, 0, 0],
    [224, 0, 0, 1],
    [255, 255, 255, 255],
];

fn tunnelled_ping(id: u16) -> Vec<Tunnelled> {
    outcome().tunnelled_where(|t| t.pkt.h.identification == id)
}

/// ICMP errors sent to the client about its datagram `id`.
fn errors_to_client(id: u16) -> Vec<Pkt> {
    outcome().public_where(|p| {
        p.h.destination == CLIENT
            && p.icmp().is_some_and(|(t, _)| t == 3 || t == 11)
            && p.quoted().h.identification == id
    })
}

/// RFC 1812 §5.3.1: the TTL is decremented by one on the way through.
#[test]
fn rfc1812_5_3_1_ttl_is_decremented() {
    let got = tunnelled_ping(0x1801);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].pkt.h.time_to_live, got[0].pkt.h.destination),
        (63, VM)
    );
    let e = &got[0].inner_eth;
    assert_eq!(
        (e.source, e.destination),
        (T1_MAC, VM1_MAC),
        "gretap: from the tenant's MAC to the VM's"
    );
}

/// RFC 1812 §5.3.1 and §4.3.2.4/§4.3.2.5: TTL 1 is not forwarded; Time
/// Exceeded goes back from the gateway's public address, with precedence
/// 6 (DSCP CS6) and no DF, quoting the datagram as it arrived.
#[test]
fn rfc1812_5_3_1_time_exceeded() {
    assert!(tunnelled_ping(0x1802).is_empty());
    let got = errors_to_client(0x1802);
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(
        (e.h.source, e.icmp(), e.h.dscp.value(), e.h.dont_fragment),
        (GW_PUB, Some((11, 0)), 48, false)
    );
    assert!(e.icmp_checksum_ok());
    assert_eq!(
        e.payload[8..],
        ping(0x1802, 1, 32)[..],
        "the whole datagram quoted"
    );
}

/// RFC 1812 §4.3.2.3: an error quotes as much of the datagram as fits in
/// 576 bytes.
#[test]
fn rfc1812_4_3_2_3_errors_quote_up_to_576_bytes() {
    let got = errors_to_client(0x1803);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes.len(), 576);
    let sent = ping(0x1803, 1, 1000);
    assert_eq!(got[0].payload[8..], sent[..576 - 28]);
}

/// RFC 1812 §4.3.2.7: no error about a non-initial fragment, nor about an
/// ICMP error.
#[test]
fn rfc1812_4_3_2_7_no_errors_about_fragments_or_errors() {
    let out = outcome();
    assert!(errors_to_client(0x1804).is_empty());
    let first = tunnelled_ping(0x1804);
    assert_eq!(first.len(), 1, "the first fragment went through");
    let about_errors = out.public_where(|p| {
        p.icmp() == Some((11, 0))
            && p.quoted().h.protocol == IpNumber::ICMP
            && p.h.destination == ROUTER
    });
    assert!(about_errors.is_empty(), "{about_errors:?}");
    assert!(out.drops("ttl_exceeded") >= 2);
}

/// RFC 1812 §4.3.3.1: a datagram for a host that does not answer ARP gets
/// host unreachable back, sent by the resolver once the neighbour failed,
/// its quote translated back to what 10.0.0.7 sent.
#[test]
fn rfc1812_4_3_3_1_host_unreachable() {
    let got = outcome().tunnelled_where(|t| {
        t.key == 1000 && t.pkt.icmp() == Some((3, 1)) && t.pkt.quoted().h.destination == SILENT
    });
    assert_eq!(got.len(), 1);
    let e = &got[0].pkt;
    // §4.3.2.4: from the gateway's address on the side it is sent to.
    assert_eq!((e.h.source, e.h.destination), (GW_UND, VM));
    assert!(e.icmp_checksum_ok());
    let q = e.quoted();
    assert_eq!((q.h.source, q.sport()), (VM, Some(1806)));
}

/// RFC 1812 §5.2.7.1 and RFC 1191 §4: too big for the next hop with DF:
/// Fragmentation Needed with the next hop's MTU — the tunnel's: 1500 less
/// outer IPv4 (20), GRE with key (8) and the inner Ethernet (14).
#[test]
fn rfc1812_5_2_7_1_fragmentation_needed_with_the_mtu() {
    assert!(tunnelled_ping(0x1807).is_empty());
    let got = errors_to_client(0x1807);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].icmp(), Some((3, 4)));
    assert_eq!(
        u16::from_be_bytes([got[0].payload[6], got[0].payload[7]]),
        1458
    );
    assert!(got[0].icmp_checksum_ok());
}

/// RFC 1812 §4.3.3.6: the gateway answers echo requests to itself.
#[test]
fn rfc1812_4_3_3_6_echo_server() {
    let got = outcome().public_where(|p| p.icmp() == Some((0, 0)) && p.sport() == Some(0x1808));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].h.source, got[0].h.destination), (GW_PUB, CLIENT));
    assert!(got[0].payload.ends_with(b"echo server"));
    assert!(got[0].icmp_checksum_ok());
}

/// RFC 1812 §5.2.4 with RFC 7126 §4.3, §4.5, §4.8 (tgw's policy,
/// docs/packet-path.md): source routes and Record Route are dropped,
/// Router Alert goes through with its option unchanged.
#[test]
fn rfc1812_5_2_4_ip_options_by_rfc7126() {
    let out = outcome();
    assert!(tunnelled_ping(0x1810).is_empty());
    assert!(tunnelled_ping(0x1812).is_empty());
    let ra = tunnelled_ping(0x1811);
    assert_eq!(ra.len(), 1);
    assert_eq!(ra[0].pkt.bytes[20..24], [148, 4, 0, 0]);
    assert!(ra[0].pkt.icmp_checksum_ok());
    assert_eq!(out.drops("ip_option_source_route"), 1);
    assert_eq!(out.drops("ip_option_record_route"), 1);
    assert_eq!(out.worker()["ip_options_forwarded"]["router_alert"], 1);
}

/// RFC 1812 §5.3.7 (with §4.2.2.11): a packet from a martian source —
/// loopback, "this network", multicast, the limited broadcast — is not
/// forwarded.
#[test]
fn rfc1812_5_3_7_martian_sources_are_not_forwarded() {
    for id in 0x1820..0x1824 {
        assert!(tunnelled_ping(id).is_empty(), "{id:#x}");
    }
    assert_eq!(outcome().drops("martian_source"), 4);
}

/// RFC 1812 §5.3.7 (with §4.2.3.1): a packet to a martian destination —
/// loopback, class E — is not forwarded, here from a tenant.
#[test]
fn rfc1812_5_3_7_martian_destinations_are_not_forwarded() {
    let out = outcome();
    assert!(out
        .public_where(|p| matches!(p.sport(), Some(1824 | 1825)))
        .is_empty());
    assert_eq!(out.drops("martian_destination"), 2);
}

/// RFC 1812 §5.3.8 (source address validation, RFC 3704): from the
/// public side, an elastic IP, a pool address or the gateway's own
/// address as the source can only be spoofed (tgw turns its tenants'
/// packets to those around inside), and is dropped.
#[test]
fn rfc1812_5_3_8_the_gateways_own_addresses_from_outside_are_dropped() {
    for id in 0x1828..0x182b {
        assert!(tunnelled_ping(id).is_empty(), "{id:#x}");
    }
    assert_eq!(outcome().drops("spoofed_own_address"), 3);
}
