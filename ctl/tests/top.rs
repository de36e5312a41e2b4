//! `tgwctl stats` and `tgwctl top` without a tgw: rates computed from two
//! reports written here by hand (the shape of tgw's `stats` result,
//! src/report.rs `Report::json`), the text a person reads, and the real
//! binary refreshing against a stand-in tgw that answers scripted
//! reports. tests/top.rs runs it against a real tgw under a pty.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Parser;
use ctl::api::Response;
use ctl::cli::stats;
use ctl::cli::top::{rates, NoRates, Sample, TopArgs};
use ctl::cli::{render, request, Cli, Shape};
use serde_json::{json, Value};

const TGWCTL: &str = env!("CARGO_BIN_EXE_tgwctl");

/// 2 GHz: a million ticks is half a millisecond.
const HZ: u64 = 2_000_000_000;

/// One worker's counters as the report has them.
#[derive(Clone, Copy, Default)]
struct W {
    rx: u64,
    tx: u64,
    cycles: u64,
    busy: u64,
    process: u64,
    ttl: u64,
    bad_key: u64,
    /// Frames from / into t1's and t2's tunnels.
    t1: (u64, u64),
    t2: (u64, u64),
}

/// A `stats` result as tgw sends it, with only what `top` and `stats`
/// read plus a few keys they must pass over.
fn report(tsc: u64, workers: &[W]) -> Value {
    let workers: Vec<Value> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let tenant = |(from, to): (u64, u64)| {
                json!({
                    "from_tunnel_packets": from, "from_tunnel_bytes": from * 100,
                    "to_tunnel_packets": to, "to_tunnel_bytes": to * 100,
                    "flows_created": 1, "flows_expired": 0, "nat_ports_in_use": 0,
                    "quota_refused": 0, "unreplied_refused": 0,
                })
            };
            json!({
                "lcore": i + 1,
                "tenants": {"t1": tenant(w.t1), "t2": tenant(w.t2), "t3": tenant((0, 0))},
                "arp_replies": 0, "punted": 0, "handed_off": 0,
                "echo_replies": 2,
                "rx_packets": w.rx, "tx_packets": w.tx, "bursts": w.rx / 32,
                "cycles": w.cycles, "flows_in_use": 7, "flows_capacity": 65536,
                "fragments_held": 0, "loops": 99,
                "process_cycles": w.process, "busy_cycles": w.busy,
                "drops": {"ttl_expired": w.ttl, "gre_bad_key": w.bad_key, "no_route": 0},
            })
        })
        .collect();
    json!({
        "tsc_hz": HZ, "tsc": tsc,
        "heartbeat_age_ms": workers.iter().map(|_| 0).collect::<Vec<_>>(),
        "mempool": {"size": 32767, "available": 32000, "in_use": 767},
        "build": {"version": "0.1.0", "commit": "abc1234", "dpdk": "DPDK 22.11.4"},
        "ports": [{"name": "pub0", "role": "public", "id": 0, "rx_packets": 5, "tx_packets": 6}],
        "workers": workers,
        "resolver": {"requests": 0, "learned": 3},
        "neighbours": [{"port": "pub0", "tenant": null, "ip": "1.1.1.7", "mac": "02:00:00:00:07:07", "state": "resolved", "static": true}],
        "firewall": [
            {"tenant": "t1", "rule": "in allow tcp dport 22", "position": 0, "flows": 5},
            {"tenant": "t1", "rule": "default in", "position": null, "flows": 0},
        ],
        "failure": null,
    })
}

fn sample(tsc: u64, workers: &[W]) -> Sample {
    Sample::from_report(&report(tsc, workers)).unwrap()
}

/// Two workers over half a second of tgw's clock (a billion ticks): the
/// first moves 1 Mpps in and 0.8 out, busy a quarter of its cycles, 200
/// pipeline cycles a frame; the second only polls. Their cycles gauges
/// moved 800M ticks (the gauge lags: it is set at each TX drain), so a
/// busy share over tgw's clock instead would read 20%.
fn half_a_second() -> (Sample, Sample) {
    let before = [
        W {
            rx: 1_000,
            tx: 900,
            cycles: 5_000_000,
            busy: 1_000_000,
            process: 200_000,
            ttl: 10,
            bad_key: 4,
            t1: (100, 50),
            t2: (10, 10),
        },
        W {
            cycles: 5_000_000,
            t1: (7, 7),
            ..W::default()
        },
    ];
    let after = [
        W {
            rx: 501_000,
            tx: 400_900,
            cycles: 805_000_000,
            busy: 201_000_000,
            process: 100_200_000,
            ttl: 1_010,
            bad_key: 4,
            t1: (300_100, 100_050),
            t2: (10, 5_010),
        },
        W {
            cycles: 805_000_000,
            t1: (7, 10_007),
            ..W::default()
        },
    ];
    (sample(1_000_000, &before), sample(1_001_000_000, &after))
}

