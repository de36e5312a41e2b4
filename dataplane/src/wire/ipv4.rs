//! IPv4 (RFC 791).

use super::checksum;
use super::{get_ipv4, get_u16, put_ipv4, put_u16, Error, IpProtocol, Ipv4Addr, Result};

mod field {
    use crate::wire::field::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// The flags and fragment offset word (RFC 791 §3.1), decoded: the one
/// place its bits are read, so that every reader agrees on what a
/// fragment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frag {
    /// Where this piece's data starts in the datagram, in bytes (the
    /// field counts 8-byte units).
    pub offset: u16,
    /// More Fragments: a later piece follows.
    pub more: bool,
    /// Don't Fragment.
    pub dont: bool,
}

impl Frag {
    /// Decodes the word at bytes 6–7 of the header.
    #[inline]
    pub const fn from_word(word: u16) -> Frag {
        Frag {
            offset: (word & OFFSET_MASK) << 3,
            more: word & FLAG_MF != 0,
            dont: word & FLAG_DF != 0,
        }
    }

    /// The fields of the header at the start of `ip`; `None` if it is too
    /// short to hold them.
    #[inline]
    pub fn of(ip: &[u8]) -> Option<Frag> {
        let word = ip.get(field::FLG_OFF)?;
        Some(Frag::from_word(u16::from_be_bytes([word[0], word[1]])))
    }

    /// The word to write at bytes 6–7 (`offset` a multiple of 8).
    #[inline]
    pub const fn word(self) -> u16 {
        let more = if self.more { FLAG_MF } else { 0 };
        let dont = if self.dont { FLAG_DF } else { 0 };
        dont | more | (self.offset >> 3)
    }

    /// A piece of a larger datagram (first, middle or last), not a whole
    /// datagram.
    #[inline]
    pub const fn is_fragment(self) -> bool {
        self.more || self.offset != 0
    }

    /// A piece after the first: it holds no transport header.
    #[inline]
    pub const fn is_later(self) -> bool {
        self.offset != 0
    }
}

/// IPv4 option types (the whole type byte: copied flag, class, number),
/// as IANA lists them.
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const RECORD_ROUTE: u8 = 7;
    pub const PROBE_MTU: u8 = 11;
    pub const REPLY_MTU: u8 = 12;
    pub const QUICK_START: u8 = 25;
    pub const TIMESTAMP: u8 = 68;
    pub const TRACEROUTE: u8 = 82;
    pub const BASIC_SECURITY: u8 = 130;
    pub const LOOSE_SOURCE_ROUTE: u8 = 131;
    pub const EXTENDED_SECURITY: u8 = 133;
    pub const CIPSO: u8 = 134;
    pub const STREAM_ID: u8 = 136;
    pub const STRICT_SOURCE_ROUTE: u8 = 137;
    pub const VISA: u8 = 142;
    pub const EXTENDED_IP: u8 = 145;
    pub const ADDRESS_EXTENSION: u8 = 147;
    pub const ROUTER_ALERT: u8 = 148;
    pub const MULTI_DESTINATION: u8 = 149;
    pub const DYNAMIC_PACKET_STATE: u8 = 151;
    pub const UPSTREAM_MULTICAST: u8 = 152;
}

/// One IPv4 option: its type byte and the bytes after type and length
/// (none for NOP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Iterates over the options of an IPv4 header (RFC 791 §3.1): the bytes
/// from 20 to the IHL. NOP is one byte; End of Option List ends the list
/// (what follows is padding); every other option has a length byte that
/// counts type and length. A length below 2 or past the header yields
/// one `Err(Malformed)` and ends the iteration. Each step consumes at
/// least one byte, so a list of at most 40 bytes takes at most 40 steps.
#[derive(Debug, Clone)]
pub struct Ipv4Options<'a> {
    rest: &'a [u8],
}

impl<'a> Ipv4Options<'a> {
    /// Iterates over raw option bytes.
    pub fn new(options: &'a [u8]) -> Self {
        Ipv4Options { rest: options }
    }
}

