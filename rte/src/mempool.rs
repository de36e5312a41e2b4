use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::{Eal, Error, Result};

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// Dropping the pool frees it only when every mbuf is back home; if some are
/// still out (held by a ring, a port, a leaked burst), the pool is left
/// allocated rather than freed under them, and the EAL is pinned (its
/// cleanup skipped) so that those mbufs stay valid until the process exits.
#[derive(Debug)]
pub struct Mempool<'e> {
    raw: NonNull<sys::rte_mempool>,
    size: u32,
    /// The pool lives in EAL's memory.
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: an rte_mempool is designed for concurrent use from many lcores; the
// per-lcore caches are indexed by the caller's lcore id, not by this handle.
unsafe impl Send for Mempool<'_> {}
// SAFETY: as above; every operation through &Mempool is thread-safe in DPDK.
unsafe impl Sync for Mempool<'_> {}

impl<'e> Mempool<'e> {
    /// Creates a pool of `size` mbufs with `data_room` bytes each (headroom
    /// included), a per-lcore cache of `cache` and no private area, on the
    /// NUMA socket `socket` (`-1` for any).
    pub fn new(
        _eal: &'e Eal,
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool<'e>> {
        let cname = CString::new(name).map_err(|_| Error {
            op: "rte_pktmbuf_pool_create",
            errno: libc::EINVAL,
        })?;
        // SAFETY: cname is a valid C string for the call; DPDK copies it.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, data_room, socket)
        };
        let raw = NonNull::new(raw).ok_or_else(|| Error::last("rte_pktmbuf_pool_create"))?;
        Ok(Mempool {
            raw,
            size,
            _eal: PhantomData,
        })
    }

    /// How many mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs free in the pool (including the per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live mempool.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently handed out.
    pub fn in_use(&self) -> u32 {
        // SAFETY: raw is a live mempool.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool<'_> {
    fn drop(&mut self) {
        if self.in_use() == 0 {
            // SAFETY: no mbuf of this pool is outstanding, and the handle is
            // not used again.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        } else {
            crate::eal::pin();
        }
    }
}
