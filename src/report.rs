//! What tgw counts, gathered in one place: [`Report`] is taken on the
//! control thread (the only one that sees the ports, the resolver and the
//! mempool) and read everywhere else: printed when tgw stops, answered to
//! `tgwctl stats`, rendered for Prometheus and DPDK's telemetry. Other
//! threads ask for one through an [`Asker`]; the control loop answers the
//! asks it finds at each tick with one report between them.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use ctl::config::Role;
use dataplane::neighbour::Lookup;
use dataplane::resolver::ResolverStats;
use dataplane::tables::Tables;
use dataplane::{DropReason, WorkerCounters};
use rte::{MacAddr, PortStats};

use crate::supervise::{Cause, WorkerFailure};

/// Everything tgw counts, as it stands when taken. The workers' counters
/// are shared, not copied: they read as they are when read.
pub struct Report {
    pub ports: Vec<PortReport>,
    pub workers: Vec<Arc<WorkerCounters>>,
    pub worker_lcores: Vec<u32>,
    /// How long ago each worker's heartbeat (`loops`) last moved, as the
    /// control loop last saw it, by worker.
    pub heartbeat_age: Vec<Duration>,
    /// Tenants as they are when the report is taken: slot and name.
    pub tenants: Vec<(usize, String)>,
    pub tsc_hz: u64,
    /// The TSC when the report was taken: with `tsc_hz`, what a reader of
    /// two reports divides by.
    pub tsc: u64,
    pub mempool: MempoolReport,
    pub build: BuildInfo,
    pub resolver: ResolverStats,
    /// Frames the control plane could not put on the inject ring (full):
    /// ARP requests, released held frames, proxy replies, cut fragments.
    pub inject_full: u64,
    pub neighbours: Vec<NeighbourReport>,
    pub rules: Vec<RuleReport>,
    /// The worker whose death stopped tgw, if one did.
    pub failure: Option<WorkerFailure>,
    /// Flow offload: levels, flows by state, requests and refusals.
    pub offload: crate::offload::report::OffloadReport,
}

/// Flows one firewall rule, or a tenant's default policy, decided, summed
/// over the workers.
pub struct RuleReport {
    /// Its tenant: an index into [`Report::tenants`].
    pub tenant: usize,
    /// The rule, `None` for a default policy. Formatted only by who shows
    /// it ([`RuleReport::text`]): at 10k tenants, formatting every rule
    /// would be most of the time the control loop spends on a report.
    pub rule: Option<dataplane::firewall::Rule>,
    /// Its place in the tenant's rules (`None` for a default).
    pub position: Option<u32>,
    /// Which flows it decides, and how (for the metrics' labels).
    pub direction: dataplane::firewall::Direction,
    pub action: dataplane::firewall::Action,
    pub flows: u64,
}

impl RuleReport {
    /// The rule as text, or `default in` / `default out`.
    pub fn text(&self) -> String {
        match &self.rule {
            Some(rule) => rule.to_string(),
            None => format!("default {}", self.direction),
        }
    }
}

/// One entry of the neighbour table when the daemon stopped.
pub struct NeighbourReport {
    /// The port's name, or the tenant's for a host inside its tunnels.
    pub port: Option<String>,
    pub tenant: Option<String>,
    pub ip: std::net::Ipv4Addr,
    pub state: Lookup,
    pub is_static: bool,
}

pub struct PortReport {
    pub name: String,
    pub role: Role,
    pub id: u16,
    pub stats: PortStats,
    /// The PMD's extended statistics, by its names.
    pub xstats: Vec<(String, u64)>,
}

/// The mbuf pool when the report was taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct MempoolReport {
    pub size: u32,
    pub available: u32,
    pub in_use: u32,
}

/// What this tgw is, for `tgw_build_info`.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: &'static str,
    /// The git commit tgw was built from (`unknown` outside a checkout).
    pub commit: &'static str,
    /// The DPDK it runs on (`rte_version()`).
    pub dpdk: String,
}

impl BuildInfo {
    pub fn this() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("TGW_COMMIT"),
            dpdk: rte::version(),
        }
    }
}

