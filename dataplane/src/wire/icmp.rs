//! ICMP for IPv4 (RFC 792): the messages tgw answers, sends and translates.
//!
//! Echo request and reply; Destination Unreachable, with the next-hop MTU
//! of Fragmentation Needed (RFC 1191); Time Exceeded. An error message quotes
//! the IPv4 header and at least the first 8 bytes of the datagram that caused
//! it, which is what NAT rewrites when it translates the error (RFC 5508).

use super::checksum;
use super::ipv4::Ipv4Packet;
use super::{get_u16, put_u16, Error, Result};

mod field {
    use crate::wire::field::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const UNUSED: Field = 4..6;
    pub const NEXT_HOP_MTU: Field = 6..8;
    pub const DATA: usize = 8;
}

/// Length of the ICMP header for every message here.
pub const HEADER_LEN: usize = field::DATA;

/// An ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpType(pub u8);

impl IcmpType {
    /// Echo reply.
    pub const ECHO_REPLY: IcmpType = IcmpType(0);
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: IcmpType = IcmpType(3);
    /// Source quench (deprecated, RFC 6633), an error all the same.
    pub const SOURCE_QUENCH: IcmpType = IcmpType(4);
    /// Redirect.
    pub const REDIRECT: IcmpType = IcmpType(5);
    /// Echo request.
    pub const ECHO_REQUEST: IcmpType = IcmpType(8);
    /// Time exceeded.
    pub const TIME_EXCEEDED: IcmpType = IcmpType(11);
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: IcmpType = IcmpType(12);

    /// Whether this type is an error, quoting the datagram that caused it.
    pub fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }
}

/// Codes of Destination Unreachable.
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU.
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of Time Exceeded.
pub mod time_exceeded {
    /// TTL exceeded in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

/// A view of an ICMP message. The buffer must end where the message does (as
/// the IPv4 view's payload does), since the checksum covers all of it.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps a buffer, checking that the 8-byte header is there.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The type.
    #[inline]
    pub fn msg_type(&self) -> IcmpType {
        IcmpType(self.buffer.as_ref()[field::TYPE])
    }

    /// The code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The identifier of an echo message.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// The sequence number of an echo message.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The next-hop MTU of a Fragmentation Needed message (RFC 1191); zero
    /// from routers that predate it.
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// Whether this message is an error quoting a datagram.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// Whether the checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    /// What follows the header: the echo data, or the quoted datagram of an
    /// error.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The datagram quoted by an error message, as an IPv4 view whose payload
    /// ends where the quote does. `Unsupported` for a message that is not an
    /// error, and the IPv4 view's errors if the quote is not a valid header.
    #[inline]
    pub fn quoted_ipv4(&self) -> Result<Ipv4Packet<&[u8]>> {
        if !self.is_error() {
            return Err(Error::Unsupported);
        }
        Ipv4Packet::new_checked_quoted(self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, v: IcmpType) {
        self.buffer.as_mut()[field::TYPE] = v.0
    }

    /// Sets the code.
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }

    /// Sets the echo identifier, leaving the checksum alone.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, v)
    }

    /// Sets the echo sequence number, leaving the checksum alone.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, v)
    }

    /// Sets the next-hop MTU, leaving the checksum alone.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU.start, v)
    }

    /// Replaces the echo identifier, as NAT does for pings, updating the
    /// checksum incrementally; returns the old identifier. ICMP has no
    /// pseudo-header, so address rewrites elsewhere leave it alone.
    #[inline]
    pub fn rewrite_echo_ident(&mut self, v: u16) -> u16 {
        let old = self.echo_ident();
        let c = checksum::update_u16(self.checksum(), old, v);
        self.set_echo_ident(v);
        self.set_checksum(c);
        old
    }

    /// Computes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c)
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// The quoted datagram, writable, for error translation; see
    /// [`Self::quoted_ipv4`]. The ICMP checksum is the caller's to fix.
    #[inline]
    pub fn quoted_ipv4_mut(&mut self) -> Result<Ipv4Packet<&mut [u8]>> {
        if !self.is_error() {
            return Err(Error::Unsupported);
        }
        Ipv4Packet::new_checked_quoted(self.payload_mut())
    }
}

/// The ICMP messages tgw deals in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpMessage {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
    },
    /// Destination unreachable.
    DestUnreachable {
        /// See [`mod@unreachable`].
        code: u8,
        /// The next-hop MTU for [`unreachable::FRAG_NEEDED`]; otherwise zero.
        next_hop_mtu: u16,
    },
    /// Time exceeded.
    TimeExceeded {
        /// See [`mod@time_exceeded`].
        code: u8,
    },
}

/// An ICMP message header and the length of what follows it (echo data or
/// the quoted datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpRepr {
    /// The message.
    pub message: IcmpMessage,
    /// Bytes after the 8-byte header.
    pub payload_len: usize,
}

impl IcmpRepr {
    /// Reads a message header. Other types are unsupported. The checksum is
    /// not verified here (see [`IcmpPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &IcmpPacket<T>) -> Result<Self> {
        packet.check()?;
        let code = packet.msg_code();
        let message = match packet.msg_type() {
            IcmpType::ECHO_REQUEST => IcmpMessage::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
            },
            IcmpType::ECHO_REPLY => IcmpMessage::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
            },
            IcmpType::DEST_UNREACHABLE => IcmpMessage::DestUnreachable {
                code,
                next_hop_mtu: packet.next_hop_mtu(),
            },
            IcmpType::TIME_EXCEEDED => IcmpMessage::TimeExceeded { code },
            _ => return Err(Error::Unsupported),
        };
        Ok(IcmpRepr {
            message,
            payload_len: packet.payload().len(),
        })
    }

    /// The length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The length of the whole message.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header with a zero checksum; call
    /// [`IcmpPacket::fill_checksum`] once the payload is in place.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut IcmpPacket<T>) {
        let (ty, code, a, b) = match self.message {
            IcmpMessage::EchoRequest { ident, seq_no } => {
                (IcmpType::ECHO_REQUEST, 0, ident, seq_no)
            }
            IcmpMessage::EchoReply { ident, seq_no } => (IcmpType::ECHO_REPLY, 0, ident, seq_no),
            IcmpMessage::DestUnreachable { code, next_hop_mtu } => {
                (IcmpType::DEST_UNREACHABLE, code, 0, next_hop_mtu)
            }
            IcmpMessage::TimeExceeded { code } => (IcmpType::TIME_EXCEEDED, code, 0, 0),
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(code);
        packet.set_checksum(0);
        put_u16(packet.buffer.as_mut(), field::UNUSED.start, a);
        put_u16(packet.buffer.as_mut(), field::NEXT_HOP_MTU.start, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frag_needed_round_trip() {
        let repr = IcmpRepr {
            message: IcmpMessage::DestUnreachable {
                code: unreachable::FRAG_NEEDED,
                next_hop_mtu: 1476,
            },
            payload_len: 28,
        };
        let mut buf = [0u8; 36];
        // A quoted header: IHL 5, total length 1500, TCP.
        buf[8] = 0x45;
        buf[10..12].copy_from_slice(&1500u16.to_be_bytes());
        buf[17] = 6;
        let mut p = IcmpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.fill_checksum();
        let p = IcmpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1476);
        assert_eq!(IcmpRepr::parse(&p).unwrap(), repr);
        let q = p.quoted_ipv4().unwrap();
        assert_eq!(q.total_len(), 1500);
        assert_eq!(q.payload().len(), 8);
    }
}
