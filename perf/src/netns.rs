//! Network namespaces for tests: real Linux hosts on one machine, and
//! everything made for them removed again.
//!
//! A [`Netns`] creates uniquely named namespaces (`tgwt-PID-TAG-NAME`: the
//! test process's PID and the test's tag, so tests and test binaries can
//! run side by side), veth pairs created directly inside them (nothing ever
//! appears in the caller's namespace), runs commands in them through
//! `ip netns exec` with a time limit, and starts long-running processes
//! there. On drop, even when the test panics, it kills the processes it
//! started (by their PID, through their `Child`), then deletes its
//! namespaces, which takes their veths with them, and its scratch
//! directory. Namespaces left by a test process that no longer exists
//! (killed before it could drop) are deleted by the next `Netns::new`.
//!
//! Standard library only, so that any test crate can include it:
//! `#[path = "../perf/src/netns.rs"] mod netns;`. `tgw-perf scenario` uses
//! it as a module of its own, so the guard that cleans up after a test is
//! the one that cleans up after the demo.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Prefix of every namespace made here.
const PREFIX: &str = "tgwt-";
/// How long a command run with [`Netns::run`] may take.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long a stopped process gets to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Why a test cannot have namespaces here: it should say so and skip.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// A process started in a namespace with [`Netns::spawn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcId(usize);

struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Set once it has been waited for.
    status: Option<ExitStatus>,
}

/// What a stopped process left: its exit status, stdout and stderr.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub struct Netns {
    base: String,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    dir: PathBuf,
}

