//! Flow offload, the worker's part and the manager's (issue 14): real
//! flows made by real frames offer themselves and tell their end; the
//! spec built from a candidate is what the software path did to the
//! flow's frames; the manager installs, refreshes, pulls back and keeps
//! its limits on a fake clock with a fake device.

use super::*;
use dataplane::flow::{FlowId, Zone};
use dataplane::offload::{
    macs_of, Candidate, Device, Feedback, FlowSpec, Installed, Limits, Link, NotOffloadable,
    Offloads, Refusal, Request, Settled, State, TunnelMatch,
};
use dataplane::pipeline::admin::{Budget, Filter};
use std::collections::HashMap;
use std::sync::Arc;

fn be(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

/// The reference gateway (`spec`), its worker 0 offloading through a link
/// whose queues hold `depth` each.
fn offloading(spec: &Spec, depth: usize) -> (Gw, Arc<Link>) {
    let mut gw = Gw::with_spec(spec);
    let link = Arc::new(Link::new(0, depth, depth));
    gw.pipeline = Pipeline::new(TokenBucket::new(1000, 50, SEC), 0)
        .with_offload(link.clone())
        .with_snat(&gw.tables.pools);
    (gw, link)
}

fn drain(link: &Link) -> Vec<Request> {
    std::iter::from_fn(|| link.next_request()).collect()
}

fn candidate(r: &Request) -> Candidate {
    match r {
        Request::Candidate(c) => *c,
        other => panic!("not a candidate: {other:?}"),
    }
}

/// A TCP connection from the client to EIP1 (t1's VM), port `sport`,
/// through its handshake and one ACK each way on the fast path. Returns
/// the last frames out: toward the tunnel, toward the public side.
fn connect(gw: &mut Gw, sport: u16, now: u64) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(
        gw.client_sends(&tcp(CLIENT, sport, EIP1, 22, "S"), now).0,
        Verdict::Forward(UND)
    );
    assert_eq!(
        gw.t1_sends(&tcp(VM, 22, CLIENT, sport, "SA"), now).0,
        Verdict::Forward(PUB)
    );
    assert_eq!(
        gw.client_sends(&tcp(CLIENT, sport, EIP1, 22, "A"), now).0,
        Verdict::Forward(UND)
    );
    let (v, inward) = gw.client_sends(&tcp(CLIENT, sport, EIP1, 22, "A"), now);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, outward) = gw.t1_sends(&tcp(VM, 22, CLIENT, sport, "A"), now);
    assert_eq!(v, Verdict::Forward(PUB));
    (inward, outward)
}

#[test]
fn a_tcp_flow_is_offered_once_its_handshake_completes_and_its_close_is_told() {
    let (mut gw, link) = offloading(&spec(), 16);
    gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "S"), 0);
    gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "SA"), 0);
    assert!(drain(&link).is_empty(), "not established yet");
    gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "A"), 0);
    let got = drain(&link);
    assert_eq!(got.len(), 1, "{got:?}");
    let c = candidate(&got[0]);
    assert_eq!(c.worker, 0);
    assert_eq!(c.conn.tcp, dataplane::conntrack::TcpState::Established);
    assert_eq!(c.keys[0].zone(), Zone::PUBLIC);
    assert_eq!((c.keys[0].src(), c.keys[0].src_port()), (be(CLIENT), 40000));
    assert_eq!((c.keys[1].src(), c.keys[1].dst()), (be(VM), be(CLIENT)));

    // Once only, on either path.
    for _ in 0..3 {
        gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "A"), 1);
        gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "A"), 1);
    }
    assert!(drain(&link).is_empty());

    // A FIN goes through software and ends the offload.
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "FA"), 2);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(
        drain(&link),
        vec![Request::Ended {
            worker: 0,
            id: c.id
        }]
    );
    // And only once: the flow stays in software.
    gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "FA"), 3);
    assert!(drain(&link).is_empty());
    let oc = &gw.counters.offload;
    assert_eq!((oc.requests.get(), oc.ended.get()), (1, 1));
}

#[test]
fn a_udp_flow_is_offered_at_its_first_answer() {
    let (mut gw, link) = offloading(&spec(), 16);
    for now in 0..3 {
        let (v, _) = gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), now);
        assert_eq!(v, Verdict::Forward(PUB));
    }
    assert!(drain(&link).is_empty(), "the opener's packets alone");
    // The answer takes the public fast path (the flow is answered from
    // the start: opened from inside).
    let (v, _) = gw.client_sends(&udp_from(CLIENT, 53, EIP1, 5000), 3);
    assert_eq!(v, Verdict::Forward(UND));
    let got = drain(&link);
    assert_eq!(got.len(), 1);
    assert_eq!(candidate(&got[0]).conn.protocol, 17);
}

#[test]
fn without_a_link_nothing_is_offered_and_flows_are_untouched() {
    let mut gw = Gw::new();
    connect(&mut gw, 40000, 0);
    assert_eq!(gw.counters.offload.requests.get(), 0);
    let c = gw.counters.offload.ended.get();
    assert_eq!(c, 0);
}

#[test]
fn every_removal_of_a_requested_flow_is_told() {
    let (mut gw, link) = offloading(&spec(), 64);
    // Expiry found by the sweep.
    gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
    gw.client_sends(&udp_from(CLIENT, 53, EIP1, 5000), 0);
    let swept = candidate(&drain(&link)[0]).id;
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 121 * SEC);
    }
    assert_eq!(
        drain(&link),
        vec![Request::Ended {
            worker: 0,
            id: swept
        }]
    );

    // Expiry found by a packet's lookup.
    gw.t1_sends(&udp_from(VM, 5001, CLIENT, 53), 200 * SEC);
    gw.client_sends(&udp_from(CLIENT, 53, EIP1, 5001), 200 * SEC);
    let looked_up = candidate(&drain(&link)[0]).id;
    gw.t1_sends(&udp_from(VM, 5001, CLIENT, 53), 400 * SEC);
    let got = drain(&link);
    assert_eq!(
        got[0],
        Request::Ended {
            worker: 0,
            id: looked_up
        },
        "{got:?}"
    );

    // A flush (tgwctl flow flush).
    let (mut gw, link) = offloading(&spec(), 64);
    connect(&mut gw, 40000, 0);
    let flushed = candidate(&drain(&link)[0]).id;
    let (removed, _) =
        gw.pipeline
            .flush_matching(&gw.tables, &gw.counters, &Filter::default(), 0, Budget::ALL);
    assert_eq!(removed, 1);
    assert_eq!(
        drain(&link),
        vec![Request::Ended {
            worker: 0,
            id: flushed
        }]
    );

    // A RST.
    connect(&mut gw, 40001, 0);
    let reset = candidate(&drain(&link)[0]).id;
    gw.client_sends(&tcp(CLIENT, 40001, EIP1, 22, "R"), 1);
    assert_eq!(
        drain(&link),
        vec![Request::Ended {
            worker: 0,
            id: reset
        }]
    );
}

