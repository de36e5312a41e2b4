//! Route semantics at the edges: /0, /32, /1, /31, nesting, replace,
//! delete, invalid input. Every case runs at several first strides, since
//! where a prefix length falls relative to the stride boundaries is what
//! the compiled layout is sensitive to.

use dataplane::lpm::{Lpm, LpmBuilder, LpmError, Prefix, MAX_NEXT_HOP};

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
}

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(ip(a), l.parse().unwrap()).unwrap()
}

fn builder(routes: &[(&str, u32)]) -> LpmBuilder {
    let mut b = LpmBuilder::new();
    for &(r, nh) in routes {
        b.insert(p(r), nh).unwrap();
    }
    b
}

/// The table at the automatic stride and at strides that put boundaries on
/// both sides of every length used here.
fn tables(b: &LpmBuilder) -> Vec<Lpm> {
    let mut v = vec![b.build()];
    for bits in [1, 2, 7, 8, 12, 16, 18, 20] {
        v.push(b.build_with_top_bits(bits).unwrap());
    }
    v
}

fn expect(b: &LpmBuilder, cases: &[(&str, Option<u32>)]) {
    for t in tables(b) {
        for &(a, want) in cases {
            assert_eq!(
                t.lookup(ip(a)),
                want,
                "{a} with top bits {}",
                t.stats().top_bits
            );
            assert_eq!(t.lookup4([ip(a); 4]), [want; 4]);
        }
    }
}

#[test]
fn default_route_covers_everything() {
    let b = builder(&[("0.0.0.0/0", 7)]);
    expect(
        &b,
        &[
            ("0.0.0.0", Some(7)),
            ("255.255.255.255", Some(7)),
            ("10.1.2.3", Some(7)),
        ],
    );
}

#[test]
fn host_routes() {
    let b = builder(&[
        ("0.0.0.0/32", 1),
        ("255.255.255.255/32", 2),
        ("10.0.0.7/32", 3),
    ]);
    expect(
        &b,
        &[
            ("0.0.0.0", Some(1)),
            ("0.0.0.1", None),
            ("255.255.255.255", Some(2)),
            ("255.255.255.254", None),
            ("10.0.0.7", Some(3)),
            ("10.0.0.6", None),
            ("10.0.0.8", None),
        ],
    );
}

#[test]
fn halves_and_pairs() {
    let b = builder(&[
        ("0.0.0.0/1", 1),
        ("128.0.0.0/1", 2),
        ("10.0.0.6/31", 3),
        ("255.255.255.254/31", 4),
    ]);
    expect(
        &b,
        &[
            ("127.255.255.255", Some(1)),
            ("128.0.0.0", Some(2)),
            ("10.0.0.5", Some(1)),
            ("10.0.0.6", Some(3)),
            ("10.0.0.7", Some(3)),
            ("10.0.0.8", Some(1)),
            ("255.255.255.253", Some(2)),
            ("255.255.255.254", Some(4)),
            ("255.255.255.255", Some(4)),
        ],
    );
}

#[test]
fn nested_prefixes_longest_wins() {
    let b = builder(&[
        ("0.0.0.0/0", 0),
        ("10.0.0.0/8", 1),
        ("10.1.0.0/16", 2),
        ("10.1.2.0/24", 3),
        ("10.1.2.128/25", 4),
        ("10.1.2.200/29", 5),
        ("10.1.2.201/32", 6),
    ]);
    expect(
        &b,
        &[
            ("9.255.255.255", Some(0)),
            ("10.0.0.0", Some(1)),
            ("10.1.0.0", Some(2)),
            ("10.1.1.255", Some(2)),
            ("10.1.2.0", Some(3)),
            ("10.1.2.127", Some(3)),
            ("10.1.2.128", Some(4)),
            ("10.1.2.199", Some(4)),
            ("10.1.2.200", Some(5)),
            ("10.1.2.201", Some(6)),
            ("10.1.2.202", Some(5)),
            ("10.1.2.208", Some(4)),
            ("10.1.3.0", Some(2)),
            ("10.2.0.0", Some(1)),
            ("11.0.0.0", Some(0)),
        ],
    );
}

#[test]
fn more_specific_with_the_covering_next_hop_still_shadows_a_middle_route() {
    // 10.1.2.0/24 repeats 10/8's next hop but must still beat 10.1/16.
    let b = builder(&[("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.0/24", 1)]);
    expect(
        &b,
        &[
            ("10.1.2.3", Some(1)),
            ("10.1.3.3", Some(2)),
            ("10.2.0.0", Some(1)),
        ],
    );
}

#[test]
fn replacing_a_route() {
    let mut b = builder(&[("10.0.0.0/8", 1), ("10.1.0.0/16", 2)]);
    assert_eq!(b.insert(p("10.1.0.0/16"), 9), Ok(Some(2)));
    assert_eq!(b.get(p("10.1.0.0/16")), Some(9));
    assert_eq!(b.len(), 2);
    expect(&b, &[("10.1.0.1", Some(9)), ("10.2.0.1", Some(1))]);
}

