//! A [`Config`] as the TOML text tgw reads: what `tgwctl config show`
//! prints, and what `tgw --config` or `tgwctl config apply` reads back to
//! the same `Config`.
//!
//! Every setting is written, defaults included, so that a later tgw whose
//! defaults differ restarts into the state that ran rather than into its
//! own defaults. What is left out is what has no written form, or whose
//! written form would mean something else; each such place says why.
//!
//! The layout is the examples': sections in the order the file reference
//! lists them, a tenant's routes, neighbours and rules as inline arrays
//! with one entry per line. The values themselves go through `toml`'s
//! serializer, so that a string is quoted and escaped as TOML wants
//! (devargs and `extra_args` are free text).

use std::fmt::Display;

use serde::Serialize;

use super::{
    Arp, Config, Control, Dataplane, Eal, Eip, Encap, Filtering, Flows, Icmp, Mempool, Metrics,
    Neighbour, Offload, Port, PortRange, Protocol, Route, Rule, Snat, Tcp, Tenant, Worker,
};

/// What heads the text: where it comes from and why it is so long.
const HEADER: &str = "\
# The configuration of a running tgw, generated from its state.
# `tgw --config FILE` and `tgwctl config apply FILE` read it back to the
# same state. Every setting is written out, defaults included, so that a
# tgw with other defaults restarts into this state, not into its own.
";

impl Config {
    /// The configuration as TOML that [`parse`](super::parse) reads back
    /// to an equal `Config`. Linear in the size of the configuration.
    pub fn to_toml(&self) -> String {
        let mut out = Toml::default();
        out.text.push_str(HEADER);
        dataplane(&mut out, &self.dataplane);
        eal(&mut out, &self.eal);
        mempool(&mut out, &self.mempool);
        for p in &self.ports {
            port(&mut out, p);
        }
        for w in &self.workers {
            worker(&mut out, w, self);
        }
        for t in &self.tenants {
            tenant(&mut out, t);
        }
        for r in &self.routes {
            route(&mut out, r, self);
        }
        for n in &self.neighbours {
            neighbour(&mut out, n, self);
        }
        for e in &self.eips {
            eip(&mut out, e, self);
        }
        for s in &self.snat {
            snat(&mut out, s, self);
        }
        flows(&mut out, &self.flows);
        icmp(&mut out, &self.icmp);
        tcp(&mut out, &self.tcp);
        arp(&mut out, &self.arp);
        control(&mut out, &self.control);
        metrics(&mut out, &self.metrics);
        offload(&mut out, &self.offload);
        out.text
    }
}

fn dataplane(out: &mut Toml, d: &Dataplane) {
    out.table("[dataplane]");
    out.key("mode", d.mode.as_str());
    out.key("watchdog_ms", &d.watchdog_ms);
    out.key("tenant_slots", &d.tenant_slots);
    out.key("rule_slots", &d.rule_slots);
}

fn eal(out: &mut Toml, e: &Eal) {
    out.table("[eal]");
    out.key("main_lcore", &e.main_lcore);
    out.key("file_prefix", &e.file_prefix);
    out.key("hugepages", &e.hugepages);
    out.key("memory_mb", &e.memory_mb);
    out.key("in_memory", &e.in_memory);
    out.key("extra_args", &e.extra_args);
}

fn mempool(out: &mut Toml, m: &Mempool) {
    out.table("[mempool]");
    out.key("mbufs", &m.mbufs);
    out.key("cache_size", &m.cache_size);
    out.key("data_room", &m.data_room);
}

fn port(out: &mut Toml, p: &Port) {
    out.table("[[port]]");
    out.key("name", &p.name);
    out.key("device", &p.device);
    out.key("role", p.role.as_str());
    // Without `mac` the port keeps the device's own, and without
    // `peer_mac` the next hop is resolved: neither has a written form.
    if let Some(mac) = &p.mac {
        out.shown("mac", mac);
    }
    if let Some(mac) = &p.peer_mac {
        out.shown("peer_mac", mac);
    }
    out.list("addresses", &p.addresses);
    out.key("mtu", &p.mtu);
    out.key("rx_desc", &p.rx_desc);
    out.key("tx_desc", &p.tx_desc);
}

fn worker(out: &mut Toml, w: &Worker, config: &Config) {
    out.table("[[worker]]");
    out.key("lcore", &w.lcore);
    out.key("cpu", &w.cpu);
    let rx: Vec<String> =
        w.rx.iter()
            .map(|q| format!("{}:{}", port_name(config, q.port), q.queue))
            .collect();
    out.key("rx", &rx);
}

