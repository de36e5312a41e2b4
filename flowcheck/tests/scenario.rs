//! The reference scenario's offloaded flows, checked where tgw hands them
//! to DPDK (issue 14): the gateway's tables for examples/reference.toml,
//! a worker's pipeline with offload on fed the flows' frames (built with
//! etherparse), and the daemon's offload plane — its probe and its
//! `Device` over `rte::flow` — ticked on net_null ports whose
//! `rte_flow_*` calls land in the fake NIC (`--wrap`, build.rs), which
//! answers as a capable NIC. The rules it records must be exactly the
//! expected ones, written out here from DESIGN.md's addresses (keys 1000
//! and 2000, hosts 172.168.0.11/.12 and the gateway's 172.168.0.1, the
//! client 1.1.1.7 and the elastic IPs 2.2.2.11/.12 of 10.0.0.7, ports,
//! the tunnel header the software path writes), the root rules in group 0
//! in front of the per-flow ones in group 1; the NIC's counts must
//! refresh the flows; and the rules must go when the flows end: pulled
//! back by a change to their tenant, or expired under a later clock.

#![forbid(unsafe_code)]

mod matcher;

use std::path::PathBuf;
use std::sync::Arc;

use ctl::api::Op;
use ctl::config::{Config, OuterDf, Role};
use ctl::running::Running;
use dataplane::conntrack::Timeouts;
use dataplane::neighbour::{NeighbourLimits, NeighbourWriter};
use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::resolver::{Resolver, ResolverConfig};
use dataplane::snapshot::Publisher;
use dataplane::tables::Tables;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use etherparse::PacketBuilder;
use rte::flow::fake::{self, Event};
use rte::flow::{Action, Attr, Item, Masked, Rule};
use rte::MacAddr;
use tgw::handler::{ChangeCx, Handler};
use tgw::offload::plane::{OffloadPlane, PlanePort};
use tgw::offload::templates;
use tgw::runtime::Runtime;

const PUB: u16 = 0;
const UND: u16 = 1;
const PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];
const UND_MAC: [u8; 6] = [2, 0, 0, 0, 0x01, 0x01];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0x07, 0x07];
const CLIENT: [u8; 4] = [1, 1, 1, 7];
const VM: [u8; 4] = [10, 0, 0, 7];
const LOCAL: [u8; 4] = [172, 168, 0, 1];
/// Nanoseconds: the pipeline's clock here (10^9 ticks a second).
const SEC: u64 = 1_000_000_000;

/// One tenant of the reference scenario, as its frames and rules need it.
struct Tenant {
    key: u32,
    host: [u8; 4],
    host_mac: [u8; 6],
    /// The gateway's MAC inside the tenant's gretap tunnel, and the VM's.
    mac: [u8; 6],
    vm_mac: [u8; 6],
    eip: [u8; 4],
    /// The port its firewall lets in.
    port: u16,
}

const T1: Tenant = Tenant {
    key: 1000,
    host: [172, 168, 0, 11],
    host_mac: [2, 0, 0, 0, 0x0b, 0x0b],
    mac: [2, 0, 0, 0, 0x10, 0],
    vm_mac: [2, 0, 0, 0, 0x0a, 0x07],
    eip: [2, 2, 2, 11],
    port: 22,
};

const T2: Tenant = Tenant {
    key: 2000,
    host: [172, 168, 0, 12],
    host_mac: [2, 0, 0, 0, 0x0c, 0x0c],
    mac: [2, 0, 0, 0, 0x20, 0],
    vm_mac: [2, 0, 0, 0, 0x0a, 0x17],
    eip: [2, 2, 2, 12],
    port: 23,
};

fn be(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

/// A TCP segment from the client to `t`'s elastic IP.
fn from_client(t: &Tenant, sport: u16, syn: bool, seq: u32, ack: Option<u32>) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(CLIENT, t.eip, 64)
        .tcp(sport, t.port, seq, 64240);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// `t`'s VM answering the client's SYN (a SYN-ACK), in its gretap tunnel:
/// outer Ethernet, IPv4 and GRE with key (RFC 2784/2890) by hand, since
/// etherparse has no GRE.
fn syn_ack_from_vm(t: &Tenant, dport: u16) -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2(t.vm_mac, t.mac)
        .ipv4(VM, CLIENT, 64)
        .tcp(t.port, dport, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut inner, &[])
        .unwrap();
    let mut gre = vec![0x20, 0x00, 0x65, 0x58];
    gre.extend_from_slice(&t.key.to_be_bytes());
    gre.extend_from_slice(&inner);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(t.host_mac, UND_MAC)
        .ipv4(t.host, LOCAL, 64)
        .write(&mut out, etherparse::IpNumber(47), &gre)
        .unwrap();
    out
}

/// examples/reference.toml, with `[offload] outer_df` as given.
fn config(outer_df: OuterDf) -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/reference.toml");
    let text = std::fs::read_to_string(path).expect("examples/reference.toml");
    // A table the manager walks whole each tick (it visits 4096 slots a
    // tick), so that one tick queries every flow.
    assert!(
        text.contains("max_flows = 65536"),
        "reference.toml changed shape"
    );
    let text = text.replacen("max_flows = 65536", "max_flows = 1024", 1);
    assert!(
        text.contains("outer_df = \"copy\""),
        "reference.toml changed shape"
    );
    let text = text.replacen(
        "outer_df = \"copy\"",
        &format!("outer_df = \"{outer_df}\""),
        1,
    );
    ctl::config::parse(&text, "reference.toml", &"0-1".parse().unwrap()).expect("valid")
}

/// A daemon's control plane and one worker, without ports: the tables of
/// the running state, a pipeline fed by hand, the offload plane.
struct Gateway {
    handler: Handler,
    resolver: Resolver<VecFrame>,
    publisher: Arc<Publisher<Tables>>,
    counters: Arc<WorkerCounters>,
    pipeline: Pipeline,
    plane: OffloadPlane,
}

impl Gateway {
    fn new() -> Gateway {
        Gateway::with(OuterDf::Copy)
    }

    fn with(outer_df: OuterDf) -> Gateway {
        Gateway::with_api(outer_df, false)
    }

    /// With both ports answering the template API (`asynchronous`) or
    /// not, asked as the daemon asks: between configure and start.
    fn with_api(outer_df: OuterDf, asynchronous: bool) -> Gateway {
        Gateway::with_config(config(outer_df), asynchronous)
    }

    fn with_config(config: Config, asynchronous: bool) -> Gateway {
        let outer_df = config.offload.outer_df;
        assert_eq!(config.offload.outer_df, outer_df);
        let port_ids = vec![(PUB, MacAddr(PUB_MAC)), (UND, MacAddr(UND_MAC))];
        let mut handler = Handler::new(
            Running::new(config.clone()),
            Runtime::new(&config, port_ids),
            "0-1".parse().unwrap(),
            PathBuf::from("reference.toml"),
        );
        let mut resolver = Resolver::new(
            NeighbourWriter::with_limits(NeighbourLimits::uniform(64)),
            ResolverConfig::default(),
        );
        let tables = handler.initial(resolver.writer()).expect("tables");
        let ports = vec![
            PlanePort {
                id: PUB,
                name: "pub0".into(),
                role: Role::Public,
                marks: true,
            },
            PlanePort {
                id: UND,
                name: "und0".into(),
                role: Role::Underlay,
                marks: true,
            },
        ];
        let sizes = templates::Sizes {
            queue_depth: config.offload.queue_depth,
            max_flows: config.offload.max_flows,
        };
        let apis: Vec<_> = [PUB, UND]
            .into_iter()
            .map(|port| {
                fake::set_async(port, asynchronous);
                (port, templates::configure(port, sizes))
            })
            .collect();
        // The daemon's probe, through the fake: a capable NIC.
        let mut plane = OffloadPlane::new(&config, ports, &mut |rule, port| {
            templates::check(&apis, rule, port)
        });
        plane.use_templates(apis);
        let link = plane.link(0).expect("a capable NIC: flows are offered");
        let pipeline = Pipeline::new(TokenBucket::new(1000, 50, SEC), 0)
            .with_flows(1024, Timeouts::default(), SEC)
            .unwrap()
            .with_tenants(16)
            .with_snat(&tables.pools)
            .with_offload(link);
        Gateway {
            handler,
            resolver,
            publisher: Publisher::new(tables),
            // Rule counter slots too: the deny rules' counts are checked.
            counters: Arc::new(WorkerCounters::new(16).with_rules(64)),
            pipeline,
            plane,
        }
    }

    /// Runs `frame` through the worker at `now`: the verdict and the frame.
    fn send(&mut self, frame: &[u8], port: u16, now: u64) -> (Verdict, Vec<u8>) {
        let tables = self.publisher.current();
        let mut f = VecFrame::new(frame, port);
        let v = self.pipeline.process(&tables, &self.counters, &mut f, now);
        (v, f.data().to_vec())
    }

    /// `t`'s connection from client port `sport`, through its handshake:
    /// the SYN as it left into the tunnel, and the SYN-ACK as it left to
    /// the client.
    fn connect(&mut self, t: &Tenant, sport: u16) -> (Vec<u8>, Vec<u8>) {
        let (v, syn) = self.send(&from_client(t, sport, true, 1000, None), PUB, 0);
        assert_eq!(v, Verdict::Forward(UND));
        let (v, syn_ack) = self.send(&syn_ack_from_vm(t, sport), UND, 0);
        assert_eq!(v, Verdict::Forward(PUB));
        let (v, _) = self.send(&from_client(t, sport, false, 1001, Some(5001)), PUB, 0);
        assert_eq!(v, Verdict::Forward(UND));
        (syn, syn_ack)
    }

    fn tick(&mut self, now_ms: u64) {
        let tables = self.publisher.current();
        self.plane.tick_at(now_ms, &tables);
    }

    /// A runtime change, as `tgwctl` makes it: a new snapshot published.
    fn change(&mut self, op: &Op) {
        let cx = ChangeCx {
            publisher: &self.publisher,
            resolver: &mut self.resolver,
            counters: std::slice::from_ref(&self.counters),
            share_mailboxes: &[],
            offload: Some(&mut self.plane),
        };
        self.handler.change(op, cx).expect("the change is valid");
    }

