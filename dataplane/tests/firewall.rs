//! The firewall's rules: order, defaults, the edges of every match, the
//! reference scenario's policies, and random rule sets against a plain
//! reading of the specs.

use std::net::Ipv4Addr;

use dataplane::firewall::{
    Action, Decision, Direction, FirewallError, FirewallSpec, Packet5, PortRange, ProtoMatch, Rule,
    RuleCounters, RuleId, RuleSpec, Rules, ANY_PREFIX,
};
use dataplane::lpm::testgen::XorShift64;
use dataplane::tenant::TenantId;

use Action::{Allow, Deny};
use Direction::{In, Out};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn tcp(dport: PortRange) -> ProtoMatch {
    ProtoMatch::Tcp {
        sport: PortRange::ANY,
        dport,
    }
}

fn rule(direction: Direction, action: Action, proto: ProtoMatch) -> RuleSpec {
    RuleSpec::new(direction, action, proto)
}

/// Several tenants' rules, as the tables hold them (each tenant its own
/// [`Rules`]), with counter slots numbered in order over all tenants, as
/// `Tables::build` numbers them.
#[derive(Debug, PartialEq)]
struct Firewall {
    tenants: Vec<Rules>,
}

impl Firewall {
    fn build<'a>(
        specs: impl IntoIterator<Item = &'a FirewallSpec>,
    ) -> Result<Firewall, FirewallError> {
        let mut next = 0u32;
        let mut tenants = Vec::new();
        for (t, spec) in specs.into_iter().enumerate() {
            tenants.push(Rules::build(TenantId(t as u32), spec, |_, _| {
                next += 1;
                RuleId(next - 1)
            })?);
        }
        Ok(Firewall { tenants })
    }

    fn evaluate(&self, tenant: TenantId, dir: Direction, p: &Packet5) -> Decision {
        match self.tenants.get(tenant.index()) {
            Some(r) => r.evaluate(dir, p),
            None => decided(Deny, None),
        }
    }

    fn rules(&self) -> Vec<&Rule> {
        self.tenants.iter().flat_map(|t| &t.rules).collect()
    }

    fn tenants(&self) -> usize {
        self.tenants.len()
    }

    /// The counter slots of `tenant`'s rules.
    fn ids(&self, tenant: TenantId) -> std::ops::Range<u32> {
        match self.tenants.get(tenant.index()) {
            Some(t) if !t.rules.is_empty() => {
                t.rules[0].counter.0..t.rules[t.rules.len() - 1].counter.0 + 1
            }
            Some(_) => {
                let before = self.tenants[..tenant.index()]
                    .iter()
                    .map(|t| t.rules.len() as u32)
                    .sum();
                before..before
            }
            None => 0..0,
        }
    }

    fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.tenants
            .iter()
            .flat_map(|t| &t.rules)
            .find(|r| r.counter == id)
    }
}

fn one(spec: FirewallSpec) -> Firewall {
    Firewall::build([&spec]).expect("firewall")
}

fn eval(fw: &Firewall, dir: Direction, p: Packet5) -> Decision {
    fw.evaluate(TenantId(0), dir, &p)
}

fn decided(action: Action, rule: Option<u32>) -> Decision {
    Decision {
        action,
        rule: rule.map(RuleId),
    }
}

const A: &str = "1.1.1.7";
const B: &str = "10.0.0.7";

#[test]
fn first_match_wins_and_counts_the_rule() {
    let fw = one(FirewallSpec {
        rules: vec![
            rule(In, Deny, tcp(PortRange::one(22))),
            rule(In, Allow, tcp(PortRange::ANY)),
            rule(In, Deny, tcp(PortRange::ANY)),
        ],
        ..FirewallSpec::default()
    });
    let p = |port| Packet5::tcp(ip(A), ip(B), 40000, port);
    assert_eq!(eval(&fw, In, p(22)), decided(Deny, Some(0)));
    assert_eq!(eval(&fw, In, p(23)), decided(Allow, Some(1)));
    // Rule 2 is shadowed.
    assert!((0..=u16::MAX).all(|port| eval(&fw, In, p(port)).rule != Some(RuleId(2))));
}

