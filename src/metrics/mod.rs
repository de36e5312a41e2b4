//! What tgw counts, for Prometheus: every [`Report`] rendered as the text
//! exposition format (docs/metrics.md lists each metric and its source),
//! and the HTTP endpoint that serves it ([`http`]).
//!
//! The families are written straight from the report ([`collect`]): no
//! registry of per-tenant metric objects to keep in step with tenants
//! that come and go, no per-scrape hashing or sorting. They go either
//! into the `prometheus` crate's [`MetricFamily`]s ([`families`], for its
//! encoder) or, for the endpoint, straight into the text ([`render`]),
//! byte for byte what the crate's encoder writes of the same families
//! but with no allocation per sample ([`sink`] says why). Per-tenant
//! counters are summed over the workers (one series per tenant, whatever
//! the number of workers); only what belongs to a worker has a `worker`
//! label.

pub mod collect;
pub mod http;
pub mod sink;

use prometheus::proto::MetricFamily;
use prometheus::TextEncoder;

use crate::report::Report;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bytes a sample takes, about: what the text's buffer is sized by.
const SAMPLE_BYTES: usize = 80;

/// The text exposition of `report`, followed by `extra` (the endpoint's
/// own families, from its registry, written by the crate's encoder).
pub fn render(report: &Report, extra: &[MetricFamily]) -> String {
    let mut text = sink::Text::with_capacity(expected_samples(report) * SAMPLE_BYTES);
    collect::all(report, &mut text);
    let mut out = text.into_string();
    // The encoder refuses only empty families, which a registry's gather
    // never gives.
    let _ = TextEncoder::new().encode_utf8(extra, &mut out);
    out
}

/// The families of `report` as the crate's types.
pub fn families(report: &Report) -> Vec<MetricFamily> {
    let mut out = sink::Families::default();
    collect::all(report, &mut out);
    out.into_vec()
}

/// `families` in the text exposition format, by the crate's encoder.
pub fn encode(families: &[MetricFamily]) -> String {
    let samples: usize = families.iter().map(|f| f.get_metric().len()).sum();
    let mut out = String::with_capacity(samples * SAMPLE_BYTES);
    let _ = TextEncoder::new().encode_utf8(families, &mut out);
    out
}

/// About how many samples `report` gives: most are per tenant and rule.
fn expected_samples(report: &Report) -> usize {
    let xstats: usize = report.ports.iter().map(|p| p.xstats.len()).sum();
    report.tenants.len() * 17 + report.rules.len() + xstats + report.workers.len() * 20 + 200
}

#[cfg(test)]
mod tests;
