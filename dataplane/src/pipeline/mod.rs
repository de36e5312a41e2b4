//! The packet path: one frame in, one [`Verdict`] out.
//!
//! Frames from an underlay port are GRE from tenant hosts: classified by
//! key, checked (host, inner source), decapsulated, and routed in the
//! tenant's VRF — out of the public side through a flow, or back into a
//! tunnel (east-west). Frames from a public port reach a tenant only
//! through a flow, and are encapsulated toward the tunnel host.
//!
//! A frame's walk through the stages, one module each
//! (docs/packet-path.md has the diagram and each stage's drops):
//!
//! ```text
//! input      by port role and ethertype           input.rs
//!  ├─ public ── hit (fast path) ─────────────────── encap ── out
//!  │    └─ public input ── session ── route (tunnel entry) ── encap
//!  ├─ underlay staged hit (fast path) ───────────── public exit ── out
//!  │    (stage_underlay, underlay_hit)               stage.rs
//!  ├─ underlay input ── decap                       underlay.rs
//!  │    ├─ hit (fast path) ──────────────────────── public exit ── out
//!  │    └─ session ── public exit (public.rs) / hairpin ── public input
//!  │       └─ route (tenant VRF) ── encap (east-west)       route.rs
//!  └─ arp (ports, and inside gretap tunnels)        arp.rs
//! any forwarding check that fails ── icmp (errors), unreachable
//! ```
//!
//! What a stage passes on is small records rather than argument lists:
//! [`Cx`] for what the whole burst shares (tables, counters; the clock is
//! the pipeline's),
//! [`Meta`] for what the input stages learned of the frame (its port, its
//! staging hint, where the inner header is, the outer ECN), and
//! [`FromTenant`] once decap knows whose packet it is. `session` holds
//! flows, NAT, the firewall, hairpins and ICMP errors about flows;
//! `fragment` parking and cutting; `redecide` flows of an older epoch;
//! `offload` the worker's part in flow offload (offers, end notices, the
//! manager's feedback).
//!
//! Once outer headers are gone the frame is kept positioned at its IPv4
//! header, so both directions share one routing step and one ICMP-error
//! builder; Ethernet or tunnel headers are prepended in the headroom at the
//! end.

use crate::conntrack::{Answered, Conn, Lifetimes, Offload, Scales, TcpState, Timeouts, Tuple};
use crate::counters::{DropReason, FlowProto, TenantCounters, WorkerCounters};
use crate::firewall::{Direction as FwDir, Packet5};
use crate::flow::{
    CapacityError, Direction, FlowId, FlowKey, FlowTable, InsertError, Lookup as FlowLookup,
    Prefetch, Removed, Zone, BULK_MAX,
};
use crate::fragments::park::{Parking, Resume};
use crate::fragments::split::Budget;
use crate::fragments::{self, Fragments, Owner, DEFAULT_TENANTS};
use crate::ip_options;
use crate::martian::{self, Origin};
use crate::nat::{translate_quoted, Rewrite};
use crate::neighbour::{Lookup, MacCopies, NeighKey, Neighbours};
use crate::punt::Punt;
use crate::ratelimit::{TenantBuckets, TokenBucket, Toward};
use crate::snat::{Inside, Outside, Pools, ShareCut, Snat};
use crate::steer::Steering;
use crate::tables::{
    eth_header, NextHop, PortEntry, PublicRoute, Role, Tables, TunnelAdj, TunnelId, GRE_AT,
    MAX_TUNNEL_HEADER,
};
use crate::tenant::{Encap, HostCache, HostMiss, Tenant, TenantId};
use crate::wire::icmp::{self as icmpw, IcmpType};
use crate::wire::{
    checksum, ethernet, ArpOperation, ArpPacket, Error, EtherType, EthernetFrame, GrePacket,
    GreRepr, IcmpPacket, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket,
};
use crate::Frame;

pub use verdict::Verdict;

