//! The compiled form of a small table: its prefixes, longest first, as
//! parallel arrays scanned in full on every lookup.
//!
//! A tenant's VRF holds a handful of routes, and a pipeline touches
//! thousands of such tables, so what a lookup costs there is the number of
//! cache lines it misses on and the length of the chain of dependent
//! loads, not the arithmetic. A Poptrie walk to a /32 under an 8-bit top
//! array is five dependent loads (top, then four nodes), each likely a
//! miss. Here the whole table is three cache lines inside the [`Lpm`]
//! header itself (networks, masks, next hops), no pointer is followed, and
//! the only dependent load is the next hop once the scan has picked it.
//!
//! The scan is branch-free: every slot is compared (LLVM turns the loop
//! into four SSE compares and mask extractions), the hits form a bitmap,
//! and since the prefixes are sorted longest first the lowest set bit is
//! the longest match. Two prefixes of the same length that both match an
//! address are the same prefix, so ties cannot happen. Unused slots hold a
//! network that no masked address can equal (`1` under mask `0`).
//!
//! [`Lpm`]: super::Lpm

use super::EMPTY;

/// The most routes a table may have to be compiled into the small form.
///
/// 16 keeps the arrays at three cache lines (the [`Lpm`](super::Lpm) is
/// 320 bytes) and covers the 64k × 16-route budget case. Measured
/// (`cargo bench --bench lpm -- lpm_small`, 1000 tables, noisy 2-vCPU VM):
/// ~20 ns per single lookup (13–14 ns batched) at 3, 8 and 16 routes,
/// against 55–100 ns for the same tables as 8-bit-top Poptries. A larger
/// bound (32) was not measured yet: it would add 192 bytes to every table.
pub const SMALL_MAX_ROUTES: usize = 16;
// `Small::lookup` keeps its bitmap, and a sentinel past it, in 32 bits.
const _: () = assert!(SMALL_MAX_ROUTES < 32);

/// A network no address under mask 0 equals: the filler of unused slots.
const PAD_NET: u32 = 1;

/// Up to [`SMALL_MAX_ROUTES`] prefixes, sorted longest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(super) struct Small {
    net: [u32; SMALL_MAX_ROUTES],
    mask: [u32; SMALL_MAX_ROUTES],
    hop: [u32; SMALL_MAX_ROUTES],
}

impl Small {
    /// No routes: every slot unused.
    pub(super) const EMPTY: Small = Small {
        net: [PAD_NET; SMALL_MAX_ROUTES],
        mask: [0; SMALL_MAX_ROUTES],
        hop: [EMPTY; SMALL_MAX_ROUTES],
    };

    /// The table of `routes`, `(network, length, next hop)` with distinct
    /// prefixes and no host bits set, or `None` if there are too many.
    pub(super) fn new(routes: &mut [(u32, u8, u32)]) -> Option<Small> {
        if routes.len() > SMALL_MAX_ROUTES {
            return None;
        }
        // Longest first; within a length by address, so that the compiled
        // form (and its `PartialEq`) does not depend on hash order.
        routes.sort_unstable_by_key(|&(a, l, _)| (u8::MAX - l, a));
        let mut s = Small::EMPTY;
        for (i, &(a, l, nh)) in routes.iter().enumerate() {
            let m = mask(l);
            if let (Some(n), Some(k), Some(h)) =
                (s.net.get_mut(i), s.mask.get_mut(i), s.hop.get_mut(i))
            {
                *n = a & m;
                *k = m;
                *h = nh;
            }
        }
        Some(s)
    }

    /// The leaf for `addr`: the next hop of the longest matching prefix,
    /// or [`EMPTY`].
    #[inline(always)]
    pub(super) fn lookup(&self, addr: u32) -> u32 {
        // 32 bits: a 64-bit bitmap widened every lane before the OR.
        let mut hits = 0u32;
        for (i, (&n, &m)) in self.net.iter().zip(&self.mask).enumerate() {
            hits |= u32::from(addr & m == n) << i;
        }
        // A sentinel bit past the last slot: no hit reads as index
        // SMALL_MAX_ROUTES, which `get` turns into "no route".
        let first = (hits | 1 << SMALL_MAX_ROUTES).trailing_zeros() as usize;
        self.hop.get(first).copied().unwrap_or(EMPTY)
    }
}

fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_full() {
        assert_eq!(Small::EMPTY.lookup(0), EMPTY);
        assert_eq!(Small::EMPTY.lookup(1), EMPTY);
        assert_eq!(Small::EMPTY.lookup(u32::MAX), EMPTY);
        let mut r: Vec<_> = (0..SMALL_MAX_ROUTES as u32)
            .map(|i| (i << 8, 24, i))
            .collect();
        let s = Small::new(&mut r).unwrap();
        for i in 0..SMALL_MAX_ROUTES as u32 {
            assert_eq!(s.lookup((i << 8) | 0x42), i);
        }
        assert_eq!(s.lookup((SMALL_MAX_ROUTES as u32) << 8), EMPTY);
        r.push((0, 0, 99));
        assert!(Small::new(&mut r).is_none());
    }

    #[test]
    fn longest_wins_whatever_the_insert_order() {
        let mut r = vec![(0, 0, 1), (0x0a00_0007, 32, 3), (0x0a00_0000, 24, 2)];
        let s = Small::new(&mut r).unwrap();
        assert_eq!(s.lookup(0x0a00_0007), 3);
        assert_eq!(s.lookup(0x0a00_0008), 2);
        assert_eq!(s.lookup(0x0b00_0000), 1);
        let mut r2 = vec![(0x0a00_0000, 24, 2), (0, 0, 1), (0x0a00_0007, 32, 3)];
        assert_eq!(Small::new(&mut r2), Some(s));
    }
}
