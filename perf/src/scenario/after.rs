//! The checks on what tgw counted and what the captures saw, once it has
//! stopped.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde_json::Value;

use super::checks::{Checks, Summary};
use super::live::Attempts;
use super::{
    other_port, runtime, u, wire, workers_total, CLIENT, GW_PUBLIC, GW_UNDERLAY, HOSTS, PINGS,
    PING_TTL, PRIVATE, UNKNOWN_KEY, UNKNOWN_SENT,
};

/// Both captures, and how many frames tcpdump reported it missed on each.
pub(super) struct Captures<'a> {
    pub(super) underlay: &'a [Vec<u8>],
    pub(super) public: &'a [Vec<u8>],
    /// Public, underlay.
    pub(super) missed: [u64; 2],
}

impl Captures<'_> {
    /// Whether tgw counting `counted` agrees with `seen` frames on
    /// capture `i`: equal, or if tcpdump missed frames, at least those it
    /// saw and no more than it could have missed.
    pub(super) fn agrees(&self, i: usize, counted: Option<u64>, seen: u64) -> bool {
        counted.is_some_and(|c| c >= seen && c <= seen + self.missed[i])
    }

    /// A note for a check made on capture `i` (0 public, 1 underlay).
    pub(super) fn note(&self, i: usize) -> String {
        match self.missed[i] {
            0 => String::new(),
            n => format!(" (tcpdump missed {n} frames under load)"),
        }
    }
}

/// The SYNs of the attempts the firewall must refuse, as the captures saw
/// them on the side they were sent from, and whatever of those attempts
/// showed up on the other side of tgw.
#[derive(Default)]
pub(super) struct Refused {
    /// SYNs from the client to host `i`'s elastic IP on its closed port
    /// (public capture).
    pub(super) inbound: [u64; 2],
    /// SYNs from host `i`'s 10.0.0.7 to the client on the tenant's closed
    /// port, inside its tunnel (underlay capture).
    pub(super) outbound: [u64; 2],
    /// Segments of those connections seen past tgw: on the underlay
    /// toward a host, on the public side toward the client.
    pub(super) crossed: Vec<String>,
}

impl Refused {
    pub(super) fn total(&self) -> u64 {
        self.inbound.iter().chain(&self.outbound).sum()
    }
}

/// The attempts of [`Attempts`] that the firewall must refuse, on the
/// wire.
pub(super) fn refused(captures: &Captures) -> Refused {
    let mut r = Refused::default();
    for f in captures.public {
        let Some(wire::Packet::Ipv4(ip)) = wire::parse(f) else {
            continue;
        };
        let Some(t) = wire::tcp(&ip) else { continue };
        for (i, h) in HOSTS.iter().enumerate() {
            if ip.src == CLIENT && ip.dst == h.public && t.dport == other_port(i) && t.is_syn() {
                r.inbound[i] += 1;
            }
            if ip.src == h.public && ip.dst == CLIENT && t.dport == h.port {
                r.crossed.push(format!(
                    "{} -> {CLIENT}:{} on the public side",
                    h.public, h.port
                ));
            }
        }
    }
    for f in captures.underlay {
        let Some(wire::Packet::Ipv4(outer)) = wire::parse(f) else {
            continue;
        };
        let Some(gre) = (outer.protocol == 47)
            .then(|| wire::gre(outer.payload))
            .flatten()
        else {
            continue;
        };
        let Some(wire::Packet::Ipv4(ip)) = wire::parse(gre.inner) else {
            continue;
        };
        let Some(t) = wire::tcp(&ip) else { continue };
        for (i, h) in HOSTS.iter().enumerate() {
            if gre.key != Some(h.key) {
                continue;
            }
            if outer.src == h.underlay
                && ip.src == PRIVATE
                && ip.dst == CLIENT
                && t.dport == h.port
                && t.is_syn()
            {
                r.outbound[i] += 1;
            }
            if outer.dst == h.underlay && ip.src == CLIENT && t.dport == other_port(i) {
                r.crossed.push(format!(
                    "{CLIENT} -> {}:{} inside key {}",
                    ip.dst,
                    other_port(i),
                    h.key
                ));
            }
        }
    }
    r
}

