//! Datagrams too big for their next hop and without DF are cut into
//! fragments (RFC 791 §3.2, RFC 1812 §5.2.6): a router must, or a 3000-byte
//! ping without DF to an elastic IP gets no answer.
//!
//! One frame in, several out: that needs new buffers, which the workers
//! have no way to take. So the worker finishes the packet as if it fitted
//! (translated, TTL decremented, tunnel header in front) and punts it with
//! [`Punt::Fragment`](crate::punt::Punt::Fragment); the control plane cuts
//! it with [`split`], each piece in a new buffer behind a copy of the
//! headers in front, and sends them through the inject ring, as it sends
//! the frames the resolver held. Oversized datagrams without DF are rare
//! (path MTU discovery sets DF), so a slow path is enough; it is bounded by
//! [`Budget`], per tenant and per worker, and by the punt ring.

use crate::ratelimit::TokenBucket;
use crate::resolver::Io;
use crate::wire::{ethernet, Frag, GrePacket, IpProtocol, Ipv4Packet};
use crate::Frame;

use super::MAX_FRAGMENTS;

const ETH: usize = ethernet::HEADER_LEN;
/// Datagrams one tenant may have cut per second on one worker, and its
/// burst.
pub const TENANT_RATE: u32 = 2000;
pub const TENANT_BURST: u32 = 32;
/// Datagrams all tenants together may have cut per second on one worker,
/// and their burst: the punt ring also carries ARP.
pub const WORKER_RATE: u32 = 10_000;
pub const WORKER_BURST: u32 = 64;
/// The smallest MTU a piece is cut for (RFC 791: every host takes 68).
pub const MIN_MTU: u16 = 68;

/// How many oversized datagrams a worker may punt to be cut: a token
/// bucket per tenant (tenants past the ones counted apart share one) and
/// one for the worker.
#[derive(Debug)]
pub struct Budget {
    worker: TokenBucket,
    tenants: Box<[TokenBucket]>,
}

impl Budget {
    pub fn new(tenants: usize, hz: u64) -> Self {
        Budget {
            worker: TokenBucket::new(WORKER_RATE, WORKER_BURST, hz),
            tenants: (0..=tenants)
                .map(|_| TokenBucket::new(TENANT_RATE, TENANT_BURST, hz))
                .collect(),
        }
    }

    /// Tenants counted apart.
    pub fn tenants(&self) -> usize {
        self.tenants.len() - 1
    }

    /// Takes a token for `tenant`'s datagram at `now`, if both it and the
    /// worker have one. A tenant's token goes back when the worker has
    /// none: what others use up of the worker's must not spend its own.
    pub fn take(&mut self, tenant: u32, now: u64) -> bool {
        let last = self.tenants.len() - 1;
        let tenant = &mut self.tenants[(tenant as usize).min(last)];
        if !tenant.take(now) {
            return false;
        }
        if !self.worker.take(now) {
            tenant.give_back();
            return false;
        }
        true
    }
}

/// Why a punted datagram was not cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// Not an IPv4 packet without DF behind `prefix` (with an option list
    /// that parses), or an MTU no piece fits, or more pieces than a
    /// datagram may have.
    Malformed,
    /// No buffer for a piece.
    NoFrame,
}

