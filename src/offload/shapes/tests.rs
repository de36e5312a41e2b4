//! The shapes of the reference scenario's flow from 1.1.1.7 to t1's
//! elastic IP 2.2.2.11 (10.0.0.7 behind gretap key 1000), its two legs
//! written out by hand from DESIGN.md's addresses.

use super::*;
use arrayvec::ArrayVec;

const CLIENT: u32 = 0x0101_0107; // 1.1.1.7
const EIP: u32 = 0x0202_020b; // 2.2.2.11
const PRIVATE: u32 = 0x0a00_0007; // 10.0.0.7
const HOST: u32 = 0xaca8_000b; // 172.168.0.11
const LOCAL: u32 = 0xaca8_0001; // 172.168.0.1
const PUBLIC_PORT: u16 = 0;
const UNDERLAY_PORT: u16 = 1;

fn bytes(parts: &[&[u8]]) -> ArrayVec<u8, { dataplane::tables::MAX_TUNNEL_HEADER }> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// The tunnel toward 172.168.0.11, as encap writes it (lengths and
/// checksum left to the NIC).
fn tunnel_header() -> ArrayVec<u8, { dataplane::tables::MAX_TUNNEL_HEADER }> {
    bytes(&[
        &[
            0x02, 0, 0, 0, 0x0b, 0x0b, 0x02, 0, 0, 0, 0x01, 0x01, 0x08, 0x00,
        ],
        &[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0],
        &[172, 168, 0, 1, 172, 168, 0, 11],
        &[0x20, 0x00, 0x65, 0x58, 0, 0, 0x03, 0xe8],
        &[
            0x02, 0, 0, 0, 0x0a, 0x07, 0x02, 0, 0, 0, 0x10, 0x00, 0x08, 0x00,
        ],
    ])
}

fn public_leg(protocol: u8) -> Leg {
    Leg {
        in_port: PUBLIC_PORT,
        tunnel: None,
        protocol,
        src: (CLIENT, 40000),
        dst: (EIP, 22),
        decap_len: 0,
        set_src: None,
        set_dst: Some((PRIVATE, 22)),
        encap: tunnel_header(),
        out_port: UNDERLAY_PORT,
        too_big: false,
    }
}

fn underlay_leg(protocol: u8) -> Leg {
    Leg {
        in_port: UNDERLAY_PORT,
        tunnel: Some(TunnelMatch {
            host: HOST,
            local: LOCAL,
            key: 1000,
            gretap: true,
        }),
        protocol,
        src: (PRIVATE, 22),
        dst: (CLIENT, 40000),
        decap_len: 56,
        set_src: Some((EIP, 22)),
        set_dst: None,
        encap: bytes(&[&[
            0x02, 0, 0, 0, 0x07, 0x07, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
        ]]),
        out_port: PUBLIC_PORT,
        too_big: false,
    }
}

fn exact_ipv4(src: u32, dst: u32, protocol: u8) -> Item {
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

/// An IPv4 header a full rule matches: no options, not a fragment, and
/// `df_tos`: DF set and this TOS (toward a tenant), or `ecn`: outer
/// Not-ECT (a tunnel's outer header).
fn whole_ipv4(src: u32, dst: u32, protocol: u8, df_tos: Option<u8>, ecn: bool) -> Item {
    Item::Ipv4 {
        version_ihl: Some(0x45),
        tos: match (df_tos, ecn) {
            (Some(t), _) => Some(Masked::<u8>::exact(t)),
            (None, true) => Some(Masked {
                spec: 0,
                mask: 0x03,
            }),
            (None, false) => None,
        },
        fragment_offset: Some(match df_tos {
            Some(_) => Masked {
                spec: 0x4000,
                mask: 0x7fff,
            },
            None => Masked {
                spec: 0,
                mask: 0x3fff,
            },
        }),
        ttl: None,
        src: Some(Masked::<u32>::exact(src)),
        dst: Some(Masked::<u32>::exact(dst)),
        protocol: Some(protocol),
    }
}

fn gre(protocol: u16) -> Item {
    Item::Gre {
        protocol: Some(protocol),
        checksum_present: Some(false),
        key_present: Some(true),
        sequence_present: Some(false),
    }
}

/// A per-flow rule's outer header: GRE, whatever else (the root rule
/// checked it).
fn gre_ipv4() -> Item {
    Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        ttl: None,
        src: None,
        dst: None,
        protocol: Some(47),
    }
}

