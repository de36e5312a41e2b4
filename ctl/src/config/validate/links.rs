//! What the gateway's ports connect to: which port a name refers to, and
//! whether an address is a host on a port's link. Routes, neighbours and
//! tunnel hosts are all tied to the ports through these.

use std::net::Ipv4Addr;

use toml::Spanned;

use super::Report;
use crate::config::{Ipv4Cidr, Port};

/// The index of the port called as `v` says, or `None` after saying which
/// names exist.
pub(super) fn port_named(
    ports: &[Port],
    v: &Spanned<String>,
    label: &str,
    r: &mut Report,
) -> Option<usize> {
    let name = v.get_ref();
    if let Some(i) = ports.iter().position(|p| &p.name == name) {
        return Some(i);
    }
    let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    r.at(
        v.span().start,
        format!(
            "{label}: unknown port {name:?} (known ports: {}); use the name of a [[port]]",
            known.join(", ")
        ),
    );
    None
}

/// The port that has `ip` as one of the gateway's own addresses.
pub(super) fn owner(ports: &[Port], ip: Ipv4Addr) -> Option<&Port> {
    ports
        .iter()
        .find(|p| p.addresses.iter().any(|a| a.addr == ip))
}

/// The subnet of `port` that holds `ip`, if any.
pub(super) fn subnet_of(port: &Port, ip: Ipv4Addr) -> Option<Ipv4Cidr> {
    port.addresses.iter().copied().find(|a| a.contains(ip))
}

/// `"network"` or `"broadcast"` when `ip` is that address of `subnet` and
/// so not a host on it (/31 and /32 have neither).
pub(super) fn subnet_edge(subnet: Ipv4Cidr, ip: Ipv4Addr) -> Option<&'static str> {
    if subnet.len > 30 {
        None
    } else if ip == subnet.network() {
        Some("network")
    } else if ip == subnet.broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

/// A port's subnets for a message, as `und0: 172.168.0.0/24`.
pub(super) fn subnets(port: &Port) -> String {
    if port.addresses.is_empty() {
        return format!("{}: no addresses", port.name);
    }
    let nets: Vec<String> = port
        .addresses
        .iter()
        .map(|a| format!("{}/{}", a.network(), a.len))
        .collect();
    format!("{}: {}", port.name, nets.join(", "))
}

/// The subnets of several ports for a message, `; `-separated.
pub(super) fn all_subnets<'a>(ports: impl IntoIterator<Item = &'a Port>) -> String {
    let all: Vec<String> = ports.into_iter().map(subnets).collect();
    if all.is_empty() {
        "no such port".to_owned()
    } else {
        all.join("; ")
    }
}
