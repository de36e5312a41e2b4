//! The tgw packet pipeline in plain Rust.
//!
//! Nothing here knows DPDK: frames arrive through the [`Frame`] trait, which
//! the daemon implements over `rte::Mbuf` and tests implement over a `Vec`.
//! That is what lets this crate be unit-tested, fuzzed and benchmarked on any
//! machine.
#![deny(unsafe_code)]

pub mod conntrack;
pub mod counters;
pub mod firewall;
pub mod flow;
pub mod fragments;
pub mod frame;
pub mod hash;
pub mod ingress;
pub mod ip_options;
pub mod l2fwd;
pub mod lpm;
pub mod mailbox;
pub mod martian;
pub mod nat;
pub mod neighbour;
pub mod offload;
pub mod pipeline;
pub mod punt;
pub mod ratelimit;
pub mod resolver;
pub mod sixteens;
pub mod snapshot;
pub mod snat;
pub mod steer;
pub mod tables;
pub mod tenant;
pub mod wire;

pub use counters::{Counter, DropReason, WorkerCounters};
pub use frame::{Checked, Frame, VecFrame};
pub use l2fwd::L2Forward;
pub use pipeline::Verdict;
