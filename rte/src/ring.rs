use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;

use arrayvec::ArrayVec;
use dpdk_sys as sys;

use crate::{Eal, Error, Mbuf, Result};

/// A lock-free ring of mbufs (`rte_ring`), for handing frames between
/// lcores. Ownership of each mbuf travels with it.
#[derive(Debug)]
pub struct Ring<'e> {
    raw: NonNull<sys::rte_ring>,
    /// The ring lives in EAL's memory.
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: rte_ring is built for concurrent producers and consumers (the
// default flags make it multi-producer, multi-consumer).
unsafe impl Send for Ring<'_> {}
// SAFETY: as above.
unsafe impl Sync for Ring<'_> {}

impl<'e> Ring<'e> {
    /// A multi-producer, multi-consumer ring of `size` slots (a power of
    /// two; it holds `size - 1`).
    pub fn new(_eal: &'e Eal, name: &str, size: u32) -> Result<Ring<'e>> {
        let cname = CString::new(name).map_err(|_| Error {
            op: "rte_ring_create",
            errno: libc::EINVAL,
        })?;
        // SAFETY: cname is valid for the call; -1 means any NUMA socket.
        let raw = unsafe { sys::rte_ring_create(cname.as_ptr(), size, -1, 0) };
        NonNull::new(raw)
            .map(|raw| Ring {
                raw,
                _eal: PhantomData,
            })
            .ok_or_else(|| Error::last("rte_ring_create"))
    }

    /// Enqueues as many frames of `burst` as fit, from the front; the rest
    /// stay in `burst`. Returns how many were enqueued.
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut ArrayVec<Mbuf, N>) -> usize {
        let n = burst.len();
        // SAFETY: burst holds n mbuf pointers (Mbuf is repr(transparent));
        // those the ring took are owned by it and removed without Drop, the
        // rest shift to the front.
        unsafe {
            let p = burst.as_mut_ptr();
            let done =
                sys::tgw_ring_enqueue_burst(self.raw.as_ptr(), p.cast::<*mut c_void>(), n as u32)
                    as usize;
            std::ptr::copy(p.add(done), p, n - done);
            burst.set_len(n - done);
            done
        }
    }

    /// Dequeues up to the free capacity of `out`, appending.
    pub fn dequeue_burst<const N: usize>(&self, out: &mut ArrayVec<Mbuf, N>) -> usize {
        let len = out.len();
        let room = out.remaining_capacity() as u32;
        // SAFETY: out has room for `room` pointers past len; the ring only
        // ever holds mbufs enqueued above, whose ownership comes back to us.
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut c_void>();
            let got = sys::tgw_ring_dequeue_burst(self.raw.as_ptr(), dst, room) as usize;
            out.set_len(len + got);
            got
        }
    }

    /// Frames waiting in the ring.
    pub fn len(&self) -> usize {
        // SAFETY: raw is a live ring.
        unsafe { sys::tgw_ring_count(self.raw.as_ptr()) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Ring<'_> {
    fn drop(&mut self) {
        let mut rest: ArrayVec<Mbuf, 32> = ArrayVec::new();
        while self.dequeue_burst(&mut rest) > 0 {
            Mbuf::free_bulk(&mut rest);
        }
        // SAFETY: the ring is empty and no longer shared (we own it).
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) };
    }
}
