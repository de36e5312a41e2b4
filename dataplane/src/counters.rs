//! Per-worker counters.
//!
//! Each worker owns one [`WorkerCounters`], cache-line aligned so that no
//! two workers ever write the same line. The worker is the only writer; the
//! control plane reads (and sums across workers) whenever it likes. A plain
//! load-then-store of a relaxed atomic is what a single writer needs: it
//! compiles to an ordinary add on x86 (no `lock` prefix), and it keeps the
//! readers' view free of torn values without any `unsafe`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::firewall::RuleCounters;

/// Ports a worker keeps counters for (DPDK's `RTE_MAX_ETHPORTS` on Debian).
pub const MAX_PORTS: usize = 32;

/// A counter with one writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this: two writers would
    /// lose increments (by design, there is no atomic read-modify-write).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Sets a gauge (same single-writer rule as [`Counter::add`]).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Defines [`DropReason`] with its stable snake-case names in one place, so
/// the enum, `ALL` and `name` cannot drift apart (VPP's error X-macros).
macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Why a frame was dropped. Every drop in the pipeline names one, so
        /// that the drop counters and the transmitted frames add up to every
        /// frame received.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The name used in logs and metrics (snake case, stable).
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    Runt => "runt",
    /// Chained over several mbufs; the pipeline handles one segment.
    MultiSegment => "multi_segment",
    /// A buffer shared with another holder (an indirect or external mbuf,
    /// a raised reference count): not the worker's to rewrite.
    SharedBuffer => "shared_buffer",
    /// Received on a port with nowhere to forward to.
    NoEgress => "no_egress",
    /// The TX queue stayed full.
    TxFull => "tx_full",
    /// 802.1Q-tagged, on a port without VLANs.
    Vlan => "vlan",
    /// Neither IPv4 nor ARP.
    EtherType => "ethertype",
    /// An IPv4 header that does not parse (length, version, IHL).
    Ipv4Invalid => "ipv4_invalid",
    /// An IPv4 header checksum that does not verify.
    Ipv4Checksum => "ipv4_checksum",
    /// Addressed to someone else (underlay frames must be for the gateway).
    NotLocal => "not_local",
    /// For the gateway, but no protocol it answers.
    LocalProtocol => "local_protocol",
    /// Fragments and IP options for the gateway itself (and options on a
    /// tunnel's outer header): for a slow path tgw does not have; dropped,
    /// never forwarded around it. Options in transit follow
    /// `ip_options`'s policy and its own reasons.
    SlowPath => "slow_path",
    /// IPv4 options that do not parse (a length below 2 or past the
    /// header, a Router Alert or Quick-Start of the wrong length).
    IpOptionMalformed => "ip_option_malformed",
    /// Loose or strict source route (RFC 7126 §4.3, §4.4).
    IpOptionSourceRoute => "ip_option_source_route",
    /// Record Route (RFC 7126 §4.5).
    IpOptionRecordRoute => "ip_option_record_route",
    /// Internet Timestamp (RFC 7126 §4.7).
    IpOptionTimestamp => "ip_option_timestamp",
    /// An obsolete option: Stream ID, Probe/Reply MTU, Traceroute and the
    /// others RFC 6814 retired (RFC 7126 §4.6, §4.9-4.11 and after).
    IpOptionObsolete => "ip_option_obsolete",
    /// An option tgw does not know (`ip_options.rs` lists those it does).
    IpOptionUnknown => "ip_option_unknown",
    /// A GRE header cut short.
    GreTruncated => "gre_truncated",
    /// GRE version other than 0, or RFC 1701 bits set.
    GreVersion => "gre_version",
    /// A GRE checksum (C bit, RFC 2784) that does not verify.
    GreChecksum => "gre_checksum",
    /// GRE without a key: no tenant can be named.
    GreNoKey => "gre_no_key",
    /// A GRE key no tenant has.
    GreUnknownKey => "gre_unknown_key",
    /// A known key from a host that is not one of that tenant's.
    GreWrongHost => "gre_wrong_host",
    /// The GRE payload type does not match the tenant's encapsulation.
    GreProtocol => "gre_protocol",
    /// A tunnelled frame whose inner headers do not parse.
    InnerInvalid => "inner_invalid",
    /// A tunnelled Ethernet frame not addressed to the gateway.
    InnerNotForUs => "inner_not_for_us",
    /// An inner source outside the tenant's own prefixes.
    TenantSpoof => "tenant_spoof",
    /// Outer CE over a not-ECN-capable inner packet (RFC 6040).
    EcnDrop => "ecn_drop",
    /// No route to the destination.
    NoRoute => "no_route",
    /// A blackhole route.
    Blackhole => "blackhole",
    /// The next hop's MAC is not known.
    NoNeighbour => "no_neighbour",
    /// Not enough headroom to encapsulate.
    NoHeadroom => "no_headroom",
    /// TTL expired and the ICMP error was rate-limited or not allowed.
    TtlExceeded => "ttl_exceeded",
    /// Too big with DF set, and the ICMP error was rate-limited or not allowed.
    TooBig => "too_big",
    /// Too big without DF, and not fragmented: its next hop is not
    /// resolved yet, or the gateway may not send an error about it.
    NeedsFragmentation => "needs_fragmentation",
    /// ARP not for one of the gateway's addresses.
    ArpNotForUs => "arp_not_for_us",
    /// The ring to the control plane was full.
    PuntFull => "punt_full",
    /// The ring to the worker that owns the frame's connection was full.
    HandoffFull => "handoff_full",
    /// Toward the public side from a private address with no elastic IP.
    NoNat => "no_nat",
    /// Refused by the tenant's firewall rules (no state created).
    Firewall => "firewall",
    /// Of a flow that what admitted it no longer admits: its tenant, its
    /// elastic IP or pool, its route or the rule that let it in was
    /// removed or changed while it lived. The flow ended with it
    /// (pipeline/redecide.rs).
    Revoked => "revoked",
    /// No flow for it, and it cannot open one (a TCP segment other than a
    /// SYN, an echo reply), or it does not fit its flow's TCP state.
    InvalidState => "invalid_state",
    /// The flow table is full.
    FlowTableFull => "flow_table_full",
    /// The tenant holds as many flows as its quota allows.
    Quota => "quota",
    /// The tenant holds as many inbound flows nobody inside answered yet
    /// as its share of them allows (a SYN flood, or a scan).
    UnrepliedQuota => "unreplied_quota",
    /// The tenant's source NAT pool has no port for this host (its blocks
    /// are full, or no block is free).
    NoNatPort => "no_nat_port",
    /// To a shared NAT address with no flow, and filtering keeps it out.
    NatFiltered => "nat_filtered",
    /// A later fragment whose first fragment was not seen (out of order,
    /// or forgotten): nothing bypasses NAT and the firewall.
    FragmentOrphan => "fragment_orphan",
    /// More fragments than one datagram may have.
    FragmentLimit => "fragment_limit",
    /// To or from a tenant's public address, but neither a packet of a
    /// flow nor one that may open one (an ICMP type other than echo, an
    /// ICMP error about no flow): every address a tenant owns is behind
    /// its firewall, so nothing passes statelessly.
    Untracked => "untracked",
    /// A protocol without ports toward a shared NAT pool: it cannot share
    /// an address (only TCP, UDP and ICMP echo can).
    NatProtocol => "nat_protocol",
    /// An ICMP error about a flow whose checksum does not verify (RFC 5508
    /// REQ-3): it would be translated and summed anew, and arrive looking
    /// sound.
    IcmpChecksum => "icmp_checksum",
    /// An ICMP error about a flow whose quoted IPv4 header's checksum does
    /// not verify (RFC 5508 REQ-3a).
    IcmpQuoteChecksum => "icmp_quote_checksum",
    /// A first fragment whose owner holds its share of the fragment cache
    /// (or whose bucket is full of other owners' live entries).
    FragmentCacheFull => "fragment_cache_full",
    /// A later fragment before its first, with no spot left to wait in
    /// (the worker's, its owner's or the Internet's).
    FragmentParkFull => "fragment_park_full",
    /// A parked fragment whose first did not come in time.
    FragmentTimeout => "fragment_timeout",
    /// Too big without DF, past its tenant's or the worker's budget for
    /// fragmenting.
    FragmentBudget => "fragment_budget",
    /// A source no packet may carry across a router (`martian.rs`: 0/8,
    /// 127/8, 169.254/16, multicast, 240/4 and the limited broadcast; on
    /// the public side also the port subnet's directed broadcast; RFC 1812
    /// §5.3.7).
    MartianSource => "martian_source",
    /// A destination tgw never forwards (the same blocks, RFC 1812 §5.3.7).
    MartianDestination => "martian_destination",
    /// From outside, a source that is one of the gateway's own addresses
    /// (a port's, an elastic IP, a pool address, a tenant's public
    /// prefix): spoofed, since tgw hairpins its own traffic inside.
    SpoofedOwnAddress => "spoofed_own_address",
    /// A fragment whose offset plus length passes the 65,535 bytes of an
    /// IPv4 datagram (RFC 791; the "ping of death").
    FragmentTooLong => "fragment_too_long",
    /// A first fragment too short for the whole transport header (RFC
    /// 1858 §3.1, RFC 3128: TCP flags pushed into a later fragment).
    FragmentTinyFirst => "fragment_tiny_first",
    /// A later TCP fragment whose offset lies inside the minimal TCP
    /// header (RFC 1858 §3.2, §4: offset 8 rewrites the flags).
    FragmentHeaderOverlap => "fragment_header_overlap",
    /// A later fragment that overlaps bytes of its datagram already
    /// forwarded, or disagrees with its end (the datagram is condemned).
    FragmentOverlap => "fragment_overlap",
    /// A fragment seen before (the same place in the same datagram).
    FragmentDuplicate => "fragment_duplicate",
}

