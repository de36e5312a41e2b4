//! From the configuration as written to a [`Config`], reporting every
//! problem with the line of the value to change.
//!
//! Each check runs on whatever parts are readable, so that one broken port
//! does not hide a problem in a worker. Checks that need several parts
//! (the mempool size) run only when those parts are sound, to avoid
//! reporting a consequence instead of the cause.

mod addrs;
mod control;
mod links;
mod metrics;
mod nat;
mod neighbours;
pub(crate) mod object;
mod offload;
mod packet;
mod ports;
mod routes;
mod rules;
mod tenants;
mod workers;

use toml::Spanned;

use super::error::Report;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::raw::{List, RawConfig, RawDataplane, RawEal, RawMempool, RawPort, RawTenant, Section};
use super::{
    Config, CpuSet, Dataplane, Eal, Eip, Ipv4Cidr, Mempool, Mode, Port, Role, Route,
    CONTROL_MBUFS_IN_FLIGHT, MAX_LCORE, MBUF_HEADROOM, MEMPOOL_CACHE_MAX, RING_SLOTS,
    RULE_SLOTS_DEFAULT, RULE_SLOTS_MAX, TENANT_SLOTS_DEFAULT, TENANT_SLOTS_MAX,
    WATCHDOG_DEFAULT_MS, WATCHDOG_MIN_MS,
};

/// EAL options that `[eal]` and `[[port]]` already produce; passing them
/// again in `extra_args` would contradict the file, so say which key to use.
const CONTROLLED_EAL_OPTIONS: &[(&str, &str)] = &[
    ("-l", "[[worker]] lcore and [eal] main_lcore"),
    ("--lcores", "[[worker]] lcore and [eal] main_lcore"),
    ("-c", "[[worker]] lcore and [eal] main_lcore"),
    ("--main-lcore", "[eal] main_lcore"),
    ("--master-lcore", "[eal] main_lcore"),
    ("--file-prefix", "[eal] file_prefix"),
    ("--no-huge", "[eal] hugepages = false"),
    ("-m", "[eal] memory_mb"),
    ("--in-memory", "[eal] in_memory = true"),
    ("--vdev", "a [[port]] device"),
    ("-a", "a [[port]] device"),
    ("--allow", "a [[port]] device"),
    ("-w", "a [[port]] device"),
    ("--pci-whitelist", "a [[port]] device"),
];

pub(super) fn validate(raw: &RawConfig, cpus: &CpuSet, r: &mut Report) -> Option<Config> {
    let dataplane = dataplane(raw.dataplane.as_ref(), r);
    let eal = eal(raw.eal.as_ref(), cpus, r);
    let mempool = mempool(raw.mempool.as_ref(), r);
    let ports = ports::ports(&raw.ports, mempool.as_ref(), raw.mempool.as_ref(), r);
    let workers = workers::workers(&raw.workers, &raw.ports.items, raw.eal.as_ref(), cpus, r);
    let routes = routes::routes(&raw.routes, ports.as_deref(), r);
    let neighbours = neighbours::neighbours(&raw.neighbours, ports.as_deref(), r);
    let routed = routes
        .as_deref()
        .zip(ports.as_deref())
        .map(|(routes, ports)| UnderlayRoutes::new(routes, ports));
    let routed_fn = routed.as_ref().map(|u| move |ip| u.cover(ip));
    let context = tenants::Context {
        ports: ports.as_deref(),
        routed: routed_fn.as_ref().map(|f| f as &dyn Fn(Ipv4Addr) -> bool),
        public: has_role(&raw.ports, Role::Public),
        eips: &rules::eip_hints(&raw.eips),
    };
    let tenants = tenants::tenants(&raw.tenants, &context, r);
    let by_name = tenants
        .as_deref()
        .map(|t| nat::ByName::new(t, &raw.tenants));
    let tenant_list = by_name.as_ref().map(|t| t as &dyn nat::Tenants);
    let eips = nat::eips(&raw.eips, tenant_list, ports.as_deref(), r);
    let publics: Option<HashSet<Ipv4Addr>> = eips
        .as_deref()
        .map(|eips| eips.iter().map(|e: &Eip| e.public).collect());
    let is_eip = publics.as_ref().map(|set| move |ip| set.contains(&ip));
    let snat = nat::snat(
        &raw.snat,
        tenant_list,
        is_eip.as_ref().map(|f| f as &dyn Fn(Ipv4Addr) -> bool),
        ports.as_deref(),
        r,
    );
    let flows = packet::flows(raw.flows.as_ref(), r);
    let icmp = packet::icmp(raw.icmp.as_ref(), r);
    let tcp = packet::tcp(raw.tcp.as_ref());
    let arp = packet::arp(raw.arp.as_ref(), r);
    let control = control::control(raw.control.as_ref(), eal.as_ref(), r);
    let metrics = metrics::metrics(raw.metrics.as_ref(), r);
    let offload = offload::offload(raw.offload.as_ref(), r);

    let config = Config {
        dataplane: dataplane?,
        eal: eal?,
        mempool: mempool?,
        ports: ports?,
        workers: workers?,
        tenants: tenants?,
        routes: routes?,
        neighbours: neighbours?,
        eips: eips?,
        snat: snat?,
        flows: flows?,
        icmp: icmp?,
        tcp: tcp?,
        arp: arp?,
        control: control?,
        metrics: metrics?,
        offload: offload?,
    };
    mempool_size(&config, raw, r);
    memory_size(&config, raw, r);
    gre_sequence_workers(config.workers.len(), &raw.tenants, r);
    slots(&config, raw, r);
    static_neighbours(&config, raw, r);
    Some(config)
}

