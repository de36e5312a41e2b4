//! The running state: every op applied and read back, every bad input
//! refused with the state exactly as before, idempotent adds, stable slots
//! and handles, and the plan of a whole file.

use ctl::api::{ApiError, ErrorCode, Op};
use ctl::config::{parse, Config, CpuSet};
use ctl::running::{Change, PlanError, Running};
use serde_json::{json, Value};

fn cpus() -> CpuSet {
    "0-3".parse().expect("test CPU list")
}

/// Two ports, one worker, two tenants (t2 with a public prefix routed to
/// its host), an elastic IP, a pool, global routes on both sides and
/// static neighbours.
const BASE: &str = r#"
[eal]
main_lcore = 0
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
addresses = ["1.1.1.1/24"]
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
addresses = ["172.168.0.1/24"]
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
[[tenant]]
name = "t1"
key = 1000
hosts = ["172.168.0.11"]
prefixes = ["10.0.0.0/24"]
routes = [
  { prefix = "10.0.0.0/24", to = "172.168.0.11" },
  { prefix = "0.0.0.0/0", to = "public" },
]
neighbours = [{ ip = "10.0.0.7", mac = "02:00:00:00:0a:07" }]
rules = [
  { direction = "in", action = "allow", proto = "tcp", dport = 22 },
  { direction = "out", action = "deny", proto = "tcp", dport = 25 },
]
[[tenant]]
name = "t2"
key = 2000
hosts = ["172.168.0.12", "172.169.0.5"]
prefixes = ["10.0.0.0/24"]
public_prefixes = ["5.5.5.0/24"]
routes = [
  { prefix = "10.0.0.0/24", to = "172.168.0.12" },
  { prefix = "5.5.5.0/24", to = "172.168.0.12" },
  { prefix = "0.0.0.0/0", to = "public" },
]
[[eip]]
public = "2.2.2.11"
tenant = "t1"
private = "10.0.0.7"
[[snat]]
tenant = "t1"
addresses = ["3.3.3.1"]
[[route]]
prefix = "0.0.0.0/0"
via = "1.1.1.254"
[[route]]
prefix = "172.169.0.0/16"
via = "172.168.0.254"
[[neighbour]]
port = "pub0"
ip = "1.1.1.254"
mac = "02:00:00:00:fe:fe"
"#;

fn base() -> Running {
    Running::new(parse(BASE, "base.toml", &cpus()).expect("BASE is valid"))
}

fn ok(run: &mut Running, op: Value) -> Vec<Change> {
    let op: Op = serde_json::from_value(op).expect("a well-formed op");
    match run.apply(&op) {
        Ok(applied) => applied.changes,
        Err(e) => panic!("{op:?} refused: {e}"),
    }
}

/// Applies `op`, expects a refusal, and checks the state is exactly as
/// before.
fn refused(run: &mut Running, op: Value) -> ApiError {
    let op: Op = serde_json::from_value(op).expect("a well-formed op");
    let before = run.config();
    let e = match run.apply(&op) {
        Ok(applied) => panic!("{op:?} accepted: {applied:?}"),
        Err(e) => e,
    };
    assert_eq!(
        run.config(),
        before,
        "{op:?} was refused but changed the state"
    );
    e
}

fn show(run: &Running, op: Value) -> Value {
    let op: Op = serde_json::from_value(op).expect("a well-formed op");
    run.show(&op).expect("show")
}

fn tenant_json(name: &str, key: u32) -> Value {
    json!({
        "name": name,
        "key": key,
        "hosts": ["172.168.0.13"],
        "prefixes": ["10.1.0.0/24"],
        "routes": [
            { "prefix": "10.1.0.0/24", "to": "172.168.0.13" },
            { "prefix": "0.0.0.0/0", "to": "public" },
        ],
        "rules": [{ "direction": "in", "action": "allow", "proto": "icmp" }],
    })
}

#[test]
fn slots_follow_the_file_and_config_reads_back() {
    let run = base();
    assert_eq!(run.slot("t1"), Some(0));
    assert_eq!(run.slot("t2"), Some(1));
    assert_eq!(run.slot("t3"), None);
    let c = run.config();
    let file = parse(BASE, "base.toml", &cpus()).unwrap();
    assert_eq!(c.ports, file.ports);
    assert_eq!(c.eips, file.eips);
    assert_eq!(c.snat, file.snat);
    assert_eq!(c.tenants.len(), 2);
    assert_eq!(c.tenants[0].rules, file.tenants[0].rules);
    // The state read back is a valid state: a new Running from it reads
    // back the same.
    assert_eq!(Running::new(c.clone()).config(), c);
}

