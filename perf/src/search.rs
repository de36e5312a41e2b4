//! The throughput search of RFC 2544 §26.1: the highest offered load at
//! which the device loses no more than the threshold (none, for the
//! no-drop rate; 0.01% for the partial-drop rate), found by a binary
//! search between 0 and the setup's line rate. Pure: the caller runs each
//! trial and tells the search its loss, so the search can be tested
//! against a simulated device.

/// Search parameters. Rates are in frames a second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchConf {
    /// The line rate of the setup: the first trial, and the top of the
    /// search.
    pub max: f64,
    /// Loss allowed at a passing rate, as a fraction of the frames sent
    /// (0 for NDR; 1e-4 for a PDR of 0.01%).
    pub loss: f64,
    /// The search stops once the highest pass and the lowest failure are
    /// this fraction of `max` apart or closer.
    pub resolution: f64,
    /// Trials at most (repeats of slowed trials do not count).
    pub max_steps: u32,
}

/// Where the search stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    conf: SearchConf,
    /// The highest rate that passed (0: none yet).
    pass: f64,
    /// The lowest rate that failed (None: none yet).
    fail: Option<f64>,
    steps: u32,
}

/// Whether `lost` of `sent` frames is within a threshold `loss` (a
/// fraction). At NDR (0), one frame lost fails.
pub fn passes(sent: u64, lost: u64, loss: f64) -> bool {
    lost as f64 <= loss * sent as f64
}

impl Search {
    pub fn new(conf: SearchConf) -> Search {
        Search {
            conf,
            pass: 0.0,
            fail: None,
            steps: 0,
        }
    }

    /// The rate of the next trial, or None when the search is over: the
    /// line rate first, then the middle of the highest pass and the lowest
    /// failure, until they are within the resolution or the steps are
    /// used up.
    pub fn next(&self) -> Option<f64> {
        if self.steps >= self.conf.max_steps || self.conf.max <= 0.0 {
            return None;
        }
        match self.fail {
            None if self.steps == 0 => Some(self.conf.max),
            // The line rate passed.
            None => None,
            Some(fail) if fail - self.pass <= self.conf.resolution * self.conf.max => None,
            Some(fail) => Some((self.pass + fail) / 2.0),
        }
    }

    /// Records the outcome of a trial at `rate`.
    pub fn record(&mut self, rate: f64, sent: u64, lost: u64) {
        self.steps += 1;
        if passes(sent, lost, self.conf.loss) {
            self.pass = self.pass.max(rate);
        } else {
            self.fail = Some(self.fail.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The throughput found so far: the highest rate that passed (0 if
    /// none did, the device losing frames even at the lowest rate tried).
    pub fn result(&self) -> f64 {
        self.pass
    }

    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Whether the search ended because the steps ran out before the
    /// resolution was reached.
    pub fn cut_short(&self) -> bool {
        self.steps >= self.conf.max_steps
            && self
                .fail
                .is_some_and(|f| f - self.pass > self.conf.resolution * self.conf.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that loses nothing up to `capacity` frames a second and
    /// everything above it, tried for a second at each rate.
    fn run(conf: SearchConf, dut: impl Fn(f64) -> f64) -> Search {
        let mut s = Search::new(conf);
        while let Some(rate) = s.next() {
            let sent = rate as u64;
            let lost = (dut(rate) * sent as f64) as u64;
            s.record(rate, sent, lost);
        }
        s
    }

    fn conf(max: f64) -> SearchConf {
        SearchConf {
            max,
            loss: 0.0,
            resolution: 0.01,
            max_steps: 20,
        }
    }

    fn cliff(capacity: f64) -> impl Fn(f64) -> f64 {
        move |rate| {
            if rate <= capacity {
                0.0
            } else {
                1.0 - capacity / rate
            }
        }
    }

    #[test]
    fn converges_to_the_capacity_within_the_resolution() {
        for capacity in [1.0e6, 3.3e6, 7.77e6, 9.99e6] {
            let s = run(conf(10e6), cliff(capacity));
            let found = s.result();
            assert!(found <= capacity, "{found} above {capacity}");
            assert!(capacity - found <= 0.01 * 10e6, "{found} for {capacity}");
            // ceil(log2(1/0.01)) = 7 halvings after the line rate.
            assert!(s.steps() <= 8, "{} steps", s.steps());
            assert!(!s.cut_short());
        }
    }

    #[test]
    fn a_device_that_keeps_up_is_measured_at_line_rate_in_one_step() {
        let s = run(conf(10e6), |_| 0.0);
        assert_eq!((s.result(), s.steps()), (10e6, 1));
    }

    #[test]
    fn a_device_that_drops_at_every_rate_has_no_throughput() {
        let s = run(conf(10e6), |_| 0.5);
        assert_eq!(s.result(), 0.0);
        assert!(s.steps() <= 8);
    }

    #[test]
    fn the_step_bound_holds_and_says_the_search_was_cut_short() {
        let c = SearchConf {
            max_steps: 3,
            ..conf(10e6)
        };
        let s = run(c, cliff(3.3e6));
        assert_eq!(s.steps(), 3);
        assert!(s.cut_short());
        // 10 fails, 5 fails, 2.5 passes.
        assert_eq!(s.result(), 2.5e6);
    }

    /// PDR: a loss within the threshold passes, one frame more fails.
    #[test]
    fn the_loss_threshold_is_a_fraction_of_the_frames_sent() {
        assert!(passes(1_000_000, 0, 0.0));
        assert!(!passes(1_000_000, 1, 0.0));
        assert!(passes(1_000_000, 100, 1e-4));
        assert!(!passes(1_000_000, 101, 1e-4));
        // A device losing 0.005% everywhere: its PDR is the line rate.
        let c = SearchConf {
            loss: 1e-4,
            ..conf(10e6)
        };
        assert_eq!(run(c, |_| 5e-5).result(), 10e6);
        assert_eq!(run(conf(10e6), |_| 5e-5).result(), 0.0);
    }
}
