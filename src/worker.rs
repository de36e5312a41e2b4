//! The worker lcore: a run-to-completion burst loop, shaped like DPDK's
//! l3fwd. Receive a burst, run every frame through the pipeline, buffer the
//! survivors per output port and send a port's buffer when it is full,
//! when a loop found every queue drained (no frame waits for company that
//! is not coming), or at the latest when the TSC deadline passes.
//!
//! Two rings join a worker to the control plane: frames the pipeline punts
//! (ARP to learn from, frames waiting for a neighbour) go out on one, and
//! frames the control plane wants sent (ARP requests, released frames)
//! come back on the other, to leave through this worker's TX queues at
//! the next drain: the control plane needs no queues of its own.
//!
//! A mailbox carries the control plane's questions about the worker's own
//! flows (`flow show`, `flow flush`): the worker answers them itself, a
//! bounded piece per loop, so nothing else ever touches its table.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use arrayvec::ArrayVec;
use dataplane::counters::MAX_PORTS;
use dataplane::flow::Prefetch;
use dataplane::fragments::park::Parked;
use dataplane::mailbox::Inbox;
use dataplane::pipeline::admin::{FlowJob, ShareJob};
use dataplane::pipeline::{Hint, Pipeline};
use dataplane::snapshot::Reader;
use dataplane::tables::Tables;
use dataplane::{DropReason, L2Forward, Verdict, WorkerCounters};
use rte::{rdtsc, Burst, Mbuf, Ring, RxQueue, TxQueue, BURST};

use crate::frame::MbufFrame;

/// How long a frame may wait in a TX buffer, in microseconds (l3fwd's
/// BURST_TX_DRAIN_US).
pub const TX_DRAIN_US: u64 = 100;

/// Everything one worker owns. Built on the main lcore, then moved to the
/// worker's lcore; nothing in it is shared but the counters (read-only for
/// everyone else), the stop flag and the rings, which the main lcore owns
/// and lends for the worker's run.
pub struct Worker<'a> {
    /// Its place in the config's `[[worker]]` list.
    pub index: usize,
    pub rx: Vec<RxQueue<'a>>,
    /// This worker's TX queue on each port, by port id.
    pub tx: [Option<TxQueue<'a>>; MAX_PORTS],
    pub stage: Stage,
    pub counters: Arc<WorkerCounters>,
    /// Frames for the control plane.
    pub punt: &'a Ring<'a>,
    /// Frames from the control plane to send, the output port in the
    /// mbuf's port field.
    pub inject: &'a Ring<'a>,
    /// Rings to the other workers, by worker index (`None` for this one):
    /// frames of connections they own.
    pub handoff_out: Vec<Option<&'a Ring<'a>>>,
    /// Rings from the other workers.
    pub handoff_in: Vec<&'a Ring<'a>>,
    pub stop: Arc<AtomicBool>,
    /// Questions about this worker's flows, answered between bursts.
    pub mailbox: Inbox<FlowJob>,
    /// New shares of source NAT pools changed at runtime.
    pub shares: Inbox<ShareJob>,
    /// [`TX_DRAIN_US`] in TSC ticks.
    pub drain_ticks: u64,
    /// A failure to simulate, for tests only ([`Fault::from_env`]).
    pub fault: Option<Fault>,
    /// Whether NIC marks are read (partial offload on some port): a
    /// marked frame skips the flow lookup (docs/offload.md).
    pub marks: bool,
}

/// A worker failure a test asks for, to see the gateway fail stop. Only
/// the environment variable [`Fault::ENV`] sets it (never the config, never
/// a packet); tgw warns at start when it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The worker panics at its first TX drain.
    Panic,
    /// The worker stops going round its loop at its first TX drain, and
    /// never returns (not even when asked to stop).
    Stall,
}

impl Fault {
    /// `TGW_TEST_FAULT=panic:INDEX` or `stall:INDEX`: test-only.
    pub const ENV: &'static str = "TGW_TEST_FAULT";

    /// The fault the environment asks of worker `index`, if any.
    pub fn from_env(index: usize) -> Option<Fault> {
        let value = std::env::var(Self::ENV).ok()?;
        let (kind, worker) = value.split_once(':')?;
        if worker.parse::<usize>().ok()? != index {
            return None;
        }
        match kind {
            "panic" => Some(Fault::Panic),
            "stall" => Some(Fault::Stall),
            _ => None,
        }
    }