    /// Sweeps the whole flow table at `now`.
    fn sweep(&mut self, now: u64) {
        let tables = self.publisher.current();
        for _ in 0..1024 {
            self.pipeline.sweep(&tables, &self.counters, now);
        }
    }
}

/// An IPv4 header as a root rule checks it: no options, not a fragment;
/// toward a tenant (`df`) DF set and TOS 0, the pushed header's; a
/// tunnel's outer header (`outer`) ECN Not-ECT, from its host to the
/// gateway (`addrs`).
fn whole_ipv4(addrs: Option<([u8; 4], [u8; 4])>, df: bool, outer: bool) -> Item {
    let fragment = if df {
        Masked {
            spec: 0x4000,
            mask: 0x7fff,
        }
    } else {
        Masked {
            spec: 0,
            mask: 0x3fff,
        }
    };
    let tos = match (df, outer) {
        (true, _) => Some(Masked::<u8>::exact(0)),
        (false, true) => Some(Masked {
            spec: 0,
            mask: 0x03,
        }),
        (false, false) => None,
    };
    Item::Ipv4 {
        version_ihl: Some(0x45),
        tos,
        fragment_offset: Some(fragment),
        ttl: None,
        src: addrs.map(|(s, _)| Masked::<u32>::exact(be(s))),
        dst: addrs.map(|(_, d)| Masked::<u32>::exact(be(d))),
        protocol: outer.then_some(47),
    }
}

/// An IPv4 header as a per-flow rule matches it: addresses and protocol.
fn flow_ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8) -> Item {
    Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        ttl: None,
        src: Some(Masked::<u32>::exact(be(src))),
        dst: Some(Masked::<u32>::exact(be(dst))),
        protocol: Some(protocol),
    }
}

fn eth_ipv4() -> Item {
    Item::Eth {
        dst: None,
        src: None,
        ether_type: Some(0x0800),
    }
}

/// TCP between the ports, with FIN, SYN and RST clear.
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

/// The root group's attributes: group 0, transfer; priority 0 is the
/// punt rules', first.
const ROOT: Attr = Attr {
    group: 0,
    priority: 0,
    ingress: false,
    egress: false,
    transfer: true,
};

/// A tunnel's root rule's: after the underlay port's punt rules.
const TUNNEL_ROOT: Attr = Attr {
    priority: 1,
    ..ROOT
};

/// The per-flow full rules': group 1, reached by a root rule's jump.
const TRANSFER: Attr = Attr { group: 1, ..ROOT };

/// The group a tunnel's root rule jumps to: its GRE protocol's
/// integrity check, on the way to group 1.
const CHECK: Attr = Attr { group: 3, ..ROOT };

/// The public port's root rule's: after the punt rule (0) and the deny
/// rules, which take priorities 1 to 64 in the same group.
const PUBLIC_ROOT: Attr = Attr {
    priority: 65,
    ..ROOT
};

/// An IPv4 header whose TTL is 0 or 1 (`ttl spec 0 ttl mask 0xfe`), of
/// protocol `protocol` if given.
fn ttl_expires(protocol: Option<u8>) -> Item {
    Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        ttl: Some(Masked {
            spec: 0,
            mask: 0xfe,
        }),
        src: None,
        dst: None,
        protocol,
    }
}

/// The public port's punt rule: a packet whose TTL would expire jumps to
/// group 2, where there is no rule: a miss, to software.
fn public_punt() -> Rule {
    Rule {
        attr: ROOT,
        pattern: vec![eth_ipv4(), ttl_expires(None)],
        actions: vec![Action::Jump(2)],
    }
}

/// The underlay port's punt rule for gretap tunnels (the reference
/// tenants'): the inner packet's TTL, after any GRE header carrying
/// Ethernet.
fn gretap_punt() -> Rule {
    let mut outer = ttl_expires(Some(47));
    if let Item::Ipv4 { ttl, .. } = &mut outer {
        *ttl = None;
    }
    Rule {
        attr: ROOT,
        pattern: vec![
            eth_ipv4(),
            outer,
            Item::Gre {
                protocol: Some(0x6558),
                checksum_present: None,
                key_present: None,
                sequence_present: None,
            },
            eth_ipv4(),
            ttl_expires(None),
        ],
        actions: vec![Action::Jump(2)],
    }
}

/// An integrity item (DPDK's `rte_flow_item_integrity`) of encapsulation
/// `level` (1 the outermost headers, 2 those in the tunnel): layer 3 and
/// the IPv4 header checksum passed.
fn intact(level: u32) -> Item {
    Item::Integrity {
        level,
        l3_ok: true,
        ipv4_csum_ok: true,
    }
}

/// The public port's root rule: whole packets with DF and TOS 0, their
/// header intact, go on to the flows' group.
fn public_root() -> Rule {
    Rule {
        attr: PUBLIC_ROOT,
        pattern: vec![eth_ipv4(), whole_ipv4(None, true, false), intact(1)],
        actions: vec![Action::Jump(1)],
    }
}

/// The underlay port's integrity check for gretap tunnels, which their
/// root rules jump to: outer and inner IPv4 headers intact, on to the
/// flows' group.
fn gretap_check() -> Rule {
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
    Rule {
        attr: CHECK,
        pattern: vec![
            eth_ipv4(),
            outer,
            intact(1),
            Item::Gre {
                protocol: Some(0x6558),
                checksum_present: None,
                key_present: None,
                sequence_present: None,
            },
            eth_ipv4(),
            any,
            intact(2),
        ],
        actions: vec![Action::Jump(1)],
    }
}

/// The same with `[offload] outer_df = "set"`: whole packets with TOS 0,
/// DF not looked at (not a fragment: MF and offset zero, mask 0x3fff).
fn public_root_df_set() -> Rule {
    let mut packet = whole_ipv4(None, false, false);
    if let Item::Ipv4 { tos, .. } = &mut packet {
        *tos = Some(Masked::<u8>::exact(0));
    }
    Rule {
        attr: PUBLIC_ROOT,
        pattern: vec![eth_ipv4(), packet, intact(1)],
        actions: vec![Action::Jump(1)],
    }
}

/// `t`'s tunnel's root rule on the underlay port: from its host to the
/// gateway, GRE (gretap) with its key and no checksum or sequence number,
/// the inner Ethernet to the tenant's MAC, a whole inner packet; then
/// the integrity check ([`gretap_check`]).
fn tunnel_root(t: &Tenant) -> Rule {
    Rule {
        attr: TUNNEL_ROOT,
        pattern: vec![
            eth_ipv4(),
            whole_ipv4(Some((t.host, LOCAL)), false, true),
            Item::Gre {
                protocol: Some(0x6558),
                checksum_present: Some(false),
                key_present: Some(true),
                sequence_present: Some(false),
            },
            Item::GreKey(t.key),
            Item::Eth {
                dst: Some(Masked::<[u8; 6]>::exact(t.mac)),
                src: None,
                ether_type: Some(0x0800),
            },
            whole_ipv4(None, false, false),
        ],
        actions: vec![Action::Jump(3)],
    }
}

/// The tunnel header toward `t`'s host as the software path wrote it on
/// `frame` (the tunnelled SYN): outer Ethernet, IPv4, GRE with key,
/// inner Ethernet; with what software writes per frame zeroed: the outer
/// IPv4 total length, identification and checksum. DF, which software
/// copies from the inner packet (docs/packet-path.md), stays set: the
/// rule matches only inner packets with DF, as the SYN was; and the TOS
/// software copied (0) is the one the rule matches.
fn tunnel_header_of(frame: &[u8]) -> Vec<u8> {
    let mut h = frame[..56].to_vec();
    assert_eq!(h[20..22], [0x40, 0], "the SYN had DF, copied outside");
    assert_eq!(h[15], 0, "the SYN's TOS, copied outside");
    h[16..20].fill(0);
    h[24..26].fill(0);
    h
}

/// The rule of the client's direction of `t`'s connection from `sport`:
/// DNAT to 10.0.0.7, into the tunnel, out of the underlay port.
fn public_rule(t: &Tenant, sport: u16, header: Vec<u8>) -> Rule {
    let mut eth = vec![0; 12];
    eth.extend_from_slice(&[0x08, 0x00]);
    Rule {
        attr: TRANSFER,
        pattern: vec![eth_ipv4(), flow_ipv4(CLIENT, t.eip, 6), tcp(sport, t.port)],
        actions: vec![
            Action::SetIpv4Dst(be(VM)),
            Action::SetTpDst(t.port),
            Action::DecTtl,
            Action::RawDecap(eth),
            Action::RawEncap(header),
            Action::Count,
            Action::RepresentedPort(UND),
        ],
    }
}

/// The rule of the VM's direction: out of the tunnel, SNAT to the
/// elastic IP, toward the client's MAC, out of the public port.
fn underlay_rule(t: &Tenant, sport: u16) -> Rule {
    // The headers raw_decap removes, as bytes that show them.
    let mut outer = vec![0; 12];
    outer.extend_from_slice(&[0x08, 0x00]);
    outer.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 47, 0, 0]);
    outer.extend_from_slice(&t.host);
    outer.extend_from_slice(&LOCAL);
    outer.extend_from_slice(&[0x20, 0x00, 0x65, 0x58]);
    outer.extend_from_slice(&t.key.to_be_bytes());
    outer.extend_from_slice(&[0; 12]);
    outer.extend_from_slice(&[0x08, 0x00]);
    let mut to_client = CLIENT_MAC.to_vec();
    to_client.extend_from_slice(&PUB_MAC);
    to_client.extend_from_slice(&[0x08, 0x00]);
    Rule {
        attr: TRANSFER,
        // The key and the inner tuple: software takes the flow's frames
        // from any of the tenant's hosts, and the root rule checked that
        // the host is one.
        pattern: vec![
            eth_ipv4(),
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: None,
                dst: None,
                protocol: Some(47),
            },
            Item::Gre {
                protocol: None,
                checksum_present: None,
                key_present: Some(true),
                sequence_present: None,
            },
            Item::GreKey(t.key),
            eth_ipv4(),
            flow_ipv4(VM, CLIENT, 6),
            tcp(t.port, sport),
        ],
        actions: vec![
            Action::RawDecap(outer),
            Action::RawEncap(to_client),
            Action::SetIpv4Src(be(t.eip)),
            Action::SetTpSrc(t.port),
            Action::DecTtl,
            Action::Count,
            Action::RepresentedPort(PUB),
        ],
    }
}

