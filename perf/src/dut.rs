//! Devices under test: tgw, or dpdk-testpmd as the baseline, each started
//! as a memif client of the generator, on the same lcores.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::profile::Profile;

/// Which forwarder is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Tgw,
    Testpmd,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Tgw => "tgw",
            Device::Testpmd => "testpmd-macswap",
        }
    }
}

/// Where and how the devices run.
pub struct Setup {
    pub dir: PathBuf,
    pub sockets: [String; 2],
    pub tgw: PathBuf,
    pub testpmd: PathBuf,
    pub hugepages: bool,
    /// Lcore of the device's main thread and of its forwarding worker.
    pub main_lcore: u32,
    pub worker_lcore: u32,
    /// Added to the memif devices `run` measures, both devices alike
    /// (",rsize=12": rings of 4096 slots).
    pub memif_devargs: String,
}

/// A running device.
pub struct Running {
    device: Device,
    prefix: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stats_json: Option<PathBuf>,
    /// tgw's control socket, where `start` gave it one.
    pub control: Option<PathBuf>,
    /// Where its output goes: a device that fails says why there.
    log: PathBuf,
}

/// The memif bench both `run` and `ndr` measure on: which binaries, which
/// lcores, hugepages and ring size.
#[derive(clap::Args, Debug)]
pub struct Bench {
    /// The tgw binary (default: next to tgw-perf, else on PATH).
    #[arg(long)]
    pub tgw: Option<PathBuf>,
    /// The testpmd binary.
    #[arg(long, default_value = "dpdk-testpmd")]
    pub testpmd: PathBuf,
    /// Lcore of the generator (and of the devices' main thread).
    #[arg(long, default_value_t = 0)]
    pub gen_lcore: u32,
    /// Lcore of the device's forwarding worker.
    #[arg(long, default_value_t = 1)]
    pub worker_lcore: u32,
    /// Run without hugepages (functional only: numbers are not comparable).
    #[arg(long)]
    pub no_huge: bool,
    /// Ring size of the memif links as log2 of the slots (the PMD's
    /// default is 10, 1024 slots), for both devices: the device's RX ring
    /// is where a frame is lost when the device falls behind (a NIC's is
    /// often 4096, 12), and longer rings absorb the generator's absences
    /// when something shares its lcore.
    #[arg(long, value_parser = clap::value_parser!(u8).range(8..=14))]
    pub memif_rsize: Option<u8>,
}

impl Bench {
    /// The setup these options name, its sockets in a directory `what`-PID.
    pub fn setup(&self, what: &str) -> Result<Setup, String> {
        Setup::new(
            what,
            hugepages_unless(self.no_huge),
            self.tgw.clone(),
            self.testpmd.clone(),
            (self.gen_lcore, self.worker_lcore),
            self.memif_rsize,
        )
    }
}

