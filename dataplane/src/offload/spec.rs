//! From a worker's [`Candidate`] to the [`FlowSpec`] the NIC needs: both
//! directions' matches, rewrites and headers, read from the published
//! [`Tables`] and the neighbour table, exactly as the software path would
//! handle the flow's next packets (pipeline/hit.rs), or why the flow stays
//! in software ([`NotOffloadable`]).

use arrayvec::ArrayVec;

use super::{Candidate, FlowSpec, Leg, TunnelMatch};
use crate::flow::{FlowKey, Zone};
use crate::nat::Rewrite;
use crate::neighbour::{Lookup, NeighKey};
use crate::tables::{eth_header, PublicRoute, Role, Tables, TunnelAdj, MAX_TUNNEL_HEADER};
use crate::tenant::Tenant;
use crate::wire::{ethernet, EtherType, IpProtocol};

const ETH: usize = ethernet::HEADER_LEN;
/// Where the outer IPv4 source (the gateway's underlay address) is in a
/// tunnel header.
const OUTER_SRC_AT: usize = ETH + 12;

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Why a flow stays in software. Counted by the manager, by reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum NotOffloadable {
            $($(#[doc = $doc])* $variant,)*
        }

        impl NotOffloadable {
            pub const ALL: &'static [NotOffloadable] = &[$(NotOffloadable::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The reason's stable name, for metrics and `tgwctl`.
            pub fn name(self) -> &'static str {
                match self {
                    $(NotOffloadable::$variant => $name,)*
                }
            }
        }
    };
}

reasons! {
    /// ICMP and protocols without ports: their state (echo identifiers,
    /// errors about flows) is the software's.
    Protocol => "protocol",
    /// A hairpinned flow: the gateway turns its packets around inside,
    /// no port ever sees them.
    Hairpin => "hairpin",
    /// A next hop's MAC (the tunnel's outer neighbour, a gretap host, the
    /// public next hop) is not known.
    NoNeighbour => "no_neighbour",
    /// The flow's tenant is gone.
    TenantGone => "tenant_gone",
    /// The tenant changed since the flow was decided: software decides it
    /// again first.
    EpochMoved => "epoch_moved",
    /// The tenant's GRE checksum or sequence words are written per frame.
    GreOptions => "gre_options",
    /// No route or tunnel for one of its directions any more.
    NoRoute => "no_route",
    /// Not a flow between the public side and a tenant's tunnel.
    Shape => "shape",
}

impl FlowSpec {
    /// The spec of candidate `c` under tables `t`, the MACs of next hops
    /// from `mac` (the neighbour table: [`macs_of`] reads the tables').
    pub fn build(
        c: &Candidate,
        t: &Tables,
        mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>,
    ) -> Result<FlowSpec, NotOffloadable> {
        let conn = &c.conn;
        if !matches!(IpProtocol(conn.protocol), IpProtocol::TCP | IpProtocol::UDP) {
            return Err(NotOffloadable::Protocol);
        }
        if conn.hairpin {
            return Err(NotOffloadable::Hairpin);
        }
        let tenant = t
            .tenants
            .get(conn.tenant_id())
            .ok_or(NotOffloadable::TenantGone)?;
        if tenant.epoch != conn.epoch {
            return Err(NotOffloadable::EpochMoved);
        }
        let adj = tenant
            .tunnels
            .get(usize::from(conn.tunnel))
            .ok_or(NotOffloadable::NoRoute)?;
        if adj.gre.any() {
            return Err(NotOffloadable::GreOptions);
        }
        let zone = Zone::tenant(tenant.id.index()).ok_or(NotOffloadable::Shape)?;
        let public_side = match (c.keys[0].zone(), c.keys[1].zone()) {
            (Zone::PUBLIC, z) if z == zone => 0,
            (z, Zone::PUBLIC) if z == zone => 1,
            _ => return Err(NotOffloadable::Shape),
        };
        let into = into_tenant(t, tenant, adj, &c.keys[public_side], &conn.to_tenant, mac)?;
        let out = out_of_tenant(
            t,
            tenant,
            adj,
            &c.keys[1 - public_side],
            &conn.to_public,
            mac,
        )?;
        let legs = if public_side == 0 {
            [into, out]
        } else {
            [out, into]
        };
        Ok(FlowSpec {
            worker: c.worker,
            id: c.id,
            tenant: tenant.id,
            epoch: conn.epoch,
            legs,
        })
    }
}

/// The MACs of the neighbour table the tables hold, as the workers read
/// them: what [`FlowSpec::build`] asks.
pub fn macs_of(t: &Tables) -> impl FnMut(NeighKey) -> Option<[u8; 6]> + '_ {
    |key| match t.neighbours.get(key) {
        Lookup::Mac(mac) => Some(mac),
        Lookup::Unresolved | Lookup::Failed => None,
    }
}

/// The new address and port of a rewrite of a packet that had `old`.
fn rewritten(nat: &Rewrite, old: (u32, u16)) -> Option<(u32, u16)> {
    nat.changes()
        .then(|| (nat.addr(), nat.port().unwrap_or(old.1)))
}

/// Whether a leg of `protocol` whose packets arrive on a port of IP MTU
/// `arrives` and leave where software lets out at most `leaves` bytes of
/// IPv4 packet may carry a packet software would refuse (Fragmentation
/// Needed) or cut, and a full rule would send whole: `mtu` is not a field
/// any NIC matches (mlx5 matches no IPv4 length). `clamped` is a TCP leg
/// whose SYNs software clamped to fit (`mss_clamp`, on the way into the
/// tunnel): then only a sender that ignores the MSS it was given sends
/// such a packet, and the leg counts as fitting.
fn too_big(arrives: u16, leaves: u16, clamped: bool) -> bool {
    arrives > leaves && !clamped
}

