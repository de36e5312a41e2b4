//! The flow key: zone and 5-tuple packed into 16 bytes, and its hash.

use std::fmt;
use std::net::Ipv4Addr;

/// Where a packet's 5-tuple lives: the public side, or one tenant's private
/// address space. Tenants overlap freely (both may use 10.0.0.7), so the
/// zone is part of every key, as VPP puts the FIB index in its session key.
///
/// 24 bits: 0 is the public side, `tenant index + 1` a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Zone(u32);

impl Zone {
    /// The Internet side of the gateway.
    pub const PUBLIC: Zone = Zone(0);
    /// The largest zone value (24 bits).
    pub const MAX: u32 = (1 << 24) - 1;

    /// The zone with raw value `raw`, if it fits in 24 bits.
    pub const fn new(raw: u32) -> Option<Zone> {
        if raw <= Self::MAX {
            Some(Zone(raw))
        } else {
            None
        }
    }

    /// The zone of the tenant at `index` (`index + 1`), if it fits.
    pub fn tenant(index: usize) -> Option<Zone> {
        u32::try_from(index)
            .ok()
            .and_then(|i| i.checked_add(1))
            .and_then(Zone::new)
    }

    /// The raw 24-bit value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The tenant index, or `None` for the public side.
    pub fn tenant_index(self) -> Option<usize> {
        self.0.checked_sub(1).map(|i| i as usize)
    }
}

/// A flow key: zone, IP protocol, source and destination IPv4 address and
/// port, in 16 bytes. For ICMP echo the identifier stands in for both ports
/// (as conntrack does), so that a request and its reply are one flow.
///
/// Two little-endian words:
///
/// ```text
/// lo: zone (24) | protocol (8) | source address (32)
/// hi: destination address (32) | destination port (16) | source port (16)
/// ```
///
/// Addresses and ports lie in the words as a little-endian load of their
/// bytes on the wire reads them: byte-swapped from the host-order integers
/// the rest of the dataplane keeps (and the accessors give), so that the
/// fast path's header pass builds a key from the words it loaded, with no
/// byte swap ([`FlowKey::from_wire`]; the key is the table's alone, any
/// order that keeps equality would do). Every bit pattern is a valid key;
/// equality is bitwise.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
// `lo` then `hi` in memory: the flow table prefetches a key's last word.
#[repr(C)]
pub struct FlowKey {
    lo: u64,
    hi: u64,
}

impl FlowKey {
    /// The key of a packet from `src:src_port` to `dst:dst_port` in `zone`.
    #[inline]
    pub const fn new(
        zone: Zone,
        protocol: u8,
        src: u32,
        src_port: u16,
        dst: u32,
        dst_port: u16,
    ) -> FlowKey {
        FlowKey::from_wire(
            zone,
            protocol,
            src.swap_bytes(),
            dst.swap_bytes(),
            Self::wire_ports(src_port, dst_port),
        )
    }

    /// The key of a packet whose addresses and ports are given as a
    /// little-endian load of their wire bytes reads them: `src` and `dst`
    /// the addresses' four bytes, `ports` the source port's two and the
    /// destination port's two, in that order.
    #[inline(always)]
    pub const fn from_wire(zone: Zone, protocol: u8, src: u32, dst: u32, ports: u32) -> FlowKey {
        FlowKey {
            lo: (zone.0 as u64) << 40 | (protocol as u64) << 32 | src as u64,
            hi: (dst as u64) << 32 | ports as u64,
        }
    }

    /// Host-order ports as [`FlowKey::from_wire`] takes them.
    #[inline(always)]
    pub const fn wire_ports(src_port: u16, dst_port: u16) -> u32 {
        src_port.swap_bytes() as u32 | (dst_port.swap_bytes() as u32) << 16
    }

    /// The key of the packets going the other way in the same zone:
    /// addresses and ports swapped. (A NATed flow's reply key is built
    /// with [`FlowKey::new`] from the translated tuple instead.)
    #[inline]
    pub const fn reversed(self) -> FlowKey {
        FlowKey::new(
            self.zone(),
            self.protocol(),
            self.dst(),
            self.dst_port(),
            self.src(),
            self.src_port(),
        )
    }

    #[inline]
    pub const fn zone(self) -> Zone {
        Zone((self.lo >> 40) as u32)
    }

    #[inline]
    pub const fn protocol(self) -> u8 {
        (self.lo >> 32) as u8
    }

    #[inline]
    pub const fn src(self) -> u32 {
        (self.lo as u32).swap_bytes()
    }

    #[inline]
    pub const fn dst(self) -> u32 {
        ((self.hi >> 32) as u32).swap_bytes()
    }

    #[inline]
    pub const fn src_port(self) -> u16 {
        (self.hi as u16).swap_bytes()
    }

    #[inline]
    pub const fn dst_port(self) -> u16 {
        ((self.hi >> 16) as u16).swap_bytes()
    }

    /// The two packed words, `[lo, hi]`.
    #[inline]
    pub const fn words(self) -> [u64; 2] {
        [self.lo, self.hi]
    }

    /// The key's first and last word in memory: where a key that
    /// straddles two cache lines begins and ends (the flow table's
    /// prefetch of an entry).
    #[inline(always)]
    pub(super) const fn first_word(&self) -> &u64 {
        &self.lo
    }

    #[inline(always)]
    pub(super) const fn last_word(&self) -> &u64 {
        &self.hi
    }