use DropReason as D;

const ETH: usize = ethernet::HEADER_LEN;

/// What every stage of a burst reads and none changes: the tables and this
/// worker's counters. Two references, which the compiler passes in two
/// registers: with the clock in it as well, the record would live in
/// memory at every call the compiler does not inline, and every frame
/// would pay its stores (callgrind, docs/perf.md). The clock is
/// the pipeline's (`Pipeline::now`).
#[derive(Clone, Copy)]
pub(super) struct Cx<'a> {
    pub(super) t: &'a Tables,
    pub(super) c: &'a WorkerCounters,
}

/// What the input stages learned of one frame, for the stages after them
/// (VPP's per-buffer opaque): set by the stage that learns it.
#[derive(Clone, Copy)]
pub(super) struct Meta<'a> {
    /// The port it came in by, and its entry.
    pub(super) port: u16,
    pub(super) pe: &'a PortEntry,
    /// What the burst's staging learned of it (the fast path's).
    pub(super) hint: &'a Hint,
    /// Where its (inner) IPv4 header starts while outer headers are on:
    /// set by decap.
    pub(super) ip_at: usize,
    /// The outer IPv4 header's ECN field (RFC 6040), from the underlay.
    pub(super) outer_ecn: u8,
}

/// A packet from a tenant's tunnel, once decap classified it: whose it
/// is, and what errors about it go back with.
#[derive(Clone, Copy)]
pub(super) struct FromTenant<'a> {
    pub(super) tenant: &'a Tenant,
    /// The MTU of the underlay port it came in by (for MSS clamping and
    /// errors).
    pub(super) underlay_mtu: u16,
    /// False for the gateway's own ICMP errors, which beget none.
    pub(super) may_error: bool,
}

/// Per-worker pipeline state: nothing in it is shared.
pub struct Pipeline {
    host_cache: HostCache,
    /// The outer next hops' MACs encap reads, kept per worker.
    macs: MacCopies,
    /// Identification of the outer headers this worker builds.
    ip_id: u16,
    icmp: TenantBuckets,
    /// This worker's flows (DESIGN.md: the only state the fast path
    /// writes).
    flows: FlowTable<Conn>,
    /// Flows created, or refused for want of room, since the last sweep:
    /// what paces the next one.
    wanted: usize,
    /// How long flows live after a packet, in ticks of `hz`.
    life: Lifetimes,
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
    /// Such flows of all tenants together.
    unreplied_total: u64,
    /// The ICMP error limit each tenant gets, per side.
    icmp_each: TokenBucket,
    /// Where the sweep of flows decided under an older epoch goes on.
    stale_at: u32,
    /// The generation of the last snapshot the sweep was given, and the
    /// pass of the sweep up to which it looks for flows of removed tenants
    /// (two whole passes after a new snapshot, as the control plane's
    /// quarantine of a removed tenant's slot counts them).
    swept_generation: u64,
    orphans_until: u64,
    /// Tenant slots the per-tenant state is sized for.
    tenant_slots: usize,
    /// TSC time of the frame in hand, set where a frame enters
    /// ([`Pipeline::process_staged`], [`Pipeline::resume`]) and read by
    /// the stages after.
    now: u64,
    /// The public next hops the underlay stage resolved for a burst.
    hops: stage::Hops,
    /// Live flows from which the stages queue a burst's keys for one bulk
    /// lookup; below, each frame's flow is looked up as it is read
    /// ([`crate::flow::STAGED_FROM`], [`Pipeline::with_staged_from`]).
    staged_from: usize,
    /// This worker's queues to the offload manager, when it offloads
    /// (offload.rs).
    offload: Option<std::sync::Arc<crate::offload::queue::Link>>,
    /// Frames whose NIC mark named their flow, and stale marks, since the
    /// last sweep (the stages that count them borrow the pipeline
    /// shared).
    marks: offload::Marks,
}

