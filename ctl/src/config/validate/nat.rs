//! `[[eip]]`: elastic IPs, each public address standing for one private
//! address of one tenant (1:1 NAT); `[[snat]]`: tenants' shared source NAT
//! pools. Both tables are global: a public address is used once.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::addrs::host;
use super::links::owner;
use super::Report;
use crate::config::raw::{List, RawEip, RawSnat, RawTenant};
use crate::config::{Eip, Filtering, Ipv4Cidr, Port, Snat, Tenant, SNAT_MAX_BLOCKS_RANGE};

/// How `[[eip]]` and `[[snat]]` find the tenant they name: in the file's
/// list, or in the running state's index (`crate::running`), so that one
/// elastic IP is checked without a list of every tenant.
pub(crate) trait Tenants {
    /// The tenant's index (its slot, in the running state) and prefixes.
    fn find(&self, name: &str) -> Option<(usize, &[Ipv4Cidr])>;

    /// The public prefix that holds `ip`, if any: a public address leads
    /// into one tenant only, and the dataplane looks elastic IPs up before
    /// public prefixes, so a NAT address inside a prefix would silently
    /// take it from the prefix's tenant. At most 33 lookups.
    fn public_prefix(&self, ip: Ipv4Addr) -> Option<PublicPrefix>;
}

/// A tenant's public prefix, as a NAT address's message names it.
pub(crate) struct PublicPrefix {
    pub prefix: Ipv4Cidr,
    pub tenant: String,
    /// Where the file writes it (a byte offset); `None` in the running
    /// state, which has no file.
    pub at: Option<usize>,
}

impl PublicPrefix {
    /// `label: ip is inside ...`, with the fix.
    fn refusal(&self, label: &str, ip: Ipv4Addr, r: &Report) -> String {
        let line = self
            .at
            .map_or_else(String::new, |at| format!(" (line {})", r.line(at)));
        format!(
            "{label}: {ip} is inside public prefix {} of tenant {:?}{line}; a public address leads into one tenant only, and the NAT address would take it from the prefix's tenant; use an address outside every public prefix, or take it out of the prefix",
            self.prefix, self.tenant
        )
    }
}

/// The file's tenants with an index by name and one by public prefix:
/// 100k elastic IPs do not each scan 10k tenants.
pub(super) struct ByName<'a> {
    tenants: &'a [Tenant],
    index: HashMap<&'a str, usize>,
    /// (network, length) -> (tenant, where the prefix is written).
    publics: HashMap<(u32, u8), (usize, usize)>,
}

impl<'a> ByName<'a> {
    /// `raw` is the file's `[[tenant]]` list that validated to `tenants`
    /// (one for one, public prefixes in the same order), for the lines.
    pub(super) fn new(tenants: &'a [Tenant], raw: &List<RawTenant>) -> ByName<'a> {
        let index = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut publics = HashMap::new();
        for (i, (t, section)) in tenants.iter().zip(&raw.items).enumerate() {
            let written = section.value.public_prefixes.iter().flatten();
            for (p, v) in t.public_prefixes.iter().zip(written) {
                publics.insert((u32::from(p.network()), p.len), (i, v.span().start));
            }
        }
        ByName {
            tenants,
            index,
            publics,
        }
    }
}

impl Tenants for ByName<'_> {
    fn find(&self, name: &str) -> Option<(usize, &[Ipv4Cidr])> {
        let &i = self.index.get(name)?;
        Some((i, &self.tenants[i].prefixes))
    }

    fn public_prefix(&self, ip: Ipv4Addr) -> Option<PublicPrefix> {
        (0..=32u8).find_map(|len| {
            let prefix = Ipv4Cidr { addr: ip, len };
            let key = (u32::from(prefix.network()), len);
            let &(i, at) = self.publics.get(&key)?;
            Some(PublicPrefix {
                prefix: Ipv4Cidr {
                    addr: prefix.network(),
                    len,
                },
                tenant: self.tenants[i].name.clone(),
                at: Some(at),
            })
        })
    }
}

/// Why a NAT address cannot be one of the gateway's own: it answers those
/// itself (ARP, ping) and passes nothing sent to them on, so the replies
/// of translated flows would never reach the tenant.
fn gateway_own(label: &str, ip: Ipv4Addr, ports: Option<&[Port]>) -> Option<String> {
    let port = owner(ports?, ip)?;
    Some(format!(
        "{label}: {ip} is the gateway's own address on port {:?}; the gateway answers its own addresses itself and passes nothing sent to them on, so give NAT an address of its own",
        port.name
    ))
}

