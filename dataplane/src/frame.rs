//! How the pipeline sees a frame.
//!
//! The daemon implements [`Frame`] over a DPDK mbuf; tests, fuzzers and
//! benchmarks use [`VecFrame`]. The trait is the whole contract: contiguous
//! data, room to grow at the front (headroom) for encapsulation, trimming at
//! either end for decapsulation, and the little metadata the NIC gives us.

/// A single contiguous frame with headroom.
///
/// Every method is cheap (no allocation, no syscall): implementations over
/// mbufs only move offsets.
pub trait Frame {
    /// The frame's bytes, from the first byte of the outermost header.
    fn data(&self) -> &[u8];

    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];

    /// Grows the frame by `len` bytes at the front and returns the new
    /// leading bytes (contents unspecified), or `None` if the headroom is too
    /// small, in which case the frame is unchanged.
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]>;

    /// [`Frame::prepend`], returning the whole frame after it (the `len`
    /// new bytes first), for a caller that writes the new header from what
    /// follows it: a `data_mut` after `prepend` worked out the frame's
    /// place a second time.
    fn prepend_whole(&mut self, len: usize) -> Option<&mut [u8]> {
        self.prepend(len)?;
        Some(self.data_mut())
    }

    /// Removes `len` bytes from the front. Returns `false`, and leaves the
    /// frame unchanged, if the frame is shorter than `len`.
    fn adj(&mut self, len: usize) -> bool;

    /// Removes `len` bytes from the end. Returns `false`, and leaves the
    /// frame unchanged, if the frame is shorter than `len`.
    fn trim(&mut self, len: usize) -> bool;

    /// Grows the frame by `len` bytes at the end and returns them (contents
    /// unspecified), or `None` if the tailroom is too small.
    fn append(&mut self, len: usize) -> Option<&mut [u8]>;

    /// The port the frame was received on.
    fn in_port(&self) -> u16;

    /// Makes the frame look received on `port`: a frame the gateway turns
    /// around internally (NAT hairpinning) comes back in on another port.
    fn set_in_port(&mut self, port: u16);

    /// The RSS hash the NIC computed, if it gave one.
    fn rss_hash(&self) -> Option<u32>;

    /// What the NIC found of the checksum of the frame's outermost IPv4
    /// header: [`Checked::Unknown`] unless the driver verified it (memif
    /// and af_packet never do), and then the pipeline computes it.
    fn ipv4_checksum(&self) -> Checked {
        Checked::Unknown
    }

    /// The flow mark the NIC set (an `rte_flow` MARK action, partial
    /// offload: the flow's id plus one), if any. The pipeline reads it
    /// where a burst is staged (`pipeline::Staged`): a mark names a flow
    /// of the worker whose queue the NIC steered the frame to, and the
    /// unstaged path sees only frames other workers handed over, whose
    /// marks are not its own.
    fn mark(&self) -> Option<u32> {
        None
    }

    /// The frame's length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the frame holds no bytes at all.
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

/// What the NIC says of a checksum it may have verified on receive
/// (DPDK's `RTE_MBUF_F_RX_IP_CKSUM_*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checked {
    /// Not verified (or the driver does not say): computed in software.
    #[default]
    Unknown,
    /// Verified right: not computed again.
    Good,
    /// Verified wrong: computed all the same, which drops the frame as
    /// the NIC would have (the fast paths compute it anyway).
    Bad,
}

/// A heap-backed frame for tests, fuzzing and benchmarks: a buffer with a
/// fixed headroom in front of the data, like an mbuf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    in_port: u16,
    rss_hash: Option<u32>,
    ipv4_checksum: Checked,
    mark: Option<u32>,
}

impl VecFrame {
    /// The headroom DPDK mbufs have by default (`RTE_PKTMBUF_HEADROOM`).
    pub const HEADROOM: usize = 128;
    /// Data room of a default DPDK mbuf past the headroom.
    pub const ROOM: usize = 2048;

    /// A frame holding a copy of `bytes`, received on `in_port`.
    pub fn new(bytes: &[u8], in_port: u16) -> Self {
        let cap = Self::HEADROOM + Self::ROOM.max(bytes.len());
        let mut buf = vec![0; cap];
        buf[Self::HEADROOM..Self::HEADROOM + bytes.len()].copy_from_slice(bytes);
        VecFrame {
            buf,
            start: Self::HEADROOM,
            end: Self::HEADROOM + bytes.len(),
            in_port,
            rss_hash: None,
            ipv4_checksum: Checked::Unknown,
            mark: None,
        }
    }