#[test]
fn tenant_add_show_del() {
    let mut run = base();
    let changes = ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    assert_eq!(changes, vec![Change::Tenant(2)]);
    assert_eq!(run.slot("t3"), Some(2));
    let shown = show(&run, json!({"op": "tenant.show", "args": {"name": "t3"}}));
    assert_eq!(shown[0]["name"], "t3");
    assert_eq!(shown[0]["slot"], 2);
    assert_eq!(shown[0]["routes"].as_array().unwrap().len(), 2);
    let t = run
        .config()
        .tenants
        .into_iter()
        .find(|t| t.name == "t3")
        .unwrap();
    assert_eq!(t.key, 3000);
    assert_eq!(run.tenant(2), Some(t));
    assert_eq!(run.slots(), vec![0, 1, 2]);
    // Rule slots count over all tenants: t1's rules hold 0 and 1.
    assert_eq!(run.rule_slots(2), vec![2]);

    let changes = ok(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t3"}}),
    );
    assert_eq!(changes, vec![Change::TenantRemoved(2)]);
    assert!(run.config().tenants.iter().all(|t| t.name != "t3"));
    let e = refused(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t3"}}),
    );
    assert_eq!(e.code, ErrorCode::NotFound);

    // A host behind the underlay route 172.169.0.0/16 is reachable; one
    // behind the public side's default route is not.
    let mut t4 = tenant_json("t4", 4000);
    t4["hosts"] = json!(["172.169.0.77"]);
    t4["routes"] = json!([{ "prefix": "10.1.0.0/24", "to": "172.169.0.77" }]);
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t4}}),
    );
    let mut t5 = tenant_json("t5", 5000);
    t5["hosts"] = json!(["8.8.8.8"]);
    t5["routes"] = json!([{ "prefix": "10.1.0.0/24", "to": "8.8.8.8" }]);
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t5}}),
    );
    assert_eq!(e.field.as_deref(), Some("tenant.hosts[0]"));
    assert!(e.message.contains("not reachable on the underlay"), "{e}");
}

#[test]
fn tenant_del_takes_its_elastic_ips_and_pool() {
    let mut run = base();
    let changes = ok(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t1"}}),
    );
    assert!(changes.contains(&Change::EipRemoved("2.2.2.11".parse().unwrap())));
    assert!(changes.contains(&Change::SnatRemoved(0)));
    assert!(changes.contains(&Change::TenantRemoved(0)));
    let c = run.config();
    assert!(c.eips.is_empty());
    assert!(c.snat.is_empty());
    // The address is free again.
    ok(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.11", "tenant": "t2", "private": "10.0.0.9"}}}),
    );
}

#[test]
fn slots_stay_put_and_wait_for_release() {
    let mut run = base();
    ok(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t1"}}),
    );
    assert_eq!(run.slot("t2"), Some(1), "another tenant's removal moved t2");
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    assert_eq!(run.slot("t3"), Some(2), "slot 0 was reused before release");
    run.release(0);
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t4", 4000)}}),
    );
    assert_eq!(run.slot("t4"), Some(0));
    // Releasing a live tenant's slot does nothing.
    run.release(1);
    let mut t5 = tenant_json("t5", 5000);
    t5["hosts"] = json!(["172.168.0.14"]);
    t5["routes"] = json!([{ "prefix": "0.0.0.0/0", "to": "public" }]);
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t5}}),
    );
    assert_eq!(run.slot("t5"), Some(3));
}

#[test]
fn routes_of_a_tenant_and_global() {
    let mut run = base();
    let changes = ok(
        &mut run,
        json!({"op": "route.add", "args": {"tenant": "t1", "route": {"prefix": "192.168.0.0/16", "to": "blackhole"}}}),
    );
    assert_eq!(changes, vec![Change::Tenant(0)]);
    let shown = show(&run, json!({"op": "route.show", "args": {"tenant": "t1"}}));
    assert!(shown
        .as_array()
        .unwrap()
        .contains(&json!({"prefix": "192.168.0.0/16", "to": "blackhole"})));
    // Idempotent; another value is Exists unless replaced.
    assert!(ok(&mut run, json!({"op": "route.add", "args": {"tenant": "t1", "route": {"prefix": "192.168.0.0/16", "to": "blackhole"}}})).is_empty());
    let e = refused(
        &mut run,
        json!({"op": "route.add", "args": {"tenant": "t1", "route": {"prefix": "192.168.0.0/16", "to": "public"}}}),
    );
    assert_eq!(e.code, ErrorCode::Exists);
    ok(
        &mut run,
        json!({"op": "route.add", "args": {"tenant": "t1", "route": {"prefix": "192.168.0.0/16", "to": "public"}, "replace": true}}),
    );
    ok(
        &mut run,
        json!({"op": "route.del", "args": {"tenant": "t1", "prefix": "192.168.0.0/16"}}),
    );
    assert_eq!(run.config().tenants[0].routes.len(), 2);
    let e = refused(
        &mut run,
        json!({"op": "route.del", "args": {"tenant": "t1", "prefix": "192.168.0.0/16"}}),
    );
    assert_eq!(e.code, ErrorCode::NotFound);

    let changes = ok(
        &mut run,
        json!({"op": "route.add", "args": {"route": {"prefix": "8.8.0.0/16", "via": "1.1.1.253"}}}),
    );
    assert_eq!(changes, vec![Change::GlobalRoutes]);
    let shown = show(&run, json!({"op": "route.show", "args": {}}));
    assert!(shown
        .as_array()
        .unwrap()
        .contains(&json!({"prefix": "8.8.0.0/16", "via": "1.1.1.253", "port": "pub0"})));
    ok(
        &mut run,
        json!({"op": "route.del", "args": {"prefix": "8.8.0.0/16"}}),
    );
    assert_eq!(run.config().routes.len(), 2);
}

#[test]
fn a_route_change_may_not_strand_a_public_prefix_or_a_tunnel_host() {
    let mut run = base();
    // t2's 5.5.5.0/24 leads to its host only through this route.
    let e = refused(
        &mut run,
        json!({"op": "route.del", "args": {"tenant": "t2", "prefix": "5.5.5.0/24"}}),
    );
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(e.message.contains("does not reach a host"), "{e}");
    let e = refused(
        &mut run,
        json!({"op": "route.add", "args": {"tenant": "t2", "route": {"prefix": "5.5.5.0/24", "to": "public"}, "replace": true}}),
    );
    assert!(e.message.contains("does not reach a host"), "{e}");
    // t2's host 172.169.0.5 is reached only through this underlay route.
    let e = refused(
        &mut run,
        json!({"op": "route.del", "args": {"prefix": "172.169.0.0/16"}}),
    );
    assert!(e.message.contains("172.169.0.5"), "{e}");
}

