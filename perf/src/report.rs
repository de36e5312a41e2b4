//! Results: per device and round, the tgw/testpmd ratio per round, and the
//! median of the ratios over the clean rounds (where neither CPU ran
//! slowed, `calibrate`, nor testpmd below that share of its best rate,
//! nor tgw's I/O above its cheapest by as much); with scraping compared,
//! tgw scraped against tgw unscraped the same way.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::calibrate::{self, Best, Calibration};
use crate::dut::Device;
use crate::gen::GenResult;
use crate::profile::{Kind, Profile};
use crate::scrape::ScrapeTally;

/// A row's name: the device, whether its /metrics was scraped, and
/// whether it ran with offload in shadow mode.
pub fn label(device: Device, scraped: bool, offload: bool) -> String {
    let mut name = device.name().to_owned();
    if scraped {
        name.push_str("+scrape");
    }
    if offload {
        name.push_str("+shadow");
    }
    name
}

/// One device measured once.
pub struct Measurement {
    pub device: Device,
    pub gen: GenResult,
    /// tgw's own cost: TSC cycles per frame of processing, and of busy
    /// loop iterations (rx and tx included), from its counters.
    pub cycles_process: Option<f64>,
    pub cycles_busy: Option<f64>,
    /// The share of tgw's worker cycles that moved frames (the rest polled
    /// empty queues), and the frames it dropped (every reason): a run whose
    /// worker idled more yet moved fewer frames was held back by the
    /// generator, not by tgw.
    pub busy_share: Option<f64>,
    pub drops: Option<u64>,
    /// [`Measurement::drops`] by reason (tgw's drop counters' names), the
    /// reasons that counted any: in the JSON, so that a run's drops say
    /// what they were.
    pub drop_reasons: BTreeMap<String, u64>,
    /// What scraped tgw's /metrics while it was measured, if anything.
    pub scrape: Option<ScrapeTally>,
    /// Whether tgw ran with `[offload] mode = "shadow"` (else off).
    pub offload: bool,
    /// Flows tgw created (every tenant, every worker), its workers, and
    /// the drops of frames that could not open one, by reason.
    pub flows: Option<crate::newflows::Created>,
    /// How fast both CPUs ran right before and after the window; none
    /// counts as clean.
    pub calibration: Option<Calibration>,
    /// tgw's TSC rate (its counters'), which its cycles are counted in.
    pub tsc_hz: Option<f64>,
}

/// The `workers` array of tgw's counters as JSON, if any.
fn workers_of(stats: Option<&serde_json::Value>) -> &[serde_json::Value] {
    stats
        .and_then(|s| s.get("workers")?.as_array())
        .map_or(&[][..], Vec::as_slice)
}

impl Measurement {
    /// `stats` are the device's counters at its end, `at_start` where it
    /// could be asked them as the window started: the cycles a frame are
    /// then the window's (and the drain's after it), not the warm-up's.
    pub fn new(
        device: Device,
        gen: GenResult,
        stats: Option<&serde_json::Value>,
        at_start: Option<&serde_json::Value>,
    ) -> Self {
        let workers = workers_of(stats);
        let sum_of = |workers: &[serde_json::Value], k: &str| {
            workers
                .iter()
                .filter_map(|w| w.get(k)?.as_u64())
                .sum::<u64>()
        };
        let sum = |k: &str| sum_of(workers, k).saturating_sub(sum_of(workers_of(at_start), k));
        let per = |key: &str, of: &str| {
            let total = sum(of);
            (total > 0).then(|| sum(key) as f64 / total as f64)
        };
        let mut drop_reasons = BTreeMap::new();
        for (reason, n) in workers
            .iter()
            .filter_map(|w| w.get("drops")?.as_object())
            .flat_map(|d| d.iter().filter_map(|(k, v)| Some((k, v.as_u64()?))))
            .filter(|&(_, n)| n > 0)
        {
            *drop_reasons.entry(reason.clone()).or_insert(0) += n;
        }
        let drops = drop_reasons.values().sum();
        Measurement {
            device,
            gen,
            cycles_process: per("process_cycles", "rx_packets"),
            cycles_busy: per("busy_cycles", "rx_packets"),
            busy_share: per("busy_cycles", "cycles"),
            drops: (!workers.is_empty()).then_some(drops),
            drop_reasons,
            scrape: None,
            offload: false,
            flows: crate::newflows::Created::from_workers(workers),
            calibration: None,
            tsc_hz: stats
                .and_then(|s| s.get("tsc_hz")?.as_f64())
                .filter(|hz| *hz > 0.0),
        }
    }

