//! What an offloaded flow's legs become on the NIC: each [`Leg`] lowered
//! to one `rte_flow` [`Rule`], for full offload (match, decapsulate,
//! rewrite, encapsulate, count, forward) or partial (match, mark, queue).
//!
//! Pure: a rule is data, so the shapes are tested here without DPDK and
//! checked at the real call boundary by `flowcheck/tests/scenario.rs`.
//! The shapes are those of docs/offload.md ("Rule shapes"):
//!
//! - public side (a reply toward a tenant, or a connection opened from
//!   outside): `eth / ipv4 src is R dst is E proto is P / tcp src is Rp
//!   dst is Ep flags spec 0 flags mask 0x07` → `set_ipv4_dst, set_tp_dst,
//!   dec_ttl, raw_decap (Ethernet), raw_encap (the tunnel), count,
//!   represented_port (underlay)`;
//! - underlay side: `eth / ipv4 src is HOST dst is LOCAL proto is 47 / gre
//!   protocol is 0x0800 (0x6558) k_bit is 1 / gre_key value is K / [eth /]
//!   ipv4 … / tcp …` → `raw_decap (outer headers), raw_encap (Ethernet
//!   toward the next hop), set_ipv4_src, set_tp_src, dec_ttl, count,
//!   represented_port (public)`.
//!
//! The rewrites come before the encapsulation on the public side (after
//! it, the IPv4 header would be the tunnel's) and after the
//! decapsulation on the underlay side (before it, the outer one). Full
//! rules are E-Switch (`transfer`) rules: frames leave by another port
//! than they came in on, which only the switch domain can do; a NIC whose
//! ports share none refuses them at the probe ([`super::probe`]).

use dataplane::flow::FlowId;
use dataplane::offload::{Leg, TunnelMatch};
use rte::flow::{Action, Attr, Item, Masked, Rule};

/// TCP's FIN, SYN and RST bits: full-offload TCP rules match only frames
/// with all three clear, so that those which move the connection's state
/// reach software (docs/offload.md, "TCP FIN and RST").
pub const TCP_FIN_SYN_RST: u8 = 0x07;
/// IPv4 in Ethernet and in GRE.
pub const ETHER_TYPE_IPV4: u16 = 0x0800;
/// Transparent Ethernet bridging: Ethernet in GRE (gretap).
pub const ETHER_TYPE_TEB: u16 = 0x6558;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
/// The GRE base header with the key bit set, and the key.
const GRE_KEY_LEN: usize = 8;

/// The group and priority of per-flow rules: the root group, ahead of the
/// static steering rules ([`STEERING_PRIORITY`]), which are broader.
pub const FLOW_GROUP: u32 = 0;
pub const FLOW_PRIORITY: u32 = 0;
/// The static SNAT steering rules' priority: after any flow's own rule.
pub const STEERING_PRIORITY: u32 = 1;

/// Why a leg has no rule: a spec this module cannot express. The spec
/// builder keeps such flows in software already; this is the check that
/// the two agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// Only TCP and UDP are offloaded.
    Protocol(u8),
    /// The outer headers to remove are not those the tunnel match implies
    /// (GRE with checksum or sequence number, say).
    DecapLen { spec: u8, shape: usize },
    /// Nothing to push in front: the frame would leave without Ethernet.
    NoEncap,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Protocol(p) => write!(f, "protocol {p} is not offloaded (TCP and UDP are)"),
            ShapeError::DecapLen { spec, shape } => write!(
                f,
                "the spec removes {spec} bytes of outer headers, the rule's match implies {shape}"
            ),
            ShapeError::NoEncap => f.write_str("the spec pushes no headers"),
        }
    }
}

/// Marks a partial rule may put on frames: below this. mlx5 takes marks
/// below 0xFFFFEF (its largest values are reserved for its own flags); the
/// other PMDs tgw knows take more, so the smallest is everyone's bound.
pub const MARK_LIMIT: u32 = 0x00ff_ffef;

