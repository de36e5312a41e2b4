//! `tgw-perf changes`: what runtime changes cost at the scale of issue 11
//! — 10k tenants × 16 routes, 100k elastic IPs, 1M global routes — each
//! made as the daemon makes it: [`Handler::change`] (the running state's
//! `apply_then`, the next snapshot from [`tgw::runtime`], `publish`),
//! while reader threads take snapshots between "bursts" as workers do,
//! so that the publisher's reclaim sees snapshots still held.
//!
//! No DPDK: the neighbour table's writer stands in for the resolver's,
//! and nothing is sent. Goals (issue 11): single changes at ≥ 5,000/s with
//! p99 ≤ 1 ms, and 100k elastic IPs bound in one batch in ≤ 1 s.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ctl::api::Op;
use ctl::config::{
    parse, Config, CpuSet, Eip, Ipv4Cidr, Route, RouteTarget, Tenant, TenantRoute, DEFAULT_IN,
    DEFAULT_OUT, TENANT_SLOTS_MAX,
};
use ctl::running::Running;
use dataplane::lpm::testgen;
use dataplane::neighbour::{NeighbourLimits, NeighbourWriter};
use dataplane::resolver::{Resolver, ResolverConfig};
use dataplane::snapshot::Publisher;
use dataplane::tables::Tables;
use dataplane::{VecFrame, WorkerCounters};
use rte::MacAddr;
use serde_json::{json, Value};
use tgw::handler::{ChangeCx, Handler};
use tgw::runtime::Runtime;

#[derive(clap::Args, Debug)]
pub struct ChangesArgs {
    /// Tenants, each with one tunnel host.
    #[arg(long, default_value_t = 10_000)]
    tenants: u32,
    /// Routes in each tenant's VRF (generated tenant-like; a default route
    /// to the public side, the rest to its host).
    #[arg(long, default_value_t = 16)]
    routes_per_tenant: u32,
    /// Whether each tenant also has a public /32 (one of its routes leads
    /// it to its host): the ingress table then holds one entry a tenant.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    public_prefixes: bool,
    /// Elastic IPs bound at start, spread over the tenants.
    #[arg(long, default_value_t = 100_000)]
    eips: u32,
    /// Global routes on the public port (generated BGP-like).
    #[arg(long, default_value_t = 1_000_000)]
    global_routes: usize,
    /// Single changes measured of each kind.
    #[arg(long, default_value_t = 5_000)]
    changes: u32,
    /// Elastic IPs bound in the one batch measured.
    #[arg(long, default_value_t = 100_000)]
    batch: u32,
    /// Threads taking snapshots as workers do.
    #[arg(long, default_value_t = 1)]
    readers: usize,
    /// Each reader's pause between two snapshots taken (a burst's work).
    #[arg(long, default_value_t = 20)]
    reader_pause_us: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The ports: tenants' hosts on the underlay's /12, the global routes'
/// next hops on the public /24.
const PORTS: &str = r#"
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

fn ip(base: [u8; 4], offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + offset)
}

/// Tunnel host `i`, on the underlay port's /12: tenant `i`'s, or (past
/// the tenants) a small tenant's added at run time.
fn host(i: u32) -> Ipv4Addr {
    ip([172, 16, 1, 0], i)
}

/// Tenant `i`'s public /32, in 198.18.0.0/15.
fn public_of(i: u32) -> Ipv4Addr {
    ip([198, 18, 0, 0], i)
}

/// Tenant `i`: `routes` tenant-like routes (its default route to the
/// public side, the others to its one host), its prefix the /16 they sit
/// in, and a public /32 routed to its host if `public`.
fn tenant(i: u32, routes: u32, public: bool) -> Tenant {
    let h = host(i);
    let generated = testgen::tenant_like(u64::from(i) + 1, routes as usize - usize::from(public));
    let block = generated.get(1).map_or(0x0a00_0000, |r| r.0 & 0xffff_0000);
    let mut routes: Vec<TenantRoute> = generated
        .iter()
        .map(|&(addr, len, nh)| TenantRoute {
            prefix: cidr(addr, len),
            to: if nh == 0 {
                RouteTarget::Public
            } else {
                RouteTarget::Host(h)
            },
        })
        .collect();
    let mut public_prefixes = Vec::new();
    if public {
        let p = cidr(u32::from(public_of(i)), 32);
        routes.push(TenantRoute {
            prefix: p,
            to: RouteTarget::Host(h),
        });
        public_prefixes.push(p);
    }
    Tenant {
        name: format!("t{i}"),
        key: i + 1,
        encap: Default::default(),
        gre_checksum: false,
        gre_sequence: false,
        hosts: vec![h],
        prefixes: vec![cidr(block, 16)],
        mac: None,
        routes,
        public_prefixes,
        neighbours: Vec::new(),
        rules: Vec::new(),
        default_in: DEFAULT_IN,
        default_out: DEFAULT_OUT,
    }
}

