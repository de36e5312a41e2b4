//! `rte_flow`: rules a NIC applies to the frames it receives, before any
//! core sees them.
//!
//! A [`Rule`] is plain owned data — attributes, a pattern of [`Item`]s and
//! a list of [`Action`]s — built on the control plane, never on a worker.
//! Creating it on a port gives a [`Flow`] handle that destroys the rule
//! when dropped; every failure is a [`FlowError`] carrying DPDK's
//! `rte_flow_error` message. Values are in host order, as in `dataplane`
//! (an IPv4 address is its `u32`); lowering to DPDK's big-endian structs
//! happens at the call.
//!
//! The same rule prints as `dpdk-testpmd` commands ([`Rule::testpmd`]), so
//! an operator can try on real hardware exactly what tgw would install.
//!
//! The parts: `lower.rs` turns a rule into DPDK's structs for one call
//! (how masks and byte order are lowered is told there), `testpmd.rs`
//! renders it as commands, [`template`] holds the template/async API where
//! a PMD has one, and `fake` (feature `fake-nic`) is a NIC that records
//! what it is given, for tests that link with `-Wl,--wrap=rte_flow_*`.
//!
//! Refused before DPDK (`EINVAL`, as a [`FlowError`] whose op is the call
//! that was not made): empty raw encap/decap bytes or RSS queue list, an
//! AGE timeout above 2^24-1 s, a GRE_KEY item not right after a GRE item,
//! and a transfer rule that also says ingress or egress (DPDK 22.11
//! refuses those). Everything else is the PMD's to judge.

use std::ffi::CStr;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use dpdk_sys as sys;

#[cfg(feature = "fake-nic")]
pub mod fake;
mod lower;
pub mod template;
mod testpmd;

pub use testpmd::TESTPMD_LINE_MAX;

use lower::Lowered;

/// Where a rule sits: DPDK's `rte_flow_attr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    pub group: u32,
    pub priority: u32,
    pub ingress: bool,
    pub egress: bool,
    /// E-Switch (transfer) domain: rules that move frames between ports.
    pub transfer: bool,
}

impl Attr {
    /// Ingress, group 0, priority 0.
    pub const INGRESS: Attr = Attr {
        group: 0,
        priority: 0,
        ingress: true,
        egress: false,
        transfer: false,
    };
}

/// A header field matched under a mask: DPDK's item `spec` and `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masked<T> {
    pub spec: T,
    pub mask: T,
}

macro_rules! exact {
    ($($t:ty => $all:expr),*) => {$(
        impl Masked<$t> {
            /// Every bit of `spec` matched.
            pub const fn exact(spec: $t) -> Self {
                Masked { spec, mask: $all }
            }
        }
    )*};
}
exact!(u8 => u8::MAX, u16 => u16::MAX, u32 => u32::MAX, [u8; 6] => [0xff; 6]);

/// One header of a pattern, outermost first. `None` fields match anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Eth {
        dst: Option<Masked<[u8; 6]>>,
        src: Option<Masked<[u8; 6]>>,
        ether_type: Option<u16>,
    },
    Ipv4 {
        /// Version and header length (0x45: no options), exactly.
        version_ihl: Option<u8>,
        /// Type of service (DSCP and ECN).
        tos: Option<Masked<u8>>,
        /// The flags and fragment offset word (DF 0x4000, MF 0x2000,
        /// offset 0x1fff): `mask 0x3fff spec 0` is "not a fragment".
        fragment_offset: Option<Masked<u16>>,
        /// Time to live: `spec 0 mask 0xfe` is "TTL 0 or 1", a packet
        /// whose TTL forwarding would expire.
        ttl: Option<Masked<u8>>,
        src: Option<Masked<u32>>,
        dst: Option<Masked<u32>>,
        protocol: Option<u8>,
    },
    Udp {
        src: Option<Masked<u16>>,
        dst: Option<Masked<u16>>,
    },
    Tcp {
        src: Option<Masked<u16>>,
        dst: Option<Masked<u16>>,
        /// TCP flags byte (FIN 0x01 … CWR 0x80).
        flags: Option<Masked<u8>>,
    },
    /// GRE base header: the protocol of what it carries, and whether the
    /// checksum (C), key (K) and sequence number (S) bits must be set or
    /// clear (RFC 2784/2890).
    Gre {
        protocol: Option<u16>,
        checksum_present: Option<bool>,
        key_present: Option<bool>,
        sequence_present: Option<bool>,
    },
    /// The GRE key (follows a `Gre` item).
    GreKey(u32),
    /// The NIC's integrity checks of one encapsulation level
    /// (`RTE_FLOW_ITEM_TYPE_INTEGRITY`), matched positively only: a check
    /// set `true` must have passed, one left `false` is not looked at
    /// (mlx5 refuses a match on a failed check, "negative integrity flow
    /// is not supported"). The headers it speaks of must be in the
    /// pattern too (an IPv4 item of that level for `ipv4_csum_ok`), as
    /// mlx5 requires.
    Integrity {
        /// 1 the outermost headers, 2 those inside the first tunnel, …
        /// (0 is the PMD's default, which tgw never relies on).
        level: u32,
        /// Every layer-3 check the NIC makes passed.
        l3_ok: bool,
        /// The IPv4 header checksum verifies (RFC 791, RFC 1071).
        ipv4_csum_ok: bool,
    },
    /// A mark a rule of an earlier group set.
    Mark(u32),
    /// Metadata (`RTE_FLOW_ITEM_TYPE_META`).
    Meta(Masked<u32>),
}