/// The mark a partial-offload rule puts on a flow's frames: its id + 1,
/// since 0 reads as "no mark" (docs/offload.md, "Partial offload"); none
/// for a flow whose mark would not be below [`MARK_LIMIT`] (the NIC would
/// refuse the rule, or worse, mark with a value it reserves).
pub fn mark(id: FlowId) -> Option<u32> {
    id.get().checked_add(1).filter(|&m| m < MARK_LIMIT)
}

/// The IPv4 flags and fragment offset word: DF, and MF with the offset.
pub const IPV4_DF: u16 = 0x4000;
pub const IPV4_MF_OFFSET: u16 = 0x3fff;
/// Version 4, a 20-byte header: no options.
pub const IPV4_NO_OPTIONS: u8 = 0x45;
/// The ECN bits of the TOS byte (RFC 3168); 0 is Not-ECT.
pub const ECN_MASK: u8 = 0x03;

/// The full-offload rule of `leg`, created on `leg.in_port`.
pub fn full(leg: &Leg) -> Result<Rule, ShapeError> {
    let pattern = pattern(leg, true)?;
    if leg.encap.is_empty() {
        return Err(ShapeError::NoEncap);
    }
    let rewrites = rewrites(leg);
    let mut actions = Vec::with_capacity(rewrites.len() + 5);
    let decap = Action::RawDecap(decap_bytes(leg));
    let encap = Action::RawEncap(encap_bytes(leg));
    if leg.tunnel.is_some() {
        actions.extend([decap, encap]);
        actions.extend(rewrites);
        actions.push(Action::DecTtl);
    } else {
        actions.extend(rewrites);
        actions.extend([Action::DecTtl, decap, encap]);
    }
    actions.push(Action::Count);
    actions.push(Action::RepresentedPort(leg.out_port));
    Ok(Rule {
        attr: Attr {
            group: FLOW_GROUP,
            priority: FLOW_PRIORITY,
            ingress: false,
            egress: false,
            transfer: true,
        },
        pattern,
        actions,
    })
}

/// The partial-offload rule of `leg`: the flow's addresses, protocol and
/// ports (no TCP flags: ice refuses a mask on them, and a FIN reaching
/// software marked is software's as any frame; no fragment or header
/// fields: every frame is software's anyway), and the frame goes to RX
/// queue `queue` (its flow's worker's) with `mark`.
pub fn partial(leg: &Leg, mark: u32, queue: u16) -> Result<Rule, ShapeError> {
    Ok(Rule {
        attr: Attr {
            group: FLOW_GROUP,
            priority: FLOW_PRIORITY,
            ..Attr::INGRESS
        },
        pattern: pattern(leg, false)?,
        actions: vec![Action::Mark(mark), Action::Queue(queue)],
    })
}

