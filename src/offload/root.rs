//! The full-offload root rules (docs/offload.md, "Groups, priorities and
//! static rules"): in group 0, one per tenant tunnel on the underlay port
//! and one on the public port, each checking the headers every offloaded
//! frame must have and jumping to the per-flow rules' group. They follow
//! the tables: rebuilt when their generation changes, as the SNAT
//! steering rules are, and kept by [`Roots`] between changes so that a
//! tunnel's rule is not destroyed and made again while it stays.

use std::collections::{HashMap, HashSet};

use dataplane::offload::spec::tunnel_match;
use dataplane::offload::TunnelMatch;
use dataplane::tables::Tables;
use rte::flow::{Flow, Rule};
use tracing::warn;

use super::shapes;

/// Root rules at most (docs/security.md): tunnels past it get none, so
/// their flows' frames stay in software (counted, `root_rules_left_out`).
/// The tables bound tunnels already (tenants × hosts); this bounds what
/// one configuration asks of the NIC's root table.
pub const MAX_ROOT_RULES: usize = 4096;

/// What a root rule is for: a public port, or a tunnel (with the tenant's
/// MAC a gretap rule matches inside) on an underlay port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootKey {
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
            RootKey::Public(port) | RootKey::Tunnel { port, .. } => port,
        }
    }

    pub fn rule(self) -> Rule {
        match self {
            RootKey::Public(_) => shapes::public_root(),
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

/// The root rules `tables` need, at most `max`: one per full public port
/// (`public`), and one per tunnel of each tenant into a full underlay
/// port (`full(port)`), taken a tenant at a time in turn so that, past
/// the bound, every tenant has had as many tunnels as the others.
/// Tenants with GRE options get none: the spec builder keeps their flows
/// in software (`gre_options`). Also how many tunnels were left out.
pub fn wanted(
    tables: &Tables,
    public: &[u16],
    full: &dyn Fn(u16) -> bool,
    max: usize,
) -> (Vec<RootKey>, usize) {
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
    (out, left_out)
}

/// Creates a rule on a port (`Rule::create`; a test's stand-in).
pub type Create<'a> = &'a dyn Fn(&Rule, u16) -> Result<Flow, rte::flow::FlowError>;

/// The root rules in force: each with its handle once created (none in
/// shadow mode, or when the NIC refused it).
#[derive(Default)]
pub struct Roots {
    pub generation: Option<u64>,
    rules: Vec<(RootKey, Rule, Option<Flow>)>,
    /// Tunnels the last rebuild left without a rule ([`MAX_ROOT_RULES`]).
    pub left_out: u64,
    /// Root rules the NIC refused, since start.
    pub refused: u64,
}

impl Roots {
    /// Brings the rules to `keys`: those that stay keep their handle,
    /// new ones are created with `create` (when given), the others are
    /// destroyed (dropped).
    pub fn update(&mut self, keys: Vec<RootKey>, create: Option<Create<'_>>) {
        let mut old: HashMap<RootKey, (Rule, Option<Flow>)> =
            self.rules.drain(..).map(|(k, r, h)| (k, (r, h))).collect();
        for key in keys {
            if let Some((rule, handle)) = old.remove(&key) {
                self.rules.push((key, rule, handle));
                continue;
            }
            let rule = key.rule();
            let port = key.port();
            let handle = create.and_then(|create| match create(&rule, port) {
                Ok(flow) => Some(flow),
                Err(e) => {
                    self.refused += 1;
                    warn!(port, "offload: a root rule was refused, the frames it would pass stay in software: {e}");
                    None
                }
            });
            self.rules.push((key, rule, handle));
        }
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
