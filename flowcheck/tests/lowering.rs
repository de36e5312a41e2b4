//! What `rte::flow` hands DPDK, read back at the call boundary: every rule
//! created or validated through `Rule` reaches the (wrapped) `rte_flow_*`
//! functions as C structs that decode to exactly that rule — addresses,
//! ports, keys, masks, raw encap/decap bytes — and a `Flow` is destroyed
//! when dropped.

#![forbid(unsafe_code)]

use rte::flow::fake::{self, Event};
use rte::flow::{Action, Attr, Counts, Item, Masked, Rule};

const MAC_A: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b];

/// Ethernet + IPv4 + GRE with key, as a tunnel header (RFC 791, 2890),
/// written byte by byte.
fn tunnel_header(proto: u16, key: u32) -> Vec<u8> {
    let mut b = MAC_B.to_vec();
    b.extend_from_slice(&MAC_A);
    b.extend_from_slice(&[0x08, 0x00]);
    b.extend_from_slice(&[0x45, 0x00, 0, 0, 0x12, 0x34, 0x40, 0x00, 64, 47, 0, 0]);
    b.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    b.extend_from_slice(&[0x20, 0x00]);
    b.extend_from_slice(&proto.to_be_bytes());
    b.extend_from_slice(&key.to_be_bytes());
    b
}

fn any_eth() -> Item {
    Item::Eth {
        dst: None,
        src: None,
        ether_type: None,
    }
}

/// Rules that together use every item and action kind, with exact and
/// partial masks and asymmetric values (so that a swapped byte shows).
fn rules() -> Vec<Rule> {
    let mut decap = tunnel_header(0x6558, 0x0102_0304);
    decap.extend_from_slice(&MAC_A);
    decap.extend_from_slice(&MAC_B);
    decap.extend_from_slice(&[0x08, 0x00]);
    vec![
        // Public side, full offload.
        Rule {
            attr: Attr::INGRESS,
            pattern: vec![
                Item::Eth {
                    dst: Some(Masked::<[u8; 6]>::exact(MAC_A)),
                    src: None,
                    ether_type: Some(0x0800),
                },
                Item::Ipv4 {
                    version_ihl: Some(0x45),
                    tos: Some(Masked {
                        spec: 0x01,
                        mask: 0x03,
                    }),
                    fragment_offset: Some(Masked {
                        spec: 0x4000,
                        mask: 0x7fff,
                    }),
                    ttl: Some(Masked {
                        spec: 1,
                        mask: 0xfe,
                    }),
                    src: Some(Masked::<u32>::exact(0xc633_6401)),
                    dst: Some(Masked::<u32>::exact(0xcb00_7105)),
                    protocol: Some(6),
                },
                Item::Tcp {
                    src: Some(Masked::<u16>::exact(443)),
                    dst: Some(Masked::<u16>::exact(40001)),
                    flags: Some(Masked {
                        spec: 0,
                        mask: 0x07,
                    }),
                },
            ],
            actions: vec![
                Action::SetIpv4Dst(0x0a00_0005),
                Action::SetTpDst(51000),
                Action::DecTtl,
                Action::RawDecap(MAC_A.iter().chain(&MAC_B).chain(&[8, 0]).copied().collect()),
                Action::RawEncap(tunnel_header(0x0800, 0x00ab_cdef)),
                Action::Count,
                Action::PortId(1),
            ],
        },
        // Underlay side, gretap, transfer domain.
        Rule {
            attr: Attr {
                group: 1,
                priority: 3,
                ingress: false,
                egress: false,
                transfer: true,
            },
            pattern: vec![
                any_eth(),
                Item::Ipv4 {
                    version_ihl: Some(0x46),
                    tos: None,
                    fragment_offset: Some(Masked {
                        spec: 0x0001,
                        mask: 0x3fff,
                    }),
                    ttl: None,
                    src: Some(Masked::<u32>::exact(0xc000_0202)),
                    dst: Some(Masked::<u32>::exact(0xc000_0201)),
                    protocol: Some(47),
                },
                Item::Gre {
                    protocol: Some(0x6558),
                    checksum_present: Some(false),
                    key_present: Some(true),
                    sequence_present: Some(true),
                },
                Item::GreKey(0x0102_0304),
                any_eth(),
                Item::Ipv4 {
                    version_ihl: None,
                    tos: None,
                    fragment_offset: None,
                    ttl: None,
                    src: Some(Masked::<u32>::exact(0x0a00_0005)),
                    dst: None,
                    protocol: Some(17),
                },
                Item::Udp {
                    src: Some(Masked::<u16>::exact(51000)),
                    dst: Some(Masked::<u16>::exact(53)),
                },
                // Different checks at each level, so that a bit read
                // from the wrong place shows.
                Item::Integrity {
                    level: 1,
                    l3_ok: true,
                    ipv4_csum_ok: false,
                },
                Item::Integrity {
                    level: 2,
                    l3_ok: false,
                    ipv4_csum_ok: true,
                },
            ],
            actions: vec![
                Action::RawDecap(decap),
                Action::RawEncap(MAC_B.iter().chain(&MAC_A).chain(&[8, 0]).copied().collect()),
                Action::SetIpv4Src(0xcb00_7105),
                Action::SetTpSrc(40002),
                Action::DecTtl,
                Action::Count,
                Action::Age(300),
                Action::RepresentedPort(1),
            ],
        },
        // Partial offload: masks that are not all-ones.
        Rule {
            attr: Attr::INGRESS,
            pattern: vec![
                Item::Eth {
                    dst: Some(Masked {
                        spec: MAC_A,
                        mask: [0xff, 0xff, 0xff, 0, 0, 0x0f],
                    }),
                    src: Some(Masked::<[u8; 6]>::exact(MAC_B)),
                    ether_type: None,
                },
                Item::Ipv4 {
                    version_ihl: None,
                    tos: Some(Masked {
                        spec: 0xb8,
                        mask: 0xfc,
                    }),
                    fragment_offset: None,
                    ttl: None,
                    src: None,
                    dst: Some(Masked {
                        spec: 0xcb00_7100,
                        mask: 0xffff_ff00,
                    }),
                    protocol: None,
                },
                Item::Udp {
                    src: None,
                    dst: Some(Masked {
                        spec: 0x0440,
                        mask: 0xffc0,
                    }),
                },
            ],
            actions: vec![Action::Mark(0x0001_0203), Action::Queue(0x0102)],
        },
        // Marks and metadata of earlier groups, and the other actions.
        Rule {
            attr: Attr {
                group: 0x0102_0304,
                priority: 7,
                ..Attr::INGRESS
            },
            pattern: vec![
                Item::Mark(0x0a0b_0c0d),
                Item::Meta(Masked {
                    spec: 0x1234_5678,
                    mask: 0xffff_0000,
                }),
                Item::Gre {
                    protocol: None,
                    checksum_present: Some(true),
                    key_present: Some(false),
                    sequence_present: None,
                },
            ],
            actions: vec![
                Action::SetMacSrc(MAC_A),
                Action::SetMacDst(MAC_B),
                Action::Rss(vec![0, 1, 0x0102]),
                Action::Jump(0x0001_0002),
            ],
        },
        Rule {
            attr: Attr {
                ingress: false,
                egress: true,
                ..Attr::INGRESS
            },
            pattern: vec![],
            actions: vec![Action::Drop],
        },
    ]
}

