//! tgw's `/metrics` in the scenario (issue 12): the scenario's tgw serves
//! it on the loopback of its own namespace, and once the traffic is over
//! `curl` in that namespace scrapes it once, between two `tgwctl stats`.
//! The scrape must say what tgw's own report says. tgw-perf cannot reach
//! that loopback from its own thread: entering a namespace is `setns`,
//! which this crate (no `unsafe`) leaves to `ip netns exec`.

use std::time::Duration;

use serde_json::Value;

use super::checks::{Checks, Summary};
use super::runtime::Ctl;
use super::world::World;
use super::{u, workers_total, HOSTS, UNKNOWN_SENT};

/// `[metrics] listen` of the scenario's tgw. The loopback of tgw's
/// namespace, made for this run, where nothing else listens: the port is
/// free (docs/metrics.md's example port).
pub(super) const LISTEN: &str = "127.0.0.1:9400";
/// The check's name (tests/scenario.rs asserts it by its start).
pub(super) const NAME: &str = "/metrics scraped in tgw's namespace agrees with tgwctl stats: \
     tenants' tunnel frames, gre_unknown_key, every worker's heartbeat under 1 s";
/// How long curl may take for the scrape: a debug tgw on a shared machine
/// answers in milliseconds, and the endpoint's own limits are seconds.
const SCRAPE_LIMIT_S: u64 = 10;
/// A heartbeat older than this means a stopped worker: the alert
/// docs/metrics.md suggests.
const HEARTBEAT_LIMIT_S: f64 = 1.0;
/// The per-tenant series judged, and the key of the same counter in
/// tgw's report (`tgwctl stats --json`, `--stats-json`).
const TUNNEL_FRAMES: [(&str, &str); 2] = [
    ("tgw_tenant_to_tunnel_packets_total", "to_tunnel_packets"),
    (
        "tgw_tenant_from_tunnel_packets_total",
        "from_tunnel_packets",
    ),
];
const UNKNOWN_KEY_DROPS: &str = r#"tgw_drops_total{reason="gre_unknown_key"}"#;
const HEARTBEAT: &str = "tgw_worker_heartbeat_age_seconds";

/// Scrapes tgw between two `tgwctl stats`, records the check and puts the
/// lines it judged in the summary.
pub(super) fn check(w: &World, ctl: &Ctl, checks: &mut Checks, summary: &mut Summary) {
    let result = (|| {
        let before = ctl.json(w, &["stats"])?;
        let body = scrape(w)?;
        let after = ctl.json(w, &["stats"])?;
        summary.metrics = shown(&body);
        judge(&body, &before, &after)
    })();
    checks.record(NAME, result);
}

/// `GET /metrics` with curl in tgw's namespace: the body.
fn scrape(w: &World) -> Result<String, String> {
    let url = format!("http://{LISTEN}/metrics");
    let limit = SCRAPE_LIMIT_S.to_string();
    let argv = ["curl", "-sS", "--fail", "--max-time", &limit, &url];
    let out = w
        .net
        .try_run(&w.gw, &argv, Duration::from_secs(SCRAPE_LIMIT_S + 5))
        .map_err(|e| format!("curl {url}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl {url}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{url}: not UTF-8: {e}"))
}

/// The scrape against tgw's reports just before and just after it: each
/// tenant's tunnel frames (non-zero: both tenants had traffic each way)
/// between the two, the unknown-key drops what the scenario sent, and a
/// heartbeat under [`HEARTBEAT_LIMIT_S`] for each of the report's workers.
/// Nothing moves once the traffic is over, so the two reports are
/// normally equal and so must the scrape be.
fn judge(body: &str, before: &Value, after: &Value) -> Result<String, String> {
    let (lo, hi) = (workers_total(before), workers_total(after));
    let mut wrong = Vec::new();
    let mut parts = Vec::new();
    for h in &HOSTS {
        let mut seen = Vec::new();
        for (family, key) in TUNNEL_FRAMES {
            let series = format!("{family}{{tenant=\"{}\"}}", h.tenant);
            let (a, b) = (
                u(&lo["tenants"][h.tenant], key),
                u(&hi["tenants"][h.tenant], key),
            );
            match sample(body, &series) {
                Some(v) if v > 0 && a <= v && v <= b => seen.push(v),
                got => wrong.push(format!(
                    "{series} scraped {got:?}, tgwctl stats {}",
                    span(a, b)
                )),
            }
        }
        if let [to, from] = seen[..] {
            parts.push(format!(
                "{}: {to} frames into its tunnels, {from} from them",
                h.tenant
            ));
        }
    }
    match sample(body, UNKNOWN_KEY_DROPS) {
        Some(n) if n == UNKNOWN_SENT => parts.push(format!("gre_unknown_key {n}")),
        got => wrong.push(format!(
            "{UNKNOWN_KEY_DROPS} scraped {got:?}, {UNKNOWN_SENT} sent"
        )),
    }
    let workers = before["workers"].as_array().map_or(0, Vec::len);
    let ages = heartbeats(body);
    let old: Vec<&(String, f64)> = ages
        .iter()
        .filter(|(_, age)| age.is_nan() || *age >= HEARTBEAT_LIMIT_S)
        .collect();
    if ages.len() != workers || workers == 0 || !old.is_empty() {
        wrong.push(format!(
            "{HEARTBEAT}: {ages:?} for {workers} workers, at or over {HEARTBEAT_LIMIT_S} s: {old:?}"
        ));
    } else {
        let ages: Vec<String> = ages.iter().map(|(_, a)| format!("{a:.3} s")).collect();
        parts.push(format!("heartbeat ages {}", ages.join(", ")));
    }
    if wrong.is_empty() {
        Ok(format!("{}, as tgwctl stats says", parts.join("; ")))
    } else {
        Err(wrong.join("; "))
    }
}

