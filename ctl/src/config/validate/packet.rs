//! `[icmp]`, `[tcp]` and `[arp]`: the packet path's settings.

use super::{int, Report};
use crate::config::raw::{RawArp, RawFlows, RawIcmp, RawTcp, Section};
use crate::config::{
    Arp, Flows, Icmp, Tcp, ARP_ENTRIES_RANGE, ARP_MAX_HELD_RANGE, ARP_MAX_PENDING_RANGE,
    ARP_RETRIES_RANGE, ARP_RETRY_MS_MIN, FLOWS_CAPACITY_RANGE,
};

pub(super) fn icmp(raw: Option<&Section<RawIcmp>>, r: &mut Report) -> Option<Icmp> {
    let d = Icmp::default();
    let Some(section) = raw else {
        return Some(d);
    };
    let v = &section.value;
    let rate_per_sec = int(
        v.rate_per_sec.as_ref(),
        d.rate_per_sec,
        0,
        i64::from(u32::MAX),
        "[icmp] rate_per_sec",
        " (errors per second, per worker, tenant and side; 0 disables them)",
        r,
    );
    let burst = int(
        v.burst.as_ref(),
        d.burst,
        0,
        i64::from(u32::MAX),
        "[icmp] burst",
        "",
        r,
    );
    let (rate_per_sec, burst) = (rate_per_sec?, burst?);
    if let Some(b) = v.burst.as_ref().filter(|_| burst == 0 && rate_per_sec > 0) {
        r.at(
            b.span().start,
            format!("[icmp] burst 0 lets no error out although rate_per_sec is {rate_per_sec}; use a burst of at least 1, or rate_per_sec = 0 to disable generated errors"),
        );
        return None;
    }
    section.sound().then_some(Icmp {
        rate_per_sec,
        burst,
    })
}

pub(super) fn tcp(raw: Option<&Section<RawTcp>>) -> Option<Tcp> {
    let d = Tcp::default();
    let Some(section) = raw else {
        return Some(d);
    };
    let mss_clamp = section
        .value
        .mss_clamp
        .as_ref()
        .map_or(d.mss_clamp, |v| *v.get_ref());
    section.sound().then_some(Tcp { mss_clamp })
}

pub(super) fn arp(raw: Option<&Section<RawArp>>, r: &mut Report) -> Option<Arp> {
    let d = Arp::default();
    let Some(section) = raw else {
        return Some(d);
    };
    let v = &section.value;
    let reachable_s = int(
        v.reachable_s.as_ref(),
        d.reachable_s,
        1,
        i64::from(u32::MAX),
        "[arp] reachable_s",
        " seconds",
        r,
    );
    let retry_ms = int(
        v.retry_ms.as_ref(),
        d.retry_ms,
        i64::from(ARP_RETRY_MS_MIN),
        i64::from(u32::MAX),
        "[arp] retry_ms",
        " ms (faster retries flood a link whose neighbour is down)",
        r,
    );
    let max_pending = int(
        v.max_pending.as_ref(),
        d.max_pending,
        i64::from(*ARP_MAX_PENDING_RANGE.start()),
        i64::from(*ARP_MAX_PENDING_RANGE.end()),
        "[arp] max_pending",
        " frames per unresolved neighbour",
        r,
    );
    let retries = int(
        v.retries.as_ref(),
        d.retries,
        i64::from(*ARP_RETRIES_RANGE.start()),
        i64::from(*ARP_RETRIES_RANGE.end()),
        "[arp] retries",
        " requests",
        r,
    );
    let entries = int(
        v.entries.as_ref(),
        d.entries,
        i64::from(*ARP_ENTRIES_RANGE.start()),
        i64::from(*ARP_ENTRIES_RANGE.end()),
        "[arp] entries",
        " neighbours",
        r,
    );
    // The shares default to, and must fit in, what the totals allow.
    let shares = Arp::defaults_for(
        entries.unwrap_or(d.entries),
        v.max_held
            .as_ref()
            .and_then(|h| u32::try_from(*h.get_ref()).ok())
            .filter(|h| ARP_MAX_HELD_RANGE.contains(h))
            .unwrap_or(d.max_held),
    );
    let port_entries = int(
        v.port_entries.as_ref(),
        shares.port_entries,
        1,
        i64::from(shares.entries) - 1,
        "[arp] port_entries",
        " neighbours (of [arp] entries: the rest is for hosts inside tunnels)",
        r,
    );
    // The default share fits whatever port_entries leaves: a default
    // `config show` writes out must read back.
    let tenants_share = (shares.entries - port_entries.unwrap_or(shares.port_entries)).max(1);
    let per_tenant = int(
        v.per_tenant.as_ref(),
        shares.per_tenant.min(tenants_share),
        1,
        i64::from(tenants_share),
        "[arp] per_tenant",
        " hosts (at most [arp] entries - port_entries, the tenants' share)",
        r,
    );
    let max_held = int(
        v.max_held.as_ref(),
        d.max_held,
        i64::from(*ARP_MAX_HELD_RANGE.start()),
        i64::from(*ARP_MAX_HELD_RANGE.end()),
        "[arp] max_held",
        " frames held in all",
        r,
    );
    let tenants_held = shares.max_held - shares.max_held / 4;
    let held_per_tenant = int(
        v.held_per_tenant.as_ref(),
        shares.held_per_tenant,
        1,
        i64::from(tenants_held),
        "[arp] held_per_tenant",
        " frames (a quarter of [arp] max_held is kept for frames of no tenant)",
        r,
    );
    let arp = Arp {
        reachable_s: reachable_s?,
        retry_ms: retry_ms?,
        max_pending: max_pending?,
        retries: retries?,
        entries: entries?,
        port_entries: port_entries?,
        per_tenant: per_tenant?,
        max_held: max_held?,
        held_per_tenant: held_per_tenant?,
    };
    section.sound().then_some(arp)
}

