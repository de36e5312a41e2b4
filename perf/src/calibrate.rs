//! Whether a CPU ran at its usual speed around a measurement: the host of
//! these shared machines slows a vCPU by about half for minutes at a time,
//! and a tgw/testpmd ratio taken while one of them ran slowed is off by up
//! to 2×. A fixed CPU-bound loop, timed on the generator's CPU and on the
//! worker's right before and right after each device is measured, tells:
//! a round where any of its loops ran below `SLOWED_BELOW` of the best
//! rate that CPU showed in the session is left out of the median.

use std::time::Instant;

use serde_json::json;

/// A loop below this share of the CPU's best rate in the session marks the
/// round slowed. The host's slowdowns, and another process sharing the
/// CPU, halve the rate (0.5) or worse; unshared, the loop's samples
/// cluster within 5% of the best (506–535 M it/s here, docs/perf.md).
/// 0.8 sits between the two: it catches every halving and a milder
/// slowing that would still move a ratio by more than 20%, without
/// throwing away rounds for a timer tick.
pub const SLOWED_BELOW: f64 = 0.8;

/// Iterations of the loop: about 23 ms unshared here, long enough that
/// a timer tick or a short preemption costs under a few percent, short
/// enough that four per device and round cost nothing next to seconds of
/// traffic.
const ITERATIONS: u64 = 12_000_000;

/// Rates of the loop (millions of iterations a second) on each CPU, before
/// and after one device's measurement window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub gen: [f64; 2],
    pub worker: [f64; 2],
}

/// The best rate each CPU showed in the session.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Best {
    pub gen: f64,
    pub worker: f64,
}

impl Calibration {
    /// Each CPU's slowest loop as a share of its best in the session
    /// (1.0 where the session has no best yet).
    pub fn shares(&self, best: &Best) -> (f64, f64) {
        let share = |rates: [f64; 2], best: f64| {
            if best > 0.0 {
                rates[0].min(rates[1]) / best
            } else {
                1.0
            }
        };
        (share(self.gen, best.gen), share(self.worker, best.worker))
    }

    /// Whether neither CPU ran slowed, judged against `best`.
    pub fn is_clean(&self, best: &Best) -> bool {
        let (gen, worker) = self.shares(best);
        gen >= SLOWED_BELOW && worker >= SLOWED_BELOW
    }

    pub fn json(&self, best: &Best) -> serde_json::Value {
        let (gen_share, worker_share) = self.shares(best);
        json!({
            "gen_before_mips": self.gen[0], "gen_after_mips": self.gen[1],
            "worker_before_mips": self.worker[0], "worker_after_mips": self.worker[1],
            "gen_share_of_best": gen_share, "worker_share_of_best": worker_share,
            "clean": self.is_clean(best),
        })
    }
}

/// The best rate of each CPU over `calibrations`.
pub fn best<'a>(calibrations: impl IntoIterator<Item = &'a Calibration>) -> Best {
    calibrations.into_iter().fold(Best::default(), |b, c| Best {
        gen: b.gen.max(c.gen[0]).max(c.gen[1]),
        worker: b.worker.max(c.worker[0]).max(c.worker[1]),
    })
}

impl Best {
    /// Whether the two CPUs' bests are within `SLOWED_BELOW` of each
    /// other. They are the same kind of CPU (here two siblings of one
    /// core), so when they are not, the slower one most likely never ran
    /// unslowed in the whole run, and its rounds were judged against a
    /// slowed best.
    pub fn agree(&self) -> bool {
        let (lo, hi) = (self.gen.min(self.worker), self.gen.max(self.worker));
        hi <= 0.0 || lo >= SLOWED_BELOW * hi
    }
}

/// Whether `run` should measure another round: fewer than `asked` rounds
/// were clean and the re-runs (rounds beyond `asked`) are not used up.
pub fn another_round(clean: u32, run: u32, asked: u32, max_reruns: u32) -> bool {
    clean < asked && run < asked + max_reruns
}

