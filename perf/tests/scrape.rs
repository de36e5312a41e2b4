//! Scraping tgw's Prometheus /metrics from tgw-perf (issue 12): `tgw-perf
//! scrape` at a small scale sees every tenant of the config in every body,
//! and `tgw-perf run --compare-scrape` measures tgw with and without
//! scraping in one run, the scraped one really scraped. How fast is for
//! the benchmark (docs/perf.md), not for the test.

mod common;

/// 50 tenants: every scrape's body names each of them under the `tenant`
/// label, and no other.
#[test]
fn every_tenant_of_the_config_is_in_every_scrape() {
    let r = common::tgw_perf(
        &[
            "scrape",
            "--tenants",
            "50",
            "--routes-per-tenant",
            "4",
            "--scrapes",
            "3",
            "--pause-ms",
            "50",
        ],
        "scrape time over 3 scrapes",
    );
    assert_eq!(r["scrapes"], 3, "{r}");
    assert_eq!(r["tenants_seen"], 50, "{r}");
    assert_eq!(r["tenants_seen_min"], 50, "{r}");
    assert_eq!(r["tenants_missing_max"], 0, "{r}");
    let series = r["series"].as_u64().unwrap();
    assert!(series >= 50, "fewer series than tenants: {r}");
    assert!(r["body_bytes"].as_u64().unwrap() > series * 10, "{r}");
    assert!(r["p50_ms"].as_f64().unwrap() > 0.0, "{r}");
}

/// One round of the `nat` profile against tgw alone, unscraped then
/// scraped every 0.2 s: both forward, the scraped one was scraped (and
/// never failed), the other not at all, and the ratio is reported.
#[test]
fn run_compares_tgw_with_and_without_scraping() {
    let r = common::tgw_perf(
        &[
            "run",
            "--no-history",
            "--profile",
            "nat",
            "--flows",
            "64",
            "--seconds",
            "1",
            "--warmup",
            "0.3",
            "--devices",
            "tgw",
            "--compare-scrape",
            "--scrape-interval",
            "0.2",
        ],
        "tgw+scrape/tgw:",
    );
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{r}");
    for run in runs {
        let received = run["raw"]["received"].as_u64().unwrap();
        assert!(received > 10_000, "{} forwarded {received}", run["label"]);
    }
    let scraped = runs.iter().find(|r| r["label"] == "tgw+scrape").unwrap();
    let plain = runs.iter().find(|r| r["label"] == "tgw").unwrap();
    assert!(plain["scrape"].is_null(), "{plain}");
    let scrape = &scraped["scrape"];
    // Scraping starts once tgw answers and lasts the measured second at
    // least: five scrapes at 0.2 s, three on a machine busy enough to
    // stretch them.
    assert!(scrape["scrapes"].as_u64().unwrap() >= 3, "{scrape}");
    assert_eq!(scrape["failures"], 0, "{scrape}");
    assert!(scrape["body_bytes"].as_u64().unwrap() > 0, "{scrape}");
    assert!(r["scrape_ratio_median"].as_f64().unwrap() > 0.0, "{r}");
}
