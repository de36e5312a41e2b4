//! The rte flow layer against real virtual devices, which have no flow
//! API: every call must come back as DPDK's ENOSYS refusal with its
//! message, and a malformed rule must be refused before DPDK sees it (it
//! would otherwise come back as ENOSYS too).

mod common;

use std::sync::OnceLock;

use rte::flow::template::{self, Api};
use rte::flow::{Action, Attr, Item, Masked, Rule};
use rte::{Eal, Mbuf, Mempool};

/// The EAL of this binary: net_null0 (port 0) and net_ring0 (port 1).
fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    let eal = EAL.get_or_init(|| {
        const TAG: &str = "rte-flow-test-";
        common::sweep_stale_runtime_dirs(TAG);
        let prefix = format!("--file-prefix={TAG}{}", std::process::id());
        let args = [
            "-l",
            "0",
            "--no-huge",
            "-m",
            "128",
            "--no-shconf",
            "--no-pci",
            "--log-level=lib.eal:error",
            &prefix,
            "--vdev=net_null0",
            "--vdev=net_ring0",
        ];
        Eal::init(&args).expect("EAL init")
    });
    eal.register_thread().expect("register thread");
    eal
}

const NULL_PORT: u16 = 0;
const RING_PORT: u16 = 1;

/// A full-offload shape: TCP with FIN/SYN/RST clear, DNAT, re-encap.
fn full_rule() -> Rule {
    Rule {
        attr: Attr::INGRESS,
        pattern: vec![
            Item::Eth {
                dst: None,
                src: None,
                ether_type: Some(0x0800),
            },
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: Some(Masked::<u32>::exact(0xc633_6401)),
                dst: Some(Masked::<u32>::exact(0xcb00_7105)),
                protocol: Some(6),
            },
            Item::Tcp {
                src: Some(Masked::<u16>::exact(443)),
                dst: Some(Masked::<u16>::exact(40000)),
                flags: Some(Masked {
                    spec: 0,
                    mask: 0x07,
                }),
            },
        ],
        actions: vec![
            Action::SetIpv4Dst(0x0a00_0005),
            Action::SetTpDst(5000),
            Action::DecTtl,
            Action::RawDecap(vec![0; 14]),
            Action::RawEncap(vec![0; 42]),
            Action::Count,
            Action::PortId(1),
        ],
    }
}

#[test]
fn validate_on_virtual_devices_reports_no_flow_api_with_a_message() {
    eal();
    for port in [NULL_PORT, RING_PORT] {
        let err = full_rule().validate(port).unwrap_err();
        assert_eq!(err.op, "rte_flow_validate");
        assert!(err.no_flow_api(), "port {port}: {err}");
        assert!(!err.unsupported());
        assert_eq!(err.errno, libc::ENOSYS);
        assert!(!err.message.is_empty(), "port {port}: no message");
        assert!(
            err.to_string().contains("(errno 38)"),
            "display names the errno: {err}"
        );
    }
}

#[test]
fn create_on_virtual_devices_reports_no_flow_api() {
    eal();
    let mark = Rule {
        attr: Attr::INGRESS,
        pattern: vec![Item::Mark(1)],
        actions: vec![Action::Mark(7), Action::Queue(0)],
    };
    for port in [NULL_PORT, RING_PORT] {
        for rule in [full_rule(), mark.clone()] {
            let err = rule.create(port).unwrap_err();
            assert_eq!(err.op, "rte_flow_create");
            assert!(err.no_flow_api(), "port {port}: {err}");
            assert!(!err.message.is_empty());
        }
    }
}

#[test]
fn a_port_that_does_not_exist_is_refused_by_dpdk() {
    eal();
    let err = full_rule().validate(77).unwrap_err();
    assert_eq!(err.errno, libc::ENODEV, "{err}");
    assert!(!err.message.is_empty());
}