pub mod admin;
mod arp;
mod encap;
mod fragment;
mod hit;
mod icmp;
mod input;
mod offload;
mod public;
mod redecide;
mod route;
mod session;
mod stage;
mod underlay;
mod unreachable;
mod verdict;

pub(crate) use arp::answer_tunnel_arp;
use arp::*;
pub(crate) use encap::finish_outer_ipv4;
use icmp::*;
pub(crate) use icmp::{build_icmp_error, may_quote, underlay_addr, IcmpError};
use input::check_local_ipv4;
use route::{clamp_syn, tunnel_inner_mtu};
use session::*;

pub use fragment::FRAGMENT_LIFE_MS;
use fragment::{cut, inbound_owner, later_fragment_inside, outbound_owner, tunnel_resolved, Fit};
pub use hit::{Hint, Staged};
pub use offload::FEEDBACK_BUDGET;
pub(crate) use public::public_addr;
use public::{public_port, resolve_public, Exit};

/// Flows a pipeline made with [`Pipeline::new`] holds.
pub const DEFAULT_FLOWS: usize = 4096;
/// Flows the periodic sweep visits per call, at least.
const SWEEP_BUDGET: usize = 64;
/// Slots the flow sweep visits for each flow created, or refused for want
/// of room, since the last sweep: a worker that opens flows fast also ends
/// them fast. With a fixed budget the sweep freed at most 64 slots per TX
/// drain (640k a second), whatever the rate flows came in at: past it
/// expired flows stayed in the table until the quotas refused new ones
/// (`tgw-perf run --profile new-flows`, docs/perf.md). Refusals count too:
/// paced by the flows created alone, the sweep of a full table slowed to
/// its base budget as soon as it met a stretch of live flows, nothing was
/// created while it crawled through them (3 s for the 2M long flows of a
/// 4M table at 64 slots a drain), and the expired flows beyond them went
/// on refusing new ones: the profile's rate was that crawl's.
const SWEEP_PER_WANTED: usize = 4;
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
            host_cache: HostCache::default(),
            macs: MacCopies::default(),
            ip_id: worker.wrapping_mul(0x9e37),
            icmp: TenantBuckets::new(icmp, 0),
            icmp_each: icmp,
            flows: FlowTable::new(DEFAULT_FLOWS).unwrap_or_else(|_| unreachable!()),
            wanted: 0,
            life: Lifetimes::new(&Timeouts::default(), 1_000_000_000),
            hz: 1_000_000_000,
            steer: None,
            snat: Snat::default(),
            frags: Fragments::default(),
            parking: Parking::new(DEFAULT_TENANTS),
            frag_budget: Budget::new(DEFAULT_TENANTS, 1_000_000_000),
            quota: u64::MAX,
            unreplied_quota: u64::MAX,
            unreplied_total: u64::MAX,
            stale_at: 0,
            swept_generation: 0,
            orphans_until: 0,
            tenant_slots: 0,
            now: 0,
            hops: stage::Hops::default(),
            staged_from: crate::flow::STAGED_FROM,
            offload: None,
            marks: offload::Marks::default(),
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

    /// Limits the inbound flows nobody inside answered yet, of all tenants
    /// together, to `total` on this worker (`[flows] unreplied_total`,
    /// half the table by default): each tenant's share alone let spoofed
    /// SYNs toward a few tenants fill the whole table, and every tenant's
    /// new flows, outbound too, were refused. Past half of it, new ones
    /// live `Timeouts::unreplied` at most until answered, as past half a
    /// tenant's share.
    #[must_use]
    pub fn with_unreplied_total(mut self, total: u64) -> Self {
        self.unreplied_total = total.max(1);
        self
    }

    /// Has the stages queue a burst's keys for one bulk lookup from
    /// `flows` live flows on ([`crate::flow::STAGED_FROM`] by default, where the
    /// table's own bulk lookup starts its stages): for tests, which hold
    /// both ways of a stage to the full path with a few flows.
    #[must_use]
    pub fn with_staged_from(mut self, flows: usize) -> Self {
        self.staged_from = flows;
        self
    }

    /// Sizes this worker's copies of the MACs encap reads (tunnels' next
    /// hops, hosts inside gretap tunnels) for the neighbour table `n`: one
    /// for each of its slots, both regions, up to
    /// [`crate::neighbour::MAX_MAC_COPIES`].
    #[must_use]
    pub fn with_neighbours(mut self, n: &Neighbours) -> Self {
        self.macs = MacCopies::for_table(n);
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
        self.hz = hz.max(1);
        self.life = Lifetimes::new(&timeouts, self.hz);
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
        let link = self.offload.as_deref();
        let budget =
            (SWEEP_BUDGET + SWEEP_PER_WANTED * std::mem::take(&mut self.wanted)).min(SWEEP_MAX);
        let on_removed = |gone: Removed<Conn>| {
            ended(snat, &t.pools, c, &gone.value);
            offload::removed(link, c, &gone);
        };
        // A tenant can only have been removed in a new snapshot: the flows
        // of removed tenants are looked for (each visited flow's Conn read
        // and its tenant looked up) for two whole passes after one, not at
        // every visit.
        if t.generation != self.swept_generation {
            self.swept_generation = t.generation;
            self.orphans_until = self.flows.sweep_passes() + 2;
        }
        if self.flows.sweep_passes() < self.orphans_until {
            let orphan = |conn: &Conn| t.tenants.get(conn.tenant_id()).is_none();
            self.flows.sweep_if(budget, now, orphan, on_removed);
        } else {
            self.flows.sweep(budget, now, on_removed);
        }
        c.sweep_passes.set(self.flows.sweep_passes());
        self.marks.flush(c);
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
}

