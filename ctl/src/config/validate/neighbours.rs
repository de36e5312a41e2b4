//! `[[neighbour]]` tables: static ARP entries on the gateway's links; and
//! a tenant's `neighbours`: static ARP entries inside its gretap tunnels.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::addrs::{host, mac_addr};
use super::links::{owner, port_named, subnet_edge, subnet_of, subnets};
use super::Report;
use crate::config::raw::{List, RawNeighbour, RawTenantNeighbour};
use crate::config::{Encap, Ipv4Cidr, Neighbour, Port, TenantNeighbour};

/// `ports` is `None` when some port is broken: the checks against the
/// port then wait for it to be fixed.
pub(super) fn neighbours(
    list: &List<RawNeighbour>,
    ports: Option<&[Port]>,
    r: &mut Report,
) -> Option<Vec<Neighbour>> {
    let mut seen: HashMap<(usize, Ipv4Addr), usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;

    for section in &list.items {
        let n = &section.value;
        let label = n.ip.as_ref().map_or_else(
            || "[[neighbour]]".to_owned(),
            |ip| format!("neighbour {}", ip.get_ref()),
        );
        let port = match (&n.port, ports) {
            (None, _) if !section.readable("port") => None,
            (None, _) => {
                r.at(
                    section.at,
                    format!("{label} has no port; add port = the name of the [[port]] whose link it is on"),
                );
                None
            }
            (Some(v), Some(ports)) => port_named(ports, v, &label, r),
            (Some(_), None) => None,
        };
        let ip = match &n.ip {
            None if !section.readable("ip") => None,
            None => {
                r.at(
                    section.at,
                    "[[neighbour]] has no ip; add ip = its IPv4 address, inside a subnet of the port",
                );
                None
            }
            Some(v) => host(v, &label, "ip", r),
        };
        let mac = match &n.mac {
            None if !section.readable("mac") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label} has no mac; add mac = its Ethernet address, e.g. \"02:00:00:00:0b:0b\""),
                );
                None
            }
            Some(v) => mac_addr(Some(v), &label, "mac", r).flatten(),
        };

        let (Some(ports), Some(port), Some(ip), Some(written)) = (ports, port, ip, n.ip.as_ref())
        else {
            ok = false;
            continue;
        };
        let at = written.span().start;
        let Some(p) = ports.get(port) else {
            ok = false;
            continue;
        };
        if let Some(own) = owner(ports, ip) {
            r.at(
                at,
                format!(
                    "{label}: {ip} is the gateway's own address on port {:?}; a static neighbour is another host on the link",
                    own.name
                ),
            );
            ok = false;
            continue;
        }
        let Some(subnet) = subnet_of(p, ip) else {
            r.at(
                at,
                format!(
                    "{label}: ip {ip} is not inside a subnet of port {:?} ({}); a static neighbour is a host on that port's own link, so fix the ip or the port",
                    p.name,
                    subnets(p)
                ),
            );
            ok = false;
            continue;
        };
        if let Some(edge) = subnet_edge(subnet, ip) {
            r.at(
                at,
                format!(
                    "{label}: ip {ip} is the {edge} address of {}/{}, not a host; use the neighbour's own address",
                    subnet.network(),
                    subnet.len
                ),
            );
            ok = false;
            continue;
        }
        if let Some(first) = seen.get(&(port, ip)) {
            r.at(
                at,
                format!(
                    "{label} on port {:?} is already defined at line {}; keep one entry per address",
                    p.name,
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        seen.insert((port, ip), at);
        match mac {
            Some(mac) if section.sound() => out.push(Neighbour { port, ip, mac }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A tenant's static neighbours; `tenant` is its label for the messages.
/// `encap`, `prefixes` and `public` (its public prefixes) are `None` when
/// broken: the checks against them wait.
pub(super) fn tenant_neighbours(
    list: &List<RawTenantNeighbour>,
    encap: Option<Encap>,
    prefixes: Option<&[Ipv4Cidr]>,
    public: Option<&[Ipv4Cidr]>,
    tenant: &str,
    r: &mut Report,
) -> Option<Vec<TenantNeighbour>> {
    let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;

    // Once for the list: each entry is wrong for the same reason.
    if let (Some(Encap::Ipv4), Some(first)) = (encap, list.items.first()) {
        r.at(
            first.at,
            format!("{tenant}: neighbours apply to gretap tunnels only (IPv4 in GRE carries no inner Ethernet header, so there is no MAC to fix); remove them or set encap = \"gretap\""),
        );
        ok = false;
    }

    for section in &list.items {
        let n = &section.value;
        let label = n.ip.as_ref().map_or_else(
            || format!("{tenant}: a neighbour"),
            |ip| format!("{tenant}: neighbour {}", ip.get_ref()),
        );
        let ip = match &n.ip {
            None if !section.readable("ip") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label} has no ip; add ip = its address inside the tunnel, in the tenant's prefixes or public_prefixes"),
                );
                None
            }
            Some(v) => host(v, tenant, "neighbour ip", r),
        };
        let mac = match &n.mac {
            None if !section.readable("mac") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label} has no mac; add mac = its Ethernet address inside the tunnel, e.g. \"02:00:00:00:0a:07\""),
                );
                None
            }
            Some(v) => mac_addr(Some(v), &label, "mac", r).flatten(),
        };

        let (Some(ip), Some(written)) = (ip, n.ip.as_ref()) else {
            ok = false;
            continue;
        };
        let at = written.span().start;
        if let (Some(prefixes), Some(public)) = (prefixes, public) {
            if !prefixes.iter().chain(public).any(|p| p.contains(ip)) {
                r.at(
                    at,
                    format!(
                        "{label} is not inside the tenant's prefixes ({}) or public_prefixes ({}); a static neighbour is an address of its hosts inside the tunnel, so fix the ip or add its prefix",
                        cidrs(prefixes),
                        cidrs(public)
                    ),
                );
                ok = false;
                continue;
            }
        }
        if let Some(first) = seen.get(&ip) {
            r.at(
                at,
                format!(
                    "{label} is already defined at line {}; keep one entry per address",
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        seen.insert(ip, at);
        match mac {
            Some(mac) if section.sound() => out.push(TenantNeighbour { ip, mac }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Prefixes for a message: `10.0.0.0/24, 10.1.0.0/16`, or `none`.
fn cidrs(list: &[Ipv4Cidr]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    let all: Vec<String> = list.iter().map(Ipv4Cidr::to_string).collect();
    all.join(", ")
}
