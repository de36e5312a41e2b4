use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use arrayvec::ArrayVec;
use dpdk_sys as sys;

use crate::{Eal, Error, Mbuf, Mempool, Result};

/// An ethdev port id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A queue index within one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The IPv4 flow types tgw asks RSS to hash on (`RTE_ETH_RSS_*` bits; the
/// macros are `RTE_BIT64` expressions bindgen cannot evaluate).
const RSS_IPV4: u64 = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 7);

/// How to set a port up.
#[derive(Clone, Debug)]
pub struct PortConf {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mtu: u16,
    /// Receive frames for any destination MAC (virtual ports often need it).
    pub promiscuous: bool,
}

/// What a port's driver says it can do.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
    pub rss_offloads: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
}

/// A port's basic counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the NIC because the RX ring was full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX failures for want of an mbuf.
    pub rx_nombuf: u64,
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
}

/// Which ports have a live handle, by port id: one [`UnconfiguredPort`]
/// or [`Port`] per port at a time, so that no two handles can configure one
/// port and hand out its queues twice.
static CLAIMED: [AtomicBool; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_ETHPORTS as usize];

/// The one live handle to a port id; closes the port and releases the
/// claim on drop.
#[derive(Debug)]
struct Device {
    id: PortId,
}

impl Device {
    fn claim(id: u16) -> Result<Device> {
        let busy = Error {
            op: "rte_eth_dev_get_port_by_name",
            errno: libc::EBUSY,
        };
        let slot = CLAIMED.get(usize::from(id)).ok_or(busy)?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(busy);
        }
        Ok(Device { id: PortId(id) })
    }

    fn info(&self) -> Result<PortInfo> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out struct; the port id is valid.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id.0, &mut info) };
        Error::check("rte_eth_dev_info_get", ret)?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver_name is a static C string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            rss_offloads: info.flow_type_rss_offloads,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
        })
    }

    fn mac(&self) -> Result<MacAddr> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: addr is a valid out struct.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id.0, &mut addr) };
        Error::check("rte_eth_macaddr_get", ret)?;
        Ok(MacAddr(addr.addr_bytes))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the port is stopped (Port stops it first) and its queue
        // handles are, by the caller's shutdown order, no longer polled.
        unsafe { sys::rte_eth_dev_close(self.id.0) };
        CLAIMED[usize::from(self.id.0)].store(false, Ordering::Release);
    }
}

/// A configured ethdev port: start, stop, counters. Found with
/// [`Port::by_name`], which gives an [`UnconfiguredPort`], and made by its
/// `configure`. Stopped and closed on drop.
pub struct Port<'p> {
    dev: Device,
    started: bool,
    /// The port's queues draw from a pool (and so EAL's memory).
    _pool: PhantomData<&'p ()>,
}

impl fmt::Debug for Port<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.dev.id)
            .field("started", &self.started)
            .finish()
    }
}

/// A port found but not configured yet: [`configure`](Self::configure)
/// consumes it, so a port is configured once and its queue handles exist
/// once.
///
/// ```compile_fail,E0382
/// # fn f(eal: &rte::Eal, pool: &rte::Mempool, conf: &rte::PortConf) -> rte::Result<()> {
/// let port = rte::Port::by_name(eal, "net_null0")?;
/// let (_port, rx, tx) = port.configure(conf, pool)?;
/// let (_again, rx2, tx2) = port.configure(conf, pool)?; // error: use of moved value
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UnconfiguredPort<'e> {
    dev: Device,
    _eal: PhantomData<&'e Eal>,
}

/// Frames carry the MARK action's flag (`RTE_ETH_RX_METADATA_USER_FLAG`).
pub const RX_METADATA_USER_FLAG: u64 = 1 << 0;
/// Frames carry the MARK action's value (`RTE_ETH_RX_METADATA_USER_MARK`).
pub const RX_METADATA_USER_MARK: u64 = 1 << 1;

impl Port<'_> {
    /// The port DPDK created for device `name` (a vdev name such as
    /// `net_memif0`, or a PCI address), to be configured. `EBUSY` if a
    /// handle to that port is alive already.
    pub fn by_name<'e>(_eal: &'e Eal, name: &str) -> Result<UnconfiguredPort<'e>> {
        let cname = CString::new(name).map_err(|_| Error {
            op: "rte_eth_dev_get_port_by_name",
            errno: libc::EINVAL,
        })?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string; id is a valid out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        Error::check("rte_eth_dev_get_port_by_name", ret)?;
        Ok(UnconfiguredPort {
            dev: Device::claim(id)?,
            _eal: PhantomData,
        })
    }
}

impl<'e> UnconfiguredPort<'e> {
    pub fn id(&self) -> PortId {
        self.dev.id
    }

