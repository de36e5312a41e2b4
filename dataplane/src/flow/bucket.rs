//! A bucket of the flow table: eight slots in one cache line, each a
//! 16-bit signature and the index of a flow's key, and the SWAR compare
//! that finds a signature among the eight in a few word operations.

/// Slots per bucket.
pub(super) const SLOTS: usize = 8;
/// A slot's index when empty (its signature is then 0).
pub(super) const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Bucket {
    /// The 16-bit signatures of the 8 slots, four to a word (slot `i` in
    /// bits `16 * (i % 4)` of word `i / 4`), so that a compare is a few
    /// word operations (SWAR) rather than whatever LLVM makes of eight
    /// `u16` compares.
    pub(super) sig: [u64; 2],
    pub(super) idx: [u32; SLOTS],
}

/// What an out-of-range bucket index reads as (never, in a table built by
/// `new`): no candidates.
pub(super) static NO_BUCKET: Bucket = Bucket::EMPTY;

/// The low bit of every 16-bit lane.
const LANE_LO: u64 = 0x0001_0001_0001_0001;
/// The high bit of every 16-bit lane.
const LANE_HI: u64 = 0x8000_8000_8000_8000;

/// Bit 15 of each 16-bit lane of the result is set iff that lane of `x` is
/// zero; every other bit is clear. Exact: no borrow crosses lanes, because
/// the low 15 bits are added without their top bit.
#[inline(always)]
fn zero_lanes(x: u64) -> u64 {
    !(((x & !LANE_HI).wrapping_add(!LANE_HI)) | x) & LANE_HI
}

/// Bit 15 of the lowest zero 16-bit lane of `x` set, if `x` has one, and
/// maybe bit 15 of lanes above it; nothing if no lane is zero: the lowest
/// set bit is exact, which is all a first match needs, in fewer
/// instructions than [`zero_lanes`]. A zero lane's borrow may mark the
/// lanes above it; the lanes below, all at least 1, borrow nothing, and a
/// lane's bit 15 is set only if the lane was 0 (`x - 1` has bit 15 while
/// `x` has it not).
#[inline(always)]
fn first_zero_lane(x: u64) -> u64 {
    x.wrapping_sub(LANE_LO) & !x & LANE_HI
}

/// Bits 15, 31, 47 and 63 of `z` (as `zero_lanes` leaves them) as bits 0..4.
#[inline(always)]
fn gather_lanes(z: u64) -> u32 {
    // Bit 16k of z >> 15 times 2^(48 - 15k) lands on bit 48 + k; the cross
    // products fall on distinct bits below 48 or past 63.
    (((z >> 15).wrapping_mul((1 << 48) | (1 << 33) | (1 << 18) | (1 << 3)) >> 48) & 0xf) as u32
}

impl Bucket {
    pub(super) const EMPTY: Bucket = Bucket {
        sig: [0; 2],
        idx: [EMPTY; SLOTS],
    };

    #[inline(always)]
    pub(super) fn sig(&self, slot: usize) -> u16 {
        (self.sig[(slot / 4) & 1] >> (16 * (slot % 4))) as u16
    }

    #[inline(always)]
    pub(super) fn set_sig(&mut self, slot: usize, sig: u16) {
        let w = &mut self.sig[(slot / 4) & 1];
        let shift = 16 * (slot % 4);
        *w = (*w & !(0xffff << shift)) | (u64::from(sig) << shift);
    }

    /// Bit `i` set where slot `i` has signature `sig`.
    #[inline(always)]
    pub(super) fn matches(&self, sig: u16) -> u32 {
        let pat = u64::from(sig) * LANE_LO;
        gather_lanes(zero_lanes(self.sig[0] ^ pat))
            | gather_lanes(zero_lanes(self.sig[1] ^ pat)) << 4
    }

    /// The first slot with signature `sig`, or [`SLOTS`] if none.
    #[inline(always)]
    pub(super) fn first_match(&self, sig: u16) -> usize {
        let pat = u64::from(sig) * LANE_LO;
        let z0 = first_zero_lane(self.sig[0] ^ pat);
        let z1 = first_zero_lane(self.sig[1] ^ pat);
        // trailing_zeros of 0 is 64: 4 + 64 / 16 = 8 = SLOTS.
        if z0 != 0 {
            (z0.trailing_zeros() / 16) as usize
        } else {
            4 + (z1.trailing_zeros() / 16) as usize
        }
    }