impl Setup {
    /// A setup whose memif sockets live in a fresh directory named
    /// `what`-PID under the temporary directory; tgw is `tgw` or the one
    /// beside this executable. `hugepages: false` runs the devices with
    /// `--no-huge`.
    pub fn new(
        what: &str,
        hugepages: bool,
        tgw: Option<PathBuf>,
        testpmd: PathBuf,
        (main_lcore, worker_lcore): (u32, u32),
        memif_rsize: Option<u8>,
    ) -> Result<Setup, String> {
        let dir = std::env::temp_dir().join(format!("{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let sock = |i| dir.join(format!("memif{i}.sock")).display().to_string();
        Ok(Setup {
            sockets: [sock(0), sock(1)],
            tgw: tgw.unwrap_or_else(|| sibling_or_path("tgw")),
            testpmd,
            hugepages,
            main_lcore,
            worker_lcore,
            memif_devargs: memif_rsize.map_or(String::new(), |r| format!(",rsize={r}")),
            dir,
        })
    }

    /// Starts `device`; `round` keeps file prefixes unique. tgw serves
    /// /metrics on `metrics` if given.
    pub fn start(
        &self,
        device: Device,
        round: u32,
        profile: &Profile,
        metrics: Option<SocketAddr>,
        offload: bool,
    ) -> Result<Running, String> {
        let scraped = if metrics.is_some() { "-scraped" } else { "" };
        let shadow = if offload { "-shadow" } else { "" };
        let prefix = format!(
            "tgw-perf-{}-{}-{round}{scraped}{shadow}",
            std::process::id(),
            device.name()
        );
        match device {
            Device::Tgw => {
                let mut config = self.tgw_config(&prefix, profile);
                if let Some(addr) = metrics {
                    config += &crate::scrape::metrics_section(addr);
                }
                // Offload off unless measured in shadow mode: the virtual
                // ports have no flow API, so auto would be off too.
                let mode = if offload { "shadow" } else { "off" };
                config += &format!("\n[offload]\nmode = \"{mode}\"\n");
                // Asked for its counters when the window starts.
                let control = self.dir.join(format!("{prefix}.sock"));
                config += &format!("\n[control]\nsocket = \"{}\"\n", control.display());
                let mut running = self.start_tgw(prefix, &config)?;
                running.control = Some(control);
                Ok(running)
            }
            Device::Testpmd => {
                let log_path = self.dir.join(format!("{prefix}.log"));
                let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
                let log2 = log.try_clone().map_err(|e| e.to_string())?;
                let mut cmd = Command::new(&self.testpmd);
                cmd.arg("-l")
                    .arg(format!("{},{}", self.main_lcore, self.worker_lcore))
                    .arg("--main-lcore")
                    .arg(self.main_lcore.to_string())
                    .arg("--no-pci")
                    .arg(format!("--file-prefix={prefix}"))
                    .arg("--log-level=pmd.net.memif:error");
                // --no-huge implies legacy memory, which --in-memory refuses.
                if self.hugepages {
                    cmd.arg("--in-memory");
                } else {
                    cmd.args(["--no-huge", "--no-shconf", "-m", "512"]);
                }
                for (i, sock) in self.sockets.iter().enumerate() {
                    cmd.arg(format!(
                        "--vdev=net_memif{i},role=client,socket={sock},socket-abstract=no,id=0{}",
                        self.memif_devargs
                    ));
                }
                // testpmd sizes its pool for 32 ports by default (338 MB),
                // more than --no-huge's 512 MB holds with everything else;
                // tgw's own pool is as big as this one.
                cmd.args([
                    "--",
                    "--total-num-mbufs=16383",
                    // tgw's burst, so that both move frames as many at a
                    // time (testpmd's default is 32).
                    format!("--burst={}", rte::BURST).as_str(),
                    "--forward-mode=macswap",
                    "--nb-cores=1",
                    "--rxq=1",
                    "--txq=1",
                    "--auto-start",
                ]);
                // testpmd without -i forwards until a line arrives on stdin.
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(log)
                    .stderr(log2)
                    .spawn()
                    .map_err(|e| {
                        format!(
                            "cannot start {}: {e} (apt-get install dpdk)",
                            self.testpmd.display()
                        )
                    })?;
                let stdin = child.stdin.take();
                Ok(Running {
                    device,
                    prefix,
                    child,
                    stdin,
                    stats_json: None,
                    control: None,
                    log: log_path,
                })
            }
        }
    }

    /// Starts tgw with `config` (whose `[eal] file_prefix` is `prefix`),
    /// writing its counters as JSON when it stops.
    pub fn start_tgw(&self, prefix: String, config: &str) -> Result<Running, String> {
        let log_path = self.dir.join(format!("{prefix}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let path = self.dir.join(format!("{prefix}.toml"));
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        let stats = self.dir.join(format!("{prefix}.json"));
        let child = Command::new(&self.tgw)
            .arg("--config")
            .arg(&path)
            .arg("--stats-json")
            .arg(&stats)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.tgw.display()))?;
        Ok(Running {
            device: Device::Tgw,
            prefix,
            child,
            stdin: None,
            stats_json: Some(stats),
            control: None,
            log: log_path,
        })
    }

    /// The `[eal]`, `[mempool]`, ports and worker of a tgw config: two
    /// memif client ports, the one facing the generator's sender first,
    /// `devargs` (",rsize=12") added to their devices.
    pub fn tgw_base_config(&self, prefix: &str, public_first: bool, devargs: &str) -> String {
        let memif = |index: usize| {
            format!(
                "net_memif{index},role=client,socket={sock},socket-abstract=no,id=0{devargs}",
                sock = self.sockets[index],
            )
        };
        self.tgw_config_on(prefix, public_first, [memif(0), memif(1)])
    }

    /// The same on any two devices: `devices[0]` the port facing the
    /// sender (the public port, or the underlay's with `public_first`
    /// false), `devices[1]` the other.
    pub fn tgw_config_on(&self, prefix: &str, public_first: bool, devices: [String; 2]) -> String {
        let (first, second) = if public_first {
            ("pub0", "und0")
        } else {
            ("und0", "pub0")
        };
        let port = |name: &str, index: usize| {
            let (role, addr, mac) = match name {
                "pub0" => ("public", "1.1.1.1/24", "02:00:00:00:00:01"),
                _ => ("underlay", "172.16.0.1/16", "02:00:00:00:01:01"),
            };
            format!(
                "[[port]]\nname = \"{name}\"\ndevice = \"{device}\"\nrole = \"{role}\"\nmac = \"{mac}\"\naddresses = [\"{addr}\"]\npeer_mac = \"02:00:00:00:ee:0{n}\"\n",
                device = devices[index],
                n = index + 1,
            )
        };
        format!(
            r#"# Written by tgw-perf for one measurement run.
[eal]
main_lcore = {main}
file_prefix = "{prefix}"
hugepages = {huge}
memory_mb = 256
in_memory = true
extra_args = ["--log-level=pmd.net.memif:error"]

[mempool]
mbufs = 16383
cache_size = 256

{p0}
{p1}
[[worker]]
lcore = {worker}
rx = ["pub0:0", "und0:0"]

"#,
            main = self.main_lcore,
            worker = self.worker_lcore,
            huge = self.hugepages,
            p0 = port(first, 0),
            p1 = port(second, 1),
        )
    }

    /// The tgw configuration for a run: two memif client ports (the one
    /// facing the generator's sender is the public port, or the underlay
    /// port for `decap`), one worker, and what the profile needs.
    fn tgw_config(&self, prefix: &str, profile: &Profile) -> String {
        self.tgw_base_config(prefix, !profile.sends_to_underlay(), &self.memif_devargs)
            + &profile.tgw_sections()
    }
}

/// tgw's counters as JSON, asked on its control socket.
pub fn counters(socket: &Path) -> Option<serde_json::Value> {
    let mut tgw = ctl::client::Client::connect(socket).ok()?;
    tgw.call(ctl::api::Op::Stats {}).ok()
}

impl Running {
    /// The device's process id (`ndr` stops it while it times the CPUs).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the device has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the device the way it stops cleanly (SIGTERM for tgw, a line
    /// on stdin for testpmd) and waits for it; kills it after `limit`.
    pub fn stop(mut self, limit: Duration) -> Result<(), String> {
        let result = self.stop_child(limit);
        remove_runtime_dir(&self.prefix);
        result
    }

    fn stop_child(&mut self, limit: Duration) -> Result<(), String> {
        match self.device {
            // Only a child not yet waited for: once reaped (`is_running`),
            // its PID may be another process's.
            Device::Tgw if matches!(self.child.try_wait(), Ok(None)) => {
                let pid = self.child.id().to_string();
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
            }
            Device::Tgw => {}
            Device::Testpmd => {
                if let Some(mut stdin) = self.stdin.take() {
                    let _ = stdin.write_all(b"\n");
                }
            }
        }
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "{} exited with {status}{}",
                        self.device.name(),
                        last_error(&self.log).map_or(String::new(), |e| format!(": {e}"))
                    ))
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "{} did not stop within {limit:?}; killed",
                        self.device.name()
                    ));
                }
            }
        }
    }
}

