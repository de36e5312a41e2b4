//! The configuration as written: every value optional and with its place in
//! the text, read table by table so that one bad key does not hide the next.
//!
//! Numbers are read as `i64` and strings as `String` on purpose: range and
//! form checks happen in `validate`, where the message can name the allowed
//! values instead of serde's "expected u16".

use serde::de::{DeserializeOwned, IgnoredAny, IntoDeserializer};
use serde::Deserialize;
use toml::Spanned;
use toml_edit::{ImDocument, InlineTable, Item, TableLike, Value};

use super::error::Report;

/// `[dataplane]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    pub mode: Option<Spanned<String>>,
    pub watchdog_ms: Option<Spanned<i64>>,
    pub tenant_slots: Option<Spanned<i64>>,
    pub rule_slots: Option<Spanned<i64>>,
}

/// `[eal]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    pub main_lcore: Option<Spanned<i64>>,
    pub file_prefix: Option<Spanned<String>>,
    pub hugepages: Option<Spanned<bool>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub in_memory: Option<Spanned<bool>>,
    pub extra_args: Option<Vec<Spanned<String>>>,
}

/// `[mempool]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMempool {
    pub mbufs: Option<Spanned<i64>>,
    pub cache_size: Option<Spanned<i64>>,
    pub data_room: Option<Spanned<i64>>,
}

/// One `[[port]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: Option<Spanned<String>>,
    pub device: Option<Spanned<String>>,
    pub role: Option<Spanned<String>>,
    pub mac: Option<Spanned<String>>,
    pub peer_mac: Option<Spanned<String>>,
    pub addresses: Option<Vec<Spanned<String>>>,
    pub mtu: Option<Spanned<i64>>,
    pub rx_desc: Option<Spanned<i64>>,
    pub tx_desc: Option<Spanned<i64>>,
}

/// One `[[worker]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorker {
    pub lcore: Option<Spanned<i64>>,
    pub cpu: Option<Spanned<i64>>,
    pub rx: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `[[tenant]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub name: Option<Spanned<String>>,
    pub key: Option<Spanned<i64>>,
    pub encap: Option<Spanned<String>>,
    pub gre_checksum: Option<Spanned<bool>>,
    pub gre_sequence: Option<Spanned<bool>>,
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefixes: Option<Spanned<Vec<Spanned<String>>>>,
    pub mac: Option<Spanned<String>>,
    pub public_prefixes: Option<Vec<Spanned<String>>>,
    pub default_in: Option<Spanned<String>>,
    pub default_out: Option<Spanned<String>>,
    // `routes = [...]` and `[[tenant.route]]` are read apart, into
    // `route_list`, so that each route's problems carry its own line (a
    // sub-table loses its span when serde is handed the tenant); the
    // neighbours and rules likewise. They are named here so that a
    // misspelt key is told they exist.
    #[serde(rename = "routes")]
    _routes: Option<IgnoredAny>,
    #[serde(rename = "route")]
    _route: Option<IgnoredAny>,
    #[serde(rename = "neighbours")]
    _neighbours: Option<IgnoredAny>,
    #[serde(rename = "neighbour")]
    _neighbour: Option<IgnoredAny>,
    #[serde(rename = "rules")]
    _rules: Option<IgnoredAny>,
    #[serde(rename = "rule")]
    _rule: Option<IgnoredAny>,
    #[serde(skip)]
    pub route_list: List<RawTenantRoute>,
    #[serde(skip)]
    pub neighbour_list: List<RawTenantNeighbour>,
    #[serde(skip)]
    pub rule_list: List<RawTenantRule>,
}

/// One route of a tenant as written, from either form.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenantRoute {
    pub prefix: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
}

/// One static neighbour of a tenant as written, from either form.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenantNeighbour {
    pub ip: Option<Spanned<String>>,
    pub mac: Option<Spanned<String>>,
}

/// One firewall rule of a tenant as written, from either form.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenantRule {
    pub direction: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub proto: Option<Spanned<RawProto>>,
    pub src: Option<Spanned<String>>,
    pub dst: Option<Spanned<String>>,
    pub sport: Option<Spanned<RawPorts>>,
    pub dport: Option<Spanned<RawPorts>>,
    pub icmp_type: Option<Spanned<i64>>,
    pub icmp_code: Option<Spanned<i64>>,
}

/// A value written either as a number or as a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum NumberOrText {
    Number(i64),
    Text(String),
}

/// Reads a [`NumberOrText`]; `expecting` is what serde says for any other
/// type.
struct NumberOrTextVisitor(&'static str);

impl serde::de::Visitor<'_> for NumberOrTextVisitor {
    type Value = NumberOrText;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(NumberOrText::Number(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(NumberOrText::Number(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(NumberOrText::Text(v.to_owned()))
    }
}

/// `proto`: a name or a protocol number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RawProto(pub NumberOrText);

impl<'de> Deserialize<'de> for RawProto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrTextVisitor(
            "\"tcp\", \"udp\", \"icmp\", \"any\" or a protocol number 0..=255",
        ))
        .map(RawProto)
    }
}

/// `sport` / `dport`: a port number or a range in a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RawPorts(pub NumberOrText);

impl<'de> Deserialize<'de> for RawPorts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrTextVisitor(
            "a port like 22 or a range like \"1024-65535\"",
        ))
        .map(RawPorts)
    }
}

/// One `[[route]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Option<Spanned<String>>,
    pub via: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
}

