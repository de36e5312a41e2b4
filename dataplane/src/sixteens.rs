//! A quick "no" in front of the tables of the gateway's own addresses
//! (elastic IPs, shared NAT addresses, tenants' public prefixes, the
//! ports' addresses): one bit for each /16, set if the /16 holds one.
//!
//! A packet that opens a flow from the Internet asks those tables about
//! its source twice (`martian::public`, `martian::hairpinned`) and about
//! its destination a few times more, and a client's source is almost
//! never in them: a hash lookup in each, then an LPM, then a walk over
//! every port cost ~440 instructions a question (callgrind,
//! `pipeline_profile new-flows`; docs/perf.md). A gateway's own
//! addresses sit in a handful of /16s, so one load and a bit test answer
//! most questions "no" before any of that.
//!
//! A bit is set when an address or prefix comes and left set when it
//! goes (knowing whether it was the /16's last would need a count per
//! /16 in every snapshot): a /16 that held one of the gateway's
//! addresses since the table was built keeps costing the full lookup,
//! never a wrong answer. A "yes" here means "ask the table".

use std::sync::Arc;

/// /16s of the IPv4 space: 2^16 bits.
const WORDS: usize = (1 << 16) / 64;

/// The /16s that hold (or held) one of a table's addresses. Cloning it is
/// a reference count: the 8 KiB of bits are copied only when a change
/// sets a new bit in a snapshot that shares them.
#[derive(Clone, Debug)]
pub struct Sixteens(Arc<[u64; WORDS]>);

impl Default for Sixteens {
    fn default() -> Self {
        Sixteens(Arc::new([0; WORDS]))
    }
}

impl Sixteens {
    /// Whether `addr`'s /16 may hold one of the table's addresses: `false`
    /// is certain.
    #[inline]
    pub fn may_hold(&self, addr: u32) -> bool {
        let i = (addr >> 16) as usize;
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Marks the /16 of `addr`.
    pub fn add(&mut self, addr: u32) {
        self.add_net(addr, 32);
    }

    /// Marks every /16 that prefix `addr/len` overlaps (all 65,536 of
    /// them for /0).
    pub fn add_net(&mut self, addr: u32, len: u8) {
        let len = len.min(32);
        let first = (addr >> 16) & !mask16(len);
        let count = if len >= 16 { 1 } else { 1u32 << (16 - len) };
        if (first..first + count).all(|i| self.may_hold(i << 16)) {
            return;
        }
        let bits = Arc::make_mut(&mut self.0);
        for i in first..first + count {
            let i = i as usize;
            bits[i / 64] |= 1 << (i % 64);
        }
    }
}

/// The host bits of a /`len` prefix within the top 16 bits of an address
/// (`len` < 16), as a mask of those bits.
fn mask16(len: u8) -> u32 {
    if len >= 16 {
        0
    } else {
        (1 << (16 - len)) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn an_address_marks_its_own_sixteen_only() {
        let mut s = Sixteens::default();
        assert!(!s.may_hold(a("2.2.2.11")));
        s.add(a("2.2.2.11"));
        assert!(s.may_hold(a("2.2.0.0")));
        assert!(s.may_hold(a("2.2.255.255")));
        assert!(!s.may_hold(a("2.1.255.255")));
        assert!(!s.may_hold(a("2.3.0.0")));
        assert!(!s.may_hold(a("1.2.2.11")));
    }

    #[test]
    fn a_prefix_marks_every_sixteen_it_overlaps() {
        let mut s = Sixteens::default();
        s.add_net(a("10.4.0.0"), 14);
        for x in ["10.4.0.0", "10.5.9.9", "10.6.1.1", "10.7.255.255"] {
            assert!(s.may_hold(a(x)), "{x}");
        }
        assert!(!s.may_hold(a("10.3.255.255")));
        assert!(!s.may_hold(a("10.8.0.0")));
        // Longer than /16: its one /16, host bits or not.
        s.add_net(a("192.0.2.128"), 25);
        assert!(s.may_hold(a("192.0.200.1")));
        assert!(!s.may_hold(a("192.1.2.128")));
        let mut all = Sixteens::default();
        all.add_net(a("1.2.3.4"), 0);
        assert!(all.may_hold(0) && all.may_hold(u32::MAX) && all.may_hold(a("99.1.1.1")));
    }

    #[test]
    fn a_snapshot_keeps_its_bits_when_a_later_one_sets_more() {
        let mut s = Sixteens::default();
        s.add(a("3.3.3.3"));
        let before = s.clone();
        s.add(a("3.3.9.9"));
        assert!(
            Arc::ptr_eq(&s.0, &before.0),
            "an address of a marked /16 copies nothing"
        );
        s.add(a("4.4.4.4"));
        assert!(s.may_hold(a("4.4.4.4")));
        assert!(!before.may_hold(a("4.4.4.4")));
    }
}