#[test]
fn defaults_decide_when_no_rule_matches() {
    let fw = one(FirewallSpec::default());
    let p = Packet5::udp(ip(A), ip(B), 53, 53);
    assert_eq!(eval(&fw, In, p), decided(Deny, None));
    assert_eq!(eval(&fw, Out, p), decided(Allow, None));
    let fw = one(FirewallSpec::allow_all());
    assert_eq!(eval(&fw, In, p), decided(Allow, None));
    let fw = one(FirewallSpec {
        rules: vec![],
        default_in: Allow,
        default_out: Deny,
    });
    assert_eq!(eval(&fw, In, p), decided(Allow, None));
    assert_eq!(eval(&fw, Out, p), decided(Deny, None));
    // An unknown tenant is denied.
    assert_eq!(fw.evaluate(TenantId(1), In, &p), decided(Deny, None));
}

#[test]
fn rules_apply_to_their_direction_only() {
    let fw = one(FirewallSpec {
        rules: vec![
            rule(Out, Deny, ProtoMatch::Any),
            rule(In, Allow, ProtoMatch::Any),
        ],
        ..FirewallSpec::default()
    });
    let p = Packet5::tcp(ip(A), ip(B), 1, 2);
    assert_eq!(eval(&fw, In, p), decided(Allow, Some(1)));
    assert_eq!(eval(&fw, Out, p), decided(Deny, Some(0)));
}

#[test]
fn port_ranges_at_their_edges() {
    let range = |lo, hi| PortRange::new(lo, hi).expect("range");
    assert_eq!(PortRange::new(2, 1), None);
    assert_eq!(range(7, 7), PortRange::one(7));
    let cases: &[(PortRange, &[u16], &[u16])] = &[
        (range(0, 0), &[0], &[1, 65535]),
        (range(65535, 65535), &[65535], &[0, 65534]),
        (range(1024, 65535), &[1024, 30000, 65535], &[0, 1023]),
        (range(0, 1023), &[0, 1023], &[1024, 65535]),
        (range(22, 22), &[22], &[21, 23]),
        (PortRange::ANY, &[0, 1, 65535], &[]),
    ];
    for &(r, inside, outside) in cases {
        for (proto, make) in [
            (
                ProtoMatch::Tcp {
                    sport: PortRange::ANY,
                    dport: r,
                },
                Packet5::tcp as fn(Ipv4Addr, Ipv4Addr, u16, u16) -> Packet5,
            ),
            (
                ProtoMatch::Udp {
                    sport: PortRange::ANY,
                    dport: r,
                },
                Packet5::udp,
            ),
        ] {
            let fw = one(FirewallSpec {
                rules: vec![rule(In, Allow, proto)],
                ..FirewallSpec::default()
            });
            for &port in inside {
                assert!(
                    eval(&fw, In, make(ip(A), ip(B), 9, port)).allowed(),
                    "{r:?} {port}"
                );
            }
            for &port in outside {
                assert!(
                    !eval(&fw, In, make(ip(A), ip(B), 9, port)).allowed(),
                    "{r:?} {port}"
                );
            }
        }
        // The same range on the source port.
        let fw = one(FirewallSpec {
            rules: vec![rule(
                In,
                Allow,
                ProtoMatch::Tcp {
                    sport: r,
                    dport: PortRange::ANY,
                },
            )],
            ..FirewallSpec::default()
        });
        for &port in inside {
            assert!(eval(&fw, In, Packet5::tcp(ip(A), ip(B), port, 9)).allowed());
        }
        for &port in outside {
            assert!(!eval(&fw, In, Packet5::tcp(ip(A), ip(B), port, 9)).allowed());
        }
    }
}

