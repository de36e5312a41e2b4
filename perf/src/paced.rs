//! The paced generator of `tgw-perf churn-test`: a fixed rate of frames,
//! one flow per tenant and one to an elastic IP, and per flow what came
//! back and where it went.
//!
//! Unlike `gen`, which sends as fast as the device takes frames and counts
//! only totals, this one sends `rate` frames a second whatever happens (a
//! change must not be hidden by the sender slowing down) and reads every
//! frame tgw sends back: the flow index the frame carries in its payload
//! names the tenant it was sent to, and the outer GRE key, the outer
//! destination (the tenant's host) and the inner destination must be that
//! tenant's. Anything else is misrouted; frames tgw sends back out of the
//! public side are misrouted too.
//!
//! It runs as its own process (`tgw-perf paced`, hidden) and talks to the
//! orchestrator over stdio as `gen` does: a `{"ready": true}` line when
//! its links are up and it starts sending, a JSON line with the result
//! when done, then it waits for a line on stdin before it closes its
//! ports (the memif PMD must not lose its peer while polling).

use std::io::BufRead;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use rte::{rdtsc, tsc_hz, Burst, Eal, Mbuf, Mempool};

use crate::gen;
use crate::profile::{self, CLIENT, CLIENT_MAC, GW_PUB_MAC, KEY_BASE, MIN_FRAME};

/// Marks a frame as ours, before the flow index, in the UDP payload (which
/// tgw never rewrites).
const MAGIC: [u8; 4] = *b"tgwZ";
/// Offset of the payload in the frames we send: Ethernet, IPv4, UDP.
const PAYLOAD: usize = 14 + 20 + 8;

/// The traffic elastic IP: bound to tenant `traffic_tenants` (its own
/// tenant, so that binding and unbinding it touches no traffic tenant).
pub const EIP: Ipv4Addr = Ipv4Addr::new(2, 2, 2, 200);
/// The private address behind [`EIP`].
pub const EIP_PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);

/// Where flow `f`'s frames must arrive: the outer GRE key and host and
/// the inner destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub key: u32,
    pub host: Ipv4Addr,
    pub inner_dst: Ipv4Addr,
}

/// Flow `f` of `tenants` traffic tenants: tenant `f`'s public address for
/// `f < tenants`, the elastic IP for `f == tenants`.
pub fn expect(f: u32, tenants: u32) -> Expect {
    Expect {
        key: KEY_BASE + f,
        host: profile::host(f),
        inner_dst: if f < tenants {
            profile::public(f)
        } else {
            EIP_PRIVATE
        },
    }
}

/// One flow's counts. `tail_*` count from the start of the last `tail`
/// seconds of sending on: after the churn ended, so a flow that was
/// stopped on purpose shows that it flows again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounts {
    pub sent: u64,
    pub received: u64,
    pub misrouted: u64,
    pub tail_sent: u64,
    pub tail_received: u64,
}

/// What a paced run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacedResult {
    pub flows: Vec<FlowCounts>,
    /// Frames the TX ring would not take (not sent, not counted as sent).
    pub tx_full: u64,
    /// Frames back that are not ours or cannot be read.
    pub foreign: u64,
}

impl PacedResult {
    pub fn to_json(&self) -> serde_json::Value {
        let flows: Vec<_> = self
            .flows
            .iter()
            .map(|c| {
                serde_json::json!([
                    c.sent,
                    c.received,
                    c.misrouted,
                    c.tail_sent,
                    c.tail_received
                ])
            })
            .collect();
        serde_json::json!({"flows": flows, "tx_full": self.tx_full, "foreign": self.foreign})
    }

