//! Tenants: loading the file's, the whole state back as a config, and
//! `tenant.add` / `tenant.del`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use super::state::{canonical, net, RuleEntry, State, TenantState, Tx, UNDERLAY};
use super::{exists, invalid, not_found, Change, Cx, RuleAdded, Running};
use crate::api::{ApiError, ErrorCode};
use crate::config::object::{self, TenantContext};
use crate::config::{Config, Eip, Neighbour, Snat, Tenant};

pub(super) fn load(config: Config) -> Running {
    let mut fixed = config;
    let tenants = std::mem::take(&mut fixed.tenants);
    let routes = std::mem::take(&mut fixed.routes);
    let neighbours = std::mem::take(&mut fixed.neighbours);
    let eips = std::mem::take(&mut fixed.eips);
    let pools = std::mem::take(&mut fixed.snat);

    let mut s = State::default();
    let mut next_handle = 1;
    for r in routes {
        s.routes.insert((side(&fixed, r.port), net(r.prefix)), r);
    }
    for n in neighbours {
        s.neighbours.insert((n.port, n.ip), n.mac);
    }
    for (i, t) in tenants.into_iter().enumerate() {
        let slot = u32::try_from(i).expect("fewer than 2^32 tenants");
        let mut tx = Tx::new(&mut s);
        // The file's rules fit `[dataplane] rule_slots` (checked with it).
        insert(&mut tx, slot, t, &mut next_handle, u32::MAX)
            .expect("a validated config's rules fit their slots");
    }
    s.next_slot = s.tenants.len() as u32;
    for e in eips {
        let slot = e.tenant as u32;
        s.eips.insert(e.public, (slot, e.private));
        s.privates.insert((slot, e.private), e.public);
        s.tenant_eips.insert((slot, e.public), ());
    }
    for p in pools {
        let slot = p.tenant as u32;
        for &a in &p.addresses {
            s.pooled.insert(a, slot);
        }
        s.pools.insert(slot, p);
    }
    Running {
        fixed,
        state: s,
        next_handle,
    }
}

/// The side (public or underlay table) of a route out of port `port`.
pub(super) fn side(fixed: &Config, port: usize) -> u8 {
    match fixed.ports.get(port).map(|p| p.role) {
        Some(crate::config::Role::Underlay) => UNDERLAY,
        _ => super::state::PUBLIC,
    }
}

pub(super) fn config(run: &Running) -> Config {
    let s = &run.state;
    let mut slots: Vec<u32> = s.tenants.keys().copied().collect();
    slots.sort_unstable();
    let index: HashMap<u32, usize> = slots.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut c = run.fixed.clone();
    c.tenants = slots.iter().map(|slot| s.tenants[slot].tenant()).collect();
    c.routes = s.routes.values().copied().collect();
    c.neighbours = s
        .neighbours
        .iter()
        .map(|(&(port, ip), &mac)| Neighbour { port, ip, mac })
        .collect();
    let mut eips: Vec<Eip> = s
        .eips
        .iter()
        .map(|(&public, &(slot, private))| Eip {
            public,
            tenant: index[&slot],
            private,
        })
        .collect();
    eips.sort_by_key(|e| e.public);
    c.eips = eips;
    let mut pools: Vec<Snat> = s
        .pools
        .values()
        .map(|p| Snat {
            tenant: index[&(p.tenant as u32)],
            ..p.clone()
        })
        .collect();
    pools.sort_by_key(|p| p.tenant);
    c.snat = pools;
    c
}

