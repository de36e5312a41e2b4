//! tgw-perf: measures tgw the way testpmd is measured, and testpmd beside
//! it in the same run, so that the ratio means something on a shared,
//! noisy machine.
#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod calibrate;
mod callgrind;
mod changes;
mod charts;
mod churn;
mod churn_test;
mod dut;
mod flow;
mod gen;
mod histogram;
mod history;
mod lpm;
mod ndr;
mod netns;
mod newflows;
mod paced;
mod profile;
mod progress;
mod report;
mod scenario;
mod scrape;
mod search;
mod trial;
mod tunnel;

use dut::{Device, Setup};

/// Big blocks in their own 2 MiB-aligned mappings, so that `tgw-perf flow`
/// can put our table in the same hugetlbfs pages as DPDK's.
#[global_allocator]
static ALLOC: rte::HugeAlloc = rte::HugeAlloc;
use gen::{GenArgs, GenResult};
use profile::{Kind, Profile};
use report::{Measurement, Report};

/// testpmd-style throughput runs of tgw over memif, with dpdk-testpmd
/// (macswap) measured on the same setup in the same run as the baseline.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Measure tgw and testpmd: generator on one core, the device's worker
    /// on the other, joined by two memif links; prints a table and the
    /// tgw/testpmd ratio.
    Run(RunArgs),
    /// Our LPM against DPDK's rte_lpm on the same generated routes and
    /// addresses, in this process, alternating; then 64k VRFs of a few
    /// routes each, which rte_lpm cannot hold.
    Lpm(lpm::LpmArgs),
    /// Our flow table against DPDK's rte_hash holding the same keys
    /// (forward and reply of every flow), in this process, alternating:
    /// bulk lookups of random existing keys, every answer checked.
    Flow(flow::FlowArgs),
    /// The tenant host's end of a GRE tunnel (what a hypervisor's vswitch
    /// does): a TAP (gretap) or TUN (ipv4) device joined to GRE with a key
    /// over a raw socket, until SIGTERM/SIGINT; then its counters.
    Tunnel(tunnel::TunnelArgs),
    /// The reference scenario with real Linux hosts in network namespaces
    /// (root): a client, two tenant hosts behind GRE tunnels, tgw between
    /// them on af_packet ports; TCP, ping, keys on the wire, the resolver.
    /// Prints PASS/FAIL per check and a summary, and removes everything.
    Scenario(scenario::ScenarioArgs),
    /// What runtime changes cost at issue 11's scale (10k tenants x 16
    /// routes, 100k elastic IPs, 1M global routes), made as the daemon
    /// makes them, in this process, without DPDK: rate, p50, p99 and max
    /// latency of each kind of single change, and a batch of 100k elastic
    /// IPs.
    Changes(changes::ChangesArgs),
    /// The instructions tgw's worker spends a frame, counted by callgrind
    /// on the real binary: the profile's frames from a pcap without end
    /// (net_pcap, infinite_rx), a short and a long run, their difference
    /// per frame received, in all and per function.
    CallgrindWorker(callgrind::CallgrindArgs),
    /// (internal) The generator process that `run` starts.
    #[command(hide = true)]
    Gen(GenCli),
    /// Changes through tgw's control socket at a paced rate (route
    /// replaced, tenant added and removed, elastic IP bound and unbound,
    /// rule added and removed); prints how many were made and refused and
    /// their latency.
    Churn(churn::ChurnArgs),
    /// Zero loss under change: tgw on memif with traffic at a fixed rate
    /// to some tenants and an elastic IP while `churn` changes others;
    /// prints per-tenant sent/received/misrouted and tgw's drops.
    ChurnTest(churn_test::ChurnTestArgs),
    /// What a scrape of tgw's Prometheus /metrics costs: tgw started with
    /// N tenants (default 10,000), /metrics fetched K times; p50/p99/max
    /// scrape time, body size and series.
    Scrape(scrape::ScrapeArgs),
    /// RFC 2544 throughput (§26.1): per profile and frame size, a binary
    /// search for the highest offered load lost no more than --loss
    /// (default none: the no-drop rate), for testpmd macswap and tgw in
    /// the same run; their latency at a fraction of it; a table,
    /// --json with every trial and --charts.
    Ndr(ndr::NdrArgs),
    /// The charts of a report `ndr --json` wrote, drawn again.
    NdrCharts(ndr::ChartsArgs),
    /// (internal) The generator process that `ndr` starts.
    #[command(hide = true)]
    TrialGen(ndr::TrialGenCli),
    /// (internal) The paced generator process that `churn-test` starts.
    #[command(hide = true)]
    Paced(PacedCli),
}

