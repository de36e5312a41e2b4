//! The churn driver: `rate` changes a second for `seconds` through tgw's
//! control socket, paced (change `k` is due at `k / rate` s, never sent
//! early), on tenants and elastic IPs the traffic does not use, cycling
//! through what an operator changes: a tenant's route replaced, a tenant
//! added and removed, an elastic IP bound and unbound, a rule added and
//! removed. Optionally it also unbinds one elastic IP the traffic does use,
//! on purpose, and binds it again, at known times.
//!
//! It reports changes made, refused (which must be none) and the latency
//! of each request as the client sees it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ctl::api::Op;
use ctl::client::Client;
use serde_json::{json, Value};

use crate::profile;

#[derive(clap::Args, Debug, Clone)]
pub struct ChurnArgs {
    /// tgw's control socket.
    #[arg(long)]
    pub socket: PathBuf,
    /// Changes a second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Names of the tenants to churn ("c0", "c1", … as `churn-test`'s
    /// config has them), and how many.
    #[arg(long, default_value_t = 16)]
    pub tenants: u32,
    /// The first churned tenant's index in the address plan (its host
    /// and key follow `profile`'s plan from there).
    #[arg(long, default_value_t = 100)]
    pub first_index: u32,
    /// An elastic IP the traffic uses, `PUBLIC,TENANT,PRIVATE`: unbound at
    /// a third of `seconds` and bound again at two thirds (of the time).
    #[arg(long)]
    pub flap_eip: Option<String>,
}

/// What the driver did.
#[derive(Clone, Debug, Default)]
pub struct ChurnReport {
    pub made: u64,
    pub refused: u64,
    /// The first few refusals, as tgw worded them.
    pub refusals: Vec<String>,
    pub seconds: f64,
    /// Request latency, microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// When the flapped elastic IP was unbound and bound again, seconds
    /// from the start.
    pub flap: Option<(f64, f64)>,
}

impl ChurnReport {
    pub fn to_json(&self) -> Value {
        json!({
            "made": self.made, "refused": self.refused, "refusals": self.refusals,
            "seconds": self.seconds, "rate": self.made as f64 / self.seconds.max(1e-9),
            "p50_us": self.p50_us, "p99_us": self.p99_us, "max_us": self.max_us,
            "flap": self.flap.map(|(a, b)| json!([a, b])),
        })
    }
}

/// Churned tenant `j`'s name.
pub fn tenant_name(j: u32) -> String {
    format!("c{j}")
}

/// The `[[tenant]]` table of churned tenant `j` at plan index `index`:
/// one host, a private prefix, a route that the churn replaces.
pub fn tenant(name: &str, index: u32) -> Value {
    let host = profile::host(index).to_string();
    json!({
        "name": name,
        "key": profile::KEY_BASE + index,
        "hosts": [host],
        "prefixes": ["10.0.0.0/24"],
        "routes": [
            {"prefix": "10.0.0.0/24", "to": host},
            {"prefix": "10.9.0.0/24", "to": host},
            {"prefix": "0.0.0.0/0", "to": "public"},
        ],
    })
}

/// The churn's own elastic IPs: 3.3.0.0/16, never the traffic's.
fn churn_eip(n: u64) -> Ipv4Addr {
    Ipv4Addr::new(3, 3, ((n / 250) % 250) as u8, (1 + n % 250) as u8)
}

/// Runs `tgw-perf churn` and prints its report as JSON.
pub fn run(args: &ChurnArgs) -> Result<(), String> {
    let report = drive(args)?;
    println!("{}", report.to_json());
    if report.refused > 0 {
        return Err(format!("{} changes refused", report.refused));
    }
    Ok(())
}

/// Connects and performs the changes; the report, or why it could not
/// start (a refusal during the run is counted, not an error).
pub fn drive(args: &ChurnArgs) -> Result<ChurnReport, String> {
    let mut tgw = Client::connect(&args.socket).map_err(|e| e.to_string())?;
    let total = (args.seconds * f64::from(args.rate)) as u64;
    let flap = args.flap_eip.as_deref().map(parse_flap).transpose()?;
    // At a third and two thirds of the time, not of the changes: if the
    // churn falls behind its pace, the elastic IP is still bound again
    // before the traffic's last `settle` seconds.
    let flap_at = [args.seconds / 3.0, 2.0 * args.seconds / 3.0];
    let mut flap_next = 0;
    let mut flapped = [0.0f64; 2];
    let mut latencies = Vec::with_capacity(total as usize + 2);
    let mut report = ChurnReport::default();
    // What the cycle must undo: a rule's handle, the tenant added.
    let mut rule_handle: Option<(String, u64)> = None;
    let start = Instant::now();
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / f64::from(args.rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if let Some(eip) = &flap {
            let now = start.elapsed().as_secs_f64();
            if flap_next < 2 && now >= flap_at[flap_next] {
                let op = if flap_next == 0 {
                    Op::EipDel {
                        public: eip["public"].as_str().unwrap_or_default().to_owned(),
                    }
                } else {
                    Op::EipAdd { eip: eip.clone() }
                };
                flapped[flap_next] = now;
                flap_next += 1;
                call(&mut tgw, op, &mut report, &mut latencies);
            }
        }
        let op = change(k, args, &mut rule_handle);
        let result = call(&mut tgw, op, &mut report, &mut latencies);
        if k % 7 == 5 {
            let handle = result.as_ref().and_then(|r| r["handle"].as_u64());
            let tenant = tenant_name(((k / 7) % u64::from(args.tenants)) as u32);
            rule_handle = handle.map(|h| (tenant, h));
        }
    }
    // A churn too short to reach the second time still binds it again.
    if let (Some(eip), 1) = (&flap, flap_next) {
        flapped[1] = start.elapsed().as_secs_f64();
        let op = Op::EipAdd { eip: eip.clone() };
        call(&mut tgw, op, &mut report, &mut latencies);
    }
    report.seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    report.p50_us = pick(0.50);
    report.p99_us = pick(0.99);
    report.max_us = latencies.last().copied().unwrap_or(0);
    report.flap = flap.map(|_| (flapped[0], flapped[1]));
    Ok(report)
}

