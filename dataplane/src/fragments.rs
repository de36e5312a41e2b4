//! Fragments: shallow virtual reassembly, as VPP does it.
//!
//! Only the first fragment of a datagram carries its ports, and no fragment
//! may bypass NAT or the firewall. So the first fragment decides: it goes
//! through the flow path like any packet and, once its flow let it pass,
//! the worker remembers its ports under (zone, protocol, source,
//! destination, identification). Later fragments find their ports here,
//! then their flow, and get the same address translation (their transport
//! checksum is in the first fragment, whose incremental update already
//! covers the whole datagram). Nothing is reassembled. A later fragment
//! that arrives before its first waits a little in the worker's parking
//! ([`park`]), and a datagram too big for the next hop is cut into
//! fragments by the control plane ([`split`]).
//!
//! The cache is a fixed array of buckets of [`WAYS`] entries, indexed by a
//! hash keyed with a per-process seed (tenants and the Internet choose the
//! keys: an unkeyed hash would let them aim at one bucket). Every entry
//! belongs to an owner: the tenant of its flow, inbound or outbound. An
//! owner holds at most [`OWNER_SHARE`] entries, the Internet's inbound ones
//! together at most [`INBOUND_SHARE`], and a new entry only ever replaces a
//! free or expired one or one of its own owner's: no tenant's fragments,
//! nor the Internet's, can push out another tenant's. An entry is freed as
//! soon as every byte of its datagram went through, or when it expires.
//!
//! # What is checked where
//!
//! Trusted reassemblers (Linux's `ip_fragment.c`, RFC 1858, RFC 3128)
//! refuse fragments built to make the receiver see other headers than the
//! firewall saw. tgw checks, on the full path (the fast path takes no
//! fragment), every fragment it forwards, through flows or not:
//!
//! - alone, by [`inspect`], before anything else looks at it:
//!   - its end past the 65,535 bytes of an IPv4 datagram (RFC 791; the
//!     "ping of death"): [`FragError::TooLong`];
//!   - a first fragment that does not hold its whole transport header
//!     (TCP: 20 bytes and its options, as its data offset says; UDP and
//!     ICMP: 8), so that a later fragment would bring the flags or ports
//!     the firewall decided on (RFC 1858 §3.1, RFC 3128):
//!     [`FragError::TinyFirst`];
//!   - a later TCP fragment at offset 8 or 16, inside the smallest TCP
//!     header: written to overwrite the first fragment's flags (RFC 1858
//!     §3.2 and §4, "FO=1 and PROTOCOL=TCP"): [`FragError::HeaderOverlap`];
//! - against its datagram, by [`Fragments::first`] and
//!   [`Fragments::later`], for datagrams whose flows the cache tracks:
//!   - a later fragment reaching into the first fragment's bytes (where
//!     the transport header and its options are), past the datagram's
//!     end once the last fragment was seen, or a second last fragment
//!     with another end: [`FragError::Overlap`]. The datagram is then
//!     condemned, as Linux does since it drops IPv4 datagrams with
//!     overlapping fragments: its later fragments are dropped the same
//!     way until the entry expires. What went through cannot be called
//!     back; the receiver cannot reassemble without the rest;
//!   - a fragment whose bytes all went through already (the same piece
//!     again, the first or the last fragment seen twice):
//!     [`FragError::Duplicate`]. Only the copy is dropped: a duplicate is
//!     what a network can make of an honest datagram, and it would
//!     otherwise count twice toward completing the datagram and free the
//!     entry before its last piece came.
//!
//! What the cache can and cannot see: it holds no payload (shallow
//! virtual reassembly), only each datagram's first fragment's extent,
//! its end once known, and which pieces the size of the first fragment
//! (how a sender or a router cuts a datagram: every piece but the last
//! that size) went through, as bits of a `u64`. So overlaps with the first
//! fragment and with the end are seen exactly; between later fragments,
//! only overlaps that cover a whole such piece — two pieces of uneven
//! sizes overlapping by less than one go unseen, and so does a copy that
//! differs in content from what went through (no bytes are kept to
//! compare). Datagrams not tracked (later fragments between a tenant's own
//! hosts, tenants without flows) get the checks of [`inspect`] only.

