//! GRE (RFC 2784) with the key and sequence number extensions (RFC 2890).
//!
//! The key names the tenant, so everything about the header's length hangs
//! on the flags: C adds checksum + reserved1, K the key, S the sequence
//! number, four bytes each and in that order. Version 1 (PPTP's enhanced
//! GRE) and the RFC 1701 routing bits are refused as unsupported, as RFC 2784
//! tells a receiver that does not implement RFC 1701 to do.

use super::checksum;
use super::{get_u16, get_u32, put_u16, put_u32, Error, EtherType, Result};

mod field {
    use crate::wire::field::Field;

    pub const FLAGS_VERSION: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
    /// The optional words start here, each present or not by its flag.
    pub const OPTIONAL: usize = 4;
}

/// Length of the header with no optional words.
pub const MIN_HEADER_LEN: usize = field::OPTIONAL;

const FLAG_C: u8 = 0x80;
const FLAG_K: u8 = 0x20;
const FLAG_S: u8 = 0x10;
/// RFC 2784 bits 1, 4 and 5 (RFC 1701's routing present, strict source
/// route, and the top bit of the recursion control): RFC 2784 requires a
/// receiver to discard the packet when any is set.
const MUST_BE_ZERO: u8 = 0x40 | 0x08 | 0x04;
const VERSION_MASK: u8 = 0x07;

