//! ARP for IPv4 over Ethernet (RFC 826), the only kind tgw answers.
//!
//! With hardware and protocol address lengths fixed at 6 and 4 the fields sit
//! at fixed offsets, so [`ArpPacket::new_checked`] refuses anything else
//! rather than let the accessors read the wrong bytes.

use super::{
    get_ipv4, get_mac, get_u16, put_ipv4, put_mac, put_u16, Error, EtherType, Ipv4Addr, MacAddr,
    Result,
};

mod field {
    use crate::wire::field::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// ARP hardware type for Ethernet.
const HTYPE_ETHERNET: u16 = 1;

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// Who has `target_protocol_addr`?
    pub const REQUEST: ArpOperation = ArpOperation(1);
    /// `source_protocol_addr` is at `source_hardware_addr`.
    pub const REPLY: ArpOperation = ArpOperation(2);
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// short.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer, checking its length and that it is Ethernet/IPv4 ARP.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != EtherType::IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// The protocol type (IPv4).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::PTYPE.start))
    }

    /// The hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(get_u16(self.buffer.as_ref(), field::OPER.start))
    }

    /// The sender's hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::SHA.start)
    }

    /// The sender's protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::SPA.start)
    }

    /// The target's hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::THA.start)
    }

    /// The target's protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::HTYPE.start, v)
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        put_u16(self.buffer.as_mut(), field::PTYPE.start, v.0)
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, v: ArpOperation) {
        put_u16(self.buffer.as_mut(), field::OPER.start, v.0)
    }

    /// Sets the sender's hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, v: MacAddr) {
        put_mac(self.buffer.as_mut(), field::SHA.start, v)
    }

    /// Sets the sender's protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, v: Ipv4Addr) {
        put_ipv4(self.buffer.as_mut(), field::SPA.start, v)
    }

    /// Sets the target's hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, v: MacAddr) {
        put_mac(self.buffer.as_mut(), field::THA.start, v)
    }

    /// Sets the target's protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, v: Ipv4Addr) {
        put_ipv4(self.buffer.as_mut(), field::TPA.start, v)
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request, reply, or another code (kept so that it can be counted).
    pub operation: ArpOperation,
    /// Sender's hardware address.
    pub source_hardware_addr: MacAddr,
    /// Sender's protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target's hardware address (zero in a request).
    pub target_hardware_addr: MacAddr,
    /// Target's protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an ARP packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self> {
        packet.check()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The reply that `hardware_addr` sends to this request: who asked gets
    /// told, and learns nothing else.
    pub fn reply(&self, hardware_addr: MacAddr) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::REPLY,
            source_hardware_addr: hardware_addr,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }

    /// The length of the packet `emit` writes.
    pub const fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// The same as [`Self::header_len`]: ARP has no payload.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than [`PACKET_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // eth/ipv4, request
        0x02, 0, 0, 0, 0, 0x07, 1, 1, 1, 7, // sender
        0, 0, 0, 0, 0, 0, 2, 2, 2, 11, // target
    ];

    #[test]
    fn decode_and_reply() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, ArpOperation::REQUEST);
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(1, 1, 1, 7));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(2, 2, 2, 11));
        let mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
        let reply = r.reply(mac);
        let mut buf = [0u8; PACKET_LEN];
        reply.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        let back = ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.target_hardware_addr, MacAddr([2, 0, 0, 0, 0, 7]));
    }

    #[test]
    fn refuses_other_kinds() {
        let mut b = REQUEST;
        b[4] = 8;
        assert_eq!(
            ArpPacket::new_checked(&b[..]).err(),
            Some(Error::Unsupported)
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );
    }
}