    /// The driver's capabilities.
    pub fn info(&self) -> Result<PortInfo> {
        self.dev.info()
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<MacAddr> {
        self.dev.mac()
    }

    /// Asks the PMD to deliver `features` (bits of [`RX_METADATA_USER_MARK`]
    /// and the like) with received frames; what it will deliver. DPDK asks
    /// this of an application that uses marks, before the port is
    /// configured (`rte_eth_rx_metadata_negotiate`): a PMD may otherwise
    /// not deliver them (mlx5 in extended metadata mode). ENOTSUP: the PMD
    /// has no negotiation (every virtual device here), which "does not
    /// necessarily mean that the requested features are unsupported"
    /// (rte_ethdev.h): nothing to deliver on those anyway.
    pub fn negotiate_rx_metadata(&self, features: u64) -> Result<u64> {
        let mut features = features;
        // SAFETY: plain call on a port not yet configured (this handle's
        // type says so); `features` is a valid in/out pointer.
        let ret = unsafe { sys::rte_eth_rx_metadata_negotiate(self.dev.id.0, &mut features) };
        Error::check("rte_eth_rx_metadata_negotiate", ret)?;
        Ok(features)
    }

    /// Configures queues, RSS and MTU, and sets the queues up with `pool`
    /// for receive buffers. Returns the configured port, stopped, and the
    /// queue handles, each to be moved to the one lcore that will poll it.
    /// The port and its queues borrow the pool: it cannot be freed while
    /// they live.
    #[allow(clippy::type_complexity)]
    pub fn configure<'p>(
        self,
        conf: &PortConf,
        pool: &'p Mempool<'_>,
    ) -> Result<(Port<'p>, Vec<RxQueue<'p>>, Vec<TxQueue<'p>>)>
    where
        'e: 'p,
    {
        let id = self.dev.id;
        let info = self.info()?;
        let mut eth = sys::rte_eth_conf::default();
        let rss_hf = RSS_IPV4 & info.rss_offloads;
        if conf.rx_queues > 1 && rss_hf != 0 {
            eth.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: eth is a valid configuration; the port is stopped.
        let ret = unsafe { sys::rte_eth_dev_configure(id.0, conf.rx_queues, conf.tx_queues, &eth) };
        Error::check("rte_eth_dev_configure", ret)?;

        if info.max_mtu >= conf.mtu && conf.mtu >= info.min_mtu {
            // SAFETY: plain call on a configured port. Virtual devices may
            // not implement it; the MTU is then whatever they carry.
            let _ = unsafe { sys::rte_eth_dev_set_mtu(id.0, conf.mtu) };
        }

        // SAFETY: plain getter on a valid port; -1 (any socket) is accepted.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        let socket = u32::try_from(socket).unwrap_or(u32::MAX); // SOCKET_ID_ANY
        let mut rx = Vec::with_capacity(usize::from(conf.rx_queues));
        for q in 0..conf.rx_queues {
            // SAFETY: the port is configured with rx_queues queues; a null
            // rxconf means the driver's defaults; the pool outlives the
            // port and its queues (they borrow it for 'p).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    conf.rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            Error::check("rte_eth_rx_queue_setup", ret)?;
            rx.push(RxQueue {
                port: id,
                queue: QueueId(q),
                _pool: PhantomData,
            });
        }
        let mut tx = Vec::with_capacity(usize::from(conf.tx_queues));
        for q in 0..conf.tx_queues {
            // SAFETY: as above, for TX.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(id.0, q, conf.tx_desc, socket, std::ptr::null())
            };
            Error::check("rte_eth_tx_queue_setup", ret)?;
            tx.push(TxQueue {
                port: id,
                queue: QueueId(q),
                _pool: PhantomData,
            });
        }
        if conf.promiscuous {
            // SAFETY: plain call; not every virtual device supports it.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(id.0) };
        }
        let port = Port {
            dev: self.dev,
            started: false,
            _pool: PhantomData,
        };
        Ok((port, rx, tx))
    }
}

impl Port<'_> {
    pub fn id(&self) -> PortId {
        self.dev.id
    }

    /// The driver's capabilities.
    pub fn info(&self) -> Result<PortInfo> {
        self.dev.info()
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: the port is configured.
        let ret = unsafe { sys::rte_eth_dev_start(self.dev.id.0) };
        Error::check("rte_eth_dev_start", ret)?;
        self.started = true;
        Ok(())
    }

