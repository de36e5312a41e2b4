//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept unfolded in a `u64` so that callers can add up pieces (a
//! pseudo-header, a header, a payload) and fold once. Pieces must start at
//! even offsets of the summed message, except the last one, since an odd
//! trailing byte is padded as the high byte of a word.

use super::{IpProtocol, Ipv4Addr};

/// The unfolded one's-complement sum of `data`, read as big-endian 16-bit
/// words with an odd trailing byte padded with zero.
///
/// Reads eight bytes at a time and adds their two 32-bit halves: a 32-bit
/// word is congruent to the sum of its 16-bit halves modulo 0xffff, so the
/// fold at the end gives the same result as a 16-bit loop for a quarter of
/// the additions. The `u64` cannot overflow below 16 GiB of data.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        acc += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    if let [a, b, tail @ ..] = rest {
        acc += u64::from(u16::from_be_bytes([*a, *b]));
        rest = tail;
    }
    if let [a] = rest {
        acc += u64::from(*a) << 8;
    }
    acc
}

/// Folds an unfolded sum to 16 bits with end-around carries.
///
/// The result is zero only if the sum is zero: a non-zero multiple of 0xffff
/// folds to 0xffff, one's-complement "negative zero", as a hardware adder
/// would give.
///
/// Branch-free, for the fast path: each step keeps the value modulo 0xffff
/// and a non-zero sum non-zero, and the bounds shrink from 2^64 to below
/// 2^33, 2^17 + 2^16, 2^16 + 2, and at last 2^16.
#[inline]
pub fn fold(s: u64) -> u16 {
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// [`fold`] for a sum below 2^32, such as a few 16-bit words, for the
/// incremental updates of every forwarded packet and the outer header of
/// every encapsulated one. One step (the Linux kernel's `csum_fold`): the
/// upper half of `s + (s rotated by 16)` is `hi + lo` with the carry out
/// of the lower half's `lo + hi` added in, which is the end-around carry,
/// and a carry out of the top is the one the fold drops. The same answer
/// as two steps of `(s & 0xffff) + (s >> 16)` for every `s`, in a rotate,
/// an add and a shift against six instructions.
#[inline(always)]
pub(crate) fn fold32(s: u32) -> u16 {
    (s.wrapping_add(s.rotate_right(16)) >> 16) as u16
}

/// The one's complement sum of two 16-bit words: [`fold32`] of `a + b`
/// in one step, the end-around carry added back. A sum of two words is
/// below 2^17 - 1, so one carry is all there is, and the result is at most
/// 0xffff: an add and an add-with-carry where [`fold32`] takes two folds
/// (callgrind: the flow hit applies two or three changes a packet).
#[inline(always)]
fn add_words(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s + u16::from(carry)
}

/// Whether a 20-byte IPv4 header (no options) verifies: its words,
/// checksum included, sum to 0xffff (RFC 1071). Summed as five 32-bit
/// words in the machine's byte order, without the byte swaps of [`sum`]:
/// a 32-bit word is congruent to the sum of its halves modulo 0xffff, and
/// a sum is congruent to zero in either byte order (RFC 1071 §2(B)), so
/// the answer is [`sum`]'s. For the fast paths' header passes.
///
/// Folding keeps a sum's remainder modulo 0xffff and gives 0 only for a
/// sum of 0, so "folds to 0xffff" is "a multiple of 0xffff, not 0": one
/// remainder (a multiply by the reciprocal) instead of four folds
/// (callgrind: 3 to 4 instructions a header, two headers a decapsulated
/// frame). The remainder is not computed either: 0xffff is odd, so a
/// multiple of it times its inverse modulo 2^64 is the quotient, at most
/// `u64::MAX / 0xffff`, and any other sum lands above (Granlund and
/// Montgomery; Hacker's Delight §10-17): one multiply and a compare, where
/// LLVM left the quotient's high multiply and the subtraction (3
/// instructions a header).
#[inline(always)]
pub fn verify_ipv4_header(h: &[u8; 20]) -> bool {
    let word = |at: usize| u64::from(u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]));
    let s = word(0) + word(4) + word(8) + word(12) + word(16);
    s != 0 && s.wrapping_mul(INVERSE_OF_0XFFFF) <= u64::MAX / 0xffff
}

