//! A fake NIC at the real call boundary (feature `fake-nic`): definitions
//! of `__wrap_rte_flow_validate`, `_create`, `_destroy` and `_query`, and
//! of the template/async API's (`_info_get`, `_configure`, templates,
//! tables, `_async_create`, `_async_destroy`, `_push`, `_pull`: see "The
//! template/async API" below) for test binaries linked with
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
    nic.templates.fail_next = 0;
    nic.templates.hold = false;
    nic.templates.tables_up_to = None;
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

// The template/async API.
//
// Answered as mlx5 in HW steering mode
// (`dv_flow_en=2`, DPDK 22.11 `mlx5_flow_hw.c`) would: on a port a test
// made async ([`set_async`]) `rte_flow_info_get` answers, the port takes
// `rte_flow_configure`, templates and tables; rules enqueued on a flow
// queue complete when pushed and are reported by `rte_flow_pull`. Other
// ports answer ENOSYS, as the virtual devices do; on an async port the
// synchronous calls (`rte_flow_validate`, `_create`, `_destroy`) are
// refused with ENOTSUP, as 22.11's mlx5 HWS refuses them ([`not_queued`]):
// everything tgw makes there must go through templates. Pattern templates keep
// their items' masks only (DPDK: "the spec member of an item is not used");
// a rule's items give their values only (DPDK: "the spec is the only
// relevant member"); actions templates here keep their action types, and
// the values of those whose mask has a conf. The rule recorded is what
// the NIC would apply: the table's attributes, the template's masks with
// the rule's values, the rule's actions.

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

struct Templates {
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
    const fn new() -> Templates {
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

fn is_async(port: u16) -> bool {
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
