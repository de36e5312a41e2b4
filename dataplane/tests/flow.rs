//! The flow table against a `HashMap` model, and its edges: both
//! directions, capacity, expiry, displacement, zones, bulk lookups.

use std::collections::HashMap;

use dataplane::flow::testgen::{nat_flows, SplitMix64};
use dataplane::flow::{
    Direction, FlowId, FlowKey, FlowTable, InsertError, Lookup, Prefetch, Removed, Zone, BULK_MAX,
    STAGED_FROM,
};

const TCP: u8 = 6;

fn tenant(i: usize) -> Zone {
    Zone::tenant(i).unwrap()
}

/// Every key of `flows` resolves to its flow and direction, live.
fn assert_all_found(t: &FlowTable<u64>, flows: &[(FlowId, FlowKey, FlowKey)], now: u64) {
    for &(id, f, r) in flows {
        assert_eq!(
            t.lookup(&f, now),
            Lookup::Hit(id, Direction::Forward),
            "{f}"
        );
        assert_eq!(t.lookup(&r, now), Lookup::Hit(id, Direction::Reply), "{r}");
    }
}

#[test]
fn both_directions_resolve_to_one_flow() {
    let mut t: FlowTable<u64> = FlowTable::with_seed(16, 1).unwrap();
    // The reference scenario: tenant 1's 10.0.0.7 talks to 1.1.1.7:22
    // through its EIP 2.2.2.11.
    let fwd = FlowKey::new(tenant(0), TCP, 0x0a00_0007, 40000, 0x0101_0107, 22);
    let rep = FlowKey::new(Zone::PUBLIC, TCP, 0x0101_0107, 22, 0x0202_020b, 40000);
    let id = t.insert(fwd, rep, 100, 7).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&fwd, 0), Lookup::Hit(id, Direction::Forward));
    assert_eq!(t.lookup(&rep, 0), Lookup::Hit(id, Direction::Reply));
    assert_eq!(t.get(id), Some(&7));
    assert_eq!(t.keys(id), Some([fwd, rep]));
    // The un-NATed reverse of the forward key is not the reply key.
    assert_eq!(t.lookup(&fwd.reversed(), 0), Lookup::Miss);
    // Either key of an existing flow is refused again.
    assert_eq!(
        t.insert(rep, fwd.reversed(), 100, 0),
        Err(InsertError::Exists(id, Direction::Reply))
    );
    assert_eq!(t.insert(fwd, fwd, 100, 0), Err(InsertError::SameKey));
    *t.get_mut(id).unwrap() += 1;
    let removed = t.remove(id).unwrap();
    assert_eq!(
        removed,
        Removed {
            id,
            keys: [fwd, rep],
            deadline: 100,
            value: 8
        }
    );
    assert_eq!(t.lookup(&fwd, 0), Lookup::Miss);
    assert_eq!(t.lookup(&rep, 0), Lookup::Miss);
    assert!(t.is_empty());
    assert_eq!(t.remove(id), None);
    assert_eq!(t.get(id), None);
}

