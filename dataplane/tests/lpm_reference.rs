//! The compiled LPM against naive references on random tables.
//!
//! Two references: a linear scan (obviously right, slow) and a per-length
//! exact-match map probed from /32 down (a different algorithm, fast enough
//! for large tables). The second is itself checked against the first.
//!
//! Set `LPM_TEST_LOOKUPS` to raise the number of random lookups per table
//! (e.g. 5000000 in release for a long soak).

use std::collections::HashMap;

use dataplane::lpm::testgen::{self, XorShift64};
use dataplane::lpm::{Lpm, LpmBuilder, Prefix, VrfId, VrfTables, SMALL_MAX_ROUTES};

type Route = (u32, u8, u32);

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn linear(routes: &[Route], addr: u32) -> Option<u32> {
    let mut best: Option<(u8, u32)> = None;
    for &(p, l, nh) in routes {
        if addr & mask(l) == p && !matches!(best, Some((bl, _)) if bl >= l) {
            best = Some((l, nh));
        }
    }
    best.map(|(_, nh)| nh)
}

struct ByLen {
    maps: Vec<(u8, HashMap<u32, u32>)>,
}

impl ByLen {
    fn new(routes: &[Route]) -> Self {
        let mut maps: Vec<(u8, HashMap<u32, u32>)> =
            (0..=32u8).rev().map(|l| (l, HashMap::new())).collect();
        for &(p, l, nh) in routes {
            maps[usize::from(32 - l)].1.insert(p, nh);
        }
        maps.retain(|(_, m)| !m.is_empty());
        ByLen { maps }
    }

    fn lookup(&self, addr: u32) -> Option<u32> {
        self.maps
            .iter()
            .find_map(|(l, m)| m.get(&(addr & mask(*l))).copied())
    }
}

/// Distinct routes (later duplicates dropped, as the reference must see
/// the same set the builder keeps) with lengths from `lens`.
fn random_routes(
    rng: &mut XorShift64,
    n: usize,
    lens: &[u8],
    next_hops: u32,
    within: Option<(u32, u8)>,
) -> Vec<Route> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < n * 20 + 100 {
        tries += 1;
        let mut len = lens[rng.below(lens.len() as u32) as usize];
        let mut addr = rng.next_u32();
        if let Some((base, blen)) = within {
            len = len.max(blen);
            addr = base | (addr & !mask(blen));
        }
        addr &= mask(len);
        if seen.insert((addr, len), ()).is_none() {
            out.push((addr, len, rng.below(next_hops)));
        }
    }
    out
}

fn build(routes: &[Route]) -> LpmBuilder {
    let mut b = LpmBuilder::with_capacity(routes.len());
    for &(p, l, nh) in routes {
        b.insert(Prefix::new(p, l).unwrap(), nh).unwrap();
    }
    b
}

fn lookups_per_table() -> usize {
    std::env::var("LPM_TEST_LOOKUPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            20_000
        } else {
            1_000_000
        })
}

/// Every prefix's first and last address and their neighbours, plus
/// random addresses, random addresses inside prefixes, and the extremes.
fn probe_addrs(routes: &[Route], seed: u64, n: usize) -> Vec<u32> {
    let mut v = vec![0, 1, u32::MAX, u32::MAX - 1, 0x8000_0000, 0x7fff_ffff];
    for &(p, l, _) in routes {
        let last = p | !mask(l);
        v.extend([p, p.wrapping_sub(1), last, last.wrapping_add(1)]);
    }
    v.extend(testgen::random_addrs(seed, n / 2));
    v.extend(testgen::addrs_within(routes, seed ^ 1, n / 2));
    v
}

/// Checks `t` against the expected answers `want` for `addrs`, through
/// every lookup form.
fn check(t: &Lpm, addrs: &[u32], want: &[Option<u32>], what: &str) {
    for (&a, &w) in addrs.iter().zip(want) {
        assert_eq!(t.lookup(a), w, "{what}: lookup({a:#010x})");
    }
    for (a, w) in addrs.chunks_exact(4).zip(want.chunks_exact(4)) {
        assert_eq!(
            &t.lookup4(a.try_into().unwrap()),
            w,
            "{what}: lookup4 {a:x?}"
        );
    }
    for (a, w) in addrs.chunks_exact(8).zip(want.chunks_exact(8)) {
        assert_eq!(
            &t.lookup8(a.try_into().unwrap()),
            w,
            "{what}: lookup8 {a:x?}"
        );
    }
    for (a, w) in addrs.chunks_exact(16).zip(want.chunks_exact(16)) {
        let mut o = [None; 16];
        t.lookup_bulk::<16>(a.try_into().unwrap(), &mut o);
        assert_eq!(&o, w, "{what}: lookup_bulk::<16> {a:x?}");
    }
    let mut out = vec![Some(u32::MAX); addrs.len()];
    t.lookup_slice(addrs, &mut out);
    assert_eq!(out, want, "{what}: lookup_slice");
}

