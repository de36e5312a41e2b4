//! The neighbour resolver: ARP for next hops, on the control plane.
//!
//! Workers never wait for ARP. A frame whose next hop has no MAC yet is
//! built all the same and punted ([`crate::punt`]); the resolver holds a few
//! such frames per neighbour, asks, and when the answer comes publishes the
//! MAC in the shared [`Neighbours`](crate::neighbour::Neighbours) table,
//! finishes the held frames and sends them. From then on the workers find
//! the MAC themselves.
//!
//! Each neighbour the resolver knows goes through the states of RFC 1122
//! 2.3.2.1 in the shape Linux gives them: *incomplete* (asking, frames
//! held), *reachable* (learned, trusted for `reachable_ms`), *probe* (still
//! used as it is while a unicast request confirms it) and *failed* (not
//! answered `retries` times: workers drop without asking, for the same
//! time again, then the slate is clean). A probed neighbour that does not
//! answer is forgotten; the next frame toward it starts over.
//!
//! Hosts inside gretap tunnels are resolved the same way, with the request
//! carried through the tenant's tunnel. The resolver also learns those
//! hosts from the requests they send, and answers those requests (proxy
//! ARP), which the workers leave to it until the host is known.
//!
//! From replies and announcements on a port, only neighbours already in
//! the table are learned (RFC 826 merges, it does not add): those asked
//! for, and the next hops of the tables, never static ones. A stranger on
//! the segment cannot fill the table.
//!
//! **Held frames are mbufs out of the pool every port receives into**, so
//! their number is bounded three ways: `max_pending` per neighbour,
//! `max_held` in all, and `held_per_tenant` for the frames of one tenant
//! (a frame is its tenant's when it waits for a host inside its tunnels,
//! or carries its addresses or its GRE key). A quarter of `max_held` is
//! kept for frames of no tenant (the public side's and the gateway's own):
//! tenants together hold at most the rest. Every refusal is counted by its
//! cause; the pool-size check of the configuration counts `max_held`.

use std::collections::{HashMap, VecDeque};

mod unreachable;

use crate::fragments::split::split;
use crate::neighbour::{Lookup, NeighKey, NeighbourWriter, Refusals};
use crate::pipeline::{answer_tunnel_arp, finish_outer_ipv4};
use crate::punt::Punt;
use crate::ratelimit::TokenBucket;
use crate::tables::{eth_header, Role, Tables, TunnelId, GRE_AT};
use crate::tenant::TenantId;
use crate::wire::{
    ethernet, ArpOperation, ArpPacket, ArpRepr, EtherType, GrePacket, Ipv4Addr, MacAddr,
};
use crate::Frame;

const ETH: usize = ethernet::HEADER_LEN;
/// An ARP request padded to Ethernet's minimum frame (without FCS).
const ARP_FRAME_LEN: usize = 60;

/// The resolver's timers and limits (the daemon's `[arp]` section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// How long a learned MAC is trusted before it is confirmed again.
    pub reachable_ms: u64,
    /// Between two requests for the same neighbour.
    pub retry_ms: u64,
    /// Requests sent before giving up on a neighbour.
    pub retries: u32,
    /// Frames held per neighbour while it resolves; more are dropped.
    pub max_pending: usize,
    /// Frames held in all, every neighbour and tenant together.
    pub max_held: usize,
    /// Frames one tenant's traffic may have held at once.
    pub held_per_tenant: usize,
    /// Host-unreachable errors about held frames, per second and in a
    /// burst (as one worker's `[icmp]` limit).
    pub icmp_per_sec: u32,
    pub icmp_burst: u32,
}

impl ResolverConfig {
    /// Held frames kept for no tenant's traffic: tenants together hold at
    /// most `max_held` minus this, and frames of no tenant at most
    /// `max_held` minus as many, kept for the tenants.
    pub fn held_reserved(&self) -> usize {
        self.max_held / 4
    }
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            reachable_ms: 300_000,
            retry_ms: 1000,
            retries: 3,
            max_pending: 8,
            max_held: 1024,
            held_per_tenant: 128,
            icmp_per_sec: 1000,
            icmp_burst: 50,
        }
    }
}

