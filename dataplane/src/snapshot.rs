//! Publishing immutable tables to the workers (DESIGN.md: threads and
//! tables).
//!
//! The control plane builds a new snapshot and [`Publisher::publish`]es
//! it: an atomic pointer swap, then a generation bump. A worker's
//! [`Reader::get`] costs one atomic load per burst while nothing changes;
//! when the generation moved it takes the new snapshot and lets go of the
//! old one between bursts — its quiescent point.
//!
//! Memory is never freed on a worker: the publisher keeps every retired
//! snapshot until [`Publisher::reclaim`], on the control plane, finds that
//! no worker holds it any more. A burst in flight therefore always reads a
//! snapshot that stays alive, and no worker ever pays for a deallocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub struct Publisher<T> {
    current: ArcSwap<T>,
    generation: AtomicU64,
    /// Retired snapshots, freed by `reclaim`. Only the control plane
    /// touches it (publish and reclaim), so the lock is never contended
    /// and never taken by a worker.
    retired: Mutex<Vec<Arc<T>>>,
}

impl<T> Publisher<T> {
    pub fn new(initial: T) -> Arc<Publisher<T>> {
        Arc::new(Publisher {
            current: ArcSwap::from_pointee(initial),
            generation: AtomicU64::new(1),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Makes `next` the snapshot workers read from their next burst on.
    pub fn publish(&self, next: T) {
        let old = self.current.swap(Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(old);
        self.reclaim();
    }

    /// Frees retired snapshots no reader holds any more; returns how many
    /// are still held.
    pub fn reclaim(&self) -> usize {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|s| Arc::strong_count(s) > 1);
        retired.len()
    }

    /// The snapshot now published (for the control plane).
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// A reader for one worker.
    pub fn reader(self: &Arc<Self>) -> Reader<T> {
        Reader {
            generation: self.generation.load(Ordering::Acquire),
            cached: self.current.load_full(),
            publisher: Arc::clone(self),
        }
    }
}

/// One worker's view: the snapshot it is using and the generation it had.
pub struct Reader<T> {
    publisher: Arc<Publisher<T>>,
    cached: Arc<T>,
    generation: u64,
}

impl<T> Reader<T> {
    /// The snapshot to use for this burst. Call between bursts only: a
    /// reference taken before must not be held across the call.
    #[inline]
    pub fn get(&mut self) -> &T {
        let g = self.publisher.generation.load(Ordering::Acquire);
        if g != self.generation {
            // The old Arc is dropped here, but never to zero: the
            // publisher's retired list still holds it.
            self.cached = self.publisher.current.load_full();
            self.generation = g;
        }
        &self.cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_switch_between_bursts_and_old_snapshots_are_freed_after() {
        let p = Publisher::new(vec![1u32]);
        let mut a = p.reader();
        let mut b = p.reader();
        assert_eq!(a.get(), &vec![1]);
        p.publish(vec![2]);
        assert_eq!(p.reclaim(), 1, "b still holds the first snapshot");
        assert_eq!(a.get(), &vec![2]);
        assert_eq!(p.reclaim(), 1);
        assert_eq!(b.get(), &vec![2]);
        assert_eq!(
            p.reclaim(),
            0,
            "nobody holds it: freed on the control plane"
        );
        p.publish(vec![3]);
        p.publish(vec![4]);
        assert_eq!(a.get(), &vec![4], "a reader skips straight to the newest");
    }

    #[test]
    fn a_reader_thread_always_sees_a_whole_snapshot() {
        let p = Publisher::new((0u64, 0u64));
        let mut r = p.reader();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = Arc::clone(&done);
        let t = std::thread::spawn(move || {
            let mut seen = 0;
            while !d.load(Ordering::Relaxed) {
                let &(x, y) = r.get();
                assert_eq!(x * 2, y, "torn snapshot");
                seen = x;
            }
            seen
        });
        for i in 1..2000u64 {
            p.publish((i, i * 2));
        }
        done.store(true, Ordering::Relaxed);
        assert!(t.join().unwrap() <= 1999);
    }
}
