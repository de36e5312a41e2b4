//! What perf's integration tests share.
#![allow(dead_code)]

pub mod netns;
