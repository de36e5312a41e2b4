//! `Rule::testpmd` checked by a real `dpdk-testpmd`'s command parser: the
//! commands of representative rules (every item and action kind tgw uses)
//! go to testpmd on a net_null port, and each must be parsed — a `flow
//! create` ends in the PMD's refusal ("Function not implemented"), never in
//! "Bad arguments" — and the raw encap/decap buffers testpmd builds from
//! the `set` lines (`show raw_encap N`) must be exactly the rule's bytes.
//!
//! The commands go to testpmd's stdin in interactive mode, not through
//! `--cmdline-file`: testpmd reads a command file with an output of -1, so
//! a syntax error there prints nothing and could not fail this test.
//! testpmd is found as perf's `--testpmd` default: `dpdk-testpmd` on PATH
//! (Debian's `dpdk` package, installed by scripts/setup), or `$TESTPMD`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use rte::flow::{Action, Attr, Item, Masked, Rule};

const MAC_A: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b];

fn eth(dst: [u8; 6], src: [u8; 6], ty: u16) -> Vec<u8> {
    let mut b = dst.to_vec();
    b.extend_from_slice(&src);
    b.extend_from_slice(&ty.to_be_bytes());
    b
}

/// Ethernet + IPv4 (RFC 791, no options; length and checksum left to the
/// NIC) + GRE with key (RFC 2890) carrying `proto`.
fn gre_tunnel(proto: u16, key: u32) -> Vec<u8> {
    let mut b = eth(MAC_B, MAC_A, 0x0800);
    b.extend_from_slice(&[0x45, 0x00, 0, 0, 0, 0, 0x40, 0x00, 64, 47, 0, 0]);
    b.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    b.extend_from_slice(&[0x20, 0x00]);
    b.extend_from_slice(&proto.to_be_bytes());
    b.extend_from_slice(&key.to_be_bytes());
    b
}

fn any_eth() -> Item {
    Item::Eth {
        dst: None,
        src: None,
        ether_type: None,
    }
}