    /// Brings the fault about.
    #[cold]
    fn strike(self, index: usize) {
        match self {
            Fault::Panic => panic!("worker {index} panics as {} asked", Self::ENV),
            Fault::Stall => loop {
                std::hint::spin_loop();
            },
        }
    }
}

/// What a worker runs over each frame.
pub enum Stage {
    /// The gateway: the packet path over the published tables.
    Gateway {
        pipeline: Box<Pipeline>,
        tables: Reader<Tables>,
    },
    /// Bring-up and I/O baseline: port to port with the MAC rewrite.
    L2fwd(Box<L2Forward>),
}

/// Frames waiting to be sent, one buffer per port.
struct TxBuffers([Burst; MAX_PORTS]);

/// Later fragments waiting for their first, in the spots the pipeline
/// chose (`dataplane::fragments::park`).
type Parking = Parked<MbufFrame<Mbuf>>;

/// A received frame as the stages read it with NIC marks: its bytes, the
/// driver's checksum verdict and its flow mark.
#[inline]
fn marked(m: &Mbuf) -> (&[u8], dataplane::Checked, Option<u32>) {
    (&m[..], crate::frame::checked(m), m.flow_mark())
}

/// Where a burst's frames go besides the TX buffers, emptied after each
/// burst and after each drain.
struct Aside {
    drops: AsideBuf,
    punts: AsideBuf,
    /// By owning worker.
    handoffs: Vec<AsideBuf>,
}

/// The most frames that can be set aside between two emptyings: a whole
/// burst, and then every parked fragment (all of them can be released, or
/// expire, in the run after it; one that parks again stays in). One
/// burst's room was once all there was: a burst's drops and the parked
/// fragments it released overflowed it, as did more than 32 parked
/// fragments expiring in one drain, and the worker panicked and stopped
/// the gateway (tests/golden.rs,
/// `fragments_released_into_drops_beyond_a_burst_are_counted`).
const ASIDE: usize = BURST + dataplane::fragments::park::SPOTS;

/// One of [`Aside`]'s buffers.
type AsideBuf = ArrayVec<Mbuf, ASIDE>;

