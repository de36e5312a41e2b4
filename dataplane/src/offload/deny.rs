//! A tenant's firewall deny rules as NIC rules on its elastic IPs
//! (docs/offload.md, "Deny rules on the NIC"): the packets the NIC may
//! drop because software would drop them too, first match, counted on the
//! same rule.
//!
//! Software drops an inbound TCP or UDP packet P to an elastic IP when no
//! flow matches P and the tenant's In rules (which see the private
//! address the elastic IP stands for) deny P's tuple. A flow that matches
//! P is either an inbound flow, whose first packet the In rules allowed
//! (so none of a denied region's packets is one of its own), or the reply
//! direction of an outbound flow from that private address, which the Out
//! rules allowed: TCP's simultaneous open (a SYN answering a SYN,
//! conntrack's `SynSent2`) and any UDP answer. A deny region is pushed
//! only when no such outbound flow can exist: every outbound tuple whose
//! reply falls in the region is denied by the Out rules (checked
//! conservatively, [`replies_impossible`]). Otherwise it stays in software
//! and is reported (`replies_possible`): a deny not pushed costs speed,
//! one pushed wrongly would drop what software forwards.
//!
//! Only TCP and UDP are pushed. ICMP errors are related to flows of every
//! protocol, in both directions, from any router on the path; an echo
//! request from the Internet matches an outbound echo flow of the same
//! identifier: ICMP and protocols without ports stay in software
//! (`protocol`).
//!
//! First match on the NIC is priority order. A region pushed as a drop is
//! preceded by a [`Verdict::Pass`] for every earlier rule of the same
//! elastic IP and protocol that overlaps it and is not itself pushed (an
//! allow, or a deny that is not exact): those packets are software's to
//! decide, and to count on the right rule. The pieces of one region (its
//! port ranges cut into value/mask pairs) are disjoint and share a
//! priority; each rule of the walk that is emitted takes the next one.
//!
//! A TCP drop matches only segments that may open a connection (SYN
//! without ACK, RST or FIN, conntrack's `opens`): software sends any other
//! segment without a flow to `invalid_state` before the rules, and counts
//! no rule; the drop's COUNT is then exactly the rule's software count.

use crate::firewall::{Action, Direction, PortRange, Rule, RuleId, Rules};
use crate::tenant::Net;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// A port field as the NIC matches it: `port & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortMask {
    pub value: u16,
    pub mask: u16,
}

impl PortMask {
    pub const ANY: PortMask = PortMask { value: 0, mask: 0 };

    pub fn matches(self, port: u16) -> bool {
        port & self.mask == self.value
    }
}

/// What one NIC rule matches: packets to the elastic IP `dst` of
/// protocol `proto` (TCP or UDP), from `src`, with ports under the masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyMatch {
    pub dst: u32,
    pub proto: u8,
    pub src: Net,
    pub sport: PortMask,
    pub dport: PortMask,
}

impl DenyMatch {
    /// Whether a packet with these fields matches (TCP flags aside: a TCP
    /// drop matches opening segments only, see the module's text).
    pub fn matches(&self, proto: u8, src: u32, dst: u32, sport: u16, dport: u16) -> bool {
        self.proto == proto
            && self.dst == dst
            && self.src.contains(src)
            && self.sport.matches(sport)
            && self.dport.matches(dport)
    }
}

/// What the NIC does with a matching packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Count and drop; the count goes to `rule`, or to the tenant's
    /// inbound default policy when `None`.
    Drop { rule: Option<RuleId> },
    /// On to the port's other rules, as if the deny rules were not there:
    /// software decides.
    Pass,
}

/// One NIC rule: in priority order (lower first), first match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyRule {
    pub priority: u32,
    pub verdict: Verdict,
    pub m: DenyMatch,
}

/// Why (part of) a deny is not on the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Some outbound flow the Out rules allow could have a reply in the
    /// region.
    RepliesPossible,
    /// Not TCP or UDP.
    Protocol,
    /// The tenant's rules would take more NIC rules or priorities than
    /// [`Bounds`] allow: none of its denies is pushed.
    TooMany,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::RepliesPossible => "replies_possible",
            Reason::Protocol => "protocol",
            Reason::TooMany => "deny_too_many",
        }
    }
}

