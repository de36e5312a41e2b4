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

    /// Gives back a token just taken, for what another bucket then
    /// refused.
    #[inline]
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1).min(self.burst);
    }
}

/// Which way a limited message goes: back into a tenant's tunnels, or out
/// to the Internet on the tenant's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toward {
    Tenant = 0,
    Public = 1,
}

/// One [`TokenBucket`] per tenant and direction, so that no one's flood
/// of errors — an Internet host's TTL-1 packets to one elastic IP, a
/// tenant's VM sending too-big packets — spends the tokens another
/// tenant's path-MTU discovery needs (RFC 1812 4.3.2.8 asks for a limit;
/// sharing one would let anyone switch off everyone's errors). Sized at
/// start with the tenant count; tenants added later share one pair.
#[derive(Clone, Debug)]
pub struct TenantBuckets {
    buckets: Box<[[TokenBucket; 2]]>,
    late: [TokenBucket; 2],
}

impl TenantBuckets {
    /// `tenants` pairs of buckets like `each`.
    pub fn new(each: TokenBucket, tenants: usize) -> Self {
        TenantBuckets {
            buckets: vec![[each; 2]; tenants].into_boxed_slice(),
            late: [each; 2],
        }
    }

    /// Takes a token from tenant `tenant`'s bucket for `toward`.
    #[inline]
    pub fn take(&mut self, tenant: usize, toward: Toward, now: u64) -> bool {
        let pair = match self.buckets.get_mut(tenant) {
            Some(pair) => pair,
            None => &mut self.late,
        };
        pair[toward as usize].take(now)
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

    #[test]
    fn tenants_and_directions_have_their_own_tokens() {
        let mut b = TenantBuckets::new(TokenBucket::new(10, 2, 1000), 2);
        assert!((0..2).all(|_| b.take(0, Toward::Public, 0)));
        assert!(!b.take(0, Toward::Public, 0), "tenant 0 spent its burst");
        assert!(
            b.take(0, Toward::Tenant, 0),
            "the other direction has its own"
        );
        assert!(b.take(1, Toward::Public, 0), "and so has tenant 1");
        // Tenants past the start's count share one pair.
        assert!(b.take(7, Toward::Public, 0) && b.take(9, Toward::Public, 0));
        assert!(!b.take(8, Toward::Public, 0));
    }
}
