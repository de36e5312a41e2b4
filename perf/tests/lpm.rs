//! `tgw-perf lpm` end to end on a small table: it runs, both LPMs answer,
//! and they agree on every address. How fast is for the benchmark, not
//! for the test.

use std::process::Command;

#[test]
fn lpm_measures_ours_and_rte_lpm_and_they_agree() {
    let json = std::env::temp_dir().join(format!("tgw-perf-lpm-test-{}.json", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgw-perf"));
    cmd.args([
        "lpm",
        "--routes",
        "20000",
        "--lookups",
        "200000",
        "--vrfs",
        "1024",
        "--json",
    ])
    .arg(&json);
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        cmd.arg("--no-huge");
    }
    let out = cmd.output().expect("run tgw-perf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tgw-perf lpm failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ours/rte_lpm:"), "no ratio in:\n{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["agree"], true, "{report}");
    assert_eq!(report["routes"], 20000);
    for rate in [
        &report["ours"]["bulk"]["median"],
        &report["ours"]["single"]["median"],
        &report["rte_lpm"]["bulk"]["median"],
        &report["vrf"]["bulk"]["median"],
    ] {
        assert!(rate.as_f64().unwrap() > 0.0, "a zero rate in {report}");
    }
    assert!(
        report["hits"].as_u64().unwrap() > 0,
        "no address hit a route"
    );
    assert!(report["ours"]["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        report["rte_lpm"]["memory_bytes"].as_u64().unwrap() >> 20,
        64,
        "rte_lpm's tbl24 alone is 64 MiB"
    );
    assert_eq!(
        report["vrf"]["rte_lpm_would_need_bytes"].as_u64().unwrap(),
        1024 << 26
    );
}
