//! What the operator asks of a worker's flows (`tgwctl flow show|flush`):
//! the worker itself reads and ends them, a bounded piece per loop
//! ([`Budget::PER_LOOP`]), answering through its [`Mailbox`]; the control
//! plane gathers the answers of every worker in turn.
//!
//! A walk goes through the flow table by slot (a flow's [`FlowId`], which
//! does not move while the flow lives), so a cursor is a worker and a
//! slot: paging visits every flow that lives throughout exactly once,
//! whatever is created or ended meanwhile.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::mailbox::{AskError, Mailbox};

/// Flow slots a worker visits per loop for the control plane.
pub const ADMIN_SLOTS: usize = 4096;

/// Flows a worker shows or ends per loop for the control plane. Ending a
/// flow costs some 100 ns, making its row 20 ns, visiting a slot that
/// shows nothing 11 ns (release build, 64k flows, medians on a 2-vCPU
/// machine at load 6; `measure_what_a_loop_spends_on_flow_show_and_flush`
/// in dataplane/tests/pipeline/admin.rs): with both bounds a loop's share
/// stays under about 50 µs, where 4096 flows ended in one loop held the
/// next burst back 0.3 ms.
pub const ADMIN_FLOWS: usize = 256;

/// How much of a walk one call may do: slots visited, flows shown or
/// ended, whichever runs out first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub slots: usize,
    pub flows: usize,
}

impl Budget {
    /// A worker's share per loop: a flush of a million flows is spread
    /// over about 4,000 loops (some 0.1 s), with bursts between them.
    pub const PER_LOOP: Budget = Budget {
        slots: ADMIN_SLOTS,
        flows: ADMIN_FLOWS,
    };
    /// The whole table at once (tests, and tools off the fast path).
    pub const ALL: Budget = Budget {
        slots: usize::MAX,
        flows: usize::MAX,
    };
}

/// How long the control plane waits for a worker's answer to a show
/// before it reports the worker as not answering.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// The same for a flush, which takes a loop per 256 flows it ends: some
/// 0.1 s for a million on an idle worker, more between heavy bursts.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Which flows an operator means; every field given must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The tenant's slot ([`TenantId`]).
    pub tenant: Option<u32>,
    /// Either end, before or after NAT.
    pub addr: Option<u32>,
    /// Either end's port (or ICMP echo identifier), before or after NAT.
    pub port: Option<u16>,
    pub protocol: Option<u8>,
}

/// An address and port (an ICMP echo's identifier, 0 for protocols
/// without ports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: u32,
    pub port: u16,
}

/// One flow, as the operator reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRow {
    /// The worker that owns it.
    pub worker: u16,
    /// Its slot in that worker's table.
    pub slot: u32,
    /// The tenant's slot ([`TenantId`]).
    pub tenant: u32,
    pub protocol: u8,
    /// Opened from the public side (else by the tenant).
    pub inbound: bool,
    /// The tenant's end, in its own address space.
    pub private: Endpoint,
    /// The tenant's end as the public side sees it: what NAT writes (the
    /// elastic IP, a pool's address and port, or the address itself).
    pub public: Endpoint,
    /// The other end.
    pub remote: Endpoint,
    /// The source NAT pool the mapping belongs to, if any.
    pub pool: Option<u32>,
    pub tcp: TcpState,
    /// Whether anyone inside answered (always for flows opened inside).
    pub answered: bool,
    /// Until it expires unless a packet comes.
    pub seconds_left: u64,
    /// Forward (as the first packet came) and reply key.
    pub keys: [FlowKey; 2],
}

impl FlowRow {
    /// Whether `filter` means this flow.
    pub fn matches(&self, filter: &Filter) -> bool {
        let ends = [self.private, self.public, self.remote];
        filter.tenant.is_none_or(|t| t == self.tenant)
            && filter.protocol.is_none_or(|p| p == self.protocol)
            && filter.addr.is_none_or(|a| ends.iter().any(|e| e.addr == a))
            && filter.port.is_none_or(|p| ends.iter().any(|e| e.port == p))
    }
}

