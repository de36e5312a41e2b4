//! The encap stage: a packet going into a tenant's tunnel gets the
//! tunnel's precomputed outer headers (outer Ethernet, IPv4 and GRE, and
//! for gretap the inner Ethernet), the per-frame fields filled in, and
//! the GRE checksum and sequence number where the tenant asks for them.

use super::*;

impl Pipeline {
    /// Prepends the header of tunnel `tunnel` to an IPv4 packet whose TTL
    /// has been decremented. A frame whose outer or
    /// inner next hop is not resolved yet is built all the same and punted,
    /// for the resolver to finish and send.
    pub(super) fn encap<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        tunnel: TunnelId,
        adj: &TunnelAdj,
        f: &mut F,
        inner: &mut u16,
    ) -> Verdict {
        let Cx { t, c } = cx;
        let mut pending = None;
        let outer_mac = match t.neighbours.get_ref(adj.neigh) {
            Lookup::Mac(mac) => mac,
            Lookup::Failed => return Verdict::Drop(D::NoNeighbour),
            Lookup::Unresolved => {
                pending = Some(Punt::Resolve {
                    port: adj.port,
                    key: adj.neigh.key,
                });
                [0; 6]
            }
        };
        // The TOS byte whole, DF in place in the flags byte, and where the
        // packet goes.
        let (tos, df, dst) = match ipv4_fixed(f.data()) {
            Some(ip) => (
                ip.dscp() << 2 | ip.ecn(),
                if ip.dont_frag() { 0x40 } else { 0 },
                u32::from(ip.dst_addr()),
            ),
            None => return Verdict::Drop(D::Ipv4Invalid),
        };
        let inner_mac = if adj.is_gretap() {
            let key = NeighKey::inner(adj.tenant, dst);
            match t.neighbours.get_hinted(key, inner) {
                Lookup::Mac(mac) => Some(mac),
                Lookup::Failed => return Verdict::Drop(D::NoNeighbour),
                // The resolver finds the outer neighbour after the inner.
                Lookup::Unresolved => {
                    pending = Some(Punt::ResolveInner {
                        tunnel: tunnel.index,
                        key,
                    });
                    Some([0; 6])
                }
            }
        } else {
            None
        };
        let inner_len = f.len();
        let len = usize::from(adj.header_len);
        let Some(h) = f.prepend(len) else {
            return Verdict::Drop(D::NoHeadroom);
        };
        // Copies of a constant size are a few vector moves, not a call: the
        // key-only headers most tenants use. With GRE options, a call.
        const GRETAP: usize = KEYED_GRETAP_HEADER;
        const GRE_IPV4: usize = KEYED_GRETAP_HEADER - ETH;
        match len {
            GRETAP => h.copy_from_slice(&adj.header[..GRETAP]),
            GRE_IPV4 => h.copy_from_slice(&adj.header[..GRE_IPV4]),
            _ => h.copy_from_slice(&adj.header[..len]),
        }
        h[..6].copy_from_slice(&outer_mac);
        if let Some(mac) = inner_mac {
            h[len - ETH..len - ETH + 6].copy_from_slice(&mac);
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        // RFC 6040 normal mode, and DSCP copied (RFC 2983 uniform model).
        finish_outer_ipv4(
            &mut h[ETH..ETH + 20],
            tos,
            (len - ETH + inner_len) as u16,
            self.ip_id,
            df,
        );
        if adj.gre.any() {
            gre_options(t, tunnel, f);
        }
        if let Some(tc) = c.tenant(adj.tenant.index()) {
            tc.to_tunnel_packets.inc();
            tc.to_tunnel_bytes.add(inner_len as u64);
        }
        match pending {
            None => Verdict::Forward(adj.port),
            Some(why) => punt(f, why, c),
        }
    }
}

/// The GRE checksum and sequence number of a frame `encap` built, out of
/// line so that tenants without them pay the test alone.
#[cold]
#[inline(never)]
fn gre_options<F: Frame>(t: &Tables, tunnel: TunnelId, f: &mut F) {
    if let Some(gre) = f.data_mut().get_mut(GRE_AT..) {
        t.fill_gre_options(tunnel, gre);
    }
}

/// Fills the per-frame fields of a tunnel's outer IPv4 header, copied
/// from its adjacency: DSCP/ECN, total length, identification, DF (the
/// flags byte), and adds them to the checksum, which the adjacency
/// computed with them zero.
pub(crate) fn finish_outer_ipv4(ip: &mut [u8], tos: u8, total_len: u16, id: u16, df: u8) {
    ip[1] = tos;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = df;
    let hc = u16::from_be_bytes([ip[10], ip[11]]);
    let hc = checksum::fill_zero_fields(hc, [u16::from(tos), total_len, id, u16::from(df) << 8]);
    ip[10..12].copy_from_slice(&hc.to_be_bytes());
}
