use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use dpdk_sys as sys;

use crate::{Eal, Error, Result};

/// An EAL logical core id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

impl LcoreId {
    /// The main lcore of this EAL.
    pub fn main() -> LcoreId {
        // SAFETY: a plain getter, valid after EAL init.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }
}

/// A job as EAL runs it. The `'static` is a lie told to the type system
/// only: [`Eal::scope`] joins every job before the borrows it holds end.
type Job = Box<dyn FnOnce() + Send>;

/// What the main lcore can see of a job while and after it runs.
#[derive(Debug, Default)]
struct Outcome {
    /// Set once the job returned or unwound and everything it owned was
    /// dropped.
    finished: AtomicBool,
    /// The panic message, when it panicked.
    panic: OnceLock<String>,
}

/// What `lcore_main` is handed: the job and where to report.
struct Launch {
    job: Job,
    outcome: Arc<Outcome>,
}

/// What `lcore_main` returns when the job panicked.
const PANICKED: c_int = -1;

/// The `extern "C"` entry EAL calls on the worker lcore.
///
/// A panic must never unwind into C, so the job runs under `catch_unwind`
/// and a panic becomes a message in its [`Outcome`] and a return code.
extern "C" fn lcore_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Launch> leaked by `Scope::launch`, handed to
    // exactly one lcore and reclaimed exactly once, here.
    let Launch { job, outcome } = *unsafe { Box::from_raw(arg.cast::<Launch>()) };
    let ret = match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(payload) => {
            let _ = outcome.panic.set(panic_message(&*payload));
            // Never dropped here: a payload whose Drop panics would unwind
            // into C. A panic is the end of the process anyway.
            std::mem::forget(payload);
            PANICKED
        }
    };
    outcome.finished.store(true, Ordering::Release);
    ret
}

/// The text of a panic, as `panic!` formatted it.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not text".to_owned()
    }
}

/// Jobs launched on worker lcores that may borrow from the caller's stack,
/// as `std::thread::scope` does for threads. Made by [`Eal::scope`].
#[derive(Debug)]
pub struct Scope<'scope, 'env: 'scope> {
    launched: RefCell<Vec<LcoreId>>,
    /// Invariant over both, as in `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl Eal {
    /// Runs `f`, in which jobs can be launched on worker lcores with
    /// [`Scope::launch`]; returns once every job launched in it has
    /// returned, even if `f` panics. Jobs may therefore borrow what lives
    /// outside the scope, such as queues and rings that borrow the `Eal`.
    /// Call it on the main lcore.
    pub fn scope<'env, F, T>(&self, f: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        /// Joins on drop, so that an early return or a panic in `f` does
        /// not leave a job running with dangling borrows.
        struct JoinAll<'a, 'scope, 'env>(&'a Scope<'scope, 'env>);
        impl Drop for JoinAll<'_, '_, '_> {
            fn drop(&mut self) {
                for id in self.0.launched.borrow().iter() {
                    // SAFETY: the lcore was launched in this scope; waiting
                    // on one already waited for returns at once.
                    unsafe { sys::rte_eal_wait_lcore(id.0) };
                }
            }
        }
        let scope = Scope {
            launched: RefCell::new(Vec::new()),
            scope: PhantomData,
            env: PhantomData,
        };
        let join = JoinAll(&scope);
        let result = f(&scope);
        drop(join);
        result
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Runs `job` on worker lcore `lcore` (run-to-completion: it owns the
    /// core until it returns). The lcore must be a worker of this EAL, idle.
    pub fn launch<F>(&'scope self, lcore: LcoreId, job: F) -> Result<LaunchedLcore>
    where
        F: FnOnce() + Send + 'scope,
    {
        let job: Box<dyn FnOnce() + Send + 'scope> = Box::new(job);
        // SAFETY: only the lifetime changes (same layout). The job cannot
        // outlive 'scope: `Eal::scope` waits for every lcore recorded
        // below before any borrow the job holds can end.
        let job: Job =
            unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'scope>, Job>(job) };
        let outcome = Arc::new(Outcome::default());
        let arg = Box::into_raw(Box::new(Launch {
            job,
            outcome: Arc::clone(&outcome),
        }))
        .cast::<c_void>();
        // Room first, so that recording a launched job cannot fail.
        self.launched.borrow_mut().reserve(1);
        // SAFETY: lcore_main has the lcore_function_t signature and takes
        // ownership of `arg` when EAL runs it; EAL checks the lcore id.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(lcore_main), arg, lcore.0) };
        if ret < 0 {
            // SAFETY: the launch failed, so lcore_main will never run and
            // the job is still ours to free.
            drop(unsafe { Box::from_raw(arg.cast::<Launch>()) });
            return Err(Error::from_ret("rte_eal_remote_launch", ret));
        }
        self.launched.borrow_mut().push(lcore);
        Ok(LaunchedLcore { id: lcore, outcome })
    }
}

/// A job running on a worker lcore. [`finished`](Self::finished) tells,
/// without blocking, whether it has returned; [`wait`](Self::wait) joins
/// it. The scope it was launched in joins it in any case.
#[derive(Debug)]
pub struct LaunchedLcore {
    id: LcoreId,
    outcome: Arc<Outcome>,
}

/// The job on a worker lcore panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    pub lcore: LcoreId,
    /// The panic's message.
    pub message: String,
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the job on {} panicked: {}", self.lcore, self.message)
    }
}

impl LaunchedLcore {
    pub fn id(&self) -> LcoreId {
        self.id
    }

    /// Whether the job has returned (or unwound); a relaxed-cost load the
    /// main lcore can poll.
    pub fn finished(&self) -> bool {
        self.outcome.finished.load(Ordering::Acquire)
    }

    /// The panic's message, once the job has panicked.
    pub fn panic_message(&self) -> Option<&str> {
        self.outcome.panic.get().map(String::as_str)
    }

    /// Blocks until the job returns. `Err` if it panicked.
    pub fn wait(self) -> std::result::Result<(), Panicked> {
        // SAFETY: the lcore was launched by us; waiting twice (here and at
        // the end of the scope) is harmless.
        let ret = unsafe { sys::rte_eal_wait_lcore(self.id.0) };
        match self.outcome.panic.get() {
            Some(message) => Err(Panicked {
                lcore: self.id,
                message: message.clone(),
            }),
            None if ret == PANICKED => Err(Panicked {
                lcore: self.id,
                message: String::new(),
            }),
            None => Ok(()),
        }
    }
}
