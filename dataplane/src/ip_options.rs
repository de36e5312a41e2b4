//! What tgw does with a packet that carries IPv4 options, option by
//! option, after RFC 7126 (BCP 186) §4: the table is in
//! docs/packet-path.md, and this is the one place that decides it.
//!
//! A packet is forwarded, its options untouched, when every option it
//! carries is harmless to pass on: padding (End of Option List, NOP),
//! options meant for routers that tgw, like any router that does not
//! implement them, passes on as if they were absent (Router Alert,
//! Quick-Start), and security labels, which RFC 7126 asks gateways not to
//! drop by default. Any other option drops the packet with a reason of
//! its own: source routes (which would let a sender steer replies around
//! the firewall and NAT), record route and timestamp (they ask each
//! router to write its address or clock into the packet, which tgw
//! does not do, and would map the cloud's inside), the obsolete ones, and
//! those tgw does not know. A list that does not parse is dropped too.
//!
//! Transit traffic only: options on a packet for the gateway itself (an
//! echo request, the outer header of a tunnel) are still `slow_path`.

use crate::wire::ipv4::{option, Ipv4Options};
use crate::DropReason;

/// Why a packet with options was let through: each a counter
/// ([`crate::WorkerCounters::ip_options`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Only End of Option List and NOP.
    Padding,
    /// Router Alert (RFC 2113), passed on as a router that does not
    /// implement it does.
    RouterAlert,
    /// Quick-Start (RFC 4782), passed on unapproved: tgw leaves its QS TTL
    /// alone, which tells the sender that a router on the path did not
    /// take part.
    QuickStart,
    /// A security label (DoD BSO/ESO, CIPSO), passed on unchanged.
    SecurityLabel,
}

impl Forwarded {
    pub const ALL: [Forwarded; 4] = [
        Forwarded::Padding,
        Forwarded::RouterAlert,
        Forwarded::QuickStart,
        Forwarded::SecurityLabel,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The name in the stats (snake case, stable).
    pub fn name(self) -> &'static str {
        match self {
            Forwarded::Padding => "padding",
            Forwarded::RouterAlert => "router_alert",
            Forwarded::QuickStart => "quick_start",
            Forwarded::SecurityLabel => "security_label",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The kinds of forwarded option a packet carries, one bit each: a packet
/// with a Router Alert and a security label counts once in each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried(u8);

impl Carried {
    /// Whether the packet carried `kind`.
    pub fn has(self, kind: Forwarded) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Each kind the packet carried.
    pub fn kinds(self) -> impl Iterator<Item = Forwarded> {
        Forwarded::ALL.into_iter().filter(move |k| self.has(*k))
    }
}

/// The decision for a packet whose header carries `options` (the bytes
/// between 20 and the IHL): forwarded, with what it carried, or dropped
/// with the reason of its first option that is not forwarded. The walk is
/// bounded by the list (at most 40 bytes, at least one a step).
pub fn decide(options: &[u8]) -> Result<Carried, DropReason> {
    let mut carried = 0u8;
    for o in Ipv4Options::new(options) {
        let o = o.map_err(|_| DropReason::IpOptionMalformed)?;
        let kind = match (o.kind, o.data.len()) {
            (option::NOP, _) => continue,
            // RFC 2113: length 4, a two-byte value.
            (option::ROUTER_ALERT, 2) => Forwarded::RouterAlert,
            // RFC 4782: length 8.
            (option::QUICK_START, 6) => Forwarded::QuickStart,
            (option::ROUTER_ALERT | option::QUICK_START, _) => {
                return Err(DropReason::IpOptionMalformed)
            }
            (option::BASIC_SECURITY | option::EXTENDED_SECURITY | option::CIPSO, _) => {
                Forwarded::SecurityLabel
            }
            (option::LOOSE_SOURCE_ROUTE | option::STRICT_SOURCE_ROUTE, _) => {
                return Err(DropReason::IpOptionSourceRoute)
            }
            (option::RECORD_ROUTE, _) => return Err(DropReason::IpOptionRecordRoute),
            (option::TIMESTAMP, _) => return Err(DropReason::IpOptionTimestamp),
            (
                option::STREAM_ID
                | option::PROBE_MTU
                | option::REPLY_MTU
                | option::TRACEROUTE
                | option::VISA
                | option::EXTENDED_IP
                | option::ADDRESS_EXTENSION
                | option::MULTI_DESTINATION
                | option::DYNAMIC_PACKET_STATE
                | option::UPSTREAM_MULTICAST,
                _,
            ) => return Err(DropReason::IpOptionObsolete),
            _ => return Err(DropReason::IpOptionUnknown),
        };
        carried |= kind.bit();
    }
    if carried == 0 {
        carried = Forwarded::Padding.bit();
    }
    Ok(Carried(carried))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(options: &[u8]) -> Vec<Forwarded> {
        decide(options).unwrap().kinds().collect()
    }

    #[test]
    fn padding_router_alert_quick_start_and_labels_pass() {
        assert_eq!(kinds(&[1, 1, 1, 0]), [Forwarded::Padding]);
        assert_eq!(kinds(&[0, 0, 0, 0]), [Forwarded::Padding]);
        assert_eq!(kinds(&[148, 4, 0, 0]), [Forwarded::RouterAlert]);
        assert_eq!(
            kinds(&[25, 8, 0x01, 0x40, 0, 0, 0, 0]),
            [Forwarded::QuickStart]
        );
        // BSO (RFC 1108): length 3, classification level 0xab.
        assert_eq!(
            kinds(&[148, 4, 0, 0, 130, 3, 0xab, 0]),
            [Forwarded::RouterAlert, Forwarded::SecurityLabel]
        );
    }

    #[test]
    fn every_other_option_drops_with_its_reason() {
        let lsrr = [131, 7, 4, 9, 9, 9, 9, 0];
        let ssrr = [137, 7, 4, 9, 9, 9, 9, 0];
        let rr = [7, 7, 4, 0, 0, 0, 0, 0];
        let ts = [68, 8, 5, 0, 0, 0, 0, 0];
        let sid = [136, 4, 0, 1];
        let traceroute = [82, 12, 0, 1, 0, 0, 0, 0, 1, 1, 1, 7];
        let unknown = [94, 4, 0, 0]; // an RFC 4727 experiment
        for (options, reason) in [
            (&lsrr[..], DropReason::IpOptionSourceRoute),
            (&ssrr[..], DropReason::IpOptionSourceRoute),
            (&rr[..], DropReason::IpOptionRecordRoute),
            (&ts[..], DropReason::IpOptionTimestamp),
            (&sid[..], DropReason::IpOptionObsolete),
            (&traceroute[..], DropReason::IpOptionObsolete),
            (&unknown[..], DropReason::IpOptionUnknown),
            (&[148, 4, 0][..], DropReason::IpOptionMalformed),
            (&[148, 3, 0, 0][..], DropReason::IpOptionMalformed),
            (&[1, 130, 1, 0][..], DropReason::IpOptionMalformed),
            (&[1, 1, 1, 131][..], DropReason::IpOptionMalformed),
        ] {
            assert_eq!(decide(options), Err(reason), "{options:?}");
        }
        // The first option that is not forwarded decides, wherever it is.
        let mut late = [1u8; 40];
        late[36..].copy_from_slice(&[131, 3, 4, 0]);
        assert_eq!(decide(&late), Err(DropReason::IpOptionSourceRoute));
        // After End of Option List nothing is read.
        assert_eq!(kinds(&[0, 131, 3, 4]), [Forwarded::Padding]);
    }
}
