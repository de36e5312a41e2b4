//! The template/async flow API (DPDK 22.11: `rte_flow_info_get`,
//! `rte_flow_configure`, pattern and actions templates, template tables,
//! `rte_flow_async_create`/`_destroy`, `rte_flow_push`/`_pull`), where a
//! PMD has one: mlx5 inserts millions of rules a second this way, against
//! thousands with `rte_flow_create`.
//!
//! [`probe`] says which API a port has: `rte_flow_info_get` failing with
//! ENOSYS (no flow API) or ENOTSUP (no template API) means
//! [`Api::Sync`], and tgw uses [`Rule::create`](super::Rule::create).
//! Otherwise [`configure`] (after the port is configured, before it
//! starts) sets up its flow queues, and a [`Table`] per rule shape holds
//! the templates and the template table. A [`PortFlows`] (one flow queue
//! of a port, and the port's tables) holds the rules of every table: they
//! are enqueued by tgw's id ([`PortFlows::create`] into a table,
//! [`PortFlows::destroy`]), sent with [`PortFlows::push`] and their
//! results collected with [`PortFlows::pull`]. A queue's results are the
//! port's, whatever table a rule is in, so the tokens that tell them apart
//! are the queue's. It owns every rule's handle: a failed creation forgets
//! its handle when its result arrives, and dropping it destroys the
//! remaining rules (bounded wait) before the tables, since a table with
//! rules cannot be destroyed. Operations in flight are at most the queue
//! size `configure` set: past it `create` and `destroy` refuse (EAGAIN).
//! A rule's counters are read with `rte_flow_query` on its handle
//! ([`PortFlows::query_count`]), as DPDK 22.11's mlx5 answers for
//! template rules (`flow_hw_query`).
//!
//! UNPROVEN HERE: the machine has no NIC with a template API; the calls
//! are checked against a fake NIC at the call boundary (`flowcheck`), and
//! virtual devices answer ENOSYS. What real hardware may still refuse: the
//! actions template passes every action's value per rule (masks with NULL
//! confs); mlx5 (22.11, `flow_hw_actions_translate`) then sizes a raw
//! encap from the template's action and copies each rule's bytes at that
//! size, so rules of one table must push headers of one length (tgw's
//! shape key keeps them apart); the pattern template takes the shape's
//! masks and ignores its values; `rte_flow_configure` must run after
//! `rte_eth_dev_configure` and before the port is started (ethdev refuses
//! otherwise).

use std::collections::HashMap;
use std::ptr::{self, NonNull};

use dpdk_sys as sys;

use super::lower::Lowered;
use super::{Counts, FlowError, Rule};

/// Which flow API a port has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Api {
    /// No template API (or no flow API at all): why, as the PMD said.
    Sync(FlowError),
    /// The template API, with the port's limits.
    Template(PortInfo),
}

/// `rte_flow_port_info` and `rte_flow_queue_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortInfo {
    pub max_queues: u32,
    pub max_counters: u32,
    pub max_aging_objects: u32,
    pub max_queue_size: u32,
}

/// Asks the port which flow API it has (`rte_flow_info_get`). Errors other
/// than ENOSYS and ENOTSUP (a bad port id) are returned as errors.
pub fn probe(port: u16) -> Result<Api, FlowError> {
    const OP: &str = "rte_flow_info_get";
    let mut port_info = sys::rte_flow_port_info::default();
    let mut queue_info = sys::rte_flow_queue_info::default();
    let mut err = sys::rte_flow_error::default();
    // SAFETY: three valid out-parameters; DPDK checks the port id.
    let ret = unsafe { sys::rte_flow_info_get(port, &mut port_info, &mut queue_info, &mut err) };
    if ret < 0 {
        let e = FlowError::from_c(OP, -ret, &err);
        return if e.no_flow_api() || e.unsupported() {
            Ok(Api::Sync(e))
        } else {
            Err(e)
        };
    }
    Ok(Api::Template(PortInfo {
        max_queues: port_info.max_nb_queues,
        max_counters: port_info.max_nb_counters,
        max_aging_objects: port_info.max_nb_aging_objects,
        max_queue_size: queue_info.max_size,
    }))
}

/// What [`configure`] asks the port for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Flow queues (one per thread that inserts rules).
    pub queues: u16,
    /// Operations each queue holds in flight.
    pub queue_size: u32,
    pub counters: u32,
    pub aging_objects: u32,
}

