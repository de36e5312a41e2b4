//! Shared source NAT: a tenant's pool of public addresses, shared by its
//! private hosts, one public port per private (address, port).
//!
//! Mapping is endpoint-independent (RFC 4787 REQ-1): while any flow of a
//! private address and port lives, its other flows get the same public
//! address and port, whatever their destination. Filtering is either
//! endpoint-independent (REQ-8: anyone may reach a mapped port, as long as
//! the mapping lives) or address-and-port-dependent (only the replies of the
//! flows themselves get in).
//!
//! Ports are handed out in blocks of [`BLOCK`] per private host, so that a
//! log of block assignments tells who used which port without a line per
//! connection, and so that a host cannot take more than its share
//! (`max_blocks`). Blocks are striped over the workers — block *b* of a
//! pool belongs to worker *b mod n* — which is how the public port of a
//! reply names the worker that owns its flow ([`crate::steer`]). A port is
//! free again when the last flow using its mapping ends; TCP, UDP and ICMP
//! share the port space.
//!
//! Everything is sized when a worker starts: allocating a port never
//! allocates memory.

use arrayvec::ArrayVec;
use std::collections::hash_map::Entry;

use crate::hash::FastMap;
use crate::sixteens::Sixteens;
use crate::tenant::TenantId;

/// Ports per block: one `u64` of bits.
pub const BLOCK: u16 = 64;
/// The most blocks one private host may hold in one pool.
pub const MAX_BLOCKS_PER_HOST: usize = 64;

/// A tenant's pool, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub tenant: TenantId,
    pub addrs: Vec<u32>,
    /// First port handed out; the range ends at the last whole block
    /// within `hi`.
    pub lo: u16,
    pub hi: u16,
    /// Blocks one private host may hold, 1..=[`MAX_BLOCKS_PER_HOST`].
    pub max_blocks: u16,
    /// Endpoint-independent filtering.
    pub eif: bool,
}

impl Pool {
    fn blocks_per_addr(&self) -> u32 {
        (u32::from(self.hi) + 1).saturating_sub(u32::from(self.lo)) / u32::from(BLOCK)
    }

    fn blocks(&self) -> u32 {
        self.blocks_per_addr() * self.addrs.len() as u32
    }

    /// The block holding `port` of any of the pool's addresses, counted
    /// within one address.
    fn block_in_addr(&self, port: u16) -> Option<u32> {
        let b = u32::from(port.checked_sub(self.lo)?) / u32::from(BLOCK);
        (b < self.blocks_per_addr()).then_some(b)
    }

    /// Whether `other` has the same blocks: the same addresses and ports.
    fn same_blocks(&self, other: &Pool) -> bool {
        self.addrs == other.addrs && self.lo == other.lo && self.hi == other.hi
    }

    /// The worker, of `workers`, whose blocks hold `port`.
    pub fn owner_of_port(&self, port: u16, workers: u16) -> Option<u16> {
        let b = self.block_in_addr(port)?;
        Some((b % u32::from(workers.max(1))) as u16)
    }
}

/// The pools, in the tables, by their tenant's slot: a pool's index is
/// its tenant's, stable while both live (flows and workers' shares name
/// pools by it).
#[derive(Clone, Debug, Default)]
pub struct Pools {
    pools: Vec<Option<Pool>>,
    by_addr: FastMap<u32, u32>,
    /// The /16s of the pools' addresses: most addresses asked about are
    /// clients', in none of them (`martian::is_own`).
    sixteens: Sixteens,
    len: usize,
}

/// Why a pool could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The tenant has a pool already.
    Tenant(TenantId),
    /// The address is in another pool.
    Addr(u32),
    /// The port range holds no whole block, or `max_blocks` is out of range.
    Range,
}

