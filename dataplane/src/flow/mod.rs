//! The flow table of the stateful gateway: NAT and firewall state, both
//! directions of a flow in one entry.
//!
//! # What it holds
//!
//! A flow is two [`FlowKey`]s, forward (the packet that created it) and
//! reply (what comes back, after NAT), a deadline, and a caller's value `V`
//! (the pipeline keeps its per-direction cached actions there). Both keys
//! resolve to the same [`FlowId`]; a lookup tells which [`Direction`] the
//! packet travels, as Linux `nf_flow_table`'s `tuplehash[2]` does.
//!
//! Everything is allocated by [`FlowTable::new`] from the configured
//! capacity: insert, lookup, remove and sweep never allocate, never lock,
//! and [`FlowTable::insert`] fails with [`InsertError::Full`] rather than
//! evicting a live flow. The table has one owner: lookups take `&self`,
//! changes `&mut self` (a worker's own table; see DESIGN.md on steering).
//!
//! # Using it
//!
//! ```
//! use dataplane::flow::{Direction, FlowKey, FlowTable, Lookup, Zone};
//!
//! // Per worker, from the configuration; the value is the pipeline's.
//! let mut flows: FlowTable<u32> = FlowTable::new(1 << 16).unwrap();
//! let tenant = Zone::tenant(0).unwrap();
//! // 10.0.0.7:40000 -> 1.1.1.7:22 in tenant 1, source-NATed to 2.2.2.11.
//! let fwd = FlowKey::new(tenant, 6, 0x0a00_0007, 40000, 0x0101_0107, 22);
//! let rep = FlowKey::new(Zone::PUBLIC, 6, 0x0101_0107, 22, 0x0202_020b, 40000);
//! let now = 1_000;
//! let id = flows.insert(fwd, rep, now + 7_440_000, 42).unwrap();
//! assert_eq!(flows.lookup(&rep, now), Lookup::Hit(id, Direction::Reply));
//! let mut out = [Lookup::Miss; 2];
//! flows.lookup_bulk(&[fwd, rep], now, &mut out);
//! assert_eq!(out[0], Lookup::Hit(id, Direction::Forward));
//! // Expired on lookup: the caller removes it (and frees its NAT port).
//! let later = now + 8_000_000;
//! assert_eq!(flows.lookup(&fwd, later), Lookup::Expired(id, Direction::Forward));
//! // Or the control loop sweeps a bounded slice of the table per tick.
//! let removed = flows.sweep(1024, later, |gone| assert_eq!(gone.value, 42));
//! assert_eq!((removed, flows.len()), (1, 0));
//! ```
//!
//! # Layout
//!
//! Bucketized cuckoo hashing with signatures, DPDK `rte_hash`'s scheme,
//! with the two keys of a flow stored together and the values apart:
//!
//! ```text
//! buckets: [Bucket]   64 bytes, cache-line aligned, ceil(cap * 5/16) of them
//!   sig: [u64; 2]       8 16-bit signatures, 4 to a word; 0 = empty slot
//!   idx: [u32; 8]       flow id * 2 + direction
//!   (16 bytes padding)
//! entries: [Entry]    one per flow, indexed by FlowId: 40 bytes
//!   forward: FlowKey    16 bytes
//!   deadline: u64       (the free list's link while the entry is free)
//!   reply: FlowKey      16 bytes: either key and the deadline contiguous
//! values: [V]         one per flow, indexed by FlowId
//! live: [u64]         one bit per flow (sweep, accessors)
//! ```
//!
//! A lookup reads a bucket and then 24 bytes of a 40-byte entry (its key
//! and the deadline), whatever the size of `V`: with 64-byte values
//! inline, entries were 104 bytes and lookups against `rte_hash` ran at
//! 0.6× instead of ~1× (`tgw-perf flow`). The pipeline reads the value of
//! a hit afterwards, and can stage that too. Those 24 bytes are on one
//! line for 3 keys in 4, 1.25 entry lines a key; with both keys first and
//! the deadline last, 1.375 (session 13: ours/`rte_hash` +0.01 to +0.04 at
//! 1M and 10M flows, docs/perf.md).
//!
//! A key has two candidate buckets: the primary from the hash's high
//! bits (`h * nb >> 64`, the high half of one `mul`, so the bucket count
//! need not be a power of two), and the alternative
//! `alt(b, sig) = (off(sig) - b) mod nb`, an involution computable from a
//! bucket and a slot's signature alone, so that moving a key to make room
//! needs neither the key nor its hash (what `rte_hash` does with `b ^ sig`
//! on its power-of-two tables).
//! Insertion takes a free slot in the primary, else in the alternative,
//! else searches breadth-first (up to [`BFS_NODES`] buckets, no bucket twice
//! on one path) for a chain of moves that frees a slot in either. At
//! capacity about 8 % of keys sit in their alternative bucket.
//!
//! # Bytes per flow
//!
//! The buckets are sized for 80 % slot occupancy at full capacity
//! (`ceil(2 * cap / 6.4)` buckets): 20 bytes per flow for its two slots.
//! An entry is 40 bytes, the live bit 1/8, so the table's own cost is
//! 60.1 bytes per flow at capacity ([`FlowTable::overhead_bytes`]); with a
//! 64-byte `V`, 124.1 bytes in all, within the 128-byte budget. (A
//! power-of-two bucket count, as `rte_hash` uses, lands anywhere between
//! 50 % and 100 % occupancy depending on the configured capacity; with its
//! 32-byte key slots it needs 140 bytes per flow of two keys at 1M flows,
//! 134 at 10M, sized with a quarter of headroom, and no value.)
//!
//! # Hashing
//!
//! One folded 64×64→128 multiply over the key's two words xored with a
//! per-table seed ([`key`]'s `hash`): a handful of instructions, no table,
//! no `unsafe`. (The SSE4.2 `crc32` that `rte_hash` uses is an `unsafe`
//! intrinsic at the workspace's minimum Rust, 1.80.) From the 64-bit
//! result: the signature is bits 0..16 (0 is made 1: 0 marks an empty
//! slot), the primary bucket in effect the high bits (the low 16 move it
//! only across a bucket's edge, one key in 2^48 / nb), so keys sharing a
//! bucket still differ in signature. A signature compare is SWAR
//! over the two words (exact: no borrow crosses a lane), because LLVM
//! turned eight `u16` compares into some 30 instructions.
//!
//! # Lookups
//!
//! [`FlowTable::lookup`] checks the primary bucket's signatures, compares
//! the key of each matching slot, and only on a miss there looks at the
//! alternative bucket: a hit costs two dependent cache misses, bucket then
//! entry.
//!
//! [`FlowTable::lookup_bulk`] does up to [`BULK_MAX`] keys in stages, so
//! that the cache misses of independent keys are in flight together:
//! 1. hash every key and find both its buckets;
//! 2. touch both buckets of every key;
//! 3. compare signatures (the buckets are in L1 now), primary first, and
//!    take each key's first candidate slot and entry (with no branch on
//!    where in the bucket it is: see `Bucket::first_match_late`);
//! 4. touch every candidate's entry (key and deadline);
//! 5. compare keys and deadlines; a key whose first candidate was a
//!    signature collision (about 1 in 10 000) takes the full search.
//!
//! "Touch" is a plain load whose value is only xored into a word passed to
//! `black_box`: a prefetch instruction is not reachable without `unsafe`
//! (`core::arch::x86_64::_mm_prefetch` takes a raw pointer; the crates
//! that wrap it, `prefetch` 0.2 and `mem_prefetch` 0.1, are nightly-only
//! or a one-maintainer 0.1, and neither is in the workspace). The
//! difference matters: a load that misses holds its reorder-buffer entry
//! until the line arrives, a prefetch retires at once. So the touch loops
//! are kept to a few instructions per key (the bucket and entry references
//! are computed in the stage before), which lets more loads into the
//! window. The alternative bucket is touched for every key although only
//! ~8 % need it: in a burst of 32 nearly every burst has one such key,
//! and touching it only after the primary answered cost a third round of
//! misses for the whole burst.
//!
//! [`FlowTable::lookup_bulk_with`] takes the caller's [`Prefetch`]
//! instead: a binary with DPDK passes `rte::prefetch` (two lines, see
//! `perf/src/flow.rs`). A prefetch retires at once, so it is issued where
//! its address is computed, in stages 1 and 3, not in loops of its own
//! after them: the first key's buckets then have the other 31 keys'
//! hashing to arrive in, as in `rte_hash`'s lookup. Prefetching in a
//! separate loop after stage 1 (the touch loops' shape) left the table at
//! 0.79–0.89× `rte_hash`; issued in place, 1.10–1.17× at 1M flows.
//!
//! Measured against `rte_hash_lookup_bulk` holding the same keys, in one
//! process (`tgw-perf flow`, docs/perf.md), per CPU second on a shared
//! 2-vCPU machine, with DPDK's prefetch handed in: 1.10–1.17× at 1M
//! flows and 1.08–1.17× at 10M on the host of session 7; on session
//! 11's, where `rte_hash` runs ~55 % faster, 0.90–0.93× at 1M and
//! 0.93–0.96× at 10M (ours loses on lines that come from L3, and per
//! key in the cache-missing stages, not on instructions: with every line
//! in L2 it is 1.46×); with touching loads 0.72–0.85×. Most of that loss
//! was a branch, not the lines: `FlowTable::alt`'s wrap, compiled to a
//! branch mispredicted for half the keys of the first stage; without it
//! (session 14) 1.08–1.13× at 1M and 1.04× at 10M.
//! Prefetching only the primary bucket, and the alternative only for the
//! ~8 % of keys with no candidate there, measured worse (0.77× against
//! 0.84–0.89×): those keys cost the burst a third round of misses. Single
//! lookups run at about a third of the bulk rate; in a table that fits in
//! cache the staging costs more than it saves (criterion `flow_1k`: bulk
//! 24 M/s, single 39 M/s). So below [`STAGED_FROM`] live flows a burst is
//! looked up a key at a time, each comparing its primary bucket's first
//! candidate at once and searching fully only when that is not the key:
//! 68 instructions a key against the stages' 116 (callgrind,
//! `pipeline_staged nat`, 1,000 flows). The pipeline's stages, which
//! compare in the hit, take only the candidate there
//! ([`FlowTable::candidate_cached`]).
//!
//! [`FlowTable::candidates_with`] is the staged lookup for a caller that
//! reads each flow next and compares it then ([`FlowTable::hit_at`]):
//! stages 1 to 3, each candidate's value prefetched with its entry, and
//! no compare.
//!
//! # Expiry
//!
//! A flow is live while `now < deadline`, in the caller's time unit (TSC,
//! milliseconds: the table only compares). A lookup of an expired flow
//! returns [`Lookup::Expired`]: the caller decides (usually
//! [`FlowTable::remove`] and treat as a miss). [`FlowTable::sweep`] visits
//! a bounded number of entries per call, round robin, removes the expired
//! ones and hands each to a callback (where NAT returns its port).
//!
//! # Creating and ending flows
//!
//! At a steady fill of millions of flows, a new flow's buckets are not in
//! the cache: the reply key's never were, and an expired flow's two
//! buckets are random lines. [`FlowTable::insert`] therefore reads both
//! buckets of both keys and the entry it will take with independent loads
//! before it looks at any (one round of misses, not up to five in a row),
//! and checks that the keys are new in the buckets it then places them in.
//! The sweep collects up to sixteen flows to remove, loads the primary
//! buckets of their keys together, then removes them (in id order, each
//! handed over as before).

