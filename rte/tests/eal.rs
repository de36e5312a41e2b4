//! The safe layer against a real EAL on virtual devices.
//!
//! EAL can be initialised once per process, so every test shares one (a
//! `OnceLock`) and registers its own thread. `--no-huge --no-shconf` leaves
//! nothing behind and runs without hugepages; `--no-pci` keeps real NICs out.

use std::sync::{Mutex, MutexGuard, OnceLock};

use arrayvec::ArrayVec;
use rte::{Burst, Eal, LcoreId, Mbuf, Mempool, Port, PortConf, Ring, RteLpm};

struct Env {
    eal: Eal,
    /// Tests that count a pool's mbufs must not share it with another test
    /// running at the same time.
    serial: Mutex<()>,
}

fn env() -> (&'static Eal, MutexGuard<'static, ()>) {
    static ENV: OnceLock<Env> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        sweep_stale_runtime_dirs();
        let prefix = format!("--file-prefix=rte-test-{}", std::process::id());
        // A memif server in the abstract socket namespace: nothing on
        // disk, no client needed to create the port.
        let memif = format!(
            "--vdev=net_memif0,role=server,socket=rte-test-memif-{}.sock,socket-abstract=yes",
            std::process::id()
        );
        let args = [
            "-l",
            "0,1",
            "--no-huge",
            "-m",
            "256",
            "--no-shconf",
            "--no-pci",
            "--log-level=lib.eal:error",
            &prefix,
            "--vdev=net_ring0",
            "--vdev=net_null0",
            "--vdev=net_null1",
            // Left unconfigured for rx_metadata_negotiate, which DPDK
            // takes only before a port is configured.
            "--vdev=net_null2",
            "--vdev=net_ring1",
            &memif,
        ];
        Env {
            eal: Eal::init(&args).expect("EAL init"),
            serial: Mutex::new(()),
        }
    });
    env.eal.register_thread().expect("register thread");
    (
        &env.eal,
        env.serial.lock().unwrap_or_else(|e| e.into_inner()),
    )
}

