//! A worker's mailbox: how the control plane asks a worker about the state
//! only the worker may touch (its flow table, DESIGN.md: threads and
//! tables) and gets the answer, without the worker ever locking,
//! allocating or making a syscall.
//!
//! # The protocol
//!
//! One question at a time, in a box the control plane allocated (with the
//! room the answer may take, e.g. a `Vec` with capacity). Three states,
//! each change made by one side only:
//!
//! ```text
//!   IDLE ──ask (control: inbox ← job, Release)──▶ POSTED
//!   POSTED ──poll (worker: job → outbox, Release)──▶ DONE
//!   DONE ──ask collects (control: outbox → answer)──▶ IDLE
//! ```
//!
//! The box moves between the threads through [`AtomicCell`]s holding an
//! `Option<Box<J>>`: one pointer-sized word, swapped by a single atomic
//! instruction (crossbeam's cell is lock-free for a type of that size,
//! [`Mailbox::is_lock_free`]), so neither side needs `unsafe`.
//!
//! The worker calls [`Inbox::poll`] once per loop, after its burst: while
//! nothing is posted that is one acquire load of the state. A posted job is
//! taken once and served a bounded piece per loop (the closure decides how
//! much: `pipeline::admin` does at most `Budget::PER_LOOP`), so a
//! question about a million flows never holds a burst back for long; when
//! the closure says it is done, the box goes back with its answer.
//!
//! The control plane's [`Mailbox::ask`] waits a bounded time. A worker that
//! does not answer in time keeps the box; the question is then reported
//! unanswered, the next `ask` finds the mailbox still busy
//! ([`AskError::Busy`]) until the late answer arrives, which the next `ask`
//! after that throws away (on the control plane, so the worker never
//! frees). Several control threads may ask at once: they take turns on a
//! lock only they use.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_utils::atomic::AtomicCell;

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const DONE: u8 = 2;

/// One worker's mailbox, shared by the control plane (which asks) and the
/// worker (which answers through its [`Inbox`]).
pub struct Mailbox<J> {
    state: AtomicU8,
    /// The posted job, until the worker takes it.
    inbox: AtomicCell<Option<Box<J>>>,
    /// The answered job, until the control plane takes it.
    outbox: AtomicCell<Option<Box<J>>>,
    /// Control threads take turns; the worker never touches it.
    turn: Mutex<()>,
}

/// The worker's end of a [`Mailbox`]: the one job it is serving.
pub struct Inbox<J> {
    mailbox: Arc<Mailbox<J>>,
    job: Option<Box<J>>,
}

/// Why [`Mailbox::ask`] came back without an answer. Either way nothing
/// was lost: the worker's tables are as they were or as the job left them.
#[derive(Debug)]
pub enum AskError<J> {
    /// An earlier question is still with the worker (it did not answer in
    /// time): the job is handed back unasked.
    Busy(Box<J>),
    /// The worker did not answer within the timeout; it keeps the job and
    /// its answer is thrown away when it comes.
    NotAnswering,
}

impl<J: Send> Mailbox<J> {
    /// An empty mailbox and the worker's end of it: hand the [`Inbox`] to
    /// the worker, keep the mailbox on the control plane.
    pub fn new() -> (Arc<Mailbox<J>>, Inbox<J>) {
        let mailbox = Arc::new(Mailbox {
            state: AtomicU8::new(IDLE),
            inbox: AtomicCell::new(None),
            outbox: AtomicCell::new(None),
            turn: Mutex::new(()),
        });
        let inbox = Inbox {
            mailbox: Arc::clone(&mailbox),
            job: None,
        };
        (mailbox, inbox)
    }

    /// Whether the box changes hands without a lock on this platform (it
    /// does wherever a pointer-sized atomic exists: every target tgw runs
    /// on; tested).
    pub fn is_lock_free() -> bool {
        AtomicCell::<Option<Box<J>>>::is_lock_free()
    }

