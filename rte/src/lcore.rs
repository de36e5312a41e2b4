use std::ffi::{c_int, c_void};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use dpdk_sys as sys;

use crate::{Error, Result};

/// An EAL logical core id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// What `lcore_main` returns when the job panicked.
const PANICKED: c_int = -1;

/// The `extern "C"` entry EAL calls on the worker lcore.
///
/// A panic must never unwind into C, so the job runs under `catch_unwind` and
/// a panic becomes a return code that [`LaunchedLcore::wait`] reports.
extern "C" fn lcore_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `LcoreId::launch`, handed to
    // exactly one lcore and reclaimed exactly once, here.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => PANICKED,
    }
}

impl LcoreId {
    /// Runs `job` on this worker lcore (run-to-completion: it owns the core
    /// until it returns). The lcore must be a worker of this EAL, idle.
    pub fn launch<F: FnOnce() + Send + 'static>(self, job: F) -> Result<LaunchedLcore> {
        let job: Box<Job> = Box::new(Box::new(job));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: lcore_main has the lcore_function_t signature and takes
        // ownership of `arg` when EAL runs it; EAL checks the lcore id.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(lcore_main), arg, self.0) };
        if ret < 0 {
            // SAFETY: the launch failed, so lcore_main will never run and
            // the job is still ours to free.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(Error::from_ret("rte_eal_remote_launch", ret));
        }
        Ok(LaunchedLcore {
            id: self,
            waited: false,
        })
    }

    /// The main lcore of this EAL.
    pub fn main() -> LcoreId {
        // SAFETY: a plain getter, valid after EAL init.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }
}

/// A job running on a worker lcore; [`wait`](Self::wait) joins it.
#[derive(Debug)]
pub struct LaunchedLcore {
    id: LcoreId,
    waited: bool,
}

/// The job on a worker lcore panicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Panicked(pub LcoreId);

impl LaunchedLcore {
    pub fn id(&self) -> LcoreId {
        self.id
    }

    /// Blocks until the job returns. `Err` if it panicked.
    pub fn wait(mut self) -> std::result::Result<(), Panicked> {
        self.waited = true;
        // SAFETY: the lcore was launched by us and not yet waited for.
        let ret = unsafe { sys::rte_eal_wait_lcore(self.id.0) };
        if ret == PANICKED {
            Err(Panicked(self.id))
        } else {
            Ok(())
        }
    }
}

impl Drop for LaunchedLcore {
    fn drop(&mut self) {
        if !self.waited {
            // A job must not outlive the objects it borrowed from the main
            // thread's scope; joining here keeps that true on early returns.
            // SAFETY: as in `wait`.
            unsafe { sys::rte_eal_wait_lcore(self.id.0) };
        }
    }
}
