//! The full-offload root rules (docs/offload.md, "Groups, priorities and
//! static rules"): in group 0, one per tenant tunnel on the underlay port
//! and one on the public port, each checking the headers every offloaded
//! frame must have and jumping to the per-flow rules' group. They follow
//! the tables: rebuilt when their generation changes, as the SNAT
//! steering rules are, and kept by [`Roots`] between changes so that a
//! tunnel's rule is not destroyed and made again while it stays.

use std::collections::{HashMap, HashSet};

use ctl::config::OuterDf;
use dataplane::offload::spec::tunnel_match;
use dataplane::offload::TunnelMatch;
use dataplane::tables::Tables;
use rte::flow::Rule;
use tracing::warn;

use super::shapes;
use super::statics::Handle;

/// Root rules at most (docs/security.md): tunnels past it get none, so
/// their flows' frames stay in software (counted, `root_rules_left_out`).
/// The tables bound tunnels already (tenants × hosts); this bounds what
/// one configuration asks of the NIC's root table.
pub const MAX_ROOT_RULES: usize = 4096;

/// What a root rule is for: a port's punt rule (packets whose TTL would
/// expire to software; on an underlay port one for each GRE protocol its
/// tunnels carry: `Some(gretap)`), a public port, or a tunnel (with the
/// tenant's MAC a gretap rule matches inside) on an underlay port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootKey {
    Punt {
        port: u16,
        tunnel: Option<bool>,
    },
    /// An underlay port's integrity check of the tunnels of one GRE
    /// protocol, in the group their root rules jump to
    /// (`shapes::tunnel_check`).
    Check {
        port: u16,
        gretap: bool,
    },
    Public(u16),
    Tunnel {
        port: u16,
        host: u32,
        local: u32,
        key: u32,
        gretap: bool,
        mac: [u8; 6],
    },
}

impl RootKey {
    pub fn port(self) -> u16 {
        match self {
            RootKey::Punt { port, .. }
            | RootKey::Check { port, .. }
            | RootKey::Public(port)
            | RootKey::Tunnel { port, .. } => port,
        }
    }

    pub fn is_punt(self) -> bool {
        matches!(self, RootKey::Punt { .. })
    }

    /// The rule; a public port's checks DF or not as `outer_df` says.
    pub fn rule(self, outer_df: OuterDf) -> Rule {
        match self {
            RootKey::Punt { tunnel: None, .. } => shapes::public_punt(),
            RootKey::Punt {
                tunnel: Some(gretap),
                ..
            } => shapes::tunnel_punt(gretap),
            RootKey::Check { gretap, .. } => shapes::tunnel_check(gretap),
            RootKey::Public(_) => shapes::public_root(outer_df),
            RootKey::Tunnel {
                host,
                local,
                key,
                gretap,
                mac,
                ..
            } => shapes::tunnel_root(
                &TunnelMatch {
                    host,
                    local,
                    key,
                    gretap,
                },
                mac,
            ),
        }
    }
}

