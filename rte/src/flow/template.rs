//! The template/async flow API (DPDK 22.11: `rte_flow_info_get`,
//! `rte_flow_configure`, pattern and actions templates, template tables,
//! `rte_flow_async_create`/`_destroy`, `rte_flow_push`/`_pull`), where a
//! PMD has one: mlx5 inserts millions of rules a second this way, against
//! thousands with `rte_flow_create`.
//!
//! [`probe`] says which API a port has: `rte_flow_info_get` failing with
//! ENOSYS (no flow API) or ENOTSUP (no template API) means
//! [`Api::Sync`], and tgw uses [`Rule::create`](super::Rule::create).
//! Otherwise [`configure`] (before the port starts) sets up N flow queues,
//! and a [`Table`] per rule shape holds the templates and the template
//! table; its rules are enqueued by tgw's id ([`Table::create`],
//! [`Table::destroy`]), sent with [`Table::push`] and their results
//! collected with [`Table::pull`]. The table owns every handle: a failed
//! creation forgets its handle when its result arrives, and dropping the
//! table destroys its remaining rules (bounded wait), then the table and
//! templates.
//!
//! UNPROVEN HERE: the machine has no NIC with a template API, so only the
//! fallback is tested (virtual devices answer ENOSYS). What real hardware
//! may still refuse: the actions template passes every action's value per
//! rule (masks with NULL confs), which some PMDs take only for some action
//! types (mlx5 wants RAW_ENCAP/DECAP data in the template's mask to size
//! its reformat object); the pattern template takes the shape's masks and
//! ignores its values; `rte_flow_configure` must run before the port is
//! started.

use std::collections::HashMap;
use std::ptr::{self, NonNull};

use dpdk_sys as sys;

use super::lower::Lowered;
use super::{FlowError, Rule};

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

/// Pre-allocates the port's flow resources and queues
/// (`rte_flow_configure`); before the port is started.
pub fn configure(port: u16, config: &Config) -> Result<(), FlowError> {
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
    Ok(())
}

/// What an enqueued operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Created,
    Destroyed,
}

/// The result of one enqueued operation, from [`Table::pull`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// tgw's id of the rule.
    pub id: u64,
    pub op: Op,
    /// The PMD applied it. A failed creation leaves no rule; a failed
    /// destruction leaves the rule installed (the table still owns it).
    pub ok: bool,
}

/// A template table for one rule shape, and the rules of it that live.
#[derive(Debug)]
pub struct Table {
    port: u16,
    pattern: NonNull<sys::rte_flow_pattern_template>,
    actions: NonNull<sys::rte_flow_actions_template>,
    table: NonNull<sys::rte_flow_template_table>,
    /// Installed or pending rules by tgw's id: at most `nb_flows`.
    flows: HashMap<u64, NonNull<sys::rte_flow>>,
    nb_flows: u32,
    /// Enqueued operations by the token passed as user data.
    in_flight: HashMap<usize, (u64, Op)>,
    next_token: usize,
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
            flows: HashMap::new(),
            nb_flows,
            in_flight: HashMap::new(),
            next_token: 1,
        })
    }

    /// How many rules the table holds (installed or pending).
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

    /// Enqueues rule `id` (of the table's shape) on flow queue `queue`,
    /// postponed until [`push`](Self::push). Refused (ENOSPC) when the
    /// table holds `nb_flows` rules already, installed or pending.
    pub fn create(&mut self, queue: u32, id: u64, rule: &Rule) -> Result<(), FlowError> {
        const OP: &str = "rte_flow_async_create";
        if self.flows.contains_key(&id) {
            return Err(FlowError {
                op: OP,
                errno: libc::EEXIST,
                kind: sys::RTE_FLOW_ERROR_TYPE_HANDLE,
                message: format!("rule {id} is in the table already"),
            });
        }
        if self.flows.len() >= usize::try_from(self.nb_flows).unwrap_or(usize::MAX) {
            return Err(FlowError {
                op: OP,
                errno: libc::ENOSPC,
                kind: sys::RTE_FLOW_ERROR_TYPE_HANDLE,
                message: format!("the table holds its {} rules", self.nb_flows),
            });
        }
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
                queue,
                &op_attr,
                self.table.as_ptr(),
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
                self.flows.insert(id, flow);
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
    pub fn destroy(&mut self, queue: u32, id: u64) -> Result<(), FlowError> {
        const OP: &str = "rte_flow_async_destroy";
        let Some(&flow) = self.flows.get(&id) else {
            return Err(FlowError {
                op: OP,
                errno: libc::ENOENT,
                kind: sys::RTE_FLOW_ERROR_TYPE_HANDLE,
                message: format!("no rule {id} in the table"),
            });
        };
        let mut op_attr = sys::rte_flow_op_attr::default();
        op_attr.set_postpone(1);
        let token = self.token(id, Op::Destroyed);
        let mut err = sys::rte_flow_error::default();
        // SAFETY: the handle came from rte_flow_async_create on this port
        // and is still the table's; the user data is an integer token.
        let ret = unsafe {
            sys::rte_flow_async_destroy(
                self.port,
                queue,
                &op_attr,
                flow.as_ptr(),
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
    pub fn push(&mut self, queue: u32) -> Result<(), FlowError> {
        let mut err = sys::rte_flow_error::default();
        // SAFETY: a valid out-parameter; DPDK checks port and queue.
        let ret = unsafe { sys::rte_flow_push(self.port, queue, &mut err) };
        if ret < 0 {
            return Err(FlowError::from_c("rte_flow_push", -ret, &err));
        }
        Ok(())
    }

    /// Collects finished operations of the queue into `out`
    /// (`rte_flow_pull`), at most 64 a call; returns how many.
    pub fn pull(&mut self, queue: u32, out: &mut Vec<Completion>) -> Result<usize, FlowError> {
        const BATCH: u16 = 64;
        let mut results = [sys::rte_flow_op_result {
            status: sys::RTE_FLOW_OP_SUCCESS,
            user_data: ptr::null_mut(),
        }; BATCH as usize];
        let mut err = sys::rte_flow_error::default();
        // SAFETY: `results` holds BATCH entries.
        let ret =
            unsafe { sys::rte_flow_pull(self.port, queue, results.as_mut_ptr(), BATCH, &mut err) };
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
                self.flows.remove(&id);
            }
            out.push(Completion { id, op, ok });
        }
        Ok(n)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // Destroy the rules left on queue 0 and wait (bounded) for the
        // results, since a table with rules cannot be destroyed.
        let ids: Vec<u64> = self.flows.keys().copied().collect();
        for id in ids {
            let _ = self.destroy(0, id);
        }
        let _ = self.push(0);
        let mut done = Vec::new();
        for _ in 0..10_000 {
            if self.in_flight.is_empty() || self.pull(0, &mut done).is_err() {
                break;
            }
        }
        let mut err = sys::rte_flow_error::default();
        // SAFETY: the table and templates were created on this port by
        // `new` and are destroyed once, table first (it uses the
        // templates).
        unsafe {
            sys::rte_flow_template_table_destroy(self.port, self.table.as_ptr(), &mut err);
            sys::rte_flow_actions_template_destroy(self.port, self.actions.as_ptr(), &mut err);
            sys::rte_flow_pattern_template_destroy(self.port, self.pattern.as_ptr(), &mut err);
        }
    }
}
