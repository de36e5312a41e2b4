//! The gateway's own forwarding: global routes toward next hops on its
//! ports, and the static neighbours that spare those next hops an ARP
//! exchange.

use std::net::Ipv4Addr;

use super::{Ipv4Cidr, MacAddr};

/// A global route, in the public side's table or the underlay's (the role
/// of its port says which).
///
/// The public table sends what tenants route `to = "public"`; the underlay
/// table reaches tunnel hosts that are not on an underlay port's subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The destinations covered; host bits are zero (`addr` is the network).
    /// Unique per side.
    pub prefix: Ipv4Cidr,
    /// The next hop: on-link (inside a subnet of the port's `addresses`) and
    /// not one of the gateway's own addresses.
    pub via: Ipv4Addr,
    /// Index into [`Config::ports`](super::Config::ports) of the port out of
    /// which `via` is reached. Written as the port's name; default the port
    /// whose subnet holds `via`.
    pub port: usize,
}

/// A static ARP entry: the neighbour is never resolved, and its MAC never
/// changes while the configuration is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// Index into [`Config::ports`](super::Config::ports) of the port the
    /// neighbour is on. Written as the port's name.
    pub port: usize,
    /// Its address, inside one of that port's subnets. A (port, ip) pair is
    /// given once.
    pub ip: Ipv4Addr,
    /// Its MAC: unicast, not zero.
    pub mac: MacAddr,
}
