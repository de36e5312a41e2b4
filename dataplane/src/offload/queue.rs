//! The two bounded queues between a worker and the offload manager: the
//! worker's requests up (a flow to offload, a flow that ended), the
//! manager's feedback down (a flow's hardware hits, a flow pulled back).
//!
//! One [`Link`] per worker, made at start with the sizes the config gives
//! and shared (`Arc`) by the worker and the control plane. Each queue has
//! one producer and one consumer; both are crossbeam's `ArrayQueue`, a
//! fixed ring: a push never blocks and never allocates, and a full queue
//! refuses it, which the pusher counts (the worker its requests in
//! [`crate::counters::OffloadCounters::queue_full`], the manager its
//! feedback in its stats).

use crossbeam_queue::ArrayQueue;

use super::Candidate;
use crate::flow::{FlowId, FlowKey};

/// What a worker tells the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A flow became established both ways: it may move to the NIC.
    Candidate(Candidate),
    /// A flow the worker requested was removed (expiry, sweep, flush,
    /// redecide, close) or its TCP connection left Established: whatever
    /// rule it has goes.
    Ended { worker: u16, id: FlowId },
    /// A refresh named a flow the worker does not hold as requested (gone,
    /// its id reused by another key, or no longer offloaded): its `Ended`
    /// was lost on a full queue. The manager removes the rules of the
    /// flow with this id *and* key, and of no other.
    Stale {
        worker: u16,
        id: FlowId,
        key: FlowKey,
    },
}

/// What the manager tells a worker. Each names the flow by its id and its
/// forward key: a flow id is reused once its flow is removed, and the
/// feedback about the old flow may still be on its way when the worker
/// hands the id to a new one, which must not take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// The flow's rules saw `packets` packets of `bytes` bytes since the
    /// last refresh: the flow lives on as if a packet had just passed.
    Refresh {
        id: FlowId,
        key: FlowKey,
        packets: u64,
        bytes: u64,
    },
    /// The flow's rules are gone (its tenant changed, a flush, shutdown):
    /// software handles all of it again, and it is not offered again.
    Released { id: FlowId, key: FlowKey },
    /// The flow's rules are gone because a next hop's MAC moved: the
    /// flow's decision stands, software takes its packets and offers it
    /// again (with the new MAC) when it next finds it established both
    /// ways.
    Moved { id: FlowId, key: FlowKey },
}

impl Feedback {
    /// The flow it is about.
    pub fn flow(&self) -> (FlowId, FlowKey) {
        match *self {
            Feedback::Refresh { id, key, .. }
            | Feedback::Released { id, key }
            | Feedback::Moved { id, key } => (id, key),
        }
    }
}

/// One worker's pair of queues.
#[derive(Debug)]
pub struct Link {
    worker: u16,
    requests: ArrayQueue<Request>,
    feedback: ArrayQueue<Feedback>,
}

impl Link {
    /// Queues for worker `worker`: `requests` requests up, `feedback`
    /// feedback down (each at least 1).
    pub fn new(worker: u16, requests: usize, feedback: usize) -> Link {
        Link {
            worker,
            requests: ArrayQueue::new(requests.max(1)),
            feedback: ArrayQueue::new(feedback.max(1)),
        }
    }

    /// Links for `workers` workers, numbered from 0.
    pub fn for_workers(
        workers: u16,
        requests: usize,
        feedback: usize,
    ) -> Vec<std::sync::Arc<Link>> {
        (0..workers)
            .map(|w| std::sync::Arc::new(Link::new(w, requests, feedback)))
            .collect()
    }

    /// The worker whose link it is.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// The worker's side, for an end notice: false, the notice dropped,
    /// if the queue is full.
    #[inline]
    pub fn request(&self, r: Request) -> bool {
        self.requests.push(r).is_ok()
    }

    /// The worker's side, for a candidate: false, the candidate dropped,
    /// once the queue is half full. The other half is kept for end
    /// notices, which must get through: a rule whose flow ended
    /// unannounced would go on forwarding its packets.
    #[inline]
    pub fn offer(&self, c: Candidate) -> bool {
        let half = self.requests.capacity().div_ceil(2);
        self.requests.len() < half && self.request(Request::Candidate(c))
    }

    /// The manager's side: the oldest request.
    pub fn next_request(&self) -> Option<Request> {
        self.requests.pop()
    }

    /// The manager's side: false, the feedback dropped, if the queue is
    /// full.
    pub fn send(&self, f: Feedback) -> bool {
        self.feedback.push(f).is_ok()
    }

    /// The worker's side: the oldest feedback.
    #[inline]
    pub fn next_feedback(&self) -> Option<Feedback> {
        self.feedback.pop()
    }

    /// Requests waiting, and the most the queue holds.
    pub fn requests_queued(&self) -> (usize, usize) {
        (self.requests.len(), self.requests.capacity())
    }

    /// Feedback waiting, and the most the queue holds.
    pub fn feedback_queued(&self) -> (usize, usize) {
        (self.feedback.len(), self.feedback.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_keeps_what_it_has() {
        let link = Link::new(3, 2, 1);
        let ended = |i| Request::Ended {
            worker: 3,
            id: FlowId::new(i),
        };
        assert!(link.request(ended(1)));
        assert!(link.request(ended(2)));
        assert!(!link.request(ended(3)), "a third request does not fit");
        assert_eq!(link.requests_queued(), (2, 2));
        assert_eq!(link.next_request(), Some(ended(1)));
        assert_eq!(link.next_request(), Some(ended(2)));
        assert_eq!(link.next_request(), None);

        let key = FlowKey::default();
        let released = |i| Feedback::Released {
            id: FlowId::new(i),
            key,
        };
        assert!(link.send(released(7)));
        assert!(!link.send(released(8)));
        assert_eq!(
            link.next_feedback().map(|f| f.flow().0),
            Some(FlowId::new(7))
        );
        assert_eq!(link.next_feedback(), None);
        assert_eq!(link.worker(), 3);
    }
}
