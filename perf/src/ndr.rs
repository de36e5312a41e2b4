//! `tgw-perf ndr`: the throughput of RFC 2544 §26.1 per profile and frame
//! size, for tgw and for testpmd macswap in the same run, and the latency
//! of both at a fraction of their throughput.
//!
//! Per profile, size and device, one generator (`trial`) and one device
//! stay up for the whole search: the generator's unpaced warm-up gives
//! the line rate of the setup (memif has no line rate but the generator's
//! own; the first device's, testpmd by default, is the top of every
//! device's search at that size), then `search` picks each trial's rate.
//! Around every trial, the device is stopped (SIGSTOP) for the few tens of
//! milliseconds in which `calibrate` times both CPUs, so its polling
//! worker does not share the CPU with the loop (the pause is far inside
//! tgw's worker watchdog, 5 s by default); a trial on a slowed CPU is run
//! again, up to `--max-repeats` times, and the report says so.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::calibrate::{self, Calibration};
use crate::dut::{self, Device, Setup};
use crate::profile::{Kind, Profile};
use crate::progress::Progress;
use crate::search::{Search, SearchConf};
use crate::trial::{Size, TrialResult};

/// Bytes each frame takes on the wire besides itself: preamble and start
/// of frame delimiter (8) and the inter-frame gap (12). Gbit/s here are
/// layer 1: (frame + 20) × 8 per frame.
pub const L1_OVERHEAD: f64 = 20.0;

/// The IP MTU of tgw's ports in these runs: a 1518-byte frame and its
/// tunnel headers (GRE with a key, an Ethernet header inside) fit, as on
/// an underlay sized for its overlay.
const MTU: u16 = 1600;

#[derive(clap::Args, Debug)]
pub struct NdrArgs {
    /// Traffic profiles.
    #[arg(long, value_delimiter = ',', default_value = "udp,encap,decap,nat")]
    profiles: Vec<Kind>,
    /// Frame sizes on the wire (FCS included), and `imix`: 7:4:1 of
    /// 64/570/1518 bytes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,512,1024,1280,1518,imix"
    )]
    sizes: Vec<Size>,
    /// Distinct flows (tenants for encap/decap, clients for nat).
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// Loss allowed at the reported rate, percent of the frames sent: 0 is
    /// the no-drop rate (NDR); `--pdr 0.01` the partial-drop rate.
    #[arg(
        long,
        visible_alias = "pdr",
        value_name = "PERCENT",
        default_value_t = 0.0
    )]
    loss: f64,
    /// Seconds of each trial.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    trial: f64,
    /// The search stops when its highest pass and lowest failure are this
    /// close, percent of the line rate.
    #[arg(long, value_name = "PERCENT", default_value_t = 2.0)]
    resolution: f64,
    /// Trials per search at most (repeats of slowed trials aside).
    #[arg(long, default_value_t = 12)]
    max_steps: u32,
    /// Times a trial run on a slowed CPU is run again, at most.
    #[arg(long, default_value_t = 2)]
    max_repeats: u32,
    /// Measure latency at this fraction of each device's throughput (0:
    /// not at all).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.8)]
    latency_at: f64,
    /// Seconds of unpaced traffic before the search (longer, up to 30 s,
    /// until every flow was sent twice): its rate is the line rate.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Devices, in order; the first one's line rate bounds every search.
    #[arg(long, value_delimiter = ',', default_value = "testpmd,tgw")]
    devices: Vec<String>,
    #[command(flatten)]
    bench: dut::Bench,
    /// Write every step of every search as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw charts (PNG) into this directory.
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ChartsArgs {
    /// A report written by `ndr --json`.
    #[arg(long)]
    json: PathBuf,
    /// Where the PNGs go.
    #[arg(long, value_name = "DIR")]
    charts: PathBuf,
}

/// Draws the charts of a saved report.
pub fn charts(args: &ChartsArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&args.json).map_err(|e| format!("{}: {e}", args.json.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.json.display()))?;
    for path in crate::charts::draw(&report, &args.charts)? {
        println!("chart: {}", path.display());
    }
    Ok(())
}

