//! The stateless paths' own state (issue 13, item 3): what encap and
//! decap keep from frame to frame (the decap side's host cache, the
//! neighbour slots adjacencies and flows remember) is never trusted past
//! a change: a neighbour's new MAC reaches the next encapsulated frame,
//! and a host or key changed by a reload the next decapsulated one, on
//! every path a frame can take.

use super::*;

/// Every way a frame can go through the pipeline.
const PATHS: [Path; 3] = [Path::Staged, Path::Unstaged, Path::Full];

fn to_eip1(payload: &[u8]) -> Vec<u8> {
    eth(
        PUB_MAC,
        CLIENT_MAC,
        EtherType::IPV4,
        &inner_udp(CLIENT, EIP1, 64, payload),
    )
}

/// The outer and inner Ethernet destinations of a gretap frame.
fn macs(out: &[u8]) -> ([u8; 6], [u8; 6]) {
    let (e, _, key, proto, rest) = open_gre(out);
    assert_eq!((key, proto), (1000, 0x6558));
    let (inner, _) = Ethernet2Header::from_slice(&rest).unwrap();
    (e.destination, inner.destination)
}

#[test]
fn a_neighbour_mac_change_reaches_the_next_encapsulated_frame() {
    for path in PATHS {
        let mut gw = Gw::new();
        // The first frame makes the flow; the next ones are its hits.
        for _ in 0..3 {
            let (v, out) = run_checked(&mut gw, path, &to_eip1(b"a"), PUB, Checked::Unknown);
            assert_eq!(v, Verdict::Forward(UND), "{path:?}");
            assert_eq!(macs(&out), (HOST1_MAC, VM1_MAC), "{path:?}");
        }
        // The host and the VM move to new MACs (a reply learned, an
        // operator's static entry changed): the resolver writes the
        // table in place, no new tables.
        let (host_mac, vm_mac) = ([2, 0, 0, 0, 0xb, 0x99], [2, 0, 0, 0, 0xa, 0x99]);
        let w = gw.resolver.writer();
        assert!(w.set(NeighKey::port(UND, u32::from(ip(HOST1))), host_mac));
        let vm = NeighKey::inner(TenantId(0), u32::from(ip(VM)));
        assert!(w.set(vm, vm_mac));
        let (v, out) = run_checked(&mut gw, path, &to_eip1(b"b"), PUB, Checked::Unknown);
        assert_eq!(v, Verdict::Forward(UND), "{path:?}");
        assert_eq!(
            macs(&out),
            (host_mac, vm_mac),
            "{path:?}: the very next frame"
        );
        // Unresolved again: the next frame is held for the resolver, not
        // sent to the old MAC.
        assert!(w_unresolved(
            &mut gw,
            NeighKey::port(UND, u32::from(ip(HOST1)))
        ));
        let (v, _) = run_checked(&mut gw, path, &to_eip1(b"c"), PUB, Checked::Unknown);
        assert_eq!(v, Verdict::Punt, "{path:?}");
    }
}

/// A reload that changes a tunnel's header and no MAC (the tenant's
/// own MAC, the inner source) reaches the next frame: no header a worker
/// built from the old tunnel is used for the new one.
#[test]
fn a_tunnel_header_changed_by_a_reload_reaches_the_next_frame() {
    const NEW_T1_MAC: [u8; 6] = [2, 0, 0, 0, 0x1e, 0x99];
    let inner_source = |out: &[u8]| {
        let (.., rest) = open_gre(out);
        Ethernet2Header::from_slice(&rest).unwrap().0.source
    };
    for path in PATHS {
        let mut gw = Gw::new();
        for _ in 0..3 {
            let (v, out) = run_checked(&mut gw, path, &to_eip1(b"a"), PUB, Checked::Unknown);
            assert_eq!(v, Verdict::Forward(UND), "{path:?}");
            assert_eq!(inner_source(&out), T1_MAC, "{path:?}");
        }
        let changes = gw.tables.neighbours.changes();
        let mut spec = spec();
        spec.tenants[0].mac = NEW_T1_MAC;
        reload(&mut gw, &spec, 2);
        assert_eq!(gw.tables.neighbours.changes(), changes, "no MAC changed");
        for _ in 0..2 {
            let (v, out) = run_checked(&mut gw, path, &to_eip1(b"b"), PUB, Checked::Unknown);
            assert_eq!(v, Verdict::Forward(UND), "{path:?}");
            assert_eq!(macs(&out), (HOST1_MAC, VM1_MAC), "{path:?}");
            assert_eq!(inner_source(&out), NEW_T1_MAC, "{path:?}");
        }
    }
}

