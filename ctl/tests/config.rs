//! The configuration as an operator meets it: files in, `FILE:LINE:`
//! messages or a `Config` out.

use std::path::{Path, PathBuf};

use ctl::config::{load, parse, Config, CpuSet, Ipv4Cidr, MacAddr, Role, RxQueue};

fn cpus(list: &str) -> CpuSet {
    list.parse().expect("test CPU list")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The errors of a bad file in `tests/data/`, checked with CPUs 0-3, as
/// (line, message).
fn errors(name: &str) -> Vec<(usize, String)> {
    let path = data(name);
    let errs = match load(&path, &cpus("0-3")) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e,
    };
    let file = path.display().to_string();
    errs.iter()
        .map(|e| {
            assert_eq!(e.file, file);
            (e.line.expect("every problem has a line"), e.message.clone())
        })
        .collect()
}

/// Asserts the errors are exactly at `lines`, each message containing all
/// of its fragments (what is wrong and how to fix it).
fn assert_errors(got: &[(usize, String)], want: &[(usize, &[&str])]) {
    let got_lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
    let want_lines: Vec<usize> = want.iter().map(|(l, _)| *l).collect();
    assert_eq!(got_lines, want_lines, "lines of {got:#?}");
    for ((line, message), (_, fragments)) in got.iter().zip(want) {
        for f in *fragments {
            assert!(
                message.contains(f),
                "line {line}: {message:?} should contain {f:?}"
            );
        }
    }
}

fn valid(name: &str, cpu_list: &str) -> Config {
    match load(&data(name), &cpus(cpu_list)) {
        Ok(c) => c,
        Err(e) => panic!("{name} was refused:\n{e}"),
    }
}

#[test]
fn syntax_error_is_one_error_with_its_line() {
    assert_errors(
        &errors("syntax.toml"),
        &[(5, &["TOML syntax error", "invalid table header", "]]"])],
    );
}

#[test]
fn unterminated_string_points_at_its_line() {
    let text = "[eal]\nfile_prefix = \"tgw\n[[port]]\n";
    let e = parse(text, "x.toml", &cpus("0-1")).unwrap_err();
    assert_eq!(e.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(2), "{e}");
}

#[test]
fn duplicate_port_names_the_first_definition() {
    let path = data("duplicate-port.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let e = parse(&text, "examples/bad.toml", &cpus("0-3")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "examples/bad.toml:14: port \"pub0\" is defined twice (first at line 5); give each [[port]] a unique name"
    );
}

#[test]
fn duplicate_devices_compare_names_not_devargs() {
    assert_errors(
        &errors("duplicate-device.toml"),
        &[
            (
                9,
                &[
                    "\"net_null0\"",
                    "already used by the port at line 4",
                    "its own device",
                ],
            ),
            (
                19,
                &[
                    "\"0000:03:00.0\"",
                    "already used by the port at line 14",
                    "its own device",
                ],
            ),
        ],
    );
}

#[test]
fn unknown_role_lists_the_valid_ones() {
    // The missing underlay role is not reported on top: the unknown role is
    // the cause.
    assert_errors(
        &errors("unknown-role.toml"),
        &[(
            10,
            &["unknown role \"internet\"", "\"public\" or \"underlay\""],
        )],
    );
}

#[test]
fn impossible_worker_lcores() {
    assert_errors(
        &errors("lcores.toml"),
        &[
            (
                21,
                &[
                    "worker lcore 0 is the main lcore (line 4)",
                    "pick another CPU",
                ],
            ),
            (
                25,
                &[
                    "worker lcore 5 is not a CPU",
                    "usable: 0-3",
                    "pick one of those",
                ],
            ),
            (
                29,
                &[
                    "worker lcore 1 is already used by the worker at line 17",
                    "its own lcore",
                ],
            ),
            (
                33,
                &[
                    "worker lcore 200 is impossible",
                    "RTE_MAX_LCORE is 128",
                    "below 128",
                ],
            ),
        ],
    );
}

