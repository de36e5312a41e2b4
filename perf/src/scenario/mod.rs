//! `tgw-perf scenario`: the reference scenario of DESIGN.md with real Linux
//! hosts in network namespaces, tgw between them on two DPDK ports, the
//! checks of issue 5, a scrape of tgw's `/metrics` (issue 12), and a
//! short summary.
//! `scripts/demo` runs it for people and `tests/scenario.rs` for the suite:
//! one implementation.
//!
//! ```text
//!  client ns                tgw ns                       switch ns          host1 ns
//!  eth0 1.1.1.7/24 ──veth── pub  [tgw]  und ──veth── p-gw ┐                 u0 172.168.0.11/24
//!  default via 1.1.1.1     (DPDK af_packet ports,         br0 ── p-host1 ── tgw-perf tunnel key 1000
//!  servers on 22, 23        1.1.1.1 and 172.168.0.1        │                 tap0 10.0.0.7/24 (EIP 2.2.2.11)
//!                           live in tgw only)              │                 default via 10.0.0.1 (tgw, proxy ARP)
//!                                                          └── p-host2 ──    host2 ns: 172.168.0.12,
//!                                                                            key 2000, 10.0.0.7 (EIP 2.2.2.12)
//! ```
//!
//! tgw runs `examples/reference.toml` with its ports on the veth ends and
//! no static neighbour, so its resolver must learn every MAC from the real
//! stacks. The hosts hold only 10.0.0.7: the client reaches them through
//! their elastic IPs, and tgw's firewall decides what may open.
//!
//! Everything made here (namespaces, veths, processes, files, DPDK runtime
//! files) is removed when it ends, also on failure or Ctrl-C.

mod after;
mod checks;
mod config;
mod fragments;
mod live;
mod metrics;
mod runtime;
mod scripts;
mod wire;
mod world;

use std::net::Ipv4Addr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::dut;
use crate::netns::Netns;
use after::{after_checks, strict_host_received, Captures};
use checks::{Checks, Status, Summary};
pub use config::Pmd;
use live::live_checks;
use world::{capture, serve, topology, RuntimeDir};

#[derive(clap::Args, Debug)]
pub struct ScenarioArgs {
    /// The tgw binary (default: next to tgw-perf, else on PATH).
    #[arg(long)]
    tgw: Option<PathBuf>,
    /// The tgwctl binary the runtime steps change tgw with (default: next
    /// to tgw-perf, else on PATH).
    #[arg(long)]
    tgwctl: Option<PathBuf>,
    /// The DPDK driver on tgw's veth ends: af_packet or af_xdp.
    #[arg(long, default_value = "af_packet")]
    pmd: Pmd,
    /// Run tgw without hugepages (also the default when none are reserved).
    #[arg(long)]
    no_huge: bool,
    /// Seconds of bulk TCP from the client to tenant 1.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Also write every check, tgw's counters and the agents' as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// tgw's workers, each polling its own queue of both ports (1 or 2;
    /// with 2 the connections' two directions often arrive at different
    /// workers and meet at the owner through the handoff rings).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    workers: u8,
    /// Also check fragments with the real stacks: out of order, and too
    /// big for the tunnel without DF (ports that do not reassemble only:
    /// use with `--pmd af_xdp`).
    #[arg(long)]
    fragments: bool,
}

