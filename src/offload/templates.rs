//! The template/async flow API on the ports that have it: the offload
//! device's [`Queues`] over `rte::flow::template` (docs/offload.md,
//! "The template/async API").
//!
//! At start, before the ports start, [`configure`] asks each port for the
//! API (`rte_flow_info_get`) and sets up two flow queues for the control
//! plane (`rte_flow_configure`): [`QUEUE`] for the per-flow rules, and
//! [`STATIC_QUEUE`] for the static ones (root, deny, steering:
//! `super::statics`), whose creations are waited for one by one. The
//! probe asks such a port by templates ([`check`]): DPDK 22.11's mlx5 in
//! HW steering mode takes no synchronous call. Once the probe has set the
//! ports' levels,
//! [`TemplateQueues::open`] makes a template table per per-flow rule shape
//! the port carries at its level — the shapes are [`probe::flow_shapes`]'s
//! rules, built by `shapes.rs` from synthetic flows, so a template cannot
//! drift from the rules it takes — each sized for `[offload] max_flows`
//! rules. A rule is enqueued into the table of its [`shape_key`]; a rule
//! no table has is refused (ENOTSUP: the flow stays in software). A port
//! where `rte_flow_info_get` or `rte_flow_configure` fails logs why and
//! keeps the synchronous API; one whose tables fail goes to level none
//! (`OffloadPlane::use_templates`): HWS would refuse its rules one by one.
//!
//! Bounded: operations in flight per port are at most the queue's size
//! (`[offload] queue_depth`, at most what the port offers); a creation
//! past it is refused (EAGAIN, counted in [`TemplateQueues::queue_full`],
//! the flow stays in software), a destruction first pulls what is done.

use nix::errno::Errno;
use rte::flow::template::{self, Api, Completion, Configured, PortFlows, Table};
use rte::flow::{Action, Counts, FlowError, Item, Masked, Rule};
use tracing::{info, warn};

use super::device::Queues;
use crate::logs::Throttle;

/// The flow queue the control plane uses on each port for per-flow rules.
pub const QUEUE: u32 = 0;
/// The flow queue of the static rules (`super::statics`): apart, so that
/// waiting for one of them takes no per-flow rule's completion.
pub const STATIC_QUEUE: u32 = 1;
/// Flow queues asked of each port.
const QUEUES: u16 = 2;

/// A rule with its values erased: what a template fixes (attributes,
/// item types and masks, action types, and the length of raw headers,
/// which a PMD sizes from the template) and nothing a rule brings. Two
/// rules of one shape key fit one template table.
pub fn shape_key(rule: &Rule) -> Rule {
    Rule {
        attr: rule.attr,
        pattern: rule.pattern.iter().map(erase_item).collect(),
        actions: rule.actions.iter().map(erase_action).collect(),
    }
}

fn masked<T: Default + Copy>(m: &Option<Masked<T>>) -> Option<Masked<T>> {
    m.map(|m| Masked {
        spec: T::default(),
        mask: m.mask,
    })
}

fn erase_item(item: &Item) -> Item {
    match item {
        Item::Eth {
            dst,
            src,
            ether_type,
        } => Item::Eth {
            dst: masked(dst),
            src: masked(src),
            ether_type: ether_type.map(|_| 0),
        },
        Item::Ipv4 {
            version_ihl,
            tos,
            fragment_offset,
            ttl,
            src,
            dst,
            protocol,
        } => Item::Ipv4 {
            version_ihl: version_ihl.map(|_| 0),
            tos: masked(tos),
            fragment_offset: masked(fragment_offset),
            ttl: masked(ttl),
            src: masked(src),
            dst: masked(dst),
            protocol: protocol.map(|_| 0),
        },
        Item::Udp { src, dst } => Item::Udp {
            src: masked(src),
            dst: masked(dst),
        },
        Item::Tcp { src, dst, flags } => Item::Tcp {
            src: masked(src),
            dst: masked(dst),
            flags: masked(flags),
        },
        Item::Gre {
            protocol,
            checksum_present,
            key_present,
            sequence_present,
        } => Item::Gre {
            protocol: protocol.map(|_| 0),
            checksum_present: checksum_present.map(|_| false),
            key_present: key_present.map(|_| false),
            sequence_present: sequence_present.map(|_| false),
        },
        Item::GreKey(_) => Item::GreKey(0),
        // The level and the checks are what a template fixes.
        Item::Integrity { .. } => item.clone(),
        Item::Mark(_) => Item::Mark(0),
        Item::Meta(m) => Item::Meta(Masked {
            spec: 0,
            mask: m.mask,
        }),
    }
}

