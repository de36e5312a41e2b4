//! The tables the workers read: an immutable snapshot, built by the control
//! plane from a [`Spec`] and swapped in whole (DESIGN.md: threads and
//! tables).
//!
//! Everything a frame needs after its lookups is precomputed here, as VPP's
//! adjacencies are: the Ethernet header toward each next hop, and the whole
//! outer Ethernet + IPv4 + GRE header (key, and the checksum and sequence
//! words where the tenant asks for them) toward each tunnel host. Only
//! the neighbour's MAC is not: it comes per frame from the shared
//! [`Neighbours`] table, which the resolver updates without a new snapshot,
//! through the slot each adjacency remembers.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::counters::MAX_PORTS;
use crate::firewall::{FirewallError, RuleId, RuleSpec, Rules};
use crate::ingress::Ingress;
use crate::lpm::{Lpm, LpmBuilder, LpmError, Prefix};
use crate::martian;
use crate::nat::{EipError, Eips};
use crate::neighbour::{NeighKey, NeighRef, NeighSpace, NeighbourWriter, Neighbours};
use crate::sixteens::Sixteens;
use crate::snat::{Pool, PoolError, Pools};
use crate::tenant::{Encap, GreOptions, Net, Tenant, TenantError, TenantId, TenantTable};
use crate::wire::{ethernet, gre, ipv4, EtherType, IpProtocol, Ipv4Addr};

mod spec;
pub use spec::{PortSpec, RouteSpec, SnatSpec, Spec, Target, TenantSpec};

/// Addresses a port may carry.
pub const MAX_PORT_ADDRS: usize = 4;
/// Bytes of the longest tunnel header: outer Ethernet, IPv4, GRE with
/// checksum, key and sequence number, and the inner Ethernet of gretap.
pub const MAX_TUNNEL_HEADER: usize =
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + GRE_KEYED_LEN + 8 + ethernet::HEADER_LEN;
/// Bytes of a gretap tunnel's header with the key alone: what most tenants
/// use, and what the fast copy in `pipeline::encap` is sized for.
pub const KEYED_GRETAP_HEADER: usize =
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + GRE_KEYED_LEN + ethernet::HEADER_LEN;
/// GRE header with the key present (RFC 2890).
pub const GRE_KEYED_LEN: usize = gre::MIN_HEADER_LEN + 4;
/// Where the GRE header starts in a tunnel header (the outer IPv4 header
/// has no options).
pub const GRE_AT: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
/// TTL of the outer header (Linux's default for tunnels that do not inherit).
pub const OUTER_TTL: u8 = 64;

/// Which side of the gateway a port faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Public,
    Underlay,
}

// -------------------------------------------------------------- the tables

/// A port as the fast path sees it.
#[derive(Clone, Debug, Default)]
pub struct PortEntry {
    pub role: Option<Role>,
    pub mac: [u8; 6],
    pub addrs: ArrayVec<u32, MAX_PORT_ADDRS>,
    pub nets: ArrayVec<Net, MAX_PORT_ADDRS>,
    pub mtu: u16,
}

impl PortEntry {
    #[inline]
    pub fn is_local(&self, ip: u32) -> bool {
        // A port mostly has one address, the one tunnels are sent to: it
        // is compared first, before `contains`'s vector compare, whose
        // setup cost the underlay stage ~15 instructions a frame.
        match self.addrs.split_first() {
            Some((&first, rest)) => first == ip || rest.contains(&ip),
            None => false,
        }
    }

    /// [`PortEntry::is_local`] for a burst's frames: `None` when the port
    /// has no address (nothing is local).
    #[inline]
    pub fn local(&self) -> Option<Local<'_>> {
        let (&first, rest) = self.addrs.split_first()?;
        Some(Local {
            first: first.to_be(),
            rest,
        })
    }

    /// The address to answer from: the first.
    pub fn primary(&self) -> Option<u32> {
        self.addrs.first().copied()
    }
}

/// A port's addresses as [`PortEntry::local`] gives them: taken once a
/// burst, the first in wire order, so that the underlay stage compares a
/// frame's destination as it loads it (`is_local` on each frame reloaded
/// the port, tested its length and swapped the address: 5 instructions).
#[derive(Clone, Copy, Debug)]
pub struct Local<'a> {
    /// The first address, as its four bytes on the wire load.
    first: u32,
    rest: &'a [u32],
}

impl Local<'_> {
    /// Whether the address `wire`, its four bytes loaded as one word in
    /// memory order, is one of the port's. A word, not the four bytes:
    /// where the stage's checksum may be skipped (the NIC verified it),
    /// the daemon's build took the bytes apart and put them together
    /// again (callgrind-worker: 7 instructions a frame).
    #[inline]
    pub fn has(&self, wire: u32) -> bool {
        wire == self.first || self.rest.contains(&u32::from_be(wire))
    }
}

