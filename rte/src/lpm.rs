use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::{Eal, Error, Result};

/// DPDK's own IPv4 longest-prefix match (`rte_lpm`, DIR-24-8): a 2^24-entry
/// first level (64 MiB) and `number_tbl8s` 256-entry groups under it for
/// prefixes longer than /24. Here as the baseline `tgw-perf lpm` measures
/// our own LPM against; the dataplane does not use it.
#[derive(Debug)]
pub struct RteLpm<'e> {
    raw: NonNull<sys::rte_lpm>,
    number_tbl8s: u32,
    /// The table lives in EAL's memory.
    _eal: PhantomData<&'e Eal>,
}

// SAFETY: an rte_lpm is plain memory owned by this handle; nothing in it is
// tied to the thread that created it.
unsafe impl Send for RteLpm<'_> {}
// SAFETY: lookups only read the tables, and every write (add, free) takes
// `&mut self`, so shared references never race with a writer.
unsafe impl Sync for RteLpm<'_> {}

impl<'e> RteLpm<'e> {
    /// The flag `rte_lpm` sets in a bulk lookup's result when the address
    /// matched a route; the low 24 bits are then its next hop.
    pub const LOOKUP_SUCCESS: u32 = sys::RTE_LPM_LOOKUP_SUCCESS;
    /// The largest next hop `rte_lpm` can store (24 bits).
    pub const MAX_NEXT_HOP: u32 = (1 << 24) - 1;
    /// Bytes of the first level, whatever the configuration.
    pub const TBL24_BYTES: usize =
        sys::RTE_LPM_TBL24_NUM_ENTRIES as usize * std::mem::size_of::<sys::rte_lpm_tbl_entry>();
    /// Bytes of one tbl8 group.
    pub const TBL8_GROUP_BYTES: usize = sys::RTE_LPM_TBL8_GROUP_NUM_ENTRIES as usize
        * std::mem::size_of::<sys::rte_lpm_tbl_entry>();

    /// An empty table for up to `max_rules` routes, with `number_tbl8s`
    /// second-level groups (one per /24 that holds a longer prefix). The
    /// name must be unique among live tables.
    pub fn new(_eal: &'e Eal, name: &str, max_rules: u32, number_tbl8s: u32) -> Result<RteLpm<'e>> {
        let cname = CString::new(name).map_err(|_| Error {
            op: "rte_lpm_create",
            errno: libc::EINVAL,
        })?;
        let config = sys::rte_lpm_config {
            max_rules,
            number_tbl8s,
            flags: 0,
        };
        // SAFETY: cname and config are valid for the call, which copies
        // what it keeps; -1 means any NUMA socket.
        let raw = unsafe { sys::rte_lpm_create(cname.as_ptr(), -1, &config) };
        NonNull::new(raw)
            .map(|raw| RteLpm {
                raw,
                number_tbl8s,
                _eal: PhantomData,
            })
            .ok_or_else(|| Error::last("rte_lpm_create"))
    }

    /// Adds (or replaces) the route `ip/depth` → `next_hop`. `depth` is
    /// 1..=32 and `next_hop` at most [`Self::MAX_NEXT_HOP`]; host bits of
    /// `ip` are ignored. Fails with ENOSPC when rules or tbl8s run out.
    pub fn add(&mut self, ip: u32, depth: u8, next_hop: u32) -> Result<()> {
        if next_hop > Self::MAX_NEXT_HOP {
            return Err(Error {
                op: "rte_lpm_add",
                errno: libc::EINVAL,
            });
        }
        // SAFETY: raw is a live table and `&mut self` makes us its only
        // user; the call validates depth itself.
        let ret = unsafe { sys::rte_lpm_add(self.raw.as_ptr(), ip, depth, next_hop) };
        Error::check("rte_lpm_add", ret).map(|_| ())
    }

    /// Looks up `min(ips.len(), out.len())` addresses at once
    /// (`rte_lpm_lookup_bulk`), leaving `out[i]` raw as DPDK writes it: a
    /// hit has [`Self::LOOKUP_SUCCESS`] set and its next hop in the low 24
    /// bits (the bits above the flag are the raw table entry's, its depth:
    /// mask them off); decode it with [`RteLpm::decode`]. Kept raw so that a
    /// benchmark measures DPDK's loop and nothing of ours.
    #[inline]
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u32]) {
        let n = ips.len().min(out.len());
        if n == 0 {
            return;
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: raw is a live table, only read here; ips and out hold at
        // least n elements each, and out is written only within them.
        let ret = unsafe {
            sys::tgw_lpm_lookup_bulk(self.raw.as_ptr(), ips.as_ptr(), out.as_mut_ptr(), n)
        };
        // Fails only on null pointers, which we never pass.
        debug_assert_eq!(ret, 0);
    }

    /// One address; `None` when no route covers it.
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        let mut out = [0u32];
        self.lookup_bulk(&[ip], &mut out);
        Self::decode(out[0])
    }

    /// A raw result of [`RteLpm::lookup_bulk`] as a next hop, `None` for a
    /// miss.
    #[inline]
    pub const fn decode(raw: u32) -> Option<u32> {
        if raw & Self::LOOKUP_SUCCESS != 0 {
            Some(raw & Self::MAX_NEXT_HOP)
        } else {
            None
        }
    }

    /// The tables' configured size: tbl24 plus every tbl8 group, used or
    /// not (the rule list, kept for deletes, is not counted).
    pub fn memory_bytes(&self) -> usize {
        Self::TBL24_BYTES + self.number_tbl8s as usize * Self::TBL8_GROUP_BYTES
    }
}

impl Drop for RteLpm<'_> {
    fn drop(&mut self) {
        // SAFETY: raw is live and ours alone; nothing uses it afterwards.
        unsafe { sys::rte_lpm_free(self.raw.as_ptr()) };
    }
}
