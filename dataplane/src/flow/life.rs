//! A flow's life in the table: insertion under both keys (placed by
//! `place.rs`), removal, and the sweep that ends expired flows a batch at
//! a time, their buckets fetched together.

use super::*;

impl<V: Default> FlowTable<V> {
    /// Adds a flow under its two keys, live until `deadline`, and returns
    /// its id. Fails, changing nothing (the value is dropped), when the
    /// table is full, a key is already present, or the keys are equal.
    pub fn insert(
        &mut self,
        forward: FlowKey,
        reply: FlowKey,
        deadline: u64,
        value: V,
    ) -> Result<FlowId, InsertError> {
        self.insert_with(forward, reply, deadline, value, true)
    }

    /// [`FlowTable::insert`] of a flow whose forward key the caller has
    /// just looked up and found missing (or found expired and removed),
    /// with no change to the table since: only the reply key is searched
    /// for. A new flow's forward key is always such a miss (the pipeline's
    /// `find`), and its second search was half of insert's existence
    /// checks (~110 instructions a new flow, docs/perf.md).
    pub fn insert_missing(
        &mut self,
        forward: FlowKey,
        reply: FlowKey,
        deadline: u64,
        value: V,
    ) -> Result<FlowId, InsertError> {
        debug_assert!(
            !matches!(
                self.lookup(&forward, 0),
                Lookup::Hit(..) | Lookup::Expired(..)
            ),
            "insert_missing: the forward key is in the table"
        );
        self.insert_with(forward, reply, deadline, value, false)
    }

    #[inline(always)]
    fn insert_with(
        &mut self,
        forward: FlowKey,
        reply: FlowKey,
        deadline: u64,
        value: V,
        check_forward: bool,
    ) -> Result<FlowId, InsertError> {
        if forward == reply {
            return Err(InsertError::SameKey);
        }
        // A new flow's keys are mostly not in the cache (its reply key
        // never was), and looked at one after the other they cost up to
        // five dependent misses: four buckets and the entry it will take.
        // Fetched together, about one.
        let (sig_f, b_f) = self.locate(&forward);
        let (sig_r, b_r) = self.locate(&reply);
        let (a_f, a_r) = (self.alt(b_f, sig_f), self.alt(b_r, sig_r));
        let id = self.free_head;
        let next_free = self.entries.get(id as usize).map_or(0, |e| e.deadline);
        black_box(
            self.bucket(b_f).sig[0]
                ^ self.bucket(a_f).sig[0]
                ^ self.bucket(b_r).sig[0]
                ^ self.bucket(a_r).sig[0]
                ^ next_free,
        );
        let present = |key, sig, b, a| self.find(b, sig, key).or_else(|| self.find(a, sig, key));
        let found = match check_forward {
            true => present(&forward, sig_f, b_f, a_f),
            false => None,
        };
        if let Some(x) = found.or_else(|| present(&reply, sig_r, b_r, a_r)) {
            return Err(InsertError::Exists(FlowId(x >> 1), Direction::from_bit(x)));
        }
        if id == NO_ENTRY {
            return Err(InsertError::Full);
        }
        if !self.place(b_f, sig_f, id * 2) {
            return Err(InsertError::NoRoom);
        }
        if !self.place(b_r, sig_r, id * 2 + 1) {
            self.unplace(b_f, sig_f, id * 2);
            return Err(InsertError::NoRoom);
        }
        let (Some(e), Some(v)) = (
            self.entries.get_mut(id as usize),
            self.values.get_mut(id as usize),
        ) else {
            // The free list only holds ids below the capacity.
            return Err(InsertError::Full);
        };
        self.free_head = e.deadline as u32;
        *e = Entry {
            forward,
            deadline,
            reply,
        };
        *v = value;
        self.set_live(id, true);
        self.len += 1;
        Ok(FlowId(id))
    }

    /// Removes a live flow, freeing both keys and its entry; `None` if `id`
    /// holds no flow.
    pub fn remove(&mut self, id: FlowId) -> Option<Removed<V>> {
        if !self.is_live(id) {
            return None;
        }
        let at = self.slots_of(id)?;
        black_box(self.bucket(at[0].1).sig[0] ^ self.bucket(at[1].1).sig[0]);
        self.remove_at(id, at)
    }

    /// Signature and primary bucket of both keys of flow `id`.
    #[inline]
    fn slots_of(&self, id: FlowId) -> Option<[(u16, u32); 2]> {
        let e = self.entries.get(id.index())?;
        Some([self.locate(&e.forward), self.locate(&e.reply)])
    }