/// The match of a leg: the tunnel's outer headers, if any, then the
/// (inner) packet's addresses, protocol and ports. A full rule matches
/// only the frames the NIC treats exactly as software would
/// (docs/offload.md, "Keeping the behaviour identical"): on every IPv4
/// header no options and not a fragment (a fragment's later pieces have no
/// ports and reach software alone); a GRE header without checksum or
/// sequence number (raw decap removes a fixed length); an outer ECN of
/// Not-ECT (RFC 6040 decapsulation then leaves the inner packet as it
/// is); and toward a tenant DF set and the TOS the pushed header carries
/// (software copies both into the outer header, a fixed header cannot).
fn pattern(leg: &Leg, full: bool) -> Result<Vec<Item>, ShapeError> {
    let l4 = l4(leg, full)?;
    let mut items = Vec::with_capacity(7);
    items.push(eth(ETHER_TYPE_IPV4));
    // Any IPv4 header a full rule matches: no options, not a fragment.
    let whole = |mut item: Item| {
        if let Item::Ipv4 {
            version_ihl,
            fragment_offset,
            ..
        } = &mut item
        {
            *version_ihl = Some(IPV4_NO_OPTIONS);
            *fragment_offset = Some(Masked {
                spec: 0,
                mask: IPV4_MF_OFFSET,
            });
        }
        item
    };
    let packet = ipv4(leg.src.0, leg.dst.0, leg.protocol);
    if let Some(t) = &leg.tunnel {
        let shape = decap_len(t);
        if usize::from(leg.decap_len) != shape {
            return Err(ShapeError::DecapLen {
                spec: leg.decap_len,
                shape,
            });
        }
        let mut outer = ipv4(t.host, t.local, IPPROTO_GRE);
        if full {
            outer = whole(outer);
            if let Item::Ipv4 { tos, .. } = &mut outer {
                *tos = Some(Masked {
                    spec: 0,
                    mask: ECN_MASK,
                });
            }
        }
        items.push(outer);
        let flag = |v: bool| full.then_some(v);
        items.push(Item::Gre {
            protocol: Some(if t.gretap {
                ETHER_TYPE_TEB
            } else {
                ETHER_TYPE_IPV4
            }),
            checksum_present: flag(false),
            key_present: Some(true),
            sequence_present: flag(false),
        });
        items.push(Item::GreKey(t.key));
        if t.gretap {
            items.push(eth(ETHER_TYPE_IPV4));
        }
        items.push(if full { whole(packet) } else { packet });
    } else {
        if usize::from(leg.decap_len) != ETH_LEN && leg.decap_len != 0 {
            return Err(ShapeError::DecapLen {
                spec: leg.decap_len,
                shape: ETH_LEN,
            });
        }
        items.push(if full {
            toward_tenant(whole(packet), pushed_tos(leg))
        } else {
            packet
        });
    }
    items.push(l4);
    Ok(items)
}

/// A packet going into a tunnel: DF set (and not a fragment), and its TOS
/// that of the pushed header, `tos`. Software copies DF and the whole TOS
/// byte (DSCP, RFC 2983's uniform model; ECN, RFC 6040's normal mode)
/// into the outer header per packet (pipeline/encap.rs); the NIC pushes
/// the same bytes for every frame, right only for these.
fn toward_tenant(mut item: Item, pushed: u8) -> Item {
    if let Item::Ipv4 {
        tos,
        fragment_offset,
        ..
    } = &mut item
    {
        *fragment_offset = Some(Masked {
            spec: IPV4_DF,
            mask: IPV4_DF | IPV4_MF_OFFSET,
        });
        *tos = Some(Masked::<u8>::exact(pushed));
    }
    item
}

/// The TOS byte of the tunnel header a public-side leg pushes (0 when it
/// has no IPv4 header, which [`full`] refuses anyway).
fn pushed_tos(leg: &Leg) -> u8 {
    encap_bytes(leg).get(ETH_LEN + 1).copied().unwrap_or(0)
}

/// The transport item: both ports exactly; a full TCP rule only with FIN,
/// SYN and RST clear.
fn l4(leg: &Leg, full: bool) -> Result<Item, ShapeError> {
    let src = Some(Masked::<u16>::exact(leg.src.1));
    let dst = Some(Masked::<u16>::exact(leg.dst.1));
    match leg.protocol {
        IPPROTO_TCP => Ok(Item::Tcp {
            src,
            dst,
            flags: full.then_some(Masked {
                spec: 0,
                mask: TCP_FIN_SYN_RST,
            }),
        }),
        IPPROTO_UDP => Ok(Item::Udp { src, dst }),
        p => Err(ShapeError::Protocol(p)),
    }
}

fn eth(ether_type: u16) -> Item {
    Item::Eth {
        dst: None,
        src: None,
        ether_type: Some(ether_type),
    }
}

fn ipv4(src: u32, dst: u32, protocol: u8) -> Item {
    Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        src: Some(Masked::<u32>::exact(src)),
        dst: Some(Masked::<u32>::exact(dst)),
        protocol: Some(protocol),
    }
}

