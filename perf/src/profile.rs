//! Traffic profiles: the frames the generator cycles through, built with
//! `etherparse` (an independent library, not the parsers under test; GRE,
//! which etherparse lacks, is written by hand from RFC 2784/2890), and the
//! tgw configuration each profile needs.
//!
//! - `udp`: Ethernet/IPv4/UDP through tgw in `l2fwd` mode: the I/O
//!   baseline against testpmd.
//! - `encap`: the Internet side sends to one public address per tenant;
//!   tgw routes each into its tenant and encapsulates toward its host.
//! - `decap`: every tenant's host sends GRE with its key; tgw checks,
//!   decapsulates and routes to the Internet (from the tenants' own public
//!   addresses: stateless, no flow).
//! - `nat`: clients all over the Internet send to one elastic IP; tgw finds
//!   (or, in the warm-up, creates) each one's flow, translates it and
//!   encapsulates toward the tenant's host: the flow-hit path. `flows`
//!   clients, any number up to 16 M: the generator stamps each frame's
//!   source address as it sends, so no frame list holds them.
//! - `new-flows`: the same clients and elastic IP, but every frame from a
//!   client never seen before (source address and port stamped from a
//!   counter that does not wrap within a run), so every frame opens a flow.
//!   The flows are one-way, so past half the tenant's share of unreplied
//!   flows each lives `unreplied_s = 1` second (the RFC floors bar a
//!   shorter UDP timeout) and the sweep recycles them. `--flows N` is the
//!   rate the table has room for: it holds 4N flows (at least 65,536),
//!   half of them the share's first flows of 120 s, the other half flows
//!   of a second and the expired ones the sweep has not reached yet (at
//!   most a quarter of the table: it visits four slots for each flow
//!   created or refused), so up to N new flows a second none is refused.

use std::fmt::{self, Write};
use std::net::Ipv4Addr;
use std::str::FromStr;

use etherparse::PacketBuilder;

/// Bytes of a minimum Ethernet frame without its FCS (64 on the wire).
pub const MIN_FRAME: usize = 60;
/// The first tenant's GRE key; tenant `i` has key `KEY_BASE + i`.
pub const KEY_BASE: u32 = 1000;

pub const CLIENT: [u8; 4] = [1, 1, 1, 7];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xee, 0x01];
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xee, 0x02];
pub const VM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x07];
pub const GW_PUB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const GW_UND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Udp,
    Encap,
    Decap,
    Nat,
    NewFlows,
}

/// A profile: what kind of frame, how many distinct flows (tenants for
/// the gateway profiles), what size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub kind: Kind,
    pub flows: u32,
    /// Frame size on the wire, FCS included (64 = the minimum); for
    /// `decap`, the size of the inner frame.
    pub size: usize,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(Kind::Udp),
            "encap" => Ok(Kind::Encap),
            "decap" => Ok(Kind::Decap),
            "nat" => Ok(Kind::Nat),
            "new-flows" => Ok(Kind::NewFlows),
            _ => Err(format!(
                "unknown profile {s:?}; known: udp, encap, decap, nat, new-flows"
            )),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Udp => "udp",
            Kind::Encap => "encap",
            Kind::Decap => "decap",
            Kind::Nat => "nat",
            Kind::NewFlows => "new-flows",
        })
    }
}

/// Tenant `i`'s tunnel host, on the underlay's /16.
pub fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

/// Tenant `i`'s public address.
pub fn public(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(2, 2, (i / 250) as u8, (1 + i % 250) as u8)
}

