//! IPv4 longest-prefix match for many VRFs.
//!
//! # Shape
//!
//! A compiled [`Lpm`] is a Poptrie (Asai & Ohara, SIGCOMM 2015): a
//! direct-pointing top array indexed by the first `s` bits of the address,
//! and under it multiway nodes of 6-bit stride. A node has a `u64` bitmap
//! of which of its 64 slots are child nodes, a `u64` bitmap of where a run
//! of equal leaves starts, and base indices of its children and leaves; a
//! slot's child or leaf is found with one `popcount` under a mask, so a
//! sparse node stays small and runs of equal leaves (what prefix expansion
//! mostly produces) are stored once. One change from the paper: a node is
//! one 64-byte cache line holding its first 10 leaf runs inline (the rest
//! spill to a shared array), so a level costs one cache miss, not two.
//!
//! Why not the alternatives:
//! - DIR-24-8 (`rte_lpm`) spends 64 MiB per table on its 2^24 first level:
//!   fine for one table, impossible for thousands of tenants.
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
//! followed: where a /32 under an 8-bit top array was five dependent loads
//! into a 2 KiB table, it is now three adjacent cache lines of the header
//! that the VRF index already points to. See `small.rs`.
//!
//! The first stride is per table (see [`LpmBuilder::build`]): 8 bits (1 KiB)
//! for a tenant's handful of routes, one more bit per doubling of the route
//! count, at most 18 (1 MiB): an 18-bit top puts a /24, most of a BGP table,
//! one node below it. [`LpmBuilder::build_with_top_bits`] goes up to 24, a
//! DIR-24-8 first level, for the one full table of a box that can spare the
//! 64 MiB: every route up to /24 is then a single load, as in `rte_lpm`.
//!
//! Measured (release, `testgen`, `cargo bench --bench lpm`, a shared 2-vCPU
//! VM; figures move by ±50 % from run to run with the neighbours' load):
//! - 1M BGP-like routes: 15.4 MiB at 18 bits (222k nodes, 209k spilled
//!   leaves), 64.1 MiB at 24 bits; built (insert + compile) in ~0.5 s.
//! - 16-route tenant table: 320 bytes, all inline (as a Poptrie: ~2 KiB);
//!   64k such VRFs: 20 MiB (~130 MiB as Poptries).
//! - Uniformly random addresses over the 1M table, against a DIR-24-8 in
//!   the same run (best of several runs): 18 bits reaches about 0.3× of it
//!   (batched, 25–35 M/s against ~100 M/s), 24 bits about
//!   0.85× (80–86 M/s). The 18-bit walk is bound by its per-level
//!   arithmetic (a software popcount and the selects, ~50 instructions),
//!   not by memory: with that arithmetic stubbed out, the same two
//!   dependent loads run at DIR-24-8 speed. A prefetch instruction, which
//!   would let the loads run ahead of the arithmetic, needs `unsafe`, and
//!   this crate has none; building with POPCNT/BMI2 (`x86-64-v3`) did not
//!   change the figure measurably here.
//!
//! # Values
//!
//! A route carries a next-hop index, a `u32` in `0..=MAX_NEXT_HOP`; the top
//! bit and one more value are reserved to encode "child node" and "no route"
//! in the same word, so a leaf is the answer itself and a lookup never
//! takes the extra load a level of indirection through a value table would
//! cost. A generic `T: Copy` would need that indirection, so the pipeline
//! keeps its own next-hop table indexed by this `u32`.
//!
//! # Lookups
//!
//! No allocation, no locks, no `unsafe`: every index is clamped or goes
//! through `get` with a "no route" fallback that a correctly built table
//! never takes. The batched forms ([`Lpm::lookup_bulk`],
//! [`Lpm::lookup_slice`], [`VrfTables::lookup_bulk`]) walk several
//! addresses in lockstep without a branch on any loaded value, so that the
//! loads of independent walks are in flight together, as DPDK's
//! `rte_lpm_lookupx4` and VPP's `ip4_lookup_inline` arrange.

mod builder;
mod small;
pub mod testgen;
mod vrf;

use std::fmt;

use small::Small;

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
/// accepts. Beyond 24 bits the top array alone outgrows DIR-24-8's.
pub const MIN_TOP_BITS: u8 = 1;
/// See [`MIN_TOP_BITS`].
pub const MAX_TOP_BITS: u8 = 24;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: u32,
    len: u8,
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

/// Leaf runs kept inside a node. 10 fills the node to exactly one cache
/// line, and covers most nodes of a BGP-like table (8 runs on average).
const INLINE: usize = 10;

/// A Poptrie internal node: 64 slots, each a child node or a leaf.
///
/// Unlike the paper's 24-byte node, the first [`INLINE`] leaf runs live in
/// the node itself, and the node is cache-line aligned: a level of the walk
/// is then one cache miss instead of two (node, then leaf array), which is
/// what a lookup in a table larger than the cache pays for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
struct Node {
    /// Bit i set: slot i is a child node.
    vector: u64,
    /// Bit i set: slot i is a leaf whose value differs from the previous
    /// leaf slot's, i.e. a new leaf run starts there.
    leafvec: u64,
    /// Where runs past the inline ones continue in `leaves`, minus
    /// `INLINE + 1` (wrapping), so that adding the inclusive popcount of the
    /// run lands on it.
    base0: u32,
    /// Index of this node's first child, minus one (wrapping), likewise.
    base1: u32,
    /// The first leaf runs.
    inline: [u32; INLINE],
}

