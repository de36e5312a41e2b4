//! Brings the appliance up from a validated config, runs it until a signal,
//! and brings it down in order: workers finish their burst, ports stop,
//! counters are reported.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctl::config::{Config, Mode, Role, RING_SLOTS};
use ctl::cpuset::CpuSet;
use ctl::running::Running;
use dataplane::conntrack::Timeouts;
use dataplane::counters::MAX_PORTS;
use dataplane::hash::process_seed;
use dataplane::l2fwd::Egress;
use dataplane::mailbox::Mailbox;
use dataplane::neighbour::{Lookup, NeighbourLimits, NeighbourWriter};
use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::resolver::{Resolver, ResolverConfig, ResolverStats};
use dataplane::snapshot::Publisher;
use dataplane::steer::Steering;
use dataplane::tables::Tables;
use dataplane::{DropReason, L2Forward, WorkerCounters};
use rte::{Eal, LaunchedLcore, LcoreId, MacAddr, Mempool, Port, PortConf, PortStats, Ring};
use tracing::{error, info, warn};

use crate::control::Control;
use crate::control_socket::{ControlSocket, Limits as SocketLimits};
use crate::handler::{self, Handler};
use crate::runtime::Runtime;
use crate::supervise::{dead_worker, Cause, Heartbeats, WorkerFailure, EXIT_WORKER_FAILED};
use crate::worker::{Fault, Stage, Worker, TX_DRAIN_US};

/// How often the control plane looks at its rings and timers.
const CONTROL_TICK: Duration = Duration::from_millis(1);

// The pool check (ctl) counts the mbufs that fragments may hold; it cannot
// see dataplane's bounds, so they are held equal here.
const _: () = assert!(
    ctl::config::PARKED_PER_WORKER as usize == dataplane::fragments::park::SPOTS
        && ctl::config::PIECES_IN_FLIGHT == dataplane::fragments::MAX_FRAGMENTS as u32
);

/// One configured port, as started.
struct RunningPort<'p> {
    name: String,
    role: Role,
    port: Port<'p>,
    mac: MacAddr,
}

/// What the daemon reports when it stops.
pub struct Report {
    pub ports: Vec<PortReport>,
    pub workers: Vec<Arc<WorkerCounters>>,
    pub worker_lcores: Vec<u32>,
    /// Tenants as they are when the report is taken: slot and name.
    pub tenants: Vec<(usize, String)>,
    pub tsc_hz: u64,
    pub resolver: ResolverStats,
    pub neighbours: Vec<NeighbourReport>,
    pub rules: Vec<RuleReport>,
    /// The worker whose death stopped tgw, if one did.
    pub failure: Option<WorkerFailure>,
}

/// Flows one firewall rule, or a tenant's default policy, decided, summed
/// over the workers.
pub struct RuleReport {
    pub tenant: String,
    /// The rule as text, or `default in` / `default out`.
    pub rule: String,
    /// Its place in the tenant's rules (`None` for a default).
    pub position: Option<u32>,
    pub flows: u64,
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
}

/// How long stopping workers get to finish their burst and return.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the gateway until `stop` is raised (by SIGINT/SIGTERM) or a worker
/// dies. A dead worker stops the whole gateway (fail-stop: a worker's
/// death is a bug, and a gateway missing a worker silently loses that
/// worker's queues, flows and handoffs): the others are stopped, the ports
/// too, and the report says which worker died and why
/// ([`Report::failure`]). A worker that cannot be stopped (stalled) leaves
/// no clean way down: `emit` then gets the report and the process exits
/// with [`EXIT_WORKER_FAILED`] at once.
/// Where the running config came from, and the signals the daemon
/// heeds: SIGINT/SIGTERM set `stop`, SIGHUP sets `reload` (the file is
/// read again and applied as `tgwctl config apply` would).
pub struct Launch<'a> {
    pub config_path: &'a Path,
    pub cpus: &'a CpuSet,
    pub stop: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
}

