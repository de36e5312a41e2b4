use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::{Eal, Error, Result};

/// DPDK's cuckoo hash table (`rte_hash`) over fixed-size byte keys of `N`
/// bytes, created with the default parameters: single writer, no
/// reader/writer concurrency (so lookups take no lock), and DPDK's default
/// hash function (`rte_hash_crc`, SSE4.2 `crc32` on x86). Here as the
/// baseline `tgw-perf flow` measures our flow table against; the dataplane
/// does not use it.
///
/// A key's "position" is the index DPDK stores it at (`0..entries`),
/// stable until the key is deleted.
#[derive(Debug)]
pub struct RteHash<'e, const N: usize> {
    raw: NonNull<sys::rte_hash>,
    entries: u32,
    /// The table lives in EAL's memory.
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: an rte_hash is plain memory owned by this handle (its free-slot
// ring included); nothing in it is tied to the creating thread.
unsafe impl<const N: usize> Send for RteHash<'_, N> {}
// SAFETY: without the concurrency flags rte_hash lookups only read the
// table, and every write (add, free) takes `&mut self`, so shared
// references never race with a writer.
unsafe impl<const N: usize> Sync for RteHash<'_, N> {}

impl<'e, const N: usize> RteHash<'e, N> {
    /// Most keys one `rte_hash_lookup_bulk` call takes.
    pub const LOOKUP_BULK_MAX: usize = sys::RTE_HASH_LOOKUP_BULK_MAX as usize;

    /// An empty table for `entries` keys (DPDK rounds the bucket count up
    /// to a power of two: `entries.next_power_of_two() / 8` buckets). The
    /// name must be unique among live tables.
    pub fn new(_eal: &'e Eal, name: &str, entries: u32) -> Result<Self> {
        let invalid = Error {
            op: "rte_hash_create",
            errno: libc::EINVAL,
        };
        let cname = CString::new(name).map_err(|_| invalid)?;
        let key_len = u32::try_from(N).map_err(|_| invalid)?;
        let params = sys::rte_hash_parameters {
            name: cname.as_ptr(),
            entries,
            reserved: 0,
            key_len,
            // NULL selects DPDK's default, rte_hash_crc on x86.
            hash_func: None,
            hash_func_init_val: 0,
            socket_id: -1,
            extra_flag: 0,
        };
        // SAFETY: params and the name it points to are valid for the call,
        // which copies what it keeps; -1 means any NUMA socket.
        let raw = unsafe { sys::rte_hash_create(&params) };
        NonNull::new(raw)
            .map(|raw| RteHash {
                raw,
                entries,
                _eal: PhantomData,
            })
            .ok_or_else(|| Error::last("rte_hash_create"))
    }

    /// Adds `key` (or finds it already there) and returns its position.
    /// Fails with ENOSPC when no slot can be found for it.
    pub fn add(&mut self, key: &[u8; N]) -> Result<u32> {
        // SAFETY: raw is a live table and `&mut self` makes us its only
        // user; key points to N = key_len readable bytes, which DPDK copies.
        let ret = unsafe { sys::rte_hash_add_key(self.raw.as_ptr(), key.as_ptr().cast()) };
        Error::check("rte_hash_add_key", ret).map(|p| p as u32)
    }

    /// The position of `key`, if present.
    pub fn lookup(&self, key: &[u8; N]) -> Option<u32> {
        // SAFETY: raw is a live table, only read here; key points to
        // key_len readable bytes.
        let ret = unsafe { sys::rte_hash_lookup(self.raw.as_ptr(), key.as_ptr().cast()) };
        u32::try_from(ret).ok()
    }

    /// Looks up `min(keys.len(), positions.len())` keys with
    /// `rte_hash_lookup_bulk`, [`Self::LOOKUP_BULK_MAX`] per call, leaving
    /// `positions[i]` as DPDK writes it: the key's position, or `-ENOENT`.
    /// Kept raw so that a benchmark measures DPDK's loop and little of
    /// ours (one array of key pointers per call).
    #[inline]
    pub fn lookup_bulk(&self, keys: &[[u8; N]], positions: &mut [i32]) {
        let n = keys.len().min(positions.len());
        let mut ptrs = [std::ptr::null::<c_void>(); sys::RTE_HASH_LOOKUP_BULK_MAX as usize];
        for (k, p) in keys[..n]
            .chunks(Self::LOOKUP_BULK_MAX)
            .zip(positions[..n].chunks_mut(Self::LOOKUP_BULK_MAX))
        {
            for (slot, key) in ptrs.iter_mut().zip(k) {
                *slot = key.as_ptr().cast();
            }
            // SAFETY: raw is a live table, only read here; the first k.len()
            // pointers point to keys of key_len bytes that outlive the call
            // (DPDK only reads through them, the `*mut` in its signature
            // notwithstanding); p holds k.len() <= 64 writable positions.
            let ret = unsafe {
                sys::rte_hash_lookup_bulk(
                    self.raw.as_ptr(),
                    ptrs.as_mut_ptr(),
                    k.len() as u32,
                    p.as_mut_ptr(),
                )
            };
            // Fails only on null pointers or a count above 64.
            debug_assert_eq!(ret, 0);
        }
    }

    /// Keys in the table.
    pub fn len(&self) -> usize {
        // SAFETY: raw is a live table; the count only reads its ring.
        let n = unsafe { sys::rte_hash_count(self.raw.as_ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes DPDK allocated for the table, from its layout in 22.11: the
    /// buckets (`entries.next_power_of_two() / 8` of 64 bytes), the key
    /// store (`entries + 1` entries of the key and an 8-byte data pointer,
    /// rounded up to 16 bytes) and the free-slot ring (pointer-sized
    /// elements, a power of two).
    pub fn memory_bytes(&self) -> usize {
        Self::memory_bytes_for(self.entries)
    }

    /// [`Self::memory_bytes`] of a table created for `entries` keys.
    pub fn memory_bytes_for(entries: u32) -> usize {
        let entries = entries as usize;
        let buckets = entries.next_power_of_two() / 8 * 64;
        let key_entry = (8 + N).div_ceil(16) * 16;
        let keys = key_entry * (entries + 1);
        let ring = (entries + 1).next_power_of_two() * 8;
        buckets + keys + ring
    }
}

impl<const N: usize> Drop for RteHash<'_, N> {
    fn drop(&mut self) {
        // SAFETY: raw is live and ours alone; nothing uses it afterwards.
        unsafe { sys::rte_hash_free(self.raw.as_ptr()) };
    }
}
