//! Brings the appliance up from a validated config, runs it until a signal,
//! and brings it down in order: workers finish their burst, ports stop,
//! counters are reported.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctl::config::{Config, Mode, OffloadMode, Role, RING_SLOTS};
use ctl::cpuset::CpuSet;
use ctl::running::Running;
use dataplane::conntrack::Timeouts;
use dataplane::counters::MAX_PORTS;
use dataplane::hash::process_seed;
use dataplane::l2fwd::Egress;
use dataplane::mailbox::Mailbox;
use dataplane::neighbour::{NeighbourLimits, NeighbourWriter};
use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::resolver::{Resolver, ResolverConfig};
use dataplane::snapshot::Publisher;
use dataplane::steer::Steering;
use dataplane::tables::Tables;
use dataplane::{L2Forward, WorkerCounters};
use nix::errno::Errno;
use rte::{Eal, LaunchedLcore, LcoreId, MacAddr, Mempool, Port, PortConf, Ring, UnconfiguredPort};
use tracing::{debug, error, info, warn};

use crate::control::Control;
use crate::control_socket::{ControlSocket, Limits as SocketLimits};
use crate::handler::{self, Handler};
use crate::logs::Throttle;
use crate::metrics::http::{Endpoint, Limits as MetricsLimits};
use crate::notify::Notifier;
use crate::offload::plane::{OffloadPlane, PlanePort};
use crate::offload::report::OffloadReport;
use crate::offload::templates::{self, PortApi};
use crate::report::{
    rule_report, Asker, BuildInfo, MempoolReport, NeighbourReport, PortReport, Report,
};
use crate::runtime::Runtime;
use crate::supervise::{dead_worker, Cause, Heartbeats, WorkerFailure, EXIT_WORKER_FAILED};
use crate::worker::{Fault, Stage, Worker, TX_DRAIN_US};

/// How often the control plane looks at its rings and timers.
const CONTROL_TICK: Duration = Duration::from_millis(1);
/// The most of a control loop's round spent answering control-socket
/// requests (one is answered whatever it takes): busy clients slow their
/// own answers, never the punts, the metrics or the watchdogs.
const REQUEST_BUDGET: Duration = Duration::from_millis(5);

// The pool check (ctl) counts the mbufs that fragments and bursts may
// hold; it cannot see dataplane's and rte's bounds, so they are held equal
// here.
const _: () = assert!(
    ctl::config::PARKED_PER_WORKER as usize == dataplane::fragments::park::SPOTS
        && ctl::config::PIECES_IN_FLIGHT == dataplane::fragments::MAX_FRAGMENTS as u32
        && ctl::config::BURST as usize == rte::BURST
);

/// One configured port, as started.
struct RunningPort<'p> {
    name: String,
    role: Role,
    port: Port<'p>,
    mac: MacAddr,
    /// Whether the port hands flow marks to software (partial offload).
    marks: bool,
}

/// Asks `port` to deliver flow marks (USER_MARK and USER_FLAG), as DPDK
/// asks of an application that uses them, before it is configured
/// (docs/offload.md, "Partial offload"); whether it will deliver the
/// mark. ENOTSUP (no negotiation: every virtual device) and ENOSYS are
/// expected and logged at debug level; the port then counts as not
/// delivering marks, which only keeps it from partial offload.
fn negotiate_marks(port: &UnconfiguredPort<'_>, name: &str) -> bool {
    let wanted = rte::RX_METADATA_USER_MARK | rte::RX_METADATA_USER_FLAG;
    match port.negotiate_rx_metadata(wanted) {
        Ok(got) => {
            let marks = got & rte::RX_METADATA_USER_MARK != 0;
            info!(port = %name, marks, "offload: rx metadata negotiated ({got:#x} of {wanted:#x})");
            marks
        }
        Err(e) if e.errno == Errno::ENOTSUP as i32 || e.errno == Errno::ENOSYS as i32 => {
            debug!(port = %name, "offload: the port negotiates no rx metadata ({e})");
            false
        }
        Err(e) => {
            warn!(port = %name, "offload: rx metadata negotiation failed, no marks ({e})");
            false
        }
    }
}

/// How long stopping workers get to finish their burst and return.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the running config came from, and the signals the daemon
/// heeds: SIGINT/SIGTERM set `stop`, SIGHUP sets `reload` (the file is
/// read again and applied as `tgwctl config apply` would).
pub struct Launch<'a> {
    pub config_path: &'a Path,
    pub cpus: &'a CpuSet,
    pub stop: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
}