#[test]
fn tcp_rules_do_not_match_udp_and_the_reverse() {
    let fw = one(FirewallSpec {
        rules: vec![rule(In, Allow, tcp(PortRange::one(53)))],
        ..FirewallSpec::default()
    });
    assert!(eval(&fw, In, Packet5::tcp(ip(A), ip(B), 1, 53)).allowed());
    assert!(!eval(&fw, In, Packet5::udp(ip(A), ip(B), 1, 53)).allowed());
    assert!(!eval(&fw, In, Packet5::other(132, ip(A), ip(B))).allowed());
}

#[test]
fn prefixes_from_everything_to_one_address() {
    let fw = one(FirewallSpec {
        rules: vec![
            RuleSpec {
                src: (ip("1.1.1.7"), 32),
                ..rule(In, Deny, ProtoMatch::Any)
            },
            RuleSpec {
                dst: (ip("10.0.0.7"), 32),
                ..rule(In, Allow, ProtoMatch::Any)
            },
            RuleSpec {
                src: (ip("0.0.0.0"), 0),
                dst: (ip("10.0.0.0"), 24),
                ..rule(In, Deny, ProtoMatch::Any)
            },
            RuleSpec {
                src: (ip("200.0.0.0"), 8),
                ..rule(In, Allow, ProtoMatch::Any)
            },
        ],
        ..FirewallSpec::default()
    });
    let p = |s: &str, d: &str| Packet5::udp(ip(s), ip(d), 1, 2);
    assert_eq!(
        eval(&fw, In, p("1.1.1.7", "10.0.0.7")),
        decided(Deny, Some(0))
    );
    assert_eq!(
        eval(&fw, In, p("1.1.1.6", "10.0.0.7")),
        decided(Allow, Some(1))
    );
    assert_eq!(
        eval(&fw, In, p("1.1.1.8", "10.0.0.8")),
        decided(Deny, Some(2))
    );
    assert_eq!(eval(&fw, In, p("1.1.1.8", "10.0.1.8")), decided(Deny, None));
    assert_eq!(
        eval(&fw, In, p("200.255.255.255", "10.0.1.8")),
        decided(Allow, Some(3))
    );
    assert_eq!(
        eval(&fw, In, p("201.0.0.0", "10.0.1.8")),
        decided(Deny, None)
    );
    // /0 covers the extremes, /32 only itself.
    for s in ["0.0.0.0", "255.255.255.255"] {
        assert_eq!(eval(&fw, In, p(s, "10.0.0.255")), decided(Deny, Some(2)));
    }
    // Host bits of a prefix are ignored, as the tables do.
    let fw = one(FirewallSpec {
        rules: vec![RuleSpec {
            dst: (ip("10.0.0.7"), 24),
            ..rule(In, Allow, ProtoMatch::Any)
        }],
        ..FirewallSpec::default()
    });
    assert!(eval(&fw, In, p("1.1.1.1", "10.0.0.200")).allowed());
}

