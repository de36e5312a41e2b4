//! The offload manager: the control plane's side of flow offload
//! (docs/offload.md). Each control-loop tick it drains the workers'
//! request queues round-robin within a budget, turns candidates into
//! [`FlowSpec`]s with the published tables, installs them through a
//! [`Device`] (the daemon's, over `rte::flow`; a recording one in shadow
//! mode and in tests), asks the device for each flow's hit counters every
//! `query_interval` and refreshes the owning worker's flow when there
//! were hits, and removes the rules of flows the workers ended. A change
//! to a tenant pulls its flows back.
//!
//! A flow's states: pending (the device took the rule and confirms
//! later), offloaded, dying (ended, its rule destroyed at the end of the
//! tick), gone (its slot free). Everything is sized at construction: the
//! table of flows holds `Limits::flows`, and nothing grows per packet or
//! per request.
//!
//! A rule carries the MACs of the flow's next hops, read once; each
//! flow keeps the neighbour keys its spec read them from, and when the
//! neighbour table changes ([`crate::neighbour::Neighbours::changes`])
//! the manager looks again and pulls back the flows whose MAC moved
//! ([`Feedback::Moved`]: software decides their next packet, and offers
//! them again).

use std::collections::HashMap;
use std::sync::Arc;

use arrayvec::ArrayVec;

use super::queue::{Feedback, Link, Request};
use super::spec::NotOffloadable;
use super::{Candidate, FlowSpec};
use crate::flow::{FlowId, FlowKey};
use crate::neighbour::NeighKey;
use crate::tables::Tables;
use crate::tenant::TenantId;

/// Slots each tick's walks visit at most, to confirm queued rules and to
/// query counters: a bound on the tick's pause whatever the table's
/// size (a million flows are queried in 245 ticks).
pub const SCAN_PER_TICK: usize = 4096;

/// What takes rules: the NIC (the daemon's device over `rte::flow`), or
/// a recorder. Kept small: install, confirm, count, remove.
pub trait Device {
    /// A rule set installed for one flow (both directions); dropped or
    /// given back to [`Device::remove`] when the flow goes.
    type Rule;

    /// Installs the rules of `spec`: done, queued (an asynchronous device
    /// confirms later, [`Device::settle`]), or refused.
    fn install(&mut self, spec: &FlowSpec) -> Result<Installed<Self::Rule>, Refusal>;

    /// Whether a queued rule is in place yet. A synchronous device's
    /// rules always are.
    fn settle(&mut self, _rule: &mut Self::Rule) -> Settled {
        Settled::Done
    }

    /// Destroys the rules (pending or in place).
    fn remove(&mut self, rule: Self::Rule);

    /// The packets and bytes the rules matched since they were installed,
    /// if the device counts.
    fn counts(&mut self, rule: &mut Self::Rule) -> Option<(u64, u64)>;
}

/// What [`Device::install`] did.
#[derive(Debug)]
pub enum Installed<R> {
    /// The rules are in place.
    Done(R),
    /// The rules are queued: [`Device::settle`] says when they are in.
    Queued(R),
}

/// Where a queued rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Waiting,
    Done,
    Refused(Refusal),
}

/// Why the device would not take a flow's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Its tables are full.
    Full,
    /// The rule's shape is not supported on the port.
    Unsupported,
    /// Any other error.
    Failed,
    /// The flow's mark (id + 1) is not below the marks the NIC takes, and
    /// no other leg could be offloaded.
    MarkRange,
    /// Every leg that could be offloaded is on a full port and may carry
    /// a packet too big for where it leaves (`Leg::too_big`): a full rule
    /// would send it whole where software answers Fragmentation Needed.
    Mtu,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::Full,
        Refusal::Unsupported,
        Refusal::Failed,
        Refusal::MarkRange,
        Refusal::Mtu,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The reason's stable name, for metrics and `tgwctl`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Full => "device_full",
            Refusal::Unsupported => "unsupported",
            Refusal::Failed => "failed",
            Refusal::MarkRange => "mark_range",
            Refusal::Mtu => "mtu",
        }
    }
}

/// The manager's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Flows offloaded (pending, offloaded or dying) at most: the NIC's
    /// table, or the share of it tgw takes.
    pub flows: usize,
    /// Of those, the most one tenant may hold, so that one tenant cannot
    /// take the whole table.
    pub per_tenant: usize,
    /// Tenant slots ([`TenantId`] below it): a candidate of a slot past
    /// it is refused.
    pub tenants: usize,
    /// Ticks of the clock `tick` is given between two queries of the
    /// flows' hit counters.
    pub query_interval: u64,
}

