//! The compiled Poptrie: `2^top_bits` direct-pointed 32-byte slots, one
//! per value of the address's first bits, and 64-byte nodes of 6-bit stride
//! below them for the blocks that need more.
//!
//! Leaves are indices into the table's next-hop dictionary, a byte when it
//! has at most 254 entries (a full BGP table has a few dozen peers: 24
//! leaf runs fit in a slot, 40 in a node), else 16 bits (12 and 20), or
//! the next hops themselves in a table of more than 65 534 distinct ones
//! (6 and 10).
//!
//! A slot is the leaf-only node of its block when that fits: a bitmap of
//! where leaf runs start and the runs. Otherwise (a route longer than
//! `top_bits + 6` below it, or more runs than fit) it names a full node.
//! A lookup of a /24 or shorter in a full table is then one cache miss on
//! the 8 MiB of slots, a shift, a popcount and a dictionary load (L1);
//! deeper walks and spilled runs are rare and taken by well-predicted
//! branches.

use std::fmt::Debug;

use super::{EMPTY, STRIDE};

/// What a node slot's leaf holds.
pub(super) trait Leaf: Copy + Debug + Eq + Send + Sync + 'static {
    /// The node's inline leaf runs.
    type Inline: Copy + Debug + Eq + Send + Sync + AsRef<[Self]> + AsMut<[Self]>;
    /// Leaf runs inline in a node (fills it to 64 bytes).
    const INLINE: usize;
    /// A leaf that reads as "no route" (out of range of the dictionary).
    const NONE: Self;
    /// Inline runs all [`NONE`](Self::NONE).
    const NONE_INLINE: Self::Inline;
    /// A slot's leaf runs.
    type Runs: Copy + Debug + Eq + Send + Sync + AsRef<[Self]> + AsMut<[Self]>;
    /// Runs all [`NONE`](Self::NONE).
    const NONE_RUNS: Self::Runs;
    /// What a missing node reads as.
    fn no_node() -> &'static Node<Self>;
    /// What a missing slot reads as.
    fn no_slot() -> &'static Slot<Self>;
    /// The leaf's next hop (or [`EMPTY`]).
    fn value(self, hops: &[u32]) -> u32;
}

/// A dictionary index of a small dictionary.
impl Leaf for u8 {
    type Inline = [u8; 40];
    const INLINE: usize = 40;
    const NONE: Self = u8::MAX;
    const NONE_INLINE: Self::Inline = [u8::MAX; 40];
    type Runs = [u8; 24];
    const NONE_RUNS: Self::Runs = [u8::MAX; 24];
    fn no_node() -> &'static Node<Self> {
        &NO_NODE8
    }
    fn no_slot() -> &'static Slot<Self> {
        &NO_SLOT8
    }
    #[inline(always)]
    fn value(self, hops: &[u32]) -> u32 {
        hops.get(usize::from(self)).copied().unwrap_or(EMPTY)
    }
}

/// A dictionary index: the table's next hops are `hops[leaf]`.
impl Leaf for u16 {
    type Inline = [u16; 20];
    const INLINE: usize = 20;
    const NONE: Self = u16::MAX;
    const NONE_INLINE: Self::Inline = [u16::MAX; 20];
    type Runs = [u16; 12];
    const NONE_RUNS: Self::Runs = [u16::MAX; 12];
    fn no_node() -> &'static Node<Self> {
        &NO_NODE16
    }
    fn no_slot() -> &'static Slot<Self> {
        &NO_SLOT16
    }
    #[inline(always)]
    fn value(self, hops: &[u32]) -> u32 {
        hops.get(usize::from(self)).copied().unwrap_or(EMPTY)
    }
}