#[test]
fn eips_and_pools() {
    let mut run = base();
    let ip = "2.2.2.12".parse().unwrap();
    let changes = ok(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.12", "tenant": "t2", "private": "10.0.0.7"}}}),
    );
    assert_eq!(changes, vec![Change::Eip(ip)]);
    let shown = show(&run, json!({"op": "eip.show", "args": {"tenant": "t2"}}));
    assert_eq!(
        shown,
        json!([{"public": "2.2.2.12", "tenant": "t2", "private": "10.0.0.7"}])
    );
    assert!(ok(&mut run, json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.12", "tenant": "t2", "private": "10.0.0.7"}}})).is_empty());
    assert_eq!(
        ok(
            &mut run,
            json!({"op": "eip.del", "args": {"public": "2.2.2.12"}})
        ),
        vec![Change::EipRemoved(ip)]
    );
    let e = refused(
        &mut run,
        json!({"op": "eip.del", "args": {"public": "2.2.2.12"}}),
    );
    assert_eq!(e.code, ErrorCode::NotFound);

    assert_eq!(
        run.eip("2.2.2.11".parse().unwrap()),
        Some((0, "10.0.0.7".parse().unwrap()))
    );
    let changes = ok(
        &mut run,
        json!({"op": "snat.add", "args": {"snat": {"tenant": "t2", "addresses": ["3.3.3.2"], "ports": "2048-4095"}}}),
    );
    assert_eq!(changes, vec![Change::Snat(1)]);
    assert_eq!(run.pool(1).map(|p| p.ports), Some((2048, 4095)));
    let shown = show(&run, json!({"op": "snat.show", "args": {"tenant": "t2"}}));
    assert_eq!(shown[0]["addresses"], json!(["3.3.3.2"]));
    assert_eq!(shown[0]["ports"], "2048-4095");
    let e = refused(
        &mut run,
        json!({"op": "snat.add", "args": {"snat": {"tenant": "t2", "addresses": ["3.3.3.9"]}}}),
    );
    assert_eq!(e.code, ErrorCode::Exists);
    assert_eq!(
        ok(
            &mut run,
            json!({"op": "snat.del", "args": {"tenant": "t2"}})
        ),
        vec![Change::SnatRemoved(1)]
    );
    // A pool address cannot be an elastic IP, nor the other way round.
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "3.3.3.1", "tenant": "t2", "private": "10.0.0.7"}}}),
    );
    assert_eq!(e.field.as_deref(), Some("eip.public"));
    let e = refused(
        &mut run,
        json!({"op": "snat.add", "args": {"snat": {"tenant": "t2", "addresses": ["2.2.2.11"]}}}),
    );
    assert_eq!(e.field.as_deref(), Some("snat.addresses[0]"));
}

#[test]
fn rules_have_handles_and_reusable_slots() {
    let mut run = base();
    assert_eq!(run.rule_handles(0), vec![1, 2]);
    assert_eq!(run.rule_slots(0), vec![0, 1]);
    let op: Op = serde_json::from_value(json!({"op": "rule.add", "args": {"tenant": "t1", "rule": {"direction": "in", "action": "allow", "proto": "udp", "dport": 53}, "position": 0}})).unwrap();
    let applied = run.apply(&op).unwrap();
    assert_eq!(applied.changes, vec![Change::Tenant(0)]);
    assert_eq!(applied.rules.len(), 1);
    let h = applied.rules[0].handle;
    assert_eq!(applied.to_json()["handle"], h);
    assert_eq!(run.rule_handles(0), vec![h, 1, 2]);
    assert_eq!(run.rule_slots(0), vec![2, 0, 1]);
    let shown = show(&run, json!({"op": "rule.show", "args": {"tenant": "t1"}}));
    assert_eq!(shown[0]["handle"], h);
    assert_eq!(shown[0]["dport"], 53);
    assert_eq!(shown[0]["slot"], 2);

    ok(
        &mut run,
        json!({"op": "rule.del", "args": {"tenant": "t1", "handle": 1}}),
    );
    assert_eq!(run.rule_handles(0), vec![h, 2]);
    // The freed counter slot is reused; the handle never is.
    let applied = run.apply(&serde_json::from_value(json!({"op": "rule.add", "args": {"tenant": "t1", "rule": {"direction": "in", "action": "allow", "proto": "icmp"}}})).unwrap()).unwrap();
    assert_eq!(applied.rules[0].slot, 0);
    assert!(applied.rules[0].handle > h);
    let e = refused(
        &mut run,
        json!({"op": "rule.del", "args": {"tenant": "t1", "handle": 1}}),
    );
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = refused(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t1", "rule": {"direction": "in", "action": "allow", "proto": "icmp"}, "position": 9}}),
    );
    assert_eq!(e.field.as_deref(), Some("position"));
}