/// A port [`configure`] set up: the proof a [`PortFlows`] needs that the
/// port has the template calls. DPDK 22.11's `rte_flow_async_create`,
/// `_async_destroy`, `_push` and `_pull` call the PMD's function without
/// looking whether it has one: on a port without the template API they
/// jump through NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Configured {
    pub port: u16,
    pub queues: u16,
    pub queue_size: u32,
}

/// Pre-allocates the port's flow resources and queues
/// (`rte_flow_configure`); before the port is started.
pub fn configure(port: u16, config: &Config) -> Result<Configured, FlowError> {
    const OP: &str = "rte_flow_configure";
    let port_attr = sys::rte_flow_port_attr {
        nb_counters: config.counters,
        nb_aging_objects: config.aging_objects,
        ..Default::default()
    };
    let queue_attr = sys::rte_flow_queue_attr {
        size: config.queue_size,
    };
    let mut attrs: Vec<*const sys::rte_flow_queue_attr> =
        vec![ptr::from_ref(&queue_attr); usize::from(config.queues)];
    let mut err = sys::rte_flow_error::default();
    // SAFETY: port_attr and every queue attribute pointer are valid for the
    // call; `attrs` has `queues` entries; DPDK copies what it keeps.
    let ret = unsafe {
        sys::rte_flow_configure(
            port,
            &port_attr,
            config.queues,
            attrs.as_mut_ptr(),
            &mut err,
        )
    };
    if ret < 0 {
        return Err(FlowError::from_c(OP, -ret, &err));
    }
    Ok(Configured {
        port,
        queues: config.queues,
        queue_size: config.queue_size,
    })
}

/// What an enqueued operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Created,
    Destroyed,
}

/// The result of one enqueued operation, from [`PortFlows::pull`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// tgw's id of the rule.
    pub id: u64,
    pub op: Op,
    /// The PMD applied it. A failed creation leaves no rule; a failed
    /// destruction leaves the rule installed (the queue still owns it).
    pub ok: bool,
}

/// The templates and template table of one rule shape.
#[derive(Debug)]
pub struct Table {
    port: u16,
    pattern: NonNull<sys::rte_flow_pattern_template>,
    actions: NonNull<sys::rte_flow_actions_template>,
    table: NonNull<sys::rte_flow_template_table>,
    /// Rules the table holds at most (`rte_flow_template_table_attr`).
    nb_flows: u32,
    /// Rules in it now, installed or pending ([`PortFlows`] counts them).
    used: u32,
}

// SAFETY: the handles are only passed back to rte_flow calls on their
// port, from whichever single thread owns the table (`&mut self`).
unsafe impl Send for Table {}

/// Destroys a template object if creating the next one fails.
struct Undo {
    port: u16,
    pattern: Option<NonNull<sys::rte_flow_pattern_template>>,
    actions: Option<NonNull<sys::rte_flow_actions_template>>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        let mut err = sys::rte_flow_error::default();
        if let Some(a) = self.actions {
            // SAFETY: created on this port by Table::new, used by nothing.
            unsafe { sys::rte_flow_actions_template_destroy(self.port, a.as_ptr(), &mut err) };
        }
        if let Some(p) = self.pattern {
            // SAFETY: as above.
            unsafe { sys::rte_flow_pattern_template_destroy(self.port, p.as_ptr(), &mut err) };
        }
    }
}

