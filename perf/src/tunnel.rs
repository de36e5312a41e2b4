//! `tgw-perf tunnel`: the tenant host's end of a GRE tunnel, as a
//! hypervisor's vswitch would give it, for hosts in network namespaces on a
//! kernel that has no GRE of its own.
//!
//! It joins a TAP device (`gretap`: Ethernet inside, GRE protocol 0x6558)
//! or a TUN device (`ipv4`: IPv4 inside, 0x0800) to GRE with a key on the
//! underlay, through a raw IPv4 socket of protocol 47: the kernel routes
//! and resolves the underlay like any host stack, and hands us every GRE
//! packet addressed to this host with its IPv4 header.
//!
//! Written from RFC 2784 and 2890, independently of `dataplane`'s GRE code,
//! so that an end-to-end test of tgw does not check tgw against itself.
//!
//! - Sent: outer IPv4 from `--local` to `--remote`, TTL 64, **DF set**;
//!   GRE version 0 with K and the key; with `--csum` a checksum (C, RFC
//!   2784) and with `--seq` a sequence number (S, RFC 2890, from 0 up),
//!   as a Linux tunnel made with `ocsum` / `oseq` sends them.
//!   DF because tgw hands outer fragments to its slow path and does not
//!   reassemble them (nor do most gateways' fast paths): a packet that does
//!   not fit the underlay must fail here, counted as `too_big`, not arrive
//!   in pieces. The device's MTU (underlay 1500 minus the overhead) is what
//!   keeps that from happening; the socket builds the outer header itself
//!   (`IP_HDRINCL`), so the kernel never fragments it either: it refuses
//!   it with `EMSGSIZE`.
//! - Received: only from `--remote`, version 0, no routing or other bits
//!   RFC 2784 says to discard on, the K bit with exactly our key, our
//!   protocol type; the checksum (C) is verified when present and the
//!   sequence number (S) skipped. Everything else is dropped and counted
//!   by reason.
//! - With `--require-csum` / `--require-seq`, Linux's receive rules for a
//!   tunnel made with `icsum` / `iseq` (which `csum` / `seq` set), as
//!   `ip_tunnel_rcv` in net/ipv4/ip_tunnel.c applies them: a packet
//!   without C is dropped (Linux counts `rx_crc_errors`); a packet without
//!   S, or whose number is below the next one expected (the last taken
//!   plus one, compared as a signed 32-bit difference, the check skipped
//!   while that is 0), is dropped (`rx_fifo_errors`) and leaves the
//!   expected number as it was.
//! - Counters are printed when it stops (SIGTERM or SIGINT): a summary on
//!   stderr and one JSON object on stdout. `tx` is device → tunnel,
//!   `rx` is tunnel → device; bytes are the inner frames' (or packets').

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The underlay's MTU the device's default MTU is derived from.
pub const UNDERLAY_MTU: u16 = 1500;
const IPV4_HDR: usize = 20;
/// GRE with the key and nothing else.
const GRE_HDR: usize = 8;
/// A checksum (with Reserved1) or a sequence number: one word each.
const GRE_WORD: usize = 4;
const ETH_HDR: usize = 14;
/// Outer IPv4 + GRE with every word this end may send: the headroom in
/// front of what the device gives.
const MAX_ENCAP_HDR: usize = IPV4_HDR + GRE_HDR + 2 * GRE_WORD;
const IPPROTO_GRE: u8 = 47;
/// Room for any IPv4 packet the socket can hand over.
const BUF: usize = 65_536;
/// The GRE socket's receive buffer.
const RCVBUF: usize = 4 << 20;
/// How often the blocking reads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

const GRE_C: u16 = 0x8000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
/// Bits 1-5 of the flags other than K and S (routing present, strict
/// source route, the first recursion bit): RFC 2784 says a receiver that
/// does not implement RFC 1701 MUST discard such a packet. Bits 6-12 are
/// reserved and ignored on receipt.
const GRE_DISCARD: u16 = 0x4000 | 0x0800 | 0x0400;
const GRE_VERSION: u16 = 0x0007;

/// What is inside the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ethernet frames from a TAP device (GRE protocol 0x6558).
    Gretap,
    /// IPv4 packets from a TUN device (GRE protocol 0x0800).
    Ipv4,
}