/// The neighbour table's shares, as `[arp]` sets them.
fn neighbour_limits(config: &Config) -> NeighbourLimits {
    let arp = &config.arp;
    NeighbourLimits {
        ports: arp.port_entries as usize,
        tenants: (arp.entries - arp.port_entries) as usize,
        per_tenant: arp.per_tenant as usize,
    }
}

/// Builds the tables of `config` as a start would, without DPDK: for
/// `--check`, so that a file it passes does not then fail to start on
/// what only the build counts (the next hops a share of the neighbour
/// table holds). The ports are taken in the file's order, each with its
/// configured MAC, or a placeholder where the device would give one.
pub fn check_tables(config: &Config, cpus: &CpuSet, path: &Path) -> Result<(), String> {
    let ports: Vec<(u16, MacAddr)> = (0u8..)
        .zip(&config.ports)
        .map(|(i, p)| {
            (
                u16::from(i),
                MacAddr(p.mac.map_or([2, 0, 0, 0, 0, i], |m| m.0)),
            )
        })
        .collect();
    let mut handler = Handler::new(
        Running::new(config.clone()),
        Runtime::new(config, ports),
        cpus.clone(),
        path.to_path_buf(),
    );
    let mut writer = NeighbourWriter::with_limits(neighbour_limits(config));
    handler
        .initial(&mut writer)
        .map(|_| ())
        .map_err(|e| format!("tables: {e}"))
}

