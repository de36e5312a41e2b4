//! Elastic IPs by public address, and tenants' source NAT pools.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::state::{cidr, State, Tx};
use super::{exists, invalid, not_found, parse_ip, tenant_slot, Change, Cx, Running};
use crate::api::{ApiError, ErrorCode};
use crate::config::object;
use crate::config::{Ipv4Cidr, Snat};

/// The config checks find a tenant by name in the names index; its index
/// is its slot.
struct Lookup<'a>(&'a State);

impl object::Tenants for Lookup<'_> {
    fn find(&self, name: &str) -> Option<(usize, &[Ipv4Cidr])> {
        let slot = self.0.slot(name)?;
        Some((slot as usize, &self.0.tenants[&slot].base.prefixes))
    }

    fn public_prefix(&self, ip: Ipv4Addr) -> Option<object::PublicPrefix> {
        let (p, slot) = self.0.public_holding(ip)?;
        Some(object::PublicPrefix {
            prefix: cidr(p),
            tenant: name(self.0, slot).to_owned(),
            at: None,
        })
    }
}

fn name(s: &State, slot: u32) -> &str {
    &s.tenants[&slot].base.name
}

pub(super) fn eip_add(tx: &mut Tx, cx: Cx, json: &Value) -> Result<(), ApiError> {
    let e = object::eip(json, &Lookup(tx.s), &cx.fixed.ports).map_err(invalid)?;
    let slot = e.tenant as u32;
    let label = format!("eip {}", e.public);
    if let Some(&(owner, private)) = tx.s.eips.get(&e.public) {
        if (owner, private) == (slot, e.private) {
            return Ok(());
        }
        return Err(exists(
            "eip.public",
            format!(
                "{label} is already bound to {private} of tenant {:?}; eip.del it first to bind it elsewhere",
                name(tx.s, owner)
            ),
        ));
    }
    if let Some(&public) = tx.s.privates.get(&(slot, e.private)) {
        return Err(exists(
            "eip.private",
            format!(
                "{label}: tenant {:?}'s {} already has elastic IP {public}; give each address one",
                name(tx.s, slot),
                e.private
            ),
        ));
    }
    if let Some(&owner) = tx.s.pooled.get(&e.public) {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!(
                "{label}: {} is in the source NAT pool of tenant {:?}; a public address serves one purpose, so use another",
                e.public,
                name(tx.s, owner)
            ),
        )
        .field("eip.public"));
    }
    tx.put(|s| &mut s.eips, e.public, (slot, e.private));
    tx.put(|s| &mut s.privates, (slot, e.private), e.public);
    tx.put(|s| &mut s.tenant_eips, (slot, e.public), ());
    tx.change(Change::Eip(e.public));
    Ok(())
}

pub(super) fn eip_del(tx: &mut Tx, public: &str) -> Result<(), ApiError> {
    let ip = parse_ip(public, "public")?;
    if !tx.s.eips.contains_key(&ip) {
        return Err(not_found(
            "public",
            format!("{ip} is not an elastic IP; eip.show lists them"),
        ));
    }
    unbind(tx, ip);
    Ok(())
}

/// Removes a bound elastic IP with its indices.
pub(super) fn unbind(tx: &mut Tx, public: Ipv4Addr) {
    if let Some((slot, private)) = tx.take(|s| &mut s.eips, &public) {
        tx.take(|s| &mut s.privates, &(slot, private));
        tx.take(|s| &mut s.tenant_eips, &(slot, public));
        tx.change(Change::EipRemoved(public));
    }
}

pub(super) fn snat_add(tx: &mut Tx, cx: Cx, json: &Value) -> Result<(), ApiError> {
    let eips = &tx.s.eips;
    let is_eip = |ip: Ipv4Addr| eips.contains_key(&ip);
    let p = object::snat(json, &Lookup(tx.s), &is_eip, &cx.fixed.ports).map_err(invalid)?;
    let slot = p.tenant as u32;
    let label = format!("snat of {}", name(tx.s, slot));
    if let Some(old) = tx.s.pools.get(&slot) {
        if *old == p {
            return Ok(());
        }
        return Err(exists(
            "snat.tenant",
            format!("{label}: the tenant has a pool already; snat.del it first to give it another"),
        ));
    }
    for (i, a) in p.addresses.iter().enumerate() {
        if let Some(&owner) = tx.s.pooled.get(a) {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "{label}: {a} is already in the pool of tenant {:?}; a public address serves one purpose, so use another",
                    name(tx.s, owner)
                ),
            )
            .field(format!("snat.addresses[{i}]")));
        }
    }
    for &a in &p.addresses {
        tx.put(|s| &mut s.pooled, a, slot);
    }
    tx.put(|s| &mut s.pools, slot, p);
    tx.change(Change::Snat(slot));
    Ok(())
}

pub(super) fn snat_del(tx: &mut Tx, tenant: &str) -> Result<(), ApiError> {
    let slot = tenant_slot(tx.s, tenant, "tenant")?;
    if !tx.s.pools.contains_key(&slot) {
        return Err(not_found(
            "tenant",
            format!("tenant {tenant:?} has no source NAT pool"),
        ));
    }
    drop_pool(tx, slot);
    Ok(())
}

/// Removes tenant `slot`'s pool, if it has one.
pub(super) fn drop_pool(tx: &mut Tx, slot: u32) {
    if let Some(p) = tx.take(|s| &mut s.pools, &slot) {
        for a in &p.addresses {
            tx.take(|s| &mut s.pooled, a);
        }
        tx.change(Change::SnatRemoved(slot));
    }
}

/// `eip.show`: every elastic IP (or a tenant's), sorted by public address.
pub(super) fn eip_show(run: &Running, tenant: Option<&str>) -> Result<Value, ApiError> {
    let s = &run.state;
    let mut list: Vec<(Ipv4Addr, u32, Ipv4Addr)> = match tenant {
        Some(t) => {
            let slot = tenant_slot(s, t, "tenant")?;
            s.eips_of(slot).map(|p| (p, slot, s.eips[&p].1)).collect()
        }
        None => s.eips.iter().map(|(&p, &(t, q))| (p, t, q)).collect(),
    };
    list.sort_unstable();
    Ok(Value::Array(
        list.into_iter()
            .map(|(public, slot, private)| super::json::eip(public, name(s, slot), private))
            .collect(),
    ))
}

/// `snat.show`: every pool (or a tenant's), in slot order.
pub(super) fn snat_show(run: &Running, tenant: Option<&str>) -> Result<Value, ApiError> {
    let s = &run.state;
    let mut pools: Vec<&Snat> = match tenant {
        Some(t) => {
            let slot = tenant_slot(s, t, "tenant")?;
            s.pools.get(&slot).into_iter().collect()
        }
        None => s.pools.values().collect(),
    };
    pools.sort_by_key(|p| p.tenant);
    Ok(Value::Array(
        pools
            .into_iter()
            .map(|p| super::json::snat(p, name(s, p.tenant as u32)))
            .collect(),
    ))
}