/// What the resolver has done, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// ARP requests sent, broadcast or unicast.
    pub requests: u64,
    /// MACs learned or confirmed.
    pub learned: u64,
    /// Neighbours that never answered.
    pub failed: u64,
    /// Learned neighbours forgotten after failing to confirm.
    pub expired: u64,
    /// Held frames sent once their neighbour resolved.
    pub released: u64,
    /// Held frames whose neighbour failed, answered with ICMP host
    /// unreachable to their sender.
    pub host_unreachable: u64,
    /// Of the others, those the rate limit kept from an answer.
    pub unreachable_limited: u64,
    /// Frames dropped: held too many, or their neighbour failed and no
    /// error could be sent.
    pub dropped: u64,
    /// Of those: their neighbour held `max_pending` frames already.
    pub hold_neighbour_full: u64,
    /// Of those: `max_held` frames were held already.
    pub hold_full: u64,
    /// Of those: tenants' frames filled all but the reserved share.
    pub hold_tenants_full: u64,
    /// Of those: frames of no tenant (the gateway's own, toward the
    /// public side or the underlay) filled all but the tenants' share.
    pub hold_ports_full: u64,
    /// Of those: their tenant had `held_per_tenant` frames held.
    pub hold_tenant_limit: u64,
    /// Of those: their neighbour had failed.
    pub hold_failed: u64,
    /// Neighbours that found no room in the table.
    pub table_full: u64,
    /// Those refusals by cause (the table's share of the ports, of the
    /// tenants, one tenant's limit, a full pair of buckets).
    pub table: Refusals,
    /// Replies and announcements about neighbours nobody asked for.
    pub ignored: u64,
    /// Proxy-ARP replies sent inside tunnels.
    pub proxy_replies: u64,
    /// Punted frames that did not parse.
    pub malformed: u64,
    /// Datagrams too big for their next hop cut into fragments, the
    /// fragments sent, and the datagrams that could not be cut (no buffer,
    /// or not a packet to cut).
    pub fragmented: u64,
    pub fragments: u64,
    pub fragment_failed: u64,
}

/// How the resolver gets frames to build requests in, and sends frames.
pub trait Io<F> {
    /// An empty frame with headroom, or `None` if none can be had.
    fn alloc(&mut self) -> Option<F>;
    /// Sends `f` out of `port`.
    fn send(&mut self, port: u16, f: F);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Incomplete { sent: u32, next: u64 },
    Reachable { mac: [u8; 6], until: u64 },
    Probe { mac: [u8; 6], sent: u32, next: u64 },
    Failed { until: u64 },
}

/// Where a MAC was learned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// An ARP reply or announcement on a port: learned only for a
    /// neighbour in the table.
    Reply,
    /// A tenant's host, speaking ARP in its tunnel (behind `tunnel`): it
    /// passed the tunnel's host and source checks, so it is learned.
    Host { tunnel: Option<u32> },
}

/// Whose traffic a held frame is, for the limits on held frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Share {
    /// The public side's, the underlay's or the gateway's own.
    Ports,
    Tenant(TenantId),
}

/// Why a frame was not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotHeld {
    Neighbour,
    Full,
    Tenants,
    Ports,
    Tenant,
    Failed,
}

struct Entry<F> {
    state: State,
    /// Frames waiting for this neighbour, with what they still need and
    /// whose they are.
    pending: VecDeque<(F, Punt, Share)>,
    /// For a host inside a tenant's tunnels: the tunnel it was last seen
    /// behind (requests go there; flooded to every host of the tenant
    /// until one is known).
    tunnel: Option<u32>,
}

/// The resolver. One per gateway, on the control plane.
pub struct Resolver<F> {
    writer: NeighbourWriter,
    entries: HashMap<NeighKey, Entry<F>>,
    cfg: ResolverConfig,
    stats: ResolverStats,
    /// Identification of the tunnel packets the resolver sends.
    ip_id: u16,
    /// Limits the host-unreachable errors, on the millisecond clock.
    icmp: TokenBucket,
    /// Frames held in all, of all tenants, and per tenant.
    held: usize,
    held_tenants: usize,
    held_by_tenant: HashMap<TenantId, usize>,
}

