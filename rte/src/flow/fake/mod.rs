//! A fake NIC at the real call boundary (feature `fake-nic`): definitions
//! of `__wrap_rte_flow_validate`, `_create`, `_destroy` and `_query`, and
//! of the template/async API's (`_info_get`, `_configure`, templates,
//! tables, `_async_create`, `_async_destroy`, `_push`, `_pull`: in
//! `template.rs`) for test binaries linked with
//! `-Wl,--wrap=rte_flow_validate,...` (the `flowcheck` crate), so that
//! every `rte_flow_*` call of the binary lands here instead of in DPDK.
//!
//! The fake reads the C structs it is handed back into a [`Rule`] with its
//! own decoder — header fields at their RFC byte offsets in the item
//! buffers, big-endian, not the lowering's Rust side — records what it was
//! given as [`Event`]s, and answers as a capable NIC would: every rule it
//! can decode validates and is created, with distinct non-NULL handles
//! (never dereferenced); destroys are counted; a COUNT query answers the
//! hits a test set with [`set_hits`] (zero otherwise). What it cannot
//! decode into a `Rule` — a spec without a mask, a range (`last`), a mask
//! on a header field `Rule` has no name for, a partial mask on a field
//! `Rule` matches only exactly, RSS options other than the queues, an
//! unknown item or action — it refuses with `EINVAL` and records as
//! [`Event::Refused`], so a test sees the lowering pass something tgw did
//! not mean. A zero mask decodes as `None` (it matches anything, as `None`
//! does).
//!
//! The state is one process-wide recorder: tests of one binary that look
//! at events hold [`exclusive`] for their whole run. Cargo unifies
//! features, so other binaries of a workspace build may carry these
//! symbols too; without `--wrap` nothing refers to them and they are
//! inert.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use dpdk_sys as sys;

use super::lower::{GRE_CHECKSUM_BIT, GRE_KEY_BIT, GRE_SEQUENCE_BIT};
use super::{Action, Attr, Item, Masked, Rule};

/// What the fake NIC was asked, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Validated(u16, Rule),
    /// The port, the rule and the handle's index (0, 1, … over the
    /// process's life, never reused).
    Created(u16, Rule, usize),
    Destroyed(usize),
    Queried(usize),
    /// A call the fake refused: the function and why.
    Refused(&'static str, String),
    /// `rte_flow_configure` of an async port: its queues and their size,
    /// and the counters asked for.
    Configured {
        port: u16,
        queues: u16,
        queue_size: u32,
        counters: u32,
    },
    /// `rte_flow_template_table_create`: the table's index (0, 1, … over
    /// the process's life), its attributes, its size, and its templates'
    /// pattern (the items with their masks, every value zero) and action
    /// types (the actions as the template gave them).
    TableCreated {
        port: u16,
        table: usize,
        attr: Attr,
        nb_flows: u32,
        pattern: Vec<Item>,
        actions: Vec<Action>,
    },
    TableDestroyed(usize),
    /// `rte_flow_async_create`: the rule as the NIC applies it (the
    /// table's attributes, the pattern template's masks with the rule's
    /// values, the rule's actions), and its handle's index.
    AsyncCreated {
        port: u16,
        queue: u32,
        table: usize,
        rule: Rule,
        handle: usize,
    },
    AsyncDestroyed {
        port: u16,
        queue: u32,
        handle: usize,
    },
    /// `rte_flow_push`, and `rte_flow_pull` with the results it gave.
    Pushed(u16, u32),
    Pulled(u16, u32, usize),
}

struct Nic {
    events: Vec<Event>,
    /// Per handle index: alive, and the hits and bytes a query answers.
    handles: Vec<Handle>,
    /// The template API's state (`__wrap_rte_flow_info_get` and after).
    templates: Templates,
}

#[derive(Clone, Copy, Default)]
struct Handle {
    live: bool,
    hits: u64,
    bytes: u64,
}

static NIC: Mutex<Nic> = Mutex::new(Nic {
    events: Vec::new(),
    handles: Vec::new(),
    templates: Templates::new(),
});
static EXCLUSIVE: Mutex<()> = Mutex::new(());

fn nic() -> MutexGuard<'static, Nic> {
    NIC.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held by a test for its whole run, so that the events of tests running
