//! Golden frames through the real daemon: the reference scenario
//! (examples/reference.toml with its two ports swapped for net_pcap), the
//! packets of DESIGN.md in, and the exact frames expected out — outer
//! headers, keys 1000/2000, TTLs and checksums — built here independently
//! with etherparse (and GRE by hand, which etherparse lacks).

mod common;

use common::{checksum, read_pcap, wait_for_frames, write_pcap, Daemon, PrefixFiles, Scratch};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder};

const PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UND_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const T1_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 0];
const T2_MAC: [u8; 6] = [2, 0, 0, 0, 0x20, 0];
const HOST1_MAC: [u8; 6] = [2, 0, 0, 0, 0x0b, 0x0b];
const HOST2_MAC: [u8; 6] = [2, 0, 0, 0, 0x0c, 0x0c];
const VM1_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x07];
const VM2_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x17];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 7, 7];

const GW_PUB: [u8; 4] = [1, 1, 1, 1];
const GW_UND: [u8; 4] = [172, 168, 0, 1];
const CLIENT: [u8; 4] = [1, 1, 1, 7];
const HOST1: [u8; 4] = [172, 168, 0, 11];
const HOST2: [u8; 4] = [172, 168, 0, 12];
const VM: [u8; 4] = [10, 0, 0, 7];
const EIP1: [u8; 4] = [2, 2, 2, 11];
const EIP2: [u8; 4] = [2, 2, 2, 12];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
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

fn udp(src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .udp(40000, 5001)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// Outer Ethernet + IPv4 (identification `id`, DF as given) + GRE(key)
/// around `inner`.
#[allow(clippy::too_many_arguments)]
fn gre(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    df: bool,
    key: u32,
    proto: u16,
    inner: &[u8],
) -> Vec<u8> {
    let mut body = vec![0x20, 0x00];
    body.extend_from_slice(&proto.to_be_bytes());
    body.extend_from_slice(&key.to_be_bytes());
    body.extend_from_slice(inner);
    let mut ip = Ipv4Header::new(body.len() as u16, 64, IpNumber(47), src, dst).unwrap();
    ip.identification = id;
    ip.dont_fragment = df;
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = Vec::new();
    Ethernet2Header {
        destination: dst_mac,
        source: src_mac,
        ether_type: EtherType::IPV4,
    }
    .write(&mut out)
    .unwrap();
    ip.write(&mut out).unwrap();
    out.extend_from_slice(&body);
    out
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4];
    b.extend_from_slice(&op.to_be_bytes());
    for part in [&sha[..], &spa[..], &tha[..], &tpa[..]] {
        b.extend_from_slice(part);
    }
    b
}

fn echo(src: [u8; 4], dst: [u8; 4], ttl: u8, reply: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ipv4(src, dst, ttl);
    if reply {
        b.icmpv4_echo_reply(9, 1)
            .write(&mut out, b"golden")
            .unwrap();
    } else {
        b.icmpv4_echo_request(9, 1)
            .write(&mut out, b"golden")
            .unwrap();
    }
    out
}

