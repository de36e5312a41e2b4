//! Hashing for the maps whose keys packets choose: seeded per process, and
//! finished so that every key bit reaches the bucket index.
//!
//! Source NAT maps are keyed by a tenant's (address, port) and the
//! fragment cache by what any sender writes in its headers. With a fixed
//! hash, anyone who knows it (it is in the source) can pick keys that
//! share a bucket and make every lookup on the worker walk a long probe
//! sequence: one tenant slowing all the others. SipHash (std's
//! `RandomState`) resists that but costs ~20 ns a key; a multiply-rotate
//! state started from a random per-process seed and finished with a full
//! avalanche (murmur3's fmix64) costs a few cycles, and leaves an outsider
//! no fixed layout to aim at.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A random seed, drawn once per process (from std's `RandomState`, which
/// asks the OS): on the control plane, the first time a map is built.
pub fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new().hash_one(0x7467_775f_7365_6564_u64)
    })
}

/// Builds [`FastHasher`]s from one seed.
#[derive(Clone, Copy, Debug)]
pub struct FastState {
    seed: u64,
}

impl FastState {
    /// A state with a given seed: reproducible layouts for tests.
    pub fn with_seed(seed: u64) -> Self {
        FastState { seed }
    }
}

impl Default for FastState {
    /// Seeded with [`process_seed`].
    fn default() -> Self {
        FastState {
            seed: process_seed(),
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.seed)
    }
}

/// A cheap hasher for small integer keys.
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    /// murmur3's fmix64: a map takes its bucket from the low bits, which
    /// the multiplications alone never reach from the high ones.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
}

/// A `HashMap` with [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The bucket a map of 4096 buckets would put `key` in.
    fn bucket(state: &FastState, key: (u32, u32, u16)) -> u64 {
        state.hash_one(key) & 4095
    }

    /// Issue 9, defect 10: keys that differ only in their high bits — a
    /// tenant's hosts 10.x.0.0 or ports 0x100 apart — spread over the
    /// buckets instead of piling into one.
    #[test]
    fn keys_a_tenant_picks_spread_over_the_buckets() {
        let state = FastState::default();
        let by_addr: HashSet<u64> = (0..4096u32)
            .map(|i| bucket(&state, (1, 0x0a00_0000 | i << 12, 5000)))
            .collect();
        let by_port: HashSet<u64> = (0..256u32)
            .map(|i| bucket(&state, (1, 0x0a00_0007, (i << 8) as u16)))
            .collect();
        // Random placement of 4096 keys in 4096 buckets fills ~2590.
        assert!(by_addr.len() > 2300, "{} buckets", by_addr.len());
        assert!(by_port.len() > 200, "{} buckets", by_port.len());
    }

    #[test]
    fn the_seed_changes_where_keys_go() {
        let (a, b) = (FastState::with_seed(1), FastState::with_seed(2));
        let same = (0..1024u32)
            .filter(|&i| bucket(&a, (1, i, 80)) == bucket(&b, (1, i, 80)))
            .count();
        assert!(same < 16, "{same} of 1024 keys in the same bucket");
        assert_eq!(process_seed(), process_seed(), "one seed per process");
    }
}