impl Pools {
    pub fn insert(&mut self, pool: Pool) -> Result<(), PoolError> {
        let index = pool.tenant.0;
        if self.get(index).is_some() {
            return Err(PoolError::Tenant(pool.tenant));
        }
        if let Some(&a) = pool.addrs.iter().find(|a| self.by_addr.contains_key(a)) {
            return Err(PoolError::Addr(a));
        }
        let max = usize::from(pool.max_blocks);
        if pool.blocks_per_addr() == 0 || !(1..=MAX_BLOCKS_PER_HOST).contains(&max) {
            return Err(PoolError::Range);
        }
        for &a in &pool.addrs {
            self.by_addr.insert(a, index);
            self.sixteens.add(a);
        }
        let i = index as usize;
        if i >= self.pools.len() {
            self.pools.resize(i + 1, None);
        }
        self.pools[i] = Some(pool);
        self.len += 1;
        Ok(())
    }

    /// Removes `tenant`'s pool.
    pub fn remove(&mut self, tenant: TenantId) -> Option<Pool> {
        let pool = self.pools.get_mut(tenant.index())?.take()?;
        for a in &pool.addrs {
            self.by_addr.remove(a);
        }
        self.len -= 1;
        Some(pool)
    }

    /// The pool of `tenant`.
    #[inline]
    pub fn of_tenant(&self, tenant: TenantId) -> Option<(u32, &Pool)> {
        Some((tenant.0, self.get(tenant.0)?))
    }

    /// The pool public address `addr` belongs to.
    #[inline]
    pub fn of_addr(&self, addr: u32) -> Option<(u32, &Pool)> {
        if !self.sixteens.may_hold(addr) {
            return None;
        }
        let i = *self.by_addr.get(&addr)?;
        Some((i, self.get(i)?))
    }

    pub fn get(&self, index: u32) -> Option<&Pool> {
        self.pools.get(index as usize)?.as_ref()
    }

    /// Every pool with its index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Pool)> + '_ {
        self.pools
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.as_ref()?)))
    }

    /// One past the highest index.
    pub fn slots(&self) -> usize {
        self.pools.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A private host's end of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inside {
    pub pool: u32,
    pub private: u32,
    pub port: u16,
}

/// A mapping's public end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outside {
    pub addr: u32,
    pub port: u16,
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    outside: Outside,
    /// Flows using it.
    refs: u32,
    /// The serial of the share its port came from: a share replaced at
    /// runtime takes no port back from a mapping of the one before.
    share: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct Block {
    /// The private host holding it; 0 while free.
    host: u32,
    used: u64,
}

/// One pool's share on one worker.
#[derive(Debug, Default)]
struct PoolShare {
    /// Tells this share from the one it replaced (`Snat::install`).
    serial: u32,
    /// The pool the blocks were cut from: a port goes back into its block
    /// by this, even once the pool has left the tables (a flow of a
    /// removed pool ends after the removal).
    pool: Option<Pool>,
    /// Every block of the pool, address-major; only this worker's are
    /// used here.
    blocks: Vec<Block>,
    /// This worker's free blocks.
    free: Vec<u32>,
    /// Each private host's blocks.
    hosts: FastMap<u32, ArrayVec<u32, MAX_BLOCKS_PER_HOST>>,
    /// Ports handed out.
    in_use: u64,
}

/// A worker's share of a pool, cut on the control plane (it allocates)
/// and handed to the worker, which swaps it in without allocating or
/// freeing ([`Snat::install`]); the share it replaces comes back in the
/// same box, to be freed on the control plane.
#[derive(Debug)]
pub struct ShareCut(Box<PoolShare>);

/// What one worker hands out, of every pool: a share per pool slot (its
/// tenant's), sized for every slot at start so that a pool added at
/// runtime needs no allocation on the worker.
#[derive(Debug, Default)]
pub struct Snat {
    shares: Vec<Option<Box<PoolShare>>>,
    mappings: FastMap<Inside, Mapping>,
    by_outside: FastMap<Outside, Inside>,
    /// Mappings the maps were sized for.
    capacity: usize,
}

/// Why no port could be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnatError {
    /// The host holds `max_blocks` blocks, all full, or no block is free.
    Exhausted,
}

