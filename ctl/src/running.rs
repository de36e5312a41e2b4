//! The control plane's model of what tgw runs, changed by the control
//! API's requests ([`crate::api::Op`]).
//!
//! [`Running`] starts from a validated file and keeps its own tables, keyed
//! by what requests name (tenant names, public addresses, prefixes, rule
//! handles), so that one change costs what its object costs, whatever the
//! size of the rest: no copy or re-validation of the whole configuration.
//! Each object of a request is checked by the file's own validation code
//! (`config::object`), and the checks between objects (unique names and
//! keys, public prefixes of two tenants, addresses bound twice) run against
//! the indices here.
//!
//! Every change is all-or-nothing: a request (or a batch of them) is
//! applied step by step with an undo log, and any error takes every step
//! back. Adding what exists with the same value changes nothing and
//! succeeds; with another value it is [`ErrorCode::Exists`].
//!
//! Tenants have slots (`u32`, below `[dataplane] tenant_slots`) that never
//! move while they live; a removed tenant's slot is given to no one until
//! [`Running::release`] says the dataplane has forgotten it. Rules have
//! handles (`u64`, never reused, like nftables') and small slots (below
//! `[dataplane] rule_slots`, reused) for per-rule counters.

mod diff;
mod json;
mod nat;
mod neighbours;
mod routes;
mod rules;
mod state;
mod tenants;

use std::fmt;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::api::{ApiError, ErrorCode, Op};
use crate::config::object::Invalid;
use crate::config::{Config, ConfigErrors, CpuSet, Role};

use self::state::{State, Tx};

/// What the dataplane must rebuild after a change. Coarse on purpose: one
/// tenant's tables, one elastic IP, one pool, the global tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Tenant `slot` added or changed: its hosts, prefixes, public
    /// prefixes, routes, rules, neighbours or GRE options.
    Tenant(u32),
    TenantRemoved(u32),
    /// An elastic IP bound, or bound anew.
    Eip(Ipv4Addr),
    EipRemoved(Ipv4Addr),
    /// The pool of tenant `slot` set or changed.
    Snat(u32),
    SnatRemoved(u32),
    /// A global `[[route]]` added, removed or replaced.
    GlobalRoutes,
    /// A static `[[neighbour]]` on a port added or removed.
    Neighbours,
}

/// A rule that a request added: its tenant's slot, its handle (what
/// `rule.add` answers and `rule.del` takes) and its counter slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleAdded {
    pub tenant: u32,
    pub handle: u64,
    pub slot: u32,
}

/// What a request changed. Empty when it asked for what was already so.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// In the order they happened, each once.
    pub changes: Vec<Change>,
    /// The rules added, in the order added.
    pub rules: Vec<RuleAdded>,
}

impl Applied {
    /// The result of a change request as the control API answers it.
    pub fn to_json(&self) -> Value {
        let handles: Vec<u64> = self.rules.iter().map(|r| r.handle).collect();
        match handles.as_slice() {
            [] => serde_json::json!({ "changed": !self.changes.is_empty() }),
            [one] => serde_json::json!({ "changed": true, "handle": one }),
            _ => serde_json::json!({ "changed": true, "handles": handles }),
        }
    }
}

/// The difference between the running state and a whole file: one line
/// per change for the operator, and the batch that makes it so.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `+ eip 3.3.3.3`, `- tenant "t2"`, `~ route 10.0.0.0/8 of tenant "t1"`.
    pub lines: Vec<String>,
    /// The ops, in an order that each can apply after the previous.
    pub ops: Vec<Op>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The plan as one all-or-nothing request.
    pub fn op(&self) -> Op {
        Op::Batch {
            ops: self.ops.clone(),
        }
    }
}

/// Why a file cannot become the running state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The file is not valid: every problem, `FILE:LINE: message`.
    Config(ConfigErrors),
    /// It changes what tgw sets up only when it starts: one line per key.
    Restart(Vec<String>),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Config(e) => write!(f, "{e}"),
            PlanError::Restart(lines) => f.write_str(&lines.join("\n")),
        }
    }
}

impl std::error::Error for PlanError {}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> ApiError {
        ApiError::new(ErrorCode::Invalid, e.to_string())
    }
}

