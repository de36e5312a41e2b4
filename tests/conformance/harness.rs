//! The conformance suite's harness: one plan of crafted frames, one run of
//! the real daemon over it, and the frames and counters that came out.
//!
//! Every check adds its frames to the [`Plan`] (`frames` in each RFC's
//! module) and finds its own answers in the shared [`Outcome`] by a field
//! only it uses (ports, ICMP identifiers, IP identification). tgw starts
//! once for the whole suite: on net_pcap that costs about a second, the
//! frames themselves microseconds.
//!
//! Order. The worker polls pub0 then und0, a burst of up to 32 frames each,
//! and net_pcap reads a full burst from its file. A plan is therefore cut
//! into *rounds*: each round's frames on both ports are padded to the same
//! number of whole bursts with filler frames (an unknown EtherType, dropped
//! as `ethertype`), so everything of round r is processed before anything
//! of round r + 1 whatever its port. A check that needs state first (a
//! mapping, a flow) sends the opener in round 0 and the rest later.
//!
//! Frames are built with etherparse, and GRE by hand from RFC 2784/2890:
//! never with `dataplane::wire`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder};

use crate::common::{read_pcap, write_pcap, Daemon, PrefixFiles, Scratch};

pub const PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const UND_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const T1_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 0];
pub const T2_MAC: [u8; 6] = [2, 0, 0, 0, 0x20, 0];
pub const HOST1_MAC: [u8; 6] = [2, 0, 0, 0, 0x0b, 0x0b];
pub const HOST2_MAC: [u8; 6] = [2, 0, 0, 0, 0x0c, 0x0c];
pub const VM1_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x07];
/// The MAC of 10.0.0.8, a host of the pools, in both tenants.
pub const POOLED_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x08];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 7, 7];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 0xfe];

pub const GW_PUB: [u8; 4] = [1, 1, 1, 1];
pub const GW_UND: [u8; 4] = [172, 168, 0, 1];
pub const CLIENT: [u8; 4] = [1, 1, 1, 7];
pub const HOST1: [u8; 4] = [172, 168, 0, 11];
pub const HOST2: [u8; 4] = [172, 168, 0, 12];
/// Both tenants' host with an elastic IP.
pub const VM: [u8; 4] = [10, 0, 0, 7];
/// Both tenants' host without one: it leaves through the tenant's pool.
pub const POOLED: [u8; 4] = [10, 0, 0, 8];
pub const EIP1: [u8; 4] = [2, 2, 2, 11];
pub const EIP2: [u8; 4] = [2, 2, 2, 12];
/// t1's pool: address-and-port-dependent filtering (the default).
pub const POOL1: [u8; 4] = [2, 2, 2, 100];
/// t2's pool: endpoint-independent filtering.
pub const POOL2: [u8; 4] = [2, 2, 2, 200];
/// Internet hosts behind the default router 1.1.1.254.
pub const REMOTE: [u8; 4] = [8, 8, 8, 8];
pub const REMOTE2: [u8; 4] = [9, 9, 9, 9];
/// A router on the path, which reports errors about others' packets.
pub const ROUTER: [u8; 4] = [8, 8, 4, 4];

/// The Internet checksum (RFC 1071), shared with the daemon tests.
pub use crate::common::checksum;
/// What the worker asks of a queue at once.
use rte::BURST;
/// The filler's EtherType: IEEE local experimental, which tgw drops.
const FILLER_ETHERTYPE: u16 = 0x88b5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tenant {
    T1,
    T2,
}

impl Tenant {
    pub fn key(self) -> u32 {
        match self {
            Tenant::T1 => 1000,
            Tenant::T2 => 2000,
        }
    }
    fn host(self) -> ([u8; 4], [u8; 6]) {
        match self {
            Tenant::T1 => (HOST1, HOST1_MAC),
            Tenant::T2 => (HOST2, HOST2_MAC),
        }
    }
    pub fn gateway_mac(self) -> [u8; 6] {
        match self {
            Tenant::T1 => T1_MAC,
            Tenant::T2 => T2_MAC,
        }
    }
}

#[derive(Default)]
struct Round {
    public: Vec<Vec<u8>>,
    underlay: Vec<Vec<u8>>,
}