/// A flow's state in the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The device queued its rules.
    Pending,
    /// Its rules are in place.
    Offloaded,
    /// Ended or pulled back: its rules go at the end of the tick.
    Dying,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Offloaded => "offloaded",
            State::Dying => "dying",
        }
    }
}

/// What the manager counts (for /metrics and `tgwctl offload`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Candidates taken from the workers' queues, and end notices.
    pub candidates: u64,
    pub ended: u64,
    /// End notices of flows the manager does not hold (refused earlier).
    pub ended_unknown: u64,
    /// Flows removed because their worker answered a refresh with a
    /// `Stale` notice (their `Ended` was lost on a full queue).
    pub stale: u64,
    /// Flows whose rules went in (confirmed), and flows gone since.
    pub installed: u64,
    pub removed: u64,
    /// Flows pulled back (a tenant changed, a flush, shutdown, a next
    /// hop's MAC moved).
    pub pulled_back: u64,
    /// Of those, flows pulled back because a next hop's MAC moved.
    pub moved: u64,
    /// Candidates refused: the flow is not offloadable, by reason.
    pub not_offloadable: [u64; NotOffloadable::COUNT],
    /// Candidates the device refused, by reason.
    pub refused: [u64; Refusal::COUNT],
    /// Candidates refused because the table was full, and because their
    /// tenant held its share.
    pub limit_flows: u64,
    pub limit_tenant: u64,
    /// Refreshes sent, and feedback dropped because a worker's feedback
    /// queue was full.
    pub refreshes: u64,
    pub feedback_full: u64,
    /// Flows pending and offloaded now (gauges).
    pub pending: u64,
    pub offloaded: u64,
}

/// One flow the manager holds.
#[derive(Debug)]
struct Entry<R> {
    state: State,
    spec: FlowSpec,
    /// The flow's forward key, which feedback names it by.
    key: FlowKey,
    /// `None` once given back to the device.
    rule: Option<R>,
    /// The counts last reported to the worker.
    seen: (u64, u64),
    /// The neighbours whose MACs the spec holds, with those MACs.
    neighbours: Neighbours,
}

/// Neighbour keys a spec reads at most: the tunnel's outer next hop and
/// a gretap VM on the way in, the public next hop on the way out.
pub const MAX_SPEC_NEIGHBOURS: usize = 4;

type Neighbours = ArrayVec<(NeighKey, [u8; 6]), MAX_SPEC_NEIGHBOURS>;

/// A flow as [`Offloads::flows`] shows it (`tgwctl offload show`).
#[derive(Debug)]
pub struct FlowView<'a, R> {
    pub worker: u16,
    pub id: FlowId,
    pub tenant: TenantId,
    pub state: State,
    pub spec: &'a FlowSpec,
    pub rule: Option<&'a R>,
    /// Packets and bytes its rules matched, as last reported.
    pub hits: (u64, u64),
}

/// The offload manager.
pub struct Offloads<D: Device> {
    links: Vec<Arc<Link>>,
    limits: Limits,
    /// The flows, in slots; `index` finds a flow's slot by worker and id.
    entries: Vec<Option<Entry<D::Rule>>>,
    free: Vec<u32>,
    index: HashMap<(u16, FlowId), u32>,
    /// Slots of flows dying this tick.
    dying: Vec<u32>,
    /// Flows held by tenant slot.
    per_tenant: Vec<u32>,
    /// The worker whose queue the next tick drains first.
    next_worker: usize,
    /// When the next round of counter queries starts, and where the
    /// running one is.
    next_query: u64,
    query_at: Option<usize>,
    /// Where the walk confirming queued rules is.
    settle_at: usize,
    /// Where the walk pulling back flows of changed tenants is, and the
    /// slots it has left to visit since the last new tables.
    epoch_at: usize,
    epoch_left: usize,
    /// The tables generation whose tenants' epochs were last checked.
    generation: Option<u64>,
    /// Where the walk looking again at the flows' next hops is, the
    /// slots it has left to visit, and the neighbour table's count of
    /// changes it started for.
    neighbour_at: usize,
    neighbour_left: usize,
    neighbour_changes: u64,
    stats: Stats,
}