/// 0xffff's inverse modulo 2^64: `0xffff * INVERSE_OF_0XFFFF` wraps to 1.
const INVERSE_OF_0XFFFF: u64 = 0xfffe_fffe_fffe_ffff;
const _: () = assert!(0xffff_u64.wrapping_mul(INVERSE_OF_0XFFFF) == 1);

/// The Internet checksum of `data`: the complement of its folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The unfolded sum of the IPv4 pseudo-header that TCP and UDP checksums
/// cover: source, destination, zero, protocol, and the transport length.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, len: usize) -> u64 {
    let s = u32::from(src);
    let d = u32::from(dst);
    // A length over 0xffff cannot be carried by IPv4; summing it as a wider
    // integer keeps this total rather than silently truncating it.
    u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol.0)
        + len as u64
}

/// The TCP or UDP checksum of `segment` (header with a zero checksum field,
/// and payload) between `src` and `dst`. UDP callers must apply the zero
/// rule themselves (see [`udp_final`]).
#[inline]
pub fn transport(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, segment: &[u8]) -> u16 {
    !fold(pseudo_header(src, dst, protocol, segment.len()) + sum(segment))
}

/// Whether `segment`, checksum field included, verifies against the
/// pseudo-header.
#[inline]
pub fn verify_transport(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    segment: &[u8],
) -> bool {
    fold(pseudo_header(src, dst, protocol, segment.len()) + sum(segment)) == 0xffff
}

/// The UDP rule for a computed checksum: zero means "no checksum" on the
/// wire, so a sum that complements to zero is sent as 0xffff (RFC 768).
#[inline]
pub fn udp_final(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// RFC 1624 eqn. 3: the checksum `hc` after a 16-bit word of the covered data
/// changes from `old` to `new`, `HC' = ~(~HC + ~m + m')`.
///
/// The word must sit at an even offset of the summed message; for a field at
/// an odd offset pass both values byte-swapped.
#[inline]
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    Delta::new().add_u16(old, new).apply(hc)
}

/// [`update_u16`] for a 32-bit field (at an even offset), such as an IPv4
/// address or a TCP sequence number.
#[inline]
pub fn update_u32(hc: u16, old: u32, new: u32) -> u16 {
    Delta::new().add_u32(old, new).apply(hc)
}

/// The checksum `hc` of a header computed with some of its 16-bit fields
/// zero, once those fields hold `words`: each changes from 0, so
/// RFC 1624's `~m + m'` is `0xffff + m'`, and the 0xffffs are kept so that
/// the result is never the one's-complement zero a receiver would refuse.
#[inline]
pub fn fill_zero_fields<const N: usize>(hc: u16, words: [u16; N]) -> u16 {
    let mut s = u64::from(!hc);
    for w in words {
        s += 0xffff + u64::from(w);
    }
    !fold(s)
}

/// [`update_u32`] for an IPv4 address: the same call fixes the IPv4 header
/// checksum and, through the pseudo-header, the TCP or UDP checksum.
#[inline]
pub fn update_addr(hc: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(hc, u32::from(old), u32::from(new))
}

/// An accumulated checksum change, `~m + m'` summed over several rewritten
/// fields, so that a NAT rewrite can be precomputed once per flow and applied
/// to every packet with a single addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Delta(u16);

impl Delta {
    /// No change.
    pub const fn new() -> Self {
        Delta(0)
    }

    /// An IPv4 TTL decremented by one, whatever it was: the word it shares
    /// with the protocol goes from `m` to `m - 0x100`, and `~m + m - 0x100`
    /// is `0xffff - 0x100` for every `m` (RFC 1624).
    pub const TTL_DECREMENT: Delta = Delta(0xfeff);

    /// The opposite change (one's complement negation): `d.combine(d.negate())`
    /// is no change.
    #[inline]
    #[must_use]
    pub const fn negate(self) -> Self {
        Delta(!self.0)
    }

