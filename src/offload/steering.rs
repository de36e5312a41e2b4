//! The static SNAT steering rules of partial offload (docs/offload.md,
//! "Partial offload"): a reply to a shared source NAT address comes back
//! to the port its public port was handed out from, and that port's block
//! names the worker that owns the flow (block *b* of a pool belongs to
//! worker *b mod n*, `dataplane::snat`). A rule per worker sends those
//! ports to the worker's RX queue, so that the reply needs no handoff
//! between workers, as DPVS does with flow director on port ranges.
//!
//! When the pool's first port is a multiple of 64 and the number of
//! workers a power of two, a worker's blocks are the ports whose bits
//! above the block's six have one value: one masked rule per address,
//! protocol and worker. Otherwise each block is cut into the few masked
//! prefixes that cover it. ICMP shares the port space (its identifier)
//! but has no port to match: its replies stay with RSS and the handoff.

use dataplane::firewall::PortRange;
use dataplane::offload::deny::port_masks;
use rte::flow::{Action, Attr, Item, Masked, Rule};

use super::shapes::{ETHER_TYPE_IPV4, IPPROTO_TCP, IPPROTO_UDP, STEERING_PRIORITY};

/// Ports per block (`dataplane::snat::BLOCK`).
const BLOCK: u32 = dataplane::snat::BLOCK as u32;

/// A pool as the steering rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SteeredPool<'a> {
    pub addrs: &'a [u32],
    /// The ports handed out: whole blocks from `lo` within `hi`.
    pub lo: u16,
    pub hi: u16,
}

/// The rules that send replies to `pool`'s addresses to the worker that
/// owns their port, of `workers`; `queue_of(w)` is worker `w`'s RX queue
/// on the public port (`None`: it polls none there, and its ports are
/// left to RSS). Nothing with one worker: every frame is its own.
pub fn snat_rules(
    pool: &SteeredPool<'_>,
    workers: u16,
    queue_of: &dyn Fn(u16) -> Option<u16>,
) -> Vec<Rule> {
    if workers <= 1 {
        return Vec::new();
    }
    let per_worker = port_matches(pool.lo, pool.hi, workers);
    let mut rules = Vec::new();
    for &addr in pool.addrs {
        for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
            for (w, matches) in per_worker.iter().enumerate() {
                let Some(queue) = queue_of(w as u16) else {
                    continue;
                };
                for &(spec, mask) in matches {
                    rules.push(rule(addr, protocol, spec, mask, queue));
                }
            }
        }
    }
    rules
}

fn rule(addr: u32, protocol: u8, spec: u16, mask: u16, queue: u16) -> Rule {
    let dst = Some(Masked { spec, mask });
    Rule {
        attr: Attr {
            priority: STEERING_PRIORITY,
            ..Attr::INGRESS
        },
        pattern: vec![
            Item::Eth {
                dst: None,
                src: None,
                ether_type: Some(ETHER_TYPE_IPV4),
            },
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: None,
                dst: Some(Masked::<u32>::exact(addr)),
                protocol: Some(protocol),
            },
            if protocol == IPPROTO_TCP {
                Item::Tcp {
                    src: None,
                    dst,
                    flags: None,
                }
            } else {
                Item::Udp { src: None, dst }
            },
        ],
        actions: vec![Action::Queue(queue)],
    }
}

/// Per worker, the (spec, mask) pairs of destination ports that cover
/// exactly the blocks it owns (and, in the aligned case, ports outside
/// the pool too: no reply comes to those).
pub fn port_matches(lo: u16, hi: u16, workers: u16) -> Vec<Vec<(u16, u16)>> {
    let n = u32::from(workers.max(1));
    let mut out = vec![Vec::new(); n as usize];
    let lo = u32::from(lo);
    if lo % BLOCK == 0 && n.is_power_of_two() {
        let mask = ((n - 1) * BLOCK) as u16;
        for (w, m) in out.iter_mut().enumerate() {
            let bits = (w as u32 + lo / BLOCK) % n;
            m.push(((bits * BLOCK) as u16, mask));
        }
        return out;
    }
    let blocks = (u32::from(hi) + 1).saturating_sub(lo) / BLOCK;
    for b in 0..blocks {
        let start = lo + b * BLOCK;
        out[(b % n) as usize].extend(prefixes(start, start + BLOCK - 1));
    }
    out
}