impl<D: Device> Offloads<D> {
    /// A manager for the workers of `links` (one each, by worker index),
    /// within `limits`. Allocates all it will use.
    pub fn new(links: Vec<Arc<Link>>, limits: Limits) -> Self {
        let n = limits.flows;
        Offloads {
            links,
            limits,
            entries: (0..n).map(|_| None).collect(),
            free: (0..n as u32).rev().collect(),
            index: HashMap::with_capacity(n),
            dying: Vec::with_capacity(n),
            per_tenant: vec![0; limits.tenants],
            next_worker: 0,
            next_query: 0,
            query_at: None,
            settle_at: 0,
            epoch_at: 0,
            epoch_left: 0,
            generation: None,
            neighbour_at: 0,
            neighbour_left: 0,
            neighbour_changes: 0,
            stats: Stats::default(),
        }
    }

    /// One control-loop tick at time `now`: confirms queued rules, pulls
    /// back flows of tenants that changed in `t`, takes up to `budget`
    /// requests from the workers' queues (one from each in turn, starting
    /// with another worker each tick), queries the hit counters (a round
    /// over every flow starts once `query_interval` has passed since the
    /// last began, and goes on [`SCAN_PER_TICK`] slots a tick), and
    /// destroys the rules of flows that ended. `mac` gives next hops'
    /// MACs ([`super::macs_of`]).
    pub fn tick(
        &mut self,
        now: u64,
        budget: usize,
        t: &Tables,
        mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>,
        device: &mut D,
    ) {
        self.settle(device);
        self.follow_epochs(t);
        self.follow_neighbours(t, mac);
        self.drain(budget, t, mac, device);
        self.query(now, device);
        self.reap(device);
    }

    /// Pulls back every flow of `tenant` at once: its rules are destroyed
    /// and its workers told ([`Feedback::Released`]). A walk of the whole
    /// table: a change to a tenant's epoch needs no call, `tick` pulls
    /// its flows back as it meets them ([`SCAN_PER_TICK`] slots a tick).
    pub fn pull_back(&mut self, tenant: TenantId, device: &mut D) {
        self.pull_back_if(|spec| spec.tenant == tenant);
        self.reap(device);
    }

    /// Pulls back every flow (`tgwctl offload flush`, shutdown).
    pub fn pull_back_all(&mut self, device: &mut D) {
        self.pull_back_if(|_| true);
        self.reap(device);
    }

    /// The flows held, in slot order.
    pub fn flows(&self) -> impl Iterator<Item = FlowView<'_, D::Rule>> + '_ {
        self.entries.iter().flatten().map(|e| FlowView {
            worker: e.spec.worker,
            id: e.spec.id,
            tenant: e.spec.tenant,
            state: e.state,
            spec: &e.spec,
            rule: e.rule.as_ref(),
            hits: e.seen,
        })
    }

    /// What the manager counted, with the gauges of now.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The bounds it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Flows held (pending, offloaded or dying).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Confirms or drops the rules the device queued.
    fn settle(&mut self, device: &mut D) {
        let n = self.entries.len();
        if self.stats.pending == 0 || n == 0 {
            return;
        }
        for _ in 0..SCAN_PER_TICK.min(n) {
            let slot = self.settle_at;
            self.settle_at = (slot + 1) % n;
            let Some(e) = self.entries[slot].as_mut() else {
                continue;
            };
            let (State::Pending, Some(rule)) = (e.state, e.rule.as_mut()) else {
                continue;
            };
            match device.settle(rule) {
                Settled::Waiting => {}
                Settled::Done => {
                    e.state = State::Offloaded;
                    self.stats.pending -= 1;
                    self.stats.offloaded += 1;
                    self.stats.installed += 1;
                }
                Settled::Refused(why) => {
                    self.stats.refused[why as usize] += 1;
                    // The worker's flow stays requested: its end notice
                    // finds nothing, as for any refused candidate.
                    self.dies(slot as u32);
                }
            }
        }
    }

    /// After a new snapshot: flows of tenants gone or changed are pulled
    /// back (their rules were decided under the old state).
    fn follow_epochs(&mut self, t: &Tables) {
        let n = self.entries.len();
        if self.generation != Some(t.generation) {
            // A whole cycle of the walk from where it is: every flow is
            // seen after the change, however often changes come.
            self.generation = Some(t.generation);
            self.epoch_left = n;
        }
        let visit = self.epoch_left.min(SCAN_PER_TICK);
        self.epoch_left -= visit;
        for _ in 0..visit {
            let slot = self.epoch_at;
            self.epoch_at = (slot + 1) % n;
            let stale = self.entries[slot].as_ref().is_some_and(|e| {
                t.tenants
                    .get(e.spec.tenant)
                    .is_none_or(|tenant| tenant.epoch != e.spec.epoch)
            });
            if stale {
                self.pull_back_slot(slot, false);
            }
        }
    }