#[test]
fn by_len_reference_matches_linear_scan() {
    let mut rng = XorShift64::new(1);
    for n in [0, 1, 5, 50, 300] {
        let routes = random_routes(&mut rng, n, &(0..=32).collect::<Vec<_>>(), 8, None);
        let by = ByLen::new(&routes);
        for a in probe_addrs(&routes, n as u64, 4_000) {
            assert_eq!(by.lookup(a), linear(&routes, a), "n={n} addr={a:#x}");
        }
    }
}

#[test]
fn small_tables_against_linear_scan() {
    let mut rng = XorShift64::new(2);
    let all: Vec<u8> = (0..=32).collect();
    for round in 0..200u64 {
        let n = rng.below(40) as usize;
        let hops = 1 + rng.below(4);
        let routes = random_routes(&mut rng, n, &all, hops, None);
        let b = build(&routes);
        let addrs = probe_addrs(&routes, round, 256);
        let want: Vec<_> = addrs.iter().map(|&a| linear(&routes, a)).collect();
        check(&b.build(), &addrs, &want, &format!("round {round} auto"));
        let bits = 1 + rng.below(u32::from(dataplane::lpm::MAX_TOP_BITS)) as u8;
        check(
            &b.build_with_top_bits(bits).unwrap(),
            &addrs,
            &want,
            &format!("round {round} bits {bits}"),
        );
    }
}

/// Tables up to `SMALL_MAX_ROUTES` routes are compiled into the scanned
/// form, one more into a Poptrie: both sides of the threshold, in random
/// and in nested shapes, against the linear scan, and against the Poptrie
/// of the same routes.
#[test]
fn small_form_around_the_threshold() {
    let n_max = SMALL_MAX_ROUTES;
    let mut rng = XorShift64::new(21);
    let all: Vec<u8> = (0..=32).collect();
    let tenant = [0, 16, 24, 32];
    let sizes = [
        0,
        1,
        2,
        3,
        n_max / 2,
        n_max - 1,
        n_max,
        n_max + 1,
        n_max + 2,
    ];
    for n in sizes {
        for round in 0..40u64 {
            let hops = 1 + rng.below(8);
            let routes = match round % 4 {
                0 => random_routes(&mut rng, n, &all, hops, None),
                1 => random_routes(&mut rng, n, &tenant, 3, None),
                // Everything nested in one /24 or /28: deep, overlapping.
                2 => random_routes(&mut rng, n, &all, 4, Some((0x0a01_0200, 24))),
                _ => random_routes(&mut rng, n, &all, 4, Some((0xc0a8_0110, 28))),
            };
            let got = routes.len();
            let b = build(&routes);
            let t = b.build();
            let what = format!("n={n} ({got} distinct) round {round}");
            assert_eq!(t.route_count(), got, "{what}");
            assert_eq!(t.is_small(), (1..=n_max).contains(&got), "{what}");
            if t.is_small() {
                assert_eq!(t.stats().nodes, 0, "{what}");
                assert_eq!(t.memory_bytes(), std::mem::size_of::<Lpm>(), "{what}");
            }
            let addrs = probe_addrs(&routes, round, 512);
            let want: Vec<_> = addrs.iter().map(|&a| linear(&routes, a)).collect();
            check(&t, &addrs, &want, &what);
            let trie = b.build_with_top_bits(8).unwrap();
            assert!(!trie.is_small());
            check(&trie, &addrs, &want, &format!("{what} trie"));
        }
    }
}

