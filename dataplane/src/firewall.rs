//! Per-tenant stateless rules, evaluated once when a flow is created.
//!
//! Each tenant has an ordered list of rules for two directions, [`In`]
//! (from the public side toward the tenant) and [`Out`] (from the tenant
//! toward the public side), and a default action per direction. The first
//! rule of the packet's direction that matches decides; when none does,
//! the default does. The verdict is cached in the flow, so replies of an
//! allowed flow pass without a second look and a denied first packet
//! creates no state: that is the stateful half, and it is the flow
//! table's.
//!
//! Rules are written in the tenant's own address space, as cloud security
//! groups are: inbound packets are matched after DNAT (their destination
//! is the private address, e.g. 10.0.0.7, not the elastic IP), outbound
//! packets before SNAT (their source is the private address). A rule thus
//! never names a public address the tenant does not see, and two tenants
//! that share 10.0.0.7 write the same rules for it.
//!
//! Each tenant's rules are its own ([`Rules`], in its share of the
//! snapshot), in the order its spec lists them (both directions
//! interleaved as written). Each rule counts on a slot of its own, its
//! [`RuleId`], which the control plane gives it for its life: one counter
//! array indexed by `RuleId` serves every tenant, and a rule's count
//! survives changes to the others.
//!
//! [`In`]: Direction::In
//! [`Out`]: Direction::Out

use std::fmt;

use crate::counters::Counter;
use crate::tenant::{Net, TenantId};
use crate::wire::{IpProtocol, Ipv4Addr};

/// Which way the first packet of a flow crosses the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the public side toward the tenant (ingress).
    In = 0,
    /// From the tenant toward the public side (egress).
    Out = 1,
}

/// What a rule or a default policy does with a new flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    #[default]
    Deny,
}

/// An inclusive range of ports; always `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// Every port, 0 included.
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    /// `None` when `lo > hi`.
    pub const fn new(lo: u16, hi: u16) -> Option<PortRange> {
        if lo <= hi {
            Some(PortRange { lo, hi })
        } else {
            None
        }
    }

    /// The single port `p`.
    pub const fn one(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }

    pub const fn lo(self) -> u16 {
        self.lo
    }

    pub const fn hi(self) -> u16 {
        self.hi
    }

    #[inline]
    pub const fn contains(self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::ANY
    }
}

/// What a rule matches above IP, by protocol. Each protocol carries only
/// the fields it has, so a spec cannot hold ports on ICMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtoMatch {
    /// Every protocol.
    Any,
    Tcp {
        sport: PortRange,
        dport: PortRange,
    },
    Udp {
        sport: PortRange,
        dport: PortRange,
    },
    /// ICMP; `icmp_type: None` matches every type, `code: None` every code
    /// of the type.
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    /// One protocol by number, any content. 1, 6 and 17 mean ICMP, TCP and
    /// UDP of any type or port.
    Number(u8),
}

/// One rule as the control plane gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    pub direction: Direction,
    pub action: Action,
    pub proto: ProtoMatch,
    /// Source prefix (address, length); `0.0.0.0/0` for any.
    pub src: (Ipv4Addr, u8),
    /// Destination prefix; `0.0.0.0/0` for any.
    pub dst: (Ipv4Addr, u8),
}

impl RuleSpec {
    /// A rule for every packet of `direction`, to narrow with the fields.
    pub fn new(direction: Direction, action: Action, proto: ProtoMatch) -> RuleSpec {
        RuleSpec {
            direction,
            action,
            proto,
            src: ANY_PREFIX,
            dst: ANY_PREFIX,
        }
    }
}

/// `0.0.0.0/0`.
pub const ANY_PREFIX: (Ipv4Addr, u8) = (Ipv4Addr::UNSPECIFIED, 0);

/// One tenant's firewall: rules in order, and what happens when none
/// matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FirewallSpec {
    pub rules: Vec<RuleSpec>,
    /// When no inbound rule matches. Default deny.
    pub default_in: Action,
    /// When no outbound rule matches. Default allow.
    pub default_out: Action,
}

impl Default for FirewallSpec {
    /// No rules, inbound denied and outbound allowed: a security group's
    /// defaults.
    fn default() -> Self {
        FirewallSpec {
            rules: Vec::new(),
            default_in: Action::Deny,
            default_out: Action::Allow,
        }
    }
}

impl FirewallSpec {
    /// No rules, everything allowed both ways: the packet path as it was
    /// before the firewall, for tests and benchmarks about other things.
    pub fn allow_all() -> Self {
        FirewallSpec {
            rules: Vec::new(),
            default_in: Action::Allow,
            default_out: Action::Allow,
        }
    }

