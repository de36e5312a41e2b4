//! Runtime changes, on the control plane: from what changed in the running
//! state to the next snapshot the workers take (DESIGN.md: threads and
//! tables; docs/decisions.md, "Runtime changes").
//!
//! A change is a list of [`Piece`]s — one tenant, one elastic IP, one
//! pool — applied to a clone of the snapshot in use, which shares
//! everything the change does not name: the cost of a change is the cost
//! of what it touches (one tenant's VRF and rules, one shard of elastic
//! IPs), whatever else the gateway holds. Every tenant a piece touches
//! gets a new epoch, so that its flows are decided again on their next
//! packet (pipeline/redecide.rs), and only its flows.
//!
//! The handles that outlast a change — tenant slots, rule counter slots —
//! are the running state's (`ctl::running`): a tenant keeps its slot, and
//! a rule its counter, while it lives.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ctl::config::{Config, Snat, Tenant};
use dataplane::firewall::{RuleId, RuleSpec};
use dataplane::neighbour::{NeighKey, NeighbourWriter};
use dataplane::tables::{BuildError, Spec, Tables};
use dataplane::tenant::TenantId;
use rte::MacAddr;

use crate::tables::{self, snat_spec, tenant_spec};

/// One thing a change touches.
#[derive(Clone, Copy, Debug)]
pub enum Piece<'a> {
    /// A tenant added, or changed in any of its own parts (hosts,
    /// prefixes, routes, rules, neighbours, GRE options).
    Tenant(TenantId, &'a Tenant),
    /// A tenant removed, with its elastic IPs and pool.
    TenantRemoved(TenantId),
    /// Elastic IP `public` bound (or moved) to `private` in `tenant`.
    Eip {
        public: Ipv4Addr,
        tenant: TenantId,
        private: Ipv4Addr,
    },
    EipRemoved(Ipv4Addr),
    /// A tenant's pool set or changed.
    Pool(TenantId, &'a Snat),
    PoolRemoved(TenantId),
}

/// Why a change could not be made into a snapshot. Validation refuses
/// nearly everything first; these are the dataplane's own limits.
#[derive(Debug)]
pub enum ChangeError {
    Build(BuildError),
    /// A tenant's slot is past `[dataplane] tenant_slots`.
    TenantSlot(TenantId),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Build(e) => write!(f, "{e}"),
            ChangeError::TenantSlot(t) => write!(
                f,
                "tenant slot {} is past [dataplane] tenant_slots; raise it (restart)",
                t.0
            ),
        }
    }
}

impl From<BuildError> for ChangeError {
    fn from(e: BuildError) -> Self {
        ChangeError::Build(e)
    }
}

pub struct Runtime {
    /// Config port `i`'s DPDK id and MAC.
    ports: Vec<(u16, MacAddr)>,
    /// The last epoch handed out: each touched tenant gets the next.
    epoch: u32,
    tenant_slots: u32,
    /// Each tenant's public prefixes, `(prefix, len, key)`, from which the
    /// ingress table is rebuilt when one changes.
    ingress: BTreeMap<u32, Vec<Public>>,
    /// The neighbour keys the snapshot holds, and by whom.
    holds: Holds,
    /// Keys no one holds any more and tenants removed, since the last
    /// [`Runtime::take_released`].
    released: (Vec<NeighKey>, Vec<TenantId>),
}

/// The neighbour keys a snapshot holds — its adjacencies' next hops and
/// the static neighbours — and who holds each: a tenant (its tunnels'
/// next hops, its static hosts) or the global tables (public routes'
/// next hops, the ports' static neighbours). A key no one holds any more
/// is let go, so that tenants coming and going do not fill the
/// neighbour table with next hops nobody uses.
#[derive(Default)]
struct Holds {
    by_tenant: HashMap<u32, Vec<NeighKey>>,
    global: Vec<NeighKey>,
    count: HashMap<NeighKey, u32>,
}

impl Holds {
    /// `holder`'s keys are now `keys` (`None`: it holds none);
    /// `released` gets those no one holds any more.
    fn set(&mut self, holder: Option<u32>, keys: Vec<NeighKey>, released: &mut Vec<NeighKey>) {
        for &k in &keys {
            *self.count.entry(k).or_insert(0) += 1;
        }
        let old = match holder {
            Some(slot) if keys.is_empty() => self.by_tenant.remove(&slot),
            Some(slot) => self.by_tenant.insert(slot, keys),
            None => Some(std::mem::replace(&mut self.global, keys)),
        };
        for k in old.unwrap_or_default() {
            if let Some(n) = self.count.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.count.remove(&k);
                    released.push(k);
                }
            }
        }
    }
}

