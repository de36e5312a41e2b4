//! The operator's view of the flows (`flow show|flush`): real flows made
//! by real frames, read and ended by the worker that owns them, through
//! its mailbox.

use super::*;
use dataplane::conntrack::{TcpState, Timeouts};
use dataplane::mailbox::{Inbox, Mailbox};
use dataplane::pipeline::admin::{
    flush_flows, show_flows, Budget, Cursor, Endpoint, Filter, FlowJob, FlowRow, ADMIN_FLOWS,
    ADMIN_SLOTS,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TCP: u8 = 6;
const UDP: u8 = 17;

fn be(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

fn end(addr: [u8; 4], port: u16) -> Endpoint {
    Endpoint {
        addr: be(addr),
        port,
    }
}

/// The reference gateway with a pool for t1's VM8, a flow table of
/// `capacity` and each tenant's quota `quota`; worker `me` of `workers`.
fn gateway(capacity: usize, quota: u64, me: u16, workers: u16) -> Gw {
    let mut gw = Gw::with_spec(&spec_with_pool(1, false));
    let mut p = Pipeline::new(TokenBucket::new(1000, 50, SEC), me)
        .with_flows(capacity, Timeouts::default(), SEC)
        .unwrap()
        .with_quota(quota);
    if workers > 1 {
        p = p.with_steering(Steering::new(me, workers).unwrap());
    }
    gw.pipeline = p.with_snat(&gw.tables.pools);
    gw
}

impl Gw {
    /// Every row `filter` means, by walking the whole table at once.
    fn rows(&self, filter: &Filter, now: u64) -> Vec<FlowRow> {
        let mut out = Vec::with_capacity(1 << 16);
        let next = self
            .pipeline
            .flows_matching(filter, 0, Budget::ALL, now, &mut out);
        assert_eq!(next, None, "the walk reached the end");
        out
    }
}

/// (tenant, protocol, private, public, remote) of a row: what a test
/// knows of a flow it made.
type Seen = (u32, u8, Endpoint, Endpoint, Endpoint);

fn seen(r: &FlowRow) -> Seen {
    (r.tenant, r.protocol, r.private, r.public, r.remote)
}

#[test]
fn a_flows_row_says_what_was_sent_and_how_it_was_translated() {
    let mut gw = gateway(DEFAULT_FLOWS, u64::MAX, 0, 1);
    // Inbound TCP to t1's elastic IP, established.
    gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "S"), 0);
    gw.t1_sends(&tcp(VM, 22, CLIENT, 40000, "SA"), SEC);
    gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "A"), 2 * SEC);
    // Outbound UDP through the pool from VM8; its public end as it left.
    let (v, out) = gw.t1_sends(&udp_from(VM8, 5000, CLIENT, 53), 2 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));
    let (pool_addr, pool_port) = public_source(&out);
    // Outbound TCP from t2 through its elastic IP, only a SYN so far.
    let (v, _) = gw.t2_sends(&tcp(VM, 6000, CLIENT, 443, "S"), 2 * SEC);
    assert_eq!(v, Verdict::Forward(PUB));

    let now = 3 * SEC;
    let mut rows = gw.rows(&Filter::default(), now);
    rows.sort_by_key(|r| (r.tenant, r.protocol));
    assert_eq!(rows.len(), 3);
    let (pool_row, inbound, t2) = (&rows[1], &rows[0], &rows[2]);

    assert_eq!(
        seen(inbound),
        (0, TCP, end(VM, 22), end(EIP1, 22), end(CLIENT, 40000))
    );
    assert!(inbound.inbound && inbound.answered);
    assert_eq!(inbound.tcp, TcpState::Established);
    assert_eq!(
        inbound.seconds_left,
        7440 - 1,
        "established, refreshed at 2 s"
    );
    assert_eq!(inbound.pool, None);

    assert_eq!(
        seen(pool_row),
        (
            0,
            UDP,
            end(VM8, 5000),
            end(pool_addr, pool_port),
            end(CLIENT, 53)
        )
    );
    assert!(!pool_row.inbound);
    assert_eq!(pool_row.pool, Some(0));
    assert_eq!(pool_row.seconds_left, 120 - 1);
    assert_eq!(pool_row.tcp, TcpState::None);

    assert_eq!(
        seen(t2),
        (1, TCP, end(VM, 6000), end(EIP2, 6000), end(CLIENT, 443))
    );
    assert_eq!((t2.tcp, t2.seconds_left), (TcpState::SynSent, 240 - 1));
    assert!(rows.iter().all(|r| r.worker == 0));
    // Its keys are the table's: the reply key of the inbound flow is the
    // one the VM's answers arrive with.
    assert_eq!(inbound.keys[1].src(), be(VM));
    assert_eq!(inbound.keys[0].dst(), be(EIP1));
    // An expired flow is not shown, though not yet swept.
    assert_eq!(gw.rows(&Filter::default(), 2 * SEC + 120 * SEC).len(), 2);
}

