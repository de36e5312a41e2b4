//! Flows decided under an older state of their tenant, decided again.
//!
//! A flow records its tenant's epoch when it is made (`Conn::epoch`); the
//! control plane gives a tenant a new epoch whenever something a flow of
//! it was decided under changes: its routes, tunnels, rules, elastic IPs
//! or pool, or the tenant itself. The fast path takes only flows of the
//! current epoch; the full path brings an older one up to date here, once,
//! by the same rules that would admit it now:
//!
//! - its translation must still stand: the elastic IP still bound to the
//!   same private address, the pool still the tenant's with the flow's
//!   address in it, the public prefix still the tenant's;
//! - the tenant's VRF must still lead its private end to a tunnel (the
//!   tunnel may be another: the flow follows the route), and an outbound
//!   flow's remote end to the public side;
//! - the tenant's rules in force must still admit its first packet.
//!
//! A flow that passes continues where it was (its TCP state, its NAT
//! port); one that does not ends, its NAT port back to the pool, and its
//! packet is dropped as `revoked`. This is the policy docs/decisions.md
//! ("Runtime changes") chooses: removing what admitted a flow ends it, as
//! VPP ends a static mapping's sessions, rather than nftables' keeping
//! established entries until flushed: an operator who removes a rule or an
//! elastic IP means the traffic to stop.

use super::*;

impl Pipeline {
    /// Brings flow `id` up to its tenant's epoch, or ends it.
    pub(super) fn current(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        id: FlowId,
    ) -> Result<(), DropReason> {
        let Some(conn) = self.flows.get(id) else {
            return Ok(());
        };
        let epoch = t.tenants.get(conn.tenant_id()).map(|x| x.epoch);
        if epoch == Some(conn.epoch) {
            return Ok(());
        }
        match self.still_admitted(t, id) {
            Some((tunnel, epoch)) => {
                if let Some(conn) = self.flows.get_mut(id) {
                    conn.tunnel = tunnel;
                    conn.epoch = epoch;
                    conn.inner = 0;
                    offload::redecided(self.offload.as_deref(), c, id, conn);
                }
                Ok(())
            }
            None => {
                if let Some(gone) = self.flows.remove(id) {
                    ended(&mut self.snat, &t.pools, c, &gone.value);
                    offload::removed(self.offload.as_deref(), c, &gone);
                }
                Err(D::Revoked)
            }
        }
    }

    /// A packet the full path is about to drop because its address has no
    /// flows now — an elastic IP unbound, a pool or a public prefix
    /// removed — may be one of a flow made before the change: that flow
    /// is decided again, and ended with the packet's drop as `revoked`.
    /// Otherwise the flow would outlive what admitted it, holding its
    /// tenant's quota and NAT port until it expired. `ip` starts at the
    /// IPv4 header; only packets that are drops anyway pay the lookup.
    pub(super) fn revoke_stale(&mut self, cx: Cx<'_>, ip: &[u8], zone: Zone) -> Option<DropReason> {
        let Cx { t, c } = cx;
        let now = self.now;
        if self.flows.is_empty() {
            return None;
        }
        let key = Tuple::parse(ip)?.key(zone);
        let (id, _) = self.flows.lookup(&key, now).hit()?;
        self.current(t, c, id).err()
    }

    /// Decides again a bounded slice of the flows whose tenant moved to a
    /// new epoch, round robin over the table. A flow whose packets no
    /// longer reach this worker — steering follows elastic IPs and pools,
    /// and an unbound address leads elsewhere — would otherwise hold its
    /// quota and NAT port until it expired; here it ends within a pass of
    /// the sweep.
    pub(super) fn sweep_stale(&mut self, t: &Tables, c: &WorkerCounters) {
        let cap = self.flows.capacity() as u32;
        for _ in 0..SWEEP_BUDGET.min(cap as usize) {
            let id = FlowId::new(self.stale_at);
            self.stale_at = if self.stale_at + 1 >= cap {
                0
            } else {
                self.stale_at + 1
            };
            let stale = self.flows.get(id).is_some_and(|conn| {
                t.tenants
                    .get(conn.tenant_id())
                    .is_some_and(|x| x.epoch != conn.epoch)
            });
            if stale {
                let _ = self.current(t, c, id);
            }
        }
    }

    /// The tunnel and epoch flow `id` has under `t`, if `t` still admits
    /// it.
    fn still_admitted(&self, t: &Tables, id: FlowId) -> Option<(u16, u32)> {
        let conn = self.flows.get(id)?;
        let [forward, reply] = self.flows.keys(id)?;
        let tenant = t.tenants.get(conn.tenant_id())?;
        let public = conn.to_public.addr();
        let private = conn.to_tenant.addr();
        let translated = match conn.snat {
            // The port must also come from the share this worker has
            // now: one cut from a pool since replaced may hand it out
            // again.
            Some(inside) => {
                self.snat.is_current(inside)
                    && t.pools
                        .get(inside.pool)
                        .is_some_and(|p| p.tenant == tenant.id && p.addrs.contains(&public))
            }
            None if public == private => t.ingress.lookup(public) == Some(tenant.id.0),
            None => t.eips.outbound(tenant.id, private) == Some(public),
        };
        if !translated {
            return None;
        }
        let tunnel = tunnel_to(t, tenant, private).ok()?;
        // The first packet, in the tenant's addresses: an inbound flow's
        // is its reply key (in the tenant's zone) turned around.
        let (dir, first) = if forward.zone() == Zone::PUBLIC {
            (FwDir::In, reply.reversed())
        } else {
            if t.route(tenant, forward.dst()) != Some(NextHop::Public) {
                return None;
            }
            (FwDir::Out, forward)
        };
        let (src, dst) = (first.src(), first.dst());
        let p = match IpProtocol(first.protocol()) {
            IpProtocol::TCP => Packet5::tcp(src, dst, first.src_port(), first.dst_port()),
            IpProtocol::UDP => Packet5::udp(src, dst, first.src_port(), first.dst_port()),
            IpProtocol::ICMP => Packet5::icmp(src, dst, 8, 0),
            _ => Packet5::other(first.protocol(), src, dst),
        };
        tenant
            .firewall
            .evaluate(dir, &p)
            .allowed()
            .then_some((tunnel, tenant.epoch))
    }
}
