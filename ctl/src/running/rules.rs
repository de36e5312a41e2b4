//! A tenant's firewall rules: ordered, each with a handle and a counter
//! slot.

use serde_json::Value;

use super::routes::view;
use super::state::{RuleEntry, Tx};
use super::{exists, invalid, not_found, tenant_slot, Change, Cx, RuleAdded, Running};
use crate::api::{ApiError, ErrorCode};
use crate::config::object;

pub(super) fn add(
    tx: &mut Tx,
    cx: Cx,
    tenant: &str,
    json: &Value,
    position: Option<usize>,
) -> Result<(), ApiError> {
    let slot = tenant_slot(tx.s, tenant, "tenant")?;
    let count = tx.s.tenants[&slot].rules.len();
    let at = position.unwrap_or(count);
    if at > count {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!("position {at} is past the end: tenant {tenant:?} has {count} rules; use 0..={count}, or leave it out to add last"),
        )
        .field("position"));
    }
    // The elastic IPs of the tenant, for the hint of a rule written with
    // one instead of its private address.
    let hints: Vec<_> =
        tx.s.eips_of(slot)
            .map(|public| (public, tenant.to_owned(), tx.s.eips[&public].1))
            .collect();
    let rule = object::tenant_rule(
        json,
        &view(tx.s, slot, cx.has_public(), &hints),
        at + 1,
        "rule",
    )
    .map_err(invalid)?;
    let rules = &tx.s.tenants[&slot].rules;
    if let Some((i, same)) = rules.iter().enumerate().find(|(_, r)| r.rule == rule) {
        return Err(exists(
            "rule",
            format!(
                "tenant {tenant:?} has this rule already (rule {}, handle {}): a copy could never match, since the first decides; change it or leave it out",
                i + 1,
                same.handle
            ),
        ));
    }
    let cap = cx.fixed.dataplane.rule_slots;
    let rule_slot = tx.rule_slot(cap).ok_or_else(|| full(cap, "rule"))?;
    let handle = *cx.next_handle;
    *cx.next_handle += 1;
    tx.tenant(slot).rules.insert(
        at,
        RuleEntry {
            handle,
            slot: rule_slot,
            rule,
        },
    );
    tx.rules.push(RuleAdded {
        tenant: slot,
        handle,
        slot: rule_slot,
    });
    tx.change(Change::Tenant(slot));
    Ok(())
}

/// Every rule counter slot is taken.
pub(super) fn full(cap: u32, field: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Invalid,
        format!("all {cap} firewall rule slots ([dataplane] rule_slots, over all tenants) are taken; remove rules, or raise rule_slots (restart)"),
    )
    .field(field)
}

pub(super) fn del(tx: &mut Tx, tenant: &str, handle: u64) -> Result<(), ApiError> {
    let slot = tenant_slot(tx.s, tenant, "tenant")?;
    let Some(i) = tx.s.tenants[&slot]
        .rules
        .iter()
        .position(|r| r.handle == handle)
    else {
        return Err(not_found(
            "handle",
            format!("tenant {tenant:?} has no rule with handle {handle}; rule.show lists them"),
        ));
    };
    let gone = tx.tenant(slot).rules.remove(i);
    tx.free_rule_slot(gone.slot);
    tx.change(Change::Tenant(slot));
    Ok(())
}

/// `rule.show`: a tenant's rules (or every tenant's, in slot order), in
/// order, each with its tenant, handle and counter slot.
pub(super) fn show(run: &Running, tenant: Option<&str>) -> Result<Value, ApiError> {
    let s = &run.state;
    let slots: Vec<u32> = match tenant {
        Some(t) => vec![tenant_slot(s, t, "tenant")?],
        None => {
            let mut all: Vec<u32> = s.tenants.keys().copied().collect();
            all.sort_unstable();
            all
        }
    };
    let mut list = Vec::new();
    for slot in slots {
        let t = &s.tenants[&slot];
        for r in &t.rules {
            let mut v = super::json::rule(&r.rule);
            v["tenant"] = t.base.name.clone().into();
            v["handle"] = r.handle.into();
            v["slot"] = r.slot.into();
            list.push(v);
        }
    }
    Ok(Value::Array(list))
}
