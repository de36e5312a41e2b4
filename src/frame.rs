//! The pipeline's view of an mbuf.
//!
//! `dataplane` knows frames only through its `Frame` trait and `rte` knows
//! nothing of `dataplane` (DESIGN.md: the arrows point one way), so the
//! daemon, which sees both, joins them with this zero-cost wrapper: over a
//! borrowed mbuf found writable on the workers, over an owned one where the
//! resolver holds frames.

use dataplane::{Checked, Frame};
use rte::{Mbuf, RxChecksum, Writable};

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

/// What an [`MbufFrame`] holds: an owned mbuf, whose writes check that it
/// is writable each time, or a worker's [`Writable`] one, checked once.
pub trait Held {
    fn m(&self) -> &Mbuf;
    fn data_mut(&mut self) -> &mut [u8];
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]>;
    fn prepend_whole(&mut self, len: usize) -> Option<&mut [u8]> {
        self.prepend(len)?;
        Some(self.data_mut())
    }
    fn append(&mut self, len: usize) -> Option<&mut [u8]>;
    fn adj(&mut self, len: usize) -> bool;
    fn trim(&mut self, len: usize) -> bool;
    fn set_port(&mut self, port: u16);
}

impl Held for Mbuf {
    #[inline]
    fn m(&self) -> &Mbuf {
        self
    }

    /// Never empty for a frame the pipeline holds: the control plane holds
    /// only mbufs workers found writable and fresh ones, which nothing can
    /// share while they are wrapped here (sharing takes `&mut Mbuf`).
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self).unwrap_or_default()
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        Mbuf::prepend(self, len)
    }

    #[inline]
    fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        Mbuf::append(self, len)
    }

    #[inline]
    fn adj(&mut self, len: usize) -> bool {
        Mbuf::adj(self, len)
    }

    #[inline]
    fn trim(&mut self, len: usize) -> bool {
        Mbuf::trim(self, len)
    }

    #[inline]
    fn set_port(&mut self, port: u16) {
        Mbuf::set_port(self, port);
    }
}

impl Held for Writable<'_> {
    #[inline]
    fn m(&self) -> &Mbuf {
        self
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Writable::data_mut(self)
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        Writable::prepend(self, len)
    }

    #[inline]
    fn prepend_whole(&mut self, len: usize) -> Option<&mut [u8]> {
        Writable::prepend_whole(self, len)
    }

    #[inline]
    fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        Writable::append(self, len)
    }

    #[inline]
    fn adj(&mut self, len: usize) -> bool {
        Writable::adj(self, len)
    }

    #[inline]
    fn trim(&mut self, len: usize) -> bool {
        Writable::trim(self, len)
    }

    #[inline]
    fn set_port(&mut self, port: u16) {
        Writable::set_port(self, port);
    }
}

impl<M: Held> Frame for MbufFrame<M> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.mbuf.m()
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.mbuf.data_mut()
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        self.mbuf.prepend(len)
    }

    #[inline]
    fn prepend_whole(&mut self, len: usize) -> Option<&mut [u8]> {
        self.mbuf.prepend_whole(len)
    }

    #[inline]
    fn adj(&mut self, len: usize) -> bool {
        self.mbuf.adj(len)
    }

    #[inline]
    fn trim(&mut self, len: usize) -> bool {
        self.mbuf.trim(len)
    }

    #[inline]
    fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        self.mbuf.append(len)
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
        self.mbuf.set_port(port);
    }

    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        self.mbuf.m().rss_hash()
    }

    #[inline]
    fn ipv4_checksum(&self) -> Checked {
        checked(self.mbuf.m())
    }

    /// The MARK a partial-offload rule gave the frame (the flow's id + 1).
    #[inline]
    fn mark(&self) -> Option<u32> {
        self.mbuf.m().flow_mark()
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
