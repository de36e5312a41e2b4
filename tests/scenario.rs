//! The reference scenario end to end with real Linux hosts (issue 5):
//! runs `tgw-perf scenario` — the one implementation, which scripts/demo
//! runs too — and asserts every check it makes. A client and two tenant
//! hosts in network namespaces, tgw between them on af_packet (and af_xdp) ports, no
//! static neighbour; first the runtime steps of issue 11 (tgwctl and
//! SIGHUP change the running tgw). Needs root (it skips, saying so,
//! without); the scenario removes every namespace, process and file it
//! makes.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// tgw-perf is another package's binary, so cargo gives no
/// `CARGO_BIN_EXE_` for it; `cargo test --workspace` builds it next to tgw.
fn tgw_perf() -> PathBuf {
    fresh_sibling("tgw-perf", "perf", &["perf/src", "examples/reference.toml"])
}

/// tgwctl, which the scenario's runtime steps change tgw with: the `ctl`
/// package's binary, next to tgw as well.
fn tgwctl() -> PathBuf {
    fresh_sibling("tgwctl", "ctl", &["ctl/src"])
}

/// The binary `name` of package `package`, next to tgw, and not older than
/// its `sources` (files or directories under the workspace root).
fn fresh_sibling(name: &str, package: &str, sources_under: &[&str]) -> PathBuf {
    let tgw = PathBuf::from(env!("CARGO_BIN_EXE_tgw"));
    let bin = tgw.with_file_name(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p {package}` (in the same profile) \
         or run `cargo test --workspace`, which builds every binary",
        bin.display()
    );
    // `cargo test --test scenario` rebuilds tgw but not the others:
    // refuse to check with an old one.
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let newer = sources_under
        .iter()
        .flat_map(|s| {
            let p = root.join(s);
            if p.is_dir() {
                sources(&p)
            } else {
                vec![p]
            }
        })
        .find(|f| {
            let changed = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            matches!((changed, built), (Some(c), Some(b)) if c > b)
        });
    if let Some(f) = newer {
        panic!(
            "{} is older than {}: rebuild it (`cargo build -p {package}`, or run \
             `cargo test --workspace`)",
            bin.display(),
            f.display()
        );
    }
    bin
}

/// The files under `dir`, a few levels deep.
fn sources(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten().take(1000) {
            let p = e.path();
            if p.is_dir() && depth < 4 {
                todo.push((p, depth + 1));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Every check of issue 5 and the runtime steps of issue 11, by the start
/// of its name: each must pass. A check that disappears from the
/// scenario, or one this list does not know, fails here.
const MUST_PASS: [&str; 25] = [
    // The runtime steps (perf/src/scenario/runtime.rs), first: tgwctl binds
    // tenant 2's elastic IP, removes and puts back a rule, unbinds an
    // address under an open connection; SIGHUP with a broken file.
    "tenant 2's elastic IP bound at runtime: 2.2.2.12 unreachable, then tgwctl eip add",
    "tenant 1's in allow tcp dport 22 removed at runtime: a new connection to 2.2.2.11:22 refused",
    "2.2.2.12 unbound under an open TCP connection: its next segment revoked, the client stalls",
    "SIGHUP with a broken config file: refused with FILE:LINE, the running state unchanged",
    "TCP 2.2.2.11:22 reaches host1",
    "TCP 2.2.2.12:23 reaches host2",
    "the two 10.0.0.7 are different hosts",
    "10.0.0.7 is the hosts' only address, 2.2.2.11/12 their elastic IPs",
    "ping 2.2.2.11 answered, TTL decremented once",
    "ping 2.2.2.12 answered, TTL decremented once",
    "proxy ARP inside the tunnels",
    "tenant 1 opens the client's TCP 23 and the client sees 2.2.2.11",
    "bulk TCP through tgw",
    "tgw stops cleanly",
    "tunnel keys on the underlay",
    "TTL decremented once on the way in",
    "10.0.0.7 never on the public side",
    "GRE with an unknown key dropped and counted",
    "client cannot open 2.2.2.11:23 or 2.2.2.12:22",
    "tenant 1 cannot open the client's TCP 22, tenant 2 its TCP 23",
    "flows and firewall decisions in tgw's counters",
    "tgw's resolver learned the client and the hosts",
    "no other drops in tgw",
    "host1's tunnel (Linux's csum seq) takes everything tgw sends it",
    // issue 12: a scrape of /metrics says what tgw's report says.
    "/metrics scraped in tgw's namespace agrees with tgwctl stats",
];

/// The check that only runs with two workers.
const TWO_WORKERS: &str = "two workers: the traffic spread, each connection met at its owner";

/// The scenarios run one at a time: their namespaces are named after the
/// process, and two would share the two CPUs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn reference_scenario_with_real_hosts() {
    scenario("reference_scenario_with_real_hosts", "af_packet", 1);
}

/// The same with two workers, each polling a queue of each port that the
/// kernel fills by flow hash: a connection's two directions often arrive
/// at different workers and must meet at the one owning it.
#[test]
fn reference_scenario_with_two_workers() {
    scenario("reference_scenario_with_two_workers", "af_packet", 2);
}

/// The same on AF_XDP sockets: unlike af_packet (whose fanout defragments
/// in the kernel), tgw sees the frames exactly as the veth carries them.
#[test]
fn reference_scenario_on_af_xdp() {
    scenario("reference_scenario_on_af_xdp", "af_xdp", 1);
}

fn scenario(test: &str, pmd: &str, workers: u8) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        // Straight to stderr, past the harness's capture: a skip must show
        // in the log of a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: not root (network namespaces need root)"
        );
        return;
    }
    let perf = tgw_perf();
    let ctl = tgwctl();
    let json = std::env::temp_dir().join(format!(
        "tgw-test-scenario-{}-{pmd}-{workers}.json",
        std::process::id()
    ));
    let mut cmd = Command::new(&perf);
    cmd.args(["scenario", "--tgw", env!("CARGO_BIN_EXE_tgw"), "--tgwctl"])
        .arg(&ctl)
        .arg("--json")
        .arg(&json)
        .args(["--pmd", pmd, "--workers", &workers.to_string()]);
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        cmd.arg("--no-huge");
    }
    let started = Instant::now();
    let out = cmd.output().expect("start tgw-perf scenario");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The PASS/FAIL lines and the summary straight to stderr, past
    // the harness's capture: they belong in the log of a passing run too.
    let _ = writeln!(std::io::stderr(), "{stderr}{stdout}");
    let report: Option<Value> = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let _ = std::fs::remove_file(&json);
    let report = report.unwrap_or_else(|| {
        panic!(
            "the scenario wrote no report ({}):\n{stdout}\n{stderr}",
            out.status
        )
    });
    let checks = report["checks"].as_array().expect("checks");
    let status_of = |start: &str| {
        let found: Vec<&Value> = checks
            .iter()
            .filter(|c| c["name"].as_str().unwrap_or_default().starts_with(start))
            .collect();
        assert_eq!(found.len(), 1, "one check named {start:?}: {checks:#?}");
        (
            found[0]["status"].as_str().unwrap_or_default().to_owned(),
            found[0]["detail"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let mut failed = Vec::new();
    let must_pass: Vec<&str> = MUST_PASS
        .iter()
        .copied()
        .chain((workers > 1).then_some(TWO_WORKERS))
        .collect();
    for name in &must_pass {
        let (status, detail) = status_of(name);
        if status != "PASS" {
            failed.push(format!("{status} {name}: {detail}"));
        }
    }
    assert_eq!(
        checks.len(),
        must_pass.len(),
        "a check this test does not know: {checks:#?}"
    );
    // Nothing is left pending: every check ran and either passed or failed.
    for c in checks {
        let status = c["status"].as_str().unwrap_or_default();
        assert!(matches!(status, "PASS" | "FAIL"), "{status}: {c}");
    }
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
    assert!(out.status.success(), "tgw-perf scenario: {}", out.status);
    // Bounded: setup, traffic and teardown take seconds, not minutes.
    assert!(elapsed < Duration::from_secs(180), "took {elapsed:?}");
    // Nothing left behind: no namespace of this run.
    let left = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left = String::from_utf8_lossy(&left.stdout);
    let pid = out_pid(&stderr);
    if let Some(pid) = pid {
        assert!(
            !left.contains(&format!("tgwt-{pid}-")),
            "namespaces left behind:\n{left}"
        );
    }
}

/// The scenario's process id, from its scratch directory's name in its
/// first line (`... scratch /tmp/tgwt-PID-scenario/`).
fn out_pid(stderr: &str) -> Option<u32> {
    let at = stderr.find("tgwt-")? + "tgwt-".len();
    stderr[at..].split('-').next()?.parse().ok()
}
