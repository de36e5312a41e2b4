//! Host unreachable for the frames the resolver held when their neighbour
//! fails (RFC 1812 4.3.3.1; the workers answer the frames that come later,
//! `pipeline/unreachable.rs`).
//!
//! A held frame is finished but for a MAC: translated, TTL decremented and,
//! toward a tenant, encapsulated. As Linux does for the frames a failed
//! neighbour held (its ICMP error is built from the translated packet, and
//! conntrack translates it back as related traffic), the error is built
//! from the datagram as held and its quote translated back to what the
//! sender sent (RFC 5508 REQ-3) with what the tables know: an elastic IP is
//! a fixed mapping, a tenant's public prefix needs none. A datagram of a
//! shared source NAT address would need the port mapping, which only the
//! worker owning the flow holds: that frame is dropped, as before (counted
//! `dropped`). The error then leaves like any frame the resolver sends,
//! through the tables' routes and the same holding if a MAC is missing.

use super::{Io, Resolver, ETH};
use crate::nat::translate_quoted;
use crate::neighbour::NeighKey;
use crate::pipeline::{
    build_icmp_error, finish_outer_ipv4, may_quote, public_addr, underlay_addr, IcmpError,
};
use crate::punt::Punt;
use crate::tables::{eth_header, NextHop, PublicRoute, Role, Tables, TunnelId, GRE_AT};
use crate::tenant::Tenant;
use crate::wire::{EtherType, Ipv4Packet};
use crate::Frame;

/// Where an error about a held datagram goes.
enum Back<'t> {
    /// Out of the public side, to the sender.
    Public,
    /// Into the tunnels of this tenant, to its host.
    Tenant(&'t Tenant),
}

/// What the error needs: where the datagram starts in the held frame,
/// where the error goes, and the quoted address to translate back
/// (source or destination, and to what).
struct Plan<'t> {
    ip_at: usize,
    back: Back<'t>,
    untranslate: Option<(bool, u32)>,
}

impl<F: Frame> Resolver<F> {
    /// Turns held frame `f` (waiting as `need` says) into a host
    /// unreachable to its sender and sends it; `false` when no error may
    /// or can be sent (the frame is then dropped).
    pub(super) fn unreachable(
        &mut self,
        t: &Tables,
        mut f: F,
        need: Punt,
        now: u64,
        io: &mut impl Io<F>,
    ) -> bool {
        let Some(plan) = plan(t, &f, need) else {
            return false;
        };
        let Some(ip) = f.data().get(plan.ip_at..) else {
            return false;
        };
        let Ok(p) = Ipv4Packet::new_checked(ip) else {
            return false;
        };
        let dst = u32::from(p.dst_addr());
        let len = usize::from(p.total_len());
        if !may_quote(ip) || dst == u32::MAX || dst >> 28 == 0xe || len > ip.len() {
            return false;
        }
        if !self.icmp.take(now) {
            self.stats.unreachable_limited += 1;
            return false;
        }
        let tail = f.len() - plan.ip_at - len;
        let from = match plan.back {
            Back::Public => public_addr(t),
            Back::Tenant(_) => underlay_addr(t),
        };
        let built = from.is_some_and(|from| {
            f.adj(plan.ip_at)
                && f.trim(tail)
                && build_icmp_error(&mut f, IcmpError::HostUnreachable, from)
        });
        if !built {
            return false;
        }
        if let Some((src, addr)) = plan.untranslate {
            if !translate_quoted(&mut f.data_mut()[20..], src, addr, None) {
                return false;
            }
            if src {
                // The error goes to the private address it quotes.
                let mut ip = Ipv4Packet::new_unchecked(&mut f.data_mut()[..20]);
                ip.set_dst_addr(addr.into());
                ip.fill_checksum();
            }
        }
        let sent = match plan.back {
            Back::Public => self.send_public(t, f, now, io),
            Back::Tenant(tenant) => self.send_to_tenant(t, tenant, f, now, io),
        };
        self.stats.host_unreachable += u64::from(sent);
        sent
    }

    /// Sends the IPv4 packet in `f` out of the public side by the tables'
    /// public routes.
    fn send_public(&mut self, t: &Tables, mut f: F, now: u64, io: &mut impl Io<F>) -> bool {
        let dst = dst_of(f.data());
        let (port, header, key) = match t.public_route(dst) {
            Some(PublicRoute::Via(adj)) => (adj.port, adj.header, adj.neigh.key),
            Some(PublicRoute::OnLink(port)) => {
                let Some(pe) = t.ports.get(usize::from(port)) else {
                    return false;
                };
                let header = eth_header([0; 6], pe.mac, EtherType::IPV4);
                (port, header, NeighKey::port(port, dst))
            }
            None => return false,
        };
        let Some(h) = f.prepend(ETH) else {
            return false;
        };
        h.copy_from_slice(&header);
        self.finish(t, f, Punt::Resolve { port, key }, now, io);
        true
    }