impl Pipeline {
    /// This worker's index (0 unless steering says otherwise).
    fn worker_index(&self) -> u16 {
        self.steer.map_or(0, |s| s.me())
    }

    /// The row of the flow in slot `id`, if it holds a live one.
    fn row(&self, id: FlowId, now: u64) -> Option<FlowRow> {
        let keys = self.flows.keys(id)?;
        let conn = self.flows.get(id)?;
        let deadline = self.flows.deadline(id)?;
        // Every flow has one key on the public side and one in its
        // tenant; the forward key's zone says who opened it. In the
        // tenant's key the private end is the source, in the public key
        // the tenant's public end is the destination.
        let inbound = keys[0].zone() == Zone::PUBLIC;
        let (inside, outside) = if inbound {
            (keys[1], keys[0])
        } else {
            (keys[0], keys[1])
        };
        let end = |addr, port| Endpoint { addr, port };
        let tenant = conn.tenant_id().0;
        Some(FlowRow {
            worker: self.worker_index(),
            slot: id.get(),
            tenant,
            protocol: conn.protocol,
            inbound,
            private: end(inside.src(), inside.src_port()),
            public: end(outside.dst(), outside.dst_port()),
            remote: end(inside.dst(), inside.dst_port()),
            pool: conn.snat.map(|s| s.pool),
            tcp: conn.tcp,
            answered: conn.answered == Answered::Yes,
            seconds_left: deadline.saturating_sub(now).div_ceil(self.hz),
            keys,
        })
    }

    /// Appends to `out` the rows of the live flows `filter` means, from
    /// slot `cursor` on, within `budget`, stopping when `out` is full (it
    /// never grows past its capacity: nothing is allocated). Returns the
    /// slot to go on from, `None` past the table's end. Expired flows not
    /// yet swept are not shown.
    pub fn flows_matching(
        &self,
        filter: &Filter,
        cursor: u32,
        budget: Budget,
        now: u64,
        out: &mut Vec<FlowRow>,
    ) -> Option<u32> {
        let end = self.walk_end(cursor, budget.slots);
        let mut shown = 0;
        for slot in cursor..end {
            if out.len() >= out.capacity() || shown >= budget.flows {
                return Some(slot);
            }
            let row = self.row(FlowId::new(slot), now);
            if let Some(row) = row.filter(|r| r.seconds_left > 0 && r.matches(filter)) {
                out.push(row);
                shown += 1;
            }
        }
        self.next_slot(end)
    }

    /// Ends the flows `filter` means, from slot `cursor` on, within
    /// `budget`, exactly as expiry ends them: NAT ports back to their
    /// pools, the tenant's flow and unanswered counts given back. Returns
    /// how many ended and the slot to go on from.
    pub fn flush_matching(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        filter: &Filter,
        cursor: u32,
        budget: Budget,
    ) -> (u64, Option<u32>) {
        let end = self.walk_end(cursor, budget.slots);
        let mut removed = 0;
        for slot in cursor..end {
            if removed >= budget.flows as u64 {
                return (removed, Some(slot));
            }
            let id = FlowId::new(slot);
            // Expired or not: the deadline does not matter to a flush.
            let meant = self.row(id, 0).is_some_and(|r| r.matches(filter));
            if !meant {
                continue;
            }
            if let Some(gone) = self.flows.remove(id) {
                ended(&mut self.snat, &t.pools, c, &gone.value);
                offload::removed(self.offload.as_deref(), c, &gone);
                removed += 1;
            }
        }
        (removed, self.next_slot(end))
    }

