use std::ops::Deref;
use std::ptr::NonNull;

use arrayvec::ArrayVec;
use dpdk_sys as sys;

use crate::Mempool;

/// The most frames one burst moves (DPDK's customary 32).
pub const BURST: usize = 32;

/// An owned packet buffer.
///
/// Freed (returned to its pool) on drop. `Deref` gives the bytes of the
/// first segment; the pipeline works on single-segment frames, which is what
/// the ports are configured to deliver (no scatter, MTU within one mbuf).
///
/// Writing needs more than owning the mbuf: its data buffer may be shared
/// (an indirect mbuf made by [`Mbuf::share`], an external buffer a driver
/// attached, a raised reference count). Every way to the bytes for writing
/// ([`data_mut`](Self::data_mut), [`prepend`](Self::prepend),
/// [`append`](Self::append)) checks [`is_writable`](Self::is_writable)
/// first and gives `None` otherwise: two loads from the header's first
/// cache line, which the caller has just read anyway.
///
/// Length and offset changes (`prepend`, `adj`, `trim`, `append`) are done
/// here over the mbuf's fields, as DPDK's inline functions do, so that no
/// per-packet call crosses into C.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the sole owner of its rte_mbuf; moving that ownership
// to another lcore (through a ring, say) is how DPDK is meant to be used.
unsafe impl Send for Mbuf {}

/// A checksum as the driver found it on receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxChecksum {
    /// Not verified, or the driver does not say.
    Unknown,
    Good,
    Bad,
}

impl Mbuf {
    /// Takes one mbuf from `pool`, empty, with the default headroom.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: pool is a live pktmbuf pool.
        let raw = unsafe { sys::tgw_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(raw).map(|raw| Mbuf { raw })
    }

    /// Fills `out` up to its capacity with fresh mbufs in one call. All or
    /// nothing: returns `false`, with `out` unchanged, if the pool is short.
    pub fn alloc_bulk<const N: usize>(pool: &Mempool, out: &mut ArrayVec<Mbuf, N>) -> bool {
        let want = out.remaining_capacity();
        let mut raw = [std::ptr::null_mut::<sys::rte_mbuf>(); N];
        // SAFETY: raw has room for `want` ≤ N pointers; the pool is live.
        let ret =
            unsafe { sys::tgw_pktmbuf_alloc_bulk(pool.as_ptr(), raw.as_mut_ptr(), want as u32) };
        if ret != 0 {
            return false;
        }
        for p in &raw[..want] {
            // SAFETY: on success all `want` entries are valid, distinct mbufs
            // that we now own.
            out.push(unsafe { Mbuf::from_raw(*p) });
        }
        true
    }

    /// Returns a whole burst to its pools in one call, leaving `burst`
    /// empty. Mbufs from different pools are fine: DPDK sorts them out.
    pub fn free_bulk<const N: usize>(burst: &mut ArrayVec<Mbuf, N>) {
        let n = burst.len();
        if n == 0 {
            return;
        }
        // SAFETY: Mbuf is repr(transparent) over a non-null rte_mbuf pointer,
        // so the vector's storage is an array of n valid mbuf pointers; the
        // length is reset before DPDK frees them, so no Drop runs twice.
        unsafe {
            burst.set_len(0);
            sys::rte_pktmbuf_free_bulk(burst.as_mut_ptr().cast::<*mut sys::rte_mbuf>(), n as u32);
        }
    }

    /// Another mbuf over the same data, allocated from `pool` and attached
    /// to this one's buffer (`rte_pktmbuf_clone`): for sending the same
    /// bytes twice without copying, as a capture or mirror does. While both
    /// live, neither is writable; `None` if `pool` is empty.
    pub fn share(&mut self, pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: self is a valid mbuf we own and pool a live pktmbuf pool;
        // the clone takes its own reference on the data buffer, which
        // `is_writable` sees on both sides.
        let raw = unsafe { sys::rte_pktmbuf_clone(self.raw.as_ptr(), pool.as_ptr()) };
        NonNull::new(raw).map(|raw| Mbuf { raw })
    }

