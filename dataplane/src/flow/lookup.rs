//! Lookups: one key, or a burst of them in stages so that their cache
//! misses overlap (see the module doc, "Lookups"), and the hits a worker
//! updates on every packet.

use std::hint::black_box;

use super::bucket::{EMPTY, NO_BUCKET, SLOTS};
use super::{Direction, FlowId, FlowKey, FlowTable, Hit, Lookup, BULK_MAX, NO_FLOW};

/// Live flows from which [`FlowTable::lookup_bulk_with`] looks a burst up
/// in stages. Below, the lines a lookup reads (two keys' buckets and an
/// entry a flow, ~170 bytes, ~340 KiB at this many) stay in the L2 cache
/// of a worker that keeps seeing them: there are no misses for the stages
/// to overlap, and each key's pass through them (both buckets found, a
/// touch or prefetch of each, three arrays between stages) costs more than
/// a lookup that compares the primary bucket's first candidate at once
/// (when the threshold was chosen, session 7: callgrind, `pipeline_staged
/// nat`, 1,000 flows, 116 instructions a key staged, 68 so; the latter
/// is ~57 since session 12, docs/perf.md). On the clock then
/// (`tgw-perf flow --flows 1000`) with DPDK's prefetch, as the workers run
/// it: 62 against 51 million lookups a CPU second; with touching loads the
/// stages stay ahead (71 against 66).
pub const STAGED_FROM: usize = 2048;

/// How [`FlowTable::lookup_bulk_with`] brings a burst's buckets and
/// entries into the cache before it reads them.
pub trait Prefetch {
    /// True for a real prefetch instruction (it retires at once, so the
    /// table issues them in a plain loop); false for [`TouchLoads`]' plain
    /// loads, which the table batches into tight loops of its own.
    const INSTRUCTION: bool;

    /// Starts bringing the cache line of `r` in; has no other effect.
    fn prefetch<T>(&self, r: &T);
}

/// The default: no prefetch instruction (none is reachable without
/// `unsafe`); the table touches the lines with plain loads instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct TouchLoads;

impl Prefetch for TouchLoads {
    const INSTRUCTION: bool = false;

    #[inline(always)]
    fn prefetch<T>(&self, _r: &T) {}
}

