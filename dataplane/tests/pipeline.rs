//! The stateless packet path on the reference scenario of DESIGN.md, with
//! every frame built and every result read by etherparse (GRE, which
//! etherparse lacks, is written and read by hand from RFC 2784/2890).

use dataplane::counters::{FlowProto, TenantCounters};
use dataplane::fragments::park::Parked;
use dataplane::ip_options::Forwarded;
use dataplane::neighbour::{NeighKey, NeighbourLimits, NeighbourWriter, PROBE_MAX};
use dataplane::pipeline::{Hint, Pipeline, DEFAULT_FLOWS};
use dataplane::punt::Punt;
use dataplane::ratelimit::TokenBucket;
use dataplane::resolver::{Io, Resolver, ResolverConfig};
use dataplane::steer::Steering;
use dataplane::tables::{PortSpec, Role, RouteSpec, SnatSpec, Spec, Tables, Target, TenantSpec};
use dataplane::tenant::{Encap, TenantId};
use dataplane::{Checked, DropReason, Frame, VecFrame, Verdict, WorkerCounters};
use etherparse::{
    EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Type, IpNumber, Ipv4Header, PacketBuilder,
    SlicedPacket, TcpOptionElement, TransportSlice,
};
use std::net::Ipv4Addr;

const PUB: u16 = 0;
const UND: u16 = 1;
const PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UND_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const T1_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 0];
const T2_MAC: [u8; 6] = [2, 0, 0, 0, 0x20, 0];
const HOST1_MAC: [u8; 6] = [2, 0, 0, 0, 0xb, 0x11];
const HOST2_MAC: [u8; 6] = [2, 0, 0, 0, 0xb, 0x12];
const HOST3_MAC: [u8; 6] = [2, 0, 0, 0, 0xb, 0x13];
const VM1_MAC: [u8; 6] = [2, 0, 0, 0, 0xa, 7];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0xc, 7];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0xc, 0xfe];

const GW_PUB: [u8; 4] = [1, 1, 1, 1];
const GW_UND: [u8; 4] = [172, 168, 0, 1];
const CLIENT: [u8; 4] = [1, 1, 1, 7];
const HOST1: [u8; 4] = [172, 168, 0, 11];
const HOST2: [u8; 4] = [172, 168, 0, 12];
const HOST3: [u8; 4] = [172, 168, 0, 13];
const VM: [u8; 4] = [10, 0, 0, 7];
const EIP1: [u8; 4] = [2, 2, 2, 11];
const EIP2: [u8; 4] = [2, 2, 2, 12];

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn spec() -> Spec {
    Spec {
        ports: vec![
            PortSpec {
                id: PUB,
                role: Role::Public,
                mac: PUB_MAC,
                addrs: vec![(ip(GW_PUB), 24)],
                mtu: 1500,
            },
            PortSpec {
                id: UND,
                role: Role::Underlay,
                mac: UND_MAC,
                addrs: vec![(ip(GW_UND), 24)],
                mtu: 1500,
            },
        ],
        tenants: vec![
            TenantSpec {
                name: "t1".into(),
                key: 1000,
                encap: Encap::Gretap,
                hosts: vec![ip(HOST1), ip(HOST3)],
                prefixes: vec![(ip([10, 0, 0, 0]), 24), (ip([10, 0, 1, 0]), 24)],
                mac: T1_MAC,
                gre: Default::default(),
                routes: vec![
                    (ip([10, 0, 0, 0]), 24, Target::Host(ip(HOST1))),
                    (ip([10, 0, 1, 0]), 24, Target::Host(ip(HOST3))),
                    (ip([10, 9, 0, 0]), 16, Target::Blackhole),
                    (ip([0, 0, 0, 0]), 0, Target::Public),
                ],
                firewall: dataplane::firewall::FirewallSpec::allow_all(),
            },
            TenantSpec {
                name: "t2".into(),
                key: 2000,
                encap: Encap::Ipv4,
                hosts: vec![ip(HOST2)],
                prefixes: vec![(ip([10, 0, 0, 0]), 24)],
                mac: T2_MAC,
                gre: Default::default(),
                routes: vec![
                    (ip([10, 0, 0, 0]), 24, Target::Host(ip(HOST2))),
                    (ip([0, 0, 0, 0]), 0, Target::Public),
                ],
                firewall: dataplane::firewall::FirewallSpec::allow_all(),
            },
        ],
        routes: vec![RouteSpec {
            prefix: ip([0, 0, 0, 0]),
            len: 0,
            via: ip([1, 1, 1, 254]),
            port: PUB,
        }],
        neighbours: vec![
            (UND, ip(HOST1), HOST1_MAC),
            (UND, ip(HOST2), HOST2_MAC),
            (UND, ip(HOST3), HOST3_MAC),
            (PUB, ip([1, 1, 1, 254]), ROUTER_MAC),
            (PUB, ip(CLIENT), CLIENT_MAC),
        ],
        // Without NAT (the next issue) the routed public address is the
        // VM's own, so its MAC answers for it inside the tunnel.
        inner_neighbours: vec![
            (1000, ip(VM), VM1_MAC),
            (1000, ip(EIP1), VM1_MAC),
            (1000, ip([10, 0, 1, 5]), [2, 0, 0, 0, 0xa, 0x15]),
        ],
        ingress: Vec::new(),
        eips: vec![(ip(EIP1), 1000, ip(VM)), (ip(EIP2), 2000, ip(VM))],
        snat: Vec::new(),
        mss_clamp: true,
    }
}

struct Gw {
    tables: Tables,
    counters: WorkerCounters,
    pipeline: Pipeline,
    resolver: Resolver<VecFrame>,
}

/// The resolver's side of the world: frames from a heap, sends recorded.
#[derive(Default)]
struct Wire {
    sent: Vec<(u16, VecFrame)>,
}

impl Io<VecFrame> for Wire {
    fn alloc(&mut self) -> Option<VecFrame> {
        Some(VecFrame::new(&[], 0))
    }

    fn send(&mut self, port: u16, f: VecFrame) {
        self.sent.push((port, f));
    }
}

impl Gw {
    fn new() -> Gw {
        Self::with_spec(&spec())
    }

    fn with_spec(spec: &Spec) -> Gw {
        Self::with_resolver(
            spec,
            ResolverConfig::default(),
            NeighbourLimits::uniform(64),
        )
    }

    fn with_resolver(spec: &Spec, cfg: ResolverConfig, limits: NeighbourLimits) -> Gw {
        let mut resolver = Resolver::new(NeighbourWriter::with_limits(limits), cfg);
        let tables = Tables::build(spec, 1, resolver.writer()).expect("tables");
        let pipeline =
            Pipeline::new(TokenBucket::new(1000, 50, 1_000_000_000), 0).with_snat(&tables.pools);
        Gw {
            tables,
            counters: WorkerCounters::new(2),
            pipeline,
            resolver,
        }
    }

    fn run(&mut self, bytes: &[u8], port: u16) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(bytes, port);
        let v = self
            .pipeline
            .process(&self.tables, &self.counters, &mut f, 0);
        (v, f.data().to_vec())
    }
}

/// An IPv4 packet (no Ethernet) with a UDP payload.
fn inner_udp(src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .udp(5000, 53)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn inner_tcp_syn(src: [u8; 4], dst: [u8; 4], ttl: u8, mss: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .tcp(40000, 22, 1, 64240)
        .syn()
        .options(&[
            TcpOptionElement::MaximumSegmentSize(mss),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
        ])
        .unwrap()
        .write(&mut out, &[])
        .unwrap();
    out
}

/// Wraps an IPv4 packet in Ethernet toward `dst_mac`.
fn eth(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Ethernet2Header {
        destination: dst,
        source: src,
        ether_type: ethertype,
    }
    .write(&mut out)
    .unwrap();
    out.extend_from_slice(payload);
    out
}

/// GRE with a key (RFC 2890) from `host` to the gateway, as an underlay
/// frame. `flags` are the first 16 bits (0x2000 = K, version 0); with C
/// (0x8000) the checksum is filled in as RFC 2784 §2.5 says (the one's
/// complement of the one's complement sum of the GRE header, its checksum
/// field zero, and the payload), with S (0x1000) the sequence number is 1.
fn gre_frame(
    host: [u8; 4],
    host_mac: [u8; 6],
    flags: u16,
    key: u32,
    proto: u16,
    inner: &[u8],
) -> Vec<u8> {
    let mut gre = Vec::new();
    gre.extend_from_slice(&flags.to_be_bytes());
    gre.extend_from_slice(&proto.to_be_bytes());
    if flags & 0x8000 != 0 {
        gre.extend_from_slice(&[0, 0, 0, 0]);
    }
    if flags & 0x2000 != 0 {
        gre.extend_from_slice(&key.to_be_bytes());
    }
    if flags & 0x1000 != 0 {
        gre.extend_from_slice(&[0, 0, 0, 1]);
    }
    gre.extend_from_slice(inner);
    if flags & 0x8000 != 0 {
        let c = !fold(&gre);
        gre[4..6].copy_from_slice(&c.to_be_bytes());
    }
    let mut out = Vec::new();
    PacketBuilder::ethernet2(host_mac, UND_MAC)
        .ipv4(host, GW_UND, 64)
        .write(&mut out, IpNumber(47), &gre)
        .unwrap();
    out
}

/// Reads an outer Ethernet + IPv4 + GRE frame: (outer IPv4 header, key,
/// GRE protocol, what follows GRE).
fn open_gre(frame: &[u8]) -> (Ethernet2Header, Ipv4Header, u32, u16, Vec<u8>) {
    let (eth, rest) = Ethernet2Header::from_slice(frame).unwrap();
    let (ip, rest) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ip.protocol, IpNumber(47));
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "outer IPv4 checksum"
    );
    assert_eq!(
        usize::from(ip.total_len),
        20 + rest.len(),
        "outer total length"
    );
    assert_eq!(
        u16::from_be_bytes([rest[0], rest[1]]),
        0x2000,
        "K bit only, version 0"
    );
    let proto = u16::from_be_bytes([rest[2], rest[3]]);
    let key = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    (eth, ip, key, proto, rest[8..].to_vec())
}

/// An Ethernet/IPv4 ARP body (RFC 826), written by hand: etherparse 0.16
/// has no ARP.
fn arp_body(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4];
    b.extend_from_slice(&op.to_be_bytes());
    for part in [&sha[..], &spa[..], &tha[..], &tpa[..]] {
        b.extend_from_slice(part);
    }
    b
}

/// (operation, sha, spa, tha, tpa) of an ARP body.
type ArpFields = (u16, [u8; 6], [u8; 4], [u8; 6], [u8; 4]);

fn read_arp(b: &[u8]) -> ArpFields {
    assert_eq!(&b[..6], &[0, 1, 8, 0, 6, 4], "Ethernet/IPv4 ARP");
    let mac = |at: usize| -> [u8; 6] { b[at..at + 6].try_into().unwrap() };
    let ip4 = |at: usize| -> [u8; 4] { b[at..at + 4].try_into().unwrap() };
    (
        u16::from_be_bytes([b[6], b[7]]),
        mac(8),
        ip4(14),
        mac(18),
        ip4(24),
    )
}

/// Verifies the TCP or UDP checksum of an IPv4 packet with etherparse.
fn assert_valid_transport(packet: &[u8]) {
    let s = SlicedPacket::from_ip(packet).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = s.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    match s.transport {
        Some(TransportSlice::Tcp(t)) => assert_eq!(
            t.checksum(),
            t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(),
            "TCP checksum"
        ),
        Some(TransportSlice::Udp(u)) => assert_eq!(
            u.checksum(),
            u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(),
            "UDP checksum"
        ),
        _ => {}
    }
}

fn assert_valid_ipv4(packet: &[u8]) -> Ipv4Header {
    let (h, _) = Ipv4Header::from_slice(packet).unwrap();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
    h
}

#[test]
fn tenant1_gretap_to_internet_is_decapsulated_and_routed() {
    let mut gw = Gw::new();
    let inner = inner_udp(VM, CLIENT, 64, b"hello from t1");
    let frame = gre_frame(
        HOST1,
        HOST1_MAC,
        0x2000,
        1000,
        0x6558,
        &eth(T1_MAC, VM1_MAC, EtherType::IPV4, &inner),
    );
    let (v, out) = gw.run(&frame, UND);
    assert_eq!(v, Verdict::Forward(PUB));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(e)) = p.link else {
        panic!("no ethernet")
    };
    assert_eq!(
        (e.destination(), e.source()),
        (CLIENT_MAC, PUB_MAC),
        "client is on-link"
    );
    let h = assert_valid_ipv4(&out[14..]);
    assert_eq!(
        (h.source, h.destination, h.time_to_live),
        (EIP1, CLIENT, 63),
        "the VM's address leaves as its elastic IP"
    );
    assert_valid_transport(&out[14..]);
    assert_eq!(&out[14 + 28..], &inner[28..], "payload untouched");
    let tc = &gw.counters.tenants[0];
    assert_eq!(
        (tc.from_tunnel_packets.get(), tc.from_tunnel_bytes.get()),
        (1, inner.len() as u64)
    );
}

#[test]
fn tenant2_gre_ipv4_to_the_internet_goes_via_the_default_router() {
    let mut gw = Gw::new();
    let inner = inner_udp(VM, [8, 8, 8, 8], 10, b"t2");
    let (v, out) = gw.run(
        &gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &inner),
        UND,
    );
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(&out[..12], &[ROUTER_MAC, PUB_MAC].concat()[..]);
    let h = assert_valid_ipv4(&out[14..]);
    assert_eq!(h.time_to_live, 9);
    assert_eq!(gw.counters.tenants[1].from_tunnel_packets.get(), 1);
    assert_eq!(gw.counters.tenants[0].from_tunnel_packets.get(), 0);
}

#[test]
fn keys_hosts_and_headers_are_checked_and_every_drop_has_its_reason() {
    let mut gw = Gw::new();
    let t1_inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &inner_udp(VM, CLIENT, 64, b"x"),
    );
    let t2_inner = inner_udp(VM, CLIENT, 64, b"x");
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        (
            "tenant 2's key from tenant 1's host",
            gre_frame(HOST1, HOST1_MAC, 0x2000, 2000, 0x0800, &t2_inner),
            DropReason::GreWrongHost,
        ),
        (
            "unknown key",
            gre_frame(HOST1, HOST1_MAC, 0x2000, 3000, 0x6558, &t1_inner),
            DropReason::GreUnknownKey,
        ),
        (
            "no key",
            gre_frame(HOST1, HOST1_MAC, 0x0000, 0, 0x6558, &t1_inner),
            DropReason::GreNoKey,
        ),
        (
            "version 1",
            gre_frame(HOST1, HOST1_MAC, 0x2001, 1000, 0x6558, &t1_inner),
            DropReason::GreVersion,
        ),
        (
            "a GRE checksum that does not verify",
            wrong_gre_checksum(gre_frame(HOST1, HOST1_MAC, 0xa000, 1000, 0x6558, &t1_inner)),
            DropReason::GreChecksum,
        ),
        (
            "routing present (RFC 2784 bit 1: discard)",
            gre_frame(HOST1, HOST1_MAC, 0x6000, 1000, 0x6558, &t1_inner),
            DropReason::GreVersion,
        ),
        (
            "strict source route (RFC 2784 bit 4: discard)",
            gre_frame(HOST1, HOST1_MAC, 0x2800, 1000, 0x6558, &t1_inner),
            DropReason::GreVersion,
        ),
        (
            "recursion control (RFC 2784 bit 5: discard)",
            gre_frame(HOST1, HOST1_MAC, 0x2400, 1000, 0x6558, &t1_inner),
            DropReason::GreVersion,
        ),
        (
            "IPv4 payload on a gretap tenant",
            gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x0800, &t2_inner),
            DropReason::GreProtocol,
        ),
        (
            "inner source outside the tenant",
            gre_frame(
                HOST1,
                HOST1_MAC,
                0x2000,
                1000,
                0x6558,
                &eth(
                    T1_MAC,
                    VM1_MAC,
                    EtherType::IPV4,
                    &inner_udp([10, 0, 2, 7], CLIENT, 64, b"x"),
                ),
            ),
            DropReason::TenantSpoof,
        ),
        (
            "inner frame to another MAC",
            gre_frame(
                HOST1,
                HOST1_MAC,
                0x2000,
                1000,
                0x6558,
                &eth(
                    [2, 9, 9, 9, 9, 9],
                    VM1_MAC,
                    EtherType::IPV4,
                    &inner_udp(VM, CLIENT, 64, b"x"),
                ),
            ),
            DropReason::InnerNotForUs,
        ),
        (
            "blackholed destination",
            gre_frame(
                HOST1,
                HOST1_MAC,
                0x2000,
                1000,
                0x6558,
                &eth(
                    T1_MAC,
                    VM1_MAC,
                    EtherType::IPV4,
                    &inner_udp(VM, [10, 9, 1, 1], 64, b"x"),
                ),
            ),
            DropReason::Blackhole,
        ),
    ];
    for (what, frame, reason) in cases {
        assert_eq!(gw.run(&frame, UND).0, Verdict::Drop(reason), "{what}");
    }
    let mut truncated = gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &[]);
    truncated.truncate(14 + 20 + 6);
    // Fix the outer length so only GRE is short.
    truncated[16..18].copy_from_slice(&26u16.to_be_bytes());
    truncated[24..26].fill(0);
    let sum = Ipv4Header::from_slice(&truncated[14..])
        .unwrap()
        .0
        .calc_header_checksum();
    truncated[24..26].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        gw.run(&truncated, UND).0,
        Verdict::Drop(DropReason::GreTruncated)
    );
}

/// `frame` (from [`gre_frame`] with C set) with its GRE checksum off by one.
fn wrong_gre_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let at = 14 + 20 + 4;
    assert_eq!(frame[14 + 20] & 0x80, 0x80, "C is set");
    let c = u16::from_be_bytes([frame[at], frame[at + 1]]).wrapping_add(1);
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    frame
}

/// A host whose tunnel sends checksums or sequence numbers (Linux's
/// `ip link add ... type gretap key K csum seq`, RFC 2784 / 2890): its
/// packets are taken as if they had the key alone, a checksum is verified
/// and a wrong one dropped and counted, a sequence number is skipped, and
/// the reserved bits 6-12 are ignored as RFC 2784 §2.3 requires. Both
/// encapsulations, and an odd-length payload (the checksum pads it with a
/// zero byte) with Ethernet padding that is not zero after the outer
/// packet (not covered by the checksum).
#[test]
fn gre_checksums_and_sequence_numbers_are_verified_and_skipped() {
    let t1_inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &inner_udp(VM, CLIENT, 64, b"odd"),
    );
    let t2_inner = inner_udp(VM, CLIENT, 64, b"odd");
    assert_eq!(t2_inner.len() % 2, 1, "an odd-length payload");
    let tenants = [
        ("gretap", HOST1, HOST1_MAC, 1000, 0x6558, &t1_inner, 0),
        ("ipv4", HOST2, HOST2_MAC, 2000, 0x0800, &t2_inner, 1),
    ];
    for (encap, host, mac, key, proto, inner, index) in tenants {
        let mut gw = Gw::new();
        let (plain_v, plain) = gw.run(&gre_frame(host, mac, 0x2000, key, proto, inner), UND);
        assert_eq!(plain_v, Verdict::Forward(PUB), "{encap}, K only");
        for (what, flags) in [
            ("C", 0xa000),
            ("S", 0x3000),
            ("C+S", 0xb000),
            ("C+S and reserved bits 6-12", 0xb3f8),
        ] {
            let mut frame = gre_frame(host, mac, flags, key, proto, inner);
            frame.extend_from_slice(&[0xa5; 7]); // Ethernet padding
            let (v, out) = gw.run(&frame, UND);
            assert_eq!(v, Verdict::Forward(PUB), "{encap}, {what}");
            assert_eq!(out, plain, "{encap}, {what}: as with the key alone");
        }
        for flags in [0xa000, 0xb000] {
            let frame = wrong_gre_checksum(gre_frame(host, mac, flags, key, proto, inner));
            let (v, _) = gw.run(&frame, UND);
            assert_eq!(
                v,
                Verdict::Drop(DropReason::GreChecksum),
                "{encap}, {flags:#x}"
            );
        }
        let tc = gw.counters.tenant(index).unwrap();
        assert_eq!(tc.from_tunnel_packets.get(), 5, "{encap}");
    }
}

#[test]
fn inbound_to_an_elastic_ip_is_encapsulated_toward_the_right_host_and_key() {
    let mut gw = Gw::new();
    let inner = inner_udp(CLIENT, EIP1, 64, b"to t1");
    let (v, out) = gw.run(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &inner), PUB);
    assert_eq!(v, Verdict::Forward(UND));
    let (e, outer, key, proto, rest) = open_gre(&out);
    assert_eq!((e.destination, e.source), (HOST1_MAC, UND_MAC));
    assert_eq!(
        (outer.source, outer.destination, outer.time_to_live),
        (GW_UND, HOST1, 64)
    );
    assert_eq!((key, proto), (1000, 0x6558));
    let (ie, inner_ip) = Ethernet2Header::from_slice(&rest).unwrap();
    assert_eq!(
        (ie.destination, ie.source, ie.ether_type),
        (VM1_MAC, T1_MAC, EtherType::IPV4)
    );
    let h = assert_valid_ipv4(inner_ip);
    assert_eq!(
        (h.source, h.destination, h.time_to_live),
        (CLIENT, VM, 63),
        "the elastic IP is translated to the VM's address"
    );
    assert_valid_transport(inner_ip);
    assert_eq!(gw.counters.tenants[0].to_tunnel_packets.get(), 1);

    // Tenant 2: GRE-IPv4, no inner Ethernet, key 2000, host .12.
    let (v, out) = gw.run(
        &eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &inner_udp(CLIENT, EIP2, 64, b"to t2"),
        ),
        PUB,
    );
    assert_eq!(v, Verdict::Forward(UND));
    let (e, outer, key, proto, rest) = open_gre(&out);
    assert_eq!(
        (e.destination, outer.destination, key, proto),
        (HOST2_MAC, HOST2, 2000, 0x0800)
    );
    assert_eq!(assert_valid_ipv4(&rest).destination, VM);
    assert_valid_transport(&rest);
}

#[test]
fn outer_header_carries_dscp_ecn_and_df_of_the_inner_packet() {
    let mut gw = Gw::new();
    let mut inner = inner_udp(CLIENT, EIP2, 64, b"marked");
    inner[1] = (46 << 2) | 1; // EF, ECT(1)
    inner[6] |= 0x40; // DF
    inner[10..12].fill(0);
    let sum = Ipv4Header::from_slice(&inner)
        .unwrap()
        .0
        .calc_header_checksum();
    inner[10..12].copy_from_slice(&sum.to_be_bytes());
    let (_, out) = gw.run(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &inner), PUB);
    let (_, outer, ..) = open_gre(&out);
    assert_eq!(
        (outer.dscp.value(), outer.ecn.value(), outer.dont_fragment),
        (46, 1, true)
    );
}

#[test]
fn outer_ce_marks_the_inner_packet_or_drops_a_not_ect_one() {
    let mut gw = Gw::new();
    let mut ect = inner_udp(VM, CLIENT, 64, b"ecn");
    ect[1] = 2; // ECT(0)
    ect[10..12].fill(0);
    let sum = Ipv4Header::from_slice(&ect)
        .unwrap()
        .0
        .calc_header_checksum();
    ect[10..12].copy_from_slice(&sum.to_be_bytes());
    for (inner, expect_ce) in [(ect, true), (inner_udp(VM, CLIENT, 64, b"not-ect"), false)] {
        let mut frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &inner);
        frame[15] |= 3; // outer CE
        frame[24..26].fill(0);
        let sum = Ipv4Header::from_slice(&frame[14..])
            .unwrap()
            .0
            .calc_header_checksum();
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        let (v, out) = gw.run(&frame, UND);
        if expect_ce {
            assert_eq!(v, Verdict::Forward(PUB));
            assert_eq!(assert_valid_ipv4(&out[14..]).ecn.value(), 3);
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::EcnDrop));
        }
    }
}

#[test]
fn east_west_traffic_is_re_encapsulated_with_the_same_key() {
    let mut gw = Gw::new();
    let inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &inner_udp(VM, [10, 0, 1, 5], 64, b"ew"),
    );
    let (v, out) = gw.run(
        &gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner),
        UND,
    );
    assert_eq!(v, Verdict::Forward(UND));
    let (e, outer, key, _, rest) = open_gre(&out);
    assert_eq!(
        (e.destination, outer.destination, key),
        (HOST3_MAC, HOST3, 1000)
    );
    assert_eq!(assert_valid_ipv4(&rest[14..]).time_to_live, 63);
}

#[test]
fn arp_for_the_gateway_is_answered_and_other_arp_is_not() {
    let mut gw = Gw::new();
    let request = |target: [u8; 4]| {
        eth(
            [0xff; 6],
            CLIENT_MAC,
            EtherType::ARP,
            &arp_body(1, CLIENT_MAC, CLIENT, [0; 6], target),
        )
    };
    let (v, out) = gw.run(&request(GW_PUB), PUB);
    assert_eq!(v, Verdict::Forward(PUB));
    let (e, rest) = Ethernet2Header::from_slice(&out).unwrap();
    assert_eq!(
        (e.destination, e.source, e.ether_type),
        (CLIENT_MAC, PUB_MAC, EtherType::ARP)
    );
    assert_eq!(read_arp(rest), (2, PUB_MAC, GW_PUB, CLIENT_MAC, CLIENT));
    assert_eq!(
        gw.run(&request([1, 1, 1, 99]), PUB).0,
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    assert_eq!(gw.counters.arp_replies.get(), 1);
}

#[test]
fn arp_inside_a_gretap_tunnel_is_answered_back_into_it() {
    let mut gw = Gw::new();
    let arp = eth(
        [0xff; 6],
        VM1_MAC,
        EtherType::ARP,
        &arp_body(1, VM1_MAC, VM, [0; 6], [10, 0, 0, 1]),
    );
    let (v, out) = gw.run(
        &gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &arp),
        UND,
    );
    assert_eq!(v, Verdict::Forward(UND));
    let (e, outer, key, proto, rest) = open_gre(&out);
    assert_eq!((e.destination, e.source), (HOST1_MAC, UND_MAC));
    assert_eq!(
        (outer.source, outer.destination, key, proto),
        (GW_UND, HOST1, 1000, 0x6558)
    );
    let (ie, body) = Ethernet2Header::from_slice(&rest).unwrap();
    assert_eq!((ie.destination, ie.source), (VM1_MAC, T1_MAC));
    assert_eq!(read_arp(body), (2, T1_MAC, [10, 0, 0, 1], VM1_MAC, VM));
}

#[test]
fn ping_to_the_gateway_is_answered_on_both_sides() {
    let mut gw = Gw::new();
    for (port, gw_mac, gw_ip, peer_mac, peer_ip) in [
        (PUB, PUB_MAC, GW_PUB, CLIENT_MAC, CLIENT),
        (UND, UND_MAC, GW_UND, HOST1_MAC, HOST1),
    ] {
        let mut req = Vec::new();
        PacketBuilder::ethernet2(peer_mac, gw_mac)
            .ipv4(peer_ip, gw_ip, 20)
            .icmpv4_echo_request(77, 3)
            .write(&mut req, b"ping!")
            .unwrap();
        let (v, out) = gw.run(&req, port);
        assert_eq!(v, Verdict::Forward(port));
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ipv4)) = &p.net else {
            panic!()
        };
        assert_eq!(
            (ipv4.header().source(), ipv4.header().destination()),
            (gw_ip, peer_ip)
        );
        let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!("not ICMP")
        };
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::EchoReply(IcmpEchoHeader { id: 77, seq: 3 })
        );
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );
        assert_eq!(icmp.payload(), b"ping!");
    }
    assert_eq!(gw.counters.echo_replies.get(), 2);
}

