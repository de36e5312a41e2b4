//! The packet path: one frame in, one [`Verdict`] out.
//!
//! Frames from an underlay port are GRE from tenant hosts: classified by
//! key, checked (host, inner source), decapsulated, and routed in the
//! tenant's VRF — out of the public side through a flow, or back into a
//! tunnel (east-west). Frames from a public port reach a tenant only
//! through a flow, and are encapsulated toward the tunnel host.
//!
//! The stages, one module each where they have grown: input, decap,
//! routing and encap here; `session` (flows, NAT, the firewall,
//! hairpins, ICMP errors about flows); `hit` (the flow-hit fast path in
//! front); `fragment` (parking and cutting); `unreachable` (host
//! unreachable); `icmp` (echo replies and the errors the gateway
//! makes); `arp` (on the ports and inside gretap tunnels).
//!
//! Once outer headers are gone the frame is kept positioned at its IPv4
//! header, so both directions share one routing step and one ICMP-error
//! builder; Ethernet or tunnel headers are prepended in the headroom at the
//! end.

use crate::conntrack::{Answered, Conn, Scales, TcpState, Timeouts, Tuple};
use crate::counters::{DropReason, FlowProto, TenantCounters, WorkerCounters};
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
use crate::snat::{Inside, Outside, Pools, ShareCut, Snat};
use crate::steer::Steering;
use crate::tables::{
    eth_header, NextHop, PortEntry, PublicRoute, Role, Tables, TunnelAdj, TunnelId, GRE_AT,
    KEYED_GRETAP_HEADER,
};
use crate::tenant::{Encap, KeyCache, Tenant, TenantId};
use crate::wire::icmp::{self as icmpw, IcmpType};
use crate::wire::{
    checksum, ethernet, ArpOperation, ArpPacket, Error, EtherType, EthernetFrame, GrePacket,
    GreRepr, IcmpPacket, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket,
};
use crate::Frame;

pub use verdict::Verdict;

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
    /// Flows created since the last sweep: what paces the next one.
    created: usize,
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
    /// Where the sweep of flows decided under an older epoch goes on.
    stale_at: u32,
    /// Tenant slots the per-tenant state is sized for.
    tenant_slots: usize,
    /// The public next hops the underlay stage resolved for a burst.
    hops: stage::Hops,
}

pub mod admin;
mod arp;
mod encap;
mod fragment;
mod hit;
mod icmp;
mod public;
mod redecide;
mod session;
mod stage;
mod unreachable;
mod verdict;

pub(crate) use arp::answer_tunnel_arp;
use arp::*;
pub(crate) use encap::finish_outer_ipv4;
use icmp::*;
pub(crate) use icmp::{build_icmp_error, may_quote};
use session::*;

