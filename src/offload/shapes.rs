//! What an offloaded flow's legs become on the NIC: each [`Leg`] lowered
//! to one `rte_flow` [`Rule`], for full offload (match, decapsulate,
//! rewrite, encapsulate, count, forward) or partial (match, mark, queue).
//!
//! Pure: a rule is data, so the shapes are tested here without DPDK and
//! checked at the real call boundary by `flowcheck/tests/scenario.rs`.
//! The shapes are those of docs/offload.md ("The flows, rule by rule";
//! "Groups, priorities and static rules"). Full rules come in two
//! levels: static root rules (group 0) that check the headers every
//! offloaded frame must have and jump to group 1, where the per-flow
//! rules match the rest:
//!
//! - root, underlay port, one per tunnel ([`tunnel_root`]): `eth / ipv4
//!   (no options, not a fragment, ECN Not-ECT) src is HOST dst is LOCAL
//!   proto is 47 / gre (no C, no S) protocol is P k_bit is 1 / gre_key
//!   value is K / [eth dst is MAC /] ipv4 (no options, not a fragment)` →
//!   `jump group 3`, where one rule per GRE protocol ([`tunnel_check`])
//!   takes frames whose outer and inner IPv4 headers are intact
//!   (`integrity`: checksums that verify) on to `jump group 1`; root,
//!   public port ([`public_root`]): `eth / ipv4 (no options, DF unless
//!   `[offload] outer_df = "set"`, not a fragment, TOS 0) / integrity
//!   (level 1)` → `jump group 1`; before them, per port, punt rules
//!   ([`public_punt`], [`tunnel_punt`]): a packet whose TTL would expire
//!   (`ttl spec 0 ttl mask 0xfe`, the inner one on the underlay side) →
//!   `jump group 2`, an empty group, so to software;
//! - public side, per flow (a reply toward a tenant, or a connection
//!   opened from outside): `eth / ipv4 src is R dst is E proto is P / tcp
//!   src is Rp dst is Ep flags spec 0 flags mask 0x07` → `set_ipv4_dst,
//!   set_tp_dst, dec_ttl, raw_decap (Ethernet), raw_encap (the tunnel),
//!   count, represented_port (underlay)`;
//! - underlay side, per flow: `eth / ipv4 proto is 47 / gre k_bit is 1 /
//!   gre_key value is K / [eth /] ipv4 … / tcp …` → `raw_decap (outer
//!   headers), raw_encap (Ethernet toward the next hop), set_ipv4_src,
//!   set_tp_src, dec_ttl, count, represented_port (public)`.
//!
//! Partial rules are one level, in group 0 (ice has no other).
//!
//! The rewrites come before the encapsulation on the public side (after
//! it, the IPv4 header would be the tunnel's) and after the
//! decapsulation on the underlay side (before it, the outer one). Full
//! rules are E-Switch (`transfer`) rules: frames leave by another port
//! than they came in on, which only the switch domain can do; a NIC whose
//! ports share none refuses them at the probe ([`super::probe`]).

use ctl::config::OuterDf;
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