#[test]
fn neighbours_of_ports_and_tenants() {
    let mut run = base();
    let changes = ok(
        &mut run,
        json!({"op": "neigh.add", "args": {"neighbour": {"port": "und0", "ip": "172.168.0.11", "mac": "02:00:00:00:0b:0b"}}}),
    );
    assert_eq!(changes, vec![Change::Neighbours]);
    let shown = show(&run, json!({"op": "neigh.show", "args": {}}));
    assert!(shown
        .as_array()
        .unwrap()
        .contains(&json!({"port": "und0", "ip": "172.168.0.11", "mac": "02:00:00:00:0b:0b"})));
    let e = refused(
        &mut run,
        json!({"op": "neigh.add", "args": {"neighbour": {"port": "und0", "ip": "172.168.0.11", "mac": "02:00:00:00:0b:0c"}}}),
    );
    assert_eq!(e.code, ErrorCode::Exists);
    ok(
        &mut run,
        json!({"op": "neigh.del", "args": {"ip": "172.168.0.11"}}),
    );
    assert_eq!(run.config().neighbours.len(), 1);

    ok(
        &mut run,
        json!({"op": "neigh.add", "args": {"tenant": "t1", "neighbour": {"ip": "10.0.0.8", "mac": "02:00:00:00:0a:08"}}}),
    );
    let shown = show(&run, json!({"op": "neigh.show", "args": {"tenant": "t1"}}));
    assert_eq!(shown.as_array().unwrap().len(), 2);
    ok(
        &mut run,
        json!({"op": "neigh.del", "args": {"tenant": "t1", "ip": "10.0.0.8"}}),
    );
    assert_eq!(run.config().tenants[0].neighbours.len(), 1);
    let e = refused(
        &mut run,
        json!({"op": "neigh.add", "args": {"tenant": "t1", "neighbour": {"ip": "10.9.0.8", "mac": "02:00:00:00:0a:08"}}}),
    );
    assert_eq!(e.field.as_deref(), Some("neighbour.ip"));
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let mut run = base();
    // Unknown tenant.
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.99", "tenant": "nope", "private": "10.0.0.7"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("eip.tenant"))
    );
    assert!(e.message.contains("no [[tenant]] is named \"nope\""), "{e}");
    let e = refused(
        &mut run,
        json!({"op": "route.add", "args": {"tenant": "nope", "route": {"prefix": "1.0.0.0/8", "to": "public"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::NotFound, Some("tenant"))
    );
    // Elastic IP already bound, elsewhere.
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.11", "tenant": "t2", "private": "10.0.0.7"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Exists, Some("eip.public"))
    );
    // Overlapping public prefix.
    let mut t3 = tenant_json("t3", 3000);
    t3["public_prefixes"] = json!(["5.5.0.0/16"]);
    t3["routes"] = json!([{ "prefix": "5.5.0.0/16", "to": "172.168.0.13" }]);
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t3}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("tenant.public_prefixes[0]"))
    );
    assert!(
        e.message.contains("overlaps 5.5.5.0/24 of tenant \"t2\""),
        "{e}"
    );
    // Malformed address, in an object and in an argument.
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2", "tenant": "t1", "private": "10.0.0.8"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("eip.public"))
    );
    let e = refused(
        &mut run,
        json!({"op": "eip.del", "args": {"public": "2.2.2.300"}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("public"))
    );
    // Duplicate rule.
    let e = refused(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t1", "rule": {"direction": "in", "action": "allow", "proto": "tcp", "dport": 22}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Exists, Some("rule"))
    );
    assert!(e.message.contains("handle 1"), "{e}");
    // Missing field.
    let mut t4 = tenant_json("t4", 4000);
    t4.as_object_mut().unwrap().remove("key");
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t4}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("tenant"))
    );
    assert!(e.message.contains("has no key"), "{e}");
    // A tenant with the same name and other values, or another's key.
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t1", 1000)}}),
    );
    assert_eq!(e.code, ErrorCode::Exists);
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t5", 2000)}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("tenant.key"))
    );
    // Not an object; a key of the wrong type.
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": "2.2.2.2"}}),
    );
    assert_eq!(e.field.as_deref(), Some("eip"));
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": 7, "tenant": "t1", "private": "10.0.0.8"}}}),
    );
    assert_eq!(e.field.as_deref(), Some("eip.public"));
    // A show is not a change.
    let e = refused(&mut run, json!({"op": "tenant.show", "args": {}}));
    assert_eq!(e.code, ErrorCode::BadRequest);
}

#[test]
fn errors_name_the_key_path_inside_a_tenant() {
    let mut run = base();
    let mut t3 = tenant_json("t3", 3000);
    t3["routes"][1]["to"] = json!("172.168.0.99");
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t3}}),
    );
    assert_eq!(e.field.as_deref(), Some("tenant.routes[1].to"));
    assert!(e.message.contains("not one of the tenant's hosts"), "{e}");
    let mut t3 = tenant_json("t3", 3000);
    t3["hosts"] = json!(["172.168.0.13", "9.9.9.9"]);
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t3}}),
    );
    assert_eq!(e.field.as_deref(), Some("tenant.hosts[1]"));
    assert!(e.message.contains("not reachable on the underlay"), "{e}");
    let e = refused(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t1", "rule": {"direction": "in", "action": "allow", "proto": "icmp", "dport": 3}}}),
    );
    assert_eq!(e.field.as_deref(), Some("rule.dport"));
}

