//! The public exit stage: a tenant's packet leaves by the public side,
//! translated by its flow, toward the public route's next hop or a
//! neighbour on a public subnet.

use super::*;

impl Pipeline {
    /// Sends an IPv4 packet of `exit.tenant` (the frame starts at its
    /// header) out of the public side, translated by `exit.nat`.
    pub(super) fn public_exit<F: Frame>(
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
}

/// The next hop toward a public destination.
#[derive(Clone, Copy, Debug)]
pub(super) struct PublicHop {
    port: u16,
    /// Complete unless `pending` says whose MAC is missing.
    header: [u8; ETH],
    pub(super) mtu: u16,
    pending: Option<Punt>,
}

impl PublicHop {
    /// Prepends the Ethernet header to an IPv4 packet ready to leave, and
    /// sends it, or punts it to wait for the neighbour's MAC.
    pub(super) fn send<F: Frame>(&self, f: &mut F, c: &WorkerCounters) -> Verdict {
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

pub(super) fn resolve_public(t: &Tables, dst: u32) -> Result<PublicHop, DropReason> {
    resolve_route(t, dst, t.public_route(dst))
}

/// [`resolve_public`] with the route already looked up (stage.rs looks a
/// burst's up together).
#[inline]
pub(super) fn resolve_route(
    t: &Tables,
    dst: u32,
    route: Option<PublicRoute>,
) -> Result<PublicHop, DropReason> {
    let (port, mut header, mtu, neighbour, key) = match route.ok_or(D::NoRoute)? {
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
