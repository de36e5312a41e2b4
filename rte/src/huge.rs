use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Huge pages are 2 MiB on x86-64.
const HUGE: usize = 2 << 20;

static HUGETLB: AtomicBool = AtomicBool::new(false);

/// A global allocator that puts every allocation of 2 MiB or more in its
/// own 2 MiB-aligned mapping: from the hugetlbfs pool (`MAP_HUGETLB`, the
/// pages DPDK uses) while [`HugeAlloc::set_hugetlb`] is on and pages are
/// free, else ordinary anonymous memory advised for transparent huge pages
/// (`MADV_HUGEPAGE`, which the kernel may or may not honour). Smaller
/// allocations go to the system allocator unchanged.
///
/// Why: the dataplane's big tables (flow table, LPM) are plain Rust
/// vectors looked up at random. In 4 KiB pages nearly every lookup in a
/// table of 100 MiB also misses the TLB and waits for a page walk, of which
/// a core runs only a couple at once; DPDK's own tables sit in hugetlbfs
/// pages. Install it with
/// `#[global_allocator] static A: rte::HugeAlloc = rte::HugeAlloc;` and
/// switch hugetlbfs on around building a table.
#[derive(Clone, Copy, Debug, Default)]
pub struct HugeAlloc;

impl HugeAlloc {
    /// Whether big allocations made from now on try the hugetlbfs pool
    /// first. Blocks already allocated are freed correctly either way.
    pub fn set_hugetlb(on: bool) {
        HUGETLB.store(on, Ordering::Relaxed);
    }

    /// The mapping length for `layout`, if it is one this allocator maps
    /// itself: 2 MiB or more, aligned to at most 2 MiB.
    fn mapped_len(layout: Layout) -> Option<usize> {
        if layout.size() < HUGE || layout.align() > HUGE {
            return None;
        }
        layout.size().checked_next_multiple_of(HUGE)
    }

    fn map(len: usize) -> *mut u8 {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        if HUGETLB.load(Ordering::Relaxed) {
            // SAFETY: a fresh anonymous mapping; no existing memory is
            // touched. hugetlbfs mappings are 2 MiB-aligned.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    flags | libc::MAP_HUGETLB,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return p.cast();
            }
        }
        // Over-map by 2 MiB, then trim to an aligned window.
        let Some(over) = len.checked_add(HUGE) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), over, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let start = p as usize;
        let aligned = start.next_multiple_of(HUGE);
        let head = aligned - start;
        let tail = over - head - len;
        // SAFETY: head and tail are the parts of our own fresh mapping
        // outside the aligned window we keep; nothing refers to them.
        // madvise only changes how the kernel backs the window.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        aligned as *mut u8
    }
}

// SAFETY: a block of 2 MiB or more is a private mapping of at least the
// requested size, 2 MiB-aligned (so aligned as asked: `mapped_len` refuses
// larger alignments), zeroed by the kernel, and unmapped with the same
// length, which `mapped_len` derives from the layout alone. Everything
// else is System's, both ways.
unsafe impl GlobalAlloc for HugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Self::mapped_len(layout) {
            Some(len) => Self::map(len),
            // SAFETY: forwarded as received; the caller upholds alloc's
            // contract.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Self::mapped_len(layout) {
            // Fresh anonymous mappings are zero-filled.
            Some(len) => Self::map(len),
            // SAFETY: forwarded as received.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match Self::mapped_len(layout) {
            // SAFETY: ptr..ptr+len is the mapping `map` made for this
            // layout, and the caller no longer uses it.
            Some(len) => unsafe {
                libc::munmap(ptr.cast(), len);
            },
            // SAFETY: ptr came from System with this layout.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_blocks_are_2mib_aligned_zeroed_and_usable() {
        let a = HugeAlloc;
        for hugetlb in [false, true] {
            HugeAlloc::set_hugetlb(hugetlb);
            for (size, align) in [(16, 8), (HUGE, 8), (HUGE * 3 + 5, 64)] {
                let l = Layout::from_size_align(size, align).unwrap();
                // SAFETY: l has a non-zero size; the block is freed with l
                // and not used afterwards.
                unsafe {
                    let p = a.alloc_zeroed(l);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0);
                    if size >= HUGE {
                        assert_eq!(p as usize % HUGE, 0);
                    }
                    assert_eq!(*p.add(size - 1), 0);
                    *p.add(size - 1) = 1;
                    a.dealloc(p, l);
                }
            }
        }
        HugeAlloc::set_hugetlb(false);
    }
}
