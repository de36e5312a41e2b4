//! `/metrics` end to end (issue 12): a real tgw on net_pcap ports with
//! `[metrics] listen` on loopback, fed known frames; its endpoint scraped
//! over HTTP. The live text must pass `promtool check metrics` and count
//! exactly the frames sent, per tenant and per drop reason; the endpoint
//! answers only `GET /metrics`, bounds its connections, and a port in use
//! stops tgw at start with an error that says so.
//!
//! A real Prometheus server (Debian's, started by the test on loopback
//! with its TSDB in the test's scratch directory, killed by its PID
//! afterwards) scrapes a tgw that forwarded known frames, and its HTTP
//! API gives the same per-tenant frame counts and drop counts.
//!
//! Each test has its own tgw (file prefix, control socket, port).

mod common;
mod prometheus;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::reference::{self, ping, syn, EIP1, EIP2};
use common::{read_pcap, wait_for_frames, write_pcap, Daemon, PrefixFiles, Scratch};

/// A loopback port nobody listens on now (the OS's pick; the small race
/// with another process taking it is the price of a fixed config).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// examples/reference.toml on net_pcap ports in `dir`, its own file
/// prefix and control socket, `/metrics` on `listen`.
fn config(dir: &Scratch, prefix: &str, listen: SocketAddr) -> PathBuf {
    let dev = |i: usize, side: &str| {
        format!(
            "net_pcap{i},rx_pcap={},tx_pcap={}",
            dir.path(&format!("{side}-in.pcap")).display(),
            dir.path(&format!("{side}-out.pcap")).display()
        )
    };
    let tail = format!(
        "{}\n[metrics]\nlisten = \"{listen}\"\n",
        reference::control_socket(dir, "ctl/tgw.sock")
    );
    reference::config(
        dir,
        &reference::edits(prefix, [&dev(0, "pub"), &dev(1, "und")], "in_memory = true"),
        &tail,
    )
}

/// A tgw whose public port is fed `public` at start, serving `/metrics`.
struct Gateway {
    dir: Scratch,
    _files: PrefixFiles,
    daemon: Daemon,
    metrics: SocketAddr,
}

impl Gateway {
    fn start(name: &str, public: &[Vec<u8>]) -> Gateway {
        let dir = Scratch::new(&format!("metrics-{name}"));
        let prefix = format!("tgw-test-metrics-{name}-{}", std::process::id());
        let files = PrefixFiles(prefix.clone());
        write_pcap(&dir.path("pub-in.pcap"), public);
        write_pcap(&dir.path("und-in.pcap"), &[]);
        let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let config = config(&dir, &prefix, metrics);
        let mut daemon = Daemon::start_logged(&config, &[], &dir.path("tgw.log"), &[]);
        // Up when the endpoint answers (it is bound before the workers
        // start, and answers once the control loop runs).
        let deadline = Instant::now() + Duration::from_secs(30);
        let g = loop {
            if let Ok((status, _, _)) = get(metrics, "/metrics") {
                assert_eq!(status, 200);
                break Gateway {
                    dir,
                    _files: files,
                    daemon,
                    metrics,
                };
            }
            let log = || std::fs::read_to_string(dir.path("tgw.log")).unwrap_or_default();
            assert!(
                daemon.running(),
                "tgw exited before it answered:\n{}",
                log()
            );
            assert!(
                Instant::now() < deadline,
                "no /metrics within 30 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        g
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("tgw.log")).unwrap_or_default()
    }

    /// A scrape that must succeed: its body.
    fn scrape(&self) -> String {
        let (status, head, body) = get(self.metrics, "/metrics").expect("scrape");
        assert_eq!(status, 200, "{head}\n{body}");
        body
    }
}

/// One HTTP/1.1 request, read to the end (tgw closes after answering):
/// the status, the head and the body.
fn request(addr: SocketAddr, raw: &[u8]) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let text = String::from_utf8(answer).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Ok((status, head.to_owned(), body.to_owned()))
}

