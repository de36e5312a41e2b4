//! Tenants: who a GRE key names, which hosts may speak for it, which inner
//! addresses it owns.
//!
//! Classification is a table, not a device per tunnel: an open-addressing
//! hash from key to tenant, looked up once per frame, behind a per-worker
//! cache of what it and the host check decided ([`HostCache`]; VPP's GRE
//! input keeps one entry) because frames arrive in runs from a few hosts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::firewall::Rules;
use crate::flow::Zone;
use crate::lpm::Lpm;
use crate::tables::TunnelAdj;
use crate::wire::Ipv4Addr;

/// A tenant's slot: its index into the tenant table and the per-tenant
/// counters. Stable while the tenant lives, whatever else is added or
/// removed; a removed tenant's slot is given to another only after every
/// worker has swept the removed one's flows (docs/decisions.md, "Runtime
/// changes").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u32);

/// The most tenant slots: a flow keeps its tenant's slot in 16 bits.
pub const MAX_TENANTS: usize = u16::MAX as usize;

impl TenantId {
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The slot in the 16 bits a flow keeps it in: [`TenantTable`] holds
    /// fewer than [`MAX_TENANTS`] slots, so nothing is lost.
    #[inline]
    pub fn slot16(self) -> u16 {
        self.0 as u16
    }
}

/// How a tenant's frames ride in GRE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// Ethernet in GRE (protocol 0x6558), as Linux gretap: ARP runs inside
    /// the tunnel.
    Gretap,
    /// IPv4 in GRE (protocol 0x0800).
    Ipv4,
}

/// An IPv4 prefix as network and mask, for the cheap containment test the
/// inner source check does per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: u32,
    pub mask: u32,
}

impl Net {
    /// `None` if `len` > 32; host bits are cleared.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Net> {
        let mask = match len {
            0 => 0,
            1..=32 => u32::MAX << (32 - u32::from(len)),
            _ => return None,
        };
        Some(Net {
            addr: u32::from(addr) & mask,
            mask,
        })
    }

    #[inline]
    pub fn contains(self, ip: u32) -> bool {
        ip & self.mask == self.addr
    }
}

/// The optional GRE words tgw writes on everything it sends into a
/// tenant's tunnels: the checksum (RFC 2784 C) and the sequence number
/// (RFC 2890 S). A Linux host whose tunnel has `csum` or `seq` drops what
/// comes without them (`ip_tunnel_rcv`: its `icsum` and `iseq`), and one
/// without `csum` drops what comes with a checksum: they must match the
/// host's tunnel, hence per tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreOptions {
    pub checksum: bool,
    pub sequence: bool,
}

impl GreOptions {
    /// The bytes the options add to a key-only GRE header.
    #[inline]
    pub const fn extra_len(self) -> usize {
        (self.checksum as usize + self.sequence as usize) * 4
    }

    /// Whether any option is on.
    #[inline]
    pub const fn any(self) -> bool {
        self.checksum || self.sequence
    }
}

/// One tenant's part of a snapshot: who it is, and everything a flow of
/// it is decided under (its routes, tunnels and rules). Shared between
/// snapshots until something of the tenant changes: a change to one
/// tenant rebuilds this and nothing of the others.
#[derive(Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub key: u32,
    pub encap: Encap,
    /// Underlay addresses allowed to send with this key, sorted.
    pub hosts: Vec<u32>,
    /// Inner source prefixes the tenant owns.
    pub prefixes: Vec<Net>,
    /// The gateway's MAC inside this tenant's gretap tunnels.
    pub mac: [u8; 6],
    /// The optional GRE words of what tgw sends into its tunnels.
    pub gre: GreOptions,
    /// Names this version of the tenant's decisions: a new one whenever
    /// its routes, tunnels, rules, elastic IPs or pool change. A flow
    /// records the epoch it was decided under, and a packet of a flow
    /// with another is decided again by the full path (`Conn::epoch`).
    pub epoch: u32,
    /// The tenant's VRF: destination → [`NextHop`](crate::tables::NextHop)
    /// value.
    pub vrf: Lpm,
    /// Toward each tunnel host, by the index a [`NextHop::Tunnel`]
    /// (crate::tables::NextHop) names.
    pub tunnels: Vec<TunnelAdj>,
    /// The next GRE sequence number of each tunnel (zero and unused unless
    /// the tenant sends them): see docs/decisions.md, "GRE checksums and
    /// sequence numbers on send".
    pub gre_seq: Box<[AtomicU32]>,
    /// The rules a new flow of the tenant must pass.
    pub firewall: Rules,
}

