//! IPv4 longest-prefix match for many VRFs.
//!
//! # Shape
//!
//! A compiled [`Lpm`] is a Poptrie (Asai & Ohara, SIGCOMM 2015) with the
//! paper's direct pointing taken one step further. The first `s` bits of
//! the address (18 for a full table) index an array of 32-byte *slots*,
//! and each slot is, where it fits, the whole 6-bit-stride node of its
//! block: a `u64` bitmap of where a run of equal leaves starts among the
//! block's 64 sub-blocks, and the runs. The leaf of sub-block `i` is run
//! number `popcount(bitmap << (63 - i)) - 1`. So a route of up to `s + 6`
//! bits (/24 at 18: 99 % of a BGP table's lookups) is one cache miss, a
//! shift, a popcount and an L1 load. Blocks with a route longer than
//! `s + 6`, or with more runs than a slot holds, point at a full node
//! instead: one cache line with a `u64` bitmap of which slots are child
//! nodes, the run bitmap, base indices, and the first runs inline (the rest
//! spill to a shared array); children are full nodes again, 6 bits each.
//!
//! Leaves are indices into the table's next-hop dictionary (its distinct
//! next hops, "no route" included): one byte when there are at most 254
//! (a full BGP table has a few dozen peers), so 24 runs fit a slot and 40
//! a full node; 16 bits up to 65 534 (12 and 20 runs); past that the next
//! hops themselves (6 and 10). The dictionary is a few hundred bytes and
//! stays in L1. See `trie.rs`.
//!
//! Why this shape, measured (the dated LPM sections of docs/perf.md): a
//! lookup over a table bigger than the caches costs its cache misses, not
//! its arithmetic. The earlier layout (a 1 MiB top array of node indices,
//! 64-byte nodes with 10 inline `u32` runs, 15.4 MiB for 1M routes) took
//! two or three dependent misses per lookup and ran at 0.4x `rte_lpm`;
//! the same code on a 0.6 MiB table ran at 1.5-2x a DIR-24-8. Direct nodes
//! removed one miss (16 MiB, ~0.7x) and byte leaves in 32-byte slots
//! halved the table (8.1 MiB).
//!
//! Why not the alternatives:
//! - DIR-24-8 (`rte_lpm`) spends 64 MiB per table on its 2^24 first level:
//!   fine for one table, impossible for thousands of tenants, and every
//!   lookup misses to DRAM.
//! - VPP's 16-8-8 mtrie (`ip4_mtrie.c`) has a fixed 2^16 root ply of 4-byte
//!   leaves plus a prefix-length byte each (320 KiB per FIB, 20 GiB for 64k
//!   VRFs) and uncompressed 256-slot plies of 1.3 KiB. The length bytes are
//!   for in-place incremental updates, which we do not need: tables are
//!   immutable snapshots rebuilt by the control plane, so the compiled form
//!   can be as dense as we like.
//!
//! Small tables (at most [`SMALL_MAX_ROUTES`] routes: a tenant's VRF) are
//! not Poptries at all: [`LpmBuilder::build`] compiles them into their
//! prefixes, longest first, as parallel arrays of network, mask and next
//! hop inline in the [`Lpm`] itself, and a lookup compares all of them at
//! once (a few SSE compares) and takes the first hit. No pointer is
//! followed: the table is the header that the VRF index already points
//! to. See `small.rs`.
//!
//! The first stride is per table (see [`LpmBuilder::build`]): 8 bits
//! (256 slots, 8 KiB) up to 1024 routes, one more bit per doubling of the
//! route count, at most 18 (8 MiB). [`LpmBuilder::build_with_top_bits`]
//! goes up to 20 (32 MiB of slots).
//!
//! Measured (release, `testgen`; `tgw-perf lpm` against `rte_lpm` in the
//! same process, see docs/perf.md; a shared 2-vCPU VM whose absolute
//! figures move 3x with the neighbours' load, so only same-run ratios):
//! - 1M BGP-like routes: 8.1 MiB (262k slots of which 41k uniform, 2.2k
//!   full nodes, 65 dictionary entries), against `rte_lpm`'s 65 MiB;
//!   built (insert + compile) in 0.6-1.0 s.
//! - 16-route tenant table: 320 bytes, all inline; 64k such VRFs: 20 MiB.
//! - Uniformly random addresses over the 1M table: ~0.8x `rte_lpm_lookup_bulk`
//!   batched (it was 0.4x), ~0.35x one at a time (was 0.12x). What is left
//!   is the miss itself: both take one per lookup, ours into 8 MiB, its
//!   into 64 MiB, and on this VM (L3 shared with other guests, the sibling
//!   vCPU busy) ours does not stay cached enough to win.
//!
//! # Values
//!
//! A route carries a next-hop index, a `u32` in `0..=MAX_NEXT_HOP`; the top
//! bit and one more value are reserved (a child node in the builder, and
//! "no route"). The pipeline keeps its own next-hop table indexed by this
//! `u32`.
//!
//! # Lookups
//!
//! No allocation, no locks, no `unsafe`: every index goes through `get`
//! with a "no route" fallback that a correctly built table never takes.
//! The batched forms ([`Lpm::lookup_bulk`], [`Lpm::lookup_slice`]) go stage
//! by stage, as DPDK's `rte_lpm_lookupx4` and VPP's `ip4_lookup_inline`
//! arrange: every lane's slot address, then a pass that only loads each
//! lane's slot (all misses in flight together: without it the ~20
//! instructions of each step let the reorder buffer hold only a few lanes'
//! loads, 0.41x against 0.73x of a DIR-24-8 in the same run), then the
//! steps on L1 hits. Lanes that need a full node (rare in a full table)
//! go on the same way, level by level. In a full table the branches left
//! (full node or not, spilled run or not) almost always go one way, so
//! they are predicted and do not hold the other lanes back. In a mid-size
//! table of deep tenant routes the child-or-leaf branch is a coin toss,
//! and such tables are slower than under the previous, branch-free walk
//! (docs/perf.md); tables of at most 16 routes use the small form.