/// `request`, again while the endpoint turns the connection away (503,
/// all slots taken): the thread of a connection just answered gives its
/// slot back a moment after the client saw the answer end, which on a
/// loaded machine can be after the next request came. A client told
/// "retry later" retries.
fn request_served(addr: SocketAddr, raw: &[u8]) -> std::io::Result<(u16, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = request(addr, raw)?;
        let busy = answer.0 == 503 && answer.2.starts_with("too many connections");
        if !busy || Instant::now() >= deadline {
            return Ok(answer);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: tgw\r\nAccept: */*\r\n\r\n").as_bytes(),
    )
}

/// The value of the sample written exactly `series` (name and labels).
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
        .parse()
        .unwrap()
}

fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics refuses the live scrape:\n{said}"
    );
}

#[test]
fn a_live_scrape_passes_promtool_and_counts_the_frames_sent() {
    // t1 lets in TCP 22 (5 flows) and refuses TCP 23 (3 SYNs: the
    // firewall drops them); t2 lets in ICMP (4 pings, 4 flows).
    let mut input: Vec<Vec<u8>> = (40001..=40005).map(|p| syn(EIP1, p, 22)).collect();
    input.extend((41001..=41003).map(|p| syn(EIP1, p, 23)));
    input.extend((1..=4).map(|id| ping(EIP2, id, 1)));
    let mut g = Gateway::start("live", &input);
    let out = g.dir.path("und-out.pcap");
    wait_for_frames(&mut g.daemon, &out, 9);
    assert_eq!(read_pcap(&out).len(), 9, "{}", g.log());

    // The pcap file has the frames a moment before the port's and the
    // worker's counters do (net_pcap flushes, then counts): scrape until
    // the last of them, the port's, has them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (head, body) = loop {
        let (status, head, body) = get(g.metrics, "/metrics").unwrap();
        assert_eq!(status, 200, "{head}");
        let tx = sample(&body, r#"tgw_port_tx_packets_total{port="und0"}"#);
        if tx >= 9.0 || Instant::now() > deadline {
            break (head, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    promtool(&body);
    let n = |series: &str| sample(&body, series);
    assert_eq!(n(r#"tgw_tenant_to_tunnel_packets_total{tenant="t1"}"#), 5.0);
    assert_eq!(n(r#"tgw_tenant_to_tunnel_packets_total{tenant="t2"}"#), 4.0);
    assert_eq!(
        n(r#"tgw_tenant_from_tunnel_packets_total{tenant="t1"}"#),
        0.0
    );
    assert_eq!(
        n(r#"tgw_tenant_flows_opened_total{tenant="t1",protocol="tcp"}"#),
        5.0
    );
    assert_eq!(
        n(r#"tgw_tenant_flows_opened_total{tenant="t2",protocol="icmp"}"#),
        4.0
    );
    assert_eq!(n(r#"tgw_tenant_flows{tenant="t1"}"#), 5.0);
    assert_eq!(n(r#"tgw_drops_total{reason="firewall"}"#), 3.0);
    assert_eq!(n(r#"tgw_drops_total{reason="runt"}"#), 0.0);
    assert_eq!(
        n(r#"tgw_firewall_flows_total{tenant="t1",rule="default",direction="in",action="deny"}"#),
        3.0
    );
    assert_eq!(n(r#"tgw_port_rx_packets_total{port="pub0"}"#), 12.0);
    assert_eq!(n(r#"tgw_port_tx_packets_total{port="und0"}"#), 9.0);
    assert_eq!(n(r#"tgw_worker_rx_packets_total{worker="0"}"#), 12.0);
    assert_eq!(n(r#"tgw_worker_flows{worker="0"}"#), 9.0);
    assert!(n(r#"tgw_worker_heartbeat_age_seconds{worker="0"}"#) < 1.0);
    // A scrape is counted once its answer is out: Gateway::start's by a
    // later one (its thread may still be closing when the next comes).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sample(&g.scrape(), "tgw_scrapes_total") < 1.0 {
        assert!(Instant::now() < deadline, "scrapes are not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = g.log();
    let out = g.daemon.terminate();
    assert!(out.status.success(), "{log}");
}

#[test]
fn only_get_metrics_is_served() {
    let g = Gateway::start("paths", &[]);
    let (status, _, _) = request_served(g.metrics, b"GET / HTTP/1.1\r\nHost: tgw\r\n\r\n").unwrap();
    assert_eq!(status, 404);
    let (status, _, _) =
        request_served(g.metrics, b"GET /metrics/x HTTP/1.1\r\nHost: tgw\r\n\r\n").unwrap();
    assert_eq!(status, 404);
    let (status, head, _) =
        request_served(g.metrics, b"POST /metrics HTTP/1.1\r\nHost: tgw\r\n\r\n").unwrap();
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let (status, _, _) = request_served(g.metrics, b"nonsense\r\n\r\n").unwrap();
    assert_eq!(status, 400);
    let (status, head, body) =
        request_served(g.metrics, b"HEAD /metrics HTTP/1.1\r\nHost: tgw\r\n\r\n").unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty(), "HEAD has no body: {body:?}");
    // A head past 8 KiB is refused, not read on for ever.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    big.extend(
        b"X-Filler: "
            .iter()
            .chain(&[b'a'; 10_000])
            .chain(b"\r\n\r\n"),
    );
    let (status, _, _) = request_served(g.metrics, &big).unwrap();
    assert_eq!(status, 431);
    let body = g.scrape();
    let n = |series: &str| sample(&body, series);
    assert_eq!(n(r#"tgw_http_refused_total{cause="not_found"}"#), 2.0);
    assert_eq!(n(r#"tgw_http_refused_total{cause="method"}"#), 1.0);
    assert_eq!(n(r#"tgw_http_refused_total{cause="bad_request"}"#), 1.0);
    assert_eq!(n(r#"tgw_http_refused_total{cause="too_large"}"#), 1.0);
}

#[test]
fn silent_clients_hold_a_bounded_number_of_connections() {
    let g = Gateway::start("slow", &[]);
    // Four clients that connect and say nothing take every slot. The
    // thread of Gateway::start's last scrape may still hold one for a
    // moment after its answer: a silent client turned away then (503)
    // is replaced.
    let mut silent: Vec<TcpStream> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while silent.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "no four silent clients:\n{}",
            g.log()
        );
        silent.push(TcpStream::connect(g.metrics).unwrap());
        if silent.len() < 4 {
            continue;
        }
        std::thread::sleep(Duration::from_millis(300));
        silent.retain(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            // Nothing to read: still waiting in its slot.
            (&*s).read(&mut [0u8; 64]).is_err()
        });
    }
    let (status, _, _) = get(g.metrics, "/metrics").unwrap();
    assert_eq!(status, 503, "a fifth connection is turned away at once");
    // ...until they go; then scrapes are served again.
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(g.metrics, "/metrics").unwrap().0 != 200 {
        assert!(Instant::now() < deadline, "no slot came back:\n{}", g.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = g.scrape();
    assert!(sample(&body, r#"tgw_http_refused_total{cause="connections"}"#) >= 1.0);
}

#[test]
fn a_port_in_use_stops_tgw_at_start_saying_so() {
    let dir = Scratch::new("metrics-in-use");
    let prefix = format!("tgw-test-metrics-in-use-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    write_pcap(&dir.path("pub-in.pcap"), &[]);
    write_pcap(&dir.path("und-in.pcap"), &[]);
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = taken.local_addr().unwrap();
    let config = config(&dir, &prefix, addr);
    let mut daemon = Daemon::start(&config, &[]);
    let out = daemon
        .wait_exit(Duration::from_secs(30))
        .expect("tgw should stop at start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("[metrics] listen {addr}"))
            && stderr.contains("another process listens on that port"),
        "{stderr}"
    );
}

#[test]
fn a_real_prometheus_scrapes_the_tenants_frames_and_drops() {
    let mut input: Vec<Vec<u8>> = (40001..=40005).map(|p| syn(EIP1, p, 22)).collect();
    input.extend((41001..=41003).map(|p| syn(EIP1, p, 23)));
    input.extend((1..=4).map(|id| ping(EIP2, id, 1)));
    let mut g = Gateway::start("prometheus", &input);
    let out = g.dir.path("und-out.pcap");
    wait_for_frames(&mut g.daemon, &out, 9);
    assert_eq!(read_pcap(&out).len(), 9, "{}", g.log());

    let prom_dir = g.dir.path("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom = prometheus::Prometheus::start(&prom_dir, g.metrics);
    let limit = Duration::from_secs(20);
    for (query, want) in [
        (r#"tgw_tenant_to_tunnel_packets_total{tenant="t1"}"#, 5.0),
        (r#"tgw_tenant_to_tunnel_packets_total{tenant="t2"}"#, 4.0),
        (r#"tgw_drops_total{reason="firewall"}"#, 3.0),
        (r#"sum(tgw_tenant_flows_opened_total{tenant="t2"})"#, 4.0),
        (r#"up{job="tgw"}"#, 1.0),
    ] {
        if let Err(got) = prom.wait_for(query, want, limit) {
            panic!(
                "prometheus gives {got:?} for {query}, not {want}\ntargets: {}\n{}",
                prom.targets(),
                prom.log()
            );
        }
    }
    // Every drop reason is a series from the first scrape on.
    let reasons = prom.query("tgw_drops_total", None).len();
    assert_eq!(reasons, dataplane::DropReason::COUNT, "{}", prom.targets());
}

#[test]
fn a_silent_client_does_not_hold_tgw_up_when_it_stops() {
    let g = Gateway::start("stop", &[]);
    // Connected, saying nothing: its thread waits for a request head.
    let _silent = TcpStream::connect(g.metrics).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let out = g.daemon.terminate();
    let took = started.elapsed();
    assert!(out.status.success());
    // The head may take 5 s to come; stopping must not wait for it.
    assert!(took < Duration::from_secs(2), "tgw took {took:?} to stop");
}