impl Netns {
    /// Namespaces for the test `tag`, or why there can be none: not root,
    /// or the kernel or `ip` cannot make a namespace. Anything else that
    /// goes wrong later is a test failure, not a reason to skip.
    pub fn new(tag: &str) -> Result<Netns, Unavailable> {
        if effective_uid() != Some(0) {
            return Err(Unavailable("not root: network namespaces need root".into()));
        }
        remove_stale();
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("{PREFIX}{pid}-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let mut net = Netns {
            base: format!("{PREFIX}{pid}-{tag}-"),
            namespaces: Vec::new(),
            procs: Vec::new(),
            dir,
        };
        // The first namespace is the probe: if it cannot be made, nothing
        // can.
        let probe = format!("{}probe", net.base);
        match run_limited(Command::new("ip").args(["netns", "add", &probe]), RUN_LIMIT) {
            Ok(out) if out.status.success() => {
                net.namespaces.push(probe.clone());
                net.delete(&probe);
                Ok(net)
            }
            Ok(out) => Err(Unavailable(format!(
                "`ip netns add` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
            Err(e) => panic!("cannot run `ip` (scripts/setup installs iproute2): {e}"),
        }
    }

    /// A scratch file path, removed with the rest on drop.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the namespace `name` (the real name is returned: use it
    /// with every other call), with its loopback up.
    pub fn add(&mut self, name: &str) -> String {
        let full = format!("{}{name}", self.base);
        self.cmd_ok(&["ip", "netns", "add", &full]);
        self.namespaces.push(full.clone());
        self.run_ok(&full, &["ip", "link", "set", "lo", "up"]);
        full
    }

    /// A veth pair between two namespaces made here, created inside them:
    /// `a_if` in `a`, `b_if` in `b`, both up.
    pub fn veth(&mut self, a: &str, a_if: &str, b: &str, b_if: &str) {
        self.cmd_ok(&[
            "ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        self.run_ok(a, &["ip", "link", "set", a_if, "up"]);
        self.run_ok(b, &["ip", "link", "set", b_if, "up"]);
    }

    /// Runs `args` in namespace `ns`, waiting at most [`RUN_LIMIT`] (the
    /// process is killed then, and the test fails).
    pub fn run(&self, ns: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        run_limited(&mut cmd, RUN_LIMIT)
            .unwrap_or_else(|e| panic!("in {ns}: {}: {e}", args.join(" ")))
    }

    /// [`Netns::run`], with an error instead of a panic when `args` cannot
    /// be started or is still running after `limit` (it is killed then).
    pub fn try_run(&self, ns: &str, args: &[&str], limit: Duration) -> std::io::Result<Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        run_limited(&mut cmd, limit)
    }

    /// [`Netns::run`], failing the test unless it succeeds; its stdout.
    pub fn run_ok(&self, ns: &str, args: &[&str]) -> String {
        let out = self.run(ns, args);
        assert!(
            out.status.success(),
            "in {ns}: {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `args` in namespace `ns`, stdout and stderr to files. `ip
    /// netns exec` execs the command in place, so the child's PID is the
    /// command's own.
    pub fn spawn(&mut self, ns: &str, name: &str, args: &[&str]) -> ProcId {
        let n = self.procs.len();
        let stdout = self.dir.join(format!("{n}-{name}.out"));
        let stderr = self.dir.join(format!("{n}-{name}.err"));
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", args.join(" ")));
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        });
        ProcId(n)
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self, id: ProcId) -> String {
        std::fs::read_to_string(&self.procs[id.0].stderr).unwrap_or_default()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self, id: ProcId) -> String {
        std::fs::read_to_string(&self.procs[id.0].stdout).unwrap_or_default()
    }

    /// Waits until the process has written `needle` to stdout or stderr;
    /// fails the test if it exits first or `limit` passes.
    pub fn wait_for_output(&mut self, id: ProcId, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.stdout(id).contains(needle) || self.stderr(id).contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.procs[id.0].child.try_wait() {
                self.procs[id.0].status = Some(status);
                panic!(
                    "{} exited ({status}) before saying {needle:?}:\n{}{}",
                    self.procs[id.0].name,
                    self.stdout(id),
                    self.stderr(id)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not say {needle:?} within {limit:?}:\n{}{}",
                self.procs[id.0].name,
                self.stdout(id),
                self.stderr(id)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `limit`) for the process to exit by itself.
    pub fn wait(&mut self, id: ProcId, limit: Duration) -> Stopped {
        let deadline = Instant::now() + limit;
        loop {
            let p = &mut self.procs[id.0];
            if let Some(status) = p.status {
                return self.stopped(id, status);
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                p.status = Some(status);
                continue;
            }
            if Instant::now() >= deadline {
                let _ = p.child.kill();
                p.status = p.child.wait().ok();
                panic!(
                    "{} did not finish within {limit:?}; killed:\n{}{}",
                    self.procs[id.0].name,
                    self.stdout(id),
                    self.stderr(id)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the process (by its PID), then [`Netns::wait`] for it.
    pub fn stop(&mut self, id: ProcId) -> Stopped {
        self.signal(id, "TERM");
        self.wait(id, STOP_LIMIT)
    }

    /// Sends signal `sig` (a name `kill` knows: `HUP`, `TERM`) to the
    /// process by its PID, if it still runs; whether it was sent.
    pub fn signal(&mut self, id: ProcId, sig: &str) -> bool {
        let p = &mut self.procs[id.0];
        if p.status.is_some() || !matches!(p.child.try_wait(), Ok(None)) {
            return false;
        }
        let pid = p.child.id().to_string();
        let sig = format!("-{sig}");
        run_limited(Command::new("kill").args([sig.as_str(), &pid]), RUN_LIMIT)
            .is_ok_and(|o| o.status.success())
    }

    fn stopped(&self, id: ProcId, status: ExitStatus) -> Stopped {
        Stopped {
            status,
            stdout: self.stdout(id),
            stderr: self.stderr(id),
        }
    }

    /// A command in the caller's namespace (only `ip` that targets ours).
    fn cmd_ok(&self, args: &[&str]) {
        let out = run_limited(Command::new(args[0]).args(&args[1..]), RUN_LIMIT)
            .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
        assert!(
            out.status.success(),
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn delete(&mut self, ns: &str) {
        let _ = run_limited(Command::new("ip").args(["netns", "del", ns]), RUN_LIMIT);
        self.namespaces.retain(|n| n != ns);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if p.status.is_none() {
                // Only our own children, by their PID: SIGKILL, then reap.
                let _ = p.child.kill();
                p.status = p.child.wait().ok();
            }
        }
        for ns in std::mem::take(&mut self.namespaces) {
            let _ = run_limited(Command::new("ip").args(["netns", "del", &ns]), RUN_LIMIT);
        }
        if std::env::var_os("TGW_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `cmd` with its output collected, killing it after `limit`.
fn run_limited(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Readers on their own threads, so a chatty command cannot block on a
    // full pipe while we wait for it.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || read_all(&mut out));
    let err = std::thread::spawn(move || read_all(&mut err));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("still running after {limit:?}; killed"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn read_all(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Deletes the namespaces and scratch directories made here by test
/// processes that no longer exist.
fn remove_stale() {
    let dead = |name: &str| {
        name.strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten().take(10_000) {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                let _ = run_limited(Command::new("ip").args(["netns", "del", &name]), RUN_LIMIT);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten().take(100_000) {
            if dead(&e.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
