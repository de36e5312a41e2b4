//! tgw as an appliance (docs/appliance.md): the systemd units pass
//! `systemd-analyze verify`; the daemon, started as the unit's ExecStart
//! says with a NOTIFY_SOCKET the test listens on, says READY=1 only once
//! its ports are up and keeps the watchdog fed only while its workers
//! beat; tgw-setup's plan on a fake sysfs; the install scripts and the
//! Debian package into temporary roots; and a boot under systemd as
//! PID 1 in systemd-nspawn, where the machine allows it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{reference, PrefixFiles, Scratch, TGW};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn unit(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("packaging/systemd").join(name)).unwrap()
}

/// The words of the unit's `KEY=` line (one, without `-`/`+` prefixes).
fn unit_command(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .collect();
    assert_eq!(lines.len(), 1, "one {key}= line expected: {lines:?}");
    lines[0].split_whitespace().map(str::to_owned).collect()
}

/// The unit's command as this test runs it: /usr/sbin/tgw is the built
/// binary and /etc/tgw/tgw.toml the test's config; any other path in it
/// would mean the test no longer runs what the unit says.
fn as_test_runs(argv: &[String], config: &Path) -> Vec<String> {
    argv.iter()
        .map(|a| match a.as_str() {
            "/usr/sbin/tgw" => TGW.to_owned(),
            "/etc/tgw/tgw.toml" => config.display().to_string(),
            other => {
                assert!(
                    !other.starts_with('/'),
                    "the unit names {other}: teach the test about it"
                );
                other.to_owned()
            }
        })
        .collect()
}

/// Runs `cmd`, killed after `limit`.
fn bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still ran after {limit:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what}: {}\n{text}", out.status);
    text
}

/// A directory with tgw, tgwctl and tgw-setup as built, for the install
/// scripts' `--from`.
fn built() -> PathBuf {
    let setup = common::tgw_setup();
    let ctl = common::tgwctl();
    assert_eq!(setup.parent(), Path::new(TGW).parent());
    assert_eq!(ctl.parent(), Path::new(TGW).parent());
    Path::new(TGW).parent().unwrap().to_path_buf()
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let dir = Scratch::new("units-verify");
    let from = built();
    // The units as scripts/install writes them, naming the built binaries
    // (verify checks that each command exists and is executable).
    for name in ["tgw.service", "tgw-setup.service"] {
        let text = unit(name).replace("/usr/sbin/", &format!("{}/", from.display()));
        std::fs::write(dir.path(name), text).unwrap();
    }
    let out = bounded(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.path("tgw.service"))
            .arg(dir.path("tgw-setup.service")),
        Duration::from_secs(60),
    );
    // verify exits 0 on a key it ignores (a typo): what it says counts too.
    let text = ok(&out, "systemd-analyze verify");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify said:\n{text}"
    );
    // What the rest of this file relies on.
    let tgw = unit("tgw.service");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "Requires=tgw-setup.service",
    ] {
        assert!(tgw.lines().any(|l| l == line), "tgw.service lacks {line}");
    }
    assert!(tgw.lines().any(|l| l.starts_with("WatchdogSec=")));
    assert!(unit_command(&tgw, "ExecStartPre").contains(&"--check".to_owned()));
}

/// The datagrams tgw sends to NOTIFY_SOCKET, with when they came.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<(Instant, String)>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Notifications {
            socket,
            seen: Vec::new(),
        }
    }

    /// Reads until a datagram has a line `line`, or `limit` runs out;
    /// that datagram, if it came.
    fn until(&mut self, line: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push((Instant::now(), text.clone()));
                if text.lines().any(&line) {
                    return Some(text);
                }
            }
        }
        None
    }

    /// How many keep-alives came from `since` on.
    fn keepalives_since(&self, since: Instant) -> usize {
        self.seen
            .iter()
            .filter(|(at, text)| *at >= since && text.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    }
}

/// tgw as the unit starts it, with NOTIFY_SOCKET, WATCHDOG_USEC and
/// WATCHDOG_PID as systemd sets them (WATCHDOG_PID is tgw's own: `sh`
/// execs tgw, so its `$$` is tgw's pid). Killed on drop.
struct Unit(Child);