impl<V> FlowTable<V> {
    /// Finds the flow of `key`, and whether it is still live at `now`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, now: u64) -> Lookup {
        let (sig, b1) = self.locate(key);
        let slot = match self.find(b1, sig, key) {
            Some(s) => s,
            None => match self.find(self.alt(b1, sig), sig, key) {
                Some(s) => s,
                None => return Lookup::Miss,
            },
        };
        self.classify(slot, now)
    }

    /// [`FlowTable::lookup`] for a table whose lines are in the cache
    /// (see [`STAGED_FROM`]): the primary bucket's first candidate is
    /// compared at once, the answer for nearly every key of a table far
    /// from full (and ~92 % of a full one's); the full search only when it
    /// is not the key. Inlined into the burst's loop.
    /// Writes its answer to `out` itself, and so does the full search, out
    /// of line: with one `Lookup` returned from both, the hit's answer went
    /// through the packing of the call's (~4 instructions a key more).
    #[inline(always)]
    pub(crate) fn lookup_cached(&self, key: &FlowKey, now: u64, out: &mut Lookup) {
        let (sig, b) = self.locate(key);
        let bucket = self.bucket(b);
        if let Some(&x) = bucket.idx.get(bucket.first_match(sig)) {
            if let Some(e) = self.entries.get((x >> 1) as usize) {
                if e.key(x) == key {
                    let (id, dir) = (FlowId(x >> 1), Direction::from_bit(x));
                    *out = if now < e.deadline {
                        Lookup::Hit(id, dir)
                    } else {
                        Lookup::Expired(id, dir)
                    };
                    return;
                }
            }
        }
        self.lookup_into(key, now, out);
    }

    #[cold]
    #[inline(never)]
    fn lookup_into(&self, key: &FlowKey, now: u64, out: &mut Lookup) {
        *out = self.lookup(key, now);
    }

    /// [`FlowTable::candidates_with`]' answer for one key of a table whose
    /// lines are in the cache (see [`STAGED_FROM`]), into `out`: the flow
    /// whose slot has the key's signature, in the primary bucket, else in
    /// the alternative; `Miss` where no slot has it (then the key is in no
    /// flow). No entry is read: the caller's hit compares the key and the
    /// deadline as it reads the flow ([`FlowTable::hit_at`]), so a compare
    /// here was the same work twice. The stages' lookup below
    /// `STAGED_FROM` (pipeline/hit.rs, pipeline/stage.rs).
    #[inline(always)]
    pub(crate) fn candidate_cached(&self, key: &FlowKey, out: &mut Lookup) {
        let (sig, b) = self.locate(key);
        let bucket = self.bucket(b);
        *out = match bucket.idx.get(bucket.first_match(sig)) {
            Some(&x) => Lookup::Hit(FlowId(x >> 1), Direction::from_bit(x)),
            None => self.candidate_alt(b, sig),
        };
    }

    #[cold]
    #[inline(never)]
    fn candidate_alt(&self, b: u32, sig: u16) -> Lookup {
        let bucket = self.bucket(self.alt(b, sig));
        match bucket.idx.get(bucket.first_match(sig)) {
            Some(&x) => Lookup::Hit(FlowId(x >> 1), Direction::from_bit(x)),
            None => Lookup::Miss,
        }
    }

    /// A live flow's value and deadline by key, for the fast path that
    /// updates both on every packet: one lookup, and none of the
    /// liveness checks of [`FlowTable::get_mut`] (a key found in a bucket
    /// always belongs to a live flow). `None` for a miss and for an
    /// expired flow, which the caller's full path removes.
    #[inline]
    pub fn hit(&mut self, key: &FlowKey, now: u64) -> Option<Hit<'_, V>> {
        let Lookup::Hit(id, dir) = self.lookup(key, now) else {
            return None;
        };
        self.hit_parts(id, dir)
    }

    /// [`FlowTable::hit`] for a key looked up earlier, in a staged
    /// [`FlowTable::lookup_bulk_with`] whose answer may have gone stale
    /// since (the flow removed, its entry given to another): flow `id` is
    /// taken only if its `dir` key is still `key` and it is live at `now`.
    /// A removed flow's entry holds the zero key, so the key alone tells a
    /// live entry, without a look at the live bitmap (one more cache miss
    /// a packet in a table of millions). `key` is a packet's, never the
    /// zero key (its protocol is not 0: the fast path takes TCP, UDP and
    /// ICMP): testing it cost every public hit 2 instructions
    /// (callgrind, docs/perf.md). A debug build asserts it. The deadline is
    /// compared before the key: the other way round, LLVM laid the decap
    /// hit out again for 5 more.
    #[inline]
    pub fn hit_at(
        &mut self,
        id: FlowId,
        dir: Direction,
        key: &FlowKey,
        now: u64,
    ) -> Option<Hit<'_, V>> {
        debug_assert!(*key != FlowKey::default(), "no packet's key is zero");
        let e = self.entries.get(id.index())?;
        if !(now < e.deadline && e.key(dir as u32) == key) {
            return None;
        }
        self.hit_parts(id, dir)
    }

    #[inline(always)]
    fn hit_parts(&mut self, id: FlowId, dir: Direction) -> Option<Hit<'_, V>> {
        let value = self.values.get_mut(id.index())?;
        let deadline = &mut self.entries.get_mut(id.index())?.deadline;
        Some(Hit {
            id,
            dir,
            value,
            deadline,
        })
    }

    /// `out[i] = self.lookup(&keys[i], now)` for the first
    /// `min(keys.len(), out.len())` keys, [`BULK_MAX`] at a time in stages
    /// so that their cache misses overlap (see the module doc).
    pub fn lookup_bulk(&self, keys: &[FlowKey], now: u64, out: &mut [Lookup]) {
        self.lookup_bulk_with(&TouchLoads, keys, now, out);
    }

    /// [`FlowTable::lookup_bulk`] with the caller's way of bringing lines
    /// into the cache ahead of use: a binary that has DPDK passes one
    /// that issues prefetch instructions, which this
    /// crate cannot (see the module doc, "Lookups"): `rte::prefetch`
    /// behind a two-line impl of [`Prefetch`], as `tgw-perf flow` does.
    pub fn lookup_bulk_with<P: Prefetch>(
        &self,
        prefetch: &P,
        keys: &[FlowKey],
        now: u64,
        out: &mut [Lookup],
    ) {
        self.lookup_staged::<P, false>(prefetch, keys, now, out);
    }

    /// [`FlowTable::lookup_bulk_with`] for a caller that confirms each
    /// answer itself as it reads the flow: the pipeline's stages, whose
    /// hits go through [`FlowTable::hit_at`] (key and deadline compared).
    /// In a staged table the answer is each key's first candidate, not
    /// compared: `Hit(id, dir)` for the flow whose slot has the key's
    /// signature, `Miss` where no slot has it (then the key is in no
    /// flow); never `Expired`. The candidate's entry and its value are
    /// fetched in one round of misses: prefetched after the compare, the
    /// value was a third round that the first hit waited for, and the
    /// compare itself waited for the entries with nothing else to do
    /// (in-process A/B at 10M flows, processing cycles a frame: the value
    /// with the entry 102–122 against 111–132 after the compare; no
    /// compare 99–108 against 103–114; docs/perf.md, session 15). A
    /// candidate of another key (a signature shared in its buckets, about
    /// 1 key in 10,000, as the module doc says) fails `hit_at`, and its
    /// frame takes the full path, whose lookup is exact. Below
    /// [`STAGED_FROM`], exact answers, as `lookup_bulk_with` gives.
    pub fn candidates_with<P: Prefetch>(
        &self,
        prefetch: &P,
        keys: &[FlowKey],
        now: u64,
        out: &mut [Lookup],
    ) {
        self.lookup_staged::<P, true>(prefetch, keys, now, out);
    }

    #[inline(always)]
    fn lookup_staged<P: Prefetch, const CANDIDATES: bool>(
        &self,
        prefetch: &P,
        keys: &[FlowKey],
        now: u64,
        out: &mut [Lookup],
    ) {
        let n = keys.len().min(out.len());
        if self.len() < STAGED_FROM {
            for (k, o) in keys[..n].iter().zip(&mut out[..n]) {
                self.lookup_cached(k, now, o);
            }
            return;
        }
        for (k, o) in keys[..n]
            .chunks(BULK_MAX)
            .zip(out[..n].chunks_mut(BULK_MAX))
        {
            self.lookup_chunk::<P, CANDIDATES>(prefetch, k, now, o);
        }
    }

    #[inline]
    fn lookup_chunk<P: Prefetch, const CANDIDATES: bool>(
        &self,
        pf: &P,
        keys: &[FlowKey],
        now: u64,
        out: &mut [Lookup],
    ) {
        let n = keys.len().min(out.len()).min(BULK_MAX);
        let (keys, out) = (&keys[..n], &mut out[..n]);
        // 1. Hash, and find both buckets of every key.
        let mut sig = [0u16; BULK_MAX];
        let mut prim = [&NO_BUCKET; BULK_MAX];
        // Every key of the burst gets its alternative (`Some`); the
        // `Option` is for the array's fill alone, zeros in 16-byte stores
        // where `&NO_BUCKET` took 8-byte ones (the worker: −5.5
        // instructions a frame at 4,000 flows, docs/perf.md). The later
        // stages read an alternative only where the primary has no
        // candidate (~8 % of keys).
        let mut alt: [Option<&_>; BULK_MAX] = [None; BULK_MAX];
        for (((s, p), a), k) in sig.iter_mut().zip(&mut prim).zip(&mut alt).zip(keys) {
            let (sg, b) = self.locate(k);
            *s = sg;
            *p = self.bucket(b);
            let al = self.bucket(self.alt(b, sg));
            *a = Some(al);
            // A prefetch retires at once: issue it as soon as the address
            // is known, so that the first key's buckets have the rest of
            // the hashing to arrive in (as rte_hash's lookup does).
            if P::INSTRUCTION {
                pf.prefetch(*p);
                pf.prefetch(al);
            }
        }
        // 2. Touch both buckets of every key: 2n misses in flight at once.
        //    The alternative is needed by only ~8 % of keys, but in a burst
        //    of 32 nearly always by one, and touching it only once the
        //    primary has answered would make the whole burst wait for a
        //    third round of misses. The loop is kept to a few instructions
        //    per key: a load that misses holds its place in the reorder
        //    buffer (unlike a prefetch), so the fewer instructions between
        //    two loads, the more of them are in flight.
        if !P::INSTRUCTION {
            let mut touch = 0u64;
            for (p, a) in prim[..n].iter().zip(&alt[..n]) {
                touch ^= p.sig[0] ^ a.unwrap_or(p).sig[0];
            }
            black_box(touch);
        }
        // 3. Signatures, in the primary, else in the alternative: the
        //    first candidate's slot index ([`EMPTY`] for none: a slot with
        //    a signature always has an index) and entry (and, for
        //    candidates, value).
        //    A candidate is the answer, written here: in a loop of its
        //    own, 11 instructions a key (callgrind-worker, 8,000 flows).
        let mut idx = [EMPTY; BULK_MAX];
        let mut ent = [&NO_FLOW; BULK_MAX];
        for (((((x, e), p), a), &s), o) in idx[..n]
            .iter_mut()
            .zip(&mut ent[..n])
            .zip(&prim[..n])
            .zip(&alt[..n])
            .zip(&sig[..n])
            .zip(out.iter_mut())
        {
            let mut bucket = *p;
            let mut slot = bucket.first_match_late(s);
            if let (SLOTS, Some(a)) = (slot, a) {
                bucket = a;
                slot = bucket.first_match_late(s);
            }
            *x = bucket.idx.get(slot).copied().unwrap_or(EMPTY);
            *e = self.entries.get((*x >> 1) as usize).unwrap_or(&NO_FLOW);
            if P::INSTRUCTION {
                pf.prefetch(&e.deadline);
                pf.prefetch(e.far_end(*x));
                if let (true, Some(v)) = (CANDIDATES, self.values.get((*x >> 1) as usize)) {
                    pf.prefetch(v);
                }
            }
            if CANDIDATES {
                *o = match *x {
                    EMPTY => Lookup::Miss,
                    x => Lookup::Hit(FlowId(x >> 1), Direction::from_bit(x)),
                };
            }
        }
        // Candidates: the caller compares, when it reads the flow.
        if CANDIDATES {
            return;
        }
        // 4. Touch every candidate's entry, in a loop as tight as stage 2.
        if !P::INSTRUCTION {
            let mut touch = 0u64;
            for (e, &x) in ent[..n].iter().zip(&idx[..n]) {
                touch ^= e.far_end(x) ^ e.deadline;
            }
            black_box(touch);
        }
        // 5. Compare. Each answer written where it is known, the full
        //    search's out of line (as in `lookup_cached`).
        for (((o, &x), e), k) in out.iter_mut().zip(&idx[..n]).zip(&ent[..n]).zip(keys) {
            // `NO_FLOW`'s zero key is a key too: EMPTY tells a miss.
            if e.key(x) == k && x != EMPTY {
                let id = FlowId(x >> 1);
                let dir = Direction::from_bit(x);
                *o = if now < e.deadline {
                    Lookup::Hit(id, dir)
                } else {
                    Lookup::Expired(id, dir)
                };
            } else if x == EMPTY {
                *o = Lookup::Miss;
            } else {
                // A signature collision: search properly.
                self.lookup_into(k, now, o);
            }
        }
    }

    /// Starts bringing in the two buckets that inserting a flow whose
    /// reply key is `reply` will search and write: random lines of the
    /// bucket array that nothing else fetches (the forward key's were
    /// read by the lookup that missed). For a staged miss that will open
    /// a flow, before it is processed: `insert` otherwise waits for them
    /// (perf record: ~38 % of a worker creating flows, docs/perf.md). The
    /// free entry and its value are not fetched: the sweep has just
    /// written them (the free list hands out the last freed first), and
    /// fetching them too gained nothing on the clock. Nothing for
    /// [`TouchLoads`], whose loads would wait here instead.
    #[inline]
    pub fn prefetch_insert<P: Prefetch>(&self, pf: &P, reply: &FlowKey) {
        if !P::INSTRUCTION {
            return;
        }
        let (sig, b) = self.locate(reply);
        pf.prefetch(self.bucket(b));
        pf.prefetch(self.bucket(self.alt(b, sig)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Zone;
    use super::*;

    /// A staged hit gone stale is refused: the flow removed, or its entry
    /// given to another flow.
    #[test]
    fn hit_at_checks_what_a_staged_lookup_found() {
        let mut t: FlowTable<u32> = FlowTable::with_seed(64, 7).unwrap();
        let key = |p| FlowKey::new(Zone::PUBLIC, 17, 1, p, 2, 53);
        let id = t.insert(key(1), key(2), 100, 7).unwrap();
        let found = t.lookup(&key(2), 10);
        assert_eq!(found, Lookup::Hit(id, Direction::Reply));
        let hit = t.hit_at(id, Direction::Reply, &key(2), 10).unwrap();
        assert_eq!((*hit.value, *hit.deadline), (7, 100));
        assert!(t.hit_at(id, Direction::Forward, &key(2), 10).is_none());
        assert!(
            t.hit_at(id, Direction::Reply, &key(2), 100).is_none(),
            "expired"
        );
        t.remove(id).unwrap();
        assert!(
            t.hit_at(id, Direction::Reply, &key(2), 10).is_none(),
            "removed"
        );
        let again = t.insert(key(3), key(4), 100, 8).unwrap();
        assert_eq!(again, id, "the entry is reused");
        assert!(
            t.hit_at(id, Direction::Reply, &key(2), 10).is_none(),
            "reused"
        );
        assert!(t.hit_at(id, Direction::Reply, &key(4), 10).is_some());
    }

    /// The stages' candidate below `STAGED_FROM` is the flow a lookup
    /// finds, for keys in their primary bucket and in their alternative
    /// alike, and for an expired flow too (the hit refuses it); a key in
    /// no flow gets a miss, or a candidate that the hit refuses.
    #[test]
    fn a_cached_candidate_is_the_flow_a_lookup_finds() {
        let mut t: FlowTable<u32> = FlowTable::with_seed(4096, 11).unwrap();
        let key = |p: u32| FlowKey::new(Zone::PUBLIC, 6, p, 1000, 2, 80);
        let n = t.capacity() as u32;
        for p in 1..=n {
            let deadline = if p % 5 == 0 { 50 } else { 100 };
            t.insert(key(p), key(p + 1_000_000), deadline, p).unwrap();
        }
        let mut in_alt = 0;
        for p in (1..=n).chain(1_000_001..=1_000_000 + n) {
            let k = key(p);
            let want = t.lookup(&k, 60).found().unwrap();
            let (sig, b) = t.locate(&k);
            in_alt += usize::from(t.find(b, sig, &k).is_none());
            let mut got = Lookup::Miss;
            t.candidate_cached(&k, &mut got);
            assert_eq!(got, Lookup::Hit(want.0, want.1), "{k}");
            let live = t.hit_at(want.0, want.1, &k, 60).is_some();
            assert_eq!(live, p % 5 != 0, "{k}");
        }
        assert!(in_alt > 0, "no key sits in its alternative bucket");
        for p in 2_000_000..2_010_000 {
            let mut got = Lookup::Miss;
            t.candidate_cached(&key(p), &mut got);
            if let Lookup::Hit(id, dir) = got {
                assert!(t.hit_at(id, dir, &key(p), 60).is_none(), "{}", key(p));
            }
        }
    }

    /// A free entry holds the zero key: asked with it, `hit_at` would take
    /// the free entry for a live flow. No caller may; a debug build says
    /// so.
    #[test]
    #[should_panic(expected = "no packet's key is zero")]
    fn hit_at_is_never_asked_the_zero_key() {
        let mut t: FlowTable<u32> = FlowTable::with_seed(64, 7).unwrap();
        let key = FlowKey::new(Zone::PUBLIC, 17, 1, 1, 2, 53);
        let id = t.insert(key, key.reversed(), 100, 7).unwrap();
        t.remove(id).unwrap();
        let _ = t.hit_at(id, Direction::Reply, &FlowKey::default(), 10);
    }
}