    /// The default action of `direction`.
    pub fn default_for(&self, direction: Direction) -> Action {
        match direction {
            Direction::In => self.default_in,
            Direction::Out => self.default_out,
        }
    }
}

// ------------------------------------------------------------ evaluation

/// What the firewall looks at in a flow's first packet, in the tenant's
/// address space (see the module documentation). Addresses in host order.
///
/// For TCP and UDP, `sport` and `dport` are the ports. For ICMP, `dport`
/// is `type << 8 | code` (the first two bytes of the ICMP header read as a
/// big-endian `u16`) and `sport` is not looked at. For other protocols
/// neither is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet5 {
    pub proto: u8,
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
}

impl Packet5 {
    pub fn tcp(src: impl Into<u32>, dst: impl Into<u32>, sport: u16, dport: u16) -> Packet5 {
        Packet5 {
            proto: IpProtocol::TCP.0,
            src: src.into(),
            dst: dst.into(),
            sport,
            dport,
        }
    }

    pub fn udp(src: impl Into<u32>, dst: impl Into<u32>, sport: u16, dport: u16) -> Packet5 {
        Packet5 {
            proto: IpProtocol::UDP.0,
            ..Packet5::tcp(src, dst, sport, dport)
        }
    }

    pub fn icmp(src: impl Into<u32>, dst: impl Into<u32>, icmp_type: u8, code: u8) -> Packet5 {
        Packet5 {
            proto: IpProtocol::ICMP.0,
            src: src.into(),
            dst: dst.into(),
            sport: 0,
            dport: u16::from_be_bytes([icmp_type, code]),
        }
    }

    /// A packet of protocol `proto` whose content the rules cannot see.
    pub fn other(proto: u8, src: impl Into<u32>, dst: impl Into<u32>) -> Packet5 {
        Packet5 {
            proto,
            src: src.into(),
            dst: dst.into(),
            sport: 0,
            dport: 0,
        }
    }
}

/// A rule's counter slot: stable while the rule lives, so that its count
/// survives changes to other rules and tenants ([`RuleCounters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u32);

impl RuleId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The verdict on a flow's first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    pub action: Action,
    /// The rule that matched; `None` when the default policy decided.
    pub rule: Option<RuleId>,
}

impl Decision {
    #[inline]
    pub fn allowed(self) -> bool {
        self.action == Action::Allow
    }
}

/// A compiled rule: every match is one comparison or one range test.
/// A field the rule does not constrain matches everything (mask 0, the
/// full port range), and a protocol the rule does not constrain is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub direction: Direction,
    pub action: Action,
    /// `None`: any protocol.
    pub proto: Option<u8>,
    pub src: Net,
    pub dst: Net,
    /// Over [`Packet5::sport`]; [`PortRange::ANY`] unless TCP or UDP.
    pub sport: PortRange,
    /// Over [`Packet5::dport`]: a port range for TCP and UDP, a range of
    /// `type << 8 | code` for ICMP.
    pub dport: PortRange,
    /// The tenant whose rule this is.
    pub tenant: TenantId,
    /// Its position in the tenant's [`FirewallSpec::rules`].
    pub position: u32,
    /// Its counter.
    pub counter: RuleId,
}

impl Rule {
    fn compile(spec: &RuleSpec, tenant: TenantId, position: u32) -> Result<Rule, FirewallError> {
        let net = |(addr, len): (Ipv4Addr, u8)| {
            Net::new(addr, len).ok_or(FirewallError::PrefixLenTooLong {
                tenant,
                position,
                len,
            })
        };
        let (proto, sport, dport) = match spec.proto {
            ProtoMatch::Any => (None, PortRange::ANY, PortRange::ANY),
            ProtoMatch::Tcp { sport, dport } => (Some(IpProtocol::TCP.0), sport, dport),
            ProtoMatch::Udp { sport, dport } => (Some(IpProtocol::UDP.0), sport, dport),
            ProtoMatch::Icmp { icmp_type, code } => {
                let types = match (icmp_type, code) {
                    (None, None) => PortRange::ANY,
                    (Some(t), None) => PortRange {
                        lo: u16::from_be_bytes([t, 0]),
                        hi: u16::from_be_bytes([t, u8::MAX]),
                    },
                    (Some(t), Some(c)) => PortRange::one(u16::from_be_bytes([t, c])),
                    (None, Some(_)) => {
                        return Err(FirewallError::CodeWithoutType { tenant, position })
                    }
                };
                (Some(IpProtocol::ICMP.0), PortRange::ANY, types)
            }
            ProtoMatch::Number(n) => (Some(n), PortRange::ANY, PortRange::ANY),
        };
        Ok(Rule {
            direction: spec.direction,
            action: spec.action,
            proto,
            src: net(spec.src)?,
            dst: net(spec.dst)?,
            sport,
            dport,
            tenant,
            position,
            counter: RuleId(0),
        })
    }