#[test]
fn ttl_expiry_inbound_answers_time_exceeded_to_the_sender() {
    let mut gw = Gw::new();
    let orig = inner_udp(CLIENT, EIP1, 1, b"traceroute");
    let (v, out) = gw.run(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &orig), PUB);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(&out[..6], &CLIENT_MAC);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ipv4)) = &p.net else {
        panic!()
    };
    assert_eq!(
        (ipv4.header().source(), ipv4.header().destination()),
        (GW_PUB, CLIENT)
    );
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    assert_eq!(
        icmp.payload(),
        &orig[..],
        "the whole short original is quoted"
    );
    assert_eq!(gw.counters.icmp_errors.get(), 1);
}

#[test]
fn too_big_with_df_answers_fragmentation_needed_with_the_tunnel_mtu() {
    let mut gw = Gw::new();
    let mut big = inner_udp(CLIENT, EIP1, 64, &[0u8; 1472]);
    big[6] |= 0x40;
    big[10..12].fill(0);
    let sum = Ipv4Header::from_slice(&big)
        .unwrap()
        .0
        .calc_header_checksum();
    big[10..12].copy_from_slice(&sum.to_be_bytes());
    let (v, out) = gw.run(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &big), PUB);
    assert_eq!(v, Verdict::Forward(PUB));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    // 1500 - outer IPv4 (20) - GRE with key (8) - inner Ethernet (14).
    assert_eq!(
        icmp.icmp_type(),
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1458 }
        )
    );
    assert!(out.len() <= 14 + 576);
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );

    // Without DF it is to be cut into fragments, by the control plane.
    let mut no_df = big.clone();
    no_df[6] &= !0x40;
    no_df[10..12].fill(0);
    let sum = Ipv4Header::from_slice(&no_df)
        .unwrap()
        .0
        .calc_header_checksum();
    no_df[10..12].copy_from_slice(&sum.to_be_bytes());
    let (v, _) = gw.run(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &no_df), PUB);
    assert_eq!(v, Verdict::Punt);
}

#[test]
fn syn_mss_is_clamped_to_the_tunnel() {
    let mut gw = Gw::new();
    let (v, out) = gw.run(
        &eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &inner_tcp_syn(CLIENT, EIP1, 64, 1460),
        ),
        PUB,
    );
    assert_eq!(v, Verdict::Forward(UND));
    let (.., rest) = open_gre(&out);
    let p = SlicedPacket::from_ethernet(&rest).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!()
    };
    let mss = tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    assert_eq!(mss, Some(1458 - 40));
    let Some(etherparse::NetSlice::Ipv4(ipv4)) = &p.net else {
        panic!()
    };
    let h = ipv4.header();
    assert_eq!(
        tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap(),
        tcp.checksum()
    );
}

#[test]
fn two_tenants_with_the_same_address_never_see_each_others_packets() {
    let mut gw = Gw::new();
    // Both tenants send from 10.0.0.7 to 10.0.0.7 (their own VRF): each
    // must come back into its own tunnel, with its own key.
    let t1 = gre_frame(
        HOST1,
        HOST1_MAC,
        0x2000,
        1000,
        0x6558,
        &eth(
            T1_MAC,
            VM1_MAC,
            EtherType::IPV4,
            &inner_udp(VM, VM, 64, b"1"),
        ),
    );
    let t2 = gre_frame(
        HOST2,
        HOST2_MAC,
        0x2000,
        2000,
        0x0800,
        &inner_udp(VM, VM, 64, b"2"),
    );
    let (v1, o1) = gw.run(&t1, UND);
    let (v2, o2) = gw.run(&t2, UND);
    assert_eq!((v1, v2), (Verdict::Forward(UND), Verdict::Forward(UND)));
    let (_, h1, k1, ..) = open_gre(&o1);
    let (_, h2, k2, ..) = open_gre(&o2);
    assert_eq!((h1.destination, k1), (HOST1, 1000));
    assert_eq!((h2.destination, k2), (HOST2, 2000));
}

#[test]
fn arbitrary_frames_end_as_sent_or_dropped_with_a_reason_never_a_panic() {
    let mut gw = Gw::new();
    let seeds: Vec<Vec<u8>> = vec![
        gre_frame(
            HOST1,
            HOST1_MAC,
            0x2000,
            1000,
            0x6558,
            &eth(
                T1_MAC,
                VM1_MAC,
                EtherType::IPV4,
                &inner_udp(VM, CLIENT, 64, b"seed"),
            ),
        ),
        gre_frame(
            HOST2,
            HOST2_MAC,
            0x2000,
            2000,
            0x0800,
            &inner_tcp_syn(VM, CLIENT, 64, 1460),
        ),
        eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &inner_udp(CLIENT, EIP1, 64, b"in"),
        ),
        eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &inner_tcp_syn(CLIENT, EIP2, 2, 1400),
        ),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut sent, mut dropped, mut punted) = (0, 0, 0u64);
    let mut wire = Wire::default();
    for i in 0..100_000 {
        let mut f = seeds[i % seeds.len()].clone();
        for _ in 0..(rnd() % 4) {
            let at = (rnd() as usize) % f.len();
            f[at] = rnd() as u8;
        }
        if rnd() % 8 == 0 {
            let len = (rnd() as usize) % (f.len() + 1);
            f.truncate(len);
        }
        let port = (rnd() % 3) as u16;
        let mut frame = VecFrame::new(&f, port);
        match gw
            .pipeline
            .process(&gw.tables, &gw.counters, &mut frame, i as u64)
        {
            Verdict::Forward(p) => {
                assert!(p == PUB || p == UND);
                assert!(frame.len() >= 14);
                sent += 1;
            }
            Verdict::Drop(_) => dropped += 1,
            Verdict::Punt => {
                // What a worker punts, the resolver takes without a panic.
                punted += 1;
                let now = i as u64;
                gw.resolver.punted(&gw.tables, frame, now, &mut wire);
                gw.resolver.poll(&gw.tables, now, &mut wire);
            }
            Verdict::Handoff(w) => panic!("one worker handed off to {w}"),
            // A later fragment before its first, which nobody sends here.
            Verdict::Park(_) => dropped += 1,
        }
    }
    assert!(
        sent > 1000 && dropped > 1000,
        "sent {sent}, dropped {dropped}: the mutations should do both"
    );
    assert_eq!(gw.counters.punted.get(), punted, "every punt is counted");
    assert!(
        wire.sent.iter().all(|(p, f)| *p <= UND && f.len() >= 14),
        "what the resolver sends is a frame for a real port"
    );
}

// ------------------------------------------------------- the resolver

const RETRY_MS: u64 = 1000;

/// The reference spec without the static MACs `drop` names.
fn spec_without(drop_ports: &[[u8; 4]], drop_inner: &[[u8; 4]]) -> Spec {
    let mut s = spec();
    s.neighbours
        .retain(|(_, ip, _)| !drop_ports.contains(&ip.octets()));
    s.inner_neighbours
        .retain(|(_, ip, _)| !drop_inner.contains(&ip.octets()));
    s
}

impl Gw {
    /// Runs a frame through the pipeline and, if punted, the resolver,
    /// as a worker and the control plane would.
    fn run_at(&mut self, bytes: &[u8], port: u16, now: u64, wire: &mut Wire) -> Verdict {
        let mut f = VecFrame::new(bytes, port);
        let v = self
            .pipeline
            .process(&self.tables, &self.counters, &mut f, now);
        match v {
            Verdict::Punt => self.resolver.punted(&self.tables, f, now, wire),
            Verdict::Forward(p) => wire.sent.push((p, f)),
            Verdict::Drop(_) | Verdict::Handoff(_) | Verdict::Park(_) => {}
        }
        v
    }
}

/// The ARP requests on the wire: (port, Ethernet destination, ARP fields).
fn requests(wire: &Wire) -> Vec<(u16, [u8; 6], ArpFields)> {
    wire.sent
        .iter()
        .filter_map(|(p, f)| {
            let (e, body) = Ethernet2Header::from_slice(f.data()).ok()?;
            (e.ether_type == EtherType::ARP).then(|| (*p, e.destination, read_arp(body)))
        })
        .collect()
}

#[test]
fn an_unresolved_router_is_asked_for_and_the_held_frame_leaves_after_its_reply() {
    const ROUTER: [u8; 4] = [1, 1, 1, 254];
    let mut gw = Gw::with_spec(&spec_without(&[ROUTER], &[]));
    let mut wire = Wire::default();
    let out = inner_udp(VM, [8, 8, 8, 8], 64, b"to the internet");
    let frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &out);

    assert_eq!(gw.run_at(&frame, UND, 0, &mut wire), Verdict::Punt);
    assert_eq!(gw.run_at(&frame, UND, 1, &mut wire), Verdict::Punt);
    let asked = requests(&wire);
    assert_eq!(
        asked,
        vec![(PUB, [0xff; 6], (1, PUB_MAC, GW_PUB, [0; 6], ROUTER))],
        "one broadcast request for two held frames"
    );
    assert_eq!(gw.resolver.held(), 2);

    // A reply nobody asked for teaches nothing.
    let stranger = [1, 1, 1, 99];
    let unsolicited = eth(
        PUB_MAC,
        [2, 0, 0, 0, 9, 9],
        EtherType::ARP,
        &arp_body(2, [2, 0, 0, 0, 9, 9], stranger, PUB_MAC, GW_PUB),
    );
    assert_eq!(gw.run_at(&unsolicited, PUB, 2, &mut wire), Verdict::Punt);
    assert_eq!(gw.resolver.stats().ignored, 1);

    wire.sent.clear();
    let reply = eth(
        PUB_MAC,
        ROUTER_MAC,
        EtherType::ARP,
        &arp_body(2, ROUTER_MAC, ROUTER, PUB_MAC, GW_PUB),
    );
    assert_eq!(gw.run_at(&reply, PUB, 3, &mut wire), Verdict::Punt);
    assert_eq!(wire.sent.len(), 2, "both held frames are released");
    for (port, f) in &wire.sent {
        assert_eq!(*port, PUB);
        let (e, ip) = Ethernet2Header::from_slice(f.data()).unwrap();
        assert_eq!((e.destination, e.source), (ROUTER_MAC, PUB_MAC));
        let h = assert_valid_ipv4(ip);
        assert_eq!(
            (h.source, h.destination, h.time_to_live),
            (EIP2, [8, 8, 8, 8], 63)
        );
    }
    assert_eq!(gw.resolver.held(), 0);

    // From now on the worker sends by itself.
    let (v, sent) = gw.run(&frame, UND);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(&sent[..6], &ROUTER_MAC);
}

#[test]
fn a_silent_neighbour_is_asked_again_then_failed_then_forgotten() {
    const ROUTER: [u8; 4] = [1, 1, 1, 254];
    let mut gw = Gw::with_spec(&spec_without(&[ROUTER], &[]));
    let mut wire = Wire::default();
    let frame = gre_frame(
        HOST2,
        HOST2_MAC,
        0x2000,
        2000,
        0x0800,
        &inner_udp(VM, [8, 8, 8, 8], 64, b"x"),
    );
    assert_eq!(gw.run_at(&frame, UND, 0, &mut wire), Verdict::Punt);
    let retries = u64::from(ResolverConfig::default().retries);
    for t in 1..retries {
        gw.resolver.poll(&gw.tables, t * RETRY_MS - 1, &mut wire);
        assert_eq!(requests(&wire).len() as u64, t, "not before the retry time");
        gw.resolver.poll(&gw.tables, t * RETRY_MS, &mut wire);
        assert_eq!(requests(&wire).len() as u64, t + 1);
    }
    gw.resolver.poll(&gw.tables, retries * RETRY_MS, &mut wire);
    assert_eq!(gw.resolver.stats().failed, 1);
    assert_eq!(
        gw.resolver.stats().host_unreachable,
        1,
        "the held frame is answered"
    );
    assert_eq!(gw.resolver.stats().dropped, 0);
    assert_eq!(gw.resolver.held(), 0);
    // Failed: workers answer host unreachable without asking.
    let asked = requests(&wire).len();
    let (v, _) = gw.run(&frame, UND);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(gw.counters.host_unreachable.get(), 1);
    assert_eq!(requests(&wire).len(), asked);
    // After as long again, the next frame asks anew.
    gw.resolver
        .poll(&gw.tables, 2 * retries * RETRY_MS, &mut wire);
    let before = requests(&wire).len();
    assert_eq!(
        gw.run_at(&frame, UND, 2 * retries * RETRY_MS + 1, &mut wire),
        Verdict::Punt
    );
    assert_eq!(requests(&wire).len(), before + 1);
}

#[test]
fn a_learned_neighbour_is_confirmed_by_unicast_and_forgotten_if_silent() {
    const ROUTER: [u8; 4] = [1, 1, 1, 254];
    let cfg = ResolverConfig::default();
    let mut gw = Gw::with_spec(&spec_without(&[ROUTER], &[]));
    let mut wire = Wire::default();
    let frame = gre_frame(
        HOST2,
        HOST2_MAC,
        0x2000,
        2000,
        0x0800,
        &inner_udp(VM, [8, 8, 8, 8], 64, b"x"),
    );
    let reply = eth(
        PUB_MAC,
        ROUTER_MAC,
        EtherType::ARP,
        &arp_body(2, ROUTER_MAC, ROUTER, PUB_MAC, GW_PUB),
    );
    gw.run_at(&frame, UND, 0, &mut wire);
    gw.run_at(&reply, PUB, 10, &mut wire);
    wire.sent.clear();

    // Reachable until reachable_ms; then a unicast request, still in use.
    let confirm_at = 10 + cfg.reachable_ms;
    gw.resolver.poll(&gw.tables, confirm_at - 1, &mut wire);
    assert!(requests(&wire).is_empty());
    gw.resolver.poll(&gw.tables, confirm_at, &mut wire);
    assert_eq!(
        requests(&wire),
        vec![(PUB, ROUTER_MAC, (1, PUB_MAC, GW_PUB, ROUTER_MAC, ROUTER))]
    );
    assert_eq!(gw.run(&frame, UND).0, Verdict::Forward(PUB));

    // An answer keeps it; silence after the retries forgets it.
    gw.run_at(&reply, PUB, confirm_at + 5, &mut wire);
    let again = confirm_at + 5 + cfg.reachable_ms;
    for k in 0..u64::from(cfg.retries) {
        gw.resolver
            .poll(&gw.tables, again + k * cfg.retry_ms, &mut wire);
    }
    assert_eq!(gw.resolver.stats().expired, 0);
    gw.resolver.poll(
        &gw.tables,
        again + u64::from(cfg.retries) * cfg.retry_ms,
        &mut wire,
    );
    assert_eq!(gw.resolver.stats().expired, 1);
    assert_eq!(gw.run(&frame, UND).0, Verdict::Punt, "asked for anew");
}

#[test]
fn a_host_inside_a_gretap_tunnel_is_resolved_through_the_tunnel() {
    let mut wire = Wire::default();
    // Without NAT (the next issue) a public destination is routed to the
    // host unchanged: route the VM's own address in, and resolve it.
    let inbound_to_vm = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &inner_udp(CLIENT, VM, 64, b"for the vm"),
    );
    let mut s = spec_without(&[], &[VM]);
    s.ingress.push((ip(VM), 32, 1000));
    let mut gw = Gw::with_spec(&s);

    assert_eq!(gw.run_at(&inbound_to_vm, PUB, 0, &mut wire), Verdict::Punt);
    // The request goes into tenant 1's tunnel to its host, from 0.0.0.0.
    assert_eq!(wire.sent.len(), 1);
    let (port, f) = &wire.sent[0];
    assert_eq!(*port, UND);
    let (e, outer, key, proto, rest) = open_gre(f.data());
    assert_eq!((e.destination, e.source), (HOST1_MAC, UND_MAC));
    assert_eq!((outer.destination, key, proto), (HOST1, 1000, 0x6558));
    let (ie, body) = Ethernet2Header::from_slice(&rest).unwrap();
    assert_eq!((ie.destination, ie.source), ([0xff; 6], T1_MAC));
    assert_eq!(read_arp(body), (1, T1_MAC, [0; 4], [0; 6], VM));

    // The VM answers inside the tunnel; the held frame leaves for it.
    wire.sent.clear();
    let answer = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::ARP,
        &arp_body(2, VM1_MAC, VM, T1_MAC, [0; 4]),
    );
    let v = gw.run_at(
        &gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &answer),
        UND,
        5,
        &mut wire,
    );
    assert_eq!(v, Verdict::Punt);
    assert_eq!(wire.sent.len(), 1);
    let (port, f) = &wire.sent[0];
    assert_eq!(*port, UND);
    let (e, _, key, _, rest) = open_gre(f.data());
    assert_eq!((e.destination, key), (HOST1_MAC, 1000));
    let (ie, ip_bytes) = Ethernet2Header::from_slice(&rest).unwrap();
    assert_eq!((ie.destination, ie.source), (VM1_MAC, T1_MAC));
    let h = assert_valid_ipv4(ip_bytes);
    assert_eq!((h.source, h.destination, h.time_to_live), (CLIENT, VM, 63));

    // Tenant 2 (same address, other key) learned nothing from it.
    assert_eq!(gw.resolver.len(), 1);
}

#[test]
fn a_new_host_asking_inside_its_tunnel_is_learned_and_answered() {
    let mut gw = Gw::with_spec(&spec_without(&[], &[VM]));
    let mut wire = Wire::default();
    let ask = gre_frame(
        HOST1,
        HOST1_MAC,
        0x2000,
        1000,
        0x6558,
        &eth(
            [0xff; 6],
            VM1_MAC,
            EtherType::ARP,
            &arp_body(1, VM1_MAC, VM, [0; 6], [10, 0, 0, 1]),
        ),
    );
    // Unknown host: the resolver learns it and answers.
    assert_eq!(gw.run_at(&ask, UND, 0, &mut wire), Verdict::Punt);
    assert_eq!(gw.resolver.stats().proxy_replies, 1);
    let (port, f) = &wire.sent[0];
    assert_eq!(*port, UND);
    let (_, outer, key, _, rest) = open_gre(f.data());
    assert_eq!((outer.destination, key), (HOST1, 1000));
    let (_, body) = Ethernet2Header::from_slice(&rest).unwrap();
    assert_eq!(read_arp(body), (2, T1_MAC, [10, 0, 0, 1], VM1_MAC, VM));
    // Known now: the worker answers the next request itself.
    let (v, _) = gw.run(&ask, UND);
    assert_eq!(v, Verdict::Forward(UND));
    // A duplicate-address probe is never answered.
    let probe = gre_frame(
        HOST1,
        HOST1_MAC,
        0x2000,
        1000,
        0x6558,
        &eth(
            [0xff; 6],
            VM1_MAC,
            EtherType::ARP,
            &arp_body(1, VM1_MAC, [0; 4], [0; 6], [10, 0, 0, 9]),
        ),
    );
    assert_eq!(
        gw.run(&probe, UND).0,
        Verdict::Drop(DropReason::ArpNotForUs)
    );
}

/// A host whose tunnel sends checksums or sequence numbers asks for its
/// router inside the tunnel: the answer, by the resolver (the host is new)
/// and then by the worker in place (known now), carries tgw's own GRE
/// header, the key alone, with the outer lengths and checksum right —
/// not the host's sequence number and a checksum that no longer matches
/// the reply, which the host drops (seen end to end in the scenario).
#[test]
fn arp_from_a_host_sending_gre_checksums_is_answered_with_the_key_alone() {
    for flags in [0xa000, 0x3000, 0xb000] {
        let mut gw = Gw::with_spec(&spec_without(&[], &[VM]));
        let mut wire = Wire::default();
        let request = eth(
            [0xff; 6],
            VM1_MAC,
            EtherType::ARP,
            &arp_body(1, VM1_MAC, VM, [0; 6], [10, 0, 0, 1]),
        );
        let ask = gre_frame(HOST1, HOST1_MAC, flags, 1000, 0x6558, &request);
        assert_eq!(gw.run_at(&ask, UND, 0, &mut wire), Verdict::Punt);
        let (v, in_place) = gw.run(&ask, UND);
        assert_eq!(v, Verdict::Forward(UND), "{flags:#x}");
        let (port, by_resolver) = &wire.sent[0];
        assert_eq!(*port, UND);
        for (who, out) in [("resolver", by_resolver.data()), ("worker", &in_place[..])] {
            // open_gre checks K alone, the outer length and checksum.
            let (e, outer, key, proto, rest) = open_gre(out);
            assert_eq!((e.destination, e.source), (HOST1_MAC, UND_MAC), "{who}");
            assert_eq!(
                (outer.source, outer.destination, key, proto),
                (GW_UND, HOST1, 1000, 0x6558),
                "{who} {flags:#x}"
            );
            let (ie, body) = Ethernet2Header::from_slice(&rest).unwrap();
            assert_eq!((ie.destination, ie.source), (VM1_MAC, T1_MAC), "{who}");
            assert_eq!(read_arp(body), (2, T1_MAC, [10, 0, 0, 1], VM1_MAC, VM));
        }
    }
}

#[test]
fn punted_frames_carry_their_reason() {
    let mut gw = Gw::with_spec(&spec_without(&[[1, 1, 1, 254]], &[]));
    let frame = gre_frame(
        HOST2,
        HOST2_MAC,
        0x2000,
        2000,
        0x0800,
        &inner_udp(VM, [8, 8, 8, 8], 64, b"x"),
    );
    let mut f = VecFrame::new(&frame, UND);
    assert_eq!(
        gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 0),
        Verdict::Punt
    );
    match Punt::read(&mut f) {
        Some(Punt::Resolve { port, key }) => {
            assert_eq!(port, PUB);
            assert_eq!(key.as_port(), Some(PUB));
            assert_eq!(key.ip(), u32::from_be_bytes([1, 1, 1, 254]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gw.counters.punted.get(), 1);
}

// ------------------------------------------------- flows and elastic IPs

const SEC: u64 = 1_000_000_000; // Pipeline::new's clock: 10^9 ticks a second

/// A TCP segment with `flags` ("S", "SA", "A", "R", "FA"). Both sides
/// start their sequence numbers at 1000, so that every segment after the
/// SYNs is at 1001 and acknowledges 1001: a handshake the connection
/// tracking believes, whichever side opens it.
fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &str) -> Vec<u8> {
    let seq = if flags.contains('S') { 1000 } else { 1001 };
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 64240);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1001),
            'R' => b.rst(),
            'F' => b.fin(),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

impl Gw {
    /// A packet from the client, on the public port, at `now`.
    fn client_sends(&mut self, ip: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let frame = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, ip);
        let mut f = VecFrame::new(&frame, PUB);
        let v = self
            .pipeline
            .process(&self.tables, &self.counters, &mut f, now);
        (v, f.data().to_vec())
    }

    /// A packet from tenant 1's VM (gretap, host 1), at `now`.
    fn t1_sends(&mut self, ip: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, ip);
        let frame = gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner);
        let mut f = VecFrame::new(&frame, UND);
        let v = self
            .pipeline
            .process(&self.tables, &self.counters, &mut f, now);
        (v, f.data().to_vec())
    }
}

/// The inner IPv4 packet of a gretap frame toward a host.
fn tunnelled_ip(out: &[u8]) -> Vec<u8> {
    let (_, _, _, _, rest) = open_gre(out);
    rest[14..].to_vec()
}

#[test]
fn a_tcp_connection_to_an_elastic_ip_is_translated_both_ways() {
    let mut gw = Gw::new();
    let (v, out) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "S"), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let syn = tunnelled_ip(&out);
    let h = assert_valid_ipv4(&syn);
    assert_eq!((h.source, h.destination), (CLIENT, VM));
    assert_eq!(
        u16::from_be_bytes([syn[22], syn[23]]),
        22,
        "1:1 keeps ports"
    );
    assert_valid_transport(&syn);

    let (v, out) = gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "SA"), 1);
    assert_eq!(v, Verdict::Forward(PUB));
    let h = assert_valid_ipv4(&out[14..]);
    assert_eq!((h.source, h.destination), (EIP1, CLIENT));
    assert_valid_transport(&out[14..]);

    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "A"), 2);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, _) = gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "A"), 3);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(gw.pipeline.flows(), 1, "one flow holds both directions");
    assert_eq!(gw.counters.tenants[0].flows_created(), 1);
}

/// `ip` (built by etherparse, without options) with `options` after its
/// 20-byte header: IHL, total length and header checksum redone by hand
/// (RFC 791). `options` is a whole number of 32-bit words.
fn with_ip_options(ip: &[u8], options: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0, "options fill whole words");
    let mut h = ip[..20].to_vec();
    h[0] = 0x45 + (options.len() / 4) as u8;
    let len = (ip.len() + options.len()) as u16;
    h[2..4].copy_from_slice(&len.to_be_bytes());
    h.extend_from_slice(options);
    h[10..12].fill(0);
    let c = !fold(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(&ip[20..]);
    h
}

/// One IPv4 option of each kind, written from RFC 791 and the RFCs that
/// define them, and what tgw's policy (RFC 7126, docs/packet-path.md)
/// does with a transit packet that carries it.
fn option_cases() -> Vec<(&'static str, Vec<u8>, Result<Forwarded, DropReason>)> {
    use DropReason as D;
    vec![
        ("NOP and EOL", vec![1, 1, 1, 0], Ok(Forwarded::Padding)),
        ("EOL alone", vec![0, 0, 0, 0], Ok(Forwarded::Padding)),
        (
            "Router Alert",
            vec![148, 4, 0, 0],
            Ok(Forwarded::RouterAlert),
        ),
        (
            "Quick-Start",
            vec![25, 8, 0x01, 0x40, 0, 0, 0, 0],
            Ok(Forwarded::QuickStart),
        ),
        (
            "DoD BSO",
            vec![130, 3, 0xab, 0],
            Ok(Forwarded::SecurityLabel),
        ),
        (
            "CIPSO",
            vec![134, 6, 0, 0, 0, 1, 1, 0],
            Ok(Forwarded::SecurityLabel),
        ),
        (
            "LSRR",
            vec![131, 7, 4, 9, 9, 9, 9, 0],
            Err(D::IpOptionSourceRoute),
        ),
        (
            "SSRR",
            vec![1, 137, 7, 4, 9, 9, 9, 9],
            Err(D::IpOptionSourceRoute),
        ),
        (
            "Record Route",
            vec![7, 7, 4, 0, 0, 0, 0, 0],
            Err(D::IpOptionRecordRoute),
        ),
        (
            "Timestamp",
            vec![68, 8, 5, 0, 0, 0, 0, 0],
            Err(D::IpOptionTimestamp),
        ),
        ("Stream ID", vec![136, 4, 0, 1], Err(D::IpOptionObsolete)),
        (
            "Traceroute",
            vec![82, 12, 0, 1, 0, 0, 0, 0, 1, 1, 1, 7],
            Err(D::IpOptionObsolete),
        ),
        (
            "an RFC 4727 experiment",
            vec![94, 4, 0, 0],
            Err(D::IpOptionUnknown),
        ),
        ("a length of 0", vec![7, 0, 0, 0], Err(D::IpOptionMalformed)),
        (
            "a length past the header",
            vec![1, 1, 68, 9],
            Err(D::IpOptionMalformed),
        ),
        (
            "a short Router Alert",
            vec![148, 3, 0, 0],
            Err(D::IpOptionMalformed),
        ),
    ]
}

