//! Rust → C: a [`Rule`] lowered into DPDK's `rte_flow_*` structs for one
//! call.
//!
//! Every item's spec and mask and every action's configuration live in one
//! owned buffer (`Lowered::confs`), filled completely before the item and
//! action arrays take pointers into it and never touched afterwards, so
//! those pointers stay valid for as long as the `Lowered` lives. Byte
//! strings (raw encap/decap data, RSS queue lists) are not copied: they
//! point into the rule, which the `Lowered` borrows.
//!
//! Masks: an item whose fields are all `None` is lowered with NULL spec and
//! mask (DPDK: "any header of this type"). Otherwise both spec and mask are
//! given explicitly — never DPDK's default mask, which for some items covers
//! less than tgw means (IPv4's default mask is the addresses only) — with
//! zero mask bits for every `None` field and the spec as the rule gives it
//! (bits outside the mask are passed as they are). Values are host order in
//! the rule and big-endian in the structs.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr;

use dpdk_sys as sys;

use super::{Action, Attr, FlowError, Item, Masked, Rule};

/// The C (checksum present) bit of GRE's first 16-bit word (RFC 2784).
pub(crate) const GRE_CHECKSUM_BIT: u16 = 0x8000;
/// The K (key present) bit of GRE's first 16-bit word (RFC 2890).
pub(crate) const GRE_KEY_BIT: u16 = 0x2000;
/// The S (sequence number present) bit (RFC 2890).
pub(crate) const GRE_SEQUENCE_BIT: u16 = 0x1000;

/// The largest `Action::Age` timeout: `rte_flow_action_age.timeout` is 24
/// bits wide.
pub(crate) const AGE_MAX: u32 = (1 << 24) - 1;

/// One item spec/mask or one action configuration.
#[derive(Clone, Copy)]
enum Conf {
    Eth(sys::rte_flow_item_eth),
    Ipv4(sys::rte_flow_item_ipv4),
    Udp(sys::rte_flow_item_udp),
    Tcp(sys::rte_flow_item_tcp),
    Gre(sys::rte_flow_item_gre),
    /// `RTE_FLOW_ITEM_TYPE_GRE_KEY`'s spec is a bare `rte_be32_t`.
    Be32(u32),
    ItemMark(sys::rte_flow_item_mark),
    Integrity(sys::rte_flow_item_integrity),
    Meta(sys::rte_flow_item_meta),
    Queue(sys::rte_flow_action_queue),
    Rss(sys::rte_flow_action_rss),
    Mark(sys::rte_flow_action_mark),
    Count(sys::rte_flow_action_count),
    Age(sys::rte_flow_action_age),
    RawDecap(sys::rte_flow_action_raw_decap),
    RawEncap(sys::rte_flow_action_raw_encap),
    SetIpv4(sys::rte_flow_action_set_ipv4),
    SetTp(sys::rte_flow_action_set_tp),
    SetMac(sys::rte_flow_action_set_mac),
    PortId(sys::rte_flow_action_port_id),
    Ethdev(sys::rte_flow_action_ethdev),
    Jump(sys::rte_flow_action_jump),
}

impl Conf {
    /// The address DPDK reads the struct at.
    fn ptr(&self) -> *const c_void {
        match self {
            Conf::Eth(c) => ptr::from_ref(c).cast(),
            Conf::Ipv4(c) => ptr::from_ref(c).cast(),
            Conf::Udp(c) => ptr::from_ref(c).cast(),
            Conf::Tcp(c) => ptr::from_ref(c).cast(),
            Conf::Gre(c) => ptr::from_ref(c).cast(),
            Conf::Be32(c) => ptr::from_ref(c).cast(),
            Conf::ItemMark(c) => ptr::from_ref(c).cast(),
            Conf::Integrity(c) => ptr::from_ref(c).cast(),
            Conf::Meta(c) => ptr::from_ref(c).cast(),
            Conf::Queue(c) => ptr::from_ref(c).cast(),
            Conf::Rss(c) => ptr::from_ref(c).cast(),
            Conf::Mark(c) => ptr::from_ref(c).cast(),
            Conf::Count(c) => ptr::from_ref(c).cast(),
            Conf::Age(c) => ptr::from_ref(c).cast(),
            Conf::RawDecap(c) => ptr::from_ref(c).cast(),
            Conf::RawEncap(c) => ptr::from_ref(c).cast(),
            Conf::SetIpv4(c) => ptr::from_ref(c).cast(),
            Conf::SetTp(c) => ptr::from_ref(c).cast(),
            Conf::SetMac(c) => ptr::from_ref(c).cast(),
            Conf::PortId(c) => ptr::from_ref(c).cast(),
            Conf::Ethdev(c) => ptr::from_ref(c).cast(),
            Conf::Jump(c) => ptr::from_ref(c).cast(),
        }
    }
}