/// A view of a GRE packet.
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// shorter than the flags say.
    pub const fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// Wraps a buffer, checking that the version is 0, that no RFC 1701 bit
    /// is set, and that the header the flags describe is all there.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 0 || data[0] & MUST_BE_ZERO != 0 {
            return Err(Error::Unsupported);
        }
        if data.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS_VERSION.start]
    }

    /// The C bit: checksum and reserved1 present.
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_C != 0
    }

    /// The K bit: key present.
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags() & FLAG_K != 0
    }

    /// The S bit: sequence number present.
    #[inline]
    pub fn seq_present(&self) -> bool {
        self.flags() & FLAG_S != 0
    }

    /// The version field (0 for every packet `new_checked` accepts).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS_VERSION.start + 1] & VERSION_MASK
    }

    /// The payload's protocol type: an EtherType.
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::PROTOCOL.start))
    }

    #[inline]
    fn key_offset(&self) -> usize {
        field::OPTIONAL + if self.checksum_present() { 4 } else { 0 }
    }

    #[inline]
    fn seq_offset(&self) -> usize {
        self.key_offset() + if self.key_present() { 4 } else { 0 }
    }

    /// The header length: 4 plus 4 for each of C, K and S.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.seq_offset() + if self.seq_present() { 4 } else { 0 }
    }

    /// The checksum field, if present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        if self.checksum_present() {
            Some(get_u16(self.buffer.as_ref(), field::OPTIONAL))
        } else {
            None
        }
    }

    /// The reserved1 field that follows the checksum, if present.
    #[inline]
    pub fn reserved1(&self) -> Option<u16> {
        if self.checksum_present() {
            Some(get_u16(self.buffer.as_ref(), field::OPTIONAL + 2))
        } else {
            None
        }
    }

    /// The key, if present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        if self.key_present() {
            Some(get_u32(self.buffer.as_ref(), self.key_offset()))
        } else {
            None
        }
    }

    /// The sequence number, if present.
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        if self.seq_present() {
            Some(get_u32(self.buffer.as_ref(), self.seq_offset()))
        } else {
            None
        }
    }

    /// Whether the checksum, which covers the GRE header and payload, verifies
    /// (true when there is none). The buffer must end where the GRE packet
    /// does, as the IPv4 view's payload does.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    /// The payload: an Ethernet frame or an IPv4 packet, per
    /// [`Self::protocol_type`].
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        put_u16(self.buffer.as_mut(), field::PROTOCOL.start, v.0)
    }

    /// Sets the key. Adding one would move the payload, which is the
    /// frame's business: without the K bit this returns `false` and changes
    /// nothing.
    #[inline]
    pub fn set_key(&mut self, v: u32) -> bool {
        if !self.key_present() {
            return false;
        }
        let at = self.key_offset();
        put_u32(self.buffer.as_mut(), at, v);
        true
    }

    /// Sets the sequence number; `false`, and no change, without the S bit.
    #[inline]
    pub fn set_sequence(&mut self, v: u32) -> bool {
        if !self.seq_present() {
            return false;
        }
        let at = self.seq_offset();
        put_u32(self.buffer.as_mut(), at, v);
        true
    }

    /// Computes the checksum over the header and payload; `false`, and no
    /// change, without the C bit.
    #[inline]
    pub fn fill_checksum(&mut self) -> bool {
        if !self.checksum_present() {
            return false;
        }
        put_u16(self.buffer.as_mut(), field::OPTIONAL, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        put_u16(self.buffer.as_mut(), field::OPTIONAL, c);
        true
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// A GRE header carrying what tgw tunnels: Ethernet (gretap) or IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// [`EtherType::TRANSPARENT_ETHERNET_BRIDGING`] or [`EtherType::IPV4`].
    pub protocol: EtherType,
    /// Whether the checksum is present.
    pub checksum: bool,
    /// The key: the tenant.
    pub key: Option<u32>,
    /// The sequence number.
    pub sequence: Option<u32>,
}

impl GreRepr {
    /// Reads a header. Payloads other than Ethernet and IPv4 are unsupported.
    /// The checksum is not verified here (see [`GrePacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &GrePacket<T>) -> Result<Self> {
        packet.check()?;
        let protocol = packet.protocol_type();
        if protocol != EtherType::TRANSPARENT_ETHERNET_BRIDGING && protocol != EtherType::IPV4 {
            return Err(Error::Unsupported);
        }
        Ok(GreRepr {
            protocol,
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// The length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
            + if self.checksum { 4 } else { 0 }
            + if self.key.is_some() { 4 } else { 0 }
            + if self.sequence.is_some() { 4 } else { 0 }
    }

    /// The length of a GRE packet with `payload_len` bytes of payload.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header. A checksum field is written as zero; call
    /// [`GrePacket::fill_checksum`] once the payload is in place.
    ///
    /// # Panics
    /// If the buffer is shorter than [`Self::header_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GrePacket<T>) {
        let mut flags = 0u8;
        if self.checksum {
            flags |= FLAG_C;
        }
        if self.key.is_some() {
            flags |= FLAG_K;
        }
        if self.sequence.is_some() {
            flags |= FLAG_S;
        }
        let data = packet.buffer.as_mut();
        data[0] = flags;
        data[1] = 0;
        let mut at = field::OPTIONAL;
        if self.checksum {
            put_u32(data, at, 0);
            at += 4;
        }
        if let Some(key) = self.key {
            put_u32(data, at, key);
            at += 4;
        }
        if let Some(seq) = self.sequence {
            put_u32(data, at, seq);
        }
        packet.set_protocol_type(self.protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_only() {
        // K set, gretap, key 1000, then a payload byte.
        let b = [0x20, 0x00, 0x65, 0x58, 0, 0, 0x03, 0xe8, 0xaa];
        let p = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.key(), Some(1000));
        assert_eq!(p.sequence(), None);
        assert_eq!(p.checksum(), None);
        assert_eq!(p.payload(), &[0xaa]);
        let r = GreRepr::parse(&p).unwrap();
        let mut out = [0u8; 9];
        out[8] = 0xaa;
        r.emit(&mut GrePacket::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    /// C, K and S together (RFC 2784 §2.5, RFC 2890 §2), with an odd
    /// payload: the checksum, worked by hand, covers the header (its own
    /// field as zero) and the payload padded with a zero byte.
    #[test]
    fn checksum_key_and_sequence() {
        // 0xb000 + 0x6558 + 0x03e8 + 0x0007 + 0xaa00 = 0x1c347 -> 0xc348,
        // whose complement is 0x3cb7.
        let mut b = [
            0xb0, 0x00, 0x65, 0x58, 0x3c, 0xb7, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 7, 0xaa,
        ];
        let p = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.checksum(), Some(0x3cb7));
        assert_eq!(p.key(), Some(1000));
        assert_eq!(p.sequence(), Some(7));
        assert_eq!(p.payload(), &[0xaa]);
        assert!(p.verify_checksum());
        b[16] ^= 1;
        assert!(!GrePacket::new_checked(&b[..]).unwrap().verify_checksum());
        // fill_checksum writes what the hand computed.
        b[16] ^= 1;
        b[4..6].fill(0);
        let mut p = GrePacket::new_unchecked(&mut b[..]);
        assert!(p.fill_checksum());
        assert_eq!(p.checksum(), Some(0x3cb7));
    }

    /// RFC 2784 §2.3: bits 6-12 are reserved, sent as zero and ignored on
    /// receipt; bits 1, 4 and 5 make a receiver without RFC 1701 discard.
    #[test]
    fn reserved_bits_are_ignored_and_rfc1701_bits_refused() {
        let reserved = [0x23, 0xf8, 0x65, 0x58, 0, 0, 0x03, 0xe8];
        let p = GrePacket::new_checked(&reserved[..]).unwrap();
        assert_eq!((p.key(), p.version()), (Some(1000), 0));
        for bit in [0x40, 0x08, 0x04] {
            let b = [0x20 | bit, 0x00, 0x65, 0x58, 0, 0, 0x03, 0xe8];
            assert_eq!(
                GrePacket::new_checked(&b[..]).err(),
                Some(Error::Unsupported),
                "{bit:#x}"
            );
        }
    }

    #[test]
    fn refusals() {
        let v1 = [0x20, 0x01, 0x88, 0x0b, 0, 0, 0, 0];
        assert_eq!(
            GrePacket::new_checked(&v1[..]).err(),
            Some(Error::Unsupported)
        );
        let routing = [0x40, 0x00, 0x08, 0x00];
        assert_eq!(
            GrePacket::new_checked(&routing[..]).err(),
            Some(Error::Unsupported)
        );
        let short = [0xb0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            GrePacket::new_checked(&short[..]).err(),
            Some(Error::Truncated)
        );
        let other = [0x00, 0x00, 0x86, 0xdd];
        let p = GrePacket::new_checked(&other[..]).unwrap();
        assert_eq!(GreRepr::parse(&p).err(), Some(Error::Unsupported));
    }
}
