//! What the offload plane reports: for `/metrics` (docs/metrics.md,
//! "Offload") and `tgwctl offload stats`.

use dataplane::offload::Level;

/// The states an offloaded flow goes through, in order (docs/offload.md).
pub const STATES: [&str; 3] = ["pending", "offloaded", "dying"];

/// The offload plane's counters as they stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffloadReport {
    /// `[offload] mode`.
    pub mode: &'static str,
    /// Each port's level from the probe, by the port's name.
    pub levels: Vec<(String, Level)>,
    /// Flows by state, in [`STATES`] order.
    pub flows: [u64; 3],
    /// Candidates the manager took from the workers' queues.
    pub requests: u64,
    /// Flows installed (recorded, in shadow mode).
    pub installed: u64,
    /// Candidates left in software, by reason.
    pub refusals: Vec<(&'static str, u64)>,
    /// Requests the workers dropped for a full request queue.
    pub queue_full: u64,
    /// Refreshes sent to workers for flows with new hardware hits.
    pub refreshes: u64,
    /// Flows pulled back to software (tenant changes, flush, shutdown).
    pub pulled_back: u64,
    /// Packets the NIC's deny rules dropped, by rule counter slot and
    /// (inbound default policy) by tenant slot: added to the firewall's
    /// counts, which the workers never see them in (docs/offload.md,
    /// "Deny rules on the NIC").
    pub deny_drops: DenyDrops,
}

/// Drops by rule counter slot, and by tenant slot for the inbound
/// default policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DenyDrops {
    pub by_rule: std::collections::HashMap<u32, u64>,
    pub by_default: std::collections::HashMap<u32, u64>,
}

impl DenyDrops {
    pub fn rule(&self, slot: u32) -> u64 {
        self.by_rule.get(&slot).copied().unwrap_or(0)
    }

    pub fn default_in(&self, tenant: u32) -> u64 {
        self.by_default.get(&tenant).copied().unwrap_or(0)
    }
}

/// A level as a number for a gauge: 0 none, 1 partial, 2 full.
pub fn level_value(level: Level) -> u64 {
    match level {
        Level::None => 0,
        Level::Partial => 1,
        Level::Full => 2,
    }
}
