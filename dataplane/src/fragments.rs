//! Fragments: shallow virtual reassembly, as VPP does it.
//!
//! Only the first fragment of a datagram carries its ports, and no fragment
//! may bypass NAT or the firewall. So the first fragment decides: it goes
//! through the flow path like any packet, and the worker remembers its
//! ports under (zone, protocol, source, destination, identification). Later
//! fragments find their ports here, then their flow, and get the same
//! address translation (their transport checksum is in the first fragment,
//! whose incremental update already covers the whole datagram). Nothing is
//! reassembled or buffered: a fragment that arrives before its first is
//! dropped and counted (`fragment_orphan`), as is one past
//! [`MAX_FRAGMENTS`] of one datagram (`fragment_limit`).
//!
//! The cache is a fixed array indexed by hash; a new datagram takes the
//! slot of an older one, whose later fragments then become orphans. Sizing
//! it is a trade between memory and how many fragmented datagrams may be in
//! flight at once per worker.

/// Datagrams a worker tracks at once.
pub const SLOTS: usize = 1024;
/// Fragments one datagram may have (64 KiB in 1 KiB pieces).
pub const MAX_FRAGMENTS: u16 = 64;

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

impl FragKey {
    fn hash(&self) -> usize {
        let a = u64::from(self.src) << 32 | u64::from(self.dst);
        let b = u64::from(self.zone) << 24 | u64::from(self.protocol) << 16 | u64::from(self.ident);
        let h = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        ((h ^ (h >> 31)) >> 20) as usize
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: FragKey,
    sport: u16,
    dport: u16,
    seen: u16,
    deadline: u64,
}

/// Why a later fragment cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// Its first fragment was not seen (or was forgotten).
    Orphan,
    /// Too many fragments for one datagram.
    Limit,
}

/// One worker's fragment cache.
#[derive(Debug)]
pub struct Fragments {
    slots: Box<[Slot]>,
}

impl Default for Fragments {
    fn default() -> Self {
        Fragments {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
        }
    }
}

impl Fragments {
    /// Remembers the ports of a first fragment until `deadline`.
    pub fn first(&mut self, key: FragKey, sport: u16, dport: u16, deadline: u64) {
        let i = key.hash() % SLOTS;
        self.slots[i] = Slot {
            key,
            sport,
            dport,
            seen: 1,
            deadline,
        };
    }

    /// The ports of a later fragment's datagram.
    pub fn later(&mut self, key: FragKey, now: u64) -> Result<(u16, u16), FragError> {
        let s = &mut self.slots[key.hash() % SLOTS];
        if s.key != key || s.deadline <= now || s.seen == 0 {
            return Err(FragError::Orphan);
        }
        if s.seen >= MAX_FRAGMENTS {
            return Err(FragError::Limit);
        }
        s.seen += 1;
        Ok((s.sport, s.dport))
    }
}

/// Identification and whether it is the first, of an IPv4 packet that is a
/// fragment; `None` for a whole datagram.
pub fn fragment_of(ip: &[u8]) -> Option<(u16, bool)> {
    let flags_offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
    let offset = flags_offset & 0x1fff;
    let more = flags_offset & 0x2000 != 0;
    if offset == 0 && !more {
        return None;
    }
    Some((u16::from_be_bytes([ip[4], ip[5]]), offset == 0))
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

    #[test]
    fn later_fragments_find_the_ports_of_the_first() {
        let mut f = Fragments::default();
        assert_eq!(f.later(key(7), 0), Err(FragError::Orphan));
        f.first(key(7), 5000, 53, 100);
        assert_eq!(f.later(key(7), 1), Ok((5000, 53)));
        assert_eq!(f.later(key(8), 1), Err(FragError::Orphan));
        assert_eq!(f.later(key(7), 100), Err(FragError::Orphan), "expired");
    }

    #[test]
    fn a_datagram_may_not_have_too_many_fragments() {
        let mut f = Fragments::default();
        f.first(key(1), 1, 2, 100);
        for _ in 1..MAX_FRAGMENTS {
            assert!(f.later(key(1), 0).is_ok());
        }
        assert_eq!(f.later(key(1), 0), Err(FragError::Limit));
    }

    #[test]
    fn whole_datagrams_are_not_fragments() {
        let mut ip = [0u8; 20];
        ip[4..6].copy_from_slice(&77u16.to_be_bytes());
        assert_eq!(fragment_of(&ip), None);
        ip[6] = 0x40; // DF alone
        assert_eq!(fragment_of(&ip), None);
        ip[6] = 0x20; // MF, offset 0: the first
        assert_eq!(fragment_of(&ip), Some((77, true)));
        ip[6] = 0;
        ip[7] = 10; // offset 80 bytes, last
        assert_eq!(fragment_of(&ip), Some((77, false)));
    }
}
