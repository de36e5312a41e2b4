//! `tgw-perf flow` end to end on a small table: it runs, both tables
//! answer every query as their inserts said, and the report has rates and
//! memory for both. How fast is for the benchmark, not for the test.

mod common;

#[test]
fn flow_measures_ours_and_rte_hash_and_every_answer_is_right() {
    let report = common::tgw_perf(
        &[
            "flow",
            "--flows",
            "20000",
            "--queries",
            "100000",
            "--seconds",
            "0.05",
            "--rounds",
            "2",
            "--churn-seconds",
            "0.05",
        ],
        "ours/rte_hash:",
    );
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
    // Flows created at full fill: every one a miss first, none refused.
    let churn = &report["churn"];
    assert!(churn["created"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(churn["refused"], 0, "{report}");
}
