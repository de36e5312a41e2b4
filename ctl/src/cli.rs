//! `tgwctl`'s command line: what an operator types, turned into the
//! control API's [`Op`]s (docs/api.md), and the answers turned into
//! aligned tables.
//!
//! The syntax follows `ip`: `tgwctl route add 10.1.0.0/16 via 192.0.2.2
//! tenant blue`. Keywords are the config file's keys (docs/config.md), so
//! that an error from tgw names the key that was typed. tgwctl checks only
//! the syntax; tgw checks the values, with the config file's own code.

pub mod render;
pub mod stats;
pub mod top;
pub mod words;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::api::{FlowFilter, Op, DEFAULT_SOCKET};
use top::TopArgs;
use words::{number_or_text, usage, Object, Usage, Words};

const EXAMPLES: &str = "\
Examples:
  tgwctl tenant show
  tgwctl tenant add blue.toml            (a [[tenant]] table; - reads stdin)
  tgwctl tenant del blue
  tgwctl route add 10.1.0.0/16 via 192.0.2.2 tenant blue
  tgwctl route add 0.0.0.0/0 public tenant blue
  tgwctl route add 0.0.0.0/0 via 1.1.1.254          (a global route)
  tgwctl route del 10.1.0.0/16 tenant blue
  tgwctl eip add 198.51.100.10 tenant blue private 10.0.0.5
  tgwctl snat add tenant blue address 198.51.100.20 ports 1024-65535
  tgwctl rule add tenant blue in allow tcp dport 22
  tgwctl rule del tenant blue handle 7
  tgwctl neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 tenant blue
  tgwctl flow show --tenant blue --port 22
  tgwctl flow flush --address 10.0.0.5
  tgwctl offload caps
  tgwctl offload show --testpmd
  tgwctl stats
  tgwctl top --interval 0.5 --tenants 10
  tgwctl config apply /etc/tgw/tgw.toml --dry-run

