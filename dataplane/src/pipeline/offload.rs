//! The pipeline's part in flow offload (docs/offload.md): a worker only
//! enqueues. A flow that becomes established both ways
//! ([`Conn::established_both_ways`], asked by the flow-hit fast path and
//! the full path alike after a packet's update) is offered to the offload
//! manager on the worker's [`Link`], and marked requested in its `Conn`;
//! when a requested flow goes (every removal path calls `ended`) or its
//! TCP connection leaves Established, the worker says so. Between bursts
//! the worker applies the manager's feedback ([`Pipeline::apply_feedback`]).
//!
//! With offload off (no link) the fast path pays one test of an `Option`
//! per hit, on a cold branch.

use std::sync::Arc;

use super::*;
use crate::conntrack::Offload;
use crate::counters::OffloadCounters;
use crate::flow::Removed;
use crate::offload::queue::{Feedback, Link, Request};
use crate::offload::Candidate;

/// Feedback a worker applies per call of [`Pipeline::apply_feedback`] at
/// most: a bound on the pause between bursts.
pub const FEEDBACK_BUDGET: usize = 64;

impl Pipeline {
    /// Makes this worker offer its established flows to the offload
    /// manager through `link` (this worker's, made at start).
    #[must_use]
    pub fn with_offload(mut self, link: Arc<Link>) -> Self {
        self.offload = Some(link);
        self
    }

    /// Whether this worker offers flows for offload.
    pub fn offloads(&self) -> bool {
        self.offload.is_some()
    }

    /// [`offer`] for the full path, after a packet's update.
    pub(super) fn offload_step(&mut self, c: &WorkerCounters, id: FlowId, dir: Direction) {
        offer(self.offload.as_deref(), &mut self.flows, c, id, dir);
    }

    /// Applies one piece of the manager's feedback at time `now`: a
    /// refresh extends its flow's life as a packet would and adds the
    /// NIC's packets and bytes to its tenant's counts; a release gives the
    /// flow back to software for good. Feedback about a flow the worker no
    /// longer holds as requested (its id reused since, or ended) is
    /// counted; a refresh of one means the NIC still forwards a flow whose
    /// `Ended` was lost on a full queue, and is answered with a `Stale`
    /// notice, which takes its rules down.
    pub fn apply(&mut self, c: &WorkerCounters, fb: Feedback, now: u64) {
        let oc = &c.offload;
        let (id, key) = fb.flow();
        let ours = self.flows.keys(id).is_some_and(|k| k[0] == key);
        let Some(conn) = self
            .flows
            .get_mut(id)
            .filter(|conn| ours && conn.offload == Offload::Requested)
        else {
            oc.feedback_stale.inc();
            if let (Feedback::Refresh { .. }, Some(link)) = (fb, self.offload.as_deref()) {
                tell_stale(link, oc, id, key);
            }
            return;
        };
        match fb {
            Feedback::Refresh { packets, bytes, .. } => {
                oc.refreshes.inc();
                if let Some(tc) = c.tenant(usize::from(conn.tenant)) {
                    tc.offloaded_packets.add(packets);
                    tc.offloaded_bytes.add(bytes);
                }
                // The NIC forwarded segments the worker never saw: what
                // it learned of each side's sequence is behind, and a RST
                // from where the connection is would be refused as out of
                // window. Unknown again (0), as Linux's flowtable resets
                // its window tracking (`flow_offload_fixup_tcp`); the
                // next plain segments teach it again.
                conn.expect = [0, 0];
                let deadline = now.saturating_add(self.life.of(conn));
                let old = self.flows.deadline(id).unwrap_or(0);
                self.flows.set_deadline(id, deadline.max(old));
            }
            Feedback::Released { .. } => {
                oc.released.inc();
                conn.offload = Offload::Kept;
            }
            // Only a next hop moved: offered again, with its new MAC,
            // by its next packet (docs/offload.md, "Pull-back").
            Feedback::Moved { .. } => {
                oc.released.inc();
                conn.offload = Offload::Unoffered;
            }
        }
    }