fn erase_action(action: &Action) -> Action {
    match action {
        Action::RawEncap(b) => Action::RawEncap(vec![0; b.len()]),
        Action::RawDecap(b) => Action::RawDecap(vec![0; b.len()]),
        Action::Drop => Action::Drop,
        Action::DecTtl => Action::DecTtl,
        Action::Count => Action::Count,
        Action::Queue(_) => Action::Queue(0),
        Action::Rss(q) => Action::Rss(vec![0; q.len()]),
        Action::Mark(_) => Action::Mark(0),
        Action::Age(_) => Action::Age(0),
        Action::SetIpv4Src(_) => Action::SetIpv4Src(0),
        Action::SetIpv4Dst(_) => Action::SetIpv4Dst(0),
        Action::SetTpSrc(_) => Action::SetTpSrc(0),
        Action::SetTpDst(_) => Action::SetTpDst(0),
        Action::SetMacSrc(_) => Action::SetMacSrc([0; 6]),
        Action::SetMacDst(_) => Action::SetMacDst([0; 6]),
        Action::PortId(_) => Action::PortId(0),
        Action::RepresentedPort(_) => Action::RepresentedPort(0),
        Action::Jump(_) => Action::Jump(0),
    }
}

/// Which API a port's per-flow rules use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortApi {
    /// The template API: the port was configured with one flow queue.
    Async(Configured),
    /// The synchronous API: why not the template one.
    Sync(String),
}

/// What [`configure`] asks each port for.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Operations in flight on the control plane's flow queue.
    pub queue_depth: u32,
    /// Rules with a COUNT the port may hold (a flow has one per port).
    pub max_flows: u32,
}

/// Asks `port` for the template API and, if it has it, configures one
/// flow queue: after `rte_eth_dev_configure`, before the port starts.
pub fn configure(port: u16, sizes: Sizes) -> PortApi {
    let info = match template::probe(port) {
        Ok(Api::Template(info)) => info,
        Ok(Api::Sync(why)) => return PortApi::Sync(why.to_string()),
        Err(e) => return PortApi::Sync(e.to_string()),
    };
    if info.max_queues < u32::from(QUEUES) {
        return PortApi::Sync(format!(
            "the port offers {} flow queues, not {QUEUES}",
            info.max_queues
        ));
    }
    let config = template::Config {
        queues: QUEUES,
        queue_size: sizes.queue_depth.min(info.max_queue_size).max(1),
        counters: sizes.max_flows.min(info.max_counters),
        aging_objects: 0,
    };
    match template::configure(port, &config) {
        Ok(configured) => PortApi::Async(configured),
        Err(e) => PortApi::Sync(e.to_string()),
    }
}

/// Whether `port`'s NIC takes `rule`, as the probe asks it: on a port of
/// the template API (`apis` says which), by making the rule's pattern and
/// actions templates and a one-rule table, then destroying them, since
/// DPDK 22.11's mlx5 in HW steering mode has no `validate` op and
/// refuses `rte_flow_create`; on the others by `rte_flow_validate`. The
/// PMD's refusal is the shape's verdict either way.
///
/// Before the port starts, mlx5 (22.11, `flow_hw_table_create`) checks
/// the templates (`flow_hw_pattern_validate`, `flow_hw_actions_validate`)
/// and makes the matcher, but translates a table's actions only when the
/// port starts (`flow_hw_table_update`, from `mlx5_dev_start`): a refusal
/// found only there (a COUNT in a root table) is not seen by this probe.
pub fn check(apis: &[(u16, PortApi)], rule: &Rule, port: u16) -> Result<(), FlowError> {
    match apis.iter().find(|(p, _)| *p == port) {
        Some((_, PortApi::Async(_))) => Table::new(port, rule, 1).map(drop),
        _ => rule.validate(port),
    }
}