/// An address of tenant `t`'s prefix, `n`th of the `/24` `sub`.
fn private_of(config: &Config, t: u32, sub: u32, n: u32) -> Ipv4Addr {
    let block = u32::from(config.tenants[t as usize].prefixes[0].addr);
    Ipv4Addr::from(block | (sub << 8) | (n + 1))
}

/// The shape of a configuration at scale: what `changes` measures
/// changes against and what `scrape` starts tgw with.
pub struct Scale {
    pub tenants: u32,
    pub routes_per_tenant: u32,
    pub public_prefixes: bool,
    pub eips: u32,
    pub global_routes: usize,
    /// Tenant slots beyond `tenants`, for tenants added at run time.
    pub spare_slots: u32,
}

impl Scale {
    /// The config at scale, in memory: the ports parsed and checked as a
    /// file is (two `net_null` ports, `[eal] main_lcore = 0`, one worker
    /// on lcore 1), the rest generated (valid by construction: unique
    /// names, keys and addresses, every host on the underlay subnet, every
    /// private address in its tenant's prefix).
    pub fn config(&self) -> Result<Config, String> {
        let cpus: CpuSet = "0-3".parse().map_err(|e| format!("{e:?}"))?;
        let mut c = parse(PORTS, "changes.toml", &cpus).map_err(|e| e.to_string())?;
        c.dataplane.tenant_slots = (self.tenants + self.spare_slots).min(TENANT_SLOTS_MAX);
        c.tenants = (0..self.tenants)
            .map(|i| tenant(i, self.routes_per_tenant, self.public_prefixes))
            .collect();
        let per = self.eips.div_ceil(self.tenants.max(1));
        if per > 100 {
            return Err("at most 100 elastic IPs a tenant".into());
        }
        c.eips = (0..self.eips)
            .map(|j| Eip {
                public: ip([100, 64, 0, 0], j),
                tenant: (j % self.tenants) as usize,
                private: private_of(&c, j % self.tenants, 200, j / self.tenants),
            })
            .collect();
        c.routes = testgen::bgp_like(7, self.global_routes)
            .into_iter()
            .map(|(addr, len, nh)| Route {
                prefix: cidr(addr, len),
                via: ip([1, 1, 1, 2], nh),
                port: 0,
            })
            .collect();
        Ok(c)
    }
}

/// The config `changes` measures against.
fn config(args: &ChangesArgs) -> Result<Config, String> {
    Scale {
        tenants: args.tenants,
        routes_per_tenant: args.routes_per_tenant,
        public_prefixes: args.public_prefixes,
        eips: args.eips,
        global_routes: args.global_routes,
        // Slots for the small tenants too: a removed one's waits for the
        // readers' sweeps before it is given again.
        spare_slots: args.changes + 64,
    }
    .config()
}

fn op(v: Value) -> Op {
    serde_json::from_value(v).expect("a well-formed op")
}

/// The daemon's side: the handler, the publisher, the resolver (its
/// neighbour table; no frames ever reach it here) and the workers'
/// counters.
struct Daemon {
    handler: Handler,
    publisher: Arc<Publisher<Tables>>,
    resolver: Resolver<VecFrame>,
    counters: Vec<Arc<WorkerCounters>>,
}

impl Daemon {
    fn change(&mut self, op: &Op) -> Result<ctl::running::Applied, String> {
        let cx = ChangeCx {
            publisher: &self.publisher,
            resolver: &mut self.resolver,
            counters: &self.counters,
            // No pool changes here: no worker shares to hand out.
            share_mailboxes: &[],
            offload: None,
        };
        self.handler.change(op, cx).map_err(|e| e.to_string())
    }
}

/// Snapshot takers: each takes the newest snapshot, "works" on it for a
/// pause, and moves its sweep on every millisecond (a removed tenant's
/// slot waits for two sweeps).
struct Readers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Readers {
    fn start(d: &Daemon, pause: Duration) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = d
            .counters
            .iter()
            .map(|c| {
                let mut reader = d.publisher.reader();
                let counters = Arc::clone(c);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut bursts = 0u64;
                    let mut swept = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let t = reader.get();
                        black_box(t.tenants.len() + t.eips.len());
                        bursts += 1;
                        if swept.elapsed() >= Duration::from_millis(1) {
                            counters.sweep_passes.inc();
                            swept = Instant::now();
                        }
                        std::thread::sleep(pause);
                    }
                    bursts
                })
            })
            .collect();
        Readers { stop, threads }
    }

    /// Snapshots taken, all readers together.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum()
    }
}

