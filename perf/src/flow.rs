//! `tgw-perf flow`: our flow table against DPDK's `rte_hash` holding the
//! same keys, in the same process, alternating, so that the ratio holds on
//! a shared machine whose absolute figures move from run to run.
//!
//! `--flows N` makes N source-NATed flows (`flow::testgen::nat_flows`):
//! our table holds them as N flows of two keys; `rte_hash` holds the same
//! 2N keys, 16 bytes each, sized with a quarter of headroom as a DPDK
//! application would (its bucket count is then rounded up to a power of
//! two). Both then look up the same random existing keys, forward or
//! reply, in bulks of 32 for `--seconds` per method and round; every
//! answer of every pass is checked (outside the clock) against what the
//! inserts returned.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dataplane::flow::testgen::{nat_flows, SplitMix64, MAX_NAT_FLOWS};
use dataplane::flow::{Direction, FlowKey, FlowTable, Lookup, Prefetch};
use rte::{thread_cpu_time, Eal, HugeAlloc, RteHash};
use serde_json::json;

/// DPDK's prefetch for our table's staged lookups.
struct RtePrefetch;

impl Prefetch for RtePrefetch {
    const INSTRUCTION: bool = true;

    #[inline(always)]
    fn prefetch<T>(&self, r: &T) {
        rte::prefetch(r);
    }
}

/// Keys per bulk call, a worker's RX burst.
const BURST: usize = 32;

/// What the pipeline will keep per flow: cached actions for both
/// directions, about 64 bytes.
type Value = [u64; 8];

#[derive(clap::Args, Debug)]
pub struct FlowArgs {
    /// Flows (each two keys: forward and reply), at most 16M.
    #[arg(long, default_value_t = 1_000_000)]
    flows: usize,
    /// Seconds of lookups per method and round.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Rounds; each measures every method once, alternating which goes
    /// first.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Distinct queries, looked up in order, over and over (random keys of
    /// existing flows, either direction).
    #[arg(long, default_value_t = 1 << 22)]
    queries: usize,
    /// Seed of the flows and queries.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run without hugepages: rte_hash's tables then sit in 4 KiB pages,
    /// as ours always do (`-m` is sized from the table).
    #[arg(long)]
    no_huge: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seconds of flow creation after the lookups (0: none): the table
    /// full, each step sweeps [`CHURN_STEP`] slots, looks up and inserts
    /// as many new flows, the steady state of `tgw-perf run --profile
    /// new-flows` for the table alone.
    #[arg(long, default_value_t = 2.0)]
    churn_seconds: f64,
    /// Passes over the queries per method and round instead of
    /// `--seconds`: a fixed amount of work, for instruction counts
    /// (`valgrind --tool=callgrind`, with `--methods` one at a time).
    #[arg(long)]
    passes: Option<u64>,
    /// Which lookups to measure, of bulk, single, rte, prefetch.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bulk,single,rte,prefetch"
    )]
    methods: Vec<String>,
}

/// Flows a churn step sweeps and creates.
const CHURN_STEP: usize = 32;

/// Lookups per second of one method, per round.
#[derive(Default)]
struct Rates(Vec<f64>);

impl Rates {
    fn median(&self) -> f64 {
        median(&self.0)
    }

    fn best(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }

    fn json(&self) -> serde_json::Value {
        json!({ "median": self.median(), "best": self.best(), "rounds": self.0 })
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn free_hugepage_bytes() -> usize {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0)
        * (2 << 20)
}

/// This process's memory in transparent huge pages (`AnonHugePages`).
fn anon_huge_bytes() -> usize {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("AnonHugePages:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// `rte_hash` entries for `keys` keys: a quarter of headroom, as its
/// cuckoo insert can fail near 100 % of a power-of-two bucket array.
fn rte_entries(keys: usize) -> u32 {
    u32::try_from(keys + keys / 4).unwrap_or(u32::MAX).max(8)
}

pub fn run(args: &FlowArgs) -> Result<(), String> {
    if args.flows == 0 || args.flows > MAX_NAT_FLOWS {
        return Err(format!("--flows must be in 1..={MAX_NAT_FLOWS}"));
    }
    let entries = rte_entries(args.flows * 2);
    // What rte_hash will take, plus room for EAL's own allocations.
    let need = RteHash::<16>::memory_bytes_for(entries) + (64 << 20);
    // And ours, if it is to sit in hugepages too.
    let ours_need = args.flows * (64 + std::mem::size_of::<Value>()) + (4 << 20);
    let hugepages = !args.no_huge && crate::dut::hugepages_available();
    if !args.no_huge && !hugepages {
        eprintln!("tgw-perf: no hugepages reserved; running rte_hash with --no-huge");
    }
    if hugepages && free_hugepage_bytes() < need {
        return Err(format!(
            "rte_hash for {} keys needs {:.0} MiB of hugepages and {:.0} MiB are free; \
             reserve more (echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) \
             or pass --no-huge",
            args.flows * 2,
            mib(need),
            mib(free_hugepage_bytes())
        ));
    }
    let prefix = format!("tgw-perf-flow-{}", std::process::id());
    let eal_args = crate::dut::local_eal_args(&prefix, hugepages, (need >> 20).max(256));
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    // Our table goes into the same hugetlbfs pool when there is room for
    // both; otherwise rte_hash keeps the hugepages and ours takes 4 KiB
    // pages (the report says which).
    // EAL has taken its `-m` (rte_hash's `need`) out of the pool already.
    let ours_huge = hugepages && free_hugepage_bytes() >= ours_need;
    if hugepages && !ours_huge {
        eprintln!(
            "tgw-perf: {:.0} MiB of hugepages free: rte_hash gets them, our table goes in 4 KiB pages",
            mib(free_hugepage_bytes())
        );
    }
    let result = measure(&eal, args, entries, hugepages, ours_huge);
    drop(eal);
    crate::dut::remove_runtime_dir(&prefix);
    result
}

fn measure(
    eal: &Eal,
    args: &FlowArgs,
    entries: u32,
    hugepages: bool,
    ours_huge: bool,
) -> Result<(), String> {
    let flows = nat_flows(args.seed, args.flows, 1000);
    eprintln!(
        "tgw-perf flow: {} flows, {} keys",
        flows.len(),
        flows.len() * 2
    );

    // Ours.
    let t = Instant::now();
    let free_before = free_hugepage_bytes();
    HugeAlloc::set_hugetlb(ours_huge);
    let ours: Result<FlowTable<Value>, _> = FlowTable::with_seed(flows.len(), args.seed);
    HugeAlloc::set_hugetlb(false);
    let mut ours = ours.map_err(|e| e.to_string())?;
    // Where it landed: hugetlbfs pages taken for it, against its size.
    let ours_in_hugepages =
        free_before.saturating_sub(free_hugepage_bytes()) >= ours.memory_bytes() / 2;
    // Else in transparent huge pages, if the kernel granted them to
    // `HugeAlloc`'s `MADV_HUGEPAGE` mappings (it did not always, here).
    let ours_thp = anon_huge_bytes();
    let mut ids = Vec::with_capacity(flows.len());
    for (i, &(f, r)) in flows.iter().enumerate() {
        let id = ours
            .insert(f, r, u64::MAX, [i as u64; 8])
            .map_err(|e| format!("ours: flow {i}: {e}"))?;
        ids.push(id);
    }
    let ours_load = t.elapsed().as_secs_f64();
    let stats = ours.stats();
    eprintln!(
        "tgw-perf flow: ours loaded in {ours_load:.3} s ({:.1} % of slots, {:.1} % of keys in their alternative bucket, {} moves)",
        stats.slot_load * 100.0,
        stats.keys_in_alt as f64 * 50.0 / flows.len() as f64,
        stats.moves
    );

    // rte_hash, the same keys.
    let t = Instant::now();
    let mut rte: RteHash<16> =
        RteHash::new(eal, "tgw_perf_flow", entries).map_err(|e| e.to_string())?;
    let mut positions = Vec::with_capacity(flows.len() * 2);
    for (i, &(f, r)) in flows.iter().enumerate() {
        for k in [f, r] {
            let p = rte
                .add(&k.to_bytes())
                .map_err(|e| format!("rte_hash: flow {i}: {e}"))?;
            positions.push(p);
        }
    }
    let rte_load = t.elapsed().as_secs_f64();
    eprintln!("tgw-perf flow: rte_hash loaded in {rte_load:.3} s");

    // Queries: random existing keys, either direction.
    let q = args.queries.max(BURST);
    let mut rng = SplitMix64::new(args.seed ^ 0xf10f);
    let mut keys: Vec<FlowKey> = Vec::with_capacity(q);
    let mut bytes: Vec<[u8; 16]> = Vec::with_capacity(q);
    let mut want_ours: Vec<Lookup> = Vec::with_capacity(q);
    let mut want_rte: Vec<i32> = Vec::with_capacity(q);
    for _ in 0..q {
        let i = rng.below(flows.len() as u64) as usize;
        let dir = if rng.below(2) == 0 {
            Direction::Forward
        } else {
            Direction::Reply
        };
        let k = if dir == Direction::Forward {
            flows[i].0
        } else {
            flows[i].1
        };
        keys.push(k);
        bytes.push(k.to_bytes());
        want_ours.push(Lookup::Hit(ids[i], dir));
        want_rte.push(positions[2 * i + dir.index()] as i32);
    }
    drop(positions);
    let ours_mem = ours.memory_bytes();
    let ours_own = ours.overhead_bytes();
    let rte_mem = rte.memory_bytes();
    drop(flows);
    drop(ids);

    let mut out_ours = vec![Lookup::Miss; q];
    let mut out_rte = vec![0i32; q];
    let budget = Duration::from_secs_f64(args.seconds.max(0.01));
    let (mut r_bulk, mut r_single, mut r_rte) =
        (Rates::default(), Rates::default(), Rates::default());
    let (mut w_bulk, mut w_single, mut w_rte) =
        (Rates::default(), Rates::default(), Rates::default());
    let (mut r_pf, mut w_pf) = (Rates::default(), Rates::default());
    let mut pf_ratios = Vec::new();
    let mut round_ratios = Vec::new();
    let mut checked = 0u64;
    let mut bad: Option<String> = None;
    let now = 0u64;
    for round in 0..args.rounds.max(1) {
        eprintln!("tgw-perf flow: round {}/{}", round + 1, args.rounds.max(1));
        let mut order = [0u8, 1, 2, 3];
        order.rotate_left(round as usize % 4);
        let mut this = [0.0f64; 4];
        for m in order {
            let name = ["bulk", "single", "rte", "prefetch"][m as usize];
            if !args.methods.iter().any(|x| x == name) {
                continue;
            }
            let mut timed = Duration::ZERO;
            let mut cpu = Duration::ZERO;
            let mut done = 0u64;
            while match args.passes {
                Some(p) => done < p * q as u64,
                None => timed < budget,
            } {
                let t = Instant::now();
                let c = thread_cpu_time();
                match m {
                    0 => {
                        for (k, o) in keys.chunks(BURST).zip(out_ours.chunks_mut(BURST)) {
                            ours.lookup_bulk(k, now, o);
                        }
                    }
                    1 => {
                        for (k, o) in keys.iter().zip(out_ours.iter_mut()) {
                            *o = ours.lookup(k, now);
                        }
                    }
                    2 => {
                        for (k, o) in bytes.chunks(BURST).zip(out_rte.chunks_mut(BURST)) {
                            rte.lookup_bulk(k, o);
                        }
                    }
                    _ => {
                        for (k, o) in keys.chunks(BURST).zip(out_ours.chunks_mut(BURST)) {
                            ours.lookup_bulk_with(&RtePrefetch, k, now, o);
                        }
                    }
                }
                cpu += thread_cpu_time().saturating_sub(c);
                timed += t.elapsed();
                done += q as u64;
                black_box((&out_ours, &out_rte));
                // Every answer of the pass, off the clock.
                let wrong = if m == 2 {
                    out_rte.iter().zip(&want_rte).position(|(a, b)| a != b)
                } else {
                    out_ours.iter().zip(&want_ours).position(|(a, b)| a != b)
                };
                checked += q as u64;
                if let Some(i) = wrong {
                    bad.get_or_insert_with(|| {
                        if m == 2 {
                            format!(
                                "rte_hash answered {} for {}, expected {}",
                                out_rte[i], keys[i], want_rte[i]
                            )
                        } else {
                            format!(
                                "ours ({}) answered {:?} for {}, expected {:?}",
                                ["bulk", "single", "", "bulk+prefetch"][m as usize],
                                out_ours[i],
                                keys[i],
                                want_ours[i]
                            )
                        }
                    });
                    break;
                }
            }
            // Per CPU second: the time other processes had the core is
            // not ours to count (wall-clock rates are in the JSON).
            let rate = done as f64 / cpu.as_secs_f64().max(1e-9);
            this[m as usize] = rate;
            [&mut r_bulk, &mut r_single, &mut r_rte, &mut r_pf][m as usize]
                .0
                .push(rate);
            [&mut w_bulk, &mut w_single, &mut w_rte, &mut w_pf][m as usize]
                .0
                .push(done as f64 / timed.as_secs_f64().max(1e-9));
        }
        round_ratios.push(this[0] / this[2].max(1e-9));
        pf_ratios.push(this[3] / this[2].max(1e-9));
    }
    drop(rte);
    let churn = churn(&mut ours, args);
    drop(ours);

    let n = args.flows;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "flow table, {n} flows ({} keys, seed {}), {q} random existing keys x {} rounds of {:.1} s{}",
        n * 2,
        args.seed,
        args.rounds.max(1),
        budget.as_secs_f64(),
        match (hugepages, ours_in_hugepages) {
            (true, true) => ", both in hugepages",
            (true, false) => ", rte_hash in hugepages, ours not in hugetlbfs",
            (false, true) => ", ours in hugepages, rte_hash not",
            (false, false) => ", no hugepages",
        }
    );
    if !ours_in_hugepages {
        let _ = writeln!(
            table,
            "  ours: {:.0} of {:.0} MiB in transparent huge pages",
            mib(ours_thp.min(ours_mem)),
            mib(ours_mem)
        );
    }
    let _ = writeln!(
        table,
        "  {:<26} {:>11} {:>9} {:>8} {:>11} {:>10}",
        "method", "median M/s", "best M/s", "load s", "memory MiB", "bytes/flow"
    );
    let _ = writeln!(table, "  (lookups per CPU second of this thread)");
    let row = |t: &mut String, name: &str, r: &Rates, load: f64, mem: usize| {
        let _ = writeln!(
            t,
            "  {:<26} {:>11.1} {:>9.1} {:>8.2} {:>11.1} {:>10.1}",
            name,
            r.median() / 1e6,
            r.best() / 1e6,
            load,
            mib(mem),
            mem as f64 / n as f64
        );
    };
    row(
        &mut table,
        "ours lookup_bulk x32",
        &r_bulk,
        ours_load,
        ours_mem,
    );
    row(&mut table, "ours lookup", &r_single, ours_load, ours_mem);
    row(
        &mut table,
        "ours bulk x32 + rte_prefetch",
        &r_pf,
        ours_load,
        ours_mem,
    );
    row(
        &mut table,
        "rte_hash_lookup_bulk x32",
        &r_rte,
        rte_load,
        rte_mem,
    );
    let ratio = median(&round_ratios);
    let _ = writeln!(
        table,
        "  ours/rte_hash: bulk {ratio:.2}x (median of per-round ratios {}), single {:.2}x",
        round_ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" "),
        r_single.median() / r_rte.median().max(1e-9)
    );
    let _ = writeln!(
        table,
        "  ours with DPDK's prefetch/rte_hash: bulk {:.2}x (per round {})",
        median(&pf_ratios),
        pf_ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        table,
        "  memory per flow: ours {:.1} B ({:.1} B of it the table's own, the rest a {}-byte value), rte_hash {:.1} B (keys only, {} entries)",
        ours_mem as f64 / n as f64,
        ours_own as f64 / n as f64,
        std::mem::size_of::<Value>(),
        rte_mem as f64 / n as f64,
        entries
    );
    if churn.created > 0 {
        let _ = writeln!(
            table,
            "  new flows at full fill (sweep {CHURN_STEP} slots, then a missing lookup and an insert each): {:.2} M/s per CPU second ({} created, {} refused, {:.3} s)",
            churn.rate() / 1e6,
            churn.created,
            churn.refused,
            churn.cpu.as_secs_f64()
        );
    }
    let _ = writeln!(
        table,
        "  answers: {} ({checked} checked)",
        bad.as_deref().unwrap_or("every one as inserted")
    );
    print!("{table}");

    let report = json!({
        "flows": n,
        "keys": n * 2,
        "queries": q,
        "seed": args.seed,
        "rounds": args.rounds.max(1),
        "seconds": budget.as_secs_f64(),
        "hugepages": hugepages,
        "ours_in_hugepages": ours_in_hugepages,
        "anon_huge_bytes": ours_thp,
        "rates": "lookups per CPU second; wall_* per wall-clock second",
        "burst": BURST,
        "agree": bad.is_none(),
        "checked": checked,
        "ours": {
            "load_s": ours_load,
            "memory_bytes": ours_mem,
            "overhead_bytes": ours_own,
            "value_bytes": std::mem::size_of::<Value>(),
            "slot_load": stats.slot_load,
            "keys_in_alt": stats.keys_in_alt,
            "bulk": r_bulk.json(),
            "single": r_single.json(),
            "wall_bulk": w_bulk.json(),
            "wall_single": w_single.json(),
            "bulk_prefetch": r_pf.json(),
            "wall_bulk_prefetch": w_pf.json(),
        },
        "rte_hash": {
            "entries": entries,
            "load_s": rte_load,
            "memory_bytes": rte_mem,
            "bulk": r_rte.json(),
            "wall_bulk": w_rte.json(),
        },
        "ratio_bulk": ratio,
        "round_ratios": round_ratios,
        "ratio_bulk_prefetch": median(&pf_ratios),
        "round_ratios_prefetch": pf_ratios,
        "ratio_single": r_single.median() / r_rte.median().max(1e-9),
        "churn": {
            "step": CHURN_STEP,
            "created": churn.created,
            "refused": churn.refused,
            "cpu_s": churn.cpu.as_secs_f64(),
            "per_cpu_second": churn.rate(),
        },
    });
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match bad {
        Some(b) => Err(format!("wrong answer: {b}")),
        None => Ok(()),
    }
}

/// What [`churn`] measured.
#[derive(Default)]
struct Churn {
    created: u64,
    refused: u64,
    cpu: Duration,
}

impl Churn {
    fn rate(&self) -> f64 {
        self.created as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// New flows into the full table, as the `new-flows` profile's steady
/// state asks of it: flow `i` expires at time `i + capacity`, so a sweep of
/// [`CHURN_STEP`] slots at each step frees as many flows as the step then
/// creates. Every created flow first misses a lookup, as the pipeline's
/// does. The keys removed go to the back of a queue of unused keys, which
/// the inserts take from the front.
fn churn(ours: &mut FlowTable<Value>, args: &FlowArgs) -> Churn {
    let mut out = Churn::default();
    if args.churn_seconds <= 0.0 {
        return out;
    }
    let cap = ours.capacity() as u64;
    // Deadlines in step order: the flows loaded for the lookups all expire
    // at once, so give them their turn first.
    let mut id_deadline = Vec::with_capacity(ours.capacity());
    for (id, _, _, _) in ours.iter() {
        id_deadline.push(id);
    }
    for (i, id) in id_deadline.into_iter().enumerate() {
        ours.set_deadline(id, i as u64 + 1);
    }
    // Unused keys: flows of another seed (a key that is in the table
    // already is refused with `Exists` and counted).
    let extra = args.flows.clamp(CHURN_STEP * 4, 1 << 20);
    let mut spare: std::collections::VecDeque<(FlowKey, FlowKey)> =
        nat_flows(args.seed ^ 0xc4c4, extra, 1000).into();
    let budget = Duration::from_secs_f64(args.churn_seconds);
    let mut now = 0u64;
    let mut timed = Duration::ZERO;
    while timed < budget {
        let t = Instant::now();
        let c = thread_cpu_time();
        for _ in 0..1024 {
            now += CHURN_STEP as u64;
            ours.sweep(CHURN_STEP, now, |gone| {
                spare.push_back((gone.keys[0], gone.keys[1]))
            });
            for _ in 0..CHURN_STEP {
                let Some((f, r)) = spare.pop_front() else {
                    break;
                };
                let missed = ours.lookup(&f, now) == Lookup::Miss;
                match ours.insert(f, r, now + cap, [now; 8]) {
                    Ok(_) if missed => out.created += 1,
                    _ => out.refused += 1,
                }
            }
        }
        out.cpu += thread_cpu_time().saturating_sub(c);
        timed += t.elapsed();
    }
    black_box(&spare);
    out
}
