//! The underlay stage: GRE from a tenant host, classified by key to its
//! tenant, checked (the host is the tenant's, the inner source its own),
//! decapsulated with RFC 6040's ECN rules, and handed to the tenant's
//! flows (the fast path first) or its routing; ICMP to the gateway's
//! underlay addresses is answered.

use super::*;

impl Pipeline {
    /// GRE from a tenant host, or ICMP to the gateway.
    pub(super) fn underlay_input<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        m: Meta<'_>,
        f: &mut F,
    ) -> Verdict {
        let (protocol, ihl) = match check_local_ipv4(m.pe, f) {
            Ok(v) => v,
            Err(v) => return v,
        };
        match protocol {
            IpProtocol::GRE => self.decap(cx, m, f, ihl),
            IpProtocol::ICMP => match martian::outer(m.pe, ip_src(&f.data()[ETH..])) {
                Ok(()) => echo_reply(m.pe, m.port, f.data_mut(), cx.c),
                Err(reason) => Verdict::Drop(reason),
            },
            _ => Verdict::Drop(D::LocalProtocol),
        }
    }

    /// Classifies, checks and strips the tunnel (its outer IPv4 header
    /// `ihl` bytes long), then routes in the VRF; a packet of a known flow
    /// takes the fast path unless its hint says otherwise.
    fn decap<F: Frame>(&mut self, cx: Cx<'_>, mut m: Meta<'_>, f: &mut F, ihl: usize) -> Verdict {
        let Cx { t, c } = cx;
        let data = f.data_mut();
        let outer = ipv4(&data[ETH..]);
        let outer_src = u32::from(outer.src_addr());
        m.outer_ecn = outer.ecn();
        let gre_at = ETH + ihl;
        // A checksum (C) is verified before anything is read past it; a
        // sequence number (S) is skipped (gre.rs, RFC 2784 / 2890).
        // check_local_ipv4 trimmed the frame to the outer packet's end.
        let (key, protocol, gre_len) = match key_only(&data[gre_at..]) {
            Some(read) => read,
            None => match GrePacket::new_checked(&data[gre_at..]) {
                Ok(g) if !g.verify_checksum() => return Verdict::Drop(D::GreChecksum),
                Ok(g) => match g.key() {
                    Some(key) => (key, g.protocol_type(), g.header_len()),
                    None => return Verdict::Drop(D::GreNoKey),
                },
                Err(Error::Truncated) => return Verdict::Drop(D::GreTruncated),
                Err(_) => return Verdict::Drop(D::GreVersion),
            },
        };
        let tenant = match self
            .host_cache
            .lookup(&t.tenants, t.generation, key, outer_src)
        {
            Ok(tenant) => tenant,
            Err(HostMiss::UnknownKey) => return Verdict::Drop(D::GreUnknownKey),
            Err(HostMiss::WrongHost) => return Verdict::Drop(martian::wrong_host(outer_src)),
        };
        let inner_at = gre_at + gre_len;
        m.ip_at = match (tenant.encap, protocol) {
            (Encap::Ipv4, EtherType::IPV4) => inner_at,
            (Encap::Gretap, EtherType::TRANSPARENT_ETHERNET_BRIDGING) => {
                let Ok(inner) = EthernetFrame::new_checked(&data[inner_at..]) else {
                    return Verdict::Drop(D::InnerInvalid);
                };
                let dst = inner.dst_addr().0;
                if dst != tenant.mac && dst != [0xff; 6] {
                    return Verdict::Drop(D::InnerNotForUs);
                }
                match (inner.is_tagged(), inner.ethertype()) {
                    (false, EtherType::IPV4) => inner_at + ETH,
                    (false, EtherType::ARP) => {
                        return tunnel_arp_input(t, tenant, m.pe, m.port, f, inner_at, c)
                    }
                    _ => return Verdict::Drop(D::InnerInvalid),
                }
            }
            _ => return Verdict::Drop(D::GreProtocol),
        };
        if m.hint.fast() && !self.flows.is_empty() {
            if let Some(v) = self.tenant_hit(cx, &m, tenant, f) {
                return v;
            }
        }
        let ip_at = m.ip_at;
        let data = f.data_mut();
        let (inner_len, options) = {
            let Ok(inner) = Ipv4Packet::new_checked(&data[ip_at..]) else {
                return Verdict::Drop(D::InnerInvalid);
            };
            if !inner.verify_checksum() {
                return Verdict::Drop(D::InnerInvalid);
            }
            let (src, dst) = (u32::from(inner.src_addr()), u32::from(inner.dst_addr()));
            if !tenant.owns(src) {
                return Verdict::Drop(D::TenantSpoof);
            }
            if let Err(reason) = martian::inner(src, dst) {
                return Verdict::Drop(reason);
            }
            if inner.is_fragment() {
                if let Err(e) = fragments::inspect(&data[ip_at..]) {
                    return Verdict::Drop(fragment::reason(e));
                }
            }
            let options = match inner
                .has_options()
                .then(|| ip_options::decide(inner.options()))
            {
                None => None,
                Some(Ok(carried)) => Some(carried),
                Some(Err(reason)) => return Verdict::Drop(reason),
            };
            (usize::from(inner.total_len()), options)
        };
        if let Some(owner) = self.tenant_owner(t, tenant, &data[ip_at..]) {
            return Verdict::Handoff(owner);
        }
        if let Some(carried) = options {
            c.count_options(carried);
        }
        count_from_tunnel(c, tenant.id, inner_len);
        if !decap_ecn(&mut data[ip_at..], m.outer_ecn) {
            return Verdict::Drop(D::EcnDrop);
        }
        let tail = data.len() - ip_at - inner_len;
        if !(f.adj(ip_at) && f.trim(tail)) {
            return Verdict::Drop(D::InnerInvalid);
        }
        let from = FromTenant {
            tenant,
            underlay_mtu: m.pe.mtu,
            may_error: true,
        };
        if let Some(v) = self.tenant_flow(cx, from, f) {
            return v;
        }
        self.route_tenant(cx, from, f)
    }
}