#[test]
fn rates_are_the_counters_differences_over_tgws_clock() {
    let (before, after) = half_a_second();
    let r = rates(&before, &after).unwrap();
    assert_eq!(r.seconds, 0.5);
    let w = &r.workers[0];
    assert_eq!((w.lcore, w.rx_pps, w.tx_pps), (1, 1_000_000.0, 800_000.0));
    assert_eq!(w.busy, Some(0.25));
    assert_eq!(w.cycles_per_frame, Some(200.0));
    assert_eq!(w.drops_pps, 2_000.0);
    let idle = &r.workers[1];
    assert_eq!(
        (idle.rx_pps, idle.busy, idle.cycles_per_frame),
        (0.0, Some(0.0), None)
    );
    // Only reasons that moved, summed over the workers.
    assert_eq!(r.drops, vec![("ttl_expired".to_owned(), 2_000.0)]);
    // Tenants summed over the workers, busiest first; t3 moved nothing.
    let tenants: Vec<(&str, f64, f64)> = r
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.from_tunnel_pps, t.to_tunnel_pps))
        .collect();
    assert_eq!(
        tenants,
        vec![("t1", 600_000.0, 220_000.0), ("t2", 0.0, 10_000.0)]
    );
}

#[test]
fn a_restarted_tgw_gives_no_rates_and_a_counter_that_went_down_gives_zero() {
    let (_, after) = half_a_second();
    // tgw restarted: its clock went back, or it has other workers.
    let restarted = sample(500, &[W::default(), W::default()]);
    assert!(matches!(rates(&after, &restarted), Err(NoRates(_))));
    let one = sample(2_000_000_000, &[W::default()]);
    assert!(matches!(rates(&after, &one), Err(NoRates(_))));
    // A tenant deleted and added again starts from zero under its name:
    // no rate, never a wrapped one.
    let mut again = after.clone();
    again.tsc += HZ;
    again.tenants[0].from_tunnel_packets = 3;
    again.tenants[0].to_tunnel_packets = 0;
    let r = rates(&after, &again).unwrap();
    assert!(r.tenants.iter().all(|t| t.name != "t1"), "{:?}", r.tenants);
}

#[test]
fn a_report_without_tgws_clock_is_refused_by_name() {
    let mut old = report(1, &[W::default()]);
    old.as_object_mut().unwrap().remove("tsc");
    let e = Sample::from_report(&old).unwrap_err();
    assert!(e.contains("tsc"), "{e}");
}