/// A rule as DPDK takes it: attributes, END-terminated item and action
/// arrays, and the buffer they point into.
pub(crate) struct Lowered<'r> {
    pub attr: sys::rte_flow_attr,
    pub items: Vec<sys::rte_flow_item>,
    pub actions: Vec<sys::rte_flow_action>,
    /// Pointed into by `items` and `actions`; not read from Rust, only kept
    /// alive (its heap block does not move when the `Lowered` does).
    _confs: Vec<Conf>,
    /// Raw bytes and queue lists point into the rule.
    _rule: PhantomData<&'r Rule>,
}

/// Where an item's or action's configuration sits in the buffer.
enum Slot {
    None,
    /// Spec at this index, mask at the next.
    SpecMask(usize),
    Conf(usize),
}

impl<'r> Lowered<'r> {
    /// Lowers `rule`, or refuses it before DPDK sees it when it is
    /// malformed in a way tgw can tell (see [`check`]).
    pub fn new(op: &'static str, rule: &'r Rule) -> Result<Lowered<'r>, FlowError> {
        check(op, rule)?;
        let mut confs = Vec::with_capacity(2 * rule.pattern.len() + rule.actions.len());
        let item_slots: Vec<(sys::rte_flow_item_type, Slot)> = rule
            .pattern
            .iter()
            .map(|item| {
                let (ty, pair) = lower_item(item);
                let slot = match pair {
                    Some((spec, mask)) => {
                        confs.push(spec);
                        confs.push(mask);
                        Slot::SpecMask(confs.len() - 2)
                    }
                    None => Slot::None,
                };
                (ty, slot)
            })
            .collect();
        let action_slots: Vec<(sys::rte_flow_action_type, Slot)> = rule
            .actions
            .iter()
            .map(|action| {
                let (ty, conf) = lower_action(action);
                let slot = match conf {
                    Some(conf) => {
                        confs.push(conf);
                        Slot::Conf(confs.len() - 1)
                    }
                    None => Slot::None,
                };
                (ty, slot)
            })
            .collect();

        // From here on `confs` is only read: the pointers below stay valid.
        let at = |i: usize| confs[i].ptr();
        let mut items: Vec<sys::rte_flow_item> = item_slots
            .iter()
            .map(|(ty, slot)| {
                let (spec, mask) = match *slot {
                    Slot::SpecMask(i) => (at(i), at(i + 1)),
                    _ => (ptr::null(), ptr::null()),
                };
                sys::rte_flow_item {
                    type_: *ty,
                    spec,
                    last: ptr::null(),
                    mask,
                }
            })
            .collect();
        items.push(sys::rte_flow_item {
            type_: sys::RTE_FLOW_ITEM_TYPE_END,
            ..Default::default()
        });
        let mut actions: Vec<sys::rte_flow_action> = action_slots
            .iter()
            .map(|(ty, slot)| sys::rte_flow_action {
                type_: *ty,
                conf: match *slot {
                    Slot::Conf(i) => at(i),
                    _ => ptr::null(),
                },
            })
            .collect();
        actions.push(sys::rte_flow_action {
            type_: sys::RTE_FLOW_ACTION_TYPE_END,
            conf: ptr::null(),
        });
        Ok(Lowered {
            attr: lower_attr(&rule.attr),
            items,
            actions,
            _confs: confs,
            _rule: PhantomData,
        })
    }
}

