#![deny(unsafe_code)]
//! The control side of tgw: the configuration model and its validation
//! ([`config`]), and the CPU set lcores are checked against ([`cpuset`]).

pub mod config;
pub mod cpuset;
