//! `[[eip]]`: elastic IPs. Each public address stands for one private
//! address of one tenant (1:1 NAT); the table is global.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::addrs::host;
use super::Report;
use crate::config::raw::{List, RawEip};
use crate::config::{Eip, Tenant};

/// `tenants` is `None` while some tenant is broken: the checks against
/// tenants wait for it to be fixed.
pub(super) fn eips(
    list: &List<RawEip>,
    tenants: Option<&[Tenant]>,
    r: &mut Report,
) -> Option<Vec<Eip>> {
    let mut publics: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut privates: HashMap<(usize, Ipv4Addr), usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;
    for section in &list.items {
        let e = &section.value;
        let label = e.public.as_ref().map_or_else(
            || "[[eip]]".to_owned(),
            |ip| format!("eip {}", ip.get_ref()),
        );
        let need = |key: &str, hint: &str, r: &mut Report| {
            if section.readable(key) {
                r.at(
                    section.at,
                    format!("{label} has no {key}; add {key} = {hint}"),
                );
            }
        };
        let public = match &e.public {
            None => {
                need("public", "the public IPv4 address clients reach", r);
                None
            }
            Some(v) => host(v, &label, "public", r).map(|ip| (ip, v.span().start)),
        };
        let tenant = match &e.tenant {
            None => {
                need("tenant", "the name of the [[tenant]] it belongs to", r);
                None
            }
            Some(v) => Some((v.get_ref().clone(), v.span().start)),
        };
        let private = match &e.private {
            None => {
                need("private", "the tenant's address it stands for", r);
                None
            }
            Some(v) => host(v, &label, "private", r).map(|ip| (ip, v.span().start)),
        };
        let (
            Some((public, public_at)),
            Some((name, name_at)),
            Some((private, private_at)),
            Some(tenants),
        ) = (public, tenant, private, tenants)
        else {
            ok = false;
            continue;
        };
        let Some(index) = tenants.iter().position(|t| t.name == name) else {
            r.at(
                name_at,
                format!("{label}: no [[tenant]] is named {name:?}; use one of the tenants' names"),
            );
            ok = false;
            continue;
        };
        let t = &tenants[index];
        if !t.prefixes.iter().any(|p| p.contains(private)) {
            r.at(
                private_at,
                format!(
                    "{label}: private {private} is outside tenant {name}'s prefixes; use an address of its hosts, or add its prefix to the tenant"
                ),
            );
            ok = false;
        }
        if let Some(first) = publics.insert(public, section.at) {
            r.at(
                public_at,
                format!(
                    "{label} is given twice (first at byte {first}); an elastic IP belongs to one address of one tenant, so remove one"
                ),
            );
            ok = false;
        }
        if privates.insert((index, private), section.at).is_some() {
            r.at(
                private_at,
                format!("{label}: tenant {name}'s {private} already has an elastic IP; give each address one"),
            );
            ok = false;
        }
        out.push(Eip {
            public,
            tenant: index,
            private,
        });
    }
    ok.then_some(out)
}
