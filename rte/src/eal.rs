use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use crate::{Error, Result};

/// DPDK's environment abstraction layer, initialised once per process.
///
/// Dropping it runs `rte_eal_cleanup`, which frees the memory every DPDK
/// object lives in. Everything allocated from DPDK therefore borrows the
/// `Eal` it was made with ([`Mempool`](crate::Mempool),
/// [`Ring`](crate::Ring), ports and their queues, [`RteLpm`](crate::RteLpm),
/// [`RteHash`](crate::RteHash)), and jobs on other lcores run in
/// [`Eal::scope`]: dropping the `Eal` while any of them lives is a compile
/// error, not a use of freed memory at exit.
///
/// ```compile_fail,E0505
/// # fn f() -> rte::Result<()> {
/// let eal = rte::Eal::init(&["--no-huge"])?;
/// let ring = rte::Ring::new(&eal, "r", 64)?;
/// drop(eal); // error: `eal` is still borrowed by `ring`
/// drop(ring);
/// # Ok(()) }
/// ```
///
/// Mbufs borrow nothing (a per-packet lifetime would reach every
/// signature of the pipeline); a [`Mempool`](crate::Mempool) dropped with
/// mbufs still out instead pins the EAL: the pool stays allocated and
/// cleanup is skipped, so a late mbuf is never freed into released memory.
/// Telemetry stays on (`dpdk-telemetry.py -f PREFIX`, with commands added
/// through [`telemetry::register`](crate::telemetry::register)); packet
/// capture for `dpdk-dumpcap` is a [`Pdump`](crate::Pdump) the caller
/// starts when its EAL shares memory with secondary processes.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Set when memory allocated from EAL was left allocated on purpose (a
/// mempool dropped with mbufs out): `rte_eal_cleanup` would free it under
/// them, so it is skipped and the process exit reclaims everything.
static PINNED: AtomicBool = AtomicBool::new(false);

/// Keeps `rte_eal_cleanup` from running: something allocated from EAL
/// must stay valid until the process exits.
pub(crate) fn pin() {
    PINNED.store(true, Ordering::SeqCst);
}

impl Eal {
    /// Initialises EAL with `args` (without argv\[0\]). EAL can be initialised
    /// only once per process; a second call fails with `EALREADY`.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(Error {
                op: "rte_eal_init",
                errno: libc::EALREADY,
            });
        }
        let owned: Vec<CString> = std::iter::once("tgw")
            .chain(args.iter().map(AsRef::as_ref))
            .map(|a| {
                CString::new(a).map_err(|_| Error {
                    op: "rte_eal_init",
                    errno: libc::EINVAL,
                })
            })
            .collect::<Result<_>>()?;
        // EAL may permute argv, so it gets its own array of pointers; the
        // strings stay alive in `owned` for the whole process, as EAL keeps
        // pointers to some of them.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len()).map_err(|_| Error {
            op: "rte_eal_init",
            errno: libc::E2BIG,
        })?;
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive
        // the call (they are leaked below), and this is the first init.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        std::mem::forget(owned);
        std::mem::forget(argv);
        if ret < 0 {
            INITIALISED.store(false, Ordering::SeqCst);
            return Err(Error::last("rte_eal_init"));
        }
        Ok(Eal { _private: () })
    }

    /// Registers the calling non-EAL thread (a test thread, say) with DPDK so
    /// it gets an lcore id and may use per-lcore mempool caches.
    pub fn register_thread(&self) -> Result<()> {
        // SAFETY: EAL is initialised (we hold an Eal); registering a thread
        // twice is harmless.
        let ret = unsafe { sys::rte_thread_register() };
        Error::check("rte_thread_register", ret).map(drop)
    }

    /// The lcore id of the calling thread, `None` for unregistered threads.
    pub fn lcore_id(&self) -> Option<u32> {
        // SAFETY: reads a thread-local; no preconditions.
        let id = unsafe { sys::tgw_lcore_id() };
        (id != u32::MAX).then_some(id)
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if PINNED.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: EAL was initialised by this value. Every DPDK object
        // borrows it (so all were dropped before it, which the borrow
        // checker enforces), every lcore job ran in a scope that joined it,
        // and mbufs that outlived their pool pinned the EAL above.
        unsafe { sys::rte_eal_cleanup() };
    }
}

/// The time-stamp counter, read inline (no call into C): the workers read
/// it a few times per burst.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC exists on every x86_64 CPU and has no preconditions.
    return unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the CPU's cycle counter through DPDK; no preconditions.
    return unsafe { sys::tgw_rdtsc() };
}

/// Starts bringing the cache line holding `r` into all cache levels
/// (`prefetcht0`, DPDK's `rte_prefetch0`). A prefetch has no architectural
/// effect and retires at once, where a load that misses holds its place
/// in the reorder buffer: staged lookups over a burst use it to keep more
/// misses in flight. The dataplane takes it through
/// `dataplane::flow::Prefetch`.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetcht0 never faults and reads nothing the program can
    // observe; the address comes from a live reference anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// CPU time the calling thread has run (`CLOCK_THREAD_CPUTIME_ID`): on a
/// shared machine, a rate per CPU second leaves out the time the scheduler
/// gave to other processes, which wall-clock rates do not.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; the clock id is a constant
    // every Linux has.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if ret != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The DPDK this runs on, as it names itself (`DPDK 22.11.11`).
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated
    // string, valid for the life of the process, before or after init.
    let name = unsafe { std::ffi::CStr::from_ptr(sys::rte_version()) };
    name.to_string_lossy().into_owned()
}

/// TSC ticks per second, as EAL measured them at init.
pub fn tsc_hz() -> u64 {
    // SAFETY: a plain getter; returns 0 before EAL init.
    unsafe { sys::rte_get_tsc_hz() }
}
