//! systemd's service protocol (sd_notify(3)), for `Type=notify` units
//! (packaging/systemd/tgw.service, docs/appliance.md): READY=1 once every
//! port is up and every worker has gone round its loop once, WATCHDOG=1
//! keep-alives only while every worker's heartbeat is fresh, RELOADING=1
//! around a SIGHUP reload, STOPPING=1, and STATUS= lines `systemctl
//! status` shows. Everything here is a no-op when NOTIFY_SOCKET is unset
//! (tgw run from a shell or a test), which is what the `sd-notify` crate
//! does by itself.
//!
//! Only the control plane calls this, never a worker: each message is a
//! syscall.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::WorkerCounters;
use sd_notify::NotifyState;
use tracing::{debug, warn};

/// One STATUS= line, outside the control loop (start-up, shut-down).
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// STOPPING=1 with why.
pub fn stopping(why: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(why)]);
}

/// The daemon's side of the protocol while it forwards.
pub struct Notifier {
    /// Each worker's heartbeat (`loops`) when the control loop started:
    /// a worker has polled once when its count moved past this.
    launched: Vec<u64>,
    ready: bool,
    watchdog: Option<Watchdog>,
    /// The worker whose stale heartbeat holds the keep-alives back, so
    /// that it is said once, not every tick.
    held: Option<usize>,
    ports: usize,
}

/// `WatchdogSec=` as systemd passed it (WATCHDOG_USEC).
#[derive(Clone, Copy, Debug)]
struct Watchdog {
    /// How often a keep-alive goes: a quarter of the period, so that a
    /// busy control loop still makes it in time.
    every: Duration,
    /// How old a heartbeat may be and still count as fresh: half the
    /// period, so that a worker that stops just after a keep-alive lets
    /// systemd's timer run out within 1.5 periods.
    fresh: Duration,
    next: Instant,
}

impl Notifier {
    /// Reads WATCHDOG_USEC (and WATCHDOG_PID, which must be this
    /// process) as systemd set them.
    pub fn from_env(counters: &[Arc<WorkerCounters>], ports: usize, now: Instant) -> Notifier {
        let mut usec = 0;
        let watchdog = (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| {
            let period = Duration::from_micros(usec);
            Watchdog {
                every: period / 4,
                fresh: period / 2,
                next: now,
            }
        });
        if let Some(w) = &watchdog {
            debug!(every_ms = w.every.as_millis() as u64, "systemd watchdog on");
        }
        Notifier {
            launched: counters.iter().map(|c| c.loops.get()).collect(),
            ready: false,
            watchdog,
            held: None,
            ports,
        }
    }

    /// Once a control tick: READY=1 when every worker has polled once,
    /// then a keep-alive when one is due and every heartbeat (`ages`,
    /// from [`crate::supervise::Heartbeats::ages`]) is fresh.
    pub fn tick(&mut self, counters: &[Arc<WorkerCounters>], ages: &[Duration], now: Instant) {
        if !self.ready {
            let loops: Vec<u64> = counters.iter().map(|c| c.loops.get()).collect();
            if !all_polled(&self.launched, &loops) {
                return;
            }
            self.ready = true;
            let text = format!(
                "forwarding: {} ports up, {} workers polling",
                self.ports,
                counters.len()
            );
            send(&[NotifyState::Ready, NotifyState::Status(&text)]);
        }
        let Some(w) = &mut self.watchdog else { return };
        if now < w.next {
            return;
        }
        match stale(ages, w.fresh) {
            None => {
                w.next = now + w.every;
                if self.held.take().is_some() {
                    send(&[NotifyState::Status(
                        "forwarding: every worker's heartbeat is fresh again",
                    )]);
                }
                send(&[NotifyState::Watchdog]);
            }
            Some((worker, age)) => {
                if self.held.replace(worker) != Some(worker) {
                    let text = format!(
                        "worker {worker}'s heartbeat is {} ms old: no watchdog keep-alive",
                        age.as_millis()
                    );
                    warn!("{text}");
                    send(&[NotifyState::Status(&text)]);
                }
            }
        }
    }

    /// RELOADING=1 before a SIGHUP reload (with the monotonic time, as
    /// systemd 253's `Type=notify-reload` asks for).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(at) => send(&[NotifyState::Reloading, at]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// READY=1 again after a reload, whether the file was applied or
    /// refused (the running state stands either way).
    pub fn reloaded(&self, applied: bool) {
        let text = if applied {
            "forwarding: the config file was reloaded"
        } else {
            "forwarding: the config file was refused on reload (see the log); the running state stands"
        };
        send(&[NotifyState::Ready, NotifyState::Status(text)]);
    }
}

/// Every worker's heartbeat moved past its count at launch.
fn all_polled(launched: &[u64], now: &[u64]) -> bool {
    launched.iter().zip(now).all(|(then, now)| now != then)
}

/// The first worker whose heartbeat is older than `fresh`, and its age.
fn stale(ages: &[Duration], fresh: Duration) -> Option<(usize, Duration)> {
    ages.iter()
        .position(|&age| age > fresh)
        .map(|worker| (worker, ages[worker]))
}

/// One datagram to NOTIFY_SOCKET; nothing without one. A failure is
/// logged (the first only: a gone socket would fail every keep-alive),
/// never fatal: systemd then acts on what it did not hear.
fn send(states: &[NotifyState]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(false, states) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!("sd_notify to NOTIFY_SOCKET failed (said once): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_waits_for_every_worker_to_poll_once() {
        assert!(!all_polled(&[0, 0], &[5, 0]));
        assert!(all_polled(&[0, 0], &[5, 1]));
        // Counts that were not zero at launch (a worker that started
        // before the control loop looked) must move too.
        assert!(!all_polled(&[3, 7], &[3, 9]));
        assert!(all_polled(&[], &[]));
    }

    #[test]
    fn keep_alives_stop_for_the_first_stale_heartbeat() {
        let ms = Duration::from_millis;
        assert_eq!(stale(&[ms(1), ms(2)], ms(500)), None);
        assert_eq!(
            stale(&[ms(1), ms(501), ms(900)], ms(500)),
            Some((1, ms(501)))
        );
        // Exactly at the bound is still fresh.
        assert_eq!(stale(&[ms(500)], ms(500)), None);
    }
}
