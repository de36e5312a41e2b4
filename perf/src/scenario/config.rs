//! tgw's configuration for the scenario: `examples/reference.toml` itself,
//! with its two ports on the veth ends and not one static neighbour, so
//! that tgw's resolver must learn the client, the tunnel hosts and the
//! hosts' addresses inside the tunnels from the real Linux stacks.

use toml::{Table, Value};

/// The reference configuration, as checked in.
const REFERENCE: &str = include_str!("../../../examples/reference.toml");

/// Which DPDK driver stands on the veth ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pmd {
    /// `net_af_packet`: a packet socket with mmapped rings.
    AfPacket,
    /// `net_af_xdp`: an XDP socket (native XDP on veth).
    AfXdp,
}

impl std::str::FromStr for Pmd {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "af_packet" => Ok(Pmd::AfPacket),
            "af_xdp" => Ok(Pmd::AfXdp),
            _ => Err(format!("unknown driver {s:?}; known: af_packet, af_xdp")),
        }
    }
}

impl Pmd {
    pub fn name(self) -> &'static str {
        match self {
            Pmd::AfPacket => "af_packet",
            Pmd::AfXdp => "af_xdp",
        }
    }

    /// The vdev string of DPDK port `index` on interface `iface`.
    ///
    /// af_packet's default ring is 512 frames: on two vCPUs the worker is
    /// now and then off its CPU long enough for a TCP burst to overflow
    /// it, and the kernel drops the rest (about 1% of a bulk transfer
    /// here, all of it retransmitted). tgw's `rx_missed` stays 0 (the PMD
    /// does not count them here); the captures show the frames missing
    /// between the client's link and the underlay. 4096
    /// frames (8 MiB a ring) absorb the stalls.
    ///
    /// With several workers each polls its own queue of each port:
    /// af_packet opens that many sockets in one fanout group, which the
    /// kernel fills by flow hash (RSS's stand-in), so replies often arrive
    /// on another worker than the one owning their connection.
    fn device(self, index: usize, iface: &str, queues: usize) -> Result<String, String> {
        match self {
            Pmd::AfPacket => Ok(format!(
                "net_af_packet{index},iface={iface},framecnt=4096,qpairs={queues}"
            )),
            Pmd::AfXdp if queues == 1 => Ok(format!("net_af_xdp{index},iface={iface}")),
            // DPDK 22.11's af_xdp PMD takes the queues it may open from
            // the device's combined channels (`ethtool -l`); a veth reports
            // separate RX and TX channels and no combined ones, so the PMD
            // counts one and refuses `queue_count=2` even on a veth made
            // with two queues (tried: "Specified queue count 2 is larger
            // than combined queue count 1").
            Pmd::AfXdp => Err(
                "several workers need --pmd af_packet: DPDK's af_xdp PMD opens \
                 one queue of a veth (it counts combined channels, which a veth has none of)"
                    .into(),
            ),
        }
    }
}

/// What the scenario changes in the reference configuration.
pub struct Options<'a> {
    pub pmd: Pmd,
    /// The interfaces in tgw's namespace of the public and underlay ports.
    pub public_iface: &'a str,
    pub underlay_iface: &'a str,
    pub file_prefix: &'a str,
    pub hugepages: bool,
    /// Workers, each polling one queue of each port; with fewer CPUs than
    /// lcores, the extra workers share CPUs (`cpu` in `[[worker]]`).
    pub workers: usize,
    /// CPUs this machine has.
    pub cpus: usize,
    /// tgw's control socket (`[control] socket`), where `tgwctl` reaches it.
    pub control_socket: &'a str,
    /// An elastic IP of reference.toml left out of the file: the runtime
    /// steps bind it with `tgwctl eip add` (`runtime.rs`).
    pub unbound_eip: Option<std::net::Ipv4Addr>,
    /// Where tgw serves `/metrics` (`[metrics] listen`), if anywhere.
    pub metrics_listen: Option<&'a str>,
}

