//! The control API end to end (issue 11): a real tgw on DPDK virtual
//! devices, driven by the real `tgwctl` binary over its control socket
//! (docs/api.md). Every verb changes what its `show` reads back, and
//! `config show`'s text passes `tgw --check`; every bad input is refused
//! with the exit code docs/api.md gives and the running state unchanged
//! (`config show` byte for byte); adding what exists succeeds with
//! `changed: false`; traffic follows runtime changes; SIGHUP re-reads the
//! file, and a broken file changes nothing.
//!
//! Each test has its own tgw. The traffic test needs root (network
//! namespaces, af_packet) and skips without it, saying so.

mod common;
#[path = "../perf/src/netns.rs"]
mod netns;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::reference::{self, ping, syn, EIP1, EIP2};
use common::{
    read_pcap, tgwctl, wait_for_frames, write_pcap, Daemon, PrefixFiles, Scratch, SEND, TGW,
};
use serde_json::{json, Value};

/// A tenant of its own for the changes: its public prefix reaches its
/// host through its own route, as validation requires.
const T3: &str = r#"[[tenant]]
name = "t3"
key = 3000
hosts = ["172.168.0.13"]
prefixes = ["10.3.0.0/24"]
public_prefixes = ["3.3.3.0/28"]
routes = [
  { prefix = "0.0.0.0/0", to = "public" },
  { prefix = "3.3.3.0/28", to = "172.168.0.13" },
]
rules = [ { direction = "in", action = "allow", proto = "tcp", dport = 80 } ]
"#;

/// examples/reference.toml with its ports on `devices` (public,
/// underlay), its own file prefix, the control socket in `dir`, and
/// `edit` applied to the text.
fn reference(
    dir: &Scratch,
    prefix: &str,
    devices: [&str; 2],
    edit: &dyn Fn(String) -> String,
) -> PathBuf {
    let text = reference::text(
        &reference::edits(prefix, devices, "in_memory = true"),
        &reference::control_socket(dir, "ctl/tgw.sock"),
    );
    reference::write(dir, &edit(text))
}

/// `tgwctl --socket SOCKET ...`, as root or as another user.
struct Ctl {
    socket: PathBuf,
}

impl Ctl {
    /// `words` split at blanks (no word here has one).
    fn run(&self, words: &str) -> Output {
        Command::new(tgwctl())
            .arg("--socket")
            .arg(&self.socket)
            .args(words.split_whitespace())
            .output()
            .expect("run tgwctl")
    }