/// Refuses what no NIC would take and tgw can tell without asking one:
/// empty raw encap/decap data or RSS queue list, an AGE timeout wider than
/// its 24-bit field, a GRE_KEY not right after a GRE item, and a transfer
/// rule that also says ingress or egress (DPDK 22.11's ethdev layer
/// refuses those).
pub(crate) fn check(op: &'static str, rule: &Rule) -> Result<(), FlowError> {
    let refuse = |kind: u32, message: &str| {
        Err(FlowError {
            op,
            errno: libc::EINVAL,
            kind,
            message: message.to_owned(),
        })
    };
    if rule.attr.transfer && (rule.attr.ingress || rule.attr.egress) {
        return refuse(
            sys::RTE_FLOW_ERROR_TYPE_ATTR,
            "a transfer rule cannot also be ingress or egress",
        );
    }
    for (i, item) in rule.pattern.iter().enumerate() {
        if matches!(item, Item::GreKey(_))
            && !matches!(
                i.checked_sub(1).map(|p| &rule.pattern[p]),
                Some(Item::Gre { .. })
            )
        {
            return refuse(
                sys::RTE_FLOW_ERROR_TYPE_ITEM,
                "a GRE_KEY item must follow a GRE item",
            );
        }
    }
    for action in &rule.actions {
        match action {
            Action::RawDecap(b) if b.is_empty() => {
                return refuse(
                    sys::RTE_FLOW_ERROR_TYPE_ACTION_CONF,
                    "raw decap of no bytes",
                )
            }
            Action::RawEncap(b) if b.is_empty() => {
                return refuse(
                    sys::RTE_FLOW_ERROR_TYPE_ACTION_CONF,
                    "raw encap of no bytes",
                )
            }
            Action::Rss(q) if q.is_empty() => {
                return refuse(sys::RTE_FLOW_ERROR_TYPE_ACTION_CONF, "RSS over no queues")
            }
            Action::Rss(q) if u32::try_from(q.len()).is_err() => {
                return refuse(
                    sys::RTE_FLOW_ERROR_TYPE_ACTION_CONF,
                    "RSS over too many queues",
                )
            }
            Action::Age(t) if *t > AGE_MAX => {
                return refuse(
                    sys::RTE_FLOW_ERROR_TYPE_ACTION_CONF,
                    "age timeout above 2^24-1 seconds",
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn lower_attr(attr: &Attr) -> sys::rte_flow_attr {
    let mut a = sys::rte_flow_attr {
        group: attr.group,
        priority: attr.priority,
        ..Default::default()
    };
    a.set_ingress(attr.ingress.into());
    a.set_egress(attr.egress.into());
    a.set_transfer(attr.transfer.into());
    a
}

/// `(spec, mask)` of an optional masked field: zero and zero when absent.
fn split<T: Copy + Default>(field: Option<Masked<T>>) -> (T, T) {
    field.map_or((T::default(), T::default()), |m| (m.spec, m.mask))
}

/// An exact-or-nothing field as a masked one.
fn exact<T: Copy>(field: Option<T>, all: T) -> Option<Masked<T>> {
    field.map(|spec| Masked { spec, mask: all })
}

fn lower_item(item: &Item) -> (sys::rte_flow_item_type, Option<(Conf, Conf)>) {
    match *item {
        Item::Eth {
            dst,
            src,
            ether_type,
        } => {
            if dst.is_none() && src.is_none() && ether_type.is_none() {
                return (sys::RTE_FLOW_ITEM_TYPE_ETH, None);
            }
            let eth = |dst: [u8; 6], src: [u8; 6], ty: u16| {
                let mut e = sys::rte_flow_item_eth::default();
                e.__bindgen_anon_1.hdr = sys::rte_ether_hdr {
                    dst_addr: sys::rte_ether_addr { addr_bytes: dst },
                    src_addr: sys::rte_ether_addr { addr_bytes: src },
                    ether_type: ty.to_be(),
                };
                Conf::Eth(e)
            };
            let (d, dm) = split(dst);
            let (s, sm) = split(src);
            let (t, tm) = split(exact(ether_type, u16::MAX));
            (
                sys::RTE_FLOW_ITEM_TYPE_ETH,
                Some((eth(d, s, t), eth(dm, sm, tm))),
            )
        }
        Item::Ipv4 {
            version_ihl,
            tos,
            fragment_offset,
            ttl,
            src,
            dst,
            protocol,
        } => {
            if version_ihl.is_none()
                && tos.is_none()
                && fragment_offset.is_none()
                && ttl.is_none()
                && src.is_none()
                && dst.is_none()
                && protocol.is_none()
            {
                return (sys::RTE_FLOW_ITEM_TYPE_IPV4, None);
            }
            let ip = |vi: u8, tos: u8, frag: u16, ttl: u8, src: u32, dst: u32, proto: u8| {
                let mut i = sys::rte_flow_item_ipv4::default();
                i.hdr.__bindgen_anon_1.version_ihl = vi;
                i.hdr.type_of_service = tos;
                i.hdr.fragment_offset = frag.to_be();
                i.hdr.time_to_live = ttl;
                i.hdr.src_addr = src.to_be();
                i.hdr.dst_addr = dst.to_be();
                i.hdr.next_proto_id = proto;
                Conf::Ipv4(i)
            };
            let (v, vm) = split(exact(version_ihl, u8::MAX));
            let (t, tm) = split(tos);
            let (f, fm) = split(fragment_offset);
            let (l, lm) = split(ttl);
            let (s, sm) = split(src);
            let (d, dm) = split(dst);
            let (p, pm) = split(exact(protocol, u8::MAX));
            (
                sys::RTE_FLOW_ITEM_TYPE_IPV4,
                Some((ip(v, t, f, l, s, d, p), ip(vm, tm, fm, lm, sm, dm, pm))),
            )
        }
        Item::Udp { src, dst } => {
            if src.is_none() && dst.is_none() {
                return (sys::RTE_FLOW_ITEM_TYPE_UDP, None);
            }
            let udp = |src: u16, dst: u16| {
                let mut u = sys::rte_flow_item_udp::default();
                u.hdr.src_port = src.to_be();
                u.hdr.dst_port = dst.to_be();
                Conf::Udp(u)
            };
            let (s, sm) = split(src);
            let (d, dm) = split(dst);
            (sys::RTE_FLOW_ITEM_TYPE_UDP, Some((udp(s, d), udp(sm, dm))))
        }
        Item::Tcp { src, dst, flags } => {
            if src.is_none() && dst.is_none() && flags.is_none() {
                return (sys::RTE_FLOW_ITEM_TYPE_TCP, None);
            }
            let tcp = |src: u16, dst: u16, flags: u8| {
                let mut t = sys::rte_flow_item_tcp::default();
                t.hdr.src_port = src.to_be();
                t.hdr.dst_port = dst.to_be();
                t.hdr.tcp_flags = flags;
                Conf::Tcp(t)
            };
            let (s, sm) = split(src);
            let (d, dm) = split(dst);
            let (f, fm) = split(flags);
            (
                sys::RTE_FLOW_ITEM_TYPE_TCP,
                Some((tcp(s, d, f), tcp(sm, dm, fm))),
            )
        }
        Item::Gre {
            protocol,
            checksum_present,
            key_present,
            sequence_present,
        } => {
            if protocol.is_none()
                && checksum_present.is_none()
                && key_present.is_none()
                && sequence_present.is_none()
            {
                return (sys::RTE_FLOW_ITEM_TYPE_GRE, None);
            }
            let gre = |word: u16, proto: u16| {
                Conf::Gre(sys::rte_flow_item_gre {
                    c_rsvd0_ver: word.to_be(),
                    protocol: proto.to_be(),
                })
            };
            let (p, pm) = split(exact(protocol, u16::MAX));
            // Each flag bit given is matched, set or clear, under its own
            // mask bit of the first word.
            let (mut w, mut wm) = (0u16, 0u16);
            for (flag, bit) in [
                (checksum_present, GRE_CHECKSUM_BIT),
                (key_present, GRE_KEY_BIT),
                (sequence_present, GRE_SEQUENCE_BIT),
            ] {
                if let Some(set) = flag {
                    wm |= bit;
                    if set {
                        w |= bit;
                    }
                }
            }
            (sys::RTE_FLOW_ITEM_TYPE_GRE, Some((gre(w, p), gre(wm, pm))))
        }
        Item::GreKey(key) => (
            sys::RTE_FLOW_ITEM_TYPE_GRE_KEY,
            Some((Conf::Be32(key.to_be()), Conf::Be32(u32::MAX))),
        ),
        // The level is matched exactly (as testpmd's `level is N` gives
        // it); the checks asked for are set in both spec and mask.
        Item::Integrity {
            level,
            l3_ok,
            ipv4_csum_ok,
        } => {
            let integrity = |level: u32| {
                let mut bits = sys::rte_flow_item_integrity__bindgen_ty_1__bindgen_ty_1::default();
                bits.set_l3_ok(l3_ok.into());
                bits.set_ipv4_csum_ok(ipv4_csum_ok.into());
                let i = sys::rte_flow_item_integrity {
                    level,
                    __bindgen_anon_1: sys::rte_flow_item_integrity__bindgen_ty_1 {
                        __bindgen_anon_1: bits,
                    },
                };
                Conf::Integrity(i)
            };
            (
                sys::RTE_FLOW_ITEM_TYPE_INTEGRITY,
                Some((integrity(level), integrity(u32::MAX))),
            )
        }
        Item::Mark(id) => (
            sys::RTE_FLOW_ITEM_TYPE_MARK,
            Some((
                Conf::ItemMark(sys::rte_flow_item_mark { id }),
                Conf::ItemMark(sys::rte_flow_item_mark { id: u32::MAX }),
            )),
        ),
        // META's data is host order in DPDK (it is not a header field).
        Item::Meta(m) => (
            sys::RTE_FLOW_ITEM_TYPE_META,
            Some((
                Conf::Meta(sys::rte_flow_item_meta { data: m.spec }),
                Conf::Meta(sys::rte_flow_item_meta { data: m.mask }),
            )),
        ),
    }
}

fn lower_action(action: &Action) -> (sys::rte_flow_action_type, Option<Conf>) {
    match action {
        Action::Drop => (sys::RTE_FLOW_ACTION_TYPE_DROP, None),
        Action::Queue(index) => (
            sys::RTE_FLOW_ACTION_TYPE_QUEUE,
            Some(Conf::Queue(sys::rte_flow_action_queue { index: *index })),
        ),
        Action::Rss(queues) => (
            sys::RTE_FLOW_ACTION_TYPE_RSS,
            // Default hash function, outermost level, the PMD's default
            // types (0) and key (NULL): only the queues are tgw's choice.
            Some(Conf::Rss(sys::rte_flow_action_rss {
                queue_num: u32::try_from(queues.len()).unwrap_or(u32::MAX),
                queue: queues.as_ptr(),
                ..Default::default()
            })),
        ),
        Action::Mark(id) => (
            sys::RTE_FLOW_ACTION_TYPE_MARK,
            Some(Conf::Mark(sys::rte_flow_action_mark { id: *id })),
        ),
        Action::Count => (
            sys::RTE_FLOW_ACTION_TYPE_COUNT,
            Some(Conf::Count(sys::rte_flow_action_count { id: 0 })),
        ),
        Action::Age(timeout) => {
            let mut age = sys::rte_flow_action_age::default();
            age.set_timeout(*timeout);
            (sys::RTE_FLOW_ACTION_TYPE_AGE, Some(Conf::Age(age)))
        }
        // DPDK's raw actions take `uint8_t *` but only read the bytes.
        Action::RawDecap(bytes) => (
            sys::RTE_FLOW_ACTION_TYPE_RAW_DECAP,
            Some(Conf::RawDecap(sys::rte_flow_action_raw_decap {
                data: bytes.as_ptr().cast_mut(),
                size: bytes.len(),
            })),
        ),
        Action::RawEncap(bytes) => (
            sys::RTE_FLOW_ACTION_TYPE_RAW_ENCAP,
            Some(Conf::RawEncap(sys::rte_flow_action_raw_encap {
                data: bytes.as_ptr().cast_mut(),
                preserve: ptr::null_mut(),
                size: bytes.len(),
            })),
        ),
        Action::SetIpv4Src(a) => (sys::RTE_FLOW_ACTION_TYPE_SET_IPV4_SRC, Some(set_ipv4(*a))),
        Action::SetIpv4Dst(a) => (sys::RTE_FLOW_ACTION_TYPE_SET_IPV4_DST, Some(set_ipv4(*a))),
        Action::SetTpSrc(p) => (sys::RTE_FLOW_ACTION_TYPE_SET_TP_SRC, Some(set_tp(*p))),
        Action::SetTpDst(p) => (sys::RTE_FLOW_ACTION_TYPE_SET_TP_DST, Some(set_tp(*p))),
        Action::SetMacSrc(m) => (
            sys::RTE_FLOW_ACTION_TYPE_SET_MAC_SRC,
            Some(Conf::SetMac(sys::rte_flow_action_set_mac { mac_addr: *m })),
        ),
        Action::SetMacDst(m) => (
            sys::RTE_FLOW_ACTION_TYPE_SET_MAC_DST,
            Some(Conf::SetMac(sys::rte_flow_action_set_mac { mac_addr: *m })),
        ),
        Action::DecTtl => (sys::RTE_FLOW_ACTION_TYPE_DEC_TTL, None),
        Action::PortId(id) => (
            sys::RTE_FLOW_ACTION_TYPE_PORT_ID,
            Some(Conf::PortId(sys::rte_flow_action_port_id {
                id: *id,
                ..Default::default()
            })),
        ),
        Action::RepresentedPort(port_id) => (
            sys::RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT,
            Some(Conf::Ethdev(sys::rte_flow_action_ethdev {
                port_id: *port_id,
            })),
        ),
        Action::Jump(group) => (
            sys::RTE_FLOW_ACTION_TYPE_JUMP,
            Some(Conf::Jump(sys::rte_flow_action_jump { group: *group })),
        ),
    }
}

fn set_ipv4(addr: u32) -> Conf {
    Conf::SetIpv4(sys::rte_flow_action_set_ipv4 {
        ipv4_addr: addr.to_be(),
    })
}

fn set_tp(port: u16) -> Conf {
    Conf::SetTp(sys::rte_flow_action_set_tp { port: port.to_be() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An integrity item reaches DPDK as `struct rte_flow_item_integrity`
    /// lays it out (DPDK 22.11 `rte_flow.h`): the level a u32 at byte 0,
    /// the checks a u64 bitfield at byte 8, ipv4_csum_ok bit 5 and l3_ok
    /// bit 2; the level matched exactly, the checks asked in spec and
    /// mask alike.
    #[test]
    fn an_integrity_item_is_lowered_to_the_c_layout() {
        let rule = Rule {
            attr: Attr::INGRESS,
            pattern: vec![Item::Integrity {
                level: 2,
                l3_ok: false,
                ipv4_csum_ok: true,
            }],
            actions: vec![Action::Drop],
        };
        let low = Lowered::new("test", &rule).unwrap();
        let item = &low.items[0];
        assert_eq!(item.type_, sys::RTE_FLOW_ITEM_TYPE_INTEGRITY);
        let bytes = |p: *const c_void| {
            // SAFETY: the lowering points spec and mask at a
            // `rte_flow_item_integrity`, 16 bytes, alive with `low`.
            unsafe { std::slice::from_raw_parts(p.cast::<u8>(), 16) }.to_vec()
        };
        let (spec, mask) = (bytes(item.spec), bytes(item.mask));
        assert_eq!(spec[0..4], 2u32.to_ne_bytes());
        assert_eq!(spec[8..16], (1u64 << 5).to_ne_bytes());
        assert_eq!(mask[0..4], u32::MAX.to_ne_bytes());
        assert_eq!(mask[8..16], (1u64 << 5).to_ne_bytes());
    }
}