#[test]
fn icmp_types_and_codes() {
    let icmp = |icmp_type, code| ProtoMatch::Icmp { icmp_type, code };
    let fw = one(FirewallSpec {
        rules: vec![
            rule(In, Allow, icmp(Some(8), Some(0))),
            rule(In, Deny, icmp(Some(3), Some(4))),
            rule(In, Allow, icmp(Some(3), None)),
            rule(In, Allow, icmp(Some(255), None)),
        ],
        ..FirewallSpec::default()
    });
    let p = |t, c| Packet5::icmp(ip(A), ip(B), t, c);
    assert_eq!(eval(&fw, In, p(8, 0)), decided(Allow, Some(0)));
    assert_eq!(eval(&fw, In, p(8, 1)), decided(Deny, None));
    assert_eq!(eval(&fw, In, p(3, 4)), decided(Deny, Some(1)));
    for code in [0, 3, 5, 255] {
        assert_eq!(eval(&fw, In, p(3, code)), decided(Allow, Some(2)));
    }
    assert_eq!(eval(&fw, In, p(255, 255)), decided(Allow, Some(3)));
    assert_eq!(eval(&fw, In, p(0, 0)), decided(Deny, None));
    assert_eq!(eval(&fw, In, p(2, 255)), decided(Deny, None));
    assert_eq!(eval(&fw, In, p(4, 0)), decided(Deny, None));
    // A TCP packet whose port spells 8 << 8 is not ICMP.
    assert_eq!(
        eval(&fw, In, Packet5::tcp(ip(A), ip(B), 0, 8 << 8)),
        decided(Deny, None)
    );
    // Every type.
    let fw = one(FirewallSpec {
        rules: vec![rule(In, Allow, icmp(None, None))],
        ..FirewallSpec::default()
    });
    assert!((0..=255).all(|t| eval(&fw, In, p(t, 255 - t)).allowed()));
    assert!(!eval(&fw, In, Packet5::udp(ip(A), ip(B), 0, 0)).allowed());
    // A code alone is refused.
    assert_eq!(
        Firewall::build([&FirewallSpec {
            rules: vec![rule(In, Allow, icmp(None, Some(0)))],
            ..FirewallSpec::default()
        }]),
        Err(FirewallError::CodeWithoutType {
            tenant: TenantId(0),
            position: 0
        })
    );
}

#[test]
fn any_protocol_and_protocol_numbers() {
    let fw = one(FirewallSpec {
        rules: vec![
            rule(In, Allow, ProtoMatch::Number(47)),
            rule(In, Deny, ProtoMatch::Number(6)),
            rule(In, Allow, ProtoMatch::Any),
        ],
        ..FirewallSpec::default()
    });
    assert_eq!(
        eval(&fw, In, Packet5::other(47, ip(A), ip(B))),
        decided(Allow, Some(0))
    );
    // 6 is TCP, every port.
    for port in [0, 22, 65535] {
        assert_eq!(
            eval(&fw, In, Packet5::tcp(ip(A), ip(B), port, port)),
            decided(Deny, Some(1))
        );
    }
    for p in [
        Packet5::udp(ip(A), ip(B), 1, 2),
        Packet5::icmp(ip(A), ip(B), 8, 0),
        Packet5::other(0, ip(A), ip(B)),
        Packet5::other(255, ip(A), ip(B)),
    ] {
        assert_eq!(eval(&fw, In, p), decided(Allow, Some(2)));
    }
}

#[test]
fn prefix_lengths_above_32_are_refused() {
    let bad = FirewallSpec {
        rules: vec![
            rule(In, Allow, ProtoMatch::Any),
            RuleSpec {
                dst: (ip("10.0.0.7"), 33),
                ..rule(In, Allow, ProtoMatch::Any)
            },
        ],
        ..FirewallSpec::default()
    };
    assert_eq!(
        Firewall::build([&FirewallSpec::default(), &bad]).err(),
        Some(FirewallError::PrefixLenTooLong {
            tenant: TenantId(1),
            position: 1,
            len: 33
        })
    );
}

#[test]
fn counter_slots_are_the_ones_given() {
    let spec = |n: usize| FirewallSpec {
        rules: vec![rule(Out, Deny, ProtoMatch::Any); n],
        ..FirewallSpec::default()
    };
    let specs = [spec(3), spec(0), spec(2)];
    let fw = Firewall::build(&specs).expect("firewall");
    assert_eq!(fw.rules().len(), 5);
    assert_eq!(fw.tenants(), 3);
    assert_eq!(
        [0, 1, 2, 3].map(|t| fw.ids(TenantId(t))),
        [0..3, 3..3, 3..5, 0..0]
    );
    for t in 0..3 {
        for id in fw.ids(TenantId(t)) {
            let r = fw.rule(RuleId(id)).expect("rule");
            assert_eq!(r.tenant, TenantId(t));
            assert_eq!(r.position, id - fw.ids(TenantId(t)).start);
        }
    }
    let p = Packet5::udp(ip(B), ip(A), 1, 2);
    assert_eq!(fw.evaluate(TenantId(0), Out, &p).rule, Some(RuleId(0)));
    assert_eq!(fw.evaluate(TenantId(1), Out, &p).rule, None);
    assert_eq!(fw.evaluate(TenantId(2), Out, &p).rule, Some(RuleId(3)));
}