    /// Runs `words`, which must succeed; its stdout.
    fn ok(&self, words: &str) -> String {
        let out = self.run(words);
        assert!(
            out.status.success(),
            "tgwctl {words} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `--json` `words`, which must succeed: the result.
    fn json(&self, words: &str) -> Value {
        let text = self.ok(&format!("--json {words}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Runs `words`, which must exit with `code`: its stderr.
    fn refused(&self, words: &str, code: i32) -> String {
        let out = self.run(words);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "tgwctl {words}: {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// `config show`'s text, after checking that `tgw --check` accepts it.
    fn config(&self, dir: &Scratch) -> String {
        let text = self.ok("config show");
        let path = dir.path("shown.toml");
        std::fs::write(&path, &text).unwrap();
        let out = common::check(&path);
        assert!(
            out.status.success(),
            "tgw --check refuses config show's text: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Waits (bounded) until tgw answers on its socket; `log` says why
    /// not.
    fn wait_ready(&self, alive: &mut dyn FnMut() -> bool, log: &dyn Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.run("stats").status.success() {
                return;
            }
            assert!(alive(), "tgw exited before it answered:\n{}", log());
            assert!(
                Instant::now() < deadline,
                "tgw did not answer within 30 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The worker's drops by reason, those above zero.
    fn drops(&self) -> Vec<(String, u64)> {
        let stats = self.json("stats");
        stats["workers"][0]["drops"]
            .as_object()
            .expect("drops in stats")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .filter(|(_, v)| *v > 0)
            .collect()
    }
}

/// A tgw on net_pcap ports, its public port fed `public` at start.
struct Gateway {
    dir: Scratch,
    _files: PrefixFiles,
    daemon: Daemon,
    config: PathBuf,
    ctl: Ctl,
}

impl Gateway {
    fn start(name: &str, public: &[Vec<u8>]) -> Gateway {
        let dir = Scratch::new(&format!("control-{name}"));
        let prefix = format!("tgw-test-control-{name}-{}", std::process::id());
        let files = PrefixFiles(prefix.clone());
        write_pcap(&dir.path("pub-in.pcap"), public);
        write_pcap(&dir.path("und-in.pcap"), &[]);
        let dev = |i: usize, side: &str| {
            format!(
                "net_pcap{i},rx_pcap={},tx_pcap={}",
                dir.path(&format!("{side}-in.pcap")).display(),
                dir.path(&format!("{side}-out.pcap")).display()
            )
        };
        let config = reference(&dir, &prefix, [&dev(0, "pub"), &dev(1, "und")], &|t| t);
        let mut daemon = Daemon::start_logged(&config, &[], &dir.path("tgw.log"), &[]);
        let ctl = Ctl {
            socket: dir.path("ctl/tgw.sock"),
        };
        let log = dir.path("tgw.log");
        ctl.wait_ready(&mut || daemon.running(), &|| {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        Gateway {
            dir,
            _files: files,
            daemon,
            config,
            ctl,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("tgw.log")).unwrap_or_default()
    }
}

/// `result` has `changed` as said (and maybe a handle).
fn changed(result: &Value, expected: bool) {
    assert_eq!(result["changed"], json!(expected), "{result}");
}

/// The objects of a show whose `key` is `value`.
fn with<'a>(shown: &'a Value, key: &str, value: &str) -> Vec<&'a Value> {
    shown
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {shown}"))
        .iter()
        .filter(|o| o[key] == json!(value))
        .collect()
}

/// Runs the change `words`, which must say `changed: true`, and checks
/// that config show's text still passes `tgw --check`: the result.
fn change(g: &Gateway, words: &str) -> Value {
    let result = g.ctl.json(words);
    changed(&result, true);
    g.ctl.config(&g.dir);
    result
}

/// Adds with `words` twice: the first changes, the second (a retry) says
/// `changed: false` and leaves config show as the first left it.
fn add_twice(g: &Gateway, words: &str) -> Value {
    let first = change(g, words);
    let after = g.ctl.config(&g.dir);
    changed(&g.ctl.json(words), false);
    same_text(
        &g.ctl.config(&g.dir),
        &after,
        &format!("a retry of {words}"),
    );
    first
}

/// `now` is `before`, or the test fails showing the lines that differ.
fn same_text(now: &str, before: &str, what: &str) {
    if now != before {
        let gone: Vec<&str> = before
            .lines()
            .filter(|l| !now.lines().any(|n| n == *l))
            .collect();
        let new: Vec<&str> = now
            .lines()
            .filter(|l| !before.lines().any(|b| b == *l))
            .collect();
        panic!("{what} changed config show: lines gone {gone:#?}, lines new {new:#?}");
    }
}

#[test]
fn every_verb_changes_what_its_show_reads_back() {
    // Five SYNs to t1's 22 and two pings to t2: seven flows to list.
    let mut input: Vec<Vec<u8>> = (40001..=40005).map(|p| syn(EIP1, p, 22)).collect();
    input.extend([ping(EIP2, 7, 1), ping(EIP2, 8, 1)]);
    let mut g = Gateway::start("verbs", &input);
    let out = g.dir.path("und-out.pcap");
    wait_for_frames(&mut g.daemon, &out, input.len());
    assert_eq!(read_pcap(&out).len(), input.len(), "{}", g.log());
    let g = &g;
    let c = &g.ctl;
    let start = c.config(&g.dir);

    // Tenants, from a TOML file.
    let file = g.dir.path("t3.toml");
    std::fs::write(&file, T3).unwrap();
    let added = add_twice(g, &format!("tenant add {}", file.display()));
    assert!(added["handle"].is_u64(), "its rule's handle: {added}");
    let t3 = &c.json("tenant show t3")[0];
    assert_eq!(t3["key"], 3000);
    assert_eq!(t3["hosts"], json!(["172.168.0.13"]));
    assert_eq!(t3["public_prefixes"], json!(["3.3.3.0/28"]));
    assert_eq!(t3["routes"].as_array().map(Vec::len), Some(2), "{t3}");
    assert_eq!(t3["slot"], 2, "after t1 and t2: {t3}");
    assert_eq!(c.json("tenant show").as_array().map(Vec::len), Some(3));

    // Routes in a tenant's VRF: add, replace, delete.
    let vrf = |prefix: &str| {
        let shown = c.json("route show tenant t3");
        with(&shown, "prefix", prefix)
            .first()
            .map(|r| r["to"].clone())
    };
    add_twice(g, "route add 10.3.1.0/24 via 172.168.0.13 tenant t3");
    assert_eq!(vrf("10.3.1.0/24"), Some(json!("172.168.0.13")));
    change(g, "route replace 10.3.1.0/24 blackhole tenant t3");
    assert_eq!(vrf("10.3.1.0/24"), Some(json!("blackhole")));
    change(g, "route del 10.3.1.0/24 tenant t3");
    assert_eq!(vrf("10.3.1.0/24"), None);
    // The global table.
    add_twice(g, "route add 9.9.9.0/24 via 1.1.1.254");
    assert_eq!(
        with(&c.json("route show"), "prefix", "9.9.9.0/24"),
        [&json!({"prefix": "9.9.9.0/24", "via": "1.1.1.254", "port": "pub0"})]
    );
    change(g, "route del 9.9.9.0/24");
    assert!(with(&c.json("route show"), "prefix", "9.9.9.0/24").is_empty());

    // Elastic IPs.
    add_twice(g, "eip add 3.3.3.17 tenant t3 private 10.3.0.5");
    assert_eq!(
        c.json("eip show tenant t3"),
        json!([{"public": "3.3.3.17", "tenant": "t3", "private": "10.3.0.5"}])
    );
    assert_eq!(c.json("eip show").as_array().map(Vec::len), Some(3));
    change(g, "eip del 3.3.3.17");
    assert_eq!(c.json("eip show tenant t3"), json!([]));

    // Source NAT pools.
    add_twice(g, "snat add tenant t3 address 3.3.3.18 ports 1024-2047");
    let pool = c.json("snat show tenant t3");
    assert_eq!(pool[0]["addresses"], json!(["3.3.3.18"]), "{pool}");
    assert_eq!(pool[0]["ports"], "1024-2047", "{pool}");
    change(g, "snat del tenant t3");
    assert_eq!(c.json("snat show"), json!([]));

    // Rules, named by handles; each counts the flows it let in.
    let handle = change(g, "rule add tenant t3 in allow udp dport 53")["handle"].clone();
    assert!(handle.is_u64(), "{handle}");
    let rules = c.json("rule show tenant t3");
    let last = rules.as_array().unwrap().last().unwrap();
    assert_eq!(last["handle"], handle, "added last: {rules}");
    assert_eq!(
        (&last["proto"], &last["dport"]),
        (&json!("udp"), &json!(53))
    );
    change(g, &format!("rule del tenant t3 handle {handle}"));
    let rules = c.json("rule show tenant t3");
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["handle"] != handle),
        "{rules}"
    );
    let counts = |tenant: &str| -> Vec<u64> {
        let shown = c.json(&format!("rule show tenant {tenant}"));
        let rules = shown.as_array().unwrap().iter();
        rules.map(|r| r["flows"].as_u64().expect("flows")).collect()
    };
    assert_eq!(
        counts("t1"),
        [5, 0, 0],
        "t1's `in allow tcp dport 22` let five SYNs in"
    );
    assert_eq!(
        counts("t2"),
        [0, 2, 0],
        "t2's `in allow icmp` let two pings in"
    );

    // Neighbours: in a tenant's tunnels, and on a port.
    add_twice(g, "neigh add 10.3.0.5 lladdr 02:00:00:00:03:05 tenant t3");
    assert_eq!(
        c.json("neigh show tenant t3"),
        json!([{"ip": "10.3.0.5", "mac": "02:00:00:00:03:05", "state": "static"}])
    );
    add_twice(g, "neigh add 1.1.1.9 lladdr 02:00:00:00:01:09 port pub0");
    assert_eq!(
        with(&c.json("neigh show"), "ip", "1.1.1.9"),
        [&json!({"port": "pub0", "ip": "1.1.1.9", "mac": "02:00:00:00:01:09", "state": "static"})]
    );
    change(g, "neigh del 10.3.0.5 tenant t3");
    assert_eq!(c.json("neigh show tenant t3"), json!([]));
    change(g, "neigh del 1.1.1.9 port pub0");
    assert!(with(&c.json("neigh show"), "ip", "1.1.1.9").is_empty());

    // Removing the tenant takes it all back to where the test began.
    change(g, "tenant del t3");
    assert_eq!(c.json("tenant show").as_array().map(Vec::len), Some(2));
    same_text(&c.config(&g.dir), &start, "adding and removing t3");

    // Flows: bounded pages, each cursor where the next starts.
    let flows = |filter: &str| c.json(&format!("flow show {filter}"));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 3, "seven flows in pages of three: {seen:?}");
        let shown = match &cursor {
            Some(at) => flows(&format!("--limit 3 --cursor {at}")),
            None => flows("--limit 3"),
        };
        let rows = shown["flows"].as_array().unwrap();
        assert!(rows.len() <= 3, "{shown}");
        seen.extend(
            rows.iter()
                .map(|r| r["remote"].as_str().unwrap().to_owned()),
        );
        // Where the next page starts; no cursor on the last (docs/api.md).
        cursor = match shown.get("cursor") {
            None => break,
            Some(Value::String(at)) => Some(at.clone()),
            Some(other) => panic!("cursor {other} in {shown}"),
        };
    }
    seen.sort();
    let mut expected: Vec<String> = (40001..=40005).map(|p| format!("1.1.1.7:{p}")).collect();
    expected.extend(["1.1.1.7:7".into(), "1.1.1.7:8".into()]);
    expected.sort();
    assert_eq!(seen, expected, "every flow once over the pages");
    let count = |filter: &str| flows(filter)["flows"].as_array().unwrap().len();
    assert_eq!(count(""), 7);
    assert_eq!(count("--tenant t2"), 2);
    assert_eq!(count("--protocol tcp"), 5);
    assert_eq!(count("--protocol icmp --tenant t1"), 0);
    assert_eq!(count("--address 2.2.2.12"), 2);
    assert_eq!(count("--address 10.0.0.7"), 7);
    let one = flows("--port 40003");
    assert_eq!(one["flows"].as_array().unwrap().len(), 1, "{one}");
    // The keys docs/api.md names.
    let row = &one["flows"][0];
    let expected = json!({
        "worker": 0, "tenant": "t1", "protocol": "tcp", "inbound": true,
        "private": "10.0.0.7:22", "public": "2.2.2.11:22", "remote": "1.1.1.7:40003",
        "pool": null, "tcp": "syn_sent", "answered": false,
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&row[key], value, "{key} of {row}");
    }
    assert!(row["slot"].is_u64(), "{row}");
    assert!(row["seconds_left"].as_u64() > Some(200), "{row}");
    // The human table says where the next page starts.
    let page = c.ok("flow show --limit 1");
    assert!(page.contains("more with --cursor"), "{page}");
    // Flush: by filter, then all.
    let flushed = c.json("flow flush --port 40001");
    assert_eq!(flushed, json!({"flushed": 1, "not_answering": []}));
    assert_eq!(count("--protocol tcp"), 4);
    assert_eq!(c.json("flow flush --all")["flushed"], 6);
    assert_eq!(count(""), 0);

    // Stats: what the worker and the ports saw.
    let stats = c.json("stats");
    assert_eq!(stats["workers"][0]["rx_packets"], 7, "{stats}");
    assert_eq!(stats["ports"][0]["rx_packets"], 7, "{stats}");
    let text = c.ok("stats");
    let allow22 = text.lines().find(|l| l.contains("in allow tcp dport 22"));
    assert!(allow22.is_some_and(|l| l.ends_with(" 5")), "{text}");

    // config apply: --dry-run says what would change and changes nothing;
    // without it the difference is made.
    let before = c.config(&g.dir);
    let moved = before.replace("public = \"2.2.2.12\"", "public = \"2.2.2.13\"");
    assert_ne!(moved, before);
    let file = g.dir.path("moved.toml");
    std::fs::write(&file, &moved).unwrap();
    let apply = format!("config apply {}", file.display());
    let plan = c.json(&format!("{apply} --dry-run"));
    assert_eq!(plan["applied"], false, "{plan}");
    let lines: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(lines.len(), 2, "{plan}");
    assert!(
        lines.iter().any(|l| l.starts_with("- eip 2.2.2.12")),
        "{plan}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("+ eip 2.2.2.13")),
        "{plan}"
    );
    same_text(&c.config(&g.dir), &before, "a dry run");
    let applied = c.json(&apply);
    assert_eq!(
        (&applied["changes"], &applied["applied"]),
        (&plan["changes"], &json!(true))
    );
    assert_eq!(
        c.json("eip show tenant t2"),
        json!([{"public": "2.2.2.13", "tenant": "t2", "private": "10.0.0.7"}])
    );
    same_text(
        &c.config(&g.dir),
        &moved,
        "config apply (config show is the file applied)",
    );
    // The same file again: nothing to do.
    assert_eq!(c.json(&apply)["changes"], json!([]));
}

/// A raw request line on the socket; the one response line.
fn raw(socket: &Path, bytes: &[u8]) -> Value {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    // A large request is cut off by tgw while it is still being written.
    let bytes = bytes.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("an answer");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let g = Gateway::start("refused", &[]);
    let c = &g.ctl;
    let file = g.dir.path("t3.toml");
    std::fs::write(&file, T3).unwrap();
    c.ok(&format!("tenant add {}", file.display()));
    let state = c.config(&g.dir);
    let unchanged = |what: &str| same_text(&c.config(&g.dir), &state, what);

    // Refused by tgw: exit 1, `tgwctl: FIELD: MESSAGE`, naming the key.
    let refusals = [
        // An unknown tenant.
        (
            "eip add 2.2.2.20 tenant nosuch private 10.0.0.9",
            "eip.tenant: eip 2.2.2.20: no [[tenant]] is named \"nosuch\"",
        ),
        (
            "route add 10.9.0.0/16 via 172.168.0.11 tenant nosuch",
            "tenant: no tenant is named \"nosuch\"",
        ),
        (
            "rule add tenant nosuch in allow tcp dport 80",
            "tenant: no tenant is named \"nosuch\"",
        ),
        ("tenant del nosuch", "name: no tenant is named \"nosuch\""),
        // An elastic IP bound elsewhere: to another tenant, another address.
        (
            "eip add 2.2.2.11 tenant t2 private 10.0.0.7",
            "eip.public: eip 2.2.2.11 is already bound to 10.0.0.7 of tenant \"t1\"",
        ),
        (
            "eip add 2.2.2.11 tenant t1 private 10.0.0.9",
            "eip.public: eip 2.2.2.11 is already bound",
        ),
        // Malformed addresses and prefixes.
        (
            "eip add 2.2.2.300 tenant t1 private 10.0.0.9",
            "eip.public:",
        ),
        (
            "route add 10.9.0.0/33 via 172.168.0.11 tenant t1",
            "10.9.0.0/33",
        ),
        (
            "neigh add 10.0.0.9 lladdr 02:00:00:zz:00:09 tenant t1",
            "mac",
        ),
        // A rule the tenant has already.
        (
            "rule add tenant t1 in allow tcp dport 22",
            "has this rule already",
        ),
        // A missing field.
        ("eip add 2.2.2.20 tenant t1", "private"),
        ("snat add tenant t1", "addresses"),
        // What does not exist cannot be removed.
        ("eip del 2.2.2.99", "public: 2.2.2.99 is not an elastic IP"),
        ("rule del tenant t1 handle 999", "no rule with handle 999"),
        (
            "route del 10.9.0.0/16 tenant t1",
            "has no route for 10.9.0.0/16",
        ),
    ];
    for (words, says) in refusals {
        let stderr = c.refused(words, 1);
        assert!(stderr.starts_with("tgwctl: "), "{words}: {stderr}");
        assert!(stderr.contains(says), "{words}: no {says:?} in {stderr}");
        unchanged(words);
    }
    // A tenant whose public prefix overlaps t3's.
    let overlap = g.dir.path("t4.toml");
    std::fs::write(
        &overlap,
        T3.replace("\"t3\"", "\"t4\"")
            .replace("3000", "4000")
            .replace("10.3.0.0/24", "10.4.0.0/24")
            .replace("3.3.3.0/28\"]", "3.3.3.8/29\"]")
            .replace("3.3.3.0/28\", to", "3.3.3.8/29\", to"),
    )
    .unwrap();
    let stderr = c.refused(&format!("tenant add {}", overlap.display()), 1);
    assert!(
        stderr.contains("3.3.3.8/29") && stderr.contains("public_prefixes"),
        "{stderr}"
    );
    unchanged("an overlapping public prefix");
    // Two tenants in one file are one change: the good one is not added
    // without the bad one.
    let two = g.dir.path("two.toml");
    let good = "[[tenant]]\nname = \"t5\"\nkey = 5000\nhosts = [\"172.168.0.15\"]\nprefixes = [\"10.5.0.0/24\"]\n\n";
    std::fs::write(
        &two,
        format!("{good}{}", std::fs::read_to_string(&overlap).unwrap()),
    )
    .unwrap();
    let stderr = c.refused(&format!("tenant add {}", two.display()), 1);
    assert!(stderr.contains("3.3.3.8/29"), "{stderr}");
    assert_eq!(c.json("tenant show").as_array().map(Vec::len), Some(3));
    unchanged("a batch with one bad tenant");

    // A config file with a bad line: FILE:LINE of it.
    let bad = g.dir.path("bad.toml");
    let mut text = state.clone();
    text.push_str("\n[[eip]]\npublic = \"2.2.2.30\"\ntenant = \"t1\"\nprivate = \"10.0.0.300\"\n");
    std::fs::write(&bad, &text).unwrap();
    let line = text.lines().count();
    let stderr = c.refused(&format!("config apply {}", bad.display()), 1);
    assert!(
        stderr.contains(&format!("{}:{line}:", bad.display())),
        "line {line}: {stderr}"
    );
    let stderr = c.refused(&format!("config apply {} --dry-run", bad.display()), 1);
    assert!(
        stderr.contains(&format!("{}:{line}:", bad.display())),
        "{stderr}"
    );
    unchanged("config apply of a bad file");
    // A config that changes a port: needs a restart, refused whole, even
    // with a runtime change in it too.
    let port = g.dir.path("port.toml");
    std::fs::write(
        &port,
        state
            .replacen("mtu = 1500", "mtu = 1400", 1)
            .replace("public = \"2.2.2.12\"", "public = \"2.2.2.13\""),
    )
    .unwrap();
    let stderr = c.refused(&format!("config apply {}", port.display()), 1);
    assert!(
        stderr.contains("needs a restart") && stderr.contains("mtu"),
        "{stderr}"
    );
    unchanged("config apply of a port change");

    // The words make no request: exit 2, nothing sent.
    for words in ["rule del tenant t1 handle seven", "flow flush", "eip frob"] {
        c.refused(words, 2);
    }
    unchanged("usage errors");

    // Raw requests tgwctl would never send.
    let socket = &c.socket;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();
    let answer = raw(socket, b"{\"version\":1,\"op\":\"eip.del\",\"args\":{}}\n");
    assert_eq!(code(&answer), "bad_request", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `public`"),
        "{answer}"
    );
    let answer = raw(socket, b"\x00\xff\xfegarbage{{{\n");
    assert_eq!(code(&answer), "bad_request", "{answer}");
    let mut huge = br#"{"version":1,"op":"config.apply","args":{"text":""#.to_vec();
    huge.resize(ctl::api::MAX_REQUEST + 4096, b'#');
    huge.extend_from_slice(b"\"}}\n");
    let answer = raw(socket, &huge);
    assert_eq!(code(&answer), "too_large", "{answer}");
    let answer = raw(socket, b"{\"version\":9,\"op\":\"stats\",\"args\":{}}\n");
    assert_eq!(code(&answer), "unsupported_version", "{answer}");
    unchanged("raw requests");

    // tgw not there: exit 3.
    let elsewhere = Ctl {
        socket: g.dir.path("nobody/tgw.sock"),
    };
    let stderr = elsewhere.refused("stats", 3);
    assert!(stderr.contains("no tgw listening"), "{stderr}");

    // Another user: exit 3, permission.
    if nix::unistd::geteuid().is_root() {
        // A copy of tgwctl that uid 65534 may run, wherever the build is.
        let copy = g.dir.path("tgwctl");
        std::fs::copy(tgwctl(), &copy).unwrap();
        let run = || {
            Command::new(&copy)
                .arg("--socket")
                .arg(socket)
                .args(["eip", "del", "2.2.2.11"])
                .uid(65534)
                .gid(65534)
                .output()
        };
        // Another test's thread may fork while the copy is still open for
        // writing, and then the child holds it: exec says ETXTBSY until
        // that child has exec'd in turn.
        let mut tries = 0;
        let out = loop {
            match run() {
                Err(e)
                    if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                        && tries < 100 =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.expect("run tgwctl as uid 65534"),
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("permission denied"), "{stderr}");
        unchanged("a client of another user");
    } else {
        eprintln!("skipped the other user's client: needs root");
    }
    assert!(c.ok("eip show").contains("2.2.2.11"));
}

#[test]
fn sighup_reads_the_file_again_and_a_broken_file_changes_nothing() {
    let mut g = Gateway::start("sighup", &[]);
    let c = &g.ctl;
    let hup = |g: &Gateway| {
        let status = Command::new("kill")
            .args(["-HUP", &g.daemon.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let original = std::fs::read_to_string(&g.config).unwrap();
    std::fs::write(
        &g.config,
        format!(
            "{original}\n[[eip]]\npublic = \"2.2.2.20\"\ntenant = \"t1\"\nprivate = \"10.0.0.9\"\n"
        ),
    )
    .unwrap();
    hup(&g);
    let deadline = Instant::now() + Duration::from_secs(10);
    while with(&c.json("eip show"), "public", "2.2.2.20").is_empty() {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not bind 2.2.2.20:\n{}",
            g.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        with(&c.json("eip show"), "public", "2.2.2.20"),
        [&json!({"public": "2.2.2.20", "tenant": "t1", "private": "10.0.0.9"})]
    );
    let state = c.config(&g.dir);

    // A broken file: refused, said in the log with its line, nothing changed.
    let broken = format!(
        "{original}\n[[eip]]\npublic = \"2.2.2.21\"\ntenant = \"t1\"\nprivate = \"10.0.0.300\"\n"
    );
    let line = broken.lines().count();
    std::fs::write(&g.config, broken).unwrap();
    hup(&g);
    let logged = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !g.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle} in the log:\n{}",
                g.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    logged(&format!("{}:{line}:", g.config.display()));
    assert!(g.log().contains("SIGHUP"), "{}", g.log());
    same_text(&c.config(&g.dir), &state, "SIGHUP of a broken file");

    // A file that changes a port: needs a restart, refused whole, even
    // its elastic IP.
    let port = format!(
        "{}\n[[eip]]\npublic = \"2.2.2.22\"\ntenant = \"t1\"\nprivate = \"10.0.0.22\"\n",
        original.replacen(
            "mac = \"02:00:00:00:00:01\"",
            "mac = \"02:00:00:00:00:09\"",
            1
        )
    );
    std::fs::write(&g.config, port).unwrap();
    hup(&g);
    logged("needs a restart");
    same_text(&c.config(&g.dir), &state, "SIGHUP of a port change");
    assert!(c.run("stats").status.success(), "tgw stopped answering");
    assert!(g.daemon.running(), "tgw stopped");
}

// ---- traffic: af_packet ports on veths in a namespace of the test ----

/// Captures every frame that arrives on the named interfaces, one line
/// each: `IFACE HEX`. Python 3, standard library only (as the scenario's).
const CAPTURE: &str = r#"
import select, socket, sys
socks = {}
for dev in sys.argv[1:]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((dev, 0))
    socks[s] = dev
print("capturing", flush=True)
while True:
    ready, _, _ = select.select(list(socks), [], [], 1)
    for s in ready:
        data, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:
            print(socks[s], data.hex(), flush=True)
"#;

struct Wire {
    net: netns::Netns,
    ns: String,
    capture: netns::ProcId,
}

impl Wire {
    fn send(&self, iface: &str, frame: &[u8]) {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        self.net
            .run_ok(&self.ns, &["python3", "-c", SEND, iface, &hex]);
    }

    /// The frames captured on `iface` so far.
    fn frames(&self, iface: &str) -> Vec<Vec<u8>> {
        self.net
            .stdout(self.capture)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(i, _)| *i == iface)
            .map(|(_, hex)| {
                (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect()
            })
            .collect()
    }
}

/// The TCP SYNs to port 22 that left in t1's tunnel (GRE key 1000, gretap)
/// for 10.0.0.7: their source ports.
fn tunnelled_syns(frames: &[Vec<u8>]) -> Vec<u16> {
    frames
        .iter()
        .filter_map(|f| {
            let (outer, rest) = etherparse::Ipv4Header::from_slice(f.get(14..)?).ok()?;
            if outer.protocol != etherparse::IpNumber(47) || outer.destination != [172, 168, 0, 11]
            {
                return None;
            }
            // GRE with a key: flags, protocol 0x6558, key; then Ethernet.
            if rest.get(2..8)? != [0x65, 0x58, 0, 0, 0x03, 0xe8] {
                return None;
            }
            let inner = etherparse::SlicedPacket::from_ethernet(rest.get(8..)?).ok()?;
            let Some(etherparse::NetSlice::Ipv4(ip)) = inner.net else {
                return None;
            };
            let Some(etherparse::TransportSlice::Tcp(tcp)) = inner.transport else {
                return None;
            };
            (ip.header().destination() == [10, 0, 0, 7]
                && tcp.destination_port() == 22
                && tcp.syn())
            .then(|| tcp.source_port())
        })
        .collect()
}

#[test]
fn traffic_follows_runtime_changes() {
    let mut net = match netns::Netns::new("control") {
        Ok(net) => net,
        Err(netns::Unavailable(why)) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let ns = net.add("gw");
    // Nothing of the kernel's own on the wires (IPv6 neighbour discovery).
    net.run_ok(
        &ns,
        &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
    );
    net.veth(&ns, "pub0", &ns, "pubB");
    net.veth(&ns, "und0", &ns, "undB");
    let dir = Scratch::new("control-traffic");
    let prefix = format!("tgw-test-control-traffic-{}", std::process::id());
    let _files = PrefixFiles(prefix.clone());
    // t1 starts without its elastic IP.
    let config = reference(
        &dir,
        &prefix,
        ["net_af_packet0,iface=pub0", "net_af_packet1,iface=und0"],
        &|t| {
            t.replacen(
                "[[eip]]\npublic = \"2.2.2.11\"\ntenant = \"t1\"\nprivate = \"10.0.0.7\"\n",
                "",
                1,
            )
        },
    );
    let tgw = net.spawn(&ns, "tgw", &[TGW, "--config", config.to_str().unwrap()]);
    let capture_script = dir.path("capture.py");
    std::fs::write(&capture_script, CAPTURE).unwrap();
    let capture = net.spawn(
        &ns,
        "capture",
        &["python3", capture_script.to_str().unwrap(), "pubB", "undB"],
    );
    net.wait_for_output(capture, "capturing", Duration::from_secs(10));
    let c = Ctl {
        socket: dir.path("ctl/tgw.sock"),
    };
    c.wait_ready(&mut || true, &|| net.stderr(tgw));
    let wire = Wire { net, ns, capture };

    // Sends a SYN from the client to 2.2.2.11:`dport`, then waits until
    // either it left in t1's tunnel or a drop was counted: which.
    let left = |sport: u16| {
        let syns = tunnelled_syns(&wire.frames("undB"));
        syns.iter().filter(|&&p| p == sport).count()
    };
    let attempt = |sport: u16, dport: u16| -> Result<(), Vec<(String, u64)>> {
        let before = c.drops();
        let sent = left(sport);
        wire.send("pubB", &syn(EIP1, sport, dport));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if left(sport) > sent {
                return Ok(());
            }
            let after = c.drops();
            if after != before {
                // Whatever increased, by how much.
                let grew = after
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let was = before.iter().find(|(b, _)| *b == k).map_or(0, |b| b.1);
                        (v > was).then(|| (k, v - was))
                    })
                    .collect();
                return Err(grew);
            }
            assert!(
                Instant::now() < deadline,
                "SYN from {sport}: neither forwarded nor counted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // No elastic IP yet: dropped.
    let unbound = attempt(41001, 22).expect_err("a SYN to an unbound address is dropped");
    assert_eq!(unbound.len(), 1, "{unbound:?}");
    let reason = unbound[0].0.clone();
    // Bound at run time: the same SYN reaches 10.0.0.7 in t1's tunnel.
    c.ok("eip add 2.2.2.11 tenant t1 private 10.0.0.7");
    attempt(41001, 22).expect("the SYN is translated once 2.2.2.11 is bound");
    // Unbound again: the same SYN is dropped, and counted. It ends the
    // flow the last one made as `revoked` if it meets it; the worker's
    // sweep of flows of an older epoch may have ended it first, and then
    // it is dropped as the first was (docs/decisions.md, "Epochs").
    let flows = |address: &str| c.json(&format!("flow show --address {address}"))["flows"].clone();
    assert_eq!(
        flows("2.2.2.11").as_array().map(Vec::len),
        Some(1),
        "the flow the SYN made"
    );
    c.ok("eip del 2.2.2.11");
    let dropped = attempt(41001, 22).expect_err("a SYN to 2.2.2.11 after eip del is dropped");
    assert!(
        dropped == [("revoked".to_owned(), 1)] || dropped == [(reason.clone(), 1)],
        "after eip del: {dropped:?}"
    );
    assert_eq!(
        flows("2.2.2.11"),
        json!([]),
        "the flow outlived its elastic IP"
    );
    assert_eq!(
        attempt(41001, 22),
        Err(vec![(reason, 1)]),
        "once the flow ended"
    );

    // The firewall: `in allow tcp dport 22` lets a new SYN in; once it is
    // deleted, the next is dropped as `firewall`.
    c.ok("eip add 2.2.2.11 tenant t1 private 10.0.0.7");
    attempt(41002, 22).expect("t1 lets TCP 22 in");
    let rules = c.json("rule show tenant t1");
    let allow22 = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["direction"] == "in" && r["dport"] == 22)
        .unwrap_or_else(|| panic!("{rules}"));
    assert!(allow22["flows"].as_u64() >= Some(2), "{allow22}");
    let handle = allow22["handle"].to_string();
    c.ok(&format!("rule del tenant t1 handle {handle}"));
    assert_eq!(
        attempt(41003, 22),
        Err(vec![("firewall".into(), 1)]),
        "after rule del"
    );
    // Put back at the top, it lets the next one in again.
    c.ok("rule add tenant t1 position 0 in allow tcp dport 22");
    attempt(41004, 22).expect("the rule is back");
}