    /// After the neighbour table changed: flows whose rules carry a MAC
    /// that is not their next hop's any more (another, failed, or
    /// forgotten) are pulled back to be offered again ([`Feedback::Moved`]).
    /// A walk of [`SCAN_PER_TICK`] slots a tick, a whole cycle after each
    /// change, as for epochs.
    fn follow_neighbours(&mut self, t: &Tables, mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>) {
        let n = self.entries.len();
        let changes = t.neighbours.changes();
        if changes != self.neighbour_changes {
            self.neighbour_changes = changes;
            self.neighbour_left = n;
        }
        let visit = self.neighbour_left.min(SCAN_PER_TICK);
        self.neighbour_left -= visit;
        for _ in 0..visit {
            let slot = self.neighbour_at;
            self.neighbour_at = (slot + 1) % n;
            let moved = self.entries[slot]
                .as_ref()
                .is_some_and(|e| e.neighbours.iter().any(|&(key, was)| mac(key) != Some(was)));
            if moved {
                self.stats.moved += 1;
                self.pull_back_slot(slot, true);
            }
        }
    }

    /// Takes up to `budget` requests, one worker at a time in turn.
    fn drain(
        &mut self,
        budget: usize,
        t: &Tables,
        mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>,
        device: &mut D,
    ) {
        let workers = self.links.len();
        if workers == 0 {
            return;
        }
        let first = self.next_worker % workers;
        self.next_worker = (first + 1) % workers;
        let mut taken = 0;
        // A round takes one request from each worker; it ends the drain
        // when every queue was empty.
        while taken < budget {
            let mut any = false;
            for w in (first..workers).chain(0..first) {
                if taken >= budget {
                    break;
                }
                let Some(r) = self.links[w].next_request() else {
                    continue;
                };
                any = true;
                taken += 1;
                match r {
                    Request::Candidate(c) => self.candidate(&c, t, mac, device),
                    Request::Ended { worker, id } => self.ended(worker, id),
                    Request::Stale { worker, id, key } => self.stale(worker, id, key),
                }
            }
            if !any {
                break;
            }
        }
    }

    fn candidate(
        &mut self,
        c: &Candidate,
        t: &Tables,
        mac: &mut impl FnMut(NeighKey) -> Option<[u8; 6]>,
        device: &mut D,
    ) {
        self.stats.candidates += 1;
        if usize::from(c.worker) >= self.links.len() {
            self.stats.not_offloadable[NotOffloadable::Shape as usize] += 1;
            return;
        }
        // An entry of the same id is of a flow whose end notice was lost:
        // the worker reused the id.
        if let Some(&slot) = self.index.get(&(c.worker, c.id)) {
            self.dies(slot);
            self.reap(device);
        }
        let tenant = c.conn.tenant_id().index();
        if self.free.is_empty() {
            self.stats.limit_flows += 1;
            return;
        }
        match self.per_tenant.get(tenant) {
            Some(&n) if (n as usize) < self.limits.per_tenant => {}
            _ => {
                self.stats.limit_tenant += 1;
                return;
            }
        }
        // The neighbours the spec reads, to look again when they change.
        let mut neighbours = Neighbours::new();
        let mut unwatched = false;
        let mut read = |key: NeighKey| {
            let m = mac(key);
            if let Some(m) = m {
                unwatched |= neighbours.try_push((key, m)).is_err();
            }
            m
        };
        let spec = FlowSpec::build(c, t, &mut read);
        if unwatched {
            // More next hops than a flow keeps: none is (a spec reads
            // three at most).
            self.stats.not_offloadable[NotOffloadable::Shape as usize] += 1;
            return;
        }
        let spec = match spec {
            Ok(spec) => spec,
            Err(why) => {
                self.stats.not_offloadable[why as usize] += 1;
                return;
            }
        };
        let (state, rule) = match device.install(&spec) {
            Ok(Installed::Done(rule)) => (State::Offloaded, rule),
            Ok(Installed::Queued(rule)) => (State::Pending, rule),
            Err(why) => {
                self.stats.refused[why as usize] += 1;
                return;
            }
        };
        let Some(slot) = self.free.pop() else {
            device.remove(rule);
            return;
        };
        match state {
            State::Offloaded => {
                self.stats.offloaded += 1;
                self.stats.installed += 1;
            }
            _ => self.stats.pending += 1,
        }
        self.per_tenant[tenant] += 1;
        self.index.insert((c.worker, c.id), slot);
        self.entries[slot as usize] = Some(Entry {
            state,
            spec,
            key: c.keys[0],
            rule: Some(rule),
            seen: (0, 0),
            neighbours,
        });
    }