    /// Sends the IPv4 packet in `f` into the tunnel `tenant` routes its
    /// destination to.
    fn send_to_tenant(
        &mut self,
        t: &Tables,
        tenant: &Tenant,
        mut f: F,
        now: u64,
        io: &mut impl Io<F>,
    ) -> bool {
        let dst = dst_of(f.data());
        let Some(NextHop::Tunnel(i)) = t.route(tenant, dst) else {
            return false;
        };
        let Some(adj) = tenant.tunnels.get(i as usize) else {
            return false;
        };
        let len = usize::from(adj.header_len);
        let total = (len - ETH + f.len()) as u16;
        let Some(h) = f.prepend(len) else {
            return false;
        };
        h.copy_from_slice(&adj.header[..len]);
        self.ip_id = self.ip_id.wrapping_add(1);
        finish_outer_ipv4(&mut h[ETH..ETH + 20], 0, total, self.ip_id, 0);
        if adj.gre.any() {
            if let Some(gre) = f.data_mut().get_mut(GRE_AT..) {
                let id = TunnelId {
                    tenant: tenant.id,
                    index: i,
                };
                t.fill_gre_options(id, gre);
            }
        }
        let need = if adj.is_gretap() {
            Punt::ResolveInner {
                tunnel: i,
                key: NeighKey::inner(adj.tenant, dst),
            }
        } else {
            Punt::Resolve {
                port: adj.port,
                key: adj.neigh.key,
            }
        };
        self.finish(t, f, need, now, io);
        true
    }
}

/// Where the datagram in a held frame starts, whose it is, and how the
/// error about it goes back; `None` when the tables cannot tell.
fn plan<'t, F: Frame>(t: &'t Tables, f: &F, need: Punt) -> Option<Plan<'t>> {
    let data = f.data();
    let port = match need {
        Punt::Resolve { port, .. } => t.ports.get(usize::from(port))?.role?,
        Punt::ResolveInner { .. } => Role::Underlay,
        _ => return None,
    };
    if port == Role::Public {
        // Toward the Internet, from a tenant: translated from its private
        // address if the source is an elastic IP.
        let src = src_of(data.get(ETH..)?);
        let (tenant, untranslate) = match t.eips.inbound(src) {
            Some((tenant, private)) => (tenant, Some((true, private))),
            None => (crate::tenant::TenantId(t.ingress.lookup(src)?), None),
        };
        return Some(Plan {
            ip_at: ETH,
            back: Back::Tenant(t.tenants.get(tenant)?),
            untranslate,
        });
    }
    // Into a tenant's tunnel: find the datagram under the outer headers.
    let ip = data.get(ETH..)?;
    let ihl = usize::from(ip.first()? & 0xf) * 4;
    let gre = ip.get(ihl..ihl + 4)?;
    let (flags, proto) = (gre[0], u16::from_be_bytes([gre[2], gre[3]]));
    let gre_len = 4 + 4 * [0x80u8, 0x20, 0x10]
        .iter()
        .filter(|&&b| flags & b != 0)
        .count();
    let key_at = ihl + 4 + if flags & 0x80 != 0 { 4 } else { 0 };
    let key = u32::from_be_bytes(ip.get(key_at..key_at + 4)?.try_into().ok()?);
    let tenant = t.tenants.by_key(key).filter(|_| flags & 0x20 != 0)?;
    let inner = ETH + ihl + gre_len;
    let ip_at = match EtherType(proto) {
        EtherType::TRANSPARENT_ETHERNET_BRIDGING => inner + ETH,
        EtherType::IPV4 => inner,
        _ => return None,
    };
    let datagram = data.get(ip_at..)?;
    let (src, dst) = (src_of(datagram), dst_of(datagram));
    if tenant.owns(src) {
        // East-west: between the tenant's own hosts, untranslated.
        return Some(Plan {
            ip_at,
            back: Back::Tenant(tenant),
            untranslate: None,
        });
    }
    // From the Internet: the destination was the host's elastic IP, or one
    // of the tenant's public addresses.
    let untranslate = match t.eips.outbound(tenant.id, dst) {
        Some(eip) => Some((false, eip)),
        None if t.ingress.lookup(dst) == Some(tenant.id.0) => None,
        None => return None,
    };
    Some(Plan {
        ip_at,
        back: Back::Public,
        untranslate,
    })
}

fn src_of(ip: &[u8]) -> u32 {
    ip.get(12..16)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn dst_of(ip: &[u8]) -> u32 {
    ip.get(16..20)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