/// Two workers on a machine of two CPUs: the second lcore runs on the
/// main lcore's CPU, and EAL is told so with `--lcores`.
#[test]
fn workers_may_share_a_cpu_when_told_which() {
    let ports = "[[port]]\nname = \"p\"\ndevice = \"net_null0\"\nrole = \"public\"\n\
                 [[port]]\nname = \"u\"\ndevice = \"net_null1\"\nrole = \"underlay\"\n";
    let two = format!(
        "{ports}[[worker]]\nlcore = 1\nrx = [\"p:0\", \"u:0\"]\n\
         [[worker]]\nlcore = 2\ncpu = 0\nrx = [\"p:1\", \"u:1\"]\n"
    );
    let config = parse(&two, "x.toml", &cpus("0-1")).unwrap();
    assert_eq!(
        config
            .workers
            .iter()
            .map(|w| (w.lcore, w.cpu))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 0)]
    );
    assert_eq!(
        config.eal_args()[..4],
        ["--lcores", "0@0,1@1,2@0", "--main-lcore", "0"]
    );

    // Without `cpu`, lcore 2 must be a CPU itself; with one, the CPU must be.
    let e = parse(&two.replace("cpu = 0\n", ""), "x.toml", &cpus("0-1")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("x.toml:13: worker lcore 2 is not a CPU")
            && e.to_string().contains("put the lcore on one with cpu = N"),
        "{e}"
    );
    let e = parse(&two.replace("cpu = 0", "cpu = 7"), "x.toml", &cpus("0-1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.toml:14: worker cpu 7 is not a CPU this process may use (usable: 0-1); pick one of those"
    );
}

#[test]
fn worker_on_the_default_main_lcore() {
    let text = "[[port]]\nname = \"p\"\ndevice = \"net_null0\"\nrole = \"public\"\n\
                [[port]]\nname = \"u\"\ndevice = \"net_null1\"\nrole = \"underlay\"\n\
                [[worker]]\nlcore = 0\nrx = [\"p:0\", \"u:0\"]\n";
    let e = parse(text, "x.toml", &cpus("0-1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.toml:10: worker lcore 0 is the main lcore (the default); the control plane runs there, so pick another CPU for the worker or another [eal] main_lcore"
    );
}

#[test]
fn main_lcore_must_be_usable() {
    assert_errors(
        &errors("main-lcore.toml"),
        &[(
            3,
            &[
                "main_lcore 7 is not a usable CPU",
                "usable: 0-3",
                "set [eal] main_lcore",
            ],
        )],
    );
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    assert_errors(
        &errors("unknown-key.toml"),
        &[
            (
                4,
                &[
                    "[eal]",
                    "unknown field `hugepage`",
                    "`hugepages`",
                    "fix its spelling",
                ],
            ),
            (
                10,
                &[
                    "[[port]]",
                    "unknown field `mtuu`",
                    "`mtu`",
                    "`rx_desc`",
                    "fix its spelling",
                ],
            ),
            (
                21,
                &[
                    "unknown key `statsd`",
                    "`control`, `metrics`",
                    "`eal`, `mempool`, `port`, `worker`",
                ],
            ),
        ],
    );
}

#[test]
fn wrong_types_are_each_reported_and_hide_nothing_else() {
    // No "has no rx" for the worker whose rx is a string.
    assert_errors(
        &errors("wrong-type.toml"),
        &[
            (
                4,
                &["[eal] `memory_mb`", "string \"512\"", "expected an integer"],
            ),
            (5, &["[eal] `hugepages`", "expected true or false"]),
            (
                11,
                &["[[port]] `mtu`", "floating point", "expected an integer"],
            ),
            (20, &["[[worker]] `rx`", "expected an array"]),
        ],
    );
}

#[test]
fn a_queue_polled_twice() {
    assert_errors(
        &errors("queue-twice.toml"),
        &[(
            18,
            &[
                "queue pub0:0 is polled twice (first by the worker on lcore 1, line 14)",
                "exactly one worker",
            ],
        )],
    );
}

#[test]
fn queues_must_be_contiguous_from_zero() {
    assert_errors(
        &errors("non-contiguous.toml"),
        &[(
            20,
            &[
                "port \"pub0\" queue 2 is polled but queue 1 is not",
                "from 0 without gaps",
                "\"pub0:1\"",
            ],
        )],
    );
}

#[test]
fn every_port_is_polled() {
    assert_errors(
        &errors("not-polled.toml"),
        &[(
            8,
            &[
                "port \"und0\" is not polled by any worker",
                "add \"und0:0\"",
            ],
        )],
    );
}

#[test]
fn mempool_too_small_says_how_many_are_needed() {
    assert_errors(
        &errors("mempool-small.toml"),
        &[(
            11,
            &[
                "mbufs 14137 is too few",
                "descriptors of all ports (6144)",
                "2 worker(s) × (cache_size 128 + 96 in flight",
                "(640)",
                "punt, inject and handoff rings (6 × 1023)",
                "[arp] max_held 1024",
                "fragments parked and being cut (192)",
                "need 14138",
                "at least 14138",
                "16383",
            ],
        )],
    );
    // One more mbuf is enough: the formula is exact.
    let text = std::fs::read_to_string(data("mempool-small.toml")).unwrap();
    let one_more = text.replace("mbufs = 14137", "mbufs = 14138");
    let config = parse(&one_more, "x.toml", &cpus("0-3")).unwrap();
    assert_eq!(config.mbufs_needed(), 14138);
    // Issue 9, defect 2: the frames the resolver holds come out of the
    // pool too, so holding one fewer makes do with one mbuf fewer.
    let held_less = format!("{text}\n[arp]\nmax_held = 1023\n");
    assert_eq!(
        parse(&held_less, "x.toml", &cpus("0-3"))
            .unwrap()
            .mbufs_needed(),
        14137
    );
}

#[test]
fn multiple_errors_are_reported_together() {
    assert_errors(
        &errors("multiple.toml"),
        &[
            (4, &["file_prefix \"tgw/x\"", "A-Z a-z 0-9"]),
            (7, &["cache_size 1024 is out of range", "0..=512"]),
            (
                13,
                &[
                    "mac \"02:00:00:00:00\" is not a MAC address",
                    "02:00:00:00:00:01",
                ],
            ),
            (
                16,
                &["port name \"und 0\" is not allowed", "A-Z a-z 0-9 _ -"],
            ),
            (19, &["address \"172.168.0.1/33\"", "0..=32"]),
            (20, &["rx_desc 1000", "power of two"]),
            (24, &["unknown port \"und1\"", "known ports: pub0, und 0"]),
        ],
    );
}

#[test]
fn display_is_one_file_line_message_per_line() {
    let path = data("lcores.toml");
    let e = load(&path, &cpus("0-3")).unwrap_err();
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    let prefix = format!("{}:21: ", path.display());
    assert!(lines[0].starts_with(&prefix), "{text}");
    assert!(!text.ends_with('\n'));
}

#[test]
fn unreadable_file() {
    let e = load(Path::new("/nonexistent/tgw.toml"), &cpus("0")).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.0[0].line, None);
    let text = e.to_string();
    assert!(
        text.starts_with("/nonexistent/tgw.toml: cannot read: "),
        "{text}"
    );
}

