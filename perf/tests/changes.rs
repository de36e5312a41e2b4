//! `tgw-perf changes` end to end at a small scale: every change of every
//! kind is made through the daemon's handler and succeeds, the batch binds
//! and unbinds all its elastic IPs, and the snapshot after holds what the
//! one before held. How fast is for the benchmark, not for the test.

#[test]
fn changes_are_all_made_and_the_snapshot_ends_as_it_began() {
    let json = std::env::temp_dir().join(format!("tgw-perf-changes-{}.json", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tgw-perf"))
        .args([
            "changes",
            "--tenants",
            "40",
            "--eips",
            "200",
            "--global-routes",
            "2000",
            "--changes",
            "100",
            "--batch",
            "400",
            "--readers",
            "2",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run tgw-perf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tgw-perf changes failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let kinds = [
        "eip.add",
        "eip.del",
        "route.add",
        "route.del",
        "rule.add",
        "rule.del",
        "tenant.add",
        "tenant.del",
    ];
    for kind in kinds {
        assert_eq!(r["singles"][kind]["changes"], 100, "{kind} in {r}");
        assert!(stdout.contains(kind), "{kind} missing from:\n{stdout}");
    }
    assert_eq!(r["batch"]["eips"], 400);
    assert_eq!(r["batch"]["memory_after_add"]["eips"], 600, "{r}");
    for when in ["memory_before", "memory_after"] {
        assert_eq!(r[when]["tenants"], 40, "{when} in {r}");
        assert_eq!(r[when]["eips"], 200, "{when} in {r}");
        assert_eq!(r[when]["ingress_routes"], 40, "{when} in {r}");
        assert_eq!(
            r[when]["public_routes"], 2001,
            "{when}: 2000 routes and the port's subnet"
        );
    }
    assert!(
        r["snapshots_taken"].as_u64().unwrap() > 0,
        "the readers took no snapshot"
    );
}