use crate::wire::Frag;

pub mod park;
pub mod split;

/// Entries a worker's cache holds.
pub const SLOTS: usize = 4096;
/// Entries of one bucket.
pub const WAYS: usize = 8;
/// Fragments one datagram may have (64 KiB in 1 KiB pieces).
pub const MAX_FRAGMENTS: u16 = 64;
/// The largest IPv4 datagram, header included (RFC 791).
pub const MAX_DATAGRAM: u32 = 65_535;
/// The smallest TCP header.
const TCP_HEADER: u32 = 20;
/// The UDP header, and the ICMP header up to the echo's identifier and
/// sequence number or an error's unused word.
const SHORT_HEADER: u32 = 8;
/// Entries one owner (a tenant's inbound or outbound datagrams) may hold.
pub const OWNER_SHARE: u16 = (SLOTS / 16) as u16;
/// Entries the public side's datagrams may hold together.
pub const INBOUND_SHARE: usize = SLOTS / 2;
/// Owners counted apart by default; tenants past them share one count.
pub const DEFAULT_TENANTS: usize = 256;

/// Which datagram a fragment belongs to (RFC 791: source, destination,
/// protocol, identification), in a zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragKey {
    pub zone: u32,
    pub protocol: u8,
    pub src: u32,
    pub dst: u32,
    pub ident: u16,
}

/// What an IPv4 fragment says of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub ident: u16,
    /// Where its payload starts in the datagram, in bytes.
    pub offset: u32,
    /// Its payload, in bytes.
    pub len: u32,
    /// More fragments follow.
    pub more: bool,
}

impl Piece {
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// The fragment fields of IPv4 packet `ip`; `None` for a whole datagram
/// or a header too short to say.
pub fn piece_of(ip: &[u8]) -> Option<Piece> {
    let frag = Frag::of(ip)?;
    if !frag.is_fragment() {
        return None;
    }
    let total = u32::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let ihl = u32::from(ip.first()? & 0xf) * 4;
    Some(Piece {
        ident: u16::from_be_bytes([ip[4], ip[5]]),
        offset: u32::from(frag.offset),
        len: total.saturating_sub(ihl),
        more: frag.more,
    })
}

/// Who an entry (or a parked fragment) is counted against: a tenant's
/// datagrams from the Internet, or its own. Tenants past the ones counted
/// apart share the last count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub tenant: u32,
    pub inbound: bool,
}

impl Owner {
    /// The index of its count among `tenants` tenants (two counts each,
    /// and two shared by the ones past them).
    pub(crate) fn index(self, tenants: usize) -> usize {
        let t = (self.tenant as usize).min(tenants);
        t * 2 + usize::from(self.inbound)
    }
}

/// A hash of fragment keys that the keys' senders cannot aim: two rounds of
/// a folded 64×64→128 multiply (as wyhash and foldhash do) over the key
/// mixed with secrets derived from a per-process seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedHash([u64; 3]);

impl KeyedHash {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64: three well-spread secrets from one seed.
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        KeyedHash([next(), next(), next()])
    }

    pub(crate) fn hash(&self, key: &FragKey) -> u64 {
        let a = u64::from(key.src) << 32 | u64::from(key.dst);
        let b = u64::from(key.zone) << 24 | u64::from(key.protocol) << 16 | u64::from(key.ident);
        let h = fold_mul(a ^ self.0[0], b ^ self.0[1]);
        fold_mul(h ^ self.0[2], 0x9e37_79b9_7f4a_7c15 ^ self.0[1])
    }
}

fn fold_mul(x: u64, y: u64) -> u64 {
    let p = u128::from(x) * u128::from(y);
    (p as u64) ^ ((p >> 64) as u64)
}