#[test]
fn a_batch_applies_whole_or_not_at_all() {
    let mut run = base();
    let before = run.config();
    let e = refused(
        &mut run,
        json!({"op": "batch", "args": {"ops": [
            {"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}},
            {"op": "eip.add", "args": {"eip": {"public": "2.2.2.13", "tenant": "t3", "private": "10.1.0.5"}}},
            {"op": "route.del", "args": {"tenant": "t1", "prefix": "0.0.0.0/0"}},
            {"op": "tenant.del", "args": {"name": "t1"}},
            {"op": "eip.add", "args": {"eip": {"public": "2.2.2.14", "tenant": "t3", "private": "10.9.9.9"}}},
        ]}}),
    );
    assert!(e.message.starts_with("batch op 4 (eip.add)"), "{e}");
    assert_eq!(run.config(), before);
    assert_eq!(run.slot("t1"), Some(0));
    assert_eq!(run.rule_handles(0), vec![1, 2]);
    // The refused batch took no slot.
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    assert_eq!(run.slot("t3"), Some(2));

    let changes = ok(
        &mut run,
        json!({"op": "batch", "args": {"ops": [
            {"op": "eip.add", "args": {"eip": {"public": "2.2.2.13", "tenant": "t3", "private": "10.1.0.5"}}},
            {"op": "eip.del", "args": {"public": "2.2.2.11"}},
        ]}}),
    );
    assert_eq!(changes.len(), 2);
}

#[test]
fn adding_what_exists_changes_nothing() {
    let mut run = base();
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    let before = run.config();
    assert!(ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}})
    )
    .is_empty());
    assert!(ok(&mut run, json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.11", "tenant": "t1", "private": "10.0.0.7"}}})).is_empty());
    assert!(ok(
        &mut run,
        json!({"op": "snat.add", "args": {"snat": {"tenant": "t1", "addresses": ["3.3.3.1"]}}})
    )
    .is_empty());
    assert!(ok(
        &mut run,
        json!({"op": "route.add", "args": {"route": {"prefix": "0.0.0.0/0", "via": "1.1.1.254"}}})
    )
    .is_empty());
    assert!(ok(&mut run, json!({"op": "neigh.add", "args": {"neighbour": {"port": "pub0", "ip": "1.1.1.254", "mac": "02:00:00:00:fe:fe"}}})).is_empty());
    assert_eq!(run.config(), before);
}

/// BASE with `from` replaced by `to` (which must be there).
fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

#[test]
fn plan_of_the_same_file_is_empty() {
    let run = base();
    let plan = run.plan(BASE, "same.toml", &cpus()).unwrap();
    assert!(plan.is_empty(), "{:?}", plan.lines);
}

#[test]
fn plan_of_one_eip_more_is_one_change() {
    let mut run = base();
    let text = format!(
        "{BASE}\n[[eip]]\npublic = \"2.2.2.12\"\ntenant = \"t2\"\nprivate = \"10.0.0.9\"\n"
    );
    let plan = run.plan(&text, "more.toml", &cpus()).unwrap();
    assert_eq!(plan.ops.len(), 1, "{:?}", plan.lines);
    assert_eq!(
        plan.lines,
        vec!["+ eip 2.2.2.12 (10.0.0.9 of tenant \"t2\")"]
    );
    let applied = run.apply(&plan.op()).unwrap();
    assert_eq!(
        applied.changes,
        vec![Change::Eip("2.2.2.12".parse().unwrap())]
    );
    assert!(run.plan(&text, "more.toml", &cpus()).unwrap().is_empty());
}

#[test]
fn plan_turns_the_running_state_into_the_file() {
    let mut run = base();
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    ok(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t1", "rule": {"direction": "in", "action": "allow", "proto": "udp"}}}),
    );
    ok(
        &mut run,
        json!({"op": "route.del", "args": {"prefix": "0.0.0.0/0"}}),
    );
    ok(
        &mut run,
        json!({"op": "snat.del", "args": {"tenant": "t1"}}),
    );
    // A file that also changes t1's routes and replaces t2 (another key).
    let text = edited(
        "{ prefix = \"0.0.0.0/0\", to = \"public\" },\n]\nneighbours",
        "{ prefix = \"0.0.0.0/0\", to = \"blackhole\" },\n]\nneighbours",
    )
    .replace("key = 2000", "key = 2001");
    let plan = run.plan(&text, "new.toml", &cpus()).unwrap();
    assert!(
        plan.lines
            .iter()
            .any(|l| l == "- tenant \"t3\" (with its elastic IPs and pool)"),
        "{:?}",
        plan.lines
    );
    run.apply(&plan.op())
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", plan.lines));
    let want = Running::new(parse(&text, "new.toml", &cpus()).unwrap()).config();
    let mut got = run.config();
    // t2 was replaced: it has a new slot, so it comes after t1 either way;
    // only rule handles differ, which Config does not hold.
    got.tenants.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got, want);
    assert!(run.plan(&text, "new.toml", &cpus()).unwrap().is_empty());
}

#[test]
fn plan_of_a_bad_file_names_its_line() {
    let run = base();
    let text = edited("public = \"2.2.2.11\"", "public = \"2.2.2\"");
    let line = text.lines().position(|l| l.contains("\"2.2.2\"")).unwrap() + 1;
    match run.plan(&text, "bad.toml", &cpus()) {
        Err(PlanError::Config(e)) => {
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("bad.toml:{line}: ")), "{shown}");
        }
        other => panic!("{other:?}"),
    }
}

/// The 1-based line of `text` where `needle` first is.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).expect("the needle is in the text");
    text[..at].matches('\n').count() + 1
}

