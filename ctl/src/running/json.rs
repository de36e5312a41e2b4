//! Objects as JSON with the config file's keys: what the shows answer, and
//! what a plan's ops carry (so that they are checked as a request is).

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::Running;
use crate::api::{ApiError, ErrorCode, Op};
use crate::config::{
    Config, Filtering, Ipv4Cidr, PortRange, Protocol, Route, RouteTarget, Rule, Snat, Tenant,
    ANY_PREFIX,
};

pub(super) fn show(run: &Running, op: &Op) -> Result<Value, ApiError> {
    match op {
        Op::TenantShow { name } => super::tenants::show(run, name.as_deref()),
        Op::RouteShow { tenant } => super::routes::show(run, tenant.as_deref()),
        Op::EipShow { tenant } => super::nat::eip_show(run, tenant.as_deref()),
        Op::SnatShow { tenant } => super::nat::snat_show(run, tenant.as_deref()),
        Op::RuleShow { tenant } => super::rules::show(run, tenant.as_deref()),
        Op::NeighShow { tenant } => super::neighbours::show(run, tenant.as_deref()),
        _ => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{} is not a show of the running state", super::op_name(op)),
        )),
    }
}

fn s(x: impl ToString) -> Value {
    Value::String(x.to_string())
}

/// A `[[tenant]]` table with its routes, neighbours and rules.
pub(super) fn tenant(t: &Tenant) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), s(&t.name));
    m.insert("key".into(), t.key.into());
    m.insert("encap".into(), s(t.encap));
    m.insert("gre_checksum".into(), t.gre_checksum.into());
    m.insert("gre_sequence".into(), t.gre_sequence.into());
    m.insert("hosts".into(), t.hosts.iter().map(s).collect());
    m.insert("prefixes".into(), t.prefixes.iter().map(s).collect());
    if let Some(mac) = t.mac {
        m.insert("mac".into(), s(mac));
    }
    m.insert(
        "public_prefixes".into(),
        t.public_prefixes.iter().map(s).collect(),
    );
    m.insert("default_in".into(), s(t.default_in));
    m.insert("default_out".into(), s(t.default_out));
    m.insert(
        "routes".into(),
        t.routes
            .iter()
            .map(|r| tenant_route(r.prefix, r.to))
            .collect(),
    );
    m.insert(
        "neighbours".into(),
        t.neighbours
            .iter()
            .map(|n| json!({ "ip": s(n.ip), "mac": s(n.mac) }))
            .collect(),
    );
    m.insert("rules".into(), t.rules.iter().map(rule).collect());
    Value::Object(m)
}

pub(super) fn tenant_route(prefix: Ipv4Cidr, to: RouteTarget) -> Value {
    json!({ "prefix": s(prefix), "to": s(to) })
}

fn ports(p: PortRange) -> Value {
    if p.lo == p.hi {
        p.lo.into()
    } else {
        s(p)
    }
}

/// A rule with only the keys it sets.
pub(super) fn rule(r: &Rule) -> Value {
    let mut m = Map::new();
    m.insert("direction".into(), s(r.direction));
    m.insert("action".into(), s(r.action));
    let proto = match r.proto {
        Protocol::Number(n) => n.into(),
        p => s(p),
    };
    m.insert("proto".into(), proto);
    if r.src != ANY_PREFIX {
        m.insert("src".into(), s(r.src));
    }
    if r.dst != ANY_PREFIX {
        m.insert("dst".into(), s(r.dst));
    }
    if let Some(p) = r.sport {
        m.insert("sport".into(), ports(p));
    }
    if let Some(p) = r.dport {
        m.insert("dport".into(), ports(p));
    }
    if let Some(t) = r.icmp_type {
        m.insert("icmp_type".into(), t.into());
    }
    if let Some(c) = r.icmp_code {
        m.insert("icmp_code".into(), c.into());
    }
    Value::Object(m)
}

/// A global `[[route]]`, its port by name.
pub(super) fn route(r: &Route, config: &Config) -> Value {
    json!({
        "prefix": s(r.prefix),
        "via": s(r.via),
        "port": config.ports[r.port].name,
    })
}

pub(super) fn eip(public: Ipv4Addr, tenant: &str, private: Ipv4Addr) -> Value {
    json!({ "public": s(public), "tenant": tenant, "private": s(private) })
}

pub(super) fn snat(p: &Snat, tenant: &str) -> Value {
    json!({
        "tenant": tenant,
        "addresses": p.addresses.iter().map(s).collect::<Vec<_>>(),
        "ports": format!("{}-{}", p.ports.0, p.ports.1),
        "max_blocks": p.max_blocks,
        "filtering": match p.filtering {
            Filtering::AddressAndPortDependent => "address-and-port-dependent",
            Filtering::EndpointIndependent => "endpoint-independent",
        },
    })
}
