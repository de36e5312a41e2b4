//! `rte::flow::template` at the real call boundary: the calls land in
//! the fake NIC's template API (`--wrap`, build.rs), which answers as
//! mlx5 in HW steering mode. What the daemon's scenario does not reach:
//! completions of several tables of one port pulled at once, the queue's
//! bound, a creation the NIC fails afterwards, a query of a template
//! rule, and the order things go at the end.

#![forbid(unsafe_code)]

use rte::flow::fake::{self, Event};
use rte::flow::template::{self, Api, Completion, Op, PortFlows, Table};
use rte::flow::{Action, Attr, Item, Masked, Rule};

const PORT: u16 = 0;

/// A partial-offload rule: the flow's addresses and ports, MARK, QUEUE.
fn rule(protocol: u8, sport: u16, mark: u32) -> Rule {
    let ports = (
        Some(Masked::<u16>::exact(sport)),
        Some(Masked::<u16>::exact(443)),
    );
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
                src: Some(Masked::<u32>::exact(0xc000_0207)),
                dst: Some(Masked::<u32>::exact(0xc633_640a)),
                protocol: Some(protocol),
            },
            if protocol == 6 {
                Item::Tcp {
                    src: ports.0,
                    dst: ports.1,
                    flags: None,
                }
            } else {
                Item::Udp {
                    src: ports.0,
                    dst: ports.1,
                }
            },
        ],
        actions: vec![Action::Mark(mark), Action::Queue(1)],
    }
}

fn created(id: u64, ok: bool) -> Completion {
    Completion {
        id,
        op: Op::Created,
        ok,
    }
}

/// A port with the template API, one flow queue of 4, and a TCP and a
/// UDP table of 8 rules each.
fn port() -> (PortFlows, usize, usize) {
    fake::set_async(PORT, true);
    let Api::Template(info) = template::probe(PORT).expect("probe") else {
        panic!("the fake port has the template API")
    };
    assert_eq!(info.max_queue_size, u32::MAX);
    let config = template::Config {
        queues: 1,
        queue_size: 4,
        counters: 16,
        aging_objects: 0,
    };
    let configured = template::configure(PORT, &config).expect("configure");
    assert!(PortFlows::new(configured, 1).is_err(), "one queue only");
    let mut flows = PortFlows::new(configured, 0).expect("queue 0");
    let tcp = flows
        .add(Table::new(PORT, &rule(6, 0, 0), 8).expect("tcp table"))
        .expect("this port's");
    let udp = flows
        .add(Table::new(PORT, &rule(17, 0, 0), 8).expect("udp table"))
        .expect("this port's");
    (flows, tcp, udp)
}

/// One pull answers for every table of the port: each completion reaches
/// its rule, whichever table it is in.
#[test]
fn one_pull_brings_the_completions_of_every_table() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let (mut flows, tcp, udp) = port();
    flows.create(tcp, 7, &rule(6, 40000, 8)).expect("tcp rule");
    flows
        .create(udp, 9, &rule(17, 40001, 10))
        .expect("udp rule");
    flows.push().expect("push");
    let mut done = Vec::new();
    assert_eq!(flows.pull(&mut done).expect("pull"), 2);
    assert_eq!(done, [created(7, true), created(9, true)]);
    assert_eq!(flows.pending(), 0);
    let events = fake::take();
    let tables: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::AsyncCreated { table, rule: r, .. } => {
                assert!(
                    *r == rule(6, 40000, 8) || *r == rule(17, 40001, 10),
                    "{r:?}"
                );
                Some(*table)
            }
            _ => None,
        })
        .collect();
    assert_eq!(tables.len(), 2);
    assert_ne!(tables[0], tables[1], "each rule in its own table");
    drop(flows);
    assert_eq!(fake::templates_live(), (0, 0, 0));
    fake::set_async(PORT, false);
}

