//! The exposition of a report whose counters the tests set: each value
//! where docs/metrics.md says, summed over workers where it says, and
//! text that `promtool check metrics` accepts. The text is read back by
//! the small parser below, not by anything of the code under test.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dataplane::counters::FlowProto;
use dataplane::firewall::{Action, Direction};
use dataplane::neighbour::Lookup;
use dataplane::resolver::ResolverStats;
use dataplane::{DropReason, WorkerCounters};
use rte::PortStats;

use crate::offload::report::OffloadReport;
use crate::report::{BuildInfo, MempoolReport, NeighbourReport, PortReport, Report, RuleReport};
use dataplane::offload::Level;

/// Two workers, three tenant slots of which two are in use (slot 2, "b",
/// and slot 0, "a": the report's order, not the slots', is the output's).
fn report() -> Report {
    let workers: Vec<Arc<WorkerCounters>> =
        (0..2).map(|_| Arc::new(WorkerCounters::new(3))).collect();
    let (w0, w1) = (&workers[0], &workers[1]);
    // Tenant "a" (slot 0) on both workers: the exposition sums them.
    w0.tenants[0].from_tunnel_packets.set(10);
    w1.tenants[0].from_tunnel_packets.set(5);
    w0.tenants[0].from_tunnel_bytes.set(1000);
    w0.tenants[0].to_tunnel_packets.set(7);
    w1.tenants[0].to_tunnel_bytes.set(700);
    w0.tenants[0].flows_opened[FlowProto::Tcp as usize].set(4);
    w1.tenants[0].flows_opened[FlowProto::Tcp as usize].set(2);
    w0.tenants[0].flows_ended[FlowProto::Tcp as usize].set(1);
    w0.tenants[0].flows_opened[FlowProto::Icmp as usize].set(3);
    w0.tenants[0].nat_ports.set(64);
    w1.tenants[0].nat_ports.set(128);
    w0.tenants[0].quota_refused.set(9);
    w1.tenants[0].unreplied_refused.set(11);
    w0.tenants[0].unreplied_opened.set(6);
    w0.tenants[0].unreplied_done.set(2);
    // Tenant "b" (slot 2); slot 1 is nobody's and must not show.
    w1.tenants[2].from_tunnel_packets.set(42);
    w0.tenants[1].from_tunnel_packets.set(999);
    w0.count_drop(DropReason::GreUnknownKey, 3);
    w1.count_drop(DropReason::GreUnknownKey, 4);
    w1.count_drop(DropReason::Firewall, 1);
    w0.port(0).rx_packets.set(100);
    w0.port(1).rx_packets.set(20);
    w0.port(1).tx_packets.set(90);
    w1.port(0).rx_packets.set(5);
    w0.bursts.set(12);
    w0.handed_off.set(2);
    w1.punted.set(8);
    w0.loops.set(1234);
    // 3 s of loop, 1 s of it busy, half a second processing, at 2 GHz.
    w0.cycles.set(6_000_000_000);
    w0.busy_cycles.set(2_000_000_000);
    w0.process_cycles.set(1_000_000_000);
    w0.flows_in_use.set(17);
    w0.flows_capacity.set(65536);
    w0.unreplied_opened.set(9);
    w0.unreplied_done.set(4);
    w1.fragments_held.set(3);
    w0.arp_replies.set(2);
    w1.echo_replies.set(5);
    w0.ip_options[0].set(1);
    Report {
        ports: vec![
            PortReport {
                name: "pub0".into(),
                role: ctl::config::Role::Public,
                id: 0,
                stats: PortStats {
                    ipackets: 105,
                    opackets: 3,
                    ibytes: 6300,
                    obytes: 180,
                    imissed: 2,
                    ierrors: 1,
                    oerrors: 0,
                    rx_nombuf: 4,
                },
                xstats: vec![
                    ("rx_good_packets".into(), 105),
                    ("rx_q0_bytes".into(), 6300),
                ],
            },
            PortReport {
                name: "und0".into(),
                role: ctl::config::Role::Underlay,
                id: 1,
                stats: PortStats::default(),
                xstats: vec![("rx_good_packets".into(), 20)],
            },
        ],
        workers,
        worker_lcores: vec![1, 3],
        heartbeat_age: vec![Duration::from_millis(2), Duration::from_millis(1500)],
        tenants: vec![(2, "b".into()), (0, "a".into())],
        tsc_hz: 2_000_000_000,
        tsc: 0,
        mempool: MempoolReport {
            size: 4095,
            available: 4000,
            in_use: 95,
        },
        build: BuildInfo {
            version: "1.2.3",
            commit: "abc123",
            dpdk: "DPDK 22.11.11".into(),
        },
        resolver: ResolverStats {
            requests: 6,
            learned: 5,
            hold_full: 2,
            dropped: 2,
            ..ResolverStats::default()
        },
        inject_full: 3,
        neighbours: vec![
            neighbour(Lookup::Mac([2, 0, 0, 0, 0, 1])),
            neighbour(Lookup::Mac([2, 0, 0, 0, 0, 2])),
            neighbour(Lookup::Failed),
        ],
        rules: vec![
            RuleReport {
                tenant: 1,
                rule: None,
                position: Some(0),
                direction: Direction::In,
                action: Action::Allow,
                flows: 6,
            },
            RuleReport {
                tenant: 1,
                rule: None,
                position: None,
                direction: Direction::In,
                action: Action::Deny,
                flows: 13,
            },
        ],
        failure: None,
        offload: OffloadReport {
            mode: "auto",
            levels: vec![("pub0".into(), Level::Full), ("und0".into(), Level::None)],
            flows: [1, 5, 2],
            requests: 9,
            installed: 6,
            refusals: vec![("table_full", 2), ("tenant_share", 1)],
            queue_full: 4,
            refreshes: 30,
            pulled_back: 3,
            deny_drops: Default::default(),
        },
    }
}