/// The frames of every check, by round, and what tgw's pools will hand
/// out for them.
#[derive(Default)]
pub struct Plan {
    rounds: Vec<Round>,
    /// (tenant, private address, private port) → public port, in the
    /// order tgw maps them: ports come in blocks of 64 per private host,
    /// the lowest free block first, the lowest free port of it first.
    mapped: HashMap<(Tenant, [u8; 4], u16), u16>,
    blocks: HashMap<(Tenant, [u8; 4]), (u16, u16)>,
    next_block: HashMap<Tenant, u16>,
    ip_id: u16,
}

impl Plan {
    fn round(&mut self, r: usize) -> &mut Round {
        while self.rounds.len() <= r {
            self.rounds.push(Round::default());
        }
        &mut self.rounds[r]
    }

    /// An IPv4 packet arriving on the public port from the next hop that
    /// owns its source (the client on-link, the router for the rest).
    pub fn public(&mut self, r: usize, ip: Vec<u8>) {
        let from = if ip[12..16] == CLIENT {
            CLIENT_MAC
        } else {
            ROUTER_MAC
        };
        self.public_frame(r, eth(PUB_MAC, from, EtherType::IPV4, &ip));
    }

    pub fn public_frame(&mut self, r: usize, frame: Vec<u8>) {
        self.round(r).public.push(frame);
    }

    /// An IPv4 packet from `tenant`'s host, in its gretap tunnel.
    pub fn tunnel(&mut self, r: usize, tenant: Tenant, ip: Vec<u8>) {
        let inner = eth(tenant.gateway_mac(), POOLED_MAC, EtherType::IPV4, &ip);
        self.tunnel_raw(r, tenant, 0x2000, &[tenant.key()], 0x6558, &inner, 0);
    }

    /// A GRE packet from `tenant`'s host written field by field: `flags`
    /// (C, K, S, reserved, version: RFC 2784 §2, RFC 2890 §2), the
    /// optional words after the protocol type, and the outer ECN bits.
    #[allow(clippy::too_many_arguments)]
    pub fn tunnel_raw(
        &mut self,
        r: usize,
        tenant: Tenant,
        flags: u16,
        words: &[u32],
        proto: u16,
        inner: &[u8],
        outer_ecn: u8,
    ) {
        let mut body = flags.to_be_bytes().to_vec();
        body.extend_from_slice(&proto.to_be_bytes());
        for w in words {
            body.extend_from_slice(&w.to_be_bytes());
        }
        body.extend_from_slice(inner);
        let (host, host_mac) = tenant.host();
        self.ip_id += 1;
        let mut ip = Ipv4Header::new(body.len() as u16, 64, IpNumber(47), host, GW_UND).unwrap();
        ip.identification = self.ip_id;
        ip.ecn = etherparse::Ipv4Ecn::try_new(outer_ecn).unwrap();
        ip.header_checksum = ip.calc_header_checksum();
        let mut frame = Vec::new();
        Ethernet2Header {
            destination: UND_MAC,
            source: host_mac,
            ether_type: EtherType::IPV4,
        }
        .write(&mut frame)
        .unwrap();
        ip.write(&mut frame).unwrap();
        frame.extend_from_slice(&body);
        self.underlay_frame(r, frame);
    }

    pub fn underlay_frame(&mut self, r: usize, frame: Vec<u8>) {
        self.round(r).underlay.push(frame);
    }

    /// The public port tgw gives `tenant`'s `private`:`port` in its pool:
    /// the same for every flow of that private end (endpoint-independent
    /// mapping). Call it for every packet that opens a flow through a
    /// pool, in the order the packets are sent.
    pub fn snat_port(&mut self, tenant: Tenant, private: [u8; 4], port: u16) -> u16 {
        if let Some(&p) = self.mapped.get(&(tenant, private, port)) {
            return p;
        }
        let next_block = self.next_block.entry(tenant).or_default();
        let (block, used) = self.blocks.entry((tenant, private)).or_insert_with(|| {
            *next_block += 1;
            (*next_block - 1, 0)
        });
        assert!(*used < 64, "the plan keeps to one block per host");
        let public = 1024 + *block * 64 + *used;
        *used += 1;
        self.mapped.insert((tenant, private, port), public);
        public
    }