/// The loop's rate on `gen_lcore` and on `worker_lcore`, timed at the same
/// time on both (each from a thread pinned to its CPU), in millions of
/// iterations a second.
pub fn measure(gen_lcore: u32, worker_lcore: u32) -> (f64, f64) {
    let on = |lcore| {
        std::thread::spawn(move || {
            crate::scrape::pin_this_thread(lcore);
            rate()
        })
    };
    let (gen, worker) = (on(gen_lcore), on(worker_lcore));
    // A thread that panicked measured nothing: report it as slowed to 0.
    (gen.join().unwrap_or(0.0), worker.join().unwrap_or(0.0))
}

/// Times `ITERATIONS` of the loop on the calling thread; nothing but the
/// loop between the two clock reads (a vDSO call each, no syscall).
fn rate() -> f64 {
    let iterations = std::hint::black_box(ITERATIONS);
    let start = Instant::now();
    std::hint::black_box(chain(
        iterations,
        std::hint::black_box(0x9e37_79b9_7f4a_7c15),
    ));
    let seconds = start.elapsed().as_secs_f64();
    iterations as f64 / seconds.max(1e-9) / 1e6
}

/// A dependent chain of integer operations (an LCG step, then a xorshift
/// so that no closed form skips the loop): each iteration waits for the
/// previous one, so its rate follows the core's clock and nothing else —
/// no memory, no branches to mispredict.
fn chain(iterations: u64, seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iterations {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x ^= x >> 29;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(gen: f64, worker: f64) -> Calibration {
        Calibration {
            gen: [gen, gen],
            worker: [worker, worker],
        }
    }

    /// A slowing on either CPU, before or after the window, marks the
    /// measurement; the best is each CPU's own.
    #[test]
    fn either_cpu_slowed_before_or_after_marks_the_measurement() {
        let cals = [cal(500.0, 400.0), cal(480.0, 390.0)];
        let b = best(&cals);
        assert_eq!(
            b,
            Best {
                gen: 500.0,
                worker: 400.0
            }
        );
        assert!(cals.iter().all(|c| c.is_clean(&b)));
        let mut worker_after = cal(500.0, 400.0);
        worker_after.worker[1] = 210.0;
        assert!(!worker_after.is_clean(&b));
        let mut gen_before = cal(500.0, 400.0);
        gen_before.gen[0] = 300.0;
        assert!(!gen_before.is_clean(&b));
        // Just above the threshold is clean, just below is not.
        assert!(cal(500.0, 0.81 * 400.0).is_clean(&b));
        assert!(!cal(0.79 * 500.0, 400.0).is_clean(&b));
        assert_eq!(cal(250.0, 400.0).shares(&b), (0.5, 1.0));
        assert!(b.agree());
        assert!(!best(&[cal(510.0, 310.0)]).agree());
        assert!(Best::default().agree());
    }

    #[test]
    fn rounds_are_rerun_until_enough_are_clean_or_the_limit() {
        assert!(another_round(0, 0, 3, 3));
        assert!(!another_round(3, 3, 3, 3), "three clean of three asked");
        assert!(another_round(2, 3, 3, 3), "one slowed: a re-run");
        assert!(!another_round(2, 6, 3, 3), "re-runs used up");
        assert!(!another_round(0, 1, 1, 0), "--max-reruns 0 never re-runs");
    }

    /// The loop measures something plausible on a real CPU, and the same
    /// number of iterations whatever the CPU (the chain is not folded).
    #[test]
    fn the_loop_runs_and_is_deterministic() {
        assert_eq!(chain(1000, 1), chain(1000, 1));
        assert_ne!(chain(1000, 1), chain(1001, 1));
        let (gen, worker) = measure(0, 0);
        assert!(gen > 1.0 && worker > 1.0, "{gen} {worker}");
    }
}
