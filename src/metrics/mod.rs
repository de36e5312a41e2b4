//! What tgw counts, for Prometheus: every [`Report`] rendered as the text
//! exposition format (docs/metrics.md lists each metric and its source),
//! and the HTTP endpoint that serves it ([`http`]).
//!
//! The families are built as the `prometheus` crate's
//! [`proto::MetricFamily`]s straight from the report and written with its
//! [`TextEncoder`]: no registry of per-tenant metric objects to keep in
//! step with tenants that come and go, no per-scrape hashing or sorting.
//! Per-tenant counters are summed over the workers (one series per
//! tenant, whatever the number of workers); only what belongs to a worker
//! has a `worker` label.

pub mod http;

use std::sync::Arc;

use dataplane::counters::{FlowProto, TenantCounters};
use dataplane::firewall::{Action, Direction};
use dataplane::ip_options::Forwarded;
use dataplane::neighbour::Lookup;
use dataplane::{DropReason, WorkerCounters};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::TextEncoder;

use crate::report::Report;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text exposition of `report`, followed by `extra` (the endpoint's
/// own families, from its registry).
pub fn render(report: &Report, extra: &[MetricFamily]) -> String {
    let mut families = families(report);
    families.extend_from_slice(extra);
    encode(&families)
}

/// `families` in the text exposition format.
pub fn encode(families: &[MetricFamily]) -> String {
    // A guess at the size that spares most regrowth: ~64 bytes a sample.
    let samples: usize = families.iter().map(|f| f.get_metric().len()).sum();
    let mut out = String::with_capacity(samples * 64 + 4096);
    // Families are never empty (`Families::push` leaves those out), the
    // only thing the encoder refuses.
    let _ = TextEncoder::new().encode_utf8(families, &mut out);
    out
}

/// Every family of `report`, in the order docs/metrics.md lists them.
pub fn families(report: &Report) -> Vec<MetricFamily> {
    let mut out = Families(Vec::with_capacity(96));
    build_info(report, &mut out);
    ports(report, &mut out);
    workers(report, &mut out);
    drops(report, &mut out);
    tenants(report, &mut out);
    firewall(report, &mut out);
    tables(report, &mut out);
    resolver(report, &mut out);
    out.0
}

/// The families of one scrape; empty ones are left out (the format has
/// no use for a family without samples, and the encoder refuses one).
struct Families(Vec<MetricFamily>);

impl Families {
    fn push(&mut self, f: Family) {
        if !f.0.get_metric().is_empty() {
            self.0.push(f.0);
        }
    }
}

/// One family being filled.
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType, samples: usize) -> Family {
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(kind);
        f.mut_metric().reserve_exact(samples);
        Family(f)
    }

    fn counter(name: &str, help: &str, samples: usize) -> Family {
        Family::new(name, help, MetricType::COUNTER, samples)
    }

    fn gauge(name: &str, help: &str, samples: usize) -> Family {
        Family::new(name, help, MetricType::GAUGE, samples)
    }

    /// One sample with `labels`.
    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let pairs = labels
            .iter()
            .map(|&(name, v)| {
                let mut l = LabelPair::default();
                l.set_name(name.to_owned());
                l.set_value(v.to_owned());
                l
            })
            .collect();
        let mut m = Metric::from_label(pairs);
        match self.0.get_field_type() {
            MetricType::GAUGE => {
                let mut g = proto::Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
            _ => {
                let mut c = proto::Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
        }
        self.0.mut_metric().push(m);
    }

    /// One sample of a whole count (exact up to 2^53, as every float).
    fn add_u64(&mut self, labels: &[(&str, &str)], value: u64) {
        self.add(labels, value as f64);
    }
}

/// A family with one unlabelled sample.
fn single(out: &mut Families, name: &str, help: &str, kind: MetricType, value: f64) {
    let mut f = Family::new(name, help, kind, 1);
    f.add(&[], value);
    out.push(f);
}

fn build_info(report: &Report, out: &mut Families) {
    let b = &report.build;
    let mut f = Family::gauge(
        "tgw_build_info",
        "Always 1: the version, git commit and DPDK version tgw runs.",
        1,
    );
    f.add(
        &[
            ("version", b.version),
            ("commit", b.commit),
            ("dpdk", &b.dpdk),
        ],
        1.0,
    );
    out.push(f);
    single(
        out,
        "tgw_tenants",
        "Tenants configured now.",
        MetricType::GAUGE,
        report.tenants.len() as f64,
    );
}

