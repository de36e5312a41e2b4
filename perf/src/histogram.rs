//! A latency histogram in the manner of HdrHistogram: exact below 128 ns,
//! then 64 buckets per power of two (every bucket within 1/64, 1.6%, of
//! the values it holds), up to 2^40 ns. Its counts are one fixed array,
//! allocated once when the generator starts: recording a frame's latency
//! is an index computation and an add, nothing allocated per frame.

use serde_json::json;

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 128;
/// Buckets per power of two past `LINEAR`, as log2.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values are clamped below 2^MAX_EXP ns (18 minutes).
const MAX_EXP: u32 = 40;
/// Buckets: the linear ones, then `SUB` for each power of two from 2^7.
pub const BUCKETS: usize = LINEAR as usize + (MAX_EXP as usize - 7) * SUB as usize;

pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The bucket that holds `v`.
fn index(v: u64) -> usize {
    let v = v.min((1 << MAX_EXP) - 1);
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    let sub = (v >> shift) - SUB;
    LINEAR as usize + (exp as usize - 7) * SUB as usize + sub as usize
}

/// The lowest value and the width of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, 1);
    }
    let k = (i - LINEAR as usize) as u64;
    let exp = 7 + k / SUB;
    let shift = exp - u64::from(SUB_BITS);
    ((SUB + k % SUB) << shift, 1 << shift)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Empties the histogram, keeping its counts' memory.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The value at percentile `p` (0–100): the highest value of the bucket
    /// holding the ceil(p% × count)-th smallest value, within the exact
    /// min and max. None when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bounds(i);
                return Some((low + width - 1).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The non-empty buckets as (lowest value, width, count), low to high:
    /// what a chart of the distribution draws.
    pub fn buckets(&self) -> Vec<(u64, u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (low, width) = bounds(i);
                (low, width, c)
            })
            .collect()
    }

    /// min/p50/p99/p99.9/max and the non-empty buckets, in nanoseconds.
    pub fn json(&self) -> serde_json::Value {
        let buckets: Vec<_> = self
            .buckets()
            .into_iter()
            .map(|(low, width, c)| json!([low, width, c]))
            .collect();
        let mut v = self.summary_json();
        v["buckets"] = json!(buckets);
        v
    }

    /// The count and min/p50/p99/p99.9/max alone, in nanoseconds.
    pub fn summary_json(&self) -> serde_json::Value {
        json!({
            "count": self.count, "min_ns": self.min(), "p50_ns": self.percentile(50.0),
            "p99_ns": self.percentile(99.0), "p999_ns": self.percentile(99.9),
            "max_ns": self.max(),
        })
    }

    /// The histogram back from [`Histogram::json`] (its buckets; min and
    /// max as written).
    pub fn from_json(v: &serde_json::Value) -> Option<Histogram> {
        let mut h = Histogram::default();
        for b in v.get("buckets")?.as_array()? {
            let (low, c) = (b.get(0)?.as_u64()?, b.get(2)?.as_u64()?);
            h.counts[index(low)] += c;
            h.count += c;
        }
        if h.count > 0 {
            h.min = v.get("min_ns")?.as_u64()?;
            h.max = v.get("max_ns")?.as_u64()?;
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket's bounds hold exactly the values that index to it.
    #[test]
    fn buckets_tile_the_values() {
        let mut expect_low = 0;
        for i in 0..BUCKETS {
            let (low, width) = bounds(i);
            assert_eq!(low, expect_low, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + width - 1), i);
            if low >= LINEAR {
                assert!(width * SUB <= low, "bucket {i} wider than 1/64");
            }
            expect_low = low + width;
        }
        assert_eq!(expect_low, 1 << MAX_EXP);
    }

    /// Percentiles against the same ranks of the sorted values, over a
    /// spread from tens of ns to milliseconds: within a bucket (1/64).
    #[test]
    fn percentiles_match_a_sorted_list_within_a_bucket() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut values: Vec<u64> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Log-uniform from 16 ns to ~4 ms, as latencies spread.
                let exp = 4 + x % 18;
                (1u64 << exp) + (x >> 20) % (1u64 << exp)
            })
            .collect();
        let mut h = Histogram::default();
        values.iter().for_each(|&v| h.record(v));
        values.sort_unstable();
        for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0] {
            let rank = ((p / 100.0 * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let exact = values[rank - 1];
            let got = h.percentile(p).unwrap();
            assert!(
                got >= exact && got - exact <= exact / SUB,
                "p{p}: {got} against {exact}"
            );
        }
        assert_eq!(h.min(), values.first().copied());
        assert_eq!(h.max(), values.last().copied());
        assert_eq!(h.percentile(100.0), values.last().copied());
        let back = Histogram::from_json(&h.json()).unwrap();
        assert_eq!(back.percentile(99.0), h.percentile(99.0));
        assert_eq!(back.json()["count"], 100_000);
    }

    #[test]
    fn small_values_are_exact_and_empty_has_none() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), None);
        for v in [3, 5, 7, 100] {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(5));
        assert_eq!(h.percentile(75.0), Some(7));
        assert_eq!(h.percentile(99.0), Some(100));
        h.record(u64::MAX);
        assert_eq!(h.max(), Some(u64::MAX), "clamped in its bucket, exact max");
    }
}