/// What tgw runs: the parts a restart sets (ports, workers, EAL, mempool,
/// table capacities) and the tables requests change.
pub struct Running {
    /// The file's config without tenants, routes, neighbours, elastic IPs
    /// and pools: what only a restart changes.
    fixed: Config,
    state: State,
    /// The next rule handle: never reused, not even after a refused
    /// request (like nftables' handles).
    next_handle: u64,
}

impl Running {
    /// From a validated config: tenants get slots 0..n in file order, rules
    /// handles from 1 in file order.
    pub fn new(config: Config) -> Running {
        tenants::load(config)
    }

    /// The whole state as a config: tenants in slot order, their routes
    /// and neighbours sorted, rules in order; global routes, neighbours,
    /// elastic IPs and pools sorted. O(everything): it is a show.
    pub fn config(&self) -> Config {
        tenants::config(self)
    }

    /// Applies a changing op (tenant, route, eip, snat, rule and neigh
    /// add/del, batch) all or nothing.
    pub fn apply(&mut self, op: &Op) -> Result<Applied, ApiError> {
        self.apply_then(op, |_, _| Ok(()))
    }

    /// [`Running::apply`], then `commit` with the new state and what
    /// changed (the daemon builds the dataplane's snapshot there); when
    /// `commit` refuses (a dataplane table is full), the change is taken
    /// back and its error returned, so that the running state never holds
    /// what the dataplane does not.
    pub fn apply_then(
        &mut self,
        op: &Op,
        commit: impl FnOnce(&Running, &Applied) -> Result<(), ApiError>,
    ) -> Result<Applied, ApiError> {
        let mut tx = Tx::new(&mut self.state);
        let cx = Cx {
            fixed: &self.fixed,
            next_handle: &mut self.next_handle,
        };
        if let Err(e) = apply(&mut tx, cx, op) {
            tx.rollback();
            return Err(e);
        }
        let (applied, undo) = tx.finish();
        match commit(self, &applied) {
            Ok(()) => Ok(applied),
            Err(e) => {
                state::undo_all(&mut self.state, undo);
                Err(e)
            }
        }
    }

    /// The answer to a show op: tenant, route, eip, snat, rule and neigh
    /// show (static neighbours only; the learned ones are the dataplane's).
    pub fn show(&self, op: &Op) -> Result<Value, ApiError> {
        json::show(self, op)
    }

    /// `config.apply`: the difference between the running state and the
    /// file `text` (`file` names it in errors), refused when the file is
    /// invalid or changes what only a restart changes.
    pub fn plan(&self, text: &str, file: &str, cpus: &CpuSet) -> Result<Plan, PlanError> {
        let new = crate::config::parse(text, file, cpus).map_err(PlanError::Config)?;
        diff::plan(self, &new, text, file)
    }

    /// The slot of tenant `name`.
    pub fn slot(&self, name: &str) -> Option<u32> {
        self.state.slot(name)
    }

    /// The slots of the tenants in the order [`Running::config`] lists
    /// them (slot order): `config().tenants[i]` is in slot `slots()[i]`.
    pub fn slots(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.state.tenants.keys().copied().collect();
        all.sort_unstable();
        all
    }

    /// The tenant in `slot`, as the file models it (for a
    /// [`Change::Tenant`]): O(that tenant).
    pub fn tenant(&self, slot: u32) -> Option<crate::config::Tenant> {
        self.state.tenants.get(&slot).map(|t| t.tenant())
    }

    /// The elastic IP `public`: its tenant's slot and private address (for
    /// a [`Change::Eip`]).
    pub fn eip(&self, public: Ipv4Addr) -> Option<(u32, Ipv4Addr)> {
        self.state.eips.get(&public).copied()
    }

    /// The pool of tenant `slot` (for a [`Change::Snat`]); its `tenant`
    /// field holds the slot.
    pub fn pool(&self, slot: u32) -> Option<&crate::config::Snat> {
        self.state.pools.get(&slot)
    }

    /// The name of the tenant in `slot`.
    pub fn tenant_name(&self, slot: u32) -> Option<&str> {
        self.state.tenants.get(&slot).map(|t| t.base.name.as_str())
    }