/// Transit packets with IPv4 options, both ways: those the policy
/// forwards arrive translated with their options intact and counted by
/// kind; the others are dropped with the reason of their option. Options
/// on a packet for the gateway itself are still the slow path's.
#[test]
fn ip_options_follow_the_per_option_policy_both_ways() {
    for (what, options, decision) in option_cases() {
        let mut gw = Gw::new();
        let inbound = with_ip_options(&udp_from(CLIENT, 40000, EIP1, 53), &options);
        let outbound = with_ip_options(&udp_from(VM, 5000, CLIENT, 53), &options);
        let (v_in, out_in) = gw.client_sends(&inbound, 0);
        let (v_out, out_out) = gw.t1_sends(&outbound, 1);
        match decision {
            Ok(kind) => {
                assert_eq!(v_in, Verdict::Forward(UND), "{what} in");
                let ip = tunnelled_ip(&out_in);
                let h = assert_valid_ipv4(&ip);
                assert_eq!((h.source, h.destination, h.time_to_live), (CLIENT, VM, 63));
                assert_eq!(&ip[20..20 + options.len()], &options[..], "{what} in");
                assert_valid_transport(&ip);

                assert_eq!(v_out, Verdict::Forward(PUB), "{what} out");
                let ip = &out_out[14..];
                let h = assert_valid_ipv4(ip);
                assert_eq!(
                    (h.source, h.destination, h.time_to_live),
                    (EIP1, CLIENT, 63)
                );
                assert_eq!(&ip[20..20 + options.len()], &options[..], "{what} out");
                assert_valid_transport(ip);

                for k in Forwarded::ALL {
                    let n = if k == kind { 2 } else { 0 };
                    assert_eq!(gw.counters.ip_options[k as usize].get(), n, "{what}: {k:?}");
                }
            }
            Err(reason) => {
                assert_eq!(v_in, Verdict::Drop(reason), "{what} in");
                assert_eq!(v_out, Verdict::Drop(reason), "{what} out");
                assert_eq!(gw.pipeline.flows(), 0, "{what}: no flow");
            }
        }
    }
    // For the gateway itself: the slow path's, whatever the option.
    let mut gw = Gw::new();
    let mut ping = Vec::new();
    PacketBuilder::ipv4(CLIENT, GW_PUB, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"ping")
        .unwrap();
    let (v, _) = gw.client_sends(&with_ip_options(&ping, &[1, 1, 1, 0]), 0);
    assert_eq!(v, Verdict::Drop(DropReason::SlowPath));
}

#[test]
fn only_an_opening_packet_creates_a_flow() {
    let mut gw = Gw::new();
    for flags in ["A", "SA", "R", "FA"] {
        let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, flags), 0);
        assert_eq!(v, Verdict::Drop(DropReason::InvalidState), "{flags}");
        let (v, _) = gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, flags), 0);
        assert_eq!(v, Verdict::Drop(DropReason::InvalidState), "{flags}");
    }
    // An echo reply nobody asked for.
    let mut reply = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_reply(7, 1)
        .write(&mut reply, b"x")
        .unwrap();
    assert_eq!(
        gw.client_sends(&reply, 0).0,
        Verdict::Drop(DropReason::InvalidState)
    );
    assert_eq!(gw.pipeline.flows(), 0, "nothing was created");
}

#[test]
fn the_tenants_own_flows_never_cross_though_they_share_an_address() {
    let mut gw = Gw::new();
    // Both VMs (10.0.0.7 in t1 and in t2) talk to the same client port.
    let (v, out) = gw.t1_sends(&tcp(VM, 5555, CLIENT, 80, "S"), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(assert_valid_ipv4(&out[14..]).source, EIP1);
    let t2 = gre_frame(
        HOST2,
        HOST2_MAC,
        0x2000,
        2000,
        0x0800,
        &tcp(VM, 5555, CLIENT, 80, "S"),
    );
    let (v, out) = gw.run(&t2, UND);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(assert_valid_ipv4(&out[14..]).source, EIP2);
    // Each answer goes back to its own tenant, key and host.
    let (v, out) = gw.client_sends(&tcp(CLIENT, 80, EIP2, 5555, "SA"), 1);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, outer, key, _, rest) = open_gre(&out);
    assert_eq!((outer.destination, key), (HOST2, 2000));
    assert_eq!(assert_valid_ipv4(&rest).destination, VM);
    let (v, out) = gw.client_sends(&tcp(CLIENT, 80, EIP1, 5555, "SA"), 1);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, outer, key, _, _) = open_gre(&out);
    assert_eq!((outer.destination, key), (HOST1, 1000));
    assert_eq!(gw.pipeline.flows(), 2);
}

#[test]
fn flows_expire_by_protocol_and_state_on_a_fake_clock() {
    let mut gw = Gw::new();
    // A SYN alone lives 4 minutes (RFC 5382 transitory).
    gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "S"), 0);
    let late = 240 * SEC;
    let (v, _) = gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "SA"), late);
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState), "expired");
    assert_eq!(gw.counters.tenants[0].flows_expired(), 1);
    assert_eq!(gw.pipeline.flows(), 0);

    // Established lives 2 h 4 min; a packet refreshes it.
    gw.client_sends(&tcp(CLIENT, 40001, EIP1, 22, "S"), 0);
    gw.t1_sends(&tcp(VM, 22, CLIENT, 40001, "SA"), 1);
    gw.client_sends(&tcp(CLIENT, 40001, EIP1, 22, "A"), 2);
    let (v, _) = gw.t1_sends(&tcp(VM, 22, CLIENT, 40001, "A"), 2 + 7439 * SEC);
    assert_eq!(v, Verdict::Forward(PUB), "still established");
    let (v, _) = gw.t1_sends(
        &tcp(VM, 22, CLIENT, 40001, "A"),
        2 + 7439 * SEC + 7440 * SEC,
    );
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState));

    // UDP: 2 minutes; the sweep finds it without a packet.
    gw.t1_sends(&inner_udp(VM, CLIENT, 64, b"dns?"), 0);
    assert_eq!(gw.pipeline.flows(), 1);
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 120 * SEC);
    }
    assert_eq!(gw.pipeline.flows(), 0, "swept");
}

#[test]
fn a_ping_is_tracked_by_its_identifier() {
    let mut gw = Gw::new();
    let mut req = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_request(77, 1)
        .write(&mut req, b"ping")
        .unwrap();
    let (v, out) = gw.client_sends(&req, 0);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(assert_valid_ipv4(&tunnelled_ip(&out)).destination, VM);
    let mut rep = Vec::new();
    PacketBuilder::ipv4(VM, CLIENT, 64)
        .icmpv4_echo_reply(77, 1)
        .write(&mut rep, b"ping")
        .unwrap();
    let (v, out) = gw.t1_sends(&rep, 1);
    assert_eq!(v, Verdict::Forward(PUB));
    let h = assert_valid_ipv4(&out[14..]);
    assert_eq!((h.source, h.destination), (EIP1, CLIENT));
    let icmp = &out[14 + 20..];
    assert_eq!(
        etherparse::checksum::Sum16BitWords::new()
            .add_slice(icmp)
            .ones_complement(),
        0
    );
    // Another identifier is another flow, which a reply cannot open.
    let mut other = rep.clone();
    other[24..26].copy_from_slice(&78u16.to_be_bytes());
    assert_ne!(gw.t1_sends(&other, 2).0, Verdict::Forward(PUB));
}

#[test]
fn a_private_address_without_an_elastic_ip_never_reaches_the_internet() {
    let mut gw = Gw::new();
    let other_vm = [10, 0, 0, 8];
    let (v, _) = gw.t1_sends(&inner_udp(other_vm, CLIENT, 64, b"leak?"), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoNat));
    let (v, _) = gw.t1_sends(&tcp(other_vm, 1, CLIENT, 2, "S"), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoNat));
}

/// `spec`'s tables and two workers steered as the daemon steers them
/// (each owning its connections, its share of the pools), with their
/// counters.
fn two_workers(spec: &Spec) -> (Tables, [WorkerCounters; 2], Vec<Pipeline>) {
    let tables = Tables::build(spec, 1, &mut NeighbourWriter::new(64)).expect("tables");
    let counters = [WorkerCounters::new(2), WorkerCounters::new(2)];
    let workers = (0..2u16)
        .map(|i| {
            Pipeline::new(TokenBucket::new(1000, 50, SEC), i)
                .with_steering(Steering::new(i, 2).unwrap())
                .with_snat(&tables.pools)
        })
        .collect();
    (tables, counters, workers)
}

/// Tenant 1's VM pings tenant 2's elastic IP through the gateway
/// (hairpinning, RFC 5508 REQ-7) on a gateway of two workers: each packet
/// is turned around on the worker owning its sender's side and handed to
/// the worker owning the other side (for ICMP between these two elastic
/// IPs they differ: the owner hashes the pair in order), which must take
/// it as the gateway's own, not as a packet from the Internet with the
/// gateway's address as its source. Before, the owner dropped every one
/// as `spoofed_own_address`: these two tenants could not ping each other.
#[test]
fn hairpinned_pings_cross_workers_both_ways() {
    let (tables, counters, mut workers) = two_workers(&spec());
    // Delivers `frame` to worker `at` and follows its handoffs (two at
    // most: to the sender's side's owner, then to the other side's);
    // the verdict, the frame and how many times it was handed on.
    let mut deliver = |at: usize, frame: &[u8], port: u16| {
        let mut f = VecFrame::new(frame, port);
        let mut at = at;
        for hops in 0..3 {
            match workers[at].process(&tables, &counters[at], &mut f, 1) {
                Verdict::Handoff(owner) => at = usize::from(owner),
                v => return (v, f.data().to_vec(), hops),
            }
        }
        panic!("handed on more than twice");
    };
    let echo = |src, dst, id: u16, reply: bool| {
        let b = PacketBuilder::ipv4(src, dst, 64);
        let mut out = Vec::new();
        if reply {
            b.icmpv4_echo_reply(id, 1).write(&mut out, b"hp").unwrap();
        } else {
            b.icmpv4_echo_request(id, 1).write(&mut out, b"hp").unwrap();
        }
        out
    };
    let mut handed = 0;
    for (n, id) in (0x5e00..0x5e10u16).enumerate() {
        let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, &echo(VM, EIP2, id, false));
        let from_t1 = gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner);
        let (v, out, hops) = deliver(n % 2, &from_t1, UND);
        assert_eq!(v, Verdict::Forward(UND), "echo request {id:#x}");
        handed += hops;
        // Into tenant 2's tunnel (IPv4 in GRE), from EIP1 to its VM.
        let h = assert_valid_ipv4(&out[14 + 20 + 8..]);
        assert_eq!((h.source, h.destination), (EIP1, VM), "request {id:#x}");
        let from_t2 = gre_frame(
            HOST2,
            HOST2_MAC,
            0x2000,
            2000,
            0x0800,
            &echo(VM, EIP1, id, true),
        );
        let (v, out, hops) = deliver(1 - n % 2, &from_t2, UND);
        assert_eq!(v, Verdict::Forward(UND), "echo reply {id:#x}");
        handed += hops;
        let (_, inner) = Ethernet2Header::from_slice(&out[14 + 20 + 8..]).unwrap();
        let h = assert_valid_ipv4(inner);
        assert_eq!((h.source, h.destination), (EIP2, VM), "reply {id:#x}");
    }
    assert!(
        handed >= 16,
        "the two sides' owners differ: {handed} handoffs"
    );
}

#[test]
fn two_workers_meet_both_directions_of_a_connection_in_its_owner() {
    let (tables, counters, mut workers) = two_workers(&spec());
    // Delivers `frame` to worker `at`, and to the owner if handed off;
    // returns who processed it, the verdict and the frame.
    let mut deliver = |at: usize, frame: &[u8], port: u16| {
        let mut f = VecFrame::new(frame, port);
        match workers[at].process(&tables, &counters[at], &mut f, 1) {
            Verdict::Handoff(owner) => {
                let owner = usize::from(owner);
                assert_ne!(owner, at);
                assert_eq!(f.data(), frame, "handed off unchanged");
                let v = workers[owner].process(&tables, &counters[owner], &mut f, 1);
                assert!(!matches!(v, Verdict::Handoff(_)), "the owner keeps it");
                (owner, v, f.data().to_vec())
            }
            v => (at, v, f.data().to_vec()),
        }
    };
    let mut owners = [0; 2];
    for (n, sport) in (40000..40064u16).enumerate() {
        // The two directions arrive on different workers, both ways round;
        // remotes all over the Internet (connections are owned by their
        // addresses, so that fragments find their owner too).
        let (first, second) = (n % 2, 1 - n % 2);
        let remote = [8, 8, n as u8, 1];
        let syn = eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &tcp(remote, sport, EIP1, 22, "S"),
        );
        let (w1, v, _) = deliver(first, &syn, PUB);
        assert_eq!(v, Verdict::Forward(UND));
        let syn_ack = gre_frame(
            HOST1,
            HOST1_MAC,
            0x2000,
            1000,
            0x6558,
            &eth(
                T1_MAC,
                VM1_MAC,
                EtherType::IPV4,
                &tcp(VM, 22, remote, sport, "SA"),
            ),
        );
        let (w2, v, out) = deliver(second, &syn_ack, UND);
        assert_eq!(v, Verdict::Forward(PUB), "the reply found its flow");
        assert_eq!(assert_valid_ipv4(&out[14..]).source, EIP1);
        assert_eq!(w1, w2, "one owner for both directions");
        owners[w1] += 1;
    }
    assert!(
        owners[0] > 10 && owners[1] > 10,
        "both workers own connections: {owners:?}"
    );
    assert_eq!(workers[0].flows() + workers[1].flows(), 64);
}

/// An ICMP error from `src` to `dst` quoting `datagram` (its header and 8
/// bytes, as routers send, or all of it).
fn icmp_error(src: [u8; 4], dst: [u8; 4], ty: Icmpv4Type, datagram: &[u8], whole: bool) -> Vec<u8> {
    let ihl = usize::from(datagram[0] & 0xf) * 4;
    let quote = if whole {
        datagram
    } else {
        &datagram[..ihl + 8]
    };
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .icmpv4(ty)
        .write(&mut out, quote)
        .unwrap();
    out
}

/// Checks an ICMP error's checksums (its own and the quoted header's) and
/// returns the quoted (source, destination).
fn quoted_addrs(ip: &[u8]) -> ([u8; 4], [u8; 4]) {
    let icmp = &ip[20..];
    assert_eq!(
        etherparse::checksum::Sum16BitWords::new()
            .add_slice(icmp)
            .ones_complement(),
        0,
        "ICMP checksum"
    );
    let q = &icmp[8..];
    let (h, _) = Ipv4Header::from_slice(q).unwrap();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "quoted IPv4 checksum"
    );
    (h.source, h.destination)
}

#[test]
fn icmp_errors_about_translated_flows_are_translated_both_ways() {
    let mut gw = Gw::new();
    // A connection from t1's VM to the client, through EIP1.
    let syn = tcp(VM, 5555, CLIENT, 80, "S");
    assert_eq!(gw.t1_sends(&syn, 0).0, Verdict::Forward(PUB));
    // A router on the way answers Fragmentation Needed about what left.
    let left = tcp(EIP1, 5555, CLIENT, 80, "S");
    let router = [1, 1, 1, 254];
    let frag = Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
    );
    let err = icmp_error(router, EIP1, frag, &left, false);
    let (v, out) = gw.client_sends(&err, 1);
    assert_eq!(v, Verdict::Forward(UND));
    let ip = tunnelled_ip(&out);
    let h = assert_valid_ipv4(&ip);
    assert_eq!((h.source, h.destination), (router, VM));
    assert_eq!(
        quoted_addrs(&ip),
        (VM, CLIENT),
        "the VM sees its own datagram"
    );

    // The other way: the client's UDP to EIP2 finds no listener in t2's VM.
    let dgram = inner_udp(CLIENT, EIP2, 64, b"anyone?");
    let (v, out) = gw.client_sends(&dgram, 2);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, _, _, _, delivered) = open_gre(&out);
    let unreachable =
        Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port);
    let err = icmp_error(VM, CLIENT, unreachable, &delivered, true);
    let frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &err);
    let (v, out) = gw.run(&frame, UND);
    assert_eq!(v, Verdict::Forward(PUB));
    let h = assert_valid_ipv4(&out[14..]);
    assert_eq!((h.source, h.destination), (EIP2, CLIENT));
    assert_eq!(
        quoted_addrs(&out[14..]),
        (CLIENT, EIP2),
        "10.0.0.7 never shows"
    );
    let quoted_udp = &out[14 + 28 + 20..];
    let (uh, _) = etherparse::UdpHeader::from_slice(quoted_udp).unwrap();
    let want = uh
        .calc_checksum_ipv4_raw(CLIENT, EIP2, &quoted_udp[8..])
        .unwrap();
    assert_eq!(uh.checksum, want, "quoted UDP checksum translated too");

    // An error about nothing the gateway sent goes nowhere.
    let frag = Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
    );
    let stray = icmp_error(router, EIP1, frag, &tcp(EIP1, 1, CLIENT, 2, "S"), false);
    assert_ne!(gw.client_sends(&stray, 3).0, Verdict::Forward(UND));
}

// ------------------------------------------------------ shared source NAT

const VM8: [u8; 4] = [10, 0, 0, 8];
const VM8_MAC: [u8; 6] = [2, 0, 0, 0, 0xa, 8];
const POOL1: [u8; 4] = [3, 3, 3, 1];
const POOL2: [u8; 4] = [3, 3, 3, 2];

/// The reference spec, with a source NAT pool for t1 and its second VM.
fn spec_with_pool(max_blocks: u16, eif: bool) -> Spec {
    let mut s = spec();
    s.snat.push(SnatSpec {
        key: 1000,
        addrs: vec![ip(POOL1), ip(POOL2)],
        ports: (1024, 65535),
        max_blocks,
        endpoint_independent_filtering: eif,
    });
    s.inner_neighbours.push((1000, ip(VM8), VM8_MAC));
    s
}

/// (source, source port) of a frame leaving the public side.
fn public_source(out: &[u8]) -> ([u8; 4], u16) {
    let h = assert_valid_ipv4(&out[14..]);
    assert_valid_transport(&out[14..]);
    (h.source, u16::from_be_bytes([out[34], out[35]]))
}

fn udp_from(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, b"snat")
        .unwrap();
    out
}

