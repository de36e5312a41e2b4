//! The offload manager's [`Device`] over `rte::flow`: a flow's legs
//! lowered to rules for the level of the port each arrives on
//! ([`super::shapes`]) and created there; or, in shadow mode, only kept.
//! On ports with the template API ([`Queues`]) a flow's rules are queued
//! instead: `install` answers `Queued`, `settle` pushes, pulls the
//! completions and says whether they took. A rule's counters are read
//! from its handle either way (`rte_flow_query`).

use std::collections::HashMap;

use dataplane::offload::{Device, FlowSpec, Installed, Level, Refusal, Settled};
use rte::flow::template::{Completion, Op};
use rte::flow::{Counts, Flow, FlowError, Rule};
use tracing::warn;

use super::shapes;

/// The rules of one offloaded flow: each with the port it is on, and
/// where it is once installed (none in shadow mode).
#[derive(Debug)]
pub struct FlowRules {
    pub rules: Vec<(u16, Rule)>,
    /// By rule, in order: the rules installed so far.
    placed: Vec<Placed>,
}

/// Where an installed rule is.
#[derive(Debug)]
enum Placed {
    /// Created by `rte_flow_create`: its handle.
    Sync(Flow),
    /// Queued on a template-API port: tgw's rule id there.
    Queued(u64),
}

impl FlowRules {
    /// The rules as `dpdk-testpmd` commands.
    pub fn testpmd(&self) -> String {
        self.rules
            .iter()
            .map(|(port, r)| r.testpmd(*port))
            .collect()
    }

    /// Whether the NIC holds them (false in shadow mode).
    pub fn installed(&self) -> bool {
        !self.placed.is_empty()
    }

    /// The ids of the rules queued on template-API ports.
    fn queued(&self) -> impl Iterator<Item = u64> + '_ {
        self.placed.iter().filter_map(|p| match p {
            Placed::Queued(id) => Some(*id),
            Placed::Sync(_) => None,
        })
    }
}

/// The flow queues of the ports that have the template API
/// (`rte::flow::template`: a table per rule shape on each such port; a
/// test's fake). Operations are enqueued by tgw's rule id and sent by
/// [`Queues::flush`].
pub trait Queues: Send {
    /// Whether `port` takes rules this way (else `Rule::create`).
    fn has(&self, port: u16) -> bool;
    /// Enqueues the creation of rule `id` on `port`.
    fn create(&mut self, port: u16, id: u64, rule: &Rule) -> Result<(), FlowError>;
    /// Enqueues the destruction of rule `id` on `port`.
    fn destroy(&mut self, port: u16, id: u64) -> Result<(), FlowError>;
    /// Pushes every port's queue and appends the finished operations.
    fn flush(&mut self, out: &mut Vec<Completion>);
    /// The counters of rule `id` on `port` (`rte_flow_query` of its
    /// COUNT, on the handle the queued creation gave).
    fn query(&mut self, port: u16, id: u64) -> Result<Counts, FlowError>;
    /// Creations refused because a port's queue was full.
    fn queue_full(&self) -> u64 {
        0
    }
}

/// The NIC, as the ports' probe found it.
pub struct NicDevice {
    /// By DPDK port id: the level a leg arriving there is lowered for.
    levels: Vec<Level>,
    /// By DPDK port id, by worker: the worker's RX queue on the port
    /// (partial offload sends a flow's frames there).
    queues: Vec<Vec<Option<u16>>>,
    /// Keep the rules, create none.
    shadow: bool,
    /// Creates a rule (`Rule::create`; a test's stand-in).
    create: fn(&Rule, u16) -> Result<Flow, FlowError>,
    /// The template-API ports' queues, if any port has them.
    queues_async: Option<Box<dyn Queues>>,
    /// Queued creations not yet settled, by rule id: their result once
    /// pulled. Bounded by the flows the manager holds (each has at most
    /// two rules); a removed flow's ids leave it.
    results: HashMap<u64, Option<bool>>,
    /// The next rule id.
    next_id: u64,
    /// Reused by `settle`.
    completions: Vec<Completion>,
    /// The queues were pumped since the last [`poll`](Self::poll): the
    /// manager settles its pending flows one by one, and one push and
    /// pull a tick serves them all.
    pumped: bool,
}

