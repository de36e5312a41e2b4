//! `[[tenant]]` tables: names, GRE keys, tunnel hosts, owned prefixes,
//! public prefixes, each tenant's VRF and its firewall.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use toml::Spanned;

use super::addrs::{host, mac_addr, prefix};
use super::links::{all_subnets, owner, subnet_edge, subnet_of};
use super::neighbours::tenant_neighbours;
use super::rules::{default_action, rules, EipHint, Own};
use super::{int, valid_name, Report};
use crate::config::raw::{List, RawTenant, RawTenantRoute, Section};
use crate::config::{
    Encap, Ipv4Cidr, MacAddr, Port, Role, RouteTarget, Tenant, TenantRoute, DEFAULT_IN, DEFAULT_OUT,
};

/// What the tenant checks need from the rest of the file. A `None` part is
/// broken (and reported): the checks that need it wait, rather than blame
/// a tenant for it.
pub(super) struct Context<'a> {
    pub ports: Option<&'a [Port]>,
    /// Whether a global route out of an underlay port covers an address.
    pub routed: Option<&'a dyn Fn(Ipv4Addr) -> bool>,
    /// Whether some port has role public.
    pub public: Option<bool>,
    /// The elastic IPs as written, for the firewall rules' hints.
    pub eips: &'a [EipHint],
}

/// A tunnel host and where it is written.
pub(super) type Host = (Ipv4Addr, usize);

/// A public prefix and where it is written.
pub(super) type Public = (Ipv4Cidr, usize);

/// A public prefix already claimed: where, and by which tenant (its index
/// and label).
pub(super) struct Claimed {
    prefix: Ipv4Cidr,
    at: usize,
    tenant: usize,
    label: String,
}