const CLIENT: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 7);
const GW_PUBLIC: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);
const GW_UNDERLAY: Ipv4Addr = Ipv4Addr::new(172, 168, 0, 1);
const PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
/// The hosts' default router inside the tunnels: any address tgw answers
/// ARP for.
const INSIDE_ROUTER: &str = "10.0.0.1";
/// A key no tenant has, sent by host 1.
const UNKNOWN_KEY: u32 = 3000;
const UNKNOWN_SENT: u64 = 5;
const ECHO_BYTES: usize = 256 << 10;
/// The bytes a tenant sends to the client's server.
const OUT_BYTES: usize = 16 << 10;
/// How long a connection the firewall refuses may try: tgw drops
/// silently, so the attempt times out; 1 s sends the SYN and at most one
/// retransmission (Linux's first RTO is 1 s).
const BLOCKED_TIMEOUT_S: f64 = 1.0;
const PINGS: usize = 3;
/// The TTL the client's echo requests leave with.
const PING_TTL: u8 = 64;
/// How long tgw, an agent, a server or tcpdump may take to come up.
const READY: Duration = Duration::from_secs(60);
/// How long a client program may run.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// A tenant host.
pub struct Host {
    pub name: &'static str,
    pub tenant: &'static str,
    pub key: u32,
    pub underlay: Ipv4Addr,
    pub public: Ipv4Addr,
    /// The TCP port the tenant's firewall lets in, and the one it may not
    /// open toward the Internet (DESIGN.md). The other tenant's port is
    /// refused inbound and allowed outbound.
    pub port: u16,
    /// Whether the host's tunnel is Linux's `csum seq`: it sends GRE
    /// checksums and sequence numbers (`tgw-perf tunnel --csum --seq`,
    /// `ocsum oseq`), which tgw must verify and skip (RFC 2784 / 2890),
    /// and drops what arrives without them or out of order
    /// (`--require-csum --require-seq`, `icsum iseq`), so its tenant has
    /// `gre_checksum` and `gre_sequence` (see [`Host::receives`]).
    pub csum_seq: bool,
}

impl Host {
    /// The GRE options the host requires and tgw, configured for them,
    /// sends it: (checksum, sequence). tgw refuses `gre_sequence` with
    /// more than one worker (docs/decisions.md), so with two the host's
    /// tunnel is `csum` alone on the way in.
    pub fn receives(&self, workers: usize) -> (bool, bool) {
        (self.csum_seq, self.csum_seq && workers == 1)
    }
}

/// The other tenant's port: closed inbound, open outbound, for host `i`.
fn other_port(i: usize) -> u16 {
    HOSTS[1 - i].port
}

pub const HOSTS: [Host; 2] = [
    Host {
        name: "host1",
        tenant: "t1",
        key: 1000,
        underlay: Ipv4Addr::new(172, 168, 0, 11),
        public: Ipv4Addr::new(2, 2, 2, 11),
        port: 22,
        csum_seq: true,
    },
    Host {
        name: "host2",
        tenant: "t2",
        key: 2000,
        underlay: Ipv4Addr::new(172, 168, 0, 12),
        public: Ipv4Addr::new(2, 2, 2, 12),
        port: 23,
        csum_seq: false,
    },
];

