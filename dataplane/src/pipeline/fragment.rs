//! The pipeline's side of fragments ([`crate::fragments`]): the ports of a
//! later fragment, the first fragment remembered once its flow let it pass,
//! later fragments parked until their first comes and resumed after, and
//! datagrams too big for their next hop punted to be cut.

use super::{Cx, FromTenant, Pipeline, Verdict, D};
use crate::conntrack::Tuple;
use crate::counters::DropReason;
use crate::counters::WorkerCounters;
use crate::flow::Zone;
use crate::fragments::park::{self, Parking, Resume};
use crate::fragments::split::Budget;
use crate::fragments::{piece_of, FragError, FragKey, Fragments, Owner, Piece};
use crate::martian::Origin;
use crate::neighbour::{Lookup, NeighKey};
use crate::punt::Punt;
use crate::tables::{NextHop, Tables, TunnelAdj};
use crate::tenant::{Tenant, TenantId};
use crate::Frame;

/// How long a datagram's later fragments may trail its first, in
/// milliseconds. Its entry is freed as soon as the whole datagram went
/// through; this bounds how long a datagram that never completes (lost
/// pieces, or a flood of first fragments) holds its owner's share.
pub const FRAGMENT_LIFE_MS: u64 = 2000;

/// Whether a packet fits the MTU of its next hop, or is to be cut to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fit {
    Whole,
    Cut(u16),
}

impl Pipeline {
    /// Keys the fragment cache's hash with `seed` (the daemon draws it at
    /// random when it starts) and counts `tenants` tenants apart in the
    /// fragment cache, the parking and the fragmentation budget. Call it
    /// after [`Pipeline::with_flows`], whose clock it uses.
    #[must_use]
    pub fn with_fragments(mut self, seed: u64, tenants: usize) -> Self {
        self.frags = Fragments::new(seed, tenants);
        self.parking = Parking::new(tenants);
        self.frag_budget = Budget::new(tenants, self.hz);
        self
    }

    /// Datagrams whose first fragment went through and whose later ones
    /// are still expected.
    pub fn fragments_held(&self) -> usize {
        self.frags.len()
    }

    pub(crate) fn parking(&self) -> &Parking {
        &self.parking
    }

    pub(crate) fn parking_mut(&mut self) -> &mut Parking {
        &mut self.parking
    }

    fn ticks_ms(&self, ms: u64) -> u64 {
        self.hz.saturating_mul(ms) / 1000
    }

    /// The tuple of IPv4 packet `ip` in `zone`, `None` for what flows do
    /// not track. A later fragment gets the ports its first had; before its
    /// first it is parked (as `owner`'s, asked only then, to resume at
    /// `resume`), or dropped if it cannot be.
    pub(super) fn fragment_tuple(
        &mut self,
        c: &WorkerCounters,
        zone: Zone,
        ip: &[u8],
        owner: impl FnOnce() -> Option<Owner>,
        resume: Resume,
        now: u64,
    ) -> Result<Option<Tuple>, Verdict> {
        let Some(piece) = piece_of(ip) else {
            return Ok(Tuple::parse(ip));
        };
        // A first fragment is remembered only once its flow let it pass
        // (`first_passed`).
        if piece.is_first() {
            return Ok(Tuple::parse(ip));
        }
        let Some(key) = frag_key(zone, ip, &piece) else {
            return Ok(None);
        };
        match self.frags.later(key, &piece, now) {
            Ok((sport, dport)) => Ok(Tuple::of_fragment(ip, sport, dport)),
            Err(FragError::Orphan | FragError::Full) => {
                let Some(owner) = owner() else {
                    return Err(Verdict::Drop(D::FragmentOrphan));
                };
                let deadline = now.saturating_add(self.ticks_ms(park::LIFE_MS));
                match self.parking.park(key, owner, resume, deadline) {
                    Some(spot) => {
                        c.fragments_parked.inc();
                        Err(Verdict::Park(spot as u16))
                    }
                    None => Err(Verdict::Drop(D::FragmentParkFull)),
                }
            }
            Err(e) => Err(Verdict::Drop(reason(e))),
        }
    }

    /// A packet of `tuple` in `zone` passed its flow (and, for a new one,
    /// the firewall): if it is a first fragment, its ports are remembered
    /// for the rest of its datagram, as `owner`'s, and the fragments of it
    /// that came early are released.
    pub(super) fn first_passed(
        &mut self,
        zone: Zone,
        ip: &[u8],
        tuple: &Tuple,
        owner: Owner,
        now: u64,
    ) -> Result<(), Verdict> {
        let Some(piece) = piece_of(ip).filter(Piece::is_first) else {
            return Ok(());
        };
        let Some(key) = frag_key(zone, ip, &piece) else {
            return Ok(());
        };
        let deadline = now.saturating_add(self.ticks_ms(FRAGMENT_LIFE_MS));
        let ports = (tuple.sport, tuple.dport);
        if let Err(e) = self.frags.first(key, owner, ports, &piece, now, deadline) {
            return Err(Verdict::Drop(reason(e)));
        }
        self.parking.release(&key);
        Ok(())
    }

