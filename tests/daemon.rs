//! The real daemon on real DPDK virtual devices: frames built with an
//! independent library go in through `net_pcap`, and what comes out is
//! compared byte for byte; SIGTERM stops it with its counters; a bad config
//! is refused with `FILE:LINE:` messages.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{read_pcap, wait_for_frames, write_pcap, Daemon, PrefixFiles, Scratch};
use etherparse::PacketBuilder;
const PUB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const UND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const PUB_PEER: [u8; 6] = [0x02, 0, 0, 0, 0xee, 0x01];
const UND_PEER: [u8; 6] = [0x02, 0, 0, 0, 0xee, 0x02];

/// Frames of several shapes and sizes, built with etherparse.
fn frames(seed: u8, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let payload: Vec<u8> = (0..(i * 37) % 1400).map(|b| (b as u8) ^ seed).collect();
            let eth =
                PacketBuilder::ethernet2([0x02, 0, 0, 0, 0xaa, seed], [0x02, 0, 0, 0, 0xbb, seed]);
            let mut out = Vec::new();
            match i % 4 {
                0 => eth
                    .ipv4([1, 1, 1, 7], [2, 2, 2, 11], 64)
                    .udp(1000 + i as u16, 53)
                    .write(&mut out, &payload),
                1 => eth
                    .ipv4([1, 1, 1, 7], [2, 2, 2, 12], 63)
                    .tcp(40000 + i as u16, 22, i as u32, 1000)
                    .syn()
                    .write(&mut out, &payload),
                2 => eth
                    .single_vlan(100.try_into().unwrap())
                    .ipv4([10, 0, 0, 7], [1, 1, 1, 7], 5)
                    .icmpv4_echo_request(7, i as u16)
                    .write(&mut out, &payload),
                _ => eth
                    .ipv4([172, 168, 0, 11], [172, 168, 0, 1], 64)
                    .udp(4000, 4789)
                    .write(&mut out, &payload[..payload.len().min(64)]),
            }
            .unwrap();
            out
        })
        .collect()
}

fn pcap_config(dir: &Scratch, prefix: &str) -> PathBuf {
    let text = format!(
        r#"[dataplane]
mode = "l2fwd"

[eal]
main_lcore = 0
file_prefix = "{prefix}"
hugepages = false
memory_mb = 256
in_memory = true

[mempool]
mbufs = 8191
cache_size = 128

[[port]]
name = "pub0"
device = "net_pcap0,rx_pcap={pub_in},tx_pcap={pub_out}"
role = "public"
mac = "02:00:00:00:00:01"
peer_mac = "02:00:00:00:ee:01"

[[port]]
name = "und0"
device = "net_pcap1,rx_pcap={und_in},tx_pcap={und_out}"
role = "underlay"
mac = "02:00:00:00:01:01"
peer_mac = "02:00:00:00:ee:02"

[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
"#,
        pub_in = dir.path("pub-in.pcap").display(),
        pub_out = dir.path("pub-out.pcap").display(),
        und_in = dir.path("und-in.pcap").display(),
        und_out = dir.path("und-out.pcap").display(),
    );
    let path = dir.path("tgw.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `expected` with the MAC rewrite the skeleton does: the next hop's MAC as
/// destination, the egress port's as source.
fn rewritten(frames: &[Vec<u8>], dst: [u8; 6], src: [u8; 6]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&src);
            f
        })
        .collect()
}