/// The key, protocol type and length of a GRE header that carries the key
/// alone (RFC 2890: K set; no checksum, no sequence number, no reserved
/// bit, version 0), what tenants' hosts send: read at fixed offsets,
/// where the view works the offsets out from the flags field by field.
/// `None` for any other header (or one cut short), which the view reads.
#[inline]
fn key_only(gre: &[u8]) -> Option<(u32, EtherType, usize)> {
    const FLAGS: [u8; 2] = [0x20, 0x00];
    const LEN: usize = 8;
    let h: &[u8; LEN] = gre.get(..LEN)?.try_into().ok()?;
    if h[..2] != FLAGS {
        return None;
    }
    let protocol = EtherType(u16::from_be_bytes([h[2], h[3]]));
    Some((u32::from_be_bytes([h[4], h[5], h[6], h[7]]), protocol, LEN))
}

/// RFC 6040 decapsulation: outer CE marks an ECN-capable inner packet CE,
/// and condemns a not-ECN-capable one. Returns false to drop.
fn decap_ecn(ip: &mut [u8], outer_ecn: u8) -> bool {
    const ECT0: u8 = 2;
    const ECT1: u8 = 1;
    const CE: u8 = 3;
    let inner = ip[1] & 3;
    // RFC 6040 §4.2's table: a not-ECT inner packet keeps its field
    // (dropped under CE), CE inside stays, outer CE marks an ECT packet,
    // and outer ECT(1) over ECT(0) gives ECT(1).
    let marked = match (inner, outer_ecn) {
        (0, CE) => return false,
        (0, _) | (CE, _) => return true,
        (_, CE) => CE,
        (ECT0, ECT1) => ECT1,
        _ => return true,
    };
    let old = u16::from_be_bytes([ip[0], ip[1]]);
    ip[1] = ip[1] & !3 | marked;
    let new = u16::from_be_bytes([ip[0], ip[1]]);
    let hc = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum::update_u16(hc, old, new).to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key_only` reads what the GRE view reads, for the one header shape
    /// it takes, and leaves every other to the view: each flags byte and
    /// version, headers cut short included, written by hand (RFC 2784 /
    /// 2890: C 0x80, R 0x40, K 0x20, S 0x10).
    #[test]
    fn key_only_reads_the_key_only_header_as_the_view_does_and_no_other() {
        let mut taken = 0;
        for flags in 0..=u8::MAX {
            for version in [0u8, 1, 0x08] {
                for len in [4, 7, 8, 12, 16, 20] {
                    let mut h = vec![flags, version, 0x65, 0x58];
                    h.extend((0..16).map(|i| 0xa0 + i as u8));
                    h.truncate(len);
                    let Some((key, protocol, n)) = key_only(&h) else {
                        continue;
                    };
                    taken += 1;
                    assert_eq!((flags, version), (0x20, 0), "{h:02x?}");
                    let g = GrePacket::new_checked(&h[..]).expect("a header the view takes");
                    assert!(g.verify_checksum());
                    assert_eq!(Some(key), g.key(), "{h:02x?}");
                    assert_eq!((protocol, n), (g.protocol_type(), g.header_len()));
                }
            }
        }
        // Flags 0x20, version 0, at each length of 8 and more.
        assert_eq!(taken, 4);
    }
}
