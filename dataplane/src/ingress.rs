//! Public prefixes routed into a tenant unchanged (`public_prefixes`):
//! destination → tenant slot, for inbound frames.
//!
//! Most are a tenant's single public addresses, /32s: those sit in
//! copy-on-write shards, as elastic IPs do (`nat::Eips`), so that adding
//! or removing a tenant copies a 256th of them, not all. Shorter prefixes
//! are few and sit in an LPM rebuilt when one of them changes. Prefixes of
//! two tenants never overlap (the config refuses it), so an address is in
//! the shards or in the LPM, never both, and the lookup is the LPM's
//! answer either way.

use std::sync::Arc;

use crate::hash::FastMap;
use crate::lpm::{Lpm, LpmBuilder, LpmError, Prefix};
use crate::nat::shard;
use crate::sixteens::Sixteens;

const SHARDS: usize = 256;

#[derive(Clone, Debug)]
pub struct Ingress {
    hosts: Vec<Arc<FastMap<u32, u32>>>,
    /// The prefixes shorter than /32: `(network, length, slot)`, and their
    /// LPM.
    nets: Arc<Vec<(u32, u8, u32)>>,
    lpm: Arc<Lpm>,
    /// The /16s the prefixes overlap: most addresses asked about are
    /// clients', in none of them (`martian::is_own`).
    sixteens: Sixteens,
    len: usize,
}

impl Default for Ingress {
    fn default() -> Self {
        Ingress {
            hosts: (0..SHARDS).map(|_| Arc::default()).collect(),
            nets: Arc::default(),
            lpm: Arc::new(Lpm::empty()),
            sixteens: Sixteens::default(),
            len: 0,
        }
    }
}

impl Ingress {
    /// The slot of the tenant whose public prefix holds `addr`. The /16
    /// test is inlined, the lookups behind it not: as one function it
    /// was a call (~16 instructions) that also made its callers
    /// (`martian::is_own`, asked twice a new flow) save and restore
    /// registers, for a question the bit answers "no" nearly always.
    #[inline(always)]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        if !self.sixteens.may_hold(addr) {
            return None;
        }
        self.lookup_held(addr)
    }

    /// [`Ingress::lookup`] of an address whose /16 may hold a prefix.
    #[inline(never)]
    fn lookup_held(&self, addr: u32) -> Option<u32> {
        if let Some(&slot) = self.hosts[shard(addr)].get(&addr) {
            return Some(slot);
        }
        if self.nets.is_empty() {
            return None;
        }
        self.lpm.lookup(addr)
    }

    /// Prefixes held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tenant `slot`'s prefixes go from `old` to `new` (`(network,
    /// length)`, host bits clear): a /32 copies its shard; the LPM is
    /// rebuilt only when a shorter prefix comes or goes.
    pub fn replace(
        &mut self,
        slot: u32,
        old: &[(u32, u8)],
        new: &[(u32, u8)],
    ) -> Result<(), LpmError> {
        let nets_changed = old.iter().chain(new).any(|&(_, len)| len < 32);
        for &(addr, _) in old.iter().filter(|(_, len)| *len == 32) {
            let shard = Arc::make_mut(&mut self.hosts[shard(addr)]);
            if shard.get(&addr) == Some(&slot) {
                shard.remove(&addr);
                self.len -= 1;
            }
        }
        for &(addr, len) in new {
            self.sixteens.add_net(addr, len);
        }
        for &(addr, _) in new.iter().filter(|(_, len)| *len == 32) {
            if Arc::make_mut(&mut self.hosts[shard(addr)])
                .insert(addr, slot)
                .is_none()
            {
                self.len += 1;
            }
        }
        if nets_changed {
            let mut nets: Vec<(u32, u8, u32)> = self
                .nets
                .iter()
                .copied()
                .filter(|&(_, _, s)| s != slot)
                .collect();
            nets.extend(
                new.iter()
                    .filter(|(_, len)| *len < 32)
                    .map(|&(a, l)| (a, l, slot)),
            );
            let mut b = LpmBuilder::new();
            for &(addr, len, s) in &nets {
                b.insert(Prefix::new_truncating(addr, len)?, s)?;
            }
            self.len = self.len + nets.len() - self.nets.len();
            self.lpm = Arc::new(b.build());
            self.nets = Arc::new(nets);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0x0505_0507;

    #[test]
    fn hosts_and_networks_answer_as_one_table() {
        let mut i = Ingress::default();
        i.replace(3, &[], &[(A, 32), (0x0606_0600, 24)]).unwrap();
        i.replace(4, &[], &[(0x0707_0707, 32)]).unwrap();
        assert_eq!(i.lookup(A), Some(3));
        assert_eq!(i.lookup(0x0606_06fe), Some(3));
        assert_eq!(i.lookup(0x0707_0707), Some(4));
        assert_eq!(i.lookup(A + 1), None);
        assert_eq!(i.len(), 3);
        // Tenant 3 keeps its /32 and drops its /24: tenant 4 untouched.
        let before = i.clone();
        i.replace(3, &[(A, 32), (0x0606_0600, 24)], &[(A, 32)])
            .unwrap();
        assert_eq!(i.lookup(0x0606_06fe), None);
        assert_eq!(i.lookup(A), Some(3));
        assert_eq!(
            before.lookup(0x0606_06fe),
            Some(3),
            "the snapshot before keeps its own"
        );
        i.replace(3, &[(A, 32)], &[]).unwrap();
        assert_eq!(i.lookup(A), None);
        assert_eq!(i.len(), 1);
        assert!(!i.is_empty());
    }

    #[test]
    fn a_host_change_copies_one_shard_and_shares_the_others() {
        let mut i = Ingress::default();
        for n in 0..1000u32 {
            i.replace(n, &[], &[(0x0a00_0000 + n, 32)]).unwrap();
        }
        let before = i.clone();
        i.replace(7, &[(0x0a00_0007, 32)], &[(0x0b00_0007, 32)])
            .unwrap();
        let shared = i
            .hosts
            .iter()
            .zip(&before.hosts)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= SHARDS - 2, "{shared} of {SHARDS} shards shared");
        assert_eq!(i.lookup(0x0b00_0007), Some(7));
        assert_eq!(i.lookup(0x0a00_0007), None);
        assert_eq!(i.len(), 1000);
    }
}