mod bucket;
pub mod key;
mod life;
mod lookup;
mod place;
pub mod testgen;

use std::fmt;
use std::hint::black_box;

use bucket::{Bucket, NO_BUCKET, SLOTS};
pub use key::{FlowKey, Zone};
pub use lookup::{Prefetch, TouchLoads, STAGED_FROM};
use place::Step;
/// Most keys one [`FlowTable::lookup_bulk`] stage pass handles; longer
/// slices are done this many at a time. A worker's RX burst.
pub const BULK_MAX: usize = 32;
/// Buckets the insertion's breadth-first search visits at most before it
/// gives up with [`InsertError::NoRoom`] (as `rte_hash`'s 1000).
pub const BFS_NODES: usize = 1024;
/// Expired flows the sweep removes together, their buckets fetched at once.
const SWEEP_BATCH: usize = 16;
/// The largest capacity: `flow id * 2 + 1` must fit a slot's `u32` below
/// an empty slot's index (`u32::MAX`).
pub const MAX_CAPACITY: usize = (1 << 31) - 1;

/// Which way a packet travels in its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Direction {
    /// As the packet that created the flow.
    Forward = 0,
    /// The other way.
    Reply = 1,
}

impl Direction {
    /// 0 for forward, 1 for reply: an index into per-direction arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The other direction.
    #[inline]
    pub const fn reverse(self) -> Direction {
        match self {
            Direction::Forward => Direction::Reply,
            Direction::Reply => Direction::Forward,
        }
    }

