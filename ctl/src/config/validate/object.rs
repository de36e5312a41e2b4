//! One object of a control request (a tenant, a route, an elastic IP, ...)
//! checked by the same code as the config file, against a context that the
//! running state (`crate::running`) builds from its indices.
//!
//! The object arrives as JSON with the config file's keys. It is written
//! out as the TOML of its one table, one value per line, and read and
//! checked as a file would be; the line of the first error names the key
//! path (`tenant.routes[2].to`) that the control API's error gives. The
//! checks that compare objects with one another (unique names and keys,
//! overlapping public prefixes, addresses bound twice) are the running
//! state's, against its indices: here each object is checked alone.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use super::nat;
pub(crate) use super::nat::{PublicPrefix, Tenants};
use super::rules::{self, EipHint, Own};
use super::tenants::{self, Context, Host, Inbound};
use super::{gre_sequence_workers, neighbours, routes, Report};
use crate::config::raw::{self, RawConfig, RawTenant, Section};
use crate::config::{
    Eip, Encap, Ipv4Cidr, Neighbour, Port, Route, Rule, Snat, Tenant, TenantNeighbour, TenantRoute,
};

/// Why an object was refused: the key path at fault and the config
/// check's message, which says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub field: String,
    pub message: String,
}

/// A tenant's sub-lists, written as `[[tenant.KEY]]` tables after its keys.
const TENANT_LISTS: [&str; 6] = [
    "routes",
    "route",
    "neighbours",
    "neighbour",
    "rules",
    "rule",
];

/// What a tenant is checked against.
pub(crate) struct TenantContext<'a> {
    pub ports: &'a [Port],
    /// Whether a global route out of an underlay port covers an address.
    pub routed: &'a dyn Fn(Ipv4Addr) -> bool,
    pub workers: usize,
    /// Elastic IPs bound to the tenant, for the rules' hints.
    pub eips: &'a [EipHint],
}

/// A `[[tenant]]` table, with its routes, rules and neighbours.
pub(crate) fn tenant(json: &Value, cx: &TenantContext) -> Result<Tenant, Invalid> {
    let write = |t: &mut Text| t.table("tenant", "[[tenant]]", json, &TENANT_LISTS);
    Text::check(write, |raw, r| {
        let context = Context {
            ports: Some(cx.ports),
            routed: Some(cx.routed),
            public: Some(
                cx.ports
                    .iter()
                    .any(|p| p.role == crate::config::Role::Public),
            ),
            eips: cx.eips,
        };
        let out = tenants::tenants(&raw.tenants, &context, r);
        gre_sequence_workers(cx.workers, &raw.tenants, r);
        out?.pop()
    })
}

/// What a tenant's route, rule or neighbour is checked against: the
/// tenant as it runs.
pub(crate) struct TenantView<'a> {
    pub name: &'a str,
    pub encap: Encap,
    pub hosts: &'a [Ipv4Addr],
    pub prefixes: &'a [Ipv4Cidr],
    pub public_prefixes: &'a [Ipv4Cidr],
    pub eips: &'a [EipHint],
    /// Whether some port faces the public side.
    pub public: bool,
}

impl TenantView<'_> {
    fn label(&self) -> String {
        format!("tenant {:?}", self.name)
    }

    fn hosts(&self) -> Vec<Host> {
        self.hosts.iter().map(|&h| (h, 0)).collect()
    }
}

/// One route of a tenant (the keys of `[[tenant.route]]`); `path` names it
/// in errors (`route`).
pub(crate) fn tenant_route(
    json: &Value,
    tenant: &TenantView,
    path: &str,
) -> Result<TenantRoute, Invalid> {
    let write = |t: &mut Text| t.inside_tenant(path, "routes", json);
    let hosts = tenant.hosts();
    Text::check(write, |raw, r| {
        let list = &one_tenant(raw)?.value.route_list;
        tenants::routes(list, Some(&hosts), Some(tenant.public), &tenant.label(), r)?.pop()
    })
}

/// One firewall rule of a tenant; `number` is its place among the
/// tenant's rules (1 first), as the file's messages count them.
pub(crate) fn tenant_rule(
    json: &Value,
    tenant: &TenantView,
    number: usize,
    path: &str,
) -> Result<Rule, Invalid> {
    let write = |t: &mut Text| t.inside_tenant(path, "rules", json);
    Text::check(write, |raw, r| {
        let list = &one_tenant(raw)?.value.rule_list;
        let own = Own {
            name: Some(tenant.name),
            prefixes: Some(tenant.prefixes),
            public: Some(tenant.public_prefixes),
            eips: tenant.eips,
        };
        let label = format!("{}: rule {number}", tenant.label());
        let section = list.items.first()?;
        let rule = rules::rule(section, &own, &label, r);
        rule.filter(|_| section.sound() && !list.broken)
    })
}