#[derive(clap::Args, Debug)]
struct PacedCli {
    #[arg(long, num_args = 2)]
    sockets: Vec<String>,
    #[arg(long)]
    file_prefix: String,
    #[arg(long)]
    lcore: u32,
    #[arg(long)]
    no_huge: bool,
    #[arg(long)]
    rate: u64,
    #[arg(long)]
    seconds: f64,
    #[arg(long)]
    tail: f64,
    #[arg(long)]
    tenants: u32,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Seconds of measurement per device and round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of traffic before measuring starts; longer (by up to 30 s)
    /// until the device has taken every flow's frame twice (a frame its
    /// ring refused is offered again), so that flow creation is not
    /// measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds; each measures testpmd then tgw, and the median ratio of
    /// the clean rounds (neither CPU slowed, nor testpmd's rate, nor tgw's I/O) is
    /// reported.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Rounds run beyond --rounds, at most, to replace rounds where a CPU
    /// ran slowed [default: 3, or 0 with --rounds 1: a single round is a
    /// look, not a median to protect]
    #[arg(long)]
    max_reruns: Option<u32>,
    /// Traffic profile.
    #[arg(long, default_value = "udp")]
    profile: Kind,
    /// Distinct flows in the traffic (`new-flows`: the new flows a second
    /// its flow table has room for).
    #[arg(long, default_value_t = 1024)]
    flows: u32,
    /// Frame size on the wire, FCS included.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Which devices to measure.
    #[arg(long, value_delimiter = ',', default_value = "testpmd,tgw")]
    devices: Vec<String>,
    #[command(flatten)]
    bench: dut::Bench,
    /// Scrape tgw's /metrics every SECS while it is measured (from a
    /// thread on the generator's lcore, as a Prometheus server would);
    /// the scrapes and failures are reported.
    #[arg(long, value_name = "SECS")]
    scrape_interval: Option<f64>,
    /// Measure tgw twice a round, without and with scraping (every
    /// --scrape-interval, default 1 s), the order alternating from round
    /// to round; reports the scraped/unscraped ratio per round and its
    /// median.
    #[arg(long)]
    compare_scrape: bool,
    /// Measure tgw twice a round, with `[offload] mode = "off"` and
    /// `"shadow"` (workers offer flows, the manager builds and keeps their
    /// rules, none installed: what offload costs the worker), the order
    /// alternating from round to round; reports the shadow/off ratio of
    /// tgw's processing cycles a frame per round and its median.
    #[arg(long, conflicts_with = "compare_scrape")]
    compare_offload: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where testpmd's best rate on each bench since the machine booted is
    /// kept between runs: a run's testpmd rounds are also judged against
    /// it, so that a run the host slowed throughout is not taken for a
    /// clean one [default: $XDG_STATE_HOME/tgw-perf/best.json, else
    /// ~/.local/state/tgw-perf/best.json]
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Judge testpmd by this run's rates alone, and keep none.
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
}

#[derive(clap::Args, Debug)]
struct GenCli {
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
    seconds: f64,
    #[arg(long)]
    profile: Kind,
    #[arg(long)]
    flows: u32,
    #[arg(long)]
    size: usize,
}

fn main() {
    let args = Args::parse();
    let result = match args.cmd {
        Cmd::Run(run) => run_all(&run),
        Cmd::Lpm(l) => lpm::run(&l),
        Cmd::Flow(f) => flow::run(&f),
        Cmd::Tunnel(t) => tunnel::run(&t),
        Cmd::Scenario(s) => scenario::run(&s),
        Cmd::Churn(c) => churn::run(&c),
        Cmd::ChurnTest(c) => churn_test::run(&c),
        Cmd::Paced(p) => paced::run(&paced::PacedArgs {
            sockets: [p.sockets[0].clone(), p.sockets[1].clone()],
            file_prefix: p.file_prefix,
            lcore: p.lcore,
            hugepages: !p.no_huge,
            rate: p.rate,
            seconds: Duration::from_secs_f64(p.seconds),
            tail: Duration::from_secs_f64(p.tail),
            tenants: p.tenants,
        }),
        Cmd::Changes(c) => changes::run(&c),
        Cmd::Ndr(n) => ndr::run(&n),
        Cmd::NdrCharts(c) => ndr::charts(&c),
        Cmd::TrialGen(t) => ndr::trial_gen(&t),
        Cmd::Scrape(s) => scrape::run(&s),
        Cmd::CallgrindWorker(c) => callgrind::run(&c),
        Cmd::Gen(g) => {
            let [a, b] = [g.sockets[0].clone(), g.sockets[1].clone()];
            gen::run(&GenArgs {
                sockets: [a, b],
                file_prefix: g.file_prefix,
                lcore: g.lcore,
                hugepages: !g.no_huge,
                warmup: Duration::from_secs_f64(g.warmup),
                seconds: Duration::from_secs_f64(g.seconds),
                profile: Profile {
                    kind: g.profile,
                    flows: g.flows,
                    size: g.size,
                },
            })
        }
    };
    if let Err(e) = result {
        eprintln!("tgw-perf: {e}");
        std::process::exit(1);
    }
}

