//! `[icmp]`, `[tcp]` and `[arp]`: the packet path's settings.

use super::{int, Report};
use crate::config::raw::{RawArp, RawIcmp, RawTcp, Section};
use crate::config::{
    Arp, Icmp, Tcp, ARP_ENTRIES_RANGE, ARP_MAX_PENDING_RANGE, ARP_RETRIES_RANGE, ARP_RETRY_MS_MIN,
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
        " (errors per second and worker; 0 disables them)",
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
    let arp = Arp {
        reachable_s: reachable_s?,
        retry_ms: retry_ms?,
        max_pending: max_pending?,
        retries: retries?,
        entries: entries?,
    };
    section.sound().then_some(arp)
}