/// One template-API port: its queue and tables, and the shape key of
/// each table, by table index.
struct AsyncPort {
    port: u16,
    flows: PortFlows,
    keys: Vec<Rule>,
}

/// The flow queues of the template-API ports.
pub struct TemplateQueues {
    ports: Vec<AsyncPort>,
    /// Creations refused because a queue was full.
    queue_full: u64,
    /// Completions pulled while making room for a destruction, handed
    /// out by the next `flush`.
    early: Vec<Completion>,
    /// A failing push or pull would otherwise warn every tick.
    throttle: Throttle,
}

impl TemplateQueues {
    pub fn new() -> TemplateQueues {
        TemplateQueues {
            ports: Vec::new(),
            queue_full: 0,
            early: Vec::new(),
            throttle: Throttle::per_minute(),
        }
    }

    /// Makes a table for each of `shapes` (the port's per-flow rule
    /// shapes) on the port `configured` describes; the tables hold
    /// `nb_flows` rules each. On a failure the tables made go, and the
    /// port keeps the synchronous API.
    pub fn open(
        &mut self,
        configured: Configured,
        shapes: &[Rule],
        nb_flows: u32,
    ) -> Result<(), FlowError> {
        let port = configured.port;
        let mut flows = PortFlows::new(configured, QUEUE)?;
        let mut keys = Vec::with_capacity(shapes.len());
        for shape in shapes {
            let key = shape_key(shape);
            if keys.contains(&key) {
                continue;
            }
            flows.add(Table::new(port, shape, nb_flows)?)?;
            keys.push(key);
        }
        let queue_size = configured.queue_size;
        info!(
            port,
            tables = keys.len(),
            nb_flows,
            queue_size,
            "offload: template tables made"
        );
        self.ports.push(AsyncPort { port, flows, keys });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    fn port(&mut self, port: u16) -> Result<&mut AsyncPort, FlowError> {
        self.ports
            .iter_mut()
            .find(|p| p.port == port)
            .ok_or_else(|| FlowError {
                op: "rte_flow_async_create",
                errno: Errno::ENODEV as i32,
                kind: 0,
                message: format!("port {port} has no template tables"),
            })
    }
}

impl Default for TemplateQueues {
    fn default() -> Self {
        TemplateQueues::new()
    }
}

impl Queues for TemplateQueues {
    fn has(&self, port: u16) -> bool {
        self.ports.iter().any(|p| p.port == port)
    }

    fn create(&mut self, port: u16, id: u64, rule: &Rule) -> Result<(), FlowError> {
        let p = self.port(port)?;
        let key = shape_key(rule);
        let Some(table) = p.keys.iter().position(|k| *k == key) else {
            return Err(FlowError {
                op: "rte_flow_async_create",
                errno: Errno::ENOTSUP as i32,
                kind: 0,
                message: "no template table has the rule's shape".to_owned(),
            });
        };
        let result = p.flows.create(table, id, rule);
        if matches!(&result, Err(e) if e.errno == Errno::EAGAIN as i32) {
            self.queue_full += 1;
        }
        result
    }

    fn destroy(&mut self, port: u16, id: u64) -> Result<(), FlowError> {
        let early = &mut self.early;
        let p = self
            .ports
            .iter_mut()
            .find(|p| p.port == port)
            .ok_or_else(|| FlowError {
                op: "rte_flow_async_destroy",
                errno: Errno::ENODEV as i32,
                kind: 0,
                message: format!("port {port} has no template tables"),
            })?;
        // A full queue: send what waits and take what is done, a few
        // times, before giving up (the rule then stays until shutdown).
        for _ in 0..8 {
            match p.flows.destroy(id) {
                Err(e) if e.errno == Errno::EAGAIN as i32 => {
                    p.flows.push()?;
                    p.flows.pull(early)?;
                }
                other => return other,
            }
        }
        p.flows.destroy(id)
    }

