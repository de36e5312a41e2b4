//! The families of a [`Report`], in the order docs/metrics.md lists them,
//! each written whole (its samples one after another) into a [`Sink`].

use std::sync::Arc;

use dataplane::counters::{FlowProto, TenantCounters};
use dataplane::firewall::{Action, Direction};
use dataplane::ip_options::Forwarded;
use dataplane::neighbour::Lookup;
use dataplane::{DropReason, WorkerCounters};
use prometheus::proto::MetricType::{COUNTER, GAUGE};

use super::sink::{Sink, Value};
use crate::report::Report;

/// Every family of `report`.
pub fn all(report: &Report, out: &mut impl Sink) {
    build_info(report, out);
    ports(report, out);
    workers(report, out);
    drops(report, out);
    tenants(report, out);
    firewall(report, out);
    tables(report, out);
    resolver(report, out);
    offload(report, out);
}

fn build_info(report: &Report, out: &mut impl Sink) {
    let b = &report.build;
    out.family(
        "tgw_build_info",
        "Always 1: the version, git commit and DPDK version tgw runs.",
        GAUGE,
    );
    out.count(
        &[
            ("version", b.version),
            ("commit", b.commit),
            ("dpdk", &b.dpdk),
        ],
        1,
    );
    out.single(
        "tgw_tenants",
        "Tenants configured now.",
        GAUGE,
        Value::Count(report.tenants.len() as u64),
    );
}

fn ports(report: &Report, out: &mut impl Sink) {
    out.family(
        "tgw_port_info",
        "Always 1: a port's DPDK id and role (public or underlay).",
        GAUGE,
    );
    for p in &report.ports {
        let id = p.id.to_string();
        out.count(
            &[("port", &p.name), ("id", &id), ("role", p.role.as_str())],
            1,
        );
    }
    type Stat = fn(&rte::PortStats) -> u64;
    let stats: [(&str, &str, Stat); 8] = [
        (
            "tgw_port_rx_packets_total",
            "Frames the port received (ethdev ipackets).",
            |s| s.ipackets,
        ),
        (
            "tgw_port_tx_packets_total",
            "Frames the port sent (ethdev opackets).",
            |s| s.opackets,
        ),
        (
            "tgw_port_rx_bytes_total",
            "Bytes the port received (ethdev ibytes).",
            |s| s.ibytes,
        ),
        (
            "tgw_port_tx_bytes_total",
            "Bytes the port sent (ethdev obytes).",
            |s| s.obytes,
        ),
        (
            "tgw_port_rx_errors_total",
            "Erroneous frames the port received (ethdev ierrors).",
            |s| s.ierrors,
        ),
        (
            "tgw_port_tx_errors_total",
            "Frames the port failed to send (ethdev oerrors).",
            |s| s.oerrors,
        ),
        (
            "tgw_port_rx_missed_total",
            "Frames the NIC dropped for a full RX ring (ethdev imissed).",
            |s| s.imissed,
        ),
        (
            "tgw_port_rx_nombuf_total",
            "RX failures for want of an mbuf (ethdev rx_nombuf).",
            |s| s.rx_nombuf,
        ),
    ];
    for (name, help, stat) in stats {
        out.family(name, help, COUNTER);
        for p in &report.ports {
            out.count(&[("port", &p.name)], stat(&p.stats));
        }
    }
    out.family(
        "tgw_port_xstats_total",
        "The PMD's extended statistics, by their DPDK names (rte_eth_xstats_get).",
        COUNTER,
    );
    for p in &report.ports {
        for (name, value) in &p.xstats {
            out.count(&[("port", &p.name), ("xstat", name)], *value);
        }
    }
}

type Of = fn(&WorkerCounters) -> u64;