/// The creations among `events`: (port, rule, handle).
fn created(events: &[Event]) -> Vec<(u16, Rule, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Created(port, rule, handle) => Some((*port, rule.clone(), *handle)),
            _ => None,
        })
        .collect()
}

fn destroyed(events: &[Event]) -> Vec<usize> {
    let mut d: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Destroyed(h) => Some(*h),
            _ => None,
        })
        .collect();
    d.sort_unstable();
    d
}

fn refused(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| matches!(e, Event::Refused(..)))
        .collect()
}

#[test]
fn the_reference_flows_rules_are_exactly_the_expected_ones_and_go_when_the_flows_do() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::new();
    // The probe validated every shape of both ports, and the fake took
    // them all: both ports full.
    let probed = fake::take();
    assert!(refused(&probed).is_empty(), "{probed:?}");
    let validated = probed
        .iter()
        .filter(|e| matches!(e, Event::Validated(..)))
        .count();
    // Public: its punt and root rules, TCP, UDP, mark and queue,
    // steering, a deny's drop;
    // underlay: GRE's and gretap's punt and root rules and integrity
    // checks, GRE, gretap, mark and queue.
    assert_eq!(validated, 7 + 9, "{probed:?}");

    let (t1_syn, t1_syn_ack) = gw.connect(&T1, 40000);
    let (t2_syn, _) = gw.connect(&T2, 40001);
    gw.tick(0);
    let events = fake::take();
    assert!(refused(&events).is_empty(), "{events:?}");
    let (roots, rules): (Vec<_>, Vec<_>) = created(&events)
        .into_iter()
        .partition(|(_, r, _)| r.attr.group != 1);
    // The root rules, made at the first tick for the tables: the punt
    // rules first, the tunnels' integrity check, then the public port's,
    // and one per tenant tunnel, a tenant at a time.
    let roots: Vec<(u16, Rule)> = roots.into_iter().map(|(p, r, _)| (p, r)).collect();
    assert_eq!(
        roots,
        [
            (PUB, public_punt()),
            (UND, gretap_punt()),
            (UND, gretap_check()),
            (PUB, public_root()),
            (UND, tunnel_root(&T1)),
            (UND, tunnel_root(&T2))
        ],
        "{events:?}"
    );
    assert_eq!(rules.len(), 4, "two legs of two flows: {events:?}");
    // The client's MAC and the public port's, as the software path wrote
    // them on the SYN-ACK it sent the client.
    assert_eq!(t1_syn_ack[..12], [CLIENT_MAC, PUB_MAC].concat());
    let expected = [
        (PUB, public_rule(&T1, 40000, tunnel_header_of(&t1_syn))),
        (UND, underlay_rule(&T1, 40000)),
        (PUB, public_rule(&T2, 40001, tunnel_header_of(&t2_syn))),
        (UND, underlay_rule(&T2, 40001)),
    ];
    for (i, ((port, rule, _), (want_port, want))) in rules.iter().zip(&expected).enumerate() {
        assert_eq!((port, rule), (want_port, want), "rule {i}");
    }
    // The tunnel headers, field by field, independently of the software
    // path: t1's host MAC and address, key 1000, the VM's MAC inside.
    let Action::RawEncap(h) = &rules[0].1.actions[4] else {
        panic!("{:?}", rules[0].1)
    };
    assert_eq!(h[..12], [T1.host_mac, UND_MAC].concat()[..]);
    assert_eq!(h[12..16], [0x08, 0x00, 0x45, 0x00]);
    assert_eq!(h[22..24], [64, 47], "TTL 64, GRE");
    assert_eq!(h[26..34], [LOCAL, T1.host].concat()[..]);
    assert_eq!(h[34..42], [0x20, 0x00, 0x65, 0x58, 0, 0, 0x03, 0xe8]);
    assert_eq!(h[42..54], [T1.vm_mac, T1.mac].concat()[..]);
    let handle = |i: usize| rules[i].2;

    // The NIC counted t1's packets: at the next query the worker hears
    // of them, and its flow lives on from when it applies them.
    fake::set_hits(handle(0), 10, 1000);
    fake::set_hits(handle(1), 5, 400);
    gw.tick(1000);
    let queried = fake::take();
    assert!(
        queried
            .iter()
            .filter(|e| matches!(e, Event::Queried(_)))
            .count()
            >= 4,
        "{queried:?}"
    );
    let applied = gw.pipeline.apply_feedback(&gw.counters, 7000 * SEC);
    assert_eq!(applied, 1, "one refresh: t2's rules had no hits");
    let t1 = gw.counters.tenant(0).expect("t1's slot");
    assert_eq!(
        (t1.offloaded_packets.get(), t1.offloaded_bytes.get()),
        (15, 1400)
    );

    // A change to t2 pulls its flow back: both its rules destroyed, the
    // worker told; t1's stay.
    gw.change(&Op::RuleAdd {
        tenant: "t2".into(),
        rule: serde_json::json!({"direction": "in", "action": "allow", "proto": "udp", "dport": 53}),
        position: None,
    });
    gw.tick(1001);
    let events = fake::take();
    assert_eq!(
        destroyed(&events),
        vec![handle(2), handle(3)],
        "t2's flow rules only, not the root rules, which stay as they were: {events:?}"
    );
    assert!(created(&events).is_empty(), "{events:?}");
    assert_eq!(fake::live(), 6 + 2);
    gw.pipeline.apply_feedback(&gw.counters, 7000 * SEC);
    assert_eq!(gw.counters.offload.released.get(), 1);

    // Past the flows' first deadline (7440 s after the handshake): t2's
    // flow expires in software as it would without offload; t1's, which
    // the refresh at 7000 s kept, lives on with its rules.
    gw.sweep(8000 * SEC);
    gw.tick(2000);
    let events = fake::take();
    assert!(destroyed(&events).is_empty(), "{events:?}");
    assert_eq!(fake::live(), 6 + 2);
    // Past the refreshed deadline it expires too, and its rules go.
    gw.sweep((7000 + 7441) * SEC);
    gw.tick(3000);
    let events = fake::take();
    assert_eq!(destroyed(&events), vec![handle(0), handle(1)], "{events:?}");
    assert_eq!(fake::live(), 6, "the root rules");
    assert_eq!(gw.counters.offload.ended.get(), 1, "t2's end was not told");
    // At shutdown the root rules go too.
    gw.plane.shutdown();
    assert_eq!(fake::live(), 0);
}

/// `inner` (an Ethernet frame) in `t`'s gretap tunnel with the GRE flags
/// word `flags` (RFC 2784/2890: C 0x8000 adds the checksum word, K 0x2000
/// the key, S 0x1000 the sequence number), by hand.
fn tunnelled(t: &Tenant, inner: &[u8], flags: u16) -> Vec<u8> {
    let mut gre = flags.to_be_bytes().to_vec();
    gre.extend_from_slice(&[0x65, 0x58]);
    if flags & 0x8000 != 0 {
        gre.extend_from_slice(&[0, 0, 0, 0]); // checksum, reserved
    }
    if flags & 0x2000 != 0 {
        gre.extend_from_slice(&t.key.to_be_bytes());
    }
    if flags & 0x1000 != 0 {
        gre.extend_from_slice(&7u32.to_be_bytes());
    }
    gre.extend_from_slice(inner);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(t.host_mac, UND_MAC)
        .ipv4(t.host, LOCAL, 64)
        .write(&mut out, etherparse::IpNumber(47), &gre)
        .unwrap();
    out
}

/// `t`'s VM's segment to the client (an ACK), as an Ethernet frame.
fn vm_ack(t: &Tenant, dport: u16) -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ethernet2(t.vm_mac, t.mac)
        .ipv4(VM, CLIENT, 64)
        .tcp(t.port, dport, 5001, 64240)
        .ack(1001)
        .write(&mut inner, &[])
        .unwrap();
    inner
}

/// The IPv4 header at `ip` of `frame` with 4 bytes of options (NOP, NOP,
/// NOP, end of list: RFC 791) and its IHL and total length grown to
/// match, resealed.
fn with_options(frame: &[u8], ip: usize) -> Vec<u8> {
    let mut out = frame[..ip + 20].to_vec();
    out.extend_from_slice(&[1, 1, 1, 0]);
    out.extend_from_slice(&frame[ip + 20..]);
    out[ip] = 0x46;
    let len = u16::from_be_bytes([out[ip + 2], out[ip + 3]]) + 4;
    out[ip + 2..ip + 4].copy_from_slice(&len.to_be_bytes());
    resealed(out, ip)
}

/// `frame` with `f` applied to the bytes from `at` on.
fn edited(frame: &[u8], at: usize, f: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut out = frame.to_vec();
    f(&mut out[at..]);
    out
}

