//! What ctl's config tests share: a valid file to add keys to, and its
//! check with each problem as `(line, message)`.
#![allow(dead_code)]

use ctl::config::{parse, Config, CpuSet};

/// A valid file: one public port, one underlay port, one worker; `[eal]`
/// last so that a test can add its keys.
pub const BASE: &str = "\
[[port]]
name = \"pub0\"
device = \"net_null0\"
role = \"public\"
addresses = [\"1.1.1.1/24\"]
[[port]]
name = \"und0\"
device = \"net_null1\"
role = \"underlay\"
addresses = [\"172.168.0.1/24\"]
[[worker]]
lcore = 1
rx = [\"pub0:0\", \"und0:0\"]
[eal]
hugepages = false
memory_mb = 256
";

/// [`BASE`] with `extra` appended, checked on CPUs 0-1.
pub fn check(extra: &str) -> Result<Config, Vec<(usize, String)>> {
    let cpus: CpuSet = "0-1".parse().unwrap();
    parse(&format!("{BASE}{extra}"), "x.toml", &cpus).map_err(|e| {
        e.iter()
            .map(|e| (e.line.unwrap(), e.message.clone()))
            .collect()
    })
}