/// A valid configuration with `extra` spliced in after line 4 (inside
/// `[[port]] pub0`), or appended when it starts with a table header.
fn with(extra: &str) -> Result<Config, Vec<(usize, String)>> {
    let base = "[[port]]\nname = \"pub0\"\ndevice = \"net_null0\"\nrole = \"public\"\n";
    let rest = "[[port]]\nname = \"und0\"\ndevice = \"net_null1\"\nrole = \"underlay\"\n\
                [[worker]]\nlcore = 1\nrx = [\"pub0:0\", \"und0:0\"]\n";
    let text = if extra.starts_with('[') {
        format!("{base}{rest}{extra}")
    } else {
        format!("{base}{extra}{rest}")
    };
    parse(&text, "x.toml", &cpus("0-1")).map_err(|e| {
        e.iter()
            .map(|e| (e.line.unwrap_or(0), e.message.clone()))
            .collect()
    })
}

#[test]
fn port_field_rules() {
    let cases: &[(&str, &[&str])] = &[
        ("mtu = 67\n", &["mtu 67 is out of range", "68..=9000"]),
        ("mtu = 9001\n", &["mtu 9001 is out of range"]),
        ("rx_desc = 32\n", &["rx_desc 32", "64..=4096"]),
        ("tx_desc = 8192\n", &["tx_desc 8192", "power of two"]),
        ("tx_desc = 768\n", &["tx_desc 768", "power of two"]),
        ("mac = \"01:00:5e:00:00:01\"\n", &["not a unicast address"]),
        (
            "peer_mac = \"ff:ff:ff:ff:ff:ff\"\n",
            &["peer_mac ff:ff:ff:ff:ff:ff is not a unicast"],
        ),
        ("peer_mac = \"00:00:00:00:00:00\"\n", &["not a unicast"]),
        (
            "addresses = [\"203.0.113.1\"]\n",
            &["not an IPv4 CIDR", "203.0.113.1/24"],
        ),
        (
            "addresses = [\"203.0.113.0/24\"]\n",
            &["network address", "203.0.113.1/24"],
        ),
        (
            "addresses = [\"203.0.113.255/24\"]\n",
            &["broadcast address"],
        ),
        (
            "addresses = [\"224.0.0.1/24\"]\n",
            &["cannot be the gateway's own"],
        ),
        (
            "addresses = [\"10.0.0.1/8\", \"10.0.0.1/16\"]\n",
            &["10.0.0.1 is already assigned at line 5"],
        ),
        (
            "mtu = 9000\n",
            &["does not fit in an mbuf", "data_room to at least 9146"],
        ),
    ];
    for (extra, fragments) in cases {
        let errs = with(extra).expect_err(extra);
        assert_errors(&errs, &[(5, fragments)]);
    }
}

