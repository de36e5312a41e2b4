//! The traffic generator: one lcore, two memif server ports. It sends
//! frames of a profile out of port A as fast as the device under test takes
//! them, and counts what comes back on port B.
//!
//! It runs as its own process (`tgw-perf gen`), once per device under test,
//! and talks to the orchestrator over stdio: a JSON line with the result on
//! stdout, then it waits for a line on stdin before it closes its ports.
//! That order matters: the memif PMD crashes if the peer disconnects while
//! the server is still polling, so the generator stops polling first, the
//! orchestrator stops the device, and only then does the generator exit.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rte::{rdtsc, tsc_hz, Burst, Eal, Mbuf, Mempool, Port, PortConf, RxQueue, TxQueue};

use crate::profile::Profile;

/// What one generator run measured.
///
/// Rates come from the measurement window; loss from the whole run. The
/// window's counts cannot be compared with each other: frames in flight
/// when it opens are received in it but were sent before it, so a slow
/// device can return more frames in the window than it was sent there.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenResult {
    pub seconds: f64,
    /// Frames sent and received within the measurement window.
    pub sent: u64,
    pub received: u64,
    /// Frames sent and received over the whole run: warm-up, window and
    /// the drain after the sender stopped.
    pub sent_total: u64,
    pub received_total: u64,
}

impl GenResult {
    pub fn offered_mpps(&self) -> f64 {
        self.sent as f64 / self.seconds / 1e6
    }

