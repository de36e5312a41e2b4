//! Neighbours: the MAC addresses of next hops, as the workers read them.
//!
//! One fixed table of slots, shared by every worker and written by the
//! control plane alone (the [`NeighbourWriter`], in writer.rs, of which there
//! is one).
//! A slot is two words: the key (`space << 32 | ip`, where the space is a
//! port, or a tenant for hosts inside its gretap tunnels) and the MAC word
//! (the address, a valid bit and a failed bit). Workers look a key up in
//! its two buckets, or go straight to the slot an adjacency remembered when
//! the tables were built, and never write: learning, timers and the frames
//! waiting for an answer live on the control plane ([`crate::resolver`]).
//!
//! **Bounded probes.** A key lives in one of two buckets of [`BUCKET`]
//! slots (one cache line each), chosen by two seeded hashes: a lookup,
//! found or not, reads at most [`PROBE_MAX`] slots whatever the table has
//! been through. There are no probe chains, so a retired slot is free for
//! any key of its bucket at once (unless an adjacency pins it), and churn
//! leaves nothing behind. A new key whose two buckets are full has one of
//! their keys moved to its other bucket first (one step of cuckoo
//! hashing), so that a share holds its limit whatever the seed.
//!
//! **Shares.** The neighbours of the ports (next hops, hosts on the public
//! subnets, tunnel hosts) and the hosts inside tenants' tunnels live in two
//! regions of the table, each with its own limit, and each tenant has a
//! limit of its own: a tenant's VM that announces thousands of addresses
//! fills at most its own share, never the ports' region nor another
//! tenant's. Every refusal is counted by its cause ([`Refusals`]).
//!
//! **Lock-free reads.** A reader checks the key again after reading the
//! MAC: the writer retires a slot by invalidating the MAC before it gives
//! the slot another key, and publishes a MAC only after the key, so a
//! reader that sees the same key twice around a valid MAC has that key's
//! MAC (the seqlock argument, with the key as the sequence).
//!
//! **Copies.** A worker keeps the MACs encap read ([`MacCopies`], in
//! copies.rs), each with the count of changes it was read at: while no
//! known MAC changed, a copy is its key's MAC, proved by one load of the
//! count.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tenant::TenantId;

mod copies;
mod writer;
pub use copies::{MacCopies, MAC_COPIES, MAX_MAC_COPIES};
pub use writer::{NeighbourLimits, NeighbourWriter, Refusals, Refused};

/// Spaces above this are tenants (inner neighbours), below are ports.
const INNER: u32 = 1 << 31;

/// A neighbour: an IPv4 address on a port, or inside a tenant's tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighKey(u64);

impl NeighKey {
    /// `ip` on port `port`.
    pub fn port(port: u16, ip: u32) -> Self {
        Self::new(u32::from(port), ip)
    }

    /// `ip` inside the gretap tunnels of `tenant`.
    pub fn inner(tenant: TenantId, ip: u32) -> Self {
        Self::new(INNER | (tenant.0 & !INNER), ip)
    }

    // The space is stored plus one, so that no key is 0 (an empty slot).
    fn new(space: u32, ip: u32) -> Self {
        NeighKey((u64::from(space) + 1) << 32 | u64::from(ip))
    }

    fn space(self) -> u32 {
        ((self.0 >> 32) - 1) as u32
    }

    pub fn ip(self) -> u32 {
        self.0 as u32
    }

    /// The port, for a neighbour on a port.
    pub fn as_port(self) -> Option<u16> {
        let s = self.space();
        (s & INNER == 0).then_some(s as u16)
    }

    /// The tenant, for a host inside a tenant's tunnels.
    pub fn as_inner(self) -> Option<TenantId> {
        let s = self.space();
        (s & INNER != 0).then_some(TenantId(s & !INNER))
    }

    #[inline]
    fn is_inner(self) -> bool {
        self.space() & INNER != 0
    }

    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// The key `to_bits` gave, or `None` for a value no key has.
    pub fn from_bits(bits: u64) -> Option<Self> {
        (bits >> 32 != 0).then_some(NeighKey(bits))
    }
}

