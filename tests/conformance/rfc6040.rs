//! RFC 6040, ECN in IP-in-IP tunnels: decapsulation (§4.2, Figure 4) on
//! what t1's 10.0.0.7 sends through its tunnel, and encapsulation in
//! normal mode (§4.1) on what the client sends it.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::{EtherType, Ipv4Ecn as IpEcn};

const NOT_ECT: u8 = 0;
const ECT1: u8 = 1;
const ECT0: u8 = 2;
const CE: u8 = 3;

/// (source port, inner, outer, what Figure 4 says leaves; None: drop).
const DECAP: [(u16, u8, u8, Option<u8>); 9] = [
    (6000, NOT_ECT, NOT_ECT, Some(NOT_ECT)),
    (6001, ECT0, CE, Some(CE)),
    (6002, NOT_ECT, CE, None),
    (6003, ECT1, CE, Some(CE)),
    (6004, CE, NOT_ECT, Some(CE)),
    (6005, NOT_ECT, ECT0, Some(NOT_ECT)),
    (6006, ECT1, ECT0, Some(ECT1)),
    (6007, CE, ECT1, Some(CE)),
    (6008, ECT0, NOT_ECT, Some(ECT0)),
];

/// Figure 4's ECT(1) column for an ECT(0) inner packet: ECT(1) leaves.
const ECT1_OUTER: (u16, u8, u8, Option<u8>) = (6009, ECT0, ECT1, Some(ECT1));

pub fn frames(p: &mut Plan) {
    for (sport, inner, outer, _) in DECAP.iter().chain([&ECT1_OUTER]) {
        let ip = with_header(&udp(VM, *sport, REMOTE, 6000, b"ecn"), |h| {
            h.ecn = IpEcn::try_new(*inner).unwrap()
        });
        let frame = eth(T1_MAC, VM1_MAC, EtherType::IPV4, &ip);
        p.tunnel_raw(0, T1, 0x2000, &[T1.key()], 0x6558, &frame, *outer);
    }
    for (id, ecn) in [(0x6010, ECT0), (0x6011, CE), (0x6012, NOT_ECT)] {
        let ip = with_header(&echo_request(CLIENT, EIP1, id, b"ecn"), |h| {
            h.ecn = IpEcn::try_new(ecn).unwrap()
        });
        p.public(0, ip);
    }
}

fn decapsulated((sport, inner, outer, want): (u16, u8, u8, Option<u8>)) {
    let got = outcome().public_where(|p| p.sport() == Some(sport));
    let ecn = got.first().map(Pkt::ecn);
    assert!(got.len() <= 1);
    assert_eq!(ecn, want, "inner {inner}, outer {outer}");
}

/// RFC 6040 §4.2, Figure 4: the outgoing ECN field for each combination
/// of inner and outer (MUST), the not-ECT inner under a CE outer dropped
/// (`ecn_drop`).
#[test]
fn rfc6040_4_2_decapsulation_table() {
    for row in DECAP {
        decapsulated(row);
    }
    assert_eq!(outcome().drops("ecn_drop"), 1);
}

/// RFC 6040 §4.2, Figure 4, inner ECT(0) under outer ECT(1): ECT(1) must
/// leave.
#[test]
fn rfc6040_4_2_ect1_outer_marks_an_ect0_inner_ect1() {
    decapsulated(ECT1_OUTER);
}

/// RFC 6040 §4.1, normal mode: the outer header carries the inner ECN
/// field, CE included.
#[test]
fn rfc6040_4_1_encapsulation_copies_ecn() {
    for (id, ecn) in [(0x6010, ECT0), (0x6011, CE), (0x6012, NOT_ECT)] {
        let got = outcome()
            .tunnelled_where(|t| t.pkt.icmp() == Some((8, 0)) && t.pkt.sport() == Some(id));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].outer.ecn.value(), got[0].pkt.ecn()), (ecn, ecn));
    }
}
