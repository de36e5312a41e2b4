//! What a scrape of `/metrics` costs at the scale: a [`Report`]
//! with 10k tenants (4 firewall rules each, plus the two defaults), every
//! counter set, rendered as the endpoint renders it; prints the time to
//! take the report, to render it, and the body's size, and for
//! comparison the time the crate's own path (`MetricFamily`s, then its
//! `TextEncoder`) takes for the same text.
//!
//! `cargo run --release --example metrics_cost [-- TENANTS WORKERS ROUNDS [0]]`
//! (a last `0` leaves out the crate's path, for a profile of the rest)
//!
//! No DPDK: the report is made by hand as the control loop would make it
//! (the tenants' names and the rules' rows are cloned and formatted here,
//! as `gateway::report` and `report::rule_report` do, and that is timed
//! too: it runs on the control loop).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::firewall::{Action, Direction};
use dataplane::resolver::ResolverStats;
use dataplane::WorkerCounters;
use rte::PortStats;
use tgw::report::{BuildInfo, MempoolReport, PortReport, Report, RuleReport};

const RULES_PER_TENANT: u32 = 4;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let tenants = args.next().unwrap_or(10_000);
    let workers = args.next().unwrap_or(2);
    let rounds = args.next().unwrap_or(20);
    // A fourth argument (0) leaves the crate's path out, for profiles.
    let crate_path_too = args.next() != Some(0);

    let counters = counters(tenants, workers);
    let names: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:05}")).collect();
    let mut take = Vec::with_capacity(rounds);
    let mut render = Vec::with_capacity(rounds);
    let mut crate_path = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let report = report(&names, &counters);
        let t1 = Instant::now();
        let text = tgw::metrics::render(&report, &[]);
        let t2 = Instant::now();
        bytes = text.len();
        black_box(text);
        if crate_path_too {
            let reference = tgw::metrics::encode(&tgw::metrics::families(&report));
            black_box(reference);
        }
        let t3 = Instant::now();
        take.push(t1 - t0);
        render.push(t2 - t1);
        crate_path.push(t3 - t2);
    }
    let samples = tgw::metrics::families(&report(&names, &counters))
        .iter()
        .map(|f| f.get_metric().len())
        .sum::<usize>();
    println!(
        "{tenants} tenants, {workers} workers, {rounds} rounds: {samples} samples, {bytes} bytes ({:.1} MiB)",
        bytes as f64 / (1024.0 * 1024.0)
    );
    let mut scrape: Vec<Duration> = take.iter().zip(&render).map(|(a, b)| *a + *b).collect();
    for (what, times) in [
        ("report (control loop)", &mut take),
        ("render (endpoint)", &mut render),
        ("scrape: both", &mut scrape),
        ("crate's families+encode", &mut crate_path),
    ] {
        times.sort();
        println!(
            "  {what:<24} median {:>7.2} ms, min {:>7.2} ms, max {:>7.2} ms",
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(*times.last().unwrap())
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Workers whose every tenant counter holds a distinct value.
fn counters(tenants: usize, workers: usize) -> Vec<Arc<WorkerCounters>> {
    (0..workers)
        .map(|w| {
            let c = WorkerCounters::new(tenants);
            for (i, t) in c.tenants.iter().enumerate() {
                let v = (i * 131 + w * 7) as u64;
                t.from_tunnel_packets.set(v);
                t.from_tunnel_bytes.set(v * 100);
                t.to_tunnel_packets.set(v + 1);
                t.to_tunnel_bytes.set(v * 90);
                for (p, o) in t.flows_opened.iter().enumerate() {
                    o.set(v + p as u64 * 3);
                }
                for e in &t.flows_ended {
                    e.set(v / 2);
                }
                t.nat_ports.set(v % 64);
                t.quota_refused.set(v % 5);
            }
            for (i, d) in c.drops.iter().enumerate() {
                d.set(i as u64 * 1000);
            }
            c.cycles.set(3_000_000_000);
            c.busy_cycles.set(1_000_000_000);
            Arc::new(c)
        })
        .collect()
}

/// The report as `gateway::report` takes it: names cloned, a row a rule
/// (formatted only by who shows it).
fn report(names: &[String], workers: &[Arc<WorkerCounters>]) -> Report {
    let mut rules = Vec::with_capacity(names.len() * (RULES_PER_TENANT as usize + 2));
    for i in 0..names.len() {
        for position in 0..RULES_PER_TENANT {
            let direction = if position % 2 == 0 {
                Direction::In
            } else {
                Direction::Out
            };
            rules.push(RuleReport {
                tenant: i,
                rule: None,
                position: Some(position),
                direction,
                action: Action::Allow,
                flows: (i as u64) * 3 + u64::from(position),
            });
        }
        for (direction, action) in [
            (Direction::In, Action::Deny),
            (Direction::Out, Action::Allow),
        ] {
            rules.push(RuleReport {
                tenant: i,
                rule: None,
                position: None,
                direction,
                action,
                flows: i as u64,
            });
        }
    }
    Report {
        ports: (0..2)
            .map(|id| PortReport {
                name: format!("port{id}"),
                role: if id == 0 {
                    ctl::config::Role::Public
                } else {
                    ctl::config::Role::Underlay
                },
                id,
                stats: PortStats::default(),
                xstats: (0..24).map(|x| (format!("rx_q{x}_packets"), x)).collect(),
            })
            .collect(),
        workers: workers.to_vec(),
        worker_lcores: (1..=workers.len() as u32).collect(),
        heartbeat_age: vec![Duration::from_millis(1); workers.len()],
        tenants: names.iter().cloned().enumerate().collect(),
        tsc_hz: 2_000_000_000,
        tsc: 0,
        mempool: MempoolReport::default(),
        build: BuildInfo {
            version: "0",
            commit: "x",
            dpdk: "DPDK 22.11".to_owned(),
        },
        resolver: ResolverStats::default(),
        inject_full: 0,
        neighbours: Vec::new(),
        rules,
        failure: None,
        offload: Default::default(),
    }
}
