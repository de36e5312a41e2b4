//! Neighbours: the MAC addresses of next hops, as the workers read them.
//!
//! One fixed table of slots, shared by every worker and written by the
//! control plane alone (the [`NeighbourWriter`], of which there is one).
//! A slot is two words: the key (`space << 32 | ip`, where the space is a
//! port, or a tenant for hosts inside its gretap tunnels) and the MAC word
//! (the address, a valid bit and a failed bit). Workers probe by hash, or go
//! straight to the slot an adjacency remembered when the tables were built,
//! and never write: learning, timers and the frames waiting for an answer
//! live on the control plane ([`crate::resolver`]).
//!
//! Slots are never emptied, only marked dead and later given to another
//! key, so probe chains stay intact without locks. A reader checks the key
//! again after reading the MAC: the writer retires a slot by invalidating
//! the MAC before it changes the key, and publishes a MAC only after the
//! key, so a reader that sees the same key twice around a valid MAC has
//! that key's MAC (the seqlock argument, with the key as the sequence).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::tenant::TenantId;

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

    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// The key `to_bits` gave, or `None` for a value no key has.
    pub fn from_bits(bits: u64) -> Option<Self> {
        (bits >> 32 != 0).then_some(NeighKey(bits))
    }

    #[inline]
    fn hash(self) -> usize {
        (self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
    }
}

/// A key and the slot it was given, as adjacencies keep them: the slot
/// saves the probe, the key proves the slot still belongs to it.
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

const MAC_MASK: u64 = (1 << 48) - 1;
const VALID: u64 = 1 << 48;
const FAILED: u64 = 1 << 49;
/// A slot whose key may be given to another (set only with no MAC).
const DEAD: u64 = 1 << 50;

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    mac: AtomicU64,
}

/// The table the workers read.
#[derive(Debug)]
pub struct Neighbours {
    slots: Box<[Slot]>,
    mask: usize,
}

impl Neighbours {
    /// Slots in all: at least twice `capacity`, a power of two, so that
    /// probe chains stay short at full load.
    fn with_capacity(capacity: usize) -> Self {
        let n = (capacity.max(8) * 2).next_power_of_two();
        Neighbours {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
        }
    }

    /// How many keys fit.
    pub fn capacity(&self) -> usize {
        self.slots.len() / 2
    }

    /// The neighbour `key`, by probing.
    #[inline]
    pub fn get(&self, key: NeighKey) -> Lookup {
        match self.find(key) {
            Some(slot) => self.read(slot, key),
            None => Lookup::Unresolved,
        }
    }

    /// The neighbour of an adjacency: its remembered slot, else by probing
    /// (the slot was retired and the key moved on).
    #[inline]
    pub fn get_ref(&self, r: NeighRef) -> Lookup {
        match self.read(r.slot as usize, r.key) {
            Lookup::Unresolved => self.get(r.key),
            found => found,
        }
    }