    /// The key from its two packed words (any value is a valid key).
    #[inline]
    pub const fn from_words(words: [u64; 2]) -> FlowKey {
        FlowKey {
            lo: words[0],
            hi: words[1],
        }
    }

    /// The 16 bytes as they would lie in memory on x86 (`lo` then `hi`,
    /// little endian): what a byte-keyed table such as `rte_hash` is given.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.lo.to_le_bytes());
        b[8..].copy_from_slice(&self.hi.to_le_bytes());
        b
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowKey({self})")
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zone {} proto {} {}:{} -> {}:{}",
            self.zone().get(),
            self.protocol(),
            Ipv4Addr::from(self.src()),
            self.src_port(),
            Ipv4Addr::from(self.dst()),
            self.dst_port()
        )
    }
}

/// `a * b` as 128 bits, the halves xored: one `mul` instruction that mixes
/// every input bit into the middle of the result (the core of foldhash and
/// of aHash's fallback).
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The table's hash of a key under a per-table secret `seed`: one folded
/// multiply of the key's two words, each xored with half of the seed (the
/// 16-byte case of foldhash): ~5 instructions, 4 cycles of latency, no
/// memory access. Seeded, so that a sender who picks ports cannot aim at
/// one bucket without knowing the seed; not a cryptographic guarantee.
/// The table takes its signature from the low bits and its bucket from the
/// high ones, the best-mixed bits of the product being in the middle.
#[inline(always)]
pub(crate) fn hash(key: &FlowKey, seed: &[u64; 2]) -> u64 {
    folded_multiply(key.lo ^ seed[0], key.hi ^ seed[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let z = Zone::tenant(41).unwrap();
        let k = FlowKey::new(z, 6, 0x0a00_0007, 40000, 0x0101_0107, 22);
        assert_eq!(k.zone(), z);
        assert_eq!(k.zone().get(), 42);
        assert_eq!(k.zone().tenant_index(), Some(41));
        assert_eq!(k.protocol(), 6);
        assert_eq!(k.src(), 0x0a00_0007);
        assert_eq!(k.src_port(), 40000);
        assert_eq!(k.dst(), 0x0101_0107);
        assert_eq!(k.dst_port(), 22);
        let r = k.reversed();
        assert_eq!((r.src(), r.src_port()), (k.dst(), k.dst_port()));
        assert_eq!(r.reversed(), k);
        assert_eq!(FlowKey::from_words(k.words()), k);
        assert_eq!(
            k.to_string(),
            "zone 42 proto 6 10.0.0.7:40000 -> 1.1.1.7:22"
        );
        let b = k.to_bytes();
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), k.words()[0]);
    }

    /// A key built from a header's wire bytes, as the fast path builds it,
    /// is the key of the host-order fields read from them, as the full
    /// path builds it.
    #[test]
    fn a_key_from_the_wire_is_the_key_of_its_fields() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (src, dst) = (x as u32, (x >> 32) as u32);
            let (sport, dport) = ((x >> 8) as u16, (x >> 40) as u16);
            let zone = Zone::new((x >> 20) as u32 & Zone::MAX).unwrap();
            let protocol = (x >> 56) as u8;
            let mut ports = [0u8; 4];
            ports[..2].copy_from_slice(&sport.to_be_bytes());
            ports[2..].copy_from_slice(&dport.to_be_bytes());
            let wire = |b: [u8; 4]| u32::from_le_bytes(b);
            let k = FlowKey::from_wire(
                zone,
                protocol,
                wire(src.to_be_bytes()),
                wire(dst.to_be_bytes()),
                wire(ports),
            );
            assert_eq!(k, FlowKey::new(zone, protocol, src, sport, dst, dport));
            assert_eq!(
                (k.src(), k.src_port(), k.dst(), k.dst_port()),
                (src, sport, dst, dport)
            );
        }
    }

    #[test]
    fn zone_limits() {
        assert_eq!(Zone::PUBLIC.tenant_index(), None);
        assert_eq!(Zone::new(Zone::MAX).map(Zone::get), Some(Zone::MAX));
        assert_eq!(Zone::new(Zone::MAX + 1), None);
        assert_eq!(Zone::tenant(Zone::MAX as usize - 1), Zone::new(Zone::MAX));
        assert_eq!(Zone::tenant(Zone::MAX as usize), None);
        let k = FlowKey::new(Zone::new(Zone::MAX).unwrap(), 255, u32::MAX, 1, 2, 3);
        assert_eq!(k.zone().get(), Zone::MAX);
        assert_eq!(k.protocol(), 255);
    }

    #[test]
    fn hash_depends_on_every_field_and_the_seed() {
        let base = FlowKey::new(Zone::PUBLIC, 17, 1, 2, 3, 4);
        let seed = [0x1234, 0x5678];
        let h = hash(&base, &seed);
        let others = [
            FlowKey::new(Zone::new(1).unwrap(), 17, 1, 2, 3, 4),
            FlowKey::new(Zone::PUBLIC, 6, 1, 2, 3, 4),
            FlowKey::new(Zone::PUBLIC, 17, 9, 2, 3, 4),
            FlowKey::new(Zone::PUBLIC, 17, 1, 9, 3, 4),
            FlowKey::new(Zone::PUBLIC, 17, 1, 2, 9, 4),
            FlowKey::new(Zone::PUBLIC, 17, 1, 2, 3, 9),
        ];
        for o in others {
            assert_ne!(hash(&o, &seed), h, "{o}");
        }
        assert_ne!(hash(&base, &[1, 2]), h);
    }
}