impl Worker<'_> {
    /// Polls until the stop flag is raised, then sends what is buffered and
    /// returns. The flag is read once per loop, between bursts, so a burst
    /// in progress always completes. Each round of the loop counts in
    /// `loops`, the heartbeat the control plane's watchdog reads.
    pub fn run(mut self) {
        let mut txbuf = TxBuffers(std::array::from_fn(|_| Burst::new()));
        let mut burst = Burst::new();
        let mut aside = Aside {
            drops: AsideBuf::new(),
            punts: AsideBuf::new(),
            handoffs: (0..self.handoff_out.len())
                .map(|_| AsideBuf::new())
                .collect(),
        };
        let mut parked = Parking::default();
        if let Stage::Gateway { pipeline, .. } = &self.stage {
            let capacity = pipeline.flow_capacity() as u64;
            self.counters.flows_capacity.set(capacity);
        }
        let mut last_drain = rdtsc();
        let started = last_drain;
        while !self.stop.load(Relaxed) {
            self.counters.loops.inc();
            // Whether a queue gave a whole burst: more is waiting, and the
            // TX buffers may fill before the drain deadline.
            let mut saturated = false;
            for q in 0..self.rx.len() {
                let start = rdtsc();
                let n = self.rx[q].rx_burst(&mut burst);
                if n == 0 {
                    continue;
                }
                saturated |= n == BURST;
                let port = self.rx[q].port().0;
                let received = rdtsc();
                let tx_cycles = self.process(
                    Some(port),
                    &mut burst,
                    &mut txbuf,
                    &mut aside,
                    &mut parked,
                    received,
                );
                let processed = rdtsc();
                self.set_aside(&mut aside);
                self.counters.bursts.inc();
                self.counters
                    .process_cycles
                    .add((processed - received).saturating_sub(tx_cycles));
                self.counters.busy_cycles.add(rdtsc() - start);
            }
            // Frames other workers received for connections this one owns:
            // already counted as received there.
            for r in 0..self.handoff_in.len() {
                let n = self.handoff_in[r].dequeue_burst(&mut burst);
                if n == 0 {
                    continue;
                }
                saturated |= n == BURST;
                let start = rdtsc();
                self.process(None, &mut burst, &mut txbuf, &mut aside, &mut parked, start);
                self.set_aside(&mut aside);
                self.counters.busy_cycles.add(rdtsc() - start);
            }
            // Every queue was drained: send what this loop buffered now
            // rather than at the drain deadline, as testpmd sends each
            // burst. Under load the bursts are whole and frames still
            // leave 32 at a time; below it a frame no longer waits up to
            // TX_DRAIN_US for company (p50 latency 25-46 us against
            // testpmd's 1-2 at 80% of the no-drop rate, docs/perf.md).
            if !saturated {
                let start = rdtsc();
                if self.flush_all(&mut txbuf) {
                    self.counters.busy_cycles.add(rdtsc() - start);
                }
            }
            self.answer_mail();
            let now = rdtsc();
            if now - last_drain >= self.drain_ticks {
                if let Some(fault) = self.fault {
                    fault.strike(self.index);
                }
                if let Stage::Gateway { pipeline, tables } = &mut self.stage {
                    pipeline.sweep(tables.get(), &self.counters, now);
                    // The offload manager's refreshes and releases, a
                    // bounded number (nothing without offload).
                    pipeline.apply_feedback(&self.counters, now);
                    // Parked fragments expire even when nothing arrives.
                    let (tx, counters) = (&mut self.tx, &*self.counters);
                    // Not processing: the cycles of what this sends go uncounted.
                    let mut tx_cycles = 0;
                    parked.run(pipeline, tables.get(), counters, now, |f, v| {
                        let (buf, aside) = (&mut txbuf, &mut aside);
                        send_or_set_aside(tx, counters, buf, aside, f.mbuf, v, &mut tx_cycles);
                    });
                    self.set_aside(&mut aside);
                }
                self.take_injected(&mut txbuf, &mut burst);
                self.flush_all(&mut txbuf);
                self.counters.cycles.set(now - started);
                last_drain = now;
            }
        }
        self.flush_all(&mut txbuf);
    }

    /// Serves the control plane's question, if one is posted: one acquire
    /// load when none is, else a bounded piece of it (4096 flow slots, 256
    /// flows: `dataplane::pipeline::admin::Budget::PER_LOOP`), so a flush
    /// of a million flows is spread over some 4,000 loops with bursts in
    /// between.
    #[inline]
    fn answer_mail(&mut self) {
        let (stage, counters) = (&mut self.stage, &*self.counters);
        self.mailbox.poll(|job| match stage {
            Stage::Gateway { pipeline, tables } => {
                pipeline.serve(tables.get(), counters, job, rdtsc())
            }
            // No flows to show or end.
            Stage::L2fwd(_) => true,
        });
        self.shares.poll(|job| match stage {
            Stage::Gateway { pipeline, .. } => pipeline.serve_share(job),
            Stage::L2fwd(_) => true,
        });
    }

    /// Frees the burst's drops, and hands its punts and handoffs on; what
    /// a full ring refuses is dropped and counted.
    fn set_aside(&mut self, aside: &mut Aside) {
        Mbuf::free_bulk(&mut aside.drops);
        if !aside.punts.is_empty() {
            self.punt.enqueue_burst(&mut aside.punts);
            self.counters
                .count_drop(DropReason::PuntFull, aside.punts.len() as u64);
            Mbuf::free_bulk(&mut aside.punts);
        }
        for (out, ring) in aside.handoffs.iter_mut().zip(&self.handoff_out) {
            if out.is_empty() {
                continue;
            }
            let sent = ring.map_or(0, |r| r.enqueue_burst(out));
            self.counters.handed_off.add(sent as u64);
            self.counters
                .count_drop(DropReason::HandoffFull, out.len() as u64);
            Mbuf::free_bulk(out);
        }
    }

    /// Runs the pipeline over one burst, emptying it into the TX buffers
    /// and `aside`. `port` is the port the burst was received on, `None`
    /// for frames handed over by another worker (each keeps its own port
    /// in the mbuf). Later fragments the pipeline parks go to `parked`, and
    /// those whose first went through in this burst run again after it.
    /// Returns the cycles spent sending buffers that filled up on the way,
    /// so that I/O is not counted as processing.
    #[inline]
    fn process(
        &mut self,
        port: Option<u16>,
        burst: &mut Burst,
        txbuf: &mut TxBuffers,
        aside: &mut Aside,
        parked: &mut Parking,
        now: u64,
    ) -> u64 {
        let mut tx_cycles = 0;
        let counters = &*self.counters;
        if let Some(port) = port {
            let pc = counters.port(port);
            pc.rx_packets.add(burst.len() as u64);
            pc.rx_bytes.add(burst.iter().map(|m| m.len() as u64).sum());
        }
        // The snapshot is taken once per burst: between bursts is the
        // worker's quiescent point for table updates.
        let mut stage = match &mut self.stage {
            Stage::Gateway { pipeline, tables } => StageRef::Gateway(pipeline, tables.get()),
            Stage::L2fwd(fwd) => StageRef::L2fwd(fwd),
        };
        // Look the burst's flows up together, so that their cache misses
        // overlap (frames handed over by other workers go unstaged): the
        // public side's or the underlay's, by the port's role.
        const _: () = assert!(
            BURST <= dataplane::flow::BULK_MAX,
            "a burst is staged whole"
        );
        let mut hints = [Hint::default(); BURST];
        if let (StageRef::Gateway(pipeline, tables), Some(port)) = (&mut stage, port) {
            if self.marks {
                let frames = burst.iter().map(marked);
                pipeline.stage_public(tables, port, frames, &RtePrefetch, now, &mut hints);
                let frames = burst.iter().map(marked);
                pipeline.stage_underlay(tables, port, frames, &RtePrefetch, now, &mut hints);
            } else {
                let frames = burst.iter().map(|m| &m[..]);
                pipeline.stage_public(tables, port, frames, &RtePrefetch, now, &mut hints);
                let frames = burst.iter().map(|m| (&m[..], crate::frame::checked(m)));
                pipeline.stage_underlay(tables, port, frames, &RtePrefetch, now, &mut hints);
            }
        }
        for (mut mbuf, hint) in burst.drain(..).zip(&hints) {
            let verdict = if mbuf.segments() != 1 {
                Verdict::Drop(DropReason::MultiSegment)
            } else if let Some(writable) = mbuf.writable() {
                let in_port = port.unwrap_or_else(|| writable.port());
                let frame = &mut MbufFrame {
                    mbuf: writable,
                    in_port,
                };
                match &mut stage {
                    StageRef::Gateway(pipeline, tables) => {
                        pipeline.process_staged(tables, counters, frame, now, hint)
                    }
                    StageRef::L2fwd(fwd) => fwd.process(frame),
                }
            } else {
                // No driver tgw runs on hands these out; rewriting one
                // would change another holder's bytes.
                Verdict::Drop(DropReason::SharedBuffer)
            };
            let tx = &mut self.tx;
            // Most frames are forwarded: tested first, by itself, a forward
            // is one test, where the park test and `send_or_set_aside`'s
            // match (a jump table) were two steps (callgrind: 7
            // instructions a frame, docs/perf.md session 19).
            let mbuf = match verdict {
                Verdict::Forward(out) => {
                    match buffer(tx, counters, txbuf, out, mbuf, &mut tx_cycles) {
                        Ok(()) => continue,
                        Err(mbuf) => mbuf,
                    }
                }
                _ => mbuf,
            };
            if let Verdict::Park(spot) = verdict {
                if let Err(f) = parked.put(spot, MbufFrame::owned(mbuf)) {
                    counters.count_drop(DropReason::FragmentParkFull, 1);
                    aside.drops.push(f.mbuf);
                }
                continue;
            }
            send_or_set_aside(tx, counters, txbuf, aside, mbuf, verdict, &mut tx_cycles);
        }
        if let StageRef::Gateway(pipeline, tables) = &mut stage {
            let tx = &mut self.tx;
            parked.run(pipeline, tables, counters, now, |f, v| {
                send_or_set_aside(tx, counters, txbuf, aside, f.mbuf, v, &mut tx_cycles);
            });
        }
        tx_cycles
    }

    /// Moves what the control plane asked to send into the TX buffers.
    fn take_injected(&mut self, txbuf: &mut TxBuffers, scratch: &mut Burst) {
        if self.inject.dequeue_burst(scratch) == 0 {
            return;
        }
        for mut mbuf in scratch.drain(..) {
            // The resolver numbered it before frames this worker sent
            // since: a GRE sequence number is taken as the frame leaves.
            if let (Stage::Gateway { tables, .. }, Some(data)) = (&mut self.stage, mbuf.data_mut())
            {
                tables.get().resequence(data);
            }
            let out = mbuf.port();
            let Some(buf) = txbuf.0.get_mut(usize::from(out)) else {
                self.counters.count_drop(DropReason::NoEgress, 1);
                continue;
            };
            buf.push(mbuf);
            if buf.is_full() {
                flush(&mut self.tx, &self.counters, out, txbuf);
            }
        }
    }

    /// Sends every port's buffer; whether any held a frame.
    fn flush_all(&mut self, txbuf: &mut TxBuffers) -> bool {
        let mut any = false;
        for out in 0..MAX_PORTS as u16 {
            any |= flush(&mut self.tx, &self.counters, out, txbuf);
        }
        any
    }
}

