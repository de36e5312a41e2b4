//! `tgw-perf run` judges every round by how fast both CPUs ran around it
//! (docs/perf.md, "Which rounds count"): a second of the real thing, with
//! a re-run forbidden, must say so in its JSON and its table.

mod common;

#[test]
fn a_run_reports_its_calibrations_and_clean_rounds() {
    let report = common::tgw_perf(
        &[
            "run",
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
    // The ratio is the clean round's, or, with none clean, marked so.
    let clean = !report["clean_rounds"].as_array().unwrap().is_empty();
    assert_eq!(report["ratios_from_clean_rounds"], clean, "{report}");
    assert_eq!(report["ratios"].as_array().unwrap().len(), 1, "{report}");
}
