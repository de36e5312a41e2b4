//! The checks made with traffic while everything runs.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::checks::{Checks, Summary};
use super::world::{py, World};
use super::{
    check_interrupt, config, fragments, other_port, u, ScenarioArgs, BLOCKED_TIMEOUT_S, CLIENT,
    ECHO_BYTES, GW_UNDERLAY, HOSTS, INSIDE_ROUTER, OUT_BYTES, PINGS, PING_TTL, PRIVATE,
    UNKNOWN_KEY, UNKNOWN_SENT,
};

/// What the live checks did, for the checks made on tgw's counters and
/// the captures once it has stopped.
pub(super) struct Attempts {
    /// How the client's attempts on the ports each tenant refuses ended
    /// (connect.py's answer), or why there is none.
    pub(super) inbound: Result<Value, String>,
    /// The same for each tenant's attempt on the client's port it may not
    /// open.
    pub(super) outbound: [Result<Value, String>; 2],
    /// TCP connections the client opened to each tenant's open port.
    pub(super) opened_in: [u64; 2],
    /// ping.py runs to each elastic IP: one ICMP flow each (one
    /// identifier).
    pub(super) pings: [u64; 2],
    /// TCP connections each tenant opened to the client.
    pub(super) opened_out: [u64; 2],
}

/// The identity line's `key=value` fields.
pub(super) fn fields(identity: &str) -> BTreeMap<&str, &str> {
    identity
        .split(' ')
        .filter_map(|f| f.split_once('='))
        .collect()
}