/// What the NIC does with a matching frame, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Drop,
    Queue(u16),
    /// Spread over these queues by the default RSS hash.
    Rss(Vec<u16>),
    /// The frame reaches software with this mark (`RTE_MBUF_F_RX_FDIR_ID`).
    Mark(u32),
    Count,
    /// Age out after this many seconds without a hit.
    Age(u32),
    /// Remove these leading bytes (the headers they show).
    RawDecap(Vec<u8>),
    /// Push these bytes in front.
    RawEncap(Vec<u8>),
    SetIpv4Src(u32),
    SetIpv4Dst(u32),
    SetTpSrc(u16),
    SetTpDst(u16),
    SetMacSrc([u8; 6]),
    SetMacDst([u8; 6]),
    DecTtl,
    PortId(u32),
    RepresentedPort(u16),
    Jump(u32),
}

/// A whole rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub attr: Attr,
    pub pattern: Vec<Item>,
    pub actions: Vec<Action>,
}

/// A failed `rte_flow_*` call, with what the PMD said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowError {
    /// The operation (`rte_flow_validate`, ...).
    pub op: &'static str,
    /// A positive errno: `ENOSYS` for a port with no flow API, `ENOTSUP`
    /// for a shape it does not take.
    pub errno: i32,
    /// `rte_flow_error.type`: what part of the rule was refused.
    pub kind: u32,
    /// `rte_flow_error.message`, or the errno's text when the PMD gave none.
    pub message: String,
}

impl FlowError {
    /// The port has no flow API at all.
    pub fn no_flow_api(&self) -> bool {
        self.errno == libc::ENOSYS
    }

    /// The port has a flow API but does not take this rule's shape.
    pub fn unsupported(&self) -> bool {
        self.errno == libc::ENOTSUP
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (errno {})", self.op, self.message, self.errno)
    }
}

impl std::error::Error for FlowError {}

/// Hardware counters of a rule with a [`Action::Count`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub bytes: u64,
}

/// A rule installed on a port: destroyed when dropped.
#[derive(Debug)]
pub struct Flow {
    port: u16,
    handle: std::ptr::NonNull<dpdk_sys::rte_flow>,
}

impl Rule {
    /// Asks the port's PMD whether it would take the rule
    /// (`rte_flow_validate`), installing nothing.
    pub fn validate(&self, port: u16) -> Result<(), FlowError> {
        const OP: &str = "rte_flow_validate";
        let low = Lowered::new(OP, self)?;
        let mut err = sys::rte_flow_error::default();
        // SAFETY: `low` holds END-terminated item and action arrays whose
        // spec/mask/conf pointers point into its own buffer or into `self`,
        // both alive for the call; `err` is a valid out-parameter. DPDK
        // checks the port id itself.
        let ret = unsafe {
            sys::rte_flow_validate(
                port,
                &low.attr,
                low.items.as_ptr(),
                low.actions.as_ptr(),
                &mut err,
            )
        };
        if ret < 0 {
            return Err(FlowError::from_c(OP, -ret, &err));
        }
        Ok(())
    }

    /// Installs the rule on `port` (`rte_flow_create`).
    pub fn create(&self, port: u16) -> Result<Flow, FlowError> {
        const OP: &str = "rte_flow_create";
        let low = Lowered::new(OP, self)?;
        let mut err = sys::rte_flow_error::default();
        // SAFETY: as in `validate`; the PMD copies what it keeps.
        let raw = unsafe {
            sys::rte_flow_create(
                port,
                &low.attr,
                low.items.as_ptr(),
                low.actions.as_ptr(),
                &mut err,
            )
        };
        match NonNull::new(raw) {
            Some(handle) => Ok(Flow { port, handle }),
            // SAFETY: reads the calling thread's rte_errno, which
            // rte_flow_create set on failure.
            None => Err(FlowError::from_c(OP, unsafe { sys::tgw_errno() }, &err)),
        }
    }

    /// The rule as `dpdk-testpmd` commands for `port`, one per line: the
    /// `set raw_encap`/`set raw_decap` lines its raw actions need, then
    /// `flow create`. Raw actions are numbered 0, 1, … in the order they
    /// appear in the rule (tgw's shapes: decap 0, encap 1), so each rule's
    /// `set` lines must run right before its own `flow create`, which is
    /// the order they are printed in.
    pub fn testpmd(&self, port: u16) -> String {
        testpmd::render(self, port)
    }
}