/// A deny (rule, or the inbound default when `rule` is `None`) left to
/// software on elastic IP `eip` for protocol `proto` (`None`: the rule's
/// own, not TCP or UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NotPushed {
    pub eip: u32,
    pub rule: Option<RuleId>,
    pub proto: Option<u8>,
    pub reason: Reason,
}

/// A tenant's NIC rules and what was left to software.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub rules: Vec<DenyRule>,
    pub not_pushed: Vec<NotPushed>,
}

impl Plan {
    pub fn drops(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Drop { .. }))
            .count()
    }
}

/// Limits on one tenant's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// NIC rules (drops and passes, every value/mask piece).
    pub rules: usize,
    /// Priorities one elastic IP's rules of one protocol may use: those
    /// below the port's root rule's.
    pub levels: u32,
}

/// One rule of the In walk of an elastic IP and a protocol: an In rule
/// that applies to it, or the default (`rule: None`) at the end.
#[derive(Clone, Copy, Debug)]
struct Region {
    rule: Option<RuleId>,
    action: Action,
    src: Net,
    sport: PortRange,
    dport: PortRange,
}

const ANY_NET: Net = Net { addr: 0, mask: 0 };

/// The NIC rules for a tenant with `rules`, whose elastic IPs are `eips`
/// (public, private), within `bounds`. Pure: the same input gives the
/// same rules in the same order.
pub fn plan(rules: &Rules, eips: &[(u32, u32)], bounds: Bounds) -> Plan {
    let mut out = Plan::default();
    for &(eip, private) in eips {
        for rule in in_rules(rules, private) {
            if rule.action == Action::Deny && rule.proto.is_some_and(|p| p != TCP && p != UDP) {
                out.not_pushed.push(NotPushed {
                    eip,
                    rule: Some(rule.counter),
                    proto: None,
                    reason: Reason::Protocol,
                });
            }
        }
        for proto in [TCP, UDP] {
            let walk = regions(rules, private, proto);
            let pushed: Vec<bool> = walk
                .iter()
                .map(|r| {
                    r.action == Action::Deny
                        && replies_impossible(rules, private, proto, r.src, r.sport, r.dport)
                })
                .collect();
            let mut level = 0u32;
            for (i, r) in walk.iter().enumerate() {
                let verdict = if pushed[i] {
                    Verdict::Drop { rule: r.rule }
                } else {
                    if r.action == Action::Deny {
                        out.not_pushed.push(NotPushed {
                            eip,
                            rule: r.rule,
                            proto: Some(proto),
                            reason: Reason::RepliesPossible,
                        });
                    }
                    let shadows_a_drop = walk
                        .iter()
                        .zip(&pushed)
                        .skip(i + 1)
                        .any(|(later, &p)| p && overlap(r, later));
                    if !shadows_a_drop {
                        continue;
                    }
                    Verdict::Pass
                };
                if level >= bounds.levels {
                    return too_many(out, eips);
                }
                for sport in port_masks(r.sport) {
                    for dport in port_masks(r.dport) {
                        if out.rules.len() >= bounds.rules {
                            return too_many(out, eips);
                        }
                        out.rules.push(DenyRule {
                            priority: level,
                            verdict,
                            m: DenyMatch {
                                dst: eip,
                                proto,
                                src: r.src,
                                sport,
                                dport,
                            },
                        });
                    }
                }
                level += 1;
            }
        }
    }
    out
}

/// Past a bound: no NIC rule for the tenant, each deny that would have
/// been pushed reported.
fn too_many(mut out: Plan, eips: &[(u32, u32)]) -> Plan {
    let mut not_pushed: Vec<NotPushed> = out
        .rules
        .iter()
        .filter_map(|r| match r.verdict {
            Verdict::Drop { rule } => Some(NotPushed {
                eip: r.m.dst,
                rule,
                proto: Some(r.m.proto),
                reason: Reason::TooMany,
            }),
            Verdict::Pass => None,
        })
        .collect();
    not_pushed.dedup();
    if not_pushed.is_empty() {
        // Cut before the first drop was written: say so once per address.
        not_pushed.extend(eips.iter().map(|&(eip, _)| NotPushed {
            eip,
            rule: None,
            proto: None,
            reason: Reason::TooMany,
        }));
    }
    out.not_pushed.extend(not_pushed);
    out.rules.clear();
    out
}

