//! `[[worker]]` tables: lcores and the RX queues each polls.

use std::collections::{BTreeMap, HashMap};

use toml::Spanned;

use super::{lcore_number, Report};
use crate::config::raw::{List, RawEal, RawPort, RawWorker, Section};
use crate::config::{CpuSet, Eal, RxQueue, Worker};

/// Where a queue was first claimed: by which worker (index and lcore), at
/// which offset.
struct Claim {
    worker: usize,
    lcore: Option<u32>,
    at: usize,
}

pub(super) fn workers(
    list: &List<RawWorker>,
    raw_ports: &[Section<RawPort>],
    raw_eal: Option<&Section<RawEal>>,
    cpus: &CpuSet,
    r: &mut Report,
) -> Option<Vec<Worker>> {
    let raw = &list.items;
    if raw.is_empty() {
        if !list.broken {
            r.at(
                0,
                "no [[worker]] is defined; add one, e.g. [[worker]] with lcore = 1 and rx = [\"pub0:0\", \"und0:0\"]",
            );
        }
        return None;
    }
    // Resolve against every port that has a name, even a port with other
    // problems, so that its mistakes are not reported again here.
    let mut port_index: HashMap<&str, usize> = HashMap::new();
    for (i, p) in raw_ports.iter().enumerate() {
        if let Some(n) = &p.value.name {
            port_index.entry(n.get_ref().as_str()).or_insert(i);
        }
    }
    // The main lcore as written, even if [eal] has other problems, so that
    // a worker on it is still caught.
    let main = match raw_eal {
        Some(e) if !e.readable("main_lcore") => None,
        Some(Section {
            value: RawEal {
                main_lcore: Some(v),
                ..
            },
            ..
        }) => u32::try_from(*v.get_ref())
            .ok()
            .map(|l| (l, Some(v.span().start))),
        _ => Some((Eal::default().main_lcore, None)),
    };

    let mut lcores: HashMap<u32, usize> = HashMap::new();
    let mut claims: HashMap<(usize, u16), Claim> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;
    // Whether every rx entry was read and names a port: if not, the
    // coverage checks would blame a port for the typo in an entry.
    let mut rx_known = !list.broken;

    for (index, section) in raw.iter().enumerate() {
        let w = &section.value;
        let lcore = match &w.lcore {
            None if !section.readable("lcore") => None,
            None => {
                r.at(
                    section.at,
                    "[[worker]] has no lcore; add lcore = a usable CPU other than the main lcore",
                );
                None
            }
            Some(v) => worker_lcore(v, w.cpu.as_ref(), main, cpus, &mut lcores, r),
        };
        let label = match (&w.lcore, lcore) {
            (_, Some((l, _))) => format!("worker on lcore {l}"),
            (Some(v), None) => format!("worker on lcore {}", v.get_ref()),
            (None, None) => "[[worker]]".to_owned(),
        };

        let mut rx = Vec::new();
        let mut rx_ok = true;
        match &w.rx {
            None if !section.readable("rx") => {
                rx_ok = false;
                rx_known = false;
            }
            None => {
                r.at(section.at, format!("{label} has no rx; add rx = [\"PORT:QUEUE\", ...] with the queues it polls"));
                rx_ok = false;
            }
            Some(list) if list.get_ref().is_empty() => {
                r.at(list.span().start, format!("{label} polls no queue; add \"PORT:QUEUE\" entries to rx or remove the worker"));
                rx_ok = false;
            }
            Some(list) => {
                for entry in list.get_ref() {
                    let lcore = lcore.map(|(l, _)| l);
                    match rx_entry(entry, &label, (index, lcore), &port_index, &mut claims, r) {
                        Ok(q) => rx.push(q),
                        Err(RxError::Duplicate) => rx_ok = false,
                        Err(RxError::Unresolved) => {
                            rx_ok = false;
                            rx_known = false;
                        }
                    }
                }
            }
        }
        match lcore {
            Some((lcore, cpu)) if rx_ok && section.sound() => out.push(Worker { lcore, cpu, rx }),
            _ => ok = false,
        }
    }

    if rx_known {
        ok &= queues_complete(raw_ports, &claims, r);
    }
    ok.then_some(out)
}

/// A worker's lcore and the CPU it runs on.
fn worker_lcore(
    v: &Spanned<i64>,
    cpu: Option<&Spanned<i64>>,
    main: Option<(u32, Option<usize>)>,
    cpus: &CpuSet,
    lcores: &mut HashMap<u32, usize>,
    r: &mut Report,
) -> Option<(u32, u32)> {
    let lcore = lcore_number(Some(v), 0, "worker lcore", r)?;
    let start = v.span().start;
    if let Some((_, main_at)) = main.filter(|(main, _)| *main == lcore) {
        let place = main_at.map_or_else(
            || " (the default)".to_owned(),
            |at| format!(" (line {})", r.line(at)),
        );
        r.at(
            start,
            format!(
                "worker lcore {lcore} is the main lcore{place}; the control plane runs there, so pick another CPU for the worker or another [eal] main_lcore",
            ),
        );
        return None;
    }
    let on_cpu = match cpu {
        None if !cpus.contains(lcore) => {
            r.at(
                start,
                format!("worker lcore {lcore} is not a CPU this process may use (usable: {cpus}); pick one of those, or put the lcore on one with cpu = N"),
            );
            return None;
        }
        None => lcore,
        Some(c) => match u32::try_from(*c.get_ref()) {
            Ok(n) if cpus.contains(n) => n,
            _ => {
                r.at(
                    c.span().start,
                    format!("worker cpu {} is not a CPU this process may use (usable: {cpus}); pick one of those", c.get_ref()),
                );
                return None;
            }
        },
    };
    if let Some(first) = lcores.get(&lcore) {
        r.at(
            start,
            format!(
                "worker lcore {lcore} is already used by the worker at line {}; give each [[worker]] its own lcore",
                r.line(*first)
            ),
        );
        return None;
    }
    lcores.insert(lcore, start);
    Some((lcore, on_cpu))
}