impl<F: Frame> Resolver<F> {
    pub fn new(writer: NeighbourWriter, cfg: ResolverConfig) -> Self {
        Resolver {
            writer,
            entries: HashMap::new(),
            cfg,
            stats: ResolverStats::default(),
            ip_id: 0x8000,
            icmp: TokenBucket::new(cfg.icmp_per_sec, cfg.icmp_burst, 1000),
            held: 0,
            held_tenants: 0,
            held_by_tenant: HashMap::new(),
        }
    }

    /// The table's writer, to build tables with.
    pub fn writer(&mut self) -> &mut NeighbourWriter {
        &mut self.writer
    }

    pub fn stats(&self) -> &ResolverStats {
        &self.stats
    }

    /// Neighbours being resolved or known, static ones not included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Frames held, waiting for their neighbours.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Frames of `tenant`'s traffic held.
    pub fn held_by(&self, tenant: TenantId) -> usize {
        self.held_by_tenant.get(&tenant).copied().unwrap_or(0)
    }

    /// Lets go of next hops no adjacency holds any more and of a removed
    /// tenant's hosts, static or learned (a change at runtime): their
    /// entries go, frames they held are dropped (counted), and their slots
    /// are free for others, so that neither the table's share nor a new
    /// tenant given the slot inherits them.
    pub fn release(&mut self, keys: &[NeighKey], tenants: &[TenantId]) {
        let mut gone: Vec<NeighKey> = keys.to_vec();
        if !tenants.is_empty() {
            let theirs = |k: &NeighKey| k.as_inner().is_some_and(|t| tenants.contains(&t));
            gone.extend(self.entries.keys().copied().filter(theirs));
            gone.extend(
                self.writer
                    .entries()
                    .into_iter()
                    .map(|(k, _, _)| k)
                    .filter(theirs),
            );
        }
        for key in gone {
            if let Some(e) = self.entries.remove(&key) {
                self.stats.dropped += e.pending.len() as u64;
                for (_, _, share) in e.pending {
                    self.unhold(share);
                }
            }
            self.writer.release(key);
        }
    }

    /// Takes a frame a worker punted, at time `now` (milliseconds).
    pub fn punted(&mut self, t: &Tables, mut f: F, now: u64, io: &mut impl Io<F>) {
        match Punt::read(&mut f) {
            Some(why @ Punt::Resolve { key, .. }) | Some(why @ Punt::ResolveInner { key, .. }) => {
                self.hold(t, key, f, why, now, io)
            }
            Some(Punt::Arp { port }) => self.port_arp(t, port, &f, now, io),
            Some(Punt::TunnelArp { port, tenant }) => self.tunnel_arp(t, port, tenant, f, now, io),
            Some(Punt::Fragment { port, prefix, mtu }) => {
                match split(&f, port, usize::from(prefix), mtu, io) {
                    Ok(pieces) => {
                        self.stats.fragmented += 1;
                        self.stats.fragments += pieces as u64;
                    }
                    Err(_) => self.stats.fragment_failed += 1,
                }
            }
            None => self.stats.malformed += 1,
        }
    }