/// Each tenant's static neighbours fit its share of the neighbour table,
/// and all tenants' fit the tenants' part: else the tables cannot be built
/// and tgw would refuse the file only when it starts (or reloads), with
/// no line to point at.
fn static_neighbours(config: &Config, raw: &RawConfig, r: &mut Report) {
    let arp = &config.arp;
    for (t, section) in config.tenants.iter().zip(&raw.tenants.items) {
        let n = t.neighbours.len();
        if n > arp.per_tenant as usize {
            r.at(
                section.at,
                format!("tenant {}: {n} static neighbours are more than a tenant's share of the neighbour table ([arp] per_tenant = {}); raise [arp] per_tenant to at least {n}, or keep fewer", t.name, arp.per_tenant),
            );
        }
    }
    let all: usize = config.tenants.iter().map(|t| t.neighbours.len()).sum();
    let share = arp.entries.saturating_sub(arp.port_entries) as usize;
    if all > share {
        let at = raw.arp.as_ref().map_or(0, |s| s.at);
        r.at(
            at,
            format!("[arp]: the tenants have {all} static neighbours, more than the tenants' part of the neighbour table (entries {} - port_entries {} = {share}); raise [arp] entries, or keep fewer", arp.entries, arp.port_entries),
        );
    }
}

/// The file's tenants and rules fit the slots `[dataplane]` sizes the
/// workers for.
fn slots(config: &Config, raw: &RawConfig, r: &mut Report) {
    let d = &config.dataplane;
    let section = raw.dataplane.as_ref();
    let tenants = config.tenants.len();
    if tenants > d.tenant_slots as usize {
        let value = section.and_then(|s| s.value.tenant_slots.as_ref());
        r.at(
            at(value, section.map(|s| s.at)),
            format!("[dataplane] tenant_slots is {} but the file has {tenants} tenants; raise it to at least {tenants} (and room for those added at runtime)", d.tenant_slots),
        );
    }
    let rules: usize = config.tenants.iter().map(|t| t.rules.len()).sum();
    if rules > d.rule_slots as usize {
        let value = section.and_then(|s| s.value.rule_slots.as_ref());
        r.at(
            at(value, section.map(|s| s.at)),
            format!("[dataplane] rule_slots is {} but the file's tenants have {rules} rules; raise it to at least {rules} (and room for those added at runtime)", d.rule_slots),
        );
    }
}

/// The prefixes routed out of underlay ports, so that whether a tunnel
/// host is behind one is 33 lookups, not a scan of every global route
/// for every host (10k hosts and 1M routes took 14 s).
struct UnderlayRoutes(HashSet<(u32, u8)>);

impl UnderlayRoutes {
    fn new(routes: &[Route], ports: &[Port]) -> UnderlayRoutes {
        let underlay = |r: &&Route| ports.get(r.port).is_some_and(|p| p.role == Role::Underlay);
        UnderlayRoutes(
            routes
                .iter()
                .filter(underlay)
                .map(|r| (u32::from(r.prefix.network()), r.prefix.len))
                .collect(),
        )
    }

    fn cover(&self, ip: Ipv4Addr) -> bool {
        (0..=32u8).any(|len| {
            let net = Ipv4Cidr { addr: ip, len }.network();
            self.0.contains(&(u32::from(net), len))
        })
    }
}

