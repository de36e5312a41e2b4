use std::ffi::CStr;
use std::fmt;

use dpdk_sys as sys;

/// A failed DPDK call: which operation, and the errno it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub op: &'static str,
    /// A positive errno (or one of DPDK's own above 1000).
    pub errno: i32,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// From the return value of a call that returns `-errno` on failure.
    pub(crate) fn from_ret(op: &'static str, ret: i32) -> Self {
        Error {
            op,
            errno: ret.saturating_abs(),
        }
    }

    /// From `rte_errno`, for calls that return NULL or -1.
    pub(crate) fn last(op: &'static str) -> Self {
        // SAFETY: reads the calling thread's rte_errno; no preconditions.
        let errno = unsafe { sys::tgw_errno() };
        Error { op, errno }
    }

    /// Turns a `-errno`-style return into a `Result`.
    pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Self::from_ret(op, ret))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string for any errno value.
        let text = unsafe { CStr::from_ptr(sys::rte_strerror(self.errno)) };
        write!(
            f,
            "{}: {} (errno {})",
            self.op,
            text.to_string_lossy(),
            self.errno
        )
    }
}

impl std::error::Error for Error {}
