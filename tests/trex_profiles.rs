//! The TRex profiles of perf/trex through the real daemon: each profile's
//! scapy packet and field-engine variables, expanded over a few hundred
//! packets by perf/trex/pcap_from_profile.py (Debian's python3-scapy, as
//! scripts/setup installs it), go into tgw on net_pcap with the lab config
//! (perf/trex/tgw_lab.py, the generator of perf/trex/tgw-lab.toml); what
//! comes out is parsed here with etherparse (GRE by hand, from RFC 2784/
//! 2890) and checked frame by frame against the lab's address plan, which
//! is written out again below: keys, tunnel hosts, elastic IP and pools.
//! A profile that sends traffic the plan does not have fails: tgw drops
//! it, or it comes out to the wrong place.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{read_pcap, write_pcap, Daemon, PrefixFiles, Scratch};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

const PYTHON: &str = "/usr/bin/python3";

// The lab plan (perf/trex/tgw_lab.py), written again so that the test
// does not take the profiles' word for it.
const KEY_BASE: u32 = 1000;
const CLIENT: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 7);
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0xee, 1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0xee, 2];
const VM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const VM_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 7];
const GW_PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_UND: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const GW_UND_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const EIP: Ipv4Addr = Ipv4Addr::new(4, 4, 4, 200);

fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

fn public(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(2, 2, (i / 250) as u8, (1 + i % 250) as u8)
}

fn pool(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(3, 3, (i / 250) as u8, (1 + i % 250) as u8)
}

fn tenant_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [2, 0x74, b[0], b[1], b[2], b[3]]
}

/// The tenant whose public address is `a`, if the plan has one.
fn tenant_of_public(a: Ipv4Addr, tenants: u32) -> Option<u32> {
    let [p0, p1, third, last] = a.octets();
    let i = u32::from(third) * 250 + u32::from(last).checked_sub(1)?;
    ((p0, p1) == (2, 2) && (1..=250).contains(&last) && i < tenants).then_some(i)
}

/// The tenant whose key is `key`; a key the plan does not have fails.
fn tenant_of_key(key: u32, tenants: u32) -> u32 {
    key.checked_sub(KEY_BASE)
        .filter(|&i| i < tenants)
        .unwrap_or_else(|| panic!("key {key} is no tenant's"))
}

fn trex_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("perf/trex")
}

fn python(args: &[&str]) -> String {
    let out = Command::new(PYTHON)
        .args(args)
        .output()
        .expect("/usr/bin/python3 (scripts/setup installs it, with python3-scapy)");
    assert!(
        out.status.success(),
        "python3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One frame as the test reads it: Ethernet, IPv4 and what follows.
struct Ip<'a> {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    proto: u8,
    payload: &'a [u8],
    /// UDP's or TCP's (whose checksum is checked).
    ports: Option<(u16, u16)>,
    syn: bool,
}

fn ip(frame: &[u8]) -> Ip<'_> {
    let s = SlicedPacket::from_ethernet(frame).expect("an Ethernet frame");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = s.link else {
        panic!("not Ethernet II")
    };
    let Some(NetSlice::Ipv4(v4)) = s.net else {
        panic!("not IPv4: {frame:02x?}")
    };
    let h = v4.header();
    assert_eq!(
        h.to_header().calc_header_checksum(),
        h.header_checksum(),
        "IPv4 checksum"
    );
    let (ports, syn) = match s.transport {
        Some(TransportSlice::Udp(u)) => (Some((u.source_port(), u.destination_port())), false),
        Some(TransportSlice::Tcp(t)) => {
            let sum = t.calc_checksum_ipv4(h.source(), h.destination());
            assert_eq!(sum, Ok(t.checksum()), "TCP checksum");
            (Some((t.source_port(), t.destination_port())), t.syn())
        }
        _ => (None, false),
    };
    Ip {
        dst_mac: eth.destination(),
        src_mac: eth.source(),
        src: h.source_addr(),
        dst: h.destination_addr(),
        ttl: h.ttl(),
        proto: h.protocol().0,
        payload: v4.payload().payload,
        ports,
        syn,
    }
}