fn tenant(out: &mut Toml, t: &Tenant) {
    out.table("[[tenant]]");
    out.key("name", &t.name);
    out.key("key", &t.key);
    out.key("encap", t.encap.as_str());
    out.key("gre_checksum", &t.gre_checksum);
    out.key("gre_sequence", &t.gre_sequence);
    out.list("hosts", &t.hosts);
    out.list("prefixes", &t.prefixes);
    out.list("public_prefixes", &t.public_prefixes);
    // Without `mac` the daemon derives one, which has no written form.
    if let Some(mac) = &t.mac {
        out.shown("mac", mac);
    }
    out.key("default_in", t.default_in.as_str());
    out.key("default_out", t.default_out.as_str());
    out.entries("routes", &t.routes, |e, r| {
        e.shown("prefix", &r.prefix);
        e.shown("to", &r.to);
    });
    // Outside gretap a tenant has no neighbours (IPv4 in GRE carries no
    // inner MAC to fix), and an empty list would suggest it could.
    if t.encap == Encap::Gretap {
        out.entries("neighbours", &t.neighbours, |e, n| {
            e.shown("ip", &n.ip);
            e.shown("mac", &n.mac);
        });
    }
    out.entries("rules", &t.rules, rule);
}

/// One rule, its conditions all written. Ports and ICMP type and code are
/// written only when the rule has them: "every port" has no written form
/// (`"0-65535"` is a range, and refused outside tcp and udp).
fn rule(e: &mut Entry, r: &Rule) {
    e.key("direction", r.direction.as_str());
    e.key("action", r.action.as_str());
    match r.proto {
        Protocol::Number(n) => e.key("proto", &n),
        named => e.shown("proto", &named),
    }
    e.shown("src", &r.src);
    e.shown("dst", &r.dst);
    if let Some(p) = &r.sport {
        ports(e, "sport", p);
    }
    if let Some(p) = &r.dport {
        ports(e, "dport", p);
    }
    if let Some(t) = &r.icmp_type {
        e.key("icmp_type", t);
    }
    if let Some(c) = &r.icmp_code {
        e.key("icmp_code", c);
    }
}

/// `22` for one port, `"1024-65535"` for a range, as operators write them.
fn ports(e: &mut Entry, key: &str, p: &PortRange) {
    if p.lo == p.hi {
        e.key(key, &p.lo);
    } else {
        e.shown(key, p);
    }
}

fn route(out: &mut Toml, r: &Route, config: &Config) {
    out.table("[[route]]");
    out.shown("prefix", &r.prefix);
    out.shown("via", &r.via);
    out.key("port", port_name(config, r.port));
}

fn neighbour(out: &mut Toml, n: &Neighbour, config: &Config) {
    out.table("[[neighbour]]");
    out.key("port", port_name(config, n.port));
    out.shown("ip", &n.ip);
    out.shown("mac", &n.mac);
}

fn eip(out: &mut Toml, e: &Eip, config: &Config) {
    out.table("[[eip]]");
    out.shown("public", &e.public);
    out.key("tenant", tenant_name(config, e.tenant));
    out.shown("private", &e.private);
}

fn snat(out: &mut Toml, s: &Snat, config: &Config) {
    out.table("[[snat]]");
    out.key("tenant", tenant_name(config, s.tenant));
    out.list("addresses", &s.addresses);
    let (lo, hi) = s.ports;
    out.key("ports", &format!("{lo}-{hi}"));
    out.key("max_blocks", &s.max_blocks);
    let filtering = match s.filtering {
        Filtering::AddressAndPortDependent => "address-and-port-dependent",
        Filtering::EndpointIndependent => "endpoint-independent",
    };
    out.key("filtering", filtering);
}

fn flows(out: &mut Toml, f: &Flows) {
    out.table("[flows]");
    out.key("capacity", &f.capacity);
    out.key("per_tenant", &f.per_tenant);
    out.key("unreplied_per_tenant", &f.unreplied_per_tenant);
    out.key("unreplied_total", &f.unreplied_total);
    out.key("unreplied_s", &f.unreplied_s);
    out.key("tcp_established_s", &f.tcp_established_s);
    out.key("tcp_transitory_s", &f.tcp_transitory_s);
    out.key("udp_s", &f.udp_s);
    out.key("icmp_s", &f.icmp_s);
}

fn icmp(out: &mut Toml, i: &Icmp) {
    out.table("[icmp]");
    out.key("rate_per_sec", &i.rate_per_sec);
    out.key("burst", &i.burst);
}

fn tcp(out: &mut Toml, t: &Tcp) {
    out.table("[tcp]");
    out.key("mss_clamp", &t.mss_clamp);
}

fn arp(out: &mut Toml, a: &Arp) {
    out.table("[arp]");
    out.key("reachable_s", &a.reachable_s);
    out.key("retry_ms", &a.retry_ms);
    out.key("max_pending", &a.max_pending);
    out.key("retries", &a.retries);
    out.key("entries", &a.entries);
    out.key("port_entries", &a.port_entries);
    out.key("per_tenant", &a.per_tenant);
    out.key("max_held", &a.max_held);
    out.key("held_per_tenant", &a.held_per_tenant);
}