/// Hand-made tiny tables in the small form: /0, /32 at both ends of the
/// space, a chain of nested prefixes, prefixes sharing a network.
#[test]
fn tiny_tables_in_the_small_form() {
    let chain = vec![
        (0, 0, 1),
        (0x0a00_0000, 8, 2),
        (0x0a01_0000, 16, 3),
        (0x0a01_0200, 24, 4),
        (0x0a01_0200, 25, 5),
        (0x0a01_0203, 32, 6),
        (0x0a01_0202, 31, 7),
    ];
    let cases: Vec<Vec<Route>> = vec![
        vec![(0, 0, 7)],
        vec![(0, 32, 1)],
        vec![(u32::MAX, 32, 2)],
        vec![(0, 32, 1), (u32::MAX, 32, 2)],
        vec![(0, 0, 0), (0, 32, 1), (u32::MAX, 32, 2)],
        vec![(0, 1, 1), (0x8000_0000, 1, 2)],
        vec![(0, 0, 3), (0, 1, 4), (0, 31, 5), (0, 32, 6)],
        vec![(0x0a00_0007, 32, 1), (0x0a00_0000, 24, 2)],
        vec![(0, 0, dataplane::lpm::MAX_NEXT_HOP), (0x0a00_0000, 24, 0)],
        chain.clone(),
        chain.iter().rev().copied().collect(),
    ];
    for routes in &cases {
        let b = build(routes);
        let t = b.build();
        assert!(t.is_small(), "{routes:x?}");
        let addrs = probe_addrs(routes, 3, 64);
        let want: Vec<_> = addrs.iter().map(|&a| linear(routes, a)).collect();
        check(&t, &addrs, &want, &format!("{routes:x?}"));
    }
}

#[test]
fn random_tables_of_many_shapes() {
    let mut rng = XorShift64::new(3);
    let uniform: Vec<u8> = (0..=32).collect();
    let short: Vec<u8> = (0..=12).collect();
    let long: Vec<u8> = (20..=32).collect();
    let odd = [1, 7, 13, 19, 25, 31, 32];
    let n = lookups_per_table();
    let cases: Vec<(&str, Vec<Route>)> = vec![
        (
            "uniform 1000",
            random_routes(&mut rng, 1000, &uniform, 16, None),
        ),
        (
            "short 1000",
            random_routes(&mut rng, 1000, &short, 16, None),
        ),
        (
            "long 10000",
            random_routes(&mut rng, 10_000, &long, 64, None),
        ),
        (
            "stride edges 5000",
            random_routes(&mut rng, 5000, &odd, 4, None),
        ),
        (
            "nested in a /16",
            random_routes(&mut rng, 3000, &uniform, 3, Some((0x0a0b_0000, 16))),
        ),
        (
            "nested in a /28",
            random_routes(&mut rng, 40, &uniform, 3, Some((0xc0a8_0110, 28))),
        ),
        (
            "one next hop",
            random_routes(&mut rng, 5000, &uniform, 1, None),
        ),
        ("tenant", testgen::tenant_like(9, 40)),
    ];
    for (what, routes) in &cases {
        let by = ByLen::new(routes);
        let b = build(routes);
        let addrs = probe_addrs(routes, 77, n);
        let want: Vec<_> = addrs.iter().map(|&a| by.lookup(a)).collect();
        check(&b.build(), &addrs, &want, what);
        // Strides that put level boundaries at every residue mod 6.
        for bits in [1, 8, 11, 15, 16, 18] {
            check(
                &b.build_with_top_bits(bits).unwrap(),
                &addrs,
                &want,
                &format!("{what} bits {bits}"),
            );
        }
    }
}

#[test]
fn bgp_like_table() {
    let routes = testgen::bgp_like(
        42,
        if cfg!(debug_assertions) {
            50_000
        } else {
            1_000_000
        },
    );
    let by = ByLen::new(&routes);
    let t = build(&routes).build();
    assert_eq!(t.route_count(), routes.len());
    let addrs = probe_addrs(&routes, 5, lookups_per_table());
    let want: Vec<_> = addrs.iter().map(|&a| by.lookup(a)).collect();
    check(&t, &addrs, &want, "bgp_like");
}