#[test]
fn a_host_without_an_elastic_ip_shares_the_pool_with_one_mapping_per_port() {
    let mut gw = Gw::with_spec(&spec_with_pool(4, false));
    let (v, out) = gw.t1_sends(&udp_from(VM8, 5000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let (addr, port) = public_source(&out);
    assert!(addr == POOL1 || addr == POOL2, "{addr:?}");
    assert!(port >= 1024);
    // Endpoint-independent mapping: same private end, another destination.
    let (_, out) = gw.t1_sends(&udp_from(VM8, 5000, [8, 8, 8, 8], 53), 1);
    assert_eq!(public_source(&out), (addr, port));
    // Another private port, another public one.
    let (_, out) = gw.t1_sends(&udp_from(VM8, 5001, CLIENT, 53), 1);
    assert_ne!(public_source(&out), (addr, port));
    // The reply comes back translated to the private end.
    let (v, out) = gw.client_sends(&udp_from(CLIENT, 53, addr, port), 2);
    assert_eq!(v, Verdict::Forward(UND));
    let ip = tunnelled_ip(&out);
    let h = assert_valid_ipv4(&ip);
    assert_eq!(h.destination, VM8);
    assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 5000);
    assert_valid_transport(&ip);
    // Address-and-port-dependent filtering: a stranger is kept out.
    let (v, _) = gw.client_sends(&udp_from([1, 1, 1, 99], 53, addr, port), 3);
    assert_eq!(v, Verdict::Drop(DropReason::NatFiltered));
    assert_eq!(gw.pipeline.nat_ports_in_use(0), 2);
}

/// A tenant whose prefixes hold a pool address (nothing in the config
/// keeps a pool out of a tenant's private prefixes) sends from it: the
/// gateway's own address, which only the gateway may send from (RFC 1812
/// §5.3.7, as `spoofed_own_address` on the public side). Translated
/// through the pool it would map onto itself with another port, a
/// rewrite with no side to take the port (a debug build panicked there,
/// a release one sent the packet with its port untranslated).
#[test]
fn a_tenant_source_that_is_a_pool_address_is_dropped_as_spoofed() {
    let mut spec = spec_with_pool(4, false);
    spec.tenants[0].prefixes.push((ip([3, 3, 3, 0]), 24));
    spec.tenants[0]
        .routes
        .push((ip([3, 3, 3, 0]), 24, Target::Host(ip(HOST1))));
    let mut gw = Gw::with_spec(&spec);
    for pool in [POOL1, POOL2] {
        let (v, _) = gw.t1_sends(&udp_from(pool, 5000, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Drop(DropReason::SpoofedOwnAddress));
    }
    assert_eq!(gw.pipeline.nat_ports_in_use(0), 0);
    // Its hosts' own addresses still go out through the pool.
    let (v, out) = gw.t1_sends(&udp_from(VM8, 5000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    assert!([POOL1, POOL2].contains(&public_source(&out).0));
}

#[test]
fn endpoint_independent_filtering_lets_anyone_reach_a_live_mapping() {
    let mut gw = Gw::with_spec(&spec_with_pool(4, true));
    let (_, out) = gw.t1_sends(&udp_from(VM8, 5000, CLIENT, 53), 0);
    let (addr, port) = public_source(&out);
    let (v, out) = gw.client_sends(&udp_from([1, 1, 1, 99], 4444, addr, port), 1);
    assert_eq!(v, Verdict::Forward(UND));
    let ip = tunnelled_ip(&out);
    assert_eq!(assert_valid_ipv4(&ip).destination, VM8);
    // An unmapped port stays closed.
    let (v, _) = gw.client_sends(&udp_from([1, 1, 1, 99], 4444, addr, port ^ 1), 1);
    assert_eq!(v, Verdict::Drop(DropReason::NatFiltered));
}

#[test]
fn a_host_runs_out_of_its_blocks_and_gets_its_ports_back_when_flows_end() {
    let mut gw = Gw::with_spec(&spec_with_pool(1, false));
    let mut seen = std::collections::HashSet::new();
    for sport in 0..64 {
        let (v, out) = gw.t1_sends(&udp_from(VM8, 6000 + sport, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        assert!(seen.insert(public_source(&out)), "a live mapping reused");
    }
    let (v, _) = gw.t1_sends(&udp_from(VM8, 7000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoNatPort));
    // The VM with an elastic IP is not affected.
    assert_eq!(
        gw.t1_sends(&udp_from(VM, 7000, CLIENT, 53), 0).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(gw.pipeline.nat_ports_in_use(0), 64);
    gw.pipeline.sweep(&gw.tables, &gw.counters, 1);
    assert_eq!(
        gw.counters.tenants[0].nat_ports.get(),
        64,
        "the gauge the operator reads"
    );
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 121 * SEC);
    }
    assert_eq!(
        gw.pipeline.nat_ports_in_use(0),
        0,
        "ports returned at expiry"
    );
    assert_eq!(gw.counters.tenants[0].nat_ports.get(), 0);
    assert_eq!(
        gw.t1_sends(&udp_from(VM8, 7000, CLIENT, 53), 122 * SEC).0,
        Verdict::Forward(PUB)
    );
}

#[test]
fn a_ping_through_the_pool_has_its_identifier_translated() {
    let mut gw = Gw::with_spec(&spec_with_pool(4, false));
    let mut req = Vec::new();
    PacketBuilder::ipv4(VM8, CLIENT, 64)
        .icmpv4_echo_request(4242, 1)
        .write(&mut req, b"ping")
        .unwrap();
    let (v, out) = gw.t1_sends(&req, 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let h = assert_valid_ipv4(&out[14..]);
    let icmp = &out[34..];
    assert_eq!(
        etherparse::checksum::Sum16BitWords::new()
            .add_slice(icmp)
            .ones_complement(),
        0
    );
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let mut rep = Vec::new();
    PacketBuilder::ipv4(CLIENT, h.source, 64)
        .icmpv4_echo_reply(id, 1)
        .write(&mut rep, b"ping")
        .unwrap();
    let (v, out) = gw.client_sends(&rep, 1);
    assert_eq!(v, Verdict::Forward(UND));
    let ip = tunnelled_ip(&out);
    assert_eq!(assert_valid_ipv4(&ip).destination, VM8);
    assert_eq!(
        u16::from_be_bytes([ip[24], ip[25]]),
        4242,
        "identifier back"
    );
    assert_eq!(
        etherparse::checksum::Sum16BitWords::new()
            .add_slice(&ip[20..])
            .ones_complement(),
        0
    );
}

#[test]
fn two_workers_keep_each_mapping_with_the_owner_of_its_port() {
    let mut spec = spec_with_pool(8, false);
    // Hosts are owned by their address: many hosts, one port each.
    let host = |n: usize| [10, 0, 0, 10 + n as u8];
    for n in 0..40 {
        spec.inner_neighbours.push((1000, ip(host(n)), VM8_MAC));
    }
    let (tables, counters, mut workers) = two_workers(&spec);
    let mut deliver = |at: usize, frame: &[u8], port: u16| {
        let mut f = VecFrame::new(frame, port);
        match workers[at].process(&tables, &counters[at], &mut f, 1) {
            Verdict::Handoff(owner) => {
                let owner = usize::from(owner);
                let v = workers[owner].process(&tables, &counters[owner], &mut f, 1);
                (owner, v, f.data().to_vec())
            }
            v => (at, v, f.data().to_vec()),
        }
    };
    let mut owners = [0; 2];
    for (n, sport) in (5000..5040u16).enumerate() {
        let out_frame = gre_frame(
            HOST1,
            HOST1_MAC,
            0x2000,
            1000,
            0x6558,
            &eth(
                T1_MAC,
                VM8_MAC,
                EtherType::IPV4,
                &udp_from(host(n), sport, CLIENT, 53),
            ),
        );
        let (w1, v, out) = deliver(n % 2, &out_frame, UND);
        assert_eq!(v, Verdict::Forward(PUB));
        let (addr, port) = public_source(&out);
        let back = eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &udp_from(CLIENT, 53, addr, port),
        );
        let (w2, v, _) = deliver(1 - n % 2, &back, PUB);
        assert_eq!(v, Verdict::Forward(UND), "the reply met its flow");
        assert_eq!(w1, w2);
        owners[w1] += 1;
    }
    assert!(owners[0] > 5 && owners[1] > 5, "{owners:?}");
}

// ---------------------------------------------------------- fragments

/// Splits an IPv4 datagram (no options) after `first` bytes of payload (a
/// multiple of 8) into two fragments, checksums by etherparse.
fn fragments(datagram: &[u8], first: usize) -> [Vec<u8>; 2] {
    let (h, payload) = Ipv4Header::from_slice(datagram).unwrap();
    let make = |part: &[u8], offset: usize, more: bool| {
        let mut fh = h.clone();
        fh.more_fragments = more;
        fh.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
        fh.set_payload_len(part.len()).unwrap();
        fh.header_checksum = fh.calc_header_checksum();
        let mut out = Vec::new();
        fh.write(&mut out).unwrap();
        out.extend_from_slice(part);
        out
    };
    [
        make(&payload[..first], 0, true),
        make(&payload[first..], first, false),
    ]
}

/// The fragment of `datagram` (no options) holding `len` payload bytes
/// from `offset` (a multiple of 8), with MF as `more`.
fn piece(datagram: &[u8], offset: usize, len: usize, more: bool) -> Vec<u8> {
    let (h, payload) = Ipv4Header::from_slice(datagram).unwrap();
    let mut fh = h.clone();
    let part = &payload[offset..(offset + len).min(payload.len())];
    fh.more_fragments = more;
    fh.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
    fh.set_payload_len(part.len()).unwrap();
    fh.header_checksum = fh.calc_header_checksum();
    let mut out = Vec::new();
    fh.write(&mut out).unwrap();
    out.extend_from_slice(part);
    out
}

/// Puts fragments back together, in any order (header from the one at
/// offset 0), checking that they cover the datagram exactly once.
fn reassemble_all(pieces: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, bool, Ipv4Header, Vec<u8>)> = pieces
        .iter()
        .map(|p| {
            let (h, rest) = Ipv4Header::from_slice(p).unwrap();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            let off = usize::from(h.fragment_offset.value()) * 8;
            (off, h.more_fragments, h.clone(), rest.to_vec())
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut payload = Vec::new();
    for (off, _, _, data) in &parts {
        assert_eq!(*off, payload.len(), "pieces cover the datagram once");
        payload.extend_from_slice(data);
    }
    assert!(!parts.last().unwrap().1, "the last piece ends the datagram");
    let mut whole = parts[0].2.clone();
    whole.more_fragments = false;
    whole.fragment_offset = etherparse::IpFragOffset::ZERO;
    whole.set_payload_len(payload.len()).unwrap();
    whole.header_checksum = whole.calc_header_checksum();
    let mut out = Vec::new();
    whole.write(&mut out).unwrap();
    out.extend_from_slice(&payload);
    out
}

/// Puts two fragments back together (addresses from the first).
fn reassemble(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (h, pa) = Ipv4Header::from_slice(a).unwrap();
    let (_, pb) = Ipv4Header::from_slice(b).unwrap();
    let mut whole = h.clone();
    whole.more_fragments = false;
    let mut payload = pa.to_vec();
    payload.extend_from_slice(pb);
    whole.set_payload_len(payload.len()).unwrap();
    whole.header_checksum = whole.calc_header_checksum();
    let mut out = Vec::new();
    whole.write(&mut out).unwrap();
    out.extend_from_slice(&payload);
    out
}

#[test]
fn fragments_follow_their_first_through_nat_and_never_alone() {
    let mut gw = Gw::new();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[7u8; 200]);
    let [first, second] = fragments(&datagram, 48);

    // A later fragment before its first waits for it (never alone).
    let (v, _) = gw.client_sends(&second, 0);
    assert!(matches!(v, Verdict::Park(_)), "{v:?}");

    let (v, out1) = gw.client_sends(&first, 1);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, out2) = gw.client_sends(&second, 2);
    assert_eq!(v, Verdict::Forward(UND));
    let (a, b) = (tunnelled_ip(&out1), tunnelled_ip(&out2));
    assert_eq!(assert_valid_ipv4(&a).destination, VM);
    assert_eq!(assert_valid_ipv4(&b).destination, VM);
    let whole = reassemble(&a, &b);
    assert_valid_transport(&whole);
    assert_eq!(&whole[28..], &datagram[28..], "payload untouched");

    // The VM answers with a fragmented datagram too: both leave as EIP1.
    let answer = inner_udp(VM, CLIENT, 64, &[9u8; 300]);
    let [f1, f2] = fragments(&answer, 96);
    let (v, o1) = gw.t1_sends(&f1, 3);
    assert_eq!(v, Verdict::Forward(PUB));
    let (v, o2) = gw.t1_sends(&f2, 4);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(assert_valid_ipv4(&o1[14..]).source, EIP1);
    assert_eq!(assert_valid_ipv4(&o2[14..]).source, EIP1);
    assert_valid_transport(&reassemble(&o1[14..], &o2[14..]));
}

#[test]
fn a_datagram_in_too_many_pieces_is_cut_off() {
    let mut gw = Gw::new();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[1u8; 64]);
    let [first, _] = fragments(&datagram, 16);
    assert_eq!(gw.client_sends(&first, 0).0, Verdict::Forward(UND));
    // The same middle fragment again and again (a flood of pieces that
    // never completes the datagram).
    let middle = piece(&datagram, 16, 8, true);
    for _ in 1..dataplane::fragments::MAX_FRAGMENTS {
        assert_eq!(gw.client_sends(&middle, 0).0, Verdict::Forward(UND));
    }
    assert_eq!(
        gw.client_sends(&middle, 0).0,
        Verdict::Drop(DropReason::FragmentLimit)
    );
}

// ------------------------------------- fragment hardening (RFC 791, 1858, 3128)

/// A TCP SYN to EIP1:22 carrying `data`, as one IPv4 datagram.
fn tcp_syn_with(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .tcp(40000, 22, 1, 64240)
        .syn()
        .write(&mut out, data)
        .unwrap();
    out
}

/// RFC 3128 and RFC 1858 §3.1: a first fragment that does not hold the
/// whole TCP header is dropped: here a SYN whose header has 8 bytes of
/// options (data offset 7: 28 bytes) cut after 24, and one cut after 16
/// of the 20 bytes every TCP header has (the checksum would come in the
/// next fragment).
#[test]
fn a_tiny_first_fragment_without_the_whole_tcp_header_is_dropped() {
    let mut gw = Gw::new();
    let mut with_data = inner_tcp_syn(CLIENT, EIP1, 64, 1460);
    with_data.extend_from_slice(&[0u8; 16]);
    let len = with_data.len() as u16;
    with_data[2..4].copy_from_slice(&len.to_be_bytes());
    refill_checksum(&mut with_data);
    let cut_in_options = piece(&with_data, 0, 24, true);
    assert_eq!(
        gw.client_sends(&cut_in_options, 0).0,
        Verdict::Drop(DropReason::FragmentTinyFirst)
    );
    let syn = tcp_syn_with(&[0u8; 40]);
    let tiny = piece(&syn, 0, 16, true);
    assert_eq!(
        gw.client_sends(&tiny, 0).0,
        Verdict::Drop(DropReason::FragmentTinyFirst)
    );
    // A first fragment with the whole header (24 bytes) goes on.
    let whole_header = piece(&syn, 0, 24, true);
    assert_eq!(gw.client_sends(&whole_header, 0).0, Verdict::Forward(UND));
}

/// RFC 1858 §3.2 and §4: a TCP fragment at offset 8 (fragment offset 1)
/// rewrites the flags of the first fragment at the receiver; "if FO=1 and
/// PROTOCOL=TCP then drop packet". Offset 16 lies in the header too.
#[test]
fn a_tcp_fragment_at_offset_8_overlapping_the_header_is_dropped() {
    let mut gw = Gw::new();
    let syn = tcp_syn_with(&[0u8; 40]);
    assert_eq!(
        gw.client_sends(&piece(&syn, 0, 24, true), 0).0,
        Verdict::Forward(UND)
    );
    for offset in [8, 16] {
        let overlap = piece(&syn, offset, 24, true);
        assert_eq!(
            gw.client_sends(&overlap, 0).0,
            Verdict::Drop(DropReason::FragmentHeaderOverlap),
            "offset {offset}"
        );
    }
}

/// RFC 791: a datagram is at most 65,535 bytes; a fragment whose offset
/// plus length passes it (the "ping of death") is dropped, though its
/// first fragment opened a flow.
#[test]
fn a_fragment_past_65535_bytes_is_dropped() {
    let mut gw = Gw::new();
    let mut ping = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_request(9, 1)
        .write(&mut ping, &[0u8; 1472])
        .unwrap();
    assert_eq!(
        gw.client_sends(&piece(&ping, 0, 1000, true), 0).0,
        Verdict::Forward(UND)
    );
    // Offset 65,520 (the largest multiple of 8 a payload may start at
    // below it) with 40 bytes: 20 + 65,520 + 40 > 65,535.
    let mut death = piece(&ping, 0, 40, false);
    let field = 65_520u16 / 8;
    death[6..8].copy_from_slice(&field.to_be_bytes());
    refill_checksum(&mut death);
    assert_eq!(
        gw.client_sends(&death, 0).0,
        Verdict::Drop(DropReason::FragmentTooLong)
    );
}

/// RFC 791 §3.2 (reassembly takes each piece once); Linux drops a
/// fragment it already holds and keeps the datagram. A piece or a first
/// fragment seen twice is dropped, and the datagram still completes:
/// before, the copy went through and counted toward the datagram's end,
/// so its entry was freed before the last piece came.
#[test]
fn a_fragment_seen_twice_is_dropped_and_its_datagram_still_completes() {
    let mut gw = Gw::new();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[5u8; 136]);
    let (first, middle, last) = (
        piece(&datagram, 0, 48, true),
        piece(&datagram, 48, 48, true),
        piece(&datagram, 96, 48, false),
    );
    assert_eq!(gw.client_sends(&first, 0).0, Verdict::Forward(UND));
    assert_eq!(gw.client_sends(&middle, 0).0, Verdict::Forward(UND));
    for copy in [&middle, &first] {
        assert_eq!(
            gw.client_sends(copy, 0).0,
            Verdict::Drop(DropReason::FragmentDuplicate)
        );
    }
    assert_eq!(gw.client_sends(&last, 0).0, Verdict::Forward(UND));
    assert_eq!(gw.pipeline.fragments_held(), 0, "complete, freed");
}

/// RFC 1858 §3.2 generalised (and RFC 5722's rule, which Linux applies to
/// IPv4 too): a fragment that overlaps bytes already forwarded — here the
/// first fragment's — condemns its datagram; its other pieces are dropped
/// as well, as is a second last fragment that moves the datagram's end.
#[test]
fn a_fragment_overlapping_what_went_through_condemns_its_datagram() {
    let mut gw = Gw::new();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[5u8; 136]);
    assert_eq!(
        gw.client_sends(&piece(&datagram, 0, 48, true), 0).0,
        Verdict::Forward(UND)
    );
    let overlapping = piece(&datagram, 40, 48, true);
    let rest = piece(&datagram, 88, 56, false);
    for p in [&overlapping, &rest] {
        assert_eq!(
            gw.client_sends(p, 0).0,
            Verdict::Drop(DropReason::FragmentOverlap)
        );
    }

    // Another datagram: its end, once known, is not moved.
    let other = with_ident(&datagram, 2);
    assert_eq!(
        gw.client_sends(&piece(&other, 0, 48, true), 0).0,
        Verdict::Forward(UND)
    );
    assert_eq!(
        gw.client_sends(&piece(&other, 96, 48, false), 0).0,
        Verdict::Forward(UND)
    );
    let mut longer = piece(&other, 96, 48, false);
    longer.extend_from_slice(&[0u8; 8]);
    let len = longer.len() as u16;
    longer[2..4].copy_from_slice(&len.to_be_bytes());
    refill_checksum(&mut longer);
    assert_eq!(
        gw.client_sends(&longer, 0).0,
        Verdict::Drop(DropReason::FragmentOverlap)
    );
}

// ------------------------------------ source validation (RFC 1812 §5.3.7)

/// An ICMP echo request from `src` to `dst`.
fn echo(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut out, b"martian")
        .unwrap();
    out
}

/// RFC 1812 §5.3.7 (with §4.2.2.11) and RFC 3927 §7: a packet from the
/// Internet whose source is 0/8, 127/8, link-local, multicast, class E,
/// the limited broadcast or the public subnet's directed broadcast is
/// dropped, never delivered to a tenant.
#[test]
fn martian_sources_from_the_internet_are_dropped() {
    let mut gw = Gw::new();
    let martians = [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [127, 0, 0, 1],
        [169, 254, 1, 1],
        [224, 0, 0, 1],
        [239, 1, 2, 3],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
        [1, 1, 1, 255],
    ];
    for src in martians {
        assert_eq!(
            gw.client_sends(&echo(src, EIP1), 0).0,
            Verdict::Drop(DropReason::MartianSource),
            "{src:?}"
        );
    }
    assert_eq!(gw.pipeline.flows(), 0);
    // A private or documentation source is not a martian.
    assert_eq!(
        gw.client_sends(&echo([192, 0, 2, 1], EIP1), 0).0,
        Verdict::Forward(UND)
    );
}

/// RFC 1812 §5.3.7 and §4.2.3.1, RFC 3927 §7: a martian destination is
/// never forwarded, whoever sends it — here a tenant's VM toward 0/8,
/// loopback, link-local, multicast, class E and the limited broadcast.
#[test]
fn a_martian_destination_is_never_forwarded() {
    let mut gw = Gw::new();
    let martians = [
        [0, 0, 0, 5],
        [127, 0, 0, 1],
        [169, 254, 169, 254],
        [224, 0, 0, 251],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
    ];
    for dst in martians {
        assert_eq!(
            gw.t1_sends(&inner_udp(VM, dst, 64, b"x"), 0).0,
            Verdict::Drop(DropReason::MartianDestination),
            "{dst:?}"
        );
        assert_eq!(
            gw.client_sends(&echo(CLIENT, dst), 0).0,
            Verdict::Drop(DropReason::MartianDestination),
            "{dst:?} from the Internet"
        );
    }
    assert_eq!(gw.pipeline.flows(), 0);
}

/// RFC 1812 §5.3.7 inside a tunnel: a tenant whose configured prefixes
/// hold loopback still cannot send from it — not even between its own
/// hosts, where no flow is made.
#[test]
fn a_tenant_cannot_send_from_a_martian_even_if_its_prefixes_hold_it() {
    let mut s = spec();
    s.tenants[0].prefixes.push((ip([127, 0, 0, 0]), 8));
    let mut gw = Gw::with_spec(&s);
    let (v, _) = gw.t1_sends(&inner_udp([127, 0, 0, 5], [10, 0, 1, 5], 64, b"lo"), 0);
    assert_eq!(v, Verdict::Drop(DropReason::MartianSource));
    // Its real addresses still reach the same host.
    let (v, _) = gw.t1_sends(&inner_udp(VM, [10, 0, 1, 5], 64, b"ok"), 0);
    assert_eq!(v, Verdict::Forward(UND));
}

/// RFC 1812 §5.3.8 (source address validation) and RFC 3704 §2: from the
/// public side, a source that is one of the gateway's own addresses — an
/// elastic IP, a pool address, a tenant's public prefix, the port's own
/// address — can only be spoofed (tgw turns its tenants' packets to those
/// addresses around inside), and is dropped; hairpinned packets, which
/// carry those sources from inside, still pass.
#[test]
fn packets_from_outside_with_the_gateways_own_addresses_are_spoofed() {
    let mut s = spec_with_pool(4, false);
    s.ingress.push((ip([5, 5, 5, 0]), 24, 2000));
    let mut gw = Gw::with_spec(&s);
    for src in [EIP2, POOL1, [5, 5, 5, 9], GW_PUB, EIP1] {
        assert_eq!(
            gw.client_sends(&echo(src, EIP1), 0).0,
            Verdict::Drop(DropReason::SpoofedOwnAddress),
            "{src:?}"
        );
    }
    assert_eq!(gw.pipeline.flows(), 0);
    // Tenant 1's VM pings tenant 2's elastic IP: turned around inside,
    // from EIP1, and delivered.
    let (v, out) = gw.t1_sends(&echo(VM, EIP2), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, outer, key, _, _) = open_gre(&out);
    assert_eq!((outer.destination, key), (HOST2, 2000));
}

/// RFC 1812 §5.3.8 on the flow-hit fast path: a hairpinned flow's keys
/// on the public side carry the gateway's own addresses, and no packet of
/// such a flow ever arrives on the port. One that does is spoofed, and
/// must not pass as a packet of the flow; the genuine ones still do.
#[test]
fn a_spoofed_packet_of_a_hairpinned_flow_does_not_pass_as_a_hit() {
    let mut gw = Gw::new();
    // Tenant 1's VM pings tenant 2's elastic IP: both flows are made.
    assert_eq!(gw.t1_sends(&echo(VM, EIP2), 0).0, Verdict::Forward(UND));
    assert_eq!(gw.pipeline.flows(), 2);
    // The same echo, from the Internet "from EIP1": spoofed.
    for hint in [Hint::default(), Hint::FULL_PATH] {
        let frame = eth(PUB_MAC, ROUTER_MAC, EtherType::IPV4, &echo(EIP1, EIP2));
        let mut f = VecFrame::new(&frame, PUB);
        let v = gw
            .pipeline
            .process_staged(&gw.tables, &gw.counters, &mut f, 1, &hint);
        assert_eq!(v, Verdict::Drop(DropReason::SpoofedOwnAddress), "{hint:?}");
    }
    // The VM's next echo still goes through.
    assert_eq!(gw.t1_sends(&echo(VM, EIP2), 2).0, Verdict::Forward(UND));
}

/// RFC 4787 REQ-9 with RFC 1812 §5.3.8: a tenant's packets to another
/// tenant's public prefix turn around inside the gateway, as those to an
/// elastic IP do. Before, they left through the router and came back with
/// the sender's elastic IP as their source — which, from outside, is now
/// dropped as spoofed.
#[test]
fn a_tenant_reaches_another_tenants_public_prefix_inside_the_gateway() {
    let mut s = spec();
    s.ingress.push((ip([5, 5, 5, 0]), 24, 2000));
    s.tenants[1]
        .routes
        .push((ip([5, 5, 5, 0]), 24, Target::Host(ip(HOST2))));
    let mut gw = Gw::with_spec(&s);
    for now in [0, 1] {
        let (v, out) = gw.t1_sends(&echo(VM, [5, 5, 5, 9]), now);
        assert_eq!(v, Verdict::Forward(UND), "packet {now}");
        let (_, outer, key, _, inner) = open_gre(&out);
        assert_eq!((outer.destination, key), (HOST2, 2000));
        let h = assert_valid_ipv4(&inner);
        assert_eq!((h.source, h.destination), (EIP1, [5, 5, 5, 9]));
    }
    assert_eq!(
        gw.client_sends(&echo(EIP1, [5, 5, 5, 9]), 2).0,
        Verdict::Drop(DropReason::SpoofedOwnAddress)
    );
}

/// RFC 1812 §5.3.7 on the underlay: an echo to the gateway from a
/// martian, or "from" the gateway's own address (its answer would loop),
/// is dropped rather than answered; and a GRE packet with a martian outer
/// source is dropped as such before its key is looked at.
#[test]
fn martian_outer_sources_on_the_underlay_are_dropped() {
    let mut gw = Gw::new();
    for (src, reason) in [
        ([127, 0, 0, 1], DropReason::MartianSource),
        (GW_UND, DropReason::SpoofedOwnAddress),
    ] {
        let mut req = Vec::new();
        PacketBuilder::ethernet2(HOST1_MAC, UND_MAC)
            .ipv4(src, GW_UND, 20)
            .icmpv4_echo_request(77, 3)
            .write(&mut req, b"ping!")
            .unwrap();
        assert_eq!(gw.run(&req, UND).0, Verdict::Drop(reason), "{src:?}");
    }
    let inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &inner_udp(VM, CLIENT, 64, b"x"),
    );
    for outer_src in [[127, 0, 0, 1], [0, 0, 0, 0], [224, 0, 0, 5]] {
        let frame = gre_frame(outer_src, HOST1_MAC, 0x2000, 1000, 0x6558, &inner);
        assert_eq!(
            gw.run(&frame, UND).0,
            Verdict::Drop(DropReason::MartianSource),
            "{outer_src:?}"
        );
    }
}

/// `ip` with identification `ident` and its header checksum again.
fn with_ident(ip: &[u8], ident: u16) -> Vec<u8> {
    let mut out = ip.to_vec();
    out[4..6].copy_from_slice(&ident.to_be_bytes());
    refill_checksum(&mut out);
    out
}

/// `ip` without DF, its header checksum again.
fn without_df(ip: &[u8]) -> Vec<u8> {
    let mut out = ip.to_vec();
    out[6] &= !0x40;
    refill_checksum(&mut out);
    out
}

fn refill_checksum(ip: &mut [u8]) {
    ip[10..12].fill(0);
    let sum = Ipv4Header::from_slice(ip).unwrap().0.calc_header_checksum();
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// A UDP datagram with `payload`, from the given ports.
fn udp_datagram(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// Tenant 2's VM sends `ip` (GRE-IPv4 from host 2).
fn from_t2(ip: &[u8]) -> VecFrame {
    VecFrame::new(&gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, ip), UND)
}

fn from_client(ip: &[u8]) -> VecFrame {
    VecFrame::new(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, ip), PUB)
}

fn from_t1(ip: &[u8]) -> VecFrame {
    let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, ip);
    VecFrame::new(
        &gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner),
        UND,
    )
}

impl Gw {
    /// Runs `f` through the pipeline, as a worker does: a frame to park is
    /// parked in `parked`.
    fn park_or_run(
        &mut self,
        parked: &mut Parked<VecFrame>,
        mut f: VecFrame,
        now: u64,
    ) -> (Verdict, Vec<u8>) {
        let v = self
            .pipeline
            .process(&self.tables, &self.counters, &mut f, now);
        let bytes = f.data().to_vec();
        if let Verdict::Park(spot) = v {
            assert!(parked.put(spot, f).is_ok(), "spot {spot} was free");
        }
        (v, bytes)
    }

    /// What the worker does after a burst: the parked frames released or
    /// expired, with their verdicts.
    fn unpark(&mut self, parked: &mut Parked<VecFrame>, now: u64) -> Vec<(Verdict, Vec<u8>)> {
        let mut out = Vec::new();
        parked.run(
            &mut self.pipeline,
            &self.tables,
            &self.counters,
            now,
            |f, v| out.push((v, f.data().to_vec())),
        );
        out
    }
}

#[test]
fn a_fragment_before_its_first_waits_for_it_and_follows_it_through_nat() {
    let mut gw = Gw::new();
    let mut parked = Parked::default();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[7u8; 200]);
    let [first, second] = fragments(&datagram, 48);

    let (v, _) = gw.park_or_run(&mut parked, from_client(&second), 0);
    assert!(matches!(v, Verdict::Park(_)), "{v:?}");
    assert!(gw.unpark(&mut parked, 1).is_empty(), "nothing released yet");
    let (v, out1) = gw.park_or_run(&mut parked, from_client(&first), 2);
    assert_eq!(v, Verdict::Forward(UND));
    let released = gw.unpark(&mut parked, 3);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].0, Verdict::Forward(UND));
    assert!(parked.is_empty());
    let whole = reassemble_all(&[tunnelled_ip(&released[0].1), tunnelled_ip(&out1)]);
    assert_eq!(assert_valid_ipv4(&whole).destination, VM);
    assert_valid_transport(&whole);
    assert_eq!(&whole[28..], &datagram[28..], "payload untouched");

    // The VM's answer, its pieces swapped too, leaves as the elastic IP.
    let answer = inner_udp(VM, CLIENT, 64, &[9u8; 300]);
    let [f1, f2] = fragments(&answer, 96);
    let (v, _) = gw.park_or_run(&mut parked, from_t1(&f2), 4);
    assert!(matches!(v, Verdict::Park(_)), "{v:?}");
    let (v, o1) = gw.park_or_run(&mut parked, from_t1(&f1), 5);
    assert_eq!(v, Verdict::Forward(PUB));
    let released = gw.unpark(&mut parked, 6);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].0, Verdict::Forward(PUB));
    let o2 = &released[0].1;
    assert_eq!(o2[..6], CLIENT_MAC, "sent to the client, on-link");
    let whole = reassemble_all(&[o2[14..].to_vec(), o1[14..].to_vec()]);
    assert_eq!(assert_valid_ipv4(&whole).source, EIP1);
    assert_valid_transport(&whole);
    assert_eq!(gw.counters.fragments_parked.get(), 2);
    assert_eq!(gw.counters.fragments_released.get(), 2);
    // Counted once from the tunnel, though it went through twice.
    let t1 = gw.counters.tenant(0).unwrap();
    assert_eq!(t1.from_tunnel_packets.get(), 2);
}

#[test]
fn fragments_between_a_tenants_hosts_need_no_flow() {
    // The VM has an elastic IP, but 10.0.1.5 is behind tenant 1's host 3.
    let mut gw = Gw::new();
    let datagram = inner_udp(VM, [10, 0, 1, 5], 64, &[4u8; 200]);
    let [first, second] = fragments(&datagram, 48);
    let (v, o1) = gw.t1_sends(&second, 0);
    assert_eq!(v, Verdict::Forward(UND), "no first needed, none waited for");
    let (v, o2) = gw.t1_sends(&first, 1);
    assert_eq!(v, Verdict::Forward(UND));
    for o in [&o1, &o2] {
        let (_, outer, key, _, _) = open_gre(o);
        assert_eq!((outer.destination, key), (HOST3, 1000));
    }
    let whole = reassemble_all(&[tunnelled_ip(&o1), tunnelled_ip(&o2)]);
    assert_valid_transport(&whole);
}

#[test]
fn a_fragment_whose_first_never_comes_waits_a_bounded_while_in_bounded_room() {
    use dataplane::fragments::park::{LIFE_MS, OWNER_SPOTS};
    let mut gw = Gw::new();
    let mut parked = Parked::default();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[7u8; 200]);
    let [_, second] = fragments(&datagram, 48);
    // Tenant 1's share of the parking, then no more for it.
    for ident in 0..u16::from(OWNER_SPOTS) {
        let (v, _) = gw.park_or_run(&mut parked, from_client(&with_ident(&second, ident)), 0);
        assert!(matches!(v, Verdict::Park(_)), "{v:?}");
    }
    let (v, _) = gw.park_or_run(&mut parked, from_client(&with_ident(&second, 99)), 0);
    assert_eq!(v, Verdict::Drop(DropReason::FragmentParkFull));
    // Tenant 2's still wait.
    let other = fragments(&inner_udp(CLIENT, EIP2, 64, &[7u8; 200]), 48)[1].clone();
    let (v, _) = gw.park_or_run(&mut parked, from_client(&other), 0);
    assert!(matches!(v, Verdict::Park(_)), "{v:?}");
    let (v, _) = gw.park_or_run(
        &mut parked,
        from_t2(&fragments(&inner_udp(VM, CLIENT, 64, &[1; 64]), 16)[1]),
        0,
    );
    assert!(matches!(v, Verdict::Park(_)), "{v:?}");
    // Their firsts never come: all dropped once their time is up.
    let life = LIFE_MS * SEC / 1000;
    assert!(gw.unpark(&mut parked, life - 1).is_empty());
    let out = gw.unpark(&mut parked, life);
    assert_eq!(out.len(), usize::from(OWNER_SPOTS) + 2);
    assert!(out
        .iter()
        .all(|(v, _)| *v == Verdict::Drop(DropReason::FragmentTimeout)));
    assert!(parked.is_empty());
    let (v, _) = gw.park_or_run(&mut parked, from_client(&with_ident(&second, 99)), life);
    assert!(matches!(v, Verdict::Park(_)), "room again: {v:?}");
}

