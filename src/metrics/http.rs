//! The `/metrics` endpoint: a small HTTP/1.1 server on std's
//! `TcpListener`, off the workers and off the control loop.
//!
//! One thread accepts; each connection gets a thread of its own, at most
//! [`Limits::connections`] at once (one more is answered 503 and closed).
//! A connection carries one request (`Connection: close`): its head must
//! come whole within [`Limits::head`] bytes and [`Limits::read`], and its
//! answer be taken within [`Limits::write`], so a slow or stuck client
//! holds its slot for a bounded time. The report comes from the control
//! loop through an [`Asker`]; the text is rendered here, on the
//! connection's thread.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use tracing::{debug, warn};

use crate::logs::Throttle;
use crate::report::{AskError, Asker};

/// The endpoint's bounds; [`Limits::default`] is what the daemon uses,
/// tests shorten the times.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// The longest request head (request line and headers).
    pub head: usize,
    /// How long the whole request head may take to arrive.
    pub read: Duration,
    /// How long the whole answer may take to be sent.
    pub write: Duration,
    /// How long to wait for the control loop's report.
    pub report: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 4,
            head: 8192,
            read: Duration::from_secs(5),
            write: Duration::from_secs(30),
            report: Duration::from_secs(5),
        }
    }
}

/// The endpoint's own counters, in the `prometheus` crate's registry
/// (they are written by the endpoint's threads only).
#[derive(Clone)]
struct Own {
    registry: Registry,
    scrapes: IntCounter,
    failures: IntCounterVec,
    refused: IntCounterVec,
    duration: Histogram,
}

impl Own {
    fn new() -> Own {
        let scrapes = IntCounter::new("tgw_scrapes_total", "Scrapes of /metrics answered.")
            .expect("a valid name");
        let failures = IntCounterVec::new(
            Opts::new(
                "tgw_scrape_failures_total",
                "Scrapes of /metrics not answered, by cause: busy or timeout (no report from the control loop, 503), write (the client did not take the answer).",
            ),
            &["cause"],
        )
        .expect("a valid name");
        let refused = IntCounterVec::new(
            Opts::new(
                "tgw_http_refused_total",
                "HTTP requests to the metrics endpoint refused, by cause: connections (503), bad_request (400), too_large (431), not_found (404), method (405), slow (the head did not come in time).",
            ),
            &["cause"],
        )
        .expect("a valid name");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "tgw_scrape_duration_seconds",
                "Time to answer a scrape: the report, its rendering and sending it.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid buckets");
        let registry = Registry::new();
        for c in [
            Box::new(scrapes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(refused.clone()),
            Box::new(duration.clone()),
        ] {
            registry.register(c).expect("unique names");
        }
        // Every cause from the first scrape, zeros included.
        for cause in ["busy", "timeout", "write"] {
            failures.with_label_values(&[cause]);
        }
        for cause in [
            "connections",
            "bad_request",
            "too_large",
            "not_found",
            "method",
            "slow",
        ] {
            refused.with_label_values(&[cause]);
        }
        Own {
            registry,
            scrapes,
            failures,
            refused,
            duration,
        }
    }
}

/// The endpoint's own families as text, as a first scrape shows them
/// (for the test that holds docs/metrics.md to the code).
#[cfg(test)]
pub(super) fn own_families_for_docs() -> String {
    super::encode(&Own::new().registry.gather())
}

