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
//! INTERFACE (issue 14): the types are fixed by the lead; the helper on the
//! rte flow layer implements the functions (search for `todo!`).

use std::fmt;

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
    /// key bit (K) must be set.
    Gre {
        protocol: Option<u16>,
        key_present: Option<bool>,
    },
    /// The GRE key (follows a `Gre` item).
    GreKey(u32),
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
        let _ = port;
        todo!("issue 14: rte flow layer")
    }

    /// Installs the rule on `port` (`rte_flow_create`).
    pub fn create(&self, port: u16) -> Result<Flow, FlowError> {
        let _ = port;
        todo!("issue 14: rte flow layer")
    }

    /// The rule as `dpdk-testpmd` commands for `port`, one per line: the
    /// `set raw_encap`/`set raw_decap` lines its raw actions need, then
    /// `flow create`.
    pub fn testpmd(&self, port: u16) -> String {
        let _ = port;
        todo!("issue 14: rte flow layer")
    }
}

impl Flow {
    /// The port the rule is on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The rule's hardware counters (`rte_flow_query` of its COUNT action).
    pub fn query_count(&mut self) -> Result<Counts, FlowError> {
        let _ = self.handle;
        todo!("issue 14: rte flow layer")
    }

    /// Destroys the rule now, reporting a failure that drop would only log.
    pub fn destroy(self) -> Result<(), FlowError> {
        todo!("issue 14: rte flow layer")
    }
}