impl Mode {
    fn protocol(self) -> u16 {
        match self {
            Mode::Gretap => 0x6558,
            Mode::Ipv4 => 0x0800,
        }
    }

    /// Outer IPv4, GRE with key and the words `sent` adds, and the inner
    /// Ethernet header if any.
    pub fn overhead(self, sent: Sent) -> u16 {
        let l2 = match self {
            Mode::Gretap => ETH_HDR,
            Mode::Ipv4 => 0,
        };
        (sent.encap_len() + l2) as u16
    }

    /// The device MTU at which no packet needs fragmenting on a 1500-byte
    /// underlay.
    pub fn default_mtu(self, sent: Sent) -> u16 {
        UNDERLAY_MTU - self.overhead(sent)
    }
}

/// The optional GRE words this end sends (receiving takes them either
/// way, as tgw does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// C: a checksum over the GRE header and payload (RFC 2784 §2.5).
    pub checksum: bool,
    /// S: a sequence number, 0 for the first packet and one more for each
    /// (RFC 2890 §2.2).
    pub sequence: bool,
}

impl Sent {
    /// Outer IPv4 and GRE.
    fn encap_len(self) -> usize {
        IPV4_HDR + GRE_HDR + GRE_WORD * (usize::from(self.checksum) + usize::from(self.sequence))
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gretap" => Ok(Mode::Gretap),
            "ipv4" => Ok(Mode::Ipv4),
            _ => Err(format!("unknown mode {s:?}; known: gretap, ipv4")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Gretap => "gretap",
            Mode::Ipv4 => "ipv4",
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct TunnelArgs {
    /// This host's underlay address: the outer source, and where GRE must
    /// be addressed to.
    #[arg(long)]
    local: Ipv4Addr,
    /// The other end's underlay address (tgw, or another host): the outer
    /// destination, and the only source accepted.
    #[arg(long)]
    remote: Ipv4Addr,
    /// The GRE key (the tenant).
    #[arg(long)]
    key: u32,
    /// Name of the TAP (gretap) or TUN (ipv4) device to create.
    #[arg(long)]
    dev: String,
    /// `gretap` (TAP, Ethernet inside) or `ipv4` (TUN, IPv4 inside).
    #[arg(long, default_value = "gretap")]
    mode: Mode,
    /// The device's MTU [default: 1500 minus the overhead: 1458 for
    /// gretap, 1472 for ipv4; 4 less for each of --csum and --seq].
    #[arg(long)]
    mtu: Option<u16>,
    /// Send a GRE checksum (C, RFC 2784), as Linux's `ocsum`.
    #[arg(long)]
    csum: bool,
    /// Send GRE sequence numbers (S, RFC 2890), as Linux's `oseq`.
    #[arg(long)]
    seq: bool,
    /// Drop what arrives without a GRE checksum, as Linux's `icsum`.
    #[arg(long)]
    require_csum: bool,
    /// Drop what arrives without a sequence number or with one lower than
    /// the last taken, as Linux's `iseq`.
    #[arg(long)]
    require_seq: bool,
}

/// Linux's receive rules for a tunnel with `icsum` / `iseq`, and the
/// sequence state they keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Required {
    pub checksum: bool,
    pub sequence: bool,
    /// The next sequence number expected: the last taken plus one; 0
    /// before the first (and after 0xffffffff), when any is taken.
    next_seq: u32,
}

impl Required {
    pub fn new(checksum: bool, sequence: bool) -> Self {
        Required {
            checksum,
            sequence,
            next_seq: 0,
        }
    }

    /// Takes or refuses a packet that passed [`decap`], by the rules of
    /// `ip_tunnel_rcv`.
    pub fn admit(&mut self, got: &Received) -> Result<(), RxDrop> {
        if self.checksum && !got.checksum {
            return Err(RxDrop::NoChecksum);
        }
        if self.sequence {
            let Some(seq) = got.seq else {
                return Err(RxDrop::NoSequence);
            };
            if self.next_seq != 0 && (seq.wrapping_sub(self.next_seq) as i32) < 0 {
                return Err(RxDrop::OldSequence);
            }
            self.next_seq = seq.wrapping_add(1);
        }
        Ok(())
    }
}

/// What [`decap`] found besides the inner frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Where the inner frame is in the packet.
    pub inner: Range<usize>,
    /// Whether a (verified) checksum was present.
    pub checksum: bool,
    /// The sequence number, if present.
    pub seq: Option<u32>,
}

/// Why a packet from the underlay was not delivered to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// Too short for its IPv4 or GRE header, or not IPv4 / not GRE.
    Malformed,
    /// Not from `--remote`.
    Source,
    /// GRE version other than 0.
    Version,
    /// Routing present, or another bit RFC 2784 says to discard on.
    Flags,
    /// The GRE checksum was present and wrong.
    Checksum,
    /// No key, or another tenant's.
    Key,
    /// Another protocol type than our mode's.
    Protocol,
    /// The payload is not a plausible Ethernet frame / IPv4 packet.
    Inner,
    /// The device refused the write.
    Device,
    /// No checksum, with `--require-csum` (Linux: `rx_crc_errors`).
    NoChecksum,
    /// No sequence number, with `--require-seq` (Linux: `rx_fifo_errors`).
    NoSequence,
    /// A sequence number lower than the last taken, with `--require-seq`
    /// (Linux: `rx_fifo_errors`).
    OldSequence,
}

