//! Routes: a tenant's VRF and the global `[[route]]` tables, by prefix.

use serde_json::Value;

use super::state::{cidr, covering, net, State, Tx, PUBLIC, UNDERLAY};
use super::tenants::side;
use super::{exists, invalid, not_found, tenant_slot, Change, Cx, Running};
use crate::api::{ApiError, ErrorCode};
use crate::config::object::{self, TenantView};
use crate::config::{Ipv4Cidr, Role, RouteTarget, TenantRoute};

/// Tenant `slot` as its routes, rules and neighbours are checked against.
pub(super) fn view<'a>(
    s: &'a State,
    slot: u32,
    public: bool,
    eips: &'a [(std::net::Ipv4Addr, String, std::net::Ipv4Addr)],
) -> TenantView<'a> {
    let t = &s.tenants[&slot].base;
    TenantView {
        name: &t.name,
        encap: t.encap,
        hosts: &t.hosts,
        prefixes: &t.prefixes,
        public_prefixes: &t.public_prefixes,
        eips,
        public,
    }
}

pub(super) fn add(
    tx: &mut Tx,
    cx: Cx,
    tenant: Option<&str>,
    json: &Value,
    replace: bool,
) -> Result<(), ApiError> {
    let Some(name) = tenant else {
        return add_global(tx, cx, json, replace);
    };
    let slot = tenant_slot(tx.s, name, "tenant")?;
    let r = object::tenant_route(json, &view(tx.s, slot, cx.has_public(), &[]), "route")
        .map_err(invalid)?;
    let k = net(r.prefix);
    match tx.s.tenants[&slot].routes.get(&k) {
        Some(&to) if to == r.to => return Ok(()),
        Some(&to) if !replace => {
            let via = match r.to {
                RouteTarget::Host(h) => format!("via {h}"),
                other => other.to_string(),
            };
            return Err(exists(
                "route.prefix",
                format!(
                    "tenant {name:?} routes {} to {to} already; to route it to {} instead, type `tgwctl route replace {} {via} tenant {name}` (or send replace: true in the request)",
                    r.prefix, r.to, r.prefix
                ),
            ));
        }
        _ => {}
    }
    tx.tenant(slot).routes.insert(k, r.to);
    still_reached(tx, &cx, slot, "route")?;
    tx.change(Change::Tenant(slot));
    Ok(())
}

fn add_global(tx: &mut Tx, cx: Cx, json: &Value, replace: bool) -> Result<(), ApiError> {
    let r = object::route(json, &cx.fixed.ports).map_err(invalid)?;
    let k = (side(cx.fixed, r.port), net(r.prefix));
    match tx.s.routes.get(&k) {
        Some(old) if *old == r => return Ok(()),
        Some(old) if !replace => {
            let port = &cx.fixed.ports[r.port].name;
            return Err(exists(
                "route.prefix",
                format!(
                    "route {} goes via {} already; to send it via {} instead, type `tgwctl route replace {} via {} port {port}` (or send replace: true in the request)",
                    r.prefix, old.via, r.via, r.prefix, r.via
                ),
            ));
        }
        _ => {}
    }
    // A replaced route covers what it covered: tunnel hosts behind it stay
    // reachable, whatever the next hop.
    tx.put(|s| &mut s.routes, k, r);
    tx.change(Change::GlobalRoutes);
    Ok(())
}

/// After a change of its VRF, each public prefix of the tenant must still
/// lead to one of its hosts (as the file requires). Only the routes that
/// cover a public prefix are looked at.
fn still_reached(tx: &Tx, cx: &Cx, slot: u32, path: &str) -> Result<(), ApiError> {
    let t = &tx.s.tenants[&slot];
    if t.base.public_prefixes.is_empty() {
        return Ok(());
    }
    let mut routes: Vec<TenantRoute> = Vec::new();
    for p in &t.base.public_prefixes {
        for k in covering(net(*p)) {
            if let Some(&to) = t.routes.get(&k) {
                routes.push(TenantRoute {
                    prefix: cidr(k),
                    to,
                });
            }
        }
    }
    let view = view(tx.s, slot, cx.has_public(), &[]);
    object::public_reach(&view, &routes, &cx.fixed.ports, path).map_err(invalid)
}