/// No owner: the slot is free.
const FREE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: FragKey,
    /// Index of its owner's count, or [`FREE`].
    owner: u32,
    inbound: bool,
    sport: u16,
    dport: u16,
    seen: u16,
    /// Payload bytes of the fragments that went through.
    covered: u32,
    /// The datagram's payload length, once its last fragment was seen.
    total: Option<u32>,
    deadline: u64,
    /// The first fragment's payload length: its extent, and the size of
    /// the pieces `pieces` counts.
    unit: u32,
    /// Bit `i`: bytes `i * unit .. (i + 1) * unit` went through.
    pieces: u64,
    /// The furthest byte a fragment that went through reached.
    reach: u32,
    /// An overlap was seen: the rest of the datagram is dropped.
    condemned: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            key: FragKey::default(),
            owner: FREE,
            inbound: false,
            sport: 0,
            dport: 0,
            seen: 0,
            covered: 0,
            total: None,
            deadline: 0,
            unit: 0,
            pieces: 0,
            reach: 0,
            condemned: false,
        }
    }
}

impl Slot {
    fn live(&self, now: u64) -> bool {
        self.owner != FREE && self.deadline > now
    }

    /// Counts `piece` in; true once every byte of the datagram was seen.
    fn cover(&mut self, piece: &Piece) -> bool {
        let end = piece.offset.saturating_add(piece.len);
        self.covered = self.covered.saturating_add(piece.len);
        self.pieces |= self.pieces_within(piece.offset, end);
        self.reach = self.reach.max(end);
        if !piece.more {
            self.total = Some(end);
        }
        self.total.is_some_and(|t| self.covered >= t)
    }

    /// The bits of the first-fragment-sized pieces that lie wholly inside
    /// bytes `start..end` (none past the 64th).
    fn pieces_within(&self, start: u32, end: u32) -> u64 {
        if self.unit == 0 {
            return 0;
        }
        let first = start.div_ceil(self.unit).min(64);
        let last = (end / self.unit).min(64);
        if last <= first {
            return 0;
        }
        let upto = |n: u32| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        upto(last) & !upto(first)
    }

    /// Whether later fragment `piece` may go on with this datagram: not
    /// into the first fragment, not past the end, and not all seen before.
    fn fits(&mut self, piece: &Piece) -> Result<(), FragError> {
        let end = piece.offset.saturating_add(piece.len);
        let past_end = match (self.total, piece.more) {
            (Some(total), true) => end > total,
            (Some(total), false) if end == total => return Err(FragError::Duplicate),
            (Some(_), false) => true,
            (None, true) => false,
            (None, false) => end < self.reach,
        };
        if piece.offset < self.unit || past_end {
            self.condemned = true;
            return Err(FragError::Overlap);
        }
        let mine = self.pieces_within(piece.offset, end);
        match mine & self.pieces {
            0 => Ok(()),
            seen if seen == mine => Err(FragError::Duplicate),
            _ => {
                self.condemned = true;
                Err(FragError::Overlap)
            }
        }
    }
}

/// Why a fragment cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// Its first fragment was not seen (or was forgotten).
    Orphan,
    /// Too many fragments for one datagram.
    Limit,
    /// Its owner holds its share of the cache, or its bucket is full of
    /// other owners' live entries.
    Full,
    /// Its end passes the largest datagram (RFC 791).
    TooLong,
    /// A first fragment without its whole transport header (RFC 1858
    /// §3.1, RFC 3128).
    TinyFirst,
    /// A later TCP fragment inside the smallest TCP header (RFC 1858
    /// §3.2).
    HeaderOverlap,
    /// It overlaps what went through of its datagram, or disagrees with
    /// its end; or its datagram was condemned for that.
    Overlap,
    /// All its bytes went through already.
    Duplicate,
}

/// The checks of a fragment alone (see the module's doc): its piece, or
/// `None` for a whole datagram. `ip` starts at a valid IPv4 header.
pub fn inspect(ip: &[u8]) -> Result<Option<Piece>, FragError> {
    let Some(piece) = piece_of(ip) else {
        return Ok(None);
    };
    let ihl = u32::from(ip[0] & 0xf) * 4;
    if ihl + piece.offset + piece.len > MAX_DATAGRAM {
        return Err(FragError::TooLong);
    }
    let first = piece.is_first();
    match ip[9] {
        6 if first => {
            // The data offset, once the fragment reaches it.
            let at = ihl as usize + 12;
            let header = ip.get(at).map_or(TCP_HEADER, |&b| u32::from(b >> 4) * 4);
            if piece.len < TCP_HEADER.max(header) {
                return Err(FragError::TinyFirst);
            }
        }
        6 if piece.offset < TCP_HEADER => return Err(FragError::HeaderOverlap),
        1 | 17 if first && piece.len < SHORT_HEADER => return Err(FragError::TinyFirst),
        _ => {}
    }
    Ok(Some(piece))
}

