//! The running state's tables, each keyed by what a request names (tenant
//! name, public address, prefix), and the transaction that changes them
//! with an undo log, so that a refused request leaves them as they were.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::Ipv4Addr;

use crate::config::{Ipv4Cidr, MacAddr, Route, RouteTarget, Rule, Snat, Tenant};

use super::{Change, RuleAdded};

/// A prefix as a sortable key: (network, length). Validated prefixes have
/// their host bits zero, so nothing is lost.
pub(super) type Net = (u32, u8);

pub(super) fn net(p: Ipv4Cidr) -> Net {
    (u32::from(p.network()), p.len)
}

pub(super) fn cidr((addr, len): Net) -> Ipv4Cidr {
    Ipv4Cidr {
        addr: Ipv4Addr::from(addr),
        len,
    }
}

/// The keys of every prefix that covers `ip` or `p`: one per length, so
/// that the covering entries of a sorted map are found in 33 lookups
/// whatever its size.
pub(super) fn covering(p: Net) -> impl Iterator<Item = Net> {
    (0..=p.1).map(move |len| (u32::from(cidr((p.0, len)).network()), len))
}

/// Which global table a route is in: that of its port's role.
pub(super) type Side = u8;
pub(super) const PUBLIC: Side = 0;
pub(super) const UNDERLAY: Side = 1;

/// One rule as it runs: its handle (unique for the process's life) and
/// its slot (small, reused after delete, for per-rule counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RuleEntry {
    pub handle: u64,
    pub slot: u32,
    pub rule: Rule,
}

/// A tenant as it runs: its own settings, and its VRF, rules and
/// neighbours keyed for single changes. Its elastic IPs and pool live in
/// the global tables (a tenant with 10k elastic IPs is still copied
/// cheaply when one of its routes changes).
#[derive(Clone, Debug)]
pub(super) struct TenantState {
    /// Everything but `routes`, `neighbours` and `rules`, which are empty.
    pub base: Tenant,
    pub routes: BTreeMap<Net, RouteTarget>,
    pub neighbours: BTreeMap<Ipv4Addr, MacAddr>,
    /// In order: the first that matches decides.
    pub rules: Vec<RuleEntry>,
}

impl TenantState {
    /// The tenant as the file models it: routes sorted by prefix,
    /// neighbours by address, rules in order.
    pub fn tenant(&self) -> Tenant {
        let mut t = self.base.clone();
        t.routes = self
            .routes
            .iter()
            .map(|(&n, &to)| crate::config::TenantRoute {
                prefix: cidr(n),
                to,
            })
            .collect();
        t.neighbours = self
            .neighbours
            .iter()
            .map(|(&ip, &mac)| crate::config::TenantNeighbour { ip, mac })
            .collect();
        t.rules = self.rules.iter().map(|r| r.rule).collect();
        t
    }
}

/// A tenant in the order the file model wants: routes sorted, neighbours
/// sorted, rules as given. Two tenants are the same when these are equal.
pub(super) fn canonical(mut t: Tenant) -> Tenant {
    t.routes.sort_by_key(|r| net(r.prefix));
    t.neighbours.sort_by_key(|n| n.ip);
    t
}

/// Every table of the running state but the parts that need a restart.
#[derive(Default)]
pub(super) struct State {
    pub tenants: HashMap<u32, TenantState>,
    pub names: HashMap<String, u32>,
    /// GRE key -> slot.
    pub keys: HashMap<u32, u32>,
    /// Public prefix -> slot of the tenant it leads into.
    pub publics: BTreeMap<Net, u32>,
    /// Tunnel host -> how many tenants list it, for the check that
    /// deleting a global route leaves every tunnel host reachable.
    pub hosts: BTreeMap<u32, u32>,
    /// The next tenant slot never used, the freed ones, and those of
    /// removed tenants that wait for `release`.
    pub next_slot: u32,
    pub free_slots: BTreeMap<u32, ()>,
    pub removed_slots: BTreeMap<u32, ()>,
    /// Rule counter slots, over all tenants as `[dataplane] rule_slots`
    /// counts them: the next never used, and those freed.
    pub next_rule_slot: u32,
    pub free_rule_slots: BTreeMap<u32, ()>,

