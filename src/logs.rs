//! tgw's logs: one line per event on stderr, through `tracing`. Colour
//! only on a terminal: journald and log files get plain text, not
//! `\x1b[2m` sequences. An event that a flood can trigger (a client
//! hammering a socket, descriptors running out) goes through a
//! [`Throttle`], so the log says how often it happened instead of
//! repeating it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Sets up the subscriber: `RUST_LOG` filters (default `info`).
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Lets through at most `burst` events of one kind per `period`, and
/// counts the rest: the next event let through says how many were
/// suppressed. One per call site, owned by the thread that logs (no
/// lock): `if let Some(suppressed) = throttle.admit(Instant::now()) {
/// warn!(suppressed, "...") }`.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    burst: u32,
    window: Instant,
    seen: u32,
    suppressed: u64,
}

impl Throttle {
    pub fn new(burst: u32, period: Duration) -> Throttle {
        Throttle {
            period,
            burst: burst.max(1),
            window: Instant::now(),
            seen: 0,
            suppressed: 0,
        }
    }

    /// Five a minute: what a warning a client can cause gets.
    pub fn per_minute() -> Throttle {
        Throttle::new(5, Duration::from_secs(60))
    }

    /// `Some(events suppressed since the last one logged)` if this event
    /// may be logged, `None` if it is to be suppressed.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.window) >= self.period {
            self.window = now;
            self.seen = 0;
        }
        if self.seen < self.burst {
            self.seen += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_a_burst_a_period_with_the_count_it_hid() {
        let mut t = Throttle::new(3, Duration::from_secs(10));
        let start = t.window;
        let at = |ms| start + Duration::from_millis(ms);
        // 3 of 100 events in the first period pass, nothing suppressed yet.
        let passed: Vec<_> = (0..100).filter_map(|i| t.admit(at(i))).collect();
        assert_eq!(passed, vec![0, 0, 0]);
        // The first of the next period tells of the 97 it hid.
        assert_eq!(t.admit(at(10_000)), Some(97));
        assert_eq!(t.admit(at(10_001)), Some(0));
        assert_eq!(t.admit(at(10_002)), Some(0));
        assert_eq!(t.admit(at(10_003)), None);
        assert_eq!(t.admit(at(25_000)), Some(1));
    }
}