/// A key that only a restart changes is named with its file and line,
/// as the validator names a bad one, so that the operator finds it.
#[test]
fn plan_of_another_port_needs_a_restart() {
    let run = base();
    let text = edited("device = \"net_null1\"", "device = \"net_null2\"");
    match run.plan(&text, "port.toml", &cpus()) {
        Err(PlanError::Restart(lines)) => {
            assert_eq!(lines.len(), 1, "{lines:?}");
            let at = line_of(&text, "device = \"net_null2\"");
            assert!(
                lines[0].starts_with(&format!("port.toml:{at}: [[port]] \"und0\" device")),
                "{lines:?}"
            );
            assert!(lines[0].contains("needs a restart"), "{lines:?}");
        }
        other => panic!("{other:?}"),
    }
    let text =
        format!("{BASE}\n[flows]\ncapacity = 1024\nper_tenant = 256\nunreplied_per_tenant = 64\n");
    let e = run.plan(&text, "flows.toml", &cpus()).unwrap_err();
    let at = line_of(&text, "capacity = 1024");
    assert!(
        e.to_string()
            .contains(&format!("flows.toml:{at}: [flows] capacity")),
        "{e}"
    );
    let text = format!("{BASE}\n[dataplane]\ntenant_slots = 100\n");
    let e = run.plan(&text, "slots.toml", &cpus()).unwrap_err();
    let at = line_of(&text, "tenant_slots = 100");
    assert!(
        e.to_string().starts_with(&format!(
            "slots.toml:{at}: [dataplane] tenant_slots differs"
        )),
        "{e}"
    );
}

/// A key the file leaves to its default is named with the line of its
/// table, or with the file alone when the table is not there either.
#[test]
fn a_restart_key_left_to_its_default_says_so() {
    let text = format!("{BASE}\n[metrics]\nlisten = \"127.0.0.1:9400\"\n");
    let run = Running::new(parse(&text, "m.toml", &cpus()).unwrap());
    let e = run.plan(BASE, "base.toml", &cpus()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("base.toml: [metrics] listen (not in the file: its default) differs"),
        "{e}"
    );
    let text = format!("{BASE}\n[metrics]\nallow_remote = false\n");
    let e = run.plan(&text, "other.toml", &cpus()).unwrap_err();
    let at = line_of(&text, "[metrics]");
    assert!(
        e.to_string().starts_with(&format!(
            "other.toml:{at}: [metrics] listen (not set here: its default) differs"
        )),
        "{e}"
    );
}

#[test]
fn plan_of_another_metrics_endpoint_needs_a_restart() {
    let run = base();
    let text = format!("{BASE}\n[metrics]\nlisten = \"127.0.0.1:9400\"\n");
    let e = run.plan(&text, "metrics.toml", &cpus()).unwrap_err();
    let at = line_of(&text, "listen = ");
    assert!(
        e.to_string()
            .starts_with(&format!("metrics.toml:{at}: [metrics] listen differs")),
        "{e}"
    );
}

/// The outer DF of offloaded frames shapes the root rules made at start:
/// like the rest of `[offload]`, a change waits for a restart.
#[test]
fn plan_of_another_outer_df_needs_a_restart() {
    let run = base();
    let text = format!("{BASE}\n[offload]\nouter_df = \"set\"\n");
    match run.plan(&text, "df.toml", &cpus()) {
        Err(PlanError::Restart(lines)) => {
            assert_eq!(lines.len(), 1, "{lines:?}");
            let at = line_of(&text, "outer_df = ");
            assert!(
                lines[0].starts_with(&format!("df.toml:{at}: [offload] outer_df differs")),
                "{lines:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// `[offload] max_deny_rules` and `[control] socket` are read at start
/// only: a reload that changes them is refused, where it was once
/// answered "applied" with the running values kept.
#[test]
fn plan_of_another_deny_rule_limit_or_socket_needs_a_restart() {
    let run = base();
    for (text, key) in [
        (
            format!("{BASE}\n[offload]\nmax_deny_rules = 0\n"),
            "[offload] max_deny_rules differs",
        ),
        (
            format!("{BASE}\n[control]\nsocket = \"/run/tgw/other.sock\"\n"),
            "[control] socket differs",
        ),
    ] {
        match run.plan(&text, "restart.toml", &cpus()) {
            Err(PlanError::Restart(lines)) => {
                assert_eq!(lines.len(), 1, "{lines:?}");
                let at = text.lines().count();
                let want = format!("restart.toml:{at}: {key}");
                assert!(lines[0].starts_with(&want), "{lines:?}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn config_show_is_a_valid_config() {
    // What `config()` gives is what `Running::new` takes: a restart with
    // it gives the same state.
    let mut run = base();
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    ok(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t1"}}),
    );
    let c: Config = run.config();
    assert_eq!(
        c.tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["t2", "t3"]
    );
    assert_eq!(Running::new(c.clone()).config(), c);
}

#[test]
fn tenant_and_rule_slots_are_bounded_by_the_dataplane() {
    let text = format!("{BASE}\n[dataplane]\ntenant_slots = 3\nrule_slots = 4\n");
    let mut run = Running::new(parse(&text, "small.toml", &cpus()).unwrap());
    // t1 has two rules; t3 brings a third, and the fourth is the last.
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    ok(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t2", "rule": {"direction": "in", "action": "allow", "proto": "icmp"}}}),
    );
    let e = refused(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t2", "rule": {"direction": "in", "action": "allow", "proto": "udp"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("rule"))
    );
    assert!(e.message.contains("rule_slots"), "{e}");
    // Three tenants fill the three slots.
    let mut t4 = tenant_json("t4", 4000);
    t4["rules"] = json!([]);
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t4.clone()}}),
    );
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(e.message.contains("tenant_slots"), "{e}");
    // A removed tenant's slot is busy until released: retry later.
    ok(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t3"}}),
    );
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t4.clone()}}),
    );
    assert_eq!(e.code, ErrorCode::Unavailable);
    run.release(2);
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t4}}),
    );
    assert_eq!(run.slot("t4"), Some(2));
    // t3's rule slot came back with its removal.
    ok(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t2", "rule": {"direction": "in", "action": "allow", "proto": "udp"}}}),
    );
    // Every slot taken, a tenant replaced in one change (as a reload that
    // changes its hosts plans it): its own old slot is not free yet, and
    // no retry will make it so. Said as such, with the two ways out,
    // where it once said "retry in a moment".
    let mut t4b = tenant_json("t4", 4000);
    t4b["rules"] = json!([]);
    t4b["hosts"] = json!(["172.168.0.14"]);
    t4b["routes"] = json!([{ "prefix": "10.1.0.0/24", "to": "172.168.0.14" }]);
    let e = refused(
        &mut run,
        json!({"op": "batch", "args": {"ops": [
            {"op": "tenant.del", "args": {"name": "t4"}},
            {"op": "tenant.add", "args": {"tenant": t4b}},
        ]}}),
    );
    assert_eq!(e.code, ErrorCode::Invalid, "{e}");
    assert!(e.message.contains("the 1 this change frees"), "{e}");
    assert!(e.message.contains("two steps"), "{e}");
    assert_eq!(run.slot("t4"), Some(2), "the running state as it was");
}

