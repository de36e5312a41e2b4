//! The stateless packet path: one frame in, one [`Verdict`] out.
//!
//! Frames from an underlay port are GRE from tenant hosts: classified by
//! key, checked (host, inner source), decapsulated, and routed in the
//! tenant's VRF — out of the public side, or back into a tunnel (east-west).
//! Frames from a public port are routed into a tenant (by the ingress table;
//! the stateful gateway puts its flow cache and NAT in front of this) and
//! encapsulated toward the tunnel host. ARP and ICMP for the gateway's own
//! addresses are answered in place, and so is ARP inside gretap tunnels.
//!
//! Once outer headers are gone the frame is kept positioned at its IPv4
//! header, so both directions share one routing step and one ICMP-error
//! builder; Ethernet or tunnel headers are prepended in the headroom at the
//! end.

use crate::conntrack::{Answered, Conn, Scales, TcpState, Timeouts, Tuple};
use crate::counters::{DropReason, TenantCounters, WorkerCounters};
use crate::firewall::{Direction as FwDir, Packet5};
use crate::flow::{
    CapacityError, Direction, FlowId, FlowKey, FlowTable, InsertError, Lookup as FlowLookup,
    Prefetch, Zone, BULK_MAX,
};
use crate::fragments::park::{Parking, Resume};
use crate::fragments::split::Budget;
use crate::fragments::{self, Fragments, Owner, DEFAULT_TENANTS};
use crate::ip_options;
use crate::martian::{self, Origin};
use crate::nat::{translate_quoted, Rewrite};
use crate::neighbour::{Lookup, NeighKey};
use crate::punt::Punt;
use crate::ratelimit::{TenantBuckets, TokenBucket, Toward};
use crate::snat::{Inside, Outside, Pools, Snat};
use crate::steer::Steering;
use crate::tables::{
    eth_header, NextHop, PortEntry, PublicRoute, Role, Tables, GRE_AT, KEYED_GRETAP_HEADER,
};
use crate::tenant::{Encap, KeyCache, Tenant, TenantId};
use crate::wire::icmp::{self as icmpw, IcmpType};
use crate::wire::{
    checksum, ethernet, ArpOperation, ArpPacket, Error, EtherType, EthernetFrame, GrePacket,
    GreRepr, IcmpPacket, IpProtocol, Ipv4Packet, MacAddr, TcpPacket,
};
use crate::Frame;

pub use crate::l2fwd::Verdict;

use DropReason as D;

const ETH: usize = ethernet::HEADER_LEN;
/// TTL of what the gateway itself sends.
const LOCAL_TTL: u8 = 64;
/// RFC 1812 4.3.2.3: an ICMP error quotes as much of the original as fits
/// in 576 bytes.
const ICMP_ERROR_MAX: usize = 576;
/// IPv4 + TCP headers without options, for MSS arithmetic.
const IP_TCP: u16 = 40;

/// ICMP errors the pipeline can generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpError {
    TimeExceeded,
    FragNeeded(u16),
    /// The next hop did not answer ARP (`unreachable.rs`).
    HostUnreachable,
}

/// Where a tenant's packet leaves by the public side, and how.
struct Exit<'t> {
    tenant: &'t Tenant,
    /// The MTU of the underlay port it came in by (for MSS clamping and
    /// errors).
    underlay_mtu: u16,
    /// False for the gateway's own ICMP errors, which beget none.
    may_error: bool,
    nat: Rewrite,
}

/// Which side a generated ICMP error goes back to, and for which tenant's
/// traffic (whose rate limit it spends).
#[derive(Clone, Copy)]
enum Side<'t> {
    Public(TenantId),
    Tenant(&'t Tenant),
}

/// Per-worker pipeline state: nothing in it is shared.
pub struct Pipeline {
    key_cache: KeyCache,
    /// Identification of the outer headers this worker builds.
    ip_id: u16,
    icmp: TenantBuckets,
    /// This worker's flows (DESIGN.md: the only state the fast path
    /// writes).
    flows: FlowTable<Conn>,
    timeouts: Timeouts,
    /// Ticks of the `now` clock per second.
    hz: u64,
    /// Set when there are several workers.
    steer: Option<Steering>,
    /// This worker's share of the source NAT pools.
    snat: Snat,
    /// The ports of datagrams whose first fragment went through.
    frags: Fragments,
    /// Later fragments waiting for their first.
    parking: Parking,
    /// How many datagrams too big for their next hop may be punted to be
    /// cut.
    frag_budget: Budget,
    /// Live flows one tenant may hold on this worker.
    quota: u64,
    /// Of those, inbound flows nobody inside answered yet.
    unreplied_quota: u64,
    /// The ICMP error limit each tenant gets, per side.
    icmp_each: TokenBucket,
}

mod fragment;
mod hit;
mod unreachable;

pub use fragment::FRAGMENT_LIFE_MS;
use fragment::{cut, inbound_owner, later_fragment_inside, outbound_owner, tunnel_resolved, Fit};
pub use hit::Hint;

/// How a new flow from a tenant is translated.
#[derive(Clone, Copy)]
enum Outbound {
    /// Not at all: the source is one of the tenant's public addresses.
    Own,
    /// To the source's elastic IP.
    Eip(u32),
    /// To an address and port of the tenant's pool (its index).
    Pool(u32),
}

/// Flows a pipeline made with [`Pipeline::new`] holds.
pub const DEFAULT_FLOWS: usize = 4096;
/// Flows the periodic sweep visits per call.
const SWEEP_BUDGET: usize = 64;

impl Pipeline {
    /// `icmp` limits the ICMP errors this worker generates, for each tenant
    /// and side once [`Pipeline::with_tenants`] says how many. The flow table
    /// holds [`DEFAULT_FLOWS`] flows with the default timeouts on a clock
    /// of 10^9 ticks per second; the daemon sets its own with
    /// [`Pipeline::with_flows`].
    pub fn new(icmp: TokenBucket, worker: u16) -> Self {
        // Workers start their ident sequences apart, so two workers
        // tunnelling to one host rarely collide within a reassembly window.
        Pipeline {
            key_cache: KeyCache::default(),
            ip_id: worker.wrapping_mul(0x9e37),
            icmp: TenantBuckets::new(icmp, 0),
            icmp_each: icmp,
            flows: FlowTable::new(DEFAULT_FLOWS).unwrap_or_else(|_| unreachable!()),
            timeouts: Timeouts::default(),
            hz: 1_000_000_000,
            steer: None,
            snat: Snat::default(),
            frags: Fragments::default(),
            parking: Parking::new(DEFAULT_TENANTS),
            frag_budget: Budget::new(DEFAULT_TENANTS, 1_000_000_000),
            quota: u64::MAX,
            unreplied_quota: u64::MAX,
        }
    }

    /// Gives each of `tenants` tenants its own ICMP error limits, one for
    /// each side, at the rate [`Pipeline::new`] was given; without it (or
    /// past it) tenants share one.
    #[must_use]
    pub fn with_tenants(mut self, tenants: usize) -> Self {
        self.icmp = TenantBuckets::new(self.icmp_each, tenants);
        self
    }

    /// Limits the live flows of each tenant on this worker to `per_tenant`,
    /// a quarter of them inbound flows nobody inside answered yet (see
    /// [`Pipeline::with_unreplied`]).
    #[must_use]
    pub fn with_quota(mut self, per_tenant: u64) -> Self {
        self.quota = per_tenant;
        self.unreplied_quota = (per_tenant / 4).max(1);
        self
    }

    /// Limits each tenant's inbound flows that nobody inside answered yet
    /// to `per_tenant` on this worker: a SYN flood or a scan toward a
    /// tenant fills this share, never the rest of its quota, so its
    /// established connections and those it opens itself go on. Flows
    /// opened while a tenant holds half its share live
    /// `Timeouts::unreplied` at most until answered, so that a flood
    /// recycles its own flows. Call it after [`Pipeline::with_quota`].
    #[must_use]
    pub fn with_unreplied(mut self, per_tenant: u64) -> Self {
        self.unreplied_quota = per_tenant.max(1);
        self
    }

    /// Gives this worker its share of the source NAT `pools`: call it last,
    /// after [`Pipeline::with_flows`] and [`Pipeline::with_steering`], whose
    /// settings size and stripe it.
    pub fn with_snat(mut self, pools: &Pools) -> Self {
        let (me, workers) = self.steer.map_or((0, 1), |s| (s.me(), s.workers()));
        self.snat = Snat::new(pools, me, workers, self.flows.capacity());
        self
    }

    /// Source NAT ports this worker has in use in pool `pool`.
    pub fn nat_ports_in_use(&self, pool: u32) -> u64 {
        self.snat.ports_in_use(pool)
    }

    /// Makes this the pipeline of worker `steer.me()` of several: packets
    /// of connections another worker owns are handed to it.
    pub fn with_steering(mut self, steer: Steering) -> Self {
        self.steer = Some(steer);
        self
    }

    /// Replaces the flow table: `capacity` flows, `timeouts` on a clock of
    /// `hz` ticks per second.
    pub fn with_flows(
        mut self,
        capacity: usize,
        timeouts: Timeouts,
        hz: u64,
    ) -> Result<Self, CapacityError> {
        self.flows = FlowTable::new(capacity)?;
        self.timeouts = timeouts;
        self.hz = hz.max(1);
        self.frag_budget = Budget::new(self.frag_budget.tenants(), self.hz);
        Ok(self)
    }

    /// Whether a frame from the public side may belong to a flow: not when
    /// the worker holds none, nor when no address could have made one.
    #[inline]
    fn may_hit(&self, t: &Tables) -> bool {
        let no_flow_addrs = t.eips.is_empty() && t.pools.is_empty() && t.ingress.is_empty();
        !(self.flows.is_empty() || no_flow_addrs)
    }

