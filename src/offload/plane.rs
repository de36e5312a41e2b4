//! The offload plane on the control loop: the probe's verdicts, the
//! offload manager with its device, the workers' links, and the static
//! SNAT steering rules; what `tgwctl offload` and `/metrics` show.

use std::sync::Arc;
use std::time::Instant;

use ctl::config::{Config, OffloadMode, OuterDf, Role};
use dataplane::offload::{macs_of, Level, Limits, Link, NotOffloadable, Offloads, Refusal};
use dataplane::tables::Tables;
use dataplane::WorkerCounters;
use rte::flow::{FlowError, Rule};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::deny::{DenyLimits, DenyRules};
use super::device::NicDevice;
use super::probe::{self, level_name, PortCaps, ProbeTarget};
use super::report::OffloadReport;
use super::root::{self, Roots};
use super::statics::{Handle, StaticRules};
use super::steering::{self, SteeredPool};
use super::templates::{PortApi, TemplateQueues};

/// Requests the manager takes from the workers' queues per control-loop
/// tick (1 ms): 256k a second, far above what a NIC's synchronous flow
/// API takes, and a bound on the tick's length.
pub const REQUEST_BUDGET: usize = 256;

/// A port as the plane knows it.
#[derive(Clone, Debug)]
pub struct PlanePort {
    pub id: u16,
    pub name: String,
    pub role: Role,
    /// Whether the port hands marks to software
    /// (`rte::Port::negotiate_marks` before it was configured).
    pub marks: bool,
}

/// The static steering rules in force, and the tables generation they
/// were made for.
#[derive(Default)]
struct Steering {
    generation: Option<u64>,
    rules: Vec<(u16, Rule)>,
    handles: Vec<Handle>,
}

pub struct OffloadPlane {
    mode: OffloadMode,
    /// `[offload] outer_df`: the public root rules' DF match, as probed.
    outer_df: OuterDf,
    /// `[offload] max_flows`: each template table's size.
    max_flows: u32,
    caps: Vec<PortCaps>,
    ports: Vec<PlanePort>,
    /// The workers' links, when flows are offered at all.
    links: Vec<Arc<Link>>,
    manager: Option<(Offloads<NicDevice>, NicDevice)>,
    /// By worker: its RX queue on each public port, for steering.
    public_queues: Vec<(u16, Vec<Option<u16>>)>,
    workers: u16,
    steering: Steering,
    /// The full-offload root rules (group 0), and the ports they are for.
    roots: Roots,
    full_public: Vec<u16>,
    full_ports: Vec<u16>,
    /// By port (the plane's order): why its per-flow rules use the
    /// synchronous API, or `None` for the template one.
    sync_why: Vec<Option<String>>,
    /// The tenants' firewall denies on the full public ports that take
    /// them (`deny_public`).
    deny: DenyRules,
    deny_public: Vec<u16>,
    /// `[offload] max_deny_rules`, `tenant_share` and
    /// `query_interval_ms`, for the deny rules.
    deny_limits: DenyLimits,
    query_interval_ms: u64,
    /// The static rules' queues on the template-API ports, and the size
    /// of each of their tables (the larger bound of root and deny rules).
    statics: StaticRules,
    static_table_rules: u32,
    started: Instant,
}