#[test]
fn deleting_a_route() {
    let mut b = builder(&[
        ("0.0.0.0/0", 0),
        ("10.0.0.0/8", 1),
        ("10.1.0.0/16", 2),
        ("10.1.2.0/24", 3),
    ]);
    assert_eq!(b.remove(p("10.1.0.0/16")), Some(2));
    assert_eq!(b.remove(p("10.1.0.0/16")), None);
    assert_eq!(b.remove(p("10.9.0.0/16")), None);
    expect(
        &b,
        &[
            ("10.1.0.1", Some(1)),
            ("10.1.2.1", Some(3)),
            ("11.0.0.0", Some(0)),
        ],
    );
    assert_eq!(b.remove(Prefix::DEFAULT), Some(0));
    assert_eq!(b.remove(p("10.0.0.0/8")), Some(1));
    expect(
        &b,
        &[
            ("10.1.0.1", None),
            ("10.1.2.1", Some(3)),
            ("11.0.0.0", None),
        ],
    );
    assert_eq!(b.remove(p("10.1.2.0/24")), Some(3));
    assert!(b.is_empty());
    expect(&b, &[("10.1.2.1", None)]);
}

#[test]
fn snapshots_do_not_see_later_builder_changes() {
    let mut b = builder(&[("10.0.0.0/8", 1)]);
    let old = b.build();
    b.insert(p("10.0.0.0/8"), 2).unwrap();
    assert_eq!(old.lookup(ip("10.0.0.1")), Some(1));
    assert_eq!(b.build().lookup(ip("10.0.0.1")), Some(2));
}

#[test]
fn invalid_input_is_refused_not_panicked_on() {
    assert_eq!(
        Prefix::new(0, 33),
        Err(LpmError::PrefixLenTooLong { len: 33 })
    );
    assert_eq!(
        Prefix::new(0, u8::MAX),
        Err(LpmError::PrefixLenTooLong { len: 255 })
    );
    assert_eq!(
        Prefix::new(ip("10.0.0.1"), 24),
        Err(LpmError::HostBitsSet {
            addr: ip("10.0.0.1"),
            len: 24
        })
    );
    assert_eq!(
        Prefix::new_truncating(ip("10.0.0.1"), 24),
        Ok(p("10.0.0.0/24"))
    );
    assert_eq!(Prefix::new_truncating(u32::MAX, 0), Ok(Prefix::DEFAULT));
    let mut b = LpmBuilder::new();
    assert_eq!(
        b.insert(Prefix::DEFAULT, u32::MAX),
        Err(LpmError::NextHopOutOfRange { next_hop: u32::MAX })
    );
    assert!(b.is_empty());
    assert!(Lpm::from_routes([(ip("10.0.0.1"), 8, 1)]).is_err());
    assert!(Lpm::from_routes([(0, 40, 1)]).is_err());
    let t = Lpm::from_routes([(0, 0, MAX_NEXT_HOP)]).unwrap();
    assert_eq!(t.lookup(1), Some(MAX_NEXT_HOP));
    // Every message names the problem.
    for e in [
        LpmError::PrefixLenTooLong { len: 33 },
        LpmError::HostBitsSet { addr: 1, len: 0 },
        LpmError::NextHopOutOfRange { next_hop: u32::MAX },
        LpmError::TopBitsOutOfRange { bits: 30 },
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn every_length_at_both_ends_of_the_space() {
    for len in 0..=32u8 {
        let low = Prefix::new(0, len).unwrap();
        let high = Prefix::new_truncating(u32::MAX, len).unwrap();
        let mut b = LpmBuilder::new();
        b.insert(low, 1).unwrap();
        b.insert(high, 2).unwrap();
        for t in tables(&b) {
            let bits = t.stats().top_bits;
            // At /0 both are the same prefix and the second insert won.
            let lo = if len == 0 { 2 } else { 1 };
            assert_eq!(t.lookup(low.first()), Some(lo), "/{len} bits {bits}");
            assert_eq!(t.lookup(low.last()), Some(lo), "/{len} bits {bits}");
            assert_eq!(t.lookup(high.first()), Some(2), "/{len} bits {bits}");
            assert_eq!(t.lookup(high.last()), Some(2), "/{len} bits {bits}");
            if len > 1 {
                assert_eq!(t.lookup(low.last() + 1), None, "/{len} bits {bits}");
                assert_eq!(t.lookup(high.first() - 1), None, "/{len} bits {bits}");
            }
        }
    }
}

#[test]
fn tables_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Lpm>();
    assert_send_sync::<dataplane::lpm::VrfTables>();
}