/// Cuts the IPv4 packet that follows `prefix` bytes of headers in `f` into
/// pieces of at most `mtu` bytes and sends each out of `port` behind a copy
/// of the headers. The first piece keeps the packet's header; the others
/// carry only the options whose copied flag is set (RFC 791 §3.1). A
/// prefix longer than Ethernet is a tunnel's: its outer IPv4 header (right
/// after Ethernet) gets each piece's length, its own identification and
/// checksum, and a GRE header's checksum, if it has one, is computed again
/// over the piece. Returns the pieces sent.
pub fn split<F: Frame>(
    f: &F,
    port: u16,
    prefix: usize,
    mtu: u16,
    io: &mut impl Io<F>,
) -> Result<usize, SplitError> {
    use SplitError::Malformed;
    let data = f.data();
    let (head, ip) = data.split_at_checked(prefix).ok_or(Malformed)?;
    let inner = Ipv4Packet::new_checked(ip).map_err(|_| Malformed)?;
    let ihl = inner.header_len();
    if inner.dont_frag() || mtu < MIN_MTU {
        return Err(Malformed);
    }
    let total = usize::from(inner.total_len());
    let payload = ip.get(ihl..total).ok_or(Malformed)?;
    // The header of every piece but the first.
    let mut later = [0u8; 60];
    let later_len = 20 + copied_options(&ip[20..ihl], &mut later[20..])?;
    later[..20].copy_from_slice(&ip[..20]);
    later[0] = 0x40 | (later_len / 4) as u8;
    let frag = inner.frag();
    let (base, more) = (usize::from(frag.offset), frag.more);
    // Every piece but the last carries a multiple of 8 bytes.
    let room = |hlen: usize| usize::from(mtu).saturating_sub(hlen) / 8 * 8;
    let (first_chunk, chunk) = (room(ihl), room(later_len));
    if first_chunk == 0 || chunk == 0 || base + payload.len() > 0xffff {
        return Err(Malformed);
    }
    let pieces = 1 + payload.len().saturating_sub(first_chunk).div_ceil(chunk);
    if pieces > usize::from(MAX_FRAGMENTS) {
        return Err(Malformed);
    }
    let outer = prefix > ETH && head.len() >= ETH + 20;
    let mut at = 0;
    for k in 0..pieces {
        let (hdr, room) = if k == 0 {
            (&ip[..ihl], first_chunk)
        } else {
            (&later[..later_len], chunk)
        };
        let part = &payload[at..(at + room).min(payload.len())];
        let mut g = io.alloc().ok_or(SplitError::NoFrame)?;
        let len = prefix + hdr.len() + part.len();
        let out = g.append(len).ok_or(SplitError::NoFrame)?;
        out[..prefix].copy_from_slice(head);
        let last = k + 1 == pieces;
        let piece = Frag {
            offset: (base + at) as u16,
            more: !last || more,
            dont: false,
        };
        let piece_ip = &mut out[prefix..];
        piece_ip[..hdr.len()].copy_from_slice(hdr);
        piece_ip[2..4].copy_from_slice(&((hdr.len() + part.len()) as u16).to_be_bytes());
        piece_ip[6..8].copy_from_slice(&piece.word().to_be_bytes());
        piece_ip[hdr.len()..].copy_from_slice(part);
        Ipv4Packet::new_unchecked(&mut piece_ip[..hdr.len()]).fill_checksum();
        if outer {
            let o = &mut out[ETH..ETH + 20];
            let id = u16::from_be_bytes([o[4], o[5]]).wrapping_add(k as u16);
            o[2..4].copy_from_slice(&((len - ETH) as u16).to_be_bytes());
            o[4..6].copy_from_slice(&id.to_be_bytes());
            let gre = o[9] == IpProtocol::GRE.0;
            Ipv4Packet::new_unchecked(o).fill_checksum();
            // A GRE checksum covers the payload (RFC 2784 §2.1): the one
            // copied with the headers was the whole datagram's.
            if gre {
                GrePacket::new_unchecked(&mut out[ETH + 20..]).fill_checksum();
            }
        }
        io.send(port, g);
        at += part.len();
    }
    Ok(pieces)
}