/// Flows of every kind, each known by what was sent: returns them.
fn a_mix_of_flows(gw: &mut Gw) -> Vec<Seen> {
    let mut made = Vec::new();
    let remotes = [CLIENT, [8, 8, 8, 8], [9, 9, 9, 9]];
    for (i, &remote) in remotes.iter().enumerate() {
        let p = 1000 + i as u16;
        // t1 via its elastic IP, UDP and TCP.
        let (v, _) = gw.t1_sends(&udp_from(VM, p, remote, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        made.push((0, UDP, end(VM, p), end(EIP1, p), end(remote, 53)));
        let (v, _) = gw.t1_sends(&tcp(VM, p, remote, 80, "S"), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        made.push((0, TCP, end(VM, p), end(EIP1, p), end(remote, 80)));
        // t1's VM8 through the pool.
        let (v, out) = gw.t1_sends(&udp_from(VM8, p, remote, 123), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        let (a, port) = public_source(&out);
        made.push((0, UDP, end(VM8, p), end(a, port), end(remote, 123)));
        // t2, the same private address as t1's VM.
        let (v, _) = gw.t2_sends(&udp_from(VM, p, remote, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        made.push((1, UDP, end(VM, p), end(EIP2, p), end(remote, 53)));
        // Inbound to t2's elastic IP.
        let (v, _) = gw.client_sends(&tcp(remote, 30000 + p, EIP2, 23, "S"), 0);
        assert_eq!(v, Verdict::Forward(UND));
        made.push((1, TCP, end(VM, 23), end(EIP2, 23), end(remote, 30000 + p)));
    }
    made
}

#[test]
fn a_filter_selects_exactly_the_flows_it_names() {
    let mut gw = gateway(DEFAULT_FLOWS, u64::MAX, 0, 1);
    let made = a_mix_of_flows(&mut gw);
    assert_eq!(gw.pipeline.flows(), made.len());
    let has = |e: Endpoint, a: Option<u32>, p: Option<u16>| {
        a.is_none_or(|a| e.addr == a) && p.is_none_or(|p| e.port == p)
    };
    let filters = [
        Filter::default(),
        Filter {
            tenant: Some(1),
            ..Filter::default()
        },
        Filter {
            protocol: Some(TCP),
            ..Filter::default()
        },
        // An end before NAT (both tenants' VM), after NAT (an elastic
        // IP), a remote, a pool address.
        Filter {
            addr: Some(be(VM)),
            ..Filter::default()
        },
        Filter {
            addr: Some(be(EIP1)),
            ..Filter::default()
        },
        Filter {
            addr: Some(be([8, 8, 8, 8])),
            ..Filter::default()
        },
        Filter {
            addr: Some(be(POOL1)),
            ..Filter::default()
        },
        Filter {
            port: Some(53),
            ..Filter::default()
        },
        Filter {
            port: Some(1001),
            ..Filter::default()
        },
        Filter {
            tenant: Some(0),
            addr: Some(be(CLIENT)),
            protocol: Some(UDP),
            port: Some(53),
        },
        Filter {
            tenant: Some(7),
            ..Filter::default()
        },
    ];
    for f in &filters {
        let want: BTreeSet<_> = made
            .iter()
            .filter(|(t, proto, a, b, c)| {
                f.tenant.is_none_or(|x| x == *t)
                    && f.protocol.is_none_or(|x| x == *proto)
                    && [a, b, c].iter().any(|e| has(**e, f.addr, None))
                    && [a, b, c].iter().any(|e| has(**e, None, f.port))
            })
            .map(|s| format!("{s:?}"))
            .collect();
        let got: BTreeSet<_> = gw
            .rows(f, 1)
            .iter()
            .map(|r| format!("{:?}", seen(r)))
            .collect();
        assert_eq!(got, want, "{f:?}");
        if f.tenant == Some(7) {
            assert!(got.is_empty());
        } else {
            assert!(!got.is_empty(), "{f:?} means something");
        }
    }
}

#[test]
fn paging_with_a_cursor_returns_every_flow_once() {
    // Four walks' worth of slots, flows spread over them.
    let mut gw = gateway(4 * ADMIN_SLOTS, u64::MAX, 0, 1);
    let mut made = HashSet::new();
    for n in 0..300u16 {
        let (v, _) = gw.t1_sends(&udp_from(VM, 10000 + n, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        made.insert(10000 + n);
    }
    for limit in [1, 7, 300, 1000] {
        let (mut cursor, mut pages, mut got) = (Some(0), 0, Vec::new());
        while let Some(slot) = cursor {
            let mut out = Vec::with_capacity(limit);
            cursor =
                gw.pipeline
                    .flows_matching(&Filter::default(), slot, Budget::PER_LOOP, 1, &mut out);
            assert!(out.len() <= limit && out.capacity() == limit, "no growth");
            got.extend(out.iter().map(|r| r.private.port));
            pages += 1;
            assert!(pages < 2000, "paging ends");
        }
        let unique: HashSet<_> = got.iter().copied().collect();
        assert_eq!(got.len(), made.len(), "limit {limit}: each once");
        assert_eq!(unique, made, "limit {limit}");
    }
}

#[test]
fn a_flush_ends_flows_as_expiry_does_ports_quotas_and_all() {
    // One block of 64 ports for VM8; t1 may hold 66 flows.
    let mut gw = gateway(DEFAULT_FLOWS, 66, 0, 1);
    for sport in 0..64 {
        let (v, _) = gw.t1_sends(&udp_from(VM8, 6000 + sport, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
    }
    let (v, _) = gw.t1_sends(&udp_from(VM8, 7000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoNatPort), "the block is full");
    // An inbound flow nobody answered, and one of VM's own.
    let (v, _) = gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "S"), 0);
    assert_eq!(v, Verdict::Forward(UND));
    let (v, _) = gw.t1_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Forward(PUB));
    let (v, _) = gw.t1_sends(&udp_from(VM, 5001, CLIENT, 53), 0);
    assert_eq!(v, Verdict::Drop(DropReason::Quota), "66 flows: t1's quota");
    let tc = &gw.counters.tenants[0];
    assert_eq!((tc.live_flows(), tc.live_unreplied()), (66, 1));
    assert_eq!(gw.pipeline.nat_ports_in_use(0), 64);

    // VM8's flows and the unanswered one end; VM's own stays.
    let mut removed = 0;
    for filter in [
        Filter {
            addr: Some(be(VM8)),
            ..Filter::default()
        },
        Filter {
            port: Some(22),
            ..Filter::default()
        },
    ] {
        let (n, next) =
            gw.pipeline
                .flush_matching(&gw.tables, &gw.counters, &filter, 0, Budget::ALL);
        assert_eq!(next, None);
        removed += n;
    }
    assert_eq!(removed, 65);
    assert_eq!(gw.pipeline.flows(), 1);
    assert_eq!(gw.pipeline.nat_ports_in_use(0), 0, "ports back in the pool");
    let tc = &gw.counters.tenants[0];
    assert_eq!((tc.live_flows(), tc.live_unreplied()), (1, 0));
    // The gauge the operator reads follows at the next sweep.
    gw.pipeline.sweep(&gw.tables, &gw.counters, 1);
    assert_eq!(gw.counters.tenants[0].nat_ports.get(), 0);

    // The freed port and quota are there for new flows; VM's flow lives.
    let (v, out) = gw.t1_sends(&udp_from(VM8, 7000, CLIENT, 53), 1);
    assert_eq!(v, Verdict::Forward(PUB));
    assert!(public_source(&out).1 >= 1024);
    assert_eq!(
        gw.t1_sends(&udp_from(VM, 5001, CLIENT, 53), 1).0,
        Verdict::Forward(PUB)
    );
    let (v, out) = gw.client_sends(&udp_from(CLIENT, 53, EIP1, 5000), 1);
    assert_eq!(
        v,
        Verdict::Forward(UND),
        "the flow left alone still answers"
    );
    assert_eq!(assert_valid_ipv4(&tunnelled_ip(&out)).destination, VM);
    // A flushed flow is gone: its reply no longer passes.
    assert_eq!(
        gw.client_sends(&tcp(CLIENT, 40000, EIP1, 22, "A"), 1).0,
        Verdict::Drop(DropReason::InvalidState)
    );
}

/// A worker's loop, as src/worker.rs runs it: a burst (here one frame of
/// a flow it owns, every time), then its mailbox. Returns the frames
/// forwarded, and how many of them while a job was being served.
fn worker_loop(
    gw: &mut Gw,
    inbox: &mut Inbox<FlowJob>,
    burst: &[u8],
    stop: &AtomicBool,
) -> (u64, u64) {
    let (mut forwarded, mut while_busy) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut f = VecFrame::new(burst, UND);
        let v = gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 1);
        if v == Verdict::Forward(PUB) {
            forwarded += 1;
            while_busy += u64::from(inbox.busy());
        }
        let (p, t, c) = (&mut gw.pipeline, &gw.tables, &gw.counters);
        inbox.poll(|job| p.serve(t, c, job, 1));
    }
    (forwarded, while_busy)
}

/// t1's VM to remote `n`, from port 5000: a flow per remote.
fn to_remote(n: u32) -> Vec<u8> {
    let remote = (0x0808_0000 + n).to_be_bytes();
    let inner = eth(
        T1_MAC,
        VM1_MAC,
        EtherType::IPV4,
        &udp_from(VM, 5000, remote, 53),
    );
    gre_frame(HOST1, HOST1_MAC, 0x2000, 1000, 0x6558, &inner)
}

#[test]
fn two_worker_threads_answer_show_and_flush_through_their_mailboxes() {
    const FLOWS: u32 = 200;
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let mut mailboxes = Vec::new();
    let mut threads = Vec::new();
    for me in 0..2u16 {
        let (mailbox, mut inbox) = Mailbox::new();
        mailboxes.push(mailbox);
        let (stop, made) = (Arc::clone(&stop), Arc::clone(&made));
        threads.push(std::thread::spawn(move || {
            let mut gw = gateway(2 * ADMIN_SLOTS, u64::MAX, me, 2);
            // Every frame goes to both: the owner makes the flow, the
            // other would hand it over.
            let mut mine = None;
            for n in 0..FLOWS {
                let frame = to_remote(n);
                let mut f = VecFrame::new(&frame, UND);
                match gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 0) {
                    Verdict::Forward(PUB) => {
                        made.fetch_add(1, Ordering::Relaxed);
                        mine.get_or_insert(frame);
                    }
                    Verdict::Handoff(other) => assert_eq!(other, 1 - me),
                    v => panic!("{v:?}"),
                }
            }
            let burst = mine.expect("each worker owns some");
            let served = worker_loop(&mut gw, &mut inbox, &burst, &stop);
            (served, gw.pipeline.flows())
        }));
    }
    let wait = Instant::now() + Duration::from_secs(30);
    while made.load(Ordering::Relaxed) < u64::from(FLOWS) && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(made.load(Ordering::Relaxed), u64::from(FLOWS));

    // Page through both workers, 9 rows at a time.
    let udp = Filter {
        protocol: Some(UDP),
        ..Filter::default()
    };
    let timeout = Duration::from_secs(10);
    let (mut from, mut rows, mut pages) = (Some(Cursor::default()), Vec::new(), 0);
    while let Some(cursor) = from {
        let text = cursor.to_string();
        let page = show_flows(&mailboxes, udp, 9, text.parse().unwrap(), timeout).unwrap();
        assert!(page.rows.len() <= 9);
        rows.extend(page.rows);
        from = page.next;
        pages += 1;
        assert!(pages < 1000);
    }
    let remotes: HashSet<u32> = rows.iter().map(|r| r.remote.addr).collect();
    assert_eq!(rows.len(), FLOWS as usize, "each flow once");
    assert_eq!(remotes, (0..FLOWS).map(|n| 0x0808_0000 + n).collect());
    let by_worker = |w| rows.iter().filter(|r| r.worker == w).count();
    assert!(
        by_worker(0) > 0 && by_worker(1) > 0,
        "both workers answered"
    );

    // Flush them: each worker ends its own.
    let flushed = flush_flows(&mailboxes, udp, timeout);
    assert_eq!(flushed.removed, u64::from(FLOWS));
    assert!(flushed.not_answering.is_empty());
    let page = show_flows(
        &mailboxes,
        Filter::default(),
        100,
        Cursor::default(),
        timeout,
    );
    // The workers' own bursts opened their flow again since.
    assert!(page.unwrap().rows.len() <= 2);

    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let ((forwarded, _), _) = t.join().unwrap();
        assert!(forwarded > 0, "bursts went on");
    }
}

#[test]
fn a_cursor_reads_back_and_a_page_of_none_still_moves_on() {
    let c = Cursor {
        worker: 3,
        slot: 40961,
    };
    assert_eq!(c.to_string(), "3.40961");
    assert_eq!("3.40961".parse::<Cursor>(), Ok(c));
    for bad in ["", "3", "3.", ".5", "x.5", "3.-1", "70000.1", "1.2.3"] {
        assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
    }
    // One worker holding one flow, asked for pages of none.
    let (mailbox, mut inbox) = Mailbox::new();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let worker = std::thread::spawn(move || {
        let mut gw = gateway(DEFAULT_FLOWS, u64::MAX, 0, 1);
        let frame = to_remote(1);
        let mut f = VecFrame::new(&frame, UND);
        let v = gw.pipeline.process(&gw.tables, &gw.counters, &mut f, 0);
        assert_eq!(v, Verdict::Forward(PUB));
        worker_loop(&mut gw, &mut inbox, &frame, &s)
    });
    let boxes = [mailbox];
    let (mut from, mut rows, mut pages) = (Some(Cursor::default()), 0, 0);
    while let Some(cursor) = from {
        let page = show_flows(
            &boxes,
            Filter::default(),
            0,
            cursor,
            Duration::from_secs(10),
        );
        let page = page.unwrap();
        rows += page.rows.len();
        from = page.next;
        pages += 1;
        assert!(pages < 10, "paging ends");
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn a_worker_busy_with_a_large_flush_keeps_answering_its_bursts() {
    const CAPACITY: usize = 16 * ADMIN_SLOTS;
    const FLOWS: u32 = 20_000;
    let (mailbox, mut inbox) = Mailbox::new();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (s, r) = (Arc::clone(&stop), Arc::clone(&ready));
    let worker = std::thread::spawn(move || {
        let mut gw = gateway(CAPACITY, u64::MAX, 0, 1);
        for n in 0..FLOWS {
            let (v, _) = gw.t1_sends(&udp_from(VM, 5000, (0x0808_0000 + n).to_be_bytes(), 53), 0);
            assert_eq!(v, Verdict::Forward(PUB));
        }
        // Bursts of t2's flow, which the flush leaves alone.
        let (v, _) = gw.t2_sends(&udp_from(VM, 5000, CLIENT, 53), 0);
        assert_eq!(v, Verdict::Forward(PUB));
        let burst = gre_frame(
            HOST2,
            HOST2_MAC,
            0x2000,
            2000,
            0x0800,
            &udp_from(VM, 5000, CLIENT, 53),
        );
        r.store(true, Ordering::Release);
        let served = worker_loop(&mut gw, &mut inbox, &burst, &s);
        (served, gw.pipeline.flows())
    });
    let wait = Instant::now() + Duration::from_secs(60);
    while !ready.load(Ordering::Acquire) && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(1));
    }
    let job = Box::new(FlowJob::flush(Filter {
        tenant: Some(0),
        ..Filter::default()
    }));
    let answer = mailbox.ask(job, Duration::from_secs(30)).unwrap();
    stop.store(true, Ordering::Relaxed);
    let ((_, while_busy), left) = worker.join().unwrap();
    assert_eq!(answer.removed, u64::from(FLOWS));
    assert_eq!(left, 1, "t2's flow is left");
    // A loop visits ADMIN_SLOTS slots and ends ADMIN_FLOWS flows at
    // most: the whole table takes 79 loops or more,
    // with a burst forwarded between each two.
    let least = (FLOWS as usize)
        .div_ceil(ADMIN_FLOWS)
        .max(CAPACITY / ADMIN_SLOTS);
    assert!(answer.polls as usize >= least, "{} polls", answer.polls);
    assert!(
        while_busy >= u64::from(answer.polls) - 1,
        "{while_busy} bursts forwarded during {} polls",
        answer.polls
    );
}