    fn ended(&mut self, worker: u16, id: FlowId) {
        self.stats.ended += 1;
        match self.index.get(&(worker, id)) {
            Some(&slot) => self.dies(slot),
            None => self.stats.ended_unknown += 1,
        }
    }

    /// Worker `worker` does not hold flow `id` with forward key `key` as
    /// requested: if that is the flow held (not another that reused the
    /// id since), its rules go, as on its lost `Ended`.
    fn stale(&mut self, worker: u16, id: FlowId, key: FlowKey) {
        let Some(&slot) = self.index.get(&(worker, id)) else {
            return;
        };
        let same = self.entries[slot as usize]
            .as_ref()
            .is_some_and(|e| e.key == key && e.state != State::Dying);
        if same {
            self.stats.stale += 1;
            self.dies(slot);
        }
    }

    /// Queries the counters of this tick's share of the offloaded flows,
    /// and refreshes the flows that had hits since their last query.
    fn query(&mut self, now: u64, device: &mut D) {
        let start = match self.query_at {
            Some(at) => at,
            None if now >= self.next_query => {
                self.next_query = now.saturating_add(self.limits.query_interval.max(1));
                0
            }
            None => return,
        };
        let end = start.saturating_add(SCAN_PER_TICK).min(self.entries.len());
        self.query_at = (end < self.entries.len()).then_some(end);
        for e in self.entries[start..end].iter_mut().flatten() {
            let (State::Offloaded, Some(rule)) = (e.state, e.rule.as_mut()) else {
                continue;
            };
            let Some((packets, bytes)) = device.counts(rule) else {
                continue;
            };
            if packets <= e.seen.0 {
                continue;
            }
            let fb = Feedback::Refresh {
                id: e.spec.id,
                key: e.key,
                packets: packets - e.seen.0,
                bytes: bytes.saturating_sub(e.seen.1),
            };
            // Not sent: the hits are reported with the next query's.
            let Some(link) = self.links.get(usize::from(e.spec.worker)) else {
                continue;
            };
            if link.send(fb) {
                e.seen = (packets, bytes);
                self.stats.refreshes += 1;
            } else {
                self.stats.feedback_full += 1;
            }
        }
    }

    /// Marks the flows `doomed` picks dying, and tells their workers.
    fn pull_back_if(&mut self, doomed: impl Fn(&FlowSpec) -> bool) {
        for slot in 0..self.entries.len() {
            if self.entries[slot].as_ref().is_some_and(|e| doomed(&e.spec)) {
                self.pull_back_slot(slot, false);
            }
        }
    }

    /// Marks flow `slot` dying, and tells its worker: for good, or, when
    /// only a next hop moved (`again`), to be offered again.
    fn pull_back_slot(&mut self, slot: usize, again: bool) {
        let Some(e) = self.entries[slot].as_ref() else {
            return;
        };
        if e.state == State::Dying {
            return;
        }
        let (id, key) = (e.spec.id, e.key);
        let fb = if again {
            Feedback::Moved { id, key }
        } else {
            Feedback::Released { id, key }
        };
        // A release that does not fit leaves the worker's flow marked
        // requested; its end notice then finds nothing. Software handles
        // its packets either way, the rules being gone.
        match self.links.get(usize::from(e.spec.worker)) {
            Some(link) if link.send(fb) => {}
            _ => self.stats.feedback_full += 1,
        }
        self.stats.pulled_back += 1;
        self.dies(slot as u32);
    }

    /// Flow `slot` is dying: out of the counts of the living.
    fn dies(&mut self, slot: u32) {
        let Some(e) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        match e.state {
            State::Pending => self.stats.pending -= 1,
            State::Offloaded => self.stats.offloaded -= 1,
            State::Dying => return,
        }
        e.state = State::Dying;
        self.dying.push(slot);
    }

    /// Destroys the rules of the dying flows and frees their slots.
    fn reap(&mut self, device: &mut D) {
        while let Some(slot) = self.dying.pop() {
            let Some(e) = self.entries.get_mut(slot as usize).and_then(Option::take) else {
                continue;
            };
            if let Some(rule) = e.rule {
                device.remove(rule);
            }
            self.index.remove(&(e.spec.worker, e.spec.id));
            if let Some(n) = self.per_tenant.get_mut(e.spec.tenant.index()) {
                *n = n.saturating_sub(1);
            }
            self.free.push(slot);
            self.stats.removed += 1;
        }
    }
}