/// The hidden `trial-gen` subcommand's options.
#[derive(clap::Args, Debug)]
pub struct TrialGenCli {
    #[arg(long, num_args = 2)]
    sockets: Vec<String>,
    #[arg(long)]
    file_prefix: String,
    #[arg(long)]
    lcore: u32,
    #[arg(long)]
    no_huge: bool,
    #[arg(long)]
    warmup: f64,
    #[arg(long)]
    profile: Kind,
    #[arg(long)]
    flows: u32,
    #[arg(long)]
    size: Size,
}

pub fn trial_gen(c: &TrialGenCli) -> Result<(), String> {
    crate::trial::run(&crate::trial::TrialGenArgs {
        sockets: [c.sockets[0].clone(), c.sockets[1].clone()],
        file_prefix: c.file_prefix.clone(),
        lcore: c.lcore,
        hugepages: !c.no_huge,
        profile: Profile {
            kind: c.profile,
            flows: c.flows,
            size: 64,
        },
        size: c.size,
        warmup: Duration::from_secs_f64(c.warmup),
    })
}

/// One trial as run: its rate, what came back, the CPUs around it.
struct Step {
    rate: f64,
    result: TrialResult,
    calibration: Calibration,
    slowed: bool,
    /// 0 for the first run at this rate, 1.. for its repeats.
    repeat: u32,
    pass: bool,
}

impl Step {
    /// The trial; its latency as a summary, or with the histogram's
    /// buckets when `buckets` (the latency trial: a search's steps would
    /// make the report megabytes).
    fn json(&self, best: &calibrate::Best, buckets: bool) -> serde_json::Value {
        let r = &self.result;
        let latency = if buckets {
            r.latency.json()
        } else {
            r.latency.summary_json()
        };
        json!({
            "rate_pps": self.rate, "offered_pps": r.attempted as f64 / r.seconds,
            "sent": r.attempted, "refused": r.refused, "received": r.received, "lost": r.lost(),
            "loss_fraction": r.lost() as f64 / r.attempted.max(1) as f64,
            "reordered": r.reordered, "foreign": r.foreign, "pass": self.pass,
            "slowed": self.slowed, "repeat": self.repeat,
            "calibration": self.calibration.json(best), "latency": latency,
        })
    }
}

/// One device's search at one profile and size.
struct Outcome {
    kind: Kind,
    size: Size,
    device: Device,
    line_rate: f64,
    own_max: f64,
    steps: Vec<Step>,
    ndr: f64,
    cut_short: bool,
    latency: Option<Step>,
}

impl Outcome {
    fn slowed(&self) -> usize {
        self.steps.iter().filter(|s| s.slowed).count()
    }

    fn gbps(&self) -> f64 {
        self.ndr * (self.size.mean() + L1_OVERHEAD) * 8.0 / 1e9
    }

    fn json(&self, best: &calibrate::Best) -> serde_json::Value {
        json!({
            "profile": self.kind.to_string(), "size": self.size.to_string(),
            "mean_frame_bytes": self.size.mean(), "device": self.device.name(),
            "line_rate_pps": self.line_rate, "own_max_pps": self.own_max,
            "ndr_pps": self.ndr, "ndr_mpps": self.ndr / 1e6, "ndr_gbps_l1": self.gbps(),
            "cut_short": self.cut_short, "slowed_trials": self.slowed(),
            "steps": self.steps.iter().map(|s| s.json(best, false)).collect::<Vec<_>>(),
            "latency": self.latency.as_ref().map(|s| s.json(best, true)),
        })
    }
}