impl RxDrop {
    const ALL: [RxDrop; 12] = [
        RxDrop::Malformed,
        RxDrop::Source,
        RxDrop::Version,
        RxDrop::Flags,
        RxDrop::Checksum,
        RxDrop::Key,
        RxDrop::Protocol,
        RxDrop::Inner,
        RxDrop::Device,
        RxDrop::NoChecksum,
        RxDrop::NoSequence,
        RxDrop::OldSequence,
    ];

    fn name(self) -> &'static str {
        match self {
            RxDrop::Malformed => "malformed",
            RxDrop::Source => "source",
            RxDrop::Version => "version",
            RxDrop::Flags => "flags",
            RxDrop::Checksum => "checksum",
            RxDrop::Key => "key",
            RxDrop::Protocol => "protocol",
            RxDrop::Inner => "inner",
            RxDrop::Device => "device",
            RxDrop::NoChecksum => "no_checksum",
            RxDrop::NoSequence => "no_sequence",
            RxDrop::OldSequence => "old_sequence",
        }
    }
}

/// Why a packet from the device was not sent into the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxDrop {
    /// Not IPv4 (a TUN device also hands over IPv6).
    NotIpv4,
    /// Bigger than the underlay takes with DF (`EMSGSIZE`).
    TooBig,
    /// Any other send error (no route, neighbour unreachable, ...).
    Send,
}

impl TxDrop {
    const ALL: [TxDrop; 3] = [TxDrop::NotIpv4, TxDrop::TooBig, TxDrop::Send];

    fn name(self) -> &'static str {
        match self {
            TxDrop::NotIpv4 => "not_ipv4",
            TxDrop::TooBig => "too_big",
            TxDrop::Send => "send",
        }
    }
}

/// One direction's counters, owned by its thread and handed back at join.
#[derive(Debug)]
struct Counters<const N: usize> {
    packets: u64,
    bytes: u64,
    drops: [u64; N],
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters {
            packets: 0,
            bytes: 0,
            drops: [0; N],
        }
    }
}

type RxCounters = Counters<{ RxDrop::ALL.len() }>;
type TxCounters = Counters<{ TxDrop::ALL.len() }>;

/// Checks an IPv4 packet as the raw socket hands it over and returns where
/// the inner frame is in it.
#[cfg(test)]
pub fn decap(pkt: &[u8], remote: Ipv4Addr, key: u32, mode: Mode) -> Result<Range<usize>, RxDrop> {
    receive(pkt, remote, key, mode).map(|r| r.inner)
}