impl Tenant {
    /// The same tenant at another epoch: for a change to what its flows
    /// were decided under that is not in its own tables (an elastic IP,
    /// its pool). Its tunnels' sequence numbers go on where they were.
    pub fn with_epoch(&self, epoch: u32) -> Tenant {
        Tenant {
            id: self.id,
            name: self.name.clone(),
            key: self.key,
            encap: self.encap,
            hosts: self.hosts.clone(),
            prefixes: self.prefixes.clone(),
            mac: self.mac,
            gre: self.gre,
            epoch,
            vrf: self.vrf.clone(),
            tunnels: self.tunnels.clone(),
            gre_seq: self
                .gre_seq
                .iter()
                .map(|s| AtomicU32::new(s.load(Ordering::Relaxed)))
                .collect(),
            firewall: self.firewall.clone(),
        }
    }

    #[inline]
    pub fn has_host(&self, outer_src: u32) -> bool {
        self.hosts.binary_search(&outer_src).is_ok()
    }

    #[inline]
    pub fn owns(&self, inner_src: u32) -> bool {
        self.prefixes.iter().any(|n| n.contains(inner_src))
    }
}

/// Key → tenant, open addressing with linear probing at load ≤ 1/2, and
/// the tenants by slot. Each tenant is shared with the snapshots before
/// it, and so are the parts of the table a change does not touch: the
/// slots come in chunks of [`CHUNK`], each shared until a tenant in it
/// changes, and the key index is shared until a key comes or goes. A
/// change to one tenant copies one chunk and the list of chunks (a few
/// hundred pointers at 10k tenants), not every tenant's; a tenant added or
/// removed also copies the key index (8 bytes a slot of it).
#[derive(Clone, Debug, Default)]
pub struct TenantTable {
    /// `(key, tenant index + 1)`; 0 in the second field marks an empty slot.
    slots: Arc<Vec<(u32, u32)>>,
    chunks: Vec<Arc<Chunk>>,
    /// One past the highest slot holding a tenant.
    end: usize,
    live: usize,
    /// Tenants that send GRE sequence numbers.
    sequenced: usize,
}

/// Tenant slots a chunk of [`TenantTable`] holds: what a change to one
/// tenant copies besides the list of chunks.
pub const CHUNK: usize = 256;

type Chunk = [Option<Arc<Tenant>>; CHUNK];

fn empty_chunk() -> Arc<Chunk> {
    Arc::new(std::array::from_fn(|_| None))
}

/// Why a tenant table could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantError {
    DuplicateKey(u32),
    TooMany,
}

impl TenantTable {
    /// Builds the table; tenant `i` of `tenants` gets `TenantId(i)`.
    pub fn new(mut tenants: Vec<Tenant>) -> Result<TenantTable, TenantError> {
        for (i, t) in tenants.iter_mut().enumerate() {
            t.id = TenantId(u32::try_from(i).map_err(|_| TenantError::TooMany)?);
        }
        Self::from_slots(tenants.into_iter().map(|t| Some(Arc::new(t))).collect())
    }

    /// Builds the table from tenants by slot (`None` for a free slot);
    /// each tenant's `id` must be its slot.
    pub fn from_slots(tenants: Vec<Option<Arc<Tenant>>>) -> Result<TenantTable, TenantError> {
        if tenants.len() >= MAX_TENANTS {
            return Err(TenantError::TooMany);
        }
        let mut table = TenantTable::default();
        for (i, t) in tenants.into_iter().enumerate() {
            let Some(t) = t else { continue };
            debug_assert_eq!(t.id.index(), i, "a tenant's id is its slot");
            table.place(t);
        }
        table.slots = Arc::new(table.index(table.live)?);
        Ok(table)
    }

    /// This table with `tenant` in its slot (`tenant.id`), added or
    /// replacing the one there.
    pub fn with(&self, tenant: Arc<Tenant>) -> Result<TenantTable, TenantError> {
        let mut next = self.clone();
        next.set(tenant)?;
        Ok(next)
    }

