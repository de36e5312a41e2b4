//! What one change to the running state costs at the scale of issue 11:
//! 10k tenants × 16 routes (their hosts behind a router on the underlay),
//! 100k elastic IPs, 1M global routes. Goals:
//! single changes ≥ 5,000/s with p99 ≤ 1 ms, and 100k elastic IPs bound
//! in one batch in ≤ 1 s.
//!
//! Besides criterion's means, `main` prints the rate, p50, p99 and max
//! latency of 10,000 single changes of each kind.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use ctl::api::Op;
use ctl::config::{
    parse, Config, CpuSet, Eip, Ipv4Cidr, Route, RouteTarget, Tenant, TenantRoute, DEFAULT_IN,
    DEFAULT_OUT,
};
use ctl::running::Running;
use serde_json::json;

const TENANTS: u32 = 10_000;
const ROUTES_PER_TENANT: u32 = 16;
const EIPS: u32 = 100_000;
const GLOBAL_ROUTES: u32 = 1_000_000;

const PORTS: &str = r#"
[dataplane]
tenant_slots = 16384
[eal]
main_lcore = 0
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
addresses = ["1.1.1.1/24"]
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
addresses = ["172.16.0.1/12"]
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
"#;

fn cidr(addr: u32, len: u8) -> Ipv4Cidr {
    Ipv4Cidr {
        addr: Ipv4Addr::from(addr),
        len,
    }
}

/// Tenant `i`'s tunnel host, behind a router on the underlay (the
/// global route to 172.32.0.0/12), as across a datacenter's fabric.
fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 32, 1, 0)) + i)
}

fn tenant(i: u32) -> Tenant {
    let h = host(i);
    let mut routes: Vec<TenantRoute> = (0..ROUTES_PER_TENANT - 1)
        .map(|k| TenantRoute {
            prefix: cidr(u32::from(Ipv4Addr::new(10, 0, k as u8, 0)), 24),
            to: RouteTarget::Host(h),
        })
        .collect();
    routes.push(TenantRoute {
        prefix: cidr(0, 0),
        to: RouteTarget::Public,
    });
    Tenant {
        name: format!("t{i}"),
        key: i,
        encap: Default::default(),
        gre_checksum: false,
        gre_sequence: false,
        hosts: vec![h],
        prefixes: vec![cidr(u32::from(Ipv4Addr::new(10, 0, 0, 0)), 16)],
        mac: None,
        routes,
        public_prefixes: Vec::new(),
        neighbours: Vec::new(),
        rules: Vec::new(),
        default_in: DEFAULT_IN,
        default_out: DEFAULT_OUT,
    }
}

/// Elastic IP `j`: in 100.64.0.0/10, for tenant j % TENANTS.
fn eip(j: u32) -> Eip {
    Eip {
        public: Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + j),
        tenant: (j % TENANTS) as usize,
        private: Ipv4Addr::new(10, 0, 200, (j / TENANTS) as u8 + 1),
    }
}

fn big() -> Running {
    let cpus: CpuSet = "0-3".parse().unwrap();
    let mut c: Config = parse(PORTS, "bench.toml", &cpus).unwrap();
    c.tenants = (0..TENANTS).map(tenant).collect();
    c.eips = (0..EIPS).map(eip).collect();
    let base = u32::from(Ipv4Addr::new(20, 0, 0, 0));
    c.routes = (0..GLOBAL_ROUTES)
        .map(|i| Route {
            prefix: cidr(base + (i << 8), 24),
            via: Ipv4Addr::new(1, 1, 1, 254),
            port: 0,
        })
        .collect();
    c.routes.push(Route {
        prefix: cidr(u32::from(Ipv4Addr::new(172, 32, 0, 0)), 12),
        via: Ipv4Addr::new(172, 16, 0, 254),
        port: 1,
    });
    let start = Instant::now();
    let run = Running::new(c);
    eprintln!("Running::new at scale: {:?}", start.elapsed());
    run
}

fn op(v: serde_json::Value) -> Op {
    serde_json::from_value(v).unwrap()
}