/// [`decap`], with the optional words it found.
pub fn receive(pkt: &[u8], remote: Ipv4Addr, key: u32, mode: Mode) -> Result<Received, RxDrop> {
    if pkt.len() < IPV4_HDR || pkt[0] >> 4 != 4 || pkt[9] != IPPROTO_GRE {
        return Err(RxDrop::Malformed);
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if ihl < IPV4_HDR || total < ihl || total > pkt.len() {
        return Err(RxDrop::Malformed);
    }
    if Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]) != remote {
        return Err(RxDrop::Source);
    }
    let gre = &pkt[ihl..total];
    if gre.len() < 4 {
        return Err(RxDrop::Malformed);
    }
    let flags = u16::from_be_bytes([gre[0], gre[1]]);
    if flags & GRE_VERSION != 0 {
        return Err(RxDrop::Version);
    }
    if flags & GRE_DISCARD != 0 {
        return Err(RxDrop::Flags);
    }
    let mut at = 4;
    if flags & GRE_C != 0 {
        // Checksum and Reserved1; the checksum covers header and payload.
        if gre.len() < at + 4 {
            return Err(RxDrop::Malformed);
        }
        if checksum(gre) != 0 {
            return Err(RxDrop::Checksum);
        }
        at += 4;
    }
    let got = if flags & GRE_K != 0 {
        if gre.len() < at + 4 {
            return Err(RxDrop::Malformed);
        }
        at += 4;
        Some(u32::from_be_bytes([
            gre[at - 4],
            gre[at - 3],
            gre[at - 2],
            gre[at - 1],
        ]))
    } else {
        None
    };
    let seq = if flags & GRE_S != 0 {
        if gre.len() < at + 4 {
            return Err(RxDrop::Malformed);
        }
        at += 4;
        Some(u32::from_be_bytes([
            gre[at - 4],
            gre[at - 3],
            gre[at - 2],
            gre[at - 1],
        ]))
    } else {
        None
    };
    if got != Some(key) {
        return Err(RxDrop::Key);
    }
    if u16::from_be_bytes([gre[2], gre[3]]) != mode.protocol() {
        return Err(RxDrop::Protocol);
    }
    let inner = &gre[at..];
    let plausible = match mode {
        Mode::Gretap => inner.len() >= ETH_HDR,
        Mode::Ipv4 => inner.len() >= IPV4_HDR && inner[0] >> 4 == 4,
    };
    if !plausible {
        return Err(RxDrop::Inner);
    }
    Ok(Received {
        inner: ihl + at..total,
        checksum: flags & GRE_C != 0,
        seq,
    })
}

