//! The 1000-tenant scenario of the tgw-perf `encap` and `decap` profiles, as
//! tables and frames: shared by the pipeline bench and the callgrind driver
//! (examples/pipeline_profile.rs), so both measure the same thing.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use dataplane::neighbour::NeighbourWriter;
use dataplane::tables::{PortSpec, Role, RouteSpec, SnatSpec, Spec, Tables, Target, TenantSpec};
use dataplane::tenant::Encap;
use etherparse::PacketBuilder;

pub const TENANTS: u32 = 1000;

fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

fn public(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(2, 2, (i / 250) as u8, (1 + i % 250) as u8)
}

pub fn tables() -> Tables {
    build(spec())
}

/// The frames of profile `which` of the profile programs (`decap`,
/// `nat`: 1000 clients' flows to one elastic IP, else `encap`), the port
/// they come in by, the port they leave by, and their tables.
pub fn profile(which: &str) -> (Vec<Vec<u8>>, u16, u16, Tables) {
    match which {
        "decap" => (decap_frames(), 1, 0, tables()),
        "nat" => (nat_frames(1000), 0, 1, nat_tables()),
        _ => (encap_frames(), 0, 1, tables()),
    }
}

/// The elastic IP of the `nat` frames: tenant 0's 10.0.0.7.
pub const EIP: [u8; 4] = [3, 3, 3, 3];

/// The same tables with [`EIP`] for tenant 0.
pub fn nat_tables() -> Tables {
    nat_tables_with(dataplane::firewall::FirewallSpec::allow_all())
}

/// [`nat_tables`] with tenant 0's rules `firewall`.
pub fn nat_tables_with(firewall: dataplane::firewall::FirewallSpec) -> Tables {
    let mut spec = spec();
    spec.tenants[0].firewall = firewall;
    spec.eips
        .push((Ipv4Addr::from(EIP), 1000, Ipv4Addr::new(10, 0, 0, 7)));
    build(spec)
}

/// [`nat_tables`] with a default route on the public side, via the
/// client 1.1.1.7: the `nat` clients' flows can be answered.
pub fn nat_tables_routed() -> Tables {
    let mut spec = spec();
    spec.eips
        .push((Ipv4Addr::from(EIP), 1000, Ipv4Addr::new(10, 0, 0, 7)));
    spec.routes.push(RouteSpec {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        via: Ipv4Addr::new(1, 1, 1, 7),
        port: 0,
    });
    build(spec)
}

/// The tables with a source NAT pool for tenant 0 (four addresses, every
/// port from 1024, 64 blocks a host at most) and a default route on the
/// public side, via the client 1.1.1.7.
pub fn snat_tables() -> Tables {
    let mut spec = spec();
    spec.routes.push(RouteSpec {
        prefix: Ipv4Addr::UNSPECIFIED,
        len: 0,
        via: Ipv4Addr::new(1, 1, 1, 7),
        port: 0,
    });
    spec.snat.push(SnatSpec {
        key: 1000,
        addrs: (1..=4).map(|i| Ipv4Addr::new(4, 4, 4, i)).collect(),
        ports: (1024, 65535),
        max_blocks: 64,
        endpoint_independent_filtering: false,
    });
    build(spec)
}

/// Where [`snat_frame`]'s inner IPv4 header starts: after the outer
/// Ethernet and IPv4 headers, GRE with its key and the inner Ethernet.
pub const SNAT_INNER_IP: usize = 14 + 20 + 8 + 14;

/// A UDP datagram from tenant 0's 10.0.0.1 to 8.8.8.8 (through the
/// default route of [`snat_tables`]), in gretap from the tenant's host:
/// what `pipeline_profile new-flows-out` stamps each host and port into.
pub fn snat_frame() -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0xa, 7], [2, 0x74, 0, 0, 0, 0])
        .ipv4([10, 0, 0, 1], [8, 8, 8, 8], 64)
        .udp(40000, 53)
        .write(&mut inner, &[0; 18])
        .unwrap();
    let mut gre = vec![0x20, 0, 0x65, 0x58];
    gre.extend_from_slice(&1000u32.to_be_bytes());
    gre.extend_from_slice(&inner);
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0xb, 0xb], [2, 0, 0, 0, 1, 1])
        .ipv4(host(0).octets(), [172, 16, 0, 1], 64)
        .write(&mut f, etherparse::IpNumber(47), &gre)
        .unwrap();
    f
}

