//! Tenants: which GRE key names each one on the underlay, which tunnel hosts
//! may speak for it, and its routing table (VRF).

use std::fmt;
use std::net::Ipv4Addr;

use super::{Action, Ipv4Cidr, MacAddr, Rule};

/// How a tenant's packets ride inside GRE (RFC 2784 / 2890).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encap {
    /// Ethernet in GRE, protocol type 0x6558 (Linux `gretap`): the tunnel
    /// carries the inner Ethernet header, so the gateway has a MAC inside
    /// the tunnel and answers ARP there.
    #[default]
    Gretap,
    /// IPv4 in GRE, protocol type 0x0800 (Linux `gre`): no inner Ethernet
    /// header, a few bytes less per packet.
    Ipv4,
}

impl Encap {
    /// Every encapsulation, in the order the error messages list them.
    pub const ALL: [Encap; 2] = [Encap::Gretap, Encap::Ipv4];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Encap::Gretap => "gretap",
            Encap::Ipv4 => "ipv4",
        }
    }

    /// The GRE protocol type of the payload.
    pub fn protocol(self) -> u16 {
        match self {
            Encap::Gretap => 0x6558,
            Encap::Ipv4 => 0x0800,
        }
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a tenant route sends what matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Encapsulate toward this tunnel host (one of [`Tenant::hosts`]) with
    /// the tenant's key.
    Host(Ipv4Addr),
    /// Leave to the Internet through the public side (egress firewall and
    /// source NAT apply).
    Public,
    /// Addressed to the gateway itself.
    Local,
    /// Dropped (and counted).
    Blackhole,
}

impl RouteTarget {
    /// The targets written as a keyword rather than an address, in the
    /// order the error messages list them.
    pub const KEYWORDS: [RouteTarget; 3] = [
        RouteTarget::Public,
        RouteTarget::Local,
        RouteTarget::Blackhole,
    ];
}

impl fmt::Display for RouteTarget {
    /// As written in the configuration: the host's address or the keyword.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::Host(ip) => write!(f, "{ip}"),
            RouteTarget::Public => f.write_str("public"),
            RouteTarget::Local => f.write_str("local"),
            RouteTarget::Blackhole => f.write_str("blackhole"),
        }
    }
}

/// One route of a tenant's VRF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TenantRoute {
    /// The destinations covered; host bits are zero (`addr` is the network).
    pub prefix: Ipv4Cidr,
    /// Where they go.
    pub to: RouteTarget,
}

/// A static ARP entry inside a tenant's gretap tunnels: the inner
/// destination MAC for one of its hosts' inner addresses, so that the
/// gateway need not resolve it across the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TenantNeighbour {
    /// The inner address, inside the tenant's `prefixes` or
    /// `public_prefixes`; given once per tenant.
    pub ip: Ipv4Addr,
    /// Its MAC: unicast, not zero.
    pub mac: MacAddr,
}

/// A tenant: a VRF reached through GRE tunnels that carry its key.
///
/// Invariants, as built by [`parse`](super::parse): `hosts` and `prefixes`
/// are non-empty; hosts are distinct unicast addresses, each reachable on
/// the underlay (on an underlay port's subnet or through a global
/// [`Route`](super::Route) out of an underlay port); prefixes, public
/// prefixes and route prefixes have their host bits zero; route prefixes
/// are distinct; every [`RouteTarget::Host`] is one of `hosts`; public
/// prefixes overlap no other tenant's and no port's subnet, and the
/// longest route covering each goes to one of `hosts`; `mac` and
/// `neighbours` are only set for [`Encap::Gretap`]; neighbours have
/// distinct addresses that the tenant [owns](Tenant::owns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Unique name, `[A-Za-z0-9_-]{1,32}`, used in logs, counters and the
    /// `[[eip]]` and `[[snat]]` sections.
    pub name: String,
    /// The GRE key that names the tenant on the underlay; unique across
    /// tenants.
    pub key: u32,
    /// Payload of the tenant's GRE packets. Default [`Encap::Gretap`].
    pub encap: Encap,
    /// Send the GRE checksum (RFC 2784, the C bit) on everything sent into
    /// the tenant's tunnels. Set it when the hosts' tunnels have `csum`
    /// (`ip link add ... type gretap key K csum`): Linux then drops what
    /// arrives without a checksum, and a host without it drops what
    /// arrives with one. Received checksums are verified either way.
    /// Default false.
    pub gre_checksum: bool,
    /// Send GRE sequence numbers (RFC 2890, the S bit), one counter per
    /// tunnel, on everything sent into the tenant's tunnels. Set it when
    /// the hosts' tunnels have `seq`: Linux then drops what arrives without
    /// one, or with a number lower than the last. Refused with more than
    /// one `[[worker]]`: two workers cannot keep one tunnel's numbers in
    /// order without sharing a counter (docs/decisions.md). Received
    /// sequence numbers are accepted either way. Default false.
    pub gre_sequence: bool,
    /// The tunnel hosts (underlay IPv4 addresses) allowed to send with this
    /// key: a GRE packet with the key from any other outer source is
    /// dropped.
    pub hosts: Vec<Ipv4Addr>,
    /// The inner source prefixes the tenant owns: an inner source outside
    /// them is dropped, so that a host cannot speak for another tenant by
    /// borrowing its key. Host bits are zero.
    pub prefixes: Vec<Ipv4Cidr>,
    /// The gateway's MAC inside this tenant's gretap tunnels. Default none:
    /// the daemon derives one.
    pub mac: Option<MacAddr>,
    /// The tenant's VRF, in file order.
    pub routes: Vec<TenantRoute>,
    /// Public IPv4 prefixes routed into this tenant unchanged: no NAT, its
    /// hosts hold these addresses themselves (so they are also valid inner
    /// sources, see [`Tenant::owns`]). A packet from the public side to one
    /// of them enters this tenant's VRF, whose route for it leads to one of
    /// `hosts`, through a flow that translates nothing: the tenant's
    /// firewall rules and defaults apply to these addresses as to its
    /// elastic IPs (`[[eip]]`, 1:1 NAT onto private addresses). Default
    /// none.
    pub public_prefixes: Vec<Ipv4Cidr>,
    /// Static neighbours inside the gretap tunnels, in file order (both the
    /// `neighbours = [...]` and the `[[tenant.neighbour]]` form). Default
    /// none: the gateway resolves inner addresses itself.
    pub neighbours: Vec<TenantNeighbour>,
    /// Firewall rules for the flows the tenant receives and opens, in file
    /// order (both the `rules = [...]` and the `[[tenant.rule]]` form); the
    /// first rule of a flow's direction that matches decides. Default none.
    pub rules: Vec<Rule>,
    /// What a new inbound flow no rule matches gets. Default
    /// [`Action::Deny`].
    pub default_in: Action,
    /// What a new outbound flow no rule matches gets. Default
    /// [`Action::Allow`].
    pub default_out: Action,
}

impl Tenant {
    /// Whether the inner source `ip` belongs to the tenant: inside its
    /// `prefixes` or, since its hosts hold those addresses, its
    /// `public_prefixes`.
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.prefixes
            .iter()
            .chain(&self.public_prefixes)
            .any(|p| p.contains(ip))
    }
}
