//! `tgw-perf ndr` end to end: a short search (one profile, 64 B, 1 s
//! trials, three steps) for testpmd and tgw on memif, then checks that
//! its JSON report is consistent with itself: the throughput is a rate
//! that passed, no higher than the line rate, with no loss at it; every
//! trial's counts add up; the latency is there when there is a rate to
//! measure it at; and the charts were drawn.

#[test]
fn a_short_ndr_search_reports_consistent_steps_and_charts() {
    let tmp = std::env::temp_dir().join(format!("tgw-perf-ndr-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let json = tmp.join("ndr.json");
    let charts = tmp.join("charts");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tgw-perf"));
    cmd.args([
        "ndr",
        "--profiles",
        "udp",
        "--sizes",
        "64",
        "--trial",
        "1",
        "--max-steps",
        "3",
        "--max-repeats",
        "0",
        "--warmup",
        "0.3",
        "--latency-at",
        "0.5",
    ])
    .arg("--json")
    .arg(&json)
    .arg("--charts")
    .arg(&charts);
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        cmd.arg("--no-huge");
    }
    let out = cmd.output().expect("run tgw-perf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tgw-perf ndr failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Shown if a check below fails.
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("RFC 2544 throughput, NDR"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    let results = report["results"].as_array().unwrap();
    let devices: Vec<&str> = results
        .iter()
        .map(|r| r["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["testpmd-macswap", "tgw"]);
    for r in results {
        consistent(r);
    }
    // Both searches had the same top: the first device's line rate.
    assert_eq!(results[0]["line_rate_pps"], results[1]["line_rate_pps"]);

    for name in ["throughput-udp.png", "search-udp-64.png"] {
        let png = std::fs::read(charts.join(name)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        assert!(png.len() > 5_000, "{name}: {} bytes", png.len());
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// One device's search: at most three trials (no repeats), their counts
/// adding up, the throughput the highest rate that passed (loss 0 at
/// it) and no more than the line rate.
fn consistent(r: &serde_json::Value) {
    let device = r["device"].as_str().unwrap();
    let line = r["line_rate_pps"].as_f64().unwrap();
    let ndr = r["ndr_pps"].as_f64().unwrap();
    assert!(line > 0.0, "{device}: no line rate");
    assert!(ndr >= 0.0 && ndr <= line, "{device}: {ndr} of {line}");
    let steps = r["steps"].as_array().unwrap();
    assert!(
        (1..=3).contains(&steps.len()),
        "{device}: {} steps",
        steps.len()
    );
    assert_eq!(steps[0]["rate_pps"].as_f64(), Some(line), "{device}");
    let mut best_pass = 0.0f64;
    for s in steps {
        let n = |k: &str| s[k].as_u64().unwrap();
        let (sent, received, lost) = (n("sent"), n("received"), n("lost"));
        assert!(received <= sent, "{device}: {s}");
        assert_eq!(lost, sent - received, "{device}: {s}");
        assert!(n("refused") <= lost, "{device}: {s}");
        // Paced: never more than a second's worth of the asked rate (a
        // generator on a slowed CPU may offer less, by far in a debug
        // build while the machine builds).
        let rate = s["rate_pps"].as_f64().unwrap();
        assert!(sent > 0 && sent as f64 <= rate + 1.0, "{device}: {s}");
        assert_eq!(s["pass"].as_bool(), Some(lost == 0), "{device}: {s}");
        if lost == 0 {
            best_pass = best_pass.max(rate);
        }
    }
    assert_eq!(ndr, best_pass, "{device}: the throughput is the best pass");
    assert!(
        steps[0]["received"].as_u64().unwrap() > 0,
        "{device}: nothing came back"
    );
    let latency = &r["latency"];
    if ndr > 0.0 {
        let lat = &latency["latency"];
        assert_eq!(latency["rate_pps"].as_f64(), Some(ndr * 0.5), "{device}");
        let q = |k: &str| lat[k].as_u64().unwrap();
        assert!(q("count") > 0, "{device}: {lat}");
        assert!(
            q("min_ns") <= q("p50_ns")
                && q("p50_ns") <= q("p99_ns")
                && q("p99_ns") <= q("p999_ns")
                && q("p999_ns") <= q("max_ns"),
            "{device}: {lat}"
        );
    } else {
        assert!(latency.is_null(), "{device}: latency without a rate");
    }
}
