//! The control API: what `tgwctl`, `config apply` and a cloud controller
//! send to a running tgw over its Unix socket, and what comes back.
//!
//! # Framing
//!
//! One JSON object per line, each way: a client writes a [`Request`] and a
//! newline, tgw answers with one [`Response`] and a newline, and the
//! connection stays open for the next request. A request longer than
//! [`MAX_REQUEST`] bytes, or a line that is not a request, is answered with
//! an error and the connection closed.
//!
//! # Objects
//!
//! Objects are written with the keys of the config file (docs/config.md):
//! a tenant is what a `[[tenant]]` table holds, an elastic IP an `[[eip]]`
//! table, and so on, so that they are checked by the same code as the file
//! and an error names the same key. Tenants are named by `name`, elastic IPs
//! by their public address, pools by their tenant, routes by their prefix,
//! rules by their handle (a number tgw gives each rule, stable while the
//! rule lives, as nftables' handles are).
//!
//! Every request that changes something is applied whole or not at all, and
//! adding what exists with the same value succeeds without change (a
//! controller retries).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks. A request with another is
/// refused with [`ErrorCode::UnsupportedVersion`].
pub const VERSION: u32 = 1;

/// The longest request line, newline included: a whole config file
/// (`config.apply`) fits.
pub const MAX_REQUEST: usize = 4 << 20;

/// Where tgw listens unless `[control] socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/tgw/tgw.sock";

/// One request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// [`VERSION`].
    pub version: u32,
    /// Echoed in the response, for clients that pipeline requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    pub fn new(op: Op) -> Request {
        Request {
            version: VERSION,
            id: None,
            op,
        }
    }
}

/// What a request asks for: `{"op": "tenant.add", "args": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", deny_unknown_fields)]
pub enum Op {
    /// Adds a tenant: `{"tenant": {<[[tenant]] keys>}}`. Its routes, rules
    /// and neighbours may come with it.
    #[serde(rename = "tenant.add")]
    TenantAdd { tenant: Value },
    /// Removes a tenant with everything of it: routes, rules, elastic IPs,
    /// pool; its flows end.
    #[serde(rename = "tenant.del")]
    TenantDel { name: String },
    #[serde(rename = "tenant.show")]
    TenantShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },

    /// Adds a route: to a tenant's VRF (`tenant` given; `route` holds the
    /// keys of `[[tenant.route]]`), or a global one (`[[route]]`).
    /// `replace` replaces a route of the same prefix, as `ip route replace`.
    #[serde(rename = "route.add")]
    RouteAdd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        route: Value,
        #[serde(default)]
        replace: bool,
    },
    /// Removes the route of exactly `prefix` ("10.0.0.0/8"). A global
    /// prefix may be routed on both sides (public and underlay): `port`
    /// (a port's name) picks the side of that port; without it, both go.
    #[serde(rename = "route.del")]
    RouteDel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        prefix: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
    #[serde(rename = "route.show")]
    RouteShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },

    /// Binds an elastic IP: `{"eip": {<[[eip]] keys>}}`.
    #[serde(rename = "eip.add")]
    EipAdd { eip: Value },
    /// Unbinds the elastic IP `public`; its flows end.
    #[serde(rename = "eip.del")]
    EipDel { public: String },
    #[serde(rename = "eip.show")]
    EipShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },

    /// Gives a tenant its source NAT pool: `{"snat": {<[[snat]] keys>}}`.
    #[serde(rename = "snat.add")]
    SnatAdd { snat: Value },
    /// Removes the tenant's pool; flows through it end.
    #[serde(rename = "snat.del")]
    SnatDel { tenant: String },
    #[serde(rename = "snat.show")]
    SnatShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },

    /// Adds a firewall rule (the keys of `[[tenant.rule]]`) to a tenant,
    /// at `position` among its rules (0 first; default last).
    #[serde(rename = "rule.add")]
    RuleAdd {
        tenant: String,
        rule: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<usize>,
    },
    /// Removes the rule with `handle` from a tenant.
    #[serde(rename = "rule.del")]
    RuleDel { tenant: String, handle: u64 },
    /// A tenant's rules in order, with handles and per-rule counters.
    #[serde(rename = "rule.show")]
    RuleShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },

    /// Neighbours, learned and static: on a port, or inside a tenant's
    /// gretap tunnels.
    #[serde(rename = "neigh.show")]
    NeighShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },
    /// A static neighbour: `{"neighbour": {<[[neighbour]] keys>}}`, or
    /// with `tenant`, the keys of `[[tenant.neighbour]]`.
    #[serde(rename = "neigh.add")]
    NeighAdd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        neighbour: Value,
    },
    #[serde(rename = "neigh.del")]
    NeighDel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        ip: String,
    },

    /// Flows matching `filter`, at most `limit` (default
    /// [`FLOW_SHOW_DEFAULT`], at most [`FLOW_SHOW_MAX`]) from `cursor` on.
    #[serde(rename = "flow.show")]
    FlowShow {
        #[serde(default)]
        filter: FlowFilter,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    /// Ends the flows matching `filter` (all with an empty filter), their
    /// NAT ports back to their pools.
    #[serde(rename = "flow.flush")]
    FlowFlush {
        #[serde(default)]
        filter: FlowFilter,
    },

    /// Counters: ports, workers, drops by reason, per tenant.
    #[serde(rename = "stats")]
    Stats {},

    /// The running state as the config file tgw reads.
    #[serde(rename = "config.show")]
    ConfigShow {},
    /// Replaces the running state with a whole config file's, as one
    /// change: the difference is returned, and applied unless `dry_run`.
    /// `file` names the text in errors (`FILE:LINE`).
    #[serde(rename = "config.apply")]
    ConfigApply {
        text: String,
        #[serde(default = "default_file")]
        file: String,
        #[serde(default)]
        dry_run: bool,
    },

    /// Each port's offload level and what its NIC said to each rule
    /// shape at the probe (docs/offload.md).
    #[serde(rename = "offload.caps")]
    OffloadCaps {},
    /// Offloaded flows (installed, pending, dying; in shadow mode those
    /// recorded), at most `limit` (default [`OFFLOAD_SHOW_DEFAULT`], at
    /// most [`OFFLOAD_SHOW_MAX`]); with `testpmd`, their rules and the
    /// static steering rules as `dpdk-testpmd` commands too.
    #[serde(rename = "offload.show")]
    OffloadShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        #[serde(default)]
        testpmd: bool,
    },
    /// The offload manager's counters: flows by state, requests,
    /// refusals by reason, queue-full drops, refreshes, pull-backs.
    #[serde(rename = "offload.stats")]
    OffloadStats {},
    /// Pulls every offloaded flow back to software: rules destroyed,
    /// flows decided again by their workers.
    #[serde(rename = "offload.flush")]
    OffloadFlush {},

    /// Several changes as one: all applied, or none.
    #[serde(rename = "batch")]
    Batch { ops: Vec<Op> },
}