/// A per-flow rule's GRE: keyed, whatever else (the root rule checked
/// the flags and protocol).
fn keyed_gre() -> Item {
    Item::Gre {
        protocol: None,
        checksum_present: None,
        key_present: Some(true),
        sequence_present: None,
    }
}

fn eth_ipv4() -> Item {
    Item::Eth {
        dst: None,
        src: None,
        ether_type: Some(0x0800),
    }
}

fn tcp(src: u16, dst: u16) -> Item {
    Item::Tcp {
        src: Some(Masked::<u16>::exact(src)),
        dst: Some(Masked::<u16>::exact(dst)),
        flags: Some(Masked {
            spec: 0,
            mask: 0x07,
        }),
    }
}

/// Per-flow full rules: group 1, reached by a root rule's jump.
const TRANSFER: Attr = Attr {
    group: 1,
    priority: 0,
    ingress: false,
    egress: false,
    transfer: true,
};

#[test]
fn public_side_rewrites_before_it_encapsulates() {
    let rule = full(&public_leg(6)).unwrap();
    assert_eq!(
        rule,
        Rule {
            attr: TRANSFER,
            pattern: vec![eth_ipv4(), exact_ipv4(CLIENT, EIP, 6), tcp(40000, 22)],
            actions: vec![
                Action::SetIpv4Dst(PRIVATE),
                Action::SetTpDst(22),
                Action::DecTtl,
                Action::RawDecap(vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00]),
                Action::RawEncap(tunnel_header().to_vec()),
                Action::Count,
                Action::RepresentedPort(UNDERLAY_PORT),
            ],
        }
    );
}

#[test]
fn underlay_side_decapsulates_before_it_rewrites() {
    let rule = full(&underlay_leg(6)).unwrap();
    let mut outer = vec![0u8; 12];
    outer.extend_from_slice(&[0x08, 0x00]);
    outer.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 47, 0, 0]);
    outer.extend_from_slice(&[172, 168, 0, 11, 172, 168, 0, 1]);
    outer.extend_from_slice(&[0x20, 0x00, 0x65, 0x58, 0, 0, 0x03, 0xe8]);
    outer.extend_from_slice(&[0; 12]);
    outer.extend_from_slice(&[0x08, 0x00]);
    assert_eq!(outer.len(), 56);
    assert_eq!(
        rule,
        Rule {
            attr: TRANSFER,
            pattern: vec![
                eth_ipv4(),
                gre_ipv4(),
                keyed_gre(),
                Item::GreKey(1000),
                eth_ipv4(),
                exact_ipv4(PRIVATE, CLIENT, 6),
                tcp(22, 40000),
            ],
            actions: vec![
                Action::RawDecap(outer),
                Action::RawEncap(vec![
                    0x02, 0, 0, 0, 0x07, 0x07, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00
                ]),
                Action::SetIpv4Src(EIP),
                Action::SetTpSrc(22),
                Action::DecTtl,
                Action::Count,
                Action::RepresentedPort(PUBLIC_PORT),
            ],
        }
    );
}

/// IPv4 in GRE: no inner Ethernet to match or remove.
#[test]
fn plain_gre_has_no_inner_ethernet() {
    let mut leg = underlay_leg(17);
    leg.tunnel.as_mut().unwrap().gretap = false;
    leg.decap_len = 42;
    let rule = full(&leg).unwrap();
    assert_eq!(
        rule.pattern,
        vec![
            eth_ipv4(),
            gre_ipv4(),
            keyed_gre(),
            Item::GreKey(1000),
            exact_ipv4(PRIVATE, CLIENT, 17),
            Item::Udp {
                src: Some(Masked::<u16>::exact(22)),
                dst: Some(Masked::<u16>::exact(40000)),
            },
        ]
    );
    let Action::RawDecap(outer) = &rule.actions[0] else {
        panic!("{:?}", rule.actions);
    };
    assert_eq!(outer.len(), 42);
    assert_eq!(&outer[34..38], &[0x20, 0x00, 0x08, 0x00]);
}