fn ports(report: &Report, out: &mut Families) {
    let n = report.ports.len();
    let mut info = Family::gauge(
        "tgw_port_info",
        "Always 1: a port's DPDK id and role (public or underlay).",
        n,
    );
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
    let mut families: Vec<Family> = stats
        .iter()
        .map(|(name, help, _)| Family::counter(name, help, n))
        .collect();
    let xn = report.ports.iter().map(|p| p.xstats.len()).sum();
    let mut xstats = Family::counter(
        "tgw_port_xstats_total",
        "The PMD's extended statistics, by their DPDK names (rte_eth_xstats_get).",
        xn,
    );
    for p in &report.ports {
        let id = p.id.to_string();
        info.add(
            &[("port", &p.name), ("id", &id), ("role", p.role.as_str())],
            1.0,
        );
        for ((_, _, stat), f) in stats.iter().zip(&mut families) {
            f.add_u64(&[("port", &p.name)], stat(&p.stats));
        }
        for (name, value) in &p.xstats {
            xstats.add_u64(&[("port", &p.name), ("xstat", name)], *value);
        }
    }
    out.push(info);
    for f in families {
        out.push(f);
    }
    out.push(xstats);
}

fn workers(report: &Report, out: &mut Families) {
    let n = report.workers.len();
    let hz = report.tsc_hz.max(1) as f64;
    let names: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let mut info = Family::gauge(
        "tgw_worker_info",
        "Always 1: the lcore a worker runs on.",
        n,
    );
    for (i, lcore) in report.worker_lcores.iter().enumerate().take(n) {
        info.add(&[("worker", &names[i]), ("lcore", &lcore.to_string())], 1.0);
    }
    out.push(info);

    type Of = fn(&WorkerCounters) -> u64;
    let counts: [(&str, &str, Of); 7] = [
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
    ];
    for (name, help, of) in counts {
        let mut f = Family::counter(name, help, n);
        for (w, worker) in report.workers.iter().zip(&names) {
            f.add_u64(&[("worker", worker)], of(w));
        }
        out.push(f);
    }
    let loops = Family::counter(
        "tgw_worker_loops_total",
        "Rounds of the worker's poll loop: its heartbeat.",
        n,
    );
    let busy = Family::counter(
        "tgw_worker_busy_seconds_total",
        "Time in loop rounds that moved frames, I/O included (TSC cycles / tsc_hz).",
        n,
    );
    let idle = Family::counter(
        "tgw_worker_idle_seconds_total",
        "Time polling empty queues: the share of a poll-mode core's 100% CPU that did no work.",
        n,
    );
    let processing = Family::counter(
        "tgw_worker_processing_seconds_total",
        "Time processing frames, RX and TX calls excluded.",
        n,
    );
    let mut time = [loops, busy, idle, processing];
    for (w, worker) in report.workers.iter().zip(&names) {
        let l = &[("worker", worker.as_str())];
        let cycles = w.cycles.get();
        let busy = w.busy_cycles.get();
        time[0].add_u64(l, w.loops.get());
        time[1].add(l, busy as f64 / hz);
        time[2].add(l, cycles.saturating_sub(busy) as f64 / hz);
        time[3].add(l, w.process_cycles.get() as f64 / hz);
    }
    for f in time {
        out.push(f);
    }
    let mut age = Family::gauge(
        "tgw_worker_heartbeat_age_seconds",
        "How long ago the worker's heartbeat last moved, as the control loop saw it.",
        n,
    );
    for (a, worker) in report.heartbeat_age.iter().zip(&names) {
        age.add(&[("worker", worker)], a.as_secs_f64());
    }
    out.push(age);
    type Gauge = (&'static str, &'static str, Of);
    let gauges: [Gauge; 3] = [
        ("tgw_worker_flows", "Flows in the worker's flow table.", |w| w.flows_in_use.get()),
        ("tgw_worker_flows_capacity", "Flows the worker's flow table holds at most.", |w| {
            w.flows_capacity.get()
        }),
        ("tgw_worker_fragments_held", "Fragments the worker holds: first fragments' cache entries and parked later fragments.", |w| {
            w.fragments_held.get()
        }),
    ];
    for (name, help, of) in gauges {
        let mut f = Family::gauge(name, help, n);
        for (w, worker) in report.workers.iter().zip(&names) {
            f.add_u64(&[("worker", worker)], of(w));
        }
        out.push(f);
    }
    let sum = |of: Of| report.workers.iter().map(|w| of(w)).sum::<u64>();
    let mut replies = Family::counter(
        "tgw_replies_total",
        "Frames the gateway generated: ARP replies, ICMP echo replies, ICMP errors (host_unreachable is a part of icmp_error).",
        4,
    );
    let kinds: [(&str, Of); 4] = [
        ("arp", |w| w.arp_replies.get()),
        ("echo", |w| w.echo_replies.get()),
        ("icmp_error", |w| w.icmp_errors.get()),
        ("host_unreachable", |w| w.host_unreachable.get()),
    ];
    for (kind, of) in kinds {
        replies.add_u64(&[("kind", kind)], sum(of));
    }
    out.push(replies);
    let mut options = Family::counter(
        "tgw_ip_options_forwarded_total",
        "Transit packets forwarded with IPv4 options, by the option they carried.",
        Forwarded::COUNT,
    );
    for kind in Forwarded::ALL {
        let n = sum_each(report, |w| w.ip_options[kind as usize].get());
        options.add_u64(&[("option", kind.name())], n);
    }
    out.push(options);
    let fragment_counts: [(&str, &str, Of); 3] = [
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
    for (name, help, of) in fragment_counts {
        single(out, name, help, MetricType::COUNTER, sum(of) as f64);
    }
}

/// `of` summed over the workers.
fn sum_each(report: &Report, of: impl Fn(&WorkerCounters) -> u64) -> u64 {
    report.workers.iter().map(|w| of(w)).sum()
}

fn drops(report: &Report, out: &mut Families) {
    let mut f = Family::counter(
        "tgw_drops_total",
        "Frames the workers dropped, by reason (dataplane::DropReason); every reason, zeros included.",
        DropReason::COUNT,
    );
    for &reason in DropReason::ALL {
        f.add_u64(
            &[("reason", reason.name())],
            sum_each(report, |w| w.dropped(reason)),
        );
    }
    out.push(f);
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

fn tenants(report: &Report, out: &mut Families) {
    let n = report.tenants.len();
    let per_proto = n * FlowProto::COUNT;
    let mut from_packets = Family::counter(
        "tgw_tenant_from_tunnel_packets_total",
        "Frames decapsulated from the tenant's GRE tunnels.",
        n,
    );
    let mut from_bytes = Family::counter(
        "tgw_tenant_from_tunnel_bytes_total",
        "Bytes of the frames decapsulated from the tenant's GRE tunnels (inner frames).",
        n,
    );
    let mut to_packets = Family::counter(
        "tgw_tenant_to_tunnel_packets_total",
        "Frames encapsulated into the tenant's GRE tunnels.",
        n,
    );
    let mut to_bytes = Family::counter(
        "tgw_tenant_to_tunnel_bytes_total",
        "Bytes of the frames encapsulated into the tenant's GRE tunnels.",
        n,
    );
    let mut flows = Family::gauge("tgw_tenant_flows", "The tenant's live flows.", n);
    let mut opened = Family::counter(
        "tgw_tenant_flows_opened_total",
        "Flows the tenant opened (either way), by protocol.",
        per_proto,
    );
    let mut ended = Family::counter(
        "tgw_tenant_flows_ended_total",
        "Flows of the tenant that ended (expired, closed, flushed or revoked), by protocol.",
        per_proto,
    );
    let mut unreplied = Family::gauge(
        "tgw_tenant_unreplied_flows",
        "The tenant's inbound flows that nobody inside answered yet.",
        n,
    );
    let mut refused = Family::counter(
        "tgw_tenant_quota_refused_total",
        "New flows refused because the tenant held its quota: of flows (quota=\"flows\") or of unreplied inbound flows (quota=\"unreplied\").",
        n * 2,
    );
    let mut nat_ports = Family::gauge(
        "tgw_tenant_nat_ports",
        "Source NAT ports the tenant's hosts hold in its pool.",
        n,
    );
    for &(slot, ref name) in &report.tenants {
        let s = TenantSum::of(&report.workers, slot);
        let t = &[("tenant", name.as_str())];
        from_packets.add_u64(t, s.from_tunnel_packets);
        from_bytes.add_u64(t, s.from_tunnel_bytes);
        to_packets.add_u64(t, s.to_tunnel_packets);
        to_bytes.add_u64(t, s.to_tunnel_bytes);
        flows.add_u64(t, s.live);
        for p in FlowProto::ALL {
            let l = &[("tenant", name.as_str()), ("protocol", p.name())];
            opened.add_u64(l, s.opened[p as usize]);
            ended.add_u64(l, s.ended[p as usize]);
        }
        unreplied.add_u64(t, s.unreplied);
        refused.add_u64(&[("tenant", name), ("quota", "flows")], s.quota_refused);
        refused.add_u64(
            &[("tenant", name), ("quota", "unreplied")],
            s.unreplied_refused,
        );
        nat_ports.add_u64(t, s.nat_ports);
    }
    for f in [
        from_packets,
        from_bytes,
        to_packets,
        to_bytes,
        flows,
        opened,
        ended,
        unreplied,
        refused,
        nat_ports,
    ] {
        out.push(f);
    }
}

fn firewall(report: &Report, out: &mut Families) {
    let mut f = Family::counter(
        "tgw_firewall_flows_total",
        "Flows a tenant's firewall rule decided (rule=\"N\": its position in the tenant's rules; rule=\"default\": the direction's default policy).",
        report.rules.len(),
    );
    for r in &report.rules {
        let position = r.position.map(|p| p.to_string());
        let direction = match r.direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        let action = match r.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        };
        f.add_u64(
            &[
                ("tenant", &r.tenant),
                ("rule", position.as_deref().unwrap_or("default")),
                ("direction", direction),
                ("action", action),
            ],
            r.flows,
        );
    }
    out.push(f);
}

fn tables(report: &Report, out: &mut Families) {
    let mut neighbours = Family::gauge(
        "tgw_neighbours",
        "Entries of the neighbour table, by state.",
        3,
    );
    let mut count = [0u64; 3];
    for n in &report.neighbours {
        count[match n.state {
            Lookup::Mac(_) => 0,
            Lookup::Unresolved => 1,
            Lookup::Failed => 2,
        }] += 1;
    }
    for (state, n) in ["resolved", "incomplete", "failed"].into_iter().zip(count) {
        neighbours.add_u64(&[("state", state)], n);
    }
    out.push(neighbours);
    let m = &report.mempool;
    let mut mbufs = Family::gauge(
        "tgw_mempool_mbufs",
        "Mbufs of the packet pool, by state (in_use + available = the pool's size).",
        2,
    );
    mbufs.add_u64(&[("state", "in_use")], u64::from(m.in_use));
    mbufs.add_u64(&[("state", "available")], u64::from(m.available));
    out.push(mbufs);
    single(
        out,
        "tgw_mempool_size_mbufs",
        "Mbufs in the packet pool.",
        MetricType::GAUGE,
        f64::from(m.size),
    );
}

fn resolver(report: &Report, out: &mut Families) {
    let r = &report.resolver;
    let counts: [(&str, &str, u64); 13] = [
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
    ];
    for (name, help, value) in counts {
        single(out, name, help, MetricType::COUNTER, value as f64);
    }
    single(
        out,
        "tgw_held_dropped_total",
        "Frames the resolver dropped: not held (tgw_held_refused_total), or their neighbour failed and no ICMP error could be sent.",
        MetricType::COUNTER,
        r.dropped as f64,
    );
    let mut held = Family::counter(
        "tgw_held_refused_total",
        "Frames the resolver did not hold for their next hop, by the bound that was full (docs/security.md).",
        5,
    );
    for (cause, n) in [
        ("neighbour_full", r.hold_neighbour_full),
        ("held_full", r.hold_full),
        ("tenants_full", r.hold_tenants_full),
        ("tenant_limit", r.hold_tenant_limit),
        ("neighbour_failed", r.hold_failed),
    ] {
        held.add_u64(&[("cause", cause)], n);
    }
    out.push(held);
    let mut full = Family::counter(
        "tgw_neighbour_table_full_total",
        "Neighbours that found no room in the table, by cause.",
        4,
    );
    let t = &r.table;
    for (cause, n) in [
        ("ports_full", t.ports_full),
        ("tenants_full", t.tenants_full),
        ("tenant_limit", t.tenant_limit),
        ("buckets_full", t.buckets_full),
    ] {
        full.add_u64(&[("cause", cause)], n);
    }
    out.push(full);
}

#[cfg(test)]
mod tests;