#[test]
fn port_names_and_devices() {
    let bad_name = "[[port]]\nname = \"a-very-long-port-name-of-33-chars\"\ndevice = \"net_null2\"\nrole = \"public\"\n";
    let errs = with(bad_name).unwrap_err();
    assert_errors(
        &errs,
        &[(13, &["port name", "1 to 32"]), (13, &["not polled"])],
    );

    for (device, fragment) in [
        ("eth0", "neither a DPDK vdev"),
        ("net_", "neither a DPDK vdev"),
        ("", "neither a DPDK vdev"),
        (
            "03:00.0",
            "write all of domain:bus:device.function in lowercase",
        ),
        ("0000:AF:00.0", "in lowercase"),
        ("0000:03:20.0", "device number 0x20"),
    ] {
        let port = format!("[[port]]\nname = \"x\"\ndevice = \"{device}\"\nrole = \"public\"\n");
        let errs = with(&port).unwrap_err();
        assert_errors(&errs, &[(13, &["not polled"]), (14, &[fragment])]);
    }
}

#[test]
fn ports_of_both_roles_and_a_worker_are_required() {
    let text = "[[port]]\nname = \"pub0\"\ndevice = \"net_null0\"\nrole = \"public\"\n";
    let errs: Vec<(usize, String)> = parse(text, "x.toml", &cpus("0-1"))
        .unwrap_err()
        .iter()
        .map(|e| (e.line.unwrap(), e.message.clone()))
        .collect();
    assert_errors(
        &errs,
        &[
            (
                1,
                &[
                    "no port has role = \"underlay\"",
                    "add a [[port]] with role = \"underlay\"",
                ],
            ),
            (1, &["no [[worker]] is defined", "add one"]),
        ],
    );
    let errs: Vec<String> = parse("", "x.toml", &cpus("0-1"))
        .unwrap_err()
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("no [[port]] is defined"));
    assert!(errs[1].starts_with("no [[worker]] is defined"));
}

#[test]
fn mempool_cache_rules() {
    let errs = with("[mempool]\nmbufs = 300\ncache_size = 256\n").unwrap_err();
    assert_errors(
        &errs,
        &[(
            14,
            &[
                "cache_size 256 is more than mbufs / 1.5 (200)",
                "at least 384",
            ],
        )],
    );
    let errs = with("[mempool]\ndata_room = 128\n").unwrap_err();
    assert_errors(&errs, &[(13, &["data_room 128 is out of range"])]);
}

#[test]
fn eal_rules() {
    let errs = with("[eal]\nmemory_mb = 16\nhugepages = false\n").unwrap_err();
    assert_errors(
        &errs,
        &[(
            13,
            &[
                "memory_mb 16 cannot hold the mempool",
                "hugepages = false",
                "at least",
            ],
        )],
    );
    // With hugepages -m is only what EAL reserves up front.
    with("[eal]\nmemory_mb = 16\n").unwrap();

    let errs = with("[eal]\nextra_args = [\"--no-shconf\", \"-l\", \"--file-prefix=x\", \"\"]\n")
        .unwrap_err();
    assert_errors(
        &errs,
        &[
            (
                13,
                &[
                    "\"-l\" contradicts",
                    "[[worker]] lcore and [eal] main_lcore",
                ],
            ),
            (13, &["\"--file-prefix=x\"", "[eal] file_prefix"]),
            (13, &["empty argument"]),
        ],
    );
}