/// Each refusal is EINVAL, which DPDK would not have answered on a port
/// without a flow API (it answers ENOSYS first): tgw refused it itself.
#[test]
fn malformed_rules_are_refused_before_dpdk() {
    eal();
    let with = |actions: Vec<Action>| Rule {
        attr: Attr::INGRESS,
        pattern: vec![],
        actions,
    };
    let cases = [
        (with(vec![Action::RawEncap(vec![])]), "raw encap"),
        (with(vec![Action::RawDecap(vec![])]), "raw decap"),
        (with(vec![Action::Rss(vec![])]), "RSS"),
        (with(vec![Action::Age(1 << 24)]), "age"),
        (
            Rule {
                attr: Attr::INGRESS,
                pattern: vec![
                    Item::Eth {
                        dst: None,
                        src: None,
                        ether_type: None,
                    },
                    Item::GreKey(5),
                ],
                actions: vec![Action::Drop],
            },
            "GRE_KEY",
        ),
        (
            Rule {
                attr: Attr {
                    transfer: true,
                    ..Attr::INGRESS
                },
                pattern: vec![],
                actions: vec![Action::Drop],
            },
            "transfer",
        ),
    ];
    for (rule, what) in cases {
        for err in [
            rule.validate(NULL_PORT).unwrap_err(),
            rule.create(NULL_PORT).unwrap_err(),
        ] {
            assert_eq!(err.errno, libc::EINVAL, "{what}: {err}");
            assert!(err.message.contains(what), "{what}: {err}");
        }
    }
    // The largest AGE timeout still goes to DPDK.
    let err = with(vec![Action::Age((1 << 24) - 1)])
        .validate(NULL_PORT)
        .unwrap_err();
    assert!(err.no_flow_api(), "{err}");
}

#[test]
fn a_frame_carries_its_flow_mark_only_under_the_fdir_id_flag() {
    let eal = eal();
    let pool = Mempool::new(eal, "marks", 63, 0, 2176, -1).expect("mempool");
    let mut m = Mbuf::alloc(&pool).expect("mbuf");
    assert_eq!(m.flow_mark(), None, "a fresh mbuf has no mark");
    m.set_flow_mark(Some(0xdead_beef));
    assert_eq!(m.flow_mark(), Some(0xdead_beef));
    let fdir_id = 1u64 << 13; // RTE_MBUF_F_RX_FDIR_ID in rte_mbuf_core.h
    assert_ne!(m.ol_flags() & fdir_id, 0);
    assert_eq!(m.rss_hash(), None, "a mark is not an RSS hash");
    m.set_flow_mark(None);
    assert_eq!(m.flow_mark(), None);
    assert_eq!(m.ol_flags() & fdir_id, 0);
}

/// Virtual devices have no template API: the probe says "synchronous",
/// with DPDK's reason, and every template call refuses cleanly.
#[test]
fn the_template_api_falls_back_to_sync_on_virtual_devices() {
    eal();
    for port in [NULL_PORT, RING_PORT] {
        match template::probe(port).expect("probe") {
            Api::Sync(why) => {
                assert!(why.no_flow_api(), "port {port}: {why}");
                assert_eq!(why.op, "rte_flow_info_get");
                assert!(!why.message.is_empty());
            }
            Api::Template(info) => panic!("port {port} has a template API? {info:?}"),
        }
        let config = template::Config {
            queues: 2,
            queue_size: 64,
            counters: 1024,
            aging_objects: 0,
        };
        let err = template::configure(port, &config).unwrap_err();
        assert!(err.no_flow_api(), "{err}");
        let err = template::Table::new(port, &full_rule(), 1024).unwrap_err();
        assert!(err.no_flow_api(), "{err}");
        assert_eq!(err.op, "rte_flow_pattern_template_create");
        // No `PortFlows` without a configured port: DPDK 22.11's async
        // calls would jump through the port's missing function.
    }
    let err = template::probe(77).unwrap_err();
    assert_eq!(err.errno, libc::ENODEV, "{err}");
}
