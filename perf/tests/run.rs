//! tgw-perf end to end: a generator process, tgw and testpmd on memif, for
//! a second each. It checks that traffic really flowed through both and
//! that the report carries the numbers the README promises, not how fast
//! they are (that is for benchmarks, not tests).

use std::process::Command;

#[test]
fn run_measures_tgw_and_testpmd_in_the_same_run() {
    let json = std::env::temp_dir().join(format!("tgw-perf-test-{}.json", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgw-perf"));
    cmd.args([
        "run",
        "--seconds",
        "1",
        "--warmup",
        "0.3",
        "--flows",
        "64",
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
        "tgw-perf failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tgw/testpmd:"), "no ratio in:\n{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let device = run["device"].as_str().unwrap();
        let received = run["raw"]["received"].as_u64().unwrap();
        let sent = run["raw"]["sent"].as_u64().unwrap();
        assert!(
            received > 10_000,
            "{device} forwarded only {received} frames"
        );
        assert!(received <= sent, "{device}: more frames back than sent");
        assert!(
            run["loss"].as_f64().unwrap() < 0.01,
            "{device} lost frames: {run}"
        );
    }
    let tgw = runs.iter().find(|r| r["device"] == "tgw").unwrap();
    let cycles = tgw["cycles_per_frame_process"].as_f64().unwrap();
    assert!(cycles > 0.0, "tgw reported no processing cycles");
    assert!(report["ratio_median"].as_f64().unwrap() > 0.0);
}
