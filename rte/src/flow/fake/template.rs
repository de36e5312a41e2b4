//! The template/async API.
//!
//! Answered as mlx5 in HW steering mode
//! (`dv_flow_en=2`, DPDK 22.11 `mlx5_flow_hw.c`) would: on a port a test
//! made async ([`set_async`]) `rte_flow_info_get` answers, the port takes
//! `rte_flow_configure`, templates and tables; rules enqueued on a flow
//! queue complete when pushed and are reported by `rte_flow_pull`. Other
//! ports answer ENOSYS, as the virtual devices do; on an async port the
//! synchronous calls (`rte_flow_validate`, `_create`, `_destroy`) are
//! refused with ENOTSUP, as 22.11's mlx5 HWS refuses them ([`not_queued`]):
//! everything tgw makes there must go through templates. Pattern templates keep
//! their items' masks only (DPDK: "the spec member of an item is not used");
//! a rule's items give their values only (DPDK: "the spec is the only
//! relevant member"); actions templates here keep their action types, and
//! the values of those whose mask has a conf. The rule recorded is what
//! the NIC would apply: the table's attributes, the template's masks with
//! the rule's values, the rule's actions.

use super::*;

/// A pattern template: its items' types and masks, as bytes.
#[derive(Clone)]
struct PatternTemplate {
    port: u16,
    items: Vec<(sys::rte_flow_item_type, Vec<u8>)>,
    live: bool,
}

/// An actions template: per action its type, its value when the mask
/// fixes it for every rule, and the size of a raw encap's or decap's
/// bytes (mlx5 sizes the reformat from the template and copies that many
/// bytes of each rule's, `flow_hw_actions_translate`/`_construct`).
#[derive(Clone)]
struct ActionsTemplate {
    port: u16,
    actions: Vec<(sys::rte_flow_action_type, Option<Action>)>,
    raw_sizes: Vec<Option<usize>>,
    live: bool,
}

