//! Deterministic flows for tests and benchmarks: gateway-shaped key pairs
//! that are distinct by construction, so that millions of them need no
//! set to deduplicate.

use super::{FlowKey, Zone};

/// SplitMix64 (Steele, Lea & Flood): a seedable generator whose every
/// output is a bijective mix of its counter. Also used to stretch a table's
/// seed into its hash keys.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..n` (0 when `n` is 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The most flows [`nat_flows`] can make distinct: its tenant sources are
/// distinct addresses of 10.0.0.0/8.
pub const MAX_NAT_FLOWS: usize = 1 << 24;

/// `n` (at most [`MAX_NAT_FLOWS`]) source-NATed flows as the gateway makes
/// them: the forward key in one of `tenants` tenant zones, from a distinct
/// 10/8 address and a random port, TCP, UDP or ICMP, to a random Internet
/// host and port; the reply key in the public zone, from that host back to
/// a public pool address and port that are distinct per flow (65536 ports
/// per address from 100.64.0.0). All `2n` keys are distinct.
pub fn nat_flows(seed: u64, n: usize, tenants: u32) -> Vec<(FlowKey, FlowKey)> {
    let mut rng = SplitMix64::new(seed);
    let n = n.min(MAX_NAT_FLOWS);
    let tenants = u64::from(tenants.max(1));
    // An odd multiplier is a bijection of 24-bit values: distinct sources
    // in an order that does not follow i.
    let spread = (rng.next_u32() | 1) & 0x00ff_ffff;
    (0..n as u32)
        .map(|i| {
            let zone = Zone::tenant(rng.below(tenants) as usize).unwrap_or(Zone::PUBLIC);
            let proto = match rng.below(8) {
                0..=3 => 6,
                4..=6 => 17,
                _ => 1,
            };
            let src = 0x0a00_0000 | (i.wrapping_mul(spread) & 0x00ff_ffff);
            let host = rng.next_u32() | 0x0100_0000;
            let (sport, dport) = if proto == 1 {
                let id = rng.next_u32() as u16;
                (id, id)
            } else {
                (
                    rng.next_u32() as u16 | 1024,
                    [80, 443, 53, 22][rng.below(4) as usize],
                )
            };
            let public = 0x6440_0000 + (i >> 16);
            let public_port = i as u16;
            let forward = FlowKey::new(zone, proto, src, sport, host, dport);
            let reply = if proto == 1 {
                FlowKey::new(Zone::PUBLIC, proto, host, public_port, public, public_port)
            } else {
                FlowKey::new(Zone::PUBLIC, proto, host, dport, public, public_port)
            };
            (forward, reply)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nat_flows_are_distinct_and_deterministic() {
        let f = nat_flows(3, 100_000, 1000);
        assert_eq!(f, nat_flows(3, 100_000, 1000));
        let keys: HashSet<FlowKey> = f.iter().flat_map(|&(a, b)| [a, b]).collect();
        assert_eq!(keys.len(), 200_000);
        for (fw, rp) in &f {
            assert_ne!(fw.zone(), Zone::PUBLIC);
            assert_eq!(rp.zone(), Zone::PUBLIC);
            assert!(fw.zone().get() <= 1000);
        }
    }
}
