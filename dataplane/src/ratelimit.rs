//! A token bucket on the TSC, for the ICMP a worker generates (RFC 1812
//! 4.3.2.8: a router must be able to limit the errors it sends).

/// Refills one token every `ticks_per_token` TSC ticks, up to `burst`.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    ticks_per_token: u64,
    burst: u64,
    tokens: u64,
    last: u64,
}

impl TokenBucket {
    /// `rate` tokens per second on a clock of `hz` ticks per second; a rate
    /// of 0 never gives a token.
    pub fn new(rate: u32, burst: u32, hz: u64) -> Self {
        let ticks_per_token = if rate == 0 {
            u64::MAX
        } else {
            (hz / u64::from(rate)).max(1)
        };
        let burst = u64::from(burst).max(u64::from(rate > 0));
        TokenBucket {
            ticks_per_token,
            burst,
            tokens: burst,
            last: 0,
        }
    }

    /// Takes a token at time `now` (TSC ticks), if there is one.
    #[inline]
    pub fn take(&mut self, now: u64) -> bool {
        if self.ticks_per_token == u64::MAX {
            return false;
        }
        let earned = now.saturating_sub(self.last) / self.ticks_per_token;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last += earned * self.ticks_per_token;
            if self.tokens == self.burst {
                self.last = now;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        // 10 per second on a 1000 Hz clock: a token every 100 ticks.
        let mut b = TokenBucket::new(10, 3, 1000);
        assert!((0..3).all(|_| b.take(0)));
        assert!(!b.take(0), "burst spent");
        assert!(!b.take(99));
        assert!(b.take(100));
        assert!(!b.take(150));
        // A long pause refills to the burst, not beyond.
        assert_eq!((0..10).filter(|_| b.take(100_000)).count(), 3);
    }

    #[test]
    fn zero_rate_never_allows() {
        let mut b = TokenBucket::new(0, 50, 1000);
        assert!(!b.take(0) && !b.take(u64::MAX));
    }
}
