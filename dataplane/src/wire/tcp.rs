//! TCP (RFC 9293) headers, their options, and MSS clamping.
//!
//! tgw does not terminate TCP; it reads ports and flags for the flow table and
//! firewall, rewrites ports for NAT, and lowers the MSS a SYN advertises so
//! that segments still fit the path once the GRE overhead is added.

use core::ops::{BitAnd, BitOr, BitOrAssign};

use super::checksum::{self, Delta};
use super::{get_u16, get_u32, put_u16, put_u32, Error, IpProtocol, Ipv4Addr, Result};

mod field {
    use crate::wire::field::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Length of a header with every option word in use.
pub const MAX_HEADER_LEN: usize = 60;

mod opt {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERM: u8 = 4;
    pub const TSTAMP: u8 = 8;
}

/// The TCP flags, NS included, as the low 9 bits of the data offset word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (RFC 3540, historic).
    pub const NS: TcpFlags = TcpFlags(0x100);

    const MASK: u16 = 0x1ff;

    /// No flag.
    pub const fn empty() -> Self {
        TcpFlags(0)
    }

    /// The flags in the header's 14th byte: all but NS, which is the low
    /// bit of the 13th (what a reader that needs no NS takes alone).
    pub const fn from_byte(byte: u8) -> Self {
        TcpFlags(byte as u16)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

/// A TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// Padding between options.
    NoOp,
    /// Maximum segment size.
    Mss(u16),
    /// Window scale shift.
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// Timestamps.
    Timestamps {
        /// The sender's clock.
        tsval: u32,
        /// The echoed clock.
        tsecr: u32,
    },
    /// Any other option (SACK blocks, TCP-AO, experiments...), raw.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The bytes after kind and length.
        data: &'a [u8],
    },
}

/// Iterates over the options of a TCP header, each with the offset of its
/// kind byte from the start of the header, so that an option can be
/// rewritten in place.
///
/// Stops at the end-of-list option or the end of the options. An option whose
/// length is impossible (below 2, past the header, or wrong for its kind)
/// yields one `Err(Malformed)` and ends the iteration.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> TcpOptions<'a> {
    /// Iterates over raw option bytes (the header from byte 20 to the data
    /// offset).
    pub fn new(data: &'a [u8]) -> Self {
        TcpOptions {
            data,
            pos: 0,
            done: false,
        }
    }

    fn fail(&mut self) -> Option<Result<(usize, TcpOption<'a>)>> {
        self.done = true;
        Some(Err(Error::Malformed))
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<(usize, TcpOption<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let at = self.pos;
        let rest = self.data.get(at..).unwrap_or(&[]);
        let (kind, len) = match rest {
            [] | [opt::END, ..] => {
                self.done = true;
                return None;
            }
            [opt::NOP, ..] => {
                self.pos += 1;
                return Some(Ok((HEADER_LEN + at, TcpOption::NoOp)));
            }
            [_] => return self.fail(),
            [kind, len, ..] => (*kind, usize::from(*len)),
        };
        let Some(body) = rest.get(2..len) else {
            return self.fail();
        };
        let option = match (kind, body) {
            (opt::MSS, [a, b]) => TcpOption::Mss(u16::from_be_bytes([*a, *b])),
            (opt::WS, [s]) => TcpOption::WindowScale(*s),
            (opt::SACK_PERM, []) => TcpOption::SackPermitted,
            (opt::TSTAMP, [a, b, c, d, e, f, g, h]) => TcpOption::Timestamps {
                tsval: u32::from_be_bytes([*a, *b, *c, *d]),
                tsecr: u32::from_be_bytes([*e, *f, *g, *h]),
            },
            (opt::MSS | opt::WS | opt::SACK_PERM | opt::TSTAMP, _) => return self.fail(),
            (kind, data) => TcpOption::Unknown { kind, data },
        };
        self.pos += len;
        Some(Ok((HEADER_LEN + at, option)))
    }
}

