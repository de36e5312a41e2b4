//! A tenant's firewall: its rules (`rules = [...]` or `[[tenant.rule]]`)
//! and `default_in` / `default_out`.

use toml::Spanned;

use super::addrs::prefix;
use super::Report;
use std::net::Ipv4Addr;

use crate::config::raw::{List, NumberOrText, RawEip, RawPorts, RawProto, RawTenantRule, Section};
use crate::config::{Action, Direction, Ipv4Cidr, PortRange, Protocol, Rule, ANY_PREFIX};

/// What a direction means, for the operator choosing one.
fn direction_summary(d: Direction) -> &'static str {
    match d {
        Direction::In => "from the public side toward the tenant",
        Direction::Out => "from the tenant toward the public side",
    }
}

/// The addresses a tenant's rules see as its own: its `prefixes` and
/// `public_prefixes`. A `None` part is broken (and reported): rules are
/// not checked against it.
pub(super) struct Own<'a> {
    /// The tenant's name as written.
    pub name: Option<&'a str>,
    pub prefixes: Option<&'a [Ipv4Cidr]>,
    pub public: Option<&'a [Ipv4Cidr]>,
    /// Every elastic IP written well enough to read.
    pub eips: &'a [EipHint],
}

/// An elastic IP as written: (public, tenant name, private). Only for
/// hints: `[[eip]]` is checked on its own.
pub(super) type EipHint = (Ipv4Addr, String, Ipv4Addr);

/// The `[[eip]]` entries whose three keys read, without reporting: a rule
/// that names an elastic IP is told the private address it stands for.
pub(super) fn eip_hints(list: &List<RawEip>) -> Vec<EipHint> {
    list.items
        .iter()
        .filter_map(|s| {
            let e = &s.value;
            let public = e.public.as_ref()?.get_ref().parse().ok()?;
            let tenant = e.tenant.as_ref()?.get_ref().clone();
            let private = e.private.as_ref()?.get_ref().parse().ok()?;
            Some((public, tenant, private))
        })
        .collect()
}

/// `default_in` or `default_out` of `section`; `default` when absent.
pub(super) fn default_action<T>(
    section: &Section<T>,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Action,
    label: &str,
    r: &mut Report,
) -> Option<Action> {
    let Some(v) = value else {
        return section.readable(key).then_some(default);
    };
    let s = v.get_ref();
    let action = Action::ALL.into_iter().find(|a| a.as_str() == s);
    if action.is_none() {
        r.at(
            v.span().start,
            format!("{label}: {key} {s:?} is not an action; use \"allow\" or \"deny\""),
        );
    }
    action
}

