//! DPDK's own tools on a running tgw: `dpdk-telemetry.py` with tgw's
//! commands (`/tgw/...`), and `dpdk-dumpcap` through the packet-capture
//! server. See docs/dpdk-tools.md.
//!
//! Each command runs on DPDK's telemetry thread, asks the control loop for
//! a [`Report`] through an [`Asker`] (waiting at most [`ASK_TIMEOUT`]) and
//! answers from it; it never touches a port or the mempool itself. DPDK
//! 22.11 sends at most 16 KiB an answer, so what grows with tenants comes
//! a page or a name at a time: `/tgw/tenants,PAGE`, `/tgw/tenant,NAME`.

use std::time::Duration;

use ctl::config::Config;
use dataplane::counters::{FlowProto, TenantCounters};
use dataplane::DropReason;
use rte::telemetry::{self, Dict, Value};
use rte::{Eal, Pdump};
use tracing::{info, warn};

use crate::report::{Asker, Report};

/// How long a command waits for the control loop's report.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Tenants on a page of `/tgw/tenants`: 32 of the largest (32-character
/// names, every count 19 digits) take 12.5 of DPDK's 16 KiB.
pub const TENANTS_PAGE: usize = 32;

/// An answer, from a report and the command's parameter.
type Answer = fn(&Report, Option<&str>) -> Value;

/// tgw's commands, with their help (at most 127 bytes: DPDK's limit).
const COMMANDS: &[(&str, &str, Answer)] = &[
    (
        "/tgw/info",
        "tgw's version and commit, DPDK's version, worker and tenant counts, the mbuf pool",
        info_answer,
    ),
    (
        "/tgw/workers",
        "Per worker: frames, bytes, bursts, busy/idle TSC cycles, drops, flows, heartbeat. Param: a worker index for one",
        workers,
    ),
    (
        "/tgw/ports",
        "Per DPDK port id: tgw's name and role, ethdev packets, bytes, missed, errors, no-mbuf",
        ports,
    ),
    (
        "/tgw/drops",
        "Frames dropped, by reason, summed over the workers. Param: a worker index for one",
        drops,
    ),
    (
        "/tgw/flows",
        "Flow table use and capacity per worker; flows opened, ended and live by protocol",
        flows,
    ),
    (
        "/tgw/tenants",
        "Tenants by slot, 32 a page: tunnel frames and bytes, flows, NAT ports, refusals. Param: page number (0 first)",
        tenants,
    ),
    (
        "/tgw/tenant",
        "One tenant by name: /tgw/tenant,NAME. Its tunnel counts and flows by protocol",
        tenant,
    ),
];

/// Registers tgw's commands with DPDK's telemetry, each answering from a
/// report `asker` gets. Skipped (with a log line) when EAL runs without
/// telemetry.
pub fn register(config: &Config, asker: &Asker) {
    if config.eal_args().iter().any(|a| a == "--no-telemetry") {
        info!("DPDK telemetry is off (--no-telemetry): dpdk-telemetry.py cannot reach tgw");
        return;
    }
    for &(cmd, help, answer) in COMMANDS {
        let asker = asker.clone();
        let registered =
            telemetry::register(cmd, help, move |param| match asker.report(ASK_TIMEOUT) {
                Ok(report) => answer(&report, param),
                Err(e) => Value::error(e),
            });
        if let Err(e) = registered {
            warn!("telemetry command {cmd}: {e}");
        }
    }
    info!(
        "telemetry ready: dpdk-telemetry.py -f {} (commands /tgw/...)",
        config.eal.file_prefix
    );
}

