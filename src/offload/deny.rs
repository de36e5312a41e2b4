//! Firewall deny rules on the NIC (docs/offload.md, "Deny rules on the
//! NIC"): each tenant's plan (`dataplane::offload::deny`: the exact deny
//! regions on its elastic IPs, and passes for earlier rules that overlap
//! them) lowered to transfer rules in the full public ports' root group,
//! in front of the port's root rule, which they share its header checks
//! with.
//!
//! Installed after the tables that make them are published (at the
//! plane's tick, when the generation moves) and taken down before tables
//! that could unmake them are ([`DenyRules::before_publish`], called by
//! the handler between building a snapshot and publishing it): a NIC drop
//! is never in force under tables whose software would not drop the same
//! packets. Each drop has a COUNT, read every query interval and added to
//! its rule's count (or the tenant's inbound default's), since the
//! packets it drops never reach a worker.

use std::collections::{BTreeMap, HashMap};

use ctl::config::OuterDf;
use dataplane::offload::deny::{self, Bounds, DenyRule, NotPushed, PortMask, Reason, Verdict};
use dataplane::tables::Tables;
use dataplane::tenant::TenantId;
use rte::flow::{Action, Attr, Item, Masked, Rule};
use serde_json::{json, Value};
use tracing::warn;

use super::root::Create;
use super::shapes::{
    self, DENY_FIRST_PRIORITY, ETHER_TYPE_IPV4, FLOW_GROUP, PUBLIC_ROOT_PRIORITY, ROOT_GROUP,
};
use super::statics::Handle;

/// TCP's SYN, and the flags conntrack looks at to say a segment opens a
/// connection (SYN without ACK, RST or FIN).
const TCP_SYN: u8 = 0x02;
const TCP_OPENS_MASK: u8 = 0x17;

/// `rule` as a transfer rule in the root group of a public port: the
/// root rule's header checks for `outer_df`, the elastic IP, protocol,
/// source and ports; a drop (TCP: opening segments only) counts and
/// drops, a pass goes on to the flows' group as the root rule would.
pub fn lower(rule: &DenyRule, outer_df: OuterDf) -> Rule {
    let m = &rule.m;
    let mut ip = shapes::public_root_ipv4(outer_df);
    if let Item::Ipv4 {
        src, dst, protocol, ..
    } = &mut ip
    {
        *src = (m.src.mask != 0).then_some(Masked {
            spec: m.src.addr,
            mask: m.src.mask,
        });
        *dst = Some(Masked::<u32>::exact(m.dst));
        *protocol = Some(m.proto);
    }
    let drop = matches!(rule.verdict, Verdict::Drop { .. });
    let port = |p: PortMask| {
        (p.mask != 0).then_some(Masked {
            spec: p.value,
            mask: p.mask,
        })
    };
    let l4 = if m.proto == deny::TCP {
        Item::Tcp {
            src: port(m.sport),
            dst: port(m.dport),
            flags: drop.then_some(Masked {
                spec: TCP_SYN,
                mask: TCP_OPENS_MASK,
            }),
        }
    } else {
        Item::Udp {
            src: port(m.sport),
            dst: port(m.dport),
        }
    };
    Rule {
        attr: Attr {
            priority: DENY_FIRST_PRIORITY + rule.priority,
            ..shapes::transfer(ROOT_GROUP)
        },
        pattern: vec![
            shapes::eth(ETHER_TYPE_IPV4),
            ip,
            shapes::intact(shapes::OUTER),
            l4,
        ],
        actions: if drop {
            vec![Action::Count, Action::Drop]
        } else {
            vec![Action::Jump(FLOW_GROUP)]
        },
    }
}

/// `[offload] max_deny_rules` (NIC deny rules at most, drops and passes
/// on every full public port, all tenants together) and `tenant_share`
/// (the percent of them one tenant may take).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyLimits {
    pub max: usize,
    pub share: u8,
}

/// Where a drop's count goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    /// A pass: nothing to count.
    Nothing,
    Rule(u32),
    /// The tenant's inbound default policy.
    Default,
}

/// One rule made for the NIC.
#[derive(Debug)]
struct Pushed {
    port: u16,
    rule: Rule,
    counted: Counted,
    /// None in shadow mode, or when the NIC refused it.
    handle: Option<Handle>,
    /// The COUNT's total at the last query.
    seen: u64,
}