/// The groups full (transfer) rules are in (docs/offload.md, "Groups,
/// priorities and static rules"): a few static rules in the root group
/// check the headers every offloaded frame must have and jump to
/// [`FLOW_GROUP`], where the per-flow rules are. mlx5's root table is
/// "managed by firmware" and slow to insert into; the per-flow rules stay
/// out of it, and their testpmd lines fit what testpmd reads.
pub const ROOT_GROUP: u32 = 0;
pub const FLOW_GROUP: u32 = 1;
/// Partial (NIC-domain) per-flow rules: the root group, since ice takes
/// no other ("Not support group.").
pub const PARTIAL_GROUP: u32 = 0;
pub const FLOW_PRIORITY: u32 = 0;
/// The punt rules' priority: first in the root group, before the deny
/// rules and the root rules, so that no packet whose TTL would expire
/// reaches a rule that jumps to the flows' group ([`public_punt`],
/// [`tunnel_punt`]).
pub const PUNT_PRIORITY: u32 = 0;
/// The group a punt rule jumps to: nothing is ever made in it, so a frame
/// sent there misses, and a miss in a non-root group takes the domain's
/// default miss, to software, as a miss in the root group does
/// (docs/offload.md, "TTL ≤ 1 reaches software").
pub const PUNT_GROUP: u32 = 2;
/// The tenants' deny rules' first priority (`super::deny`): right after
/// the punt rule; they take the priorities up to the public root rule's.
pub const DENY_FIRST_PRIORITY: u32 = PUNT_PRIORITY + 1;
/// The public port's root rule's priority: after the tenants' deny rules
/// (priorities [`DENY_FIRST_PRIORITY`] to this one less, 64 of them),
/// which come first in the same group.
pub const PUBLIC_ROOT_PRIORITY: u32 = DENY_FIRST_PRIORITY + 64;
/// A tunnel's root rule's priority: after the underlay port's punt rules.
pub const TUNNEL_ROOT_PRIORITY: u32 = PUNT_PRIORITY + 1;
/// An IPv4 TTL of 0 or 1: forwarding would expire it, and software
/// answers Time Exceeded (pipeline/route.rs, `forward_checks`) where a
/// rule's `dec_ttl` would send it on.
pub const TTL_EXPIRES: Masked<u8> = Masked {
    spec: 0,
    mask: 0xfe,
};
/// The group a tunnel's root rule jumps to, where one rule per GRE
/// protocol checks the outer and inner IPv4 headers' integrity before
/// the flows' group ([`tunnel_check`]): the tunnel's root rule has no
/// room left for two more items in testpmd's line.
pub const CHECK_GROUP: u32 = 3;
/// The outermost headers, and those inside the first tunnel, as an
/// integrity item's `level` says (DPDK's `rte_flow_item_integrity`,
/// which follows `rte_flow_action_rss.level`: 0 the PMD's default, 1 the
/// outermost, 2 and on the inner ones).
pub const OUTER: u32 = 1;
pub const INNER: u32 = 2;
/// The static SNAT steering rules' priority: after any flow's own rule.
pub const STEERING_PRIORITY: u32 = 1;
/// The TOS byte the tables' tunnel header carries (pipeline/encap.rs
/// writes the inner packet's over it per frame): the public side's root
/// rule lets through only packets whose TOS is this, the one a fixed
/// pushed header gives them ([`public_root`]).
pub const PUSHED_TOS: u8 = 0;

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
    /// The pushed tunnel header's TOS is not [`PUSHED_TOS`], which the
    /// public side's root rule passes.
    PushedTos(u8),
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
            ShapeError::PushedTos(t) => write!(
                f,
                "the pushed header's TOS is {t:#04x}, the root rule passes {PUSHED_TOS:#04x}"
            ),
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

/// The full-offload rule of `leg`, created on `leg.in_port` in
/// [`FLOW_GROUP`]: reached only by frames that passed the root group's
/// header checks ([`tunnel_root`], [`public_root`]).
pub fn full(leg: &Leg) -> Result<Rule, ShapeError> {
    let pattern = pattern(leg, true)?;
    if leg.encap.is_empty() {
        return Err(ShapeError::NoEncap);
    }
    if leg.tunnel.is_none() && pushed_tos(leg) != PUSHED_TOS {
        return Err(ShapeError::PushedTos(pushed_tos(leg)));
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
        attr: transfer(FLOW_GROUP),
        pattern,
        actions,
    })
}

/// A transfer rule's attributes in `group`.
pub fn transfer(group: u32) -> Attr {
    Attr {
        group,
        priority: FLOW_PRIORITY,
        ingress: false,
        egress: false,
        transfer: true,
    }
}