#[test]
fn created_rules_reach_dpdk_exactly_as_meant_and_are_destroyed_on_drop() {
    let _x = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let rules = rules();
    let mut flows = Vec::new();
    let mut handles = Vec::new();
    for rule in &rules {
        let flow = rule.create(0).expect("the fake NIC takes every rule");
        let events = fake::take();
        let [Event::Created(port, recorded, handle)] = events.as_slice() else {
            panic!("one creation expected: {events:?}");
        };
        assert_eq!(*port, 0);
        assert_eq!(recorded, rule, "what DPDK was handed");
        assert!(!handles.contains(handle), "distinct handles");
        handles.push(*handle);
        flows.push(flow);
    }
    let live = fake::live();
    for (flow, handle) in flows.into_iter().zip(&handles) {
        drop(flow);
        assert_eq!(fake::take(), vec![Event::Destroyed(*handle)]);
    }
    assert_eq!(fake::live(), live - rules.len());
}

#[test]
fn validate_hands_dpdk_the_same_structs() {
    let _x = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    for rule in rules() {
        rule.validate(1).expect("valid");
        assert_eq!(fake::take(), vec![Event::Validated(1, rule)]);
    }
}

#[test]
fn counters_are_queried_from_the_rules_handle_and_destroy_reports() {
    let _x = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let rule = rules().swap_remove(0);
    let mut flow = rule.create(0).expect("created");
    let [Event::Created(_, _, handle)] = fake::take()[..] else {
        panic!("one creation");
    };
    assert_eq!(flow.query_count().expect("query"), Counts::default());
    fake::set_hits(handle, 12, 3456);
    assert_eq!(
        flow.query_count().expect("query"),
        Counts {
            hits: 12,
            bytes: 3456
        }
    );
    assert_eq!(
        fake::take(),
        vec![Event::Queried(handle), Event::Queried(handle)]
    );
    flow.destroy().expect("destroyed");
    assert_eq!(fake::take(), vec![Event::Destroyed(handle)]);
}

#[test]
fn a_rule_refused_before_dpdk_never_reaches_it() {
    let _x = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let rule = Rule {
        attr: Attr::INGRESS,
        pattern: vec![],
        actions: vec![Action::RawEncap(vec![])],
    };
    assert_eq!(rule.create(0).unwrap_err().errno, libc::EINVAL);
    assert_eq!(fake::take(), vec![]);
}
