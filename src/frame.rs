//! The pipeline's view of an mbuf.
//!
//! `dataplane` knows frames only through its `Frame` trait and `rte` knows
//! nothing of `dataplane` (DESIGN.md: the arrows point one way), so the
//! daemon, which sees both, joins them with this zero-cost borrow.

use dataplane::Frame;
use rte::Mbuf;

/// An mbuf lent to the pipeline, with the port it was received on.
pub struct MbufFrame<'a> {
    pub mbuf: &'a mut Mbuf,
    pub in_port: u16,
}

impl Frame for MbufFrame<'_> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.mbuf
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.mbuf
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        self.mbuf.prepend(len)
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
    fn rss_hash(&self) -> Option<u32> {
        self.mbuf.rss_hash()
    }
}