pub fn run(
    config: &Config,
    launch: Launch<'_>,
    emit: &dyn Fn(&Report) -> Result<(), String>,
) -> Result<Report, String> {
    let eal_args = config.eal_args();
    info!(args = %eal_args.join(" "), "starting EAL");
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    // Everything allocated from DPDK borrows `eal`, so it is all gone when
    // `serve` returns, and EAL is cleaned up last.
    let report = serve(&eal, config, launch, emit);
    drop(eal);
    report
}

fn serve(
    eal: &Eal,
    config: &Config,
    launch: Launch<'_>,
    emit: &dyn Fn(&Report) -> Result<(), String>,
) -> Result<Report, String> {
    let stop = launch.stop;
    let mp = &config.mempool;
    let pool = Mempool::new(eal, "tgw_mbufs", mp.mbufs, mp.cache_size, mp.data_room, -1)
        .map_err(|e| format!("mempool of {} mbufs: {e}", mp.mbufs))?;

    let mut ports = Vec::with_capacity(config.ports.len());
    let mut rxqs = Vec::new();
    let mut txqs = Vec::new();
    for (index, pc) in config.ports.iter().enumerate() {
        let port = Port::by_name(eal, pc.dpdk_name()).map_err(|e| {
            format!(
                "port {:?} ({}): no such DPDK device: {e}",
                pc.name, pc.device
            )
        })?;
        let conf = PortConf {
            rx_queues: config.rx_queues(index),
            tx_queues: config.tx_queues(),
            rx_desc: pc.rx_desc,
            tx_desc: pc.tx_desc,
            mtu: pc.mtu,
            promiscuous: true,
        };
        let (mut port, rx, tx) = port
            .configure(&conf, &pool)
            .map_err(|e| format!("port {:?}: {e}", pc.name))?;
        let mac = match pc.mac.map(|m| MacAddr(m.0)) {
            None => port.mac().map_err(|e| format!("port {:?}: {e}", pc.name))?,
            Some(mac) => {
                // Virtual devices such as net_pcap keep no MAC of their own:
                // the configured one is still the source of what we send,
                // and promiscuous mode still brings in what is sent to it.
                if let Err(e) = port.set_mac(mac) {
                    warn!(port = %pc.name, %mac, "the device keeps its own MAC ({e}); sending from the configured one");
                }
                mac
            }
        };
        if usize::from(port.id().0) >= MAX_PORTS {
            return Err(format!(
                "port {:?}: DPDK port id {} is past {MAX_PORTS}",
                pc.name,
                port.id().0
            ));
        }
        info!(port = %pc.name, id = port.id().0, role = %pc.role, %mac, driver = %port.info().map(|i| i.driver).unwrap_or_default(), "port configured");
        rxqs.push(rx);
        txqs.push(tx);
        ports.push(RunningPort {
            name: pc.name.clone(),
            role: pc.role,
            port,
            mac,
        });
    }

    let port_ids: Vec<(u16, MacAddr)> = ports.iter().map(|p| (p.port.id().0, p.mac)).collect();
    let arp = &config.arp;
    let mut resolver = Resolver::new(
        NeighbourWriter::with_limits(NeighbourLimits {
            ports: arp.port_entries as usize,
            tenants: (arp.entries - arp.port_entries) as usize,
            per_tenant: arp.per_tenant as usize,
        }),
        ResolverConfig {
            reachable_ms: u64::from(arp.reachable_s) * 1000,
            retry_ms: u64::from(arp.retry_ms),
            retries: arp.retries,
            max_pending: usize::from(arp.max_pending),
            max_held: arp.max_held as usize,
            held_per_tenant: arp.held_per_tenant as usize,
            icmp_per_sec: config.icmp.rate_per_sec,
            icmp_burst: config.icmp.burst,
        },
    );
    // Tenants take their file order as slots; runtime changes keep them.
    let mut handler = Handler::new(
        Running::new(config.clone()),
        Runtime::new(config, port_ids.clone()),
        launch.cpus.clone(),
        launch.config_path.to_path_buf(),
    );
    let tables = handler
        .initial(resolver.writer())
        .map_err(|e| format!("tables: {e}"))?;
    info!(tenants = tables.tenants.len(), slots = config.dataplane.tenant_slots, mode = %config.dataplane.mode, "tables built");
    // Bound before the workers start: a second tgw with the same socket
    // stops here, not after taking the ports.
    let socket = ControlSocket::bind(&config.control.socket, SocketLimits::default())
        .map_err(|e| format!("control socket: {e}"))?;
    info!(path = %socket.path().display(), "control socket listening");
    let publisher = Publisher::new(tables);
    // Only l2fwd needs the port pairing (and its warnings).
    let l2 = if config.dataplane.mode == Mode::L2fwd {
        l2_pipeline(config, &ports)
    } else {
        L2Forward::default()
    };
    let hz = rte::tsc_hz();
    let drain_ticks = hz * TX_DRAIN_US / 1_000_000;

    // Hand every queue to its one worker: RX as the config says, TX queue
    // `i` of every port to worker `i`.
    let mut rx_slots: Vec<Vec<Option<rte::RxQueue>>> = rxqs
        .into_iter()
        .map(|qs| qs.into_iter().map(Some).collect())
        .collect();
    let mut tx_iters: Vec<_> = txqs.into_iter().map(Vec::into_iter).collect();
    let f = &config.flows;
    let timeouts = Timeouts {
        tcp_established: u64::from(f.tcp_established_s),
        tcp_transitory: u64::from(f.tcp_transitory_s),
        udp: u64::from(f.udp_s),
        icmp: u64::from(f.icmp_s),
        unreplied: u64::from(f.unreplied_s),
        ..Timeouts::default()
    };
    // The rings live here, for the whole run; workers and the control
    // plane borrow them.
    let ring = |what: &str, index: usize| {
        Ring::new(eal, &format!("tgw_{what}{index}"), RING_SLOTS)
            .map_err(|e| format!("{what} ring of worker {index}: {e}"))
    };
    let n = config.workers.len();
    let punts = (0..n)
        .map(|i| ring("punt", i))
        .collect::<Result<Vec<_>, _>>()?;
    let injects = (0..n)
        .map(|i| ring("inject", i))
        .collect::<Result<Vec<_>, _>>()?;
    // Rings between workers, handoff[from][to], for connections another
    // worker owns (dataplane::steer).
    let mut handoff: Vec<Vec<Option<Ring>>> = Vec::with_capacity(n);
    for from in 0..n {
        let mut row = Vec::with_capacity(n);
        for to in 0..n {
            row.push(if from == to || n == 1 {
                None
            } else {
                Some(ring(&format!("handoff{from}_"), to)?)
            });
        }
        handoff.push(row);
    }
    if let Ok(fault) = std::env::var(Fault::ENV) {
        warn!(
            "{}={fault}: a worker will fail on purpose (tests only)",
            Fault::ENV
        );
    }
    let tenant_slots = config.dataplane.tenant_slots as usize;
    let mut workers = Vec::with_capacity(n);
    // One per worker, by index, for the control socket's flow.show and
    // flow.flush (dataplane::pipeline::admin::{show_flows, flush_flows}).
    let mut mailboxes = Vec::with_capacity(n);
    let mut share_mailboxes = Vec::with_capacity(n);
    for (index, wc) in config.workers.iter().enumerate() {
        let rx = wc
            .rx
            .iter()
            .map(|q| {
                rx_slots[q.port][usize::from(q.queue)]
                    .take()
                    .expect("validated: each queue has one poller")
            })
            .collect();
        let mut tx: [Option<rte::TxQueue>; MAX_PORTS] = std::array::from_fn(|_| None);
        for (index, it) in tx_iters.iter_mut().enumerate() {
            tx[usize::from(ports[index].port.id().0)] = it.next();
        }
        let stage = match config.dataplane.mode {
            Mode::Gateway => Stage::Gateway {
                pipeline: Box::new(
                    Pipeline::new(
                        TokenBucket::new(config.icmp.rate_per_sec, config.icmp.burst, hz),
                        index as u16,
                    )
                    .with_flows(config.flows.capacity as usize, timeouts, hz)
                    .map_err(|e| format!("[flows] capacity: {e}"))?
                    .with_quota(u64::from(config.flows.per_tenant))
                    .with_unreplied(u64::from(config.flows.unreplied_per_tenant))
                    .with_tenants(tenant_slots)
                    .with_fragments(process_seed(), tenant_slots)
                    .with_steering(Steering::new(index as u16, n as u16).ok_or("too many workers")?)
                    .with_snat(&publisher.current().pools),
                ),
                tables: publisher.reader(),
            },
            Mode::L2fwd => Stage::L2fwd(Box::new(l2.clone())),
        };
        let (mailbox, inbox) = Mailbox::new();
        mailboxes.push(mailbox);
        let (mailbox, shares) = Mailbox::new();
        share_mailboxes.push(mailbox);
        workers.push(Worker {
            index,
            rx,
            tx,
            stage,
            counters: Arc::new(
                WorkerCounters::new(tenant_slots).with_rules(config.dataplane.rule_slots as usize),
            ),
            punt: &punts[index],
            inject: &injects[index],
            handoff_out: handoff[index].iter().map(Option::as_ref).collect(),
            handoff_in: (0..n)
                .filter_map(|from| handoff[from][index].as_ref())
                .collect(),
            stop: Arc::clone(&stop),
            mailbox: inbox,
            shares,
            drain_ticks,
            fault: Fault::from_env(index),
        });
    }

    for p in &mut ports {
        p.port
            .start()
            .map_err(|e| format!("port {:?}: {e}", p.name))?;
    }

    let counters: Vec<_> = workers.iter().map(|w| Arc::clone(&w.counters)).collect();
    let mut control = Control::new(
        resolver,
        Arc::clone(&publisher),
        punts.iter().collect(),
        injects.first().ok_or("no worker")?,
        &pool,
    );
    let lcores: Vec<u32> = config.workers.iter().map(|w| w.lcore).collect();
    let watchdog = (config.dataplane.watchdog_ms > 0)
        .then(|| Duration::from_millis(u64::from(config.dataplane.watchdog_ms)));
    // Workers run in a scope: they borrow the rings and queues above, and
    // the scope does not end before every one of them has returned.
    let failure = eal.scope(|s| {
        let mut running = Vec::with_capacity(workers.len());
        for (worker, &lcore) in workers.into_iter().zip(&lcores) {
            let lcore = LcoreId(lcore);
            match s.launch(lcore, move || worker.run()) {
                Ok(job) => running.push(job),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(format!("launching the worker on {lcore}: {e}"));
                }
            }
        }
        info!(
            workers = running.len(),
            "forwarding; SIGINT or SIGTERM stops"
        );

        let mut heartbeats = Heartbeats::new(&counters, watchdog);
        let mut failure = None;
        let stats =
            |control: &mut Control| report(config, &ports, control, &publisher, &counters).json();
        let port_names: Vec<(u16, String)> = ports
            .iter()
            .map(|p| (p.port.id().0, p.name.clone()))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            control.tick();
            let mut cx = handler::Cx {
                publisher: &publisher,
                control: &mut control,
                counters: &counters,
                mailboxes: &mailboxes,
                share_mailboxes: &share_mailboxes,
                stats: &stats,
                port_names: &port_names,
            };
            if launch.reload.swap(false, Ordering::Relaxed) {
                handler.reload(&mut cx);
            }
            while let Some(pending) = socket.take() {
                let response = handler.handle(&pending.request.op, &mut cx);
                pending.answer(response);
            }
            handler.tick(&counters);
            failure = dead_worker(&running, &lcores, &mut heartbeats);
            if failure.is_some() {
                break;
            }
            std::thread::sleep(CONTROL_TICK);
        }
        if let Some(f) = &failure {
            error!("{f}; stopping tgw (fail-stop)");
        }
        stop.store(true, Ordering::Relaxed);
        info!("stopping: workers finish their burst");
        let deadline = Instant::now() + STOP_GRACE;
        while !running.iter().all(LaunchedLcore::finished) && Instant::now() < deadline {
            std::thread::sleep(CONTROL_TICK);
        }
        if let Some(stuck) = running.iter().position(|j| !j.finished()) {
            // A worker that does not return cannot be joined, and its
            // ports cannot be stopped under it: report and leave now.
            error!(
                "worker {stuck} (lcore {}) did not stop within {} s; exiting without cleanup",
                lcores[stuck],
                STOP_GRACE.as_secs()
            );
            let mut report = report(config, &ports, &mut control, &publisher, &counters);
            report.failure = failure.or(Some(WorkerFailure {
                worker: stuck,
                lcore: lcores[stuck],
                cause: Cause::Stalled(STOP_GRACE.as_millis() as u64),
            }));
            if let Err(e) = emit(&report) {
                error!("{e}");
            }
            // Exiting skips every destructor: the socket file goes by hand.
            let _ = std::fs::remove_file(socket.path());
            std::process::exit(i32::from(EXIT_WORKER_FAILED));
        }
        for (worker, job) in running.into_iter().enumerate() {
            if let Err(p) = job.wait() {
                // Also one that panicked while a signal was stopping tgw.
                if failure.is_none() {
                    error!(
                        "worker {worker} (lcore {}) panicked: {}",
                        p.lcore.0, p.message
                    );
                    failure = Some(WorkerFailure {
                        worker,
                        lcore: p.lcore.0,
                        cause: Cause::Panicked(p.message),
                    });
                }
            }
        }
        Ok(failure)
    })?;

    for p in &mut ports {
        if let Err(e) = p.port.stop() {
            warn!(port = %p.name, "stop: {e}");
        }
    }
    let mut report = report(config, &ports, &mut control, &publisher, &counters);
    report.failure = failure;
    if control.inject_full > 0 {
        warn!(frames = control.inject_full, "the inject ring was full");
    }
    // What is left is freed in the reverse order of its making (held
    // frames and ring contents back to the pool, ports closed before the
    // pool they draw from), all before EAL's cleanup: each borrows what
    // it needs, so the compiler keeps this order.
    Ok(report)
}

