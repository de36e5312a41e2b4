//! `tgw-perf scenario`: the reference scenario of DESIGN.md with real Linux
//! hosts in network namespaces, tgw between them on two DPDK ports, the
//! checks of issue 5, and a short summary.
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

mod config;
mod fragments;
mod runtime;
mod scripts;
mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::dut;
use crate::netns::{Netns, ProcId};
pub use config::Pmd;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
        }
    }
}

struct Check {
    name: String,
    status: Status,
    detail: String,
}

/// Every check's outcome, printed as it is recorded.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn record(&mut self, name: &str, result: Result<String, String>) {
        let (status, detail) = match result {
            Ok(d) => (Status::Pass, d),
            Err(d) => (Status::Fail, d),
        };
        println!("{} {name}: {detail}", status.name());
        self.0.push(Check {
            name: name.to_owned(),
            status,
            detail,
        });
    }

    fn count(&self, status: Status) -> usize {
        self.0.iter().filter(|c| c.status == status).count()
    }

    fn json(&self) -> Value {
        self.0
            .iter()
            .map(|c| json!({"name": c.name, "status": c.status.name(), "detail": c.detail}))
            .collect()
    }
}

/// The human summary, filled in as the checks learn things.
#[derive(Default)]
struct Summary {
    reached: Vec<String>,
    blocked: Vec<String>,
    tgw: Vec<String>,
}

/// The namespaces and what runs in them.
struct World {
    net: Netns,
    client: String,
    gw: String,
    switch: String,
    hosts: [String; 2],
    agents: Vec<ProcId>,
    servers: Vec<ProcId>,
    /// tcpdump on the client's link and on tgw's underlay link.
    dumps: Vec<ProcId>,
}

/// DPDK's runtime directory of a file prefix, removed at the end.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        dut::remove_runtime_dir(&self.0);
    }
}

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
/// [`World`], whatever happens).
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
        "seconds": {"setup": setup, "runtime_steps": steps, "traffic": traffic, "stop": t2.elapsed().as_secs_f64()},
    });
    // Dropping `w` removes the namespaces and the scratch files.
    drop(w);
    Ok((checks, summary, report))
}

