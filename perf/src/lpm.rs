//! `tgw-perf lpm`: our LPM against DPDK's `rte_lpm` on the same routes, the
//! same addresses, in the same process, alternating, so that the ratio
//! holds on a shared machine whose absolute figures move from run to run.
//! Every answer of every method is compared with the others' on every
//! address; one disagreement fails the run.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use dataplane::lpm::{testgen, Lpm, LpmBuilder, Prefix, VrfId, VrfTables};
use rte::{Eal, RteLpm};
use serde_json::json;

/// Addresses per call of the bulk forms, a worker's RX burst.
const BURST: usize = 32;

#[derive(clap::Args, Debug)]
pub struct LpmArgs {
    /// Routes of the full table (generated BGP-like: ~60% /24).
    #[arg(long, default_value_t = 1_000_000)]
    routes: usize,
    /// Lookups per method and round.
    #[arg(long, default_value_t = 10_000_000)]
    lookups: usize,
    /// Seed of the routes and addresses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rounds; each measures every method once, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Addresses looked up: uniformly `random`, or each `within` a random
    /// route (every lookup a hit).
    #[arg(long, default_value = "random", value_parser = ["random", "within"])]
    addrs: String,
    /// First stride of our table (default: the builder's choice by size;
    /// at most 20: 2^20 direct-pointed nodes, 64 MiB).
    #[arg(long)]
    top_bits: Option<u8>,
    /// VRFs of the many-tables measurement (0 skips it).
    #[arg(long, default_value_t = 65_536)]
    vrfs: u32,
    /// Routes per VRF.
    #[arg(long, default_value_t = 16)]
    vrf_routes: usize,
    /// Run without hugepages (rte_lpm's tables then sit in 4 KiB pages).
    #[arg(long)]
    no_huge: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Lookups per second of one method, per round.
#[derive(Default)]
struct Rates(Vec<f64>);

impl Rates {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn best(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }

