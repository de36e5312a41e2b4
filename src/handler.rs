//! The control API's requests, answered on the control plane (docs/api.md).
//!
//! The control loop takes each request from the socket ([`crate::control_socket`])
//! and hands it here, one at a time: a change is checked and made in the
//! running state ([`ctl::running::Running`]), turned into the next
//! snapshot ([`crate::runtime`]) and published, all or nothing — a
//! snapshot that cannot be built takes the running state back as it was.
//! Shows read the running state, the workers' counters, the resolver and,
//! for flows, the workers themselves through their mailboxes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use ctl::api::{ApiError, ErrorCode, Op, Response};
use ctl::cpuset::CpuSet;
use ctl::running::{Applied, Change, Running};
use dataplane::mailbox::Mailbox;
use dataplane::neighbour::{Lookup, NeighbourWriter};
use dataplane::pipeline::admin::{self, FlowJob, FlowRow, ShareJob};
use dataplane::resolver::Resolver;
use dataplane::snapshot::Publisher;
use dataplane::tables::Tables;
use dataplane::tenant::TenantId;
use dataplane::{Frame, WorkerCounters};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::control::Control;
use crate::flows;
use crate::frame::MbufFrame;
use crate::runtime::{ChangeError, Piece, Runtime};
use rte::Mbuf;

/// What the handler reads and changes besides its own state.
pub struct Cx<'a, 'p> {
    pub publisher: &'a Publisher<Tables>,
    pub control: &'a mut Control<'p>,
    pub counters: &'a [Arc<WorkerCounters>],
    pub mailboxes: &'a [Arc<Mailbox<FlowJob>>],
    /// Where a pool changed at runtime reaches each worker's share.
    pub share_mailboxes: &'a [Arc<Mailbox<ShareJob>>],
    /// The counters as `stats` shows them.
    pub stats: &'a dyn Fn(&mut Control<'p>) -> Value,
    /// Each port's DPDK id and name, for neighbours the resolver learned.
    pub port_names: &'a [(u16, String)],
    /// Flow offload: the probe's verdicts, the manager, its rules.
    pub offload: &'a mut crate::offload::plane::OffloadPlane,
}

impl Cx<'_, '_> {
    /// What a change takes of these.
    fn change(&mut self) -> ChangeCx<'_, MbufFrame<Mbuf>> {
        ChangeCx {
            publisher: self.publisher,
            resolver: self.control.resolver(),
            counters: self.counters,
            share_mailboxes: self.share_mailboxes,
            offload: Some(&mut *self.offload),
        }
    }
}

/// What a change reads and changes besides the handler's own state: the
/// snapshot it starts from and publishes, the resolver (tunnels pin their
/// next hops in its neighbour table, and it lets go of those no snapshot
/// holds any more), the workers' sweeps (a removed tenant's slot waits for
/// them), the workers' mailboxes for pool shares. Generic over the
/// resolver's frames, so that a benchmark or a test makes these without
/// DPDK (`tgw-perf changes`).
pub struct ChangeCx<'a, F> {
    pub publisher: &'a Publisher<Tables>,
    pub resolver: &'a mut Resolver<F>,
    pub counters: &'a [Arc<WorkerCounters>],
    pub share_mailboxes: &'a [Arc<Mailbox<ShareJob>>],
    /// The offload plane, told of each snapshot just before it is
    /// published: the NIC's deny rules of a changed tenant go first
    /// (docs/offload.md, "Deny rules on the NIC"). `None` without one.
    pub offload: Option<&'a mut crate::offload::plane::OffloadPlane>,
}

/// A removed tenant's slot, waiting until every worker has swept its
/// flows: each worker's sweep passes when it was removed.
struct Quarantined {
    slot: u32,
    passes: Vec<u64>,
}

pub struct Handler {
    running: Running,
    runtime: Runtime,
    cpus: CpuSet,
    /// The file `SIGHUP` reads again.
    config_path: PathBuf,
    quarantine: Vec<Quarantined>,
    /// Tells each pool share cut at runtime from the one it replaces.
    share_serial: u32,
    /// What each rule counter slot had counted when its rule was added:
    /// a slot freed by a removed rule goes to the next new one, whose
    /// count starts there.
    rule_base: HashMap<u32, u64>,
}