/// A new elastic IP (in 99.0.0.0/8) for tenant i % TENANTS.
fn eip_add(i: u32) -> Op {
    let public = Ipv4Addr::from(u32::from(Ipv4Addr::new(99, 0, 0, 0)) + i);
    op(json!({"op": "eip.add", "args": {"eip": {
        "public": public.to_string(),
        "tenant": format!("t{}", i % TENANTS),
        "private": format!("10.0.201.{}", i / TENANTS + 1),
    }}}))
}

fn eip_del(i: u32) -> Op {
    let public = Ipv4Addr::from(u32::from(Ipv4Addr::new(99, 0, 0, 0)) + i);
    op(json!({"op": "eip.del", "args": {"public": public.to_string()}}))
}

fn route_add(t: u32) -> Op {
    op(
        json!({"op": "route.add", "args": {"tenant": format!("t{t}"), "route": {
        "prefix": "10.0.250.0/24", "to": host(t).to_string()}}}),
    )
}

fn route_del(t: u32) -> Op {
    op(json!({"op": "route.del", "args": {"tenant": format!("t{t}"), "prefix": "10.0.250.0/24"}}))
}

fn rule_add(t: u32) -> Op {
    op(
        json!({"op": "rule.add", "args": {"tenant": format!("t{t}"), "rule": {
        "direction": "in", "action": "allow", "proto": "tcp", "dport": 443}}}),
    )
}

fn benches(c: &mut Criterion, run: &mut Running) {
    let mut i = 0;
    c.bench_function("running/eip.add+eip.del", |b| {
        b.iter(|| {
            i = (i + 1) % TENANTS;
            run.apply(black_box(&eip_add(i))).unwrap();
            run.apply(black_box(&eip_del(i))).unwrap();
        })
    });
    c.bench_function("running/tenant route.add+route.del", |b| {
        b.iter(|| {
            i = (i + 1) % TENANTS;
            run.apply(black_box(&route_add(i))).unwrap();
            run.apply(black_box(&route_del(i))).unwrap();
        })
    });
    c.bench_function("running/rule.add+rule.del", |b| {
        b.iter(|| {
            i = (i + 1) % TENANTS;
            let added = run.apply(black_box(&rule_add(i))).unwrap();
            let handle = added.rules[0].handle;
            let del = op(
                json!({"op": "rule.del", "args": {"tenant": format!("t{i}"), "handle": handle}}),
            );
            run.apply(&del).unwrap();
        })
    });
    let adds = Op::Batch {
        ops: (0..EIPS).map(eip_add).collect(),
    };
    let dels = Op::Batch {
        ops: (0..EIPS).map(eip_del).collect(),
    };
    let mut group = c.benchmark_group("running/batch");
    group.sample_size(10);
    group.bench_function("100k eip.add in one batch", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                run.apply(black_box(&adds)).unwrap();
                spent += start.elapsed();
                run.apply(&dels).unwrap();
            }
            spent
        })
    });
    group.finish();
}

/// Rate, p50, p99 and max of `n` single applies of `make(i)`.
fn latency(run: &mut Running, what: &str, n: u32, make: impl Fn(u32) -> Op) {
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let op = make(i);
            let start = Instant::now();
            run.apply(&op).unwrap();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let total: Duration = times.iter().sum();
    eprintln!(
        "{what}: {n} applies, {:.0}/s, p50 {:?}, p99 {:?}, max {:?}",
        f64::from(n) / total.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// `config.apply` of the running state's own file (`config show`'s
/// text): the parse, the restart check and a diff that finds nothing.
fn plan_cost(run: &Running) {
    let cpus: CpuSet = "0-3".parse().unwrap();
    let text = run.config().to_toml();
    let start = Instant::now();
    let plan = run.plan(&text, "same.toml", &cpus).unwrap();
    eprintln!(
        "plan of the running state's own file ({} MB): {:?}, {} ops",
        text.len() >> 20,
        start.elapsed(),
        plan.ops.len()
    );
}

fn main() {
    let mut run = big();
    plan_cost(&run);
    latency(&mut run, "eip.add", 10_000, eip_add);
    latency(&mut run, "eip.del", 10_000, eip_del);
    latency(&mut run, "route.add", 10_000, route_add);
    latency(&mut run, "route.del", 10_000, route_del);
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &mut run);
    c.final_summary();
}