/// Writes the outer IPv4 and GRE headers into the first
/// `sent.encap_len()` bytes of `pkt`, in front of the payload that fills
/// the rest; `seq` is the sequence number if `sent` has one.
pub fn encap(
    pkt: &mut [u8],
    local: Ipv4Addr,
    remote: Ipv4Addr,
    key: u32,
    mode: Mode,
    sent: Sent,
    seq: u32,
) {
    // Bigger than any IPv4 packet: the kernel refuses it like any other
    // too-big packet (EMSGSIZE), so saturate rather than wrap.
    let total = u16::try_from(pkt.len()).unwrap_or(u16::MAX);
    let ip = &mut pkt[..IPV4_HDR];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    // Identification 0: the kernel picks one (IP_HDRINCL); with DF set it
    // identifies no fragments anyway.
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = 64;
    ip[9] = IPPROTO_GRE;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&local.octets());
    ip[16..20].copy_from_slice(&remote.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let gre = &mut pkt[IPV4_HDR..];
    let mut flags = GRE_K;
    let mut at = 4;
    if sent.checksum {
        flags |= GRE_C;
        gre[at..at + GRE_WORD].fill(0); // checksum (for now) and Reserved1
        at += GRE_WORD;
    }
    gre[at..at + 4].copy_from_slice(&key.to_be_bytes());
    at += 4;
    if sent.sequence {
        flags |= GRE_S;
        gre[at..at + GRE_WORD].copy_from_slice(&seq.to_be_bytes());
    }
    gre[0..2].copy_from_slice(&flags.to_be_bytes());
    gre[2..4].copy_from_slice(&mode.protocol().to_be_bytes());
    if sent.checksum {
        let sum = checksum(gre);
        gre[4..6].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071) of `data`: 0 over data that carries a
/// correct one.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn run(args: &TunnelArgs) -> Result<(), String> {
    // First, so that a tunnel that never comes up says whether it
    // started at all: the reference scenario has twice waited 60 s for
    // "up:" from an agent that had written nothing.
    eprintln!("tgw-perf tunnel: starting (pid {})", std::process::id());
    let sent = Sent {
        checksum: args.csum,
        sequence: args.seq,
    };
    let mtu = args.mtu.unwrap_or(args.mode.default_mtu(sent));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }

    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_GRE))),
    )
    .map_err(|e| format!("raw GRE socket: {e} (needs CAP_NET_RAW)"))?;
    // Only GRE addressed to --local reaches this socket.
    socket
        .bind(&SockAddr::from(SocketAddrV4::new(args.local, 0)))
        .map_err(|e| format!("bind {}: {e}", args.local))?;
    socket
        .set_header_included_v4(true)
        .map_err(|e| format!("IP_HDRINCL: {e}"))?;
    // Room for bursts while the device write lags: the kernel caps this
    // at net.core.rmem_max (and drops what does not fit, as a NIC would).
    socket
        .set_recv_buffer_size(RCVBUF)
        .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    socket
        .set_read_timeout(Some(POLL))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let tx_socket = socket.try_clone().map_err(|e| e.to_string())?;

    let mut config = tun::Configuration::default();
    config
        .tun_name(&args.dev)
        .layer(match args.mode {
            Mode::Gretap => tun::Layer::L2,
            Mode::Ipv4 => tun::Layer::L3,
        })
        .mtu(mtu)
        .up();
    let device = tun::create(&config).map_err(|e| format!("device {}: {e}", args.dev))?;
    let (dev_rx, dev_tx) = device.split();

    eprintln!(
        "tgw-perf tunnel: up: {} ({}, mtu {mtu}) <-> GRE key {}{}{}{}{} {} -> {}",
        args.dev,
        args.mode,
        args.key,
        if sent.checksum { " ocsum" } else { "" },
        if sent.sequence { " oseq" } else { "" },
        if args.require_csum { " icsum" } else { "" },
        if args.require_seq { " iseq" } else { "" },
        args.local,
        args.remote
    );

    let (local, remote, key, mode) = (args.local, args.remote, args.key, args.mode);
    let required = Required::new(args.require_csum, args.require_seq);
    let tx_stop = Arc::clone(&stop);
    let tx = std::thread::Builder::new()
        .name("tunnel-tx".into())
        .spawn(move || {
            let r = to_tunnel(
                &dev_rx,
                &tx_socket,
                (local, remote, key, mode, sent),
                &tx_stop,
            );
            tx_stop.store(true, Ordering::Relaxed);
            r
        })
        .map_err(|e| e.to_string())?;
    let rx_stop = Arc::clone(&stop);
    let rx = std::thread::Builder::new()
        .name("tunnel-rx".into())
        .spawn(move || {
            let r = from_tunnel(&socket, dev_tx, (remote, key, mode, required), &rx_stop);
            rx_stop.store(true, Ordering::Relaxed);
            r
        })
        .map_err(|e| e.to_string())?;
    let (tx, tx_err) = tx.join().map_err(|_| "the tx thread panicked")?;
    let (rx, rx_err) = rx.join().map_err(|_| "the rx thread panicked")?;

    report(&args.dev, key, &tx, &rx);
    match tx_err.or(rx_err) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Device → tunnel, until told to stop or the device fails.
fn to_tunnel(
    dev: &tun::Reader,
    socket: &Socket,
    (local, remote, key, mode, sent): (Ipv4Addr, Ipv4Addr, u32, Mode, Sent),
    stop: &AtomicBool,
) -> (TxCounters, Option<String>) {
    let mut c = TxCounters::default();
    let mut buf = vec![0u8; BUF];
    let to = SockAddr::from(SocketAddrV4::new(remote, 0));
    // The headers go right in front of the payload.
    let start = MAX_ENCAP_HDR - sent.encap_len();
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let n = match dev.recv_timeout(&mut buf[MAX_ENCAP_HDR..], POLL) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => continue,
            Err(e) => return (c, Some(format!("reading the device: {e}"))),
        };
        if mode == Mode::Ipv4 && (n == 0 || buf[MAX_ENCAP_HDR] >> 4 != 4) {
            c.drops[TxDrop::NotIpv4 as usize] += 1;
            continue;
        }
        let pkt = &mut buf[start..MAX_ENCAP_HDR + n];
        encap(pkt, local, remote, key, mode, sent, seq);
        match socket.send_to(pkt, &to) {
            Ok(_) => {
                c.packets += 1;
                c.bytes += n as u64;
                seq = seq.wrapping_add(1);
            }
            Err(e) => {
                let why = if e.raw_os_error() == Some(libc::EMSGSIZE) {
                    TxDrop::TooBig
                } else {
                    TxDrop::Send
                };
                if c.drops[why as usize] == 0 {
                    eprintln!("tgw-perf tunnel: sending to {remote}: {e} (counted as {}, not logged again)", why.name());
                }
                c.drops[why as usize] += 1;
            }
        }
    }
    (c, None)
}