    /// Does one loop's share of `job` ([`Budget::PER_LOOP`]); true when
    /// it is answered. The worker calls it through its
    /// [`crate::mailbox::Inbox`] after each burst.
    pub fn serve(&mut self, t: &Tables, c: &WorkerCounters, job: &mut FlowJob, now: u64) -> bool {
        job.worker = self.worker_index();
        job.polls += 1;
        let Some(cursor) = job.cursor else {
            return true;
        };
        job.cursor = match job.op {
            FlowOp::Show => {
                let budget = Budget::PER_LOOP;
                self.flows_matching(&job.filter, cursor, budget, now, &mut job.rows)
            }
            FlowOp::Flush => {
                let (removed, next) =
                    self.flush_matching(t, c, &job.filter, cursor, Budget::PER_LOOP);
                job.removed += removed;
                next
            }
        };
        let full = job.op == FlowOp::Show && job.rows.len() >= job.rows.capacity();
        job.cursor.is_none() || full
    }

    /// Where a walk of `budget` slots from `cursor` stops.
    fn walk_end(&self, cursor: u32, budget: usize) -> u32 {
        let cap = self.flows.capacity() as u32;
        let budget = u32::try_from(budget).unwrap_or(u32::MAX);
        cursor.saturating_add(budget).min(cap)
    }

    fn next_slot(&self, slot: u32) -> Option<u32> {
        (slot < self.flows.capacity() as u32).then_some(slot)
    }
}

/// What a [`FlowJob`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOp {
    /// Rows of the flows meant, as many as `rows` has room for.
    Show,
    /// End the flows meant, the whole table.
    Flush,
}

/// A question to one worker about its flows, in the box the control plane
/// allocated: the worker fills it in over as many loops as it takes.
#[derive(Debug)]
pub struct FlowJob {
    pub op: FlowOp,
    pub filter: Filter,
    /// The slot the walk goes on from; `None` once past the table's end.
    pub cursor: Option<u32>,
    /// Show: the rows, never more than the capacity it was posted with.
    pub rows: Vec<FlowRow>,
    /// Flush: flows ended.
    pub removed: u64,
    /// The worker that answered.
    pub worker: u16,
    /// Loops it took (each does at most [`Budget::PER_LOOP`]).
    pub polls: u32,
}

impl FlowJob {
    /// Show up to `limit` rows of the flows `filter` means, from `slot`.
    pub fn show(filter: Filter, slot: u32, limit: usize) -> FlowJob {
        FlowJob {
            op: FlowOp::Show,
            filter,
            cursor: Some(slot),
            rows: Vec::with_capacity(limit),
            removed: 0,
            worker: 0,
            polls: 0,
        }
    }

    /// End every flow `filter` means.
    pub fn flush(filter: Filter) -> FlowJob {
        FlowJob {
            op: FlowOp::Flush,
            ..FlowJob::show(filter, 0, 0)
        }
    }
}

/// Where a `flow show` goes on: a worker and a slot in its table. Written
/// `WORKER.SLOT` (the API's `cursor` string).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub worker: u16,
    pub slot: u32,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.worker, self.slot)
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Cursor, String> {
        let bad = || format!("cursor {s:?}: expected WORKER.SLOT, as a flow.show gave it");
        let (worker, slot) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            worker: worker.parse().map_err(|_| bad())?,
            slot: slot.parse().map_err(|_| bad())?,
        })
    }
}

/// One page of `flow show`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub rows: Vec<FlowRow>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<Cursor>,
}

/// A worker that did not answer in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAnswering {
    pub worker: u16,
}

impl fmt::Display for NotAnswering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} is not answering", self.worker)
    }
}

impl std::error::Error for NotAnswering {}

