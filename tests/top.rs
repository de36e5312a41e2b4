//! `tgwctl top` and `tgwctl stats` against a real tgw (issue 12): two
//! workers receive pings to both tenants' elastic IPs and a denied UDP
//! frame without end (net_pcap's `infinite_rx`, which drops what is sent
//! back on that port; the underlay is a net_null that receives nothing),
//! while `tgwctl top` runs under a pseudo-terminal that util-linux
//! `script` gives it. It must show every worker, redraw (a clear
//! sequence a refresh) and show rates above zero; `stats --json` must
//! parse and `stats` name the tenants.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::reference::{self, ping, EIP1, EIP2};
use common::{tgwctl, write_pcap, Daemon, PrefixFiles, Scratch};
use serde_json::Value;

/// What `top` draws before each refresh on a terminal.
const CLEAR: &str = "\x1b[2J\x1b[H";

/// UDP to t1's elastic IP: its firewall lets in only TCP 22 and ICMP.
fn denied() -> Vec<u8> {
    reference::udp(EIP1, 40000, 5000, b"no")
}

/// examples/reference.toml on the devices given, with its own prefix,
/// its control socket in `dir`, and two workers, each polling a queue of
/// both ports (the second on lcore 2, sharing CPU 1).
fn config(dir: &Scratch, prefix: &str, public: &str, underlay: &str) -> PathBuf {
    let mut edits = reference::edits(prefix, [public, underlay], "in_memory = true");
    edits.push((
        "[[worker]]\nlcore = 1\nrx = [\"pub0:0\", \"und0:0\"]\n",
        "[[worker]]\nlcore = 1\nrx = [\"pub0:0\", \"und0:0\"]\n\
         [[worker]]\nlcore = 2\ncpu = 1\nrx = [\"pub0:1\", \"und0:1\"]\n"
            .to_owned(),
    ));
    reference::config(dir, &edits, &reference::control_socket(dir, "ctl/tgw.sock"))
}