/// Why an rx entry was refused (always reported already).
enum RxError {
    /// Not `PORT:QUEUE`, or no such port.
    Unresolved,
    /// The queue is polled elsewhere too.
    Duplicate,
}

fn rx_entry(
    entry: &Spanned<String>,
    label: &str,
    (worker, lcore): (usize, Option<u32>),
    port_index: &HashMap<&str, usize>,
    claims: &mut HashMap<(usize, u16), Claim>,
    r: &mut Report,
) -> Result<RxQueue, RxError> {
    let s = entry.get_ref();
    let start = entry.span().start;
    let parsed = s.rsplit_once(':').and_then(|(port, queue)| {
        let digits = !queue.is_empty() && queue.bytes().all(|b| b.is_ascii_digit());
        let queue = if digits {
            queue.parse::<u16>().ok()
        } else {
            None
        };
        queue.map(|q| (port, q))
    });
    let Some((port, queue)) = parsed else {
        r.at(
            start,
            format!("{label}: rx entry {s:?} is not PORT:QUEUE; write the port name, a colon and the queue number 0..=65535, e.g. \"pub0:0\""),
        );
        return Err(RxError::Unresolved);
    };
    let Some(&index) = port_index.get(port) else {
        let mut known: Vec<&str> = port_index.keys().copied().collect();
        known.sort_unstable();
        let known = if known.is_empty() {
            "none is defined".to_owned()
        } else {
            format!("known ports: {}", known.join(", "))
        };
        r.at(
            start,
            format!("{label}: rx entry {s:?} names unknown port {port:?} ({known}); use the name of a [[port]]"),
        );
        return Err(RxError::Unresolved);
    };
    if let Some(first) = claims.get(&(index, queue)) {
        let by = match first.lcore {
            _ if first.worker == worker => "by this worker".to_owned(),
            Some(l) => format!("by the worker on lcore {l}"),
            None => "by another worker".to_owned(),
        };
        r.at(
            start,
            format!(
                "{label}: queue {port}:{queue} is polled twice (first {by}, line {}); each RX queue must be polled by exactly one worker",
                r.line(first.at)
            ),
        );
        return Err(RxError::Duplicate);
    }
    claims.insert(
        (index, queue),
        Claim {
            worker,
            lcore,
            at: start,
        },
    );
    Ok(RxQueue { port: index, queue })
}

/// Every port is polled, and its queues are `0..n` with no gap: DPDK
/// configures a port with a count of queues, and an unpolled queue would
/// still receive the share of traffic RSS sends it.
fn queues_complete(
    raw_ports: &[Section<RawPort>],
    claims: &HashMap<(usize, u16), Claim>,
    r: &mut Report,
) -> bool {
    let mut per_port: BTreeMap<usize, BTreeMap<u16, usize>> = BTreeMap::new();
    for (&(port, queue), claim) in claims {
        per_port.entry(port).or_default().insert(queue, claim.at);
    }
    let mut ok = true;
    for (i, section) in raw_ports.iter().enumerate() {
        let Some(name) = &section.value.name else {
            continue;
        };
        let name = name.get_ref();
        let Some(queues) = per_port.get(&i) else {
            // A later port with the same name was reported as a duplicate;
            // the first one carries the queues.
            if raw_ports[..i]
                .iter()
                .any(|p| p.value.name.as_ref().is_some_and(|n| n.get_ref() == name))
            {
                continue;
            }
            r.at(
                section
                    .value
                    .name
                    .as_ref()
                    .map_or(section.at, |n| n.span().start),
                format!(
                    "port {name:?} is not polled by any worker; add \"{name}:0\" to a worker's rx"
                ),
            );
            ok = false;
            continue;
        };
        let missing = (0u16..)
            .zip(queues.keys())
            .find(|(want, have)| want != *have);
        if let Some((gap, _)) = missing {
            let (&above, &at) = queues.range(gap..).next().unwrap_or((&gap, &section.at));
            r.at(
                at,
                format!(
                    "port {name:?} queue {above} is polled but queue {gap} is not; number a port's RX queues from 0 without gaps (add \"{name}:{gap}\" to a worker's rx or renumber)",
                ),
            );
            ok = false;
        }
    }
    ok
}