pub(super) fn tenants(list: &List<RawTenant>, cx: &Context, r: &mut Report) -> Option<Vec<Tenant>> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<u32, (usize, String)> = HashMap::new();
    let mut claimed: Vec<Claimed> = Vec::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;

    for (index, section) in list.items.iter().enumerate() {
        let t = &section.value;
        let label = t.name.as_ref().map_or_else(
            || "[[tenant]]".to_owned(),
            |n| format!("tenant {:?}", n.get_ref()),
        );

        let name = match &t.name {
            None if !section.readable("name") => None,
            None => {
                r.at(
                    section.at,
                    "[[tenant]] has no name; add name = \"t1\" (A-Z a-z 0-9 _ -, up to 32)",
                );
                None
            }
            Some(n) => {
                let s = n.get_ref().as_str();
                if !valid_name(s) {
                    r.at(
                        n.span().start,
                        format!("tenant name {s:?} is not allowed; use 1 to 32 of A-Z a-z 0-9 _ -"),
                    );
                    None
                } else if let Some(first) = names.get(s) {
                    r.at(
                        n.span().start,
                        format!(
                            "tenant {s:?} is defined twice (first at line {}); give each [[tenant]] a unique name",
                            r.line(*first)
                        ),
                    );
                    None
                } else {
                    names.insert(s, n.span().start);
                    Some(s.to_owned())
                }
            }
        };

        let key = match &t.key {
            None if !section.readable("key") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label} has no key; add key = the GRE key (0..=4294967295) its tunnel hosts send with"),
                );
                None
            }
            Some(k) => gre_key(k, &label, &mut keys, r),
        };

        let encap = match &t.encap {
            None if !section.readable("encap") => None,
            None => Some(Encap::default()),
            Some(v) => {
                let s = v.get_ref();
                let encap = Encap::ALL.into_iter().find(|e| e.as_str() == s);
                if encap.is_none() {
                    r.at(
                        v.span().start,
                        format!("{label}: unknown encap {s:?}; use \"gretap\" (Ethernet in GRE, 0x6558) or \"ipv4\" (IPv4 in GRE, 0x0800)"),
                    );
                }
                encap
            }
        };

        let gre_checksum = t.gre_checksum.as_ref().is_some_and(|v| *v.get_ref());
        let gre_sequence = t.gre_sequence.as_ref().is_some_and(|v| *v.get_ref());
        let hosts = hosts(section, &label, r);
        let prefixes = prefixes(section, &label, r);
        let mac = tunnel_mac(t, encap, &label, r);
        let routes = routes(&t.route_list, hosts.as_deref(), cx.public, &label, r);
        let public = public_prefixes(section, &label, r);
        let public_list: Option<Vec<Ipv4Cidr>> = public
            .as_ref()
            .map(|list| list.iter().map(|&(p, _)| p).collect());
        let neighbours = tenant_neighbours(
            &t.neighbour_list,
            encap,
            prefixes.as_deref(),
            public_list.as_deref(),
            &label,
            r,
        );
        let own = Own {
            name: t.name.as_ref().map(|n| n.get_ref().as_str()),
            prefixes: prefixes.as_deref(),
            public: public_list.as_deref(),
            eips: cx.eips,
        };
        let rules = rules(&t.rule_list, &own, &label, r);
        let default_in = default_action(
            section,
            t.default_in.as_ref(),
            "default_in",
            DEFAULT_IN,
            &label,
            r,
        );
        let default_out = default_action(
            section,
            t.default_out.as_ref(),
            "default_out",
            DEFAULT_OUT,
            &label,
            r,
        );
        let reachable = match (cx.ports, cx.routed, hosts.as_deref()) {
            (Some(ports), Some(routed), Some(hosts)) => {
                on_underlay(hosts, ports, routed, &label, r)
            }
            // Not checkable yet; the config is refused for the other part.
            _ => true,
        };
        let routed_in = match public.as_deref() {
            Some(list) => {
                let inbound = Inbound {
                    tenant: index,
                    label: &label,
                    hosts: hosts.as_deref(),
                    routes: routes.as_deref(),
                    ports: cx.ports,
                };
                public_reach(list, &inbound, &mut claimed, r)
            }
            // Already refused for its own problems.
            None => true,
        };

        match (
            name,
            key,
            encap,
            hosts,
            prefixes,
            mac,
            routes,
            public_list,
            neighbours,
            (rules, default_in, default_out),
        ) {
            (
                Some(name),
                Some(key),
                Some(encap),
                Some(hosts),
                Some(prefixes),
                Some(mac),
                Some(routes),
                Some(public_prefixes),
                Some(neighbours),
                (Some(rules), Some(default_in), Some(default_out)),
            ) if reachable && routed_in && section.sound() => out.push(Tenant {
                name,
                key,
                encap,
                gre_checksum,
                gre_sequence,
                hosts: hosts.into_iter().map(|(ip, _)| ip).collect(),
                prefixes,
                mac,
                routes,
                public_prefixes,
                neighbours,
                rules,
                default_in,
                default_out,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// The key must be unique: it is all that tells tenants apart on the
/// underlay, where their addresses may overlap.
fn gre_key(
    k: &Spanned<i64>,
    label: &str,
    seen: &mut HashMap<u32, (usize, String)>,
    r: &mut Report,
) -> Option<u32> {
    let key: u32 = int(
        Some(k),
        0,
        0,
        i64::from(u32::MAX),
        &format!("{label}: key"),
        " (a GRE key is 32 bits)",
        r,
    )?;
    let at = k.span().start;
    if let Some((first, owner)) = seen.get(&key) {
        r.at(
            at,
            format!(
                "{label}: key {key} is already the key of {owner} (line {}); the GRE key names the tenant on the underlay, so give each tenant its own",
                r.line(*first)
            ),
        );
        return None;
    }
    seen.insert(key, (at, label.to_owned()));
    Some(key)
}

fn hosts(section: &Section<RawTenant>, label: &str, r: &mut Report) -> Option<Vec<Host>> {
    let list = match &section.value.hosts {
        None if !section.readable("hosts") => return None,
        None => {
            r.at(
                section.at,
                format!("{label} has no hosts; add hosts = the underlay addresses of the tunnel hosts that send with its key, e.g. [\"172.168.0.11\"]"),
            );
            return None;
        }
        Some(list) => list,
    };
    if list.get_ref().is_empty() {
        r.at(
            list.span().start,
            format!("{label}: hosts is empty, so no tunnel may send with its key; list the underlay addresses of its tunnel hosts, e.g. [\"172.168.0.11\"]"),
        );
        return None;
    }
    let mut out: Vec<Host> = Vec::new();
    let mut ok = true;
    for v in list.get_ref() {
        let Some(ip) = host(v, label, "host", r) else {
            ok = false;
            continue;
        };
        let at = v.span().start;
        if let Some((_, first)) = out.iter().find(|(h, _)| *h == ip) {
            r.at(
                at,
                format!(
                    "{label}: host {ip} is listed twice (first at line {}); remove one",
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        out.push((ip, at));
    }
    ok.then_some(out)
}

fn prefixes(section: &Section<RawTenant>, label: &str, r: &mut Report) -> Option<Vec<Ipv4Cidr>> {
    let list = match &section.value.prefixes {
        None if !section.readable("prefixes") => return None,
        None => {
            r.at(
                section.at,
                format!("{label} has no prefixes; add prefixes = the inner source prefixes it owns, e.g. [\"10.0.0.0/24\"] (traffic from other sources is dropped)"),
            );
            return None;
        }
        Some(list) => list,
    };
    if list.get_ref().is_empty() {
        r.at(
            list.span().start,
            format!("{label}: prefixes is empty, so every packet of the tenant would be dropped; list the inner source prefixes it owns, e.g. [\"10.0.0.0/24\"]"),
        );
        return None;
    }
    let mut out: Vec<(Ipv4Cidr, usize)> = Vec::new();
    let mut ok = true;
    for v in list.get_ref() {
        let Some(p) = prefix(v, label, "prefix", r) else {
            ok = false;
            continue;
        };
        let at = v.span().start;
        if let Some((_, first)) = out.iter().find(|(q, _)| *q == p) {
            r.at(
                at,
                format!(
                    "{label}: prefix {p} is listed twice (first at line {}); remove one",
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        out.push((p, at));
    }
    ok.then(|| out.into_iter().map(|(p, _)| p).collect())
}

/// `public_prefixes`, each with its host bits zero and given once; default
/// none.
fn public_prefixes(
    section: &Section<RawTenant>,
    label: &str,
    r: &mut Report,
) -> Option<Vec<Public>> {
    let Some(list) = &section.value.public_prefixes else {
        return section.readable("public_prefixes").then(Vec::new);
    };
    let mut out: Vec<Public> = Vec::new();
    let mut ok = true;
    for v in list {
        let Some(p) = prefix(v, label, "public prefix", r) else {
            ok = false;
            continue;
        };
        let at = v.span().start;
        if let Some((_, first)) = out.iter().find(|(q, _)| *q == p) {
            r.at(
                at,
                format!(
                    "{label}: public prefix {p} is listed twice (first at line {}); remove one",
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        out.push((p, at));
    }
    ok.then_some(out)
}

/// What [`public_reach`] checks a tenant's public prefixes against. A
/// `None` part is broken (and reported): the checks that need it wait.
pub(super) struct Inbound<'a> {
    /// Index of the tenant in the file, to tell its own claims apart.
    pub tenant: usize,
    pub label: &'a str,
    pub hosts: Option<&'a [Host]>,
    pub routes: Option<&'a [TenantRoute]>,
    pub ports: Option<&'a [Port]>,
}

/// Whether the public side can send each public prefix into this tenant
/// and on to one of its hosts: the prefix is no other tenant's (the
/// destination alone picks the tenant), not on a port's own link (there an
/// address is a neighbour reached by ARP, not a tenant's), and the
/// tenant's VRF leads it to a host. Records the prefixes in `claimed`.
pub(super) fn public_reach(
    list: &[Public],
    cx: &Inbound,
    claimed: &mut Vec<Claimed>,
    r: &mut Report,
) -> bool {
    let label = cx.label;
    let mut ok = true;
    for &(p, at) in list {
        if let Some(other) = claimed
            .iter()
            .find(|c| c.tenant != cx.tenant && c.prefix.overlaps(&p))
        {
            r.at(
                at,
                format!(
                    "{label}: public prefix {p} overlaps {} of {} (line {}); a public address leads into one tenant only, so give each tenant its own",
                    other.prefix,
                    other.label,
                    r.line(other.at)
                ),
            );
            ok = false;
            continue;
        }
        claimed.push(Claimed {
            prefix: p,
            at,
            tenant: cx.tenant,
            label: label.to_owned(),
        });
        let on_link = cx.ports.into_iter().flatten().find_map(|port| {
            port.addresses
                .iter()
                .find(|a| a.overlaps(&p))
                .map(|a| (port, a))
        });
        if let Some((port, subnet)) = on_link {
            r.at(
                at,
                format!(
                    "{label}: public prefix {p} overlaps the subnet {}/{} of port {:?}; addresses there are on that port's own link, reached by ARP and not through a tenant, so use a prefix outside it",
                    subnet.network(),
                    subnet.len,
                    port.name
                ),
            );
            ok = false;
            continue;
        }
        let Some(routes) = cx.routes else {
            continue;
        };
        // The longest route covering all of the prefix is what its packets
        // match (a longer route inside it only takes part of it).
        let best = routes
            .iter()
            .filter(|rt| rt.prefix.covers(&p))
            .max_by_key(|rt| rt.prefix.len);
        let now = match best {
            Some(rt) if matches!(rt.to, RouteTarget::Host(_)) => continue,
            Some(rt) => format!(
                "its longest covering route, {}, goes to {}",
                rt.prefix, rt.to
            ),
            None => "no route of the tenant covers it".to_owned(),
        };
        let example = cx
            .hosts
            .and_then(|h| h.first())
            .map_or_else(String::new, |(h, _)| {
                format!(", e.g. {{ prefix = \"{p}\", to = \"{h}\" }}")
            });
        r.at(
            at,
            format!(
                "{label}: public prefix {p} does not reach a host of the tenant ({now}); add a route for {p} to one of its hosts{example}"
            ),
        );
        ok = false;
    }
    ok
}

/// The gateway's MAC inside the tunnels: only gretap carries an Ethernet
/// header for it to appear in. `Some(None)` when absent.
fn tunnel_mac(
    t: &RawTenant,
    encap: Option<Encap>,
    label: &str,
    r: &mut Report,
) -> Option<Option<MacAddr>> {
    let mac = mac_addr(t.mac.as_ref(), label, "mac", r)?;
    match (&t.mac, encap) {
        (Some(v), Some(Encap::Ipv4)) => {
            r.at(
                v.span().start,
                format!("{label}: mac applies to gretap tunnels only (IPv4 in GRE carries no Ethernet header); remove it or set encap = \"gretap\""),
            );
            None
        }
        _ => Some(mac),
    }
}

/// The tenant's VRF. `hosts` is `None` when they are broken: routes to a
/// host are then not checked against them.
pub(super) fn routes(
    list: &List<RawTenantRoute>,
    hosts: Option<&[Host]>,
    public: Option<bool>,
    label: &str,
    r: &mut Report,
) -> Option<Vec<TenantRoute>> {
    let mut seen: HashMap<Ipv4Cidr, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;
    for section in &list.items {
        let v = &section.value;
        let net = match &v.prefix {
            None if !section.readable("prefix") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label}: a route has no prefix; add prefix = the destinations it covers, e.g. \"0.0.0.0/0\""),
                );
                None
            }
            Some(p) => prefix(p, label, "route prefix", r),
        };
        let what = v.prefix.as_ref().map_or_else(
            || "a route".to_owned(),
            |p| format!("route {}", p.get_ref()),
        );
        let to = match &v.to {
            None if !section.readable("to") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label}: {what} has no to; add to = one of the tenant's hosts, \"public\", \"local\" or \"blackhole\""),
                );
                None
            }
            Some(t) => target(t, hosts, public, label, &what, r),
        };
        let (Some(net), Some(to)) = (net, to) else {
            ok = false;
            continue;
        };
        let at = v.prefix.as_ref().map_or(section.at, |p| p.span().start);
        if let Some(first) = seen.get(&net) {
            r.at(
                at,
                format!(
                    "{label}: route prefix {net} is given twice (first at line {}); keep one route per prefix in a tenant",
                    r.line(*first)
                ),
            );
            ok = false;
            continue;
        }
        seen.insert(net, at);
        if section.sound() {
            out.push(TenantRoute { prefix: net, to });
        } else {
            ok = false;
        }
    }
    ok.then_some(out)
}

fn target(
    v: &Spanned<String>,
    hosts: Option<&[Host]>,
    public: Option<bool>,
    label: &str,
    what: &str,
    r: &mut Report,
) -> Option<RouteTarget> {
    let s = v.get_ref();
    let at = v.span().start;
    let listed = || match hosts {
        Some(hosts) => hosts
            .iter()
            .map(|(h, _)| h.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        None => "its hosts".to_owned(),
    };
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        if hosts.is_some_and(|hosts| !hosts.iter().any(|(h, _)| *h == ip)) {
            r.at(
                at,
                format!(
                    "{label}: {what} goes to {ip}, which is not one of the tenant's hosts; add it to hosts or route to one of {}",
                    listed()
                ),
            );
            return None;
        }
        return Some(RouteTarget::Host(ip));
    }
    let Some(target) = RouteTarget::KEYWORDS
        .into_iter()
        .find(|k| k.to_string() == *s)
    else {
        r.at(
            at,
            format!(
                "{label}: {what} has unknown target {s:?}; use a host of the tenant ({}), \"public\", \"local\" or \"blackhole\"",
                listed()
            ),
        );
        return None;
    };
    if target == RouteTarget::Public && public == Some(false) {
        r.at(
            at,
            format!("{label}: {what} goes to \"public\" but no port has role = \"public\"; add such a [[port]] or route elsewhere"),
        );
        return None;
    }
    Some(target)
}

/// Every tunnel host is on an underlay port's subnet or behind a global
/// route out of an underlay port: else the gateway could never send to it.
fn on_underlay(
    hosts: &[Host],
    ports: &[Port],
    routed: &dyn Fn(Ipv4Addr) -> bool,
    label: &str,
    r: &mut Report,
) -> bool {
    let underlay = || ports.iter().filter(|p| p.role == Role::Underlay);
    let mut ok = true;
    for &(ip, at) in hosts {
        if let Some(own) = owner(ports, ip) {
            r.at(
                at,
                format!(
                    "{label}: host {ip} is the gateway's own address on port {:?}; list the tunnel host's address",
                    own.name
                ),
            );
            ok = false;
            continue;
        }
        if let Some((port, subnet)) = underlay().find_map(|p| subnet_of(p, ip).map(|s| (p, s))) {
            if let Some(edge) = subnet_edge(subnet, ip) {
                r.at(
                    at,
                    format!(
                        "{label}: host {ip} is the {edge} address of {}/{} on port {:?}, not a host; use the tunnel host's own address",
                        subnet.network(),
                        subnet.len,
                        port.name
                    ),
                );
                ok = false;
            }
            continue;
        }
        let routed = routed(ip);
        if routed {
            continue;
        }
        let elsewhere = ports
            .iter()
            .find(|p| p.role != Role::Underlay && subnet_of(p, ip).is_some())
            .map_or_else(String::new, |p| {
                format!(
                    " (it is on the subnet of port {:?}, which faces the {} side)",
                    p.name, p.role
                )
            });
        r.at(
            at,
            format!(
                "{label}: host {ip} is not reachable on the underlay{elsewhere}: no underlay port's subnet holds it ({}) and no [[route]] out of an underlay port covers it; add such a [[route]] via a router on the underlay, or fix the address",
                all_subnets(underlay())
            ),
        );
        ok = false;
    }
    ok
}
