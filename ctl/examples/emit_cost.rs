//! What `config show` costs at the scale issue 11 aims for: 10k tenants
//! of 16 routes each and 100k elastic IPs, emitted as TOML, and the text
//! read back (what `config apply` and a restart pay).
//!
//! `cargo run --release -p ctl --example emit_cost`

use std::net::Ipv4Addr;
use std::time::Instant;

use ctl::config::{parse, Config, CpuSet, Eip, Ipv4Cidr, RouteTarget, Tenant, TenantRoute};

const TENANTS: u32 = 10_000;
const ROUTES: u32 = 16;
const EIPS: u32 = 100_000;

const BASE: &str = r#"
[dataplane]
tenant_slots = 16384
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
addresses = ["1.1.1.1/24"]
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
addresses = ["172.16.0.1/12"]
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
"#;

fn main() {
    let cpus: CpuSet = "0-1".parse().expect("CPU list");
    let mut config = parse(BASE, "base", &cpus).expect("base config");
    grow(&mut config);

    let start = Instant::now();
    let text = config.to_toml();
    let emitted = start.elapsed();

    let start = Instant::now();
    let back = parse(&text, "emitted", &cpus).unwrap_or_else(|e| panic!("refused: {e}"));
    let parsed = start.elapsed();
    assert!(
        back == config,
        "the emitted text reads back to another Config"
    );

    println!(
        "{TENANTS} tenants x {ROUTES} routes, {EIPS} elastic IPs: {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    println!("to_toml: {:.1} ms", emitted.as_secs_f64() * 1e3);
    println!("parse:   {:.1} ms", parsed.as_secs_f64() * 1e3);
}

/// Tenant i has one host on und0's /12, 16 routes toward it and ten
/// elastic IPs onto 10.0.0.10..=19.
fn grow(config: &mut Config) {
    let cidr = |addr: Ipv4Addr, len| Ipv4Cidr { addr, len };
    for i in 0..TENANTS {
        let host = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 1, 0)) + i);
        let routes = (0..ROUTES)
            .map(|j| TenantRoute {
                prefix: cidr(Ipv4Addr::new(10, 0, j as u8, 0), 24),
                to: RouteTarget::Host(host),
            })
            .collect();
        config.tenants.push(Tenant {
            name: format!("tenant-{i}"),
            key: 1000 + i,
            encap: Default::default(),
            gre_checksum: false,
            gre_sequence: false,
            hosts: vec![host],
            prefixes: vec![cidr(Ipv4Addr::new(10, 0, 0, 0), 16)],
            mac: None,
            routes,
            public_prefixes: Vec::new(),
            neighbours: Vec::new(),
            rules: Vec::new(),
            default_in: ctl::config::DEFAULT_IN,
            default_out: ctl::config::DEFAULT_OUT,
        });
    }
    for k in 0..EIPS {
        config.eips.push(Eip {
            public: Ipv4Addr::from(u32::from(Ipv4Addr::new(3, 0, 0, 0)) + k),
            tenant: (k / 10) as usize,
            private: Ipv4Addr::new(10, 0, 0, 10 + (k % 10) as u8),
        });
    }
}
