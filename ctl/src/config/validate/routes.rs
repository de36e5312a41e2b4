//! `[[route]]` tables: the global routes of the public side and the
//! underlay, each toward a next hop on one of the gateway's links.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use toml::Spanned;

use super::addrs::{host, prefix};
use super::links::{all_subnets, owner, port_named, subnet_edge, subnet_of, subnets};
use super::Report;
use crate::config::raw::{List, RawRoute};
use crate::config::{Ipv4Cidr, Port, Role, Route};

/// `ports` is `None` when some port is broken: the checks that tie a route
/// to its port then wait, rather than blame the route for the port.
pub(super) fn routes(
    list: &List<RawRoute>,
    ports: Option<&[Port]>,
    r: &mut Report,
) -> Option<Vec<Route>> {
    // One table per side: the same prefix may be routed on both.
    let mut seen: HashMap<(Role, Ipv4Cidr), usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;

    for section in &list.items {
        let v = &section.value;
        let label = v.prefix.as_ref().map_or_else(
            || "[[route]]".to_owned(),
            |p| format!("route {}", p.get_ref()),
        );
        let net = match &v.prefix {
            None if !section.readable("prefix") => None,
            None => {
                r.at(
                    section.at,
                    "[[route]] has no prefix; add prefix = the destinations it covers, e.g. \"0.0.0.0/0\"",
                );
                None
            }
            Some(p) => prefix(p, "[[route]]", "prefix", r),
        };
        let via = match &v.via {
            None if !section.readable("via") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label} has no via; add via = the next-hop router's IPv4 address, inside the subnet of one of the ports' addresses"),
                );
                None
            }
            Some(x) => host(x, &label, "via", r),
        };
        let port = match (ports, &v.via, via) {
            (Some(ports), Some(written), Some(via)) if section.readable("port") => {
                next_hop_port(ports, written, via, v.port.as_ref(), &label, r)
            }
            _ => None,
        };

        let (Some(ports), Some(net), Some(via), Some(port)) = (ports, net, via, port) else {
            ok = false;
            continue;
        };
        let role = ports.get(port).map_or(Role::Public, |p| p.role);
        let at = v.prefix.as_ref().map_or(section.at, |p| p.span().start);
        if let Some(first) = seen.get(&(role, net)) {
            r.at(
                at,
                format!(
                    "{label} is already routed on the {role} side at line {}; keep one [[route]] per prefix on each side",
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        seen.insert((role, net), at);
        if section.sound() {
            out.push(Route {
                prefix: net,
                via,
                port,
            });
        } else {
            ok = false;
        }
    }
    ok.then_some(out)
}

/// The port out of which `via` is reached: the one named, which must hold
/// `via` in a subnet, or else the only port that does.
fn next_hop_port(
    ports: &[Port],
    written: &Spanned<String>,
    via: Ipv4Addr,
    port: Option<&Spanned<String>>,
    label: &str,
    r: &mut Report,
) -> Option<usize> {
    let at = written.span().start;
    // Resolve the name first, so that a typo in it is reported even when
    // via is wrong too.
    let named = match port {
        Some(name) => Some(port_named(ports, name, label, r)?),
        None => None,
    };
    if let Some(own) = owner(ports, via) {
        r.at(
            at,
            format!(
                "{label}: via {via} is the gateway's own address on port {:?}; use the address of the next-hop router",
                own.name
            ),
        );
        return None;
    }
    let holders: Vec<usize> = (0..ports.len())
        .filter(|&i| ports.get(i).and_then(|p| subnet_of(p, via)).is_some())
        .collect();
    let index = match (named, holders.as_slice()) {
        (Some(i), _) if holders.contains(&i) => i,
        (Some(i), _) => {
            let p = ports.get(i)?;
            let hint = match holders.first().and_then(|&h| ports.get(h)) {
                Some(other) => format!(" or set port = {:?}, whose subnet holds it", other.name),
                None => String::new(),
            };
            r.at(
                at,
                format!(
                    "{label}: via {via} is not inside a subnet of port {:?} ({}); use a next hop on that link{hint}",
                    p.name,
                    subnets(p)
                ),
            );
            return None;
        }
        (None, [i]) => *i,
        (None, []) => {
            r.at(
                at,
                format!(
                    "{label}: via {via} is not on-link: no port's subnet holds it ({}); use a next hop inside one of them, or add an address on its subnet to a port",
                    all_subnets(ports)
                ),
            );
            return None;
        }
        (None, several) => {
            let names: Vec<String> = several
                .iter()
                .filter_map(|&i| ports.get(i))
                .map(|p| format!("{:?}", p.name))
                .collect();
            r.at(
                at,
                format!(
                    "{label}: via {via} is on-link on several ports ({}); add port = {} to choose one",
                    names.join(", "),
                    names.first().map_or("\"...\"", String::as_str)
                ),
            );
            return None;
        }
    };
    let p = ports.get(index)?;
    if let Some(subnet) = subnet_of(p, via) {
        if let Some(edge) = subnet_edge(subnet, via) {
            r.at(
                at,
                format!(
                    "{label}: via {via} is the {edge} address of {}/{} on port {:?}, not a router; use the next hop's own address",
                    subnet.network(),
                    subnet.len,
                    p.name
                ),
            );
            return None;
        }
    }
    Some(index)
}
