//! `tgw-perf flow` end to end on a small table: it runs, both tables
//! answer every query as their inserts said, and the report has rates and
//! memory for both. How fast is for the benchmark, not for the test.

use std::process::Command;

#[test]
fn flow_measures_ours_and_rte_hash_and_every_answer_is_right() {
    let json = std::env::temp_dir().join(format!("tgw-perf-flow-test-{}.json", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgw-perf"));
    cmd.args([
        "flow",
        "--flows",
        "20000",
        "--queries",
        "100000",
        "--seconds",
        "0.05",
        "--rounds",
        "2",
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
        "tgw-perf flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ours/rte_hash:"), "no ratio in:\n{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["agree"], true, "{report}");
    assert_eq!(report["flows"], 20000);
    assert_eq!(report["keys"], 40000);
    assert!(report["checked"].as_u64().unwrap() >= 6 * 100_000);
    for rate in [
        &report["ours"]["bulk"]["median"],
        &report["ours"]["single"]["median"],
        &report["rte_hash"]["bulk"]["median"],
    ] {
        assert!(rate.as_f64().unwrap() > 0.0, "a zero rate in {report}");
    }
    let own = report["ours"]["overhead_bytes"].as_f64().unwrap() / 20000.0;
    assert!(own < 64.0, "{own} bytes per flow of the table's own");
    assert!(report["rte_hash"]["memory_bytes"].as_u64().unwrap() > 0);
}