/// A tenant's rules, for the state of the tenant they were made from.
#[derive(Debug)]
struct TenantRules {
    name: String,
    epoch: u32,
    rules: Vec<Pushed>,
    not_pushed: Vec<NotPushed>,
    /// Each rule's position in the tenant's rules, by counter slot.
    positions: HashMap<u32, u32>,
}

/// Every tenant's deny rules in force.
#[derive(Debug, Default)]
pub struct DenyRules {
    /// The tables generation the rules were last brought up to.
    pub generation: Option<u64>,
    /// By tenant slot.
    tenants: BTreeMap<u32, TenantRules>,
    /// Packets the NIC dropped, by rule counter slot and (inbound
    /// default) by tenant slot: what the workers' counts miss.
    by_rule: HashMap<u32, u64>,
    by_default: HashMap<u32, u64>,
    /// Rules the NIC refused, since start.
    pub refused: u64,
    /// When the counts were last read (the plane's milliseconds).
    last_query: Option<u64>,
}

impl DenyRules {
    /// The handler is about to publish `next`: the rules of every tenant
    /// whose state moves (or which goes) are destroyed now, their last
    /// counts read; the next [`DenyRules::update`] makes them again.
    pub fn before_publish(&mut self, next: &Tables) {
        let stale: Vec<u32> = self
            .tenants
            .iter()
            .filter(|(&slot, t)| {
                next.tenants
                    .get(TenantId(slot))
                    .is_none_or(|n| n.epoch != t.epoch || n.name != t.name)
            })
            .map(|(&slot, _)| slot)
            .collect();
        for slot in stale {
            self.take_down(slot);
        }
    }

    /// Brings the rules to `tables` on `ports` (the full public ports):
    /// a tenant whose state did not move keeps its rules and handles, the
    /// others' are made again, created with `create` when given (auto
    /// mode), kept only in shadow mode. `limits` bound them
    /// (docs/security.md): a tenant past either gets none
    /// (`deny_too_many`), its denies staying in software.
    pub fn update(
        &mut self,
        tables: &Tables,
        ports: &[u16],
        outer_df: OuterDf,
        limits: DenyLimits,
        create: Option<Create<'_>>,
    ) {
        self.generation = Some(tables.generation);
        self.before_publish(tables);
        // A slot whose tenant went starts the next one from zero.
        let gone: Vec<u32> = self
            .by_default
            .keys()
            .copied()
            .filter(|&s| tables.tenants.get(TenantId(s)).is_none())
            .collect();
        for s in gone {
            self.by_default.remove(&s);
        }
        if ports.is_empty() {
            return;
        }
        let DenyLimits { max, share } = limits;
        let mut eips: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for (public, tenant, private) in tables.eips.iter() {
            // A public address serves one purpose (the configuration
            // refuses others); should one also be a pool's or a tenant's
            // own, its flows could have other openers: not pushed.
            if tables.pools.of_addr(public).is_none() && tables.ingress.lookup(public).is_none() {
                eips.entry(tenant.0).or_default().push((public, private));
            }
        }
        let per_tenant = (max * usize::from(share) / 100).max(1) / ports.len();
        let mut total: usize = self.tenants.values().map(|t| t.rules.len()).sum();
        for tenant in tables.tenants.iter() {
            let slot = tenant.id.0;
            if self.tenants.contains_key(&slot) {
                continue;
            }
            let mut addrs = eips.remove(&slot).unwrap_or_default();
            addrs.sort_unstable();
            let bounds = Bounds {
                rules: per_tenant.min(max.saturating_sub(total) / ports.len()),
                levels: PUBLIC_ROOT_PRIORITY - DENY_FIRST_PRIORITY,
            };
            let plan = deny::plan(&tenant.firewall, &addrs, bounds);
            let mut rules = Vec::with_capacity(plan.rules.len() * ports.len());
            for &port in ports {
                for r in &plan.rules {
                    let rule = lower(r, outer_df);
                    let handle = create.and_then(|create| match create(&rule, port) {
                        Ok(flow) => Some(flow),
                        Err(e) => {
                            self.refused += 1;
                            warn!(port, tenant = %tenant.name, "offload: a deny rule was refused, its packets stay in software: {e}");
                            None
                        }
                    });
                    let counted = match r.verdict {
                        Verdict::Pass => Counted::Nothing,
                        Verdict::Drop { rule: Some(id) } => Counted::Rule(id.0),
                        Verdict::Drop { rule: None } => Counted::Default,
                    };
                    rules.push(Pushed {
                        port,
                        rule,
                        counted,
                        handle,
                        seen: 0,
                    });
                }
            }
            // A refused pass would let its later drop take what software
            // allows: the tenant's rules go whole or not at all.
            if create.is_some() && rules.iter().any(|p| p.handle.is_none()) {
                rules.clear();
            }
            total += rules.len();
            self.tenants.insert(
                slot,
                TenantRules {
                    name: tenant.name.clone(),
                    epoch: tenant.epoch,
                    rules,
                    not_pushed: plan.not_pushed,
                    positions: tenant
                        .firewall
                        .rules
                        .iter()
                        .map(|r| (r.counter.0, r.position))
                        .collect(),
                },
            );
        }
    }