impl NicDevice {
    /// A device for ports at `levels` (by port id) whose workers poll
    /// `queues` (by port id, by worker).
    pub fn new(levels: Vec<Level>, queues: Vec<Vec<Option<u16>>>, shadow: bool) -> NicDevice {
        NicDevice {
            levels,
            queues,
            shadow,
            create: |rule, port| rule.create(port),
            queues_async: None,
            results: HashMap::new(),
            next_id: 0,
            completions: Vec::new(),
            pumped: false,
        }
    }

    /// Queues rules on the ports `queues` has instead of creating them.
    pub fn with_queues(mut self, queues: Box<dyn Queues>) -> NicDevice {
        self.set_queues(queues);
        self
    }

    /// As [`with_queues`](Self::with_queues), on a device in place.
    pub fn set_queues(&mut self, queues: Box<dyn Queues>) {
        self.queues_async = Some(queues);
    }

    /// Pushes and pulls the queues (at the end of each control-loop
    /// tick), so that destructions complete and free their queue slots
    /// although no creation is pending; the next tick's first `settle`
    /// pumps again.
    pub fn poll(&mut self) {
        self.pump();
        self.pumped = false;
    }

    /// Drops the template-API queues: their rules, then their tables and
    /// templates, are destroyed (at shutdown, before the ports stop).
    pub fn close_queues(&mut self) {
        self.pump();
        self.queues_async = None;
    }

    /// Creations refused because a template-API queue was full.
    pub fn queue_full(&self) -> u64 {
        self.queues_async.as_ref().map_or(0, |q| q.queue_full())
    }

    /// The API a leg arriving on `port` is installed with.
    pub fn api(&self, port: u16) -> &'static str {
        match &self.queues_async {
            Some(q) if q.has(port) => "async",
            _ => "sync",
        }
    }

    /// Sets the level legs arriving on `port` get (a port whose template
    /// tables failed goes to none).
    pub fn set_level(&mut self, port: u16, level: Level) {
        if let Some(l) = self.levels.get_mut(usize::from(port)) {
            *l = level;
        }
    }

    /// The level a leg arriving on `port` gets.
    pub fn level(&self, port: u16) -> Level {
        self.levels
            .get(usize::from(port))
            .copied()
            .unwrap_or_default()
    }

    /// The rules of `spec`, a leg at a time for its port's level; legs on
    /// ports of level none stay in software, and so do partial legs of a
    /// flow whose mark the NIC would not take ([`shapes::MARK_LIMIT`]).
    pub fn rules(&self, spec: &FlowSpec) -> Result<Vec<(u16, Rule)>, Refusal> {
        let mut out = Vec::with_capacity(2);
        let mut unmarkable = false;
        let mut too_big = false;
        for leg in &spec.legs {
            let rule = match self.level(leg.in_port) {
                Level::None => continue,
                // The leg stays in software: a rule would send whole what
                // software refuses or cuts. The other leg may go.
                Level::Full if leg.too_big => {
                    too_big = true;
                    continue;
                }
                Level::Full => shapes::full(leg),
                Level::Partial => {
                    let Some(queue) = self
                        .queues
                        .get(usize::from(leg.in_port))
                        .and_then(|q| q.get(usize::from(spec.worker)).copied().flatten())
                    else {
                        continue;
                    };
                    let Some(mark) = shapes::mark(spec.id) else {
                        unmarkable = true;
                        continue;
                    };
                    shapes::partial(leg, mark, queue)
                }
            };
            out.push((leg.in_port, rule.map_err(|_| Refusal::Unsupported)?));
        }
        if out.is_empty() {
            return Err(if too_big {
                Refusal::Mtu
            } else if unmarkable {
                Refusal::MarkRange
            } else {
                Refusal::Unsupported
            });
        }
        Ok(out)
    }
}

impl NicDevice {
    /// Pushes the queues and records the creations' results.
    fn pump(&mut self) {
        let Some(q) = self.queues_async.as_mut() else {
            return;
        };
        q.flush(&mut self.completions);
        for c in self.completions.drain(..) {
            if let (Op::Created, Some(r)) = (c.op, self.results.get_mut(&c.id)) {
                *r = Some(c.ok);
            }
        }
    }
}

impl Device for NicDevice {
    type Rule = FlowRules;