    /// Stops the port. Call only once no lcore polls its queues any more.
    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: the port is started, and by the caller's contract no queue
        // of it is in use.
        let ret = unsafe { sys::rte_eth_dev_stop(self.dev.id.0) };
        Error::check("rte_eth_dev_stop", ret).map(drop)
    }

    /// Replaces the port's MAC address. Some virtual devices (pcap, null)
    /// cannot, and answer `ENOTSUP`.
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<()> {
        let mut addr = sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: addr is valid for the call; the port id is valid.
        let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.dev.id.0, &mut addr) };
        Error::check("rte_eth_dev_default_mac_addr_set", ret).map(drop)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<MacAddr> {
        self.dev.mac()
    }

    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: link is a valid out struct; nowait never blocks.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.dev.id.0, &mut link) };
        Error::check("rte_eth_link_get_nowait", ret)?;
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
        })
    }

    /// Whether the port is in promiscuous mode (`None`: the driver does
    /// not say).
    pub fn promiscuous(&self) -> Option<bool> {
        // SAFETY: plain getter on a configured port id.
        match unsafe { sys::rte_eth_promiscuous_get(self.dev.id.0) } {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }

    /// Puts the port back into promiscuous mode: another process attached
    /// to it (`dpdk-dumpcap` without `-p`) may have turned it off.
    pub fn enable_promiscuous(&self) -> Result<()> {
        // SAFETY: plain call on a configured port id; ethdev control calls
        // are made from the control thread only.
        let ret = unsafe { sys::rte_eth_promiscuous_enable(self.dev.id.0) };
        Error::check("rte_eth_promiscuous_enable", ret).map(|_| ())
    }

    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: s is a valid out struct.
        let ret = unsafe { sys::rte_eth_stats_get(self.dev.id.0, &mut s) };
        Error::check("rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The driver's extended counters, by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        // SAFETY: a null array with size 0 asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.dev.id.0, std::ptr::null_mut(), 0) };
        let n = Error::check("rte_eth_xstats_get_names", n)? as usize;
        let mut names = vec![sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut values = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays hold n entries.
        let got =
            unsafe { sys::rte_eth_xstats_get_names(self.dev.id.0, names.as_mut_ptr(), n as u32) };
        let got_names = Error::check("rte_eth_xstats_get_names", got)? as usize;
        // SAFETY: as above.
        let got = unsafe { sys::rte_eth_xstats_get(self.dev.id.0, values.as_mut_ptr(), n as u32) };
        let got_values = Error::check("rte_eth_xstats_get", got)? as usize;
        let len = n.min(got_names).min(got_values);
        Ok(names[..len]
            .iter()
            .zip(&values[..len])
            .map(|(name, v)| {
                // SAFETY: DPDK NUL-terminates xstat names within the array.
                let name = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                (name.to_string_lossy().into_owned(), v.value)
            })
            .collect())
    }
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        // Then `dev` closes the port.
        let _ = self.stop();
    }
}

/// A receive queue: one per polling lcore, never shared.
///
/// A queue handle may outlive its port's start: DPDK 22.11 points a stopped
/// or closed port's burst functions at dummies that return 0, so a burst
/// after `stop` receives nothing rather than touching freed queues.
#[derive(Debug)]
pub struct RxQueue<'p> {
    port: PortId,
    queue: QueueId,
    /// Received mbufs come from the pool the queue was set up with.
    _pool: PhantomData<&'p ()>,
}

impl RxQueue<'_> {
    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Receives up to the free capacity of `out`, appending; returns how many
    /// frames arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, out: &mut ArrayVec<Mbuf, N>) -> usize {
        let len = out.len();
        let room = out.remaining_capacity().min(usize::from(u16::MAX)) as u16;
        // SAFETY: the queue is set up and owned by this lcore (&mut self);
        // the spare capacity of `out` has room for `room` pointers; Mbuf is
        // repr(transparent) over the mbuf pointer; the length is raised only
        // over the entries DPDK wrote, each now owned by us.
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
            let n = usize::from(sys::tgw_eth_rx_burst(self.port.0, self.queue.0, dst, room));
            out.set_len(len + n);
            n
        }
    }
}

/// A transmit queue: one per sending lcore, never shared.
#[derive(Debug)]
pub struct TxQueue<'p> {
    port: PortId,
    queue: QueueId,
    /// Lives no longer than its port's EAL.
    _pool: PhantomData<&'p ()>,
}

impl TxQueue<'_> {
    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Sends the frames of `pkts` from the front; what the driver took is
    /// removed, what it did not stays in `pkts` in order, still owned.
    /// Returns how many were sent.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, pkts: &mut ArrayVec<Mbuf, N>) -> usize {
        let n = pkts.len();
        if n == 0 {
            return 0;
        }
        // SAFETY: the queue is owned by this lcore; pkts holds n valid mbuf
        // pointers (repr(transparent)); ownership of the first `sent` passes
        // to the driver, so they are removed without running Drop.
        let sent = unsafe {
            let p = pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
            usize::from(sys::tgw_eth_tx_burst(
                self.port.0,
                self.queue.0,
                p,
                n as u16,
            ))
        };
        if sent > 0 {
            // SAFETY: the first `sent` entries belong to the driver now; the
            // unsent tail moves to the front and the length shrinks, so each
            // remaining mbuf is owned exactly once.
            unsafe {
                let p = pkts.as_mut_ptr();
                std::ptr::copy(p.add(sent), p, n - sent);
                pkts.set_len(n - sent);
            }
        }
        sent
    }
}
