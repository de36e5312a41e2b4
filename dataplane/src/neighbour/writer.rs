//! The one writer of the neighbour table (the control plane): keys
//! claimed within each share's limit, placed in their buckets (a key of
//! two full buckets moved to make room), pinned for adjacencies, set
//! static, learned, failed and retired, and the changes a refused reload
//! takes back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{word_from_mac, Lookup, NeighKey, NeighRef, Neighbours, BUCKET, DEAD, FAILED, VALID};
use crate::tenant::TenantId;

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
    pub(super) flags: Vec<u8>,
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
pub(super) const PINNED: u8 = 1;
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
    /// before its share was, for about 1 process seed in 70 at a full share
    /// of 1,024 keys and 1 in 19 at 4,096, and a valid config was refused at
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
    pub(super) fn seeded(limits: NeighbourLimits) -> Self {
        Self::with_seed(limits, 0x1234_5678_9abc_def0)
    }

    /// A writer hashing with `seed`.
    pub(super) fn with_seed(limits: NeighbourLimits, seed: u64) -> Self {
        let mut w = Self::with_limits(limits);
        w.table = Arc::new(Neighbours::new(&limits, seed));
        w
    }
}
