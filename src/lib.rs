//! tgw's daemon, as a library: the binary (`main.rs`) parses its
//! arguments and runs [`gateway::run`]; benchmarks and tests reach the
//! control plane's parts (e.g. [`runtime`]) here.
#![deny(unsafe_code)]

pub mod control;
pub mod control_socket;
pub mod flows;
pub mod frame;
pub mod gateway;
pub mod handler;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod offload;
pub mod report;
pub mod runtime;
pub mod supervise;
pub mod tables;
pub mod telemetry;
pub mod worker;