    /// Whether the rule matches `p` (its direction aside).
    #[inline]
    pub fn matches(&self, p: &Packet5) -> bool {
        let proto = match self.proto {
            None => true,
            Some(n) => n == p.proto,
        };
        proto
            && self.src.contains(p.src)
            && self.dst.contains(p.dst)
            && self.sport.contains(p.sport)
            && self.dport.contains(p.dport)
    }
}

/// One tenant's compiled rules, in order, and its defaults: part of the
/// tenant's share of a snapshot ([`crate::tenant::Tenant::firewall`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub rules: Vec<Rule>,
    pub default_in: Action,
    pub default_out: Action,
    /// The same rules as [`Matcher`]s, by [`Direction`], in order: what
    /// [`Rules::evaluate`] walks. Built with `rules`, never apart.
    walks: [Vec<Matcher>; 2],
}

/// What a rule matches and what it decides, packed for the walk of
/// [`Rules::evaluate`]: 32 bytes, the rules of one direction side by
/// side. Interleaved in one list of 40-byte [`Rule`]s, a new flow walked
/// the other direction's rules too, and compared field by field with a
/// branch each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Matcher {
    src: Net,
    dst: Net,
    sport: PortRange,
    dport: PortRange,
    /// The protocol, and the bits of it compared: 0 and 0 for any.
    proto: u8,
    proto_mask: u8,
    action: Action,
    counter: RuleId,
}

impl Matcher {
    fn of(rule: &Rule) -> Matcher {
        Matcher {
            src: rule.src,
            dst: rule.dst,
            sport: rule.sport,
            dport: rule.dport,
            proto: rule.proto.unwrap_or(0),
            proto_mask: if rule.proto.is_some() { u8::MAX } else { 0 },
            action: rule.action,
            counter: rule.counter,
        }
    }

    /// [`Rule::matches`], every field compared without a branch.
    #[inline]
    fn matches(&self, p: &Packet5) -> bool {
        ((p.proto & self.proto_mask) == self.proto)
            & self.src.contains(p.src)
            & self.dst.contains(p.dst)
            & self.sport.contains(p.sport)
            & self.dport.contains(p.dport)
    }
}

impl Rules {
    /// Compiles `tenant`'s spec; rule `i` counts on `counter(i)`, a slot
    /// that stays the rule's while it lives, whatever else changes
    /// ([`RuleCounters`]).
    pub fn build(
        tenant: TenantId,
        spec: &FirewallSpec,
        mut counter: impl FnMut(usize, &RuleSpec) -> RuleId,
    ) -> Result<Rules, FirewallError> {
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (position, rule) in spec.rules.iter().enumerate() {
            let at = u32::try_from(position).map_err(|_| FirewallError::TooMany)?;
            let mut r = Rule::compile(rule, tenant, at)?;
            r.counter = counter(position, rule);
            rules.push(r);
        }
        let walk = |d: Direction| {
            let of_d = rules.iter().filter(|r| r.direction == d);
            of_d.map(Matcher::of).collect()
        };
        Ok(Rules {
            walks: [walk(Direction::In), walk(Direction::Out)],
            rules,
            default_in: spec.default_in,
            default_out: spec.default_out,
        })
    }

    /// The first rule of `direction` that matches `p` decides; else the
    /// direction's default. Allocates nothing.
    pub fn evaluate(&self, direction: Direction, p: &Packet5) -> Decision {
        for m in &self.walks[direction as usize] {
            if m.matches(p) {
                return Decision {
                    action: m.action,
                    rule: Some(m.counter),
                };
            }
        }
        let action = match direction {
            Direction::In => self.default_in,
            Direction::Out => self.default_out,
        };
        Decision { action, rule: None }
    }
}