#[test]
fn inline_tables_are_accepted_too() {
    let text = "eal = { main_lcore = 1 }\n\
                port = [{ name = \"p\", device = \"net_null0\", role = \"public\" },\n\
                        { name = \"u\", device = \"net_null1\", role = \"underlay\", mtuu = 1 }]\n\
                worker = [{ lcore = 0, rx = [\"p:0\", \"u:0\"] }]\n";
    let e = parse(text, "x.toml", &cpus("0-1")).unwrap_err();
    assert_eq!(e.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(3));
    assert!(e.0[0].message.contains("unknown field `mtuu`"), "{e}");
    let fixed = text.replace(", mtuu = 1", "");
    let config = parse(&fixed, "x.toml", &cpus("0-1")).unwrap();
    assert_eq!(config.eal.main_lcore, 1);
    assert_eq!(config.workers[0].lcore, 0);
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn examples_are_valid() {
    let files = examples();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(names.contains(&"l2fwd-null.toml".to_owned()), "{names:?}");
    assert!(names.contains(&"l2fwd-memif.toml".to_owned()), "{names:?}");
    for path in files {
        if let Err(e) = load(&path, &cpus("0-1")) {
            panic!("{} is refused:\n{e}", path.display());
        }
    }
}

#[test]
fn null_example_model_and_eal_args() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/l2fwd-null.toml");
    let config = load(&path, &cpus("0-1")).unwrap();
    assert_eq!(config.ports.len(), 2);
    let (i, pub0) = config.port("pub0").unwrap();
    assert_eq!(i, 0);
    assert_eq!(pub0.role, Role::Public);
    assert_eq!(pub0.dpdk_name(), "net_null0");
    assert_eq!(pub0.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    assert_eq!(pub0.peer_mac, None);
    assert_eq!(
        pub0.addresses,
        [Ipv4Cidr {
            addr: [1, 1, 1, 1].into(),
            len: 24
        }]
    );
    assert_eq!((pub0.mtu, pub0.rx_desc, pub0.tx_desc), (1500, 1024, 1024));
    assert_eq!(config.ports[1].role, Role::Underlay);
    assert_eq!(config.workers.len(), 1);
    assert_eq!(
        config.workers[0].rx,
        [RxQueue { port: 0, queue: 0 }, RxQueue { port: 1, queue: 0 }]
    );
    assert_eq!((config.rx_queues(0), config.rx_queues(1)), (1, 1));
    assert_eq!(config.tx_queues(), 1);
    assert_eq!(
        config.eal_args(),
        [
            "-l",
            "0,1",
            "--main-lcore",
            "0",
            "--file-prefix",
            "tgw-null",
            "--no-huge",
            "-m",
            "256",
            "--vdev=net_null0",
            "--vdev=net_null1",
            "--no-pci",
        ]
    );
}

#[test]
fn memif_example_names_its_devices() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/l2fwd-memif.toml");
    let config = load(&path, &cpus("0-1")).unwrap();
    assert_eq!(config.ports[0].dpdk_name(), "net_memif0");
    assert_eq!(config.ports[1].dpdk_name(), "net_memif1");
    assert!(config.ports[0]
        .devargs()
        .is_some_and(|a| a.contains("socket=/run/tgw/")));
    assert!(config
        .eal_args()
        .iter()
        .any(|a| a.starts_with("--vdev=net_memif0,role=server")));
    assert!(config.eal.hugepages);
}

#[test]
fn pci_config_eal_args_and_queues() {
    let config = valid("pci.toml", "0-3");
    assert!(config.ports[0].is_pci());
    assert_eq!(config.ports[0].dpdk_name(), "0000:03:00.0");
    assert_eq!(config.ports[0].devargs(), Some("txq_inline_max=128"));
    assert!(!config.ports[2].is_pci());
    assert_eq!(config.ports[2].dpdk_name(), "net_tap0");
    assert_eq!(
        config.eal_args(),
        [
            "-l",
            "0,1,2",
            "--main-lcore",
            "0",
            "--file-prefix",
            "tgw",
            "-m",
            "512",
            "--in-memory",
            "--vdev=net_tap0,iface=tgw0",
            "-a",
            "0000:03:00.0,txq_inline_max=128",
            "-a",
            "0000:03:00.1",
            "--log-level=pmd.net.mlx5:8",
        ]
    );
    assert_eq!(
        (
            config.rx_queues(0),
            config.rx_queues(1),
            config.rx_queues(2)
        ),
        (2, 2, 1)
    );
    assert_eq!(config.rx_queues(3), 0);
    assert_eq!(config.tx_queues(), 2);
    // Worker order is file order: worker 0 (lcore 2) owns TX queue 0.
    assert_eq!(config.workers[0].lcore, 2);
    // Descriptors 2×1024 + 2×1024 + 2×1024 + 2×1024 + 1×1024 + 2×1024, the
    // two workers 2×(256 + 32×(1 + 3 ports)) (an RX burst and a TX buffer
    // for each port) and the main lcore 256 + 64, the punt and inject
    // rings of two workers and two handoff rings 6×1023, the resolver's
    // hold of 1024, and 2×64 parked fragments and the 64 pieces of a
    // datagram being cut.
    let b = config.mbuf_budget();
    assert_eq!(
        (b.descriptors, b.lcores, b.rings, b.held, b.fragments),
        (11 * 1024, 1088, 6 * 1023, 1024, 3 * 64)
    );
    assert_eq!(
        config.mbufs_needed(),
        11 * 1024 + 1088 + 6 * 1023 + 1024 + 3 * 64
    );
}

#[test]
fn defaults_apply() {
    let config = with("").unwrap();
    assert_eq!(config.eal, ctl::config::Eal::default());
    assert_eq!(config.mempool.mbufs, 32767);
    assert_eq!(config.mempool.cache_size, 256);
    assert_eq!(config.mempool.data_room, 2176);
    assert_eq!(config.eal.file_prefix, "tgw");
    assert!(config.eal.hugepages);
    assert_eq!(config.eal.memory_mb, 512);
}