impl Unit {
    fn start(argv: &[String], notify: &Path, log: &Path, env: &[(&str, &str)]) -> Unit {
        let child = Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$@\"")
            .arg("sh")
            .args(argv)
            .env("NOTIFY_SOCKET", notify)
            .env("WATCHDOG_USEC", "2000000")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Unit(child)
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference config with its own file prefix and control socket, and
/// tgw's own watchdog at `watchdog_ms`.
fn unit_config(dir: &Scratch, prefix: &str, watchdog_ms: u32) -> PathBuf {
    let mut edits = reference::edits(prefix, ["net_null0", "net_null1"], "");
    edits.push((
        "mode = \"gateway\"",
        format!("mode = \"gateway\"\nwatchdog_ms = {watchdog_ms}"),
    ));
    reference::config(dir, &edits, &reference::control_socket(dir, "tgw.sock"))
}

/// Runs the unit's ExecStartPre (the config check) as it says.
fn check_as_the_unit_does(config: &Path) {
    let pre = as_test_runs(&unit_command(&unit("tgw.service"), "ExecStartPre"), config);
    let out = bounded(
        Command::new(&pre[0]).args(&pre[1..]),
        Duration::from_secs(30),
    );
    ok(&out, "ExecStartPre");
}

#[test]
fn ready_comes_once_the_ports_are_up_and_keep_alives_keep_coming() {
    let dir = Scratch::new("notify-ready");
    let prefix = format!("tgw-notify-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    let config = unit_config(&dir, &prefix, 5000);
    check_as_the_unit_does(&config);
    let mut notes = Notifications::bind(&dir.path("notify.sock"));
    let argv = as_test_runs(&unit_command(&unit("tgw.service"), "ExecStart"), &config);
    let log = dir.path("tgw.log");
    let mut tgw = Unit::start(&argv, &dir.path("notify.sock"), &log, &[]);

    let ready = notes.until(|l| l == "READY=1", Duration::from_secs(60));
    let logged = std::fs::read_to_string(&log).unwrap();
    let ready = ready.unwrap_or_else(|| panic!("no READY=1 within 60 s; log:\n{logged}"));
    // By then both ports were started and the workers launched: the log
    // says so before READY=1 is sent.
    for line in ["port=pub0", "port=und0", "forwarding"] {
        assert!(
            logged.contains(line),
            "READY=1 before {line:?} was logged:\n{logged}"
        );
    }
    assert!(
        ready.contains("STATUS=forwarding: 2 ports up, 1 workers polling"),
        "{ready}"
    );
    assert!(
        notes
            .seen
            .iter()
            .any(|(_, t)| t.contains("STATUS=starting EAL")),
        "{:?}",
        notes.seen
    );
    // WatchdogSec=2 s: a keep-alive every 0.5 s while the worker beats
    // (a heartbeat counts as fresh for 1 s, long enough for a loaded
    // machine to run the worker now and then).
    let since = Instant::now();
    let _ = notes.until(|_| false, Duration::from_secs(3));
    let n = notes.keepalives_since(since);
    assert!(n >= 4, "{n} keep-alives in 3 s: {:?}", notes.seen);
    assert!(tgw.running());

    // SIGHUP (ExecReload) says RELOADING=1, then READY=1 with the outcome.
    let hup = Command::new("kill")
        .args(["-HUP", &tgw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let reloading = notes.until(|l| l == "RELOADING=1", Duration::from_secs(10));
    assert!(reloading.is_some_and(|t| t.contains("MONOTONIC_USEC=")));
    let reloaded = notes.until(|l| l == "READY=1", Duration::from_secs(10));
    assert!(
        reloaded.is_some_and(|t| t.contains("STATUS=forwarding: the config file was reloaded")),
        "{:?}",
        notes.seen
    );
    // SIGTERM: STOPPING=1, exit 0.
    let term = Command::new("kill")
        .args(["-TERM", &tgw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(notes
        .until(|l| l == "STOPPING=1", Duration::from_secs(10))
        .is_some());
    let deadline = Instant::now() + Duration::from_secs(20);
    while tgw.running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(tgw.0.wait().unwrap().code(), Some(0));
}

#[test]
fn keep_alives_stop_when_a_worker_hangs() {
    let dir = Scratch::new("notify-stall");
    let prefix = format!("tgw-stall-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    // tgw's own watchdog off, so that it keeps running with the hung
    // worker: only the keep-alives can tell systemd.
    let config = unit_config(&dir, &prefix, 0);
    let mut notes = Notifications::bind(&dir.path("notify.sock"));
    let argv = as_test_runs(&unit_command(&unit("tgw.service"), "ExecStart"), &config);
    let log = dir.path("tgw.log");
    let mut tgw = Unit::start(
        &argv,
        &dir.path("notify.sock"),
        &log,
        &[("TGW_TEST_FAULT", "stall:0")],
    );
    let ready = notes.until(|l| l == "READY=1", Duration::from_secs(60));
    let logged = || std::fs::read_to_string(&log).unwrap();
    assert!(ready.is_some(), "no READY=1; log:\n{}", logged());
    // The worker stalls at its first TX drain; after half a period (1 s)
    // its heartbeat is stale and the keep-alives stop.
    let held = notes.until(
        |l| l.starts_with("STATUS=worker 0's heartbeat is"),
        Duration::from_secs(10),
    );
    assert!(held.is_some(), "{:?}\n{}", notes.seen, logged());
    let since = Instant::now();
    let _ = notes.until(|_| false, Duration::from_secs(3));
    assert_eq!(notes.keepalives_since(since), 0, "{:?}", notes.seen);
    // Still running: the silence is the keep-alives held back, not an exit.
    assert!(tgw.running(), "tgw exited:\n{}", logged());
}

/// A fake sysfs with two NICs on ixgbe, one IOMMU group and 2 MiB
/// hugepages, and fake DPDK tools on PATH that record their arguments and
/// do what they say to the fake tree.
fn fake_machine(dir: &Scratch) -> (PathBuf, String) {
    let sys = dir.path("sys");
    let mk = |p: &str| std::fs::create_dir_all(sys.join(p)).unwrap();
    mk("kernel/mm/hugepages/hugepages-2048kB");
    std::fs::write(
        sys.join("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        "0\n",
    )
    .unwrap();
    mk("kernel/iommu_groups/1");
    mk("bus/pci/drivers/ixgbe");
    mk("bus/pci/drivers/vfio-pci");
    for dev in ["0000:03:00.0", "0000:03:00.1", "0000:05:00.0"] {
        mk(&format!("bus/pci/devices/{dev}"));
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/ixgbe",
            sys.join(format!("bus/pci/devices/{dev}/driver")),
        )
        .unwrap();
    }
    let tools = dir.path("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let calls = dir.path("calls");
    let script = |name: &str, body: &str| {
        let path = tools.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> {}\n{body}\n",
                calls.display()
            ),
        )
        .unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    };
    script(
        "dpdk-devbind.py",
        &format!(
            "dev=$2; ln -sfn ../../../bus/pci/drivers/vfio-pci {}/bus/pci/devices/$dev/driver",
            sys.display()
        ),
    );
    script(
        "dpdk-hugepages.py",
        &format!(
            "[ \"$1\" = --pagesize ] && echo $(( ${{4%M}} / 2 )) > {}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; true",
            sys.display()
        ),
    );
    script("modprobe", "exit 1");
    let path = format!("{}:{}", tools.display(), std::env::var("PATH").unwrap());
    (sys, path)
}

fn setup_run(config: &Path, sys: &Path, mounts: &Path, path: &str, extra: &[&str]) -> Output {
    bounded(
        Command::new(common::tgw_setup())
            .arg("--config")
            .arg(config)
            .arg("--sysfs")
            .arg(sys)
            .arg("--mounts")
            .arg(mounts)
            .args(extra)
            .env("PATH", path),
        Duration::from_secs(30),
    )
}

#[test]
fn tgw_setup_binds_only_the_configs_nics_once_and_says_why_it_cannot() {
    let dir = Scratch::new("setup");
    let (sys, path) = fake_machine(&dir);
    let mounts = dir.path("mounts");
    std::fs::write(&mounts, "hugetlbfs /dev/hugepages hugetlbfs rw 0 0\n").unwrap();
    // pub0 on 0000:03:00.0, und0 on 0000:05:00.0; 0000:03:00.1 is on the
    // same card and must be left alone.
    let text = reference::text(
        &[
            ("device = \"net_null0\"", "device = \"0000:03:00.0\"".into()),
            ("device = \"net_null1\"", "device = \"0000:05:00.0\"".into()),
            ("hugepages = false", "hugepages = true".into()),
        ],
        "",
    );
    let config = reference::write(&dir, &text);
    let calls = || std::fs::read_to_string(dir.path("calls")).unwrap_or_default();

    let dry = setup_run(&config, &sys, &mounts, &path, &["--dry-run"]);
    let said = ok(&dry, "tgw-setup --dry-run");
    assert_eq!(calls(), "", "--dry-run ran something");
    assert!(said.contains("would reserve 128 hugepages"), "{said}");
    assert!(
        said.contains("would bind port \"pub0\" (0000:03:00.0, now on ixgbe"),
        "{said}"
    );

    let first = ok(&setup_run(&config, &sys, &mounts, &path, &[]), "tgw-setup");
    assert_eq!(
        calls(),
        "dpdk-hugepages.py --pagesize 2M --reserve 256M\n\
         dpdk-devbind.py --bind=vfio-pci 0000:03:00.0\n\
         dpdk-devbind.py --bind=vfio-pci 0000:05:00.0\n",
        "{first}"
    );
    // Idempotent: the second run finds it done and runs nothing.
    std::fs::remove_file(dir.path("calls")).unwrap();
    let second = ok(
        &setup_run(&config, &sys, &mounts, &path, &[]),
        "tgw-setup again",
    );
    assert_eq!(calls(), "", "{second}");
    assert!(
        second.contains("ok: port \"und0\": 0000:05:00.0 is on vfio-pci"),
        "{second}"
    );
    let untouched = std::fs::read_link(sys.join("bus/pci/devices/0000:03:00.1/driver")).unwrap();
    assert!(untouched.ends_with("ixgbe"));

    // No IOMMU: an error that says how to turn it on, nothing run. Also
    // what this machine (a VM without one) says: see docs/appliance.md.
    std::fs::remove_dir(sys.join("kernel/iommu_groups/1")).unwrap();
    for dev in ["0000:03:00.0", "0000:05:00.0"] {
        let link = sys.join(format!("bus/pci/devices/{dev}/driver"));
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("../../../bus/pci/drivers/ixgbe", link).unwrap();
    }
    let refused = setup_run(&config, &sys, &mounts, &path, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("no IOMMU") && said.contains("intel_iommu=on"),
        "{said}"
    );
    assert_eq!(calls(), "");
    // No vfio-pci module and modprobe fails: said, with the fix.
    std::fs::create_dir(sys.join("kernel/iommu_groups/1")).unwrap();
    std::fs::remove_dir(sys.join("bus/pci/drivers/vfio-pci")).unwrap();
    let refused = setup_run(&config, &sys, &mounts, &path, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("no vfio-pci module for this kernel"),
        "{said}"
    );
    assert_eq!(calls(), "modprobe vfio-pci\n");
}

#[test]
fn install_and_uninstall_keep_the_operators_config() {
    let dir = Scratch::new("install");
    let root = dir.path("root");
    let from = built();
    let script = |name: &str, args: &[&str]| {
        let out = bounded(
            Command::new(Path::new(ROOT).join("scripts").join(name))
                .arg("--destdir")
                .arg(&root)
                .args(args),
            Duration::from_secs(60),
        );
        ok(&out, name)
    };
    script("install", &["--from", from.to_str().unwrap()]);
    for (file, mode) in [
        ("usr/sbin/tgw", 0o755),
        ("usr/sbin/tgw-setup", 0o755),
        ("usr/bin/tgwctl", 0o755),
        ("lib/systemd/system/tgw.service", 0o644),
        ("lib/systemd/system/tgw-setup.service", 0o644),
        ("etc/tgw/tgw.toml", 0o644),
        ("usr/share/doc/tgw/appliance.md", 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{file}");
    }
    let reference =
        std::fs::read_to_string(Path::new(ROOT).join("examples/reference.toml")).unwrap();
    let conf = root.join("etc/tgw/tgw.toml");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), reference);
    // The installed tgw checks the installed config.
    let check = bounded(
        Command::new(root.join("usr/sbin/tgw"))
            .arg("--config")
            .arg(&conf)
            .arg("--check"),
        Duration::from_secs(30),
    );
    ok(&check, "installed tgw --check");

    // An edited config survives another install and an uninstall.
    std::fs::write(&conf, "# mine\n").unwrap();
    let said = script("install", &["--from", from.to_str().unwrap()]);
    assert!(said.contains("exists: kept"), "{said}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# mine\n");
    script("uninstall", &[]);
    assert!(!root.join("usr/sbin/tgw").exists());
    assert!(!root.join("lib/systemd/system/tgw.service").exists());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# mine\n");
    script("uninstall", &["--purge"]);
    assert!(!root.join("etc/tgw").exists());
}

#[test]
fn the_debian_package_installs_enables_and_keeps_its_conffile() {
    let dir = Scratch::new("deb");
    let from = built();
    let out = bounded(
        Command::new(Path::new(ROOT).join("scripts/package"))
            .arg("--from")
            .arg(&from)
            .arg("--out")
            .arg(dir.path("out")),
        Duration::from_secs(120),
    );
    let said = ok(&out, "scripts/package");
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(deb.exists(), "{said}");
    let info = ok(
        &bounded(
            Command::new("dpkg-deb").arg("--info").arg(&deb),
            Duration::from_secs(30),
        ),
        "dpkg-deb --info",
    );
    assert!(info.contains("Package: tgw"), "{info}");
    assert!(
        info.contains("librte-"),
        "no DPDK library in Depends: {info}"
    );
    let conffiles = ok(
        &bounded(
            Command::new("dpkg-deb").arg("--ctrl-tarfile").arg(&deb),
            Duration::from_secs(30),
        ),
        "dpkg-deb --ctrl-tarfile",
    );
    assert!(conffiles.contains("conffiles"));

    // dpkg itself installs it into an empty root with its own database;
    // the maintainer scripts run outside (chrootless, with DPKG_ROOT).
    let root = dir.path("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let dpkg = |args: &[&str]| {
        let out = bounded(
            Command::new("dpkg")
                .arg(format!("--root={}", root.display()))
                .args([
                    "--force-script-chrootless",
                    "--force-depends",
                    "--force-not-root",
                    "--force-confold",
                    "--log=/dev/null",
                ])
                .args(args),
            Duration::from_secs(60),
        );
        ok(&out, &format!("dpkg {args:?}"))
    };
    dpkg(&["--install", deb.to_str().unwrap()]);
    let conf = root.join("etc/tgw/tgw.toml");
    let reference =
        std::fs::read_to_string(Path::new(ROOT).join("examples/reference.toml")).unwrap();
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), reference);
    for file in ["usr/sbin/tgw", "usr/sbin/tgw-setup", "usr/bin/tgwctl"] {
        let help = bounded(
            Command::new(root.join(file)).arg("--help"),
            Duration::from_secs(30),
        );
        assert!(ok(&help, file).contains("Usage:"), "{file} --help");
    }
    // postinst enabled both units in that root.
    for u in ["tgw.service", "tgw-setup.service"] {
        let link = root
            .join("etc/systemd/system/multi-user.target.wants")
            .join(u);
        assert!(link.symlink_metadata().is_ok(), "{u} not enabled");
    }
    let listed = dpkg(&["--listfiles", "tgw"]);
    assert!(
        listed.contains("/lib/systemd/system/tgw.service"),
        "{listed}"
    );

    // Units the operator disabled stay disabled through an upgrade (a
    // reinstall runs the same postinst); it once enabled them again.
    let wants = |u: &str| {
        root.join("etc/systemd/system/multi-user.target.wants")
            .join(u)
            .symlink_metadata()
            .is_ok()
    };
    // What the operator runs, in that root.
    let systemctl = |verb: &str| {
        let out = bounded(
            Command::new("systemctl")
                .arg(format!("--root={}", root.display()))
                .args([verb, "tgw.service", "tgw-setup.service"]),
            Duration::from_secs(30),
        );
        ok(&out, &format!("systemctl {verb}"));
    };
    systemctl("disable");
    assert!(!wants("tgw.service") && !wants("tgw-setup.service"));
    dpkg(&["--install", deb.to_str().unwrap()]);
    for u in ["tgw.service", "tgw-setup.service"] {
        assert!(!wants(u), "{u} enabled again by an upgrade");
    }
    systemctl("enable");

    // An edited conffile survives a reinstall and a removal; purge takes it.
    std::fs::write(&conf, "# mine\n").unwrap();
    dpkg(&["--install", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# mine\n");
    for u in ["tgw.service", "tgw-setup.service"] {
        assert!(wants(u), "{u} enabled by the operator, kept by an upgrade");
    }
    dpkg(&["--remove", "tgw"]);
    assert!(!root.join("usr/sbin/tgw").exists());
    assert!(!root
        .join("etc/systemd/system/multi-user.target.wants/tgw.service")
        .exists());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# mine\n");
    dpkg(&["--purge", "tgw"]);
    assert!(!conf.exists());
}

/// What was tried to boot systemd as PID 1, and why it could not be, for
/// the skip message.
fn boot_unavailable() -> Option<String> {
    if !nix_is_root() {
        return Some("not root: systemd-nspawn needs root".into());
    }
    for tool in ["/usr/bin/systemd-nspawn", "/lib/systemd/systemd"] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "{tool} is missing (apt-get install systemd-container systemd)"
            ));
        }
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[test]
fn boots_under_systemd_reloads_and_stops() {
    if let Some(why) = boot_unavailable() {
        eprintln!("SKIP boots_under_systemd_reloads_and_stops: {why}");
        return;
    }
    let dir = Scratch::new("boot");
    let from = built();
    // The install as scripts/install lays it out, laid over the host's
    // Debian /usr in a container whose root is a fresh tmpfs
    // (--volatile=yes): systemd is PID 1 there and boots the units.
    let stage = dir.path("stage");
    let out = bounded(
        Command::new(Path::new(ROOT).join("scripts/install"))
            .arg("--destdir")
            .arg(&stage)
            .arg("--from")
            .arg(&from),
        Duration::from_secs(60),
    );
    ok(&out, "scripts/install");
    let units = dir.path("units");
    let wants = units.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    for u in ["tgw.service", "tgw-setup.service"] {
        std::fs::copy(stage.join("lib/systemd/system").join(u), units.join(u)).unwrap();
        std::os::unix::fs::symlink(format!("../{u}"), wants.join(u)).unwrap();
    }
    std::fs::write(
        units.join("tgw-boot-check.service"),
        "[Unit]\nDescription=tgw boot test\nAfter=tgw.service\nWants=tgw.service\n\
         [Service]\nType=oneshot\nExecStart=/bin/sh /result/check.sh\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../tgw-boot-check.service",
        wants.join("tgw-boot-check.service"),
    )
    .unwrap();
    // The host's own services that have no business in the container.
    for masked in [
        "dpdk.service",
        "prometheus.service",
        "prometheus-node-exporter.service",
    ] {
        std::os::unix::fs::symlink("/dev/null", units.join(masked)).unwrap();
    }
    let result = dir.path("result");
    std::fs::create_dir_all(&result).unwrap();
    std::fs::write(result.join("check.sh"), BOOT_CHECK).unwrap();

    let out = Command::new("timeout")
        .args([
            "--kill-after=10",
            "120",
            "systemd-nspawn",
            "--directory=/",
            "--volatile=yes",
        ])
        .args(["--register=no", "--keep-unit", "--quiet"])
        .arg(format!(
            "--overlay-ro=/usr:{}:/usr",
            stage.join("usr").display()
        ))
        .arg(format!("--bind={}:/etc/systemd/system", units.display()))
        .arg(format!(
            "--bind={}:/etc/tgw",
            stage.join("etc/tgw").display()
        ))
        .arg(format!("--bind={}:/result", result.display()))
        .args([
            "--boot",
            "--",
            "systemd.firstboot=off",
            "systemd.unit=multi-user.target",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let console =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !console.contains("running in system mode") {
        eprintln!(
            "SKIP boots_under_systemd_reloads_and_stops: systemd-nspawn --volatile=yes --boot of the \
             host's /usr did not start systemd as PID 1 ({}):\n{console}",
            out.status
        );
        return;
    }
    let verdict = std::fs::read_to_string(result.join("verdict")).unwrap_or_default();
    let log = std::fs::read_to_string(result.join("check.log")).unwrap_or_default();
    let why = format!("verdict:\n{verdict}\ncheck log:\n{log}\nconsole:\n{console}");
    for line in [
        "started: ActiveState=active SubState=running",
        "status: StatusText=forwarding: 2 ports up, 1 workers polling",
        // Where DPDK's tools look for tgw (docs/dpdk-tools.md).
        "runtime: Multi-process socket /var/run/dpdk/tgw-ref/mp_socket",
        "reloaded: 2.2.2.13",
        "reload status: StatusText=forwarding: the config file was reloaded",
        "stopped: ActiveState=inactive Result=success ExecMainStatus=0",
        // systemd's own watchdog, not tgw's, stopped it.
        "hung worker: Result=watchdog ActiveState=failed",
    ] {
        assert!(verdict.lines().any(|l| l == line), "no {line:?}\n{why}");
    }
}

/// Runs inside the container, as a unit after tgw.service: each step's
/// outcome as a line of /result/verdict, then power off.
const BOOT_CHECK: &str = r#"exec > /result/check.log 2>&1
set -x
v=/result/verdict
p() { systemctl show -P "$1" tgw.service; }
for i in $(seq 1 300); do systemctl is-active -q tgw.service && break; sleep 0.2; done
echo "started: ActiveState=$(p ActiveState) SubState=$(p SubState)" >> $v
echo "status: StatusText=$(p StatusText)" >> $v
journalctl -u tgw.service --no-pager | grep -o 'Multi-process socket [^ ]*' | head -n 1 | sed 's/^/runtime: /' >> $v
sock=/run/tgw/tgw-ref.sock
sed -i 's/public = "2.2.2.12"/public = "2.2.2.13"/' /etc/tgw/tgw.toml
systemctl reload tgw.service
for i in $(seq 1 50); do tgwctl --socket $sock eip show | grep -q 2.2.2.13 && break; sleep 0.2; done
tgwctl --socket $sock eip show | grep -o 2.2.2.13 | head -n 1 | sed 's/^/reloaded: /' >> $v
for i in $(seq 1 25); do p StatusText | grep -q reloaded && break; sleep 0.2; done
echo "reload status: StatusText=$(p StatusText)" >> $v
systemctl stop tgw.service
echo "stopped: ActiveState=$(p ActiveState) Result=$(p Result) ExecMainStatus=$(p ExecMainStatus)" >> $v
# A hung worker, with tgw's own watchdog off: only systemd's, fed by
# nothing once the heartbeat is stale, can stop it.
sed -i 's/^mode = "gateway"$/mode = "gateway"\nwatchdog_ms = 0/' /etc/tgw/tgw.toml
mkdir -p /run/systemd/system/tgw.service.d
printf '[Service]\nEnvironment=TGW_TEST_FAULT=stall:0\nWatchdogSec=2s\nRestart=no\n' \
  > /run/systemd/system/tgw.service.d/stall.conf
systemctl daemon-reload
systemctl start tgw.service
for i in $(seq 1 100); do [ "$(p ActiveState)" = failed ] && break; sleep 0.2; done
echo "hung worker: Result=$(p Result) ActiveState=$(p ActiveState)" >> $v
journalctl -u tgw-setup.service -u tgw.service --no-pager | tail -n 60
systemctl poweroff
"#;
