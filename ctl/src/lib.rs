#![deny(unsafe_code)]
//! The control side of tgw: the configuration model and its validation
//! ([`config`]), the CPU set lcores are checked against ([`cpuset`]), the
//! control API's protocol ([`api`]), its client ([`client`]),
//! `tgwctl`'s command line ([`cli`]), and what `tgw-setup` does to the
//! machine ([`setup`]).

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod cpuset;
pub mod running;
pub mod setup;
