//! Source and destination validation: martians (RFC 1812 §5.3.7) and the
//! gateway's own addresses arriving from outside.
//!
//! A martian is an address no packet may carry across a router. tgw's list,
//! the same for sources and destinations:
//!
//! | block | RFC | why |
//! |---|---|---|
//! | 0.0.0.0/8 | RFC 1812 §4.2.2.11, §5.3.7; RFC 6890 | "this network": only a host that does not know its address yet sends from it, and never beyond its link |
//! | 127.0.0.0/8 | RFC 1812 §4.2.2.11, §5.3.7 | loopback: MUST NOT appear outside a host |
//! | 169.254.0.0/16 | RFC 3927 §7; RFC 6890 | link-local: "a router MUST NOT forward" it, as source or destination |
//! | 224.0.0.0/4 | RFC 1812 §4.2.2.11, §5.3.7 | multicast: never a source; as a destination, tgw is no multicast router, so it forwards none |
//! | 240.0.0.0/4, with 255.255.255.255 | RFC 1812 §4.2.2.11, §4.2.3.1; RFC 6890 | reserved (class E), and the limited broadcast, which never leaves its link |
//!
//! Not on the list: the private blocks (10/8, 172.16/12, 192.168/16), the
//! shared address space (100.64/10) and the documentation and benchmarking
//! blocks (192.0.2/24, 198.51.100/24, 203.0.113/24, 198.18/15). RFC 6890
//! marks most of them forwardable, and the rest are bogons that an edge
//! router's policy filters (BCP 38), not addresses a router can never see:
//! tenants number their hosts from the private blocks, and labs and tests
//! put clients in the documentation ones.
//!
//! From the public side, a source that is one of the gateway's own
//! addresses — a port's address, an elastic IP, a shared NAT pool address,
//! a tenant's public prefix — is spoofed: tgw turns a tenant's packets to
//! those addresses around inside itself (hairpinning, [`turns_around`];
//! public prefixes too, which used to leave through the router and come
//! back), so no genuine packet from them ever arrives on a port. (The
//! gateway's own port addresses are not turned around: a tenant has no
//! business sending to them.) A source that is the directed
//! broadcast of the port's own subnet is a martian too (RFC 1812 §5.3.7:
//! not a unicast address).
//!
//! Where each check runs (`pipeline`):
//! - public side: [`public`], at the top of `public_input`, for frames
//!   received on the port (not for those the gateway hairpinned itself);
//! - inside tunnels: [`inner`], after the inner source was found among
//!   the tenant's own addresses (`tenant_spoof`), which already keeps out
//!   martian sources unless the tenant's configured prefixes hold one;
//! - underlay: GRE must come from one of its tenant's hosts, which the
//!   configuration takes from unicast addresses only; one that does not
//!   is counted as a martian if its source is one ([`wrong_host`]), and
//!   an echo to the gateway is checked by [`outer`]. (A tenant host on
//!   169.254/16 is the operator's choice: the underlay is trusted.)
//!
//! The flow-hit fast path skips these checks: a hit matches a flow's key,
//! whose addresses passed them when the flow was created. One kind of
//! flow was not created by a packet from outside although it has a key on
//! the public side: a hairpinned one, whose public keys carry the
//! gateway's own addresses. A spoofed packet with such a key would pass as
//! a hit; so these flows are marked when made ([`hairpinned`]) and the
//! fast path leaves their packets to the full path (`pipeline/hit.rs`).

use crate::counters::DropReason;
use crate::flow::{FlowKey, Zone};
use crate::sixteens::Sixteens;
use crate::tables::{PortEntry, Tables};

/// Where a packet on the public side's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Received on the port: checked by [`public`].
    Port,
    /// From the gateway itself: hairpinned by it (its source is then one
    /// of its own addresses), or a parked fragment resumed (checked when
    /// it arrived).
    Gateway,
}

/// Whether `addr` may never be carried across a router (the table above).
#[inline]
pub fn is_martian(addr: u32) -> bool {
    let first = addr >> 24;
    first == 0 || first == 127 || first >= 224 || addr >> 16 == 0xa9fe
}

/// Whether `src` is one of the gateway's own addresses: a port's, an
/// elastic IP, a shared NAT pool address or a tenant's public prefix.
pub fn is_own(t: &Tables, src: u32) -> bool {
    t.eips.inbound(src).is_some()
        || t.pools.of_addr(src).is_some()
        || t.ingress.lookup(src).is_some()
        || is_port_addr(t, src)
}

/// Whether `addr` is one of the ports' addresses. Most addresses asked
/// about are clients', outside the ports' /16s: the walk over every port
/// (`MAX_PORTS` of them, ~34 cache lines) is for the others.
#[inline]
fn is_port_addr(t: &Tables, addr: u32) -> bool {
    t.port_sixteens.may_hold(addr) && t.ports.iter().any(|p| p.role.is_some() && p.is_local(addr))
}

