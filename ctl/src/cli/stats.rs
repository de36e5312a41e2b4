//! `tgwctl stats` for a person: tgw's report (the `stats` result, which
//! is `Report::json()` in the daemon) as a few tables, the workers'
//! counters summed where a person asks "how many in all". Only keys the
//! report has are shown; a counter tgw adds to a tenant shows up as a new
//! column, as in every other table of tgwctl.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::render::{aligned, table};

/// The report as text: what stopped tgw if something did, build and
/// mbufs, then ports, workers, drops (non-zero), tenants, replies,
/// neighbours and the firewall rules that decided flows.
pub fn human(report: &Value) -> String {
    let mut out = String::new();
    if let Some(failure) = report.get("failure").filter(|f| !f.is_null()) {
        out.push_str(&format!(
            "tgw stopped: worker {} {}{}\n",
            number(failure, "worker"),
            text(failure, "cause"),
            failure
                .get("message")
                .and_then(Value::as_str)
                .map_or(String::new(), |m| format!(": {m}"))
        ));
    }
    out.push_str(&headline(report));
    let workers = workers(report);
    section(&mut out, "ports", table(array(report, "ports")));
    section(&mut out, "workers", table(&worker_rows(report)));
    let drops: Vec<Value> = summed(workers, "drops")
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(reason, n)| row(&[("reason", reason.into()), ("frames", n.into())]))
        .collect();
    section(&mut out, "drops", table_or(&drops, "(no drops)\n"));
    let tenants: Vec<Value> = tenants(workers)
        .into_iter()
        .map(|(name, counts)| {
            let mut r = Map::new();
            r.insert("tenant".into(), name.into());
            r.extend(
                counts
                    .into_iter()
                    .map(|(k, n)| (short(&k).to_owned(), n.into())),
            );
            Value::Object(r)
        })
        .collect();
    section(&mut out, "tenants", table_or(&tenants, "(no tenants)\n"));
    let sent: Vec<(String, String)> = [
        "arp_replies",
        "echo_replies",
        "icmp_errors",
        "host_unreachable",
    ]
    .iter()
    .map(|key| (key.to_string(), sum(workers, key)))
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k, n.to_string()))
    .collect();
    if !sent.is_empty() {
        section(&mut out, "sent by tgw", aligned(&sent));
    }
    section(&mut out, "neighbours", neighbours(report));
    section(&mut out, "firewall", firewall(report));
    out
}

/// The workers of a report (none when it has none).
pub fn workers(report: &Value) -> &[Value] {
    array(report, "workers")
}

/// `key`'s numbers summed over the workers.
pub fn sum(workers: &[Value], key: &str) -> u64 {
    workers
        .iter()
        .filter_map(|w| w.get(key).and_then(Value::as_u64))
        .sum()
}

/// An object of counters (`drops`) summed key by key over the workers,
/// in the order the keys first appear.
pub fn summed(workers: &[Value], key: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for w in workers {
        if let Some(Value::Object(counts)) = w.get(key) {
            add(&mut out, counts);
        }
    }
    out
}

/// Each tenant's counters summed over the workers, in the report's order
/// of tenants: (name, [(counter, sum)]).
pub fn tenants(workers: &[Value]) -> Vec<(String, Vec<(String, u64)>)> {
    let mut out: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    // Where each name is in `out`: a gateway has 10k tenants, and every
    // worker lists them all.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for w in workers {
        let Some(Value::Object(tenants)) = w.get("tenants") else {
            continue;
        };
        for (name, counts) in tenants {
            let Value::Object(counts) = counts else {
                continue;
            };
            let i = *index.entry(name).or_insert_with(|| {
                out.push((name.clone(), Vec::new()));
                out.len() - 1
            });
            add(&mut out[i].1, counts);
        }
    }
    out
}

fn add(into: &mut Vec<(String, u64)>, counts: &Map<String, Value>) {
    for (key, n) in counts {
        let Some(n) = n.as_u64() else { continue };
        match into.iter_mut().find(|(k, _)| k == key) {
            Some((_, sum)) => *sum += n,
            None => into.push((key.clone(), n)),
        }
    }
}

/// A tenant counter's column, shorter than its key where the table would
/// not fit a screen (`--json` has the keys).
fn short(key: &str) -> &str {
    match key {
        "from_tunnel_packets" => "from_tunnels",
        "from_tunnel_bytes" => "from_bytes",
        "to_tunnel_packets" => "into_tunnels",
        "to_tunnel_bytes" => "into_bytes",
        "flows_created" => "flows_opened",
        "flows_expired" => "flows_ended",
        "nat_ports_in_use" => "nat_ports",
        other => other,
    }
}