    /// Reads every drop's COUNT if `interval_ms` passed since the last
    /// time (at `now_ms`), adding what is new to its rule's count.
    pub fn query(&mut self, now_ms: u64, interval_ms: u64) {
        if self
            .last_query
            .is_some_and(|at| now_ms.saturating_sub(at) < interval_ms)
        {
            return;
        }
        self.last_query = Some(now_ms);
        let slots: Vec<u32> = self.tenants.keys().copied().collect();
        for slot in slots {
            self.read(slot);
        }
    }

    /// Adds the new hits of `slot`'s drops to their counts.
    fn read(&mut self, slot: u32) {
        let Some(t) = self.tenants.get_mut(&slot) else {
            return;
        };
        for p in &mut t.rules {
            let (Some(h), false) = (p.handle.as_mut(), p.counted == Counted::Nothing) else {
                continue;
            };
            let Ok(counts) = h.query_count() else {
                continue;
            };
            let new = counts.hits.saturating_sub(p.seen);
            p.seen = counts.hits;
            if new == 0 {
                continue;
            }
            match p.counted {
                Counted::Rule(id) => *self.by_rule.entry(id).or_default() += new,
                Counted::Default => *self.by_default.entry(slot).or_default() += new,
                Counted::Nothing => {}
            }
        }
    }

    /// Destroys `slot`'s rules, their last counts read first.
    fn take_down(&mut self, slot: u32) {
        self.read(slot);
        self.tenants.remove(&slot);
    }

    /// At shutdown (or a flush of everything): every rule destroyed, the
    /// last counts read.
    pub fn clear(&mut self) {
        let slots: Vec<u32> = self.tenants.keys().copied().collect();
        for slot in slots {
            self.take_down(slot);
        }
        self.generation = None;
    }

    /// Packets the NIC dropped for rule counter slot `id`.
    pub fn rule_drops(&self, id: u32) -> u64 {
        self.by_rule.get(&id).copied().unwrap_or(0)
    }

    /// Packets the NIC dropped for tenant slot `slot`'s inbound default.
    pub fn default_drops(&self, slot: u32) -> u64 {
        self.by_default.get(&slot).copied().unwrap_or(0)
    }

    /// What the report carries: drops by rule slot and by tenant slot.
    pub fn drops(&self) -> (HashMap<u32, u64>, HashMap<u32, u64>) {
        (self.by_rule.clone(), self.by_default.clone())
    }

    /// The rules, with their ports.
    pub fn rules(&self) -> impl Iterator<Item = (u16, &Rule)> {
        self.tenants
            .values()
            .flat_map(|t| t.rules.iter().map(|p| (p.port, &p.rule)))
    }