/// `frame` with the IPv4 header at `ip` given its right checksum (RFC
/// 791, computed by etherparse), as a sender would send it: an edited
/// header is then special only by what was edited, not by a damaged
/// checksum, which the root rules leave to software too.
fn resealed(mut frame: Vec<u8>, ip: usize) -> Vec<u8> {
    frame[ip + 10..ip + 12].fill(0);
    let sum = etherparse::Ipv4HeaderSlice::from_slice(&frame[ip..])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    frame[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// `frame` with `f` applied to its IPv4 header at `ip`, resealed.
fn ip_edited(frame: &[u8], ip: usize, f: impl Fn(&mut [u8])) -> Vec<u8> {
    resealed(edited(frame, ip, f), ip)
}

/// Offload never changes what the gateway does: a frame of an offloaded
/// flow that software treats specially — a fragment (its later pieces
/// have no ports and would reach software alone), IP options, GRE with a
/// checksum or sequence number (raw decap removes a fixed length), an
/// outer ECN mark (RFC 6040 decap changes the inner packet), an inner
/// packet without DF or with an ECN or DSCP value (software copies DF and
/// the TOS into the outer header) — must not match the flow's full rule,
/// so that it reaches software. The recorded rules are applied to frames
/// built with etherparse and by hand from the RFCs.
#[test]
fn frames_software_treats_specially_do_not_match_the_full_rules() {
    use matcher::applied;
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::new();
    fake::take();
    gw.connect(&T1, 40000);
    gw.tick(0);
    let rules = created(&fake::take());
    // What each port holds: its root rules and the flow's rule.
    let on = |port: u16| -> Vec<Rule> {
        rules
            .iter()
            .filter(|(p, _, _)| *p == port)
            .map(|(_, r, _)| r.clone())
            .collect()
    };
    let (on_pub, on_und) = (on(PUB), on(UND));
    let flow_rule = |held: &[Rule]| -> Rule {
        let flows: Vec<&Rule> = held.iter().filter(|r| r.attr.group == 1).collect();
        assert_eq!(flows.len(), 1, "{held:?}");
        flows[0].clone()
    };
    let (public, underlay) = (flow_rule(&on_pub), flow_rule(&on_und));

    // Toward the tenant: the client's ACK (etherparse sets DF).
    const IP: usize = 14;
    let ack = from_client(&T1, 40000, false, 1001, Some(5001));
    assert_eq!(ack[IP + 6], 0x40, "DF");
    assert_eq!(
        applied(&on_pub, &ack),
        Some(&public),
        "the flow's plain segment"
    );
    assert!(!matcher::matches(&underlay, &ack));
    let specials = [
        ("first fragment (MF)", ip_edited(&ack, IP, |h| h[6] |= 0x20)),
        (
            "later fragment (offset)",
            ip_edited(&ack, IP, |h| h[7] = 185),
        ),
        ("IP options", with_options(&ack, IP)),
        ("DF clear", ip_edited(&ack, IP, |h| h[6] = 0)),
        ("ECN ECT(0)", ip_edited(&ack, IP, |h| h[1] = 0x02)),
        ("ECN CE", ip_edited(&ack, IP, |h| h[1] = 0x03)),
        ("DSCP EF", ip_edited(&ack, IP, |h| h[1] = 0xb8)),
        ("FIN", edited(&ack, IP + 20, |h| h[13] |= 0x01)),
        ("RST", edited(&ack, IP + 20, |h| h[13] |= 0x04)),
    ];
    for (what, frame) in &specials {
        assert_eq!(applied(&on_pub, frame), None, "{what} matched {on_pub:?}");
    }

    // Out of the tenant: the VM's ACK in the tunnel, key only.
    let inner = vm_ack(&T1, 40000);
    let plain = tunnelled(&T1, &inner, 0x2000);
    assert_eq!(
        applied(&on_und, &plain),
        Some(&underlay),
        "the flow's plain segment"
    );
    assert!(!matcher::matches(&public, &plain));
    // The inner IPv4 header: after outer Ethernet, IPv4, GRE with key and
    // the inner Ethernet.
    const INNER: usize = 14 + 20 + 8 + 14;
    assert_eq!(
        applied(&on_und, &ip_edited(&plain, INNER, |h| h[6] = 0)),
        Some(&underlay),
        "DF is not the underlay side's business: software forwards it as is"
    );
    // t1's key from t2's host: software drops it (not t1's host), and no
    // root rule passes it (the flow's rule alone would: it leaves the
    // host to the root rule).
    let from_t2_host = {
        let mut f = plain.clone();
        f[IP + 12..IP + 16].copy_from_slice(&T2.host);
        let sum = etherparse::Ipv4HeaderSlice::from_slice(&f[IP..])
            .unwrap()
            .to_header()
            .calc_header_checksum();
        f[IP + 10..IP + 12].copy_from_slice(&sum.to_be_bytes());
        f
    };
    assert!(matcher::matches(&underlay, &from_t2_host));
    let specials = [
        ("GRE checksum (C)", tunnelled(&T1, &inner, 0xa000)),
        ("GRE sequence number (S)", tunnelled(&T1, &inner, 0x3000)),
        ("outer ECN CE", ip_edited(&plain, IP, |h| h[1] = 0x03)),
        ("outer ECN ECT(0)", ip_edited(&plain, IP, |h| h[1] = 0x02)),
        ("outer fragment", ip_edited(&plain, IP, |h| h[6] |= 0x20)),
        ("outer IP options", with_options(&plain, IP)),
        ("inner fragment", ip_edited(&plain, INNER, |h| h[6] |= 0x20)),
        (
            "inner later fragment",
            ip_edited(&plain, INNER, |h| h[7] = 8),
        ),
        ("inner IP options", with_options(&plain, INNER)),
        (
            "inner Ethernet to another MAC",
            edited(&plain, 14 + 20 + 8, |h| h[5] ^= 1),
        ),
        ("FIN", edited(&plain, INNER + 20, |h| h[13] |= 0x01)),
        ("t1's key from t2's host", from_t2_host),
    ];
    for (what, frame) in &specials {
        assert_eq!(applied(&on_und, frame), None, "{what} matched {on_und:?}");
    }
}

/// `frame` with the TTL of its IPv4 header at `ip` set to `ttl`, the
/// header checksum made right again (RFC 791), as a sender would send it.
fn with_ttl(frame: &[u8], ip: usize, ttl: u8) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[ip + 8] = ttl;
    let sum = etherparse::Ipv4HeaderSlice::from_slice(&out[ip..])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    out[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    out
}

/// TTL ≤ 1 reaches software (docs/offload.md, "TTL ≤ 1 reaches
/// software"): a packet of an offloaded flow whose TTL forwarding would
/// expire (0 or 1) hits its port's punt rule, first in the root group,
/// which jumps to an empty group: a miss, so software has it and answers
/// Time Exceeded, where the flow's rule would have sent it on with
/// `dec_ttl`. TTL 2 takes the flow's rule. Both directions: on the
/// underlay side the inner TTL counts (software decrements it after
/// decapsulation); the outer one is the tunnel's, whatever it is.
#[test]
fn a_packet_whose_ttl_expires_reaches_software_not_the_flows_rule() {
    use matcher::applied;
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::new();
    fake::take();
    gw.connect(&T1, 40000);
    gw.tick(0);
    let rules = created(&fake::take());
    let on = |port: u16| -> Vec<Rule> {
        rules
            .iter()
            .filter(|(p, _, _)| *p == port)
            .map(|(_, r, _)| r.clone())
            .collect()
    };
    let (on_pub, on_und) = (on(PUB), on(UND));
    assert!(on_pub.contains(&public_punt()), "{on_pub:?}");
    assert!(on_und.contains(&gretap_punt()), "{on_und:?}");
    let flow_rule = |held: &[Rule]| -> Rule {
        let flows: Vec<&Rule> = held.iter().filter(|r| r.attr.group == 1).collect();
        assert_eq!(flows.len(), 1, "{held:?}");
        flows[0].clone()
    };
    let (public, underlay) = (flow_rule(&on_pub), flow_rule(&on_und));
    // The rule a frame meets first: group 0's, by priority.
    let first = |held: &[Rule], frame: &[u8]| -> Option<Rule> {
        held.iter()
            .filter(|r| r.attr.group == 0 && matcher::matches(r, frame))
            .min_by_key(|r| r.attr.priority)
            .cloned()
    };

    const IP: usize = 14;
    let ack = from_client(&T1, 40000, false, 1001, Some(5001));
    for ttl in [0, 1] {
        let frame = with_ttl(&ack, IP, ttl);
        assert_eq!(
            applied(&on_pub, &frame),
            None,
            "toward the tenant, TTL {ttl}"
        );
        assert_eq!(first(&on_pub, &frame), Some(public_punt()), "TTL {ttl}");
    }
    for ttl in [2, 64, 255] {
        let frame = with_ttl(&ack, IP, ttl);
        assert_eq!(applied(&on_pub, &frame), Some(&public), "TTL {ttl}");
    }
    // What software does with the punted packet: Time Exceeded back to
    // the client (RFC 792: type 11), the flow's rule never involved.
    let (v, out) = gw.send(&with_ttl(&ack, IP, 1), PUB, 0);
    assert_eq!(v, Verdict::Forward(PUB), "{out:02x?}");
    assert_eq!(
        (out[IP + 9], out[IP + 20]),
        (1, 11),
        "ICMP Time Exceeded: {out:02x?}"
    );

    // Out of the tenant: the inner TTL decides, not the outer one.
    const INNER: usize = 14 + 20 + 8 + 14;
    let plain = tunnelled(&T1, &vm_ack(&T1, 40000), 0x2000);
    for ttl in [0, 1] {
        let frame = with_ttl(&plain, INNER, ttl);
        assert_eq!(
            applied(&on_und, &frame),
            None,
            "out of the tenant, TTL {ttl}"
        );
        assert_eq!(first(&on_und, &frame), Some(gretap_punt()), "TTL {ttl}");
    }
    for ttl in [2, 64] {
        let frame = with_ttl(&plain, INNER, ttl);
        assert_eq!(applied(&on_und, &frame), Some(&underlay), "TTL {ttl}");
    }
    for outer in [0, 1] {
        let frame = with_ttl(&plain, IP, outer);
        assert_eq!(
            applied(&on_und, &frame),
            Some(&underlay),
            "outer TTL {outer}"
        );
    }
}

/// A damaged IPv4 header checksum never rides a flow's rule
/// (docs/offload.md, "Keeping the behaviour identical"): software drops
/// such a packet (`ipv4_checksum` for the outer header, `inner_invalid`
/// for the header inside a tunnel), where a rule that rewrites addresses
/// and decrements the TTL would make the checksum good again and send it
/// on. The public root rule asks the outer header to be intact, the
/// tunnels' integrity check (group 3, which their root rules jump to)
/// both the outer and the inner one: a damaged frame of the offloaded
/// flow misses and goes to software, the same frame with a good checksum
/// takes the flow's rule. The checksums are the matcher's own (RFC 1071),
/// the damage one flipped bit.
#[test]
fn a_damaged_ipv4_header_reaches_software_not_the_flows_rule() {
    use dataplane::DropReason;
    use matcher::applied;
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::new();
    fake::take();
    gw.connect(&T1, 40000);
    gw.tick(0);
    let rules = created(&fake::take());
    let on = |port: u16| -> Vec<Rule> {
        rules
            .iter()
            .filter(|(p, _, _)| *p == port)
            .map(|(_, r, _)| r.clone())
            .collect()
    };
    let (on_pub, on_und) = (on(PUB), on(UND));
    assert!(on_pub.contains(&public_root()), "{on_pub:?}");
    assert!(on_und.contains(&gretap_check()), "{on_und:?}");
    let flow_rule = |held: &[Rule]| -> Rule {
        let flows: Vec<&Rule> = held.iter().filter(|r| r.attr.group == 1).collect();
        assert_eq!(flows.len(), 1, "{held:?}");
        flows[0].clone()
    };
    let (public, underlay) = (flow_rule(&on_pub), flow_rule(&on_und));
    // The header checksum's low bit flipped: one error RFC 1071's sum sees.
    let damaged = |frame: &[u8], ip: usize| edited(frame, ip, |h| h[11] ^= 0x01);

    // Toward the tenant: the client's ACK.
    const IP: usize = 14;
    let ack = from_client(&T1, 40000, false, 1001, Some(5001));
    assert_eq!(applied(&on_pub, &ack), Some(&public), "intact");
    let bad = damaged(&ack, IP);
    assert_eq!(applied(&on_pub, &bad), None, "damaged: {on_pub:?}");
    assert!(
        matcher::matches(&public, &bad),
        "the flow's own rule does not look at the checksum: only the root rule keeps it away"
    );
    let (v, _) = gw.send(&bad, PUB, 0);
    assert_eq!(v, Verdict::Drop(DropReason::Ipv4Checksum), "software");

    // Out of the tenant: the VM's ACK in the gretap tunnel; the outer
    // header, or the inner one after outer Ethernet, IPv4, GRE with key
    // and the inner Ethernet.
    const INNER: usize = 14 + 20 + 8 + 14;
    let plain = tunnelled(&T1, &vm_ack(&T1, 40000), 0x2000);
    assert_eq!(applied(&on_und, &plain), Some(&underlay), "intact");
    for (what, ip, reason) in [
        ("outer", IP, DropReason::Ipv4Checksum),
        ("inner", INNER, DropReason::InnerInvalid),
    ] {
        let bad = damaged(&plain, ip);
        assert_eq!(applied(&on_und, &bad), None, "{what} damaged: {on_und:?}");
        assert!(matcher::matches(&underlay, &bad), "{what}");
        let (v, _) = gw.send(&bad, UND, 0);
        assert_eq!(v, Verdict::Drop(reason), "software, {what}");
    }
}

/// `[offload] outer_df`: with "copy" (the default) a packet toward the
/// tenant without DF does not reach the flow's rule, since software
/// would give its outer header no DF; with "set" it does (the pushed
/// header has DF set, the operator's choice: docs/offload.md, "mlx5 and
/// DF"), and the NIC's probe validated the public root rule without the
/// DF match. Fragments, ECN and DSCP values go to software under both.
#[test]
fn a_df_clear_frame_takes_the_flows_rule_only_with_outer_df_set() {
    use matcher::applied;
    let _nic = fake::exclusive();
    flowcheck::eal();
    for (outer_df, root, df_clear_offloaded) in [
        (OuterDf::Copy, public_root(), false),
        (OuterDf::Set, public_root_df_set(), true),
    ] {
        fake::reset();
        let mut gw = Gateway::with(outer_df);
        let probed = fake::take();
        let probed_root = probed.iter().any(|e| match e {
            Event::Validated(port, rule) => *port == PUB && *rule == root,
            _ => false,
        });
        assert!(probed_root, "{outer_df}: the probe's root rule: {probed:?}");
        gw.connect(&T1, 40000);
        gw.tick(0);
        let on_pub: Vec<Rule> = created(&fake::take())
            .into_iter()
            .filter(|(p, _, _)| *p == PUB)
            .map(|(_, r, _)| r)
            .collect();
        let (roots, flows): (Vec<&Rule>, Vec<&Rule>) =
            on_pub.iter().partition(|r| r.attr.group == 0);
        assert_eq!(roots, [&public_punt(), &root], "{outer_df}");
        assert_eq!(flows.len(), 1, "{outer_df}: {on_pub:?}");
        let public = flows[0];
        let Some(Action::RawEncap(h)) = public
            .actions
            .iter()
            .find(|a| matches!(a, Action::RawEncap(_)))
        else {
            panic!("{public:?}")
        };
        assert_eq!(h[20], 0x40, "{outer_df}: DF in the pushed header");

        const IP: usize = 14;
        let ack = from_client(&T1, 40000, false, 1001, Some(5001));
        assert_eq!(ack[IP + 6], 0x40, "DF");
        assert_eq!(applied(&on_pub, &ack), Some(public), "{outer_df}");
        let df_clear = ip_edited(&ack, IP, |h| h[6] = 0);
        assert_eq!(
            applied(&on_pub, &df_clear).is_some(),
            df_clear_offloaded,
            "{outer_df}: DF clear"
        );
        let specials = [
            (
                "first fragment (MF)",
                ip_edited(&df_clear, IP, |h| h[6] |= 0x20),
            ),
            (
                "later fragment (offset)",
                ip_edited(&df_clear, IP, |h| h[7] = 185),
            ),
            ("ECN CE", ip_edited(&df_clear, IP, |h| h[1] = 0x03)),
            ("DSCP EF", ip_edited(&df_clear, IP, |h| h[1] = 0xb8)),
        ];
        for (what, frame) in &specials {
            assert_eq!(applied(&on_pub, frame), None, "{outer_df}: {what}");
        }
    }
}

/// The async creations among `events` on flow queue `queue` (0: the
/// per-flow rules', 1: the static rules'): (port, table, rule, handle).
fn async_created_on(events: &[Event], on: u32) -> Vec<(u16, usize, Rule, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AsyncCreated {
                port,
                queue,
                table,
                rule,
                handle,
            } if *queue == on => Some((*port, *table, rule.clone(), *handle)),
            _ => None,
        })
        .collect()
}