/// UDP has no flags: every datagram of the flow is the NIC's.
#[test]
fn udp_matches_both_ports_and_nothing_else() {
    let rule = full(&public_leg(17)).unwrap();
    assert_eq!(
        rule.pattern[2],
        Item::Udp {
            src: Some(Masked::<u16>::exact(40000)),
            dst: Some(Masked::<u16>::exact(22)),
        }
    );
}

/// A partial rule matches the flow's addresses, protocol and ports only:
/// no TCP flags (ice refuses a mask on them) and no header fields, since
/// every frame it marks is software's anyway.
#[test]
fn partial_matches_the_flow_and_marks_for_the_owner_queue() {
    let leg = underlay_leg(6);
    let rule = partial(&leg, mark(FlowId::new(41)).unwrap(), 3).unwrap();
    assert_eq!(rule.attr, Attr::INGRESS);
    assert_eq!(
        rule.pattern,
        vec![
            eth_ipv4(),
            exact_ipv4(HOST, LOCAL, 47),
            Item::Gre {
                protocol: Some(0x6558),
                checksum_present: None,
                key_present: Some(true),
                sequence_present: None,
            },
            Item::GreKey(1000),
            eth_ipv4(),
            exact_ipv4(PRIVATE, CLIENT, 6),
            Item::Tcp {
                src: Some(Masked::<u16>::exact(22)),
                dst: Some(Masked::<u16>::exact(40000)),
                flags: None,
            },
        ]
    );
    assert_eq!(rule.actions, vec![Action::Mark(42), Action::Queue(3)]);
    let public = partial(&public_leg(6), 1, 0).unwrap();
    assert_eq!(
        public.pattern[1..],
        [
            exact_ipv4(CLIENT, EIP, 6),
            Item::Tcp {
                src: Some(Masked::<u16>::exact(40000)),
                dst: Some(Masked::<u16>::exact(22)),
                flags: None,
            }
        ]
    );
}

/// 0 means no mark; mlx5 takes marks below 0xFFFFEF.
#[test]
fn marks_are_the_id_plus_one_below_the_limit() {
    assert_eq!(mark(FlowId::new(0)), Some(1));
    assert_eq!(mark(FlowId::new(0x00ff_ffed)), Some(0x00ff_ffee));
    assert_eq!(mark(FlowId::new(0x00ff_ffee)), None);
    assert_eq!(mark(FlowId::new(u32::MAX)), None);
}

#[test]
fn what_the_shapes_cannot_say_is_refused() {
    assert_eq!(full(&public_leg(1)), Err(ShapeError::Protocol(1)));
    assert_eq!(
        partial(&public_leg(47), 1, 0),
        Err(ShapeError::Protocol(47))
    );
    let mut leg = underlay_leg(6);
    leg.decap_len = 60; // GRE with a checksum
    assert_eq!(
        full(&leg),
        Err(ShapeError::DecapLen {
            spec: 60,
            shape: 56
        })
    );
    let mut leg = public_leg(6);
    leg.encap.clear();
    assert_eq!(full(&leg), Err(ShapeError::NoEncap));
}

/// The NIC writes the outer IPv4 length and checksum of each frame: a
/// spec's header that carries them is pushed with both zero.
#[test]
fn the_tunnel_header_is_pushed_without_length_or_checksum() {
    let mut leg = public_leg(17);
    leg.encap[16..18].copy_from_slice(&[0, 84]);
    leg.encap[24..26].copy_from_slice(&[0x21, 0x73]);
    let rule = full(&leg).unwrap();
    assert!(
        rule.actions
            .contains(&Action::RawEncap(tunnel_header().to_vec())),
        "{:?}",
        rule.actions
    );
    // The Ethernet header toward the public side has no IPv4 in it to
    // touch.
    let rule = full(&underlay_leg(17)).unwrap();
    assert_eq!(
        rule.actions[1],
        Action::RawEncap(underlay_leg(17).encap.to_vec())
    );
}