/// Rules of every shape tgw installs, together using every item and
/// action kind.
fn representative_rules() -> Vec<Rule> {
    // Public side: a reply toward a tenant (DNAT, into the tunnel).
    let public = Rule {
        attr: Attr::INGRESS,
        pattern: vec![
            any_eth(),
            Item::Ipv4 {
                version_ihl: Some(0x45),
                tos: Some(Masked {
                    spec: 0,
                    mask: 0x03,
                }),
                fragment_offset: Some(Masked {
                    spec: 0x4000,
                    mask: 0x7fff,
                }),
                ttl: Some(Masked {
                    spec: 0,
                    mask: 0xfe,
                }),
                src: Some(Masked::<u32>::exact(0xc633_6401)),
                dst: Some(Masked::<u32>::exact(0xcb00_7105)),
                protocol: Some(6),
            },
            Item::Tcp {
                src: Some(Masked::<u16>::exact(443)),
                dst: Some(Masked::<u16>::exact(40001)),
                flags: Some(Masked {
                    spec: 0,
                    mask: 0x07,
                }),
            },
        ],
        actions: vec![
            Action::SetIpv4Dst(0x0a00_0005),
            Action::SetTpDst(51000),
            Action::DecTtl,
            Action::RawDecap(eth(MAC_A, MAC_B, 0x0800)),
            Action::RawEncap(gre_tunnel(0x0800, 1001)),
            Action::Count,
            Action::PortId(1),
        ],
    };
    // Underlay side, gretap, in the transfer domain.
    let mut decap = gre_tunnel(0x6558, 1002);
    decap.extend_from_slice(&eth(MAC_A, MAC_B, 0x0800));
    let underlay = Rule {
        attr: Attr {
            group: 1,
            priority: 2,
            ingress: false,
            egress: false,
            transfer: true,
        },
        pattern: vec![
            Item::Eth {
                dst: Some(Masked::<[u8; 6]>::exact(MAC_A)),
                src: None,
                ether_type: Some(0x0800),
            },
            // The header fields are on the public rule's IPv4 item: with
            // them here too this line would pass testpmd's 511 characters.
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: Some(Masked::<u32>::exact(0xc000_0202)),
                dst: Some(Masked::<u32>::exact(0xc000_0201)),
                protocol: Some(47),
            },
            Item::Gre {
                protocol: Some(0x6558),
                checksum_present: Some(false),
                key_present: Some(true),
                sequence_present: Some(false),
            },
            Item::GreKey(1002),
            any_eth(),
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: Some(Masked::<u32>::exact(0x0a00_0005)),
                dst: None,
                protocol: Some(17),
            },
            Item::Udp {
                src: Some(Masked::<u16>::exact(51000)),
                dst: Some(Masked::<u16>::exact(53)),
            },
        ],
        actions: vec![
            Action::RawDecap(decap),
            Action::RawEncap(eth(MAC_B, MAC_A, 0x0800)),
            Action::SetIpv4Src(0xcb00_7105),
            Action::SetTpSrc(40002),
            Action::DecTtl,
            Action::Count,
            Action::Age(30),
            Action::RepresentedPort(1),
        ],
    };
    // Partial offload: mark and steer to the owner's queue.
    let partial = Rule {
        attr: Attr::INGRESS,
        pattern: vec![
            Item::Eth {
                dst: Some(Masked {
                    spec: MAC_A,
                    mask: [0xff, 0xff, 0xff, 0, 0, 0],
                }),
                src: Some(Masked::<[u8; 6]>::exact(MAC_B)),
                ether_type: None,
            },
            Item::Ipv4 {
                version_ihl: None,
                tos: None,
                fragment_offset: None,
                ttl: None,
                src: None,
                dst: Some(Masked {
                    spec: 0xcb00_7100,
                    mask: 0xffff_ff00,
                }),
                protocol: None,
            },
            Item::Udp {
                src: None,
                dst: Some(Masked {
                    spec: 0x0440,
                    mask: 0xffc0,
                }),
            },
        ],
        actions: vec![Action::Mark(12345), Action::Queue(1)],
    };
    // Steering, marks and metadata of earlier groups, the rest.
    let steering = Rule {
        attr: Attr {
            group: 2,
            ..Attr::INGRESS
        },
        pattern: vec![
            Item::Mark(7),
            Item::Meta(Masked {
                spec: 0x10,
                mask: 0xf0,
            }),
        ],
        actions: vec![
            Action::SetMacSrc(MAC_A),
            Action::SetMacDst(MAC_B),
            Action::Rss(vec![0, 1]),
            Action::Jump(3),
        ],
    };
    let drop = Rule {
        attr: Attr {
            egress: true,
            ingress: false,
            ..Attr::INGRESS
        },
        pattern: vec![any_eth(), Item::Meta(Masked::<u32>::exact(9))],
        actions: vec![Action::Drop],
    };
    // Integrity checks of the outer and the inner header (a tunnel's
    // check rule), with the headers they speak of in the pattern.
    let any_ipv4 = Item::Ipv4 {
        version_ihl: None,
        tos: None,
        fragment_offset: None,
        ttl: None,
        src: None,
        dst: None,
        protocol: None,
    };
    let integrity = Rule {
        attr: Attr {
            group: 3,
            priority: 0,
            ingress: false,
            egress: false,
            transfer: true,
        },
        pattern: vec![
            any_eth(),
            any_ipv4.clone(),
            Item::Gre {
                protocol: Some(0x6558),
                checksum_present: None,
                key_present: None,
                sequence_present: None,
            },
            any_eth(),
            any_ipv4,
            Item::Integrity {
                level: 1,
                l3_ok: true,
                ipv4_csum_ok: true,
            },
            Item::Integrity {
                level: 2,
                l3_ok: false,
                ipv4_csum_ok: true,
            },
        ],
        actions: vec![Action::Jump(1)],
    };
    vec![public, underlay, partial, steering, drop, integrity]
}

/// One command's echo and what testpmd printed after it.
struct Answer<'a> {
    command: &'a str,
    output: &'a str,
}

/// Splits testpmd's interactive output at its prompts.
fn answers(out: &str) -> Vec<Answer<'_>> {
    out.split("testpmd> ")
        .skip(1)
        .map(|chunk| {
            let (command, output) = chunk.split_once('\n').unwrap_or((chunk, ""));
            Answer {
                command: command.trim_end(),
                output,
            }
        })
        .collect()
}