    pub fn label(&self) -> String {
        label(self.device, self.scrape.is_some(), self.offload)
    }

    /// The share of frames never seen again, over the whole run.
    pub fn loss(&self) -> f64 {
        let (sent, received) = (self.gen.sent_total, self.gen.received_total);
        if sent == 0 {
            0.0
        } else {
            sent.saturating_sub(received) as f64 / sent as f64
        }
    }
}

pub struct Report {
    profile: Profile,
    hugepages: bool,
    rows: Vec<(u32, Measurement)>,
    /// The rounds asked for (`--rounds`); those run beyond are re-runs.
    pub asked: u32,
    /// testpmd's best rate on this bench since the machine booted, from
    /// earlier runs ([`crate::history`]): its rounds are judged against
    /// it too.
    pub testpmd_since_boot: Option<f64>,
}

impl Report {
    pub fn new(profile: Profile, hugepages: bool) -> Self {
        Report {
            profile,
            hugepages,
            rows: Vec::new(),
            asked: 0,
            testpmd_since_boot: None,
        }
    }

    pub fn push(&mut self, round: u32, m: Measurement) {
        self.rows.push((round, m));
    }

    /// The received rate of `device` in `round`, scraped or not.
    fn rate(&self, round: u32, device: Device, scraped: bool) -> Option<f64> {
        self.rows
            .iter()
            .find(|(r, m)| {
                *r == round && m.device == device && m.scrape.is_some() == scraped && !m.offload
            })
            .map(|(_, m)| m.gen.received_mpps())
    }

    /// tgw's processing cycles a frame in `round`, with offload in shadow
    /// mode or off.
    fn tgw_cycles(&self, round: u32, offload: bool) -> Option<f64> {
        self.rows
            .iter()
            .find(|(r, m)| *r == round && m.device == Device::Tgw && m.offload == offload)
            .and_then(|(_, m)| m.cycles_process)
    }

    /// tgw's processing cycles a frame with offload in shadow mode over
    /// those with it off, one per counted round that measured both.
    pub fn offload_ratios(&self) -> Vec<f64> {
        self.counted_rounds()
            .into_iter()
            .filter_map(|round| {
                let shadow = self.tgw_cycles(round, true)?;
                let off = self.tgw_cycles(round, false)?;
                (off > 0.0).then_some(shadow / off)
            })
            .collect()
    }

    /// The rounds run, re-runs included.
    pub fn rounds(&self) -> u32 {
        self.rows.iter().map(|(r, _)| *r).max().map_or(0, |r| r + 1)
    }

    /// Each CPU's best calibration in the session so far: what every
    /// round is judged against, so a round judged clean early can turn
    /// out slowed once the session has seen the CPU run faster.
    pub fn best(&self) -> Best {
        calibrate::best(self.rows.iter().filter_map(|(_, m)| m.calibration.as_ref()))
    }

    /// Whether every measurement of `round` ran with both CPUs unslowed,
    /// and testpmd, the yardstick, at its usual rate.
    pub fn is_clean(&self, round: u32) -> bool {
        let best = self.best();
        self.rows
            .iter()
            .filter(|(r, _)| *r == round)
            .filter_map(|(_, m)| m.calibration.as_ref())
            .all(|c| c.is_clean(&best))
            && self.yardstick_unslowed(round)
            && self.tgw_io_unslowed(round)
    }

