//! A [`Rule`] as `dpdk-testpmd` commands (the syntax of DPDK 22.11's
//! `app/test-pmd/cmdline_flow.c`), checked against a real testpmd by
//! `rte/tests/testpmd_syntax.rs`.
//!
//! A field matched exactly prints as `FIELD is V`, a masked one as
//! `FIELD spec V FIELD mask M`; an item with no field prints bare (NULL
//! spec: any header of that type), as the lowering passes it. Raw
//! encap/decap data becomes a `set raw_encap N … / end_set` (or
//! `raw_decap`) line of header items that testpmd turns back into exactly
//! the same bytes: Ethernet, then IPv4 (no options), GRE (no checksum or
//! sequence number) with its key, then an inner Ethernet after a
//! transparent-Ethernet GRE. Every field is written, zeros too, because
//! testpmd fills an item given no field with its default mask (all ones).
//! Bytes that do not parse as those headers, or an IPv4 header whose total
//! length or checksum is not zero (testpmd has no field for them; the NIC
//! fills both on encap), print as a `#` comment line with the hex bytes
//! instead, which testpmd skips.

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::lower::GRE_KEY_BIT;
use super::{Action, Attr, Item, Masked, Rule};

/// GRE's protocol for a carried Ethernet frame (gretap).
const TRANSPARENT_ETHERNET: u16 = 0x6558;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_GRE: u8 = 47;

/// The longest line testpmd reads whole: its command line buffer
/// (`RDLINE_BUF_SIZE` in DPDK's cmdline library) is 512 bytes, newline
/// and NUL included; it cuts a longer line there.
pub const TESTPMD_LINE_MAX: usize = 510;

pub(super) fn render(rule: &Rule, port: u16) -> String {
    let mut sets = String::new();
    let mut raw_index = 0;
    let actions: Vec<String> = rule
        .actions
        .iter()
        .map(|a| action_text(a, &mut raw_index, &mut sets))
        .collect();
    let pattern: Vec<String> = rule.pattern.iter().map(item_text).collect();
    let mut create = String::new();
    let _ = write!(
        create,
        "flow create {port} {}pattern ",
        attr_text(&rule.attr)
    );
    for item in &pattern {
        create.push_str(item);
        create.push_str(" / ");
    }
    create.push_str("end actions ");
    for action in &actions {
        create.push_str(action);
        create.push_str(" / ");
    }
    create.push_str("end");
    let mut out = sets;
    if create.len() > TESTPMD_LINE_MAX {
        // Printed all the same (it is the rule tgw installs), but an
        // operator pasting it must know testpmd will not read it whole.
        let _ = writeln!(
            out,
            "# the next command is {} characters: testpmd reads {TESTPMD_LINE_MAX} a line and cuts the rest",
            create.len()
        );
    }
    out.push_str(&create);
    out.push('\n');
    out
}

/// A raw action's `set` line (appended to `sets`) under the next index.
fn raw_text(kind: &str, bytes: &[u8], raw_index: &mut usize, sets: &mut String) -> String {
    let index = *raw_index;
    *raw_index += 1;
    match raw_items(bytes) {
        Some(items) => {
            let _ = writeln!(sets, "set {kind} {index} {items} / end_set");
        }
        None => {
            let _ = writeln!(
                sets,
                "# {kind} {index}: {} bytes testpmd items cannot express: {}",
                bytes.len(),
                hex(bytes)
            );
        }
    }
    format!("{kind} index {index}")
}

fn attr_text(attr: &Attr) -> String {
    let mut s = String::new();
    for (on, word) in [
        (attr.ingress, "ingress"),
        (attr.egress, "egress"),
        (attr.transfer, "transfer"),
    ] {
        if on {
            s.push_str(word);
            s.push(' ');
        }
    }
    let _ = write!(s, "group {} priority {} ", attr.group, attr.priority);
    s
}

/// Appends ` NAME is V` or ` NAME spec V NAME mask M`.
fn field<T: Copy + PartialEq>(
    out: &mut String,
    name: &str,
    m: Option<Masked<T>>,
    all: T,
    show: impl Fn(T) -> String,
) {
    let Some(m) = m else { return };
    if m.mask == all {
        let _ = write!(out, " {name} is {}", show(m.spec));
    } else {
        let _ = write!(
            out,
            " {name} spec {} {name} mask {}",
            show(m.spec),
            show(m.mask)
        );
    }
}

fn exact<T>(v: Option<T>, all: T) -> Option<Masked<T>> {
    v.map(|spec| Masked { spec, mask: all })
}

