//! Zero-copy header views and checksums.
//!
//! Every header comes at two levels, after smoltcp:
//!
//! - a view, `XxxPacket<T: AsRef<[u8]>>` (`EthernetFrame` for Ethernet), that
//!   reads and writes fields in place at byte offsets. `new_checked` validates
//!   every length the header itself declares (IHL, TCP data offset, GRE flags,
//!   IPv4 total length, UDP length...), after which no accessor can panic,
//!   whatever the bytes say. `new_unchecked` skips that for buffers the caller
//!   has just sized itself (emitting into fresh headroom).
//! - a small, always-valid `XxxRepr` with `parse` and `emit`, for the slow
//!   path: answering ARP and ICMP, building the precomputed outer headers.
//!
//! Fields are read with `from_be_bytes` at offsets, never by casting to packed
//! structs: mbuf data has no alignment guarantee and an unaligned reference is
//! undefined behaviour.
//!
//! Checksums covering a payload (ICMP, UDP, TCP, GRE) are not computed by
//! `emit`, because the payload is usually written after the header; call the
//! view's `fill_checksum` once it is in place, or leave it to the NIC.
//! Likewise `parse` checks structure only: whether to verify a checksum in
//! software is the caller's decision, from the offload flags of the mbuf.
//!
//! Nothing here allocates, and errors are a `Copy` enum.

use core::fmt;

pub use core::net::Ipv4Addr;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::Delta as ChecksumDelta;
pub use ethernet::{EthernetFrame, EthernetRepr};
pub use gre::{GrePacket, GreRepr};
pub use icmp::{IcmpMessage, IcmpPacket, IcmpRepr};
pub use ipv4::{Frag, Ipv4Packet, Ipv4Repr};
pub use tcp::{clamp_mss, TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer was refused. Small and `Copy` so that the drop path of a
/// non-matching packet costs nothing; the pipeline maps it to a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length the header
    /// declares.
    Truncated,
    /// A field holds a value the protocol forbids (IHL < 5, UDP length < 8,
    /// reserved GRE bits set, a TCP option overrunning the header...).
    Malformed,
    /// Well formed, but not something tgw handles (GRE version 1, a second
    /// VLAN tag, ARP over something other than Ethernet/IPv4...).
    Unsupported,
    /// A checksum did not verify.
    BadChecksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Unsupported => "unsupported packet",
            Error::BadChecksum => "bad checksum",
        })
    }
}

impl std::error::Error for Error {}

/// The result of parsing a header.
pub type Result<T> = core::result::Result<T, Error>;

/// An EtherType, as found in Ethernet, VLAN tags, ARP and GRE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// Transparent Ethernet bridging: an Ethernet frame inside GRE (gretap).
    pub const TRANSPARENT_ETHERNET_BRIDGING: EtherType = EtherType(0x6558);
    /// IEEE 802.1Q VLAN tag (C-tag).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// IEEE 802.1ad service tag (S-tag, QinQ).
    pub const QINQ: EtherType = EtherType(0x88a8);
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

/// An IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMP for IPv4.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// TCP.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP.
    pub const UDP: IpProtocol = IpProtocol(17);
    /// GRE.
    pub const GRE: IpProtocol = IpProtocol(47);
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

/// An Ethernet (EUI-48) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, as in the target hardware address of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address as bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Whether the group bit is set (multicast, broadcast included).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (unicast) address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(v: [u8; 6]) -> Self {
        MacAddr(v)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Byte ranges of header fields.
pub(crate) mod field {
    pub type Field = core::ops::Range<usize>;
}

// The accessors below index the buffer directly: the views only call them at
// offsets their `check_len` has validated, so a panic here means a bug in a
// view, never a hostile packet.

#[inline]
pub(crate) fn get_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[inline]
pub(crate) fn get_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[inline]
pub(crate) fn put_u16(data: &mut [u8], at: usize, v: u16) {
    data[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn get_ipv4(data: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3])
}

#[inline]
pub(crate) fn put_ipv4(data: &mut [u8], at: usize, v: Ipv4Addr) {
    data[at..at + 4].copy_from_slice(&v.octets());
}

#[inline]
pub(crate) fn get_mac(data: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&data[at..at + 6]);
    MacAddr(m)
}

#[inline]
pub(crate) fn put_mac(data: &mut [u8], at: usize, v: MacAddr) {
    data[at..at + 6].copy_from_slice(&v.0);
}