    /// Posts `job` and waits up to `timeout` for the worker's answer: the
    /// same box, filled in. Control plane only; it sleeps between looks.
    pub fn ask(&self, job: Box<J>, timeout: Duration) -> Result<Box<J>, AskError<J>> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        match self.state.load(Ordering::Acquire) {
            IDLE => {}
            // A late answer to a question given up on: thrown away here.
            DONE => {
                drop(self.outbox.take());
                self.state.store(IDLE, Ordering::Release);
            }
            _ => return Err(AskError::Busy(job)),
        }
        self.inbox.store(Some(job));
        self.state.store(POSTED, Ordering::Release);
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            if self.state.load(Ordering::Acquire) == DONE {
                let answer = self.outbox.take();
                self.state.store(IDLE, Ordering::Release);
                // DONE is stored after the outbox: the answer is there.
                return answer.ok_or(AskError::NotAnswering);
            }
            if Instant::now() >= deadline {
                return Err(AskError::NotAnswering);
            }
            // An idle worker answers within microseconds: spin a little
            // before sleeping.
            if spins < 64 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }
}

impl<J> Inbox<J> {
    /// Serves the posted job, if any, a piece at a time: `serve` does one
    /// bounded piece and returns true when the job is answered. Call once
    /// per loop, between bursts. With nothing posted, this is one acquire
    /// load.
    #[inline]
    pub fn poll<F: FnOnce(&mut J) -> bool>(&mut self, serve: F) {
        if self.job.is_none() && self.mailbox.state.load(Ordering::Acquire) != POSTED {
            return;
        }
        self.serve(serve);
    }

    #[cold]
    #[inline(never)]
    fn serve<F: FnOnce(&mut J) -> bool>(&mut self, serve: F) {
        if self.job.is_none() {
            // POSTED is stored after the inbox: the job is there.
            self.job = self.mailbox.inbox.take();
        }
        let Some(job) = self.job.as_mut() else {
            return;
        };
        if serve(job) {
            // The outbox is empty (the control plane emptied it before it
            // posted): storing drops nothing here.
            self.mailbox.outbox.store(self.job.take());
            self.mailbox.state.store(DONE, Ordering::Release);
        }
    }

    /// Whether a job is being served (taken, not yet answered).
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_changes_hands_without_a_lock() {
        assert!(Mailbox::<Vec<u64>>::is_lock_free());
    }

    /// A job answered over three polls; nothing happens on polls with
    /// nothing posted.
    #[test]
    fn a_job_is_served_a_piece_per_poll_and_answered_once() {
        let (mailbox, mut inbox) = Mailbox::<(u32, Vec<u32>)>::new();
        let mut called = 0;
        inbox.poll(|_| {
            called += 1;
            true
        });
        assert_eq!(called, 0, "nothing posted, nothing served");
        let worker = std::thread::spawn(move || {
            let mut polls = 0;
            while polls < 1_000_000 {
                let mut answered = false;
                inbox.poll(|(round, out)| {
                    *round += 1;
                    out.push(*round);
                    answered = *round == 3;
                    answered
                });
                polls += 1;
                if answered {
                    break;
                }
                std::thread::yield_now();
            }
            inbox
        });
        let job = Box::new((0, Vec::with_capacity(3)));
        let answer = mailbox.ask(job, Duration::from_secs(10)).unwrap();
        assert_eq!(answer.1, vec![1, 2, 3]);
        let inbox = worker.join().unwrap();
        assert!(!inbox.busy());
    }

    /// A worker that does not poll leaves the question unanswered, the
    /// mailbox busy until it answers, and its late answer is thrown away.
    #[test]
    fn a_silent_worker_is_reported_and_its_late_answer_dropped() {
        let (mailbox, mut inbox) = Mailbox::<u32>::new();
        let r = mailbox.ask(Box::new(1), Duration::from_millis(5));
        assert!(matches!(r, Err(AskError::NotAnswering)));
        let r = mailbox.ask(Box::new(2), Duration::from_millis(5));
        assert!(
            matches!(r, Err(AskError::Busy(j)) if *j == 2),
            "handed back"
        );
        inbox.poll(|n| {
            assert_eq!(*n, 1, "the first question");
            true
        });
        let worker = std::thread::spawn(move || {
            for _ in 0..1_000_000 {
                let mut answered = false;
                inbox.poll(|n| {
                    *n *= 10;
                    answered = true;
                    true
                });
                if answered {
                    break;
                }
                std::thread::yield_now();
            }
        });
        let answer = mailbox.ask(Box::new(3), Duration::from_secs(10)).unwrap();
        assert_eq!(*answer, 30, "the answer to this question, not the late one");
        worker.join().unwrap();
    }
}