/// at the same time do not mix.
pub fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The events recorded since the last `take` or `reset`.
pub fn take() -> Vec<Event> {
    std::mem::take(&mut nic().events)
}

/// Forgets the events, every handle's hits and the async switches a
/// test set (failures to come, held completions, refused tables); handles stay valid, and
/// indices keep counting, so that a `Flow` from before still drops.
pub fn reset() {
    let mut nic = nic();
    nic.events.clear();
    nic.templates.reset_switches();
    for h in &mut nic.handles {
        h.hits = 0;
        h.bytes = 0;
    }
}

/// What a COUNT query of the handle of this index answers from now on.
pub fn set_hits(handle_index: usize, hits: u64, bytes: u64) {
    if let Some(h) = nic().handles.get_mut(handle_index) {
        h.hits = hits;
        h.bytes = bytes;
    }
}

/// How many created rules are not destroyed yet.
pub fn live() -> usize {
    nic().handles.iter().filter(|h| h.live).count()
}

/// Handles are addresses no allocation has: index i is (i + 1) * 64.
const HANDLE_STRIDE: usize = 64;

fn handle_ptr(index: usize) -> *mut sys::rte_flow {
    std::ptr::without_provenance_mut((index + 1) * HANDLE_STRIDE)
}

fn handle_index(flow: *mut sys::rte_flow) -> Option<usize> {
    let addr = flow.addr();
    (addr.is_multiple_of(HANDLE_STRIDE) && addr > 0).then(|| addr / HANDLE_STRIDE - 1)
}

/// A refusal: recorded, written to `error`, `-EINVAL` returned.
fn refuse(op: &'static str, error: *mut sys::rte_flow_error, reason: String) -> c_int {
    nic().events.push(Event::Refused(op, reason));
    // SAFETY: `error` is the caller's out-parameter (or NULL, which
    // rte_flow_error_set accepts); the message is a literal. It also sets
    // rte_errno, which a NULL-returning create needs.
    unsafe {
        sys::rte_flow_error_set(
            error,
            libc::EINVAL,
            sys::RTE_FLOW_ERROR_TYPE_UNSPECIFIED,
            std::ptr::null(),
            c"fake NIC: refused (see fake::take)".as_ptr(),
        )
    }
}

/// A synchronous call on a port with the template API, refused as mlx5
/// in HW steering mode refuses it in DPDK 22.11 (`mlx5_flow_create`:
/// ENOTSUP, "Flow non-Q creation not supported"; `mlx5_flow_destroy`
/// alike; `rte_flow_validate` reaches a NULL `validate` op in
/// `mlx5_flow_hw_drv_ops`, which the fake answers ENOTSUP rather than
/// crash): recorded as a refusal, so a test sees tgw ask.
fn not_queued(op: &'static str, error: *mut sys::rte_flow_error, why: &str) -> c_int {
    nic()
        .events
        .push(Event::Refused(op, format!("async port: {why}")));
    // SAFETY: as in `refuse`.
    unsafe {
        sys::rte_flow_error_set(
            error,
            libc::ENOTSUP,
            sys::RTE_FLOW_ERROR_TYPE_UNSPECIFIED,
            std::ptr::null(),
            c"fake NIC: HWS port: no synchronous flow calls".as_ptr(),
        )
    }
}