#[test]
fn pcap_round_trip_changes_only_the_macs_and_sigterm_reports_counters() {
    let dir = Scratch::new("pcap");
    let to_underlay = frames(1, 200);
    let to_public = frames(2, 120);
    write_pcap(&dir.path("pub-in.pcap"), &to_underlay);
    write_pcap(&dir.path("und-in.pcap"), &to_public);
    let prefix = format!("tgw-test-pcap-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = pcap_config(&dir, &prefix);

    let mut daemon = Daemon::start(
        &config,
        &["--stats-json", dir.path("stats.json").to_str().unwrap()],
    );
    // net_pcap flushes its output after every burst, so the files fill
    // while tgw runs; SIGTERM once everything has been through.
    wait_for_frames(&mut daemon, &dir.path("und-out.pcap"), to_underlay.len());
    wait_for_frames(&mut daemon, &dir.path("pub-out.pcap"), to_public.len());
    let out = daemon.terminate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tgw exited with {}\n{stdout}\n{stderr}",
        out.status
    );
    // Logs off a terminal (a file, a pipe, journald) carry no colour codes.
    assert!(
        !stderr.contains('\x1b'),
        "escape sequences in a log that is not a terminal:\n{stderr:?}"
    );
    assert!(stderr.contains("INFO"), "tgw logged its start:\n{stderr}");

    assert_eq!(
        read_pcap(&dir.path("und-out.pcap")),
        rewritten(&to_underlay, UND_PEER, UND_MAC)
    );
    assert_eq!(
        read_pcap(&dir.path("pub-out.pcap")),
        rewritten(&to_public, PUB_PEER, PUB_MAC)
    );

    // The printed counters are the port's own: every frame in, every frame out.
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stdout}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("pub0")[3..5], ["200", "120"], "{stdout}");
    assert_eq!(row("und0")[3..5], ["120", "200"], "{stdout}");
    assert!(
        stdout.contains("workers: 320 frames in, 320 out"),
        "{stdout}"
    );

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("stats.json")).unwrap()).unwrap();
    let pub0 = &stats["ports"][0];
    assert_eq!(
        (pub0["rx_packets"].as_u64(), pub0["tx_packets"].as_u64()),
        (Some(200), Some(120))
    );
    let rx_bytes: usize = to_underlay.iter().map(Vec::len).sum();
    assert_eq!(pub0["rx_bytes"].as_u64(), Some(rx_bytes as u64));
    assert_eq!(stats["workers"][0]["drops"]["tx_full"].as_u64(), Some(0));
}

#[test]
fn check_accepts_the_examples() {
    for example in ["examples/l2fwd-null.toml", "examples/l2fwd-memif.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(example);
        let out = common::check(&path);
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
    }
}

#[test]
fn check_names_file_and_line_of_every_problem() {
    let dir = Scratch::new("check");
    let path = dir.path("bad.toml");
    std::fs::write(
        &path,
        r#"[eal]
main_lcore = 0

[[port]]
name = "pub0"
device = "net_null0"
role = "public"

[[port]]
name = "pub0"
device = "net_null1"
role = "outside"

[[worker]]
lcore = 0
rx = ["pub0:0"]
"#,
    )
    .unwrap();
    let out = common::check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:10:")),
        "duplicate name at line 10:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:12:")),
        "unknown role at line 12:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:15:")),
        "lcore 0 is the main lcore, line 15:\n{stderr}"
    );
    assert!(
        stderr.lines().all(|l| l.starts_with(&format!("{file}:"))),
        "every line names the file:\n{stderr}"
    );

    let out = common::check(&dir.path("missing.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml: cannot read"));
}

#[test]
fn dpdk_dumpcap_attaches_to_a_running_tgw() {
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        // A secondary process maps the primary's memory from hugepage
        // files; without hugepages there is nothing to attach to.
        eprintln!("SKIP: no hugepages (run scripts/setup as root)");
        return;
    }
    let dir = Scratch::new("dumpcap");
    let prefix = format!("tgw-test-dumpcap-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = dir.path("tgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"[eal]
file_prefix = "{prefix}"
memory_mb = 128
[mempool]
mbufs = 8191
cache_size = 128
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
"#
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config, &[]);
    // The null ports carry traffic from the start; dumpcap retries until
    // the primary has set its ports up.
    let capture = dir.path("cap.pcap");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline && daemon.running() {
        let out = Command::new("timeout")
            .args([
                "20",
                "dpdk-dumpcap",
                "--file-prefix",
                &prefix,
                "-i",
                "net_null0",
                "-c",
                "100",
                "-q",
                "-P",
                "-w",
            ])
            .arg(&capture)
            .output()
            .expect("run dpdk-dumpcap (apt-get install dpdk-dev)");
        if out.status.success() {
            last = None;
            break;
        }
        last = Some(String::from_utf8_lossy(&out.stderr).into_owned());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        last.is_none(),
        "dpdk-dumpcap failed: {}",
        last.unwrap_or_default()
    );
    let out = daemon.terminate();
    // Once, under load 8, tgw's worker died of SIGSEGV inside DPDK's
    // mempool code as dumpcap left (docs/working.md, "Tests"): the status
    // says which signal, where the log says nothing.
    assert!(
        out.status.success(),
        "tgw ended {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // dumpcap stops after the burst that reaches the count.
    let captured = read_pcap(&capture);
    assert!(
        (100..=100 + 32).contains(&captured.len()),
        "captured {} frames for -c 100",
        captured.len()
    );
    assert!(
        captured.iter().all(|f| f.len() == 64),
        "net_null sends 64-byte frames"
    );
}