    /// Refills the frame with `bytes` at the default headroom, reusing the
    /// buffer (benchmarks run the pipeline in a loop without allocating).
    /// `false`, unchanged, if `bytes` does not fit.
    pub fn refill(&mut self, bytes: &[u8]) -> bool {
        let end = Self::HEADROOM + bytes.len();
        if end > self.buf.len() {
            return false;
        }
        self.buf[Self::HEADROOM..end].copy_from_slice(bytes);
        self.start = Self::HEADROOM;
        self.end = end;
        true
    }

    /// Sets the RSS hash, as a NIC would.
    pub fn with_rss_hash(mut self, hash: u32) -> Self {
        self.rss_hash = Some(hash);
        self
    }

    /// Says what the NIC found of the outer IPv4 checksum, as a driver
    /// that verifies it would.
    pub fn with_ipv4_checksum(mut self, checked: Checked) -> Self {
        self.ipv4_checksum = checked;
        self
    }

    /// Sets the flow mark, as a NIC's MARK action would.
    pub fn with_mark(mut self, mark: u32) -> Self {
        self.mark = Some(mark);
        self
    }

    /// Bytes still free in front of the data.
    pub fn headroom(&self) -> usize {
        self.start
    }
}

// Inlined as the daemon's mbuf frame is, so that the profile programs
// (`pipeline_profile`, `pipeline_staged`) count the pipeline as workers
// run it: a call per header read moved their counts with unrelated changes.
impl Frame for VecFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(len)?;
        self.start = start;
        Some(&mut self.buf[start..start + len])
    }

    #[inline]
    fn prepend_whole(&mut self, len: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(len)?;
        self.start = start;
        Some(&mut self.buf[start..self.end])
    }

    #[inline]
    fn adj(&mut self, len: usize) -> bool {
        if len > self.end - self.start {
            return false;
        }
        self.start += len;
        true
    }

    #[inline]
    fn trim(&mut self, len: usize) -> bool {
        if len > self.end - self.start {
            return false;
        }
        self.end -= len;
        true
    }

    #[inline]
    fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let end = self.end.checked_add(len).filter(|&e| e <= self.buf.len())?;
        let old = self.end;
        self.end = end;
        Some(&mut self.buf[old..end])
    }

    #[inline]
    fn in_port(&self) -> u16 {
        self.in_port
    }

    #[inline]
    fn set_in_port(&mut self, port: u16) {
        self.in_port = port;
    }

    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        self.rss_hash
    }

    #[inline]
    fn ipv4_checksum(&self) -> Checked {
        self.ipv4_checksum
    }

    #[inline]
    fn mark(&self) -> Option<u32> {
        self.mark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_adj_move_the_front() {
        let mut f = VecFrame::new(&[1, 2, 3], 0);
        f.prepend(2).unwrap().copy_from_slice(&[9, 8]);
        assert_eq!(f.data(), &[9, 8, 1, 2, 3]);
        assert!(f.adj(3));
        assert_eq!(f.data(), &[2, 3]);
        assert!(!f.adj(3), "adj past the end must fail");
        assert_eq!(f.data(), &[2, 3]);
    }

    /// `VecFrame`'s own `prepend_whole` is `prepend` and then the whole
    /// frame, as the trait's default is (the mbuf's, in rte, is held to
    /// the same by the daemon's tests: every encapsulated frame of the
    /// reference scenario and the goldens is built through it).
    #[test]
    fn prepend_whole_is_prepend_and_then_the_whole_frame() {
        let mut f = VecFrame::new(&[1, 2, 3], 0);
        let all = f.prepend_whole(2).unwrap();
        assert_eq!(all.len(), 5);
        all[..2].copy_from_slice(&[9, 8]);
        assert_eq!(f.data(), &[9, 8, 1, 2, 3]);
        assert!(f.prepend_whole(VecFrame::HEADROOM).is_none());
        assert_eq!(f.data(), &[9, 8, 1, 2, 3]);
    }

    #[test]
    fn prepend_fails_without_headroom() {
        let mut f = VecFrame::new(&[0; 10], 0);
        assert!(f.prepend(VecFrame::HEADROOM + 1).is_none());
        assert_eq!(f.len(), 10);
        assert!(f.prepend(VecFrame::HEADROOM).is_some());
        assert_eq!(f.headroom(), 0);
    }

    #[test]
    fn trim_and_append_move_the_end() {
        let mut f = VecFrame::new(&[1, 2, 3, 4], 7);
        assert!(f.trim(1));
        f.append(2).unwrap().copy_from_slice(&[5, 6]);
        assert_eq!(f.data(), &[1, 2, 3, 5, 6]);
        assert!(!f.trim(6));
        assert_eq!(f.in_port(), 7);
    }
}
