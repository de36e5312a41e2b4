//! `tgwctl top`: tgw's workers as `vppctl show runtime` and testpmd's
//! `show port stats` show theirs, refreshed. Each refresh asks for the
//! `stats` report and compares it with the one before: rates are the
//! counters' differences over the difference of tgw's own TSC (`tsc`,
//! `tsc_hz` in the report), never over tgwctl's clock, so a slow answer
//! or a late refresh does not bend them.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::render::table;
use super::stats;
use crate::api::{ApiError, Op};
use crate::client::{Client, ClientError};

/// `tgwctl top`'s options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Args)]
pub struct TopArgs {
    /// Seconds between refreshes (a decimal: 0.5).
    #[arg(long, default_value = "1", value_parser = seconds, value_name = "SECONDS")]
    pub interval: Duration,
    /// Stop after this many refreshes (else run until q or Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// How many of the busiest tenants to show.
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub tenants: usize,
}

/// `--interval`: seconds, at least a millisecond, at most an hour.
fn seconds(s: &str) -> Result<Duration, String> {
    let n: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.001..=3600.0).contains(&n) {
        return Err(format!("{s} s: give 0.001 to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(n))
}

/// What one report says, the part `top` compares.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// tgw's TSC when it took the report, and its ticks per second.
    pub tsc: u64,
    pub tsc_hz: u64,
    pub workers: Vec<WorkerSample>,
    /// Frames from and into each tenant's tunnels, summed over workers.
    pub tenants: Vec<TenantSample>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSample {
    pub lcore: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// The worker's TSC cycles since it started (a gauge), those of them
    /// that moved frames, and those spent in the pipeline.
    pub cycles: u64,
    pub busy_cycles: u64,
    pub process_cycles: u64,
    pub flows_in_use: u64,
    /// Drops by reason, as the report names them.
    pub drops: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TenantSample {
    pub name: String,
    pub from_tunnel_packets: u64,
    pub to_tunnel_packets: u64,
}

impl Sample {
    /// The sample in a `stats` result; an error says what is missing (a
    /// tgw too old to carry its TSC).
    pub fn from_report(report: &Value) -> Result<Sample, String> {
        let field = |key: &str| {
            report
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("the stats report has no {key}: is tgw older than tgwctl?"))
        };
        let tsc = field("tsc")?;
        let tsc_hz = field("tsc_hz")?;
        let workers = stats::workers(report)
            .iter()
            .map(|w| {
                let n = |key: &str| w.get(key).and_then(Value::as_u64).unwrap_or(0);
                WorkerSample {
                    lcore: n("lcore"),
                    rx_packets: n("rx_packets"),
                    tx_packets: n("tx_packets"),
                    cycles: n("cycles"),
                    busy_cycles: n("busy_cycles"),
                    process_cycles: n("process_cycles"),
                    flows_in_use: n("flows_in_use"),
                    drops: stats::summed(std::slice::from_ref(w), "drops"),
                }
            })
            .collect();
        let tenants = stats::tenants(stats::workers(report))
            .into_iter()
            .map(|(name, counts)| {
                let n = |key: &str| counts.iter().find(|(k, _)| k == key).map_or(0, |c| c.1);
                TenantSample {
                    from_tunnel_packets: n("from_tunnel_packets"),
                    to_tunnel_packets: n("to_tunnel_packets"),
                    name,
                }
            })
            .collect();
        Ok(Sample {
            tsc,
            tsc_hz,
            workers,
            tenants,
        })
    }
}

/// What happened between two samples, per second of tgw's clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Rates {
    /// The seconds between the samples, by tgw's TSC.
    pub seconds: f64,
    pub tsc_hz: u64,
    pub workers: Vec<WorkerRates>,
    /// Drops per second by reason, summed over workers: those above zero,
    /// the most first.
    pub drops: Vec<(String, f64)>,
    /// Tenants whose tunnels moved frames, the busiest first.
    pub tenants: Vec<TenantRates>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRates {
    pub lcore: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub drops_pps: f64,
    /// Δbusy_cycles / Δcycles: the share of its time the worker moved
    /// frames (`None` when its cycles gauge did not move: it is stuck).
    pub busy: Option<f64>,
    /// Δprocess_cycles / Δrx: pipeline cycles a frame (`None` with no
    /// frames).
    pub cycles_per_frame: Option<f64>,
    pub flows: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TenantRates {
    pub name: String,
    pub from_tunnel_pps: f64,
    pub to_tunnel_pps: f64,
}

impl TenantRates {
    pub fn pps(&self) -> f64 {
        self.from_tunnel_pps + self.to_tunnel_pps
    }
}

/// Why two samples give no rates: tgw restarted between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoRates(pub String);

/// The rates from `before` to `after`. A counter that went down (a
/// tenant deleted and added again under its name) counts as no change.
pub fn rates(before: &Sample, after: &Sample) -> Result<Rates, NoRates> {
    if after.tsc_hz == 0 || after.tsc_hz != before.tsc_hz || after.tsc <= before.tsc {
        return Err(NoRates(
            "tgw's clock went back: it restarted; rates at the next refresh".into(),
        ));
    }
    if after.workers.len() != before.workers.len() {
        return Err(NoRates(format!(
            "tgw had {} workers and now has {}: it restarted; rates at the next refresh",
            before.workers.len(),
            after.workers.len()
        )));
    }
    let seconds = (after.tsc - before.tsc) as f64 / after.tsc_hz as f64;
    let per_s = |d: u64| d as f64 / seconds;
    let mut drops: Vec<(String, u64)> = Vec::new();
    let workers = before
        .workers
        .iter()
        .zip(&after.workers)
        .map(|(b, a)| {
            let rx = a.rx_packets.saturating_sub(b.rx_packets);
            let cycles = a.cycles.saturating_sub(b.cycles);
            let busy = a.busy_cycles.saturating_sub(b.busy_cycles);
            let process = a.process_cycles.saturating_sub(b.process_cycles);
            let mut dropped = 0;
            for (reason, n) in &a.drops {
                let was = b.drops.iter().find(|(r, _)| r == reason).map_or(0, |d| d.1);
                let d = n.saturating_sub(was);
                dropped += d;
                match drops.iter_mut().find(|(r, _)| r == reason) {
                    Some((_, sum)) => *sum += d,
                    None => drops.push((reason.clone(), d)),
                }
            }
            WorkerRates {
                lcore: a.lcore,
                rx_pps: per_s(rx),
                tx_pps: per_s(a.tx_packets.saturating_sub(b.tx_packets)),
                drops_pps: per_s(dropped),
                busy: (cycles > 0).then(|| (busy as f64 / cycles as f64).min(1.0)),
                cycles_per_frame: (rx > 0).then(|| process as f64 / rx as f64),
                flows: a.flows_in_use,
            }
        })
        .collect();
    let mut drops: Vec<(String, f64)> = drops
        .into_iter()
        .filter(|(_, d)| *d > 0)
        .map(|(r, d)| (r, per_s(d)))
        .collect();
    drops.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let was: HashMap<&str, &TenantSample> = before
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut tenants: Vec<TenantRates> = after
        .tenants
        .iter()
        .map(|a| {
            let b = was.get(a.name.as_str()).copied();
            let was = |f: fn(&TenantSample) -> u64| b.map_or(0, f);
            TenantRates {
                name: a.name.clone(),
                from_tunnel_pps: per_s(
                    a.from_tunnel_packets
                        .saturating_sub(was(|t| t.from_tunnel_packets)),
                ),
                to_tunnel_pps: per_s(
                    a.to_tunnel_packets
                        .saturating_sub(was(|t| t.to_tunnel_packets)),
                ),
            }
        })
        .filter(|t| t.pps() > 0.0)
        .collect();
    tenants.sort_by(|a, b| {
        b.pps()
            .total_cmp(&a.pps())
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(Rates {
        seconds,
        tsc_hz: after.tsc_hz,
        workers,
        drops,
        tenants,
    })
}

impl Rates {
    /// The refresh as text: a row per worker and their sum, drops by
    /// reason, and the `shown` busiest tenants.
    pub fn text(&self, shown: usize) -> String {
        let mut rows: Vec<Value> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                json!({
                    "worker": i, "lcore": w.lcore,
                    "rx_mpps": mpps(w.rx_pps), "tx_mpps": mpps(w.tx_pps),
                    "busy": w.busy.map_or("-".to_owned(), |b| format!("{:.1}%", b * 100.0)),
                    "cycles/frame": w.cycles_per_frame.map_or("-".to_owned(), |c| format!("{c:.0}")),
                    "drops/s": per_second(w.drops_pps),
                    "flows": w.flows,
                })
            })
            .collect();
        if self.workers.len() > 1 {
            let sum = |f: fn(&WorkerRates) -> f64| self.workers.iter().map(f).sum::<f64>();
            rows.push(json!({
                "worker": "all", "lcore": "",
                "rx_mpps": mpps(sum(|w| w.rx_pps)), "tx_mpps": mpps(sum(|w| w.tx_pps)),
                "busy": "", "cycles/frame": "",
                "drops/s": per_second(sum(|w| w.drops_pps)),
                "flows": self.workers.iter().map(|w| w.flows).sum::<u64>(),
            }));
        }
        let mut out = table(&rows);
        out.push_str("\ndrops/s by reason:\n");
        if self.drops.is_empty() {
            out.push_str("  (none)\n");
        }
        let drops: Vec<Value> = self
            .drops
            .iter()
            .map(|(r, d)| json!({"reason": r, "per_s": per_second(*d)}))
            .collect();
        indent(&mut out, &table_if_any(&drops));
        let shown = shown.min(self.tenants.len());
        out.push_str(&format!(
            "\nbusiest tenants ({shown} of {} with traffic), frames/s:\n",
            self.tenants.len()
        ));
        if shown == 0 {
            out.push_str("  (none)\n");
        }
        let tenants: Vec<Value> = self.tenants[..shown]
            .iter()
            .map(|t| {
                json!({
                    "tenant": t.name,
                    "from_tunnels": per_second(t.from_tunnel_pps),
                    "into_tunnels": per_second(t.to_tunnel_pps),
                    "total": per_second(t.pps()),
                })
            })
            .collect();
        indent(&mut out, &table_if_any(&tenants));
        out
    }

    /// The refresh for scripts (`--json`): the same numbers, unrounded.
    pub fn json(&self, shown: usize) -> Value {
        json!({
            "seconds": self.seconds,
            "workers": self.workers.iter().map(|w| json!({
                "lcore": w.lcore, "rx_pps": w.rx_pps, "tx_pps": w.tx_pps,
                "drops_pps": w.drops_pps, "busy": w.busy,
                "cycles_per_frame": w.cycles_per_frame, "flows": w.flows,
            })).collect::<Vec<_>>(),
            "drops_pps": self.drops.iter().map(|(r, d)| (r.clone(), Value::from(*d))).collect::<serde_json::Map<_, _>>(),
            "tenants": self.tenants.iter().take(shown).map(|t| json!({
                "name": t.name, "from_tunnel_pps": t.from_tunnel_pps,
                "to_tunnel_pps": t.to_tunnel_pps,
            })).collect::<Vec<_>>(),
            "tenants_with_traffic": self.tenants.len(),
        })
    }
}

fn table_if_any(rows: &[Value]) -> String {
    if rows.is_empty() {
        String::new()
    } else {
        table(rows)
    }
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

/// Frames a second in millions, three decimals: 1 kpps is 0.001.
fn mpps(pps: f64) -> String {
    format!("{:.3}", pps / 1e6)
}

/// A rate for a person: `12`, `4.5k`, `1.23M` (below one a second, two
/// decimals, so that a trickle does not read as nothing).
fn per_second(x: f64) -> String {
    match x {
        0.0 => "0".to_owned(),
        x if x < 1.0 => format!("{x:.2}"),
        x if x < 1e3 => format!("{x:.0}"),
        x if x < 1e6 => format!("{:.1}k", x / 1e3),
        x => format!("{:.2}M", x / 1e6),
    }
}

/// Clears a terminal and puts the cursor home: the next frame draws over
/// the last.
pub const CLEAR: &str = "\x1b[2J\x1b[H";

/// Why `top` stopped early.
#[derive(Debug)]
pub enum Stop {
    /// tgw cannot be reached (exit 3).
    Unreachable(ClientError),
    /// tgw refused `stats` (exit 1).
    Refused(ApiError),
    /// tgw's answer is not a report tgwctl can read (exit 1).
    Unreadable(String),
}

/// Refreshes until `count` refreshes were shown, `q` is typed (and
/// Enter: the terminal stays as it is, so Ctrl-C needs nothing put
/// back), or stdout closes. On a terminal each refresh draws over the
/// last; elsewhere (a file, a pipe) refreshes follow each other, without
/// escape codes, a blank line apart; `json` writes one JSON line each.
pub fn run(socket: &Path, args: TopArgs, json: bool) -> Result<(), Stop> {
    let terminal = std::io::stdout().is_terminal();
    let quit = quit_on_q();
    let mut tgw = Client::connect(socket).map_err(Stop::Unreachable)?;
    let mut before = sample(&mut tgw, socket)?;
    let mut next = Instant::now();
    let mut shown = 0u64;
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|n| shown < n) {
        // A schedule keeps the cadence whatever an answer took; one that
        // fell behind (tgwctl was stopped) starts again from now rather
        // than catching up. The rates do not depend on it.
        next = (next + args.interval).max(Instant::now());
        if wait(next, &quit) {
            break;
        }
        let after = sample(&mut tgw, socket)?;
        let body = match rates(&before, &after) {
            Ok(r) if json => format!("{}\n", r.json(args.tenants)),
            Ok(r) => format!(
                "{}\n{}",
                headline(&r, &args, terminal),
                r.text(args.tenants)
            ),
            Err(NoRates(why)) if json => format!("{}\n", json!({ "restarted": why })),
            Err(NoRates(why)) => format!("{why}\n"),
        };
        let frame = match (terminal && !json, shown) {
            (true, _) => format!("{CLEAR}{body}"),
            (false, 0) => body,
            (false, _) if json => body,
            (false, _) => format!("\n{body}"),
        };
        // A closed pipe (`tgwctl top | head`) ends top, quietly.
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
        before = after;
        shown += 1;
    }
    Ok(())
}

fn headline(r: &Rates, args: &TopArgs, terminal: bool) -> String {
    format!(
        "tgw top: the last {:.2} s by tgw's clock ({:.2} GHz TSC), every {} s{}\n",
        r.seconds,
        r.tsc_hz as f64 / 1e9,
        args.interval.as_secs_f64(),
        if terminal {
            "; q Enter or Ctrl-C quits"
        } else {
            ""
        }
    )
}

/// One report, through the connection; tgw closes an idle one after a
/// minute, so a long `--interval` connects again once.
fn sample(tgw: &mut Client, socket: &Path) -> Result<Sample, Stop> {
    let response = match tgw.request(Op::Stats {}) {
        Ok(response) => response,
        Err(_) => {
            *tgw = Client::connect(socket).map_err(Stop::Unreachable)?;
            tgw.request(Op::Stats {}).map_err(Stop::Unreachable)?
        }
    };
    match response.error {
        Some(error) => Err(Stop::Refused(error)),
        None => Sample::from_report(&response.result).map_err(Stop::Unreadable),
    }
}

/// A line `q` typed on the terminal, as a message. Read only when both
/// stdin and stdout are the terminal: `tgwctl top > file &` must not
/// read a terminal it is in the background of (SIGTTIN would stop it).
fn quit_on_q() -> Receiver<()> {
    let (tx, rx) = mpsc::sync_channel(1);
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                if line.trim().eq_ignore_ascii_case("q") {
                    let _ = tx.send(());
                    return;
                }
            }
        });
    }
    rx
}

/// Sleeps until `until`; whether `q` came first.
fn wait(until: Instant, quit: &Receiver<()>) -> bool {
    let left = until.saturating_duration_since(Instant::now());
    match quit.recv_timeout(left) {
        Ok(()) => true,
        Err(RecvTimeoutError::Timeout) => false,
        // No terminal, or it closed: only the clock ends the wait.
        Err(RecvTimeoutError::Disconnected) => {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            false
        }
    }
}
