//! rte: the safe layer over DPDK ("rte-rs").
//!
//! Every `unsafe` of the project outside the raw bindings lives here, each
//! block with a `// SAFETY:` line. The types own what DPDK hands out and give
//! it back on drop: an [`Mbuf`] is freed when dropped, a [`Mempool`] is freed
//! when its last mbuf is home, [`Eal`] cleans up. Everything allocated from
//! DPDK borrows the [`Eal`], so cleanup cannot run under it, and lcore jobs
//! run in [`Eal::scope`]. Queues are handles that move to exactly one lcore,
//! which is what makes lock-free bursts sound; a port hands them out once.
//!
//! Hot operations (rx/tx burst, bulk alloc, ring bursts) cross into C once
//! per burst through `dpdk-sys`' shim; per-packet accessors read the mbuf's
//! fields directly and cost no call.

mod eal;
mod error;
pub mod flow;
mod hash;
mod huge;
mod lcore;
mod lpm;
mod mbuf;
mod mempool;
mod pdump;
mod port;
mod ring;
pub mod telemetry;

pub use eal::{prefetch, rdtsc, thread_cpu_time, tsc_hz, version, Eal};
pub use error::{Error, Result};
pub use hash::RteHash;
pub use huge::HugeAlloc;
pub use lcore::{LaunchedLcore, LcoreId, Panicked, Scope};
pub use lpm::RteLpm;
pub use mbuf::{Mbuf, RxChecksum, Writable, BURST};
pub use mempool::Mempool;
pub use pdump::Pdump;
pub use port::{
    LinkStatus, MacAddr, Port, PortConf, PortId, PortInfo, PortStats, QueueId, RxQueue, TxQueue,
    UnconfiguredPort, RX_METADATA_USER_FLAG, RX_METADATA_USER_MARK,
};
pub use ring::Ring;

/// A burst of mbufs: the unit every queue and ring moves.
pub type Burst = arrayvec::ArrayVec<Mbuf, BURST>;
