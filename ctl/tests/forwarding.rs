//! Tenants, global routes, static neighbours and the packet-path settings:
//! what each rule refuses, at which line, with which fix; and the reference
//! scenario as the model the daemon gets.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ctl::config::{
    load, parse, Arp, Config, CpuSet, Encap, Icmp, Ipv4Cidr, MacAddr, Neighbour, Role, Route,
    RouteTarget, Tcp, Tenant, TenantRoute,
};

fn cpus(list: &str) -> CpuSet {
    list.parse().expect("test CPU list")
}

/// A valid file without tenants: a public port on 1.1.1.1/24, an underlay
/// port on 172.168.0.1/24 and one worker. `BASE_LINES` lines long.
const BASE: &str = "\
[eal]
hugepages = false
memory_mb = 256
[[port]]
name = \"pub0\"
device = \"net_null0\"
role = \"public\"
addresses = [\"1.1.1.1/24\"]
[[port]]
name = \"und0\"
device = \"net_null1\"
role = \"underlay\"
addresses = [\"172.168.0.1/24\"]
[[worker]]
lcore = 1
rx = [\"pub0:0\", \"und0:0\"]
";
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

    let tenant = |name: &str, key: u32, host: &str, tunnel_mac: &str| Tenant {
        name: name.to_owned(),
        key,
        encap: Encap::Gretap,
        hosts: vec![ip(host)],
        prefixes: vec![cidr("10.0.0.0/24")],
        mac: Some(mac(tunnel_mac)),
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
    };
    assert_eq!(
        config.tenants,
        [
            tenant("t1", 1000, "172.168.0.11", "02:00:00:00:10:00"),
            tenant("t2", 2000, "172.168.0.12", "02:00:00:00:20:00"),
        ]
    );
    assert_eq!(config.tenant("t2").map(|t| t.key), Some(2000));
    assert!(config.tenants.iter().all(|t| t.owns(ip("10.0.0.7"))));
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
            max_pending: 8
        }
    );
    let t = &accepted(T1).tenants[0];
    assert_eq!((t.encap, t.mac), (Encap::Gretap, None));
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
         [arp]\nreachable_s = 1\nretry_ms = 10\nmax_pending = 64\n",
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
            max_pending: 64
        }
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
                "`tenant`, `route`, `neighbour`, `icmp`, `tcp`, `arp`",
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
    ];
    for i in 0..lines.len() {
        for j in junk {
            let mut damaged = lines.clone();
            damaged[i] = j;
            let _ = parse(&damaged.join("\n"), "x.toml", &set);
        }
    }
}
