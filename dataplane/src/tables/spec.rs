//! What the tables are built from: the control plane's config, in the
//! terms the builder wants ([`Spec`]), apart from what the workers read.

use super::Role;
use crate::firewall::FirewallSpec;
use crate::tenant::{Encap, GreOptions};
use crate::wire::Ipv4Addr;

/// One port, as the control plane configured it.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub id: u16,
    pub role: Role,
    pub mac: [u8; 6],
    /// The gateway's addresses on this port, with their prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// IP MTU.
    pub mtu: u16,
}

#[derive(Clone, Debug)]
pub struct TenantSpec {
    pub name: String,
    pub key: u32,
    pub encap: Encap,
    pub hosts: Vec<Ipv4Addr>,
    pub prefixes: Vec<(Ipv4Addr, u8)>,
    pub mac: [u8; 6],
    /// The optional GRE words of what tgw sends into the tenant's tunnels.
    pub gre: GreOptions,
    pub routes: Vec<(Ipv4Addr, u8, Target)>,
    /// Rules for the flows the tenant opens and receives, written in its
    /// own (private) addresses.
    pub firewall: FirewallSpec,
}

/// Where a tenant route leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A tunnel host of the tenant.
    Host(Ipv4Addr),
    /// Out of the public side.
    Public,
    /// The gateway itself.
    Local,
    Blackhole,
}

/// A tenant's shared source NAT pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatSpec {
    /// The tenant's GRE key.
    pub key: u32,
    pub addrs: Vec<Ipv4Addr>,
    pub ports: (u16, u16),
    pub max_blocks: u16,
    pub endpoint_independent_filtering: bool,
}

/// A global route: public side or underlay, by the role of its port.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub via: Ipv4Addr,
    pub port: u16,
}

/// Everything the tables are built from.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub ports: Vec<PortSpec>,
    pub tenants: Vec<TenantSpec>,
    pub routes: Vec<RouteSpec>,
    /// `(port, ip, mac)`: static and learned neighbours on the ports.
    pub neighbours: Vec<(u16, Ipv4Addr, [u8; 6])>,
    /// `(tenant key, inner ip, mac)`: hosts inside gretap tunnels.
    pub inner_neighbours: Vec<(u32, Ipv4Addr, [u8; 6])>,
    /// `(public prefix, len, tenant key)`: public destinations routed into
    /// a tenant's VRF unchanged.
    pub ingress: Vec<(Ipv4Addr, u8, u32)>,
    /// `(elastic IP, tenant key, private address)`: 1:1 NAT.
    pub eips: Vec<(Ipv4Addr, u32, Ipv4Addr)>,
    /// Shared source NAT pools.
    pub snat: Vec<SnatSpec>,
    /// Clamp the MSS of TCP SYNs to what fits the path.
    pub mss_clamp: bool,
}