fn workers(report: &Report, out: &mut impl Sink) {
    let names: Vec<String> = (0..report.workers.len()).map(|i| i.to_string()).collect();
    out.family(
        "tgw_worker_info",
        "Always 1: the lcore a worker runs on.",
        GAUGE,
    );
    for (worker, lcore) in names.iter().zip(&report.worker_lcores) {
        out.count(&[("worker", worker), ("lcore", &lcore.to_string())], 1);
    }
    let each = |out: &mut dyn FnMut(&str, &WorkerCounters)| {
        for (w, worker) in report.workers.iter().zip(&names) {
            out(worker, w);
        }
    };

    let counts: [(&str, &str, Of); 8] = [
        (
            "tgw_worker_rx_packets_total",
            "Frames the worker received, on all its queues.",
            |w| w.ports.iter().map(|p| p.rx_packets.get()).sum(),
        ),
        (
            "tgw_worker_tx_packets_total",
            "Frames the worker sent, on all ports.",
            |w| w.ports.iter().map(|p| p.tx_packets.get()).sum(),
        ),
        (
            "tgw_worker_rx_bytes_total",
            "Bytes the worker received, on all its queues.",
            |w| w.ports.iter().map(|p| p.rx_bytes.get()).sum(),
        ),
        (
            "tgw_worker_tx_bytes_total",
            "Bytes the worker sent, on all ports.",
            |w| w.ports.iter().map(|p| p.tx_bytes.get()).sum(),
        ),
        (
            "tgw_worker_bursts_total",
            "RX bursts that brought at least one frame.",
            |w| w.bursts.get(),
        ),
        (
            "tgw_worker_handoffs_total",
            "Frames handed to the worker that owns their connection.",
            |w| w.handed_off.get(),
        ),
        (
            "tgw_worker_punts_total",
            "Frames handed to the control plane (ARP to learn, frames waiting for a next hop).",
            |w| w.punted.get(),
        ),
        (
            "tgw_worker_loops_total",
            "Rounds of the worker's poll loop: its heartbeat.",
            |w| w.loops.get(),
        ),
    ];
    for (name, help, of) in counts {
        out.family(name, help, COUNTER);
        each(&mut |worker, w| out.count(&[("worker", worker)], of(w)));
    }

    let hz = report.tsc_hz.max(1) as f64;
    let times: [(&str, &str, Of); 3] = [
        (
            "tgw_worker_busy_seconds_total",
            "Time in loop rounds that moved frames, I/O included (TSC cycles / tsc_hz).",
            |w| w.busy_cycles.get(),
        ),
        (
            "tgw_worker_idle_seconds_total",
            "Time polling empty queues: the share of a poll-mode core's 100% CPU that did no work.",
            |w| w.cycles.get().saturating_sub(w.busy_cycles.get()),
        ),
        (
            "tgw_worker_processing_seconds_total",
            "Time processing frames, RX and TX calls excluded.",
            |w| w.process_cycles.get(),
        ),
    ];
    for (name, help, cycles) in times {
        out.family(name, help, COUNTER);
        each(&mut |worker, w| out.real(&[("worker", worker)], cycles(w) as f64 / hz));
    }

    out.family(
        "tgw_worker_heartbeat_age_seconds",
        "How long ago the worker's heartbeat last moved, as the control loop saw it.",
        GAUGE,
    );
    for (age, worker) in report.heartbeat_age.iter().zip(&names) {
        out.real(&[("worker", worker)], age.as_secs_f64());
    }
    let gauges: [(&str, &str, Of); 4] = [
        (
            "tgw_worker_flows",
            "Flows in the worker's flow table.",
            |w| w.flows_in_use.get(),
        ),
        (
            "tgw_worker_flows_unreplied",
            "Inbound flows in the worker's table that nobody inside answered yet, of every tenant: at most [flows] unreplied_total.",
            |w| w.live_unreplied(),
        ),
        (
            "tgw_worker_flows_capacity",
            "Flows the worker's flow table holds at most.",
            |w| w.flows_capacity.get(),
        ),
        (
            "tgw_worker_fragments_held",
            "Fragments the worker holds: first fragments' cache entries and parked later fragments.",
            |w| w.fragments_held.get(),
        ),
    ];
    for (name, help, of) in gauges {
        out.family(name, help, GAUGE);
        each(&mut |worker, w| out.count(&[("worker", worker)], of(w)));
    }
    summed(report, out);
}

/// `of` summed over the workers.
fn sum(report: &Report, of: impl Fn(&WorkerCounters) -> u64) -> u64 {
    report.workers.iter().map(|w| of(w)).sum()
}

