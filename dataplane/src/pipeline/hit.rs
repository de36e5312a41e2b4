//! The flow-hit fast path: a plain packet of an established flow takes one
//! header pass, one lookup, one rewrite, one prepend, and is sent.
//!
//! "Plain" is what most packets of a flow are: an IPv4 header without
//! options, not a fragment, TTL above 1, a good header checksum, and a
//! TCP segment that changes no state (no SYN, FIN or RST) of an
//! established connection, a UDP datagram, or an ICMP echo. Anything else
//! — a miss, an expired flow, a packet too big for the tunnel, a tunnel
//! that changed under a reload — is left untouched to the full path,
//! which handles it and counts why. The fast path therefore decides
//! nothing the full path would decide differently: it only skips checks
//! whose answer a hit already gives (the flow was created by a packet that
//! passed them), as VPP's NAT fast path sits in front of its slow path.
//!
//! Source validation (`martian.rs`) is among those: a hit's addresses are
//! its flow's key, which passed the martian and own-address checks when a
//! packet from outside made the flow, or are the tenant's own (checked
//! against its prefixes). The exception is a hairpinned flow, whose key on
//! the public side carries the gateway's own addresses without such a
//! packet ever arriving; the public hit refuses those (`Conn::hairpin`).

use super::*;
use crate::conntrack::Answered;
use crate::wire::TcpFlags;

/// A frame as the first stage of a burst reads it ([`Pipeline::stage_public`],
/// [`Pipeline::stage_underlay`]): its bytes, and what the NIC said of it
/// — its outer IPv4 checksum, and the flow mark of a partial-offload rule.
/// A plain slice is a frame the NIC said nothing of; a worker whose NIC
/// marks frames passes `(bytes, checked, mark)` to both stages, which is
/// where marks are read ([`crate::Frame::mark`]).
pub trait Staged<'a> {
    fn bytes(&self) -> &'a [u8];
    fn checked(&self) -> crate::Checked {
        crate::Checked::Unknown
    }
    fn mark(&self) -> Option<u32> {
        None
    }
}

impl<'a> Staged<'a> for &'a [u8] {
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        self
    }
}

impl<'a> Staged<'a> for (&'a [u8], crate::Checked) {
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        self.0
    }
    #[inline(always)]
    fn checked(&self) -> crate::Checked {
        self.1
    }
}

impl<'a> Staged<'a> for (&'a [u8], crate::Checked, Option<u32>) {
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        self.0
    }
    #[inline(always)]
    fn checked(&self) -> crate::Checked {
        self.1
    }
    #[inline(always)]
    fn mark(&self) -> Option<u32> {
        self.2
    }
}

/// What the first stage of a burst learned of one frame, for the second:
/// see [`Pipeline::stage_public`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Hint(pub(super) Stage);

impl Hint {
    /// Sends a frame down the full path, past the fast path: for tests
    /// that hold the two paths to the same answers.
    pub const FULL_PATH: Hint = Hint(Stage::Full);

    /// Whether the frame may take the fast path.
    pub(super) fn fast(&self) -> bool {
        matches!(self.0, Stage::Unstaged | Stage::Plain(..))
    }

    /// Whether the staged lookup found a candidate flow for the frame:
    /// one whose slot has its key's signature, which the hit then checks
    /// is the key's and live ([`crate::flow::FlowTable::hit_at`]).
    pub fn is_hit(&self) -> bool {
        matches!(
            self.0,
            Stage::Plain(_, FlowLookup::Hit(..)) | Stage::Tunnel(_, FlowLookup::Hit(..), _)
        )
    }
}

/// What a stage learned of a frame ([`Hint`]'s). Its tag is a byte of
/// its own (`repr(u8)`), read with one compare where each
/// frame's hint is dispatched: in a niche of the fields, it was decoded
/// with a subtract and a conditional move first (callgrind: 2 instructions
/// a staged hit).
#[derive(Clone, Copy, Debug, Default)]
#[repr(u8)]
pub(super) enum Stage {
    /// Not staged: the fast path reads and looks up the frame itself.
    #[default]
    Unstaged,
    /// Not a plain packet: straight to the full path.
    Full,
    /// A plain packet, and what the staged lookup found.
    Plain(Plain, FlowLookup),
    /// A plain packet inside a tunnel, what the staged lookup found, and
    /// what the underlay stage read of its outer headers (stage.rs).
    Tunnel(Plain, FlowLookup, super::stage::Tunnelled),
}