/// No input may panic: every prefix of a valid file and every line
/// replaced by junk is parsed to a result.
#[test]
fn no_panic_on_damaged_input() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/l2fwd-memif.toml"),
    )
    .unwrap();
    let set = cpus("0-1");
    for (i, _) in text.char_indices() {
        let _ = parse(&text[..i], "x.toml", &set);
    }
    let lines: Vec<&str> = text.lines().collect();
    let junk = [
        "=",
        "[[",
        "x = ",
        "mtu = -1",
        "lcore = 99999999999999",
        "rx = [\":\", \"::\", \"p:\", \":0\", \"pub0:-1\"]",
        "addresses = [\"/\", \"1.1.1.1/\"]",
        "[[worker]]",
        "[[port]]",
        "device = \",\"",
        "name = \"é\"",
        "mbufs = 0",
        "cache_size = -5",
    ];
    for i in 0..lines.len() {
        for j in junk {
            let mut damaged = lines.clone();
            damaged[i] = j;
            let _ = parse(&damaged.join("\n"), "x.toml", &set);
        }
    }
}

#[test]
fn dataplane_watchdog() {
    use ctl::config::{WATCHDOG_DEFAULT_MS, WATCHDOG_MIN_MS};
    assert_eq!(with("").unwrap().dataplane.watchdog_ms, WATCHDOG_DEFAULT_MS);
    for ms in [0, WATCHDOG_MIN_MS, 60_000] {
        let text = format!("[dataplane]\nwatchdog_ms = {ms}\n");
        assert_eq!(with(&text).unwrap().dataplane.watchdog_ms, ms);
    }
    let errs = with("[dataplane]\nwatchdog_ms = 20\n").unwrap_err();
    assert_errors(&errs, &[(13, &["watchdog_ms 20 is too short", "0 (off)"])]);
    let errs = with("[dataplane]\nwatchdog_ms = -1\n").unwrap_err();
    assert_errors(&errs, &[(13, &["watchdog_ms -1 is out of range"])]);
}

#[test]
fn dataplane_mode() {
    use ctl::config::{Dataplane, Mode};
    assert_eq!(with("").unwrap().dataplane, Dataplane::default());
    assert_eq!(Dataplane::default().mode, Mode::Gateway);
    assert_eq!(with("[dataplane]\n").unwrap().dataplane.mode, Mode::Gateway);
    for mode in Mode::ALL {
        let text = format!("[dataplane]\nmode = \"{mode}\"\n");
        assert_eq!(with(&text).unwrap().dataplane.mode, mode);
    }
    assert_eq!(
        (Mode::Gateway.as_str(), Mode::L2fwd.to_string()),
        ("gateway", "l2fwd".to_owned())
    );

    let errs = with("[dataplane]\nmode = \"l3fwd\"\n").unwrap_err();
    assert_errors(
        &errs,
        &[(
            13,
            &[
                "[dataplane] unknown mode \"l3fwd\"",
                "use \"gateway\" (",
                ") or \"l2fwd\" (",
            ],
        )],
    );
    // Modes are spelt exactly.
    let errs = with("[dataplane]\nmode = \"L2fwd\"\n").unwrap_err();
    assert_errors(&errs, &[(13, &["unknown mode \"L2fwd\""])]);
    let errs = with("[dataplane]\nmode = 2\n").unwrap_err();
    assert_errors(&errs, &[(13, &["[dataplane] `mode`", "expected a string"])]);
    let errs = with("[dataplane]\nmodes = \"l2fwd\"\n").unwrap_err();
    assert_errors(
        &errs,
        &[(13, &["[dataplane]: unknown field `modes`", "`mode`"])],
    );
    let errs = with("[dataplan]\nmode = \"l2fwd\"\n").unwrap_err();
    assert_errors(&errs, &[(12, &["unknown key `dataplan`", "`dataplane`"])]);
    // A top-level key, so before the first table.
    let text = "dataplane = \"l2fwd\"\n[[port]]\nname = \"p\"\ndevice = \"net_null0\"\nrole = \"public\"\n\
                [[port]]\nname = \"u\"\ndevice = \"net_null1\"\nrole = \"underlay\"\n\
                [[worker]]\nlcore = 1\nrx = [\"p:0\", \"u:0\"]\n";
    let e = parse(text, "x.toml", &cpus("0-1")).unwrap_err();
    assert_eq!(e.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(1));
    assert!(
        e.0[0].message.contains("[dataplane] must be a table"),
        "{e}"
    );
}

