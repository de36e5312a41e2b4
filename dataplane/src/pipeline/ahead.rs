//! A burst received ahead: its flows' buckets fetched while the burst
//! before it is processed.
//!
//! In a table of millions of flows a hit waits for DRAM lines (two
//! buckets, the entry, the value). Inside one burst the staged lookup
//! overlaps them, but the first keys' buckets have only the other keys'
//! hashing to arrive in, and about two misses a burst stay exposed whatever
//! the order (docs/perf.md, session 13). A worker whose queue gave a whole
//! burst (more is waiting) receives the next one before it processes the
//! current one, and hands it here: each frame's key is read and hashed and
//! its two buckets prefetched, nothing looked up and nothing kept, so the
//! next burst's own stage finds its buckets in the cache. The burst in hand
//! is still processed end to end under its own snapshot, and the next is
//! only prefetched, never processed early (docs/decisions.md).

use super::hit::read_public;
use super::*;

impl Pipeline {
    /// Whether a worker should receive the next burst of a queue that
    /// gave a whole one before processing it: only from
    /// [`crate::flow::STAGED_FROM`] live flows ([`Pipeline::with_staged_from`]),
    /// where the stages look a burst up in bulk. Below, the table is in the
    /// cache and nothing is held.
    #[inline]
    pub fn looks_ahead(&self) -> bool {
        self.flows.len() >= self.staged_from
    }

    /// Starts bringing in the buckets the public stage's lookup of each
    /// plain frame of `frames`, received on `port`, will search. Frames of
    /// other ports are left alone: the underlay's key needs the tenant
    /// behind the tunnel, state this pass does not read. A frame the NIC
    /// marked is prefetched all the same (the stage will not look it up; a
    /// mark is rare where a worker receives whole bursts of hits).
    #[inline]
    pub fn prefetch_ahead<'a, P: Prefetch>(
        &self,
        t: &Tables,
        port: u16,
        frames: impl Iterator<Item = &'a [u8]>,
        pf: &P,
    ) {
        let public = t.ports.get(usize::from(port)).and_then(|p| p.role) == Some(Role::Public);
        if !public || !self.may_hit(t) {
            return;
        }
        for frame in frames.take(BULK_MAX) {
            if let Some(p) = read_public(frame) {
                self.flows.prefetch_buckets(pf, &p.key(Zone::PUBLIC));
            }
        }
    }
}