    /// Both ports' input files, each round padded to whole bursts that
    /// the two ports share.
    fn write(&self, public: &Path, underlay: &Path) -> usize {
        let (mut p, mut u, mut fillers) = (Vec::new(), Vec::new(), 0);
        for round in &self.rounds {
            let bursts = round
                .public
                .len()
                .max(round.underlay.len())
                .div_ceil(BURST)
                .max(1);
            for (frames, out, mac) in [
                (&round.public, &mut p, PUB_MAC),
                (&round.underlay, &mut u, UND_MAC),
            ] {
                out.extend(frames.iter().cloned());
                for _ in frames.len()..bursts * BURST {
                    out.push(eth(mac, CLIENT_MAC, EtherType(FILLER_ETHERTYPE), &[0; 46]));
                    fillers += 1;
                }
            }
        }
        write_pcap(public, &p);
        write_pcap(underlay, &u);
        fillers
    }
}

/// What tgw sent, and its counters at exit.
pub struct Outcome {
    pub public: Vec<Vec<u8>>,
    pub underlay: Vec<Vec<u8>>,
    pub stats: serde_json::Value,
    pub fillers: usize,
    mapped: HashMap<(Tenant, [u8; 4], u16), u16>,
}

/// An IPv4 packet that came out, its header checksum checked.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub h: Ipv4Header,
    /// Everything after the IPv4 header (and its options).
    pub payload: Vec<u8>,
    pub bytes: Vec<u8>,
}

impl Pkt {
    pub fn parse(ip: &[u8]) -> Pkt {
        let (h, _) = Ipv4Header::from_slice(ip).expect("an IPv4 header");
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "IPv4 checksum of {ip:02x?}"
        );
        let end = usize::from(h.total_len).min(ip.len());
        Pkt {
            payload: ip[h.header_len()..end].to_vec(),
            bytes: ip[..end].to_vec(),
            h,
        }
    }

    fn first_fragment(&self) -> bool {
        self.h.fragment_offset.value() == 0
    }

    /// Source and destination ports of a first TCP or UDP fragment, or an
    /// ICMP query's identifier as both.
    pub fn ports(&self) -> Option<(u16, u16)> {
        if !self.first_fragment() || self.payload.len() < 8 {
            return None;
        }
        let p = &self.payload;
        match self.h.protocol {
            IpNumber::TCP | IpNumber::UDP => Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )),
            IpNumber::ICMP if matches!(p[0], 0 | 8) => {
                let id = u16::from_be_bytes([p[4], p[5]]);
                Some((id, id))
            }
            _ => None,
        }
    }

    pub fn dport(&self) -> Option<u16> {
        self.ports().map(|p| p.1)
    }

    pub fn sport(&self) -> Option<u16> {
        self.ports().map(|p| p.0)
    }

    /// ICMP (type, code).
    pub fn icmp(&self) -> Option<(u8, u8)> {
        (self.h.protocol == IpNumber::ICMP && self.first_fragment() && self.payload.len() >= 8)
            .then(|| (self.payload[0], self.payload[1]))
    }

    /// The datagram an ICMP error quotes.
    pub fn quoted(&self) -> Pkt {
        let q = &self.payload[8..];
        let (h, _) = Ipv4Header::from_slice(q).expect("a quoted IPv4 header");
        Pkt {
            payload: q[h.header_len()..].to_vec(),
            bytes: q.to_vec(),
            h,
        }
    }

    /// The ICMP checksum is right (RFC 792: over the whole message).
    pub fn icmp_checksum_ok(&self) -> bool {
        checksum(&self.payload) == 0
    }

    /// The TCP or UDP checksum is right (through the pseudo-header).
    pub fn l4_checksum_ok(&self) -> bool {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&self.h.source);
        pseudo.extend_from_slice(&self.h.destination);
        pseudo.extend_from_slice(&[0, self.h.protocol.0]);
        pseudo.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&self.payload);
        checksum(&pseudo) == 0
    }

    pub fn ecn(&self) -> u8 {
        self.h.ecn.value()
    }
}

/// A packet that left through a tunnel: the outer header, the GRE header
/// (4 bytes and the key), the inner Ethernet header when gretap, and the
/// inner packet.
#[derive(Clone, Debug)]
pub struct Tunnelled {
    pub outer: Ipv4Header,
    pub gre: Vec<u8>,
    pub key: u32,
    pub inner_eth: Ethernet2Header,
    pub pkt: Pkt,
}