/// Counts of what a compiled table is made of, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LpmStats {
    /// Number of routes the table was built from.
    pub routes: usize,
    /// Bits resolved by the direct-pointing top array.
    pub top_bits: u8,
    /// Entries in the top array.
    pub top_entries: usize,
    /// Internal nodes (64 bytes each, holding up to 10 leaf runs).
    pub nodes: usize,
    /// Leaf runs that did not fit in their node (4 bytes each).
    pub leaves: usize,
    /// Total heap and inline bytes, as [`Lpm::memory_bytes`].
    pub bytes: usize,
}

/// A compiled, immutable IPv4 routing table: the thing workers look up.
///
/// Built by [`LpmBuilder::build`]; self-contained (an inline small table
/// and three vectors), so it is `Send + Sync` and can be published behind
/// an atomic pointer swap.
///
/// A table of at most [`SMALL_MAX_ROUTES`] routes is compiled into the
/// inline scan table (`top_bits == 0`), which is the first three cache
/// lines of the struct: a lookup there follows no pointer. Bigger tables
/// leave it empty and use the Poptrie in the vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Lpm {
    small: Small,
    /// 0 for the small form, else the Poptrie's first stride.
    top_bits: u8,
    routes: u32,
    top: Vec<u32>,
    nodes: Vec<Node>,
    leaves: Vec<u32>,
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
            top: Vec::new(),
            nodes: Vec::new(),
            leaves: Vec::new(),
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

    /// The next hop of the longest prefix covering `addr`.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        if self.is_small() {
            return decode(self.small.lookup(addr));
        }
        let mut slot = self.top_slot(addr);
        let mut off = u32::from(self.top_bits);
        while slot & NODE != 0 && off < 32 {
            slot = self.step(slot, addr, off);
            off += STRIDE;
        }
        decode(slot)
    }

    /// Looks up `N` addresses at once, walking them level by level so the
    /// loads of independent walks overlap. `out[i]` is `lookup(addrs[i])`.
    #[inline]
    pub fn lookup_bulk<const N: usize>(&self, addrs: &[u32; N], out: &mut [Option<u32>; N]) {
        if self.is_small() {
            // The scans are independent and branch-free: the core overlaps
            // them without help.
            for (o, &a) in out.iter_mut().zip(addrs) {
                *o = decode(self.small.lookup(a));
            }
            return;
        }
        let mut slots = [EMPTY; N];
        for (s, &a) in slots.iter_mut().zip(addrs) {
            *s = self.top_slot(a);
        }
        let mut off = u32::from(self.top_bits);
        // Checked before each level, not after: with a wide first stride
        // most walks end in the top array and the whole batch skips the
        // node arithmetic.
        while off < 32 && any_node(&slots) {
            // Every lane steps, finished or not, so that no branch depends
            // on a load still in flight: a mispredict there would hold back
            // the other lanes' loads, which is the whole point of batching.
            // A finished lane steps through node 0 (hot) and keeps its leaf.
            //
            // First a tight pass that only touches each lane's node, then
            // the arithmetic. A step is some 60 instructions; interleaved
            // with its own load, only two or three walks fit in the
            // reorder buffer, and that, not the memory, bounds throughput.
            // Touched together, all N misses are in flight at once and the
            // arithmetic then runs on L1 hits.
            let mut live = [0u32; N];
            let mut nodes = [&NO_NODE; N];
            let mut touched = 0u64;
            for ((l, n), &s) in live.iter_mut().zip(&mut nodes).zip(&slots) {
                *l = live_mask(s);
                *n = self.node(NODE | (s & *l));
                touched = touched.wrapping_add(n.vector);
            }
            // Keep the touching loads where they are: without a use LLVM
            // would drop them, and sinking them into the steps below would
            // undo the point.
            std::hint::black_box(touched);
            for (((s, &a), n), &l) in slots.iter_mut().zip(addrs).zip(&nodes).zip(&live) {
                let next = self.step_in(n, a, off);
                *s = (next & l) | (*s & !l);
            }
            off += STRIDE;
        }
        for (o, &s) in out.iter_mut().zip(&slots) {
            *o = decode(s);
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
    /// sixteen at a time, then eight, then one by one. Only the first
    /// `min(addrs.len(), out.len())` entries are touched.
    ///
    /// (A software pipeline over groups, the loads of the next group issued
    /// before the arithmetic of this one, was tried and measured no better
    /// than wide batches here.)
    pub fn lookup_slice(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let mut a16 = addrs.chunks_exact(16);
        let mut o16 = out.chunks_exact_mut(16);
        for (a, o) in (&mut a16).zip(&mut o16) {
            if let (Ok(a), Ok(o)) = (
                <&[u32; 16]>::try_from(a),
                <&mut [Option<u32>; 16]>::try_from(o),
            ) {
                self.lookup_bulk(a, o);
            }
        }
        let mut a8 = a16.remainder().chunks_exact(8);
        let mut o8 = o16.into_remainder().chunks_exact_mut(8);
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
            + self.top.capacity() * std::mem::size_of::<u32>()
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.leaves.capacity() * std::mem::size_of::<u32>()
    }

    /// What the table is made of.
    pub fn stats(&self) -> LpmStats {
        LpmStats {
            routes: self.routes as usize,
            top_bits: self.top_bits,
            top_entries: self.top.len(),
            nodes: self.nodes.len(),
            leaves: self.leaves.len(),
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

    #[inline(always)]
    fn top_slot(&self, addr: u32) -> u32 {
        // top_bits is kept in 0..=24, so the shift is in range; a small
        // table (0) has no top array and reads as "no route".
        let i = u64::from(addr) >> (32 - u32::from(self.top_bits));
        self.top.get(i as usize).copied().unwrap_or(EMPTY)
    }

    /// Where a walk starts: the answer itself for a small table, else the
    /// top array's slot.
    #[inline(always)]
    fn first_slot(&self, addr: u32) -> u32 {
        if self.is_small() {
            self.small.lookup(addr)
        } else {
            self.top_slot(addr)
        }
    }

    /// One level: from the node in `slot`, take the 6 address bits at
    /// offset `off` (bits past 32 read as zero) to the child or the leaf.
    /// The caller guarantees `off < 32`.
    ///
    /// Both the child index and the leaf are computed and one is selected,
    /// rather than branching on the node's bitmap: the bitmap arrives with
    /// a cache miss, and a branch on it would be a coin toss on random
    /// traffic. The leaf read for a slot that turns out to be a child is a
    /// harmless in-bounds (or fallback) read next to this node's leaves.
    #[inline(always)]
    fn step(&self, slot: u32, addr: u32, off: u32) -> u32 {
        self.step_in(self.node(slot), addr, off)
    }

    /// The node a node slot points to; borrowed, not copied: a 64-byte
    /// copy per level costs as much as the rest of the step.
    #[inline(always)]
    fn node(&self, slot: u32) -> &Node {
        self.nodes.get((slot & !NODE) as usize).unwrap_or(&NO_NODE)
    }

    #[inline(always)]
    fn step_in(&self, node: &Node, addr: u32, off: u32) -> u32 {
        let pos = (addr << off) >> (32 - STRIDE);
        // Slots 0..=pos: `2 << 63` is 0, and 0 - 1 is all ones.
        let upto = (2u64 << pos).wrapping_sub(1);
        // All ones if the slot is a child. One popcount, of whichever
        // bitmap applies: without POPCNT in the baseline x86-64 target a
        // popcount is a dozen dependent instructions, and the fewer there
        // are per level, the more walks the core keeps in flight.
        let child = 0u64.wrapping_sub((node.vector >> pos) & 1);
        let rank = (((node.vector & child) | (node.leafvec & !child)) & upto).count_ones();
        // Both the inline and the spilled candidate are read and one kept:
        // a branch on which one applies would hang on the node's cache miss
        // and, mispredicted, flush every other walk in flight. When the
        // inline one applies, the spilled read goes to leaf 0, one hot
        // line, instead of a cache miss nobody needs; clamping keeps it in
        // bounds either way.
        let run = (rank as usize).wrapping_sub(1);
        let inline = node.inline[run.min(INLINE - 1)];
        let use_inline = 0u32.wrapping_sub(u32::from(run < INLINE));
        let spilled_at = (node.base0.wrapping_add(rank) & !use_inline) as usize;
        let spilled_at = spilled_at.min(self.leaves.len().saturating_sub(1));
        let spilled = self.leaves.get(spilled_at).copied().unwrap_or(EMPTY);
        let leaf = (inline & use_inline) | (spilled & !use_inline);
        let child = child as u32;
        ((NODE | node.base1.wrapping_add(rank)) & child) | (leaf & !child)
    }
}

/// What a missing node reads as: no children, no leaf runs (rank 0 reads
/// `leaves[u32::MAX]`, out of bounds), so every slot is "no route".
static NO_NODE: Node = Node {
    vector: 0,
    leafvec: 0,
    base0: u32::MAX,
    base1: 0,
    inline: [EMPTY; INLINE],
};

/// Whether any of `slots` is still at a node.
#[inline(always)]
fn any_node(slots: &[u32]) -> bool {
    slots.iter().fold(0, |p, &s| p | s) & NODE != 0
}

/// All ones if `slot` is a node, else zero.
#[inline(always)]
fn live_mask(slot: u32) -> u32 {
    0u32.wrapping_sub(slot >> 31)
}

#[inline(always)]
fn decode(slot: u32) -> Option<u32> {
    // A node slot here means the walk ran past 32 bits: a corrupt table,
    // which the builder never makes; answer "no route" rather than panic.
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
        assert_eq!(std::mem::size_of::<Node>(), 64);
        assert_eq!(std::mem::align_of::<Node>(), 64);
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