/// The reference scenario: each tenant lets in its own TCP port and ICMP,
/// and may not open that port toward the Internet.
fn reference(port: u16) -> FirewallSpec {
    FirewallSpec {
        rules: vec![
            rule(In, Allow, tcp(PortRange::one(port))),
            rule(
                In,
                Allow,
                ProtoMatch::Icmp {
                    icmp_type: None,
                    code: None,
                },
            ),
            rule(Out, Deny, tcp(PortRange::one(port))),
        ],
        default_in: Deny,
        default_out: Allow,
    }
}

#[test]
fn the_reference_scenario() {
    let fw = Firewall::build(&[reference(22), reference(23)]).expect("firewall");
    let (t1, t2) = (TenantId(0), TenantId(1));
    let client = ip("1.1.1.7");
    // Both tenants' host is 10.0.0.7: inbound after DNAT, outbound before SNAT.
    let vm = ip("10.0.0.7");
    let inbound = |port| Packet5::tcp(client, vm, 40000, port);
    let outbound = |port| Packet5::tcp(vm, client, 40000, port);
    let ping = Packet5::icmp(client, vm, 8, 0);
    for (t, own, other, first) in [(t1, 22, 23, 0), (t2, 23, 22, 3)] {
        // The client reaches the tenant's port (2.2.2.11:22 is 10.0.0.7:22).
        assert_eq!(
            fw.evaluate(t, In, &inbound(own)),
            decided(Allow, Some(first))
        );
        assert_eq!(fw.evaluate(t, In, &inbound(other)), decided(Deny, None));
        assert_eq!(fw.evaluate(t, In, &ping), decided(Allow, Some(first + 1)));
        // The tenant cannot open its own port to the client, can the other.
        assert_eq!(
            fw.evaluate(t, Out, &outbound(own)),
            decided(Deny, Some(first + 2))
        );
        assert_eq!(fw.evaluate(t, Out, &outbound(other)), decided(Allow, None));
        assert_eq!(fw.evaluate(t, Out, &ping), decided(Allow, None));
        assert!(!fw
            .evaluate(t, In, &Packet5::udp(client, vm, 1, own))
            .allowed());
    }
}

// ------------------------------------------------- randomized vs reference

/// The spec read literally, field by field, with no compiled form.
fn reference_eval(spec: &FirewallSpec, dir: Direction, p: &Packet5) -> (Action, Option<usize>) {
    fn within((addr, len): (Ipv4Addr, u8), ip: u32) -> bool {
        // Compare the first `len` bits one by one.
        let a = u32::from(addr);
        (0..u32::from(len)).all(|bit| (a >> (31 - bit)) & 1 == (ip >> (31 - bit)) & 1)
    }
    let [icmp_type, icmp_code] = p.dport.to_be_bytes();
    for (i, r) in spec.rules.iter().enumerate() {
        let proto = match r.proto {
            ProtoMatch::Any => true,
            ProtoMatch::Number(n) => n == p.proto,
            ProtoMatch::Tcp { sport, dport } | ProtoMatch::Udp { sport, dport } => {
                let n = if matches!(r.proto, ProtoMatch::Tcp { .. }) {
                    6
                } else {
                    17
                };
                n == p.proto
                    && (sport.lo()..=sport.hi()).contains(&p.sport)
                    && (dport.lo()..=dport.hi()).contains(&p.dport)
            }
            ProtoMatch::Icmp {
                icmp_type: t,
                code: c,
            } => {
                let type_ok = match t {
                    None => true,
                    Some(t) => t == icmp_type,
                };
                let code_ok = match c {
                    None => true,
                    Some(c) => c == icmp_code,
                };
                p.proto == 1 && type_ok && code_ok
            }
        };
        if r.direction == dir && proto && within(r.src, p.src) && within(r.dst, p.dst) {
            return (r.action, Some(i));
        }
    }
    (spec.default_for(dir), None)
}