    /// Live flows of this worker.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Removes a bounded number of expired flows; the worker calls it
    /// between bursts.
    pub fn sweep(&mut self, t: &Tables, c: &WorkerCounters, now: u64) {
        let snat = &mut self.snat;
        self.flows.sweep(SWEEP_BUDGET, now, |gone| {
            ended(snat, &t.pools, c, &gone.value);
        });
        self.frags.sweep(now, SWEEP_BUDGET);
        for i in 0..t.pools.len() as u32 {
            if let Some(tc) = t.pools.get(i).and_then(|p| c.tenant(p.tenant.index())) {
                tc.nat_ports.set(self.snat.ports_in_use(i));
            }
        }
    }

    /// Processes one frame received on `frame.in_port()` at TSC time `now`.
    pub fn process<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        now: u64,
    ) -> Verdict {
        self.process_staged(t, c, f, now, &Hint::default())
    }

    /// [`Pipeline::process`] for a frame of a burst that went through
    /// [`Pipeline::stage_public`], with its hint.
    pub fn process_staged<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        now: u64,
        hint: &Hint,
    ) -> Verdict {
        let port = f.in_port();
        let Some(pe) = t.ports.get(usize::from(port)) else {
            return Verdict::Drop(D::NoEgress);
        };
        let ethertype = {
            let Ok(eth) = EthernetFrame::new_checked(f.data()) else {
                return Verdict::Drop(D::Runt);
            };
            if eth.is_tagged() {
                return Verdict::Drop(D::Vlan);
            }
            eth.ethertype()
        };
        match (pe.role, ethertype) {
            (Some(Role::Public), EtherType::IPV4) if self.may_hit(t) => {
                match self.public_hit(t, c, f, now, hint) {
                    Some(v) => v,
                    None => self.public_input(t, c, pe, f, now, Origin::Port),
                }
            }
            (Some(_), EtherType::ARP) => arp_input(t, pe, port, f, c),
            (Some(Role::Underlay), EtherType::IPV4) => {
                self.underlay_input(t, c, pe, f, now, hint.fast())
            }
            (Some(Role::Public), EtherType::IPV4) => {
                self.public_input(t, c, pe, f, now, Origin::Port)
            }
            (None, _) => Verdict::Drop(D::NoEgress),
            _ => Verdict::Drop(D::EtherType),
        }
    }

    /// GRE from a tenant host, or ICMP to the gateway.
    fn underlay_input<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        now: u64,
        fast: bool,
    ) -> Verdict {
        let (protocol, ihl) = match check_local_ipv4(pe, f) {
            Ok(v) => v,
            Err(v) => return v,
        };
        match protocol {
            IpProtocol::GRE => self.decap(t, c, pe, f, ihl, now, fast),
            IpProtocol::ICMP => match martian::outer(pe, ip_src(&f.data()[ETH..])) {
                Ok(()) => echo_reply(pe, f.in_port(), f.data_mut(), c),
                Err(reason) => Verdict::Drop(reason),
            },
            _ => Verdict::Drop(D::LocalProtocol),
        }
    }

    /// Classifies, checks and strips the tunnel, then routes in the VRF;
    /// a packet of a known flow takes the fast path if `fast`.
    #[allow(clippy::too_many_arguments)]
    fn decap<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        ihl: usize,
        now: u64,
        fast: bool,
    ) -> Verdict {
        let port = f.in_port();
        let data = f.data_mut();
        let outer_src = u32::from_be_bytes([
            data[ETH + 12],
            data[ETH + 13],
            data[ETH + 14],
            data[ETH + 15],
        ]);
        let outer_ecn = data[ETH + 1] & 0x3;
        let gre_at = ETH + ihl;
        // A checksum (C) is verified before anything is read past it; a
        // sequence number (S) is skipped (gre.rs, RFC 2784 / 2890).
        // check_local_ipv4 trimmed the frame to the outer packet's end.
        let (key, protocol, gre_len) = match GrePacket::new_checked(&data[gre_at..]) {
            Ok(g) if !g.verify_checksum() => return Verdict::Drop(D::GreChecksum),
            Ok(g) => match g.key() {
                Some(key) => (key, g.protocol_type(), g.header_len()),
                None => return Verdict::Drop(D::GreNoKey),
            },
            Err(Error::Truncated) => return Verdict::Drop(D::GreTruncated),
            Err(_) => return Verdict::Drop(D::GreVersion),
        };
        let Some(tenant) = self.key_cache.lookup(&t.tenants, t.generation, key) else {
            return Verdict::Drop(D::GreUnknownKey);
        };
        if !tenant.has_host(outer_src) {
            return Verdict::Drop(martian::wrong_host(outer_src));
        }
        let inner_at = gre_at + gre_len;
        let ip_at = match (tenant.encap, protocol) {
            (Encap::Ipv4, EtherType::IPV4) => inner_at,
            (Encap::Gretap, EtherType::TRANSPARENT_ETHERNET_BRIDGING) => {
                let Ok(inner) = EthernetFrame::new_checked(&data[inner_at..]) else {
                    return Verdict::Drop(D::InnerInvalid);
                };
                let dst = inner.dst_addr().0;
                if dst != tenant.mac && dst != [0xff; 6] {
                    return Verdict::Drop(D::InnerNotForUs);
                }
                match (inner.is_tagged(), inner.ethertype()) {
                    (false, EtherType::IPV4) => inner_at + ETH,
                    (false, EtherType::ARP) => {
                        return tunnel_arp_input(t, tenant, pe, port, f, inner_at, c)
                    }
                    _ => return Verdict::Drop(D::InnerInvalid),
                }
            }
            _ => return Verdict::Drop(D::GreProtocol),
        };
        if fast && !self.flows.is_empty() {
            if let Some(v) = self.tenant_hit(t, c, tenant, f, ip_at, outer_ecn, now) {
                return v;
            }
        }
        let data = f.data_mut();
        let (inner_len, options) = {
            let Ok(inner) = Ipv4Packet::new_checked(&data[ip_at..]) else {
                return Verdict::Drop(D::InnerInvalid);
            };
            if !inner.verify_checksum() {
                return Verdict::Drop(D::InnerInvalid);
            }
            let (src, dst) = (u32::from(inner.src_addr()), u32::from(inner.dst_addr()));
            if !tenant.owns(src) {
                return Verdict::Drop(D::TenantSpoof);
            }
            if let Err(reason) = martian::inner(src, dst) {
                return Verdict::Drop(reason);
            }
            if inner.is_fragment() {
                if let Err(e) = fragments::inspect(&data[ip_at..]) {
                    return Verdict::Drop(fragment::reason(e));
                }
            }
            let options = match inner
                .has_options()
                .then(|| ip_options::decide(inner.options()))
            {
                None => None,
                Some(Ok(carried)) => Some(carried),
                Some(Err(reason)) => return Verdict::Drop(reason),
            };
            (usize::from(inner.total_len()), options)
        };
        if let Some(owner) = self.tenant_owner(t, tenant, &data[ip_at..]) {
            return Verdict::Handoff(owner);
        }
        if let Some(carried) = options {
            c.count_options(carried);
        }
        if let Some(tc) = c.tenant(tenant.id.index()) {
            tc.from_tunnel_packets.inc();
            tc.from_tunnel_bytes.add(inner_len as u64);
        }
        if !decap_ecn(&mut data[ip_at..], outer_ecn) {
            return Verdict::Drop(D::EcnDrop);
        }
        let tail = data.len() - ip_at - inner_len;
        if !(f.adj(ip_at) && f.trim(tail)) {
            return Verdict::Drop(D::InnerInvalid);
        }
        if let Some(v) = self.tenant_flow(t, c, tenant, pe.mtu, f, now) {
            return v;
        }
        self.route_tenant(t, c, tenant, pe.mtu, f, now, true)
    }

    /// Routes an IPv4 packet (the frame starts at its header) in the VRF of
    /// `tenant`, which it came from. `may_error` is false for the ICMP
    /// errors the gateway itself made, which must not beget more.
    #[allow(clippy::too_many_arguments)]
    fn route_tenant<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tenant: &Tenant,
        underlay_mtu: u16,
        f: &mut F,
        now: u64,
        may_error: bool,
    ) -> Verdict {
        let dst = ip_dst(f.data());
        let nh = t
            .vrfs
            .lookup(tenant.vrf, dst)
            .and_then(|i| t.nexthops.get(i as usize));
        match nh {
            None => Verdict::Drop(D::NoRoute),
            Some(NextHop::Blackhole) => Verdict::Drop(D::Blackhole),
            Some(NextHop::Local) => Verdict::Drop(D::LocalProtocol),
            Some(&NextHop::Tunnel(i)) => {
                let Some(adj) = t.tunnels.get(i as usize) else {
                    return Verdict::Drop(D::NoRoute);
                };
                let fit = match self.forward_checks(f, adj.inner_mtu(), may_error) {
                    Ok(fit) => fit,
                    Err(e) => {
                        let side = Side::Tenant(tenant);
                        return self.icmp_or_drop(t, c, f, e, side, underlay_mtu, now);
                    }
                };
                if fit != Fit::Whole {
                    let resolved = tunnel_resolved(t, adj, f.data());
                    if let Err(v) = self.may_cut(resolved, adj.tenant.0, now) {
                        return v;
                    }
                }
                if unreachable::failed(t, i, &Rewrite::default(), f.data()) {
                    let side = Side::Tenant(tenant);
                    return self.unreachable(t, c, f, side, underlay_mtu, may_error, now);
                }
                if t.mss_clamp {
                    clamp_syn(f.data_mut(), adj.inner_mtu());
                }
                // Untranslated: forwarding is the TTL alone.
                let ihl = usize::from(f.data()[0] & 0xf) * 4;
                if !Rewrite::default().forward(f.data_mut(), ihl) {
                    return Verdict::Drop(D::TtlExceeded);
                }
                let v = self.encap(t, c, i, f, &mut 0);
                cut(f, v, fit, usize::from(adj.header_len), c)
            }
            // Nothing leaves by the public side without a flow: a private
            // source never reaches the Internet, and a tenant's own public
            // address passes its firewall like any other.
            Some(NextHop::Public) => {
                let src =
                    u32::from_be_bytes([f.data()[12], f.data()[13], f.data()[14], f.data()[15]]);
                Verdict::Drop(if t.ingress.lookup(src) == Some(tenant.id.0) {
                    D::Untracked
                } else {
                    D::NoNat
                })
            }
        }
    }

    /// Sends an IPv4 packet of `exit.tenant` (the frame starts at its
    /// header) out of the public side, translated by `exit.nat`.
    fn public_exit<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        exit: &Exit<'_>,
        f: &mut F,
        now: u64,
    ) -> Verdict {
        let hop = match resolve_public(t, ip_dst(f.data())) {
            Ok(hop) => hop,
            Err(D::NoNeighbour) => {
                let side = Side::Tenant(exit.tenant);
                return self.unreachable(t, c, f, side, exit.underlay_mtu, exit.may_error, now);
            }
            Err(reason) => return Verdict::Drop(reason),
        };
        // Errors quote the packet as the tenant sent it: before NAT.
        let fit = match self.forward_checks(f, hop.mtu, exit.may_error) {
            Ok(fit) => fit,
            Err(e) => {
                let side = Side::Tenant(exit.tenant);
                return self.icmp_or_drop(t, c, f, e, side, exit.underlay_mtu, now);
            }
        };
        if fit != Fit::Whole {
            if let Err(v) = self.may_cut(hop.pending.is_none(), exit.tenant.id.0, now) {
                return v;
            }
        }
        if t.mss_clamp {
            // Replies come back through the tunnel: what the tenant
            // announces must fit inside it.
            clamp_syn(
                f.data_mut(),
                tunnel_inner_mtu(exit.tenant, exit.underlay_mtu),
            );
        }
        let ihl = usize::from(f.data()[0] & 0xf) * 4;
        if !exit.nat.forward(f.data_mut(), ihl) {
            return Verdict::Drop(D::Ipv4Invalid);
        }
        let v = hop.send(f, c);
        cut(f, v, fit, ETH, c)
    }

    /// Tunnels an IPv4 packet from the public side (the frame starts at its
    /// header) into tunnel `tunnel`, translated by `nat`.
    #[allow(clippy::too_many_arguments)]
    fn tunnel_entry<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        tunnel: u32,
        nat: Rewrite,
        now: u64,
    ) -> Verdict {
        let Some(adj) = t.tunnels.get(tunnel as usize) else {
            return Verdict::Drop(D::NoRoute);
        };
        // Errors quote the packet as the client sent it: before NAT.
        let fit = match self.forward_checks(f, adj.inner_mtu(), true) {
            Ok(fit) => fit,
            Err(e) => {
                let side = Side::Public(adj.tenant);
                return self.icmp_or_drop(t, c, f, e, side, pe.mtu, now);
            }
        };
        if unreachable::failed(t, tunnel, &nat, f.data()) {
            return self.unreachable(t, c, f, Side::Public(adj.tenant), pe.mtu, true, now);
        }
        let ihl = usize::from(f.data()[0] & 0xf) * 4;
        if !nat.forward(f.data_mut(), ihl) {
            return Verdict::Drop(D::Ipv4Invalid);
        }
        if fit != Fit::Whole {
            // After NAT: a gretap tunnel resolves the private address.
            let resolved = tunnel_resolved(t, adj, f.data());
            if let Err(v) = self.may_cut(resolved, adj.tenant.0, now) {
                return v;
            }
        }
        if t.mss_clamp {
            clamp_syn(f.data_mut(), adj.inner_mtu());
        }
        let v = self.encap(t, c, tunnel, f, &mut 0);
        cut(f, v, fit, usize::from(adj.header_len), c)
    }

    // ------------------------------------------------------------ flows

    /// Flows from the public side: a packet of a known flow, or one that
    /// opens a flow toward an elastic IP, is translated into its tenant.
    /// `None` leaves the packet to the stateless ingress. The frame still
    /// has its Ethernet header.
    fn public_flow<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        now: u64,
    ) -> Option<Verdict> {
        // Only an elastic IP, a shared NAT address or a tenant's public
        // address has flows: anything else skips the parse and the lookup.
        let (_, dst) = addrs(f.data().get(ETH..)?)?;
        let own = t.ingress.lookup(dst).map(TenantId);
        if t.eips.inbound(dst).is_none() && t.pools.of_addr(dst).is_none() && own.is_none() {
            return None;
        }
        if let Some((quoted, at)) = Tuple::parse_quoted(f.data().get(ETH..)?) {
            return self.public_icmp_error(t, c, pe, f, &quoted, at, now);
        }
        let owner = || inbound_owner(t, dst);
        let ip = f.data().get(ETH..)?;
        let tuple = match self.fragment_tuple(c, Zone::PUBLIC, ip, owner, Resume::Public, now) {
            Ok(tuple) => tuple?,
            Err(v) => return Some(v),
        };
        let key = tuple.key(Zone::PUBLIC);
        let (id, dir) = match self.find(t, c, &key, now) {
            Some(hit) => hit,
            None => {
                let opened = match (t.eips.inbound(tuple.dst), own) {
                    (Some((tenant, private)), _) => {
                        self.open_inbound(t, c, &tuple, key, tenant, private, now)
                    }
                    // A tenant's own public address: a flow that
                    // translates nothing, for its firewall's sake.
                    (None, Some(tenant)) => {
                        self.open_inbound(t, c, &tuple, key, tenant, tuple.dst, now)
                    }
                    (None, None) => {
                        let (_, pool) = t.pools.of_addr(tuple.dst)?;
                        if pool.eif {
                            let tenant = pool.tenant;
                            self.open_through_mapping(t, c, &tuple, key, tenant, now)
                        } else {
                            Err(D::NatFiltered)
                        }
                    }
                };
                match opened {
                    Ok(id) => (id, Direction::Forward),
                    Err(reason) => return Some(Verdict::Drop(reason)),
                }
            }
        };
        let Some(conn) = self.advance(c, id, dir, &tuple, now) else {
            return Some(Verdict::Drop(D::InvalidState));
        };
        let owner = Owner {
            tenant: conn.tenant,
            inbound: true,
        };
        let ip = f.data().get(ETH..)?;
        if let Err(v) = self.first_passed(Zone::PUBLIC, ip, &tuple, owner, now) {
            return Some(v);
        }
        if !f.adj(ETH) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        let tunnel_ok = t
            .tunnels
            .get(conn.tunnel as usize)
            .is_some_and(|a| a.tenant.0 == conn.tenant);
        if !tunnel_ok {
            return Some(Verdict::Drop(D::NoRoute));
        }
        Some(self.tunnel_entry(t, c, pe, f, conn.tunnel, conn.to_tenant, now))
    }

    /// Flows from a tenant (the frame starts at the inner IPv4 header): a
    /// packet of a known flow, or one that opens a flow from an address
    /// with an elastic IP toward the public side, is translated out.
    /// `None` leaves the packet to the stateless routing.
    fn tenant_flow<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tenant: &Tenant,
        underlay_mtu: u16,
        f: &mut F,
        now: u64,
    ) -> Option<Verdict> {
        // Only an address with an elastic IP, one of the tenant's public
        // addresses, or any of a tenant with a pool, has flows: the rest
        // skips the parse and the lookup.
        let (src, _) = addrs(f.data())?;
        let own = t.ingress.lookup(src) == Some(tenant.id.0);
        if t.eips.outbound(tenant.id, src).is_none()
            && t.pools.of_tenant(tenant.id).is_none()
            && !own
        {
            return None;
        }
        if let Some((quoted, at)) = Tuple::parse_quoted(f.data()) {
            return self.tenant_icmp_error(t, c, tenant, underlay_mtu, f, &quoted, at, now);
        }
        if later_fragment_inside(t, tenant, f.data()) {
            return None;
        }
        let zone = Zone::tenant(tenant.id.index())?;
        let resume = Resume::Tenant {
            tenant: tenant.id,
            underlay_mtu,
        };
        let owner = || Some(outbound_owner(tenant.id));
        let tuple = match self.fragment_tuple(c, zone, f.data(), owner, resume, now) {
            Ok(tuple) => tuple?,
            Err(v) => return Some(v),
        };
        let key = tuple.key(zone);
        let (id, dir, opened) = match self.find(t, c, &key, now) {
            Some((id, dir)) => (id, dir, false),
            None => {
                let nh = t
                    .vrfs
                    .lookup(tenant.vrf, tuple.dst)
                    .and_then(|i| t.nexthops.get(i as usize));
                if nh != Some(&NextHop::Public) {
                    return None;
                }
                // A tenant's own public addresses go out as they are, but
                // through a flow, so that its firewall decides.
                let nat = match t.eips.outbound(tenant.id, tuple.src) {
                    _ if own => Outbound::Own,
                    Some(eip) => Outbound::Eip(eip),
                    None => Outbound::Pool(t.pools.of_tenant(tenant.id)?.0),
                };
                match self.open_outbound(t, c, &tuple, key, tenant, nat, now) {
                    Ok(id) => (id, Direction::Forward, true),
                    Err(reason) => return Some(Verdict::Drop(reason)),
                }
            }
        };
        let Some(conn) = self.advance(c, id, dir, &tuple, now) else {
            return Some(Verdict::Drop(D::InvalidState));
        };
        let owner = outbound_owner(tenant.id);
        if let Err(v) = self.first_passed(zone, f.data(), &tuple, owner, now) {
            return Some(v);
        }
        if martian::turns_around(t, tuple.dst) {
            return Some(self.hairpin(t, c, id, opened, f, now));
        }
        let exit = Exit {
            tenant,
            underlay_mtu,
            may_error: true,
            nat: conn.to_public,
        };
        Some(self.public_exit(t, c, &exit, f, now))
    }

    /// RFC 4787 REQ-9, hairpinning: a tenant's packet to an elastic IP or a
    /// shared NAT address (its own or another tenant's) turns around inside
    /// the gateway, source translated by flow `id`'s rewrite, and comes
    /// back in on the public port as if from the Internet, where the
    /// destination's inbound rules decide it. `opened` says the packet
    /// opened `id`. The frame starts at its IPv4 header.
    fn hairpin<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        id: FlowId,
        opened: bool,
        f: &mut F,
        now: u64,
    ) -> Verdict {
        let Some(&conn) = self.flows.get(id) else {
            return Verdict::Drop(D::NoRoute);
        };
        if f.data()[8] <= 1 {
            return Verdict::Drop(D::TtlExceeded);
        }
        let ihl = usize::from(f.data()[0] & 0xf) * 4;
        if !conn.to_public.forward(f.data_mut(), ihl) {
            return Verdict::Drop(D::Ipv4Invalid);
        }
        if let Err(reason) = self.hairpin_to_itself(t, c, id, &conn, opened, f.data()) {
            return Verdict::Drop(reason);
        }
        self.turn_around(t, c, f, now)
    }

    /// Sends a translated packet (the frame at its IPv4 header) back in on
    /// the public port, as if it came from the Internet.
    fn turn_around<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        now: u64,
    ) -> Verdict {
        let Some((port, pe)) = public_port(t) else {
            return Verdict::Drop(D::NoRoute);
        };
        match f.prepend(ETH) {
            Some(h) => h.copy_from_slice(&eth_header(pe.mac, pe.mac, EtherType::IPV4)),
            None => return Verdict::Drop(D::NoHeadroom),
        }
        f.set_in_port(port);
        self.public_input(t, c, pe, f, now, Origin::Gateway)
    }

    /// A hairpinned packet (translated, at its IPv4 header) sent to the
    /// very address and port it leaves from — always so for an echo to
    /// one's own elastic IP, whose identifier is both "ports" — has its
    /// own flow's reply key: back on the public side it would pass as that
    /// flow's reply, past the inbound rules. Its inbound decision is
    /// therefore taken here, when it opens the flow; refused, the flow
    /// goes. Other hairpinned packets meet the rules on the public side.
    fn hairpin_to_itself(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        id: FlowId,
        conn: &Conn,
        opened: bool,
        ip: &[u8],
    ) -> Result<(), DropReason> {
        let Some(tuple) = Tuple::parse(ip) else {
            return Ok(());
        };
        let to_itself = self
            .flows
            .keys(id)
            .is_some_and(|k| k[1] == tuple.key(Zone::PUBLIC));
        if !(to_itself && opened) {
            return Ok(());
        }
        let (private, port) = (conn.to_tenant.addr(), conn.to_tenant.port());
        let tenant = TenantId(conn.tenant);
        let dport = port.unwrap_or(tuple.dport);
        let decided = firewall(t, c, tenant, FwDir::In, &tuple, tuple.src, private, dport);
        if decided.is_err() {
            if let Some(gone) = self.flows.remove(id) {
                ended(&mut self.snat, &t.pools, c, &gone.value);
            }
        }
        decided
    }

    /// An ICMP error from the Internet about a datagram of a translated
    /// flow (RFC 5508): into the tenant, its destination and the quoted
    /// source translated back. The frame still has its Ethernet header;
    /// the quote starts `at` bytes into the IPv4 packet.
    #[allow(clippy::too_many_arguments)]
    fn public_icmp_error<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        quoted: &Tuple,
        at: usize,
        now: u64,
    ) -> Option<Verdict> {
        // The quoted datagram left from an elastic IP; its answers would
        // arrive with the addresses and ports turned around.
        let key = quoted.reply_key(Zone::PUBLIC, quoted.dst, quoted.src);
        let (id, _) = self.flows.lookup(&key, now).hit()?;
        let conn = *self.flows.get(id)?;
        if ip_dst(f.data().get(ETH..)?) != quoted.src {
            return None;
        }
        if !f.adj(ETH) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        if let Err(reason) = icmp_error_sound(f.data(), at) {
            return Some(Verdict::Drop(reason));
        }
        let (private, port) = (conn.to_tenant.addr(), conn.to_tenant.port());
        let icmp_at = at - 8;
        if !translate_quoted(&mut f.data_mut()[icmp_at..], true, private, port) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        let nat = conn.to_tenant.address_only();
        Some(self.tunnel_entry(t, c, pe, f, conn.tunnel, nat, now))
    }

    /// An ICMP error from a tenant about a datagram of a translated flow
    /// (RFC 5508): out of the public side, its source and the quoted
    /// destination translated to the elastic IP. The frame starts at the
    /// IPv4 header; the quote starts `at` bytes into it.
    #[allow(clippy::too_many_arguments)]
    fn tenant_icmp_error<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tenant: &Tenant,
        underlay_mtu: u16,
        f: &mut F,
        quoted: &Tuple,
        at: usize,
        now: u64,
    ) -> Option<Verdict> {
        let zone = Zone::tenant(tenant.id.index())?;
        let key = quoted.reply_key(zone, quoted.dst, quoted.src);
        let (id, _) = self.flows.lookup(&key, now).hit()?;
        let conn = *self.flows.get(id)?;
        let src = u32::from_be_bytes(f.data().get(12..16)?.try_into().ok()?);
        if src != quoted.dst {
            return None;
        }
        if let Err(reason) = icmp_error_sound(f.data(), at) {
            return Some(Verdict::Drop(reason));
        }
        let (public, port) = (conn.to_public.addr(), conn.to_public.port());
        if !translate_quoted(&mut f.data_mut()[at - 8..], false, public, port) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        // RFC 5508 REQ-7: an error about a hairpinned packet goes back to
        // its sender through the gateway, as the packet came.
        if martian::turns_around(t, ip_dst(f.data())) {
            if f.data()[8] <= 1 {
                return Some(Verdict::Drop(D::TtlExceeded));
            }
            let ihl = usize::from(f.data()[0] & 0xf) * 4;
            if !conn.to_public.address_only().forward(f.data_mut(), ihl) {
                return Some(Verdict::Drop(D::Ipv4Invalid));
            }
            return Some(self.turn_around(t, c, f, now));
        }
        let exit = Exit {
            tenant,
            underlay_mtu,
            may_error: true,
            nat: conn.to_public.address_only(),
        };
        Some(self.public_exit(t, c, &exit, f, now))
    }

    /// The worker that owns the connection of a packet from the public
    /// side, if it is another (the frame still has its Ethernet header).
    fn public_owner<F: Frame>(&self, t: &Tables, f: &F) -> Option<u16> {
        let steer = self.steer?;
        let ip = f.data().get(ETH..)?;
        // (protocol, remote, the gateway's public end, its port if known)
        let (proto, remote, local, lport) = match Tuple::parse_quoted(ip) {
            // An error about what the gateway sent.
            Some((q, _)) => (q.protocol, q.dst, q.src, Some(q.sport)),
            None => match Tuple::parse(ip) {
                Some(p) => (p.protocol, p.src, p.dst, Some(p.dport)),
                // A later fragment: addresses only.
                None => {
                    let (src, dst) = addrs(ip)?;
                    (*ip.get(9)?, src, dst, None)
                }
            },
        };
        if t.eips.inbound(local).is_some() || t.ingress.lookup(local).is_some() {
            // Without ports, so that fragments find their owner too.
            return steer.elsewhere(proto, remote, 0, local, 0);
        }
        // A shared NAT address: the port's block names the worker. (A
        // later fragment to one stays where it arrived: see decisions.md.)
        let (_, pool) = t.pools.of_addr(local)?;
        let owner = pool.owner_of_port(lport?, steer.workers())?;
        (owner != steer.me()).then_some(owner)
    }

    /// The worker that owns the connection of a tenant's IPv4 packet `ip`,
    /// if it is another: the one its translated form belongs to.
    fn tenant_owner(&self, t: &Tables, tenant: &Tenant, ip: &[u8]) -> Option<u16> {
        let steer = self.steer?;
        // (protocol, remote, the private end)
        let (proto, remote, private) = match Tuple::parse_quoted(ip) {
            // An error about what the Internet sent in.
            Some((q, _)) => (q.protocol, q.src, q.dst),
            None => {
                let (src, dst) = addrs(ip)?;
                (*ip.get(9)?, dst, src)
            }
        };
        if let Some(eip) = t.eips.outbound(tenant.id, private) {
            return steer.elsewhere(proto, remote, 0, eip, 0);
        }
        // A public address of the tenant's own: as the public side steers
        // it.
        if t.ingress.lookup(private) == Some(tenant.id.0) {
            return steer.elsewhere(proto, remote, 0, private, 0);
        }
        t.pools.of_tenant(tenant.id)?;
        // The private address alone decides: all of a host's mappings live
        // with one worker, which hands out ports from its own blocks.
        steer.elsewhere(0, private, 0, tenant.id.0, 0)
    }

    /// The live flow of `key`; an expired one is removed on the way.
    fn find(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        key: &FlowKey,
        now: u64,
    ) -> Option<(FlowId, Direction)> {
        match self.flows.lookup(key, now) {
            FlowLookup::Hit(id, dir) => Some((id, dir)),
            FlowLookup::Expired(id, _) => {
                if let Some(gone) = self.flows.remove(id) {
                    ended(&mut self.snat, &t.pools, c, &gone.value);
                }
                None
            }
            FlowLookup::Miss => None,
        }
    }

    /// Moves flow `id`'s TCP state for a packet going `dir` and extends its
    /// life. `None` if the segment does not fit the connection.
    fn advance(
        &mut self,
        c: &WorkerCounters,
        id: FlowId,
        dir: Direction,
        tuple: &Tuple,
        now: u64,
    ) -> Option<Conn> {
        let conn = self.flows.get_mut(id)?;
        // A later fragment carries no TCP header: nothing to track.
        let whole = tuple.flags.0 != 0 || tuple.protocol != IpProtocol::TCP.0;
        if conn.protocol == IpProtocol::TCP.0 && whole {
            conn.track_tcp(dir.index(), tuple).ok()?;
        }
        if conn.answered != Answered::Yes && dir == Direction::Reply {
            conn.answered = Answered::Yes;
            if let Some(tc) = c.tenant(conn.tenant as usize) {
                tc.unreplied_done.inc();
            }
        }
        let conn = *conn;
        let life = self.timeouts.ticks(&conn, self.hz);
        self.flows.set_deadline(id, now.saturating_add(life));
        Some(conn)
    }

    /// A new flow from the Internet to elastic IP `tuple.dst`, which stands
    /// for `private` in `tenant`.
    #[allow(clippy::too_many_arguments)]
    fn open_inbound(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tuple: &Tuple,
        key: FlowKey,
        tenant: TenantId,
        private: u32,
        now: u64,
    ) -> Result<FlowId, DropReason> {
        if !tuple.opens {
            return Err(D::InvalidState);
        }
        let ten = t.tenants.get(tenant).ok_or(D::NoRoute)?;
        let zone = Zone::tenant(tenant.index()).ok_or(D::NoRoute)?;
        // The tenant's rules see its own address (after DNAT).
        firewall(
            t,
            c,
            tenant,
            FwDir::In,
            tuple,
            tuple.src,
            private,
            tuple.dport,
        )?;
        let tunnel = tunnel_to(t, ten, private)?;
        let conn = Conn {
            tenant: tenant.0,
            tunnel,
            to_tenant: Rewrite::dst(tuple.dst, private),
            to_public: Rewrite::src(private, tuple.dst),
            protocol: tuple.protocol,
            tcp: TcpState::opened_by(tuple.protocol),
            expect: opening_expect(tuple),
            scales: Scales::default(),
            snat: None,
            answered: Answered::No,
            inner: 0,
            hairpin: false,
        };
        let reply = tuple.reply_key(zone, private, tuple.src);
        self.insert(t, c, key, reply, conn, now)
    }

    /// A new flow from `tuple.src` in `tenant`, which has elastic IP `eip`,
    /// toward the public side.
    #[allow(clippy::too_many_arguments)]
    fn open_outbound(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tuple: &Tuple,
        key: FlowKey,
        tenant: &Tenant,
        nat: Outbound,
        now: u64,
    ) -> Result<FlowId, DropReason> {
        if !tuple.opens {
            return Err(D::InvalidState);
        }
        // Before a port is taken: a denied flow holds nothing.
        firewall(
            t,
            c,
            tenant.id,
            FwDir::Out,
            tuple,
            tuple.src,
            tuple.dst,
            tuple.dport,
        )?;
        // Replies go back to the host the tenant routes its address to.
        let tunnel = tunnel_to(t, tenant, tuple.src)?;
        let (to_tenant, to_public, reply, snat) = match nat {
            Outbound::Own => (
                Rewrite::dst(tuple.src, tuple.src),
                Rewrite::src(tuple.src, tuple.src),
                tuple.reply_key(Zone::PUBLIC, tuple.dst, tuple.src),
                None,
            ),
            Outbound::Pool(_) if !has_ports(tuple.protocol) => return Err(D::NatProtocol),
            Outbound::Eip(eip) => (
                Rewrite::dst(eip, tuple.src),
                Rewrite::src(tuple.src, eip),
                tuple.reply_key(Zone::PUBLIC, tuple.dst, eip),
                None,
            ),
            Outbound::Pool(pool) => {
                let inside = Inside {
                    pool,
                    private: tuple.src,
                    port: tuple.sport,
                };
                let Outside { addr, port } =
                    self.snat.map(&t.pools, inside).map_err(|_| D::NoNatPort)?;
                // An echo reply carries the translated identifier in both
                // of its "ports".
                let their_port = if tuple.protocol == IpProtocol::ICMP.0 {
                    port
                } else {
                    tuple.dport
                };
                let reply = FlowKey::new(
                    Zone::PUBLIC,
                    tuple.protocol,
                    tuple.dst,
                    their_port,
                    addr,
                    port,
                );
                (
                    Rewrite::dst(addr, tuple.src).with_port(port, tuple.sport),
                    Rewrite::src(tuple.src, addr).with_port(tuple.sport, port),
                    reply,
                    Some(inside),
                )
            }
        };
        let conn = Conn {
            tenant: tenant.id.0,
            tunnel,
            to_tenant,
            to_public,
            protocol: tuple.protocol,
            tcp: TcpState::opened_by(tuple.protocol),
            expect: opening_expect(tuple),
            scales: Scales::default(),
            snat,
            answered: Answered::Yes,
            inner: 0,
            hairpin: false,
        };
        self.insert(t, c, key, reply, conn, now)
    }

    /// A new flow from the Internet through a shared NAT address's mapped
    /// port, which endpoint-independent filtering lets in.
    #[allow(clippy::too_many_arguments)]
    fn open_through_mapping(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tuple: &Tuple,
        key: FlowKey,
        tenant: TenantId,
        now: u64,
    ) -> Result<FlowId, DropReason> {
        if !tuple.opens || tuple.protocol == IpProtocol::ICMP.0 {
            return Err(D::NatFiltered);
        }
        let outside = Outside {
            addr: tuple.dst,
            port: tuple.dport,
        };
        let inside = self.snat.join(outside).ok_or(D::NatFiltered)?;
        let allowed = firewall(
            t,
            c,
            tenant,
            FwDir::In,
            tuple,
            tuple.src,
            inside.private,
            inside.port,
        );
        if let Err(reason) = allowed {
            self.snat.release(&t.pools, inside);
            return Err(reason);
        }
        let conn = (|| {
            let ten = t.tenants.get(tenant).ok_or(D::NoRoute)?;
            let zone = Zone::tenant(tenant.index()).ok_or(D::NoRoute)?;
            let tunnel = tunnel_to(t, ten, inside.private)?;
            let conn = Conn {
                tenant: tenant.0,
                tunnel,
                to_tenant: Rewrite::dst(tuple.dst, inside.private)
                    .with_port(tuple.dport, inside.port),
                to_public: Rewrite::src(inside.private, tuple.dst)
                    .with_port(inside.port, tuple.dport),
                protocol: tuple.protocol,
                tcp: TcpState::opened_by(tuple.protocol),
                expect: opening_expect(tuple),
                scales: Scales::default(),
                snat: Some(inside),
                answered: Answered::No,
                inner: 0,
                hairpin: false,
            };
            let reply = FlowKey::new(
                zone,
                tuple.protocol,
                inside.private,
                inside.port,
                tuple.src,
                tuple.sport,
            );
            Ok((conn, reply))
        })();
        match conn {
            Ok((conn, reply)) => self.insert(t, c, key, reply, conn, now),
            Err(reason) => {
                self.snat.release(&t.pools, inside);
                Err(reason)
            }
        }
    }

    /// Adds a flow. If it cannot be, the NAT mapping it took is given back.
    fn insert(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        forward: FlowKey,
        reply: FlowKey,
        conn: Conn,
        now: u64,
    ) -> Result<FlowId, DropReason> {
        // The tenant's live flows here: this worker's own counters.
        let tc = c.tenant(conn.tenant as usize);
        let live = tc.map_or(0, TenantCounters::live_flows);
        let mut conn = conn;
        conn.hairpin = martian::hairpinned(t, [&forward, &reply]);
        if conn.answered == Answered::No {
            let unanswered = tc.map_or(0, TenantCounters::live_unreplied);
            if unanswered >= self.unreplied_quota {
                if let Some(inside) = conn.snat {
                    self.snat.release(&t.pools, inside);
                }
                return Err(D::UnrepliedQuota);
            }
            if unanswered >= self.unreplied_quota / 2 {
                conn.answered = Answered::NoUnderPressure;
            }
        }
        let deadline = now.saturating_add(self.timeouts.ticks(&conn, self.hz));
        let result = if live >= self.quota {
            Err(InsertError::Full)
        } else {
            self.flows.insert(forward, reply, deadline, conn)
        };
        if let (Err(_), Some(inside)) = (&result, conn.snat) {
            self.snat.release(&t.pools, inside);
        }
        match result {
            Ok(id) => {
                if let Some(tc) = tc {
                    tc.flows_created.inc();
                    if conn.answered != Answered::Yes {
                        tc.unreplied_opened.inc();
                    }
                }
                Ok(id)
            }
            Err(InsertError::Full) if live >= self.quota => Err(D::Quota),
            Err(InsertError::Full | InsertError::NoRoom) => Err(D::FlowTableFull),
            // The reply key is taken: another flow already owns this
            // mapping (e.g. opened from the other side first).
            Err(InsertError::Exists(..) | InsertError::SameKey) => Err(D::InvalidState),
        }
    }

    /// From the Internet side: to the gateway, or into a tenant.
    fn public_input<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        now: u64,
        origin: Origin,
    ) -> Verdict {
        let (src, dst, protocol, fragment, options, tail) = {
            let data = f.data();
            let Ok(ip) = Ipv4Packet::new_checked(&data[ETH..]) else {
                return Verdict::Drop(D::Ipv4Invalid);
            };
            if !ip.verify_checksum() {
                return Verdict::Drop(D::Ipv4Checksum);
            }
            let tail = data.len() - ETH - usize::from(ip.total_len());
            (
                u32::from(ip.src_addr()),
                u32::from(ip.dst_addr()),
                ip.protocol(),
                ip.is_fragment(),
                ip.has_options().then(|| ip_options::decide(ip.options())),
                tail,
            )
        };
        if origin == Origin::Port {
            if let Err(reason) = martian::public(t, pe, src, dst) {
                return Verdict::Drop(reason);
            }
        }
        // Fragments for the gateway itself would need reassembly, options
        // for it a stack; in transit, options follow ip_options's policy.
        if (fragment || options.is_some()) && pe.is_local(dst) {
            return Verdict::Drop(D::SlowPath);
        }
        if fragment {
            if let Err(e) = fragments::inspect(&f.data()[ETH..]) {
                return Verdict::Drop(fragment::reason(e));
            }
        }
        let options = match options.transpose() {
            Ok(carried) => carried,
            Err(reason) => return Verdict::Drop(reason),
        };
        if !f.trim(tail) {
            return Verdict::Drop(D::Ipv4Invalid);
        }
        if pe.is_local(dst) {
            return match protocol {
                IpProtocol::ICMP => echo_reply(pe, f.in_port(), f.data_mut(), c),
                _ => Verdict::Drop(D::LocalProtocol),
            };
        }
        if let Some(owner) = self.public_owner(t, f) {
            return Verdict::Handoff(owner);
        }
        // Counted by the worker that goes on with it.
        if let Some(carried) = options {
            c.count_options(carried);
        }
        if let Some(v) = self.public_flow(t, c, pe, f, now) {
            return v;
        }
        // Every address a tenant owns is behind its firewall: nothing
        // reaches a tenant but through a flow.
        Verdict::Drop(if t.ingress.lookup(dst).is_some() {
            D::Untracked
        } else {
            D::NoRoute
        })
    }

    /// TTL and size, before a packet is forwarded: a packet too big for
    /// `mtu` with DF is refused, one without is to be cut (RFC 791).
    fn forward_checks<F: Frame>(
        &self,
        f: &F,
        mtu: u16,
        may_error: bool,
    ) -> Result<Fit, Option<IcmpError>> {
        let d = f.data();
        let ttl = d[8];
        if ttl <= 1 {
            return Err(may_error.then_some(IcmpError::TimeExceeded));
        }
        if d.len() > usize::from(mtu) {
            let df = d[6] & 0x40 != 0;
            return match (df, may_error) {
                (false, _) => Ok(Fit::Cut(mtu)),
                (true, true) => Err(Some(IcmpError::FragNeeded(mtu))),
                (true, false) => Err(None),
            };
        }
        Ok(Fit::Whole)
    }

    /// Turns the packet into the ICMP error `e` and sends it back where it
    /// came from, or drops it if no error may be sent.
    #[allow(clippy::too_many_arguments)]
    fn icmp_or_drop<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        e: Option<IcmpError>,
        side: Side<'_>,
        in_mtu: u16,
        now: u64,
    ) -> Verdict {
        let d = f.data();
        let reason = if e == Some(IcmpError::HostUnreachable) {
            D::NoNeighbour
        } else if d[8] <= 1 {
            D::TtlExceeded
        } else if d[6] & 0x40 != 0 {
            D::TooBig
        } else {
            D::NeedsFragmentation
        };
        let Some(e) = e else {
            return Verdict::Drop(reason);
        };
        let (tenant, toward) = match side {
            Side::Tenant(tenant) => (tenant.id, Toward::Tenant),
            Side::Public(tenant) => (tenant, Toward::Public),
        };
        if !may_quote(f.data()) || !self.icmp.take(tenant.index(), toward, now) {
            return Verdict::Drop(reason);
        }
        let src = match side {
            Side::Tenant(_) => underlay_addr(t),
            Side::Public(_) => public_addr(t),
        };
        let Some(src) = src else {
            return Verdict::Drop(reason);
        };
        if !build_icmp_error(f, e, src) {
            return Verdict::Drop(reason);
        }
        c.icmp_errors.inc();
        match side {
            Side::Tenant(tenant) => self.route_tenant(t, c, tenant, in_mtu, f, now, false),
            Side::Public(_) => match resolve_public(t, ip_dst(f.data())) {
                Ok(hop) => hop.send(f, c),
                Err(reason) => Verdict::Drop(reason),
            },
        }
    }

    /// Prepends the header of tunnel `tunnel` to an IPv4 packet whose TTL
    /// has been decremented. A frame whose outer or
    /// inner next hop is not resolved yet is built all the same and punted,
    /// for the resolver to finish and send.
    fn encap<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        tunnel: u32,
        f: &mut F,
        inner: &mut u16,
    ) -> Verdict {
        let Some(adj) = t.tunnels.get(tunnel as usize) else {
            return Verdict::Drop(D::NoRoute);
        };
        let mut pending = None;
        let outer_mac = match t.neighbours.get_ref(adj.neigh) {
            Lookup::Mac(mac) => mac,
            Lookup::Failed => return Verdict::Drop(D::NoNeighbour),
            Lookup::Unresolved => {
                pending = Some(Punt::Resolve {
                    port: adj.port,
                    key: adj.neigh.key,
                });
                [0; 6]
            }
        };
        let inner_mac = if adj.is_gretap() {
            let key = NeighKey::inner(adj.tenant, ip_dst(f.data()));
            match t.neighbours.get_hinted(key, inner) {
                Lookup::Mac(mac) => Some(mac),
                Lookup::Failed => return Verdict::Drop(D::NoNeighbour),
                // The resolver finds the outer neighbour after the inner.
                Lookup::Unresolved => {
                    pending = Some(Punt::ResolveInner { tunnel, key });
                    Some([0; 6])
                }
            }
        } else {
            None
        };
        let (tos, df) = {
            let d = f.data();
            (d[1], d[6] & 0x40)
        };
        let inner_len = f.len();
        let len = usize::from(adj.header_len);
        let Some(h) = f.prepend(len) else {
            return Verdict::Drop(D::NoHeadroom);
        };
        // Copies of a constant size are a few vector moves, not a call: the
        // key-only headers most tenants use. With GRE options, a call.
        const GRETAP: usize = KEYED_GRETAP_HEADER;
        const GRE_IPV4: usize = KEYED_GRETAP_HEADER - ETH;
        match len {
            GRETAP => h.copy_from_slice(&adj.header[..GRETAP]),
            GRE_IPV4 => h.copy_from_slice(&adj.header[..GRE_IPV4]),
            _ => h.copy_from_slice(&adj.header[..len]),
        }
        h[..6].copy_from_slice(&outer_mac);
        if let Some(mac) = inner_mac {
            h[len - ETH..len - ETH + 6].copy_from_slice(&mac);
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        // RFC 6040 normal mode, and DSCP copied (RFC 2983 uniform model).
        finish_outer_ipv4(
            &mut h[ETH..ETH + 20],
            tos,
            (len - ETH + inner_len) as u16,
            self.ip_id,
            df,
        );
        if adj.gre.any() {
            gre_options(t, tunnel, f);
        }
        if let Some(tc) = c.tenant(adj.tenant.index()) {
            tc.to_tunnel_packets.inc();
            tc.to_tunnel_bytes.add(inner_len as u64);
        }
        match pending {
            None => Verdict::Forward(adj.port),
            Some(why) => punt(f, why, c),
        }
    }
}