/// Change `k` of the cycle of seven, on churned tenant `(k / 7) % tenants`.
fn change(k: u64, args: &ChurnArgs, rule: &mut Option<(String, u64)>) -> Op {
    let round = k / 7;
    let j = (round % u64::from(args.tenants)) as u32;
    let name = tenant_name(j);
    let host = profile::host(args.first_index + j).to_string();
    // Added tenants are named and keyed apart from everything in the
    // config: index 60000 on, one at a time, on eight hosts only: a
    // removed tenant's host stays in the neighbour table (nothing retires
    // it yet), so a new host each time fills `[arp] port_entries` after
    // about a thousand tenants and the next tenant.add is refused.
    let extra = format!("x{round}");
    let extra_index = 60_000 + (round % 8) as u32;
    match k % 7 {
        0 => Op::RouteAdd {
            tenant: Some(name),
            route: json!({
                "prefix": "10.9.0.0/24",
                "to": match round % 2 {
                    0 => "public".to_owned(),
                    _ => host,
                },
            }),
            replace: true,
        },
        1 => Op::TenantAdd {
            tenant: tenant(&extra, extra_index),
        },
        2 => Op::TenantDel { name: extra },
        3 => Op::EipAdd {
            eip: json!({
                "public": churn_eip(round).to_string(),
                "tenant": name,
                "private": "10.0.0.9",
            }),
        },
        4 => Op::EipDel {
            public: churn_eip(round).to_string(),
        },
        5 => Op::RuleAdd {
            tenant: name,
            rule: json!({
                "direction": "in", "action": "allow", "proto": "tcp",
                "dport": 1000 + (round % 1000),
            }),
            position: None,
        },
        _ => match rule.take() {
            Some((tenant, handle)) => Op::RuleDel { tenant, handle },
            // The rule.add was refused (counted there): something still
            // changes, so the pace holds.
            None => Op::RouteAdd {
                tenant: Some(name),
                route: json!({"prefix": "10.9.0.0/24", "to": host}),
                replace: true,
            },
        },
    }
}

/// One request, timed; a refusal or a broken connection is counted.
fn call(
    tgw: &mut Client,
    op: Op,
    report: &mut ChurnReport,
    latencies: &mut Vec<u64>,
) -> Option<Value> {
    let t = Instant::now();
    let result = tgw.call(op);
    latencies.push(t.elapsed().as_micros() as u64);
    match result {
        Ok(v) => {
            report.made += 1;
            Some(v)
        }
        Err(e) => {
            report.refused += 1;
            if report.refusals.len() < 5 {
                report.refusals.push(e.to_string());
            }
            None
        }
    }
}

/// `PUBLIC,TENANT,PRIVATE` as an `[[eip]]` object.
fn parse_flap(s: &str) -> Result<Value, String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [public, tenant, private] = parts[..] else {
        return Err(format!("--flap-eip {s:?}: want PUBLIC,TENANT,PRIVATE"));
    };
    Ok(json!({"public": public, "tenant": tenant, "private": private}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ChurnArgs {
        ChurnArgs {
            socket: PathBuf::from("/nonexistent"),
            rate: 1000,
            seconds: 1.0,
            tenants: 4,
            first_index: 100,
            flap_eip: None,
        }
    }

    #[test]
    fn the_cycle_touches_only_churned_tenants_and_undoes_what_it_adds() {
        let a = args();
        let mut rule = None;
        let ops: Vec<Op> = (0..7).map(|k| change(k, &a, &mut rule)).collect();
        assert!(
            matches!(&ops[0], Op::RouteAdd { tenant: Some(t), replace: true, .. } if t == "c0")
        );
        assert!(matches!(&ops[1], Op::TenantAdd { tenant } if tenant["name"] == "x0"));
        assert!(matches!(&ops[2], Op::TenantDel { name } if name == "x0"));
        assert!(
            matches!(&ops[3], Op::EipAdd { eip } if eip["public"] == "3.3.0.1" && eip["tenant"] == "c0")
        );
        assert!(matches!(&ops[4], Op::EipDel { public } if public == "3.3.0.1"));
        assert!(matches!(&ops[5], Op::RuleAdd { tenant, .. } if tenant == "c0"));
        let mut rule = Some(("c0".to_owned(), 7));
        assert!(matches!(
            change(6, &a, &mut rule),
            Op::RuleDel { handle: 7, .. }
        ));
        // The next round moves to the next churned tenant.
        assert!(
            matches!(change(7, &a, &mut None), Op::RouteAdd { tenant: Some(t), .. } if t == "c1")
        );
    }

    #[test]
    fn a_flapped_eip_is_three_fields() {
        assert_eq!(parse_flap("2.2.2.200,e0,10.0.0.7").unwrap()["tenant"], "e0");
        assert!(parse_flap("2.2.2.200,e0").is_err());
    }
}