/// `tgwctl --socket SOCKET words...`: status and stdout.
fn ctl(socket: &Path, words: &[&str]) -> (bool, String) {
    let out = Command::new(tgwctl())
        .arg("--socket")
        .arg(socket)
        .args(words)
        .output()
        .expect("run tgwctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `command` under a pseudo-terminal (`script -qefc`), typing
/// `typed` on it after `after`, waiting at most `timeout`: its exit
/// status and what it wrote on the terminal.
fn under_a_pty(
    command: &str,
    typed: Option<(Duration, &str)>,
    timeout: Duration,
) -> (bool, String) {
    let mut child = Command::new("script")
        .args(["-qefc", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    let mut keyboard = child.stdin.take();
    if let (Some((after, text)), Some(k)) = (typed, keyboard.as_mut()) {
        std::thread::sleep(after);
        k.write_all(text.as_bytes()).unwrap();
        k.flush().unwrap();
    }
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`{command}` did not end within {timeout:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(keyboard);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The words of the line of `frame` that starts with `first`.
fn row<'a>(frame: &'a str, first: &str) -> Vec<&'a str> {
    frame
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{frame}"))
        .split_whitespace()
        .collect()
}

fn number(cell: &str) -> f64 {
    let cell = cell.trim_end_matches('%');
    let (cell, scale) = match cell.as_bytes().last() {
        Some(b'k') => (&cell[..cell.len() - 1], 1e3),
        Some(b'M') => (&cell[..cell.len() - 1], 1e6),
        _ => (cell, 1.0),
    };
    cell.parse::<f64>()
        .unwrap_or_else(|e| panic!("{cell:?}: {e}"))
        * scale
}

#[test]
fn top_under_a_terminal_shows_every_worker_and_refreshes_with_moving_rates() {
    let dir = Scratch::new("top");
    let prefix = format!("tgw-test-top-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    // t1 gets three frames for each of t2's; the denied frame is dropped.
    let queue0 = [
        ping(EIP1, 1, 1),
        ping(EIP1, 2, 1),
        ping(EIP2, 3, 1),
        denied(),
    ];
    let queue1 = [
        ping(EIP1, 4, 1),
        ping(EIP1, 5, 1),
        ping(EIP2, 6, 1),
        ping(EIP1, 7, 1),
    ];
    write_pcap(&dir.path("q0.pcap"), &queue0);
    write_pcap(&dir.path("q1.pcap"), &queue1);
    let public = format!(
        "net_pcap0,rx_pcap={},rx_pcap={},infinite_rx=1",
        dir.path("q0.pcap").display(),
        dir.path("q1.pcap").display()
    );
    let config = config(&dir, &prefix, &public, "net_null1,no-rx=1");
    let log = dir.path("tgw.log");
    let mut daemon = Daemon::start_logged(&config, &[], &log, &[]);
    let socket = dir.path("ctl/tgw.sock");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctl(&socket, &["stats"]).0 {
        assert!(daemon.running(), "tgw exited:\n{}", read_log());
        assert!(
            Instant::now() < deadline,
            "tgw did not answer:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // stats: --json is the report; the text names the tenants.
    let (ok, json) = ctl(&socket, &["stats", "--json"]);
    assert!(ok);
    let report: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(
        report["workers"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let (ok, text) = ctl(&socket, &["stats"]);
    assert!(ok);
    let tenants = text
        .split("\ntenants:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no tenants in:\n{text}"));
    for t in ["t1", "t2"] {
        assert!(
            tenants
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{t} "))),
            "{t} not in:\n{text}"
        );
    }

    let command = format!(
        "{} --socket {} top --count 3 --interval 0.3",
        tgwctl().display(),
        socket.display()
    );
    let (ok, screen) = under_a_pty(&command, None, Duration::from_secs(30));
    assert!(ok, "tgwctl top failed:\n{screen}\n{}", read_log());
    assert!(daemon.running(), "tgw stopped:\n{}", read_log());
    // Three refreshes, each drawn over the last.
    let frames: Vec<&str> = screen.split(CLEAR).skip(1).collect();
    assert_eq!(frames.len(), 3, "{screen:?}");
    for frame in &frames {
        assert!(frame.contains("q Enter or Ctrl-C quits"), "{frame}");
        // WORKER LCORE RX_MPPS TX_MPPS BUSY CYCLES/FRAME DROPS/S FLOWS
        for (worker, lcore) in [("0", "1"), ("1", "2")] {
            let w = row(frame, worker);
            assert_eq!(w[1], lcore, "{frame}");
            assert!(
                number(w[2]) > 0.0,
                "worker {worker} receives nothing:\n{frame}"
            );
            assert!(
                number(w[4]) > 0.0,
                "worker {worker} is never busy:\n{frame}"
            );
            assert!(
                number(w[5]) > 0.0,
                "worker {worker}'s frames cost nothing:\n{frame}"
            );
        }
        // The pings go into the tunnels; the denied frame is dropped.
        // ALL RX_MPPS TX_MPPS DROPS/S FLOWS: the sums' row.
        let all = row(frame, "all");
        assert!(number(all[2]) > 0.0, "nothing sent:\n{frame}");
        assert!(number(all[3]) > 0.0, "no drops:\n{frame}");
        let t1 = row(frame, "t1");
        assert!(number(t1[2]) > 0.0, "{frame}");
    }

    // Without --count, q and Enter end it, without waiting for the next
    // refresh.
    let command = format!(
        "{} --socket {} top --interval 10",
        tgwctl().display(),
        socket.display()
    );
    let typed = Some((Duration::from_millis(1500), "q\n"));
    let (ok, screen) = under_a_pty(&command, typed, Duration::from_secs(8));
    assert!(ok, "tgwctl top failed:\n{screen}");
}