    #[inline]
    fn read(&self, slot: usize, key: NeighKey) -> Lookup {
        let Some(s) = self.slots.get(slot) else {
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

    /// The slot holding `key`, if any. Chains end at an empty slot.
    #[inline]
    fn find(&self, key: NeighKey) -> Option<usize> {
        let mut i = key.hash() & self.mask;
        for _ in 0..self.slots.len() {
            match self.slots[i].key.load(Ordering::Acquire) {
                0 => return None,
                k if k == key.0 => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }
}

fn mac_from_word(word: u64) -> [u8; 6] {
    let b = (word & MAC_MASK).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn word_from_mac(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&mac);
    u64::from_be_bytes(b)
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
    live: usize,
}

/// An adjacency of the current tables points at the slot: never retired.
const PINNED: u8 = 1;
/// Configured by the operator: never learned over.
const STATIC: u8 = 2;

impl NeighbourWriter {
    /// A table for up to `capacity` neighbours.
    pub fn new(capacity: usize) -> Self {
        let table = Arc::new(Neighbours::with_capacity(capacity));
        let flags = vec![0; table.slots.len()];
        NeighbourWriter {
            table,
            flags,
            live: 0,
        }
    }

    /// The table, for the workers (through the published tables).
    pub fn table(&self) -> &Arc<Neighbours> {
        &self.table
    }

    /// Keys in the table, dead ones not counted.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The slot of `key`, giving it one (unresolved) if it has none.
    /// `None` when the table is full.
    pub fn claim(&mut self, key: NeighKey) -> Option<u32> {
        if let Some(i) = self.table.find(key) {
            let s = &self.table.slots[i];
            if s.mac.load(Ordering::Relaxed) & DEAD != 0 {
                s.mac.store(0, Ordering::Release);
                self.live += 1;
            }
            return Some(i as u32);
        }
        if self.live >= self.table.capacity() {
            return None;
        }
        // The first dead or empty slot on the key's chain: the key is not
        // further down (find said so), so it may live here.
        let mut i = key.hash() & self.table.mask;
        for _ in 0..self.table.slots.len() {
            let s = &self.table.slots[i];
            let k = s.key.load(Ordering::Relaxed);
            let dead = s.mac.load(Ordering::Relaxed) & DEAD != 0 && self.flags[i] & PINNED == 0;
            if k == 0 || dead {
                // The MAC word is already invalid (dead or empty): readers
                // of the old key see Unresolved from here on.
                s.key.store(key.0, Ordering::Release);
                s.mac.store(0, Ordering::Release);
                self.flags[i] = 0;
                self.live += 1;
                return Some(i as u32);
            }
            i = (i + 1) & self.table.mask;
        }
        // Every free slot is pinned by an adjacency: full.
        None
    }

    /// Claims `key` for an adjacency: its slot is never retired while
    /// pinned.
    pub fn pin(&mut self, key: NeighKey) -> Option<NeighRef> {
        let slot = self.claim(key)?;
        self.flags[slot as usize] |= PINNED;
        Some(NeighRef { key, slot })
    }

    /// Claims `key` with a MAC the operator configured: published at once,
    /// and never learned over. `false` when the table is full.
    pub fn set_static(&mut self, key: NeighKey, mac: [u8; 6]) -> bool {
        let Some(slot) = self.claim(key) else {
            return false;
        };
        self.flags[slot as usize] |= STATIC;
        self.set(key, mac)
    }

    /// Whether a reply from `key` may be learned without having been asked
    /// for: the key is in the table (a next hop of the tables, RFC 826's
    /// "already in my translation table") and not static.
    pub fn learnable(&self, key: NeighKey) -> bool {
        self.table.find(key).is_some_and(|i| {
            self.flags[i] & STATIC == 0
                && self.table.slots[i].mac.load(Ordering::Relaxed) & DEAD == 0
        })
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

    /// Retires `key`: no MAC, and its slot may go to another key unless an
    /// adjacency holds it.
    pub fn retire(&mut self, key: NeighKey) {
        if let Some(i) = self.table.find(key) {
            let s = &self.table.slots[i];
            if s.mac.load(Ordering::Relaxed) & DEAD == 0 {
                s.mac.store(DEAD, Ordering::Release);
                self.live -= 1;
            }
        }
    }

    /// What the workers would see for `key`.
    pub fn get(&self, key: NeighKey) -> Lookup {
        self.table.get(key)
    }

    /// Every live key with what the workers see for it and whether it is
    /// static, in slot order: for reports, on the control plane.
    pub fn entries(&self) -> Vec<(NeighKey, Lookup, bool)> {
        self.table
            .slots
            .iter()
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
            Some(i) if self.table.slots[i].mac.load(Ordering::Relaxed) & DEAD == 0 => {
                self.table.slots[i].mac.store(word, Ordering::Release);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

    #[test]
    fn keys_keep_port_tenant_and_address_apart() {
        let a = NeighKey::port(0, 0x0a00_0007);
        let b = NeighKey::inner(TenantId(0), 0x0a00_0007);
        let c = NeighKey::port(1, 0x0a00_0007);
        assert!(a != b && a != c && b != c);
        assert_eq!(a.as_port(), Some(0));
        assert_eq!(b.as_inner(), Some(TenantId(0)));
        assert_eq!(b.as_port(), None);
        assert_eq!(c.ip(), 0x0a00_0007);
        assert_ne!(NeighKey::port(0, 0).to_bits(), 0, "no key looks empty");
        assert_eq!(NeighKey::from_bits(a.to_bits()), Some(a));
        assert_eq!(NeighKey::from_bits(7), None);
    }

    #[test]
    fn set_failed_unresolved_and_retired_are_what_readers_see() {
        let mut w = NeighbourWriter::new(4);
        let k = NeighKey::port(2, 0x0101_01fe);
        assert_eq!(w.get(k), Lookup::Unresolved);
        assert!(!w.set(k, MAC), "a key must be claimed first");
        let slot = w.claim(k).unwrap();
        let r = NeighRef { key: k, slot };
        assert!(w.set(k, MAC));
        assert_eq!(w.table().get(k), Lookup::Mac(MAC));
        assert_eq!(w.table().get_ref(r), Lookup::Mac(MAC));
        assert!(w.set_failed(k));
        assert_eq!(w.table().get(k), Lookup::Failed);
        assert!(w.set_unresolved(k));
        assert_eq!(w.table().get(k), Lookup::Unresolved);
        w.set(k, MAC);
        w.retire(k);
        assert_eq!(w.table().get_ref(r), Lookup::Unresolved);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_full_table_refuses_and_retired_slots_are_reused() {
        let mut w = NeighbourWriter::new(8);
        let keys: Vec<_> = (0..8).map(|i| NeighKey::port(0, 0x0a00_0000 + i)).collect();
        for &k in &keys {
            assert!(w.claim(k).is_some());
            assert!(w.set(k, MAC));
        }
        let extra = NeighKey::port(0, 0x0b00_0000);
        assert_eq!(w.claim(extra), None);
        w.retire(keys[3]);
        assert!(w.claim(extra).is_some());
        assert!(w.set(extra, [9; 6]));
        assert_eq!(w.get(extra), Lookup::Mac([9; 6]));
        for (i, &k) in keys.iter().enumerate() {
            let want = if i == 3 {
                Lookup::Unresolved
            } else {
                Lookup::Mac(MAC)
            };
            assert_eq!(w.get(k), want, "key {i}");
        }
    }

    #[test]
    fn a_moved_slot_is_found_again_by_probing() {
        let mut w = NeighbourWriter::new(8);
        let a = NeighKey::port(0, 1);
        let slot = w.claim(a).unwrap();
        w.retire(a);
        // A key that hashes to the retired slot takes it; `a` comes back
        // elsewhere.
        let mask = w.table().mask;
        let b = (2..)
            .map(|ip| NeighKey::port(0, ip))
            .find(|k| k.hash() & mask == slot as usize)
            .unwrap();
        assert_eq!(w.claim(b), Some(slot));
        assert_ne!(w.claim(a), Some(slot));
        w.set(a, MAC);
        let stale = NeighRef { key: a, slot };
        assert_eq!(w.table().get_ref(stale), Lookup::Mac(MAC));
    }

    #[test]
    fn static_entries_are_not_learnable_next_hops_are() {
        let mut w = NeighbourWriter::new(8);
        let (a, b, c) = (
            NeighKey::port(0, 1),
            NeighKey::port(0, 2),
            NeighKey::port(0, 3),
        );
        assert!(w.set_static(a, MAC));
        w.pin(b).unwrap();
        assert_eq!(w.get(a), Lookup::Mac(MAC));
        assert!(!w.learnable(a));
        assert!(w.learnable(b));
        assert!(!w.learnable(c), "strangers are not in the table");
        w.retire(b);
        assert!(!w.learnable(b));
    }

    #[test]
    fn entries_list_the_live_keys_and_what_workers_see() {
        let mut w = NeighbourWriter::new(8);
        let (a, b, c) = (
            NeighKey::port(0, 1),
            NeighKey::inner(TenantId(2), 7),
            NeighKey::port(1, 3),
        );
        assert!(w.set_static(a, MAC));
        w.claim(b).unwrap();
        w.claim(c).unwrap();
        w.retire(c);
        let mut e = w.entries();
        e.sort_by_key(|x| x.0);
        let mut want = vec![(a, Lookup::Mac(MAC), true), (b, Lookup::Unresolved, false)];
        want.sort_by_key(|x| x.0);
        assert_eq!(e, want);
    }

    #[test]
    fn pinned_slots_are_never_given_away() {
        let mut w = NeighbourWriter::new(8);
        let a = NeighKey::port(0, 1);
        let r = w.pin(a).unwrap();
        w.retire(a);
        for i in 0..7 {
            w.claim(NeighKey::port(1, i)).unwrap();
        }
        assert_eq!(
            w.table().slots[r.slot as usize].key.load(Ordering::Relaxed),
            a.0
        );
        w.claim(a).unwrap();
        assert!(w.set(a, MAC));
        assert_eq!(w.table().get_ref(r), Lookup::Mac(MAC));
    }
}