#[test]
fn one_tenants_fragments_cannot_push_out_anothers() {
    let mut gw = Gw::new();
    let datagram = inner_udp(CLIENT, EIP1, 64, &[7u8; 200]);
    let [first, second] = fragments(&datagram, 48);
    assert_eq!(gw.client_sends(&first, 0).0, Verdict::Forward(UND));
    // The Internet floods tenant 2's elastic IP with first fragments, and
    // tenant 2's VM sends as many of its own, a new datagram each.
    let inbound = fragments(&inner_udp(CLIENT, EIP2, 64, &[1; 64]), 16)[0].clone();
    let outbound = fragments(&inner_udp(VM, CLIENT, 64, &[1; 64]), 16)[0].clone();
    let (mut passed, mut refused) = (0, 0);
    for ident in 0..20_000u16 {
        for mut f in [
            from_client(&with_ident(&inbound, ident)),
            from_t2(&with_ident(&outbound, ident)),
        ] {
            match gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 1) {
                Verdict::Forward(_) => passed += 1,
                Verdict::Drop(DropReason::FragmentCacheFull) => refused += 1,
                v => panic!("{v:?}"),
            }
        }
    }
    assert!(passed > 0 && refused > 0, "{passed} {refused}");
    // Tenant 1's datagram still finds its ports.
    let (v, out) = gw.client_sends(&second, 2);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(assert_valid_ipv4(&tunnelled_ip(&out)).destination, VM);
}

#[test]
fn a_first_fragment_the_firewall_refuses_is_not_remembered() {
    use dataplane::firewall::{
        Action, Direction as FwDir, FirewallSpec, PortRange, ProtoMatch, RuleSpec,
    };
    let mut s = spec();
    s.tenants[0].firewall = FirewallSpec {
        rules: vec![RuleSpec::new(
            FwDir::In,
            Action::Deny,
            ProtoMatch::Udp {
                sport: PortRange::ANY,
                dport: PortRange::one(9999),
            },
        )],
        ..FirewallSpec::allow_all()
    };
    let mut gw = Gw::with_spec(&s);
    let datagram = inner_udp(CLIENT, EIP1, 64, &[7u8; 200]);
    let [first, second] = fragments(&datagram, 48);
    assert_eq!(gw.client_sends(&first, 0).0, Verdict::Forward(UND));
    // First fragments the tenant's rules refuse, to the same elastic IP.
    let refused = udp_datagram(CLIENT, 4000, EIP1, 9999, &[1; 64]);
    let [head, _] = fragments(&refused, 16);
    for ident in 0..20_000u16 {
        let (v, _) = gw.client_sends(&with_ident(&head, ident), 1);
        assert_eq!(v, Verdict::Drop(DropReason::Firewall));
    }
    let (v, _) = gw.client_sends(&second, 2);
    assert_eq!(
        v,
        Verdict::Forward(UND),
        "tenant 1's datagram kept its entry"
    );
}

/// The pieces the control plane sent: (port, frame).
fn cut_pieces(wire: &Wire) -> Vec<(u16, Vec<u8>)> {
    wire.sent
        .iter()
        .map(|(p, f)| (*p, f.data().to_vec()))
        .collect()
}

#[test]
fn a_datagram_too_big_for_the_tunnel_without_df_is_cut_and_arrives_whole() {
    // The VM's MAC is known for its own address only, as a real host's is.
    let mut gw = Gw::with_spec(&spec_without(&[], &[EIP1]));
    let mut wire = Wire::default();
    // A 3000-byte ping without DF, which the client's stack sent in two
    // fragments of its 1500-byte link: both too big for the tunnel (1458).
    let mut ping = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, &[0x5a; 2972])
        .unwrap();
    let ping = without_df(&ping);
    assert_eq!(ping.len(), 3000);
    let a = piece(&ping, 0, 1480, true);
    let b = piece(&ping, 1480, 1500, false);
    for (now, p) in [a, b].iter().enumerate() {
        let frame = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, p);
        assert_eq!(gw.run_at(&frame, PUB, now as u64, &mut wire), Verdict::Punt);
    }
    let pieces = cut_pieces(&wire);
    assert_eq!(pieces.len(), 4, "each fragment cut in two");
    let inner: Vec<Vec<u8>> = pieces
        .iter()
        .map(|(port, f)| {
            assert_eq!(*port, UND);
            assert!(f.len() <= 14 + 1500, "fits the underlay: {}", f.len());
            let (e, outer, key, proto, rest) = open_gre(f);
            assert_eq!(
                (e.destination, outer.destination, key, proto),
                (HOST1_MAC, HOST1, 1000, 0x6558)
            );
            assert!(!outer.dont_fragment);
            assert_eq!(rest[..6], VM1_MAC);
            rest[14..].to_vec()
        })
        .collect();
    let whole = reassemble_all(&inner);
    let h = assert_valid_ipv4(&whole);
    assert_eq!((h.source, h.destination, h.time_to_live), (CLIENT, VM, 63));
    assert_eq!(&whole[20..], &ping[20..], "the echo request whole");
    assert_eq!(gw.resolver.stats().fragmented, 2);
    assert_eq!(gw.resolver.stats().fragments, 4);
    assert_eq!(gw.counters.punted_to_fragment.get(), 2);
}

#[test]
fn a_datagram_too_big_for_the_public_side_without_df_is_cut() {
    let mut s = spec();
    s.ports[0].mtu = 1280;
    let mut gw = Gw::with_spec(&s);
    let mut wire = Wire::default();
    let big = without_df(&udp_datagram(VM, 5000, CLIENT, 53, &[3; 1372]));
    assert_eq!(big.len(), 1400);
    let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, &big);
    let frame = gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner);
    assert_eq!(gw.run_at(&frame, UND, 0, &mut wire), Verdict::Punt);
    let pieces = cut_pieces(&wire);
    assert_eq!(pieces.len(), 2);
    for (port, f) in &pieces {
        assert_eq!(*port, PUB);
        assert!(f.len() <= 14 + 1280);
        assert_eq!(f[..6], CLIENT_MAC);
    }
    let whole = reassemble_all(
        &pieces
            .iter()
            .map(|(_, f)| f[14..].to_vec())
            .collect::<Vec<_>>(),
    );
    assert_eq!(assert_valid_ipv4(&whole).source, EIP1);
    assert_valid_transport(&whole);
}

#[test]
fn each_tenant_has_its_own_budget_for_cutting() {
    use dataplane::fragments::split::TENANT_BURST;
    let mut gw = Gw::new();
    let big = |eip| without_df(&udp_datagram(CLIENT, 5000, eip, 53, &[0; 1472]));
    let (b1, b2) = (big(EIP1), big(EIP2));
    for _ in 0..TENANT_BURST {
        assert_eq!(gw.client_sends(&b1, 0).0, Verdict::Punt);
    }
    assert_eq!(
        gw.client_sends(&b1, 0).0,
        Verdict::Drop(DropReason::FragmentBudget)
    );
    assert_eq!(
        gw.client_sends(&b2, 0).0,
        Verdict::Punt,
        "tenant 2 keeps its own"
    );
    assert_eq!(
        gw.client_sends(&b1, SEC).0,
        Verdict::Punt,
        "and a second later, tenant 1 too"
    );
}

#[test]
fn a_tenant_cannot_hold_more_flows_than_its_quota() {
    let mut gw = Gw::new();
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, SEC), 0).with_quota(3);
    for sport in 0..3 {
        let (v, _) = gw.t1_sends(&udp_from(VM, 1000 + sport, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
    }
    let (v, _) = gw.t1_sends(&udp_from(VM, 2000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Quota));
    // Inbound flows count too, and the other tenant is not affected.
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "S"), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Quota));
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP2, 23, "S"), 0);
    assert_eq!(v, Verdict::Forward(UND));
    // Each refusal is the tenant's to answer for (the metrics' quota
    // refusals), and its flows count by protocol.
    let (t1, t2) = (&gw.counters.tenants[0], &gw.counters.tenants[1]);
    assert_eq!((t1.quota_refused.get(), t2.quota_refused.get()), (2, 0));
    let by_proto = |t: &TenantCounters| FlowProto::ALL.map(|p| t.flows_opened[p as usize].get());
    assert_eq!(by_proto(t1), [0, 3, 0, 0], "three UDP flows");
    assert_eq!(by_proto(t2), [1, 0, 0, 0], "one TCP flow");
    // Flows that end make room again, and end by protocol.
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 121 * SEC);
    }
    let t1 = &gw.counters.tenants[0];
    assert_eq!(
        FlowProto::ALL.map(|p| t1.flows_ended[p as usize].get()),
        [0, 3, 0, 0]
    );
    assert_eq!(t1.live_flows(), 0);
    let (v, _) = gw.t1_sends(&udp_from(VM, 2000, CLIENT, 53), 122 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));
}

/// A worker that opens flows fast ends them as fast: the sweep after many
/// creations visits four slots for each (up to a bound), so expired flows
/// do not wait for the base 64 slots a TX drain. With the fixed budget a
/// worker could end at most 640k flows a second, and past that rate the
/// quotas refused new flows (issue 13, `tgw-perf run --profile
/// new-flows`).
#[test]
fn the_sweep_keeps_pace_with_the_flows_created() {
    let mut gw = Gw::new();
    assert_eq!(gw.pipeline.flow_capacity(), DEFAULT_FLOWS);
    for sport in 0..1100 {
        let (v, _) = gw.t1_sends(&udp_from(VM, 1000 + sport, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
    }
    assert_eq!(gw.counters.tenants[0].live_flows(), 1100);
    // One sweep, once they all expired, covers the whole table.
    gw.pipeline.sweep(&gw.tables, &gw.counters, 121 * SEC);
    assert_eq!(gw.counters.tenants[0].live_flows(), 0);
    // With nothing created since, the next visits its base budget only.
    let (v, _) = gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), 122 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));
    let passes = gw.counters.sweep_passes.get();
    for _ in 0..(DEFAULT_FLOWS / 64) - 2 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 122 * SEC);
    }
    assert_eq!(gw.counters.sweep_passes.get(), passes, "64 slots a sweep");
}

/// Issue 13: flows that have expired do not block new ones. The table
/// is full, half of it flows of 120 s and half flows of a second (the
/// tenant's unreplied share under pressure, as in `tgw-perf run --profile
/// new-flows`), and new clients keep coming, more than it holds. Each
/// short flow's place must go to a new one within a pass of the sweep
/// after it expired. Paced by the flows created alone, the sweep of a
/// full table crawled at its base budget through the long flows while
/// every new one was refused (128 sweeps here; 3 s a pass of a 4M-flow
/// table in the profile, whose rate it capped: docs/perf.md), and the
/// expired flows beyond them waited.
#[test]
fn expired_flows_make_room_for_new_ones_within_a_pass() {
    // A tick of 10 ms, the worker sweeping once a tick.
    const HZ: u64 = 100;
    const CAP: usize = 16_384;
    const BURST: usize = 256;
    const TICKS: u64 = 1200;
    let timeouts = dataplane::conntrack::Timeouts {
        unreplied: 1,
        ..Default::default()
    };
    let mut gw = Gw::new();
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, HZ), 0)
        .with_flows(CAP, timeouts, HZ)
        .unwrap()
        .with_quota(CAP as u64)
        .with_unreplied(CAP as u64);
    let mut client = 0u32;
    // `n` new clients at tick `now`, then the tick's sweep: how many
    // opened a flow, every other refused for want of room.
    let mut tick = |gw: &mut Gw, now: u64, n: usize| {
        let mut created = 0;
        for _ in 0..n {
            client += 1;
            let [_, a, b, c] = client.to_be_bytes();
            let (v, _) = gw.client_sends(&udp_from([5, a, b, c], 1024, EIP1, 53), now);
            match v {
                Verdict::Forward(UND) => created += 1,
                Verdict::Drop(DropReason::UnrepliedQuota | DropReason::FlowTableFull) => {}
                v => panic!("client {client} at tick {now}: {v:?}"),
            }
        }
        gw.pipeline.sweep(&gw.tables, &gw.counters, now);
        created
    };
    // The first half of the unreplied share lives 120 s, the rest 1 s:
    // expiring from tick 108 on.
    for now in 0..16 {
        assert_eq!(tick(&mut gw, now, CAP / 16), CAP / 16);
    }
    let before: usize = (16..108).map(|now| tick(&mut gw, now, BURST)).sum();
    assert_eq!(before, 0, "the table is full of live flows");
    let created: usize = (108..TICKS).map(|now| tick(&mut gw, now, BURST)).sum();
    // A short flow holds its place for its life (100 ticks) and at most a
    // pass of the sweep at the pace its refusals set (CAP / (64 + 4 *
    // BURST) = 15 ticks): the 8192 places make at least 8192 / 115 = 71
    // flows a tick (79 measured; 54 with the sweep paced by the flows
    // created alone).
    let per_tick = created as f64 / (TICKS - 108) as f64;
    assert!(per_tick >= 71.0, "{per_tick:.1} flows a tick");
}

/// Issue 9, defect 6: a flood of spoofed SYNs to an elastic IP fills the
/// tenant's share of unreplied inbound flows, never the rest of its quota:
/// its established connection and the flows it opens itself go on, every
/// refusal is counted, and under pressure the flood's flows recycle fast.
#[test]
fn an_inbound_flood_leaves_a_tenants_own_and_established_flows_alone() {
    let mut gw = Gw::new();
    // 16 flows a tenant, 4 of them unreplied inbound ones.
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, SEC), 0).with_quota(16);
    let (c, v) = ((CLIENT, 40000), (EIP1, 22));
    let (vm, cl) = ((VM, 22), (CLIENT, 40000));
    assert_eq!(
        gw.client_sends(&tcp_at(c, v, "S", 1000, 0), 0).0,
        Verdict::Forward(UND)
    );
    assert_eq!(
        gw.t1_sends(&tcp_at(vm, cl, "SA", 5000, 1001), 0).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(
        gw.client_sends(&tcp_at(c, v, "A", 1001, 5001), 0).0,
        Verdict::Forward(UND)
    );

    let flood = |i: u32| {
        let [_, a, b, d] = i.to_be_bytes();
        tcp([5, a, b, d], 1024 + (i % 60000) as u16, EIP1, 22, "S")
    };
    let verdicts: Vec<Verdict> = (0..100)
        .map(|i| gw.client_sends(&flood(i), SEC).0)
        .collect();
    let passed = verdicts
        .iter()
        .filter(|&&v| v == Verdict::Forward(UND))
        .count();
    assert_eq!(passed, 4, "the unreplied share");
    let refused = Verdict::Drop(DropReason::UnrepliedQuota);
    assert_eq!(verdicts.iter().filter(|&&v| v == refused).count(), 96);
    assert_eq!(gw.counters.tenants[0].live_unreplied(), 4);
    assert_eq!(gw.counters.tenants[0].unreplied_refused.get(), 96);
    assert_eq!(gw.counters.tenants[0].quota_refused.get(), 0);

    // The tenant's own flows and its established connection go on.
    for sport in 0..10 {
        let (v, _) = gw.t1_sends(&udp_from(VM, 7000 + sport, CLIENT, 53), 2 * SEC);
        assert_eq!(v, Verdict::Forward(PUB), "outbound flow {sport}");
    }
    assert_eq!(
        gw.t1_sends(&tcp_at(vm, cl, "A", 5001, 1001), 2 * SEC).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(
        gw.client_sends(&tcp_at(c, v, "A", 1001, 5001), 2 * SEC).0,
        Verdict::Forward(UND)
    );

    // The flows opened while the share was half taken or more live 10 s,
    // not the transitory 240 s, and their places go to new SYNs; the first
    // two keep their 240 s.
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 12 * SEC);
    }
    assert_eq!(gw.counters.tenants[0].live_unreplied(), 2);
    let verdicts: Vec<Verdict> = (100..200)
        .map(|i| gw.client_sends(&flood(i), 12 * SEC).0)
        .collect();
    let passed = verdicts
        .iter()
        .filter(|&&v| v == Verdict::Forward(UND))
        .count();
    assert_eq!(passed, 2, "{verdicts:?}");
}

/// Spoofed SYNs toward several tenants fill each one's unreplied share,
/// and all of them together at most the worker's (half the table in the
/// daemon): past it every tenant's new inbound flows are refused as
/// unreplied, and their outbound flows still open. Each share alone let
/// a flood toward a few tenants fill the whole table for all of them.
#[test]
fn inbound_floods_toward_many_tenants_hold_the_unreplied_total_at_most() {
    let mut gw = Gw::new();
    // 16 flows a tenant, 4 of them unreplied; 6 unreplied in all.
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, SEC), 0)
        .with_quota(16)
        .with_unreplied_total(6);
    let flood = |i: u32, eip| {
        let [_, a, b, d] = i.to_be_bytes();
        tcp([5, a, b, d], 1024 + (i % 60000) as u16, eip, 22, "S")
    };
    let passed = |gw: &mut Gw, eip, from: u32| {
        (from..from + 10)
            .filter(|&i| gw.client_sends(&flood(i, eip), SEC).0 == Verdict::Forward(UND))
            .count()
    };
    assert_eq!(passed(&mut gw, EIP1, 0), 4, "t1's share");
    assert_eq!(passed(&mut gw, EIP2, 100), 2, "what is left of the total");
    assert_eq!(gw.counters.live_unreplied(), 6);
    assert_eq!(gw.counters.tenants[1].live_unreplied(), 2);
    assert_eq!(gw.counters.tenants[1].unreplied_refused.get(), 8);
    // Outbound flows of both tenants open all the same.
    for sport in 0..4 {
        let (v, _) = gw.t1_sends(&udp_from(VM, 7000 + sport, CLIENT, 53), 2 * SEC);
        assert_eq!(v, Verdict::Forward(PUB), "t1's outbound flow {sport}");
    }
    // A flow answered from inside leaves the unreplied count: the next
    // SYN toward t2 gets its place.
    let (first, sport) = ([5, 0, 0, 100], 1124);
    let answer = tcp_at((VM, 22), (first, sport), "SA", 5000, 1001);
    let (v, _) = gw.t2_sends(&answer, 2 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(gw.counters.live_unreplied(), 5);
    assert_eq!(passed(&mut gw, EIP2, 200), 1);
}

/// A TCP segment with explicit sequence and acknowledgment numbers.
fn tcp_at(
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    flags: &str,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 64240);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'R' => b.rst(),
            'F' => b.fin(),
            _ => panic!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

#[test]
fn a_blind_rst_is_refused_and_a_true_one_closes_the_flow() {
    let mut gw = Gw::new();
    let (c, v) = ((CLIENT, 40000), (EIP1, 22));
    let (vm, cl) = ((VM, 22), (CLIENT, 40000));
    assert_eq!(
        gw.client_sends(&tcp_at(c, v, "S", 1000, 0), 0).0,
        Verdict::Forward(UND)
    );
    // A RST answering the SYN must acknowledge it exactly.
    let (verdict, _) = gw.t1_sends(&tcp_at(vm, cl, "RA", 0, 999), 1);
    assert_eq!(verdict, Verdict::Drop(DropReason::InvalidState));
    assert_eq!(
        gw.t1_sends(&tcp_at(vm, cl, "SA", 5000, 1001), 1).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(
        gw.client_sends(&tcp_at(c, v, "A", 1001, 5001), 2).0,
        Verdict::Forward(UND)
    );
    // Established: a RST far from what the client expects is a guess.
    let blind = tcp_at(vm, cl, "R", 5001 + (1 << 24), 0);
    assert_eq!(
        gw.t1_sends(&blind, 3).0,
        Verdict::Drop(DropReason::InvalidState)
    );
    let blind_in = tcp_at(c, v, "R", 7, 0);
    assert_eq!(
        gw.client_sends(&blind_in, 3).0,
        Verdict::Drop(DropReason::InvalidState)
    );
    // The real one passes and the flow closes soon after (10 s).
    assert_eq!(
        gw.t1_sends(&tcp_at(vm, cl, "R", 5001, 0), 4).0,
        Verdict::Forward(PUB)
    );
    let (after, _) = gw.client_sends(&tcp_at(c, v, "A", 1001, 5001), 4 + 10 * SEC);
    assert_eq!(
        after,
        Verdict::Drop(DropReason::InvalidState),
        "closed and gone"
    );
}

// ------------------------------ TCP connection tracking (docs/conntrack.md)

/// The client's and the VM's ends of a connection to elastic IP 1, port 22.
const C22: ([u8; 4], u16) = (CLIENT, 40000);
const E22: ([u8; 4], u16) = (EIP1, 22);
const V22: ([u8; 4], u16) = (VM, 22);

impl Gw {
    /// The client opens C22 → E22 with sequence `isn`, the VM answers from
    /// `vm_isn`, and the client completes: every segment must pass.
    fn handshake_22(&mut self, isn: u32, vm_isn: u32, now: u64) {
        let steps = [
            self.client_sends(&tcp_at(C22, E22, "S", isn, 0), now).0,
            self.t1_sends(&tcp_at(V22, C22, "SA", vm_isn, isn + 1), now)
                .0,
            self.client_sends(&tcp_at(C22, E22, "A", isn + 1, vm_isn + 1), now)
                .0,
        ];
        let want = [UND, PUB, UND].map(Verdict::Forward);
        assert_eq!(steps, want, "handshake from {isn}");
    }
}

/// RFC 1122 §4.2.2.13 (a SYN may reopen a connection from TIME-WAIT) and
/// RFC 5382 REQ-2: after both FINs, the client's new SYN on the same
/// 5-tuple opens a new connection in the same flow, long before the
/// closing connection's 4 minutes are up.
#[test]
fn rfc1122_4_2_2_13_a_syn_reopens_a_connection_closed_by_fins() {
    let mut gw = Gw::new();
    gw.handshake_22(1000, 5000, 0);
    for (from_client, flags, seq, ack) in [
        (true, "FA", 1001, 5001),
        (false, "FA", 5001, 1002),
        (true, "A", 1002, 5002),
    ] {
        let v = if from_client {
            gw.client_sends(&tcp_at(C22, E22, flags, seq, ack), SEC).0
        } else {
            gw.t1_sends(&tcp_at(V22, C22, flags, seq, ack), SEC).0
        };
        assert!(matches!(v, Verdict::Forward(_)), "{flags} {v:?}");
    }
    gw.handshake_22(90_000, 70_000, 2 * SEC);
    assert_eq!(gw.pipeline.flows(), 1, "the same flow");
    assert_eq!(gw.counters.tenants[0].flows_created(), 1);
    // Open again: a plain segment takes the fast path's established state.
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "A", 70_001, 90_001), 3 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));
}

/// RFC 9293 §3.6 (a FIN closes one direction; the other stays open until
/// its own FIN) and RFC 5382 REQ-2 (retransmissions): the client's FIN
/// sent again, its ACK lost, leaves the connection half-closed, not
/// closed — a SYN from the client then passes unchanged and the client's
/// ACKs of the VM's data still pass, where a closed connection would have
/// been reopened by the SYN and refused the ACKs.
#[test]
fn rfc9293_3_6_a_fin_sent_again_leaves_the_connection_half_closed() {
    let mut gw = Gw::new();
    gw.handshake_22(1000, 5000, 0);
    for _ in 0..2 {
        let (v, _) = gw.client_sends(&tcp_at(C22, E22, "FA", 1001, 5001), SEC);
        assert_eq!(v, Verdict::Forward(UND));
    }
    // The VM goes on sending; the client, restarted, tries again.
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "A", 5001, 1002), 2 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "S", 60_000, 0), 2 * SEC);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "A", 1002, 5001), 2 * SEC);
    assert_eq!(v, Verdict::Forward(UND), "still half-closed");
}

/// RFC 7857 §2.2 (a SYN reuses a mapping whose connection was reset) and
/// RFC 6146 §3.5.2.2: after a RST, the host's next SYN on the same
/// 5-tuple goes out at once, through the same shared-NAT mapping.
#[test]
fn rfc7857_2_2_a_syn_reopens_a_connection_closed_by_a_rst_through_its_mapping() {
    let mut gw = Gw::with_spec(&spec_with_pool(4, false));
    let (v, out) = gw.t1_sends(&tcp_at((VM8, 5555), (CLIENT, 80), "S", 100, 0), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let (addr, port) = public_source(&out);
    let to_pool = ((CLIENT, 80), (addr, port));
    let (v, _) = gw.client_sends(&tcp_at(to_pool.0, to_pool.1, "SA", 800, 101), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let vm = ((VM8, 5555), (CLIENT, 80));
    assert_eq!(
        gw.t1_sends(&tcp_at(vm.0, vm.1, "A", 101, 801), 0).0,
        Verdict::Forward(PUB)
    );
    // The server resets the connection; the host tries again at once.
    let (v, _) = gw.client_sends(&tcp_at(to_pool.0, to_pool.1, "R", 801, 0), SEC);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, out) = gw.t1_sends(&tcp_at(vm.0, vm.1, "S", 7_000, 0), 2 * SEC);
    assert_eq!(v, Verdict::Forward(PUB), "reopened");
    assert_eq!(
        public_source(&out),
        (addr, port),
        "through the same mapping"
    );
    let (v, _) = gw.client_sends(&tcp_at(to_pool.0, to_pool.1, "SA", 900, 7_001), 2 * SEC);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(gw.pipeline.nat_ports_in_use(0), 1);
}

/// RFC 5382 REQ-2 (all valid sequences, retransmissions included): the
/// client's SYN again, after the VM's SYN+ACK went out and was lost, still
/// reaches the VM, and the VM's SYN+ACK again reaches the client.
#[test]
fn rfc5382_req_2_retransmitted_syns_pass_while_the_handshake_waits() {
    let mut gw = Gw::new();
    assert_eq!(
        gw.client_sends(&tcp_at(C22, E22, "S", 1000, 0), 0).0,
        Verdict::Forward(UND)
    );
    assert_eq!(
        gw.client_sends(&tcp_at(C22, E22, "S", 1000, 0), SEC).0,
        Verdict::Forward(UND),
        "the SYN again, before any answer"
    );
    assert_eq!(
        gw.t1_sends(&tcp_at(V22, C22, "SA", 5000, 1001), SEC).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(
        gw.client_sends(&tcp_at(C22, E22, "S", 1000, 0), 3 * SEC).0,
        Verdict::Forward(UND),
        "the SYN again: the SYN+ACK was lost"
    );
    assert_eq!(
        gw.t1_sends(&tcp_at(V22, C22, "SA", 5000, 1001), 3 * SEC).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(
        gw.client_sends(&tcp_at(C22, E22, "A", 1001, 5001), 3 * SEC)
            .0,
        Verdict::Forward(UND)
    );
}

/// RFC 5382 REQ-2 and RFC 9293 §3.5, simultaneous open: the VM
/// and the client each send a SYN, each acknowledges the other's with a
/// SYN+ACK, and the connection is established, either way round.
#[test]
fn rfc5382_req_2_a_simultaneous_open_is_established() {
    let out = ((VM, 6000), (CLIENT, 7000));
    let back = ((CLIENT, 7000), (EIP1, 6000));
    for vm_acks_first in [true, false] {
        let mut gw = Gw::new();
        let mut steps = vec![
            gw.t1_sends(&tcp_at(out.0, out.1, "S", 100, 0), 0).0,
            gw.client_sends(&tcp_at(back.0, back.1, "S", 900, 0), 0).0,
        ];
        let vm = tcp_at(out.0, out.1, "SA", 100, 901);
        let client = tcp_at(back.0, back.1, "SA", 900, 101);
        if vm_acks_first {
            steps.push(gw.t1_sends(&vm, 1).0);
            steps.push(gw.client_sends(&client, 1).0);
        } else {
            steps.push(gw.client_sends(&client, 1).0);
            steps.push(gw.t1_sends(&vm, 1).0);
        }
        // Established: data both ways.
        steps.push(gw.t1_sends(&tcp_at(out.0, out.1, "A", 101, 901), 2).0);
        steps.push(gw.client_sends(&tcp_at(back.0, back.1, "A", 901, 101), 2).0);
        let want = [PUB, UND, PUB, UND, PUB, UND].map(Verdict::Forward);
        let want = if vm_acks_first {
            want.to_vec()
        } else {
            [PUB, UND, UND, PUB, PUB, UND]
                .map(Verdict::Forward)
                .to_vec()
        };
        assert_eq!(steps, want, "the VM acknowledges first: {vm_acks_first}");
    }
}

/// RFC 9293 §3.10.7.3 (in SYN-SENT, an acknowledgement is acceptable if
/// SND.UNA < SEG.ACK =< SND.NXT), as Linux conntrack holds the handshake
/// to it: a SYN+ACK that does not acknowledge the SYN is `invalid_state`
/// and moves nothing; the right one passes.
#[test]
fn rfc9293_3_10_7_3_a_syn_ack_must_acknowledge_the_syn() {
    let mut gw = Gw::new();
    gw.client_sends(&tcp_at(C22, E22, "S", 1000, 0), 0);
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "SA", 5000, 1234), 0);
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState));
    gw.t1_sends(&tcp_at(V22, C22, "SA", 5000, 1001), 0);
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "A", 1001, 5001), 0);
    assert_eq!(v, Verdict::Forward(UND));
}