fn build(spec: Spec) -> Tables {
    let mut neighbours = NeighbourWriter::new(4 * TENANTS as usize + 16);
    Tables::build(&spec, 1, &mut neighbours).expect("tables")
}

fn spec() -> Spec {
    let vm = [2, 0, 0, 0, 0xa, 7];
    Spec {
        ports: vec![
            PortSpec {
                id: 0,
                role: Role::Public,
                mac: [2, 0, 0, 0, 0, 1],
                addrs: vec![(Ipv4Addr::new(1, 1, 1, 1), 24)],
                mtu: 1500,
            },
            PortSpec {
                id: 1,
                role: Role::Underlay,
                mac: [2, 0, 0, 0, 1, 1],
                addrs: vec![(Ipv4Addr::new(172, 16, 0, 1), 16)],
                mtu: 1500,
            },
        ],
        tenants: (0..TENANTS)
            .map(|i| TenantSpec {
                name: format!("t{i}"),
                key: 1000 + i,
                encap: Encap::Gretap,
                hosts: vec![host(i)],
                prefixes: vec![(Ipv4Addr::new(10, 0, 0, 0), 24), (public(i), 32)],
                mac: [2, 0x74, 0, 0, (i >> 8) as u8, i as u8],
                gre: Default::default(),
                routes: vec![
                    (Ipv4Addr::new(10, 0, 0, 0), 24, Target::Host(host(i))),
                    (public(i), 32, Target::Host(host(i))),
                    (Ipv4Addr::UNSPECIFIED, 0, Target::Public),
                ],
                firewall: dataplane::firewall::FirewallSpec::allow_all(),
            })
            .collect(),
        routes: vec![],
        neighbours: (0..TENANTS)
            .map(|i| (1, host(i), [2, 0, 0, 0, 0xb, 0xb]))
            .chain([(0, Ipv4Addr::new(1, 1, 1, 7), [2, 0, 0, 0, 7, 7])])
            .collect(),
        inner_neighbours: (0..TENANTS)
            .flat_map(|i| {
                [
                    (1000 + i, Ipv4Addr::new(10, 0, 0, 7), vm),
                    (1000 + i, public(i), vm),
                ]
            })
            .collect(),
        ingress: (0..TENANTS).map(|i| (public(i), 32, 1000 + i)).collect(),
        eips: Vec::new(),
        snat: Vec::new(),
        mss_clamp: true,
    }
}

/// `n` clients (1.0.0.0/8) each sending one UDP datagram to [`EIP`]: once
/// through, every one of them has its flow, and the next pass is all hits.
pub fn nat_frames(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 7, 7], [2, 0, 0, 0, 0, 1])
                .ipv4((0x0100_0001 + i).to_be_bytes(), EIP, 64)
                .udp(40000, 5001)
                .write(&mut f, &[0; 18])
                .unwrap();
            f
        })
        .collect()
}

pub fn encap_frames() -> Vec<Vec<u8>> {
    (0..TENANTS)
        .map(|i| {
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 7, 7], [2, 0, 0, 0, 0, 1])
                .ipv4([1, 1, 1, 7], public(i).octets(), 64)
                .udp(40000, 5001)
                .write(&mut f, &[0; 18])
                .unwrap();
            f
        })
        .collect()
}

pub fn decap_frames() -> Vec<Vec<u8>> {
    (0..TENANTS)
        .map(|i| {
            let mut inner = Vec::new();
            PacketBuilder::ethernet2(
                [2, 0, 0, 0, 0xa, 7],
                [2, 0x74, 0, 0, (i >> 8) as u8, i as u8],
            )
            // From the tenant's own public address: the stateless exit
            // (a private source needs a flow and NAT).
            .ipv4(public(i).octets(), [1, 1, 1, 7], 64)
            .udp(40000, 5001)
            .write(&mut inner, &[0; 18])
            .unwrap();
            let mut gre = vec![0x20, 0, 0x65, 0x58];
            gre.extend_from_slice(&(1000 + i).to_be_bytes());
            gre.extend_from_slice(&inner);
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 0xb, 0xb], [2, 0, 0, 0, 1, 1])
                .ipv4(host(i).octets(), [172, 16, 0, 1], 64)
                .write(&mut f, etherparse::IpNumber(47), &gre)
                .unwrap();
            f
        })
        .collect()
}