    /// Global routes by (side, prefix).
    pub routes: BTreeMap<(Side, Net), Route>,
    /// Static neighbours by (port index, address).
    pub neighbours: BTreeMap<(usize, Ipv4Addr), MacAddr>,

    /// Elastic IPs: public -> (slot, private). Sorted, so that a new
    /// public prefix finds the elastic IPs inside it by a range query.
    pub eips: BTreeMap<Ipv4Addr, (u32, Ipv4Addr)>,
    /// (slot, private) -> public: one elastic IP per private address.
    pub privates: HashMap<(u32, Ipv4Addr), Ipv4Addr>,
    /// (slot, public) of every elastic IP, to find a tenant's.
    pub tenant_eips: BTreeMap<(u32, Ipv4Addr), ()>,
    /// Pools by tenant slot (`Snat::tenant` holds the slot).
    pub pools: HashMap<u32, Snat>,
    /// Pool address -> slot. Sorted, like `eips`.
    pub pooled: BTreeMap<Ipv4Addr, u32>,
}

impl State {
    pub fn slot(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// The public addresses bound to tenant `slot`.
    pub fn eips_of(&self, slot: u32) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.tenant_eips
            .range((slot, Ipv4Addr::UNSPECIFIED)..=(slot, Ipv4Addr::BROADCAST))
            .map(|(&(_, ip), _)| ip)
    }

    /// The tenant whose public prefixes overlap `p`, other than `slot`.
    pub fn public_overlap(&self, p: Net, slot: Option<u32>) -> Option<(Net, u32)> {
        let other = |owner: u32| Some(owner) != slot;
        // A claimed prefix that covers p ...
        for k in covering(p) {
            if let Some(&owner) = self.publics.get(&k).filter(|&&o| other(o)) {
                return Some((k, owner));
            }
        }
        // ... or one inside it.
        let last = u32::from(cidr(p).broadcast());
        self.publics
            .range((p.0, 0)..=(last, 32))
            .find(|(_, &owner)| other(owner))
            .map(|(&k, &owner)| (k, owner))
    }

    /// The public prefix that holds `ip`, and its tenant's slot: 33
    /// lookups.
    pub fn public_holding(&self, ip: Ipv4Addr) -> Option<(Net, u32)> {
        covering((u32::from(ip), 32)).find_map(|k| self.publics.get(&k).map(|&slot| (k, slot)))
    }

    /// An elastic IP or pool address inside `p`, and the slot of the
    /// tenant it serves: a range query in each sorted table, so
    /// O(log n) whatever the number of elastic IPs.
    pub fn nat_inside(&self, p: Net) -> Option<(Ipv4Addr, &'static str, u32)> {
        let c = cidr(p);
        let range = c.network()..=c.broadcast();
        let eip = self.eips.range(range.clone()).next();
        let eip = eip.map(|(&ip, &(slot, _))| (ip, "elastic IP", slot));
        eip.or_else(|| {
            let pooled = self.pooled.range(range).next();
            pooled.map(|(&ip, &slot)| (ip, "source NAT pool address", slot))
        })
    }

    /// The global routes of `side` that cover `ip`.
    pub fn routes_covering(&self, side: Side, ip: Ipv4Addr) -> impl Iterator<Item = &Route> + '_ {
        covering((u32::from(ip), 32)).filter_map(move |k| self.routes.get(&(side, k)))
    }
}

/// A map the undo log can put back.
pub(super) trait Table<K, V> {
    fn put(&mut self, k: K, v: V) -> Option<V>;
    fn take(&mut self, k: &K) -> Option<V>;
}

impl<K: Eq + Hash, V> Table<K, V> for HashMap<K, V> {
    fn put(&mut self, k: K, v: V) -> Option<V> {
        self.insert(k, v)
    }
    fn take(&mut self, k: &K) -> Option<V> {
        self.remove(k)
    }
}

impl<K: Ord, V> Table<K, V> for BTreeMap<K, V> {
    fn put(&mut self, k: K, v: V) -> Option<V> {
        self.insert(k, v)
    }
    fn take(&mut self, k: &K) -> Option<V> {
        self.remove(k)
    }
}

pub(super) type Undo = Box<dyn FnOnce(&mut State)>;

/// Takes back the steps of `undo`, newest first.
pub(super) fn undo_all(s: &mut State, mut undo: Vec<Undo>) {
    while let Some(step) = undo.pop() {
        step(s);
    }
}