    pub fn len(&self) -> usize {
        self.tenants.values().map(|t| t.rules.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many the NIC holds.
    pub fn installed(&self) -> usize {
        self.tenants
            .values()
            .flat_map(|t| &t.rules)
            .filter(|p| p.handle.is_some())
            .count()
    }

    /// Denies left to software, by reason, over all tenants.
    pub fn not_pushed(&self) -> Vec<(&'static str, u64)> {
        [Reason::RepliesPossible, Reason::Protocol, Reason::TooMany]
            .iter()
            .map(|r| {
                let n = self
                    .tenants
                    .values()
                    .flat_map(|t| &t.not_pushed)
                    .filter(|n| n.reason == *r)
                    .count();
                (r.name(), n as u64)
            })
            .collect()
    }

    /// `offload.show`'s `deny` rows (a rule each: tenant, port, kind,
    /// the firewall rule it stands for, priority, what it matches,
    /// whether the NIC holds it) and `deny_not_pushed` rows (a deny left
    /// to software: tenant, elastic IP, rule, protocol, reason); `rule`
    /// is the rule's position in the tenant's rules, or `default`.
    pub fn show_json(&self) -> (Value, Value) {
        let mut rules = Vec::new();
        let mut left = Vec::new();
        for t in self.tenants.values() {
            let position =
                |id: u32| -> Value { t.positions.get(&id).map_or(Value::Null, |&p| p.into()) };
            for p in &t.rules {
                let (kind, rule) = match p.counted {
                    Counted::Nothing => ("pass", Value::Null),
                    Counted::Rule(id) => ("drop", position(id)),
                    Counted::Default => ("drop", "default".into()),
                };
                rules.push(json!({
                    "tenant": t.name,
                    "port": p.port,
                    "kind": kind,
                    "rule": rule,
                    "priority": p.rule.attr.priority,
                    "match": describe(&p.rule),
                    "installed": p.handle.is_some(),
                }));
            }
            for n in &t.not_pushed {
                left.push(json!({
                    "tenant": t.name,
                    "eip": std::net::Ipv4Addr::from(n.eip).to_string(),
                    "rule": n.rule.map_or_else(|| "default".into(), |id| position(id.0)),
                    "proto": n.proto.map_or(Value::Null, |p| match p {
                        deny::TCP => "tcp".into(),
                        deny::UDP => "udp".into(),
                        p => p.into(),
                    }),
                    "reason": n.reason.name(),
                }));
            }
        }
        (Value::Array(rules), Value::Array(left))
    }
}

/// A deny rule's match in a few words: `tcp 1.1.1.0/24:any -> 2.2.2.11:22/0xffff`.
fn describe(rule: &Rule) -> String {
    let mut out = String::new();
    for item in &rule.pattern {
        match item {
            Item::Ipv4 { src, dst, .. } => {
                let net = |m: &Option<Masked<u32>>| match m {
                    None => "any".to_owned(),
                    Some(m) => format!(
                        "{}/{}",
                        std::net::Ipv4Addr::from(m.spec),
                        m.mask.count_ones()
                    ),
                };
                out = format!("{} -> {}", net(src), net(dst));
            }
            Item::Tcp { src, dst, .. } | Item::Udp { src, dst } => {
                let port = |m: &Option<Masked<u16>>| match m {
                    None => "any".to_owned(),
                    Some(m) if m.mask == u16::MAX => m.spec.to_string(),
                    Some(m) => format!("{}/{:#06x}", m.spec, m.mask),
                };
                let proto = if matches!(item, Item::Tcp { .. }) {
                    "tcp"
                } else {
                    "udp"
                };
                let (s, d) = out.split_once(" -> ").unwrap_or(("any", "any"));
                out = format!("{proto} {s}:{} -> {d}:{}", port(src), port(dst));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::firewall::RuleId;
    use dataplane::offload::deny::DenyMatch;
    use dataplane::tenant::Net;

    /// The reference configuration's tables, t1 with an exact deny (TCP
    /// 20-23 from 9.9.9.0/24, toward which it may open nothing).
    fn tables() -> Tables {
        use crate::handler::Handler;
        use crate::runtime::Runtime;
        use ctl::running::Running;
        use dataplane::neighbour::{NeighbourLimits, NeighbourWriter};
        use dataplane::resolver::{Resolver, ResolverConfig};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/reference.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let text = text.replacen(
            "rules = [\n",
            "rules = [\n  { direction = \"in\", action = \"deny\", proto = \"tcp\", src = \"9.9.9.0/24\", dport = \"20-23\" },\n  { direction = \"out\", action = \"deny\", dst = \"9.9.9.0/24\" },\n",
            1,
        );
        let config = ctl::config::parse(&text, "reference.toml", &"0-1".parse().unwrap()).unwrap();
        let ports = vec![
            (0, rte::MacAddr([2, 0, 0, 0, 0, 1])),
            (1, rte::MacAddr([2, 0, 0, 0, 1, 1])),
        ];
        let mut handler = Handler::new(
            Running::new(config.clone()),
            Runtime::new(&config, ports),
            "0-1".parse().unwrap(),
            std::path::PathBuf::from("reference.toml"),
        );
        let mut resolver: Resolver<dataplane::VecFrame> = Resolver::new(
            NeighbourWriter::with_limits(NeighbourLimits::uniform(64)),
            ResolverConfig::default(),
        );
        handler.initial(resolver.writer()).unwrap()
    }

    /// `[offload] max_deny_rules` bounds them: 0 leaves every deny in
    /// software, counted `deny_too_many`; a tenant whose state stays keeps
    /// its rules through an update, one whose epoch moves has them taken
    /// down before the tables are published.
    #[test]
    fn the_bound_and_the_epoch_decide_what_is_held() {
        let t = tables();
        let limits = |max| DenyLimits { max, share: 25 };
        let mut none = DenyRules::default();
        none.update(&t, &[0], OuterDf::Copy, limits(0), None);
        assert!(none.is_empty());
        let too_many = none
            .not_pushed()
            .into_iter()
            .find(|(k, _)| *k == "deny_too_many");
        assert_eq!(too_many, Some(("deny_too_many", 1)));
        let mut some = DenyRules::default();
        some.update(&t, &[0], OuterDf::Copy, limits(4096), None);
        assert_eq!(
            (some.len(), some.installed()),
            (1, 0),
            "shadow: kept, not created"
        );
        // The same tenants: nothing moves.
        some.before_publish(&t);
        assert_eq!(some.len(), 1);
        // t1 at a new epoch: its rules go before that is published.
        let mut next = t.clone();
        let t1 = next.tenants.get(TenantId(0)).unwrap().with_epoch(99);
        next.tenants.set(std::sync::Arc::new(t1)).unwrap();
        some.before_publish(&next);
        assert!(some.is_empty());
        some.update(&next, &[0], OuterDf::Copy, limits(4096), None);
        assert_eq!(some.len(), 1);
    }

    fn drop_rule(proto: u8) -> DenyRule {
        DenyRule {
            priority: 3,
            verdict: Verdict::Drop {
                rule: Some(RuleId(7)),
            },
            m: DenyMatch {
                dst: 0x0202_020b,
                proto,
                src: Net {
                    addr: 0x0101_0100,
                    mask: 0xffff_ff00,
                },
                sport: PortMask::ANY,
                dport: PortMask {
                    value: 22,
                    mask: 0xffff,
                },
            },
        }
    }

    /// A TCP drop: the root rule's checks, the address, source prefix,
    /// port by mask, opening segments only; count, drop; in the root
    /// group, in front of the root rule.
    #[test]
    fn a_drop_is_lowered_with_the_root_checks_and_a_count() {
        let rule = lower(&drop_rule(6), OuterDf::Copy);
        let mut ip = shapes::public_root_ipv4(OuterDf::Copy);
        if let Item::Ipv4 {
            src, dst, protocol, ..
        } = &mut ip
        {
            *src = Some(Masked {
                spec: 0x0101_0100,
                mask: 0xffff_ff00,
            });
            *dst = Some(Masked::<u32>::exact(0x0202_020b));
            *protocol = Some(6);
        }
        assert_eq!(
            rule,
            Rule {
                attr: Attr {
                    group: 0,
                    priority: 4,
                    ingress: false,
                    egress: false,
                    transfer: true,
                },
                pattern: vec![
                    shapes::eth(0x0800),
                    ip,
                    Item::Integrity {
                        level: 1,
                        l3_ok: true,
                        ipv4_csum_ok: true,
                    },
                    Item::Tcp {
                        src: None,
                        dst: Some(Masked::<u16>::exact(22)),
                        flags: Some(Masked {
                            spec: 0x02,
                            mask: 0x17
                        }),
                    },
                ],
                actions: vec![Action::Count, Action::Drop],
            }
        );
        assert!(rule.attr.priority < shapes::public_root(OuterDf::Copy).attr.priority);
        assert!(rule.attr.priority > shapes::public_punt().attr.priority);
        let mut pass = drop_rule(17);
        pass.verdict = Verdict::Pass;
        let rule = lower(&pass, OuterDf::Set);
        assert_eq!(rule.actions, [Action::Jump(FLOW_GROUP)]);
        assert_eq!(rule.pattern[1], {
            let mut ip = shapes::public_root_ipv4(OuterDf::Set);
            if let Item::Ipv4 {
                src, dst, protocol, ..
            } = &mut ip
            {
                *src = Some(Masked {
                    spec: 0x0101_0100,
                    mask: 0xffff_ff00,
                });
                *dst = Some(Masked::<u32>::exact(0x0202_020b));
                *protocol = Some(17);
            }
            ip
        });
        assert_eq!(
            describe(&rule),
            "udp 1.1.1.0/24:any -> 2.2.2.11/32:22",
            "{rule:?}"
        );
        for r in [lower(&drop_rule(6), OuterDf::Copy), rule] {
            for line in r.testpmd(u16::MAX).lines() {
                assert!(line.len() <= rte::flow::TESTPMD_LINE_MAX, "{line}");
            }
        }
    }
}
