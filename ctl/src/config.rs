//! The `tgw` configuration: what the operator writes in TOML, checked as a
//! whole so that `tgw --config FILE --check` lists every problem with the
//! line to fix.
//!
//! ```toml
//! [eal]
//! main_lcore = 0
//! [[port]]
//! name = "pub0"
//! device = "net_null0"
//! role = "public"
//! addresses = ["1.1.1.1/24"]
//! [[port]]
//! name = "und0"
//! device = "net_null1"
//! role = "underlay"
//! addresses = ["172.168.0.1/24"]
//! [[worker]]
//! lcore = 1
//! rx = ["pub0:0", "und0:0"]
//! [[tenant]]
//! name = "t1"
//! key = 1000
//! hosts = ["172.168.0.11"]
//! prefixes = ["10.0.0.0/24"]
//! routes = [
//!   { prefix = "10.0.0.0/24", to = "172.168.0.11" },
//!   { prefix = "0.0.0.0/0", to = "public" },
//! ]
//! rules = [
//!   { direction = "in", action = "allow", proto = "tcp", dport = 22 },
//!   { direction = "out", action = "deny", proto = "tcp", dport = 22 },
//! ]
//! [[route]]
//! prefix = "0.0.0.0/0"
//! via = "1.1.1.254"
//! ```
//!
//! `examples/reference.toml` is the whole reference scenario, with every
//! section explained.
//!
//! [`parse`] and [`load`] return a [`Config`] only when the file is valid:
//! its values are plain owned data and the cross-references (worker RX
//! queues, routes and neighbours to ports, tenant routes to tunnel hosts)
//! are indices or values that are known to be in range.

mod addr;
mod emit;
mod error;
mod firewall;
mod offload;
mod packet;
mod raw;
mod routing;
pub(crate) mod span;
mod tenant;
mod validate;

pub(crate) use self::raw::one_line;
pub(crate) use self::validate::object;

use std::fmt;
use std::path::Path;

pub use self::addr::{AddrError, Ipv4Cidr, MacAddr};
pub use self::error::{ConfigError, ConfigErrors};
pub use self::firewall::{
    Action, Direction, PortRange, Protocol, Rule, ANY_PREFIX, DEFAULT_IN, DEFAULT_OUT,
};
pub use self::offload::{
    Offload, OffloadMode, OuterDf, OFFLOAD_MAX_DENY_RULES_RANGE, OFFLOAD_MAX_FLOWS_RANGE,
    OFFLOAD_QUERY_INTERVAL_RANGE, OFFLOAD_QUEUE_DEPTH_RANGE, OFFLOAD_TENANT_SHARE_RANGE,
};
pub use self::packet::{
    Arp, Flows, Icmp, Tcp, ARP_ENTRIES_RANGE, ARP_MAX_HELD_RANGE, ARP_MAX_PENDING_RANGE,
    ARP_RETRIES_RANGE, ARP_RETRY_MS_MIN, FLOWS_CAPACITY_RANGE,
};
pub use self::routing::{Neighbour, Route};
pub use self::tenant::{Encap, RouteTarget, Tenant, TenantNeighbour, TenantRoute};
pub use crate::cpuset::{usable_cpus, CpuSet};

/// DPDK's `RTE_MAX_LCORE` in Debian's build: lcore ids are below it.
pub const MAX_LCORE: u32 = 128;
/// DPDK's `RTE_MEMPOOL_CACHE_MAX_SIZE`.
pub const MEMPOOL_CACHE_MAX: u32 = 512;
/// DPDK's `RTE_PKTMBUF_HEADROOM`: the part of `data_room` kept in front of
/// the frame, where encapsulation headers are prepended.
pub const MBUF_HEADROOM: u16 = 128;
/// The most frames a worker receives, buffers for a port's TX, or moves
/// through a ring at once (`rte::BURST`; the daemon asserts they agree).
pub const BURST: u32 = 32;
/// Mbufs the control plane may hold besides its mempool cache: two
/// bursts.
pub const CONTROL_MBUFS_IN_FLIGHT: u32 = 2 * BURST;
/// Fragments a worker may park while they wait for their first fragment
/// (`dataplane::fragments::park::SPOTS`; the daemon asserts they agree).
pub const PARKED_PER_WORKER: u32 = 64;
/// Pieces the control plane may hold while it cuts one datagram too big
/// for its next hop (`dataplane::fragments::MAX_FRAGMENTS`; likewise).
pub const PIECES_IN_FLIGHT: u32 = 64;
/// Slots of each ring between a worker and the control plane (punt,
/// inject) and between two workers (handoff); a ring holds one fewer.
pub const RING_SLOTS: u32 = 1024;
/// Ethernet header and CRC around an MTU-sized payload.
pub const ETHER_OVERHEAD: u16 = 18;
/// Port MTU when none is given.
pub const DEFAULT_MTU: u16 = 1500;
/// Allowed port MTUs: IPv4's minimum to the usual jumbo frame.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 68..=9000;
/// RX and TX descriptors per queue when none are given.
pub const DEFAULT_DESC: u16 = 1024;
/// Allowed descriptor counts (powers of two within).
pub const DESC_RANGE: std::ops::RangeInclusive<u16> = 64..=4096;