/// The reference configuration with `o` applied, as TOML text.
pub fn build(o: &Options) -> Result<String, String> {
    let mut doc: Table = REFERENCE
        .parse()
        .map_err(|e| format!("examples/reference.toml: {e}"))?;

    let eal = table(&mut doc, "eal")?;
    eal.insert("file_prefix".into(), o.file_prefix.into());
    eal.insert("in_memory".into(), true.into());
    eal.insert("hugepages".into(), o.hugepages.into());

    let ports = array(&mut doc, "port")?;
    let mut seen = [false; 2];
    for (index, port) in ports.iter_mut().enumerate() {
        let port = port.as_table_mut().ok_or("a [[port]] is not a table")?;
        let (slot, iface) = match port.get("role").and_then(Value::as_str) {
            Some("public") => (0, o.public_iface),
            Some("underlay") => (1, o.underlay_iface),
            other => return Err(format!("reference.toml: port role {other:?}")),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err("reference.toml: more than one port of a role".into());
        }
        port.insert(
            "device".into(),
            o.pmd.device(index, iface, o.workers)?.into(),
        );
    }
    // Worker i is lcore i + 1 and polls queue i of both ports; lcore 0 is
    // the main lcore.
    let workers: Vec<Value> = (0..o.workers)
        .map(|i| {
            let lcore = i + 1;
            let mut w = Table::new();
            w.insert("lcore".into(), (lcore as i64).into());
            if lcore >= o.cpus.max(1) {
                w.insert("cpu".into(), ((lcore % o.cpus.max(1)) as i64).into());
            }
            let rx = vec![
                Value::from(format!("pub0:{i}")),
                Value::from(format!("und0:{i}")),
            ];
            w.insert("rx".into(), Value::Array(rx));
            Value::Table(w)
        })
        .collect();
    doc.insert("worker".into(), Value::Array(workers));
    if seen != [true, true] {
        return Err("reference.toml: expected one public and one underlay port".into());
    }

    // No static neighbours anywhere: the resolver learns them all.
    doc.remove("neighbour");
    if let Some(unbound) = o.unbound_eip {
        let eips = array(&mut doc, "eip")?;
        let before = eips.len();
        eips.retain(|e| e.get("public").and_then(Value::as_str) != Some(&unbound.to_string()));
        if eips.len() + 1 != before {
            return Err(format!("reference.toml has no [[eip]] {unbound}"));
        }
    }
    let mut control = Table::new();
    control.insert("socket".into(), o.control_socket.into());
    doc.insert("control".into(), Value::Table(control));
    if let Some(listen) = o.metrics_listen {
        let mut metrics = Table::new();
        metrics.insert("listen".into(), listen.into());
        doc.insert("metrics".into(), Value::Table(metrics));
    }
    // The GRE options the hosts' tunnels require (`Host::receives`).
    for tenant in array(&mut doc, "tenant")? {
        let tenant = tenant.as_table_mut().ok_or("a [[tenant]] is not a table")?;
        tenant.remove("neighbours");
        tenant.remove("neighbour");
        let name = tenant
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(h) = super::HOSTS.iter().find(|h| h.tenant == name) {
            let (checksum, sequence) = h.receives(o.workers);
            if checksum {
                tenant.insert("gre_checksum".into(), true.into());
            }
            if sequence {
                tenant.insert("gre_sequence".into(), true.into());
            }
        }
    }

    Ok(format!(
        "# examples/reference.toml for `tgw-perf scenario`: ports on veth ends \
         ({}), no static neighbours.\n{}",
        o.pmd.name(),
        toml::to_string(&doc).map_err(|e| e.to_string())?
    ))
}

/// The gateway's MAC inside each tenant's tunnels, by tenant name, as
/// reference.toml sets it: what the hosts must resolve their router to.
pub fn tenant_macs() -> Result<Vec<(String, String)>, String> {
    let doc: Table = REFERENCE
        .parse()
        .map_err(|e| format!("examples/reference.toml: {e}"))?;
    doc.get("tenant")
        .and_then(Value::as_array)
        .ok_or("reference.toml has no [[tenant]]")?
        .iter()
        .map(|t| {
            let name = t.get("name").and_then(Value::as_str);
            let mac = t.get("mac").and_then(Value::as_str);
            match (name, mac) {
                (Some(n), Some(m)) => Ok((n.to_owned(), m.to_lowercase())),
                _ => Err("reference.toml: a tenant without name or mac".to_owned()),
            }
        })
        .collect()
}