/// Tunnel → device, until told to stop or the socket fails.
fn from_tunnel(
    socket: &Socket,
    mut dev: tun::Writer,
    (remote, key, mode, mut required): (Ipv4Addr, u32, Mode, Required),
    stop: &AtomicBool,
) -> (RxCounters, Option<String>) {
    let mut c = RxCounters::default();
    let mut buf = vec![0u8; BUF];
    while !stop.load(Ordering::Relaxed) {
        let n = match (&*socket).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return (c, Some(format!("reading the GRE socket: {e}"))),
        };
        let inner = match receive(&buf[..n], remote, key, mode)
            .and_then(|r| required.admit(&r).map(|()| r.inner))
        {
            Ok(r) => r,
            Err(why) => {
                c.drops[why as usize] += 1;
                continue;
            }
        };
        // One write is one packet on a TUN/TAP device: a short count
        // cannot happen, and would be no use to retry.
        match dev.write(&buf[inner.clone()]) {
            Ok(w) if w == inner.len() => {
                c.packets += 1;
                c.bytes += inner.len() as u64;
            }
            Ok(_) => c.drops[RxDrop::Device as usize] += 1,
            Err(e) => {
                if c.drops[RxDrop::Device as usize] == 0 {
                    eprintln!("tgw-perf tunnel: writing the device: {e} (counted as device, not logged again)");
                }
                c.drops[RxDrop::Device as usize] += 1;
            }
        }
    }
    (c, None)
}

