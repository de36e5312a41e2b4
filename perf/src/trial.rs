//! The generator of `tgw-perf ndr`: one process per device under test
//! that stays up across the search's trials, each a fixed rate of frames
//! for a fixed time, every frame stamped with a sequence number and the
//! TSC at which it was sent, and every frame back read for both.
//!
//! The stamp is the frame's last 16 bytes: the UDP payload of every
//! profile, which tgw leaves intact (encap and nat put headers in front of
//! it, decap takes the outer ones away) and testpmd's macswap too. A frame
//! back counts for a trial if its stamp is ours and its TSC falls within
//! the trial: frames of an earlier trial arriving late are not counted
//! (the drain after each trial makes that rare). The same host and the
//! same TSC send and receive, so a frame's one-way latency is the
//! difference of two TSC reads, from its burst's send to its burst's
//! receive.
//!
//! Offered load is what the generator tried to send: a frame the device's
//! RX ring (the memif ring) would not take is lost, as a frame a NIC
//! misses for want of a descriptor is.
//!
//! Protocol over stdio, one JSON line each: after the links are up and the
//! warm-up has run, `{"ready":true,"max_pps":…}` (the rate it sent
//! unpaced, the device taking frames as fast as it could); then for each
//! `{"rate":…,"seconds":…}` read on stdin, the trial's result; an empty
//! line ends it (after the orchestrator has stopped the device: the memif
//! PMD must not lose its peer while polling).

use std::io::BufRead;
use std::time::{Duration, Instant};

use rte::{rdtsc, tsc_hz, Burst, Mbuf, RxQueue, TxQueue};
use serde_json::json;

use crate::gen;
use crate::histogram::Histogram;
use crate::profile::{Kind, Profile};

/// Marks a stamp as ours.
const MAGIC: [u8; 4] = *b"tgwL";
/// The stamp: magic, sequence number (u32), send TSC (u64), big-endian.
pub const STAMP: usize = 16;

/// IMIX as tgw-perf sends it: the "simple IMIX" of 7 frames of 64 bytes,
/// 4 of 570 and 1 of 1518, interleaved in this order of 12.
pub const IMIX: [usize; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

/// A frame size as the options name it: bytes on the wire with the FCS,
/// or IMIX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Bytes(usize),
    Imix,
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Size::Imix);
        }
        match s.parse::<usize>() {
            Ok(n) if (64..=1518).contains(&n) => Ok(Size::Bytes(n)),
            _ => Err(format!("frame size {s:?}: give 64..=1518 or imix")),
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Bytes(n) => write!(f, "{n}"),
            Size::Imix => f.write_str("imix"),
        }
    }
}

impl Size {
    /// The sizes the generator sends in turn.
    pub fn cycle(self) -> Vec<usize> {
        match self {
            Size::Bytes(n) => vec![n],
            Size::Imix => IMIX.to_vec(),
        }
    }

    /// The mean size on the wire, FCS included.
    pub fn mean(self) -> f64 {
        let c = self.cycle();
        c.iter().sum::<usize>() as f64 / c.len() as f64
    }
}

pub struct TrialGenArgs {
    pub sockets: [String; 2],
    pub file_prefix: String,
    pub lcore: u32,
    pub hugepages: bool,
    pub profile: Profile,
    pub size: Size,
    /// Unpaced traffic before `ready`, after every flow was sent twice
    /// (30 s at most): its rate is `max_pps`.
    pub warmup: Duration,
}

/// What one trial measured.
#[derive(Default)]
pub struct TrialResult {
    /// The rate asked and the seconds.
    pub rate: f64,
    pub seconds: f64,
    /// Frames the generator tried to send, and of those, the ones the
    /// device's RX ring refused.
    pub attempted: u64,
    pub refused: u64,
    /// Frames back stamped within the trial.
    pub received: u64,
    /// Frames back that arrived out of order (a sequence number below the
    /// one before).
    pub reordered: u64,
    /// Frames back that are not stamped by this trial.
    pub foreign: u64,
    pub latency: Histogram,
}

