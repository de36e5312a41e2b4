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
    ingress: BTreeMap<u32, Vec<(Ipv4Addr, u8, u32)>>,
}

impl Runtime {
    pub fn new(config: &Config, ports: Vec<(u16, MacAddr)>) -> Runtime {
        Runtime {
            ports,
            epoch: 1,
            tenant_slots: config.dataplane.tenant_slots,
            ingress: BTreeMap::new(),
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
        for (t, &id) in config.tenants.iter().zip(slots) {
            self.ingress.insert(id.0, ingress_of(t));
        }
        Ok(tables)
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
        let mut ingress = false;
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
                        self.ingress.insert(id.0, prefixes);
                        ingress = true;
                    }
                }
                Piece::TenantRemoved(id) => {
                    next.remove_tenant(id);
                    ingress |= self.ingress.remove(&id.0).is_some();
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
        if ingress {
            let all: Vec<_> = self.ingress.values().flatten().copied().collect();
            next.set_ingress(&all)?;
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

/// A tenant's public prefixes as the ingress table takes them.
fn ingress_of(t: &Tenant) -> Vec<(Ipv4Addr, u8, u32)> {
    t.public_prefixes
        .iter()
        .map(|c| (c.addr, c.len, t.key))
        .collect()
}