/// The root rules `tables` need: first the punt rules, one per full
/// public port (`public`) and one per GRE protocol the tunnels into each
/// full underlay port (`full(port)`) carry, which no bound leaves out
/// (a port has at most two, and a root rule without its port's punt rule
/// would let a packet whose TTL expires reach a flow's rule), and as
/// many integrity checks (`RootKey::Check`, one per GRE protocol, in the
/// group the tunnels' root rules jump to); then, at
/// most `max`, one per full public port, and one per tunnel of each
/// tenant into a full underlay port, taken a tenant at a time in turn
/// so that, past the bound, every tenant has had as many tunnels as the
/// others. Tenants with GRE options get no tunnel root rule: the spec
/// builder keeps their flows in software (`gre_options`). Also how many
/// tunnels were left out.
pub fn wanted(
    tables: &Tables,
    public: &[u16],
    full: &dyn Fn(u16) -> bool,
    max: usize,
) -> (Vec<RootKey>, usize) {
    let mut punts: Vec<RootKey> = public
        .iter()
        .map(|&port| RootKey::Punt { port, tunnel: None })
        .collect();
    for tenant in tables.tenants.iter() {
        for adj in tenant.tunnels.iter().filter(|adj| full(adj.port)) {
            let punt = RootKey::Punt {
                port: adj.port,
                tunnel: Some(adj.is_gretap()),
            };
            if !punts.contains(&punt) {
                punts.push(punt);
            }
        }
    }
    // Each GRE protocol's integrity check, which its tunnels' root
    // rules jump to, goes with its punt rule (as few, and as needed).
    let checks: Vec<RootKey> = punts
        .iter()
        .filter_map(|k| match *k {
            RootKey::Punt {
                port,
                tunnel: Some(gretap),
            } => Some(RootKey::Check { port, gretap }),
            _ => None,
        })
        .collect();
    punts.extend(checks);
    let mut out: Vec<RootKey> = public.iter().map(|&p| RootKey::Public(p)).collect();
    out.truncate(max);
    let mut seen = HashSet::new();
    let per_tenant: Vec<Vec<RootKey>> = tables
        .tenants
        .iter()
        .map(|tenant| {
            tenant
                .tunnels
                .iter()
                .filter(|adj| !adj.gre.any() && full(adj.port))
                .filter_map(|adj| {
                    let t = tunnel_match(tenant, adj)?;
                    Some(RootKey::Tunnel {
                        port: adj.port,
                        host: t.host,
                        local: t.local,
                        key: t.key,
                        gretap: t.gretap,
                        mac: tenant.mac,
                    })
                })
                .filter(|k| seen.insert(*k))
                .collect()
        })
        .collect();
    let mut left_out = 0;
    let longest = per_tenant.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..longest {
        for k in per_tenant.iter().filter_map(|t| t.get(round)) {
            if out.len() < max {
                out.push(*k);
            } else {
                left_out += 1;
            }
        }
    }
    punts.extend(out);
    (punts, left_out)
}

/// Makes a static rule on a port (`StaticRules::create`: `Rule::create`,
/// or through templates on a port with the template API; a test's
/// stand-in).
pub type Create<'a> = &'a dyn Fn(&Rule, u16) -> Result<Handle, rte::flow::FlowError>;

/// The root rules in force: each with its handle once created (none in
/// shadow mode, or when the NIC refused it).
#[derive(Default)]
pub struct Roots {
    pub generation: Option<u64>,
    rules: Vec<(RootKey, Rule, Option<Handle>)>,
    /// Tunnels the last rebuild left without a rule ([`MAX_ROOT_RULES`]).
    pub left_out: u64,
    /// Root rules the NIC refused, since start.
    pub refused: u64,
    /// Ports whose punt rule the NIC refused: their root rules are not
    /// made (a flow's rule would take packets whose TTL expires), so
    /// their frames stay in software.
    unpunted: HashSet<u16>,
}

impl Roots {
    /// Brings the rules to `keys`: those that stay keep their handle,
    /// new ones (made for `outer_df`, which is fixed from start to
    /// shutdown) are created with `create` (when given), the others are
    /// destroyed (dropped).
    /// A port whose punt rule the NIC refused gets no other root rule
    /// (its keys are kept without a handle).
    pub fn update(&mut self, keys: Vec<RootKey>, outer_df: OuterDf, create: Option<Create<'_>>) {
        let mut old: HashMap<RootKey, (Rule, Option<Handle>)> =
            self.rules.drain(..).map(|(k, r, h)| (k, (r, h))).collect();
        self.unpunted.clear();
        for key in keys {
            let port = key.port();
            if let Some((rule, handle)) = old.remove(&key) {
                if create.is_some() && key.is_punt() && handle.is_none() {
                    self.unpunted.insert(port);
                }
                self.rules.push((key, rule, handle));
                continue;
            }
            let rule = key.rule(outer_df);
            let create = create.filter(|_| key.is_punt() || !self.unpunted.contains(&port));
            let handle = create.and_then(|create| match create(&rule, port) {
                Ok(flow) => Some(flow),
                Err(e) => {
                    self.refused += 1;
                    if key.is_punt() {
                        self.unpunted.insert(port);
                    }
                    warn!(port, "offload: a root rule was refused, the frames it would pass stay in software: {e}");
                    None
                }
            });
            self.rules.push((key, rule, handle));
        }
    }

