//! Where a key goes: one of its two buckets (cuckoo hashing), and when
//! both are full, a breadth-first search for a chain of keys that can each
//! move to their other bucket, then the moves back along it (as
//! `rte_hash`'s). Insertion's slow part; lookups never come here.

use super::bucket::{EMPTY, SLOTS};
use super::FlowTable;

/// One bucket of the insertion's breadth-first search: which bucket, and
/// how it was reached (the parent node, and the slot there whose key's
/// alternative bucket this is).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Step {
    bucket: u32,
    parent: u16,
    slot: u8,
}

const ROOT: u16 = u16::MAX;

impl<V> FlowTable<V> {
    /// Puts slot index `x` with signature `sig` into bucket `b1` or its
    /// alternative, moving other keys if it must. Inlined, with the search
    /// out of line: as one function, the search's registers were saved
    /// and restored on every call (~38 instructions, twice a new flow),
    /// though a free slot in either bucket is the answer nearly always.
    #[inline(always)]
    pub(super) fn place(&mut self, b1: u32, sig: u16, x: u32) -> bool {
        let b2 = self.alt(b1, sig);
        for b in [b1, b2] {
            if let Some(s) = self.bucket(b).free_slot() {
                return self.write(b, s, sig, x);
            }
        }
        self.make_room(b1, b2, sig, x)
    }

    #[inline(always)]
    fn write(&mut self, b: u32, slot: usize, sig: u16, x: u32) -> bool {
        match self.buckets.get_mut(b as usize) {
            Some(bucket) if slot < SLOTS => {
                bucket.set_sig(slot, sig);
                bucket.idx[slot] = x;
                true
            }
            _ => false,
        }
    }

    /// Clears the slot holding index `x`, whose key has signature `sig` and
    /// primary bucket `b1`.
    pub(super) fn unplace(&mut self, b1: u32, sig: u16, x: u32) {
        // The alternative only if the primary (~92 % of keys) had it not.
        if !self.clear(b1, x) {
            self.clear(self.alt(b1, sig), x);
        }
    }

    /// Clears the slot of bucket `b` holding index `x`, if one does.
    fn clear(&mut self, b: u32, x: u32) -> bool {
        let Some(bucket) = self.buckets.get_mut(b as usize) else {
            return false;
        };
        match bucket.idx.iter().position(|&i| i == x) {
            Some(s) => {
                bucket.set_sig(s, 0);
                bucket.idx[s] = EMPTY;
                true
            }
            None => false,
        }
    }

    /// Breadth-first search from the two full buckets for a key that can
    /// move to a bucket with a free slot, then the moves back along the
    /// path, which frees a slot in `b1` or `b2` for the new key. No bucket
    /// appears twice on one path, so every move lands where the search saw
    /// room.
    #[inline(never)]
    fn make_room(&mut self, b1: u32, b2: u32, sig: u16, x: u32) -> bool {
        let mut tail = 0usize;
        for b in [b1, b2] {
            if tail == 0 || self.bfs[0].bucket != b {
                self.bfs[tail] = Step {
                    bucket: b,
                    parent: ROOT,
                    slot: 0,
                };
                tail += 1;
            }
        }
        let mut head = 0usize;
        while head < tail {
            let node = self.bfs[head];
            let bucket = *self.bucket(node.bucket);
            for s in 0..SLOTS {
                let moving_sig = bucket.sig(s);
                let to = self.alt(node.bucket, moving_sig);
                if to == node.bucket || self.on_path(head, to) {
                    continue;
                }
                if let Some(free) = self.bucket(to).free_slot() {
                    let (root, slot) = self.shift(head, s, to, free);
                    return self.write(root, slot, sig, x);
                }
                if tail < self.bfs.len() {
                    self.bfs[tail] = Step {
                        bucket: to,
                        parent: head as u16,
                        slot: s as u8,
                    };
                    tail += 1;
                }
            }
            head += 1;
        }
        false
    }

    /// Whether bucket `b` is on the search path ending at node `at`.
    fn on_path(&self, mut at: usize, b: u32) -> bool {
        loop {
            let Some(step) = self.bfs.get(at) else {
                return false;
            };
            if step.bucket == b {
                return true;
            }
            if step.parent == ROOT {
                return false;
            }
            at = usize::from(step.parent);
        }
    }

    /// Moves slot `slot` of node `at`'s bucket to `(to, free)`, then each
    /// parent's slot into the one just vacated; returns the root bucket and
    /// its freed slot.
    fn shift(&mut self, mut at: usize, mut slot: usize, to: u32, free: usize) -> (u32, usize) {
        let (mut dst_b, mut dst_s) = (to, free);
        loop {
            let step = self.bfs[at];
            let src = *self.bucket(step.bucket);
            self.write(dst_b, dst_s, src.sig(slot), src.idx[slot]);
            self.moves += 1;
            if step.parent == ROOT {
                return (step.bucket, slot);
            }
            (dst_b, dst_s) = (step.bucket, slot);
            slot = usize::from(step.slot);
            at = usize::from(step.parent);
        }
    }
}