/// The next hop itself.
impl Leaf for u32 {
    type Inline = [u32; 10];
    const INLINE: usize = 10;
    const NONE: Self = EMPTY;
    const NONE_INLINE: Self::Inline = [EMPTY; 10];
    type Runs = [u32; 6];
    const NONE_RUNS: Self::Runs = [EMPTY; 6];
    fn no_node() -> &'static Node<Self> {
        &NO_NODE32
    }
    fn no_slot() -> &'static Slot<Self> {
        &NO_SLOT32
    }
    #[inline(always)]
    fn value(self, _hops: &[u32]) -> u32 {
        self
    }
}

/// A Poptrie internal node: 64 slots, each a child node or a leaf, in one
/// cache line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct Node<L: Leaf> {
    /// Bit i set: slot i is a child node.
    pub(super) vector: u64,
    /// Bit i set: slot i is a leaf whose value differs from the previous
    /// leaf slot's, i.e. a new leaf run starts there.
    pub(super) leafvec: u64,
    /// Index of this node's first child, minus one (wrapping), so that
    /// adding the inclusive popcount of the children lands on it.
    pub(super) base1: u32,
    /// Where runs past the inline ones continue in `leaves`, minus
    /// `INLINE + 1` (wrapping), likewise.
    pub(super) base0: u32,
    /// The first leaf runs.
    pub(super) inline: L::Inline,
}

impl<L: Leaf> Node<L> {
    /// A node whose 64 slots all hold `leaf`.
    pub(super) fn uniform(leaf: L) -> Self {
        let mut inline = L::NONE_INLINE;
        if let Some(l) = inline.as_mut().first_mut() {
            *l = leaf;
        }
        Node {
            vector: 0,
            leafvec: 1,
            base1: 0,
            base0: u32::MAX,
            inline,
        }
    }

    /// No children, no leaf runs: every slot reads as "no route".
    const NONE: Self = Node {
        vector: 0,
        leafvec: 0,
        base1: 0,
        base0: u32::MAX,
        inline: L::NONE_INLINE,
    };
}

static NO_NODE8: Node<u8> = Node::NONE;
static NO_NODE16: Node<u16> = Node::NONE;
static NO_NODE32: Node<u32> = Node::NONE;
static NO_SLOT8: Slot<u8> = Slot::NONE;
static NO_SLOT16: Slot<u16> = Slot::NONE;
static NO_SLOT32: Slot<u32> = Slot::NONE;

/// A direct-pointed slot: the leaf-only node of its block (bit 0 of
/// `leafvec` set: slot 0 of a leaf-only node always starts a run), or the
/// index of a full node in the high half of `leafvec` (bit 0 clear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub(super) struct Slot<L: Leaf> {
    pub(super) leafvec: u64,
    pub(super) runs: L::Runs,
}

impl<L: Leaf> Slot<L> {
    /// Every address of the block has `leaf`.
    pub(super) fn uniform(leaf: L) -> Self {
        let mut runs = L::NONE_RUNS;
        if let Some(l) = runs.as_mut().first_mut() {
            *l = leaf;
        }
        Slot { leafvec: 1, runs }
    }

    /// The slot of a leaf-only `node`, if its runs fit.
    pub(super) fn leaf_only(node: &Node<L>) -> Option<Self> {
        let n = node.leafvec.count_ones() as usize;
        let mut runs = L::NONE_RUNS;
        if node.vector != 0 || node.leafvec & 1 == 0 || n > runs.as_ref().len() {
            return None;
        }
        runs.as_mut()
            .copy_from_slice(node.inline.as_ref().get(..L::NONE_RUNS.as_ref().len())?);
        Some(Slot {
            leafvec: node.leafvec,
            runs,
        })
    }

    /// A slot that sends the walk to full node `i`.
    pub(super) fn full(i: u32) -> Self {
        Slot {
            leafvec: u64::from(i) << 32,
            runs: L::NONE_RUNS,
        }
    }

    const NONE: Self = Slot {
        leafvec: 1,
        runs: L::NONE_RUNS,
    };
}

/// Where one level of a walk went.
pub(super) enum Step<L> {
    /// A leaf: the answer.
    Leaf(L),
    /// A child node, by index.
    Child(u32),
}