impl Handler {
    pub fn new(running: Running, runtime: Runtime, cpus: CpuSet, config_path: PathBuf) -> Handler {
        Handler {
            running,
            runtime,
            cpus,
            config_path,
            quarantine: Vec::new(),
            share_serial: 0,
            rule_base: HashMap::new(),
        }
    }

    /// The answer to one request.
    pub fn handle(&mut self, op: &Op, cx: &mut Cx<'_, '_>) -> Response {
        match self.answer(op, cx) {
            Ok(result) => Response::ok(None, result),
            Err(e) => Response::err(None, e),
        }
    }

    fn answer(&mut self, op: &Op, cx: &mut Cx<'_, '_>) -> Result<Value, ApiError> {
        match op {
            Op::TenantShow { .. }
            | Op::RouteShow { .. }
            | Op::EipShow { .. }
            | Op::SnatShow { .. } => self.running.show(op),
            Op::NeighShow { tenant } => {
                let mut shown = self.running.show(op)?;
                let slot = tenant.as_deref().and_then(|n| self.running.slot(n));
                with_learned(&mut shown, slot, cx);
                Ok(shown)
            }
            Op::RuleShow { .. } => {
                let mut shown = self.running.show(op)?;
                let nic = |slot: u32| cx.offload.deny_rule_drops(slot);
                with_rule_counts(&mut shown, cx.counters, &nic, &self.rule_base);
                Ok(shown)
            }
            Op::FlowShow {
                filter,
                limit,
                cursor,
            } => {
                let filter = flows::filter(filter, |n| self.running.slot(n))?;
                let from = flows::cursor(cursor.as_deref())?;
                let page = admin::show_flows(
                    cx.mailboxes,
                    filter,
                    flows::limit(*limit),
                    from,
                    admin::ANSWER_TIMEOUT,
                )
                .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
                let rows: Vec<Value> = page.rows.iter().map(|r| self.flow_row(r)).collect();
                let mut shown = json!({ "flows": rows });
                // Absent on the last page (docs/api.md), not null.
                if let Some(next) = page.next {
                    shown["cursor"] = next.to_string().into();
                }
                Ok(shown)
            }
            Op::FlowFlush { filter } => {
                let filter = flows::filter(filter, |n| self.running.slot(n))?;
                let flushed = admin::flush_flows(cx.mailboxes, filter, admin::FLUSH_TIMEOUT);
                Ok(json!({
                    "flushed": flushed.removed,
                    "not_answering": flushed.not_answering,
                }))
            }
            Op::OffloadCaps {} => Ok(cx.offload.caps_json()),
            Op::OffloadShow { limit, testpmd } => {
                let limit = limit
                    .unwrap_or(ctl::api::OFFLOAD_SHOW_DEFAULT)
                    .min(ctl::api::OFFLOAD_SHOW_MAX);
                let name = |slot: u32| {
                    self.running
                        .tenant_name(slot)
                        .map_or_else(|| slot.to_string(), str::to_owned)
                };
                Ok(cx.offload.show_json(limit, *testpmd, &name))
            }
            Op::OffloadStats {} => Ok(cx.offload.stats_json(cx.counters)),
            Op::OffloadFlush {} => Ok(json!({ "pulled_back": cx.offload.flush() })),
            Op::Stats {} => Ok((cx.stats)(cx.control)),
            Op::ConfigShow {} => Ok(json!({ "text": self.running.config().to_toml() })),
            Op::ConfigApply {
                text,
                file,
                dry_run,
            } => self.config_apply(text, file, *dry_run, cx),
            change => {
                let applied = self.change(change, cx.change())?;
                Ok(applied.to_json())
            }
        }
    }

    /// `config.apply` and `SIGHUP`: the difference from the running state
    /// to the file, applied as one change unless `dry_run`.
    fn config_apply(
        &mut self,
        text: &str,
        file: &str,
        dry_run: bool,
        cx: &mut Cx<'_, '_>,
    ) -> Result<Value, ApiError> {
        let plan = self
            .running
            .plan(text, file, &self.cpus)
            .map_err(ApiError::from)?;
        if !dry_run && !plan.is_empty() {
            self.change(&plan.op(), cx.change())?;
        }
        Ok(json!({
            "changes": plan.lines,
            "applied": !dry_run,
        }))
    }

