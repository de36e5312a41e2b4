//! A worker's copies of the neighbour table's MACs, proved by its change
//! count (docs/decisions.md, "Workers keep copies of the MACs encap
//! reads"): the one part of this module a worker writes, in its own
//! pipeline.

use std::sync::atomic::Ordering;

use super::{put_mac, NeighKey, NeighRef, Neighbours};

/// A worker's copies of the MACs encap read (tunnels' next hops, and
/// hosts inside gretap tunnels), each kept with the
/// [`Neighbours::changes`] count it was read at: while the count is the
/// same, no known MAC changed (another, failed, forgotten, or its slot
/// retired, each of which counts), so the copy is still its key's MAC in
/// the table, and a frame reads it with one load of the count and two
/// compares of plain words instead of the slot's seqlock (two atomic
/// loads of the key around the word's, which LLVM never folds into a
/// `cmp`). Any change of any MAC makes every copy stale, to be read again
/// from its slot once: changes are rare beside frames.
///
/// A copy is kept in its slot's place and holds its key: it is used for
/// that key alone, so an adjacency of older tables, or a flow's hint,
/// whose slot has gone to another key reads the slot, as before. By slot
/// rather than by a hash of it, no two hosts a worker sends to take turns
/// at one place: 256 places by the slot's low bits were read again from
/// their slots for 99 % of the `encap` profile's frames (1000 tunnel
/// hosts; callgrind: +40 instructions a frame).
///
/// Each table's count runs in a range of its own, so copies taken from
/// one table are never taken for another's (the daemon makes one table;
/// tests give a pipeline several).
///
/// A copy can be older than the table by the writer's own window alone:
/// it swaps the slot's word, then counts the change; a frame whose count
/// was loaded between the two gets the MAC the writer is replacing, as a
/// frame that read the slot just before the swap does.
#[derive(Clone, Debug)]
pub struct MacCopies {
    copies: Box<[MacCopy]>,
    /// Whole tunnel headers, both MACs in, by the inner host's slot
    /// ([`MacCopies::header`]): from `first_hint`, the hint of the inner
    /// region's first slot.
    headers: Box<[HeaderCopy]>,
    first_hint: usize,
}

/// The most bytes a [`HeaderCopy`] holds: a tunnel's header
/// (`tables::MAX_TUNNEL_HEADER`).
pub const HEADER_COPY: usize = 64;

/// A gretap tunnel's header as a worker last built it from one adjacency
/// for one inner host, its two MACs in: while the count is the one taken
/// before they were read, it is what that adjacency's header and those two
/// reads would give again.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct HeaderCopy {
    /// The inner host's key; 0, no key's, while empty.
    key: u64,
    /// The adjacency's `TunnelAdj::uid` (0 is none's).
    uid: u64,
    /// [`Neighbours::changes`] before the MACs were read.
    changes: u64,
    header: [u8; HEADER_COPY],
}

impl Default for HeaderCopy {
    fn default() -> Self {
        HeaderCopy {
            key: 0,
            uid: 0,
            changes: 0,
            header: [0; HEADER_COPY],
        }
    }
}

/// Slots a worker keeps copies for until [`MacCopies::for_table`] says how
/// many: the default table's (`[arp] entries` 4096, 1024 of them the
/// ports', two slots a key), 320 KiB, of which a worker touches the
/// copies of the hosts it sends to.
pub const MAC_COPIES: usize = 10_240;

/// The most slots a worker keeps copies for (2 MiB; a flow's hint names
/// no slot past `u16::MAX - 1` either): neighbours in slots past it are
/// read from their slots each time.
pub const MAX_MAC_COPIES: usize = 1 << 16;

#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct MacCopy {
    /// 0, no key's, while empty.
    key: u64,
    /// A valid slot word.
    word: u64,
    /// [`Neighbours::changes`] before the word was read.
    changes: u64,
}

impl Default for MacCopies {
    fn default() -> Self {
        Self::with_slots(MAC_COPIES, 0, MAC_COPIES)
    }
}

impl MacCopies {
    /// Copies for each slot of `n`, up to [`MAX_MAC_COPIES`], and header
    /// copies for each of its inner region's.
    pub fn for_table(n: &Neighbours) -> Self {
        let inner = n.inner_slots();
        let headers = inner.end.min(MAX_MAC_COPIES).saturating_sub(inner.start);
        Self::with_slots(n.slots(), inner.start, headers)
    }

    pub(super) fn with_slots(slots: usize, first: usize, headers: usize) -> Self {
        MacCopies {
            copies: vec![MacCopy::default(); slots.min(MAX_MAC_COPIES)].into_boxed_slice(),
            headers: vec![HeaderCopy::default(); headers].into_boxed_slice(),
            first_hint: first + 1,
        }
    }

    /// The header this worker kept for adjacency `uid` and inner host
    /// `key` at the place of `hint` (the flow's), while no MAC changed
    /// since: the adjacency's header with both MACs written in, as the
    /// adjacency and the two MAC reads would build it now. Otherwise the
    /// change count, loaded (acquire) before the caller reads the MACs, to
    /// keep the header it builds under ([`MacCopies::keep_header`]): a
    /// change those reads did not see makes that copy stale.
    #[inline(always)]
    pub fn header(
        &self,
        n: &Neighbours,
        uid: u64,
        key: NeighKey,
        hint: u16,
    ) -> Result<&[u8; HEADER_COPY], u64> {
        let changes = n.changes.load(Ordering::Acquire);
        // No hint (0) is past the copies, as in `put_mac_hinted`.
        match self
            .headers
            .get(usize::from(hint).wrapping_sub(self.first_hint))
        {
            Some(c) if c.key == key.0 && c.uid == uid && c.changes == changes => Ok(&c.header),
            _ => Err(changes),
        }
    }

