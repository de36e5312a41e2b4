//! Which worker owns a connection, when there are several.
//!
//! Every worker has its own flow table (DESIGN.md: the flow table is the
//! only state written on the fast path, and nothing on it is shared), so
//! both directions of a translated connection must be handled by the same
//! worker, whichever worker's queue they arrive on. The owner is computed
//! from what both directions know before any lookup: the connection as the
//! public side sees it — protocol, the remote end, and the elastic IP with
//! its port. From the Internet that is the packet's own tuple; from a tenant
//! it is the destination and the source's elastic IP, with the source
//! port (1:1 NAT keeps ports). A packet that arrives on another worker is
//! handed to its owner over a ring before anything in it changes, and the
//! owner processes it as if it had received it.
//!
//! Untranslated traffic (a tenant's own public prefixes, east-west,
//! anything to the gateway itself) keeps no state and stays where it
//! arrived.

/// This worker's place among the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steering {
    me: u16,
    workers: u16,
}

impl Steering {
    /// Worker `me` of `workers` (at least one). `None` if `me` is out of
    /// range.
    pub fn new(me: u16, workers: u16) -> Option<Steering> {
        (me < workers).then_some(Steering { me, workers })
    }

    pub fn me(self) -> u16 {
        self.me
    }

    pub fn workers(self) -> u16 {
        self.workers
    }

    /// The owner of the connection between `remote:remote_port` and the
    /// gateway's public `local:local_port`, if it is another worker.
    #[inline]
    pub fn elsewhere(
        self,
        protocol: u8,
        remote: u32,
        remote_port: u16,
        local: u32,
        local_port: u16,
    ) -> Option<u16> {
        if self.workers <= 1 {
            return None;
        }
        let owner = owner(
            protocol,
            remote,
            remote_port,
            local,
            local_port,
            self.workers,
        );
        (owner != self.me).then_some(owner)
    }
}

/// The worker, of `workers`, that owns a connection: a multiply-xorshift
/// mix of its public-side tuple, reduced without a division.
#[inline]
pub fn owner(
    protocol: u8,
    remote: u32,
    remote_port: u16,
    local: u32,
    local_port: u16,
    workers: u16,
) -> u16 {
    let a = u64::from(remote) << 32 | u64::from(local);
    let b = u64::from(protocol) << 32 | u64::from(remote_port) << 16 | u64::from(local_port);
    let mut h = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= h >> 29;
    h = h.wrapping_mul(0x1656_67b1_9e37_79f9);
    h ^= h >> 32;
    (((h & 0xffff_ffff) * u64::from(workers)) >> 32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_spread_over_the_workers() {
        for workers in 2..=8u16 {
            let mut seen = vec![0u32; usize::from(workers)];
            for port in 0..8000u16 {
                let w = owner(6, 0x0101_0107, 40000 + port, 0x0202_020b, 22, workers);
                seen[usize::from(w)] += 1;
            }
            let fair = 8000 / u32::from(workers);
            assert!(
                seen.iter()
                    .all(|&n| n > fair * 8 / 10 && n < fair * 12 / 10),
                "{workers} workers: {seen:?}"
            );
        }
    }

    #[test]
    fn one_worker_keeps_everything() {
        let s = Steering::new(0, 1).unwrap();
        assert_eq!(s.elsewhere(6, 1, 2, 3, 4), None);
        assert!(Steering::new(2, 2).is_none());
    }
}