/// Writes the options of `list` whose copied flag is set into `out`,
/// padded with End of Option List to a multiple of 4 bytes; their length.
fn copied_options(list: &[u8], out: &mut [u8]) -> Result<usize, SplitError> {
    const END: u8 = 0;
    const NOP: u8 = 1;
    const COPIED: u8 = 0x80;
    let (mut i, mut n) = (0, 0);
    while let Some(&kind) = list.get(i) {
        let len = match kind {
            END => break,
            NOP => 1,
            _ => usize::from(*list.get(i + 1).ok_or(SplitError::Malformed)?),
        };
        let option = list
            .get(i..i + len)
            .filter(|_| len >= 1 && (kind == NOP || len >= 2))
            .ok_or(SplitError::Malformed)?;
        if kind & COPIED != 0 {
            out.get_mut(n..n + len)
                .ok_or(SplitError::Malformed)?
                .copy_from_slice(option);
            n += len;
        }
        i += len;
    }
    let padded = n.div_ceil(4) * 4;
    out.get_mut(n..padded)
        .ok_or(SplitError::Malformed)?
        .fill(END);
    Ok(padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecFrame;
    use etherparse::Ipv4Header;

    #[derive(Default)]
    struct Out {
        sent: Vec<(u16, Vec<u8>)>,
        frames: usize,
    }

    impl Io<VecFrame> for Out {
        fn alloc(&mut self) -> Option<VecFrame> {
            self.frames = self.frames.checked_sub(1)?;
            Some(VecFrame::new(&[], 0))
        }

        fn send(&mut self, port: u16, f: VecFrame) {
            self.sent.push((port, f.data().to_vec()));
        }
    }

    /// Ethernet, then a fragment at `offset` (bytes) of 100 payload bytes,
    /// MF as `more`, DF as `df`, written by hand (RFC 791).
    fn frame(offset: u16, more: bool, df: bool) -> VecFrame {
        let mut h = Ipv4Header::new(
            100,
            64,
            etherparse::IpNumber(17),
            [1, 1, 1, 7],
            [10, 0, 0, 7],
        )
        .unwrap();
        h.identification = 0x1234;
        h.dont_fragment = df;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new(offset / 8).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut bytes = vec![0xee; ETH];
        h.write(&mut bytes).unwrap();
        bytes.extend((0..100u8).collect::<Vec<_>>());
        VecFrame::new(&bytes, 0)
    }

    /// Tenants that use up the worker's budget do not spend another's:
    /// a tenant refused for want of the worker's token keeps its own.
    #[test]
    fn a_tenant_refused_by_the_workers_budget_keeps_its_own() {
        const HZ: u64 = 1_000_000;
        let mut b = Budget::new(8, HZ);
        // Five tenants at their burst take the worker's (64) and more.
        let taken = (0..5u32)
            .map(|t| (0..TENANT_BURST).filter(|_| b.take(t, 0)).count())
            .sum::<usize>();
        assert_eq!(taken, WORKER_BURST as usize);
        // Tenant 7 is refused as long as the worker has nothing...
        for _ in 0..100 {
            assert!(!b.take(7, 0));
        }
        // ...and when the worker has earned a burst's tokens again (3.2 ms,
        // in which a tenant earns 6), its own are whole.
        let later = HZ * u64::from(TENANT_BURST) / u64::from(WORKER_RATE);
        let got = (0..WORKER_BURST).filter(|_| b.take(7, later)).count();
        assert_eq!(got, TENANT_BURST as usize);
    }

    #[test]
    fn a_fragment_is_cut_into_pieces_that_keep_its_place() {
        let mut out = Out {
            frames: 10,
            ..Out::default()
        };
        // A middle fragment at 800 bytes, cut for 68 bytes (48 a piece).
        assert_eq!(split(&frame(800, true, false), 3, ETH, 68, &mut out), Ok(3));
        let mut payload = Vec::new();
        for (i, (port, p)) in out.sent.iter().enumerate() {
            assert_eq!(*port, 3);
            assert_eq!(p[..ETH], [0xee; ETH], "the headers in front copied");
            let (h, rest) = Ipv4Header::from_slice(&p[ETH..]).unwrap();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert!(usize::from(h.total_len) <= 68);
            assert_eq!(usize::from(h.total_len), 20 + rest.len());
            assert_eq!(h.identification, 0x1234);
            assert!(
                h.more_fragments,
                "more follow every piece of a middle fragment"
            );
            assert_eq!(usize::from(h.fragment_offset.value()) * 8, 800 + i * 48);
            payload.extend_from_slice(rest);
        }
        assert_eq!(payload, (0..100u8).collect::<Vec<_>>());

        // The last fragment's last piece ends the datagram.
        let mut out = Out {
            frames: 10,
            ..Out::default()
        };
        assert_eq!(split(&frame(0, false, false), 0, ETH, 68, &mut out), Ok(3));
        let last = Ipv4Header::from_slice(&out.sent[2].1[ETH..]).unwrap().0;
        assert!(!last.more_fragments);
    }

    /// RFC 1071's checksum over `bytes`, by etherparse (apart from
    /// `wire::checksum`): 0 over data that holds its own.
    fn rfc1071(bytes: &[u8]) -> u16 {
        etherparse::checksum::Sum16BitWords::new()
            .add_slice(bytes)
            .ones_complement()
    }

    /// A tunnel's pieces: the outer IPv4 header and a GRE header with a
    /// checksum (RFC 2784 §2.1: over the GRE header and its payload) in
    /// front of each. Every piece gets its own outer length, id and
    /// checksum, and its own GRE checksum: the whole datagram's, copied
    /// with the headers, is wrong for every piece, and a host whose tunnel
    /// checks it (Linux's `csum`) drops them all.
    #[test]
    fn a_tunnels_pieces_have_their_own_outer_and_gre_checksums() {
        let inner = frame(0, false, false);
        let inner = &inner.data()[ETH..];
        // C and K set, protocol IPv4, checksum 0x5555 (the datagram's,
        // stale for any piece), key 1000.
        let gre = [0xa0, 0, 0x08, 0, 0x55, 0x55, 0, 0, 0, 0, 0x03, 0xe8];
        let mut outer = Ipv4Header::new(
            (gre.len() + inner.len()) as u16,
            64,
            etherparse::IpNumber(47),
            [172, 168, 0, 1],
            [172, 168, 0, 11],
        )
        .unwrap();
        outer.identification = 0x4000;
        outer.header_checksum = outer.calc_header_checksum();
        let mut bytes = vec![0xee; ETH];
        outer.write(&mut bytes).unwrap();
        bytes.extend_from_slice(&gre);
        bytes.extend_from_slice(inner);
        let prefix = ETH + 20 + gre.len();
        let mut out = Out {
            frames: 10,
            ..Out::default()
        };
        assert_eq!(
            split(&VecFrame::new(&bytes, 0), 1, prefix, 68, &mut out),
            Ok(3)
        );
        for (k, (_, p)) in out.sent.iter().enumerate() {
            let (o, rest) = Ipv4Header::from_slice(&p[ETH..]).unwrap();
            assert_eq!(usize::from(o.total_len), p.len() - ETH);
            assert_eq!(o.header_checksum, o.calc_header_checksum());
            assert_eq!(o.identification, 0x4000 + k as u16);
            assert_eq!(rest[..4], gre[..4]);
            assert_eq!(rest[8..12], gre[8..12], "the key kept");
            assert_eq!(rfc1071(rest), 0, "piece {k}'s GRE checksum");
        }
    }

    #[test]
    fn only_copied_options_follow_into_the_later_pieces() {
        // Security (130, copied) and Record Route (7, not copied), with
        // a NOP between them, written by hand after RFC 791: 11 + 1 + 7 + 1
        // (EOL) = 20 bytes of options.
        let mut options = vec![
            130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 1, 7, 7, 4, 0, 0, 0, 0, 0,
        ];
        let mut ip = vec![0x45 + 5, 0, 0, 0, 0x12, 0x34, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&[1, 1, 1, 7, 10, 0, 0, 7]);
        ip.append(&mut options);
        ip.extend((0..100u8).collect::<Vec<_>>());
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let mut bytes = vec![0xee; ETH];
        bytes.extend_from_slice(&ip);
        let mut out = Out {
            frames: 10,
            ..Out::default()
        };
        // 88 bytes: 40 of header and 48 of payload in the first piece;
        // later ones have 20 + 12 (Security, padded) and 56.
        assert_eq!(
            split(&VecFrame::new(&bytes, 0), 0, ETH, 88, &mut out),
            Ok(2)
        );
        let (h0, p0) = Ipv4Header::from_slice(&out.sent[0].1[ETH..]).unwrap();
        let (h1, p1) = Ipv4Header::from_slice(&out.sent[1].1[ETH..]).unwrap();
        assert_eq!(
            h0.options.as_slice(),
            &ip[20..40],
            "the first keeps them all"
        );
        assert_eq!(
            h1.options.as_slice(),
            &[130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0]
        );
        assert_eq!(h1.header_checksum, h1.calc_header_checksum());
        assert_eq!((p0.len(), p1.len()), (48, 52));
        assert_eq!(usize::from(h1.fragment_offset.value()) * 8, 48);
        assert!(h0.more_fragments && !h1.more_fragments);
    }

    #[test]
    fn what_may_not_or_cannot_be_cut_is_refused() {
        let mut out = Out {
            frames: 10,
            ..Out::default()
        };
        let refused = Err(SplitError::Malformed);
        assert_eq!(
            split(&frame(0, false, true), 0, ETH, 68, &mut out),
            refused,
            "DF"
        );
        assert_eq!(
            split(&frame(0, false, false), 0, ETH, 60, &mut out),
            refused,
            "MTU < 68"
        );
        assert_eq!(
            split(&frame(0, false, false), 0, 200, 68, &mut out),
            refused,
            "no packet"
        );
        assert!(out.sent.is_empty());
        let mut short = Out {
            frames: 1,
            ..Out::default()
        };
        assert_eq!(
            split(&frame(0, false, false), 0, ETH, 68, &mut short),
            Err(SplitError::NoFrame)
        );
    }
}
