//! ARP: on the ports for the gateway's addresses (and elastic IPs on the
//! public subnet), and inside gretap tunnels for the tenants' hosts, with
//! the tenant's GRE header on what goes back into a tunnel.

use super::*;

/// ARP on a port: a request for one of the gateway's addresses is
/// answered in place; a reply to the gateway, or an announcement, goes to
/// the resolver to learn from.
pub(super) fn arp_input<F: Frame>(
    t: &Tables,
    pe: &PortEntry,
    port: u16,
    f: &mut F,
    c: &WorkerCounters,
) -> Verdict {
    let (op, spa, tpa) = match f.data().get(ETH..).map(ArpPacket::new_checked) {
        Some(Ok(a)) => (
            a.operation(),
            u32::from(a.source_protocol_addr()),
            u32::from(a.target_protocol_addr()),
        ),
        _ => return Verdict::Drop(D::ArpNotForUs),
    };
    let reply_to_us = op == ArpOperation::REPLY && pe.is_local(tpa);
    let announcement = op == ArpOperation::REQUEST && spa == tpa && spa != 0;
    if reply_to_us || announcement {
        return punt(f, Punt::Arp { port }, c);
    }
    arp_reply(t, pe, port, f.data_mut(), c)
}

/// Answers an ARP request in place for one of the port's addresses, or for
/// an elastic IP or shared NAT address on one of the port's subnets (the
/// router in front then needs no route for them).
pub(super) fn arp_reply(
    t: &Tables,
    pe: &PortEntry,
    port: u16,
    data: &mut [u8],
    c: &WorkerCounters,
) -> Verdict {
    let Some(body) = data.get_mut(ETH..) else {
        return Verdict::Drop(D::Runt);
    };
    let ours = |tpa: u32| {
        pe.is_local(tpa)
            || (pe.role == Some(Role::Public)
                && pe.nets.iter().any(|n| n.contains(tpa))
                && (t.eips.inbound(tpa).is_some() || t.pools.of_addr(tpa).is_some()))
    };
    match answer_arp(body, ours, pe.mac) {
        Ok(requester) => {
            data[..6].copy_from_slice(&requester);
            data[6..12].copy_from_slice(&pe.mac);
            c.arp_replies.inc();
            Verdict::Forward(port)
        }
        Err(reason) => Verdict::Drop(reason),
    }
}

/// Turns an ARP request whose target passes `ours` into the reply from
/// `mac`, in place. Returns the requester's MAC.
pub(super) fn answer_arp(
    body: &mut [u8],
    ours: impl Fn(u32) -> bool,
    mac: [u8; 6],
) -> Result<[u8; 6], DropReason> {
    let mut a = ArpPacket::new_checked(body).map_err(|_| D::ArpNotForUs)?;
    let (spa, tpa) = (a.source_protocol_addr(), a.target_protocol_addr());
    if a.operation() != ArpOperation::REQUEST || !ours(u32::from(tpa)) || spa == tpa {
        return Err(D::ArpNotForUs);
    }
    let sha = a.source_hardware_addr();
    a.set_operation(ArpOperation::REPLY);
    a.set_target_hardware_addr(sha);
    a.set_target_protocol_addr(spa);
    a.set_source_hardware_addr(MacAddr(mac));
    a.set_source_protocol_addr(tpa);
    Ok(sha.0)
}

/// ARP inside a gretap tunnel. The gateway answers requests for every
/// address but the asker's own (proxy ARP), so hosts reach everything
/// through it. A request from a host whose MAC the neighbour table already
/// holds is answered here; anything else (a host not seen yet, a reply to
/// the resolver's own request) goes to the resolver, which learns the MAC
/// and answers.
pub(super) fn tunnel_arp_input<F: Frame>(
    t: &Tables,
    tenant: &Tenant,
    pe: &PortEntry,
    port: u16,
    f: &mut F,
    inner_at: usize,
    c: &WorkerCounters,
) -> Verdict {
    let (op, spa, sha) = match f.data().get(inner_at + ETH..).map(ArpPacket::new_checked) {
        Some(Ok(a)) => (
            a.operation(),
            u32::from(a.source_protocol_addr()),
            a.source_hardware_addr().0,
        ),
        _ => return Verdict::Drop(D::InnerInvalid),
    };
    // A duplicate-address probe (sender 0.0.0.0, RFC 5227) must not be
    // answered: the host would take it for a conflict.
    if spa == 0 {
        return Verdict::Drop(D::ArpNotForUs);
    }
    if !tenant.owns(spa) {
        return Verdict::Drop(D::TenantSpoof);
    }
    let known = t.neighbours.get(NeighKey::inner(tenant.id, spa)) == Lookup::Mac(sha);
    match op {
        ArpOperation::REQUEST if known => match answer_tunnel_arp(t, tenant, pe, f, inner_at) {
            Ok(()) => {
                c.arp_replies.inc();
                Verdict::Forward(port)
            }
            Err(reason) => Verdict::Drop(reason),
        },
        ArpOperation::REQUEST | ArpOperation::REPLY => punt(
            f,
            Punt::TunnelArp {
                port,
                tenant: tenant.id,
            },
            c,
        ),
        _ => Verdict::Drop(D::ArpNotForUs),
    }
}