    fn json(&self) -> serde_json::Value {
        json!({ "median": self.median(), "best": self.best(), "rounds": self.0 })
    }
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// tbl8 groups `rte_lpm` needs for `routes`: one per /24 holding a longer
/// prefix, with some room.
fn tbl8s_needed(routes: &[(u32, u8, u32)]) -> u32 {
    let mut blocks: Vec<u32> = routes
        .iter()
        .filter(|r| r.1 > 24)
        .map(|r| r.0 >> 8)
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    u32::try_from(blocks.len())
        .unwrap_or(u32::MAX)
        .saturating_add(256)
}

pub fn run(args: &LpmArgs) -> Result<(), String> {
    let hugepages = !args.no_huge && crate::dut::hugepages_available();
    if !args.no_huge && !hugepages {
        eprintln!("tgw-perf: no hugepages reserved; running rte_lpm with --no-huge");
    }
    let prefix = format!("tgw-perf-lpm-{}", std::process::id());
    let eal_args = crate::dut::local_eal_args(&prefix, hugepages, 1024);
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    let result = measure(&eal, args, hugepages);
    drop(eal);
    crate::dut::remove_runtime_dir(&prefix);
    result
}

fn measure(eal: &Eal, args: &LpmArgs, hugepages: bool) -> Result<(), String> {
    let n = args.lookups.max(BURST);
    let routes = testgen::bgp_like(args.seed, args.routes);
    eprintln!("tgw-perf lpm: {} BGP-like routes", routes.len());

    // Ours: insert into the builder, compile.
    let t = Instant::now();
    let mut b = LpmBuilder::with_capacity(routes.len());
    for &(a, l, nh) in &routes {
        let p = Prefix::new(a, l).map_err(|e| e.to_string())?;
        b.insert(p, nh).map_err(|e| e.to_string())?;
    }
    let ours = match args.top_bits {
        Some(bits) => b.build_with_top_bits(bits).map_err(|e| e.to_string())?,
        None => b.build(),
    };
    let ours_load = t.elapsed().as_secs_f64();
    drop(b);
    eprintln!("tgw-perf lpm: ours loaded in {ours_load:.3} s");

    // rte_lpm: create, add one by one (its only way).
    let max_rules = u32::try_from(routes.len()).unwrap_or(u32::MAX).max(1);
    let t = Instant::now();
    let mut rte = RteLpm::new(eal, "tgw_perf_lpm", max_rules, tbl8s_needed(&routes))
        .map_err(|e| e.to_string())?;
    for &(a, l, nh) in &routes {
        rte.add(a, l, nh)
            .map_err(|e| format!("{e} at {}/{l}", std::net::Ipv4Addr::from(a)))?;
    }
    let rte_load = t.elapsed().as_secs_f64();
    eprintln!("tgw-perf lpm: rte_lpm loaded in {rte_load:.3} s");

    let addrs = match args.addrs.as_str() {
        "within" => testgen::addrs_within(&routes, args.seed ^ 0xadd5, n),
        _ => testgen::random_addrs(args.seed ^ 0xadd5, n),
    };
    let mut single = vec![None; n];
    let mut bulk = vec![None; n];
    let mut raw = vec![0u32; n];
    let (mut r_single, mut r_bulk, mut r_rte) =
        (Rates::default(), Rates::default(), Rates::default());
    let mut mismatches = 0usize;
    let mut first_mismatch = None;
    let mut hits = 0usize;
    for round in 0..args.rounds.max(1) {
        eprintln!("tgw-perf lpm: round {}/{}", round + 1, args.rounds.max(1));
        // Alternate which goes first, so neither always runs on a cache the
        // other warmed.
        let mut order = [0u8, 1, 2];
        order.rotate_left(round as usize % 3);
        for m in order {
            match m {
                0 => {
                    let t = Instant::now();
                    for (o, &a) in single.iter_mut().zip(&addrs) {
                        *o = ours.lookup(a);
                    }
                    r_single.0.push(rate(n, t));
                }
                1 => {
                    let t = Instant::now();
                    for (a, o) in addrs.chunks(BURST).zip(bulk.chunks_mut(BURST)) {
                        ours.lookup_slice(a, o);
                    }
                    r_bulk.0.push(rate(n, t));
                }
                _ => {
                    let t = Instant::now();
                    for (a, o) in addrs.chunks(BURST).zip(raw.chunks_mut(BURST)) {
                        rte.lookup_bulk(a, o);
                    }
                    r_rte.0.push(rate(n, t));
                }
            }
            black_box((&single, &bulk, &raw));
        }
        mismatches = 0;
        hits = 0;
        for (i, &a) in addrs.iter().enumerate() {
            let theirs = RteLpm::decode(raw[i]);
            hits += usize::from(theirs.is_some());
            if single[i] != theirs || bulk[i] != theirs {
                mismatches += 1;
                first_mismatch.get_or_insert((a, single[i], bulk[i], theirs));
            }
        }
    }
    let agree = mismatches == 0;
    drop(raw);
    drop(bulk);
    drop(single);

    let ours_mem = ours.memory_bytes();
    let rte_mem = rte.memory_bytes();
    let stats = ours.stats();
    drop(rte);
    drop(ours);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "LPM, {} routes (BGP-like, seed {}), {} {} addresses x {} rounds{}",
        routes.len(),
        args.seed,
        n,
        args.addrs,
        args.rounds.max(1),
        if hugepages { "" } else { ", no hugepages" }
    );
    let _ = writeln!(
        table,
        "  {:<26} {:>12} {:>12} {:>10} {:>12}",
        "method", "median M/s", "best M/s", "load s", "memory MiB"
    );
    let row = |t: &mut String, name: &str, r: &Rates, load: f64, mem: usize| {
        let _ = writeln!(
            t,
            "  {:<26} {:>12.1} {:>12.1} {:>10.3} {:>12.1}",
            name,
            r.median() / 1e6,
            r.best() / 1e6,
            load,
            mib(mem)
        );
    };
    let ours_name = format!("ours lookup ({}-bit top)", stats.top_bits);
    row(&mut table, &ours_name, &r_single, ours_load, ours_mem);
    row(
        &mut table,
        "ours lookup_slice x32",
        &r_bulk,
        ours_load,
        ours_mem,
    );
    row(
        &mut table,
        "rte_lpm_lookup_bulk x32",
        &r_rte,
        rte_load,
        rte_mem,
    );
    let ratio = |a: &Rates| a.median() / r_rte.median().max(1e-9);
    let _ = writeln!(
        table,
        "  ours/rte_lpm: bulk {:.2}x, single {:.2}x; memory {:.2}x; load {:.2}x faster",
        ratio(&r_bulk),
        ratio(&r_single),
        ours_mem as f64 / rte_mem as f64,
        rte_load / ours_load.max(1e-9)
    );
    let _ = writeln!(
        table,
        "  answers: {} ({} of {} addresses matched a route)",
        if agree {
            "identical for every address".to_owned()
        } else {
            format!("{mismatches} DISAGREE")
        },
        hits,
        n
    );
    print!("{table}");

    let mut report = json!({
        "routes": routes.len(),
        "lookups": n,
        "seed": args.seed,
        "addrs": args.addrs,
        "rounds": args.rounds.max(1),
        "hugepages": hugepages,
        "burst": BURST,
        "agree": agree,
        "mismatches": mismatches,
        "hits": hits,
        "ours": {
            "top_bits": stats.top_bits,
            "nodes": stats.nodes,
            "leaves": stats.leaves,
            "load_s": ours_load,
            "memory_bytes": ours_mem,
            "single": r_single.json(),
            "bulk": r_bulk.json(),
        },
        "rte_lpm": {
            "load_s": rte_load,
            "memory_bytes": rte_mem,
            "bulk": r_rte.json(),
        },
        "ratio_bulk": ratio(&r_bulk),
        "ratio_single": ratio(&r_single),
    });
    drop(routes);