#[test]
fn offload_defaults_and_values() {
    use ctl::config::{Offload, OffloadMode, OuterDf};
    let d = with("").unwrap().offload;
    assert_eq!(d, Offload::default());
    assert_eq!(d.mode, OffloadMode::Auto);
    assert_eq!(d.outer_df, OuterDf::Copy, "today's exact behaviour");
    assert_eq!(d.per_tenant(), 65536 / 4);
    assert_eq!(with("[offload]\n").unwrap().offload, Offload::default());
    for mode in OffloadMode::ALL {
        let text = format!("[offload]\nmode = \"{mode}\"\n");
        assert_eq!(with(&text).unwrap().offload.mode, mode);
    }
    let text = "[offload]\nmode = \"shadow\"\nmax_flows = 100\ntenant_share = 1\n\
                query_interval_ms = 10\nqueue_depth = 16\nouter_df = \"set\"\n\
                max_deny_rules = 0\n";
    let o = with(text).unwrap().offload;
    assert_eq!(
        o,
        Offload {
            mode: OffloadMode::Shadow,
            max_flows: 100,
            tenant_share: 1,
            query_interval_ms: 10,
            queue_depth: 16,
            outer_df: OuterDf::Set,
            max_deny_rules: 0,
        }
    );
    for df in OuterDf::ALL {
        let text = format!("[offload]\nouter_df = \"{df}\"\n");
        assert_eq!(with(&text).unwrap().offload.outer_df, df);
    }
    // A share that rounds to nothing still lets a tenant hold one flow.
    assert_eq!(o.per_tenant(), 1);
}

#[test]
fn offload_refusals_name_the_line_and_the_fix() {
    let errs = with("[offload]\nmode = \"on\"\n").unwrap_err();
    assert_errors(
        &errs,
        &[(
            13,
            &[
                "[offload] unknown mode \"on\"",
                "\"auto\" (",
                "\"off\" (",
                "\"shadow\" (",
            ],
        )],
    );
    // Every bad key is reported, each on its own line.
    let text = "[offload]\nmax_flows = 0\ntenant_share = 101\nquery_interval_ms = 5\n\
                queue_depth = 8\n";
    let errs = with(text).unwrap_err();
    assert_errors(
        &errs,
        &[
            (
                13,
                &["[offload] max_flows 0 is out of range", "1..=16777216"],
            ),
            (
                14,
                &[
                    "[offload] tenant_share 101 is out of range",
                    "1..=100",
                    "percent",
                ],
            ),
            (
                15,
                &[
                    "[offload] query_interval_ms 5 is out of range",
                    "10..=30000",
                ],
            ),
            (
                16,
                &["[offload] queue_depth 8 is out of range", "16..=1048576"],
            ),
        ],
    );
    let errs = with("[offload]\nmax_flow = 10\n").unwrap_err();
    assert_errors(
        &errs,
        &[(13, &["[offload]: unknown field `max_flow`", "`max_flows`"])],
    );
    let errs = with("[offload]\nmode = true\n").unwrap_err();
    assert_errors(&errs, &[(13, &["[offload] `mode`", "expected a string"])]);
    // outer_df: the two choices, each with what it does.
    let errs = with("[offload]\nmode = \"auto\"\nouter_df = \"clear\"\n").unwrap_err();
    assert_errors(
        &errs,
        &[(
            14,
            &[
                "[offload] unknown outer_df \"clear\"",
                "\"copy\" (the outer DF copied from the inner packet",
                "\"set\" (DF set in every offloaded frame's outer header",
            ],
        )],
    );
    let errs = with("[offload]\nouter_df = 1\n").unwrap_err();
    assert_errors(
        &errs,
        &[(13, &["[offload] `outer_df`", "expected a string"])],
    );
}

#[test]
fn l2fwd_examples_run_in_l2fwd_mode() {
    use ctl::config::Mode;
    for name in ["l2fwd-null.toml", "l2fwd-memif.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name);
        let config = load(&path, &cpus("0-1")).unwrap();
        assert_eq!(config.dataplane.mode, Mode::L2fwd, "{name}");
    }
}

/// Two tenants, t2 owning the public prefix `public` (line 25); NAT tables
/// follow from line 27.
fn with_public_prefix(public: &str, nat: &str) -> Result<Config, Vec<(usize, String)>> {
    let text = format!(
        "[[port]]\nname = \"pub0\"\ndevice = \"net_null0\"\nrole = \"public\"\naddresses = [\"1.1.1.1/24\"]\n\
         [[port]]\nname = \"und0\"\ndevice = \"net_null1\"\nrole = \"underlay\"\naddresses = [\"172.168.0.1/24\"]\n\
         [[worker]]\nlcore = 1\nrx = [\"pub0:0\", \"und0:0\"]\n\
         [[tenant]]\nname = \"t1\"\nkey = 1000\nhosts = [\"172.168.0.11\"]\nprefixes = [\"10.0.0.0/24\"]\n\
         routes = [{{ prefix = \"0.0.0.0/0\", to = \"public\" }}]\n\
         [[tenant]]\nname = \"t2\"\nkey = 2000\nhosts = [\"172.168.0.12\"]\nprefixes = [\"10.0.0.0/24\"]\n\
         public_prefixes = [\"{public}\"]\n\
         routes = [{{ prefix = \"{public}\", to = \"172.168.0.12\" }}]\n\
         {nat}"
    );
    parse(&text, "x.toml", &cpus("0-1")).map_err(|e| {
        e.iter()
            .map(|e| (e.line.unwrap_or(0), e.message.clone()))
            .collect()
    })
}