impl OffloadPlane {
    /// Probes every port with `validate` (unless offload is off), logs
    /// each port's level, and makes the manager and the workers' links if
    /// any flow can be offered: in shadow mode always, in auto mode when
    /// some port is above level none.
    pub fn new(
        config: &Config,
        ports: Vec<PlanePort>,
        validate: &mut dyn FnMut(&Rule, u16) -> Result<(), FlowError>,
    ) -> OffloadPlane {
        let o = &config.offload;
        let workers = config.workers.len() as u16;
        // By config port index, by worker: the worker's first RX queue.
        let queue_of = |port: usize, worker: usize| {
            config
                .workers
                .get(worker)
                .and_then(|w| w.rx.iter().find(|q| q.port == port).map(|q| q.queue))
        };
        let caps: Vec<PortCaps> = if o.mode == OffloadMode::Off {
            Vec::new()
        } else {
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let other = ports
                        .iter()
                        .find(|q| q.role != p.role)
                        .map_or(p.id, |q| q.id);
                    let target = ProbeTarget {
                        port: p.id,
                        role: p.role,
                        other,
                        queue: queue_of(i, 0).unwrap_or(0),
                        marks: p.marks,
                        outer_df: o.outer_df,
                    };
                    let caps = probe::probe(target, &p.name, validate);
                    info!("{}", caps.summary());
                    caps
                })
                .collect()
        };
        let max_id = ports
            .iter()
            .map(|p| usize::from(p.id) + 1)
            .max()
            .unwrap_or(0);
        let mut levels = vec![Level::None; max_id];
        let mut queues = vec![Vec::new(); max_id];
        for (i, p) in ports.iter().enumerate() {
            levels[usize::from(p.id)] = match o.mode {
                // The rules a capable NIC would take.
                OffloadMode::Shadow => Level::Full,
                OffloadMode::Auto => caps[i].level,
                OffloadMode::Off => Level::None,
            };
            queues[usize::from(p.id)] = (0..usize::from(workers)).map(|w| queue_of(i, w)).collect();
        }
        let public_queues = ports
            .iter()
            .filter(|p| p.role == Role::Public && levels[usize::from(p.id)] >= Level::Partial)
            .map(|p| (p.id, queues[usize::from(p.id)].clone()))
            .collect();
        let full_ports: Vec<u16> = ports
            .iter()
            .filter(|p| levels[usize::from(p.id)] == Level::Full)
            .map(|p| p.id)
            .collect();
        let full_public: Vec<u16> = ports
            .iter()
            .filter(|p| p.role == Role::Public && full_ports.contains(&p.id))
            .map(|p| p.id)
            .collect();
        // Deny rules where the port is full and its NIC took the shape
        // (in shadow mode, where every port is treated as full).
        let deny_public = ports
            .iter()
            .enumerate()
            .filter(|(_, p)| full_public.contains(&p.id))
            .filter(|(i, _)| {
                o.mode == OffloadMode::Shadow
                    || caps[*i]
                        .shapes
                        .iter()
                        .any(|(s, v)| *s == probe::Shape::DenyDrop && *v == probe::Verdict::Ok)
            })
            .map(|(_, p)| p.id)
            .collect();
        let offers = match o.mode {
            OffloadMode::Off => false,
            OffloadMode::Shadow => true,
            OffloadMode::Auto => levels.iter().any(|&l| l > Level::None),
        };
        let depth = o.queue_depth as usize;
        let (links, manager) = if offers {
            let links = Link::for_workers(workers, depth, depth);
            let limits = Limits {
                flows: o.max_flows as usize,
                per_tenant: o.per_tenant() as usize,
                tenants: config.dataplane.tenant_slots as usize,
                query_interval: u64::from(o.query_interval_ms),
            };
            let device = NicDevice::new(levels, queues, o.mode == OffloadMode::Shadow);
            (links.clone(), Some((Offloads::new(links, limits), device)))
        } else {
            (Vec::new(), None)
        };
        let why = match o.mode {
            OffloadMode::Off => "offload is off",
            OffloadMode::Shadow => "shadow mode installs no rule",
            OffloadMode::Auto => "the template API was not asked for",
        };
        let sync_why = ports.iter().map(|_| Some(why.to_owned())).collect();
        OffloadPlane {
            mode: o.mode,
            outer_df: o.outer_df,
            max_flows: o.max_flows,
            caps,
            ports,
            links,
            manager,
            public_queues,
            workers,
            steering: Steering::default(),
            roots: Roots::default(),
            full_public,
            full_ports,
            sync_why,
            deny: DenyRules::default(),
            deny_public,
            deny_limits: DenyLimits {
                max: o.max_deny_rules as usize,
                share: o.tenant_share,
            },
            query_interval_ms: u64::from(o.query_interval_ms),
            statics: StaticRules::default(),
            static_table_rules: (root::MAX_ROOT_RULES as u32).max(o.max_deny_rules),
            started: Instant::now(),
        }
    }

    /// The template/async API for the rules of the ports in `apis` that
    /// have it (`templates::configure`, before the ports started): in
    /// auto mode, the static rules through the port's static queue
    /// (`super::statics`), and, on a port above level none, a template
    /// table per per-flow shape of its level, each of `[offload]
    /// max_flows` rules. A port whose tables fail goes to level none
    /// rather than run half made: a PMD with the template API may take
    /// no synchronous rule (DPDK 22.11's mlx5 in HW steering mode). Every
    /// other port keeps the synchronous API; each port's API and why are
    /// logged and shown by `offload caps`.
    pub fn use_templates(&mut self, apis: Vec<(u16, PortApi)>) {
        let mut queues = TemplateQueues::new();
        for (port, api) in apis {
            let Some(i) = self.ports.iter().position(|p| p.id == port) else {
                continue;
            };
            let configured = match api {
                PortApi::Async(c) => c,
                PortApi::Sync(why) => {
                    self.sync_why[i] = Some(why);
                    continue;
                }
            };
            let device = match (self.mode, self.manager.as_mut()) {
                (OffloadMode::Auto, Some((_, device))) => device,
                _ => {
                    self.sync_why[i] = Some("no flow is offered".to_owned());
                    continue;
                }
            };
            if let Err(e) = self.statics.open(configured, self.static_table_rules) {
                warn!(port, "offload: static rules keep the synchronous API: {e}");
            }
            let p = &self.ports[i];
            let target = ProbeTarget {
                port,
                role: p.role,
                other: port,
                queue: 0,
                marks: p.marks,
                outer_df: self.outer_df,
            };
            let shapes = probe::flow_shapes(target, device.level(port));
            self.sync_why[i] = if shapes.is_empty() {
                Some("level none: no per-flow rules".to_owned())
            } else {
                match queues.open(configured, &shapes, self.max_flows) {
                    Ok(()) => None,
                    Err(e) => {
                        let why = format!("template tables: {e}");
                        self.demote(i, &why);
                        Some(why)
                    }
                }
            };
        }
        if let (false, Some((_, device))) = (queues.is_empty(), self.manager.as_mut()) {
            device.set_queues(Box::new(queues));
        }
        for (p, why) in self.ports.iter().zip(&self.sync_why) {
            match why {
                None => info!("port {} ({}): flow api async", p.id, p.name),
                Some(why) => info!("port {} ({}): flow api sync: {why}", p.id, p.name),
            }
        }
    }

    /// Takes port `i` (the plane's order) to level none: no per-flow,
    /// root, deny or steering rule is made for it any more.
    fn demote(&mut self, i: usize, why: &str) {
        let Some(p) = self.ports.get(i) else {
            return;
        };
        let port = p.id;
        warn!(port, name = %p.name, "offload: the port goes to level none: {why}");
        if let Some(c) = self.caps.get_mut(i) {
            c.level = Level::None;
        }
        if let Some((_, device)) = self.manager.as_mut() {
            device.set_level(port, Level::None);
        }
        self.full_ports.retain(|&p| p != port);
        self.full_public.retain(|&p| p != port);
        self.deny_public.retain(|&p| p != port);
        self.public_queues.retain(|(p, _)| *p != port);
    }

    /// Whether some port marks flows' frames (partial offload): the
    /// workers then read marks.
    pub fn marks(&self) -> bool {
        self.manager
            .as_ref()
            .is_some_and(|(_, d)| self.ports.iter().any(|p| d.level(p.id) == Level::Partial))
    }

    /// Worker `w`'s link, if flows are offered.
    pub fn link(&self, w: usize) -> Option<Arc<Link>> {
        self.links.get(w).cloned()
    }

    /// One control-loop tick: the manager's, and the steering rules
    /// brought up to date with the pools when the tables changed.
    pub fn tick(&mut self, tables: &Tables) {
        let now = self.started.elapsed().as_millis() as u64;
        self.tick_at(now, tables);
    }

    /// [`OffloadPlane::tick`] at `now_ms` milliseconds of the plane's
    /// clock (a test's own).
    pub fn tick_at(&mut self, now_ms: u64, tables: &Tables) {
        let Some((manager, device)) = self.manager.as_mut() else {
            return;
        };
        manager.tick(now_ms, REQUEST_BUDGET, tables, &mut macs_of(tables), device);
        device.poll();
        if self.roots.generation != Some(tables.generation) {
            self.root(tables);
        }
        if self.steering.generation != Some(tables.generation) {
            self.steer(tables);
        }
        if self.deny.generation != Some(tables.generation) {
            let statics = &self.statics;
            let create = |rule: &Rule, port: u16| statics.create(rule, port);
            let create: Option<root::Create<'_>> =
                (self.mode == OffloadMode::Auto).then_some(&create);
            // A pass jumps to the flows' group: only behind a punt rule.
            let ports: Vec<u16> = (self.deny_public.iter().copied())
                .filter(|&p| self.roots.punted(p))
                .collect();
            self.deny
                .update(tables, &ports, self.outer_df, self.deny_limits, create);
        }
        self.deny.query(now_ms, self.query_interval_ms);
    }

    /// The handler is about to publish `next`: the deny rules of every
    /// tenant it changes go first, so that no NIC drop is in force under
    /// tables that could allow what it drops; the next tick makes them
    /// again (docs/offload.md, "Deny rules on the NIC").
    pub fn before_publish(&mut self, next: &Tables) {
        self.deny.before_publish(next);
    }

    /// Packets the NIC's deny rules dropped for rule counter slot `slot`
    /// (the workers never see them).
    pub fn deny_rule_drops(&self, slot: u32) -> u64 {
        self.deny.rule_drops(slot)
    }

    /// The root rules for `tables`' tunnels: created in auto mode, kept
    /// in shadow mode.
    fn root(&mut self, tables: &Tables) {
        self.roots.generation = Some(tables.generation);
        let full = |port: u16| self.full_ports.contains(&port);
        let (keys, left_out) = root::wanted(tables, &self.full_public, &full, root::MAX_ROOT_RULES);
        if left_out > 0 {
            warn!(
                left_out,
                "offload: more tunnels than root rules ({}): the rest stay in software",
                root::MAX_ROOT_RULES
            );
        }
        self.roots.left_out = left_out as u64;
        let statics = &self.statics;
        let create = |rule: &Rule, port: u16| statics.create(rule, port);
        let create: Option<root::Create<'_>> = (self.mode == OffloadMode::Auto).then_some(&create);
        self.roots.update(keys, self.outer_df, create);
    }

    /// The SNAT steering rules for `tables`' pools, replacing those in
    /// force if they differ.
    fn steer(&mut self, tables: &Tables) {
        self.steering.generation = Some(tables.generation);
        let mut rules = Vec::new();
        for (port, queues) in &self.public_queues {
            for (_, pool) in tables.pools.iter() {
                let steered = SteeredPool {
                    addrs: &pool.addrs,
                    lo: pool.lo,
                    hi: pool.hi,
                };
                let queue_of = |w: u16| queues.get(usize::from(w)).copied().flatten();
                rules.extend(
                    steering::snat_rules(&steered, self.workers, &queue_of)
                        .into_iter()
                        .map(|r| (*port, r)),
                );
            }
        }
        if rules == self.steering.rules {
            return;
        }
        self.steering.handles.clear();
        if self.mode == OffloadMode::Auto {
            for (port, rule) in &rules {
                match self.statics.create(rule, *port) {
                    Ok(handle) => self.steering.handles.push(handle),
                    Err(e) => {
                        warn!(port, "offload: a SNAT steering rule was refused, its ports stay with RSS: {e}")
                    }
                }
            }
        }
        self.steering.rules = rules;
    }

    /// Pulls every flow back (`tgwctl offload flush`); how many.
    pub fn flush(&mut self) -> u64 {
        let Some((manager, device)) = self.manager.as_mut() else {
            return 0;
        };
        let before = manager.stats().pulled_back;
        manager.pull_back_all(device);
        device.poll();
        manager.stats().pulled_back - before
    }

    /// At shutdown: every rule destroyed, the steering and root rules
    /// too.
    pub fn shutdown(&mut self) {
        let pulled = self.flush();
        if let Some((_, device)) = self.manager.as_mut() {
            device.close_queues();
        }
        self.steering = Steering::default();
        self.roots = Roots::default();
        self.deny.clear();
        // Their rules went above: the static tables and templates now.
        self.statics = StaticRules::default();
        if pulled > 0 {
            info!(flows = pulled, "offload: flows pulled back at shutdown");
        }
    }

    /// `offload.caps`.
    pub fn caps_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let level = self.caps.get(i).map_or(Level::None, |c| c.level);
                let api = self.manager.as_ref().map_or("sync", |(_, d)| d.api(p.id));
                let mut port = json!({"port": p.name, "id": p.id, "role": p.role.as_str(), "level": level_name(level), "api": api});
                if let (Some(why), "sync") = (self.sync_why.get(i).and_then(Option::as_ref), api) {
                    port["api_reason"] = why.as_str().into();
                }
                port
            })
            .collect();
        let shapes: Vec<Value> = self
            .caps
            .iter()
            .flat_map(|c| {
                c.shapes.iter().map(move |(s, v)| {
                    json!({"port": c.name, "shape": s.name(), "verdict": v.to_string()})
                })
            })
            .collect();
        json!({"mode": self.mode.as_str(), "ports": ports, "shapes": shapes})
    }

    /// `offload.show`: at most `limit` flows, with their rules as testpmd
    /// commands when asked, and the steering rules.
    pub fn show_json(
        &self,
        limit: usize,
        testpmd: bool,
        tenant_name: &dyn Fn(u32) -> String,
    ) -> Value {
        let mut rows = Vec::new();
        let mut text = String::new();
        let mut more = false;
        if let Some((manager, _)) = &self.manager {
            for (i, f) in manager.flows().enumerate() {
                if i >= limit {
                    more = true;
                    break;
                }
                let rules = f.rule.map_or(0, |r| r.rules.len());
                rows.push(json!({
                    "worker": f.worker,
                    "id": f.id.get(),
                    "tenant": tenant_name(f.tenant.0),
                    "state": f.state.name(),
                    "hits": f.hits.0,
                    "bytes": f.hits.1,
                    "rules": rules,
                    "installed": f.rule.is_some_and(|r| r.installed()),
                }));
                if testpmd {
                    if let Some(r) = f.rule {
                        text.push_str(&format!(
                            "# worker {} flow {} (tenant {})\n",
                            f.worker,
                            f.id.get(),
                            tenant_name(f.tenant.0)
                        ));
                        text.push_str(&r.testpmd());
                    }
                }
            }
        }
        if testpmd && !self.roots.is_empty() {
            text.push_str("# root rules (group 0): header checks, then the flows' group\n");
            for (port, rule) in self.roots.rules() {
                text.push_str(&rule.testpmd(port));
            }
        }
        if testpmd && !self.deny.is_empty() {
            text.push_str("# deny rules (group 0, before the root rule): drops and passes\n");
            for (port, rule) in self.deny.rules() {
                text.push_str(&rule.testpmd(port));
            }
        }
        if testpmd && !self.steering.rules.is_empty() {
            text.push_str("# SNAT steering\n");
            for (port, rule) in &self.steering.rules {
                text.push_str(&rule.testpmd(*port));
            }
        }
        let (deny, not_pushed) = self.deny.show_json();
        let mut shown = json!({
            "mode": self.mode.as_str(),
            "flows": rows,
            "more": more,
            "deny": deny,
            "deny_not_pushed": not_pushed,
        });
        if testpmd {
            shown["testpmd"] = text.into();
        }
        shown
    }

    /// What `/metrics` and `offload.stats` show; `counters` are the
    /// workers' (their queue-full drops).
    pub fn report(&self, counters: &[Arc<WorkerCounters>]) -> OffloadReport {
        let levels = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.clone(),
                    self.caps.get(i).map_or(Level::None, |c| c.level),
                )
            })
            .collect();
        let queue_full = counters.iter().map(|c| c.offload.queue_full.get()).sum();
        let mut report = OffloadReport {
            mode: self.mode.as_str(),
            levels,
            queue_full,
            ..OffloadReport::default()
        };
        let Some((manager, _)) = &self.manager else {
            return report;
        };
        let s = manager.stats();
        let dying = manager.len() as u64 - s.pending - s.offloaded;
        report.flows = [s.pending, s.offloaded, dying];
        report.requests = s.candidates;
        report.installed = s.installed;
        report.refreshes = s.refreshes;
        report.pulled_back = s.pulled_back;
        let (by_rule, by_default) = self.deny.drops();
        report.deny_drops = super::report::DenyDrops {
            by_rule,
            by_default,
        };
        let mut refusals: Vec<(&'static str, u64)> = vec![
            ("table_full", s.limit_flows),
            ("tenant_share", s.limit_tenant),
        ];
        refusals.extend(
            NotOffloadable::ALL
                .iter()
                .map(|r| (r.name(), s.not_offloadable[*r as usize])),
        );
        refusals.extend(
            Refusal::ALL
                .iter()
                .map(|r| (r.name(), s.refused[*r as usize])),
        );
        report.refusals = refusals;
        report
    }

    /// `offload.stats`.
    pub fn stats_json(&self, counters: &[Arc<WorkerCounters>]) -> Value {
        let r = self.report(counters);
        let refusals: serde_json::Map<String, Value> = r
            .refusals
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        let flows: serde_json::Map<String, Value> = super::report::STATES
            .iter()
            .zip(r.flows)
            .map(|(k, v)| ((*k).to_owned(), v.into()))
            .collect();
        json!({
            "mode": r.mode,
            "flows": flows,
            "requests": r.requests,
            "installed": r.installed,
            "refusals": refusals,
            "queue_full": r.queue_full,
            "refreshes": r.refreshes,
            "pulled_back": r.pulled_back,
            "pulled_back_moved": self.manager.as_ref().map_or(0, |(m, _)| m.stats().moved),
            "ended_stale": self.manager.as_ref().map_or(0, |(m, _)| m.stats().stale),
            "steering_rules": self.steering.rules.len(),
            "root_rules": self.roots.len(),
            "root_rules_installed": self.roots.installed(),
            "root_rules_left_out": self.roots.left_out,
            "root_rules_refused": self.roots.refused,
            "async_queue_full": self.manager.as_ref().map_or(0, |(_, d)| d.queue_full()),
            "deny_rules": self.deny.len(),
            "deny_rules_installed": self.deny.installed(),
            "deny_rules_refused": self.deny.refused,
            "deny_not_pushed": self.deny.not_pushed().into_iter().map(|(k, v)| (k.to_owned(), Value::from(v))).collect::<serde_json::Map<String, Value>>(),
            "feedback_full": self.manager.as_ref().map_or(0, |(m, _)| m.stats().feedback_full),
            "workers": workers_json(counters),
        })
    }
}