/// What the fast path reads of a plain IPv4 packet, in one pass: of its
/// [`Tuple`], what a hit reads. A stage stores it in each frame's hint;
/// the sequence number, flags and window scale, which the header pass
/// checks and the hit never reads, are not kept (callgrind: 3 stores a
/// staged frame, and the spills of the registers that held them).
#[derive(Clone, Copy, Debug)]
pub(super) struct Plain {
    /// Its 5-tuple as the two words of its flow key in the public zone
    /// ([`FlowKey::from_wire`]): the protocol over the source address, the
    /// destination over the ports. Two loads and a mask give a hit its key.
    lo: u64,
    hi: u64,
    /// For TCP the acknowledgment number, which the connection learns
    /// for its RST check (0 otherwise).
    pub(super) ack: u32,
    /// The IPv4 total length: what follows is Ethernet padding.
    len: usize,
}

/// IPv4 version 4 with a 20-byte header: no options.
const VERSION_IHL_PLAIN: u8 = 0x45;
const IHL: usize = 20;

impl Plain {
    /// `ip` starts at an IPv4 header. `None` for anything not plain.
    /// The header's checks are the fast path's own; its tuple is read by
    /// the full path's parser ([`Tuple::with_transport`]), so that both
    /// paths key a packet alike. Inlined, so that the fields go to registers rather
    /// than through an `Option` returned in memory (a store-forwarding
    /// stall per frame).
    #[inline(always)]
    pub(super) fn parse(ip: &[u8]) -> Option<Plain> {
        let h: &[u8; IHL] = ip.get(..IHL)?.try_into().ok()?;
        let header = Ipv4Packet::new_unchecked(h);
        let len = usize::from(header.total_len());
        // Every transport header a hit takes is 8 bytes or more: said
        // first, the parser's own length checks fold into this one.
        if h[0] != VERSION_IHL_PLAIN || header.is_fragment() || header.ttl() <= 1 || len < IHL + 8 {
            return None;
        }
        let l4 = ip.get(IHL..len)?;
        if !checksum::verify_ipv4_header(h) {
            return None;
        }
        let (src, dst) = (u32::from(header.src_addr()), u32::from(header.dst_addr()));
        let tuple = Tuple::with_transport(h[9], src, dst, l4, false)?;
        // What a hit may take: a TCP segment that changes no state of an
        // established connection, a UDP datagram, an ICMP echo (the
        // parser takes no other ICMP); whole transport headers. TCP's and
        // UDP's ports are the header's first word, loaded as the key keeps
        // them; an ICMP echo's identifier stands for both, as read.
        let wire = l4.first_chunk::<4>().map_or(0, |p| u32::from_le_bytes(*p));
        let (plain, ports) = match IpProtocol(tuple.protocol) {
            IpProtocol::TCP => {
                let decides = TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK;
                (
                    tuple.flags & decides == TcpFlags::ACK && l4.len() >= 20,
                    wire,
                )
            }
            IpProtocol::UDP => (l4.len() >= 8, wire),
            IpProtocol::ICMP => (l4.len() >= 8, FlowKey::wire_ports(tuple.sport, tuple.dport)),
            _ => (false, 0),
        };
        plain.then_some(Plain {
            lo: u64::from(tuple.protocol) << 32 | u64::from(tuple.src.swap_bytes()),
            hi: u64::from(tuple.dst.swap_bytes()) << 32 | u64::from(ports),
            ack: tuple.ack,
            len,
        })
    }

    /// The tuple the parser read, less what was not kept (zero, no flags,
    /// no window scale): for what takes a [`Tuple`] and reads only its
    /// 5-tuple, such as its key.
    #[inline(always)]
    pub(super) fn tuple(&self) -> Tuple {
        let key = self.key(Zone::PUBLIC);
        Tuple {
            protocol: key.protocol(),
            src: key.src(),
            dst: key.dst(),
            sport: key.src_port(),
            dport: key.dst_port(),
            flags: TcpFlags::empty(),
            seq: 0,
            ack: self.ack,
            wscale: crate::conntrack::Scales::NONE,
            opens: self.may_open(),
        }
    }