/// The last line of `log` that reports an error (tgw's `ERROR`, DPDK's
/// `EAL: ... failed`/`Error`), trimmed: why a device that exited did.
fn last_error(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find(|l| l.contains("ERROR") || l.contains("Error") || l.contains("failed"))
        .map(|l| l.trim().chars().take(300).collect())
}

/// Removes what EAL leaves under /var/run/dpdk for `prefix` (even with
/// --in-memory, the telemetry socket lives there).
pub fn remove_runtime_dir(prefix: &str) {
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(prefix));
}

/// Finds a program next to this executable (cargo puts tgw and tgw-perf
/// side by side), else on PATH.
pub fn sibling_or_path(name: &str) -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    match sibling {
        Some(path) if path.exists() => path,
        _ => PathBuf::from(name),
    }
}

/// Whether the devices get hugepages: not when `--no-huge` was asked, nor
/// when none are reserved, which is said once (the numbers are then
/// indicative only).
pub fn hugepages_unless(no_huge: bool) -> bool {
    let hugepages = !no_huge && hugepages_available();
    if !no_huge && !hugepages {
        eprintln!(
            "tgw-perf: no hugepages reserved; running with --no-huge (numbers are indicative only)"
        );
    }
    hugepages
}

/// Whether 2 MiB hugepages are reserved and mounted.
pub fn hugepages_available() -> bool {
    let reserved =
        std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| m.contains("hugetlbfs"))
        .unwrap_or(false);
    reserved >= 256 && mounted && Path::new("/dev/hugepages").exists()
}