/// The workers' side of offload, summed over them: what `offload.stats`
/// shows besides the manager's.
fn workers_json(counters: &[Arc<WorkerCounters>]) -> Value {
    let sum = |of: fn(&WorkerCounters) -> &dataplane::counters::Counter| -> u64 {
        counters.iter().map(|c| of(c).get()).sum()
    };
    json!({
        "requests": sum(|c| &c.offload.requests),
        "ended": sum(|c| &c.offload.ended),
        "ended_lost": sum(|c| &c.offload.ended_lost),
        "refreshes": sum(|c| &c.offload.refreshes),
        "released": sum(|c| &c.offload.released),
        "feedback_stale": sum(|c| &c.offload.feedback_stale),
        "stale_told": sum(|c| &c.offload.stale_told),
        "stale_lost": sum(|c| &c.offload.stale_lost),
        "marked_hits": sum(|c| &c.offload.marked_hits),
        "stale_marks": sum(|c| &c.offload.stale_marks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(offload: &str) -> Config {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/reference.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let text = text.replacen("mode = \"auto\"", offload, 1);
        ctl::config::parse(&text, "reference.toml", &"0-1".parse().unwrap()).unwrap()
    }

    fn ports() -> Vec<PlanePort> {
        vec![
            PlanePort {
                id: 0,
                name: "pub0".into(),
                role: Role::Public,
                marks: true,
            },
            PlanePort {
                id: 1,
                name: "und0".into(),
                role: Role::Underlay,
                marks: true,
            },
        ]
    }

    fn error(errno: nix::errno::Errno) -> FlowError {
        FlowError {
            op: "rte_flow_validate",
            errno: errno as i32,
            kind: 0,
            message: errno.desc().to_owned(),
        }
    }

    fn plane(
        mode: &str,
        validate: &mut dyn FnMut(&Rule, u16) -> Result<(), FlowError>,
    ) -> OffloadPlane {
        OffloadPlane::new(&config(mode), ports(), validate)
    }

    #[test]
    fn off_probes_nothing_and_offers_nothing() {
        let mut asked = 0;
        let p = plane("mode = \"off\"", &mut |_, _| {
            asked += 1;
            Ok(())
        });
        assert_eq!(asked, 0);
        assert!(p.link(0).is_none());
        assert!(!p.marks());
        let caps = p.caps_json();
        assert_eq!(caps["mode"], "off");
        assert_eq!(caps["shapes"], json!([]));
        assert_eq!(caps["ports"][0]["level"], "none");
    }

    /// Design item 9: with auto on ports of level none the workers
    /// enqueue nothing — no link, so the pipeline's hook is never armed.
    #[test]
    fn auto_without_a_flow_api_offers_nothing() {
        let p = plane("mode = \"auto\"", &mut |_, _| {
            Err(error(nix::errno::Errno::ENOSYS))
        });
        assert!(p.link(0).is_none());
        assert!(!p.marks());
        let r = p.report(&[]);
        assert_eq!(
            r.levels,
            vec![("pub0".into(), Level::None), ("und0".into(), Level::None)]
        );
    }

    #[test]
    fn auto_offers_on_a_capable_nic_and_reads_marks_on_a_partial_one() {
        let p = plane("mode = \"auto\"", &mut |_, _| Ok(()));
        assert!(p.link(0).is_some());
        assert!(
            !p.marks(),
            "full offload: no frame of an offloaded flow reaches a worker"
        );
        // No rewrite: the full shapes refused, MARK and QUEUE taken.
        let p = plane("mode = \"auto\"", &mut |r, _| {
            if r.attr.transfer {
                Err(error(nix::errno::Errno::ENOTSUP))
            } else {
                Ok(())
            }
        });
        assert!(p.link(0).is_some());
        assert!(p.marks());
        assert_eq!(p.caps_json()["ports"][1]["level"], "partial");
    }

    /// Deny rules go only on full public ports whose NIC took the
    /// `deny_drop` shape; one that refuses it keeps its level (the shape
    /// is needed for none) and its denies in software.
    #[test]
    fn deny_rules_need_the_deny_drop_shape_not_the_level() {
        let p = plane("mode = \"auto\"", &mut |_, _| Ok(()));
        assert_eq!(p.deny_public, [0]);
        let p = plane("mode = \"auto\"", &mut |r, _| {
            if r.actions.contains(&rte::flow::Action::Drop) {
                Err(error(nix::errno::Errno::ENOTSUP))
            } else {
                Ok(())
            }
        });
        assert!(p.deny_public.is_empty());
        assert_eq!(p.caps_json()["ports"][0]["level"], "full");
        let caps = p.caps_json();
        let verdict = caps["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["shape"] == "deny_drop")
            .map(|s| s["verdict"].clone());
        let verdict = verdict.as_ref().and_then(Value::as_str).unwrap_or_default();
        assert!(verdict.starts_with("not supported: "), "{caps}");
    }

    /// Shadow mode runs the manager whatever the ports say: the rules of a
    /// capable NIC are built and kept.
    #[test]
    fn shadow_offers_even_without_a_flow_api() {
        let p = plane("mode = \"shadow\"", &mut |_, _| {
            Err(error(nix::errno::Errno::ENOSYS))
        });
        assert!(p.link(0).is_some());
        assert!(!p.marks());
        assert_eq!(
            p.caps_json()["ports"][0]["level"],
            "none",
            "caps say what the NIC said"
        );
    }

    /// The workers' offload counters that docs/offload.md names are in
    /// `offload.stats`, summed over the workers (they were counted and
    /// shown nowhere).
    #[test]
    fn offload_stats_sum_the_workers_counters() {
        let p = plane("mode = \"shadow\"", &mut |_, _| Ok(()));
        let workers = [
            Arc::new(WorkerCounters::new(2)),
            Arc::new(WorkerCounters::new(2)),
        ];
        workers[0].offload.ended_lost.set(2);
        workers[1].offload.ended_lost.set(3);
        workers[1].offload.stale_marks.set(7);
        workers[0].offload.marked_hits.set(11);
        let w = &p.stats_json(&workers)["workers"];
        assert_eq!(w["ended_lost"], 5, "{w}");
        assert_eq!(w["stale_marks"], 7, "{w}");
        assert_eq!(w["marked_hits"], 11, "{w}");
        assert_eq!(w["stale_told"], 0, "{w}");
    }
}
