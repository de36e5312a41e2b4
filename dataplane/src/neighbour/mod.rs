//! Neighbours: the MAC addresses of next hops, as the workers read them.
//!
//! One fixed table of slots, shared by every worker and written by the
//! control plane alone (the [`NeighbourWriter`], of which there is one).
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::tenant::TenantId;

mod copies;
pub use copies::{MacCopies, MAC_COPIES, MAX_MAC_COPIES};

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

fn word_from_mac(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    u64::from_le_bytes(b)
}

/// How many neighbours of each kind the table holds (the daemon's `[arp]`
/// `entries`, `port_entries` and `per_tenant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourLimits {
    /// Neighbours on the ports: next hops, hosts on the public subnets,
    /// tunnel hosts. Tenants never take them.
    pub ports: usize,
    /// Hosts inside gretap tunnels, all tenants together.
    pub tenants: usize,
    /// Hosts inside one tenant's tunnels.
    pub per_tenant: usize,
}

impl NeighbourLimits {
    /// `capacity` neighbours on the ports and as many inside tunnels, with
    /// no limit per tenant: for tests and tools.
    pub fn uniform(capacity: usize) -> Self {
        NeighbourLimits {
            ports: capacity,
            tenants: capacity,
            per_tenant: capacity,
        }
    }
}

/// Why a key got no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The ports' share is full.
    Ports,
    /// The tenants' share is full.
    Tenants,
    /// This tenant holds its `per_tenant` hosts already.
    Tenant,
    /// Both buckets of the key are full (rare below the limits).
    Buckets,
}

/// Keys refused a slot, by cause.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    pub ports_full: u64,
    pub tenants_full: u64,
    pub tenant_limit: u64,
    pub buckets_full: u64,
}

impl Refusals {
    pub fn total(&self) -> u64 {
        self.ports_full + self.tenants_full + self.tenant_limit + self.buckets_full
    }
}

/// The one writer of a [`Neighbours`] table: the control plane.
///
/// It is deliberately not `Clone`; the single-writer rule is what makes
/// the lock-free reads above sound.
#[derive(Debug)]
pub struct NeighbourWriter {
    table: Arc<Neighbours>,
    /// Per slot: [`PINNED`], [`STATIC`].
    flags: Vec<u8>,
    limits: NeighbourLimits,
    live_ports: usize,
    live_inner: usize,
    /// Live hosts of each tenant that has any.
    per_tenant: HashMap<TenantId, usize>,
    refusals: Refusals,
    /// Keys moved to their other bucket to make room for another
    /// ([`NeighbourWriter::make_room`]).
    moved: u64,
    /// The writes of a change not yet decided ([`NeighbourWriter::begin`]).
    change: Option<Change>,
}

/// What a change wrote into the live table, to take back if the change is
/// refused: the workers read the table directly, not through the
/// snapshot the change builds.
#[derive(Debug, Default)]
struct Change {
    /// Each slot claimed, in order, with its flags before and whether the
    /// claim brought its key in (new, or back from dead) and counted it.
    claimed: Vec<Claimed>,
    /// Static MACs, published when the change is accepted: until then a
    /// key keeps the MAC it had.
    statics: Vec<(NeighKey, [u8; 6])>,
}

#[derive(Debug)]
struct Claimed {
    slot: u32,
    key: NeighKey,
    flags: u8,
    brought_in: bool,
    counted: bool,
}

/// An adjacency of the current tables points at the slot: never given to
/// another key.
const PINNED: u8 = 1;
/// Configured by the operator: never learned over.
const STATIC: u8 = 2;