    /// Whether tgw's I/O in `round` ran at its usual cost: its cycles a
    /// frame outside the pipeline (busy minus processing: memif's RX and
    /// TX and the loop around them) at most 1/`SLOWED_BELOW` of the fewest
    /// the run saw, for each of its rows (scraped, offload in shadow mode
    /// and plain each against its own kind). The host slows memif, not
    /// only a clock: the integer loop runs as ever while testpmd halves,
    /// and tgw's I/O goes from ~57 to ~150 cycles a frame (docs/perf.md,
    /// session 18), in a window of its own as often as in testpmd's
    /// (rounds at 0.37 and 0.45 of testpmd, the rest at 0.56–0.62). As
    /// testpmd's yardstick catches testpmd's slowed windows, this catches
    /// tgw's; the processing cycles, the figure measured, are never judged.
    ///
    /// A run whose tgw rounds were all slowed has no cheap I/O of its own:
    /// tgw's I/O is memif's RX and TX, the work of testpmd's whole frame
    /// but its MAC swap, so it is also judged against testpmd's frame at
    /// testpmd's best (the run's or since boot), in tgw's TSC cycles: at
    /// most 1/`SLOWED_BELOW` of it (tgw's I/O 57–63 cycles a frame at 1k
    /// and 10M flows against testpmd's 70–84 when both ran fast; ~150
    /// slowed).
    fn tgw_io_unslowed(&self, round: u32) -> bool {
        let io = |m: &Measurement| Some(m.cycles_busy? - m.cycles_process?);
        let kind = |m: &Measurement| (m.scrape.is_some(), m.offload);
        let tgw = |m: &&Measurement| m.device == Device::Tgw;
        let testpmd_best = self.yardstick();
        self.rows
            .iter()
            .filter(|(r, _)| *r == round)
            .map(|(_, m)| m)
            .filter(tgw)
            .all(|m| {
                let Some(cost) = io(m) else {
                    return true;
                };
                let fewest = self
                    .rows
                    .iter()
                    .map(|(_, o)| o)
                    .filter(tgw)
                    .filter(|o| kind(o) == kind(m))
                    .filter_map(io)
                    .fold(f64::INFINITY, f64::min);
                let testpmd_frame = match m.tsc_hz {
                    Some(hz) if testpmd_best > 0.0 => hz / (testpmd_best * 1e6),
                    _ => f64::INFINITY,
                };
                cost * calibrate::SLOWED_BELOW <= fewest.min(testpmd_frame)
            })
    }

    /// Whether testpmd's rate in `round` (if it ran) is at least
    /// `SLOWED_BELOW` of its best in the run. The integer loop sees a
    /// slowed clock, not a slowed memory: in rounds it found clean,
    /// testpmd has run at 7.6 Mpps against 16–17 in the rounds around
    /// them (docs/perf.md), and a ratio over a yardstick that shrank is
    /// off by as much. The host only ever slows a device down, so
    /// testpmd's best in the run is its true rate; tgw's rate, the
    /// figure measured, is never filtered on.
    fn yardstick_unslowed(&self, round: u32) -> bool {
        let best = self.yardstick();
        self.rate(round, Device::Testpmd, false)
            .is_none_or(|rate| rate >= calibrate::SLOWED_BELOW * best)
    }

    /// testpmd's true rate, Mpps (0 if unknown): its best in the run or,
    /// higher, its best since boot, as a run slowed from start to end has
    /// no fast round of its own.
    fn yardstick(&self) -> f64 {
        self.testpmd_best()
            .unwrap_or(0.0)
            .max(self.testpmd_since_boot.unwrap_or(0.0))
    }

    /// testpmd's best received rate in this run, if it ran.
    pub fn testpmd_best(&self) -> Option<f64> {
        self.rows
            .iter()
            .filter(|(_, m)| m.device == Device::Testpmd && m.scrape.is_none())
            .map(|(_, m)| m.gen.received_mpps())
            .reduce(f64::max)
    }

    /// The rounds whose ratios count, in the order they ran.
    pub fn clean_rounds(&self) -> Vec<u32> {
        (0..self.rounds()).filter(|&r| self.is_clean(r)).collect()
    }

    /// The rounds the ratios are taken from: the clean ones; if none was
    /// clean, every round, which the table and JSON say (a figure not to
    /// quote, but one that shows the run worked).
    pub fn counted_rounds(&self) -> Vec<u32> {
        match self.clean_rounds() {
            clean if clean.is_empty() => (0..self.rounds()).collect(),
            clean => clean,
        }
    }

    /// Whether the ratios come from clean rounds (or there are none).
    pub fn ratios_are_clean(&self) -> bool {
        self.rounds() == 0 || !self.clean_rounds().is_empty()
    }

    /// tgw/testpmd received-rate ratios, one per counted round that
    /// measured both (tgw unscraped where the round has it).
    pub fn ratios(&self) -> Vec<f64> {
        self.counted_rounds()
            .into_iter()
            .filter_map(|round| {
                let t = self
                    .rate(round, Device::Tgw, false)
                    .or_else(|| self.rate(round, Device::Tgw, true))?;
                let p = self.rate(round, Device::Testpmd, false)?;
                (p > 0.0).then_some(t / p)
            })
            .collect()
    }

    pub fn median_ratio(&self) -> Option<f64> {
        median(self.ratios())
    }

