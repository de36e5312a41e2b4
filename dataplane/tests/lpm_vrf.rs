//! Many VRFs: memory budget and isolation.

use dataplane::lpm::testgen;
use dataplane::lpm::{Lpm, LpmBuilder, Prefix, VrfId, VrfTables, SMALL_MAX_ROUTES};

const GIB: usize = 1 << 30;

fn tenant_tables(n: u32, routes: usize) -> VrfTables {
    (0..n)
        .map(|i| Lpm::from_routes(testgen::tenant_like(u64::from(i), routes)).unwrap())
        .collect()
}

/// 64k VRFs × 16 routes must fit in 1 GiB. Building 64k tables takes a few
/// seconds unoptimised, so the full size runs in release only (where it is
/// well under a second) and debug runs an 8k slice, scaled.
#[test]
fn many_small_vrfs_fit_the_budget() {
    let n: u32 = if cfg!(debug_assertions) { 8192 } else { 65_536 };
    let vrfs = tenant_tables(n, 16);
    assert_eq!(vrfs.len(), n as usize);
    let total = vrfs.memory_bytes();
    let per_table = total / n as usize;
    let projected = per_table * 65_536;
    eprintln!(
        "{n} VRFs x 16 routes: {total} bytes, {per_table} per table, 64k projected {} MiB",
        projected >> 20
    );
    assert!(projected < GIB, "64k VRFs would take {projected} bytes");
    // The accounting must at least cover every table's own arrays.
    for (_, t) in vrfs.iter() {
        let s = t.stats();
        assert_eq!(s.routes, 16);
        // 16 routes is the small form: no heap at all, the header only.
        if s.routes <= SMALL_MAX_ROUTES {
            assert!(t.is_small());
            assert_eq!(t.memory_bytes(), std::mem::size_of::<Lpm>());
        }
        assert!(t.memory_bytes() >= s.top_entries * 4 + s.nodes * 64 + s.leaves * 4);
    }
}

#[test]
fn same_addresses_different_vrfs() {
    // Both tenants use 10.0.0.7 (DESIGN.md's reference scenario): only the
    // VRF tells the routes apart.
    let addr = 0x0a00_0007;
    let mut vrfs = VrfTables::new();
    let t1 = Lpm::from_routes([(0, 0, 100), (0x0a00_0000, 24, 1)]).unwrap();
    let t2 = Lpm::from_routes([(0, 0, 200), (0x0a00_0000, 24, 2)]).unwrap();
    let v1 = vrfs.push(t1);
    let v2 = vrfs.push(t2);
    assert_eq!(vrfs.lookup(v1, addr), Some(1));
    assert_eq!(vrfs.lookup(v2, addr), Some(2));
    let mut out = [None; 4];
    vrfs.lookup_bulk(
        &[v1, v2, VrfId(99), v1],
        &[addr, addr, addr, 0x0b00_0000],
        &mut out,
    );
    assert_eq!(out, [Some(1), Some(2), None, Some(100)]);
}

#[test]
fn set_replaces_and_fills_gaps_with_empty_tables() {
    let mut vrfs = VrfTables::new();
    let old = vrfs.set(VrfId(3), Lpm::from_routes([(0, 0, 3)]).unwrap());
    assert!(old.is_empty());
    assert_eq!(vrfs.len(), 4);
    assert_eq!(vrfs.lookup(VrfId(0), 1), None);
    assert_eq!(vrfs.lookup(VrfId(3), 1), Some(3));
    let mut b = LpmBuilder::new();
    b.insert(Prefix::DEFAULT, 4).unwrap();
    let old = vrfs.set(VrfId(3), b.build());
    assert_eq!(old.lookup(1), Some(3));
    assert_eq!(vrfs.lookup(VrfId(3), 1), Some(4));
    assert_eq!(
        vrfs.get(VrfId(0)).map(Lpm::memory_bytes),
        Some(std::mem::size_of::<Lpm>())
    );
    assert!(vrfs.get(VrfId(4)).is_none());
}

#[test]
fn one_big_table_among_small_ones() {
    let mut vrfs = tenant_tables(100, 16);
    let routes = testgen::bgp_like(1, 50_000);
    let big = vrfs.push(Lpm::from_routes(routes.iter().copied()).unwrap());
    let t = vrfs.get(big).unwrap();
    assert_eq!(t.route_count(), 50_000);
    for &(a, l, nh) in routes.iter().filter(|r| r.1 == 32).take(100) {
        assert_eq!(vrfs.lookup(big, a), Some(nh), "{a:#x}/{l}");
    }
    assert!(vrfs.memory_bytes() > t.memory_bytes());
}