    fn install(&mut self, spec: &FlowSpec) -> Result<Installed<FlowRules>, Refusal> {
        let rules = self.rules(spec)?;
        let mut out = FlowRules {
            rules,
            placed: Vec::new(),
        };
        if self.shadow {
            return Ok(Installed::Done(out));
        }
        for (port, rule) in &out.rules {
            let placed = match self.queues_async.as_mut() {
                Some(q) if q.has(*port) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    q.create(*port, id, rule).map(|()| {
                        self.results.insert(id, None);
                        Placed::Queued(id)
                    })
                }
                _ => (self.create)(rule, *port).map(Placed::Sync),
            };
            match placed {
                Ok(p) => out.placed.push(p),
                Err(e) => {
                    // Those placed already go as `out` is removed.
                    self.remove(out);
                    return Err(refusal(&e));
                }
            }
        }
        if out.queued().next().is_none() {
            Ok(Installed::Done(out))
        } else {
            Ok(Installed::Queued(out))
        }
    }

    /// Pushes and pulls the queues (the first call after a `poll`: once
    /// a tick), then: every queued rule took (done),
    /// one failed (refused; the manager removes the flow's rules), or
    /// some are still in flight.
    fn settle(&mut self, rule: &mut FlowRules) -> Settled {
        if !self.pumped {
            self.pump();
            self.pumped = true;
        }
        let mut waiting = false;
        for id in rule.queued() {
            match self.results.get(&id) {
                Some(Some(false)) => return Settled::Refused(Refusal::Failed),
                Some(None) => waiting = true,
                Some(Some(true)) | None => {}
            }
        }
        if waiting {
            return Settled::Waiting;
        }
        for id in rule.queued() {
            self.results.remove(&id);
        }
        Settled::Done
    }

    fn remove(&mut self, rule: FlowRules) {
        for ((port, _), placed) in rule.rules.iter().zip(rule.placed) {
            match placed {
                Placed::Queued(id) => {
                    let settled = self.results.remove(&id);
                    // A failed creation left no rule to destroy.
                    if settled == Some(Some(false)) {
                        continue;
                    }
                    if let Some(q) = self.queues_async.as_mut() {
                        if let Err(e) = q.destroy(*port, id) {
                            warn!(
                                port,
                                "offload: a flow's queued rule could not be destroyed: {e}"
                            );
                        }
                    }
                }
                Placed::Sync(flow) => {
                    if let Err(e) = flow.destroy() {
                        warn!(port, "offload: a flow's rule could not be destroyed: {e}");
                    }
                }
            }
        }
        // The destructions go with the next push: the plane polls at the
        // end of every tick and of a flush, and shutdown closes the queues
        // (one push for all the flows removed, not one each).
    }

    /// The sum of the flow's full rules' counters (partial rules count
    /// nothing: their frames reach the worker, which counts them).
    fn counts(&mut self, rule: &mut FlowRules) -> Option<(u64, u64)> {
        let mut total = None;
        for ((port, r), placed) in rule.rules.iter().zip(&mut rule.placed) {
            if !r.actions.contains(&rte::flow::Action::Count) {
                continue;
            }
            let counts = match placed {
                Placed::Sync(flow) => flow.query_count(),
                Placed::Queued(id) => match self.queues_async.as_mut() {
                    Some(q) => q.query(*port, *id),
                    None => continue,
                },
            };
            if let Ok(c) = counts {
                let (p, b) = total.unwrap_or((0, 0));
                total = Some((p + c.hits, b + c.bytes));
            }
        }
        total
    }
}

/// The manager's reason for a PMD's refusal.
fn refusal(e: &FlowError) -> Refusal {
    match e.errno {
        // EAGAIN: a template-API port's flow queue is full.
        libc_errno::ENOSPC | libc_errno::ENOMEM | libc_errno::EAGAIN => Refusal::Full,
        _ if e.unsupported() || e.no_flow_api() => Refusal::Unsupported,
        _ => Refusal::Failed,
    }
}

/// The errnos the refusal tells apart (Linux's numbers, without `libc`).
mod libc_errno {
    pub const ENOMEM: i32 = nix::errno::Errno::ENOMEM as i32;
    pub const ENOSPC: i32 = nix::errno::Errno::ENOSPC as i32;
    pub const EAGAIN: i32 = nix::errno::Errno::EAGAIN as i32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayvec::ArrayVec;
    use dataplane::flow::FlowId;
    use dataplane::offload::{Leg, TunnelMatch};
    use dataplane::tenant::TenantId;
    use rte::flow::Action;
    use std::sync::{Arc, Mutex};

