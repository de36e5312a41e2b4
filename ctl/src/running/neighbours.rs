//! Static neighbours: on a port's link (`[[neighbour]]`), and inside a
//! tenant's gretap tunnels.

use serde_json::Value;

use super::routes::view;
use super::state::Tx;
use super::{exists, invalid, not_found, parse_ip, tenant_slot, Change, Cx, Running};
use crate::api::{ApiError, ErrorCode};
use crate::config::object;

pub(super) fn add(tx: &mut Tx, cx: Cx, tenant: Option<&str>, json: &Value) -> Result<(), ApiError> {
    match tenant {
        Some(name) => {
            let slot = tenant_slot(tx.s, name, "tenant")?;
            let n = object::tenant_neighbour(
                json,
                &view(tx.s, slot, cx.has_public(), &[]),
                "neighbour",
            )
            .map_err(invalid)?;
            match tx.s.tenants[&slot].neighbours.get(&n.ip) {
                Some(&mac) if mac == n.mac => return Ok(()),
                Some(&mac) => {
                    return Err(exists(
                        "neighbour.ip",
                        format!("tenant {name:?}: neighbour {} is {mac} already; neigh.del it first to give it {}", n.ip, n.mac),
                    ))
                }
                None => {}
            }
            tx.tenant(slot).neighbours.insert(n.ip, n.mac);
            tx.change(Change::Tenant(slot));
        }
        None => {
            let n = object::neighbour(json, &cx.fixed.ports).map_err(invalid)?;
            match tx.s.neighbours.get(&(n.port, n.ip)) {
                Some(&mac) if mac == n.mac => return Ok(()),
                Some(&mac) => {
                    return Err(exists(
                        "neighbour.ip",
                        format!("neighbour {} on port {:?} is {mac} already; neigh.del it first to give it {}", n.ip, cx.fixed.ports[n.port].name, n.mac),
                    ))
                }
                None => {}
            }
            tx.put(|s| &mut s.neighbours, (n.port, n.ip), n.mac);
            tx.change(Change::Neighbours);
        }
    }
    Ok(())
}

pub(super) fn del(
    tx: &mut Tx,
    cx: Cx,
    tenant: Option<&str>,
    port: Option<&str>,
    ip: &str,
) -> Result<(), ApiError> {
    let ip = parse_ip(ip, "ip")?;
    if let Some(name) = tenant {
        let slot = tenant_slot(tx.s, name, "tenant")?;
        if !tx.s.tenants[&slot].neighbours.contains_key(&ip) {
            return Err(not_found(
                "ip",
                format!("tenant {name:?} has no static neighbour {ip}"),
            ));
        }
        tx.tenant(slot).neighbours.remove(&ip);
        tx.change(Change::Tenant(slot));
        return Ok(());
    }
    let ports: Vec<usize> = match port {
        Some(name) => match cx.fixed.port(name) {
            Some((i, _)) => vec![i],
            None => {
                return Err(not_found(
                    "port",
                    format!("no port is named {name:?}; use one of the [[port]] names"),
                ))
            }
        },
        None => (0..cx.fixed.ports.len())
            .filter(|&i| tx.s.neighbours.contains_key(&(i, ip)))
            .collect(),
    };
    let found: Vec<usize> = ports
        .into_iter()
        .filter(|&i| tx.s.neighbours.contains_key(&(i, ip)))
        .collect();
    match found.as_slice() {
        [] => Err(not_found("ip", format!("no static neighbour is {ip}"))),
        [i] => {
            tx.take(|s| &mut s.neighbours, &(*i, ip));
            tx.change(Change::Neighbours);
            Ok(())
        }
        _ => Err(ApiError::new(
            ErrorCode::Invalid,
            format!(
                "{ip} is a static neighbour on several ports; add port = the one to remove it from"
            ),
        )
        .field("port")),
    }
}

/// `neigh.show`: the static neighbours of the ports, or of a tenant.
pub(super) fn show(run: &Running, tenant: Option<&str>) -> Result<Value, ApiError> {
    let s = &run.state;
    let list: Vec<Value> = match tenant {
        Some(name) => {
            let slot = tenant_slot(s, name, "tenant")?;
            s.tenants[&slot]
                .neighbours
                .iter()
                .map(
                    |(ip, mac)| serde_json::json!({ "ip": ip.to_string(), "mac": mac.to_string() }),
                )
                .collect()
        }
        None => s
            .neighbours
            .iter()
            .map(|(&(port, ip), mac)| {
                serde_json::json!({
                    "port": run.fixed.ports[port].name,
                    "ip": ip.to_string(),
                    "mac": mac.to_string(),
                })
            })
            .collect(),
    };
    Ok(Value::Array(list))
}