fn control(out: &mut Toml, c: &Control) {
    out.table("[control]");
    // Written even when it is the file prefix's default, as every default
    // is. A path read from the file is UTF-8: the lossy form is the same.
    out.key("socket", &*c.socket.to_string_lossy());
}

fn metrics(out: &mut Toml, m: &Metrics) {
    out.table("[metrics]");
    // No `listen` is the endpoint turned off: TOML has no null to write.
    if let Some(listen) = m.listen {
        out.shown("listen", &listen);
    }
    out.key("allow_remote", &m.allow_remote);
}

fn offload(out: &mut Toml, o: &Offload) {
    out.table("[offload]");
    out.key("mode", o.mode.as_str());
    out.key("max_flows", &o.max_flows);
    out.key("tenant_share", &o.tenant_share);
    out.key("query_interval_ms", &o.query_interval_ms);
    out.key("queue_depth", &o.queue_depth);
    out.key("outer_df", o.outer_df.as_str());
    out.key("max_deny_rules", &o.max_deny_rules);
}

/// The name a port index stands for. An index out of range (a `Config`
/// not built by `parse`) gives a name no port has, which reading back
/// reports, rather than a panic in `config show`.
fn port_name(config: &Config, index: usize) -> &str {
    config.ports.get(index).map_or("?", |p| p.name.as_str())
}

/// The name a tenant index stands for; as [`port_name`].
fn tenant_name(config: &Config, index: usize) -> &str {
    config.tenants.get(index).map_or("?", |t| t.name.as_str())
}

/// The text being written. Keys are the fixed identifiers of the file
/// format, written as they are; values go through [`value`].
#[derive(Default)]
struct Toml {
    text: String,
    /// A value's text form before it is quoted, kept to spare an
    /// allocation per address.
    scratch: String,
}

impl Toml {
    /// Starts a table (`[eal]`) or an array entry (`[[port]]`).
    fn table(&mut self, header: &str) {
        self.text.push('\n');
        self.text.push_str(header);
        self.text.push('\n');
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) {
        self.text.push_str(key);
        self.text.push_str(" = ");
        value(&mut self.text, v);
        self.text.push('\n');
    }

    /// A key whose value is written as a string in its `Display` form:
    /// addresses, prefixes, MACs.
    fn shown(&mut self, key: &str, v: &impl Display) {
        self.text.push_str(key);
        self.text.push_str(" = ");
        shown(&mut self.text, &mut self.scratch, v);
        self.text.push('\n');
    }

    /// An array of values written in their `Display` form, on one line.
    fn list<T: Display>(&mut self, key: &str, items: &[T]) {
        self.text.push_str(key);
        self.text.push_str(" = [");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            shown(&mut self.text, &mut self.scratch, item);
        }
        self.text.push_str("]\n");
    }

    /// An array of inline tables, one per line as the examples write a
    /// tenant's routes; `write` fills each entry's keys.
    fn entries<T>(&mut self, key: &str, items: &[T], mut write: impl FnMut(&mut Entry, &T)) {
        self.text.push_str(key);
        if items.is_empty() {
            self.text.push_str(" = []\n");
            return;
        }
        self.text.push_str(" = [\n");
        for item in items {
            self.text.push_str("  {");
            let mut entry = Entry {
                out: self,
                first: true,
            };
            write(&mut entry, item);
            self.text.push_str(" },\n");
        }
        self.text.push_str("]\n");
    }
}

/// One inline table of [`Toml::entries`]: `{ key = value, ... }`.
struct Entry<'a> {
    out: &'a mut Toml,
    first: bool,
}

impl Entry<'_> {
    fn separator(&mut self) {
        let text = &mut self.out.text;
        text.push_str(if self.first { " " } else { ", " });
        self.first = false;
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) {
        self.separator();
        self.out.text.push_str(key);
        self.out.text.push_str(" = ");
        value(&mut self.out.text, v);
    }

    fn shown(&mut self, key: &str, v: &impl Display) {
        self.separator();
        let Toml { text, scratch } = &mut *self.out;
        text.push_str(key);
        text.push_str(" = ");
        shown(text, scratch, v);
    }
}

/// Appends `v` as a TOML value. Only strings, integers, booleans and
/// arrays of them come here, all of which TOML can write.
fn value<T: Serialize + ?Sized>(text: &mut String, v: &T) {
    v.serialize(toml::ser::ValueSerializer::new(text))
        .expect("TOML writes every string, integer and boolean");
}

/// Appends `v`'s `Display` form as a TOML string.
fn shown(text: &mut String, scratch: &mut String, v: &impl Display) {
    use std::fmt::Write;
    scratch.clear();
    // Writing into a String cannot fail.
    let _ = write!(scratch, "{v}");
    value(text, scratch.as_str());
}