/// Toward a tenant software copies the inner DF and TOS into the outer
/// header (pipeline/encap.rs): the NIC's fixed header has DF set, and the
/// public root rule passes only packets with DF set and the header's TOS
/// ([`PUSHED_TOS`]); a header with another TOS has no root rule to pass.
#[test]
fn the_tunnel_header_has_df_and_its_tos_is_the_root_rules() {
    let mut leg = public_leg(6);
    leg.encap[20] = 0; // DF clear in the tables' header
    let rule = full(&leg).unwrap();
    let mut want = leg.encap.to_vec();
    want[20] = 0x40;
    assert!(
        rule.actions.contains(&Action::RawEncap(want)),
        "{:?}",
        rule.actions
    );
    leg.encap[15] = 0xb8; // a DSCP the header was given
    assert_eq!(full(&leg), Err(ShapeError::PushedTos(0xb8)));
}

/// The public root rule: whole packets with DF set and TOS 0, whose
/// header is intact, jump to the flows' group; nothing about any flow.
#[test]
fn the_public_root_rule_checks_the_headers_and_jumps() {
    let mut packet = whole_ipv4(0, 0, 0, Some(PUSHED_TOS), false);
    if let Item::Ipv4 {
        src, dst, protocol, ..
    } = &mut packet
    {
        (*src, *dst, *protocol) = (None, None, None);
    }
    assert_eq!(
        public_root(OuterDf::Copy),
        Rule {
            attr: Attr {
                group: 0,
                priority: 65,
                ..TRANSFER
            },
            pattern: vec![eth_ipv4(), packet, intact_outer()],
            actions: vec![Action::Jump(1)],
        }
    );
}

/// The integrity item of the outermost headers: layer 3 and the IPv4
/// checksum passed.
fn intact_outer() -> Item {
    Item::Integrity {
        level: 1,
        l3_ok: true,
        ipv4_csum_ok: true,
    }
}

/// `[offload] outer_df = "set"`: the public root rule does not look at DF
/// (only MF and the offset, mask 0x3fff: "not a fragment", which mlx5
/// takes), the rest as with "copy"; the pushed header has DF set either
/// way, so that with "set" a packet without DF leaves with it.
#[test]
fn with_outer_df_set_the_public_root_leaves_df_alone_and_the_header_sets_it() {
    let copy = public_root(OuterDf::Copy);
    let set = public_root(OuterDf::Set);
    let fragment = |r: &Rule| match &r.pattern[1] {
        Item::Ipv4 {
            fragment_offset, ..
        } => *fragment_offset,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fragment(&copy),
        Some(Masked {
            spec: 0x4000,
            mask: 0x7fff
        }),
        "copy: DF set, not a fragment"
    );
    assert_eq!(
        fragment(&set),
        Some(Masked {
            spec: 0,
            mask: 0x3fff
        }),
        "set: not a fragment, DF not looked at"
    );
    let mut packet = whole_ipv4(0, 0, 0, None, false);
    if let Item::Ipv4 {
        src,
        dst,
        protocol,
        tos,
        ..
    } = &mut packet
    {
        (*src, *dst, *protocol) = (None, None, None);
        *tos = Some(Masked::<u8>::exact(PUSHED_TOS));
    }
    assert_eq!(
        set,
        Rule {
            pattern: vec![eth_ipv4(), packet, intact_outer()],
            ..copy
        },
        "the TOS, options and the jump as with copy"
    );
    // The flow's rule is the same under both: its pushed header has DF.
    let mut leg = public_leg(6);
    leg.encap[20] = 0;
    let rule = full(&leg).unwrap();
    let Some(Action::RawEncap(h)) = rule
        .actions
        .iter()
        .find(|a| matches!(a, Action::RawEncap(_)))
    else {
        panic!("{rule:?}")
    };
    assert_eq!(h[20] & 0x40, 0x40, "DF in the pushed header");
}

