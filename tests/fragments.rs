//! Fragments with real Linux hosts (issue 9, defect 13): the reference
//! scenario on af_xdp ports (af_packet's fanout defragments in the
//! kernel, so tgw would never see a fragment) with its fragment checks
//! (`tgw-perf scenario --fragments`): a UDP datagram the client sends in
//! fragments out of order, and one too big for the tunnel without DF, each
//! delivered whole to host 1's socket, and a 3000-byte ping without DF
//! answered. Needs root (it skips, saying so, without); the scenario
//! removes every namespace, process and file it makes.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The checks this test is about, by the start of their names.
const FRAGMENT_CHECKS: [&str; 3] = [
    "fragments out of order: a UDP datagram from the client reaches host1's socket whole",
    "too big for the tunnel without DF: a 3000-byte UDP datagram reaches host1's socket whole",
    "a 3000-byte ping without DF to 2.2.2.11 answered",
];

/// tgw-perf, next to tgw (`cargo test --workspace` builds both), and not
/// older than its sources (as tests/scenario.rs checks too).
fn tgw_perf() -> PathBuf {
    let perf = PathBuf::from(env!("CARGO_BIN_EXE_tgw")).with_file_name("tgw-perf");
    let built = std::fs::metadata(&perf).and_then(|m| m.modified());
    let built = built.unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build it with `cargo build -p perf` or run `cargo test --workspace`",
            perf.display()
        )
    });
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("perf/src/scenario");
    for f in std::fs::read_dir(&scenario)
        .expect("perf/src/scenario")
        .flatten()
    {
        let changed = f.metadata().and_then(|m| m.modified()).ok();
        assert!(
            changed.is_none_or(|c| c <= built),
            "{} is older than {}: rebuild it (`cargo build -p perf`)",
            perf.display(),
            f.path().display()
        );
    }
    perf
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uid = s.lines().find(|l| l.starts_with("Uid:"))?;
            uid.split_whitespace().nth(2).map(|u| u == "0")
        })
        .unwrap_or(false)
}

#[test]
fn fragments_out_of_order_and_too_big_reach_real_hosts_whole_on_af_xdp() {
    let test = "fragments_out_of_order_and_too_big_reach_real_hosts_whole_on_af_xdp";
    if !is_root() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: not root (network namespaces need root)"
        );
        return;
    }
    let json = std::env::temp_dir().join(format!("tgw-test-fragments-{}.json", std::process::id()));
    let mut cmd = Command::new(tgw_perf());
    cmd.args(["scenario", "--tgw", env!("CARGO_BIN_EXE_tgw"), "--json"])
        .arg(&json)
        .args(["--pmd", "af_xdp", "--fragments"]);
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        cmd.arg("--no-huge");
    }
    let started = Instant::now();
    let out = cmd.output().expect("start tgw-perf scenario");
    let elapsed = started.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let _ = writeln!(std::io::stderr(), "{stderr}{stdout}");
    let report: Option<Value> = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let _ = std::fs::remove_file(&json);
    let report =
        report.unwrap_or_else(|| panic!("no report ({}):\n{stdout}\n{stderr}", out.status));

    let checks = report["checks"].as_array().expect("checks");
    for name in FRAGMENT_CHECKS {
        assert_eq!(
            checks
                .iter()
                .filter(|c| c["name"].as_str().unwrap_or_default().starts_with(name))
                .count(),
            1,
            "one check named {name:?}"
        );
    }
    // The rest of the scenario must hold too: fragments may not cost the
    // firewall, the flow accounting or a drop anywhere else.
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["status"] != "PASS")
        .map(|c| format!("{} {}: {}", c["status"], c["name"], c["detail"]))
        .collect();
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
    assert!(out.status.success(), "tgw-perf scenario: {}", out.status);

    // tgw did the work, not a stack in between: a fragment waited for its
    // first, and datagrams were cut by the control plane.
    let tgw = &report["tgw"];
    let sum = |key: &str| -> u64 {
        tgw["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| w[key].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(sum("fragments_parked") >= 1, "nothing parked: {tgw}");
    assert_eq!(sum("fragments_released"), sum("fragments_parked"));
    assert!(sum("punted_to_fragment") >= 2, "nothing cut: {tgw}");
    let resolver = &tgw["resolver"];
    assert!(
        resolver["fragments"].as_u64().unwrap_or(0) >= 4,
        "{resolver}"
    );
    assert_eq!(resolver["fragment_failed"], 0, "{resolver}");
    assert!(elapsed < Duration::from_secs(180), "took {elapsed:?}");
}