/// The /16s of the addresses of `ports` that have a role, for
/// [`Tables::port_sixteens`].
pub fn port_sixteens(ports: &[PortEntry]) -> Sixteens {
    let mut s = Sixteens::default();
    for p in ports.iter().filter(|p| p.role.is_some()) {
        for &a in &p.addrs {
            s.add(a);
        }
    }
    s
}

/// Whether a flow of these keys is hairpinned: one of its keys on the
/// public side comes from one of the gateway's own addresses. Its packets
/// there are the gateway's own, turned around inside; one received on the
/// port is spoofed, and the flow-hit fast path leaves it to the full
/// path, which drops it. Asked once, when the flow is made, of the keys
/// whose source [`public`] has not already refused as the gateway's own.
pub fn hairpinned<const N: usize>(t: &Tables, keys: [&FlowKey; N]) -> bool {
    keys.iter()
        .any(|k| k.zone() == Zone::PUBLIC && is_own(t, k.src()))
}

/// [`hairpinned`] for the forward and reply keys of a flow opened by a
/// packet from `origin`. One received on the port passed [`public`], which
/// refuses the gateway's own sources: its forward key, public and from that
/// source, is not asked again (`is_own` is a new inbound flow's costliest
/// question after the flow table's).
#[inline]
pub(crate) fn hairpinned_from(t: &Tables, origin: Origin, [forward, reply]: [&FlowKey; 2]) -> bool {
    match origin {
        Origin::Port => hairpinned(t, [reply]),
        Origin::Gateway => hairpinned(t, [forward, reply]),
    }
}

/// Whether a tenant's packet to `dst` turns around inside the gateway
/// (RFC 4787 REQ-9, hairpinning): toward an elastic IP, a shared NAT
/// address or a tenant's public prefix. Sent out, it would come back
/// from the router with one of the gateway's own addresses as its
/// source, which [`public`] drops as spoofed.
pub fn turns_around(t: &Tables, dst: u32) -> bool {
    t.eips.inbound(dst).is_some()
        || t.pools.of_addr(dst).is_some()
        || t.ingress.lookup(dst).is_some()
}

/// Whether `src` is the directed broadcast address of one of port `pe`'s
/// subnets (all host bits set; not on /31 and /32, which have none).
fn is_port_broadcast(pe: &PortEntry, src: u32) -> bool {
    pe.nets
        .iter()
        .any(|n| n.mask < 0xffff_fffe && src == n.addr | !n.mask)
}

/// The checks of a packet from `src` to `dst` received on public port
/// `pe`.
pub fn public(t: &Tables, pe: &PortEntry, src: u32, dst: u32) -> Result<(), DropReason> {
    if is_martian(src) || is_port_broadcast(pe, src) {
        return Err(DropReason::MartianSource);
    }
    if is_martian(dst) {
        return Err(DropReason::MartianDestination);
    }
    if is_own(t, src) {
        return Err(DropReason::SpoofedOwnAddress);
    }
    Ok(())
}

/// The checks of a packet from a tenant's tunnel, whose source already
/// passed the tenant's own prefixes.
#[inline]
pub fn inner(src: u32, dst: u32) -> Result<(), DropReason> {
    if is_martian(src) {
        return Err(DropReason::MartianSource);
    }
    if is_martian(dst) {
        return Err(DropReason::MartianDestination);
    }
    Ok(())
}

/// Why GRE from `src`, which is not one of its key's tenant's hosts, is
/// dropped. A tunnel host is never a martian (the configuration takes
/// unicast host addresses only), so martian outer sources are caught
/// here, on the way out, at no cost to the packets that pass.
pub fn wrong_host(src: u32) -> DropReason {
    if is_martian(src) {
        DropReason::MartianSource
    } else {
        DropReason::GreWrongHost
    }
}

/// The check of the outer header of an echo request received on underlay
/// port `pe` for the gateway: a martian source, or the port's own address
/// as the source (the answer would loop).
pub fn outer(pe: &PortEntry, src: u32) -> Result<(), DropReason> {
    if is_martian(src) {
        return Err(DropReason::MartianSource);
    }
    if pe.is_local(src) {
        return Err(DropReason::SpoofedOwnAddress);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn the_martian_blocks_and_their_edges() {
        for m in [
            "0.0.0.0",
            "0.255.255.255",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.0.0",
            "169.254.169.254",
            "169.254.255.255",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_martian(a(m)), "{m}");
        }
        for ok in [
            "1.0.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "223.255.255.255",
            "10.0.0.7",
            "192.0.2.1",
            "100.64.0.1",
        ] {
            assert!(!is_martian(a(ok)), "{ok}");
        }
    }
}
