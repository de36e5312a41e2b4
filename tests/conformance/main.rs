//! tgw's conformance suite: the MUSTs and SHOULDs of the RFCs a gateway
//! like tgw answers to, each a test with crafted frames against the
//! running daemon, named after its RFC section. docs/conformance.md is the
//! table: requirement, what tgw does, and the test that shows it.
//!
//! All checks share one run of tgw (see `harness`): each module's `frames`
//! adds its packets to the plan, and each test finds its answers by ports
//! or identifiers no other check uses. Ports and ICMP identifiers taken,
//! by module: rfc4787 40xx and 47xx, rfc5382 53xx, rfc5508 0x55xx and
//! 55xx, rfc7857 78xx, rfc1812 0x18xx and 18xx, rfc791 0x79xx and 79xx,
//! gre 27xx, rfc6040 60xx, rfc826 (ARP: addresses 1.1.1.2xx).

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod gre;
mod rfc1812;
mod rfc4787;
mod rfc5382;
mod rfc5508;
mod rfc6040;
mod rfc7857;
mod rfc791;
mod rfc826;
mod timeouts;

/// Every check's frames, in one plan.
fn frames(p: &mut harness::Plan) {
    rfc4787::frames(p);
    rfc5382::frames(p);
    rfc5508::frames(p);
    rfc7857::frames(p);
    rfc1812::frames(p);
    rfc791::frames(p);
    gre::frames(p);
    rfc6040::frames(p);
    rfc826::frames(p);
}

/// Every frame tgw dropped is one a check sent to be dropped, under the
/// reason that check names: the fillers between rounds, and the list
/// below, and nothing else. A drop nobody expected fails here even when
/// the check it spoils is not looking at counters.
#[test]
fn every_drop_is_one_a_check_expects() {
    let out = harness::outcome();
    let mut expected: Vec<(&str, u64)> = vec![
        ("arp_not_for_us", 1), // rfc826: a request for 1.1.1.202
        ("ecn_drop", 1),       // rfc6040: not-ECT inside CE
        ("ethertype", out.fillers as u64),
        ("firewall", 1),                // rfc5508 REQ-8: t1's SYN to port 22
        ("fragment_duplicate", 2),      // rfc791: a first and a middle again
        ("fragment_header_overlap", 1), // rfc791: RFC 1858's offset 8
        ("fragment_overlap", 2),        // rfc791: the overlap and the rest
        ("fragment_tiny_first", 1),     // rfc791: RFC 3128's tiny first
        ("fragment_too_long", 1),       // rfc791: past 65,535 bytes
        ("gre_checksum", 1),            // gre: the wrong checksum
        ("gre_no_key", 1),              // gre: no key
        ("gre_protocol", 1),            // gre: IPv4 to a gretap tenant
        ("gre_unknown_key", 1),         // gre: key 3000
        ("gre_version", 2),             // gre: version 1, routing present
        ("icmp_checksum", 1),           // rfc5508 REQ-3: a bad ICMP checksum
        ("icmp_quote_checksum", 1),     // rfc5508 REQ-3a: a bad quoted checksum
        ("invalid_state", 1),           // rfc5382: a SYN+ACK acking 999
        ("ip_option_record_route", 1),  // rfc1812: Record Route
        ("ip_option_source_route", 1),  // rfc1812: LSRR
        ("martian_destination", 2),     // rfc1812 §5.3.7: to 127/8, 240/4
        ("martian_source", 4),          // rfc1812 §5.3.7
        // rfc4787 REQ-8: another port, another address; rfc5382 REQ-4:
        // the SYN to the mapping from elsewhere, and to an unmapped port.
        ("nat_filtered", 4),
        ("no_route", 1),            // rfc5508 REQ-4: the error about no flow
        ("spoofed_own_address", 3), // rfc1812 §5.3.8: EIP2, POOL1, GW_PUB
        ("ttl_exceeded", 2),        // rfc1812 §4.3.2.7: the later fragment, the error
    ];
    // By name: the report lists reasons in its own order.
    let mut drops: Vec<(&str, u64)> = out.worker()["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v > 0)
        .collect();
    drops.sort_unstable();
    expected.sort_unstable();
    assert_eq!(drops, expected);
}