/// Settings of the DPDK environment abstraction layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eal {
    /// Lcore (CPU) of the control plane. Default 0.
    pub main_lcore: u32,
    /// DPDK `--file-prefix`: names the runtime files, so that
    /// `dpdk-dumpcap` and `dpdk-proc-info` can find this process.
    /// `[A-Za-z0-9_.-]{1,64}`. Default `"tgw"`.
    pub file_prefix: String,
    /// `false` runs with `--no-huge` (anonymous memory; functional tests
    /// only, it can halve the speed). Default true.
    pub hugepages: bool,
    /// EAL `-m`: MiB of memory to reserve. Without hugepages it is a hard
    /// limit that must hold the mempool. Default 512.
    pub memory_mb: u32,
    /// EAL `--in-memory`: no runtime files (so `dpdk-dumpcap` cannot
    /// attach), no leftovers, runs side by side. Without hugepages it
    /// becomes `--no-shconf`, the same promise in the form EAL accepts
    /// there. Default false.
    pub in_memory: bool,
    /// Appended to the EAL arguments verbatim, e.g. `["--log-level=pmd.*:debug"]`.
    /// Options this file already controls (`-l`, `-m`, `--vdev`, ...) are
    /// refused here. Default empty.
    pub extra_args: Vec<String>,
}

impl Default for Eal {
    fn default() -> Self {
        Self {
            main_lcore: 0,
            file_prefix: "tgw".to_owned(),
            hugepages: true,
            memory_mb: 512,
            in_memory: false,
            extra_args: Vec::new(),
        }
    }
}

/// Where sockets of tgw live unless `[control] socket` says otherwise.
pub const SOCKET_DIR: &str = "/run/tgw";
/// The longest socket path: `sun_path` holds 108 bytes with the NUL.
pub const SOCKET_PATH_MAX: usize = 107;

/// `[control]`: how tgw is reached while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// The control socket (docs/api.md): an absolute path. Default
    /// `/run/tgw/<[eal] file_prefix>.sock`, so that two gateways with
    /// their own prefixes (tests do that) never share a socket, and one
    /// with the default prefix listens on [`crate::api::DEFAULT_SOCKET`].
    pub socket: std::path::PathBuf,
}

impl Control {
    /// The default for a gateway whose `[eal] file_prefix` is `prefix`.
    pub fn default_for(prefix: &str) -> Control {
        Control {
            socket: std::path::Path::new(SOCKET_DIR).join(format!("{prefix}.sock")),
        }
    }
}

impl Default for Control {
    fn default() -> Self {
        Control::default_for(&Eal::default().file_prefix)
    }
}

/// Where Prometheus's `/metrics` is served when none is given: loopback,
/// since the endpoint has no authentication and names every tenant.
pub const METRICS_EXAMPLE_LISTEN: &str = "127.0.0.1:9400";

/// `[metrics]`: the Prometheus endpoint (docs/metrics.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Where `/metrics` is served over HTTP; `None` (no `listen`): not at
    /// all. A loopback address unless `allow_remote`.
    pub listen: Option<std::net::SocketAddr>,
    /// Lets `listen` be an address other hosts reach (docs/decisions.md,
    /// "The metrics endpoint"). Default false.
    pub allow_remote: bool,
}