/// GRE sequence numbers need one sender per tunnel: with two workers a
/// tunnel's frames leave from two TX queues with numbers from two
/// counters, and the host drops every frame numbered below the last it
/// took (docs/decisions.md, "GRE checksums and sequence numbers on send").
fn gre_sequence_workers(workers: usize, tenants: &List<RawTenant>, r: &mut Report) {
    if workers <= 1 {
        return;
    }
    for t in &tenants.items {
        if let Some(v) = t.value.gre_sequence.as_ref().filter(|v| *v.get_ref()) {
            let name = t.value.name.as_ref().map_or("?", |n| n.get_ref().as_str());
            r.at(
                v.span().start,
                format!("tenant {name:?}: gre_sequence needs a single [[worker]], and {workers} are defined: each worker would number the tunnel's packets on its own and the host drops any lower than the last it took; use one worker, or turn gre_sequence off on the host's tunnel (no `seq`) and here"),
            );
        }
    }
}

/// Whether some port has `role`; `None` while a role is unreadable, since
/// it may be the one.
fn has_role(ports: &List<RawPort>, role: Role) -> Option<bool> {
    let mut known = !ports.broken;
    for p in &ports.items {
        match &p.value.role {
            Some(v) if v.get_ref() == role.as_str() => return Some(true),
            Some(v) if Role::ALL.iter().any(|r| r.as_str() == v.get_ref()) => {}
            _ => known = false,
        }
    }
    known.then_some(false)
}

/// Names of ports and tenants: safe in logs, metrics labels and the
/// control socket's commands.
fn valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Byte offset of an optional value, else of its table, else the file start.
fn at<T>(value: Option<&Spanned<T>>, section: Option<usize>) -> usize {
    value.map_or(section.unwrap_or(0), |v| v.span().start)
}

/// An integer setting in `lo..=hi`, or `default` when absent.
fn int<T: TryFrom<i64>>(
    value: Option<&Spanned<i64>>,
    default: T,
    lo: i64,
    hi: i64,
    what: &str,
    hint: &str,
    r: &mut Report,
) -> Option<T> {
    let Some(v) = value else {
        return Some(default);
    };
    let n = *v.get_ref();
    if let Some(t) = Some(n)
        .filter(|n| (lo..=hi).contains(n))
        .and_then(|n| T::try_from(n).ok())
    {
        return Some(t);
    }
    r.at(
        v.span().start,
        format!("{what} {n} is out of range; use a value in {lo}..={hi}{hint}"),
    );
    None
}

fn dataplane(raw: Option<&Section<RawDataplane>>, r: &mut Report) -> Option<Dataplane> {
    let Some(section) = raw else {
        return Some(Dataplane::default());
    };
    let mode = match &section.value.mode {
        None => Some(Mode::default()),
        Some(v) => {
            let s = v.get_ref();
            let mode = Mode::ALL.into_iter().find(|m| m.as_str() == s);
            if mode.is_none() {
                let valid: Vec<String> = Mode::ALL
                    .iter()
                    .map(|&m| format!("{:?} ({})", m.as_str(), mode_summary(m)))
                    .collect();
                r.at(
                    v.span().start,
                    format!("[dataplane] unknown mode {s:?}; use {}", valid.join(" or ")),
                );
            }
            mode
        }
    };
    let watchdog_ms = watchdog(section.value.watchdog_ms.as_ref(), r);
    let tenant_slots = int(
        section.value.tenant_slots.as_ref(),
        TENANT_SLOTS_DEFAULT,
        1,
        i64::from(TENANT_SLOTS_MAX),
        "[dataplane] tenant_slots",
        " tenants (those added at runtime included)",
        r,
    );
    let rule_slots = int(
        section.value.rule_slots.as_ref(),
        RULE_SLOTS_DEFAULT,
        1,
        i64::from(RULE_SLOTS_MAX),
        "[dataplane] rule_slots",
        " firewall rules over all tenants (those added at runtime included)",
        r,
    );
    // A mode of the wrong type was dropped and reported: no default for it.
    section.sound().then_some(Dataplane {
        mode: mode?,
        watchdog_ms: watchdog_ms?,
        tenant_slots: tenant_slots?,
        rule_slots: rule_slots?,
    })
}

/// `watchdog_ms`: 0 (off) or long enough not to fire on a worker the
/// scheduler merely set aside.
fn watchdog(value: Option<&Spanned<i64>>, r: &mut Report) -> Option<u32> {
    let hint = " (0 turns the watchdog off)";
    let ms = int(
        value,
        WATCHDOG_DEFAULT_MS,
        0,
        3_600_000,
        "[dataplane] watchdog_ms",
        hint,
        r,
    )?;
    if (1..WATCHDOG_MIN_MS).contains(&ms) {
        r.at(
            at(value, None),
            format!("[dataplane] watchdog_ms {ms} is too short: a busy machine can set a worker aside for that long; use 0 (off) or at least {WATCHDOG_MIN_MS}"),
        );
        return None;
    }
    Some(ms)
}

