//! Flow offload end to end (issue 14), on DPDK virtual devices, which
//! have no flow API: the probe at start says so for every rule shape and
//! leaves the gateway as it was (`tgwctl offload caps`); in shadow mode
//! the reference scenario's flow is offered, its rules built and kept,
//! and `tgwctl offload show --testpmd` prints them as commands a real
//! dpdk-testpmd parses.
//!
//! Each test has its own tgw, on net_null/net_ring/net_memif or
//! net_pcap ports; no root needed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::reference::{self, CLIENT, CLIENT_MAC, EIP1, PUB_MAC};
use common::{read_pcap, tgwctl, wait_for_frames, write_pcap, Daemon, PrefixFiles, Scratch};
use etherparse::PacketBuilder;
use serde_json::Value;

/// `tgwctl --socket SOCKET --json WORDS`, which must succeed: its result.
fn ctl_json(socket: &Path, words: &str) -> Value {
    let out = ctl(socket, &format!("--json {words}"));
    assert!(
        out.status.success(),
        "tgwctl {words}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tgwctl --json prints JSON")
}

fn ctl(socket: &Path, words: &str) -> Output {
    Command::new(tgwctl())
        .arg("--socket")
        .arg(socket)
        .args(words.split_whitespace())
        .output()
        .expect("run tgwctl")
}

/// A tgw of examples/reference.toml on `devices`, `edit` applied; waits
/// until it answers on its socket.
struct Gateway {
    dir: Scratch,
    _files: PrefixFiles,
    daemon: Daemon,
    socket: PathBuf,
}

impl Gateway {
    fn start(
        name: &str,
        devices: impl Fn(&Scratch) -> [String; 2],
        edit: &dyn Fn(String) -> String,
    ) -> Gateway {
        let dir = Scratch::new(&format!("offload-{name}"));
        let prefix = format!("tgw-test-offload-{name}-{}", std::process::id());
        let files = PrefixFiles(prefix.clone());
        let devices = devices(&dir);
        let text = reference::text(
            &reference::edits(&prefix, [&devices[0], &devices[1]], "in_memory = true"),
            &reference::control_socket(&dir, "tgw.sock"),
        );
        let config = reference::write(&dir, &edit(text));
        let log = dir.path("tgw.log");
        let mut daemon = Daemon::start_logged(&config, &[], &log, &[]);
        let socket = dir.path("tgw.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ctl(&socket, "stats").status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(daemon.running(), "tgw exited:\n{log}");
            assert!(
                Instant::now() < deadline,
                "tgw did not answer in 30 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Gateway {
            dir,
            _files: files,
            daemon,
            socket,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("tgw.log")).unwrap_or_default()
    }
}

/// Every port at level none, every shape "no flow API", and the log says
/// so port by port.
fn assert_no_flow_api(g: &Gateway) {
    let caps = ctl_json(&g.socket, "offload caps");
    assert_eq!(caps["mode"], "auto", "{caps}");
    let ports = caps["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 2, "{caps}");
    for p in ports {
        assert_eq!(p["level"], "none", "{caps}");
        assert_eq!(p["api"], "sync", "{caps}");
        // Why: the template API asked for at start, and refused.
        let why = p["api_reason"].as_str().unwrap_or_default();
        assert!(why.starts_with("rte_flow_info_get: "), "{caps}");
    }
    let shapes = caps["shapes"].as_array().expect("shapes");
    // Public: punt_public, root_public, full_tcp, full_udp, mark_queue,
    // snat_steering, deny_drop; underlay: punt_gre, punt_gretap,
    // root_gre, root_gretap, check_gre, check_gretap, full_gre,
    // full_gretap, mark_queue.
    assert_eq!(shapes.len(), 16, "{caps}");
    for s in shapes {
        assert_eq!(s["verdict"], "no flow API", "{caps}");
    }
    let log = g.log();
    // The marks asked for before the ports were configured: a virtual
    // device has no negotiation (ENOTSUP), which is no failure.
    assert!(!log.contains("rx metadata negotiation failed"), "{log}");
    for line in [
        "port 0 (pub0): offload none: no flow API",
        "port 1 (und0): offload none: no flow API",
        "port 0 (pub0): flow api sync: rte_flow_info_get: ",
        "port 1 (und0): flow api sync: rte_flow_info_get: ",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    // Nothing is offered on ports that take nothing.
    let stats = ctl_json(&g.socket, "offload stats");
    assert_eq!(stats["requests"], 0, "{stats}");
    assert_eq!(stats["queue_full"], 0, "{stats}");
    // The table tgwctl prints says the same.
    let out = ctl(&g.socket, "offload caps");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no flow API") && text.contains("none"),
        "{text}"
    );
}

#[test]
fn virtual_devices_have_no_flow_api_and_offload_nothing() {
    let null = Gateway::start(
        "null",
        |_| ["net_null0".to_owned(), "net_null1".to_owned()],
        &|t| t,
    );
    assert_no_flow_api(&null);
    drop(null);
    let ring_memif = Gateway::start(
        "ring",
        |dir| {
            [
                "net_ring0".to_owned(),
                format!(
                    "net_memif0,role=server,socket={}",
                    dir.path("memif.sock").display()
                ),
            ]
        },
        &|t| t,
    );
    assert_no_flow_api(&ring_memif);
}

/// A datagram from the client to t1's elastic IP, and 10.0.0.7's answer
/// in t1's gretap tunnel (key 1000) from 172.168.0.11.
fn udp_exchange() -> (Vec<u8>, Vec<u8>) {
    let mut ask = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(CLIENT, EIP1, 64)
        .udp(5000, 53)
        .write(&mut ask, b"query")
        .unwrap();
    let mut inner = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0x0a, 0x07], [2, 0, 0, 0, 0x10, 0])
        .ipv4([10, 0, 0, 7], CLIENT, 64)
        .udp(53, 5000)
        .write(&mut inner, b"answer")
        .unwrap();
    let mut gre = vec![0x20, 0x00, 0x65, 0x58];
    gre.extend_from_slice(&1000u32.to_be_bytes());
    gre.extend_from_slice(&inner);
    let mut answer = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0x0b, 0x0b], [2, 0, 0, 0, 0x01, 0x01])
        .ipv4([172, 168, 0, 11], [172, 168, 0, 1], 64)
        .write(&mut answer, etherparse::IpNumber(47), &gre)
        .unwrap();
    (ask, answer)
}