/// Puts a validated tenant in `slot` with its indices; its rules get
/// handles from `next_handle` and counter slots below `rule_cap`.
fn insert(
    tx: &mut Tx,
    slot: u32,
    t: Tenant,
    next_handle: &mut u64,
    rule_cap: u32,
) -> Result<Vec<RuleAdded>, ApiError> {
    let mut added = Vec::new();
    let mut state = TenantState {
        base: Tenant {
            routes: Vec::new(),
            neighbours: Vec::new(),
            rules: Vec::new(),
            ..t.clone()
        },
        routes: t.routes.iter().map(|r| (net(r.prefix), r.to)).collect(),
        neighbours: t.neighbours.iter().map(|n| (n.ip, n.mac)).collect(),
        rules: Vec::new(),
    };
    for rule in t.rules {
        let slot_of_rule = tx
            .rule_slot(rule_cap)
            .ok_or_else(|| super::rules::full(rule_cap, "tenant.rules"))?;
        state.rules.push(RuleEntry {
            handle: *next_handle,
            slot: slot_of_rule,
            rule,
        });
        added.push(RuleAdded {
            tenant: slot,
            handle: *next_handle,
            slot: slot_of_rule,
        });
        *next_handle += 1;
    }
    tx.put(|s| &mut s.names, t.name.clone(), slot);
    tx.put(|s| &mut s.keys, t.key, slot);
    for p in &t.public_prefixes {
        tx.put(|s| &mut s.publics, net(*p), slot);
    }
    for h in &t.hosts {
        let n = tx.s.hosts.get(&u32::from(*h)).copied().unwrap_or(0);
        tx.put(|s| &mut s.hosts, u32::from(*h), n + 1);
    }
    tx.put(|s| &mut s.tenants, slot, state);
    Ok(added)
}

pub(super) fn add(tx: &mut Tx, cx: Cx, json: &Value) -> Result<(), ApiError> {
    // Whether a tunnel host is behind an underlay route: found by prefix
    // in the routes index, not by scanning a million.
    let s: &State = tx.s;
    let routed = |ip: Ipv4Addr| s.routes_covering(UNDERLAY, ip).next().is_some();
    let name = json.get("name").and_then(Value::as_str);
    let slot = name.and_then(|n| tx.s.slot(n));
    let hints: Vec<_> = match slot {
        Some(slot) => {
            tx.s.eips_of(slot)
                .map(|public| {
                    (
                        public,
                        name.unwrap_or_default().to_owned(),
                        tx.s.eips[&public].1,
                    )
                })
                .collect()
        }
        None => Vec::new(),
    };
    let context = TenantContext {
        ports: &cx.fixed.ports,
        routed: &routed,
        workers: cx.fixed.workers.len(),
        eips: &hints,
    };
    let t = canonical(object::tenant(json, &context).map_err(invalid)?);
    let label = format!("tenant {:?}", t.name);

    if let Some(slot) = tx.s.slot(&t.name) {
        if tx.s.tenants[&slot].tenant() == t {
            return Ok(());
        }
        return Err(exists(
            "tenant.name",
            format!("{label} exists with other values; change it a route, rule or neighbour at a time, or tenant.del it first"),
        ));
    }
    if let Some(&other) = tx.s.keys.get(&t.key) {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!(
                "{label}: key {} is already the key of tenant {:?}; the GRE key names the tenant on the underlay, so give each tenant its own",
                t.key, tx.s.tenants[&other].base.name
            ),
        )
        .field("tenant.key"));
    }
    for (i, p) in t.public_prefixes.iter().enumerate() {
        if let Some((theirs, owner)) = tx.s.public_overlap(net(*p), None) {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "{label}: public prefix {p} overlaps {} of tenant {:?}; a public address leads into one tenant only, so give each tenant its own",
                    super::state::cidr(theirs),
                    tx.s.tenants[&owner].base.name
                ),
            )
            .field(format!("tenant.public_prefixes[{i}]")));
        }
        if let Some((ip, what, owner)) = tx.s.nat_inside(net(*p)) {
            let owner = &tx.s.tenants[&owner].base.name;
            let del = match what {
                "elastic IP" => format!("eip.del {ip}"),
                _ => format!("snat.del {owner}"),
            };
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "{label}: public prefix {p} holds {ip}, a {what} of tenant {owner:?}; a public address leads into one tenant only, and the NAT address would take it from the prefix's tenant; use a prefix without it, or {del} first"
                ),
            )
            .field(format!("tenant.public_prefixes[{i}]")));
        }
    }
    let cap = cx.fixed.dataplane.tenant_slots;
    let Some(slot) = tx.new_slot(cap) else {
        return Err(slots_full(tx, cap));
    };
    let added = insert(tx, slot, t, cx.next_handle, cx.fixed.dataplane.rule_slots)?;
    tx.rules.extend(added);
    tx.change(Change::Tenant(slot));
    Ok(())
}

