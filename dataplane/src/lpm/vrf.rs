//! Many tables, one per VRF, addressed by a dense id.

use super::Lpm;

/// A VRF's index into [`VrfTables`]. Ids are dense (0, 1, 2, …): the
/// control plane hands them out, so a lookup is an array index, not a hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VrfId(pub u32);

/// The routing tables of all VRFs, as one immutable snapshot.
///
/// An id without a table (never set, or past the end) looks up as "no
/// route", like an empty table: a packet of an unknown VRF is dropped by
/// the caller, never a panic here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VrfTables {
    tables: Vec<Lpm>,
}

static NO_TABLE: Lpm = Lpm::empty();

impl VrfTables {
    /// No VRFs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` VRFs.
    pub fn with_capacity(n: usize) -> Self {
        VrfTables {
            tables: Vec::with_capacity(n),
        }
    }

    /// Appends a table under the next free id.
    pub fn push(&mut self, table: Lpm) -> VrfId {
        let id = VrfId(u32::try_from(self.tables.len()).unwrap_or(u32::MAX));
        self.tables.push(table);
        id
    }

    /// Sets the table of `vrf`, returning the one it replaces. Ids below it
    /// that had none get empty tables (no heap memory each), which is why
    /// ids should be dense.
    pub fn set(&mut self, vrf: VrfId, table: Lpm) -> Lpm {
        let i = vrf.0 as usize;
        if i >= self.tables.len() {
            self.tables.resize_with(i + 1, Lpm::empty);
        }
        match self.tables.get_mut(i) {
            Some(t) => std::mem::replace(t, table),
            None => Lpm::empty(),
        }
    }

    /// The table of `vrf`, if one was set.
    pub fn get(&self, vrf: VrfId) -> Option<&Lpm> {
        self.tables.get(vrf.0 as usize)
    }

    /// Number of VRF ids in use (including empty ones).
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether there are no VRFs.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The tables with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (VrfId, &Lpm)> + '_ {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| (VrfId(u32::try_from(i).unwrap_or(u32::MAX)), t))
    }

    /// The next hop for `addr` in `vrf`.
    #[inline]
    pub fn lookup(&self, vrf: VrfId, addr: u32) -> Option<u32> {
        self.table(vrf).lookup(addr)
    }

    /// `N` lookups, each in its own VRF. Every lane's table header is
    /// read first, then every lookup runs; a lookup has no branch on a
    /// loaded value in the common case, so the core overlaps the lanes.
    #[inline]
    pub fn lookup_bulk<const N: usize>(
        &self,
        vrfs: &[VrfId; N],
        addrs: &[u32; N],
        out: &mut [Option<u32>; N],
    ) {
        let tables: [&Lpm; N] = std::array::from_fn(|i| self.table(vrfs[i]));
        for ((o, t), &a) in out.iter_mut().zip(tables).zip(addrs) {
            *o = t.lookup(a);
        }
    }

    /// Bytes used by all tables, including the per-VRF table headers.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.tables.capacity() - self.tables.len()) * std::mem::size_of::<Lpm>()
            + self.tables.iter().map(Lpm::memory_bytes).sum::<usize>()
    }

    fn table(&self, vrf: VrfId) -> &Lpm {
        self.tables.get(vrf.0 as usize).unwrap_or(&NO_TABLE)
    }
}

impl FromIterator<Lpm> for VrfTables {
    fn from_iter<I: IntoIterator<Item = Lpm>>(iter: I) -> Self {
        VrfTables {
            tables: iter.into_iter().collect(),
        }
    }
}
