//! The flow table's view of a packet: its 5-tuple, and what of its TCP
//! header the connection learns. The one tuple parser, for the full path,
//! the fast path's header pass (`pipeline/hit.rs`'s `Plain`) and ICMP
//! errors' quotes.

use super::{opens, Scales};
use crate::flow::{FlowKey, Zone};
use crate::wire::tcp::{TcpFlags, TcpOption, TcpPacket};
use crate::wire::{IpProtocol, Ipv4Packet};

/// What the flow table knows of a packet: its 5-tuple (an ICMP echo's
/// identifier stands for both ports, RFC 5508 REQ-1) and whether it may
/// open a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub protocol: u8,
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub flags: TcpFlags,
    /// TCP sequence and acknowledgment numbers (0 otherwise).
    pub seq: u32,
    pub ack: u32,
    /// A TCP SYN's Window Scale shift, [`Scales::NONE`] without one (and
    /// for anything but a SYN).
    pub wscale: u8,
    /// A TCP SYN, any UDP datagram, an ICMP echo request, any packet of a
    /// protocol without ports.
    pub opens: bool,
}

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

impl Tuple {
    /// Reads an IPv4 packet whose header was validated. `None` for what
    /// flows do not track: ICMP other than echo, and transport headers too
    /// short to hold what is read here. Protocols without ports (GRE, ESP,
    /// SCTP, …) are tracked by protocol and addresses, ports 0, as Linux's
    /// generic tracker does: an elastic IP stands for its host whatever
    /// the protocol, and the firewall decides their flows like any other.
    pub fn parse(ip: &[u8]) -> Option<Tuple> {
        Self::read(ip, false)
    }

    /// `quoted`: the datagram is an ICMP error's quote, of which only the
    /// first 8 transport bytes are sure to be there (no TCP flags). The one
    /// tuple parser, with [`Tuple::with_transport`].
    fn read(ip: &[u8], quoted: bool) -> Option<Tuple> {
        let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
        let header = Ipv4Packet::new_unchecked(h);
        // A later fragment has no transport header to read.
        if header.frag().is_later() {
            return None;
        }
        let (src, dst) = (u32::from(header.src_addr()), u32::from(header.dst_addr()));
        let l4 = ip.get(header.header_len()..)?;
        Self::with_transport(header.protocol().0, src, dst, l4, quoted)
    }

    /// The transport part of [`Tuple::read`], for a packet of `protocol`
    /// from `src` to `dst` whose transport header starts `l4`: the flow-hit
    /// fast path, which checks the IPv4 header its own way, reads its
    /// tuple here too (`pipeline/hit.rs`). Each header is taken as a
    /// fixed-size array once, so that its fields cost no bounds checks.
    #[inline(always)]
    pub(crate) fn with_transport(
        protocol: u8,
        src: u32,
        dst: u32,
        l4: &[u8],
        quoted: bool,
    ) -> Option<Tuple> {
        let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let be32 =
            |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let (mut seq, mut ack, mut wscale) = (0, 0, Scales::NONE);
        let (sport, dport, flags, opens) = match IpProtocol(protocol) {
            IpProtocol::TCP => {
                // Through the flags byte: ports, sequence, acknowledgment.
                let flags = match l4.get(..14) {
                    Some(tcp) => {
                        let tcp: &[u8; 14] = tcp.try_into().ok()?;
                        (seq, ack) = (be32(tcp, 4), be32(tcp, 8));
                        let flags = TcpFlags::from_byte(tcp[13]);
                        if flags.intersects(TcpFlags::SYN) {
                            wscale = window_scale(l4);
                        }
                        flags
                    }
                    None if quoted => TcpFlags::empty(),
                    None => return None,
                };
                let ports: &[u8; 4] = l4.get(..4)?.try_into().ok()?;
                (be16(ports, 0), be16(ports, 2), flags, opens(flags))
            }
            IpProtocol::UDP => {
                let udp: &[u8; 4] = l4.get(..4)?.try_into().ok()?;
                (be16(udp, 0), be16(udp, 2), TcpFlags::empty(), true)
            }
            IpProtocol::ICMP => {
                let icmp: &[u8; 6] = l4.get(..6)?.try_into().ok()?;
                let opens = match icmp[0] {
                    ICMP_ECHO_REQUEST => true,
                    ICMP_ECHO_REPLY => false,
                    _ => return None,
                };
                let id = be16(icmp, 4);
                (id, id, TcpFlags::empty(), opens)
            }
            _ => (0, 0, TcpFlags::empty(), true),
        };
        Some(Tuple {
            protocol,
            src,
            dst,
            sport,
            dport,
            flags,
            seq,
            ack,
            wscale,
            opens,
        })
    }