impl<'a> Iterator for Ipv4Options<'a> {
    type Item = Result<Ipv4Option<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = std::mem::take(&mut self.rest);
        let (kind, len) = match rest {
            [] | [option::END, ..] => return None,
            [option::NOP, tail @ ..] => {
                self.rest = tail;
                let nop = Ipv4Option {
                    kind: option::NOP,
                    data: &[],
                };
                return Some(Ok(nop));
            }
            [_] => return Some(Err(Error::Malformed)),
            [kind, len, ..] => (*kind, usize::from(*len)),
        };
        // `get(2..len)` is `None` for a length below 2 as for one past
        // the end: both leave `rest` empty, which ends the iteration.
        let Some(data) = rest.get(2..len) else {
            return Some(Err(Error::Malformed));
        };
        self.rest = &rest[len..];
        Some(Ok(Ipv4Option { kind, data }))
    }
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// short or the IHL field is wrong.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer, checking that it is version 4, that the header (with
    /// options) is all there and that the total length lies between the
    /// header length and the buffer length. The buffer may be longer than
    /// the total length (Ethernet padding); [`Self::payload`] ends at the
    /// total length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Wraps the datagram quoted in an ICMP error, which RFC 792 cuts after
    /// the first 8 bytes of its payload: the checks of [`Self::new_checked`]
    /// except that the buffer may end before the total length.
    /// [`Self::payload`] then gives what is there.
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        self.check_header()?;
        if usize::from(self.total_len()) > self.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The checks of [`Self::new_checked_quoted`].
    pub fn check_header(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        if usize::from(self.total_len()) < header_len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length field (IHL), in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// The header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The Differentiated Services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The Explicit Congestion Notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The flags and fragment offset.
    #[inline]
    pub fn frag(&self) -> Frag {
        Frag::from_word(get_u16(self.buffer.as_ref(), field::FLG_OFF.start))
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.frag().dont
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.frag().more
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.frag().offset
    }

    /// Whether this is a fragment: the flow fast path cannot see the ports of
    /// a non-first fragment and hands them all to the slow path.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        // The word tested under one mask: through `Frag`, whose offset is
        // shifted into bytes, it took six instructions to the mask's three.
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// The time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The payload's protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// Whether the header carries options.
    #[inline]
    pub fn has_options(&self) -> bool {
        self.ihl() > 5
    }

    /// The options, raw.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The options, one by one.
    #[inline]
    pub fn option_iter(&self) -> Ipv4Options<'_> {
        Ipv4Options::new(self.options())
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        checksum::fold(checksum::sum(&data[..self.header_len()])) == 0xffff
    }

    /// The range of the payload in the buffer: from the end of the header to
    /// the total length, or to the end of the buffer for a quoted datagram.
    #[inline]
    fn payload_range(&self) -> core::ops::Range<usize> {
        let start = self.header_len();
        let end = usize::from(self.total_len())
            .min(self.buffer.as_ref().len())
            .max(start);
        start..end
    }

    /// The payload, without any link-layer padding after the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let r = self.payload_range();
        &self.buffer.as_ref()[r]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version field.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP.
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (v << 2);
    }

    /// Sets the ECN bits.
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (v & 0x03);
    }

    /// Sets the total length field.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH.start, v)
    }

    /// Sets the identification field.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT.start, v)
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let raw = get_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        let raw = if on { raw | flag } else { raw & !flag };
        put_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw)
    }

    /// Sets the Don't Fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on)
    }

    /// Sets the More Fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on)
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let raw = get_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        let raw = (raw & !OFFSET_MASK) | (bytes >> 3);
        put_u16(self.buffer.as_mut(), field::FLG_OFF.start, raw)
    }

    /// Sets the time to live, leaving the checksum alone.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.0
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }

    /// Sets the source address, leaving the checksum alone.
    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        put_ipv4(self.buffer.as_mut(), field::SRC_ADDR.start, v)
    }

    /// Sets the destination address, leaving the checksum alone.
    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        put_ipv4(self.buffer.as_mut(), field::DST_ADDR.start, v)
    }

    /// Computes the header checksum over the whole header, options included.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c)
    }

    /// Decrements the TTL and updates the checksum incrementally (RFC 1624),
    /// returning the new TTL. A TTL of 0 is left alone and gives `None`: a
    /// router must not forward it, and wrapping to 255 would loop forever.
    ///
    /// Callers send Time Exceeded for a TTL of 1 or less before forwarding;
    /// this only makes the impossible case harmless.
    #[inline]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.ttl();
        let new = ttl.checked_sub(1)?;
        // TTL and protocol share the 16-bit word at offset 8.
        let proto = self.buffer.as_ref()[field::PROTOCOL];
        let c = checksum::update_u16(
            self.checksum(),
            u16::from_be_bytes([ttl, proto]),
            u16::from_be_bytes([new, proto]),
        );
        self.set_ttl(new);
        self.set_checksum(c);
        Some(new)
    }

    /// Replaces the source address, updating the header checksum
    /// incrementally, and returns the old address so that the caller can fix
    /// the TCP or UDP checksum, which covers it through the pseudo-header.
    #[inline]
    pub fn rewrite_src_addr(&mut self, new: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        let c = checksum::update_addr(self.checksum(), old, new);
        self.set_src_addr(new);
        self.set_checksum(c);
        old
    }

    /// [`Self::rewrite_src_addr`] for the destination address.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, new: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        let c = checksum::update_addr(self.checksum(), old, new);
        self.set_dst_addr(new);
        self.set_checksum(c);
        old
    }

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = self.payload_range();
        &mut self.buffer.as_mut()[r]
    }
}

