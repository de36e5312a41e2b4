//! What the daemon tests share: scratch directories and DPDK runtime files
//! removed even when a test fails, the daemon as a child process killed on
//! drop, and pcap files read and written with pcap-file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

pub mod reference;

pub const TGW: &str = env!("CARGO_BIN_EXE_tgw");

/// `tgw --config PATH --check`, run to its end.
pub fn check(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(TGW)
        .arg("--config")
        .arg(path)
        .arg("--check")
        .output()
        .expect("run tgw --check")
}

/// `python3 -c SEND DEV HEX...`: sends each frame (hex) on DEV through an
/// AF_PACKET socket, in a network namespace the test made.
pub const SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for h in sys.argv[2:]:
    s.send(bytes.fromhex(h))
"#;

/// A scratch directory removed on drop, even when the test fails.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tgw-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop, so that a failing test leaves nothing
/// running.
pub struct Daemon(Option<Child>);

impl Daemon {
    pub fn start(config: &Path, extra: &[&str]) -> Daemon {
        let child = Command::new(TGW)
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tgw");
        Daemon(Some(child))
    }

    /// The same with stderr (the log) going to `log`, which the test can
    /// read while tgw runs, and `env` added to the environment; the
    /// `Output` of [`Daemon::terminate`] then has no stderr.
    pub fn start_logged(config: &Path, extra: &[&str], log: &Path, env: &[(&str, &str)]) -> Daemon {
        let child = Command::new(TGW)
            .arg("--config")
            .arg(config)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("create the log file"))
            .spawn()
            .expect("start tgw");
        Daemon(Some(child))
    }

    /// The same with stdout and stderr going to files: for configs whose
    /// counters at exit (hundreds of tenants) would fill a pipe nobody
    /// reads until tgw exits.
    pub fn start_to_files(config: &Path, extra: &[&str], stdout: &Path, stderr: &Path) -> Daemon {
        let child = Command::new(TGW)
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdout(std::fs::File::create(stdout).expect("create the stdout file"))
            .stderr(std::fs::File::create(stderr).expect("create the log file"))
            .spawn()
            .expect("start tgw");
        Daemon(Some(child))
    }

    /// Waits (bounded) for tgw to exit by itself; `None` if it is still
    /// running after `timeout` (it is then killed on drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Output> {
        let deadline = Instant::now() + timeout;
        while self.running() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0.take().map(|c| c.wait_with_output().unwrap())
    }

    pub fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// SIGTERM, then wait (bounded) for the exit and its output.
    pub fn terminate(mut self) -> Output {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tgw did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(file).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(mut r) = PcapReader::new(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.into_owned());
    }
    out
}

/// Waits until `path` holds `n` frames, the time is up, or tgw is gone.
pub fn wait_for_frames(daemon: &mut Daemon, path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_pcap(path).len() < n && Instant::now() < deadline && daemon.running() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runtime files a daemon with a file prefix leaves (EAL keeps them so a
/// restart can reclaim them); removed after the test.
pub struct PrefixFiles(pub String);

impl Drop for PrefixFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.0));
        if let Ok(entries) = std::fs::read_dir("/dev/hugepages") {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}map_", self.0))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// `tgwctl`, ctl's binary: cargo gives no `CARGO_BIN_EXE_` for another
/// package's binary, so it is taken from beside `tgw` (`cargo test
/// --workspace` builds both). A tgwctl older than ctl's sources would
/// test old code: refused, saying how to rebuild.
pub fn tgwctl() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| fresh_ctl_binary("tgwctl")).clone()
}

/// `tgw-setup`, ctl's other binary, found and checked as [`tgwctl`] is.
pub fn tgw_setup() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| fresh_ctl_binary("tgw-setup"))
        .clone()
}

fn fresh_ctl_binary(name: &str) -> PathBuf {
    let path = Path::new(TGW).with_file_name(name);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: build it with `cargo build -p ctl` (in the same profile) \
                 or run `cargo test --workspace`, which builds every binary",
                path.display()
            )
        });
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("ctl/src");
    let mut todo = vec![src];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > built)
            {
                panic!(
                    "{} is older than {}: rebuild it (`cargo build -p ctl`, or run \
                     `cargo test --workspace`)",
                    path.display(),
                    p.display()
                );
            }
        }
    }
    path
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