/// The partial-offload rule of `leg`: the flow's addresses, protocol and
/// ports (no TCP flags: ice refuses a mask on them, and a FIN reaching
/// software marked is software's as any frame; no fragment or header
/// fields: every frame is software's anyway), and the frame goes to RX
/// queue `queue` (its flow's worker's) with `mark`.
pub fn partial(leg: &Leg, mark: u32, queue: u16) -> Result<Rule, ShapeError> {
    Ok(Rule {
        attr: Attr {
            group: PARTIAL_GROUP,
            priority: FLOW_PRIORITY,
            ..Attr::INGRESS
        },
        pattern: pattern(leg, false)?,
        actions: vec![Action::Mark(mark), Action::Queue(queue)],
    })
}

/// The match of a leg: the tunnel's, if any (the outer IPv4 header, GRE
/// with the key), then the (inner) packet's addresses, protocol and
/// ports; a `full` TCP rule only with FIN, SYN and RST clear. No header
/// checks: a full rule is reached only through a root rule that made
/// them ([`tunnel_root`], [`public_root`]), and every frame a partial
/// rule marks reaches software, which treats it as any other. A full
/// rule leaves the outer addresses to the root rule: software takes a
/// frame of a tenant's flow from any of the tenant's hosts
/// (pipeline/underlay.rs: the key names the tenant, `has_host` accepts
/// any of its hosts, the flow is looked up by the inner tuple), so the
/// key and the inner tuple are the whole of the flow's match. A partial
/// rule, alone in the root group, keeps them.
fn pattern(leg: &Leg, full: bool) -> Result<Vec<Item>, ShapeError> {
    let mut items = Vec::with_capacity(7);
    items.push(eth(ETHER_TYPE_IPV4));
    if let Some(t) = &leg.tunnel {
        let shape = decap_len(t);
        if usize::from(leg.decap_len) != shape {
            return Err(ShapeError::DecapLen {
                spec: leg.decap_len,
                shape,
            });
        }
        let (outer, protocol) = if full {
            let outer = Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: None,
                dst: None,
                protocol: Some(IPPROTO_GRE),
            };
            (outer, None)
        } else {
            (ipv4(t.host, t.local, IPPROTO_GRE), Some(gre_protocol(t)))
        };
        items.push(outer);
        items.push(Item::Gre {
            protocol,
            checksum_present: None,
            key_present: Some(true),
            sequence_present: None,
        });
        items.push(Item::GreKey(t.key));
        if t.gretap {
            items.push(eth(ETHER_TYPE_IPV4));
        }
    } else if usize::from(leg.decap_len) != ETH_LEN && leg.decap_len != 0 {
        return Err(ShapeError::DecapLen {
            spec: leg.decap_len,
            shape: ETH_LEN,
        });
    }
    items.push(ipv4(leg.src.0, leg.dst.0, leg.protocol));
    items.push(l4(leg, full)?);
    Ok(items)
}

/// The root rule of tunnel `t` on the underlay port: the frames a full
/// rule takes, as far as they do not depend on the flow (docs/offload.md,
/// "Keeping the behaviour identical"), jump to [`FLOW_GROUP`]. Every IPv4
/// header, outer and inner, without options and not a fragment (a
/// fragment's later pieces have no ports and reach software alone); the
/// outer one from the tenant's host to the gateway, ECN Not-ECT (RFC 6040
/// decapsulation then leaves the inner packet as it is); GRE without
/// checksum or sequence number (raw decap removes a fixed length), the
/// tenant's protocol and key; in gretap, the inner Ethernet to the
/// tenant's MAC `mac` (software drops a frame to another). It jumps to
/// [`CHECK_GROUP`], whose rule checks both headers' integrity
/// ([`tunnel_check`]) on the way to [`FLOW_GROUP`].
pub fn tunnel_root(t: &TunnelMatch, mac: [u8; 6]) -> Rule {
    let mut outer = whole(ipv4(t.host, t.local, IPPROTO_GRE));
    if let Item::Ipv4 { tos, .. } = &mut outer {
        *tos = Some(Masked {
            spec: 0,
            mask: ECN_MASK,
        });
    }
    let mut pattern = vec![
        eth(ETHER_TYPE_IPV4),
        outer,
        Item::Gre {
            protocol: Some(gre_protocol(t)),
            checksum_present: Some(false),
            key_present: Some(true),
            sequence_present: Some(false),
        },
        Item::GreKey(t.key),
    ];
    if t.gretap {
        pattern.push(Item::Eth {
            dst: Some(Masked::<[u8; 6]>::exact(mac)),
            src: None,
            ether_type: Some(ETHER_TYPE_IPV4),
        });
    }
    pattern.push(whole(any_ipv4()));
    Rule {
        attr: Attr {
            priority: TUNNEL_ROOT_PRIORITY,
            ..transfer(ROOT_GROUP)
        },
        pattern,
        actions: vec![Action::Jump(CHECK_GROUP)],
    }
}