/// A view of a TCP segment. The buffer must end where the segment does (as
/// the IPv4 view's payload does), since the checksum covers all of it.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is
    /// short or the data offset is wrong.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer, checking that the data offset is at least 5 words and
    /// that the header it describes, options included, is all there.
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
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
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

    /// The sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// The acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// The data offset field, in 32-bit words.
    #[inline]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS.start] >> 4
    }

    /// The header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(get_u16(self.buffer.as_ref(), field::FLAGS.start) & TcpFlags::MASK)
    }

    /// The FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// The SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// The RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// The PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags().contains(TcpFlags::PSH)
    }

    /// The ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// The URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags().contains(TcpFlags::URG)
    }

    /// The ECE flag.
    #[inline]
    pub fn ece(&self) -> bool {
        self.flags().contains(TcpFlags::ECE)
    }

    /// The CWR flag.
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags().contains(TcpFlags::CWR)
    }

    /// The NS flag.
    #[inline]
    pub fn ns(&self) -> bool {
        self.flags().contains(TcpFlags::NS)
    }

    /// The window field, unscaled.
    #[inline]
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The urgent pointer.
    #[inline]
    pub fn urgent_ptr(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The options, raw.
    #[inline]
    pub fn options_raw(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The options, parsed.
    #[inline]
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options_raw())
    }

    /// The MSS option's value and the offset of its kind byte, if the options
    /// up to it are well formed.
    pub fn mss_option(&self) -> Option<(usize, u16)> {
        self.options().find_map(|o| match o {
            Ok((at, TcpOption::Mss(mss))) => Some(Some((at, mss))),
            Ok(_) => None,
            Err(_) => Some(None),
        })?
    }

    /// Whether the checksum verifies against the pseudo-header.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::verify_transport(src, dst, IpProtocol::TCP, self.buffer.as_ref())
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::SEQ_NUM.start, v)
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        put_u32(self.buffer.as_mut(), field::ACK_NUM.start, v)
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::FLAGS.start];
        *b = (*b & 0x0f) | (((len / 4) as u8) << 4);
    }

    /// Sets the flags, keeping the data offset.
    #[inline]
    pub fn set_flags(&mut self, v: TcpFlags) {
        let raw = get_u16(self.buffer.as_ref(), field::FLAGS.start);
        let raw = (raw & !TcpFlags::MASK) | (v.0 & TcpFlags::MASK);
        put_u16(self.buffer.as_mut(), field::FLAGS.start, raw)
    }

    /// Sets the window field.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::WIN_SIZE.start, v)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, v)
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_ptr(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::URGENT.start, v)
    }

    /// Computes the checksum over the pseudo-header and the whole segment.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::transport(src, dst, IpProtocol::TCP, self.buffer.as_ref());
        self.set_checksum(c)
    }

    /// Applies a precomputed change (addresses of the pseudo-header, ports)
    /// to the checksum.
    #[inline]
    pub fn apply_checksum_delta(&mut self, delta: Delta) {
        let c = delta.apply(self.checksum());
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

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// Lowers the MSS a SYN advertises to `max_mss`, updating the checksum
/// incrementally, and returns whether it did.
///
/// Nothing changes for a segment without SYN, without an MSS option (the
/// default of 536 is below any MTU tgw runs on), with an MSS already small
/// enough, or with options malformed before the MSS.
pub fn clamp_mss<T: AsRef<[u8]> + AsMut<[u8]>>(packet: &mut TcpPacket<T>, max_mss: u16) -> bool {
    if !packet.syn() {
        return false;
    }
    let Some((at, mss)) = packet.mss_option() else {
        return false;
    };
    if mss <= max_mss {
        return false;
    }
    let value_at = at + 2;
    // The checksum sums 16-bit words at even offsets; after an odd number of
    // NOPs the value straddles two words, where it counts byte-swapped.
    let (old, new) = if value_at % 2 == 0 {
        (mss, max_mss)
    } else {
        (mss.swap_bytes(), max_mss.swap_bytes())
    };
    let c = checksum::update_u16(packet.checksum(), old, new);
    put_u16(packet.buffer.as_mut(), value_at, max_mss);
    packet.set_checksum(c);
    true
}

/// A TCP header whose only option, if any, is the MSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window, unscaled.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_ptr: u16,
    /// The MSS option.
    pub max_seg_size: Option<u16>,
    /// Payload length.
    pub payload_len: usize,
}

impl TcpRepr {
    /// Reads a header. Of the options only the MSS is kept; malformed options
    /// are an error. The checksum is not verified here (see
    /// [`TcpPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> Result<Self> {
        packet.check()?;
        let mut max_seg_size = None;
        for o in packet.options() {
            if let (_, TcpOption::Mss(mss)) = o? {
                max_seg_size = Some(mss);
            }
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_ptr: packet.urgent_ptr(),
            max_seg_size,
            payload_len: packet.payload().len(),
        })
    }

    /// The length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + if self.max_seg_size.is_some() { 4 } else { 0 }
    }

    /// The length of the segment.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header with a zero checksum; call
    /// [`TcpPacket::fill_checksum`] once the payload is in place.
    ///
    /// # Panics
    /// If the buffer is shorter than [`Self::header_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        put_u16(packet.buffer.as_mut(), field::FLAGS.start, 0);
        packet.set_header_len(self.header_len());
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_ptr(self.urgent_ptr);
        if let Some(mss) = self.max_seg_size {
            let o = packet.options_mut();
            o[0] = opt::MSS;
            o[1] = 4;
            put_u16(o, 2, mss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_iterate_with_offsets() {
        // NOP, MSS 1460, WS 7, NOP, NOP, SACK-perm, EOL.
        let o = [1, 2, 4, 0x05, 0xb4, 3, 3, 7, 1, 1, 4, 2, 0];
        let got: Vec<_> = TcpOptions::new(&o).collect();
        assert_eq!(
            got,
            vec![
                Ok((20, TcpOption::NoOp)),
                Ok((21, TcpOption::Mss(1460))),
                Ok((25, TcpOption::WindowScale(7))),
                Ok((28, TcpOption::NoOp)),
                Ok((29, TcpOption::NoOp)),
                Ok((30, TcpOption::SackPermitted)),
            ]
        );
    }

    #[test]
    fn malformed_options_stop() {
        for o in [
            &[2u8, 3, 0][..],
            &[2, 0],
            &[2],
            &[8, 12, 0, 0],
            &[0x22, 1, 0, 0],
        ] {
            let got: Vec<_> = TcpOptions::new(o).collect();
            assert_eq!(got, vec![Err(Error::Malformed)], "{o:?}");
        }
    }
}