/// What the workers did that is not the worker's own business: summed.
fn summed(report: &Report, out: &mut impl Sink) {
    out.family(
        "tgw_replies_total",
        "Frames the gateway generated: ARP replies, ICMP echo replies, ICMP errors (host_unreachable is a part of icmp_error).",
        COUNTER,
    );
    let kinds: [(&str, Of); 4] = [
        ("arp", |w| w.arp_replies.get()),
        ("echo", |w| w.echo_replies.get()),
        ("icmp_error", |w| w.icmp_errors.get()),
        ("host_unreachable", |w| w.host_unreachable.get()),
    ];
    for (kind, of) in kinds {
        out.count(&[("kind", kind)], sum(report, of));
    }
    out.family(
        "tgw_ip_options_forwarded_total",
        "Transit packets forwarded with IPv4 options, by the option they carried.",
        COUNTER,
    );
    for kind in Forwarded::ALL {
        let n = sum(report, |w| w.ip_options[kind as usize].get());
        out.count(&[("option", kind.name())], n);
    }
    let fragments: [(&str, &str, Of); 3] = [
        (
            "tgw_fragments_parked_total",
            "Later fragments parked until their first came.",
            |w| w.fragments_parked.get(),
        ),
        (
            "tgw_fragments_released_total",
            "Parked fragments that went on once their first came.",
            |w| w.fragments_released.get(),
        ),
        (
            "tgw_fragment_punts_total",
            "Datagrams too big without DF, punted to be cut into fragments.",
            |w| w.punted_to_fragment.get(),
        ),
    ];
    for (name, help, of) in fragments {
        out.single(name, help, COUNTER, Value::Count(sum(report, of)));
    }
}

fn drops(report: &Report, out: &mut impl Sink) {
    out.family(
        "tgw_drops_total",
        "Frames the workers dropped, by reason (dataplane::DropReason); every reason, zeros included.",
        COUNTER,
    );
    for &reason in DropReason::ALL {
        out.count(
            &[("reason", reason.name())],
            sum(report, |w| w.dropped(reason)),
        );
    }
}

/// One tenant's counters, summed over the workers.
#[derive(Default)]
struct TenantSum {
    from_tunnel_packets: u64,
    from_tunnel_bytes: u64,
    to_tunnel_packets: u64,
    to_tunnel_bytes: u64,
    opened: [u64; FlowProto::COUNT],
    ended: [u64; FlowProto::COUNT],
    live: u64,
    unreplied: u64,
    nat_ports: u64,
    quota_refused: u64,
    unreplied_refused: u64,
}

impl TenantSum {
    fn of(workers: &[Arc<WorkerCounters>], slot: usize) -> TenantSum {
        let mut s = TenantSum::default();
        for c in workers.iter().filter_map(|w| w.tenant(slot)) {
            s.add(c);
        }
        s
    }

    fn add(&mut self, c: &TenantCounters) {
        self.from_tunnel_packets += c.from_tunnel_packets.get();
        self.from_tunnel_bytes += c.from_tunnel_bytes.get();
        self.to_tunnel_packets += c.to_tunnel_packets.get();
        self.to_tunnel_bytes += c.to_tunnel_bytes.get();
        for p in FlowProto::ALL {
            self.opened[p as usize] += c.flows_opened[p as usize].get();
            self.ended[p as usize] += c.flows_ended[p as usize].get();
        }
        self.live += c.live_flows();
        self.unreplied += c.live_unreplied();
        self.nat_ports += c.nat_ports.get();
        self.quota_refused += c.quota_refused.get();
        self.unreplied_refused += c.unreplied_refused.get();
    }
}