/// Starts the packet-capture server when secondary processes can attach
/// (EAL keeps its runtime files, not `[eal] in_memory`, and its memory is
/// in hugepage files, not `hugepages = false`), so that
/// `dpdk-dumpcap` can capture a port; says in the log when it cannot.
/// Drop it after the ports are stopped.
pub fn capture<'e>(eal: &'e Eal, config: &Config) -> Option<Pdump<'e>> {
    let args = config.eal_args();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--in-memory") || has("--no-shconf") {
        info!("no packet capture: [eal] in_memory keeps no runtime files, so dpdk-dumpcap and dpdk-proc-info cannot attach");
        return None;
    }
    if has("--no-huge") {
        // EAL lets a secondary start, but it cannot map memory that is
        // not in hugepage files ("Cannot get hugepage information").
        info!("no packet capture: without hugepages ([eal] hugepages = false) dpdk-dumpcap and dpdk-proc-info cannot map tgw's memory");
        return None;
    }
    match Pdump::init(eal) {
        Ok(pdump) => {
            info!(
                "packet capture ready: dpdk-dumpcap --file-prefix {} -p -i PORT -w FILE",
                config.eal.file_prefix
            );
            Some(pdump)
        }
        Err(e) => {
            warn!("no packet capture (dpdk-dumpcap cannot attach): {e}");
            None
        }
    }
}

fn info_answer(r: &Report, _: Option<&str>) -> Value {
    let m = &r.mempool;
    Dict::new()
        .with("version", r.build.version)
        .with("commit", r.build.commit)
        .with("dpdk", r.build.dpdk.as_str())
        .with("workers", r.workers.len() as u64)
        .with("tenants", r.tenants.len() as u64)
        .with("tsc_hz", r.tsc_hz)
        .with("mbufs", m.size)
        .with("mbufs_available", m.available)
        .with("mbufs_in_use", m.in_use)
        .into()
}

/// A worker index from the parameter, or why it is not one.
fn worker_index(r: &Report, param: &str) -> Result<usize, Value> {
    match param.trim().parse::<usize>() {
        Ok(i) if i < r.workers.len() => Ok(i),
        _ => Err(Value::error(format!(
            "no worker {param:?}: give 0 to {}",
            r.workers.len().saturating_sub(1)
        ))),
    }
}

fn workers(r: &Report, param: Option<&str>) -> Value {
    let one = |i: usize| {
        let w = &r.workers[i];
        let sum = |f: fn(&dataplane::counters::PortCounters) -> u64| -> u64 {
            w.ports.iter().map(f).sum()
        };
        let cycles = w.cycles.get();
        let busy = w.busy_cycles.get();
        Dict::new()
            .with("lcore", r.worker_lcores.get(i).copied().unwrap_or(u32::MAX))
            .with("rx_packets", sum(|p| p.rx_packets.get()))
            .with("rx_bytes", sum(|p| p.rx_bytes.get()))
            .with("tx_packets", sum(|p| p.tx_packets.get()))
            .with("tx_bytes", sum(|p| p.tx_bytes.get()))
            .with("bursts", w.bursts.get())
            .with("loops", w.loops.get())
            .with("cycles", cycles)
            .with("busy_cycles", busy)
            .with("idle_cycles", cycles.saturating_sub(busy))
            .with("process_cycles", w.process_cycles.get())
            .with(
                "dropped",
                DropReason::ALL.iter().map(|&d| w.dropped(d)).sum::<u64>(),
            )
            .with("handed_off", w.handed_off.get())
            .with("punted", w.punted.get())
            .with("flows_in_use", w.flows_in_use.get())
            .with("flows_capacity", w.flows_capacity.get())
            .with("fragments_held", w.fragments_held.get())
            .with(
                "heartbeat_age_ms",
                r.heartbeat_age
                    .get(i)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            )
    };
    match param {
        Some(p) => match worker_index(r, p) {
            Ok(i) => one(i).into(),
            Err(e) => e,
        },
        None => (0..r.workers.len())
            .fold(Dict::new(), |d, i| d.with(&i.to_string(), one(i)))
            .into(),
    }
}

