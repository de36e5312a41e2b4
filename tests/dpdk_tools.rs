//! DPDK's own tools on a running tgw (issue 12, docs/dpdk-tools.md):
//! `dpdk-telemetry.py` reads tgw's `/tgw/...` commands and DPDK's
//! `/ethdev/stats`, `dpdk-dumpcap` captures a port, `dpdk-proc-info
//! --stats` prints its counters, and each sees exactly the frames the
//! test sent.
//!
//! tgw runs in a network namespace the test made, its public port a
//! net_af_packet on a veth (a vdev that attaches in secondary processes
//! in 22.11, see docs/dpdk-tools.md) and its underlay a silent net_null.
//! The frames, built with etherparse, go in on the veth's other end
//! after dumpcap has attached. Needs root (namespaces) and hugepages
//! (secondary processes map the primary's memory from its hugepage
//! files); skips without them, saying why.

mod common;
#[path = "../perf/src/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::reference::{self, EIP1};
use common::{Daemon, PrefixFiles, Scratch, SEND, TGW};
use serde_json::{json, Value};

/// On the public port's subnet but nobody's: dropped.
const NOBODY: [u8; 4] = [1, 1, 1, 99];
/// Echo requests to t1 (one flow: one identifier), then frames to nobody.
const TO_T1: usize = 20;
const TO_NOBODY: usize = 3;

/// An echo request of the test's one flow (one identifier).
fn ping(dst: [u8; 4], seq: u16) -> Vec<u8> {
    reference::ping(dst, 0x7e1, seq)
}

/// examples/reference.toml with its ports on `devices` (public,
/// underlay), file prefix `prefix`, `eal` added to `[eal]`, a small pool
/// and the control socket in `dir`.
fn config(dir: &Scratch, prefix: &str, devices: [&str; 2], eal: &str) -> PathBuf {
    let mut edits = reference::edits(prefix, devices, eal);
    edits.extend([
        ("hugepages = false\n", String::new()),
        ("memory_mb = 256", "memory_mb = 128".to_owned()),
        ("mbufs = 32767", "mbufs = 8191".to_owned()),
    ]);
    reference::config(dir, &edits, &reference::control_socket(dir, "tgw.sock"))
}

/// Runs `dpdk-telemetry.py -f PREFIX` in `ns` with `cmds` on its stdin;
/// what each command answered, by command.
fn telemetry(net: &netns::Netns, ns: &str, prefix: &str, cmds: &[&str]) -> Vec<(String, Value)> {
    let script = format!(
        "printf '{}\\n' | dpdk-telemetry.py -f {prefix}",
        cmds.join("\\n")
    );
    let out = net.run_ok(ns, &["sh", "-c", &script]);
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let (cmd, answer) = v.as_object().unwrap().iter().next().unwrap();
            (cmd.clone(), answer.clone())
        })
        .collect()
}

/// One frame of a pcapng file.
#[derive(Debug, PartialEq)]
struct Captured {
    data: Vec<u8>,
    /// The direction in its `epb_flags` (1 inbound, 2 outbound, 0 not
    /// said).
    direction: u32,
}

/// The Enhanced Packet Blocks of a little-endian pcapng file, read by
/// hand from the format (draft-ietf-opsawg-pcapng, sections 3 and 4.3):
/// pcap-file 2.0 refuses DPDK 22.11's, whose option lists end without
/// `opt_endofopt` (rte_pcapng.c leaves it out; the format tells readers
/// to expect that).
fn read_pcapng(path: &Path) -> Vec<Captured> {
    let bytes = std::fs::read(path).expect("dumpcap wrote its file");
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0x0a0d_0d0a, "a Section Header Block first");
    assert_eq!(u32_at(8), 0x1a2b_3c4d, "little-endian");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let (kind, len) = (u32_at(at), u32_at(at + 4) as usize);
        assert!(
            len >= 12 && len % 4 == 0 && at + len <= bytes.len(),
            "block at {at}"
        );
        assert_eq!(
            u32_at(at + len - 4),
            len as u32,
            "block at {at} ends with its length"
        );
        if kind == 6 {
            // Interface, timestamp (2), captured and original lengths,
            // the frame padded to 32 bits, options.
            let captured = u32_at(at + 20) as usize;
            let data = bytes[at + 28..at + 28 + captured].to_vec();
            let mut opt = at + 28 + captured.div_ceil(4) * 4;
            let mut direction = 0;
            while opt + 4 <= at + len - 4 {
                let code = u16::from_le_bytes([bytes[opt], bytes[opt + 1]]);
                let olen = u16::from_le_bytes([bytes[opt + 2], bytes[opt + 3]]) as usize;
                if code == 0 {
                    break;
                }
                if code == 2 && olen == 4 {
                    direction = u32_at(opt + 4) & 3;
                }
                opt += 4 + olen.div_ceil(4) * 4;
            }
            out.push(Captured { data, direction });
        }
        at += len;
    }
    out
}