    /// The counter slots of tenant `slot`'s rules, in rule order: small
    /// numbers over all tenants, below `[dataplane] rule_slots`, kept while
    /// a rule lives and given to the next rule once it is removed.
    pub fn rule_slots(&self, slot: u32) -> Vec<u32> {
        self.state
            .tenants
            .get(&slot)
            .map(|t| t.rules.iter().map(|r| r.slot).collect())
            .unwrap_or_default()
    }

    /// The handles of tenant `slot`'s rules, in rule order.
    pub fn rule_handles(&self, slot: u32) -> Vec<u64> {
        self.state
            .tenants
            .get(&slot)
            .map(|t| t.rules.iter().map(|r| r.handle).collect())
            .unwrap_or_default()
    }

    /// Frees the slot of a removed tenant for reuse: call it once every
    /// worker has swept that tenant's flows. Until then no new tenant gets
    /// it. A slot that is not a removed tenant's is left alone.
    pub fn release(&mut self, slot: u32) {
        if self.state.removed_slots.remove(&slot).is_some() {
            self.state.free_slots.insert(slot, ());
        }
    }
}

/// What the ops need besides the tables.
struct Cx<'a> {
    fixed: &'a Config,
    next_handle: &'a mut u64,
}

impl Cx<'_> {
    fn reborrow(&mut self) -> Cx<'_> {
        Cx {
            fixed: self.fixed,
            next_handle: self.next_handle,
        }
    }

    fn has_public(&self) -> bool {
        self.fixed.ports.iter().any(|p| p.role == Role::Public)
    }
}

fn apply(tx: &mut Tx, mut cx: Cx, op: &Op) -> Result<(), ApiError> {
    match op {
        Op::TenantAdd { tenant } => tenants::add(tx, cx, tenant),
        Op::TenantDel { name } => tenants::del(tx, name),
        Op::RouteAdd {
            tenant,
            route,
            replace,
        } => routes::add(tx, cx, tenant.as_deref(), route, *replace),
        Op::RouteDel {
            tenant,
            prefix,
            port,
        } => routes::del(tx, cx, tenant.as_deref(), prefix, port.as_deref()),
        Op::EipAdd { eip } => nat::eip_add(tx, cx, eip),
        Op::EipDel { public } => nat::eip_del(tx, public),
        Op::SnatAdd { snat } => nat::snat_add(tx, cx, snat),
        Op::SnatDel { tenant } => nat::snat_del(tx, tenant),
        Op::RuleAdd {
            tenant,
            rule,
            position,
        } => rules::add(tx, cx, tenant, rule, *position),
        Op::RuleDel { tenant, handle } => rules::del(tx, tenant, *handle),
        Op::NeighAdd { tenant, neighbour } => neighbours::add(tx, cx, tenant.as_deref(), neighbour),
        Op::NeighDel { tenant, port, ip } => {
            neighbours::del(tx, cx, tenant.as_deref(), port.as_deref(), ip)
        }
        Op::Batch { ops } => {
            for (i, op) in ops.iter().enumerate() {
                apply(tx, cx.reborrow(), op).map_err(|mut e| {
                    e.message = format!("batch op {i} ({}): {}", op_name(op), e.message);
                    e
                })?;
            }
            Ok(())
        }
        _ => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{} changes nothing; send it to show", op_name(op)),
        )),
    }
}

/// The op's name as the protocol spells it (`eip.add`).
pub(crate) fn op_name(op: &Op) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "op".to_owned())
}

/// A refusal by the config file's checks.
fn invalid(e: Invalid) -> ApiError {
    ApiError::new(ErrorCode::Invalid, e.message).field(e.field)
}

fn not_found(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::NotFound, message).field(field)
}

fn exists(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::Exists, message).field(field)
}

/// The tenant a request names, or `NotFound` naming `field`.
fn tenant_slot(s: &State, name: &str, field: &str) -> Result<u32, ApiError> {
    s.slot(name).ok_or_else(|| {
        not_found(
            field,
            format!("no tenant is named {name:?}; use one of the tenants' names (tenant.show)"),
        )
    })
}

/// An address a request names outside an object (`eip.del`'s `public`).
fn parse_ip(s: &str, field: &str) -> Result<Ipv4Addr, ApiError> {
    s.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::Invalid,
            format!("{s:?} is not an IPv4 address; write it as 203.0.113.7"),
        )
        .field(field)
    })
}