/// An IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length: total length minus header length.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Differentiated Services code point.
    pub dscp: u8,
    /// ECN bits.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Reads a header. Options are accepted and left out: nothing in tgw
    /// acts on them, and `emit` never writes any. The checksum is not
    /// verified here (see [`Ipv4Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        packet.check()?;
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// The length of the header `emit` writes (never any options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The total length of the packet.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header and its checksum.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(self.buffer_len() <= usize::from(u16::MAX));
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        packet.set_total_len(self.buffer_len() as u16);
        packet.set_ident(self.ident);
        put_u16(packet.buffer.as_mut(), field::FLG_OFF.start, 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1.1.1.7 -> 2.2.2.11, TCP, TTL 64, DF, 4 bytes of payload, 2 of padding.
    static PACKET: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 1, 1, 1, 7, 2, 2,
        2, 11, 0xde, 0xad, 0xbe, 0xef, 0, 0,
    ];

    fn packet() -> [u8; 26] {
        let mut b = PACKET;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn decode() {
        let b = packet();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.dont_frag() && !p.is_fragment() && !p.has_options());
        assert_eq!(p.protocol(), IpProtocol::TCP);
    }

    #[test]
    fn ttl_zero_is_refused() {
        let mut b = packet();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_ttl(1);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl(), Some(0));
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!(p.ttl(), 0);
        assert!(p.verify_checksum());
    }

    /// Options written by hand from RFC 791 §3.1: NOP, Router Alert
    /// (RFC 2113: 148, length 4, value 0), a Record Route with room for one
    /// address, End of Option List and padding that is not read.
    #[test]
    fn options_one_by_one() {
        let bytes = [1, 148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0xee, 0xee, 0xee];
        let got: Vec<_> = Ipv4Options::new(&bytes).collect();
        assert_eq!(
            got,
            [
                Ok(Ipv4Option {
                    kind: option::NOP,
                    data: &[]
                }),
                Ok(Ipv4Option {
                    kind: option::ROUTER_ALERT,
                    data: &[0, 0]
                }),
                Ok(Ipv4Option {
                    kind: option::RECORD_ROUTE,
                    data: &[4, 0, 0, 0, 0]
                }),
            ]
        );
        // In a header: IHL 9 (16 bytes of options).
        let mut b = [0u8; 36];
        b[..20].copy_from_slice(&PACKET[..20]);
        b[0] = 0x49;
        b[3] = 36;
        b[20..].copy_from_slice(&bytes);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.option_iter().count(), 3);
    }

    /// A length below 2, a length past the end, and a type byte with no
    /// length: one error each, then nothing more.
    #[test]
    fn malformed_options_end_the_list() {
        for bytes in [&[7, 0, 1, 1][..], &[1, 7, 9, 4, 0], &[1, 1, 1, 68]] {
            let got: Vec<_> = Ipv4Options::new(bytes).collect();
            assert_eq!(got.last(), Some(&Err(Error::Malformed)), "{bytes:?}");
            assert!(got[..got.len() - 1].iter().all(|o| o.is_ok()));
        }
        // Forty NOPs: forty steps, no more.
        assert_eq!(Ipv4Options::new(&[1; 40]).count(), 40);
    }

    #[test]
    fn lengths() {
        let b = packet();
        let mut short = b;
        short[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&short[..]).err(),
            Some(Error::Malformed)
        );
        let mut long = b;
        long[3] = 27;
        assert_eq!(
            Ipv4Packet::new_checked(&long[..]).err(),
            Some(Error::Truncated)
        );
        assert!(Ipv4Packet::new_checked_quoted(&long[..]).is_ok());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).err(),
            Some(Error::Truncated)
        );
    }
}