fn table<'a>(doc: &'a mut Table, key: &str) -> Result<&'a mut Table, String> {
    doc.get_mut(key)
        .and_then(Value::as_table_mut)
        .ok_or_else(|| format!("reference.toml has no [{key}]"))
}

fn array<'a>(doc: &'a mut Table, key: &str) -> Result<&'a mut Vec<Value>, String> {
    doc.get_mut(key)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("reference.toml has no [[{key}]]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_on_veths_without_static_neighbours() {
        let text = build(&Options {
            pmd: Pmd::AfPacket,
            public_iface: "pub",
            underlay_iface: "und",
            file_prefix: "x",
            hugepages: false,
            workers: 1,
            cpus: 2,
            control_socket: "/tmp/x/ctl/tgw.sock",
            unbound_eip: Some("2.2.2.12".parse().unwrap()),
            metrics_listen: Some("127.0.0.1:9400"),
        })
        .unwrap();
        let doc: Table = text.parse().unwrap();
        assert!(doc.get("neighbour").is_none());
        for t in doc["tenant"].as_array().unwrap() {
            assert!(t.get("neighbours").is_none() && t.get("neighbour").is_none());
            assert!(t.get("routes").or(t.get("route")).is_some(), "routes kept");
        }
        let devices: Vec<_> = doc["port"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["device"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            devices,
            [
                "net_af_packet0,iface=pub,framecnt=4096,qpairs=1",
                "net_af_packet1,iface=und,framecnt=4096,qpairs=1"
            ]
        );
        assert_eq!(doc["eal"]["in_memory"].as_bool(), Some(true));
        // host1's tunnel is Linux's `csum seq`: its tenant sends both.
        let gre: Vec<_> = doc["tenant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t.get("gre_checksum").is_some(),
                    t.get("gre_sequence").is_some(),
                )
            })
            .collect();
        assert_eq!(gre, [(true, true), (false, false)]);
        let config = ctl::config::parse(&text, "scenario.toml", &"0-1".parse().unwrap())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        // Tenant 2's elastic IP is left for tgwctl to bind; the socket is
        // where the scenario's tgwctl looks.
        let eips: Vec<String> = config.eips.iter().map(|e| e.public.to_string()).collect();
        assert_eq!(eips, ["2.2.2.11"]);
        assert_eq!(
            config.control.socket,
            std::path::Path::new("/tmp/x/ctl/tgw.sock")
        );
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9400".parse().unwrap())
        );
    }

    /// Two workers on two CPUs: the second shares the main lcore's, and
    /// each polls its own queue of both ports; ctl accepts the result.
    #[test]
    fn two_workers_on_two_cpus() {
        let options = |pmd| Options {
            pmd,
            public_iface: "pub",
            underlay_iface: "und",
            file_prefix: "x",
            hugepages: false,
            workers: 2,
            cpus: 2,
            control_socket: "/tmp/x/ctl/tgw.sock",
            unbound_eip: None,
            metrics_listen: None,
        };
        let text = build(&options(Pmd::AfPacket)).unwrap();
        let config = ctl::config::parse(&text, "scenario.toml", &"0-1".parse().unwrap())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let workers: Vec<_> = config.workers.iter().map(|w| (w.lcore, w.cpu)).collect();
        assert_eq!(workers, [(1, 1), (2, 0)]);
        // Sequence numbers need one worker: the checksum alone here.
        let t1 = config.tenant("t1").unwrap();
        assert_eq!((t1.gre_checksum, t1.gre_sequence), (true, false));
        assert_eq!((config.rx_queues(0), config.rx_queues(1)), (2, 2));
        assert!(config.ports[0].device.ends_with("qpairs=2"));
        assert!(build(&options(Pmd::AfXdp)).is_err());
    }
}
