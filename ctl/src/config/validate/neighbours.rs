//! `[[neighbour]]` tables: static ARP entries on the gateway's links.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::addrs::{host, mac_addr};
use super::links::{owner, port_named, subnet_edge, subnet_of, subnets};
use super::Report;
use crate::config::raw::{List, RawNeighbour};
use crate::config::{Neighbour, Port};

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