impl Snat {
    /// Worker `me` of `workers`'s share of `pools`, for up to `capacity`
    /// mappings (at most one per flow, so the flow table's capacity), with
    /// room for pools in `slots` slots.
    pub fn new(pools: &Pools, me: u16, workers: u16, capacity: usize, slots: usize) -> Self {
        let mut shares: Vec<Option<Box<PoolShare>>> = pools
            .pools
            .iter()
            .map(|p| p.as_ref().map(|p| Snat::cut(p, me, workers, 0).0))
            .collect();
        shares.resize_with(shares.len().max(slots), || None);
        Snat {
            shares,
            mappings: FastMap::with_capacity_and_hasher(capacity, Default::default()),
            by_outside: FastMap::with_capacity_and_hasher(capacity, Default::default()),
            capacity,
        }
    }

    /// Worker `me` of `workers`'s share of `pool`, told apart from the
    /// share it replaces by `serial`: on the control plane, which
    /// allocates it.
    pub fn cut(pool: &Pool, me: u16, workers: u16, serial: u32) -> ShareCut {
        let workers = u32::from(workers.max(1));
        let n = pool.blocks();
        let per_addr = pool.blocks_per_addr();
        let free: Vec<u32> = (0..n)
            .filter(|b| (b % per_addr) % workers == u32::from(me))
            .rev()
            .collect();
        let hosts = FastMap::with_capacity_and_hasher(free.len(), Default::default());
        ShareCut(Box::new(PoolShare {
            serial,
            pool: Some(pool.clone()),
            blocks: vec![Block::default(); n as usize],
            free,
            hosts,
            in_use: 0,
        }))
    }

    /// Puts `cut` (`None` for none) in as the share of pool `slot`; `cut`
    /// then holds the share it replaced, for the control plane to free.
    /// Nothing is allocated or freed: the worker calls it. A slot past
    /// the room made at start is left alone (`false`).
    pub fn install(&mut self, slot: u32, cut: &mut Option<ShareCut>) -> bool {
        let Some(place) = self.shares.get_mut(slot as usize) else {
            return false;
        };
        let mut incoming = cut.take().map(|c| c.0);
        std::mem::swap(place, &mut incoming);
        *cut = incoming.map(ShareCut);
        true
    }

    /// Whether `inside`'s mapping came from the share pool `inside.pool`
    /// has now: one cut from a pool since replaced is not.
    pub fn is_current(&self, inside: Inside) -> bool {
        let share = self.share(inside.pool).map(|s| s.serial);
        self.mappings
            .get(&inside)
            .is_some_and(|m| Some(m.share) == share)
    }

    fn share(&self, pool: u32) -> Option<&PoolShare> {
        self.shares.get(pool as usize)?.as_deref()
    }

    /// The mapping of `inside` (with one more flow on it), made if it has
    /// none.
    pub fn map(&mut self, pools: &Pools, inside: Inside) -> Result<Outside, SnatError> {
        let current = self.share(inside.pool).map(|s| s.serial);
        if let Some(m) = self.mappings.get_mut(&inside) {
            // A mapping of a share since replaced takes no new flow: its
            // port may be outside the new share, or another worker's. Its
            // flows are revoked as they are re-decided; then it is gone.
            if Some(m.share) != current {
                return Err(SnatError::Exhausted);
            }
            m.refs += 1;
            return Ok(m.outside);
        }
        if self.mappings.len() >= self.capacity {
            return Err(SnatError::Exhausted);
        }
        let pool = pools.get(inside.pool).ok_or(SnatError::Exhausted)?;
        let share = self
            .shares
            .get_mut(inside.pool as usize)
            .and_then(|s| s.as_deref_mut())
            .ok_or(SnatError::Exhausted)?;
        // A share hands out the blocks it was cut from: a pool whose
        // addresses or ports changed since (at runtime) has none here
        // until the worker is given a share of it, as an added pool.
        if !share.pool.as_ref().is_some_and(|p| p.same_blocks(pool)) {
            return Err(SnatError::Exhausted);
        }
        // A new share has every block free, though mappings of the one it
        // replaced may still hold ports of them: those stay taken here
        // until their mappings end (`release`).
        let outside = loop {
            let o = share.take_port(pool, inside.private)?;
            if !self.by_outside.contains_key(&o) {
                break o;
            }
        };
        let serial = share.serial;
        self.mappings.insert(
            inside,
            Mapping {
                outside,
                refs: 1,
                share: serial,
            },
        );
        self.by_outside.insert(outside, inside);
        Ok(outside)
    }