fn async_created(events: &[Event]) -> Vec<(u16, usize, Rule, usize)> {
    async_created_on(events, 0)
}

fn async_destroyed_on(events: &[Event], on: u32) -> Vec<usize> {
    let mut d: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::AsyncDestroyed { queue, handle, .. } if *queue == on => Some(*handle),
            _ => None,
        })
        .collect();
    d.sort_unstable();
    d
}

fn async_destroyed(events: &[Event]) -> Vec<usize> {
    async_destroyed_on(events, 0)
}

/// The tables made among `events`: (port, table, attributes, size,
/// pattern template).
fn tables_made(events: &[Event]) -> Vec<(u16, usize, Attr, u32, Vec<Item>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TableCreated {
                port,
                table,
                attr,
                nb_flows,
                pattern,
                actions,
            } => {
                assert!(actions.is_empty(), "every value comes with the rule");
                Some((*port, *table, *attr, *nb_flows, pattern.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Whether a synchronous flow call reached the fake NIC: on an async port
/// none may (DPDK 22.11's mlx5 HWS refuses them, and so does the fake).
fn synchronous(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Validated(..) | Event::Created(..) | Event::Destroyed(_)
            )
        })
        .collect()
}

/// `item` as a template shows it: what it matches, every value zero.
fn template_item(item: &Item) -> Item {
    fn zero<T: Default + Copy>(m: &Option<Masked<T>>) -> Option<Masked<T>> {
        m.map(|m| Masked {
            spec: T::default(),
            mask: m.mask,
        })
    }
    match item {
        Item::Eth {
            dst,
            src,
            ether_type,
        } => Item::Eth {
            dst: zero(dst),
            src: zero(src),
            ether_type: ether_type.map(|_| 0),
        },
        Item::Ipv4 {
            version_ihl,
            tos,
            fragment_offset,
            ttl,
            src,
            dst,
            protocol,
        } => Item::Ipv4 {
            version_ihl: version_ihl.map(|_| 0),
            tos: zero(tos),
            fragment_offset: zero(fragment_offset),
            ttl: zero(ttl),
            src: zero(src),
            dst: zero(dst),
            protocol: protocol.map(|_| 0),
        },
        Item::Tcp { src, dst, flags } => Item::Tcp {
            src: zero(src),
            dst: zero(dst),
            flags: zero(flags),
        },
        Item::Udp { src, dst } => Item::Udp {
            src: zero(src),
            dst: zero(dst),
        },
        Item::Gre {
            protocol,
            checksum_present,
            key_present,
            sequence_present,
        } => Item::Gre {
            protocol: protocol.map(|_| 0),
            checksum_present: checksum_present.map(|_| false),
            key_present: key_present.map(|_| false),
            sequence_present: sequence_present.map(|_| false),
        },
        Item::GreKey(_) => Item::GreKey(0),
        // The checks are the template's; the level a rule's value.
        Item::Integrity {
            l3_ok,
            ipv4_csum_ok,
            ..
        } => Item::Integrity {
            level: 0,
            l3_ok: *l3_ok,
            ipv4_csum_ok: *ipv4_csum_ok,
        },
        other => panic!("no template item for {other:?}"),
    }
}

/// The probe of a port with the template API (issue 14, item 1): as DPDK
/// 22.11's mlx5 in HW steering mode has no `rte_flow_validate`, each
/// shape is asked by making its templates and a one-rule table, then
/// destroying them. The same shapes are asked as by `rte_flow_validate`
/// on a port without the template API, and the ports reach the same
/// levels with the same verdicts.
#[test]
fn the_probe_by_templates_asks_what_validate_asks_and_reaches_the_same_levels() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    let mut runs = Vec::new();
    for asynchronous in [false, true] {
        fake::reset();
        let mut gw = Gateway::with_api(OuterDf::Copy, asynchronous);
        let events = fake::take();
        assert!(refused(&events).is_empty(), "{events:?}");
        // Each shape as its port was asked it: attributes, and the items
        // as a template shows them (masks, values zero).
        let asked: Vec<(u16, Attr, Vec<Item>)> = if asynchronous {
            assert!(synchronous(&events).is_empty(), "{events:?}");
            let probes: Vec<_> = tables_made(&events)
                .into_iter()
                .filter(|(_, _, _, nb_flows, _)| *nb_flows == 1)
                .collect();
            for (_, table, ..) in &probes {
                assert!(
                    events.contains(&Event::TableDestroyed(*table)),
                    "probe table {table} destroyed: {events:?}"
                );
            }
            probes
                .into_iter()
                .map(|(port, _, attr, _, pattern)| (port, attr, pattern))
                .collect()
        } else {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Validated(port, rule) => Some((
                        *port,
                        rule.attr,
                        rule.pattern.iter().map(template_item).collect(),
                    )),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(asked.len(), 7 + 9, "{events:?}");
        let caps = gw.plane.caps_json();
        let levels: Vec<serde_json::Value> = caps["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| p["level"].clone())
            .collect();
        assert_eq!(levels, ["full", "full"], "{caps}");
        runs.push((asked, levels, caps["shapes"].clone()));
        gw.plane.shutdown();
        assert_eq!(fake::live(), 0);
        assert_eq!(fake::templates_live(), (0, 0, 0));
    }
    assert_eq!(runs[0], runs[1], "the same shapes, verdicts and levels");
}

/// The template API end to end (issue 14, item 1 and "what it must
/// show" 2), with both ports answering as DPDK 22.11's mlx5 in HW
/// steering mode, which takes no synchronous flow call: the daemon
/// configures two flow queues per port (per-flow rules, static rules)
/// and makes its per-flow template tables; at the first tick the root
/// rules and t1's deny rules — exactly the sync scenario's — go through
/// the static queue, each into a table of its shape and priority; the
/// reference flows' rules — exactly the sync scenario's — go by
/// `rte_flow_async_create` into the table of their shape; a flow is
/// offloaded only once its completions are pulled; a creation the NIC
/// refuses afterwards leaves the flow in software, counted; counters are
/// read from the async handles; rules go through `rte_flow_async_destroy`
/// when flows end and, for deny rules, when their tenant changes; all
/// rules, tables and templates go at shutdown; and nothing reaches
/// `rte_flow_validate`, `_create` or `_destroy`.
#[test]
fn on_async_ports_every_rule_goes_through_template_tables() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::with_api(OuterDf::Copy, true);
    let setup = fake::take();
    assert!(refused(&setup).is_empty(), "{setup:?}");
    assert!(synchronous(&setup).is_empty(), "{setup:?}");
    for port in [PUB, UND] {
        assert!(
            setup.contains(&Event::Configured {
                port,
                queues: 2,
                queue_size: 1024,
                counters: 1024,
            }),
            "port {port}: two flow queues of queue_depth, a counter per flow: {setup:?}"
        );
    }
    // Both ports full: four per-flow shapes each, in group 1, each table
    // sized for max_flows (the probe's one-rule tables are gone).
    let tables: Vec<_> = tables_made(&setup)
        .into_iter()
        .filter(|(_, _, _, nb_flows, _)| *nb_flows != 1)
        .collect();
    assert_eq!(tables.len(), 8, "{tables:?}");
    assert!(tables
        .iter()
        .all(|(_, _, attr, n, _)| *attr == TRANSFER && *n == 1024));
    let caps = gw.plane.caps_json();
    assert_eq!(caps["ports"][0]["api"], "async", "{caps}");
    assert_eq!(caps["ports"][1]["api"], "async", "{caps}");

    // The static rules, at the first tick: the sync scenario's root
    // rules and t1's deny rules, through the static queue, each in a
    // table whose attributes (group, priority) and template are its own.
    add_denies(&mut gw);
    fake::take();
    gw.tick(0);
    let events = fake::take();
    assert!(refused(&events).is_empty(), "{events:?}");
    assert!(synchronous(&events).is_empty(), "{events:?}");
    let statics = async_created_on(&events, 1);
    let made: Vec<(u16, Rule)> = statics.iter().map(|(p, _, r, _)| (*p, r.clone())).collect();
    assert_eq!(
        made,
        [
            (PUB, public_punt()),
            (UND, gretap_punt()),
            (UND, gretap_check()),
            (PUB, public_root()),
            (UND, tunnel_root(&T1)),
            (UND, tunnel_root(&T2)),
            (PUB, t1_deny_pass()),
            (PUB, t1_deny_drop()),
        ],
        "{events:?}"
    );
    let static_tables = tables_made(&events);
    for (i, (port, table, rule, _)) in statics.iter().enumerate() {
        let (t_port, _, attr, nb_flows, pattern) = static_tables
            .iter()
            .find(|t| t.1 == *table)
            .expect("a table made at this tick");
        // The table's priority is the rule's: the punt rules (0), then
        // deny rules (1, 2) before the public root rule (65) in group 0,
        // as with rte_flow_create.
        assert_eq!((t_port, attr), (port, &rule.attr), "static rule {i}");
        let shape: Vec<Item> = rule.pattern.iter().map(template_item).collect();
        assert_eq!(pattern, &shape, "static rule {i}'s table");
        assert_eq!(*nb_flows, 4096, "root and deny rules at most");
    }
    assert_eq!(statics[4].1, statics[5].1, "two tunnels, one shape");
    assert_eq!(static_tables.len(), 7, "{static_tables:?}");
    let deny_handles = vec![statics[6].3, statics[7].3];

    // The handshakes; completions held: the rules are queued, the flows
    // pending, not offloaded.
    fake::hold_completions(true);
    let (t1_syn, _) = gw.connect(&T1, 40000);
    let (t2_syn, _) = gw.connect(&T2, 40001);
    gw.tick(1);
    let events = fake::take();
    assert!(refused(&events).is_empty(), "{events:?}");
    assert!(synchronous(&events).is_empty(), "{events:?}");
    assert!(async_created_on(&events, 1).is_empty(), "{events:?}");
    let rules = async_created(&events);
    let expected = [
        (PUB, public_rule(&T1, 40000, tunnel_header_of(&t1_syn))),
        (UND, underlay_rule(&T1, 40000)),
        (PUB, public_rule(&T2, 40001, tunnel_header_of(&t2_syn))),
        (UND, underlay_rule(&T2, 40001)),
    ];
    assert_eq!(rules.len(), expected.len(), "{events:?}");
    for (i, ((port, table, rule, _), (want_port, want))) in rules.iter().zip(&expected).enumerate()
    {
        assert_eq!((port, rule), (want_port, want), "rule {i}");
        // Into the table of its shape: on its port, whose template
        // matches what the rule matches.
        let (t_port, _, _, _, pattern) = tables
            .iter()
            .find(|t| t.1 == *table)
            .expect("a table made at start");
        assert_eq!(t_port, port, "rule {i}");
        let shape: Vec<Item> = want.pattern.iter().map(template_item).collect();
        assert_eq!(pattern, &shape, "rule {i}'s table");
    }
    assert_eq!(
        rules[0].1, rules[2].1,
        "two TCP flows into gretap: one table"
    );
    assert_eq!(
        rules[1].1, rules[3].1,
        "two TCP flows out of gretap: one table"
    );
    let pending = |gw: &Gateway| gw.plane.stats_json(&[])["flows"]["pending"].clone();
    let offloaded = |gw: &Gateway| gw.plane.stats_json(&[])["flows"]["offloaded"].clone();
    gw.tick(2);
    assert_eq!((pending(&gw), offloaded(&gw)), (2.into(), 0.into()));
    // The NIC finishes: at the next tick the flows are offloaded.
    fake::hold_completions(false);
    gw.tick(3);
    assert_eq!((pending(&gw), offloaded(&gw)), (0.into(), 2.into()));
    assert_eq!(fake::in_flight(PUB, 0) + fake::in_flight(UND, 0), 0);

    // A third flow whose first rule the NIC refuses after the fact: the
    // flow is refused (counted), its other rule destroyed, and its frames
    // still go the software path.
    fake::take();
    fake::fail_async_creations(1);
    gw.connect(&T1, 40002);
    gw.tick(4);
    gw.tick(5);
    let events = fake::take();
    let third = async_created(&events);
    assert_eq!(third.len(), 2, "{events:?}");
    assert_eq!(async_destroyed(&events), vec![third[1].3], "{events:?}");
    let stats = gw.plane.stats_json(&[]);
    assert_eq!(stats["refusals"]["failed"], 1, "{stats}");
    assert_eq!(stats["flows"]["offloaded"], 2, "{stats}");
    let (v, _) = gw.send(&from_client(&T1, 40002, false, 1001, Some(5001)), PUB, 0);
    assert_eq!(v, Verdict::Forward(UND), "the refused flow, in software");

    // Counters are read from the async handles: t1's hits refresh it,
    // and the deny drop's count is read from its handle too.
    let handle = |i: usize| rules[i].3;
    fake::set_hits(handle(0), 10, 1000);
    fake::set_hits(handle(1), 5, 400);
    gw.tick(1000);
    let queried = fake::take();
    for i in 0..4 {
        assert!(
            queried.contains(&Event::Queried(handle(i))),
            "rule {i}: {queried:?}"
        );
    }
    assert!(
        queried.contains(&Event::Queried(deny_handles[1])),
        "the drop: {queried:?}"
    );
    gw.pipeline.apply_feedback(&gw.counters, 7000 * SEC);
    let t1 = gw.counters.tenant(0).expect("t1's slot");
    assert_eq!(
        (t1.offloaded_packets.get(), t1.offloaded_bytes.get()),
        (15, 1400)
    );

    // A change to t2 pulls its flow back through async_destroy; the
    // static rules stay.
    gw.change(&Op::RuleAdd {
        tenant: "t2".into(),
        rule: serde_json::json!({"direction": "in", "action": "allow", "proto": "udp", "dport": 53}),
        position: None,
    });
    gw.tick(1001);
    let events = fake::take();
    assert_eq!(
        async_destroyed(&events),
        vec![handle(2), handle(3)],
        "{events:?}"
    );
    assert!(async_destroyed_on(&events, 1).is_empty(), "{events:?}");
    assert!(synchronous(&events).is_empty(), "{events:?}");
    // t1's flow expires in software past its refreshed deadline; its
    // rules go the same way.
    gw.sweep((7000 + 7441) * SEC);
    gw.tick(3000);
    let events = fake::take();
    assert_eq!(
        async_destroyed(&events),
        vec![handle(0), handle(1)],
        "{events:?}"
    );
    assert_eq!(fake::live(), 6 + 2, "the punt, check, root and deny rules");

    // A change to t1: its deny rules go through the static queue before
    // the new tables are published, and come back at the next tick.
    rule_add(
        &mut gw,
        "t1",
        serde_json::json!({"direction": "in", "action": "allow", "proto": "udp", "dport": 53}),
        0,
    );
    let events = fake::take();
    assert_eq!(async_destroyed_on(&events, 1), deny_handles, "{events:?}");
    let deny_tables = [statics[6].1, statics[7].1];
    for table in deny_tables {
        assert!(
            events.contains(&Event::TableDestroyed(table)),
            "an emptied static table goes: {events:?}"
        );
    }
    gw.tick(3001);
    let events = fake::take();
    let again: Vec<(u16, Rule)> = async_created_on(&events, 1)
        .into_iter()
        .map(|(p, _, r, _)| (p, r))
        .collect();
    assert_eq!(
        again,
        [(PUB, t1_deny_pass()), (PUB, t1_deny_drop())],
        "{events:?}"
    );

    // At shutdown: the static rules, then every table and template.
    gw.plane.shutdown();
    assert_eq!(fake::live(), 0);
    assert_eq!(fake::templates_live(), (0, 0, 0));
    let events = fake::take();
    assert!(refused(&events).is_empty(), "{events:?}");
    assert!(synchronous(&events).is_empty(), "{events:?}");
    assert_eq!(async_destroyed_on(&events, 1).len(), 6 + 2, "{events:?}");
}

/// A port with the template API whose per-flow tables the NIC refuses
/// goes to level none rather than run half made (its PMD may take no
/// synchronous rule: DPDK 22.11's mlx5 HWS): caps say so and why, and a
/// flow is neither queued nor handed to `rte_flow_create`, nor are root
/// rules made for it; it goes the software path.
#[test]
fn an_async_port_whose_tables_fail_goes_to_level_none() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    // The probe's one-rule tables fit; the max_flows ones do not.
    fake::refuse_tables_over(Some(1));
    let mut gw = Gateway::with_api(OuterDf::Copy, true);
    let caps = gw.plane.caps_json();
    for port in 0..2 {
        let p = &caps["ports"][port];
        assert_eq!(p["level"], "none", "{caps}");
        assert_eq!(p["api"], "sync", "{caps}");
        let why = p["api_reason"].as_str().unwrap_or_default();
        assert!(why.starts_with("template tables: "), "{caps}");
    }
    fake::take();
    gw.connect(&T1, 40000);
    gw.tick(0);
    gw.tick(1);
    let events = fake::take();
    assert!(async_created_on(&events, 0).is_empty(), "{events:?}");
    assert!(async_created_on(&events, 1).is_empty(), "{events:?}");
    assert!(synchronous(&events).is_empty(), "{events:?}");
    assert!(refused(&events).is_empty(), "{events:?}");
    let stats = gw.plane.stats_json(&[]);
    assert_eq!(stats["root_rules"], 0, "{stats}");
    assert_eq!(stats["flows"]["offloaded"], 0, "{stats}");
    let (v, _) = gw.send(&from_client(&T1, 40000, false, 1001, Some(5001)), PUB, 0);
    assert_eq!(v, Verdict::Forward(UND), "in software");
    gw.plane.shutdown();
    assert_eq!(fake::live(), 0);
    assert_eq!(fake::templates_live(), (0, 0, 0));
}