    /// Re-reads the config file (`SIGHUP`), as `config apply` of it.
    /// Whether the file was applied (for systemd's STATUS= line).
    pub fn reload(&mut self, cx: &mut Cx<'_, '_>) -> bool {
        let path = self.config_path.display().to_string();
        let text = match std::fs::read_to_string(&self.config_path) {
            Ok(text) => text,
            Err(e) => {
                warn!("SIGHUP: cannot read {path}: {e}; the running state stays as it was");
                return false;
            }
        };
        match self.config_apply(&text, &path, false, cx) {
            Ok(result) => {
                info!(%result, "SIGHUP: {path} applied");
                true
            }
            // One line per problem (each names its FILE:LINE), for
            // journald and grep.
            Err(e) => {
                for problem in e.to_string().lines().filter(|l| !l.trim().is_empty()) {
                    warn!("SIGHUP: {path} refused, the running state stays as it was: {problem}");
                }
                false
            }
        }
    }

    /// A change: made in the running state, then in a new snapshot, which
    /// is published; if the snapshot cannot be built the running state
    /// is taken back. `op` is a changing op (not a show): what
    /// [`Handler::handle`] does with one, without the ports.
    pub fn change<F: Frame>(
        &mut self,
        op: &Op,
        mut cx: ChangeCx<'_, F>,
    ) -> Result<Applied, ApiError> {
        let current = cx.publisher.current();
        let generation = current.generation + 1;
        let runtime = &mut self.runtime;
        let writer = cx.resolver.writer();
        // The neighbour table is live, not in the snapshot: what the build
        // writes there is taken back if the change is refused.
        writer.begin();
        let mut built = None;
        let applied = self.running.apply_then(op, |view, applied| {
            let next = next_tables(runtime, view, applied, &current, generation, writer)
                .map_err(|e| ApiError::new(ErrorCode::Invalid, e.to_string()))?;
            built = Some(next);
            Ok(())
        });
        let writer = cx.resolver.writer();
        let applied = match applied {
            Ok(applied) => {
                writer.commit();
                applied
            }
            Err(e) => {
                writer.rollback();
                return Err(e);
            }
        };
        // The workers take their new shares of a changed pool before the
        // snapshot that changes it: a flow re-decided under the new
        // snapshot is then checked against the new share. Published
        // first, a flow of the old share re-decided before its worker
        // swapped was admitted for good, and kept a port the new share
        // could hand to another host.
        self.install_shares(&applied, built.as_ref().unwrap_or(&current), &cx);
        if let Some(next) = built {
            if let Some(offload) = cx.offload.as_deref_mut() {
                offload.before_publish(&next);
            }
            cx.publisher.publish(next);
        }
        let (keys, tenants) = self.runtime.take_released();
        if !keys.is_empty() || !tenants.is_empty() {
            cx.resolver.release(&keys, &tenants);
        }
        for rule in &applied.rules {
            let nic = cx
                .offload
                .as_deref()
                .map_or(0, |o| o.deny_rule_drops(rule.slot));
            let counted = rule_flows(cx.counters, rule.slot) + nic;
            self.rule_base.insert(rule.slot, counted);
        }
        for change in &applied.changes {
            if let Change::TenantRemoved(slot) = *change {
                self.quarantine.push(Quarantined {
                    slot,
                    passes: cx.counters.iter().map(|c| c.sweep_passes.get()).collect(),
                });
            }
        }
        Ok(applied)
    }

    /// Gives each worker its share of every pool `applied` set, changed
    /// or removed, cut anew from `tables` (the snapshot about to be
    /// published). A share hands out nothing of a pool the tables in use
    /// hold otherwise (`Snat::map` compares them): until the publish the
    /// pool's new flows are refused `no_nat_port`, for a mailbox round
    /// trip.
    fn install_shares<F>(&mut self, applied: &Applied, tables: &Tables, cx: &ChangeCx<'_, F>) {
        for change in &applied.changes {
            let (Change::Snat(slot) | Change::SnatRemoved(slot)) = *change else {
                continue;
            };
            self.share_serial += 1;
            let pool = tables.pools.get(slot);
            let late = admin::install_shares(
                cx.share_mailboxes,
                slot,
                pool,
                self.share_serial,
                admin::ANSWER_TIMEOUT,
            );
            if !late.is_empty() {
                warn!(slot, workers = ?late, "workers did not take their share of a changed pool");
            }
        }
    }