/// Prepends the punt header and counts the frame as punted.
fn punt<F: Frame>(f: &mut F, why: Punt, c: &WorkerCounters) -> Verdict {
    if !why.write(f) {
        return Verdict::Drop(D::NoHeadroom);
    }
    c.punted.inc();
    Verdict::Punt
}

/// The source and destination of IPv4 packet `ip`.
fn addrs(ip: &[u8]) -> Option<(u32, u32)> {
    let a = ip.get(12..20)?;
    Some((
        u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_be_bytes([a[4], a[5], a[6], a[7]]),
    ))
}

/// The IPv4 header the frame (or `ip`) starts at, read through the wire
/// view; its accessors are inlined.
#[inline]
fn ipv4(ip: &[u8]) -> Ipv4Packet<&[u8]> {
    Ipv4Packet::new_unchecked(ip)
}

/// [`ipv4`] over the fixed header alone, as an array: its fields then cost
/// no bounds checks. `None` for a frame too short to hold one, which the
/// stages before have refused.
#[inline]
fn ipv4_fixed(ip: &[u8]) -> Option<Ipv4Packet<&[u8; 20]>> {
    Some(Ipv4Packet::new_unchecked(ip.get(..20)?.try_into().ok()?))
}

/// The checked IPv4 view the routing stages take: the fixed header the
/// frame starts at, copied out once (20 bytes), so that reading its fields
/// needs no further checks and no borrow of the frame, which the stage then
/// rewrites. `None` for a frame too short to hold one, which the stages
/// before have refused (the stage drops it `ipv4_invalid` rather than
/// reading past its end). Read before the stage rewrites the header.
#[inline]
fn ipv4_header(ip: &[u8]) -> Option<Ipv4Packet<[u8; 20]>> {
    Some(Ipv4Packet::new_unchecked(ip.get(..20)?.try_into().ok()?))
}

#[inline]
fn ip_src(ip: &[u8]) -> u32 {
    u32::from(ipv4(ip).src_addr())
}

#[inline]
fn ip_dst(ip: &[u8]) -> u32 {
    u32::from(ipv4(ip).dst_addr())
}