/// One `[[neighbour]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbour {
    pub port: Option<Spanned<String>>,
    pub ip: Option<Spanned<String>>,
    pub mac: Option<Spanned<String>>,
}

/// One `[[eip]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEip {
    pub public: Option<Spanned<String>>,
    pub tenant: Option<Spanned<String>>,
    pub private: Option<Spanned<String>>,
}

/// One `[[snat]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSnat {
    pub tenant: Option<Spanned<String>>,
    pub addresses: Option<Spanned<Vec<Spanned<String>>>>,
    pub ports: Option<Spanned<String>>,
    pub max_blocks: Option<Spanned<i64>>,
    pub filtering: Option<Spanned<String>>,
}

/// `[flows]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlows {
    pub capacity: Option<Spanned<i64>>,
    pub per_tenant: Option<Spanned<i64>>,
    pub unreplied_per_tenant: Option<Spanned<i64>>,
    pub unreplied_total: Option<Spanned<i64>>,
    pub unreplied_s: Option<Spanned<i64>>,
    pub tcp_established_s: Option<Spanned<i64>>,
    pub tcp_transitory_s: Option<Spanned<i64>>,
    pub udp_s: Option<Spanned<i64>>,
    pub icmp_s: Option<Spanned<i64>>,
}

/// `[icmp]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIcmp {
    pub rate_per_sec: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
}

/// `[tcp]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcp {
    pub mss_clamp: Option<Spanned<bool>>,
}

/// `[arp]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArp {
    pub reachable_s: Option<Spanned<i64>>,
    pub retry_ms: Option<Spanned<i64>>,
    pub max_pending: Option<Spanned<i64>>,
    pub retries: Option<Spanned<i64>>,
    pub entries: Option<Spanned<i64>>,
    pub port_entries: Option<Spanned<i64>>,
    pub per_tenant: Option<Spanned<i64>>,
    pub max_held: Option<Spanned<i64>>,
    pub held_per_tenant: Option<Spanned<i64>>,
}

/// `[control]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub socket: Option<Spanned<String>>,
}

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<Spanned<String>>,
    pub allow_remote: Option<Spanned<bool>>,
}

/// `[offload]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOffload {
    pub mode: Option<Spanned<String>>,
    pub max_flows: Option<Spanned<i64>>,
    pub tenant_share: Option<Spanned<i64>>,
    pub query_interval_ms: Option<Spanned<i64>>,
    pub queue_depth: Option<Spanned<i64>>,
    pub outer_df: Option<Spanned<String>>,
    pub max_deny_rules: Option<Spanned<i64>>,
}

/// A table and the byte offset of its header (or of its key, for an inline
/// table), where problems of the table as a whole are reported.
#[derive(Debug, Default)]
pub(super) struct Section<T> {
    pub value: T,
    pub at: usize,
    /// Keys dropped after their error was reported; `"*"` when the whole
    /// table was unreadable. Checks that depend on them stay silent rather
    /// than report a consequence ("no name") of an error already given.
    pub dropped: Vec<String>,
}

impl<T> Section<T> {
    /// Whether `key` was read (or is absent): false once its error is out.
    pub fn readable(&self, key: &str) -> bool {
        !self.dropped.iter().any(|d| d == key || d == "*")
    }

    /// Whether every key was read.
    pub fn sound(&self) -> bool {
        self.dropped.is_empty()
    }
}

/// An array of tables; `broken` when some entry could not be read at all
/// (already reported), so that "none defined" is not said on top.
#[derive(Debug)]
pub(super) struct List<T> {
    pub items: Vec<Section<T>>,
    pub broken: bool,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            broken: false,
        }
    }
}