impl Table {
    /// Templates from `shape` (its masks and action types; the values
    /// come with each rule) and a table of up to `nb_flows` rules.
    pub fn new(port: u16, shape: &Rule, nb_flows: u32) -> Result<Table, FlowError> {
        let low = Lowered::new("rte_flow_pattern_template_create", shape)?;
        let mut err = sys::rte_flow_error::default();
        let mut undo = Undo {
            port,
            pattern: None,
            actions: None,
        };

        let mut pattern_attr = sys::rte_flow_pattern_template_attr::default();
        pattern_attr.set_ingress(shape.attr.ingress.into());
        pattern_attr.set_egress(shape.attr.egress.into());
        pattern_attr.set_transfer(shape.attr.transfer.into());
        // SAFETY: the attr and the END-terminated items (pointing into
        // `low`) are valid for the call.
        let pattern = unsafe {
            sys::rte_flow_pattern_template_create(port, &pattern_attr, low.items.as_ptr(), &mut err)
        };
        let pattern = NonNull::new(pattern).ok_or_else(|| {
            // SAFETY: reads this thread's rte_errno, set by the failure.
            FlowError::from_c(
                "rte_flow_pattern_template_create",
                unsafe { sys::tgw_errno() },
                &err,
            )
        })?;
        undo.pattern = Some(pattern);

        let mut actions_attr = sys::rte_flow_actions_template_attr::default();
        actions_attr.set_ingress(shape.attr.ingress.into());
        actions_attr.set_egress(shape.attr.egress.into());
        actions_attr.set_transfer(shape.attr.transfer.into());
        // Every action's value comes with each rule: masks with NULL confs.
        let masks: Vec<sys::rte_flow_action> = low
            .actions
            .iter()
            .map(|a| sys::rte_flow_action {
                type_: a.type_,
                conf: ptr::null(),
            })
            .collect();
        // SAFETY: attr, END-terminated actions and masks of the same types,
        // all valid for the call.
        let actions = unsafe {
            sys::rte_flow_actions_template_create(
                port,
                &actions_attr,
                low.actions.as_ptr(),
                masks.as_ptr(),
                &mut err,
            )
        };
        let actions = NonNull::new(actions).ok_or_else(|| {
            // SAFETY: as above.
            FlowError::from_c(
                "rte_flow_actions_template_create",
                unsafe { sys::tgw_errno() },
                &err,
            )
        })?;
        undo.actions = Some(actions);

        let table_attr = sys::rte_flow_template_table_attr {
            flow_attr: low.attr,
            nb_flows,
        };
        let mut patterns = [pattern.as_ptr()];
        let mut actionss = [actions.as_ptr()];
        // SAFETY: one template of each kind, created above on this port.
        let table = unsafe {
            sys::rte_flow_template_table_create(
                port,
                &table_attr,
                patterns.as_mut_ptr(),
                1,
                actionss.as_mut_ptr(),
                1,
                &mut err,
            )
        };
        let table = NonNull::new(table).ok_or_else(|| {
            // SAFETY: as above.
            FlowError::from_c(
                "rte_flow_template_table_create",
                unsafe { sys::tgw_errno() },
                &err,
            )
        })?;
        std::mem::forget(undo);
        Ok(Table {
            port,
            pattern,
            actions,
            table,
            nb_flows,
            used: 0,
        })
    }

    /// How many rules the table holds (installed or pending).
    pub fn len(&self) -> usize {
        self.used as usize
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let mut err = sys::rte_flow_error::default();
        // SAFETY: the table and templates were created on this port by
        // `new` and are destroyed once, table first (it uses the
        // templates). Its rules went first (`PortFlows`' drop).
        unsafe {
            sys::rte_flow_template_table_destroy(self.port, self.table.as_ptr(), &mut err);
            sys::rte_flow_actions_template_destroy(self.port, self.actions.as_ptr(), &mut err);
            sys::rte_flow_pattern_template_destroy(self.port, self.pattern.as_ptr(), &mut err);
        }
    }
}

/// A rule a [`Queue`] holds: its handle and the index of its table.
#[derive(Clone, Copy, Debug)]
struct Held {
    flow: NonNull<sys::rte_flow>,
    table: usize,
}

/// One flow queue of a port, the port's template tables, and the rules
/// created through the queue into them. Dropping it destroys the rules
/// (bounded wait), then the tables.
#[derive(Debug)]
pub struct PortFlows {
    port: u16,
    queue: u32,
    /// By index; `None` where [`PortFlows::remove`] took an empty one.
    tables: Vec<Option<Table>>,
    /// Operations in flight at most: the size `configure` gave the queue.
    size: usize,
    /// Installed or pending rules by tgw's id.
    flows: HashMap<u64, Held>,
    /// Enqueued operations by the token passed as user data: unique on
    /// the queue, whatever table the rule is in.
    in_flight: HashMap<usize, (u64, Op)>,
    next_token: usize,
}

// SAFETY: as for `Table`: the handles go back to rte_flow calls on their
// port only, from the single thread that owns the queue.
unsafe impl Send for PortFlows {}

impl PortFlows {
    /// Flow queue `queue` of the port `configured` describes; EINVAL for a
    /// queue it does not have.
    pub fn new(configured: Configured, queue: u32) -> Result<PortFlows, FlowError> {
        if queue >= u32::from(configured.queues) {
            return Err(Self::refused(
                "rte_flow_configure",
                libc::EINVAL,
                format!("the port has {} flow queues", configured.queues),
            ));
        }
        Ok(PortFlows {
            port: configured.port,
            queue,
            tables: Vec::new(),
            size: configured.queue_size as usize,
            flows: HashMap::new(),
            in_flight: HashMap::new(),
            next_token: 1,
        })
    }