/// One worker's fragment cache.
#[derive(Debug)]
pub struct Fragments {
    slots: Box<[Slot]>,
    /// Live entries by owner ([`Owner::index`]).
    held: Box<[u16]>,
    tenants: usize,
    /// Live entries, all owners': the gauge a scrape reads, kept so that
    /// nobody sums `held` between bursts.
    live: usize,
    /// Entries of the public side's datagrams.
    inbound: usize,
    hash: KeyedHash,
    /// Where the next sweep starts.
    sweep_at: usize,
}

impl Default for Fragments {
    fn default() -> Self {
        Self::new(crate::hash::process_seed(), DEFAULT_TENANTS)
    }
}

impl Fragments {
    /// A cache whose hash is keyed by `seed` (chosen at random when the
    /// process starts), counting `tenants` tenants apart.
    pub fn new(seed: u64, tenants: usize) -> Self {
        Fragments {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            held: vec![0; (tenants + 1) * 2].into_boxed_slice(),
            tenants,
            live: 0,
            inbound: 0,
            hash: KeyedHash::new(seed),
            sweep_at: 0,
        }
    }

    /// Live entries (expired ones not swept yet included).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bucket(&self, key: &FragKey) -> std::ops::Range<usize> {
        let b = (self.hash.hash(key) % (SLOTS / WAYS) as u64) as usize;
        b * WAYS..(b + 1) * WAYS
    }

    fn free(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.owner == FREE {
            return;
        }
        if let Some(n) = self.held.get_mut(s.owner as usize) {
            *n = n.saturating_sub(1);
        }
        self.live = self.live.saturating_sub(1);
        if s.inbound {
            self.inbound = self.inbound.saturating_sub(1);
        }
        *s = Slot::default();
    }

    /// Remembers the ports of a first fragment, `piece`, whose flow let it
    /// pass, until `deadline`. `Err(Full)` if its owner may not have one
    /// more entry.
    pub fn first(
        &mut self,
        key: FragKey,
        owner: Owner,
        ports: (u16, u16),
        piece: &Piece,
        now: u64,
        deadline: u64,
    ) -> Result<(), FragError> {
        let o = owner.index(self.tenants);
        let bucket = self.bucket(&key);
        // The same first fragment again is a duplicate, and a condemned
        // datagram stays so; another datagram under the same
        // identification (the old one never completed) starts over.
        if let Some(i) = bucket.clone().find(|&i| self.slots[i].key == key) {
            let s = &self.slots[i];
            if s.live(now) && s.condemned {
                return Err(FragError::Overlap);
            }
            if s.live(now) && (s.sport, s.dport, s.unit) == (ports.0, ports.1, piece.len) {
                return Err(FragError::Duplicate);
            }
            self.free(i);
        }
        let mut free = None;
        let mut own_oldest: Option<usize> = None;
        for i in bucket {
            let s = self.slots[i];
            if !s.live(now) {
                free.get_or_insert(i);
            } else if s.owner as usize == o
                && own_oldest.is_none_or(|j| s.deadline < self.slots[j].deadline)
            {
                own_oldest = Some(i);
            }
        }
        let at_share = self.held.get(o).is_none_or(|&n| n >= OWNER_SHARE)
            || (owner.inbound && self.inbound >= INBOUND_SHARE);
        // A free way when the owner has room; else the owner's own oldest.
        let i = match (free, own_oldest) {
            (Some(i), _) if !at_share => i,
            (_, Some(i)) => i,
            _ => return Err(FragError::Full),
        };
        self.free(i);
        let mut slot = Slot {
            key,
            owner: o as u32,
            inbound: owner.inbound,
            sport: ports.0,
            dport: ports.1,
            seen: 1,
            covered: 0,
            total: None,
            deadline,
            unit: piece.len,
            pieces: 0,
            reach: 0,
            condemned: false,
        };
        slot.cover(piece);
        self.slots[i] = slot;
        self.held[o] += 1;
        self.live += 1;
        if owner.inbound {
            self.inbound += 1;
        }
        Ok(())
    }

    /// The ports of a later fragment's datagram. The entry is freed once
    /// every byte of the datagram went through.
    pub fn later(
        &mut self,
        key: FragKey,
        piece: &Piece,
        now: u64,
    ) -> Result<(u16, u16), FragError> {
        let Some(i) = self
            .bucket(&key)
            .find(|&i| self.slots[i].key == key && self.slots[i].owner != FREE)
        else {
            return Err(FragError::Orphan);
        };
        let s = &mut self.slots[i];
        if s.deadline <= now {
            self.free(i);
            return Err(FragError::Orphan);
        }
        if s.condemned {
            return Err(FragError::Overlap);
        }
        if s.seen >= MAX_FRAGMENTS {
            return Err(FragError::Limit);
        }
        s.fits(piece)?;
        s.seen += 1;
        let ports = (s.sport, s.dport);
        if s.cover(piece) {
            self.free(i);
        }
        Ok(ports)
    }

    /// Frees the expired entries among the next `budget` slots; the worker
    /// calls it between bursts, so that an owner's count never stays held
    /// by entries that are dead.
    pub fn sweep(&mut self, now: u64, budget: usize) {
        for _ in 0..budget.min(SLOTS) {
            let i = self.sweep_at;
            self.sweep_at = (i + 1) % SLOTS;
            if self.slots[i].owner != FREE && self.slots[i].deadline <= now {
                self.free(i);
            }
        }
    }
}