/// DPDK's prefetch instruction, for the flow table's staged lookups.
struct RtePrefetch;

impl Prefetch for RtePrefetch {
    const INSTRUCTION: bool = true;

    #[inline(always)]
    fn prefetch<T>(&self, r: &T) {
        rte::prefetch(r);
    }
}

/// The per-burst view of a [`Stage`]: the gateway with this burst's
/// snapshot.
enum StageRef<'a> {
    Gateway(&'a mut Pipeline, &'a Tables),
    L2fwd(&'a L2Forward),
}

/// Puts a processed frame where its verdict sends it: a TX buffer (sent
/// when full: the cycles that took are added to `tx_cycles`), the drops,
/// the punts or a handoff. A frame to park was parked by the caller.
/// Always inlined: the compiler called it, once a frame, and the call (six
/// arguments, the verdict packed and unpacked again) cost more than the
/// forward's push. The cycles are added here, where a buffer is sent,
/// rather than returned: a returned 0 was added to the caller's sum, kept
/// on the stack, for every frame.
#[inline(always)]
fn send_or_set_aside(
    tx: &mut [Option<TxQueue>; MAX_PORTS],
    counters: &WorkerCounters,
    txbuf: &mut TxBuffers,
    aside: &mut Aside,
    mbuf: Mbuf,
    verdict: Verdict,
    tx_cycles: &mut u64,
) {
    match verdict {
        Verdict::Forward(out) => {
            if let Err(mbuf) = buffer(tx, counters, txbuf, out, mbuf, tx_cycles) {
                counters.count_drop(DropReason::NoEgress, 1);
                aside.drops.push(mbuf);
            }
        }
        Verdict::Drop(reason) => {
            counters.count_drop(reason, 1);
            aside.drops.push(mbuf);
        }
        Verdict::Punt => aside.punts.push(mbuf),
        Verdict::Handoff(owner) => match aside.handoffs.get_mut(usize::from(owner)) {
            Some(out) => out.push(mbuf),
            None => {
                counters.count_drop(DropReason::NoEgress, 1);
                aside.drops.push(mbuf);
            }
        },
        Verdict::Park(_) => {
            counters.count_drop(DropReason::FragmentParkFull, 1);
            aside.drops.push(mbuf);
        }
    }
}