/// One static neighbour inside a tenant's tunnels.
pub(crate) fn tenant_neighbour(
    json: &Value,
    tenant: &TenantView,
    path: &str,
) -> Result<TenantNeighbour, Invalid> {
    let write = |t: &mut Text| t.inside_tenant(path, "neighbours", json);
    Text::check(write, |raw, r| {
        let list = &one_tenant(raw)?.value.neighbour_list;
        neighbours::tenant_neighbours(
            list,
            Some(tenant.encap),
            Some(tenant.prefixes),
            Some(tenant.public_prefixes),
            &tenant.label(),
            r,
        )?
        .pop()
    })
}

/// Whether the tenant's public prefixes still lead to one of its hosts
/// with `routes` as its VRF: checked after a route of it changes.
pub(crate) fn public_reach(
    tenant: &TenantView,
    routes: &[TenantRoute],
    ports: &[Port],
    path: &str,
) -> Result<(), Invalid> {
    let hosts = tenant.hosts();
    let label = tenant.label();
    let inbound = Inbound {
        tenant: 0,
        label: &label,
        hosts: Some(&hosts),
        routes: Some(routes),
        ports: Some(ports),
    };
    let list: Vec<(Ipv4Cidr, usize)> = tenant.public_prefixes.iter().map(|&p| (p, 0)).collect();
    // Nothing to write: the problems are of the tenant as it runs, named
    // by the request's `path`.
    let write = |t: &mut Text| {
        if let Some(paths) = &mut t.paths {
            paths.push(path.to_owned());
        }
        Ok(())
    };
    Text::check(write, |_, r| {
        tenants::public_reach(&list, &inbound, &mut Vec::new(), r).then_some(())
    })
}

/// A global `[[route]]`.
pub(crate) fn route(json: &Value, ports: &[Port]) -> Result<Route, Invalid> {
    let write = |t: &mut Text| t.table("route", "[[route]]", json, &[]);
    Text::check(write, |raw, r| {
        routes::routes(&raw.routes, Some(ports), r)?.pop()
    })
}

/// A static `[[neighbour]]` on a port's link.
pub(crate) fn neighbour(json: &Value, ports: &[Port]) -> Result<Neighbour, Invalid> {
    let write = |t: &mut Text| t.table("neighbour", "[[neighbour]]", json, &[]);
    Text::check(write, |raw, r| {
        neighbours::neighbours(&raw.neighbours, Some(ports), r)?.pop()
    })
}

/// An `[[eip]]`; its `tenant` is the index `tenants` gives.
pub(crate) fn eip(json: &Value, tenants: &dyn Tenants, ports: &[Port]) -> Result<Eip, Invalid> {
    let write = |t: &mut Text| t.table("eip", "[[eip]]", json, &[]);
    Text::check(write, |raw, r| {
        nat::eips(&raw.eips, Some(tenants), Some(ports), r)?.pop()
    })
}

/// An `[[snat]]` pool; `is_eip` tells the addresses bound as elastic IPs.
pub(crate) fn snat(
    json: &Value,
    tenants: &dyn Tenants,
    is_eip: &dyn Fn(Ipv4Addr) -> bool,
    ports: &[Port],
) -> Result<Snat, Invalid> {
    let write = |t: &mut Text| t.table("snat", "[[snat]]", json, &[]);
    Text::check(write, |raw, r| {
        nat::snat(&raw.snat, Some(tenants), Some(is_eip), Some(ports), r)?.pop()
    })
}

fn one_tenant(raw: &RawConfig) -> Option<&Section<RawTenant>> {
    raw.tenants.items.first()
}

/// An object written as TOML and, when an error needs it, the key path
/// of each of its lines.
#[derive(Default)]
struct Text {
    text: String,
    /// `paths[n]` names line `n + 1`; kept only on the second writing,
    /// after an error, so that an accepted object costs no path strings.
    paths: Option<Vec<String>>,
}

