//! The pipeline's view of an mbuf.
//!
//! `dataplane` knows frames only through its `Frame` trait and `rte` knows
//! nothing of `dataplane` (DESIGN.md: the arrows point one way), so the
//! daemon, which sees both, joins them with this zero-cost wrapper: over a
//! borrowed mbuf on the workers, over an owned one where the resolver holds
//! frames.

use std::borrow::BorrowMut;

use dataplane::{Checked, Frame};
use rte::{Mbuf, RxChecksum};

/// An mbuf as the pipeline sees it, with the port it was received on.
pub struct MbufFrame<M> {
    pub mbuf: M,
    pub in_port: u16,
}

impl MbufFrame<Mbuf> {
    /// An owned frame, for the control plane.
    pub fn owned(mbuf: Mbuf) -> Self {
        let in_port = mbuf.port();
        MbufFrame { mbuf, in_port }
    }
}

impl<M: BorrowMut<Mbuf>> MbufFrame<M> {
    #[inline]
    fn m(&self) -> &Mbuf {
        self.mbuf.borrow()
    }

    #[inline]
    fn m_mut(&mut self) -> &mut Mbuf {
        self.mbuf.borrow_mut()
    }
}

impl<M: BorrowMut<Mbuf>> Frame for MbufFrame<M> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.m()
    }

    /// Never empty for a frame the pipeline holds: workers drop the
    /// mbufs that are not writable before wrapping them, and the control
    /// plane holds only those and fresh ones, which nothing can share
    /// while they are wrapped here (sharing takes `&mut Mbuf`).
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.m_mut().data_mut().unwrap_or_default()
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        self.m_mut().prepend(len)
    }

    #[inline]
    fn adj(&mut self, len: usize) -> bool {
        self.m_mut().adj(len)
    }

    #[inline]
    fn trim(&mut self, len: usize) -> bool {
        self.m_mut().trim(len)
    }

    #[inline]
    fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        self.m_mut().append(len)
    }

    #[inline]
    fn in_port(&self) -> u16 {
        self.in_port
    }

    #[inline]
    fn set_in_port(&mut self, port: u16) {
        // The mbuf's field too: a frame handed to another worker is
        // processed as received on the port it names.
        self.in_port = port;
        self.m_mut().set_port(port);
    }

    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        self.m().rss_hash()
    }

    #[inline]
    fn ipv4_checksum(&self) -> Checked {
        checked(self.m())
    }

    /// The MARK a partial-offload rule gave the frame (the flow's id + 1).
    #[inline]
    fn mark(&self) -> Option<u32> {
        self.m().flow_mark()
    }
}

/// What the driver of `m`'s port found of its outer IPv4 checksum, as the
/// pipeline takes it.
#[inline]
pub fn checked(m: &Mbuf) -> Checked {
    match m.rx_ipv4_checksum() {
        RxChecksum::Unknown => Checked::Unknown,
        RxChecksum::Good => Checked::Good,
        RxChecksum::Bad => Checked::Bad,
    }
}