/// The rule of [`CHECK_GROUP`] for tunnels of GRE protocol `gretap`'s,
/// which every tunnel's root rule jumps to: frames whose outer and inner
/// IPv4 headers are intact ([`intact`]) go on to the flows' group; a
/// damaged one misses here and reaches software, which drops it
/// (pipeline/stage.rs, `ipv4_checksum_ok`, for the outer header;
/// pipeline/underlay.rs, `InnerInvalid`, for the inner), where a flow's
/// rule would rewrite it and send it on with checksums made good. The
/// headers the items check are in the pattern, as mlx5 requires, each
/// item right after its header: DPDK 22.11's mlx5 reads the level in
/// its software-steering path, but its HW-steering path
/// (`mlx5dr_definer_conv_item_integrity`) takes an item after a tunnel
/// item as inner, whatever its level. The root rule checked everything
/// else.
pub fn tunnel_check(gretap: bool) -> Rule {
    let mut pattern = any_tunnel(gretap, Some(intact(OUTER)));
    pattern.extend([any_ipv4(), intact(INNER)]);
    Rule {
        attr: Attr {
            priority: FLOW_PRIORITY,
            ..transfer(CHECK_GROUP)
        },
        pattern,
        actions: vec![Action::Jump(FLOW_GROUP)],
    }
}

/// The integrity item taking only frames whose IPv4 header at `level`
/// passes the NIC's layer-3 checks and whose checksum verifies: software
/// drops a header whose checksum does not (RFC 1812 §5.2.2), and a rule's
/// rewrite would make it good again. It goes right after the IPv4 item
/// of that level ([`tunnel_check`] says why).
pub fn intact(level: u32) -> Item {
    Item::Integrity {
        level,
        l3_ok: true,
        ipv4_csum_ok: true,
    }
}

/// The public port's punt rule: a packet whose TTL would expire
/// ([`TTL_EXPIRES`]) jumps to the empty [`PUNT_GROUP`], so it reaches
/// software, which answers Time Exceeded, or decides it as it would
/// any packet (the firewall first for a new flow), instead of a flow's
/// rule sending it on with `dec_ttl`. Before every other rule of the
/// root group: deny passes and the root rule jump to the flows.
pub fn public_punt() -> Rule {
    punt(vec![eth(ETHER_TYPE_IPV4), ttl_expires(any_ipv4())])
}

/// An underlay port's punt rule for tunnels carrying `gretap`'s
/// protocol: the same on the inner IPv4 header, which software
/// forwards (and decrements) after decapsulation, whatever the outer
/// headers, host or key (software decides all of them).
pub fn tunnel_punt(gretap: bool) -> Rule {
    let mut pattern = any_tunnel(gretap, None);
    pattern.push(ttl_expires(any_ipv4()));
    punt(pattern)
}

fn punt(pattern: Vec<Item>) -> Rule {
    Rule {
        attr: Attr {
            priority: PUNT_PRIORITY,
            ..transfer(ROOT_GROUP)
        },
        pattern,
        actions: vec![Action::Jump(PUNT_GROUP)],
    }
}

/// `item` (an IPv4 one) taking only packets whose TTL would expire.
fn ttl_expires(mut item: Item) -> Item {
    if let Item::Ipv4 { ttl, .. } = &mut item {
        *ttl = Some(TTL_EXPIRES);
    }
    item
}

