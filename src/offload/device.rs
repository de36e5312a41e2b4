//! The offload manager's [`Device`] over `rte::flow`: a flow's legs
//! lowered to rules for the level of the port each arrives on
//! ([`super::shapes`]) and created there; or, in shadow mode, only kept.

use dataplane::offload::{Device, FlowSpec, Installed, Level, Refusal};
use rte::flow::{Flow, FlowError, Rule};
use tracing::warn;

use super::shapes;

/// The rules of one offloaded flow: each with the port it is on, and its
/// handle once created (none in shadow mode).
#[derive(Debug)]
pub struct FlowRules {
    pub rules: Vec<(u16, Rule)>,
    handles: Vec<Flow>,
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
        !self.handles.is_empty()
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
        for leg in &spec.legs {
            let rule = match self.level(leg.in_port) {
                Level::None => continue,
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
            return Err(if unmarkable {
                Refusal::MarkRange
            } else {
                Refusal::Unsupported
            });
        }
        Ok(out)
    }
}

impl Device for NicDevice {
    type Rule = FlowRules;

    fn install(&mut self, spec: &FlowSpec) -> Result<Installed<FlowRules>, Refusal> {
        let rules = self.rules(spec)?;
        if self.shadow {
            return Ok(Installed::Done(FlowRules {
                rules,
                handles: Vec::new(),
            }));
        }
        let mut handles = Vec::with_capacity(rules.len());
        for (port, rule) in &rules {
            match (self.create)(rule, *port) {
                Ok(flow) => handles.push(flow),
                // Those created already are destroyed as `handles` drops.
                Err(e) => return Err(refusal(&e)),
            }
        }
        Ok(Installed::Done(FlowRules { rules, handles }))
    }

    fn remove(&mut self, rule: FlowRules) {
        for flow in rule.handles {
            let port = flow.port();
            if let Err(e) = flow.destroy() {
                warn!(port, "offload: a flow's rule could not be destroyed: {e}");
            }
        }
    }

    /// The sum of the flow's full rules' counters (partial rules count
    /// nothing: their frames reach the worker, which counts them).
    fn counts(&mut self, rule: &mut FlowRules) -> Option<(u64, u64)> {
        let mut total = None;
        for (flow, (_, r)) in rule.handles.iter_mut().zip(&rule.rules) {
            if !r.actions.contains(&rte::flow::Action::Count) {
                continue;
            }
            if let Ok(c) = flow.query_count() {
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
        libc_errno::ENOSPC | libc_errno::ENOMEM => Refusal::Full,
        _ if e.unsupported() || e.no_flow_api() => Refusal::Unsupported,
        _ => Refusal::Failed,
    }
}

/// The errnos the refusal tells apart (Linux's numbers, without `libc`).
mod libc_errno {
    pub const ENOMEM: i32 = nix::errno::Errno::ENOMEM as i32;
    pub const ENOSPC: i32 = nix::errno::Errno::ENOSPC as i32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayvec::ArrayVec;
    use dataplane::flow::FlowId;
    use dataplane::offload::{Leg, TunnelMatch};
    use dataplane::tenant::TenantId;
    use rte::flow::Action;

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