#[test]
fn config_show_text_reads_back_to_the_running_state() {
    // `config show` is the emitter's TOML of `config()`: tgw reads it back
    // to the same state, and a plan against it is empty.
    let mut run = base();
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}}),
    );
    ok(
        &mut run,
        json!({"op": "rule.add", "args": {"tenant": "t3", "rule": {"direction": "out", "action": "deny", "proto": 47}, "position": 0}}),
    );
    ok(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.13", "tenant": "t3", "private": "10.1.0.5"}}}),
    );
    ok(
        &mut run,
        json!({"op": "tenant.del", "args": {"name": "t1"}}),
    );
    let text = run.config().to_toml();
    let back = parse(&text, "show.toml", &cpus()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, run.config());
    assert!(run.plan(&text, "show.toml", &cpus()).unwrap().is_empty());
}

#[test]
fn an_object_cannot_smuggle_keys_into_its_toml() {
    // Values and keys are written as TOML strings: a quote or a newline
    // in them stays inside, and the check sees the value as sent.
    let mut run = base();
    let mut t3 = tenant_json("t3", 3000);
    t3["name"] = json!("t3\"\nkey = 5\nname = \"x");
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": t3}}),
    );
    assert_eq!(e.field.as_deref(), Some("tenant.name"));
    assert!(e.message.contains("is not allowed"), "{e}");
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.13", "tenant": "t1", "private": "10.0.0.8", "x = 1\n[[tenant]]\nname": "y"}}}),
    );
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(e.message.contains("unknown field"), "{e}");
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "2.2.2.13", "tenant": "t1", "private": 18446744073709551615u64}}}),
    );
    assert_eq!(e.field.as_deref(), Some("eip.private"));
}

#[test]
fn a_change_the_dataplane_refuses_is_taken_back() {
    let mut run = base();
    let before = run.config();
    let op: Op = serde_json::from_value(json!({"op": "batch", "args": {"ops": [
        {"op": "tenant.add", "args": {"tenant": tenant_json("t3", 3000)}},
        {"op": "eip.del", "args": {"public": "2.2.2.11"}},
    ]}}))
    .unwrap();
    let e = run
        .apply_then(&op, |now, applied| {
            // The commit step sees the new state and what changed.
            assert_eq!(now.slot("t3"), Some(2));
            assert_eq!(applied.changes.len(), 2);
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "elastic IP table full",
            ))
        })
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert_eq!(run.config(), before);
    assert_eq!(run.slot("t3"), None);
    let applied = run.apply_then(&op, |_, _| Ok(())).unwrap();
    assert_eq!(
        applied.changes,
        vec![
            Change::Tenant(2),
            Change::EipRemoved("2.2.2.11".parse().unwrap())
        ]
    );
}