/// What a tenant's share holds in the neighbour table.
fn tenant_keys(
    t: &dataplane::tenant::Tenant,
    statics: &[ctl::config::TenantNeighbour],
) -> Vec<NeighKey> {
    t.tunnels
        .iter()
        .map(|a| a.neigh.key)
        .chain(
            statics
                .iter()
                .map(|n| NeighKey::inner(t.id, u32::from(n.ip))),
        )
        .collect()
}

impl Runtime {
    pub fn new(config: &Config, ports: Vec<(u16, MacAddr)>) -> Runtime {
        Runtime {
            ports,
            epoch: 1,
            tenant_slots: config.dataplane.tenant_slots,
            ingress: BTreeMap::new(),
            holds: Holds::default(),
            released: (Vec::new(), Vec::new()),
        }
    }

    /// The whole snapshot for `config`, its tenants in `slots` (by config
    /// index), every one at a new epoch: at start, and after a change to
    /// the global routes or the ports' neighbours, which every tunnel is
    /// built over.
    pub fn build(
        &mut self,
        config: &Config,
        slots: &[TenantId],
        generation: u64,
        rules: &RuleSlotsOf<'_>,
        writer: &mut NeighbourWriter,
    ) -> Result<Tables, ChangeError> {
        let spec: Spec = tables::spec(config, &self.ports);
        self.epoch += 1;
        let epoch = self.epoch;
        let mut tenants = Vec::with_capacity(spec.tenants.len());
        for (ts, &id) in spec.tenants.iter().zip(slots) {
            if id.0 >= self.tenant_slots {
                return Err(ChangeError::TenantSlot(id));
            }
            tenants.push((id, ts, epoch));
        }
        let ids: HashMap<u32, Vec<u32>> = slots.iter().map(|t| (t.0, rules(t.0))).collect();
        let mut give = |t: TenantId, i: usize, _: &RuleSpec| rule_id(ids.get(&t.0), i);
        let tables = Tables::build_slotted(&spec, &tenants, generation, writer, &mut give)?;
        self.ingress.clear();
        let mut holds = Holds::default();
        let mut dropped = Vec::new();
        for (t, &id) in config.tenants.iter().zip(slots) {
            self.ingress.insert(id.0, ingress_of(t));
            if let Some(built) = tables.tenants.get(id) {
                holds.set(Some(id.0), tenant_keys(built, &t.neighbours), &mut dropped);
            }
        }
        let global = tables
            .l2
            .iter()
            .map(|a| a.neigh.key)
            .chain(
                spec.neighbours
                    .iter()
                    .map(|&(port, ip, _)| NeighKey::port(port, u32::from(ip))),
            )
            .collect();
        holds.set(None, global, &mut dropped);
        // What the tables before held and these do not is let go.
        let old = std::mem::replace(&mut self.holds, holds);
        let released = old
            .count
            .into_keys()
            .filter(|k| !self.holds.count.contains_key(k));
        self.released.0.extend(released);
        Ok(tables)
    }

    /// The neighbour keys no adjacency or static entry holds any more,
    /// and the tenants removed, since the last call: for the resolver to
    /// let go of once the snapshot without them is published
    /// (`Resolver::release`).
    pub fn take_released(&mut self) -> (Vec<NeighKey>, Vec<TenantId>) {
        std::mem::take(&mut self.released)
    }