impl Outcome {
    /// The IPv4 packets that left by the public port.
    pub fn public_ip(&self) -> Vec<Pkt> {
        self.public
            .iter()
            .filter(|f| f[12..14] == [8, 0])
            .map(|f| Pkt::parse(&f[14..]))
            .collect()
    }

    /// The public IPv4 packets `pick` chooses.
    pub fn public_where(&self, pick: impl Fn(&Pkt) -> bool) -> Vec<Pkt> {
        self.public_ip().into_iter().filter(|p| pick(p)).collect()
    }

    /// The ARP packets (without Ethernet) that left by `port`'s frames.
    pub fn arp(frames: &[Vec<u8>]) -> Vec<(Ethernet2Header, Vec<u8>)> {
        frames
            .iter()
            .filter(|f| f[12..14] == [8, 6])
            .map(|f| {
                let (e, rest) = Ethernet2Header::from_slice(f).unwrap();
                (e, rest[..28].to_vec())
            })
            .collect()
    }

    /// The packets that went into the tunnels, with IPv4 inside gretap.
    pub fn tunnelled(&self) -> Vec<Tunnelled> {
        self.underlay
            .iter()
            .filter(|f| f[12..14] == [8, 0])
            .filter_map(|f| {
                let (outer, rest) = Ipv4Header::from_slice(&f[14..]).unwrap();
                assert_eq!(outer.header_checksum, outer.calc_header_checksum());
                if outer.protocol != IpNumber(47) {
                    return None;
                }
                let key = u32::from_be_bytes(rest[4..8].try_into().unwrap());
                let (inner_eth, inner) = Ethernet2Header::from_slice(&rest[8..]).unwrap();
                (inner_eth.ether_type == EtherType::IPV4).then(|| Tunnelled {
                    gre: rest[..8].to_vec(),
                    key,
                    pkt: Pkt::parse(inner),
                    inner_eth,
                    outer,
                })
            })
            .collect()
    }

    pub fn tunnelled_where(&self, pick: impl Fn(&Tunnelled) -> bool) -> Vec<Tunnelled> {
        self.tunnelled().into_iter().filter(|t| pick(t)).collect()
    }

    /// The public port the plan expected tgw to give `tenant`'s
    /// `private`:`port` (see [`Plan::snat_port`]).
    pub fn mapped(&self, tenant: Tenant, private: [u8; 4], port: u16) -> u16 {
        self.mapped[&(tenant, private, port)]
    }

    /// The worker's drops for `reason` (its name in counters.rs).
    pub fn drops(&self, reason: &str) -> u64 {
        self.worker()["drops"][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("no drop reason {reason:?}: {}", self.worker()["drops"]))
    }

    /// What came out, one line a packet, and the drops (set
    /// TGW_CONFORMANCE_DUMP to see it when a check fails).
    fn dump(&self) {
        let line = |p: &Pkt| {
            format!(
                "{:?} {:?} -> {:?} {:?} icmp {:?} id {:#x} ttl {} len {}{}",
                p.h.protocol,
                p.h.source,
                p.h.destination,
                p.ports(),
                p.icmp(),
                p.h.identification,
                p.h.time_to_live,
                p.bytes.len(),
                match p.icmp() {
                    Some(_) if !p.icmp_checksum_ok() =>
                        format!(" BAD ICMP CHECKSUM {:02x?}", p.bytes),
                    _ => String::new(),
                }
            )
        };
        for p in self.public_ip() {
            eprintln!("public: {}", line(&p));
        }
        for t in self.tunnelled() {
            eprintln!("tunnel {}: {}", t.key, line(&t.pkt));
        }
        eprintln!("drops: {}", self.worker()["drops"]);
    }

    pub fn worker(&self) -> &serde_json::Value {
        &self.stats["workers"][0]
    }
}

/// The one run of tgw over every check's frames.
pub fn outcome() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut plan = Plan::default();
        crate::frames(&mut plan);
        let out = run(&mut plan);
        if std::env::var_os("TGW_CONFORMANCE_DUMP").is_some() {
            out.dump();
        }
        out
    })
}