pub fn run(args: &NdrArgs) -> Result<(), String> {
    let devices = parse_devices(&args.devices)?;
    if !(0.0..100.0).contains(&args.loss) || !args.trial.is_finite() || args.trial <= 0.0 {
        return Err("--loss takes 0..100 percent, --trial seconds above 0".into());
    }
    if !(args.resolution > 0.0 && args.resolution <= 100.0) {
        return Err("--resolution takes a percent above 0".into());
    }
    let setup = args.bench.setup("tgw-perf-ndr")?;
    let dir = setup.dir.clone();
    let mut progress = Progress::new();
    let mut outcomes = Vec::new();
    let mut calibrations = Vec::new();
    let mut outcome = Ok(());
    let mut session_no = 0;
    'all: for &kind in &args.profiles {
        for &size in &args.sizes {
            let mut line_rate = None;
            for &device in &devices {
                session_no += 1;
                let ctx = Ctx {
                    setup: &setup,
                    args,
                    kind,
                    size,
                    device,
                    session: session_no,
                };
                match ctx.search(line_rate, &mut calibrations, &mut progress) {
                    Ok(o) => {
                        line_rate.get_or_insert(o.line_rate);
                        progress.clear();
                        eprintln!("tgw-perf: {}", summary(&o, args.loss));
                        outcomes.push(o);
                    }
                    Err(e) => {
                        progress.clear();
                        outcome = Err(format!(
                            "{kind} {size} {}: {e} (logs in {})",
                            device.name(),
                            dir.display()
                        ));
                        break 'all;
                    }
                }
            }
        }
    }
    let best = calibrate::best(&calibrations);
    print!("{}", table(&outcomes, args));
    let report = report_json(&outcomes, args, &best);
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(charts_dir) = &args.charts {
        let written = crate::charts::draw(&report, charts_dir)?;
        for path in written {
            println!("chart: {}", path.display());
        }
    }
    if outcome.is_ok() && std::env::var_os("TGW_PERF_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

fn parse_devices(names: &[String]) -> Result<Vec<Device>, String> {
    names
        .iter()
        .map(|d| match d.as_str() {
            "tgw" => Ok(Device::Tgw),
            "testpmd" => Ok(Device::Testpmd),
            other => Err(format!("unknown device {other:?}; known: tgw, testpmd")),
        })
        .collect()
}

/// What one search needs to know.
struct Ctx<'a> {
    setup: &'a Setup,
    args: &'a NdrArgs,
    kind: Kind,
    size: Size,
    device: Device,
    session: u32,
}

impl Ctx<'_> {
    /// Starts the generator and the device, searches, measures latency,
    /// stops both.
    fn search(
        &self,
        line_rate: Option<f64>,
        calibrations: &mut Vec<Calibration>,
        progress: &mut Progress,
    ) -> Result<Outcome, String> {
        let args = self.args;
        let mut session = Session::start(self)?;
        let own_max = session.max_pps;
        let line_rate = line_rate.unwrap_or(own_max);
        let conf = SearchConf {
            max: line_rate,
            loss: args.loss / 100.0,
            resolution: args.resolution / 100.0,
            max_steps: args.max_steps,
        };
        let mut search = Search::new(conf);
        let mut steps = Vec::new();
        let bound = max_steps_needed(&conf);
        let label = format!("{} {} {}", self.kind, self.size, self.device.name());
        let mut last_loss = None;
        while let Some(rate) = search.next() {
            progress.show(&label, search.steps() + 1, bound, rate, last_loss);
            let mut runs = session.trial_until_clean(rate, calibrations, self)?;
            let last = runs.last().ok_or("no trial ran")?;
            search.record(rate, last.result.attempted, last.result.lost());
            last_loss = Some(last.result.lost() as f64 / last.result.attempted.max(1) as f64);
            steps.append(&mut runs);
        }
        let ndr = search.result();
        let latency = if args.latency_at > 0.0 && ndr > 0.0 {
            let rate = ndr * args.latency_at;
            progress.show(
                &format!("{label} latency"),
                search.steps(),
                bound,
                rate,
                last_loss,
            );
            session.trial_until_clean(rate, calibrations, self)?.pop()
        } else {
            None
        };
        session.stop()?;
        Ok(Outcome {
            kind: self.kind,
            size: self.size,
            device: self.device,
            line_rate,
            own_max,
            steps,
            ndr,
            cut_short: search.cut_short(),
            latency,
        })
    }
}

