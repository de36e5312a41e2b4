//! What the pipeline decides for a frame; the worker does the I/O it
//! names.

use crate::counters::DropReason;

/// What the pipeline (or the L2 skeleton, [`crate::l2fwd`]) decided for
/// one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send out of this port.
    Forward(u16),
    /// Drop, counting the reason.
    Drop(DropReason),
    /// Hand to the control plane, which learns from it or holds it until
    /// its next hop is resolved; the reason is in the frame
    /// ([`crate::punt`]).
    Punt,
    /// Hand, unchanged, to the worker that owns its connection
    /// ([`crate::steer`]).
    Handoff(u16),
    /// A later fragment that came before its first: the worker keeps it
    /// in this spot of its [`crate::fragments::park::Parked`] until the
    /// pipeline releases it.
    Park(u16),
}
