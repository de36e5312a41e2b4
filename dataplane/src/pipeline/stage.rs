//! The underlay side's burst stage: what [`Pipeline::stage_public`] does
//! for frames from the Internet, done for GRE frames from tenant hosts.
//!
//! One header pass over the burst reads, for each frame, the outer IPv4
//! header (its checksum unless the NIC verified it), the GRE header with
//! its key alone, the tenant behind the key and host (the host cache), the
//! inner Ethernet header of a gretap tunnel and the inner IPv4 packet as
//! the flow-hit fast path reads it (`hit.rs`'s `Plain`). The flows of the
//! plain ones are then looked up together, with the caller's prefetch, and
//! the values of those found prefetched; the public next hop of each hit
//! is resolved once for each run of frames to one destination, the runs'
//! routes looked up together (`Lpm::lookup_slice`). The second
//! stage (`process_staged`) then takes a hit without reading the outer
//! headers again.
//!
//! The stage reads only the common shape (outer header without options,
//! a key-only GRE header); anything else is left unstaged, to be read by
//! the full path as before, which also catches what an earlier frame of
//! the burst changed (a flow created or removed): the hit is looked up
//! again by its id and key.

use super::hit::{Plain, Stage, Staged};
use super::public::{resolve_route, PublicHop};
use super::*;
use crate::tables::Local;
use crate::Checked;

/// GRE flags and version of a header that carries the key alone (RFC
/// 2890: K set; no checksum, no sequence number, version 0).
const GRE_KEY_ONLY: [u8; 2] = [0x20, 0x00];
/// Such a header's length: flags, protocol type and key.
const GRE_KEYED: usize = 8;
/// An IPv4 header without options.
const IHL: usize = 20;

/// What the underlay stage learned of a plain GRE frame, besides its inner
/// packet: for [`Pipeline::underlay_hit`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Tunnelled {
    pub(super) tenant: TenantId,
    /// The tenant's epoch in the burst's snapshot, which the stage read
    /// the tenant from: the hit checks its flow against it without looking
    /// the tenant up again.
    pub(super) epoch: u32,
    /// Where the inner IPv4 header starts in the frame.
    pub(super) ip_at: u16,
    /// Where the public next hop toward the inner destination is in
    /// [`Hops`], for a hit ([`Hops::NONE`] for the others).
    pub(super) hop: u8,
}

/// The public next hops the last underlay stage resolved, one for each
/// run of frames to one destination, which its hints name (`None`: did
/// not resolve): kept by the pipeline between the two stages, so that a
/// hint stays small (a hop is 40 bytes, and most frames of a burst share
/// one).
#[derive(Clone, Copy, Debug)]
pub(super) struct Hops([Option<PublicHop>; BULK_MAX]);

impl Default for Hops {
    fn default() -> Self {
        Hops([None; BULK_MAX])
    }
}

impl Hops {
    /// No hop: the frame is no staged hit.
    const NONE: u8 = u8::MAX;

    pub(super) fn get(&self, i: u8) -> Option<&PublicHop> {
        self.0.get(usize::from(i))?.as_ref()
    }
}

/// How the stage read one frame.
enum Read {
    /// A plain inner packet of a tunnel whose outer headers passed every
    /// check the full path makes before its fast path.
    Plain(Plain, Tunnelled, Zone),
    /// The outer headers passed, but the fast path would refuse the
    /// frame (an inner packet that is not plain, an outer ECN mark to carry
    /// inward): the full path's alone.
    NotPlain,
    /// Anything else, for the unstaged path to read from the start.
    Other,
}

/// Whether an IPv4 header's checksum is right: not computed where the
/// NIC verified it. A checksum the NIC found wrong is computed all the
/// same (it is as rare as a wrong one), so that the fast paths, which
/// compute their own, need not ask the NIC and always agree with the
/// full path.
#[inline]
fn ipv4_checksum_ok(nic: Checked, header: &[u8; IHL]) -> bool {
    nic == Checked::Good || checksum::verify_ipv4_header(header)
}

/// [`ipv4_checksum_ok`] for the outermost IPv4 header of frame `f`.
#[inline]
pub(super) fn checksum_ok<F: Frame>(f: &F, ip: &Ipv4Packet<&[u8]>) -> bool {
    f.ipv4_checksum() == Checked::Good || ip.verify_checksum()
}