/// The counters as they stand: the ports' own, the workers', the
/// resolver's and the firewall's.
fn report(
    config: &Config,
    ports: &[RunningPort],
    control: &mut Control,
    publisher: &Publisher<Tables>,
    counters: &[Arc<WorkerCounters>],
) -> Report {
    let tables = publisher.current();
    let report_ports: Vec<PortReport> = ports
        .iter()
        .map(|p| PortReport {
            name: p.name.clone(),
            role: p.role,
            id: p.port.id().0,
            stats: p.port.stats().unwrap_or_default(),
        })
        .collect();
    let neighbours = control
        .neighbours()
        .into_iter()
        .map(|(key, state, is_static)| NeighbourReport {
            port: key.as_port().map(|id| {
                report_ports
                    .iter()
                    .find(|p| p.id == id)
                    .map_or_else(|| id.to_string(), |p| p.name.clone())
            }),
            tenant: key.as_inner().map(|t| {
                tables
                    .tenants
                    .get(t)
                    .map_or_else(|| t.0.to_string(), |c| c.name.clone())
            }),
            ip: key.ip().into(),
            state,
            is_static,
        })
        .collect();
    Report {
        ports: report_ports,
        workers: counters.to_vec(),
        worker_lcores: config.workers.iter().map(|w| w.lcore).collect(),
        tenants: tables
            .tenants
            .iter()
            .map(|t| (t.id.index(), t.name.clone()))
            .collect(),
        tsc_hz: rte::tsc_hz(),
        resolver: control.stats(),
        neighbours,
        rules: rule_report(&tables, counters),
        failure: None,
    }
}