/// Packets and bytes through one port, as one worker saw them.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
}

/// The protocols flows are counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FlowProto {
    Tcp,
    Udp,
    /// ICMP echo (the only ICMP that opens a flow).
    Icmp,
    /// Any other IP protocol a tenant's rules let open a flow.
    Other,
}

impl FlowProto {
    pub const ALL: [FlowProto; 4] = [
        FlowProto::Tcp,
        FlowProto::Udp,
        FlowProto::Icmp,
        FlowProto::Other,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Of an IP protocol number.
    #[inline]
    pub fn of(protocol: u8) -> FlowProto {
        match protocol {
            6 => FlowProto::Tcp,
            17 => FlowProto::Udp,
            1 => FlowProto::Icmp,
            _ => FlowProto::Other,
        }
    }

    /// The name used in metrics (`protocol="tcp"`).
    pub fn name(self) -> &'static str {
        match self {
            FlowProto::Tcp => "tcp",
            FlowProto::Udp => "udp",
            FlowProto::Icmp => "icmp",
            FlowProto::Other => "other",
        }
    }
}

/// One tenant's traffic through one worker.
#[derive(Debug, Default)]
pub struct TenantCounters {
    /// Frames decapsulated from the tenant's tunnels.
    pub from_tunnel_packets: Counter,
    pub from_tunnel_bytes: Counter,
    /// Frames encapsulated into the tenant's tunnels.
    pub to_tunnel_packets: Counter,
    pub to_tunnel_bytes: Counter,
    /// Flows opened and ended, by [`FlowProto`]; the difference is the
    /// tenant's live flows on this worker.
    pub flows_opened: [Counter; FlowProto::COUNT],
    pub flows_ended: [Counter; FlowProto::COUNT],
    /// Source NAT ports the tenant's hosts hold on this worker (a gauge,
    /// refreshed between bursts).
    pub nat_ports: Counter,
    /// Inbound flows opened, and those of them answered from inside or
    /// ended unanswered; the difference is the tenant's unreplied flows
    /// on this worker.
    pub unreplied_opened: Counter,
    pub unreplied_done: Counter,
    /// Flows refused because the tenant held its quota of flows
    /// ([`DropReason::Quota`]) or of unreplied inbound flows
    /// ([`DropReason::UnrepliedQuota`]).
    pub quota_refused: Counter,
    pub unreplied_refused: Counter,
    /// Packets and bytes of the tenant's flows that the NIC handled
    /// (offloaded, both directions), as its counters reported them
    /// ([`crate::offload::queue::Feedback::Refresh`]).
    pub offloaded_packets: Counter,
    pub offloaded_bytes: Counter,
}

