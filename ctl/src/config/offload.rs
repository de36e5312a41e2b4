//! `[offload]`: moving established flows to NICs that can take them
//! (docs/offload.md).

use std::fmt;
use std::ops::RangeInclusive;

/// Whether and how flows are offloaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OffloadMode {
    /// Probe every port at start and offload where the port can: on a port
    /// with no flow API (every virtual device) nothing changes.
    #[default]
    Auto,
    /// No probe, no requests: software does it all.
    Off,
    /// Everything but the NIC: workers request, the manager builds and
    /// keeps every rule it would install, and installs none. For `tgwctl
    /// offload show --testpmd` on machines without the NIC, and for
    /// measuring what offload costs the workers.
    Shadow,
}

impl OffloadMode {
    /// Every mode, in the order the error messages list them.
    pub const ALL: [OffloadMode; 3] = [OffloadMode::Auto, OffloadMode::Off, OffloadMode::Shadow];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            OffloadMode::Auto => "auto",
            OffloadMode::Off => "off",
            OffloadMode::Shadow => "shadow",
        }
    }

    /// One line on what the mode does, for error messages.
    pub fn summary(self) -> &'static str {
        match self {
            OffloadMode::Auto => "offload where the port's NIC can, found by a probe at start",
            OffloadMode::Off => "software only",
            OffloadMode::Shadow => "build and keep the rules, install none",
        }
    }
}

impl fmt::Display for OffloadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a full rule's pushed tunnel header carries as DF, for the
/// packets it takes toward a tenant (docs/offload.md, "mlx5 and DF").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OuterDf {
    /// As software: the public side's root rule passes only packets with
    /// DF set, for which the pushed header's DF is the one software would
    /// copy; packets without DF stay in software. mlx5 refuses that match
    /// (its public port is then at most partial).
    #[default]
    Copy,
    /// The root rule does not look at DF, and the pushed header has DF set
    /// for every frame of an offloaded flow: a packet sent without DF
    /// leaves unfragmentable, so an underlay hop on a smaller MTU drops it
    /// (and sends the gateway Fragmentation Needed) where software's
    /// outer header would have let it fragment. For underlays whose MTU is
    /// at least the public one plus the tunnel's overhead.
    Set,
}

impl OuterDf {
    /// Every choice, in the order the error messages list them.
    pub const ALL: [OuterDf; 2] = [OuterDf::Copy, OuterDf::Set];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            OuterDf::Copy => "copy",
            OuterDf::Set => "set",
        }
    }

    /// One line on what the choice does, for error messages.
    pub fn summary(self) -> &'static str {
        match self {
            OuterDf::Copy => {
                "the outer DF copied from the inner packet, as software does; packets without DF stay in software"
            }
            OuterDf::Set => {
                "DF set in every offloaded frame's outer header, whatever the inner packet's; for an underlay MTU at least the public one plus the tunnel's overhead"
            }
        }
    }
}

impl fmt::Display for OuterDf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allowed [`Offload::max_flows`]: a ConnectX-6 Dx holds millions, a
/// NIC's table is never larger than 2^24 here.
pub const OFFLOAD_MAX_FLOWS_RANGE: RangeInclusive<u32> = 1..=1 << 24;
/// Allowed [`Offload::tenant_share`], in percent.
pub const OFFLOAD_TENANT_SHARE_RANGE: RangeInclusive<u8> = 1..=100;
/// Allowed [`Offload::query_interval_ms`]: faster queries spend the
/// control loop on counters; slower ones must stay well below the
/// shortest flow timeout (`[flows] icmp_s` is at least 60 s).
pub const OFFLOAD_QUERY_INTERVAL_RANGE: RangeInclusive<u32> = 10..=30_000;
/// Allowed [`Offload::max_deny_rules`]: 0 keeps every firewall deny in
/// software.
pub const OFFLOAD_MAX_DENY_RULES_RANGE: RangeInclusive<u32> = 0..=65536;
/// Allowed [`Offload::queue_depth`].
pub const OFFLOAD_QUEUE_DEPTH_RANGE: RangeInclusive<u32> = 16..=1 << 20;

/// `[offload]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offload {
    /// `"auto"`, `"off"` or `"shadow"`. Default [`OffloadMode::Auto`].
    pub mode: OffloadMode,
    /// Hardware flows in total, over every port and tenant (a flow's two
    /// directions are one). Requests beyond it stay in software. Default
    /// 65536.
    pub max_flows: u32,
    /// The percentage of `max_flows` one tenant may hold, so that one
    /// tenant cannot take the NIC's whole table. 1..=100. Default 25.
    pub tenant_share: u8,
    /// Milliseconds between two queries of the offloaded flows' hardware
    /// counters, which keep those flows alive in software. Default 1000.
    pub query_interval_ms: u32,
    /// Slots of each worker's request queue (to the control plane) and of
    /// its feedback queue (back to it). A full request queue leaves the
    /// flow in software, counted. Also the depth of the control plane's
    /// flow queue on a port with the template API. Default 1024.
    pub queue_depth: u32,
    /// `"copy"` or `"set"`: the outer DF of offloaded frames toward a
    /// tenant. Default [`OuterDf::Copy`].
    pub outer_df: OuterDf,
    /// NIC rules for the tenants' firewall denies on their elastic IPs
    /// (drops and passes, on every full public port), all tenants
    /// together; one tenant may take `tenant_share` percent of them. 0:
    /// none. Default 4096.
    pub max_deny_rules: u32,
}

impl Default for Offload {
    fn default() -> Self {
        Offload {
            mode: OffloadMode::Auto,
            max_flows: 65536,
            tenant_share: 25,
            query_interval_ms: 1000,
            queue_depth: 1024,
            outer_df: OuterDf::Copy,
            max_deny_rules: 4096,
        }
    }
}

impl Offload {
    /// The hardware flows one tenant may hold: its share of `max_flows`,
    /// at least one.
    pub fn per_tenant(&self) -> u32 {
        ((u64::from(self.max_flows) * u64::from(self.tenant_share) / 100) as u32).max(1)
    }
}