    /// tgw scraped / tgw unscraped, one per counted round that measured
    /// both.
    pub fn scrape_ratios(&self) -> Vec<f64> {
        self.counted_rounds()
            .into_iter()
            .filter_map(|round| {
                let scraped = self.rate(round, Device::Tgw, true)?;
                let plain = self.rate(round, Device::Tgw, false)?;
                (plain > 0.0).then_some(scraped / plain)
            })
            .collect()
    }

    pub fn median_scrape_ratio(&self) -> Option<f64> {
        median(self.scrape_ratios())
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let p = &self.profile;
        let _ = writeln!(
            out,
            "profile {} · {} flows · {}-byte frames · memif · {}",
            p.kind,
            p.flows,
            p.size,
            if self.hugepages {
                "hugepages"
            } else {
                "no hugepages (indicative only)"
            }
        );
        let _ = writeln!(
            out,
            "{:<6} {:<16} {:>13} {:>14} {:>8} {:>17} {:>10} {:>5} {:>9} {:>16} {:>13} {:>5}",
            "round",
            "device",
            "offered Mpps",
            "received Mpps",
            "loss",
            "cycles/frame proc",
            "with rx/tx",
            "busy",
            "tgw drops",
            "scrapes (failed)",
            "CPU gen/wkr",
            "clean"
        );
        let best = self.best();
        for (round, m) in &self.rows {
            let cyc = |c: Option<f64>| c.map_or("-".to_owned(), |c| format!("{c:.1}"));
            let scrapes = m.scrape.as_ref().map_or("-".to_owned(), |s| {
                format!("{} ({})", s.scrapes, s.failures)
            });
            let speed = m.calibration.map_or("-".to_owned(), |c| {
                let (gen, worker) = c.shares(&best);
                format!("{gen:.2}/{worker:.2}")
            });
            let clean = if self.is_clean(*round) { "yes" } else { "NO" };
            let _ = writeln!(
                out,
                "{:<6} {:<16} {:>13.2} {:>14.2} {:>7.3}% {:>17} {:>10} {:>5} {:>9} {:>16} {:>13} {:>5}",
                round + 1,
                m.label(),
                m.gen.offered_mpps(),
                m.gen.received_mpps(),
                m.loss() * 100.0,
                cyc(m.cycles_process),
                cyc(m.cycles_busy),
                m.busy_share
                    .map_or("-".to_owned(), |b| format!("{:.0}%", b * 100.0)),
                m.drops.map_or("-".to_owned(), |d| d.to_string()),
                scrapes,
                speed,
                clean
            );
            if let Some(f) = m.flows.as_ref().filter(|_| p.kind == Kind::NewFlows) {
                let _ = writeln!(out, "       {}", f.line(&m.gen));
            }
        }
        let _ = writeln!(
            out,
            "clean rounds: {} of {} run ({} asked; CPU gen/wkr is each CPU's slower \
             calibration, before or after, as a share of its best: {:.0} / {:.0} M it/s; \
             below {} is slowed, as is testpmd below that share of its best rate, and tgw \
             whose I/O cycles a frame, with rx/tx less proc, are over its fewest by as much)",
            self.clean_rounds().len(),
            self.rounds(),
            self.asked,
            best.gen,
            best.worker,
            calibrate::SLOWED_BELOW
        );
        if let Some(since_boot) = self.testpmd_since_boot {
            let _ = writeln!(
                out,
                "testpmd's best on this bench since boot, from earlier runs: {since_boot:.2} Mpps"
            );
        }
        if !best.agree() {
            let _ = writeln!(
                out,
                "the two CPUs' bests differ by more than that: the slower one likely ran \
                 slowed all along, and its verdicts mean little"
            );
        }
        let which = if self.ratios_are_clean() {
            "median of clean rounds"
        } else {
            "NO CLEAN ROUND, do not quote: median of all rounds"
        };
        let rounds = |ratios: Vec<f64>| {
            let all: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
            all.join(", ")
        };
        if let Some(median) = self.median_ratio() {
            let _ = writeln!(
                out,
                "tgw/testpmd: {median:.3} ({which}: {})",
                rounds(self.ratios())
            );
        }
        if let Some(median) = median(self.offload_ratios()) {
            let _ = writeln!(
                out,
                "tgw+shadow/tgw cycles/frame proc: {median:.3} ({which}: {})",
                rounds(self.offload_ratios())
            );
        }
        if let Some(median) = self.median_scrape_ratio() {
            let _ = writeln!(
                out,
                "tgw+scrape/tgw: {median:.3} ({which}: {})",
                rounds(self.scrape_ratios())
            );
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let best = self.best();
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|(round, m)| {
                serde_json::json!({
                    "round": round, "device": m.device.name(), "label": m.label(), "offload_shadow": m.offload,
                    "scrape": m.scrape.as_ref().map(ScrapeTally::json),
                    "offered_mpps": m.gen.offered_mpps(), "received_mpps": m.gen.received_mpps(),
                    "loss": m.loss(), "cycles_per_frame_process": m.cycles_process,
                    "cycles_per_frame_busy": m.cycles_busy, "busy_share": m.busy_share,
                    "tgw_drops": m.drops, "tgw_drops_by_reason": m.drop_reasons,
                    "raw": m.gen.to_json(),
                    "new_flows": m.flows.as_ref().map(|f| f.json(&m.gen)),
                    "calibration": m.calibration.map(|c| c.json(&best)),
                    "clean": self.is_clean(*round),
                })
            })
            .collect();
        serde_json::json!({
            "profile": self.profile.kind.to_string(), "flows": self.profile.flows,
            "frame_size": self.profile.size, "hugepages": self.hugepages,
            "runs": rows, "ratios": self.ratios(), "ratio_median": self.median_ratio(),
            "rounds_asked": self.asked, "rounds_run": self.rounds(),
            "clean_rounds": self.clean_rounds(), "ratios_from_clean_rounds": self.ratios_are_clean(),
            "calibration_best_mips": {"gen": best.gen, "worker": best.worker},
            "calibration_bests_agree": best.agree(),
            "calibration_slowed_below": calibrate::SLOWED_BELOW,
            "testpmd_best_since_boot_mpps": self.testpmd_since_boot,
            "scrape_ratios": self.scrape_ratios(), "scrape_ratio_median": self.median_scrape_ratio(),
            "offload_cycle_ratios": self.offload_ratios(), "offload_cycle_ratio_median": median(self.offload_ratios()),
        })
    }
}