/// A tunnel's root rule: the outer headers from the host with the key,
/// every check software needs of them, gretap's inner Ethernet to the
/// tenant's MAC and a whole inner IPv4 packet, then the jump.
#[test]
fn a_tunnel_root_rule_checks_the_outer_headers_and_jumps() {
    let leg = underlay_leg(6);
    let t = leg.tunnel.unwrap();
    let mac = [2, 0, 0, 0, 0x10, 0];
    let mut inner = whole_ipv4(0, 0, 0, None, false);
    if let Item::Ipv4 {
        src, dst, protocol, ..
    } = &mut inner
    {
        (*src, *dst, *protocol) = (None, None, None);
    }
    let root = tunnel_root(&t, mac);
    assert_eq!(
        root,
        Rule {
            attr: Attr {
                group: 0,
                priority: 1,
                ..TRANSFER
            },
            pattern: vec![
                eth_ipv4(),
                whole_ipv4(HOST, LOCAL, 47, None, true),
                gre(0x6558),
                Item::GreKey(1000),
                Item::Eth {
                    dst: Some(Masked::<[u8; 6]>::exact(mac)),
                    src: None,
                    ether_type: Some(0x0800),
                },
                inner.clone(),
            ],
            actions: vec![Action::Jump(3)],
        }
    );
    let plain = TunnelMatch { gretap: false, ..t };
    assert_eq!(
        tunnel_root(&plain, mac).pattern,
        vec![
            eth_ipv4(),
            whole_ipv4(HOST, LOCAL, 47, None, true),
            gre(0x0800),
            Item::GreKey(1000),
            inner,
        ]
    );
}

/// The integrity check a tunnel's root rule jumps to: one rule for each
/// GRE protocol, in group 3, taking frames whose outer (level 1) and
/// inner (level 2) IPv4 headers are intact on to the flows' group, those
/// headers in its pattern as mlx5 requires, each item right after its
/// header (mlx5's HW steering takes an item after the GRE one as inner).
#[test]
fn a_tunnels_integrity_check_looks_at_both_headers_and_jumps_to_the_flows() {
    let any = Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        ttl: None,
        src: None,
        dst: None,
        protocol: None,
    };
    let mut outer = any.clone();
    if let Item::Ipv4 { protocol, .. } = &mut outer {
        *protocol = Some(47);
    }
    let gre_of = |protocol| Item::Gre {
        protocol: Some(protocol),
        checksum_present: None,
        key_present: None,
        sequence_present: None,
    };
    let inner_intact = Item::Integrity {
        level: 2,
        l3_ok: true,
        ipv4_csum_ok: true,
    };
    let check = tunnel_check(true);
    assert_eq!(
        check,
        Rule {
            attr: Attr {
                group: 3,
                priority: 0,
                ..TRANSFER
            },
            pattern: vec![
                eth_ipv4(),
                outer.clone(),
                intact_outer(),
                gre_of(0x6558),
                eth_ipv4(),
                any.clone(),
                inner_intact.clone(),
            ],
            actions: vec![Action::Jump(1)],
        }
    );
    assert_eq!(
        tunnel_check(false).pattern,
        vec![
            eth_ipv4(),
            outer,
            intact_outer(),
            gre_of(0x0800),
            any,
            inner_intact
        ]
    );
    let t = underlay_leg(6).tunnel.unwrap();
    assert_eq!(
        tunnel_root(&t, [2, 0, 0, 0, 0x10, 0]).actions,
        [Action::Jump(check.attr.group)]
    );
}

/// Every full rule, root or per flow, is a line testpmd 22.11 reads whole
/// (docs/offload.md, "The same rules as testpmd commands"): the longest
/// addresses and ports, gretap.
#[test]
fn every_full_rule_fits_a_testpmd_line() {
    let mut public = public_leg(6);
    public.src = (0xffff_fffe, 65535);
    public.dst = (0xffff_fffe, 65535);
    public.set_dst = Some((0xffff_fffe, 65535));
    let mut underlay = underlay_leg(6);
    underlay.src = (0xffff_fffe, 65535);
    underlay.dst = (0xffff_fffe, 65535);
    underlay.set_src = Some((0xffff_fffe, 65535));
    let t = TunnelMatch {
        host: 0xffff_fffe,
        local: 0xffff_fffe,
        key: u32::MAX,
        gretap: true,
    };
    underlay.tunnel = Some(t);
    let rules = [
        (0, full(&public).unwrap()),
        (1, full(&underlay).unwrap()),
        (1, tunnel_root(&t, [0xff; 6])),
        (1, tunnel_check(true)),
        (0, public_root(OuterDf::Copy)),
        (0, public_root(OuterDf::Set)),
    ];
    for (port, rule) in rules {
        let text = rule.testpmd(u16::MAX - port);
        for line in text.lines() {
            assert!(
                !line.starts_with('#') && line.len() <= rte::flow::TESTPMD_LINE_MAX,
                "{} characters: {line}",
                line.len()
            );
        }
    }
}