/// The GRE checksum and sequence number of a frame `encap` built, out of
/// line so that tenants without them pay the test alone.
#[cold]
#[inline(never)]
fn gre_options<F: Frame>(t: &Tables, tunnel: u32, f: &mut F) {
    if let Some(gre) = f.data_mut().get_mut(GRE_AT..) {
        t.fill_gre_options(tunnel, gre);
    }
}

/// Fills the per-frame fields of a tunnel's outer IPv4 header, copied
/// from its adjacency: DSCP/ECN, total length, identification, DF (the
/// flags byte), and adds them to the checksum, which the adjacency
/// computed with them zero.
pub(crate) fn finish_outer_ipv4(ip: &mut [u8], tos: u8, total_len: u16, id: u16, df: u8) {
    ip[1] = tos;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = df;
    let hc = u16::from_be_bytes([ip[10], ip[11]]);
    let hc = checksum::fill_zero_fields(hc, [u16::from(tos), total_len, id, u16::from(df) << 8]);
    ip[10..12].copy_from_slice(&hc.to_be_bytes());
}

/// The tenant's firewall rules for the first packet of a flow, seen in the
/// tenant's address space (`src`, `dst` and the destination port after
/// DNAT, before SNAT); the decision is counted per rule.
#[allow(clippy::too_many_arguments)]
fn firewall(
    t: &Tables,
    c: &WorkerCounters,
    tenant: TenantId,
    dir: FwDir,
    tuple: &Tuple,
    src: u32,
    dst: u32,
    dport: u16,
) -> Result<(), DropReason> {
    let p = match IpProtocol(tuple.protocol) {
        IpProtocol::TCP => Packet5::tcp(src, dst, tuple.sport, dport),
        IpProtocol::UDP => Packet5::udp(src, dst, tuple.sport, dport),
        // Only echo requests open flows.
        IpProtocol::ICMP => Packet5::icmp(src, dst, 8, 0),
        _ => Packet5::other(tuple.protocol, src, dst),
    };
    let decision = t.firewall.evaluate(tenant, dir, &p);
    c.rules.count(tenant, dir, decision);
    if decision.allowed() {
        Ok(())
    } else {
        Err(D::Firewall)
    }
}