/// The packet buffer pool shared by all ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mempool {
    /// Number of mbufs. DPDK is most efficient with 2^q - 1. Must cover
    /// everything that can hold mbufs at once ([`Config::mbuf_budget`]):
    /// every RX and TX descriptor, each worker's and the control plane's
    /// cache and in-flight frames, the punt, inject and handoff rings, and
    /// the frames the resolver holds (`[arp] max_held`), the fragments
    /// workers park and the pieces of one datagram being cut. Default
    /// 32767: two workers on two ports of 1024 descriptors need ~16.5k.
    pub mbufs: u32,
    /// Per-lcore cache. At most 512 (`RTE_MEMPOOL_CACHE_MAX_SIZE`) and at
    /// most `mbufs / 1.5`, or DPDK refuses the pool. Default 256.
    pub cache_size: u32,
    /// Bytes per mbuf including the 128-byte headroom; every port's
    /// `mtu + 18` must fit after the headroom. Default 2176
    /// (`RTE_MBUF_DEFAULT_BUF_SIZE`).
    pub data_room: u16,
}

impl Default for Mempool {
    fn default() -> Self {
        Self {
            mbufs: 32767,
            cache_size: 256,
            data_room: 2176,
        }
    }
}

/// Which side of the gateway a port faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The Internet side: clients, elastic IPs, source NAT.
    Public,
    /// The datacenter side: tenant hosts behind GRE tunnels.
    Underlay,
}

impl Role {
    /// Every role, in the order the error messages list them.
    pub const ALL: [Role; 2] = [Role::Public, Role::Underlay];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::Underlay => "underlay",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the workers do with the frames they receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The packet path of DESIGN.md: tenants, routing, GRE.
    #[default]
    Gateway,
    /// Every frame from a public port goes out of the first underlay port,
    /// and every frame from an underlay port out of the first public port,
    /// with the MAC rewrite only; tenants and routes are ignored (still
    /// checked, so that switching back is safe). For bring-up (cabling,
    /// link tests) and as the I/O baseline tgw-perf measures against
    /// testpmd: it costs what DPDK's I/O costs and nothing more.
    L2fwd,
}