impl TrialResult {
    pub fn lost(&self) -> u64 {
        self.attempted.saturating_sub(self.received)
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "rate": self.rate, "seconds": self.seconds, "attempted": self.attempted,
            "refused": self.refused, "received": self.received, "reordered": self.reordered,
            "foreign": self.foreign, "latency": self.latency.json(),
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Option<TrialResult> {
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        Some(TrialResult {
            rate: v.get("rate")?.as_f64()?,
            seconds: v.get("seconds")?.as_f64()?,
            attempted: n("attempted")?,
            refused: n("refused")?,
            received: n("received")?,
            reordered: n("reordered")?,
            foreign: n("foreign")?,
            latency: Histogram::from_json(v.get("latency")?)?,
        })
    }
}

/// Writes the stamp into the frame's last [`STAMP`] bytes.
pub fn stamp(frame: &mut [u8], seq: u32, tsc: u64) {
    let Some(at) = frame.len().checked_sub(STAMP) else {
        return;
    };
    frame[at..at + 4].copy_from_slice(&MAGIC);
    frame[at + 4..at + 8].copy_from_slice(&seq.to_be_bytes());
    frame[at + 8..at + 16].copy_from_slice(&tsc.to_be_bytes());
}

/// The sequence number and send TSC of a stamped frame.
pub fn read_stamp(frame: &[u8]) -> Option<(u32, u64)> {
    let at = frame.len().checked_sub(STAMP)?;
    if frame[at..at + 4] != MAGIC {
        return None;
    }
    let seq = u32::from_be_bytes(frame[at + 4..at + 8].try_into().ok()?);
    let tsc = u64::from_be_bytes(frame[at + 8..at + 16].try_into().ok()?);
    Some((seq, tsc))
}

/// Where the UDP checksum of the profile's frames is (the inner one for
/// decap): cleared to 0, "none" (RFC 768), since the stamp changes the
/// payload under it.
fn udp_checksum_at(kind: Kind) -> usize {
    match kind {
        // Outer Ethernet, IPv4, GRE with a key, inner Ethernet, IPv4.
        Kind::Decap => 14 + 20 + 8 + 14 + 20 + 6,
        _ => 14 + 20 + 6,
    }
}

/// The frames of `profile` at each size of the cycle, checksums cleared.
pub fn templates(profile: Profile, size: Size) -> Vec<Vec<Vec<u8>>> {
    size.cycle()
        .into_iter()
        .map(|bytes| {
            let mut frames = Profile {
                size: bytes,
                ..profile
            }
            .frames();
            let at = udp_checksum_at(profile.kind);
            for f in &mut frames {
                f[at..at + 2].fill(0);
            }
            frames
        })
        .collect()
}

/// The sender's state across trials: which frame comes next.
struct Sender<'a> {
    profile: Profile,
    templates: &'a [Vec<Vec<u8>>],
    flows: Option<u64>,
    /// Frames sent so far (the sequence number, and the place in the
    /// size cycle).
    seq: u64,
    /// The next flow.
    flow: u64,
}

impl Sender<'_> {
    /// Fills `burst` with the next frames, stamped with `tsc`.
    fn fill(&mut self, burst: &mut Burst, tsc: u64) {
        for m in burst.iter_mut() {
            let set = &self.templates[(self.seq % self.templates.len() as u64) as usize];
            let frame = &set[(self.flow % set.len() as u64) as usize];
            if m.set_len(frame.len()) {
                if let Some(data) = m.data_mut() {
                    data.copy_from_slice(frame);
                    self.profile.stamp(data, self.flow);
                    stamp(data, self.seq as u32, tsc);
                }
            }
            self.seq += 1;
            self.flow = if Some(self.flow + 1) == self.flows {
                0
            } else {
                self.flow + 1
            };
        }
    }
}

impl Sender<'_> {
    /// Takes back the last `n` frames filled (not sent).
    fn rewind(&mut self, n: u64) {
        self.seq -= n;
        self.flow = match self.flows {
            Some(flows) => (self.flow + flows - n % flows) % flows,
            None => self.flow - n,
        };
    }
}

