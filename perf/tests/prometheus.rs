//! A real Prometheus scraping tgw while paced traffic flows (issue 12):
//! `tgw-perf churn-test` runs tgw on memif with its paced generator (a
//! fixed rate to each traffic tenant) and a light churn, its traffic
//! elastic IP unbound for a while on purpose; tgw serves `/metrics`, and
//! Debian's Prometheus (started here on loopback, its TSDB in a scratch
//! directory, killed by PID afterwards) scrapes it every second.
//!
//! Through Prometheus's HTTP API: `rate()` of a tenant's frames into its
//! tunnel matches the rate the generator sent it within
//! [`RATE_TOLERANCE`]; the drops of the elastic IP's unbound time
//! (`no_route`) equal what tgw counted at exit; a tenant's last scraped
//! frame count lies between what the generator's receiver counted minus
//! the last second and what it sent.
//!
//! churn-test starts tgw itself; the `[metrics]` section reaches it
//! through a wrapper given as `--tgw` that appends it to the config file
//! tgw is started with, then becomes tgw (exec: the same PID, so
//! churn-test's SIGTERM reaches tgw).

mod common;
#[path = "../../tests/prometheus/mod.rs"]
mod prometheus;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use common::Scratch;
use serde_json::Value;

/// How far `rate()` may be from the generator's own rate: the median of
/// per-second `rate(...[4s])` over the run, against the frames the
/// generator sent divided by its sending time. The first three seconds'
/// windows reach back before the traffic (lower rates); with 10 s of
/// traffic the median is one of the steady seconds, which measured within
/// 0.5% of the generator's rate here (997/s for 1000/s). Scrapes land
/// about a second apart on a shared 2-vCPU machine, where the paced
/// generator itself may fall behind for a moment.
const RATE_TOLERANCE: f64 = 0.10;

/// Frames a second over all flows, traffic tenants, seconds of churn.
const TRAFFIC: u64 = 5_000;
const TENANTS: u64 = 4;
const SECONDS: f64 = 8.0;
const SETTLE: f64 = 1.0;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A shell script that adds `[metrics] listen = "ADDR"` to the file after
/// `--config` and then runs tgw in its place.
fn wrapper(dir: &Path, tgw: &Path, metrics: SocketAddr) -> PathBuf {
    let path = dir.join("tgw-with-metrics");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
prev=
for a in "$@"; do
  if [ "$prev" = "--config" ]; then
    printf '\n[metrics]\nlisten = "{metrics}"\n' >> "$a"
  fi
  prev="$a"
done
exec "{}" "$@"
"#,
            tgw.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn prometheus_sees_the_paced_rate_and_the_drops_tgw_counted() {
    let perf = Path::new(env!("CARGO_BIN_EXE_tgw-perf"));
    let tgw = perf.with_file_name("tgw");
    assert!(
        tgw.exists(),
        "{}: build it (`cargo build -p tgw`, or `cargo test --workspace`)",
        tgw.display()
    );
    let dir = Scratch::new("prometheus");
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let prom = prometheus::Prometheus::start(&dir.0, metrics);
    prom.wait_scraping();

    let json = dir.0.join("churn.json");
    let start = now();
    let mut cmd = std::process::Command::new(perf);
    cmd.arg("churn-test")
        .args(["--seconds", &SECONDS.to_string()])
        .args(["--settle", &SETTLE.to_string()])
        .args(["--rate", "10", "--churned", "4"])
        .args(["--traffic", &TRAFFIC.to_string()])
        .args(["--tenants", &TENANTS.to_string()])
        .arg("--flap-eip")
        .arg("--tgw")
        .arg(wrapper(&dir.0, &tgw, metrics))
        .arg("--json")
        .arg(&json);
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        cmd.arg("--no-huge");
    }
    let out = cmd.output().expect("run tgw-perf churn-test");
    let end = now();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tgw-perf churn-test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let n = |v: &Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"));

    // Scraped at all, and more than a few times.
    let scrapes = prom
        .value(r#"max_over_time(tgw_scrapes_total[5m])"#, Some(end))
        .unwrap_or_else(|| panic!("tgw was never scraped: {}", prom.targets()));
    assert!(scrapes >= 5.0, "{scrapes} scrapes: {}", prom.targets());

    let sending = SETTLE * 2.0 + SECONDS;
    let tenants = report["tenants"].as_array().unwrap();
    for t in tenants.iter().filter(|t| t["tenant"] != "e0") {
        let name = t["tenant"].as_str().unwrap();
        let (sent, received) = (n(t, "sent"), n(t, "received"));
        let series = format!(r#"tgw_tenant_to_tunnel_packets_total{{tenant="{name}"}}"#);

        // The rate, second by second over the run, where frames flowed.
        let rates: Vec<f64> = prom
            .query_range(&format!("rate({series}[4s])"), start, end, 1.0)
            .into_iter()
            .filter(|r| *r > 0.0)
            .collect();
        assert!(rates.len() >= 4, "{name}: rates {rates:?}");
        let median = median(&rates);
        let expected = sent as f64 / sending;
        eprintln!("{name}: rate() median {median:.1}/s, sent {expected:.1}/s; {rates:.1?}");
        assert!(
            (median - expected).abs() <= RATE_TOLERANCE * expected,
            "{name}: rate() median {median:.1}/s, the generator sent {expected:.1}/s (±{}%): {rates:?}",
            RATE_TOLERANCE * 100.0
        );

        // The last count scraped: all that arrived, less at most the last
        // second before tgw stopped (after its last scrape), and no more
        // than was sent.
        let last = prom
            .value(&format!("max_over_time({series}[5m])"), Some(end))
            .unwrap_or_else(|| panic!("no {series}"));
        let per_second = TRAFFIC as f64 / (TENANTS + 1) as f64;
        assert!(
            last <= sent as f64 && last >= received as f64 - 1.5 * per_second,
            "{name}: Prometheus saw {last} frames; the generator sent {sent}, got back {received}"
        );
    }

    // The elastic IP's frames while it was unbound: dropped as no_route,
    // all in the middle of the run, so the last scrape has them all.
    let no_route = report["drops"]["no_route"].as_u64().unwrap_or(0);
    assert!(no_route > 0, "the elastic IP was not unbound: {report}");
    let seen = prom.value(
        r#"max_over_time(tgw_drops_total{reason="no_route"}[5m])"#,
        Some(end),
    );
    assert_eq!(
        seen,
        Some(no_route as f64),
        "Prometheus's no_route drops against tgw's own at exit"
    );
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