/// EAL arguments for a measurement inside this process (`tgw-perf lpm`,
/// `tgw-perf flow`): lcore 0, no PCI, its own file prefix. With hugepages
/// nothing is left on disk (`--in-memory`); without, `--no-huge` with
/// `memory_mb` of ordinary memory and `--no-shconf`, since `--no-huge`
/// implies legacy memory, which `--in-memory` refuses.
pub fn local_eal_args(prefix: &str, hugepages: bool, memory_mb: usize) -> Vec<String> {
    let mut args = vec![
        "-l".to_owned(),
        "0".to_owned(),
        "--no-pci".to_owned(),
        format!("--file-prefix={prefix}"),
        "--log-level=lib.eal:error".to_owned(),
    ];
    if hugepages {
        args.push("--in-memory".to_owned());
    } else {
        args.extend(["--no-huge".to_owned(), "--no-shconf".to_owned()]);
        args.extend(["-m".to_owned(), memory_mb.to_string()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::last_error;

    /// A device that exited says why: its log's last error line, which a
    /// run reports in place of "the generator reported no result".
    #[test]
    fn the_last_error_line_of_a_log_is_the_reason() {
        let path = std::env::temp_dir().join(format!("tgw-perf-last-error-{}", std::process::id()));
        std::fs::write(
            &path,
            "EAL: Detected CPU lcores: 2\n\
             2026-12-06T16:04:58Z ERROR tgw: an older failure\n\
             2026-12-06T16:04:58Z  INFO tgw::gateway: port configured\n\
             2026-12-06T16:04:58Z ERROR tgw: tables: more next hops than the neighbour table holds\n\
             Bye...\n",
        )
        .unwrap();
        let found = last_error(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            found.as_deref(),
            Some("2026-12-06T16:04:58Z ERROR tgw: tables: more next hops than the neighbour table holds")
        );
        assert_eq!(last_error(&path), None, "no log, no reason");
    }
}
