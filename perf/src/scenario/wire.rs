//! What tcpdump saw: pcap files read back and decoded by hand at byte
//! offsets (RFC 791, 826, 2784/2890), independently of tgw's parsers.

use std::net::Ipv4Addr;
use std::path::Path;

use pcap_file::pcap::PcapReader;

/// Every frame of a pcap file, in order, as captured (cut at tcpdump's
/// snap length). Raw records: pcap-file's checked ones refuse a frame
/// longer on the wire than the snap length, which is every full-size one.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = PcapReader::new(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut frames = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        match p {
            Ok(p) => frames.push(p.data.into_owned()),
            // tcpdump stopped mid-write: what came before is whole.
            Err(_) => break,
        }
    }
    Ok(frames)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tpa: Ipv4Addr,
}

#[derive(Debug, Clone, Copy)]
pub struct Ipv4<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub protocol: u8,
    /// What follows the header, up to the total length or as much of it
    /// as was captured (tcpdump keeps the first 200 bytes of a frame).
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
pub enum Packet<'a> {
    Arp(Arp),
    Ipv4(Ipv4<'a>),
    Other,
}

/// The Ethernet frame's payload, decoded one level.
pub fn parse(frame: &[u8]) -> Option<Packet<'_>> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let body = &frame[14..];
    Some(match ethertype {
        0x0806 => Packet::Arp(arp(body)?),
        0x0800 => Packet::Ipv4(ipv4(body)?),
        _ => Packet::Other,
    })
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

pub fn arp(b: &[u8]) -> Option<Arp> {
    if b.len() < 28 || b[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let mut sha = [0; 6];
    sha.copy_from_slice(&b[8..14]);
    Some(Arp {
        op: u16::from_be_bytes([b[6], b[7]]),
        sha,
        spa: addr(&b[14..18]),
        tpa: addr(&b[24..28]),
    })
}

pub fn ipv4(b: &[u8]) -> Option<Ipv4<'_>> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if ihl < 20 || total < ihl || ihl > b.len() {
        return None;
    }
    Some(Ipv4 {
        src: addr(&b[12..16]),
        dst: addr(&b[16..20]),
        ttl: b[8],
        protocol: b[9],
        payload: &b[ihl..total.min(b.len())],
    })
}

/// Every IPv4 address a packet names: ARP sender and target, IPv4 source
/// and destination, and those of the header an ICMP error quotes.
pub fn addresses(p: &Packet) -> Vec<Ipv4Addr> {
    match p {
        Packet::Arp(a) => vec![a.spa, a.tpa],
        Packet::Ipv4(ip) => {
            let mut v = vec![ip.src, ip.dst];
            let quoted = ip.protocol == 1
                && matches!(ip.payload.first(), Some(3 | 4 | 5 | 11 | 12))
                && ip.payload.len() >= 8 + 20;
            if quoted {
                v.push(addr(&ip.payload[8 + 12..8 + 16]));
                v.push(addr(&ip.payload[8 + 16..8 + 20]));
            }
            v
        }
        Packet::Other => Vec::new(),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Gre<'a> {
    /// The first 16 bits: C, K, S, the reserved bits and the version.
    pub flags: u16,
    pub protocol: u16,
    pub key: Option<u32>,
    pub inner: &'a [u8],
}

/// A GRE header (RFC 2784 with the key and sequence of RFC 2890).
pub fn gre(b: &[u8]) -> Option<Gre<'_>> {
    let flags = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let protocol = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    let mut at = 4;
    if flags & 0x8000 != 0 {
        at += 4;
    }
    let key = if flags & 0x2000 != 0 {
        let k = b.get(at..at + 4)?;
        at += 4;
        Some(u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
    } else {
        None
    };
    if flags & 0x1000 != 0 {
        at += 4;
    }
    Some(Gre {
        flags,
        protocol,
        key,
        inner: b.get(at..)?,
    })
}

/// An ICMP echo request (8) or reply (0) in `ip`: (type, identifier,
/// sequence).
pub fn echo(ip: &Ipv4) -> Option<(u8, u16, u16)> {
    let p = ip.payload;
    if ip.protocol != 1 || p.len() < 8 || !matches!(p[0], 0 | 8) {
        return None;
    }
    Some((
        p[0],
        u16::from_be_bytes([p[4], p[5]]),
        u16::from_be_bytes([p[6], p[7]]),
    ))
}

/// A TCP segment's ports and flags (the low byte: FIN 0x01, SYN 0x02,
/// RST 0x04, ACK 0x10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
}