#[test]
fn a_refresh_shows_every_worker_the_drops_that_moved_and_the_busiest_tenants() {
    let (before, after) = half_a_second();
    let text = rates(&before, &after).unwrap().text(1);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "WORKER",
            "LCORE",
            "RX_MPPS",
            "TX_MPPS",
            "BUSY",
            "CYCLES/FRAME",
            "DROPS/S",
            "FLOWS"
        ]
    );
    let row = |first: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first}:\n{text}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(
        row("0"),
        ["0", "1", "1.000", "0.800", "25.0%", "200", "2.0k", "7"]
    );
    assert_eq!(
        row("1"),
        ["1", "2", "0.000", "0.000", "0.0%", "-", "0", "7"]
    );
    assert_eq!(row("all"), ["all", "1.000", "0.800", "2.0k", "14"]);
    assert!(text.contains("ttl_expired  2.0k"), "{text}");
    assert!(!text.contains("gre_bad_key"), "{text}");
    // --tenants 1: t1 only, and how many had traffic.
    assert!(
        text.contains("busiest tenants (1 of 2 with traffic)"),
        "{text}"
    );
    assert_eq!(row("t1"), ["t1", "600.0k", "220.0k", "820.0k"]);
    assert!(!text.contains("t2"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
}

#[test]
fn top_and_stats_words() {
    let parse = |args: &[&str]| {
        let cli = Cli::try_parse_from(std::iter::once("tgwctl").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        request(cli.command, &|_| unreachable!()).map_err(|e| e.0)
    };
    let (_, shape) =
        parse(&["top", "--interval", "0.3", "--count", "3", "--tenants", "2"]).unwrap();
    assert_eq!(
        shape,
        Shape::Top(TopArgs {
            interval: Duration::from_millis(300),
            count: Some(3),
            tenants: 2
        })
    );
    let (_, shape) = parse(&["top"]).unwrap();
    assert_eq!(
        shape,
        Shape::Top(TopArgs {
            interval: Duration::from_secs(1),
            count: None,
            tenants: 5
        })
    );
    assert_eq!(parse(&["stats"]).unwrap().1, Shape::Stats);
    for bad in [
        ["top", "--interval", "0"],
        ["top", "--interval", "x"],
        ["top", "--count", "0"],
    ] {
        assert!(parse(&bad).is_err(), "{bad:?} was taken");
    }
}

#[test]
fn stats_for_a_person_sums_the_workers_and_leaves_out_what_is_zero() {
    let r = report(
        7,
        &[
            W {
                rx: 10,
                cycles: 100,
                busy: 50,
                process: 30,
                ttl: 3,
                t1: (4, 5),
                ..W::default()
            },
            W {
                rx: 20,
                ttl: 1,
                t1: (1, 1),
                t2: (2, 0),
                ..W::default()
            },
        ],
    );
    let text = render::human(&r, Shape::Stats);
    let line = |start: &str| -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start}:\n{text}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(
        line("tgw "),
        ["tgw", "0.1.0", "(commit", "abc1234,", "DPDK", "22.11.4)"]
    );
    assert_eq!(
        line("mbufs"),
        [
            "mbufs",
            "767",
            "in",
            "use,",
            "32000",
            "available,",
            "of",
            "32767"
        ]
    );
    // Worker 0: 10 in, busy half its cycles, 3 pipeline cycles a frame.
    assert_eq!(
        &line("0 ")[..8],
        ["0", "1", "10", "0", "3", "0", "50.0%", "3"]
    );
    // Drops summed, zeros left out.
    assert_eq!(line("ttl_expired"), ["ttl_expired", "4"]);
    assert!(
        !text.contains("gre_bad_key") && !text.contains("no_route"),
        "{text}"
    );
    // Tenants by name, summed over the workers.
    assert_eq!(
        &line("TENANT")[..4],
        ["TENANT", "FROM_TUNNELS", "FROM_BYTES", "INTO_TUNNELS"]
    );
    assert_eq!(&line("t1 ")[..3], ["t1", "5", "500"]);
    assert_eq!(&line("t2 ")[..2], ["t2", "2"]);
    assert!(
        text.contains("t3"),
        "a tenant without traffic is listed:\n{text}"
    );
    assert_eq!(line("echo_replies"), ["echo_replies", "4"]);
    assert_eq!(line("entries"), ["entries", "1", "(1", "resolved)"]);
    assert_eq!(line("learned"), ["learned", "3"]);
    // The firewall rules that decided flows, the flows last.
    let rule = text.lines().find(|l| l.contains("in allow tcp dport 22"));
    assert!(rule.is_some_and(|l| l.ends_with(" 5")), "{text}");
    assert!(!text.contains("default in"), "{text}");
    assert!(
        text.contains("(1 rules and default policies decided no flow yet)"),
        "{text}"
    );
    assert_eq!(stats::sum(stats::workers(&r), "rx_packets"), 30);
}

/// A stand-in tgw: answers each request on one connection with the next
/// of `reports`; the requests' ops.
fn fake_tgw(path: &Path, reports: Vec<Value>) -> JoinHandle<Vec<String>> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut ops = Vec::new();
        for report in reports {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let request: Value = serde_json::from_str(&line).unwrap();
            ops.push(request["op"].as_str().unwrap_or("").to_owned());
            let mut answer = Response::ok(request["id"].as_u64(), report);
            answer.id = request["id"].as_u64();
            let mut out = serde_json::to_vec(&answer).unwrap();
            out.push(b'\n');
            writer.write_all(&out).unwrap();
        }
        ops
    })
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn top_off_a_terminal_prints_one_block_a_refresh_and_no_escape_codes() {
    let dir = std::env::temp_dir().join(format!("tgwctl-top-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Scratch(dir);
    let socket = dir.0.join("tgw.sock");
    let (before, after) = (report(1_000_000, &[W::default()]), {
        let w = W {
            rx: 250_000,
            tx: 250_000,
            cycles: HZ / 4,
            busy: HZ / 8,
            process: 25_000_000,
            ..W::default()
        };
        report(1_000_000 + HZ / 4, &[w])
    });
    // The third report: tgw restarted (its clock is back near zero).
    let tgw = fake_tgw(&socket, vec![before, after, report(10, &[W::default()])]);
    let out = Command::new(TGWCTL)
        .arg("--socket")
        .arg(&socket)
        .args(["top", "--count", "2", "--interval", "0.05"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "{text:?}");
    assert_eq!(tgw.join().unwrap(), ["stats", "stats", "stats"]);
    // 250k frames in a quarter second of tgw's clock (whatever tgwctl's
    // own clock said): 1 Mpps, half busy, 100 cycles a frame.
    let first = text
        .lines()
        .find(|l| l.starts_with("0 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        first.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "1.000", "1.000", "50.0%", "100", "0", "7"]
    );
    assert_eq!(text.matches("tgw top:").count(), 1, "{text}");
    assert!(text.contains("\n\ntgw's clock went back"), "{text}");
    assert!(!text.contains("q Enter"), "{text}");
}

#[test]
fn top_json_is_a_line_a_refresh_with_the_unrounded_rates() {
    let dir = std::env::temp_dir().join(format!("tgwctl-top-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Scratch(dir);
    let socket = dir.0.join("tgw.sock");
    let w = W {
        rx: 1_234,
        cycles: HZ,
        busy: HZ / 4,
        t2: (0, 1_234),
        ..W::default()
    };
    let tgw = fake_tgw(&socket, vec![report(0, &[W::default()]), report(HZ, &[w])]);
    let out = Command::new(TGWCTL)
        .arg("--socket")
        .arg(&socket)
        .args(["--json", "top", "--count", "1", "--interval", "0.01"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tgw.join().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let r = &lines[0];
    assert_eq!(r["seconds"], 1.0);
    assert_eq!(r["workers"][0]["rx_pps"], 1234.0);
    assert_eq!(r["workers"][0]["busy"], 0.25);
    assert_eq!(
        r["tenants"],
        json!([{"name": "t2", "from_tunnel_pps": 0.0, "to_tunnel_pps": 1234.0}])
    );
}

/// Two reports of a gateway at the scale: 10k tenants, each
/// listed by both workers.
fn ten_thousand_tenants(tsc: u64, frames: u64) -> Value {
    let mut r = report(tsc, &[W::default(), W::default()]);
    for w in r["workers"].as_array_mut().unwrap() {
        let t = w["tenants"].as_object_mut().unwrap();
        for i in 0..10_000u64 {
            t.insert(
                format!("tenant-{i}"),
                json!({"from_tunnel_packets": i * frames, "to_tunnel_packets": i}),
            );
        }
    }
    r
}

#[test]
fn a_refresh_at_ten_thousand_tenants_takes_milliseconds() {
    let (a, b) = (ten_thousand_tenants(0, 1), ten_thousand_tenants(HZ, 2));
    // Matching tenants by name through a list took 5 s a refresh here
    // (debug build); by a map, about 50 ms.
    let started = std::time::Instant::now();
    let (a, b) = (
        Sample::from_report(&a).unwrap(),
        Sample::from_report(&b).unwrap(),
    );
    let r = rates(&a, &b).unwrap();
    let text = r.text(3);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "a refresh took {took:?}");
    // tenant-9999 moved 9999 frames from its tunnels on each worker in a
    // second of tgw's clock.
    assert_eq!(r.tenants.len(), 9_999);
    assert_eq!(r.tenants[0].name, "tenant-9999");
    assert_eq!(r.tenants[0].from_tunnel_pps, 2.0 * 9_999.0);
    assert!(
        text.contains("busiest tenants (3 of 9999 with traffic)"),
        "{text}"
    );
}

#[test]
fn top_without_a_tgw_exits_3_as_every_verb_does() {
    let out = Command::new(TGWCTL)
        .args(["--socket", "/nonexistent/tgw.sock", "top", "--count", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("tgwctl: no tgw listening on"),
        "{stderr}"
    );
}
