//! The control plane's share of the packet path, on the main lcore: the
//! neighbour resolver, fed by the workers' punt rings, sending through the
//! first worker's inject ring (DESIGN.md: ARP timers live here, never on a
//! worker).

use std::sync::Arc;
use std::time::Instant;

use dataplane::neighbour::{Lookup, NeighKey, NeighbourWriter};
use dataplane::resolver::{Io, Resolver, ResolverStats};
use dataplane::snapshot::Publisher;
use dataplane::tables::Tables;
use dataplane::tenant::TenantId;
use rte::{Burst, Mbuf, Mempool, Ring};

use crate::frame::MbufFrame;

/// Bursts taken from each punt ring per tick: a flood of punts must not
/// keep the timers from running.
const MAX_BURSTS_PER_TICK: usize = 64;

type Owned = MbufFrame<Mbuf>;

pub struct Control<'p> {
    resolver: Resolver<Owned>,
    tables: Arc<Publisher<Tables>>,
    punt: Vec<&'p Ring<'p>>,
    inject: &'p Ring<'p>,
    pool: &'p Mempool<'p>,
    start: Instant,
    /// Frames the resolver sent that the inject ring would not take.
    pub inject_full: u64,
}

/// The resolver's way out: mbufs from the pool, frames to the inject ring.
struct Outbox<'a> {
    pool: &'a Mempool<'a>,
    frames: Burst,
    inject: &'a Ring<'a>,
    full: &'a mut u64,
}

impl Outbox<'_> {
    fn flush(&mut self) {
        self.inject.enqueue_burst(&mut self.frames);
        *self.full += self.frames.len() as u64;
        Mbuf::free_bulk(&mut self.frames);
    }
}

impl Io<Owned> for Outbox<'_> {
    fn alloc(&mut self) -> Option<Owned> {
        Mbuf::alloc(self.pool).map(MbufFrame::owned)
    }

    fn send(&mut self, port: u16, mut f: Owned) {
        f.mbuf.set_port(port);
        if self.frames.is_full() {
            self.flush();
        }
        self.frames.push(f.mbuf);
    }
}

impl<'p> Control<'p> {
    pub fn new(
        resolver: Resolver<Owned>,
        tables: Arc<Publisher<Tables>>,
        punt: Vec<&'p Ring<'p>>,
        inject: &'p Ring<'p>,
        pool: &'p Mempool<'p>,
    ) -> Self {
        Control {
            resolver,
            tables,
            punt,
            inject,
            pool,
            start: Instant::now(),
            inject_full: 0,
        }
    }

    /// Takes what the workers punted and runs the timers.
    pub fn tick(&mut self) {
        let now = self.start.elapsed().as_millis() as u64;
        let tables = self.tables.current();
        let mut out = Outbox {
            pool: self.pool,
            frames: Burst::new(),
            inject: self.inject,
            full: &mut self.inject_full,
        };
        let mut burst = Burst::new();
        for ring in &self.punt {
            for _ in 0..MAX_BURSTS_PER_TICK {
                if ring.dequeue_burst(&mut burst) == 0 {
                    break;
                }
                for m in burst.drain(..) {
                    self.resolver
                        .punted(&tables, MbufFrame::owned(m), now, &mut out);
                }
            }
        }
        self.resolver.poll(&tables, now, &mut out);
        out.flush();
    }

    pub fn stats(&self) -> ResolverStats {
        self.resolver.stats().clone()
    }

    /// The neighbour table's writer, for a change that builds tunnels
    /// (their next hops get pinned slots) or sets static neighbours.
    pub fn writer(&mut self) -> &mut NeighbourWriter {
        self.resolver.writer()
    }

    /// Lets go of neighbours nothing holds any more and of removed
    /// tenants' hosts, once the snapshot without them is published.
    pub fn release(&mut self, keys: &[NeighKey], tenants: &[TenantId]) {
        if !keys.is_empty() || !tenants.is_empty() {
            self.resolver.release(keys, tenants);
        }
    }

    /// The resolver, for a change: its neighbour table's writer, and
    /// [`Resolver::release`] of what the change let go.
    pub fn resolver(&mut self) -> &mut Resolver<Owned> {
        &mut self.resolver
    }

    /// The neighbour table as it stands: key, what workers see, static.
    pub fn neighbours(&mut self) -> Vec<(NeighKey, Lookup, bool)> {
        self.resolver.writer().entries()
    }
}