/// Runs the trial generator; returns an error text for the orchestrator.
pub fn run(args: &TrialGenArgs) -> Result<(), String> {
    let eal_args = gen::eal_args(args.lcore, &args.file_prefix, args.hugepages, &args.sockets);
    let eal = rte::Eal::init(&eal_args).map_err(|e| format!("generator EAL: {e}"))?;
    let pool = rte::Mempool::new(&eal, "trial", 16383, 256, 2176, -1).map_err(|e| e.to_string())?;
    let (ports, mut queues) = gen::memif_ports(&eal, &pool)?;
    let (Some(mut rx_b), _) = std::mem::take(&mut queues[1]) else {
        return Err("no RX queue on B".into());
    };
    let (Some(mut rx_a), Some(mut tx_a)) = std::mem::take(&mut queues[0]) else {
        return Err("no queues on A".into());
    };
    let templates = templates(args.profile, args.size);
    let mut sender = Sender {
        profile: args.profile,
        templates: &templates,
        flows: args.profile.flow_count(),
        seq: 0,
        flow: 0,
    };
    let mut io = Io {
        pool: &pool,
        tx: &mut tx_a,
        rx: &mut rx_b,
        back: &mut rx_a,
    };
    let max_pps = warm_up(&mut io, &mut sender, args.warmup);
    println!("{}", json!({"ready": true, "max_pps": max_pps}));

    let mut result = TrialResult::default();
    // The histogram `TrialResult::default` makes is the only allocation
    // per trial; none is made per frame.
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            break;
        }
        let ask: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("trial request {line:?}: {e}"))?;
        let (Some(rate), Some(seconds)) = (ask["rate"].as_f64(), ask["seconds"].as_f64()) else {
            return Err(format!("trial request {line:?}: no rate or seconds"));
        };
        // One histogram for the whole process: emptied, not reallocated.
        let mut latency = std::mem::take(&mut result.latency);
        latency.clear();
        result = TrialResult {
            rate,
            seconds,
            latency,
            ..TrialResult::default()
        };
        trial(&mut io, &mut sender, &mut result);
        println!("{}", result.json());
    }
    drop(ports);
    Ok(())
}

struct Io<'a, 'p> {
    pool: &'p rte::Mempool<'p>,
    tx: &'a mut TxQueue<'p>,
    rx: &'a mut RxQueue<'p>,
    /// The sending port's RX: frames a device sends back that way are
    /// taken so that its TX never stalls, not counted.
    back: &'a mut RxQueue<'p>,
}

/// Unpaced traffic, the ring holding the generator back, until every flow
/// was sent twice (at most 30 s more) and `warmup` has passed; returns
/// the rate over the last `warmup` (frames a second).
fn warm_up(io: &mut Io, sender: &mut Sender, warmup: Duration) -> f64 {
    let hz = tsc_hz();
    let flows_limit = rdtsc() + ticks(Duration::from_secs(30), hz);
    let mut burst = Burst::new();
    let mut sink = Burst::new();
    let mut sent = 0u64;
    let mut window: Option<(u64, u64)> = None;
    loop {
        let now = rdtsc();
        let flows_seen = sender.flows.is_none_or(|n| sent >= 2 * n);
        match window {
            None if flows_seen || now >= flows_limit => window = Some((now, sent)),
            Some((start, sent0)) if now - start >= ticks(warmup, hz) => {
                drain(io, &mut sink);
                let seconds = (now - start) as f64 / hz as f64;
                return (sent - sent0) as f64 / seconds;
            }
            _ => {}
        }
        if Mbuf::alloc_bulk(io.pool, &mut burst) {
            sender.fill(&mut burst, now);
            let n = io.tx.tx_burst(&mut burst);
            // Unsent frames go back to the pool and are sent again as the
            // next ones: every flow is sent, in order.
            sender.rewind(burst.len() as u64);
            sent += n as u64;
            Mbuf::free_bulk(&mut burst);
        }
        io.rx.rx_burst(&mut sink);
        Mbuf::free_bulk(&mut sink);
        io.back.rx_burst(&mut sink);
        Mbuf::free_bulk(&mut sink);
    }
}