/// `a` if the two reports agree, else the range between them.
fn span(a: u64, b: u64) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}..={b}")
    }
}

/// The value of the sample line `series` (name and labels as written),
/// if the body has it and it is a whole number.
fn sample(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Each `tgw_worker_heartbeat_age_seconds` sample: (labels, seconds).
fn heartbeats(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter_map(|l| l.strip_prefix(HEARTBEAT)?.strip_prefix('{'))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            Some((labels.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The lines the check judged, as scraped, for the summary.
fn shown(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| {
            TUNNEL_FRAMES
                .iter()
                .any(|(f, _)| l.starts_with(&format!("{f}{{")))
                || l.starts_with(UNKNOWN_KEY_DROPS)
                || l.starts_with(&format!("{HEARTBEAT}{{"))
                || l.starts_with("tgw_build_info{")
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// tgw's report as `tgwctl stats --json` gives it: two workers, each
    /// with its share of the tenants' frames.
    fn report() -> Value {
        let worker = |t1: u64, t2: u64| {
            json!({
                "drops": {"gre_unknown_key": 5},
                "tenants": {
                    "t1": {"to_tunnel_packets": t1, "from_tunnel_packets": t1 + 1},
                    "t2": {"to_tunnel_packets": t2, "from_tunnel_packets": t2 + 1},
                },
            })
        };
        json!({"workers": [worker(100, 10), worker(20, 2)]})
    }

    /// A scrape, written by hand in the text format: t1 120 frames in,
    /// 122 out; t2 12 in, 14 out.
    fn body(t1_to: u64, unknown: u64, age: &str) -> String {
        format!(
            "# TYPE tgw_tenant_to_tunnel_packets_total counter\n\
             tgw_tenant_to_tunnel_packets_total{{tenant=\"t1\"}} {t1_to}\n\
             tgw_tenant_to_tunnel_packets_total{{tenant=\"t2\"}} 12\n\
             tgw_tenant_from_tunnel_packets_total{{tenant=\"t1\"}} 122\n\
             tgw_tenant_from_tunnel_packets_total{{tenant=\"t2\"}} 14\n\
             tgw_drops_total{{reason=\"gre_unknown_key\"}} {unknown}\n\
             tgw_drops_total{{reason=\"gre_unknown_key_x\"}} 9\n\
             tgw_worker_heartbeat_age_seconds{{worker=\"0\"}} 0.002\n\
             tgw_worker_heartbeat_age_seconds{{worker=\"1\"}} {age}\n"
        )
    }

    #[test]
    fn a_scrape_that_says_what_the_report_says_passes() {
        let d = judge(&body(120, 5, "0.001"), &report(), &report()).unwrap();
        assert!(
            d.contains("t1: 120 frames into its tunnels, 122 from them"),
            "{d}"
        );
        assert!(
            d.contains("t2: 12 frames into its tunnels, 14 from them"),
            "{d}"
        );
        assert!(d.contains("gre_unknown_key 5"), "{d}");
    }

    #[test]
    fn another_tenants_count_fails() {
        // t1's series with t2's count, as if the labels were swapped.
        let e = judge(&body(12, 5, "0.001"), &report(), &report()).unwrap_err();
        assert!(
            e.contains(r#"to_tunnel_packets_total{tenant="t1"} scraped Some(12)"#),
            "{e}"
        );
    }

    #[test]
    fn a_count_outside_the_two_reports_fails_and_inside_passes() {
        let mut later = report();
        later["workers"][1]["tenants"]["t1"]["to_tunnel_packets"] = json!(25);
        // 120 before, 125 after: a scrape in between may say 121.
        assert!(judge(&body(121, 5, "0.001"), &report(), &later).is_ok());
        let e = judge(&body(126, 5, "0.001"), &report(), &later).unwrap_err();
        assert!(e.contains("tgwctl stats 120..=125"), "{e}");
    }

    #[test]
    fn unknown_key_drops_other_than_sent_fail() {
        let e = judge(&body(120, 4, "0.001"), &report(), &report()).unwrap_err();
        assert!(e.contains("scraped Some(4), 5 sent"), "{e}");
        assert!(judge(&body(120, 6, "0.001"), &report(), &report()).is_err());
    }

    #[test]
    fn a_stopped_or_missing_worker_fails() {
        let e = judge(&body(120, 5, "1.5"), &report(), &report()).unwrap_err();
        assert!(e.contains("at or over 1 s"), "{e}");
        let mut three = report();
        three["workers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"tenants": {}}));
        assert!(judge(&body(120, 5, "0.001"), &three, &three).is_err());
        assert!(judge(&body(120, 5, "NaN"), &report(), &report()).is_err());
    }

    #[test]
    fn shown_lines_are_the_judged_ones() {
        let lines = shown(&body(120, 5, "0.001"));
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("gre_unknown_key_x")));
    }
}