    /// This table without the tenant in slot `id`.
    pub fn without(&self, id: TenantId) -> TenantTable {
        let mut next = self.clone();
        next.remove(id);
        next
    }

    /// Puts `tenant` in its slot (`tenant.id`), added or replacing the one
    /// there; what it does not touch stays shared with the tables this one
    /// was cloned from.
    pub fn set(&mut self, tenant: Arc<Tenant>) -> Result<(), TenantError> {
        if tenant.id.index() + 1 >= MAX_TENANTS {
            return Err(TenantError::TooMany);
        }
        let key = tenant.key;
        let old_key = self.get(tenant.id).map(|t| t.key);
        if old_key != Some(key) {
            if self.by_key(key).is_some() {
                return Err(TenantError::DuplicateKey(key));
            }
            if let Some(old) = old_key {
                remove_key(Arc::make_mut(&mut self.slots).as_mut_slice(), old);
            }
            let keys = self.live + usize::from(old_key.is_none());
            if keys * 2 > self.slots.len() {
                // Grows by rebuilding: a doubling, amortised over the adds.
                let mut bigger = self.index(keys)?;
                insert_key(&mut bigger, key, tenant.id)?;
                self.slots = Arc::new(bigger);
            } else {
                insert_key(
                    Arc::make_mut(&mut self.slots).as_mut_slice(),
                    key,
                    tenant.id,
                )?;
            }
        }
        self.place(tenant);
        Ok(())
    }

    /// Removes the tenant in slot `id`, if any.
    pub fn remove(&mut self, id: TenantId) {
        let i = id.index();
        let Some(chunk) = self.chunks.get_mut(i / CHUNK) else {
            return;
        };
        if chunk[i % CHUNK].is_none() {
            return;
        }
        let Some(old) = Arc::make_mut(chunk)[i % CHUNK].take() else {
            return;
        };
        remove_key(Arc::make_mut(&mut self.slots).as_mut_slice(), old.key);
        self.live -= 1;
        self.sequenced -= usize::from(old.gre.sequence);
        while self.end > 0 && self.get(TenantId(self.end as u32 - 1)).is_none() {
            self.end -= 1;
        }
        self.chunks.truncate(self.end.div_ceil(CHUNK));
    }

    /// Puts `tenant` in its chunk (copied if shared) and counts it; the
    /// key index is the caller's.
    fn place(&mut self, tenant: Arc<Tenant>) {
        let i = tenant.id.index();
        if i / CHUNK >= self.chunks.len() {
            self.chunks.resize_with(i / CHUNK + 1, empty_chunk);
        }
        self.sequenced += usize::from(tenant.gre.sequence);
        let old = Arc::make_mut(&mut self.chunks[i / CHUNK])[i % CHUNK].replace(tenant);
        match old {
            Some(old) => self.sequenced -= usize::from(old.gre.sequence),
            None => self.live += 1,
        }
        self.end = self.end.max(i + 1);
    }

    /// A key index of every tenant, sized for `keys` keys at load ≤ 1/2.
    fn index(&self, keys: usize) -> Result<Vec<(u32, u32)>, TenantError> {
        let size = (keys * 2).next_power_of_two().max(8);
        let mut slots = vec![(0u32, 0u32); size];
        for t in self.iter() {
            insert_key(&mut slots, t.key, t.id)?;
        }
        Ok(slots)
    }

    /// The shared tenant in slot `id`, for a snapshot built from this one.
    pub fn shared(&self, id: TenantId) -> Option<&Arc<Tenant>> {
        let i = id.index();
        self.chunks.get(i / CHUNK)?[i % CHUNK].as_ref()
    }

    /// The tenant named by GRE key `key`.
    #[inline]
    pub fn by_key(&self, key: u32) -> Option<&Tenant> {
        let size = self.slots.len();
        if size == 0 {
            return None;
        }
        let mut s = slot_of(key, size);
        loop {
            let (k, v) = self.slots[s];
            if v == 0 {
                return None;
            }
            if k == key {
                return self.get(TenantId(v - 1));
            }
            s = (s + 1) & (size - 1);
        }
    }