fn w_unresolved(gw: &mut Gw, key: NeighKey) -> bool {
    gw.resolver.writer().set_unresolved(key)
}

/// A datagram from tenant 1's VM, in gretap from `host` with `key`.
fn from_host(host: [u8; 4], host_mac: [u8; 6], key: u32) -> Vec<u8> {
    let inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &inner_udp(VM, CLIENT, 64, b"out"),
    );
    gre_frame(host, host_mac, 0x2000, key, 0x6558, &inner)
}

/// What `gw` does on `path` with [`from_host`]'s datagram, from the
/// underlay.
fn host_sends(gw: &mut Gw, path: Path, host: [u8; 4], host_mac: [u8; 6], key: u32) -> Verdict {
    run_checked(
        gw,
        path,
        &from_host(host, host_mac, key),
        UND,
        Checked::Unknown,
    )
    .0
}

/// `gw` with its tables rebuilt from `spec`, as a reload publishes them:
/// a new generation, the same worker (and its caches).
fn reload(gw: &mut Gw, spec: &Spec, generation: u64) {
    gw.tables = Tables::build(spec, generation, gw.resolver.writer()).expect("tables");
}

#[test]
fn a_host_or_key_changed_by_a_reload_is_decided_again_on_the_next_frame() {
    for path in PATHS {
        let mut gw = Gw::new();
        // Tenant 1's two hosts send; the second is its own /24's.
        for _ in 0..3 {
            for host in [(HOST1, HOST1_MAC), (HOST3, HOST3_MAC)] {
                let v = host_sends(&mut gw, path, host.0, host.1, 1000);
                assert_eq!(v, Verdict::Forward(PUB), "{path:?} {:?}", host.0);
            }
        }
        // A reload takes host 3 from tenant 1.
        let mut spec = spec();
        spec.tenants[0].hosts = vec![ip(HOST1)];
        spec.tenants[0].routes[1].2 = Target::Host(ip(HOST1));
        reload(&mut gw, &spec, 2);
        let v = host_sends(&mut gw, path, HOST3, HOST3_MAC, 1000);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::GreWrongHost),
            "{path:?}: a host taken away"
        );
        let v = host_sends(&mut gw, path, HOST1, HOST1_MAC, 1000);
        assert_eq!(v, Verdict::Forward(PUB), "{path:?}: the host kept");
        // The next reload gives key 1000 to another tenant: tenant 1's
        // host may no longer send with it, and tenant 1's new key works.
        let mut spec = spec.clone();
        spec.tenants[0].key = 1001;
        spec.tenants[1].key = 1000;
        spec.inner_neighbours = vec![(1001, ip(VM), VM1_MAC)];
        spec.eips = vec![(ip(EIP1), 1001, ip(VM))];
        reload(&mut gw, &spec, 3);
        let v = host_sends(&mut gw, path, HOST1, HOST1_MAC, 1000);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::GreWrongHost),
            "{path:?}: a key given away"
        );
        let v = host_sends(&mut gw, path, HOST1, HOST1_MAC, 1001);
        assert_eq!(v, Verdict::Forward(PUB), "{path:?}: the tenant's new key");
    }
}
