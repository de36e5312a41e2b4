//! `tgw-perf run --profile new-flows` end to end, for a second: every
//! frame tgw forwards must have opened a flow of its own, and the report
//! must say how many per second.

mod common;

/// A generator that repeated its clients (the `nat` profile's, cycling
/// through `--flows`) would show here as flows created far below the
/// frames forwarded: the second pass hits the flows the first made.
#[test]
fn every_frame_of_the_new_flows_profile_opens_a_flow() {
    let report = common::tgw_perf(
        &[
            "run",
            "--no-history",
            "--profile",
            "new-flows",
            "--devices",
            "tgw",
            "--seconds",
            "1",
            "--warmup",
            "0.3",
            "--flows",
            "65536",
        ],
        "new flows:",
    );
    let run = &report["runs"][0];
    let received = run["raw"]["received_total"].as_u64().unwrap();
    assert!(received > 10_000, "tgw forwarded only {received}: {run}");
    let flows = &run["new_flows"];
    let created = flows["flows_created"].as_u64().unwrap();
    assert!(
        created as f64 >= 0.9 * received as f64,
        "{created} flows created for {received} frames forwarded: {run}"
    );
    assert!(
        flows["per_second_per_core"].as_f64().unwrap() > 0.0,
        "{run}"
    );
    let refused = flows["refused"].as_object().unwrap();
    for reason in ["flow_table_full", "quota", "unreplied_quota", "no_nat_port"] {
        assert!(refused[reason].is_u64(), "{reason} not reported: {run}");
    }
}