/// The space of a key (a port, or a tenant's hosts inside its tunnels)
/// without its address: made once, it gives the key of each address in
/// the space by an `or` (the address bits are zero), where a key moved to
/// another address took an `and` too (callgrind: 2 instructions a frame
/// going into a gretap tunnel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighSpace(u64);

impl NeighSpace {
    /// The space `key` is in.
    pub fn of(key: NeighKey) -> Self {
        NeighSpace(key.0 & !0xffff_ffff)
    }

    /// The key of `ip` in this space.
    #[inline(always)]
    pub fn key(self, ip: u32) -> NeighKey {
        NeighKey(self.0 | u64::from(ip))
    }
}

/// A key and the slot it was given, as adjacencies keep them: the slot
/// saves the lookup, the key proves the slot still belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighRef {
    pub key: NeighKey,
    pub slot: u32,
}

/// What a worker learns about a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Mac([u8; 6]),
    /// Not known yet: the control plane should resolve it.
    Unresolved,
    /// Recently asked for in vain: drop without asking again.
    Failed,
}

const VALID: u64 = 1 << 48;
const FAILED: u64 = 1 << 49;
/// A slot whose key may be given to another (set only with no MAC).
const DEAD: u64 = 1 << 50;

/// Slots per bucket: four (key, MAC) pairs fill one cache line.
pub const BUCKET: usize = 4;
// `Neighbours::scan` is unrolled for four.
const _: () = assert!(BUCKET == 4);
/// Slots a lookup reads at most, found or not: the two buckets of its key.
pub const PROBE_MAX: usize = 2 * BUCKET;

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    mac: AtomicU64,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Bucket([Slot; BUCKET]);

/// A run of buckets for one kind of key: a power of two of them, at least
/// two, so that a key's two buckets differ.
#[derive(Clone, Copy, Debug)]
struct Region {
    first: usize,
    mask: usize,
}

impl Region {
    /// Room for `keys` keys from bucket `first` on: twice as many slots,
    /// so that two-choice placement rarely finds both buckets full (and
    /// a move makes room when it does).
    fn sized(first: usize, keys: usize) -> Self {
        let buckets = (keys * 2).div_ceil(BUCKET).next_power_of_two().max(2);
        Region {
            first,
            mask: buckets - 1,
        }
    }

    fn buckets(self) -> usize {
        self.mask + 1
    }
}

/// Tables made in this process so far: each table's change count starts
/// at its number shifted by [`TABLE_COUNTS`].
static TABLES: AtomicU64 = AtomicU64::new(0);

/// Each table's change count has 2^40 values of its own (twelve days of a
/// million changes a second) before it reaches the next table's: a
/// worker's copies from a table it read before (tests and tools that give
/// a pipeline tables of another writer; the daemon makes one) are never
/// taken for this one's. 2^24 tables a process.
const TABLE_COUNTS: u32 = 40;

/// The table the workers read.
#[derive(Debug)]
pub struct Neighbours {
    buckets: Box<[Bucket]>,
    /// Neighbours on the ports.
    ports: Region,
    /// Hosts inside tenants' tunnels.
    inner: Region,
    /// Per process, so that nobody outside can pick addresses that share
    /// a bucket.
    seed: u64,
    /// Slots whose neighbour is failed (the writer keeps it).
    failed: AtomicU64,
    /// Changes of a known MAC (to another, failed, forgotten), counted by
    /// the writer: the offload manager looks again at the MACs its rules
    /// carry when it moves ([`Neighbours::changes`]). From `first`, not 0.
    changes: AtomicU64,
    /// Where this table's count starts: a range of its own in the process
    /// ([`TABLE_COUNTS`]), so that a worker's copies taken from another
    /// table never meet this one's count ([`MacCopies`]).
    first: u64,
}