    #[inline]
    const fn from_bit(bit: u32) -> Direction {
        if bit & 1 == 0 {
            Direction::Forward
        } else {
            Direction::Reply
        }
    }
}

/// A flow's index in its table, `0..capacity`. Valid from the
/// [`FlowTable::insert`] that returned it until the flow is removed (by
/// [`FlowTable::remove`] or a sweep); afterwards the same id may name a
/// new flow, so callers drop their copies when they remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(u32);

impl FlowId {
    /// The id of entry `index` (which may or may not hold a live flow).
    pub const fn new(index: u32) -> FlowId {
        FlowId(index)
    }

    /// The entry index: callers may keep per-flow side arrays of the
    /// table's capacity indexed by it.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// The answer of a lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lookup {
    /// No flow has this key.
    #[default]
    Miss,
    /// A live flow, and which of its keys matched.
    Hit(FlowId, Direction),
    /// A flow whose deadline has passed: still in the table until removed.
    Expired(FlowId, Direction),
}

impl Lookup {
    /// The flow and direction of a live hit.
    #[inline]
    pub fn hit(self) -> Option<(FlowId, Direction)> {
        match self {
            Lookup::Hit(id, dir) => Some((id, dir)),
            _ => None,
        }
    }

    /// The flow and direction, live or expired.
    #[inline]
    pub fn found(self) -> Option<(FlowId, Direction)> {
        match self {
            Lookup::Hit(id, dir) | Lookup::Expired(id, dir) => Some((id, dir)),
            Lookup::Miss => None,
        }
    }
}