/// Accounts for a flow that ended: its tenant's count, and its share of
/// a source NAT mapping.
fn ended(snat: &mut Snat, pools: &Pools, c: &WorkerCounters, conn: &Conn) {
    if let Some(tc) = c.tenant(conn.tenant as usize) {
        tc.flows_expired.inc();
        if conn.answered != Answered::Yes {
            tc.unreplied_done.inc();
        }
    }
    if let Some(inside) = conn.snat {
        snat.release(pools, inside);
    }
}

/// Prepends the punt header and counts the frame as punted.
fn punt<F: Frame>(f: &mut F, why: Punt, c: &WorkerCounters) -> Verdict {
    if !why.write(f) {
        return Verdict::Drop(D::NoHeadroom);
    }
    c.punted.inc();
    Verdict::Punt
}

/// Validates an IPv4 packet addressed to one of the port's addresses;
/// trims Ethernet padding. Returns the protocol and header length.
fn check_local_ipv4<F: Frame>(pe: &PortEntry, f: &mut F) -> Result<(IpProtocol, usize), Verdict> {
    let data = f.data();
    let ip = Ipv4Packet::new_checked(&data[ETH..]).map_err(|_| Verdict::Drop(D::Ipv4Invalid))?;
    if !ip.verify_checksum() {
        return Err(Verdict::Drop(D::Ipv4Checksum));
    }
    if !pe.is_local(u32::from(ip.dst_addr())) {
        return Err(Verdict::Drop(D::NotLocal));
    }
    if ip.is_fragment() || ip.has_options() {
        return Err(Verdict::Drop(D::SlowPath));
    }
    let (protocol, ihl) = (ip.protocol(), ip.header_len());
    let tail = data.len() - ETH - usize::from(ip.total_len());
    if !f.trim(tail) {
        return Err(Verdict::Drop(D::Ipv4Invalid));
    }
    Ok((protocol, ihl))
}