/// What a tenant route resolved to. A VRF's values encode it
/// ([`NextHop::value`]): the three fixed ones, then the tenant's tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Into the tenant's tunnel `tunnels[i]`.
    Tunnel(u32),
    Public,
    Local,
    Blackhole,
}

impl NextHop {
    /// The VRF value that stands for it.
    pub fn value(self) -> u32 {
        match self {
            NextHop::Public => 0,
            NextHop::Local => 1,
            NextHop::Blackhole => 2,
            NextHop::Tunnel(i) => 3 + i,
        }
    }

    /// What a VRF value stands for.
    #[inline]
    pub fn from_value(v: u32) -> NextHop {
        match v {
            0 => NextHop::Public,
            1 => NextHop::Local,
            2 => NextHop::Blackhole,
            i => NextHop::Tunnel(i - 3),
        }
    }
}

/// Out of a port to a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2Adj {
    pub port: u16,
    /// The Ethernet header but its destination, filled per frame from
    /// `neigh`.
    pub header: [u8; ethernet::HEADER_LEN],
    pub neigh: NeighRef,
    pub mtu: u16,
}

/// A tunnel: its tenant's slot and its index among the tenant's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelId {
    pub tenant: TenantId,
    pub index: u32,
}

/// Into one tenant's tunnel toward one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelAdj {
    pub tenant: TenantId,
    /// Its index among the tenant's tunnels: with `tenant`, its
    /// [`TunnelId`].
    pub index: u32,
    pub port: u16,
    pub host: Ipv4Addr,
    /// Outer Ethernet + IPv4 + GRE(key, and the tenant's options), and for
    /// gretap the inner Ethernet header. Both Ethernet destinations, the
    /// IPv4 length, identification, DSCP/ECN and DF are filled per frame;
    /// the IPv4 checksum covers the header with those zero, and each frame
    /// adds them to it. The GRE checksum and sequence words, where present,
    /// are zero here and written per frame too ([`Tables::fill_gre_options`]).
    pub header: [u8; MAX_TUNNEL_HEADER],
    pub header_len: u8,
    /// The one's-complement sum of the outer IPv4 header's fixed fields,
    /// the complement of the checksum `header` holds: each frame adds its
    /// own fields to it (RFC 1624) and complements, without reading the
    /// checksum back out of the header. Of the words as the CPU loads
    /// them from the header (`u16::from_ne_bytes`), as the frame's fields
    /// are added (`pipeline::encap`'s `fill_outer_ipv4`).
    pub outer_sum: u16,
    /// The tenant's GRE options, as the header carries them.
    pub gre: GreOptions,
    /// The outer next hop: the host, or the underlay router toward it.
    pub neigh: NeighRef,
    /// The underlay port's IP MTU.
    pub mtu: u16,
    /// The tenant's hosts inside its tunnels: [`TunnelAdj::inner_key`]
    /// makes each frame's key in it.
    inner_hosts: NeighSpace,
    /// [`TunnelAdj::inner_mtu`], worked out when the adjacency is built:
    /// every hit into the tunnel compares against it.
    inner_mtu: u16,
    /// `gre.any()`, kept: each frame into the tunnel tests one byte
    /// rather than two.
    gre_options: bool,
    /// This adjacency's own number in the process, never another's
    /// (clones keep it, and are the same adjacency).
    uid: u64,
}

/// Adjacencies built in this process so far: each one's [`TunnelAdj::uid`].
static ADJACENCIES: AtomicU64 = AtomicU64::new(1);

impl TunnelAdj {
    /// Bytes the tunnel adds in front of the inner IPv4 packet, outer
    /// Ethernet included.
    pub fn overhead(&self) -> usize {
        usize::from(self.header_len)
    }

    /// Whether the header ends in an inner Ethernet header (gretap).
    #[inline]
    pub fn is_gretap(&self) -> bool {
        // The shortest gretap header is longer than the longest GRE-IPv4
        // one (42 + 8 bytes of options): one compare, as before options.
        usize::from(self.header_len) >= KEYED_GRETAP_HEADER
    }

    #[inline]
    pub fn id(&self) -> TunnelId {
        TunnelId {
            tenant: self.tenant,
            index: self.index,
        }
    }

    /// The neighbour key of host `ip` inside the tenant's tunnels:
    /// `NeighKey::inner(self.tenant, ip)`, an `or` a frame going into a
    /// gretap tunnel instead of the space's ten instructions.
    #[inline]
    pub fn inner_key(&self, ip: u32) -> NeighKey {
        self.inner_hosts.key(ip)
    }