mod builder;
mod small;
pub mod testgen;
mod trie;
mod vrf;

use std::fmt;

use small::Small;
use trie::{Byte, Narrow, Wide};

pub use builder::LpmBuilder;
pub use small::SMALL_MAX_ROUTES;
pub use vrf::{VrfId, VrfTables};

/// A slot whose top bit is set holds the index of a child node; otherwise
/// it is a leaf: a next hop or [`EMPTY`].
const NODE: u32 = 1 << 31;
/// The leaf for "no route".
const EMPTY: u32 = NODE - 1;
/// Bits of the address consumed by each node.
const STRIDE: u32 = 6;

/// The largest next-hop index a route may carry.
pub const MAX_NEXT_HOP: u32 = EMPTY - 1;
/// The smallest and largest first stride [`LpmBuilder::build_with_top_bits`]
/// accepts. A first stride of `b` bits is `2^b` direct-pointed 32-byte
/// slots: 20 bits is 32 MiB, half of DIR-24-8's first level.
pub const MIN_TOP_BITS: u8 = 1;
/// See [`MIN_TOP_BITS`].
pub const MAX_TOP_BITS: u8 = 20;

/// Why a route or a table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LpmError {
    /// A prefix length above 32.
    PrefixLenTooLong {
        /// The length given.
        len: u8,
    },
    /// The address has bits set past the prefix length (`10.0.0.1/8`).
    /// [`Prefix::new_truncating`] accepts such input by clearing them.
    HostBitsSet {
        /// The address given.
        addr: u32,
        /// The length given.
        len: u8,
    },
    /// A next hop above [`MAX_NEXT_HOP`].
    NextHopOutOfRange {
        /// The next hop given.
        next_hop: u32,
    },
    /// A first stride outside `MIN_TOP_BITS..=MAX_TOP_BITS`.
    TopBitsOutOfRange {
        /// The stride given.
        bits: u8,
    },
}

impl fmt::Display for LpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::PrefixLenTooLong { len } => write!(f, "prefix length {len} is above 32"),
            Self::HostBitsSet { addr, len } => write!(
                f,
                "{}/{len} has host bits set (did you mean {}/{len}?)",
                Ipv4Fmt(addr),
                Ipv4Fmt(addr & Prefix::mask(len)),
            ),
            Self::NextHopOutOfRange { next_hop } => {
                write!(f, "next hop {next_hop} is above {MAX_NEXT_HOP}")
            }
            Self::TopBitsOutOfRange { bits } => write!(
                f,
                "first stride of {bits} bits is outside {MIN_TOP_BITS}..={MAX_TOP_BITS}"
            ),
        }
    }
}

impl std::error::Error for LpmError {}

struct Ipv4Fmt(u32);

impl fmt::Display for Ipv4Fmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// An IPv4 prefix with no host bits set and a length of at most 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prefix {
    addr: u32,
    len: u8,
}

impl std::hash::Hash for Prefix {
    /// One word per prefix, not one per field: a million-route load spends
    /// a good part of its time hashing into the builder's map.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64((u64::from(self.addr) << 8) | u64::from(self.len));
    }
}