    /// Runs the timers: retries, confirmations, expiry.
    pub fn poll(&mut self, t: &Tables, now: u64, io: &mut impl Io<F>) {
        let due: Vec<NeighKey> = self
            .entries
            .iter()
            .filter(|(_, e)| now >= due_at(e.state))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let retry = now + self.cfg.retry_ms;
            match e.state {
                State::Incomplete { sent, .. } if sent >= self.cfg.retries => {
                    self.writer.set_failed(key);
                    self.stats.failed += 1;
                    e.state = State::Failed {
                        until: now + self.cfg.retry_ms * u64::from(self.cfg.retries),
                    };
                    // Their senders learn why (RFC 1812 4.3.3.1).
                    let pending = std::mem::take(&mut e.pending);
                    for (f, need, share) in pending {
                        self.unhold(share);
                        if !self.unreachable(t, f, need, now, io) {
                            self.stats.dropped += 1;
                        }
                    }
                }
                State::Incomplete { sent, .. } => {
                    e.state = State::Incomplete {
                        sent: sent + 1,
                        next: retry,
                    };
                    self.request(t, key, None, now, io);
                }
                State::Reachable { mac, .. } => {
                    e.state = State::Probe {
                        mac,
                        sent: 1,
                        next: retry,
                    };
                    self.request(t, key, Some(mac), now, io);
                }
                State::Probe { sent, .. } if sent >= self.cfg.retries => {
                    self.forget(key);
                    self.stats.expired += 1;
                }
                State::Probe { mac, sent, .. } => {
                    e.state = State::Probe {
                        mac,
                        sent: sent + 1,
                        next: retry,
                    };
                    self.request(t, key, Some(mac), now, io);
                }
                State::Failed { .. } => self.forget(key),
            }
        }
    }

    /// Holds `f` until `key` resolves, asking for it if nobody has yet;
    /// `need` says where the MAC goes.
    fn hold(&mut self, t: &Tables, key: NeighKey, f: F, need: Punt, now: u64, io: &mut impl Io<F>) {
        if let Lookup::Mac(_) = self.writer.get(key) {
            // Learned since the worker looked.
            return self.finish(t, f, need, now, io);
        }
        let tunnel = match need {
            Punt::ResolveInner { tunnel, .. } => Some(tunnel),
            _ => None,
        };
        let new = !self.entries.contains_key(&key);
        if new {
            if self.writer.claim(key).is_err() {
                self.table_full();
                self.stats.dropped += 1;
                return;
            }
            self.entries.insert(
                key,
                Entry {
                    state: State::Incomplete {
                        sent: 1,
                        next: now + self.cfg.retry_ms,
                    },
                    pending: VecDeque::new(),
                    tunnel,
                },
            );
        }
        let share = share_of(t, key, need, &f);
        let refused = self.room(key, share);
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        match refused {
            Some(why) => {
                self.stats.dropped += 1;
                let s = &mut self.stats;
                *match why {
                    NotHeld::Neighbour => &mut s.hold_neighbour_full,
                    NotHeld::Full => &mut s.hold_full,
                    NotHeld::Tenants => &mut s.hold_tenants_full,
                    NotHeld::Ports => &mut s.hold_ports_full,
                    NotHeld::Tenant => &mut s.hold_tenant_limit,
                    NotHeld::Failed => &mut s.hold_failed,
                } += 1;
            }
            None => {
                e.pending.push_back((f, need, share));
                e.tunnel = e.tunnel.or(tunnel);
                self.held += 1;
                if let Share::Tenant(t) = share {
                    self.held_tenants += 1;
                    *self.held_by_tenant.entry(t).or_insert(0) += 1;
                }
            }
        }
        if new {
            self.request(t, key, None, now, io);
        }
    }

    /// Why a frame of `share` may not wait for `key` (an entry), if so.
    fn room(&self, key: NeighKey, share: Share) -> Option<NotHeld> {
        let e = self.entries.get(&key)?;
        if matches!(e.state, State::Failed { .. }) {
            return Some(NotHeld::Failed);
        }
        if e.pending.len() >= self.cfg.max_pending {
            return Some(NotHeld::Neighbour);
        }
        if self.held >= self.cfg.max_held {
            return Some(NotHeld::Full);
        }
        // Each side keeps a quarter from the other: the gateway's own
        // frames (errors toward clients an Internet sender names, among
        // them) once took all of it, and tenants' frames found none.
        let kept = self.cfg.held_reserved();
        let Share::Tenant(t) = share else {
            let ports = self.held.saturating_sub(self.held_tenants);
            return (ports >= self.cfg.max_held - kept).then_some(NotHeld::Ports);
        };
        if self.held_tenants >= self.cfg.max_held - kept {
            return Some(NotHeld::Tenants);
        }
        (self.held_by(t) >= self.cfg.held_per_tenant).then_some(NotHeld::Tenant)
    }

    /// Drops the entry of `key` (and anything it still held) and retires
    /// its slot.
    fn forget(&mut self, key: NeighKey) {
        if let Some(e) = self.entries.remove(&key) {
            self.stats.dropped += e.pending.len() as u64;
            for (_, _, share) in e.pending {
                self.unhold(share);
            }
        }
        self.writer.retire(key);
    }

    /// A held frame of `share` left (sent, or dropped).
    fn unhold(&mut self, share: Share) {
        self.held = self.held.saturating_sub(1);
        if let Share::Tenant(t) = share {
            self.held_tenants = self.held_tenants.saturating_sub(1);
            if let Some(n) = self.held_by_tenant.get_mut(&t) {
                *n -= 1;
                if *n == 0 {
                    self.held_by_tenant.remove(&t);
                }
            }
        }
    }

    /// A neighbour found no room in the table: counted, with its cause.
    fn table_full(&mut self) {
        self.stats.table_full += 1;
        self.stats.table = self.writer.refusals().clone();
    }

    /// Writes the MAC `need` asks for into `f` and sends it, or holds it
    /// again for the next neighbour it needs.
    fn finish(&mut self, t: &Tables, mut f: F, need: Punt, now: u64, io: &mut impl Io<F>) {
        let (key, at, next) = match need {
            Punt::Resolve { key, .. } => (key, 0, None),
            Punt::ResolveInner { tunnel, key } => {
                let Some(adj) = inner_tunnel(key, tunnel).and_then(|id| t.tunnel(id)) else {
                    self.stats.dropped += 1;
                    return;
                };
                let then = Punt::Resolve {
                    port: adj.port,
                    key: adj.neigh.key,
                };
                (key, usize::from(adj.header_len) - ETH, Some(then))
            }
            _ => return,
        };
        let mac = match self.writer.get(key) {
            Lookup::Mac(mac) => mac,
            Lookup::Unresolved => return self.hold(t, key, f, need, now, io),
            Lookup::Failed => {
                self.stats.dropped += 1;
                return;
            }
        };
        match f.data_mut().get_mut(at..at + 6) {
            Some(dst) => dst.copy_from_slice(&mac),
            None => {
                self.stats.dropped += 1;
                return;
            }
        }
        if let Punt::ResolveInner { tunnel, key } = need {
            // The inner MAC is under the GRE checksum, which was summed
            // with it zero; the sequence number stays the one taken.
            let checksum = inner_tunnel(key, tunnel)
                .and_then(|id| t.tunnel(id))
                .is_some_and(|a| a.gre.checksum);
            if checksum {
                if let Some(gre) = f.data_mut().get_mut(GRE_AT..) {
                    GrePacket::new_unchecked(gre).fill_checksum();
                }
            }
        }
        match (next, need) {
            (Some(outer), _) => self.finish(t, f, outer, now, io),
            (None, Punt::Resolve { port, .. }) => {
                self.stats.released += 1;
                io.send(port, f);
            }
            _ => {}
        }
    }

    /// Learns `mac` for `key`, and sends what waited for it.
    fn learn(
        &mut self,
        t: &Tables,
        key: NeighKey,
        mac: [u8; 6],
        from: Source,
        now: u64,
        io: &mut impl Io<F>,
    ) {
        let tunnel = match from {
            Source::Host { tunnel } => tunnel,
            Source::Reply => None,
        };
        if !self.entries.contains_key(&key) {
            if from == Source::Reply && !self.writer.learnable(key) {
                self.stats.ignored += 1;
                return;
            }
            if self.writer.claim(key).is_err() {
                self.table_full();
                return;
            }
            self.entries.insert(
                key,
                Entry {
                    state: State::Failed { until: 0 },
                    pending: VecDeque::new(),
                    tunnel,
                },
            );
        }
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.state = State::Reachable {
            mac,
            until: now + self.cfg.reachable_ms,
        };
        e.tunnel = tunnel.or(e.tunnel);
        let pending = std::mem::take(&mut e.pending);
        self.writer.set(key, mac);
        self.stats.learned += 1;
        for (f, need, share) in pending {
            self.unhold(share);
            self.finish(t, f, need, now, io);
        }
    }

    /// An ARP reply or announcement received on `port`.
    fn port_arp(&mut self, t: &Tables, port: u16, f: &F, now: u64, io: &mut impl Io<F>) {
        let Some(arp) = f.data().get(ETH..).and_then(parse_arp) else {
            self.stats.malformed += 1;
            return;
        };
        let key = NeighKey::port(port, u32::from(arp.source_protocol_addr));
        self.learn(t, key, arp.source_hardware_addr.0, Source::Reply, now, io);
    }

    /// ARP inside a gretap tunnel: learn the host, answer its request.
    fn tunnel_arp(
        &mut self,
        t: &Tables,
        port: u16,
        tenant: TenantId,
        mut f: F,
        now: u64,
        io: &mut impl Io<F>,
    ) {
        let Some((inner_at, outer_src, arp)) = parse_tunnel_arp(f.data()) else {
            self.stats.malformed += 1;
            return;
        };
        let (Some(ten), Some(pe)) = (t.tenants.get(tenant), t.ports.get(usize::from(port))) else {
            self.stats.malformed += 1;
            return;
        };
        // The worker checked that the sender belongs to the tenant.
        let key = NeighKey::inner(tenant, u32::from(arp.source_protocol_addr));
        let tunnel = t.tunnel_to(tenant, outer_src).map(|id| id.index);
        self.learn(
            t,
            key,
            arp.source_hardware_addr.0,
            Source::Host { tunnel },
            now,
            io,
        );
        if arp.operation == ArpOperation::REQUEST
            && answer_tunnel_arp(t, ten, pe, &mut f, inner_at).is_ok()
        {
            self.stats.proxy_replies += 1;
            io.send(port, f);
        }
    }

    /// Sends an ARP request for `key`: broadcast, or unicast to `mac` to
    /// confirm a known neighbour.
    fn request(
        &mut self,
        t: &Tables,
        key: NeighKey,
        mac: Option<[u8; 6]>,
        now: u64,
        io: &mut impl Io<F>,
    ) {
        if let Some(port) = key.as_port() {
            let Some(pe) = t.ports.get(usize::from(port)) else {
                return;
            };
            // Ask from the address on the neighbour's subnet, so that it
            // can answer (RFC 1812 4.3.2.6 asks the same of ICMP sources).
            let spa = pe
                .addrs
                .iter()
                .zip(&pe.nets)
                .find(|(_, n)| n.contains(key.ip()))
                .map(|(a, _)| *a)
                .or_else(|| pe.primary())
                .unwrap_or(0);
            let Some(f) = self.arp_request(mac, pe.mac, spa, key.ip(), io) else {
                return;
            };
            self.stats.requests += 1;
            io.send(port, f);
        } else if let Some(tenant) = key.as_inner() {
            let Some(ten) = t.tenants.get(tenant) else {
                return;
            };
            // A tenant has one tunnel a host: ask in the one the host
            // answered from, or in all.
            let known = self.entries.get(&key).and_then(|e| e.tunnel);
            let tunnels: Vec<u32> = match known {
                Some(i) => vec![i],
                None => (0..ten.tunnels.len() as u32).collect(),
            };
            for &index in &tunnels {
                let i = TunnelId { tenant, index };
                // A probe's sender address is 0.0.0.0 (RFC 5227): the
                // gateway has no address inside the tenant to give.
                let Some(f) = self.arp_request(mac, ten.mac, 0, key.ip(), io) else {
                    return;
                };
                self.stats.requests += 1;
                self.send_in_tunnel(t, i, f, now, io);
            }
        }
    }

    /// An ARP request frame from `sha`/`spa` for `tpa`.
    fn arp_request(
        &mut self,
        dst: Option<[u8; 6]>,
        sha: [u8; 6],
        spa: u32,
        tpa: u32,
        io: &mut impl Io<F>,
    ) -> Option<F> {
        let mut f = io.alloc()?;
        let h = f.prepend(ARP_FRAME_LEN)?;
        h.fill(0);
        h[..ETH].copy_from_slice(&eth_header(dst.unwrap_or([0xff; 6]), sha, EtherType::ARP));
        ArpRepr {
            operation: ArpOperation::REQUEST,
            source_hardware_addr: MacAddr(sha),
            source_protocol_addr: Ipv4Addr::from(spa),
            target_hardware_addr: MacAddr(dst.unwrap_or([0; 6])),
            target_protocol_addr: Ipv4Addr::from(tpa),
        }
        .emit(&mut ArpPacket::new_unchecked(&mut h[ETH..]));
        Some(f)
    }

    /// Wraps an Ethernet frame in tunnel `tunnel`'s outer headers and sends
    /// it, or holds it while the outer neighbour resolves.
    fn send_in_tunnel(
        &mut self,
        t: &Tables,
        tunnel: TunnelId,
        mut f: F,
        now: u64,
        io: &mut impl Io<F>,
    ) {
        let Some(adj) = t.tunnel(tunnel) else {
            return;
        };
        let outer = usize::from(adj.header_len) - ETH;
        let total = (f.len() + outer - ETH) as u16;
        let Some(h) = f.prepend(outer) else {
            return;
        };
        h.copy_from_slice(&adj.header[..outer]);
        self.ip_id = self.ip_id.wrapping_add(1);
        finish_outer_ipv4(&mut h[ETH..ETH + 20], 0, total, self.ip_id, 0);
        if adj.gre.any() {
            if let Some(gre) = f.data_mut().get_mut(GRE_AT..) {
                t.fill_gre_options(tunnel, gre);
            }
        }
        let outer_hop = Punt::Resolve {
            port: adj.port,
            key: adj.neigh.key,
        };
        self.finish(t, f, outer_hop, now, io);
    }
}