    /// Whether this mbuf's bytes are its alone to change: a direct mbuf
    /// (its own data buffer, neither attached to another mbuf's nor to an
    /// external one) whose reference count is 1.
    #[inline]
    pub fn is_writable(&self) -> bool {
        const SHARED: u64 = sys::RTE_MBUF_F_INDIRECT | sys::RTE_MBUF_F_EXTERNAL;
        let h = self.hdr();
        h.ol_flags & SHARED == 0 && self.refcnt() == 1
    }

    /// The mbuf's reference count, read as DPDK does (atomically: another
    /// lcore may hold a reference to the same mbuf).
    #[inline]
    fn refcnt(&self) -> u16 {
        // SAFETY: refcnt lies inside the live mbuf header, is 2-byte
        // aligned, and DPDK only ever changes it atomically.
        let cnt = unsafe {
            std::sync::atomic::AtomicU16::from_ptr(std::ptr::addr_of_mut!(
                (*self.raw.as_ptr()).refcnt
            ))
        };
        cnt.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The frame's bytes, writable, if the mbuf [is writable](Self::is_writable).
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if !self.is_writable() {
            return None;
        }
        // SAFETY: checked just above.
        Some(unsafe { self.writable_data() })
    }

    /// This mbuf as [`Writable`], if it [is writable](Self::is_writable):
    /// checked once here, not at every write.
    #[inline]
    pub fn writable(&mut self) -> Option<Writable<'_>> {
        if self.is_writable() {
            Some(Writable(self))
        } else {
            None
        }
    }

    /// The data of an mbuf its caller found writable (`is_writable`):
    /// `prepend` and `append` check once, not again through `data_mut`
    /// (the refcount's load and the flags' test, on every encapsulation).
    ///
    /// # Safety
    /// `is_writable` must be true.
    #[inline]
    unsafe fn writable_data(&mut self) -> &mut [u8] {
        let h = self.hdr();
        let (addr, off, len) = (h.buf_addr.cast::<u8>(), h.data_off, h.data_len);
        // SAFETY: as in deref; &mut self makes the access unique among the
        // holders of this mbuf, and is_writable (the caller's promise)
        // that no other mbuf (and no other reference to this one) sees the
        // buffer.
        unsafe { std::slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    /// Adopts a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or frees.
    pub unsafe fn from_raw(raw: *mut sys::rte_mbuf) -> Mbuf {
        Mbuf {
            raw: NonNull::new_unchecked(raw),
        }
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as self lives.
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn hdr_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf, and &mut self makes the access unique.
        unsafe { self.raw.as_mut() }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }

    /// Bytes in the whole chain.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.hdr().pkt_len as usize
    }

    /// Segments in the chain (1 for the frames the pipeline handles).
    #[inline]
    pub fn segments(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    /// Free bytes after the data of the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let h = self.hdr();
        usize::from(h.buf_len) - usize::from(h.data_off) - usize::from(h.data_len)
    }

    /// Grows the frame at the front by `len` bytes (the new bytes are left
    /// as they were) and returns them; `None`, unchanged, if the headroom is
    /// short or the mbuf is not [writable](Self::is_writable).
    #[inline]
    pub fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        if !self.is_writable() {
            return None;
        }
        // SAFETY: checked just above.
        unsafe { self.prepend_writable(len) }
    }

    /// [`prepend`](Self::prepend) on an mbuf its caller found writable.
    ///
    /// # Safety
    /// `is_writable` must be true.
    #[inline]
    unsafe fn prepend_writable(&mut self, len: usize) -> Option<&mut [u8]> {
        // SAFETY: the caller's promise, passed on.
        Some(&mut unsafe { self.prepend_whole_writable(len) }?[..len])
    }

    /// [`prepend_writable`](Self::prepend_writable) returning the whole
    /// first segment after it, the `len` new bytes first.
    ///
    /// # Safety
    /// `is_writable` must be true.
    #[inline]
    unsafe fn prepend_whole_writable(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len)
            .ok()
            .filter(|&l| l <= self.hdr().data_off)?;
        let h = self.hdr_mut();
        h.data_off -= len16;
        h.data_len += len16;
        h.pkt_len += u32::from(len16);
        // SAFETY: the caller's promise; moving data_off changed no holder.
        Some(unsafe { self.writable_data() })
    }

    /// Drops `len` bytes from the front; `false`, unchanged, if the first
    /// segment is shorter.
    #[inline]
    pub fn adj(&mut self, len: usize) -> bool {
        let Some(len16) = u16::try_from(len)
            .ok()
            .filter(|&l| l <= self.hdr().data_len)
        else {
            return false;
        };
        let h = self.hdr_mut();
        h.data_off += len16;
        h.data_len -= len16;
        h.pkt_len -= u32::from(len16);
        true
    }

    /// Drops `len` bytes from the end of a single-segment frame; `false`,
    /// unchanged, if it is shorter or chained.
    #[inline]
    pub fn trim(&mut self, len: usize) -> bool {
        let Some(len16) = u16::try_from(len)
            .ok()
            .filter(|&l| l <= self.hdr().data_len)
        else {
            return false;
        };
        if self.segments() != 1 {
            return false;
        }
        let h = self.hdr_mut();
        h.data_len -= len16;
        h.pkt_len -= u32::from(len16);
        true
    }

    /// Grows a single-segment frame at the end by `len` bytes and returns
    /// them; `None`, unchanged, if the tailroom is short, it is chained or
    /// it is not [writable](Self::is_writable).
    #[inline]
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        if !self.is_writable() {
            return None;
        }
        // SAFETY: checked just above.
        unsafe { self.append_writable(len) }
    }

    /// [`append`](Self::append) on an mbuf its caller found writable.
    ///
    /// # Safety
    /// `is_writable` must be true.
    #[inline]
    unsafe fn append_writable(&mut self, len: usize) -> Option<&mut [u8]> {
        if len > self.tailroom() || self.segments() != 1 {
            return None;
        }
        let old = self.data_len();
        let len16 = len as u16; // fits: tailroom < buf_len, a u16
        let h = self.hdr_mut();
        h.data_len += len16;
        h.pkt_len += u32::from(len16);
        // SAFETY: the caller's promise; growing data_len changed no holder.
        Some(unsafe { &mut self.writable_data()[old..] })
    }

    /// The port the frame arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.hdr().port
    }

    /// Sets the port field. Drivers set it on receive; an application may
    /// reuse it while it holds the frame (tgw's control plane names the
    /// output port of a frame it hands to a worker to send).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.hdr_mut().port = port;
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.hdr().ol_flags
    }

    /// The packet type the NIC recognised (`RTE_PTYPE_*`), 0 if none.
    #[inline]
    pub fn packet_type(&self) -> u32 {
        // SAFETY: every variant of this union is plain integers, so reading
        // packet_type is always initialised memory.
        unsafe { self.hdr().__bindgen_anon_1.packet_type }
    }

    /// What the driver found of the checksum of the frame's outermost
    /// IPv4 header (`RTE_MBUF_F_RX_IP_CKSUM_*`). A driver that parsed the
    /// frame as a tunnel (`RTE_PTYPE_TUNNEL_*`) puts the inner header's
    /// verdict in those flags and has only a "bad" flag for the outer one
    /// (`RTE_MBUF_F_RX_OUTER_IP_CKSUM_BAD`). "Not filled in, but the header
    /// is intact" (`_NONE`) is reported unknown: software computes it, as
    /// it does where drivers say nothing (memif, af_packet).
    #[inline]
    pub fn rx_ipv4_checksum(&self) -> RxChecksum {
        let flags = self.ol_flags();
        if self.packet_type() & sys::RTE_PTYPE_TUNNEL_MASK != 0 {
            return if flags & u64::from(sys::RTE_MBUF_F_RX_OUTER_IP_CKSUM_BAD) != 0 {
                RxChecksum::Bad
            } else {
                RxChecksum::Unknown
            };
        }
        let ip = flags & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        if ip == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD) {
            RxChecksum::Good
        } else if ip == u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) {
            RxChecksum::Bad
        } else {
            RxChecksum::Unknown
        }
    }

    /// The RSS hash, when the NIC computed one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let h = self.hdr();
        if h.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: the union holds plain integers, and the flag says rss is
        // the member the driver wrote.
        Some(unsafe { h.__bindgen_anon_2.hash.rss })
    }

    /// The mark a flow rule's MARK action gave the frame
    /// (`hash.fdir.hi` under `RTE_MBUF_F_RX_FDIR_ID`), read without a call.
    #[inline]
    pub fn flow_mark(&self) -> Option<u32> {
        let h = self.hdr();
        if h.ol_flags & u64::from(sys::RTE_MBUF_F_RX_FDIR_ID) == 0 {
            return None;
        }
        // SAFETY: the union holds plain integers, and the flag says the
        // driver wrote fdir.hi (the MARK id).
        Some(unsafe { h.__bindgen_anon_2.hash.fdir.hi })
    }

    /// Gives the frame a mark as a NIC's MARK action would (both FDIR flags
    /// and `hash.fdir.hi`), or takes it away: for tests, and for software
    /// that stands in for a NIC.
    pub fn set_flow_mark(&mut self, mark: Option<u32>) {
        let flags = u64::from(sys::RTE_MBUF_F_RX_FDIR | sys::RTE_MBUF_F_RX_FDIR_ID);
        let h = self.hdr_mut();
        match mark {
            Some(id) => {
                h.ol_flags |= flags;
                h.__bindgen_anon_2.hash.fdir.hi = id;
            }
            None => h.ol_flags &= !flags,
        }
    }

    /// Sets the length of a fresh single-segment frame to `len` bytes,
    /// e.g. before filling a generated packet; `false` if it does not fit.
    pub fn set_len(&mut self, len: usize) -> bool {
        let room = usize::from(self.hdr().buf_len) - self.headroom();
        if len > room || self.segments() != 1 {
            return false;
        }
        let h = self.hdr_mut();
        h.data_len = len as u16; // fits: len ≤ room < 2^16
        h.pkt_len = len as u32;
        true
    }
}

