//! Flow offload, as the gateway sees it: which flows the NIC may take
//! over, what each direction of one needs the NIC to do, and the state of
//! every offloaded flow (docs/offload.md).
//!
//! Nothing here knows DPDK (DESIGN.md: `dataplane` never imports `rte`).
//! A worker only enqueues a [`Candidate`] when one of its flows is
//! established both ways; the control plane turns it into a [`FlowSpec`]
//! with the tables, and the daemon lowers a spec to `rte_flow` rules for
//! the port's [`Level`] (src/offload.rs).
//!
//! INTERFACE (issue 14): these types are fixed by the lead; the helper on
//! the offload manager builds the rest of this module around them.

pub mod deny;
pub mod manager;
pub mod queue;
pub mod spec;

pub use manager::{
    Device, FlowView, Installed, Limits, Offloads, Refusal, Settled, State, Stats, SCAN_PER_TICK,
};
pub use queue::{Feedback, Link, Request};
pub use spec::{macs_of, NotOffloadable};

use arrayvec::ArrayVec;

use crate::conntrack::Conn;
use crate::flow::{FlowId, FlowKey};
use crate::tables::MAX_TUNNEL_HEADER;
use crate::tenant::TenantId;

/// How much of the job a port's NIC can take, from the start-up probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No flow API, or none of the shapes tgw needs: software does it all.
    #[default]
    None,
    /// MARK and QUEUE, no rewrite: marked frames skip the flow lookup,
    /// and replies are steered to the worker that owns their flow.
    Partial,
    /// Match, decap, rewrite, encap and forward: established flows never
    /// reach a worker.
    Full,
}

/// A worker's request: one of its flows was answered (TCP: its handshake
/// completed), and may move to the NIC. Everything the control plane
/// needs is copied in, since the worker's table is the worker's alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub worker: u16,
    pub id: FlowId,
    /// Forward and reply keys, as the flow table holds them.
    pub keys: [FlowKey; 2],
    pub conn: Conn,
}

/// The outer headers a frame from a tenant's host arrives in, on the
/// underlay port: what a rule matches before it decapsulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelMatch {
    /// The host's underlay address (outer source).
    pub host: u32,
    /// The gateway's underlay address (outer destination).
    pub local: u32,
    /// The tenant's GRE key.
    pub key: u32,
    /// Ethernet in GRE (0x6558) rather than IPv4 in GRE (0x0800).
    pub gretap: bool,
}

/// One direction of an offloaded flow, as the NIC must handle it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    /// The port the direction arrives on.
    pub in_port: u16,
    /// Set on the underlay side: the tunnel the frame arrives in.
    pub tunnel: Option<TunnelMatch>,
    /// The (inner) packet as it arrives: protocol (TCP or UDP), source,
    /// destination.
    pub protocol: u8,
    pub src: (u32, u16),
    pub dst: (u32, u16),
    /// Bytes of outer headers removed first (outer Ethernet, IPv4, GRE
    /// and, for gretap, the inner Ethernet); 0 on the public side.
    pub decap_len: u8,
    /// The new source and destination, where NAT changes them.
    pub set_src: Option<(u32, u16)>,
    pub set_dst: Option<(u32, u16)>,
    /// The headers pushed in front of the IPv4 packet on the way out, with
    /// their MAC addresses filled: the tunnel's (outer Ethernet, IPv4, GRE
    /// with key, gretap's inner Ethernet) toward a tenant, the Ethernet
    /// header toward the public next hop. The NIC fills the outer IPv4
    /// length and checksum.
    pub encap: ArrayVec<u8, MAX_TUNNEL_HEADER>,
    /// The port it leaves by.
    pub out_port: u16,
    /// A packet that can arrive on `in_port` may be bigger than software
    /// lets out by `out_port` (its MTU, or the tunnel's inner MTU), where
    /// it answers Fragmentation Needed or cuts the packet; a full rule
    /// sends every frame whole, so this leg is not fully offloaded
    /// ([`spec`]: "Too big for the tunnel"). Partial rules only mark.
    pub too_big: bool,
}

/// Both directions of one flow, as the NIC must handle them, with what
/// the control plane needs to pull the flow back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// The worker that owns the flow, and its id there.
    pub worker: u16,
    pub id: FlowId,
    pub tenant: TenantId,
    /// The tenant's epoch the flow was decided in: a change to the tenant
    /// pulls the flow back.
    pub epoch: u32,
    /// By [`crate::flow::Direction`] index: forward (the opener's
    /// packets), reply.
    pub legs: [Leg; 2],
}
