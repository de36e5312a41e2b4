//! Addresses as written in ports, tenants, routes and neighbours: each
//! parsed, and refused with the form to write when it cannot be what it
//! stands for.

use std::net::Ipv4Addr;

use toml::Spanned;

use super::Report;
use crate::config::{Ipv4Cidr, MacAddr};

/// A MAC that can be a port's address or a next hop: unicast and not zero.
/// `Some(None)` when absent, `None` when wrong.
pub(super) fn mac_addr(
    value: Option<&Spanned<String>>,
    label: &str,
    key: &str,
    r: &mut Report,
) -> Option<Option<MacAddr>> {
    let Some(v) = value else {
        return Some(None);
    };
    let s = v.get_ref();
    match s.parse::<MacAddr>() {
        Err(e) => {
            r.at(
                v.span().start,
                format!("{label}: {key} {s:?} is not a MAC address; {e}"),
            );
            None
        }
        Ok(mac) if mac.is_multicast() || mac.is_zero() => {
            r.at(
                v.span().start,
                format!("{label}: {key} {mac} is not a unicast address; use one with the lowest bit of the first byte clear and not all zero, e.g. 02:00:00:00:00:01"),
            );
            None
        }
        Ok(mac) => Some(Some(mac)),
    }
}

/// Whether `ip` can be a host's own address: not in "this network"
/// (0.0.0.0/8), loopback, multicast, or the reserved 240.0.0.0/4 that
/// holds the limited broadcast.
pub(super) fn is_unicast(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    first != 0 && first != 127 && first < 224
}

/// A host's address, e.g. a tunnel host or a next hop.
pub(super) fn host(
    v: &Spanned<String>,
    label: &str,
    key: &str,
    r: &mut Report,
) -> Option<Ipv4Addr> {
    let s = v.get_ref();
    let start = v.span().start;
    match s.parse::<Ipv4Addr>() {
        Err(_) => {
            r.at(
                start,
                format!("{label}: {key} {s:?} is not an IPv4 address; write four decimal numbers like 172.168.0.11"),
            );
            None
        }
        Ok(ip) if !is_unicast(ip) => {
            r.at(
                start,
                format!("{label}: {key} {ip} is not a unicast host address (0.0.0.0/8, 127.0.0.0/8, multicast and 240.0.0.0/4 cannot be); use the host's own IPv4 address"),
            );
            None
        }
        Ok(ip) => Some(ip),
    }
}

/// A route or ownership prefix: its host bits must be zero, since a lookup
/// table keeps only the network and silently dropping the rest would hide
/// a typo.
pub(super) fn prefix(
    v: &Spanned<String>,
    label: &str,
    key: &str,
    r: &mut Report,
) -> Option<Ipv4Cidr> {
    let s = v.get_ref();
    let start = v.span().start;
    let Ok(c) = s.parse::<Ipv4Cidr>() else {
        r.at(
            start,
            format!("{label}: {key} {s:?} is not an IPv4 prefix; write a network address and a prefix length 0..=32, e.g. 10.0.0.0/24"),
        );
        return None;
    };
    if c.addr != c.network() {
        r.at(
            start,
            format!(
                "{label}: {key} {c} has host bits set; write {}/{}",
                c.network(),
                c.len
            ),
        );
        return None;
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_hosts() {
        for good in ["1.1.1.1", "10.0.0.7", "169.254.0.1", "223.255.255.254"] {
            assert!(is_unicast(good.parse().unwrap()), "{good}");
        }
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_unicast(bad.parse().unwrap()), "{bad}");
        }
    }
}
