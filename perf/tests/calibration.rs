//! `tgw-perf run` judges every round by how fast both CPUs ran around it,
//! and testpmd by its best (docs/perf.md, "Which rounds count"): a second
//! of the real thing, with a re-run forbidden, must say so in its JSON and
//! its table.

mod common;

/// The run also judges testpmd against its best since boot, kept in
/// `--history`: seeded here with a rate no testpmd reaches, so that no
/// round is clean, and kept as it was (a best only rises).
#[test]
fn a_run_reports_its_calibrations_and_clean_rounds() {
    let dir = common::Scratch::new("history-test");
    let history = dir.0.join("best.json");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let huge = if std::env::var("TGW_HUGEPAGES").as_deref() == Ok("1") {
        "hugepages"
    } else {
        "no-hugepages"
    };
    let bench = format!("udp,64B,{huge},rsize=default");
    let seeded = serde_json::json!({"boot": boot.trim(), "testpmd_mpps": {&bench: 1000.0}});
    std::fs::write(&history, seeded.to_string()).unwrap();
    let report = common::tgw_perf(
        &[
            "run",
            "--history",
            history.to_str().unwrap(),
            "--seconds",
            "1",
            "--warmup",
            "0.3",
            "--rounds",
            "1",
            "--max-reruns",
            "0",
            "--flows",
            "64",
        ],
        "clean rounds: ",
    );
    assert_eq!(report["rounds_asked"], 1);
    assert_eq!(report["rounds_run"], 1, "--max-reruns 0 re-ran: {report}");
    let best = &report["calibration_best_mips"];
    for cpu in ["gen", "worker"] {
        assert!(best[cpu].as_f64().unwrap() > 1.0, "{cpu}: {best}");
    }
    let slowed_below = report["calibration_slowed_below"].as_f64().unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let c = &run["calibration"];
        for key in [
            "gen_before_mips",
            "gen_after_mips",
            "worker_before_mips",
            "worker_after_mips",
        ] {
            assert!(c[key].as_f64().unwrap() > 1.0, "{key}: {c}");
        }
        // The JSON's verdict is the threshold applied to its own shares.
        let shares = ["gen_share_of_best", "worker_share_of_best"].map(|k| c[k].as_f64().unwrap());
        assert!(shares.iter().all(|s| *s > 0.0 && *s <= 1.0), "{c}");
        let clean = shares.iter().all(|s| *s >= slowed_below);
        assert_eq!(c["clean"], clean, "{c}");
        assert_eq!(
            run["clean"],
            report["clean_rounds"] == serde_json::json!([0])
        );
    }
    // No round is clean against a best since boot of 1000 Mpps, and the
    // ratio says so.
    assert_eq!(report["testpmd_best_since_boot_mpps"], 1000.0, "{report}");
    assert_eq!(report["clean_rounds"], serde_json::json!([]), "{report}");
    assert_eq!(report["ratios_from_clean_rounds"], false, "{report}");
    assert_eq!(report["ratios"].as_array().unwrap().len(), 1, "{report}");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_eq!(kept, seeded, "a lower rate replaced the best");
}