    /// Adds a table of the port: its index for [`create`](Self::create)
    /// (a removed table's index may be reused). EINVAL for another
    /// port's.
    pub fn add(&mut self, table: Table) -> Result<usize, FlowError> {
        if table.port != self.port {
            return Err(Self::refused(
                "rte_flow_template_table_create",
                libc::EINVAL,
                format!("a table of port {}, not {}", table.port, self.port),
            ));
        }
        if let Some(i) = self.tables.iter().position(Option::is_none) {
            self.tables[i] = Some(table);
            return Ok(i);
        }
        self.tables.push(Some(table));
        Ok(self.tables.len() - 1)
    }

    /// Destroys table `i` (and its templates) if it holds no rule,
    /// installed or pending: whether it did.
    pub fn remove(&mut self, i: usize) -> bool {
        match self.tables.get_mut(i) {
            Some(slot) if slot.as_ref().is_some_and(Table::is_empty) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// The table of index `i`.
    pub fn table(&self, i: usize) -> Option<&Table> {
        self.tables.get(i).and_then(Option::as_ref)
    }

    /// The index of the table rule `id` is in, while it is held.
    pub fn table_of(&self, id: u64) -> Option<usize> {
        self.flows.get(&id).map(|h| h.table)
    }

    /// Operations enqueued whose result has not been pulled.
    pub fn pending(&self) -> usize {
        self.in_flight.len()
    }

    /// Rules held, installed or pending.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    fn token(&mut self, id: u64, op: Op) -> usize {
        let t = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.in_flight.insert(t, (id, op));
        t
    }

    fn refused(op: &'static str, errno: i32, message: String) -> FlowError {
        FlowError {
            op,
            errno,
            kind: sys::RTE_FLOW_ERROR_TYPE_HANDLE,
            message,
        }
    }

    /// Enqueues rule `id` into table `table` (whose shape it has),
    /// postponed until [`push`](Self::push). Refused before DPDK: EAGAIN
    /// when the queue has `size` operations in flight, ENOSPC when the
    /// table holds its `nb_flows` rules, EEXIST for an id held already.
    pub fn create(&mut self, table: usize, id: u64, rule: &Rule) -> Result<(), FlowError> {
        const OP: &str = "rte_flow_async_create";
        if self.flows.contains_key(&id) {
            return Err(Self::refused(
                OP,
                libc::EEXIST,
                format!("rule {id} is held already"),
            ));
        }
        if self.in_flight.len() >= self.size {
            return Err(Self::refused(
                OP,
                libc::EAGAIN,
                format!("the flow queue holds its {} operations", self.size),
            ));
        }
        let Some(t) = self.table(table) else {
            return Err(Self::refused(OP, libc::EINVAL, format!("no table {table}")));
        };
        if t.used >= t.nb_flows {
            return Err(Self::refused(
                OP,
                libc::ENOSPC,
                format!("the table holds its {} rules", t.nb_flows),
            ));
        }
        let handle = t.table;
        let low = Lowered::new(OP, rule)?;
        let mut op_attr = sys::rte_flow_op_attr::default();
        op_attr.set_postpone(1);
        let token = self.token(id, Op::Created);
        let mut err = sys::rte_flow_error::default();
        // SAFETY: the table is alive; items and actions (pointing into
        // `low`) are valid for the call, which copies them; the user data
        // is an integer token, never dereferenced.
        let flow = unsafe {
            sys::rte_flow_async_create(
                self.port,
                self.queue,
                &op_attr,
                handle.as_ptr(),
                low.items.as_ptr(),
                0,
                low.actions.as_ptr(),
                0,
                ptr::without_provenance_mut(token),
                &mut err,
            )
        };
        match NonNull::new(flow) {
            Some(flow) => {
                if let Some(t) = self.tables[table].as_mut() {
                    t.used += 1;
                }
                self.flows.insert(id, Held { flow, table });
                Ok(())
            }
            None => {
                self.in_flight.remove(&token);
                // SAFETY: reads this thread's rte_errno, set by the failure.
                Err(FlowError::from_c(OP, unsafe { sys::tgw_errno() }, &err))
            }
        }
    }

    /// Enqueues the destruction of rule `id`, postponed until `push`.
    /// EAGAIN when the queue is full: pull, then try again.
    pub fn destroy(&mut self, id: u64) -> Result<(), FlowError> {
        const OP: &str = "rte_flow_async_destroy";
        let Some(held) = self.flows.get(&id).copied() else {
            return Err(Self::refused(OP, libc::ENOENT, format!("no rule {id}")));
        };
        if self.in_flight.len() >= self.size {
            return Err(Self::refused(
                OP,
                libc::EAGAIN,
                format!("the flow queue holds its {} operations", self.size),
            ));
        }
        let mut op_attr = sys::rte_flow_op_attr::default();
        op_attr.set_postpone(1);
        let token = self.token(id, Op::Destroyed);
        let mut err = sys::rte_flow_error::default();
        // SAFETY: the handle came from rte_flow_async_create on this port
        // and is still held; the user data is an integer token.
        let ret = unsafe {
            sys::rte_flow_async_destroy(
                self.port,
                self.queue,
                &op_attr,
                held.flow.as_ptr(),
                ptr::without_provenance_mut(token),
                &mut err,
            )
        };
        if ret < 0 {
            self.in_flight.remove(&token);
            return Err(FlowError::from_c(OP, -ret, &err));
        }
        Ok(())
    }

    /// Sends the queue's postponed operations to the NIC (`rte_flow_push`).
    pub fn push(&mut self) -> Result<(), FlowError> {
        let mut err = sys::rte_flow_error::default();
        // SAFETY: a valid out-parameter; DPDK checks port and queue.
        let ret = unsafe { sys::rte_flow_push(self.port, self.queue, &mut err) };
        if ret < 0 {
            return Err(FlowError::from_c("rte_flow_push", -ret, &err));
        }
        Ok(())
    }

    /// Collects finished operations into `out` (`rte_flow_pull`), at most
    /// 64 a call; returns how many. A rule whose creation failed or whose
    /// destruction succeeded leaves its table.
    pub fn pull(&mut self, out: &mut Vec<Completion>) -> Result<usize, FlowError> {
        const BATCH: u16 = 64;
        let mut results = [sys::rte_flow_op_result {
            status: sys::RTE_FLOW_OP_SUCCESS,
            user_data: ptr::null_mut(),
        }; BATCH as usize];
        let mut err = sys::rte_flow_error::default();
        // SAFETY: `results` holds BATCH entries.
        let ret = unsafe {
            sys::rte_flow_pull(self.port, self.queue, results.as_mut_ptr(), BATCH, &mut err)
        };
        if ret < 0 {
            return Err(FlowError::from_c("rte_flow_pull", -ret, &err));
        }
        let n = usize::try_from(ret).unwrap_or(0).min(results.len());
        for r in &results[..n] {
            let Some((id, op)) = self.in_flight.remove(&r.user_data.addr()) else {
                continue;
            };
            let ok = r.status == sys::RTE_FLOW_OP_SUCCESS;
            // A rule that failed to install, or that is gone, has no handle.
            if ok == (op == Op::Destroyed) {
                if let Some(held) = self.flows.remove(&id) {
                    if let Some(Some(t)) = self.tables.get_mut(held.table) {
                        t.used = t.used.saturating_sub(1);
                    }
                }
            }
            out.push(Completion { id, op, ok });
        }
        Ok(n)
    }

    /// The counters of rule `id` (`rte_flow_query` of its COUNT action on
    /// the handle `rte_flow_async_create` gave: DPDK 22.11's mlx5 answers
    /// it for template rules as for others, `flow_hw_query`).
    pub fn query_count(&self, id: u64) -> Result<Counts, FlowError> {
        let Some(held) = self.flows.get(&id) else {
            return Err(Self::refused(
                "rte_flow_query",
                libc::ENOENT,
                format!("no rule {id}"),
            ));
        };
        super::query_count(self.port, held.flow)
    }

    /// Destroys every rule held (but those whose destruction is on its
    /// way) and waits (bounded) for the results.
    pub fn clear(&mut self) {
        let mut done = Vec::new();
        let going: std::collections::HashSet<u64> = self
            .in_flight
            .values()
            .filter(|(_, op)| *op == Op::Destroyed)
            .map(|(id, _)| *id)
            .collect();
        let ids: Vec<u64> = self
            .flows
            .keys()
            .copied()
            .filter(|id| !going.contains(id))
            .collect();
        for id in ids {
            // A full queue: pull, then try again (bounded).
            for _ in 0..1000 {
                match self.destroy(id) {
                    Err(e) if e.errno == libc::EAGAIN => {
                        let _ = self.push();
                        if self.pull(&mut done).is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        let _ = self.push();
        for _ in 0..10_000 {
            if self.in_flight.is_empty() || self.pull(&mut done).is_err() {
                break;
            }
        }
    }
}

impl Drop for PortFlows {
    fn drop(&mut self) {
        // A table with rules cannot be destroyed: the rules go first.
        self.clear();
        self.tables.clear();
    }
}