/// Two workers with hugepages and runtime files (no `in_memory`): the
/// handoff rings between the workers must be freed before EAL cleans up,
/// or tgw crashes at exit and loses its report (issue 9, defect 5).
#[test]
fn two_workers_on_hugepages_stop_cleanly_with_their_report() {
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        eprintln!("SKIP: no hugepages (run scripts/setup as root)");
        return;
    }
    let dir = Scratch::new("two-workers");
    let prefix = format!("tgw-test-two-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = dir.path("tgw.toml");
    std::fs::write(&config, two_worker_config(&prefix, true, false, "")).unwrap();
    let stats = dir.path("stats.json");
    let log = dir.path("tgw.log");
    let mut daemon = Daemon::start_logged(
        &config,
        &["--stats-json", stats.to_str().unwrap()],
        &log,
        &[],
    );
    wait_until_forwarding(&mut daemon, &log);
    let out = daemon.terminate();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "tgw exited with {}\n{stderr}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("workers:"), "no report printed:\n{stdout}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(stats["workers"].as_array().map(Vec::len), Some(2));
    assert!(stats["failure"].is_null(), "{}", stats["failure"]);
}

/// A worker that panics stops the whole gateway (fail-stop): the log
/// names the worker and the panic, the other worker and the ports are
/// stopped, the report is still written, and tgw exits with 70 so that its
/// supervisor restarts it (issue 9, defect 4).
#[test]
fn a_worker_panic_stops_tgw_with_its_report_and_status_70() {
    let out = run_failing_worker("panic", "panic:1", 5000);
    let (status, log, stdout, stats) = (&out.0, &out.1, &out.2, &out.3);
    assert_eq!(status.code(), Some(70), "{log}");
    assert!(
        log.contains("worker 1 (lcore 2) panicked: worker 1 panics as TGW_TEST_FAULT asked"),
        "{log}"
    );
    assert!(log.contains("stopping tgw (fail-stop)"), "{log}");
    assert!(
        stdout.contains("tgw stopped because worker 1 (lcore 2) panicked"),
        "{stdout}"
    );
    assert!(stdout.contains("workers:"), "{stdout}");
    let failure = &stats["failure"];
    assert_eq!(failure["worker"], 1, "{failure}");
    assert_eq!(failure["lcore"], 2, "{failure}");
    assert_eq!(failure["cause"], "panicked", "{failure}");
    // The other worker ran and was stopped in order.
    let workers = stats["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    assert!(workers[0]["loops"].as_u64() > Some(0), "{}", workers[0]);
    assert!(
        workers[0]["rx_packets"].as_u64() > Some(0),
        "{}",
        workers[0]
    );
}

/// A worker that stops going round its loop (and never returns) is found
/// by the watchdog from its heartbeat; tgw cannot join it, so it writes
/// its report and exits 70 at once (issue 9, defect 4).
#[test]
fn a_stalled_worker_is_found_by_the_watchdog_and_stops_tgw() {
    let out = run_failing_worker("stall", "stall:0", 300);
    let (status, log, stdout, stats) = (&out.0, &out.1, &out.2, &out.3);
    assert_eq!(status.code(), Some(70), "{log}");
    assert!(
        log.contains("worker 0 (lcore 1) stalled: no heartbeat for"),
        "{log}"
    );
    assert!(log.contains("did not stop within"), "{log}");
    assert!(stdout.contains("tgw stopped because worker 0"), "{stdout}");
    assert_eq!(stats["failure"]["cause"], "stalled", "{}", stats["failure"]);
    assert!(stats["failure"]["stalled_ms"].as_u64() >= Some(300));
}

/// Runs tgw with two workers and `TGW_TEST_FAULT=fault` until it exits by
/// itself (bounded): its status, log, stdout and stats JSON.
fn run_failing_worker(
    name: &str,
    fault: &str,
    watchdog_ms: u32,
) -> (std::process::ExitStatus, String, String, serde_json::Value) {
    let dir = Scratch::new(&format!("fault-{name}"));
    let prefix = format!("tgw-test-fault-{name}-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = dir.path("tgw.toml");
    let huge = std::env::var("TGW_HUGEPAGES").as_deref() == Ok("1");
    let dataplane = format!("[dataplane]\nwatchdog_ms = {watchdog_ms}\n");
    std::fs::write(&config, two_worker_config(&prefix, huge, true, &dataplane)).unwrap();
    let stats = dir.path("stats.json");
    let log = dir.path("tgw.log");
    let mut daemon = Daemon::start_logged(
        &config,
        &["--stats-json", stats.to_str().unwrap()],
        &log,
        &[("TGW_TEST_FAULT", fault)],
    );
    let out = daemon.wait_exit(Duration::from_secs(30));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let out = out.unwrap_or_else(|| panic!("tgw did not stop by itself:\n{log}"));
    // However it stopped, it takes its control socket with it.
    let socket = Path::new(ctl::config::SOCKET_DIR).join(format!("{prefix}.sock"));
    assert!(
        !socket.exists(),
        "tgw left its control socket {}:\n{log}",
        socket.display()
    );
    let stats =
        std::fs::read_to_string(&stats).unwrap_or_else(|e| panic!("no stats JSON ({e}):\n{log}"));
    (
        out.status,
        log,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        serde_json::from_str(&stats).unwrap(),
    )
}

/// Two workers polling net_null ports (which receive without end), the
/// second on lcore 2 sharing CPU 1, so that it runs on two CPUs.
fn two_worker_config(prefix: &str, hugepages: bool, in_memory: bool, head: &str) -> String {
    format!(
        r#"{head}
[eal]
file_prefix = "{prefix}"
hugepages = {hugepages}
memory_mb = 128
in_memory = {in_memory}
[mempool]
mbufs = 16383
cache_size = 128
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
[[worker]]
lcore = 2
cpu = 1
rx = ["pub0:1", "und0:1"]
"#
    )
}

/// Waits (bounded) until tgw says it forwards: its workers are running.
fn wait_until_forwarding(daemon: &mut Daemon, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && daemon.running() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("forwarding;") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--check` builds the tables as a start would, so that a file it
/// passes does not then fail to start: here 20 tenants' tunnel hosts, 20
/// next hops on the underlay, in a ports' share of the neighbour table
/// of 16 (`[arp] port_entries`). The validator counts no next hops; the
/// build does.
#[test]
fn check_refuses_what_the_start_would_refuse() {
    let dir = Scratch::new("check-tables");
    let file = |port_entries: u32| {
        let mut text = format!(
            r#"[dataplane]
mode = "gateway"

[eal]
main_lcore = 0
hugepages = false

[arp]
entries = 64
port_entries = {port_entries}
per_tenant = 4

[[port]]
name = "pub0"
device = "net_null0"
role = "public"
mac = "02:00:00:00:00:01"
addresses = ["1.1.1.1/24"]

[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
mac = "02:00:00:00:01:01"
addresses = ["172.168.0.1/24"]

[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
"#
        );
        for i in 0..20 {
            text += &format!(
                r#"
[[tenant]]
name = "t{i}"
key = {key}
hosts = ["172.168.0.{host}"]
prefixes = ["10.0.0.0/24"]
routes = [{{ prefix = "10.0.0.0/24", to = "172.168.0.{host}" }}]
"#,
                key = 1000 + i,
                host = 10 + i
            );
        }
        text
    };
    let check = |port_entries| {
        let path = dir.path(&format!("tenants-{port_entries}.toml"));
        std::fs::write(&path, file(port_entries)).unwrap();
        let out = common::check(&path);
        (path, out)
    };
    let (path, out) = check(16);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "20 next hops in 16 passed");
    assert!(
        stderr.starts_with(&format!("{}: tables: ", path.display()))
            && stderr.contains("port_entries"),
        "names the file and the fix:\n{stderr}"
    );
    let (_, out) = check(32);
    assert!(
        out.status.success(),
        "20 next hops in 32: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