/// What each firewall rule and default policy decided, over all workers,
/// with the packets the NIC's deny rules dropped for it (`nic`: they
/// never reach a worker; docs/offload.md, "Deny rules on the NIC"); each
/// row's `tenant` counts the tenants in `tables.tenants.iter()`'s order,
/// the order [`Report::tenants`] is taken in.
pub fn rule_report(
    tables: &Tables,
    workers: &[Arc<WorkerCounters>],
    nic: &crate::offload::report::DenyDrops,
) -> Vec<RuleReport> {
    use dataplane::firewall::Direction as FwDir;
    let mut out = Vec::new();
    for (tenant, t) in tables.tenants.iter().enumerate() {
        for rule in &t.firewall.rules {
            out.push(RuleReport {
                tenant,
                rule: Some(*rule),
                position: Some(rule.position),
                direction: rule.direction,
                action: rule.action,
                flows: workers
                    .iter()
                    .map(|w| w.rules.rule(rule.counter))
                    .sum::<u64>()
                    + nic.rule(rule.counter.0),
            });
        }
        for dir in [FwDir::In, FwDir::Out] {
            out.push(RuleReport {
                tenant,
                rule: None,
                position: None,
                direction: dir,
                action: match dir {
                    FwDir::In => t.firewall.default_in,
                    FwDir::Out => t.firewall.default_out,
                },
                flows: workers
                    .iter()
                    .map(|w| w.rules.default_policy(t.id, dir))
                    .sum::<u64>()
                    + if dir == FwDir::In {
                        nic.default_in(t.id.0)
                    } else {
                        0
                    },
            });
        }
    }
    out
}

/// How many asks may wait for the control loop at once; past that,
/// [`Asker::report`] says [`AskError::Busy`] at once.
pub const ASKS: usize = 16;

/// Why no report came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskError {
    /// [`ASKS`] asks are already waiting.
    Busy,
    /// The control loop did not answer in time (or is gone).
    Timeout,
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AskError::Busy => "too many requests are waiting for the control loop",
            AskError::Timeout => "the control loop did not answer in time",
        })
    }
}

/// A thread's way to a [`Report`]: cloned for each thread that needs one.
#[derive(Clone)]
pub struct Asker {
    tx: SyncSender<SyncSender<Arc<Report>>>,
}

/// The control loop's end of the asks.
pub struct Asks {
    rx: Receiver<SyncSender<Arc<Report>>>,
}

/// A bounded queue of asks: its [`Asker`] for other threads, its [`Asks`]
/// for the control loop.
pub fn asks() -> (Asker, Asks) {
    let (tx, rx) = mpsc::sync_channel(ASKS);
    (Asker { tx }, Asks { rx })
}

impl Asker {
    /// A report taken after this call, waiting at most `timeout`.
    pub fn report(&self, timeout: Duration) -> Result<Arc<Report>, AskError> {
        let (reply, answer) = mpsc::sync_channel(1);
        match self.tx.try_send(reply) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AskError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(AskError::Timeout),
        }
        answer.recv_timeout(timeout).map_err(|_| AskError::Timeout)
    }
}

impl Asks {
    /// Answers every waiting ask with one report, taken only if one waits.
    pub fn serve(&self, take: impl FnOnce() -> Report) {
        let Ok(first) = self.rx.try_recv() else {
            return;
        };
        let report = Arc::new(take());
        let _ = first.send(Arc::clone(&report));
        while let Ok(reply) = self.rx.try_recv() {
            let _ = reply.send(Arc::clone(&report));
        }
    }
}

impl Report {
    /// The name of the `i`th tenant of [`Report::tenants`] (what a
    /// [`RuleReport`] points at); empty if there is none.
    pub fn tenant_name(&self, i: usize) -> &str {
        self.tenants.get(i).map_or("", |(_, name)| name)
    }

    /// Frames every worker received, summed.
    fn sum(&self, f: impl Fn(&WorkerCounters) -> u64) -> u64 {
        self.workers.iter().map(|w| f(w)).sum()
    }

