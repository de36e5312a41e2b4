//! What perf's integration tests share.
#![allow(dead_code)]

/// The network namespace guard: it lives in `src/` because `tgw-perf
/// scenario` uses it too.
#[path = "../../src/netns.rs"]
pub mod netns;
