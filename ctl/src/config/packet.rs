//! Settings of the packet path that are not tables: generated ICMP, TCP
//! MSS clamping and the ARP resolver's timers.

use std::ops::RangeInclusive;

/// Allowed [`Arp::max_pending`]: at least one frame must wait for the
/// answer, and more than 64 per neighbour only hoards mbufs.
pub const ARP_MAX_PENDING_RANGE: RangeInclusive<u16> = 1..=64;
/// Smallest [`Arp::retry_ms`]: faster retries flood a link whose neighbour
/// is simply down.
pub const ARP_RETRY_MS_MIN: u32 = 10;
/// Allowed [`Arp::retries`].
pub const ARP_RETRIES_RANGE: RangeInclusive<u32> = 1..=10;
/// Allowed [`Arp::entries`].
pub const ARP_ENTRIES_RANGE: RangeInclusive<u32> = 16..=1 << 20;
/// Allowed [`Arp::max_held`].
pub const ARP_MAX_HELD_RANGE: RangeInclusive<u32> = 4..=1 << 20;

/// `[icmp]`: the ICMP errors the gateway generates itself (Time Exceeded,
/// Fragmentation Needed, unreachables). Echo replies are not limited here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp {
    /// Errors a worker may generate per second for each tenant and side
    /// (back into the tenant's tunnels; out to the Internet about its
    /// traffic), each refilling its own token bucket (RFC 1812 4.3.2.8
    /// asks routers to limit them; one bucket per tenant keeps one
    /// tenant's flood from silencing another's path-MTU discovery). 0
    /// disables generated errors. Default 1000.
    pub rate_per_sec: u32,
    /// Depth of the bucket: errors that may go out at once after a quiet
    /// period. At least 1 unless `rate_per_sec` is 0. Default 50.
    pub burst: u32,
}

impl Default for Icmp {
    fn default() -> Self {
        Self {
            rate_per_sec: 1000,
            burst: 50,
        }
    }
}

/// `[tcp]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp {
    /// Lower the MSS option of TCP SYNs that cross the gateway so that a
    /// full segment fits the path MTU with the GRE overhead counted; spares
    /// the hosts the Fragmentation Needed round trip that firewalls often
    /// eat. Default true.
    pub mss_clamp: bool,
}

impl Default for Tcp {
    fn default() -> Self {
        Self { mss_clamp: true }
    }
}

/// `[arp]`: the resolver of next hops and tunnel hosts (static neighbours
/// are not subject to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// Seconds after which a learned neighbour is refreshed; at least 1.
    /// Default 300.
    pub reachable_s: u32,
    /// Milliseconds before an unanswered request is sent again; at least
    /// 10. Default 1000.
    pub retry_ms: u32,
    /// Frames held per unresolved neighbour while its answer is awaited;
    /// frames beyond it are dropped. 1..=64. Default 8.
    pub max_pending: u16,
    /// Requests sent before a neighbour counts as failed (its frames are
    /// dropped for as long again before it is asked for anew), and
    /// unanswered confirmations before a learned one is forgotten. 1..=10.
    /// Default 3.
    pub retries: u32,
    /// Neighbours the table holds: next hops, hosts on the public subnets,
    /// hosts inside gretap tunnels, static ones included. Fixed at start.
    /// 16..=1048576. Default 4096.
    pub entries: u32,
    /// Of `entries`, those kept for the neighbours of the ports (next hops,
    /// tunnel hosts, hosts on the public subnets, static ones included);
    /// the rest is for hosts inside tenants' gretap tunnels. Neither share
    /// can take from the other, so no tenant can crowd out the public
    /// side's or the underlay's neighbours. 1..=entries - 1. Default
    /// entries / 4.
    pub port_entries: u32,
    /// Hosts one tenant's gretap tunnels may have in the table (learned and
    /// static); more are not learned (counted `tenant_limit`).
    /// 1..=entries - port_entries. Default entries / 16.
    pub per_tenant: u32,
    /// Frames the resolver holds in all while their neighbours resolve:
    /// mbufs out of the pool every port receives into, counted by the
    /// pool-size check. A quarter is kept for frames of no tenant (the
    /// public side's and the gateway's own). 4..=1048576. Default 1024.
    pub max_held: u32,
    /// Frames held for one tenant's traffic (toward hosts inside its
    /// tunnels, from its addresses, or into its tunnels).
    /// 1..=max_held - max_held / 4. Default max_held / 8.
    pub held_per_tenant: u32,
}

impl Arp {
    /// The defaults of the shares for a table of `entries` and a hold of
    /// `max_held`.
    pub fn defaults_for(entries: u32, max_held: u32) -> Self {
        Self {
            entries,
            port_entries: (entries / 4).max(1),
            per_tenant: (entries / 16).max(1),
            max_held,
            held_per_tenant: (max_held / 8).max(1),
            ..Self::default()
        }
    }
}

impl Default for Arp {
    fn default() -> Self {
        Self {
            reachable_s: 300,
            retry_ms: 1000,
            max_pending: 8,
            retries: 3,
            entries: 4096,
            port_entries: 1024,
            per_tenant: 256,
            max_held: 1024,
            held_per_tenant: 128,
        }
    }
}

/// Allowed [`Flows::capacity`].
pub const FLOWS_CAPACITY_RANGE: RangeInclusive<u32> = 1..=1 << 28;

/// `[flows]`: each worker's flow table (NAT and firewall state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flows {
    /// Flows per worker, allocated at start. Default 65536.
    pub capacity: u32,
    /// Live flows one tenant may hold per worker, so that no tenant can
    /// fill the table for the others. 1..=capacity; default capacity / 4.
    pub per_tenant: u32,
    /// Of those, inbound flows that nobody inside has answered yet (a SYN
    /// flood, a scan): a flood fills this share and is refused beyond it
    /// (`unreplied_quota`), never the rest, so the tenant's established
    /// connections and the flows it opens itself go on.
    /// 1..=per_tenant; default per_tenant / 4.
    pub unreplied_per_tenant: u32,
    /// Such flows of all tenants together, per worker: floods toward
    /// several tenants leave the rest of the table to established and
    /// outbound flows. 1..=capacity; default capacity / 2.
    pub unreplied_total: u32,
    /// Seconds an unreplied inbound flow lives once its tenant holds half
    /// its share of them, instead of the transitory timeout: under a flood
    /// the share recycles. 1..=tcp_transitory_s; default 10.
    pub unreplied_s: u32,
    /// Seconds an established TCP connection lives without traffic; at
    /// least 7440 (RFC 5382 REQ-5). Default 7440.
    pub tcp_established_s: u32,
    /// Seconds a TCP connection lives while opening or closing; at least
    /// 240 (RFC 5382 REQ-5). Default 240.
    pub tcp_transitory_s: u32,
    /// Seconds a UDP flow lives without traffic; at least 120 (RFC 4787
    /// REQ-5). Default 120.
    pub udp_s: u32,
    /// Seconds an ICMP echo flow lives; at least 60 (RFC 5508 REQ-2).
    /// Default 60.
    pub icmp_s: u32,
}

impl Default for Flows {
    fn default() -> Self {
        Self {
            capacity: 65536,
            per_tenant: 16384,
            unreplied_per_tenant: 4096,
            unreplied_total: 32768,
            unreplied_s: 10,
            tcp_established_s: 7440,
            tcp_transitory_s: 240,
            udp_s: 120,
            icmp_s: 60,
        }
    }
}
