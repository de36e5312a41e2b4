//! Ethernet II, with at most one IEEE 802.1Q tag.
//!
//! tgw's ports carry untagged or singly tagged frames. QinQ and 802.3 length
//! frames are refused by [`EthernetFrame::new_checked`] as unsupported, so
//! the pipeline never mistakes a tag or a length for the payload's
//! EtherType.

use super::{get_mac, get_u16, put_mac, put_u16, Error, EtherType, MacAddr, Result};

mod field {
    use crate::wire::field::Field;

    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    /// The EtherType of an untagged frame, or the TPID of a tagged one.
    pub const TYPE_OR_TPID: Field = 12..14;
    pub const TCI: Field = 14..16;
    pub const INNER_TYPE: Field = 16..18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::TYPE_OR_TPID.end;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const TAGGED_HEADER_LEN: usize = field::INNER_TYPE.end;

/// The smallest value of the type field that is an EtherType rather than an
/// 802.3 length.
const MIN_ETHERTYPE: u16 = 0x0600;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// short. For buffers the caller has just sized, as when emitting.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer, checking that the header is all there and is Ethernet
    /// II with no more than one 802.1Q tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check()?;
        Ok(f)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let outer = get_u16(data, field::TYPE_OR_TPID.start);
        if outer == EtherType::QINQ.0 {
            return Err(Error::Unsupported);
        }
        let ethertype = if outer == EtherType::VLAN.0 {
            if data.len() < TAGGED_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let inner = get_u16(data, field::INNER_TYPE.start);
            if inner == EtherType::VLAN.0 || inner == EtherType::QINQ.0 {
                return Err(Error::Unsupported);
            }
            inner
        } else {
            outer
        };
        if ethertype < MIN_ETHERTYPE {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::DST.start)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::SRC.start)
    }

    /// Whether the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::TYPE_OR_TPID.start) == EtherType::VLAN.0
    }

    /// The tag control information (PCP, DEI, VLAN id) if tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.is_tagged() {
            Some(get_u16(self.buffer.as_ref(), field::TCI.start))
        } else {
            None
        }
    }

    /// The 12-bit VLAN id if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The EtherType of the payload (after the tag, if any).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let at = if self.is_tagged() {
            field::INNER_TYPE.start
        } else {
            field::TYPE_OR_TPID.start
        };
        EtherType(get_u16(self.buffer.as_ref(), at))
    }

    /// The header length: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Where the payload starts in the frame; the same as
    /// [`Self::header_len`].
    #[inline]
    pub fn payload_offset(&self) -> usize {
        self.header_len()
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, v: MacAddr) {
        put_mac(self.buffer.as_mut(), field::DST.start, v)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, v: MacAddr) {
        put_mac(self.buffer.as_mut(), field::SRC.start, v)
    }

    /// Sets the payload's EtherType, after the tag if there is one.
    #[inline]
    pub fn set_ethertype(&mut self, v: EtherType) {
        let at = if self.is_tagged() {
            field::INNER_TYPE.start
        } else {
            field::TYPE_OR_TPID.start
        };
        put_u16(self.buffer.as_mut(), at, v.0)
    }

    /// Sets the tag control information. Adding or removing a tag changes the
    /// frame length, which is the frame's business, not the view's: on an
    /// untagged frame this returns `false` and changes nothing.
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) -> bool {
        if !self.is_tagged() {
            return false;
        }
        put_u16(self.buffer.as_mut(), field::TCI.start, tci);
        true
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// An Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: MacAddr,
    /// Destination address.
    pub dst_addr: MacAddr,
    /// The 802.1Q tag control information, if tagged.
    pub vlan_tci: Option<u16>,
    /// The payload's EtherType.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        frame.check()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan_tci: frame.vlan_tci(),
            ethertype: frame.ethertype(),
        })
    }

    /// The length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        if self.vlan_tci.is_some() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The length of a frame with this header and `payload_len` bytes of
    /// payload.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header.
    ///
    /// # Panics
    /// If the buffer is shorter than [`Self::header_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        let data = frame.buffer.as_mut();
        put_mac(data, field::DST.start, self.dst_addr);
        put_mac(data, field::SRC.start, self.src_addr);
        match self.vlan_tci {
            Some(tci) => {
                put_u16(data, field::TYPE_OR_TPID.start, EtherType::VLAN.0);
                put_u16(data, field::TCI.start, tci);
                put_u16(data, field::INNER_TYPE.start, self.ethertype.0);
            }
            None => put_u16(data, field::TYPE_OR_TPID.start, self.ethertype.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TAGGED: [u8; 20] = [
        0x02, 0, 0, 0, 0, 0x01, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x81, 0x00, 0x20, 0x64, // tag: PCP 1, VLAN 100
        0x08, 0x00, // IPv4
        0xaa, 0xbb,
    ];

    #[test]
    fn decode_tagged() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.vlan_tci(), Some(0x2064));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn encode_tagged() {
        let repr = EthernetRepr::parse(&EthernetFrame::new_checked(&TAGGED[..]).unwrap()).unwrap();
        let mut buf = [0u8; 20];
        buf[18..].copy_from_slice(&[0xaa, 0xbb]);
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        assert_eq!(buf, TAGGED);
    }

    #[test]
    fn refuses_qinq_and_8023() {
        let mut b = TAGGED;
        b[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&b[..]).err(),
            Some(Error::Unsupported)
        );
        let mut b = TAGGED;
        b[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(
            EthernetFrame::new_checked(&b[..]).err(),
            Some(Error::Unsupported)
        );
        let mut b = TAGGED;
        b[12..14].copy_from_slice(&[0x00, 0x40]);
        assert_eq!(
            EthernetFrame::new_checked(&b[..]).err(),
            Some(Error::Unsupported)
        );
    }
}
