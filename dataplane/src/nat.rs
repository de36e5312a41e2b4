//! Address translation: elastic IPs (1:1 NAT) and the rewrite a flow
//! caches.
//!
//! An elastic IP belongs to exactly one tenant and stands for one private
//! address in it: inbound, the destination is rewritten from the EIP to the
//! private address (DNAT); outbound, the source from the private address to
//! the EIP (SNAT). Ports are kept (1:1). The checksum change of a rewrite
//! is computed once, when the flow is created (RFC 1624), and added to the
//! IPv4 header checksum and, through the pseudo-header, to the TCP or UDP
//! checksum of every packet.

use std::sync::Arc;

use crate::hash::FastMap;
use crate::sixteens::Sixteens;
use crate::tenant::TenantId;
use crate::wire::checksum::Delta;
use crate::wire::{IpProtocol, Ipv4Packet};

/// Which address a rewrite replaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Field {
    /// No translation (a flow of a tenant's own public addresses).
    #[default]
    None,
    Src,
    Dst,
}

/// One address rewrite, and for shared source NAT the port (or ICMP echo
/// identifier) with it, with their checksum changes, computed once when
/// the flow is made (RFC 1624; VPP's `nat_6t_flow_t` does the same): a
/// packet of the flow then writes the fields and adds one precomputed
/// change to each checksum. Fields and changes are kept as their bytes lie
/// in the packet, so that a packet's update swaps no bytes: the one's
/// complement sum is the same in either byte order (RFC 1071 §2(B)). 12
/// bytes: a flow holds two, and its value is one cache line
/// (conntrack.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The address written, in network order.
    addr: [u8; 4],
    /// The port written, when `rewrites_port`, in network order.
    port: [u8; 2],
    /// A forwarded packet's IPv4 header checksum change: the address's
    /// and the TTL's decrement, combined once (the header change the
    /// fast path makes; [`Rewrite::apply`] takes the TTL's back out). In
    /// memory order ([`Delta::in_memory_order`]), as is `l4`.
    forward: Delta,
    /// A TCP or UDP checksum's change: the address's through the
    /// pseudo-header and the port's. An ICMP echo's checksum has no
    /// pseudo-header: its identifier's change is computed from the
    /// packet's own (rare: source NAT of pings).
    l4: Delta,
    field: Field,
    rewrites_port: bool,
}

// Two in a flow's one cache line (conntrack.rs's `Conn`).
const _: () = assert!(std::mem::size_of::<Rewrite>() == 12);

impl Default for Rewrite {
    /// Translates nothing: forwarding is the TTL alone.
    fn default() -> Self {
        Self::new(Field::None, 0, 0)
    }
}

/// Undoes [`Delta::TTL_DECREMENT`]: its one's complement, `0x100`.
const TTL_UNDO: Delta = Delta::TTL_DECREMENT.negate();

impl Rewrite {
    /// Source `old` becomes `new`.
    pub fn src(old: u32, new: u32) -> Self {
        Self::new(Field::Src, old, new)
    }

    /// Destination `old` becomes `new`.
    pub fn dst(old: u32, new: u32) -> Self {
        Self::new(Field::Dst, old, new)
    }

    /// A rewrite of an address to itself (a flow of a tenant's own public
    /// address) translates nothing: forwarding it is the TTL alone, not a
    /// checksum update of zero through the transport header (~130
    /// instructions a frame on the stateless encap and decap paths).
    fn new(field: Field, old: u32, new: u32) -> Self {
        let delta = Delta::new().add_u32(old, new);
        Rewrite {
            addr: new.to_be_bytes(),
            port: [0; 2],
            forward: delta.combine(Delta::TTL_DECREMENT).in_memory_order(),
            l4: delta.in_memory_order(),
            field: if old == new { Field::None } else { field },
            rewrites_port: false,
        }
    }

