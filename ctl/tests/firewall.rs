//! Tenants' firewall rules and default policies: what each form gives, and
//! what is refused, at which line, with which fix.

use ctl::config::{
    parse, Action, Config, CpuSet, Direction, Ipv4Cidr, PortRange, Protocol, Rule, ANY_PREFIX,
    DEFAULT_IN, DEFAULT_OUT,
};

mod common;
use common::BASE;

/// [`BASE`]'s lines: a valid file without tenants.
const BASE_LINES: usize = 16;

/// Tenant 1 of the reference scenario, `T1_LINES` lines, with the public
/// address 2.2.2.11 held by its host.
const T1: &str = "\
[[tenant]]
name = \"t1\"
key = 1000
hosts = [\"172.168.0.11\"]
prefixes = [\"10.0.0.0/24\"]
public_prefixes = [\"2.2.2.11/32\"]
routes = [
  { prefix = \"10.0.0.0/24\", to = \"172.168.0.11\" },
  { prefix = \"2.2.2.11/32\", to = \"172.168.0.11\" },
  { prefix = \"0.0.0.0/0\", to = \"public\" },
]
";
const T1_LINES: usize = 11;

/// The line of `extra`'s line `n` (1-based) once appended to `BASE`.
fn line(n: usize) -> usize {
    BASE_LINES + n
}

/// The line of the `n`th line (1-based) after T1.
fn after_t1(n: usize) -> usize {
    line(T1_LINES + n)
}

type Errors = Vec<(usize, String)>;

fn check(extra: &str) -> Result<Config, Errors> {
    assert_eq!(BASE.lines().count(), BASE_LINES);
    assert_eq!(T1.lines().count(), T1_LINES);
    let cpus: CpuSet = "0-1".parse().expect("cpus");
    parse(&format!("{BASE}{extra}"), "x.toml", &cpus).map_err(|e| {
        e.iter()
            .map(|e| (e.line.expect("a line"), e.message.clone()))
            .collect()
    })
}

fn accepted(extra: &str) -> Config {
    match check(extra) {
        Ok(c) => c,
        Err(e) => panic!("refused:\n{extra}\n{e:#?}"),
    }
}

fn refused(extra: &str) -> Errors {
    match check(extra) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e,
    }
}

/// Exactly the errors at `lines`, each message containing its fragments.
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

/// T1 with one `[[tenant.rule]]` of `keys` (its keys start at
/// `after_t1(2)`).
fn one_rule(keys: &str) -> String {
    format!("{T1}[[tenant.rule]]\n{keys}")
}

fn rules_of(extra: &str) -> Vec<Rule> {
    accepted(extra).tenants[0].rules.clone()
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().expect("test prefix")
}

fn rule(direction: Direction, action: Action, proto: Protocol) -> Rule {
    Rule {
        direction,
        action,
        proto,
        src: ANY_PREFIX,
        dst: ANY_PREFIX,
        sport: None,
        dport: None,
        icmp_type: None,
        icmp_code: None,
    }
}

fn ports(lo: u16, hi: u16) -> Option<PortRange> {
    Some(PortRange { lo, hi })
}

#[test]
fn without_rules_inbound_is_denied_and_outbound_allowed() {
    let t = &accepted(T1).tenants[0];
    assert!(t.rules.is_empty());
    assert_eq!((t.default_in, t.default_out), (Action::Deny, Action::Allow));
    assert_eq!((DEFAULT_IN, DEFAULT_OUT), (Action::Deny, Action::Allow));
    let flipped = T1.replace(
        "key = 1000\n",
        "key = 1000\ndefault_in = \"allow\"\ndefault_out = \"deny\"\n",
    );
    let t = &accepted(&flipped).tenants[0];
    assert_eq!((t.default_in, t.default_out), (Action::Allow, Action::Deny));

    let bad = T1.replace(
        "key = 1000\n",
        "key = 1000\ndefault_in = \"drop\"\ndefault_out = \"accept\"\n",
    );
    assert_errors(
        &refused(&bad),
        &[
            (
                line(4),
                &[
                    "tenant \"t1\": default_in \"drop\" is not an action",
                    "use \"allow\" or \"deny\"",
                ],
            ),
            (
                line(5),
                &["default_out \"accept\" is not an action", "\"allow\""],
            ),
        ],
    );
    let wrong_type = T1.replace("key = 1000\n", "key = 1000\ndefault_in = false\n");
    assert_errors(
        &refused(&wrong_type),
        &[(line(4), &["[[tenant]] `default_in`", "expected a string"])],
    );
}

#[test]
fn both_rule_forms_give_the_same_model() {
    let inline = format!(
        "{}rules = [\n  {{ direction = \"in\", action = \"allow\", proto = \"tcp\", dport = 22 }},\n  {{ direction = \"in\", action = \"allow\", proto = \"icmp\" }},\n  {{ direction = \"out\", action = \"deny\", proto = \"tcp\", dport = 22 }},\n]\n",
        T1
    );
    let tables = format!(
        "{T1}\
[[tenant.rule]]
direction = \"in\"
action = \"allow\"
proto = \"tcp\"
dport = 22
[[tenant.rule]]
direction = \"in\"
action = \"allow\"
proto = \"icmp\"
[[tenant.rule]]
direction = \"out\"
action = \"deny\"
proto = \"tcp\"
dport = 22
"
    );
    let want = vec![
        Rule {
            dport: ports(22, 22),
            ..rule(Direction::In, Action::Allow, Protocol::Tcp)
        },
        rule(Direction::In, Action::Allow, Protocol::Icmp),
        Rule {
            dport: ports(22, 22),
            ..rule(Direction::Out, Action::Deny, Protocol::Tcp)
        },
    ];
    assert_eq!(rules_of(&inline), want);
    assert_eq!(accepted(&tables), accepted(&inline));
    // Both forms in one tenant: file order.
    let mixed = format!(
        "{T1}rules = [{{ direction = \"in\", action = \"allow\", proto = \"tcp\", dport = 22 }}]\n\
[[tenant.rule]]
direction = \"in\"
action = \"allow\"
proto = \"icmp\"
[[tenant.rule]]
direction = \"out\"
action = \"deny\"
proto = \"tcp\"
dport = 22
"
    );
    assert_eq!(rules_of(&mixed), want);
}

#[test]
fn protocols_by_name_and_number() {
    let proto = |p: &str| {
        rules_of(&one_rule(&format!(
            "direction = \"out\"\naction = \"deny\"\nproto = {p}\n"
        )))[0]
            .proto
    };
    assert_eq!(proto("\"tcp\""), Protocol::Tcp);
    assert_eq!(proto("\"udp\""), Protocol::Udp);
    assert_eq!(proto("\"icmp\""), Protocol::Icmp);
    assert_eq!(proto("\"any\""), Protocol::Any);
    assert_eq!(proto("6"), Protocol::Tcp);
    assert_eq!(proto("17"), Protocol::Udp);
    assert_eq!(proto("1"), Protocol::Icmp);
    assert_eq!(proto("47"), Protocol::Number(47));
    assert_eq!(proto("0"), Protocol::Number(0));
    assert_eq!(proto("255"), Protocol::Number(255));
    // Absent: any.
    let r = rules_of(&one_rule("direction = \"out\"\naction = \"deny\"\n"));
    assert_eq!(r, [rule(Direction::Out, Action::Deny, Protocol::Any)]);
    // Ports apply to a numbered TCP.
    let r = rules_of(&one_rule(
        "direction = \"in\"\naction = \"allow\"\nproto = 6\ndport = 22\n",
    ));
    assert_eq!((r[0].proto, r[0].dport), (Protocol::Tcp, ports(22, 22)));

    let bad = |p: &str| {
        refused(&one_rule(&format!(
            "direction = \"in\"\naction = \"allow\"\nproto = {p}\n"
        )))
    };
    assert_errors(
        &bad("\"sctp\""),
        &[(
            after_t1(4),
            &[
                "tenant \"t1\": rule 1: unknown proto \"sctp\"",
                "\"tcp\", \"udp\", \"icmp\", \"any\" or a protocol number 0..=255",
            ],
        )],
    );
    assert_errors(
        &bad("\"TCP\""),
        &[(after_t1(4), &["unknown proto \"TCP\""])],
    );
    assert_errors(
        &bad("\"6\""),
        &[(after_t1(4), &["write a number without quotes: proto = 6"])],
    );
    assert_errors(
        &bad("256"),
        &[(
            after_t1(4),
            &["proto 256 is out of range", "0..=255", "\"tcp\""],
        )],
    );
    assert_errors(&bad("-1"), &[(after_t1(4), &["proto -1 is out of range"])]);
    assert_errors(
        &bad("true"),
        &[(
            after_t1(4),
            &[
                "[[tenant.rule]] `proto`",
                "\"tcp\", \"udp\", \"icmp\", \"any\"",
            ],
        )],
    );
}

#[test]
fn ports_and_ranges() {
    let dport = |v: &str| {
        rules_of(&one_rule(&format!(
            "direction = \"in\"\naction = \"allow\"\nproto = \"udp\"\ndport = {v}\n"
        )))[0]
            .dport
    };
    assert_eq!(dport("22"), ports(22, 22));
    assert_eq!(dport("\"22\""), ports(22, 22));
    assert_eq!(dport("0"), ports(0, 0));
    assert_eq!(dport("65535"), ports(65535, 65535));
    assert_eq!(dport("\"1024-65535\""), ports(1024, 65535));
    assert_eq!(dport("\"0-65535\""), ports(0, 65535));
    assert_eq!(dport("\"7-7\""), ports(7, 7));
    let r = rules_of(&one_rule(
        "direction = \"out\"\naction = \"deny\"\nproto = \"tcp\"\nsport = \"1-2\"\n",
    ));
    assert_eq!((r[0].sport, r[0].dport), (ports(1, 2), None));

    let bad = |v: &str| {
        refused(&one_rule(&format!(
            "direction = \"in\"\naction = \"allow\"\nproto = \"tcp\"\ndport = {v}\n"
        )))
    };
    let cases: &[(&str, &[&str])] = &[
        (
            "65536",
            &[
                "tenant \"t1\": rule 1: dport 65536 is out of range",
                "ports are 0..=65535",
                "\"1024-65535\"",
            ],
        ),
        ("-1", &["dport -1 is out of range"]),
        ("\"1024-65536\"", &["dport \"1024-65536\" is out of range"]),
        (
            "\"2000-1000\"",
            &["dport \"2000-1000\" runs backwards", "write \"1000-2000\""],
        ),
        (
            "\"ssh\"",
            &[
                "dport \"ssh\" is not a port or a range",
                "a port like 22 or a range like \"1024-65535\"",
            ],
        ),
        ("\"1024-\"", &["is not a port or a range"]),
        ("\"-5\"", &["is not a port or a range"]),
        ("\"1-2-3\"", &["is not a port or a range"]),
        ("\"\"", &["is not a port or a range"]),
        (
            "[22]",
            &["[[tenant.rule]] `dport`", "a port like 22 or a range"],
        ),
    ];
    for (v, fragments) in cases {
        assert_errors(&bad(v), &[(after_t1(5), fragments)]);
    }
}

#[test]
fn ports_apply_to_tcp_and_udp_only() {
    let on = |proto: &str| {
        refused(&one_rule(&format!(
            "direction = \"in\"\naction = \"allow\"\n{proto}sport = 1\ndport = \"1-2\"\n"
        )))
    };
    assert_errors(
        &on("proto = \"icmp\"\n"),
        &[
            (
                after_t1(5),
                &[
                    "rule 1: sport applies to tcp and udp rules only, and this rule's proto is icmp;",
                    "remove sport or set proto = \"tcp\" or \"udp\"",
                ],
            ),
            (after_t1(6), &["dport applies to tcp and udp rules only"]),
        ],
    );
    assert_errors(
        &on(""),
        &[
            (after_t1(4), &["this rule's proto is any (the default)"]),
            (after_t1(5), &["dport applies"]),
        ],
    );
    assert_errors(
        &on("proto = 47\n"),
        &[
            (after_t1(5), &["this rule's proto is 47;"]),
            (after_t1(6), &["dport applies"]),
        ],
    );
    // A broken proto is reported once, not blamed on the ports.
    assert_errors(
        &on("proto = \"tcpp\"\n"),
        &[(after_t1(4), &["unknown proto \"tcpp\""])],
    );
}

#[test]
fn icmp_types_and_codes() {
    let r = rules_of(&one_rule(
        "direction = \"in\"\naction = \"allow\"\nproto = \"icmp\"\nicmp_type = 3\nicmp_code = 4\n",
    ));
    assert_eq!((r[0].icmp_type, r[0].icmp_code), (Some(3), Some(4)));
    let r = rules_of(&one_rule(
        "direction = \"in\"\naction = \"allow\"\nproto = 1\nicmp_type = 255\n",
    ));
    assert_eq!((r[0].icmp_type, r[0].icmp_code), (Some(255), None));

    assert_errors(
        &refused(&one_rule(
            "direction = \"in\"\naction = \"allow\"\nproto = \"tcp\"\nicmp_type = 8\n",
        )),
        &[(
            after_t1(5),
            &[
                "rule 1: icmp_type applies to icmp rules only, and this rule's proto is tcp;",
                "set proto = \"icmp\"",
            ],
        )],
    );
    assert_errors(
        &refused(&one_rule(
            "direction = \"in\"\naction = \"allow\"\nproto = \"icmp\"\nicmp_code = 0\n",
        )),
        &[(after_t1(5), &["icmp_code needs icmp_type", "add icmp_type"])],
    );
    assert_errors(
        &refused(&one_rule(
            "direction = \"in\"\naction = \"allow\"\nproto = \"icmp\"\nicmp_type = 256\nicmp_code = -1\n",
        )),
        &[
            (after_t1(5), &["icmp_type 256 is out of range", "0..=255"]),
            (after_t1(6), &["icmp_code -1 is out of range"]),
        ],
    );
    assert_errors(
        &refused(&one_rule(
            "direction = \"in\"\naction = \"allow\"\nproto = \"icmp\"\nicmp_type = \"echo\"\n",
        )),
        &[(
            after_t1(5),
            &["[[tenant.rule]] `icmp_type`", "expected an integer"],
        )],
    );
}

#[test]
fn prefixes_in_the_tenants_own_addresses() {
    let r = rules_of(&one_rule(
        "direction = \"in\"\naction = \"allow\"\nsrc = \"1.1.1.7/32\"\ndst = \"10.0.0.7/32\"\n",
    ));
    assert_eq!(
        (r[0].src, r[0].dst),
        (cidr("1.1.1.7/32"), cidr("10.0.0.7/32"))
    );
    // The public prefix the host holds itself is its own address too.
    let r = rules_of(&one_rule(
        "direction = \"in\"\naction = \"allow\"\ndst = \"2.2.2.11/32\"\n",
    ));
    assert_eq!(r[0].dst, cidr("2.2.2.11/32"));
    // A prefix covering the tenant's is fine; /0 written out too.
    let r = rules_of(&one_rule(
        "direction = \"out\"\naction = \"deny\"\nsrc = \"10.0.0.0/8\"\ndst = \"0.0.0.0/0\"\n",
    ));
    assert_eq!((r[0].src, r[0].dst), (cidr("10.0.0.0/8"), ANY_PREFIX));

    assert_errors(
        &refused(&one_rule(
            "direction = \"in\"\naction = \"allow\"\ndst = \"2.2.2.12/32\"\n",
        )),
        &[(
            after_t1(4),
            &[
                "rule 1: dst 2.2.2.12/32 is none of the tenant's addresses (prefixes 10.0.0.0/24; public_prefixes 2.2.2.11/32)",
                "an in rule sees the destination after DNAT",
                "remove dst to match all",
            ],
        )],
    );
    assert_errors(
        &refused(&one_rule(
            "direction = \"out\"\naction = \"deny\"\nsrc = \"10.0.1.0/24\"\ndst = \"10.0.1.0/24\"\n",
        )),
        &[(
            after_t1(4),
            &["src 10.0.1.0/24 is none of the tenant's addresses", "before SNAT"],
        )],
    );
    let cases: &[(&str, &[&str])] = &[
        (
            "\"1.1.1.7\"",
            &[
                "src \"1.1.1.7\" is an address, not a prefix",
                "write \"1.1.1.7/32\"",
            ],
        ),
        (
            "\"1.1.1.7/24\"",
            &["src 1.1.1.7/24 has host bits set", "write 1.1.1.0/24"],
        ),
        (
            "\"1.1.1.0/33\"",
            &["src \"1.1.1.0/33\" is not an IPv4 prefix"],
        ),
        ("\"any\"", &["is not an IPv4 prefix"]),
    ];
    for (src, fragments) in cases {
        assert_errors(
            &refused(&one_rule(&format!(
                "direction = \"in\"\naction = \"allow\"\nsrc = {src}\n"
            ))),
            &[(after_t1(4), fragments)],
        );
    }
}

#[test]
fn direction_and_action_are_required() {
    assert_errors(
        &refused(&one_rule("proto = \"tcp\"\n")),
        &[
            (
                after_t1(1),
                &[
                    "tenant \"t1\": rule 1 has no direction",
                    "add direction = \"in\" (from the public side toward the tenant) or \"out\"",
                ],
            ),
            (
                after_t1(1),
                &["rule 1 has no action", "add action = \"allow\" or \"deny\""],
            ),
        ],
    );
    assert_errors(
        &refused(&one_rule("direction = \"ingress\"\naction = \"drop\"\n")),
        &[
            (
                after_t1(2),
                &[
                    "rule 1: unknown direction \"ingress\"",
                    "use \"in\"",
                    "\"out\"",
                ],
            ),
            (
                after_t1(3),
                &[
                    "rule 1: unknown action \"drop\"",
                    "use \"allow\" or \"deny\"",
                ],
            ),
        ],
    );
}

#[test]
fn rule_problems_point_at_the_rule() {
    // Each rule's problems at its own lines, numbered in file order.
    let text = format!(
        "{T1}rules = [{{ direction = \"in\", action = \"allow\" }}]\n\
[[tenant.rule]]
direction = \"out\"
action = \"deny\"
port = 22
[[tenant.rule]]
direction = \"up\"
action = \"allow\"
"
    );
    assert_errors(
        &refused(&text),
        &[
            (
                after_t1(5),
                &[
                    "[[tenant.rule]]",
                    "unknown field `port`",
                    "`sport`",
                    "`dport`",
                ],
            ),
            (after_t1(7), &["rule 3: unknown direction \"up\""]),
        ],
    );
    let misspelt = format!("{T1}rule = [{{ direction = \"in\", action = \"allow\" }}]\n");
    assert_eq!(accepted(&misspelt).tenants[0].rules.len(), 1);
    let misspelt = format!("{T1}rulez = [{{ direction = \"in\", action = \"allow\" }}]\n");
    assert_errors(
        &refused(&misspelt),
        &[(after_t1(1), &["unknown field `rulez`", "`rules`", "`rule`"])],
    );
    let not_tables = format!("{T1}rules = [\"allow tcp 22\"]\n");
    assert_errors(
        &refused(&not_tables),
        &[(after_t1(1), &["each [[tenant.rule]] entry must be a table"])],
    );
}

#[test]
fn a_rule_naming_an_elastic_ip_is_told_its_private_address() {
    // The reference shape with NAT: 2.2.2.7 is t1's elastic IP for
    // 10.0.0.7, and rules see 10.0.0.7.
    let nat = T1
        .replace("public_prefixes = [\"2.2.2.11/32\"]\n", "")
        .replace(
            "  { prefix = \"2.2.2.11/32\", to = \"172.168.0.11\" },\n",
            "",
        );
    let eip = "[[eip]]\npublic = \"2.2.2.7\"\ntenant = \"t1\"\nprivate = \"10.0.0.7\"\n";
    let rule = |dst: &str| {
        format!(
            "{nat}rules = [{{ direction = \"in\", action = \"allow\", dst = \"{dst}\" }}]\n{eip}"
        )
    };
    assert_eq!(
        accepted(&rule("10.0.0.7/32")).tenants[0].rules[0].dst,
        cidr("10.0.0.7/32")
    );
    let rules_line = line(nat.lines().count() + 1);
    assert_errors(
        &refused(&rule("2.2.2.7/32")),
        &[(
            rules_line,
            &[
                "rule 1: dst 2.2.2.7/32 is none of the tenant's addresses (prefixes 10.0.0.0/24; public_prefixes none)",
                "2.2.2.7 is the elastic IP of 10.0.0.7: write dst = \"10.0.0.7/32\"",
            ],
        )],
    );
    // Another tenant's elastic IP gives no such hint.
    let other = rule("2.2.2.0/24").replace("tenant = \"t1\"", "tenant = \"t9\"");
    let errs = refused(&other);
    assert!(
        errs.iter()
            .any(|(l, m)| *l == rules_line && m.contains("remove dst to match all")),
        "{errs:#?}"
    );
}