    /// Gives back the slots of removed tenants whose flows every worker
    /// has swept: two whole passes after the removal, the first of which
    /// may have begun before the worker took the snapshot without it.
    pub fn tick(&mut self, counters: &[Arc<WorkerCounters>]) {
        let running = &mut self.running;
        self.quarantine.retain(|q| {
            let swept = counters
                .iter()
                .zip(&q.passes)
                .all(|(c, &at)| c.sweep_passes.get() >= at + 2);
            if swept {
                // No worker writes the slot's counts any more: the next
                // tenant in it starts from zero.
                for c in counters {
                    if let Some(tc) = c.tenant(q.slot as usize) {
                        tc.reset();
                    }
                    c.rules.reset_defaults(TenantId(q.slot));
                }
                running.release(q.slot);
            }
            !swept
        });
    }

    /// The snapshot to start from: every table of the running state.
    pub fn initial(&mut self, writer: &mut NeighbourWriter) -> Result<Tables, ChangeError> {
        build_all(&mut self.runtime, &self.running, 1, writer)
    }

    fn flow_row(&self, r: &FlowRow) -> Value {
        let end = |e: admin::Endpoint| format!("{}:{}", Ipv4Addr::from(e.addr), e.port);
        // Only TCP has states: `-` for the others.
        let tcp = match r.protocol {
            6 => snake_case(&format!("{:?}", r.tcp)),
            _ => "-".into(),
        };
        json!({
            "worker": r.worker,
            "slot": r.slot,
            "tenant": self.running.tenant_name(r.tenant).unwrap_or("-"),
            "protocol": protocol_name(r.protocol),
            "inbound": r.inbound,
            "private": end(r.private),
            "public": end(r.public),
            "remote": end(r.remote),
            "pool": r.pool,
            "tcp": tcp,
            "answered": r.answered,
            "seconds_left": r.seconds_left,
        })
    }
}

/// `SynSent` as `syn_sent`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The next snapshot after `applied`: the pieces it names, or everything
/// when the global routes or the ports' neighbours changed.
fn next_tables(
    runtime: &mut Runtime,
    view: &Running,
    applied: &Applied,
    current: &Tables,
    generation: u64,
    writer: &mut NeighbourWriter,
) -> Result<Tables, ChangeError> {
    let global = applied
        .changes
        .iter()
        .any(|c| matches!(c, Change::GlobalRoutes | Change::Neighbours));
    if global {
        return build_all(runtime, view, generation, writer);
    }
    let tenants: Vec<(u32, ctl::config::Tenant)> = applied
        .changes
        .iter()
        .filter_map(|c| match *c {
            Change::Tenant(slot) => Some((slot, view.tenant(slot)?)),
            _ => None,
        })
        .collect();
    let mut pieces = Vec::with_capacity(applied.changes.len());
    for change in &applied.changes {
        let piece = match *change {
            Change::Tenant(slot) => match tenants.iter().find(|(s, _)| *s == slot) {
                Some((_, t)) => Piece::Tenant(TenantId(slot), t),
                None => continue,
            },
            Change::TenantRemoved(slot) => Piece::TenantRemoved(TenantId(slot)),
            Change::Eip(public) => match view.eip(public) {
                Some((slot, private)) => Piece::Eip {
                    public,
                    tenant: TenantId(slot),
                    private,
                },
                None => Piece::EipRemoved(public),
            },
            Change::EipRemoved(public) => Piece::EipRemoved(public),
            Change::Snat(slot) => match view.pool(slot) {
                Some(p) => Piece::Pool(TenantId(slot), p),
                None => Piece::PoolRemoved(TenantId(slot)),
            },
            Change::SnatRemoved(slot) => Piece::PoolRemoved(TenantId(slot)),
            Change::GlobalRoutes | Change::Neighbours => continue,
        };
        pieces.push(piece);
    }
    let rules = |slot: u32| view.rule_slots(slot);
    runtime.next(current, &pieces, generation, &rules, writer)
}

