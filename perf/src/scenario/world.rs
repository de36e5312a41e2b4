//! The scenario's world: the namespaces and links of the diagram in
//! mod.rs, and the processes in them (captures, servers, client scripts).

use serde_json::Value;

use super::{CLIENT_LIMIT, HOSTS, READY};
use crate::dut;
use crate::netns::{Netns, ProcId};

/// The namespaces and what runs in them.
pub(super) struct World {
    pub(super) net: Netns,
    pub(super) client: String,
    pub(super) gw: String,
    pub(super) switch: String,
    pub(super) hosts: [String; 2],
    pub(super) agents: Vec<ProcId>,
    pub(super) servers: Vec<ProcId>,
    /// tcpdump on the client's link and on tgw's underlay link.
    pub(super) dumps: Vec<ProcId>,
}

/// DPDK's runtime directory of a file prefix, removed at the end.
pub(super) struct RuntimeDir(pub(super) String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        dut::remove_runtime_dir(&self.0);
    }
}

/// The namespaces, links and addresses of the diagram at the top.
pub(super) fn topology(mut net: Netns) -> World {
    let client = net.add("client");
    let gw = net.add("tgw");
    let switch = net.add("switch");
    let hosts = [net.add("host1"), net.add("host2")];
    // IPv4 only: nothing but the scenario's own traffic on the links.
    for ns in [&client, &gw, &switch, &hosts[0], &hosts[1]] {
        net.run_ok(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
    }
    net.veth(&client, "eth0", &gw, "pub");
    net.veth(&gw, "und", &switch, "p-gw");
    for (i, ns) in hosts.iter().enumerate() {
        net.veth(ns, "u0", &switch, &format!("p-host{}", i + 1));
    }
    net.run_ok(&switch, &["ip", "link", "add", "br0", "type", "bridge"]);
    for port in ["p-gw", "p-host1", "p-host2"] {
        net.run_ok(&switch, &["ip", "link", "set", port, "master", "br0"]);
    }
    net.run_ok(&switch, &["ip", "link", "set", "br0", "up"]);
    // tgw is a user-space forwarder: DPDK fills no partial checksums, so
    // the stacks must send them whole, and no segment may be bigger than
    // the link.
    for (ns, dev) in [
        (&client, "eth0"),
        (&gw, "pub"),
        (&gw, "und"),
        (&switch, "p-gw"),
        (&switch, "p-host1"),
        (&switch, "p-host2"),
        (&hosts[0], "u0"),
        (&hosts[1], "u0"),
    ] {
        net.run_ok(
            ns,
            &[
                "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
            ],
        );
    }
    net.run_ok(&client, &["ip", "addr", "add", "1.1.1.7/24", "dev", "eth0"]);
    net.run_ok(
        &client,
        &["ip", "route", "add", "default", "via", "1.1.1.1"],
    );
    for (h, ns) in HOSTS.iter().zip(&hosts) {
        let addr = format!("{}/24", h.underlay);
        net.run_ok(ns, &["ip", "addr", "add", &addr, "dev", "u0"]);
    }
    World {
        net,
        client,
        gw,
        switch,
        hosts,
        agents: Vec::new(),
        servers: Vec::new(),
        dumps: Vec::new(),
    }
}

/// tcpdump on `dev` in `ns` into `file`: headers only (200 bytes is the
/// outer headers, GRE, the inner Ethernet and IPv4 and a quoted header).
pub(super) fn capture(w: &mut World, ns: &str, dev: &str, file: &str) -> ProcId {
    let path = w.net.path(file);
    let id = w.net.spawn(
        ns,
        &format!("tcpdump-{dev}"),
        &[
            "tcpdump",
            "-i",
            dev,
            "-n",
            "-U",
            "-Z",
            "root",
            "-s",
            "200",
            "-B",
            "32768",
            "-c",
            "2000000",
            "-w",
            path.to_str().unwrap_or_default(),
        ],
    );
    w.net.wait_for_output(id, "listening on", READY);
    id
}

/// `serve.py` in `ns` on both tenants' ports, answering as `name` with the
/// MAC of `dev`; returns once it listens.
pub(super) fn serve(w: &mut World, ns: &str, name: &str, dev: &str) -> Result<(), String> {
    let serve = w.net.path("serve.py");
    let ports = HOSTS.map(|h| h.port.to_string());
    let mut argv = vec!["python3", serve.to_str().ok_or("script path")?, name, dev];
    argv.extend(ports.iter().map(String::as_str));
    let server = w.net.spawn(ns, &format!("server-{name}"), &argv);
    w.servers.push(server);
    w.net.wait_for_output(server, "listening", READY);
    Ok(())
}

/// Runs a client script in `ns`; its last stdout line as JSON.
pub(super) fn py(w: &World, ns: &str, script: &str, args: &[&str]) -> Result<Value, String> {
    let path = w.net.path(script);
    let mut argv = vec!["python3", path.to_str().unwrap_or_default()];
    argv.extend_from_slice(args);
    let out = w
        .net
        .try_run(ns, &argv, CLIENT_LIMIT)
        .map_err(|e| format!("{script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).map_err(|_| {
        format!(
            "{script} said {stdout:?}, {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    match v.get("error") {
        Some(e) => Err(format!("{script}: {}", e.as_str().unwrap_or_default())),
        None => Ok(v),
    }
}