/// The checks made with traffic while everything runs; the firewall's
/// refusals are judged later, with tgw's counters and the captures.
pub(super) fn live_checks(
    w: &World,
    args: &ScenarioArgs,
    checks: &mut Checks,
    summary: &mut Summary,
    interrupted: &AtomicBool,
) -> Result<(Value, Attempts), String> {
    let mut attempts = Attempts {
        inbound: Err("not tried".into()),
        outbound: [Err("not tried".into()), Err("not tried".into())],
        opened_in: [0; 2],
        pings: [0; 2],
        opened_out: [0; 2],
    };
    // TCP to each elastic IP: the data back intact, and each host says
    // who it is, the address it was reached at, and whom it saw.
    let mut identities = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let name = format!(
            "TCP {}:{} reaches {} and echoes intact",
            h.public, h.port, h.name
        );
        attempts.opened_in[i] += 1;
        let result = py(
            w,
            &w.client,
            "tcp.py",
            &[
                &h.public.to_string(),
                &h.port.to_string(),
                &ECHO_BYTES.to_string(),
            ],
        )
        .and_then(|v| {
            let id = v["identity"].as_str().unwrap_or_default().to_owned();
            identities.push((h, id.clone()));
            let peer = fields(&id).get("peer").copied().unwrap_or_default();
            if !id.starts_with(h.name) {
                Err(format!("answered by {id:?}, not {}", h.name))
            } else if peer != CLIENT.to_string() {
                Err(format!("{} saw the client as {peer}, not {CLIENT}", h.name))
            } else if v["intact"] != true || u(&v, "back") != ECHO_BYTES as u64 {
                Err(format!(
                    "{} of {ECHO_BYTES} bytes came back, intact: {}",
                    u(&v, "back"),
                    v["intact"]
                ))
            } else {
                Ok(format!(
                    "{} KiB echoed in {} ms; {} (tenant {}, key {}) saw the client as {peer}",
                    ECHO_BYTES >> 10,
                    v["ms"],
                    h.name,
                    h.tenant,
                    h.key
                ))
            }
        });
        if let Ok(d) = &result {
            summary
                .reached
                .push(format!("client {CLIENT} -> {}:{}: {}", h.public, h.port, d));
        }
        checks.record(&name, result);
        check_interrupt(interrupted)?;
    }

    // The two 10.0.0.7 are different machines: each answered with its own
    // name and TAP MAC, and both hold 10.0.0.7.
    let result = (|| {
        if identities.len() != 2 {
            return Err("needs both TCP checks' answers".to_owned());
        }
        let mac = |id: &str| {
            fields(id)
                .get("mac")
                .copied()
                .unwrap_or_default()
                .to_owned()
        };
        let (a, b) = (mac(&identities[0].1), mac(&identities[1].1));
        if a.is_empty() || a == b {
            return Err(format!("the same MAC behind both: {a:?} {b:?}"));
        }
        for (i, h) in HOSTS.iter().enumerate() {
            let addrs = w
                .net
                .run_ok(&w.hosts[i], &["ip", "-4", "-o", "addr", "show", "tap0"]);
            if !addrs.contains(&format!("inet {PRIVATE}/24")) {
                return Err(format!("{} does not hold {PRIVATE}: {addrs}", h.name));
            }
        }
        Ok(format!(
            "host1 (tap0 {a}) and host2 (tap0 {b}) both hold {PRIVATE}, in different tenants"
        ))
    })();
    checks.record("the two 10.0.0.7 are different hosts", result);

    // 1:1 NAT: the hosts hold no public address, yet the client reached
    // them at their elastic IPs, and they were reached at 10.0.0.7.
    let result = (|| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let out = w
                .net
                .run_ok(&w.hosts[i], &["ip", "-4", "-o", "addr", "show"]);
            let mut held: Vec<&str> = out
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    it.find(|&f| f == "inet")?;
                    it.next()
                })
                .collect();
            held.sort_unstable();
            let mut want = vec![
                "127.0.0.1/8".to_owned(),
                format!("{}/24", h.underlay),
                format!("{PRIVATE}/24"),
            ];
            want.sort_unstable();
            if held != want {
                return Err(format!("{} holds {held:?}, not only {want:?}", h.name));
            }
            let Some((_, id)) = identities.iter().find(|(x, _)| x.name == h.name) else {
                return Err(format!("no answer from {} to judge by", h.name));
            };
            let local = fields(id).get("local").copied().unwrap_or_default();
            if local != PRIVATE.to_string() {
                return Err(format!(
                    "the client dialled {}, and {} was reached at {local}, not {PRIVATE}",
                    h.public, h.name
                ));
            }
            parts.push(format!("{} -> {}'s {PRIVATE}", h.public, h.name));
        }
        Ok(format!(
            "the hosts hold only {PRIVATE} (and their underlay address); the client dialled {}",
            parts.join(", ")
        ))
    })();
    checks.record(
        "10.0.0.7 is the hosts' only address, 2.2.2.11/12 their elastic IPs",
        result,
    );

    // ICMP echo: every reply back, and its TTL one less than the host sent
    // (the way in is checked on the underlay capture).
    let mut pings = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let host_ttl = w
            .net
            .run_ok(&w.hosts[i], &["sysctl", "-n", "net.ipv4.ip_default_ttl"])
            .trim()
            .parse::<u64>()
            .unwrap_or(64);
        attempts.pings[i] += 1;
        let result = py(
            w,
            &w.client,
            "ping.py",
            &[
                &h.public.to_string(),
                &PINGS.to_string(),
                &PING_TTL.to_string(),
            ],
        )
        .and_then(|v| {
            let ttls: Vec<u64> = v["ttls"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            if ttls.len() != PINGS {
                Err(format!("{} of {PINGS} replies", ttls.len()))
            } else if ttls.iter().any(|&t| t != host_ttl - 1) {
                Err(format!(
                    "reply TTLs {ttls:?}; {} sends {host_ttl}, so one hop makes {}",
                    h.name,
                    host_ttl - 1
                ))
            } else {
                Ok(format!(
                    "{PINGS}/{PINGS} replies, TTL {} ({} sends {host_ttl}), rtt {} ms",
                    host_ttl - 1,
                    h.name,
                    v["rtt_ms"]
                ))
            }
        });
        if result.is_ok() {
            pings.push(format!("{}", h.public));
        }
        checks.record(
            &format!("ping {} answered, TTL decremented once", h.public),
            result,
        );
        check_interrupt(interrupted)?;
    }
    if !pings.is_empty() {
        summary.reached.push(format!(
            "ping {} from the client: every echo answered",
            pings.join(", ")
        ));
    }

    // Proxy ARP inside the tunnels: each host resolved its router
    // 10.0.0.1 to tgw's MAC of its own tenant.
    let result = (|| {
        let macs = config::tenant_macs()?;
        let mut seen = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let want = macs
                .iter()
                .find(|(t, _)| t == h.tenant)
                .map(|(_, m)| m.clone())
                .ok_or_else(|| format!("reference.toml has no MAC for {}", h.tenant))?;
            let out = w.net.run_ok(
                &w.hosts[i],
                &["ip", "-j", "neigh", "show", INSIDE_ROUTER, "dev", "tap0"],
            );
            let got: Value = serde_json::from_str(&out).map_err(|e| format!("{out:?}: {e}"))?;
            let got = got[0]["lladdr"].as_str().unwrap_or("none").to_owned();
            if got != want {
                return Err(format!(
                    "{} resolved {INSIDE_ROUTER} to {got}, not {}'s {want}",
                    h.name, h.tenant
                ));
            }
            seen.push(format!("{} -> {got} ({})", h.name, h.tenant));
        }
        Ok(format!(
            "{INSIDE_ROUTER} resolved through the tunnels: {}",
            seen.join(", ")
        ))
    })();
    checks.record("proxy ARP inside the tunnels: 10.0.0.1 is tgw", result);

    // Each tenant opens the client's port its firewall allows out (the
    // other tenant's): the client's server sees it as its elastic IP.
    let mut parts = Vec::new();
    let mut bad = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let port = other_port(i);
        attempts.opened_out[i] += 1;
        let outcome = py(
            w,
            &w.hosts[i],
            "tcp.py",
            &[
                &CLIENT.to_string(),
                &port.to_string(),
                &OUT_BYTES.to_string(),
            ],
        )
        .and_then(|v| {
            let id = v["identity"].as_str().unwrap_or_default().to_owned();
            let f = fields(&id);
            let peer = f.get("peer").copied().unwrap_or_default();
            if !id.starts_with("client") {
                Err(format!("answered by {id:?}, not the client"))
            } else if peer != h.public.to_string() {
                Err(format!(
                    "the client saw {} as {peer}, not {}",
                    h.name, h.public
                ))
            } else if v["intact"] != true || u(&v, "back") != OUT_BYTES as u64 {
                Err(format!(
                    "{} of {OUT_BYTES} bytes came back, intact: {}",
                    u(&v, "back"),
                    v["intact"]
                ))
            } else {
                Ok(format!(
                    "{} ({}) -> {CLIENT}:{port}: the client saw {peer}, {} KiB echoed",
                    h.name,
                    h.tenant,
                    OUT_BYTES >> 10
                ))
            }
        });
        match outcome {
            Ok(d) => {
                summary.reached.push(d.clone());
                parts.push(d);
            }
            Err(e) => bad.push(format!("{}: {e}", h.name)),
        }
    }
    checks.record(
        "tenant 1 opens the client's TCP 23 and the client sees 2.2.2.11 (tenant 2: TCP 22, 2.2.2.12)",
        if bad.is_empty() {
            Ok(parts.join("; "))
        } else {
            Err(bad.join("; "))
        },
    );
    check_interrupt(interrupted)?;

    // What the firewall must refuse: the client on the other tenant's
    // port of each elastic IP, each tenant on its own port toward the
    // client. Every server listens on both ports, so what got through
    // would connect. Judged with the captures and counters later.
    let timeout = BLOCKED_TIMEOUT_S.to_string();
    let targets: Vec<String> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}:{}", h.public, other_port(i)))
        .collect();
    let mut argv = vec![timeout.as_str()];
    argv.extend(targets.iter().map(String::as_str));
    // All at once: each waits out its timeout.
    std::thread::scope(|s| {
        let timeout = timeout.as_str();
        let from_hosts: Vec<_> = HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let target = format!("{CLIENT}:{}", h.port);
                s.spawn(move || py(w, &w.hosts[i], "connect.py", &[timeout, &target]))
            })
            .collect();
        attempts.inbound = py(w, &w.client, "connect.py", &argv);
        for (i, t) in from_hosts.into_iter().enumerate() {
            attempts.outbound[i] = t
                .join()
                .unwrap_or_else(|_| Err("connect.py's thread panicked".into()));
        }
    });
    check_interrupt(interrupted)?;

    // GRE with a key no tenant has, from host 1: tgw must drop and count
    // it (checked on its counters and the capture when it has stopped).
    py(
        w,
        &w.hosts[0],
        "gre.py",
        &[
            &GW_UNDERLAY.to_string(),
            &UNKNOWN_KEY.to_string(),
            &UNKNOWN_SENT.to_string(),
        ],
    )?;

    // Bulk TCP through tgw for a few seconds, to the port tenant 1's
    // firewall lets in (its server turns sink when asked): throughput,
    // and no retransmission storm (at most 2% of the segments: a storm
    // is far more, and this machine is shared).
    let h = &HOSTS[0];
    attempts.opened_in[0] += 1;
    let bulk = py(
        w,
        &w.client,
        "bulk.py",
        &[
            &h.public.to_string(),
            &h.port.to_string(),
            &args.seconds.to_string(),
        ],
    );
    let result = match &bulk {
        Ok(v) => {
            let (sent, got) = (u(v, "sent"), u(v, "received"));
            let (segs, re) = (u(v, "segments"), u(v, "retransmitted"));
            let d = format!(
                "{} Mbit/s for {} s to {}:{}; {re} of {segs} segments retransmitted \
                 ({} fast retransmits, {} timeouts, {} loss probes, {} DSACKs)",
                v["mbps"],
                v["seconds"],
                h.public,
                h.port,
                u(&v["why"], "TCPFastRetrans"),
                u(&v["why"], "TCPTimeouts"),
                u(&v["why"], "TCPLossProbes"),
                u(&v["why"], "TCPDSACKRecv")
            );
            if got != sent || sent == 0 {
                Err(format!("{got} of {sent} bytes arrived; {d}"))
            } else if re * 50 > segs {
                Err(format!("retransmission storm: {d}"))
            } else {
                summary
                    .reached
                    .push(format!("bulk TCP client -> {}: {d}", h.name));
                Ok(d)
            }
        }
        Err(e) => Err(e.clone()),
    };
    checks.record("bulk TCP through tgw, no retransmission storm", result);
    check_interrupt(interrupted)?;

    if args.fragments {
        fragments::checks(w, checks, &mut attempts);
        check_interrupt(interrupted)?;
    }

    Ok((bulk.unwrap_or(Value::Null), attempts))
}