impl Prefix {
    /// `0.0.0.0/0`.
    pub const DEFAULT: Prefix = Prefix { addr: 0, len: 0 };

    /// The prefix `addr/len`; refuses host bits set past `len`, which
    /// usually means a typo the operator wants to hear about.
    pub fn new(addr: u32, len: u8) -> Result<Self, LpmError> {
        if len > 32 {
            return Err(LpmError::PrefixLenTooLong { len });
        }
        if addr & !Self::mask(len) != 0 {
            return Err(LpmError::HostBitsSet { addr, len });
        }
        Ok(Prefix { addr, len })
    }

    /// The prefix `addr/len` with any host bits cleared, as `ip route` does.
    pub fn new_truncating(addr: u32, len: u8) -> Result<Self, LpmError> {
        if len > 32 {
            return Err(LpmError::PrefixLenTooLong { len });
        }
        Ok(Prefix {
            addr: addr & Self::mask(len),
            len,
        })
    }

    /// The network address.
    pub fn addr(self) -> u32 {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub fn length(self) -> u8 {
        self.len
    }

    /// The first address covered.
    pub fn first(self) -> u32 {
        self.addr
    }

    /// The last address covered.
    pub fn last(self) -> u32 {
        self.addr | !Self::mask(self.len)
    }

    /// Whether `addr` falls inside the prefix.
    pub fn contains(self, addr: u32) -> bool {
        addr & Self::mask(self.len) == self.addr
    }

    /// The netmask of a length; lengths above 32 are treated as 32 so that
    /// the error path's formatting cannot overflow a shift.
    fn mask(len: u8) -> u32 {
        match len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Fmt(self.addr), self.len)
    }
}

/// Counts of what a compiled table is made of, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LpmStats {
    /// Number of routes the table was built from.
    pub routes: usize,
    /// Bits resolved by the direct-pointing top array.
    pub top_bits: u8,
    /// Direct-pointed slots (32 bytes each).
    pub top_entries: usize,
    /// Full nodes (64 bytes each) below the slots.
    pub nodes: usize,
    /// Slots whose whole block has one next hop.
    pub uniform_slots: usize,
    /// Leaf runs that did not fit in their node (1, 2 or 4 bytes each).
    pub leaves: usize,
    /// Entries of the next-hop dictionary (0 when leaves are next hops).
    pub next_hops: usize,
    /// Total heap and inline bytes, as [`Lpm::memory_bytes`].
    pub bytes: usize,
}

/// A compiled, immutable IPv4 routing table: the thing workers look up.
///
/// Built by [`LpmBuilder::build`]; self-contained (an inline small table
/// and a few vectors), so it is `Send + Sync` and can be published behind
/// an atomic pointer swap.
///
/// A table of at most [`SMALL_MAX_ROUTES`] routes is compiled into the
/// inline scan table (`top_bits == 0`), which is the first three cache
/// lines of the struct: a lookup there follows no pointer. Bigger tables
/// leave it empty and use the Poptrie.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Lpm {
    small: Small,
    /// 0 for the small form, else the Poptrie's first stride.
    top_bits: u8,
    routes: u32,
    trie: Trie,
}

/// The Poptrie of a table that is not in the small form.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Trie {
    /// None: the small form (or no routes).
    None,
    /// Leaves are byte indices into the table's next-hop dictionary (the
    /// usual case: at most 254 distinct next hops).
    Byte(Byte),
    /// Leaves are 16-bit indices into the dictionary.
    Narrow(Narrow),
    /// Leaves are next hops (more than 65 534 distinct ones).
    Wide(Wide),
}

impl Default for Lpm {
    fn default() -> Self {
        Self::empty()
    }
}

impl Lpm {
    /// A table with no routes; it owns no heap memory.
    pub const fn empty() -> Self {
        Lpm {
            small: Small::EMPTY,
            top_bits: MIN_TOP_BITS,
            routes: 0,
            trie: Trie::None,
        }
    }

    /// The small form of `routes` (distinct prefixes, no host bits), or
    /// `None` if there are more than [`SMALL_MAX_ROUTES`].
    fn small(routes: &mut [(u32, u8, u32)]) -> Option<Self> {
        Some(Lpm {
            small: Small::new(routes)?,
            top_bits: 0,
            routes: u32::try_from(routes.len()).unwrap_or(u32::MAX),
            ..Lpm::empty()
        })
    }

    /// Whether the table is in the small, scanned form (see
    /// [`SMALL_MAX_ROUTES`]) rather than a Poptrie.
    pub fn is_small(&self) -> bool {
        self.top_bits == 0
    }