/// The namespaces, links and addresses of the diagram at the top.
fn topology(mut net: Netns) -> World {
    let client = net.add("client");
    let gw = net.add("tgw");
    let switch = net.add("switch");
    let hosts = [net.add("host1"), net.add("host2")];
    // IPv4 only: nothing but the scenario's own traffic on the links.
    for ns in [&client, &gw, &switch, &hosts[0], &hosts[1]] {
        net.run_ok(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
    }
    net.veth(&client, "eth0", &gw, "pub");
    net.veth(&gw, "und", &switch, "p-gw");
    for (i, ns) in hosts.iter().enumerate() {
        net.veth(ns, "u0", &switch, &format!("p-host{}", i + 1));
    }
    net.run_ok(&switch, &["ip", "link", "add", "br0", "type", "bridge"]);
    for port in ["p-gw", "p-host1", "p-host2"] {
        net.run_ok(&switch, &["ip", "link", "set", port, "master", "br0"]);
    }
    net.run_ok(&switch, &["ip", "link", "set", "br0", "up"]);
    // tgw is a user-space forwarder: DPDK fills no partial checksums, so
    // the stacks must send them whole, and no segment may be bigger than
    // the link.
    for (ns, dev) in [
        (&client, "eth0"),
        (&gw, "pub"),
        (&gw, "und"),
        (&switch, "p-gw"),
        (&switch, "p-host1"),
        (&switch, "p-host2"),
        (&hosts[0], "u0"),
        (&hosts[1], "u0"),
    ] {
        net.run_ok(
            ns,
            &[
                "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
            ],
        );
    }
    net.run_ok(&client, &["ip", "addr", "add", "1.1.1.7/24", "dev", "eth0"]);
    net.run_ok(
        &client,
        &["ip", "route", "add", "default", "via", "1.1.1.1"],
    );
    for (h, ns) in HOSTS.iter().zip(&hosts) {
        let addr = format!("{}/24", h.underlay);
        net.run_ok(ns, &["ip", "addr", "add", &addr, "dev", "u0"]);
    }
    World {
        net,
        client,
        gw,
        switch,
        hosts,
        agents: Vec::new(),
        servers: Vec::new(),
        dumps: Vec::new(),
    }
}

/// tcpdump on `dev` in `ns` into `file`: headers only (200 bytes is the
/// outer headers, GRE, the inner Ethernet and IPv4 and a quoted header).
fn capture(w: &mut World, ns: &str, dev: &str, file: &str) -> ProcId {
    let path = w.net.path(file);
    let id = w.net.spawn(
        ns,
        &format!("tcpdump-{dev}"),
        &[
            "tcpdump",
            "-i",
            dev,
            "-n",
            "-U",
            "-Z",
            "root",
            "-s",
            "200",
            "-B",
            "32768",
            "-c",
            "2000000",
            "-w",
            path.to_str().unwrap_or_default(),
        ],
    );
    w.net.wait_for_output(id, "listening on", READY);
    id
}

/// `serve.py` in `ns` on both tenants' ports, answering as `name` with the
/// MAC of `dev`; returns once it listens.
fn serve(w: &mut World, ns: &str, name: &str, dev: &str) -> Result<(), String> {
    let serve = w.net.path("serve.py");
    let ports = HOSTS.map(|h| h.port.to_string());
    let mut argv = vec!["python3", serve.to_str().ok_or("script path")?, name, dev];
    argv.extend(ports.iter().map(String::as_str));
    let server = w.net.spawn(ns, &format!("server-{name}"), &argv);
    w.servers.push(server);
    w.net.wait_for_output(server, "listening", READY);
    Ok(())
}

/// Runs a client script in `ns`; its last stdout line as JSON.
fn py(w: &World, ns: &str, script: &str, args: &[&str]) -> Result<Value, String> {
    let path = w.net.path(script);
    let mut argv = vec!["python3", path.to_str().unwrap_or_default()];
    argv.extend_from_slice(args);
    let out = w
        .net
        .try_run(ns, &argv, CLIENT_LIMIT)
        .map_err(|e| format!("{script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).map_err(|_| {
        format!(
            "{script} said {stdout:?}, {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    match v.get("error") {
        Some(e) => Err(format!("{script}: {}", e.as_str().unwrap_or_default())),
        None => Ok(v),
    }
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

/// What the live checks did, for the checks made on tgw's counters and
/// the captures once it has stopped.
struct Attempts {
    /// How the client's attempts on the ports each tenant refuses ended
    /// (connect.py's answer), or why there is none.
    inbound: Result<Value, String>,
    /// The same for each tenant's attempt on the client's port it may not
    /// open.
    outbound: [Result<Value, String>; 2],
    /// TCP connections the client opened to each tenant's open port.
    opened_in: [u64; 2],
    /// ping.py runs to each elastic IP: one ICMP flow each (one
    /// identifier).
    pings: [u64; 2],
    /// TCP connections each tenant opened to the client.
    opened_out: [u64; 2],
}

/// The identity line's `key=value` fields.
fn fields(identity: &str) -> BTreeMap<&str, &str> {
    identity
        .split(' ')
        .filter_map(|f| f.split_once('='))
        .collect()
}

/// The checks made with traffic while everything runs; the firewall's
/// refusals are judged later, with tgw's counters and the captures.
fn live_checks(
    w: &World,
    args: &ScenarioArgs,
    checks: &mut Checks,
    summary: &mut Summary,
    interrupted: &AtomicBool,
) -> Result<(Value, Attempts), String> {
    let mut attempts = Attempts {
        inbound: Err("not tried".into()),
        outbound: [Err("not tried".into()), Err("not tried".into())],
        opened_in: [0; 2],
        pings: [0; 2],
        opened_out: [0; 2],
    };
    // TCP to each elastic IP: the data back intact, and each host says
    // who it is, the address it was reached at, and whom it saw.
    let mut identities = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let name = format!(
            "TCP {}:{} reaches {} and echoes intact",
            h.public, h.port, h.name
        );
        attempts.opened_in[i] += 1;
        let result = py(
            w,
            &w.client,
            "tcp.py",
            &[
                &h.public.to_string(),
                &h.port.to_string(),
                &ECHO_BYTES.to_string(),
            ],
        )
        .and_then(|v| {
            let id = v["identity"].as_str().unwrap_or_default().to_owned();
            identities.push((h, id.clone()));
            let peer = fields(&id).get("peer").copied().unwrap_or_default();
            if !id.starts_with(h.name) {
                Err(format!("answered by {id:?}, not {}", h.name))
            } else if peer != CLIENT.to_string() {
                Err(format!("{} saw the client as {peer}, not {CLIENT}", h.name))
            } else if v["intact"] != true || u(&v, "back") != ECHO_BYTES as u64 {
                Err(format!(
                    "{} of {ECHO_BYTES} bytes came back, intact: {}",
                    u(&v, "back"),
                    v["intact"]
                ))
            } else {
                Ok(format!(
                    "{} KiB echoed in {} ms; {} (tenant {}, key {}) saw the client as {peer}",
                    ECHO_BYTES >> 10,
                    v["ms"],
                    h.name,
                    h.tenant,
                    h.key
                ))
            }
        });
        if let Ok(d) = &result {
            summary
                .reached
                .push(format!("client {CLIENT} -> {}:{}: {}", h.public, h.port, d));
        }
        checks.record(&name, result);
        check_interrupt(interrupted)?;
    }

    // The two 10.0.0.7 are different machines: each answered with its own
    // name and TAP MAC, and both hold 10.0.0.7.
    let result = (|| {
        if identities.len() != 2 {
            return Err("needs both TCP checks' answers".to_owned());
        }
        let mac = |id: &str| {
            fields(id)
                .get("mac")
                .copied()
                .unwrap_or_default()
                .to_owned()
        };
        let (a, b) = (mac(&identities[0].1), mac(&identities[1].1));
        if a.is_empty() || a == b {
            return Err(format!("the same MAC behind both: {a:?} {b:?}"));
        }
        for (i, h) in HOSTS.iter().enumerate() {
            let addrs = w
                .net
                .run_ok(&w.hosts[i], &["ip", "-4", "-o", "addr", "show", "tap0"]);
            if !addrs.contains(&format!("inet {PRIVATE}/24")) {
                return Err(format!("{} does not hold {PRIVATE}: {addrs}", h.name));
            }
        }
        Ok(format!(
            "host1 (tap0 {a}) and host2 (tap0 {b}) both hold {PRIVATE}, in different tenants"
        ))
    })();
    checks.record("the two 10.0.0.7 are different hosts", result);

    // 1:1 NAT: the hosts hold no public address, yet the client reached
    // them at their elastic IPs, and they were reached at 10.0.0.7.
    let result = (|| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let out = w
                .net
                .run_ok(&w.hosts[i], &["ip", "-4", "-o", "addr", "show"]);
            let mut held: Vec<&str> = out
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    it.find(|&f| f == "inet")?;
                    it.next()
                })
                .collect();
            held.sort_unstable();
            let mut want = vec![
                "127.0.0.1/8".to_owned(),
                format!("{}/24", h.underlay),
                format!("{PRIVATE}/24"),
            ];
            want.sort_unstable();
            if held != want {
                return Err(format!("{} holds {held:?}, not only {want:?}", h.name));
            }
            let Some((_, id)) = identities.iter().find(|(x, _)| x.name == h.name) else {
                return Err(format!("no answer from {} to judge by", h.name));
            };
            let local = fields(id).get("local").copied().unwrap_or_default();
            if local != PRIVATE.to_string() {
                return Err(format!(
                    "the client dialled {}, and {} was reached at {local}, not {PRIVATE}",
                    h.public, h.name
                ));
            }
            parts.push(format!("{} -> {}'s {PRIVATE}", h.public, h.name));
        }
        Ok(format!(
            "the hosts hold only {PRIVATE} (and their underlay address); the client dialled {}",
            parts.join(", ")
        ))
    })();
    checks.record(
        "10.0.0.7 is the hosts' only address, 2.2.2.11/12 their elastic IPs",
        result,
    );

    // ICMP echo: every reply back, and its TTL one less than the host sent
    // (the way in is checked on the underlay capture).
    let mut pings = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let host_ttl = w
            .net
            .run_ok(&w.hosts[i], &["sysctl", "-n", "net.ipv4.ip_default_ttl"])
            .trim()
            .parse::<u64>()
            .unwrap_or(64);
        attempts.pings[i] += 1;
        let result = py(
            w,
            &w.client,
            "ping.py",
            &[
                &h.public.to_string(),
                &PINGS.to_string(),
                &PING_TTL.to_string(),
            ],
        )
        .and_then(|v| {
            let ttls: Vec<u64> = v["ttls"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            if ttls.len() != PINGS {
                Err(format!("{} of {PINGS} replies", ttls.len()))
            } else if ttls.iter().any(|&t| t != host_ttl - 1) {
                Err(format!(
                    "reply TTLs {ttls:?}; {} sends {host_ttl}, so one hop makes {}",
                    h.name,
                    host_ttl - 1
                ))
            } else {
                Ok(format!(
                    "{PINGS}/{PINGS} replies, TTL {} ({} sends {host_ttl}), rtt {} ms",
                    host_ttl - 1,
                    h.name,
                    v["rtt_ms"]
                ))
            }
        });
        if result.is_ok() {
            pings.push(format!("{}", h.public));
        }
        checks.record(
            &format!("ping {} answered, TTL decremented once", h.public),
            result,
        );
        check_interrupt(interrupted)?;
    }
    if !pings.is_empty() {
        summary.reached.push(format!(
            "ping {} from the client: every echo answered",
            pings.join(", ")
        ));
    }

    // Proxy ARP inside the tunnels: each host resolved its router
    // 10.0.0.1 to tgw's MAC of its own tenant.
    let result = (|| {
        let macs = config::tenant_macs()?;
        let mut seen = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let want = macs
                .iter()
                .find(|(t, _)| t == h.tenant)
                .map(|(_, m)| m.clone())
                .ok_or_else(|| format!("reference.toml has no MAC for {}", h.tenant))?;
            let out = w.net.run_ok(
                &w.hosts[i],
                &["ip", "-j", "neigh", "show", INSIDE_ROUTER, "dev", "tap0"],
            );
            let got: Value = serde_json::from_str(&out).map_err(|e| format!("{out:?}: {e}"))?;
            let got = got[0]["lladdr"].as_str().unwrap_or("none").to_owned();
            if got != want {
                return Err(format!(
                    "{} resolved {INSIDE_ROUTER} to {got}, not {}'s {want}",
                    h.name, h.tenant
                ));
            }
            seen.push(format!("{} -> {got} ({})", h.name, h.tenant));
        }
        Ok(format!(
            "{INSIDE_ROUTER} resolved through the tunnels: {}",
            seen.join(", ")
        ))
    })();
    checks.record("proxy ARP inside the tunnels: 10.0.0.1 is tgw", result);

    // Each tenant opens the client's port its firewall allows out (the
    // other tenant's): the client's server sees it as its elastic IP.
    let mut parts = Vec::new();
    let mut bad = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let port = other_port(i);
        attempts.opened_out[i] += 1;
        let outcome = py(
            w,
            &w.hosts[i],
            "tcp.py",
            &[
                &CLIENT.to_string(),
                &port.to_string(),
                &OUT_BYTES.to_string(),
            ],
        )
        .and_then(|v| {
            let id = v["identity"].as_str().unwrap_or_default().to_owned();
            let f = fields(&id);
            let peer = f.get("peer").copied().unwrap_or_default();
            if !id.starts_with("client") {
                Err(format!("answered by {id:?}, not the client"))
            } else if peer != h.public.to_string() {
                Err(format!(
                    "the client saw {} as {peer}, not {}",
                    h.name, h.public
                ))
            } else if v["intact"] != true || u(&v, "back") != OUT_BYTES as u64 {
                Err(format!(
                    "{} of {OUT_BYTES} bytes came back, intact: {}",
                    u(&v, "back"),
                    v["intact"]
                ))
            } else {
                Ok(format!(
                    "{} ({}) -> {CLIENT}:{port}: the client saw {peer}, {} KiB echoed",
                    h.name,
                    h.tenant,
                    OUT_BYTES >> 10
                ))
            }
        });
        match outcome {
            Ok(d) => {
                summary.reached.push(d.clone());
                parts.push(d);
            }
            Err(e) => bad.push(format!("{}: {e}", h.name)),
        }
    }
    checks.record(
        "tenant 1 opens the client's TCP 23 and the client sees 2.2.2.11 (tenant 2: TCP 22, 2.2.2.12)",
        if bad.is_empty() {
            Ok(parts.join("; "))
        } else {
            Err(bad.join("; "))
        },
    );
    check_interrupt(interrupted)?;

    // What the firewall must refuse: the client on the other tenant's
    // port of each elastic IP, each tenant on its own port toward the
    // client. Every server listens on both ports, so what got through
    // would connect. Judged with the captures and counters later.
    let timeout = BLOCKED_TIMEOUT_S.to_string();
    let targets: Vec<String> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}:{}", h.public, other_port(i)))
        .collect();
    let mut argv = vec![timeout.as_str()];
    argv.extend(targets.iter().map(String::as_str));
    // All at once: each waits out its timeout.
    std::thread::scope(|s| {
        let timeout = timeout.as_str();
        let from_hosts: Vec<_> = HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let target = format!("{CLIENT}:{}", h.port);
                s.spawn(move || py(w, &w.hosts[i], "connect.py", &[timeout, &target]))
            })
            .collect();
        attempts.inbound = py(w, &w.client, "connect.py", &argv);
        for (i, t) in from_hosts.into_iter().enumerate() {
            attempts.outbound[i] = t
                .join()
                .unwrap_or_else(|_| Err("connect.py's thread panicked".into()));
        }
    });
    check_interrupt(interrupted)?;

    // GRE with a key no tenant has, from host 1: tgw must drop and count
    // it (checked on its counters and the capture when it has stopped).
    py(
        w,
        &w.hosts[0],
        "gre.py",
        &[
            &GW_UNDERLAY.to_string(),
            &UNKNOWN_KEY.to_string(),
            &UNKNOWN_SENT.to_string(),
        ],
    )?;

    // Bulk TCP through tgw for a few seconds, to the port tenant 1's
    // firewall lets in (its server turns sink when asked): throughput,
    // and no retransmission storm (at most 2% of the segments: a storm
    // is far more, and this machine is shared).
    let h = &HOSTS[0];
    attempts.opened_in[0] += 1;
    let bulk = py(
        w,
        &w.client,
        "bulk.py",
        &[
            &h.public.to_string(),
            &h.port.to_string(),
            &args.seconds.to_string(),
        ],
    );
    let result = match &bulk {
        Ok(v) => {
            let (sent, got) = (u(v, "sent"), u(v, "received"));
            let (segs, re) = (u(v, "segments"), u(v, "retransmitted"));
            let d = format!(
                "{} Mbit/s for {} s to {}:{}; {re} of {segs} segments retransmitted \
                 ({} fast retransmits, {} timeouts, {} loss probes, {} DSACKs)",
                v["mbps"],
                v["seconds"],
                h.public,
                h.port,
                u(&v["why"], "TCPFastRetrans"),
                u(&v["why"], "TCPTimeouts"),
                u(&v["why"], "TCPLossProbes"),
                u(&v["why"], "TCPDSACKRecv")
            );
            if got != sent || sent == 0 {
                Err(format!("{got} of {sent} bytes arrived; {d}"))
            } else if re * 50 > segs {
                Err(format!("retransmission storm: {d}"))
            } else {
                summary
                    .reached
                    .push(format!("bulk TCP client -> {}: {d}", h.name));
                Ok(d)
            }
        }
        Err(e) => Err(e.clone()),
    };
    checks.record("bulk TCP through tgw, no retransmission storm", result);
    check_interrupt(interrupted)?;

    if args.fragments {
        fragments::checks(w, checks, &mut attempts);
        check_interrupt(interrupted)?;
    }

    Ok((bulk.unwrap_or(Value::Null), attempts))
}

