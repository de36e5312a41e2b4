//! `config.apply`: what changes between the running state and a whole
//! file, as lines for the operator and ops that make it so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use serde_json::json;

use super::json;
use super::state::{cidr, net, Net, Side};
use super::tenants::side;
use super::{Plan, PlanError, Running};
use crate::api::Op;
use crate::config::span::{find, Step};
use crate::config::{Config, Route, Rule, Snat, Tenant};

/// The plan that makes `new` (the text `text` of file `file`) the running
/// state.
pub(super) fn plan(run: &Running, new: &Config, text: &str, file: &str) -> Result<Plan, PlanError> {
    let restart = needs_restart(&run.fixed, new);
    if !restart.is_empty() {
        let lines = restart
            .into_iter()
            .map(|(name, path)| restart_line(text, file, &name, &path))
            .collect();
        return Err(PlanError::Restart(lines));
    }
    let mut p = Steps::default();
    let s = &run.state;

    // Tenants kept (same settings; routes, rules and neighbours may
    // differ), replaced (settings differ: removed and added again, which
    // ends their flows) and new.
    let new_by_name: HashMap<&str, &Tenant> =
        new.tenants.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut gone: HashSet<String> = HashSet::new();
    let mut kept: Vec<(u32, &Tenant)> = Vec::new();
    let mut slots: Vec<u32> = s.tenants.keys().copied().collect();
    slots.sort_unstable();
    for slot in &slots {
        let old = &s.tenants[slot];
        match new_by_name.get(old.base.name.as_str()) {
            Some(t) if settings(t) == old.base => kept.push((*slot, t)),
            _ => {
                gone.insert(old.base.name.clone());
            }
        }
    }
    let added: Vec<&Tenant> = new
        .tenants
        .iter()
        .filter(|t| s.slot(&t.name).is_none() || gone.contains(&t.name))
        .collect();

    // Elastic IPs and pools that go, unless their tenant takes them along.
    let new_eips: HashMap<Ipv4Addr, (&str, Ipv4Addr)> = new
        .eips
        .iter()
        .map(|e| (e.public, (new.tenants[e.tenant].name.as_str(), e.private)))
        .collect();
    let mut old_eips: Vec<(&Ipv4Addr, &(u32, Ipv4Addr))> = s.eips.iter().collect();
    old_eips.sort_unstable();
    for (public, (slot, private)) in &old_eips {
        let name = s.tenants[slot].base.name.as_str();
        if new_eips.get(public) != Some(&(name, *private)) && !gone.contains(name) {
            p.del(
                format!("- eip {public} ({private} of tenant {name:?})"),
                Op::EipDel {
                    public: public.to_string(),
                },
            );
        }
    }
    let new_pools: HashMap<&str, &Snat> = new
        .snat
        .iter()
        .map(|p| (new.tenants[p.tenant].name.as_str(), p))
        .collect();
    for slot in &slots {
        let Some(old) = s.pools.get(slot) else {
            continue;
        };
        let name = s.tenants[slot].base.name.as_str();
        let same = new_pools.get(name).is_some_and(|p| same_pool(p, old));
        if !same && !gone.contains(name) {
            p.del(
                format!("- snat of tenant {name:?}"),
                Op::SnatDel {
                    tenant: name.to_owned(),
                },
            );
        }
    }

    for (slot, t) in &kept {
        tenant_parts(&mut p, run, *slot, t);
    }
    for name in sorted(&gone) {
        p.del(
            format!("- tenant {name:?} (with its elastic IPs and pool)"),
            Op::TenantDel { name },
        );
    }

    global_routes(&mut p, run, new);
    global_neighbours(&mut p, run, new);

    for t in added {
        p.add(
            format!("+ tenant {:?}", t.name),
            Op::TenantAdd {
                tenant: json::tenant(t),
            },
        );
    }
    let mut new_list: Vec<_> = new_eips.iter().collect();
    new_list.sort_unstable();
    for (public, (name, private)) in new_list {
        let old = s
            .eips
            .get(public)
            .map(|&(slot, q)| (s.tenants[&slot].base.name.as_str(), q));
        if old != Some((name, *private)) || gone.contains(*name) {
            p.last(
                format!("+ eip {public} ({private} of tenant {name:?})"),
                Op::EipAdd {
                    eip: json::eip(*public, name, *private),
                },
            );
        }
    }
    for pool in &new.snat {
        let name = new.tenants[pool.tenant].name.as_str();
        let old = s.slot(name).and_then(|slot| s.pools.get(&slot));
        if !old.is_some_and(|o| same_pool(pool, o)) || gone.contains(name) {
            p.last(
                format!("+ snat of tenant {name:?}"),
                Op::SnatAdd {
                    snat: json::snat(pool, name),
                },
            );
        }
    }
    Ok(p.finish())
}