fn parse_prefix(s: &str) -> Result<Ipv4Cidr, ApiError> {
    s.parse::<Ipv4Cidr>().map_err(|e| {
        ApiError::new(
            ErrorCode::Invalid,
            format!("prefix {s:?} is not a prefix; {e}"),
        )
        .field("prefix")
    })
}

pub(super) fn del(
    tx: &mut Tx,
    cx: Cx,
    tenant: Option<&str>,
    prefix: &str,
    port: Option<&str>,
) -> Result<(), ApiError> {
    let p = parse_prefix(prefix)?;
    let k = net(p);
    let Some(name) = tenant else {
        return del_global(tx, cx, p, port);
    };
    let slot = tenant_slot(tx.s, name, "tenant")?;
    if !tx.s.tenants[&slot].routes.contains_key(&k) {
        return Err(not_found(
            "prefix",
            format!(
                "tenant {name:?} has no route for {}; route.show lists its routes",
                cidr(k)
            ),
        ));
    }
    tx.tenant(slot).routes.remove(&k);
    still_reached(tx, &cx, slot, "prefix")?;
    tx.change(Change::Tenant(slot));
    Ok(())
}

fn del_global(tx: &mut Tx, cx: Cx, p: Ipv4Cidr, port: Option<&str>) -> Result<(), ApiError> {
    let sides = match port {
        None => vec![PUBLIC, UNDERLAY],
        Some(name) => match cx.fixed.port(name) {
            Some((i, _)) => vec![side(cx.fixed, i)],
            None => {
                return Err(not_found(
                    "port",
                    format!("no port is named {name:?}; use one of the [[port]] names"),
                ))
            }
        },
    };
    let mut removed = false;
    for side in sides {
        if let Some(r) = tx.take(|s| &mut s.routes, &(side, net(p))) {
            removed = true;
            if side == UNDERLAY {
                hosts_still_reachable(tx, &cx, r.prefix)?;
            }
        }
    }
    if !removed {
        return Err(not_found(
            "prefix",
            format!(
                "no [[route]] has prefix {}; route.show lists them",
                cidr(net(p))
            ),
        ));
    }
    tx.change(Change::GlobalRoutes);
    Ok(())
}

/// Every tunnel host inside `gone` (an underlay route just removed) must
/// still be on an underlay port's subnet or behind another underlay route,
/// as the file requires of every tenant's hosts.
fn hosts_still_reachable(tx: &Tx, cx: &Cx, gone: Ipv4Cidr) -> Result<(), ApiError> {
    let (lo, hi) = (u32::from(gone.network()), u32::from(gone.broadcast()));
    for (&h, _) in tx.s.hosts.range(lo..=hi) {
        let ip = std::net::Ipv4Addr::from(h);
        let on_link = cx
            .fixed
            .ports
            .iter()
            .filter(|p| p.role == Role::Underlay)
            .any(|p| p.addresses.iter().any(|a| a.contains(ip)));
        if on_link || tx.s.routes_covering(UNDERLAY, ip).next().is_some() {
            continue;
        }
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!("route {gone} is the only way to tunnel host {ip} on the underlay; add another [[route]] to it first, or remove the tenants that list it"),
        )
        .field("prefix"));
    }
    Ok(())
}

/// `route.show`: a tenant's VRF, or the global routes, sorted by prefix.
pub(super) fn show(run: &Running, tenant: Option<&str>) -> Result<Value, ApiError> {
    let s = &run.state;
    let list: Vec<Value> = match tenant {
        Some(name) => {
            let slot = tenant_slot(s, name, "tenant")?;
            s.tenants[&slot]
                .routes
                .iter()
                .map(|(&k, &to)| super::json::tenant_route(cidr(k), to))
                .collect()
        }
        None => s
            .routes
            .values()
            .map(|r| super::json::route(r, &run.fixed))
            .collect(),
    };
    Ok(Value::Array(list))
}