pub use fragment::FRAGMENT_LIFE_MS;
use fragment::{cut, inbound_owner, later_fragment_inside, outbound_owner, tunnel_resolved, Fit};
pub use hit::Hint;
use public::resolve_public;

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
/// Flows the periodic sweep visits per call, at least.
const SWEEP_BUDGET: usize = 64;
/// Slots the flow sweep visits for each flow created since the last
/// sweep: a worker that opens flows fast also ends them fast. With a
/// fixed budget the sweep freed at most 64 slots per TX drain (640k a
/// second), whatever the rate flows came in at: past it expired flows
/// stayed in the table until the quotas refused new ones
/// (`tgw-perf run --profile new-flows`, docs/perf.md).
const SWEEP_PER_CREATED: usize = 4;
/// The most slots one sweep visits (a bound on the pause it makes).
const SWEEP_MAX: usize = 4096;

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
            created: 0,
            timeouts: Timeouts::default(),
            hz: 1_000_000_000,
            steer: None,
            snat: Snat::default(),
            frags: Fragments::default(),
            parking: Parking::new(DEFAULT_TENANTS),
            frag_budget: Budget::new(DEFAULT_TENANTS, 1_000_000_000),
            quota: u64::MAX,
            unreplied_quota: u64::MAX,
            stale_at: 0,
            tenant_slots: 0,
            hops: stage::Hops::default(),
        }
    }

    /// Gives each of `tenants` tenants its own ICMP error limits, one for
    /// each side, at the rate [`Pipeline::new`] was given; without it (or
    /// past it) tenants share one.
    #[must_use]
    pub fn with_tenants(mut self, tenants: usize) -> Self {
        self.icmp = TenantBuckets::new(self.icmp_each, tenants);
        self.tenant_slots = tenants;
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
        let slots = self.tenant_slots;
        self.snat = Snat::new(pools, me, workers, self.flows.capacity(), slots);
        self
    }

    /// This worker's index and the number of workers, as shares of a pool
    /// are cut for it ([`Snat::cut`]).
    pub fn share_of(&self) -> (u16, u16) {
        self.steer.map_or((0, 1), |s| (s.me(), s.workers()))
    }

    /// Puts in this worker's share of pool `slot` (`None` for none), cut
    /// on the control plane after a pool changed at runtime; `cut` then
    /// holds the share replaced, for the control plane to free. Flows
    /// whose ports came from the replaced share are revoked at their next
    /// packet or sweep (redecide.rs).
    pub fn install_share(&mut self, slot: u32, cut: &mut Option<ShareCut>) -> bool {
        self.snat.install(slot, cut)
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

    /// Flows this worker's table can hold.
    pub fn flow_capacity(&self) -> usize {
        self.flows.capacity()
    }

    /// Removes a bounded number of expired flows, and of flows whose
    /// tenant was removed; the worker calls it between bursts.
    pub fn sweep(&mut self, t: &Tables, c: &WorkerCounters, now: u64) {
        let snat = &mut self.snat;
        let orphan = |conn: &Conn| t.tenants.get(conn.tenant_id()).is_none();
        let budget =
            (SWEEP_BUDGET + SWEEP_PER_CREATED * std::mem::take(&mut self.created)).min(SWEEP_MAX);
        self.flows.sweep_if(budget, now, orphan, |gone| {
            ended(snat, &t.pools, c, &gone.value);
        });
        c.sweep_passes.set(self.flows.sweep_passes());
        self.sweep_stale(t, c);
        self.frags.sweep(now, SWEEP_BUDGET);
        c.flows_in_use.set(self.flows.len() as u64);
        c.fragments_held
            .set((self.frags.len() + self.parking.len()) as u64);
        for (i, p) in t.pools.iter() {
            if let Some(tc) = c.tenant(p.tenant.index()) {
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
                match self.underlay_hit(t, c, f, now, hint) {
                    Some(v) => v,
                    None => self.underlay_input(t, c, pe, f, now, hint.fast()),
                }
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
        match t.route(tenant, dst) {
            None => Verdict::Drop(D::NoRoute),
            Some(NextHop::Blackhole) => Verdict::Drop(D::Blackhole),
            Some(NextHop::Local) => Verdict::Drop(D::LocalProtocol),
            Some(NextHop::Tunnel(index)) => {
                let i = TunnelId {
                    tenant: tenant.id,
                    index,
                };
                let Some(adj) = tenant.tunnels.get(index as usize) else {
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
                let v = self.encap(t, c, i, adj, f, &mut 0);
                cut(f, v, fit, usize::from(adj.header_len), c)
            }
            // Nothing leaves by the public side without a flow: a private
            // source never reaches the Internet, and a tenant's own public
            // address passes its firewall like any other.
            Some(NextHop::Public) => {
                if let Some(zone) = Zone::tenant(tenant.id.index()) {
                    if let Some(reason) = self.revoke_stale(t, c, f.data(), zone, now) {
                        return Verdict::Drop(reason);
                    }
                }
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

    /// Tunnels an IPv4 packet from the public side (the frame starts at its
    /// header) into tunnel `tunnel`, translated by `nat`.
    #[allow(clippy::too_many_arguments)]
    fn tunnel_entry<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        pe: &PortEntry,
        f: &mut F,
        tunnel: TunnelId,
        nat: Rewrite,
        now: u64,
    ) -> Verdict {
        let Some(adj) = t.tunnel(tunnel) else {
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
        let v = self.encap(t, c, tunnel, adj, f, &mut 0);
        cut(f, v, fit, usize::from(adj.header_len), c)
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
            if !stage::checksum_ok(f, &ip) {
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
        let ip = &f.data()[ETH..];
        if let Some(reason) = self.revoke_stale(t, c, ip, Zone::PUBLIC, now) {
            return Verdict::Drop(reason);
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
            let df = Ipv4Packet::new_unchecked(d).dont_frag();
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
        } else if Ipv4Packet::new_unchecked(d).dont_frag() {
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
    if !stage::checksum_ok(f, &ip) {
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

/// The source and destination of IPv4 packet `ip`.
fn addrs(ip: &[u8]) -> Option<(u32, u32)> {
    let a = ip.get(12..20)?;
    Some((
        u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_be_bytes([a[4], a[5], a[6], a[7]]),
    ))
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
    if ip[9] != IpProtocol::TCP.0 || Ipv4Packet::new_unchecked(&*ip).frag().is_later() {
        return;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let Some(seg) = ip.get_mut(ihl..) else { return };
    if let Ok(mut tcp) = TcpPacket::new_checked(seg) {
        crate::wire::clamp_mss(&mut tcp, mtu.saturating_sub(IP_TCP));
    }
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