/// NAT's rewrites: the source's address and port, the destination's.
fn rewrites(leg: &Leg) -> Vec<Action> {
    let mut out = Vec::with_capacity(4);
    if let Some((addr, port)) = leg.set_src {
        out.extend([Action::SetIpv4Src(addr), Action::SetTpSrc(port)]);
    }
    if let Some((addr, port)) = leg.set_dst {
        out.extend([Action::SetIpv4Dst(addr), Action::SetTpDst(port)]);
    }
    out
}

/// Bytes of outer headers a frame in tunnel `t` arrives with: Ethernet,
/// IPv4 (no options), GRE with key, and gretap's inner Ethernet.
pub fn decap_len(t: &TunnelMatch) -> usize {
    ETH_LEN + IPV4_LEN + GRE_KEY_LEN + if t.gretap { ETH_LEN } else { 0 }
}

/// The headers `raw_decap` removes, as bytes that show them (the PMD
/// reads their types and length, not their values): Ethernet on the
/// public side; the tunnel's outer Ethernet, IPv4, GRE with its key and
/// gretap's inner Ethernet on the underlay side.
fn decap_bytes(leg: &Leg) -> Vec<u8> {
    let Some(t) = &leg.tunnel else {
        return eth_bytes(ETHER_TYPE_IPV4).to_vec();
    };
    let mut out = Vec::with_capacity(decap_len(t));
    out.extend_from_slice(&eth_bytes(ETHER_TYPE_IPV4));
    let mut ip = [0u8; IPV4_LEN];
    ip[0] = 0x45;
    ip[8] = 64;
    ip[9] = IPPROTO_GRE;
    ip[12..16].copy_from_slice(&t.host.to_be_bytes());
    ip[16..20].copy_from_slice(&t.local.to_be_bytes());
    out.extend_from_slice(&ip);
    let protocol = if t.gretap {
        ETHER_TYPE_TEB
    } else {
        ETHER_TYPE_IPV4
    };
    out.extend_from_slice(&0x2000u16.to_be_bytes());
    out.extend_from_slice(&protocol.to_be_bytes());
    out.extend_from_slice(&t.key.to_be_bytes());
    if t.gretap {
        out.extend_from_slice(&eth_bytes(ETHER_TYPE_IPV4));
    }
    out
}

/// The headers `raw_encap` pushes: the leg's, with a tunnel's outer IPv4
/// total length and checksum zeroed, since the NIC writes both for each
/// frame (a checksum of the header without its length would be wrong for
/// every frame, and testpmd's `set raw_encap` has no field for either),
/// and DF set: the rule matches only inner packets with DF set, whose
/// outer header software gives DF too ([`toward_tenant`]).
fn encap_bytes(leg: &Leg) -> Vec<u8> {
    let mut out = leg.encap.to_vec();
    let is_ipv4 = out.get(12..14) == Some(&ETHER_TYPE_IPV4.to_be_bytes()[..])
        && out.get(ETH_LEN).is_some_and(|v| v >> 4 == 4);
    if is_ipv4 && out.len() >= ETH_LEN + IPV4_LEN {
        out[ETH_LEN + 2..ETH_LEN + 4].fill(0);
        out[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        if leg.tunnel.is_none() {
            let word = u16::from_be_bytes([out[ETH_LEN + 6], out[ETH_LEN + 7]]) | IPV4_DF;
            out[ETH_LEN + 6..ETH_LEN + 8].copy_from_slice(&word.to_be_bytes());
        }
    }
    out
}

/// An Ethernet header of `ether_type` with zero addresses.
fn eth_bytes(ether_type: u16) -> [u8; ETH_LEN] {
    let mut h = [0u8; ETH_LEN];
    h[12..].copy_from_slice(&ether_type.to_be_bytes());
    h
}

#[cfg(test)]
mod tests;