/// reference.toml on pcap ports, without the static neighbours whose
/// blocks `without` names (`port`, `ip`).
fn config(dir: &Scratch, prefix: &str, without: &[(&str, &str)]) -> std::path::PathBuf {
    let mut reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/reference.toml"
    ))
    .unwrap();
    for (port, ip) in without {
        let head = format!("[[neighbour]]\nport = \"{port}\"\nip = \"{ip}\"\n");
        let at = reference
            .find(&head)
            .expect("reference.toml has the neighbour");
        let end = reference[at..]
            .find("\n\n")
            .map_or(reference.len(), |e| at + e + 2);
        reference.replace_range(at..end, "");
    }
    let dev = |i: usize, name: &str| {
        format!(
            "net_pcap{i},rx_pcap={},tx_pcap={}",
            dir.path(&format!("{name}-in.pcap")).display(),
            dir.path(&format!("{name}-out.pcap")).display()
        )
    };
    let text = reference
        .replace(
            "device = \"net_null0\"",
            &format!("device = \"{}\"", dev(0, "pub")),
        )
        .replace(
            "device = \"net_null1\"",
            &format!("device = \"{}\"", dev(1, "und")),
        )
        .replace(
            "file_prefix = \"tgw-ref\"",
            &format!("file_prefix = \"{prefix}\"\nin_memory = true"),
        );
    assert!(
        text.contains("net_pcap0") && text.contains("net_pcap1"),
        "reference.toml changed shape"
    );
    let path = dir.path("reference.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn reference_scenario_frames_come_out_byte_for_byte() {
    let dir = Scratch::new("golden");
    let prefix = format!("tgw-test-golden-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    // The Internet side: the client reaches both public addresses, pings
    // the gateway, asks its MAC, and sends one packet whose TTL runs out.
    // Pings: what both tenants' ingress rules allow besides TCP 22 / 23.
    let to_t1 = echo(CLIENT, EIP1, 64, false);
    let to_t2 = echo(CLIENT, EIP2, 64, false);
    let expiring = echo(CLIENT, EIP1, 1, false);
    let pub_in = vec![
        eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &to_t1),
        eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &to_t2),
        eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &echo(CLIENT, GW_PUB, 64, false),
        ),
        eth(
            [0xff; 6],
            CLIENT_MAC,
            EtherType::ARP,
            &arp(1, CLIENT_MAC, CLIENT, [0; 6], GW_PUB),
        ),
        eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &expiring),
    ];
    // The underlay: both tenants answer from 10.0.0.7, one in its own
    // tunnel; a host asks the gateway's MAC; a VM asks for its router
    // inside the tunnel; and a frame with a key nobody has.
    let from_t1 = udp(VM, CLIENT, 64, b"t1 to client");
    let from_t2 = udp(VM, CLIENT, 64, b"t2 to client");
    let und_in = vec![
        gre(
            UND_MAC,
            HOST1_MAC,
            HOST1,
            GW_UND,
            7,
            false,
            1000,
            0x6558,
            &eth(T1_MAC, VM1_MAC, EtherType::IPV4, &from_t1),
        ),
        gre(
            UND_MAC,
            HOST2_MAC,
            HOST2,
            GW_UND,
            8,
            false,
            2000,
            0x6558,
            &eth(T2_MAC, VM2_MAC, EtherType::IPV4, &from_t2),
        ),
        eth(
            [0xff; 6],
            HOST1_MAC,
            EtherType::ARP,
            &arp(1, HOST1_MAC, HOST1, [0; 6], GW_UND),
        ),
        gre(
            UND_MAC,
            HOST1_MAC,
            HOST1,
            GW_UND,
            9,
            false,
            1000,
            0x6558,
            &eth(
                [0xff; 6],
                VM1_MAC,
                EtherType::ARP,
                &arp(1, VM1_MAC, VM, [0; 6], [10, 0, 0, 1]),
            ),
        ),
        gre(
            UND_MAC,
            HOST1_MAC,
            HOST1,
            GW_UND,
            10,
            false,
            3000,
            0x6558,
            &eth(T1_MAC, VM1_MAC, EtherType::IPV4, &from_t1),
        ),
    ];
    write_pcap(&dir.path("pub-in.pcap"), &pub_in);
    write_pcap(&dir.path("und-in.pcap"), &und_in);

    // What must come out: the elastic IPs translated to and from 10.0.0.7
    // (checksums by etherparse). The worker numbers its outer headers from 1, in
    // the order it encapsulates, and copies DF (set by etherparse) and
    // DSCP/ECN from the inner packet; the tunnel ARP reply keeps the
    // identification of the request it turns around.
    let time_exceeded = {
        let mut out = Vec::new();
        PacketBuilder::ipv4(GW_PUB, CLIENT, 64)
            .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
                etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
            ))
            .write(&mut out, &expiring)
            .unwrap();
        out[1] = 0xc0; // DSCP CS6, as routers send their own control traffic
        out[6] = 0; // no DF on an ICMP error
        out[10..12].fill(0);
        let sum = Ipv4Header::from_slice(&out)
            .unwrap()
            .0
            .calc_header_checksum();
        out[10..12].copy_from_slice(&sum.to_be_bytes());
        out
    };
    let mut pub_out_expected = vec![
        eth(
            CLIENT_MAC,
            PUB_MAC,
            EtherType::IPV4,
            &echo(GW_PUB, CLIENT, 64, true),
        ),
        eth(
            CLIENT_MAC,
            PUB_MAC,
            EtherType::ARP,
            &arp(2, PUB_MAC, GW_PUB, CLIENT_MAC, CLIENT),
        ),
        eth(CLIENT_MAC, PUB_MAC, EtherType::IPV4, &time_exceeded),
        eth(
            CLIENT_MAC,
            PUB_MAC,
            EtherType::IPV4,
            &udp(EIP1, CLIENT, 63, b"t1 to client"),
        ),
        eth(
            CLIENT_MAC,
            PUB_MAC,
            EtherType::IPV4,
            &udp(EIP2, CLIENT, 63, b"t2 to client"),
        ),
    ];
    let mut und_out_expected = vec![
        gre(
            HOST1_MAC,
            UND_MAC,
            GW_UND,
            HOST1,
            1,
            true,
            1000,
            0x6558,
            &eth(
                VM1_MAC,
                T1_MAC,
                EtherType::IPV4,
                &echo(CLIENT, VM, 63, false),
            ),
        ),
        gre(
            HOST2_MAC,
            UND_MAC,
            GW_UND,
            HOST2,
            2,
            true,
            2000,
            0x6558,
            &eth(
                VM2_MAC,
                T2_MAC,
                EtherType::IPV4,
                &echo(CLIENT, VM, 63, false),
            ),
        ),
        eth(
            HOST1_MAC,
            UND_MAC,
            EtherType::ARP,
            &arp(2, UND_MAC, GW_UND, HOST1_MAC, HOST1),
        ),
        gre(
            HOST1_MAC,
            UND_MAC,
            GW_UND,
            HOST1,
            9,
            false,
            1000,
            0x6558,
            &eth(
                VM1_MAC,
                T1_MAC,
                EtherType::ARP,
                &arp(2, T1_MAC, [10, 0, 0, 1], VM1_MAC, VM),
            ),
        ),
    ];

    let config = config(&dir, &prefix, &[]);
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    wait_for_frames(
        &mut daemon,
        &dir.path("pub-out.pcap"),
        pub_out_expected.len(),
    );
    wait_for_frames(
        &mut daemon,
        &dir.path("und-out.pcap"),
        und_out_expected.len(),
    );
    let out = daemon.terminate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The two ports are polled in turn, so the order across them is the
    // worker's; compare each port's frames as sets, byte for byte.
    let mut pub_out = read_pcap(&dir.path("pub-out.pcap"));
    let mut und_out = read_pcap(&dir.path("und-out.pcap"));
    for v in [
        &mut pub_out,
        &mut pub_out_expected,
        &mut und_out,
        &mut und_out_expected,
    ] {
        v.sort();
    }
    assert_eq!(pub_out, pub_out_expected, "public side");
    assert_eq!(und_out, und_out_expected, "underlay side");

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let w = &stats["workers"][0];
    assert_eq!(
        w["drops"]["gre_unknown_key"], 1,
        "the frame with key 3000 is counted: {w}"
    );
    assert_eq!(w["tenants"]["t1"]["from_tunnel_packets"], 1);
    assert_eq!(w["tenants"]["t2"]["to_tunnel_packets"], 1);
    assert_eq!(w["icmp_errors"], 1);
    // Each tenant: the client's flow to its elastic IP (which the expiring
    // packet found too) and its VM's own flow to the client.
    assert_eq!(w["tenants"]["t1"]["flows_created"], 2, "{w}");
    assert_eq!(w["tenants"]["t2"]["flows_created"], 2, "{w}");
}