impl Mode {
    /// Every mode, in the order the error messages list them.
    pub const ALL: [Mode; 2] = [Mode::Gateway, Mode::L2fwd];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Gateway => "gateway",
            Mode::L2fwd => "l2fwd",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[dataplane]`: what the gateway is running as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// `"gateway"` or `"l2fwd"`. Default [`Mode::Gateway`].
    pub mode: Mode,
    /// The worker watchdog: a worker whose poll loop has not gone round
    /// for this many milliseconds is taken for dead, and tgw stops (it
    /// fails stop, as for a worker that panicked). 0 turns it off, else at
    /// least [`WATCHDOG_MIN_MS`]. Default [`WATCHDOG_DEFAULT_MS`].
    pub watchdog_ms: u32,
    /// The most tenants tgw can hold, those added at runtime included:
    /// each worker's per-tenant counters, quotas and buckets are sized for
    /// it at start (a few hundred bytes a tenant a worker). At least the
    /// tenants in the file, at most [`TENANT_SLOTS_MAX`]. Default
    /// [`TENANT_SLOTS_DEFAULT`].
    pub tenant_slots: u32,
    /// The most firewall rules, over all tenants, those added at runtime
    /// included: each has a counter per worker. At least the rules in the
    /// file, at most [`RULE_SLOTS_MAX`]. Default [`RULE_SLOTS_DEFAULT`].
    pub rule_slots: u32,
}

/// The default and largest [`Dataplane::tenant_slots`]: a flow keeps its
/// tenant's slot in 16 bits.
pub const TENANT_SLOTS_DEFAULT: u32 = 4096;
pub const TENANT_SLOTS_MAX: u32 = 65534;
/// The default and largest [`Dataplane::rule_slots`].
pub const RULE_SLOTS_DEFAULT: u32 = 65536;
pub const RULE_SLOTS_MAX: u32 = 1 << 22;

/// The shortest worker watchdog: a busy machine can deschedule a worker
/// for tens of milliseconds, which must not stop the gateway.
pub const WATCHDOG_MIN_MS: u32 = 100;
/// The default worker watchdog.
pub const WATCHDOG_DEFAULT_MS: u32 = 5000;

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            mode: Mode::default(),
            watchdog_ms: WATCHDOG_DEFAULT_MS,
            tenant_slots: TENANT_SLOTS_DEFAULT,
            rule_slots: RULE_SLOTS_DEFAULT,
        }
    }
}

/// A network port (one DPDK ethdev).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Unique name, `[A-Za-z0-9_-]{1,32}`, used in `[[worker]] rx` and logs.
    pub name: String,
    /// A DPDK vdev (`net_memif0,role=server,socket=/run/x.sock`) or a PCI
    /// address in full lowercase form (`0000:03:00.0`), either optionally
    /// followed by `,devargs`.
    pub device: String,
    /// Which side this port faces.
    pub role: Role,
    /// Overrides the port's MAC address. Default: the device's own.
    pub mac: Option<MacAddr>,
    /// MAC of the next hop out of this port. Default none: the daemon
    /// resolves it (broadcast is never a valid default).
    pub peer_mac: Option<MacAddr>,
    /// The gateway's own IPv4 addresses on this port, with their subnets.
    /// Default none.
    pub addresses: Vec<Ipv4Cidr>,
    /// IP MTU, 68..=9000. Default 1500.
    pub mtu: u16,
    /// RX descriptors per queue, a power of two in 64..=4096. Default 1024.
    pub rx_desc: u16,
    /// TX descriptors per queue, a power of two in 64..=4096. Default 1024.
    pub tx_desc: u16,
}

impl Port {
    /// The name DPDK gives the device, for `rte_eth_dev_get_port_by_name`:
    /// a vdev's name before its devargs, or the PCI address.
    pub fn dpdk_name(&self) -> &str {
        device_name(&self.device)
    }

    /// The devargs after the first comma, if any.
    pub fn devargs(&self) -> Option<&str> {
        self.device.split_once(',').map(|(_, args)| args)
    }

    /// Whether the device is a PCI address (else a vdev).
    pub fn is_pci(&self) -> bool {
        is_pci_address(self.dpdk_name())
    }
}

/// A worker lcore and the RX queues it polls.
///
/// Workers are numbered by their order in the file; worker `i` transmits on
/// TX queue `i` of every port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    /// The lcore this worker runs as; never the main lcore.
    pub lcore: u32,
    /// The CPU the lcore runs on: `cpu` as written, else the lcore's own
    /// number. Two lcores may share a CPU (each then gets a share of it:
    /// for tests on small machines, not for production).
    pub cpu: u32,
    /// The RX queues it polls, in the order written.
    pub rx: Vec<RxQueue>,
}

/// One RX queue of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RxQueue {
    /// Index into [`Config::ports`].
    pub port: usize,
    /// Queue id on that port.
    pub queue: u16,
}

/// A tenant's shared source NAT pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snat {
    /// Index into [`Config::tenants`].
    pub tenant: usize,
    pub addresses: Vec<std::net::Ipv4Addr>,
    /// First and last port handed out (whole blocks of 64 within).
    pub ports: (u16, u16),
    /// Blocks of 64 ports one private host may hold. Default 16.
    pub max_blocks: u16,
    pub filtering: Filtering,
}

/// Allowed [`Snat::max_blocks`].
pub const SNAT_MAX_BLOCKS_RANGE: std::ops::RangeInclusive<u16> = 1..=64;

/// Who may send to a mapped port (RFC 4787 section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtering {
    /// Only the flows' own replies (the default).
    AddressAndPortDependent,
    /// Anyone, while the mapping lives (REQ-8's transparent choice).
    EndpointIndependent,
}

/// One elastic IP: `public` stands for `private` in tenant `tenant` (an
/// index into [`Config::tenants`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eip {
    pub public: std::net::Ipv4Addr,
    pub tenant: usize,
    pub private: std::net::Ipv4Addr,
}

/// A validated configuration.
///
/// Invariants, as built by [`parse`]: port names and devices are unique;
/// there is at least one public and one underlay port and one worker;
/// every port's RX queues are `0..n`, each polled by exactly one worker;
/// worker lcores are distinct and other than the main lcore, each on a
/// usable CPU; the
/// mempool covers all descriptors and worker caches; tenant names and keys
/// are unique and every tunnel host is reachable on the underlay; tenants'
/// public prefixes do not overlap; routes and neighbours are on-link on
/// their port (see [`Tenant`], [`Route`], [`Neighbour`] for the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `[dataplane]`.
    pub dataplane: Dataplane,
    /// `[eal]`.
    pub eal: Eal,
    /// `[mempool]`.
    pub mempool: Mempool,
    /// `[[port]]`, in file order; DPDK port ids are looked up by
    /// [`Port::dpdk_name`].
    pub ports: Vec<Port>,
    /// `[[worker]]`, in file order; the index is the TX queue id.
    pub workers: Vec<Worker>,
    /// `[[tenant]]`, in file order. Default none.
    pub tenants: Vec<Tenant>,
    /// `[[route]]`: the global routes of the public side and the underlay,
    /// in file order. Default none.
    pub routes: Vec<Route>,
    /// `[[neighbour]]`: static ARP entries, in file order. Default none.
    pub neighbours: Vec<Neighbour>,
    /// `[[eip]]`: elastic IPs, in file order. Default none.
    pub eips: Vec<Eip>,
    /// `[[snat]]`: tenants' shared source NAT pools. Default none.
    pub snat: Vec<Snat>,
    /// `[flows]`.
    pub flows: Flows,
    /// `[icmp]`.
    pub icmp: Icmp,
    /// `[tcp]`.
    pub tcp: Tcp,
    /// `[arp]`.
    pub arp: Arp,
    /// `[control]`.
    pub control: Control,
    /// `[metrics]`.
    pub metrics: Metrics,
    /// `[offload]`.
    pub offload: Offload,
}

impl Config {
    /// Number of RX queues to configure on port `port` (index into
    /// [`Config::ports`]): the queues the workers poll. 0 for an index out
    /// of range.
    pub fn rx_queues(&self, port: usize) -> u16 {
        let n = self
            .workers
            .iter()
            .flat_map(|w| &w.rx)
            .filter(|q| q.port == port)
            .count();
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    /// Number of TX queues to configure on every port: one per worker, so
    /// that no two lcores share a TX queue.
    pub fn tx_queues(&self) -> u16 {
        u16::try_from(self.workers.len()).unwrap_or(u16::MAX)
    }

    /// The index and settings of the port called `name`.
    pub fn port(&self, name: &str) -> Option<(usize, &Port)> {
        self.ports.iter().enumerate().find(|(_, p)| p.name == name)
    }

    /// The tenant called `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The global routes out of ports of `role`: the public side's table or
    /// the underlay's.
    pub fn routes_of(&self, role: Role) -> impl Iterator<Item = &Route> + '_ {
        self.routes
            .iter()
            .filter(move |r| self.ports.get(r.port).is_some_and(|p| p.role == role))
    }

    /// Mbufs that can be out of the pool at once. [`Mempool::mbufs`] is at
    /// least this.
    pub fn mbufs_needed(&self) -> u64 {
        self.mbuf_budget().total()
    }

    /// Mbufs a worker may hold besides its mempool cache and the fragments
    /// it parks: the RX burst it is processing, and a TX buffer for each
    /// port, which holds frames until it has a burst of them or the drain
    /// deadline comes (src/worker.rs). A burst each: with two ports 96,
    /// where one RX burst and one TX buffer (64) were counted until
    /// session 11.
    pub fn worker_mbufs_in_flight(&self) -> u64 {
        u64::from(BURST) * (1 + self.ports.len() as u64)
    }

    /// Where the mbufs of [`Config::mbufs_needed`] can be at once.
    pub fn mbuf_budget(&self) -> MbufBudget {
        let descriptors = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                u64::from(self.rx_queues(i)) * u64::from(p.rx_desc)
                    + u64::from(self.tx_queues()) * u64::from(p.tx_desc)
            })
            .sum();
        let workers = self.workers.len() as u64;
        let cache = u64::from(self.mempool.cache_size);
        // Each worker's punt and inject rings, and one handoff ring per
        // ordered pair of workers.
        let rings = 2 * workers + workers * workers.saturating_sub(1);
        MbufBudget {
            descriptors,
            lcores: workers * (cache + self.worker_mbufs_in_flight())
                + cache
                + u64::from(CONTROL_MBUFS_IN_FLIGHT),
            rings: rings * u64::from(RING_SLOTS - 1),
            held: u64::from(self.arp.max_held),
            fragments: workers * u64::from(PARKED_PER_WORKER) + u64::from(PIECES_IN_FLIGHT),
        }
    }

    /// The EAL arguments, without `argv[0]`: lcores, main lcore, file
    /// prefix, memory, one `--vdev` per virtual port, one `-a` per PCI port
    /// (`--no-pci` when there is none, so that EAL does not probe and grab
    /// every NIC of the host), then `extra_args`.
    pub fn eal_args(&self) -> Vec<String> {
        let mut lcores: Vec<(u32, u32)> =
            std::iter::once((self.eal.main_lcore, self.eal.main_lcore))
                .chain(self.workers.iter().map(|w| (w.lcore, w.cpu)))
                .collect();
        lcores.sort_unstable();
        lcores.dedup();
        // `-l` when every lcore is its own CPU; `--lcores LCORE@CPU,...`
        // when a worker was put on another.
        let (flag, list) = if lcores.iter().all(|(l, c)| l == c) {
            let list: Vec<String> = lcores.iter().map(|(l, _)| l.to_string()).collect();
            ("-l", list.join(","))
        } else {
            let list: Vec<String> = lcores.iter().map(|(l, c)| format!("{l}@{c}")).collect();
            ("--lcores", list.join(","))
        };
        let mut args = vec![
            flag.to_owned(),
            list,
            "--main-lcore".to_owned(),
            self.eal.main_lcore.to_string(),
            "--file-prefix".to_owned(),
            self.eal.file_prefix.clone(),
        ];
        if !self.eal.hugepages {
            args.push("--no-huge".to_owned());
        }
        args.push("-m".to_owned());
        args.push(self.eal.memory_mb.to_string());
        if self.eal.in_memory {
            // EAL refuses --in-memory together with --no-huge; without
            // hugepages the files it would leave are the shared config,
            // which --no-shconf keeps away just the same.
            args.push(
                if self.eal.hugepages {
                    "--in-memory"
                } else {
                    "--no-shconf"
                }
                .to_owned(),
            );
        }
        for port in self.ports.iter().filter(|p| !p.is_pci()) {
            args.push(format!("--vdev={}", port.device));
        }
        let mut pci = false;
        for port in self.ports.iter().filter(|p| p.is_pci()) {
            pci = true;
            args.push("-a".to_owned());
            args.push(port.device.clone());
        }
        if !pci {
            args.push("--no-pci".to_owned());
        }
        args.extend(self.eal.extra_args.iter().cloned());
        args
    }
}