/// Whose traffic frame `f`, waiting for `key`, is: the tenant of a host
/// inside tunnels; else the tenant whose address it comes from (toward the
/// public side) or whose GRE key it carries (toward the underlay); else
/// nobody's.
fn share_of<F: Frame>(t: &Tables, key: NeighKey, need: Punt, f: &F) -> Share {
    if let Some(tenant) = key.as_inner() {
        return Share::Tenant(tenant);
    }
    let Punt::Resolve { port, .. } = need else {
        return Share::Ports;
    };
    let ip = f.data().get(ETH..).unwrap_or_default();
    let word = |at: usize| {
        ip.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let tenant = match t.ports.get(usize::from(port)).and_then(|p| p.role) {
        Some(Role::Public) => word(12).and_then(|src| {
            t.eips
                .inbound(src)
                .map(|(tenant, _)| tenant)
                .or_else(|| t.pools.of_addr(src).map(|(_, p)| p.tenant))
                .or_else(|| t.ingress.lookup(src).map(TenantId))
        }),
        Some(Role::Underlay) => {
            // The key follows GRE's flags and protocol, after a checksum
            // if there is one (RFC 2890); tgw's own tunnels have none.
            let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0xf) * 4;
            let flags = ip.get(ihl).copied().unwrap_or(0);
            let at = ihl + 4 + if flags & 0x80 != 0 { 4 } else { 0 };
            (flags & 0x20 != 0)
                .then(|| word(at))
                .flatten()
                .and_then(|k| t.tenants.by_key(k))
                .map(|ten| ten.id)
        }
        None => None,
    };
    tenant.map_or(Share::Ports, Share::Tenant)
}