/// The fewest masked prefixes covering `lo..=hi` exactly: the deny
/// rules' cut of a port range (`port_masks`, tested over every range
/// end there), as (spec, mask) pairs.
fn prefixes(lo: u32, hi: u32) -> impl Iterator<Item = (u16, u16)> {
    // Blocks lie within the pool's ports, which are u16s, lo <= hi.
    let range = u16::try_from(lo)
        .ok()
        .zip(u16::try_from(hi).ok())
        .and_then(|(lo, hi)| PortRange::new(lo, hi));
    range
        .map(port_masks)
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.value, m.mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every port 0..=65535 matched by exactly the worker that owns it,
    /// for ports in the pool.
    fn check(lo: u16, hi: u16, workers: u16) {
        let matches = port_matches(lo, hi, workers);
        let blocks = (u32::from(hi) + 1 - u32::from(lo)) / BLOCK;
        let end = u32::from(lo) + blocks * BLOCK;
        for port in u32::from(lo)..end {
            let owner = ((port - u32::from(lo)) / BLOCK) % u32::from(workers);
            let hits: Vec<usize> = matches
                .iter()
                .enumerate()
                .filter(|(_, m)| m.iter().any(|&(s, k)| port as u16 & k == s))
                .map(|(w, _)| w)
                .collect();
            assert_eq!(
                hits,
                vec![owner as usize],
                "port {port} of {lo}-{hi}, {workers} workers"
            );
        }
    }

    #[test]
    fn aligned_pools_on_a_power_of_two_of_workers_take_one_rule_each() {
        check(1024, 65535, 4);
        check(64 * 3, 65535, 2);
        let m = port_matches(1024, 65535, 4);
        assert_eq!(m.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1, 1]);
        // Block 0 (ports 1024..1087) is worker 0's: bits 6-7 of 1024 are 0.
        assert_eq!(m[0], vec![(0, 0xc0)]);
        // Starting at block 3 shifts the owners.
        let m = port_matches(192, 65535, 2);
        assert_eq!(m[0], vec![(64, 0x40)]);
    }

    #[test]
    fn other_pools_are_covered_block_by_block() {
        check(1000, 3000, 3);
        check(1024, 2047, 3);
        check(100, 500, 2);
        // An unaligned block takes several prefixes, none outside it.
        let p: Vec<(u16, u16)> = prefixes(1000, 1063).collect();
        assert_eq!(
            p,
            vec![
                (1000, 0xfff8),
                (1008, 0xfff0),
                (1024, 0xffe0),
                (1056, 0xfff8)
            ]
        );
    }

    #[test]
    fn rules_per_address_protocol_and_worker_with_a_queue() {
        let addrs = [0x0404_0404, 0x0404_0405];
        let pool = SteeredPool {
            addrs: &addrs,
            lo: 1024,
            hi: 65535,
        };
        // Worker 1 polls no queue on the port: its ports stay with RSS.
        let rules = snat_rules(&pool, 2, &|w| (w == 0).then_some(5));
        assert_eq!(rules.len(), 2 * 2);
        let r = &rules[0];
        assert_eq!(r.attr.priority, STEERING_PRIORITY);
        assert!(r.attr.ingress && !r.attr.transfer);
        assert_eq!(r.actions, vec![Action::Queue(5)]);
        assert_eq!(
            r.pattern[1],
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: None,
                dst: Some(Masked::<u32>::exact(0x0404_0404)),
                protocol: Some(6),
            }
        );
        assert_eq!(
            r.pattern[2],
            Item::Tcp {
                src: None,
                dst: Some(Masked {
                    spec: 0,
                    mask: 0x40
                }),
                flags: None,
            }
        );
        assert!(matches!(rules[1].pattern[2], Item::Udp { .. }));
        assert!(snat_rules(&pool, 1, &|_| Some(0)).is_empty());
    }
}