impl Pipeline {
    /// The first stage of a burst received on underlay port `port`, as
    /// [`Pipeline::stage_public`] is for public ports: one header pass,
    /// the plain frames' flows looked up together with the caller's
    /// prefetch (candidates, their values fetched with them:
    /// [`crate::flow::FlowTable::candidates_with`]) and the hits' public next hops
    /// resolved. `frames` gives each frame's bytes and what the NIC said of
    /// its outer IPv4 checksum; `hints[i]` is the `i`th frame's, for up to
    /// [`BULK_MAX`] frames.
    pub fn stage_underlay<'a, P: Prefetch, S: Staged<'a>>(
        &mut self,
        t: &Tables,
        port: u16,
        frames: impl Iterator<Item = S>,
        pf: &P,
        now: u64,
        hints: &mut [Hint],
    ) {
        let Some(pe) = t.ports.get(usize::from(port)) else {
            return;
        };
        if pe.role != Some(Role::Underlay) || self.flows.is_empty() {
            return;
        }
        let Some(local) = pe.local() else {
            // No address: nothing is sent to this port; the full path says so.
            return;
        };
        // The burst's frames are read under one set of tables.
        self.host_cache.hold(t.generation);
        let mut keys = [FlowKey::default(); BULK_MAX];
        let mut frame_of = [0u8; BULK_MAX];
        let mut n = 0;
        let mut staged = 0;
        // The hits' public next hops: frames of a burst mostly go to a few
        // destinations, so each run of one destination is resolved once
        // (`dsts[r]` is the `r`th run's), the runs' routes are looked up
        // together, and runs through the router of the run before share
        // its hop (an on-link destination is its own neighbour).
        let mut dsts = [0u32; BULK_MAX];
        let mut runs = 0;
        // The last run's destination, widened so that the first hit, whose
        // address no `u64::MAX` is, starts a run with one compare: `runs ==
        // 0 || dsts[runs - 1] != dst` tested the count and the index too.
        let mut last = u64::MAX;
        // A table below `STAGED_FROM` flows is looked up as each frame is
        // read, as in `stage_public`, and the hit's run found there too: a
        // second pass over the hints for the runs alone cost 10 instructions
        // a frame (callgrind).
        let cached = self.flows.len() < self.staged_from;
        // Slices cut to length, not `take`, as in `stage_public`.
        let burst = hints.len().min(BULK_MAX);
        for (i, (frame, hint)) in frames.zip(&mut hints[..burst]).enumerate() {
            staged = i + 1;
            // Each arm writes its own hint: merged, the three went through
            // one set of registers carried round the loop on the stack.
            let (p, tunnelled, zone) =
                match self.read_tunnelled(t, &local, frame.bytes(), frame.checked()) {
                    Read::Plain(p, tunnelled, zone) => (p, tunnelled, zone),
                    Read::NotPlain => {
                        *hint = Hint::FULL_PATH;
                        continue;
                    }
                    Read::Other => {
                        *hint = Hint::default();
                        continue;
                    }
                };
            let key = p.key(zone);
            if cached {
                // Into the hint, as in `stage_public`.
                *hint = Hint(Stage::Tunnel(p, FlowLookup::Miss, tunnelled));
                let Hint(Stage::Tunnel(p, found, tunnelled)) = hint else {
                    continue;
                };
                self.marked_or_looked_up(frame.mark(), &key, found);
                // No value prefetch: below `STAGED_FROM` the table is in
                // the cache, as `stage_public` found (with it, staged nat and
                // encap +3: the worker's frame loop was allocated again).
                if found.hit().is_none() {
                    continue;
                }
                tunnelled.hop = run_of(p.dst(), &mut dsts, &mut runs, &mut last);
                continue;
            }
            // A frame the NIC marked with its live flow is left out of the
            // lookup.
            let found =
                self.marked_or_queued(frame.mark(), key, i, &mut keys, &mut frame_of, &mut n);
            *hint = Hint(Stage::Tunnel(p, found, tunnelled));
        }
        if !cached {
            let mut found = [FlowLookup::Miss; BULK_MAX];
            self.flows
                .candidates_with(pf, &keys[..n], now, &mut found[..n]);
            // One pass over the staged hints gives the queued frames their
            // lookups (`frame_of` is in frame order, and holds tunnelled
            // frames only) and the hits their runs: two passes cost 2 more a
            // frame; a peekable iterator over the queue for the cursor, 7 more.
            let mut j = 0;
            for (i, hint) in hints[..staged].iter_mut().enumerate() {
                let Hint(Stage::Tunnel(p, f, tunnelled)) = hint else {
                    continue;
                };
                if j < n && usize::from(frame_of[j]) == i {
                    *f = found[j];
                    j += 1;
                }
                if f.hit().is_none() {
                    continue;
                }
                tunnelled.hop = run_of(p.dst(), &mut dsts, &mut runs, &mut last);
            }
        }
        self.resolve_runs(t, &dsts[..runs]);
    }

    /// Resolves the public next hop of each run of a burst's hits, `dsts`
    /// their destinations, into [`Hops`] (the `r`th run's at `r`).
    #[inline]
    fn resolve_runs(&mut self, t: &Tables, dsts: &[u32]) {
        if let [dst] = dsts {
            // The common burst: one destination, one lookup.
            self.hops.0[0] = resolve_public(t, *dst).ok();
            return;
        }
        let mut routes = [None; BULK_MAX];
        t.public_routes(dsts, &mut routes);
        let mut last_via: Option<(u32, usize)> = None;
        for (r, (&dst, &value)) in dsts.iter().zip(&routes).enumerate() {
            let route = t.public_route_of(value);
            let via = matches!(route, Some(PublicRoute::Via(_)));
            self.hops.0[r] = match last_via {
                Some((v, at)) if via && value == Some(v) => self.hops.0[at],
                _ => {
                    if via {
                        last_via = value.map(|v| (v, r));
                    }
                    resolve_route(t, dst, route).ok()
                }
            };
        }
    }

