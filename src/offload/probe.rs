//! The probe at start: each rule shape tgw would use on a port, built
//! from a synthetic flow and handed to `rte_flow_validate`, decides the
//! port's offload [`Level`] (docs/offload.md, "Levels").
//!
//! ENOSYS is a port with no flow API (every virtual device here), ENOTSUP
//! a shape the NIC does not take; full offload needs every full shape,
//! partial needs MARK and QUEUE. Full rules are transfer rules that leave
//! by the other role's port: a PMD that validates them has said that both
//! ports are in its switch domain, which is what full offload across
//! ports needs.

use std::fmt;

use arrayvec::ArrayVec;
use ctl::config::{OuterDf, Role};
use dataplane::flow::FlowId;
use dataplane::offload::{Leg, Level, TunnelMatch};
use rte::flow::{FlowError, Rule};

use super::shapes::{self, IPPROTO_TCP, IPPROTO_UDP};
use super::steering;

/// A rule shape tgw uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Public side, full: TCP (flags masked), NAT, encapsulation.
    FullTcp,
    /// Public side, full: UDP.
    FullUdp,
    /// Public side, full: the root rule's header checks and jump.
    RootPublic,
    /// Underlay side, full: IPv4 in GRE with key, TCP.
    FullGre,
    /// Underlay side, full: Ethernet in GRE (gretap), UDP.
    FullGretap,
    /// Underlay side, full: a GRE tunnel's root rule and jump.
    RootGre,
    /// Underlay side, full: a gretap tunnel's root rule and jump.
    RootGretap,
    /// Underlay side, full: the integrity check of the outer and inner
    /// IPv4 headers (checksums) the tunnels' root rules jump to, for IPv4
    /// in GRE and Ethernet in GRE (`shapes::tunnel_check`). Needed for
    /// full: without it a damaged header would leave repaired.
    CheckGre,
    CheckGretap,
    /// Partial: a flow's match, MARK and QUEUE.
    MarkQueue,
    /// Partial, public side: SNAT ports by mask to a queue.
    Steering,
    /// Public side, full: packets whose TTL would expire to software
    /// (`shapes::public_punt`). Needed for full: without it a flow's rule
    /// would send them on.
    PuntPublic,
    /// Underlay side, full: the same on the inner IPv4 header of IPv4 in
    /// GRE, and of Ethernet in GRE (gretap).
    PuntGre,
    PuntGretap,
    /// Public side, full: a tenant's firewall deny as a counted DROP in
    /// the root group, in front of the root rule (`super::deny`). Not
    /// needed for any level: a port that refuses it keeps its denies in
    /// software.
    DenyDrop,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::FullTcp => "full_tcp",
            Shape::FullUdp => "full_udp",
            Shape::FullGre => "full_gre",
            Shape::FullGretap => "full_gretap",
            Shape::RootPublic => "root_public",
            Shape::RootGre => "root_gre",
            Shape::RootGretap => "root_gretap",
            Shape::CheckGre => "check_gre",
            Shape::CheckGretap => "check_gretap",
            Shape::MarkQueue => "mark_queue",
            Shape::Steering => "snat_steering",
            Shape::DenyDrop => "deny_drop",
            Shape::PuntPublic => "punt_public",
            Shape::PuntGre => "punt_gre",
            Shape::PuntGretap => "punt_gretap",
        }
    }

    fn full(self) -> bool {
        matches!(
            self,
            Shape::FullTcp
                | Shape::FullUdp
                | Shape::FullGre
                | Shape::FullGretap
                | Shape::RootPublic
                | Shape::RootGre
                | Shape::RootGretap
                | Shape::CheckGre
                | Shape::CheckGretap
                | Shape::PuntPublic
                | Shape::PuntGre
                | Shape::PuntGretap
        )
    }
}

/// What the port's PMD said to one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// ENOSYS: the port has no flow API.
    NoFlowApi,
    /// ENOTSUP: the NIC does not take this shape; the PMD's message.
    Unsupported(String),
    /// Another refusal (EINVAL, ...), with the PMD's message.
    Refused(String),
}