    /// The same, with the port on the same side (an ICMP echo's
    /// identifier) changing from `old` to `new`.
    #[must_use]
    pub fn with_port(mut self, old: u16, new: u16) -> Self {
        // Source NAT always changes the address too: a pool's addresses
        // are never a host's own source (that flow is `Outbound::Own`).
        debug_assert!(self.field != Field::None, "a port rewrite keeps no side");
        self.port = new.to_be_bytes();
        self.rewrites_port = true;
        let port = Delta::new().add_u16(old, new).in_memory_order();
        self.l4 = self.l4.combine(port);
        self
    }

    /// The address's change alone (the IPv4 header's without the TTL),
    /// in memory order: for the rare callers that do not forward.
    #[inline]
    fn address_delta(&self) -> Delta {
        match self.field {
            Field::None => Delta::new(),
            _ => self.forward.combine(TTL_UNDO.in_memory_order()),
        }
    }

    /// Whether the rewrite changes anything: a flow of a tenant's own
    /// public address translates nothing.
    pub fn changes(&self) -> bool {
        self.field != Field::None
    }

    /// The address written.
    pub fn addr(&self) -> u32 {
        u32::from_be_bytes(self.addr)
    }

    /// The port written, if the rewrite changes one.
    pub fn port(&self) -> Option<u16> {
        self.rewrites_port.then_some(u16::from_be_bytes(self.port))
    }

    /// The address change alone: for an ICMP error about a flow, whose
    /// own header has no port (bytes 4 to 7 are unused or the MTU, and
    /// belong to the error), while its quote is translated apart
    /// ([`translate_quoted`]).
    #[must_use]
    pub fn address_only(&self) -> Self {
        Rewrite {
            port: [0; 2],
            rewrites_port: false,
            l4: self.address_delta(),
            ..*self
        }
    }

    /// Applies the rewrite to the IPv4 packet `ip` (header of `ihl` bytes,
    /// validated, followed by at least the ports of TCP or UDP). Returns
    /// false, leaving the packet as it was, if the transport header is too
    /// short to hold what changes.
    pub fn apply(&self, ip: &mut [u8], ihl: usize) -> bool {
        self.rewrite(ip, ihl, self.address_delta())
    }

    /// [`Rewrite::apply`] for a packet being forwarded: the TTL, checked
    /// above 1 by the caller, is decremented too, and both changes go into
    /// the header checksum as one update (the TTL's change is a word of
    /// the header like any other, RFC 1624), combined when the flow was
    /// made.
    pub fn forward(&self, ip: &mut [u8], ihl: usize) -> bool {
        let Some(ttl) = ip.get(8).and_then(|t| t.checked_sub(1)) else {
            return false;
        };
        if !self.rewrite(ip, ihl, self.forward) {
            return false;
        }
        ip[8] = ttl;
        true
    }

    /// [`Rewrite::forward`] for a plain packet, as the flow-hit fast path
    /// takes it (`pipeline/hit.rs`'s header pass): a 20-byte IPv4 header,
    /// not a fragment, TTL above 1. The same update, inlined, without
    /// the fragment and TTL tests the header pass made (the TTL's cost a
    /// hit 2 instructions, callgrind, docs/perf.md); a debug build asserts
    /// the TTL.
    #[inline(always)]
    pub fn forward_plain(&self, ip: &mut [u8]) -> bool {
        let Some((h, l4)) = ip.split_first_chunk_mut::<20>() else {
            return false;
        };
        debug_assert!(h[8] > 1, "the header pass forwards no TTL below 2");
        if !self.write(h, Some(l4), self.forward) {
            return false;
        }
        h[8] -= 1;
        true
    }

    /// Applies the rewrite with `header` as the header checksum's change.
    #[inline]
    fn rewrite(&self, ip: &mut [u8], ihl: usize, header: Delta) -> bool {
        let Some((h, rest)) = ip.split_first_chunk_mut::<20>() else {
            return false;
        };
        // A later fragment holds no transport header: the first
        // fragment's checksum update covers the whole datagram. A
        // transport header past the end is one too short to hold what
        // changes.
        let l4 = match rest.get_mut(ihl.saturating_sub(20)..) {
            _ if Ipv4Packet::new_unchecked(&*h).frag().is_later() => None,
            Some(l4) => Some(l4),
            None => Some(&mut [][..]),
        };
        self.write(h, l4, header)
    }