fn tenants(report: &Report, out: &mut impl Sink) {
    // Each tenant's slot is read once, for all its families.
    let sums: Vec<(&str, TenantSum)> = report
        .tenants
        .iter()
        .map(|(slot, name)| (name.as_str(), TenantSum::of(&report.workers, *slot)))
        .collect();
    type Field = fn(&TenantSum) -> u64;
    let plain: [(&str, &str, _, Field); 5] = [
        (
            "tgw_tenant_from_tunnel_packets_total",
            "Frames decapsulated from the tenant's GRE tunnels.",
            COUNTER,
            |s| s.from_tunnel_packets,
        ),
        (
            "tgw_tenant_from_tunnel_bytes_total",
            "Bytes of the frames decapsulated from the tenant's GRE tunnels (inner frames).",
            COUNTER,
            |s| s.from_tunnel_bytes,
        ),
        (
            "tgw_tenant_to_tunnel_packets_total",
            "Frames encapsulated into the tenant's GRE tunnels.",
            COUNTER,
            |s| s.to_tunnel_packets,
        ),
        (
            "tgw_tenant_to_tunnel_bytes_total",
            "Bytes of the frames encapsulated into the tenant's GRE tunnels.",
            COUNTER,
            |s| s.to_tunnel_bytes,
        ),
        ("tgw_tenant_flows", "The tenant's live flows.", GAUGE, |s| {
            s.live
        }),
    ];
    for (name, help, kind, field) in plain {
        out.family(name, help, kind);
        for (tenant, s) in &sums {
            out.count(&[("tenant", tenant)], field(s));
        }
    }
    type ByProto = fn(&TenantSum) -> &[u64; FlowProto::COUNT];
    let by_proto: [(&str, &str, ByProto); 2] = [
        (
            "tgw_tenant_flows_opened_total",
            "Flows the tenant opened (either way), by protocol.",
            |s| &s.opened,
        ),
        (
            "tgw_tenant_flows_ended_total",
            "Flows of the tenant that ended (expired, closed, flushed or revoked), by protocol.",
            |s| &s.ended,
        ),
    ];
    for (name, help, field) in by_proto {
        out.family(name, help, COUNTER);
        for (tenant, s) in &sums {
            for p in FlowProto::ALL {
                out.count(
                    &[("tenant", tenant), ("protocol", p.name())],
                    field(s)[p as usize],
                );
            }
        }
    }
    out.family(
        "tgw_tenant_unreplied_flows",
        "The tenant's inbound flows that nobody inside answered yet.",
        GAUGE,
    );
    for (tenant, s) in &sums {
        out.count(&[("tenant", tenant)], s.unreplied);
    }
    out.family(
        "tgw_tenant_quota_refused_total",
        "New flows refused because the tenant held its quota: of flows (quota=\"flows\") or of unreplied inbound flows (quota=\"unreplied\").",
        COUNTER,
    );
    for (tenant, s) in &sums {
        out.count(&[("tenant", tenant), ("quota", "flows")], s.quota_refused);
        out.count(
            &[("tenant", tenant), ("quota", "unreplied")],
            s.unreplied_refused,
        );
    }
    out.family(
        "tgw_tenant_nat_ports",
        "Source NAT ports the tenant's hosts hold in its pool.",
        GAUGE,
    );
    for (tenant, s) in &sums {
        out.count(&[("tenant", tenant)], s.nat_ports);
    }
}

fn firewall(report: &Report, out: &mut impl Sink) {
    out.family(
        "tgw_firewall_flows_total",
        "Flows a tenant's firewall rule decided (rule=\"N\": its position in the tenant's rules; rule=\"default\": the direction's default policy).",
        COUNTER,
    );
    let mut position = String::with_capacity(10);
    for r in &report.rules {
        position.clear();
        match r.position {
            Some(p) => {
                use std::fmt::Write as _;
                let _ = write!(position, "{p}");
            }
            None => position.push_str("default"),
        }
        let direction = match r.direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        let action = match r.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        };
        out.count(
            &[
                ("tenant", report.tenant_name(r.tenant)),
                ("rule", &position),
                ("direction", direction),
                ("action", action),
            ],
            r.flows,
        );
    }
}

fn tables(report: &Report, out: &mut impl Sink) {
    let mut count = [0u64; 3];
    for n in &report.neighbours {
        count[match n.state {
            Lookup::Mac(_) => 0,
            Lookup::Unresolved => 1,
            Lookup::Failed => 2,
        }] += 1;
    }
    out.family(
        "tgw_neighbours",
        "Entries of the neighbour table, by state.",
        GAUGE,
    );
    for (state, n) in ["resolved", "incomplete", "failed"].into_iter().zip(count) {
        out.count(&[("state", state)], n);
    }
    let m = &report.mempool;
    out.family(
        "tgw_mempool_mbufs",
        "Mbufs of the packet pool, by state (in_use + available = the pool's size).",
        GAUGE,
    );
    out.count(&[("state", "in_use")], u64::from(m.in_use));
    out.count(&[("state", "available")], u64::from(m.available));
    out.single(
        "tgw_mempool_size_mbufs",
        "Mbufs in the packet pool.",
        GAUGE,
        Value::Count(u64::from(m.size)),
    );
}