fn report(dev: &str, key: u32, tx: &TxCounters, rx: &RxCounters) {
    let drops = |names: &mut Vec<String>,
                 json: &mut serde_json::Map<String, serde_json::Value>,
                 name: &str,
                 n: u64| {
        if n > 0 {
            names.push(format!("{name} {n}"));
        }
        json.insert(name.to_owned(), n.into());
    };
    let mut names = Vec::new();
    let mut tx_drops = serde_json::Map::new();
    for why in TxDrop::ALL {
        drops(
            &mut names,
            &mut tx_drops,
            why.name(),
            tx.drops[why as usize],
        );
    }
    let mut rx_drops = serde_json::Map::new();
    for why in RxDrop::ALL {
        drops(
            &mut names,
            &mut rx_drops,
            why.name(),
            rx.drops[why as usize],
        );
    }
    eprintln!(
        "tgw-perf tunnel: {dev} key {key}: tx {} packets {} bytes, rx {} packets {} bytes; drops: {}",
        tx.packets,
        tx.bytes,
        rx.packets,
        rx.bytes,
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    );
    let json = serde_json::json!({
        "dev": dev,
        "key": key,
        "tx": { "packets": tx.packets, "bytes": tx.bytes, "drops": tx_drops },
        "rx": { "packets": rx.packets, "bytes": rx.bytes, "drops": rx_drops },
    });
    println!("{json}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(172, 168, 0, 11);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(172, 168, 0, 1);

    /// Outer IPv4 from `src` around `gre`, built by hand.
    fn ipv4(src: Ipv4Addr, gre: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&LOCAL.octets());
        let total = (p.len() + gre.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(gre);
        p
    }

    /// GRE with the given flags word and optional fields, then `inner`.
    fn gre(flags: u16, proto: u16, fields: &[u32], inner: &[u8]) -> Vec<u8> {
        let mut g = flags.to_be_bytes().to_vec();
        g.extend_from_slice(&proto.to_be_bytes());
        for f in fields {
            g.extend_from_slice(&f.to_be_bytes());
        }
        g.extend_from_slice(inner);
        g
    }

    fn frame() -> Vec<u8> {
        (0..60).collect()
    }

    #[test]
    fn accepts_our_key_and_finds_the_frame() {
        let p = ipv4(REMOTE, &gre(0x2000, 0x6558, &[1000], &frame()));
        let r = decap(&p, REMOTE, 1000, Mode::Gretap).unwrap();
        assert_eq!(&p[r], &frame()[..]);
    }

    #[test]
    fn skips_checksum_and_sequence_number() {
        // C, K and S: checksum word, key, sequence number.
        let mut g = gre(0xb000, 0x6558, &[0, 1000, 7], &frame());
        let sum = checksum(&g);
        g[4..6].copy_from_slice(&sum.to_be_bytes());
        let p = ipv4(REMOTE, &g);
        let r = decap(&p, REMOTE, 1000, Mode::Gretap).unwrap();
        assert_eq!(&p[r], &frame()[..]);

        g[4] ^= 1;
        let p = ipv4(REMOTE, &g);
        assert_eq!(decap(&p, REMOTE, 1000, Mode::Gretap), Err(RxDrop::Checksum));
    }

    #[test]
    fn drops_everything_else_by_reason() {
        let f = frame();
        let cases = [
            (
                ipv4(LOCAL, &gre(0x2000, 0x6558, &[1000], &f)),
                RxDrop::Source,
            ),
            (
                ipv4(REMOTE, &gre(0x2001, 0x6558, &[1000], &f)),
                RxDrop::Version,
            ),
            (
                ipv4(REMOTE, &gre(0x6000, 0x6558, &[1000], &f)),
                RxDrop::Flags,
            ),
            (ipv4(REMOTE, &gre(0x2000, 0x6558, &[2000], &f)), RxDrop::Key),
            (ipv4(REMOTE, &gre(0x0000, 0x6558, &[], &f)), RxDrop::Key),
            (
                ipv4(REMOTE, &gre(0x2000, 0x0800, &[1000], &f)),
                RxDrop::Protocol,
            ),
            (
                ipv4(REMOTE, &gre(0x2000, 0x6558, &[1000], &f[..10])),
                RxDrop::Inner,
            ),
            (
                ipv4(REMOTE, &gre(0x2000, 0x6558, &[], &[])),
                RxDrop::Malformed,
            ),
            (ipv4(REMOTE, &[0x20]), RxDrop::Malformed),
            (vec![0x45; 12], RxDrop::Malformed),
        ];
        for (p, why) in cases {
            assert_eq!(decap(&p, REMOTE, 1000, Mode::Gretap), Err(why), "{p:02x?}");
        }
        // Reserved bits 6-12 are ignored on receipt.
        let p = ipv4(REMOTE, &gre(0x2000 | 0x03f8, 0x6558, &[1000], &f));
        assert!(decap(&p, REMOTE, 1000, Mode::Gretap).is_ok());
        // ipv4 mode wants IPv4 inside.
        let p = ipv4(REMOTE, &gre(0x2000, 0x0800, &[1000], &f));
        assert_eq!(decap(&p, REMOTE, 1000, Mode::Ipv4), Err(RxDrop::Inner));
        let mut inner = f.clone();
        inner[0] = 0x45;
        let p = ipv4(REMOTE, &gre(0x2000, 0x0800, &[1000], &inner));
        assert!(decap(&p, REMOTE, 1000, Mode::Ipv4).is_ok());
    }

    #[test]
    fn encap_is_what_decap_takes() {
        let f = frame();
        let mut p = vec![0u8; IPV4_HDR + GRE_HDR];
        p.extend_from_slice(&f);
        encap(
            &mut p,
            REMOTE,
            LOCAL,
            1000,
            Mode::Gretap,
            Sent::default(),
            0,
        );
        assert_eq!(checksum(&p[..IPV4_HDR]), 0);
        assert_eq!(&p[6..8], &[0x40, 0], "DF");
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        let r = decap(&p, REMOTE, 1000, Mode::Gretap).unwrap();
        assert_eq!(&p[r], &f[..]);
    }

    /// With `--csum --seq`: C, K and S in that order (RFC 2784 / 2890),
    /// a checksum that sums the GRE header and payload to zero, and the
    /// sequence number given.
    #[test]
    fn checksum_and_sequence_are_sent_when_asked() {
        let f = frame();
        let sent = Sent {
            checksum: true,
            sequence: true,
        };
        let mut p = vec![0u8; sent.encap_len()];
        p.extend_from_slice(&f[..59]); // odd: the checksum pads it
        encap(&mut p, REMOTE, LOCAL, 1000, Mode::Gretap, sent, 7);
        let gre = &p[IPV4_HDR..];
        assert_eq!(&gre[..4], &[0xb0, 0x00, 0x65, 0x58]);
        assert_eq!(&gre[6..8], &[0, 0], "Reserved1");
        assert_eq!(&gre[8..16], &[0, 0, 0x03, 0xe8, 0, 0, 0, 7]);
        assert_eq!(checksum(gre), 0);
        let r = decap(&p, REMOTE, 1000, Mode::Gretap).unwrap();
        assert_eq!(&p[r], &f[..59]);
        // The sequence number alone.
        let seq = Sent {
            checksum: false,
            sequence: true,
        };
        let mut p = vec![0u8; seq.encap_len()];
        p.extend_from_slice(&f);
        encap(&mut p, REMOTE, LOCAL, 1000, Mode::Ipv4, seq, 1);
        assert_eq!(
            &p[IPV4_HDR..IPV4_HDR + 12],
            &[0x30, 0, 8, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 1]
        );
    }

    /// `--require-csum` / `--require-seq`: Linux's `icsum` / `iseq` rules
    /// (`ip_tunnel_rcv`): no C, no S, or a number below the last taken
    /// plus one is dropped, and a drop leaves the expected number alone.
    #[test]
    fn required_checksum_and_sequence_follow_linux() {
        let f = frame();
        let packet = |flags: u16, seq: Option<u32>| {
            let mut fields = Vec::new();
            if flags & GRE_C != 0 {
                fields.push(0);
            }
            fields.push(1000);
            fields.extend(seq);
            let mut g = gre(flags, 0x6558, &fields, &f);
            if flags & GRE_C != 0 {
                let sum = checksum(&g);
                g[4..6].copy_from_slice(&sum.to_be_bytes());
            }
            ipv4(REMOTE, &g)
        };
        let take = |req: &mut Required, p: &[u8]| {
            let r = receive(p, REMOTE, 1000, Mode::Gretap).unwrap();
            assert_eq!(&p[r.inner.clone()], &f[..]);
            req.admit(&r)
        };
        let mut none = Required::default();
        assert_eq!(take(&mut none, &packet(0x2000, None)), Ok(()));

        let mut csum = Required::new(true, false);
        assert_eq!(
            take(&mut csum, &packet(0x2000, None)),
            Err(RxDrop::NoChecksum)
        );
        assert_eq!(
            take(&mut csum, &packet(0x3000, Some(4))),
            Err(RxDrop::NoChecksum)
        );
        assert_eq!(take(&mut csum, &packet(0xa000, None)), Ok(()));

        let mut seq = Required::new(false, true);
        assert_eq!(
            take(&mut seq, &packet(0x2000, None)),
            Err(RxDrop::NoSequence)
        );
        assert_eq!(take(&mut seq, &packet(0x3000, Some(5))), Ok(()));
        assert_eq!(
            take(&mut seq, &packet(0x3000, Some(5))),
            Err(RxDrop::OldSequence)
        );
        assert_eq!(
            take(&mut seq, &packet(0x3000, Some(3))),
            Err(RxDrop::OldSequence)
        );
        assert_eq!(take(&mut seq, &packet(0x3000, Some(6))), Ok(()));
        assert_eq!(
            take(&mut seq, &packet(0x3000, Some(9))),
            Ok(()),
            "gaps are fine"
        );
        // A signed 32-bit difference from the next expected (10): 2^31
        // ahead is behind, one less is ahead.
        assert_eq!(
            take(&mut seq, &packet(0x3000, Some(0x8000_000a))),
            Err(RxDrop::OldSequence)
        );
        assert_eq!(take(&mut seq, &packet(0x3000, Some(0x8000_0009))), Ok(()));
        assert_eq!(take(&mut seq, &packet(0x3000, Some(0xffff_ffff))), Ok(()));
        // The next expected is 0 now: anything is taken.
        assert_eq!(take(&mut seq, &packet(0x3000, Some(7))), Ok(()));
        assert_eq!(take(&mut seq, &packet(0xb000, Some(8))), Ok(()));
    }

    #[test]
    fn default_mtus_fit_a_1500_underlay() {
        assert_eq!(Mode::Gretap.default_mtu(Sent::default()), 1458);
        assert_eq!(Mode::Ipv4.default_mtu(Sent::default()), 1472);
        let both = Sent {
            checksum: true,
            sequence: true,
        };
        assert_eq!(Mode::Gretap.default_mtu(both), 1450);
        assert_eq!(Mode::Ipv4.default_mtu(both), 1464);
    }
}
