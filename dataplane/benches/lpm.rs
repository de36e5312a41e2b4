//! LPM benchmarks: 1000 tenant-sized tables of 3 to 32 routes, a ~1M-prefix
//! BGP-like table and 64k VRFs × 16 routes.
//!
//! `cargo bench -p dataplane --bench lpm -- --warm-up-time 1 --measurement-time 3`
//! (`-- lpm_small` for the small tables alone)
//!
//! Memory per table and one-shot build times are printed to stderr before
//! criterion's own figures. Lookup throughput is in elements (lookups) per
//! second. `LPM_BENCH_ROUTES` overrides the big table's size.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::lpm::testgen::{self, XorShift64};
use dataplane::lpm::{Lpm, LpmBuilder, Prefix, VrfId, VrfTables, SMALL_MAX_ROUTES};

/// Addresses per measured iteration: enough to defeat the branch predictor
/// and spread over the whole table, few enough to stay out of the way of
/// the table in cache (256 KiB).
const BATCH: usize = 1 << 16;
const VRFS: u32 = 65_536;
const VRF_ROUTES: usize = 16;

fn big_routes() -> Vec<(u32, u8, u32)> {
    let n = std::env::var("LPM_BENCH_ROUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    testgen::bgp_like(1, n)
}

fn load(routes: &[(u32, u8, u32)]) -> LpmBuilder {
    let mut b = LpmBuilder::with_capacity(routes.len());
    for &(a, l, nh) in routes {
        if let Ok(p) = Prefix::new(a, l) {
            let _ = b.insert(p, nh);
        }
    }
    b
}

fn report(what: &str, t: &Lpm) {
    let s = t.stats();
    eprintln!(
        "{what}: {} routes, top {} bits, {} nodes, {} leaves, {} bytes ({:.2} MiB, {:.1} B/route)",
        s.routes,
        s.top_bits,
        s.nodes,
        s.leaves,
        s.bytes,
        s.bytes as f64 / f64::from(1 << 20),
        s.bytes as f64 / s.routes.max(1) as f64
    );
}

/// Lookup throughput of `t`, single and batched, as `<name>_single`,
/// `<name>_bulk4`, … in `group`.
fn lookups(c: &mut Criterion, group: &str, name: &str, t: &Lpm, addrs: &[u32]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(addrs.len() as u64));
    g.bench_function(format!("{name}_single"), |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for &a in addrs {
                acc = acc.wrapping_add(t.lookup(a).unwrap_or(0));
            }
            black_box(acc)
        })
    });
    g.bench_function(format!("{name}_bulk4"), |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for a in addrs.chunks_exact(4) {
                if let Ok(a) = <[u32; 4]>::try_from(a) {
                    for r in t.lookup4(a) {
                        acc = acc.wrapping_add(r.unwrap_or(0));
                    }
                }
            }
            black_box(acc)
        })
    });
    g.bench_function(format!("{name}_bulk8"), |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for a in addrs.chunks_exact(8) {
                if let Ok(a) = <[u32; 8]>::try_from(a) {
                    for r in t.lookup8(a) {
                        acc = acc.wrapping_add(r.unwrap_or(0));
                    }
                }
            }
            black_box(acc)
        })
    });
    g.bench_function(format!("{name}_burst32"), |b| {
        let mut out = vec![None; addrs.len()];
        b.iter(|| {
            t.lookup_slice(addrs, &mut out);
            black_box(
                out.iter()
                    .fold(0u32, |acc, r| acc.wrapping_add(r.unwrap_or(0))),
            )
        })
    });
    g.finish();
}

/// DIR-24-8, the scheme of DPDK's `rte_lpm`, as a same-run baseline on
/// this machine (the perf crate compares against `rte_lpm` itself): a 2^24
/// first level, and 256-entry second-level groups for /25../32.
struct Dir24 {
    tbl24: Vec<u32>,
    tbl8: Vec<u32>,
}

impl Dir24 {
    const VALID: u32 = 1 << 31;
    const EXT: u32 = 1 << 30;

    fn new(routes: &[(u32, u8, u32)]) -> Self {
        let mut r = routes.to_vec();
        // Shorter first, so longer routes overwrite what they refine.
        r.sort_by_key(|x| x.1);
        let mut tbl24 = vec![0u32; 1 << 24];
        let mut tbl8: Vec<u32> = Vec::new();
        for &(a, l, nh) in &r {
            if l <= 24 {
                let start = (a >> 8) as usize;
                let n = 1usize << (24 - l);
                tbl24[start..start + n].fill(Self::VALID | nh);
            } else {
                let e = &mut tbl24[(a >> 8) as usize];
                if *e & Self::EXT == 0 {
                    let g = tbl8.len() / 256;
                    tbl8.resize(tbl8.len() + 256, *e);
                    *e = Self::VALID | Self::EXT | g as u32;
                }
                let g = (*e & 0x00ff_ffff) as usize;
                let start = g * 256 + (a & 0xff) as usize;
                let n = 1usize << (32 - l);
                tbl8[start..start + n].fill(Self::VALID | nh);
            }
        }
        Dir24 { tbl24, tbl8 }
    }