/// Runs dpdk-testpmd on two net_null ports with `commands` on stdin
/// (interactive: a command file's errors print nothing); its output.
fn run_testpmd(dir: &Scratch, commands: &str) -> String {
    let prefix = format!("tgw-test-offload-testpmd-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let input = dir.path("testpmd-commands");
    std::fs::write(&input, format!("{commands}quit\n")).unwrap();
    let out = dir.path("testpmd-output");
    let log = std::fs::File::create(&out).unwrap();
    let testpmd = std::env::var("TESTPMD").unwrap_or_else(|_| "dpdk-testpmd".into());
    let mut child = Command::new(&testpmd)
        .args([
            "-l",
            "0,1",
            "--no-pci",
            "--no-huge",
            "--no-shconf",
            "-m",
            "256",
        ])
        .arg(format!("--file-prefix={prefix}"))
        .args([
            "--log-level=lib.eal:error",
            "--vdev=net_null0",
            "--vdev=net_null1",
        ])
        .args(["--", "-i", "--total-num-mbufs=2048"])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {testpmd}: {e} (scripts/setup installs it)"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(status.success(), "testpmd failed ({status}):\n{text}");
            return text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("testpmd still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shadow_mode_keeps_the_rules_of_an_answered_flow_and_testpmd_parses_them() {
    let g = Gateway::start(
        "shadow",
        |dir| {
            let dev = |i: usize, side: &str| {
                format!(
                    "net_pcap{i},rx_pcap={},tx_pcap={}",
                    dir.path(&format!("{side}-in.pcap")).display(),
                    dir.path(&format!("{side}-out.pcap")).display()
                )
            };
            let (ask, answer) = udp_exchange();
            // The worker polls pub0 before und0: the question is through
            // before the answer is read.
            write_pcap(&dir.path("pub-in.pcap"), &[ask]);
            write_pcap(&dir.path("und-in.pcap"), &[answer]);
            [dev(0, "pub"), dev(1, "und")]
        },
        &|t| {
            let t = t.replacen(
                "{ direction = \"in\", action = \"allow\", proto = \"icmp\" },",
                "{ direction = \"in\", action = \"allow\", proto = \"icmp\" },\n  { direction = \"in\", action = \"allow\", proto = \"udp\", dport = 53 },",
                1,
            );
            // An exact deny for t1 (docs/offload.md, "Deny rules on the
            // NIC"): TCP 20-23 from 9.9.9.0/24, toward which t1 may open
            // nothing; one counted drop in front of the root rule.
            let t = t.replacen(
                "rules = [\n",
                "rules = [\n  { direction = \"in\", action = \"deny\", proto = \"tcp\", src = \"9.9.9.0/24\", dport = \"20-23\" },\n  { direction = \"out\", action = \"deny\", dst = \"9.9.9.0/24\" },\n",
                1,
            );
            // An underlay MTU that fits the public one plus gretap's
            // 42 bytes: the UDP flow's legs can carry no packet too big
            // for their way out, so both get full rules (docs/offload.md,
            // "Too big for the tunnel").
            let t = t.replacen(
                "addresses = [\"172.168.0.1/24\"]\n",
                "addresses = [\"172.168.0.1/24\"]\nmtu = 1542\n",
                1,
            );
            t.replacen("mode = \"auto\"", "mode = \"shadow\"", 1)
        },
    );
    let mut g = g;
    // Both went through: the question into the tunnel, the answer out.
    wait_for_frames(&mut g.daemon, &g.dir.path("pub-out.pcap"), 1);
    assert_eq!(
        read_pcap(&g.dir.path("und-out.pcap")).len(),
        1,
        "{}",
        g.log()
    );
    assert_eq!(
        read_pcap(&g.dir.path("pub-out.pcap")).len(),
        1,
        "{}",
        g.log()
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = ctl_json(&g.socket, "offload show");
        if shown["flows"].as_array().is_some_and(|f| !f.is_empty()) {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "no offloaded flow in 10 s: {shown}\n{}",
            ctl_json(&g.socket, "offload stats")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let flows = shown["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "{shown}");
    let f = &flows[0];
    assert_eq!(
        (&f["tenant"], &f["state"], &f["rules"], &f["installed"]),
        (
            &Value::from("t1"),
            &Value::from("offloaded"),
            &Value::from(2),
            &Value::from(false)
        ),
        "shadow mode keeps both legs' rules and installs none: {shown}"
    );
    // tgwctl's table of them: t1's drop, and the denies left to software
    // (t1's and t2's inbound defaults: Out allows by default).
    let table = String::from_utf8(ctl(&g.socket, "offload show").stdout).unwrap();
    assert!(
        table.contains("deny rules on the NIC:")
            && table.contains("tcp 9.9.9.0/24:any -> 2.2.2.11/32:20/0xfffc")
            && table.contains("denies left to software:")
            && table.contains("replies_possible"),
        "{table}"
    );
    let stats = ctl_json(&g.socket, "offload stats");
    assert_eq!(stats["mode"], "shadow", "{stats}");
    assert_eq!(stats["requests"], 1, "{stats}");
    assert_eq!(stats["installed"], 1, "{stats}");
    assert_eq!(stats["flows"]["offloaded"], 1, "{stats}");

    // The commands: the root rules (group 0), then per flow a raw decap
    // and encap per rule and its flow create (group 1).
    let out = ctl(&g.socket, "offload show --testpmd");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let creates: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("flow create"))
        .collect();
    let (deny, others): (Vec<&str>, Vec<&str>) = creates
        .iter()
        .partition(|c| c.contains("actions count / drop / end"));
    assert_eq!(deny.len(), 1, "{text}");
    assert!(
        deny[0].starts_with("flow create 0 transfer group 0 priority 1 ")
            && deny[0].contains("dst is 2.2.2.11 proto is 6"),
        "{}",
        deny[0]
    );
    let (roots, flows): (Vec<&str>, Vec<&str>) = others
        .iter()
        .partition(|c| !c.contains(" transfer group 1 "));
    // First the punt rules: packets whose TTL would expire to software,
    // the public port's and the underlay port's for gretap.
    let (punts, roots): (Vec<&str>, Vec<&str>) = roots
        .iter()
        .partition(|c| c.contains("actions jump group 2 "));
    assert_eq!(
        punts,
        [
            "flow create 0 transfer group 0 priority 0 pattern eth type is 0x0800 / \
             ipv4 ttl spec 0x00 ttl mask 0xfe / end actions jump group 2 / end",
            "flow create 1 transfer group 0 priority 0 pattern eth type is 0x0800 / \
             ipv4 proto is 47 / gre protocol is 0x6558 / eth type is 0x0800 / \
             ipv4 ttl spec 0x00 ttl mask 0xfe / end actions jump group 2 / end"
        ],
        "{text}"
    );
    // The gretap tunnels' integrity check (group 3), which their root
    // rules jump to: outer and inner IPv4 headers intact.
    let (checks, roots): (Vec<&str>, Vec<&str>) =
        roots.iter().partition(|c| c.contains(" transfer group 3 "));
    assert_eq!(
        checks,
        [
            "flow create 1 transfer group 3 priority 0 pattern eth type is 0x0800 / \
             ipv4 proto is 47 / integrity level is 1 value spec 0x24 value mask 0x24 / \
             gre protocol is 0x6558 / eth type is 0x0800 / ipv4 / \
             integrity level is 2 value spec 0x24 value mask 0x24 / \
             end actions jump group 1 / end"
        ],
        "{text}"
    );
    // The public port's root rule and one per tunnel of the reference
    // tenants (t1's and t2's hosts).
    assert_eq!(roots.len(), 3, "{text}");
    assert!(roots[0].starts_with("flow create 0 "), "{text}");
    assert!(
        roots[0].contains(
            "ipv4 version_ihl is 0x45 tos is 0x00 \
             fragment_offset spec 0x4000 fragment_offset mask 0x7fff / \
             integrity level is 1 value spec 0x24 value mask 0x24 / end \
             actions jump group 1 / end"
        ),
        "{}",
        roots[0]
    );
    assert!(roots[1].starts_with("flow create 1 "), "{text}");
    assert!(
        roots[1].contains("src is 172.168.0.11 dst is 172.168.0.1 proto is 47")
            && roots[1].contains("gre_key value is 1000")
            && roots[1].ends_with("actions jump group 3 / end"),
        "{}",
        roots[1]
    );
    assert_eq!(flows.len(), 2, "{text}");
    assert!(
        flows[0].starts_with("flow create 0 transfer group 1 "),
        "{text}"
    );
    assert!(
        flows[1].starts_with("flow create 1 transfer group 1 "),
        "{text}"
    );
    for c in &flows {
        assert!(c.contains(" count "), "{c}");
    }
    assert!(
        flows[0].contains("ipv4 src is 1.1.1.7 dst is 2.2.2.11 proto is 17"),
        "{}",
        flows[0]
    );
    assert!(flows[1].contains("gre_key value is 1000"), "{}", flows[1]);
    // Every line is one testpmd reads whole (docs/offload.md, "The same
    // rules as testpmd commands"): no command flagged too long, and only
    // tgw's own headings are comments (every raw buffer has items).
    for l in text.lines() {
        assert!(
            l.len() <= rte::flow::TESTPMD_LINE_MAX,
            "{} characters: {l}",
            l.len()
        );
        if l.starts_with('#') {
            assert!(
                l.starts_with("# worker 0 flow ")
                    || l.starts_with("# root rules")
                    || l.starts_with("# deny rules"),
                "{l}\n{text}"
            );
        }
    }
    // testpmd parses every command.
    let commands: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let answers = run_testpmd(&g.dir, &commands);
    for bad in ["Bad arguments", "bad command", "Ambiguous command"] {
        assert!(
            !answers.contains(bad),
            "testpmd could not parse:\n{commands}\n{answers}"
        );
    }
    // Each flow create was parsed and reached the PMD, which refused it.
    assert_eq!(
        answers
            .lines()
            .filter(|l| l.contains("Function not implemented"))
            .count(),
        creates.len(),
        "{commands}\n{answers}"
    );
    let stats = ctl_json(&g.socket, "offload stats");
    assert_eq!(
        (
            &stats["root_rules"],
            &stats["root_rules_installed"],
            &stats["root_rules_left_out"]
        ),
        (&Value::from(2 + 1 + 3), &Value::from(0), &Value::from(0)),
        "shadow mode keeps the root rules (punts, check, roots) and installs none: {stats}"
    );
    assert_eq!(
        (&stats["deny_rules"], &stats["deny_rules_installed"]),
        (&Value::from(1), &Value::from(0)),
        "and the deny rule: {stats}"
    );

    // Flushed: pulled back, nothing left.
    let flushed = ctl_json(&g.socket, "offload flush");
    assert_eq!(flushed["pulled_back"], 1, "{flushed}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ctl_json(&g.socket, "offload show")["flows"]
        .as_array()
        .is_some_and(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the flushed flow stayed");
        std::thread::sleep(Duration::from_millis(20));
    }
}