/// How each attempt in connect.py's answer ended: all must have timed
/// out, within the bound.
pub(super) fn timed_out(
    answer: &Result<Value, String>,
    targets: &[String],
) -> Result<String, String> {
    let v = answer.as_ref().map_err(Clone::clone)?;
    let mut parts = Vec::new();
    for t in targets {
        let outcome = v[t]["outcome"].as_str().unwrap_or("no answer");
        let ms = v[t]["ms"].as_f64().unwrap_or(f64::NAN);
        if outcome != "timeout" {
            return Err(format!(
                "{t}: {outcome} after {ms} ms, where tgw should drop the SYNs"
            ));
        }
        parts.push(format!("{t} timed out after {ms} ms"));
    }
    Ok(parts.join(", "))
}

/// What the hosts whose tunnels require GRE checksums (and sequence
/// numbers) dropped of what tgw sent them, as Linux would: nothing, and
/// they received.
pub(super) fn strict_host_received(agents: &[Value], workers: usize) -> Result<String, String> {
    let mut parts = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let (csum, seq) = h.receives(workers);
        if !csum && !seq {
            continue;
        }
        let rx = &agents.get(i).ok_or("no agent report")?["rx"];
        let drops = &rx["drops"];
        let refused: Vec<String> = ["no_checksum", "no_sequence", "old_sequence"]
            .iter()
            .filter(|d| u(drops, d) > 0)
            .map(|d| format!("{d} {}", u(drops, d)))
            .collect();
        let received = u(rx, "packets");
        let rules = if seq { "icsum iseq" } else { "icsum" };
        if !refused.is_empty() || received == 0 {
            return Err(format!(
                "{} ({rules}): received {received}, dropped {}",
                h.name,
                refused.join(", ")
            ));
        }
        parts.push(format!(
            "{} ({rules}): received {received}, none without checksum{}",
            h.name,
            if seq {
                ", sequence number or in order"
            } else {
                ""
            }
        ));
    }
    Ok(parts.join("; "))
}

/// One firewall rule's (or default policy's) decisions in tgw's stats.
pub(super) fn decisions(stats: &Value, tenant: &str, rule: &str) -> Option<u64> {
    stats["firewall"]
        .as_array()?
        .iter()
        .find(|r| r["tenant"] == tenant && r["rule"] == rule)
        .and_then(|r| r["flows"].as_u64())
}