#[test]
fn vrf_bulk_matches_per_table_lookups() {
    // Tenant tables of 1 to 24 routes (the small form up to
    // SMALL_MAX_ROUTES, a Poptrie above) and BGP-like ones, interleaved, so
    // that a batch mixes both forms.
    let mut vrfs = VrfTables::new();
    let mut refs = Vec::new();
    for i in 0..64u64 {
        let routes = if i % 16 == 0 {
            testgen::bgp_like(i, 2000)
        } else {
            testgen::tenant_like(i, 1 + (i as usize % 24))
        };
        refs.push(ByLen::new(&routes));
        vrfs.push(build(&routes).build());
    }
    assert!(vrfs.iter().any(|(_, t)| t.is_small()));
    assert!(vrfs.iter().filter(|(_, t)| !t.is_small()).count() > 8);
    // Ids past the end are "no table": no route, no panic.
    let mut rng = XorShift64::new(11);
    let n = lookups_per_table() / 4;
    for _ in 0..n / 8 {
        let ids: [VrfId; 8] = std::array::from_fn(|_| VrfId(rng.below(70)));
        let addrs: [u32; 8] = std::array::from_fn(|_| match rng.below(2) {
            0 => rng.next_u32(),
            _ => 0x0a00_0000 | (rng.next_u32() & 0x00ff_ffff),
        });
        let mut out = [None; 8];
        vrfs.lookup_bulk(&ids, &addrs, &mut out);
        for i in 0..8 {
            let want = refs.get(ids[i].0 as usize).and_then(|r| r.lookup(addrs[i]));
            assert_eq!(out[i], want, "vrf {:?} addr {:#x}", ids[i], addrs[i]);
            assert_eq!(vrfs.lookup(ids[i], addrs[i]), want);
        }
    }
}

#[test]
fn slice_lookups_of_every_length() {
    // lookup_slice works in batches of 16 and 8: cover empty, partial, one, two,
    // three groups with and without tails, and an `out` of another length.
    let routes = testgen::bgp_like(8, 5000);
    let t = build(&routes).build();
    let addrs = probe_addrs(&routes, 9, 64);
    for n in 0..=40 {
        let a = &addrs[..n];
        let want: Vec<_> = a.iter().map(|&x| t.lookup(x)).collect();
        let mut out = vec![Some(u32::MAX); n];
        t.lookup_slice(a, &mut out);
        assert_eq!(out, want, "n={n}");
        let mut short = vec![Some(u32::MAX); n / 2];
        t.lookup_slice(a, &mut short);
        assert_eq!(short, want[..n / 2], "n={n} short out");
        let mut long = vec![Some(u32::MAX); n + 5];
        t.lookup_slice(a, &mut long);
        assert_eq!(long[..n], want[..], "n={n} long out");
        assert!(
            long[n..].iter().all(|&x| x == Some(u32::MAX)),
            "n={n} untouched tail"
        );
    }
}

/// Leaves are byte indices into the next-hop dictionary up to 254 distinct
/// next hops, 16-bit ones up to 65 534, the next hops themselves beyond:
/// both sides of each width, with /0, /32, nested prefixes, more runs in
/// a block than fit its direct slot, and the largest next hop.
#[test]
fn every_leaf_width() {
    let mut rng = XorShift64::new(31);
    let all: Vec<u8> = (0..=32).collect();
    // Dictionary sizes seen: 0 means next hops as leaves.
    let mut widths = [false; 3];
    for distinct in [1u32, 253, 254, 255, 300, 65_533, 65_534, 65_535, 70_000] {
        // Enough routes to use every next hop, dense in a few /16s so that
        // blocks hold many runs, and the edges.
        let n = (distinct as usize + 200).min(80_000);
        let mut routes = random_routes(&mut rng, n / 2, &all, distinct, None);
        routes.extend(random_routes(
            &mut rng,
            n / 2,
            &[20, 24, 26, 28, 30, 32],
            distinct,
            Some((0x0a00_0000, 12)),
        ));
        routes.extend([
            (0, 0, dataplane::lpm::MAX_NEXT_HOP),
            (0, 32, 7),
            (u32::MAX, 32, 8),
            (0x0a01_0200, 24, 9),
            (0x0a01_0200, 25, 10),
            (0x0a01_0203, 32, 11),
        ]);
        // Next hops 0..distinct (plus the edges' own), each used once at
        // least where there are enough routes.
        for (i, r) in routes.iter_mut().enumerate().take(distinct as usize) {
            r.2 = i as u32;
        }
        let mut seen = HashMap::new();
        routes.retain(|&(p, l, _)| seen.insert((p, l), ()).is_none());
        let by = ByLen::new(&routes);
        let b = build(&routes);
        let addrs = probe_addrs(&routes, u64::from(distinct), 4096);
        let want: Vec<_> = addrs.iter().map(|&a| by.lookup(a)).collect();
        for t in [
            b.build(),
            b.build_with_top_bits(8).unwrap(),
            b.build_with_top_bits(13).unwrap(),
        ] {
            let what = format!("{distinct} next hops, {:?}", t.stats());
            check(&t, &addrs, &want, &what);
            widths[match t.stats().next_hops {
                0 => 2,
                1..=254 => 0,
                _ => 1,
            }] = true;
        }
    }
    assert_eq!(widths, [true; 3]);
}
