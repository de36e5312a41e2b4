//! RFC 826, ARP, on the public port and inside the tenants' tunnels.

use crate::harness::Tenant::T1;
use crate::harness::*;
use etherparse::EtherType;

const ASKER: [u8; 4] = [1, 1, 1, 201];
const ASKER_MAC: [u8; 6] = [2, 0, 0, 0, 0xc9, 0xc9];
const NOT_OURS: [u8; 4] = [1, 1, 1, 202];

pub fn frames(p: &mut Plan) {
    p.public_frame(
        0,
        eth(
            [0xff; 6],
            ASKER_MAC,
            EtherType::ARP,
            &arp(1, ASKER_MAC, ASKER, [0; 6], GW_PUB),
        ),
    );
    p.public_frame(
        0,
        eth(
            [0xff; 6],
            CLIENT_MAC,
            EtherType::ARP,
            &arp(1, CLIENT_MAC, CLIENT, [0; 6], NOT_OURS),
        ),
    );
    // Inside t1's tunnel, 10.0.0.7 asks for another tenant address.
    let ask = eth(
        [0xff; 6],
        VM1_MAC,
        EtherType::ARP,
        &arp(1, VM1_MAC, VM, [0; 6], [10, 0, 0, 99]),
    );
    p.tunnel_raw(0, T1, 0x2000, &[T1.key()], 0x6558, &ask, 0);
}

/// RFC 826 ("Packet Reception"): a request for the gateway's address is
/// answered to the asker, with the gateway's MAC. RFC 826 would also add
/// the asker to the table; tgw does not (a neighbour is learned only when
/// tgw asked for it or routes through it: anyone on the segment could
/// otherwise fill the table), and the table at exit shows it.
#[test]
fn rfc826_request_for_the_gateway_is_answered() {
    let out = outcome();
    let replies: Vec<_> = Outcome::arp(&out.public)
        .into_iter()
        .filter(|(_, a)| a[24..28] == ASKER)
        .collect();
    assert_eq!(replies.len(), 1);
    let (e, a) = &replies[0];
    assert_eq!((e.destination, e.source), (ASKER_MAC, PUB_MAC));
    assert_eq!(a[..], arp(2, PUB_MAC, GW_PUB, ASKER_MAC, ASKER)[..]);
    let learned = out.stats["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["ip"] == "1.1.1.201");
    assert!(!learned, "{}", out.stats["neighbours"]);
}

/// RFC 826: a request for an address that is not the gateway's gets no
/// answer.
#[test]
fn rfc826_request_for_another_address_is_not_answered() {
    let out = outcome();
    assert!(Outcome::arp(&out.public)
        .iter()
        .all(|(_, a)| a[14..18] != NOT_OURS));
    assert!(out.drops("arp_not_for_us") >= 1);
}

/// RFC 826 in a gretap tunnel, with proxy ARP (RFC 1027): the gateway
/// answers for the tenant's other addresses with its tenant MAC, back
/// into the same tunnel.
#[test]
fn rfc826_proxy_reply_inside_the_tunnel() {
    let out = outcome();
    let replies: Vec<_> = out
        .underlay
        .iter()
        .filter(|f| f[12..14] == [8, 0] && f[14 + 9] == 47)
        .filter(|f| f[14 + 20 + 8 + 12..14 + 20 + 8 + 14] == [8, 6])
        .map(|f| {
            (
                u32::from_be_bytes(f[38..42].try_into().unwrap()),
                f[14 + 20 + 8 + 14..14 + 20 + 8 + 14 + 28].to_vec(),
            )
        })
        .collect();
    assert_eq!(
        replies,
        vec![(1000, arp(2, T1_MAC, [10, 0, 0, 99], VM1_MAC, VM))]
    );
}