pub fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Profile {
    /// How many distinct frames (tenants, for the gateway profiles; at most
    /// 64 000, the address plan's size).
    fn count(&self) -> u32 {
        let max = match self.kind {
            Kind::Udp => 65_536,
            // One template, stamped per flow by the generator.
            Kind::Nat | Kind::NewFlows => 1,
            _ => 64_000,
        };
        self.flows.clamp(1, max)
    }

    /// Flows the generator cycles through; `None` for `new-flows`, whose
    /// every frame is a flow of its own (see [`Profile::stamp`]).
    pub fn flow_count(&self) -> Option<u64> {
        match self.kind {
            Kind::Nat => Some(self.flows.clamp(1, MAX_NAT_FLOWS).into()),
            Kind::NewFlows => None,
            _ => Some(self.count().into()),
        }
    }

    /// Stamps flow `i` into `frame` (a copy of the template) for the
    /// profiles that are not a list of frames: `nat` gives each flow its
    /// own client address (1.0.0.0/8 from 1.0.0.1 up), `new-flows` each
    /// frame its own address and source port (the addresses first, then
    /// the next port: 2^24 - 1 addresses times 64,512 ports, no repeat in
    /// days at tens of Mpps). The UDP checksum is 0, "none", so only the
    /// IPv4 one changes.
    pub fn stamp(&self, frame: &mut [u8], i: u64) {
        if frame.len() < 36 {
            return;
        }
        const ADDRS: u64 = (1 << 24) - 1;
        let src = match self.kind {
            Kind::Nat => (1u32 << 24) + 1 + i as u32,
            Kind::NewFlows => {
                let port = 1024 + (i / ADDRS % 64_512) as u16;
                frame[34..36].copy_from_slice(&port.to_be_bytes());
                (1u32 << 24) + 1 + (i % ADDRS) as u32
            }
            _ => return,
        };
        frame[26..30].copy_from_slice(&src.to_be_bytes());
        frame[24..26].fill(0);
        let sum = ipv4_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
    }

    /// One frame per flow, each `size - 4` bytes (for `decap`, the inner
    /// frame is).
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let len = self.size.saturating_sub(4).max(MIN_FRAME);
        (0..self.count())
            .map(|i| {
                let payload = vec![0u8; len.saturating_sub(42)];
                let mut frame = Vec::with_capacity(len + 42);
                let written = match self.kind {
                    Kind::Udp => PacketBuilder::ethernet2(CLIENT_MAC, GW_PUB_MAC)
                        .ipv4(CLIENT, [2, 2, 2, 11], 64)
                        .udp(1024 + (i % 64_512) as u16, 5001)
                        .write(&mut frame, &payload),
                    Kind::Encap => PacketBuilder::ethernet2(CLIENT_MAC, GW_PUB_MAC)
                        .ipv4(CLIENT, public(i).octets(), 64)
                        .udp(40000, 5001)
                        .write(&mut frame, &payload),
                    Kind::Nat | Kind::NewFlows => {
                        let written = PacketBuilder::ethernet2(CLIENT_MAC, GW_PUB_MAC)
                            .ipv4([1, 0, 0, 1], EIP, 64)
                            .udp(40000, 5001)
                            .write(&mut frame, &payload);
                        // No UDP checksum, so stamping a source is cheap.
                        frame[40..42].fill(0);
                        written
                    }
                    Kind::Decap => {
                        let mut inner = Vec::with_capacity(len);
                        PacketBuilder::ethernet2(VM_MAC, tenant_mac(i))
                            .ipv4(public(i).octets(), CLIENT, 64)
                            .udp(40000, 5001)
                            .write(&mut inner, &payload)
                            .expect("writing to a Vec cannot fail");
                        let mut gre = vec![0x20, 0x00, 0x65, 0x58];
                        gre.extend_from_slice(&(KEY_BASE + i).to_be_bytes());
                        gre.extend_from_slice(&inner);
                        PacketBuilder::ethernet2(HOST_MAC, GW_UND_MAC)
                            .ipv4(host(i).octets(), [172, 16, 0, 1], 64)
                            .write(&mut frame, etherparse::IpNumber(47), &gre)
                    }
                };
                written.expect("writing to a Vec cannot fail");
                frame
            })
            .collect()
    }

    /// Whether the generator's sending link is tgw's underlay port.
    pub fn sends_to_underlay(&self) -> bool {
        self.kind == Kind::Decap
    }

    /// The `[dataplane]`, tenants, routes and neighbours of the tgw config
    /// for this profile.
    pub fn tgw_sections(&self) -> String {
        let mut out = String::new();
        if self.kind == Kind::Udp {
            out.push_str("[dataplane]\nmode = \"l2fwd\"\n");
            return out;
        }
        out.push_str("[dataplane]\nmode = \"gateway\"\n");
        // Past what the defaults hold (4096 tenant slots; 1024 of the
        // neighbour table's 4096 entries for the ports, which take 1000
        // tenants' tunnel hosts and the few others), room for every tenant
        // and its host.
        let tenants = self.count();
        if tenants > 4096 {
            let _ = writeln!(out, "tenant_slots = {tenants}");
        }
        if tenants > 1000 {
            // Each tenant's host on the underlay, and two static
            // neighbours in its tunnels.
            let ports = (tenants + 64).next_power_of_two();
            let tunnels = (2 * tenants + 64).next_power_of_two();
            let _ = writeln!(
                out,
                "\n[arp]\nentries = {}\nport_entries = {ports}",
                ports + tunnels
            );
        }
        out.push_str("\n[tcp]\nmss_clamp = true\n\n");
        if matches!(self.kind, Kind::Nat | Kind::NewFlows) {
            // Room for every client's flow, and the quotas out of the way:
            // the clients' flows are one-way, so all stay unreplied. For
            // `new-flows`, the table's flows past half of it live a second
            // (the shortest `unreplied_s`), and `--flows` new flows a
            // second fit in the rest with the expired ones not yet swept
            // (a quarter of the table at most): at 4M flows a second the
            // rate, not the table, is measured.
            let (capacity, recycle) = match self.flow_count() {
                Some(n) => ((n * 5 / 4).max(1024), ""),
                None => ((4 * u64::from(self.flows)).max(65_536), "unreplied_s = 1\n"),
            };
            let _ = writeln!(
                out,
                "[flows]\ncapacity = {capacity}\nper_tenant = {capacity}\nunreplied_per_tenant = {capacity}\nunreplied_total = {capacity}\n{recycle}\n[[eip]]\npublic = \"{}\"\ntenant = \"t0\"\nprivate = \"10.0.0.7\"\n",
                Ipv4Addr::from(EIP)
            );
            // Clients are on the Internet: the default route's router.
            let _ = writeln!(
                out,
                "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"1.1.1.254\"\n\n[[neighbour]]\nport = \"pub0\"\nip = \"1.1.1.254\"\nmac = \"{}\"\n",
                mac(CLIENT_MAC)
            );
        }
        let _ = writeln!(
            out,
            "[[neighbour]]\nport = \"pub0\"\nip = \"1.1.1.7\"\nmac = \"{}\"\n",
            mac(CLIENT_MAC)
        );
        for i in 0..self.count() {
            let (h, p) = (host(i), public(i));
            let _ = writeln!(
                out,
                r#"[[tenant]]
name = "t{i}"
key = {key}
hosts = ["{h}"]
prefixes = ["10.0.0.0/24"]
public_prefixes = ["{p}/32"]
mac = "{tmac}"
default_in = "allow"
routes = [{{ prefix = "10.0.0.0/24", to = "{h}" }}, {{ prefix = "{p}/32", to = "{h}" }}, {{ prefix = "0.0.0.0/0", to = "public" }}]
neighbours = [{{ ip = "10.0.0.7", mac = "{vm}" }}, {{ ip = "{p}", mac = "{vm}" }}]

[[neighbour]]
port = "und0"
ip = "{h}"
mac = "{hmac}"
"#,
                key = KEY_BASE + i,
                tmac = mac(tenant_mac(i)),
                vm = mac(VM_MAC),
                hmac = mac(HOST_MAC),
            );
        }
        out
    }
}