/// A public address leads into one tenant only, and the dataplane looks
/// elastic IPs up before public prefixes: an elastic IP or a pool address
/// inside a public prefix (another tenant's or its own) is refused at the
/// address, naming the prefix, its tenant and its line.
#[test]
fn a_nat_address_inside_a_public_prefix_is_refused() {
    let eip = |public: &str, tenant: &str| {
        format!("[[eip]]\npublic = \"{public}\"\ntenant = \"{tenant}\"\nprivate = \"10.0.0.7\"\n")
    };
    let inside = &[
        "5.5.5.7 is inside public prefix 5.5.5.0/24 of tenant \"t2\" (line 25)",
        "one tenant only",
        "use an address outside every public prefix, or take it out of the prefix",
    ][..];
    // Another tenant's elastic IP, and the prefix's own tenant's.
    for tenant in ["t1", "t2"] {
        assert_errors(
            &with_public_prefix("5.5.5.0/24", &eip("5.5.5.7", tenant)).unwrap_err(),
            &[(28, inside)],
        );
    }
    // A pool address, at its place in the list.
    let pool = "[[snat]]\ntenant = \"t1\"\naddresses = [\n  \"3.3.3.1\",\n  \"5.5.5.7\",\n]\n";
    assert_errors(
        &with_public_prefix("5.5.5.0/24", pool).unwrap_err(),
        &[(31, inside)],
    );
}

/// The same seen from the other side: a public prefix written over an
/// elastic IP and a pool address (each named where it is written, with
/// the prefix's line).
#[test]
fn a_public_prefix_over_nat_addresses_is_refused() {
    let eip = |public: &str, tenant: &str| {
        format!("[[eip]]\npublic = \"{public}\"\ntenant = \"{tenant}\"\nprivate = \"10.0.0.7\"\n")
    };
    let pool = "[[snat]]\ntenant = \"t1\"\naddresses = [\n  \"3.3.3.1\",\n  \"5.5.5.7\",\n]\n";
    let both = format!("{}{pool}", eip("5.5.5.8", "t1")).replace("\"3.3.3.1\"", "\"5.5.9.1\"");
    let over = &[
        "is inside public prefix 5.5.0.0/16 of tenant \"t2\" (line 25)",
        "one tenant only",
    ][..];
    assert_errors(
        &with_public_prefix("5.5.0.0/16", &both).unwrap_err(),
        &[(28, over), (34, over), (35, over)],
    );
    // Next to the prefix is fine; so is a pool address that is an
    // elastic IP refused, as before.
    let c = with_public_prefix("5.5.5.0/24", &eip("5.5.6.7", "t1")).unwrap();
    assert_eq!(c.eips.len(), 1);
    let twice = format!(
        "{}[[snat]]\ntenant = \"t1\"\naddresses = [\"5.5.6.7\"]\n",
        eip("5.5.6.7", "t1")
    );
    assert_errors(
        &with_public_prefix("5.5.5.0/24", &twice).unwrap_err(),
        &[(
            33,
            &["5.5.6.7 is already an elastic IP or in another pool"][..],
        )],
    );
}

/// A tenant with more static neighbours than a tenant's share of the
/// neighbour table is refused with its line, not when the tables are
/// built (at start or reload, where nothing pointed at the file).
#[test]
fn static_neighbours_must_fit_the_tenants_share() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/reference.toml");
    let reference = std::fs::read_to_string(path).unwrap();
    let two = reference.replacen(
        "  { ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" },\n",
        "  { ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" },\n  { ip = \"10.0.0.8\", mac = \"02:00:00:00:0a:08\" },\n",
        1,
    );
    assert_ne!(two, reference, "reference.toml changed shape");
    let one = |t: &str| t.replacen("per_tenant = 256\n", "per_tenant = 1\n", 1);
    let text = one(&two);
    assert_ne!(text, two, "reference.toml has an [arp]");
    let e = parse(&text, "x.toml", &cpus("0-1")).unwrap_err();
    let t1 = text[..text.find("[[tenant]]").unwrap()].lines().count() + 1;
    let got: Vec<(usize, String)> = e
        .iter()
        .map(|e| (e.line.unwrap_or(0), e.message.clone()))
        .collect();
    assert_errors(
        &got,
        &[(
            t1,
            &[
                "tenant t1: 2 static neighbours",
                "[arp] per_tenant = 1",
                "raise [arp] per_tenant to at least 2",
            ],
        )],
    );
    // Each of them fits one of its own.
    assert!(parse(&one(&reference), "x.toml", &cpus("0-1")).is_ok());
}