/// What each firewall rule and default policy decided, over all workers.
fn rule_report(tables: &Tables, workers: &[Arc<WorkerCounters>]) -> Vec<RuleReport> {
    use dataplane::firewall::Direction as FwDir;
    let mut out = Vec::new();
    for t in tables.tenants.iter() {
        for rule in &t.firewall.rules {
            out.push(RuleReport {
                tenant: t.name.clone(),
                rule: rule.to_string(),
                position: Some(rule.position),
                flows: workers.iter().map(|w| w.rules.rule(rule.counter)).sum(),
            });
        }
        for (dir, name) in [(FwDir::In, "default in"), (FwDir::Out, "default out")] {
            out.push(RuleReport {
                tenant: t.name.clone(),
                rule: name.to_owned(),
                position: None,
                flows: workers
                    .iter()
                    .map(|w| w.rules.default_policy(t.id, dir))
                    .sum(),
            });
        }
    }
    out
}

/// The L2 skeleton: a public port forwards to the first underlay port and
/// an underlay port to the first public one, with the egress port's MAC as
/// source and its configured peer as destination.
fn l2_pipeline(config: &Config, ports: &[RunningPort]) -> L2Forward {
    let mut fwd = L2Forward::default();
    let first = |role| ports.iter().position(|p| p.role == role);
    for p in ports {
        let other = if p.role == Role::Public {
            Role::Underlay
        } else {
            Role::Public
        };
        let Some(out) = first(other) else { continue };
        let peer = config.ports[out].peer_mac.map(|m| m.0);
        if peer.is_none() {
            warn!(port = %ports[out].name, "no peer_mac: frames leave with their source MAC as destination");
        }
        fwd.connect(
            p.port.id().0,
            Egress {
                port: ports[out].port.id().0,
                src: ports[out].mac.0,
                dst: peer,
            },
        );
    }
    fwd
}