impl Verdict {
    fn of(result: Result<(), FlowError>) -> Verdict {
        match result {
            Ok(()) => Verdict::Ok,
            Err(e) if e.no_flow_api() => Verdict::NoFlowApi,
            Err(e) if e.unsupported() => Verdict::Unsupported(e.message),
            Err(e) => Verdict::Refused(e.to_string()),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Ok => f.write_str("ok"),
            Verdict::NoFlowApi => f.write_str("no flow API"),
            Verdict::Unsupported(m) => write!(f, "not supported: {m}"),
            Verdict::Refused(m) => write!(f, "refused: {m}"),
        }
    }
}

/// One port's probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortCaps {
    /// DPDK's port id.
    pub port: u16,
    pub name: String,
    pub role: Role,
    pub level: Level,
    pub shapes: Vec<(Shape, Verdict)>,
    /// Whether the port hands marks to software.
    pub marks: bool,
}

impl PortCaps {
    /// Why the port is at its level, for the log: the first refusal that
    /// kept it from the next.
    pub fn reason(&self) -> String {
        let all_no_api = self.shapes.iter().all(|(_, v)| *v == Verdict::NoFlowApi);
        if all_no_api {
            return "no flow API".to_owned();
        }
        let blocking = |full: bool| {
            self.shapes
                .iter()
                .find(|(s, v)| s.full() == full && *s != Shape::DenyDrop && *v != Verdict::Ok)
                .map(|(s, v)| format!("{}: {v}", s.name()))
        };
        match self.level {
            Level::Full => "every shape validates".to_owned(),
            Level::Partial => blocking(true).unwrap_or_default(),
            Level::None => blocking(false).unwrap_or_else(|| {
                "marks are not delivered (rte_eth_rx_metadata_negotiate)".to_owned()
            }),
        }
    }

    /// The log line: `port 0 (public): offload none: no flow API`.
    pub fn summary(&self) -> String {
        format!(
            "port {} ({}): offload {}: {}",
            self.port,
            self.name,
            level_name(self.level),
            self.reason()
        )
    }
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::None => "none",
        Level::Partial => "partial",
        Level::Full => "full",
    }
}

/// Where the probe's rules point: the port itself, the other role's port
/// (where full rules send frames) and a queue of this port; whether
/// the port delivers marks to software (`rte_eth_rx_metadata_negotiate`);
/// and `[offload] outer_df`, which decides the public root rule's shape
/// (with "copy" it matches DF, which mlx5 refuses).
#[derive(Clone, Copy, Debug)]
pub struct ProbeTarget {
    pub port: u16,
    pub role: Role,
    pub other: u16,
    pub queue: u16,
    pub marks: bool,
    pub outer_df: OuterDf,
}

/// Validates every shape of `target`'s role with `validate` and decides
/// the level.
pub fn probe(
    target: ProbeTarget,
    name: &str,
    validate: &mut dyn FnMut(&Rule, u16) -> Result<(), FlowError>,
) -> PortCaps {
    let shapes: Vec<(Shape, Verdict)> = rules(target)
        .into_iter()
        .map(|(shape, rule)| (shape, Verdict::of(validate(&rule, target.port))))
        .collect();
    PortCaps {
        port: target.port,
        name: name.to_owned(),
        role: target.role,
        level: level(&shapes, target.marks),
        shapes,
        marks: target.marks,
    }
}

/// Full if every full shape validates, partial if MARK and QUEUE do and
/// the port delivers `marks` to software (a rule's marks the port does
/// not hand over would spare no lookup).
pub fn level(shapes: &[(Shape, Verdict)], marks: bool) -> Level {
    let ok = |s: Shape| shapes.iter().any(|(t, v)| *t == s && *v == Verdict::Ok);
    let full: Vec<Shape> = shapes
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| s.full())
        .collect();
    if !full.is_empty() && full.iter().all(|&s| ok(s)) {
        Level::Full
    } else if marks && ok(Shape::MarkQueue) {
        Level::Partial
    } else {
        Level::None
    }
}

// Synthetic addresses (RFC 5737's documentation ranges) and ports.
const REMOTE: u32 = 0xc000_0207; // 192.0.2.7
const PUBLIC: u32 = 0xc633_640a; // 198.51.100.10
const PRIVATE: u32 = 0x0a00_0005; // 10.0.0.5
const HOST: u32 = 0xcb00_710b; // 203.0.113.11
const LOCAL: u32 = 0xcb00_7101; // 203.0.113.1
const TENANT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x10, 0];

