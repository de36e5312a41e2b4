//! examples/reference.toml as the daemon tests run it: its addresses, the
//! frames a client sends to its elastic IPs (built with etherparse), and
//! the file with a test's edits.

use std::path::PathBuf;

use etherparse::PacketBuilder;

use super::Scratch;

/// The public port's MAC (`[[port]] mac` of pub0).
pub const PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// A client on the public side.
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 7, 7];
pub const CLIENT: [u8; 4] = [1, 1, 1, 7];
/// t1's and t2's elastic IPs.
pub const EIP1: [u8; 4] = [2, 2, 2, 11];
pub const EIP2: [u8; 4] = [2, 2, 2, 12];

/// examples/reference.toml with each `(from, to)` of `edits` made once and
/// `tail` appended. Every `from` must be in the example: a test notices
/// when the example changes shape instead of running something else than
/// it says.
pub fn text(edits: &[(&str, String)], tail: &str) -> String {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/reference.toml"
    ))
    .unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "reference.toml changed shape: no {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    text.push_str(tail);
    text
}

/// [`text`] written to `dir`'s `tgw.toml`.
pub fn config(dir: &Scratch, edits: &[(&str, String)], tail: &str) -> PathBuf {
    write(dir, &text(edits, tail))
}

/// `text` as `dir`'s `tgw.toml`.
pub fn write(dir: &Scratch, text: &str) -> PathBuf {
    let path = dir.path("tgw.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The edits every daemon test makes: the ports on `devices` (public,
/// underlay) and the file prefix `prefix`, with `eal` (more `[eal]` keys)
/// after it.
pub fn edits(prefix: &str, devices: [&str; 2], eal: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "device = \"net_null0\"",
            format!("device = \"{}\"", devices[0]),
        ),
        (
            "device = \"net_null1\"",
            format!("device = \"{}\"", devices[1]),
        ),
        (
            "file_prefix = \"tgw-ref\"",
            format!("file_prefix = \"{prefix}\"\n{eal}"),
        ),
    ]
}

/// `[control] socket` in `dir`, to append.
pub fn control_socket(dir: &Scratch, name: &str) -> String {
    format!("\n[control]\nsocket = \"{}\"\n", dir.path(name).display())
}

/// A TCP SYN from the client.
pub fn syn(dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(CLIENT, dst, 64)
        .tcp(sport, dport, 1000, 64240)
        .syn()
        .write(&mut out, &[])
        .unwrap();
    out
}

/// An ICMP echo request from the client: a flow per identifier.
pub fn ping(dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(CLIENT, dst, 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut out, b"ping")
        .unwrap();
    out
}

/// A UDP datagram from the client.
pub fn udp(dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC)
        .ipv4(CLIENT, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}