    /// The largest inner IPv4 packet that fits the underlay MTU.
    #[inline]
    pub fn inner_mtu(&self) -> u16 {
        self.inner_mtu
    }

    /// This adjacency's number, which no other adjacency built in the
    /// process has (never 0): a worker's copy of a header it built from
    /// this adjacency (`MacCopies::header`) is taken for this one's alone,
    /// whatever tables come and go.
    #[inline]
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Whether the tenant asks for a GRE checksum or sequence number:
    /// `self.gre.any()` (callgrind: 1 instruction a frame less).
    #[inline]
    pub fn has_gre_options(&self) -> bool {
        self.gre_options
    }
}

/// The snapshot. Cloning it is cheap — a few reference counts and the
/// tenant slot array: what a change does not touch is shared with the
/// snapshot before (DESIGN.md: threads and tables; docs/decisions.md,
/// "Runtime changes").
#[derive(Clone, Debug)]
pub struct Tables {
    /// Bumped for every snapshot, so per-worker caches know when to forget.
    pub generation: u64,
    pub ports: [PortEntry; MAX_PORTS],
    /// The /16s of the ports' addresses: `martian::is_own` walks the
    /// ports only for an address in one.
    pub port_sixteens: Sixteens,
    /// By slot ([`TenantId`]): each tenant with its VRF, tunnels and rules.
    pub tenants: TenantTable,
    /// Whether some tenant sends sequence numbers.
    pub any_gre_sequence: bool,
    /// Public-side destinations → `l2` index.
    pub public: Arc<Lpm>,
    pub l2: Arc<Vec<L2Adj>>,
    /// Underlay destinations → `underlay_vias` index: what a tenant's
    /// tunnels are built over.
    pub underlay: Arc<Lpm>,
    pub underlay_vias: Arc<Vec<(u16, Ipv4Addr)>>,
    /// Public destinations → tenant slot, for inbound frames.
    pub ingress: Ingress,
    pub eips: Eips,
    pub pools: Pools,
    /// MACs of the neighbours on the ports and of the hosts inside gretap
    /// tunnels: shared with the resolver, which writes it in place.
    pub neighbours: Arc<Neighbours>,
    pub mss_clamp: bool,
}