/// A live flow found by [`FlowTable::hit`], open for update.
#[derive(Debug)]
pub struct Hit<'a, V> {
    pub id: FlowId,
    /// Which of the flow's keys matched.
    pub dir: Direction,
    pub value: &'a mut V,
    /// When the flow expires, on the table's clock.
    pub deadline: &'a mut u64,
}

/// Why [`FlowTable::insert`] refused a flow. Nothing in the table changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// Every entry holds a flow: the configured capacity is reached.
    Full,
    /// Entries are free but the cuckoo search found no room for a key in
    /// [`BFS_NODES`] buckets (not seen below 99 % of capacity in tests).
    NoRoom,
    /// One of the keys already belongs to a flow (live or expired: remove
    /// an expired one first).
    Exists(FlowId, Direction),
    /// The forward and reply keys are equal; a flow needs two.
    SameKey,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InsertError::Full => write!(f, "flow table full"),
            InsertError::NoRoom => write!(f, "no room in the flow table's buckets"),
            InsertError::Exists(id, dir) => {
                write!(f, "key already in flow {} ({dir:?})", id.get())
            }
            InsertError::SameKey => write!(f, "forward and reply keys are equal"),
        }
    }
}

impl std::error::Error for InsertError {}

/// A capacity of 0 or above [`MAX_CAPACITY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError(pub usize);

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flow table capacity {} is outside 1..={MAX_CAPACITY}",
            self.0
        )
    }
}

impl std::error::Error for CapacityError {}

/// A flow taken out of the table, by [`FlowTable::remove`] or a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed<V> {
    pub id: FlowId,
    /// Forward and reply key.
    pub keys: [FlowKey; 2],
    pub deadline: u64,
    pub value: V,
}

/// Counts for reports; [`FlowTable::stats`] walks the whole table.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowStats {
    pub capacity: usize,
    pub len: usize,
    pub buckets: usize,
    /// Keys in their alternative bucket (the rest are in their primary).
    pub keys_in_alt: usize,
    /// Keys moved to another bucket by insertions (cuckoo displacement)
    /// since the table was built.
    pub moves: u64,
    /// Occupied slots over all slots.
    pub slot_load: f64,
    /// Everything the table allocated, values included.
    pub bytes: usize,
    /// The same without the values: the table's own cost.
    pub overhead_bytes: usize,
}

/// A flow's keys and deadline: what a lookup reads. The values live in
/// their own array, so that lookups touch 40 dense bytes per flow whatever
/// the size of `V`. The deadline sits between the keys, so that either key
/// and the deadline are 24 contiguous bytes: on one cache line for 3 keys
/// in 4 (entries start at every multiple of 8 bytes), where keys first
/// and the deadline last (40 bytes apart at most) were on one line for 5
/// keys in 8.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Entry {
    forward: FlowKey,
    /// While the entry is free: the index of the next free entry, or
    /// [`NO_ENTRY`].
    deadline: u64,
    reply: FlowKey,
}

impl Entry {
    /// The key of direction bit `bit` (0 forward, 1 reply; the low bit of
    /// a slot's index).
    #[inline(always)]
    fn key(&self, bit: u32) -> &FlowKey {
        if bit & 1 == 0 {
            &self.forward
        } else {
            &self.reply
        }
    }

    /// Forward and reply key.
    #[inline(always)]
    fn keys(&self) -> [FlowKey; 2] {
        [self.forward, self.reply]
    }

    /// The word at the far end from the deadline of what a lookup of key
    /// `bit` reads (the key and the deadline): with the deadline's, the
    /// two lines to prefetch, the same one for 3 keys in 4.
    #[inline(always)]
    fn far_end(&self, bit: u32) -> &u64 {
        if bit & 1 == 0 {
            self.forward.first_word()
        } else {
            self.reply.last_word()
        }
    }
}