/// Where mbufs can be out of the pool at once, at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbufBudget {
    /// RX and TX descriptors of every queue of every port.
    pub descriptors: u64,
    /// The workers and the control plane (the main lcore): each its
    /// mempool cache, and the frames it holds: a worker's
    /// [`Config::worker_mbufs_in_flight`], the control plane's
    /// [`CONTROL_MBUFS_IN_FLIGHT`].
    pub lcores: u64,
    /// The punt, inject and handoff rings, full.
    pub rings: u64,
    /// Frames the resolver holds ([`Arp::max_held`]).
    pub held: u64,
    /// Fragments the workers park ([`PARKED_PER_WORKER`] each) and the
    /// pieces of the datagram the control plane is cutting
    /// ([`PIECES_IN_FLIGHT`]).
    pub fragments: u64,
}

impl MbufBudget {
    pub fn total(&self) -> u64 {
        self.descriptors + self.lcores + self.rings + self.held + self.fragments
    }
}

/// Reads and validates the configuration file at `path`. `cpus` are the
/// CPUs lcores may use: pass [`usable_cpus`] in the daemon, a fixed set in
/// tests.
pub fn load(path: &Path, cpus: &CpuSet) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file, cpus),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file,
            line: None,
            message: format!("cannot read: {e}"),
        }])),
    }
}

/// Validates configuration `text`; `file` is the name used in the errors.
pub fn parse(text: &str, file: &str, cpus: &CpuSet) -> Result<Config, ConfigErrors> {
    let mut report = error::Report::new(file, text);
    let config =
        raw::read(text, &mut report).and_then(|raw| validate::validate(&raw, cpus, &mut report));
    match config {
        Some(config) if report.is_clean() => Ok(config),
        _ => Err(report.finish()),
    }
}

/// The device's name without its devargs.
fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

/// Whether `name` is a full PCI address `DDDD:BB:DD.F` in the lowercase
/// form DPDK names the device by.
fn is_pci_address(name: &str) -> bool {
    let b = name.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b.get(r).is_some_and(|s| {
            s.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        })
    };
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}
