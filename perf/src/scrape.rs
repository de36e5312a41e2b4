//! What a Prometheus scrape of tgw's `/metrics` costs (issue 12): `tgw-perf
//! scrape` starts tgw with N tenants (issue 11's scale builder,
//! [`crate::changes::Scale`]) and `[metrics] listen` on a free loopback
//! port, scrapes it K times and reports the time of a scrape and the size
//! of its body; [`Scraper`] scrapes the tgw that `tgw-perf run` measures
//! at an interval, so that throughput with and without scraping can be
//! compared in one run. Goal (issue 12): ≤ 50 ms a scrape at 10k tenants.
//!
//! The client is a plain HTTP/1.1 GET over a std `TcpStream`, timed from
//! connect to the body's last byte: what Prometheus waits for.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::changes::Scale;
use crate::dut::{self, Setup};

#[derive(clap::Args, Debug)]
pub struct ScrapeArgs {
    /// Tenants in tgw's config (`t0`, `t1`, …, one tunnel host each).
    #[arg(long, default_value_t = 10_000)]
    tenants: u32,
    /// Routes in each tenant's VRF (issue 11's tenant-like routes).
    #[arg(long, default_value_t = 16)]
    routes_per_tenant: u32,
    /// Elastic IPs, spread over the tenants.
    #[arg(long, default_value_t = 0)]
    eips: u32,
    /// Scrapes measured, after one that warms up.
    #[arg(long, default_value_t = 20)]
    scrapes: u32,
    /// Pause between two scrapes, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pause_ms: u64,
    /// Seconds tgw may take to start (build its tables) and answer.
    #[arg(long, default_value_t = 120.0)]
    start_timeout: f64,
    /// Lcore of tgw's main thread (its control loop and, inheriting it,
    /// the metrics thread) and of this client; its worker takes the next.
    #[arg(long, default_value_t = 0)]
    main_lcore: u32,
    /// The tgw binary (default: next to tgw-perf, else on PATH).
    #[arg(long)]
    tgw: Option<PathBuf>,
    /// Run without hugepages.
    #[arg(long)]
    no_huge: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// How long one scrape may take before it counts as failed.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest body read: far above 10k tenants' (a few MB), low enough
/// that a runaway answer cannot take this process's memory.
const BODY_MAX: usize = 256 << 20;

pub fn run(args: &ScrapeArgs) -> Result<(), String> {
    if args.tenants == 0 || args.routes_per_tenant < 2 || args.scrapes == 0 {
        return Err("--tenants and --scrapes must be at least 1, --routes-per-tenant 2".into());
    }
    let hugepages = !args.no_huge && dut::hugepages_available();
    let dir = std::env::temp_dir().join(format!("tgw-scrape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let outcome =
        measure(args, hugepages, &dir).map_err(|e| format!("{e} (logs in {})", dir.display()));
    if let Ok(report) = &outcome {
        print!("{}", table(report));
        if let Some(path) = &args.json {
            std::fs::write(path, report.to_string() + "\n")
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if std::env::var_os("TGW_PERF_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    outcome.map(|_| ())
}

/// tgw up (timed until its first answer), a warm-up scrape, then the
/// measured ones; tgw stopped on every way out.
fn measure(args: &ScrapeArgs, hugepages: bool, dir: &std::path::Path) -> Result<Value, String> {
    let setup = Setup {
        dir: dir.to_owned(),
        sockets: [String::new(), String::new()],
        tgw: args
            .tgw
            .clone()
            .unwrap_or_else(|| dut::sibling_or_path("tgw")),
        testpmd: PathBuf::new(),
        hugepages,
        main_lcore: args.main_lcore,
        worker_lcore: args.main_lcore + 1,
        memif_devargs: String::new(),
    };
    let prefix = format!("tgw-scrape-{}", std::process::id());
    let addr = free_loopback_port()?;
    let config = tgw_config(args, &setup, &prefix, addr)?;
    let started = Instant::now();
    let mut running = setup.start_tgw(prefix, &config)?;
    // After tgw started: it checks its lcores against the affinity it
    // inherits.
    pin_this_thread(args.main_lcore);
    let result = scrapes(args, addr, &mut running, started);
    let stopped = running.stop(Duration::from_secs(30));
    let (start_seconds, first, times, bodies) = result?;
    stopped?;
    Ok(report(
        args,
        hugepages,
        start_seconds,
        first,
        &times,
        &bodies,
    ))
}

type Scrapes = (f64, Duration, Vec<Duration>, Vec<Exposition>);

/// Waits for tgw's first answer, then scrapes `args.scrapes` times more.
fn scrapes(
    args: &ScrapeArgs,
    addr: SocketAddr,
    running: &mut dut::Running,
    started: Instant,
) -> Result<Scrapes, String> {
    let limit = Duration::from_secs_f64(args.start_timeout);
    let first = loop {
        match get_metrics(addr, SCRAPE_TIMEOUT) {
            Ok(s) => break s,
            Err(e) if !running.is_running() => return Err(format!("tgw exited: {e}")),
            Err(e) if started.elapsed() > limit => {
                return Err(format!("no answer from {addr} within {limit:?}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let start_seconds = started.elapsed().as_secs_f64();
    let names: Vec<String> = (0..args.tenants).map(|i| format!("t{i}")).collect();
    let (mut times, mut bodies) = (Vec::new(), Vec::new());
    for _ in 0..args.scrapes {
        std::thread::sleep(Duration::from_millis(args.pause_ms));
        let s = get_metrics(addr, SCRAPE_TIMEOUT)?;
        times.push(s.took);
        bodies.push(Exposition::of(&s.body, &names));
    }
    Ok((start_seconds, first.took, times, bodies))
}

/// tgw's config: issue 11's scale builder's tenants on two `net_null`
/// ports that receive nothing (`no-rx`: the worker polls empty queues, so
/// what is measured is the scrape, not a flood of null frames), its own
/// EAL prefix and control socket, and `[metrics] listen` on `addr`.
fn tgw_config(
    args: &ScrapeArgs,
    setup: &Setup,
    prefix: &str,
    addr: SocketAddr,
) -> Result<String, String> {
    let mut c = Scale {
        tenants: args.tenants,
        routes_per_tenant: args.routes_per_tenant,
        public_prefixes: true,
        eips: args.eips,
        global_routes: 0,
        spare_slots: 0,
    }
    .config()?;
    c.eal.main_lcore = setup.main_lcore;
    c.workers[0].lcore = setup.worker_lcore;
    c.eal.file_prefix = prefix.to_owned();
    c.eal.hugepages = setup.hugepages;
    c.eal.in_memory = true;
    c.control.socket = setup.dir.join("tgw.sock");
    // Every tenant's tunnel host is a neighbour of the underlay port.
    c.arp.port_entries = (args.tenants + 1024).next_power_of_two();
    c.arp.entries = c.arp.port_entries * 2;
    for p in &mut c.ports {
        p.device.push_str(",no-rx=1");
    }
    c.metrics.listen = Some(addr);
    Ok(c.to_toml())
}

/// The `[metrics]` section that has tgw serve `/metrics` on `addr`, for
/// configs written as text.
pub fn metrics_section(addr: SocketAddr) -> String {
    format!("\n[metrics]\nlisten = \"{addr}\"\n")
}

/// A loopback address with a port nobody listens on now (the kernel's
/// choice; free again when this returns, for tgw to bind).
pub fn free_loopback_port() -> Result<SocketAddr, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Runs the calling thread on `lcore` only, through `taskset` on its
/// thread id (this crate has no `unsafe` for `sched_setaffinity`): the
/// client of a scrape belongs on the control side, not on the worker's
/// CPU it would slow. Best effort: unpinned, the numbers only get noisier.
pub fn pin_this_thread(lcore: u32) {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()) else {
        return;
    };
    let _ = Command::new("taskset")
        .args(["-p", "-c", &lcore.to_string(), tid])
        .stdout(std::process::Stdio::null())
        .status();
}

/// One answer of `/metrics`.
#[derive(Debug)]
pub struct Scrape {
    /// From connect to the body's last byte.
    pub took: Duration,
    pub body: String,
}

/// `GET /metrics` on `addr`: a 200 with its whole body (by
/// Content-Length, chunks, or until the server closes), else why not.
pub fn get_metrics(addr: SocketAddr, timeout: Duration) -> Result<Scrape, String> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&raw, b"\r\n\r\n") {
            break at + 4;
        }
        if raw.len() > 64 << 10 || !read_some(&mut stream, &mut raw)? {
            return Err("no complete response head".into());
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let first = head.lines().next().unwrap_or("");
        return Err(format!("answered {first:?}"));
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let mut body = raw.split_off(head_end);
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("Content-Length {len:?}"))?;
        if len > BODY_MAX {
            return Err(format!("a body of {len} bytes"));
        }
        while body.len() < len {
            if !read_some(&mut stream, &mut body)? {
                return Err(format!("body ended at {} of {len} bytes", body.len()));
            }
        }
        body.truncate(len);
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&mut stream, body)?;
    } else {
        while read_some(&mut stream, &mut body)? {}
    }
    let took = start.elapsed();
    let body = String::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    Ok(Scrape { took, body })
}

/// Reads what is there into `buf`; false at the end of the stream.
fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut chunk = [0u8; 64 << 10];
    let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
    if buf.len() + n > BODY_MAX {
        return Err("the answer is too long".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a chunked answer (RFC 9112 §7.1), `have` being what was
/// read after the head.
fn dechunk(stream: &mut TcpStream, mut have: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&have[at..], b"\r\n") {
                break at + i;
            }
            if !read_some(stream, &mut have)? {
                return Err("a chunk's size line never ended".into());
            }
        };
        let size = String::from_utf8_lossy(&have[at..line_end]);
        let size = size.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let data = line_end + 2;
        while have.len() < data + size + 2 {
            if !read_some(stream, &mut have)? {
                return Err("a chunk ended early".into());
            }
        }
        body.extend_from_slice(&have[data..data + size]);
        at = data + size + 2;
    }
}

/// What a body holds, as Prometheus counts it.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposition {
    pub bytes: usize,
    /// Sample lines.
    pub series: usize,
    /// `# TYPE` lines.
    pub families: usize,
    /// Distinct values of the `tenant` label.
    pub tenants_seen: usize,
    /// Of the tenants asked about, those no sample names.
    pub tenants_missing: usize,
    /// tgw's own account of the scrapes before this one: the sum and count
    /// of `tgw_scrape_duration_seconds`.
    pub server: Option<(f64, f64)>,
}

impl Exposition {
    /// Counts `body`'s series and families, and which of `tenants` its
    /// `tenant="…"` labels name.
    pub fn of(body: &str, tenants: &[String]) -> Exposition {
        let mut seen: HashSet<&str> = HashSet::new();
        let (mut series, mut families) = (0, 0);
        let (mut sum, mut count) = (None, None);
        for line in body.lines() {
            if let Some(v) = line.strip_prefix("tgw_scrape_duration_seconds_sum ") {
                sum = v.trim().parse().ok();
            }
            if let Some(v) = line.strip_prefix("tgw_scrape_duration_seconds_count ") {
                count = v.trim().parse().ok();
            }
            if line.starts_with("# TYPE ") {
                families += 1;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            series += 1;
            if let Some(t) = label(line, "tenant") {
                seen.insert(t);
            }
        }
        let missing = tenants
            .iter()
            .filter(|t| !seen.contains(t.as_str()))
            .count();
        Exposition {
            bytes: body.len(),
            series,
            families,
            tenants_seen: seen.len(),
            tenants_missing: missing,
            server: sum.zip(count),
        }
    }
}

/// The value of label `name` in a sample line, if it has one without
/// escapes (tenant names have none).
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let open = line.find('{')?;
    let close = line.rfind('}')?;
    let mut rest = line.get(open + 1..close)?;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let end = after.find('"')?;
        if key.trim_start_matches(',').trim() == name {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    None
}

/// The value at quantile `q` of `times` (nearest rank).
fn quantile(times: &[Duration], q: f64) -> Duration {
    let mut t = times.to_vec();
    t.sort_unstable();
    let rank = ((t.len() as f64 * q).ceil() as usize).clamp(1, t.len().max(1));
    t.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// tgw's mean time to answer, in ms, over the scrapes between the first
/// and the last body (each body counts the scrapes before it).
fn server_mean_ms(bodies: &[Exposition]) -> Option<f64> {
    let (s0, c0) = bodies.first()?.server?;
    let (s1, c1) = bodies.last()?.server?;
    (c1 > c0).then(|| (s1 - s0) / (c1 - c0) * 1e3)
}

fn report(
    args: &ScrapeArgs,
    hugepages: bool,
    start_seconds: f64,
    first: Duration,
    times: &[Duration],
    bodies: &[Exposition],
) -> Value {
    let last = bodies.last();
    let field = |f: fn(&Exposition) -> usize| last.map_or(0, f);
    json!({
        "tenants": args.tenants,
        "routes_per_tenant": args.routes_per_tenant,
        "eips": args.eips,
        "hugepages": hugepages,
        "start_seconds": start_seconds,
        "first_ms": ms(first),
        "scrapes": times.len(),
        "p50_ms": ms(quantile(times, 0.5)),
        "p99_ms": ms(quantile(times, 0.99)),
        "max_ms": ms(times.iter().copied().max().unwrap_or_default()),
        "times_ms": times.iter().map(|&t| ms(t)).collect::<Vec<_>>(),
        "server_mean_ms": server_mean_ms(bodies),
        "body_bytes": field(|b| b.bytes),
        "series": field(|b| b.series),
        "families": field(|b| b.families),
        "tenants_seen": field(|b| b.tenants_seen),
        "tenants_missing_max": bodies.iter().map(|b| b.tenants_missing).max().unwrap_or(0),
        "tenants_seen_min": bodies.iter().map(|b| b.tenants_seen).min().unwrap_or(0),
    })
}

fn table(r: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tgw /metrics · {} tenants × {} routes · {} elastic IPs · {}",
        r["tenants"],
        r["routes_per_tenant"],
        r["eips"],
        if r["hugepages"] == true {
            "hugepages"
        } else {
            "no hugepages"
        }
    );
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let _ = writeln!(
        out,
        "started and answered in {:.2} s; first scrape {:.1} ms",
        f("start_seconds"),
        f("first_ms")
    );
    let _ = writeln!(
        out,
        "scrape time over {} scrapes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal ≤ 50 ms)",
        r["scrapes"],
        f("p50_ms"),
        f("p99_ms"),
        f("max_ms")
    );
    if let Some(server) = r["server_mean_ms"].as_f64() {
        let _ = writeln!(
            out,
            "tgw's own tgw_scrape_duration_seconds: mean {server:.1} ms a scrape"
        );
    }
    let _ = writeln!(
        out,
        "body: {} bytes, {} series in {} families, {} tenants seen ({} of the config's missing)",
        r["body_bytes"], r["series"], r["families"], r["tenants_seen"], r["tenants_missing_max"]
    );
    out
}

/// Scrapes a running tgw every `interval` on a side thread (pinned to the
/// control side's lcore) until stopped: what a Prometheus server does to
/// it while `tgw-perf run` measures. Scrapes before the first answer
/// (tgw still starting) are not counted.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ScrapeTally>,
}

/// What a [`Scraper`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrapeTally {
    pub interval: f64,
    pub scrapes: u64,
    pub failures: u64,
    /// The slowest scrape, and the body size of the last, in bytes.
    pub max_ms: f64,
    pub bytes: usize,
}

impl ScrapeTally {
    pub fn json(&self) -> Value {
        json!({
            "interval_s": self.interval, "scrapes": self.scrapes,
            "failures": self.failures, "max_ms": self.max_ms, "body_bytes": self.bytes,
        })
    }
}

impl Scraper {
    pub fn start(addr: SocketAddr, interval: Duration, lcore: u32) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            pin_this_thread(lcore);
            let mut tally = ScrapeTally {
                interval: interval.as_secs_f64(),
                ..ScrapeTally::default()
            };
            let mut next = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                match get_metrics(addr, SCRAPE_TIMEOUT) {
                    Ok(s) => {
                        tally.scrapes += 1;
                        tally.max_ms = tally.max_ms.max(ms(s.took));
                        tally.bytes = s.body.len();
                    }
                    // Not up yet: try again soon, uncounted.
                    Err(_) if tally.scrapes == 0 => {
                        next += Duration::from_millis(20);
                        continue;
                    }
                    Err(_) => tally.failures += 1,
                }
                // On the interval's grid, as Prometheus scrapes: a scrape
                // longer than the interval skips a beat rather than
                // starting the next one at once.
                let now = Instant::now();
                while next <= now {
                    next += interval;
                }
            }
            tally
        });
        Scraper { stop, thread }
    }

    pub fn stop(self) -> ScrapeTally {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_series_families_and_tenants() {
        let body = "# HELP tgw_x A.\n# TYPE tgw_x counter\n\
                    tgw_x_total{tenant=\"t0\",direction=\"in\"} 1\n\
                    tgw_x_total{direction=\"out\",tenant=\"t1\"} 2\n\
                    tgw_x_total{other_tenant=\"t9\"} 2\n\
                    # TYPE tgw_up gauge\ntgw_up 1\n\
                    tgw_scrape_duration_seconds_sum 0.25\n\
                    tgw_scrape_duration_seconds_count 5\n";
        let names: Vec<String> = ["t0", "t1", "t2"].map(String::from).to_vec();
        let e = Exposition::of(body, &names);
        assert_eq!(e.series, 6);
        assert_eq!(e.server, Some((0.25, 5.0)));
        assert_eq!(e.families, 2);
        assert_eq!(e.tenants_seen, 2, "other_tenant is not tenant");
        assert_eq!(e.tenants_missing, 1);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let t: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&t, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&t, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&t[..1], 0.99), Duration::from_millis(1));
    }

    /// A server that answers once with `answer`, as raw bytes.
    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head);
            let _ = s.write_all(answer);
        });
        addr
    }

    #[test]
    fn bodies_are_read_by_length_by_chunks_and_to_the_end() {
        let t = Duration::from_secs(5);
        let by_length = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab\ncdEXTRA");
        assert_eq!(get_metrics(by_length, t).unwrap().body, "ab\ncd");
        let chunked = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\na;x=1\r\n0123456789\r\n0\r\n\r\n",
        );
        assert_eq!(get_metrics(chunked, t).unwrap().body, "ab\n0123456789");
        let closed = serve_once(b"HTTP/1.1 200 OK\r\n\r\nall of it");
        assert_eq!(get_metrics(closed, t).unwrap().body, "all of it");
        let missing = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert!(get_metrics(missing, t).unwrap_err().contains("404"));
    }
}