/// Identification and whether it is the first, of an IPv4 packet that is a
/// fragment; `None` for a whole datagram.
pub fn fragment_of(ip: &[u8]) -> Option<(u16, bool)> {
    piece_of(ip).map(|p| (p.ident, p.is_first()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u16) -> FragKey {
        FragKey {
            zone: 0,
            protocol: 17,
            src: 1,
            dst: 2,
            ident,
        }
    }

    const T1_IN: Owner = Owner {
        tenant: 0,
        inbound: true,
    };
    const T2_IN: Owner = Owner {
        tenant: 1,
        inbound: true,
    };

    /// The first of a datagram of `len` payload bytes, cut after 8.
    fn head() -> Piece {
        Piece {
            ident: 0,
            offset: 0,
            len: 8,
            more: true,
        }
    }

    fn middle() -> Piece {
        Piece {
            ident: 0,
            offset: 8,
            len: 8,
            more: true,
        }
    }

    fn tail(len: u32) -> Piece {
        Piece {
            ident: 0,
            offset: 16,
            len,
            more: false,
        }
    }

    #[test]
    fn later_fragments_find_the_ports_of_the_first() {
        let mut f = Fragments::default();
        assert_eq!(f.later(key(7), &middle(), 0), Err(FragError::Orphan));
        f.first(key(7), T1_IN, (5000, 53), &head(), 0, 100).unwrap();
        assert_eq!(f.later(key(7), &middle(), 1), Ok((5000, 53)));
        assert_eq!(f.later(key(8), &middle(), 1), Err(FragError::Orphan));
        assert_eq!(
            f.later(key(7), &middle(), 100),
            Err(FragError::Orphan),
            "expired"
        );
        assert!(f.is_empty(), "the expired entry was freed on the way");
    }

    #[test]
    fn an_entry_is_freed_once_its_whole_datagram_went_through() {
        let mut f = Fragments::default();
        f.first(key(1), T1_IN, (1, 2), &head(), 0, 100).unwrap();
        assert_eq!(f.later(key(1), &tail(8), 0), Ok((1, 2)));
        assert_eq!(f.len(), 1, "the middle is still missing");
        assert_eq!(f.later(key(1), &middle(), 0), Ok((1, 2)));
        assert_eq!(f.len(), 0);
        assert_eq!(f.later(key(1), &middle(), 0), Err(FragError::Orphan));
    }

    #[test]
    fn a_datagram_may_not_have_too_many_fragments() {
        let mut f = Fragments::default();
        f.first(key(1), T1_IN, (1, 2), &head(), 0, 100).unwrap();
        let piece = |i: u32| Piece {
            offset: 8 * i,
            ..middle()
        };
        for i in 1..u32::from(MAX_FRAGMENTS) {
            assert!(f.later(key(1), &piece(i), 0).is_ok());
        }
        assert_eq!(
            f.later(key(1), &piece(u32::from(MAX_FRAGMENTS)), 0),
            Err(FragError::Limit)
        );
    }

    #[test]
    fn an_owner_at_its_share_replaces_only_its_own_entries() {
        let mut f = Fragments::new(7, 4);
        f.first(key(0), T1_IN, (1, 1), &head(), 0, 1000).unwrap();
        // Tenant 2's flood: its share, then only its own entries go.
        let mut refused = 0;
        for ident in 1..=u16::MAX {
            if f.first(key(ident), T2_IN, (2, 2), &head(), 0, 1000)
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert_eq!(f.held[T2_IN.index(4)], OWNER_SHARE);
        assert_eq!(f.later(key(0), &middle(), 1), Ok((1, 1)), "tenant 1's kept");
        // Swept once expired, its count is free again.
        f.sweep(1000, SLOTS);
        assert!(f.is_empty());
        f.first(key(9), T2_IN, (2, 2), &head(), 1000, 2000).unwrap();
    }

    #[test]
    fn the_internet_side_holds_at_most_its_share() {
        let mut f = Fragments::new(7, 64);
        let mut n = 0u16;
        for tenant in 0..64 {
            for _ in 0..OWNER_SHARE {
                let owner = Owner {
                    tenant,
                    inbound: true,
                };
                let _ = f.first(key(n), owner, (0, 0), &head(), 0, 1000);
                n = n.wrapping_add(1);
            }
        }
        assert!(f.inbound <= INBOUND_SHARE);
        assert!(f.len() <= INBOUND_SHARE);
        // The tenants' own datagrams still find room.
        let out = Owner {
            tenant: 3,
            inbound: false,
        };
        let mut k = key(1);
        k.zone = 4;
        f.first(k, out, (5, 6), &head(), 0, 1000).unwrap();
    }

    #[test]
    fn the_bucket_of_a_key_depends_on_the_seed() {
        let (a, b) = (Fragments::new(1, 0), Fragments::new(2, 0));
        let moved = (0..1000u16)
            .filter(|&i| a.bucket(&key(i)) != b.bucket(&key(i)))
            .count();
        assert!(moved > 900, "only {moved} of 1000 keys moved");
        // Keys that share a bucket under one seed are spread by another.
        let target = a.bucket(&key(0));
        let crowd: Vec<u16> = (0..=u16::MAX)
            .filter(|&i| a.bucket(&key(i)) == target)
            .collect();
        assert!(crowd.len() > WAYS);
        let mut buckets: Vec<_> = crowd.iter().map(|&i| b.bucket(&key(i)).start).collect();
        buckets.sort_unstable();
        buckets.dedup();
        assert!(buckets.len() > crowd.len() / 2, "{buckets:?}");
    }

    fn at(offset: u32, len: u32, more: bool) -> Piece {
        Piece {
            ident: 0,
            offset,
            len,
            more,
        }
    }

    #[test]
    fn what_the_cache_sees_of_overlaps_and_duplicates() {
        let mut f = Fragments::default();
        f.first(key(1), T1_IN, (1, 2), &at(0, 16, true), 0, 100)
            .unwrap();
        // Pieces of the first fragment's size: a copy is a duplicate, one
        // over two of them an overlap.
        assert_eq!(f.later(key(1), &at(16, 16, true), 0), Ok((1, 2)));
        assert_eq!(
            f.later(key(1), &at(16, 16, true), 0),
            Err(FragError::Duplicate)
        );
        assert_eq!(f.later(key(1), &at(32, 16, true), 0), Ok((1, 2)));
        // Smaller pieces, or uneven ones overlapping by less than a
        // piece, go unseen: no payload is kept to compare.
        assert_eq!(f.later(key(1), &at(48, 8, true), 0), Ok((1, 2)));
        assert_eq!(f.later(key(1), &at(48, 8, true), 0), Ok((1, 2)));
        // The last fragment fixes the end; a fragment past it, or a
        // second last with another end, condemns the datagram.
        assert_eq!(f.later(key(1), &at(80, 4, false), 0), Ok((1, 2)));
        assert_eq!(
            f.later(key(1), &at(80, 4, false), 0),
            Err(FragError::Duplicate)
        );
        assert_eq!(
            f.later(key(1), &at(80, 16, true), 0),
            Err(FragError::Overlap)
        );
        assert_eq!(
            f.later(key(1), &at(64, 16, true), 0),
            Err(FragError::Overlap),
            "condemned"
        );

        // A last fragment that ends before bytes already seen.
        f.first(key(2), T1_IN, (1, 2), &at(0, 16, true), 0, 100)
            .unwrap();
        assert_eq!(f.later(key(2), &at(64, 16, true), 0), Ok((1, 2)));
        assert_eq!(
            f.later(key(2), &at(32, 8, false), 0),
            Err(FragError::Overlap)
        );
    }

    #[test]
    fn a_fragment_is_checked_alone_before_the_cache() {
        let fragment = |protocol: u8, offset: u16, more: bool, len: u16, tcp_words: u8| {
            let mut ip = vec![0u8; 20 + usize::from(len)];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + len).to_be_bytes());
            let bits = (offset / 8) | if more { 0x2000 } else { 0 };
            ip[6..8].copy_from_slice(&bits.to_be_bytes());
            ip[9] = protocol;
            if let Some(b) = ip.get_mut(32) {
                *b = tcp_words << 4;
            }
            ip
        };
        assert_eq!(inspect(&fragment(6, 0, false, 40, 5)), Ok(None));
        assert!(inspect(&fragment(6, 0, true, 24, 5)).is_ok());
        assert_eq!(
            inspect(&fragment(6, 0, true, 16, 5)),
            Err(FragError::TinyFirst)
        );
        assert_eq!(
            inspect(&fragment(6, 0, true, 24, 7)),
            Err(FragError::TinyFirst),
            "options past the first fragment"
        );
        assert_eq!(
            inspect(&fragment(6, 8, true, 24, 0)),
            Err(FragError::HeaderOverlap)
        );
        assert!(inspect(&fragment(6, 24, true, 24, 0)).is_ok());
        assert_eq!(
            inspect(&fragment(17, 0, true, 0, 0)),
            Err(FragError::TinyFirst)
        );
        assert!(inspect(&fragment(17, 8, true, 8, 0)).is_ok());
        assert!(inspect(&fragment(1, 65_512, false, 3, 0)).is_ok());
        assert_eq!(
            inspect(&fragment(1, 65_512, false, 4, 0)),
            Err(FragError::TooLong),
            "20 + 65,512 + 4 > 65,535"
        );
    }

    #[test]
    fn whole_datagrams_are_not_fragments() {
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&60u16.to_be_bytes());
        ip[4..6].copy_from_slice(&77u16.to_be_bytes());
        assert_eq!(fragment_of(&ip), None);
        ip[6] = 0x40; // DF alone
        assert_eq!(fragment_of(&ip), None);
        ip[6] = 0x20; // MF, offset 0: the first
        assert_eq!(fragment_of(&ip), Some((77, true)));
        assert_eq!(piece_of(&ip).map(|p| p.len), Some(40));
        ip[6] = 0;
        ip[7] = 10; // offset 80 bytes, last
        assert_eq!(fragment_of(&ip), Some((77, false)));
        assert_eq!(piece_of(&ip).map(|p| (p.offset, p.more)), Some((80, false)));
    }
}
