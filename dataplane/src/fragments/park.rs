//! Later fragments that arrived before their first (RFC 4787 REQ-14: a
//! NAT must handle fragments out of order), parked until it comes.
//!
//! The pipeline cannot keep a frame: it sees one through `&mut F` and
//! answers with a verdict. So the work is split. The pipeline keeps what it
//! needs to know of each parked fragment in [`Parking`] (its datagram, its
//! owner, its deadline, where to resume) and answers
//! [`Verdict::Park`](crate::Verdict::Park) with a spot; the worker moves the
//! frame into that spot of its [`Parked`], a fixed array it owns. When a
//! first fragment went through, the spots of its datagram are marked
//! ready, and [`Parked::run`], which the worker calls after each burst,
//! runs them through the pipeline again from where they stopped; spots
//! past their deadline come back as drops. Nothing allocates: both sides
//! are arrays of [`SPOTS`].
//!
//! Bounds: a worker parks at most [`SPOTS`] fragments, one owner (a
//! tenant's inbound or outbound datagrams) at most [`OWNER_SPOTS`], the
//! Internet's together at most [`INBOUND_SPOTS`], each for [`LIFE_MS`].

use super::{FragKey, Owner};
use crate::counters::WorkerCounters;
use crate::pipeline::Pipeline;
use crate::tables::Tables;
use crate::tenant::TenantId;
use crate::{DropReason, Frame, Verdict};

/// Fragments one worker may park (the bits of a `u64`).
pub const SPOTS: usize = 64;
/// Fragments one owner may have parked.
pub const OWNER_SPOTS: u8 = 8;
/// Fragments from the Internet that may be parked together.
pub const INBOUND_SPOTS: u32 = 32;
/// How long a fragment waits for its first, in milliseconds (VPP's
/// shallow reassembly waits 100 ms).
pub const LIFE_MS: u64 = 200;