/// What a flow opened by `tuple` expects next from its opener: a SYN
/// counts one.
fn opening_expect(tuple: &Tuple) -> [u32; 2] {
    if tuple.protocol == IpProtocol::TCP.0 {
        [tuple.seq.wrapping_add(1), 0]
    } else {
        [0, 0]
    }
}

/// The source and destination of IPv4 packet `ip`.
fn addrs(ip: &[u8]) -> Option<(u32, u32)> {
    let a = ip.get(12..20)?;
    Some((
        u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_be_bytes([a[4], a[5], a[6], a[7]]),
    ))
}

/// Whether `protocol` has ports that a shared NAT address can tell its
/// hosts apart by (an echo's identifier counts).
fn has_ports(protocol: u8) -> bool {
    matches!(
        IpProtocol(protocol),
        IpProtocol::TCP | IpProtocol::UDP | IpProtocol::ICMP
    )
}

/// Whether the ICMP error `ip` (trimmed to its total length, its quote
/// `at` bytes in) is sound enough to translate: its checksum (RFC 5508
/// REQ-3) and its quoted IPv4 header's (REQ-3a) verify. Translation sums
/// the error anew, so a corrupt one would otherwise leave looking sound.
fn icmp_error_sound(ip: &[u8], at: usize) -> Result<(), DropReason> {
    let icmp = ip.get(at - 8..).ok_or(D::Ipv4Invalid)?;
    if checksum::checksum(icmp) != 0 {
        return Err(D::IcmpChecksum);
    }
    let quoted_ihl = usize::from(*ip.get(at).ok_or(D::Ipv4Invalid)? & 0xf) * 4;
    match ip.get(at..at + quoted_ihl) {
        Some(header) if checksum::checksum(header) != 0 => Err(D::IcmpQuoteChecksum),
        _ => Ok(()),
    }
}