/// EAL leaves its runtime directory behind even with --no-shconf, and a
/// test binary has no moment after its last test to remove its own; so
/// each run removes those of earlier runs whose process is gone.
fn sweep_stale_runtime_dirs() {
    let Ok(entries) = std::fs::read_dir("/var/run/dpdk") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("rte-test-") else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn pool(eal: &'static Eal, name: &str, n: u32) -> Mempool<'static> {
    // No per-lcore cache, so that `available` is exact at every step.
    Mempool::new(eal, name, n, 0, 2176, -1).expect("mempool")
}

#[test]
fn eal_refuses_a_second_init() {
    let _g = env();
    let err = Eal::init(&["--no-huge"]).unwrap_err();
    assert_eq!(err.errno, libc::EALREADY);
}

#[test]
fn mbufs_go_home_after_alloc_prepend_trim_and_drop() {
    let (eal, _g) = env();
    let pool = pool(eal, "own", 255);
    {
        let mut burst = Burst::new();
        assert!(Mbuf::alloc_bulk(&pool, &mut burst));
        assert_eq!(pool.available(), 255 - 32);

        let m = &mut burst[0];
        assert!(m.set_len(60));
        m.data_mut().expect("writable").copy_from_slice(&[0xab; 60]);
        let head = m.headroom();
        m.prepend(14).expect("headroom").fill(0x11);
        assert_eq!(m.len(), 74);
        assert_eq!(m.headroom(), head - 14);
        assert_eq!(&m[..14], &[0x11; 14]);
        assert!(
            m.prepend(4096).is_none(),
            "prepend past the headroom must fail"
        );
        assert_eq!(m.len(), 74, "a failed prepend changes nothing");
        assert!(m.adj(14));
        assert_eq!(&m[..], &[0xab; 60]);
        assert!(m.trim(10));
        assert_eq!(m.len(), 50);
        assert!(!m.trim(51));
        assert!(!m.adj(51));
        m.append(4).expect("tailroom").fill(0xcd);
        assert_eq!(m.pkt_len(), 54);
        assert_eq!(&m[50..], &[0xcd; 4]);

        // Half the burst dropped one by one, the rest freed in bulk.
        burst.truncate(16);
        assert_eq!(pool.available(), 255 - 16);
        Mbuf::free_bulk(&mut burst);
        assert!(burst.is_empty());
    }
    assert_eq!(pool.available(), 255);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn alloc_bulk_is_all_or_nothing() {
    let (eal, _g) = env();
    let pool = pool(eal, "short", 20);
    let mut burst = Burst::new();
    assert!(
        !Mbuf::alloc_bulk(&pool, &mut burst),
        "20 mbufs cannot fill a burst of 32"
    );
    assert!(burst.is_empty());
    assert_eq!(pool.available(), 20);
    let mut small: ArrayVec<Mbuf, 8> = ArrayVec::new();
    assert!(Mbuf::alloc_bulk(&pool, &mut small));
    assert_eq!(pool.available(), 12);
    drop(small);
    assert_eq!(pool.available(), 20);
}

#[test]
fn partial_tx_returns_what_the_port_did_not_take() {
    let (eal, _g) = env();
    // net_ring0 loops TX back to RX through one ring of 1024 slots, so a
    // long enough TX run fills it and the port starts refusing frames.
    let pool = pool(eal, "tx", 4095);
    let port = Port::by_name(eal, "net_ring0").expect("net_ring0");
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 128,
        tx_desc: 128,
        mtu: 1500,
        promiscuous: false,
    };
    let (mut port, mut rx, mut tx) = port.configure(&conf, &pool).expect("configure");
    port.start().expect("start");
    let (rxq, txq) = (&mut rx[0], &mut tx[0]);

    let mut sent = 0;
    let mut refused = 0;
    for _ in 0..64 {
        let mut burst = Burst::new();
        assert!(Mbuf::alloc_bulk(&pool, &mut burst));
        for m in burst.iter_mut() {
            assert!(m.set_len(64));
        }
        sent += txq.tx_burst(&mut burst);
        refused += burst.len();
        // What the port refused is still ours and is freed here.
    }
    assert!(refused > 0, "the ring must fill up and refuse frames");
    assert_eq!(sent + refused, 64 * 32);
    assert_eq!(
        pool.in_use() as usize,
        sent,
        "refused frames went back to the pool"
    );

    let mut received = 0;
    for _ in 0..10_000 {
        let mut burst = Burst::new();
        let n = rxq.rx_burst(&mut burst);
        if n == 0 {
            break;
        }
        assert!(burst.iter().all(|m| m.len() == 64));
        received += n;
    }
    assert_eq!(received, sent);
    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets as usize, sent);
    assert_eq!(stats.ipackets as usize, received);
    drop(port);
    assert_eq!(pool.available(), 4095);
}

/// Issue 14: tgw asks for marks before configuring a port; the virtual
/// devices (net_null, net_ring, net_memif) have no negotiation (no `rx_metadata_negotiate` op): ENOTSUP,
/// which the daemon takes as "no marks" at debug level. A port already
/// configured is refused (EBUSY), which is why it is asked first.
#[test]
fn virtual_devices_do_not_negotiate_rx_metadata() {
    let (eal, _g) = env();
    let wanted = rte::RX_METADATA_USER_MARK | rte::RX_METADATA_USER_FLAG;
    for name in ["net_null2", "net_ring1", "net_memif0"] {
        let port = Port::by_name(eal, name).expect(name);
        let err = port.negotiate_rx_metadata(wanted).expect_err(name);
        assert_eq!(
            (err.op, err.errno),
            ("rte_eth_rx_metadata_negotiate", libc::ENOTSUP),
            "{name}"
        );
    }
}

#[test]
fn null_port_reports_mac_link_and_counters() {
    let (eal, _g) = env();
    let pool = pool(eal, "null", 1023);
    let port = Port::by_name(eal, "net_null0").expect("net_null0");
    let info = port.info().expect("info");
    assert_eq!(info.driver, "net_null");
    let mac = rte::MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        mtu: 1500,
        promiscuous: true,
    };
    let (mut port, _rx, mut tx) = port.configure(&conf, &pool).expect("configure");
    port.set_mac(mac).expect("net_null takes a MAC");
    port.start().expect("start");
    assert_eq!(port.mac().unwrap(), mac);
    assert!(port.link().unwrap().up);
    let mut burst = Burst::new();
    assert!(Mbuf::alloc_bulk(&pool, &mut burst));
    for m in burst.iter_mut() {
        m.set_len(100);
    }
    assert_eq!(tx[0].tx_burst(&mut burst), 32);
    let stats = port.stats().unwrap();
    assert_eq!(stats.opackets, 32);
    assert!(port
        .xstats()
        .unwrap()
        .iter()
        .any(|(name, v)| name == "tx_good_packets" && *v == 32));
    port.stop().unwrap();
    drop(port);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn ring_moves_ownership_and_frees_leftovers() {
    let (eal, _g) = env();
    let pool = pool(eal, "ring", 127);
    let ring = Ring::new(eal, "test_ring", 64).expect("ring");
    let mut burst = Burst::new();
    assert!(Mbuf::alloc_bulk(&pool, &mut burst));
    assert_eq!(ring.enqueue_burst(&mut burst), 32);
    assert!(burst.is_empty());
    assert!(Mbuf::alloc_bulk(&pool, &mut burst));
    assert_eq!(ring.enqueue_burst(&mut burst), 31, "a ring of 64 holds 63");
    assert_eq!(burst.len(), 1);
    assert_eq!(ring.len(), 63);
    drop(burst);
    let mut out: ArrayVec<Mbuf, 16> = ArrayVec::new();
    assert_eq!(ring.dequeue_burst(&mut out), 16);
    drop(out);
    drop(ring); // the 47 still inside go home
    assert_eq!(pool.available(), 127);
}

#[test]
fn a_panicking_lcore_job_is_reported_not_unwound_into_c() {
    let (eal, _g) = env();
    eal.scope(|s| {
        let job = s
            .launch(LcoreId(1), || panic!("worker bug {}", 7))
            .expect("launch");
        while !job.finished() {
            std::thread::yield_now();
        }
        assert_eq!(job.panic_message(), Some("worker bug 7"));
        let err = job.wait().unwrap_err();
        assert_eq!(err.message, "worker bug 7");
        assert_eq!(err.lcore, LcoreId(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let job = s
            .launch(LcoreId(1), move || tx.send(rte::rdtsc()).unwrap())
            .expect("launch again");
        assert!(job.wait().is_ok());
        assert!(rx.recv().unwrap() > 0);
    });
}

#[test]
fn scoped_lcore_jobs_borrow_from_the_caller_and_are_joined() {
    let (eal, _g) = env();
    let pool = pool(eal, "scoped", 127);
    let ring = Ring::new(eal, "scoped_ring", 64).expect("ring");
    let mut burst = Burst::new();
    assert!(Mbuf::alloc_bulk(&pool, &mut burst));
    let moved = eal.scope(|s| {
        // The job borrows the ring and the burst; the scope does not
        // return before the job has.
        let _job = s
            .launch(LcoreId(1), || {
                ring.enqueue_burst(&mut burst);
            })
            .expect("launch");
        ring.len() // may be 0 or 32: the job runs on its own
    });
    assert!(moved <= 32);
    assert_eq!(ring.len(), 32, "the scope returned after the job");
    assert!(burst.is_empty());
}

/// Issue 9, defect 11: one handle per port, so that its queues are handed
/// out once (`configure` consumes the handle; a second `by_name` for the
/// same port is refused while the first lives).
#[test]
fn a_port_has_one_handle_at_a_time() {
    let (eal, _g) = env();
    let pool = pool(eal, "claim", 1023);
    let first = Port::by_name(eal, "net_null1").expect("net_null1");
    let err = Port::by_name(eal, "net_null1").expect_err("a second handle to net_null1");
    assert_eq!(err.errno, libc::EBUSY);
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        mtu: 1500,
        promiscuous: false,
    };
    let (port, _rx, _tx) = first.configure(&conf, &pool).expect("configure");
    let err = Port::by_name(eal, "net_null1").expect_err("a handle to a configured port");
    assert_eq!(err.errno, libc::EBUSY);
    // Closing a virtual device releases it: it is gone, not busy.
    drop(port);
    let err = Port::by_name(eal, "net_null1").expect_err("closed");
    assert_eq!(err.errno, libc::ENODEV);
}

/// Issue 9, defect 11: an mbuf whose data is shared (a clone attached to
/// it) gives no writable bytes, on either side, until it is alone again.
#[test]
fn a_shared_mbuf_is_not_writable() {
    let (eal, _g) = env();
    let pool = pool(eal, "shared", 63);
    let mut m = Mbuf::alloc(&pool).expect("mbuf");
    assert!(m.set_len(64));
    m.data_mut().expect("a fresh mbuf is writable").fill(0x5a);
    assert!(m.is_writable());

    let mut clone = m.share(&pool).expect("clone");
    assert_eq!(&clone[..], &[0x5a; 64], "the clone sees the same bytes");
    for (who, mbuf) in [("original", &mut m), ("clone", &mut clone)] {
        assert!(!mbuf.is_writable(), "{who}");
        assert!(mbuf.data_mut().is_none(), "{who}: data_mut");
        assert!(mbuf.prepend(4).is_none(), "{who}: prepend");
        assert!(mbuf.append(4).is_none(), "{who}: append");
        // What the workers wrap: writes through it are not checked again.
        assert!(mbuf.writable().is_none(), "{who}: writable");
    }
    assert_eq!(&m[..], &[0x5a; 64], "nothing was written");
    assert_eq!(m.len(), 64, "nothing grew");
    // Headers are each mbuf's own: trimming the clone is allowed.
    assert!(clone.adj(14));
    assert_eq!(m.len(), 64);

    drop(clone);
    assert!(m.is_writable(), "alone again");
    m.data_mut().expect("writable again")[0] = 1;
    let mut w = m.writable().expect("alone again, for a worker");
    w.prepend(2).expect("headroom").fill(7);
    w.append(2).expect("tailroom").fill(9);
    w.data_mut()[2] = 3;
    assert_eq!(w.len(), 68);
    assert_eq!((w[0], w[1], w[2], w[3], w[67]), (7, 7, 3, 0x5a, 9));
    drop(m);
    assert_eq!(pool.available(), 63);
}

/// A worker's prepend that hands back the whole frame (encap writes the
/// outer header from the inner one behind it): the new bytes first, then
/// what was there, the lengths grown by what was prepended; past the
/// headroom nothing, and nothing changed.
#[test]
fn a_writable_prepend_whole_gives_the_new_bytes_and_the_frame_after_them() {
    let (eal, _g) = env();
    let pool = pool(eal, "whole", 7);
    let mut m = Mbuf::alloc(&pool).expect("mbuf");
    assert!(m.set_len(60));
    m.data_mut().expect("writable").copy_from_slice(&[0xab; 60]);
    let head = m.headroom();
    let mut w = m.writable().expect("alone");
    let all = w.prepend_whole(14).expect("headroom");
    assert_eq!(all.len(), 74, "the whole frame, not the 14 new bytes");
    assert_eq!(&all[14..], &[0xab; 60], "what was there follows");
    all[..14].fill(0x11);
    assert!(w.prepend_whole(head).is_none(), "past the headroom");
    assert_eq!(w.len(), 74, "a failed prepend changes nothing");
    assert_eq!((m.len(), m.pkt_len(), m.headroom()), (74, 74, head - 14));
    assert_eq!((&m[..14], &m[14..]), (&[0x11; 14][..], &[0xab; 60][..]));
}

#[test]
fn rte_lpm_finds_the_longest_prefix_and_reports_a_miss() {
    let (eal, _g) = env();
    let ip = |a: u8, b: u8, c: u8, d: u8| u32::from_be_bytes([a, b, c, d]);
    for _ in 0..2 {
        // Twice under one name: the first table must be freed on drop.
        let mut lpm = RteLpm::new(eal, "test_lpm", 16, 4).expect("rte_lpm_create");
        lpm.add(ip(10, 0, 0, 0), 8, 1).unwrap();
        lpm.add(ip(10, 1, 0, 0), 16, 2).unwrap();
        lpm.add(ip(10, 1, 2, 0), 24, 3).unwrap();
        lpm.add(ip(10, 1, 2, 128), 25, 4).unwrap();
        lpm.add(ip(10, 1, 2, 7), 32, 5).unwrap();
        assert_eq!(
            lpm.add(ip(1, 2, 3, 4), 33, 1).unwrap_err().errno,
            libc::EINVAL
        );
        assert_eq!(
            lpm.add(ip(1, 2, 3, 4), 8, RteLpm::MAX_NEXT_HOP + 1)
                .unwrap_err()
                .errno,
            libc::EINVAL
        );
        assert_eq!(lpm.memory_bytes(), (1 << 24) * 4 + 4 * 256 * 4);

        let ips = [
            ip(10, 9, 9, 9),
            ip(10, 1, 9, 9),
            ip(10, 1, 2, 3),
            ip(10, 1, 2, 200),
            ip(10, 1, 2, 7),
            ip(11, 0, 0, 1),
        ];
        let want = [Some(1), Some(2), Some(3), Some(4), Some(5), None];
        let mut raw = [0u32; 6];
        lpm.lookup_bulk(&ips, &mut raw);
        let got: Vec<Option<u32>> = raw.iter().map(|&r| RteLpm::decode(r)).collect();
        assert_eq!(got, want);
        // The bits above the flag carry the matched entry's depth.
        assert_eq!(
            raw[0] & (RteLpm::LOOKUP_SUCCESS | RteLpm::MAX_NEXT_HOP),
            RteLpm::LOOKUP_SUCCESS | 1
        );
        for (&a, &w) in ips.iter().zip(&want) {
            assert_eq!(lpm.lookup(a), w);
        }
        // A shorter output slice bounds the lookup.
        let mut two = [0u32; 2];
        lpm.lookup_bulk(&ips, &mut two);
        assert_eq!(two.map(RteLpm::decode), [Some(1), Some(2)]);
    }
}