/// Ops in the order they can apply: removals of what a later addition
/// could collide with first, then additions, then removals of what an
/// addition may still lean on (a global route toward a new tenant's
/// host), then the elastic IPs and pools of the tenants just added.
#[derive(Default)]
struct Steps {
    dels: Vec<(String, Op)>,
    adds: Vec<(String, Op)>,
    late_dels: Vec<(String, Op)>,
    last: Vec<(String, Op)>,
}

impl Steps {
    fn del(&mut self, line: String, op: Op) {
        self.dels.push((line, op));
    }
    fn add(&mut self, line: String, op: Op) {
        self.adds.push((line, op));
    }
    fn late_del(&mut self, line: String, op: Op) {
        self.late_dels.push((line, op));
    }
    fn last(&mut self, line: String, op: Op) {
        self.last.push((line, op));
    }
    fn finish(self) -> Plan {
        let (lines, ops) = self
            .dels
            .into_iter()
            .chain(self.adds)
            .chain(self.late_dels)
            .chain(self.last)
            .unzip();
        Plan { lines, ops }
    }
}

fn sorted(set: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().cloned().collect();
    v.sort();
    v
}

/// A tenant without its routes, neighbours and rules: what cannot change
/// while it runs.
fn settings(t: &Tenant) -> Tenant {
    Tenant {
        routes: Vec::new(),
        neighbours: Vec::new(),
        rules: Vec::new(),
        ..t.clone()
    }
}

/// Pools compare by everything but the tenant index, which is a slot on
/// one side and a file position on the other.
fn same_pool(a: &Snat, b: &Snat) -> bool {
    Snat {
        tenant: 0,
        ..a.clone()
    } == Snat {
        tenant: 0,
        ..b.clone()
    }
}

/// The routes, neighbours and rules of a tenant that stays.
fn tenant_parts(p: &mut Steps, run: &Running, slot: u32, t: &Tenant) {
    let old = &run.state.tenants[&slot];
    let name = &t.name;
    let new_routes: BTreeMap<Net, _> = t.routes.iter().map(|r| (net(r.prefix), r.to)).collect();
    for (&k, &to) in &new_routes {
        match old.routes.get(&k) {
            Some(&was) if was == to => {}
            was => p.add(
                format!(
                    "{} route {} of tenant {name:?} to {to}",
                    if was.is_some() { "~" } else { "+" },
                    cidr(k)
                ),
                Op::RouteAdd {
                    tenant: Some(name.clone()),
                    route: json::tenant_route(cidr(k), to),
                    replace: true,
                },
            ),
        }
    }
    for &k in old.routes.keys() {
        if !new_routes.contains_key(&k) {
            p.late_del(
                format!("- route {} of tenant {name:?}", cidr(k)),
                Op::RouteDel {
                    tenant: Some(name.clone()),
                    prefix: cidr(k).to_string(),
                    port: None,
                },
            );
        }
    }
    let new_neighbours: BTreeMap<_, _> = t.neighbours.iter().map(|n| (n.ip, n.mac)).collect();
    for (&ip, &mac) in &old.neighbours {
        if new_neighbours.get(&ip) != Some(&mac) {
            p.del(
                format!("- neighbour {ip} of tenant {name:?}"),
                Op::NeighDel {
                    tenant: Some(name.clone()),
                    port: None,
                    ip: ip.to_string(),
                },
            );
        }
    }
    for (&ip, &mac) in &new_neighbours {
        if old.neighbours.get(&ip) != Some(&mac) {
            p.add(
                format!("+ neighbour {ip} of tenant {name:?} at {mac}"),
                Op::NeighAdd {
                    tenant: Some(name.clone()),
                    neighbour: json!({ "ip": ip.to_string(), "mac": mac.to_string() }),
                },
            );
        }
    }
    // Rules are an ordered list: when it differs, it is replaced whole
    // (new handles), since an order cannot be patched by handle safely.
    let old_rules: Vec<Rule> = old.rules.iter().map(|r| r.rule).collect();
    if old_rules != t.rules {
        for r in &old.rules {
            p.del(
                format!("- rule {} of tenant {name:?}", r.handle),
                Op::RuleDel {
                    tenant: name.clone(),
                    handle: r.handle,
                },
            );
        }
        for r in &t.rules {
            p.add(
                format!("+ rule of tenant {name:?}: {}", json::rule(r)),
                Op::RuleAdd {
                    tenant: name.clone(),
                    rule: json::rule(r),
                    position: None,
                },
            );
        }
    }
}

