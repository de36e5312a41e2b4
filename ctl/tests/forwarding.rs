//! Tenants, global routes, static neighbours and the packet-path settings:
//! what each rule refuses, at which line, with which fix; and the reference
//! scenario as the model the daemon gets.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ctl::config::{
    load, parse, Action, Arp, Config, CpuSet, Dataplane, Direction, Encap, Icmp, Ipv4Cidr, MacAddr,
    Mode, Neighbour, PortRange, Protocol, Role, Route, RouteTarget, Rule, Tcp, Tenant,
    TenantNeighbour, TenantRoute, ANY_PREFIX,
};

fn cpus(list: &str) -> CpuSet {
    list.parse().expect("test CPU list")
}

mod common;
use common::BASE;

/// [`BASE`]'s lines: a valid file without tenants (a public port on
/// 1.1.1.1/24, an underlay port on 172.168.0.1/24, one worker).
const BASE_LINES: usize = 16;

/// The line of `extra`'s line `n` (1-based) once appended to `BASE`.
fn line(n: usize) -> usize {
    BASE_LINES + n
}

/// A tenant of the reference scenario, 9 lines, for `extra` texts.
const T1: &str = "\
[[tenant]]
name = \"t1\"
key = 1000
hosts = [\"172.168.0.11\"]
prefixes = [\"10.0.0.0/24\"]
routes = [
  { prefix = \"10.0.0.0/24\", to = \"172.168.0.11\" },
  { prefix = \"0.0.0.0/0\", to = \"public\" },
]
";

type Errors = Vec<(usize, String)>;

fn check_text(text: &str) -> Result<Config, Errors> {
    parse(text, "x.toml", &cpus("0-1")).map_err(|e| {
        e.iter()
            .map(|e| (e.line.expect("every problem has a line"), e.message.clone()))
            .collect()
    })
}

/// `BASE` with `extra` appended.
fn check(extra: &str) -> Result<Config, Errors> {
    assert_eq!(BASE.lines().count(), BASE_LINES);
    check_text(&format!("{BASE}{extra}"))
}

fn refused(extra: &str) -> Errors {
    match check(extra) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e,
    }
}

fn accepted(extra: &str) -> Config {
    match check(extra) {
        Ok(c) => c,
        Err(e) => panic!("refused:\n{extra}\n{e:#?}"),
    }
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

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().expect("test prefix")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("test MAC")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn reference_example_is_the_reference_scenario() {
    let config = match load(&example("reference.toml"), &cpus("0-1")) {
        Ok(c) => c,
        Err(e) => panic!("reference.toml is refused:\n{e}"),
    };
    let (pub0, p) = config.port("pub0").unwrap();
    assert_eq!(
        (p.role, p.addresses.as_slice()),
        (Role::Public, &[cidr("1.1.1.1/24")][..])
    );
    let (und0, u) = config.port("und0").unwrap();
    assert_eq!(
        (u.role, u.addresses.as_slice()),
        (Role::Underlay, &[cidr("172.168.0.1/24")][..])
    );
    assert!(config
        .ports
        .iter()
        .all(|p| p.dpdk_name().starts_with("net_null")));
    assert!(!config.eal.hugepages);
    assert_eq!(
        config.dataplane,
        Dataplane {
            mode: Mode::Gateway,
            ..Dataplane::default()
        }
    );

    // Each lets in its own TCP port and ICMP and may not open that port.
    let rules = |port: u16| {
        let tcp = |direction, action| Rule {
            direction,
            action,
            proto: Protocol::Tcp,
            src: ANY_PREFIX,
            dst: ANY_PREFIX,
            sport: None,
            dport: Some(PortRange { lo: port, hi: port }),
            icmp_type: None,
            icmp_code: None,
        };
        let icmp = Rule {
            proto: Protocol::Icmp,
            dport: None,
            ..tcp(Direction::In, Action::Allow)
        };
        vec![
            tcp(Direction::In, Action::Allow),
            icmp,
            tcp(Direction::Out, Action::Deny),
        ]
    };
    // Both tenants hold 10.0.0.7, with its inner MAC fixed; their public
    // faces are the elastic IPs.
    let tenant = |name: &str, key: u32, host: &str, macs: [&str; 2]| Tenant {
        name: name.to_owned(),
        key,
        encap: Encap::Gretap,
        gre_checksum: false,
        gre_sequence: false,
        hosts: vec![ip(host)],
        prefixes: vec![cidr("10.0.0.0/24")],
        mac: Some(mac(macs[0])),
        routes: vec![
            TenantRoute {
                prefix: cidr("10.0.0.0/24"),
                to: RouteTarget::Host(ip(host)),
            },
            TenantRoute {
                prefix: cidr("0.0.0.0/0"),
                to: RouteTarget::Public,
            },
        ],
        public_prefixes: vec![],
        neighbours: vec![TenantNeighbour {
            ip: ip("10.0.0.7"),
            mac: mac(macs[1]),
        }],
        rules: rules(if key == 1000 { 22 } else { 23 }),
        default_in: Action::Deny,
        default_out: Action::Allow,
    };
    assert_eq!(
        config.tenants,
        [
            tenant(
                "t1",
                1000,
                "172.168.0.11",
                ["02:00:00:00:10:00", "02:00:00:00:0a:07"]
            ),
            tenant(
                "t2",
                2000,
                "172.168.0.12",
                ["02:00:00:00:20:00", "02:00:00:00:0a:17"]
            ),
        ]
    );
    assert_eq!(config.tenant("t2").map(|t| t.key), Some(2000));
    assert_eq!(
        config
            .eips
            .iter()
            .map(|e| (e.public, e.tenant, e.private))
            .collect::<Vec<_>>(),
        [
            (ip("2.2.2.11"), 0, ip("10.0.0.7")),
            (ip("2.2.2.12"), 1, ip("10.0.0.7"))
        ]
    );
    assert!(config.tenants.iter().all(|t| t.owns(ip("10.0.0.7"))));
    let owners = |a: &str| -> Vec<&str> {
        config
            .tenants
            .iter()
            .filter(|t| t.owns(ip(a)))
            .map(|t| t.name.as_str())
            .collect()
    };
    assert!(
        owners("2.2.2.11").is_empty() && owners("2.2.2.12").is_empty(),
        "the elastic IPs belong to the gateway's NAT, not to the tenants' hosts"
    );
    assert_eq!(Encap::Gretap.protocol(), 0x6558);

    assert_eq!(
        config.routes,
        [Route {
            prefix: cidr("0.0.0.0/0"),
            via: ip("1.1.1.254"),
            port: pub0,
        }]
    );
    assert_eq!(config.routes_of(Role::Public).count(), 1);
    assert_eq!(config.routes_of(Role::Underlay).count(), 0);
    assert_eq!(
        config.neighbours,
        [
            Neighbour {
                port: und0,
                ip: ip("172.168.0.11"),
                mac: mac("02:00:00:00:0b:0b"),
            },
            Neighbour {
                port: und0,
                ip: ip("172.168.0.12"),
                mac: mac("02:00:00:00:0c:0c"),
            },
            Neighbour {
                port: pub0,
                ip: ip("1.1.1.7"),
                mac: mac("02:00:00:00:07:07"),
            },
            Neighbour {
                port: pub0,
                ip: ip("1.1.1.254"),
                mac: mac("02:00:00:00:fe:fe"),
            },
        ]
    );
    assert_eq!(config.icmp, Icmp::default());
    assert_eq!(config.tcp, Tcp::default());
    assert_eq!(config.arp, Arp::default());
}

#[test]
fn new_sections_are_optional_with_defaults() {
    let config = accepted("");
    assert!(config.tenants.is_empty());
    assert!(config.routes.is_empty());
    assert!(config.neighbours.is_empty());
    assert_eq!(
        config.icmp,
        Icmp {
            rate_per_sec: 1000,
            burst: 50
        }
    );
    assert_eq!(config.tcp, Tcp { mss_clamp: true });
    assert_eq!(
        config.arp,
        Arp {
            reachable_s: 300,
            retry_ms: 1000,
            max_pending: 8,
            retries: 3,
            entries: 4096,
            port_entries: 1024,
            per_tenant: 256,
            max_held: 1024,
            held_per_tenant: 128,
        }
    );
    assert_eq!(config.dataplane.mode, Mode::Gateway);
    let t = &accepted(T1).tenants[0];
    assert_eq!((t.encap, t.mac), (Encap::Gretap, None));
    assert!(t.public_prefixes.is_empty() && t.neighbours.is_empty());
}

#[test]
fn both_route_forms_give_the_same_model() {
    let inline = accepted(T1);
    let tables = "\
[[tenant]]
name = \"t1\"
key = 1000
hosts = [\"172.168.0.11\"]
prefixes = [\"10.0.0.0/24\"]

[[tenant.route]]
prefix = \"10.0.0.0/24\"
to = \"172.168.0.11\"

[[tenant.route]]
prefix = \"0.0.0.0/0\"
to = \"public\"
";
    assert_eq!(accepted(tables), inline);
    // Inline tenants (top-level keys, so before the first table), and both
    // forms in one tenant, in file order.
    let inline_tenant = "tenant = [{ name = \"t1\", key = 1000, hosts = [\"172.168.0.11\"], prefixes = [\"10.0.0.0/24\"], routes = [{ prefix = \"10.0.0.0/24\", to = \"172.168.0.11\" }, { prefix = \"0.0.0.0/0\", to = \"public\" }] }]\n";
    assert_eq!(check_text(&format!("{inline_tenant}{BASE}")), Ok(inline));
    let mixed = "\
[[tenant]]
name = \"t1\"
key = 1000
hosts = [\"172.168.0.11\"]
prefixes = [\"10.0.0.0/24\"]
routes = [{ prefix = \"10.0.0.0/24\", to = \"172.168.0.11\" }]
[[tenant.route]]
prefix = \"0.0.0.0/0\"
to = \"public\"
";
    assert_eq!(accepted(mixed), accepted(T1));
}

#[test]
fn tenant_names_must_be_unique_and_well_formed() {
    let two = format!("{T1}{}", T1.replace("key = 1000", "key = 2000"));
    assert_errors(
        &refused(&two),
        &[(
            line(11),
            &[
                "tenant \"t1\" is defined twice (first at line 18)",
                "unique name",
            ],
        )],
    );
    let bad = T1.replace("\"t1\"", "\"t 1\"");
    assert_errors(
        &refused(&bad),
        &[(
            line(2),
            &["tenant name \"t 1\" is not allowed", "A-Z a-z 0-9 _ -"],
        )],
    );
    let none = T1.replace("name = \"t1\"\n", "");
    assert_errors(
        &refused(&none),
        &[(line(1), &["[[tenant]] has no name", "add name ="])],
    );
}

#[test]
fn tenant_keys_must_be_unique_32_bit_values() {
    let two = format!("{T1}{}", T1.replace("\"t1\"", "\"t2\""));
    assert_errors(
        &refused(&two),
        &[(
            line(12),
            &[
                "tenant \"t2\": key 1000 is already the key of tenant \"t1\" (line 19)",
                "give each tenant its own",
            ],
        )],
    );
    for (key, fragment) in [
        ("-1", "key -1 is out of range"),
        ("4294967296", "key 4294967296 is out of range"),
    ] {
        let bad = T1.replace("key = 1000", &format!("key = {key}"));
        assert_errors(
            &refused(&bad),
            &[(line(3), &[fragment, "0..=4294967295", "32 bits"])],
        );
    }
    let edge = T1.replace("key = 1000", "key = 4294967295");
    assert_eq!(accepted(&edge).tenants[0].key, u32::MAX);
    let none = T1.replace("key = 1000\n", "");
    assert_errors(
        &refused(&none),
        &[(line(1), &["tenant \"t1\" has no key", "add key ="])],
    );
    let text = T1.replace("key = 1000", "key = \"1000\"");
    assert_errors(
        &refused(&text),
        &[(line(3), &["[[tenant]] `key`", "expected an integer"])],
    );
}

#[test]
fn tenant_hosts_rules() {
    let cases: &[(&str, &[&str])] = &[
        ("[]", &["hosts is empty", "list the underlay addresses"]),
        (
            "[\"172.168.0.11\", \"172.168.0.11\"]",
            &[
                "host 172.168.0.11 is listed twice (first at line 20)",
                "remove one",
            ],
        ),
        (
            "[\"172.168.0\"]",
            &[
                "host \"172.168.0\" is not an IPv4 address",
                "like 172.168.0.11",
            ],
        ),
        (
            "[\"224.0.0.5\"]",
            &["host 224.0.0.5 is not a unicast host address", "host's own"],
        ),
        ("[\"0.0.0.0\"]", &["host 0.0.0.0 is not a unicast"]),
        ("[\"255.255.255.255\"]", &["is not a unicast"]),
    ];
    for (hosts, fragments) in cases {
        // The route to 172.168.0.11 is not blamed for the broken list.
        let bad = T1.replace("[\"172.168.0.11\"]", hosts);
        assert_errors(&refused(&bad), &[(line(4), fragments)]);
    }
    let none = T1.replace("hosts = [\"172.168.0.11\"]\n", "");
    assert_errors(
        &refused(&none),
        &[(line(1), &["tenant \"t1\" has no hosts", "add hosts ="])],
    );
}

#[test]
fn tenant_prefixes_rules() {
    let cases: &[(&str, &[&str])] = &[
        ("[]", &["prefixes is empty", "[\"10.0.0.0/24\"]"]),
        (
            "[\"10.0.0.7/24\"]",
            &["prefix 10.0.0.7/24 has host bits set", "write 10.0.0.0/24"],
        ),
        (
            "[\"10.0.0.0/24\", \"10.0.0.0/24\"]",
            &["prefix 10.0.0.0/24 is listed twice (first at line 21)"],
        ),
        (
            "[\"10.0.0.0\"]",
            &[
                "prefix \"10.0.0.0\" is not an IPv4 prefix",
                "e.g. 10.0.0.0/24",
            ],
        ),
        ("[\"10.0.0.0/33\"]", &["not an IPv4 prefix", "0..=32"]),
    ];
    for (prefixes, fragments) in cases {
        let bad = T1.replace("[\"10.0.0.0/24\"]", prefixes);
        assert_errors(&refused(&bad), &[(line(5), fragments)]);
    }
    let none = T1.replace("prefixes = [\"10.0.0.0/24\"]\n", "");
    assert_errors(
        &refused(&none),
        &[(line(1), &["has no prefixes", "add prefixes ="])],
    );
    let two = T1.replace("[\"10.0.0.0/24\"]", "[\"10.0.0.0/24\", \"192.168.0.0/16\"]");
    let t = &accepted(&two).tenants[0];
    assert!(t.owns(ip("192.168.3.4")) && !t.owns(ip("10.0.1.1")));
}

#[test]
fn tenant_encap_and_mac() {
    let ipv4 = T1.replace("key = 1000\n", "key = 1000\nencap = \"ipv4\"\n");
    let t = &accepted(&ipv4).tenants[0];
    assert_eq!((t.encap, t.encap.protocol()), (Encap::Ipv4, 0x0800));

    let bad = T1.replace("key = 1000\n", "key = 1000\nencap = \"gre\"\n");
    assert_errors(
        &refused(&bad),
        &[(
            line(4),
            &["unknown encap \"gre\"", "\"gretap\"", "\"ipv4\""],
        )],
    );
    let with_mac = T1.replace("key = 1000\n", "key = 1000\nmac = \"02:00:00:00:10:00\"\n");
    assert_eq!(
        accepted(&with_mac).tenants[0].mac,
        Some(mac("02:00:00:00:10:00"))
    );
    let multicast = T1.replace("key = 1000\n", "key = 1000\nmac = \"01:00:00:00:10:00\"\n");
    assert_errors(
        &refused(&multicast),
        &[(line(4), &["mac 01:00:00:00:10:00 is not a unicast address"])],
    );
    let ipv4_mac = T1.replace(
        "key = 1000\n",
        "key = 1000\nencap = \"ipv4\"\nmac = \"02:00:00:00:10:00\"\n",
    );
    assert_errors(
        &refused(&ipv4_mac),
        &[(
            line(5),
            &[
                "mac applies to gretap tunnels only",
                "set encap = \"gretap\"",
            ],
        )],
    );
}

#[test]
fn tenant_route_targets() {
    let to = |target: &str| T1.replace("to = \"public\"", &format!("to = {target}"));
    let t = &accepted(&to("\"local\"")).tenants[0];
    assert_eq!(t.routes[1].to, RouteTarget::Local);
    let t = &accepted(&to("\"blackhole\"")).tenants[0];
    assert_eq!(t.routes[1].to, RouteTarget::Blackhole);

    assert_errors(
        &refused(&to("\"172.168.0.12\"")),
        &[(
            line(8),
            &[
                "route 0.0.0.0/0 goes to 172.168.0.12, which is not one of the tenant's hosts",
                "add it to hosts or route to one of 172.168.0.11",
            ],
        )],
    );
    assert_errors(
        &refused(&to("\"internet\"")),
        &[(
            line(8),
            &[
                "unknown target \"internet\"",
                "172.168.0.11",
                "\"public\", \"local\" or \"blackhole\"",
            ],
        )],
    );
    assert_errors(
        &refused(&to("\"Public\"")),
        &[(line(8), &["unknown target \"Public\""])],
    );
    let dup = T1.replace("\"0.0.0.0/0\"", "\"10.0.0.0/24\"");
    assert_errors(
        &refused(&dup),
        &[(
            line(8),
            &[
                "route prefix 10.0.0.0/24 is given twice (first at line 23)",
                "one route per prefix",
            ],
        )],
    );
    let host_bits = T1.replace("{ prefix = \"10.0.0.0/24\"", "{ prefix = \"10.0.0.1/24\"");
    assert_errors(
        &refused(&host_bits),
        &[(
            line(7),
            &[
                "route prefix 10.0.0.1/24 has host bits set",
                "write 10.0.0.0/24",
            ],
        )],
    );
    let no_to = T1.replace(", to = \"public\"", "");
    assert_errors(
        &refused(&no_to),
        &[(line(8), &["route 0.0.0.0/0 has no to", "\"blackhole\""])],
    );
    // A tenant without routes is valid: it is being set up.
    let bare = T1.split("routes").next().unwrap();
    assert!(accepted(bare).tenants[0].routes.is_empty());
}

#[test]
fn tenant_route_problems_point_at_the_route() {
    let tables = "\
[[tenant]]
name = \"t1\"
key = 1000
hosts = [\"172.168.0.11\"]
prefixes = [\"10.0.0.0/24\"]

[[tenant.route]]
prefix = \"10.0.0.0/24\"
to = \"172.168.0.99\"

[[tenant.route]]
prefix = \"0.0.0.0/0\"
via = \"public\"
";
    assert_errors(
        &refused(tables),
        &[
            (line(9), &["not one of the tenant's hosts"]),
            (line(11), &["route 0.0.0.0/0 has no to"]),
            (
                line(13),
                &[
                    "[[tenant.route]]",
                    "unknown field `via`",
                    "`prefix`",
                    "`to`",
                ],
            ),
        ],
    );
    let misspelt = T1.replace("routes = [", "rutes = [");
    let errs = refused(&misspelt);
    assert_errors(
        &errs,
        &[(line(6), &["unknown field `rutes`", "`routes`", "`route`"])],
    );
    let not_tables = T1.replace("routes = [", "routes = [\"10.0.0.0/24\",");
    assert_errors(
        &refused(&not_tables),
        &[(line(6), &["each [[tenant.route]] entry must be a table"])],
    );
}

#[test]
fn a_route_to_public_needs_a_public_port() {
    let text = "\
[[port]]
name = \"und0\"
device = \"net_null0\"
role = \"underlay\"
addresses = [\"172.168.0.1/24\"]
[[worker]]
lcore = 1
rx = [\"und0:0\"]
";
    let errs = check_text(&format!("{text}{T1}")).unwrap_err();
    assert_errors(
        &errs,
        &[
            (1, &["no port has role = \"public\""]),
            (
                8 + 8,
                &[
                    "route 0.0.0.0/0 goes to \"public\" but no port has role = \"public\"",
                    "add such a [[port]]",
                ],
            ),
        ],
    );
}

#[test]
fn tunnel_hosts_must_be_reachable_on_the_underlay() {
    let far = T1.replace("172.168.0.11", "10.20.0.5");
    assert_errors(
        &refused(&far),
        &[(
            line(4),
            &[
                "host 10.20.0.5 is not reachable on the underlay",
                "und0: 172.168.0.0/24",
                "add such a [[route]]",
            ],
        )],
    );
    // Behind an underlay router: fine.
    let routed = format!("{far}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"172.168.0.254\"\n");
    let config = accepted(&routed);
    assert_eq!(config.routes[0].port, 1);
    assert_eq!(config.routes_of(Role::Underlay).count(), 1);
    // A route out of the public port does not reach the underlay.
    let public = format!("{far}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"1.1.1.254\"\n");
    assert_errors(
        &refused(&public),
        &[(
            line(4),
            &["host 10.20.0.5 is not reachable on the underlay"],
        )],
    );
    let on_public = T1.replace("172.168.0.11", "1.1.1.9");
    assert_errors(
        &refused(&on_public),
        &[(
            line(4),
            &[
                "not reachable on the underlay (it is on the subnet of port \"pub0\", which faces the public side)",
            ],
        )],
    );
    let own = T1.replace("172.168.0.11", "172.168.0.1");
    assert_errors(
        &refused(&own),
        &[(
            line(4),
            &[
                "host 172.168.0.1 is the gateway's own address on port \"und0\"",
                "tunnel host's address",
            ],
        )],
    );
    let broadcast = T1.replace("172.168.0.11", "172.168.0.255");
    assert_errors(
        &refused(&broadcast),
        &[(
            line(4),
            &["broadcast address of 172.168.0.0/24 on port \"und0\""],
        )],
    );
    // No underlay address at all: the message says so.
    let bare = BASE.replace("addresses = [\"172.168.0.1/24\"]\n", "");
    let errs = check_text(&format!("{bare}{T1}")).unwrap_err();
    assert_errors(
        &errs,
        &[(
            BASE_LINES - 1 + 4,
            &["not reachable on the underlay", "und0: no addresses"],
        )],
    );
}

#[test]
fn global_routes_need_an_on_link_next_hop() {
    let route = |body: &str| format!("[[route]]\nprefix = \"0.0.0.0/0\"\n{body}");
    let config = accepted(&route("via = \"1.1.1.254\"\nport = \"pub0\"\n"));
    assert_eq!(config.routes[0].port, 0);

    let cases: &[(&str, usize, &[&str])] = &[
        (
            "via = \"9.9.9.9\"\n",
            3,
            &[
                "route 0.0.0.0/0: via 9.9.9.9 is not on-link",
                "pub0: 1.1.1.0/24; und0: 172.168.0.0/24",
                "use a next hop inside one of them",
            ],
        ),
        (
            "via = \"1.1.1.254\"\nport = \"pub1\"\n",
            4,
            &[
                "unknown port \"pub1\" (known ports: pub0, und0)",
                "name of a [[port]]",
            ],
        ),
        (
            "via = \"1.1.1.254\"\nport = \"und0\"\n",
            3,
            &[
                "via 1.1.1.254 is not inside a subnet of port \"und0\" (und0: 172.168.0.0/24)",
                "or set port = \"pub0\", whose subnet holds it",
            ],
        ),
        (
            "via = \"1.1.1.1\"\n",
            3,
            &[
                "via 1.1.1.1 is the gateway's own address on port \"pub0\"",
                "next-hop router",
            ],
        ),
        (
            "via = \"1.1.1.255\"\n",
            3,
            &[
                "via 1.1.1.255 is the broadcast address of 1.1.1.0/24",
                "next hop's own address",
            ],
        ),
        (
            "via = \"1.1.1\"\n",
            3,
            &["via \"1.1.1\" is not an IPv4 address"],
        ),
        ("via = \"224.1.1.1\"\n", 3, &["not a unicast host address"]),
        ("", 1, &["route 0.0.0.0/0 has no via", "add via ="]),
        (
            "via = \"1.1.1.254\"\nmetric = 5\n",
            4,
            &["[[route]]: unknown field `metric`", "`via`"],
        ),
    ];
    for (body, n, fragments) in cases {
        assert_errors(&refused(&route(body)), &[(line(*n), fragments)]);
    }
    assert_errors(
        &refused("[[route]]\nprefix = \"0.0.0.1/0\"\nvia = \"1.1.1.254\"\n"),
        &[(
            line(2),
            &["prefix 0.0.0.1/0 has host bits set", "write 0.0.0.0/0"],
        )],
    );
    assert_errors(
        &refused("[[route]]\nvia = \"1.1.1.254\"\n"),
        &[(line(1), &["[[route]] has no prefix", "add prefix ="])],
    );
}

#[test]
fn global_routes_are_unique_per_side() {
    let twice = "\
[[route]]
prefix = \"0.0.0.0/0\"
via = \"1.1.1.254\"
[[route]]
prefix = \"0.0.0.0/0\"
via = \"1.1.1.253\"
";
    assert_errors(
        &refused(twice),
        &[(
            line(5),
            &[
                "route 0.0.0.0/0 is already routed on the public side at line 18",
                "one [[route]] per prefix on each side",
            ],
        )],
    );
    // The same prefix on the other side is another table.
    let sides = twice.replace("1.1.1.253", "172.168.0.254");
    let config = accepted(&sides);
    assert_eq!(
        config.routes.iter().map(|r| r.port).collect::<Vec<_>>(),
        [0, 1]
    );
}

#[test]
fn a_next_hop_on_several_ports_needs_a_port() {
    let both = BASE.replace(
        "[\"172.168.0.1/24\"]",
        "[\"172.168.0.1/24\", \"1.1.1.2/25\"]",
    );
    let route = "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"1.1.1.100\"\n";
    let errs = check_text(&format!("{both}{route}")).unwrap_err();
    assert_errors(
        &errs,
        &[(
            BASE_LINES + 3,
            &[
                "via 1.1.1.100 is on-link on several ports (\"pub0\", \"und0\")",
                "add port = \"pub0\"",
            ],
        )],
    );
    let chosen = format!("{both}{route}port = \"und0\"\n");
    let config = check_text(&chosen).unwrap();
    assert_eq!(config.routes[0].port, 1);
}

#[test]
fn neighbour_rules() {
    let n = |port: &str, ip: &str, mac: &str| {
        format!("[[neighbour]]\nport = \"{port}\"\nip = \"{ip}\"\nmac = \"{mac}\"\n")
    };
    let good = n("und0", "172.168.0.11", "02:00:00:00:0b:0b");
    let config = accepted(&good);
    assert_eq!(
        config.neighbours,
        [Neighbour {
            port: 1,
            ip: ip("172.168.0.11"),
            mac: mac("02:00:00:00:0b:0b")
        }]
    );
    let cases: &[(String, usize, &[&str])] = &[
        (
            n("und1", "172.168.0.11", "02:00:00:00:0b:0b"),
            2,
            &["unknown port \"und1\" (known ports: pub0, und0)"],
        ),
        (
            n("pub0", "172.168.0.11", "02:00:00:00:0b:0b"),
            3,
            &[
                "ip 172.168.0.11 is not inside a subnet of port \"pub0\" (pub0: 1.1.1.0/24)",
                "fix the ip or the port",
            ],
        ),
        (
            n("und0", "172.168.0.1", "02:00:00:00:0b:0b"),
            3,
            &["172.168.0.1 is the gateway's own address on port \"und0\""],
        ),
        (
            n("und0", "172.168.0.0", "02:00:00:00:0b:0b"),
            3,
            &["network address of 172.168.0.0/24"],
        ),
        (
            n("und0", "172.168.0.11", "ff:ff:ff:ff:ff:ff"),
            4,
            &[
                "mac ff:ff:ff:ff:ff:ff is not a unicast address",
                "02:00:00:00:00:01",
            ],
        ),
        (
            n("und0", "172.168.0.11", "00:00:00:00:00:00"),
            4,
            &["is not a unicast address"],
        ),
        (
            n("und0", "172.168.0.11", "02:00:00:00:0b"),
            4,
            &["mac \"02:00:00:00:0b\" is not a MAC address"],
        ),
        (
            n("und0", "172.168.0.x", "02:00:00:00:0b:0b"),
            3,
            &["ip \"172.168.0.x\" is not an IPv4 address"],
        ),
    ];
    for (text, n, fragments) in cases {
        assert_errors(&refused(text), &[(line(*n), fragments)]);
    }
    let twice = format!("{good}{}", good.replace("0b:0b", "0b:0c"));
    assert_errors(
        &refused(&twice),
        &[(
            line(7),
            &[
                "neighbour 172.168.0.11 on port \"und0\" is already defined at line 19",
                "one entry per address",
            ],
        )],
    );
    let missing = "[[neighbour]]\nip = \"172.168.0.11\"\n";
    assert_errors(
        &refused(missing),
        &[
            (
                line(1),
                &["neighbour 172.168.0.11 has no port", "add port ="],
            ),
            (line(1), &["neighbour 172.168.0.11 has no mac", "add mac ="]),
        ],
    );
}

#[test]
fn packet_path_settings() {
    let config = accepted(
        "[icmp]\nrate_per_sec = 0\nburst = 0\n[tcp]\nmss_clamp = false\n\
         [arp]\nreachable_s = 1\nretry_ms = 10\nmax_pending = 64\nretries = 10\nentries = 16\n",
    );
    assert_eq!(
        config.icmp,
        Icmp {
            rate_per_sec: 0,
            burst: 0
        }
    );
    assert!(!config.tcp.mss_clamp);
    assert_eq!(
        config.arp,
        Arp {
            reachable_s: 1,
            retry_ms: 10,
            max_pending: 64,
            retries: 10,
            entries: 16,
            // The shares follow the totals when not given.
            port_entries: 4,
            per_tenant: 1,
            max_held: 1024,
            held_per_tenant: 128,
        }
    );
    let shares = accepted(
        "[arp]
entries = 100
port_entries = 30
per_tenant = 70
max_held = 40
held_per_tenant = 30
",
    );
    assert_eq!(
        (
            shares.arp.port_entries,
            shares.arp.per_tenant,
            shares.arp.max_held,
            shares.arp.held_per_tenant
        ),
        (30, 70, 40, 30)
    );
    assert_eq!(
        accepted(
            "[arp]
max_held = 64
"
        )
        .arp
        .held_per_tenant,
        8
    );
    let cases: &[(&str, usize, &[&str])] = &[
        (
            "[icmp]\nrate_per_sec = -1\n",
            2,
            &[
                "[icmp] rate_per_sec -1 is out of range",
                "0..=4294967295",
                "0 disables",
            ],
        ),
        (
            "[icmp]\nburst = 0\n",
            2,
            &[
                "[icmp] burst 0 lets no error out although rate_per_sec is 1000",
                "at least 1",
                "rate_per_sec = 0",
            ],
        ),
        (
            "[icmp]\nburst = 4294967296\n",
            2,
            &["[icmp] burst 4294967296 is out of range"],
        ),
        (
            "[arp]\nmax_pending = 0\n",
            2,
            &["[arp] max_pending 0 is out of range", "1..=64"],
        ),
        (
            "[arp]\nmax_pending = 65\n",
            2,
            &["max_pending 65", "1..=64"],
        ),
        (
            "[arp]\nretry_ms = 9\n",
            2,
            &["[arp] retry_ms 9 is out of range", "10..="],
        ),
        (
            "[arp]\nreachable_s = 0\n",
            2,
            &["[arp] reachable_s 0 is out of range", "1..="],
        ),
        (
            "[arp]\nretries = 0\n",
            2,
            &["[arp] retries 0 is out of range", "1..=10"],
        ),
        (
            "[arp]\nentries = 15\n",
            2,
            &["[arp] entries 15 is out of range", "16..=1048576"],
        ),
        (
            "[arp]\nentries = 100\nport_entries = 100\n",
            3,
            &["[arp] port_entries 100 is out of range", "1..=99"],
        ),
        (
            "[arp]\nentries = 100\nport_entries = 30\nper_tenant = 71\n",
            4,
            &[
                "[arp] per_tenant 71 is out of range",
                "1..=70",
                "tenants' share",
            ],
        ),
        (
            "[arp]\nmax_held = 3\n",
            2,
            &["[arp] max_held 3 is out of range", "4..=1048576"],
        ),
        (
            "[arp]\nmax_held = 40\nheld_per_tenant = 31\n",
            3,
            &[
                "[arp] held_per_tenant 31 is out of range",
                "1..=30",
                "a quarter",
            ],
        ),
        (
            "[tcp]\nmss_clamp = \"yes\"\n",
            2,
            &["[tcp] `mss_clamp`", "expected true or false"],
        ),
        (
            "[arp]\ntimeout = 5\n",
            2,
            &["[arp]: unknown field `timeout`", "`reachable_s`"],
        ),
    ];
    for (text, n, fragments) in cases {
        assert_errors(&refused(text), &[(line(*n), fragments)]);
    }
    let errs = check_text(&format!("arp = 5\n{BASE}")).unwrap_err();
    assert_errors(&errs, &[(1, &["[arp] must be a table"])]);
}

#[test]
fn unknown_top_level_key_lists_the_new_sections() {
    assert_errors(
        &refused("[[neighbor]]\nport = \"und0\"\n"),
        &[(
            line(1),
            &[
                "unknown key `neighbor`",
                "`tenant`, `route`, `neighbour`, `eip`, `snat`, `flows`, `icmp`, `tcp`, `arp`",
            ],
        )],
    );
}

#[test]
fn errors_in_every_new_section_are_reported_together() {
    let text = "\
[[tenant]]
name = \"t1\"
key = 1000
hosts = [\"172.168.0.11\", \"10.9.9.9\"]
prefixes = [\"10.0.0.1/24\"]
routes = [
  { prefix = \"0.0.0.0/0\", to = \"internet\" },
]
[[tenant]]
name = \"t2\"
key = 1000
hosts = []
prefixes = [\"10.0.0.0/24\"]
[[route]]
prefix = \"0.0.0.0/0\"
via = \"2.2.2.2\"
[[neighbour]]
port = \"und0\"
ip = \"1.1.1.7\"
mac = \"02:00:00:00:07:07\"
[icmp]
burst = -5
[arp]
max_pending = 100
";
    assert_errors(
        &refused(text),
        &[
            (line(5), &["prefix 10.0.0.1/24 has host bits set"]),
            (line(7), &["unknown target \"internet\""]),
            (line(11), &["key 1000 is already the key of tenant \"t1\""]),
            (line(12), &["tenant \"t2\": hosts is empty"]),
            (line(16), &["via 2.2.2.2 is not on-link"]),
            (
                line(19),
                &["ip 1.1.1.7 is not inside a subnet of port \"und0\""],
            ),
            (line(22), &["burst -5 is out of range"]),
            (line(24), &["max_pending 100 is out of range"]),
        ],
    );
}

#[test]
fn host_reachability_waits_for_broken_routes() {
    // The route that would cover 10.20.0.5 is broken: only the route is
    // blamed, not the host it would have reached.
    let text = format!(
        "{}[[route]]\nprefix = \"10.20.0.0/16\"\nvia = \"172.168.1.254\"\n",
        T1.replace("172.168.0.11", "10.20.0.5")
    );
    assert_errors(
        &refused(&text),
        &[(line(12), &["via 172.168.1.254 is not on-link"])],
    );
}

/// No input may panic: every prefix of the reference example and every line
/// replaced by junk is parsed to a result.
#[test]
fn no_panic_on_damaged_reference() {
    // Without its comment lines: a cut inside a comment gives the same
    // tables as a cut before it, and toml_edit's unoptimised parser makes
    // each parse cost milliseconds in a test build.
    let text: String = std::fs::read_to_string(example("reference.toml"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(text.contains("[[tenant.route]]") && text.contains("[[neighbour]]"));
    assert!(text.contains("[[tenant.neighbour]]") && text.contains("[[eip]]"));
    let set = cpus("0-1");
    for (i, _) in text.char_indices() {
        let _ = parse(&text[..i], "x.toml", &set);
    }
    let lines: Vec<&str> = text.lines().collect();
    let junk = [
        "=",
        "[[",
        "x = ",
        "[[tenant]]",
        "[[tenant.route]]",
        "[tenant.route]",
        "[[route]]",
        "[[neighbour]]",
        "[icmp]",
        "key = -1",
        "key = 99999999999999",
        "hosts = []",
        "hosts = [\"\", \"/\", \"1.1.1.1/\"]",
        "prefixes = [\"0.0.0.0/0\", \"255.255.255.255/32\", \"1.2.3.4/99\"]",
        "routes = [{}, { to = \"\" }, 5]",
        "routes = 5",
        "route = [{ prefix = \"/\", to = \"1.1.1.1\" }]",
        "to = \"255.255.255.255\"",
        "via = \"0.0.0.0\"",
        "port = \"\"",
        "ip = \"é\"",
        "mac = \"\"",
        "max_pending = 99999",
        "addresses = []",
        "addresses = [\"0.0.0.0/0\"]",
        "[dataplane]",
        "mode = 5",
        "[[tenant.neighbour]]",
        "neighbours = [{}, { ip = \"10.0.0.7\" }, 5]",
        "public_prefixes = [\"/\", \"0.0.0.0/0\", \"1.1.1.0/24\"]",
        "encap = \"ipv4\"",
    ];
    for i in 0..lines.len() {
        for j in junk {
            let mut damaged = lines.clone();
            damaged[i] = j;
            let _ = parse(&damaged.join("\n"), "x.toml", &set);
        }
    }
}

/// A tenant with the public prefix `public` routed to its host, 11 lines;
/// `public_prefixes` is its line 6.
fn public_tenant(name: &str, key: u32, host: &str, public: &str) -> String {
    format!(
        "\
[[tenant]]
name = \"{name}\"
key = {key}
hosts = [\"{host}\"]
prefixes = [\"10.0.0.0/24\"]
public_prefixes = [\"{public}\"]
routes = [
  {{ prefix = \"10.0.0.0/24\", to = \"{host}\" }},
  {{ prefix = \"{public}\", to = \"{host}\" }},
  {{ prefix = \"0.0.0.0/0\", to = \"public\" }},
]
"
    )
}

/// `T1` with `public_prefixes = [public]` after its prefixes (line 6) and
/// its routes unchanged (lines 7-10).
fn t1_with_public(public: &str) -> String {
    T1.replace(
        "prefixes = [\"10.0.0.0/24\"]\n",
        &format!("prefixes = [\"10.0.0.0/24\"]\npublic_prefixes = [{public}]\n"),
    )
}

#[test]
fn public_prefixes_lead_into_their_tenant() {
    let text = public_tenant("t1", 1000, "172.168.0.11", "2.2.2.11/32");
    let t = &accepted(&text).tenants[0];
    assert_eq!(t.public_prefixes, [cidr("2.2.2.11/32")]);
    // The host holds the public address itself: it is a valid inner source.
    assert!(t.owns(ip("2.2.2.11")) && !t.owns(ip("2.2.2.12")));
    // A shorter route to a host covers it as well.
    let wide = text.replace("{ prefix = \"2.2.2.11/32\"", "{ prefix = \"2.2.2.0/24\"");
    assert_eq!(
        accepted(&wide).tenants[0].public_prefixes,
        [cidr("2.2.2.11/32")]
    );
    assert!(accepted(&t1_with_public("")).tenants[0]
        .public_prefixes
        .is_empty());
    // Two tenants, each with its own address.
    let two = format!(
        "{text}{}",
        public_tenant("t2", 2000, "172.168.0.12", "2.2.2.12/32")
    );
    assert_eq!(
        accepted(&two).tenants[1].public_prefixes,
        [cidr("2.2.2.12/32")]
    );
}

#[test]
fn public_prefixes_are_prefixes() {
    let cases: &[(&str, &[&str])] = &[
        (
            "\"2.2.2.11/24\"",
            &[
                "tenant \"t1\": public prefix 2.2.2.11/24 has host bits set",
                "write 2.2.2.0/24",
            ],
        ),
        (
            "\"2.2.2.11\"",
            &[
                "public prefix \"2.2.2.11\" is not an IPv4 prefix",
                "e.g. 10.0.0.0/24",
            ],
        ),
        (
            "\"2.2.2.11/32\", \"2.2.2.11/32\"",
            &[
                "public prefix 2.2.2.11/32 is listed twice (first at line 22)",
                "remove one",
            ],
        ),
    ];
    for (public, fragments) in cases {
        // Only the prefix is blamed, not the missing route it would need.
        assert_errors(&refused(&t1_with_public(public)), &[(line(6), fragments)]);
    }
    let text = T1.replace(
        "prefixes = [",
        "public_prefixes = \"2.2.2.11/32\"\nprefixes = [",
    );
    assert_errors(
        &refused(&text),
        &[(
            line(5),
            &["[[tenant]] `public_prefixes`", "expected an array"],
        )],
    );
}

#[test]
fn public_prefixes_of_two_tenants_must_not_overlap() {
    let t1 = public_tenant("t1", 1000, "172.168.0.11", "2.2.2.11/32");
    for other in ["2.2.2.0/24", "2.2.2.11/32"] {
        let t2 = public_tenant("t2", 2000, "172.168.0.12", other);
        assert_errors(
            &refused(&format!("{t1}{t2}")),
            &[(
                line(11 + 6),
                &[
                    &format!("tenant \"t2\": public prefix {other} overlaps 2.2.2.11/32 of tenant \"t1\" (line 22)"),
                    "give each tenant its own",
                ],
            )],
        );
    }
    // One tenant may hold a prefix and a part of it.
    let nested = t1_with_public("\"2.2.2.0/24\", \"2.2.2.11/32\"").replace(
        "{ prefix = \"0.0.0.0/0\"",
        "{ prefix = \"2.2.2.0/24\", to = \"172.168.0.11\" },\n  { prefix = \"0.0.0.0/0\"",
    );
    assert_eq!(accepted(&nested).tenants[0].public_prefixes.len(), 2);
}

#[test]
fn public_prefixes_stay_off_the_ports_links() {
    for (public, subnet) in [
        ("1.1.1.16/28", "the subnet 1.1.1.0/24 of port \"pub0\""),
        ("1.1.0.0/16", "the subnet 1.1.1.0/24 of port \"pub0\""),
        (
            "172.168.0.11/32",
            "the subnet 172.168.0.0/24 of port \"und0\"",
        ),
    ] {
        let text = public_tenant("t1", 1000, "172.168.0.11", public);
        assert_errors(
            &refused(&text),
            &[(
                line(6),
                &[
                    &format!("tenant \"t1\": public prefix {public} overlaps {subnet}"),
                    "use a prefix outside it",
                ],
            )],
        );
    }
}

#[test]
fn public_prefixes_need_a_route_to_a_host() {
    // Only the default route covers it: it would go back out.
    assert_errors(
        &refused(&t1_with_public("\"2.2.2.11/32\"")),
        &[(
            line(6),
            &[
                "tenant \"t1\": public prefix 2.2.2.11/32 does not reach a host of the tenant (its longest covering route, 0.0.0.0/0, goes to public)",
                "add a route for 2.2.2.11/32 to one of its hosts, e.g. { prefix = \"2.2.2.11/32\", to = \"172.168.0.11\" }",
            ],
        )],
    );
    let bare = T1.split("routes").next().unwrap().replace(
        "prefixes = [\"10.0.0.0/24\"]\n",
        "prefixes = [\"10.0.0.0/24\"]\npublic_prefixes = [\"2.2.2.11/32\"]\n",
    );
    assert_errors(
        &refused(&bare),
        &[(
            line(6),
            &[
                "(no route of the tenant covers it)",
                "add a route for 2.2.2.11/32 to one of its hosts",
            ],
        )],
    );
    // The longest covering route decides, not any route to a host.
    let blackholed = public_tenant("t1", 1000, "172.168.0.11", "2.2.2.11/32")
        .replace(
            "{ prefix = \"2.2.2.11/32\", to = \"172.168.0.11\" }",
            "{ prefix = \"2.2.2.0/24\", to = \"172.168.0.11\" },\n  { prefix = \"2.2.2.11/32\", to = \"blackhole\" }",
        );
    assert_errors(
        &refused(&blackholed),
        &[(
            line(6),
            &[
                "its longest covering route, 2.2.2.11/32, goes to blackhole",
                "add a route for 2.2.2.11/32",
            ],
        )],
    );
    // A longer route inside the prefix does not cover it.
    let partial = t1_with_public("\"2.2.2.0/24\"").replace(
        "{ prefix = \"0.0.0.0/0\"",
        "{ prefix = \"2.2.2.11/32\", to = \"172.168.0.11\" },\n  { prefix = \"0.0.0.0/0\"",
    );
    assert_errors(
        &refused(&partial),
        &[(line(6), &["add a route for 2.2.2.0/24 to one of its hosts"])],
    );
}

/// `T1` followed by `neighbours = [...]` (its line 10) with `entries`.
fn t1_with_neighbours(entries: &str) -> String {
    format!("{T1}neighbours = [{entries}]\n")
}

#[test]
fn tenant_neighbours_give_inner_macs() {
    let one = t1_with_neighbours("{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }");
    assert_eq!(
        accepted(&one).tenants[0].neighbours,
        [TenantNeighbour {
            ip: ip("10.0.0.7"),
            mac: mac("02:00:00:00:0a:07")
        }]
    );
    // An address of a public prefix is the host's too.
    let public = format!(
        "{}neighbours = [{{ ip = \"2.2.2.11\", mac = \"02:00:00:00:0a:07\" }}]\n",
        public_tenant("t1", 1000, "172.168.0.11", "2.2.2.11/32")
    );
    assert_eq!(
        accepted(&public).tenants[0].neighbours[0].ip,
        ip("2.2.2.11")
    );
}

#[test]
fn tenant_neighbours_need_an_inner_ethernet() {
    let ipv4 = t1_with_neighbours(
        "{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }, { ip = \"10.0.0.8\", mac = \"02:00:00:00:0a:08\" }",
    )
    .replace("key = 1000\n", "key = 1000\nencap = \"ipv4\"\n");
    // Once for the list, at its first entry.
    assert_errors(
        &refused(&ipv4),
        &[(
            line(11),
            &[
                "tenant \"t1\": neighbours apply to gretap tunnels only",
                "no inner Ethernet header",
                "remove them or set encap = \"gretap\"",
            ],
        )],
    );
}

#[test]
fn tenant_neighbour_rules() {
    let cases: &[(&str, &[&str])] = &[
        (
            "{ ip = \"10.0.1.7\", mac = \"02:00:00:00:0a:07\" }",
            &[
                "tenant \"t1\": neighbour 10.0.1.7 is not inside the tenant's prefixes (10.0.0.0/24) or public_prefixes (none)",
                "fix the ip or add its prefix",
            ],
        ),
        (
            "{ ip = \"10.0.0.7\", mac = \"ff:ff:ff:ff:ff:ff\" }",
            &[
                "tenant \"t1\": neighbour 10.0.0.7: mac ff:ff:ff:ff:ff:ff is not a unicast address",
                "02:00:00:00:00:01",
            ],
        ),
        (
            "{ ip = \"10.0.0.7\", mac = \"00:00:00:00:00:00\" }",
            &["is not a unicast address"],
        ),
        (
            "{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a\" }",
            &["mac \"02:00:00:00:0a\" is not a MAC address"],
        ),
        (
            "{ ip = \"10.0.0\", mac = \"02:00:00:00:0a:07\" }",
            &["tenant \"t1\": neighbour ip \"10.0.0\" is not an IPv4 address"],
        ),
        (
            "{ ip = \"10.0.0.7\" }",
            &["tenant \"t1\": neighbour 10.0.0.7 has no mac", "add mac ="],
        ),
        (
            "{ mac = \"02:00:00:00:0a:07\" }",
            &["tenant \"t1\": a neighbour has no ip", "add ip ="],
        ),
        (
            "{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\", port = \"und0\" }",
            &["[[tenant.neighbour]]: unknown field `port`", "`ip`", "`mac`"],
        ),
        (
            "\"10.0.0.7\"",
            &["each [[tenant.neighbour]] entry must be a table"],
        ),
    ];
    for (entries, fragments) in cases {
        assert_errors(
            &refused(&t1_with_neighbours(entries)),
            &[(line(10), fragments)],
        );
    }
    let misspelt = format!("{T1}neighbors = []\n");
    assert_errors(
        &refused(&misspelt),
        &[(
            line(10),
            &["unknown field `neighbors`", "`neighbours`", "`neighbour`"],
        )],
    );
}

#[test]
fn tenant_neighbours_are_unique_per_tenant() {
    let twice = format!(
        "{T1}neighbours = [\n  {{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }},\n  {{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:08\" }},\n]\n"
    );
    assert_errors(
        &refused(&twice),
        &[(
            line(12),
            &[
                "tenant \"t1\": neighbour 10.0.0.7 is already defined at line 27",
                "keep one entry per address",
            ],
        )],
    );
    // Across the two forms as well.
    let forms = format!(
        "{}[[tenant.neighbour]]\nip = \"10.0.0.7\"\nmac = \"02:00:00:00:0a:08\"\n",
        t1_with_neighbours("{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }")
    );
    assert_errors(
        &refused(&forms),
        &[(
            line(12),
            &["neighbour 10.0.0.7 is already defined at line 26"],
        )],
    );
    // The same inner address in two tenants is two tunnels' business.
    let t2 = T1
        .replace("\"t1\"", "\"t2\"")
        .replace("1000", "2000")
        .replace("172.168.0.11", "172.168.0.12");
    let both = format!(
        "{}{t2}neighbours = [{{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:17\" }}]\n",
        t1_with_neighbours("{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }"),
    );
    let config = accepted(&both);
    assert_eq!(
        config.tenants[1].neighbours[0].mac,
        mac("02:00:00:00:0a:17")
    );
}

#[test]
fn both_neighbour_forms_merge_in_file_order() {
    let n = |ip: &str, m: &str| TenantNeighbour {
        ip: ip.parse().unwrap(),
        mac: mac(m),
    };
    let want = [
        n("10.0.0.7", "02:00:00:00:0a:07"),
        n("10.0.0.8", "02:00:00:00:0a:08"),
        n("10.0.0.9", "02:00:00:00:0a:09"),
    ];
    // The inline list first, then sub-tables mixed with routes.
    let mixed = format!(
        "{}[[tenant.neighbour]]\nip = \"10.0.0.8\"\nmac = \"02:00:00:00:0a:08\"\n\
         [[tenant.route]]\nprefix = \"10.1.0.0/16\"\nto = \"blackhole\"\n\
         [[tenant.neighbour]]\nip = \"10.0.0.9\"\nmac = \"02:00:00:00:0a:09\"\n",
        t1_with_neighbours("{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }")
    );
    let config = accepted(&mixed);
    assert_eq!(config.tenants[0].neighbours, want);
    assert_eq!(config.tenants[0].routes.len(), 3);
    // All inline gives the same tenant as all sub-tables.
    let inline = t1_with_neighbours(
        "{ ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:07\" }, { ip = \"10.0.0.8\", mac = \"02:00:00:00:0a:08\" }",
    );
    let tables = format!(
        "{T1}[[tenant.neighbour]]\nip = \"10.0.0.7\"\nmac = \"02:00:00:00:0a:07\"\n\
         [[tenant.neighbour]]\nip = \"10.0.0.8\"\nmac = \"02:00:00:00:0a:08\"\n"
    );
    assert_eq!(accepted(&inline), accepted(&tables));
    assert_eq!(accepted(&tables).tenants[0].neighbours, want[..2]);
}

#[test]
fn elastic_ips_name_a_tenant_and_one_of_its_addresses() {
    let t2 = T1.replace("t1", "t2").replace("1000", "2000");
    let config = accepted(&format!(
        "{T1}{t2}[[eip]]\npublic = \"2.2.2.11\"\ntenant = \"t1\"\nprivate = \"10.0.0.7\"\n\
         [[eip]]\npublic = \"2.2.2.12\"\ntenant = \"t2\"\nprivate = \"10.0.0.7\"\n"
    ));
    assert_eq!(
        config.eips,
        vec![
            ctl::config::Eip {
                public: ip("2.2.2.11"),
                tenant: 0,
                private: ip("10.0.0.7")
            },
            ctl::config::Eip {
                public: ip("2.2.2.12"),
                tenant: 1,
                private: ip("10.0.0.7")
            },
        ]
    );
    // T1 is 9 lines: the [[eip]] tables start at line 10.
    let eip = |public: &str, tenant: &str, private: &str| {
        format!("[[eip]]\npublic = \"{public}\"\ntenant = \"{tenant}\"\nprivate = \"{private}\"\n")
    };
    type Case<'a> = (String, Vec<(usize, &'a [&'a str])>);
    let cases: Vec<Case> = vec![
        (
            eip("2.2.2.11", "t9", "10.0.0.7"),
            vec![(line(12), &["no [[tenant]] is named \"t9\""][..])],
        ),
        (
            eip("2.2.2.11", "t1", "10.9.0.7"),
            vec![(
                line(13),
                &["outside tenant t1's prefixes", "add its prefix"][..],
            )],
        ),
        (
            eip("2.2.2.11", "t1", "10.0.0.7") + &eip("2.2.2.11", "t1", "10.0.0.8"),
            vec![(line(15), &["given twice (first at line", "remove one"][..])],
        ),
        (
            eip("2.2.2.11", "t1", "10.0.0.7") + &eip("2.2.2.12", "t1", "10.0.0.7"),
            vec![(line(17), &["already has an elastic IP"][..])],
        ),
        (
            "[[eip]]\npublic = \"2.2.2.11\"\n".to_owned(),
            vec![
                (line(10), &["has no tenant", "add tenant ="][..]),
                (line(10), &["has no private", "add private ="][..]),
            ],
        ),
        (
            eip("224.0.0.1", "t1", "10.0.0.7"),
            vec![(line(11), &["not a unicast host address"][..])],
        ),
    ];
    for (text, want) in cases {
        assert_errors(&refused(&format!("{T1}{text}")), &want);
    }
}

#[test]
fn flow_timeouts_keep_the_rfc_floors() {
    let config = accepted(
        "[flows]\ncapacity = 1000\ntcp_established_s = 86400\ntcp_transitory_s = 300\nudp_s = 300\nicmp_s = 60\n",
    );
    assert_eq!(config.flows.capacity, 1000);
    assert_eq!(config.flows.tcp_established_s, 86400);
    assert_eq!(config.flows.per_tenant, 250, "a quarter of the table");
    assert_eq!(config.flows.unreplied_per_tenant, 62, "a quarter of that");
    assert_eq!(config.flows.unreplied_total, 500, "half the table");
    assert_eq!(config.flows.unreplied_s, 10);
    for (text, fragments) in [
        (
            "[flows]\ntcp_established_s = 3600\n",
            &["tcp_established_s 3600 is out of range", "RFC 5382"][..],
        ),
        ("[flows]\nudp_s = 30\n", &["udp_s 30", "RFC 4787"][..]),
        ("[flows]\nicmp_s = 10\n", &["icmp_s 10", "RFC 5508"][..]),
        (
            "[flows]\ncapacity = 0\n",
            &["capacity 0 is out of range"][..],
        ),
        (
            "[flows]\nper_tenant = 101\ncapacity = 100\n",
            &["per_tenant 101 is out of range", "1..=100"][..],
        ),
        (
            "[flows]\nunreplied_per_tenant = 51\nper_tenant = 50\n",
            &["unreplied_per_tenant 51 is out of range", "1..=50", "share"][..],
        ),
        (
            "[flows]\nunreplied_total = 101\ncapacity = 100\n",
            &["unreplied_total 101 is out of range", "1..=100"][..],
        ),
        (
            "[flows]\nunreplied_s = 241\n",
            &["unreplied_s 241 is out of range", "1..=240"][..],
        ),
    ] {
        assert_errors(&refused(text), &[(line(2), fragments)]);
    }
}

#[test]
fn source_nat_pools_belong_to_one_tenant_and_use_their_own_addresses() {
    let config = accepted(&format!(
        "{T1}[[snat]]\ntenant = \"t1\"\naddresses = [\"3.3.3.1\", \"3.3.3.2\"]\n\
         ports = \"2000-3999\"\nmax_blocks = 4\nfiltering = \"endpoint-independent\"\n"
    ));
    assert_eq!(
        config.snat,
        vec![ctl::config::Snat {
            tenant: 0,
            addresses: vec![ip("3.3.3.1"), ip("3.3.3.2")],
            ports: (2000, 3999),
            max_blocks: 4,
            filtering: ctl::config::Filtering::EndpointIndependent,
        }]
    );
    let defaults = accepted(&format!(
        "{T1}[[snat]]\ntenant = \"t1\"\naddresses = [\"3.3.3.1\"]\n"
    ));
    assert_eq!(defaults.snat[0].ports, (1024, 65535));
    assert_eq!(defaults.snat[0].max_blocks, 16);
    assert_eq!(
        defaults.snat[0].filtering,
        ctl::config::Filtering::AddressAndPortDependent
    );
    // T1 is 9 lines: [[snat]] is line 10, its keys follow.
    let pool = |rest: &str| format!("{T1}[[snat]]\ntenant = \"t1\"\n{rest}");
    for (text, want) in [
        (
            pool("addresses = [\"3.3.3.1\"]\nports = \"1024-1030\"\n"),
            (line(13), &["not a range of at least 64 ports"][..]),
        ),
        (
            pool("addresses = [\"3.3.3.1\"]\nfiltering = \"eif\"\n"),
            (
                line(13),
                &["filtering \"eif\" is unknown", "endpoint-independent"][..],
            ),
        ),
        (
            pool("addresses = []\n"),
            (line(12), &["addresses is empty"][..]),
        ),
        (
            pool("addresses = [\"3.3.3.1\"]\nmax_blocks = 65\n"),
            (line(13), &["max_blocks 65 is out of range", "1..=64"][..]),
        ),
        (
            format!(
                "{T1}[[eip]]\npublic = \"3.3.3.1\"\ntenant = \"t1\"\nprivate = \"10.0.0.7\"\n\
                 [[snat]]\ntenant = \"t1\"\naddresses = [\"3.3.3.1\"]\n"
            ),
            (line(16), &["already an elastic IP or in another pool"][..]),
        ),
        // The public port's own address, for a pool or an elastic IP: the
        // gateway would answer it itself and never pass replies on.
        (
            pool("addresses = [\"3.3.3.1\", \"1.1.1.1\"]\n"),
            (
                line(12),
                &[
                    "1.1.1.1 is the gateway's own address on port \"pub0\"",
                    "give NAT an address of its own",
                ][..],
            ),
        ),
        (
            format!("{T1}[[eip]]\npublic = \"1.1.1.1\"\ntenant = \"t1\"\nprivate = \"10.0.0.7\"\n"),
            (
                line(11),
                &["1.1.1.1 is the gateway's own address on port \"pub0\""][..],
            ),
        ),
    ] {
        assert_errors(&refused(&text), &[want]);
    }
}

/// GRE checksums and sequence numbers on send (issue 9): off by default,
/// read per tenant, and sequence numbers refused with two workers, whose
/// two counters would make the host drop what arrives out of order.
#[test]
fn gre_checksum_and_sequence_are_per_tenant_and_sequence_needs_one_worker() {
    let t = &accepted(T1).tenants[0];
    assert_eq!((t.gre_checksum, t.gre_sequence), (false, false));
    let with = T1.replace(
        "key = 1000\n",
        "key = 1000\ngre_checksum = true\ngre_sequence = true\n",
    );
    let t = &accepted(&with).tenants[0];
    assert_eq!((t.gre_checksum, t.gre_sequence), (true, true));
    assert_errors(
        &refused(&T1.replace("key = 1000\n", "key = 1000\ngre_checksum = \"yes\"\n")),
        &[(line(4), &["gre_checksum", "expected true or false"])],
    );

    let two_workers = BASE.replace(
        "rx = [\"pub0:0\", \"und0:0\"]\n",
        "rx = [\"pub0:0\", \"und0:0\"]\n[[worker]]\nlcore = 2\ncpu = 0\nrx = [\"pub0:1\", \"und0:1\"]\n",
    );
    let checksum_only = T1.replace("key = 1000\n", "key = 1000\ngre_checksum = true\n");
    assert!(check_text(&format!("{two_workers}{checksum_only}")).is_ok());
    let errs = match check_text(&format!("{two_workers}{with}")) {
        Ok(_) => panic!("gre_sequence with two workers was accepted"),
        Err(e) => e,
    };
    assert_errors(
        &errs,
        &[(
            BASE_LINES + 4 + 5,
            &[
                "tenant \"t1\": gre_sequence needs a single [[worker]]",
                "2 are defined",
            ],
        )],
    );
}