fn mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn ip(a: u32) -> String {
    Ipv4Addr::from(a).to_string()
}

fn item_text(item: &Item) -> String {
    let mut s = String::new();
    match *item {
        Item::Eth {
            dst,
            src,
            ether_type,
        } => {
            s.push_str("eth");
            field(&mut s, "dst", dst, [0xff; 6], mac);
            field(&mut s, "src", src, [0xff; 6], mac);
            field(&mut s, "type", exact(ether_type, u16::MAX), u16::MAX, |t| {
                format!("{t:#06x}")
            });
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
            s.push_str("ipv4");
            field(
                &mut s,
                "version_ihl",
                exact(version_ihl, u8::MAX),
                u8::MAX,
                |v| format!("{v:#04x}"),
            );
            field(&mut s, "tos", tos, u8::MAX, |t| format!("{t:#04x}"));
            field(&mut s, "fragment_offset", fragment_offset, u16::MAX, |f| {
                format!("{f:#06x}")
            });
            field(&mut s, "ttl", ttl, u8::MAX, |t| format!("{t:#04x}"));
            field(&mut s, "src", src, u32::MAX, ip);
            field(&mut s, "dst", dst, u32::MAX, ip);
            field(&mut s, "proto", exact(protocol, u8::MAX), u8::MAX, |p| {
                p.to_string()
            });
        }
        Item::Udp { src, dst } => {
            s.push_str("udp");
            field(&mut s, "src", src, u16::MAX, |p| p.to_string());
            field(&mut s, "dst", dst, u16::MAX, |p| p.to_string());
        }
        Item::Tcp { src, dst, flags } => {
            s.push_str("tcp");
            field(&mut s, "src", src, u16::MAX, |p| p.to_string());
            field(&mut s, "dst", dst, u16::MAX, |p| p.to_string());
            field(&mut s, "flags", flags, u8::MAX, |f| format!("{f:#04x}"));
        }
        Item::Gre {
            protocol,
            checksum_present,
            key_present,
            sequence_present,
        } => {
            s.push_str("gre");
            field(
                &mut s,
                "protocol",
                exact(protocol, u16::MAX),
                u16::MAX,
                |p| format!("{p:#06x}"),
            );
            for (name, bit) in [
                ("c_bit", checksum_present),
                ("k_bit", key_present),
                ("s_bit", sequence_present),
            ] {
                if let Some(set) = bit {
                    let _ = write!(s, " {name} is {}", u8::from(set));
                }
            }
        }
        Item::GreKey(k) => {
            let _ = write!(s, "gre_key value is {k}");
        }
        // testpmd's `value` is the whole 64-bit word: `value is` would
        // match every other check clear too, so spec and mask apart.
        Item::Integrity {
            level,
            l3_ok,
            ipv4_csum_ok,
        } => {
            let bits = integrity_bits(l3_ok, ipv4_csum_ok);
            let _ = write!(
                s,
                "integrity level is {level} value spec {bits:#x} value mask {bits:#x}"
            );
        }
        Item::Mark(id) => {
            let _ = write!(s, "mark id is {id}");
        }
        Item::Meta(m) => {
            s.push_str("meta");
            field(&mut s, "data", Some(m), u32::MAX, |d| format!("{d:#x}"));
        }
    }
    s
}

/// `struct rte_flow_item_integrity`'s bits (DPDK 22.11 `rte_flow.h`,
/// from the least significant: packet_ok, l2_ok, l3_ok, l4_ok,
/// l2_crc_ok, ipv4_csum_ok, …) as testpmd's `value` word.
fn integrity_bits(l3_ok: bool, ipv4_csum_ok: bool) -> u64 {
    (u64::from(l3_ok) << 2) | (u64::from(ipv4_csum_ok) << 5)
}