/// `RX-packets` and `RX-bytes` of `port` in `dpdk-proc-info --stats`.
fn proc_info_rx(text: &str, port: u16) -> Option<(u64, u64)> {
    let header = format!("NIC statistics for port {port} ");
    let section = &text[text.find(&header)?..];
    let line = section.lines().find(|l| l.contains("RX-packets:"))?;
    let field = |name: &str| -> Option<u64> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((field("RX-packets:")?, field("RX-bytes:")?))
}

fn hugepages() -> bool {
    if std::env::var("TGW_HUGEPAGES").as_deref() == Ok("1") {
        return true;
    }
    // Secondary processes map the primary's memory from its hugepage
    // files: without hugepages there is nothing to attach to.
    eprintln!("SKIP: no hugepages (TGW_HUGEPAGES!=1; run scripts/setup as root)");
    false
}

#[test]
fn telemetry_dumpcap_and_proc_info_see_the_frames_sent() {
    if !hugepages() {
        return;
    }
    let mut net = match netns::Netns::new("dpdktools") {
        Ok(net) => net,
        Err(netns::Unavailable(why)) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let ns = net.add("gw");
    // Nothing of the kernel's own on the wire (IPv6 neighbour discovery):
    // the counts are the test's frames and nothing else.
    net.run_ok(
        &ns,
        &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
    );
    net.veth(&ns, "pub0", &ns, "pubB");
    let dir = Scratch::new("dpdk-tools");
    let prefix = format!("tgw-test-dpdk-tools-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = config(
        &dir,
        &prefix,
        ["net_af_packet0,iface=pub0", "net_null1,no-rx=1"],
        "",
    );
    let tgw = net.spawn(&ns, "tgw", &[TGW, "--config", config.to_str().unwrap()]);
    net.wait_for_output(tgw, "forwarding", Duration::from_secs(30));
    assert!(
        net.stderr(tgw).contains("packet capture ready"),
        "{}",
        net.stderr(tgw)
    );

    // dumpcap attaches first; it says "Packets captured" once the
    // capture is on, and stops after the count.
    let sent: Vec<Vec<u8>> = (1..=TO_T1 as u16)
        .map(|seq| ping(EIP1, seq))
        .chain((1..=TO_NOBODY as u16).map(|seq| ping(NOBODY, seq)))
        .collect();
    let capture = dir.path("pub0.pcapng");
    let count = sent.len().to_string();
    let dumpcap = net.spawn(
        &ns,
        "dumpcap",
        &[
            "dpdk-dumpcap",
            "--file-prefix",
            &prefix,
            "-i",
            "net_af_packet0",
            // tgw keeps its ports promiscuous; without -p dumpcap turns
            // that off when it exits (docs/dpdk-tools.md).
            "-p",
            "-c",
            &count,
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    net.wait_for_output(dumpcap, "Packets captured", Duration::from_secs(30));
    let hex: Vec<String> = sent
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut args = vec!["python3", "-c", SEND, "pubB"];
    args.extend(hex.iter().map(String::as_str));
    net.run_ok(&ns, &args);

    // (b) dumpcap: every frame sent, in order, byte for byte.
    let stopped = net.wait(dumpcap, Duration::from_secs(20));
    assert!(stopped.status.success(), "dpdk-dumpcap: {}", stopped.stderr);
    let link = net.run_ok(&ns, &["ip", "link", "show", "pub0"]);
    assert!(link.contains("PROMISC"), "pub0 stays promiscuous: {link}");
    let inbound: Vec<Captured> = sent
        .iter()
        .map(|f| Captured {
            data: f.clone(),
            direction: 1,
        })
        .collect();
    assert_eq!(
        read_pcapng(&capture),
        inbound,
        "what dumpcap captured on pub0"
    );

    // (a) telemetry, once the worker has counted them all.
    let cmds = [
        "/tgw/workers",
        "/tgw/tenants",
        "/tgw/tenant,t1",
        "/tgw/ports",
        "/tgw/drops",
        "/ethdev/stats,0",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let answers = loop {
        let answers = telemetry(&net, &ns, &prefix, &cmds);
        let rx = answers
            .first()
            .map(|(_, w)| w["0"]["rx_packets"].clone())
            .unwrap_or_default();
        if rx == json!(sent.len()) || Instant::now() > deadline {
            break answers;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let names: Vec<&str> = answers.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        cmds.map(|c| c.split(',').next().unwrap()),
        "{answers:?}"
    );
    let answer = |i: usize| &answers[i].1;
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();

    let worker = &answer(0)["0"];
    assert_eq!(worker["rx_packets"], json!(sent.len()), "{worker}");
    assert_eq!(worker["rx_bytes"], json!(bytes), "{worker}");
    assert_eq!(
        worker["tx_packets"],
        json!(TO_T1),
        "into t1's tunnel: {worker}"
    );
    assert_eq!(worker["dropped"], json!(TO_NOBODY), "{worker}");
    assert_eq!(worker["lcore"], json!(1));

    let page = answer(1);
    assert_eq!(page["count"], json!(2));
    assert_eq!(page["tenants"]["0"]["name"], json!("t1"));
    assert_eq!(page["tenants"]["0"]["to_tunnel_packets"], json!(TO_T1));
    assert_eq!(page["tenants"]["1"]["name"], json!("t2"));
    assert_eq!(page["tenants"]["1"]["to_tunnel_packets"], json!(0));

    let t1 = answer(2);
    assert_eq!(t1["to_tunnel_packets"], json!(TO_T1), "{t1}");
    assert_eq!(t1["flows"]["icmp"]["opened"], json!(1), "{t1}");
    assert_eq!(t1["flows_live"], json!(1), "{t1}");

    let ports = answer(3);
    assert_eq!(ports["0"]["name"], json!("pub0"), "{ports}");
    assert_eq!(ports["1"]["tx_packets"], json!(TO_T1), "{ports}");

    let drops = answer(4);
    let dropped: Vec<_> = drops
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .collect();
    assert_eq!(dropped.len(), 1, "one reason: {dropped:?}");
    assert_eq!(dropped[0].1, &json!(TO_NOBODY), "{dropped:?}");

    let ethdev = answer(5);
    assert_eq!(ethdev["ipackets"], json!(sent.len()), "{ethdev}");
    assert_eq!(ethdev["ibytes"], json!(bytes), "{ethdev}");
    assert_eq!(ethdev["opackets"], json!(0), "{ethdev}");

    // (c) proc-info, another secondary process, prints the same.
    let out = net.run_ok(
        &ns,
        &[
            "dpdk-proc-info",
            "--file-prefix",
            &prefix,
            "--no-pci",
            "--",
            "--stats",
        ],
    );
    assert_eq!(
        proc_info_rx(&out, 0),
        Some((sent.len() as u64, bytes)),
        "dpdk-proc-info --stats:\n{out}"
    );

    // A capture without -p turns promiscuous mode off as it leaves; tgw
    // turns it on again within its next look (a second).
    let out = net.run_ok(
        &ns,
        &[
            "dpdk-dumpcap",
            "--file-prefix",
            &prefix,
            "-i",
            "net_af_packet0",
            "-a",
            "duration:1",
            "-w",
            dir.path("again.pcapng").to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let link = loop {
        let link = net.run_ok(&ns, &["ip", "link", "show", "pub0"]);
        if link.contains("PROMISC") || Instant::now() > deadline {
            break link;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        link.contains("PROMISC"),
        "pub0 promiscuous again after a capture without -p: {link}\n{out}"
    );
    assert!(
        net.stderr(tgw).contains("turned it on again"),
        "{}",
        net.stderr(tgw)
    );

    let stopped = net.stop(tgw);
    assert!(stopped.status.success(), "tgw: {}", stopped.stderr);
}

/// `[eal] in_memory`: telemetry still answers (its socket is not one of
/// the files in_memory does without), but no secondary process can
/// attach, and tgw says so instead of starting a capture server nobody
/// can reach. Needs neither root nor hugepages.
#[test]
fn in_memory_keeps_telemetry_and_says_capture_is_off() {
    telemetry_but_no_capture(
        "mem",
        "in_memory = true\nhugepages = false",
        "no packet capture: [eal] in_memory",
    );
}

/// `hugepages = false` without in_memory: EAL keeps its runtime files and
/// a secondary starts, but cannot map memory that is not in hugepage
/// files; the same as in_memory for the tools.
#[test]
fn without_hugepages_telemetry_stays_and_capture_is_off() {
    telemetry_but_no_capture(
        "nohuge",
        "hugepages = false",
        "no packet capture: without hugepages",
    );
}

fn telemetry_but_no_capture(tag: &str, eal: &str, says: &str) {
    let dir = Scratch::new(&format!("dpdk-tools-{tag}"));
    let prefix = format!("tgw-test-dpdk-tools-{tag}-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = config(
        &dir,
        &prefix,
        ["net_null0,no-rx=1", "net_null1,no-rx=1"],
        eal,
    );
    let log = dir.path("tgw.log");
    let mut daemon = Daemon::start_logged(&config, &[], &log, &[]);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_log().contains("forwarding") {
        assert!(daemon.running(), "tgw exited:\n{}", read_log());
        assert!(
            Instant::now() < deadline,
            "tgw did not start:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        read_log().contains(says),
        "the log says why dumpcap cannot attach ({says:?}):\n{}",
        read_log()
    );

    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '/tgw/info\\n' | timeout 20 dpdk-telemetry.py -f {prefix}"
        ))
        .output()
        .expect("run dpdk-telemetry.py (apt-get install dpdk-dev)");
    let text = String::from_utf8_lossy(&out.stdout);
    let info: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(info["/tgw/info"]["workers"], json!(1), "{info}");
    assert_eq!(info["/tgw/info"]["tenants"], json!(2), "{info}");

    let capture = dir.path("none.pcapng");
    let out = Command::new("timeout")
        .args([
            "20",
            "dpdk-dumpcap",
            "--file-prefix",
            &prefix,
            "-c",
            "1",
            "-w",
        ])
        .arg(&capture)
        .output()
        .expect("run dpdk-dumpcap (apt-get install dpdk-dev)");
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "dpdk-dumpcap fails at once: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let out = daemon.terminate();
    assert!(out.status.success(), "tgw: {}", read_log());
}