/// The direction from the public side (key `k`) into the tenant: DNAT,
/// then the tunnel's header (public_hit and encap).
fn into_tenant(
    t: &Tables,
    tenant: &Tenant,
    adj: &TunnelAdj,
    k: &FlowKey,
    nat: &Rewrite,
    mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>,
) -> Result<Leg, NotOffloadable> {
    let (src, dst) = ((k.src(), k.src_port()), (k.dst(), k.dst_port()));
    let set_dst = rewritten(nat, dst);
    let inside = set_dst.unwrap_or(dst).0;
    let len = usize::from(adj.header_len);
    let mut encap: ArrayVec<u8, MAX_TUNNEL_HEADER> = ArrayVec::new();
    encap
        .try_extend_from_slice(adj.header.get(..len).ok_or(NotOffloadable::Shape)?)
        .map_err(|_| NotOffloadable::Shape)?;
    let outer = mac(adj.neigh.key).ok_or(NotOffloadable::NoNeighbour)?;
    encap[..6].copy_from_slice(&outer);
    if adj.is_gretap() {
        let host = mac(NeighKey::inner(tenant.id, inside)).ok_or(NotOffloadable::NoNeighbour)?;
        encap[len - ETH..len - ETH + 6].copy_from_slice(&host);
    }
    // The replies' port: where the remote end is routed.
    let in_port = match t.public_route(src.0) {
        Some(PublicRoute::Via(l2)) => l2.port,
        Some(PublicRoute::OnLink(port)) => port,
        None => first_public_port(t).ok_or(NotOffloadable::NoRoute)?,
    };
    // Software checks the packet against the tunnel's inner MTU
    // (tunnel_entry) and clamps SYNs to it (`mss_clamp`): both ways a TCP
    // connection's segments then fit the tunnel.
    let arrives = t
        .ports
        .get(usize::from(in_port))
        .map_or(u16::MAX, |p| p.mtu);
    let clamped = t.mss_clamp && IpProtocol(k.protocol()) == IpProtocol::TCP;
    Ok(Leg {
        in_port,
        tunnel: None,
        protocol: k.protocol(),
        src,
        dst,
        decap_len: 0,
        set_src: None,
        set_dst,
        encap,
        out_port: adj.port,
        too_big: too_big(arrives, adj.inner_mtu(), clamped),
    })
}

/// What a frame from `tenant`'s host in tunnel `adj` arrives in: the
/// outer addresses, the key, the encapsulation. Also what the daemon's
/// per-tunnel root rules match (src/offload/root.rs).
pub fn tunnel_match(tenant: &Tenant, adj: &TunnelAdj) -> Option<TunnelMatch> {
    let local = adj
        .header
        .get(OUTER_SRC_AT..OUTER_SRC_AT + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)?;
    Some(TunnelMatch {
        host: u32::from(adj.host),
        local,
        key: tenant.key,
        gretap: adj.is_gretap(),
    })
}

/// The direction from the tenant's tunnel (key `k`, the inner packet) out
/// of the public side: decap, SNAT, the public next hop's Ethernet header
/// (tenant_hit and public_exit).
fn out_of_tenant(
    t: &Tables,
    tenant: &Tenant,
    adj: &TunnelAdj,
    k: &FlowKey,
    nat: &Rewrite,
    mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>,
) -> Result<Leg, NotOffloadable> {
    let (src, dst) = ((k.src(), k.src_port()), (k.dst(), k.dst_port()));
    let tunnel = tunnel_match(tenant, adj).ok_or(NotOffloadable::Shape)?;
    let (out_port, header, leaves) = match t.public_route(dst.0).ok_or(NotOffloadable::NoRoute)? {
        PublicRoute::Via(l2) => {
            let mut header = l2.header;
            header[..6].copy_from_slice(&mac(l2.neigh.key).ok_or(NotOffloadable::NoNeighbour)?);
            (l2.port, header, l2.mtu)
        }
        PublicRoute::OnLink(port) => {
            let pe = t
                .ports
                .get(usize::from(port))
                .ok_or(NotOffloadable::NoRoute)?;
            let next = mac(NeighKey::port(port, dst.0)).ok_or(NotOffloadable::NoNeighbour)?;
            (port, eth_header(next, pe.mac, EtherType::IPV4), pe.mtu)
        }
    };
    let mut encap = ArrayVec::new();
    encap
        .try_extend_from_slice(&header)
        .map_err(|_| NotOffloadable::Shape)?;
    Ok(Leg {
        in_port: adj.port,
        tunnel: Some(tunnel),
        protocol: k.protocol(),
        src,
        dst,
        // Options were refused above: the header is the key-only one.
        decap_len: adj.header_len,
        set_src: rewritten(nat, src),
        set_dst: None,
        encap,
        out_port,
        // The largest inner packet the tunnel delivers, against the
        // public hop's MTU (public_exit). No clamp helps here: the
        // tenant's segments are sized by the remote end's MSS, which
        // software clamps only to the tunnel's inner MTU.
        too_big: too_big(adj.inner_mtu(), leaves, false),
    })
}

fn first_public_port(t: &Tables) -> Option<u16> {
    t.ports
        .iter()
        .position(|p| p.role == Some(Role::Public))
        .and_then(|i| u16::try_from(i).ok())
}