/// RFC 9293 §3.10.7.4 (in SYN-RECEIVED, the connection is established
/// only by an ACK with SND.UNA < SEG.ACK =< SND.NXT), as Linux conntrack
/// marks other final ACKs INVALID: one that does not acknowledge the
/// SYN+ACK is `invalid_state` and leaves the handshake open; the right one
/// completes it.
#[test]
fn rfc9293_3_10_7_4_the_final_ack_must_acknowledge_the_syn_ack() {
    let mut gw = Gw::new();
    gw.client_sends(&tcp_at(C22, E22, "S", 1000, 0), 0);
    gw.t1_sends(&tcp_at(V22, C22, "SA", 5000, 1001), 0);
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "A", 1001, 9999), 0);
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState));
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "A", 1001, 5001), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "A", 5001, 1001), 0);
    assert_eq!(v, Verdict::Forward(PUB));
}

/// RFC 5961 §4 (a SYN on a synchronized connection is answered with a
/// challenge ACK) and §3.2 (a RST is believed when its sequence number
/// fits): a client that lost its connection and sends a SYN on the same
/// 5-tuple gets through to the VM; the VM's challenge ACK comes back, the
/// client's RST answering it closes the flow, and the client's next SYN
/// opens it again.
#[test]
fn rfc5961_4_a_restarted_client_gets_its_connection_back() {
    let mut gw = Gw::new();
    gw.handshake_22(1000, 5000, 0);
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "S", 777_000, 0), SEC);
    assert_eq!(v, Verdict::Forward(UND), "the SYN on an open connection");
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "A", 5001, 1001), SEC);
    assert_eq!(v, Verdict::Forward(PUB), "the challenge ACK");
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "R", 1001, 0), SEC);
    assert_eq!(v, Verdict::Forward(UND), "the RST answering it");
    gw.handshake_22(777_000, 40_000, 2 * SEC);
    // The answerer's SYN on an open connection is no restart of it.
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "S", 3, 0), 3 * SEC);
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState));
}

/// A SYN (or, with `ack`, a SYN+ACK) carrying a Window Scale option
/// (RFC 7323 §2.2) of `shift`.
fn syn_scaled(
    from: ([u8; 4], u16),
    to: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    shift: u8,
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(from.0, to.0, 64)
        .tcp(from.1, to.1, seq, 64240)
        .syn();
    if let Some(ack) = ack {
        b = b.ack(ack);
    }
    let mut out = Vec::new();
    b.options(&[TcpOptionElement::Noop, TcpOptionElement::WindowScale(shift)])
        .unwrap()
        .write(&mut out, &[])
        .unwrap();
    out
}

/// RFC 5961 §3.2 (a RST is believed if RCV.NXT =< SEG.SEQ < RCV.NXT +
/// RCV.WND) with RFC 7323 §2.2 (the window is scaled only when both SYNs
/// carried the option): a RST is believed within the largest window its
/// receiver could have advertised past what it acknowledged — 64 KiB
/// without scaling, 64 KiB << 7 with a shift of 7 — and no further.
#[test]
fn rfc5961_3_2_a_rst_is_believed_within_its_receivers_window() {
    // Without window scaling: 64 KiB.
    let mut gw = Gw::new();
    gw.handshake_22(1000, 5000, 0);
    let far = tcp_at(V22, C22, "R", 5001 + 70_000, 0);
    assert_eq!(
        gw.t1_sends(&far, SEC).0,
        Verdict::Drop(DropReason::InvalidState)
    );
    let near = tcp_at(V22, C22, "R", 5001 + 60_000, 0);
    assert_eq!(gw.t1_sends(&near, SEC).0, Verdict::Forward(PUB));

    // Both sides scale by 7: the client's window reaches 8 MiB.
    let mut gw = Gw::new();
    let steps = [
        gw.client_sends(&syn_scaled(C22, E22, 1000, None, 7), 0).0,
        gw.t1_sends(&syn_scaled(V22, C22, 5000, Some(1001), 7), 0).0,
        gw.client_sends(&tcp_at(C22, E22, "A", 1001, 5001), 0).0,
    ];
    assert_eq!(steps, [UND, PUB, UND].map(Verdict::Forward));
    let past = tcp_at(V22, C22, "R", 5001 + (65535 << 7) + 1, 0);
    assert_eq!(
        gw.t1_sends(&past, SEC).0,
        Verdict::Drop(DropReason::InvalidState)
    );
    let within = tcp_at(V22, C22, "R", 5001 + (4 << 20), 0);
    assert_eq!(gw.t1_sends(&within, SEC).0, Verdict::Forward(PUB));
}

/// RFC 9293 §3.10.7.3 (in SYN-SENT, a RST is acceptable if its ACK
/// acknowledges the SYN; RFC 5961 §3 leaves SYN-SENT to this rule): a RST
/// answering a SYN must acknowledge it exactly; the opener's own RST
/// (answering a challenge ACK, RFC 5961 §4) ends its attempt, and its
/// next SYN opens the flow again.
#[test]
fn rfc9293_3_10_7_3_a_rst_in_syn_sent_acknowledges_the_syn() {
    let mut gw = Gw::new();
    gw.client_sends(&tcp_at(C22, E22, "S", 1000, 0), 0);
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "RA", 0, 1002), 0);
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState));
    let (v, _) = gw.t1_sends(&tcp_at(V22, C22, "A", 5001, 444), 0);
    assert_eq!(
        v,
        Verdict::Forward(PUB),
        "a challenge ACK of an old connection"
    );
    let (v, _) = gw.client_sends(&tcp_at(C22, E22, "R", 444, 0), 0);
    assert_eq!(v, Verdict::Forward(UND));
    gw.handshake_22(2000, 6000, SEC);
}

#[test]
fn tenants_reach_elastic_ips_through_the_gateway_itself() {
    let mut gw = Gw::new();
    // t1's 10.0.0.7 talks to t2's elastic IP: it arrives in t2 from EIP1.
    let (v, out) = gw.t1_sends(&udp_from(VM, 3333, EIP2, 53), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, outer, key, _, rest) = open_gre(&out);
    assert_eq!((outer.destination, key), (HOST2, 2000));
    let h = assert_valid_ipv4(&rest);
    assert_eq!((h.source, h.destination), (EIP1, VM));
    assert_eq!(h.time_to_live, 62, "two hops: out of t1, into t2");
    assert_valid_transport(&rest);
    // t2 answers its peer EIP1; the answer finds t1's flow.
    let answer = gre_frame(
        HOST2,
        HOST2_MAC,
        0x2000,
        2000,
        0x0800,
        &udp_from(VM, 53, EIP1, 3333),
    );
    let (v, out) = gw.run(&answer, UND);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, outer, key, _, _) = open_gre(&out);
    assert_eq!((outer.destination, key), (HOST1, 1000));
    let ip = tunnelled_ip(&out);
    let h = assert_valid_ipv4(&ip);
    assert_eq!((h.source, h.destination), (EIP2, VM));
    // A VM reaching its own elastic IP comes back to itself.
    let (v, out) = gw.t1_sends(&udp_from(VM, 4444, EIP1, 7), 1);
    assert_eq!(v, Verdict::Forward(UND));
    let ip = tunnelled_ip(&out);
    let h = assert_valid_ipv4(&ip);
    assert_eq!((h.source, h.destination), (EIP1, VM));
}

/// t2's own public address, routed to its host, with no NAT.
const T2_PUBLIC: [u8; 4] = [2, 2, 2, 60];

/// `spec()` with `T2_PUBLIC` in tenant t2's `public_prefixes`, and t2's
/// firewall: in, TCP 22 only; out, everything but TCP 23.
fn spec_with_public_prefix() -> Spec {
    use dataplane::firewall::{
        Action, Direction as Fw, FirewallSpec, PortRange, ProtoMatch, RuleSpec,
    };
    let mut s = spec();
    s.ingress.push((ip(T2_PUBLIC), 32, 2000));
    let t2 = &mut s.tenants[1];
    // As the daemon builds it: the tenant's hosts hold its public
    // addresses, so they are its inner sources too.
    t2.prefixes.push((ip(T2_PUBLIC), 32));
    t2.routes.push((ip(T2_PUBLIC), 32, Target::Host(ip(HOST2))));
    let tcp = |port| ProtoMatch::Tcp {
        sport: PortRange::ANY,
        dport: PortRange::one(port),
    };
    t2.firewall = FirewallSpec {
        rules: vec![
            RuleSpec::new(Fw::In, Action::Allow, tcp(22)),
            RuleSpec::new(Fw::Out, Action::Deny, tcp(23)),
        ],
        default_in: Action::Deny,
        default_out: Action::Allow,
    };
    s
}

impl Gw {
    /// A packet from tenant 2's host (GRE-IPv4, host 2), at `now`.
    fn t2_sends(&mut self, ip: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, ip);
        let mut f = VecFrame::new(&frame, UND);
        let v = self
            .pipeline
            .process(&self.tables, &self.counters, &mut f, now);
        (v, f.data().to_vec())
    }
}

/// Issue 9, defect 1: a tenant's `public_prefixes` are behind its
/// firewall like its elastic IPs, both ways, with state for the replies.
#[test]
fn a_tenants_public_address_is_behind_its_firewall() {
    use dataplane::firewall::Direction as Fw;
    use dataplane::tenant::TenantId;
    let mut gw = Gw::with_spec(&spec_with_public_prefix());
    let t2 = TenantId(1);

    // In: TCP 22 is allowed, untranslated; TCP 23 and UDP are not.
    let (v, out) = gw.client_sends(&tcp(CLIENT, 40000, T2_PUBLIC, 22, "S"), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let (_, outer, key, _, inner) = open_gre(&out);
    assert_eq!((outer.destination, key), (HOST2, 2000));
    let h = assert_valid_ipv4(&inner);
    assert_eq!((h.source, h.destination), (CLIENT, T2_PUBLIC));
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40001, T2_PUBLIC, 23, "S"), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall));
    let (v, _) = gw.client_sends(&udp_from(CLIENT, 5000, T2_PUBLIC, 53), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall));
    assert_eq!(gw.counters.rules.default_policy(t2, Fw::In), 2);
    // No flow, no way in: a stray ACK is not a connection.
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40002, T2_PUBLIC, 22, "A"), 0);
    assert_eq!(v, Verdict::Drop(DropReason::InvalidState));
    // Nor a protocol without ports, which the default refuses too.
    let mut gre_in = Vec::new();
    PacketBuilder::ipv4(CLIENT, T2_PUBLIC, 64)
        .write(&mut gre_in, IpNumber(47), &[0; 8])
        .unwrap();
    let (v, _) = gw.client_sends(&gre_in, 0);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall));

    // Out: TCP 23 is refused; UDP leaves as it is, and its answer comes
    // back through the flow although nothing inbound allows UDP.
    let (v, _) = gw.t2_sends(&tcp(T2_PUBLIC, 5555, CLIENT, 23, "S"), 1);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall));
    let (v, out) = gw.t2_sends(&udp_from(T2_PUBLIC, 5000, CLIENT, 53), 1);
    assert_eq!(v, Verdict::Forward(PUB));
    let h = assert_valid_ipv4(&out[14..]);
    assert_eq!((h.source, h.destination), (T2_PUBLIC, CLIENT));
    assert_valid_transport(&out[14..]);
    let (v, _) = gw.client_sends(&udp_from(CLIENT, 53, T2_PUBLIC, 5000), 2);
    assert_eq!(v, Verdict::Forward(UND));
    // An ICMP type that opens nothing leaves by no flow either.
    let mut timestamp = Vec::new();
    PacketBuilder::ipv4(T2_PUBLIC, CLIENT, 64)
        .icmpv4_raw(13, 0, [0; 4])
        .write(&mut timestamp, &[0; 12])
        .unwrap();
    let (v, _) = gw.t2_sends(&timestamp, 3);
    assert_eq!(v, Verdict::Drop(DropReason::Untracked));
}

/// A tenant's public address has flows now: with two workers, both
/// directions of a connection meet at one owner, whichever side opens it.
#[test]
fn two_workers_meet_both_directions_at_a_public_address() {
    let (tables, counters, mut workers) = two_workers(&spec_with_public_prefix());
    let mut deliver = |at: usize, frame: &[u8], port: u16| {
        let mut f = VecFrame::new(frame, port);
        match workers[at].process(&tables, &counters[at], &mut f, 1) {
            Verdict::Handoff(owner) => {
                let owner = usize::from(owner);
                let v = workers[owner].process(&tables, &counters[owner], &mut f, 1);
                assert!(!matches!(v, Verdict::Handoff(_)), "the owner keeps it");
                (owner, v)
            }
            v => (at, v),
        }
    };
    let from_t2 = |ip: &[u8]| gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, ip);
    let mut owners = [0; 2];
    for n in 0..64u16 {
        let (first, second) = (usize::from(n % 2), usize::from(1 - n % 2));
        let remote = [8, 8, n as u8, 1];
        // In: the client opens TCP 22; t2's host answers.
        let syn = eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &tcp(remote, 40000, T2_PUBLIC, 22, "S"),
        );
        let (w1, v) = deliver(first, &syn, PUB);
        assert_eq!(v, Verdict::Forward(UND));
        let (w2, v) = deliver(
            second,
            &from_t2(&tcp(T2_PUBLIC, 22, remote, 40000, "SA")),
            UND,
        );
        assert_eq!(
            (w2, v),
            (w1, Verdict::Forward(PUB)),
            "one owner, the answer found its flow"
        );
        // Out: t2's host sends UDP; the remote answers.
        let (w3, v) = deliver(
            second,
            &from_t2(&udp_from(T2_PUBLIC, 5353, remote, 53)),
            UND,
        );
        assert_eq!(v, Verdict::Forward(PUB));
        let answer = eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &udp_from(remote, 53, T2_PUBLIC, 5353),
        );
        let (w4, v) = deliver(first, &answer, PUB);
        assert_eq!(
            (w4, v),
            (w3, Verdict::Forward(UND)),
            "one owner, the answer found its flow"
        );
        owners[w1] += 1;
    }
    assert!(
        owners[0] > 10 && owners[1] > 10,
        "both workers own connections: {owners:?}"
    );
}

/// Issue 9, defect 12: a host reaching its own elastic IP meets its own
/// inbound rules, even when the packet goes to the very address and port
/// it leaves from (an echo always does).
#[test]
fn a_host_reaching_its_own_elastic_ip_meets_its_inbound_rules() {
    use dataplane::firewall::{
        Action, Direction as Fw, FirewallSpec, PortRange, ProtoMatch, RuleSpec,
    };
    use dataplane::tenant::TenantId;
    let mut s = spec();
    // t1 lets in TCP 22 only: no ICMP, no UDP.
    s.tenants[0].firewall = FirewallSpec {
        rules: vec![RuleSpec::new(
            Fw::In,
            Action::Allow,
            ProtoMatch::Tcp {
                sport: PortRange::ANY,
                dport: PortRange::one(22),
            },
        )],
        default_in: Action::Deny,
        default_out: Action::Allow,
    };
    let mut gw = Gw::with_spec(&s);
    let t1 = TenantId(0);

    let mut ping = Vec::new();
    PacketBuilder::ipv4(VM, EIP1, 64)
        .icmpv4_echo_request(77, 1)
        .write(&mut ping, b"me?")
        .unwrap();
    let (v, _) = gw.t1_sends(&ping, 0);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall), "echo to itself");
    let (v, _) = gw.t1_sends(&udp_from(VM, 5000, EIP1, 5000), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall), "same ports");
    let (v, _) = gw.t1_sends(&udp_from(VM, 5000, EIP1, 6000), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Firewall), "other ports");
    assert_eq!(gw.counters.rules.default_policy(t1, Fw::In), 3);
    assert_eq!(gw.pipeline.flows(), 1, "only the last one's way out");
    // TCP 22 to itself is allowed in, and the answer finds its way back.
    let (v, out) = gw.t1_sends(&tcp(VM, 40000, EIP1, 22, "S"), 1);
    assert_eq!(v, Verdict::Forward(UND));
    let h = assert_valid_ipv4(&tunnelled_ip(&out));
    assert_eq!((h.source, h.destination), (EIP1, VM));
    let (v, out) = gw.t1_sends(&tcp(VM, 22, EIP1, 40000, "SA"), 2);
    assert_eq!(v, Verdict::Forward(UND));
    let h = assert_valid_ipv4(&tunnelled_ip(&out));
    assert_eq!((h.source, h.destination), (EIP1, VM));
}

/// `ip` with DF set and its header checksum made good again.
fn with_df(mut ip: Vec<u8>) -> Vec<u8> {
    ip[6] |= 0x40;
    ip[10..12].fill(0);
    let sum = Ipv4Header::from_slice(&ip)
        .unwrap()
        .0
        .calc_header_checksum();
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip
}

/// Whether IPv4 packet `ip` is an ICMP "fragmentation needed" (type 3
/// code 4).
fn is_frag_needed(ip: &[u8]) -> bool {
    let Ok(p) = SlicedPacket::from_ip(ip) else {
        return false;
    };
    matches!(
        p.transport,
        Some(TransportSlice::Icmpv4(i)) if matches!(
            i.icmp_type(),
            Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { .. }
            )
        )
    )
}

/// Issue 9, defect 8: a flood of TTL-1 packets, from a tenant or from the
/// Internet toward one tenant, spends only that tenant's ICMP error
/// tokens on that side: the other tenant's path-MTU discovery still gets
/// its "fragmentation needed", both ways.
#[test]
fn one_tenants_error_flood_leaves_the_others_icmp_errors_alone() {
    // 50 errors a burst, as Gw::new's limiter.
    let mut gw = Gw::new();
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, SEC), 0).with_tenants(2);
    // t1's VM traceroutes out through its elastic IP: errors back to t1.
    for sport in 0..100 {
        gw.t1_sends(&inner_udp_from(VM, 2000 + sport, CLIENT, 1), 0);
    }
    // The Internet traceroutes t1's elastic IP: errors out to the client.
    for sport in 0..100 {
        let probe = inner_udp_from(CLIENT, 3000 + sport, EIP1, 1);
        gw.client_sends(&probe, 0);
    }
    assert_eq!(gw.counters.icmp_errors.get(), 100, "50 each way for t1");
    // t2's host sends too big with DF; so does a client toward t2.
    let big_out = with_df(
        udp_from(VM, 4000, CLIENT, 53)
            .into_iter()
            .chain([0; 1480])
            .collect(),
    );
    let (v, out) = gw.t2_sends(&fix_len(big_out), 0);
    assert_eq!(v, Verdict::Forward(UND), "the error goes back into t2");
    assert!(
        is_frag_needed(&tunnelled_ipv4(&out)),
        "t2 learns its path MTU"
    );
    let big_in = with_df(inner_udp(CLIENT, EIP2, 64, &[0u8; 1472]));
    let (v, out) = gw.client_sends(&big_in, 0);
    assert_eq!(v, Verdict::Forward(PUB));
    assert!(
        is_frag_needed(&out[14..]),
        "t2's client learns its path MTU"
    );
}

/// A UDP packet with TTL 1 from `src:sport` to `dst:dport`.
fn inner_udp_from(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 1)
        .udp(sport, dport)
        .write(&mut out, b"probe")
        .unwrap();
    out
}

/// `ip` (a UDP packet with bytes appended) with its IPv4 and UDP lengths
/// and checksums made to cover everything.
fn fix_len(ip: Vec<u8>) -> Vec<u8> {
    let (h, _) = Ipv4Header::from_slice(&ip).unwrap();
    let payload = &ip[h.header_len() + 8..];
    let (sport, dport) = (
        u16::from_be_bytes([ip[20], ip[21]]),
        u16::from_be_bytes([ip[22], ip[23]]),
    );
    let mut out = Vec::new();
    PacketBuilder::ipv4(h.source, h.destination, h.time_to_live)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    with_df(out)
}

/// The inner IPv4 packet of a GRE-IPv4 frame toward a host.
fn tunnelled_ipv4(out: &[u8]) -> Vec<u8> {
    let (_, _, _, _, rest) = open_gre(out);
    rest
}

#[test]
fn arp_is_answered_for_elastic_ips_on_the_public_subnet() {
    let on_link = [1, 1, 1, 50];
    let mut s = spec();
    s.eips.push((ip(on_link), 1000, ip([10, 0, 0, 9])));
    let mut gw = Gw::with_spec(&s);
    let ask = |target: [u8; 4]| {
        eth(
            [0xff; 6],
            CLIENT_MAC,
            EtherType::ARP,
            &arp_body(1, CLIENT_MAC, CLIENT, [0; 6], target),
        )
    };
    let (v, out) = gw.run(&ask(on_link), PUB);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(
        read_arp(&out[14..]),
        (2, PUB_MAC, on_link, CLIENT_MAC, CLIENT)
    );
    // An elastic IP off the subnet is the router's business.
    let (v, _) = gw.run(&ask(EIP1), PUB);
    assert_eq!(v, Verdict::Drop(DropReason::ArpNotForUs));
    // Nor is anything else on the subnet answered.
    let (v, _) = gw.run(&ask([1, 1, 1, 51]), PUB);
    assert_eq!(v, Verdict::Drop(DropReason::ArpNotForUs));
}

/// Random traffic from both tenants (both using 10.0.0.7) and from the
/// Internet, through NAT, pools, hairpins and the firewall: no frame ever
/// goes into the wrong tenant's tunnel, none leaves the public port with a
/// private source, and every frame that leaves has valid checksums.
#[test]
fn random_traffic_never_crosses_tenants_nor_leaks_private_addresses() {
    let mut gw = Gw::with_spec(&spec_with_pool(4, true));
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Which tenant's key a public address leads to.
    let owner = |d: [u8; 4]| match d {
        EIP1 | POOL1 | POOL2 => Some(1000),
        EIP2 => Some(2000),
        _ => None,
    };
    let remotes = [CLIENT, [8, 8, 8, 8], [1, 1, 1, 99], EIP1, EIP2, POOL1];
    let privates = [VM, VM8, [10, 0, 0, 9]];
    let (mut into_tunnels, mut out_public) = (0, 0);
    for i in 0..20_000u64 {
        let port = |r: u64| [22u16, 23, 53, 80, 5000, 40000][(r % 6) as usize];
        let (sport, dport) = (port(rnd()), port(rnd()));
        let flags = ["S", "SA", "A", "R"][(rnd() % 4) as usize];
        let seg = |src: [u8; 4], dst: [u8; 4], r: u64| match r % 3 {
            0 => tcp(src, sport, dst, dport, flags),
            1 => udp_from(src, sport, dst, dport),
            _ => {
                let mut out = Vec::new();
                PacketBuilder::ipv4(src, dst, 64)
                    .icmpv4_echo_request(sport, 1)
                    .write(&mut out, b"x")
                    .unwrap();
                out
            }
        };
        let r = rnd();
        let (frame, in_port, expect_key) = match r % 3 {
            0 => {
                let dst = [EIP1, EIP2, POOL1, POOL2, GW_PUB][(rnd() % 5) as usize];
                let src = remotes[(rnd() % 3) as usize];
                let ip = seg(src, dst, rnd());
                (
                    eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &ip),
                    PUB,
                    owner(dst),
                )
            }
            1 => {
                let dst = remotes[(rnd() % remotes.len() as u64) as usize];
                let src = privates[(rnd() % 3) as usize];
                let ip = seg(src, dst, rnd());
                let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, &ip);
                let f = gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner);
                (f, UND, Some(owner(dst).unwrap_or(1000)))
            }
            _ => {
                let dst = remotes[(rnd() % remotes.len() as u64) as usize];
                let ip = seg(VM, dst, rnd());
                let f = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &ip);
                (f, UND, Some(owner(dst).unwrap_or(2000)))
            }
        };
        let mut f = VecFrame::new(&frame, in_port);
        let v = gw
            .pipeline
            .process(&gw.tables, &gw.counters, &mut f, i * 1000);
        match v {
            Verdict::Forward(UND) => {
                let (_, outer, key, _, rest) = open_gre(f.data());
                // ARP and echo answers to a host go back where they came
                // from; everything else into the tunnel of the address's
                // owner.
                let host_for_key = if key == 1000 { HOST1 } else { HOST2 };
                assert_eq!(
                    outer.destination, host_for_key,
                    "key {key} to the wrong host"
                );
                if let Some(want) = expect_key {
                    assert_eq!(key, want, "frame {i}: into the wrong tenant");
                }
                let ip = if key == 1000 {
                    rest[14..].to_vec()
                } else {
                    rest
                };
                assert_valid_ipv4(&ip);
                into_tunnels += 1;
            }
            Verdict::Forward(PUB) => {
                let ip = &f.data()[14..];
                let h = assert_valid_ipv4(ip);
                assert_ne!(
                    h.source[0], 10,
                    "frame {i}: a private source on the public side"
                );
                if h.protocol != IpNumber::ICMP {
                    assert_valid_transport(ip);
                }
                out_public += 1;
            }
            _ => {}
        }
    }
    assert!(
        into_tunnels > 500 && out_public > 500,
        "the traffic should get through both ways: {into_tunnels} in, {out_public} out"
    );
}

/// How a run hands public frames to the pipeline.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// Bursts staged with `stage_public`, as the daemon's workers do.
    Staged,
    /// One frame at a time, the fast path looking up for itself.
    Unstaged,
    /// Past the fast path: the full path alone.
    Full,
}

/// One frame of the differential run: where it enters, and when.
struct Event {
    port: u16,
    frame: Vec<u8>,
    now: u64,
}