impl Neighbours {
    fn new(limits: &NeighbourLimits, seed: u64) -> Self {
        let first = TABLES.fetch_add(1, Ordering::Relaxed) << TABLE_COUNTS;
        let ports = Region::sized(0, limits.ports);
        let inner = Region::sized(ports.buckets(), limits.tenants);
        let n = ports.buckets() + inner.buckets();
        Neighbours {
            buckets: (0..n).map(|_| Bucket::default()).collect(),
            ports,
            inner,
            seed,
            failed: AtomicU64::new(0),
            changes: AtomicU64::new(first),
            first,
        }
    }

    /// The slots of the inner region (hosts inside tenants' tunnels).
    pub fn inner_slots(&self) -> std::ops::Range<usize> {
        let first = self.inner.first * BUCKET;
        first..first + self.inner.buckets() * BUCKET
    }

    /// Slots in all, both regions.
    pub fn slots(&self) -> usize {
        self.buckets.len() * BUCKET
    }

    /// The neighbour `key`, by looking in its buckets.
    #[inline(always)]
    pub fn get(&self, key: NeighKey) -> Lookup {
        match self.find(key) {
            Some(slot) => self.read(slot, key),
            None => Lookup::Unresolved,
        }
    }

    /// The neighbour of an adjacency: its remembered slot, else by lookup
    /// (the slot was retired and the key moved on).
    #[inline]
    pub fn get_ref(&self, r: NeighRef) -> Lookup {
        match self.read(r.slot as usize, r.key) {
            Lookup::Unresolved => self.get(r.key),
            found => found,
        }
    }

    /// [`Neighbours::get`] with a remembered slot: `hint` is the slot + 1
    /// where `key` was last found (0: not known), read first and refreshed
    /// when the key has moved on. A flow keeps the hint of its inner
    /// neighbour, so its packets skip the hashed lookup. Slots past
    /// `u16::MAX - 1` are not remembered.
    #[inline]
    pub fn get_hinted(&self, key: NeighKey, hint: &mut u16) -> Lookup {
        // As in `MacCopies::put_mac_hinted`: no hint is a slot past the
        // table.
        let found = self.read(usize::from(*hint).wrapping_sub(1), key);
        if found != Lookup::Unresolved {
            return found;
        }
        self.get_remembered(key, hint)
    }

    /// [`Neighbours::get_hinted`] past its hint: the hashed search, and
    /// the slot found remembered. Out of line, so that the search (rare: a
    /// flow's first frame, a slot retired) costs encap, its caller,
    /// nothing on other frames: inlined, its constants and spills were on
    /// every frame's path (callgrind: 11 instructions a frame).
    /// `get_ref`'s search is left inlined: out of line there it cost
    /// encap 1 to 2 instructions a frame more.
    #[cold]
    #[inline(never)]
    fn get_remembered(&self, key: NeighKey, hint: &mut u16) -> Lookup {
        match self.find(key) {
            Some(slot) => {
                *hint = u16::try_from(slot + 1).unwrap_or(0);
                self.read(slot, key)
            }
            None => Lookup::Unresolved,
        }
    }