#[test]
fn a_tunnel_host_without_a_static_mac_is_resolved_by_arp() {
    let dir = Scratch::new("golden-arp");
    let prefix = format!("tgw-test-golden-arp-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    // Host 1's MAC is not configured. The client's frame for tenant 1
    // waits for it; host 1's reply (solicited, or arriving first: it is a
    // next hop of the tables either way) teaches it.
    let to_t1 = echo(CLIENT, EIP1, 64, false);
    write_pcap(
        &dir.path("pub-in.pcap"),
        &[eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, &to_t1)],
    );
    write_pcap(
        &dir.path("und-in.pcap"),
        &[eth(
            UND_MAC,
            HOST1_MAC,
            EtherType::ARP,
            &arp(2, HOST1_MAC, HOST1, UND_MAC, GW_UND),
        )],
    );
    let encapsulated = gre(
        HOST1_MAC,
        UND_MAC,
        GW_UND,
        HOST1,
        1,
        true,
        1000,
        0x6558,
        &eth(
            VM1_MAC,
            T1_MAC,
            EtherType::IPV4,
            &echo(CLIENT, VM, 63, false),
        ),
    );
    let request = {
        let mut f = eth(
            [0xff; 6],
            UND_MAC,
            EtherType::ARP,
            &arp(1, UND_MAC, GW_UND, [0; 6], HOST1),
        );
        f.resize(60, 0);
        f
    };

    let config = config(&dir, &prefix, &[("und0", "172.168.0.11")]);
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    let und_out_path = dir.path("und-out.pcap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !read_pcap(&und_out_path).contains(&encapsulated)
        && std::time::Instant::now() < deadline
        && daemon.running()
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = daemon.terminate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let und_out = read_pcap(&und_out_path);
    assert!(
        und_out.contains(&encapsulated),
        "the held frame left with host 1's MAC: {und_out:02x?}"
    );
    for f in und_out.iter().filter(|f| **f != encapsulated) {
        assert_eq!(f, &request, "anything else is the broadcast request");
    }
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["resolver"]["learned"], 1, "{stats}");
    let host1 = stats["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["port"] == "und0" && n["ip"] == "172.168.0.11")
        .unwrap_or_else(|| panic!("host 1 in the neighbour table: {stats}"));
    assert_eq!(host1["mac"], "02:00:00:00:0b:0b", "{host1}");
    assert_eq!(host1["static"], false, "{host1}");
    assert_eq!(stats["workers"][0]["drops"]["no_neighbour"], 0);
}

/// A TCP segment with `flags` ("S" or "SA").
fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src.0, dst.0, 64).tcp(src.1, dst.1, 1000, 64240);
    b = b.syn();
    if flags == "SA" {
        b = b.ack(1001);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// (source, destination, ports, SYN, ACK) of a TCP/IPv4 packet, after
/// checking its IPv4 and TCP checksums with etherparse.
type Seg = ([u8; 4], u16, [u8; 4], u16, bool, bool);

fn segment(ip: &[u8]) -> Seg {
    let s = etherparse::SlicedPacket::from_ip(ip).unwrap();
    let Some(etherparse::NetSlice::Ipv4(v4)) = s.net else {
        panic!("not IPv4")
    };
    let h = v4.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
    let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
        panic!("not TCP")
    };
    let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
    assert_eq!(t.checksum(), want, "TCP checksum");
    (
        h.source,
        t.source_port(),
        h.destination,
        t.destination_port(),
        t.syn(),
        t.ack(),
    )
}