/// `tgw VERSION (commit, DPDK)` and the mbufs.
fn headline(report: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(build) = report.get("build") {
        lines.push((
            "tgw".to_owned(),
            format!(
                "{} (commit {}, {})",
                text(build, "version"),
                text(build, "commit"),
                text(build, "dpdk")
            ),
        ));
    }
    if let Some(m) = report.get("mempool") {
        lines.push((
            "mbufs".to_owned(),
            format!(
                "{} in use, {} available, of {}",
                number(m, "in_use"),
                number(m, "available"),
                number(m, "size")
            ),
        ));
    }
    aligned(&lines)
}

/// A worker a row: what it moved, its useful share of the cycles and
/// cycles per frame since it started (`tgwctl top` gives them over the
/// last seconds), its flow table and its heartbeat's age.
fn worker_rows(report: &Value) -> Vec<Value> {
    let ages = array(report, "heartbeat_age_ms");
    workers(report)
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let n = |key| w.get(key).and_then(Value::as_u64).unwrap_or(0);
            let drops = w
                .get("drops")
                .and_then(Value::as_object)
                .map_or(0, |d| d.values().filter_map(Value::as_u64).sum::<u64>());
            row(&[
                ("worker", i.into()),
                ("lcore", w.get("lcore").cloned().unwrap_or(Value::Null)),
                ("rx_packets", n("rx_packets").into()),
                ("tx_packets", n("tx_packets").into()),
                ("dropped", drops.into()),
                ("bursts", n("bursts").into()),
                ("busy", share(n("busy_cycles"), n("cycles")).into()),
                (
                    "cycles/frame",
                    ratio(n("process_cycles"), n("rx_packets")).into(),
                ),
                (
                    "flows",
                    format!("{}/{}", n("flows_in_use"), n("flows_capacity")).into(),
                ),
                ("handed_off", n("handed_off").into()),
                ("punted", n("punted").into()),
                ("heartbeat_ms", ages.get(i).cloned().unwrap_or(Value::Null)),
            ])
        })
        .collect()
}

/// The neighbour table by state, and the resolver's non-zero counters.
fn neighbours(report: &Value) -> String {
    let list = array(report, "neighbours");
    let mut states: Vec<(String, u64)> = Vec::new();
    for n in list {
        let state = text(n, "state");
        match states.iter_mut().find(|(s, _)| *s == state) {
            Some((_, count)) => *count += 1,
            None => states.push((state, 1)),
        }
    }
    let mut lines = vec![(
        "entries".to_owned(),
        if states.is_empty() {
            "0".to_owned()
        } else {
            format!(
                "{} ({})",
                list.len(),
                states
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    )];
    if let Some(Value::Object(resolver)) = report.get("resolver") {
        lines.extend(
            resolver
                .iter()
                .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                .map(|(k, n)| (k.clone(), n.to_string())),
        );
    }
    aligned(&lines)
}

/// The rules and default policies that decided at least one flow.
fn firewall(report: &Value) -> String {
    let rules = array(report, "firewall");
    let (used, unused): (Vec<&Value>, Vec<&Value>) = rules.iter().partition(|r| {
        r.get("flows")
            .and_then(Value::as_u64)
            .is_some_and(|n| n > 0)
    });
    let rows: Vec<Value> = used.into_iter().cloned().collect();
    let mut out = table_or(&rows, "");
    if !unused.is_empty() {
        out.push_str(&format!(
            "({} rules and default policies decided no flow yet)\n",
            unused.len()
        ));
    }
    if out.is_empty() {
        out.push_str("(no rules)\n");
    }
    out
}

/// `name:` and the text indented under it, after a blank line.
fn section(out: &mut String, name: &str, body: String) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("{name}:\n"));
    for line in body.lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

fn table_or(rows: &[Value], empty: &str) -> String {
    if rows.is_empty() {
        empty.to_owned()
    } else {
        table(rows)
    }
}

/// An object with its keys in the order given (the table's columns).
fn row(cells: &[(&str, Value)]) -> Value {
    Value::Object(
        cells
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

/// `part / whole` as a percentage, `-` when there is no whole.
pub fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.1}%", (part as f64 / whole as f64).min(1.0) * 100.0)
}

/// `a / b` with no decimals, `-` when nothing to divide by.
pub fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        return "-".to_owned();
    }
    format!("{:.0}", a as f64 / b as f64)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn number(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_u64)
        .map_or("-".to_owned(), |n| n.to_string())
}