    pub fn received_mpps(&self) -> f64 {
        self.received as f64 / self.seconds / 1e6
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "seconds": self.seconds, "sent": self.sent, "received": self.received,
            "sent_total": self.sent_total, "received_total": self.received_total,
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Option<GenResult> {
        Some(GenResult {
            seconds: v.get("seconds")?.as_f64()?,
            sent: v.get("sent")?.as_u64()?,
            received: v.get("received")?.as_u64()?,
            sent_total: v.get("sent_total")?.as_u64()?,
            received_total: v.get("received_total")?.as_u64()?,
        })
    }
}

pub struct GenArgs {
    pub sockets: [String; 2],
    pub file_prefix: String,
    pub lcore: u32,
    pub hugepages: bool,
    pub warmup: Duration,
    pub seconds: Duration,
    pub profile: Profile,
}

/// Runs the generator; returns an error text for the orchestrator.
pub fn run(args: &GenArgs) -> Result<(), String> {
    let eal = Eal::init(&eal_args(
        args.lcore,
        &args.file_prefix,
        args.hugepages,
        &args.sockets,
    ))
    .map_err(|e| format!("generator EAL: {e}"))?;
    let pool = Mempool::new(&eal, "gen", 16383, 256, 2176, -1).map_err(|e| e.to_string())?;
    let (ports, mut queues) = memif_ports(&eal, &pool)?;

    let (Some(mut rx_b), _) = std::mem::take(&mut queues[1]) else {
        return Err("no RX queue on B".into());
    };
    let (mut rx_a, Some(mut tx_a)) = std::mem::take(&mut queues[0]) else {
        return Err("no TX queue on A".into());
    };
    let frames = args.profile.frames();
    // `new-flows` never wraps: each frame is a flow of its own.
    let flows = args.profile.flow_count();

    let hz = tsc_hz();
    let warmup_end = rdtsc() + ticks(args.warmup, hz);
    // The warm-up also lasts until every flow was sent twice: the first
    // pass creates the flows through tgw's slow path, which at a million
    // flows takes longer than a second and is not what is measured
    // (except by `new-flows`, which measures nothing else).
    let warmup_limit = warmup_end + ticks(MAX_EXTRA_WARMUP, hz);
    let mut end = u64::MAX;
    let (mut sent, mut received) = (0u64, 0u64);
    let (mut sent0, mut received0) = (0u64, 0u64);
    let mut warm = false;
    let mut next = 0u64;
    let mut burst = Burst::new();
    loop {
        let now = rdtsc();
        let flows_seen = flows.is_none_or(|n| sent >= 2 * n);
        if !warm && now >= warmup_end && (flows_seen || now >= warmup_limit) {
            warm = true;
            (sent0, received0) = (sent, received);
            end = now + ticks(args.seconds, hz);
            // For the orchestrator, which takes the device's counters here
            // so that its cycles a frame are the window's.
            println!("{}", serde_json::json!({"window": "start"}));
        }
        if now >= end {
            break;
        }
        if Mbuf::alloc_bulk(&pool, &mut burst) {
            let offered = burst.len() as u64;
            for m in burst.iter_mut() {
                let frame = &frames[(next % frames.len() as u64) as usize];
                if m.set_len(frame.len()) {
                    // Fresh from the pool, so always writable.
                    if let Some(data) = m.data_mut() {
                        data.copy_from_slice(frame);
                        args.profile.stamp(data, next);
                    }
                }
                next = if Some(next + 1) == flows { 0 } else { next + 1 };
            }
            let taken = tx_a.tx_burst(&mut burst) as u64;
            sent += taken;
            // The frames the device's ring did not take are offered again
            // next, so that every flow has its turn: skipped, their flows
            // missed it, and while tgw's slow path created the first
            // pass's flows at 10M most did, so that "every flow sent
            // twice" still left flows to create in the measured window.
            next = rewound(next, offered - taken, flows);
            Mbuf::free_bulk(&mut burst);
        }
        received += rx_b.rx_burst(&mut burst) as u64;
        Mbuf::free_bulk(&mut burst);
        if let Some(rx) = rx_a.as_mut() {
            // Frames the device sends back on A (it may forward both ways)
            // are taken so that its TX never stalls, but not counted.
            rx.rx_burst(&mut burst);
            Mbuf::free_bulk(&mut burst);
        }
    }
    let (sent_window, received_window) = (sent - sent0, received - received0);
    let drain_end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_end {
        received += rx_b.rx_burst(&mut burst) as u64;
        Mbuf::free_bulk(&mut burst);
    }
    let result = GenResult {
        seconds: args.seconds.as_secs_f64(),
        sent: sent_window,
        received: received_window,
        sent_total: sent,
        received_total: received,
    };
    println!("{}", result.to_json());

    // Stop polling, then wait until the device has let go of its end.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    drop(ports);
    Ok(())
}

/// `next` moved back by `n` frames: flows wrap at `flows`, frames of a
/// profile without a flow count go on counting.
fn rewound(next: u64, n: u64, flows: Option<u64>) -> u64 {
    match flows {
        Some(f) if f > 0 => (next + f - n % f) % f,
        _ => next.saturating_sub(n),
    }
}

/// How much longer than asked the warm-up may last while waiting for every
/// flow to have been sent twice (the orchestrator waits 40 s past the
/// asked time).
const MAX_EXTRA_WARMUP: Duration = Duration::from_secs(30);

fn ticks(d: Duration, hz: u64) -> u64 {
    (d.as_secs_f64() * hz as f64) as u64
}

/// The EAL arguments of a generator on `lcore` serving the two memif
/// sockets (the device under test is their client).
pub fn eal_args(
    lcore: u32,
    file_prefix: &str,
    hugepages: bool,
    sockets: &[String; 2],
) -> Vec<String> {
    let mut eal_args = vec![
        "-l".to_owned(),
        lcore.to_string(),
        "--no-pci".to_owned(),
        format!("--file-prefix={file_prefix}"),
        "--log-level=pmd.net.memif:error".to_owned(),
    ];
    // --no-huge implies legacy memory, which --in-memory refuses: without
    // hugepages there are no files to keep anyway, only the shared config.
    if hugepages {
        eal_args.push("--in-memory".to_owned());
    } else {
        eal_args.extend(["--no-huge", "--no-shconf", "-m", "512"].map(str::to_owned));
    }
    for (i, sock) in sockets.iter().enumerate() {
        eal_args.push(format!(
            "--vdev=net_memif{i},role=server,socket={sock},socket-abstract=no,id=0"
        ));
    }
    eal_args
}

/// A generator's port and its one queue each way.
pub type MemifQueues<'p> = (Option<RxQueue<'p>>, Option<TxQueue<'p>>);

/// The generator's two memif ports, started, with their queues, once both
/// links are up (20 s at most).
pub fn memif_ports<'p>(
    eal: &'p Eal,
    pool: &'p Mempool,
) -> Result<(Vec<Port<'p>>, Vec<MemifQueues<'p>>), String> {
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 1024,
        tx_desc: 1024,
        mtu: 1500,
        promiscuous: true,
    };
    let mut ports = Vec::new();
    let mut queues = Vec::new();
    for i in 0..2 {
        let port = Port::by_name(eal, &format!("net_memif{i}")).map_err(|e| e.to_string())?;
        let (mut port, rx, tx) = port.configure(&conf, pool).map_err(|e| e.to_string())?;
        port.start().map_err(|e| e.to_string())?;
        ports.push(port);
        queues.push((rx.into_iter().next(), tx.into_iter().next()));
    }
    wait_for_links(&ports, Duration::from_secs(20))?;
    Ok((ports, queues))
}

pub fn wait_for_links(ports: &[Port], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if ports
            .iter()
            .all(|p| p.link().map(|l| l.up).unwrap_or(false))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "memif links not up after {limit:?}: did the device under test start?"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::rewound;

    /// A burst's frames the ring did not take are the flows offered next:
    /// back across the wrap of the flows, never below the first frame of
    /// a profile that counts frames.
    #[test]
    fn the_untaken_frames_are_offered_again() {
        // Flows 6, 7, 0, 1 offered, two taken: 0 comes next.
        assert_eq!(rewound(2, 2, Some(8)), 0);
        // Two of them past the wrap.
        assert_eq!(rewound(2, 3, Some(8)), 7);
        assert_eq!(rewound(5, 0, Some(8)), 5);
        assert_eq!(rewound(3, 8, Some(8)), 3);
        assert_eq!(rewound(0, 1, Some(1)), 0);
        assert_eq!(rewound(100, 32, None), 68);
        assert_eq!(rewound(3, 32, None), 0);
    }
}