#[test]
fn a_flow_decided_again_under_a_new_epoch_ends_its_offload() {
    let (mut gw, link) = offloading(&spec(), 64);
    connect(&mut gw, 40000, 0);
    let id = candidate(&drain(&link)[0]).id;
    gw.tables = at_epoch(&spec(), 2);
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "A"), 1);
    assert_eq!(v, Verdict::Forward(UND), "still admitted");
    assert_eq!(drain(&link), vec![Request::Ended { worker: 0, id }]);
}

/// The reference tables with t1 (slot 0) at `epoch`, t2 at 1.
fn at_epoch(spec: &Spec, epoch: u32) -> Tables {
    let slots = [
        (TenantId(0), &spec.tenants[0], epoch),
        (TenantId(1), &spec.tenants[1], 1),
    ];
    let mut n = 0;
    let mut rules = |_: TenantId, _: usize, _: &dataplane::firewall::RuleSpec| {
        n += 1;
        dataplane::firewall::RuleId(n - 1)
    };
    Tables::build_slotted(spec, &slots, 2, &mut NeighbourWriter::new(64), &mut rules)
        .expect("tables")
}

#[test]
fn feedback_refreshes_a_flow_and_a_release_keeps_it_in_software() {
    let (mut gw, link) = offloading(&spec(), 16);
    gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
    gw.client_sends(&udp_from(CLIENT, 53, EIP1, 5000), 0);
    let c = candidate(&drain(&link)[0]);
    // The NIC saw packets at 100 s: the flow lives 120 s from there.
    assert!(link.send(Feedback::Refresh {
        id: c.id,
        key: c.keys[0],
        packets: 10,
        bytes: 1000,
    }));
    // About a flow that is not this one (its id reused): ignored.
    assert!(link.send(Feedback::Refresh {
        id: c.id,
        key: c.keys[1],
        packets: 1,
        bytes: 1,
    }));
    assert_eq!(gw.pipeline.apply_feedback(&gw.counters, 100 * SEC), 2);
    let tc = &gw.counters.tenants[0];
    assert_eq!(
        (tc.offloaded_packets.get(), tc.offloaded_bytes.get()),
        (10, 1000)
    );
    assert_eq!(gw.counters.offload.feedback_stale.get(), 1);
    // The manager hears that the other flow is none of this worker's.
    assert_eq!(
        drain(&link),
        vec![Request::Stale {
            worker: 0,
            id: c.id,
            key: c.keys[1]
        }]
    );
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 200 * SEC);
    }
    assert_eq!(gw.pipeline.flows(), 1, "refreshed at 100 s");

    // Released: software's again, and its end is nobody's business.
    assert!(link.send(Feedback::Released {
        id: c.id,
        key: c.keys[0],
    }));
    gw.pipeline.apply_feedback(&gw.counters, 200 * SEC);
    assert_eq!(gw.counters.offload.released.get(), 1);
    for _ in 0..DEFAULT_FLOWS / 64 + 1 {
        gw.pipeline.sweep(&gw.tables, &gw.counters, 221 * SEC);
    }
    assert_eq!(gw.pipeline.flows(), 0);
    assert!(drain(&link).is_empty(), "no end notice after a release");
}

#[test]
fn a_full_queue_drops_the_offer_and_the_flow_stays_in_software() {
    // Two requests: one for candidates, one kept for end notices.
    let (mut gw, link) = offloading(&spec(), 2);
    connect(&mut gw, 40000, 0);
    connect(&mut gw, 40001, 0);
    let oc = &gw.counters.offload;
    assert_eq!((oc.requests.get(), oc.queue_full.get()), (2, 1));
    // The second flow forwards as before, and is not offered again.
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40001, EIP1, 22, "A"), 1);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(gw.counters.offload.requests.get(), 2);
    // The first one's end still finds room.
    gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "R"), 1);
    assert_eq!(gw.counters.offload.ended_lost.get(), 0);
    assert_eq!(drain(&link).len(), 2);
}

// ------------------------------------------------------------ the spec

/// The first `len` bytes of `frame`, a tunnel header, without what encap
/// fills per frame: the outer IPv4 DSCP/ECN, total length,
/// identification, flags byte, and the checksum that covers them.
fn without_per_frame_fields(frame: &[u8], len: usize) -> Vec<u8> {
    let mut h = frame[..len].to_vec();
    h[15] = 0;
    h[16..20].fill(0);
    h[20] = 0;
    h[24..26].fill(0);
    h
}

/// A spec's tunnel header: equal to what encap wrote but for the
/// per-frame fields, which it has zero, its checksum covering them so.
fn assert_same_tunnel_header(encap: &[u8], frame: &[u8]) {
    let len = encap.len();
    assert_eq!(
        without_per_frame_fields(encap, len),
        without_per_frame_fields(frame, len)
    );
    assert_eq!((encap[15], &encap[16..21]), (0, &[0u8; 5][..]));
    let (outer, _) = Ipv4Header::from_slice(&encap[14..34]).unwrap();
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
}

