//! The encap stage: a packet going into a tenant's tunnel gets the
//! tunnel's precomputed outer headers (outer Ethernet, IPv4 and GRE, and
//! for gretap the inner Ethernet), the per-frame fields filled in, and
//! the GRE checksum and sequence number where the tenant asks for them.

use super::*;

impl Pipeline {
    /// Prepends the header of tunnel `adj` to an IPv4 packet whose TTL
    /// has been decremented. A frame whose outer or
    /// inner next hop is not resolved yet is built all the same and punted,
    /// for the resolver to finish and send.
    ///
    /// Here both MACs are known, as for nearly every frame: any other
    /// answer goes to [`Pipeline::encap_resolving`], which looks again and
    /// tells unresolved from failed. Kept apart, this path holds no punt
    /// and no neighbour search, and needs fewer registers.
    #[inline]
    pub(super) fn encap<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        adj: &TunnelAdj,
        f: &mut F,
        inner: &mut u16,
    ) -> Verdict {
        // The verdict is the caller's to build, not put back together
        // from its parts after the call of the other path (callgrind: 3
        // instructions a frame).
        match self.encap_known(cx, adj, f, inner) {
            true => Verdict::Forward(adj.port),
            false => self.encap_resolving(cx, adj, f, inner),
        }
    }

    /// The encapsulation of a frame whose two MACs are known. `false`,
    /// with the frame as it came, for [`Pipeline::encap_resolving`].
    /// Inlined into `encap`'s three callers: out of line, its call (six
    /// callee-saved registers pushed and popped, the arguments moved) cost
    /// the daemon's worker 14–17 instructions a frame, and its nat and
    /// encap hits 2–3 processing cycles (docs/perf.md, session 17).
    #[inline(always)]
    fn encap_known<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        adj: &TunnelAdj,
        f: &mut F,
        inner: &mut u16,
    ) -> bool {
        let t = cx.t;
        // The inner header's per-frame fields (the TOS byte whole, DF in
        // place in the flags byte, and for gretap where the packet goes)
        // are read where they are used, from the frame after the header:
        // read first, they were held across the MAC reads on the stack
        // (callgrind: 3 instructions a frame).
        let inner_len = f.len();
        let len = usize::from(adj.header_len);
        // The whole frame from the prepend itself: a `data_mut` after it
        // worked out an mbuf's data place and length again.
        let Some(data) = f.prepend_whole(len) else {
            return false;
        };
        // A frame too short for an IPv4 header is given back here, not
        // refused before the prepend: two tests there were merged into
        // one with `setb`s (callgrind: 2 instructions a frame).
        let (h, ip) = data.split_at_mut(len);
        let Some(ip) = ip.first_chunk::<20>() else {
            f.adj(len);
            return false;
        };
        // A gretap frame takes the header this worker built last for its
        // adjacency and inner host, both MACs in, while no MAC changed:
        // one copy where the adjacency's header and two MAC reads were
        // three steps (callgrind: 18 instructions a frame). Otherwise
        // (`build_gretap`) each MAC goes into the header as it is read, so
        // that none is held in a register meanwhile, and the header is
        // kept. A frame that lacks one is given back as it came.
        let n = &t.neighbours;
        let known = if adj.is_gretap() {
            let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
            let key = adj.inner_key(dst);
            match self.macs.header(n, adj.uid(), key, *inner) {
                Ok(kept) => {
                    copy_header(h, kept);
                    true
                }
                Err(changes) => self.build_gretap(n, adj, key, changes, inner, h),
            }
        } else {
            copy_header(h, &adj.header);
            h.first_chunk_mut()
                .is_some_and(|outer| self.macs.put_mac_ref(n, adj.neigh, outer))
        };
        if !known {
            f.adj(len);
            return false;
        }
        self.finish_header(cx, adj, h, [ip[1], ip[6] & 0x40], inner_len);
        if adj.has_gre_options() {
            gre_options(t, adj.id(), f);
        }
        true
    }

    /// A gretap header built into `h` from adjacency `adj` and the two
    /// MACs, and kept for the next frame to inner host `key` (`changes`:
    /// the MAC change count loaded before the MACs are read). `false`
    /// when one of the MACs is not there. Out of line: a flow's first
    /// frame and the first after a MAC change come here, and inlined, its
    /// MAC reads and their registers cost every frame of a kept header
    /// (callgrind: 10 instructions a frame, docs/perf.md session 19).
    #[cold]
    #[inline(never)]
    fn build_gretap(
        &mut self,
        n: &Neighbours,
        adj: &TunnelAdj,
        key: NeighKey,
        changes: u64,
        inner: &mut u16,
        h: &mut [u8],
    ) -> bool {
        let len = h.len();
        copy_header(h, &adj.header);
        let built = h
            .first_chunk_mut()
            .is_some_and(|outer| self.macs.put_mac_ref(n, adj.neigh, outer))
            && h.get_mut(len - ETH..)
                .and_then(|h| h.first_chunk_mut())
                .is_some_and(|mac| self.macs.put_mac_hinted(n, key, inner, mac));
        if built {
            self.macs.keep_header(changes, adj.uid(), key, *inner, h);
        }
        built
    }

    /// [`Pipeline::encap`] for a frame one of whose MACs was not there:
    /// the full lookups, and the frame built with zeros in place of what is
    /// missing and punted, or dropped for a failed neighbour.
    #[cold]
    #[inline(never)]
    fn encap_resolving<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        adj: &TunnelAdj,
        f: &mut F,
        inner: &mut u16,
    ) -> Verdict {
        let Cx { t, c } = cx;
        let Some(ip) = ipv4_fixed(f.data()).map(Ipv4Packet::into_inner) else {
            return Verdict::Drop(D::Ipv4Invalid);
        };
        let (tos, df) = (ip[1], ip[6] & 0x40);
        let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
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
        let inner_mac = if adj.is_gretap() {
            let key = adj.inner_key(dst);
            match t.neighbours.get_hinted(key, inner) {
                Lookup::Mac(mac) => Some(mac),
                Lookup::Failed => return Verdict::Drop(D::NoNeighbour),
                // The resolver finds the outer neighbour after the inner.
                Lookup::Unresolved => {
                    pending = Some(Punt::ResolveInner {
                        tunnel: adj.index,
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
        copy_header(h, &adj.header);
        h[..6].copy_from_slice(&outer_mac);
        if let Some(mac) = inner_mac {
            h[len - ETH..len - ETH + 6].copy_from_slice(&mac);
        }
        self.finish_header(cx, adj, h, [tos, df], inner_len);
        if adj.has_gre_options() {
            gre_options(t, adj.id(), f);
        }
        match pending {
            None => Verdict::Forward(adj.port),
            Some(why) => punt(f, why, c),
        }
    }

    /// The outer IPv4 header's per-frame fields in header `h` (the frame's
    /// TOS byte and DF, its inner packet `inner_len` bytes), and the packet
    /// counted into the tunnel.
    #[inline(always)]
    fn finish_header(
        &mut self,
        cx: Cx<'_>,
        adj: &TunnelAdj,
        h: &mut [u8],
        [tos, df]: [u8; 2],
        inner_len: usize,
    ) {
        let len = usize::from(adj.header_len);
        self.ip_id = self.ip_id.wrapping_add(1);
        // RFC 6040 normal mode, and DSCP copied (RFC 2983 uniform model).
        let total = (len - ETH + inner_len) as u16;
        fill_outer_ipv4(
            &mut h[ETH..ETH + 20],
            adj.outer_sum,
            tos,
            total,
            self.ip_id,
            df,
        );
        if let Some(tc) = cx.c.tenant(adj.tenant.index()) {
            tc.to_tunnel_packets.inc();
            tc.to_tunnel_bytes.add(inner_len as u64);
        }
    }
}

/// Copies a tunnel's header, `h.len()` bytes of it, as two copies of a
/// fixed size that overlap in the middle: a few vector moves whatever the
/// header's length (42 to 64 bytes), where a copy of the length itself is
/// a call to `memcpy` (callgrind: ~30 instructions a frame with the
/// registers it saves around the call).
#[inline(always)]
fn copy_header(h: &mut [u8], header: &[u8; MAX_TUNNEL_HEADER]) {
    const HALF: usize = MAX_TUNNEL_HEADER / 2;
    let n = h.len();
    if !(HALF..=MAX_TUNNEL_HEADER).contains(&n) {
        return copy_any(h, header);
    }
    h[..HALF].copy_from_slice(&header[..HALF]);
    h[n - HALF..].copy_from_slice(&header[n - HALF..n]);
}

/// [`copy_header`] for a length no adjacency is built with
/// (`Tables::tunnel_adj`): out of line, so that the fast copy falls
/// through to what follows it (callgrind: 1 instruction a frame, its jump).
#[cold]
#[inline(never)]
fn copy_any(h: &mut [u8], header: &[u8; MAX_TUNNEL_HEADER]) {
    let n = h.len().min(MAX_TUNNEL_HEADER);
    h[..n].copy_from_slice(&header[..n]);
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
    let sum = !u16::from_ne_bytes([ip[10], ip[11]]);
    fill_outer_ipv4(ip, sum, tos, total_len, id, df);
}

/// [`finish_outer_ipv4`] with the sum of the header's fixed fields given
/// (`TunnelAdj::outer_sum`, the complement of the checksum the adjacency
/// computed): RFC 1624's update from fields that were zero is then the
/// sum of the new ones added to it, folded ([`checksum::fold32`]), and
/// complemented. The sum of the fixed fields is never
/// zero (version and IHL are in them), so neither is the folded sum: the
/// checksum is never 0xffff, as RFC 1624 §3 wants.
///
/// The sum is of the header's words as the CPU loads them (`sum` too):
/// one's complement addition commutes with swapping the bytes of every
/// term (RFC 1071 §2(B)), so the fields are swapped once, for their own
/// stores, and the checksum not at all (callgrind: 3 instructions a
/// frame).
#[inline(always)]
fn fill_outer_ipv4(ip: &mut [u8], sum: u16, tos: u8, total_len: u16, id: u16, df: u8) {
    let ip: &mut [u8; 20] = match ip.try_into() {
        Ok(ip) => ip,
        Err(_) => return,
    };
    let (total, id) = (total_len.to_be_bytes(), id.to_be_bytes());
    ip[1] = tos;
    ip[2..4].copy_from_slice(&total);
    ip[4..6].copy_from_slice(&id);
    ip[6] = df;
    // DSCP/ECN is the second byte of the first word, DF the first of the
    // fourth: one term between them.
    let s = u32::from(sum)
        + u32::from(u16::from_ne_bytes([df, tos]))
        + u32::from(u16::from_ne_bytes(total))
        + u32::from(u16::from_ne_bytes(id));
    ip[10..12].copy_from_slice(&(!checksum::fold32(s)).to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header};

    /// An outer header as the adjacency holds it (per-frame fields zero,
    /// its checksum over the rest), and the same with `tos`, `len`, `id`
    /// and DF set, its checksum computed whole: by etherparse, not by us.
    fn headers(src: [u8; 4], dst: [u8; 4], tos: u8, len: u16, id: u16, df: bool) -> [[u8; 20]; 2] {
        let mut h = Ipv4Header::new(0, crate::tables::OUTER_TTL, IpNumber(47), src, dst).unwrap();
        h.total_len = 0;
        h.dont_fragment = false;
        h.header_checksum = h.calc_header_checksum();
        let fixed: [u8; 20] = h.to_bytes()[..].try_into().unwrap();
        h.dscp = Ipv4Dscp::try_new(tos >> 2).unwrap();
        h.ecn = Ipv4Ecn::try_new(tos & 3).unwrap();
        h.total_len = len;
        h.identification = id;
        h.dont_fragment = df;
        h.header_checksum = h.calc_header_checksum();
        [fixed, h.to_bytes()[..].try_into().unwrap()]
    }

    /// Every length a header slice may have, the two overlapping copies'
    /// and the fallback's: the header's first bytes, the rest untouched.
    #[test]
    fn a_header_copy_of_any_length_is_the_headers_first_bytes() {
        let header: [u8; MAX_TUNNEL_HEADER] = std::array::from_fn(|i| i as u8 + 1);
        for n in 0..=MAX_TUNNEL_HEADER + 8 {
            let mut h = vec![0; n];
            copy_header(&mut h, &header);
            let m = n.min(MAX_TUNNEL_HEADER);
            assert_eq!(h[..m], header[..m], "{n}");
            assert!(h[m..].iter().all(|&b| b == 0), "{n}");
        }
    }

    #[test]
    fn the_outer_checksum_from_the_precomputed_sum_is_the_whole_headers() {
        let addrs = [
            ([172, 16, 0, 1], [172, 16, 1, 1]),
            ([0, 0, 0, 0], [0, 0, 0, 0]),
            ([255, 255, 255, 255], [255, 255, 255, 255]),
            // Fixed fields that sum to 0xffff and to just past it.
            ([0xff, 0xff, 0, 0], [0x7a, 0xd0, 0x00, 0x00]),
            ([0xff, 0xff, 0, 0], [0x7a, 0xd1, 0x00, 0x00]),
        ];
        let mut cases = 0;
        for (src, dst) in addrs {
            for tos in [0, 1, 3, 0xb8, 0xff] {
                for len in [0, 20, 1500, 0xfffe, 0xffff] {
                    for id in [0, 1, 0x8000, 0xffff] {
                        for df in [false, true] {
                            let [fixed, want] = headers(src, dst, tos, len, id, df);
                            let flags = if df { 0x40 } else { 0 };
                            let sum = !u16::from_ne_bytes([fixed[10], fixed[11]]);
                            let mut got = fixed;
                            fill_outer_ipv4(&mut got, sum, tos, len, id, flags);
                            assert_eq!(got, want, "{src:?} {dst:?} {tos} {len} {id} {df}");
                            let mut got = fixed;
                            finish_outer_ipv4(&mut got, tos, len, id, flags);
                            assert_eq!(got, want, "{src:?} {dst:?} {tos} {len} {id} {df}");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 5 * 5 * 4 * 2);
    }
}