/// The trials a search at `conf` takes at most: the line rate, then
/// halvings until the resolution.
fn max_steps_needed(conf: &SearchConf) -> u32 {
    let halvings = (1.0 / conf.resolution).log2().ceil().max(0.0) as u32;
    (1 + halvings).min(conf.max_steps)
}

/// A generator and a device, up for one search.
struct Session {
    gen: GenProc,
    device: Option<dut::Running>,
    max_pps: f64,
    gen_lcore: u32,
    worker_lcore: u32,
}

struct GenProc {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    prefix: String,
}

impl Drop for GenProc {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Not told to finish: something failed on the way.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        dut::remove_runtime_dir(&self.prefix);
    }
}

impl GenProc {
    fn line(&self, limit: Duration) -> Result<serde_json::Value, String> {
        let line = self
            .lines
            .recv_timeout(limit)
            .map_err(|_| "the generator did not answer".to_owned())?;
        serde_json::from_str(line.trim()).map_err(|_| format!("the generator said {line:?}"))
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or("the generator's stdin is closed")?;
        writeln!(stdin, "{line}").map_err(|e| format!("the generator: {e}"))
    }
}

impl Session {
    fn start(ctx: &Ctx) -> Result<Session, String> {
        let setup = ctx.setup;
        for s in &setup.sockets {
            let _ = std::fs::remove_file(s);
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let prefix = format!("tgw-perf-trial-{}-{}", std::process::id(), ctx.session);
        let mut cmd = Command::new(exe);
        cmd.arg("trial-gen")
            .arg("--sockets")
            .args(&setup.sockets)
            .arg("--file-prefix")
            .arg(&prefix)
            .arg("--lcore")
            .arg(ctx.args.bench.gen_lcore.to_string())
            .arg("--warmup")
            .arg(ctx.args.warmup.to_string())
            .arg("--profile")
            .arg(ctx.kind.to_string())
            .arg("--flows")
            .arg(ctx.args.flows.to_string())
            .arg("--size")
            .arg(ctx.size.to_string());
        if !setup.hugepages {
            cmd.arg("--no-huge");
        }
        let log = std::fs::File::create(setup.dir.join(format!("gen-{}.log", ctx.session)))
            .map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("generator has no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let gen = GenProc {
            child,
            stdin,
            lines,
            prefix,
        };
        wait_for_files(&setup.sockets, Duration::from_secs(10));
        let device = start_device(ctx)?;
        let mut session = Session {
            gen,
            device: Some(device),
            max_pps: 0.0,
            gen_lcore: ctx.args.bench.gen_lcore,
            worker_lcore: ctx.args.bench.worker_lcore,
        };
        let ready = session
            .gen
            .line(Duration::from_secs_f64(ctx.args.warmup + 60.0))?;
        session.max_pps = ready["max_pps"]
            .as_f64()
            .filter(|&r| r > 0.0)
            .ok_or_else(|| format!("the generator sent nothing in its warm-up: {ready}"))?;
        Ok(session)
    }

    /// The loop's rate on both CPUs, the device stopped meanwhile.
    fn calibrate(&mut self) -> Result<(f64, f64), String> {
        let pid = self.device.as_ref().ok_or("no device")?.id().to_string();
        signal("-STOP", &pid)?;
        let rates = calibrate::measure(self.gen_lcore, self.worker_lcore);
        signal("-CONT", &pid)?;
        Ok(rates)
    }

    /// A trial at `rate`, run again while a CPU ran slowed (up to
    /// `--max-repeats` times): every run, the last the one that counts.
    fn trial_until_clean(
        &mut self,
        rate: f64,
        calibrations: &mut Vec<Calibration>,
        ctx: &Ctx,
    ) -> Result<Vec<Step>, String> {
        let mut runs = Vec::new();
        for repeat in 0..=ctx.args.max_repeats {
            let before = self.calibrate()?;
            self.gen
                .send(&json!({"rate": rate, "seconds": ctx.args.trial}).to_string())?;
            let answer = self
                .gen
                .line(Duration::from_secs_f64(ctx.args.trial + 30.0))?;
            let result = TrialResult::from_json(&answer)
                .ok_or_else(|| format!("the generator's trial is malformed: {answer}"))?;
            let after = self.calibrate()?;
            let calibration = Calibration {
                gen: [before.0, after.0],
                worker: [before.1, after.1],
            };
            calibrations.push(calibration);
            let slowed = !calibration.is_clean(&calibrate::best(calibrations.iter()));
            let pass =
                crate::search::passes(result.attempted, result.lost(), ctx.args.loss / 100.0);
            runs.push(Step {
                rate,
                result,
                calibration,
                slowed,
                repeat,
                pass,
            });
            if !slowed {
                break;
            }
        }
        Ok(runs)
    }

    /// Stops the device, then lets the generator close its ports.
    fn stop(mut self) -> Result<(), String> {
        let stopped = match self.device.take() {
            Some(d) => d.stop(Duration::from_secs(15)),
            None => Ok(()),
        };
        if let Some(mut stdin) = self.gen.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        stopped
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(d) = self.device.take() {
            let _ = d.stop(Duration::from_secs(15));
        }
    }
}

fn signal(sig: &str, pid: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args([sig, pid])
        .status()
        .map_err(|e| format!("kill {sig} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {sig} {pid}: {status}"))
    }
}