    fn flush(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.early);
        for p in &mut self.ports {
            let mut failed = p.flows.push().err();
            // 64 a pull: as many pulls as the queue can hold results.
            for _ in 0..=p.flows.pending() / 64 {
                if failed.is_some() {
                    break;
                }
                match p.flows.pull(out) {
                    Ok(64) => {}
                    Ok(_) => break,
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                if let Some(hidden) = self.throttle.admit(std::time::Instant::now()) {
                    warn!(port = p.port, hidden, "offload: flow queue: {e}");
                }
            }
        }
    }

    fn query(&mut self, port: u16, id: u64) -> Result<Counts, FlowError> {
        self.port(port)?.flows.query_count(id)
    }

    fn queue_full(&self) -> u64 {
        self.queue_full
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::probe::{self, ProbeTarget};
    use ctl::config::{OuterDf, Role};
    use dataplane::offload::Level;

    fn target(role: Role) -> ProbeTarget {
        ProbeTarget {
            port: 0,
            role,
            other: 1,
            queue: 3,
            marks: true,
            outer_df: OuterDf::Copy,
        }
    }

    /// Rules of one shape share a key whatever their values; the key
    /// keeps apart what a template fixes: masks, item and action types,
    /// raw header lengths.
    #[test]
    fn the_shape_key_keeps_what_a_template_fixes_and_only_that() {
        let shapes = probe::flow_shapes(target(Role::Public), Level::Full);
        let tcp = &shapes[0];
        let mut other = tcp.clone();
        // Other values: addresses, ports, rewrites, encap bytes.
        for item in &mut other.pattern {
            if let Item::Ipv4 { src, .. } = item {
                *src = Some(Masked::<u32>::exact(0x0102_0304));
            }
        }
        for action in &mut other.actions {
            match action {
                Action::SetIpv4Dst(a) => *a = 0x0a00_0009,
                Action::RawEncap(b) => b[0] ^= 0xff,
                Action::RepresentedPort(p) => *p = 9,
                _ => {}
            }
        }
        assert_ne!(&other, tcp);
        assert_eq!(shape_key(&other), shape_key(tcp));
        // Another mask: a shape of its own.
        let mut flags = tcp.clone();
        for item in &mut flags.pattern {
            if let Item::Tcp { flags, .. } = item {
                *flags = None;
            }
        }
        assert_ne!(shape_key(&flags), shape_key(tcp));
        // A longer header pushed (gretap's inner Ethernet): another.
        let mut longer = tcp.clone();
        for action in &mut longer.actions {
            if let Action::RawEncap(b) = action {
                b.extend_from_slice(&[0; 14]);
            }
        }
        assert_ne!(shape_key(&longer), shape_key(tcp));
        // Another group: another table.
        let mut group = tcp.clone();
        group.attr.group += 1;
        assert_ne!(shape_key(&group), shape_key(tcp));
    }

    /// Each port level's per-flow shapes, one table each: full public
    /// TCP and UDP into GRE and gretap (two header lengths); full
    /// underlay TCP and UDP out of GRE and gretap; partial public TCP and
    /// UDP; partial underlay TCP and UDP in GRE and gretap. None: none.
    #[test]
    fn a_port_has_a_table_per_shape_of_its_level() {
        let count = |role, level| {
            let shapes = probe::flow_shapes(target(role), level);
            let keys: Vec<Rule> = shapes.iter().map(shape_key).collect();
            for (i, k) in keys.iter().enumerate() {
                assert!(!keys[..i].contains(k), "distinct shapes: {shapes:?}");
            }
            shapes.len()
        };
        assert_eq!(count(Role::Public, Level::Full), 4);
        assert_eq!(count(Role::Underlay, Level::Full), 4);
        assert_eq!(count(Role::Public, Level::Partial), 2);
        assert_eq!(count(Role::Underlay, Level::Partial), 4);
        assert_eq!(count(Role::Public, Level::None), 0);
    }
}
