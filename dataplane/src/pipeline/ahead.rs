//! A burst received ahead: its flows' buckets fetched while the burst
//! before it is processed.
//!
//! In a table of millions of flows a hit waits for DRAM lines (two
//! buckets, the entry, the value). Inside one burst the staged lookup
//! overlaps them, but the first keys' buckets have only the other keys'
//! hashing to arrive in, and about two misses a burst stay exposed whatever
//! the order (docs/perf.md, session 13). A worker whose queue gave a whole
//! burst (more is waiting) receives the next one before it processes the
//! current one, and hands it here: each frame's key is read and hashed and
//! its two buckets prefetched, nothing looked up and nothing kept, so the
//! next burst's own stage finds its buckets in the cache. The burst in hand
//! is still processed end to end under its own snapshot, and the next is
//! only prefetched, never processed early (docs/decisions.md).

use super::*;

/// An IPv4 header without options, as the stage's hits have.
const IHL: usize = 20;

impl Pipeline {
    /// Whether a worker should receive the next burst of a queue that
    /// gave a whole one before processing it: only from
    /// [`crate::flow::STAGED_FROM`] live flows ([`Pipeline::with_staged_from`]),
    /// where the stages look a burst up in bulk. Below, the table is in the
    /// cache and nothing is held.
    #[inline]
    pub fn looks_ahead(&self) -> bool {
        self.flows.len() >= self.staged_from
    }

    /// Starts bringing in the buckets the public stage's lookup of each
    /// plain frame of `frames`, received on `port`, will search. Frames of
    /// other ports are left alone: the underlay's key needs the tenant
    /// behind the tunnel, state this pass does not read. A frame the NIC
    /// marked is prefetched all the same (the stage will not look it up; a
    /// mark is rare where a worker receives whole bursts of hits).
    #[inline]
    pub fn prefetch_ahead<'a, P: Prefetch>(
        &self,
        t: &Tables,
        port: u16,
        frames: impl Iterator<Item = &'a [u8]>,
        pf: &P,
    ) {
        let public = t.ports.get(usize::from(port)).and_then(|p| p.role) == Some(Role::Public);
        if !public || !self.may_hit(t) {
            return;
        }
        for frame in frames {
            if let Some(key) = public_key(frame) {
                self.flows.prefetch_buckets(pf, &key);
            }
        }
    }
}

/// The key the public stage looks a TCP or UDP frame up by
/// (`Plain::parse`, `Plain::key`), read as far as a prefetch needs: the
/// addresses and the ports' word as the key keeps them. None of the
/// parser's checks (checksum, TTL, fragment, TCP flags, lengths past the
/// ports): a frame the stage then leaves to the full path costs two
/// prefetches, and the whole parse cost the daemon's worker ~100
/// instructions a frame (docs/perf.md, session 14). ICMP, whose key is
/// the echo's identifier twice, is left out.
#[inline(always)]
fn public_key(frame: &[u8]) -> Option<FlowKey> {
    // One length check for every byte read.
    let f = frame.first_chunk::<{ ETH + IHL + 4 }>()?;
    let (ip, protocol) = (ETH, IpProtocol(f[ETH + 9]));
    if f[12..14] != EtherType::IPV4.0.to_be_bytes()
        || f[ip] != 0x45
        || !(protocol == IpProtocol::TCP || protocol == IpProtocol::UDP)
    {
        return None;
    }
    let word = |at: usize| u32::from_le_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]);
    Some(FlowKey::from_wire(
        Zone::PUBLIC,
        protocol.0,
        word(ip + 12),
        word(ip + 16),
        word(ip + IHL),
    ))
}