/// An mbuf found writable ([`Mbuf::writable`]), borrowed: while the borrow
/// lasts nothing can share it (sharing takes `&mut Mbuf`) and nothing else
/// holds its buffer, so its writes check that no more. A worker's frames
/// are written several times each (the NAT rewrite, the encapsulation's
/// header), each write a refcount load and a flags test before.
pub struct Writable<'a>(&'a mut Mbuf);

impl Writable<'_> {
    /// The frame's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: found writable when made, and nothing could share the
        // mbuf since (the borrow is ours).
        unsafe { self.0.writable_data() }
    }

    /// [`Mbuf::prepend`] without its check.
    #[inline]
    pub fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        // SAFETY: as in data_mut.
        unsafe { self.0.prepend_writable(len) }
    }

    /// [`Writable::prepend`] returning the whole first segment after it,
    /// the `len` new bytes first: for a header written from what follows
    /// it, without working out the data's place again.
    #[inline]
    pub fn prepend_whole(&mut self, len: usize) -> Option<&mut [u8]> {
        // SAFETY: as in data_mut.
        unsafe { self.0.prepend_whole_writable(len) }
    }

    /// [`Mbuf::append`] without its check.
    #[inline]
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        // SAFETY: as in data_mut.
        unsafe { self.0.append_writable(len) }
    }

    /// [`Mbuf::adj`].
    #[inline]
    pub fn adj(&mut self, len: usize) -> bool {
        self.0.adj(len)
    }

    /// [`Mbuf::trim`].
    #[inline]
    pub fn trim(&mut self, len: usize) -> bool {
        self.0.trim(len)
    }

    /// [`Mbuf::set_port`].
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.0.set_port(port);
    }
}

impl Deref for Writable<'_> {
    type Target = Mbuf;

    #[inline]
    fn deref(&self) -> &Mbuf {
        self.0
    }
}

impl Deref for Mbuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        let h = self.hdr();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // data buffer, which we own; DPDK keeps that invariant and so do the
        // length-changing methods above.
        unsafe {
            std::slice::from_raw_parts(
                h.buf_addr.cast::<u8>().add(usize::from(h.data_off)),
                usize::from(h.data_len),
            )
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and it is not used after this.
        unsafe { sys::tgw_pktmbuf_free(self.raw.as_ptr()) };
    }
}