fn median(mut r: Vec<f64>) -> Option<f64> {
    r.sort_by(f64::total_cmp);
    (!r.is_empty()).then(|| r[r.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(device: Device, received: u64) -> Measurement {
        let gen = GenResult {
            seconds: 1.0,
            sent: received + 10,
            received,
            sent_total: received + 110,
            received_total: received + 105,
        };
        Measurement::new(device, gen, None, None)
    }

    /// An empty report of 64-byte frames of `kind`, one flow, hugepages.
    fn report(kind: Kind) -> Report {
        Report::new(
            Profile {
                kind,
                flows: 1,
                size: 64,
            },
            true,
        )
    }

    /// [`m`] with its calibration loops' rates, before and after, on each
    /// CPU.
    fn calibrated(device: Device, received: u64, gen: [f64; 2], worker: [f64; 2]) -> Measurement {
        let mut m = m(device, received);
        m.calibration = Some(Calibration { gen, worker });
        m
    }

    #[test]
    fn ratio_is_per_round_and_the_median_is_reported() {
        let mut r = report(Kind::Udp);
        r.push(0, m(Device::Testpmd, 20_000_000));
        r.push(0, m(Device::Tgw, 18_000_000));
        r.push(1, m(Device::Testpmd, 18_000_000));
        r.push(1, m(Device::Tgw, 18_000_000));
        r.push(2, m(Device::Testpmd, 20_000_000));
        r.push(2, m(Device::Tgw, 19_000_000));
        assert_eq!(r.ratios(), vec![0.9, 1.0, 0.95]);
        assert_eq!(r.median_ratio(), Some(0.95));
        assert!(r
            .table()
            .contains("tgw/testpmd: 0.950 (median of clean rounds: 0.900, 1.000, 0.950)"));
        let loss = m(Device::Tgw, 100).loss();
        assert!((loss - 5.0 / 210.0).abs() < 1e-12);
    }

    /// With scraping compared, tgw/testpmd stays the unscraped tgw's, and
    /// scraped/unscraped is taken per round whatever order they ran in.
    #[test]
    fn scraped_and_unscraped_tgw_compare_per_round() {
        let mut r = report(Kind::Nat);
        let scraped = |received| {
            let mut s = m(Device::Tgw, received);
            s.scrape = Some(ScrapeTally {
                interval: 1.0,
                scrapes: 3,
                ..ScrapeTally::default()
            });
            s
        };
        r.push(0, m(Device::Testpmd, 20_000_000));
        r.push(0, m(Device::Tgw, 10_000_000));
        r.push(0, scraped(9_000_000));
        r.push(1, m(Device::Testpmd, 20_000_000));
        r.push(1, scraped(8_000_000));
        r.push(1, m(Device::Tgw, 8_000_000));
        assert_eq!(r.ratios(), vec![0.5, 0.4]);
        assert_eq!(r.scrape_ratios(), vec![0.9, 1.0]);
        assert_eq!(r.median_scrape_ratio(), Some(1.0));
        let table = r.table();
        assert!(table.contains("tgw+scrape/tgw: 1.000 (median of clean rounds: 0.900, 1.000)"));
        assert!(table.contains("tgw+scrape"), "{table}");
        assert_eq!(r.json()["runs"][2]["scrape"]["scrapes"], 3);
    }

    /// With offload compared, tgw/testpmd stays tgw's with offload off,
    /// and shadow/off is the ratio of processing cycles a frame, per
    /// round whatever order they ran in.
    #[test]
    fn offload_shadow_and_off_compare_cycles_per_round() {
        let mut r = report(Kind::Nat);
        let tgw = |received, cycles, offload| {
            let mut t = m(Device::Tgw, received);
            t.cycles_process = Some(cycles);
            t.offload = offload;
            t
        };
        r.push(0, m(Device::Testpmd, 20_000_000));
        r.push(0, tgw(10_000_000, 100.0, false));
        r.push(0, tgw(5_000_000, 102.0, true));
        r.push(1, m(Device::Testpmd, 20_000_000));
        r.push(1, tgw(4_000_000, 99.0, true));
        r.push(1, tgw(8_000_000, 100.0, false));
        assert_eq!(r.ratios(), vec![0.5, 0.4]);
        assert_eq!(r.offload_ratios(), vec![1.02, 0.99]);
        let table = r.table();
        assert!(
            table.contains(
                "tgw+shadow/tgw cycles/frame proc: 1.020 (median of clean rounds: 1.020, 0.990)"
            ),
            "{table}"
        );
        assert!(table.contains("tgw+shadow "), "{table}");
        assert_eq!(r.json()["runs"][2]["offload_shadow"], true);
    }

    /// A run the host slowed throughout has no fast testpmd round of its
    /// own: judged against testpmd's best since boot, none of its rounds
    /// is clean, and the table says not to quote it.
    #[test]
    fn a_run_slowed_throughout_is_judged_by_the_best_since_boot() {
        let mut r = report(Kind::Nat);
        for round in 0..3 {
            r.push(round, m(Device::Testpmd, 16_000_000 + u64::from(round)));
            r.push(round, m(Device::Tgw, 11_500_000));
        }
        assert_eq!(
            r.clean_rounds(),
            vec![0, 1, 2],
            "alone, the run looks clean"
        );
        assert_eq!(r.testpmd_best(), Some(16.000002));
        r.testpmd_since_boot = Some(36.0);
        assert_eq!(r.clean_rounds(), Vec::<u32>::new());
        let table = r.table();
        assert!(table.contains("NO CLEAN ROUND, do not quote"), "{table}");
        assert!(
            table.contains("since boot, from earlier runs: 36.00 Mpps"),
            "{table}"
        );
        // A best since boot below the run's own changes nothing.
        r.testpmd_since_boot = Some(12.0);
        assert_eq!(r.clean_rounds(), vec![0, 1, 2]);
        assert_eq!(r.json()["testpmd_best_since_boot_mpps"], 12.0);
    }

    /// A round where memif ran slowed in tgw's window alone (its I/O
    /// cycles a frame, busy less processing, near three times the
    /// fewest) is left out, as one where testpmd's was; tgw's processing
    /// cycles, the figure measured, are not judged. Scraped rows are
    /// judged against scraped ones.
    #[test]
    fn a_round_where_tgw_s_io_ran_slowed_is_left_out() {
        let mut r = report(Kind::Nat);
        let tgw = |received, process, busy, scraped: bool| {
            let mut t = m(Device::Tgw, received);
            t.cycles_process = Some(process);
            t.cycles_busy = Some(busy);
            if scraped {
                t.scrape = Some(ScrapeTally::default());
            }
            t
        };
        r.push(0, m(Device::Testpmd, 35_000_000));
        r.push(0, tgw(22_000_000, 58.0, 115.0, false));
        r.push(1, m(Device::Testpmd, 35_000_000));
        r.push(1, tgw(13_000_000, 70.0, 220.0, false));
        r.push(2, m(Device::Testpmd, 35_000_000));
        // Slower processing, I/O as usual: a figure, not a slowing.
        r.push(2, tgw(19_000_000, 75.0, 135.0, false));
        // Scraped rows cost more I/O of their own: judged among themselves.
        r.push(2, tgw(18_000_000, 75.0, 160.0, true));
        r.push(3, m(Device::Testpmd, 35_000_000));
        // 70 of I/O against the fewest, 57: within 1 / 0.8.
        r.push(3, tgw(21_000_000, 60.0, 130.0, false));
        assert_eq!(r.clean_rounds(), vec![0, 2, 3]);
        assert_eq!(r.ratios(), vec![22.0 / 35.0, 19.0 / 35.0, 21.0 / 35.0]);
        let json = r.json();
        assert_eq!(json["runs"][3]["clean"], false);
        assert_eq!(json["runs"][1]["clean"], true);

        // A run whose every tgw round was slowed: its own fewest is a
        // slowed one, but testpmd's frame at its best (2.6 GHz / 35 Mpps
        // = 74 cycles) is not.
        let mut r = report(Kind::Nat);
        let at = |mut t: Measurement, hz| {
            t.tsc_hz = hz;
            t
        };
        for round in 0..2 {
            r.push(round, m(Device::Testpmd, 35_000_000));
            r.push(round, at(tgw(11_000_000, 70.0, 225.0, false), None));
        }
        assert_eq!(r.clean_rounds(), vec![0, 1], "the run's own fewest");
        for (_, row) in r.rows.iter_mut() {
            row.tsc_hz = Some(2.6e9);
        }
        assert_eq!(r.clean_rounds(), Vec::<u32>::new());
        r.push(2, m(Device::Testpmd, 35_000_000));
        // 92 of I/O: just within 74 / 0.8.
        r.push(2, at(tgw(20_000_000, 60.0, 152.0, false), Some(2.6e9)));
        assert_eq!(r.clean_rounds(), vec![2]);
    }

    /// A round where either CPU ran slowed, here the worker's after
    /// testpmd's window in round 1, is marked and left out of the median;
    /// the re-run (round 3, beyond the three asked) counts in its place.
    /// Round 0's calibrations were the best when it ran, yet it is judged
    /// against the session's best (round 2's), which makes it slowed too.
    #[test]
    fn only_clean_rounds_make_the_ratio() {
        let mut r = report(Kind::Nat);
        r.asked = 3;
        let calibrated = |device, received, gen: f64, worker: f64| {
            calibrated(device, received, [gen, gen], [worker, worker])
        };
        let mut slowed = calibrated(Device::Testpmd, 10_000_000, 500.0, 400.0);
        slowed.calibration.as_mut().unwrap().worker[1] = 200.0;
        r.push(0, calibrated(Device::Testpmd, 20_000_000, 380.0, 400.0));
        r.push(0, calibrated(Device::Tgw, 18_000_000, 380.0, 400.0));
        r.push(1, slowed);
        r.push(1, calibrated(Device::Tgw, 10_000_000, 500.0, 400.0));
        r.push(2, calibrated(Device::Testpmd, 20_000_000, 500.0, 390.0));
        r.push(2, calibrated(Device::Tgw, 12_000_000, 490.0, 400.0));
        r.push(3, calibrated(Device::Testpmd, 20_000_000, 495.0, 400.0));
        r.push(3, calibrated(Device::Tgw, 11_000_000, 500.0, 395.0));
        assert_eq!(r.clean_rounds(), vec![2, 3]);
        assert_eq!(r.ratios(), vec![0.6, 0.55]);
        assert_eq!(r.median_ratio(), Some(0.6));
        let table = r.table();
        assert!(
            table.contains("clean rounds: 2 of 4 run (3 asked"),
            "{table}"
        );
        assert!(table.contains("0.76/1.00"), "{table}");
        let json = r.json();
        assert_eq!(json["runs"][2]["clean"], false);
        assert_eq!(json["runs"][2]["calibration"]["worker_share_of_best"], 0.5);
        assert_eq!(json["runs"][6]["clean"], true);
        assert_eq!(json["clean_rounds"], serde_json::json!([2, 3]));
        assert_eq!(json["rounds_run"], 4);
        assert_eq!(json["ratios_from_clean_rounds"], true);
    }

    /// A round whose CPUs both ran at their best but whose testpmd ran at
    /// half its best rate in the run (the host slowed memory, not the
    /// clock) is left out: its ratio would be twice the others'.
    #[test]
    fn a_round_where_testpmd_ran_slowed_is_not_clean() {
        let mut r = report(Kind::Nat);
        r.asked = 3;
        let calibrated = |device, received| calibrated(device, received, [500.0; 2], [500.0; 2]);
        r.push(0, calibrated(Device::Testpmd, 16_000_000));
        r.push(0, calibrated(Device::Tgw, 7_000_000));
        r.push(1, calibrated(Device::Testpmd, 8_000_000));
        r.push(1, calibrated(Device::Tgw, 7_000_000));
        r.push(2, calibrated(Device::Testpmd, 15_000_000));
        r.push(2, calibrated(Device::Tgw, 6_000_000));
        assert_eq!(r.clean_rounds(), vec![0, 2]);
        assert_eq!(r.ratios(), vec![7.0 / 16.0, 0.4]);
        assert_eq!(r.json()["runs"][2]["clean"], false);
        // tgw alone: no yardstick, the CPUs decide.
        let mut alone = Report::new(r.profile, true);
        alone.push(0, calibrated(Device::Tgw, 7_000_000));
        alone.push(1, calibrated(Device::Tgw, 3_000_000));
        assert_eq!(alone.clean_rounds(), vec![0, 1]);
    }

    /// With no clean round the ratio still shows the run worked, but says
    /// it is not to be quoted.
    #[test]
    fn no_clean_round_gives_a_ratio_marked_not_to_quote() {
        let mut r = report(Kind::Udp);
        let calibrated = |device, received, worker: f64| {
            calibrated(device, received, [100.0; 2], [worker, 400.0])
        };
        r.push(0, calibrated(Device::Testpmd, 20_000_000, 100.0));
        r.push(0, calibrated(Device::Tgw, 10_000_000, 400.0));
        assert!(r.clean_rounds().is_empty());
        assert_eq!(r.ratios(), vec![0.5]);
        let table = r.table();
        assert!(
            table.contains("tgw/testpmd: 0.500 (NO CLEAN ROUND, do not quote"),
            "{table}"
        );
        assert_eq!(r.json()["ratios_from_clean_rounds"], false);
        // The generator's best, 100, is a quarter of the worker's 400.
        assert!(table.contains("likely ran slowed all along"), "{table}");
        assert_eq!(r.json()["calibration_bests_agree"], false);
    }

    #[test]
    fn cycles_come_from_the_workers_counters() {
        let stats = serde_json::json!({"workers": [
            {"rx_packets": 100, "process_cycles": 4000, "busy_cycles": 9000, "cycles": 30000,
             "drops": {"tx_full": 3, "no_route": 0}},
            {"rx_packets": 300, "process_cycles": 4000, "busy_cycles": 11000, "cycles": 50000,
             "drops": {"tx_full": 4}},
        ]});
        let gen = GenResult {
            seconds: 1.0,
            sent: 1,
            received: 1,
            sent_total: 1,
            received_total: 1,
        };
        let m = Measurement::new(Device::Tgw, gen, Some(&stats), None);
        assert_eq!(m.cycles_process, Some(20.0));
        assert_eq!(m.cycles_busy, Some(50.0));
        assert_eq!(m.busy_share, Some(0.25));
        assert_eq!(m.drops, Some(7));
        // From the window's start on: what the warm-up spent left out.
        let start = serde_json::json!({"workers": [
            {"rx_packets": 50, "process_cycles": 3500, "busy_cycles": 7000, "cycles": 10000},
            {"rx_packets": 150, "process_cycles": 2500, "busy_cycles": 8000, "cycles": 30000},
        ]});
        let w = Measurement::new(Device::Tgw, gen, Some(&stats), Some(&start));
        assert_eq!(w.cycles_process, Some(10.0));
        assert_eq!(w.cycles_busy, Some(25.0));
        assert_eq!(w.busy_share, Some(0.125));
        let reasons: Vec<_> = m
            .drop_reasons
            .iter()
            .map(|(k, &v)| (k.as_str(), v))
            .collect();
        assert_eq!(reasons, [("tx_full", 7)]);
    }
}