impl Text {
    /// Writes the object with `write`, reads it as a file and runs
    /// `validate` on it; the first problem (in line order) is the answer,
    /// its field the path of its line.
    fn check<T>(
        write: impl Fn(&mut Text) -> Result<(), Invalid>,
        validate: impl FnOnce(&RawConfig, &mut Report) -> Option<T>,
    ) -> Result<T, Invalid> {
        let mut text = Text::default();
        write(&mut text)?;
        let mut report = Report::new("", &text.text);
        let value = match raw::read(&text.text, &mut report) {
            Some(raw) => validate(&raw, &mut report),
            None => None,
        };
        if let Some(value) = value.filter(|_| report.is_clean()) {
            return Ok(value);
        }
        let first = report.finish().0.into_iter().next();
        let (line, message) = first.map_or((1, "refused".to_owned()), |e| {
            (e.line.unwrap_or(1), e.message)
        });
        let mut again = Text {
            text: String::new(),
            paths: Some(Vec::new()),
        };
        write(&mut again)?;
        let paths = again.paths.unwrap_or_default();
        let field = paths
            .get(line.saturating_sub(1))
            .or(paths.first())
            .cloned()
            .unwrap_or_default();
        Err(Invalid { field, message })
    }

    /// Whether paths are kept.
    fn keeps(&self) -> bool {
        self.paths.is_some()
    }

    fn line(&mut self, line: std::fmt::Arguments, path: impl FnOnce() -> String) {
        use std::fmt::Write;
        let _ = self.text.write_fmt(line);
        self.text.push('\n');
        if let Some(paths) = &mut self.paths {
            paths.push(path());
        }
    }

    /// `json` as the table `header` (`[[tenant]]`) named `path` in errors;
    /// its keys in `lists` that hold arrays of objects follow as
    /// `[[NAME.KEY]]` tables, as a file writes them.
    fn table(
        &mut self,
        path: &str,
        header: &str,
        json: &Value,
        lists: &[&str],
    ) -> Result<(), Invalid> {
        let Value::Object(map) = json else {
            return Err(Invalid {
                field: path.to_owned(),
                message: format!(
                    "{path} must be an object with the keys of a {header} table, not {}",
                    kind(json)
                ),
            });
        };
        self.line(format_args!("{header}"), || path.to_owned());
        let table = header.trim_start_matches('[').trim_end_matches(']');
        let mut nested: Vec<(&str, &Vec<Value>)> = Vec::new();
        for (key, value) in map {
            let at = if self.keeps() {
                format!("{path}.{key}")
            } else {
                String::new()
            };
            match value {
                // JSON's null is TOML's absent key.
                Value::Null => {}
                Value::Array(items)
                    if lists.contains(&key.as_str()) && items.iter().all(Value::is_object) =>
                {
                    nested.push((key, items));
                }
                Value::Array(items) => {
                    self.line(format_args!("{} = [", toml_key(key)), || at.clone());
                    for (i, item) in items.iter().enumerate() {
                        self.line(format_args!("  {},", inline(item)), || format!("{at}[{i}]"));
                    }
                    self.line(format_args!("]"), || at.clone());
                }
                _ => self.line(format_args!("{} = {}", toml_key(key), inline(value)), || at),
            }
        }
        for (key, items) in nested {
            for (i, item) in items.iter().enumerate() {
                let header = format!("[[{table}.{}]]", toml_key(key));
                self.table(&format!("{path}.{key}[{i}]"), &header, item, &[])?;
            }
        }
        Ok(())
    }

    /// One entry of a tenant's `list` (`routes`, `rules`, `neighbours`)
    /// inside an otherwise empty `[[tenant]]`.
    fn inside_tenant(&mut self, path: &str, list: &str, json: &Value) -> Result<(), Invalid> {
        self.line(format_args!("[[tenant]]"), || path.to_owned());
        self.table(path, &format!("[[tenant.{list}]]"), json, &[])
    }
}

/// A TOML key: bare when it can be, else a quoted string.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        quoted(key)
    }
}

/// A JSON string as a TOML basic string: JSON's escapes are all TOML's.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A JSON value as one line of TOML.
fn inline(value: &Value) -> String {
    match value {
        // Not reached for a key's value (absent instead); inside an array
        // it is a type error for the check to report.
        Value::Null => "{}".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => inline_table(map),
    }
}

fn inline_table(map: &Map<String, Value>) -> String {
    let items: Vec<String> = map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{} = {}", toml_key(k), inline(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
