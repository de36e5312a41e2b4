//! From the validated config to the dataplane's table spec.
//!
//! `ctl` speaks in port names and config types, `dataplane` in DPDK port
//! ids and plain values; this is the one place that knows both.

use ctl::config::{self, Config, Encap, Filtering, Protocol, Role, RouteTarget, Tenant};
use dataplane::firewall::{self, FirewallSpec, PortRange, ProtoMatch, RuleSpec};
use dataplane::tables::{self, PortSpec, RouteSpec, SnatSpec, Spec, Target, TenantSpec};
use dataplane::tenant;
use rte::MacAddr;

/// The MAC the gateway uses inside a gretap tenant's tunnels when the
/// config names none: locally administered, unicast, and unique per key.
pub fn tenant_mac(key: u32) -> [u8; 6] {
    let k = key.to_be_bytes();
    [0x02, 0x74, k[0], k[1], k[2], k[3]]
}

/// The spec for `config`, with `ports[i]` the DPDK id and MAC of config
/// port `i`.
pub fn spec(config: &Config, ports: &[(u16, MacAddr)]) -> Spec {
    let port_id = |index: usize| ports.get(index).map_or(u16::MAX, |p| p.0);
    Spec {
        ports: config
            .ports
            .iter()
            .zip(ports)
            .map(|(p, &(id, mac))| PortSpec {
                id,
                role: match p.role {
                    Role::Public => tables::Role::Public,
                    Role::Underlay => tables::Role::Underlay,
                },
                mac: mac.0,
                addrs: p.addresses.iter().map(|c| (c.addr, c.len)).collect(),
                mtu: p.mtu,
            })
            .collect(),
        tenants: config.tenants.iter().map(tenant_spec).collect(),
        routes: config
            .routes
            .iter()
            .map(|r| RouteSpec {
                prefix: r.prefix.addr,
                len: r.prefix.len,
                via: r.via,
                port: port_id(r.port),
            })
            .collect(),
        neighbours: config
            .neighbours
            .iter()
            .map(|n| (port_id(n.port), n.ip, n.mac.0))
            .collect(),
        inner_neighbours: config
            .tenants
            .iter()
            .flat_map(|t| t.neighbours.iter().map(move |n| (t.key, n.ip, n.mac.0)))
            .collect(),
        ingress: config
            .tenants
            .iter()
            .flat_map(|t| {
                t.public_prefixes
                    .iter()
                    .map(move |c| (c.addr, c.len, t.key))
            })
            .collect(),
        eips: config
            .eips
            .iter()
            .filter_map(|e| Some((e.public, config.tenants.get(e.tenant)?.key, e.private)))
            .collect(),
        snat: config
            .snat
            .iter()
            .filter_map(|p| Some(snat_spec(config.tenants.get(p.tenant)?.key, p)))
            .collect(),
        mss_clamp: config.tcp.mss_clamp,
    }
}

/// A tenant as the dataplane builds it.
pub fn tenant_spec(t: &Tenant) -> TenantSpec {
    TenantSpec {
        name: t.name.clone(),
        key: t.key,
        encap: match t.encap {
            Encap::Gretap => tenant::Encap::Gretap,
            Encap::Ipv4 => tenant::Encap::Ipv4,
        },
        hosts: t.hosts.clone(),
        // Hosts hold their public prefixes themselves, so those are
        // theirs to send from too.
        prefixes: t
            .prefixes
            .iter()
            .chain(&t.public_prefixes)
            .map(|c| (c.addr, c.len))
            .collect(),
        mac: t.mac.map_or_else(|| tenant_mac(t.key), |m| m.0),
        gre: tenant::GreOptions {
            checksum: t.gre_checksum,
            sequence: t.gre_sequence,
        },
        routes: t
            .routes
            .iter()
            .map(|r| {
                let to = match r.to {
                    RouteTarget::Host(h) => Target::Host(h),
                    RouteTarget::Public => Target::Public,
                    RouteTarget::Local => Target::Local,
                    RouteTarget::Blackhole => Target::Blackhole,
                };
                (r.prefix.addr, r.prefix.len, to)
            })
            .collect(),
        firewall: firewall(t),
    }
}