    /// [`Bucket::first_match`] without a branch, for a bucket that is a
    /// line still on its way (a staged lookup's): a branch on which half
    /// holds the match (about even odds at 80 % occupancy) is mispredicted
    /// for some 40 % of keys (by where matches sit; no counters here), each
    /// resolved only when the line arrives and each flushing the work, and
    /// the entry prefetches, of the keys after it. As one 128-bit count
    /// LLVM selects the half with a `cmov` (`tgw-perf flow` at 1M flows:
    /// 0.85–0.89× `rte_hash` before, 0.90–0.93× after, docs/perf.md
    /// session 11). Where the line is in the cache the branch is the
    /// cheaper: 13 instructions a frame more on `pipeline_staged nat` with
    /// this one in `lookup_cached`.
    #[inline(always)]
    pub(super) fn first_match_late(&self, sig: u16) -> usize {
        let pat = u64::from(sig) * LANE_LO;
        let z0 = first_zero_lane(self.sig[0] ^ pat);
        let z1 = first_zero_lane(self.sig[1] ^ pat);
        // z1's lowest bit counts only when z0 is 0, where it is exact.
        // trailing_zeros of 0 is 128: 128 / 16 = 8 = SLOTS.
        ((u128::from(z1) << 64 | u128::from(z0)).trailing_zeros() / 16) as usize
    }

    #[inline]
    pub(super) fn free_slot(&self) -> Option<usize> {
        match self.first_match(0) {
            SLOTS => None,
            s => Some(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn matches_finds_every_equal_slot() {
        let mut b = Bucket::EMPTY;
        for (i, s) in [5, 1, 5, 0, 9, 5, 0, 5].into_iter().enumerate() {
            b.set_sig(i, s);
            assert_eq!(b.sig(i), s);
        }
        assert_eq!(b.matches(5), 0b1010_0101);
        assert_eq!(b.matches(0), 0b0100_1000);
        assert_eq!(b.matches(2), 0);
        assert_eq!(b.free_slot(), Some(3));
        assert_eq!(b.first_match(5), 0);
        assert_eq!(b.first_match(9), 4);
        assert_eq!(b.first_match(2), SLOTS);
        for sig in [5, 9, 0, 2] {
            assert_eq!(b.first_match_late(sig), b.first_match(sig), "{sig}");
        }
        // The first match below lanes that its borrow marks too (1 and 0
        // above a zero lane), above lanes with and without bit 15 (all
        // as xored with the signature): the lowest, in either half.
        let lanes = [1u16, 0x8000, 0x8001, 0xffff, 0x1000, 0];
        for first in 0..=SLOTS {
            for (below, above) in lanes.iter().flat_map(|&b| lanes.map(|a| (b, a))) {
                if below == 0 {
                    continue;
                }
                let mut b = Bucket::EMPTY;
                for i in 0..SLOTS {
                    let x = match i.cmp(&first) {
                        std::cmp::Ordering::Less => below,
                        std::cmp::Ordering::Equal => 0,
                        std::cmp::Ordering::Greater => above,
                    };
                    b.set_sig(i, x ^ 7);
                }
                let want = (0..SLOTS).find(|&i| b.sig(i) == 7).unwrap_or(SLOTS);
                assert_eq!(want, first);
                let what = format!("{first} {below:#x} {above:#x}");
                assert_eq!(b.first_match(7), want, "{what}");
                assert_eq!(b.first_match_late(7), want, "{what}");
            }
        }
        assert_eq!(Bucket::EMPTY.first_match(3), SLOTS);
        assert_eq!(Bucket::EMPTY.first_match_late(3), SLOTS);
        // Every lane value, against every other: no borrow between lanes.
        for v in [0u16, 1, 0x7fff, 0x8000, 0xffff, 0x8001] {
            let mut b = Bucket::EMPTY;
            for i in 0..SLOTS {
                b.set_sig(i, if i % 2 == 0 { v } else { v ^ 1 });
            }
            assert_eq!(b.matches(v), 0b0101_0101, "{v:#x}");
            assert_eq!(b.matches(v ^ 1), 0b1010_1010, "{v:#x}");
        }
    }
}