/// The checks on what tgw counted and what the captures saw.
/// Both captures, and how many frames tcpdump reported it missed on each.
struct Captures<'a> {
    underlay: &'a [Vec<u8>],
    public: &'a [Vec<u8>],
    /// Public, underlay.
    missed: [u64; 2],
}

impl Captures<'_> {
    /// Whether tgw counting `counted` agrees with `seen` frames on
    /// capture `i`: equal, or if tcpdump missed frames, at least those it
    /// saw and no more than it could have missed.
    fn agrees(&self, i: usize, counted: Option<u64>, seen: u64) -> bool {
        counted.is_some_and(|c| c >= seen && c <= seen + self.missed[i])
    }

    /// A note for a check made on capture `i` (0 public, 1 underlay).
    fn note(&self, i: usize) -> String {
        match self.missed[i] {
            0 => String::new(),
            n => format!(" (tcpdump missed {n} frames under load)"),
        }
    }
}

/// The SYNs of the attempts the firewall must refuse, as the captures saw
/// them on the side they were sent from, and whatever of those attempts
/// showed up on the other side of tgw.
#[derive(Default)]
struct Refused {
    /// SYNs from the client to host `i`'s elastic IP on its closed port
    /// (public capture).
    inbound: [u64; 2],
    /// SYNs from host `i`'s 10.0.0.7 to the client on the tenant's closed
    /// port, inside its tunnel (underlay capture).
    outbound: [u64; 2],
    /// Segments of those connections seen past tgw: on the underlay
    /// toward a host, on the public side toward the client.
    crossed: Vec<String>,
}