/// The whole file as written.
#[derive(Debug, Default)]
pub(super) struct RawConfig {
    pub dataplane: Option<Section<RawDataplane>>,
    pub eal: Option<Section<RawEal>>,
    pub mempool: Option<Section<RawMempool>>,
    pub ports: List<RawPort>,
    pub workers: List<RawWorker>,
    pub tenants: List<RawTenant>,
    pub routes: List<RawRoute>,
    pub neighbours: List<RawNeighbour>,
    pub eips: List<RawEip>,
    pub snat: List<RawSnat>,
    pub flows: Option<Section<RawFlows>>,
    pub icmp: Option<Section<RawIcmp>>,
    pub tcp: Option<Section<RawTcp>>,
    pub arp: Option<Section<RawArp>>,
    pub control: Option<Section<RawControl>>,
    pub metrics: Option<Section<RawMetrics>>,
    pub offload: Option<Section<RawOffload>>,
}

const SECTIONS: &str = "`dataplane`, `eal`, `mempool`, `port`, `worker`, `tenant`, `route`, `neighbour`, `eip`, `snat`, `flows`, `icmp`, `tcp`, `arp`, `control`, `metrics`, `offload`";

/// Parses `text`; `None` when the TOML itself is broken, in which case the
/// report holds that one error.
pub(super) fn read(text: &str, report: &mut Report) -> Option<RawConfig> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            report.at(at, format!("TOML syntax error: {}", one_line(e.message())));
            return None;
        }
    };
    let root = doc.as_table();
    let mut raw = RawConfig::default();
    for (key, item) in root.iter() {
        let at = root
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| item.span())
            .map_or(0, |s| s.start);
        match key {
            "dataplane" => raw.dataplane = single(item, at, "[dataplane]", report),
            "eal" => raw.eal = single(item, at, "[eal]", report),
            "mempool" => raw.mempool = single(item, at, "[mempool]", report),
            "port" => raw.ports = array(item, at, "[[port]]", report),
            "worker" => raw.workers = array(item, at, "[[worker]]", report),
            "tenant" => raw.tenants = tenants(item, at, report),
            "route" => raw.routes = array(item, at, "[[route]]", report),
            "neighbour" => raw.neighbours = array(item, at, "[[neighbour]]", report),
            "eip" => raw.eips = array(item, at, "[[eip]]", report),
            "snat" => raw.snat = array(item, at, "[[snat]]", report),
            "flows" => raw.flows = single(item, at, "[flows]", report),
            "icmp" => raw.icmp = single(item, at, "[icmp]", report),
            "tcp" => raw.tcp = single(item, at, "[tcp]", report),
            "arp" => raw.arp = single(item, at, "[arp]", report),
            "control" => raw.control = single(item, at, "[control]", report),
            "metrics" => raw.metrics = single(item, at, "[metrics]", report),
            "offload" => raw.offload = single(item, at, "[offload]", report),
            _ => report.at(
                at,
                format!("unknown key `{key}` at the top level, expected one of {SECTIONS}; fix its spelling or remove it"),
            ),
        }
    }
    Some(raw)
}

/// A table as an inline table (which is what the serde glue takes) with the
/// offset of its header.
fn as_inline(item: &Item, at: usize) -> Option<(InlineTable, usize)> {
    match item {
        Item::Table(t) => {
            let at = t.span().map_or(at, |s| s.start);
            Some((t.clone().into_inline_table(), at))
        }
        Item::Value(Value::InlineTable(t)) => Some((t.clone(), at)),
        _ => None,
    }
}

fn single<T: DeserializeOwned + Default>(
    item: &Item,
    at: usize,
    name: &str,
    report: &mut Report,
) -> Option<Section<T>> {
    match as_inline(item, at) {
        Some((table, at)) => Some(table_value(table, at, name, report)),
        None => {
            report.at(
                at,
                format!("{name} must be a table; write it as {name} followed by its keys"),
            );
            Some(Section {
                value: T::default(),
                at,
                dropped: vec!["*".to_owned()],
            })
        }
    }
}

fn array<T: DeserializeOwned + Default>(
    item: &Item,
    at: usize,
    name: &str,
    report: &mut Report,
) -> List<T> {
    entries(item, at, name, report, |_, table, at, report| {
        table_value(table, at, name, report)
    })
}