/// Why a snapshot could not be built. The control plane validated the
/// config already; these guard the builder's own invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    Tenant(TenantError),
    Route(LpmError),
    PortId(u16),
    TooManyAddrs(u16),
    UnknownKey(u32),
    UnreachableHost { tenant: String, host: Ipv4Addr },
    NoPublicPort,
    NeighboursFull,
    Eip(EipError),
    Pool(PoolError),
    Firewall(FirewallError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Tenant(TenantError::DuplicateKey(k)) => {
                write!(f, "two tenants use GRE key {k}")
            }
            BuildError::Tenant(TenantError::TooMany) => f.write_str("too many tenants"),
            BuildError::Route(e) => write!(f, "route: {e:?}"),
            BuildError::PortId(p) => write!(f, "port id {p} is past {MAX_PORTS}"),
            BuildError::TooManyAddrs(p) => {
                write!(f, "port {p} has more than {MAX_PORT_ADDRS} addresses")
            }
            BuildError::UnknownKey(k) => write!(f, "no tenant has GRE key {k}"),
            BuildError::UnreachableHost { tenant, host } => {
                write!(f, "tenant {tenant}: tunnel host {host} is on no underlay subnet and no underlay route")
            }
            BuildError::NoPublicPort => {
                f.write_str("a route leads to the public side but no port is public")
            }
            BuildError::Eip(EipError::Public(ip)) => {
                write!(f, "elastic IP {} is given twice", Ipv4Addr::from(*ip))
            }
            BuildError::Eip(EipError::Private(t, ip)) => write!(
                f,
                "tenant {}: {} has two elastic IPs",
                t.0,
                Ipv4Addr::from(*ip)
            ),
            BuildError::Pool(PoolError::Tenant(t)) => {
                write!(f, "tenant {} has two source NAT pools", t.0)
            }
            BuildError::Pool(PoolError::Addr(a)) => {
                write!(f, "{} is in two source NAT pools", Ipv4Addr::from(*a))
            }
            BuildError::Pool(PoolError::Range) => f.write_str(
                "a source NAT pool's ports hold no block of 64, or its max_blocks is out of range",
            ),
            BuildError::NeighboursFull => f.write_str(
                "more next hops and static neighbours than the neighbour table holds ([arp] port_entries for the ports, per_tenant and entries - port_entries inside tunnels)",
            ),
            BuildError::Firewall(e) => write!(f, "firewall: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<LpmError> for BuildError {
    fn from(e: LpmError) -> Self {
        BuildError::Route(e)
    }
}

/// Hands each firewall rule its counter slot: the control plane's, which
/// keeps a rule's slot for the rule's life; [`Tables::build`] numbers
/// rules in order.
pub type RuleSlots<'a> = dyn FnMut(TenantId, usize, &RuleSpec) -> RuleId + 'a;

impl Tables {
    /// Builds a snapshot, tenant `i` of the spec in slot `i` and every
    /// tenant at epoch 1. `generation` must differ from the one it
    /// replaces. Static neighbours go into `neighbours` as they are; every
    /// next hop of an adjacency gets its slot there, pinned, for the
    /// resolver to fill.
    pub fn build(
        spec: &Spec,
        generation: u64,
        neighbours: &mut NeighbourWriter,
    ) -> Result<Tables, BuildError> {
        let mut next_rule = 0u32;
        let mut rule_slots = |_: TenantId, _: usize, _: &RuleSpec| {
            next_rule += 1;
            RuleId(next_rule - 1)
        };
        let slots: Vec<(TenantId, &TenantSpec, u32)> = spec
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (TenantId(i as u32), t, 1))
            .collect();
        Self::build_slotted(spec, &slots, generation, neighbours, &mut rule_slots)
    }

    /// Builds a snapshot with each tenant in the slot and at the epoch
    /// given (the control plane's stable handles), its rules counting on
    /// the slots `rules` hands out.
    pub fn build_slotted(
        spec: &Spec,
        tenants: &[(TenantId, &TenantSpec, u32)],
        generation: u64,
        neighbours: &mut NeighbourWriter,
        rules: &mut RuleSlots<'_>,
    ) -> Result<Tables, BuildError> {
        let mut t = Tables::global(spec, generation, neighbours)?;
        let mut built = Vec::new();
        for &(id, ts, epoch) in tenants {
            let tenant = t.build_tenant(id, ts, epoch, neighbours, rules)?;
            let i = id.index();
            if i >= built.len() {
                built.resize(i + 1, None);
            }
            built[i] = Some(Arc::new(tenant));
        }
        t.tenants = TenantTable::from_slots(built).map_err(BuildError::Tenant)?;
        t.any_gre_sequence = t.tenants.any_sequenced();
        t.set_ingress(&spec.ingress)?;
        for &(public, key, private) in &spec.eips {
            t.set_eip(public, key, private)?;
        }
        for p in &spec.snat {
            t.set_pool(p)?;
        }
        for &(key, ip, mac) in &spec.inner_neighbours {
            let tenant = t.tenants.by_key(key).ok_or(BuildError::UnknownKey(key))?;
            set_static(neighbours, NeighKey::inner(tenant.id, u32::from(ip)), mac)?;
        }
        Ok(t)
    }

    /// The ports, global routes and static port neighbours of `spec`, and
    /// nothing of any tenant.
    fn global(
        spec: &Spec,
        generation: u64,
        neighbours: &mut NeighbourWriter,
    ) -> Result<Tables, BuildError> {
        let mut ports: [PortEntry; MAX_PORTS] = std::array::from_fn(|_| PortEntry::default());
        for p in &spec.ports {
            let entry = ports
                .get_mut(usize::from(p.id))
                .ok_or(BuildError::PortId(p.id))?;
            entry.role = Some(p.role);
            entry.mac = p.mac;
            entry.mtu = p.mtu;
            for &(ip, len) in &p.addrs {
                let net = Net::new(ip, len)
                    .ok_or(BuildError::Route(LpmError::PrefixLenTooLong { len }))?;
                entry
                    .addrs
                    .try_push(u32::from(ip))
                    .map_err(|_| BuildError::TooManyAddrs(p.id))?;
                entry
                    .nets
                    .try_push(net)
                    .map_err(|_| BuildError::TooManyAddrs(p.id))?;
            }
        }
        for &(port, ip, mac) in &spec.neighbours {
            set_static(neighbours, NeighKey::port(port, u32::from(ip)), mac)?;
        }

        // Global routes, split by the role of their port.
        let mut public_routes = LpmBuilder::new();
        let mut underlay_routes = LpmBuilder::new();
        let mut l2 = Vec::new();
        let mut underlay_vias = Vec::new();
        for r in &spec.routes {
            let entry = ports
                .get(usize::from(r.port))
                .ok_or(BuildError::PortId(r.port))?;
            let prefix = Prefix::new_truncating(u32::from(r.prefix), r.len)?;
            match entry.role {
                Some(Role::Public) => {
                    let adj = L2Adj {
                        port: r.port,
                        header: eth_header([0; 6], entry.mac, EtherType::IPV4),
                        neigh: neighbours
                            .pin(NeighKey::port(r.port, u32::from(r.via)))
                            .ok_or(BuildError::NeighboursFull)?,
                        mtu: entry.mtu,
                    };
                    public_routes.insert(prefix, l2.len() as u32)?;
                    l2.push(adj);
                }
                Some(Role::Underlay) => {
                    underlay_routes.insert(prefix, underlay_vias.len() as u32)?;
                    underlay_vias.push((r.port, r.via));
                }
                None => return Err(BuildError::PortId(r.port)),
            }
        }
        // A public destination on one of the public subnets is its own next hop.
        for (id, entry) in ports.iter().enumerate() {
            if entry.role != Some(Role::Public) {
                continue;
            }
            for net in &entry.nets {
                let len = net.mask.count_ones() as u8;
                if public_routes.get(Prefix::new(net.addr, len)?).is_none() {
                    public_routes.insert(Prefix::new(net.addr, len)?, ON_LINK | id as u32)?;
                }
            }
        }
        Ok(Tables {
            generation,
            port_sixteens: martian::port_sixteens(&ports),
            ports,
            tenants: TenantTable::default(),
            any_gre_sequence: false,
            public: Arc::new(public_routes.build()),
            l2: Arc::new(l2),
            underlay: Arc::new(underlay_routes.build()),
            underlay_vias: Arc::new(underlay_vias),
            ingress: Ingress::default(),
            eips: Eips::default(),
            pools: Pools::default(),
            neighbours: Arc::clone(neighbours.table()),
            mss_clamp: spec.mss_clamp,
        })
    }

    /// Tenant `t`'s share of a snapshot, in slot `id` at `epoch`, over
    /// this snapshot's ports and underlay.
    pub fn build_tenant(
        &self,
        id: TenantId,
        t: &TenantSpec,
        epoch: u32,
        neighbours: &mut NeighbourWriter,
        rules: &mut RuleSlots<'_>,
    ) -> Result<Tenant, BuildError> {
        let has_public = self.ports.iter().any(|p| p.role == Some(Role::Public));
        let mut hosts: Vec<u32> = t.hosts.iter().map(|&h| u32::from(h)).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut tunnels: Vec<TunnelAdj> = Vec::new();
        let mut routes = LpmBuilder::new();
        for &(prefix, len, target) in &t.routes {
            let nh = match target {
                Target::Public if !has_public => return Err(BuildError::NoPublicPort),
                Target::Public => NextHop::Public,
                Target::Local => NextHop::Local,
                Target::Blackhole => NextHop::Blackhole,
                // One tunnel per host, however many routes lead to it.
                Target::Host(host) => match tunnels.iter().position(|a| a.host == host) {
                    Some(i) => NextHop::Tunnel(i as u32),
                    None => {
                        let index = tunnels.len() as u32;
                        let tunnel = TunnelId { tenant: id, index };
                        tunnels.push(self.tunnel_adj(neighbours, tunnel, t, host)?);
                        NextHop::Tunnel(index)
                    }
                },
            };
            routes.insert(Prefix::new_truncating(u32::from(prefix), len)?, nh.value())?;
        }
        let firewall =
            Rules::build(id, &t.firewall, |i, r| rules(id, i, r)).map_err(BuildError::Firewall)?;
        Ok(Tenant {
            id,
            name: t.name.clone(),
            key: t.key,
            encap: t.encap,
            hosts,
            prefixes: t
                .prefixes
                .iter()
                .filter_map(|&(ip, len)| Net::new(ip, len))
                .collect(),
            mac: t.mac,
            gre: t.gre,
            epoch,
            vrf: routes.build(),
            gre_seq: tunnels.iter().map(|_| AtomicU32::new(0)).collect(),
            tunnels,
            firewall,
        })
    }

    // ------------------------------------------------ changes, one at a time
    //
    // Each changes `self`, a clone of the snapshot in use, into the next
    // one; what a change does not name stays shared with the snapshot
    // before. The control plane publishes the result whole.

    /// Puts `tenant` in its slot, added or replacing the one there.
    pub fn set_tenant(&mut self, tenant: Tenant) -> Result<(), BuildError> {
        self.tenants
            .set(Arc::new(tenant))
            .map_err(BuildError::Tenant)?;
        self.any_gre_sequence = self.tenants.any_sequenced();
        Ok(())
    }

    /// Removes the tenant in slot `id`, with its elastic IPs and pool:
    /// nothing of it is reachable in the snapshot this makes.
    pub fn remove_tenant(&mut self, id: TenantId) {
        self.eips.remove_tenant(id);
        self.pools.remove(id);
        self.tenants.remove(id);
        self.any_gre_sequence = self.tenants.any_sequenced();
    }

    /// The tenants' public prefixes, `(prefix, len, key)`, all of them:
    /// the ingress table built anew.
    pub fn set_ingress(&mut self, ingress: &[(Ipv4Addr, u8, u32)]) -> Result<(), BuildError> {
        let mut by_slot: std::collections::BTreeMap<u32, Vec<(u32, u8)>> = Default::default();
        for &(prefix, len, key) in ingress {
            let t = self
                .tenants
                .by_key(key)
                .ok_or(BuildError::UnknownKey(key))?;
            let p = Prefix::new_truncating(u32::from(prefix), len)?;
            by_slot
                .entry(t.id.0)
                .or_default()
                .push((p.addr(), p.length()));
        }
        self.ingress = Ingress::default();
        for (slot, prefixes) in by_slot {
            self.ingress.replace(slot, &[], &prefixes)?;
        }
        Ok(())
    }

    /// Tenant `id`'s public prefixes go from `old` to `new`: a /32 copies
    /// one shard of the ingress table, a shorter prefix rebuilds the few
    /// others (`Ingress::replace`).
    pub fn replace_ingress(
        &mut self,
        id: TenantId,
        old: &[(Ipv4Addr, u8)],
        new: &[(Ipv4Addr, u8)],
    ) -> Result<(), BuildError> {
        let nets = |v: &[(Ipv4Addr, u8)]| -> Result<Vec<(u32, u8)>, LpmError> {
            v.iter()
                .map(|&(a, l)| {
                    Prefix::new_truncating(u32::from(a), l).map(|p| (p.addr(), p.length()))
                })
                .collect()
        };
        self.ingress.replace(id.0, &nets(old)?, &nets(new)?)?;
        Ok(())
    }

    /// Binds elastic IP `public` to `private` in the tenant with `key`,
    /// replacing a binding of `public` there was.
    pub fn set_eip(
        &mut self,
        public: Ipv4Addr,
        key: u32,
        private: Ipv4Addr,
    ) -> Result<(), BuildError> {
        let t = self
            .tenants
            .by_key(key)
            .ok_or(BuildError::UnknownKey(key))?
            .id;
        self.eips.remove(u32::from(public));
        self.eips
            .insert(u32::from(public), t, u32::from(private))
            .map_err(BuildError::Eip)
    }

    /// Unbinds elastic IP `public`; the tenant it was bound in, if any.
    pub fn remove_eip(&mut self, public: Ipv4Addr) -> Option<TenantId> {
        self.eips.remove(u32::from(public))
    }

    /// Gives the tenant with `p.key` its pool, replacing one it had.
    pub fn set_pool(&mut self, p: &SnatSpec) -> Result<(), BuildError> {
        let t = self
            .tenants
            .by_key(p.key)
            .ok_or(BuildError::UnknownKey(p.key))?
            .id;
        self.pools.remove(t);
        self.pools
            .insert(Pool {
                tenant: t,
                addrs: p.addrs.iter().map(|&a| u32::from(a)).collect(),
                lo: p.ports.0,
                hi: p.ports.1,
                max_blocks: p.max_blocks,
                eif: p.endpoint_independent_filtering,
            })
            .map_err(BuildError::Pool)
    }

    /// Writes the GRE options of `tenant`'s tunnel `tunnel` into `gre`, a
    /// GRE packet (header and payload, to the end of the outer IPv4
    /// packet) whose header the tunnel's adjacency wrote: the next
    /// sequence number, then the checksum over it all (RFC 2784: header
    /// and payload, the checksum field zero while summing). Off the common
    /// path: only tenants with options call it.
    #[cold]
    pub fn fill_gre_options(&self, tunnel: TunnelId, gre: &mut [u8]) {
        let Some(ten) = self.tenants.get(tunnel.tenant) else {
            return;
        };
        let Some(adj) = ten.tunnels.get(tunnel.index as usize) else {
            return;
        };
        let mut p = gre::GrePacket::new_unchecked(gre);
        if adj.gre.sequence {
            if let Some(next) = ten.gre_seq.get(tunnel.index as usize) {
                p.set_sequence(next.fetch_add(1, Ordering::Relaxed));
            }
        }
        p.fill_checksum();
    }

    /// Gives a frame built for a tunnel with sequence numbers the next
    /// number of its tunnel, and its checksum again: for frames the
    /// resolver built (or held) that reach the wire through a worker's
    /// inject ring, after frames of the same tunnel that the worker numbered
    /// meanwhile. The host drops a number below the last it took, so the
    /// number is taken when the frame leaves. Anything else is left alone.
    pub fn resequence(&self, frame: &mut [u8]) {
        if !self.any_gre_sequence {
            return;
        }
        let Some(ip) = frame.get(ethernet::HEADER_LEN..GRE_AT) else {
            return;
        };
        let ours = frame[12..14] == EtherType::IPV4.0.to_be_bytes()
            && ip[0] == 0x45
            && ip[9] == IpProtocol::GRE.0;
        if !ours {
            return;
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let host = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
        let Some(gre) = frame.get_mut(GRE_AT..ethernet::HEADER_LEN + total) else {
            return;
        };
        let Ok(p) = gre::GrePacket::new_checked(&*gre) else {
            return;
        };
        if !p.seq_present() {
            return;
        }
        let Some(tenant) = p.key().and_then(|k| self.tenants.by_key(k)) else {
            return;
        };
        if let Some(tunnel) = self.tunnel_to(tenant.id, host) {
            if self.tunnel(tunnel).is_some_and(|a| a.gre.sequence) {
                self.fill_gre_options(tunnel, gre);
            }
        }
    }

    /// The tunnel of `tenant` toward `host`, for frames that arrive from
    /// a host rather than from a route (ARP inside the tunnel).
    pub fn tunnel_to(&self, tenant: TenantId, host: u32) -> Option<TunnelId> {
        let index = self
            .tenants
            .get(tenant)?
            .tunnels
            .iter()
            .position(|a| u32::from(a.host) == host)?;
        Some(TunnelId {
            tenant,
            index: index as u32,
        })
    }

    /// The tunnel `id` names.
    #[inline]
    pub fn tunnel(&self, id: TunnelId) -> Option<&TunnelAdj> {
        self.tenants.get(id.tenant)?.tunnels.get(id.index as usize)
    }

    /// Where `tenant`'s VRF sends `dst`.
    #[inline]
    pub fn route(&self, tenant: &Tenant, dst: u32) -> Option<NextHop> {
        tenant.vrf.lookup(dst).map(NextHop::from_value)
    }

    /// The L2 adjacency toward public destination `dst`, on-link ones made
    /// on the fly from the neighbour entry in `l2_on_link`.
    #[inline]
    pub fn public_route(&self, dst: u32) -> Option<PublicRoute> {
        self.public_route_of(self.public.lookup(dst))
    }

    /// The public routes of a burst's destinations, looked up together
    /// (`Lpm::lookup_slice`, about twice as fast as one at a time):
    /// `out[i]` is for `dsts[i]`, to be read with
    /// [`Tables::public_route_of`].
    #[inline]
    pub fn public_routes(&self, dsts: &[u32], out: &mut [Option<u32>]) {
        self.public.lookup_slice(dsts, out);
    }

    /// The route a value of [`Tables::public_routes`] names.
    #[inline]
    pub fn public_route_of(&self, value: Option<u32>) -> Option<PublicRoute> {
        let v = value?;
        if v & ON_LINK != 0 {
            Some(PublicRoute::OnLink((v & !ON_LINK) as u16))
        } else {
            self.l2.get(v as usize).map(|a| PublicRoute::Via(*a))
        }
    }

    /// The outer header toward `host` for tenant `t`: on an underlay
    /// subnet the host is its own neighbour, else the underlay route's
    /// `via` is.
    fn tunnel_adj(
        &self,
        neighbours: &mut NeighbourWriter,
        tunnel: TunnelId,
        t: &TenantSpec,
        host: Ipv4Addr,
    ) -> Result<TunnelAdj, BuildError> {
        let ports = &self.ports;
        let h = u32::from(host);
        let on_link = ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.role == Some(Role::Underlay) && p.nets.iter().any(|n| n.contains(h)))
            .map(|(i, _)| (i as u16, host));
        let (port, via) = on_link
            .or_else(|| {
                self.underlay
                    .lookup(h)
                    .and_then(|i| self.underlay_vias.get(i as usize).copied())
            })
            .ok_or_else(|| BuildError::UnreachableHost {
                tenant: t.name.clone(),
                host,
            })?;
        let entry = &ports[usize::from(port)];
        let src = entry.primary().unwrap_or(0);
        let neigh = neighbours
            .pin(NeighKey::port(port, u32::from(via)))
            .ok_or(BuildError::NeighboursFull)?;

        let mut header = [0u8; MAX_TUNNEL_HEADER];
        header[..ethernet::HEADER_LEN].copy_from_slice(&eth_header(
            [0; 6],
            entry.mac,
            EtherType::IPV4,
        ));
        let ip = &mut header[ethernet::HEADER_LEN..ethernet::HEADER_LEN + ipv4::HEADER_LEN];
        let mut ip = ipv4::Ipv4Packet::new_unchecked(ip);
        // The per-frame fields (DSCP/ECN, identification, DF) are zero
        // here, and so is the total length once written; the checksum
        // covers the fixed fields alone, and each frame adds its own
        // (`pipeline::finish_outer_ipv4`).
        let outer = ipv4::Ipv4Repr {
            src_addr: Ipv4Addr::from(src),
            dst_addr: host,
            protocol: IpProtocol::GRE,
            payload_len: 0,
            ttl: OUTER_TTL,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        outer.emit(&mut ip);
        ip.set_total_len(0);
        ip.fill_checksum();
        // In the order the workers' CPUs load the header's words.
        let outer_sum = u16::from_ne_bytes((!ip.checksum()).to_be_bytes());
        let g = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        let proto = match t.encap {
            Encap::Gretap => EtherType::TRANSPARENT_ETHERNET_BRIDGING,
            Encap::Ipv4 => EtherType::IPV4,
        };
        let repr = gre::GreRepr {
            protocol: proto,
            checksum: t.gre.checksum,
            key: Some(t.key),
            sequence: t.gre.sequence.then_some(0),
        };
        repr.emit(&mut gre::GrePacket::new_unchecked(&mut header[g..]));
        let mut len = g + repr.header_len();
        if t.encap == Encap::Gretap {
            // Inner destination is per frame; the source is the tenant MAC.
            header[len + 6..len + 12].copy_from_slice(&t.mac);
            header[len + 12..len + 14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
            len += ethernet::HEADER_LEN;
        }
        let ip_overhead = (len - ethernet::HEADER_LEN) as u16;
        Ok(TunnelAdj {
            tenant: tunnel.tenant,
            index: tunnel.index,
            port,
            host,
            header,
            header_len: len as u8,
            outer_sum,
            gre: t.gre,
            neigh,
            mtu: entry.mtu,
            inner_hosts: NeighSpace::of(NeighKey::inner(tunnel.tenant, 0)),
            inner_mtu: entry.mtu.saturating_sub(ip_overhead),
            gre_options: t.gre.any(),
            uid: ADJACENCIES.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// What a public-side lookup gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicRoute {
    Via(L2Adj),
    /// The destination is on this port's subnet: its own neighbour entry
    /// decides (not precomputed: a subnet may hold many hosts).
    OnLink(u16),
}

/// Marks a public route value as "on-link on port (value & 0xffff)". Bit
/// 30: the LPM keeps bit 31 for itself (next hops are below 2^31 - 1).
const ON_LINK: u32 = 1 << 30;

fn set_static(w: &mut NeighbourWriter, key: NeighKey, mac: [u8; 6]) -> Result<(), BuildError> {
    w.set_static(key, mac)
        .then_some(())
        .ok_or(BuildError::NeighboursFull)
}

/// An Ethernet header toward `dst` from `src`.
pub fn eth_header(dst: [u8; 6], src: [u8; 6], ethertype: EtherType) -> [u8; ethernet::HEADER_LEN] {
    let mut h = [0u8; ethernet::HEADER_LEN];
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..].copy_from_slice(&ethertype.0.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Up to `MAX_PORT_ADDRS` addresses, the first `n` a port's.
    const ADDRS: [u32; MAX_PORT_ADDRS] = [0x0a00_0001, 0x0a00_0002, 0xc0a8_0001, 0x0a00_0003];

    fn port_with(n: usize) -> PortEntry {
        PortEntry {
            addrs: ADDRS[..n].iter().copied().collect(),
            ..PortEntry::default()
        }
    }

    #[test]
    fn a_port_is_local_to_each_of_its_addresses_and_no_other() {
        let addrs = ADDRS;
        for n in 0..=MAX_PORT_ADDRS {
            let pe = port_with(n);
            for (i, &a) in addrs.iter().enumerate() {
                assert_eq!(pe.is_local(a), i < n, "address {i} of {n}");
            }
            assert!(!pe.is_local(0), "{n} addresses");
            assert!(!pe.is_local(0x0a00_0004), "{n} addresses");
        }
    }

    #[test]
    fn a_ports_local_addresses_answer_for_wire_bytes_as_is_local_does() {
        let addrs = ADDRS;
        for n in 0..=MAX_PORT_ADDRS {
            let pe = port_with(n);
            let Some(local) = pe.local() else {
                assert_eq!(n, 0, "no local addresses for {n}");
                continue;
            };
            for a in addrs.into_iter().chain([0, 0x0a00_0004, 0x0100_000a]) {
                let wire = u32::from_ne_bytes(a.to_be_bytes());
                assert_eq!(local.has(wire), pe.is_local(a), "{a:#x} of {n}");
            }
        }
    }
}