impl TenantCounters {
    /// Zeroes every count, for a slot given to a new tenant. Only where no
    /// worker writes them (single writer, [`Counter::add`]): the control
    /// plane calls it for a slot no tenant has held since every worker
    /// swept the last one's flows.
    pub fn reset(&self) {
        let each = [
            &self.from_tunnel_packets,
            &self.from_tunnel_bytes,
            &self.to_tunnel_packets,
            &self.to_tunnel_bytes,
            &self.nat_ports,
            &self.unreplied_opened,
            &self.unreplied_done,
            &self.quota_refused,
            &self.unreplied_refused,
            &self.offloaded_packets,
            &self.offloaded_bytes,
        ];
        for c in each
            .into_iter()
            .chain(&self.flows_opened)
            .chain(&self.flows_ended)
        {
            c.set(0);
        }
    }

    /// Flows the tenant opened on this worker, of every protocol.
    #[inline]
    pub fn flows_created(&self) -> u64 {
        self.flows_opened.iter().map(Counter::get).sum()
    }

    /// Flows of the tenant that ended on this worker, of every protocol.
    #[inline]
    pub fn flows_expired(&self) -> u64 {
        self.flows_ended.iter().map(Counter::get).sum()
    }

    /// The tenant's live flows on this worker.
    #[inline]
    pub fn live_flows(&self) -> u64 {
        self.flows_created().saturating_sub(self.flows_expired())
    }