fn ports(r: &Report, _: Option<&str>) -> Value {
    r.ports
        .iter()
        .fold(Dict::new(), |d, p| {
            let s = &p.stats;
            d.with(
                &p.id.to_string(),
                Dict::new()
                    .with("name", p.name.as_str())
                    .with("role", p.role.as_str())
                    .with("rx_packets", s.ipackets)
                    .with("tx_packets", s.opackets)
                    .with("rx_bytes", s.ibytes)
                    .with("tx_bytes", s.obytes)
                    .with("rx_missed", s.imissed)
                    .with("rx_errors", s.ierrors)
                    .with("tx_errors", s.oerrors)
                    .with("rx_nombuf", s.rx_nombuf),
            )
        })
        .into()
}

fn drops(r: &Report, param: Option<&str>) -> Value {
    let workers = match param {
        Some(p) => match worker_index(r, p) {
            Ok(i) => i..i + 1,
            Err(e) => return e,
        },
        None => 0..r.workers.len(),
    };
    DropReason::ALL
        .iter()
        .fold(Dict::new(), |d, &reason| {
            let n: u64 = r.workers[workers.clone()]
                .iter()
                .map(|w| w.dropped(reason))
                .sum();
            d.with(reason.name(), n)
        })
        .into()
}

/// A tenant's count summed over the workers.
fn tenant_sum(r: &Report, slot: usize, f: impl Fn(&TenantCounters) -> u64) -> u64 {
    r.workers.iter().map(|w| w.tenant(slot).map_or(0, &f)).sum()
}

fn flows(r: &Report, _: Option<&str>) -> Value {
    let by_proto = |f: fn(&TenantCounters, usize) -> u64| {
        FlowProto::ALL.iter().fold(Dict::new(), |d, &p| {
            let n: u64 = r
                .tenants
                .iter()
                .map(|&(slot, _)| tenant_sum(r, slot, |c| f(c, p as usize)))
                .sum();
            d.with(p.name(), n)
        })
    };
    let per_worker = |f: fn(&dataplane::WorkerCounters) -> u64| -> Vec<u64> {
        r.workers.iter().map(|w| f(w)).collect()
    };
    let in_use = per_worker(|w| w.flows_in_use.get());
    let capacity = per_worker(|w| w.flows_capacity.get());
    Dict::new()
        .with("in_use", in_use.iter().sum::<u64>())
        .with("capacity", capacity.iter().sum::<u64>())
        .with("in_use_by_worker", in_use)
        .with("capacity_by_worker", capacity)
        .with("opened", by_proto(|c, p| c.flows_opened[p].get()))
        .with("ended", by_proto(|c, p| c.flows_ended[p].get()))
        .into()
}

/// What a page of `/tgw/tenants` says of one tenant.
fn tenant_summary(r: &Report, slot: usize, name: &str) -> Dict {
    let t = |f: fn(&TenantCounters) -> u64| tenant_sum(r, slot, f);
    Dict::new()
        .with("name", name)
        .with("from_tunnel_packets", t(|c| c.from_tunnel_packets.get()))
        .with("from_tunnel_bytes", t(|c| c.from_tunnel_bytes.get()))
        .with("to_tunnel_packets", t(|c| c.to_tunnel_packets.get()))
        .with("to_tunnel_bytes", t(|c| c.to_tunnel_bytes.get()))
        .with("flows_opened", t(TenantCounters::flows_created))
        .with("flows_ended", t(TenantCounters::flows_expired))
        .with("flows_live", t(TenantCounters::live_flows))
        .with("nat_ports", t(|c| c.nat_ports.get()))
        .with("quota_refused", t(|c| c.quota_refused.get()))
        .with("unreplied_refused", t(|c| c.unreplied_refused.get()))
}