fn global_routes(p: &mut Steps, run: &Running, new: &Config) {
    let s = &run.state;
    let new_routes: BTreeMap<(Side, Net), &Route> = new
        .routes
        .iter()
        .map(|r| ((side(new, r.port), net(r.prefix)), r))
        .collect();
    for (k, r) in &new_routes {
        match s.routes.get(k) {
            Some(old) if old == *r => {}
            old => p.add(
                format!(
                    "{} route {} via {}",
                    if old.is_some() { "~" } else { "+" },
                    r.prefix,
                    r.via
                ),
                Op::RouteAdd {
                    tenant: None,
                    route: json::route(r, new),
                    replace: true,
                },
            ),
        }
    }
    for (k, r) in &s.routes {
        if !new_routes.contains_key(k) {
            p.late_del(
                format!("- route {} via {}", r.prefix, r.via),
                Op::RouteDel {
                    tenant: None,
                    prefix: r.prefix.to_string(),
                    port: Some(run.fixed.ports[r.port].name.clone()),
                },
            );
        }
    }
}

fn global_neighbours(p: &mut Steps, run: &Running, new: &Config) {
    let s = &run.state;
    let new_map: BTreeMap<(usize, Ipv4Addr), _> = new
        .neighbours
        .iter()
        .map(|n| ((n.port, n.ip), n.mac))
        .collect();
    for (&(port, ip), &mac) in &s.neighbours {
        if new_map.get(&(port, ip)) != Some(&mac) {
            let name = &run.fixed.ports[port].name;
            p.del(
                format!("- neighbour {ip} on port {name:?}"),
                Op::NeighDel {
                    tenant: None,
                    port: Some(name.clone()),
                    ip: ip.to_string(),
                },
            );
        }
    }
    for (&(port, ip), &mac) in &new_map {
        if s.neighbours.get(&(port, ip)) != Some(&mac) {
            let name = &new.ports[port].name;
            p.add(
                format!("+ neighbour {ip} on port {name:?} at {mac}"),
                Op::NeighAdd {
                    tenant: None,
                    neighbour: json!({ "port": name, "ip": ip.to_string(), "mac": mac.to_string() }),
                },
            );
        }
    }
}

/// What the operator reads of a key `name` at `path` that only a restart
/// changes: where it is in the file, as the validator's errors say it
/// (`FILE:LINE:`), or that the file leaves it to its default.
fn restart_line(text: &str, file: &str, name: &str, path: &[Step]) -> String {
    let why = "differs from the running value and needs a restart: tgw sets it up only when it starts; restart tgw with this file, or keep the running value";
    match find(text, path) {
        Some((line, true)) => format!("{file}:{line}: {name} {why}"),
        Some((line, false)) => format!("{file}:{line}: {name} (not set here: its default) {why}"),
        None => format!("{file}: {name} (not in the file: its default) {why}"),
    }
}