    #[inline]
    pub fn get(&self, id: TenantId) -> Option<&Tenant> {
        let i = id.index();
        self.chunks.get(i / CHUNK)?[i % CHUNK].as_deref()
    }

    /// Slots, free ones included: one past the highest tenant id.
    pub fn slots(&self) -> usize {
        self.end
    }

    /// Tenants.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether some tenant sends GRE sequence numbers.
    pub fn any_sequenced(&self) -> bool {
        self.sequenced > 0
    }

    /// The tenants, by slot.
    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .flatten()
            .map(|t| &**t)
    }

    /// Whether slot `id`'s chunk is the same memory in both tables: what
    /// a change did not touch is shared (for tests).
    pub fn shares_chunk_with(&self, other: &TenantTable, id: TenantId) -> bool {
        let c = id.index() / CHUNK;
        match (self.chunks.get(c), other.chunks.get(c)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether both tables use the same key index (for tests).
    pub fn shares_index_with(&self, other: &TenantTable) -> bool {
        Arc::ptr_eq(&self.slots, &other.slots)
    }
}

/// Adds `key` → `id` to an index with room for it.
fn insert_key(slots: &mut [(u32, u32)], key: u32, id: TenantId) -> Result<(), TenantError> {
    let size = slots.len();
    let mut s = slot_of(key, size);
    loop {
        match slots[s] {
            (_, 0) => {
                slots[s] = (key, id.0 + 1);
                return Ok(());
            }
            (k, _) if k == key => return Err(TenantError::DuplicateKey(k)),
            _ => s = (s + 1) & (size - 1),
        }
    }
}

/// Takes `key` out of an index, moving back the entries after it that
/// probed past its place (deletion without tombstones under linear
/// probing), so that every key is still found from its home slot.
fn remove_key(slots: &mut [(u32, u32)], key: u32) {
    let size = slots.len();
    if size == 0 {
        return;
    }
    let mut hole = slot_of(key, size);
    loop {
        match slots[hole] {
            (_, 0) => return,
            (k, _) if k == key => break,
            _ => hole = (hole + 1) & (size - 1),
        }
    }
    slots[hole] = (0, 0);
    let mut j = hole;
    loop {
        j = (j + 1) & (size - 1);
        let (k, v) = slots[j];
        if v == 0 {
            return;
        }
        let home = slot_of(k, size);
        // The entry may stay if its home lies cyclically in (hole, j].
        let stays = if hole <= j {
            hole < home && home <= j
        } else {
            hole < home || home <= j
        };
        if !stays {
            slots[hole] = (k, v);
            slots[j] = (0, 0);
            hole = j;
        }
    }
}

/// Fibonacci hashing: keys are often sequential (1000, 2000, ...), and the
/// multiply spreads them over the high bits, which the shift keeps.
#[inline]
fn slot_of(key: u32, size: usize) -> usize {
    let h = u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - size.trailing_zeros())) as usize & (size - 1)
}

/// What decap decides of a GRE frame's key and outer source, per worker:
/// the tenant the key names, and that the source is one of its hosts
/// ([`TenantTable::by_key`], then [`Tenant::has_host`]'s search), kept for
/// the frames after it from the same host. VPP's GRE input keeps one
/// entry (the last tunnel); frames of many tenants interleave in a burst
/// (1000 tenants take turns in the `decap` profile), so this keeps
/// [`HOST_CACHE_SETS`] sets of two, the newer first.
///
/// Only answers that pass are kept: an unknown key or a foreign host is
/// looked up again each time (and dropped by the caller), so garbage
/// cannot fill the cache, and one tenant's hosts can at worst evict
/// another's entries, which then costs that tenant the lookup it saved,
/// never a frame. Every entry holds for the tables it was taken from
/// alone: a new snapshot (a key given to another tenant, a host removed)
/// makes them all stale at once, by a stamp rather than by clearing.
#[derive(Clone, Debug)]
pub struct HostCache {
    sets: Box<[[HostEntry; 2]; HOST_CACHE_SETS]>,
    /// The tables generation the entries stamped `stamp` were taken from.
    generation: u64,
    /// Moves on with every generation seen; entries with another are stale.
    /// Zero is no entry's: the sets are cleared when it wraps.
    stamp: u32,
}