fn action_text(action: &Action, raw_index: &mut usize, sets: &mut String) -> String {
    match action {
        Action::Drop => "drop".into(),
        Action::Queue(q) => format!("queue index {q}"),
        Action::Rss(queues) => {
            let mut s = String::from("rss queues");
            for q in queues {
                let _ = write!(s, " {q}");
            }
            s.push_str(" end");
            s
        }
        Action::Mark(id) => format!("mark id {id}"),
        Action::Count => "count".into(),
        Action::Age(t) => format!("age timeout {t}"),
        Action::SetIpv4Src(a) => format!("set_ipv4_src ipv4_addr {}", ip(*a)),
        Action::SetIpv4Dst(a) => format!("set_ipv4_dst ipv4_addr {}", ip(*a)),
        Action::SetTpSrc(p) => format!("set_tp_src port {p}"),
        Action::SetTpDst(p) => format!("set_tp_dst port {p}"),
        Action::SetMacSrc(m) => format!("set_mac_src mac_addr {}", mac(*m)),
        Action::SetMacDst(m) => format!("set_mac_dst mac_addr {}", mac(*m)),
        Action::DecTtl => "dec_ttl".into(),
        Action::PortId(id) => format!("port_id id {id}"),
        Action::RepresentedPort(p) => format!("represented_port ethdev_port_id {p}"),
        Action::Jump(g) => format!("jump group {g}"),
        Action::RawDecap(b) => raw_text("raw_decap", b, raw_index, sets),
        Action::RawEncap(b) => raw_text("raw_encap", b, raw_index, sets),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The header items of a `set raw_encap/raw_decap` line that make testpmd
/// build exactly `bytes`, or `None` when they cannot.
fn raw_items(bytes: &[u8]) -> Option<String> {
    let mut items = Vec::new();
    let mut rest = bytes;
    loop {
        // Ethernet, outer or inner.
        if rest.len() < 14 {
            return None;
        }
        let ty = be16(rest, 12);
        items.push(format!(
            "eth dst is {} src is {} type is {ty:#06x}",
            mac(rest[0..6].try_into().ok()?),
            mac(rest[6..12].try_into().ok()?)
        ));
        rest = &rest[14..];
        if rest.is_empty() {
            break;
        }
        if ty != ETHERTYPE_IPV4 || rest.len() < 20 {
            return None;
        }
        // IPv4 without options; total length and checksum have no testpmd
        // field, so they must be the zeros testpmd writes.
        let h = &rest[..20];
        if h[0] != 0x45 || be16(h, 2) != 0 || be16(h, 10) != 0 {
            return None;
        }
        items.push(format!(
            "ipv4 version_ihl is 0x45 tos is {} packet_id is {} fragment_offset is {} ttl is {} proto is {} src is {} dst is {}",
            h[1],
            be16(h, 4),
            be16(h, 6),
            h[8],
            h[9],
            ip(be32(h, 12)),
            ip(be32(h, 16))
        ));
        rest = &rest[20..];
        if rest.is_empty() {
            break;
        }
        if h[9] != IPPROTO_GRE || rest.len() < 4 {
            return None;
        }
        let word = be16(rest, 0);
        let proto = be16(rest, 2);
        // Only the K bit may be set among the flags (no checksum, no
        // sequence number), version 0.
        if word & !GRE_KEY_BIT != 0 {
            return None;
        }
        items.push(format!(
            "gre c_rsvd0_ver is {word:#06x} protocol is {proto:#06x}"
        ));
        rest = &rest[4..];
        if word & GRE_KEY_BIT != 0 {
            if rest.len() < 4 {
                return None;
            }
            items.push(format!("gre_key value is {}", be32(rest, 0)));
            rest = &rest[4..];
        }
        if rest.is_empty() {
            break;
        }
        // What follows a gretap header is the inner Ethernet header.
        if proto != TRANSPARENT_ETHERNET {
            return None;
        }
    }
    Some(items.join(" / "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: Vec<Item>, actions: Vec<Action>) -> Rule {
        Rule {
            attr: Attr::INGRESS,
            pattern,
            actions,
        }
    }

    fn one_item(item: Item) -> String {
        let text = rule(vec![item], vec![Action::Drop]).testpmd(3);
        let body = text
            .strip_prefix("flow create 3 ingress group 0 priority 0 pattern ")
            .expect("flow create prefix");
        body.strip_suffix(" / end actions drop / end\n")
            .expect("actions suffix")
            .to_owned()
    }

    fn one_action(action: Action) -> String {
        let text = rule(vec![], vec![action]).testpmd(0);
        let body = text
            .strip_prefix("flow create 0 ingress group 0 priority 0 pattern end actions ")
            .expect("prefix");
        body.strip_suffix(" / end\n").expect("suffix").to_owned()
    }

    const M1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const M2: [u8; 6] = [0x02, 0xab, 0, 0, 0, 0x02];

    #[test]
    fn eth_exact_masked_and_bare() {
        assert_eq!(
            one_item(Item::Eth {
                dst: Some(Masked::<[u8; 6]>::exact(M1)),
                src: Some(Masked {
                    spec: M2,
                    mask: [0xff, 0xff, 0xff, 0, 0, 0]
                }),
                ether_type: Some(0x0800),
            }),
            "eth dst is 02:00:00:00:00:01 src spec 02:ab:00:00:00:02 src mask ff:ff:ff:00:00:00 type is 0x0800"
        );
        assert_eq!(
            one_item(Item::Eth {
                dst: None,
                src: None,
                ether_type: None
            }),
            "eth"
        );
    }

    #[test]
    fn ipv4_udp_tcp() {
        assert_eq!(
            one_item(Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: Some(Masked::<u32>::exact(0x0a00_0001)),
                dst: Some(Masked {
                    spec: 0xc0a8_0000,
                    mask: 0xffff_0000
                }),
                protocol: Some(6),
            }),
            "ipv4 src is 10.0.0.1 dst spec 192.168.0.0 dst mask 255.255.0.0 proto is 6"
        );
        // Not a fragment, no options, DF set, ECN not-ECT.
        assert_eq!(
            one_item(Item::Ipv4 {
                version_ihl: Some(0x45),
                tos: Some(Masked {
                    spec: 0,
                    mask: 0x03
                }),
                fragment_offset: Some(Masked {
                    spec: 0x4000,
                    mask: 0x7fff
                }),
                ttl: None,
                src: None,
                dst: None,
                protocol: None,
            }),
            "ipv4 version_ihl is 0x45 tos spec 0x00 tos mask 0x03 \
             fragment_offset spec 0x4000 fragment_offset mask 0x7fff"
        );
        // TTL 0 or 1.
        assert_eq!(
            one_item(Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: Some(Masked {
                    spec: 0,
                    mask: 0xfe
                }),
                src: None,
                dst: None,
                protocol: None,
            }),
            "ipv4 ttl spec 0x00 ttl mask 0xfe"
        );
        assert_eq!(
            one_item(Item::Udp {
                src: Some(Masked::<u16>::exact(53)),
                dst: Some(Masked {
                    spec: 0x1000,
                    mask: 0xffc0
                })
            }),
            "udp src is 53 dst spec 4096 dst mask 65472"
        );
        assert_eq!(
            one_item(Item::Tcp {
                src: Some(Masked::<u16>::exact(443)),
                dst: Some(Masked::<u16>::exact(40000)),
                flags: Some(Masked {
                    spec: 0,
                    mask: 0x07
                }),
            }),
            "tcp src is 443 dst is 40000 flags spec 0x00 flags mask 0x07"
        );
    }

    /// testpmd's `value` is the struct's whole 64-bit word: the checks
    /// asked are set in spec and mask alike (`is` would ask every other
    /// check to have failed), l3_ok bit 2, ipv4_csum_ok bit 5.
    #[test]
    fn integrity() {
        assert_eq!(
            one_item(Item::Integrity {
                level: 1,
                l3_ok: true,
                ipv4_csum_ok: true,
            }),
            "integrity level is 1 value spec 0x24 value mask 0x24"
        );
        assert_eq!(
            one_item(Item::Integrity {
                level: 2,
                l3_ok: false,
                ipv4_csum_ok: true,
            }),
            "integrity level is 2 value spec 0x20 value mask 0x20"
        );
    }

    #[test]
    fn gre_key_mark_meta() {
        assert_eq!(
            one_item(Item::Gre {
                protocol: Some(0x6558),
                checksum_present: None,
                key_present: Some(true),
                sequence_present: None,
            }),
            "gre protocol is 0x6558 k_bit is 1"
        );
        assert_eq!(
            one_item(Item::Gre {
                protocol: None,
                checksum_present: Some(false),
                key_present: Some(true),
                sequence_present: Some(false),
            }),
            "gre c_bit is 0 k_bit is 1 s_bit is 0"
        );
        assert_eq!(one_item(Item::GreKey(77)), "gre_key value is 77");
        assert_eq!(one_item(Item::Mark(9)), "mark id is 9");
        assert_eq!(
            one_item(Item::Meta(Masked {
                spec: 0x12,
                mask: 0xff
            })),
            "meta data spec 0x12 data mask 0xff"
        );
        assert_eq!(
            one_item(Item::Meta(Masked::<u32>::exact(5))),
            "meta data is 0x5"
        );
    }

    #[test]
    fn every_plain_action() {
        let cases = [
            (Action::Drop, "drop"),
            (Action::Queue(3), "queue index 3"),
            (Action::Rss(vec![0, 2, 5]), "rss queues 0 2 5 end"),
            (Action::Mark(42), "mark id 42"),
            (Action::Count, "count"),
            (Action::Age(30), "age timeout 30"),
            (
                Action::SetIpv4Src(0x0102_0304),
                "set_ipv4_src ipv4_addr 1.2.3.4",
            ),
            (
                Action::SetIpv4Dst(0xc633_6401),
                "set_ipv4_dst ipv4_addr 198.51.100.1",
            ),
            (Action::SetTpSrc(1024), "set_tp_src port 1024"),
            (Action::SetTpDst(80), "set_tp_dst port 80"),
            (
                Action::SetMacSrc(M1),
                "set_mac_src mac_addr 02:00:00:00:00:01",
            ),
            (
                Action::SetMacDst(M2),
                "set_mac_dst mac_addr 02:ab:00:00:00:02",
            ),
            (Action::DecTtl, "dec_ttl"),
            (Action::PortId(1), "port_id id 1"),
            (
                Action::RepresentedPort(2),
                "represented_port ethdev_port_id 2",
            ),
            (Action::Jump(1), "jump group 1"),
        ];
        for (action, text) in cases {
            assert_eq!(one_action(action), text);
        }
    }

    /// testpmd cuts a line past its buffer: a longer command is printed
    /// after a comment that says so.
    #[test]
    fn a_command_longer_than_testpmd_reads_is_flagged() {
        let short = rule(vec![], vec![Action::Drop]).testpmd(0);
        assert!(!short.starts_with('#'), "{short}");
        let long = rule(vec![Item::GreKey(1); 40], vec![Action::Drop]).testpmd(0);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines.len(), 2, "{long}");
        assert_eq!(
            lines[0],
            format!(
                "# the next command is {} characters: testpmd reads 510 a line and cuts the rest",
                lines[1].len()
            )
        );
        assert!(lines[1].len() > TESTPMD_LINE_MAX);
    }

    #[test]
    fn attributes() {
        let r = Rule {
            attr: Attr {
                group: 2,
                priority: 1,
                ingress: false,
                egress: false,
                transfer: true,
            },
            pattern: vec![],
            actions: vec![Action::Jump(3)],
        };
        assert_eq!(
            r.testpmd(5),
            "flow create 5 transfer group 2 priority 1 pattern end actions jump group 3 / end\n"
        );
    }

    /// An outer Ethernet + IPv4 + GRE with key header, as tgw encaps.
    pub(crate) fn tunnel_header() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&M2); // dst
        b.extend_from_slice(&M1); // src
        b.extend_from_slice(&[0x08, 0x00]);
        b.extend_from_slice(&[
            0x45, 0x00, 0, 0, 0x12, 0x34, 0x40, 0x00, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        b.extend_from_slice(&[0x20, 0x00, 0x08, 0x00, 0, 0, 0x01, 0x02]);
        b
    }

    #[test]
    fn raw_encap_and_decap_get_set_lines_numbered_in_order() {
        let mut decap = tunnel_header();
        decap[36..38].copy_from_slice(&[0x65, 0x58]);
        decap.extend_from_slice(&M1);
        decap.extend_from_slice(&M2);
        decap.extend_from_slice(&[0x08, 0x00]);
        let r = rule(
            vec![],
            vec![
                Action::RawDecap(decap),
                Action::RawEncap(tunnel_header()),
                Action::Count,
            ],
        );
        let text = r.testpmd(1);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            "set raw_decap 0 eth dst is 02:ab:00:00:00:02 src is 02:00:00:00:00:01 type is 0x0800 / \
             ipv4 version_ihl is 0x45 tos is 0 packet_id is 4660 fragment_offset is 16384 ttl is 64 proto is 47 src is 10.0.0.1 dst is 10.0.0.2 / \
             gre c_rsvd0_ver is 0x2000 protocol is 0x6558 / gre_key value is 258 / \
             eth dst is 02:00:00:00:00:01 src is 02:ab:00:00:00:02 type is 0x0800 / end_set"
        );
        assert!(lines[1].starts_with("set raw_encap 1 eth dst is 02:ab"));
        assert!(lines[1].ends_with(
            "gre c_rsvd0_ver is 0x2000 protocol is 0x0800 / gre_key value is 258 / end_set"
        ));
        assert_eq!(
            lines[2],
            "flow create 1 ingress group 0 priority 0 pattern end actions raw_decap index 0 / raw_encap index 1 / count / end"
        );
    }

    #[test]
    fn raw_bytes_testpmd_cannot_build_become_a_comment() {
        let mut h = tunnel_header();
        h[16..18].copy_from_slice(&[0, 60]); // a total length
        let text = rule(vec![], vec![Action::RawEncap(h.clone())]).testpmd(0);
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                "# raw_encap 0: 42 bytes testpmd items cannot express: {}",
                hex(&h)
            )
        );
        assert_eq!(raw_items(&[1, 2, 3]), None);
        assert!(raw_items(&h[..14]).is_some(), "a bare Ethernet header");
    }
}