    fn leg(in_port: u16, tunnel: bool) -> Leg {
        let mut encap = ArrayVec::new();
        encap.extend([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        Leg {
            in_port,
            tunnel: tunnel.then_some(TunnelMatch {
                host: 0xcb00_710b,
                local: 0xcb00_7101,
                key: 7,
                gretap: false,
            }),
            protocol: 17,
            src: (0x0a00_0005, 53),
            dst: (0xc000_0207, 5000),
            decap_len: if tunnel { 42 } else { 0 },
            set_src: None,
            set_dst: None,
            encap,
            out_port: 1 - in_port,
            too_big: false,
        }
    }

    fn spec() -> FlowSpec {
        FlowSpec {
            worker: 1,
            id: FlowId::new(41),
            tenant: TenantId(0),
            epoch: 1,
            legs: [leg(0, false), leg(1, true)],
        }
    }

    /// Worker 1 polls queue 3 of port 0 and none of port 1.
    fn queues() -> Vec<Vec<Option<u16>>> {
        vec![vec![Some(0), Some(3)], vec![Some(0), None]]
    }

    #[test]
    fn each_leg_gets_its_ports_level() {
        let d = NicDevice::new(vec![Level::Partial, Level::Full], queues(), true);
        let rules = d.rules(&spec()).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].0, 0);
        assert_eq!(rules[0].1.actions, vec![Action::Mark(42), Action::Queue(3)]);
        assert_eq!(rules[1].0, 1);
        assert!(rules[1].1.attr.transfer);
        assert_eq!(rules[1].1.actions.last(), Some(&Action::RepresentedPort(0)));
    }