    /// Whether `port`'s punt rules are all in place (or, in shadow mode,
    /// would be): the rules that jump to the flows' group may go there.
    pub fn punted(&self, port: u16) -> bool {
        !self.unpunted.contains(&port)
    }

    /// The rules, with their ports.
    pub fn rules(&self) -> impl Iterator<Item = (u16, &Rule)> {
        self.rules.iter().map(|(k, r, _)| (k.port(), r))
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many the NIC holds.
    pub fn installed(&self) -> usize {
        self.rules.iter().filter(|(_, _, h)| h.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Handler;
    use crate::runtime::Runtime;
    use ctl::running::Running;
    use dataplane::neighbour::{NeighbourLimits, NeighbourWriter};
    use dataplane::resolver::{Resolver, ResolverConfig};
    use dataplane::VecFrame;
    use rte::MacAddr;
    use std::path::PathBuf;

    /// The reference configuration's tables with t1 given `t1_hosts`
    /// (each with a route, hence a tunnel: 10.0.N.0/24 to the Nth), and
    /// `t2_options` in t2's section.
    fn tables(t1_hosts: &[&str], t2_options: &str) -> Tables {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/reference.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let quoted: Vec<String> = t1_hosts.iter().map(|h| format!("{h:?}")).collect();
        let text = text.replacen(
            "hosts = [\"172.168.0.11\"]",
            &format!("hosts = [{}]", quoted.join(", ")),
            1,
        );
        let routes: String = t1_hosts
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, h)| format!("  {{ prefix = \"10.0.{i}.0/24\", to = \"{h}\" }},\n"))
            .collect();
        let text = text.replacen(
            "  { prefix = \"0.0.0.0/0\", to = \"public\" },\n",
            &format!("{routes}  {{ prefix = \"0.0.0.0/0\", to = \"public\" }},\n"),
            1,
        );
        let text = text.replacen(
            "hosts = [\"172.168.0.12\"]",
            &format!("hosts = [\"172.168.0.12\"]\n{t2_options}"),
            1,
        );
        let config = ctl::config::parse(&text, "reference.toml", &"0-1".parse().unwrap()).unwrap();
        let ports = vec![
            (0, MacAddr([2, 0, 0, 0, 0, 1])),
            (1, MacAddr([2, 0, 0, 0, 1, 1])),
        ];
        let mut handler = Handler::new(
            Running::new(config.clone()),
            Runtime::new(&config, ports),
            "0-1".parse().unwrap(),
            PathBuf::from("reference.toml"),
        );
        let mut resolver: Resolver<VecFrame> = Resolver::new(
            NeighbourWriter::with_limits(NeighbourLimits::uniform(64)),
            ResolverConfig::default(),
        );
        handler.initial(resolver.writer()).unwrap()
    }

    fn host(k: &RootKey) -> Option<u32> {
        match k {
            RootKey::Tunnel { host, .. } => Some(*host),
            RootKey::Public(_) | RootKey::Punt { .. } | RootKey::Check { .. } => None,
        }
    }

    /// The root rules other than the punt rules and integrity checks.
    fn roots(keys: Vec<RootKey>) -> Vec<RootKey> {
        keys.into_iter()
            .filter(|k| !k.is_punt() && !matches!(k, RootKey::Check { .. }))
            .collect()
    }

    /// Past the bound tenants take turns: t1's three hosts do not crowd
    /// out t2's one; what is left out is counted.
    #[test]
    fn tenants_take_turns_within_the_bound() {
        let t = tables(&["172.168.0.11", "172.168.0.21", "172.168.0.22"], "");
        let (all, left_out) = wanted(&t, &[0], &|_| true, MAX_ROOT_RULES);
        let all = roots(all);
        assert_eq!((all.len(), left_out), (1 + 4, 0), "{all:?}");
        assert_eq!(all[0], RootKey::Public(0));
        let (some, left_out) = wanted(&t, &[0], &|_| true, 3);
        let some = roots(some);
        let hosts: Vec<Option<u32>> = some.iter().map(host).collect();
        assert_eq!(
            hosts,
            [None, Some(0xaca8_000b), Some(0xaca8_000c)],
            "t1's first host, then t2's: {some:?}"
        );
        assert_eq!(left_out, 2);
        // No full underlay port: the public port's rules alone.
        let (public, _) = wanted(&t, &[0], &|_| false, MAX_ROOT_RULES);
        let punt = RootKey::Punt {
            port: 0,
            tunnel: None,
        };
        assert_eq!(public, [punt, RootKey::Public(0)]);
    }

    /// Every full port gets its punt rules first, whatever the bound: the
    /// public port one, the underlay port one per GRE protocol its
    /// tunnels carry (the reference tenants are both gretap); a port that
    /// is not full, none.
    #[test]
    fn punt_rules_come_first_and_outside_the_bound() {
        let t = tables(&["172.168.0.11"], "");
        let punt = |port, tunnel| RootKey::Punt { port, tunnel };
        let (keys, _) = wanted(&t, &[0], &|_| true, 1);
        let check = RootKey::Check {
            port: 1,
            gretap: true,
        };
        assert_eq!(
            keys,
            [
                punt(0, None),
                punt(1, Some(true)),
                check,
                RootKey::Public(0)
            ],
            "{keys:?}"
        );
        let (keys, _) = wanted(&t, &[], &|_| false, MAX_ROOT_RULES);
        assert!(keys.is_empty(), "{keys:?}");
    }

    /// A port whose punt rule the NIC refuses gets no other root rule:
    /// its flows' rules would be reached by packets whose TTL expires.
    #[test]
    fn a_port_whose_punt_is_refused_gets_no_root_rule() {
        let t = tables(&["172.168.0.11"], "");
        let (keys, _) = wanted(&t, &[0], &|_| true, MAX_ROOT_RULES);
        let asked = std::cell::RefCell::new(Vec::new());
        let create = |rule: &Rule, port: u16| {
            asked.borrow_mut().push((port, rule.clone()));
            Err(rte::flow::FlowError {
                op: "rte_flow_create",
                errno: nix::errno::Errno::ENOTSUP as i32,
                kind: 0,
                message: "no TTL match".to_owned(),
            })
        };
        let mut roots = Roots::default();
        roots.update(keys.clone(), OuterDf::Copy, Some(&create));
        let asked = asked.into_inner();
        assert_eq!(asked.len(), 2, "the two punt rules only: {asked:?}");
        assert!(asked
            .iter()
            .all(|(_, r)| r.attr.priority == shapes::PUNT_PRIORITY));
        assert!(!roots.punted(0) && !roots.punted(1));
        assert_eq!((roots.len(), roots.installed()), (keys.len(), 0));
        // In shadow mode nothing is created and every port counts as
        // punted.
        let mut shadow = Roots::default();
        shadow.update(keys, OuterDf::Copy, None);
        assert!(shadow.punted(0) && shadow.punted(1));
    }

    /// A tenant whose tunnels carry GRE checksums gets no root rule: its
    /// flows stay in software (`gre_options`).
    #[test]
    fn tenants_with_gre_options_get_no_root_rule() {
        let t = tables(&["172.168.0.11"], "gre_checksum = true");
        let (keys, _) = wanted(&t, &[], &|_| true, MAX_ROOT_RULES);
        let hosts: Vec<Option<u32>> = roots(keys.clone()).iter().map(host).collect();
        assert_eq!(hosts, [Some(0xaca8_000b)], "{keys:?}");
    }
}