    /// Reads a frame from an underlay port of addresses `local` as far as
    /// the fast path needs, making every check the full path makes before
    /// it.
    #[inline(always)]
    fn read_tunnelled(&mut self, t: &Tables, local: &Local, data: &[u8], nic: Checked) -> Read {
        let Some(h) = data.get(..ETH + IHL + GRE_KEYED) else {
            return Read::Other;
        };
        let Some((ip, gre)) = h[ETH..].split_first_chunk::<IHL>() else {
            return Read::Other;
        };
        let word =
            |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let plain_outer = h[12..14] == EtherType::IPV4.0.to_be_bytes()
            && ip[0] == 0x45
            && ip[9] == IpProtocol::GRE.0
            && !Ipv4Packet::new_unchecked(ip).is_fragment()
            && gre[..2] == GRE_KEY_ONLY;
        if !plain_outer {
            return Read::Other;
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let Some(outer) = data
            .get(ETH..ETH + total)
            .filter(|o| o.len() >= IHL + GRE_KEYED)
        else {
            return Read::Other;
        };
        // The destination as one load (`Local::has`).
        let Some(&dst) = ip.last_chunk::<4>() else {
            return Read::Other;
        };
        if !ipv4_checksum_ok(nic, ip) || !local.has(u32::from_ne_bytes(dst)) {
            return Read::Other;
        }
        let Ok(tenant) = self
            .host_cache
            .lookup_held(&t.tenants, word(gre, 4), word(ip, 12))
        else {
            return Read::Other;
        };
        let inner_at = IHL + GRE_KEYED;
        let protocol = EtherType(u16::from_be_bytes([gre[2], gre[3]]));
        let ip_at = match (tenant.encap, protocol) {
            (Encap::Ipv4, EtherType::IPV4) => inner_at,
            (Encap::Gretap, EtherType::TRANSPARENT_ETHERNET_BRIDGING) => {
                // The MAC as four bytes and two: as six, both sides were
                // assembled into words and masked (5 instructions more).
                // No closure (`is_some_and`): the daemon's build called it
                // out of line (callgrind-worker: 9 instructions a frame).
                let Some(e) = outer.get(inner_at..inner_at + ETH) else {
                    return Read::Other;
                };
                if e[..4] != tenant.mac[..4]
                    || e[4..6] != tenant.mac[4..]
                    || e[12..14] != EtherType::IPV4.0.to_be_bytes()
                {
                    return Read::Other;
                }
                inner_at + ETH
            }
            _ => return Read::Other,
        };
        // An outer CE or ECT(1) mark may have to be carried inward (RFC
        // 6040 §4.2): the full path's, as for the unstaged fast path.
        if ip[1] & 1 != 0 {
            return Read::NotPlain;
        }
        let Some(p) = outer.get(ip_at..).and_then(Plain::parse) else {
            return Read::NotPlain;
        };
        let tunnelled = Tunnelled {
            tenant: tenant.id,
            epoch: tenant.epoch,
            ip_at: (ETH + ip_at) as u16,
            hop: Hops::NONE,
        };
        Read::Plain(p, tunnelled, tenant.zone)
    }

    /// A frame the underlay stage found plain: the flow-hit fast path,
    /// past the outer headers the stage read. `None`, with the frame and
    /// the flow as they were, for the full path.
    /// Inlined into `process_staged`: out of line, its call, prologue and
    /// epilogue cost a staged decap hit 46 instructions (callgrind,
    /// docs/perf.md), and the unstaged paths, whose hint is the default,
    /// compile the arm away.
    #[inline(always)]
    pub(super) fn underlay_hit<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        hint: &Hint,
    ) -> Option<Verdict> {
        let Hint(Stage::Tunnel(p, found, tunnelled)) = hint else {
            return None;
        };
        let whose = (tunnelled.tenant, tunnelled.epoch);
        let ip_at = usize::from(tunnelled.ip_at);
        let staged = Some((*found, tunnelled.hop));
        self.tenant_hit_plain(cx, whose, f, ip_at, p, staged)
    }
}

/// The run of one destination a hit to `dst` belongs to, the hit after
/// the burst's hits before it: a new run (its destination in
/// `dsts[runs]`) when `dst` is not the last run's. `last` is that
/// destination widened, so that the first hit, whose address no
/// `u64::MAX` is, starts a run with one compare. Loose locals, not a
/// struct: as one, its fields went through memory (staged decap +12).
#[inline(always)]
fn run_of(dst: u32, dsts: &mut [u32; BULK_MAX], runs: &mut usize, last: &mut u64) -> u8 {
    if u64::from(dst) != *last {
        *last = u64::from(dst);
        dsts[*runs] = dst;
        *runs += 1;
    }
    (*runs - 1) as u8
}