impl NeighbourWriter {
    /// A table for up to `capacity` neighbours on the ports and as many
    /// inside tunnels ([`NeighbourLimits::uniform`]).
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(NeighbourLimits::uniform(capacity))
    }

    /// A table with these limits, hashed with the seed of this process
    /// ([`crate::hash::process_seed`]).
    pub fn with_limits(limits: NeighbourLimits) -> Self {
        let table = Arc::new(Neighbours::new(&limits, crate::hash::process_seed()));
        let flags = vec![0; table.slots()];
        NeighbourWriter {
            table,
            flags,
            limits,
            live_ports: 0,
            live_inner: 0,
            per_tenant: HashMap::new(),
            refusals: Refusals::default(),
            moved: 0,
            change: None,
        }
    }

    /// Opens a change: until [`NeighbourWriter::commit`], static MACs are
    /// kept aside and every slot claimed is recorded, so that
    /// [`NeighbourWriter::rollback`] leaves the table as it was. A refused
    /// change must change nothing, and the table is live: a refused tenant
    /// once left its static MACs and a full share behind for the next
    /// tenant in its slot, and a refused reload changed a MAC.
    pub fn begin(&mut self) {
        self.change = Some(Change::default());
    }

    /// Accepts the open change: its static MACs are published.
    pub fn commit(&mut self) {
        let Some(change) = self.change.take() else {
            return;
        };
        for (key, mac) in change.statics {
            if let Some(i) = self.table.find(key) {
                self.publish_static(i, key, mac);
            }
        }
    }

    /// Takes the open change back: each slot it claimed has its flags
    /// again, and a key it brought in is dead again (as retired), its
    /// count given back.
    pub fn rollback(&mut self) {
        let Some(change) = self.change.take() else {
            return;
        };
        for c in change.claimed.into_iter().rev() {
            let i = c.slot as usize;
            self.flags[i] = c.flags;
            if c.brought_in {
                self.mac_of(i).store(DEAD, Ordering::Release);
            }
            if c.counted {
                self.count(c.key, false);
            }
        }
    }

    /// The table, for the workers (through the published tables).
    pub fn table(&self) -> &Arc<Neighbours> {
        &self.table
    }

    /// Keys in the table, dead ones not counted (but pinned ones are).
    pub fn len(&self) -> usize {
        self.live_ports + self.live_inner
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live hosts inside the tunnels of `tenant`.
    pub fn tenant_len(&self, tenant: TenantId) -> usize {
        self.per_tenant.get(&tenant).copied().unwrap_or(0)
    }

    /// Keys refused so far, by cause.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Keys moved so far to make room for another.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// The slot of `key`, giving it one (unresolved) if it has none. Refused
    /// when the key's share is full or its buckets are (counted).
    pub fn claim(&mut self, key: NeighKey) -> Result<u32, Refused> {
        if let Some(i) = self.table.find(key) {
            let (flags, dead) = (self.flags[i], self.is_dead(i));
            // A pinned slot stays counted while retired: it is its key's
            // whatever else came since.
            let counted = dead && flags & PINNED == 0;
            if counted {
                self.room(key)?;
                self.count(key, true);
            }
            if dead {
                self.mac_of(i).store(0, Ordering::Release);
            }
            self.record(i, key, flags, dead, counted);
            return Ok(i as u32);
        }
        self.room(key)?;
        let Some(i) = self.free_slot(key) else {
            self.refusals.buckets_full += 1;
            return Err(Refused::Buckets);
        };
        let s = self.table.slot(i).unwrap_or_else(|| unreachable!());
        // The MAC word is already invalid (dead or empty): readers of the
        // old key see Unresolved from here on, and readers of the new one
        // until its MAC is set.
        s.key.store(key.0, Ordering::Release);
        s.mac.store(0, Ordering::Release);
        self.flags[i] = 0;
        self.count(key, true);
        self.record(i, key, 0, true, true);
        Ok(i as u32)
    }

    /// Notes a claim of slot `i` in the open change, if there is one.
    fn record(&mut self, i: usize, key: NeighKey, flags: u8, brought_in: bool, counted: bool) {
        if let Some(change) = &mut self.change {
            change.claimed.push(Claimed {
                slot: i as u32,
                key,
                flags,
                brought_in,
                counted,
            });
        }
    }

    /// Whether `key`'s share has room for one more; counts a refusal.
    fn room(&mut self, key: NeighKey) -> Result<(), Refused> {
        let refused = match key.as_inner() {
            None if self.live_ports >= self.limits.ports => Some(Refused::Ports),
            None => None,
            Some(_) if self.live_inner >= self.limits.tenants => Some(Refused::Tenants),
            Some(t) if self.tenant_len(t) >= self.limits.per_tenant => Some(Refused::Tenant),
            Some(_) => None,
        };
        match refused {
            None => Ok(()),
            Some(why) => {
                let r = &mut self.refusals;
                *match why {
                    Refused::Ports => &mut r.ports_full,
                    Refused::Tenants => &mut r.tenants_full,
                    Refused::Tenant => &mut r.tenant_limit,
                    Refused::Buckets => &mut r.buckets_full,
                } += 1;
                Err(why)
            }
        }
    }

    /// One more live key (or one fewer) in `key`'s shares.
    fn count(&mut self, key: NeighKey, up: bool) {
        let step = |n: &mut usize| {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        };
        match key.as_inner() {
            None => step(&mut self.live_ports),
            Some(t) => {
                step(&mut self.live_inner);
                let n = self.per_tenant.entry(t).or_insert(0);
                step(n);
                if *n == 0 {
                    self.per_tenant.remove(&t);
                }
            }
        }
    }

    /// A slot for a new key: empty, or retired and not pinned, in the less
    /// loaded of its two buckets (two-choice placement keeps buckets even);
    /// when both are full, one made free by moving a key of theirs to its
    /// other bucket ([`NeighbourWriter::make_room`]).
    fn free_slot(&mut self, key: NeighKey) -> Option<usize> {
        let [a, b] = self.table.buckets_of(key);
        let (na, nb) = (self.free_in(a).count(), self.free_in(b).count());
        let best = if nb > na { b } else { a };
        let found = self.free_in(best).next();
        found.or_else(|| self.make_room([a, b]))
    }

    /// The free slots of bucket `b`: empty, or retired and not pinned.
    fn free_in(&self, b: usize) -> impl Iterator<Item = usize> + '_ {
        (b * BUCKET..(b + 1) * BUCKET).filter(|&i| {
            self.table.slot(i).is_some_and(|s| {
                s.key.load(Ordering::Relaxed) == 0
                    || (self.is_dead(i) && self.flags[i] & PINNED == 0)
            })
        })
    }

    /// Frees a slot of `buckets`, both full, by moving one of their keys
    /// to a free slot of its other bucket (one step of cuckoo hashing):
    /// two-choice placement alone left both buckets of some key full
    /// before its share was, for about 1 process seed in 70 at a share of
    /// 1,024 keys and 1 in 17 at 4,096, and a valid config was refused at
    /// random (tests: `a_share_fills_to_its_limit_whatever_the_seed`). A
    /// key no adjacency pins is moved if one can be: a pinned key's
    /// adjacencies remember its old slot, and find it by lookup until the
    /// next build pins it again.
    fn make_room(&mut self, buckets: [usize; 2]) -> Option<usize> {
        for pinned_too in [false, true] {
            for x in buckets {
                for i in x * BUCKET..(x + 1) * BUCKET {
                    if !pinned_too && self.flags[i] & PINNED != 0 {
                        continue;
                    }
                    let Some(s) = self.table.slot(i) else {
                        continue;
                    };
                    let Some(k) = NeighKey::from_bits(s.key.load(Ordering::Relaxed)) else {
                        continue;
                    };
                    let [p, q] = self.table.buckets_of(k);
                    let other = if p == x { q } else { p };
                    let free = self.free_in(other).next();
                    if let Some(j) = free {
                        self.move_slot(i, j);
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// Moves slot `i`'s key, word and flags to slot `j`, free, and leaves
    /// `i` empty. Readers always find the key: it is in `j`, with its word,
    /// before it leaves `i`, and `i` gives it up by its key first, so that
    /// a lookup that no longer finds it there goes on to its other bucket
    /// (a reader that had read `i`'s key before sees it change, and
    /// answers Unresolved once, as for any slot that changes under it).
    fn move_slot(&mut self, i: usize, j: usize) {
        let (Some(from), Some(to)) = (self.table.slot(i), self.table.slot(j)) else {
            return;
        };
        let key = from.key.load(Ordering::Relaxed);
        let word = from.mac.load(Ordering::Relaxed);
        // `j`'s word is invalid (empty or dead): readers of its old key
        // see Unresolved, and readers of this one find it once its word
        // is there.
        to.key.store(key, Ordering::Release);
        to.mac.store(word, Ordering::Release);
        from.key.store(0, Ordering::Release);
        from.mac.store(DEAD, Ordering::Release);
        self.flags[j] = self.flags[i];
        self.flags[i] = 0;
        self.moved += 1;
        // The change's record of the key's claim follows it.
        if let Some(change) = &mut self.change {
            for c in &mut change.claimed {
                if c.slot as usize == i && c.key.0 == key {
                    c.slot = j as u32;
                }
            }
        }
    }

    fn is_dead(&self, i: usize) -> bool {
        self.mac_of(i).load(Ordering::Relaxed) & DEAD != 0
    }

    fn mac_of(&self, i: usize) -> &AtomicU64 {
        &self.table.slot(i).unwrap_or_else(|| unreachable!()).mac
    }

    /// Claims `key` for an adjacency: its slot is never given to another
    /// key while pinned.
    pub fn pin(&mut self, key: NeighKey) -> Option<NeighRef> {
        let slot = self.claim(key).ok()?;
        self.flags[slot as usize] |= PINNED;
        Some(NeighRef { key, slot })
    }

    /// Claims `key` with a MAC the operator configured: published at once
    /// (in an open change, when it is committed), and never learned over.
    /// `false` when there is no room.
    pub fn set_static(&mut self, key: NeighKey, mac: [u8; 6]) -> bool {
        let Ok(slot) = self.claim(key) else {
            return false;
        };
        if let Some(change) = &mut self.change {
            change.statics.push((key, mac));
            return true;
        }
        self.publish_static(slot as usize, key, mac)
    }

    /// Slot `i`, `key`'s, holds the operator's `mac`, never learned over.
    fn publish_static(&mut self, i: usize, key: NeighKey, mac: [u8; 6]) -> bool {
        self.flags[i] |= STATIC;
        self.set(key, mac)
    }

    /// Whether a reply from `key` may be learned without having been asked
    /// for: the key is in the table (a next hop of the tables, RFC 826's
    /// "already in my translation table") and not static.
    pub fn learnable(&self, key: NeighKey) -> bool {
        self.table
            .find(key)
            .is_some_and(|i| self.flags[i] & STATIC == 0 && !self.is_dead(i))
    }

    /// Publishes `mac` for `key` (claimed before).
    pub fn set(&mut self, key: NeighKey, mac: [u8; 6]) -> bool {
        self.store(key, word_from_mac(mac) | VALID)
    }

    /// Marks `key` failed: workers drop instead of asking again.
    pub fn set_failed(&mut self, key: NeighKey) -> bool {
        self.store(key, FAILED)
    }

    /// Forgets the MAC of `key`: the next frame asks again.
    pub fn set_unresolved(&mut self, key: NeighKey) -> bool {
        self.store(key, 0)
    }

    /// Retires `key`: no MAC, and its slot is free for another key of its
    /// buckets at once, unless an adjacency holds it (then it stays
    /// counted, kept for its key).
    pub fn retire(&mut self, key: NeighKey) {
        if let Some(i) = self.table.find(key) {
            if !self.is_dead(i) {
                let old = self.mac_of(i).swap(DEAD, Ordering::AcqRel);
                self.count_failed(old, DEAD);
                self.count_change(old, DEAD);
                if self.flags[i] & PINNED == 0 {
                    self.count(key, false);
                }
            }
        }
    }

    /// Lets go of `key` for good: no adjacency holds it and it is not
    /// static any more (its tunnel, route or tenant was removed at
    /// runtime). Unlike [`NeighbourWriter::retire`], a pinned or static
    /// slot is freed too, so that a gateway whose tenants come and go does
    /// not fill its table with the next hops of tenants long gone.
    pub fn release(&mut self, key: NeighKey) {
        let Some(i) = self.table.find(key) else {
            return;
        };
        let pinned = self.flags[i] & PINNED != 0;
        if !self.is_dead(i) {
            let old = self.mac_of(i).swap(DEAD, Ordering::AcqRel);
            self.count_failed(old, DEAD);
            self.count_change(old, DEAD);
            self.count(key, false);
        } else if pinned {
            // A retired pinned slot stayed counted for its key.
            self.count(key, false);
        }
        self.flags[i] &= !(PINNED | STATIC);
    }

    /// What the workers would see for `key`.
    pub fn get(&self, key: NeighKey) -> Lookup {
        self.table.get(key)
    }

    /// Every live key with what the workers see for it and whether it is
    /// static, in slot order: for reports, on the control plane.
    pub fn entries(&self) -> Vec<(NeighKey, Lookup, bool)> {
        self.table
            .buckets
            .iter()
            .flat_map(|b| &b.0)
            .zip(&self.flags)
            .filter_map(|(s, &flags)| {
                let key = NeighKey::from_bits(s.key.load(Ordering::Acquire))?;
                if s.mac.load(Ordering::Acquire) & DEAD != 0 {
                    return None;
                }
                Some((key, self.table.get(key), flags & STATIC != 0))
            })
            .collect()
    }

    fn store(&mut self, key: NeighKey, word: u64) -> bool {
        match self.table.find(key) {
            Some(i) if !self.is_dead(i) => {
                let old = self.mac_of(i).swap(word, Ordering::AcqRel);
                self.count_failed(old, word);
                self.count_change(old, word);
                true
            }
            _ => false,
        }
    }

    /// Counts a slot's known MAC `old` moving to `new`
    /// ([`Neighbours::changes`]): one writer, so a load and a store.
    fn count_change(&self, old: u64, new: u64) {
        if old != new && old & VALID != 0 {
            let c = &self.table.changes;
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
        }
    }

    /// Keeps [`Neighbours::any_failed`] true while some slot is failed.
    fn count_failed(&self, old: u64, new: u64) {
        let f = &self.table.failed;
        match (old & FAILED != 0, new & FAILED != 0) {
            (false, true) => f.store(f.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            (true, false) => f.store(f.load(Ordering::Relaxed) - 1, Ordering::Relaxed),
            _ => {}
        }
    }
}

#[cfg(test)]
impl NeighbourWriter {
    /// A writer whose hashes are the same on every run.
    fn seeded(limits: NeighbourLimits) -> Self {
        Self::with_seed(limits, 0x1234_5678_9abc_def0)
    }

    /// A writer hashing with `seed`.
    fn with_seed(limits: NeighbourLimits, seed: u64) -> Self {
        let mut w = Self::with_limits(limits);
        w.table = Arc::new(Neighbours::new(&limits, seed));
        w
    }
}

#[cfg(test)]
mod tests;