    /// mlx5 takes marks below 0xFFFFEF: a flow whose id + 1 is not below
    /// gets no partial rule, and the refusal says why.
    #[test]
    fn a_flow_whose_mark_the_nic_cannot_take_gets_no_partial_rule() {
        let d = NicDevice::new(vec![Level::Partial, Level::None], queues(), true);
        let mut s = spec();
        s.id = FlowId::new(shapes::MARK_LIMIT - 2);
        let rules = d.rules(&s).unwrap();
        assert_eq!(
            rules[0].1.actions,
            vec![Action::Mark(shapes::MARK_LIMIT - 1), Action::Queue(3)]
        );
        s.id = FlowId::new(shapes::MARK_LIMIT - 1);
        assert_eq!(d.rules(&s).unwrap_err(), Refusal::MarkRange);
        s.id = FlowId::new(u32::MAX);
        assert_eq!(d.rules(&s).unwrap_err(), Refusal::MarkRange);
        // A full leg needs no mark: the flow is still offloaded there.
        let d = NicDevice::new(vec![Level::Partial, Level::Full], queues(), true);
        let rules = d.rules(&s).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].0, 1);
    }

    /// A leg that may carry a packet too big for where it leaves gets no
    /// full rule (the NIC would send it whole, software refuses or cuts
    /// it); the other leg still goes, a partial leg only marks; with no
    /// leg left the refusal says `mtu`.
    #[test]
    fn a_leg_too_big_for_its_way_out_gets_no_full_rule() {
        let full = NicDevice::new(vec![Level::Full, Level::Full], queues(), true);
        let mut s = spec();
        s.legs[0].too_big = true;
        let rules = full.rules(&s).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].0, 1, "the underlay leg, which fits");
        s.legs[1].too_big = true;
        assert_eq!(full.rules(&s).unwrap_err(), Refusal::Mtu);
        assert_eq!(Refusal::Mtu.name(), "mtu");
        // Marks and queues change no packet: partial legs go.
        let partial = NicDevice::new(vec![Level::Partial, Level::Full], queues(), true);
        let rules = partial.rules(&s).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].1.actions, vec![Action::Mark(42), Action::Queue(3)]);
    }

    #[test]
    fn legs_the_port_cannot_take_stay_in_software() {
        // Port 1 partial, but worker 1 polls none of its queues: no rule
        // could bring the frames to it.
        let d = NicDevice::new(vec![Level::None, Level::Partial], queues(), true);
        assert_eq!(d.rules(&spec()).unwrap_err(), Refusal::Unsupported);
        let d = NicDevice::new(vec![Level::None, Level::None], queues(), true);
        assert_eq!(d.rules(&spec()).unwrap_err(), Refusal::Unsupported);
        // A port past the probe's is at level none.
        assert_eq!(d.level(9), Level::None);
    }

    /// Shadow mode keeps the rules and creates none: nothing to count.
    #[test]
    fn shadow_keeps_rules_without_handles() {
        let mut d = NicDevice::new(vec![Level::Full, Level::Full], queues(), true);
        let Ok(Installed::Done(mut r)) = d.install(&spec()) else {
            panic!("installed")
        };
        assert_eq!(r.rules.len(), 2);
        assert!(!r.installed());
        assert_eq!(d.counts(&mut r), None);
        assert!(
            r.testpmd()
                .lines()
                .filter(|l| l.starts_with("flow create"))
                .count()
                == 2
        );
        d.remove(r);
    }

    /// A template-API port's queues as a test sees them: what was
    /// enqueued, and the results it will answer on the next flush.
    #[derive(Default)]
    struct Fake {
        ports: Vec<u16>,
        log: Arc<Mutex<Vec<(Op, u16, u64)>>>,
        answers: Arc<Mutex<Vec<Completion>>>,
        queried: Arc<Mutex<Vec<(u16, u64)>>>,
    }

    impl Queues for Fake {
        fn has(&self, port: u16) -> bool {
            self.ports.contains(&port)
        }
        fn create(&mut self, port: u16, id: u64, _rule: &Rule) -> Result<(), FlowError> {
            self.log.lock().unwrap().push((Op::Created, port, id));
            Ok(())
        }
        fn destroy(&mut self, port: u16, id: u64) -> Result<(), FlowError> {
            self.log.lock().unwrap().push((Op::Destroyed, port, id));
            Ok(())
        }
        fn flush(&mut self, out: &mut Vec<Completion>) {
            out.append(&mut self.answers.lock().unwrap());
        }
        /// Rule `id` counted `id + 3` packets of 100 bytes.
        fn query(&mut self, port: u16, id: u64) -> Result<Counts, FlowError> {
            self.queried.lock().unwrap().push((port, id));
            Ok(Counts {
                hits: id + 3,
                bytes: (id + 3) * 100,
            })
        }
    }

    fn created(id: u64, ok: bool) -> Completion {
        Completion {
            id,
            op: Op::Created,
            ok,
        }
    }

    /// Both ports async: install queues both rules; settle waits until
    /// both completions arrive; remove queues their destruction.
    #[test]
    fn async_ports_queue_rules_and_settle_on_their_completions() {
        let fake = Fake {
            ports: vec![0, 1],
            ..Fake::default()
        };
        let (log, answers) = (fake.log.clone(), fake.answers.clone());
        let mut d = NicDevice::new(vec![Level::Partial, Level::Full], queues(), false)
            .with_queues(Box::new(fake));
        assert_eq!(d.api(0), "async");
        assert_eq!(d.api(7), "sync");
        let Ok(Installed::Queued(mut r)) = d.install(&spec()) else {
            panic!("queued")
        };
        assert!(r.installed());
        assert_eq!(
            *log.lock().unwrap(),
            vec![(Op::Created, 0, 0), (Op::Created, 1, 1)]
        );
        assert_eq!(d.settle(&mut r), Settled::Waiting);
        answers.lock().unwrap().push(created(0, true));
        // Within a tick the queues are pumped once: the answer is read at
        // the next tick's.
        assert_eq!(d.settle(&mut r), Settled::Waiting);
        d.poll();
        assert_eq!(d.settle(&mut r), Settled::Waiting);
        answers.lock().unwrap().push(created(1, true));
        d.poll();
        assert_eq!(d.settle(&mut r), Settled::Done);
        assert!(d.results.is_empty(), "settled ids are forgotten");
        d.remove(r);
        assert_eq!(
            log.lock().unwrap()[2..],
            [(Op::Destroyed, 0, 0), (Op::Destroyed, 1, 1)]
        );
    }

    /// A failed creation refuses the flow; removing it destroys only the
    /// rule that took, and a late completion of a removed flow is dropped.
    #[test]
    fn a_failed_queued_creation_refuses_the_flow() {
        let fake = Fake {
            ports: vec![0, 1],
            ..Fake::default()
        };
        let (log, answers) = (fake.log.clone(), fake.answers.clone());
        let mut d = NicDevice::new(vec![Level::Partial, Level::Full], queues(), false)
            .with_queues(Box::new(fake));
        let Ok(Installed::Queued(mut r)) = d.install(&spec()) else {
            panic!("queued")
        };
        answers.lock().unwrap().push(created(1, false));
        assert_eq!(d.settle(&mut r), Settled::Refused(Refusal::Failed));
        d.remove(r);
        assert_eq!(log.lock().unwrap()[2..], [(Op::Destroyed, 0, 0)]);
        answers.lock().unwrap().push(created(0, true));
        let Ok(Installed::Queued(mut r)) = d.install(&spec()) else {
            panic!("queued")
        };
        d.poll();
        assert_eq!(d.settle(&mut r), Settled::Waiting);
        assert_eq!(d.results.len(), 2, "only the live flow's ids are kept");
    }

    /// A port without the template API keeps the synchronous path; when
    /// its rule is refused, the flow's rule already queued on the other
    /// port is destroyed (queued) and forgotten.
    #[test]
    fn a_sync_refusal_takes_back_the_flows_queued_rule() {
        let fake = Fake {
            ports: vec![0],
            ..Fake::default()
        };
        let log = fake.log.clone();
        let mut d = NicDevice::new(vec![Level::Partial, Level::Full], queues(), false)
            .with_queues(Box::new(fake));
        d.create = |_, _| {
            Err(FlowError {
                op: "rte_flow_create",
                errno: nix::errno::Errno::ENOSPC as i32,
                kind: 0,
                message: String::new(),
            })
        };
        assert_eq!(d.api(1), "sync");
        assert_eq!(d.install(&spec()).unwrap_err(), Refusal::Full);
        assert_eq!(
            *log.lock().unwrap(),
            vec![(Op::Created, 0, 0), (Op::Destroyed, 0, 0)]
        );
        assert!(d.results.is_empty());
    }

    /// A queued rule's counters are read through its port's queue (the
    /// handle `rte_flow_async_create` gave): the full rule's only, since
    /// a partial rule has no COUNT.
    #[test]
    fn queued_rules_are_counted_through_their_queue() {
        let fake = Fake {
            ports: vec![0, 1],
            ..Fake::default()
        };
        let (answers, queried) = (fake.answers.clone(), fake.queried.clone());
        let mut d = NicDevice::new(vec![Level::Partial, Level::Full], queues(), false)
            .with_queues(Box::new(fake));
        let Ok(Installed::Queued(mut r)) = d.install(&spec()) else {
            panic!("queued")
        };
        answers
            .lock()
            .unwrap()
            .extend([created(0, true), created(1, true)]);
        assert_eq!(d.settle(&mut r), Settled::Done);
        assert_eq!(d.counts(&mut r), Some((4, 400)));
        assert_eq!(*queried.lock().unwrap(), vec![(1, 1)]);
    }

    /// A full queue refuses the flow as a full device: it stays in
    /// software, counted as `device_full`.
    #[test]
    fn a_full_queue_is_a_full_device() {
        let e = FlowError {
            op: "rte_flow_async_create",
            errno: nix::errno::Errno::EAGAIN as i32,
            kind: 0,
            message: String::new(),
        };
        assert_eq!(refusal(&e), Refusal::Full);
    }

    #[test]
    fn a_pmd_refusal_is_the_managers_reason() {
        let e = |errno: nix::errno::Errno| FlowError {
            op: "rte_flow_create",
            errno: errno as i32,
            kind: 0,
            message: String::new(),
        };
        assert_eq!(refusal(&e(nix::errno::Errno::ENOSPC)), Refusal::Full);
        assert_eq!(refusal(&e(nix::errno::Errno::ENOMEM)), Refusal::Full);
        assert_eq!(
            refusal(&e(nix::errno::Errno::ENOTSUP)),
            Refusal::Unsupported
        );
        assert_eq!(refusal(&e(nix::errno::Errno::EINVAL)), Refusal::Failed);
    }
}