/// Runs the gateway until `stop` is raised (by SIGINT/SIGTERM) or a worker
/// dies. A dead worker stops the whole gateway (fail-stop: a worker's
/// death is a bug, and a gateway missing a worker silently loses that
/// worker's queues, flows and handoffs): the others are stopped, the ports
/// too, and the report says which worker died and why
/// ([`Report::failure`]). A worker that cannot be stopped (stalled) leaves
/// no clean way down: `emit` then gets the report and the process exits
/// with [`EXIT_WORKER_FAILED`] at once.
pub fn run(
    config: &Config,
    launch: Launch<'_>,
    emit: &dyn Fn(&Report) -> Result<(), String>,
) -> Result<Report, String> {
    let eal_args = config.eal_args();
    info!(args = %eal_args.join(" "), "starting EAL");
    crate::notify::status("starting EAL");
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    // Packet capture for dpdk-dumpcap, stopped after the ports are.
    let pdump = crate::telemetry::capture(&eal, config);
    // Everything allocated from DPDK borrows `eal`, so it is all gone when
    // `serve` returns, and EAL is cleaned up last.
    let report = serve(&eal, config, launch, emit);
    drop(pdump);
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
    // Each port's flow API for per-flow rules: asked between configure
    // and start, as rte_flow_configure must be (docs/offload.md).
    let mut apis: Vec<(u16, PortApi)> = Vec::new();
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
        let marks = config.offload.mode != OffloadMode::Off && negotiate_marks(&port, &pc.name);
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
        if config.offload.mode == OffloadMode::Auto {
            let sizes = templates::Sizes {
                queue_depth: config.offload.queue_depth,
                max_flows: config.offload.max_flows,
            };
            apis.push((port.id().0, templates::configure(port.id().0, sizes)));
        }
        rxqs.push(rx);
        txqs.push(tx);
        ports.push(RunningPort {
            name: pc.name.clone(),
            role: pc.role,
            port,
            mac,
            marks,
        });
    }

    // The probe of every port (docs/offload.md, "Levels"), before the
    // workers, which offer flows only if some port can take them.
    let plane_ports = ports
        .iter()
        .map(|p| PlanePort {
            id: p.port.id().0,
            name: p.name.clone(),
            role: p.role,
            marks: p.marks,
        })
        .collect();
    // A template-API port is probed by templates (`templates::check`).
    let mut offload = OffloadPlane::new(config, plane_ports, &mut |rule, port| {
        templates::check(&apis, rule, port)
    });
    offload.use_templates(apis);
    let port_ids: Vec<(u16, MacAddr)> = ports.iter().map(|p| (p.port.id().0, p.mac)).collect();
    let arp = &config.arp;
    let mut resolver = Resolver::new(
        NeighbourWriter::with_limits(neighbour_limits(config)),
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
    // Threads that need a report (the metrics endpoint, DPDK's telemetry)
    // ask the control loop for one through the asker.
    let (asker, asks) = crate::report::asks();
    // Bound before the workers start too: a port in use stops tgw here.
    let metrics = match config.metrics.listen {
        None => None,
        Some(addr) => Some(metrics_endpoint(addr, &asker)?),
    };
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
                pipeline: Box::new(with_offload(
                    Pipeline::new(
                        TokenBucket::new(config.icmp.rate_per_sec, config.icmp.burst, hz),
                        index as u16,
                    )
                    .with_flows(config.flows.capacity as usize, timeouts, hz)
                    .map_err(|e| format!("[flows] capacity: {e}"))?
                    .with_quota(u64::from(config.flows.per_tenant))
                    .with_unreplied(u64::from(config.flows.unreplied_per_tenant))
                    .with_unreplied_total(u64::from(config.flows.unreplied_total))
                    .with_tenants(tenant_slots)
                    .with_fragments(process_seed(), tenant_slots)
                    .with_steering(Steering::new(index as u16, n as u16).ok_or("too many workers")?)
                    .with_neighbours(&publisher.current().neighbours)
                    .with_snat(&publisher.current().pools),
                    offload.link(index),
                )),
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
            marks: offload.marks(),
        });
    }

    for p in &mut ports {
        p.port
            .start()
            .map_err(|e| format!("port {:?}: {e}", p.name))?;
    }

    let mut promiscuity = Promiscuity::new(&ports);
    let counters: Vec<_> = workers.iter().map(|w| Arc::clone(&w.counters)).collect();
    let mut control = Control::new(
        resolver,
        Arc::clone(&publisher),
        punts.iter().collect(),
        injects.first().ok_or("no worker")?,
        &pool,
    );
    let lcores: Vec<u32> = config.workers.iter().map(|w| w.lcore).collect();
    // The ports are lent for each report: they are stopped (mutably)
    // after the workers.
    let sources = Sources {
        config,
        ports: &[],
        publisher: &publisher,
        counters: &counters,
        pool: &pool,
    };
    crate::telemetry::register(config, &asker);
    let watchdog = (config.dataplane.watchdog_ms > 0)
        .then(|| Duration::from_millis(u64::from(config.dataplane.watchdog_ms)));
    // systemd's READY=1 and WATCHDOG=1 (no-ops outside a unit), made
    // before the workers start so that their first loop counts.
    let mut notifier = Notifier::from_env(&counters, ports.len(), Instant::now());
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
        let sources = Sources {
            ports: &ports,
            ..sources
        };
        let port_names: Vec<(u16, String)> = ports
            .iter()
            .map(|p| (p.port.id().0, p.name.clone()))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            control.tick();
            offload.tick(&publisher.current());
            let ages = heartbeats.ages(Instant::now());
            notifier.tick(&counters, &ages, Instant::now());
            let offloaded = offload.report(&counters);
            asks.serve(|| report(&sources, &mut control, ages.clone(), offloaded.clone()));
            let stats = |control: &mut Control| {
                report(&sources, control, ages.clone(), offloaded.clone()).json()
            };
            let mut cx = handler::Cx {
                publisher: &publisher,
                control: &mut control,
                counters: &counters,
                mailboxes: &mailboxes,
                share_mailboxes: &share_mailboxes,
                stats: &stats,
                port_names: &port_names,
                offload: &mut offload,
            };
            if launch.reload.swap(false, Ordering::Relaxed) {
                notifier.reloading();
                let applied = handler.reload(&mut cx);
                notifier.reloaded(applied);
            }
            socket.serve(REQUEST_BUDGET, |request| {
                handler.handle(&request.op, &mut cx)
            });
            handler.tick(&counters);
            promiscuity.keep(&ports, Instant::now());
            failure = dead_worker(&running, &lcores, &mut heartbeats, || {
                stop.load(Ordering::Relaxed)
            });
            if failure.is_some() {
                break;
            }
            std::thread::sleep(CONTROL_TICK);
        }
        if let Some(f) = &failure {
            error!("{f}; stopping tgw (fail-stop)");
            crate::notify::stopping(&format!("{f}; stopping (fail-stop)"));
        } else {
            crate::notify::stopping("stopping on SIGINT/SIGTERM");
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
            let ages = heartbeats.ages(Instant::now());
            let offloaded = offload.report(&counters);
            let mut report = report(&sources, &mut control, ages, offloaded);
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

    // No report comes any more: the endpoint's waiting scrapes fail at
    // once, and its threads are joined.
    drop(asks);
    drop(metrics);
    // The workers are gone: every rule goes before the ports stop.
    offload.shutdown();
    for p in &mut ports {
        if let Err(e) = p.port.stop() {
            warn!(port = %p.name, "stop: {e}");
        }
    }
    let sources = Sources {
        ports: &ports,
        ..sources
    };
    let offloaded = offload.report(&counters);
    let mut report = report(&sources, &mut control, Vec::new(), offloaded);
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

/// A worker's pipeline, offering its flows for offload on `link` if
/// there is one.
fn with_offload(pipeline: Pipeline, link: Option<Arc<dataplane::offload::Link>>) -> Pipeline {
    match link {
        Some(link) => pipeline.with_offload(link),
        None => pipeline,
    }
}

/// Serves `/metrics` on `addr` (docs/metrics.md).
fn metrics_endpoint(addr: SocketAddr, asker: &Asker) -> Result<Endpoint, String> {
    let endpoint = Endpoint::bind(addr, asker.clone(), MetricsLimits::default()).map_err(|e| {
        let fix = if e.kind() == std::io::ErrorKind::AddrInUse {
            "another process listens on that port: stop it, or choose another port"
        } else {
            "choose an address of this host and a port tgw may bind"
        };
        format!("[metrics] listen {addr}: cannot listen: {e}; {fix}")
    })?;
    info!(addr = %endpoint.addr(), "metrics endpoint listening on /metrics");
    Ok(endpoint)
}

/// Ports that were promiscuous once started, looked at once a second: a
/// capture tool attached to tgw (`dpdk-dumpcap` without `-p`) turns the
/// mode off when it exits, and a port whose configured MAC is not the
/// device's own would then stop receiving.
struct Promiscuity {
    ports: Vec<usize>,
    next: Instant,
    throttle: Throttle,
}

impl Promiscuity {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(ports: &[RunningPort]) -> Promiscuity {
        Promiscuity {
            ports: (0..ports.len())
                .filter(|&i| ports[i].port.promiscuous() == Some(true))
                .collect(),
            next: Instant::now() + Self::EVERY,
            throttle: Throttle::per_minute(),
        }
    }

    fn keep(&mut self, ports: &[RunningPort], now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + Self::EVERY;
        for p in self.ports.iter().map(|&i| &ports[i]) {
            if p.port.promiscuous() != Some(false) {
                continue;
            }
            let done = p.port.enable_promiscuous();
            if let Some(suppressed) = self.throttle.admit(now) {
                match done {
                    Ok(()) => {
                        warn!(port = %p.name, suppressed, "promiscuous mode was turned off (a dpdk-dumpcap without -p?); turned it on again")
                    }
                    Err(e) => {
                        warn!(port = %p.name, suppressed, "promiscuous mode was turned off and cannot be turned on again: {e}")
                    }
                }
            }
        }
    }
}

/// What a [`Report`] is taken from.
#[derive(Clone, Copy)]
struct Sources<'a, 'p> {
    config: &'a Config,
    ports: &'a [RunningPort<'p>],
    publisher: &'a Publisher<Tables>,
    counters: &'a [Arc<WorkerCounters>],
    pool: &'a Mempool<'p>,
}

/// The counters as they stand: the ports' own, the workers', the
/// resolver's and the firewall's.
fn report(
    src: &Sources,
    control: &mut Control,
    heartbeat_age: Vec<Duration>,
    offload: OffloadReport,
) -> Report {
    let Sources {
        config,
        ports,
        publisher,
        counters,
        pool,
    } = *src;
    let tables = publisher.current();
    let report_ports: Vec<PortReport> = ports
        .iter()
        .map(|p| PortReport {
            name: p.name.clone(),
            role: p.role,
            id: p.port.id().0,
            stats: p.port.stats().unwrap_or_default(),
            xstats: p.port.xstats().unwrap_or_default(),
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
        heartbeat_age,
        tenants: tables
            .tenants
            .iter()
            .map(|t| (t.id.index(), t.name.clone()))
            .collect(),
        tsc_hz: rte::tsc_hz(),
        tsc: rte::rdtsc(),
        mempool: MempoolReport {
            size: pool.size(),
            available: pool.available(),
            in_use: pool.in_use(),
        },
        build: BuildInfo::this(),
        resolver: control.stats(),
        inject_full: control.inject_full,
        neighbours,
        rules: rule_report(&tables, counters, &offload.deny_drops),
        failure: None,
        offload,
    }
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