    fn bytes(&self) -> usize {
        (self.tbl24.len() + self.tbl8.len()) * 4
    }

    #[inline]
    fn lookup(&self, a: u32) -> Option<u32> {
        let mut e = self.tbl24.get((a >> 8) as usize).copied().unwrap_or(0);
        if e & Self::EXT != 0 {
            let i = (e & 0x00ff_ffff) as usize * 256 + (a & 0xff) as usize;
            e = self.tbl8.get(i).copied().unwrap_or(0);
        }
        if e & Self::VALID != 0 {
            Some(e & 0x00ff_ffff)
        } else {
            None
        }
    }

    #[inline]
    fn lookup4(&self, a: [u32; 4]) -> [Option<u32>; 4] {
        let e = a.map(|a| self.tbl24.get((a >> 8) as usize).copied().unwrap_or(0));
        std::array::from_fn(|k| {
            let mut e = e[k];
            if e & Self::EXT != 0 {
                let i = (e & 0x00ff_ffff) as usize * 256 + (a[k] & 0xff) as usize;
                e = self.tbl8.get(i).copied().unwrap_or(0);
            }
            (e & Self::VALID != 0).then_some(e & 0x00ff_ffff)
        })
    }
}

fn dir24_lookups(c: &mut Criterion, group: &str, t: &Dir24, addrs: &[u32]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(addrs.len() as u64));
    g.bench_function("dir24_8_single", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for &a in addrs {
                acc = acc.wrapping_add(t.lookup(a).unwrap_or(0));
            }
            black_box(acc)
        })
    });
    g.bench_function("dir24_8_bulk4", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for a in addrs.chunks_exact(4) {
                if let Ok(a) = <[u32; 4]>::try_from(a) {
                    for r in t.lookup4(a) {
                        acc = acc.wrapping_add(r.unwrap_or(0));
                    }
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn big_table(c: &mut Criterion) {
    let routes = big_routes();
    let t0 = Instant::now();
    let b = load(&routes);
    let t1 = Instant::now();
    let t = b.build();
    let t2 = Instant::now();
    eprintln!(
        "1M build: insert {:.0} ms + compile {:.0} ms = {:.0} ms",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3,
        (t2 - t0).as_secs_f64() * 1e3
    );
    report("bgp_like auto", &t);
    for bits in [12, 16] {
        if let Ok(x) = b.build_with_top_bits(bits) {
            report(&format!("bgp_like top {bits}"), &x);
        }
    }
    let wide = b.build_with_top_bits(20).unwrap_or_default();
    report("bgp_like top 20", &wide);

    let mut g = c.benchmark_group("lpm_1m_build");
    g.sample_size(10);
    g.bench_function("insert_and_compile", |bch| {
        bch.iter(|| black_box(load(&routes).build()))
    });
    g.bench_function("compile", |bch| bch.iter(|| black_box(b.build())));
    g.finish();

    let random = testgen::random_addrs(2, BATCH);
    let matching = testgen::addrs_within(&routes, 3, BATCH);
    let dir = Dir24::new(&routes);
    eprintln!(
        "dir24_8 baseline: {:.1} MiB",
        dir.bytes() as f64 / f64::from(1 << 20)
    );
    for (&a, &m) in random.iter().zip(&matching) {
        assert_eq!(t.lookup(a), dir.lookup(a));
        assert_eq!(t.lookup(m), dir.lookup(m));
        assert_eq!(wide.lookup(m), dir.lookup(m));
    }
    let auto = format!("top{}", t.stats().top_bits);
    lookups(c, "lpm_1m_random", &auto, &t, &random);
    lookups(c, "lpm_1m_random", "top20", &wide, &random);
    dir24_lookups(c, "lpm_1m_random", &dir, &random);
    lookups(c, "lpm_1m_matching", &auto, &t, &matching);
    lookups(c, "lpm_1m_matching", "top20", &wide, &matching);
    dir24_lookups(c, "lpm_1m_matching", &dir, &matching);
}

fn many_vrfs(c: &mut Criterion) {
    let per_vrf: Vec<_> = (0..VRFS)
        .map(|i| testgen::tenant_like(u64::from(i), VRF_ROUTES))
        .collect();
    let t0 = Instant::now();
    let vrfs: VrfTables = per_vrf.iter().map(|r| load(r).build()).collect();
    let dt = t0.elapsed();
    let total = vrfs.memory_bytes();
    eprintln!(
        "{VRFS} VRFs x {VRF_ROUTES} routes: build {:.0} ms, {total} bytes ({:.1} MiB), {} bytes per table",
        dt.as_secs_f64() * 1e3,
        total as f64 / f64::from(1 << 20),
        total / VRFS as usize
    );
    if let Some(t) = vrfs.get(VrfId(0)) {
        report("tenant VRF 0", t);
    }

    let mut g = c.benchmark_group("lpm_64k_vrf_build");
    g.sample_size(10);
    g.bench_function("one_16_route_table", |bch| {
        let mut i = 0usize;
        bch.iter_batched(
            || {
                i = (i + 1) % per_vrf.len();
                &per_vrf[i]
            },
            |r| black_box(load(r).build()),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // Each lookup in a random VRF, at an address inside a random one of
    // that VRF's routes (tenant traffic), or anywhere (Internet-bound).
    let mut rng = XorShift64::new(4);
    let (ids, addrs): (Vec<VrfId>, Vec<u32>) = (0..BATCH)
        .map(|_| {
            let v = rng.below(VRFS);
            let a = match rng.below(2) {
                0 => testgen::addrs_within(&per_vrf[v as usize], rng.next_u64(), 1)[0],
                _ => rng.next_u32(),
            };
            (VrfId(v), a)
        })
        .unzip();
    let mut g = c.benchmark_group("lpm_64k_vrf");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("single", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for (&v, &a) in ids.iter().zip(&addrs) {
                acc = acc.wrapping_add(vrfs.lookup(v, a).unwrap_or(0));
            }
            black_box(acc)
        })
    });
    g.bench_function("bulk8", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            let mut out = [None; 8];
            for (v, a) in ids.chunks_exact(8).zip(addrs.chunks_exact(8)) {
                if let (Ok(v), Ok(a)) = (<&[VrfId; 8]>::try_from(v), <&[u32; 8]>::try_from(a)) {
                    vrfs.lookup_bulk(v, a, &mut out);
                    for r in out {
                        acc = acc.wrapping_add(r.unwrap_or(0));
                    }
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

/// Tenant-sized tables, 1000 of them (the pipeline bench's tenant count),
/// each lookup in a random one at an address inside one of its routes (or
/// anywhere, one in four): the automatic form (the scanned small form up
/// to `SMALL_MAX_ROUTES` routes) against the Poptrie of the same routes at
/// the 8-bit first stride `build` used to pick for them.
fn small_tables(c: &mut Criterion) {
    const TENANTS: u32 = 1000;
    eprintln!(
        "small form up to {SMALL_MAX_ROUTES} routes, Lpm header {} bytes",
        std::mem::size_of::<Lpm>()
    );
    for n in [3usize, 8, 16, 17, 32] {
        let per_vrf: Vec<_> = (0..TENANTS)
            .map(|i| testgen::tenant_like(u64::from(i) + 7, n))
            .collect();
        let auto: VrfTables = per_vrf.iter().map(|r| load(r).build()).collect();
        let trie: VrfTables = per_vrf
            .iter()
            .map(|r| load(r).build_with_top_bits(8).unwrap_or_default())
            .collect();
        eprintln!(
            "{TENANTS} tables x {n} routes: auto {} bytes/table (small: {}), top8 {} bytes/table",
            auto.memory_bytes() / TENANTS as usize,
            auto.get(VrfId(0)).is_some_and(Lpm::is_small),
            trie.memory_bytes() / TENANTS as usize,
        );
        let mut rng = XorShift64::new(5);
        let (ids, addrs): (Vec<VrfId>, Vec<u32>) = (0..BATCH)
            .map(|_| {
                let v = rng.below(TENANTS);
                let a = match rng.below(4) {
                    0 => rng.next_u32(),
                    _ => testgen::addrs_within(&per_vrf[v as usize], rng.next_u64(), 1)[0],
                };
                (VrfId(v), a)
            })
            .unzip();
        for (&v, &a) in ids.iter().zip(&addrs) {
            assert_eq!(auto.lookup(v, a), trie.lookup(v, a));
        }
        let mut g = c.benchmark_group(format!("lpm_small/{n}_routes"));
        g.throughput(Throughput::Elements(BATCH as u64));
        for (name, vrfs) in [("auto", &auto), ("top8", &trie)] {
            g.bench_function(format!("{name}_single"), |b| {
                b.iter(|| {
                    let mut acc = 0u32;
                    for (&v, &a) in ids.iter().zip(&addrs) {
                        acc = acc.wrapping_add(vrfs.lookup(v, a).unwrap_or(0));
                    }
                    black_box(acc)
                })
            });
            g.bench_function(format!("{name}_bulk8"), |b| {
                b.iter(|| {
                    let mut acc = 0u32;
                    let mut out = [None; 8];
                    for (v, a) in ids.chunks_exact(8).zip(addrs.chunks_exact(8)) {
                        if let (Ok(v), Ok(a)) =
                            (<&[VrfId; 8]>::try_from(v), <&[u32; 8]>::try_from(a))
                        {
                            vrfs.lookup_bulk(v, a, &mut out);
                            for r in out {
                                acc = acc.wrapping_add(r.unwrap_or(0));
                            }
                        }
                    }
                    black_box(acc)
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, small_tables, big_table, many_vrfs);
criterion_main!(benches);
