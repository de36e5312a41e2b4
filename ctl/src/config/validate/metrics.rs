//! `[metrics]`: where Prometheus's `/metrics` is served, if anywhere.

use std::net::SocketAddr;

use super::Report;
use crate::config::raw::{RawMetrics, Section};
use crate::config::{Metrics, METRICS_EXAMPLE_LISTEN};

/// `[metrics]`: `listen` must be an address and port `bind` can take; one
/// other hosts can reach only with `allow_remote = true`, since the
/// endpoint has no authentication and its labels name every tenant.
pub(super) fn metrics(raw: Option<&Section<RawMetrics>>, r: &mut Report) -> Option<Metrics> {
    let Some(section) = raw else {
        return Some(Metrics::default());
    };
    let v = &section.value;
    let allow_remote = v.allow_remote.as_ref().is_some_and(|a| *a.get_ref());
    let listen = match &v.listen {
        None => None,
        Some(l) => {
            let text = l.get_ref();
            let at = l.span().start;
            let Ok(addr) = text.parse::<SocketAddr>() else {
                r.at(
                    at,
                    format!("[metrics] listen {text:?} is not an address and port; write it as \"ADDR:PORT\", e.g. \"{METRICS_EXAMPLE_LISTEN}\" (or \"[::1]:9400\")"),
                );
                return None;
            };
            if addr.port() == 0 {
                r.at(
                    at,
                    format!("[metrics] listen {text:?} has port 0, which Prometheus cannot be told; give a port, e.g. \"{METRICS_EXAMPLE_LISTEN}\""),
                );
                return None;
            }
            // An unreadable allow_remote is reported already: not this too.
            if !addr.ip().is_loopback() && !allow_remote && section.readable("allow_remote") {
                r.at(
                    at,
                    format!("[metrics] listen {text:?} is not a loopback address: /metrics has no authentication and names every tenant; listen on \"{METRICS_EXAMPLE_LISTEN}\" (a Prometheus on this host, or a proxy), or set [metrics] allow_remote = true to serve it to other hosts"),
                );
                return None;
            }
            Some(addr)
        }
    };
    section.sound().then_some(Metrics {
        listen,
        allow_remote,
    })
}