    /// The snapshot after `pieces`, from `current`: what the pieces do not
    /// touch is shared with it.
    pub fn next(
        &mut self,
        current: &Tables,
        pieces: &[Piece<'_>],
        generation: u64,
        rules: &RuleSlotsOf<'_>,
        writer: &mut NeighbourWriter,
    ) -> Result<Tables, ChangeError> {
        let mut next = current.clone();
        next.generation = generation;
        // Kept aside until every piece is built: a refused change leaves
        // the runtime as it was.
        let mut ingress: BTreeMap<u32, Option<Vec<Public>>> = BTreeMap::new();
        let mut holds: Vec<(u32, Vec<NeighKey>)> = Vec::new();
        let mut removed = Vec::new();
        // Tenants whose decisions changed without their own tables
        // changing (an elastic IP, a pool): a new epoch after the rest.
        let mut touched: Vec<TenantId> = Vec::new();
        for piece in pieces {
            match *piece {
                Piece::Tenant(id, t) => {
                    if id.0 >= self.tenant_slots {
                        return Err(ChangeError::TenantSlot(id));
                    }
                    let spec = tenant_spec(t);
                    let ids = rules(id.0);
                    self.epoch += 1;
                    let mut give = |_: TenantId, i: usize, _: &RuleSpec| rule_id(Some(&ids), i);
                    let built = next.build_tenant(id, &spec, self.epoch, writer, &mut give)?;
                    next.set_tenant(built)?;
                    for n in &t.neighbours {
                        if !writer.set_static(NeighKey::inner(id, u32::from(n.ip)), n.mac.0) {
                            return Err(BuildError::NeighboursFull.into());
                        }
                    }
                    let prefixes = ingress_of(t);
                    if self.ingress.get(&id.0) != Some(&prefixes) {
                        ingress.insert(id.0, Some(prefixes));
                    }
                    if let Some(built) = next.tenants.get(id) {
                        holds.push((id.0, tenant_keys(built, &t.neighbours)));
                    }
                }
                Piece::TenantRemoved(id) => {
                    next.remove_tenant(id);
                    if self.ingress.contains_key(&id.0) {
                        ingress.insert(id.0, None);
                    }
                    holds.push((id.0, Vec::new()));
                    removed.push(id);
                }
                Piece::Eip {
                    public,
                    tenant,
                    private,
                } => {
                    let key = next
                        .tenants
                        .get(tenant)
                        .map(|t| t.key)
                        .ok_or(BuildError::UnknownKey(tenant.0))?;
                    if let Some(old) = next.remove_eip(public) {
                        touched.push(old);
                    }
                    next.set_eip(public, key, private)?;
                    touched.push(tenant);
                }
                Piece::EipRemoved(public) => {
                    if let Some(old) = next.remove_eip(public) {
                        touched.push(old);
                    }
                }
                Piece::Pool(tenant, snat) => {
                    let key = next
                        .tenants
                        .get(tenant)
                        .map(|t| t.key)
                        .ok_or(BuildError::UnknownKey(tenant.0))?;
                    next.set_pool(&snat_spec(key, snat))?;
                    touched.push(tenant);
                }
                Piece::PoolRemoved(tenant) => {
                    next.pools.remove(tenant);
                    touched.push(tenant);
                }
            }
        }
        // Each changed tenant's public prefixes: its own entries of the
        // ingress table, not all of them.
        let pairs =
            |v: &[Public]| -> Vec<(Ipv4Addr, u8)> { v.iter().map(|&(a, l, _)| (a, l)).collect() };
        for (slot, prefixes) in &ingress {
            let old = self.ingress.get(slot).map(|v| pairs(v)).unwrap_or_default();
            let new = prefixes.as_deref().map(pairs).unwrap_or_default();
            next.replace_ingress(TenantId(*slot), &old, &new)?;
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            // A tenant removed in the same change has nothing to move on.
            if let Some(t) = next.tenants.get(id) {
                self.epoch += 1;
                let moved = t.with_epoch(self.epoch);
                next.set_tenant(moved)?;
            }
        }
        for (slot, prefixes) in ingress {
            match prefixes {
                Some(p) => self.ingress.insert(slot, p),
                None => self.ingress.remove(&slot),
            };
        }
        for (slot, keys) in holds {
            self.holds.set(Some(slot), keys, &mut self.released.0);
        }
        self.released.1.extend(removed);
        Ok(next)
    }
}

/// The counter slots of a tenant's rules, in rule order, by tenant slot:
/// the running state's.
pub type RuleSlotsOf<'a> = dyn Fn(u32) -> Vec<u32> + 'a;

/// Rule `i`'s counter among `ids`. A rule without one (which the running
/// state never leaves) counts on the last slot, never on another rule's.
fn rule_id(ids: Option<&Vec<u32>>, i: usize) -> RuleId {
    RuleId(ids.and_then(|v| v.get(i)).copied().unwrap_or(u32::MAX))
}

/// A public prefix leading into a tenant: `(prefix, len, key)`.
type Public = (Ipv4Addr, u8, u32);

/// A tenant's public prefixes as the ingress table takes them.
fn ingress_of(t: &Tenant) -> Vec<Public> {
    t.public_prefixes
        .iter()
        .map(|c| (c.addr, c.len, t.key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctl::api::Op;
    use ctl::running::{Change, Running};
    use dataplane::neighbour::NeighbourLimits;
    use dataplane::resolver::{Resolver, ResolverConfig};
    use dataplane::VecFrame;
    use serde_json::json;

    fn reference() -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reference.toml");
        let cpus: ctl::cpuset::CpuSet = [0, 1].into_iter().collect();
        ctl::config::load(&path, &cpus).expect("reference.toml is valid")
    }

    /// Tenants come and go, each with a tunnel host of its own: their next
    /// hops must leave the neighbour table's port share with them, or the
    /// share fills and a tenant can no longer be added.
    #[test]
    fn tenants_coming_and_going_leave_no_next_hops_behind() {
        let config = reference();
        let ports = vec![
            (0, MacAddr([2, 0, 0, 0, 0, 1])),
            (1, MacAddr([2, 0, 0, 0, 1, 1])),
        ];
        let mut runtime = Runtime::new(&config, ports);
        let mut running = Running::new(config.clone());
        let writer = NeighbourWriter::with_limits(NeighbourLimits {
            ports: 16,
            tenants: 64,
            per_tenant: 16,
        });
        let cfg = ResolverConfig {
            reachable_ms: 300_000,
            retry_ms: 1000,
            retries: 3,
            max_pending: 8,
            max_held: 64,
            held_per_tenant: 8,
            icmp_per_sec: 10,
            icmp_burst: 10,
        };
        let mut resolver: Resolver<VecFrame> = Resolver::new(writer, cfg);
        let slots: Vec<TenantId> = running.slots().into_iter().map(TenantId).collect();
        let rules = |slot: u32| running.rule_slots(slot);
        let mut tables = runtime
            .build(&config, &slots, 1, &rules, resolver.writer())
            .expect("tables");
        for i in 0..60u32 {
            let host = format!("172.168.0.{}", 100 + i);
            // A /32 or a /28 of its own: both kinds of ingress entry.
            let public = if i % 2 == 0 {
                format!("5.5.{i}.1/32")
            } else {
                format!("5.5.{i}.16/28")
            };
            let add: Op = serde_json::from_value(json!({"op": "tenant.add", "args": {"tenant": {
                "name": format!("x{i}"),
                "key": 9000 + i,
                "hosts": [host],
                "prefixes": ["10.9.0.0/24"],
                "public_prefixes": [public],
                "routes": [
                    { "prefix": "10.9.0.0/24", "to": host },
                    { "prefix": public, "to": host },
                ],
                "neighbours": [{ "ip": "10.9.0.5", "mac": "02:00:00:00:09:05" }],
            }}}))
            .unwrap();
            let del: Op = serde_json::from_value(
                json!({"op": "tenant.del", "args": {"name": format!("x{i}")}}),
            )
            .unwrap();
            for op in [add, del] {
                let mut built = None;
                let generation = tables.generation + 1;
                running
                    .apply_then(&op, |run, applied| {
                        let owned: Vec<(u32, ctl::config::Tenant)> = applied
                            .changes
                            .iter()
                            .filter_map(|c| match *c {
                                Change::Tenant(s) => Some((s, run.tenant(s)?)),
                                _ => None,
                            })
                            .collect();
                        let mut pieces: Vec<Piece> = owned
                            .iter()
                            .map(|(s, t)| Piece::Tenant(TenantId(*s), t))
                            .collect();
                        pieces.extend(applied.changes.iter().filter_map(|c| match *c {
                            Change::TenantRemoved(s) => Some(Piece::TenantRemoved(TenantId(s))),
                            _ => None,
                        }));
                        let rules = |slot: u32| run.rule_slots(slot);
                        let next = runtime
                            .next(&tables, &pieces, generation, &rules, resolver.writer())
                            .map_err(|e| {
                                ctl::api::ApiError::new(ctl::api::ErrorCode::Invalid, e.to_string())
                            })?;
                        built = Some(next);
                        Ok(())
                    })
                    .unwrap_or_else(|e| panic!("tenant x{i}: {e}"));
                tables = built.expect("a snapshot");
                // The tenant's public address leads into it while it
                // lives, and nowhere after; t1's EIP is untouched.
                let public = u32::from(Ipv4Addr::new(
                    5,
                    5,
                    i as u8,
                    if i % 2 == 0 { 1 } else { 17 },
                ));
                let live = tables.tenants.by_key(9000 + i).map(|t| t.id.0);
                assert_eq!(tables.ingress.lookup(public), live, "x{i}");
                let (keys, gone) = runtime.take_released();
                resolver.release(&keys, &gone);
                for t in gone {
                    running.release(t.0);
                }
            }
        }
        // The reference tenants' next hops and statics are still there.
        let t1 = tables.tenants.by_key(1000).expect("t1");
        assert!(matches!(
            tables.neighbours.get_ref(t1.tunnels[0].neigh),
            dataplane::neighbour::Lookup::Mac(_)
        ));
    }
}