/// The device, as `run` starts it, but tgw's ports with [`MTU`].
fn start_device(ctx: &Ctx) -> Result<dut::Running, String> {
    let profile = Profile {
        kind: ctx.kind,
        flows: ctx.args.flows,
        size: 64,
    };
    match ctx.device {
        Device::Testpmd => ctx
            .setup
            .start(Device::Testpmd, ctx.session, &profile, None, false),
        Device::Tgw => {
            let prefix = format!("tgw-perf-ndr-{}-tgw-{}", std::process::id(), ctx.session);
            let base = ctx.setup.tgw_base_config(
                &prefix,
                !profile.sends_to_underlay(),
                &ctx.setup.memif_devargs,
            );
            let config = with_mtu(&base, MTU) + &profile.tgw_sections();
            ctx.setup.start_tgw(prefix, &config)
        }
    }
}

/// `config` with `mtu` set on every port.
fn with_mtu(config: &str, mtu: u16) -> String {
    config.replace("[[port]]\n", &format!("[[port]]\nmtu = {mtu}\n"))
}

fn wait_for_files(paths: &[String], limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline
        && !paths.iter().all(|p| std::path::Path::new(p).exists())
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn threshold_name(loss: f64) -> String {
    if loss == 0.0 {
        "NDR".into()
    } else {
        format!("PDR {loss}%")
    }
}

fn summary(o: &Outcome, loss: f64) -> String {
    format!(
        "{} {} {}: {} {:.3} Mpps ({:.2} Gbit/s L1) of {:.3} Mpps line rate, {} trials{}{}",
        o.kind,
        o.size,
        o.device.name(),
        threshold_name(loss),
        o.ndr / 1e6,
        o.gbps(),
        o.line_rate / 1e6,
        o.steps.len(),
        match o.slowed() {
            0 => String::new(),
            n => format!(", {n} on a slowed CPU"),
        },
        if o.cut_short { ", cut short" } else { "" },
    )
}

fn micros(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1}", n as f64 / 1e3))
}