/// A GRE packet (RFC 2784 with the key of RFC 2890, nothing else) with
/// Ethernet inside: its key and the inner frame.
fn gre(outer: &Ip<'_>) -> (u32, Vec<u8>) {
    assert_eq!(outer.proto, 47, "not GRE");
    let g = outer.payload;
    assert_eq!(&g[..4], &[0x20, 0, 0x65, 0x58], "GRE with a key, gretap");
    (
        u32::from_be_bytes(g[4..8].try_into().unwrap()),
        g[8..].to_vec(),
    )
}

static ONE_TGW: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What came out of tgw for one profile's packets.
struct Run {
    sent: Vec<Vec<u8>>,
    out: Vec<Vec<u8>>,
}

/// Writes `packets` of `profile` (with `tunables`) to a pcap, runs tgw
/// over it with the lab config (`tgw_lab.py` with `lab`: `--tenants N`,
/// `--l2fwd`), and returns the frames in and those out of the other
/// port, after checking that tgw dropped nothing and sent everything.
fn run(profile: &str, packets: usize, tunables: &[&str], lab: &[&str]) -> Run {
    let r = run_from(&trex_dir(), profile, packets, tunables, lab);
    let dropped: Vec<_> = r.drops.iter().filter(|(_, &n)| n != 0).collect();
    assert!(dropped.is_empty(), "{profile}: tgw dropped {dropped:?}");
    assert!(
        r.back.is_empty(),
        "{profile}: nothing goes back out of the side it came in"
    );
    assert_eq!(
        r.out.len(),
        r.sent.len(),
        "{profile}: every packet comes out"
    );
    Run {
        sent: r.sent,
        out: r.out,
    }
}

/// What tgw did with a profile's packets, unchecked.
struct Outcome {
    sent: Vec<Vec<u8>>,
    /// Out of the other port, and back out of the port they came in by.
    out: Vec<Vec<u8>>,
    back: Vec<Vec<u8>>,
    drops: HashMap<String, u64>,
}