pub(super) fn flows(raw: Option<&Section<RawFlows>>, r: &mut Report) -> Option<Flows> {
    let d = Flows::default();
    let Some(section) = raw else {
        return Some(d);
    };
    let v = &section.value;
    let capacity = int(
        v.capacity.as_ref(),
        d.capacity,
        i64::from(*FLOWS_CAPACITY_RANGE.start()),
        i64::from(*FLOWS_CAPACITY_RANGE.end()),
        "[flows] capacity",
        " flows per worker",
        r,
    );
    let cap = capacity.unwrap_or(d.capacity);
    let per_tenant = int(
        v.per_tenant.as_ref(),
        (cap / 4).max(1),
        1,
        i64::from(cap),
        "[flows] per_tenant",
        " flows (at most capacity: it is a share of each worker's table)",
        r,
    );
    let share = per_tenant.unwrap_or((cap / 4).max(1));
    let unreplied_per_tenant = int(
        v.unreplied_per_tenant.as_ref(),
        (share / 4).max(1),
        1,
        i64::from(share),
        "[flows] unreplied_per_tenant",
        " flows (at most per_tenant: it is a share of each tenant's quota)",
        r,
    );
    let unreplied_total = int(
        v.unreplied_total.as_ref(),
        (cap / 2).max(1),
        1,
        i64::from(cap),
        "[flows] unreplied_total",
        " flows (at most capacity: it is a share of each worker's table)",
        r,
    );
    // The RFCs' floors: a NAT that forgets sooner breaks applications.
    let mut timeout = |value, default, floor: u32, name, why| {
        int(
            value,
            default,
            i64::from(floor),
            i64::from(u32::MAX),
            name,
            why,
            r,
        )
    };
    let tcp_established_s = timeout(
        v.tcp_established_s.as_ref(),
        d.tcp_established_s,
        7440,
        "[flows] tcp_established_s",
        " seconds (RFC 5382 REQ-5: at least 2 hours 4 minutes)",
    );
    let tcp_transitory_s = timeout(
        v.tcp_transitory_s.as_ref(),
        d.tcp_transitory_s,
        240,
        "[flows] tcp_transitory_s",
        " seconds (RFC 5382 REQ-5: at least 4 minutes)",
    );
    let udp_s = timeout(
        v.udp_s.as_ref(),
        d.udp_s,
        120,
        "[flows] udp_s",
        " seconds (RFC 4787 REQ-5: at least 2 minutes)",
    );
    let icmp_s = timeout(
        v.icmp_s.as_ref(),
        d.icmp_s,
        60,
        "[flows] icmp_s",
        " seconds (RFC 5508 REQ-2: at least 60 seconds)",
    );
    let unreplied_s = int(
        v.unreplied_s.as_ref(),
        d.unreplied_s,
        1,
        i64::from(tcp_transitory_s.unwrap_or(d.tcp_transitory_s)),
        "[flows] unreplied_s",
        " seconds (at most tcp_transitory_s: it shortens a flood's flows)",
        r,
    );
    let flows = Flows {
        capacity: capacity?,
        per_tenant: per_tenant?,
        unreplied_per_tenant: unreplied_per_tenant?,
        unreplied_total: unreplied_total?,
        unreplied_s: unreplied_s?,
        tcp_established_s: tcp_established_s?,
        tcp_transitory_s: tcp_transitory_s?,
        udp_s: udp_s?,
        icmp_s: icmp_s?,
    };
    section.sound().then_some(flows)
}
