#![deny(unsafe_code)]
//! The control side of tgw: the configuration model and its validation
//! ([`config`]), the CPU set lcores are checked against ([`cpuset`]), and
//! the control API's protocol ([`api`]).

pub mod api;
pub mod config;
pub mod cpuset;