/// The control plane's `flow show`: up to `limit` rows of the flows
/// `filter` means, from `from` on, asking the workers (`mailboxes`, by
/// worker index) in turn, each waiting at most `timeout`. A limit of 0
/// is taken as 1: a page always moves the cursor on.
pub fn show_flows(
    mailboxes: &[Arc<Mailbox<FlowJob>>],
    filter: Filter,
    limit: usize,
    from: Cursor,
    timeout: Duration,
) -> Result<Page, NotAnswering> {
    let limit = limit.max(1);
    let mut page = Page::default();
    for (w, mailbox) in mailboxes.iter().enumerate().skip(usize::from(from.worker)) {
        let worker = w as u16;
        let slot = if worker == from.worker { from.slot } else { 0 };
        let room = limit - page.rows.len();
        if room == 0 {
            page.next = Some(Cursor { worker, slot });
            break;
        }
        let job = Box::new(FlowJob::show(filter, slot, room));
        let answer = ask(mailbox, job, worker, timeout)?;
        page.rows.extend_from_slice(&answer.rows);
        if let Some(slot) = answer.cursor {
            page.next = Some(Cursor { worker, slot });
            break;
        }
    }
    Ok(page)
}

/// What a `flow flush` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Flows ended, on every worker that answered.
    pub removed: u64,
    /// Workers that did not answer in time (their flows may end later,
    /// when they get to it: the job stays with them).
    pub not_answering: Vec<u16>,
}

/// The control plane's `flow flush`: every worker ends the flows `filter`
/// means; one that does not answer within `timeout` is reported and the
/// others still asked.
pub fn flush_flows(
    mailboxes: &[Arc<Mailbox<FlowJob>>],
    filter: Filter,
    timeout: Duration,
) -> Flushed {
    let mut flushed = Flushed::default();
    for (w, mailbox) in mailboxes.iter().enumerate() {
        let worker = w as u16;
        match ask(mailbox, Box::new(FlowJob::flush(filter)), worker, timeout) {
            Ok(answer) => flushed.removed += answer.removed,
            Err(NotAnswering { worker }) => flushed.not_answering.push(worker),
        }
    }
    flushed
}

fn ask(
    mailbox: &Mailbox<FlowJob>,
    job: Box<FlowJob>,
    worker: u16,
    timeout: Duration,
) -> Result<Box<FlowJob>, NotAnswering> {
    mailbox.ask(job, timeout).map_err(|e| match e {
        AskError::Busy(_) | AskError::NotAnswering => NotAnswering { worker },
    })
}

/// A worker's new share of a pool, posted by the control plane after a
/// pool was added, changed or removed at runtime; the worker swaps it in
/// and the box comes back holding the share it replaced, which the
/// control plane frees.
#[derive(Debug, Default)]
pub struct ShareJob {
    /// The pool's slot (its tenant's).
    pub slot: u32,
    /// In: the new share (`None` to remove it). Out: the one replaced.
    pub cut: Option<crate::snat::ShareCut>,
    /// Whether the worker had room for the slot.
    pub installed: bool,
}

impl Pipeline {
    /// Serves a [`ShareJob`] at once: a swap, nothing allocated or freed.
    pub fn serve_share(&mut self, job: &mut ShareJob) -> bool {
        job.installed = self.install_share(job.slot, &mut job.cut);
        true
    }
}

/// The control plane's side: every worker gets its share of `pool` (or
/// none, when the pool was removed) for slot `slot`, cut for it, told
/// apart from the share before by `serial`. Workers that do not answer
/// within `timeout` are returned: they go on with their old share, whose
/// ports they still give back, and hand out none of the new pool's.
pub fn install_shares(
    mailboxes: &[Arc<Mailbox<ShareJob>>],
    slot: u32,
    pool: Option<&crate::snat::Pool>,
    serial: u32,
    timeout: Duration,
) -> Vec<u16> {
    let workers = mailboxes.len() as u16;
    let mut not_answering = Vec::new();
    for (w, mailbox) in mailboxes.iter().enumerate() {
        let me = w as u16;
        let job = Box::new(ShareJob {
            slot,
            cut: pool.map(|p| crate::snat::Snat::cut(p, me, workers, serial)),
            installed: false,
        });
        match mailbox.ask(job, timeout) {
            // The replaced share is freed here, on the control plane.
            Ok(done) if done.installed => drop(done),
            _ => not_answering.push(me),
        }
    }
    not_answering
}