/// Sets of the per-worker [`HostCache`] (two entries each, 32 bytes an
/// entry: 64 KiB a worker).
pub const HOST_CACHE_SETS: usize = 1024;

#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct HostEntry {
    /// `key << 32 | host`: one compare.
    pair: u64,
    stamp: u32,
    tenant: HostTenant,
}

// A set is two entries, one 64-byte line.
const _: () = assert!(std::mem::size_of::<HostEntry>() == 32);

/// What the underlay stage reads of a frame's tenant, kept in its
/// [`HostCache`] entry: the same tables hold the same tenant, and the
/// stage reads it there rather than through [`TenantTable::get`]'s chunk
/// and slot (11 instructions a frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTenant {
    pub id: TenantId,
    pub epoch: u32,
    /// The tenant's flow zone ([`Zone::tenant`]), found once for the
    /// entry rather than for each frame and again in its hit.
    pub zone: Zone,
    pub mac: [u8; 6],
    pub encap: Encap,
}

impl HostTenant {
    /// `None` for a tenant whose zone does not fit, which no table holds
    /// ([`MAX_TENANTS`] is far below [`Zone::MAX`]).
    fn of(t: &Tenant) -> Option<HostTenant> {
        Some(HostTenant {
            id: t.id,
            epoch: t.epoch,
            zone: Zone::tenant(t.id.index())?,
            mac: t.mac,
            encap: t.encap,
        })
    }
}

impl Default for HostTenant {
    fn default() -> Self {
        HostTenant {
            id: TenantId(0),
            epoch: 0,
            zone: Zone::PUBLIC,
            mac: [0; 6],
            encap: Encap::Ipv4,
        }
    }
}

/// Why [`HostCache::lookup`] found no tenant for a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMiss {
    /// No tenant has the key.
    UnknownKey,
    /// The key's tenant does not list the outer source among its hosts.
    WrongHost,
}

impl Default for HostCache {
    fn default() -> Self {
        HostCache {
            sets: Box::new([[HostEntry::default(); 2]; HOST_CACHE_SETS]),
            generation: 0,
            stamp: 1,
        }
    }
}

impl HostCache {
    /// The tenant of GRE key `key` in `table` (of tables `generation`), if
    /// `host` is one of its hosts.
    #[inline(always)]
    pub fn lookup<'t>(
        &mut self,
        table: &'t TenantTable,
        generation: u64,
        key: u32,
        host: u32,
    ) -> Result<&'t Tenant, HostMiss> {
        self.hold(generation);
        let hit = self.lookup_held(table, key, host)?;
        // Same tables: the tenant the entry names is there.
        table.get(hit.id).ok_or(HostMiss::UnknownKey)
    }

    /// Makes the entries answer for tables `generation` (those of a
    /// burst: the underlay stage holds them once, not for each frame).
    #[inline(always)]
    pub fn hold(&mut self, generation: u64) {
        if generation != self.generation {
            self.renew(generation);
        }
    }

    /// As [`HostCache::lookup`], in `table`, of the generation last
    /// held, and the tenant as its entry keeps it.
    ///
    /// The answer is read in place, in the way that holds it: a copy of
    /// either way's entry was merged into one on the stack, and copied
    /// again where the caller tested it (callgrind: 6 instructions a
    /// frame). Swapping a hit in the second way to the front cost more:
    /// a third of the `decap` profile's frames found their entry second.
    /// Each way returns its own reference: a way's index, taken out of
    /// the compares and indexed with after them, had the entry's address
    /// computed again from the set's (callgrind, `pipeline_staged decap`:
    /// 10 instructions a frame with the spills around it).
    #[inline(always)]
    pub fn lookup_held(
        &mut self,
        table: &TenantTable,
        key: u32,
        host: u32,
    ) -> Result<&HostTenant, HostMiss> {
        let pair = u64::from(key) << 32 | u64::from(host);
        let i = set_of(pair);
        let stamp = self.stamp;
        let [a, b] = &self.sets[i];
        if a.pair == pair && a.stamp == stamp {
            return Ok(&self.sets[i][0].tenant);
        }
        if b.pair == pair && b.stamp == stamp {
            return Ok(&self.sets[i][1].tenant);
        }
        // A miss that passes is kept first.
        self.miss(table, pair, i)?;
        Ok(&self.sets[i][0].tenant)
    }

    /// The lookups the cache saves, and the answer kept first in set `i`
    /// when it passes (the older of the two second).
    #[inline(never)]
    fn miss(&mut self, table: &TenantTable, pair: u64, i: usize) -> Result<(), HostMiss> {
        let (key, host) = ((pair >> 32) as u32, pair as u32);
        let t = table.by_key(key).ok_or(HostMiss::UnknownKey)?;
        if !t.has_host(host) {
            return Err(HostMiss::WrongHost);
        }
        let tenant = HostTenant::of(t).ok_or(HostMiss::UnknownKey)?;
        let set = &mut self.sets[i];
        set[1] = set[0];
        set[0] = HostEntry {
            pair,
            stamp: self.stamp,
            tenant,
        };
        Ok(())
    }

    /// Forgets every entry: the tables changed.
    #[cold]
    fn renew(&mut self, generation: u64) {
        self.generation = generation;
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Once in 2^32 snapshots: no entry may keep a stamp that
            // comes round again.
            self.sets.fill([HostEntry::default(); 2]);
            self.stamp = 1;
        }
    }
}

