//! tgwctl as an operator meets it: every verb's words turned into the
//! request tgw receives, the answers printed as tables, and the exit codes
//! and messages of the real binary against a stand-in tgw on a Unix
//! socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;

use clap::Parser;
use ctl::api::{ApiError, ErrorCode, Op, Request, Response};
use ctl::cli::{render, request, Cli, Shape};
use ctl::client::Client;
use serde_json::{json, Value};

const TGWCTL: &str = env!("CARGO_BIN_EXE_tgwctl");

/// The request line `args` make, as JSON, with `files` standing in for
/// the files named.
fn sent_with(args: &[&str], files: &[(&str, &str)]) -> Result<(Value, Shape), String> {
    let cli = Cli::try_parse_from(std::iter::once("tgwctl").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let read = |name: &str| {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    let (op, shape) = request(cli.command, &read).map_err(|e| e.0)?;
    let mut v = serde_json::to_value(Request::new(op)).unwrap();
    v.as_object_mut().unwrap().remove("version");
    Ok((v, shape))
}

fn sent(args: &str) -> Value {
    let args: Vec<&str> = args.split_whitespace().collect();
    match sent_with(&args, &[]) {
        Ok((v, _)) => v,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

fn refused(args: &str) -> String {
    let args: Vec<&str> = args.split_whitespace().collect();
    match sent_with(&args, &[]) {
        Ok((v, _)) => panic!("{args:?} was taken: {v}"),
        Err(e) => e,
    }
}

#[test]
fn tenant_verbs() {
    let file = "[[tenant]]\nname = \"blue\"\nkey = 1000\nhosts = [\"172.168.0.11\"]\nprefixes = [\"10.0.0.0/24\"]\n[[tenant.route]]\nprefix = \"0.0.0.0/0\"\nto = \"public\"\n";
    let (v, shape) = sent_with(&["tenant", "add", "blue.toml"], &[("blue.toml", file)]).unwrap();
    assert_eq!(shape, Shape::Change);
    assert_eq!(
        v,
        json!({"op": "tenant.add", "args": {"tenant": {
            "name": "blue", "key": 1000, "hosts": ["172.168.0.11"],
            "prefixes": ["10.0.0.0/24"],
            "route": [{"prefix": "0.0.0.0/0", "to": "public"}],
        }}})
    );
    // The keys alone, from stdin, are the same tenant.
    let bare = "name = \"blue\"\nkey = 1000\n";
    let (v, _) = sent_with(&["tenant", "add", "-"], &[("-", bare)]).unwrap();
    assert_eq!(
        v,
        json!({"op": "tenant.add", "args": {"tenant": {"name": "blue", "key": 1000}}})
    );
    // Two tenants are one change.
    let two = "[[tenant]]\nname = \"a\"\n[[tenant]]\nname = \"b\"\n";
    let (v, _) = sent_with(&["tenant", "add", "f"], &[("f", two)]).unwrap();
    assert_eq!(
        v,
        json!({"op": "batch", "args": {"ops": [
            {"op": "tenant.add", "args": {"tenant": {"name": "a"}}},
            {"op": "tenant.add", "args": {"tenant": {"name": "b"}}},
        ]}})
    );
    let e = sent_with(&["tenant", "add", "f"], &[("f", "name = ")]).unwrap_err();
    assert!(e.starts_with("f:1: "), "{e}");
    // A syntax error names its line, as the config's own errors do.
    let broken = "name = \"blue\"\nkey = 1000\nhosts = [\"172.168.0.11\"\n";
    let e = sent_with(&["tenant", "add", "f"], &[("f", broken)]).unwrap_err();
    assert_eq!(e, "f:4: invalid array; expected `]`");
    let e = sent_with(&["tenant", "add", "missing.toml"], &[]).unwrap_err();
    assert!(e.contains("cannot read missing.toml"), "{e}");

    assert_eq!(
        sent("tenant del blue"),
        json!({"op": "tenant.del", "args": {"name": "blue"}})
    );
    assert_eq!(
        sent("tenant show"),
        json!({"op": "tenant.show", "args": {}})
    );
    assert_eq!(
        sent("tenant show blue"),
        json!({"op": "tenant.show", "args": {"name": "blue"}})
    );
}

#[test]
fn route_verbs() {
    assert_eq!(
        sent("route add 10.1.0.0/16 via 192.0.2.2 tenant blue"),
        json!({"op": "route.add", "args": {"tenant": "blue", "route": {"prefix": "10.1.0.0/16", "to": "192.0.2.2"}, "replace": false}})
    );
    for kind in ["public", "local", "blackhole"] {
        assert_eq!(
            sent(&format!("route add 0.0.0.0/0 {kind} --tenant blue")),
            json!({"op": "route.add", "args": {"tenant": "blue", "route": {"prefix": "0.0.0.0/0", "to": kind}, "replace": false}})
        );
    }
    assert_eq!(
        sent("route replace 10.1.0.0/16 tenant blue to 192.0.2.3"),
        json!({"op": "route.add", "args": {"tenant": "blue", "route": {"prefix": "10.1.0.0/16", "to": "192.0.2.3"}, "replace": true}})
    );
    // Global routes: `via` and `port` (`dev` as ip says it).
    assert_eq!(
        sent("route add 0.0.0.0/0 via 1.1.1.254 dev pub0"),
        json!({"op": "route.add", "args": {"route": {"prefix": "0.0.0.0/0", "via": "1.1.1.254", "port": "pub0"}, "replace": false}})
    );
    assert_eq!(
        sent("route del 10.1.0.0/16 tenant blue"),
        json!({"op": "route.del", "args": {"tenant": "blue", "prefix": "10.1.0.0/16"}})
    );
    assert_eq!(
        sent("route del 0.0.0.0/0"),
        json!({"op": "route.del", "args": {"prefix": "0.0.0.0/0"}})
    );
    assert_eq!(
        sent("route del 0.0.0.0/0 port pub0"),
        json!({"op": "route.del", "args": {"prefix": "0.0.0.0/0", "port": "pub0"}})
    );
    assert_eq!(sent("route show"), json!({"op": "route.show", "args": {}}));
    assert_eq!(
        sent("route show tenant blue"),
        json!({"op": "route.show", "args": {"tenant": "blue"}})
    );
    assert_eq!(sent("route show --tenant blue"), sent("route show blue"));

    assert!(refused("route add 10.1.0.0/16 tenant blue").contains("say where"));
    assert!(refused("route add 10.1.0.0/16 public via 192.0.2.2 tenant blue").contains("one of"));
    assert!(refused("route add 10.1.0.0/16 via").contains("`via` needs a value"));
    assert!(refused("route add 10.1.0.0/16 via 1.2.3.4 via 1.2.3.5").contains("twice"));
    assert!(refused("route add 10.1.0.0/16 via 1.2.3.4 metric 5").contains("unexpected `metric`"));
    assert!(refused("route add --tenant a 10.1.0.0/16 public tenant b").contains("two tenants"));
    assert!(refused("route del").contains("the prefix is missing"));
}

#[test]
fn eip_and_snat_verbs() {
    assert_eq!(
        sent("eip add 198.51.100.10 tenant blue private 10.0.0.5"),
        json!({"op": "eip.add", "args": {"eip": {"public": "198.51.100.10", "tenant": "blue", "private": "10.0.0.5"}}})
    );
    assert_eq!(
        sent("eip del 198.51.100.10"),
        json!({"op": "eip.del", "args": {"public": "198.51.100.10"}})
    );
    assert_eq!(sent("eip show"), json!({"op": "eip.show", "args": {}}));
    assert_eq!(
        sent("eip show tenant blue"),
        json!({"op": "eip.show", "args": {"tenant": "blue"}})
    );
    assert!(refused("eip del 198.51.100.10 tenant blue").contains("public address alone"));

    assert_eq!(
        sent("snat add tenant blue address 198.51.100.20 address 198.51.100.21 ports 1024-2047 max-blocks 4 filtering endpoint-independent"),
        json!({"op": "snat.add", "args": {"snat": {
            "tenant": "blue", "addresses": ["198.51.100.20", "198.51.100.21"],
            "ports": "1024-2047", "max_blocks": 4, "filtering": "endpoint-independent",
        }}})
    );
    assert_eq!(
        sent("snat add tenant blue addresses 198.51.100.20,198.51.100.21"),
        sent("snat add tenant blue 198.51.100.20 198.51.100.21")
    );
    assert_eq!(
        sent("snat del tenant blue"),
        json!({"op": "snat.del", "args": {"tenant": "blue"}})
    );
    assert_eq!(sent("snat del blue"), sent("snat del tenant blue"));
    assert_eq!(sent("snat show"), json!({"op": "snat.show", "args": {}}));
}

#[test]
fn rule_verbs() {
    assert_eq!(
        sent("rule add tenant blue in allow tcp dport 22"),
        json!({"op": "rule.add", "args": {"tenant": "blue", "rule": {"direction": "in", "action": "allow", "proto": "tcp", "dport": 22}}})
    );
    assert_eq!(
        sent("rule add tenant blue position 0 out deny udp dst 192.0.2.0/24 sport 1024-65535 src 10.0.0.0/24"),
        json!({"op": "rule.add", "args": {"tenant": "blue", "position": 0, "rule": {
            "direction": "out", "action": "deny", "proto": "udp", "dst": "192.0.2.0/24",
            "sport": "1024-65535", "src": "10.0.0.0/24",
        }}})
    );
    assert_eq!(
        sent("rule add --tenant blue in allow proto 1 icmp-type 8 icmp_code 0"),
        json!({"op": "rule.add", "args": {"tenant": "blue", "rule": {"direction": "in", "action": "allow", "proto": 1, "icmp_type": 8, "icmp_code": 0}}})
    );
    // Values tgw must judge are passed on as written.
    assert_eq!(
        sent("rule add tenant blue sideways maybe")["args"]["rule"],
        json!({"direction": "sideways", "action": "maybe"})
    );
    assert_eq!(
        sent("rule del tenant blue handle 7"),
        json!({"op": "rule.del", "args": {"tenant": "blue", "handle": 7}})
    );
    assert_eq!(
        sent("rule show tenant blue"),
        json!({"op": "rule.show", "args": {"tenant": "blue"}})
    );
    assert_eq!(sent("rule show"), json!({"op": "rule.show", "args": {}}));

    assert!(refused("rule add in allow tcp").contains("give the tenant"));
    assert!(refused("rule add tenant blue in").contains("the action (allow or deny) is missing"));
    assert!(
        refused("rule add tenant blue in allow tcp proto udp").contains("proto is given already")
    );
    assert!(refused("rule add tenant blue in allow tcp 22").contains("unexpected `22`"));
    assert!(refused("rule del tenant blue handle seven").contains("not a number"));
    assert!(refused("rule del handle 7").contains("give the tenant"));
}

#[test]
fn neigh_verbs() {
    assert_eq!(sent("neigh show"), json!({"op": "neigh.show", "args": {}}));
    assert_eq!(
        sent("neigh show tenant blue"),
        json!({"op": "neigh.show", "args": {"tenant": "blue"}})
    );
    assert_eq!(
        sent("neigh add 1.1.1.254 lladdr 02:00:00:00:00:fe dev pub0"),
        json!({"op": "neigh.add", "args": {"neighbour": {"port": "pub0", "ip": "1.1.1.254", "mac": "02:00:00:00:00:fe"}}})
    );
    assert_eq!(
        sent("neigh add 10.0.0.9 mac 02:00:00:00:00:09 tenant blue"),
        json!({"op": "neigh.add", "args": {"tenant": "blue", "neighbour": {"ip": "10.0.0.9", "mac": "02:00:00:00:00:09"}}})
    );
    assert_eq!(
        sent("neigh del 10.0.0.9 tenant blue"),
        json!({"op": "neigh.del", "args": {"tenant": "blue", "ip": "10.0.0.9"}})
    );
    assert_eq!(
        sent("neigh del 1.1.1.254 port pub0"),
        json!({"op": "neigh.del", "args": {"port": "pub0", "ip": "1.1.1.254"}})
    );
}

#[test]
fn flow_stats_and_config_verbs() {
    let (v, shape) = sent_with(
        &[
            "flow",
            "show",
            "--tenant",
            "blue",
            "--address",
            "10.0.0.5",
            "--port",
            "22",
            "--protocol",
            "tcp",
            "--limit",
            "1000",
            "--cursor",
            "abc",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(shape, Shape::Flows);
    assert_eq!(
        v,
        json!({"op": "flow.show", "args": {"filter": {"tenant": "blue", "address": "10.0.0.5", "port": 22, "protocol": "tcp"}, "limit": 1000, "cursor": "abc"}})
    );
    assert_eq!(
        sent("flow show"),
        json!({"op": "flow.show", "args": {"filter": {}}})
    );
    assert_eq!(
        sent("flow flush --address 10.0.0.5"),
        json!({"op": "flow.flush", "args": {"filter": {"address": "10.0.0.5"}}})
    );
    assert_eq!(
        sent("flow flush --all"),
        json!({"op": "flow.flush", "args": {"filter": {}}})
    );
    assert!(refused("flow flush").contains("--all"));
    // The address is IPv4 and the port a port: clap says so.
    assert!(refused("flow show --address 10.0.0").contains("--address"));
    assert!(refused("flow show --port 70000").contains("--port"));

    assert_eq!(sent("stats"), json!({"op": "stats", "args": {}}));
    let (v, shape) = sent_with(&["config", "show"], &[]).unwrap();
    assert_eq!(
        (v, shape),
        (json!({"op": "config.show", "args": {}}), Shape::ConfigText)
    );
    let (v, _) = sent_with(
        &["config", "apply", "/etc/tgw.toml", "--dry-run"],
        &[("/etc/tgw.toml", "[eal]\n")],
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"op": "config.apply", "args": {"text": "[eal]\n", "file": "/etc/tgw.toml", "dry_run": true}})
    );
    let (v, _) = sent_with(&["config", "apply", "-"], &[("-", "x")]).unwrap();
    assert_eq!(v["args"]["file"], "<stdin>");
    assert_eq!(v["args"]["dry_run"], false);
}

#[test]
fn offload_verbs() {
    let (v, shape) = sent_with(&["offload", "caps"], &[]).unwrap();
    assert_eq!(
        (v, shape),
        (json!({"op": "offload.caps", "args": {}}), Shape::Show)
    );
    let (v, shape) = sent_with(&["offload", "show"], &[]).unwrap();
    assert_eq!(
        (v, shape),
        (
            json!({"op": "offload.show", "args": {"testpmd": false}}),
            Shape::Flows
        )
    );
    let (v, shape) = sent_with(&["offload", "show", "--testpmd", "--limit", "5"], &[]).unwrap();
    assert_eq!(
        (v, shape),
        (
            json!({"op": "offload.show", "args": {"limit": 5, "testpmd": true}}),
            Shape::Testpmd
        )
    );
    assert_eq!(
        sent("offload stats"),
        json!({"op": "offload.stats", "args": {}})
    );
    let (v, shape) = sent_with(&["offload", "flush"], &[]).unwrap();
    assert_eq!(
        (v, shape),
        (json!({"op": "offload.flush", "args": {}}), Shape::Change)
    );
    assert!(refused("offload show --limit x").contains("--limit"));
    // --testpmd prints the commands as tgw wrote them.
    let text =
        "set raw_encap 1 eth / end_set\nflow create 0 ingress pattern eth / end actions drop / end";
    assert_eq!(
        render::human(&json!({"flows": [], "testpmd": text}), Shape::Testpmd),
        format!("{text}\n")
    );
}

#[test]
fn every_verb_has_examples_in_its_help() {
    use clap::CommandFactory;
    let mut checked = 0;
    for noun in Cli::command().get_subcommands_mut() {
        let name = noun.get_name().to_owned();
        if name == "help" {
            continue;
        }
        let verbs: Vec<clap::Command> = noun.get_subcommands().cloned().collect();
        let all = if verbs.is_empty() {
            vec![noun.clone()]
        } else {
            verbs
        };
        for mut verb in all {
            let help = verb.render_long_help().to_string();
            let verb_name = verb.get_name();
            let shown = if verb_name == name {
                format!("tgwctl {name}")
            } else {
                format!("tgwctl {name} {verb_name}")
            };
            assert!(
                help.contains("Example"),
                "{shown} --help has no examples:\n{help}"
            );
            assert!(
                help.contains(&shown),
                "{shown} --help has no example of it:\n{help}"
            );
            checked += 1;
        }
    }
    // 9 nouns with 3, 4 (route replace), 3, 3, 3, 3, 2, 4 (offload), 2
    // verbs, stats and top.
    assert_eq!(checked, 29);
}

#[test]
fn lists_print_as_aligned_tables() {
    let result = json!({"tenants": [
        {"name": "blue", "key": 1000, "hosts": ["172.168.0.11", "172.168.0.12"]},
        {"name": "green-long", "key": 7, "hosts": []},
    ]});
    assert_eq!(
        render::human(&result, Shape::Show),
        "\
NAME        KEY   HOSTS
blue        1000  172.168.0.11,172.168.0.12
green-long  7     -
"
    );
    // A key only some rows have is a column, `-` elsewhere.
    let rows =
        json!([{"handle": 1, "direction": "in"}, {"handle": 12, "direction": "out", "dport": 22}]);
    assert_eq!(
        render::human(&rows, Shape::Show),
        "\
HANDLE  DIRECTION  DPORT
1       in         -
12      out        22
"
    );
    assert_eq!(render::human(&json!({"eips": []}), Shape::Show), "(none)\n");
    assert_eq!(render::human(&json!([]), Shape::Show), "(none)\n");
    // A tenant's routes and rules are counted in the table; --json has them.
    let tenants = json!([{
        "name": "blue", "key": 1000, "slot": 0, "prefixes": ["10.0.0.0/24"],
        "routes": [{"prefix": "0.0.0.0/0", "to": "public"}, {"prefix": "10.1.0.0/16", "to": "172.168.0.12"}],
        "rules": [],
    }]);
    assert_eq!(
        render::human(&tenants, Shape::Show),
        "\
NAME  KEY   SLOT  PREFIXES     ROUTES  RULES
blue  1000  0     10.0.0.0/24  2       -
"
    );
}

#[test]
fn counters_print_as_aligned_lines_and_lists_under_their_names() {
    let stats = json!({
        "uptime_s": 12,
        "drops": {"ttl_expired": 3, "gre_bad_key": 10},
        "ports": [{"name": "pub0", "rx": 5}, {"name": "und0", "rx": 6}],
    });
    assert_eq!(
        render::human(&stats, Shape::Show),
        "\
uptime_s           12
drops.ttl_expired  3
drops.gre_bad_key  10

ports:
  NAME  RX
  pub0  5
  und0  6
"
    );
}

#[test]
fn flows_say_how_to_get_the_next_page() {
    let page = json!({"flows": [{"tenant": "blue", "proto": "tcp"}], "cursor": "c2"});
    assert_eq!(
        render::human(&page, Shape::Flows),
        "TENANT  PROTO\nblue    tcp\n(first 1 shown; more with --cursor c2)\n"
    );
    let named_next = json!({"flows": [], "next": "1.7"});
    assert_eq!(
        render::human(&named_next, Shape::Flows),
        "(none)\n(first 0 shown; more with --cursor 1.7)\n"
    );
    let last = json!({"flows": [{"tenant": "blue", "proto": "tcp"}], "cursor": null});
    assert_eq!(
        render::human(&last, Shape::Flows),
        "TENANT  PROTO\nblue    tcp\n"
    );
}

#[test]
fn changes_print_nothing_unless_tgw_says_something_and_config_is_its_text() {
    assert_eq!(render::human(&Value::Null, Shape::Change), "");
    assert_eq!(render::human(&json!({}), Shape::Change), "");
    assert_eq!(render::human(&json!({"changed": true}), Shape::Change), "");
    assert_eq!(render::human(&json!({"changed": false}), Shape::Change), "");
    assert_eq!(
        render::human(&json!({"changed": true, "handle": 7}), Shape::Change),
        "handle  7\n"
    );
    assert_eq!(
        render::human(&json!({"text": "[eal]\nmain_lcore = 0"}), Shape::ConfigText),
        "[eal]\nmain_lcore = 0\n"
    );
    assert_eq!(
        render::human(&json!("[eal]\n"), Shape::ConfigText),
        "[eal]\n"
    );
    assert_eq!(render::json(&json!({"a": 1})), "{\n  \"a\": 1\n}\n");
}

#[test]
fn a_config_apply_prints_a_line_a_change_and_whether_it_was_made() {
    let lines = json!(["+ eip 3.3.3.3", "- tenant \"t2\""]);
    assert_eq!(
        render::human(&json!({"changes": lines, "applied": false}), Shape::Plan),
        "+ eip 3.3.3.3\n- tenant \"t2\"\n(dry run: nothing changed)\n"
    );
    assert_eq!(
        render::human(&json!({"changes": lines, "applied": true}), Shape::Plan),
        "+ eip 3.3.3.3\n- tenant \"t2\"\n(applied)\n"
    );
    assert_eq!(
        render::human(&json!({"changes": [], "applied": true}), Shape::Plan),
        "(no change: the running state is the file's)\n"
    );
}

/// A stand-in tgw that answers the requests of one connection with
/// `answers` in turn and returns the request lines it got.
fn fake_tgw(path: &Path, answers: Vec<Response>) -> JoinHandle<Vec<Value>> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut got = Vec::new();
        for answer in answers {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let request: Value = serde_json::from_str(&line).unwrap();
            let mut answer = answer;
            answer.id = request["id"].as_u64();
            got.push(request);
            let mut out = serde_json::to_vec(&answer).unwrap();
            out.push(b'\n');
            writer.write_all(&out).unwrap();
        }
        got
    })
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tgwctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tgwctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(TGWCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_show_prints_a_table_and_exits_0() {
    let dir = Scratch::new("show");
    let socket = dir.0.join("tgw.sock");
    let answer = Response::ok(
        None,
        json!([{"public": "198.51.100.10", "tenant": "blue", "private": "10.0.0.5"}]),
    );
    let tgw = fake_tgw(&socket, vec![answer]);
    let out = tgwctl(&socket, &["eip", "show", "tenant", "blue"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "PUBLIC         TENANT  PRIVATE\n198.51.100.10  blue    10.0.0.5\n"
    );
    let got = tgw.join().unwrap();
    assert_eq!(got[0]["version"], 1);
    assert_eq!(got[0]["op"], "eip.show");
    assert_eq!(got[0]["args"], json!({"tenant": "blue"}));
}

#[test]
fn json_prints_the_result_as_sent_and_the_socket_comes_from_the_environment() {
    let dir = Scratch::new("json");
    let socket = dir.0.join("tgw.sock");
    let tgw = fake_tgw(
        &socket,
        vec![Response::ok(None, json!({"rules": [{"handle": 3}]}))],
    );
    let out = Command::new(TGWCTL)
        .args(["rule", "show", "--json"])
        .env("TGW_SOCKET", &socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json!({"rules": [{"handle": 3}]}));
    tgw.join().unwrap();
}

#[test]
fn a_refusal_is_printed_with_its_field_and_exits_1() {
    let dir = Scratch::new("refused");
    let socket = dir.0.join("tgw.sock");
    let error = ApiError::new(
        ErrorCode::Invalid,
        "192.0.2.9 is not one of the tenant's hosts",
    )
    .field("tenant.routes[0].to");
    let tgw = fake_tgw(&socket, vec![Response::err(None, error)]);
    let out = tgwctl(
        &socket,
        &[
            "route",
            "add",
            "10.1.0.0/16",
            "via",
            "192.0.2.9",
            "tenant",
            "blue",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "tgwctl: tenant.routes[0].to: 192.0.2.9 is not one of the tenant's hosts\n"
    );
    assert!(out.stdout.is_empty());
    tgw.join().unwrap();
}

#[test]
fn usage_errors_exit_2_without_connecting() {
    let dir = Scratch::new("usage");
    let socket = dir.0.join("absent.sock");
    for args in [
        &["route", "add", "10.0.0.0/8", "tenant", "blue"][..],
        &["flow", "flush"],
        &["frobnicate"],
    ] {
        let out = tgwctl(&socket, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("no tgw listening"),
            "{args:?} connected"
        );
    }
    let out = tgwctl(&socket, &["rule", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("tgwctl rule add tenant blue in allow tcp dport 22"));
}

#[test]
fn no_tgw_exits_3_and_says_where_it_looked() {
    let dir = Scratch::new("absent");
    // Nothing there at all.
    let socket = dir.0.join("absent.sock");
    let out = tgwctl(&socket, &["stats"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "tgwctl: no tgw listening on {} (is it running? --socket / [control] socket)\n",
            socket.display()
        )
    );
    // A socket left by a tgw that is gone.
    let stale = dir.0.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let out = tgwctl(&stale, &["stats"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("no tgw listening on"));
}

/// A refusal that carries no error (a broken or foreign peer) is a
/// refusal still: said so, exit 1. It printed nothing and exited 0.
#[test]
fn a_refusal_without_its_error_exits_1() {
    let dir = Scratch::new("bare-refusal");
    let socket = dir.0.join("tgw.sock");
    let mut bare = Response::ok(None, json!(null));
    bare.ok = false;
    let tgw = fake_tgw(&socket, vec![bare]);
    let out = tgwctl(&socket, &["stats"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused the request without saying why"),
        "{}",
        text(&out.stderr)
    );
    tgw.join().unwrap();
}

#[test]
fn tgw_closing_without_an_answer_exits_3() {
    let dir = Scratch::new("hangup");
    let socket = dir.0.join("tgw.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let tgw = std::thread::spawn(move || drop(listener.accept().unwrap()));
    let out = tgwctl(&socket, &["stats"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("closed the connection without answering"),
        "{}",
        text(&out.stderr)
    );
    tgw.join().unwrap();
}

#[test]
fn a_refusal_sent_before_the_request_is_read_is_still_shown() {
    // tgw refuses a client (not allowed, too many) and closes at once:
    // the client shows why, not a broken pipe.
    let dir = Scratch::new("early");
    let socket = dir.0.join("tgw.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let tgw = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let busy = Response::err(
            None,
            ApiError::new(
                ErrorCode::Unavailable,
                "16 clients are connected already; retry later",
            ),
        );
        let mut line = serde_json::to_vec(&busy).unwrap();
        line.push(b'\n');
        stream.write_all(&line).unwrap();
    });
    let mut client = Client::connect(&socket).unwrap();
    // tgw has answered and hung up before the request is written.
    tgw.join().unwrap();
    let error = client.call(Op::ConfigApply {
        text: "x".repeat(1 << 20),
        file: "f".into(),
        dry_run: false,
    });
    let error = error.expect_err("refused");
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert_eq!(
        error.message,
        "16 clients are connected already; retry later"
    );
}

#[test]
fn a_user_refused_by_tgw_itself_exits_3_too() {
    let dir = Scratch::new("peer");
    let socket = dir.0.join("tgw.sock");
    let error = ApiError::new(
        ErrorCode::Permission,
        "uid 65534 may not use the control socket: run as root",
    );
    let tgw = fake_tgw(&socket, vec![Response::err(None, error)]);
    let out = tgwctl(&socket, &["stats"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        "tgwctl: uid 65534 may not use the control socket: run as root\n"
    );
    tgw.join().unwrap();
}

#[test]
fn a_user_kept_out_by_the_socket_mode_is_told_to_be_root() {
    if !nix_euid_is_root() {
        eprintln!("skipped: needs root to run tgwctl as uid 65534");
        return;
    }
    let dir = Scratch::new("perm");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.0.join("tgw.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(TGWCTL)
        .arg("--socket")
        .arg(&socket)
        .arg("stats")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "tgwctl: permission denied on {}: tgwctl must run as root\n",
            socket.display()
        )
    );
}

fn nix_euid_is_root() -> bool {
    // Without a dependency for one call: /proc says who we are.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
