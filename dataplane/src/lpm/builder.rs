//! The mutable side: a map of routes, and its compilation into an [`Lpm`].
//!
//! Compilation sorts the routes by (address, length). That order is a
//! depth-first walk of the binary trie: a prefix comes before everything it
//! contains, and siblings come in address order. So one linear pass can both
//! expand the short prefixes of a node into its slots (a later prefix that
//! overlaps an earlier one is always nested in it, hence longer, hence the
//! right one to win) and cut the longer ones into contiguous runs, one per
//! child. No binary trie is materialised, which is what keeps a 1M-route
//! build well under a second.

use std::collections::HashMap;

use super::trie::{Leaf, Node, Poptrie, Slot};
use super::{
    Lpm, LpmError, Prefix, Trie, EMPTY, MAX_NEXT_HOP, MAX_TOP_BITS, MIN_TOP_BITS, SMALL_MAX_ROUTES,
};

const SLOTS: usize = 1 << super::STRIDE;

/// A mutable set of routes, compiled into an immutable [`Lpm`] by
/// [`build`](Self::build).
#[derive(Clone, Debug, Default)]
pub struct LpmBuilder {
    routes: HashMap<Prefix, u32>,
}

/// A route in compilation order.
#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: u32,
    len: u8,
    nh: u32,
}

impl LpmBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `n` routes.
    pub fn with_capacity(n: usize) -> Self {
        LpmBuilder {
            routes: HashMap::with_capacity(n),
        }
    }

    /// Adds a route, replacing the next hop of an identical prefix (which is
    /// returned). Refuses next hops above [`MAX_NEXT_HOP`].
    pub fn insert(&mut self, prefix: Prefix, next_hop: u32) -> Result<Option<u32>, LpmError> {
        if next_hop > MAX_NEXT_HOP {
            return Err(LpmError::NextHopOutOfRange { next_hop });
        }
        Ok(self.routes.insert(prefix, next_hop))
    }

    /// Removes the route for exactly `prefix`, returning its next hop.
    /// Covering and nested routes stay.
    pub fn remove(&mut self, prefix: Prefix) -> Option<u32> {
        self.routes.remove(&prefix)
    }

    /// The next hop of exactly `prefix`, not a longest match.
    pub fn get(&self, prefix: Prefix) -> Option<u32> {
        self.routes.get(&prefix).copied()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Removes every route.
    pub fn clear(&mut self) {
        self.routes.clear();
    }

    /// The routes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, u32)> + '_ {
        self.routes.iter().map(|(&p, &nh)| (p, nh))
    }

    /// Compiles the routes: up to [`SMALL_MAX_ROUTES`] into the small,
    /// scanned form (see [`Lpm::is_small`]), more into a Poptrie with a
    /// first stride chosen from their number: 8 bits (256 direct slots,
    /// 8 KiB) up to 1024 routes, one more bit per doubling after that
    /// (about 8 bytes of slots per route), at most 18 bits (8 MiB).
    pub fn build(&self) -> Lpm {
        if self.routes.is_empty() {
            return Lpm::empty();
        }
        if self.routes.len() <= SMALL_MAX_ROUTES {
            let mut r: Vec<(u32, u8, u32)> = self
                .routes
                .iter()
                .map(|(p, &nh)| (p.addr(), p.length(), nh))
                .collect();
            if let Some(t) = Lpm::small(&mut r) {
                return t;
            }
        }
        let bits = auto_top_bits(self.routes.len());
        self.compile(bits)
    }

    /// Compiles the routes into a Poptrie with a first stride of `bits`,
    /// whatever their number, for callers that know better than the
    /// heuristic (or benchmark it).
    pub fn build_with_top_bits(&self, bits: u8) -> Result<Lpm, LpmError> {
        if !(MIN_TOP_BITS..=MAX_TOP_BITS).contains(&bits) {
            return Err(LpmError::TopBitsOutOfRange { bits });
        }
        Ok(self.compile(bits))
    }

    fn compile(&self, bits: u8) -> Lpm {
        if self.routes.is_empty() {
            return Lpm::empty();
        }
        let mut entries: Vec<Entry> = self
            .routes
            .iter()
            .map(|(p, &nh)| Entry {
                addr: p.addr(),
                len: p.length(),
                nh,
            })
            .collect();
        entries.sort_unstable_by_key(|e| (u64::from(e.addr) << 8) | u64::from(e.len));

        // The next-hop dictionary: every value a leaf can take, "no route"
        // included, sorted so that the compiled form does not depend on
        // hash order.
        let mut hops: Vec<u32> = entries.iter().map(|e| e.nh).collect();
        hops.push(EMPTY);
        hops.sort_unstable();
        hops.dedup();
        hops.shrink_to_fit();
        // A leaf's index by binary search: a few compares in a dictionary
        // that sits in L1, cheaper than hashing for every leaf run.
        let dict = hops.clone();
        let find = move |v: u32| dict.binary_search(&v).unwrap_or(usize::MAX);
        let trie = if hops.len() < usize::from(u8::MAX) {
            let enc = move |v| u8::try_from(find(v)).unwrap_or(u8::MAX);
            Trie::Byte(Compiler::new(enc).build(&entries, u32::from(bits), hops))
        } else if hops.len() < usize::from(u16::MAX) {
            let enc = move |v| u16::try_from(find(v)).unwrap_or(u16::MAX);
            Trie::Narrow(Compiler::new(enc).build(&entries, u32::from(bits), hops))
        } else {
            Trie::Wide(Compiler::new(|v| v).build(&entries, u32::from(bits), Vec::new()))
        };
        Lpm {
            top_bits: bits,
            routes: u32::try_from(entries.len()).unwrap_or(u32::MAX),
            trie,
            ..Lpm::empty()
        }
    }
}