/// One request's changes: applied as they come, each recording how to
/// take it back, so that an error part way undoes them all.
pub(super) struct Tx<'a> {
    pub s: &'a mut State,
    undo: Vec<Undo>,
    /// Tenants copied for undo in this transaction.
    touched: std::collections::HashSet<u32>,
    pub changes: Vec<Change>,
    changed: std::collections::HashSet<Change>,
    pub rules: Vec<RuleAdded>,
}

impl<'a> Tx<'a> {
    pub fn new(s: &'a mut State) -> Tx<'a> {
        Tx {
            s,
            undo: Vec::new(),
            touched: Default::default(),
            changes: Vec::new(),
            changed: Default::default(),
            rules: Vec::new(),
        }
    }

    /// Takes everything back, newest first.
    pub fn rollback(self) {
        let (s, undo) = (self.s, self.undo);
        undo_all(s, undo);
    }

    /// Ends the transaction, keeping its changes and how to take them back
    /// (for a commit step that may still refuse).
    pub fn finish(self) -> (super::Applied, Vec<Undo>) {
        let applied = super::Applied {
            changes: self.changes,
            rules: self.rules,
        };
        (applied, self.undo)
    }

    /// Records `c` once, in order (a set beside the list: a batch of 100k
    /// elastic IPs has 100k changes).
    pub fn change(&mut self, c: Change) {
        if self.changed.insert(c) {
            self.changes.push(c);
        }
    }

    pub fn on_undo(&mut self, f: impl FnOnce(&mut State) + 'static) {
        self.undo.push(Box::new(f));
    }

    /// `map[k] = v`, undoably; the old value.
    pub fn put<M, K, V>(&mut self, map: fn(&mut State) -> &mut M, k: K, v: V) -> Option<V>
    where
        M: Table<K, V> + 'static,
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let old = map(self.s).put(k.clone(), v);
        let back = old.clone();
        self.on_undo(move |s| {
            match back {
                Some(v) => map(s).put(k, v),
                None => map(s).take(&k),
            };
        });
        old
    }

    /// Removes `map[k]`, undoably; the old value.
    pub fn take<M, K, V>(&mut self, map: fn(&mut State) -> &mut M, k: &K) -> Option<V>
    where
        M: Table<K, V> + 'static,
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let old = map(self.s).take(k)?;
        let (k, back) = (k.clone(), old.clone());
        self.on_undo(move |s| {
            map(s).put(k, back);
        });
        Some(old)
    }

    /// Tenant `slot`, to change in place: copied once per transaction so
    /// that undo can put it back (a copy of one tenant, not of all).
    pub fn tenant(&mut self, slot: u32) -> &mut TenantState {
        if self.touched.insert(slot) {
            if let Some(copy) = self.s.tenants.get(&slot).cloned() {
                self.on_undo(move |s| {
                    s.tenants.insert(slot, copy);
                });
            }
        }
        self.s
            .tenants
            .get_mut(&slot)
            .expect("a slot from the names index is a tenant")
    }

    /// A slot for a new tenant: the lowest freed one, else a new one
    /// below `cap` (`[dataplane] tenant_slots`).
    pub fn new_slot(&mut self, cap: u32) -> Option<u32> {
        if let Some((&slot, _)) = self.s.free_slots.iter().next() {
            self.take(|s| &mut s.free_slots, &slot);
            return Some(slot);
        }
        let slot = self.s.next_slot;
        if slot >= cap {
            return None;
        }
        self.s.next_slot += 1;
        self.on_undo(move |s| s.next_slot = slot);
        Some(slot)
    }

    /// A rule counter slot: the lowest freed one, else a new one below
    /// `cap` (`[dataplane] rule_slots`).
    pub fn rule_slot(&mut self, cap: u32) -> Option<u32> {
        if let Some((&slot, _)) = self.s.free_rule_slots.iter().next() {
            self.take(|s| &mut s.free_rule_slots, &slot);
            return Some(slot);
        }
        let slot = self.s.next_rule_slot;
        if slot >= cap {
            return None;
        }
        self.s.next_rule_slot += 1;
        self.on_undo(move |s| s.next_rule_slot = slot);
        Some(slot)
    }

    pub fn free_rule_slot(&mut self, slot: u32) {
        self.put(|s| &mut s.free_rule_slots, slot, ());
    }
}