/// The shapes a port of `target.role` would carry, each as a rule of a
/// synthetic flow.
pub fn rules(target: ProbeTarget) -> Vec<(Shape, Rule)> {
    let mut out = Vec::new();
    let full = |leg: Leg| shapes::full(&leg).expect("the probe's legs have every shape");
    match target.role {
        Role::Public => {
            out.push((Shape::PuntPublic, shapes::public_punt()));
            out.push((Shape::RootPublic, shapes::public_root(target.outer_df)));
            out.push((Shape::FullTcp, full(public_leg(target, IPPROTO_TCP))));
            out.push((Shape::FullUdp, full(public_leg(target, IPPROTO_UDP))));
            let mark = shapes::mark(FlowId::new(0)).expect("flow 0 has a mark");
            let partial = shapes::partial(&public_leg(target, IPPROTO_TCP), mark, target.queue);
            out.push((Shape::MarkQueue, partial.expect("the probe's leg is TCP")));
            let pool = steering::SteeredPool {
                addrs: &[PUBLIC],
                lo: 1024,
                hi: 65535,
            };
            let queue = target.queue;
            if let Some(rule) = steering::snat_rules(&pool, 2, &|_| Some(queue))
                .into_iter()
                .next()
            {
                out.push((Shape::Steering, rule));
            }
            out.push((Shape::DenyDrop, deny_drop(target)));
        }
        Role::Underlay => {
            out.push((Shape::PuntGre, shapes::tunnel_punt(false)));
            out.push((Shape::PuntGretap, shapes::tunnel_punt(true)));
            for (shape, gretap) in [(Shape::RootGre, false), (Shape::RootGretap, true)] {
                let leg = underlay_leg(target, IPPROTO_TCP, gretap);
                let t = leg.tunnel.expect("an underlay leg has a tunnel");
                out.push((shape, shapes::tunnel_root(&t, TENANT_MAC)));
            }
            out.push((Shape::CheckGre, shapes::tunnel_check(false)));
            out.push((Shape::CheckGretap, shapes::tunnel_check(true)));
            out.push((
                Shape::FullGre,
                full(underlay_leg(target, IPPROTO_TCP, false)),
            ));
            out.push((
                Shape::FullGretap,
                full(underlay_leg(target, IPPROTO_UDP, true)),
            ));
            let mark = shapes::mark(FlowId::new(0)).expect("flow 0 has a mark");
            let leg = underlay_leg(target, IPPROTO_TCP, false);
            let partial = shapes::partial(&leg, mark, target.queue);
            out.push((Shape::MarkQueue, partial.expect("the probe's leg is TCP")));
        }
    }
    out
}

/// The per-flow rule shapes a port of `target.role` carries at `level`,
/// one rule of a synthetic flow for each: TCP and UDP, into (public
/// side) or out of (underlay side) GRE and gretap, distinct by
/// [`super::templates::shape_key`]. The template API's tables are made
/// from them, so that a table and the rules it takes come from the same
/// `shapes.rs` code.
pub fn flow_shapes(target: ProbeTarget, level: Level) -> Vec<Rule> {
    let mark = shapes::mark(FlowId::new(0)).expect("flow 0 has a mark");
    let mut out: Vec<Rule> = Vec::new();
    for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
        for gretap in [false, true] {
            let leg = match target.role {
                Role::Public => Leg {
                    encap: tunnel_header(gretap),
                    ..public_leg(target, protocol)
                },
                Role::Underlay => underlay_leg(target, protocol, gretap),
            };
            let rule = match level {
                Level::None => continue,
                Level::Full => shapes::full(&leg),
                Level::Partial => shapes::partial(&leg, mark, target.queue),
            };
            let rule = rule.expect("the synthetic legs have every shape");
            let key = super::templates::shape_key(&rule);
            if !out.iter().any(|r| super::templates::shape_key(r) == key) {
                out.push(rule);
            }
        }
    }
    out
}

