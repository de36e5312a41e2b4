//! The public stages. Input: a packet from the Internet side is checked
//! (header, martians, fragments, options), answered if it is for the
//! gateway, handed to the worker that owns its connection, or given to
//! its flow (session.rs) — nothing reaches a tenant otherwise. Exit: a
//! tenant's packet leaves by the public side, translated by its flow,
//! toward the public route's next hop or a neighbour on a public subnet.

use super::*;

/// Where a tenant's packet leaves by the public side, and how.
pub(super) struct Exit<'t> {
    pub(super) from: FromTenant<'t>,
    pub(super) nat: Rewrite,
}

impl Pipeline {
    /// From the Internet side: to the gateway, or into a tenant.
    pub(super) fn public_input<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        pe: &PortEntry,
        f: &mut F,
        origin: Origin,
    ) -> Verdict {
        let Cx { t, c } = cx;
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
            if origin == Origin::Gateway {
                f.set_in_port(f.in_port() | input::TURNED_AROUND);
            }
            return Verdict::Handoff(owner);
        }
        // Counted by the worker that goes on with it.
        if let Some(carried) = options {
            c.count_options(carried);
        }
        if let Some(v) = self.public_flow(cx, f, origin) {
            return v;
        }
        let ip = &f.data()[ETH..];
        if let Some(reason) = self.revoke_stale(cx, ip, Zone::PUBLIC) {
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

    /// Sends an IPv4 packet of `exit.from`'s tenant (the frame starts at
    /// its header) out of the public side, translated by `exit.nat`.
    pub(super) fn public_exit<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        exit: &Exit<'_>,
        f: &mut F,
    ) -> Verdict {
        let Cx { t, c } = cx;
        let now = self.now;
        let from = exit.from;
        let Some(ip) = ipv4_header(f.data()) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        let hop = match resolve_public(t, u32::from(ip.dst_addr())) {
            Ok(hop) => hop,
            Err(D::NoNeighbour) => return self.unreachable(cx, f, Side::Tenant(from)),
            Err(reason) => return Verdict::Drop(reason),
        };
        // Errors quote the packet as the tenant sent it: before NAT.
        let fit = match self.forward_checks(&ip, f.len(), hop.mtu, from.may_error) {
            Ok(fit) => fit,
            Err(e) => return self.icmp_or_drop(cx, f, e, Side::Tenant(from)),
        };
        if fit != Fit::Whole {
            if let Err(v) = self.may_cut(hop.pending.is_none(), from.tenant.id.0, now) {
                return v;
            }
        }
        if t.mss_clamp {
            // Replies come back through the tunnel: what the tenant
            // announces must fit inside it.
            clamp_syn(
                f.data_mut(),
                tunnel_inner_mtu(from.tenant, from.underlay_mtu),
            );
        }
        if !exit.nat.forward(f.data_mut(), ip.header_len()) {
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
    /// sends it, or punts it to wait for the neighbour's MAC. Inlined:
    /// out of line, the call and its spills were half of its ~29
    /// instructions a frame on the underlay side's hit (callgrind).
    #[inline(always)]
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

/// The first public port.
pub(super) fn public_port(t: &Tables) -> Option<(u16, &PortEntry)> {
    t.ports
        .iter()
        .enumerate()
        .find(|(_, p)| p.role == Some(Role::Public))
        .map(|(i, p)| (i as u16, p))
}

/// The gateway's address as the source of errors toward the public side:
/// its first public address.
pub(crate) fn public_addr(t: &Tables) -> Option<u32> {
    t.ports
        .iter()
        .find(|p| p.role == Some(Role::Public))
        .and_then(PortEntry::primary)
}