    /// Runs a parked fragment on from where it stopped; see
    /// [`park::Parked::run`].
    pub(crate) fn resume<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        resume: Resume,
        now: u64,
    ) -> Verdict {
        c.fragments_released.inc();
        self.now = now;
        let cx = Cx { t, c };
        match resume {
            Resume::Public => match t.ports.get(usize::from(f.in_port())) {
                Some(pe) => self.public_input(cx, pe, f, Origin::Gateway),
                None => Verdict::Drop(D::NoEgress),
            },
            Resume::Tenant {
                tenant,
                underlay_mtu,
            } => {
                let Some(tenant) = t.tenants.get(tenant) else {
                    return Verdict::Drop(D::FragmentOrphan);
                };
                let from = FromTenant {
                    tenant,
                    underlay_mtu,
                    may_error: true,
                };
                match self.tenant_flow(cx, from, f) {
                    Some(v) => v,
                    None => self.route_tenant(cx, from, f),
                }
            }
        }
    }

    /// Whether a packet too big for its next hop may be punted to be cut:
    /// its next hop must be resolved (the pieces leave without waiting),
    /// and its tenant and the worker must have budget left.
    pub(super) fn may_cut(&mut self, resolved: bool, tenant: u32, now: u64) -> Result<(), Verdict> {
        if !resolved {
            return Err(Verdict::Drop(D::NeedsFragmentation));
        }
        if !self.frag_budget.take(tenant, now) {
            return Err(Verdict::Drop(D::FragmentBudget));
        }
        Ok(())
    }
}

/// The verdict for a frame finished although it does not `fit`: one ready
/// to leave is punted to be cut, its IPv4 packet after `prefix` bytes of
/// headers.
pub(super) fn cut<F: Frame>(
    f: &mut F,
    v: Verdict,
    fit: Fit,
    prefix: usize,
    c: &WorkerCounters,
) -> Verdict {
    let (Fit::Cut(mtu), Verdict::Forward(port)) = (fit, v) else {
        return v;
    };
    let Ok(prefix) = u16::try_from(prefix) else {
        return Verdict::Drop(D::NeedsFragmentation);
    };
    let v = super::punt(f, Punt::Fragment { port, prefix, mtu }, c);
    if v == Verdict::Punt {
        c.punted_to_fragment.inc();
    }
    v
}

/// Whether tunnel `adj`'s host (and, inside a gretap tunnel, the inner
/// destination of `ip`) is resolved.
pub(super) fn tunnel_resolved(t: &Tables, adj: &TunnelAdj, ip: &[u8]) -> bool {
    let outer = matches!(t.neighbours.get_ref(adj.neigh), Lookup::Mac(_));
    let inner = !adj.is_gretap()
        || matches!(
            t.neighbours
                .get(NeighKey::inner(adj.tenant, super::ip_dst(ip))),
            Lookup::Mac(_)
        );
    outer && inner
}

/// The owner of a fragment from the Internet to `dst`: the tenant behind
/// the elastic IP or shared NAT address, or whose public address it is.
pub(super) fn inbound_owner(t: &Tables, dst: u32) -> Option<Owner> {
    let tenant = match (t.eips.inbound(dst), t.pools.of_addr(dst)) {
        (Some((tenant, _)), _) => tenant.0,
        (None, Some((_, pool))) => pool.tenant.0,
        (None, None) => t.ingress.lookup(dst)?,
    };
    Some(Owner {
        tenant,
        inbound: true,
    })
}

/// Whether `ip` from `tenant` is a later fragment routed to one of the
/// tenant's own hosts: flows only go to the public side, so, as its first
/// fragment did, it goes on without one.
pub(super) fn later_fragment_inside(t: &Tables, tenant: &Tenant, ip: &[u8]) -> bool {
    if piece_of(ip).is_none_or(|p| p.is_first()) {
        return false;
    }
    t.route(tenant, super::ip_dst(ip)) != Some(NextHop::Public)
}

/// The owner of a tenant's own fragment.
pub(super) fn outbound_owner(tenant: TenantId) -> Owner {
    Owner {
        tenant: tenant.0,
        inbound: false,
    }
}

/// The drop reason of a fragment refused for `e`.
pub(super) fn reason(e: FragError) -> DropReason {
    match e {
        FragError::Orphan => D::FragmentOrphan,
        FragError::Limit => D::FragmentLimit,
        FragError::Full => D::FragmentCacheFull,
        FragError::TooLong => D::FragmentTooLong,
        FragError::TinyFirst => D::FragmentTinyFirst,
        FragError::HeaderOverlap => D::FragmentHeaderOverlap,
        FragError::Overlap => D::FragmentOverlap,
        FragError::Duplicate => D::FragmentDuplicate,
    }
}

fn frag_key(zone: Zone, ip: &[u8], piece: &Piece) -> Option<FragKey> {
    let (src, dst) = super::addrs(ip)?;
    Some(FragKey {
        zone: zone.get(),
        protocol: *ip.get(9)?,
        src,
        dst,
        ident: piece.ident,
    })
}