/// Why a [`FirewallSpec`] could not be compiled. The control plane's
/// validation refuses these first; they guard the builder's invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirewallError {
    /// A prefix length above 32 in rule `position` of `tenant`.
    PrefixLenTooLong {
        tenant: TenantId,
        position: u32,
        len: u8,
    },
    /// An ICMP code given without its type.
    CodeWithoutType { tenant: TenantId, position: u32 },
    /// More rules in all than a `RuleId` counts.
    TooMany,
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallError::PrefixLenTooLong {
                tenant,
                position,
                len,
            } => write!(
                f,
                "tenant {} rule {position}: prefix length {len} is above 32",
                tenant.0
            ),
            FirewallError::CodeWithoutType { tenant, position } => write!(
                f,
                "tenant {} rule {position}: an ICMP code needs its type",
                tenant.0
            ),
            FirewallError::TooMany => f.write_str("more firewall rules than 2^32"),
        }
    }
}

impl std::error::Error for FirewallError {}

// ---------------------------------------------------------------- counters

/// One worker's firewall counters: hits per rule, indexed by [`RuleId`],
/// and hits of each tenant's default policies. The worker that owns it is
/// its only writer; the control plane reads and sums across workers.
///
/// Sized when the worker starts, for the most rules and tenants the
/// control plane hands out slots for (`[limits]`): a rule's slot is its
/// own while it lives; when the control plane gives a freed slot to a new
/// rule it takes the count there as the new rule's zero.
#[derive(Debug, Default)]
pub struct RuleCounters {
    rules: Box<[Counter]>,
    /// By tenant: `[in, out]` decided by the default policy.
    defaults: Box<[[Counter; 2]]>,
}

impl RuleCounters {
    /// Room for `rules` rule slots and `tenants` tenant slots.
    pub fn new(rules: usize, tenants: usize) -> RuleCounters {
        RuleCounters {
            rules: (0..rules).map(|_| Counter::default()).collect(),
            defaults: (0..tenants).map(|_| Default::default()).collect(),
        }
    }

    /// Counts `decision`, which `tenant`'s rules gave in `direction`.
    #[inline]
    pub fn count(&self, tenant: TenantId, direction: Direction, decision: Decision) {
        let counter = match decision.rule {
            Some(id) => self.rules.get(id.index()),
            None => self
                .defaults
                .get(tenant.index())
                .map(|d| &d[direction as usize]),
        };
        if let Some(c) = counter {
            c.inc();
        }
    }

    /// Flows rule `id` decided.
    pub fn rule(&self, id: RuleId) -> u64 {
        self.rules.get(id.index()).map_or(0, Counter::get)
    }

    /// Zeroes `tenant`'s default-policy counts, for its slot given to a new
    /// tenant (the same rule as [`crate::counters::TenantCounters::reset`]).
    pub fn reset_defaults(&self, tenant: TenantId) {
        if let Some(d) = self.defaults.get(tenant.index()) {
            d[0].set(0);
            d[1].set(0);
        }
    }

    /// Flows `tenant`'s default policy of `direction` decided.
    pub fn default_policy(&self, tenant: TenantId, direction: Direction) -> u64 {
        self.defaults
            .get(tenant.index())
            .map_or(0, |d| d[direction as usize].get())
    }
}

// ------------------------------------------------------------- displaying

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

impl fmt::Display for Rule {
    /// In the configuration's words, unconstrained fields left out:
    /// `in allow tcp src 1.1.1.0/24 dport 22`, `in allow icmp type 8 code 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.direction, self.action)?;
        match self.proto {
            None => f.write_str(" any")?,
            Some(1) => f.write_str(" icmp")?,
            Some(6) => f.write_str(" tcp")?,
            Some(17) => f.write_str(" udp")?,
            Some(n) => write!(f, " proto {n}")?,
        }
        for (key, net) in [("src", self.src), ("dst", self.dst)] {
            if net.mask != 0 {
                write!(
                    f,
                    " {key} {}/{}",
                    Ipv4Addr::from(net.addr),
                    net.mask.count_ones()
                )?;
            }
        }
        let range = |f: &mut fmt::Formatter<'_>, key: &str, r: PortRange| match (
            r == PortRange::ANY,
            r.lo == r.hi,
        ) {
            (true, _) => Ok(()),
            (false, true) => write!(f, " {key} {}", r.lo),
            (false, false) => write!(f, " {key} {}-{}", r.lo, r.hi),
        };
        if self.proto == Some(IpProtocol::ICMP.0) {
            let [t, lo_code] = self.dport.lo.to_be_bytes();
            let [_, hi_code] = self.dport.hi.to_be_bytes();
            if self.dport != PortRange::ANY {
                write!(f, " type {t}")?;
                if lo_code == hi_code {
                    write!(f, " code {lo_code}")?;
                }
            }
            Ok(())
        } else {
            range(f, "sport", self.sport)?;
            range(f, "dport", self.dport)
        }
    }
}