/// Mixed traffic for the fast-path differential test: TCP connections to
/// both elastic IPs opened by handshakes whose SYN+ACK comes back through
/// the tunnel, then plain ACKs with and without data; UDP and ICMP echo to
/// the EIPs; connections reopened by a SYN after a RST or a FIN, and SYNs
/// and SYN+ACKs again on open ones; and among them what the fast path
/// must leave alone: TTL 1, IP options, fragments, a bad header
/// checksum, a FIN, a RST, Ethernet
/// padding, a runt, a packet too big for the tunnel, frames to addresses
/// without flows, and a jump in time that expires the UDP flows.
fn mixed_traffic() -> Vec<Event> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let public = |ip: &[u8], now| Event {
        port: PUB,
        frame: eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, ip),
        now,
    };
    let mut events = Vec::new();
    let mut now = 0;
    // Handshakes: SYN in, SYN+ACK back from the VM, ACK in.
    for i in 0..40u16 {
        let (eip, port) = if i % 2 == 0 { (EIP1, 22) } else { (EIP2, 23) };
        let cport = 30000 + i;
        events.push(public(
            &tcp_at((CLIENT, cport), (eip, port), "S", 1000, 0),
            now,
        ));
        // Tenant 1 is gretap, tenant 2 GRE-IPv4.
        let syn_ack = tcp_at((VM, port), (CLIENT, cport), "SA", 5000, 1001);
        let frame = if eip == EIP1 {
            let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, &syn_ack);
            gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner)
        } else {
            gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &syn_ack)
        };
        events.push(Event {
            port: UND,
            frame,
            now,
        });
        events.push(public(
            &tcp_at((CLIENT, cport), (eip, port), "A", 1001, 5001),
            now,
        ));
    }
    for round in 0..60u64 {
        now += if round == 30 { 200 * SEC } else { SEC };
        for _ in 0..50 {
            let i = rand(40) as u16;
            let (eip, port) = if i.is_multiple_of(2) {
                (EIP1, 22)
            } else {
                (EIP2, 23)
            };
            let conn = ((CLIENT, 30000 + i), (eip, port));
            let mut ip = match rand(16) {
                0 => udp_from(CLIENT, 40000 + rand(20) as u16, eip, 53),
                1 => {
                    let mut out = Vec::new();
                    PacketBuilder::ipv4(CLIENT, eip, 64)
                        .icmpv4_echo_request(7 + rand(3) as u16, round as u16)
                        .write(&mut out, b"ping")
                        .unwrap();
                    out
                }
                2 => tcp_at(conn.0, conn.1, "A", 1001, 5001 + rand(1 << 20) as u32),
                3 => {
                    let mut b = PacketBuilder::ipv4(CLIENT, eip, 64)
                        .tcp(30000 + i, port, 1001, 64240)
                        .ack(5001)
                        .psh();
                    if rand(8) == 0 {
                        b = b.fin();
                    }
                    let mut out = Vec::new();
                    b.write(&mut out, &vec![0x5a; rand(1600) as usize]).unwrap();
                    out
                }
                4 => udp_from(CLIENT, 40000 + rand(20) as u16, [9, 9, 9, 9], 53),
                5 if rand(10) == 0 => tcp_at(conn.0, conn.1, "R", 1001, 0),
                // The client's SYN again: it reopens a connection a RST or
                // FINs closed (its handshake completes with the VMs' SYN+ACK
                // below and the next ACK) and passes an open one unchanged.
                6 if rand(2) == 0 => tcp_at(conn.0, conn.1, "S", 1000, 0),
                // Spoofed: the other tenant's elastic IP answering a
                // hairpin below, as if from the Internet (RFC 1812 §5.3.8).
                7 if rand(2) == 0 => {
                    let other = if eip == EIP1 { EIP2 } else { EIP1 };
                    udp_from(other, 53, eip, 5000)
                }
                _ => tcp_at(conn.0, conn.1, "A", 1001, 5001),
            };
            match rand(24) {
                0 => ip[8] = 1,     // TTL 1: Time Exceeded, from the full path
                1 => ip[6] |= 0x20, // "more fragments"
                _ => {}
            }
            ip[10..12].copy_from_slice(&[0, 0]);
            let c = !fold(&ip[..20]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            if rand(48) == 0 {
                ip[11] ^= 0x40; // a bad header checksum
            }
            if rand(24) == 0 {
                // IP options: forwarded (padding, Router Alert) or dropped
                // (a source route), always by the full path.
                let options: &[u8] = match rand(3) {
                    0 => &[1, 1, 1, 0],
                    1 => &[148, 4, 0, 0],
                    _ => &[131, 7, 4, 9, 9, 9, 9, 0],
                };
                ip = with_ip_options(&ip, options);
            }
            let mut e = public(&ip, now);
            match rand(16) {
                0 => e.frame.extend_from_slice(&[0; 6]), // Ethernet padding
                1 => e.frame.truncate(rand(40) as usize),
                _ => {}
            }
            events.push(e);
        }
        // The stateless profiles' traffic: a client to the tenants' own
        // public addresses (encap), in the public side's bursts.
        for (k, to) in [T1_PUB, T2_PUB].into_iter().cycle().take(8).enumerate() {
            let sport = 41000 + (k as u16 % 4);
            events.push(public(&udp_from(CLIENT, sport, to, 5001), now));
        }
        // The VMs' side: ACKs and data of the connections, UDP out through
        // the elastic IPs, hairpins to the other tenant's, and the same
        // oddities, plus an outer ECN CE mark now and then.
        for _ in 0..30 {
            let i = rand(40) as u16;
            let tenant1 = i.is_multiple_of(2);
            let port = if tenant1 { 22 } else { 23 };
            let mut ip = match rand(8) {
                0 => udp_from(VM, 5000 + rand(4) as u16, CLIENT, 53),
                1 => udp_from(VM, 5000, if tenant1 { EIP2 } else { EIP1 }, 53),
                2 => {
                    let mut out = Vec::new();
                    PacketBuilder::ipv4(VM, CLIENT, 64)
                        .tcp(port, 30000 + i, 5001, 64240)
                        .ack(1001)
                        .write(&mut out, &vec![0xa5; rand(1500) as usize])
                        .unwrap();
                    out
                }
                3 if rand(4) == 0 => tcp_at((VM, port), (CLIENT, 30000 + i), "SA", 5000, 1001),
                _ => tcp_at((VM, port), (CLIENT, 30000 + i), "A", 5001, 1001),
            };
            match rand(24) {
                0 => ip[8] = 1,
                1 => ip[6] |= 0x20,
                _ => {}
            }
            ip[10..12].copy_from_slice(&[0, 0]);
            let c = !fold(&ip[..20]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            if rand(48) == 0 {
                ip[11] ^= 0x40;
            }
            // Hosts that send GRE checksums or sequence numbers (RFC 2784
            // / 2890), now and then with a checksum that does not verify.
            let gre = match rand(8) {
                0 => 0xa000,
                1 => 0x3000,
                2 => 0xb000,
                _ => 0x2000,
            };
            let mut frame = if tenant1 {
                let inner = eth(T1_MAC, VM1_MAC, EtherType::IPV4, &ip);
                gre_frame(HOST1, HOST1_MAC, gre, 1000, 0x6558, &inner)
            } else {
                gre_frame(HOST2, HOST2_MAC, gre, 2000, 0x0800, &ip)
            };
            if gre & 0x8000 != 0 && rand(8) == 0 {
                frame = wrong_gre_checksum(frame);
            }
            if rand(16) == 0 {
                // Congestion Experienced on the outer header (RFC 6040).
                frame[15] |= 3;
                frame[24..26].copy_from_slice(&[0, 0]);
                let c = !fold(&frame[14..34]);
                frame[24..26].copy_from_slice(&c.to_be_bytes());
            }
            events.push(Event {
                port: UND,
                frame,
                now,
            });
        }
        // ... and from those addresses back to the client (decap), some
        // with Ethernet padding after the outer packet; then to other
        // destinations by turns (a burst's next hops, each looked up once
        // a run): through the default route, and an on-link host nobody
        // answers for.
        for k in 0..12u16 {
            let from = if k % 2 == 0 { T1_PUB } else { T2_PUB };
            let reply = match k {
                0..8 => udp_from(from, 5001, CLIENT, 41000 + k / 2),
                8 => udp_from(from, 5002, [9, 9, 9, 9], 53),
                10 => udp_from(from, 5002, [8, 8, 8, 8], 53),
                _ => udp_from(from, 5002, [1, 1, 1, 8], 53),
            };
            let mut frame = if k % 2 == 0 {
                // Now and then to another MAC than tenant 1's, one byte
                // off (each of its six by turns): not for us, dropped.
                let mut to = T1_MAC;
                if k == 2 && round % 3 == 1 {
                    to[(round / 3 % 6) as usize] ^= 1;
                }
                let inner = eth(to, VM1_MAC, EtherType::IPV4, &reply);
                // Now and then tenant 1's key from tenant 2's host:
                // spoofed, dropped.
                let host = if k == 6 && round % 2 == 0 {
                    HOST2
                } else {
                    HOST1
                };
                gre_frame(host, HOST1_MAC, 0x2000, 1000, 0x6558, &inner)
            } else {
                gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &reply)
            };
            if k == 7 {
                frame.extend_from_slice(&[0; 6]);
            }
            events.push(Event {
                port: UND,
                frame,
                now,
            });
        }
    }
    events
}

/// Tenant 1's and tenant 2's own public addresses (the `encap` and
/// `decap` profiles' traffic: flows without NAT).
const T1_PUB: [u8; 4] = [2, 2, 3, 11];
const T2_PUB: [u8; 4] = [2, 2, 3, 12];

/// [`spec`] with a public address routed to each tenant's host.
fn spec_with_public_prefixes() -> Spec {
    let mut spec = spec();
    for (t, (addr, host)) in spec
        .tenants
        .iter_mut()
        .zip([(T1_PUB, HOST1), (T2_PUB, HOST2)])
    {
        t.prefixes.push((ip(addr), 32));
        t.routes.push((ip(addr), 32, Target::Host(ip(host))));
        spec.ingress.push((ip(addr), 32, t.key));
    }
    spec.inner_neighbours.push((1000, ip(T1_PUB), VM1_MAC));
    spec
}

/// The one's-complement sum of a header, folded (for hand-made options).
fn fold(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// What a differential run gives: every verdict and frame, the tenants'
/// counters and the live flows at the end, and how many frames the
/// staging found a flow for.
struct Run {
    out: Vec<(Verdict, Vec<u8>)>,
    tenants: Vec<[u64; 6]>,
    flows: usize,
    staged_hits: usize,
    staged_tunnel_hits: usize,
}

/// Runs `events` through a fresh gateway by `path`, frames in bursts of up
/// to 32 that share a port and a clock.
fn run_by(path: Path, events: &[Event]) -> Run {
    run_staged_from(path, events, dataplane::flow::STAGED_FROM)
}

/// [`run_by`] with a pipeline whose stages queue a burst's keys for one
/// bulk lookup from `staged_from` live flows on
/// ([`Pipeline::with_staged_from`]).
fn run_staged_from(path: Path, events: &[Event], staged_from: usize) -> Run {
    let mut gw = Gw::with_spec(&spec_with_public_prefixes());
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, 1_000_000_000), 0)
        .with_staged_from(staged_from)
        .with_snat(&gw.tables.pools);
    let mut out = Vec::new();
    let mut staged_hits = 0;
    let mut staged_tunnel_hits = 0;
    let mut rest = events;
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take(32)
            .take_while(|e| e.port == first.port && e.now == first.now)
            .count();
        let (burst, tail) = rest.split_at(n);
        rest = tail;
        let mut hints = [Hint::default(); 32];
        if path == Path::Staged {
            let frames = burst.iter().map(|e| &e.frame[..]);
            let pf = dataplane::flow::TouchLoads;
            gw.pipeline
                .stage_public(&gw.tables, first.port, frames, &pf, first.now, &mut hints);
            let frames = burst.iter().map(|e| (&e.frame[..], Checked::Unknown));
            gw.pipeline
                .stage_underlay(&gw.tables, first.port, frames, &pf, first.now, &mut hints);
            let hits = hints.iter().filter(|h| h.is_hit()).count();
            if first.port == UND {
                staged_tunnel_hits += hits;
            } else {
                staged_hits += hits;
            }
        }
        for (e, hint) in burst.iter().zip(&hints) {
            let hint = if path == Path::Full {
                &Hint::FULL_PATH
            } else {
                hint
            };
            let mut f = VecFrame::new(&e.frame, e.port);
            let v = gw
                .pipeline
                .process_staged(&gw.tables, &gw.counters, &mut f, e.now, hint);
            out.push((v, f.data().to_vec()));
        }
    }
    let tenants = (0..2)
        .map(|i| {
            let c = gw.counters.tenant(i).unwrap();
            [
                c.from_tunnel_packets.get(),
                c.from_tunnel_bytes.get(),
                c.to_tunnel_packets.get(),
                c.to_tunnel_bytes.get(),
                c.flows_created(),
                c.flows_expired(),
            ]
        })
        .collect();
    Run {
        out,
        tenants,
        flows: gw.pipeline.flows(),
        staged_hits,
        staged_tunnel_hits,
    }
}

/// The fast path and the burst staging in front of it may only skip
/// work: whatever traffic comes, every frame leaves with the verdict and
/// the bytes the full path alone gives it. Staged both ways: the run's
/// few flows looked up as each frame is read, and (`staged_from` 0) their
/// keys queued for the burst's bulk lookup, as in a table of thousands.
#[test]
fn the_fast_path_and_its_staging_answer_as_the_full_path_does() {
    let events = mixed_traffic();
    let full = run_by(Path::Full, &events);
    let staged_from = dataplane::flow::STAGED_FROM;
    for (path, staged_from) in [
        (Path::Unstaged, staged_from),
        (Path::Staged, staged_from),
        (Path::Staged, 0),
    ] {
        let run = run_staged_from(path, &events, staged_from);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                run.out[i], full.out[i],
                "frame {i} {path:?} from {staged_from}: {:02x?}",
                e.frame
            );
        }
        let how = format!("{path:?} from {staged_from}");
        assert_eq!(run.tenants, full.tenants, "tenant counters, {how}");
        assert_eq!(run.flows, full.flows, "live flows, {how}");
        if path == Path::Staged {
            let hits = run.staged_hits;
            assert!(hits > 1800, "only {hits} staged hits, {how}");
            let hits = run.staged_tunnel_hits;
            assert!(hits > 1000, "only {hits} staged hits from tunnels, {how}");
        }
    }
    let full = full.out;
    // The run exercised what it compares.
    let count = |out: u16| {
        full.iter()
            .filter(|(v, _)| *v == Verdict::Forward(out))
            .count()
    };
    let (inward, outward) = (count(UND), count(PUB));
    // The stateless profiles' frames went through, both ways.
    let own = |port: u16, out: u16| {
        full.iter()
            .zip(&events)
            .filter(|((v, _), e)| {
                let own_address = |w: &[u8]| w == T1_PUB || w == T2_PUB;
                e.port == port && *v == Verdict::Forward(out) && e.frame.windows(4).any(own_address)
            })
            .count()
    };
    let (encap, decap) = (own(PUB, UND), own(UND, PUB));
    assert!(
        encap > 400 && decap > 400,
        "stateless: {encap} in, {decap} out"
    );
    assert!(inward > 2000, "only {inward} frames into tunnels");
    assert!(
        outward > 1200,
        "only {outward} frames out of the public side"
    );
    assert!(
        full.iter().any(|(v, _)| *v == Verdict::Forward(PUB)),
        "no ICMP error"
    );
    let with_options = full
        .iter()
        .zip(&events)
        .filter(|((v, _), e)| {
            e.port == PUB && e.frame.get(14) > Some(&0x45) && *v == Verdict::Forward(UND)
        })
        .count();
    assert!(
        with_options > 10,
        "only {with_options} frames with options forwarded"
    );
    for reason in [
        DropReason::GreChecksum,
        DropReason::InnerNotForUs,
        DropReason::InvalidState,
        DropReason::SpoofedOwnAddress,
        DropReason::IpOptionSourceRoute,
        DropReason::Ipv4Checksum,
        DropReason::Runt,
    ] {
        assert!(
            full.iter().any(|(v, _)| *v == Verdict::Drop(reason)),
            "no {reason:?} among the verdicts"
        );
    }
}

/// Issue 13: a staged frame that will open a flow toward an elastic IP
/// has its new flow's reply-key buckets prefetched by the stage, two
/// lines beyond its lookup's four (both buckets, the candidate entry's
/// key and deadline), so that a burst's inserts do not wait for them one
/// after another; a frame that opens no flow (an ACK of none) does not,
/// nor a hit, whose value is prefetched instead. Verdicts as unstaged.
#[test]
fn a_staged_miss_that_will_open_a_flow_prefetches_its_reply_keys_buckets() {
    struct Counting(std::cell::Cell<usize>);
    impl dataplane::flow::Prefetch for Counting {
        const INSTRUCTION: bool = true;
        fn prefetch<T>(&self, _r: &T) {
            self.0.set(self.0.get() + 1);
        }
    }
    let mut gw = Gw::new();
    // Enough flows that a burst is looked up in stages: below, the table
    // is in cache and nothing is prefetched.
    for sport in 0..dataplane::flow::STAGED_FROM as u16 {
        let syn = tcp(CLIENT, 1024 + sport, EIP1, 22, "S");
        assert_eq!(gw.client_sends(&syn, 0).0, Verdict::Forward(UND));
    }
    let staged = |gw: &mut Gw, ip: &[u8]| {
        let frame = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, ip);
        let pf = Counting(std::cell::Cell::new(0));
        let mut hints = [Hint::default(); 1];
        let frames = [&frame[..]].into_iter();
        gw.pipeline
            .stage_public(&gw.tables, PUB, frames, &pf, 0, &mut hints);
        let mut f = VecFrame::new(&frame, PUB);
        let v = gw
            .pipeline
            .process_staged(&gw.tables, &gw.counters, &mut f, 0, &hints[0]);
        (pf.0.get(), v)
    };
    let opens = udp_from(CLIENT, 5000, EIP1, 53);
    assert_eq!(staged(&mut gw, &opens), (4 + 2, Verdict::Forward(UND)));
    assert_eq!(staged(&mut gw, &opens), (4 + 1, Verdict::Forward(UND)));
    let stray = tcp(CLIENT, 5001, EIP1, 22, "A");
    assert_eq!(
        staged(&mut gw, &stray),
        (4, Verdict::Drop(DropReason::InvalidState))
    );
}

/// A frame on the public port whose ethertype is not IPv4 but whose bytes
/// after the Ethernet header are those of a live flow's plain packet is
/// not a hit, staged or not: the public stage reads the ethertype before
/// the IPv4 header (pipeline/hit.rs's `read_public`), and the full path
/// drops the frame for its ethertype.
#[test]
fn a_flows_packet_behind_another_ethertype_is_no_hit() {
    let mut gw = Gw::new();
    let ip = udp_from(CLIENT, 5000, EIP1, 53);
    assert_eq!(gw.client_sends(&ip, 0).0, Verdict::Forward(UND));
    for path in [Path::Staged, Path::Unstaged, Path::Full] {
        let plain = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &ip);
        let (v, _) = run_checked(&mut gw, path, &plain, PUB, Checked::Unknown);
        assert_eq!(v, Verdict::Forward(UND), "the flow's packet, {path:?}");
        let other = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV6, &ip);
        let (v, _) = run_checked(&mut gw, path, &other, PUB, Checked::Unknown);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::EtherType),
            "behind IPv6's ethertype, {path:?}"
        );
    }
}

/// Runs one frame received on `port`, which the NIC says of its outer
/// IPv4 checksum `checked`, by `path`: the full path, the fast path
/// unstaged, or staged as the daemon's workers stage a burst.
fn run_checked(
    gw: &mut Gw,
    path: Path,
    frame: &[u8],
    port: u16,
    checked: Checked,
) -> (Verdict, Vec<u8>) {
    let mut hints = [Hint::default(); 1];
    if path == Path::Staged {
        let pf = dataplane::flow::TouchLoads;
        let frames = [frame].into_iter();
        gw.pipeline
            .stage_public(&gw.tables, port, frames, &pf, 0, &mut hints);
        let frames = [(frame, checked)].into_iter();
        gw.pipeline
            .stage_underlay(&gw.tables, port, frames, &pf, 0, &mut hints);
    }
    let hint = if path == Path::Full {
        Hint::FULL_PATH
    } else {
        hints[0]
    };
    let mut f = VecFrame::new(frame, port).with_ipv4_checksum(checked);
    let v = gw
        .pipeline
        .process_staged(&gw.tables, &gw.counters, &mut f, 0, &hint);
    (v, f.data().to_vec())
}

/// Issue 13, item 3: where the NIC verified a frame's outer IPv4 header
/// checksum (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`) the pipeline does not compute
/// it again; where it found it wrong (`_BAD`) or does not say (memif,
/// af_packet: "unknown") the pipeline computes it as before, and a wrong
/// one is dropped; on both sides, and by every path alike.
#[test]
fn the_nics_word_on_the_outer_ipv4_checksum_is_taken_and_unknown_is_computed() {
    let mut gw = Gw::with_spec(&spec_with_public_prefixes());
    // A client's datagram to tenant 2's own address (encap), and the
    // tenant's answer from it (decap, GRE over IPv4).
    let to_tenant = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &udp_from(CLIENT, 41000, T2_PUB, 5001),
    );
    let reply = udp_from(T2_PUB, 5001, CLIENT, 41000);
    let from_tenant = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &reply);
    let wrong = |f: &[u8]| {
        let mut f = f.to_vec();
        f[24] ^= 0x40; // the outer header's checksum
        f
    };
    let (wrong_to, wrong_from) = (wrong(&to_tenant), wrong(&from_tenant));
    // The flow both ways, by the full path.
    let (v, _) = run_checked(&mut gw, Path::Full, &to_tenant, PUB, Checked::Unknown);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, decapped) = run_checked(&mut gw, Path::Full, &from_tenant, UND, Checked::Unknown);
    assert_eq!(v, Verdict::Forward(PUB));

    let checksum = Verdict::Drop(DropReason::Ipv4Checksum);
    for path in [Path::Full, Path::Unstaged, Path::Staged] {
        for (frame, port, checked, expect) in [
            (&to_tenant, PUB, Checked::Unknown, Verdict::Forward(UND)),
            (&wrong_to, PUB, Checked::Unknown, checksum),
            (&wrong_to, PUB, Checked::Bad, checksum),
            (&from_tenant, UND, Checked::Unknown, Verdict::Forward(PUB)),
            (&wrong_from, UND, Checked::Unknown, checksum),
            (&wrong_from, UND, Checked::Bad, checksum),
        ] {
            let (v, _) = run_checked(&mut gw, path, frame, port, checked);
            assert_eq!(v, expect, "{path:?} {checked:?} from port {port}");
        }
        // Verified by the NIC: not computed again. The outer header is
        // gone once decapsulated, so the packet that leaves is the same.
        let (v, out) = run_checked(&mut gw, path, &wrong_from, UND, Checked::Good);
        assert_eq!(v, Verdict::Forward(PUB), "{path:?}");
        assert_eq!(out, decapped, "{path:?}");
        let (v, _) = run_checked(&mut gw, path, &to_tenant, PUB, Checked::Good);
        assert_eq!(v, Verdict::Forward(UND), "{path:?}");
    }
    // The full path skipped the computation for the public side's frame
    // too (the fast path computes its own, and leaves a wrong one to it).
    let (v, _) = run_checked(&mut gw, Path::Full, &wrong_to, PUB, Checked::Good);
    assert_eq!(v, Verdict::Forward(UND));
}

// ------------------------------------------- what one tenant can take

/// A tenant-1 VM's frame toward `dst`, east-west through HOST3's tunnel.
fn t1_east_west(dst: [u8; 4]) -> Vec<u8> {
    let inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &inner_udp(VM, dst, 64, b"ew"),
    );
    gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner)
}

/// Issue 9, defect 2: the resolver held up to `max_pending` frames for
/// every unresolved neighbour with no cap in all, so one tenant sending to
/// every address of a prefix behind a gretap tunnel could hold every mbuf
/// of the pool.
#[test]
fn held_frames_are_capped_in_all_and_per_tenant_and_the_public_side_keeps_its_share() {
    let cfg = ResolverConfig {
        max_held: 64,
        held_per_tenant: 24,
        ..ResolverConfig::default()
    };
    assert_eq!(cfg.held_reserved(), 16, "tenants together hold 48 at most");
    let spec = spec_without(&[[1, 1, 1, 254]], &[]);
    let mut gw = Gw::with_resolver(&spec, cfg, NeighbourLimits::uniform(1024));
    let mut wire = Wire::default();
    let (t1, t2) = (TenantId(0), TenantId(1));

    // Tenant 1 sends to every host of 10.0.1.0/24, none of them known
    // inside the tunnel (10.0.1.5 is, and is sent at once).
    let mut punted = 0;
    for i in (1..=254).filter(|&i| i != 5) {
        for _ in 0..cfg.max_pending {
            let v = gw.run_at(&t1_east_west([10, 0, 1, i]), UND, 0, &mut wire);
            assert_eq!(v, Verdict::Punt);
            punted += 1;
        }
    }
    assert_eq!(gw.resolver.held_by(t1), 24);
    assert_eq!(gw.resolver.stats().hold_tenant_limit, punted - 24);

    // Tenant 2 still has frames held, up to what is left of the tenants'
    // share, toward hosts on the public subnet.
    for host in 100..104 {
        for _ in 0..cfg.max_pending {
            let to = inner_udp(VM, [1, 1, 1, host], 64, b"out");
            let v = gw.run_at(
                &gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &to),
                UND,
                0,
                &mut wire,
            );
            assert_eq!(v, Verdict::Punt);
        }
    }
    assert_eq!(gw.resolver.held_by(t2), 24);
    assert_eq!(gw.resolver.stats().hold_tenants_full, 8);

    // The gateway's own errors toward unresolved clients are nobody's
    // tenant's: they get the reserved share, then the cap in all stops
    // them too.
    for client in 20..23 {
        for _ in 0..cfg.max_pending {
            let late = inner_udp([1, 1, 1, client], EIP1, 1, b"traceroute");
            let v = gw.run_at(
                &eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &late),
                PUB,
                0,
                &mut wire,
            );
            assert_eq!(v, Verdict::Punt);
        }
    }
    assert_eq!(gw.resolver.held(), 64);
    let s = gw.resolver.stats();
    assert_eq!(s.hold_full, 8);
    assert_eq!(
        s.dropped,
        s.hold_tenant_limit + s.hold_tenants_full + s.hold_full,
        "every refusal is counted by its cause"
    );
}

/// The other way round: the gateway's own errors toward clients an
/// Internet sender names (TTL 1 from spoofed on-link sources) take at
/// most all but the tenants' quarter, and tenants' frames are still held.
/// Before, they could take all of `max_held`.
#[test]
fn the_gateways_own_held_frames_leave_the_tenants_their_share() {
    let cfg = ResolverConfig {
        max_held: 64,
        held_per_tenant: 24,
        ..ResolverConfig::default()
    };
    let spec = spec_without(&[[1, 1, 1, 254]], &[]);
    let mut gw = Gw::with_resolver(&spec, cfg, NeighbourLimits::uniform(1024));
    let mut wire = Wire::default();
    // 56 errors, 10 ms apart per client: within the ICMP limit (50 at once,
    // 1000/s).
    for client in 20..27u8 {
        let now = u64::from(client) * SEC / 100;
        for _ in 0..cfg.max_pending {
            let late = inner_udp([1, 1, 1, client], EIP1, 1, b"traceroute");
            let frame = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &late);
            assert_eq!(gw.run_at(&frame, PUB, now, &mut wire), Verdict::Punt);
        }
    }
    assert_eq!(gw.resolver.held(), 48, "all but the tenants' 16");
    assert_eq!(gw.resolver.stats().hold_ports_full, 8);
    for i in 1..=2 {
        for _ in 0..cfg.max_pending {
            let v = gw.run_at(&t1_east_west([10, 0, 1, i]), UND, SEC, &mut wire);
            assert_eq!(v, Verdict::Punt);
        }
    }
    assert_eq!(gw.resolver.held_by(TenantId(0)), 16);
    assert_eq!(gw.resolver.held(), 64);
}