fn tenants(r: &Report, param: Option<&str>) -> Value {
    let count = r.tenants.len();
    let pages = count.div_ceil(TENANTS_PAGE).max(1);
    let page = match param.map(|p| p.trim().parse::<usize>()) {
        None => 0,
        Some(Ok(p)) if p < pages => p,
        Some(_) => {
            return Value::error(format!(
                "no page {:?}: {count} tenants make pages 0 to {}",
                param.unwrap_or_default(),
                pages - 1
            ))
        }
    };
    let list = r
        .tenants
        .iter()
        .skip(page * TENANTS_PAGE)
        .take(TENANTS_PAGE)
        .fold(Dict::new(), |d, &(slot, ref name)| {
            d.with(&slot.to_string(), tenant_summary(r, slot, name))
        });
    Dict::new()
        .with("count", count as u64)
        .with("page", page as u64)
        .with("pages", pages as u64)
        .with("page_size", TENANTS_PAGE as u64)
        .with("tenants", list)
        .into()
}

fn tenant(r: &Report, param: Option<&str>) -> Value {
    let Some(name) = param.map(str::trim) else {
        return Value::error("give a tenant's name: /tgw/tenant,NAME");
    };
    let Some(&(slot, _)) = r.tenants.iter().find(|(_, n)| n == name) else {
        return Value::error(format!("no tenant {name:?}"));
    };
    let by_proto = FlowProto::ALL.iter().fold(Dict::new(), |d, &p| {
        let i = p as usize;
        let opened = tenant_sum(r, slot, |c| c.flows_opened[i].get());
        let ended = tenant_sum(r, slot, |c| c.flows_ended[i].get());
        d.with(
            p.name(),
            Dict::new()
                .with("opened", opened)
                .with("ended", ended)
                .with("live", opened.saturating_sub(ended)),
        )
    });
    tenant_summary(r, slot, name)
        .with("slot", slot as u64)
        .with(
            "unreplied_live",
            tenant_sum(r, slot, TenantCounters::live_unreplied),
        )
        .with("flows", by_proto)
        .into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dataplane::WorkerCounters;
    use serde_json::Value as Json;

    use super::*;
    use crate::report::{BuildInfo, MempoolReport};

    /// Flows each tenant opened of each protocol on each worker, and
    /// frames each worker dropped for each reason: large, but not so
    /// large that their sums overflow.
    const FLOWS: u64 = 1 << 40;
    const DROPS: u64 = 1 << 50;

    /// A report of `tenants` tenants (32-character names) on two workers,
    /// every count near its largest: the longest answers there can be.
    fn report(tenants: usize) -> Report {
        report_of(tenants, 2)
    }

    fn report_of(tenants: usize, n: usize) -> Report {
        let workers: Vec<_> = (0..n)
            .map(|_| {
                let w = WorkerCounters::new(tenants);
                for t in w.tenants.iter() {
                    for c in [
                        &t.from_tunnel_packets,
                        &t.from_tunnel_bytes,
                        &t.to_tunnel_packets,
                        &t.to_tunnel_bytes,
                        &t.nat_ports,
                        &t.quota_refused,
                        &t.unreplied_refused,
                        &t.unreplied_opened,
                    ] {
                        c.set(u64::MAX / 4);
                    }
                    for c in t.flows_opened.iter() {
                        c.set(FLOWS);
                    }
                }
                for c in w.drops.iter() {
                    c.set(DROPS);
                }
                Arc::new(w)
            })
            .collect();
        Report {
            ports: Vec::new(),
            workers,
            worker_lcores: (1..=n as u32).collect(),
            heartbeat_age: vec![Duration::from_millis(3); n],
            tenants: (0..tenants).map(|i| (i, format!("{i:0>32}"))).collect(),
            tsc_hz: 2_000_000_000,
            tsc: 0,
            mempool: MempoolReport::default(),
            build: BuildInfo {
                version: "0",
                commit: "c",
                dpdk: "DPDK 22.11.11".into(),
            },
            resolver: Default::default(),
            inject_full: 0,
            neighbours: Vec::new(),
            rules: Vec::new(),
            failure: None,
            offload: Default::default(),
        }
    }

    /// What a client reads, as DPDK would send it: the value under the
    /// command's name.
    fn ask(r: &Report, cmd: &str, param: Option<&str>) -> Json {
        let (_, _, answer) = COMMANDS.iter().find(|c| c.0 == cmd).unwrap();
        let raw = telemetry::reply(cmd, answer(r, param));
        let reply: Json = serde_json::from_str(&raw).unwrap();
        reply[cmd].clone()
    }

    #[test]
    fn every_page_of_ten_thousand_tenants_fits_in_one_answer() {
        let r = report(10_000);
        let first = ask(&r, "/tgw/tenants", None);
        assert_eq!(first["count"], 10_000);
        assert_eq!(first["pages"], 10_000usize.div_ceil(TENANTS_PAGE));
        let pages = first["pages"].as_u64().unwrap() as usize;
        let mut seen = 0;
        for page in 0..pages {
            let v = ask(&r, "/tgw/tenants", Some(&page.to_string()));
            let list = v["tenants"]
                .as_object()
                .unwrap_or_else(|| panic!("page {page}: {v}"));
            assert_eq!(v["page"], page);
            for (slot, t) in list {
                assert_eq!(t["name"], format!("{slot:0>32}"));
                assert_eq!(t["to_tunnel_packets"], (u64::MAX / 4) * 2);
            }
            seen += list.len();
        }
        assert_eq!(seen, 10_000);
        assert!(ask(&r, "/tgw/tenants", Some(&first["pages"].to_string()))["error"].is_string());
        assert!(ask(&r, "/tgw/tenants", Some("x"))["error"].is_string());
    }

    #[test]
    fn one_tenant_by_name() {
        let r = report(3);
        let name = format!("{:0>32}", 1);
        let v = ask(&r, "/tgw/tenant", Some(&name));
        assert_eq!(v["slot"], 1);
        assert_eq!(v["flows"]["tcp"]["opened"], FLOWS * 2);
        assert!(ask(&r, "/tgw/tenant", Some("nobody"))["error"].is_string());
        assert!(ask(&r, "/tgw/tenant", None)["error"].is_string());
    }

    #[test]
    fn every_command_fits_at_its_largest() {
        let r = report(10_000);
        for &(cmd, help, _) in COMMANDS {
            assert!(help.len() <= telemetry::limits::STRING, "{cmd}'s help");
            let param = (cmd == "/tgw/tenant").then(|| format!("{:0>32}", 9_999));
            let v = ask(&r, cmd, param.as_deref());
            assert!(v.get("error").is_none(), "{cmd}: {v}");
        }
        let drops = ask(&r, "/tgw/drops", None);
        assert_eq!(drops.as_object().unwrap().len(), DropReason::COUNT);
        assert_eq!(drops["runt"], DROPS * 2);
        assert_eq!(ask(&r, "/tgw/drops", Some("1"))["runt"], DROPS);
        assert_eq!(
            ask(&r, "/tgw/flows", None)["opened"]["udp"],
            FLOWS * 2 * 10_000
        );
        assert_eq!(ask(&r, "/tgw/workers", Some("1"))["lcore"], 2);
        assert!(ask(&r, "/tgw/workers", Some("2"))["error"].is_string());
    }

    /// With as many workers as DPDK has lcores, `/tgw/workers` is too
    /// long for one answer: it says so and where to look, and each
    /// worker answers on its own.
    #[test]
    fn all_workers_at_once_may_not_fit_but_each_does() {
        let r = report_of(1, ctl::config::MAX_LCORE as usize - 1);
        let all = ask(&r, "/tgw/workers", None);
        let why = all["error"].as_str().unwrap_or_else(|| panic!("{all}"));
        assert!(why.contains("/help,/tgw/workers"), "{why}");
        let last = ask(&r, "/tgw/workers", Some("126"));
        assert_eq!(last["lcore"], 127);
        // Up to 24 workers fit at once, at their largest.
        let r = report_of(1, 24);
        assert!(ask(&r, "/tgw/workers", None)["error"].is_null());
    }
}