/// The tunnel a [`Punt::ResolveInner`] names: `index` among the tunnels
/// of `key`'s tenant.
fn inner_tunnel(key: NeighKey, index: u32) -> Option<TunnelId> {
    Some(TunnelId {
        tenant: key.as_inner()?,
        index,
    })
}

/// When an entry in `state` next needs attention.
fn due_at(state: State) -> u64 {
    match state {
        State::Incomplete { next, .. } | State::Probe { next, .. } => next,
        State::Reachable { until, .. } | State::Failed { until } => until,
    }
}

fn parse_arp(body: &[u8]) -> Option<ArpRepr> {
    ArpRepr::parse(&ArpPacket::new_checked(body).ok()?).ok()
}

/// A punted gretap ARP frame: where its inner Ethernet starts, the outer
/// source (the host), and the ARP packet.
fn parse_tunnel_arp(data: &[u8]) -> Option<(usize, u32, ArpRepr)> {
    let ip = data.get(ETH..)?;
    let ihl = usize::from(*ip.first()? & 0xf) * 4;
    let outer_src = u32::from_be_bytes(ip.get(12..16)?.try_into().ok()?);
    let gre = GrePacket::new_checked(ip.get(ihl..)?).ok()?;
    let inner_at = ETH + ihl + gre.header_len();
    let arp = parse_arp(data.get(inner_at + ETH..)?)?;
    Some((inner_at, outer_src, arp))
}