/// The In rules that can see a packet to `private` (their destination
/// prefix holds it), in order.
fn in_rules(rules: &Rules, private: u32) -> impl Iterator<Item = &Rule> {
    rules
        .rules
        .iter()
        .filter(move |r| r.direction == Direction::In && r.dst.contains(private))
}

/// The walk of the In rules for TCP or UDP packets to `private`, the
/// default last.
fn regions(rules: &Rules, private: u32, proto: u8) -> Vec<Region> {
    let mut walk: Vec<Region> = in_rules(rules, private)
        .filter(|r| r.proto.is_none_or(|p| p == proto))
        .map(|r| Region {
            rule: Some(r.counter),
            action: r.action,
            src: r.src,
            sport: r.sport,
            dport: r.dport,
        })
        .collect();
    walk.push(Region {
        rule: None,
        action: rules.default_in,
        src: ANY_NET,
        sport: PortRange::ANY,
        dport: PortRange::ANY,
    });
    walk
}

/// Whether no outbound flow from `private` of `proto` can have a reply
/// from `src`, source port in `sport`, to destination port in `dport`:
/// the Out rules, first match, deny every such flow (destination in
/// `src`, source port in `dport`, destination port in `sport`).
/// Conservative: an Out deny covering the whole reversed region must come
/// before any Out allow overlapping it, or the Out default is deny and no
/// allow overlaps.
pub fn replies_impossible(
    rules: &Rules,
    private: u32,
    proto: u8,
    src: Net,
    sport: PortRange,
    dport: PortRange,
) -> bool {
    let out_rules = rules.rules.iter().filter(|r| {
        r.direction == Direction::Out
            && r.src.contains(private)
            && r.proto.is_none_or(|p| p == proto)
    });
    for o in out_rules {
        match o.action {
            Action::Deny
                if net_covers(o.dst, src)
                    && range_covers(o.sport, dport)
                    && range_covers(o.dport, sport) =>
            {
                return true
            }
            Action::Allow
                if nets_overlap(o.dst, src)
                    && ranges_overlap(o.sport, dport)
                    && ranges_overlap(o.dport, sport) =>
            {
                return false
            }
            _ => {}
        }
    }
    rules.default_out == Action::Deny
}

fn overlap(a: &Region, b: &Region) -> bool {
    nets_overlap(a.src, b.src)
        && ranges_overlap(a.sport, b.sport)
        && ranges_overlap(a.dport, b.dport)
}

fn net_covers(outer: Net, inner: Net) -> bool {
    outer.mask & inner.mask == outer.mask && inner.addr & outer.mask == outer.addr
}

fn nets_overlap(a: Net, b: Net) -> bool {
    (a.addr ^ b.addr) & a.mask & b.mask == 0
}

fn range_covers(outer: PortRange, inner: PortRange) -> bool {
    outer.lo() <= inner.lo() && inner.hi() <= outer.hi()
}

fn ranges_overlap(a: PortRange, b: PortRange) -> bool {
    a.lo() <= b.hi() && b.lo() <= a.hi()
}

/// The fewest value/mask pairs whose ports are exactly `range`: at most
/// 30 for a 16-bit range.
pub fn port_masks(range: PortRange) -> Vec<PortMask> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(range.lo()), u32::from(range.hi()));
    while lo <= hi {
        // The largest aligned block starting at `lo` that ends by `hi`.
        let mut size = if lo == 0 {
            1 << 16
        } else {
            lo & lo.wrapping_neg()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push(PortMask {
            value: lo as u16,
            mask: !(size - 1) as u16,
        });
        lo += size;
    }
    out
}

#[cfg(test)]
mod tests;