    /// Writes the address (and port) into the IPv4 header `h` and the
    /// transport header `l4` (`None`: none to touch), and adds the
    /// precomputed changes to their checksums, `header` to the header's.
    /// False, with nothing written, if `l4` is too short for what changes.
    #[inline(always)]
    fn write(&self, h: &mut [u8; 20], l4: Option<&mut [u8]>, header: Delta) -> bool {
        if self.field != Field::None {
            // The transport header first: it is the one that can be short.
            // Each protocol's header is taken as an array of its length,
            // so that its fields cost no bounds checks.
            let written = match (IpProtocol(h[9]), l4) {
                (_, None) => true,
                (IpProtocol::TCP, Some(l4)) => {
                    self.write_ports(l4.first_chunk_mut::<18>(), 16, false)
                }
                (IpProtocol::UDP, Some(l4)) => self.write_ports(l4.first_chunk_mut::<8>(), 6, true),
                (IpProtocol::ICMP, Some(l4)) if self.rewrites_port => self.write_echo(l4),
                _ => true,
            };
            if !written {
                return false;
            }
            if self.field == Field::Src {
                h[12..16].copy_from_slice(&self.addr);
            } else {
                h[16..20].copy_from_slice(&self.addr);
            }
        }
        let [a, b] = header.apply_in_memory([h[10], h[11]]);
        (h[10], h[11]) = (a, b);
        true
    }

    /// The TCP or UDP part of [`Rewrite::write`]: `seg` the header's first
    /// `N` bytes (`None`: the segment is shorter), the checksum at `c`,
    /// with UDP's zero rule if `udp`.
    #[inline(always)]
    fn write_ports<const N: usize>(&self, seg: Option<&mut [u8; N]>, c: usize, udp: bool) -> bool {
        let Some(seg) = seg else {
            return false;
        };
        let hc = [seg[c], seg[c + 1]];
        let new = if udp {
            self.l4.apply_udp_in_memory(hc)
        } else {
            self.l4.apply_in_memory(hc)
        };
        seg[c..c + 2].copy_from_slice(&new);
        if self.rewrites_port {
            // The port on the rewritten side: the source's first.
            let p = if self.field == Field::Src { 0 } else { 2 };
            seg[p..p + 2].copy_from_slice(&self.port);
        }
        true
    }

    /// An ICMP echo's identifier (bytes 4–5) stands for the port; its
    /// checksum has no pseudo-header, so it changes by the identifier's
    /// change alone, read from the packet.
    #[cold]
    fn write_echo(&self, l4: &mut [u8]) -> bool {
        let Some(echo) = l4.first_chunk_mut::<6>() else {
            return false;
        };
        let old = u16::from_be_bytes([echo[4], echo[5]]);
        let change = Delta::new().add_u16(old, u16::from_be_bytes(self.port));
        let [x, y] = change.in_memory_order().apply_in_memory([echo[2], echo[3]]);
        (echo[2], echo[3]) = (x, y);
        echo[4..6].copy_from_slice(&self.port);
        true
    }
}