/// `tenants` is `None` while some tenant is broken: the checks against
/// tenants wait for it to be fixed.
pub(super) fn eips(
    list: &List<RawEip>,
    tenants: Option<&dyn Tenants>,
    ports: Option<&[Port]>,
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
        let Some((index, prefixes)) = tenants.find(&name) else {
            r.at(
                name_at,
                format!("{label}: no [[tenant]] is named {name:?}; use one of the tenants' names"),
            );
            ok = false;
            continue;
        };
        if let Some(why) = gateway_own(&label, public, ports) {
            r.at(public_at, why);
            ok = false;
        }
        if let Some(p) = tenants.public_prefix(public) {
            let why = p.refusal(&format!("{label} of tenant {name:?}"), public, r);
            r.at(public_at, why);
            ok = false;
        }
        if !prefixes.iter().any(|p| p.contains(private)) {
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
                    "{label} is given twice (first at line {}); an elastic IP belongs to one address of one tenant, so remove one",
                    r.line(first)
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

/// `eip` tells whether an address is an elastic IP; `None` while an
/// `[[eip]]` is broken.
pub(super) fn snat(
    list: &List<RawSnat>,
    tenants: Option<&dyn Tenants>,
    eip: Option<&dyn Fn(Ipv4Addr) -> bool>,
    ports: Option<&[Port]>,
    r: &mut Report,
) -> Option<Vec<Snat>> {
    let mut owners: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut by_tenant: HashMap<usize, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = !list.broken;
    for section in &list.items {
        let v = &section.value;
        let label = v.tenant.as_ref().map_or_else(
            || "[[snat]]".to_owned(),
            |t| format!("snat of {}", t.get_ref()),
        );
        let tenant = match (&v.tenant, tenants) {
            (None, _) => {
                if section.readable("tenant") {
                    r.at(section.at, format!("{label} has no tenant; add tenant = the name of the [[tenant]] whose hosts share it"));
                }
                None
            }
            (Some(name), Some(tenants)) => {
                let found = tenants.find(name.get_ref()).map(|(i, _)| i);
                if found.is_none() {
                    r.at(
                        name.span().start,
                        format!(
                            "{label}: no [[tenant]] is named {:?}; use one of the tenants' names",
                            name.get_ref()
                        ),
                    );
                }
                found
            }
            (Some(_), None) => None,
        };
        let mut addrs = Vec::new();
        match &v.addresses {
            None => {
                if section.readable("addresses") {
                    r.at(section.at, format!("{label} has no addresses; add addresses = [\"3.3.3.1\", ...], the public addresses its hosts share"));
                }
                ok = false;
            }
            Some(list) if list.get_ref().is_empty() => {
                r.at(
                    list.span().start,
                    format!("{label}: addresses is empty; give at least one public address"),
                );
                ok = false;
            }
            Some(list) => {
                for a in list.get_ref() {
                    match host(a, &label, "addresses", r) {
                        Some(ip) => {
                            let taken = owners.insert(ip, label.clone()).is_some()
                                || eip.is_some_and(|is_eip| is_eip(ip));
                            if taken {
                                r.at(a.span().start, format!("{label}: {ip} is already an elastic IP or in another pool; a public address serves one purpose, so use another"));
                                ok = false;
                            } else if let Some(why) = gateway_own(&label, ip, ports) {
                                r.at(a.span().start, why);
                                ok = false;
                            } else if let Some(p) = tenants.and_then(|t| t.public_prefix(ip)) {
                                let why = p.refusal(&label, ip, r);
                                r.at(a.span().start, why);
                                ok = false;
                            }
                            addrs.push(ip);
                        }
                        None => ok = false,
                    }
                }
            }
        }
        let ports = match &v.ports {
            None => Some((1024, 65535)),
            Some(p) => {
                let parsed = p
                    .get_ref()
                    .split_once('-')
                    .and_then(|(lo, hi)| {
                        Some((
                            lo.trim().parse::<u16>().ok()?,
                            hi.trim().parse::<u16>().ok()?,
                        ))
                    })
                    .filter(|(lo, hi)| lo < hi && u32::from(*hi) + 1 - u32::from(*lo) >= 64);
                if parsed.is_none() {
                    r.at(p.span().start, format!("{label}: ports {:?} is not a range of at least 64 ports; write it as \"1024-65535\"", p.get_ref()));
                }
                parsed
            }
        };
        let max_blocks = super::int(
            v.max_blocks.as_ref(),
            16u16,
            i64::from(*SNAT_MAX_BLOCKS_RANGE.start()),
            i64::from(*SNAT_MAX_BLOCKS_RANGE.end()),
            &format!("[[snat]] {label}: max_blocks"),
            " blocks of 64 ports per private host",
            r,
        );
        let filtering = match v.filtering.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None => Some(Filtering::AddressAndPortDependent),
            Some((_, "address-and-port-dependent")) => Some(Filtering::AddressAndPortDependent),
            Some((_, "endpoint-independent")) => Some(Filtering::EndpointIndependent),
            Some((f, other)) => {
                r.at(f.span().start, format!("{label}: filtering {other:?} is unknown; use \"address-and-port-dependent\" (only replies come in) or \"endpoint-independent\" (anyone may reach a live mapping, RFC 4787 REQ-8)"));
                None
            }
        };
        if let Some(index) = tenant {
            if by_tenant.insert(index, section.at).is_some() {
                r.at(section.at, format!("{label}: the tenant has a pool already; put all its addresses in one [[snat]]"));
                ok = false;
            }
        }
        let (Some(tenant), Some(ports), Some(max_blocks), Some(filtering)) =
            (tenant, ports, max_blocks, filtering)
        else {
            ok = false;
            continue;
        };
        out.push(Snat {
            tenant,
            addresses: addrs,
            ports,
            max_blocks,
            filtering,
        });
    }
    ok.then_some(out)
}