fn resolver(report: &Report, out: &mut impl Sink) {
    let r = &report.resolver;
    let counts: [(&str, &str, u64); 15] = [
        (
            "tgw_arp_requests_total",
            "ARP requests the resolver sent.",
            r.requests,
        ),
        (
            "tgw_neighbours_learned_total",
            "Neighbour MACs learned or confirmed.",
            r.learned,
        ),
        (
            "tgw_neighbours_failed_total",
            "Neighbours that never answered.",
            r.failed,
        ),
        (
            "tgw_neighbours_expired_total",
            "Learned neighbours forgotten after failing to confirm.",
            r.expired,
        ),
        (
            "tgw_arp_ignored_total",
            "ARP replies and announcements about neighbours nobody asked for.",
            r.ignored,
        ),
        (
            "tgw_arp_proxy_replies_total",
            "Proxy-ARP replies sent inside tunnels.",
            r.proxy_replies,
        ),
        (
            "tgw_punts_malformed_total",
            "Punted frames that did not parse.",
            r.malformed,
        ),
        (
            "tgw_held_released_total",
            "Held frames sent once their neighbour resolved.",
            r.released,
        ),
        (
            "tgw_held_host_unreachable_total",
            "Held frames whose neighbour failed, answered with ICMP host unreachable.",
            r.host_unreachable,
        ),
        (
            "tgw_held_unreachable_limited_total",
            "Held frames whose neighbour failed and whose ICMP error the rate limit kept back.",
            r.unreachable_limited,
        ),
        (
            "tgw_held_dropped_total",
            "Frames the resolver dropped: not held (tgw_held_refused_total), or their neighbour failed and no ICMP error could be sent.",
            r.dropped,
        ),
        (
            "tgw_fragmented_total",
            "Datagrams too big for their next hop cut into fragments.",
            r.fragmented,
        ),
        (
            "tgw_fragments_sent_total",
            "Fragments sent by the control plane.",
            r.fragments,
        ),
        (
            "tgw_fragment_failed_total",
            "Datagrams that could not be cut into fragments.",
            r.fragment_failed,
        ),
        (
            "tgw_inject_full_total",
            "Frames the control plane dropped because the inject ring to worker 0 was full: ARP requests, released held frames, proxy replies, cut fragments.",
            report.inject_full,
        ),
    ];
    for (name, help, value) in counts {
        out.single(name, help, COUNTER, Value::Count(value));
    }
    out.family(
        "tgw_held_refused_total",
        "Frames the resolver did not hold for their next hop, by the bound that was full (docs/security.md).",
        COUNTER,
    );
    for (cause, n) in [
        ("neighbour_full", r.hold_neighbour_full),
        ("held_full", r.hold_full),
        ("tenants_full", r.hold_tenants_full),
        ("ports_full", r.hold_ports_full),
        ("tenant_limit", r.hold_tenant_limit),
        ("neighbour_failed", r.hold_failed),
    ] {
        out.count(&[("cause", cause)], n);
    }
    out.family(
        "tgw_neighbour_table_full_total",
        "Neighbours that found no room in the table, by cause.",
        COUNTER,
    );
    let t = &r.table;
    for (cause, n) in [
        ("ports_full", t.ports_full),
        ("tenants_full", t.tenants_full),
        ("tenant_limit", t.tenant_limit),
        ("buckets_full", t.buckets_full),
    ] {
        out.count(&[("cause", cause)], n);
    }
}

fn offload(report: &Report, out: &mut impl Sink) {
    use crate::offload::report::{level_value, STATES};
    let o = &report.offload;
    out.family(
        "tgw_offload_level",
        "A port's offload level from the probe at start: 0 none, 1 partial (mark and queue), 2 full.",
        GAUGE,
    );
    for (port, level) in &o.levels {
        out.count(&[("port", port)], level_value(*level));
    }
    out.family(
        "tgw_offload_flows",
        "Offloaded flows by state (shadow mode: the flows whose rules are recorded).",
        GAUGE,
    );
    for (state, n) in STATES.into_iter().zip(o.flows) {
        out.count(&[("state", state)], n);
    }
    let counts: [(&str, &str, u64); 5] = [
        (
            "tgw_offload_requests_total",
            "Offload requests the control plane took from the workers' queues.",
            o.requests,
        ),
        (
            "tgw_offload_installed_total",
            "Flows whose rules were installed (recorded, in shadow mode).",
            o.installed,
        ),
        (
            "tgw_offload_queue_full_total",
            "Offload requests the workers dropped for a full request queue (the flow stays in software).",
            o.queue_full,
        ),
        (
            "tgw_offload_refreshes_total",
            "Refreshes sent to workers for offloaded flows with new hardware hits.",
            o.refreshes,
        ),
        (
            "tgw_offload_pulled_back_total",
            "Offloaded flows pulled back to software: tenant changes, offload flush, shutdown.",
            o.pulled_back,
        ),
    ];
    for (name, help, n) in counts {
        out.single(name, help, COUNTER, Value::Count(n));
    }
    out.family(
        "tgw_offload_refusals_total",
        "Offload requests left in software, by reason.",
        COUNTER,
    );
    for (reason, n) in &o.refusals {
        out.count(&[("reason", reason)], *n);
    }
}
