//! A real Prometheus server for tests (Debian's `prometheus`, which
//! scripts/setup installs): started on a loopback port of its own with
//! its TSDB in the test's scratch directory and a scrape config with a
//! 1 s interval pointing at tgw, killed by its PID when dropped (a
//! failing test too), and asked through its HTTP API (`/api/v1/query`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The server; killed and reaped when dropped.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// Starts one in `dir` (its config, TSDB and log go there) scraping
    /// `/metrics` of `target` every second; returns once it answers.
    pub fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tgw\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus (Debian's prometheus package; scripts/setup installs it)");
        let mut p = Prometheus { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_get(addr, "/-/ready").is_ok_and(|(s, _)| s == 200) {
            assert!(
                p.child.try_wait().unwrap().is_none(),
                "prometheus exited:\n{}",
                p.log()
            );
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Waits (bounded) until Prometheus has tried its target once (`up`
    /// has a sample, 0 if nothing listens yet): its scrape loop starts
    /// some seconds after it is ready (service discovery hands targets
    /// over at most every 5 s), and a short run would miss its start.
    pub fn wait_scraping(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.query(r#"up{job="tgw"}"#, None).is_empty() {
            assert!(
                Instant::now() < deadline,
                "prometheus never scraped its target:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/api/v1/query` of `promql` (at `time`, Unix seconds, if given):
    /// the result vector's samples as (labels, value).
    pub fn query(&self, promql: &str, time: Option<f64>) -> Vec<(Value, f64)> {
        let mut path = format!("/api/v1/query?query={}", encode(promql));
        if let Some(t) = time {
            path.push_str(&format!("&time={t:.3}"));
        }
        let (status, body) = http_get(self.addr, &path).expect("query prometheus");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(status, 200, "{promql}: {body}");
        assert_eq!(v["status"], "success", "{promql}: {body}");
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: not a vector: {body}"))
            .iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), value)
            })
            .collect()
    }

    /// `/api/v1/query_range` of `promql` from `start` to `end` (Unix
    /// seconds) every `step` seconds: the values of its one series (none
    /// if it gives none).
    pub fn query_range(&self, promql: &str, start: f64, end: f64, step: f64) -> Vec<f64> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            encode(promql)
        );
        let (status, body) = http_get(self.addr, &path).expect("query prometheus");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(status, 200, "{promql}: {body}");
        let series = v["data"]["result"].as_array().cloned().unwrap_or_default();
        assert!(series.len() <= 1, "{promql}: more than one series: {body}");
        series
            .first()
            .and_then(|s| s["values"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p[1].as_str()?.parse().ok())
            .collect()
    }

    /// The one value `promql` gives, if it gives exactly one.
    pub fn value(&self, promql: &str, time: Option<f64>) -> Option<f64> {
        match self.query(promql, time).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Waits (bounded) until `promql` gives exactly `want`; the value it
    /// last gave otherwise, for the failure message.
    pub fn wait_for(&self, promql: &str, want: f64, limit: Duration) -> Result<(), Option<f64>> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.value(promql, None);
            if got == Some(want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(got);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The target's health as Prometheus last saw it (`up`, `lastError`).
    pub fn targets(&self) -> String {
        http_get(self.addr, "/api/v1/targets")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Our own child, by its PID: never anything found by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter (RFC 3986 unreserved kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A GET over a fresh connection: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// A chunked body (Go's server sends one when it does not know the
/// length ahead).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