const NO_ENTRY: u32 = u32::MAX;

/// What a candidate lookup reads where there is no candidate; never
/// reported as a hit (the lane's `found` is false).
static NO_FLOW: Entry = Entry {
    forward: FlowKey::from_words([0, 0]),
    deadline: 0,
    reply: FlowKey::from_words([0, 0]),
};

/// The flow table. See the module documentation.
pub struct FlowTable<V> {
    buckets: Box<[Bucket]>,
    entries: Box<[Entry]>,
    values: Box<[V]>,
    /// Bit `i % 64` of word `i / 64`: entry `i` holds a flow.
    live: Box<[u64]>,
    /// The insertion search's queue, kept to avoid allocating.
    bfs: Box<[Step]>,
    seed: [u64; 2],
    nb: u32,
    /// [`fastmod_multiplier`] of `nb`, for [`FlowTable::alt`].
    nb_mod: u64,
    free_head: u32,
    len: u32,
    sweep_at: u32,
    /// Whole passes the sweep has made over the table.
    passes: u64,
    /// Keys moved by insertions to make room, since construction.
    moves: u64,
}

impl<V> fmt::Debug for FlowTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .field("buckets", &self.nb)
            .finish_non_exhaustive()
    }
}

/// `x * n / 2^32`: a uniform `x` lands uniformly in `0..n` (Lemire's
/// reduction; no division, any `n`).
#[inline(always)]
fn fastrange(x: u32, n: u32) -> u32 {
    ((u64::from(x) * u64::from(n)) >> 32) as u32
}

/// `u64::MAX / n + 1` (wrapping: 0 for `n` = 1), the multiplier with which
/// [`fastmod`] divides by `n`.
const fn fastmod_multiplier(n: u32) -> u64 {
    (u64::MAX / n as u64).wrapping_add(1)
}

/// `x % n` for any `x` and `n` of 32 bits, from `m` =
/// [`fastmod_multiplier`]`(n)`: two multiplies and no branch (Lemire, Kaser
/// and Kurz, "Faster remainder by direct computation", 2019).
#[inline(always)]
fn fastmod(x: u32, n: u32, m: u64) -> u32 {
    ((u128::from(m.wrapping_mul(u64::from(x))) * u128::from(n)) >> 64) as u32
}

impl<V: Default> FlowTable<V> {
    /// A table for `capacity` flows with a random hash seed.
    pub fn new(capacity: usize) -> Result<Self, CapacityError> {
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        Self::with_seed(capacity, s.hash_one(0x7467_775f_666c_6f77_u64))
    }

    /// A table for `capacity` flows whose hash is seeded by `seed`:
    /// reproducible layouts for tests and benchmarks. Allocates everything
    /// the table will ever use (see the module doc for the sizes).
    pub fn with_seed(capacity: usize, seed: u64) -> Result<Self, CapacityError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(CapacityError(capacity));
        }
        // 2 keys per flow at 80 % of 8 slots: cap * 2 / 6.4 = cap * 5 / 16.
        let nb = (capacity * 5).div_ceil(16).max(1);
        let nb32 = u32::try_from(nb).map_err(|_| CapacityError(capacity))?;
        let cap32 = capacity as u32;
        let entries: Box<[Entry]> = (0..cap32)
            .map(|i| Entry {
                deadline: u64::from(if i + 1 < cap32 { i + 1 } else { NO_ENTRY }),
                ..Entry::default()
            })
            .collect();
        let values: Box<[V]> = (0..capacity).map(|_| V::default()).collect();
        let mut sm = testgen::SplitMix64::new(seed);
        Ok(FlowTable {
            buckets: vec![Bucket::EMPTY; nb].into_boxed_slice(),
            entries,
            values,
            live: vec![0u64; capacity.div_ceil(64)].into_boxed_slice(),
            bfs: vec![Step::default(); BFS_NODES].into_boxed_slice(),
            seed: [sm.next_u64(), sm.next_u64()],
            nb: nb32,
            nb_mod: fastmod_multiplier(nb32),
            free_head: 0,
            len: 0,
            sweep_at: 0,
            passes: 0,
            moves: 0,
        })
    }
}

impl<V> FlowTable<V> {
    /// Flows the table can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Flows in the table, expired ones not yet removed included.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of a live flow.
    #[inline]
    pub fn get(&self, id: FlowId) -> Option<&V> {
        if self.is_live(id) {
            self.values.get(id.index())
        } else {
            None
        }
    }