impl FlowError {
    /// From a failed call's positive errno and its `rte_flow_error`.
    fn from_c(op: &'static str, errno: i32, err: &sys::rte_flow_error) -> FlowError {
        let message = if err.message.is_null() {
            // SAFETY: rte_strerror returns a static or thread-local
            // NUL-terminated string for any errno value.
            unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }
        } else {
            // SAFETY: a non-NULL message is a NUL-terminated string the PMD
            // keeps alive at least until the next flow call on this thread
            // (usually a literal); it is copied out right away.
            unsafe { CStr::from_ptr(err.message) }
        };
        FlowError {
            op,
            errno,
            kind: err.type_,
            message: message.to_string_lossy().into_owned(),
        }
    }
}

// SAFETY: the handle is only passed back to rte_flow calls on its port, and
// rte_flow serialises calls on a port whose PMD is not thread-safe (ethdev's
// per-port flow lock), so the handle may move to another thread.
unsafe impl Send for Flow {}

impl Flow {
    /// The port the rule is on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The rule's hardware counters (`rte_flow_query` of its COUNT action).
    pub fn query_count(&mut self) -> Result<Counts, FlowError> {
        query_count(self.port, self.handle)
    }

    /// Destroys the rule now, reporting a failure that drop would only log.
    pub fn destroy(self) -> Result<(), FlowError> {
        let flow = ManuallyDrop::new(self);
        flow.destroy_raw()
    }

    fn destroy_raw(&self) -> Result<(), FlowError> {
        const OP: &str = "rte_flow_destroy";
        let mut err = sys::rte_flow_error::default();
        // SAFETY: the handle came from rte_flow_create on this port; this
        // runs once, from `destroy` (which keeps drop from running) or from
        // drop.
        let ret = unsafe { sys::rte_flow_destroy(self.port, self.handle.as_ptr(), &mut err) };
        if ret < 0 {
            return Err(FlowError::from_c(OP, -ret, &err));
        }
        Ok(())
    }
}

/// `rte_flow_query` of the COUNT action of rule `handle` on `port`, made
/// by `rte_flow_create` or `rte_flow_async_create`. The action list ends
/// with END: mlx5 (`flow_dv_query`, `flow_hw_query`) reads actions up to
/// END, not one.
pub(crate) fn query_count(port: u16, handle: NonNull<sys::rte_flow>) -> Result<Counts, FlowError> {
    const OP: &str = "rte_flow_query";
    let actions = [
        sys::rte_flow_action {
            type_: sys::RTE_FLOW_ACTION_TYPE_COUNT,
            conf: ptr::null(),
        },
        sys::rte_flow_action {
            type_: sys::RTE_FLOW_ACTION_TYPE_END,
            conf: ptr::null(),
        },
    ];
    // reset = 0: the counters keep running totals.
    let mut data = sys::rte_flow_query_count::default();
    let mut err = sys::rte_flow_error::default();
    // SAFETY: the caller's handle is a live rule of this port (a `Flow`
    // not destroyed yet, or a rule `template::PortFlows` holds); the
    // END-terminated `actions` and `data`, the struct a COUNT query
    // writes, are valid for the call.
    let ret = unsafe {
        sys::rte_flow_query(
            port,
            handle.as_ptr(),
            actions.as_ptr(),
            ptr::from_mut(&mut data).cast(),
            &mut err,
        )
    };
    if ret < 0 {
        return Err(FlowError::from_c(OP, -ret, &err));
    }
    Ok(Counts {
        hits: data.hits,
        bytes: data.bytes,
    })
}

impl Drop for Flow {
    fn drop(&mut self) {
        // Drop cannot report, and the rte layer logs nothing: a caller that
        // must know calls `destroy`.
        let _ = self.destroy_raw();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_error_without_a_message_says_the_errno() {
        let err = sys::rte_flow_error {
            type_: sys::RTE_FLOW_ERROR_TYPE_ACTION,
            ..Default::default()
        };
        let e = FlowError::from_c("rte_flow_validate", libc::ENOTSUP, &err);
        assert!(e.unsupported());
        assert_eq!(e.kind, sys::RTE_FLOW_ERROR_TYPE_ACTION);
        assert_eq!(e.message, "Operation not supported");
        let with = sys::rte_flow_error {
            type_: sys::RTE_FLOW_ERROR_TYPE_ITEM,
            cause: ptr::null(),
            message: c"no GRE here".as_ptr(),
        };
        let e = FlowError::from_c("rte_flow_create", libc::EINVAL, &with);
        assert_eq!(e.message, "no GRE here");
        assert_eq!(e.to_string(), "rte_flow_create: no GRE here (errno 22)");
    }
}