    /// Applies up to [`FEEDBACK_BUDGET`] pieces of the manager's feedback
    /// ([`Pipeline::apply`]); the worker calls it between bursts. Returns
    /// how many it applied.
    pub fn apply_feedback(&mut self, c: &WorkerCounters, now: u64) -> usize {
        let mut n = 0;
        while n < FEEDBACK_BUDGET {
            let Some(fb) = self.offload.as_deref().and_then(Link::next_feedback) else {
                break;
            };
            self.apply(c, fb, now);
            n += 1;
        }
        n
    }
}

/// Marked frames counted where the counters are not at hand (the burst
/// stages), added to them at the sweep.
#[derive(Debug, Default)]
pub(super) struct Marks {
    pub(super) hits: std::cell::Cell<u64>,
    pub(super) stale: std::cell::Cell<u64>,
}

impl Marks {
    pub(super) fn flush(&self, c: &WorkerCounters) {
        c.offload.marked_hits.add(self.hits.take());
        c.offload.stale_marks.add(self.stale.take());
    }
}

/// After a packet of flow `id` going `dir`, on a worker that offloads
/// (`link`): offers the flow once it is established both ways, and tells
/// of a requested TCP flow that left Established (a FIN or RST went
/// through software, as full-offload rules let them). Out of line: the
/// fast path calls it only for a flow not offered yet.
#[cold]
#[inline(never)]
pub(super) fn offer(
    link: Option<&Link>,
    flows: &mut FlowTable<Conn>,
    c: &WorkerCounters,
    id: FlowId,
    dir: Direction,
) {
    let Some(link) = link else {
        return;
    };
    let Some(keys) = flows.keys(id) else {
        return;
    };
    let Some(conn) = flows.get_mut(id) else {
        return;
    };
    let oc = &c.offload;
    match conn.offload {
        Offload::Unoffered if conn.established_both_ways(dir.index()) => {
            let candidate = Candidate {
                worker: link.worker(),
                id,
                keys,
                conn: *conn,
            };
            oc.requests.inc();
            conn.offload = if link.offer(candidate) {
                Offload::Requested
            } else {
                oc.queue_full.inc();
                Offload::Kept
            };
        }
        Offload::Requested
            if conn.protocol == IpProtocol::TCP.0 && conn.tcp != TcpState::Established =>
        {
            conn.offload = Offload::Kept;
            end_offload(link, oc, id);
        }
        _ => {}
    }
}

/// Tells the manager that requested flow `id` ended.
fn end_offload(link: &Link, oc: &OffloadCounters, id: FlowId) {
    oc.ended.inc();
    let worker = link.worker();
    if !link.request(Request::Ended { worker, id }) {
        oc.ended_lost.inc();
    }
}

/// Tells the manager that the flow it refreshed as `id` with forward key
/// `key` is not a requested flow of this worker.
fn tell_stale(link: &Link, oc: &OffloadCounters, id: FlowId, key: FlowKey) {
    let worker = link.worker();
    if link.request(Request::Stale { worker, id, key }) {
        oc.stale_told.inc();
    } else {
        oc.stale_lost.inc();
    }
}

/// The offload part of a flow's removal: a requested flow's end is told.
#[inline]
pub(super) fn removed(link: Option<&Link>, c: &WorkerCounters, gone: &Removed<Conn>) {
    if let Some(link) = link {
        if gone.value.offload == Offload::Requested {
            end_offload(link, &c.offload, gone.id);
        }
    }
}

/// A requested flow decided again under its tenant's new epoch and kept:
/// its rules were made for the old one, so they go, and the flow stays in
/// software.
pub(super) fn redecided(link: Option<&Link>, c: &WorkerCounters, id: FlowId, conn: &mut Conn) {
    if let Some(link) = link {
        if conn.offload == Offload::Requested {
            conn.offload = Offload::Kept;
            end_offload(link, &c.offload, id);
        }
    }
}