    /// Adds a 16-bit word changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn add_u16(self, old: u16, new: u16) -> Self {
        Delta(fold32(u32::from(self.0) + u32::from(!old) + u32::from(new)))
    }

    /// Adds a 32-bit field changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn add_u32(self, old: u32, new: u32) -> Self {
        self.add_u16((old >> 16) as u16, (new >> 16) as u16)
            .add_u16(old as u16, new as u16)
    }

    /// Adds an IPv4 address changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn add_addr(self, old: Ipv4Addr, new: Ipv4Addr) -> Self {
        self.add_u32(u32::from(old), u32::from(new))
    }

    /// Combines two changes.
    #[inline]
    #[must_use]
    pub fn combine(self, other: Delta) -> Self {
        Delta(add_words(self.0, other.0))
    }

    /// The change as it applies to a checksum read and written as its two
    /// bytes lie in memory ([`Delta::apply_in_memory`]): byte-swapped on a
    /// little-endian machine. The one's complement sum is the same in
    /// either byte order (RFC 1071 §2(B)), so a change computed once in
    /// memory order saves a packet's update a swap each way. Combine only
    /// changes of the same order.
    #[inline]
    #[must_use]
    pub const fn in_memory_order(self) -> Self {
        Delta(self.0.to_be())
    }

    /// [`Delta::apply`] for a change in memory order and a checksum's two
    /// bytes as they lie in the packet: the bytes [`Delta::apply`] would
    /// write, without a byte swap.
    #[inline]
    pub fn apply_in_memory(self, hc: [u8; 2]) -> [u8; 2] {
        let hc = u16::from_ne_bytes(hc);
        (!add_words(!hc, self.0)).to_ne_bytes()
    }

    /// [`Delta::apply_udp`] for a change in memory order (zero is zero and
    /// 0xffff is 0xffff in either byte order). Tested as one 16-bit word,
    /// not as two bytes: compared and chosen bytewise, the checksum was
    /// loaded, built and stored a byte at a time (callgrind: 7
    /// instructions more a UDP hit). Its three outcomes are chosen as
    /// words and made bytes once: chosen as byte arrays, they were stored
    /// a byte at a time (3 instructions more).
    #[inline]
    pub fn apply_udp_in_memory(self, hc: [u8; 2]) -> [u8; 2] {
        let hc = u16::from_ne_bytes(hc);
        let new = match !add_words(!hc, self.0) {
            _ if hc == 0 => 0,
            0 => 0xffff,
            new => new,
        };
        new.to_ne_bytes()
    }

    /// The checksum `hc` after the change.
    #[inline]
    pub fn apply(self, hc: u16) -> u16 {
        !add_words(!hc, self.0)
    }

    /// [`Delta::apply`] with the UDP rules: a zero checksum means the sender
    /// sent none, so it stays zero; a result of zero is sent as 0xffff.
    #[inline]
    pub fn apply_udp(self, hc: u16) -> u16 {
        if hc == 0 {
            0
        } else {
            udp_final(self.apply(hc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a xorshift generator: the tests' random words.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// The fold as RFC 1071 describes it: add the carries back until none.
    fn fold_by_loop(mut s: u64) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// A header summed with fields zero, then given them, sums as if
    /// computed whole.
    #[test]
    fn filling_zero_fields_matches_a_full_checksum() {
        let mut x = 0x1234_5678_9abc_def1_u64;
        for _ in 0..10_000 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                next(&mut x);
                *b = x as u8;
            }
            h[10..12].fill(0);
            // DSCP/ECN, total length, identification, the flags byte.
            let mut template = h;
            template[1..7].fill(0);
            let partial = checksum(&template);
            let words = [
                u16::from(h[1]),
                u16::from_be_bytes([h[2], h[3]]),
                u16::from_be_bytes([h[4], h[5]]),
                u16::from(h[6]) << 8,
            ];
            let want = checksum(&h);
            assert_eq!(fill_zero_fields(partial, words), want, "{h:02x?}");
        }
    }

    #[test]
    fn fold32_matches_the_loop_below_2_pow_32() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..100_000 {
            next(&mut x);
            let s = x as u32;
            assert_eq!(fold32(s), fold_by_loop(u64::from(s)), "{s:#x}");
        }
        // Every sum of up to four words (the outer header's update), and
        // the edges where a carry starts or stops.
        let edges = [0x1_0000, 0x1_fffe, 0x1_ffff, 0x8000_7fff, 0xffff_0000];
        for s in (0..=1 << 18).chain(edges).chain([u32::MAX, u32::MAX - 1]) {
            assert_eq!(fold32(s), fold_by_loop(u64::from(s)), "{s:#x}");
        }
    }

    /// Every first word against the words where a carry starts or stops
    /// and a few at random: the sum of two words as the loop folds it.
    #[test]
    fn add_words_is_the_folded_sum_of_two_words() {
        let mut x = 0x6a09_e667_f3bc_c908_u64;
        for a in 0..=u16::MAX {
            next(&mut x);
            for b in [0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff, !a, a, x as u16] {
                let want = fold_by_loop(u64::from(a) + u64::from(b));
                assert_eq!(add_words(a, b), want, "{a:#x} + {b:#x}");
            }
        }
    }

    #[test]
    fn fold_matches_the_loop_at_the_edges_and_at_random() {
        let edges = [0, 1, 0xffff, 0x1_0000, 0x1_fffe, 0xffff_ffff, 0x1_0000_0000];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let random = (0..100_000).map(|_| next(&mut x));
        for s in edges
            .into_iter()
            .chain([u64::MAX, u64::MAX - 1])
            .chain(random)
        {
            assert_eq!(fold(s), fold_by_loop(s), "{s:#x}");
        }
    }

    // RFC 1071 section 3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut slow: u64 = 0;
            for pair in data.chunks(2) {
                let hi = u64::from(pair[0]) << 8;
                let lo = pair.get(1).map_or(0, |b| u64::from(*b));
                slow += hi | lo;
            }
            assert_eq!(fold(sum(&data)), fold(slow), "len {len}");
        }
    }

    // RFC 1624 section 4: HC 0xdd2f, m 0x5555 -> m' 0x3285 gives 0x0000 (eqn. 3), where
    // eqn. 2 would have given 0xffff.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    /// A change kept in memory order and applied to a checksum's bytes as
    /// they lie writes the bytes the big-endian update writes, for every
    /// checksum against random changes (RFC 1071 §2(B)), UDP's rules too.
    #[test]
    fn a_change_in_memory_order_writes_the_same_bytes() {
        let mut x = 0x0123_4567_89ab_cdef_u64;
        for hc in 0..=u16::MAX {
            next(&mut x);
            for d in [
                Delta(x as u16),
                Delta(0),
                Delta(0xffff),
                Delta::TTL_DECREMENT,
            ] {
                let bytes = hc.to_be_bytes();
                let mem = d.in_memory_order();
                assert_eq!(mem.apply_in_memory(bytes), d.apply(hc).to_be_bytes());
                let udp = d.apply_udp(hc).to_be_bytes();
                assert_eq!(mem.apply_udp_in_memory(bytes), udp, "{hc:#x} {d:?}");
                let other = Delta((x >> 16) as u16);
                let both = d.combine(other).in_memory_order();
                assert_eq!(both, mem.combine(other.in_memory_order()));
            }
        }
    }

    /// The header check in the machine's byte order answers as the
    /// big-endian sum does, for random headers with their checksum right,
    /// off by one bit, or zero, and at the sums' edges.
    #[test]
    fn an_ipv4_header_verifies_alike_in_either_byte_order() {
        let mut x = 0x5851_f42d_4c95_7f2d_u64;
        let mut good = 0;
        for i in 0..200_000 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                next(&mut x);
                *b = x as u8;
            }
            match i % 4 {
                0 => h = [0; 20],
                1 => h.fill(0xff),
                _ => {}
            }
            if i % 3 != 0 {
                h[10..12].fill(0);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                if i % 5 == 0 {
                    h[(x % 20) as usize] ^= 1 << ((x >> 8) % 8);
                }
            }
            let want = fold(sum(&h)) == 0xffff;
            good += usize::from(want);
            assert_eq!(verify_ipv4_header(&h), want, "{h:02x?}");
        }
        assert!(good > 50_000);
    }

    #[test]
    fn udp_zero_stays_zero() {
        let d = Delta::new().add_u16(1, 2);
        assert_eq!(d.apply_udp(0), 0);
        assert_ne!(d.apply_udp(0x1234), 0);
    }
}