/// [`run`] with the profiles (and tgw_lab.py) taken from `trex`.
fn run_from(
    trex: &Path,
    profile: &str,
    packets: usize,
    tunables: &[&str],
    lab: &[&str],
) -> Outcome {
    // One tgw at a time: each busy-polls lcore 1's CPU.
    let _one = ONE_TGW.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new(&format!("trex-{profile}"));
    let prefix = format!("tgw-test-trex-{profile}-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());

    let dev = |i: usize, name: &str| {
        format!(
            "net_pcap{i},rx_pcap={},tx_pcap={}",
            dir.path(&format!("{name}-in.pcap")).display(),
            dir.path(&format!("{name}-out.pcap")).display()
        )
    };
    let eal = format!(
        "main_lcore = 0\nfile_prefix = \"{prefix}\"\nhugepages = false\nin_memory = true\nmemory_mb = 512\n"
    );
    let lab_py = trex.join("tgw_lab.py");
    let mut args = vec![
        lab_py.to_str().unwrap().to_owned(),
        "--pub".into(),
        dev(0, "pub"),
        "--und".into(),
        dev(1, "und"),
        "--eal".into(),
        eal,
    ];
    args.extend(lab.iter().map(|a| a.to_string()));
    let config = python(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let config_path = dir.path("tgw-lab.toml");
    std::fs::write(&config_path, config).unwrap();

    let input = dir.path("in.pcap");
    let (driver, file) = (
        trex.join("pcap_from_profile.py"),
        trex.join(format!("{profile}.py")),
    );
    let mut args = vec![
        driver.to_str().unwrap().to_owned(),
        file.to_str().unwrap().to_owned(),
        input.to_str().unwrap().to_owned(),
        packets.to_string(),
    ];
    args.extend(tunables.iter().map(|t| t.to_string()));
    let said: serde_json::Value = serde_json::from_str(&python(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .unwrap();
    let (from, to) = match said["port"].as_str() {
        Some("pub") => ("pub", "und"),
        Some("und") => ("und", "pub"),
        other => panic!("{profile} names no port: {other:?}"),
    };
    std::fs::rename(&input, dir.path(&format!("{from}-in.pcap"))).unwrap();
    write_pcap(&dir.path(&format!("{to}-in.pcap")), &[]);
    let sent = read_pcap(&dir.path(&format!("{from}-in.pcap")));
    assert_eq!(sent.len(), packets);

    let stats = dir.path("stats.json");
    let log = dir.path("tgw.log");
    let mut daemon = Daemon::start_to_files(
        &config_path,
        &["--stats-json", stats.to_str().unwrap()],
        &dir.path("tgw.out"),
        &log,
    );
    let out_path = dir.path(&format!("{to}-out.pcap"));
    settle(&mut daemon, &log, &out_path, packets);
    let done = daemon.terminate();
    assert!(
        done.status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap();
    let drops = stats["workers"][0]["drops"]
        .as_object()
        .expect("the drop counters")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(u64::MAX)))
        .collect();
    Outcome {
        sent,
        out: read_pcap(&out_path),
        back: read_pcap(&dir.path(&format!("{from}-out.pcap"))),
        drops,
    }
}

/// Waits (at most 30 s) until `out` holds `n` frames, or tgw has been
/// forwarding for a while and `out` stopped growing: net_pcap hands the
/// whole input pcap over at once, so a profile whose packets tgw drops
/// is seen in a second, not at the timeout.
fn settle(daemon: &mut Daemon, log: &Path, out: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut count, mut since) = (0, Instant::now());
    while Instant::now() < deadline && daemon.running() {
        let now = read_pcap(out).len();
        if now >= n {
            return;
        }
        let forwarding = std::fs::read_to_string(log).is_ok_and(|l| l.contains("forwarding;"));
        if now != count || !forwarding {
            (count, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(1500) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The inner frame of a packet tgw sent into tenant `i`'s tunnel: outer
/// headers toward the tenant's host with its key, inner Ethernet from the
/// tenant's gateway MAC to the VM.
fn into_tunnel(frame: &[u8], i: u32) -> Vec<u8> {
    let outer = ip(frame);
    assert_eq!((outer.dst_mac, outer.src_mac), (HOST_MAC, GW_UND_MAC));
    assert_eq!(
        (outer.src, outer.dst),
        (GW_UND, host(i)),
        "tenant {i}'s host"
    );
    let (key, inner) = gre(&outer);
    assert_eq!(key, KEY_BASE + i, "tenant {i}'s key");
    let v = ip(&inner);
    assert_eq!((v.dst_mac, v.src_mac), (VM_MAC, tenant_mac(i)));
    inner
}

#[test]
fn encap_reaches_every_tenant_through_its_key_and_host() {
    let tenants = 500;
    let r = run("encap", 1000, &["--tenants", "500"], &["--tenants", "500"]);
    let mut seen = HashSet::new();
    for (sent, out) in r.sent.iter().zip(&r.out) {
        let s = ip(sent);
        assert_eq!((s.src, s.dst_mac), (CLIENT, GW_PUB_MAC));
        let i = tenant_of_public(s.dst, tenants)
            .unwrap_or_else(|| panic!("{} is no tenant's public address", s.dst));
        let inner = into_tunnel(out, i);
        let v = ip(&inner);
        assert_eq!((v.src, v.dst, v.ttl), (CLIENT, public(i), 63));
        assert_eq!(v.ports, s.ports);
        seen.insert(i);
    }
    assert_eq!(seen.len() as u32, tenants, "every tenant");
}

/// Each tenant's host sends with its key; out of the public side comes
/// the inner packet, from the tenant's public address. 500 tenants, past
/// one row of 250: the field engine's second counter (the third octet of
/// hosts and public addresses, `next_var` of the first) steps too.
#[test]
fn decap_leaves_from_every_tenants_public_address() {
    let tenants = 500;
    let r = run("decap", 1000, &["--tenants", "500"], &["--tenants", "500"]);
    let mut seen = HashSet::new();
    for (sent, out) in r.sent.iter().zip(&r.out) {
        let s = ip(sent);
        let (key, inner) = gre(&s);
        let i = tenant_of_key(key, tenants);
        assert_eq!(s.src, host(i), "key {key} from its tenant's host");
        let o = ip(out);
        assert_eq!((o.dst_mac, o.src_mac), (CLIENT_MAC, GW_PUB_MAC));
        assert_eq!((o.src, o.dst, o.ttl), (public(i), CLIENT, 63));
        assert_eq!(o.ports, ip(&inner).ports);
        seen.insert(i);
    }
    assert_eq!(seen.len() as u32, tenants, "every tenant");
}

/// Clients to the elastic IP: DNAT to tenant 0's 10.0.0.7, into its
/// tunnel; the client's address and port kept.
fn check_to_eip(r: &Run) -> HashSet<(Ipv4Addr, u16)> {
    let mut clients = HashSet::new();
    for (sent, out) in r.sent.iter().zip(&r.out) {
        let s = ip(sent);
        assert_eq!(s.dst, EIP);
        assert_eq!(s.ports.map(|p| p.1), Some(5001));
        let [a, ..] = s.src.octets();
        assert_eq!(a, 1, "clients in 1.0.0.0/8: {}", s.src);
        let inner = into_tunnel(out, 0);
        let v = ip(&inner);
        assert_eq!((v.src, v.dst, v.ttl), (s.src, VM, 63));
        assert_eq!(v.ports, s.ports);
        clients.insert((s.src, s.ports.unwrap().0));
    }
    clients
}

#[test]
fn nat_clients_reach_the_elastic_ips_vm() {
    let r = run("nat", 600, &["--flows", "300"], &[]);
    let clients = check_to_eip(&r);
    assert_eq!(clients.len(), 300, "one flow per client");
}

#[test]
fn new_flows_open_a_flow_nearly_every_packet() {
    let r = run("new_flows", 500, &[], &[]);
    let clients = check_to_eip(&r);
    assert!(clients.len() >= 495, "{} distinct clients", clients.len());
    assert!(clients.iter().all(|&(_, port)| port >= 1024));
    let ports: HashSet<_> = clients.iter().map(|&(_, port)| port).collect();
    assert!(ports.len() >= 450, "random source ports: {}", ports.len());
}

#[test]
fn snat_leaves_from_each_tenants_pool_or_the_elastic_ip() {
    snat("udp");
}

/// TCP SYNs, their checksums right in (the field engine keeps them so)
/// and out (tgw's NAT fixes them).
#[test]
fn snat_tcp_syns_leave_from_each_tenants_pool_or_the_elastic_ip() {
    snat("tcp");
}

fn snat(proto: &str) {
    // 7 VMs a tenant: packet 1000 is tenant 0's 10.0.0.7.
    let tenants = 500;
    let r = run(
        "snat",
        1500,
        &["--tenants", "500", "--vms", "7", "--proto", proto],
        &["--tenants", "500"],
    );
    let mut mappings: HashMap<(u32, Ipv4Addr, u16), (Ipv4Addr, u16)> = HashMap::new();
    let mut by_eip = 0;
    for (sent, out) in r.sent.iter().zip(&r.out) {
        let s = ip(sent);
        let (key, inner) = gre(&s);
        let i = tenant_of_key(key, tenants);
        assert_eq!(s.src, host(i), "key {key} from its tenant's host");
        let v = ip(&inner);
        let o = ip(out);
        assert_eq!((o.dst_mac, o.dst, o.ttl), (CLIENT_MAC, CLIENT, 63));
        assert_eq!((v.syn, o.syn), (proto == "tcp", proto == "tcp"));
        let (sport, dport) = v.ports.unwrap();
        let (out_port, out_dport) = o.ports.unwrap();
        assert_eq!(dport, out_dport);
        if i == 0 && v.src == VM {
            assert_eq!(
                (o.src, out_port),
                (EIP, sport),
                "the elastic IP keeps the port"
            );
            by_eip += 1;
        } else {
            assert_eq!(o.src, pool(i), "tenant {i}'s pool");
            assert!(out_port >= 1024);
        }
        // Endpoint-independent: one private address and port, one
        // public address and port.
        let was = mappings.insert((i, v.src, sport), (o.src, out_port));
        assert!(was.is_none() || was == Some((o.src, out_port)));
    }
    assert!(
        by_eip > 0,
        "tenant 0's 10.0.0.7 sent through its elastic IP"
    );
    let public: HashSet<_> = mappings.values().collect();
    assert_eq!(public.len(), mappings.len(), "no two mappings share a port");
}

/// The baseline through l2fwd: every frame out of the underlay port,
/// byte for byte but for the MACs (the underlay's peer, from tgw's port).
#[test]
fn udp_goes_through_l2fwd_with_only_the_macs_rewritten() {
    let r = run("udp", 300, &["--flows", "100"], &["--l2fwd"]);
    let mut ports = HashSet::new();
    for (sent, out) in r.sent.iter().zip(&r.out) {
        let s = ip(sent);
        assert_eq!((s.src, s.dst), (CLIENT, Ipv4Addr::new(2, 2, 2, 11)));
        assert_eq!(&out[..12], &[HOST_MAC, GW_UND_MAC].concat()[..]);
        assert_eq!(&out[12..], &sent[12..]);
        ports.insert(s.ports.unwrap().0);
    }
    assert_eq!(ports.len(), 100, "one flow per source port");
}

/// The checks catch a profile that sends the wrong traffic: decap.py
/// with every key one past its tenant's (from a copy of perf/trex) is
/// dropped, each packet, as a key from the wrong host.
#[test]
fn a_profile_with_the_wrong_keys_fails() {
    let dir = Scratch::new("trex-wrong");
    for f in ["tgw_lab.py", "pcap_from_profile.py", "decap.py"] {
        let text = std::fs::read_to_string(trex_dir().join(f)).unwrap();
        let text = if f == "decap.py" {
            let right = "\"GRE.key\", add=lab.KEY_BASE)";
            assert!(text.contains(right), "decap.py changed shape");
            text.replace(right, "\"GRE.key\", add=lab.KEY_BASE + 1)")
        } else {
            text
        };
        std::fs::write(dir.path(f), text).unwrap();
    }
    let r = run_from(&dir.0, "decap", 250, &[], &[]);
    assert!(r.out.is_empty(), "{} frames came out", r.out.len());
    // The last tenant's key + 1 is nobody's.
    assert_eq!(r.drops["gre_wrong_host"], 249, "{:?}", r.drops);
    assert_eq!(r.drops["gre_unknown_key"], 1, "{:?}", r.drops);
}

/// The lab's tenants may not send mail straight out: SYNs to TCP port 25
/// are all the firewall's, and nothing else drops them.
#[test]
fn snat_to_port_25_is_what_the_firewall_drops() {
    let r = run_from(
        &trex_dir(),
        "snat",
        500,
        &["--proto", "tcp", "--dport", "25"],
        &[],
    );
    assert!(r.out.is_empty() && r.back.is_empty(), "{} out", r.out.len());
    let dropped: HashMap<_, _> = r.drops.into_iter().filter(|(_, n)| *n != 0).collect();
    assert_eq!(dropped, HashMap::from([("firewall".to_owned(), 500)]));
}

/// perf/trex/tgw-lab.toml is what the generator writes, and tgw takes it.
#[test]
fn the_shipped_lab_config_is_the_generators_and_tgw_checks_it() {
    let shipped = trex_dir().join("tgw-lab.toml");
    let generated = python(&[trex_dir().join("tgw_lab.py").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&shipped).unwrap(),
        generated,
        "regenerate it: python3 perf/trex/tgw_lab.py > perf/trex/tgw-lab.toml"
    );
    let out = Command::new(common::TGW)
        .arg("--config")
        .arg(&shipped)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