/// One trial: `rate` frames a second for `seconds`, then a drain.
fn trial(io: &mut Io, sender: &mut Sender, result: &mut TrialResult) {
    let hz = tsc_hz();
    let ns_per_tick = 1e9 / hz as f64;
    let start = rdtsc();
    let end = start + ticks(Duration::from_secs_f64(result.seconds), hz);
    let mut burst = Burst::new();
    let mut back = Burst::new();
    let mut last_seq = None;
    loop {
        let now = rdtsc();
        if now >= end {
            break;
        }
        // Frames due by now; at most a burst at a time, so a late loop
        // catches up in bursts, not all at once.
        let due = ((now - start) as f64 * result.rate / hz as f64) as u64;
        let want = due
            .saturating_sub(result.attempted)
            .min(burst.capacity() as u64) as usize;
        if want > 0 && Mbuf::alloc_bulk(io.pool, &mut burst) {
            burst.truncate(want);
            sender.fill(&mut burst, now);
            result.attempted += want as u64;
            io.tx.tx_burst(&mut burst);
            result.refused += burst.len() as u64;
            Mbuf::free_bulk(&mut burst);
        }
        receive(
            io,
            &mut back,
            (start, end),
            ns_per_tick,
            &mut last_seq,
            result,
        );
    }
    let drain_end = Instant::now() + DRAIN;
    while Instant::now() < drain_end {
        receive(
            io,
            &mut back,
            (start, end),
            ns_per_tick,
            &mut last_seq,
            result,
        );
    }
}

/// How long a trial waits for its last frames: a memif round trip is
/// microseconds, a device descheduled by the host a few milliseconds.
const DRAIN: Duration = Duration::from_millis(100);

/// Takes a burst from the receiving port and counts each frame stamped
/// within `window`, its latency and its order.
fn receive(
    io: &mut Io,
    back: &mut Burst,
    window: (u64, u64),
    ns_per_tick: f64,
    last_seq: &mut Option<u32>,
    result: &mut TrialResult,
) {
    io.rx.rx_burst(back);
    let now = rdtsc();
    for m in back.iter() {
        match read_stamp(m) {
            Some((seq, tsc)) if (window.0..window.1).contains(&tsc) => {
                result.received += 1;
                result
                    .latency
                    .record((now.saturating_sub(tsc) as f64 * ns_per_tick) as u64);
                if last_seq.is_some_and(|l| seq < l) {
                    result.reordered += 1;
                }
                *last_seq = Some(seq);
            }
            _ => result.foreign += 1,
        }
    }
    Mbuf::free_bulk(back);
    io.back.rx_burst(back);
    Mbuf::free_bulk(back);
}

fn drain(io: &mut Io, sink: &mut Burst) {
    let end = Instant::now() + DRAIN;
    while Instant::now() < end {
        io.rx.rx_burst(sink);
        Mbuf::free_bulk(sink);
        io.back.rx_burst(sink);
        Mbuf::free_bulk(sink);
    }
}

fn ticks(d: Duration, hz: u64) -> u64 {
    (d.as_secs_f64() * hz as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp sits in the UDP payload of every profile at every size,
    /// after the checksum that was cleared, and reads back; the UDP
    /// datagram (the inner one for decap) ends where the frame does.
    #[test]
    fn the_stamp_is_in_the_udp_payload_of_every_profile() {
        for kind in [Kind::Udp, Kind::Encap, Kind::Decap, Kind::Nat] {
            let p = Profile {
                kind,
                flows: 4,
                size: 64,
            };
            for (set, bytes) in templates(p, Size::Imix).iter().zip(IMIX) {
                let mut f = set[set.len() - 1].clone();
                stamp(&mut f, 7, 0x0102_0304_0506_0708);
                assert_eq!(read_stamp(&f), Some((7, 0x0102_0304_0506_0708)));
                let inner = if kind == Kind::Decap { 14 + 20 + 8 } else { 0 };
                let sliced = etherparse::SlicedPacket::from_ethernet(&f[inner..]).unwrap();
                let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
                    panic!("{kind}: not UDP")
                };
                assert_eq!(udp.checksum(), 0, "{kind}");
                assert!(udp.payload().len() >= STAMP, "{kind} {bytes}");
                assert_eq!(
                    &f[f.len() - STAMP..],
                    &udp.payload()[udp.payload().len() - STAMP..]
                );
                assert_eq!(f.len() - inner, bytes - 4, "{kind}");
            }
        }
        assert_eq!(read_stamp(&[0u8; 60]), None);
    }

    #[test]
    fn sizes_parse_and_imix_is_7_4_1() {
        assert_eq!("imix".parse::<Size>(), Ok(Size::Imix));
        assert_eq!("128".parse::<Size>(), Ok(Size::Bytes(128)));
        assert!("63".parse::<Size>().is_err());
        let count = |n| IMIX.iter().filter(|&&s| s == n).count();
        assert_eq!((count(64), count(570), count(1518)), (7, 4, 1));
        assert!((Size::Imix.mean() - 4246.0 / 12.0).abs() < 1e-9);
    }
}