fn neighbour(state: Lookup) -> NeighbourReport {
    NeighbourReport {
        port: Some("pub0".into()),
        tenant: None,
        ip: std::net::Ipv4Addr::new(1, 1, 1, 7),
        state,
        is_static: false,
    }
}

/// The samples of an exposition, by `name{labels}` as written, and each
/// family's `# TYPE`.
struct Parsed {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

fn parse(text: &str) -> Parsed {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "{series} twice"
            );
        }
    }
    Parsed { samples, types }
}

impl Parsed {
    fn get(&self, series: &str) -> f64 {
        *self.samples.get(series).unwrap_or_else(|| {
            panic!(
                "no {series} in {:#?}",
                self.samples.keys().collect::<Vec<_>>()
            )
        })
    }
}

#[test]
fn the_text_is_what_the_crates_encoder_writes_of_the_same_families() {
    let mut r = report();
    // Label values and help that need escaping, and a value past 2^32.
    r.ports[0]
        .xstats
        .push(("odd\\name \"quoted\"\nline".into(), 1 << 40));
    r.build.dpdk = "DPDK \"22.11\"".into();
    let text = super::render(&r, &[]);
    let reference = super::encode(&super::families(&r));
    if text != reference {
        let first = text.lines().zip(reference.lines()).find(|(a, b)| a != b);
        panic!("the text and the crate's encoding differ, first at {first:?}");
    }
    assert!(
        text.contains(r#"xstat="odd\\name \"quoted\"\nline"} 1099511627776"#),
        "{text}"
    );
}

fn rendered() -> (String, Parsed) {
    let text = super::render(&report(), &[]);
    let parsed = parse(&text);
    (text, parsed)
}

#[test]
fn offload_levels_states_and_reasons_are_labelled() {
    let (_, p) = rendered();
    assert_eq!(p.get(r#"tgw_offload_level{port="pub0"}"#), 2.0);
    assert_eq!(p.get(r#"tgw_offload_level{port="und0"}"#), 0.0);
    assert_eq!(p.get(r#"tgw_offload_flows{state="pending"}"#), 1.0);
    assert_eq!(p.get(r#"tgw_offload_flows{state="offloaded"}"#), 5.0);
    assert_eq!(p.get(r#"tgw_offload_flows{state="dying"}"#), 2.0);
    assert_eq!(p.get("tgw_offload_requests_total"), 9.0);
    assert_eq!(p.get("tgw_offload_installed_total"), 6.0);
    assert_eq!(
        p.get(r#"tgw_offload_refusals_total{reason="table_full"}"#),
        2.0
    );
    assert_eq!(
        p.get(r#"tgw_offload_refusals_total{reason="tenant_share"}"#),
        1.0
    );
    assert_eq!(p.get("tgw_offload_queue_full_total"), 4.0);
    assert_eq!(p.get("tgw_offload_refreshes_total"), 30.0);
    assert_eq!(p.get("tgw_offload_pulled_back_total"), 3.0);
    assert_eq!(p.types["tgw_offload_level"], "gauge");
    assert_eq!(p.types["tgw_offload_refusals_total"], "counter");
}

#[test]
fn tenant_counters_are_summed_over_the_workers() {
    let (_, p) = rendered();
    assert_eq!(
        p.get(r#"tgw_tenant_from_tunnel_packets_total{tenant="a"}"#),
        15.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_from_tunnel_bytes_total{tenant="a"}"#),
        1000.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_to_tunnel_packets_total{tenant="a"}"#),
        7.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_to_tunnel_bytes_total{tenant="a"}"#),
        700.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_from_tunnel_packets_total{tenant="b"}"#),
        42.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_flows_opened_total{tenant="a",protocol="tcp"}"#),
        6.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_flows_opened_total{tenant="a",protocol="icmp"}"#),
        3.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_flows_ended_total{tenant="a",protocol="tcp"}"#),
        1.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_flows_opened_total{tenant="a",protocol="other"}"#),
        0.0
    );
    // 6 + 3 opened, 1 ended.
    assert_eq!(p.get(r#"tgw_tenant_flows{tenant="a"}"#), 8.0);
    assert_eq!(p.get(r#"tgw_tenant_unreplied_flows{tenant="a"}"#), 4.0);
    assert_eq!(p.get(r#"tgw_tenant_nat_ports{tenant="a"}"#), 192.0);
    assert_eq!(
        p.get(r#"tgw_tenant_quota_refused_total{tenant="a",quota="flows"}"#),
        9.0
    );
    assert_eq!(
        p.get(r#"tgw_tenant_quota_refused_total{tenant="a",quota="unreplied"}"#),
        11.0
    );
    assert_eq!(p.get("tgw_tenants"), 2.0);
}

#[test]
fn a_slot_no_tenant_holds_is_not_shown() {
    let (text, p) = rendered();
    assert!(!text.contains("999"), "slot 1's count leaked:\n{text}");
    let tenants: Vec<&String> = p
        .samples
        .keys()
        .filter(|k| k.starts_with("tgw_tenant_from_tunnel_packets_total"))
        .collect();
    assert_eq!(tenants.len(), 2, "{tenants:?}");
}

#[test]
fn every_drop_reason_is_a_series_zeros_included() {
    let (_, p) = rendered();
    for &reason in DropReason::ALL {
        let expected = match reason {
            DropReason::GreUnknownKey => 7.0,
            DropReason::Firewall => 1.0,
            _ => 0.0,
        };
        assert_eq!(
            p.get(&format!(r#"tgw_drops_total{{reason="{}"}}"#, reason.name())),
            expected,
            "{reason:?}"
        );
    }
}

#[test]
fn workers_have_their_own_series_in_seconds() {
    let (_, p) = rendered();
    assert_eq!(p.get(r#"tgw_worker_info{worker="1",lcore="3"}"#), 1.0);
    assert_eq!(p.get(r#"tgw_worker_rx_packets_total{worker="0"}"#), 120.0);
    assert_eq!(p.get(r#"tgw_worker_rx_packets_total{worker="1"}"#), 5.0);
    assert_eq!(p.get(r#"tgw_worker_tx_packets_total{worker="0"}"#), 90.0);
    assert_eq!(p.get(r#"tgw_worker_bursts_total{worker="0"}"#), 12.0);
    assert_eq!(p.get(r#"tgw_worker_handoffs_total{worker="0"}"#), 2.0);
    assert_eq!(p.get(r#"tgw_worker_punts_total{worker="1"}"#), 8.0);
    assert_eq!(p.get(r#"tgw_worker_loops_total{worker="0"}"#), 1234.0);
    assert_eq!(p.get(r#"tgw_worker_busy_seconds_total{worker="0"}"#), 1.0);
    assert_eq!(p.get(r#"tgw_worker_idle_seconds_total{worker="0"}"#), 2.0);
    assert_eq!(
        p.get(r#"tgw_worker_processing_seconds_total{worker="0"}"#),
        0.5
    );
    assert_eq!(
        p.get(r#"tgw_worker_heartbeat_age_seconds{worker="1"}"#),
        1.5
    );
    assert_eq!(p.get(r#"tgw_worker_flows{worker="0"}"#), 17.0);
    assert_eq!(p.get(r#"tgw_worker_flows_capacity{worker="0"}"#), 65536.0);
    assert_eq!(p.get(r#"tgw_worker_flows_unreplied{worker="0"}"#), 5.0);
    assert_eq!(p.get("tgw_inject_full_total"), 3.0);
    assert_eq!(p.get(r#"tgw_worker_fragments_held{worker="1"}"#), 3.0);
    assert_eq!(p.get(r#"tgw_replies_total{kind="arp"}"#), 2.0);
    assert_eq!(p.get(r#"tgw_replies_total{kind="echo"}"#), 5.0);
    assert_eq!(
        p.get(r#"tgw_ip_options_forwarded_total{option="padding"}"#),
        1.0
    );
}

#[test]
fn ports_give_ethdev_stats_and_xstats_under_one_family() {
    let (_, p) = rendered();
    assert_eq!(
        p.get(r#"tgw_port_info{port="pub0",id="0",role="public"}"#),
        1.0
    );
    assert_eq!(p.get(r#"tgw_port_rx_packets_total{port="pub0"}"#), 105.0);
    assert_eq!(p.get(r#"tgw_port_tx_bytes_total{port="pub0"}"#), 180.0);
    assert_eq!(p.get(r#"tgw_port_rx_missed_total{port="pub0"}"#), 2.0);
    assert_eq!(p.get(r#"tgw_port_rx_errors_total{port="pub0"}"#), 1.0);
    assert_eq!(p.get(r#"tgw_port_rx_nombuf_total{port="pub0"}"#), 4.0);
    assert_eq!(
        p.get(r#"tgw_port_xstats_total{port="pub0",xstat="rx_q0_bytes"}"#),
        6300.0
    );
    assert_eq!(
        p.get(r#"tgw_port_xstats_total{port="und0",xstat="rx_good_packets"}"#),
        20.0
    );
}

#[test]
fn firewall_rules_tables_resolver_and_build_are_shown() {
    let (_, p) = rendered();
    assert_eq!(
        p.get(r#"tgw_firewall_flows_total{tenant="a",rule="0",direction="in",action="allow"}"#),
        6.0
    );
    assert_eq!(
        p.get(
            r#"tgw_firewall_flows_total{tenant="a",rule="default",direction="in",action="deny"}"#
        ),
        13.0
    );
    assert_eq!(p.get(r#"tgw_neighbours{state="resolved"}"#), 2.0);
    assert_eq!(p.get(r#"tgw_neighbours{state="failed"}"#), 1.0);
    assert_eq!(p.get(r#"tgw_neighbours{state="incomplete"}"#), 0.0);
    assert_eq!(p.get(r#"tgw_mempool_mbufs{state="in_use"}"#), 95.0);
    assert_eq!(p.get(r#"tgw_mempool_mbufs{state="available"}"#), 4000.0);
    assert_eq!(p.get("tgw_mempool_size_mbufs"), 4095.0);
    assert_eq!(p.get("tgw_arp_requests_total"), 6.0);
    assert_eq!(p.get("tgw_neighbours_learned_total"), 5.0);
    assert_eq!(p.get("tgw_held_dropped_total"), 2.0);
    assert_eq!(p.get(r#"tgw_held_refused_total{cause="held_full"}"#), 2.0);
    assert_eq!(
        p.get(r#"tgw_build_info{version="1.2.3",commit="abc123",dpdk="DPDK 22.11.11"}"#),
        1.0
    );
}

#[test]
fn names_follow_the_conventions() {
    let (_, p) = rendered();
    assert!(p.types.len() > 50, "{:?}", p.types.keys());
    for (name, kind) in &p.types {
        assert!(name.starts_with("tgw_"), "{name}");
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name}"),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name}"),
            other => panic!("{name}: {other}"),
        }
    }
}

/// `promtool check metrics` on `text`: its complaints, if any.
pub(crate) fn promtool(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    }
}

#[test]
fn promtool_accepts_the_text() {
    let (text, _) = rendered();
    promtool(&text).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{text}"));
}

#[test]
fn a_report_with_no_tenants_nor_ports_is_still_valid() {
    let mut r = report();
    r.tenants.clear();
    r.rules.clear();
    r.ports.clear();
    r.heartbeat_age.clear();
    let text = super::render(&r, &[]);
    assert!(!text.contains("tgw_tenant_"), "{text}");
    promtool(&text).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{text}"));
}

/// docs/metrics.md lists every family the endpoint writes, and nothing
/// it does not: the doc cannot drift from the code.
#[test]
fn docs_list_every_family() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    // The report's families, and the endpoint's own from a registry like
    // the endpoint's.
    let mut text = super::render(&report(), &[]);
    text.push_str(&super::http::own_families_for_docs());
    let written: std::collections::BTreeSet<String> = parse(&text).types.into_keys().collect();
    let documented: std::collections::BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `tgw_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("tgw_{name}"))
        .collect();
    let missing: Vec<_> = written.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&written).collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
    assert!(
        stale.is_empty(),
        "in docs/metrics.md but not written: {stale:?}"
    );
}

/// The stats JSON gives each tenant its offloaded packets and bytes (what
/// the NIC carried for its flows, from refreshes): counted, and shown
/// nowhere before session 16.
#[test]
fn the_stats_json_gives_each_tenant_its_offloaded_traffic() {
    let r = report();
    let a = r.workers[0].tenant(0).unwrap();
    a.offloaded_packets.set(12);
    a.offloaded_bytes.set(3400);
    let json = r.json();
    let t = &json["workers"][0]["tenants"]["a"];
    assert_eq!(
        (
            t["offloaded_packets"].as_u64(),
            t["offloaded_bytes"].as_u64()
        ),
        (Some(12), Some(3400)),
        "{t}"
    );
}