/// A deny of TCP to port 22 from 192.0.2.0/24, on the synthetic elastic
/// IP: a drop with a source prefix, a port, and the TCP flags.
fn deny_drop(t: ProbeTarget) -> Rule {
    use dataplane::offload::deny::{DenyMatch, DenyRule, PortMask, Verdict};
    let rule = DenyRule {
        priority: 0,
        verdict: Verdict::Drop {
            rule: Some(dataplane::firewall::RuleId(0)),
        },
        m: DenyMatch {
            dst: PUBLIC,
            proto: IPPROTO_TCP,
            src: dataplane::tenant::Net {
                addr: REMOTE & 0xffff_ff00,
                mask: 0xffff_ff00,
            },
            sport: PortMask::ANY,
            dport: PortMask {
                value: 22,
                mask: u16::MAX,
            },
        },
    };
    super::deny::lower(&rule, t.outer_df)
}

fn public_leg(t: ProbeTarget, protocol: u8) -> Leg {
    Leg {
        in_port: t.port,
        tunnel: None,
        protocol,
        src: (REMOTE, 40000),
        dst: (PUBLIC, 443),
        decap_len: 0,
        set_src: None,
        set_dst: Some((PRIVATE, 443)),
        encap: tunnel_header(true),
        out_port: t.other,
        too_big: false,
    }
}

fn underlay_leg(t: ProbeTarget, protocol: u8, gretap: bool) -> Leg {
    let tunnel = TunnelMatch {
        host: HOST,
        local: LOCAL,
        key: 1000,
        gretap,
    };
    Leg {
        in_port: t.port,
        tunnel: Some(tunnel),
        protocol,
        src: (PRIVATE, 443),
        dst: (REMOTE, 40000),
        decap_len: shapes::decap_len(&tunnel) as u8,
        set_src: Some((PUBLIC, 443)),
        set_dst: None,
        encap: eth_header(),
        out_port: t.other,
        too_big: false,
    }
}

type Header = ArrayVec<u8, { dataplane::tables::MAX_TUNNEL_HEADER }>;