    /// Builds a table from `(addr, len, next_hop)` triples, strictly (see
    /// [`LpmBuilder::insert`]); a later duplicate prefix replaces an earlier.
    pub fn from_routes<I>(routes: I) -> Result<Self, LpmError>
    where
        I: IntoIterator<Item = (u32, u8, u32)>,
    {
        let mut b = LpmBuilder::new();
        for (addr, len, nh) in routes {
            b.insert(Prefix::new(addr, len)?, nh)?;
        }
        Ok(b.build())
    }

    /// The next hop of the longest prefix covering `addr`. A small table's
    /// scan is inlined into the caller; a trie's walk is a call (its
    /// match over three kinds saves six registers around it, which the
    /// scan of a tenant's handful of routes then paid too).
    #[inline(always)]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        match &self.trie {
            Trie::None => decode(self.small.lookup(addr)),
            _ => self.lookup_trie(addr),
        }
    }

    #[inline(never)]
    fn lookup_trie(&self, addr: u32) -> Option<u32> {
        decode(match &self.trie {
            Trie::None => self.small.lookup(addr),
            Trie::Byte(t) => t.lookup(addr),
            Trie::Narrow(t) => t.lookup(addr),
            Trie::Wide(t) => t.lookup(addr),
        })
    }

    /// Looks up `N` addresses at once, stage by stage (every top load, then
    /// every node), so the cache misses of independent lookups overlap.
    /// `out[i]` is `lookup(addrs[i])`.
    #[inline]
    pub fn lookup_bulk<const N: usize>(&self, addrs: &[u32; N], out: &mut [Option<u32>; N]) {
        let mut raw = [EMPTY; N];
        match &self.trie {
            // The scans are independent and branch-free: the core overlaps
            // them without help.
            Trie::None => {
                for (r, &a) in raw.iter_mut().zip(addrs) {
                    *r = self.small.lookup(a);
                }
            }
            Trie::Byte(t) => t.lookup_bulk(addrs, &mut raw),
            Trie::Narrow(t) => t.lookup_bulk(addrs, &mut raw),
            Trie::Wide(t) => t.lookup_bulk(addrs, &mut raw),
        }
        for (o, &r) in out.iter_mut().zip(&raw) {
            *o = decode(r);
        }
    }

    /// Four lookups interleaved, as `rte_lpm_lookupx4`.
    #[inline]
    pub fn lookup4(&self, addrs: [u32; 4]) -> [Option<u32>; 4] {
        let mut out = [None; 4];
        self.lookup_bulk(&addrs, &mut out);
        out
    }

    /// Eight lookups interleaved.
    #[inline]
    pub fn lookup8(&self, addrs: [u32; 8]) -> [Option<u32>; 8] {
        let mut out = [None; 8];
        self.lookup_bulk(&addrs, &mut out);
        out
    }

    /// Looks up a whole burst (a worker's RX burst of up to 32, or more):
    /// [`BULK`] at a time, then eight, then one by one. Only the first
    /// `min(addrs.len(), out.len())` entries are touched.
    pub fn lookup_slice(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let mut a32 = addrs.chunks_exact(BULK);
        let mut o32 = out.chunks_exact_mut(BULK);
        for (a, o) in (&mut a32).zip(&mut o32) {
            if let (Ok(a), Ok(o)) = (
                <&[u32; BULK]>::try_from(a),
                <&mut [Option<u32>; BULK]>::try_from(o),
            ) {
                self.lookup_bulk(a, o);
            }
        }
        let mut a8 = a32.remainder().chunks_exact(8);
        let mut o8 = o32.into_remainder().chunks_exact_mut(8);
        for (a, o) in (&mut a8).zip(&mut o8) {
            if let (Ok(a), Ok(o)) = (
                <&[u32; 8]>::try_from(a),
                <&mut [Option<u32>; 8]>::try_from(o),
            ) {
                self.lookup_bulk(a, o);
            }
        }
        for (&a, o) in a8.remainder().iter().zip(o8.into_remainder()) {
            *o = self.lookup(a);
        }
    }

    /// Bytes used by the table: the struct itself plus its vectors'
    /// allocations.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.trie {
                Trie::None => 0,
                Trie::Byte(t) => t.memory_bytes(),
                Trie::Narrow(t) => t.memory_bytes(),
                Trie::Wide(t) => t.memory_bytes(),
            }
    }

    /// What the table is made of.
    pub fn stats(&self) -> LpmStats {
        let (top, nodes, uniform, leaves, hops) = match &self.trie {
            Trie::None => (0, 0, 0, 0, 0),
            Trie::Byte(t) => t.counts(),
            Trie::Narrow(t) => t.counts(),
            Trie::Wide(t) => t.counts(),
        };
        LpmStats {
            routes: self.routes as usize,
            top_bits: self.top_bits,
            top_entries: top,
            nodes,
            uniform_slots: uniform,
            leaves,
            next_hops: hops,
            bytes: self.memory_bytes(),
        }
    }

    /// Number of routes the table was built from.
    pub fn route_count(&self) -> usize {
        self.routes as usize
    }

    /// Whether the table has no routes at all.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }
}