#[test]
fn keys_differing_only_by_zone_are_different_flows() {
    let mut t: FlowTable<u64> = FlowTable::with_seed(64, 2).unwrap();
    // Both tenants use 10.0.0.7; only the zone tells them apart.
    let mut ids = Vec::new();
    for z in [
        Zone::PUBLIC,
        tenant(0),
        tenant(1),
        Zone::new(Zone::MAX).unwrap(),
    ] {
        let f = FlowKey::new(z, TCP, 0x0a00_0007, 1000, 0x0101_0107, 22);
        let id = t.insert(f, f.reversed(), 10, u64::from(z.get())).unwrap();
        ids.push((id, f));
    }
    for &(id, f) in &ids {
        assert_eq!(t.lookup(&f, 0), Lookup::Hit(id, Direction::Forward));
        assert_eq!(
            t.lookup(&f.reversed(), 0),
            Lookup::Hit(id, Direction::Reply)
        );
        assert_eq!(t.get(id), Some(&u64::from(f.zone().get())));
    }
    let mut distinct: Vec<FlowId> = ids.iter().map(|x| x.0).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn full_table_refuses_and_loses_nothing() {
    for (cap, seed) in [(1usize, 1u64), (7, 2), (1000, 3), (100_000, 4)] {
        let mut t: FlowTable<u64> = FlowTable::with_seed(cap, seed).unwrap();
        let flows = nat_flows(seed, cap + 10, 100);
        let mut inserted = Vec::new();
        for (i, &(f, r)) in flows.iter().take(cap).enumerate() {
            let id = t
                .insert(f, r, u64::MAX, i as u64)
                .unwrap_or_else(|e| panic!("cap {cap}: flow {i} refused: {e}"));
            inserted.push((id, f, r));
        }
        assert_eq!(t.len(), cap);
        for &(f, r) in &flows[cap..] {
            assert_eq!(t.insert(f, r, u64::MAX, 0), Err(InsertError::Full));
            assert_eq!(t.lookup(&f, 0), Lookup::Miss);
        }
        assert_eq!(t.len(), cap);
        assert_all_found(&t, &inserted, 0);
        for (i, &(id, ..)) in inserted.iter().enumerate() {
            assert_eq!(t.get(id), Some(&(i as u64)));
        }
        let s = t.stats();
        assert!(s.slot_load <= 0.81, "{s:?}");
        // One removal makes room for exactly one more.
        let (id, ..) = inserted[cap / 2];
        t.remove(id).unwrap();
        let (f, r) = flows[cap];
        assert_eq!(t.insert(f, r, 1, 0), Ok(id));
        assert_eq!(
            t.insert(flows[cap + 1].0, flows[cap + 1].1, 1, 0),
            Err(InsertError::Full)
        );
    }
}

#[test]
fn cuckoo_displacement_keeps_every_key() {
    // Small tables filled to the brim: most inserts must move keys.
    let (mut moved, mut in_alt) = (0, 0);
    for seed in 0..50u64 {
        let cap = 40;
        let mut t: FlowTable<u64> = FlowTable::with_seed(cap, seed).unwrap();
        let mut inserted = Vec::new();
        for (f, r) in nat_flows(seed, cap, 3) {
            let id = t.insert(f, r, 10, 0).unwrap();
            inserted.push((id, f, r));
            assert_all_found(&t, &inserted, 0);
        }
        let s = t.stats();
        moved += s.moves;
        in_alt += s.keys_in_alt;
    }
    assert!(moved > 0, "no insertion displaced a key");
    assert!(
        in_alt > moved as usize,
        "{in_alt} keys in the alternative bucket, {moved} moves"
    );

    // And at scale: 200k flows in a table for 200k.
    let cap = 200_000;
    let mut t: FlowTable<u64> = FlowTable::with_seed(cap, 9).unwrap();
    let flows = nat_flows(9, cap, 1000);
    let mut inserted = Vec::new();
    for &(f, r) in &flows {
        inserted.push((t.insert(f, r, 10, 0).unwrap(), f, r));
    }
    let s = t.stats();
    assert!(s.moves > 0, "{s:?}");
    assert_all_found(&t, &inserted, 0);
    eprintln!("200k flows at capacity: {s:?}");
}

#[test]
fn expiry_on_lookup_and_by_sweep() {
    let mut t: FlowTable<u64> = FlowTable::with_seed(100, 5).unwrap();
    let flows = nat_flows(5, 100, 10);
    // Deadlines 1..=100: flow i lives while now < i + 1.
    let mut ids = Vec::new();
    for (i, &(f, r)) in flows.iter().enumerate() {
        ids.push(t.insert(f, r, i as u64 + 1, i as u64).unwrap());
    }
    let mut now = 0u64;
    assert_eq!(
        t.lookup(&flows[0].0, now),
        Lookup::Hit(ids[0], Direction::Forward)
    );
    now = 1;
    assert_eq!(
        t.lookup(&flows[0].0, now),
        Lookup::Expired(ids[0], Direction::Forward)
    );
    assert_eq!(
        t.lookup(&flows[0].1, now),
        Lookup::Expired(ids[0], Direction::Reply)
    );
    assert_eq!(
        t.lookup(&flows[1].1, now),
        Lookup::Hit(ids[1], Direction::Reply)
    );
    // Refreshing moves the deadline.
    assert!(t.set_deadline(ids[0], 1000));
    assert_eq!(
        t.lookup(&flows[0].0, now),
        Lookup::Hit(ids[0], Direction::Forward)
    );
    assert_eq!(t.deadline(ids[0]), Some(1000));

    // The clock moves to 50: flows 1..=48 (deadlines 2..=49... and 50) are
    // due; a sweep of 30 entries sees only ids 0..30.
    now = 50;
    let mut seen = Vec::new();
    let n = t.sweep(30, now, |r| seen.push((r.id, r.keys, r.value)));
    assert_eq!(n, seen.len());
    for (id, keys, value) in &seen {
        assert!(id.index() < 30);
        assert_eq!(keys, &[flows[*value as usize].0, flows[*value as usize].1]);
        assert_eq!(t.lookup(&keys[0], now), Lookup::Miss);
        assert_eq!(t.lookup(&keys[1], now), Lookup::Miss);
    }
    // Then the rest of the table, round robin.
    let n2 = t.sweep(1000, now, |r| seen.push((r.id, r.keys, r.value)));
    // Deadlines i + 1 <= 50: i in 1..=49 (flow 0 was refreshed).
    assert_eq!(n + n2, 49);
    assert_eq!(t.len(), 51);
    let mut values: Vec<u64> = seen.iter().map(|s| s.2).collect();
    values.sort_unstable();
    assert_eq!(values, (1..=49).collect::<Vec<_>>());
    for (i, &(f, r)) in flows.iter().enumerate() {
        let expect_live = i == 0 || i >= 50;
        assert_eq!(t.lookup(&f, now).hit().is_some(), expect_live, "flow {i}");
        assert_eq!(t.lookup(&r, now).hit().is_some(), expect_live, "flow {i}");
    }
    // Nothing more is due.
    assert_eq!(t.sweep(1000, now, |_| panic!("nothing is due")), 0);
    // A budget of 0 visits nothing.
    assert_eq!(t.sweep(0, u64::MAX, |_| panic!("budget 0")), 0);
}

/// 10k random operations on a table against a `HashMap` model.
#[test]
fn random_operations_match_a_model() {
    for seed in [1u64, 2, 3] {
        let cap = 2000;
        let mut t: FlowTable<u64> = FlowTable::with_seed(cap, seed).unwrap();
        let mut rng = SplitMix64::new(seed);
        // A pool of flows larger than the table, so that inserts meet Full.
        let pool = nat_flows(seed ^ 0x55, 3000, 50);
        // model: key -> (pool index, direction); flows: pool index -> (id, deadline, value).
        let mut by_key: HashMap<FlowKey, (usize, Direction)> = HashMap::new();
        let mut flows: HashMap<usize, (FlowId, u64, u64)> = HashMap::new();
        let mut now = 0u64;
        for step in 0..10_000u64 {
            let p = rng.below(pool.len() as u64) as usize;
            let (f, r) = pool[p];
            match rng.below(10) {
                0..=3 => {
                    let deadline = now + rng.below(200);
                    let got = t.insert(f, r, deadline, step);
                    match flows.get(&p) {
                        Some(&(id, ..)) => {
                            assert_eq!(got, Err(InsertError::Exists(id, Direction::Forward)))
                        }
                        None if flows.len() == cap => assert_eq!(got, Err(InsertError::Full)),
                        None => {
                            let id = got.unwrap();
                            assert!(flows.values().all(|v| v.0 != id), "id reused while live");
                            flows.insert(p, (id, deadline, step));
                            by_key.insert(f, (p, Direction::Forward));
                            by_key.insert(r, (p, Direction::Reply));
                        }
                    }
                }
                4 => {
                    let id = match flows.get(&p) {
                        Some(&(id, ..)) => id,
                        None => FlowId::new(rng.below(cap as u64) as u32),
                    };
                    let got = t.remove(id);
                    let owner = flows.iter().find(|(_, v)| v.0 == id).map(|(k, _)| *k);
                    match owner {
                        Some(q) => {
                            let (_, deadline, value) = flows.remove(&q).unwrap();
                            by_key.remove(&pool[q].0);
                            by_key.remove(&pool[q].1);
                            let got = got.unwrap();
                            assert_eq!(
                                (got.keys, got.deadline, got.value),
                                ([pool[q].0, pool[q].1], deadline, value)
                            );
                        }
                        None => assert_eq!(got, None),
                    }
                }
                5 => now += rng.below(20),
                6 if rng.below(4) == 0 => {
                    let mut gone = Vec::new();
                    t.sweep(rng.below(500) as usize, now, |r| gone.push(r));
                    for g in gone {
                        let q = by_key[&g.keys[0]].0;
                        let (id, deadline, value) = flows.remove(&q).unwrap();
                        assert_eq!((g.id, g.deadline, g.value), (id, deadline, value));
                        assert!(deadline <= now);
                        by_key.remove(&g.keys[0]);
                        by_key.remove(&g.keys[1]);
                    }
                }
                _ => {
                    let key = if rng.below(2) == 0 { f } else { r };
                    let want = match by_key.get(&key) {
                        None => Lookup::Miss,
                        Some(&(q, dir)) => {
                            let (id, deadline, _) = flows[&q];
                            if now < deadline {
                                Lookup::Hit(id, dir)
                            } else {
                                Lookup::Expired(id, dir)
                            }
                        }
                    };
                    assert_eq!(t.lookup(&key, now), want, "step {step}: {key}");
                }
            }
            assert_eq!(t.len(), flows.len());
        }
        // Finally everything, in bulk and one by one.
        let keys: Vec<FlowKey> = pool.iter().flat_map(|&(f, r)| [f, r]).collect();
        let mut out = vec![Lookup::Miss; keys.len()];
        t.lookup_bulk(&keys, now, &mut out);
        for (k, o) in keys.iter().zip(&out) {
            assert_eq!(*o, t.lookup(k, now));
            assert_eq!(o.found().is_some(), by_key.contains_key(k));
        }
        let live: usize = t.iter().count();
        assert_eq!(live, flows.len());
    }
}

#[test]
fn bulk_lookup_agrees_with_single_at_every_length() {
    let cap = 5000;
    let mut t: FlowTable<u64> = FlowTable::with_seed(cap, 11).unwrap();
    let flows = nat_flows(11, cap, 100);
    for (i, &(f, r)) in flows.iter().enumerate() {
        t.insert(f, r, i as u64 % 3, 0).unwrap();
    }
    let absent = nat_flows(12, 100, 100);
    let mut rng = SplitMix64::new(13);
    let mut keys = Vec::new();
    for _ in 0..4096 {
        let (f, r) = flows[rng.below(cap as u64) as usize];
        keys.push(match rng.below(5) {
            0 => absent[rng.below(100) as usize].0,
            1 | 2 => f,
            _ => r,
        });
    }
    for len in [0, 1, 2, 31, BULK_MAX, BULK_MAX + 1, 100, 4096] {
        let mut out = vec![Lookup::Expired(FlowId::new(9), Direction::Reply); len];
        t.lookup_bulk(&keys[..len], 1, &mut out);
        for (k, o) in keys[..len].iter().zip(&out) {
            assert_eq!(*o, t.lookup(k, 1), "{k}");
        }
    }
    // With a caller's prefetch (here one that only counts), the same
    // answers, and every bucket and candidate entry is prefetched.
    struct Counting(std::cell::Cell<usize>);
    impl Prefetch for Counting {
        const INSTRUCTION: bool = true;
        fn prefetch<T>(&self, _r: &T) {
            self.0.set(self.0.get() + 1);
        }
    }
    let pf = Counting(std::cell::Cell::new(0));
    let mut out = vec![Lookup::Miss; 64];
    t.lookup_bulk_with(&pf, &keys[..64], 1, &mut out);
    for (k, o) in keys[..64].iter().zip(&out) {
        assert_eq!(*o, t.lookup(k, 1), "{k}");
    }
    assert_eq!(pf.0.get(), 64 * 4);
    // Candidates, for a caller that compares as it reads the flow: each
    // found key's flow (an expired one's too, as a hit) with its value
    // fetched in the same call, a miss for the rest; nothing compared, so
    // a key's candidate is the flow that the single lookup found (no two
    // keys here share a signature in their buckets).
    struct Recording(std::cell::RefCell<Vec<usize>>);
    impl Prefetch for Recording {
        const INSTRUCTION: bool = true;
        fn prefetch<T>(&self, r: &T) {
            self.0.borrow_mut().push(r as *const T as usize);
        }
    }
    let pf = Recording(Default::default());
    t.candidates_with(&pf, &keys[..64], 1, &mut out);
    let fetched = pf.0.into_inner();
    let (mut found, mut expired) = (0, 0);
    for (k, o) in keys[..64].iter().zip(&out) {
        let want = t.lookup(k, 1);
        match want.found() {
            Some((id, dir)) => {
                assert_eq!(*o, Lookup::Hit(id, dir), "{k}");
                let value = t.get(id).unwrap() as *const u64 as usize;
                assert!(fetched.contains(&value), "{k}: its value was not fetched");
                found += 1;
                expired += usize::from(want.hit().is_none());
            }
            None => assert_eq!(*o, Lookup::Miss, "{k}"),
        }
    }
    assert!(
        found > 32 && expired > 0,
        "{found} of 64 keys found, {expired} expired"
    );
    assert_eq!(fetched.len(), 64 * 4 + found);
    // A shorter output slice bounds the work.
    let mut out = [Lookup::Miss; 3];
    t.lookup_bulk(&keys, 1, &mut out);
    assert_eq!(out[2], t.lookup(&keys[2], 1));
}

/// Below [`STAGED_FROM`] live flows a burst is looked up a key at a time
/// (the primary bucket's first candidate, else the full search), from it
/// in stages: both give every key the single lookup's answer — hits in
/// either bucket, expired flows, keys never inserted — in tables filled to
/// their capacity, where some keys sit in their alternative bucket or
/// behind another key's signature.
#[test]
fn bulk_lookups_on_either_side_of_the_staging_threshold_agree_with_single() {
    for cap in [STAGED_FROM - 1, STAGED_FROM] {
        let mut t: FlowTable<u64> = FlowTable::with_seed(cap, 17).unwrap();
        let flows = nat_flows(17, cap, 100);
        for (i, &(f, r)) in flows.iter().enumerate() {
            t.insert(f, r, i as u64 % 3, 0).unwrap();
        }
        assert_eq!(t.len(), cap);
        let absent = nat_flows(18, 300, 100);
        let mut keys: Vec<FlowKey> = flows
            .iter()
            .chain(&absent)
            .flat_map(|&(f, r)| [f, r])
            .collect();
        // The zero key, which a lookup with no candidate compares with.
        keys.push(FlowKey::default());
        let mut out = vec![Lookup::Expired(FlowId::new(9), Direction::Reply); keys.len()];
        t.lookup_bulk(&keys, 1, &mut out);
        assert_eq!(out.last(), Some(&Lookup::Miss));
        let mut hits = 0;
        for (k, o) in keys.iter().zip(&out) {
            assert_eq!(*o, t.lookup(k, 1), "{cap} flows: {k}");
            hits += usize::from(o.hit().is_some());
        }
        assert!(hits > cap / 2 && hits < 2 * cap, "{hits}");
    }
}

#[test]
fn capacity_and_memory() {
    assert!(FlowTable::<u64>::new(0).is_err());
    let t: FlowTable<[u64; 8]> = FlowTable::with_seed(1_000_000, 1).unwrap();
    let per_flow = t.overhead_bytes() as f64 / t.capacity() as f64;
    let all = t.memory_bytes() as f64 / t.capacity() as f64;
    eprintln!("1M flows: {per_flow:.1} bytes/flow own, {all:.1} with a 64-byte value");
    assert!(per_flow <= 64.0, "{per_flow}");
    assert!(all <= 128.0, "{all}");
}

/// The sweep removes expired flows a batch at a time: whatever number
/// expires within a budget (none, one, a batch less one, a batch, more),
/// each is handed over once, in id order, with its own keys and value, and
/// the rest stay.
#[test]
fn sweep_removes_every_expired_flow_whatever_their_number() {
    for expired in [0usize, 1, 15, 16, 17, 33, 100] {
        let cap = 128;
        let mut t: FlowTable<u64> = FlowTable::with_seed(cap, 21).unwrap();
        let flows = nat_flows(21, cap, 10);
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for (i, &(f, r)) in flows.iter().enumerate() {
            let deadline = if i < expired { 5 } else { 50 };
            let id = t.insert(f, r, deadline, i as u64).unwrap();
            if i < expired {
                gone.push((id, f, r));
            } else {
                kept.push((id, f, r));
            }
        }
        let mut seen = Vec::new();
        let removed = t.sweep(cap, 10, |r| seen.push(r));
        assert_eq!(removed, expired);
        let want: Vec<_> = gone.iter().map(|&(id, f, r)| (id, [f, r])).collect();
        let got: Vec<_> = seen.iter().map(|r| (r.id, r.keys)).collect();
        assert_eq!(got, want, "{expired} expired");
        for r in &seen {
            assert_eq!(r.value, u64::from(r.id.get()), "each flow's own value");
        }
        assert_eq!(t.len(), cap - expired);
        assert_all_found(&t, &kept, 10);
        for &(_, f, r) in &gone {
            assert_eq!(
                (t.lookup(&f, 10), t.lookup(&r, 10)),
                (Lookup::Miss, Lookup::Miss)
            );
        }
    }
}

/// Filled to its capacity, drained (half by `remove`, half by the sweep)
/// and filled again with other keys: nothing of the first fill is left in
/// any bucket, and every flow of the second is found.
#[test]
fn a_table_filled_to_capacity_then_drained_is_empty() {
    for (cap, seed) in [(1usize, 31u64), (9, 32), (4096, 33)] {
        let mut t: FlowTable<u64> = FlowTable::with_seed(cap, seed).unwrap();
        let flows = nat_flows(seed, cap * 2, 100);
        let (first, second) = flows.split_at(cap);
        let mut ids = Vec::new();
        for (i, &(f, r)) in first.iter().enumerate() {
            ids.push(t.insert(f, r, 100, i as u64).unwrap());
        }
        assert_eq!(
            t.insert(second[0].0, second[0].1, 100, 0),
            Err(InsertError::Full)
        );
        for &id in ids.iter().step_by(2) {
            t.remove(id).unwrap();
        }
        assert_eq!(t.sweep(cap, 100, |_| {}), cap / 2);
        assert!(t.is_empty());
        let s = t.stats();
        assert_eq!((s.len, s.keys_in_alt, s.slot_load), (0, 0, 0.0), "{s:?}");
        for &(f, r) in first {
            assert_eq!(
                (t.lookup(&f, 0), t.lookup(&r, 0)),
                (Lookup::Miss, Lookup::Miss)
            );
        }
        let mut again = Vec::new();
        for &(f, r) in second {
            again.push((t.insert(f, r, 100, 0).unwrap(), f, r));
        }
        assert_eq!(t.len(), cap);
        assert_all_found(&t, &again, 0);
    }
}

/// Keys one bit apart anywhere in their 16 bytes (the last byte
/// included) are different flows, in single and bulk lookups.
#[test]
fn keys_one_bit_apart_are_different_flows() {
    let base = FlowKey::new(tenant(3), TCP, 0x0a00_0001, 40000, 0x0101_0101, 443);
    let reply = base.reversed();
    let mut t: FlowTable<u64> = FlowTable::with_seed(1024, 41).unwrap();
    let id = t.insert(base, reply, 100, 0).unwrap();
    let flips: Vec<FlowKey> = (0..128)
        .map(|bit| {
            let [lo, hi] = base.words();
            if bit < 64 {
                FlowKey::from_words([lo ^ 1 << bit, hi])
            } else {
                FlowKey::from_words([lo, hi ^ 1 << (bit - 64)])
            }
        })
        .filter(|k| *k != reply)
        .collect();
    let last = flips
        .iter()
        .find(|k| k.to_bytes()[..15] == base.to_bytes()[..15]);
    assert!(last.is_some(), "a flip in the last byte is among them");
    let mut out = vec![Lookup::Hit(id, Direction::Forward); flips.len()];
    t.lookup_bulk(&flips, 0, &mut out);
    for (k, o) in flips.iter().zip(&out) {
        assert_eq!((*o, t.lookup(k, 0)), (Lookup::Miss, Lookup::Miss), "{k}");
    }
    // Each a flow of its own, then: every one found as itself.
    let mut all = vec![(id, base, reply)];
    for (i, &k) in flips.iter().enumerate() {
        let r = FlowKey::new(Zone::PUBLIC, TCP, 0x0808_0808, 53, 0x6440_0000, i as u16);
        all.push((t.insert(k, r, 100, i as u64).unwrap(), k, r));
    }
    assert_all_found(&t, &all, 0);
    let keys: Vec<FlowKey> = all.iter().flat_map(|&(_, f, r)| [f, r]).collect();
    let mut out = vec![Lookup::Miss; keys.len()];
    t.lookup_bulk(&keys, 0, &mut out);
    for (k, o) in keys.iter().zip(&out) {
        assert_eq!(*o, t.lookup(k, 0), "{k}");
    }
}