/// Every table anew, from the whole running state.
fn build_all(
    runtime: &mut Runtime,
    view: &Running,
    generation: u64,
    writer: &mut NeighbourWriter,
) -> Result<Tables, ChangeError> {
    let config = view.config();
    let slots: Vec<TenantId> = view.slots().into_iter().map(TenantId).collect();
    let rules = |slot: u32| view.rule_slots(slot);
    runtime.build(&config, &slots, generation, &rules, writer)
}

/// Adds to a `neigh.show` of static neighbours (marked so) the ones the
/// resolver learned or is resolving: on the ports, or inside tenant
/// `slot`'s tunnels when it is given.
fn with_learned(shown: &mut Value, slot: Option<u32>, cx: &mut Cx<'_, '_>) {
    let Some(list) = shown.as_array_mut() else {
        return;
    };
    for entry in list.iter_mut() {
        if let Some(m) = entry.as_object_mut() {
            m.insert("state".into(), "static".into());
        }
    }
    for (key, state, is_static) in cx.control.neighbours() {
        if is_static {
            continue;
        }
        let (mac, state) = match state {
            Lookup::Mac(m) => (rte::MacAddr(m).to_string(), "reachable"),
            Lookup::Unresolved => ("-".into(), "incomplete"),
            Lookup::Failed => ("-".into(), "failed"),
        };
        let ip = Ipv4Addr::from(key.ip()).to_string();
        let row = match (slot, key.as_port(), key.as_inner()) {
            (None, Some(port), _) => {
                let name = cx.port_names.iter().find(|(id, _)| *id == port);
                let port = name.map_or_else(|| port.to_string(), |(_, n)| n.clone());
                json!({ "port": port, "ip": ip, "mac": mac, "state": state })
            }
            (Some(slot), _, Some(t)) if t.0 == slot => {
                json!({ "ip": ip, "mac": mac, "state": state })
            }
            _ => continue,
        };
        list.push(row);
    }
}

/// Adds each rule's flows, summed over the workers, with the packets
/// the NIC's deny rules dropped for it (`nic`, by slot), to a
/// `rule.show`: what its counter slot counted since the rule was added
/// (`base`).
fn with_rule_counts(
    shown: &mut Value,
    counters: &[Arc<WorkerCounters>],
    nic: &dyn Fn(u32) -> u64,
    base: &HashMap<u32, u64>,
) {
    let Some(rules) = shown.as_array_mut() else {
        return;
    };
    for rule in rules {
        let Some(slot) = rule.get("slot").and_then(Value::as_u64) else {
            continue;
        };
        let slot = slot as u32;
        let since = base.get(&slot).copied().unwrap_or(0);
        let flows = (rule_flows(counters, slot) + nic(slot)).saturating_sub(since);
        if let Some(m) = rule.as_object_mut() {
            m.insert("flows".into(), flows.into());
        }
    }
}

/// Flows rule counter slot `slot` counted, over all workers.
fn rule_flows(counters: &[Arc<WorkerCounters>], slot: u32) -> u64 {
    let id = dataplane::firewall::RuleId(slot);
    counters.iter().map(|c| c.rules.rule(id)).sum()
}

fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::firewall::{Action, Decision, Direction, RuleId};

    #[test]
    fn a_released_slot_starts_its_next_tenant_from_zero_counts() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reference.toml");
        let cpus: CpuSet = [0, 1].into_iter().collect();
        let config = ctl::config::load(&path, &cpus).expect("reference.toml");
        let mut h = Handler::new(
            Running::new(config.clone()),
            Runtime::new(&config, Vec::new()),
            cpus,
            path,
        );
        let worker = Arc::new(WorkerCounters::new(4).with_rules(4));
        let counters = [Arc::clone(&worker)];
        let old = worker.tenant(1).unwrap();
        old.from_tunnel_packets.add(7);
        old.flows_opened[0].inc();
        old.flows_ended[0].inc();
        let deny = Decision {
            action: Action::Deny,
            rule: None,
        };
        worker.rules.count(TenantId(1), Direction::In, deny);
        h.quarantine.push(Quarantined {
            slot: 1,
            passes: vec![0],
        });
        // One pass is not enough: the first may have begun before the
        // worker took the snapshot without the tenant.
        worker.sweep_passes.set(1);
        h.tick(&counters);
        assert_eq!(worker.tenant(1).unwrap().from_tunnel_packets.get(), 7);
        worker.sweep_passes.set(2);
        h.tick(&counters);
        assert!(h.quarantine.is_empty());
        let t = worker.tenant(1).unwrap();
        assert_eq!(t.from_tunnel_packets.get() + t.flows_created(), 0);
        assert_eq!(worker.rules.default_policy(TenantId(1), Direction::In), 0);
    }

    /// A refused change leaves the live neighbour table as it was: a
    /// batch whose first op sets a static neighbour of t1 and whose second
    /// adds a tenant with more static neighbours than a tenant's share.
    /// Before, t1's new entry stayed, and so did the refused tenant's
    /// static MACs and full share, for the next tenant given its slot.
    #[test]
    fn a_refused_change_leaves_the_neighbour_table_as_it_was() {
        use dataplane::neighbour::NeighbourLimits;
        use dataplane::resolver::ResolverConfig;
        use dataplane::VecFrame;

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reference.toml");
        let cpus: CpuSet = [0, 1].into_iter().collect();
        let config = ctl::config::load(&path, &cpus).expect("reference.toml");
        // The reference's two ports, as the daemon numbers them.
        let ports = vec![
            (0, rte::MacAddr([2, 0, 0, 0, 0, 1])),
            (1, rte::MacAddr([2, 0, 0, 0, 1, 1])),
        ];
        let mut h = Handler::new(
            Running::new(config.clone()),
            Runtime::new(&config, ports),
            cpus,
            path,
        );
        let limits = NeighbourLimits {
            ports: 64,
            tenants: 64,
            per_tenant: 4,
        };
        let writer = NeighbourWriter::with_limits(limits);
        let mut resolver: Resolver<VecFrame> = Resolver::new(writer, ResolverConfig::default());
        let publisher = Publisher::new(h.initial(resolver.writer()).expect("tables"));
        let entries = |r: &mut Resolver<VecFrame>| {
            let mut e = r.writer().entries();
            e.sort_by_key(|x| x.0);
            e
        };
        let was = entries(&mut resolver);

        let neighbours: Vec<Value> = (0..5)
            .map(|i| json!({ "ip": format!("10.0.0.{}", 20 + i), "mac": "02:00:00:00:0c:01" }))
            .collect();
        let op: Op = serde_json::from_value(json!({"op": "batch", "args": {"ops": [
            {"op": "neigh.add", "args": {"tenant": "t1",
                "neighbour": {"ip": "10.0.0.9", "mac": "02:00:00:00:0b:01"}}},
            {"op": "tenant.add", "args": {"tenant": {
                "name": "red",
                "key": 3000,
                "hosts": ["172.168.0.13"],
                "prefixes": ["10.0.0.0/24"],
                "routes": [{ "prefix": "10.0.0.0/24", "to": "172.168.0.13" }],
                "neighbours": neighbours,
            }}},
        ]}}))
        .unwrap();
        let cx = ChangeCx {
            publisher: &publisher,
            resolver: &mut resolver,
            counters: &[],
            share_mailboxes: &[],
            offload: None,
        };
        let refused = h
            .change(&op, cx)
            .expect_err("five neighbours do not fit four");
        assert!(refused.to_string().contains("neighbour"), "{refused}");
        assert_eq!(entries(&mut resolver), was);
        assert_eq!(publisher.current().generation, 1, "nothing published");
    }

    #[test]
    fn a_rule_in_a_reused_counter_slot_counts_from_its_own_start() {
        let worker = Arc::new(WorkerCounters::new(1).with_rules(4));
        let hit = Decision {
            action: Action::Allow,
            rule: Some(RuleId(2)),
        };
        for _ in 0..5 {
            worker.rules.count(TenantId(0), Direction::In, hit);
        }
        let counters = [worker];
        // The rule that counted 5 is removed; a new one gets slot 2.
        let base = HashMap::from([(2, rule_flows(&counters, 2))]);
        counters[0].rules.count(TenantId(0), Direction::In, hit);
        let mut shown = json!([{ "slot": 2 }, { "slot": 1 }]);
        with_rule_counts(&mut shown, &counters, &|_| 0, &base);
        assert_eq!(shown[0]["flows"], 1, "the new rule's own flow only");
        assert_eq!(shown[1]["flows"], 0);
    }
}