    /// For an ICMP error (RFC 792 types 3, 4, 5, 11, 12) in IPv4 packet
    /// `ip`: the tuple of the datagram it quotes (at least its IPv4 header
    /// and 8 bytes, RFC 1812 4.3.2.3), and where that quote starts in
    /// `ip`. `None` for anything else.
    pub fn parse_quoted(ip: &[u8]) -> Option<(Tuple, usize)> {
        if *ip.get(9)? != IpProtocol::ICMP.0 {
            return None;
        }
        let ihl = usize::from(*ip.first()? & 0xf) * 4;
        if !crate::wire::icmp::IcmpType(*ip.get(ihl)?).is_error() {
            return None;
        }
        let at = ihl + 8;
        let quoted = ip.get(at..)?;
        let qihl = usize::from(*quoted.first()? & 0xf) * 4;
        if qihl < 20 || quoted.len() < qihl + 8 {
            return None;
        }
        let tuple = Tuple::read(quoted, true)?;
        Some((tuple, at))
    }

    /// A later fragment's tuple, with the ports its first fragment had.
    pub fn of_fragment(ip: &[u8], sport: u16, dport: u16) -> Option<Tuple> {
        let addr = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(ip.get(at..at + 4)?.try_into().ok()?))
        };
        Some(Tuple {
            protocol: *ip.get(9)?,
            src: addr(12)?,
            dst: addr(16)?,
            sport,
            dport,
            flags: TcpFlags::empty(),
            seq: 0,
            ack: 0,
            wscale: Scales::NONE,
            opens: false,
        })
    }

    /// The packet as its tenant's rules see it once translated toward
    /// the tenant: to `dst`, port `dport`.
    pub fn seen(&self, dst: u32, dport: u16) -> Tuple {
        Tuple {
            dst,
            dport,
            ..*self
        }
    }

    /// The packet's key in `zone`.
    pub fn key(&self, zone: Zone) -> FlowKey {
        FlowKey::new(
            zone,
            self.protocol,
            self.src,
            self.sport,
            self.dst,
            self.dport,
        )
    }

    /// The key of the answers, as they arrive in `zone`: from `replier`
    /// back to `to`, the ports turned around.
    pub fn reply_key(&self, zone: Zone, replier: u32, to: u32) -> FlowKey {
        FlowKey::new(zone, self.protocol, replier, self.dport, to, self.sport)
    }
}

/// The Window Scale option's shift in TCP segment `tcp`, if its options
/// are well formed up to it; [`Scales::NONE`] otherwise.
fn window_scale(tcp: &[u8]) -> u8 {
    let Ok(packet) = TcpPacket::new_checked(tcp) else {
        return Scales::NONE;
    };
    let found = packet.options().find_map(|o| match o {
        Ok((_, TcpOption::WindowScale(shift))) => Some(shift.min(Scales::MAX)),
        Ok(_) => None,
        Err(_) => Some(Scales::NONE),
    });
    found.unwrap_or(Scales::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syns_window_scale_is_read_from_its_options() {
        // RFC 9293 §3.1 header, options MSS 1460, NOP, WS 15 (read as 14).
        let mut tcp = [0u8; 28];
        tcp[12] = 7 << 4;
        tcp[13] = 0x02; // SYN
        tcp[20..28].copy_from_slice(&[2, 4, 5, 0xb4, 1, 3, 3, 15]);
        assert_eq!(window_scale(&tcp), Scales::MAX);
        tcp[25] = 9; // an unknown kind, length 3: no scale
        assert_eq!(window_scale(&tcp), Scales::NONE);
        tcp[24] = 0; // end of options before it
        tcp[25] = 3;
        assert_eq!(window_scale(&tcp), Scales::NONE);
    }
}