/// The set of `key << 32 | host`: Fibonacci hashing, whose high bits
/// mix every bit of both (keys and hosts are often sequential).
#[inline(always)]
fn set_of(pair: u64) -> usize {
    let h = pair.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - HOST_CACHE_SETS.trailing_zeros())) as usize & (HOST_CACHE_SETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(key: u32) -> Tenant {
        Tenant {
            id: TenantId(0),
            name: format!("t{key}"),
            key,
            encap: Encap::Gretap,
            hosts: vec![1, 2, 3],
            prefixes: vec![Net::new(Ipv4Addr::new(10, 0, 0, 0), 24).unwrap()],
            mac: [2, 0, 0, 0, 0, 1],
            gre: GreOptions::default(),
            epoch: 1,
            vrf: Lpm::empty(),
            tunnels: Vec::new(),
            gre_seq: Box::new([]),
            firewall: Rules::default(),
        }
    }

    #[test]
    fn every_key_finds_its_tenant_and_no_other() {
        let keys: Vec<u32> = (0..5000).map(|i| i * 1000).chain([u32::MAX, 7]).collect();
        let table = TenantTable::new(keys.iter().map(|&k| tenant(k)).collect()).unwrap();
        for (i, &k) in keys.iter().enumerate() {
            let t = table.by_key(k).unwrap();
            assert_eq!((t.key, t.id), (k, TenantId(i as u32)));
        }
        for missing in [1, 999, 1001, u32::MAX - 1] {
            assert!(table.by_key(missing).is_none(), "key {missing}");
        }
        assert!(TenantTable::default().by_key(0).is_none());
    }

    fn in_slot(slot: u32, key: u32, sequence: bool) -> Arc<Tenant> {
        let mut t = tenant(key);
        t.id = TenantId(slot);
        t.gre.sequence = sequence;
        Arc::new(t)
    }

    #[test]
    fn a_change_to_one_tenant_copies_its_chunk_and_shares_the_rest() {
        let before =
            TenantTable::new((0..3 * CHUNK as u32).map(|k| tenant(k * 7)).collect()).unwrap();
        let mut after = before.clone();
        after.set(in_slot(5, 35, false)).unwrap();
        assert!(!after.shares_chunk_with(&before, TenantId(5)));
        assert!(after.shares_chunk_with(&before, TenantId(CHUNK as u32)));
        assert!(after.shares_chunk_with(&before, TenantId(2 * CHUNK as u32)));
        assert!(
            after.shares_index_with(&before),
            "the same key: the index is not copied"
        );
        assert_eq!(after.by_key(35).unwrap().id, TenantId(5));
        assert!(!Arc::ptr_eq(
            after.shared(TenantId(5)).unwrap(),
            before.shared(TenantId(5)).unwrap()
        ));
        // A new key, an added tenant, a removed one: the index is copied,
        // the untouched chunks still are not.
        let mut more = after.clone();
        more.set(in_slot(CHUNK as u32 * 3, 1, false)).unwrap();
        more.remove(TenantId(6));
        assert!(!more.shares_index_with(&after));
        assert!(more.shares_chunk_with(&after, TenantId(CHUNK as u32)));
        assert_eq!(
            before.by_key(42).unwrap().id,
            TenantId(6),
            "the old table is as it was"
        );
        assert!(more.by_key(42).is_none());
    }

    #[test]
    fn changes_in_place_answer_as_a_table_built_anew() {
        // Random adds, replacements (some with a new key) and removals,
        // checked after each against a model: every key finds its slot,
        // no other key finds anything, counts hold.
        let mut rng = crate::lpm::testgen::XorShift64::new(11);
        let mut table = TenantTable::default();
        let mut model: std::collections::BTreeMap<u32, (u32, bool)> = Default::default();
        for step in 0..4000 {
            let slot = rng.below(600);
            if rng.below(4) == 0 {
                table.remove(TenantId(slot));
                model.remove(&slot);
            } else {
                // Few keys, so that probes collide and removals move them.
                let key = rng.below(2000) * 64;
                let seq = rng.below(5) == 0;
                let taken = model.iter().any(|(&s, &(k, _))| k == key && s != slot);
                match table.set(in_slot(slot, key, seq)) {
                    Ok(()) => {
                        assert!(!taken, "step {step}: key {key} taken, yet set");
                        model.insert(slot, (key, seq));
                    }
                    Err(e) => {
                        assert!(taken, "step {step}: {e:?}");
                        assert_eq!(e, TenantError::DuplicateKey(key));
                    }
                }
            }
            assert_eq!(table.len(), model.len(), "step {step}");
            let highest = model.keys().next_back().map_or(0, |&s| s as usize + 1);
            assert_eq!(table.slots(), highest, "step {step}");
            assert_eq!(table.any_sequenced(), model.values().any(|v| v.1));
            for (&slot, &(key, _)) in &model {
                assert_eq!(
                    table.by_key(key).map(|t| t.id),
                    Some(TenantId(slot)),
                    "step {step}"
                );
                assert_eq!(table.get(TenantId(slot)).unwrap().key, key);
            }
            if step % 100 == 0 {
                for key in (0..2000 * 64).step_by(64) {
                    let owner = model.iter().find(|(_, v)| v.0 == key).map(|(&s, _)| s);
                    assert_eq!(table.by_key(key).map(|t| t.id.0), owner, "step {step}");
                }
            }
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            TenantTable::new(vec![tenant(5), tenant(5)]).unwrap_err(),
            TenantError::DuplicateKey(5)
        );
    }

    #[test]
    fn hosts_and_prefixes_check() {
        let table = TenantTable::new(vec![tenant(1)]).unwrap();
        let t = table.by_key(1).unwrap();
        assert_eq!(t.hosts, vec![1, 2, 3]);
        assert!(t.has_host(2) && !t.has_host(4));
        assert!(t.owns(u32::from(Ipv4Addr::new(10, 0, 0, 7))));
        assert!(!t.owns(u32::from(Ipv4Addr::new(10, 0, 1, 7))));
        assert_eq!(Net::new(Ipv4Addr::new(1, 2, 3, 4), 0).unwrap().mask, 0);
        assert!(Net::new(Ipv4Addr::new(1, 2, 3, 4), 33).is_none());
    }

    #[test]
    fn host_cache_forgets_on_a_new_generation() {
        let a = TenantTable::new(vec![tenant(1), tenant(2)]).unwrap();
        let b = TenantTable::new(vec![tenant(2), tenant(1)]).unwrap();
        let mut cache = HostCache::default();
        assert_eq!(cache.lookup(&a, 1, 1, 2).unwrap().id, TenantId(0));
        assert_eq!(cache.lookup(&a, 1, 1, 2).unwrap().id, TenantId(0));
        assert_eq!(
            cache.lookup(&b, 2, 1, 2).unwrap().id,
            TenantId(1),
            "stale entry after a swap"
        );
        assert_eq!(cache.lookup(&b, 2, 9, 2).unwrap_err(), HostMiss::UnknownKey);
        assert_eq!(cache.lookup(&b, 2, 1, 4).unwrap_err(), HostMiss::WrongHost);
        // A host the next tables no longer list for the tenant: refused
        // at once, though its entry was just used.
        let mut without = tenant(1);
        without.hosts = vec![1, 3];
        let c = TenantTable::new(vec![without, tenant(2)]).unwrap();
        assert_eq!(cache.lookup(&b, 2, 1, 2).unwrap().id, TenantId(1));
        assert_eq!(cache.lookup(&c, 3, 1, 2).unwrap_err(), HostMiss::WrongHost);
        assert_eq!(cache.lookup(&c, 3, 1, 3).unwrap().id, TenantId(0));
    }

    #[test]
    fn host_cache_entries_keep_what_the_stage_reads_of_their_tables_tenant() {
        let a = TenantTable::new(vec![tenant(1), tenant(2)]).unwrap();
        // Key and host unchanged, the rest of the tenant new: the next
        // tables' answer, from the first frame under them.
        let mut changed = tenant(1);
        changed.epoch = 9;
        changed.mac = [2, 0, 0, 0, 0, 7];
        changed.encap = Encap::Ipv4;
        let b = TenantTable::new(vec![tenant(2), changed]).unwrap();
        let mut cache = HostCache::default();
        for (table, generation) in [(&a, 1), (&b, 2)] {
            let t = table.by_key(1).unwrap();
            // The miss's answer, then the entry's.
            for _ in 0..2 {
                cache.hold(generation);
                let h = cache.lookup_held(table, 1, 2).unwrap();
                assert_eq!(
                    (h.id, h.epoch, h.zone, h.mac, h.encap),
                    (
                        t.id,
                        t.epoch,
                        Zone::tenant(t.id.index()).unwrap(),
                        t.mac,
                        t.encap
                    ),
                    "generation {generation}"
                );
            }
        }
    }

    #[test]
    fn host_cache_answers_as_the_table_for_many_hosts_and_keeps_them() {
        // 3000 tenants of two hosts each, more than the cache holds: every
        // answer is the table's, whatever was evicted.
        let tenants = (0..3000u32)
            .map(|k| {
                let mut t = tenant(k);
                t.hosts = vec![k * 2 + 1, k * 2 + 2];
                t
            })
            .collect();
        let table = TenantTable::new(tenants).unwrap();
        let mut cache = HostCache::default();
        for round in 0..3 {
            for k in 0..3000u32 {
                for host in [k * 2 + 1, k * 2 + 2, k * 2 + 3] {
                    let want = table.by_key(k).filter(|t| t.has_host(host)).map(|t| t.id);
                    let got = cache.lookup(&table, 7, k, host).ok().map(|t| t.id);
                    assert_eq!(got, want, "round {round}, key {k}, host {host}");
                }
            }
        }
        // A few hundred hosts taking turns stay cached: a second pass
        // finds each in its set.
        for k in 0..300u32 {
            cache.lookup(&table, 7, k, k * 2 + 1).unwrap();
        }
        let cached = (0..300u32)
            .filter(|&k| {
                let pair = u64::from(k) << 32 | u64::from(k * 2 + 1);
                let set = &cache.sets[set_of(pair)];
                set.iter().any(|e| e.pair == pair && e.stamp == cache.stamp)
            })
            .count();
        assert!(cached >= 290, "{cached} of 300 cached");
    }

    #[test]
    fn host_cache_stamps_wrap_without_reviving_old_entries() {
        let a = TenantTable::new(vec![tenant(1), tenant(2)]).unwrap();
        let b = TenantTable::new(vec![tenant(2), tenant(1)]).unwrap();
        let mut cache = HostCache {
            stamp: u32::MAX,
            generation: 1,
            ..Default::default()
        };
        assert_eq!(cache.lookup(&a, 1, 1, 2).unwrap().id, TenantId(0));
        // The wrap clears: the entry of stamp u32::MAX is gone, and the
        // stamp that comes round (1) finds nothing of before.
        assert_eq!(cache.lookup(&b, 2, 1, 2).unwrap().id, TenantId(1));
        assert_eq!(cache.stamp, 1);
        // Sets never written hold key 0, host 0 and tenant 0 with stamp
        // 0: the stamp skips 0, so they match nothing.
        assert_eq!(cache.lookup(&b, 2, 0, 0).unwrap_err(), HostMiss::UnknownKey);
    }
}