/// An ARP request inside tenant `key`'s gretap tunnel from `host`, asking
/// for the gateway: what a VM sends when it comes up (and what one
/// announcing thousands of addresses sends thousands of).
fn tunnel_arp_from(host: [u8; 4], host_mac: [u8; 6], key: u32, spa: [u8; 4]) -> Vec<u8> {
    let mac = [2, 0, 0, spa[1], spa[2], spa[3]];
    gre_frame(
        host,
        host_mac,
        0x2000,
        key,
        0x6558,
        &eth(
            [0xff; 6],
            mac,
            EtherType::ARP,
            &arp_body(1, mac, spa, [0; 6], [10, 0, 0, 1]),
        ),
    )
}

/// Issue 9, defect 3: hosts learned inside one tenant's tunnels could take
/// the whole neighbour table, and every other tenant's new hosts and the
/// public side's neighbours found no room.
#[test]
fn one_tenant_announcing_hosts_leaves_room_for_the_others_and_the_public_side() {
    const ROUTER: [u8; 4] = [1, 1, 1, 254];
    let limits = NeighbourLimits {
        ports: 16,
        tenants: 64,
        per_tenant: 32,
    };
    let mut spec = spec_without(&[ROUTER], &[]);
    spec.tenants[1].encap = Encap::Gretap;
    let mut gw = Gw::with_resolver(&spec, ResolverConfig::default(), limits);
    let mut wire = Wire::default();

    // Tenant 1's VM announces every address of its two /24s.
    for net in [0, 1] {
        for i in 2..=254 {
            let spa = [10, 0, net, i];
            gw.run_at(
                &tunnel_arp_from(HOST1, HOST1_MAC, 1000, spa),
                UND,
                0,
                &mut wire,
            );
        }
    }
    let w = gw.resolver.writer();
    assert_eq!(w.tenant_len(TenantId(0)), 32);
    let refused = w.refusals().tenant_limit;
    assert!(refused > 400, "{refused} refusals counted");
    assert_eq!(gw.resolver.stats().table_full, refused);

    // Tenant 2's new host is learned...
    let t2_host = NeighKey::inner(TenantId(1), u32::from_be_bytes([10, 0, 0, 9]));
    gw.run_at(
        &tunnel_arp_from(HOST2, HOST2_MAC, 2000, [10, 0, 0, 9]),
        UND,
        1,
        &mut wire,
    );
    assert!(matches!(
        gw.resolver.writer().get(t2_host),
        dataplane::neighbour::Lookup::Mac(_)
    ));
    // ...and the public side resolves its router.
    let out = eth(
        T2_MAC,
        [2, 0, 0, 0, 0, 9],
        EtherType::IPV4,
        &inner_udp(VM, [8, 8, 8, 8], 64, b"x"),
    );
    let frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x6558, &out);
    assert_eq!(gw.run_at(&frame, UND, 2, &mut wire), Verdict::Punt);
    let reply = eth(
        PUB_MAC,
        ROUTER_MAC,
        EtherType::ARP,
        &arp_body(2, ROUTER_MAC, ROUTER, PUB_MAC, GW_PUB),
    );
    gw.run_at(&reply, PUB, 3, &mut wire);
    assert_eq!(gw.run(&frame, UND).0, Verdict::Forward(PUB));
}

/// Issue 9, defect 9, through the resolver: neighbours that fail and are
/// forgotten, many times the table's size, leave lookups bounded and the
/// table taking new ones.
#[test]
fn churned_neighbours_leave_the_table_usable_and_misses_bounded() {
    let spec = spec_without(&[], &[]);
    let limits = NeighbourLimits {
        ports: 32,
        tenants: 32,
        per_tenant: 32,
    };
    let cfg = ResolverConfig::default();
    let mut gw = Gw::with_resolver(&spec, cfg, limits);
    let mut wire = Wire::default();
    let slots = gw.tables.neighbours.slots() as u64;
    let mut now = 0;
    // Rounds of on-link hosts, ten times as many as the table has slots:
    // each is asked for, fails, and is forgotten.
    let rounds = 10 * slots / 16;
    for round in 0..rounds {
        for i in 0..16u64 {
            let host = (round * 16 + i) % 240 + 10;
            let to = inner_udp(VM, [1, 1, 1, host as u8], 64, b"x");
            let f = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &to);
            assert_eq!(gw.run_at(&f, UND, now, &mut wire), Verdict::Punt);
        }
        for _ in 0..=2 * cfg.retries {
            now += cfg.retry_ms;
            gw.resolver.poll(&gw.tables, now, &mut wire);
        }
    }
    assert_eq!(gw.resolver.stats().failed, rounds * 16);
    assert_eq!(gw.resolver.stats().table_full, 0);
    assert!(
        gw.resolver.is_empty(),
        "every failed neighbour is forgotten"
    );
    for ip in 0..1000u32 {
        let miss = NeighKey::port(PUB, 0x0505_0000 + ip);
        assert!(gw.tables.neighbours.probes(miss) <= PROBE_MAX);
    }
}

// ------------------------------------------- unreachable next hops

/// Runs `frame` until its neighbour fails: asked for, then asked again
/// `retries` times in vain.
fn until_failed(gw: &mut Gw, frame: &[u8], port: u16, wire: &mut Wire) -> u64 {
    assert_eq!(gw.run_at(frame, port, 0, wire), Verdict::Punt);
    let retries = u64::from(ResolverConfig::default().retries);
    for t in 1..=retries {
        gw.resolver.poll(&gw.tables, t * RETRY_MS, wire);
    }
    assert_eq!(gw.resolver.stats().failed, 1);
    retries * RETRY_MS + 1
}

/// Reads an ICMP destination unreachable in the IPv4 packet `ip`: (source,
/// destination, code, quoted bytes), checksums checked.
fn read_unreachable(ip: &[u8]) -> ([u8; 4], [u8; 4], u8, Vec<u8>) {
    let h = assert_valid_ipv4(ip);
    let p = SlicedPacket::from_ip(ip).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not ICMP: {p:?}")
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload()),
        "ICMP checksum"
    );
    let Icmpv4Type::DestinationUnreachable(u) = icmp.icmp_type() else {
        panic!("not unreachable: {:?}", icmp.icmp_type())
    };
    (
        h.source,
        h.destination,
        u.code_u8(),
        icmp.payload().to_vec(),
    )
}

/// Interoperability (issue 9): a next hop that does not answer ARP gets
/// the sender an ICMP host unreachable (RFC 1812 4.3.3.1), not silence.
#[test]
fn a_tenant_sending_to_an_unresolvable_router_gets_host_unreachable() {
    const ROUTER: [u8; 4] = [1, 1, 1, 254];
    let mut gw = Gw::with_spec(&spec_without(&[ROUTER], &[]));
    let mut wire = Wire::default();
    let orig = inner_udp(VM, [8, 8, 8, 8], 64, b"anyone there?");
    let frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &orig);
    let now = until_failed(&mut gw, &frame, UND, &mut wire);

    // Back into tenant 2's tunnel, from the gateway, quoting the datagram
    // as the VM sent it (before NAT, TTL not yet decremented).
    let (v, out) = gw.run(&frame, UND);
    assert_eq!(v, Verdict::Forward(UND));
    let (e, outer, key, proto, inner) = open_gre(&out);
    assert_eq!(
        (e.destination, outer.destination, key, proto),
        (HOST2_MAC, HOST2, 2000, 0x0800)
    );
    let (src, dst, code, quoted) = read_unreachable(&inner);
    assert_eq!((src, dst, code), (GW_UND, VM, 1), "host unreachable");
    assert_eq!(quoted, orig, "the whole short datagram is quoted");
    assert_eq!(gw.counters.host_unreachable.get(), 1);
    assert_eq!(gw.counters.icmp_errors.get(), 1);

    // Never about an ICMP error: the VM's error about a reply of its flow
    // (translated, then meeting the failed router) is dropped.
    let mut reply = Vec::new();
    PacketBuilder::ipv4([8, 8, 8, 8], VM, 60)
        .udp(53, 5000)
        .write(&mut reply, b"answer")
        .unwrap();
    let error = icmp_error(
        VM,
        [8, 8, 8, 8],
        Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port),
        &reply,
        true,
    );
    let about_error = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &error);
    assert_eq!(
        gw.run_at(&about_error, UND, now, &mut wire),
        Verdict::Drop(DropReason::NoNeighbour)
    );
    assert_eq!(gw.counters.host_unreachable.get(), 1);
}

#[test]
fn a_client_sending_to_a_vm_that_never_answers_gets_host_unreachable() {
    let mut gw = Gw::with_spec(&spec_without(&[], &[VM]));
    let mut wire = Wire::default();
    let orig = inner_udp(CLIENT, EIP1, 64, b"hello vm");
    let frame = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &orig);
    until_failed(&mut gw, &frame, PUB, &mut wire);

    // Out of the public side to the client, quoting its datagram as it
    // sent it: to the elastic IP, not the private address.
    let (v, out) = gw.run(&frame, PUB);
    assert_eq!(v, Verdict::Forward(PUB));
    let (e, ip) = Ethernet2Header::from_slice(&out).unwrap();
    assert_eq!((e.destination, e.source), (CLIENT_MAC, PUB_MAC));
    let (src, dst, code, quoted) = read_unreachable(ip);
    assert_eq!((src, dst, code), (GW_PUB, CLIENT, 1));
    assert_eq!(quoted, orig);
    assert_eq!(gw.counters.host_unreachable.get(), 1);

    // A long datagram is quoted up to 576 bytes of error in all.
    let long = inner_udp(CLIENT, EIP1, 64, &[7u8; 1000]);
    let (v, out) = gw.run(&eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &long), PUB);
    assert_eq!(v, Verdict::Forward(PUB));
    let (_, ip) = Ethernet2Header::from_slice(&out).unwrap();
    assert_eq!(ip.len(), 576);
    assert_eq!(read_unreachable(ip).3, long[..576 - 28]);
}

/// The frames the resolver held for a neighbour that fails each get host
/// unreachable too, quoting the datagram as its sender sent it (the
/// elastic IP translated back, RFC 5508), but for the TTL the gateway
/// decremented.
#[test]
fn frames_held_for_a_neighbour_that_fails_are_each_answered() {
    let mut gw = Gw::with_spec(&spec_without(&[], &[VM]));
    let mut wire = Wire::default();
    let sent: Vec<Vec<u8>> = (0..3)
        .map(|i| inner_udp(CLIENT, EIP1, 64, format!("held {i}").as_bytes()))
        .collect();
    for orig in &sent {
        let frame = eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, orig);
        assert_eq!(gw.run_at(&frame, PUB, 0, &mut wire), Verdict::Punt);
    }
    assert_eq!(gw.resolver.held(), 3);
    wire.sent.clear();
    let retries = u64::from(ResolverConfig::default().retries);
    for t in 1..=retries {
        gw.resolver.poll(&gw.tables, t * RETRY_MS, &mut wire);
    }
    assert_eq!(gw.resolver.held(), 0);
    assert_eq!(gw.resolver.stats().host_unreachable, 3);
    assert_eq!(gw.resolver.stats().dropped, 0);
    let errors: Vec<_> = wire
        .sent
        .iter()
        .filter(|(p, f)| {
            *p == PUB
                && Ethernet2Header::from_slice(f.data()).unwrap().0.ether_type == EtherType::IPV4
        })
        .collect();
    assert_eq!(errors.len(), 3);
    for ((port, f), orig) in errors.iter().zip(&sent) {
        assert_eq!(*port, PUB);
        let (e, ip) = Ethernet2Header::from_slice(f.data()).unwrap();
        assert_eq!((e.destination, e.source), (CLIENT_MAC, PUB_MAC));
        let (src, dst, code, quoted) = read_unreachable(ip);
        assert_eq!((src, dst, code), (GW_PUB, CLIENT, 1));
        let (q, rest) = Ipv4Header::from_slice(&quoted).unwrap();
        assert_eq!(
            (q.source, q.destination, q.time_to_live),
            (CLIENT, EIP1, 63)
        );
        assert_eq!(q.header_checksum, q.calc_header_checksum());
        assert_eq!(rest, &orig[20..], "the UDP header and data as sent");
    }

    // Toward the Internet: the tenant's VM is answered inside its tunnel,
    // about its datagram from its private address.
    const ROUTER: [u8; 4] = [1, 1, 1, 254];
    let mut gw = Gw::with_spec(&spec_without(&[ROUTER], &[]));
    let mut wire = Wire::default();
    let orig = inner_udp(VM, [8, 8, 8, 8], 64, b"out");
    let frame = gre_frame(HOST2, HOST2_MAC, 0x2000, 2000, 0x0800, &orig);
    wire.sent.clear();
    until_failed(&mut gw, &frame, UND, &mut wire);
    let (port, f) = wire
        .sent
        .iter()
        .find(|(p, _)| *p == UND)
        .expect("an error into the tunnel");
    assert_eq!(*port, UND);
    let (_, outer, key, _, inner) = open_gre(f.data());
    assert_eq!((outer.destination, key), (HOST2, 2000));
    let (src, dst, code, quoted) = read_unreachable(&inner);
    assert_eq!((src, dst, code), (GW_UND, VM, 1));
    let (q, rest) = Ipv4Header::from_slice(&quoted).unwrap();
    assert_eq!((q.source, q.destination), (VM, [8, 8, 8, 8]));
    assert_eq!(rest, &orig[20..]);
}

// ------------------------------------------- GRE options tgw sends (issue 9)

/// The GRE header of a frame tgw sent into a tunnel, read by hand from
/// RFC 2784 (C: checksum and reserved1) and RFC 2890 (K: key, S: sequence
/// number), in that order after the four fixed bytes.
struct SentGre {
    flags: u16,
    proto: u16,
    key: u32,
    seq: Option<u32>,
    /// Whether the checksum field holds the one's complement of the one's
    /// complement sum of the GRE header (checksum field zero) and payload,
    /// recomputed here; `None` without C.
    checksum_ok: Option<bool>,
    payload: Vec<u8>,
}

/// Reads a frame tgw sent into a tunnel: outer Ethernet and IPv4 (checked
/// as [`open_gre`] does), then the GRE header with whatever options.
fn read_sent_gre(frame: &[u8]) -> SentGre {
    let (_, rest) = Ethernet2Header::from_slice(frame).unwrap();
    let (ip, gre) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ip.protocol, IpNumber(47));
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "outer IPv4 checksum"
    );
    assert_eq!(
        usize::from(ip.total_len),
        20 + gre.len(),
        "outer total length"
    );
    let flags = u16::from_be_bytes([gre[0], gre[1]]);
    assert_eq!(
        flags & !0xb000,
        0,
        "only C, K and S, version 0: {flags:#06x}"
    );
    let proto = u16::from_be_bytes([gre[2], gre[3]]);
    let mut at = 4;
    let mut checksum_ok = None;
    if flags & 0x8000 != 0 {
        let mut zeroed = gre.to_vec();
        zeroed[4..6].fill(0);
        let want = !fold(&zeroed);
        checksum_ok = Some(u16::from_be_bytes([gre[4], gre[5]]) == want);
        assert_eq!(&gre[6..8], &[0, 0], "reserved1");
        at += 4;
    }
    assert_ne!(flags & 0x2000, 0, "K");
    let key = u32::from_be_bytes(gre[at..at + 4].try_into().unwrap());
    at += 4;
    let seq = (flags & 0x1000 != 0).then(|| {
        at += 4;
        u32::from_be_bytes(gre[at - 4..at].try_into().unwrap())
    });
    SentGre {
        flags,
        proto,
        key,
        seq,
        checksum_ok,
        payload: gre[at..].to_vec(),
    }
}

/// The reference spec with both tenants sending `gre`.
fn spec_with_gre(gre: dataplane::tenant::GreOptions) -> Spec {
    let mut s = spec();
    for t in &mut s.tenants {
        t.gre = gre;
    }
    s
}

const GRE_OPTION_SETS: [(bool, bool); 3] = [(true, false), (false, true), (true, true)];

fn gre_options(checksum: bool, sequence: bool) -> dataplane::tenant::GreOptions {
    dataplane::tenant::GreOptions { checksum, sequence }
}

/// The flags a tenant with these options must see.
fn flags_for(checksum: bool, sequence: bool) -> u16 {
    0x2000 | if checksum { 0x8000 } else { 0 } | if sequence { 0x1000 } else { 0 }
}

/// UDP packet `i` from the client to elastic IP `eip`, at time `i`, by the
/// full path when `full`, else past the fast path first (a flow hit once
/// an earlier packet made the flow): the verdict and the frame as sent.
fn client_to_eip(gw: &mut Gw, eip: [u8; 4], i: u64, full: bool) -> (Verdict, VecFrame) {
    let frame = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &inner_udp(CLIENT, eip, 64, format!("packet {i}").as_bytes()),
    );
    let hint = if full {
        Hint::FULL_PATH
    } else {
        Hint::default()
    };
    let mut f = VecFrame::new(&frame, PUB);
    let v = gw
        .pipeline
        .process_staged(&gw.tables, &gw.counters, &mut f, i, &hint);
    (v, f)
}

#[test]
fn gre_checksums_and_sequence_numbers_are_sent_on_the_full_and_fast_paths() {
    for (checksum, sequence) in GRE_OPTION_SETS {
        let mut gw = Gw::with_spec(&spec_with_gre(gre_options(checksum, sequence)));
        // Tenant 1 is gretap toward host .11, tenant 2 GRE-IPv4 toward .12.
        for (eip, key, proto) in [(EIP1, 1000, 0x6558), (EIP2, 2000, 0x0800)] {
            let mut seqs = Vec::new();
            for i in 0..6u64 {
                // The first creates the flow; then the full path and the
                // fast path (a flow hit) take turns.
                let (v, f) = client_to_eip(&mut gw, eip, i, i % 2 == 0);
                let why = format!("C {checksum} S {sequence} key {key} packet {i}");
                assert_eq!(v, Verdict::Forward(UND), "{why}");
                let g = read_sent_gre(f.data());
                assert_eq!(g.flags, flags_for(checksum, sequence), "{why}");
                assert_eq!((g.key, g.proto), (key, proto), "{why}");
                assert_eq!(g.checksum_ok, checksum.then_some(true), "{why}");
                let inner = if proto == 0x6558 {
                    &g.payload[14..]
                } else {
                    &g.payload[..]
                };
                let h = assert_valid_ipv4(inner);
                assert_eq!((h.source, h.destination), (CLIENT, VM), "{why}");
                assert_valid_transport(inner);
                seqs.extend(g.seq);
            }
            if sequence {
                assert!(
                    seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
                    "one more per packet into the tunnel: {seqs:?}"
                );
            }
        }
        assert_eq!(gw.pipeline.flows(), 2);
    }
}

/// A tenant's tunnels number their frames each on its own (RFC 2890: a
/// sequence number is per tunnel), on the full path and the fast path:
/// the tunnel's adjacency names it for the counter (`TunnelAdj::id`).
#[test]
fn each_tunnel_of_a_tenant_numbers_its_frames_on_its_own() {
    const EIP3: [u8; 4] = [2, 2, 2, 13];
    const VM3: [u8; 4] = [10, 0, 1, 5];
    let mut s = spec_with_gre(gre_options(false, true));
    // Tenant 1's second tunnel (host .13, 10.0.1.0/24) gets an elastic IP.
    s.eips.push((ip(EIP3), 1000, ip(VM3)));
    let mut gw = Gw::with_spec(&s);
    let seqs = |gw: &mut Gw, eip: [u8; 4], host_mac: [u8; 6], from: u64| {
        let mut out = Vec::new();
        for i in from..from + 4 {
            // The first creates the flow; then the fast path and the full
            // path take turns.
            let (v, f) = client_to_eip(gw, eip, i, i % 2 == 1);
            assert_eq!(v, Verdict::Forward(UND), "to {eip:?}, packet {i}");
            assert_eq!(f.data()[..6], host_mac, "to {eip:?}, packet {i}");
            out.extend(read_sent_gre(f.data()).seq);
        }
        out
    };
    let first = seqs(&mut gw, EIP1, HOST1_MAC, 0);
    let second = seqs(&mut gw, EIP3, HOST3_MAC, 4);
    assert_eq!(first.len(), 4);
    assert_eq!(
        first, second,
        "the second tunnel starts where the first did: {first:?} then {second:?}"
    );
}

#[test]
fn arp_inside_a_tunnel_is_answered_with_the_tenants_gre_options() {
    for (checksum, sequence) in GRE_OPTION_SETS {
        // Whatever the host asks with, the answer carries the tenant's.
        for host_flags in [0x2000, 0xa000, 0x3000, 0xb000] {
            let why = format!("C {checksum} S {sequence} asked with {host_flags:#06x}");
            let mut gw = Gw::with_spec(&{
                let mut s = spec_without(&[], &[VM]);
                s.tenants[0].gre = gre_options(checksum, sequence);
                s
            });
            let mut wire = Wire::default();
            let request = eth(
                [0xff; 6],
                VM1_MAC,
                EtherType::ARP,
                &arp_body(1, VM1_MAC, VM, [0; 6], [10, 0, 0, 1]),
            );
            let ask = gre_frame(HOST1, HOST1_MAC, host_flags, 1000, 0x6558, &request);
            // A host not known yet: the resolver learns it and answers;
            // then the worker answers in place.
            assert_eq!(gw.run_at(&ask, UND, 0, &mut wire), Verdict::Punt, "{why}");
            assert_eq!(
                gw.run_at(&ask, UND, 1, &mut wire),
                Verdict::Forward(UND),
                "{why}"
            );
            // And a packet of a flow into the same tunnel after them.
            let to_vm = eth(
                PUB_MAC,
                CLIENT_MAC,
                EtherType::IPV4,
                &inner_udp(CLIENT, EIP1, 64, b"x"),
            );
            assert_eq!(
                gw.run_at(&to_vm, PUB, 2, &mut wire),
                Verdict::Forward(UND),
                "{why}"
            );
            assert_eq!(wire.sent.len(), 3, "{why}");
            let mut seqs = Vec::new();
            for (who, (port, f)) in ["resolver", "worker", "flow"].iter().zip(&wire.sent) {
                assert_eq!(*port, UND);
                let g = read_sent_gre(f.data());
                assert_eq!(g.flags, flags_for(checksum, sequence), "{why} {who}");
                assert_eq!((g.key, g.proto), (1000, 0x6558), "{why} {who}");
                assert_eq!(g.checksum_ok, checksum.then_some(true), "{why} {who}");
                if *who != "flow" {
                    let (ie, body) = Ethernet2Header::from_slice(&g.payload).unwrap();
                    assert_eq!(
                        (ie.destination, ie.source),
                        (VM1_MAC, T1_MAC),
                        "{why} {who}"
                    );
                    assert_eq!(read_arp(body), (2, T1_MAC, [10, 0, 0, 1], VM1_MAC, VM));
                }
                seqs.extend(g.seq);
            }
            if sequence {
                assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{why}: {seqs:?}");
            }
        }
    }
}

#[test]
fn frames_the_resolver_sends_into_a_tunnel_carry_the_tenants_gre_options() {
    let mut wire = Wire::default();
    let inbound_to_vm = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &inner_udp(CLIENT, VM, 64, b"for the vm"),
    );
    let mut s = spec_without(&[], &[VM]);
    s.ingress.push((ip(VM), 32, 1000));
    s.tenants[0].gre = gre_options(true, true);
    let mut gw = Gw::with_spec(&s);

    // The held frame, then the resolver's request into the tunnel.
    assert_eq!(gw.run_at(&inbound_to_vm, PUB, 0, &mut wire), Verdict::Punt);
    assert_eq!(wire.sent.len(), 1);
    let request = read_sent_gre(wire.sent[0].1.data());
    assert_eq!((request.flags, request.key), (0xb000, 1000));
    assert_eq!(request.checksum_ok, Some(true), "the request's checksum");
    let (ie, body) = Ethernet2Header::from_slice(&request.payload).unwrap();
    assert_eq!((ie.destination, ie.source), ([0xff; 6], T1_MAC));
    assert_eq!(read_arp(body), (1, T1_MAC, [0; 4], [0; 6], VM));

    // The VM answers; the held frame leaves with the MAC filled in, under
    // a checksum that covers it.
    wire.sent.clear();
    let answer = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::ARP,
        &arp_body(2, VM1_MAC, VM, T1_MAC, [0; 4]),
    );
    let v = gw.run_at(
        &gre_frame(HOST1, HOST1_MAC, 0xb000, 1000, 0x6558, &answer),
        UND,
        5,
        &mut wire,
    );
    assert_eq!(v, Verdict::Punt);
    assert_eq!(wire.sent.len(), 1);
    let held = read_sent_gre(wire.sent[0].1.data());
    assert_eq!((held.flags, held.key), (0xb000, 1000));
    assert_eq!(held.checksum_ok, Some(true), "the held frame's checksum");
    let (ie, ip_bytes) = Ethernet2Header::from_slice(&held.payload).unwrap();
    assert_eq!((ie.destination, ie.source), (VM1_MAC, T1_MAC));
    assert_eq!(assert_valid_ipv4(ip_bytes).destination, VM);
    // Numbers are taken when a frame is built: the held frame's first.
    assert!(held.seq.is_some() && request.seq.is_some());
    assert_ne!(held.seq, request.seq);
}

#[test]
fn a_frame_the_resolver_numbered_is_numbered_again_as_it_leaves() {
    let mut wire = Wire::default();
    let inbound_to_vm = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &inner_udp(CLIENT, [10, 0, 0, 9], 64, b"for an unknown vm"),
    );
    let mut s = spec();
    s.ingress.push((ip([10, 0, 0, 9]), 32, 1000));
    s.tenants[0].gre = gre_options(true, true);
    let mut gw = Gw::with_spec(&s);
    // The resolver's request into the tunnel, numbered when built...
    assert_eq!(gw.run_at(&inbound_to_vm, PUB, 0, &mut wire), Verdict::Punt);
    let mut request = wire.sent.pop().unwrap().1.data().to_vec();
    let built = read_sent_gre(&request).seq.unwrap();
    // ... then the worker sends into the same tunnel before it leaves.
    let to_eip = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &tcp(CLIENT, 40001, EIP1, 22, "S"),
    );
    let (v, out) = gw.run(&to_eip, PUB);
    assert_eq!(v, Verdict::Forward(UND));
    let worker = read_sent_gre(&out).seq.unwrap();
    assert!(worker > built);
    // As it leaves through the worker it takes the next number, under a
    // checksum that still holds.
    gw.tables.resequence(&mut request);
    let left = read_sent_gre(&request);
    assert!(left.seq.unwrap() > worker, "{:?} after {worker}", left.seq);
    assert_eq!(left.checksum_ok, Some(true));
    // A frame of a tenant without sequence numbers is left alone.
    let (_, other) = gw.run(
        &eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &tcp(CLIENT, 40002, EIP2, 23, "S"),
        ),
        PUB,
    );
    let mut again = other.clone();
    gw.tables.resequence(&mut again);
    assert_eq!(again, other);
}

// ------------------------------------------------- flow show and flush

#[path = "pipeline/admin.rs"]
mod admin;
#[path = "pipeline/offload.rs"]
mod offload;
#[path = "pipeline/stateless.rs"]
mod stateless;