impl Refused {
    fn total(&self) -> u64 {
        self.inbound.iter().chain(&self.outbound).sum()
    }
}

/// The attempts of [`Attempts`] that the firewall must refuse, on the
/// wire.
fn refused(captures: &Captures) -> Refused {
    let mut r = Refused::default();
    for f in captures.public {
        let Some(wire::Packet::Ipv4(ip)) = wire::parse(f) else {
            continue;
        };
        let Some(t) = wire::tcp(&ip) else { continue };
        for (i, h) in HOSTS.iter().enumerate() {
            if ip.src == CLIENT && ip.dst == h.public && t.dport == other_port(i) && t.is_syn() {
                r.inbound[i] += 1;
            }
            if ip.src == h.public && ip.dst == CLIENT && t.dport == h.port {
                r.crossed.push(format!(
                    "{} -> {CLIENT}:{} on the public side",
                    h.public, h.port
                ));
            }
        }
    }
    for f in captures.underlay {
        let Some(wire::Packet::Ipv4(outer)) = wire::parse(f) else {
            continue;
        };
        let Some(gre) = (outer.protocol == 47)
            .then(|| wire::gre(outer.payload))
            .flatten()
        else {
            continue;
        };
        let Some(wire::Packet::Ipv4(ip)) = wire::parse(gre.inner) else {
            continue;
        };
        let Some(t) = wire::tcp(&ip) else { continue };
        for (i, h) in HOSTS.iter().enumerate() {
            if gre.key != Some(h.key) {
                continue;
            }
            if outer.src == h.underlay
                && ip.src == PRIVATE
                && ip.dst == CLIENT
                && t.dport == h.port
                && t.is_syn()
            {
                r.outbound[i] += 1;
            }
            if outer.dst == h.underlay && ip.src == CLIENT && t.dport == other_port(i) {
                r.crossed.push(format!(
                    "{CLIENT} -> {}:{} inside key {}",
                    ip.dst,
                    other_port(i),
                    h.key
                ));
            }
        }
    }
    r
}