#[test]
fn the_spec_of_a_flow_to_an_elastic_ip_is_what_software_does_with_its_frames() {
    let (mut gw, link) = offloading(&spec(), 16);
    let (inward, outward) = connect(&mut gw, 40000, 0);
    let c = candidate(&drain(&link)[0]);
    let spec = FlowSpec::build(&c, &gw.tables, &mut macs_of(&gw.tables)).expect("offloadable");
    assert_eq!(
        (spec.worker, spec.id, spec.tenant, spec.epoch),
        (0, c.id, TenantId(0), 1)
    );

    // Forward: the client's packets, DNAT and into t1's gretap tunnel.
    let fwd = &spec.legs[0];
    assert_eq!((fwd.in_port, fwd.out_port, fwd.tunnel), (PUB, UND, None));
    assert_eq!(fwd.protocol, 6);
    assert_eq!((fwd.src, fwd.dst), ((be(CLIENT), 40000), (be(EIP1), 22)));
    assert_eq!((fwd.set_src, fwd.set_dst), (None, Some((be(VM), 22))));
    assert_eq!(fwd.decap_len, 0);
    let len = 14 + 20 + 8 + 14;
    assert_eq!(fwd.encap.len(), len);
    assert_same_tunnel_header(&fwd.encap, &inward);
    // What software did to the packet: the rewrite the leg names.
    let inner = assert_valid_ipv4(&inward[len..]);
    assert_eq!(inner.destination, VM);
    assert_eq!(u16::from_be_bytes([inward[len + 22], inward[len + 23]]), 22);

    // Reply: from host 1's tunnel, decap, SNAT, toward the router.
    let rep = &spec.legs[1];
    assert_eq!((rep.in_port, rep.out_port), (UND, PUB));
    assert_eq!(
        rep.tunnel,
        Some(TunnelMatch {
            host: be(HOST1),
            local: be(GW_UND),
            key: 1000,
            gretap: true
        })
    );
    assert_eq!((rep.src, rep.dst), ((be(VM), 22), (be(CLIENT), 40000)));
    assert_eq!((rep.set_src, rep.set_dst), (Some((be(EIP1), 22)), None));
    assert_eq!(rep.decap_len as usize, len);
    assert_eq!(&rep.encap[..], &outward[..14]);
    assert_eq!(&outward[..6], &CLIENT_MAC, "on the public subnet");
    assert_eq!(assert_valid_ipv4(&outward[14..]).source, EIP1);
}

