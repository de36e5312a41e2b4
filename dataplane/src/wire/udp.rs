//! UDP (RFC 768).
//!
//! A checksum field of zero means the sender computed none; it must stay zero
//! through NAT (there is nothing to update), and a computed checksum of zero
//! is sent as 0xffff so that it is not mistaken for none.

use super::checksum::{self, Delta};
use super::{get_u16, put_u16, Error, IpProtocol, Ipv4Addr, Result};

mod field {
    use crate::wire::field::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// short or the length field is wrong.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer, checking that the length field lies between the header
    /// length and the buffer length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header and payload.
    #[inline]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the datagram carries no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field; zero when the sender computed none.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The datagram as the length field bounds it.
    #[inline]
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.len()).min(data.len());
        &data[..end]
    }

    /// Whether the checksum verifies against the pseudo-header; true when the
    /// sender computed none.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0
            || checksum::verify_transport(src, dst, IpProtocol::UDP, self.datagram())
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.len()).min(data.len()).max(HEADER_LEN);
        &data[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port, leaving the checksum alone.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT.start, v)
    }

    /// Sets the destination port, leaving the checksum alone.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT.start, v)
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }

    /// Computes the checksum over the pseudo-header and the datagram, sending
    /// a computed zero as 0xffff.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::transport(src, dst, IpProtocol::UDP, self.datagram());
        self.set_checksum(checksum::udp_final(c))
    }

    /// Applies a precomputed change (addresses of the pseudo-header, ports)
    /// to the checksum, leaving a zero checksum alone.
    #[inline]
    pub fn apply_checksum_delta(&mut self, delta: Delta) {
        let c = delta.apply_udp(self.checksum());
        self.set_checksum(c)
    }

    /// Replaces the source port, updating the checksum; returns the old port.
    #[inline]
    pub fn rewrite_src_port(&mut self, v: u16) -> u16 {
        let old = self.src_port();
        self.apply_checksum_delta(Delta::new().add_u16(old, v));
        self.set_src_port(v);
        old
    }

    /// Replaces the destination port, updating the checksum; returns the old
    /// port.
    #[inline]
    pub fn rewrite_dst_port(&mut self, v: u16) -> u16 {
        let old = self.dst_port();
        self.apply_checksum_delta(Delta::new().add_u16(old, v));
        self.set_dst_port(v);
        old
    }

    /// Fixes the checksum for an address of the pseudo-header changing from
    /// `old` to `new` (after [`super::Ipv4Packet::rewrite_src_addr`]).
    #[inline]
    pub fn update_checksum_for_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.apply_checksum_delta(Delta::new().add_addr(old, new))
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.len()).min(len).max(HEADER_LEN);
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a header. The checksum is not verified here (see
    /// [`UdpPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<Self> {
        packet.check()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The length of the datagram.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header with a zero ("none") checksum; call
    /// [`UdpPacket::fill_checksum`] once the payload is in place.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        debug_assert!(self.buffer_len() <= usize::from(u16::MAX));
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(self.buffer_len() as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rule() {
        let src = Ipv4Addr::new(10, 0, 0, 7);
        let dst = Ipv4Addr::new(1, 1, 1, 7);
        // Choose two payload bytes so that the computed checksum is zero.
        let mut buf = [0u8; 10];
        let repr = UdpRepr {
            src_port: 1000,
            dst_port: 53,
            payload_len: 2,
        };
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]));
        let c = checksum::transport(src, dst, IpProtocol::UDP, &buf);
        // Adding !c as payload word brings the sum to 0xffff: checksum 0.
        buf[8..10].copy_from_slice(&c.to_be_bytes());
        let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum(src, dst);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(src, dst));
    }
}
