//! Flow offload in the daemon (docs/offload.md): the rule shapes tgw
//! lowers an offloaded flow to, the probe that decides each port's
//! level, and the `Device` the offload manager installs rules through.

pub mod deny;
pub mod device;
pub mod plane;
pub mod probe;
pub mod report;
pub mod root;
pub mod shapes;
pub mod statics;
pub mod steering;
pub mod templates;
