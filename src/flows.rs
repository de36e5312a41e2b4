//! `flow.show` and `flow.flush` requests (ctl::api) into what the workers
//! are asked (`dataplane::pipeline::admin`): the filter with the tenant's
//! name turned into its slot, the protocol's name into its number, the
//! limit within bounds and the cursor read back. Errors name the request's
//! field, as the config file's validation does.

use ctl::api::{ApiError, ErrorCode, FlowFilter, FLOW_SHOW_DEFAULT, FLOW_SHOW_MAX};
use dataplane::pipeline::admin::{Cursor, Filter};

/// The workers' filter for `f`; `slot_of` gives a tenant's slot by name
/// (the running state's).
pub fn filter(f: &FlowFilter, slot_of: impl Fn(&str) -> Option<u32>) -> Result<Filter, ApiError> {
    let tenant = match &f.tenant {
        Some(name) => Some(slot_of(name).ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("no tenant named {name:?}"))
                .field("filter.tenant")
        })?),
        None => None,
    };
    let protocol = match &f.protocol {
        Some(p) => Some(protocol(p).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Invalid,
                format!("protocol {p:?}: expected tcp, udp, icmp or a number 0-255"),
            )
            .field("filter.protocol")
        })?),
        None => None,
    };
    Ok(Filter {
        tenant,
        addr: f.address.map(u32::from),
        port: f.port,
        protocol,
    })
}

/// An IP protocol by name or number.
pub fn protocol(p: &str) -> Option<u8> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        number => number.parse().ok(),
    }
}

/// How many rows a `flow.show` gets: [`FLOW_SHOW_DEFAULT`] unless asked,
/// never more than [`FLOW_SHOW_MAX`], at least one.
pub fn limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(FLOW_SHOW_DEFAULT).clamp(1, FLOW_SHOW_MAX)
}

/// Where a `flow.show` starts: the beginning, or a cursor a previous page
/// gave.
pub fn cursor(asked: Option<&str>) -> Result<Cursor, ApiError> {
    match asked {
        None => Ok(Cursor::default()),
        Some(text) => text
            .parse()
            .map_err(|e: String| ApiError::new(ErrorCode::Invalid, e).field("cursor")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_request_filter_becomes_the_workers_filter() {
        let slots = |name: &str| (name == "t2").then_some(1);
        let f = FlowFilter {
            tenant: Some("t2".into()),
            address: Some(Ipv4Addr::new(2, 2, 2, 12)),
            port: Some(23),
            protocol: Some("TCP".into()),
        };
        assert_eq!(
            filter(&f, slots).unwrap(),
            Filter {
                tenant: Some(1),
                addr: Some(0x0202_020c),
                port: Some(23),
                protocol: Some(6),
            }
        );
        assert_eq!(filter(&FlowFilter::default(), slots), Ok(Filter::default()));
        let unknown = FlowFilter {
            tenant: Some("t9".into()),
            ..FlowFilter::default()
        };
        let e = filter(&unknown, slots).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::NotFound, Some("filter.tenant"))
        );
        for (p, want) in [
            ("udp", Some(17)),
            ("icmp", Some(1)),
            ("47", Some(47)),
            ("256", None),
            ("gre", None),
        ] {
            assert_eq!(protocol(p), want, "{p}");
        }
        let bad = FlowFilter {
            protocol: Some("sctpx".into()),
            ..FlowFilter::default()
        };
        assert_eq!(
            filter(&bad, slots).unwrap_err().field.as_deref(),
            Some("filter.protocol")
        );
    }

    #[test]
    fn limits_and_cursors_stay_within_bounds() {
        assert_eq!(limit(None), FLOW_SHOW_DEFAULT);
        assert_eq!(limit(Some(0)), 1);
        assert_eq!(limit(Some(usize::MAX)), FLOW_SHOW_MAX);
        assert_eq!(cursor(None), Ok(Cursor::default()));
        assert_eq!(
            cursor(Some("1.4096")),
            Ok(Cursor {
                worker: 1,
                slot: 4096
            })
        );
        assert_eq!(
            cursor(Some("next")).unwrap_err().field.as_deref(),
            Some("cursor")
        );
    }
}