/// The table people read: per profile and size, each device's throughput
/// and latency, and tgw's share of testpmd's.
fn table(outcomes: &[Outcome], args: &NdrArgs) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "RFC 2544 throughput, {}: {}s trials, resolution {}% of line rate; Gbit/s at layer 1 (frame + {} B preamble and gap); imix = 7:4:1 of 64/570/1518 B; latency at {}% of each device's rate, µs",
        threshold_name(args.loss),
        args.trial,
        args.resolution,
        L1_OVERHEAD,
        args.latency_at * 100.0
    );
    let _ = writeln!(
        out,
        "{:<6} {:>5} {:<16} {:>9} {:>9} {:>7} {:>6} {:>6}  {:>7} {:>7} {:>7} {:>7} {:>7}",
        "profile",
        "size",
        "device",
        "line Mpps",
        "Mpps",
        "Gbit/s",
        "trials",
        "slowed",
        "min",
        "p50",
        "p99",
        "p99.9",
        "max"
    );
    for o in outcomes {
        let lat = o.latency.as_ref().map(|s| &s.result.latency);
        let p = |q: f64| micros(lat.and_then(|h| h.percentile(q)));
        let _ = writeln!(
            out,
            "{:<6} {:>5} {:<16} {:>9.3} {:>9.3} {:>7.2} {:>6} {:>6}  {:>7} {:>7} {:>7} {:>7} {:>7}{}",
            o.kind.to_string(),
            o.size.to_string(),
            o.device.name(),
            o.line_rate / 1e6,
            o.ndr / 1e6,
            o.gbps(),
            o.steps.len(),
            o.slowed(),
            micros(lat.and_then(|h| h.min())),
            p(50.0),
            p(99.0),
            p(99.9),
            micros(lat.and_then(|h| h.max())),
            if o.cut_short { "  (cut short)" } else { "" },
        );
    }
    for (kind, size, ratio) in ratios(outcomes) {
        let _ = writeln!(out, "tgw/testpmd {kind} {size}: {ratio:.3}");
    }
    out
}

/// tgw's throughput over testpmd's, where both were measured and testpmd's
/// is not 0.
fn ratios(outcomes: &[Outcome]) -> Vec<(Kind, Size, f64)> {
    let find = |k, s, d| {
        outcomes
            .iter()
            .find(|o| o.kind == k && o.size == s && o.device == d)
    };
    outcomes
        .iter()
        .filter(|o| o.device == Device::Tgw)
        .filter_map(|t| {
            let p = find(t.kind, t.size, Device::Testpmd)?;
            (p.ndr > 0.0).then(|| (t.kind, t.size, t.ndr / p.ndr))
        })
        .collect()
}

fn report_json(outcomes: &[Outcome], args: &NdrArgs, best: &calibrate::Best) -> serde_json::Value {
    json!({
        "loss_threshold_percent": args.loss,
        "trial_seconds": args.trial,
        "resolution_percent": args.resolution,
        "latency_at": args.latency_at,
        "imix": "7:4:1 of 64/570/1518 B",
        "l1_overhead_bytes": L1_OVERHEAD,
        "memif_rsize": args.bench.memif_rsize.unwrap_or(10),
        "best_calibration": {"gen_mips": best.gen, "worker_mips": best.worker, "agree": best.agree()},
        "results": outcomes.iter().map(|o| o.json(best)).collect::<Vec<_>>(),
        "ratios": ratios(outcomes).iter().map(|(k, s, r)| json!({
            "profile": k.to_string(), "size": s.to_string(), "tgw_over_testpmd": r,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_gets_the_mtu() {
        let c = "[eal]\n[[port]]\nname = \"a\"\n[[port]]\nname = \"b\"\n";
        assert_eq!(with_mtu(c, 1600).matches("mtu = 1600").count(), 2);
    }

    #[test]
    fn the_step_bound_is_the_halvings_to_the_resolution() {
        let conf = SearchConf {
            max: 1e6,
            loss: 0.0,
            resolution: 0.02,
            max_steps: 12,
        };
        assert_eq!(max_steps_needed(&conf), 7);
        assert_eq!(
            max_steps_needed(&SearchConf {
                max_steps: 3,
                ..conf
            }),
            3
        );
    }
}