/// The tunnel `tenant` routes `addr` to.
fn tunnel_to(t: &Tables, tenant: &Tenant, addr: u32) -> Result<u32, DropReason> {
    match t
        .vrfs
        .lookup(tenant.vrf, addr)
        .and_then(|i| t.nexthops.get(i as usize))
    {
        Some(&NextHop::Tunnel(i)) => Ok(i),
        Some(NextHop::Blackhole) => Err(D::Blackhole),
        _ => Err(D::NoRoute),
    }
}

fn ip_src(ip: &[u8]) -> u32 {
    u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]])
}

#[inline]
fn ip_dst(ip: &[u8]) -> u32 {
    u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]])
}

/// RFC 6040 decapsulation: outer CE marks an ECN-capable inner packet CE,
/// and condemns a not-ECN-capable one. Returns false to drop.
fn decap_ecn(ip: &mut [u8], outer_ecn: u8) -> bool {
    const ECT0: u8 = 2;
    const ECT1: u8 = 1;
    const CE: u8 = 3;
    let inner = ip[1] & 3;
    // RFC 6040 §4.2's table: a not-ECT inner packet keeps its field
    // (dropped under CE), CE inside stays, outer CE marks an ECT packet,
    // and outer ECT(1) over ECT(0) gives ECT(1).
    let marked = match (inner, outer_ecn) {
        (0, CE) => return false,
        (0, _) | (CE, _) => return true,
        (_, CE) => CE,
        (ECT0, ECT1) => ECT1,
        _ => return true,
    };
    let old = u16::from_be_bytes([ip[0], ip[1]]);
    ip[1] = ip[1] & !3 | marked;
    let new = u16::from_be_bytes([ip[0], ip[1]]);
    let hc = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum::update_u16(hc, old, new).to_be_bytes());
    true
}

