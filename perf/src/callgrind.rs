//! `tgw-perf callgrind-worker`: the instructions the daemon's worker
//! spends a frame, counted by callgrind on the real binary (the pipeline
//! examples count only the pipeline over `VecFrame`s, not the worker's
//! loop, the mbufs and the PMD around it).
//!
//! tgw runs the profile's frames from a pcap without end (net_pcap's
//! `infinite_rx`, which also drops what is sent back on that port), the
//! other port a `net_null` that takes every frame, under `valgrind
//! --tool=callgrind` with collection on only inside `Worker::run`. Two
//! runs of different lengths, each stopped by SIGTERM: (long − short)
//! instructions over (long − short) frames received, so that the start,
//! the first pass's flow creation and the stop cancel out, as the
//! examples' pass difference does (docs/working.md). The same difference
//! per function, from `callgrind_annotate`, splits the figure.
//!
//! What the worker runs by the clock rather than by the frame (its drain
//! every `TX_DRAIN_US`: the sweep, the offload feedback) is left out of
//! the count ([`COLLECT`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapPacket, PcapWriter};

use crate::dut::Setup;
use crate::profile::{Kind, Profile};

#[derive(clap::Args, Debug)]
pub struct CallgrindArgs {
    /// Traffic profile (`nat`, `encap` or `decap`).
    #[arg(long, default_value = "nat")]
    profile: Kind,
    /// Distinct flows (tenants for `encap` and `decap`).
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// Frames the worker receives in the short and in the long run: tgw
    /// is stopped once its counters (asked on the control socket) reach
    /// them. Frames, not seconds: under callgrind the rate follows the
    /// host's load, which a build beside it halves.
    #[arg(long, num_args = 2, default_values_t = [1_000_000, 7_000_000])]
    frames: Vec<u64>,
    /// Seconds a run may take at most.
    #[arg(long, default_value_t = 600.0)]
    limit: f64,
    /// The tgw binary (default: next to tgw-perf, else on PATH).
    #[arg(long)]
    tgw: Option<PathBuf>,
    /// Functions listed in the split, the most costly first.
    #[arg(long, default_value_t = 40)]
    top: usize,
    /// Keep the callgrind outputs and tgw's logs in this directory (for
    /// `callgrind_annotate`); by default they are removed.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// One run under callgrind.
struct Counted {
    frames: u64,
    instructions: u64,
    /// Instructions by function (`callgrind_annotate`'s own counts).
    functions: HashMap<String, u64>,
}

/// Collection is on inside the worker's loop and all it calls, and off
/// again inside what its drain runs every `TX_DRAIN_US` (callgrind toggles
/// at each entry and exit): under callgrind a burst takes longer than
/// that, so the drain would run about once a loop, and as often a frame
/// as the host's load makes it, where at speed it runs once in thousands
/// of frames. The sweep, the offload feedback, the drain's flush of every
/// port (the loop's own flush runs only when a queue was short, never
/// with `infinite_rx`) and the inject ring's dequeue (the only ring a
/// lone worker dequeues).
const COLLECT: [&str; 5] = [
    "tgw::worker::Worker::run*",
    "dataplane::pipeline::Pipeline::sweep*",
    "*::apply_feedback*",
    "tgw::worker::Worker::flush_all*",
    "tgw_ring_dequeue_burst",
];

pub fn run(args: &CallgrindArgs) -> Result<(), String> {
    if args.profile == Kind::Udp || args.profile == Kind::NewFlows {
        return Err("callgrind-worker counts the nat, encap and decap profiles".into());
    }
    let (short, long) = (args.frames[0], args.frames[1]);
    if long <= short {
        return Err("--frames SHORT LONG: the long run must be the longer".into());
    }
    let profile = Profile {
        kind: args.profile,
        flows: args.flows,
        size: 64,
    };
    let setup = Setup::new(
        "tgw-perf-callgrind",
        false,
        args.tgw.clone(),
        "dpdk-testpmd".into(),
        (0, 1),
        None,
    )?;
    let dir = args.keep.clone().unwrap_or_else(|| setup.dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // tgw takes its control socket's path only absolute, and the socket
    // goes in this directory: a relative `--keep` made every run's tgw
    // refuse its config and count nothing.
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pcap = dir.join(format!("{}.pcap", args.profile));
    write_pcap(&pcap, &frames(&profile))?;
    let result = (|| {
        let limit = Duration::from_secs_f64(args.limit);
        let a = count(&setup, &dir, &profile, &pcap, ("short", short), limit)?;
        let b = count(&setup, &dir, &profile, &pcap, ("long", long), limit)?;
        report(args, &a, &b)
    })();
    let _ = std::fs::remove_dir_all(&setup.dir);
    if args.keep.is_some() {
        eprintln!("tgw-perf: outputs kept in {}", dir.display());
    }
    result
}

/// The frames of one pass: every flow once (the `nat` template stamped
/// per client, as the generator does), in order.
fn frames(profile: &Profile) -> Vec<Vec<u8>> {
    let list = profile.frames();
    match (profile.kind, profile.flow_count()) {
        (Kind::Nat, Some(n)) => (0..n)
            .map(|i| {
                let mut f = list[0].clone();
                profile.stamp(&mut f, i);
                f
            })
            .collect(),
        _ => list,
    }
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = PcapWriter::new(file).map_err(|e| e.to_string())?;
    for (i, f) in frames.iter().enumerate() {
        let packet = PcapPacket::new(Duration::from_micros(i as u64), f.len() as u32, f);
        w.write_packet(&packet).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs tgw under callgrind until its worker has received `frames`, then
/// stops it with SIGTERM.
fn count(
    setup: &Setup,
    dir: &Path,
    profile: &Profile,
    pcap: &Path,
    (name, frames): (&str, u64),
    limit: Duration,
) -> Result<Counted, String> {
    let prefix = format!("tgw-perf-cg-{}-{name}", std::process::id());
    let devices = [
        format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()),
        "net_null1,no-rx=1".to_owned(),
    ];
    let socket = dir.join(format!("{name}.sock"));
    let config = setup.tgw_config_on(&prefix, !profile.sends_to_underlay(), devices)
        + &format!("\n[control]\nsocket = \"{}\"\n", socket.display())
        + &profile.tgw_sections()
        + "\n[offload]\nmode = \"off\"\n";
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let out = dir.join(format!("callgrind.{name}.out"));
    let stats = dir.join(format!("{name}.json"));
    let log = dir.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = Command::new("valgrind")
        .arg("--tool=callgrind")
        // Threads take valgrind's lock in turn: without, the polling worker
        // keeps it and the control socket answers seconds late, the run
        // overshooting its frames many times.
        .arg("--fair-sched=yes")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args(COLLECT.iter().map(|f| format!("--toggle-collect={f}")))
        .arg(&setup.tgw)
        .arg("--config")
        .arg(&path)
        .arg("--stats-json")
        .arg(&stats)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start valgrind: {e} (apt-get install valgrind)"))?;
    eprintln!("tgw-perf: {name} run under callgrind, to {frames} frames");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            crate::dut::remove_runtime_dir(&prefix);
            return Err(format!(
                "tgw exited early ({status}): see {}",
                log.display()
            ));
        }
        if received(&socket).is_some_and(|n| n >= frames) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            crate::dut::remove_runtime_dir(&prefix);
            return Err(format!("{frames} frames not received within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    // Valgrind's exit writes the profile: give it time.
    let stop = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > stop {
            let _ = child.kill();
            let _ = child.wait();
            crate::dut::remove_runtime_dir(&prefix);
            return Err(format!(
                "tgw did not stop within 120 s of SIGTERM: {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    crate::dut::remove_runtime_dir(&prefix);
    if !status.success() {
        return Err(format!(
            "tgw under callgrind exited with {status}: see {}",
            log.display()
        ));
    }
    let json: serde_json::Value = std::fs::read_to_string(&stats)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| format!("tgw wrote no counters to {}", stats.display()))?;
    let frames = workers_rx(&json);
    // Sources under the workspace tgw-perf was built in, as tgw's are
    // when both come from one build.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or(String::new(), |r| format!("{}/", r.display()));
    let (instructions, functions) = annotate(&out, &root, &setup.tgw)?;
    Ok(Counted {
        frames,
        instructions,
        functions,
    })
}

/// The frames tgw's workers have received, asked on its control socket.
fn received(socket: &Path) -> Option<u64> {
    Some(workers_rx(&crate::dut::counters(socket)?))
}

/// The workers' `rx_packets` summed, from tgw's counters as JSON.
fn workers_rx(stats: &serde_json::Value) -> u64 {
    stats
        .get("workers")
        .and_then(|w| w.as_array())
        .map_or(0, |w| {
            w.iter().filter_map(|w| w.get("rx_packets")?.as_u64()).sum()
        })
}

/// The total and per-place instructions of a callgrind output, from
/// `callgrind_annotate`: by `file:function`, where `function` is the
/// compiled function and `file` the source the instructions came from
/// (inlined code counts in the function it was inlined into, under its
/// own file), paths under `root` made relative and libraries' to their
/// name.
fn annotate(out: &Path, root: &str, tgw: &Path) -> Result<(u64, HashMap<String, u64>), String> {
    let text = Command::new("callgrind_annotate")
        // Instructions alone: a run with VALGRIND_OPTS="--branch-sim=yes"
        // or "--cache-sim=yes" (kept with --keep, for its mispredicts or
        // misses) has more columns a line, and no total would be found.
        .args([
            "--threshold=100",
            "--inclusive=no",
            "--auto=no",
            "--show=Ir",
        ])
        .arg(out)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("callgrind_annotate: {e}"))?;
    let text = String::from_utf8_lossy(&text.stdout);
    let mut total = None;
    let mut places = HashMap::new();
    for line in text.lines() {
        let Some((count, rest)) = line.trim().split_once(' ') else {
            continue;
        };
        let Ok(n) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // "(12.34%)  file:function [object]"
        let rest = rest.trim();
        let place = rest.split_once(") ").map_or(rest, |(_, p)| p.trim());
        if place == "PROGRAM TOTALS" {
            total = Some(n);
            continue;
        }
        // The object is named at a function's first line only: kept for
        // libraries (their functions have no symbols), not for tgw.
        let place = match place.split_once(" [") {
            Some((p, obj)) => {
                let obj = Path::new(obj.trim_end_matches(']'));
                match obj.file_name() {
                    Some(name) if name != tgw.file_name().unwrap_or(name) => {
                        format!("{p} [{}]", name.to_string_lossy())
                    }
                    _ => p.to_owned(),
                }
            }
            None => place.to_owned(),
        };
        let place = place.replace(root, "");
        let place = match place.split_once("/library/") {
            Some((rustc, std)) if rustc.starts_with("/rustc/") => format!("std/{std}"),
            _ => place,
        };
        *places.entry(place).or_insert(0) += n;
    }
    let total = total.ok_or_else(|| format!("no totals in {}", out.display()))?;
    Ok((total, places))
}

/// `file:function` split at the first colon (a path has none here).
fn file_and_function(place: &str) -> (&str, &str) {
    place.split_once(':').unwrap_or(("", place))
}

fn report(args: &CallgrindArgs, a: &Counted, b: &Counted) -> Result<(), String> {
    let frames = b.frames.saturating_sub(a.frames);
    if frames == 0 {
        return Err(format!(
            "the long run received no more frames than the short one ({} and {})",
            a.frames, b.frames
        ));
    }
    let per = |x: u64, y: u64| (x as f64 - y as f64) / frames as f64;
    println!("profile {}, {} flows", args.profile, args.flows);
    println!(
        "{:>6} {:>12} {:>16} {:>10}",
        "run", "frames", "instructions", "per frame"
    );
    for (name, c) in [("short", a), ("long", b)] {
        println!(
            "{name:>6} {:>12} {:>16} {:>10.1}",
            c.frames,
            c.instructions,
            c.instructions as f64 / c.frames.max(1) as f64
        );
    }
    println!(
        "worker: {:.1} instructions a frame ((long - short) / {frames} frames)",
        per(b.instructions, a.instructions)
    );
    let diff = |key: fn(&str) -> &str| {
        let mut sums: HashMap<&str, f64> = HashMap::new();
        for (place, &n) in &b.functions {
            let before = a.functions.get(place).copied().unwrap_or(0);
            *sums.entry(key(place)).or_insert(0.0) += per(n, before);
        }
        for (place, &n) in &a.functions {
            if !b.functions.contains_key(place) {
                *sums.entry(key(place)).or_insert(0.0) -= n as f64 / frames as f64;
            }
        }
        let mut sums: Vec<(&str, f64)> = sums.into_iter().collect();
        sums.sort_by(|x, y| y.1.total_cmp(&x.1));
        sums
    };
    for (title, key) in [
        (
            "by compiled function",
            (|p| file_and_function(p).1) as fn(&str) -> &str,
        ),
        ("by source file", |p| file_and_function(p).0),
        ("by source file and compiled function", |p| p),
    ] {
        println!("\n{title} (instructions a frame):");
        for (name, n) in diff(key).iter().take(args.top) {
            println!("{n:>8.1}  {name}");
        }
    }
    Ok(())
}