pub(super) fn after_checks(
    checks: &mut Checks,
    summary: &mut Summary,
    stats: &Value,
    captures: &Captures,
    expected: &[(String, Ipv4Addr, String)],
    attempts: &Attempts,
    effects: &runtime::Effects,
) {
    let (underlay, public) = (captures.underlay, captures.public);
    let worker_count = stats["workers"].as_array().map_or(1, Vec::len);
    let workers = workers_total(stats);
    let drops = &workers["drops"];
    let unknown = u(drops, "gre_unknown_key");

    // Keys on the underlay: each host's tunnel carries its tenant's key
    // only, and no public address goes inside (1:1 NAT: the hosts know
    // only 10.0.0.7).
    let mut per_host = [0u64; 2];
    let mut probes = 0;
    let mut bad = Vec::new();
    let mut tunnel_ttls = [Vec::new(), Vec::new()];
    for f in underlay {
        let Some(wire::Packet::Ipv4(ip)) = wire::parse(f) else {
            continue;
        };
        if ip.protocol != 47 {
            continue;
        }
        let Some(gre) = wire::gre(ip.payload) else {
            bad.push(format!("truncated GRE {} -> {}", ip.src, ip.dst));
            continue;
        };
        let host = if ip.src == GW_UNDERLAY {
            ip.dst
        } else {
            ip.src
        };
        let Some(i) = HOSTS.iter().position(|h| h.underlay == host) else {
            bad.push(format!("GRE between {} and {}", ip.src, ip.dst));
            continue;
        };
        if ip.src == HOSTS[0].underlay && gre.key == Some(UNKNOWN_KEY) {
            probes += 1;
            continue;
        }
        // C and S from a host that sends them, and from tgw to a host that
        // requires them; K alone otherwise.
        const C_S: u16 = 0x8000 | 0x1000;
        let c_s = if ip.src == host {
            if HOSTS[i].csum_seq {
                C_S
            } else {
                0
            }
        } else {
            let (c, s) = HOSTS[i].receives(worker_count);
            (if c { 0x8000 } else { 0 }) | (if s { 0x1000 } else { 0 })
        };
        if gre.key != Some(HOSTS[i].key) || gre.protocol != 0x6558 || gre.flags & C_S != c_s {
            bad.push(format!(
                "{} -> {} with key {:?}, protocol {:#06x}, flags {:#06x}",
                ip.src, ip.dst, gre.key, gre.protocol, gre.flags
            ));
            continue;
        }
        per_host[i] += 1;
        if let Some(inner) = wire::parse(gre.inner) {
            let addrs = wire::addresses(&inner);
            for public in HOSTS.map(|h| h.public) {
                if addrs.contains(&public) {
                    bad.push(format!("{public} inside key {}", HOSTS[i].key));
                }
            }
            if let wire::Packet::Ipv4(inner) = inner {
                if let Some((kind, _, _)) = wire::echo(&inner) {
                    tunnel_ttls[i].push((kind, inner.ttl));
                }
            }
        }
    }
    checks.record(
        "tunnel keys on the underlay: t1 1000, t2 2000",
        if bad.is_empty() && per_host.iter().all(|&n| n > 0) {
            Ok(format!(
                "{} GRE packets with host1 all key 1000 (with checksum and \
                 sequence number both ways{}), {} with host2 all key 2000, no elastic IP inside{}",
                per_host[0],
                if worker_count == 1 {
                    ""
                } else {
                    "; from tgw the checksum alone"
                },
                per_host[1],
                captures.note(1)
            ))
        } else {
            Err(format!(
                "{} / {} packets; wrong: {:?}",
                per_host[0],
                per_host[1],
                &bad[..bad.len().min(5)]
            ))
        },
    );

    // The way in: requests reach the hosts with the client's TTL less one;
    // replies leave them with the host's own TTL (the client saw one less).
    let result = (|| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let requests: Vec<u8> = tunnel_ttls[i]
                .iter()
                .filter(|(k, _)| *k == 8)
                .map(|(_, t)| *t)
                .collect();
            if requests.len() < PINGS || requests.iter().any(|&t| t != PING_TTL - 1) {
                return Err(format!(
                    "echo requests toward {} in the tunnel had TTLs {requests:?}; sent with {PING_TTL}",
                    h.name
                ));
            }
            parts.push(format!(
                "{} requests to {} at TTL {}",
                requests.len(),
                h.name,
                PING_TTL - 1
            ));
        }
        Ok(format!("{} (sent at {PING_TTL})", parts.join(", ")))
    })();
    checks.record("TTL decremented once on the way in", result);

    // The public side never sees a private or underlay address.
    let hidden: Vec<Ipv4Addr> = [PRIVATE, GW_UNDERLAY]
        .into_iter()
        .chain(HOSTS.iter().map(|h| h.underlay))
        .collect();
    let mut leaks = Vec::new();
    let mut to_public = [0u64; 2];
    for f in public {
        let Some(p) = wire::parse(f) else { continue };
        let addrs = wire::addresses(&p);
        if let Some(a) = addrs.iter().find(|a| hidden.contains(a)) {
            leaks.push(format!("{a} in {p:?}"));
        }
        for (i, h) in HOSTS.iter().enumerate() {
            if addrs.first() == Some(&h.public) {
                to_public[i] += 1;
            }
        }
    }
    checks.record(
        "10.0.0.7 never on the public side",
        if leaks.is_empty() && to_public.iter().all(|&n| n > 0) && !public.is_empty() {
            Ok(format!(
                "{} frames on the client's link ({} from 2.2.2.11, {} from 2.2.2.12), none names 10.0.0.7 or an underlay address{}",
                public.len(),
                to_public[0],
                to_public[1],
                captures.note(0)
            ))
        } else {
            Err(format!(
                "{} frames, {} / {} from the public addresses; leaks: {:?}",
                public.len(),
                to_public[0],
                to_public[1],
                &leaks[..leaks.len().min(5)]
            ))
        },
    );

    // The unknown key: all of them on the wire toward tgw, none back, all
    // counted.
    let result = if unknown == UNKNOWN_SENT && probes == UNKNOWN_SENT {
        Ok(format!(
            "{UNKNOWN_SENT} sent from host1 with key {UNKNOWN_KEY}, {probes} on the wire, gre_unknown_key = {unknown}"
        ))
    } else {
        Err(format!(
            "{UNKNOWN_SENT} sent, {probes} on the wire, gre_unknown_key = {unknown}"
        ))
    };
    if result.is_ok() {
        summary.blocked.push(format!(
            "{UNKNOWN_SENT} GRE packets from host1 with key {UNKNOWN_KEY} (no tenant): dropped, counted as gre_unknown_key"
        ));
    }
    checks.record("GRE with an unknown key dropped and counted", result);

    // The firewall's refusals: each attempt timed out, its SYNs are on the
    // wire on the side it was sent from and nowhere past tgw, and the
    // rule that refused it counted every one of them.
    let r = refused(captures);
    let crossed = |to_host: bool| -> Vec<&String> {
        r.crossed
            .iter()
            .filter(|c| c.contains("inside key") == to_host)
            .collect()
    };
    let targets: Vec<String> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{}:{}", h.public, other_port(i)))
        .collect();
    let result = timed_out(&attempts.inbound, &targets).and_then(|outcome| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let n = r.inbound[i];
            // Less the SYNs the runtime steps had refused on purpose.
            let counted = decisions(stats, h.tenant, "default in")
                .map(|c| c.saturating_sub(effects.default_in[i]));
            if n == 0 || !captures.agrees(0, counted, n) {
                return Err(format!(
                    "{n} SYNs to {} on the client's link, {} default in decisions {counted:?}",
                    targets[i], h.tenant
                ));
            }
            parts.push(format!(
                "{n} SYNs to {}, each refused by {}'s default in",
                targets[i], h.tenant
            ));
        }
        let through = crossed(true);
        if !through.is_empty() {
            return Err(format!("got through: {through:?}"));
        }
        Ok(format!(
            "{outcome}; {}; none inside the tunnels",
            parts.join(", ")
        ))
    });
    if result.is_ok() {
        summary.blocked.push(format!(
            "client {CLIENT} -> {}: refused by the tenants' firewall (default in: deny)",
            targets.join(", ")
        ));
    }
    checks.record("client cannot open 2.2.2.11:23 or 2.2.2.12:22", result);

    let result = (|| {
        let mut parts = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            let target = format!("{CLIENT}:{}", h.port);
            let outcome = timed_out(&attempts.outbound[i], std::slice::from_ref(&target))
                .map_err(|e| format!("{}: {e}", h.name))?;
            let rule = format!("out deny tcp dport {}", h.port);
            let n = r.outbound[i];
            let counted = decisions(stats, h.tenant, &rule);
            if n == 0 || !captures.agrees(1, counted, n) {
                return Err(format!(
                    "{n} SYNs from {}'s {PRIVATE} to {target} in its tunnel, {} {rule:?} decisions {counted:?}",
                    h.name, h.tenant
                ));
            }
            parts.push(format!(
                "{} -> {outcome}: {n} SYNs in key {}, each refused by {:?}",
                h.name, h.key, rule
            ));
        }
        let through = crossed(false);
        if !through.is_empty() {
            return Err(format!("got through: {through:?}"));
        }
        Ok(format!("{}; none on the public side", parts.join("; ")))
    })();
    if result.is_ok() {
        for h in &HOSTS {
            summary.blocked.push(format!(
                "{} ({}) -> {CLIENT}:{}: refused by its firewall (out deny tcp dport {})",
                h.name, h.tenant, h.port, h.port
            ));
        }
    }
    checks.record(
        "tenant 1 cannot open the client's TCP 22, tenant 2 its TCP 23",
        result,
    );

    // The flow table and the firewall's decisions: every rule decided as
    // many flows as the checks opened through it, and every allowed one
    // (none refused) created a flow of its tenant.
    let result = (|| {
        if !stats["firewall"].is_array() {
            return Err("no firewall decisions in tgw's stats".to_owned());
        }
        let mut parts = Vec::new();
        let mut wrong = Vec::new();
        for (i, h) in HOSTS.iter().enumerate() {
            // (rule, decisions, the capture they were counted on, if any)
            let want = [
                (
                    format!("in allow tcp dport {}", h.port),
                    attempts.opened_in[i],
                    None,
                ),
                ("in allow icmp".to_owned(), attempts.pings[i], None),
                (
                    format!("out deny tcp dport {}", h.port),
                    r.outbound[i],
                    Some(1),
                ),
                (
                    "default in".to_owned(),
                    r.inbound[i] + effects.default_in[i],
                    Some(0),
                ),
                ("default out".to_owned(), attempts.opened_out[i], None),
            ];
            for (rule, n, capture) in &want {
                let got = decisions(stats, h.tenant, rule);
                let agrees = match capture {
                    Some(c) => captures.agrees(*c, got, *n),
                    None => got == Some(*n),
                };
                if !agrees {
                    wrong.push(format!("{} {rule:?}: {got:?}, expected {n}", h.tenant));
                }
            }
            let others: Vec<String> = stats["firewall"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["tenant"] == h.tenant)
                .filter(|x| !want.iter().any(|(rule, _, _)| x["rule"] == rule.as_str()))
                .filter(|x| u(x, "flows") > 0)
                .map(|x| x.to_string())
                .collect();
            wrong.extend(others);
            let allowed = attempts.opened_in[i] + attempts.pings[i] + attempts.opened_out[i];
            let created = u(&workers["tenants"][h.tenant], "flows_created");
            if created != allowed {
                wrong.push(format!(
                    "{} created {created} flows; the checks opened {allowed}",
                    h.tenant
                ));
            }
            parts.push(format!(
                "{}: {created} flows ({} TCP in, {} ICMP, {} TCP out), {} SYNs refused",
                h.tenant,
                attempts.opened_in[i],
                attempts.pings[i],
                attempts.opened_out[i],
                r.inbound[i] + r.outbound[i]
            ));
        }
        if wrong.is_empty() {
            Ok(parts.join("; "))
        } else {
            Err(wrong.join("; "))
        }
    })();
    checks.record("flows and firewall decisions in tgw's counters", result);

    // The resolver learned the client, the hosts, and the hosts' addresses
    // inside the tunnels, with no static neighbour to help it: each with
    // the MAC its interface has, and the exchanges are on the wire.
    let res = &stats["resolver"];
    let arp_pairs = arp_evidence(underlay, public);
    let table = learned_macs(stats, expected);
    let result = if u(res, "learned") >= 5 && u(res, "failed") == 0 && u(res, "dropped") == 0 {
        match (table, arp_pairs) {
            (Ok(t), Ok(d)) => Ok(format!(
                "{} learned, {} requests, 0 failed; {t}; {d}",
                u(res, "learned"),
                u(res, "requests")
            )),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    } else {
        Err(format!("resolver {res}; {table:?}; {arp_pairs:?}"))
    };
    checks.record("tgw's resolver learned the client and the hosts", result);

    // Nothing else dropped: every frame of the scenario was handled. The
    // firewall dropped exactly the refused SYNs on the wire (if tcpdump
    // missed frames, at least those it saw and no more than it could have
    // missed). The Linux side also sends what is for nobody in particular
    // (an IGMP report when a link comes up): tgw may count those as
    // not_local, as many as the captures show.
    let stray = stray_frames(underlay, public);
    let missed: u64 = captures.missed.iter().sum();
    // The runtime steps' drops, each judged by its step, are expected too.
    let refused_syns = r.total() + effects.drops("firewall");
    let firewall = u(drops, "firewall");
    let others: Vec<String> = drops
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| {
                    let n = v.as_u64().unwrap_or(0);
                    match k.as_str() {
                        "gre_unknown_key" => false,
                        "not_local" => n > stray,
                        "firewall" => n < refused_syns || n > refused_syns + missed,
                        reason => n != effects.drops(reason),
                    }
                })
                .map(|(k, v)| format!("{k} {v}"))
                .collect()
        })
        .unwrap_or_default();
    checks.record(
        "no other drops in tgw",
        if others.is_empty() && !stats.is_null() && refused_syns > 0 {
            Ok(format!(
                "0 but gre_unknown_key and the runtime steps' ({}), firewall {firewall} \
                 (the {refused_syns} refused SYNs on the wire and in the steps), \
                 and not_local {} of the {stray} frames on the wire addressed to no one here",
                effects,
                u(drops, "not_local")
            ))
        } else {
            Err(format!(
                "dropped: {} ({stray} stray frames, {refused_syns} refused SYNs on the wire)",
                others.join(", ")
            ))
        },
    );

    if let Some(each) = stats["workers"].as_array().filter(|w| w.len() > 1) {
        let rx: Vec<u64> = each.iter().map(|w| u(w, "rx_packets")).collect();
        let handed = u(&workers, "handed_off");
        checks.record(
            "two workers: the traffic spread, each connection met at its owner",
            if rx.iter().all(|&n| n > 0) && handed > 0 {
                Ok(format!(
                    "frames received by worker: {rx:?}; {handed} handed to the worker owning their connection"
                ))
            } else {
                Err(format!("frames received by worker: {rx:?}; {handed} handed over"))
            },
        );
    }

    // The summary's counters.
    for h in &HOSTS {
        let t = &workers["tenants"][h.tenant];
        summary.tgw.push(format!(
            "tenant {} (key {}): {} frames from its tunnels, {} into them; {} flows created, {} ended",
            h.tenant,
            h.key,
            u(t, "from_tunnel_packets"),
            u(t, "to_tunnel_packets"),
            u(t, "flows_created"),
            u(t, "flows_expired")
        ));
    }
    if let Some(rules) = stats["firewall"].as_array() {
        for h in &HOSTS {
            let line: Vec<String> = rules
                .iter()
                .filter(|x| x["tenant"] == h.tenant)
                .map(|x| format!("{} {}", x["rule"].as_str().unwrap_or("?"), u(x, "flows")))
                .collect();
            summary.tgw.push(format!(
                "firewall {} (decisions): {}",
                h.tenant,
                line.join(", ")
            ));
        }
    }
    let mut line = String::new();
    if let Some(ports) = stats["ports"].as_array() {
        for p in ports {
            let _ = write!(
                line,
                "{} rx {} tx {}; ",
                p["name"].as_str().unwrap_or("?"),
                u(p, "rx_packets"),
                u(p, "tx_packets")
            );
        }
    }
    summary.tgw.push(format!(
        "ports: {}ARP replies {}, echo replies {}",
        line,
        u(&workers, "arp_replies"),
        u(&workers, "echo_replies")
    ));
    summary.tgw.push(format!(
        "resolver: {} requests, {} learned, {} failed, {} held frames released",
        u(res, "requests"),
        u(res, "learned"),
        u(res, "failed"),
        u(res, "released")
    ));
    if let Some(table) = stats["neighbours"].as_array() {
        let entries: Vec<String> = table
            .iter()
            .map(|n| {
                let at = n["port"].as_str().or(n["tenant"].as_str()).unwrap_or("?");
                let ip = n["ip"].as_str().unwrap_or("?");
                let mac = n["mac"].as_str().or(n["state"].as_str()).unwrap_or("?");
                format!("{ip}@{at} {mac}")
            })
            .collect();
        summary
            .tgw
            .push(format!("neighbours: {}", entries.join(", ")));
    }
    let all_drops: Vec<String> = drops
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect()
        })
        .unwrap_or_default();
    summary.tgw.push(format!(
        "drops: {}",
        if all_drops.is_empty() {
            "none".to_owned()
        } else {
            all_drops.join(", ")
        }
    ));
}