/// Turns a proxy-ARP request inside a gretap tunnel (the frame from its
/// outer Ethernet header, the inner Ethernet at `inner_at`) into the reply,
/// in place, outer headers turned around toward the host that asked.
pub(crate) fn answer_tunnel_arp<F: Frame>(
    t: &Tables,
    tenant: &Tenant,
    pe: &PortEntry,
    f: &mut F,
    inner_at: usize,
) -> Result<(), DropReason> {
    let data = f.data_mut();
    let body = data.get_mut(inner_at + ETH..).ok_or(D::InnerInvalid)?;
    let requester = answer_arp(body, |_| true, tenant.mac)?;
    data[inner_at..inner_at + 6].copy_from_slice(&requester);
    data[inner_at + 6..inner_at + 12].copy_from_slice(&tenant.mac);
    // Outer: back to the host that asked.
    let outer_src_mac: [u8; 6] = data[6..12].try_into().unwrap_or_default();
    data[..6].copy_from_slice(&outer_src_mac);
    data[6..12].copy_from_slice(&pe.mac);
    let ip = &mut data[ETH..];
    let (src, dst): ([u8; 4], [u8; 4]) = (
        ip[12..16].try_into().unwrap_or_default(),
        ip[16..20].try_into().unwrap_or_default(),
    );
    ip[12..16].copy_from_slice(&dst);
    ip[16..20].copy_from_slice(&src);
    ip[8] = crate::tables::OUTER_TTL;
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let gre_at = ETH + ihl;
    let total = tenant_gre(f, tenant, gre_at, inner_at)?;
    let data = f.data_mut();
    Ipv4Packet::new_unchecked(&mut data[ETH..gre_at]).fill_checksum();
    if tenant.gre.any() {
        let gre = data.get_mut(gre_at..ETH + total).ok_or(D::InnerInvalid)?;
        match t.tunnel_to(tenant.id, u32::from_be_bytes(src)) {
            Some(tunnel) => t.fill_gre_options(tunnel, gre),
            // A host no route leads to has no tunnel, so no sequence
            // counter: the checksum at least.
            None => {
                GrePacket::new_unchecked(gre).fill_checksum();
            }
        }
    }
    Ok(())
}

/// Makes the GRE header between `gre_at` and `inner_at` the one tgw sends
/// into `tenant`'s tunnels: the key, and the checksum and sequence words
/// where the tenant asks for them (zero, for the caller to fill), whatever
/// the request came with (a host may send options it does not want back,
/// or the reverse). The outer headers in front move by the difference, the
/// frame shrinks or grows at the front by as much, and the outer total
/// length follows (its header checksum is the caller's); returns that
/// total length.
pub(super) fn tenant_gre<F: Frame>(
    f: &mut F,
    tenant: &Tenant,
    gre_at: usize,
    inner_at: usize,
) -> Result<usize, DropReason> {
    let data = f.data();
    let (protocol, key) = {
        let g = GrePacket::new_checked(data.get(gre_at..inner_at).ok_or(D::InnerInvalid)?)
            .map_err(|_| D::InnerInvalid)?;
        (g.protocol_type(), g.key().ok_or(D::InnerInvalid)?)
    };
    let old_total = usize::from(u16::from_be_bytes([data[ETH + 2], data[ETH + 3]]));
    let repr = GreRepr {
        protocol,
        checksum: tenant.gre.checksum,
        key: Some(key),
        sequence: tenant.gre.sequence.then_some(0),
    };
    let (old, new) = (inner_at - gre_at, repr.header_len());
    if new < old {
        let shift = old - new;
        f.data_mut().copy_within(..gre_at, shift);
        if !f.adj(shift) {
            return Err(D::InnerInvalid);
        }
    } else if new > old {
        let grow = new - old;
        f.prepend(grow).ok_or(D::NoHeadroom)?;
        f.data_mut().copy_within(grow..grow + gre_at, 0);
    }
    let data = f.data_mut();
    repr.emit(&mut GrePacket::new_unchecked(
        &mut data[gre_at..gre_at + new],
    ));
    let total = (old_total + new)
        .checked_sub(old)
        .filter(|&n| n <= usize::from(u16::MAX) && ETH + n <= data.len())
        .ok_or(D::InnerInvalid)?;
    data[ETH + 2..ETH + 4].copy_from_slice(&(total as u16).to_be_bytes());
    Ok(total)
}