    /// A table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        if let Some(f) = &self.failure {
            let _ = writeln!(out, "tgw stopped because {f}");
        }
        let _ = writeln!(
            out,
            "{:<12} {:<9} {:>4} {:>14} {:>14} {:>10} {:>10} {:>10}",
            "port", "role", "id", "rx-packets", "tx-packets", "rx-missed", "rx-errors", "tx-errors"
        );
        for p in &self.ports {
            let s = &p.stats;
            let _ = writeln!(
                out,
                "{:<12} {:<9} {:>4} {:>14} {:>14} {:>10} {:>10} {:>10}",
                p.name,
                p.role.as_str(),
                p.id,
                s.ipackets,
                s.opackets,
                s.imissed,
                s.ierrors,
                s.oerrors
            );
        }
        let rx = self.sum(|w| w.ports.iter().map(|p| p.rx_packets.get()).sum());
        let tx = self.sum(|w| w.ports.iter().map(|p| p.tx_packets.get()).sum());
        let _ = writeln!(out, "workers: {rx} frames in, {tx} out");
        for &(i, ref name) in &self.tenants {
            let t = |f: fn(&dataplane::counters::TenantCounters) -> u64| {
                self.sum(|w| w.tenant(i).map_or(0, f))
            };
            let _ = writeln!(
                out,
                "  tenant {name}: {} frames from its tunnels, {} into them; {} flows opened, {} ended; {} source NAT ports in use",
                t(|c| c.from_tunnel_packets.get()),
                t(|c| c.to_tunnel_packets.get()),
                t(|c| c.flows_created()),
                t(|c| c.flows_expired()),
                t(|c| c.nat_ports.get())
            );
        }
        let replies = [
            ("ARP", self.sum(|w| w.arp_replies.get())),
            ("echo", self.sum(|w| w.echo_replies.get())),
            ("ICMP error", self.sum(|w| w.icmp_errors.get())),
            ("host unreachable", self.sum(|w| w.host_unreachable.get())),
        ];
        for (what, n) in replies {
            if n > 0 {
                let _ = writeln!(out, "  {what} replies sent: {n}");
            }
        }
        for kind in dataplane::ip_options::Forwarded::ALL {
            let n = self.sum(|w| w.ip_options[kind as usize].get());
            if n > 0 {
                let _ = writeln!(out, "  forwarded with IP options ({}): {n}", kind.name());
            }
        }
        for &reason in DropReason::ALL {
            let n = self.sum(|w| w.dropped(reason));
            if n > 0 {
                let _ = writeln!(out, "  dropped ({}): {n}", reason.name());
            }
        }
        let r = &self.resolver;
        if r.requests + r.learned + r.ignored + r.malformed > 0 {
            let _ = writeln!(
                out,
                "  neighbours: {} ARP requests, {} learned, {} failed, {} expired; held frames {} released, {} dropped",
                r.requests, r.learned, r.failed, r.expired, r.released, r.dropped
            );
        }
        if r.dropped + r.table_full > 0 {
            let _ = writeln!(
                out,
                "  not held: {} for the neighbour's max_pending, {} for max_held, {} for the tenants' share, {} for the ports' share, {} for held_per_tenant, {} for a failed neighbour; no neighbour slot: {} ports' share, {} tenants' share, {} per_tenant, {} buckets",
                r.hold_neighbour_full, r.hold_full, r.hold_tenants_full, r.hold_ports_full, r.hold_tenant_limit, r.hold_failed,
                r.table.ports_full, r.table.tenants_full, r.table.tenant_limit, r.table.buckets_full
            );
        }
        for r in self.rules.iter().filter(|r| r.flows > 0) {
            let _ = writeln!(
                out,
                "  firewall {}: {}: {} flows",
                self.tenant_name(r.tenant),
                r.text(),
                r.flows
            );
        }
        if rx > 0 {
            let cycles = self.sum(|w| w.process_cycles.get());
            let busy = self.sum(|w| w.busy_cycles.get());
            let _ = writeln!(
                out,
                "  cycles per frame: {:.1} processing, {:.1} with rx/tx",
                cycles as f64 / rx as f64,
                busy as f64 / rx as f64
            );
        }
        out
    }

    /// The same as JSON, for tools (tgw-perf reads it).
    pub fn json(&self) -> serde_json::Value {
        let ports: Vec<_> = self
            .ports
            .iter()
            .map(|p| {
                let s = &p.stats;
                serde_json::json!({
                    "name": p.name, "role": p.role.as_str(), "id": p.id,
                    "rx_packets": s.ipackets, "tx_packets": s.opackets,
                    "rx_bytes": s.ibytes, "tx_bytes": s.obytes,
                    "rx_missed": s.imissed, "rx_errors": s.ierrors,
                    "tx_errors": s.oerrors, "rx_nombuf": s.rx_nombuf,
                })
            })
            .collect();
        let workers: Vec<_> = self
            .workers
            .iter()
            .zip(&self.worker_lcores)
            .map(|(w, lcore)| {
                let drops: serde_json::Map<_, _> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_owned(), w.dropped(*r).into()))
                    .collect();
                let tenants: serde_json::Map<_, _> = self
                    .tenants
                    .iter()
                    .filter_map(|&(i, ref name)| {
                        let c = w.tenant(i)?;
                        Some((
                            name.clone(),
                            serde_json::json!({
                                "from_tunnel_packets": c.from_tunnel_packets.get(),
                                "from_tunnel_bytes": c.from_tunnel_bytes.get(),
                                "to_tunnel_packets": c.to_tunnel_packets.get(),
                                "to_tunnel_bytes": c.to_tunnel_bytes.get(),
                                "flows_created": c.flows_created(),
                                "flows_expired": c.flows_expired(),
                                "nat_ports_in_use": c.nat_ports.get(),
                                "quota_refused": c.quota_refused.get(),
                                "unreplied_refused": c.unreplied_refused.get(),
                                "offloaded_packets": c.offloaded_packets.get(),
                                "offloaded_bytes": c.offloaded_bytes.get(),
                            }),
                        ))
                    })
                    .collect();
                serde_json::json!({
                    "lcore": lcore,
                    "tenants": tenants,
                    "arp_replies": w.arp_replies.get(),
                    "punted": w.punted.get(),
                    "handed_off": w.handed_off.get(),
                    "ip_options_forwarded": dataplane::ip_options::Forwarded::ALL
                        .iter()
                        .map(|&k| (k.name().to_owned(), w.ip_options[k as usize].get().into()))
                        .collect::<serde_json::Map<_, _>>(),
                    "fragments_parked": w.fragments_parked.get(),
                    "fragments_released": w.fragments_released.get(),
                    "punted_to_fragment": w.punted_to_fragment.get(),
                    "echo_replies": w.echo_replies.get(),
                    "icmp_errors": w.icmp_errors.get(),
                    "host_unreachable": w.host_unreachable.get(),
                    "rx_packets": w.ports.iter().map(|p| p.rx_packets.get()).sum::<u64>(),
                    "tx_packets": w.ports.iter().map(|p| p.tx_packets.get()).sum::<u64>(),
                    "bursts": w.bursts.get(),
                    "cycles": w.cycles.get(),
                    "flows_in_use": w.flows_in_use.get(),
                    "flows_unreplied": w.live_unreplied(),
                    "flows_capacity": w.flows_capacity.get(),
                    "fragments_held": w.fragments_held.get(),
                    "loops": w.loops.get(),
                    "process_cycles": w.process_cycles.get(),
                    "busy_cycles": w.busy_cycles.get(),
                    "drops": drops,
                })
            })
            .collect();
        let r = &self.resolver;
        let resolver = serde_json::json!({
            "requests": r.requests, "learned": r.learned, "failed": r.failed,
            "expired": r.expired, "released": r.released, "dropped": r.dropped,
            "table_full": r.table_full, "ignored": r.ignored,
            "proxy_replies": r.proxy_replies, "malformed": r.malformed,
            "fragmented": r.fragmented, "fragments": r.fragments,
            "fragment_failed": r.fragment_failed,
            "hold_neighbour_full": r.hold_neighbour_full, "hold_full": r.hold_full,
            "hold_tenants_full": r.hold_tenants_full, "hold_ports_full": r.hold_ports_full, "hold_tenant_limit": r.hold_tenant_limit,
            "hold_failed": r.hold_failed,
            "host_unreachable": r.host_unreachable, "unreachable_limited": r.unreachable_limited,
            "table_ports_full": r.table.ports_full, "table_tenants_full": r.table.tenants_full,
            "table_tenant_limit": r.table.tenant_limit, "table_buckets_full": r.table.buckets_full,
            "inject_full": self.inject_full,
        });
        let neighbours: Vec<_> = self
            .neighbours
            .iter()
            .map(|n| {
                let (state, mac) = match n.state {
                    Lookup::Mac(m) => ("resolved", Some(MacAddr(m).to_string())),
                    Lookup::Unresolved => ("incomplete", None),
                    Lookup::Failed => ("failed", None),
                };
                serde_json::json!({
                    "port": n.port, "tenant": n.tenant, "ip": n.ip.to_string(),
                    "mac": mac, "state": state, "static": n.is_static,
                })
            })
            .collect();
        let rules: Vec<_> = self
            .rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "tenant": self.tenant_name(r.tenant), "rule": r.text(),
                    "position": r.position, "flows": r.flows,
                })
            })
            .collect();
        let failure = self.failure.as_ref().map(|f| {
            let (message, stalled_ms) = match &f.cause {
                Cause::Panicked(m) => (Some(m.as_str()), None),
                Cause::Stalled(ms) => (None, Some(*ms)),
                Cause::Returned => (None, None),
            };
            serde_json::json!({
                "worker": f.worker, "lcore": f.lcore, "cause": f.cause.name(),
                "message": message, "stalled_ms": stalled_ms,
            })
        });
        let m = &self.mempool;
        serde_json::json!({
            "tsc_hz": self.tsc_hz, "tsc": self.tsc,
            "heartbeat_age_ms": self.heartbeat_age.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
            "mempool": { "size": m.size, "available": m.available, "in_use": m.in_use },
            "build": { "version": self.build.version, "commit": self.build.commit, "dpdk": self.build.dpdk },
            "ports": ports, "workers": workers, "resolver": resolver,
            "neighbours": neighbours, "firewall": rules, "failure": failure,
        })
    }
}