/// The size of a raw encap's or decap's bytes in `action`.
///
/// # Safety
/// `action.conf` is NULL or its type's struct.
unsafe fn raw_size(action: &sys::rte_flow_action) -> Option<usize> {
    // SAFETY: the caller's contract.
    unsafe {
        match action.type_ {
            sys::RTE_FLOW_ACTION_TYPE_RAW_ENCAP => conf::<sys::rte_flow_action_raw_encap>(action)
                .ok()
                .map(|r| r.size),
            sys::RTE_FLOW_ACTION_TYPE_RAW_DECAP => conf::<sys::rte_flow_action_raw_decap>(action)
                .ok()
                .map(|r| r.size),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct TemplateTable {
    port: u16,
    attr: Attr,
    pattern: usize,
    actions: usize,
    nb_flows: u32,
    /// Rules in it: enqueued and not failed or destroyed.
    used: u32,
    live: bool,
}

/// An enqueued operation: its user data, whether it succeeds, the handle
/// it concerns and whether it is a destruction; pushed or not.
struct PendingOp {
    user_data: usize,
    ok: bool,
    handle: usize,
    table: usize,
    destroy: bool,
    pushed: bool,
}

struct FlowQueue {
    port: u16,
    queue: u32,
    size: u32,
    ops: Vec<PendingOp>,
}

pub(super) struct Templates {
    /// Ports that have the template API.
    async_ports: Vec<u16>,
    patterns: Vec<PatternTemplate>,
    actions: Vec<ActionsTemplate>,
    tables: Vec<TemplateTable>,
    queues: Vec<FlowQueue>,
    /// Async creations to complete with an error, from the next on.
    fail_next: usize,
    /// Pulls answer nothing (the NIC has not finished yet).
    hold: bool,
    /// Tables of more rules than this are refused (no room on the NIC).
    tables_up_to: Option<u32>,
    /// Per handle: the table of an async rule.
    tables_of: Vec<(usize, usize)>,
}

impl Templates {
    pub(super) const fn new() -> Templates {
        Templates {
            async_ports: Vec::new(),
            patterns: Vec::new(),
            actions: Vec::new(),
            tables: Vec::new(),
            queues: Vec::new(),
            fail_next: 0,
            hold: false,
            tables_up_to: None,
            tables_of: Vec::new(),
        }
    }

    /// Turns off what a test switched on: failures to come, held
    /// completions, refused tables.
    pub(super) fn reset_switches(&mut self) {
        self.fail_next = 0;
        self.hold = false;
        self.tables_up_to = None;
    }
}

/// Makes `port` a port with the template API (or not, as at first).
/// Ports not configured since keep their queues.
pub fn set_async(port: u16, on: bool) {
    let mut nic = nic();
    let ports = &mut nic.templates.async_ports;
    ports.retain(|&p| p != port);
    if on {
        ports.push(port);
    }
}

/// The next `n` async creations complete with an error (the PMD's
/// refusal after the fact), in the order they are enqueued.
pub fn fail_async_creations(n: usize) {
    nic().templates.fail_next = n;
}

/// From now on (until `reset`), template tables of more than `rules`
/// rules are refused, as by a NIC without room for them; `None`: none.
pub fn refuse_tables_over(rules: Option<u32>) {
    nic().templates.tables_up_to = rules;
}

/// While `on`, `rte_flow_pull` reports nothing done: the operations stay
/// in flight, as on a NIC that has not finished them.
pub fn hold_completions(on: bool) {
    nic().templates.hold = on;
}

/// Template tables, pattern templates and actions templates not destroyed
/// yet.
pub fn templates_live() -> (usize, usize, usize) {
    let nic = nic();
    let t = &nic.templates;
    (
        t.tables.iter().filter(|x| x.live).count(),
        t.patterns.iter().filter(|x| x.live).count(),
        t.actions.iter().filter(|x| x.live).count(),
    )
}

/// Operations enqueued on `port`'s queue `queue` and not pulled yet.
pub fn in_flight(port: u16, queue: u32) -> usize {
    nic()
        .templates
        .queues
        .iter()
        .find(|q| q.port == port && q.queue == queue)
        .map_or(0, |q| q.ops.len())
}

/// Template objects are addresses no allocation has, told apart by their
/// offset in the stride: pattern templates 8, actions templates 16,
/// tables 24.
fn object_ptr<T>(index: usize, tag: usize) -> *mut T {
    std::ptr::without_provenance_mut((index + 1) * HANDLE_STRIDE + tag)
}

fn object_index<T>(p: *mut T, tag: usize) -> Option<usize> {
    let addr = p.addr();
    (addr > HANDLE_STRIDE && addr % HANDLE_STRIDE == tag).then(|| addr / HANDLE_STRIDE - 1)
}

const PATTERN_TAG: usize = 8;
const ACTIONS_TAG: usize = 16;
const TABLE_TAG: usize = 24;

/// ENOSYS, as a port without a flow API answers (rte_flow_ops_get).
fn no_template_api(error: *mut sys::rte_flow_error) -> c_int {
    // SAFETY: as in `refuse`.
    unsafe {
        sys::rte_flow_error_set(
            error,
            libc::ENOSYS,
            sys::RTE_FLOW_ERROR_TYPE_UNSPECIFIED,
            std::ptr::null(),
            c"fake NIC: no template API on this port".as_ptr(),
        )
    }
}

pub(super) fn is_async(port: u16) -> bool {
    nic().templates.async_ports.contains(&port)
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_info_get(
    port_id: u16,
    port_info: *mut sys::rte_flow_port_info,
    queue_info: *mut sys::rte_flow_queue_info,
    error: *mut sys::rte_flow_error,
) -> c_int {
    guarded("rte_flow_info_get", error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        // SAFETY: the caller's out-parameters, valid for writes.
        let (p, q) = unsafe { (&mut *port_info, &mut *queue_info) };
        // mlx5's flow_hw_info_get: queues and their size unbounded, the
        // counters the device has.
        *p = sys::rte_flow_port_info {
            max_nb_queues: u32::MAX,
            max_nb_counters: 1 << 20,
            max_nb_aging_objects: 1 << 20,
            ..Default::default()
        };
        q.max_size = u32::MAX;
        0
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_configure(
    port_id: u16,
    port_attr: *const sys::rte_flow_port_attr,
    nb_queue: u16,
    queue_attr: *mut *const sys::rte_flow_queue_attr,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_configure";
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        // SAFETY: the caller's attr, and `nb_queue` queue attributes.
        let attr = unsafe { port_attr.as_ref() };
        let Some(attr) = attr else {
            return refuse(OP, error, "NULL port attr".into());
        };
        let mut sizes = Vec::new();
        for i in 0..usize::from(nb_queue) {
            // SAFETY: as above.
            match unsafe { (*queue_attr.add(i)).as_ref() } {
                Some(q) => sizes.push(q.size),
                None => return refuse(OP, error, format!("NULL attr of queue {i}")),
            }
        }
        let Some(&size) = sizes.first() else {
            return refuse(OP, error, "no flow queue".into());
        };
        let mut nic = nic();
        nic.templates.queues.retain(|q| q.port != port_id);
        for (i, &size) in sizes.iter().enumerate() {
            nic.templates.queues.push(FlowQueue {
                port: port_id,
                queue: i as u32,
                size,
                ops: Vec::new(),
            });
        }
        nic.events.push(Event::Configured {
            port: port_id,
            queues: nb_queue,
            queue_size: size,
            counters: attr.nb_counters,
        });
        0
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_pattern_template_create(
    port_id: u16,
    _template_attr: *const sys::rte_flow_pattern_template_attr,
    pattern: *const sys::rte_flow_item,
    error: *mut sys::rte_flow_error,
) -> *mut sys::rte_flow_pattern_template {
    const OP: &str = "rte_flow_pattern_template_create";
    let mut out = std::ptr::null_mut();
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        let mut items = Vec::new();
        for i in 0.. {
            if i == MAX_ENTRIES {
                return refuse(OP, error, "pattern without END".into());
            }
            // SAFETY: END-terminated, and END not passed yet.
            let item = unsafe { &*pattern.add(i) };
            if item.type_ == sys::RTE_FLOW_ITEM_TYPE_END {
                break;
            }
            let size = match item_size(item.type_) {
                Ok(s) => s,
                Err(e) => return refuse(OP, error, e),
            };
            // The mask alone: a template's values are not used.
            // SAFETY: a non-NULL mask points at the item's struct.
            items.push((item.type_, unsafe { read_bytes(item.mask, size) }));
        }
        let mut nic = nic();
        nic.templates.patterns.push(PatternTemplate {
            port: port_id,
            items,
            live: true,
        });
        out = object_ptr(nic.templates.patterns.len() - 1, PATTERN_TAG);
        0
    });
    out
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_actions_template_create(
    port_id: u16,
    _template_attr: *const sys::rte_flow_actions_template_attr,
    actions: *const sys::rte_flow_action,
    masks: *const sys::rte_flow_action,
    error: *mut sys::rte_flow_error,
) -> *mut sys::rte_flow_actions_template {
    const OP: &str = "rte_flow_actions_template_create";
    let mut out = std::ptr::null_mut();
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        let mut list = Vec::new();
        let mut raw_sizes = Vec::new();
        for i in 0.. {
            if i == MAX_ENTRIES {
                return refuse(OP, error, "actions without END".into());
            }
            // SAFETY: END-terminated arrays of the same length and types.
            let (action, mask) = unsafe { (&*actions.add(i), &*masks.add(i)) };
            if action.type_ != mask.type_ {
                return refuse(
                    OP,
                    error,
                    format!("action {i}: type {} masked as {}", action.type_, mask.type_),
                );
            }
            if action.type_ == sys::RTE_FLOW_ACTION_TYPE_END {
                break;
            }
            // A mask with a conf fixes the value for every rule.
            let fixed = if mask.conf.is_null() {
                None
            } else {
                // SAFETY: the action's conf is its type's struct.
                match unsafe { decode_action(action) } {
                    Ok(a) => Some(a),
                    Err(e) => return refuse(OP, error, e),
                }
            };
            list.push((action.type_, fixed));
            // SAFETY: as above.
            raw_sizes.push(unsafe { raw_size(action) });
        }
        let mut nic = nic();
        nic.templates.actions.push(ActionsTemplate {
            port: port_id,
            actions: list,
            raw_sizes,
            live: true,
        });
        out = object_ptr(nic.templates.actions.len() - 1, ACTIONS_TAG);
        0
    });
    out
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_template_table_create(
    port_id: u16,
    table_attr: *const sys::rte_flow_template_table_attr,
    pattern_templates: *mut *mut sys::rte_flow_pattern_template,
    nb_pattern_templates: u8,
    actions_templates: *mut *mut sys::rte_flow_actions_template,
    nb_actions_templates: u8,
    error: *mut sys::rte_flow_error,
) -> *mut sys::rte_flow_template_table {
    const OP: &str = "rte_flow_template_table_create";
    let mut out = std::ptr::null_mut();
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        if nb_pattern_templates != 1 || nb_actions_templates != 1 {
            return refuse(OP, error, "the fake takes one template of each".into());
        }
        // SAFETY: the caller's attr and one template pointer of each kind.
        let (attr, p, a) = unsafe { (&*table_attr, *pattern_templates, *actions_templates) };
        let f = &attr.flow_attr;
        let attr_of = Attr {
            group: f.group,
            priority: f.priority,
            ingress: f.ingress() != 0,
            egress: f.egress() != 0,
            transfer: f.transfer() != 0,
        };
        let mut nic = nic();
        if nic
            .templates
            .tables_up_to
            .is_some_and(|n| attr.nb_flows > n)
        {
            drop(nic);
            return refuse(OP, error, format!("no room for {} rules", attr.nb_flows));
        }
        let t = &nic.templates;
        let live_on_port = |i: Option<usize>, port: &dyn Fn(usize) -> Option<(u16, bool)>| {
            i.filter(|&i| port(i) == Some((port_id, true)))
        };
        let pattern = live_on_port(object_index(p, PATTERN_TAG), &|i| {
            t.patterns.get(i).map(|x| (x.port, x.live))
        });
        let actions = live_on_port(object_index(a, ACTIONS_TAG), &|i| {
            t.actions.get(i).map(|x| (x.port, x.live))
        });
        let (Some(pattern), Some(actions)) = (pattern, actions) else {
            drop(nic);
            return refuse(OP, error, "templates not live on this port".into());
        };
        // What the templates say, as items and actions (values zero).
        let shown_pattern: Result<Vec<Item>, String> = t.patterns[pattern]
            .items
            .iter()
            .map(|(ty, mask)| {
                let mut spec = vec![0; mask.len()];
                // An integrity item's checks are positive: shown as
                // passed, at level 0.
                if *ty == sys::RTE_FLOW_ITEM_TYPE_INTEGRITY {
                    spec[8..].copy_from_slice(&mask[8..]);
                }
                let b = Bytes {
                    spec,
                    mask: mask.clone(),
                };
                // A template's GRE_KEY may be unmasked: it is a value.
                if *ty == sys::RTE_FLOW_ITEM_TYPE_GRE_KEY && b.mask.iter().all(|&m| m == 0) {
                    return Err("gre_key: unmatched".into());
                }
                item_of(*ty, &b)
            })
            .collect();
        let shown_pattern = match shown_pattern {
            Ok(p) => p,
            Err(e) => {
                drop(nic);
                return refuse(OP, error, e);
            }
        };
        let shown_actions = t.actions[actions]
            .actions
            .iter()
            .filter_map(|(_, fixed)| fixed.clone())
            .collect();
        let table = TemplateTable {
            port: port_id,
            attr: attr_of,
            pattern,
            actions,
            nb_flows: attr.nb_flows,
            used: 0,
            live: true,
        };
        nic.templates.tables.push(table);
        let index = nic.templates.tables.len() - 1;
        nic.events.push(Event::TableCreated {
            port: port_id,
            table: index,
            attr: attr_of,
            nb_flows: attr.nb_flows,
            pattern: shown_pattern,
            actions: shown_actions,
        });
        out = object_ptr(index, TABLE_TAG);
        0
    });
    out
}

/// Destroys template object `index` of `list` (live, on `port`).
fn destroy_object(
    op: &'static str,
    error: *mut sys::rte_flow_error,
    found: Option<usize>,
    live: impl FnOnce(&mut Templates, usize) -> Option<&mut bool>,
) -> c_int {
    let mut nic = nic();
    let Some(flag) = found.and_then(|i| live(&mut nic.templates, i)) else {
        drop(nic);
        return refuse(op, error, "no such live object".into());
    };
    if !*flag {
        drop(nic);
        return refuse(op, error, "destroyed already".into());
    }
    *flag = false;
    0
}

/// Destroys template `i` of the kind `live` picks, unless a live table
/// uses it (`uses` says which template of that kind a table has): mlx5
/// refuses to destroy a template a live table uses.
fn destroy_template(
    op: &'static str,
    error: *mut sys::rte_flow_error,
    i: Option<usize>,
    uses: impl Fn(&TemplateTable) -> usize,
    live: impl FnOnce(&mut Templates, usize) -> Option<&mut bool>,
) -> c_int {
    let used = i.is_some_and(|i| {
        nic()
            .templates
            .tables
            .iter()
            .any(|t| t.live && uses(t) == i)
    });
    if used {
        return refuse(op, error, "a live table uses the template".into());
    }
    destroy_object(op, error, i, live)
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_pattern_template_destroy(
    port_id: u16,
    pattern_template: *mut sys::rte_flow_pattern_template,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_pattern_template_destroy";
    guarded(OP, error, || {
        let i = object_index(pattern_template, PATTERN_TAG);
        destroy_template(
            OP,
            error,
            i,
            |t| t.pattern,
            |t, i| {
                t.patterns
                    .get_mut(i)
                    .filter(|x| x.port == port_id)
                    .map(|x| &mut x.live)
            },
        )
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_actions_template_destroy(
    port_id: u16,
    actions_template: *mut sys::rte_flow_actions_template,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_actions_template_destroy";
    guarded(OP, error, || {
        let i = object_index(actions_template, ACTIONS_TAG);
        destroy_template(
            OP,
            error,
            i,
            |t| t.actions,
            |t, i| {
                t.actions
                    .get_mut(i)
                    .filter(|x| x.port == port_id)
                    .map(|x| &mut x.live)
            },
        )
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_template_table_destroy(
    port_id: u16,
    template_table: *mut sys::rte_flow_template_table,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_template_table_destroy";
    guarded(OP, error, || {
        let i = object_index(template_table, TABLE_TAG);
        // mlx5 refuses to destroy a table that holds rules.
        let used = i.and_then(|i| nic().templates.tables.get(i).map(|t| t.used));
        if used.is_some_and(|u| u > 0) {
            return refuse(OP, error, format!("the table holds {used:?} rules"));
        }
        let ret = destroy_object(OP, error, i, |t, i| {
            t.tables
                .get_mut(i)
                .filter(|x| x.port == port_id)
                .map(|x| &mut x.live)
        });
        if ret == 0 {
            if let Some(i) = i {
                nic().events.push(Event::TableDestroyed(i));
            }
        }
        ret
    })
}

/// The queue `queue` of `port`, if configured, and whether it has room.
fn queue_of(t: &mut Templates, port: u16, queue: u32) -> Option<&mut FlowQueue> {
    t.queues
        .iter_mut()
        .find(|q| q.port == port && q.queue == queue)
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_async_create(
    port_id: u16,
    queue_id: u32,
    op_attr: *const sys::rte_flow_op_attr,
    template_table: *mut sys::rte_flow_template_table,
    pattern: *const sys::rte_flow_item,
    pattern_template_index: u8,
    actions: *const sys::rte_flow_action,
    actions_template_index: u8,
    user_data: *mut c_void,
    error: *mut sys::rte_flow_error,
) -> *mut sys::rte_flow {
    const OP: &str = "rte_flow_async_create";
    let mut out = std::ptr::null_mut();
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        if pattern_template_index != 0 || actions_template_index != 0 {
            return refuse(OP, error, "template index other than 0".into());
        }
        // SAFETY: the caller's op attr.
        let postpone = unsafe { op_attr.as_ref() }.is_some_and(|a| a.postpone() != 0);
        let Some(table) = object_index(template_table, TABLE_TAG) else {
            return refuse(OP, error, format!("not a table: {template_table:p}"));
        };
        let templates = {
            let nic = nic();
            nic.templates
                .tables
                .get(table)
                .filter(|t| t.live && t.port == port_id)
                .map(|t| {
                    (
                        t.clone(),
                        nic.templates.patterns[t.pattern].clone(),
                        nic.templates.actions[t.actions].clone(),
                    )
                })
        };
        let Some((t, p, a)) = templates else {
            return refuse(OP, error, format!("no live table {table} on the port"));
        };
        // SAFETY: rte_flow_async_create's contract: items in the pattern
        // template's order, each spec its type's struct; actions in the
        // actions template's order, each conf its type's struct.
        let rule = match unsafe { decode_async(&t, &p, &a, pattern, actions) } {
            Ok(rule) => rule,
            Err(e) => return refuse(OP, error, e),
        };
        let mut nic = nic();
        if nic.templates.tables[table].used >= t.nb_flows {
            drop(nic);
            return refuse(OP, error, format!("table {table} is full"));
        }
        let Some(q) = queue_of(&mut nic.templates, port_id, queue_id) else {
            drop(nic);
            return refuse(OP, error, format!("no queue {queue_id}"));
        };
        if q.ops.len() >= q.size as usize {
            drop(nic);
            return refuse(OP, error, format!("queue {queue_id} is full"));
        }
        let index = nic.handles.len();
        nic.handles.push(Handle {
            live: true,
            ..Handle::default()
        });
        nic.templates.tables_of.push((index, table));
        nic.templates.tables[table].used += 1;
        let ok = nic.templates.fail_next == 0;
        nic.templates.fail_next = nic.templates.fail_next.saturating_sub(1);
        let q = queue_of(&mut nic.templates, port_id, queue_id).expect("found above");
        q.ops.push(PendingOp {
            user_data: user_data.addr(),
            ok,
            handle: index,
            table,
            destroy: false,
            pushed: !postpone,
        });
        nic.events.push(Event::AsyncCreated {
            port: port_id,
            queue: queue_id,
            table,
            rule,
            handle: index,
        });
        out = handle_ptr(index);
        0
    });
    out
}

/// The rule an async creation asks for: the table's attributes, the
/// pattern template's masks with the rule's values, the actions.
///
/// # Safety
/// `pattern` holds `p.items.len()` items (and END), each spec NULL or its
/// type's struct; `actions` holds `a.actions.len()` actions (and END),
/// each conf its type's struct.
unsafe fn decode_async(
    t: &TemplateTable,
    p: &PatternTemplate,
    a: &ActionsTemplate,
    pattern: *const sys::rte_flow_item,
    actions: *const sys::rte_flow_action,
) -> Result<Rule, String> {
    let mut rule = Rule {
        attr: t.attr,
        pattern: Vec::new(),
        actions: Vec::new(),
    };
    for (i, (ty, mask)) in p.items.iter().enumerate() {
        // SAFETY: the caller's contract: the template's items, in order.
        let item = unsafe { &*pattern.add(i) };
        if item.type_ != *ty {
            return Err(format!("item {i}: type {}, template {ty}", item.type_));
        }
        let b = Bytes {
            // SAFETY: a non-NULL spec is the item's struct.
            spec: unsafe { read_bytes(item.spec, mask.len()) },
            mask: mask.clone(),
        };
        rule.pattern.push(item_of(*ty, &b)?);
    }
    // SAFETY: as above: END after the template's items.
    if unsafe { (*pattern.add(p.items.len())).type_ } != sys::RTE_FLOW_ITEM_TYPE_END {
        return Err("more items than the template's".into());
    }
    for (i, (ty, fixed)) in a.actions.iter().enumerate() {
        // SAFETY: the caller's contract: the template's actions, in order.
        let action = unsafe { &*actions.add(i) };
        if action.type_ != *ty {
            return Err(format!("action {i}: type {}, template {ty}", action.type_));
        }
        // SAFETY: as above.
        let size = unsafe { raw_size(action) };
        if size != a.raw_sizes[i] {
            return Err(format!(
                "action {i}: {size:?} raw bytes, the template's {:?}",
                a.raw_sizes[i]
            ));
        }
        rule.actions.push(match fixed {
            Some(f) => f.clone(),
            // SAFETY: the caller's contract for this action.
            None => unsafe { decode_action(action) }?,
        });
    }
    // SAFETY: as above.
    if unsafe { (*actions.add(a.actions.len())).type_ } != sys::RTE_FLOW_ACTION_TYPE_END {
        return Err("more actions than the template's".into());
    }
    Ok(rule)
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_async_destroy(
    port_id: u16,
    queue_id: u32,
    op_attr: *const sys::rte_flow_op_attr,
    flow: *mut sys::rte_flow,
    user_data: *mut c_void,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_async_destroy";
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        // SAFETY: the caller's op attr.
        let postpone = unsafe { op_attr.as_ref() }.is_some_and(|a| a.postpone() != 0);
        let mut nic = nic();
        let table = handle_index(flow)
            .filter(|&i| nic.handles.get(i).is_some_and(|h| h.live))
            .and_then(|i| {
                nic.templates
                    .tables_of
                    .iter()
                    .find(|(h, _)| *h == i)
                    .map(|&(_, t)| (i, t))
            });
        let Some((index, table)) = table else {
            drop(nic);
            return refuse(OP, error, format!("no live async flow {flow:p}"));
        };
        let Some(q) = queue_of(&mut nic.templates, port_id, queue_id) else {
            drop(nic);
            return refuse(OP, error, format!("no queue {queue_id}"));
        };
        if q.ops.len() >= q.size as usize {
            drop(nic);
            return refuse(OP, error, format!("queue {queue_id} is full"));
        }
        q.ops.push(PendingOp {
            user_data: user_data.addr(),
            ok: true,
            handle: index,
            table,
            destroy: true,
            pushed: !postpone,
        });
        nic.events.push(Event::AsyncDestroyed {
            port: port_id,
            queue: queue_id,
            handle: index,
        });
        0
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_push(
    port_id: u16,
    queue_id: u32,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_push";
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        let mut nic = nic();
        let Some(q) = queue_of(&mut nic.templates, port_id, queue_id) else {
            drop(nic);
            return refuse(OP, error, format!("no queue {queue_id}"));
        };
        for op in &mut q.ops {
            op.pushed = true;
        }
        nic.events.push(Event::Pushed(port_id, queue_id));
        0
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_pull(
    port_id: u16,
    queue_id: u32,
    res: *mut sys::rte_flow_op_result,
    n_res: u16,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_pull";
    guarded(OP, error, || {
        if !is_async(port_id) {
            return no_template_api(error);
        }
        let mut nic = nic();
        let hold = nic.templates.hold;
        let Some(q) = queue_of(&mut nic.templates, port_id, queue_id) else {
            drop(nic);
            return refuse(OP, error, format!("no queue {queue_id}"));
        };
        // Pushed operations complete in order, up to `n_res`; none while
        // the test holds them.
        let n = if hold { 0 } else { usize::MAX };
        let n = q
            .ops
            .iter()
            .take_while(|op| op.pushed)
            .count()
            .min(usize::from(n_res))
            .min(n);
        let done: Vec<PendingOp> = q.ops.drain(..n).collect();
        for (i, op) in done.iter().enumerate() {
            // SAFETY: `res` holds `n_res` entries, and i < n_res.
            unsafe {
                *res.add(i) = sys::rte_flow_op_result {
                    status: if op.ok {
                        sys::RTE_FLOW_OP_SUCCESS
                    } else {
                        sys::RTE_FLOW_OP_ERROR
                    },
                    user_data: std::ptr::without_provenance_mut(op.user_data),
                };
            }
            // A failed creation and a done destruction leave no rule.
            if op.destroy || !op.ok {
                nic.handles[op.handle].live = false;
                let t = &mut nic.templates.tables[op.table];
                t.used = t.used.saturating_sub(1);
            }
        }
        nic.events.push(Event::Pulled(port_id, queue_id, n));
        n as c_int
    })
}