/// A compiled Poptrie over leaves `L`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Poptrie<L: Leaf> {
    /// `32 - top_bits`: slot `addr >> shift` is where a walk starts.
    pub(super) shift: u32,
    /// The `1 << top_bits` direct-pointed slots.
    pub(super) slots: Vec<Slot<L>>,
    /// Full nodes: those of the slots that need one, and their children.
    pub(super) nodes: Vec<Node<L>>,
    /// Leaf runs that did not fit in their node.
    pub(super) leaves: Vec<L>,
    /// The next-hop dictionary of [`Narrow`] leaves (empty for [`Wide`]).
    pub(super) hops: Vec<u32>,
    /// How many of the slots are uniform.
    pub(super) uniform: u32,
}

/// The form of tables of at most 254 distinct next hops.
pub(super) type Byte = Poptrie<u8>;
/// The form of tables of at most 65 534 distinct next hops.
pub(super) type Narrow = Poptrie<u16>;
/// The form of tables with more distinct next hops than a `u16` indexes.
pub(super) type Wide = Poptrie<u32>;

impl<L: Leaf> Poptrie<L> {
    pub(super) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<L>>()
            + self.nodes.capacity() * std::mem::size_of::<Node<L>>()
            + self.leaves.capacity() * std::mem::size_of::<L>()
            + self.hops.capacity() * std::mem::size_of::<u32>()
    }

    /// Slots, full nodes, uniform slots, spilled leaves, dictionary size.
    pub(super) fn counts(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.slots.len(),
            self.nodes.len(),
            self.uniform as usize,
            self.leaves.len(),
            self.hops.len(),
        )
    }

    /// The direct-pointed slot of `addr`'s first `top_bits` bits.
    #[inline(always)]
    fn slot(&self, addr: u32) -> &Slot<L> {
        // shift is in 32 - MAX_TOP_BITS..32: in range.
        let i = (addr >> (self.shift & 31)) as usize;
        self.slots.get(i).unwrap_or(L::no_slot())
    }

    /// The first level, in `slot`: the leaf, or the full node where the
    /// walk goes on at the same offset.
    #[inline(always)]
    fn slot_step(&self, slot: &Slot<L>, addr: u32, off: u32) -> Step<L> {
        if slot.leafvec & 1 == 0 {
            return Step::Child((slot.leafvec >> 32) as u32);
        }
        let sh = (!(addr << (off & 31))) >> (32 - STRIDE);
        let rank = (slot.leafvec << sh).count_ones();
        let leaf = slot.runs.as_ref().get((rank as usize).wrapping_sub(1));
        Step::Leaf(leaf.copied().unwrap_or(L::NONE))
    }

    #[inline(always)]
    fn node(&self, i: u32) -> &Node<L> {
        self.nodes.get(i as usize).unwrap_or(L::no_node())
    }

    /// One level: slot `addr[off..off + 6]` of `node` (bits past 32 read
    /// as zero). `off < 32`.
    #[inline(always)]
    fn step(&self, node: &Node<L>, addr: u32, off: u32) -> Step<L> {
        // 63 - slot: shifting a bitmap left by it keeps slots 0..=slot, the
        // slot itself in the top bit; its popcount is the inclusive rank.
        let sh = (!(addr << (off & 31))) >> (32 - STRIDE);
        let v = node.vector << sh;
        if (v as i64) < 0 {
            return Step::Child(node.base1.wrapping_add(v.count_ones()));
        }
        let rank = (node.leafvec << sh).count_ones();
        // rank >= 1 for a leaf slot of a well-built node; the inline runs'
        // `get` is both the bounds check and the test for a spilled run.
        let leaf = match node.inline.as_ref().get((rank as usize).wrapping_sub(1)) {
            Some(&l) => l,
            None => self.spilled(node, rank),
        };
        Step::Leaf(leaf)
    }

    #[cold]
    #[inline(never)]
    fn spilled(&self, node: &Node<L>, rank: u32) -> L {
        let i = node.base0.wrapping_add(rank) as usize;
        self.leaves.get(i).copied().unwrap_or(L::NONE)
    }

    /// The rest of a walk from child `i` at bit offset `off`.
    #[inline]
    fn walk(&self, mut i: u32, addr: u32, mut off: u32) -> u32 {
        while off < 32 {
            match self.step(self.node(i), addr, off) {
                Step::Leaf(l) => return l.value(&self.hops),
                Step::Child(c) => i = c,
            }
            off += STRIDE;
        }
        // A child past the last bit: only a corrupt table has one.
        EMPTY
    }

    /// The leaf value (next hop or [`EMPTY`]) for `addr`.
    #[inline(always)]
    pub(super) fn lookup(&self, addr: u32) -> u32 {
        let off = 32 - self.shift;
        match self.slot_step(self.slot(addr), addr, off) {
            Step::Leaf(l) => l.value(&self.hops),
            Step::Child(c) => self.walk(c, addr, off),
        }
    }

    /// `out[i] = lookup(addrs[i])`, stage by stage over the batch: every
    /// top load, then every node load and step, so that the batch's cache
    /// misses are in flight together. Lanes that go deeper (rare: routes
    /// longer than `top_bits + 6`) finish one by one.
    #[inline(always)]
    pub(super) fn lookup_bulk<const N: usize>(&self, addrs: &[u32; N], out: &mut [u32; N]) {
        let off = 32 - self.shift;
        let slots: [&Slot<L>; N] = std::array::from_fn(|i| self.slot(addrs[i]));
        // Touch each lane's node before any arithmetic on it, so that all
        // N misses are issued back to back, not as far apart as the
        // reorder buffer holds steps.
        let touched = slots.iter().fold(0u64, |t, n| t.wrapping_add(n.leafvec));
        std::hint::black_box(touched);
        let mut deeper = 0u64;
        let mut child = [0u32; N];
        for i in 0..N {
            match self.slot_step(slots[i], addrs[i], off) {
                Step::Leaf(l) => out[i] = l.value(&self.hops),
                Step::Child(c) if i < 64 => {
                    child[i] = c;
                    deeper |= 1 << i;
                }
                Step::Child(c) => out[i] = self.walk(c, addrs[i], off),
            }
        }
        // The lanes that go on, level by level like the first: in a
        // mid-size table (a tenant's few dozen routes under an 8-bit first
        // stride) most lookups go three or four nodes deep, and walking
        // them one by one would chain every miss.
        let mut off = off;
        while deeper != 0 {
            if off >= 32 {
                // A child past the last bit: only a corrupt table has one.
                for_each_lane(deeper, |i| {
                    if let Some(o) = out.get_mut(i) {
                        *o = EMPTY;
                    }
                });
                break;
            }
            let mut touched = 0u64;
            for_each_lane(deeper, |i| {
                let c = child.get(i).copied().unwrap_or(u32::MAX);
                touched = touched.wrapping_add(self.node(c).vector);
            });
            std::hint::black_box(touched);
            for_each_lane(deeper, |i| {
                // i < N: only lanes below N (and 64) were marked.
                let (Some(c), Some(&a), Some(o)) = (child.get_mut(i), addrs.get(i), out.get_mut(i))
                else {
                    return;
                };
                match self.step(self.node(*c), a, off) {
                    Step::Leaf(l) => {
                        *o = l.value(&self.hops);
                        deeper &= !(1 << i);
                    }
                    Step::Child(n) => *c = n,
                }
            });
            off += STRIDE;
        }
    }
}

/// Calls `f` with the index of every set bit of `lanes`, lowest first.
#[inline(always)]
fn for_each_lane(mut lanes: u64, mut f: impl FnMut(usize)) {
    while lanes != 0 {
        f(lanes.trailing_zeros() as usize);
        lanes &= lanes - 1;
    }
}