/// The inner MTU of a tenant's tunnels over an underlay port of `mtu`.
fn tunnel_inner_mtu(tenant: &Tenant, mtu: u16) -> u16 {
    let overhead = 20
        + 8
        + tenant.gre.extra_len() as u16
        + if tenant.encap == Encap::Gretap {
            ETH as u16
        } else {
            0
        };
    mtu.saturating_sub(overhead)
}

/// Clamps the MSS of a TCP SYN in `ip` so that segments fit `mtu`.
fn clamp_syn(ip: &mut [u8], mtu: u16) {
    // A later fragment's payload is no TCP header.
    if ip[9] != IpProtocol::TCP.0 || u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let Some(seg) = ip.get_mut(ihl..) else { return };
    if let Ok(mut tcp) = TcpPacket::new_checked(seg) {
        crate::wire::clamp_mss(&mut tcp, mtu.saturating_sub(IP_TCP));
    }
}

/// The next hop toward a public destination.
struct PublicHop {
    port: u16,
    /// Complete unless `pending` says whose MAC is missing.
    header: [u8; ETH],
    mtu: u16,
    pending: Option<Punt>,
}

impl PublicHop {
    /// Prepends the Ethernet header to an IPv4 packet ready to leave, and
    /// sends it, or punts it to wait for the neighbour's MAC.
    fn send<F: Frame>(&self, f: &mut F, c: &WorkerCounters) -> Verdict {
        match f.prepend(ETH) {
            Some(h) => h.copy_from_slice(&self.header),
            None => return Verdict::Drop(D::NoHeadroom),
        }
        match self.pending {
            None => Verdict::Forward(self.port),
            Some(why) => punt(f, why, c),
        }
    }
}

fn resolve_public(t: &Tables, dst: u32) -> Result<PublicHop, DropReason> {
    let (port, mut header, mtu, neighbour, key) = match t.public_route(dst).ok_or(D::NoRoute)? {
        PublicRoute::Via(adj) => (
            adj.port,
            adj.header,
            adj.mtu,
            t.neighbours.get_ref(adj.neigh),
            adj.neigh.key,
        ),
        PublicRoute::OnLink(port) => {
            let pe = t.ports.get(usize::from(port)).ok_or(D::NoEgress)?;
            let key = NeighKey::port(port, dst);
            let header = eth_header([0; 6], pe.mac, EtherType::IPV4);
            (port, header, pe.mtu, t.neighbours.get(key), key)
        }
    };
    let pending = match neighbour {
        Lookup::Mac(mac) => {
            header[..6].copy_from_slice(&mac);
            None
        }
        Lookup::Unresolved => Some(Punt::Resolve { port, key }),
        Lookup::Failed => return Err(D::NoNeighbour),
    };
    Ok(PublicHop {
        port,
        header,
        mtu,
        pending,
    })
}

/// The gateway's address as the source of errors toward tenants: its first
/// underlay address (what traceroute inside a tenant shows).
pub(crate) fn underlay_addr(t: &Tables) -> Option<u32> {
    t.ports
        .iter()
        .find(|p| p.role == Some(Role::Underlay))
        .and_then(PortEntry::primary)
}

/// The first public port.
fn public_port(t: &Tables) -> Option<(u16, &PortEntry)> {
    t.ports
        .iter()
        .enumerate()
        .find(|(_, p)| p.role == Some(Role::Public))
        .map(|(i, p)| (i as u16, p))
}

pub(crate) fn public_addr(t: &Tables) -> Option<u32> {
    t.ports
        .iter()
        .find(|p| p.role == Some(Role::Public))
        .and_then(PortEntry::primary)
}

/// RFC 1122 3.2.2 / RFC 1812 4.3.2.7: no error about an ICMP error, a
/// non-initial fragment, or a packet from a broadcast, multicast or
/// unspecified source.
pub(crate) fn may_quote(ip: &[u8]) -> bool {
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let is_icmp_error =
        ip[9] == IpProtocol::ICMP.0 && ip.get(ihl).is_some_and(|&ty| IcmpType(ty).is_error());
    frag_off == 0 && !is_icmp_error && src != 0 && src != u32::MAX && (src >> 28) != 0xe
}