    /// The mapping whose public end is `outside`, with one more flow on
    /// it (endpoint-independent filtering lets a stranger in through it).
    pub fn join(&mut self, outside: Outside) -> Option<Inside> {
        let inside = *self.by_outside.get(&outside)?;
        let current = self.share(inside.pool).map(|s| s.serial);
        let m = self.mappings.get_mut(&inside)?;
        // As in `map`: a mapping of a replaced share takes no new flow.
        if Some(m.share) != current {
            return None;
        }
        m.refs += 1;
        Some(inside)
    }

    /// One flow of `inside`'s mapping ended; the port is free with the last.
    /// The port goes back by the pool this worker's share was cut from,
    /// whatever `_pools` (the tables in use) holds now: the flow may end
    /// because its pool was removed.
    pub fn release(&mut self, _pools: &Pools, inside: Inside) {
        // One hash and probe for the lookup and the removal. `entry`
        // reserves room (as `map`'s insert does) only for a key it does
        // not find (hashbrown's `rustc_entry`), which a release does not
        // meet: every flow holding `inside` holds one of its references.
        let Entry::Occupied(mut m) = self.mappings.entry(inside) else {
            return;
        };
        m.get_mut().refs -= 1;
        if m.get().refs > 0 {
            return;
        }
        let Mapping { outside, .. } = m.remove();
        if self.by_outside.get(&outside) == Some(&inside) {
            self.by_outside.remove(&outside);
        }
        // The port goes back to the share in place if it has it taken:
        // the share it came from, or one that replaced it, in which `map`
        // kept it taken while this mapping lived.
        let share = self.shares.get_mut(inside.pool as usize);
        if let Some(share) = share.and_then(|s| s.as_deref_mut()) {
            share.put_port(outside);
        }
    }

    /// Live mappings.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// Ports this worker has in use in pool `pool`.
    pub fn ports_in_use(&self, pool: u32) -> u64 {
        self.share(pool).map_or(0, |s| s.in_use)
    }
}

impl PoolShare {
    fn take_port(&mut self, pool: &Pool, host: u32) -> Result<Outside, SnatError> {
        let per_addr = pool.blocks_per_addr();
        let held = self.hosts.get(&host).map_or(&[][..], |b| b.as_slice());
        let with_room = held
            .iter()
            .copied()
            .find(|&b| self.blocks[b as usize].used != u64::MAX);
        let b = match with_room {
            Some(b) => b,
            None => {
                if held.len() >= usize::from(pool.max_blocks) {
                    return Err(SnatError::Exhausted);
                }
                let b = self.free.pop().ok_or(SnatError::Exhausted)?;
                self.blocks[b as usize].host = host;
                self.hosts.entry(host).or_default().push(b);
                b
            }
        };
        let block = &mut self.blocks[b as usize];
        let bit = (!block.used).trailing_zeros();
        block.used |= 1 << bit;
        self.in_use += 1;
        let addr = pool.addrs[(b / per_addr) as usize];
        let port = pool.lo + (b % per_addr) as u16 * BLOCK + bit as u16;
        Ok(Outside { addr, port })
    }