/// What a mode does, for the operator choosing one.
fn mode_summary(mode: Mode) -> &'static str {
    match mode {
        Mode::Gateway => "the packet path: tenants, routing, GRE",
        Mode::L2fwd => "port to port with the MAC rewrite, for bring-up and I/O baselines",
    }
}

fn eal(raw: Option<&Section<RawEal>>, cpus: &CpuSet, r: &mut Report) -> Option<Eal> {
    let d = Eal::default();
    let Some(section) = raw else {
        if !cpus.contains(d.main_lcore) {
            r.at(
                0,
                format!(
                    "main_lcore {} (the default) is not a usable CPU (usable: {cpus}); add [eal] main_lcore = one of them",
                    d.main_lcore
                ),
            );
            return None;
        }
        return Some(d);
    };
    let (e, sec) = (&section.value, Some(section.at));
    let mut ok = section.sound();

    let main_lcore = if section.readable("main_lcore") {
        lcore_number(e.main_lcore.as_ref(), d.main_lcore, "[eal] main_lcore", r)
    } else {
        None
    };
    if let Some(lcore) = main_lcore {
        if !cpus.contains(lcore) {
            let default = if e.main_lcore.is_none() {
                " (the default)"
            } else {
                ""
            };
            r.at(
                at(e.main_lcore.as_ref(), sec),
                format!("main_lcore {lcore}{default} is not a usable CPU (usable: {cpus}); set [eal] main_lcore to one of them"),
            );
            ok = false;
        }
    }

    let file_prefix = match &e.file_prefix {
        None => Some(d.file_prefix),
        Some(p) => {
            let s = p.get_ref();
            let good = (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !s.starts_with('.');
            if good {
                Some(s.clone())
            } else {
                r.at(
                    p.span().start,
                    format!("[eal] file_prefix {s:?} is not usable in DPDK's runtime file names; use 1 to 64 of A-Z a-z 0-9 _ . - not starting with '.'"),
                );
                None
            }
        }
    };

    let memory_mb = int(
        e.memory_mb.as_ref(),
        d.memory_mb,
        1,
        1 << 20,
        "[eal] memory_mb",
        " MiB",
        r,
    );

    let mut extra_args = Vec::new();
    for arg in e.extra_args.iter().flatten() {
        let s = arg.get_ref();
        let option = s.split('=').next().unwrap_or(s);
        if s.is_empty() {
            r.at(
                arg.span().start,
                "[eal] extra_args has an empty argument; remove it",
            );
            ok = false;
        } else if let Some((_, key)) = CONTROLLED_EAL_OPTIONS.iter().find(|(o, _)| *o == option) {
            r.at(
                arg.span().start,
                format!("[eal] extra_args {s:?} contradicts the configuration; set it with {key} instead"),
            );
            ok = false;
        } else {
            extra_args.push(s.clone());
        }
    }

    let eal = Eal {
        main_lcore: main_lcore?,
        file_prefix: file_prefix?,
        hugepages: e.hugepages.as_ref().map_or(d.hugepages, |v| *v.get_ref()),
        memory_mb: memory_mb?,
        in_memory: e.in_memory.as_ref().map_or(d.in_memory, |v| *v.get_ref()),
        extra_args,
    };
    ok.then_some(eal)
}

/// An lcore id: DPDK refuses ids at or past `RTE_MAX_LCORE`.
fn lcore_number(
    value: Option<&Spanned<i64>>,
    default: u32,
    what: &str,
    r: &mut Report,
) -> Option<u32> {
    let Some(v) = value else {
        return Some(default);
    };
    let n = *v.get_ref();
    match u32::try_from(n) {
        Ok(lcore) if lcore < MAX_LCORE => Some(lcore),
        _ => {
            r.at(
                v.span().start,
                format!(
                    "{what} {n} is impossible: lcores are 0..={} (RTE_MAX_LCORE is {MAX_LCORE}); use a CPU number below {MAX_LCORE}",
                    MAX_LCORE - 1
                ),
            );
            None
        }
    }
}

fn mempool(raw: Option<&Section<RawMempool>>, r: &mut Report) -> Option<Mempool> {
    let d = Mempool::default();
    let Some(section) = raw else {
        return Some(d);
    };
    let m = &section.value;
    let mbufs = int(
        m.mbufs.as_ref(),
        d.mbufs,
        1,
        i64::from(u32::MAX),
        "[mempool] mbufs",
        "",
        r,
    );
    let cache_size = int(
        m.cache_size.as_ref(),
        d.cache_size,
        0,
        i64::from(MEMPOOL_CACHE_MAX),
        "[mempool] cache_size",
        " (RTE_MEMPOOL_CACHE_MAX_SIZE is 512)",
        r,
    );
    let data_room = int(
        m.data_room.as_ref(),
        d.data_room,
        i64::from(MBUF_HEADROOM) + 1,
        i64::from(u16::MAX),
        "[mempool] data_room",
        " (bytes, including the 128-byte headroom)",
        r,
    );
    let (mbufs, cache_size, data_room) = (mbufs?, cache_size?, data_room?);
    if !section.sound() {
        return None;
    }
    // DPDK flushes a per-lcore cache at 1.5 × its size and refuses a pool
    // whose flush threshold exceeds the pool.
    if u64::from(cache_size) * 3 > u64::from(mbufs) * 2 {
        r.at(
            at(m.cache_size.as_ref(), Some(section.at)),
            format!(
                "[mempool] cache_size {cache_size} is more than mbufs / 1.5 ({}), which DPDK refuses; lower cache_size or raise mbufs to at least {}",
                u64::from(mbufs) * 2 / 3,
                (u64::from(cache_size) * 3).div_ceil(2)
            ),
        );
        return None;
    }
    Some(Mempool {
        mbufs,
        cache_size,
        data_room,
    })
}

/// The pool must hold every mbuf that can sit in a descriptor ring or a
/// worker at once, or RX starves silently under load.
fn mempool_size(config: &Config, raw: &RawConfig, r: &mut Report) {
    let b = config.mbuf_budget();
    let needed = b.total();
    let have = u64::from(config.mempool.mbufs);
    if have >= needed {
        return;
    }
    let m = raw.mempool.as_ref();
    let place = at(m.and_then(|m| m.value.mbufs.as_ref()), m.map(|m| m.at));
    // DPDK's rings are sized to a power of two, so 2^q - 1 wastes nothing.
    let suggest = (needed + 1).next_power_of_two() - 1;
    let cache = config.mempool.cache_size;
    let default = if m.and_then(|m| m.value.mbufs.as_ref()).is_none() {
        " (the default)"
    } else {
        ""
    };
    r.at(
        place,
        format!(
            "mbufs {have}{default} is too few: the RX/TX descriptors of all ports ({}), {} worker(s) × (cache_size {cache} + {} in flight: a burst received and a TX buffer for each of {} ports) and the control plane (cache_size {cache} + {CONTROL_MBUFS_IN_FLIGHT}) ({}), the punt, inject and handoff rings ({} × {}), the frames the resolver may hold ([arp] max_held {}) and the fragments parked and being cut ({}) need {needed}; set [mempool] mbufs to at least {needed} (e.g. {suggest}), or lower those",
            b.descriptors,
            config.workers.len(),
            config.worker_mbufs_in_flight(),
            config.ports.len(),
            b.lcores,
            b.rings / u64::from(RING_SLOTS - 1),
            RING_SLOTS - 1,
            b.held,
            b.fragments,
        ),
    );
}

/// Without hugepages `-m` is all the memory EAL gets, so a pool that does
/// not fit fails at start; report it now. Per mbuf: the 128-byte
/// `rte_mbuf`, the data room and a 64-byte mempool header.
fn memory_size(config: &Config, raw: &RawConfig, r: &mut Report) {
    if config.eal.hugepages {
        return;
    }
    let per_mbuf = u64::from(config.mempool.data_room) + 128 + 64;
    let bytes = u64::from(config.mempool.mbufs) * per_mbuf;
    let mib = bytes.div_ceil(1 << 20);
    if mib < u64::from(config.eal.memory_mb) {
        return;
    }
    let e = raw.eal.as_ref();
    let place = at(e.and_then(|e| e.value.memory_mb.as_ref()), e.map(|e| e.at));
    r.at(
        place,
        format!(
            "memory_mb {} cannot hold the mempool ({} mbufs × {per_mbuf} bytes ≈ {mib} MiB) and with hugepages = false it is a hard limit; raise memory_mb to at least {} or lower [mempool] mbufs",
            config.eal.memory_mb,
            config.mempool.mbufs,
            mib + 64
        ),
    );
}
