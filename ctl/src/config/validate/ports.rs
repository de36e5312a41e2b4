//! `[[port]]` tables: names, devices, roles, addresses and ring sizes.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use toml::Spanned;

use super::addrs::mac_addr;
use super::{has_role, int, valid_name, Report};
use crate::config::raw::{List, RawMempool, RawPort, Section};
use crate::config::{
    device_name, is_pci_address, Ipv4Cidr, Mempool, Port, Role, DEFAULT_DESC, DEFAULT_MTU,
    DESC_RANGE, ETHER_OVERHEAD, MBUF_HEADROOM, MTU_RANGE,
};

/// Where a port name, device or address was first given, so that a
/// duplicate can point back at it.
struct FirstSeen {
    at: usize,
}

pub(super) fn ports(
    list: &List<RawPort>,
    mempool: Option<&Mempool>,
    raw_mempool: Option<&Section<RawMempool>>,
    r: &mut Report,
) -> Option<Vec<Port>> {
    let mut names: HashMap<&str, FirstSeen> = HashMap::new();
    let mut devices: HashMap<&str, FirstSeen> = HashMap::new();
    let mut addresses: HashMap<Ipv4Addr, FirstSeen> = HashMap::new();
    let mut out = Vec::new();

    let raw = &list.items;
    if raw.is_empty() {
        if !list.broken {
            r.at(
                0,
                "no [[port]] is defined; add one with role = \"public\" and one with role = \"underlay\"",
            );
        }
        return None;
    }
    let mut ok = !list.broken;

    for section in raw {
        let p = &section.value;
        let label = p.name.as_ref().map_or_else(
            || "[[port]]".to_owned(),
            |n| format!("port {:?}", n.get_ref()),
        );

        let name = match &p.name {
            None if !section.readable("name") => None,
            None => {
                r.at(
                    section.at,
                    "[[port]] has no name; add name = \"pub0\" (A-Z a-z 0-9 _ -, up to 32)",
                );
                None
            }
            Some(n) => {
                let s = n.get_ref().as_str();
                if !valid_name(s) {
                    r.at(
                        n.span().start,
                        format!("port name {s:?} is not allowed; use 1 to 32 of A-Z a-z 0-9 _ -"),
                    );
                    None
                } else if let Some(first) = names.get(s) {
                    r.at(
                        n.span().start,
                        format!(
                            "port {s:?} is defined twice (first at line {}); give each [[port]] a unique name",
                            r.line(first.at)
                        ),
                    );
                    None
                } else {
                    names.insert(s, FirstSeen { at: n.span().start });
                    Some(s.to_owned())
                }
            }
        };

        let device = match &p.device {
            None if !section.readable("device") => None,
            None => {
                r.at(section.at, format!("{label} has no device; add device = \"net_null0\" (a DPDK vdev) or a PCI address like \"0000:03:00.0\""));
                None
            }
            Some(d) => device(d, &label, &mut devices, r),
        };

        let role = match &p.role {
            None if !section.readable("role") => None,
            None => {
                r.at(
                    section.at,
                    format!("{label} has no role; add role = \"public\" or role = \"underlay\""),
                );
                None
            }
            Some(v) => {
                let s = v.get_ref();
                let role = Role::ALL.into_iter().find(|role| role.as_str() == s);
                if role.is_none() {
                    r.at(
                        v.span().start,
                        format!("{label}: unknown role {s:?}; use \"public\" or \"underlay\""),
                    );
                }
                role
            }
        };

        let own_mac = mac_addr(p.mac.as_ref(), &label, "mac", r);
        let peer_mac = mac_addr(p.peer_mac.as_ref(), &label, "peer_mac", r);

        let mut cidrs = Vec::new();
        let mut cidrs_ok = true;
        for a in p.addresses.iter().flatten() {
            match cidr(a, &label, &mut addresses, r) {
                Some(c) => cidrs.push(c),
                None => cidrs_ok = false,
            }
        }

        let mtu: Option<u16> = int(
            p.mtu.as_ref(),
            DEFAULT_MTU,
            i64::from(*MTU_RANGE.start()),
            i64::from(*MTU_RANGE.end()),
            &format!("{label}: mtu"),
            "",
            r,
        );
        let rx_desc = desc(p.rx_desc.as_ref(), &label, "rx_desc", r);
        let tx_desc = desc(p.tx_desc.as_ref(), &label, "tx_desc", r);

        let mut fits = true;
        if let (Some(mtu), Some(pool)) = (mtu, mempool) {
            let frame = u32::from(mtu) + u32::from(ETHER_OVERHEAD);
            let room = u32::from(pool.data_room).saturating_sub(u32::from(MBUF_HEADROOM));
            if frame > room {
                let place = match (&p.mtu, raw_mempool.and_then(|m| m.value.data_room.as_ref())) {
                    (Some(m), _) => m.span().start,
                    (None, Some(d)) => d.span().start,
                    (None, None) => section.at,
                };
                r.at(
                    place,
                    format!(
                        "{label}: a frame of mtu {mtu} ({frame} bytes with Ethernet header and CRC) does not fit in an mbuf of data_room {} ({room} after the {MBUF_HEADROOM}-byte headroom); lower the mtu or raise [mempool] data_room to at least {}",
                        pool.data_room,
                        frame + u32::from(MBUF_HEADROOM)
                    ),
                );
                fits = false;
            }
        }

        match (name, device, role, own_mac, peer_mac, mtu, rx_desc, tx_desc) {
            (
                Some(name),
                Some(device),
                Some(role),
                Some(mac),
                Some(peer_mac),
                Some(mtu),
                Some(rx_desc),
                Some(tx_desc),
            ) if cidrs_ok && fits && section.sound() => out.push(Port {
                name,
                device,
                role,
                mac,
                peer_mac,
                addresses: cidrs,
                mtu,
                rx_desc,
                tx_desc,
            }),
            _ => ok = false,
        }
    }

    for role in Role::ALL {
        if has_role(list, role) == Some(false) {
            r.at(
                raw.first().map_or(0, |s| s.at),
                format!("no port has role = \"{role}\"; tgw forwards between public and underlay ports, so add a [[port]] with role = \"{role}\""),
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

fn device<'a>(
    d: &'a Spanned<String>,
    label: &str,
    seen: &mut HashMap<&'a str, FirstSeen>,
    r: &mut Report,
) -> Option<String> {
    let s = d.get_ref().as_str();
    let name = device_name(s);
    let start = d.span().start;
    if is_pci_address(name) {
        // Bits 5..8 of the second byte are the device number (at most 0x1f).
        let dev = u8::from_str_radix(name.get(8..10).unwrap_or("ff"), 16).unwrap_or(u8::MAX);
        if dev > 0x1f {
            r.at(
                start,
                format!("{label}: PCI address {name:?} has device number {dev:#04x}, above 0x1f; check the address with lspci -D"),
            );
            return None;
        }
    } else if looks_like_pci(name) {
        r.at(
            start,
            format!("{label}: device {name:?} looks like a PCI address but is not in DPDK's form; write all of domain:bus:device.function in lowercase, e.g. \"0000:03:00.0\" (lspci -D shows it)"),
        );
        return None;
    } else if !valid_vdev_name(name) {
        r.at(
            start,
            format!("{label}: device {s:?} is neither a DPDK vdev (a driver name and number like \"net_null0\", \"net_memif0,role=server\") nor a PCI address like \"0000:03:00.0\""),
        );
        return None;
    }
    if let Some(first) = seen.get(name) {
        r.at(
            start,
            format!(
                "{label}: device {name:?} is already used by the port at line {}; each [[port]] needs its own device",
                r.line(first.at)
            ),
        );
        return None;
    }
    seen.insert(name, FirstSeen { at: start });
    Some(s.to_owned())
}

/// DPDK names virtual ethdevs `net_<driver><id>` (or the older `eth_`
/// alias); anything else is not a port it can create.
fn valid_vdev_name(name: &str) -> bool {
    let rest = name
        .strip_prefix("net_")
        .or_else(|| name.strip_prefix("eth_"));
    rest.is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

fn looks_like_pci(name: &str) -> bool {
    name.contains(':')
        && name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// A gateway address on a port: a host of its subnet, not used elsewhere.
fn cidr(
    v: &Spanned<String>,
    label: &str,
    seen: &mut HashMap<Ipv4Addr, FirstSeen>,
    r: &mut Report,
) -> Option<Ipv4Cidr> {
    let s = v.get_ref();
    let start = v.span().start;
    let c = match s.parse::<Ipv4Cidr>() {
        Ok(c) => c,
        Err(e) => {
            r.at(
                start,
                format!("{label}: address {s:?} is not an IPv4 CIDR; {e}"),
            );
            return None;
        }
    };
    let a = c.addr;
    let special = a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback();
    if special || c.len == 0 {
        r.at(
            start,
            format!("{label}: address {c} cannot be the gateway's own; use a unicast host address with a prefix length of 1..=32"),
        );
        return None;
    }
    if c.len <= 30 && (a == c.network() || a == c.broadcast()) {
        r.at(
            start,
            format!(
                "{label}: address {c} is the {} address of its subnet; use a host address such as {}/{}",
                if a == c.network() { "network" } else { "broadcast" },
                Ipv4Addr::from(u32::from(c.network()).wrapping_add(1)),
                c.len
            ),
        );
        return None;
    }
    if let Some(first) = seen.get(&a) {
        r.at(
            start,
            format!(
                "{label}: address {a} is already assigned at line {}; each gateway address belongs to one port",
                r.line(first.at)
            ),
        );
        return None;
    }
    seen.insert(a, FirstSeen { at: start });
    Some(c)
}

/// A descriptor count: drivers want powers of two, and 64..=4096 is what
/// every PMD accepts.
fn desc(value: Option<&Spanned<i64>>, label: &str, key: &str, r: &mut Report) -> Option<u16> {
    let Some(v) = value else {
        return Some(DEFAULT_DESC);
    };
    let n = *v.get_ref();
    match u16::try_from(n) {
        Ok(d) if DESC_RANGE.contains(&d) && d.is_power_of_two() => Some(d),
        _ => {
            r.at(
                v.span().start,
                format!("{label}: {key} {n} is not allowed; use a power of two in 64..=4096 (e.g. 512, 1024, 2048)"),
            );
            None
        }
    }
}