impl Report {
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
                t(|c| c.flows_created.get()),
                t(|c| c.flows_expired.get()),
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
                "  not held: {} for the neighbour's max_pending, {} for max_held, {} for the tenants' share, {} for held_per_tenant, {} for a failed neighbour; no neighbour slot: {} ports' share, {} tenants' share, {} per_tenant, {} buckets",
                r.hold_neighbour_full, r.hold_full, r.hold_tenants_full, r.hold_tenant_limit, r.hold_failed,
                r.table.ports_full, r.table.tenants_full, r.table.tenant_limit, r.table.buckets_full
            );
        }
        for r in self.rules.iter().filter(|r| r.flows > 0) {
            let _ = writeln!(
                out,
                "  firewall {}: {}: {} flows",
                r.tenant, r.rule, r.flows
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
                                "flows_created": c.flows_created.get(),
                                "flows_expired": c.flows_expired.get(),
                                "nat_ports_in_use": c.nat_ports.get(),
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
            "hold_tenants_full": r.hold_tenants_full, "hold_tenant_limit": r.hold_tenant_limit,
            "hold_failed": r.hold_failed,
            "host_unreachable": r.host_unreachable, "unreachable_limited": r.unreachable_limited,
            "table_ports_full": r.table.ports_full, "table_tenants_full": r.table.tenants_full,
            "table_tenant_limit": r.table.tenant_limit, "table_buckets_full": r.table.buckets_full,
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
                    "tenant": r.tenant, "rule": r.rule, "position": r.position, "flows": r.flows,
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
        serde_json::json!({
            "tsc_hz": self.tsc_hz, "ports": ports, "workers": workers, "resolver": resolver,
            "neighbours": neighbours, "firewall": rules, "failure": failure,
        })
    }
}
