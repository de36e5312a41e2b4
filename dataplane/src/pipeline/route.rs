//! The routing stage: a tenant's packet routed in its VRF (into another
//! of its tunnels, east-west, or refused toward the public side without
//! a flow), and a public packet of a flow entering its tenant's tunnel;
//! both pass the forwarding checks (TTL, size against the next hop) and
//! have a SYN's MSS clamped before the encap stage.

use super::*;

/// IPv4 + TCP headers without options, for MSS arithmetic.
const IP_TCP: u16 = 40;

impl Pipeline {
    /// Routes an IPv4 packet (the frame starts at its header) in the VRF of
    /// the tenant it came from.
    pub(super) fn route_tenant<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        from: FromTenant<'_>,
        f: &mut F,
    ) -> Verdict {
        let Cx { t, c } = cx;
        let now = self.now;
        let tenant = from.tenant;
        let Some(ip) = ipv4_header(f.data()) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        match t.route(tenant, u32::from(ip.dst_addr())) {
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
                let fit = match self.forward_checks(&ip, f.len(), adj.inner_mtu(), from.may_error) {
                    Ok(fit) => fit,
                    Err(e) => return self.icmp_or_drop(cx, f, e, Side::Tenant(from)),
                };
                if fit != Fit::Whole {
                    let resolved = tunnel_resolved(t, adj, f.data());
                    if let Err(v) = self.may_cut(resolved, adj.tenant.0, now) {
                        return v;
                    }
                }
                if unreachable::failed(t, i, &Rewrite::default(), f.data()) {
                    return self.unreachable(cx, f, Side::Tenant(from));
                }
                if t.mss_clamp {
                    clamp_syn(f.data_mut(), adj.inner_mtu());
                }
                // Untranslated: forwarding is the TTL alone.
                if !Rewrite::default().forward(f.data_mut(), ip.header_len()) {
                    return Verdict::Drop(D::TtlExceeded);
                }
                let v = self.encap(cx, adj, f, &mut 0);
                cut(f, v, fit, usize::from(adj.header_len), c)
            }
            // Nothing leaves by the public side without a flow: a private
            // source never reaches the Internet, and a tenant's own public
            // address passes its firewall like any other.
            Some(NextHop::Public) => {
                if let Some(zone) = Zone::tenant(tenant.id.index()) {
                    if let Some(reason) = self.revoke_stale(cx, f.data(), zone) {
                        return Verdict::Drop(reason);
                    }
                }
                let src = u32::from(ip.src_addr());
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
    pub(super) fn tunnel_entry<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        tunnel: TunnelId,
        nat: Rewrite,
    ) -> Verdict {
        let Cx { t, c } = cx;
        let now = self.now;
        let Some(adj) = t.tunnel(tunnel) else {
            return Verdict::Drop(D::NoRoute);
        };
        let side = Side::Public(adj.tenant);
        let Some(ip) = ipv4_header(f.data()) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        // Errors quote the packet as the client sent it: before NAT.
        let fit = match self.forward_checks(&ip, f.len(), adj.inner_mtu(), true) {
            Ok(fit) => fit,
            Err(e) => return self.icmp_or_drop(cx, f, e, side),
        };
        if unreachable::failed(t, tunnel, &nat, f.data()) {
            return self.unreachable(cx, f, side);
        }
        if !nat.forward(f.data_mut(), ip.header_len()) {
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
        let v = self.encap(cx, adj, f, &mut 0);
        cut(f, v, fit, usize::from(adj.header_len), c)
    }

    /// TTL and size, before packet `ip` (`len` bytes) is forwarded: a
    /// packet too big for `mtu` with DF is refused, one without is to be
    /// cut (RFC 791).
    pub(super) fn forward_checks(
        &self,
        ip: &Ipv4Packet<[u8; 20]>,
        len: usize,
        mtu: u16,
        may_error: bool,
    ) -> Result<Fit, Option<IcmpError>> {
        if ip.ttl() <= 1 {
            return Err(may_error.then_some(IcmpError::TimeExceeded));
        }
        if len > usize::from(mtu) {
            let df = ip.dont_frag();
            return match (df, may_error) {
                (false, _) => Ok(Fit::Cut(mtu)),
                (true, true) => Err(Some(IcmpError::FragNeeded(mtu))),
                (true, false) => Err(None),
            };
        }
        Ok(Fit::Whole)
    }
}

/// The inner MTU of a tenant's tunnels over an underlay port of `mtu`.
pub(super) fn tunnel_inner_mtu(tenant: &Tenant, mtu: u16) -> u16 {
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
pub(super) fn clamp_syn(ip: &mut [u8], mtu: u16) {
    // A later fragment's payload is no TCP header.
    let header = ipv4(ip);
    if header.protocol() != IpProtocol::TCP || header.frag().is_later() {
        return;
    }
    let ihl = header.header_len();
    let Some(seg) = ip.get_mut(ihl..) else { return };
    if let Ok(mut tcp) = TcpPacket::new_checked(seg) {
        crate::wire::clamp_mss(&mut tcp, mtu.saturating_sub(IP_TCP));
    }
}