    /// Keeps header `h` (32 to [`HEADER_COPY`] bytes; any other length is
    /// not kept), built from adjacency `uid` with inner host `key` found at
    /// `hint`, both MACs read after the count `changes`
    /// ([`MacCopies::header`]'s) was loaded. Out of line: a flow's first
    /// frame, and the first after a change, keep one.
    #[cold]
    #[inline(never)]
    pub fn keep_header(&mut self, changes: u64, uid: u64, key: NeighKey, hint: u16, h: &[u8]) {
        const HALF: usize = HEADER_COPY / 2;
        let at = usize::from(hint).wrapping_sub(self.first_hint);
        let (Some(c), len @ HALF..=HEADER_COPY) = (self.headers.get_mut(at), h.len()) else {
            return;
        };
        c.key = key.0;
        c.uid = uid;
        c.changes = changes;
        c.header[..HALF].copy_from_slice(&h[..HALF]);
        c.header[len - HALF..len].copy_from_slice(&h[len - HALF..]);
    }

    /// Writes the MAC of an adjacency's neighbour into `dst` when its
    /// remembered slot holds it, valid: `true` exactly when
    /// [`Neighbours::get_ref`] answers [`Lookup::Mac`] without a search,
    /// from this worker's copy while no MAC changed. `false`, `dst`
    /// untouched, is anything else (unresolved, failed, the slot moved
    /// on), for `get_ref` to tell apart off the hot path: the caller then
    /// needs no search, no three-way answer, and no registers for them.
    #[inline(always)]
    pub fn put_mac_ref(&mut self, n: &Neighbours, r: NeighRef, dst: &mut [u8; 6]) -> bool {
        let changes = n.changes.load(Ordering::Acquire);
        if let Some(c) = self.copies.get(r.slot as usize) {
            if c.key == r.key.0 && c.changes == changes {
                put_mac(c.word, dst);
                return true;
            }
        }
        self.refill(n, r, changes, dst)
    }

    /// [`Neighbours::get_hinted`] writing its MAC into `dst`, through this
    /// worker's copy of the slot the hint names: `true` exactly when it
    /// answers [`Lookup::Mac`] (the hint refreshed the same way), `false`
    /// for the caller to ask `get_hinted` which of the other two it is. A
    /// copy of the hinted slot holding `key` at the current count is the
    /// slot's MAC, as its read would be, and that read leaves the hint.
    #[inline(always)]
    pub fn put_mac_hinted(
        &mut self,
        n: &Neighbours,
        key: NeighKey,
        hint: &mut u16,
        dst: &mut [u8; 6],
    ) -> bool {
        let changes = n.changes.load(Ordering::Acquire);
        // No hint (0) is slot `usize::MAX`, past any table: the range
        // check sends it to the search, with no test of its own
        // (callgrind: 3 instructions a frame going into a gretap tunnel).
        if let Some(c) = self.copies.get(usize::from(*hint).wrapping_sub(1)) {
            if c.key == key.0 && c.changes == changes {
                put_mac(c.word, dst);
                return true;
            }
        }
        self.refill_hinted(n, key, hint, changes, dst)
    }

    /// [`MacCopies::put_mac_hinted`] past its copy: the hinted slot, else
    /// the search and the slot found remembered, as
    /// [`Neighbours::get_hinted`] does; the word copied as
    /// [`MacCopies::refill`] copies it.
    #[cold]
    #[inline(never)]
    fn refill_hinted(
        &mut self,
        n: &Neighbours,
        key: NeighKey,
        hint: &mut u16,
        changes: u64,
        dst: &mut [u8; 6],
    ) -> bool {
        let mut slot = usize::from(*hint).wrapping_sub(1);
        let word = match n.valid_word(slot, key) {
            Some(word) => word,
            None => {
                let Some(found) = n.find(key) else {
                    return false;
                };
                *hint = u16::try_from(found + 1).unwrap_or(0);
                slot = found;
                match n.valid_word(slot, key) {
                    Some(word) => word,
                    None => return false,
                }
            }
        };
        self.keep(slot, key, word, changes);
        put_mac(word, dst);
        true
    }

    fn keep(&mut self, slot: usize, key: NeighKey, word: u64, changes: u64) {
        if let Some(c) = self.copies.get_mut(slot) {
            *c = MacCopy {
                key: key.0,
                word,
                changes,
            };
        }
    }

    /// A copy read again from its slot, under the count `changes` loaded
    /// (acquire) before the read: a change the read did not see is counted
    /// after it, and makes the copy stale; one it saw early only makes the
    /// copy stale sooner.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, n: &Neighbours, r: NeighRef, changes: u64, dst: &mut [u8; 6]) -> bool {
        let Some(word) = n.valid_word(r.slot as usize, r.key) else {
            return false;
        };
        self.keep(r.slot as usize, r.key, word, changes);
        put_mac(word, dst);
        true
    }
}