/// Values near the edges more often than not, so that rules and packets
/// meet.
fn port(rng: &mut XorShift64) -> u16 {
    match rng.below(6) {
        0 => 0,
        1 => u16::MAX,
        2 => 22,
        3 => 23 + rng.below(3) as u16,
        _ => rng.next_u64() as u16,
    }
}

fn range(rng: &mut XorShift64) -> PortRange {
    if rng.below(3) == 0 {
        return PortRange::ANY;
    }
    let (a, b) = (port(rng), port(rng));
    PortRange::new(a.min(b), a.max(b)).expect("ordered")
}

fn addr(rng: &mut XorShift64) -> u32 {
    // A few /24s, so that prefixes and packets overlap.
    let nets = [0x0a00_0000u32, 0x0101_0100, 0xc8c8_c800, 0xffff_ff00, 0];
    nets[rng.below(5) as usize] | (rng.below(4) * 63)
}

fn prefix(rng: &mut XorShift64) -> (Ipv4Addr, u8) {
    let len = match rng.below(4) {
        0 => 0,
        1 => 32,
        _ => rng.below(33) as u8,
    };
    (Ipv4Addr::from(addr(rng)), len)
}

fn random_rule(rng: &mut XorShift64) -> RuleSpec {
    let small = |rng: &mut XorShift64| [0u8, 3, 8, 11, 255][rng.below(5) as usize];
    let proto = match rng.below(6) {
        0 => ProtoMatch::Any,
        1 => ProtoMatch::Tcp {
            sport: range(rng),
            dport: range(rng),
        },
        2 => ProtoMatch::Udp {
            sport: range(rng),
            dport: range(rng),
        },
        3 => {
            let icmp_type = (rng.below(3) != 0).then(|| small(rng));
            let code = icmp_type.and((rng.below(2) == 0).then(|| small(rng)));
            ProtoMatch::Icmp { icmp_type, code }
        }
        4 => ProtoMatch::Number([1u8, 6, 17, 47, 0, 255][rng.below(6) as usize]),
        _ => ProtoMatch::Tcp {
            sport: PortRange::ANY,
            dport: range(rng),
        },
    };
    RuleSpec {
        direction: if rng.below(2) == 0 { In } else { Out },
        action: if rng.below(2) == 0 { Allow } else { Deny },
        proto,
        src: if rng.below(2) == 0 {
            ANY_PREFIX
        } else {
            prefix(rng)
        },
        dst: if rng.below(2) == 0 {
            ANY_PREFIX
        } else {
            prefix(rng)
        },
    }
}

fn random_packet(rng: &mut XorShift64) -> Packet5 {
    let (src, dst) = (addr(rng), addr(rng));
    let small = |rng: &mut XorShift64| [0u8, 3, 8, 11, 255, 4][rng.below(6) as usize];
    match rng.below(5) {
        0 | 1 => Packet5::tcp(src, dst, port(rng), port(rng)),
        2 => Packet5::udp(src, dst, port(rng), port(rng)),
        3 => Packet5::icmp(src, dst, small(rng), small(rng)),
        _ => Packet5::other([0u8, 47, 50, 255][rng.below(4) as usize], src, dst),
    }
}