impl Extend<(Prefix, u32)> for LpmBuilder {
    /// Adds routes, silently skipping next hops above [`MAX_NEXT_HOP`]; use
    /// [`insert`](LpmBuilder::insert) to hear about them.
    fn extend<I: IntoIterator<Item = (Prefix, u32)>>(&mut self, iter: I) {
        for (p, nh) in iter {
            let _ = self.insert(p, nh);
        }
    }
}

fn auto_top_bits(routes: usize) -> u8 {
    // ceil(log2(routes)) - 2, clamped: about one direct slot (32 bytes) per
    // four routes, which resolves a full table's /24s in the slots
    // themselves (18 bits) and keeps a table of a few hundred routes at
    // 8 KiB.
    let log = usize::BITS - routes.saturating_sub(1).leading_zeros();
    u8::try_from(log.saturating_sub(2))
        .unwrap_or(u8::MAX)
        .clamp(8, 18)
}

struct Compiler<L: Leaf, E: Fn(u32) -> L> {
    nodes: Vec<Node<L>>,
    leaves: Vec<L>,
    /// A next hop (or [`EMPTY`]) as a leaf.
    enc: E,
}

/// The 6 bits of `addr` at bit offset `depth` (< 32); bits past the end of
/// the address read as zero, which is how the last, partial stride is
/// expanded.
fn chunk(addr: u32, depth: u32) -> usize {
    ((addr << depth) >> (32 - super::STRIDE)) as usize
}

impl<L: Leaf, E: Fn(u32) -> L> Compiler<L, E> {
    fn new(enc: E) -> Self {
        Compiler {
            nodes: Vec::new(),
            leaves: Vec::new(),
            enc,
        }
    }

    fn build(mut self, entries: &[Entry], bits: u32, hops: Vec<u32>) -> Poptrie<L> {
        let (slots, uniform) = self.direct(entries, bits);
        let Compiler {
            mut nodes,
            mut leaves,
            ..
        } = self;
        nodes.shrink_to_fit();
        leaves.shrink_to_fit();
        Poptrie {
            shift: 32 - bits,
            slots,
            nodes,
            leaves,
            hops,
            uniform,
        }
    }

    /// The direct-pointed slots, one per value of the first `bits` bits:
    /// uniform where no longer route splits the block, the block's node
    /// where longer routes do and it is leaf-only and fits, else a full
    /// node. Returns them and how many are uniform.
    fn direct(&mut self, entries: &[Entry], bits: u32) -> (Vec<Slot<L>>, u32) {
        // First the value each block has from routes of at most `bits`.
        let mut cover = vec![EMPTY; 1usize << bits];
        let shift = 32 - bits;
        for e in entries.iter().filter(|e| u32::from(e.len) <= bits) {
            let t = (e.addr >> shift) as usize;
            let n = 1usize << (bits - u32::from(e.len));
            // Sorted by address then length: a route is written after every
            // route containing it, so the longest wins.
            if let Some(s) = cover.get_mut(t..t + n) {
                s.fill(e.nh);
            }
        }
        let enc = &self.enc;
        let mut slots: Vec<Slot<L>> = cover.iter().map(|&v| Slot::uniform(enc(v))).collect();
        let mut uniform = index(cover.len());
        // The routes longer than `bits` under one block are contiguous in
        // the sorted order.
        let mut i = 0;
        while let Some(e) = entries.get(i) {
            if u32::from(e.len) <= bits {
                i += 1;
                continue;
            }
            let t = (e.addr >> shift) as usize;
            let end = i + entries[i..]
                .iter()
                .take_while(|x| u32::from(x.len) > bits && (x.addr >> shift) as usize == t)
                .count();
            let group = &entries[i..end];
            let value = cover.get(t).copied().unwrap_or(EMPTY);
            if group.iter().any(|e| e.nh != value) {
                let spill = self.leaves.len();
                let node = self.node(group, bits, value);
                let slot = match Slot::leaf_only(&node) {
                    Some(s) => s,
                    None => {
                        let n = index(self.nodes.len());
                        self.nodes.push(node);
                        Slot::full(n)
                    }
                };
                // A leaf-only node that fits spilled nothing.
                debug_assert!(slot.leafvec & 1 == 0 || self.leaves.len() == spill);
                if let Some(s) = slots.get_mut(t) {
                    *s = slot;
                }
                uniform -= 1;
            }
            i = end;
        }
        (slots, uniform)
    }