/// Rewrites the IPv4 packet in `f` into an ICMP error about it, from `src`
/// to its source, quoting as much as RFC 1812 allows.
pub(crate) fn build_icmp_error<F: Frame>(f: &mut F, e: IcmpError, src: u32) -> bool {
    let orig_src: [u8; 4] = f.data()[12..16].try_into().unwrap_or_default();
    let quote = f.len().min(ICMP_ERROR_MAX - 28);
    if !f.trim(f.len() - quote) {
        return false;
    }
    let Some(h) = f.prepend(28) else { return false };
    let total = (28 + quote) as u16;
    h[..20].copy_from_slice(&[
        0x45,
        0xc0,
        0,
        0,
        0,
        0,
        0,
        0,
        LOCAL_TTL,
        IpProtocol::ICMP.0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&orig_src);
    Ipv4Packet::new_unchecked(&mut h[..20]).fill_checksum();
    let (ty, code, mtu) = match e {
        IcmpError::TimeExceeded => (IcmpType::TIME_EXCEEDED, icmpw::time_exceeded::TTL, 0),
        IcmpError::FragNeeded(mtu) => (
            IcmpType::DEST_UNREACHABLE,
            icmpw::unreachable::FRAG_NEEDED,
            mtu,
        ),
        IcmpError::HostUnreachable => (IcmpType::DEST_UNREACHABLE, icmpw::unreachable::HOST, 0),
    };
    let data = f.data_mut();
    let mut icmp = IcmpPacket::new_unchecked(&mut data[20..]);
    icmp.set_msg_type(ty);
    icmp.set_msg_code(code);
    icmp.set_echo_ident(0);
    icmp.set_next_hop_mtu(mtu);
    icmp.fill_checksum();
    true
}

/// Answers an ICMP echo request to the gateway in place; the frame still
/// has its Ethernet header and was trimmed to the IP length.
fn echo_reply(pe: &PortEntry, port: u16, data: &mut [u8], c: &WorkerCounters) -> Verdict {
    let ihl = usize::from(data[ETH] & 0xf) * 4;
    {
        let Ok(icmp) = IcmpPacket::new_checked(&data[ETH + ihl..]) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        if icmp.msg_type() != IcmpType::ECHO_REQUEST || icmp.msg_code() != 0 {
            return Verdict::Drop(D::LocalProtocol);
        }
    }
    let (src_mac, dst_ip) = {
        let mut m = [0u8; 6];
        m.copy_from_slice(&data[6..12]);
        let mut d = [0u8; 4];
        d.copy_from_slice(&data[ETH + 16..ETH + 20]);
        (m, d)
    };
    data[..6].copy_from_slice(&src_mac);
    data[6..12].copy_from_slice(&pe.mac);
    let ip = &mut data[ETH..];
    ip.copy_within(12..16, 16);
    ip[12..16].copy_from_slice(&dst_ip);
    ip[8] = LOCAL_TTL;
    Ipv4Packet::new_unchecked(&mut ip[..ihl]).fill_checksum();
    let icmp = &mut ip[ihl..];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = IcmpType::ECHO_REPLY.0;
    let hc = u16::from_be_bytes([icmp[2], icmp[3]]);
    let sum = checksum::update_u16(hc, old, u16::from(icmp[1]));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    c.echo_replies.inc();
    Verdict::Forward(port)
}

/// ARP on a port: a request for one of the gateway's addresses is
/// answered in place; a reply to the gateway, or an announcement, goes to
/// the resolver to learn from.
fn arp_input<F: Frame>(
    t: &Tables,
    pe: &PortEntry,
    port: u16,
    f: &mut F,
    c: &WorkerCounters,
) -> Verdict {
    let (op, spa, tpa) = match f.data().get(ETH..).map(ArpPacket::new_checked) {
        Some(Ok(a)) => (
            a.operation(),
            u32::from(a.source_protocol_addr()),
            u32::from(a.target_protocol_addr()),
        ),
        _ => return Verdict::Drop(D::ArpNotForUs),
    };
    let reply_to_us = op == ArpOperation::REPLY && pe.is_local(tpa);
    let announcement = op == ArpOperation::REQUEST && spa == tpa && spa != 0;
    if reply_to_us || announcement {
        return punt(f, Punt::Arp { port }, c);
    }
    arp_reply(t, pe, port, f.data_mut(), c)
}

/// Answers an ARP request in place for one of the port's addresses, or for
/// an elastic IP or shared NAT address on one of the port's subnets (the
/// router in front then needs no route for them).
fn arp_reply(
    t: &Tables,
    pe: &PortEntry,
    port: u16,
    data: &mut [u8],
    c: &WorkerCounters,
) -> Verdict {
    let Some(body) = data.get_mut(ETH..) else {
        return Verdict::Drop(D::Runt);
    };
    let ours = |tpa: u32| {
        pe.is_local(tpa)
            || (pe.role == Some(Role::Public)
                && pe.nets.iter().any(|n| n.contains(tpa))
                && (t.eips.inbound(tpa).is_some() || t.pools.of_addr(tpa).is_some()))
    };
    match answer_arp(body, ours, pe.mac) {
        Ok(requester) => {
            data[..6].copy_from_slice(&requester);
            data[6..12].copy_from_slice(&pe.mac);
            c.arp_replies.inc();
            Verdict::Forward(port)
        }
        Err(reason) => Verdict::Drop(reason),
    }
}

/// Turns an ARP request whose target passes `ours` into the reply from
/// `mac`, in place. Returns the requester's MAC.
fn answer_arp(
    body: &mut [u8],
    ours: impl Fn(u32) -> bool,
    mac: [u8; 6],
) -> Result<[u8; 6], DropReason> {
    let mut a = ArpPacket::new_checked(body).map_err(|_| D::ArpNotForUs)?;
    let (spa, tpa) = (a.source_protocol_addr(), a.target_protocol_addr());
    if a.operation() != ArpOperation::REQUEST || !ours(u32::from(tpa)) || spa == tpa {
        return Err(D::ArpNotForUs);
    }
    let sha = a.source_hardware_addr();
    a.set_operation(ArpOperation::REPLY);
    a.set_target_hardware_addr(sha);
    a.set_target_protocol_addr(spa);
    a.set_source_hardware_addr(MacAddr(mac));
    a.set_source_protocol_addr(tpa);
    Ok(sha.0)
}

/// ARP inside a gretap tunnel. The gateway answers requests for every
/// address but the asker's own (proxy ARP), so hosts reach everything
/// through it. A request from a host whose MAC the neighbour table already
/// holds is answered here; anything else (a host not seen yet, a reply to
/// the resolver's own request) goes to the resolver, which learns the MAC
/// and answers.
fn tunnel_arp_input<F: Frame>(
    t: &Tables,
    tenant: &Tenant,
    pe: &PortEntry,
    port: u16,
    f: &mut F,
    inner_at: usize,
    c: &WorkerCounters,
) -> Verdict {
    let (op, spa, sha) = match f.data().get(inner_at + ETH..).map(ArpPacket::new_checked) {
        Some(Ok(a)) => (
            a.operation(),
            u32::from(a.source_protocol_addr()),
            a.source_hardware_addr().0,
        ),
        _ => return Verdict::Drop(D::InnerInvalid),
    };
    // A duplicate-address probe (sender 0.0.0.0, RFC 5227) must not be
    // answered: the host would take it for a conflict.
    if spa == 0 {
        return Verdict::Drop(D::ArpNotForUs);
    }
    if !tenant.owns(spa) {
        return Verdict::Drop(D::TenantSpoof);
    }
    let known = t.neighbours.get(NeighKey::inner(tenant.id, spa)) == Lookup::Mac(sha);
    match op {
        ArpOperation::REQUEST if known => match answer_tunnel_arp(t, tenant, pe, f, inner_at) {
            Ok(()) => {
                c.arp_replies.inc();
                Verdict::Forward(port)
            }
            Err(reason) => Verdict::Drop(reason),
        },
        ArpOperation::REQUEST | ArpOperation::REPLY => punt(
            f,
            Punt::TunnelArp {
                port,
                tenant: tenant.id,
            },
            c,
        ),
        _ => Verdict::Drop(D::ArpNotForUs),
    }
}

/// Turns a proxy-ARP request inside a gretap tunnel (the frame from its
/// outer Ethernet header, the inner Ethernet at `inner_at`) into the reply,
/// in place, outer headers turned around toward the host that asked.
pub(crate) fn answer_tunnel_arp<F: Frame>(
    t: &Tables,
    tenant: &Tenant,
    pe: &PortEntry,
    f: &mut F,
    inner_at: usize,
) -> Result<(), DropReason> {
    let data = f.data_mut();
    let body = data.get_mut(inner_at + ETH..).ok_or(D::InnerInvalid)?;
    let requester = answer_arp(body, |_| true, tenant.mac)?;
    data[inner_at..inner_at + 6].copy_from_slice(&requester);
    data[inner_at + 6..inner_at + 12].copy_from_slice(&tenant.mac);
    // Outer: back to the host that asked.
    let outer_src_mac: [u8; 6] = data[6..12].try_into().unwrap_or_default();
    data[..6].copy_from_slice(&outer_src_mac);
    data[6..12].copy_from_slice(&pe.mac);
    let ip = &mut data[ETH..];
    let (src, dst): ([u8; 4], [u8; 4]) = (
        ip[12..16].try_into().unwrap_or_default(),
        ip[16..20].try_into().unwrap_or_default(),
    );
    ip[12..16].copy_from_slice(&dst);
    ip[16..20].copy_from_slice(&src);
    ip[8] = crate::tables::OUTER_TTL;
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let gre_at = ETH + ihl;
    let total = tenant_gre(f, tenant, gre_at, inner_at)?;
    let data = f.data_mut();
    Ipv4Packet::new_unchecked(&mut data[ETH..gre_at]).fill_checksum();
    if tenant.gre.any() {
        let gre = data.get_mut(gre_at..ETH + total).ok_or(D::InnerInvalid)?;
        match t.tunnel_to(tenant.id, u32::from_be_bytes(src)) {
            Some(tunnel) => t.fill_gre_options(tunnel, gre),
            // A host no route leads to has no tunnel, so no sequence
            // counter: the checksum at least.
            None => {
                GrePacket::new_unchecked(gre).fill_checksum();
            }
        }
    }
    Ok(())
}

/// Makes the GRE header between `gre_at` and `inner_at` the one tgw sends
/// into `tenant`'s tunnels: the key, and the checksum and sequence words
/// where the tenant asks for them (zero, for the caller to fill), whatever
/// the request came with (a host may send options it does not want back,
/// or the reverse). The outer headers in front move by the difference, the
/// frame shrinks or grows at the front by as much, and the outer total
/// length follows (its header checksum is the caller's); returns that
/// total length.
fn tenant_gre<F: Frame>(
    f: &mut F,
    tenant: &Tenant,
    gre_at: usize,
    inner_at: usize,
) -> Result<usize, DropReason> {
    let data = f.data();
    let (protocol, key) = {
        let g = GrePacket::new_checked(data.get(gre_at..inner_at).ok_or(D::InnerInvalid)?)
            .map_err(|_| D::InnerInvalid)?;
        (g.protocol_type(), g.key().ok_or(D::InnerInvalid)?)
    };
    let old_total = usize::from(u16::from_be_bytes([data[ETH + 2], data[ETH + 3]]));
    let repr = GreRepr {
        protocol,
        checksum: tenant.gre.checksum,
        key: Some(key),
        sequence: tenant.gre.sequence.then_some(0),
    };
    let (old, new) = (inner_at - gre_at, repr.header_len());
    if new < old {
        let shift = old - new;
        f.data_mut().copy_within(..gre_at, shift);
        if !f.adj(shift) {
            return Err(D::InnerInvalid);
        }
    } else if new > old {
        let grow = new - old;
        f.prepend(grow).ok_or(D::NoHeadroom)?;
        f.data_mut().copy_within(grow..grow + gre_at, 0);
    }
    let data = f.data_mut();
    repr.emit(&mut GrePacket::new_unchecked(
        &mut data[gre_at..gre_at + new],
    ));
    let total = (old_total + new)
        .checked_sub(old)
        .filter(|&n| n <= usize::from(u16::MAX) && ETH + n <= data.len())
        .ok_or(D::InnerInvalid)?;
    data[ETH + 2..ETH + 4].copy_from_slice(&(total as u16).to_be_bytes());
    Ok(total)
}