fn eth_header() -> Header {
    let mut h = Header::new();
    h.extend([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    h
}

/// A gretap tunnel's header from LOCAL to HOST, key 1000.
fn tunnel_header(gretap: bool) -> Header {
    let mut h = eth_header();
    h.extend([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0]);
    h.extend(LOCAL.to_be_bytes());
    h.extend(HOST.to_be_bytes());
    h.extend([0x20, 0x00]);
    h.extend(if gretap { [0x65, 0x58] } else { [0x08, 0x00] });
    h.extend(1000u32.to_be_bytes());
    if gretap {
        h.extend(eth_header());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(errno: i32) -> FlowError {
        FlowError {
            op: "rte_flow_validate",
            errno,
            kind: 0,
            message: "said the PMD".to_owned(),
        }
    }

    fn target(role: Role) -> ProbeTarget {
        ProbeTarget {
            port: 0,
            role,
            other: 1,
            queue: 0,
            marks: true,
            outer_df: OuterDf::Copy,
        }
    }

    #[test]
    fn no_flow_api_is_level_none_and_says_so() {
        let caps = probe(target(Role::Public), "pub0", &mut |_, _| {
            Err(error(nix::errno::Errno::ENOSYS as i32))
        });
        assert_eq!(caps.level, Level::None);
        assert_eq!(caps.shapes.len(), 7);
        assert!(caps
            .shapes
            .iter()
            .all(|(_, v)| v.to_string() == "no flow API"));
        assert_eq!(caps.summary(), "port 0 (pub0): offload none: no flow API");
    }

    #[test]
    fn every_full_shape_is_full_and_mark_queue_is_partial() {
        let caps = probe(target(Role::Underlay), "und0", &mut |_, _| Ok(()));
        assert_eq!(caps.level, Level::Full);
        // A NIC without rewrite: the full shapes refused, MARK and QUEUE taken.
        let mut validate = |r: &Rule, _: u16| {
            if r.attr.transfer {
                Err(error(nix::errno::Errno::ENOTSUP as i32))
            } else {
                Ok(())
            }
        };
        let caps = probe(target(Role::Public), "pub0", &mut validate);
        assert_eq!(caps.level, Level::Partial);
        assert_eq!(
            caps.summary(),
            "port 0 (pub0): offload partial: punt_public: not supported: said the PMD"
        );
        // One full shape missing is not full.
        let mut validate = |r: &Rule, _: u16| {
            let udp = r
                .pattern
                .iter()
                .any(|i| matches!(i, rte::flow::Item::Udp { .. }));
            if r.attr.transfer && udp {
                Err(error(nix::errno::Errno::EINVAL as i32))
            } else {
                Ok(())
            }
        };
        let caps = probe(target(Role::Underlay), "und0", &mut validate);
        assert_eq!(caps.level, Level::Partial);
        assert!(
            caps.reason().starts_with("full_gretap: refused: "),
            "{}",
            caps.reason()
        );
    }

    /// Full rules: the root ones jump to the flows' group, the per-flow
    /// ones there leave by the other port.
    #[test]
    fn full_shapes_jump_from_the_root_or_leave_by_the_other_port() {
        for role in [Role::Public, Role::Underlay] {
            let mut roots = 0;
            for (shape, rule) in rules(target(role)) {
                let root = matches!(
                    shape,
                    Shape::RootPublic | Shape::RootGre | Shape::RootGretap
                );
                roots += usize::from(root);
                let punt = matches!(
                    shape,
                    Shape::PuntPublic | Shape::PuntGre | Shape::PuntGretap
                );
                if punt {
                    assert_eq!(rule.attr.group, shapes::ROOT_GROUP, "{shape:?}");
                    assert_eq!(rule.attr.priority, shapes::PUNT_PRIORITY, "{shape:?}");
                    assert_eq!(
                        rule.actions,
                        [rte::flow::Action::Jump(shapes::PUNT_GROUP)],
                        "{shape:?}"
                    );
                } else if root {
                    assert!(rule.attr.priority > shapes::PUNT_PRIORITY, "{shape:?}");
                    assert_eq!(rule.attr.group, shapes::ROOT_GROUP, "{shape:?}");
                    // A tunnel's root goes through its integrity check.
                    let next = if shape == Shape::RootPublic {
                        shapes::FLOW_GROUP
                    } else {
                        shapes::CHECK_GROUP
                    };
                    assert_eq!(rule.actions, [rte::flow::Action::Jump(next)], "{shape:?}");
                } else if matches!(shape, Shape::CheckGre | Shape::CheckGretap) {
                    assert_eq!(rule.attr.group, shapes::CHECK_GROUP, "{shape:?}");
                    assert_eq!(
                        rule.actions,
                        [rte::flow::Action::Jump(shapes::FLOW_GROUP)],
                        "{shape:?}"
                    );
                } else if shape.full() {
                    assert_eq!(rule.attr.group, shapes::FLOW_GROUP, "{shape:?}");
                    assert_eq!(
                        rule.actions.last(),
                        Some(&rte::flow::Action::RepresentedPort(1)),
                        "{shape:?}"
                    );
                }
            }
            assert!(roots > 0, "{role:?}");
        }
    }

    /// mlx5 (22.11, `flow_dv_validate_item_ipv4`) refuses a non-zero
    /// `fragment_offset` spec: the probe validates the public root rule of
    /// the `outer_df` in force, so the public port is partial with "copy"
    /// (the DF match) and full with "set".
    #[test]
    fn the_probe_validates_the_public_root_of_the_outer_df_in_force() {
        let mut like_mlx5 = |r: &Rule, _: u16| {
            let df_match = r.pattern.iter().any(|i| {
                matches!(i, rte::flow::Item::Ipv4 { fragment_offset: Some(m), .. } if m.spec & m.mask != 0)
            });
            if df_match {
                Err(error(nix::errno::Errno::ENOTSUP as i32))
            } else {
                Ok(())
            }
        };
        let copy = probe(target(Role::Public), "pub0", &mut like_mlx5);
        assert_eq!(copy.level, Level::Partial);
        assert_eq!(
            copy.reason(),
            "root_public: not supported: said the PMD",
            "{copy:?}"
        );
        let set = ProbeTarget {
            outer_df: OuterDf::Set,
            ..target(Role::Public)
        };
        let set = probe(set, "pub0", &mut like_mlx5);
        assert_eq!(set.level, Level::Full, "{set:?}");
        // The underlay port's shapes do not depend on it.
        let und = probe(target(Role::Underlay), "und0", &mut like_mlx5);
        assert_eq!(und.level, Level::Full, "{und:?}");
    }

    /// A NIC that cannot match the TTL takes no punt rule: a flow's rule
    /// would then send on packets whose TTL expires, so the port is not
    /// full (partial here, its MARK and QUEUE taken).
    #[test]
    fn a_port_that_refuses_the_punt_is_not_full() {
        let mut no_ttl = |r: &Rule, _: u16| {
            let ttl = r
                .pattern
                .iter()
                .any(|i| matches!(i, rte::flow::Item::Ipv4 { ttl: Some(_), .. }));
            if ttl {
                Err(error(nix::errno::Errno::ENOTSUP as i32))
            } else {
                Ok(())
            }
        };
        let public = probe(target(Role::Public), "pub0", &mut no_ttl);
        assert_eq!(public.level, Level::Partial);
        assert_eq!(public.reason(), "punt_public: not supported: said the PMD");
        let underlay = probe(target(Role::Underlay), "und0", &mut no_ttl);
        assert_eq!(underlay.level, Level::Partial);
        assert_eq!(underlay.reason(), "punt_gre: not supported: said the PMD");
    }

    /// A NIC without the integrity item (mlx5 before ConnectX-6 Dx,
    /// "packet integrity integrity_item not supported") takes no root
    /// rule of the public port and no tunnel's integrity check: a flow's
    /// rule would then repair a damaged IPv4 header where software drops
    /// it, so the port is not full (partial here, its MARK and QUEUE
    /// taken). The flows' rules themselves carry no integrity item.
    #[test]
    fn a_port_that_refuses_the_integrity_item_is_not_full() {
        let integrity = |r: &Rule| {
            r.pattern
                .iter()
                .any(|i| matches!(i, rte::flow::Item::Integrity { .. }))
        };
        let mut no_integrity = |r: &Rule, _: u16| {
            if integrity(r) {
                Err(error(nix::errno::Errno::ENOTSUP as i32))
            } else {
                Ok(())
            }
        };
        let public = probe(target(Role::Public), "pub0", &mut no_integrity);
        assert_eq!(public.level, Level::Partial);
        assert_eq!(public.reason(), "root_public: not supported: said the PMD");
        let underlay = probe(target(Role::Underlay), "und0", &mut no_integrity);
        assert_eq!(underlay.level, Level::Partial);
        assert_eq!(underlay.reason(), "check_gre: not supported: said the PMD");
        for role in [Role::Public, Role::Underlay] {
            let with: Vec<Shape> = rules(target(role))
                .into_iter()
                .filter(|(_, r)| integrity(r))
                .map(|(s, _)| s)
                .collect();
            let expected: &[Shape] = match role {
                Role::Public => &[Shape::RootPublic, Shape::DenyDrop],
                Role::Underlay => &[Shape::CheckGre, Shape::CheckGretap],
            };
            assert_eq!(with, expected, "{role:?}");
        }
    }

    /// A port that does not hand marks to software
    /// (`rte_eth_rx_metadata_negotiate` refused) cannot be partial, even
    /// if its PMD takes MARK and QUEUE rules; full needs no marks.
    #[test]
    fn a_port_without_marks_is_not_partial() {
        let no_marks = ProbeTarget {
            marks: false,
            ..target(Role::Public)
        };
        let mut no_rewrite = |r: &Rule, _: u16| {
            if r.attr.transfer {
                Err(error(nix::errno::Errno::ENOTSUP as i32))
            } else {
                Ok(())
            }
        };
        let caps = probe(no_marks, "pub0", &mut no_rewrite);
        assert_eq!(caps.level, Level::None);
        assert_eq!(
            caps.reason(),
            "marks are not delivered (rte_eth_rx_metadata_negotiate)"
        );
        assert_eq!(
            probe(target(Role::Public), "pub0", &mut no_rewrite).level,
            Level::Partial
        );
        assert_eq!(
            probe(no_marks, "pub0", &mut |_, _| Ok(())).level,
            Level::Full
        );
    }
}