fn run(plan: &mut Plan) -> Outcome {
    let dir = Scratch::new("conformance");
    let prefix = format!("tgw-test-conformance-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    // The last round: a ping to the gateway on the public side and an ARP
    // request on the underlay. Their answers mean every round before has
    // been through the worker; what the control plane sends (cut
    // fragments, host unreachable) comes within a few of its ticks.
    let last = plan.rounds.len();
    let sentinel_id = 0xfffe;
    plan.public(last, echo_request(CLIENT, GW_PUB, sentinel_id, b"sentinel"));
    let ask = arp(1, HOST1_MAC, HOST1, [0; 6], GW_UND);
    plan.underlay_frame(last, eth([0xff; 6], HOST1_MAC, EtherType::ARP, &ask));
    let fillers = plan.write(&dir.path("pub-in.pcap"), &dir.path("und-in.pcap"));

    let config = config(&dir, &prefix);
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = |frames: &[Vec<u8>], pick: &dyn Fn(&[u8]) -> bool| frames.iter().any(|f| pick(f));
    let is_sentinel_reply = |f: &[u8]| {
        f[12..14] == [8, 0] && {
            let p = Pkt::parse(&f[14..]);
            p.icmp() == Some((0, 0)) && p.sport() == Some(sentinel_id)
        }
    };
    let is_arp_reply = |f: &[u8]| f[12..14] == [8, 6] && f[20..22] == [0, 2] && f[38..42] == HOST1;
    while Instant::now() < deadline && daemon.running() {
        let (p, u) = (
            read_pcap(&dir.path("pub-out.pcap")),
            read_pcap(&dir.path("und-out.pcap")),
        );
        if done(&p, &is_sentinel_reply) && done(&u, &is_arp_reply) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The control plane's answers (host unreachable after the ARP
    // retries, fragments cut) follow within milliseconds: wait until
    // nothing more has come for 300 ms.
    let mut seen = (0, 0);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(50));
        let now = (
            read_pcap(&dir.path("pub-out.pcap")).len(),
            read_pcap(&dir.path("und-out.pcap")).len(),
        );
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
    }
    let out = daemon.terminate();
    assert!(
        out.status.success(),
        "tgw failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let strip = |frames: Vec<Vec<u8>>, pick: &dyn Fn(&[u8]) -> bool| {
        frames.into_iter().filter(|f| !pick(f)).collect::<Vec<_>>()
    };
    Outcome {
        public: strip(read_pcap(&dir.path("pub-out.pcap")), &is_sentinel_reply),
        underlay: strip(read_pcap(&dir.path("und-out.pcap")), &is_arp_reply),
        stats,
        fillers,
        mapped: plan.mapped.clone(),
    }
}

/// reference.toml on pcap ports, as tests/golden.rs runs it, with what the
/// checks need besides: a pool for each tenant (t1's filtering
/// address-and-port-dependent, t2's endpoint-independent), the MAC of
/// their pooled host 10.0.0.8, and a rule of t2 that lets UDP in to it
/// (filtering decides who may reach a mapping, the tenant's rules still
/// decide what); ICMP errors not rate-limited within the
/// run; ARP retries short, so that a host that never answers is given up
/// within the run.
pub fn config(dir: &Scratch, prefix: &str) -> PathBuf {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/reference.toml"
    ))
    .unwrap();
    let dev = |i: usize, name: &str| {
        format!(
            "net_pcap{i},rx_pcap={},tx_pcap={}",
            dir.path(&format!("{name}-in.pcap")).display(),
            dir.path(&format!("{name}-out.pcap")).display()
        )
    };
    let edits = [
        ("device = \"net_null0\"", format!("device = \"{}\"", dev(0, "pub"))),
        ("device = \"net_null1\"", format!("device = \"{}\"", dev(1, "und"))),
        ("file_prefix = \"tgw-ref\"", format!("file_prefix = \"{prefix}\"\nin_memory = true")),
        (
            "  { ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" },\n",
            "  { ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" },\n  { ip = \"10.0.0.8\", mac = \"02:00:00:00:0a:08\" },\n".into(),
        ),
        (
            "mac = \"02:00:00:00:0a:17\"\n",
            "mac = \"02:00:00:00:0a:17\"\n\n[[tenant.neighbour]]\nip = \"10.0.0.8\"\nmac = \"02:00:00:00:0a:08\"\n\n\
             [[tenant.rule]]\ndirection = \"in\"\naction = \"allow\"\nproto = \"udp\"\ndst = \"10.0.0.8/32\"\n".into(),
        ),
        ("burst = 50", "burst = 100000".into()),
        ("retry_ms = 1000", "retry_ms = 20".into()),
    ];
    let mut text = reference;
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "reference.toml changed shape: no {from:?}"
        );
        text = text.replacen(from, &to, 1);
    }
    text.push_str(
        "\n[[snat]]\ntenant = \"t1\"\naddresses = [\"2.2.2.100\"]\n\n\
         [[snat]]\ntenant = \"t2\"\naddresses = [\"2.2.2.200\"]\nfiltering = \"endpoint-independent\"\n",
    );
    let path = dir.path("conformance.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---- frames, built with etherparse or by hand from the RFCs ----

pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Ethernet2Header {
        destination: dst,
        source: src,
        ether_type: ethertype,
    }
    .write(&mut out)
    .unwrap();
    out.extend_from_slice(payload);
    out
}