/// The listening endpoint; stopped, and its threads joined, when dropped.
pub struct Endpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Listens on `addr` and serves reports from `asker`. A bind failure
    /// (the port in use, an address this host does not have) is the
    /// caller's to report.
    pub fn bind(addr: SocketAddr, asker: Asker, limits: Limits) -> io::Result<Endpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("tgw-metrics".into())
                .spawn(move || accept(&listener, &asker, limits, &stop))?
        };
        Ok(Endpoint {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The acceptor sleeps in accept(): a connection wakes it to see
        // `stop`. If none can be made it is left to end with the process.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

/// The acceptor: gives each client a thread of its own, or refuses it;
/// when stopped, waits for the connections it started (each bounded by
/// its [`Limits`]).
fn accept(listener: &TcpListener, asker: &Asker, limits: Limits, stop: &AtomicBool) {
    let own = Own::new();
    let active = Arc::new(AtomicUsize::new(0));
    // Each connection's thread, and its socket to shut when stopping: a
    // client that says nothing would otherwise hold tgw's exit for the
    // head's whole deadline.
    let mut threads: Vec<(JoinHandle<()>, Option<TcpStream>)> =
        Vec::with_capacity(limits.connections);
    // A client can cause this as often as it connects.
    let mut failing = Throttle::per_minute();
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, say: do not spin on it.
                if let Some(suppressed) = failing.admit(Instant::now()) {
                    warn!(suppressed, "metrics endpoint: accept: {e}");
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        threads.retain(|(t, _)| !t.is_finished());
        if active.load(Ordering::Acquire) >= limits.connections {
            own.refused.with_label_values(&["connections"]).inc();
            // One short answer into an empty socket buffer.
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                b"too many connections to the metrics endpoint; retry later\n",
                Instant::now() + Duration::from_secs(1),
            );
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(&active));
        let (asker, own) = (asker.clone(), own.clone());
        let shut = stream.try_clone().ok();
        let spawned = std::thread::Builder::new()
            .name("tgw-metrics-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(stream, &asker, &own, limits);
            });
        match spawned {
            Ok(t) => threads.push((t, shut)),
            Err(e) => {
                if let Some(suppressed) = failing.admit(Instant::now()) {
                    warn!(
                        suppressed,
                        "metrics endpoint: cannot start a connection thread: {e}"
                    );
                }
            }
        }
    }
    for (t, shut) in threads {
        if let Some(s) = shut {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let _ = t.join();
    }
}

/// A connection's place among [`Limits::connections`], given back when
/// its thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// `GET /metrics` (`head`: `HEAD /metrics`, the same without a body).
    Metrics {
        head: bool,
    },
    NotFound,
    Method,
    BadRequest,
}

/// Why no request could be read.
enum ReadFail {
    TooLarge,
    Slow,
    Gone,
}

/// One connection, one request.
fn serve(mut stream: TcpStream, asker: &Asker, own: &Own, limits: Limits) {
    let start = Instant::now();
    let head = match read_head(&mut stream, limits.head, start + limits.read) {
        Ok(head) => head,
        Err(ReadFail::TooLarge) => {
            own.refused.with_label_values(&["too_large"]).inc();
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request head too large\n",
                start + limits.write,
            );
            return;
        }
        Err(ReadFail::Slow) => {
            own.refused.with_label_values(&["slow"]).inc();
            return;
        }
        Err(ReadFail::Gone) => return,
    };
    let deadline = Instant::now() + limits.write;
    let (status, body): (&str, &[u8]) = match parse(&head) {
        Ask::Metrics { head } => {
            scrape(&mut stream, asker, own, limits, head, start);
            return;
        }
        Ask::NotFound => {
            own.refused.with_label_values(&["not_found"]).inc();
            ("404 Not Found", b"tgw serves /metrics only\n")
        }
        Ask::Method => {
            own.refused.with_label_values(&["method"]).inc();
            ("405 Method Not Allowed", b"/metrics takes GET\n")
        }
        Ask::BadRequest => {
            own.refused.with_label_values(&["bad_request"]).inc();
            ("400 Bad Request", b"not an HTTP/1 request\n")
        }
    };
    let _ = respond(&mut stream, status, "text/plain", body, deadline);
}