/// The pool of the tenant with GRE key `key` as the dataplane takes it.
pub fn snat_spec(key: u32, p: &config::Snat) -> SnatSpec {
    SnatSpec {
        key,
        addrs: p.addresses.clone(),
        ports: p.ports,
        max_blocks: p.max_blocks,
        endpoint_independent_filtering: p.filtering == Filtering::EndpointIndependent,
    }
}

/// A tenant's firewall rules as the dataplane compiles them.
fn firewall(t: &Tenant) -> FirewallSpec {
    let action = |a: config::Action| match a {
        config::Action::Allow => firewall::Action::Allow,
        config::Action::Deny => firewall::Action::Deny,
    };
    // Validated: lo <= hi.
    let range = |r: Option<config::PortRange>| {
        r.and_then(|r| PortRange::new(r.lo, r.hi))
            .unwrap_or(PortRange::ANY)
    };
    FirewallSpec {
        rules: t
            .rules
            .iter()
            .map(|r| RuleSpec {
                direction: match r.direction {
                    config::Direction::In => firewall::Direction::In,
                    config::Direction::Out => firewall::Direction::Out,
                },
                action: action(r.action),
                proto: match r.proto {
                    Protocol::Any => ProtoMatch::Any,
                    Protocol::Tcp => ProtoMatch::Tcp {
                        sport: range(r.sport),
                        dport: range(r.dport),
                    },
                    Protocol::Udp => ProtoMatch::Udp {
                        sport: range(r.sport),
                        dport: range(r.dport),
                    },
                    Protocol::Icmp => ProtoMatch::Icmp {
                        icmp_type: r.icmp_type,
                        code: r.icmp_code,
                    },
                    Protocol::Number(n) => ProtoMatch::Number(n),
                },
                src: (r.src.addr, r.src.len),
                dst: (r.dst.addr, r.dst.len),
            })
            .collect(),
        default_in: action(t.default_in),
        default_out: action(t.default_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_tenant_macs_are_unicast_local_and_distinct() {
        let (a, b) = (tenant_mac(1000), tenant_mac(2000));
        assert_ne!(a, b);
        assert_eq!(a[0] & 0x03, 0x02, "locally administered unicast");
    }

    #[test]
    fn the_reference_example_builds_tables() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reference.toml");
        let cpus: ctl::cpuset::CpuSet = [0, 1].into_iter().collect();
        let config = ctl::config::load(&path, &cpus).expect("reference.toml is valid");
        let ports = [
            (0, MacAddr([2, 0, 0, 0, 0, 1])),
            (1, MacAddr([2, 0, 0, 0, 1, 1])),
        ];
        let mut neighbours = dataplane::neighbour::NeighbourWriter::new(64);
        let t = dataplane::tables::Tables::build(&spec(&config, &ports), 1, &mut neighbours)
            .expect("tables");
        assert_eq!(t.tenants.len(), 2);
        assert_eq!(t.tenants.by_key(1000).map(|x| x.name.as_str()), Some("t1"));
        assert!(
            t.tenants.iter().flat_map(|x| &x.tunnels).all(|a| matches!(
                t.neighbours.get_ref(a.neigh),
                dataplane::neighbour::Lookup::Mac(_)
            )),
            "static neighbours resolve every tunnel host"
        );

        // The scenario's firewall, in the tenants' own addresses.
        use dataplane::firewall::{Direction, Packet5};
        let (client, vm) = (
            std::net::Ipv4Addr::new(1, 1, 1, 7),
            std::net::Ipv4Addr::new(10, 0, 0, 7),
        );
        for (key, own, other) in [(1000, 22, 23), (2000, 23, 22)] {
            let ten = t.tenants.by_key(key).expect("tenant");
            let allowed = |dir, p: Packet5| ten.firewall.evaluate(dir, &p).allowed();
            assert!(allowed(Direction::In, Packet5::tcp(client, vm, 40000, own)));
            assert!(!allowed(
                Direction::In,
                Packet5::tcp(client, vm, 40000, other)
            ));
            assert!(allowed(Direction::In, Packet5::icmp(client, vm, 8, 0)));
            assert!(!allowed(
                Direction::Out,
                Packet5::tcp(vm, client, 40000, own)
            ));
            assert!(allowed(
                Direction::Out,
                Packet5::tcp(vm, client, 40000, other)
            ));
        }
    }
}