/// Operations in flight are at most the queue's size: past it creations
/// and destructions are refused before DPDK (EAGAIN), and room comes
/// back with the results.
#[test]
fn the_queue_holds_its_size_in_flight_and_no_more() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let (mut flows, tcp, _) = port();
    for id in 0..4 {
        flows
            .create(tcp, id, &rule(6, 40000 + id as u16, 1))
            .expect("room");
    }
    let err = flows.create(tcp, 4, &rule(6, 40004, 1)).unwrap_err();
    assert_eq!(err.errno, libc::EAGAIN, "{err}");
    assert_eq!(flows.destroy(0).unwrap_err().errno, libc::EAGAIN);
    assert_eq!(fake::in_flight(PORT, 0), 4, "the NIC never saw a fifth");
    flows.push().expect("push");
    let mut done = Vec::new();
    flows.pull(&mut done).expect("pull");
    assert_eq!(done.len(), 4);
    flows
        .create(tcp, 4, &rule(6, 40004, 1))
        .expect("room again");
    assert!(fake::take()
        .iter()
        .all(|e| !matches!(e, Event::Refused(..))));
    drop(flows);
    assert_eq!(fake::live(), 0, "every rule destroyed at the end");
    assert_eq!(fake::templates_live(), (0, 0, 0));
    fake::set_async(PORT, false);
}

/// A creation the NIC fails after the fact leaves no rule: its table has
/// room for it again, and it is not destroyed at the end. A live rule's
/// counters are read from its handle.
#[test]
fn a_failed_creation_leaves_no_rule_and_a_live_one_is_counted() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let (mut flows, tcp, _) = port();
    fake::fail_async_creations(1);
    flows.create(tcp, 1, &rule(6, 40001, 2)).expect("enqueued");
    flows.create(tcp, 2, &rule(6, 40002, 3)).expect("enqueued");
    assert_eq!(flows.table(tcp).map(Table::len), Some(2));
    flows.push().expect("push");
    let mut done = Vec::new();
    flows.pull(&mut done).expect("pull");
    assert_eq!(done, [created(1, false), created(2, true)]);
    assert_eq!(flows.table(tcp).map(Table::len), Some(1));
    assert_eq!(flows.len(), 1);
    let handle = fake::take()
        .iter()
        .find_map(|e| match e {
            Event::AsyncCreated {
                handle, rule: r, ..
            } if *r == rule(6, 40002, 3) => Some(*handle),
            _ => None,
        })
        .expect("rule 2's handle");
    fake::set_hits(handle, 5, 320);
    let c = flows.query_count(2).expect("query");
    assert_eq!((c.hits, c.bytes), (5, 320));
    assert!(fake::take().contains(&Event::Queried(handle)));
    assert!(flows.query_count(1).is_err(), "rule 1 never was");
    drop(flows);
    let events = fake::take();
    let destroyed: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::AsyncDestroyed { handle, .. } => Some(*handle),
            _ => None,
        })
        .collect();
    assert_eq!(destroyed, [handle], "only the rule that took: {events:?}");
    assert_eq!(fake::templates_live(), (0, 0, 0));
    fake::set_async(PORT, false);
}

/// A table goes only when it holds no rule, installed or pending (mlx5
/// refuses to destroy a table with rules); its index is then reused.
#[test]
fn only_an_empty_table_is_removed_and_its_index_is_reused() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let (mut flows, tcp, _) = port();
    let mut done = Vec::new();
    flows.create(tcp, 1, &rule(6, 40001, 2)).expect("enqueued");
    assert_eq!(flows.table_of(1), Some(tcp));
    assert!(!flows.remove(tcp), "a pending rule keeps it");
    flows.push().expect("push");
    flows.pull(&mut done).expect("pull");
    assert!(!flows.remove(tcp), "an installed rule keeps it");
    flows.destroy(1).expect("enqueued");
    flows.push().expect("push");
    flows.pull(&mut done).expect("pull");
    assert_eq!(flows.table_of(1), None);
    fake::take();
    assert!(flows.remove(tcp));
    assert!(flows.table(tcp).is_none());
    let events = fake::take();
    assert!(
        events.iter().any(|e| matches!(e, Event::TableDestroyed(_))),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Refused(..))),
        "{events:?}"
    );
    assert_eq!(fake::templates_live(), (1, 1, 1), "the UDP table's");
    let again = flows
        .add(Table::new(PORT, &rule(6, 0, 0), 8).expect("tcp table"))
        .expect("this port's");
    assert_eq!(again, tcp, "the index is reused");
    drop(flows);
    assert_eq!(fake::templates_live(), (0, 0, 0));
    fake::set_async(PORT, false);
}