/// A static rule is waited for at most `statics::SETTLE`: a NIC that
/// does not answer leaves the punt rules refused (counted), so that
/// their ports get no root rule (nothing would keep a packet whose TTL
/// expires from a flow's rule), the control loop goes on, and the rules
/// that came late go at shutdown with their tables.
#[test]
fn a_static_rule_the_nic_does_not_answer_is_refused_in_bounded_time() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::with_api(OuterDf::Copy, true);
    fake::take();
    fake::hold_completions(true);
    let started = std::time::Instant::now();
    gw.tick(0);
    let took = started.elapsed();
    // The two punt rules waited for; the root rules behind them not
    // asked for.
    let bound = tgw::offload::statics::SETTLE * 2;
    assert!(took >= bound && took < bound * 4, "{took:?}");
    let stats = gw.plane.stats_json(&[]);
    assert_eq!(
        (&stats["root_rules_installed"], &stats["root_rules_refused"]),
        (&0.into(), &2.into()),
        "{stats}"
    );
    let events = fake::take();
    let asked: Vec<(u16, Rule)> = async_created_on(&events, 1)
        .into_iter()
        .map(|(p, _, r, _)| (p, r))
        .collect();
    assert_eq!(
        asked,
        [(PUB, public_punt()), (UND, gretap_punt())],
        "{events:?}"
    );
    assert!(synchronous(&events).is_empty(), "{events:?}");
    fake::hold_completions(false);
    gw.plane.shutdown();
    assert_eq!(fake::live(), 0);
    assert_eq!(fake::templates_live(), (0, 0, 0));
}