/// Flows the `nat` profile can have: clients 1.0.0.1 up, within 1.0.0.0/8.
pub const MAX_NAT_FLOWS: u32 = (1 << 24) - 2;

/// The `nat` profile's elastic IP (tenant 0's 10.0.0.7).
const EIP: [u8; 4] = [2, 2, 2, 200];

/// The IPv4 header checksum of `h` (its checksum field zero).
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Tenant `i`'s gateway MAC inside its tunnels.
pub fn tenant_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x74, b[0], b[1], b[2], b[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_size_and_distinct_flows() {
        let p = Profile {
            kind: Kind::Udp,
            flows: 100,
            size: 64,
        };
        let frames = p.frames();
        assert_eq!(frames.len(), 100);
        assert!(frames.iter().all(|f| f.len() == 60));
        let sliced = etherparse::SlicedPacket::from_ethernet(&frames[7]).unwrap();
        let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
            panic!("not UDP")
        };
        assert_eq!(udp.source_port(), 1031);
        let big = Profile {
            kind: Kind::Udp,
            flows: 1,
            size: 1518,
        }
        .frames();
        assert_eq!(big[0].len(), 1514);
    }

    #[test]
    fn decap_frames_carry_each_tenants_key_from_its_host() {
        let p = Profile {
            kind: Kind::Decap,
            flows: 300,
            size: 64,
        };
        let frames = p.frames();
        let f = &frames[260];
        let sliced = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = sliced.net else {
            panic!()
        };
        assert_eq!(ip.header().source_addr(), host(260));
        let gre = ip.payload().payload;
        assert_eq!(
            u32::from_be_bytes(gre[4..8].try_into().unwrap()),
            KEY_BASE + 260
        );
        assert_eq!(gre.len() - 8, 60, "a 64-byte inner frame");
        assert!(p
            .tgw_sections()
            .contains(&format!("key = {}", KEY_BASE + 299)));
    }

    /// `run --profile encap --flows 10000` once ended with tgw refusing
    /// its config (4096 tenant slots), then its neighbours (the default
    /// table's 1024 port entries). 4500 tenants are past both.
    #[test]
    fn more_tenants_than_the_defaults_hold_fit_the_config() {
        let p = Profile {
            kind: Kind::Encap,
            flows: 4500,
            size: 64,
        };
        let c = tgw_config(&p);
        assert_eq!(c.tenants.len(), 4500);
        let a = &c.arp;
        assert!(a.port_entries as usize >= c.neighbours.len(), "{a:?}");
        let in_tunnels: usize = c.tenants.iter().map(|t| t.neighbours.len()).sum();
        assert!((a.entries - a.port_entries) as usize >= in_tunnels, "{a:?}");
    }

    /// The config `tgw-perf run` gives tgw for `p`, as ctl parses it.
    fn tgw_config(p: &Profile) -> ctl::config::Config {
        let setup = crate::dut::Setup {
            dir: std::env::temp_dir(),
            sockets: ["/tmp/a.sock".into(), "/tmp/b.sock".into()],
            tgw: "tgw".into(),
            testpmd: "testpmd".into(),
            hugepages: false,
            main_lcore: 0,
            worker_lcore: 1,
            memif_devargs: String::new(),
        };
        let text = setup.tgw_base_config("t", true, "") + &p.tgw_sections();
        let cpus: ctl::config::CpuSet = "0-1".parse().unwrap();
        ctl::config::parse(&text, &format!("{}.toml", p.kind), &cpus).unwrap()
    }

    /// Every `new-flows` frame is a client never seen before, its IPv4
    /// checksum right, past the 2^24 - 1 addresses too; and tgw takes the
    /// config that recycles its flows.
    #[test]
    fn new_flows_frames_never_repeat_a_client() {
        let p = Profile {
            kind: Kind::NewFlows,
            flows: 1024,
            size: 64,
        };
        let template = &p.frames()[0];
        let mut seen = std::collections::HashSet::new();
        let around_the_addresses = (1u64 << 24) - 3..(1 << 24) + 3;
        for i in (0..1000).chain(around_the_addresses) {
            let mut f = template.clone();
            p.stamp(&mut f, i);
            let sliced = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = sliced.net else {
                panic!("not IPv4")
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "frame {i}");
            let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
                panic!("not UDP")
            };
            assert!(
                seen.insert((h.source, udp.source_port())),
                "frame {i} repeats"
            );
        }
        assert_eq!(p.flow_count(), None);
        let c = tgw_config(&p);
        assert_eq!((c.flows.capacity, c.flows.unreplied_s), (65_536, 1));
        let p = Profile {
            flows: 100_000,
            ..p
        };
        assert_eq!(
            tgw_config(&p).flows.capacity,
            400_000,
            "room for 100,000 a second"
        );
    }

    #[test]
    fn addresses_of_different_tenants_differ() {
        let hosts: std::collections::HashSet<_> = (0..64_000).map(host).collect();
        let publics: std::collections::HashSet<_> = (0..64_000).map(public).collect();
        assert_eq!((hosts.len(), publics.len()), (64_000, 64_000));
    }
}