/// A tenant like `tenant_json` that also owns `public` (routed to its
/// host).
fn tenant_with_public(name: &str, key: u32, public: &str) -> Value {
    let mut t = tenant_json(name, key);
    t["public_prefixes"] = json!([public]);
    t["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "prefix": public, "to": "172.168.0.13" }));
    t
}

/// A public address leads into one tenant only, and the dataplane looks
/// elastic IPs up before public prefixes: an elastic IP or pool address
/// inside a public prefix (another tenant's or its own) would take the
/// address from the prefix's tenant.
#[test]
fn an_eip_or_pool_address_inside_a_public_prefix_is_refused() {
    let mut run = base();
    // t2 owns 5.5.5.0/24: an elastic IP of t1 inside it ...
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "5.5.5.7", "tenant": "t1", "private": "10.0.0.8"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("eip.public"))
    );
    for part in [
        "eip 5.5.5.7 of tenant \"t1\": 5.5.5.7",
        "public prefix 5.5.5.0/24 of tenant \"t2\"",
        "one tenant only",
        "outside every public prefix",
    ] {
        assert!(e.message.contains(part), "{e}");
    }
    // ... or of t2 itself ...
    let e = refused(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "5.5.5.255", "tenant": "t2", "private": "10.0.0.8"}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("eip.public"))
    );
    // ... or a pool address inside it.
    let e = refused(
        &mut run,
        json!({"op": "snat.add", "args": {"snat": {"tenant": "t2", "addresses": ["3.3.3.2", "5.5.5.9"]}}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("snat.addresses[1]"))
    );
    assert!(
        e.message
            .contains("public prefix 5.5.5.0/24 of tenant \"t2\""),
        "{e}"
    );
    // A batch that makes the overlap in two steps is refused whole.
    let e = refused(
        &mut run,
        json!({"op": "batch", "args": {"ops": [
            {"op": "tenant.add", "args": {"tenant": tenant_with_public("t3", 3000, "6.6.6.0/24")}},
            {"op": "eip.add", "args": {"eip": {"public": "6.6.6.6", "tenant": "t1", "private": "10.0.0.8"}}},
        ]}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("eip.public"))
    );
    // Next to a prefix is fine.
    ok(
        &mut run,
        json!({"op": "eip.add", "args": {"eip": {"public": "5.5.6.1", "tenant": "t1", "private": "10.0.0.8"}}}),
    );
}

/// The same seen from the other side: a new public prefix over an
/// elastic IP or a pool address.
#[test]
fn a_public_prefix_over_an_eip_or_pool_address_is_refused() {
    let mut run = base();
    // A new tenant's public prefix over t1's elastic IP 2.2.2.11, or over
    // its pool address 3.3.3.1.
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_with_public("t3", 3000, "2.2.2.0/24")}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("tenant.public_prefixes[0]"))
    );
    for part in [
        "2.2.2.0/24",
        "2.2.2.11",
        "elastic IP of tenant \"t1\"",
        "eip.del 2.2.2.11",
    ] {
        assert!(e.message.contains(part), "{e}");
    }
    let e = refused(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_with_public("t3", 3000, "3.3.3.0/30")}}),
    );
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::Invalid, Some("tenant.public_prefixes[0]"))
    );
    for part in ["3.3.3.1", "pool address of tenant \"t1\"", "snat.del t1"] {
        assert!(e.message.contains(part), "{e}");
    }
    // Next to them is fine.
    ok(
        &mut run,
        json!({"op": "tenant.add", "args": {"tenant": tenant_with_public("t3", 3000, "2.2.2.12/32")}}),
    );
}

/// `config.apply` checks the whole file, which refuses the overlap; and
/// its plan orders the ops so that an address moving between an elastic
/// IP and a public prefix never overlaps on the way.
#[test]
fn plan_refuses_a_public_prefix_over_an_eip_and_moves_an_address_between_them() {
    let run = base();
    let over = edited(
        "public_prefixes = [\"5.5.5.0/24\"]",
        "public_prefixes = [\"5.5.5.0/24\", \"2.2.2.0/24\"]",
    )
    .replace(
        "{ prefix = \"5.5.5.0/24\", to = \"172.168.0.12\" },",
        "{ prefix = \"5.5.5.0/24\", to = \"172.168.0.12\" },\n  { prefix = \"2.2.2.0/24\", to = \"172.168.0.12\" },",
    );
    let line = over
        .lines()
        .position(|l| l == "public = \"2.2.2.11\"")
        .unwrap()
        + 1;
    match run.plan(&over, "over.toml", &cpus()) {
        Err(PlanError::Config(e)) => {
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("over.toml:{line}: ")), "{shown}");
            assert!(
                shown.contains("public prefix 2.2.2.0/24 of tenant \"t2\""),
                "{shown}"
            );
        }
        other => panic!("{other:?}"),
    }

    // 2.2.2.11 leaves the elastic IP for t2's public prefix ...
    let mut run = base();
    let moved = over.replace(
        "[[eip]]\npublic = \"2.2.2.11\"\ntenant = \"t1\"\nprivate = \"10.0.0.7\"\n",
        "",
    );
    let plan = run.plan(&moved, "moved.toml", &cpus()).unwrap();
    run.apply(&plan.op())
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", plan.lines));
    // ... and back again.
    let plan = run.plan(BASE, "base.toml", &cpus()).unwrap();
    run.apply(&plan.op())
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", plan.lines));
    assert!(run.plan(BASE, "base.toml", &cpus()).unwrap().is_empty());
}

/// `route.add` of a route that exists says what a tgwctl user types to
/// replace it, not only the request's flag.
#[test]
fn an_existing_route_says_how_to_replace_it() {
    let mut run = base();
    let e = refused(
        &mut run,
        json!({"op": "route.add", "args": {"tenant": "t1", "route": {"prefix": "0.0.0.0/0", "to": "blackhole"}}}),
    );
    assert_eq!(e.code, ErrorCode::Exists);
    for part in [
        "tgwctl route replace 0.0.0.0/0 blackhole tenant t1",
        "replace: true",
    ] {
        assert!(e.message.contains(part), "{e}");
    }
    let e = refused(
        &mut run,
        json!({"op": "route.add", "args": {"route": {"prefix": "0.0.0.0/0", "via": "1.1.1.253", "port": "pub0"}}}),
    );
    assert_eq!(e.code, ErrorCode::Exists);
    for part in [
        "tgwctl route replace 0.0.0.0/0 via 1.1.1.253 port pub0",
        "replace: true",
    ] {
        assert!(e.message.contains(part), "{e}");
    }
}