/// The flow queue's bound, end to end: with `[offload] queue_depth = 16`
/// and completions held, sixteen flows (a rule each per port) fill each
/// port's queue; the seventeenth flow's creation is refused before DPDK,
/// counted (`device_full`, `async_queue_full`), and the flow stays in
/// software.
#[test]
fn a_full_flow_queue_leaves_the_flow_in_software_counted() {
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut config = config(OuterDf::Copy);
    config.offload.queue_depth = 16;
    let mut gw = Gateway::with_config(config, true);
    assert!(fake::take().contains(&Event::Configured {
        port: PUB,
        queues: 2,
        queue_size: 16,
        counters: 1024,
    }));
    // The static rules first (the root rules, through the static queue),
    // before the NIC stops answering.
    gw.tick(0);
    fake::hold_completions(true);
    for sport in 41000..41008 {
        gw.connect(&T1, sport);
    }
    gw.tick(0);
    assert_eq!(fake::in_flight(PUB, 0), 8);
    assert_eq!(fake::in_flight(UND, 0), 8);
    // Another eight (a worker's request queue of 16 takes eight
    // candidates at a time): each port's queue holds its sixteen.
    for sport in 41008..41016 {
        gw.connect(&T1, sport);
    }
    gw.tick(1);
    assert_eq!(fake::in_flight(PUB, 0), 16);
    // A ninth flow finds the queue full.
    gw.connect(&T1, 41016);
    gw.tick(2);
    assert_eq!(fake::in_flight(PUB, 0), 16, "never more than its size");
    let stats = gw.plane.stats_json(&[]);
    assert_eq!(stats["async_queue_full"], 1, "{stats}");
    assert_eq!(stats["refusals"]["device_full"], 1, "{stats}");
    assert_eq!(stats["flows"]["pending"], 16, "{stats}");
    let events = fake::take();
    assert!(
        refused(&events).is_empty(),
        "the NIC saw no overflow: {events:?}"
    );
    // The refused flow in software.
    let (v, _) = gw.send(&from_client(&T1, 41016, false, 1001, Some(5001)), PUB, 0);
    assert_eq!(v, Verdict::Forward(UND));
    fake::hold_completions(false);
    fake::take();
    gw.tick(3);
    let stats = gw.plane.stats_json(&[]);
    assert_eq!(stats["flows"]["offloaded"], 16, "{stats}");
    // Sixteen flows settled with one push and pull of each queue when
    // the tick began, and one when it ended.
    let pushes = fake::take()
        .iter()
        .filter(|e| **e == Event::Pushed(PUB, 0))
        .count();
    assert_eq!(pushes, 2);
    gw.plane.shutdown();
    assert_eq!(fake::live(), 0);
    assert_eq!(fake::templates_live(), (0, 0, 0));
}

// ------------------------------------------------------------ deny rules

/// A denied network's host (9.9.9.0/24), and the one host of it t1 lets
/// in to port 22.
const DENIED: [u8; 4] = [9, 9, 9, 8];
const LET_IN: [u8; 4] = [9, 9, 9, 9];

/// A TCP segment from `src` to `t`'s elastic IP, with the flags byte
/// `flags` (RFC 9293: SYN 0x02, ACK 0x10), by etherparse.
fn segment_to(t: &Tenant, src: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(src, t.eip, 64)
        .tcp(sport, dport, 1000, 64240);
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    // Whole packets with DF, as the root rule passes (etherparse sets DF).
    assert_eq!(out[14 + 6] & 0x40, 0x40);
    out
}

/// The deny rules' IPv4 item: the public root rule's checks, the source
/// prefix, the elastic IP, the protocol.
fn deny_ipv4(src: [u8; 4], prefix: u32, eip: [u8; 4], protocol: u8) -> Item {
    let mut ip = whole_ipv4(None, true, false);
    if let Item::Ipv4 {
        ttl: None,
        src: s,
        dst,
        protocol: p,
        ..
    } = &mut ip
    {
        let mask = u32::MAX << (32 - prefix);
        *s = Some(Masked {
            spec: be(src) & mask,
            mask,
        });
        *dst = Some(Masked::<u32>::exact(be(eip)));
        *p = Some(protocol);
    }
    ip
}

fn rule_add(gw: &mut Gateway, tenant: &str, rule: serde_json::Value, position: usize) {
    gw.change(&Op::RuleAdd {
        tenant: tenant.into(),
        rule,
        position: Some(position),
    });
}

/// The deny rules of the reference scenario's tenants: t1 lets 9.9.9.9
/// in to TCP 22, denies TCP 20-23 from 9.9.9.0/24 and may open nothing
/// toward 9.9.9.0/24 (exact: a pass and a drop on the NIC); t2 denies UDP
/// 20-23 from there but may open flows there (not exact: none).
fn add_denies(gw: &mut Gateway) {
    rule_add(
        gw,
        "t1",
        serde_json::json!({"direction": "in", "action": "allow", "proto": "tcp", "src": "9.9.9.9/32", "dport": 22}),
        0,
    );
    rule_add(
        gw,
        "t1",
        serde_json::json!({"direction": "in", "action": "deny", "proto": "tcp", "src": "9.9.9.0/24", "dport": "20-23"}),
        1,
    );
    rule_add(
        gw,
        "t1",
        serde_json::json!({"direction": "out", "action": "deny", "dst": "9.9.9.0/24"}),
        2,
    );
    rule_add(
        gw,
        "t2",
        serde_json::json!({"direction": "in", "action": "deny", "proto": "udp", "src": "9.9.9.0/24", "dport": "20-23"}),
        0,
    );
}