fn run_all(args: &RunArgs) -> Result<(), String> {
    let devices: Vec<Device> = args
        .devices
        .iter()
        .map(|d| match d.as_str() {
            "tgw" => Ok(Device::Tgw),
            "testpmd" => Ok(Device::Testpmd),
            other => Err(format!("unknown device {other:?}; known: tgw, testpmd")),
        })
        .collect::<Result<_, _>>()?;
    let setup = args.bench.setup("tgw-perf")?;
    let dir = setup.dir.clone();
    let profile = Profile {
        kind: args.profile,
        flows: args.flows,
        size: args.size,
    };

    let mut report = Report::new(profile, setup.hugepages);
    report.asked = args.rounds;
    let bench = history::bench_key(
        &profile.kind.to_string(),
        profile.size,
        setup.hugepages,
        args.bench.memif_rsize,
    );
    let history_path =
        (!args.no_history).then(|| args.history.clone().unwrap_or_else(history::default_path));
    let mut history = history_path
        .as_deref()
        .map(|p| history::History::load(p, &history::boot_id()));
    report.testpmd_since_boot = history.as_ref().and_then(|h| h.testpmd(&bench));
    let mut outcome = Ok(());
    let max_reruns = args
        .max_reruns
        .unwrap_or(if args.rounds > 1 { 3 } else { 0 });
    let mut round = 0;
    'rounds: while calibrate::another_round(
        report.clean_rounds().len() as u32,
        round,
        args.rounds,
        max_reruns,
    ) {
        if round >= args.rounds {
            eprintln!(
                "tgw-perf: {} of {} rounds clean; re-running",
                report.clean_rounds().len(),
                round
            );
        }
        for (device, scrape, offload) in round_plan(&devices, args, round)? {
            let name = report::label(device, scrape.is_some(), offload);
            let rerun = if round >= args.rounds {
                " (re-run)"
            } else {
                ""
            };
            eprintln!(
                "tgw-perf: round {}/{}{rerun}: {name} for {}s",
                round + 1,
                args.rounds,
                args.seconds
            );
            let before = calibrate::measure(args.bench.gen_lcore, args.bench.worker_lcore);
            match measure(&setup, device, scrape, offload, round, args, profile) {
                Ok(mut m) => {
                    // After the device has stopped: its worker no longer
                    // holds the CPU the loop is timed on.
                    let after = calibrate::measure(args.bench.gen_lcore, args.bench.worker_lcore);
                    m.calibration = Some(calibrate::Calibration {
                        gen: [before.0, after.0],
                        worker: [before.1, after.1],
                    });
                    report.push(round, m);
                }
                Err(e) => {
                    outcome = Err(format!("{name}: {e} (logs in {})", dir.display()));
                    break 'rounds;
                }
            }
        }
        if !report.is_clean(round) {
            eprintln!("tgw-perf: round {} ran on a slowed CPU", round + 1);
        }
        round += 1;
    }
    print!("{}", report.table());
    if let (Some(h), Some(path), Some(best)) = (&mut history, &history_path, report.testpmd_best())
    {
        h.record(&bench, best);
        if let Err(e) = h.save(path) {
            eprintln!("tgw-perf: testpmd's best not kept: {e}");
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.json().to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // TGW_PERF_KEEP=1 keeps the configs and logs of a successful run too.
    if outcome.is_ok() && std::env::var_os("TGW_PERF_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// What a round measures, in order: each device (scraped every so
/// often, with offload in shadow mode), and with `--compare-scrape` tgw
/// twice, unscraped and scraped, or with `--compare-offload` twice, off
/// and shadow, the two swapping places every other round so that neither
/// always runs on the warmer (or the busier) machine.
fn round_plan(
    devices: &[Device],
    args: &RunArgs,
    round: u32,
) -> Result<Vec<(Device, Option<Duration>, bool)>, String> {
    let interval = match args.scrape_interval {
        Some(s) if !(s > 0.0 && s.is_finite()) => {
            return Err(format!("--scrape-interval {s}: give seconds above 0"))
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None if args.compare_scrape => Some(Duration::from_secs(1)),
        None => None,
    };
    let mut plan = Vec::new();
    for &device in devices {
        match device {
            Device::Tgw if args.compare_scrape || args.compare_offload => {
                let mut both = if args.compare_scrape {
                    [(device, None, false), (device, interval, false)]
                } else {
                    [(device, interval, false), (device, interval, true)]
                };
                if round % 2 == 1 {
                    both.reverse();
                }
                plan.extend(both);
            }
            Device::Tgw => plan.push((device, interval, false)),
            Device::Testpmd => plan.push((device, None, false)),
        }
    }
    Ok(plan)
}

/// One device, one round: generator first (it owns the memif sockets),
/// then the device (scraped every `scrape` if given, once its /metrics
/// answers); result from the generator; then the scraping stops and the
/// device stops before the generator lets go of the links.
fn measure(
    setup: &Setup,
    device: Device,
    scrape: Option<Duration>,
    offload: bool,
    round: u32,
    args: &RunArgs,
    profile: Profile,
) -> Result<Measurement, String> {
    for s in &setup.sockets {
        let _ = std::fs::remove_file(s);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let gen_prefix = format!("tgw-perf-gen-{}-{round}", std::process::id());
    let mut gen = Command::new(exe);
    gen.arg("gen")
        .arg("--sockets")
        .args(&setup.sockets)
        .arg("--file-prefix")
        .arg(&gen_prefix)
        .arg("--lcore")
        .arg(args.bench.gen_lcore.to_string())
        .arg("--warmup")
        .arg(args.warmup.to_string())
        .arg("--seconds")
        .arg(args.seconds.to_string())
        .arg("--profile")
        .arg(profile.kind.to_string())
        .arg("--flows")
        .arg(profile.flows.to_string())
        .arg("--size")
        .arg(profile.size.to_string());
    if !setup.hugepages {
        gen.arg("--no-huge");
    }
    let gen_log =
        std::fs::File::create(setup.dir.join(format!("gen-{}-{round}.log", device.name())))
            .map_err(|e| e.to_string())?;
    let gen = gen
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(gen_log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut gen = GenChild {
        child: gen,
        prefix: gen_prefix,
    };

    // The generator creates the sockets; give it a moment before the
    // device connects, so the device does not start against nothing.
    wait_for_files(&setup.sockets, Duration::from_secs(10));
    let metrics = match scrape {
        Some(_) => Some(scrape::free_loopback_port()?),
        None => None,
    };
    let running = setup.start(device, round, &profile, metrics, offload)?;
    let scraper = metrics
        .zip(scrape)
        .map(|(addr, every)| scrape::Scraper::start(addr, every, args.bench.gen_lcore));

    let stdout = gen.child.stdout.take().ok_or("generator has no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The device's counters when the window starts, then the result: its
    // cycles a frame are the window's, not the warm-up's (at 10M flows,
    // the warm-up creates them all).
    let deadline = Instant::now() + Duration::from_secs_f64(args.warmup + args.seconds + 40.0);
    let mut at_start = None;
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("\"window\"") => {
                at_start = running.control.as_deref().and_then(dut::counters);
            }
            Ok(l) => break l,
            Err(_) => break String::new(),
        }
    };
    let tally = scraper.map(scrape::Scraper::stop);
    let stopped = running_stop(running);
    if let Some(mut stdin) = gen.child.stdin.take() {
        let _ = stdin.write_all(b"\n");
    }
    drop(gen);

    // No result: a device that failed is the cause, not the generator
    // that waited for its links.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
        return Err(stopped
            .err()
            .unwrap_or_else(|| "the generator reported no result".to_owned()));
    };
    let result = GenResult::from_json(&value).ok_or("the generator's result is malformed")?;
    let stats = stopped?;
    if let Some(t) = &tally {
        if t.scrapes == 0 {
            return Err("tgw's /metrics never answered".into());
        }
    }
    let mut m = Measurement::new(device, result, stats.as_ref(), at_start.as_ref());
    m.scrape = tally;
    m.offload = offload;
    Ok(m)
}

/// The generator process: on every way out of `measure`, early errors
/// included, it is waited for (killed if it has not finished, which only
/// happens when the device under test never came up) and its runtime
/// directory removed.
struct GenChild {
    child: std::process::Child,
    prefix: String,
}

impl Drop for GenChild {
    fn drop(&mut self) {
        if self.child.stdin.is_some() {
            // Not told to finish: something failed before the result.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        dut::remove_runtime_dir(&self.prefix);
    }
}

/// Stops the device and reads tgw's counters, if it wrote them.
fn running_stop(running: dut::Running) -> Result<Option<serde_json::Value>, String> {
    let stats = running.stats_json.clone();
    running.stop(Duration::from_secs(15))?;
    Ok(stats
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok()))
}

fn wait_for_files(paths: &[String], limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline
        && !paths.iter().all(|p| std::path::Path::new(p).exists())
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}