    /// Removes live flow `id`, whose keys' signatures and primary buckets
    /// are `at`. Inlined, so that the sweep hands the flow on from
    /// registers rather than building it in memory and copying it into
    /// the callback (`remove_batch`).
    #[inline(always)]
    fn remove_at(&mut self, id: FlowId, at: [(u16, u32); 2]) -> Option<Removed<V>> {
        let [(sig_f, b_f), (sig_r, b_r)] = at;
        self.unplace(b_f, sig_f, id.0 * 2);
        self.unplace(b_r, sig_r, id.0 * 2 + 1);
        self.set_live(id.0, false);
        self.len -= 1;
        let free_head = self.free_head;
        let e = self.entries.get_mut(id.index())?;
        // A free entry holds the zero key, which `hit_at` never matches.
        let keys = [std::mem::take(&mut e.forward), std::mem::take(&mut e.reply)];
        let deadline = std::mem::replace(&mut e.deadline, u64::from(free_head));
        self.free_head = id.0;
        Some(Removed {
            id,
            keys,
            deadline,
            value: std::mem::take(self.values.get_mut(id.index())?),
        })
    }

    /// Visits the next `budget` entries (round robin over the whole table,
    /// free ones included, so the cost per call is bounded whatever the
    /// fill), removes each flow whose deadline is at or before `now` and
    /// hands it to `on_expired`. Returns how many were removed.
    pub fn sweep<F>(&mut self, budget: usize, now: u64, on_expired: F) -> usize
    where
        F: FnMut(Removed<V>),
    {
        self.sweep_if(budget, now, |_| false, on_expired)
    }

    /// [`FlowTable::sweep`], also removing the flows `doomed` picks
    /// whatever their deadline (the flows of a tenant removed at runtime).
    pub fn sweep_if<D, F>(&mut self, budget: usize, now: u64, doomed: D, mut on_removed: F) -> usize
    where
        D: Fn(&V) -> bool,
        F: FnMut(Removed<V>),
    {
        let cap = self.entries.len() as u32;
        let mut removed = 0;
        // The flows to remove are taken a batch at a time, and the buckets
        // of a batch's keys fetched together: each flow's two buckets are
        // random lines of a table of millions, and removed one flow at a
        // time they were a fifth of what creating a flow cost at steady
        // fill (`FlowTable::unplace` in docs/perf.md's new-flows profile).
        let mut batch = [(FlowId(0), [(0u16, 0u32); 2]); SWEEP_BATCH];
        let mut m = 0;
        // The slots are visited a word of the live bitmap at a time, and
        // only the live ones looked at: a slot cost ~20 instructions one
        // by one (its bit, its entry, the cursor's wrap, each bounds
        // checked), four or more of them for each new flow.
        let mut left = budget.min(cap as usize) as u32;
        while left > 0 {
            let start = self.sweep_at;
            let end = (start + left).min(cap);
            left -= end - start;
            self.sweep_at = if end >= cap {
                self.passes += 1;
                0
            } else {
                end
            };
            let mut at = start;
            while at < end {
                let span = (64 - at % 64).min(end - at);
                let word = self
                    .live
                    .get(at as usize / 64)
                    .map_or(0, |w| w >> (at % 64));
                let mut live = if span == 64 {
                    word
                } else {
                    word & ((1 << span) - 1)
                };
                while live != 0 {
                    let id = FlowId(at + live.trailing_zeros());
                    live &= live - 1;
                    let gone = self
                        .entries
                        .get(id.index())
                        .is_some_and(|e| e.deadline <= now)
                        || self.values.get(id.index()).is_some_and(&doomed);
                    if !gone {
                        continue;
                    }
                    if let (Some(slots), Some(slot)) = (self.slots_of(id), batch.get_mut(m)) {
                        *slot = (id, slots);
                        m += 1;
                    }
                    if m == SWEEP_BATCH {
                        removed += self.remove_batch(&batch, &mut on_removed);
                        m = 0;
                    }
                }
                at += span;
            }
        }
        removed + self.remove_batch(&batch[..m], &mut on_removed)
    }

    /// Removes the flows of `batch`, their primary buckets fetched first,
    /// all at once, and hands each to `on_removed`.
    fn remove_batch<F>(&mut self, batch: &[(FlowId, [(u16, u32); 2])], on_removed: &mut F) -> usize
    where
        F: FnMut(Removed<V>),
    {
        let mut touch = 0u64;
        for (_, [(_, b_f), (_, b_r)]) in batch {
            touch ^= self.bucket(*b_f).sig[0] ^ self.bucket(*b_r).sig[0];
        }
        black_box(touch);
        let mut removed = 0;
        for &(id, at) in batch {
            if let Some(r) = self.remove_at(id, at) {
                removed += 1;
                on_removed(r);
            }
        }
        removed
    }

    /// Whole passes the sweep has made over the table: once a pass has
    /// begun and ended after a change, the sweep has seen every flow.
    pub fn sweep_passes(&self) -> u64 {
        self.passes
    }
}