/// t1's deny rules after [`add_denies`]: the pass of its allow from
/// 9.9.9.9 to port 22, in front of the drop of TCP 20-23 from
/// 9.9.9.0/24.
fn t1_deny_pass() -> Rule {
    Rule {
        attr: Attr {
            priority: 1,
            ..ROOT
        },
        pattern: vec![
            eth_ipv4(),
            deny_ipv4(LET_IN, 32, T1.eip, 6),
            intact(1),
            Item::Tcp {
                src: None,
                dst: Some(Masked::<u16>::exact(22)),
                flags: None,
            },
        ],
        actions: vec![Action::Jump(1)],
    }
}

fn t1_deny_drop() -> Rule {
    Rule {
        attr: Attr {
            priority: 2,
            ..ROOT
        },
        pattern: vec![
            eth_ipv4(),
            deny_ipv4(DENIED, 24, T1.eip, 6),
            intact(1),
            Item::Tcp {
                src: None,
                // 20-23: one value under a mask.
                dst: Some(Masked {
                    spec: 20,
                    mask: 0xfffc,
                }),
                // SYN without ACK, RST or FIN: what opens a connection.
                flags: Some(Masked {
                    spec: 0x02,
                    mask: 0x17,
                }),
            },
        ],
        actions: vec![Action::Count, Action::Drop],
    }
}

/// Firewall denies on the NIC (docs/offload.md, "Deny rules on the
/// NIC"). t1 denies TCP to ports 20-23 from 9.9.9.0/24 but lets in
/// 9.9.9.9 to port 22, and may open nothing toward 9.9.9.0/24: exact, so
/// a pass for the earlier allow and a counted drop (the ports as one
/// mask, SYN only), in the root group in front of the root rule. t2 denies
/// UDP from there without forbidding its own flows there: a reply to one
/// of them is in the region, so no rule, and software forwards the reply.
/// The drop's NIC counts reach t1's rule; a rule change takes the rules
/// down before the new tables are published and the next tick makes them
/// again; shutdown removes them.
#[test]
fn an_exact_deny_is_a_counted_drop_on_the_nic_and_a_reply_is_never_dropped() {
    use matcher::applied;
    let _nic = fake::exclusive();
    flowcheck::eal();
    fake::reset();
    let mut gw = Gateway::new();
    let probed = fake::take();
    let deny_shape = probed.iter().any(
        |e| matches!(e, Event::Validated(PUB, r) if r.actions == [Action::Count, Action::Drop]),
    );
    assert!(deny_shape, "the probe validates deny_drop: {probed:?}");
    add_denies(&mut gw);
    gw.tick(0);
    let events = fake::take();
    assert!(refused(&events).is_empty(), "{events:?}");
    let (pass, drop) = (t1_deny_pass(), t1_deny_drop());
    let deny_rules = |events: &[Event]| -> Vec<(u16, Rule, usize)> {
        created(events)
            .into_iter()
            .filter(|(p, r, _)| {
                *p == PUB
                    && r.attr.group == 0
                    && r.attr.priority > ROOT.priority
                    && r.attr.priority < PUBLIC_ROOT.priority
            })
            .collect()
    };
    let made = deny_rules(&events);
    let shapes: Vec<(u16, Rule)> = made.iter().map(|(p, r, _)| (*p, r.clone())).collect();
    assert_eq!(
        shapes,
        [(PUB, pass.clone()), (PUB, drop.clone())],
        "t1's pass and drop, none of t2's: {events:?}"
    );
    let drop_handle = made[1].2;

    // The public port as a NIC holding what was created: the root rule,
    // the deny rules; no flow yet.
    let on_pub: Vec<Rule> = created(&events)
        .into_iter()
        .filter(|(p, _, _)| *p == PUB)
        .map(|(_, r, _)| r)
        .collect();
    let nic = |frame: &[u8]| applied(&on_pub, frame).cloned();
    assert_eq!(
        nic(&segment_to(&T1, DENIED, 40000, 22, 0x02)),
        Some(drop.clone())
    );
    assert_eq!(
        nic(&segment_to(&T1, DENIED, 40000, 21, 0x02)),
        Some(drop.clone())
    );
    assert_eq!(
        nic(&segment_to(&T1, LET_IN, 40000, 22, 0x02)),
        None,
        "passed on, to software"
    );
    assert_eq!(
        nic(&segment_to(&T1, LET_IN, 40000, 23, 0x02)),
        Some(drop.clone())
    );
    assert_eq!(
        nic(&segment_to(&T1, DENIED, 40000, 24, 0x02)),
        None,
        "outside the ports"
    );
    assert_eq!(
        nic(&segment_to(&T1, DENIED, 22, 40000, 0x12)),
        None,
        "a SYN-ACK is not an opening"
    );
    assert_eq!(
        nic(&segment_to(&T1, DENIED, 40000, 22, 0x10)),
        None,
        "nor an ACK"
    );
    assert_eq!(
        nic(&segment_to(&T2, DENIED, 40000, 22, 0x02)),
        None,
        "not t1's address"
    );
    // Software agrees: what the NIC drops, it drops on the same rule.
    let (v, _) = gw.send(&segment_to(&T1, DENIED, 40000, 22, 0x02), PUB, 0);
    assert_eq!(v, Verdict::Drop(dataplane::DropReason::Firewall));
    // A denied SYN with TTL 1: the punt rule, in front of the drop,
    // takes it to software, which decides the firewall before the TTL
    // and drops it on the same rule (no Time Exceeded); the NIC decides
    // nothing with TTL 1, so the two cannot differ.
    let ttl_1 = with_ttl(&segment_to(&T1, DENIED, 40000, 22, 0x02), 14, 1);
    assert_eq!(nic(&ttl_1), None, "punted");
    let (v, _) = gw.send(&ttl_1, PUB, 0);
    assert_eq!(v, Verdict::Drop(dataplane::DropReason::Firewall));

    // t2's deny is not exact: its VM's UDP flow from port 21 to 9.9.9.9
    // is allowed, and its reply, in the denied region, is forwarded.
    let mut inner = Vec::new();
    PacketBuilder::ethernet2(T2.vm_mac, T2.mac)
        .ipv4(VM, LET_IN, 64)
        .udp(21, 53)
        .write(&mut inner, b"query")
        .unwrap();
    let (v, _) = gw.send(&tunnelled(&T2, &inner, 0x2000), UND, 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(LET_IN, T2.eip, 64)
        .udp(53, 21)
        .write(&mut reply, b"answer")
        .unwrap();
    assert_eq!(nic(&reply), None, "no NIC rule takes the reply");
    let (v, _) = gw.send(&reply, PUB, 0);
    assert_eq!(v, Verdict::Forward(UND), "software forwards it");
    let shown = gw.plane.show_json(10, true, &|t| format!("t{t}"));
    let deny = shown["deny"].as_array().unwrap();
    let kinds: Vec<(&str, &serde_json::Value)> = deny
        .iter()
        .map(|r| (r["tenant"].as_str().unwrap(), &r["rule"]))
        .collect();
    assert_eq!(
        kinds,
        [("t1", &serde_json::Value::Null), ("t1", &1.into())],
        "{shown}"
    );
    assert!(
        shown["deny_not_pushed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["tenant"] == "t2"
                && n["rule"] == 0
                && n["proto"] == "udp"
                && n["reason"] == "replies_possible"),
        "{shown}"
    );
    let text = shown["testpmd"].as_str().unwrap();
    assert!(
        text.contains("# deny rules") && text.contains("actions count / drop / end"),
        "{text}"
    );

    // The NIC dropped 5 SYNs: at the next query they are t1's deny
    // rule's, with the two software dropped (TTL 64 and TTL 1).
    fake::set_hits(drop_handle, 5, 300);
    gw.tick(1000);
    let t1_deny_flows = |gw: &Gateway| {
        let tables = gw.publisher.current();
        let report = gw.plane.report(std::slice::from_ref(&gw.counters));
        let rows = tgw::report::rule_report(
            &tables,
            std::slice::from_ref(&gw.counters),
            &report.deny_drops,
        );
        rows.iter()
            .find(|r| r.tenant == 0 && r.position == Some(1))
            .map(|r| r.flows)
    };
    assert_eq!(t1_deny_flows(&gw), Some(5 + 2));

    // A change to t1: its rules go before the new tables are published
    // (no tick in between), their last counts read; the next tick makes
    // them again.
    fake::take();
    fake::set_hits(drop_handle, 7, 420);
    rule_add(
        &mut gw,
        "t1",
        serde_json::json!({"direction": "in", "action": "allow", "proto": "udp", "dport": 53}),
        0,
    );
    let events = fake::take();
    assert_eq!(destroyed(&events), vec![made[0].2, made[1].2], "{events:?}");
    assert!(created(&events).is_empty(), "{events:?}");
    gw.tick(1001);
    let events = fake::take();
    let again: Vec<(u16, Rule)> = deny_rules(&events)
        .into_iter()
        .map(|(p, r, _)| (p, r))
        .collect();
    assert_eq!(again, [(PUB, pass), (PUB, drop)], "{events:?}");
    let tables = gw.publisher.current();
    let report = gw.plane.report(std::slice::from_ref(&gw.counters));
    let rows = tgw::report::rule_report(
        &tables,
        std::slice::from_ref(&gw.counters),
        &report.deny_drops,
    );
    let deny = rows.iter().find(|r| r.tenant == 0 && r.position == Some(2));
    assert_eq!(
        deny.map(|r| r.flows),
        Some(7 + 2),
        "the count read as the rule went"
    );

    // At shutdown every rule goes.
    gw.plane.shutdown();
    assert_eq!(fake::live(), 0);
}