Every show takes --json. The socket is --socket, else $TGW_SOCKET, else
/run/tgw/tgw.sock; tgwctl must run as root (or as tgw's user).

Exit status: 0 done, 1 refused by tgw (printed as `tgwctl: FIELD: MESSAGE`),
2 usage error, 3 tgw cannot be reached.";

const TENANT_HELP: &str = "Examples:\n  tgwctl tenant show [NAME]\n  tgwctl tenant add blue.toml\n  cat blue.toml | tgwctl tenant add -\n  tgwctl tenant del blue\n\nThe file holds one [[tenant]] table (or several, added as one change), or the tenant's keys at the top level.";
const ROUTE_HELP: &str = "Examples:\n  tgwctl route add 10.1.0.0/16 via 192.0.2.2 tenant blue    (to a tunnel host)\n  tgwctl route add 0.0.0.0/0 public tenant blue             (also: local, blackhole)\n  tgwctl route replace 10.1.0.0/16 via 192.0.2.3 tenant blue\n  tgwctl route add 0.0.0.0/0 via 1.1.1.254 [port pub0]      (global)\n  tgwctl route del 10.1.0.0/16 tenant blue\n  tgwctl route del 0.0.0.0/0 [port pub0]                   (global: both sides, or the port's)\n  tgwctl route show [tenant blue]";
const EIP_HELP: &str = "Examples:\n  tgwctl eip add 198.51.100.10 tenant blue private 10.0.0.5\n  tgwctl eip del 198.51.100.10\n  tgwctl eip show [tenant blue]";
const SNAT_HELP: &str = "Examples:\n  tgwctl snat add tenant blue address 198.51.100.20 address 198.51.100.21 \\\n      [ports 1024-65535] [max_blocks 16] [filtering endpoint-independent]\n  tgwctl snat del tenant blue\n  tgwctl snat show [tenant blue]";
const RULE_HELP: &str = "Examples:\n  tgwctl rule add tenant blue in allow tcp dport 22\n  tgwctl rule add tenant blue position 0 out deny udp dst 192.0.2.0/24 dport 1024-65535\n  tgwctl rule add tenant blue in allow icmp icmp_type 8\n  tgwctl rule del tenant blue handle 7\n  tgwctl rule show [tenant blue]\n\nThe words are a [[tenant.rule]]: DIRECTION ACTION [PROTO] then any of src, dst, sport, dport, icmp_type, icmp_code.";
const NEIGH_HELP: &str = "Examples:\n  tgwctl neigh show [tenant blue]\n  tgwctl neigh add 1.1.1.254 lladdr 02:00:00:00:00:fe port pub0\n  tgwctl neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 tenant blue\n  tgwctl neigh del 10.0.0.9 tenant blue";
const FLOW_HELP: &str = "Examples:\n  tgwctl flow show --tenant blue --protocol tcp --port 22\n  tgwctl flow show --limit 1000 --cursor CURSOR     (the next page, as the last said)\n  tgwctl flow flush --address 10.0.0.5\n  tgwctl flow flush --all";
const OFFLOAD_HELP: &str = "Examples:\n  tgwctl offload caps                (per port: its level, and what the NIC said to each rule shape)\n  tgwctl offload show [--limit N]    (offloaded flows: worker, id, tenant, state, hits)\n  tgwctl offload show --testpmd      (their rules as dpdk-testpmd commands)\n  tgwctl offload stats\n  tgwctl offload flush               (every flow back to software)\n\n[offload] mode in tgw's config: \"auto\" (offload on ports whose NIC validated the rule shapes at start), \"off\", or \"shadow\" (rules built and kept, none installed: show --testpmd prints them).";
const STATS_HELP: &str = "Example:\n  tgwctl stats [--json]\n\nCounters since tgw started: ports (the NIC's own), workers (frames, the share of cycles that moved frames, pipeline cycles a frame), drops by reason (those above zero), tenants (summed over workers), neighbours, and the firewall rules that decided flows. --json is the whole report, per worker, as tgw's --stats-json writes it.";
const TOP_HELP: &str = "Examples:\n  tgwctl top\n  tgwctl top --interval 0.5 --tenants 10\n  tgwctl top --count 5 > top.txt           (5 refreshes, one after the other)\n  tgwctl top --json --count 60 --interval 1 (a JSON line a refresh)\n\nPer worker: frames in and out (Mpps), busy (the share of its cycles that moved frames: a poll-mode core is always 100% busy to the OS), pipeline cycles a frame; drops a second by reason; the busiest tenants by frames a second through their tunnels. Rates are over tgw's own clock (TSC) between two reports; the first refresh comes after one interval. On a terminal each refresh draws over the last; q then Enter, or Ctrl-C, quits.";
const CONFIG_HELP: &str = "Examples:\n  tgwctl config show > running.toml\n  tgwctl config apply /etc/tgw/tgw.toml --dry-run   (what would change)\n  tgwctl config apply /etc/tgw/tgw.toml\n\nOnly what can change at run time may differ from the running file ([[tenant]], [[route]], [[neighbour]], [[eip]], [[snat]]).";

/// Drive a running tgw through its control socket (docs/api.md).
#[derive(Debug, Parser)]
#[command(name = "tgwctl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The control socket ([control] socket in tgw's config).
    #[arg(long, global = true, env = "TGW_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,

    /// Print results as JSON (as tgw sent them) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tenants: a [[tenant]] table with its routes, rules and neighbours.
    #[command(after_help = TENANT_HELP)]
    Tenant {
        #[command(subcommand)]
        verb: TenantVerb,
    },
    /// Routes: a tenant's VRF (with `tenant NAME`) or the global tables.
    #[command(after_help = ROUTE_HELP)]
    Route {
        #[command(subcommand)]
        verb: RouteVerb,
    },
    /// Elastic IPs: a public address standing for one tenant address.
    #[command(after_help = EIP_HELP)]
    Eip {
        #[command(subcommand)]
        verb: EipVerb,
    },
    /// Source NAT pools, one per tenant.
    #[command(after_help = SNAT_HELP)]
    Snat {
        #[command(subcommand)]
        verb: SnatVerb,
    },
    /// Firewall rules of a tenant, named by their handles.
    #[command(after_help = RULE_HELP)]
    Rule {
        #[command(subcommand)]
        verb: RuleVerb,
    },
    /// Neighbours (ARP): on a port, or inside a tenant's gretap tunnels.
    #[command(after_help = NEIGH_HELP)]
    Neigh {
        #[command(subcommand)]
        verb: NeighVerb,
    },
    /// Flows: list them, page by page, or end them.
    #[command(after_help = FLOW_HELP)]
    Flow {
        #[command(subcommand)]
        verb: FlowVerb,
    },
    /// Flow offload to the NICs: what each port can take, the offloaded
    /// flows and their rules.
    #[command(after_help = OFFLOAD_HELP)]
    Offload {
        #[command(subcommand)]
        verb: OffloadVerb,
    },
    /// Counters: ports, workers, drops by reason, per tenant.
    #[command(after_help = STATS_HELP)]
    Stats,
    /// Rates, refreshed: per worker Mpps, busy share and cycles a frame,
    /// drops by reason, the busiest tenants.
    #[command(after_help = TOP_HELP)]
    Top(TopArgs),
    /// The whole running state as a config file, or a whole file applied.
    #[command(after_help = CONFIG_HELP)]
    Config {
        #[command(subcommand)]
        verb: ConfigVerb,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantVerb {
    /// Add a tenant from a TOML file of its [[tenant]] table (- for stdin).
    #[command(after_help = TENANT_HELP)]
    Add { file: String },
    /// Remove a tenant with its routes, rules, elastic IPs and pool.
    #[command(after_help = TENANT_HELP)]
    Del { name: String },
    /// Show one tenant or all.
    #[command(after_help = TENANT_HELP)]
    Show { name: Option<String> },
}

/// The words after the verb, `ip`-style, and `--tenant` as a flag.
#[derive(Debug, Args)]
pub struct Rest {
    /// The tenant (same as the word `tenant NAME`).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// The words, in the order the first line shows.
    #[arg(value_name = "WORDS")]
    pub words: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RouteVerb {
    /// PREFIX (via HOST | public | local | blackhole) [tenant NAME] [port PORT]
    #[command(after_help = ROUTE_HELP)]
    Add(Rest),
    /// As add, replacing a route of the same prefix (as `ip route replace`).
    #[command(after_help = ROUTE_HELP)]
    Replace(Rest),
    /// PREFIX [tenant NAME | port PORT]
    #[command(after_help = ROUTE_HELP)]
    Del(Rest),
    /// [tenant NAME]
    #[command(after_help = ROUTE_HELP)]
    Show(Rest),
}

#[derive(Debug, Subcommand)]
pub enum EipVerb {
    /// PUBLIC tenant NAME private ADDRESS
    #[command(after_help = EIP_HELP)]
    Add(Rest),
    /// PUBLIC
    #[command(after_help = EIP_HELP)]
    Del(Rest),
    /// [tenant NAME]
    #[command(after_help = EIP_HELP)]
    Show(Rest),
}

#[derive(Debug, Subcommand)]
pub enum SnatVerb {
    /// tenant NAME address A [address B ...] [ports LO-HI] [max_blocks N] [filtering F]
    #[command(after_help = SNAT_HELP)]
    Add(Rest),
    /// tenant NAME
    #[command(after_help = SNAT_HELP)]
    Del(Rest),
    /// [tenant NAME]
    #[command(after_help = SNAT_HELP)]
    Show(Rest),
}

#[derive(Debug, Subcommand)]
pub enum RuleVerb {
    /// tenant NAME [position N] DIRECTION ACTION [PROTO] [src P] [dst P] [sport X] [dport X] [icmp_type N] [icmp_code N]
    #[command(after_help = RULE_HELP)]
    Add(Rest),
    /// tenant NAME handle N
    #[command(after_help = RULE_HELP)]
    Del(Rest),
    /// [tenant NAME]
    #[command(after_help = RULE_HELP)]
    Show(Rest),
}

#[derive(Debug, Subcommand)]
pub enum NeighVerb {
    /// [tenant NAME]
    #[command(after_help = NEIGH_HELP)]
    Show(Rest),
    /// IP lladdr MAC (port PORT | tenant NAME)
    #[command(after_help = NEIGH_HELP)]
    Add(Rest),
    /// IP (port PORT | tenant NAME)
    #[command(after_help = NEIGH_HELP)]
    Del(Rest),
}

/// Which flows: every filter given must match.
#[derive(Debug, Args)]
pub struct Filter {
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Either end, before or after NAT.
    #[arg(long, value_name = "IPV4")]
    pub address: Option<std::net::Ipv4Addr>,
    /// Either end's port (or ICMP identifier).
    #[arg(long)]
    pub port: Option<u16>,
    /// tcp, udp, icmp or a number.
    #[arg(long)]
    pub protocol: Option<String>,
}

impl Filter {
    fn api(self) -> FlowFilter {
        FlowFilter {
            tenant: self.tenant,
            address: self.address,
            port: self.port,
            protocol: self.protocol,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FlowVerb {
    /// Flows matching the filters, at most --limit (default 100) from
    /// --cursor on.
    #[command(after_help = FLOW_HELP)]
    Show {
        #[command(flatten)]
        filter: Filter,
        /// Rows at most (tgw caps it at 10000).
        #[arg(long)]
        limit: Option<usize>,
        /// Where the previous page ended, as it said.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// End the flows matching the filters (--all for every flow).
    #[command(after_help = FLOW_HELP)]
    Flush {
        #[command(flatten)]
        filter: Filter,
        /// With no filter: end every flow.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OffloadVerb {
    /// Per port: the offload level the probe decided, and per rule shape
    /// "ok", "no flow API", "not supported: <the PMD's message>" or
    /// "refused: <the error>".
    #[command(after_help = OFFLOAD_HELP)]
    Caps,
    /// Offloaded flows: worker, id, tenant, state, hits and bytes the NIC
    /// counted.
    #[command(after_help = OFFLOAD_HELP)]
    Show {
        /// Flows at most (tgw caps it at 10000; default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print the flows' rules, and the static steering rules, as
        /// dpdk-testpmd commands instead of the table.
        #[arg(long)]
        testpmd: bool,
    },
    /// The offload manager's counters.
    #[command(after_help = OFFLOAD_HELP)]
    Stats,
    /// Pull every offloaded flow back to software.
    #[command(after_help = OFFLOAD_HELP)]
    Flush,
}

#[derive(Debug, Subcommand)]
pub enum ConfigVerb {
    /// Print the running state as a config file.
    #[command(after_help = CONFIG_HELP)]
    Show,
    /// Replace the running state with FILE's (- for stdin), as one change.
    #[command(after_help = CONFIG_HELP)]
    Apply {
        file: String,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

/// How the answer is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `stats`: the report as a few tables (`stats::human`).
    Stats,
    /// `top`: `stats` asked again and again (`top::run`).
    Top(TopArgs),
    /// A change: nothing on success unless tgw says something.
    Change,
    /// A list or counters: a table.
    Show,
    /// `flow.show`: a table and where the next page starts.
    Flows,
    /// `config.show`: the file's text.
    ConfigText,
    /// `offload.show --testpmd`: the commands' text.
    Testpmd,
    /// `config.apply`: one line per change, and whether it was made.
    Plan,
}

/// The request a command line means and how to print its answer; `read`
/// gives a named file's text (`-` is stdin).
pub fn request(
    command: Command,
    read: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<(Op, Shape), Usage> {
    let read = |name: &str| {
        read(name).map_err(|e| {
            let shown = if name == "-" { "standard input" } else { name };
            Usage(format!("cannot read {shown}: {e}"))
        })
    };
    Ok(match command {
        Command::Tenant { verb } => match verb {
            TenantVerb::Add { file } => (tenant_add(&read(&file)?, &file)?, Shape::Change),
            TenantVerb::Del { name } => (Op::TenantDel { name }, Shape::Change),
            TenantVerb::Show { name } => (Op::TenantShow { name }, Shape::Show),
        },
        Command::Route { verb } => match verb {
            RouteVerb::Add(w) => (route_add(w, "route add", false)?, Shape::Change),
            RouteVerb::Replace(w) => (route_add(w, "route replace", true)?, Shape::Change),
            RouteVerb::Del(w) => {
                let (tenant, mut w) = split(w, "route del")?;
                let prefix = w.first("the prefix")?;
                let port = w.value(&["port", "dev"])?;
                w.done()?;
                (
                    Op::RouteDel {
                        tenant,
                        prefix,
                        port,
                    },
                    Shape::Change,
                )
            }
            RouteVerb::Show(w) => (
                Op::RouteShow {
                    tenant: show(w, "route show")?,
                },
                Shape::Show,
            ),
        },
        Command::Eip { verb } => match verb {
            EipVerb::Add(w) => {
                let (tenant, mut w) = split(w, "eip add")?;
                let public = w.first("the public address")?;
                let private = w.value(&["private"])?;
                w.done()?;
                let mut eip = Object::default();
                eip.set("public", public)
                    .set_some("tenant", tenant)
                    .set_some("private", private);
                (Op::EipAdd { eip: eip.value() }, Shape::Change)
            }
            EipVerb::Del(w) => {
                let (tenant, mut w) = split(w, "eip del")?;
                if tenant.is_some() {
                    return usage("eip del: an elastic IP is named by its public address alone");
                }
                let public = w.first("the public address")?;
                w.done()?;
                (Op::EipDel { public }, Shape::Change)
            }
            EipVerb::Show(w) => (
                Op::EipShow {
                    tenant: show(w, "eip show")?,
                },
                Shape::Show,
            ),
        },
        Command::Snat { verb } => match verb {
            SnatVerb::Add(w) => (snat_add(w)?, Shape::Change),
            SnatVerb::Del(w) => {
                let (tenant, mut w) = split(w, "snat del")?;
                // `snat del tenant blue`, or just `snat del blue`.
                let tenant = match tenant {
                    Some(t) => t,
                    None => w.first("the tenant")?,
                };
                w.done()?;
                (Op::SnatDel { tenant }, Shape::Change)
            }
            SnatVerb::Show(w) => (
                Op::SnatShow {
                    tenant: show(w, "snat show")?,
                },
                Shape::Show,
            ),
        },
        Command::Rule { verb } => match verb {
            RuleVerb::Add(w) => (rule_add(w)?, Shape::Change),
            RuleVerb::Del(w) => {
                let (tenant, mut w) = split(w, "rule del")?;
                let Some(tenant) = tenant else {
                    return usage("rule del: give the tenant: tenant NAME handle N");
                };
                let handle = match w.value(&["handle"])? {
                    Some(h) => h,
                    None => w.first("the handle (handle N)")?,
                };
                w.done()?;
                let Ok(handle) = handle.parse() else {
                    return usage(format!(
                        "rule del: handle {handle:?} is not a number; `tgwctl rule show` lists them"
                    ));
                };
                (Op::RuleDel { tenant, handle }, Shape::Change)
            }
            RuleVerb::Show(w) => (
                Op::RuleShow {
                    tenant: show(w, "rule show")?,
                },
                Shape::Show,
            ),
        },
        Command::Neigh { verb } => match verb {
            NeighVerb::Show(w) => (
                Op::NeighShow {
                    tenant: show(w, "neigh show")?,
                },
                Shape::Show,
            ),
            NeighVerb::Add(w) => {
                let (tenant, mut w) = split(w, "neigh add")?;
                let ip = w.first("the address")?;
                let mac = w.value(&["lladdr", "mac"])?;
                let port = w.value(&["port", "dev"])?;
                w.done()?;
                let mut neighbour = Object::default();
                neighbour
                    .set_some("port", port)
                    .set("ip", ip)
                    .set_some("mac", mac);
                let neighbour = neighbour.value();
                (Op::NeighAdd { tenant, neighbour }, Shape::Change)
            }
            NeighVerb::Del(w) => {
                let (tenant, mut w) = split(w, "neigh del")?;
                let ip = w.first("the address")?;
                let port = w.value(&["port", "dev"])?;
                w.done()?;
                (Op::NeighDel { tenant, port, ip }, Shape::Change)
            }
        },
        Command::Flow { verb } => match verb {
            FlowVerb::Show {
                filter,
                limit,
                cursor,
            } => (
                Op::FlowShow {
                    filter: filter.api(),
                    limit,
                    cursor,
                },
                Shape::Flows,
            ),
            FlowVerb::Flush { filter, all } => {
                let filter = filter.api();
                if filter == FlowFilter::default() && !all {
                    return usage(
                        "flow flush: with no filter this ends every flow; say --all if that is meant",
                    );
                }
                (Op::FlowFlush { filter }, Shape::Change)
            }
        },
        Command::Offload { verb } => match verb {
            OffloadVerb::Caps => (Op::OffloadCaps {}, Shape::Show),
            OffloadVerb::Show { limit, testpmd } => (
                Op::OffloadShow { limit, testpmd },
                if testpmd {
                    Shape::Testpmd
                } else {
                    Shape::Flows
                },
            ),
            OffloadVerb::Stats => (Op::OffloadStats {}, Shape::Show),
            OffloadVerb::Flush => (Op::OffloadFlush {}, Shape::Change),
        },
        Command::Stats => (Op::Stats {}, Shape::Stats),
        Command::Top(args) => (Op::Stats {}, Shape::Top(args)),
        Command::Config { verb } => match verb {
            ConfigVerb::Show => (Op::ConfigShow {}, Shape::ConfigText),
            ConfigVerb::Apply { file, dry_run } => {
                let text = read(&file)?;
                let file = if file == "-" { "<stdin>".into() } else { file };
                (
                    Op::ConfigApply {
                        text,
                        file,
                        dry_run,
                    },
                    Shape::Plan,
                )
            }
        },
    })
}

/// The tenant, from `--tenant` or the word `tenant NAME` (not both), and
/// the other words.
fn split(w: Rest, command: &'static str) -> Result<(Option<String>, Words), Usage> {
    let mut words = Words::new(command, w.words);
    let word = words.value(&["tenant"])?;
    let tenant = match (w.tenant, word) {
        (Some(a), Some(b)) if a != b => {
            return usage(format!("{command}: two tenants given, {a:?} and {b:?}"));
        }
        (a, b) => a.or(b),
    };
    Ok((tenant, words))
}

/// A show's optional tenant: `--tenant NAME`, `tenant NAME` or `NAME`.
fn show(w: Rest, command: &'static str) -> Result<Option<String>, Usage> {
    let (tenant, mut words) = split(w, command)?;
    let tenant = match tenant {
        Some(t) => Some(t),
        None => words.optional(),
    };
    words.done()?;
    Ok(tenant)
}

fn route_add(w: Rest, command: &'static str, replace: bool) -> Result<Op, Usage> {
    let (tenant, mut w) = split(w, command)?;
    let prefix = w.first("the prefix")?;
    let via = w.value(&["via"])?;
    let to = w.value(&["to"])?;
    let port = w.value(&["port", "dev"])?;
    let kinds: Vec<&str> = ["public", "local", "blackhole"]
        .into_iter()
        .filter(|k| w.flag(k))
        .collect();
    w.done()?;
    let mut targets: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    targets.extend(to);
    let mut route = Object::default();
    route.set("prefix", prefix);
    match &tenant {
        // A tenant route's one key is `to`: a host, or a kind.
        Some(_) => {
            targets.extend(via);
            match targets.len() {
                0 => {
                    return usage(format!(
                        "{command}: say where: via HOST, public, local or blackhole"
                    ))
                }
                1 => route.set("to", targets.remove(0)),
                _ => return usage(format!("{command}: one of via, public, local, blackhole")),
            };
        }
        // A global route: `via` and `port`; anything else is passed on
        // for tgw to refuse by its key.
        None => {
            route.set_some("via", via);
            if let Some(to) = targets.pop() {
                route.set("to", to);
            }
        }
    }
    route.set_some("port", port);
    Ok(Op::RouteAdd {
        tenant,
        route: route.value(),
        replace,
    })
}

fn snat_add(w: Rest) -> Result<Op, Usage> {
    let (tenant, mut w) = split(w, "snat add")?;
    let mut addresses = w.values(&["address"])?;
    for list in w.values(&["addresses"])? {
        addresses.extend(list.split(',').filter(|a| !a.is_empty()).map(str::to_owned));
    }
    let ports = w.value(&["ports"])?;
    let max_blocks = w.value(&["max_blocks"])?;
    let filtering = w.value(&["filtering"])?;
    // Bare addresses too: `snat add tenant blue 198.51.100.20`.
    addresses.extend(w.rest());
    let mut snat = Object::default();
    snat.set_some("tenant", tenant)
        .set(
            "addresses",
            Value::from(addresses.into_iter().map(Value::from).collect::<Vec<_>>()),
        )
        .set_some("ports", ports)
        .set_some("max_blocks", max_blocks.as_deref().map(number_or_text))
        .set_some("filtering", filtering);
    Ok(Op::SnatAdd { snat: snat.value() })
}

/// The keys of `[[tenant.rule]]` that take a value, as typed.
const RULE_KEYS: [&str; 7] = [
    "proto",
    "src",
    "dst",
    "sport",
    "dport",
    "icmp_type",
    "icmp_code",
];
/// Those whose value the config reads as a number where it is one.
const RULE_NUMBERS: [&str; 5] = ["proto", "sport", "dport", "icmp_type", "icmp_code"];

fn rule_add(w: Rest) -> Result<Op, Usage> {
    let (tenant, mut w) = split(w, "rule add")?;
    let Some(tenant) = tenant else {
        return usage("rule add: give the tenant: tenant NAME DIRECTION ACTION ...");
    };
    let position = match w.value(&["position"])? {
        None => None,
        Some(p) => match p.parse() {
            Ok(p) => Some(p),
            Err(_) => {
                return usage(format!(
                    "rule add: position {p:?} is not a number (0 is first)"
                ))
            }
        },
    };
    let mut rule = Object::default();
    for key in RULE_KEYS {
        if let Some(v) = w.value(&[key])? {
            let v = if RULE_NUMBERS.contains(&key) {
                number_or_text(&v)
            } else {
                Value::from(v)
            };
            rule.set(key, v);
        }
    }
    let direction = w.first("the direction (in or out)")?;
    let action = w.first("the action (allow or deny)")?;
    rule.set("direction", direction).set("action", action);
    // `in allow tcp dport 22`: the protocol may come without its keyword.
    if let Some(proto) = w.optional() {
        if rule.has("proto") {
            return usage(format!(
                "rule add: unexpected `{proto}` (proto is given already)"
            ));
        }
        rule.set("proto", number_or_text(&proto));
    }
    w.done()?;
    Ok(Op::RuleAdd {
        tenant,
        rule: rule.value(),
        position,
    })
}

/// The tenants of a TOML file: `[[tenant]]` tables (several are added as
/// one change), or one tenant's keys at the top level.
fn tenant_add(text: &str, file: &str) -> Result<Op, Usage> {
    let shown = if file == "-" { "standard input" } else { file };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // The line, as the config's own errors give it.
        let line = e.span().map_or(String::new(), |s| {
            format!(
                "{}:",
                crate::config::span::LineIndex::new(text).line(s.start)
            )
        });
        Usage(format!(
            "{shown}:{line} {}",
            crate::config::one_line(e.message())
        ))
    })?;
    let tenants: Vec<Value> = match table.get("tenant") {
        Some(toml::Value::Array(list)) if table.len() == 1 => list.iter().map(to_json).collect(),
        Some(toml::Value::Table(t)) if table.len() == 1 => {
            vec![to_json(&toml::Value::Table(t.clone()))]
        }
        Some(_) => {
            return usage(format!(
                "{shown}: give one [[tenant]] table (or several) and nothing else"
            ))
        }
        None => vec![to_json(&toml::Value::Table(table))],
    };
    let mut ops: Vec<Op> = tenants
        .into_iter()
        .map(|tenant| Op::TenantAdd { tenant })
        .collect();
    match ops.len() {
        0 => usage(format!("{shown}: no [[tenant]] in it")),
        1 => Ok(ops.remove(0)),
        _ => Ok(Op::Batch { ops }),
    }
}

fn to_json(v: &toml::Value) -> Value {
    // TOML values are all JSON values (a datetime becomes its text, which
    // no tenant key takes: tgw refuses it by name).
    serde_json::to_value(v).unwrap_or(Value::Null)
}