fn default_file() -> String {
    "<request>".into()
}

/// Flows shown unless a request asks for another number.
pub const FLOW_SHOW_DEFAULT: usize = 100;
/// The most flows one response carries: page with `cursor`.
pub const FLOW_SHOW_MAX: usize = 10_000;

/// Offloaded flows shown unless a request asks for another number.
pub const OFFLOAD_SHOW_DEFAULT: usize = 100;
/// The most offloaded flows one `offload.show` carries.
pub const OFFLOAD_SHOW_MAX: usize = 10_000;

/// Which flows a `flow.show` or `flow.flush` means; every field given must
/// match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Either end of the flow, before or after NAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::Ipv4Addr>,
    /// Either end's port (or ICMP identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// "tcp", "udp", "icmp" or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// One answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub ok: bool,
    /// What was asked for, on success: each op documents its shape in
    /// docs/api.md.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Response {
    pub fn ok(id: Option<u64>, result: Value) -> Response {
        Response {
            version: VERSION,
            id,
            ok: true,
            result,
            error: None,
        }
    }

    pub fn err(id: Option<u64>, error: ApiError) -> Response {
        Response {
            version: VERSION,
            id,
            ok: false,
            result: Value::Null,
            error: Some(error),
        }
    }
}

/// Why a request was refused. Nothing of a refused request was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    pub code: ErrorCode,
    /// The key at fault, as the config file spells it
    /// (`tenant.route[2].via`), where one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong and what was expected, on one line.
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}", field, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

/// The kinds of refusal, for scripts: `tgwctl` maps them to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a request: bad JSON, an unknown op or argument.
    BadRequest,
    /// Longer than [`MAX_REQUEST`].
    TooLarge,
    UnsupportedVersion,
    /// A value the config file would refuse too: `field` and `message` say
    /// which and what was expected.
    Invalid,
    /// The named tenant, route, elastic IP, pool, rule or neighbour does
    /// not exist.
    NotFound,
    /// Something of that name exists with another value (adding the same
    /// value again is not an error).
    Exists,
    /// The client may not use the socket.
    Permission,
    /// The daemon is busy or stopping; retry.
    Unavailable,
    Internal,
}
