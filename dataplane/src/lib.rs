//! The tgw packet pipeline in plain Rust.
//!
//! Nothing here knows DPDK: frames arrive through the [`Frame`] trait, which
//! the daemon implements over `rte::Mbuf` and tests implement over a `Vec`.
//! That is what lets this crate be unit-tested, fuzzed and benchmarked on any
//! machine.
#![deny(unsafe_code)]

pub mod frame;

pub use frame::{Frame, VecFrame};