/// The keys of `new` that only a restart changes and that differ from
/// `old`'s: each its name for the operator and its path in the file.
fn needs_restart(old: &Config, new: &Config) -> Vec<(String, Vec<Step>)> {
    let mut out = Vec::new();
    let mut key = |differs: bool, key: String, path: Vec<Step>| {
        if differs {
            out.push((key, path));
        }
    };
    // Each section's every key, named in a pattern without `..`: a key
    // added to one of them does not compile until it is listed here. A
    // reload once took a file that changed `[offload] max_deny_rules`,
    // answered "applied", and kept the running value.
    macro_rules! fields {
        ($ty:path, $a:expr, $b:expr, $section:expr, $at:expr, [$($f:ident),*]) => {
            let $ty { $($f: _),* } = &$a;
            $(
                let mut path: Vec<Step> = $at;
                path.push(Step::Key(stringify!($f)));
                key($a.$f != $b.$f, format!("{} {}", $section, stringify!($f)), path);
            )*
        };
    }
    let section = |name: &'static str| vec![Step::Key(name)];
    fields!(
        crate::config::Dataplane,
        old.dataplane,
        new.dataplane,
        "[dataplane]",
        section("dataplane"),
        [mode, watchdog_ms, tenant_slots, rule_slots]
    );
    fields!(
        crate::config::Eal,
        old.eal,
        new.eal,
        "[eal]",
        section("eal"),
        [
            main_lcore,
            file_prefix,
            hugepages,
            memory_mb,
            in_memory,
            extra_args
        ]
    );
    fields!(
        crate::config::Mempool,
        old.mempool,
        new.mempool,
        "[mempool]",
        section("mempool"),
        [mbufs, cache_size, data_room]
    );
    if old.ports.len() != new.ports.len() {
        key(
            true,
            format!(
                "[[port]] (the number of ports: {} running, {} in the file)",
                old.ports.len(),
                new.ports.len()
            ),
            section("port"),
        );
    } else {
        for (i, (a, b)) in old.ports.iter().zip(&new.ports).enumerate() {
            let at = format!("[[port]] {:?}", a.name);
            fields!(
                crate::config::Port,
                a,
                b,
                at,
                vec![Step::Key("port"), Step::Index(i)],
                [name, device, role, mac, peer_mac, addresses, mtu, rx_desc, tx_desc]
            );
        }
    }
    if old.workers != new.workers {
        key(
            true,
            "[[worker]] (lcores, cpus or rx queues)".to_owned(),
            section("worker"),
        );
    }
    fields!(
        crate::config::Flows,
        old.flows,
        new.flows,
        "[flows]",
        section("flows"),
        [
            capacity,
            per_tenant,
            unreplied_per_tenant,
            unreplied_total,
            unreplied_s,
            tcp_established_s,
            tcp_transitory_s,
            udp_s,
            icmp_s
        ]
    );
    if old.icmp != new.icmp {
        key(true, "[icmp]".to_owned(), section("icmp"));
    }
    if old.tcp != new.tcp {
        key(true, "[tcp]".to_owned(), section("tcp"));
    }
    if old.arp != new.arp {
        key(true, "[arp]".to_owned(), section("arp"));
    }
    fields!(
        crate::config::Metrics,
        old.metrics,
        new.metrics,
        "[metrics]",
        section("metrics"),
        [listen, allow_remote]
    );
    fields!(
        crate::config::Offload,
        old.offload,
        new.offload,
        "[offload]",
        section("offload"),
        [
            mode,
            max_flows,
            tenant_share,
            query_interval_ms,
            queue_depth,
            outer_df,
            max_deny_rules
        ]
    );
    fields!(
        crate::config::Control,
        old.control,
        new.control,
        "[control]",
        section("control"),
        [socket]
    );
    out
}