/// The bytes of a `show raw_encap/raw_decap` hex dump.
fn dumped_bytes(output: &str) -> Vec<u8> {
    output
        .lines()
        .filter_map(|l| {
            let (offset, rest) = l.split_once(": ")?;
            u32::from_str_radix(offset, 16).ok()?;
            Some(rest.split('|').next().unwrap_or("").to_owned())
        })
        .flat_map(|hex| {
            hex.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs testpmd on net_null0 with `commands` on stdin; its stdout and
/// stderr in the order they were written.
fn run_testpmd(commands: &str) -> String {
    const TAG: &str = "rte-testpmd-syntax-";
    common::sweep_stale_runtime_dirs(TAG);
    let prefix = format!("{TAG}{}", std::process::id());
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("commands");
    std::fs::write(&input, format!("{commands}quit\n")).expect("write commands");
    let log_path = dir.join("output");
    let log = std::fs::File::create(&log_path).expect("output file");
    let testpmd = std::env::var("TESTPMD").unwrap_or_else(|_| "dpdk-testpmd".into());
    let mut child = Command::new(&testpmd)
        .args([
            "-l",
            "0,1",
            "--no-pci",
            "--no-huge",
            "--no-shconf",
            "-m",
            "256",
        ])
        .arg(format!("--file-prefix={prefix}"))
        .args(["--log-level=lib.eal:error", "--vdev=net_null0", "--"])
        .args(["-i", "--total-num-mbufs=2048"])
        .stdin(std::fs::File::open(&input).expect("commands"))
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {testpmd}: {e} (scripts/setup installs Debian's dpdk package)")
        });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("testpmd still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&log_path).expect("output");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(std::path::Path::new("/var/run/dpdk").join(&prefix));
    assert!(status.success(), "testpmd failed ({status}):\n{out}");
    out
}

#[test]
fn testpmd_parses_every_exported_command_and_rebuilds_the_raw_bytes() {
    let rules = representative_rules();
    let mut commands = String::new();
    // What each `show` must print: (command, bytes).
    let mut expected_raw = Vec::new();
    for rule in &rules {
        let text = rule.testpmd(0);
        assert!(
            !text.contains('#'),
            "every raw buffer is expressible:\n{text}"
        );
        for line in text.lines() {
            commands.push_str(line);
            commands.push('\n');
            // After each `set`, ask testpmd what it built.
            if let Some(rest) = line.strip_prefix("set ") {
                let mut words = rest.split_whitespace();
                let kind = words.next().expect("kind");
                let index: usize = words.next().expect("index").parse().expect("index");
                let show = format!("show {kind} {index}");
                let bytes = rule
                    .actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::RawDecap(b) | Action::RawEncap(b) => Some(b.clone()),
                        _ => None,
                    })
                    .nth(index)
                    .expect("raw action of that index");
                commands.push_str(&show);
                commands.push('\n');
                expected_raw.push((show, bytes));
            }
        }
    }
    for line in commands.lines() {
        assert!(
            line.len() <= rte::flow::TESTPMD_LINE_MAX,
            "{} characters, more than testpmd reads in a line: {line}",
            line.len()
        );
    }
    let out = run_testpmd(&commands);
    let answers = answers(&out);

    let sent: Vec<&str> = commands.lines().chain(["quit"]).collect();
    let echoed: Vec<&str> = answers.iter().map(|a| a.command).collect();
    assert_eq!(echoed, sent, "testpmd read every command:\n{out}");
    let mut creates = 0;
    let mut expected_raw = expected_raw.iter();
    for a in &answers {
        for bad in ["Bad arguments", "bad command", "Ambiguous command"] {
            assert!(
                !a.output.contains(bad),
                "testpmd could not parse `{}`:\n{}",
                a.command,
                a.output
            );
        }
        if a.command.starts_with("flow create") {
            creates += 1;
            assert!(
                a.output.contains("Function not implemented"),
                "`{}` was parsed and reached the PMD, which refuses it:\n{}",
                a.command,
                a.output
            );
        }
        if a.command.starts_with("set ") {
            assert_eq!(a.output.trim(), "", "`{}` printed something", a.command);
        }
        if a.command.starts_with("show raw_") {
            let (show, bytes) = expected_raw.next().expect("one show per set line");
            assert_eq!(a.command, show);
            assert_eq!(
                &dumped_bytes(a.output),
                bytes,
                "`{}` after its set line:\n{}",
                a.command,
                a.output
            );
        }
    }
    assert_eq!(creates, rules.len());
    assert!(expected_raw.next().is_none(), "every show answered");
}