    /// The value of a live flow, to update.
    #[inline]
    pub fn get_mut(&mut self, id: FlowId) -> Option<&mut V> {
        if self.is_live(id) {
            self.values.get_mut(id.index())
        } else {
            None
        }
    }

    /// The forward and reply keys of a live flow.
    #[inline]
    pub fn keys(&self, id: FlowId) -> Option<[FlowKey; 2]> {
        if self.is_live(id) {
            self.entries.get(id.index()).map(Entry::keys)
        } else {
            None
        }
    }

    /// Which key of flow `id` is `key`, if `id` holds a flow with it: a
    /// NIC's mark names a flow by id, and a stale one (its flow removed,
    /// the id reused) must not be taken for it. A free entry holds the
    /// zero key, which no packet's key is. The deadline is the caller's
    /// to check ([`FlowTable::hit_at`]).
    #[inline]
    pub fn check(&self, id: FlowId, key: &FlowKey) -> Option<Direction> {
        let e = self.entries.get(id.index())?;
        if *key == FlowKey::default() {
            None
        } else if e.forward == *key {
            Some(Direction::Forward)
        } else if e.reply == *key {
            Some(Direction::Reply)
        } else {
            None
        }
    }

    /// The deadline of a live flow.
    #[inline]
    pub fn deadline(&self, id: FlowId) -> Option<u64> {
        if self.is_live(id) {
            self.entries.get(id.index()).map(|e| e.deadline)
        } else {
            None
        }
    }

    /// Moves a live flow's deadline (a packet refreshed it, or the TCP state
    /// changed its timeout); false if `id` holds no flow.
    #[inline]
    pub fn set_deadline(&mut self, id: FlowId, deadline: u64) -> bool {
        if !self.is_live(id) {
            return false;
        }
        match self.entries.get_mut(id.index()) {
            Some(e) => {
                e.deadline = deadline;
                true
            }
            None => false,
        }
    }

    /// Whether `id` holds a flow (live or expired).
    #[inline]
    pub fn is_live(&self, id: FlowId) -> bool {
        self.live
            .get(id.index() / 64)
            .is_some_and(|w| w >> (id.0 % 64) & 1 != 0)
    }