    /// Whether it may open a flow, as far as a prefetch needs to know
    /// ([`Tuple::opens`] is not kept: only the bulk path's prefetch for a
    /// new flow asked, and its store and register cost every staged frame
    /// ~2 instructions, callgrind, docs/perf.md). A plain TCP segment
    /// carries ACK alone of the flags, never SYN: it never opens. A UDP
    /// datagram always may; an ICMP echo may (a reply never opens, which
    /// costs a needless prefetch at most).
    #[inline(always)]
    pub(super) fn may_open(&self) -> bool {
        (self.lo >> 32) as u8 != IpProtocol::TCP.0
    }

    #[inline(always)]
    pub(super) fn key(&self, zone: Zone) -> FlowKey {
        let (lo, hi) = (self.lo, self.hi);
        FlowKey::from_wire(
            zone,
            (lo >> 32) as u8,
            lo as u32,
            (hi >> 32) as u32,
            hi as u32,
        )
    }

    /// Its destination address.
    #[inline(always)]
    pub(super) fn dst(&self) -> u32 {
        ((self.hi >> 32) as u32).swap_bytes()
    }
}

impl Pipeline {
    /// The first stage of a burst received on public port `port`, before
    /// its frames are processed one by one with
    /// [`Pipeline::process_staged`]: every frame's header pass, then the
    /// flow lookups of the plain ones together, so that their cache misses
    /// overlap, with the caller's prefetch (`rte::prefetch` in the
    /// daemon); the values of the flows found are prefetched too, and so
    /// are the reply key's buckets of a flow a miss will open toward an
    /// elastic IP.
    /// `hints[i]` is the `i`th frame's, for up to [`BULK_MAX`] frames.
    /// Nothing else changes: a flow created or removed by an earlier frame
    /// of the burst is caught by the second stage, which checks the hint.
    pub fn stage_public<'a, P: Prefetch, S: Staged<'a>>(
        &self,
        t: &Tables,
        port: u16,
        frames: impl Iterator<Item = S>,
        pf: &P,
        now: u64,
        hints: &mut [Hint],
    ) {
        let public = t.ports.get(usize::from(port)).and_then(|p| p.role) == Some(Role::Public);
        if !public || !self.may_hit(t) {
            return;
        }
        // The loops run over slices cut to their length, not iterators
        // limited with `take`: a `take` over a `zip` kept a count of its
        // own beside the zip's (callgrind: 11 to 13 instructions a frame
        // with the second loop's, docs/perf.md).
        let burst = hints.len().min(BULK_MAX);
        // A table below `STAGED_FROM` flows is looked up a key at a time
        // anyway, its lines in the cache: the header pass is followed by a
        // pass that finds each plain frame's candidate into its hint (the
        // hit compares it: a compare here too cost 14 instructions a frame,
        // docs/perf.md session 17), without
        // the queue of keys, the bulk call and the pass that handed each
        // frame its answer, nor a prefetch of its value (callgrind: 28
        // instructions a frame, docs/perf.md). Not one pass: with the
        // lookup in the header pass, the table's fields and the tuple went
        // through the stack (5 more). Each answer is written where it
        // stays: written to a local and copied, its three stores fed one
        // wider load at once (a store-forwarding stall), and the copy and
        // its spills cost 13 more.
        if self.flows.len() < self.staged_from {
            for (frame, hint) in frames.zip(&mut hints[..burst]) {
                let Some(p) = read_public(frame.bytes()) else {
                    *hint = Hint(Stage::Full);
                    continue;
                };
                // A frame the NIC marked with its live flow is not looked
                // up.
                let key = p.key(Zone::PUBLIC);
                let found = frame
                    .mark()
                    .and_then(|m| by_mark(&self.flows, &self.marks, m, &key));
                *hint = Hint(Stage::Plain(p, found.unwrap_or(FlowLookup::Miss)));
            }
            for hint in &mut hints[..burst] {
                if let Hint(Stage::Plain(p, found @ FlowLookup::Miss)) = hint {
                    self.flows.candidate_cached(&p.key(Zone::PUBLIC), found);
                }
            }
            return;
        }
        let mut keys = [FlowKey::default(); BULK_MAX];
        let mut frame_of = [0u8; BULK_MAX];
        let mut n = 0;
        for (i, (frame, hint)) in frames.zip(&mut hints[..burst]).enumerate() {
            let Some(p) = read_public(frame.bytes()) else {
                *hint = Hint(Stage::Full);
                continue;
            };
            let key = p.key(Zone::PUBLIC);
            // A frame the NIC marked with its live flow is left out of the
            // lookup.
            let found =
                self.marked_or_queued(frame.mark(), key, i, &mut keys, &mut frame_of, &mut n);
            *hint = Hint(Stage::Plain(p, found));
        }
        let mut found = [FlowLookup::Miss; BULK_MAX];
        self.flows
            .candidates_with(pf, &keys[..n], now, &mut found[..n]);
        for (&i, &l) in frame_of[..n].iter().zip(&found[..n]) {
            let Some(Hint(Stage::Plain(p, f))) = hints.get_mut(usize::from(i)) else {
                continue;
            };
            *f = l;
            // A frame to an elastic IP that may open a flow: what its
            // insert will read is fetched while the burst's earlier
            // frames are processed. (A hit's value is on its way: the
            // lookup fetched it.)
            if P::INSTRUCTION && l.hit().is_none() && p.may_open() {
                if let Some((tenant, private)) = t.eips.inbound(p.dst()) {
                    if let Some(reply) = inbound_reply(&p.tuple(), tenant, private) {
                        self.flows.prefetch_insert(pf, &reply);
                    }
                }
            }
        }
    }