/// The reference scenario's NAT and firewall, as issue 4 lists them: who
/// may open what, and what the other side sees.
#[test]
fn elastic_ips_and_firewall_rules_of_the_reference_scenario() {
    let dir = Scratch::new("golden-nat");
    let prefix = format!("tgw-test-golden-nat-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    let from_client = |dst: ([u8; 4], u16), sport: u16| {
        eth(
            PUB_MAC,
            CLIENT_MAC,
            EtherType::IPV4,
            &tcp((CLIENT, sport), dst, "S"),
        )
    };
    // The worker polls pub0 before und0, so the client's SYNs are through
    // before the tenants' frames are read.
    write_pcap(
        &dir.path("pub-in.pcap"),
        &[
            from_client((EIP1, 22), 40001), // t1 allows 22 in
            from_client((EIP1, 23), 40002), // ... and not 23
            from_client((EIP2, 23), 40003), // t2 allows 23 in
            from_client((EIP2, 22), 40004), // ... and not 22
        ],
    );
    let from_vm = |key: u32, host: ([u8; 4], [u8; 6]), vm_mac, t_mac, seg: &[u8]| {
        gre(
            UND_MAC,
            host.1,
            host.0,
            GW_UND,
            7,
            false,
            key,
            0x6558,
            &eth(t_mac, vm_mac, EtherType::IPV4, seg),
        )
    };
    let t1 = |seg: &[u8]| from_vm(1000, (HOST1, HOST1_MAC), VM1_MAC, T1_MAC, seg);
    let t2 = |seg: &[u8]| from_vm(2000, (HOST2, HOST2_MAC), VM2_MAC, T2_MAC, seg);
    write_pcap(
        &dir.path("und-in.pcap"),
        &[
            t1(&tcp((VM, 22), (CLIENT, 40001), "SA")), // the answer
            t1(&tcp((VM, 50001), (CLIENT, 22), "S")),  // t1 may not open 22 out
            t1(&tcp((VM, 50002), (CLIENT, 23), "S")),  // ... but 23
            t2(&tcp((VM, 50003), (CLIENT, 23), "S")),  // t2 may not open 23 out
            t2(&tcp((VM, 50004), (CLIENT, 22), "S")),  // ... but 22
        ],
    );

    let config = config(&dir, &prefix, &[]);
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    wait_for_frames(&mut daemon, &dir.path("pub-out.pcap"), 3);
    wait_for_frames(&mut daemon, &dir.path("und-out.pcap"), 2);
    // Anything more would come within the next bursts.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = daemon.terminate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut into_tunnels: Vec<_> = read_pcap(&dir.path("und-out.pcap"))
        .iter()
        .map(|f| {
            let (_, rest) = Ethernet2Header::from_slice(f).unwrap();
            let (outer, gre_and_inner) = Ipv4Header::from_slice(rest).unwrap();
            let key = u32::from_be_bytes(gre_and_inner[4..8].try_into().unwrap());
            let (_, inner_ip) = Ethernet2Header::from_slice(&gre_and_inner[8..]).unwrap();
            (outer.destination, key, segment(inner_ip))
        })
        .collect();
    into_tunnels.sort();
    assert_eq!(
        into_tunnels,
        vec![
            (HOST1, 1000, (CLIENT, 40001, VM, 22, true, false)),
            (HOST2, 2000, (CLIENT, 40003, VM, 23, true, false)),
        ],
        "the client's allowed SYNs reach 10.0.0.7 in the right tenant, and only those"
    );
    let mut to_client: Vec<_> = read_pcap(&dir.path("pub-out.pcap"))
        .iter()
        .map(|f| segment(&f[14..]))
        .collect();
    to_client.sort();
    assert_eq!(
        to_client,
        vec![
            (EIP1, 22, CLIENT, 40001, true, true),
            (EIP1, 50002, CLIENT, 23, true, false),
            (EIP2, 50004, CLIENT, 22, true, false),
        ],
        "answers and allowed SYNs leave from the elastic IPs, never from 10.0.0.7"
    );

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let w = &stats["workers"][0];
    assert_eq!(w["drops"]["firewall"], 4, "{w}");
    let flows = |tenant: &str, rule: &str| {
        stats["firewall"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tenant"] == tenant && r["rule"] == rule)
            .map(|r| r["flows"].clone())
    };
    assert_eq!(
        flows("t1", "default in"),
        Some(1.into()),
        "{}",
        stats["firewall"]
    );
    assert_eq!(flows("t2", "default in"), Some(1.into()));
    assert_eq!(w["tenants"]["t1"]["flows_created"], 2);
    assert_eq!(w["tenants"]["t2"]["flows_created"], 2);
}

/// The fragment of IPv4 `datagram` (no options) with `len` payload bytes
/// from `offset` (a multiple of 8), MF as `more`.
fn fragment(datagram: &[u8], offset: usize, len: usize, more: bool) -> Vec<u8> {
    let (h, payload) = Ipv4Header::from_slice(datagram).unwrap();
    let part = &payload[offset..(offset + len).min(payload.len())];
    let mut fh = h.clone();
    fh.more_fragments = more;
    fh.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
    fh.set_payload_len(part.len()).unwrap();
    fh.header_checksum = fh.calc_header_checksum();
    let mut out = Vec::new();
    fh.write(&mut out).unwrap();
    out.extend_from_slice(part);
    out
}

/// An echo request from the client to elastic IP 1 with `len` bytes of
/// payload, DF clear and identification `ident`: one to cut in fragments.
fn unfragmented_ping(ident: u16, len: usize) -> Vec<u8> {
    let mut ping = Vec::new();
    PacketBuilder::ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_request(9, 1)
        .write(&mut ping, &vec![0x5a; len])
        .unwrap();
    let (mut h, _) = Ipv4Header::from_slice(&ping).unwrap();
    h.dont_fragment = false;
    h.identification = ident;
    h.header_checksum = h.calc_header_checksum();
    let mut head = Vec::new();
    h.write(&mut head).unwrap();
    ping[..20].copy_from_slice(&head);
    ping
}

/// Issue 9, defect 13, through the daemon: a 3000-byte ping without DF,
/// in the two 1500-byte fragments a client's stack sends, the later one
/// first. tgw parks the later fragment until the first went through,
/// and cuts both (each too big for the 1458-byte tunnel) on the control
/// plane; four pieces reach host 1 that put together are the ping,
/// translated to 10.0.0.7.
#[test]
fn a_big_ping_in_fragments_out_of_order_is_cut_and_tunnelled() {
    big_ping_cut_and_tunnelled(false);
}

/// The same into a tunnel with GRE checksums (t1's `gre_checksum`, as
/// Linux's `csum`, whose host drops a piece whose checksum is wrong):
/// each piece has its own, over its own payload (RFC 2784 §2.1). The
/// control plane once copied the whole datagram's into every piece.
#[test]
fn pieces_cut_for_a_tunnel_with_gre_checksums_have_their_own() {
    big_ping_cut_and_tunnelled(true);
}

fn big_ping_cut_and_tunnelled(gre_checksum: bool) {
    let dir = Scratch::new(&format!("golden-fragments-{gre_checksum}"));
    let prefix = format!("tgw-test-golden-frag-{gre_checksum}-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    let ping = unfragmented_ping(0x4242, 2972);
    let first = fragment(&ping, 0, 1480, true);
    let last = fragment(&ping, 1480, 1500, false);
    let from_client = |ip: &[u8]| eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, ip);
    write_pcap(
        &dir.path("pub-in.pcap"),
        &[from_client(&last), from_client(&first)],
    );
    write_pcap(&dir.path("und-in.pcap"), &[]);

    let config = config(&dir, &prefix, &[]);
    if gre_checksum {
        let text = std::fs::read_to_string(&config).unwrap();
        let t1 = "key = 1000\nencap = \"gretap\"\n";
        assert!(text.contains(t1), "reference.toml changed shape");
        let text = text.replacen(t1, &format!("{t1}gre_checksum = true\n"), 1);
        std::fs::write(&config, text).unwrap();
    }
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    wait_for_frames(&mut daemon, &dir.path("und-out.pcap"), 4);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = daemon.terminate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut pieces: Vec<(usize, Vec<u8>)> = Vec::new();
    for f in read_pcap(&dir.path("und-out.pcap")) {
        assert!(
            f.len() <= 14 + 1500,
            "a piece fits the underlay: {}",
            f.len()
        );
        let (e, rest) = Ethernet2Header::from_slice(&f).unwrap();
        let (outer, gre_and_inner) = Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(
            (e.destination, outer.destination, outer.header_checksum),
            (HOST1_MAC, HOST1, outer.calc_header_checksum())
        );
        assert_eq!(usize::from(outer.total_len), rest.len());
        let inner_at = if gre_checksum {
            assert_eq!(gre_and_inner[..4], [0xa0, 0, 0x65, 0x58]);
            assert_eq!(gre_and_inner[6..12], [0, 0, 0, 0, 0x03, 0xe8]);
            assert_eq!(checksum(gre_and_inner), 0, "the piece's GRE checksum");
            12
        } else {
            assert_eq!(gre_and_inner[..8], [0x20, 0, 0x65, 0x58, 0, 0, 0x03, 0xe8]);
            8
        };
        let (inner_eth, inner) = Ethernet2Header::from_slice(&gre_and_inner[inner_at..]).unwrap();
        assert_eq!(inner_eth.destination, VM1_MAC);
        let (ih, data) = Ipv4Header::from_slice(inner).unwrap();
        assert_eq!(ih.header_checksum, ih.calc_header_checksum());
        assert_eq!(
            (
                ih.source,
                ih.destination,
                ih.time_to_live,
                ih.identification
            ),
            (CLIENT, VM, 63, 0x4242)
        );
        let offset = usize::from(ih.fragment_offset.value()) * 8;
        assert_eq!(ih.more_fragments, offset + data.len() < 2980);
        pieces.push((offset, data.to_vec()));
    }
    pieces.sort();
    assert_eq!(pieces.len(), 4, "each fragment cut in two");
    let payload: Vec<u8> = pieces.iter().flat_map(|(_, d)| d.clone()).collect();
    let mut at = 0;
    for (offset, d) in &pieces {
        assert_eq!(*offset, at, "the pieces cover the datagram once");
        at += d.len();
    }
    assert_eq!(
        payload,
        ping[20..],
        "the echo request whole, ICMP untouched"
    );

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let w = &stats["workers"][0];
    assert_eq!(w["fragments_parked"], 1, "{w}");
    assert_eq!(w["fragments_released"], 1, "{w}");
    assert_eq!(w["punted_to_fragment"], 2, "{w}");
    assert_eq!(stats["resolver"]["fragmented"], 2, "{}", stats["resolver"]);
    assert_eq!(stats["resolver"]["fragments"], 4);
}

/// Issue 10 through the daemon: RFC 1812 §5.3.7 and §5.3.8 (a ping to
/// EIP1 from 127.0.0.1, and one "from" EIP2, which only tgw itself may
/// send from) and RFC 1858 §3.2 (a fragment overlapping the first
/// fragment's bytes, which condemns its datagram). Only the first
/// fragment and a plain ping from the client reach host 1; the rest is
/// dropped and counted by reason.
#[test]
fn martians_spoofed_sources_and_overlapping_fragments_are_dropped_by_reason() {
    let dir = Scratch::new("golden-martians");
    let prefix = format!("tgw-test-golden-martian-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    let ping = unfragmented_ping(0x4343, 192);
    let first = fragment(&ping, 0, 96, true);
    let overlapping = fragment(&ping, 88, 48, true);
    let rest = fragment(&ping, 96, 104, false);
    let from_client = |ip: &[u8]| eth(PUB_MAC, CLIENT_MAC, EtherType::IPV4, ip);
    write_pcap(
        &dir.path("pub-in.pcap"),
        &[
            from_client(&echo([127, 0, 0, 1], EIP1, 64, false)),
            from_client(&echo(EIP2, EIP1, 64, false)),
            from_client(&first),
            from_client(&overlapping),
            from_client(&rest),
            from_client(&echo(CLIENT, EIP1, 64, false)),
        ],
    );
    write_pcap(&dir.path("und-in.pcap"), &[]);

    let config = config(&dir, &prefix, &[]);
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    wait_for_frames(&mut daemon, &dir.path("und-out.pcap"), 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = daemon.terminate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sent = read_pcap(&dir.path("und-out.pcap"));
    assert_eq!(sent.len(), 2, "the first fragment and the plain ping");
    for f in &sent {
        let (_, rest) = Ethernet2Header::from_slice(f).unwrap();
        let (outer, gre_and_inner) = Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(outer.destination, HOST1);
        let (_, inner) = Ethernet2Header::from_slice(&gre_and_inner[8..]).unwrap();
        let (ih, _) = Ipv4Header::from_slice(inner).unwrap();
        assert_eq!((ih.source, ih.destination), (CLIENT, VM));
    }

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let drops = &stats["workers"][0]["drops"];
    assert_eq!(drops["martian_source"], 1, "{drops}");
    assert_eq!(drops["spoofed_own_address"], 1, "{drops}");
    assert_eq!(drops["fragment_overlap"], 2, "{drops}");
}

/// Everything that can leave the pipeline in one burst: the burst's own
/// drops, and then every fragment parked before it. Six tenants' hosts
/// send the two later pieces of four datagrams each, with TTL 1 (48
/// parked, a tenant's most), then one burst brings the 24 first pieces
/// and 8 frames of no known ethertype. The firsts pass and release all
/// 48, which then expire on their TTL: 56 drops in one burst, which the
/// worker must count and free, and go on. It once set drops aside in a
/// buffer of one burst (32) and panicked on the 33rd: a few tenants'
/// hosts could stop the gateway (and 48 parked fragments expiring in
/// one drain did the same).
#[test]
fn fragments_released_into_drops_beyond_a_burst_are_counted() {
    let dir = Scratch::new("golden-release");
    let prefix = format!("tgw-test-golden-release-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    // A datagram from the VM to the client in three pieces, the later two
    // with TTL 1.
    let pieces = |id| {
        let mut d = Vec::new();
        PacketBuilder::ipv4(VM, CLIENT, 64)
            .udp(40000, 5001)
            .write(&mut d, &[0x48; 1000])
            .unwrap();
        let (mut h, _) = Ipv4Header::from_slice(&d).unwrap();
        h.dont_fragment = false;
        h.identification = id;
        h.header_checksum = h.calc_header_checksum();
        h.write(&mut &mut d[..20]).unwrap();
        let ttl1 = |p: Vec<u8>| {
            let (mut h, _) = Ipv4Header::from_slice(&p).unwrap();
            h.time_to_live = 1;
            h.header_checksum = h.calc_header_checksum();
            let mut p = p;
            h.write(&mut &mut p[..20]).unwrap();
            p
        };
        (
            fragment(&d, 0, 336, true),
            [
                ttl1(fragment(&d, 336, 336, true)),
                ttl1(fragment(&d, 672, 336, false)),
            ],
        )
    };
    // reference.toml's two tenants and four more of the same shape, each
    // with an elastic IP for 10.0.0.7 (without, its frames find no NAT)
    // and a route back to it (without, no flow can be made).
    let mut extra = String::new();
    let (mut later, mut firsts) = (Vec::new(), Vec::new());
    for t in 1..=6u8 {
        let host = [172, 168, 0, 10 + t];
        let host_mac = [2, 0, 0, 0, 0x0a + t, 0x0a + t];
        let tenant_mac = [2, 0, 0, 0, 0x10 * t, 0];
        if t > 2 {
            extra.push_str(&format!(
                "\n[[tenant]]\nname = \"t{t}\"\nkey = {t}000\nencap = \"gretap\"\n\
                 hosts = [\"172.168.0.{}\"]\nprefixes = [\"10.0.0.0/24\"]\n\
                 mac = \"02:00:00:00:{t}0:00\"\n\
                 routes = [\n  {{ prefix = \"10.0.0.0/24\", to = \"172.168.0.{}\" }},\n  \
                 {{ prefix = \"0.0.0.0/0\", to = \"public\" }},\n]\n\n\
                 [[eip]]\npublic = \"2.2.2.{}\"\ntenant = \"t{t}\"\nprivate = \"10.0.0.7\"\n",
                10 + t,
                10 + t,
                10 + t
            ));
        }
        let key = u32::from(t) * 1000;
        let tunnel = |ip: &[u8], id| {
            let inner = eth(tenant_mac, VM1_MAC, EtherType::IPV4, ip);
            gre(
                UND_MAC, host_mac, host, GW_UND, id, true, key, 0x6558, &inner,
            )
        };
        for d in 0..4 {
            let id = 0x4800 + u16::from(t) * 16 + d;
            let (first, rest) = pieces(id);
            firsts.push(tunnel(&first, id));
            later.extend(rest.iter().map(|p| tunnel(p, id)));
        }
    }
    // Bursts of 32: the 48 later pieces and 16 fillers, then the firsts
    // and 8 fillers in one burst.
    let filler = eth(UND_MAC, HOST1_MAC, EtherType(0x88b5), &[0; 46]);
    let mut underlay = later;
    underlay.extend(std::iter::repeat_n(filler.clone(), 16));
    underlay.extend(firsts);
    underlay.extend(std::iter::repeat_n(filler, 8));
    assert_eq!(underlay.len(), 96);
    write_pcap(&dir.path("pub-in.pcap"), &[]);
    write_pcap(&dir.path("und-in.pcap"), &underlay);

    let config = config(&dir, &prefix, &[]);
    let text = std::fs::read_to_string(&config).unwrap() + &extra;
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    wait_for_frames(&mut daemon, &dir.path("pub-out.pcap"), 24);
    if let Some(out) = daemon.wait_exit(std::time::Duration::ZERO) {
        panic!("tgw stopped: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = daemon.terminate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let w = &stats["workers"][0];
    let sent = read_pcap(&dir.path("pub-out.pcap"));
    assert_eq!(sent.len(), 24, "the first pieces: {w}");
    assert_eq!(w["fragments_parked"], 48, "{w}");
    assert_eq!(w["fragments_released"], 48, "{w}");
    let drops = &w["drops"];
    assert_eq!(drops["ttl_exceeded"], 48, "{drops}");
    assert_eq!(drops["ethertype"], 24, "{drops}");
}
