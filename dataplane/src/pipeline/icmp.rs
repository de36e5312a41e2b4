//! ICMP the gateway answers and generates itself: echo replies to its
//! own addresses, and the errors (time exceeded, fragmentation needed,
//! host unreachable) built in place of the packet they are about.

use super::*;

/// TTL of what the gateway itself sends.
const LOCAL_TTL: u8 = 64;
/// RFC 1812 4.3.2.3: an ICMP error quotes as much of the original as fits
/// in 576 bytes.
const ICMP_ERROR_MAX: usize = 576;

/// ICMP errors the pipeline can generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpError {
    TimeExceeded,
    FragNeeded(u16),
    /// The next hop did not answer ARP (`unreachable.rs`).
    HostUnreachable,
}

/// Which side a generated ICMP error goes back to, and for which tenant's
/// traffic (whose rate limit it spends).
#[derive(Clone, Copy)]
pub(super) enum Side<'t> {
    Public(TenantId),
    Tenant(FromTenant<'t>),
}

impl Side<'_> {
    /// Whether an error may be sent about the packet: never about the
    /// gateway's own errors; anything from the public side may.
    pub(super) fn may_error(&self) -> bool {
        match self {
            Side::Public(_) => true,
            Side::Tenant(from) => from.may_error,
        }
    }
}

impl Pipeline {
    /// Turns the packet into the ICMP error `e` and sends it back where it
    /// came from, or drops it if no error may be sent.
    pub(super) fn icmp_or_drop<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        e: Option<IcmpError>,
        side: Side<'_>,
    ) -> Verdict {
        let Cx { t, c } = cx;
        let now = self.now;
        let Some(ip) = ipv4_header(f.data()) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        let reason = if e == Some(IcmpError::HostUnreachable) {
            D::NoNeighbour
        } else if ip.ttl() <= 1 {
            D::TtlExceeded
        } else if ip.dont_frag() {
            D::TooBig
        } else {
            D::NeedsFragmentation
        };
        let Some(e) = e else {
            return Verdict::Drop(reason);
        };
        let (tenant, toward) = match side {
            Side::Tenant(from) => (from.tenant.id, Toward::Tenant),
            Side::Public(tenant) => (tenant, Toward::Public),
        };
        if !may_quote(f.data()) || !self.icmp.take(tenant.index(), toward, now) {
            return Verdict::Drop(reason);
        }
        let src = match side {
            Side::Tenant(_) => underlay_addr(t),
            Side::Public(_) => public_addr(t),
        };
        let Some(src) = src else {
            return Verdict::Drop(reason);
        };
        if !build_icmp_error(f, e, src) {
            return Verdict::Drop(reason);
        }
        c.icmp_errors.inc();
        match side {
            // The gateway's own error begets none.
            Side::Tenant(from) => self.route_tenant(
                cx,
                FromTenant {
                    may_error: false,
                    ..from
                },
                f,
            ),
            Side::Public(_) => match resolve_public(t, ip_dst(f.data())) {
                Ok(hop) => hop.send(f, c),
                Err(reason) => Verdict::Drop(reason),
            },
        }
    }
}

/// RFC 1122 3.2.2 / RFC 1812 4.3.2.7: no error about an ICMP error, a
/// non-initial fragment, or a packet from a broadcast, multicast or
/// unspecified source.
pub(crate) fn may_quote(ip: &[u8]) -> bool {
    let header = ipv4(ip);
    let src = u32::from(header.src_addr());
    let later_fragment = header.frag().is_later();
    let is_icmp_error = header.protocol() == IpProtocol::ICMP
        && ip
            .get(header.header_len())
            .is_some_and(|&ty| IcmpType(ty).is_error());
    !later_fragment && !is_icmp_error && src != 0 && src != u32::MAX && (src >> 28) != 0xe
}

/// Rewrites the IPv4 packet in `f` into an ICMP error about it, from `src`
/// to its source, quoting as much as RFC 1812 allows.
pub(crate) fn build_icmp_error<F: Frame>(f: &mut F, e: IcmpError, src: u32) -> bool {
    let orig_src = ipv4(f.data()).src_addr();
    let quote = f.len().min(ICMP_ERROR_MAX - 28);
    if !f.trim(f.len() - quote) {
        return false;
    }
    let Some(h) = f.prepend(28) else { return false };
    let ip = Ipv4Repr {
        src_addr: Ipv4Addr::from(src),
        dst_addr: orig_src,
        protocol: IpProtocol::ICMP,
        payload_len: 8 + quote,
        ttl: LOCAL_TTL,
        // TOS 0xc0, precedence 6 (internetwork control): what Linux
        // sends its ICMP errors with.
        dscp: 0xc0 >> 2,
        ecn: 0,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut h[..20]));
    let (ty, code, mtu) = match e {
        IcmpError::TimeExceeded => (IcmpType::TIME_EXCEEDED, icmpw::time_exceeded::TTL, 0),
        IcmpError::FragNeeded(mtu) => (
            IcmpType::DEST_UNREACHABLE,
            icmpw::unreachable::FRAG_NEEDED,
            mtu,
        ),
        IcmpError::HostUnreachable => (IcmpType::DEST_UNREACHABLE, icmpw::unreachable::HOST, 0),
    };
    let data = f.data_mut();
    let mut icmp = IcmpPacket::new_unchecked(&mut data[20..]);
    icmp.set_msg_type(ty);
    icmp.set_msg_code(code);
    icmp.set_echo_ident(0);
    icmp.set_next_hop_mtu(mtu);
    icmp.fill_checksum();
    true
}

/// Answers an ICMP echo request to the gateway in place; the frame still
/// has its Ethernet header and was trimmed to the IP length.
pub(super) fn echo_reply(
    pe: &PortEntry,
    port: u16,
    data: &mut [u8],
    c: &WorkerCounters,
) -> Verdict {
    let ihl = ipv4(&data[ETH..]).header_len();
    {
        let Ok(icmp) = IcmpPacket::new_checked(&data[ETH + ihl..]) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        if icmp.msg_type() != IcmpType::ECHO_REQUEST || icmp.msg_code() != 0 {
            return Verdict::Drop(D::LocalProtocol);
        }
    }
    let (src_mac, dst_ip) = {
        let mut m = [0u8; 6];
        m.copy_from_slice(&data[6..12]);
        let mut d = [0u8; 4];
        d.copy_from_slice(&data[ETH + 16..ETH + 20]);
        (m, d)
    };
    data[..6].copy_from_slice(&src_mac);
    data[6..12].copy_from_slice(&pe.mac);
    let ip = &mut data[ETH..];
    ip.copy_within(12..16, 16);
    ip[12..16].copy_from_slice(&dst_ip);
    ip[8] = LOCAL_TTL;
    Ipv4Packet::new_unchecked(&mut ip[..ihl]).fill_checksum();
    let icmp = &mut ip[ihl..];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = IcmpType::ECHO_REPLY.0;
    let hc = u16::from_be_bytes([icmp[2], icmp[3]]);
    let sum = checksum::update_u16(hc, old, u16::from(icmp[1]));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    c.echo_replies.inc();
    Verdict::Forward(port)
}

/// The gateway's address as the source of errors toward tenants: its first
/// underlay address (what traceroute inside a tenant shows).
pub(crate) fn underlay_addr(t: &Tables) -> Option<u32> {
    t.ports
        .iter()
        .find(|p| p.role == Some(Role::Underlay))
        .and_then(PortEntry::primary)
}