/// IPv4 frames on tgw's links that neither come from nor go to one of the
/// scenario's addresses on that side: multicast and the like from the
/// Linux stacks, which tgw drops as not for it.
pub(super) fn stray_frames(underlay: &[Vec<u8>], public: &[Vec<u8>]) -> u64 {
    let ours_public = [GW_PUBLIC, HOSTS[0].public, HOSTS[1].public];
    let count = |frames: &[Vec<u8>], ours: &[Ipv4Addr]| {
        frames
            .iter()
            .filter(|f| {
                matches!(wire::parse(f), Some(wire::Packet::Ipv4(ip))
                    if !ours.contains(&ip.src) && !ours.contains(&ip.dst))
            })
            .count() as u64
    };
    count(underlay, &[GW_UNDERLAY]) + count(public, &ours_public)
}

/// tgw's neighbour table at exit against the stacks' own MACs: every
/// expected entry resolved to the right MAC, learned (none static).
pub(super) fn learned_macs(
    stats: &Value,
    expected: &[(String, Ipv4Addr, String)],
) -> Result<String, String> {
    let table = stats["neighbours"]
        .as_array()
        .ok_or("no neighbour table in tgw's stats")?;
    let mut wrong = Vec::new();
    for (at, ip, mac) in expected {
        let entry = table.iter().find(|n| {
            (n["port"] == at.as_str() || n["tenant"] == at.as_str()) && n["ip"] == ip.to_string()
        });
        match entry {
            Some(n) if n["mac"] == mac.as_str() && n["static"] == false => {}
            Some(n) => wrong.push(format!("{ip} at {at}: {n}, the stack has {mac}")),
            None => wrong.push(format!("{ip} at {at}: not in the table")),
        }
    }
    if table.iter().any(|n| n["static"] == true) {
        wrong.push("a static entry, and the config has none".to_owned());
    }
    if wrong.is_empty() {
        Ok(format!(
            "the table holds the stacks' own MACs for all {}",
            expected.len()
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// On the wire: tgw asked for each host and for the client, and each
/// answered; inside each tunnel the host's public address was resolved.
pub(super) fn arp_evidence(underlay: &[Vec<u8>], public: &[Vec<u8>]) -> Result<String, String> {
    let mut arps: Vec<(Option<u32>, wire::Arp)> = Vec::new();
    for f in underlay {
        match wire::parse(f) {
            Some(wire::Packet::Arp(a)) => arps.push((None, a)),
            Some(wire::Packet::Ipv4(ip)) if ip.protocol == 47 => {
                if let Some(g) = wire::gre(ip.payload) {
                    if let Some(wire::Packet::Arp(a)) = wire::parse(g.inner) {
                        arps.push((g.key, a));
                    }
                }
            }
            _ => {}
        }
    }
    for f in public {
        if let Some(wire::Packet::Arp(a)) = wire::parse(f) {
            arps.push((None, a));
        }
    }
    let asked_and_answered = |key: Option<u32>, from: Ipv4Addr, whom: Ipv4Addr| {
        let asked = arps
            .iter()
            .any(|(k, a)| *k == key && a.op == 1 && a.spa == from && a.tpa == whom);
        let answered = arps
            .iter()
            .any(|(k, a)| *k == key && a.op == 2 && a.spa == whom);
        asked && answered
    };
    let mut missing = Vec::new();
    if !asked_and_answered(None, GW_PUBLIC, CLIENT) {
        missing.push(format!("{CLIENT} on the public side"));
    }
    for h in &HOSTS {
        if !asked_and_answered(None, GW_UNDERLAY, h.underlay) {
            missing.push(format!("{} on the underlay", h.underlay));
        }
        // Inside the tunnel tgw asks from 0.0.0.0; a host's own request
        // (it passed the tunnel checks) teaches it too.
        let inside = asked_and_answered(Some(h.key), Ipv4Addr::UNSPECIFIED, PRIVATE)
            || arps
                .iter()
                .any(|(k, a)| *k == Some(h.key) && a.op == 1 && a.spa == PRIVATE);
        if !inside {
            missing.push(format!("{PRIVATE} inside key {}", h.key));
        }
    }
    if missing.is_empty() {
        Ok(format!(
            "asked and answered on the wire: {CLIENT}, {}, {}, and {PRIVATE} inside keys {} and {}",
            HOSTS[0].underlay, HOSTS[1].underlay, HOSTS[0].key, HOSTS[1].key
        ))
    } else {
        Err(format!("no ARP exchange seen for {}", missing.join(", ")))
    }
}