#[test]
fn the_spec_of_a_shared_nat_flow_rewrites_ports_as_software_does() {
    let (mut gw, link) = offloading(&spec_with_pool(4, false), 16);
    let (v, out) = gw.t1_sends(&udp_from(VM8, 5000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let (addr, port) = public_source(&out);
    let (v, inward) = gw.client_sends(&udp_from(CLIENT, 53, addr, port), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let c = candidate(&drain(&link)[0]);
    let spec = FlowSpec::build(&c, &gw.tables, &mut macs_of(&gw.tables)).expect("offloadable");
    // Opened from inside: the forward leg is the tenant's.
    let fwd = &spec.legs[0];
    assert_eq!((fwd.src, fwd.dst), ((be(VM8), 5000), (be(CLIENT), 53)));
    assert_eq!(fwd.set_src, Some((be(addr), port)));
    assert_eq!(&fwd.encap[..], &out[..14]);
    let rep = &spec.legs[1];
    assert_eq!((rep.src, rep.dst), ((be(CLIENT), 53), (be(addr), port)));
    assert_eq!(rep.set_dst, Some((be(VM8), 5000)));
    let len = 14 + 20 + 8 + 14;
    assert_eq!(rep.encap.len(), len);
    assert_same_tunnel_header(&rep.encap, &inward);
    assert_eq!(&rep.encap[len - 14..len - 8], &VM8_MAC, "the inner MAC");
}

#[test]
fn the_spec_of_a_gre_ipv4_tenant_has_no_inner_ethernet() {
    let (mut gw, link) = offloading(&spec(), 16);
    // Beyond the public subnet: through the router.
    let far = [8, 8, 8, 8];
    let (v, outward) = gw.t2_sends(&udp_from(VM, 5000, far, 53), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let frame = eth(
        PUB_MAC,
        ROUTER_MAC,
        EtherType::IPV4,
        &udp_from(far, 53, EIP2, 5000),
    );
    let mut f = VecFrame::new(&frame, PUB);
    let v = gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 0);
    assert_eq!(v, Verdict::Forward(UND));
    let inward = f.data().to_vec();
    let c = candidate(&drain(&link)[0]);
    let spec = FlowSpec::build(&c, &gw.tables, &mut macs_of(&gw.tables)).expect("offloadable");
    assert_eq!(spec.tenant, TenantId(1));
    let fwd = &spec.legs[0];
    assert_eq!(
        fwd.tunnel,
        Some(TunnelMatch {
            host: be(HOST2),
            local: be(GW_UND),
            key: 2000,
            gretap: false
        })
    );
    assert_eq!(fwd.decap_len, 14 + 20 + 8);
    assert_eq!(&fwd.encap[..], &outward[..14]);
    assert_eq!(&fwd.encap[..6], &ROUTER_MAC);
    let rep = &spec.legs[1];
    assert_eq!(rep.encap.len(), 42);
    assert_same_tunnel_header(&rep.encap, &inward);
    assert_eq!(&rep.encap[..6], &HOST2_MAC);
}

#[test]
fn flows_the_nic_cannot_take_say_why() {
    let (mut gw, link) = offloading(&spec(), 16);
    connect(&mut gw, 40000, 0);
    let c = candidate(&drain(&link)[0]);
    let t = &gw.tables;
    let build = |c: &Candidate, t: &Tables| FlowSpec::build(c, t, &mut macs_of(t));
    assert!(build(&c, t).is_ok());
    assert_eq!(
        FlowSpec::build(&c, t, &mut |_| None),
        Err(NotOffloadable::NoNeighbour)
    );
    let mut hairpin = c;
    hairpin.conn.hairpin = true;
    assert_eq!(build(&hairpin, t), Err(NotOffloadable::Hairpin));
    assert_eq!(
        build(&c, &at_epoch(&spec(), 2)),
        Err(NotOffloadable::EpochMoved)
    );
    let mut gone = c;
    gone.conn.tenant = 7;
    assert_eq!(build(&gone, t), Err(NotOffloadable::TenantGone));

    // A ping's flow is offered (its answer came) but stays in software.
    let mut req = Vec::new();
    PacketBuilder::ipv4(VM, CLIENT, 64)
        .icmpv4_echo_request(77, 1)
        .write(&mut req, b"ping")
        .unwrap();
    gw.t1_sends(&req, 0);
    let mut rep = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_reply(77, 1)
        .write(&mut rep, b"ping")
        .unwrap();
    gw.client_sends(&rep, 0);
    let ping = candidate(&drain(&link)[0]);
    assert_eq!(build(&ping, &gw.tables), Err(NotOffloadable::Protocol));
}

/// The spec of a TCP connection from the client and of a UDP flow from
/// t1's VM, under `s`: each flow's (into the tunnel, out of it)
/// `too_big` flags.
fn too_big_flags(s: &Spec) -> [(bool, bool); 2] {
    let (mut gw, link) = offloading(s, 16);
    connect(&mut gw, 40000, 0);
    gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
    gw.client_sends(&udp_from(CLIENT, 53, EIP1, 5000), 0);
    let got = drain(&link);
    assert_eq!(got.len(), 2, "{got:?}");
    let flags = |r: &Request| {
        let c = candidate(r);
        let spec = FlowSpec::build(&c, &gw.tables, &mut macs_of(&gw.tables)).expect("offloadable");
        let into = spec.legs.iter().find(|l| l.tunnel.is_none()).unwrap();
        let out = spec.legs.iter().find(|l| l.tunnel.is_some()).unwrap();
        (into.too_big, out.too_big)
    };
    [flags(&got[0]), flags(&got[1])]
}

/// Too big for the tunnel (docs/offload.md): a leg may carry a packet
/// software would answer with Fragmentation Needed (or cut) when the
/// largest packet its port delivers exceeds where it leaves: the public
/// port's MTU against the tunnel's inner MTU (1500 − 42 for t1's gretap
/// over a 1500 underlay) on the way in, the tunnel's inner MTU against
/// the public port's on the way out. A NIC matches no length, so such a
/// leg gets no full rule (`Refusal::Mtu` when none is left). TCP into
/// the tunnel counts as fitting when software clamps the SYNs' MSS to it
/// (`mss_clamp`): only a sender ignoring its MSS sends more.
#[test]
fn a_leg_that_may_carry_a_packet_too_big_for_its_way_out_says_so() {
    let mtus = |public: u16, underlay: u16, clamp: bool| {
        let mut s = spec();
        s.ports[0].mtu = public;
        s.ports[1].mtu = underlay;
        s.mss_clamp = clamp;
        too_big_flags(&s)
    };
    // Both ports at 1500 (the reference): TCP fits by the clamp, UDP
    // into the tunnel does not; out of it, 1458 fits the public 1500.
    assert_eq!(mtus(1500, 1500, true), [(false, false), (true, false)]);
    assert_eq!(mtus(1500, 1500, false), [(true, false), (true, false)]);
    // A jumbo underlay: everything fits into the tunnel, but what the
    // tunnel delivers (8958) does not fit the public port, TCP included
    // (the remote end's MSS sizes those segments, and software clamps
    // only to the tunnel's MTU).
    assert_eq!(mtus(1500, 9000, true), [(false, true), (false, true)]);
    // The underlay exactly the public MTU plus the tunnel: all fits.
    assert_eq!(mtus(1500, 1542, false), [(false, false), (false, false)]);

    // What the flag stands for, on the reference: a 1500-byte datagram
    // with DF on the UDP flow, which a full rule would tunnel whole,
    // gets Fragmentation Needed from software.
    let (mut gw, _link) = offloading(&spec(), 16);
    gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
    let mut big = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .udp(53, 5000)
        .write(&mut big, &[0u8; 1472])
        .unwrap();
    assert_eq!((big.len(), big[6] & 0x40), (1500, 0x40), "DF");
    let (v, out) = gw.client_sends(&big, 1);
    assert_eq!(v, Verdict::Forward(PUB), "an ICMP error back");
    assert_eq!(
        (out[14 + 9], out[14 + 20]),
        (1, 3),
        "Destination Unreachable"
    );
}

// --------------------------------------------------------- the manager

/// A device that records: rules are numbers, their counts set by the
/// test, refusals and queueing on demand.
#[derive(Default)]
struct FakeNic {
    next: u32,
    /// Installed rules and their specs.
    rules: HashMap<u32, FlowSpec>,
    counts: HashMap<u32, (u64, u64)>,
    removed: Vec<u32>,
    refuse: Option<Refusal>,
    queue: bool,
    confirm: bool,
}

impl Device for FakeNic {
    type Rule = u32;

    fn install(&mut self, spec: &FlowSpec) -> Result<Installed<u32>, Refusal> {
        if let Some(why) = self.refuse {
            return Err(why);
        }
        self.next += 1;
        self.rules.insert(self.next, spec.clone());
        Ok(if self.queue {
            Installed::Queued(self.next)
        } else {
            Installed::Done(self.next)
        })
    }

    fn settle(&mut self, _rule: &mut u32) -> Settled {
        if self.confirm {
            Settled::Done
        } else {
            Settled::Waiting
        }
    }

    fn remove(&mut self, rule: u32) {
        self.rules.remove(&rule);
        self.removed.push(rule);
    }

    fn counts(&mut self, rule: &mut u32) -> Option<(u64, u64)> {
        Some(self.counts.get(rule).copied().unwrap_or_default())
    }
}

/// One real candidate of each tenant (t1 over EIP1, t2 over EIP2), from
/// a gateway's worker.
fn real_candidates() -> (Tables, Candidate, Candidate) {
    let (mut gw, link) = offloading(&spec(), 16);
    connect(&mut gw, 40000, 0);
    gw.t2_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
    gw.client_sends(&udp_from(CLIENT, 53, EIP2, 5000), 0);
    let got = drain(&link);
    (gw.tables, candidate(&got[0]), candidate(&got[1]))
}

/// Candidate `c` as flow `id` of worker `worker`, its client port moved
/// by `n`: another flow of the same tenant.
fn variant(c: &Candidate, worker: u16, id: u32, n: u16) -> Candidate {
    let mut v = *c;
    v.worker = worker;
    v.id = FlowId::new(id);
    let p = if v.keys[0].zone() == Zone::PUBLIC {
        0
    } else {
        1
    };
    let (k, r) = (v.keys[p], v.keys[1 - p]);
    v.keys[p] = dataplane::flow::FlowKey::new(
        k.zone(),
        k.protocol(),
        k.src(),
        k.src_port().wrapping_add(n),
        k.dst(),
        k.dst_port(),
    );
    v.keys[1 - p] = dataplane::flow::FlowKey::new(
        r.zone(),
        r.protocol(),
        r.src(),
        r.src_port(),
        r.dst(),
        r.dst_port().wrapping_add(n),
    );
    v
}

const LIMITS: Limits = Limits {
    flows: 64,
    per_tenant: 64,
    tenants: 4,
    query_interval: 10,
};

fn offer(link: &Link, c: Candidate) {
    assert!(link.request(Request::Candidate(c)));
}

fn feedback(link: &Link) -> Vec<Feedback> {
    std::iter::from_fn(|| link.next_feedback()).collect()
}

#[test]
fn the_manager_installs_refreshes_on_new_hits_and_removes_ended_flows() {
    let (t, c1, _) = real_candidates();
    let links = Link::for_workers(2, 16, 16);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic::default();
    let mut macs = macs_of(&t);
    offer(&links[1], variant(&c1, 1, 5, 0));
    m.tick(0, 16, &t, &mut macs, &mut nic);
    assert_eq!(m.len(), 1);
    let view: Vec<_> = m
        .flows()
        .map(|f| (f.worker, f.id, f.tenant, f.state))
        .collect();
    assert_eq!(
        view,
        vec![(1, FlowId::new(5), TenantId(0), State::Offloaded)]
    );
    assert_eq!(nic.rules.len(), 1);
    assert_eq!(nic.rules[&1].legs[1].set_src, Some((be(EIP1), 22)));
    let s = m.stats();
    assert_eq!((s.candidates, s.installed, s.offloaded), (1, 1, 1));
    assert!(feedback(&links[1]).is_empty(), "no hits, no refresh");

    // Hits: refreshed at the next query, by the difference.
    nic.counts.insert(1, (5, 500));
    m.tick(5, 16, &t, &mut macs, &mut nic);
    assert!(feedback(&links[1]).is_empty(), "not time to query yet");
    m.tick(10, 16, &t, &mut macs, &mut nic);
    let key = variant(&c1, 1, 5, 0).keys[0];
    let refresh = |packets, bytes| Feedback::Refresh {
        id: FlowId::new(5),
        key,
        packets,
        bytes,
    };
    assert_eq!(feedback(&links[1]), vec![refresh(5, 500)]);
    m.tick(20, 16, &t, &mut macs, &mut nic);
    assert!(feedback(&links[1]).is_empty(), "no new hits");
    nic.counts.insert(1, (7, 800));
    m.tick(30, 16, &t, &mut macs, &mut nic);
    assert_eq!(feedback(&links[1]), vec![refresh(2, 300)]);
    assert_eq!(m.flows().next().unwrap().hits, (7, 800));

    // Ended: its rules go.
    assert!(links[1].request(Request::Ended {
        worker: 1,
        id: FlowId::new(5)
    }));
    m.tick(31, 16, &t, &mut macs, &mut nic);
    assert_eq!((m.len(), nic.removed.clone()), (0, vec![1]));
    let s = m.stats();
    assert_eq!((s.ended, s.removed, s.offloaded, s.refreshes), (1, 1, 0, 2));
    // An end notice for a flow never installed is counted apart.
    assert!(links[0].request(Request::Ended {
        worker: 0,
        id: FlowId::new(9)
    }));
    m.tick(32, 16, &t, &mut macs, &mut nic);
    assert_eq!(m.stats().ended_unknown, 1);
}

#[test]
fn a_queued_rule_is_pending_until_the_device_confirms_it() {
    let (t, c1, _) = real_candidates();
    let links = Link::for_workers(1, 16, 16);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic {
        queue: true,
        ..FakeNic::default()
    };
    offer(&links[0], c1);
    m.tick(0, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.flows().next().unwrap().state, State::Pending);
    assert_eq!(m.stats().pending, 1);
    m.tick(1, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.flows().next().unwrap().state, State::Pending);
    nic.confirm = true;
    m.tick(2, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.flows().next().unwrap().state, State::Offloaded);
    let s = m.stats();
    assert_eq!((s.pending, s.offloaded, s.installed), (0, 1, 1));
}

#[test]
fn a_tenant_change_pulls_its_flows_back_and_leaves_the_others() {
    let (t, c1, c2) = real_candidates();
    let links = Link::for_workers(1, 16, 16);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic::default();
    offer(&links[0], c1);
    offer(&links[0], c2);
    m.tick(0, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.len(), 2);
    let changed = at_epoch(&spec(), 2);
    m.tick(1, 16, &changed, &mut macs_of(&changed), &mut nic);
    assert_eq!(
        feedback(&links[0]),
        vec![Feedback::Released {
            id: c1.id,
            key: c1.keys[0]
        }]
    );
    let left: Vec<_> = m.flows().map(|f| f.tenant).collect();
    assert_eq!(left, vec![TenantId(1)]);
    assert_eq!(nic.rules.len(), 1);
    assert_eq!(m.stats().pulled_back, 1);

    // By hand: one tenant, then all.
    m.pull_back(TenantId(0), &mut nic);
    assert_eq!(m.len(), 1);
    m.pull_back_all(&mut nic);
    assert_eq!((m.len(), nic.rules.len()), (0, 0));
    assert_eq!(feedback(&links[0]).len(), 1);
}

#[test]
fn one_tenant_flooding_candidates_cannot_keep_another_out() {
    let (t, c1, c2) = real_candidates();
    let links = Link::for_workers(1, 256, 256);
    let limits = Limits {
        flows: 10,
        per_tenant: 6,
        ..LIMITS
    };
    let mut m = Offloads::new(links.clone(), limits);
    let mut nic = FakeNic::default();
    for i in 0..100 {
        offer(&links[0], variant(&c1, 0, i, i as u16));
    }
    for i in 0..3 {
        offer(&links[0], variant(&c2, 0, 100 + i, i as u16));
    }
    m.tick(0, 1000, &t, &mut macs_of(&t), &mut nic);
    let held = |m: &Offloads<FakeNic>, tenant| m.flows().filter(|f| f.tenant == tenant).count();
    assert_eq!((held(&m, TenantId(0)), held(&m, TenantId(1))), (6, 3));
    assert_eq!(m.stats().limit_tenant, 94);
    // The table's own limit: a tenant under its share is refused when
    // the table is full.
    for i in 3..6 {
        offer(&links[0], variant(&c2, 0, 100 + i, i as u16));
    }
    m.tick(1, 1000, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(held(&m, TenantId(1)), 4);
    assert_eq!(m.stats().limit_flows, 2);
    assert_eq!(m.len(), 10);
}

#[test]
fn workers_are_drained_in_turn_within_the_budget() {
    let (t, c1, _) = real_candidates();
    let links = Link::for_workers(2, 64, 64);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic::default();
    for i in 0..10 {
        offer(&links[0], variant(&c1, 0, i, i as u16));
        offer(&links[1], variant(&c1, 1, i, 100 + i as u16));
    }
    m.tick(0, 6, &t, &mut macs_of(&t), &mut nic);
    let by_worker = |m: &Offloads<FakeNic>, w| m.flows().filter(|f| f.worker == w).count();
    assert_eq!((by_worker(&m, 0), by_worker(&m, 1)), (3, 3));
    assert_eq!(links[0].requests_queued().0, 7);
}

#[test]
fn refusals_are_counted_by_reason_and_hold_nothing() {
    let (t, c1, _) = real_candidates();
    let links = Link::for_workers(1, 16, 16);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic {
        refuse: Some(Refusal::Full),
        ..FakeNic::default()
    };
    offer(&links[0], c1);
    m.tick(0, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.stats().refused[Refusal::Full as usize], 1);
    assert_eq!(m.len(), 0);
    // Not offloadable: no next hop MAC.
    nic.refuse = None;
    offer(&links[0], c1);
    m.tick(1, 16, &t, &mut |_| None, &mut nic);
    assert_eq!(
        m.stats().not_offloadable[NotOffloadable::NoNeighbour as usize],
        1
    );
    assert_eq!((m.len(), nic.rules.len()), (0, 0));
}

#[test]
fn a_full_feedback_queue_is_counted_and_the_hits_reported_later() {
    let (t, c1, _) = real_candidates();
    let links = Link::for_workers(1, 16, 1);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic::default();
    offer(&links[0], variant(&c1, 0, 1, 1));
    offer(&links[0], variant(&c1, 0, 2, 2));
    m.tick(0, 16, &t, &mut macs_of(&t), &mut nic);
    nic.counts.insert(1, (1, 100));
    nic.counts.insert(2, (1, 100));
    m.tick(10, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.stats().feedback_full, 1);
    assert_eq!(feedback(&links[0]).len(), 1);
    m.tick(20, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(feedback(&links[0]).len(), 1, "the other flow's hits");
    assert_eq!(m.stats().refreshes, 2);
}

// ------------------------------------------------------------ the marks

/// Counts the lines a stage prefetches: the bulk lookup's buckets and
/// entries, and the values of the flows found.
#[derive(Default)]
struct CountingPrefetch(std::cell::Cell<usize>);

impl dataplane::flow::Prefetch for CountingPrefetch {
    const INSTRUCTION: bool = true;

    fn prefetch<T>(&self, _r: &T) {
        self.0.set(self.0.get() + 1);
    }
}

/// Runs `frame` from `port` with NIC mark `mark`, staged as the daemon's
/// workers stage a burst or not; returns the verdict, the frame out and
/// the lines the stage prefetched.
fn run_marked(
    gw: &mut Gw,
    staged: bool,
    frame: &[u8],
    port: u16,
    mark: Option<u32>,
) -> (Verdict, Vec<u8>, usize) {
    let mut hints = [Hint::default(); 1];
    let pf = CountingPrefetch::default();
    if staged {
        let frames = [(frame, Checked::Unknown, mark)].into_iter();
        gw.pipeline
            .stage_public(&gw.tables, port, frames, &pf, 0, &mut hints);
        let frames = [(frame, Checked::Unknown, mark)].into_iter();
        gw.pipeline
            .stage_underlay(&gw.tables, port, frames, &pf, 0, &mut hints);
        assert!(hints[0].is_hit(), "a hit either way");
    }
    let mut f = VecFrame::new(frame, port);
    if let Some(m) = mark {
        f = f.with_mark(m);
    }
    let v = gw
        .pipeline
        .process_staged(&gw.tables, &gw.counters, &mut f, 0, &hints[0]);
    (v, f.data().to_vec(), pf.0.get())
}

#[test]
fn a_marked_staged_frame_skips_the_lookup_and_a_stale_mark_is_just_a_miss() {
    let (mut gw, link) = offloading(&spec(), 16);
    connect(&mut gw, 40000, 0);
    connect(&mut gw, 40001, 0);
    let got = drain(&link);
    let (first, second) = (candidate(&got[0]).id, candidate(&got[1]).id);
    // Enough flows that a burst is looked up in stages, whose prefetches
    // show whether a frame was looked up: below, the table is in cache and
    // a burst's keys are looked up one at a time, prefetching nothing.
    for sport in 0..dataplane::flow::STAGED_FROM as u16 {
        let syn = tcp(CLIENT, 1024 + sport, EIP1, 22, "S");
        assert_eq!(gw.client_sends(&syn, 0).0, Verdict::Forward(UND));
    }
    let mark = first.get() + 1;
    let from_client = eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &tcp(CLIENT, 40000, EIP1, 22, "A"),
    );
    let inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &tcp(VM, 22, CLIENT, 40000, "A"),
    );
    let from_t1 = gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner);
    let mut hits = 0;
    let mut stale = 0;
    for staged in [false, true] {
        for (frame, port, out_port) in [(&from_client, PUB, UND), (&from_t1, UND, PUB)] {
            // Frames into a tunnel differ by their outer identification
            // (and so checksum) alone.
            let same = |mut b: Vec<u8>| {
                if out_port == UND {
                    b[18..20].fill(0);
                    b[24..26].fill(0);
                }
                b
            };
            let (v, want, unmarked) = run_marked(&mut gw, staged, frame, port, None);
            let want = same(want);
            assert_eq!(v, Verdict::Forward(out_port));
            // The flow's own mark: the same frame out, without the lookup.
            // The unstaged path (frames handed over by another worker)
            // reads no marks: it looks the frame up.
            let (v, out, marked) = run_marked(&mut gw, staged, frame, port, Some(mark));
            assert_eq!((v, same(out)), (Verdict::Forward(out_port), want.clone()));
            if staged {
                hits += 1;
                assert!(marked < unmarked, "{marked} lines, {unmarked} unmarked");
            }
            // Another flow's mark, a free entry's, and one past the
            // table: looked up as usual.
            for m in [second.get() + 1, 4000, u32::MAX] {
                let (v, out, _) = run_marked(&mut gw, staged, frame, port, Some(m));
                let out = same(out);
                assert_eq!((v, &out), (Verdict::Forward(out_port), &want), "mark {m}");
                stale += u64::from(staged);
            }
        }
    }
    gw.pipeline.sweep(&gw.tables, &gw.counters, 0);
    let oc = &gw.counters.offload;
    assert_eq!((oc.marked_hits.get(), oc.stale_marks.get()), (hits, stale));
}

#[test]
fn a_big_table_is_queried_a_share_at_a_time_and_each_round_once_an_interval() {
    use dataplane::offload::SCAN_PER_TICK;
    let (t, c1, _) = real_candidates();
    let n = SCAN_PER_TICK as u32 + 10;
    let links = Link::for_workers(1, 2 * n as usize, 2 * n as usize);
    let limits = Limits {
        flows: n as usize,
        per_tenant: n as usize,
        ..LIMITS
    };
    let mut m = Offloads::new(links.clone(), limits);
    let mut nic = FakeNic::default();
    for i in 0..n {
        offer(&links[0], variant(&c1, 0, i, i as u16));
    }
    m.tick(0, usize::MAX, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.len(), n as usize);
    for rule in 1..=n {
        nic.counts.insert(rule, (1, 100));
    }
    // The first round began at 0, before the hits, with the first
    // share of the slots; it ends at the next tick.
    m.tick(5, 0, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(feedback(&links[0]).len(), 10, "the end of the first round");
    m.tick(6, 0, &t, &mut macs_of(&t), &mut nic);
    assert!(feedback(&links[0]).is_empty(), "no round before 10");
    m.tick(10, 0, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(feedback(&links[0]).len(), SCAN_PER_TICK);
    m.tick(11, 0, &t, &mut macs_of(&t), &mut nic);
    assert!(
        feedback(&links[0]).is_empty(),
        "reported in the first round"
    );
    for rule in 1..=n {
        nic.counts.insert(rule, (2, 200));
    }
    m.tick(12, 0, &t, &mut macs_of(&t), &mut nic);
    assert!(feedback(&links[0]).is_empty(), "the round is over");
    m.tick(20, 0, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(feedback(&links[0]).len(), SCAN_PER_TICK);
    m.tick(21, 0, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(feedback(&links[0]).len(), 10);
}

#[test]
fn queued_rules_of_a_big_table_are_all_confirmed_in_turn() {
    use dataplane::offload::SCAN_PER_TICK;
    let (t, c1, _) = real_candidates();
    let n = SCAN_PER_TICK as u32 + 10;
    let links = Link::for_workers(1, 2 * n as usize, 16);
    let limits = Limits {
        flows: n as usize,
        per_tenant: n as usize,
        ..LIMITS
    };
    let mut m = Offloads::new(links.clone(), limits);
    let mut nic = FakeNic {
        queue: true,
        ..FakeNic::default()
    };
    for i in 0..n {
        offer(&links[0], variant(&c1, 0, i, i as u16));
    }
    m.tick(0, usize::MAX, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.stats().pending, u64::from(n));
    nic.confirm = true;
    m.tick(1, 0, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.stats().pending, 10);
    m.tick(2, 0, &t, &mut macs_of(&t), &mut nic);
    let s = m.stats();
    assert_eq!(
        (s.pending, s.offloaded, s.installed),
        (0, u64::from(n), u64::from(n))
    );
}

#[test]
fn a_tenant_change_reaches_every_flow_of_a_big_table_however_often_tables_change() {
    use dataplane::offload::SCAN_PER_TICK;
    let (t, c1, _) = real_candidates();
    let n = 2 * SCAN_PER_TICK as u32 + 10;
    let links = Link::for_workers(1, 2 * n as usize, 2 * n as usize);
    let limits = Limits {
        flows: n as usize,
        per_tenant: n as usize,
        ..LIMITS
    };
    let mut m = Offloads::new(links.clone(), limits);
    let mut nic = FakeNic::default();
    for i in 0..n {
        offer(&links[0], variant(&c1, 0, i, i as u16));
    }
    m.tick(0, usize::MAX, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.len(), n as usize);
    // New tables at every tick: the walk goes on where it was.
    let changed = at_epoch(&spec(), 2);
    let mut pulled = Vec::new();
    for tick in 1..=3 {
        let mut now = changed.clone();
        now.generation = 100 + tick;
        m.tick(tick, 0, &now, &mut macs_of(&now), &mut nic);
        pulled.push(m.stats().pulled_back);
    }
    let share = SCAN_PER_TICK as u64;
    assert_eq!(pulled, vec![share, 2 * share, u64::from(n)]);
    assert_eq!((m.len(), nic.rules.len()), (0, 0));
    assert_eq!(feedback(&links[0]).len(), n as usize);
}

/// A RST from the client at `seq`.
fn rst_at(sport: u16, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .tcp(sport, 22, seq, 64240)
        .rst()
        .write(&mut out, &[])
        .unwrap();
    out
}

/// The NIC forwarded the flow's segments: the sequence numbers the
/// worker learned are behind. A RST from where the connection really is
/// must still close it (as Linux's flowtable resets its window tracking
/// when a flow comes back, `flow_offload_fixup_tcp`), not be dropped as
/// out of window, leaving both ends' connection open in the gateway.
#[test]
fn a_rst_after_offloaded_traffic_still_closes_the_connection() {
    let (mut gw, link) = offloading(&spec(), 16);
    connect(&mut gw, 40000, 0);
    let c = candidate(&drain(&link)[0]);
    // Ten megabytes went through the NIC.
    assert!(link.send(Feedback::Refresh {
        id: c.id,
        key: c.keys[0],
        packets: 7000,
        bytes: 10_000_000,
    }));
    gw.pipeline.apply_feedback(&gw.counters, SEC);
    let (v, _) = gw.client_sends(&rst_at(40000, 1001 + 10_000_000), 2 * SEC);
    assert_eq!(v, Verdict::Forward(UND), "the RST goes through");
    assert_eq!(
        drain(&link),
        vec![Request::Ended {
            worker: 0,
            id: c.id
        }]
    );

    // Without offload, such a RST is out of window (RFC 5961) and
    // dropped, as before.
    let mut gw = Gw::new();
    connect(&mut gw, 40000, 0);
    let (v, _) = gw.client_sends(&rst_at(40000, 1001 + 10_000_000), SEC);
    assert_ne!(v, Verdict::Forward(UND));
}

/// A next hop's MAC moves (docs/offload.md, "Pull-back"): the client's
/// NIC is replaced and the gateway learns its new MAC. The flow whose
/// rules carry the old one is pulled back (`Feedback::Moved`: its rules
/// go), software forwards its next packet to the new MAC and offers it
/// again, and its new rules carry the new MAC; a flow through another
/// next hop (t2's, via the router) stays. The same MAC learned again
/// moves nothing. Under the manager's fake clock.
#[test]
fn a_next_hops_mac_change_pulls_back_the_flows_that_carry_the_old_one() {
    let (mut gw, link) = offloading(&spec(), 16);
    connect(&mut gw, 40000, 0);
    // t2's UDP flow, through the router.
    let far = [8, 8, 8, 8];
    gw.t2_sends(&udp_from(VM, 5000, far, 53), 0);
    let answer = eth(
        PUB_MAC,
        ROUTER_MAC,
        EtherType::IPV4,
        &udp_from(far, 53, EIP2, 5000),
    );
    let mut f = VecFrame::new(&answer, PUB);
    let v = gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 0);
    assert_eq!(v, Verdict::Forward(UND));
    let mut m = Offloads::new(vec![link.clone()], LIMITS);
    let mut nic = FakeNic::default();
    m.tick(0, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert_eq!((m.len(), nic.rules.len()), (2, 2));
    let to_client = |nic: &FakeNic| -> Vec<[u8; 6]> {
        let mut macs: Vec<[u8; 6]> = (nic.rules.values())
            .filter(|s| s.tenant == TenantId(0))
            .map(|s| s.legs[1].encap[..6].try_into().unwrap())
            .collect();
        macs.sort_unstable();
        macs
    };
    assert_eq!(to_client(&nic), vec![CLIENT_MAC]);
    let t1_flow = m.flows().find(|f| f.tenant == TenantId(0)).unwrap().id;

    // The same MAC learned again (an ARP reply to a probe): nothing moves.
    let client = NeighKey::port(PUB, be(CLIENT));
    assert!(gw.resolver.writer().set(client, CLIENT_MAC));
    m.tick(1, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert!(feedback(&link).is_empty());
    assert_eq!(m.len(), 2);

    // A new MAC: t1's flow, which leaves toward the client, is pulled
    // back to be offered again; t2's stays.
    const NEW_MAC: [u8; 6] = [2, 0, 0, 0, 0xc, 0x99];
    assert!(gw.resolver.writer().set(client, NEW_MAC));
    m.tick(2, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    let fb = feedback(&link);
    assert!(
        matches!(fb[..], [Feedback::Moved { id, .. }] if id == t1_flow),
        "{fb:?}"
    );
    assert_eq!((m.len(), nic.removed.len()), (1, 1));
    let s = m.stats();
    assert_eq!((s.moved, s.pulled_back), (1, 1));
    for f in fb {
        gw.pipeline.apply(&gw.counters, f, 2);
    }
    // Software has the flow again: its next packet leaves to the new MAC
    // and offers the flow once more.
    let (v, out) = gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "A"), 2);
    assert_eq!(v, Verdict::Forward(PUB));
    assert_eq!(out[..6], NEW_MAC);
    assert_eq!(link.requests_queued().0, 1, "offered again");
    m.tick(3, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert_eq!(m.len(), 2);
    assert_eq!(to_client(&nic), vec![NEW_MAC]);
    assert_eq!(gw.counters.offload.requests.get(), 3);
}

/// An `Ended` lost on a full request queue no longer leaves the rules in
/// place (docs/offload.md, "Limits, shares and queues"): the flow's FIN
/// closes it in software while the queue is full, so its end notice is
/// lost and the manager keeps its rules; the NIC goes on counting hits
/// (frames it still forwards), the manager refreshes the flow, and the
/// worker, which no longer holds it as requested, answers `Stale`: the
/// rules go. A `Stale` naming the id with another key (the id reused by
/// another flow since) takes nothing down.
#[test]
fn a_refresh_of_a_flow_whose_end_was_lost_brings_its_rules_down() {
    let (mut gw, link) = offloading(&spec(), 4);
    connect(&mut gw, 40000, 0);
    let mut m = Offloads::new(vec![link.clone()], LIMITS);
    let mut nic = FakeNic::default();
    m.tick(0, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert_eq!((m.len(), nic.rules.len()), (1, 1));
    let key = m.flows().next().unwrap().spec.legs[0].src;
    // The queue full (end notices of flows nobody knows), then the FIN.
    let filler = Request::Ended {
        worker: 0,
        id: FlowId::new(999),
    };
    while link.request(filler) {}
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "FA"), 1);
    assert_eq!(v, Verdict::Forward(UND));
    assert_eq!(gw.counters.offload.ended_lost.get(), 1);
    m.tick(1, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert_eq!(m.stats().ended_unknown, 4);
    assert_eq!(m.len(), 1, "the end was lost: the rules stay");

    // The NIC's counter moves: a refresh, answered stale, and the rules go.
    nic.counts.insert(1, (3, 300));
    m.tick(10, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert_eq!(m.stats().refreshes, 1);
    gw.pipeline.apply_feedback(&gw.counters, 2);
    assert_eq!(gw.counters.offload.stale_told.get(), 1);
    m.tick(11, 16, &gw.tables, &mut macs_of(&gw.tables), &mut nic);
    assert_eq!((m.len(), nic.removed.clone()), (0, vec![1]));
    assert_eq!(m.stats().stale, 1);
    assert_eq!(key, (be(CLIENT), 40000));

    // By the manager alone: a Stale naming the id with another key is
    // about another flow (the id reused since) and takes nothing down.
    let (t, c1, _) = real_candidates();
    let links = Link::for_workers(1, 16, 16);
    let mut m = Offloads::new(links.clone(), LIMITS);
    let mut nic = FakeNic::default();
    offer(&links[0], c1);
    m.tick(0, 16, &t, &mut macs_of(&t), &mut nic);
    let stale = |key| Request::Stale {
        worker: 0,
        id: c1.id,
        key,
    };
    assert!(links[0].request(stale(c1.keys[1])));
    m.tick(1, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!(m.len(), 1);
    assert!(links[0].request(stale(c1.keys[0])));
    m.tick(2, 16, &t, &mut macs_of(&t), &mut nic);
    assert_eq!((m.len(), m.stats().stale), (0, 1));
}