    /// Frees `outside`'s port if this share has it taken (a port it never
    /// handed out, or freed already, is left alone: its block would be
    /// freed twice).
    fn put_port(&mut self, outside: Outside) {
        let Some(pool) = &self.pool else {
            return;
        };
        let Some(a) = pool.addrs.iter().position(|&a| a == outside.addr) else {
            return;
        };
        let Some(in_addr) = pool.block_in_addr(outside.port) else {
            return;
        };
        let b = a as u32 * pool.blocks_per_addr() + in_addr;
        let Some(block) = self.blocks.get_mut(b as usize) else {
            return;
        };
        let bit = 1 << ((outside.port - pool.lo) % BLOCK);
        if block.used & bit == 0 {
            return;
        }
        self.in_use -= 1;
        block.used &= !bit;
        if block.used != 0 {
            return;
        }
        let host = std::mem::take(&mut block.host);
        self.free.push(b);
        if let Some(held) = self.hosts.get_mut(&host) {
            held.retain(|x| *x != b);
            if held.is_empty() {
                self.hosts.remove(&host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(max_blocks: u16, hi: u16) -> Pools {
        let mut p = Pools::default();
        p.insert(Pool {
            tenant: TenantId(0),
            addrs: vec![0x0303_0301, 0x0303_0302],
            lo: 1024,
            hi,
            max_blocks,
            eif: false,
        })
        .unwrap();
        p
    }

    fn inside(private: u32, port: u16) -> Inside {
        Inside {
            pool: 0,
            private,
            port,
        }
    }

    #[test]
    fn a_port_comes_back_after_its_pool_left_the_tables() {
        let p = pools(2, 65535);
        let mut s = Snat::new(&p, 0, 1, 1000, 0);
        s.map(&p, inside(7, 5000)).unwrap();
        assert_eq!(s.ports_in_use(0), 1);
        // The flow ends because its pool was removed: the tables in use
        // no longer hold it.
        s.release(&Pools::default(), inside(7, 5000));
        assert_eq!((s.ports_in_use(0), s.len()), (0, 0));
        // Its block is free again: the host can take every block anew.
        for port in 0..2 * BLOCK {
            s.map(&p, inside(7, port)).unwrap();
        }
        assert!(s.map(&p, inside(7, 9999)).is_err(), "max_blocks");
    }

    #[test]
    fn a_pool_changed_since_the_share_was_cut_gets_no_ports_from_it() {
        let p = pools(1, 1087);
        let mut s = Snat::new(&p, 0, 1, 1000, 0);
        let mut fewer = p.clone();
        let mut one = fewer.remove(TenantId(0)).unwrap();
        one.addrs.truncate(1);
        fewer.insert(one).unwrap();
        // The share has a block on the second address, which the pool no
        // longer has: refused, not a port of an address out of the pool.
        for host in 1..4 {
            assert_eq!(s.map(&fewer, inside(host, 5000)), Err(SnatError::Exhausted));
        }
        assert_eq!(s.ports_in_use(0), 0);
        s.map(&p, inside(1, 5000)).unwrap();
    }

    #[test]
    fn one_mapping_per_private_end_and_ports_come_back() {
        let p = pools(2, 65535);
        let mut s = Snat::new(&p, 0, 1, 1000, 0);
        let a = s.map(&p, inside(7, 5000)).unwrap();
        assert_eq!(
            s.map(&p, inside(7, 5000)).unwrap(),
            a,
            "endpoint-independent"
        );
        let b = s.map(&p, inside(7, 5001)).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.ports_in_use(0), 2);
        s.release(&p, inside(7, 5000));
        assert_eq!(s.ports_in_use(0), 2, "one flow still maps it");
        s.release(&p, inside(7, 5000));
        assert_eq!(s.ports_in_use(0), 1);
        assert_eq!(s.join(a), None, "its public end is gone");
        assert_eq!(s.join(b), Some(inside(7, 5001)));
    }

    #[test]
    fn a_host_gets_its_blocks_and_no_more_and_never_a_live_port() {
        let p = pools(2, 65535);
        let mut s = Snat::new(&p, 0, 1, 10_000, 0);
        let mut seen = std::collections::HashSet::new();
        for port in 0..2 * BLOCK {
            let o = s.map(&p, inside(7, port)).unwrap();
            assert!(seen.insert(o), "{o:?} handed out twice");
        }
        assert_eq!(s.map(&p, inside(7, 9999)), Err(SnatError::Exhausted));
        // Another host is not starved by the first.
        assert!(s.map(&p, inside(8, 1)).is_ok());
        // A port freed in a full block is handed out again.
        s.release(&p, inside(7, 3));
        assert!(s.map(&p, inside(7, 9999)).is_ok());
    }

    #[test]
    fn blocks_are_striped_so_a_port_names_its_worker() {
        let p = pools(64, 65535);
        let pool = p.get(0).unwrap().clone();
        for me in 0..3u16 {
            let mut s = Snat::new(&p, me, 3, 10_000, 0);
            for port in 0..500 {
                let o = s.map(&p, inside(9, port)).unwrap();
                assert_eq!(pool.owner_of_port(o.port, 3), Some(me));
                assert!(o.port >= 1024);
            }
        }
    }

    #[test]
    fn the_pool_runs_dry_and_says_so() {
        // One block per address, two addresses: 128 ports in all.
        let p = pools(64, 1024 + BLOCK - 1);
        let mut s = Snat::new(&p, 0, 1, 10_000, 0);
        for host in 0..2 {
            for port in 0..BLOCK {
                s.map(&p, inside(100 + host, port)).unwrap();
            }
        }
        assert_eq!(s.map(&p, inside(200, 1)), Err(SnatError::Exhausted));
        assert_eq!(s.ports_in_use(0), 128);
    }

    #[test]
    fn pools_do_not_overlap() {
        let mut p = pools(2, 65535);
        let again = Pool {
            tenant: TenantId(1),
            addrs: vec![0x0303_0302],
            lo: 1024,
            hi: 65535,
            max_blocks: 2,
            eif: false,
        };
        assert_eq!(p.insert(again.clone()), Err(PoolError::Addr(0x0303_0302)));
        let tiny = Pool {
            addrs: vec![9],
            hi: 1030,
            ..again
        };
        assert_eq!(p.insert(tiny), Err(PoolError::Range));
    }

    #[test]
    fn a_share_swapped_in_keeps_the_old_shares_ports_out_of_its_own() {
        let p = pools(4, 1087);
        let pool = p.get(0).unwrap().clone();
        let mut s = Snat::new(&p, 0, 1, 1000, 4);
        let old = s.map(&p, inside(7, 5000)).unwrap();
        assert!(s.is_current(inside(7, 5000)));
        // A new share of the same pool: the old mapping is not its own.
        let mut cut = Some(Snat::cut(&pool, 0, 1, 1));
        assert!(s.install(0, &mut cut));
        assert!(cut.is_some(), "the replaced share comes back to be freed");
        assert!(!s.is_current(inside(7, 5000)));
        // Its port, released, does not land in the new share, which hands
        // out the same first port to another host.
        s.release(&p, inside(7, 5000));
        assert_eq!(s.ports_in_use(0), 0);
        assert_eq!(s.map(&p, inside(8, 5000)).unwrap(), old);
        assert_eq!(s.ports_in_use(0), 1);
        // A slot past the room made at start is left alone.
        let mut far = Some(Snat::cut(&pool, 0, 1, 2));
        assert!(!s.install(9, &mut far));
    }

    /// A share swapped in while a mapping of the old one lives (a pool's
    /// `eif` or `max_blocks` changed at runtime, its blocks the same):
    /// the new share has every block free, yet the old mapping's port is
    /// not handed to another host while it lives, the old mapping takes
    /// no new flow, and its end neither frees the port twice nor takes
    /// another mapping's entry with it. Before, the next host got the
    /// very same public address and port.
    #[test]
    fn a_live_mapping_of_a_replaced_share_keeps_its_port_to_itself() {
        let p = pools(4, 1087);
        let pool = p.get(0).unwrap().clone();
        let mut s = Snat::new(&p, 0, 1, 1000, 4);
        let old = s.map(&p, inside(7, 5000)).unwrap();
        let mut cut = Some(Snat::cut(&pool, 0, 1, 1));
        assert!(s.install(0, &mut cut));
        // Another host: another port.
        let other = s.map(&p, inside(8, 6000)).unwrap();
        assert_ne!(other, old);
        // The old mapping takes no new flow (its flows are revoked as
        // they are re-decided)...
        assert_eq!(s.map(&p, inside(7, 5000)), Err(SnatError::Exhausted));
        // nor a stranger through it (endpoint-independent filtering)...
        assert_eq!(s.join(old), None);
        // ...and when its flow ends, its port is free again, once, and the
        // other host's mapping is still found from outside.
        s.release(&p, inside(7, 5000));
        assert_eq!(s.join(other), Some(inside(8, 6000)));
        assert_eq!(s.ports_in_use(0), 1);
        s.release(&p, inside(8, 6000));
        s.release(&p, inside(8, 6000));
        assert_eq!(s.ports_in_use(0), 0);
        let again = s.map(&p, inside(9, 7000)).unwrap();
        assert_eq!(again, old, "the first port, free once more");
        assert_eq!(s.ports_in_use(0), 1);
    }
}