    /// A plain frame from the public side of a flow this worker holds:
    /// translated and tunnelled to its tenant. `None`, with the frame and
    /// the flow as they were, for the full path.
    /// Always inlined, as the stages around it: its records then stay in
    /// registers (callgrind, docs/perf.md).
    #[inline(always)]
    pub(super) fn public_hit<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        hint: &Hint,
    ) -> Option<Verdict> {
        let Cx { t, .. } = cx;
        let now = self.now;
        // The frame's slice once: a call per frame where the compiler does
        // not inline the frame's accessor.
        let data = f.data();
        // A staged frame's header pass is read where the stage left it,
        // not copied out (callgrind: 10 instructions a frame).
        let parsed;
        let (p, staged) = match &hint.0 {
            Stage::Full | Stage::Tunnel(..) => return None,
            Stage::Plain(p, found) => (p, Some(*found)),
            Stage::Unstaged => {
                parsed = Plain::parse(data.get(ETH..)?)?;
                (&parsed, None)
            }
        };
        let tail = data.len() - ETH - p.len;
        let life = &self.life;
        let key = p.key(Zone::PUBLIC);
        let hit = match staged {
            None => self.flows.hit(&key, now)?,
            Some(FlowLookup::Hit(id, dir)) => self.flows.hit_at(id, dir, &key, now)?,
            Some(_) => return None,
        };
        let conn = &mut *hit.value;
        let tcp = conn.protocol == IpProtocol::TCP.0;
        // A hairpinned flow's packets never arrive on a port: one that does
        // is spoofed, for the full path to drop (martian.rs).
        if (tcp && conn.tcp != TcpState::Established) || conn.hairpin {
            return None;
        }
        // A flow decided under an older state of its tenant is the full
        // path's to decide again (redecide.rs).
        let tenant = t.tenants.get(conn.tenant_id())?;
        let adj = tenant.tunnels.get(usize::from(conn.tunnel))?;
        if tenant.epoch != conn.epoch || p.len > usize::from(adj.inner_mtu()) {
            return None;
        }
        let tunnel = conn.tunnel_id();
        // A host that failed to resolve is answered by the full path.
        if t.neighbours.any_failed() && super::unreachable::failed_at(t, tunnel, &conn.to_tenant, f)
        {
            return None;
        }
        // Committed: from here on the packet is this path's. For TCP, the
        // row "Established, ACK" of docs/conntrack.md: learn the ACK.
        // Never a first answer: a flow whose answers arrive on the public
        // side was opened from inside, answered from the start.
        *hit.deadline = conn.on_plain(hit.dir.index(), p.ack, life, now);
        let (nat, id, hint) = (conn.to_tenant, hit.id, conn.inner);
        // A flow established both ways is offered once, on a worker that
        // offloads (offload.rs).
        let dir = hit.dir;
        if self.offload.is_some()
            && conn.offload == Offload::Unoffered
            && conn.established_both_ways(dir.index())
        {
            offload::offer(self.offload.as_deref(), &mut self.flows, cx.c, id, dir);
        }
        // Most frames carry no Ethernet padding: a trim of nothing changes
        // nothing, and is not asked for (callgrind: ~10 instructions a
        // frame; the worker drops the multi-segment frames an mbuf's
        // trim refuses before they come here).
        if !((tail == 0 || f.trim(tail)) && f.adj(ETH) && nat.forward_plain(f.data_mut())) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        // The flow remembers where its host's MAC is (gretap).
        let mut inner = hint;
        let v = self.encap(cx, adj, f, &mut inner);
        if inner != hint {
            if let Some(conn) = self.flows.get_mut(id) {
                conn.inner = inner;
            }
        }
        Some(v)
    }

    /// A plain packet of a flow this worker holds, from `tenant`'s tunnel
    /// (its outer headers checked; the inner IPv4 header `m.ip_at` bytes
    /// into the frame): decapsulated, translated and sent out of the
    /// public side. `None`, with the frame and the flow as they were, for
    /// the full path.
    #[inline]
    pub(super) fn tenant_hit<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        m: &Meta<'_>,
        tenant: &Tenant,
        f: &mut F,
    ) -> Option<Verdict> {
        let ip_at = m.ip_at;
        // An outer CE or ECT(1) mark may have to be carried inward (RFC
        // 6040 §4.2): the full path's.
        if m.outer_ecn & 1 != 0 {
            return None;
        }
        let p = Plain::parse(f.data().get(ip_at..)?)?;
        self.tenant_hit_plain(cx, (tenant.id, tenant.epoch), f, ip_at, &p, None)
    }

    /// [`Pipeline::tenant_hit`] past the header pass, which found `p` at
    /// `ip_at`, for a packet of `tenant` at `epoch` (its epoch in the
    /// burst's snapshot: a staged frame's hint holds it, so that its hit
    /// looks no tenant up); `staged` holds what the underlay stage found
    /// for it (its flow, and where its public next hop is in the stage's
    /// `Hops`), `None` when the frame was not staged. The hop is named by its
    /// index, not copied: a 40-byte hop in an `Option` went through the
    /// stack on every staged frame.
    #[inline(always)]
    pub(super) fn tenant_hit_plain<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        (tenant, epoch): (TenantId, u32),
        f: &mut F,
        ip_at: usize,
        p: &Plain,
        staged: Option<(FlowLookup, u8)>,
    ) -> Option<Verdict> {
        let Cx { t, c } = cx;
        let now = self.now;
        let tail = f.len().checked_sub(ip_at + p.len)?;
        let zone = Zone::tenant(tenant.index())?;
        let life = &self.life;
        let key = p.key(zone);
        // `staged` is matched once: the staged and unstaged hits share this
        // code in `process_staged`, so each match is a test at run time.
        let (hit, staged_hop) = match staged {
            None => (self.flows.hit(&key, now)?, None),
            Some((FlowLookup::Hit(id, dir), at)) => (
                self.flows.hit_at(id, dir, &key, now)?,
                Some(self.hops.get(at)?),
            ),
            Some(_) => return None,
        };
        let conn = &mut *hit.value;
        let tcp = conn.protocol == IpProtocol::TCP.0;
        // An unanswered flow's first answer is the full path's to note,
        // and a flow of an older epoch its to decide again.
        if (tcp && conn.tcp != TcpState::Established)
            || conn.answered != Answered::Yes
            || conn.epoch != epoch
        {
            return None;
        }
        // Toward an elastic IP, a pool address or a tenant's public prefix:
        // hairpinned, by the full path. The flow knows it from its keys
        // (`martian::hairpinned`, asked when it was made): no lookup here.
        if conn.hairpin {
            return None;
        }
        let resolved;
        let hop = match staged_hop {
            Some(hop) => hop,
            None => {
                resolved = resolve_public(t, p.dst()).ok()?;
                &resolved
            }
        };
        if p.len > usize::from(hop.mtu) {
            return None;
        }
        // Committed: from here on the packet is this path's.
        // Never a first answer: unanswered flows were refused above.
        *hit.deadline = conn.on_plain(hit.dir.index(), p.ack, life, now);
        let nat = conn.to_public;
        let (id, dir) = (hit.id, hit.dir);
        if self.offload.is_some()
            && conn.offload == Offload::Unoffered
            && conn.established_both_ways(dir.index())
        {
            offload::offer(self.offload.as_deref(), &mut self.flows, c, id, dir);
        }
        count_from_tunnel(c, tenant, p.len);
        // No trim of nothing, as in `public_hit`.
        if !(f.adj(ip_at) && (tail == 0 || f.trim(tail)) && nat.forward_plain(f.data_mut())) {
            return Some(Verdict::Drop(D::InnerInvalid));
        }
        Some(hop.send(f, c))
    }

    /// A staged frame's flow: the live flow its NIC mark names, else a
    /// miss for now, its key queued as frame `i`'s (`keys[n]`,
    /// `frame_of[n]`) for the burst's bulk lookup. Both stages' one way.
    #[inline(always)]
    pub(super) fn marked_or_queued(
        &self,
        mark: Option<u32>,
        key: FlowKey,
        i: usize,
        keys: &mut [FlowKey; BULK_MAX],
        frame_of: &mut [u8; BULK_MAX],
        n: &mut usize,
    ) -> FlowLookup {
        if let Some(found) = mark.and_then(|m| by_mark(&self.flows, &self.marks, m, &key)) {
            return found;
        }
        keys[*n] = key;
        frame_of[*n] = i as u8;
        *n += 1;
        FlowLookup::Miss
    }

    /// [`Pipeline::marked_or_queued`] for a table below `STAGED_FROM`:
    /// the flow's candidate found at once, into `found`.
    #[inline(always)]
    pub(super) fn marked_or_looked_up(
        &self,
        mark: Option<u32>,
        key: &FlowKey,
        found: &mut FlowLookup,
    ) {
        match mark.and_then(|m| by_mark(&self.flows, &self.marks, m, key)) {
            Some(marked) => *found = marked,
            None => self.flows.candidate_cached(key, found),
        }
    }
}

