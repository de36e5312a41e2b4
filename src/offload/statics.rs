//! The static rules — root ([`super::root`]), deny ([`super::deny`]) and
//! SNAT steering ([`super::steering`]) — on either flow API
//! (docs/offload.md, "The template/async API"): `rte_flow_create` on a
//! port without the template API; on a port with it, through its
//! [`STATIC_QUEUE`] into a template table of the rule's shape
//! ([`shape_key`]), since DPDK 22.11's mlx5 in HW steering mode takes no
//! synchronous rule ("Flow non-Q creation not supported").
//!
//! Static rules are few and change with the configuration, and their
//! callers decide on the spot (a tenant's deny rules go whole or not at
//! all): so each creation and destruction is pushed and its completion
//! waited for, at most [`SETTLE`], and a rule is either in force when
//! [`StaticRules::create`] returns or refused. A table is made when the
//! first rule of its shape comes and destroyed when its last rule goes,
//! so that a port holds at most as many static tables as static rules
//! (each bounded: `root::MAX_ROOT_RULES`, `[offload] max_deny_rules`).
//! The priority of a template rule is its table's (mlx5 22.11,
//! `flow_hw_table_create`: `matcher_attr.priority =
//! attr->flow_attr.priority`), and the shape key holds the attributes: a
//! deny rule at priority 3 and the root rule at 64 are in two tables of
//! the same group, in the order their priorities give.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use rte::flow::template::{Completion, Configured, Op, PortFlows, Table};
use rte::flow::{Counts, Flow, FlowError, Rule};
use tracing::warn;

use super::templates::{shape_key, STATIC_QUEUE};

/// How long a static rule's creation or destruction is waited for: a NIC
/// that has not answered by then is taken to have refused (the rule, if
/// it comes later, is destroyed at shutdown).
pub const SETTLE: Duration = Duration::from_millis(500);

/// A static rule in force, destroyed when dropped.
#[derive(Debug)]
pub enum Handle {
    /// Made by `rte_flow_create`.
    Sync(Flow),
    /// Made through a template-API port's static queue.
    Queued(Queued),
}

impl Handle {
    /// Its COUNT's hits and bytes (`rte_flow_query` on the handle, which
    /// mlx5 22.11 answers for template rules too: `flow_hw_query`).
    pub fn query_count(&mut self) -> Result<Counts, FlowError> {
        match self {
            Handle::Sync(flow) => flow.query_count(),
            Handle::Queued(q) => lock(&q.port).flows.query_count(q.id),
        }
    }
}

/// A rule in a static table: its port's queue and its id there.
pub struct Queued {
    port: Arc<Mutex<StaticPort>>,
    id: u64,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queued({})", self.id)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut port = lock(&self.port);
        if let Err(e) = port.destroy(self.id) {
            warn!(
                port = port.port,
                "offload: a static rule could not be destroyed (it goes at shutdown): {e}"
            );
        }
    }
}

fn lock(port: &Mutex<StaticPort>) -> MutexGuard<'_, StaticPort> {
    port.lock().unwrap_or_else(|e| e.into_inner())
}

/// A template-API port's static queue and tables.
struct StaticPort {
    port: u16,
    flows: PortFlows,
    /// By table index: the shape key of the table there.
    keys: Vec<Option<Rule>>,
    /// Rules each table holds at most.
    table_rules: u32,
    next_id: u64,
    /// Reused by `settle`.
    done: Vec<Completion>,
}

impl StaticPort {
    /// Creates `rule` in the table of its shape (made if none has it) and
    /// waits for the NIC's answer.
    fn create(&mut self, rule: &Rule) -> Result<u64, FlowError> {
        let key = shape_key(rule);
        let table = match self.keys.iter().position(|k| k.as_ref() == Some(&key)) {
            Some(i) => i,
            None => {
                let i = self
                    .flows
                    .add(Table::new(self.port, rule, self.table_rules)?)?;
                if self.keys.len() <= i {
                    self.keys.resize(i + 1, None);
                }
                self.keys[i] = Some(key);
                i
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let result = self
            .flows
            .create(table, id, rule)
            .and_then(|()| self.settle(id, Op::Created));
        if result.is_err() {
            self.prune(table);
        }
        result.map(|()| id)
    }

    /// Destroys rule `id` and waits for the NIC's answer; its table goes
    /// with its last rule.
    fn destroy(&mut self, id: u64) -> Result<(), FlowError> {
        let table = self.flows.table_of(id);
        self.flows.destroy(id)?;
        let result = self.settle(id, Op::Destroyed);
        if let Some(table) = table {
            self.prune(table);
        }
        result
    }

    /// Pushes the queue and pulls until operation `op` of rule `id` is
    /// done, at most [`SETTLE`]. Other results (late ones) only update
    /// the queue's books.
    fn settle(&mut self, id: u64, op: Op) -> Result<(), FlowError> {
        let name = match op {
            Op::Created => "rte_flow_async_create",
            Op::Destroyed => "rte_flow_async_destroy",
        };
        self.flows.push()?;
        let deadline = Instant::now() + SETTLE;
        loop {
            self.done.clear();
            self.flows.pull(&mut self.done)?;
            if let Some(c) = self.done.iter().find(|c| c.id == id && c.op == op) {
                if c.ok {
                    return Ok(());
                }
                return Err(FlowError {
                    op: name,
                    errno: Errno::EIO as i32,
                    kind: 0,
                    message: "the NIC failed the operation (rte_flow_pull)".to_owned(),
                });
            }
            if Instant::now() >= deadline {
                return Err(FlowError {
                    op: name,
                    errno: Errno::ETIMEDOUT as i32,
                    kind: 0,
                    message: format!("no completion within {SETTLE:?}"),
                });
            }
            std::thread::yield_now();
        }
    }

    /// Destroys table `i` if it holds no rule any more.
    fn prune(&mut self, i: usize) {
        if self.flows.remove(i) {
            self.keys[i] = None;
        }
    }
}

/// The template-API ports' static queues; every other port's static
/// rules are made with `rte_flow_create`.
#[derive(Default)]
pub struct StaticRules {
    ports: Vec<(u16, Arc<Mutex<StaticPort>>)>,
}

impl StaticRules {
    /// Static rules on the port `configured` describes go through its
    /// [`STATIC_QUEUE`], into tables of up to `table_rules` rules.
    pub fn open(&mut self, configured: Configured, table_rules: u32) -> Result<(), FlowError> {
        let flows = PortFlows::new(configured, STATIC_QUEUE)?;
        let port = StaticPort {
            port: configured.port,
            flows,
            keys: Vec::new(),
            table_rules,
            next_id: 0,
            done: Vec::new(),
        };
        self.ports
            .push((configured.port, Arc::new(Mutex::new(port))));
        Ok(())
    }

    /// Whether `port`'s static rules go through templates.
    pub fn has(&self, port: u16) -> bool {
        self.ports.iter().any(|(p, _)| *p == port)
    }

    /// Makes `rule` on `port`, in force once this returns.
    pub fn create(&self, rule: &Rule, port: u16) -> Result<Handle, FlowError> {
        let Some((_, p)) = self.ports.iter().find(|(p, _)| *p == port) else {
            return rule.create(port).map(Handle::Sync);
        };
        let id = lock(p).create(rule)?;
        Ok(Handle::Queued(Queued {
            port: Arc::clone(p),
            id,
        }))
    }
}