/// An ARP packet for IPv4 over Ethernet (RFC 826).
pub fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4];
    b.extend_from_slice(&op.to_be_bytes());
    for part in [&sha[..], &spa[..], &tha[..], &tpa[..]] {
        b.extend_from_slice(part);
    }
    b
}

pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A TCP segment: SYN when `ack` is None, else SYN+ACK acknowledging it.
pub fn tcp_syn(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, ack: Option<u32>) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64240)
        .syn();
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// A TCP segment with `flags` set as given (FIN, SYN, RST, PSH, ACK bits
/// of the header's byte 13), sequence `seq` and acknowledgement `ack`.
pub fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let mut h = etherparse::TcpHeader::new(sport, dport, seq, 64240);
    h.fin = flags & 1 != 0;
    h.syn = flags & 2 != 0;
    h.rst = flags & 4 != 0;
    h.psh = flags & 8 != 0;
    h.ack = flags & 16 != 0;
    h.acknowledgment_number = ack;
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .tcp_header(h)
        .write(&mut out, &[])
        .unwrap();
    out
}

pub fn echo_request(src: [u8; 4], dst: [u8; 4], id: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .icmpv4_echo_request(id, 1)
        .write(&mut out, payload)
        .unwrap();
    out
}

pub fn echo_reply(src: [u8; 4], dst: [u8; 4], id: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .icmpv4_echo_reply(id, 1)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// An ICMP error (RFC 792) of `kind` (type, code) from `src` to `dst`
/// quoting `quoted` (its header and first 8 bytes, or what is given),
/// with `rest` as the second word (the next-hop MTU of code 4).
pub fn icmp_error(src: [u8; 4], dst: [u8; 4], kind: (u8, u8), rest: u32, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![kind.0, kind.1, 0, 0];
    icmp.extend_from_slice(&rest.to_be_bytes());
    icmp.extend_from_slice(quoted);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = Ipv4Header::new(icmp.len() as u16, 64, IpNumber::ICMP, src, dst).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = Vec::new();
    ip.write(&mut out).unwrap();
    out.extend_from_slice(&icmp);
    out
}

/// The first `n` bytes of a packet's IP payload after its header: what a
/// router quotes (RFC 792: the header and 64 bits).
pub fn quote(ip: &[u8], n: usize) -> Vec<u8> {
    let ihl = usize::from(ip[0] & 15) * 4;
    ip[..(ihl + n).min(ip.len())].to_vec()
}

/// `ip` with its header changed by `edit` and the header checksum redone.
pub fn with_header(ip: &[u8], edit: impl FnOnce(&mut Ipv4Header)) -> Vec<u8> {
    let (mut h, rest) = Ipv4Header::from_slice(ip).unwrap();
    edit(&mut h);
    h.header_checksum = h.calc_header_checksum();
    let mut out = Vec::new();
    h.write(&mut out).unwrap();
    out.extend_from_slice(rest);
    out
}

/// The fragment of IPv4 `datagram` (no options) with `len` payload bytes
/// from `offset` (a multiple of 8), MF as `more`.
pub fn fragment(datagram: &[u8], offset: usize, len: usize, more: bool) -> Vec<u8> {
    let (h, payload) = Ipv4Header::from_slice(datagram).unwrap();
    let part = &payload[offset..(offset + len).min(payload.len())];
    let mut fh = h.clone();
    fh.more_fragments = more;
    fh.dont_fragment = false;
    fh.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
    fh.set_payload_len(part.len()).unwrap();
    fh.header_checksum = fh.calc_header_checksum();
    let mut out = Vec::new();
    fh.write(&mut out).unwrap();
    out.extend_from_slice(part);
    out
}