/// How each attempt in connect.py's answer ended: all must have timed
/// out, within the bound.
fn timed_out(answer: &Result<Value, String>, targets: &[String]) -> Result<String, String> {
    let v = answer.as_ref().map_err(Clone::clone)?;
    let mut parts = Vec::new();
    for t in targets {
        let outcome = v[t]["outcome"].as_str().unwrap_or("no answer");
        let ms = v[t]["ms"].as_f64().unwrap_or(f64::NAN);
        if outcome != "timeout" {
            return Err(format!(
                "{t}: {outcome} after {ms} ms, where tgw should drop the SYNs"
            ));
        }
        parts.push(format!("{t} timed out after {ms} ms"));
    }
    Ok(parts.join(", "))
}

/// What the hosts whose tunnels require GRE checksums (and sequence
/// numbers) dropped of what tgw sent them, as Linux would: nothing, and
/// they received.
fn strict_host_received(agents: &[Value], workers: usize) -> Result<String, String> {
    let mut parts = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let (csum, seq) = h.receives(workers);
        if !csum && !seq {
            continue;
        }
        let rx = &agents.get(i).ok_or("no agent report")?["rx"];
        let drops = &rx["drops"];
        let refused: Vec<String> = ["no_checksum", "no_sequence", "old_sequence"]
            .iter()
            .filter(|d| u(drops, d) > 0)
            .map(|d| format!("{d} {}", u(drops, d)))
            .collect();
        let received = u(rx, "packets");
        let rules = if seq { "icsum iseq" } else { "icsum" };
        if !refused.is_empty() || received == 0 {
            return Err(format!(
                "{} ({rules}): received {received}, dropped {}",
                h.name,
                refused.join(", ")
            ));
        }
        parts.push(format!(
            "{} ({rules}): received {received}, none without checksum{}",
            h.name,
            if seq {
                ", sequence number or in order"
            } else {
                ""
            }
        ));
    }
    Ok(parts.join("; "))
}

/// One firewall rule's (or default policy's) decisions in tgw's stats.
fn decisions(stats: &Value, tenant: &str, rule: &str) -> Option<u64> {
    stats["firewall"]
        .as_array()?
        .iter()
        .find(|r| r["tenant"] == tenant && r["rule"] == rule)
        .and_then(|r| r["flows"].as_u64())
}

