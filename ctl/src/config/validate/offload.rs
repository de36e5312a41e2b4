//! `[offload]`: whether established flows move to the NIC, and the bounds
//! of what they may take there.

use super::{int, Report};
use crate::config::raw::{RawOffload, Section};
use crate::config::{
    Offload, OffloadMode, OuterDf, OFFLOAD_MAX_DENY_RULES_RANGE, OFFLOAD_MAX_FLOWS_RANGE,
    OFFLOAD_QUERY_INTERVAL_RANGE, OFFLOAD_QUEUE_DEPTH_RANGE, OFFLOAD_TENANT_SHARE_RANGE,
};

pub(super) fn offload(raw: Option<&Section<RawOffload>>, r: &mut Report) -> Option<Offload> {
    let d = Offload::default();
    let Some(section) = raw else {
        return Some(d);
    };
    let v = &section.value;
    let mode = match &v.mode {
        None => Some(d.mode),
        Some(m) => {
            let s = m.get_ref();
            let mode = OffloadMode::ALL.into_iter().find(|o| o.as_str() == s);
            if mode.is_none() {
                let valid: Vec<String> = OffloadMode::ALL
                    .iter()
                    .map(|&o| format!("{:?} ({})", o.as_str(), o.summary()))
                    .collect();
                r.at(
                    m.span().start,
                    format!("[offload] unknown mode {s:?}; use {}", valid.join(", or ")),
                );
            }
            mode
        }
    };
    let max_flows = int(
        v.max_flows.as_ref(),
        d.max_flows,
        i64::from(*OFFLOAD_MAX_FLOWS_RANGE.start()),
        i64::from(*OFFLOAD_MAX_FLOWS_RANGE.end()),
        "[offload] max_flows",
        " hardware flows over all ports and tenants",
        r,
    );
    let tenant_share = int(
        v.tenant_share.as_ref(),
        d.tenant_share,
        i64::from(*OFFLOAD_TENANT_SHARE_RANGE.start()),
        i64::from(*OFFLOAD_TENANT_SHARE_RANGE.end()),
        "[offload] tenant_share",
        " (percent of max_flows one tenant may hold)",
        r,
    );
    let query_interval_ms = int(
        v.query_interval_ms.as_ref(),
        d.query_interval_ms,
        i64::from(*OFFLOAD_QUERY_INTERVAL_RANGE.start()),
        i64::from(*OFFLOAD_QUERY_INTERVAL_RANGE.end()),
        "[offload] query_interval_ms",
        " ms (the hardware counters keep offloaded flows alive: at most 30 s, well below the shortest flow timeout)",
        r,
    );
    let queue_depth = int(
        v.queue_depth.as_ref(),
        d.queue_depth,
        i64::from(*OFFLOAD_QUEUE_DEPTH_RANGE.start()),
        i64::from(*OFFLOAD_QUEUE_DEPTH_RANGE.end()),
        "[offload] queue_depth",
        " slots of each worker's request and feedback queue",
        r,
    );
    let max_deny_rules = int(
        v.max_deny_rules.as_ref(),
        d.max_deny_rules,
        i64::from(*OFFLOAD_MAX_DENY_RULES_RANGE.start()),
        i64::from(*OFFLOAD_MAX_DENY_RULES_RANGE.end()),
        "[offload] max_deny_rules",
        " NIC rules for the tenants' firewall denies (0: none)",
        r,
    );
    let outer_df = match &v.outer_df {
        None => Some(d.outer_df),
        Some(m) => {
            let s = m.get_ref();
            let df = OuterDf::ALL.into_iter().find(|o| o.as_str() == s);
            if df.is_none() {
                let valid: Vec<String> = OuterDf::ALL
                    .iter()
                    .map(|&o| format!("{:?} ({})", o.as_str(), o.summary()))
                    .collect();
                r.at(
                    m.span().start,
                    format!(
                        "[offload] unknown outer_df {s:?}; use {}",
                        valid.join(", or ")
                    ),
                );
            }
            df
        }
    };
    let offload = Offload {
        mode: mode?,
        max_flows: max_flows?,
        tenant_share: tenant_share?,
        query_interval_ms: query_interval_ms?,
        queue_depth: queue_depth?,
        outer_df: outer_df?,
        max_deny_rules: max_deny_rules?,
    };
    section.sound().then_some(offload)
}
