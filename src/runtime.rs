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
//! Here too live the handles that outlast a change: tenants keep their
//! slots (given by the running state), rules their counter slots, and a
//! removed tenant's slot waits until every worker has swept its flows.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ctl::config::{Config, Snat, Tenant};
use dataplane::firewall::{RuleId, RuleSpec};
use dataplane::neighbour::{NeighKey, NeighbourWriter};
use dataplane::tables::{BuildError, Spec, Tables, TenantSpec};
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
    /// Every rule counter slot (`[dataplane] rule_slots`) is taken.
    RuleSlots(u32),
    /// A tenant's slot is past `[dataplane] tenant_slots`.
    TenantSlot(TenantId),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Build(e) => write!(f, "{e}"),
            ChangeError::RuleSlots(n) => write!(
                f,
                "all {n} firewall rule slots are taken; raise [dataplane] rule_slots (restart)"
            ),
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
    rules: RuleSlots,
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
            rules: RuleSlots::new(config.dataplane.rule_slots),
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
        let ids = self.rules.assign_all(&tenants)?;
        let mut give = |t: TenantId, i: usize, _: &RuleSpec| ids[&t.0][i];
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
                    let ids = self.rules.assign(id, &spec.firewall.rules)?;
                    self.epoch += 1;
                    let mut give = |_: TenantId, i: usize, _: &RuleSpec| ids[i];
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
                    self.rules.release(id);
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

    /// Rule counter slots in use, and all there are.
    pub fn rule_slots(&self) -> (usize, u32) {
        (self.rules.in_use(), self.rules.cap)
    }
}

/// A tenant's public prefixes as the ingress table takes them.
fn ingress_of(t: &Tenant) -> Vec<(Ipv4Addr, u8, u32)> {
    t.public_prefixes
        .iter()
        .map(|c| (c.addr, c.len, t.key))
        .collect()
}

/// Firewall rules' counter slots: a rule keeps its slot while it lives
/// in its tenant, whatever else changes, so its count goes on; a slot
/// freed by a removed rule is given to the next new one.
struct RuleSlots {
    cap: u32,
    next: u32,
    free: Vec<u32>,
    /// Each tenant's rules, in order, with their slots.
    tenants: HashMap<u32, Vec<(RuleSpec, RuleId)>>,
}

impl RuleSlots {
    fn new(cap: u32) -> RuleSlots {
        RuleSlots {
            cap,
            next: 0,
            free: Vec::new(),
            tenants: HashMap::new(),
        }
    }

    fn in_use(&self) -> usize {
        self.tenants.values().map(Vec::len).sum()
    }

    /// Slots for `tenant`'s rules as they now are: a rule it had keeps its
    /// slot (the first of equal rules the first slot), a removed one's
    /// slot is freed, and a new one gets a free slot. Refused, with
    /// nothing changed, when the slots run out.
    fn assign(&mut self, tenant: TenantId, rules: &[RuleSpec]) -> Result<Vec<RuleId>, ChangeError> {
        let mut old = self.tenants.get(&tenant.0).cloned().unwrap_or_default();
        let kept: Vec<Option<RuleId>> = rules
            .iter()
            .map(|rule| {
                let i = old.iter().position(|(r, _)| r == rule)?;
                Some(old.swap_remove(i).1)
            })
            .collect();
        let needed = kept.iter().filter(|k| k.is_none()).count();
        let available = self.free.len() + old.len() + (self.cap - self.next) as usize;
        if needed > available {
            return Err(ChangeError::RuleSlots(self.cap));
        }
        self.free.extend(old.into_iter().map(|(_, id)| id.0));
        let ids: Vec<RuleId> = kept
            .into_iter()
            .map(|k| k.unwrap_or_else(|| RuleId(self.take())))
            .collect();
        self.tenants.insert(
            tenant.0,
            rules.iter().copied().zip(ids.iter().copied()).collect(),
        );
        Ok(ids)
    }

    /// A free slot; the caller checked there is one.
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// [`RuleSlots::assign`] for every tenant of a whole build.
    fn assign_all(
        &mut self,
        tenants: &[(TenantId, &TenantSpec, u32)],
    ) -> Result<HashMap<u32, Vec<RuleId>>, ChangeError> {
        let mut all = HashMap::with_capacity(tenants.len());
        for &(id, spec, _) in tenants {
            all.insert(id.0, self.assign(id, &spec.firewall.rules)?);
        }
        Ok(all)
    }

    fn release(&mut self, tenant: TenantId) {
        if let Some(rules) = self.tenants.remove(&tenant.0) {
            self.free.extend(rules.into_iter().map(|(_, id)| id.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::firewall::{Action, Direction, ProtoMatch};

    fn rule(port: u16) -> RuleSpec {
        RuleSpec::new(
            Direction::In,
            Action::Allow,
            ProtoMatch::Tcp {
                sport: dataplane::firewall::PortRange::ANY,
                dport: dataplane::firewall::PortRange::one(port),
            },
        )
    }

    #[test]
    fn a_rule_keeps_its_counter_slot_while_others_come_and_go() {
        let mut s = RuleSlots::new(8);
        let (a, b) = (TenantId(0), TenantId(1));
        let first = s.assign(a, &[rule(22), rule(80)]).unwrap();
        let other = s.assign(b, &[rule(443)]).unwrap();
        assert_eq!(first, [RuleId(0), RuleId(1)]);
        assert_eq!(other, [RuleId(2)]);
        // 22 removed, 25 added in front: 80 keeps its slot, 25 takes the
        // one 22 left.
        let second = s.assign(a, &[rule(25), rule(80)]).unwrap();
        assert_eq!(second, [RuleId(0), RuleId(1)], "80 keeps its counter");
        assert_eq!(
            s.assign(b, &[rule(443), rule(8080)]).unwrap(),
            [RuleId(2), RuleId(3)]
        );
        s.release(a);
        assert_eq!(s.in_use(), 2);
    }

    #[test]
    fn running_out_of_slots_refuses_and_keeps_the_tenants_slots() {
        let mut s = RuleSlots::new(2);
        let a = TenantId(0);
        assert_eq!(
            s.assign(a, &[rule(1), rule(2)]).unwrap(),
            [RuleId(0), RuleId(1)]
        );
        assert!(matches!(
            s.assign(a, &[rule(1), rule(2), rule(3)]),
            Err(ChangeError::RuleSlots(2))
        ));
        assert_eq!(s.in_use(), 2);
        assert_eq!(s.assign(a, &[rule(2)]).unwrap(), [RuleId(1)]);
        assert_eq!(s.assign(TenantId(1), &[rule(9)]).unwrap(), [RuleId(0)]);
    }
}