pub fn run(args: &ScenarioArgs) -> Result<(), String> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once (the next run removes
        // what it leaves); the first lets the scenario clean up.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&interrupted))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&interrupted)))
            .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
    let started = Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| scenario(args, &interrupted)));
    let (checks, summary, report) = match result {
        Ok(r) => r?,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            return Err(format!("the scenario could not run: {why}"));
        }
    };
    let total = started.elapsed().as_secs_f64();

    println!();
    println!("reached:");
    for l in &summary.reached {
        println!("  {l}");
    }
    println!("blocked:");
    for l in &summary.blocked {
        println!("  {l}");
    }
    println!("tgw:");
    for l in &summary.tgw {
        println!("  {l}");
    }
    if !summary.metrics.is_empty() {
        println!(
            "/metrics (curl http://{}/metrics in tgw's namespace):",
            metrics::LISTEN
        );
        for l in &summary.metrics {
            println!("  {l}");
        }
    }
    let (pass, fail) = (checks.count(Status::Pass), checks.count(Status::Fail));
    println!("checks: {pass} PASS, {fail} FAIL; {total:.1} s");

    if let Some(path) = &args.json {
        let mut report = report;
        report["checks"] = checks.json();
        report["seconds"]["total"] = json!(total);
        std::fs::write(path, report.to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if fail > 0 {
        return Err(format!("{fail} check(s) failed"));
    }
    Ok(())
}

fn check_interrupt(flag: &AtomicBool) -> Result<(), String> {
    if flag.load(Ordering::Relaxed) {
        Err("interrupted; everything made was removed".into())
    } else {
        Ok(())
    }
}

/// Builds the topology, runs the checks, tears down (on drop of the
/// [`world::World`], whatever happens).
fn scenario(
    args: &ScenarioArgs,
    interrupted: &AtomicBool,
) -> Result<(Checks, Summary, Value), String> {
    let t0 = Instant::now();
    let hugepages = !args.no_huge && dut::hugepages_available();
    let tgw_bin = args
        .tgw
        .clone()
        .unwrap_or_else(|| dut::sibling_or_path("tgw"));
    let me = std::env::current_exe().map_err(|e| format!("this executable: {e}"))?;
    let net = Netns::new("scenario").map_err(|u| u.0)?;
    let prefix = format!("tgw-scenario-{}", std::process::id());
    let _runtime = RuntimeDir(prefix.clone());
    eprintln!(
        "tgw-perf scenario: tgw on {} ports, {}; scratch {}",
        args.pmd.name(),
        if hugepages {
            "hugepages"
        } else {
            "no hugepages"
        },
        net.path("").display()
    );
    let mut w = topology(net);
    for (name, text) in scripts::ALL {
        std::fs::write(w.net.path(name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    check_interrupt(interrupted)?;

    // Captures first, so that they see tgw's first ARP.
    let (client, switch) = (w.client.clone(), w.switch.clone());
    w.dumps = vec![
        capture(&mut w, &client, "eth0", "public.pcap"),
        capture(&mut w, &switch, "p-gw", "underlay.pcap"),
    ];

    let socket = w.net.path("ctl/tgw.sock");
    let config = config::build(&config::Options {
        pmd: args.pmd,
        public_iface: "pub",
        underlay_iface: "und",
        file_prefix: &prefix,
        hugepages,
        workers: usize::from(args.workers),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        control_socket: socket.to_str().ok_or("socket path")?,
        // Bound at runtime, by the first runtime step.
        unbound_eip: Some(HOSTS[1].public),
        metrics_listen: Some(metrics::LISTEN),
    })?;
    let config_path = w.net.path("tgw.toml");
    let stats_path = w.net.path("tgw-stats.json");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let tgw = w.net.spawn(
        &w.gw.clone(),
        "tgw",
        &[
            tgw_bin.to_str().ok_or("tgw path")?,
            "--config",
            config_path.to_str().ok_or("config path")?,
            "--stats-json",
            stats_path.to_str().ok_or("stats path")?,
        ],
    );
    w.net.wait_for_output(tgw, "forwarding;", READY);
    check_interrupt(interrupted)?;

    let workers = usize::from(args.workers);
    for (i, h) in HOSTS.iter().enumerate() {
        let ns = w.hosts[i].clone();
        let (local, key) = (h.underlay.to_string(), h.key.to_string());
        let remote = GW_UNDERLAY.to_string();
        let mut args = vec![
            me.to_str().ok_or("tgw-perf path")?,
            "tunnel",
            "--local",
            &local,
            "--remote",
            &remote,
            "--key",
            &key,
            "--dev",
            "tap0",
        ];
        if h.csum_seq {
            args.extend(["--csum", "--seq"]);
        }
        let (csum, seq) = h.receives(workers);
        if csum {
            args.push("--require-csum");
        }
        if seq {
            args.push("--require-seq");
        }
        let agent = w.net.spawn(&ns, &format!("agent-{}", h.name), &args);
        w.agents.push(agent);
        w.net.wait_for_output(agent, "tgw-perf tunnel: up:", READY);
        let private = format!("{PRIVATE}/24");
        w.net
            .run_ok(&ns, &["ip", "addr", "add", &private, "dev", "tap0"]);
        w.net.run_ok(
            &ns,
            &["ip", "route", "add", "default", "via", INSIDE_ROUTER],
        );
        // Both tenants' ports on every server, so that a port the
        // firewall should refuse would answer if it got through.
        serve(&mut w, &ns, h.name, "tap0")?;
    }
    let client_ns = w.client.clone();
    serve(&mut w, &client_ns, "client", "eth0")?;
    // The MACs tgw must learn, as the stacks have them: (tgw's port or
    // tenant, address, MAC).
    let mac = |ns: &str, dev: &str| {
        w.net
            .run_ok(ns, &["cat", &format!("/sys/class/net/{dev}/address")])
            .trim()
            .to_owned()
    };
    let mut expected = vec![("pub0".to_owned(), CLIENT, mac(&w.client, "eth0"))];
    for (i, h) in HOSTS.iter().enumerate() {
        expected.push(("und0".to_owned(), h.underlay, mac(&w.hosts[i], "u0")));
        expected.push((h.tenant.to_owned(), PRIVATE, mac(&w.hosts[i], "tap0")));
    }
    let setup = t0.elapsed().as_secs_f64();
    eprintln!("tgw-perf scenario: up in {setup:.1} s; checking");
    check_interrupt(interrupted)?;

    let mut checks = Checks::default();
    let mut summary = Summary::default();
    let t1 = Instant::now();
    let rt = runtime::Runtime {
        ctl: runtime::Ctl {
            bin: args
                .tgwctl
                .clone()
                .unwrap_or_else(|| dut::sibling_or_path("tgwctl")),
            socket,
        },
        tgw,
        config_path: &config_path,
        workers,
    };
    let effects = runtime::steps(&mut w, &rt, &mut checks, interrupted)?;
    let steps = t1.elapsed().as_secs_f64();
    let (bulk, mut attempts) = live_checks(&w, args, &mut checks, &mut summary, interrupted)?;
    for (opened, more) in attempts.opened_in.iter_mut().zip(effects.opened_in) {
        *opened += more;
    }
    check_interrupt(interrupted)?;
    let traffic = t1.elapsed().as_secs_f64();
    // The traffic is over and tgw still runs: what its /metrics says.
    let t_scrape = Instant::now();
    metrics::check(&w, &rt.ctl, &mut checks, &mut summary);
    let scrape = t_scrape.elapsed().as_secs_f64();

    // Stop tgw first (its counters), then the captures (everything it
    // sent is on them), then the hosts.
    let t2 = Instant::now();
    let stopped = w.net.stop(tgw);
    std::thread::sleep(Duration::from_millis(200));
    // What tcpdump could not keep up with, public then underlay: the
    // capture checks say so rather than claim more than they saw.
    let mut missed = Vec::new();
    for d in std::mem::take(&mut w.dumps) {
        let s = w.net.stop(d);
        if !s.status.success() {
            return Err(format!("tcpdump failed ({}): {}", s.status, s.stderr));
        }
        missed.push(
            s.stderr
                .lines()
                .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0),
        );
    }
    let mut agents = Vec::new();
    for a in std::mem::take(&mut w.agents) {
        let s = w.net.stop(a);
        agents.push(serde_json::from_str::<Value>(s.stdout.trim()).unwrap_or(Value::Null));
    }
    checks.record(
        "host1's tunnel (Linux's csum seq) takes everything tgw sends it",
        strict_host_received(&agents, workers),
    );
    for s in std::mem::take(&mut w.servers) {
        w.net.stop(s);
    }
    let stats: Value = std::fs::read_to_string(&stats_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    checks.record(
        "tgw stops cleanly and reports its counters",
        if stopped.status.success() && !stats.is_null() {
            Ok(format!("{}, counters written", stopped.status))
        } else {
            Err(format!(
                "exit {}, stats {}:\n{}",
                stopped.status,
                if stats.is_null() {
                    "missing"
                } else {
                    "written"
                },
                stopped.stderr
            ))
        },
    );

    let underlay = wire::read(&w.net.path("underlay.pcap"))?;
    let public = wire::read(&w.net.path("public.pcap"))?;
    let captures = Captures {
        underlay: &underlay,
        public: &public,
        missed: [missed[0], missed[1]],
    };
    after_checks(
        &mut checks,
        &mut summary,
        &stats,
        &captures,
        &expected,
        &attempts,
        &effects,
    );
    let report = json!({
        "bulk": bulk,
        "pmd": args.pmd.name(),
        "hugepages": hugepages,
        "tgw": stats,
        "agents": agents,
        "frames": {"public": public.len(), "underlay": underlay.len(),
                   "missed_by_tcpdump": {"public": missed[0], "underlay": missed[1]}},
        "seconds": {"setup": setup, "runtime_steps": steps, "traffic": traffic, "metrics": scrape, "stop": t2.elapsed().as_secs_f64()},
    });
    // Dropping `w` removes the namespaces and the scratch files.
    drop(w);
    Ok((checks, summary, report))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// tgw's per-worker counters added up, as one worker's would read.
fn workers_total(stats: &Value) -> Value {
    fn add(into: &mut Value, v: &Value) {
        match (into, v) {
            (into @ Value::Null, v) => *into = v.clone(),
            (Value::Number(a), Value::Number(b)) => {
                if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                    *a = (x + y).into();
                }
            }
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    add(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            _ => {}
        }
    }
    let mut total = Value::Null;
    for w in stats["workers"].as_array().into_iter().flatten() {
        add(&mut total, w);
    }
    total
}