    fn node(&mut self, group: &[Entry], depth: u32, cover: u32) -> Node<L> {
        let span = depth + super::STRIDE;
        let mut vals = [cover; SLOTS];
        // Per child slot, its run [start, end) in `group`.
        let mut runs = [(0usize, 0usize); SLOTS];
        let mut vector = 0u64;
        for (k, e) in group.iter().enumerate() {
            let pos = chunk(e.addr, depth);
            let len = u32::from(e.len);
            if len <= span {
                let n = 1usize << (span - len);
                if let Some(s) = vals.get_mut(pos..pos + n) {
                    s.fill(e.nh);
                }
            } else {
                if vector & (1 << pos) == 0 {
                    vector |= 1 << pos;
                    runs[pos].0 = k;
                }
                runs[pos].1 = k + 1;
            }
        }
        // A child all of whose routes repeat its cover is just a leaf.
        for (pos, &(s, e)) in runs.iter().enumerate() {
            if vector & (1 << pos) != 0 && group[s..e].iter().all(|x| x.nh == vals[pos]) {
                vector &= !(1 << pos);
            }
        }

        let mut inline = L::NONE_INLINE;
        let mut runs_seen = 0usize;
        let spill = self.leaves.len();
        let mut leafvec = 0u64;
        let mut prev = None;
        for (pos, &v) in vals.iter().enumerate() {
            if vector & (1 << pos) == 0 && prev != Some(v) {
                leafvec |= 1 << pos;
                let leaf = (self.enc)(v);
                match inline.as_mut().get_mut(runs_seen) {
                    Some(slot) => *slot = leaf,
                    None => self.leaves.push(leaf),
                }
                runs_seen += 1;
                prev = Some(v);
            }
        }
        // Without spilled runs no in-bounds rank reaches the spill base.
        let base0 = if runs_seen > L::INLINE {
            index(spill).wrapping_sub(index(L::INLINE) + 1)
        } else {
            u32::MAX
        };

        // Children of one node must be contiguous: reserve them all, then
        // fill each in slot order.
        let base1 = self.nodes.len();
        self.nodes.resize(
            base1 + vector.count_ones() as usize,
            Node::uniform((self.enc)(EMPTY)),
        );
        let mut child = base1;
        for (pos, &(s, e)) in runs.iter().enumerate() {
            if vector & (1 << pos) != 0 {
                let n = self.node(&group[s..e], span, vals[pos]);
                if let Some(slot) = self.nodes.get_mut(child) {
                    *slot = n;
                }
                child += 1;
            }
        }
        Node {
            vector,
            leafvec,
            base1: index(base1).wrapping_sub(1),
            base0,
            inline,
        }
    }
}

/// A vector index as stored in a node. Tables are far below 2^31 entries
/// (that would be 48 GiB of nodes); saturating keeps an impossible overflow
/// a wrong answer rather than a panic.
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_bits() {
        assert_eq!(auto_top_bits(0), 8);
        assert_eq!(auto_top_bits(16), 8);
        assert_eq!(auto_top_bits(1024), 8);
        assert_eq!(auto_top_bits(1025), 9);
        assert_eq!(auto_top_bits(100_000), 15);
        assert_eq!(auto_top_bits(1_000_000), 18);
        assert_eq!(auto_top_bits(4_000_000), 18);
    }

    #[test]
    fn top_bits_range() {
        let b = LpmBuilder::new();
        assert_eq!(
            b.build_with_top_bits(0),
            Err(LpmError::TopBitsOutOfRange { bits: 0 })
        );
        assert_eq!(
            b.build_with_top_bits(21),
            Err(LpmError::TopBitsOutOfRange { bits: 21 })
        );
        assert!(b.build_with_top_bits(20).is_ok());
    }

    #[test]
    fn next_hop_range() {
        let mut b = LpmBuilder::new();
        assert_eq!(
            b.insert(Prefix::DEFAULT, MAX_NEXT_HOP + 1),
            Err(LpmError::NextHopOutOfRange {
                next_hop: MAX_NEXT_HOP + 1
            })
        );
        assert_eq!(b.insert(Prefix::DEFAULT, MAX_NEXT_HOP), Ok(None));
        assert_eq!(b.build().lookup(42), Some(MAX_NEXT_HOP));
    }
}