#[test]
fn random_rule_sets_agree_with_a_plain_reading() {
    let mut rng = XorShift64::new(0x5eed_f12e);
    let action = |rng: &mut XorShift64| if rng.below(2) == 0 { Allow } else { Deny };
    let mut matched = 0u32;
    for _ in 0..300 {
        let tenants: Vec<FirewallSpec> = (0..1 + rng.below(4))
            .map(|_| FirewallSpec {
                rules: (0..rng.below(12)).map(|_| random_rule(&mut rng)).collect(),
                default_in: action(&mut rng),
                default_out: action(&mut rng),
            })
            .collect();
        let fw = Firewall::build(&tenants).expect("firewall");
        for _ in 0..200 {
            let t = rng.below(tenants.len() as u32) as usize;
            let dir = if rng.below(2) == 0 { In } else { Out };
            let p = random_packet(&mut rng);
            let got = fw.evaluate(TenantId(t as u32), dir, &p);
            let (action, position) = reference_eval(&tenants[t], dir, &p);
            let first = fw.ids(TenantId(t as u32)).start;
            assert_eq!(
                got,
                Decision {
                    action,
                    rule: position.map(|i| RuleId(first + i as u32)),
                },
                "tenant {t} {dir:?} {p:?} rules {:#?}",
                tenants[t]
            );
            matched += u32::from(position.is_some());
        }
    }
    // The generator makes rules that match often enough to mean something.
    assert!(matched > 10_000, "only {matched} matches");
}

#[test]
fn counters_per_rule_and_per_default() {
    let fw = Firewall::build(&[reference(22), reference(23)]).expect("firewall");
    let counters = RuleCounters::new(fw.rules().len(), 2);
    let (client, vm) = (ip("1.1.1.7"), ip("10.0.0.7"));
    let flows = [
        (TenantId(0), In, Packet5::tcp(client, vm, 1, 22)),
        (TenantId(0), In, Packet5::tcp(client, vm, 2, 22)),
        (TenantId(0), In, Packet5::tcp(client, vm, 2, 23)),
        (TenantId(1), Out, Packet5::tcp(vm, client, 2, 23)),
        (TenantId(1), Out, Packet5::udp(vm, client, 2, 23)),
        (TenantId(1), In, Packet5::icmp(client, vm, 8, 0)),
    ];
    for (t, dir, p) in flows {
        counters.count(t, dir, fw.evaluate(t, dir, &p));
    }
    let hits: Vec<u64> = (0..6).map(|i| counters.rule(RuleId(i))).collect();
    assert_eq!(hits, [2, 0, 0, 0, 1, 1]);
    assert_eq!(counters.default_policy(TenantId(0), In), 1);
    assert_eq!(counters.default_policy(TenantId(1), Out), 1);
    assert_eq!(counters.default_policy(TenantId(1), In), 0);
    // Past the end: not counted, no panic.
    let small = RuleCounters::new(1, 1);
    small.count(TenantId(1), In, fw.evaluate(TenantId(1), In, &flows[5].2));
    small.count(TenantId(5), In, decided(Deny, None));
    assert_eq!(small.rule(RuleId(4)), 0);
}

#[test]
fn rules_display_in_the_configuration_words() {
    let fw = one(FirewallSpec {
        rules: vec![
            rule(In, Allow, tcp(PortRange::one(22))),
            RuleSpec {
                src: (ip("1.1.1.0"), 24),
                dst: (ip("10.0.0.7"), 32),
                ..rule(
                    Out,
                    Deny,
                    ProtoMatch::Udp {
                        sport: PortRange::new(1024, 65535).expect("range"),
                        dport: PortRange::ANY,
                    },
                )
            },
            rule(
                In,
                Allow,
                ProtoMatch::Icmp {
                    icmp_type: Some(8),
                    code: Some(0),
                },
            ),
            rule(
                In,
                Allow,
                ProtoMatch::Icmp {
                    icmp_type: Some(3),
                    code: None,
                },
            ),
            rule(In, Allow, ProtoMatch::Number(47)),
            rule(Out, Allow, ProtoMatch::Any),
        ],
        ..FirewallSpec::default()
    });
    let shown: Vec<String> = fw.rules().iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "in allow tcp dport 22",
            "out deny udp src 1.1.1.0/24 dst 10.0.0.7/32 sport 1024-65535",
            "in allow icmp type 8 code 0",
            "in allow icmp type 3",
            "in allow proto 47",
            "out allow any",
        ]
    );
}