    /// Every flow in the table, in id order: `(id, keys, deadline, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (FlowId, [FlowKey; 2], u64, &V)> + '_ {
        self.entries
            .iter()
            .zip(self.values.iter())
            .enumerate()
            .filter(|(i, _)| self.is_live(FlowId(*i as u32)))
            .map(|(i, (e, v))| (FlowId(i as u32), e.keys(), e.deadline, v))
    }

    /// Bytes allocated by the table, values included.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + std::mem::size_of_val(&*self.buckets)
            + std::mem::size_of_val(&*self.entries)
            + std::mem::size_of_val(&*self.values)
            + std::mem::size_of_val(&*self.live)
            + std::mem::size_of_val(&*self.bfs)
    }

    /// Bytes the table spends beyond the values themselves: buckets, keys,
    /// deadlines, live bits. Divide by [`FlowTable::capacity`] for the
    /// table's own cost per flow.
    pub fn overhead_bytes(&self) -> usize {
        self.memory_bytes() - self.capacity() * std::mem::size_of::<V>()
    }

    /// Occupancy and where the keys sit; walks every bucket.
    pub fn stats(&self) -> FlowStats {
        let mut used = 0usize;
        let mut in_alt = 0usize;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (slot, &x) in bucket.idx.iter().enumerate() {
                if bucket.sig(slot) == 0 {
                    continue;
                }
                used += 1;
                let primary = self
                    .entries
                    .get((x >> 1) as usize)
                    .map(|e| self.locate(e.key(x)).1);
                if primary != Some(b as u32) {
                    in_alt += 1;
                }
            }
        }
        FlowStats {
            capacity: self.capacity(),
            len: self.len(),
            buckets: self.buckets.len(),
            keys_in_alt: in_alt,
            moves: self.moves,
            slot_load: used as f64 / (self.buckets.len() * SLOTS) as f64,
            bytes: self.memory_bytes(),
            overhead_bytes: self.overhead_bytes(),
        }
    }

    /// Signature and primary bucket of a key.
    #[inline(always)]
    fn locate(&self, key: &FlowKey) -> (u16, u32) {
        let h = key::hash(key, &self.seed);
        let s = h as u16;
        // 0 marks an empty slot: taken as 1. `max` is a compare and a
        // `cmov`; `s | (s == 0)` was six instructions.
        //
        // The bucket as the high half of a 64-bit `mul` (Lemire's reduction
        // on the whole hash): one instruction where `(h >> 32) * nb >> 32`
        // took three, and a register fewer in the staged lookup's first
        // stage (callgrind, docs/perf.md session 12: -4 to -6 a key).
        (
            s.max(1),
            ((u128::from(h) * u128::from(self.nb)) >> 64) as u32,
        )
    }

    /// The other bucket of a key with signature `sig` that is in bucket
    /// `b`: `(off(sig) - b) mod nb`, its own inverse.
    ///
    /// The wrap is a remainder by multiplication, not a choice: `off` and
    /// `b` are independent, so `off >= b` holds for half the keys, and LLVM
    /// compiled that choice (written as an `if`; as a borrow mask, session
    /// 12, the same code) to a branch in the staged lookup's first stage,
    /// mispredicted for about half of a burst's keys while their bucket
    /// prefetches were being issued (docs/perf.md, session 14).
    #[inline(always)]
    fn alt(&self, b: u32, sig: u16) -> u32 {
        let off = fastrange(u32::from(sig).wrapping_mul(0x9e37_79b1), self.nb);
        // In 1..2 nb (off and b are below nb, itself below 2^31).
        fastmod(
            off.wrapping_add(self.nb).wrapping_sub(b),
            self.nb,
            self.nb_mod,
        )
    }

    #[inline(always)]
    fn bucket(&self, b: u32) -> &Bucket {
        self.buckets.get(b as usize).unwrap_or(&NO_BUCKET)
    }

    /// The slot index holding `key` in bucket `b`, if any.
    #[inline(always)]
    fn find(&self, b: u32, sig: u16, key: &FlowKey) -> Option<u32> {
        let bucket = self.bucket(b);
        let mut m = bucket.matches(sig);
        while m != 0 {
            let x = bucket.idx[(m.trailing_zeros() as usize).min(SLOTS - 1)];
            m &= m - 1;
            let e = self.entries.get((x >> 1) as usize)?;
            if e.key(x) == key {
                return Some(x);
            }
        }
        None
    }

    #[inline(always)]
    fn classify(&self, x: u32, now: u64) -> Lookup {
        let id = FlowId(x >> 1);
        let dir = Direction::from_bit(x);
        match self.entries.get(id.index()) {
            Some(e) if now < e.deadline => Lookup::Hit(id, dir),
            Some(_) => Lookup::Expired(id, dir),
            None => Lookup::Miss,
        }
    }

    fn set_live(&mut self, id: u32, live: bool) {
        if let Some(w) = self.live.get_mut(id as usize / 64) {
            let bit = 1u64 << (id % 64);
            if live {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        // Either key and the deadline contiguous (see `Entry`).
        assert_eq!(std::mem::offset_of!(Entry, deadline), 16);
        assert_eq!(std::mem::offset_of!(Entry, reply), 24);
        assert_eq!(std::mem::size_of::<Lookup>(), 8);
    }

    /// Two buckets full of one signature (keys with the same signature
    /// and the same primary bucket, hence the same alternative): every
    /// lookup, single or bulk, finds its own key among eight candidates,
    /// a ninth flow finds no room and changes nothing, and removing one
    /// makes room for it.
    #[test]
    fn buckets_full_of_one_signature() {
        let mut t: FlowTable<u64> = FlowTable::with_seed(16, 5).unwrap();
        // Keys grouped by (signature, primary bucket) until a group has
        // enough for nine flows.
        let mut groups: std::collections::HashMap<(u16, u32), Vec<FlowKey>> = Default::default();
        let mut rng = testgen::SplitMix64::new(9);
        let keys = loop {
            let k = FlowKey::from_words([rng.next_u64(), rng.next_u64()]);
            let g = groups.entry(t.locate(&k)).or_default();
            g.push(k);
            if g.len() == 18 {
                break g.clone();
            }
        };
        let (sig, b) = t.locate(&keys[0]);
        assert_ne!(t.alt(b, sig), b, "two buckets of sixteen slots");
        let mut flows = Vec::new();
        for (i, pair) in keys[..16].chunks(2).enumerate() {
            let id = t.insert(pair[0], pair[1], 100, i as u64).unwrap();
            flows.push((id, pair[0], pair[1]));
        }
        for bucket in [b, t.alt(b, sig)] {
            assert_eq!(t.bucket(bucket).matches(sig), 0xff, "all eight slots");
        }
        let all: Vec<FlowKey> = flows.iter().flat_map(|&(_, f, r)| [f, r]).collect();
        let mut out = [Lookup::Miss; 16];
        t.lookup_bulk(&all, 0, &mut out);
        for (i, (k, o)) in all.iter().zip(&out).enumerate() {
            let want = Lookup::Hit(flows[i / 2].0, Direction::from_bit(i as u32));
            assert_eq!((t.lookup(k, 0), *o), (want, want), "{k}");
        }
        assert_eq!(t.lookup(&keys[16], 0), Lookup::Miss);
        assert_eq!(
            t.insert(keys[16], keys[17], 100, 9),
            Err(InsertError::NoRoom)
        );
        assert_eq!(t.len(), 8);
        t.lookup_bulk(&all, 0, &mut out);
        assert!(out.iter().all(|o| o.hit().is_some()));
        let gone = t.remove(flows[3].0).unwrap();
        assert_eq!(gone.keys, [flows[3].1, flows[3].2]);
        let id = t.insert(keys[16], keys[17], 100, 9).unwrap();
        assert_eq!(t.lookup(&keys[17], 0), Lookup::Hit(id, Direction::Reply));
        assert_eq!(t.lookup(&flows[3].1, 0), Lookup::Miss);
    }

    /// Two keys that differ only in their last byte and share signature
    /// and bucket (a seed found for it): the key compare alone tells them
    /// apart, in every lookup.
    #[test]
    fn a_key_differing_only_in_its_last_byte_is_another_key() {
        let k = FlowKey::new(
            Zone::tenant(6).unwrap(),
            17,
            0x0a00_0002,
            5353,
            0x0101_0102,
            53,
        );
        let last = |b: u8| {
            let mut bytes = k.to_bytes();
            bytes[15] = b;
            let word = |r: &[u8]| u64::from_le_bytes(r.try_into().unwrap_or([0; 8]));
            FlowKey::from_words([word(&bytes[..8]), word(&bytes[8..])])
        };
        let (t, twin) = (0u64..)
            .find_map(|seed| {
                let t: FlowTable<u64> = FlowTable::with_seed(1, seed).ok()?;
                let twin = (0..=255u8)
                    .map(last)
                    .find(|o| *o != k && t.locate(o) == t.locate(&k))?;
                Some((t, twin))
            })
            .unwrap();
        let mut t = t;
        assert_eq!(twin.to_bytes()[..15], k.to_bytes()[..15]);
        let id = t.insert(k, k.reversed(), 100, 1).unwrap();
        let mut out = [Lookup::Expired(id, Direction::Reply); 2];
        t.lookup_bulk(&[twin, k], 0, &mut out);
        assert_eq!(out, [Lookup::Miss, Lookup::Hit(id, Direction::Forward)]);
        assert_eq!(t.lookup(&twin, 0), Lookup::Miss);
        assert!(t.hit(&twin, 0).is_none());
        assert!(t.hit_at(id, Direction::Forward, &twin, 0).is_none());
    }

    /// `fastmod` is `%` for every divisor a table can have, at the
    /// dividends `alt` gives it and at the edges of 32 bits.
    #[test]
    fn fastmod_is_the_remainder() {
        let mut rng = testgen::SplitMix64::new(3);
        let top = u32::try_from(MAX_CAPACITY).unwrap();
        let divisors = [
            1,
            2,
            3,
            5,
            7,
            64,
            1000,
            312_500,
            3_125_000,
            (1 << 30) + 3,
            top,
        ];
        let random: Vec<u32> = (0..200)
            .map(|_| rng.below(u64::from(top)) as u32 + 1)
            .collect();
        for n in divisors.into_iter().chain(random) {
            let m = fastmod_multiplier(n);
            let edges = [
                0,
                1,
                n - 1,
                n,
                n.wrapping_add(1),
                2 * n - 1,
                u32::MAX - 1,
                u32::MAX,
            ];
            for x in edges
                .into_iter()
                .chain((0..200).map(|_| rng.next_u64() as u32))
            {
                assert_eq!(fastmod(x, n, m), x % n, "{x} % {n}");
            }
        }
    }

    #[test]
    fn alt_is_an_involution() {
        for cap in [1, 3, 1000] {
            let t: FlowTable<()> = FlowTable::with_seed(cap, 1).unwrap();
            for b in 0..t.nb {
                for sig in [1u16, 2, 77, 0x8000, 0xffff] {
                    // (off(sig) - b) mod nb, as the bucket of a moved key
                    // was always found.
                    let off = fastrange(u32::from(sig).wrapping_mul(0x9e37_79b1), t.nb);
                    let want = (off + t.nb - b) % t.nb;
                    assert_eq!(t.alt(b, sig), want, "{b} {sig} of {}", t.nb);
                    assert_eq!(t.alt(want, sig), b);
                }
            }
        }
    }
}