    if args.vrfs > 0 && agree {
        report["vrf"] = measure_vrfs(args, n)?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match first_mismatch {
        Some((a, s, b, r)) => Err(format!(
            "ours and rte_lpm disagree on {mismatches} addresses; first {}: \
             ours lookup {s:?}, lookup_slice {b:?}, rte_lpm {r:?}",
            std::net::Ipv4Addr::from(a)
        )),
        None => Ok(()),
    }
}

/// Many small tables: what rte_lpm cannot do within memory.
fn measure_vrfs(args: &LpmArgs, n: usize) -> Result<serde_json::Value, String> {
    let v = args.vrfs;
    eprintln!("tgw-perf lpm: {v} VRFs x {} routes", args.vrf_routes);
    let per_vrf: Vec<Vec<(u32, u8, u32)>> = (0..v)
        .map(|i| {
            testgen::tenant_like(
                args.seed.wrapping_mul(1 << 20) ^ u64::from(i),
                args.vrf_routes,
            )
        })
        .collect();
    let t = Instant::now();
    let tables: VrfTables = per_vrf
        .iter()
        .map(|r| Lpm::from_routes(r.iter().copied()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let build = t.elapsed().as_secs_f64();
    let mem = tables.memory_bytes();

    // Random VRF; half the addresses inside one of its routes (its own
    // subnets and hosts), half anywhere (the default route).
    let mut rng = testgen::XorShift64::new(args.seed ^ 0x7e4a47);
    let mut vrfs = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let vrf = rng.below(v);
        let rs = &per_vrf[vrf as usize];
        let a = if rs.is_empty() || rng.below(2) == 0 {
            rng.next_u32()
        } else {
            let (p, l, _) = rs[rng.below(u32::try_from(rs.len()).unwrap_or(u32::MAX)) as usize];
            let host = if l == 0 {
                u32::MAX
            } else {
                u32::MAX >> l.min(31)
            };
            p | (rng.next_u32() & if l >= 32 { 0 } else { host })
        };
        vrfs.push(VrfId(vrf));
        addrs.push(a);
    }
    drop(per_vrf);

    let mut single = vec![None; n];
    let mut bulk = vec![None; n];
    let (mut r_single, mut r_bulk) = (Rates::default(), Rates::default());
    for round in 0..args.rounds.max(1) {
        let mut order = [0u8, 1];
        order.rotate_left(round as usize % 2);
        for m in order {
            let t = Instant::now();
            if m == 0 {
                for ((o, &a), &vrf) in single.iter_mut().zip(&addrs).zip(&vrfs) {
                    *o = tables.lookup(vrf, a);
                }
                r_single.0.push(rate(n, t));
            } else {
                let mut a32 = addrs.chunks_exact(BURST);
                let mut v32 = vrfs.chunks_exact(BURST);
                let mut o32 = bulk.chunks_exact_mut(BURST);
                for ((a, vr), o) in (&mut a32).zip(&mut v32).zip(&mut o32) {
                    if let (Ok(a), Ok(vr), Ok(o)) = (
                        <&[u32; BURST]>::try_from(a),
                        <&[VrfId; BURST]>::try_from(vr),
                        <&mut [Option<u32>; BURST]>::try_from(o),
                    ) {
                        tables.lookup_bulk(vr, a, o);
                    }
                }
                let rest = a32.remainder().iter().zip(v32.remainder());
                for ((&a, &vrf), o) in rest.zip(o32.into_remainder()) {
                    *o = tables.lookup(vrf, a);
                }
                r_bulk.0.push(rate(n, t));
            }
            black_box((&single, &bulk));
        }
        if single != bulk {
            let bad = single.iter().zip(&bulk).filter(|(a, b)| a != b).count();
            return Err(format!(
                "VrfTables lookup and lookup_bulk disagree on {bad} of {n} lookups"
            ));
        }
    }
    let rte_would = v as usize * RteLpm::TBL24_BYTES;

    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nVRFs: {v} x {} routes (tenant-like), {n} lookups in random VRFs x {} rounds",
        args.vrf_routes,
        args.rounds.max(1)
    );
    let _ = writeln!(
        t,
        "  {:<26} {:>12} {:>12}",
        "method", "median M/s", "best M/s"
    );
    for (name, r) in [
        ("ours VrfTables::lookup", &r_single),
        ("ours lookup_bulk x32", &r_bulk),
    ] {
        let _ = writeln!(
            t,
            "  {:<26} {:>12.1} {:>12.1}",
            name,
            r.median() / 1e6,
            r.best() / 1e6
        );
    }
    let _ = writeln!(
        t,
        "  ours: built in {build:.3} s, {:.1} MiB in all ({} bytes per VRF)",
        mib(mem),
        mem / v.max(1) as usize
    );
    let _ = writeln!(
        t,
        "  rte_lpm: not built; {v} tables would need {:.1} GiB of tbl24 alone ({} MiB each)",
        rte_would as f64 / (1u64 << 30) as f64,
        RteLpm::TBL24_BYTES >> 20
    );
    print!("{t}");
    Ok(json!({
        "vrfs": v,
        "routes_per_vrf": args.vrf_routes,
        "build_s": build,
        "memory_bytes": mem,
        "single": r_single.json(),
        "bulk": r_bulk.json(),
        "rte_lpm_would_need_bytes": rte_would,
    }))
}