/// Every tenant slot is taken: for a while, when some wait for the
/// workers to sweep a removed tenant's flows; for good, when the slots
/// waiting are this change's own removals (a retry would meet them
/// again).
fn slots_full(tx: &Tx, cap: u32) -> ApiError {
    let here = tx
        .changes
        .iter()
        .filter(|c| matches!(c, Change::TenantRemoved(_)))
        .count();
    if here > 0 {
        return ApiError::new(
            ErrorCode::Invalid,
            format!("all {cap} tenant slots ([dataplane] tenant_slots) are taken, and the {here} this change frees are free only once the workers have swept their tenants' flows; a tenant whose key, hosts, prefixes, public_prefixes or GRE options change (or that is renamed) is removed and added again, so it needs a free slot meanwhile: raise tenant_slots (restart), or apply the change in two steps (remove the tenant, then add it back once its slot is free)"),
        )
        .field("tenant");
    }
    match tx.s.removed_slots.len() {
        0 => ApiError::new(
            ErrorCode::Invalid,
            format!("all {cap} tenant slots ([dataplane] tenant_slots) are taken; remove a tenant, or raise tenant_slots (restart)"),
        )
        .field("tenant"),
        waiting => ApiError::new(
            ErrorCode::Unavailable,
            format!("all {cap} tenant slots are taken, {waiting} by removed tenants whose flows the workers are still sweeping; retry in a moment, or raise [dataplane] tenant_slots (restart)"),
        ),
    }
}

/// Removes a tenant with its elastic IPs and pool.
pub(super) fn del(tx: &mut Tx, name: &str) -> Result<(), ApiError> {
    let slot = tx.s.slot(name).ok_or_else(|| {
        not_found(
            "name",
            format!("no tenant is named {name:?}; use one of the tenants' names (tenant.show)"),
        )
    })?;
    let eips: Vec<Ipv4Addr> = tx.s.eips_of(slot).collect();
    for public in eips {
        super::nat::unbind(tx, public);
    }
    super::nat::drop_pool(tx, slot);
    let t = tx
        .take(|s| &mut s.tenants, &slot)
        .expect("a slot from the names index is a tenant");
    for r in &t.rules {
        tx.free_rule_slot(r.slot);
    }
    tx.take(|s| &mut s.names, &t.base.name);
    tx.take(|s| &mut s.keys, &t.base.key);
    for p in &t.base.public_prefixes {
        tx.take(|s| &mut s.publics, &net(*p));
    }
    for h in &t.base.hosts {
        let k = u32::from(*h);
        match tx.s.hosts.get(&k).copied() {
            Some(n) if n > 1 => {
                tx.put(|s| &mut s.hosts, k, n - 1);
            }
            _ => {
                tx.take(|s| &mut s.hosts, &k);
            }
        }
    }
    tx.put(|s| &mut s.removed_slots, slot, ());
    tx.change(Change::TenantRemoved(slot));
    Ok(())
}

/// `tenant.show`: every tenant (or the one named), in slot order, each
/// with its slot.
pub(super) fn show(run: &Running, name: Option<&str>) -> Result<Value, ApiError> {
    let s = &run.state;
    let slots: Vec<u32> = match name {
        Some(n) => vec![super::tenant_slot(s, n, "name")?],
        None => {
            let mut all: Vec<u32> = s.tenants.keys().copied().collect();
            all.sort_unstable();
            all
        }
    };
    let list: Vec<Value> = slots
        .iter()
        .map(|slot| {
            let mut v = super::json::tenant(&s.tenants[slot].tenant());
            v["slot"] = (*slot).into();
            v
        })
        .collect();
    Ok(Value::Array(list))
}
