//! A tenant's firewall: ordered rules for the flows it receives and opens,
//! and a default action per direction.
//!
//! Rules see the tenant's own addresses, as cloud security groups do:
//! inbound flows after DNAT (their destination is the private address),
//! outbound flows before SNAT (their source is the private address).

use std::fmt;

use super::Ipv4Cidr;

/// Which way a flow's first packet crosses the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `"in"`: from the public side toward the tenant.
    In,
    /// `"out"`: from the tenant toward the public side.
    Out,
}

impl Direction {
    /// Every direction, in the order the error messages list them.
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule or a default does with a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `"allow"`: the flow is created; its replies pass.
    Allow,
    /// `"deny"`: the packet is dropped and no flow is created.
    Deny,
}

impl Action {
    /// Every action, in the order the error messages list them.
    pub const ALL: [Action; 2] = [Action::Allow, Action::Deny];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol a rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `"any"`: every protocol.
    #[default]
    Any,
    /// `"tcp"` or 6: ports apply.
    Tcp,
    /// `"udp"` or 17: ports apply.
    Udp,
    /// `"icmp"` or 1: ICMP type and code apply.
    Icmp,
    /// Another protocol by number (never 1, 6 or 17, which are named).
    Number(u8),
}

impl Protocol {
    /// The protocols written as a name, in the order the error messages
    /// list them.
    pub const NAMED: [Protocol; 4] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Any];

    /// The protocol of IP protocol number `n`.
    pub fn from_number(n: u8) -> Protocol {
        match n {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            n => Protocol::Number(n),
        }
    }

    /// Whether rules of this protocol may have ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

impl fmt::Display for Protocol {
    /// As written in the configuration: the name or the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Any => f.write_str("any"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Ports `lo..=hi`; `lo <= hi`. Written as `22` or `"1024-65535"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One firewall rule of a tenant (`rules = [...]` or `[[tenant.rule]]`).
///
/// Invariants, as built by [`parse`](super::parse): `sport` and `dport`
/// are only set when `proto` is TCP or UDP; `icmp_type` only when it is
/// ICMP, and `icmp_code` only with `icmp_type`; `src` and `dst` have their
/// host bits zero; an inbound rule's `dst` and an outbound rule's `src`
/// overlap the tenant's `prefixes` or `public_prefixes` (else it could
/// never match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Which flows the rule is for.
    pub direction: Direction,
    /// What it does with those it matches.
    pub action: Action,
    /// Default [`Protocol::Any`].
    pub proto: Protocol,
    /// Source prefix. Default `0.0.0.0/0`.
    pub src: Ipv4Cidr,
    /// Destination prefix. Default `0.0.0.0/0`.
    pub dst: Ipv4Cidr,
    /// Source ports (TCP, UDP). Default every port.
    pub sport: Option<PortRange>,
    /// Destination ports (TCP, UDP). Default every port.
    pub dport: Option<PortRange>,
    /// ICMP type. Default every type.
    pub icmp_type: Option<u8>,
    /// ICMP code, with `icmp_type`. Default every code.
    pub icmp_code: Option<u8>,
}

/// `0.0.0.0/0`, the default `src` and `dst`.
pub const ANY_PREFIX: Ipv4Cidr = Ipv4Cidr {
    addr: std::net::Ipv4Addr::UNSPECIFIED,
    len: 0,
};

/// The default of `default_in`: nothing from the Internet opens a flow
/// unless a rule allows it.
pub const DEFAULT_IN: Action = Action::Deny;
/// The default of `default_out`: the tenant may open any flow.
pub const DEFAULT_OUT: Action = Action::Allow;