/// The tenant's rules, in file order.
pub(super) fn rules(
    list: &List<RawTenantRule>,
    own: &Own,
    tenant: &str,
    r: &mut Report,
) -> Option<Vec<Rule>> {
    let mut out = Vec::new();
    let mut ok = !list.broken;
    for (i, section) in list.items.iter().enumerate() {
        let label = format!("{tenant}: rule {}", i + 1);
        match rule(section, own, &label, r) {
            Some(rule) if section.sound() => out.push(rule),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

pub(super) fn rule(
    section: &Section<RawTenantRule>,
    own: &Own,
    label: &str,
    r: &mut Report,
) -> Option<Rule> {
    let v = &section.value;
    let direction = match &v.direction {
        None if !section.readable("direction") => None,
        None => {
            r.at(
                section.at,
                format!(
                    "{label} has no direction; add direction = \"in\" ({}) or \"out\" ({})",
                    direction_summary(Direction::In),
                    direction_summary(Direction::Out)
                ),
            );
            None
        }
        Some(d) => {
            let s = d.get_ref();
            let found = Direction::ALL.into_iter().find(|x| x.as_str() == s);
            if found.is_none() {
                r.at(
                    d.span().start,
                    format!(
                        "{label}: unknown direction {s:?}; use \"in\" ({}) or \"out\" ({})",
                        direction_summary(Direction::In),
                        direction_summary(Direction::Out)
                    ),
                );
            }
            found
        }
    };
    let action = match &v.action {
        None if !section.readable("action") => None,
        None => {
            r.at(
                section.at,
                format!("{label} has no action; add action = \"allow\" or \"deny\""),
            );
            None
        }
        Some(a) => {
            let s = a.get_ref();
            let found = Action::ALL.into_iter().find(|x| x.as_str() == s);
            if found.is_none() {
                r.at(
                    a.span().start,
                    format!("{label}: unknown action {s:?}; use \"allow\" or \"deny\""),
                );
            }
            found
        }
    };
    let proto = match &v.proto {
        None if !section.readable("proto") => None,
        None => Some(Protocol::Any),
        Some(p) => protocol(p, label, r),
    };
    // Rule fields that apply to some protocols only are checked against a
    // readable proto; while it is broken they wait.
    let written_proto = match &v.proto {
        Some(_) => String::new(),
        None => " (the default)".to_owned(),
    };
    let src = endpoint(v.src.as_ref(), "src", label, r);
    let dst = endpoint(v.dst.as_ref(), "dst", label, r);

    let mut fields_ok = true;
    let mut port = |value: Option<&Spanned<RawPorts>>, key: &str, r: &mut Report| {
        let v = value?;
        let Some(range) = ports(v, key, label, r) else {
            fields_ok = false;
            return None;
        };
        if let Some(p) = proto.filter(|p| !p.has_ports()) {
            r.at(
                v.span().start,
                format!("{label}: {key} applies to tcp and udp rules only, and this rule's proto is {p}{written_proto}; remove {key} or set proto = \"tcp\" or \"udp\""),
            );
            fields_ok = false;
            return None;
        }
        Some(range)
    };
    let sport = port(v.sport.as_ref(), "sport", r);
    let dport = port(v.dport.as_ref(), "dport", r);

    let mut icmp = |value: Option<&Spanned<i64>>, key: &str, r: &mut Report| {
        let v = value?;
        let n = *v.get_ref();
        let Ok(n) = u8::try_from(n) else {
            r.at(
                v.span().start,
                format!("{label}: {key} {n} is out of range; use a value in 0..=255"),
            );
            fields_ok = false;
            return None;
        };
        if let Some(p) = proto.filter(|p| *p != Protocol::Icmp) {
            r.at(
                v.span().start,
                format!("{label}: {key} applies to icmp rules only, and this rule's proto is {p}{written_proto}; remove {key} or set proto = \"icmp\""),
            );
            fields_ok = false;
            return None;
        }
        Some(n)
    };
    let icmp_type = icmp(v.icmp_type.as_ref(), "icmp_type", r);
    let icmp_code = icmp(v.icmp_code.as_ref(), "icmp_code", r);
    if let (Some(code), None) = (&v.icmp_code, &v.icmp_type) {
        if section.readable("icmp_type") {
            r.at(
                code.span().start,
                format!("{label}: icmp_code needs icmp_type, since a code means something only within its type; add icmp_type, e.g. icmp_type = 3 (destination unreachable)"),
            );
            fields_ok = false;
        }
    }

    let (Some(direction), Some(action), Some(proto), Some(src), Some(dst)) =
        (direction, action, proto, src, dst)
    else {
        return None;
    };
    // The tenant's own end of the flow must be one of its addresses, or the
    // rule never matches: the usual slip is the public address the
    // Internet sees, which the rule never does.
    let (key, value, mine) = match direction {
        Direction::In => ("dst", v.dst.as_ref(), dst),
        Direction::Out => ("src", v.src.as_ref(), src),
    };
    if let (Some(prefixes), Some(public), Some(written)) = (own.prefixes, own.public, value) {
        if !prefixes.iter().chain(public).any(|p| p.overlaps(&mine)) {
            let after = match direction {
                Direction::In => "sees the destination after DNAT",
                Direction::Out => "sees the source before SNAT",
            };
            let fix = match own
                .eips
                .iter()
                .find(|(p, t, _)| Some(t.as_str()) == own.name && mine.contains(*p))
            {
                Some((p, _, private)) => {
                    format!("{p} is the elastic IP of {private}: write {key} = \"{private}/32\"")
                }
                None => format!("use a prefix inside those, or remove {key} to match all"),
            };
            r.at(
                written.span().start,
                format!(
                    "{label}: {key} {mine} is none of the tenant's addresses (prefixes {}; public_prefixes {}), so the rule never matches: an {direction} rule {after}, which is the tenant's own address; {fix}",
                    cidrs(prefixes),
                    cidrs(public)
                ),
            );
            return None;
        }
    }
    fields_ok.then_some(Rule {
        direction,
        action,
        proto,
        src,
        dst,
        sport,
        dport,
        icmp_type,
        icmp_code,
    })
}

fn protocol(v: &Spanned<RawProto>, label: &str, r: &mut Report) -> Option<Protocol> {
    const NAMES: &str = "\"tcp\", \"udp\", \"icmp\", \"any\"";
    let at = v.span().start;
    match &v.get_ref().0 {
        NumberOrText::Number(n) => match u8::try_from(*n) {
            Ok(n) => Some(Protocol::from_number(n)),
            Err(_) => {
                r.at(
                    at,
                    format!("{label}: proto {n} is out of range; use a protocol number in 0..=255 or one of {NAMES}"),
                );
                None
            }
        },
        NumberOrText::Text(s) => {
            if let Some(p) = Protocol::NAMED.into_iter().find(|p| p.to_string() == *s) {
                return Some(p);
            }
            let hint = if s.parse::<u8>().is_ok() {
                format!("; write a number without quotes: proto = {s}")
            } else {
                String::new()
            };
            r.at(
                at,
                format!(
                    "{label}: unknown proto {s:?}; use {NAMES} or a protocol number 0..=255{hint}"
                ),
            );
            None
        }
    }
}

/// `src` or `dst`: a prefix, default `0.0.0.0/0`. `None` when wrong.
fn endpoint(
    value: Option<&Spanned<String>>,
    key: &str,
    label: &str,
    r: &mut Report,
) -> Option<Ipv4Cidr> {
    let Some(v) = value else {
        return Some(ANY_PREFIX);
    };
    if let Ok(ip) = v.get_ref().parse::<std::net::Ipv4Addr>() {
        r.at(
            v.span().start,
            format!("{label}: {key} \"{ip}\" is an address, not a prefix; write \"{ip}/32\" for that one address"),
        );
        return None;
    }
    prefix(v, label, key, r)
}

/// `sport` / `dport`: `22`, `"22"` or `"1024-65535"`.
fn ports(v: &Spanned<RawPorts>, key: &str, label: &str, r: &mut Report) -> Option<PortRange> {
    let at = v.span().start;
    const FORM: &str = "a port like 22 or a range like \"1024-65535\"";
    let out_of_range = |shown: &str, r: &mut Report| {
        r.at(
            at,
            format!("{label}: {key} {shown} is out of range; ports are 0..=65535, write {FORM}"),
        );
    };
    let s = match &v.get_ref().0 {
        NumberOrText::Number(n) => {
            return match u16::try_from(*n) {
                Ok(p) => Some(PortRange { lo: p, hi: p }),
                Err(_) => {
                    out_of_range(&n.to_string(), r);
                    None
                }
            };
        }
        NumberOrText::Text(s) => s,
    };
    let number = |t: &str| -> Option<u64> {
        let t = t.trim();
        (!t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (number(a), number(b)),
        None => (number(s), number(s)),
    };
    let (Some(lo), Some(hi)) = (lo, hi) else {
        r.at(
            at,
            format!("{label}: {key} {s:?} is not a port or a range; write {FORM}"),
        );
        return None;
    };
    let (Ok(lo), Ok(hi)) = (u16::try_from(lo), u16::try_from(hi)) else {
        out_of_range(&format!("{s:?}"), r);
        return None;
    };
    if lo > hi {
        r.at(
            at,
            format!("{label}: {key} {s:?} runs backwards; write \"{hi}-{lo}\""),
        );
        return None;
    }
    Some(PortRange { lo, hi })
}

fn cidrs(list: &[Ipv4Cidr]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    let all: Vec<String> = list.iter().map(Ipv4Cidr::to_string).collect();
    all.join(", ")
}