fn after_checks(
    checks: &mut Checks,
    summary: &mut Summary,
    stats: &Value,
    captures: &Captures,
    expected: &[(String, Ipv4Addr, String)],
    attempts: &Attempts,
    effects: &runtime::Effects,
) {
    let (underlay, public) = (captures.underlay, captures.public);
    let worker_count = stats["workers"].as_array().map_or(1, Vec::len);
    let workers = workers_total(stats);
    let drops = &workers["drops"];
    let unknown = u(drops, "gre_unknown_key");

    // Keys on the underlay: each host's tunnel carries its tenant's key
    // only, and no public address goes inside (1:1 NAT: the hosts know
    // only 10.0.0.7).
    let mut per_host = [0u64; 2];
    let mut probes = 0;
    let mut bad = Vec::new();
    let mut tunnel_ttls = [Vec::new(), Vec::new()];
    for f in underlay {
        let Some(wire::Packet::Ipv4(ip)) = wire::parse(f) else {
            continue;
        };
        if ip.protocol != 47 {
            continue;
        }
        let Some(gre) = wire::gre(ip.payload) else {
            bad.push(format!("truncated GRE {} -> {}", ip.src, ip.dst));
            continue;
        };
        let host = if ip.src == GW_UNDERLAY {
            ip.dst
        } else {
            ip.src
        };
        let Some(i) = HOSTS.iter().position(|h| h.underlay == host) else {
            bad.push(format!("GRE between {} and {}", ip.src, ip.dst));
            continue;
        };
        if ip.src == HOSTS[0].underlay && gre.key == Some(UNKNOWN_KEY) {
            probes += 1;
            continue;
        }
        // C and S from a host that sends them, and from tgw to a host that
        // requires them; K alone otherwise.
        const C_S: u16 = 0x8000 | 0x1000;
        let c_s = if ip.src == host {
            if HOSTS[i].csum_seq {
                C_S
            } else {
                0
            }
        } else {
            let (c, s) = HOSTS[i].receives(worker_count);
            (if c { 0x8000 } else { 0 }) | (if s { 0x1000 } else { 0 })
        };
        if gre.key != Some(HOSTS[i].key) || gre.protocol != 0x6558 || gre.flags & C_S != c_s {
            bad.push(format!(
                "{} -> {} with key {:?}, protocol {:#06x}, flags {:#06x}",
                ip.src, ip.dst, gre.key, gre.protocol, gre.flags
            ));
            continue;
        }
        per_host[i] += 1;
        if let Some(inner) = wire::parse(gre.inner) {
            let addrs = wire::addresses(&inner);
            for public in HOSTS.map(|h| h.public) {
                if addrs.contains(&public) {
                    bad.push(format!("{public} inside key {}", HOSTS[i].key));
                }
            }
            if let wire::Packet::Ipv4(inner) = inner {
                if let Some((kind, _, _)) = wire::echo(&inner) {
                    tunnel_ttls[i].push((kind, inner.ttl));
                }
            }
        }
    }
    checks.record(
        "tunnel keys on the underlay: t1 1000, t2 2000",
        if bad.is_empty() && per_host.iter().all(|&n| n > 0) {
            Ok(format!(
                "{} GRE packets with host1 all key 1000 (with checksum and \
                 sequence number both ways{}), {} with host2 all key 2000, no elastic IP inside{}",
                per_host[0],
                if worker_count == 1 {
                    ""
                } else {
                    "; from tgw the checksum alone"
                },
                per_host[1],
                captures.note(1)
            ))
        } else {
            Err(format!(
                "{} / {} packets; wrong: {:?}",
                per_host[0],
                per_host[1],
                &bad[..bad.len().min(5)]
            ))
        },
    );

    // The way in: requests reach the hosts with the client's TTL less one;
    // replies leave them with the host's own TTL (the client saw one less).
    let result = (|| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let requests: Vec<u8> = tunnel_ttls[i]
                .iter()
                .filter(|(k, _)| *k == 8)
                .map(|(_, t)| *t)
                .collect();
            if requests.len() < PINGS || requests.iter().any(|&t| t != PING_TTL - 1) {
                return Err(format!(
                    "echo requests toward {} in the tunnel had TTLs {requests:?}; sent with {PING_TTL}",
                    h.name
                ));
            }
            parts.push(format!(
                "{} requests to {} at TTL {}",
                requests.len(),
                h.name,
                PING_TTL - 1
            ));
        }
        Ok(format!("{} (sent at {PING_TTL})", parts.join(", ")))
    })();
    checks.record("TTL decremented once on the way in", result);

    // The public side never sees a private or underlay address.
    let hidden: Vec<Ipv4Addr> = [PRIVATE, GW_UNDERLAY]
        .into_iter()
        .chain(HOSTS.iter().map(|h| h.underlay))
        .collect();
    let mut leaks = Vec::new();
    let mut to_public = [0u64; 2];
    for f in public {
        let Some(p) = wire::parse(f) else { continue };
        let addrs = wire::addresses(&p);
        if let Some(a) = addrs.iter().find(|a| hidden.contains(a)) {
            leaks.push(format!("{a} in {p:?}"));
        }
        for (i, h) in HOSTS.iter().enumerate() {
            if addrs.first() == Some(&h.public) {
                to_public[i] += 1;
            }
        }
    }
    checks.record(
        "10.0.0.7 never on the public side",
        if leaks.is_empty() && to_public.iter().all(|&n| n > 0) && !public.is_empty() {
            Ok(format!(
                "{} frames on the client's link ({} from 2.2.2.11, {} from 2.2.2.12), none names 10.0.0.7 or an underlay address{}",
                public.len(),
                to_public[0],
                to_public[1],
                captures.note(0)
            ))
        } else {
            Err(format!(
                "{} frames, {} / {} from the public addresses; leaks: {:?}",
                public.len(),
                to_public[0],
                to_public[1],
                &leaks[..leaks.len().min(5)]
            ))
        },
    );

    // The unknown key: all of them on the wire toward tgw, none back, all
    // counted.
    let result = if unknown == UNKNOWN_SENT && probes == UNKNOWN_SENT {
        Ok(format!(
            "{UNKNOWN_SENT} sent from host1 with key {UNKNOWN_KEY}, {probes} on the wire, gre_unknown_key = {unknown}"
        ))
    } else {
        Err(format!(
            "{UNKNOWN_SENT} sent, {probes} on the wire, gre_unknown_key = {unknown}"
        ))
    };
    if result.is_ok() {
        summary.blocked.push(format!(
            "{UNKNOWN_SENT} GRE packets from host1 with key {UNKNOWN_KEY} (no tenant): dropped, counted as gre_unknown_key"
        ));
    }
    checks.record("GRE with an unknown key dropped and counted", result);

    // The firewall's refusals: each attempt timed out, its SYNs are on the
    // wire on the side it was sent from and nowhere past tgw, and the
    // rule that refused it counted every one of them.
    let r = refused(captures);
    let crossed = |to_host: bool| -> Vec<&String> {
        r.crossed
            .iter()
            .filter(|c| c.contains("inside key") == to_host)
            .collect()
    };
    let targets: Vec<String> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}:{}", h.public, other_port(i)))
        .collect();
    let result = timed_out(&attempts.inbound, &targets).and_then(|outcome| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let n = r.inbound[i];
            // Less the SYNs the runtime steps had refused on purpose.
            let counted = decisions(stats, h.tenant, "default in")
                .map(|c| c.saturating_sub(effects.default_in[i]));
            if n == 0 || !captures.agrees(0, counted, n) {
                return Err(format!(
                    "{n} SYNs to {} on the client's link, {} default in decisions {counted:?}",
                    targets[i], h.tenant
                ));
            }
            parts.push(format!(
                "{n} SYNs to {}, each refused by {}'s default in",
                targets[i], h.tenant
            ));
        }
        let through = crossed(true);
        if !through.is_empty() {
            return Err(format!("got through: {through:?}"));
        }
        Ok(format!(
            "{outcome}; {}; none inside the tunnels",
            parts.join(", ")
        ))
    });
    if result.is_ok() {
        summary.blocked.push(format!(
            "client {CLIENT} -> {}: refused by the tenants' firewall (default in: deny)",
            targets.join(", ")
        ));
    }
    checks.record("client cannot open 2.2.2.11:23 or 2.2.2.12:22", result);

    let result = (|| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let target = format!("{CLIENT}:{}", h.port);
            let outcome = timed_out(&attempts.outbound[i], std::slice::from_ref(&target))
                .map_err(|e| format!("{}: {e}", h.name))?;
            let rule = format!("out deny tcp dport {}", h.port);
            let n = r.outbound[i];
            let counted = decisions(stats, h.tenant, &rule);
            if n == 0 || !captures.agrees(1, counted, n) {
                return Err(format!(
                    "{n} SYNs from {}'s {PRIVATE} to {target} in its tunnel, {} {rule:?} decisions {counted:?}",
                    h.name, h.tenant
                ));
            }
            parts.push(format!(
                "{} -> {outcome}: {n} SYNs in key {}, each refused by {:?}",
                h.name, h.key, rule
            ));
        }
        let through = crossed(false);
        if !through.is_empty() {
            return Err(format!("got through: {through:?}"));
        }
        Ok(format!("{}; none on the public side", parts.join("; ")))
    })();
    if result.is_ok() {
        for h in &HOSTS {
            summary.blocked.push(format!(
                "{} ({}) -> {CLIENT}:{}: refused by its firewall (out deny tcp dport {})",
                h.name, h.tenant, h.port, h.port
            ));
        }
    }
    checks.record(
        "tenant 1 cannot open the client's TCP 22, tenant 2 its TCP 23",
        result,
    );

    // The flow table and the firewall's decisions: every rule decided as
    // many flows as the checks opened through it, and every allowed one
    // (none refused) created a flow of its tenant.
    let result = (|| {
        if !stats["firewall"].is_array() {
            return Err("no firewall decisions in tgw's stats".to_owned());
        }
        let mut parts = Vec::new();
        let mut wrong = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            // (rule, decisions, the capture they were counted on, if any)
            let want = [
                (
                    format!("in allow tcp dport {}", h.port),
                    attempts.opened_in[i],
                    None,
                ),
                ("in allow icmp".to_owned(), attempts.pings[i], None),
                (
                    format!("out deny tcp dport {}", h.port),
                    r.outbound[i],
                    Some(1),
                ),
                (
                    "default in".to_owned(),
                    r.inbound[i] + effects.default_in[i],
                    Some(0),
                ),
                ("default out".to_owned(), attempts.opened_out[i], None),
            ];
            for (rule, n, capture) in &want {
                let got = decisions(stats, h.tenant, rule);
                let agrees = match capture {
                    Some(c) => captures.agrees(*c, got, *n),
                    None => got == Some(*n),
                };
                if !agrees {
                    wrong.push(format!("{} {rule:?}: {got:?}, expected {n}", h.tenant));
                }
            }
            let others: Vec<String> = stats["firewall"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["tenant"] == h.tenant)
                .filter(|x| !want.iter().any(|(rule, _, _)| x["rule"] == rule.as_str()))
                .filter(|x| u(x, "flows") > 0)
                .map(|x| x.to_string())
                .collect();
            wrong.extend(others);
            let allowed = attempts.opened_in[i] + attempts.pings[i] + attempts.opened_out[i];
            let created = u(&workers["tenants"][h.tenant], "flows_created");
            if created != allowed {
                wrong.push(format!(
                    "{} created {created} flows; the checks opened {allowed}",
                    h.tenant
                ));
            }
            parts.push(format!(
                "{}: {created} flows ({} TCP in, {} ICMP, {} TCP out), {} SYNs refused",
                h.tenant,
                attempts.opened_in[i],
                attempts.pings[i],
                attempts.opened_out[i],
                r.inbound[i] + r.outbound[i]
            ));
        }
        if wrong.is_empty() {
            Ok(parts.join("; "))
        } else {
            Err(wrong.join("; "))
        }
    })();
    checks.record("flows and firewall decisions in tgw's counters", result);

    // The resolver learned the client, the hosts, and the hosts' addresses
    // inside the tunnels, with no static neighbour to help it: each with
    // the MAC its interface has, and the exchanges are on the wire.
    let res = &stats["resolver"];
    let arp_pairs = arp_evidence(underlay, public);
    let table = learned_macs(stats, expected);
    let result = if u(res, "learned") >= 5 && u(res, "failed") == 0 && u(res, "dropped") == 0 {
        match (table, arp_pairs) {
            (Ok(t), Ok(d)) => Ok(format!(
                "{} learned, {} requests, 0 failed; {t}; {d}",
                u(res, "learned"),
                u(res, "requests")
            )),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    } else {
        Err(format!("resolver {res}; {table:?}; {arp_pairs:?}"))
    };
    checks.record("tgw's resolver learned the client and the hosts", result);

    // Nothing else dropped: every frame of the scenario was handled. The
    // firewall dropped exactly the refused SYNs on the wire (if tcpdump
    // missed frames, at least those it saw and no more than it could have
    // missed). The Linux side also sends what is for nobody in particular
    // (an IGMP report when a link comes up): tgw may count those as
    // not_local, as many as the captures show.
    let stray = stray_frames(underlay, public);
    let missed: u64 = captures.missed.iter().sum();
    // The runtime steps' drops, each judged by its step, are expected too.
    let refused_syns = r.total() + effects.drops("firewall");
    let firewall = u(drops, "firewall");
    let others: Vec<String> = drops
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| {
                    let n = v.as_u64().unwrap_or(0);
                    match k.as_str() {
                        "gre_unknown_key" => false,
                        "not_local" => n > stray,
                        "firewall" => n < refused_syns || n > refused_syns + missed,
                        reason => n != effects.drops(reason),
                    }
                })
                .map(|(k, v)| format!("{k} {v}"))
                .collect()
        })
        .unwrap_or_default();
    checks.record(
        "no other drops in tgw",
        if others.is_empty() && !stats.is_null() && refused_syns > 0 {
            Ok(format!(
                "0 but gre_unknown_key and the runtime steps' ({}), firewall {firewall} \
                 (the {refused_syns} refused SYNs on the wire and in the steps), \
                 and not_local {} of the {stray} frames on the wire addressed to no one here",
                effects,
                u(drops, "not_local")
            ))
        } else {
            Err(format!(
                "dropped: {} ({stray} stray frames, {refused_syns} refused SYNs on the wire)",
                others.join(", ")
            ))
        },
    );

    if let Some(each) = stats["workers"].as_array().filter(|w| w.len() > 1) {
        let rx: Vec<u64> = each.iter().map(|w| u(w, "rx_packets")).collect();
        let handed = u(&workers, "handed_off");
        checks.record(
            "two workers: the traffic spread, each connection met at its owner",
            if rx.iter().all(|&n| n > 0) && handed > 0 {
                Ok(format!(
                    "frames received by worker: {rx:?}; {handed} handed to the worker owning their connection"
                ))
            } else {
                Err(format!("frames received by worker: {rx:?}; {handed} handed over"))
            },
        );
    }

    // The summary's counters.
    for h in &HOSTS {
        let t = &workers["tenants"][h.tenant];
        summary.tgw.push(format!(
            "tenant {} (key {}): {} frames from its tunnels, {} into them; {} flows created, {} ended",
            h.tenant,
            h.key,
            u(t, "from_tunnel_packets"),
            u(t, "to_tunnel_packets"),
            u(t, "flows_created"),
            u(t, "flows_expired")
        ));
    }
    if let Some(rules) = stats["firewall"].as_array() {
        for h in &HOSTS {
            let line: Vec<String> = rules
                .iter()
                .filter(|x| x["tenant"] == h.tenant)
                .map(|x| format!("{} {}", x["rule"].as_str().unwrap_or("?"), u(x, "flows")))
                .collect();
            summary.tgw.push(format!(
                "firewall {} (decisions): {}",
                h.tenant,
                line.join(", ")
            ));
        }
    }
    let mut line = String::new();
    if let Some(ports) = stats["ports"].as_array() {
        for p in ports {
            let _ = write!(
                line,
                "{} rx {} tx {}; ",
                p["name"].as_str().unwrap_or("?"),
                u(p, "rx_packets"),
                u(p, "tx_packets")
            );
        }
    }
    summary.tgw.push(format!(
        "ports: {}ARP replies {}, echo replies {}",
        line,
        u(&workers, "arp_replies"),
        u(&workers, "echo_replies")
    ));
    summary.tgw.push(format!(
        "resolver: {} requests, {} learned, {} failed, {} held frames released",
        u(res, "requests"),
        u(res, "learned"),
        u(res, "failed"),
        u(res, "released")
    ));
    if let Some(table) = stats["neighbours"].as_array() {
        let entries: Vec<String> = table
            .iter()
            .map(|n| {
                let at = n["port"].as_str().or(n["tenant"].as_str()).unwrap_or("?");
                let ip = n["ip"].as_str().unwrap_or("?");
                let mac = n["mac"].as_str().or(n["state"].as_str()).unwrap_or("?");
                format!("{ip}@{at} {mac}")
            })
            .collect();
        summary
            .tgw
            .push(format!("neighbours: {}", entries.join(", ")));
    }
    let all_drops: Vec<String> = drops
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect()
        })
        .unwrap_or_default();
    summary.tgw.push(format!(
        "drops: {}",
        if all_drops.is_empty() {
            "none".to_owned()
        } else {
            all_drops.join(", ")
        }
    ));
}