/// The latencies of one kind of change.
struct Kind {
    name: &'static str,
    times: Vec<Duration>,
}

impl Kind {
    fn at(&self, q: f64) -> Duration {
        let mut t = self.times.clone();
        t.sort_unstable();
        t.get(((t.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Changes a second, back to back (the sum of their latencies).
    fn rate(&self) -> f64 {
        let total: Duration = self.times.iter().sum();
        self.times.len() as f64 / total.as_secs_f64().max(1e-9)
    }

    fn json(&self) -> Value {
        json!({
            "changes": self.times.len(),
            "per_second": self.rate(),
            "p50_us": self.at(0.5).as_secs_f64() * 1e6,
            "p99_us": self.at(0.99).as_secs_f64() * 1e6,
            "max_us": self.at(1.0).as_secs_f64() * 1e6,
        })
    }
}

/// What a snapshot holds, roughly: counts and the LPMs' bytes.
fn memory(t: &Tables) -> Value {
    let vrfs: usize = t.tenants.iter().map(|x| x.vrf.memory_bytes()).sum();
    json!({
        "tenants": t.tenants.len(),
        "eips": t.eips.len(),
        "public_routes": t.public.route_count(),
        "public_lpm_bytes": t.public.memory_bytes(),
        "underlay_lpm_bytes": t.underlay.memory_bytes(),
        "ingress_routes": t.ingress.len(),
        "vrf_bytes": vrfs,
        "rss_bytes": rss_bytes(),
    })
}

/// The process's resident memory, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Runs `make(i)` for `i` in `0..n` through the daemon, each timed; `after`
/// sees each change's result (untimed), then the handler's tick runs, as
/// the control loop's does between requests.
fn measure(
    d: &mut Daemon,
    name: &'static str,
    n: u32,
    make: impl Fn(u32) -> Op,
    mut after: impl FnMut(u32, &ctl::running::Applied),
) -> Result<Kind, String> {
    let mut times = Vec::with_capacity(n as usize);
    for i in 0..n {
        let op = make(i);
        let start = Instant::now();
        let applied = d.change(&op).map_err(|e| format!("{name} #{i}: {e}"))?;
        times.push(start.elapsed());
        if applied.changes.is_empty() {
            return Err(format!("{name} #{i} changed nothing"));
        }
        after(i, &applied);
        d.handler.tick(&d.counters);
    }
    Ok(Kind { name, times })
}

/// A small tenant added at run time: one host (past the base tenants'),
/// a default route, a subnet to its host, a public /32 and one rule.
fn small_tenant(args: &ChangesArgs, i: u32) -> Value {
    let h = host(args.tenants + i);
    let public = public_of(args.tenants + i);
    json!({
        "name": format!("s{i}"),
        "key": 10_000_000 + i,
        "hosts": [h.to_string()],
        "prefixes": ["10.99.0.0/24"],
        "public_prefixes": [format!("{public}/32")],
        "routes": [
            {"prefix": "0.0.0.0/0", "to": "public"},
            {"prefix": "10.98.0.0/24", "to": h.to_string()},
            {"prefix": format!("{public}/32"), "to": h.to_string()},
        ],
        "rules": [{"direction": "in", "action": "allow", "proto": "tcp", "dport": 22}],
    })
}

/// Every kind of single change, `args.changes` of each.
fn singles(d: &mut Daemon, args: &ChangesArgs, c: &Config) -> Result<Vec<Kind>, String> {
    let n = args.changes;
    let t = args.tenants;
    let tenant = |i: u32| format!("t{}", i % t);
    let mut kinds = Vec::new();
    // Elastic IPs in 98.0.0.0/8, on the /24 201 of their tenant's prefix.
    let eip = |i: u32| ip([98, 0, 0, 0], i).to_string();
    kinds.push(measure(
        d,
        "eip.add",
        n,
        |i| {
            op(json!({"op": "eip.add", "args": {"eip": {
                "public": eip(i),
                "tenant": tenant(i),
                "private": private_of(c, i % t, 201, i / t).to_string(),
            }}}))
        },
        |_, _| {},
    )?);
    kinds.push(measure(
        d,
        "eip.del",
        n,
        |i| op(json!({"op": "eip.del", "args": {"public": eip(i)}})),
        |_, _| {},
    )?);
    // Routes to 11.0.0.0/8, outside the blocks tenant-like VRFs use.
    let route = |i: u32| format!("11.{}.{}.0/24", i / t / 256, (i / t) % 256);
    kinds.push(measure(
        d,
        "route.add",
        n,
        |i| {
            op(
                json!({"op": "route.add", "args": {"tenant": tenant(i), "route": {
                "prefix": route(i), "to": host(i % t).to_string()}}}),
            )
        },
        |_, _| {},
    )?);
    kinds.push(measure(
        d,
        "route.del",
        n,
        |i| op(json!({"op": "route.del", "args": {"tenant": tenant(i), "prefix": route(i)}})),
        |_, _| {},
    )?);
    let mut handles = vec![0u64; n as usize];
    kinds.push(measure(
        d,
        "rule.add",
        n,
        |i| {
            op(
                json!({"op": "rule.add", "args": {"tenant": tenant(i), "rule": {
                "direction": "in", "action": "allow", "proto": "tcp",
                "dport": 1000 + i / t}}}),
            )
        },
        |i, applied| {
            if let Some(r) = applied.rules.first() {
                handles[i as usize] = r.handle;
            }
        },
    )?);
    kinds.push(measure(
        d,
        "rule.del",
        n,
        |i| {
            op(json!({"op": "rule.del", "args": {
                "tenant": tenant(i), "handle": handles[i as usize]}}))
        },
        |_, _| {},
    )?);
    kinds.push(measure(
        d,
        "tenant.add",
        n,
        |i| op(json!({"op": "tenant.add", "args": {"tenant": small_tenant(args, i)}})),
        |_, _| {},
    )?);
    kinds.push(measure(
        d,
        "tenant.del",
        n,
        |i| op(json!({"op": "tenant.del", "args": {"name": format!("s{i}")}})),
        |_, _| {},
    )?);
    Ok(kinds)
}

/// `args.batch` elastic IPs bound in one `batch`, timed; then unbound in
/// another, timed too.
fn batch(d: &mut Daemon, args: &ChangesArgs, c: &Config) -> Result<Value, String> {
    let t = args.tenants;
    let public = |i: u32| ip([99, 0, 0, 0], i).to_string();
    let adds = Op::Batch {
        ops: (0..args.batch)
            .map(|i| {
                op(json!({"op": "eip.add", "args": {"eip": {
                    "public": public(i),
                    "tenant": format!("t{}", i % t),
                    "private": private_of(c, i % t, 202, i / t).to_string(),
                }}}))
            })
            .collect(),
    };
    let dels = Op::Batch {
        ops: (0..args.batch)
            .map(|i| op(json!({"op": "eip.del", "args": {"public": public(i)}})))
            .collect(),
    };
    // The running state's share alone, on a copy of it: what is left is
    // the snapshot's and the publisher's.
    let mut alone = Running::new(c.clone());
    let start = Instant::now();
    alone.apply(&adds).map_err(|e| e.to_string())?;
    let running_add = start.elapsed();
    drop(alone);
    let start = Instant::now();
    let added = d.change(&adds)?;
    let add = start.elapsed();
    let during = memory(&d.publisher.current());
    let start = Instant::now();
    let removed = d.change(&dels)?;
    let del = start.elapsed();
    if added.changes.len() != args.batch as usize || removed.changes.len() != args.batch as usize {
        return Err(format!(
            "the batches changed {} and {} elastic IPs, not {}",
            added.changes.len(),
            removed.changes.len(),
            args.batch
        ));
    }
    Ok(json!({
        "eips": args.batch,
        "add_ms": add.as_secs_f64() * 1e3,
        "running_state_add_ms": running_add.as_secs_f64() * 1e3,
        "del_ms": del.as_secs_f64() * 1e3,
        "memory_after_add": during,
    }))
}

pub fn run(args: &ChangesArgs) -> Result<(), String> {
    if args.tenants == 0 || args.routes_per_tenant < 2 || args.changes == 0 {
        return Err("need --tenants ≥ 1, --routes-per-tenant ≥ 2, --changes ≥ 1".into());
    }
    let start = Instant::now();
    let c = config(args)?;
    let generated = start.elapsed();

    let start = Instant::now();
    let running = Running::new(c.clone());
    let ports = vec![
        (0, MacAddr([2, 0, 0, 0, 0, 1])),
        (1, MacAddr([2, 0, 0, 0, 0, 2])),
    ];
    let runtime = Runtime::new(&c, ports);
    let cpus: CpuSet = "0-3".parse().map_err(|e| format!("{e:?}"))?;
    let mut handler = Handler::new(running, runtime, cpus, PathBuf::from("changes.toml"));
    // Room for every tunnel host (the base tenants', the small ones') and
    // the global routes' next hops, all pinned.
    let writer = NeighbourWriter::with_limits(NeighbourLimits {
        ports: (args.tenants + args.changes) as usize + 1024,
        tenants: 1024,
        per_tenant: 64,
    });
    let mut resolver = Resolver::new(
        writer,
        ResolverConfig {
            reachable_ms: 30_000,
            retry_ms: 1000,
            retries: 3,
            max_pending: 256,
            max_held: 1024,
            held_per_tenant: 64,
            icmp_per_sec: 100,
            icmp_burst: 10,
        },
    );
    let tables = handler
        .initial(resolver.writer())
        .map_err(|e| format!("the initial snapshot: {e}"))?;
    let built = start.elapsed();
    let before = memory(&tables);
    let mut d = Daemon {
        handler,
        publisher: Publisher::new(tables),
        resolver,
        counters: (0..args.readers)
            .map(|_| Arc::new(WorkerCounters::default()))
            .collect(),
    };

    let readers = Readers::start(&d, Duration::from_micros(args.reader_pause_us));
    let singles = singles(&mut d, args, &c);
    let batch = singles.is_ok().then(|| batch(&mut d, args, &c));
    let snapshots = readers.stop();
    let singles = singles?;
    let batch = batch.unwrap_or_else(|| Err("not run".into()))?;
    let after = memory(&d.publisher.current());

    let report = json!({
        "tenants": args.tenants,
        "routes_per_tenant": args.routes_per_tenant,
        "public_prefixes": args.public_prefixes,
        "eips": args.eips,
        "global_routes": c.routes.len(),
        "generate_ms": generated.as_secs_f64() * 1e3,
        "initial_ms": built.as_secs_f64() * 1e3,
        "readers": args.readers,
        "snapshots_taken": snapshots,
        "singles": singles.iter().map(|k| (k.name.to_owned(), k.json())).collect::<serde_json::Map<_, _>>(),
        "batch": batch,
        "memory_before": before,
        "memory_after": after,
    });
    print!("{}", table(&report, &singles));
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn write_json(path: &Path, report: &Value) -> Result<(), String> {
    std::fs::write(path, report.to_string() + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

fn table(r: &Value, singles: &[Kind]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} tenants x {} routes, {} elastic IPs, {} global routes: generated in {:.0} ms, running state and first snapshot in {:.0} ms",
        r["tenants"], r["routes_per_tenant"], r["eips"], r["global_routes"],
        r["generate_ms"].as_f64().unwrap_or(0.0), r["initial_ms"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        s,
        "{:<11} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "change", "n", "per s", "p50 us", "p99 us", "max us"
    );
    for k in singles {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let _ = writeln!(
            s,
            "{:<11} {:>8} {:>10.0} {:>9.1} {:>9.1} {:>9.1}",
            k.name,
            k.times.len(),
            k.rate(),
            us(k.at(0.5)),
            us(k.at(0.99)),
            us(k.at(1.0))
        );
    }
    let b = &r["batch"];
    let _ = writeln!(
        s,
        "batch of {} eip.add: {:.1} ms (the running state alone, on a copy: {:.1} ms; the eip.del batch: {:.1} ms)",
        b["eips"],
        b["add_ms"].as_f64().unwrap_or(0.0),
        b["running_state_add_ms"].as_f64().unwrap_or(0.0),
        b["del_ms"].as_f64().unwrap_or(0.0)
    );
    for (when, m) in [
        ("before", &r["memory_before"]),
        ("batch bound", &b["memory_after_add"]),
        ("after", &r["memory_after"]),
    ] {
        let mib = |k: &str| m[k].as_f64().unwrap_or(0.0) / f64::from(1 << 20);
        let _ = writeln!(
            s,
            "snapshot {when}: {} tenants, {} eips, public LPM {:.1} MiB ({} routes), tenants' VRFs {:.1} MiB, ingress {} routes; RSS {:.0} MiB",
            m["tenants"], m["eips"], mib("public_lpm_bytes"), m["public_routes"],
            mib("vrf_bytes"), m["ingress_routes"], mib("rss_bytes")
        );
    }
    let _ = writeln!(s, "readers took {} snapshots", r["snapshots_taken"]);
    s
}
