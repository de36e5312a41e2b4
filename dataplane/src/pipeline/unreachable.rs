//! ICMP host unreachable for a next hop that did not answer ARP (RFC 1812
//! 4.3.3.1 and 5.2.7.1: a router that cannot resolve the next hop of a
//! datagram answers its source "host unreachable").
//!
//! The resolver marks such a neighbour failed for a while; a worker that
//! meets the mark turns the datagram into the error instead of dropping it
//! silently, with the same builder, rate limit and quoting rules as Time
//! Exceeded (never about an ICMP error, a later fragment, or a datagram
//! from or to a broadcast or multicast address). The decision is taken
//! where the other forwarding checks are, before NAT, so that the error
//! quotes the datagram as its sender sent it and goes back the way it came
//! (into the tenant's tunnel, or out of the public side).

use super::{ip_dst, Cx, IcmpError, Pipeline, Side, Verdict, D};
use crate::nat::Rewrite;
use crate::neighbour::{Lookup, NeighKey};
use crate::tables::{Tables, TunnelId};
use crate::Frame;

/// Whether tunnel `tunnel`'s host, or the host inside it that the IPv4
/// packet `ip` goes to once translated by `nat` (toward the tenant: a
/// destination rewrite, or none), failed to resolve. Almost always no
/// neighbour is failed at all: then this is one load, inlined.
#[inline]
pub(super) fn failed(t: &Tables, tunnel: TunnelId, nat: &Rewrite, ip: &[u8]) -> bool {
    t.neighbours.any_failed() && tunnel_failed(t, tunnel, nat, ip)
}

/// [`failed`] for a frame that still has its Ethernet header, for the
/// fast path (which checks [`Neighbours::any_failed`] itself).
///
/// [`Neighbours::any_failed`]: crate::neighbour::Neighbours::any_failed
#[cold]
#[inline(never)]
pub(super) fn failed_at<F: Frame>(t: &Tables, tunnel: TunnelId, nat: &Rewrite, f: &F) -> bool {
    f.data()
        .get(super::ETH..)
        .is_some_and(|ip| ip.len() >= 20 && tunnel_failed(t, tunnel, nat, ip))
}

#[cold]
#[inline(never)]
fn tunnel_failed(t: &Tables, tunnel: TunnelId, nat: &Rewrite, ip: &[u8]) -> bool {
    let Some(adj) = t.tunnel(tunnel) else {
        return false;
    };
    if t.neighbours.get_ref(adj.neigh) == Lookup::Failed {
        return true;
    }
    if !adj.is_gretap() {
        return false;
    }
    // A rewrite toward a tenant always writes the destination; none has
    // address 0.
    let dst = match nat.addr() {
        0 => ip_dst(ip),
        private => private,
    };
    t.neighbours.get(NeighKey::inner(adj.tenant, dst)) == Lookup::Failed
}

impl Pipeline {
    /// Answers the IPv4 packet in `f` (the frame starts at its header) with
    /// host unreachable toward `side`, or drops it (`no_neighbour`) when no
    /// error may be sent: the gateway's own errors beget none
    /// (`Side::may_error`), nor do datagrams to broadcast or multicast
    /// addresses.
    #[cold]
    #[inline(never)]
    pub(super) fn unreachable<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        side: Side<'_>,
    ) -> Verdict {
        let c = cx.c;
        let dst = ip_dst(f.data());
        if !side.may_error() || dst == u32::MAX || dst >> 28 == 0xe {
            return Verdict::Drop(D::NoNeighbour);
        }
        let before = c.icmp_errors.get();
        let v = self.icmp_or_drop(cx, f, Some(IcmpError::HostUnreachable), side);
        if c.icmp_errors.get() != before {
            c.host_unreachable.inc();
        }
        v
    }
}
