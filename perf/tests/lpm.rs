//! `tgw-perf lpm` end to end on a small table: it runs, both LPMs answer,
//! and they agree on every address. How fast is for the benchmark, not
//! for the test.

mod common;

#[test]
fn lpm_measures_ours_and_rte_lpm_and_they_agree() {
    let report = common::tgw_perf(
        &[
            "lpm",
            "--routes",
            "20000",
            "--lookups",
            "200000",
            "--vrfs",
            "1024",
        ],
        "ours/rte_lpm:",
    );
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