/// A frame from a public port as the public stage reads it: a plain
/// IPv4 packet, or `None` for the full path.
#[inline(always)]
fn read_public(data: &[u8]) -> Option<Plain> {
    // The Ethernet and IPv4 headers' length tested once: tested for the
    // ethertype and again for the IPv4 header, it was two tests
    // (callgrind, docs/perf.md).
    let h = data.get(..ETH + IHL)?;
    if h[12..14] != EtherType::IPV4.0.to_be_bytes() {
        return None;
    }
    Plain::parse(data.get(ETH..)?)
}

/// The flow NIC mark `mark` names (partial offload: its id plus one), if
/// it is that of the frame's `key`, as a lookup would have found it;
/// `None` for a stale mark (its flow gone, the id given to another),
/// which the caller looks up as usual. Counted in `marks`.
#[inline]
pub(super) fn by_mark(
    flows: &FlowTable<Conn>,
    marks: &offload::Marks,
    mark: u32,
    key: &FlowKey,
) -> Option<FlowLookup> {
    let id = FlowId::new(mark.checked_sub(1)?);
    match flows.check(id, key) {
        Some(dir) => {
            marks.hits.set(marks.hits.get() + 1);
            Some(FlowLookup::Hit(id, dir))
        }
        None => {
            marks.stale.set(marks.stale.get() + 1);
            None
        }
    }
}