impl Tcp {
    /// A connection's first segment: SYN without ACK.
    pub fn is_syn(&self) -> bool {
        self.flags & 0x12 == 0x02
    }
}

/// The TCP header in `ip`, as far as its ports and flags.
pub fn tcp(ip: &Ipv4) -> Option<Tcp> {
    let p = ip.payload;
    if ip.protocol != 6 || p.len() < 14 {
        return None;
    }
    Some(Tcp {
        sport: u16::from_be_bytes([p[0], p[1]]),
        dport: u16::from_be_bytes([p[2], p[3]]),
        flags: p[13],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_cut_at_the_snap_length_still_decodes() {
        let mut ip = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 47, 0, 0];
        ip.extend_from_slice(&[172, 168, 0, 1, 172, 168, 0, 11]);
        ip.extend_from_slice(&[0x20, 0, 0x65, 0x58, 0, 0, 0x07, 0xd0]);
        ip.resize(200 - 14, 0);
        let ip = ipv4(&ip).expect("1500 bytes on the wire, 186 captured");
        assert_eq!((ip.src, ip.dst, ip.payload.len()), (GW, HOST1, 166));
        assert_eq!(gre(ip.payload).unwrap().key, Some(2000));
    }

    #[test]
    fn decodes_a_syn() {
        let mut b = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        b.extend_from_slice(&[1, 1, 1, 7, 2, 2, 2, 11]);
        b.extend_from_slice(&[0xc3, 0x50, 0, 23, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
        b.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        let ip = ipv4(&b).unwrap();
        let t = tcp(&ip).unwrap();
        assert_eq!((t.sport, t.dport, t.is_syn()), (50000, 23, true));
        assert!(
            !Tcp { flags: 0x12, ..t }.is_syn(),
            "a SYN+ACK opens nothing"
        );
    }

    const GW: Ipv4Addr = Ipv4Addr::new(172, 168, 0, 1);
    const HOST1: Ipv4Addr = Ipv4Addr::new(172, 168, 0, 11);

    #[test]
    fn decodes_gre_around_an_icmp_error() {
        // Outer IPv4 + GRE(K, 0x6558, key 1000) + Ethernet + IPv4 ICMP
        // time exceeded quoting 10.0.0.7 -> 1.1.1.7.
        let quoted = [
            0x45, 0, 0, 28, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 0, 7, 1, 1, 1, 7, 0, 1, 0, 2, 0, 8, 0,
            0,
        ];
        let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let mut inner_ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 63, 1, 0, 0, 2, 2, 2, 11, 1, 1, 1, 7,
        ];
        let len = (inner_ip.len() + icmp.len()) as u16;
        inner_ip[2..4].copy_from_slice(&len.to_be_bytes());
        inner_ip.extend_from_slice(&icmp);
        let mut inner = vec![0xff; 12];
        inner.extend_from_slice(&[8, 0]);
        inner.extend_from_slice(&inner_ip);
        let mut g = vec![0x20, 0, 0x65, 0x58, 0, 0, 0x03, 0xe8];
        g.extend_from_slice(&inner);
        let gre = gre(&g).unwrap();
        assert_eq!((gre.key, gre.protocol), (Some(1000), 0x6558));
        let p = parse(gre.inner).unwrap();
        let Packet::Ipv4(ip) = p else { panic!("{p:?}") };
        assert_eq!(ip.ttl, 63);
        assert_eq!(
            addresses(&p),
            [
                Ipv4Addr::new(2, 2, 2, 11),
                Ipv4Addr::new(1, 1, 1, 7),
                Ipv4Addr::new(10, 0, 0, 7),
                Ipv4Addr::new(1, 1, 1, 7)
            ]
        );
    }
}