    pub fn from_json(v: &serde_json::Value) -> Option<PacedResult> {
        let flows = v
            .get("flows")?
            .as_array()?
            .iter()
            .map(|f| {
                let n = |i: usize| f.get(i).and_then(serde_json::Value::as_u64);
                Some(FlowCounts {
                    sent: n(0)?,
                    received: n(1)?,
                    misrouted: n(2)?,
                    tail_sent: n(3)?,
                    tail_received: n(4)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PacedResult {
            flows,
            tx_full: v.get("tx_full")?.as_u64()?,
            foreign: v.get("foreign")?.as_u64()?,
        })
    }
}

pub struct PacedArgs {
    pub sockets: [String; 2],
    pub file_prefix: String,
    pub lcore: u32,
    pub hugepages: bool,
    /// Frames a second, over all flows.
    pub rate: u64,
    pub seconds: Duration,
    pub tail: Duration,
    pub tenants: u32,
}

/// Flow `f`'s frame: from the client to the tenant's public address (or
/// the elastic IP), UDP, the payload [`MAGIC`] and `f`.
pub fn frame(f: u32, tenants: u32) -> Vec<u8> {
    let dst = if f < tenants { profile::public(f) } else { EIP };
    let mut payload = vec![0u8; MIN_FRAME - PAYLOAD];
    payload[..4].copy_from_slice(&MAGIC);
    payload[4..8].copy_from_slice(&f.to_be_bytes());
    let mut frame = Vec::with_capacity(MIN_FRAME);
    PacketBuilder::ethernet2(CLIENT_MAC, GW_PUB_MAC)
        .ipv4(CLIENT, dst.octets(), 64)
        .udp(40000 + (f % 20000) as u16, 5001)
        .write(&mut frame, &payload)
        .expect("writing to a Vec cannot fail");
    frame
}

/// What a frame tgw sent toward a tenant says: the flow index in its
/// payload and where it went. Read by hand from RFC 791/2784/2890 (not
/// with tgw's parser): outer IPv4, GRE with a key (IPv4 or transparent
/// Ethernet inside), inner IPv4, UDP.
pub fn read_tunnelled(frame: &[u8]) -> Option<(u32, Expect)> {
    let outer = ipv4_after_ethernet(frame)?;
    if frame[outer + 9] != 47 {
        return None;
    }
    let host = addr(frame, outer + 16)?;
    let gre = outer + usize::from(frame[outer] & 0x0f) * 4;
    let flags = u16::from_be_bytes([*frame.get(gre)?, *frame.get(gre + 1)?]);
    let proto = u16::from_be_bytes([*frame.get(gre + 2)?, *frame.get(gre + 3)?]);
    if flags & 0x2000 == 0 {
        return None;
    }
    let key_at = gre + 4 + if flags & 0x8000 != 0 { 4 } else { 0 };
    let key = u32::from_be_bytes(frame.get(key_at..key_at + 4)?.try_into().ok()?);
    let after = key_at + 4 + if flags & 0x1000 != 0 { 4 } else { 0 };
    let inner = match proto {
        0x6558 => ipv4_after_ethernet(frame.get(after..)?)? + after,
        0x0800 => after,
        _ => return None,
    };
    let inner_dst = addr(frame, inner + 16)?;
    let f = flow_of_udp(frame, inner)?;
    Some((
        f,
        Expect {
            key,
            host,
            inner_dst,
        },
    ))
}

/// The flow index of one of our frames coming back unencapsulated (out of
/// the public side), if it is one.
pub fn read_plain(frame: &[u8]) -> Option<u32> {
    let ip = ipv4_after_ethernet(frame)?;
    flow_of_udp(frame, ip)
}

/// Offset of the IPv4 header after an Ethernet header, if the EtherType
/// says IPv4 and a header fits.
fn ipv4_after_ethernet(frame: &[u8]) -> Option<usize> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let version_ihl = *frame.get(14)?;
    (ethertype == 0x0800 && version_ihl >> 4 == 4 && frame.len() >= 14 + 20).then_some(14)
}

fn addr(frame: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = frame.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// The flow index in the payload of the UDP datagram in the IPv4 packet
/// at `ip`, after [`MAGIC`].
fn flow_of_udp(frame: &[u8], ip: usize) -> Option<u32> {
    if *frame.get(ip)? >> 4 != 4 || *frame.get(ip + 9)? != 17 {
        return None;
    }
    let payload = ip + usize::from(frame[ip] & 0x0f) * 4 + 8;
    if frame.get(payload..payload + 4)? != MAGIC {
        return None;
    }
    Some(u32::from_be_bytes(
        frame.get(payload + 4..payload + 8)?.try_into().ok()?,
    ))
}

/// Runs the paced generator; returns an error text for the orchestrator.
pub fn run(args: &PacedArgs) -> Result<(), String> {
    let eal_args = gen::eal_args(args.lcore, &args.file_prefix, args.hugepages, &args.sockets);
    let eal = Eal::init(&eal_args).map_err(|e| format!("generator EAL: {e}"))?;
    let pool = Mempool::new(&eal, "paced", 16383, 256, 2176, -1).map_err(|e| e.to_string())?;
    let (ports, mut queues) = gen::memif_ports(&eal, &pool)?;
    let (Some(mut rx_b), _) = std::mem::take(&mut queues[1]) else {
        return Err("no RX queue on B".into());
    };
    let (Some(mut rx_a), Some(mut tx_a)) = std::mem::take(&mut queues[0]) else {
        return Err("no queues on A".into());
    };

    let flows = args.tenants + 1;
    let frames: Vec<Vec<u8>> = (0..flows).map(|f| frame(f, args.tenants)).collect();
    let expected: Vec<Expect> = (0..flows).map(|f| expect(f, args.tenants)).collect();
    let mut result = PacedResult {
        flows: vec![FlowCounts::default(); flows as usize],
        ..PacedResult::default()
    };
    println!("{}", serde_json::json!({"ready": true}));

    let hz = tsc_hz();
    let start = rdtsc();
    let end = start + ticks(args.seconds, hz);
    let tail_start = end.saturating_sub(ticks(args.tail, hz));
    let mut in_tail = false;
    let mut attempted = 0u64;
    let mut next = 0usize;
    let mut burst = Burst::new();
    let mut back = Burst::new();
    loop {
        let now = rdtsc();
        if now >= end {
            break;
        }
        in_tail = in_tail || now >= tail_start;
        // Frames due by now at the rate; at most a burst at a time, so a
        // late loop catches up in bursts of 32, not all at once.
        let due = ((now - start) as u128 * u128::from(args.rate) / u128::from(hz)) as u64;
        let want = due.saturating_sub(attempted).min(burst.capacity() as u64) as usize;
        if want > 0 && Mbuf::alloc_bulk(&pool, &mut burst) {
            burst.truncate(want);
            let first = next;
            for m in burst.iter_mut() {
                let frame = &frames[next];
                if m.set_len(frame.len()) {
                    if let Some(data) = m.data_mut() {
                        data.copy_from_slice(frame);
                    }
                }
                next = if next + 1 == frames.len() {
                    0
                } else {
                    next + 1
                };
            }
            attempted += want as u64;
            let sent = tx_a.tx_burst(&mut burst);
            result.tx_full += burst.len() as u64;
            for i in 0..sent {
                let c = &mut result.flows[(first + i) % frames.len()];
                c.sent += 1;
                c.tail_sent += u64::from(in_tail);
            }
            Mbuf::free_bulk(&mut burst);
        }
        receive(&mut rx_b, &mut back, &expected, &mut result, in_tail);
        rx_a.rx_burst(&mut back);
        misrouted_back_out(&mut back, &mut result);
    }
    // Everything sent is back, or dropped, within a few milliseconds; the
    // drain waits much longer.
    let drain_end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < drain_end {
        receive(&mut rx_b, &mut back, &expected, &mut result, true);
        rx_a.rx_burst(&mut back);
        misrouted_back_out(&mut back, &mut result);
    }
    println!("{}", result.to_json());

    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    drop(ports);
    Ok(())
}

/// Takes a burst from the tunnel side and counts each frame on its flow:
/// received, and misrouted unless key, host and inner destination are the
/// flow's.
fn receive(
    rx: &mut rte::RxQueue<'_>,
    back: &mut Burst,
    expected: &[Expect],
    result: &mut PacedResult,
    in_tail: bool,
) {
    rx.rx_burst(back);
    for m in back.iter() {
        match read_tunnelled(m) {
            Some((f, got)) if (f as usize) < expected.len() => {
                let c = &mut result.flows[f as usize];
                c.received += 1;
                c.tail_received += u64::from(in_tail);
                c.misrouted += u64::from(got != expected[f as usize]);
            }
            _ => result.foreign += 1,
        }
    }
    Mbuf::free_bulk(back);
}

/// Frames that came back out of the public side: ours are misrouted (tgw
/// must send every one into its tenant's tunnel or drop it).
fn misrouted_back_out(back: &mut Burst, result: &mut PacedResult) {
    for m in back.iter() {
        match read_plain(m) {
            Some(f) if (f as usize) < result.flows.len() => result.flows[f as usize].misrouted += 1,
            _ => result.foreign += 1,
        }
    }
    Mbuf::free_bulk(back);
}

fn ticks(d: Duration, hz: u64) -> u64 {
    (d.as_secs_f64() * hz as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as tgw sends it into a gretap tunnel, built by hand from
    /// RFC 2784/2890 around an etherparse inner frame.
    fn tunnelled(f: u32, key: u32, host: [u8; 4], inner_dst: [u8; 4]) -> Vec<u8> {
        let mut payload = vec![0u8; 18];
        payload[..4].copy_from_slice(&MAGIC);
        payload[4..8].copy_from_slice(&f.to_be_bytes());
        let mut inner = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(CLIENT, inner_dst, 63)
            .udp(40000, 5001)
            .write(&mut inner, &payload)
            .unwrap();
        let mut gre = vec![0x20, 0x00, 0x65, 0x58];
        gre.extend_from_slice(&key.to_be_bytes());
        gre.extend_from_slice(&inner);
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 0xee, 2])
            .ipv4([172, 16, 0, 1], host, 64)
            .write(&mut frame, etherparse::IpNumber(47), &gre)
            .unwrap();
        frame
    }

    #[test]
    fn a_tunnelled_frame_names_its_flow_and_where_it_went() {
        let e = expect(3, 8);
        let frame = tunnelled(3, e.key, e.host.octets(), e.inner_dst.octets());
        assert_eq!(read_tunnelled(&frame), Some((3, e)));
        // The elastic IP's flow arrives translated to the private address.
        let eip = expect(8, 8);
        assert_eq!(eip.inner_dst, EIP_PRIVATE);
        // Another tenant's key is seen as such: misrouted.
        let wrong = tunnelled(3, KEY_BASE + 4, e.host.octets(), e.inner_dst.octets());
        assert_ne!(read_tunnelled(&wrong).unwrap().1, e);
    }

    #[test]
    fn a_sent_frame_read_back_plain_is_its_flow_and_not_tunnelled() {
        let f = frame(5, 8);
        assert_eq!(f.len(), MIN_FRAME);
        assert_eq!(read_plain(&f), Some(5));
        assert_eq!(read_tunnelled(&f), None);
        let sliced = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = sliced.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.header().destination_addr(), profile::public(5));
        assert_eq!(read_plain(&frame(8, 8)), Some(8));
    }

    #[test]
    fn the_result_reads_back_from_its_json() {
        let r = PacedResult {
            flows: vec![
                FlowCounts {
                    sent: 5,
                    received: 4,
                    misrouted: 1,
                    tail_sent: 2,
                    tail_received: 2,
                };
                3
            ],
            tx_full: 7,
            foreign: 9,
        };
        assert_eq!(PacedResult::from_json(&r.to_json()), Some(r));
    }
}