    /// Whether some neighbour is failed now: the workers look for a failed
    /// one before NAT only then (one load on a line that rarely changes).
    #[inline]
    pub fn any_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed) != 0
    }

    /// How many times a known MAC changed since the table was made: to
    /// another, failed, or forgotten. A key learned for the first time,
    /// or again with the MAC it had, is no change: no rule can hold a MAC
    /// the table did not give. The offload manager's notice; a worker
    /// reads the count itself, as the proof its copies of the outer MACs
    /// still hold ([`MacCopies`]).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire) - self.first
    }

    /// Slots a lookup of `key` reads now: at most [`PROBE_MAX`], whatever
    /// came and went before. For tests and benchmarks; it follows
    /// [`Neighbours::find`] step by step.
    pub fn probes(&self, key: NeighKey) -> usize {
        let [a, b] = self.buckets_of(key);
        let at = |b: usize| {
            self.buckets[b]
                .0
                .iter()
                .position(|s| s.key.load(Ordering::Acquire) == key.0)
        };
        match (at(a), at(b)) {
            (Some(i), _) => i + 1,
            (None, Some(i)) => BUCKET + i + 1,
            (None, None) => 2 * BUCKET,
        }
    }

    #[inline]
    fn slot(&self, i: usize) -> Option<&Slot> {
        self.buckets.get(i / BUCKET).map(|b| &b.0[i % BUCKET])
    }

    /// The MAC word of slot `slot` while it holds `key` and it is valid:
    /// the key checked on both sides of the word's load, and the valid bit
    /// between them, a branch of its own (tested after the second key,
    /// LLVM merged the two tests with `setcc`s: callgrind, 2 instructions
    /// a read). [`Neighbours::read`] makes the same checks in its own
    /// words: written through this one, it put `resolve_public`'s inlined
    /// search in another shape and cost `pipeline_staged` nat and encap 2
    /// instructions a frame.
    #[inline(always)]
    fn valid_word(&self, slot: usize, key: NeighKey) -> Option<u64> {
        let s = self.slot(slot)?;
        if s.key.load(Ordering::Acquire) != key.0 {
            return None;
        }
        let word = s.mac.load(Ordering::Acquire);
        if word & VALID == 0 {
            return None;
        }
        (s.key.load(Ordering::Relaxed) == key.0).then_some(word)
    }

    #[inline]
    fn read(&self, slot: usize, key: NeighKey) -> Lookup {
        let Some(s) = self.slot(slot) else {
            return Lookup::Unresolved;
        };
        if s.key.load(Ordering::Acquire) != key.0 {
            return Lookup::Unresolved;
        }
        let word = s.mac.load(Ordering::Acquire);
        if s.key.load(Ordering::Relaxed) != key.0 {
            return Lookup::Unresolved;
        }
        if word & VALID != 0 {
            Lookup::Mac(mac_from_word(word))
        } else if word & FAILED != 0 {
            Lookup::Failed
        } else {
            Lookup::Unresolved
        }
    }

    #[inline]
    fn region(&self, key: NeighKey) -> Region {
        if key.is_inner() {
            self.inner
        } else {
            self.ports
        }
    }

    /// The two buckets `key` may live in, in its region: from one seeded
    /// hash with a full finish (murmur3's fmix64, as [`crate::hash`]), so
    /// that every bit of the key, its tenant's too, reaches both.
    #[inline(always)]
    fn buckets_of(&self, key: NeighKey) -> [usize; 2] {
        let r = self.region(key);
        let mut h = key.0 ^ self.seed;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        let a = h as usize & r.mask;
        let mut b = (h >> 32) as usize & r.mask;
        if b == a {
            b = a ^ 1;
        }
        [r.first + a, r.first + b]
    }

    /// The slot of `key` in bucket `b`, if there: four loads and compares,
    /// unrolled.
    #[inline(always)]
    fn scan(&self, b: usize, key: NeighKey) -> Option<usize> {
        let s = &self.buckets.get(b)?.0;
        let is = |i: usize| s[i].key.load(Ordering::Acquire) == key.0;
        let i = if is(0) {
            0
        } else if is(1) {
            1
        } else if is(2) {
            2
        } else if is(3) {
            3
        } else {
            return None;
        };
        Some(b * BUCKET + i)
    }

    /// The slot holding `key`, if any: its first bucket, then its second.
    #[inline(always)]
    fn find(&self, key: NeighKey) -> Option<usize> {
        let [a, b] = self.buckets_of(key);
        self.scan(a, key).or_else(|| self.scan(b, key))
    }
}

/// A slot's MAC is its word's low six bytes in little-endian order, the
/// flags above them: on the workers' little-endian CPUs the MAC is then
/// the register's low bytes as they go into a header, with no byte swap
/// or shift (callgrind: two instructions a read, and two reads in a frame
/// going into a gretap tunnel).
#[inline(always)]
fn mac_from_word(word: u64) -> [u8; 6] {
    let b = word.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// Writes the MAC of a valid slot's word into `dst`.
#[inline(always)]
fn put_mac(word: u64, dst: &mut [u8; 6]) {
    dst.copy_from_slice(&word.to_le_bytes()[..6]);
}

/// A slot's word for `mac`, no flags set.
fn word_from_mac(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests;