    /// The tenant's live inbound flows that nobody inside answered yet.
    #[inline]
    pub fn live_unreplied(&self) -> u64 {
        self.unreplied_opened
            .get()
            .saturating_sub(self.unreplied_done.get())
    }
}

/// Everything one worker counts.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub ports: [PortCounters; MAX_PORTS],
    pub drops: [Counter; DropReason::COUNT],
    /// Bursts that brought at least one frame.
    pub bursts: Counter,
    /// TSC cycles spent processing frames (RX and TX calls excluded).
    pub process_cycles: Counter,
    /// TSC cycles of loop iterations that moved at least one frame, I/O
    /// included.
    pub busy_cycles: Counter,
    /// TSC cycles since the worker entered its loop (a gauge, refreshed
    /// at every TX drain, so at most `TX_DRAIN_US` old): what is not
    /// `busy_cycles` of it was spent polling empty queues, the share a
    /// poll-mode core's 100% CPU hides (DPDK's lcore telemetry, VPP's
    /// `show runtime`).
    pub cycles: Counter,
    /// Flows in this worker's table (a gauge, refreshed between bursts),
    /// and the table's capacity (set once, when the worker starts).
    pub flows_in_use: Counter,
    pub flows_capacity: Counter,
    /// Inbound flows opened unanswered, of every tenant, and those of them
    /// answered from inside or ended unanswered: the difference is the
    /// worker's unreplied flows, which together hold at most `[flows]
    /// unreplied_total` (`Pipeline::with_unreplied_total`).
    pub unreplied_opened: Counter,
    pub unreplied_done: Counter,
    /// Fragments the worker holds: first fragments' entries in its
    /// fragment cache and later fragments parked for their first (a
    /// gauge, refreshed between bursts).
    pub fragments_held: Counter,
    /// Replies the gateway generated: ARP, ICMP echo, ICMP errors.
    pub arp_replies: Counter,
    pub echo_replies: Counter,
    pub icmp_errors: Counter,
    /// Of `icmp_errors`: host unreachable, for a next hop that failed to
    /// resolve (RFC 1812 4.3.3.1).
    pub host_unreachable: Counter,
    /// Frames handed to the control plane (ARP to learn, frames waiting
    /// for their next hop's MAC).
    pub punted: Counter,
    /// Frames handed to the worker that owns their connection.
    pub handed_off: Counter,
    /// Rounds of the worker's poll loop: its heartbeat. The control
    /// plane's watchdog takes a worker whose count stops moving for dead.
    pub loops: Counter,
    /// Whole passes of the flow sweep over this worker's flow table: the
    /// control plane gives a removed tenant's slot to another only once
    /// every worker has made a pass after the removal, which ended the
    /// removed tenant's flows.
    pub sweep_passes: Counter,
    /// Transit packets the IPv4 options policy let through, by what they
    /// carried (`ip_options::Forwarded`); those it drops count as drop
    /// reasons.
    pub ip_options: [Counter; crate::ip_options::Forwarded::COUNT],
    /// Later fragments parked until their first came, and those of them
    /// that went on once it had.
    pub fragments_parked: Counter,
    pub fragments_released: Counter,
    /// Datagrams too big without DF, punted to be cut into fragments.
    pub punted_to_fragment: Counter,
    /// By tenant slot, sized for the most slots the control plane hands
    /// out (`[limits] tenants`): a slot given to a new tenant continues
    /// from its old counts, which the control plane takes as the new
    /// tenant's zero.
    pub tenants: Box<[TenantCounters]>,
    /// Flows each firewall rule (and each default policy) decided.
    pub rules: RuleCounters,
    /// What the worker did for flow offload (docs/offload.md).
    pub offload: OffloadCounters,
}