/// Puts a frame to send out of port `out` in the port's TX buffer, and
/// sends the buffer when that fills it (the cycles that took are added to
/// `tx_cycles`). The frame back for a port that has no buffer.
#[inline(always)]
fn buffer(
    tx: &mut [Option<TxQueue>; MAX_PORTS],
    counters: &WorkerCounters,
    txbuf: &mut TxBuffers,
    out: u16,
    mbuf: Mbuf,
    tx_cycles: &mut u64,
) -> Result<(), Mbuf> {
    let Some(buf) = txbuf.0.get_mut(usize::from(out)) else {
        return Err(mbuf);
    };
    buf.push(mbuf);
    if buf.is_full() {
        let start = rdtsc();
        flush(tx, counters, out, txbuf);
        *tx_cycles += rdtsc() - start;
    }
    Ok(())
}

/// Sends port `out`'s buffer. What the queue does not take is dropped and
/// counted: holding it would only delay the next burst behind a full ring.
fn flush(
    tx: &mut [Option<TxQueue<'_>>; MAX_PORTS],
    counters: &WorkerCounters,
    out: u16,
    txbuf: &mut TxBuffers,
) -> bool {
    let buf = &mut txbuf.0[usize::from(out)];
    if buf.is_empty() {
        return false;
    }
    let Some(txq) = tx.get_mut(usize::from(out)).and_then(Option::as_mut) else {
        counters.count_drop(DropReason::NoEgress, buf.len() as u64);
        Mbuf::free_bulk(buf);
        return true;
    };
    let bytes: u64 = buf.iter().map(|m| m.len() as u64).sum();
    let sent = txq.tx_burst(buf) as u64;
    let unsent_bytes: u64 = buf.iter().map(|m| m.len() as u64).sum();
    let pc = counters.port(out);
    pc.tx_packets.add(sent);
    pc.tx_bytes.add(bytes - unsent_bytes);
    if !buf.is_empty() {
        counters.count_drop(DropReason::TxFull, buf.len() as u64);
        Mbuf::free_bulk(buf);
    }
    true
}