/// The root rule of the public port: packets going into a tunnel jump to
/// [`FLOW_GROUP`] when a fixed pushed header is right for them. No
/// options and not a fragment, and the TOS [`PUSHED_TOS`]: software
/// copies DF and the whole TOS byte (DSCP, RFC 2983's uniform model; ECN,
/// RFC 6040's normal mode) into the outer header per packet
/// (pipeline/encap.rs); the NIC pushes the same bytes for every frame,
/// right only for these. The pushed header has DF set ([`encap_bytes`]):
/// with [`OuterDf::Copy`] the rule takes only packets with DF set, for
/// which that is software's DF too; with [`OuterDf::Set`] it does not
/// look at DF (mlx5 refuses a DF match: docs/offload.md, "mlx5 and DF"),
/// and a packet sent without DF leaves with DF set, the operator's
/// choice. And an intact header ([`intact`]): software drops one whose
/// checksum does not verify, which the NIC's rewrite would make good.
pub fn public_root(outer_df: OuterDf) -> Rule {
    Rule {
        attr: Attr {
            priority: PUBLIC_ROOT_PRIORITY,
            ..transfer(ROOT_GROUP)
        },
        pattern: vec![
            eth(ETHER_TYPE_IPV4),
            public_root_ipv4(outer_df),
            intact(OUTER),
        ],
        actions: vec![Action::Jump(FLOW_GROUP)],
    }
}

/// The IPv4 item of [`public_root`]: the header checks a packet must
/// pass to go on to the flows' group. The deny rules in front of the
/// root rule make the same checks (`super::deny`).
pub fn public_root_ipv4(outer_df: OuterDf) -> Item {
    let mut packet = whole(any_ipv4());
    if let Item::Ipv4 {
        tos,
        fragment_offset,
        ..
    } = &mut packet
    {
        if outer_df == OuterDf::Copy {
            *fragment_offset = Some(Masked {
                spec: IPV4_DF,
                mask: IPV4_DF | IPV4_MF_OFFSET,
            });
        }
        *tos = Some(Masked::<u8>::exact(PUSHED_TOS));
    }
    packet
}

/// The headers of any tunnel of GRE protocol `gretap`'s, up to the inner
/// IPv4 header (not included): any outer IPv4 header carrying GRE,
/// `outer_check` right after it, GRE of that protocol with any flags, and
/// for gretap the inner Ethernet header.
fn any_tunnel(gretap: bool, outer_check: Option<Item>) -> Vec<Item> {
    let mut outer = any_ipv4();
    if let Item::Ipv4 { protocol, .. } = &mut outer {
        *protocol = Some(IPPROTO_GRE);
    }
    let mut pattern = vec![eth(ETHER_TYPE_IPV4), outer];
    pattern.extend(outer_check);
    pattern.push(Item::Gre {
        protocol: Some(if gretap {
            ETHER_TYPE_TEB
        } else {
            ETHER_TYPE_IPV4
        }),
        checksum_present: None,
        key_present: None,
        sequence_present: None,
    });
    if gretap {
        pattern.push(eth(ETHER_TYPE_IPV4));
    }
    pattern
}

/// The GRE protocol of tunnel `t`'s frames.
fn gre_protocol(t: &TunnelMatch) -> u16 {
    if t.gretap {
        ETHER_TYPE_TEB
    } else {
        ETHER_TYPE_IPV4
    }
}

/// `item` (an IPv4 one) taking only whole packets: no options, not a
/// fragment.
fn whole(mut item: Item) -> Item {
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
}

fn any_ipv4() -> Item {
    Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        ttl: None,
        src: None,
        dst: None,
        protocol: None,
    }
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

pub fn eth(ether_type: u16) -> Item {
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
        ttl: None,
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
/// and DF set: with [`OuterDf::Copy`] the root rule passes only inner
/// packets with DF set, whose outer header software gives DF too; with
/// [`OuterDf::Set`] every frame leaves with DF ([`public_root`]).
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