/// Translates the datagram an ICMP error quotes (RFC 5508 REQ-3): its
/// source (`inner_src`) or destination becomes `addr`, and the port on that
/// side `port` if one is given (shared source NAT), with its IPv4
/// checksum, its TCP, UDP or ICMP echo checksum where the quote holds it,
/// and the ICMP checksum over the whole message. `icmp` starts at the ICMP
/// header; the quote was parsed before
/// ([`crate::conntrack::Tuple::parse_quoted`]).
pub fn translate_quoted(icmp: &mut [u8], inner_src: bool, addr: u32, port: Option<u16>) -> bool {
    let Some(q) = icmp.get_mut(8..) else {
        return false;
    };
    let Some(&first) = q.first() else {
        return false;
    };
    let ihl = usize::from(first & 0xf) * 4;
    if q.len() < ihl.max(20) + 8 {
        return false;
    }
    let at = if inner_src { 12 } else { 16 };
    let old = u32::from_be_bytes([q[at], q[at + 1], q[at + 2], q[at + 3]]);
    let delta = Delta::new().add_u32(old, addr);
    q[at..at + 4].copy_from_slice(&addr.to_be_bytes());
    let hc = u16::from_be_bytes([q[10], q[11]]);
    q[10..12].copy_from_slice(&delta.apply(hc).to_be_bytes());
    // (checksum offset, UDP rules, port offset, pseudo-header counts)
    let l4 = match IpProtocol(q[9]) {
        IpProtocol::TCP => Some((16, false, if inner_src { 0 } else { 2 }, true)),
        IpProtocol::UDP => Some((6, true, if inner_src { 0 } else { 2 }, true)),
        IpProtocol::ICMP => Some((2, false, 4, false)),
        _ => None,
    };
    if let Some((c, udp, p, pseudo)) = l4 {
        let seg = &mut q[ihl..];
        let mut change = if pseudo { delta } else { Delta::new() };
        if let Some(new) = port {
            let old = u16::from_be_bytes([seg[p], seg[p + 1]]);
            seg[p..p + 2].copy_from_slice(&new.to_be_bytes());
            change = change.combine(Delta::new().add_u16(old, new));
        }
        // A quote of 8 bytes holds UDP's and ICMP's checksum, not TCP's.
        if let Some(sum) = seg.get_mut(c..c + 2) {
            let hc = u16::from_be_bytes([sum[0], sum[1]]);
            let new = if udp {
                change.apply_udp(hc)
            } else {
                change.apply(hc)
            };
            sum.copy_from_slice(&new.to_be_bytes());
        }
    }
    // The quote changed in several places; errors are rare, so sum anew.
    icmp[2..4].fill(0);
    let sum = crate::wire::checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Shards of the elastic IP maps: a change copies one shard (a 256th of
/// the bindings), never all of them.
const EIP_SHARDS: usize = 256;

/// The elastic IPs, both ways, in shards shared between snapshots: each
/// snapshot holds the shards, and a change copies only the one or two it
/// touches (copy on write), so binding one elastic IP costs the same
/// whether 10 or 100,000 are bound.
#[derive(Clone, Debug)]
pub struct Eips {
    by_public: Vec<Arc<FastMap<u32, (TenantId, u32)>>>,
    /// The /16s of the public addresses: most addresses asked about are
    /// clients', in none of them (`martian::is_own`).
    public_sixteens: Sixteens,
    by_private: Vec<Arc<FastMap<(u32, u32), u32>>>,
    /// Bindings of each tenant that has any, by slot, in shards too: a
    /// tenant removed without elastic IPs (the running state unbinds them
    /// first) costs no visit of everyone else's.
    by_tenant: Vec<Arc<FastMap<u32, u32>>>,
    len: usize,
}

impl Default for Eips {
    fn default() -> Self {
        Eips {
            by_public: (0..EIP_SHARDS).map(|_| Arc::default()).collect(),
            public_sixteens: Sixteens::default(),
            by_private: (0..EIP_SHARDS).map(|_| Arc::default()).collect(),
            by_tenant: (0..EIP_SHARDS).map(|_| Arc::default()).collect(),
            len: 0,
        }
    }
}

/// The shard of an address: Fibonacci hashing's top byte.
#[inline]
pub(crate) fn shard(addr: u32) -> usize {
    (addr.wrapping_mul(0x9E37_79B9) >> 24) as usize
}

/// Why an elastic IP could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EipError {
    /// The public address is already an elastic IP.
    Public(u32),
    /// The private address already has an elastic IP.
    Private(TenantId, u32),
}

impl Eips {
    pub fn insert(&mut self, public: u32, tenant: TenantId, private: u32) -> Result<(), EipError> {
        if self.inbound(public).is_some() {
            return Err(EipError::Public(public));
        }
        if self.outbound(tenant, private).is_some() {
            return Err(EipError::Private(tenant, private));
        }
        Arc::make_mut(&mut self.by_public[shard(public)]).insert(public, (tenant, private));
        self.public_sixteens.add(public);
        Arc::make_mut(&mut self.by_private[shard(private)]).insert((tenant.0, private), public);
        *Arc::make_mut(&mut self.by_tenant[shard(tenant.0)])
            .entry(tenant.0)
            .or_default() += 1;
        self.len += 1;
        Ok(())
    }

    /// Unbinds `public`; the tenant it was bound in.
    pub fn remove(&mut self, public: u32) -> Option<TenantId> {
        let (tenant, private) = self.inbound(public)?;
        Arc::make_mut(&mut self.by_public[shard(public)]).remove(&public);
        Arc::make_mut(&mut self.by_private[shard(private)]).remove(&(tenant.0, private));
        let counts = Arc::make_mut(&mut self.by_tenant[shard(tenant.0)]);
        if let Some(n) = counts.get_mut(&tenant.0) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&tenant.0);
            }
        }
        self.len -= 1;
        Some(tenant)
    }

    /// Unbinds every elastic IP of `tenant`. Visits every binding if it
    /// has any: for removing a tenant, not for one elastic IP.
    pub fn remove_tenant(&mut self, tenant: TenantId) {
        if self.of_tenant(tenant) == 0 {
            return;
        }
        let theirs: Vec<u32> = self
            .by_public
            .iter()
            .flat_map(|m| m.iter())
            .filter(|(_, &(t, _))| t == tenant)
            .map(|(&p, _)| p)
            .collect();
        for public in theirs {
            self.remove(public);
        }
    }

    /// How many elastic IPs `tenant` has.
    pub fn of_tenant(&self, tenant: TenantId) -> usize {
        self.by_tenant[shard(tenant.0)]
            .get(&tenant.0)
            .map_or(0, |&n| n as usize)
    }

    /// The tenant and private address behind `public`.
    #[inline]
    pub fn inbound(&self, public: u32) -> Option<(TenantId, u32)> {
        if !self.public_sixteens.may_hold(public) {
            return None;
        }
        self.by_public[shard(public)].get(&public).copied()
    }

    /// The elastic IP of `private` in `tenant`.
    #[inline]
    pub fn outbound(&self, tenant: TenantId, private: u32) -> Option<u32> {
        self.by_private[shard(private)]
            .get(&(tenant.0, private))
            .copied()
    }

    /// Every binding: `(public, tenant, private)`.
    pub fn iter(&self) -> impl Iterator<Item = (u32, TenantId, u32)> + '_ {
        self.by_public
            .iter()
            .flat_map(|m| m.iter().map(|(&p, &(t, a))| (p, t, a)))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn packet(tcp: bool) -> Vec<u8> {
        packet_with_ttl(tcp, 64)
    }

    fn packet_with_ttl(tcp: bool, ttl: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ipv4([1, 1, 1, 7], [2, 2, 2, 11], ttl);
        if tcp {
            b.tcp(40000, 22, 7, 1000)
                .syn()
                .write(&mut out, b"hello")
                .unwrap();
        } else {
            b.udp(40000, 53).write(&mut out, b"hello").unwrap();
        }
        out
    }

    /// Checksums verified by etherparse after the rewrite.
    fn assert_checksums(p: &[u8]) {
        let s = SlicedPacket::from_ip(p).unwrap();
        let ip = match s.net.unwrap() {
            etherparse::NetSlice::Ipv4(ip) => ip,
            _ => panic!("not ipv4"),
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        match s.transport.unwrap() {
            TransportSlice::Tcp(t) => {
                let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                assert_eq!(t.checksum(), want);
            }
            TransportSlice::Udp(u) => {
                let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                assert_eq!(u.checksum(), want);
            }
            _ => panic!("transport"),
        }
    }

    #[test]
    fn dnat_and_snat_keep_every_checksum_right() {
        let eip = u32::from_be_bytes([2, 2, 2, 11]);
        let private = u32::from_be_bytes([10, 0, 0, 7]);
        for tcp in [true, false] {
            let mut p = packet(tcp);
            assert!(Rewrite::dst(eip, private).apply(&mut p, 20));
            assert_eq!(&p[16..20], &[10, 0, 0, 7]);
            assert_checksums(&p);
            let back = u32::from_be_bytes([1, 1, 1, 7]);
            assert!(Rewrite::src(back, u32::from_be_bytes([9, 9, 9, 9])).apply(&mut p, 20));
            assert_eq!(&p[12..16], &[9, 9, 9, 9]);
            assert_checksums(&p);
        }
    }

    #[test]
    fn forwarding_decrements_the_ttl_in_the_same_checksum_update() {
        let eip = u32::from_be_bytes([2, 2, 2, 11]);
        let private = u32::from_be_bytes([10, 0, 0, 7]);
        for (tcp, rewrite) in [
            (true, Rewrite::dst(eip, private)),
            (false, Rewrite::dst(eip, private).with_port(53, 5353)),
            (true, Rewrite::default()),
        ] {
            for ttl in 1..=255 {
                let mut p = packet_with_ttl(tcp, ttl);
                assert!(rewrite.forward(&mut p, 20));
                assert_eq!(p[8], ttl - 1);
                assert_checksums(&p);
            }
            let mut p = packet_with_ttl(tcp, 0);
            let before = p.clone();
            assert!(!rewrite.forward(&mut p, 20), "TTL 0 is not forwarded");
            assert_eq!(p, before);
        }
    }

    #[test]
    fn a_rewrite_of_an_address_to_itself_changes_only_the_ttl() {
        let own = u32::from_be_bytes([2, 2, 2, 11]);
        let client = u32::from_be_bytes([1, 1, 1, 7]);
        for tcp in [true, false] {
            for rewrite in [Rewrite::dst(own, own), Rewrite::src(client, client)] {
                assert_eq!(
                    rewrite.addr(),
                    if rewrite == Rewrite::dst(own, own) {
                        own
                    } else {
                        client
                    }
                );
                let mut p = packet(tcp);
                let before = p.clone();
                assert!(rewrite.forward(&mut p, 20));
                assert_eq!(p[8], before[8] - 1);
                assert_eq!(p[12..20], before[12..20], "addresses");
                assert_eq!(p[20..], before[20..], "the transport header and payload");
                assert_checksums(&p);
            }
        }
    }

    #[test]
    fn a_zero_udp_checksum_stays_zero_and_a_short_segment_is_refused() {
        let mut p = packet(false);
        p[26..28].fill(0);
        assert!(Rewrite::dst(1, 2).apply(&mut p, 20));
        assert_eq!(&p[26..28], &[0, 0]);
        let mut short = packet(true);
        short.truncate(30);
        let before = short.clone();
        assert!(!Rewrite::dst(1, 2).apply(&mut short, 20));
        assert_eq!(short, before);
    }

    /// xorshift64: the property tests' numbers, the same every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// A TCP segment (0), UDP datagram (1) or ICMP echo request (2, `sport`
    /// its identifier, `dport` its sequence number), built by etherparse
    /// with every checksum computed from scratch.
    fn build(
        proto: u64,
        src: u32,
        dst: u32,
        ports: (u16, u16),
        ttl: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let (sport, dport) = ports;
        let b = PacketBuilder::ipv4(src.to_be_bytes(), dst.to_be_bytes(), ttl);
        let mut out = Vec::new();
        match proto {
            0 => b.tcp(sport, dport, 7, 1000).ack(9).write(&mut out, payload),
            1 => b.udp(sport, dport).write(&mut out, payload),
            _ => b.icmpv4_echo_request(sport, dport).write(&mut out, payload),
        }
        .unwrap();
        out
    }

    /// Where a built packet's transport checksum is.
    fn l4_checksum_at(proto: u64) -> usize {
        20 + [16, 6, 2][proto as usize]
    }

    /// The property behind every flow's rewrite: the checksum changes
    /// computed when the flow is made, added to a packet's checksums
    /// (RFC 1624), give the bytes of the translated packet built anew
    /// with every checksum computed from scratch, for random addresses,
    /// ports, TTLs and payloads, both sides, with and without a port, and
    /// at UDP's edges: a checksum of 0 (none sent, RFC 768) stays 0, and
    /// one that computes to 0 before or after is sent as 0xffff.
    #[test]
    fn a_precomputed_rewrite_gives_the_checksums_of_a_packet_built_anew() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut zero, mut ffff_before, mut ffff_after) = (0, 0, 0);
        for _ in 0..30_000 {
            let r = rng.next();
            let proto = r % 3;
            let src_side = r >> 2 & 1 == 1;
            let identity = r >> 3 & 15 == 0;
            let port = !identity && r >> 7 & 1 == 1;
            let forwarding = r >> 8 & 1 == 1;
            // UDP's edges: 1 no checksum, 2 and 3 a sum of zero before
            // or after the rewrite.
            let edge = if proto == 1 { r >> 9 & 3 } else { 0 };
            let ttl = 2 + (r >> 16) as u8 % 254;
            let len = 2 + (r >> 24) as usize % 40;
            let (a, b) = (rng.next() as u32, rng.next() as u32);
            let new = if identity { a } else { rng.next() as u32 };
            let ports = rng.next();
            let (pa, pb, pn) = (ports as u16, (ports >> 16) as u16, (ports >> 32) as u16);
            // An echo's identifier is both its "ports".
            let pb = if proto == 2 { pa } else { pb };
            let mut payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let (before, after) = {
                let (s2, d2) = if src_side { (new, b) } else { (a, new) };
                let (ps, pd) = match (port, src_side, proto) {
                    (false, _, _) => (pa, pb),
                    (true, _, 2) => (pn, pb),
                    (true, true, _) => (pn, pb),
                    (true, false, _) => (pa, pn),
                };
                let ttl2 = if forwarding { ttl - 1 } else { ttl };
                ((a, b, (pa, pb), ttl), (s2, d2, (ps, pd), ttl2))
            };
            let make = |(s, d, p, t): (u32, u32, (u16, u16), u8), payload: &[u8]| {
                build(proto, s, d, p, t, payload)
            };
            if edge >= 2 {
                // The payload's first word set to the checksum computed
                // with it zero makes the whole sum zero: sent as 0xffff.
                payload[..2].fill(0);
                let which = if edge == 2 { before } else { after };
                let p = make(which, &payload);
                let at = l4_checksum_at(proto);
                payload[..2].copy_from_slice(&p[at..at + 2]);
            }
            let mut packet = make(before, &payload);
            let mut want = make(after, &payload);
            let at = l4_checksum_at(proto);
            if edge == 1 {
                packet[at..at + 2].fill(0);
                want[at..at + 2].fill(0);
                zero += 1;
            }
            ffff_before += usize::from(packet[at..at + 2] == [0xff, 0xff]);
            ffff_after += usize::from(want[at..at + 2] == [0xff, 0xff]);
            let mut rewrite = if src_side {
                Rewrite::src(a, new)
            } else {
                Rewrite::dst(b, new)
            };
            if port {
                let old = match (proto, src_side) {
                    (2, _) | (_, true) => pa,
                    _ => pb,
                };
                rewrite = rewrite.with_port(old, pn);
            }
            let done = if forwarding {
                rewrite.forward(&mut packet, 20)
            } else {
                rewrite.apply(&mut packet, 20)
            };
            assert!(done);
            assert_eq!(packet, want, "{rewrite:?} proto {proto} edge {edge}");
        }
        assert!(zero > 1000 && ffff_before > 1000 && ffff_after > 1000);
    }

    /// The fast path's [`Rewrite::forward_plain`] writes what
    /// [`Rewrite::forward`] does.
    #[test]
    fn the_fast_paths_rewrite_is_the_full_paths() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..5_000 {
            let r = rng.next();
            let proto = r % 3;
            let (a, b, n) = (rng.next() as u32, rng.next() as u32, rng.next() as u32);
            let p = rng.next();
            let payload = [r as u8; 9];
            let packet = build(
                proto,
                a,
                b,
                (p as u16, (p >> 16) as u16),
                2 + (r >> 8) as u8 % 254,
                &payload,
            );
            let mut rewrite = if r >> 4 & 1 == 1 {
                Rewrite::src(a, n)
            } else {
                Rewrite::dst(b, n)
            };
            if r >> 5 & 1 == 1 {
                let id = if proto == 2 || r >> 4 & 1 == 1 {
                    p as u16
                } else {
                    (p >> 16) as u16
                };
                rewrite = rewrite.with_port(id, (p >> 32) as u16);
            }
            let (mut full, mut fast) = (packet.clone(), packet);
            assert!(rewrite.forward(&mut full, 20));
            assert!(rewrite.forward_plain(&mut fast));
            assert_eq!(fast, full);
        }
    }

    /// The header pass refuses a TTL below 2 (pipeline/hit.rs), so
    /// `forward_plain` does not test it again; a debug build says so if
    /// one comes.
    #[test]
    #[should_panic(expected = "no TTL below 2")]
    fn the_fast_paths_rewrite_is_never_given_a_ttl_below_2() {
        let mut packet = build(1, 1, 2, (3, 4), 1, &[0; 9]);
        Rewrite::src(1, 5).forward_plain(&mut packet);
    }

    #[test]
    fn an_eip_belongs_to_one_tenant_and_one_address() {
        let mut e = Eips::default();
        e.insert(1, TenantId(0), 10).unwrap();
        assert_eq!(e.insert(1, TenantId(1), 10), Err(EipError::Public(1)));
        assert_eq!(
            e.insert(2, TenantId(0), 10),
            Err(EipError::Private(TenantId(0), 10))
        );
        e.insert(2, TenantId(1), 10).unwrap();
        assert_eq!(e.inbound(2), Some((TenantId(1), 10)));
        assert_eq!(e.outbound(TenantId(0), 10), Some(1));
        assert_eq!(e.outbound(TenantId(1), 10), Some(2));
        assert_eq!(e.outbound(TenantId(2), 10), None);
    }

    #[test]
    fn removing_a_tenant_unbinds_its_eips_and_touches_nothing_when_it_has_none() {
        let mut e = Eips::default();
        for public in 0..3000u32 {
            e.insert(public, TenantId(public % 30), 1000 + public)
                .unwrap();
        }
        assert_eq!(e.of_tenant(TenantId(7)), 100);
        e.remove(7);
        assert_eq!(e.of_tenant(TenantId(7)), 99);
        e.remove_tenant(TenantId(7));
        assert_eq!(e.of_tenant(TenantId(7)), 0);
        assert_eq!(e.len(), 2900);
        assert!(e.iter().all(|(_, t, _)| t != TenantId(7)));
        // Nothing bound to tenant 31: no shard copied, none visited.
        let before = e.clone();
        e.remove_tenant(TenantId(31));
        let shared = |a: &Eips, b: &Eips| {
            a.by_public
                .iter()
                .zip(&b.by_public)
                .all(|(x, y)| Arc::ptr_eq(x, y))
                && a.by_private
                    .iter()
                    .zip(&b.by_private)
                    .all(|(x, y)| Arc::ptr_eq(x, y))
        };
        assert!(shared(&e, &before));
        assert_eq!(e.len(), 2900);
    }
}