/// Lanes of the batches [`Lpm::lookup_slice`] walks together.
const BULK: usize = 32;

#[inline(always)]
fn decode(slot: u32) -> Option<u32> {
    // NODE-tagged values never reach here; EMPTY and above read as "no
    // route" rather than panic.
    if slot >= EMPTY {
        None
    } else {
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(addr: u32, len: u8) -> Prefix {
        Prefix::new(addr, len).expect("valid prefix")
    }

    #[test]
    fn prefix_validation() {
        assert_eq!(
            Prefix::new(0x0a00_0001, 8),
            Err(LpmError::HostBitsSet {
                addr: 0x0a00_0001,
                len: 8
            })
        );
        assert_eq!(
            Prefix::new(0, 33),
            Err(LpmError::PrefixLenTooLong { len: 33 })
        );
        assert_eq!(
            Prefix::new_truncating(0x0a00_0001, 8),
            Ok(p(0x0a00_0000, 8))
        );
        assert_eq!(
            Prefix::new_truncating(0, 255),
            Err(LpmError::PrefixLenTooLong { len: 255 })
        );
        assert_eq!(p(0, 0).last(), u32::MAX);
        assert_eq!(p(0xffff_ffff, 32).first(), u32::MAX);
        assert_eq!(p(0x0a00_0000, 8).last(), 0x0aff_ffff);
        assert_eq!(p(0x0a00_0000, 8).to_string(), "10.0.0.0/8");
        let e = Prefix::new(0x0a00_0001, 8).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn empty_table() {
        let t = Lpm::empty();
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup4([0, 1, u32::MAX, 7]), [None; 4]);
        assert_eq!(t.memory_bytes(), std::mem::size_of::<Lpm>());
        let b = LpmBuilder::new().build();
        assert_eq!(b.lookup(0x0102_0304), None);
    }

    #[test]
    fn node_layout_is_compact() {
        assert_eq!(std::mem::size_of::<trie::Node<u16>>(), 64);
        assert_eq!(std::mem::align_of::<trie::Node<u16>>(), 64);
        assert_eq!(std::mem::size_of::<trie::Node<u32>>(), 64);
        assert_eq!(std::mem::size_of::<trie::Node<u8>>(), 64);
        assert_eq!(std::mem::size_of::<trie::Slot<u8>>(), 32);
        assert_eq!(std::mem::size_of::<trie::Slot<u16>>(), 32);
        assert_eq!(std::mem::size_of::<trie::Slot<u32>>(), 32);
        assert_eq!(std::mem::size_of::<Lpm>(), 320);
    }

    #[test]
    fn single_node_compression() {
        let mut b = LpmBuilder::new();
        b.insert(p(0x0a00_0000, 8), 1).unwrap();
        b.insert(p(0x0a01_0000, 16), 2).unwrap();
        b.insert(p(0x0a01_0200, 24), 3).unwrap();
        let t = b.build_with_top_bits(8).unwrap();
        assert_eq!(t.lookup(0x0a00_0000), Some(1));
        assert_eq!(t.lookup(0x0a01_0000), Some(2));
        assert_eq!(t.lookup(0x0a01_0201), Some(3));
        assert_eq!(t.lookup(0x0a01_0300), Some(2));
        assert_eq!(t.lookup(0x0b00_0000), None);
        // 10/8 -> node at 8 (slot for 10.0/14 .. ) -> node at 14 -> node at 20.
        assert_eq!(t.stats().nodes, 3);
    }

    #[test]
    fn redundant_more_specific_collapses() {
        let mut b = LpmBuilder::new();
        b.insert(p(0x0a00_0000, 8), 1).unwrap();
        b.insert(p(0x0a01_0200, 24), 1).unwrap();
        let t = b.build_with_top_bits(8).unwrap();
        assert_eq!(t.stats().nodes, 0);
        assert_eq!(t.lookup(0x0a01_0203), Some(1));
    }
}