/// Where a parked fragment resumes its walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// From the public side, the frame as received.
    Public,
    /// From `tenant`'s tunnel over an underlay port of `underlay_mtu`,
    /// the frame decapsulated to its IPv4 header.
    Tenant { tenant: TenantId, underlay_mtu: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Spot {
    key: FragKey,
    /// Index of its owner's count.
    owner: usize,
    inbound: bool,
    deadline: u64,
    resume: Resume,
}

impl Default for Spot {
    fn default() -> Self {
        Spot {
            key: FragKey::default(),
            owner: 0,
            inbound: false,
            deadline: 0,
            resume: Resume::Public,
        }
    }
}

/// The pipeline's record of the fragments its worker parked.
#[derive(Debug)]
pub struct Parking {
    spots: [Spot; SPOTS],
    /// Spots in use, by bit.
    used: u64,
    /// Spots whose first fragment went through.
    ready: u64,
    /// Parked fragments by owner ([`Owner::index`]).
    held: Box<[u8]>,
    tenants: usize,
    inbound: u32,
}

impl Parking {
    pub fn new(tenants: usize) -> Self {
        Parking {
            spots: [Spot::default(); SPOTS],
            used: 0,
            ready: 0,
            held: vec![0; (tenants + 1) * 2].into_boxed_slice(),
            tenants,
            inbound: 0,
        }
    }

    /// Parked fragments.
    pub fn len(&self) -> usize {
        self.used.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// A spot for a fragment of `key`, or `None` if the worker or its
    /// owner has no more.
    pub fn park(
        &mut self,
        key: FragKey,
        owner: Owner,
        resume: Resume,
        deadline: u64,
    ) -> Option<usize> {
        let o = owner.index(self.tenants);
        let free = !self.used;
        if free == 0
            || self.held.get(o).is_none_or(|&n| n >= OWNER_SPOTS)
            || (owner.inbound && self.inbound >= INBOUND_SPOTS)
        {
            return None;
        }
        let i = free.trailing_zeros() as usize;
        self.spots[i] = Spot {
            key,
            owner: o,
            inbound: owner.inbound,
            deadline,
            resume,
        };
        self.used |= 1 << i;
        self.held[o] += 1;
        self.inbound += u32::from(owner.inbound);
        Some(i)
    }

    /// The first fragment of `key` went through: its parked fragments may
    /// follow.
    pub fn release(&mut self, key: &FragKey) {
        let mut used = self.used & !self.ready;
        while used != 0 {
            let i = used.trailing_zeros() as usize;
            used &= used - 1;
            if self.spots[i].key == *key {
                self.ready |= 1 << i;
            }
        }
    }

    /// Whether [`Parked::run`] has work: spots ready, or any parked at all
    /// (which may have expired).
    pub fn pending(&self) -> bool {
        self.used != 0
    }

    /// The spots ready to resume, and those that expired (freed here);
    /// a ready spot is freed when taken.
    fn due(&mut self, now: u64) -> (u64, u64) {
        let mut expired = 0;
        let mut waiting = self.used & !self.ready;
        while waiting != 0 {
            let i = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            if self.spots[i].deadline <= now {
                expired |= 1 << i;
                self.free(i);
            }
        }
        (self.ready, expired)
    }

    /// Frees spot `i` and says where its fragment resumes.
    fn take(&mut self, i: usize) -> Option<Resume> {
        if i >= SPOTS || self.used & (1 << i) == 0 {
            return None;
        }
        let resume = self.spots[i].resume;
        self.free(i);
        Some(resume)
    }

    fn free(&mut self, i: usize) {
        let s = self.spots[i];
        self.used &= !(1 << i);
        self.ready &= !(1 << i);
        if let Some(n) = self.held.get_mut(s.owner) {
            *n = n.saturating_sub(1);
        }
        self.inbound -= u32::from(s.inbound);
    }
}

/// The frames a worker parked, by spot. Generic over the frame, so that
/// the daemon keeps mbufs in it and tests keep `VecFrame`s.
pub struct Parked<F> {
    frames: [Option<F>; SPOTS],
}

impl<F> Default for Parked<F> {
    fn default() -> Self {
        Parked {
            frames: std::array::from_fn(|_| None),
        }
    }
}

impl<F: Frame> Parked<F> {
    /// Parks `f` in spot `spot`, which the pipeline chose; gives it back
    /// if the spot is not free (the caller drops it).
    pub fn put(&mut self, spot: u16, f: F) -> Result<(), F> {
        match self.frames.get_mut(usize::from(spot)) {
            Some(s @ None) => {
                *s = Some(f);
                Ok(())
            }
            _ => Err(f),
        }
    }

    /// Frames parked.
    pub fn len(&self) -> usize {
        self.frames.iter().filter(|f| f.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.iter().all(Option::is_none)
    }

    /// Runs the fragments whose first went through past the pipeline again,
    /// and hands each to `out` with its verdict; the ones that waited too
    /// long come out as drops (`fragment_timeout`).
    pub fn run(
        &mut self,
        p: &mut Pipeline,
        t: &Tables,
        c: &WorkerCounters,
        now: u64,
        mut out: impl FnMut(F, Verdict),
    ) {
        if !p.parking().pending() {
            return;
        }
        let (mut ready, mut expired) = p.parking_mut().due(now);
        while expired != 0 {
            let i = expired.trailing_zeros() as usize;
            expired &= expired - 1;
            if let Some(f) = self.frames[i].take() {
                out(f, Verdict::Drop(DropReason::FragmentTimeout));
            }
        }
        while ready != 0 {
            let i = ready.trailing_zeros() as usize;
            ready &= ready - 1;
            let Some(mut f) = self.frames[i].take() else {
                p.parking_mut().take(i);
                continue;
            };
            let v = match p.parking_mut().take(i) {
                Some(resume) => p.resume(t, c, &mut f, resume, now),
                None => Verdict::Drop(DropReason::FragmentTimeout),
            };
            match v {
                Verdict::Park(j) => {
                    if let Err(f) = self.put(j, f) {
                        out(f, Verdict::Drop(DropReason::FragmentParkFull));
                    }
                }
                v => out(f, v),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u16) -> FragKey {
        FragKey {
            zone: 0,
            protocol: 17,
            src: 1,
            dst: 2,
            ident,
        }
    }

    fn owner(tenant: u32, inbound: bool) -> Owner {
        Owner { tenant, inbound }
    }

    #[test]
    fn spots_are_bounded_per_owner_per_side_and_per_worker() {
        let mut p = Parking::new(16);
        for i in 0..OWNER_SPOTS {
            assert!(p
                .park(key(i.into()), owner(0, false), Resume::Public, 10)
                .is_some());
        }
        assert_eq!(p.park(key(99), owner(0, false), Resume::Public, 10), None);
        // Another tenant still parks; the Internet up to its share.
        assert!(p
            .park(key(99), owner(1, false), Resume::Public, 10)
            .is_some());
        let mut inbound = 0;
        for t in 0..16 {
            for i in 0..OWNER_SPOTS {
                if p.park(key(i.into()), owner(t, true), Resume::Public, 10)
                    .is_some()
                {
                    inbound += 1;
                }
            }
        }
        assert_eq!(inbound, INBOUND_SPOTS);
        assert!(p.len() <= SPOTS);
    }

    #[test]
    fn released_spots_are_ready_and_the_rest_expire() {
        let mut p = Parking::new(4);
        let a = p.park(key(1), owner(0, true), Resume::Public, 10).unwrap();
        let b = p.park(key(2), owner(0, true), Resume::Public, 10).unwrap();
        p.release(&key(1));
        let (ready, expired) = p.due(5);
        assert_eq!((ready, expired), (1 << a, 0));
        assert_eq!(p.take(a), Some(Resume::Public));
        assert_eq!(p.take(a), None, "taken once");
        let (ready, expired) = p.due(10);
        assert_eq!((ready, expired), (0, 1 << b));
        assert!(p.is_empty());
        assert_eq!(p.held[owner(0, true).index(4)], 0);
        assert_eq!(p.inbound, 0);
    }
}