/// IPv4 frames on tgw's links that neither come from nor go to one of the
/// scenario's addresses on that side: multicast and the like from the
/// Linux stacks, which tgw drops as not for it.
fn stray_frames(underlay: &[Vec<u8>], public: &[Vec<u8>]) -> u64 {
    let ours_public = [GW_PUBLIC, HOSTS[0].public, HOSTS[1].public];
    let count = |frames: &[Vec<u8>], ours: &[Ipv4Addr]| {
        frames
            .iter()
            .filter(|f| {
                matches!(wire::parse(f), Some(wire::Packet::Ipv4(ip))
                    if !ours.contains(&ip.src) && !ours.contains(&ip.dst))
            })
            .count() as u64
    };
    count(underlay, &[GW_UNDERLAY]) + count(public, &ours_public)
}

/// tgw's neighbour table at exit against the stacks' own MACs: every
/// expected entry resolved to the right MAC, learned (none static).
fn learned_macs(stats: &Value, expected: &[(String, Ipv4Addr, String)]) -> Result<String, String> {
    let table = stats["neighbours"]
        .as_array()
        .ok_or("no neighbour table in tgw's stats")?;
    let mut wrong = Vec::new();
    for (at, ip, mac) in expected {
        let entry = table.iter().find(|n| {
            (n["port"] == at.as_str() || n["tenant"] == at.as_str()) && n["ip"] == ip.to_string()
        });
        match entry {
            Some(n) if n["mac"] == mac.as_str() && n["static"] == false => {}
            Some(n) => wrong.push(format!("{ip} at {at}: {n}, the stack has {mac}")),
            None => wrong.push(format!("{ip} at {at}: not in the table")),
        }
    }
    if table.iter().any(|n| n["static"] == true) {
        wrong.push("a static entry, and the config has none".to_owned());
    }
    if wrong.is_empty() {
        Ok(format!(
            "the table holds the stacks' own MACs for all {}",
            expected.len()
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// On the wire: tgw asked for each host and for the client, and each
/// answered; inside each tunnel the host's public address was resolved.
fn arp_evidence(underlay: &[Vec<u8>], public: &[Vec<u8>]) -> Result<String, String> {
    let mut arps: Vec<(Option<u32>, wire::Arp)> = Vec::new();
    for f in underlay {
        match wire::parse(f) {
            Some(wire::Packet::Arp(a)) => arps.push((None, a)),
            Some(wire::Packet::Ipv4(ip)) if ip.protocol == 47 => {
                if let Some(g) = wire::gre(ip.payload) {
                    if let Some(wire::Packet::Arp(a)) = wire::parse(g.inner) {
                        arps.push((g.key, a));
                    }
                }
            }
            _ => {}
        }
    }
    for f in public {
        if let Some(wire::Packet::Arp(a)) = wire::parse(f) {
            arps.push((None, a));
        }
    }
    let asked_and_answered = |key: Option<u32>, from: Ipv4Addr, whom: Ipv4Addr| {
        let asked = arps
            .iter()
            .any(|(k, a)| *k == key && a.op == 1 && a.spa == from && a.tpa == whom);
        let answered = arps
            .iter()
            .any(|(k, a)| *k == key && a.op == 2 && a.spa == whom);
        asked && answered
    };
    let mut missing = Vec::new();
    if !asked_and_answered(None, GW_PUBLIC, CLIENT) {
        missing.push(format!("{CLIENT} on the public side"));
    }
    for h in &HOSTS {
        if !asked_and_answered(None, GW_UNDERLAY, h.underlay) {
            missing.push(format!("{} on the underlay", h.underlay));
        }
        // Inside the tunnel tgw asks from 0.0.0.0; a host's own request
        // (it passed the tunnel checks) teaches it too.
        let inside = asked_and_answered(Some(h.key), Ipv4Addr::UNSPECIFIED, PRIVATE)
            || arps
                .iter()
                .any(|(k, a)| *k == Some(h.key) && a.op == 1 && a.spa == PRIVATE);
        if !inside {
            missing.push(format!("{PRIVATE} inside key {}", h.key));
        }
    }
    if missing.is_empty() {
        Ok(format!(
            "asked and answered on the wire: {CLIENT}, {}, {}, and {PRIVATE} inside keys {} and {}",
            HOSTS[0].underlay, HOSTS[1].underlay, HOSTS[0].key, HOSTS[1].key
        ))
    } else {
        Err(format!("no ARP exchange seen for {}", missing.join(", ")))
    }
}