/// Answers `GET /metrics`: a fresh report, rendered, sent.
fn scrape(
    stream: &mut TcpStream,
    asker: &Asker,
    own: &Own,
    limits: Limits,
    head: bool,
    start: Instant,
) {
    let report = match asker.report(limits.report) {
        Ok(report) => report,
        Err(e) => {
            let cause = match e {
                AskError::Busy => "busy",
                AskError::Timeout => "timeout",
            };
            own.failures.with_label_values(&[cause]).inc();
            let _ = respond(
                stream,
                "503 Service Unavailable",
                "text/plain",
                format!("{e}\n").as_bytes(),
                Instant::now() + limits.write,
            );
            return;
        }
    };
    let asked = Instant::now();
    let text = super::render(&report, &own.registry.gather());
    drop(report);
    let rendered = Instant::now();
    let body = if head { &b""[..] } else { text.as_bytes() };
    let sent = respond_sized(
        stream,
        "200 OK",
        super::CONTENT_TYPE,
        body,
        text.len(),
        Instant::now() + limits.write,
    );
    match sent {
        Ok(()) => {
            own.scrapes.inc();
            own.duration.observe(start.elapsed().as_secs_f64());
            debug!(
                report_ms = (asked - start).as_secs_f64() * 1e3,
                render_ms = (rendered - asked).as_secs_f64() * 1e3,
                send_ms = rendered.elapsed().as_secs_f64() * 1e3,
                bytes = text.len(),
                "metrics endpoint: scrape answered"
            );
        }
        Err(e) => {
            debug!("metrics endpoint: the client did not take its answer: {e}");
            own.failures.with_label_values(&["write"]).inc();
        }
    }
}

/// Reads up to the blank line that ends a request head, within `max`
/// bytes and by `deadline`. What follows the head (a body) is ignored.
fn read_head(stream: &mut TcpStream, max: usize, deadline: Instant) -> Result<Vec<u8>, ReadFail> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ReadFail::Slow)?;
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| ReadFail::Gone)?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(ReadFail::Gone),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ReadFail::Slow)
            }
            Err(_) => return Err(ReadFail::Gone),
        };
        // Look for the end from just before the new bytes, in case the
        // blank line straddles two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(head);
        }
        if head.len() > max {
            return Err(ReadFail::TooLarge);
        }
    }
}

/// Where the head's blank line ends (`\r\n\r\n`, or a bare `\n\n`).
fn find_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

/// What the request line asks for.
fn parse(head: &[u8]) -> Ask {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Ask::BadRequest;
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Ask::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Ask::BadRequest;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Ask::NotFound;
    }
    match method {
        "GET" => Ask::Metrics { head: false },
        "HEAD" => Ask::Metrics { head: true },
        _ => Ask::Method,
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    deadline: Instant,
) -> io::Result<()> {
    respond_sized(stream, status, content_type, body, body.len(), deadline)
}

/// Sends a whole answer (its `Content-Length` is `length`, `body` is what
/// goes out: empty for HEAD) by `deadline`.
fn respond_sized(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    length: usize,
    deadline: Instant,
) -> io::Result<()> {
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n{allow}Connection: close\r\n\r\n"
    );
    write_by(stream, head.as_bytes(), deadline)?;
    write_by(stream, body, deadline)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Writes `bytes` in pieces, each given what is left of the time.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    const PIECE: usize = 64 * 1024;
    while !bytes.is_empty() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(ErrorKind::TimedOut, "the client is too slow"))?;
        stream.set_write_timeout(Some(left))?;
        match stream.write(&bytes[..bytes.len().min(PIECE)]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_names_what_is_served() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ask::Metrics { head: false }
        );
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Ask::Metrics { head: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Ask::Metrics { head: true }
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Ask::NotFound);
        assert_eq!(parse(b"GET /metricsx HTTP/1.1\r\n\r\n"), Ask::NotFound);
        assert_eq!(parse(b"POST /metrics HTTP/1.1\r\n\r\n"), Ask::Method);
        assert_eq!(parse(b"GET /metrics\r\n\r\n"), Ask::BadRequest);
        assert_eq!(parse(b"GET /metrics HTTP/2\r\n\r\n"), Ask::BadRequest);
        assert_eq!(parse(b"\xff\xfe\r\n\r\n"), Ask::BadRequest);
    }

    #[test]
    fn the_head_ends_at_its_blank_line() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