/// A worker's part in flow offload.
#[derive(Debug, Default)]
pub struct OffloadCounters {
    /// Flows offered to the offload manager, and of those the offers the
    /// full request queue refused (the flow stays in software).
    pub requests: Counter,
    pub queue_full: Counter,
    /// Notices of requested flows that ended, and of those the ones the
    /// full queue refused (the manager's rule then stays until it pulls
    /// the flow back).
    pub ended: Counter,
    pub ended_lost: Counter,
    /// Refreshes applied (the NIC saw packets of the flow), and flows
    /// released back to software.
    pub refreshes: Counter,
    pub released: Counter,
    /// Feedback about a flow the worker no longer holds (ended since).
    pub feedback_stale: Counter,
    /// Of those, refreshes answered with a `Stale` notice (the flow's
    /// `Ended` was lost: its rules go now), and notices the full queue
    /// refused (the next refresh asks again).
    pub stale_told: Counter,
    pub stale_lost: Counter,
    /// Frames whose NIC mark named their live flow (no lookup), and
    /// marked frames whose mark did not (looked up as usual).
    pub marked_hits: Counter,
    pub stale_marks: Counter,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        Self::new(0)
    }
}

impl WorkerCounters {
    /// Counters with room for `tenants` tenants.
    pub fn new(tenants: usize) -> Self {
        WorkerCounters {
            ports: std::array::from_fn(|_| PortCounters::default()),
            drops: std::array::from_fn(|_| Counter::default()),
            bursts: Counter::default(),
            process_cycles: Counter::default(),
            busy_cycles: Counter::default(),
            cycles: Counter::default(),
            flows_in_use: Counter::default(),
            unreplied_opened: Counter::default(),
            unreplied_done: Counter::default(),
            flows_capacity: Counter::default(),
            fragments_held: Counter::default(),
            arp_replies: Counter::default(),
            echo_replies: Counter::default(),
            icmp_errors: Counter::default(),
            host_unreachable: Counter::default(),
            punted: Counter::default(),
            handed_off: Counter::default(),
            loops: Counter::default(),
            sweep_passes: Counter::default(),
            ip_options: std::array::from_fn(|_| Counter::default()),
            fragments_parked: Counter::default(),
            fragments_released: Counter::default(),
            punted_to_fragment: Counter::default(),
            tenants: (0..tenants).map(|_| TenantCounters::default()).collect(),
            rules: RuleCounters::new(0, tenants),
            offload: OffloadCounters::default(),
        }
    }

    /// The same, with room for `rules` firewall rules.
    #[must_use]
    pub fn with_rules(mut self, rules: usize) -> Self {
        self.rules = RuleCounters::new(rules, self.tenants.len());
        self
    }
    /// The worker's live inbound flows that nobody inside answered yet,
    /// of every tenant.
    #[inline]
    pub fn live_unreplied(&self) -> u64 {
        self.unreplied_opened
            .get()
            .saturating_sub(self.unreplied_done.get())
    }

    #[inline]
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }

    /// Counts a transit packet forwarded with the options it `carried`.
    #[inline]
    pub fn count_options(&self, carried: crate::ip_options::Carried) {
        for kind in carried.kinds() {
            self.ip_options[kind as usize].inc();
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Port counters for `port`; ids past [`MAX_PORTS`] share the last slot
    /// rather than panic (DPDK never hands them out with Debian's build).
    #[inline]
    pub fn port(&self, port: u16) -> &PortCounters {
        &self.ports[usize::from(port).min(MAX_PORTS - 1)]
    }

    #[inline]
    pub fn tenant(&self, index: usize) -> Option<&TenantCounters> {
        self.tenants.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_live_on_their_own_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
        let c = WorkerCounters::default();
        c.count_drop(DropReason::TxFull, 3);
        c.port(7).rx_packets.inc();
        c.port(999).rx_packets.add(2);
        assert_eq!(c.dropped(DropReason::TxFull), 3);
        assert_eq!(c.dropped(DropReason::Runt), 0);
        assert_eq!(c.ports[7].rx_packets.get(), 1);
        assert_eq!(c.ports[MAX_PORTS - 1].rx_packets.get(), 2);
    }

    #[test]
    fn drop_reason_names_are_unique() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(
                *r as usize, i,
                "ALL must list reasons in discriminant order"
            );
        }
    }
}
