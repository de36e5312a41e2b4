//! Fail-stop for workers: the control plane watches that every worker is
//! alive (its job has not returned, its heartbeat moves) and names the
//! first that is not, so that the gateway stops as a whole instead of
//! running on without that worker's queues, flows and handoffs
//! (docs/decisions.md, "A dead worker stops tgw").

use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::WorkerCounters;
use rte::LaunchedLcore;

/// The exit status of a tgw that stopped because a worker died (panicked,
/// or stopped going round its loop): `EX_SOFTWARE` of sysexits.h, a bug,
/// apart from a bad config (1), so that systemd's `Restart=on-failure`
/// brings a fresh tgw up and an operator can tell the two apart.
pub const EXIT_WORKER_FAILED: u8 = 70;

/// Why a worker is taken for dead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// It panicked: the message.
    Panicked(String),
    /// Its heartbeat (`loops`) did not move for this many milliseconds.
    Stalled(u64),
    /// It returned before it was asked to stop.
    Returned,
}

/// The worker whose death stopped the gateway.
#[derive(Clone, Debug)]
pub struct WorkerFailure {
    /// Its place in the config's `[[worker]]` list.
    pub worker: usize,
    pub lcore: u32,
    pub cause: Cause,
}

impl std::fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, l) = (self.worker, self.lcore);
        match &self.cause {
            Cause::Panicked(m) => write!(f, "worker {w} (lcore {l}) panicked: {m}"),
            Cause::Stalled(ms) => write!(
                f,
                "worker {w} (lcore {l}) stalled: no heartbeat for {ms} ms"
            ),
            Cause::Returned => write!(
                f,
                "worker {w} (lcore {l}) returned before it was asked to stop"
            ),
        }
    }
}

impl Cause {
    /// The name used in the stats JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Cause::Panicked(_) => "panicked",
            Cause::Stalled(_) => "stalled",
            Cause::Returned => "returned",
        }
    }
}

/// The worker heartbeats as last seen, for the watchdog.
pub struct Heartbeats<'a> {
    counters: &'a [Arc<WorkerCounters>],
    /// `None`: the watchdog is off.
    timeout: Option<Duration>,
    /// Each worker's `loops` when it last moved, and when that was.
    seen: Vec<(u64, Instant)>,
}

impl<'a> Heartbeats<'a> {
    pub fn new(counters: &'a [Arc<WorkerCounters>], timeout: Option<Duration>) -> Self {
        let now = Instant::now();
        Heartbeats {
            counters,
            timeout,
            seen: counters.iter().map(|c| (c.loops.get(), now)).collect(),
        }
    }

    /// The first worker whose heartbeat has not moved for longer than
    /// the timeout, and for how long.
    fn stalled(&mut self, now: Instant) -> Option<(usize, Duration)> {
        self.look(now);
        let timeout = self.timeout?;
        self.seen
            .iter()
            .position(|&(_, at)| now.duration_since(at) > timeout)
            .map(|worker| (worker, now.duration_since(self.seen[worker].1)))
    }

    /// Notes the heartbeats that moved since last seen.
    fn look(&mut self, now: Instant) {
        for (c, (last, at)) in self.counters.iter().zip(&mut self.seen) {
            let loops = c.loops.get();
            if loops != *last {
                (*last, *at) = (loops, now);
            }
        }
    }

    /// How long ago each worker's heartbeat last moved (watchdog or not):
    /// what `tgw_worker_heartbeat_age_seconds` shows, so that an alert
    /// can fire long before the watchdog, or without one.
    pub fn ages(&mut self, now: Instant) -> Vec<Duration> {
        self.look(now);
        self.seen
            .iter()
            .map(|&(_, at)| now.duration_since(at))
            .collect()
    }
}

/// A worker that died: one that panicked, or returned while the gateway
/// runs, or whose heartbeat stopped.
///
/// `stopping` is read after a finished job is seen: a worker returns
/// once it sees the stop flag, so a SIGTERM that lands between the
/// control loop's look at the flag and this call finds a worker that has
/// returned, and that is a clean stop, not a death (a `tgw-perf scrape`
/// stopping tgw 0.16 s after it started met exactly this, exit 70).
pub fn dead_worker(
    running: &[LaunchedLcore],
    lcores: &[u32],
    heartbeats: &mut Heartbeats,
    stopping: impl Fn() -> bool,
) -> Option<WorkerFailure> {
    for (worker, job) in running.iter().enumerate() {
        // `finished` is an acquire load of what the job stored after it
        // saw the flag, so the flag's load below sees it raised.
        if !job.finished() {
            continue;
        }
        if let Some(cause) = cause_of_return(job.panic_message(), stopping()) {
            return Some(WorkerFailure {
                worker,
                lcore: job.id().0,
                cause,
            });
        }
    }
    let (worker, silent) = heartbeats.stalled(Instant::now())?;
    Some(WorkerFailure {
        worker,
        lcore: lcores[worker],
        cause: Cause::Stalled(silent.as_millis() as u64),
    })
}

/// What a worker's return means: a panic is a death whenever it comes;
/// a plain return is one only while the gateway is not stopping.
fn cause_of_return(panic: Option<&str>, stopping: bool) -> Option<Cause> {
    match panic {
        Some(m) => Some(Cause::Panicked(m.to_owned())),
        None if stopping => None,
        None => Some(Cause::Returned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_returns_on_stop_is_not_dead_but_a_panic_always_is() {
        assert_eq!(cause_of_return(None, true), None);
        assert_eq!(cause_of_return(None, false), Some(Cause::Returned));
        for stopping in [false, true] {
            assert_eq!(
                cause_of_return(Some("boom"), stopping),
                Some(Cause::Panicked("boom".into()))
            );
        }
    }

    #[test]
    fn the_watchdog_names_the_worker_whose_heartbeat_stopped() {
        let counters: Vec<_> = (0..3).map(|_| Arc::new(WorkerCounters::new(0))).collect();
        let timeout = Duration::from_millis(100);
        let mut hb = Heartbeats::new(&counters, Some(timeout));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Everyone beats: nobody is stalled, however long it has been.
        for c in &counters {
            c.loops.inc();
        }
        assert_eq!(hb.stalled(at(500)), None);
        // Worker 1 stops; the others go on.
        for tick in 1..=3u64 {
            counters[0].loops.inc();
            counters[2].loops.inc();
            let found = hb.stalled(at(500 + tick * 50));
            if tick * 50 <= 100 {
                assert_eq!(found, None, "at {} ms", tick * 50);
            } else {
                assert_eq!(found, Some((1, Duration::from_millis(tick * 50))));
            }
        }
        // Off: never.
        let mut off = Heartbeats::new(&counters, None);
        assert_eq!(off.stalled(at(60_000)), None);
    }
}