/// Each `[[tenant]]`, with its routes, neighbours and rules read from the tenant
/// as written.
fn tenants(item: &Item, at: usize, report: &mut Report) -> List<RawTenant> {
    const NAME: &str = "[[tenant]]";
    entries(item, at, NAME, report, |written, table, at, report| {
        let mut tenant: Section<RawTenant> = table_value(table, at, NAME, report);
        tenant.value.route_list =
            tenant_entries(written, ["routes", "route"], "[[tenant.route]]", at, report);
        tenant.value.neighbour_list = tenant_entries(
            written,
            ["neighbours", "neighbour"],
            "[[tenant.neighbour]]",
            at,
            report,
        );
        tenant.value.rule_list =
            tenant_entries(written, ["rules", "rule"], "[[tenant.rule]]", at, report);
        tenant
    })
}

/// A tenant's entries of one kind in both forms, e.g. `routes = [...]` and
/// `[[tenant.route]]`, together in file order: both forms are the same
/// entries to the operator.
fn tenant_entries<T: DeserializeOwned + Default>(
    tenant: &dyn TableLike,
    keys: [&str; 2],
    name: &str,
    at: usize,
    report: &mut Report,
) -> List<T> {
    let mut list = List::default();
    for key in keys {
        let Some((k, item)) = tenant.get_key_value(key) else {
            continue;
        };
        let at = k.span().or_else(|| item.span()).map_or(at, |s| s.start);
        let part: List<T> = array(item, at, name, report);
        list.items.extend(part.items);
        list.broken |= part.broken;
    }
    list.items.sort_by_key(|s| s.at);
    list
}

/// The entries of an array of tables, in either TOML form; `read` gets
/// each entry as written and as the inline table that serde takes, with
/// the offset of its header.
fn entries<T>(
    item: &Item,
    at: usize,
    name: &str,
    report: &mut Report,
    mut read: impl FnMut(&dyn TableLike, InlineTable, usize, &mut Report) -> Section<T>,
) -> List<T> {
    let mut list = List::default();
    match item {
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                let at = t.span().map_or(at, |s| s.start);
                list.items
                    .push(read(t, t.clone().into_inline_table(), at, report));
            }
        }
        Item::Value(Value::Array(a)) => {
            for v in a.iter() {
                let at = v.span().map_or(at, |s| s.start);
                match v {
                    Value::InlineTable(t) => list.items.push(read(t, t.clone(), at, report)),
                    _ => {
                        report.at(at, format!("each {name} entry must be a table of keys"));
                        list.broken = true;
                    }
                }
            }
        }
        _ => {
            report.at(
                at,
                format!("{name} must be an array of tables; write each entry as {name} followed by its keys"),
            );
            list.broken = true;
        }
    }
    list
}

/// Deserializes one table, reporting every unknown key and every value of
/// the wrong type: serde stops at the first error, so the offending key is
/// dropped and the table read again, which terminates because each round
/// removes a key.
fn table_value<T: DeserializeOwned + Default>(
    mut table: InlineTable,
    at: usize,
    name: &str,
    report: &mut Report,
) -> Section<T> {
    let mut dropped = Vec::new();
    loop {
        let e = match T::deserialize(Value::InlineTable(table.clone()).into_deserializer()) {
            Ok(value) => return Section { value, at, dropped },
            Err(e) => e,
        };
        let offset = e.span().map(|s| s.start);
        let culprit = offset.and_then(|offset| {
            table.iter().find_map(|(key, value)| {
                let in_key = table
                    .key(key)
                    .and_then(|k| k.span())
                    .is_some_and(|s| s.contains(&offset));
                let in_value = value.span().is_some_and(|s| s.contains(&offset));
                (in_key || in_value).then(|| key.to_owned())
            })
        });
        let message = tidy(e.message());
        match culprit {
            Some(key) => {
                let offset = offset.unwrap_or(at);
                // An unknown key hides nothing the checks need; a known key
                // of the wrong type does.
                if message.starts_with("unknown field") {
                    report.at(
                        offset,
                        format!("{name}: {message}; fix its spelling or remove it"),
                    );
                } else {
                    report.at(offset, format!("{name} `{key}`: {message}"));
                    dropped.push(key.clone());
                }
                if table.remove(&key).is_none() {
                    dropped.push("*".to_owned());
                    return Section {
                        value: T::default(),
                        at,
                        dropped,
                    };
                }
            }
            None => {
                report.at(offset.unwrap_or(at), format!("{name}: {message}"));
                dropped.push("*".to_owned());
                return Section {
                    value: T::default(),
                    at,
                    dropped,
                };
            }
        }
    }
}

/// serde names Rust types; the operator writes TOML.
fn tidy(message: &str) -> String {
    one_line(message)
        .replace("expected i64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
        .replace(
            "expected a sequence",
            "expected an array like [\"a\", \"b\"]",
        )
}

pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