/// Runs a wrapper's body; a panic in it becomes a refusal, never an
/// unwind into C.
fn guarded(op: &'static str, error: *mut sys::rte_flow_error, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| refuse(op, error, "the fake NIC panicked".into()))
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_validate(
    port_id: u16,
    attr: *const sys::rte_flow_attr,
    pattern: *const sys::rte_flow_item,
    actions: *const sys::rte_flow_action,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_validate";
    guarded(OP, error, || {
        if is_async(port_id) {
            // mlx5 22.11 HWS has no validate op: DPDK would call NULL.
            return not_queued(OP, error, "HWS port: no validate op (mlx5_flow_hw_drv_ops)");
        }
        // SAFETY: rte_flow_validate's contract: attr, an END-terminated
        // pattern and an END-terminated action list, each entry's
        // spec/mask/conf pointing at its type's struct.
        match unsafe { decode(attr, pattern, actions) } {
            Ok(rule) => {
                nic().events.push(Event::Validated(port_id, rule));
                0
            }
            Err(reason) => refuse(OP, error, reason),
        }
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_create(
    port_id: u16,
    attr: *const sys::rte_flow_attr,
    pattern: *const sys::rte_flow_item,
    actions: *const sys::rte_flow_action,
    error: *mut sys::rte_flow_error,
) -> *mut sys::rte_flow {
    const OP: &str = "rte_flow_create";
    let mut handle = std::ptr::null_mut();
    guarded(OP, error, || {
        if is_async(port_id) {
            return not_queued(OP, error, "Flow non-Q creation not supported");
        }
        // SAFETY: as in validate.
        match unsafe { decode(attr, pattern, actions) } {
            Ok(rule) => {
                let mut nic = nic();
                let index = nic.handles.len();
                nic.handles.push(Handle {
                    live: true,
                    ..Handle::default()
                });
                nic.events.push(Event::Created(port_id, rule, index));
                handle = handle_ptr(index);
                0
            }
            Err(reason) => refuse(OP, error, reason),
        }
    });
    handle
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_destroy(
    port_id: u16,
    flow: *mut sys::rte_flow,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_destroy";
    guarded(OP, error, || {
        if is_async(port_id) {
            return not_queued(OP, error, "Flow non-Q destruction not supported");
        }
        let mut nic = nic();
        let Some(index) =
            handle_index(flow).filter(|&i| nic.handles.get(i).is_some_and(|h| h.live))
        else {
            drop(nic);
            return refuse(OP, error, format!("no live flow {flow:p}"));
        };
        nic.handles[index].live = false;
        nic.events.push(Event::Destroyed(index));
        0
    })
}

/// # Safety
/// DPDK's contract for the function it stands in for.
#[no_mangle]
pub unsafe extern "C" fn __wrap_rte_flow_query(
    _port_id: u16,
    flow: *mut sys::rte_flow,
    action: *const sys::rte_flow_action,
    data: *mut c_void,
    error: *mut sys::rte_flow_error,
) -> c_int {
    const OP: &str = "rte_flow_query";
    guarded(OP, error, || {
        // SAFETY: rte_flow_query's contract as mlx5 reads it
        // (`flow_dv_query`, `flow_hw_query`): actions up to END.
        let ty = unsafe { action.as_ref() }.map(|a| a.type_);
        if ty != Some(sys::RTE_FLOW_ACTION_TYPE_COUNT) || data.is_null() {
            return refuse(OP, error, format!("query of action {ty:?}, not COUNT"));
        }
        // SAFETY: as above; a list of one action without END is the
        // caller's breach, which mlx5 would read past.
        let next = unsafe { (*action.add(1)).type_ };
        if next != sys::RTE_FLOW_ACTION_TYPE_END {
            return refuse(OP, error, format!("query: COUNT then type {next}, not END"));
        }
        let mut nic = nic();
        let Some(index) =
            handle_index(flow).filter(|&i| nic.handles.get(i).is_some_and(|h| h.live))
        else {
            drop(nic);
            return refuse(OP, error, format!("no live flow {flow:p}"));
        };
        let h = nic.handles[index];
        nic.events.push(Event::Queried(index));
        // SAFETY: for a COUNT query `data` is a struct rte_flow_query_count
        // the caller owns.
        let out = unsafe { &mut *data.cast::<sys::rte_flow_query_count>() };
        out.set_hits_set(1);
        out.set_bytes_set(1);
        out.hits = h.hits;
        out.bytes = h.bytes;
        0
    })
}

/// Items or actions past this many without an END: a missing terminator.
const MAX_ENTRIES: usize = 64;

/// Reads the rule back from DPDK's structs.
///
/// # Safety
/// The pointers are what `rte_flow_validate`/`_create` take: valid attr,
/// END-terminated arrays, each spec/mask/conf the struct of its type,
/// raw data and RSS queue pointers valid for their sizes.
unsafe fn decode(
    attr: *const sys::rte_flow_attr,
    pattern: *const sys::rte_flow_item,
    actions: *const sys::rte_flow_action,
) -> Result<Rule, String> {
    // SAFETY: the caller's contract.
    let attr = unsafe { attr.as_ref() }.ok_or("NULL attr")?;
    let mut rule = Rule {
        attr: Attr {
            group: attr.group,
            priority: attr.priority,
            ingress: attr.ingress() != 0,
            egress: attr.egress() != 0,
            transfer: attr.transfer() != 0,
        },
        pattern: Vec::new(),
        actions: Vec::new(),
    };
    for i in 0.. {
        if i == MAX_ENTRIES {
            return Err("pattern without END".into());
        }
        // SAFETY: END-terminated, and END not passed yet.
        let item = unsafe { &*pattern.add(i) };
        if item.type_ == sys::RTE_FLOW_ITEM_TYPE_END {
            break;
        }
        // SAFETY: the caller's contract for this item.
        rule.pattern.push(unsafe { decode_item(item) }?);
    }
    for i in 0.. {
        if i == MAX_ENTRIES {
            return Err("actions without END".into());
        }
        // SAFETY: as above.
        let action = unsafe { &*actions.add(i) };
        if action.type_ == sys::RTE_FLOW_ACTION_TYPE_END {
            break;
        }
        // SAFETY: the caller's contract for this action.
        rule.actions.push(unsafe { decode_action(action) }?);
    }
    Ok(rule)
}

/// An item's spec and mask as bytes: the header as it would be on the
/// wire, `size` being the item struct's size.
struct Bytes {
    spec: Vec<u8>,
    mask: Vec<u8>,
}

impl Bytes {
    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// A field matched under any mask: `None` when the mask is zero.
    fn masked<const N: usize>(&self, at: usize) -> Option<Masked<[u8; N]>> {
        let mask: [u8; N] = self.mask[at..at + N].try_into().ok()?;
        let spec: [u8; N] = self.spec[at..at + N].try_into().ok()?;
        (mask != [0; N]).then_some(Masked { spec, mask })
    }

    fn masked16(&self, at: usize) -> Option<Masked<u16>> {
        self.masked::<2>(at).map(|m| Masked {
            spec: u16::from_be_bytes(m.spec),
            mask: u16::from_be_bytes(m.mask),
        })
    }

    fn masked32(&self, at: usize) -> Option<Masked<u32>> {
        self.masked::<4>(at).map(|m| Masked {
            spec: u32::from_be_bytes(m.spec),
            mask: u32::from_be_bytes(m.mask),
        })
    }

    /// A field `Rule` matches only exactly: all-ones mask or none.
    fn exact<const N: usize>(&self, at: usize, name: &str) -> Result<Option<[u8; N]>, String> {
        match self.masked::<N>(at) {
            None => Ok(None),
            Some(m) if m.mask == [0xff; N] => Ok(Some(m.spec)),
            Some(m) => Err(format!("{name}: partial mask {:02x?}", m.mask)),
        }
    }

    /// Refuses a mask on any byte outside the fields `Rule` names.
    /// `used` holds `(start, end)` byte ranges.
    fn only(&self, item: &str, used: &[(usize, usize)]) -> Result<(), String> {
        for (i, &m) in self.mask.iter().enumerate() {
            if m != 0 && !used.iter().any(|&(start, end)| (start..end).contains(&i)) {
                return Err(format!(
                    "{item}: mask on byte {i}, a field tgw does not match"
                ));
            }
        }
        Ok(())
    }
}

/// # Safety
/// `item`'s spec and mask, when not NULL, point at its type's struct.
unsafe fn decode_item(item: &sys::rte_flow_item) -> Result<Item, String> {
    let size = item_size(item.type_)?;
    if !item.last.is_null() {
        return Err(format!("item type {}: a range (last)", item.type_));
    }
    let b = match (item.spec.is_null(), item.mask.is_null()) {
        // "Any header of this type": every field unmatched.
        (true, true) => Bytes {
            spec: vec![0; size],
            mask: vec![0; size],
        },
        (false, false) => Bytes {
            // SAFETY: the caller's contract: both point at `size` bytes.
            spec: unsafe { read_bytes(item.spec, size) },
            // SAFETY: as above.
            mask: unsafe { read_bytes(item.mask, size) },
        },
        _ => return Err(format!("item type {}: spec without mask", item.type_)),
    };
    item_of(item.type_, &b)
}

/// `size` bytes at `p`, or zeros for NULL.
///
/// # Safety
/// `p` is NULL or points at `size` readable bytes.
unsafe fn read_bytes(p: *const c_void, size: usize) -> Vec<u8> {
    if p.is_null() {
        return vec![0; size];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), size) }.to_vec()
}

/// The size of an item type's struct, for the types `Rule` has.
fn item_size(ty: sys::rte_flow_item_type) -> Result<usize, String> {
    Ok(match ty {
        sys::RTE_FLOW_ITEM_TYPE_ETH => size_of::<sys::rte_flow_item_eth>(),
        sys::RTE_FLOW_ITEM_TYPE_IPV4 => size_of::<sys::rte_flow_item_ipv4>(),
        sys::RTE_FLOW_ITEM_TYPE_UDP => size_of::<sys::rte_flow_item_udp>(),
        sys::RTE_FLOW_ITEM_TYPE_TCP => size_of::<sys::rte_flow_item_tcp>(),
        sys::RTE_FLOW_ITEM_TYPE_GRE => size_of::<sys::rte_flow_item_gre>(),
        sys::RTE_FLOW_ITEM_TYPE_GRE_KEY => size_of::<u32>(),
        sys::RTE_FLOW_ITEM_TYPE_MARK => size_of::<sys::rte_flow_item_mark>(),
        sys::RTE_FLOW_ITEM_TYPE_META => size_of::<sys::rte_flow_item_meta>(),
        sys::RTE_FLOW_ITEM_TYPE_INTEGRITY => size_of::<sys::rte_flow_item_integrity>(),
        other => return Err(format!("item type {other}")),
    })
}

/// The item of type `ty` whose header bytes and mask are `b`.
fn item_of(ty: sys::rte_flow_item_type, b: &Bytes) -> Result<Item, String> {
    Ok(match ty {
        // Ethernet (IEEE 802.3): dst 0..6, src 6..12, type 12..14; the
        // VLAN bits after the header must be unmatched.
        sys::RTE_FLOW_ITEM_TYPE_ETH => {
            b.only("eth", &[(0, 14)])?;
            Item::Eth {
                dst: b.masked::<6>(0),
                src: b.masked::<6>(6),
                ether_type: b.exact::<2>(12, "eth type")?.map(u16::from_be_bytes),
            }
        }
        // IPv4 (RFC 791): version and IHL 0, TOS 1, flags and fragment
        // offset 6..8, TTL 8, protocol 9, src 12..16, dst 16..20.
        sys::RTE_FLOW_ITEM_TYPE_IPV4 => {
            b.only("ipv4", &[(0, 2), (6, 10), (12, 20)])?;
            Item::Ipv4 {
                version_ihl: b.exact::<1>(0, "ipv4 version_ihl")?.map(|v| v[0]),
                tos: b.masked::<1>(1).map(|m| Masked {
                    spec: m.spec[0],
                    mask: m.mask[0],
                }),
                fragment_offset: b.masked16(6),
                ttl: b.masked::<1>(8).map(|m| Masked {
                    spec: m.spec[0],
                    mask: m.mask[0],
                }),
                src: b.masked32(12),
                dst: b.masked32(16),
                protocol: b.exact::<1>(9, "ipv4 proto")?.map(|p| p[0]),
            }
        }
        // UDP (RFC 768): src 0..2, dst 2..4.
        sys::RTE_FLOW_ITEM_TYPE_UDP => {
            b.only("udp", &[(0, 4)])?;
            Item::Udp {
                src: b.masked16(0),
                dst: b.masked16(2),
            }
        }
        // TCP (RFC 9293): src 0..2, dst 2..4, flags 13.
        sys::RTE_FLOW_ITEM_TYPE_TCP => {
            b.only("tcp", &[(0, 4), (13, 14)])?;
            Item::Tcp {
                src: b.masked16(0),
                dst: b.masked16(2),
                flags: b.masked::<1>(13).map(|m| Masked {
                    spec: m.spec[0],
                    mask: m.mask[0],
                }),
            }
        }
        // GRE (RFC 2784/2890): flags and version 0..2, protocol 2..4; only
        // the C, K and S bits of the first word may be matched.
        sys::RTE_FLOW_ITEM_TYPE_GRE => {
            b.only("gre", &[(0, 4)])?;
            let mask = Bytes::be16(&b.mask, 0);
            let flags = GRE_CHECKSUM_BIT | GRE_KEY_BIT | GRE_SEQUENCE_BIT;
            if mask & !flags != 0 {
                return Err(format!("gre: mask {mask:#06x} on bits other than C, K, S"));
            }
            let bit = |b_: u16| (mask & b_ != 0).then(|| Bytes::be16(&b.spec, 0) & b_ != 0);
            Item::Gre {
                protocol: b.exact::<2>(2, "gre protocol")?.map(u16::from_be_bytes),
                checksum_present: bit(GRE_CHECKSUM_BIT),
                key_present: bit(GRE_KEY_BIT),
                sequence_present: bit(GRE_SEQUENCE_BIT),
            }
        }
        sys::RTE_FLOW_ITEM_TYPE_GRE_KEY => match b.exact::<4>(0, "gre_key")? {
            Some(k) => Item::GreKey(u32::from_be_bytes(k)),
            None => return Err("gre_key: unmatched".into()),
        },
        // MARK and META are host-order integers, not header fields.
        sys::RTE_FLOW_ITEM_TYPE_MARK => {
            let host = |v: &[u8]| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
            if host(&b.mask) != u32::MAX {
                return Err("mark: not an exact id".into());
            }
            Item::Mark(host(&b.spec))
        }
        sys::RTE_FLOW_ITEM_TYPE_META => {
            let host = |v: &[u8]| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
            Item::Meta(Masked {
                spec: host(&b.spec),
                mask: host(&b.mask),
            })
        }
        // INTEGRITY (DPDK 22.11 rte_flow.h, `struct
        // rte_flow_item_integrity`): the level, a host-order u32 at 0; the
        // checks, a host-order u64 bitfield at 8 (after 4 bytes of
        // padding), from its least significant bit: packet_ok, l2_ok,
        // l3_ok, l4_ok, l2_crc_ok, ipv4_csum_ok, l4_csum_ok, l3_len_ok.
        sys::RTE_FLOW_ITEM_TYPE_INTEGRITY => {
            const L3_OK: u64 = 1 << 2;
            const IPV4_CSUM_OK: u64 = 1 << 5;
            let word = |v: &[u8]| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
            let bits = |v: &[u8]| {
                let mut w = [0; 8];
                w.copy_from_slice(&v[8..16]);
                u64::from_ne_bytes(w)
            };
            if word(&b.mask) != u32::MAX {
                return Err("integrity: level not matched exactly".into());
            }
            let (spec, mask) = (bits(&b.spec), bits(&b.mask));
            if mask & !(L3_OK | IPV4_CSUM_OK) != 0 {
                return Err(format!(
                    "integrity: mask {mask:#x} on checks tgw does not ask"
                ));
            }
            // mlx5: "negative integrity flow is not supported".
            if spec & mask != mask {
                return Err(format!("integrity: spec {spec:#x} asks a failed check"));
            }
            Item::Integrity {
                level: word(&b.spec),
                l3_ok: mask & L3_OK != 0,
                ipv4_csum_ok: mask & IPV4_CSUM_OK != 0,
            }
        }
        _ => unreachable!("sizes matched above"),
    })
}

/// An action's configuration as the struct its type takes.
///
/// # Safety
/// `conf` is NULL or points at a `T`.
unsafe fn conf<T: Copy>(action: &sys::rte_flow_action) -> Result<T, String> {
    // SAFETY: the caller's contract.
    unsafe { action.conf.cast::<T>().as_ref() }
        .copied()
        .ok_or_else(|| format!("action type {}: NULL conf", action.type_))
}

/// A big-endian field read as the bytes the struct holds.
fn be_bytes<T: Copy, const N: usize>(v: &T) -> [u8; N] {
    assert_eq!(size_of::<T>(), N);
    // SAFETY: T is a plain C struct of N bytes (checked above), read as
    // bytes.
    unsafe { std::ptr::from_ref(v).cast::<[u8; N]>().read_unaligned() }
}

/// # Safety
/// `action.conf` points at its type's struct; raw data and RSS queues are
/// valid for their sizes.
unsafe fn decode_action(action: &sys::rte_flow_action) -> Result<Action, String> {
    // The body of an unsafe fn is an unsafe context (edition 2021): every
    // `conf` and raw read below stands on the function's contract.
    Ok(match action.type_ {
        sys::RTE_FLOW_ACTION_TYPE_DROP => Action::Drop,
        sys::RTE_FLOW_ACTION_TYPE_DEC_TTL => Action::DecTtl,
        sys::RTE_FLOW_ACTION_TYPE_COUNT => Action::Count,
        sys::RTE_FLOW_ACTION_TYPE_QUEUE => {
            Action::Queue(conf::<sys::rte_flow_action_queue>(action)?.index)
        }
        sys::RTE_FLOW_ACTION_TYPE_RSS => {
            let rss = conf::<sys::rte_flow_action_rss>(action)?;
            if rss.func != 0 || rss.level != 0 || rss.types != 0 || rss.key_len != 0 {
                return Err("rss: options other than the queues".into());
            }
            if rss.queue.is_null() || rss.queue_num == 0 {
                return Err("rss: no queues".into());
            }
            let queues = std::slice::from_raw_parts(rss.queue, rss.queue_num as usize);
            Action::Rss(queues.to_vec())
        }
        sys::RTE_FLOW_ACTION_TYPE_MARK => {
            Action::Mark(conf::<sys::rte_flow_action_mark>(action)?.id)
        }
        sys::RTE_FLOW_ACTION_TYPE_AGE => {
            Action::Age(conf::<sys::rte_flow_action_age>(action)?.timeout())
        }
        sys::RTE_FLOW_ACTION_TYPE_RAW_DECAP => {
            let raw = conf::<sys::rte_flow_action_raw_decap>(action)?;
            Action::RawDecap(raw_bytes(raw.data, raw.size)?)
        }
        sys::RTE_FLOW_ACTION_TYPE_RAW_ENCAP => {
            let raw = conf::<sys::rte_flow_action_raw_encap>(action)?;
            if !raw.preserve.is_null() {
                return Err("raw_encap: a preserve mask".into());
            }
            Action::RawEncap(raw_bytes(raw.data, raw.size)?)
        }
        sys::RTE_FLOW_ACTION_TYPE_SET_IPV4_SRC => {
            Action::SetIpv4Src(u32::from_be_bytes(be_bytes(&conf::<
                sys::rte_flow_action_set_ipv4,
            >(action)?)))
        }
        sys::RTE_FLOW_ACTION_TYPE_SET_IPV4_DST => {
            Action::SetIpv4Dst(u32::from_be_bytes(be_bytes(&conf::<
                sys::rte_flow_action_set_ipv4,
            >(action)?)))
        }
        sys::RTE_FLOW_ACTION_TYPE_SET_TP_SRC => {
            Action::SetTpSrc(u16::from_be_bytes(be_bytes(&conf::<
                sys::rte_flow_action_set_tp,
            >(action)?)))
        }
        sys::RTE_FLOW_ACTION_TYPE_SET_TP_DST => {
            Action::SetTpDst(u16::from_be_bytes(be_bytes(&conf::<
                sys::rte_flow_action_set_tp,
            >(action)?)))
        }
        sys::RTE_FLOW_ACTION_TYPE_SET_MAC_SRC => {
            Action::SetMacSrc(conf::<sys::rte_flow_action_set_mac>(action)?.mac_addr)
        }
        sys::RTE_FLOW_ACTION_TYPE_SET_MAC_DST => {
            Action::SetMacDst(conf::<sys::rte_flow_action_set_mac>(action)?.mac_addr)
        }
        sys::RTE_FLOW_ACTION_TYPE_PORT_ID => {
            let p = conf::<sys::rte_flow_action_port_id>(action)?;
            if p.original() != 0 {
                return Err("port_id: original".into());
            }
            Action::PortId(p.id)
        }
        sys::RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT => {
            Action::RepresentedPort(conf::<sys::rte_flow_action_ethdev>(action)?.port_id)
        }
        sys::RTE_FLOW_ACTION_TYPE_JUMP => {
            Action::Jump(conf::<sys::rte_flow_action_jump>(action)?.group)
        }
        other => return Err(format!("action type {other}")),
    })
}

/// # Safety
/// `data` holds `size` bytes.
unsafe fn raw_bytes(data: *const u8, size: usize) -> Result<Vec<u8>, String> {
    if data.is_null() || size == 0 {
        return Err("raw action without bytes".into());
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(data, size) }.to_vec())
}

mod template;
pub use template::*;
