//! Deterministic route tables and addresses for tests and benchmarks.
//!
//! Public so that `tgw-perf` can load the very same tables into `rte_lpm`
//! and compare in one run. Everything is a pure function of its seed.

use std::collections::HashSet;

/// xorshift64* (Vigna): tiny, fast, and good enough for test data.
#[derive(Clone, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator from `seed`; any seed works, zero included.
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and
        // the state is never the forbidden zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift64(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..n` (0 when `n` is 0), by multiply-shift.
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }
}

/// Prefixes per million of each length 8..=32 in a full IPv4 BGP table
/// (rounded from public RouteViews-era statistics: ~60% /24, a third in
/// /16–/23, a fraction of a percent shorter, and a trace of more-specifics
/// past /24 standing in for an operator's own internal routes).
const BGP_PER_MILLION: [(u8, u32); 25] = [
    (8, 16),
    (9, 13),
    (10, 37),
    (11, 100),
    (12, 300),
    (13, 600),
    (14, 1_100),
    (15, 2_000),
    (16, 14_000),
    (17, 9_000),
    (18, 15_000),
    (19, 26_000),
    (20, 45_000),
    (21, 48_000),
    (22, 115_000),
    (23, 105_000),
    (24, 618_000),
    (25, 100),
    (26, 100),
    (27, 100),
    (28, 100),
    (29, 100),
    (30, 100),
    (31, 100),
    (32, 134),
];

/// Next hops of a BGP-like table: a full-table router has a few dozen
/// peers, not one next hop per route.
pub const BGP_NEXT_HOPS: u32 = 64;

fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

/// `count` distinct `(prefix, len, next_hop)` routes shaped like a full
/// Internet table: lengths drawn from [`BGP_PER_MILLION`]-style weights,
/// unicast space only (1.0.0.0–223.255.255.255), and about a third of the
/// routes placed inside or next to an earlier one, as real tables cluster
/// (more-specifics of an aggregate, neighbouring assignments). Next hops in
/// `0..BGP_NEXT_HOPS`. Fewer routes come back only if `count` exceeds what
/// the length mix can produce (tens of millions).
pub fn bgp_like(seed: u64, count: usize) -> Vec<(u32, u8, u32)> {
    let mut rng = XorShift64::new(seed);
    let total: u32 = BGP_PER_MILLION.iter().map(|&(_, w)| w).sum();
    let mut seen: HashSet<(u32, u8)> = HashSet::with_capacity(count);
    let mut out: Vec<(u32, u8, u32)> = Vec::with_capacity(count);
    let mut misses = 0usize;
    while out.len() < count && misses < count.saturating_mul(4) + 1000 {
        let mut pick = rng.below(total);
        let mut len = 24;
        for &(l, w) in &BGP_PER_MILLION {
            if pick < w {
                len = l;
                break;
            }
            pick -= w;
        }
        let addr = match out.len() {
            n if n > 0 && rng.below(3) == 0 => {
                let (base, blen, _) = out[rng.below(u32::try_from(n).unwrap_or(u32::MAX)) as usize];
                if blen < len {
                    // A more-specific of an earlier route.
                    base | (rng.next_u32() & !mask(blen))
                } else {
                    // A neighbour in the same /16.
                    (base & 0xffff_0000) | (rng.next_u32() & 0xffff)
                }
            }
            _ => (1 << 24) + rng.below(223 << 24),
        } & mask(len);
        if addr >> 24 == 0 || addr >> 24 >= 224 || !seen.insert((addr, len)) {
            misses += 1;
            continue;
        }
        out.push((addr, len, rng.below(BGP_NEXT_HOPS)));
    }
    out
}

/// `count` distinct routes as a tenant VRF might hold them: a default
/// route (next hop 0, the public exit), the tenant's private blocks in
/// 10/8, 172.16/12 or 192.168/16, subnets of them toward tunnel hosts, and
/// a few host routes. Tenants overlap freely, as tenants do.
pub fn tenant_like(seed: u64, count: usize) -> Vec<(u32, u8, u32)> {
    let mut rng = XorShift64::new(seed);
    let mut seen: HashSet<(u32, u8)> = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    seen.insert((0, 0));
    out.push((0, 0, 0));
    let block = match rng.below(3) {
        0 => 0x0a00_0000 | (rng.below(256) << 16),
        1 => 0xac10_0000 | (rng.below(16) << 16),
        _ => 0xc0a8_0000,
    };
    let mut misses = 0usize;
    while out.len() < count && misses < count * 16 + 100 {
        let len = match rng.below(10) {
            0 => 16,
            1 => 20,
            2..=6 => 24,
            7 => 28,
            _ => 32,
        };
        let addr = (block | (rng.next_u32() & 0xffff)) & mask(len);
        if !seen.insert((addr, len)) {
            misses += 1;
            continue;
        }
        out.push((addr, len, 1 + rng.below(16)));
    }
    out
}

/// `n` uniformly random addresses.
pub fn random_addrs(seed: u64, n: usize) -> Vec<u32> {
    let mut rng = XorShift64::new(seed);
    (0..n).map(|_| rng.next_u32()).collect()
}

/// `n` addresses each inside a random one of `routes`, so that every
/// lookup finds a route, as forwarded traffic mostly does.
pub fn addrs_within(routes: &[(u32, u8, u32)], seed: u64, n: usize) -> Vec<u32> {
    let mut rng = XorShift64::new(seed);
    let m = u32::try_from(routes.len()).unwrap_or(u32::MAX);
    (0..n)
        .map(|_| match routes.get(rng.below(m) as usize) {
            Some(&(a, l, _)) => a | (rng.next_u32() & !mask(l)),
            None => rng.next_u32(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgp_like_is_deterministic_distinct_and_shaped() {
        let a = bgp_like(7, 20_000);
        assert_eq!(a, bgp_like(7, 20_000));
        assert_ne!(a, bgp_like(8, 20_000));
        assert_eq!(a.len(), 20_000);
        let set: HashSet<(u32, u8)> = a.iter().map(|&(p, l, _)| (p, l)).collect();
        assert_eq!(set.len(), a.len());
        let n24 = a.iter().filter(|r| r.1 == 24).count();
        assert!((10_000..14_000).contains(&n24), "{n24} /24s");
        for &(p, l, nh) in &a {
            assert_eq!(p & !mask(l), 0);
            assert!((1..224).contains(&(p >> 24)));
            assert!(nh < BGP_NEXT_HOPS);
        }
    }

    #[test]
    fn tenant_like_has_a_default() {
        let t = tenant_like(3, 16);
        assert_eq!(t.len(), 16);
        assert_eq!(t[0], (0, 0, 0));
        assert!(tenant_like(3, 0).is_empty());
    }
}
