//! Connection state: what the flow table keeps per flow, and how TCP's
//! state and every flow's lifetime move.
//!
//! A [`Conn`] is the flow table's value. It holds the flow's NAT rewrite
//! for each side (so a packet of a known flow needs one lookup and one
//! rewrite), the tunnel toward the tenant (so it needs no route lookup
//! inward), and the state that decides how long the flow lives.
//!
//! TCP's state machine is written down as a table in `docs/conntrack.md`:
//! [`TcpState::step`] and [`Conn::track_tcp`] implement it, and the
//! flow-hit fast path (`pipeline/hit.rs`) takes only its one row for a
//! plain segment of an established connection.
//!
//! Timeouts default to the RFCs' floors: RFC 4787 REQ-5 (UDP at least
//! 2 minutes), RFC 5382 REQ-5 (TCP established at least 2 hours 4 minutes,
//! transitory 4 minutes), RFC 5508 REQ-2 (ICMP query 60 seconds).

use crate::nat::Rewrite;
use crate::snat::Inside;
use crate::wire::tcp::TcpFlags;
use crate::wire::IpProtocol;

mod tuple;
pub use tuple::Tuple;

/// Lifetimes, in seconds, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: u64,
    /// SYN seen, FIN seen, closing.
    pub tcp_transitory: u64,
    /// After a RST: long enough for stragglers, short enough to free the
    /// mapping soon (Linux's CLOSE is 10 s).
    pub tcp_closed: u64,
    pub udp: u64,
    pub icmp: u64,
    /// An inbound flow nobody inside has answered yet, opened once its
    /// tenant held half its share of them (see
    /// `Pipeline::with_unreplied`): a flood of spoofed SYNs then recycles
    /// quickly instead of pinning the share for the transitory timeout.
    pub unreplied: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 7440,
            tcp_transitory: 240,
            tcp_closed: 10,
            udp: 120,
            icmp: 60,
            unreplied: 10,
        }
    }
}

impl Timeouts {
    /// What is left of `conn`'s life after a packet, in ticks of a clock
    /// of `hz` ticks per second.
    #[inline(always)]
    pub fn ticks(&self, conn: &Conn, hz: u64) -> u64 {
        let mut life = self.of(conn.protocol, conn.tcp);
        if conn.answered == Answered::NoUnderPressure {
            life = life.min(self.unreplied);
        }
        life.saturating_mul(hz)
    }

    /// The lifetime, in seconds, of a flow of `protocol` in `state`.
    pub fn of(&self, protocol: u8, state: TcpState) -> u64 {
        match IpProtocol(protocol) {
            IpProtocol::TCP => match state {
                TcpState::Established => self.tcp_established,
                TcpState::Closed => self.tcp_closed,
                _ => self.tcp_transitory,
            },
            IpProtocol::ICMP => self.icmp,
            // Other protocols are tracked by address alone (Linux's
            // generic tracker); they live as long as UDP.
            _ => self.udp,
        }
    }
}

/// [`Timeouts`] in ticks of a worker's clock, multiplied out once: what a
/// packet's update reads ([`Conn::on_packet`]), a load instead of a
/// multiplication per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    tcp_established: u64,
    tcp_transitory: u64,
    tcp_closed: u64,
    udp: u64,
    icmp: u64,
    unreplied: u64,
    /// What [`Lifetimes::of`] gives the fast path's connections, at
    /// [`plain_at`] their answer and protocol: one load where the
    /// protocol's match, the TCP state's and the unreplied minimum took
    /// 13 instructions a hit (callgrind: staged nat −7 a frame, docs/perf.md).
    plain: [u64; 24],
}

/// Where [`Lifetimes`]' `plain` holds the life of a fast-path connection
/// `answered` so, of `protocol`: a row of 8 for each [`Answered`], and in
/// it ICMP at 0, TCP at 1, UDP at 4. The fast path takes no other protocol
/// (pipeline/hit.rs's `Plain::parse`).
#[inline(always)]
fn plain_at(answered: Answered, protocol: u8) -> usize {
    usize::from(answered as u8) << 3 | usize::from(protocol >> 2 & 7)
}

impl Lifetimes {
    /// `timeouts` on a clock of `hz` ticks per second.
    pub fn new(timeouts: &Timeouts, hz: u64) -> Lifetimes {
        let ticks = |seconds: u64| seconds.saturating_mul(hz);
        let mut life = Lifetimes {
            tcp_established: ticks(timeouts.tcp_established),
            tcp_transitory: ticks(timeouts.tcp_transitory),
            tcp_closed: ticks(timeouts.tcp_closed),
            udp: ticks(timeouts.udp),
            icmp: ticks(timeouts.icmp),
            unreplied: ticks(timeouts.unreplied),
            plain: [0; 24],
        };
        // Each row and column as `of` says for the fast path's connection
        // (TCP established, other protocols stateless).
        for answered in [Answered::Yes, Answered::No, Answered::NoUnderPressure] {
            for protocol in [IpProtocol::ICMP, IpProtocol::TCP, IpProtocol::UDP] {
                let conn = Conn {
                    protocol: protocol.0,
                    tcp: if protocol == IpProtocol::TCP {
                        TcpState::Established
                    } else {
                        TcpState::None
                    },
                    answered,
                    ..Conn::default()
                };
                life.plain[plain_at(answered, protocol.0)] = life.of(&conn);
            }
        }
        life
    }

    /// [`Lifetimes::of`] for the fast path's connection (`Conn::on_plain`):
    /// TCP established, UDP or ICMP.
    #[inline(always)]
    fn of_plain(&self, conn: &Conn) -> u64 {
        self.plain[plain_at(conn.answered, conn.protocol)]
    }

    /// What is left of `conn`'s life after a packet, in ticks: as
    /// [`Timeouts::ticks`] says.
    #[inline(always)]
    pub fn of(&self, conn: &Conn) -> u64 {
        let life = match IpProtocol(conn.protocol) {
            IpProtocol::TCP => match conn.tcp {
                TcpState::Established => self.tcp_established,
                TcpState::Closed => self.tcp_closed,
                _ => self.tcp_transitory,
            },
            IpProtocol::ICMP => self.icmp,
            _ => self.udp,
        };
        if conn.answered == Answered::NoUnderPressure {
            life.min(self.unreplied)
        } else {
            life
        }
    }
}

/// Where a flow's TCP connection is (RFC 9293's states, folded to what a
/// middlebox can see and needs for its timers). Other protocols stay
/// [`TcpState::None`]. The opener is the flow's forward direction (index
/// 0), the answerer its reply direction. `docs/conntrack.md` has the
/// whole table; [`Conn::track_tcp`] is the only code that moves a state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcpState {
    #[default]
    None,
    /// The opener's SYN went through.
    SynSent,
    /// Both sides sent a SYN, neither acknowledged the other's yet: a
    /// simultaneous open (RFC 9293 §3.5).
    SynSent2,
    /// The answerer acknowledged the opener's SYN (its SYN+ACK); the
    /// opener's acknowledgement of the answerer's SYN completes the
    /// handshake.
    SynReceived,
    /// Simultaneous open, the other way round: the opener acknowledged
    /// the answerer's SYN first; the answerer's acknowledgement completes.
    SynReceived2,
    /// The handshake completed.
    Established,
    /// The opener sent a FIN (it is in FIN-WAIT), the answerer not yet.
    FinWait,
    /// The answerer sent a FIN (the opener is in CLOSE-WAIT), the opener
    /// not yet.
    CloseWait,
    /// Both sides sent a FIN.
    Closing,
    /// A RST went through.
    Closed,
}

/// A segment that may open a connection: SYN without ACK, RST or FIN.
fn opens(flags: TcpFlags) -> bool {
    let decides = TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN;
    flags & decides == TcpFlags::SYN
}

/// The window scale each side announced in its SYN (RFC 7323 §2), one
/// nibble a side (by direction index), [`Scales::NONE`] for none: what
/// bounds the window a side can advertise, and so how far past what it
/// acknowledged a RST to it may be (RFC 5961 §3.2's window, without the
/// per-segment window, which the fast path would have to learn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scales(u8);

impl Default for Scales {
    fn default() -> Self {
        Scales(Self::NONE | Self::NONE << 4)
    }
}

impl Scales {
    /// No Window Scale option.
    pub const NONE: u8 = 0xf;
    /// RFC 7323 §2.3: a larger shift is used as 14.
    pub const MAX: u8 = 14;

    /// Side `side` announced `shift` (at most [`Scales::MAX`], or
    /// [`Scales::NONE`]).
    fn set(&mut self, side: usize, shift: u8) {
        let at = 4 * (side & 1);
        self.0 = (self.0 & !(0xf << at)) | shift << at;
    }

    /// The largest window `side` can advertise: scaled only if both SYNs
    /// carried the option (RFC 7323 §2.2).
    pub fn window_max(self, side: usize) -> u32 {
        let (a, b) = (self.0 & 0xf, self.0 >> 4);
        if a == Self::NONE || b == Self::NONE {
            return u32::from(u16::MAX);
        }
        let shift = if side & 1 == 0 { a } else { b };
        u32::from(u16::MAX) << shift
    }
}

/// What a segment does to its connection (docs/conntrack.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The segment fits: the connection moves to this state and learns the
    /// segment's SYN and acknowledgement.
    Move(TcpState),
    /// The segment passes and changes nothing, as Linux conntrack's
    /// "ignore": a retransmission, or a segment of a connection the
    /// middlebox may be out of step with, which the end hosts answer (a
    /// challenge ACK, RFC 5961 §4, a RST, or a SYN+ACK) in a way the
    /// table follows.
    Ignore,
    /// The opener's SYN on a closing or closed connection: a new
    /// connection on the same 5-tuple, in the same flow and NAT mapping
    /// (RFC 1122 §4.2.2.13, RFC 7857 §2.2, RFC 6146 §3.5.2.2).
    Reopen,
}

impl Conn {
    /// Checks a TCP segment from direction `from` (0 the opener, 1 the
    /// answerer) against the connection, learns its SYN and
    /// acknowledgement, and moves the state. A RST is believed only when
    /// it fits what its receiver expects (RFC 5961's concern, a
    /// middlebox's share of it).
    pub fn track_tcp(&mut self, from: usize, t: &Tuple) -> Result<(), Invalid> {
        let from = from & 1;
        let other = 1 - from;
        if t.flags.intersects(TcpFlags::RST) {
            let fits = match (self.tcp, from) {
                // The answer to a SYN acknowledges it exactly (RFC 9293
                // §3.10.7.3; RFC 5961 §3 leaves SYN-SENT to it).
                (TcpState::SynSent, 1) => {
                    t.flags.intersects(TcpFlags::ACK) && t.ack == self.expect[other]
                }
                // The opener's RST in SYN-SENT answers an ACK of an older
                // connection the answerer still holds (RFC 5961 §4's
                // challenge ACK, whose number the table does not learn):
                // it can only end the opener's own attempt.
                (TcpState::SynSent, _) => true,
                // Within the receiver's window from what it acknowledged
                // last: a blind attacker has to guess the sequence space
                // within it (one chance in 65536 without scaling).
                _ => {
                    let from_seq = self.expect[from];
                    let window = self.scales.window_max(other);
                    from_seq == 0 || t.seq.wrapping_sub(from_seq) <= window
                }
            };
            if !fits {
                return Err(Invalid);
            }
            self.tcp = TcpState::Closed;
            return Ok(());
        }
        let acks = t.ack == self.expect[other];
        match self.tcp.step(t.flags, from == 0, acks)? {
            Step::Ignore => {}
            Step::Reopen => {
                self.tcp = TcpState::SynSent;
                self.expect = [t.seq.wrapping_add(1), 0];
                self.scales = Scales::default();
                self.scales.set(0, t.wscale);
            }
            Step::Move(next) => {
                if t.flags.intersects(TcpFlags::SYN) {
                    self.expect[from] = t.seq.wrapping_add(1);
                    self.scales.set(from, t.wscale);
                }
                if t.flags.intersects(TcpFlags::ACK) {
                    self.expect[other] = t.ack;
                }
                self.tcp = next;
            }
        }
        Ok(())
    }
}

impl Conn {
    /// Whether a packet going `from` (0 the opener's direction, 1 the
    /// answerer's) is the first answer to a flow opened from outside,
    /// which [`Conn::on_packet`] then notes (and its caller counts).
    #[inline]
    pub fn first_answer(&self, from: usize) -> bool {
        from & 1 == 1 && self.answered != Answered::Yes
    }

    /// A packet of the connection going `from` at time `now`: TCP's state
    /// moves ([`Conn::track_tcp`]), a `first_answer` ([`Conn::first_answer`])
    /// is noted, and the flow lives on for its state's timeout: the new
    /// deadline. The full path's per-packet update; on `Err` the
    /// connection is as it was. The flow-hit fast path's packet — a plain
    /// ACK of an established connection, never a first answer — takes the
    /// table's one row with [`Conn::on_plain`], which reads no tuple
    /// (callgrind: 2 to 7 instructions a staged hit, 14 to 20 an unstaged
    /// one).
    #[inline(always)]
    pub fn on_packet(
        &mut self,
        from: usize,
        t: &Tuple,
        first_answer: bool,
        life: &Lifetimes,
        now: u64,
    ) -> Result<u64, Invalid> {
        // A later fragment carries no TCP header: nothing to track.
        let tcp = self.protocol == IpProtocol::TCP.0;
        if tcp && (t.flags.0 != 0 || t.protocol != IpProtocol::TCP.0) {
            let decides = TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK;
            if self.tcp == TcpState::Established && t.flags & decides == TcpFlags::ACK {
                self.established_ack(from, t.ack);
            } else {
                self.track_other_rows(from, *t)?;
            }
        }
        if first_answer {
            self.answered = Answered::Yes;
        }
        Ok(self.lives_on(life, now))
    }

    /// docs/conntrack.md's row "Established, ACK", for a segment going
    /// `from` that acknowledges `ack`: the state stays, the
    /// acknowledgement is learned (for the RST check).
    #[inline(always)]
    fn established_ack(&mut self, from: usize, ack: u32) {
        self.expect[1 - (from & 1)] = ack;
    }

    /// The deadline of a connection that saw a packet at `now`: its
    /// state's timeout on.
    #[inline(always)]
    fn lives_on(&self, life: &Lifetimes, now: u64) -> u64 {
        now.saturating_add(life.of(self))
    }
}

impl Conn {
    /// [`Conn::on_packet`] for the flow-hit fast path's packet
    /// (pipeline/hit.rs's `Plain`), never a first answer: a UDP datagram,
    /// an ICMP echo, or a segment with ACK alone of the flags of an
    /// established connection, which the caller checked. The row
    /// "Established, ACK" learns `ack`, the segment's acknowledgment
    /// number, and nothing is refused. The same update as `on_packet`'s
    /// (`on_plain_updates_as_on_packet_does`).
    #[inline(always)]
    pub fn on_plain(&mut self, from: usize, ack: u32, life: &Lifetimes, now: u64) -> u64 {
        debug_assert!(self.protocol != IpProtocol::TCP.0 || self.tcp == TcpState::Established);
        debug_assert!(matches!(
            IpProtocol(self.protocol),
            IpProtocol::TCP | IpProtocol::UDP | IpProtocol::ICMP
        ));
        if self.protocol == IpProtocol::TCP.0 {
            self.established_ack(from, ack);
        }
        now.saturating_add(life.of_plain(self))
    }

    /// [`Conn::track_tcp`] for a segment other than the fast path's, out
    /// of line: [`Conn::on_packet`] is inlined into the fast path, which
    /// never takes it. The tuple is a copy, made on this branch alone: a
    /// reference would make every caller keep its tuple in memory
    /// (callgrind: 14 instructions a flow hit).
    #[cold]
    #[inline(never)]
    fn track_other_rows(&mut self, from: usize, t: Tuple) -> Result<(), Invalid> {
        self.track_tcp(from, &t)
    }
}

/// Why a segment does not fit its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid;

impl TcpState {
    /// The state of a new flow of `protocol`: TCP flows open with a SYN.
    pub fn opened_by(protocol: u8) -> TcpState {
        if protocol == IpProtocol::TCP.0 {
            TcpState::SynSent
        } else {
            TcpState::None
        }
    }

    /// What a segment without RST, with `flags`, does: sent by the opener
    /// (`from_opener`) or by the answerer, acknowledging exactly what the
    /// other side is expected to have sent (`acks`). One row of
    /// docs/conntrack.md's table per arm.
    pub fn step(self, flags: TcpFlags, from_opener: bool, acks: bool) -> Result<Step, Invalid> {
        use Step::{Ignore, Move, Reopen};
        use TcpState::*;
        let syn = flags.intersects(TcpFlags::SYN);
        let ack = flags.intersects(TcpFlags::ACK);
        let fin = flags.intersects(TcpFlags::FIN);
        // The sender's FIN, from the opener's point of view.
        let closes = if from_opener { FinWait } else { CloseWait };
        let opened = if fin { closes } else { Established };
        Ok(match (self, from_opener) {
            // A new connection on a closed one's 5-tuple. (The end host
            // checks RFC 1122's sequence condition; Linux conntrack does
            // not either.)
            (Closing | Closed, true) if syn && !ack => Reopen,

            // The handshake.
            (SynSent, true) if syn && !ack => Move(SynSent),
            (SynSent, false) if syn && !ack => Move(SynSent2),
            (SynSent, false) if syn && ack && acks => Move(SynReceived),
            (SynSent2, _) if syn && !ack => Move(SynSent2),
            (SynSent2, false) if syn && ack && acks => Move(SynReceived),
            (SynSent2, true) if syn && ack && acks => Move(SynReceived2),
            // The answerer's ACK of an older connection it still holds
            // (RFC 5961 §4): the opener answers it with a RST.
            (SynSent | SynSent2, false) if ack && !syn => Ignore,
            // The completing acknowledgement (a SYN+ACK in a simultaneous
            // open), RFC 9293 §3.10.7.4: SND.UNA < SEG.ACK =< SND.NXT.
            (SynReceived, true) | (SynReceived2, false) if ack && acks => Move(opened),
            // The acknowledging side's SYN+ACK again: its ACK was lost.
            (SynReceived, false) | (SynReceived2, true) if syn && ack && acks => Move(self),
            // A retransmitted SYN (RFC 5382 REQ-2), and what the other
            // side answers it with.
            (SynReceived | SynReceived2, _) if syn && !ack => Ignore,
            (SynReceived, false) | (SynReceived2, true) if ack && !syn => Ignore,
            (SynSent | SynSent2 | SynReceived | SynReceived2, _) => return Err(Invalid),

            // Open or closing.
            // The opener's SYN on an open connection: it may have
            // restarted. Its peer answers with a challenge ACK, which the
            // opener answers with a RST that closes the flow, and its next
            // SYN reopens it; or the peer lost the connection too and
            // answers with a SYN+ACK, whose ACK the table learns.
            (Established | FinWait | CloseWait, true) if syn && !ack => Ignore,
            // The answerer's SYN+ACK again: the opener's ACK was lost.
            (_, false) if syn && ack => Ignore,
            (_, _) if syn => return Err(Invalid),
            // RFC 9293 §3.10.7.4: a segment without ACK is dropped.
            (_, _) if !ack => return Err(Invalid),
            (Established, _) if fin => Move(closes),
            // The other side's FIN; the same side's again changes nothing.
            (FinWait, false) | (CloseWait, true) if fin => Move(Closing),
            // Closed lets stragglers through until it expires.
            (state, _) => Move(state),
        })
    }
}

/// line, so that a packet of the flow reads one line for it (and a staged
/// lookup prefetches one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(64))]
pub struct Conn {
    /// The tenant's slot ([`crate::tenant::TenantId`]).
    pub tenant: u16,
    /// The tunnel toward the tenant's host (an index into the tenant's
    /// tunnels).
    pub tunnel: u16,
    /// The tenant's epoch when the flow was decided
    /// ([`crate::tenant::Tenant::epoch`]): a packet of a flow whose tenant
    /// has moved on since is decided again by the full path — re-routed,
    /// checked against the elastic IP or pool and the rules in force, or
    /// ended (docs/decisions.md, "Runtime changes").
    pub epoch: u32,
    /// Applied to packets going into the tenant (DNAT).
    pub to_tenant: Rewrite,
    /// Applied to packets leaving toward the public side (SNAT).
    pub to_public: Rewrite,
    pub protocol: u8,
    pub tcp: TcpState,
    /// TCP: the sequence number each side (by [`Direction`] index) is
    /// expected to send next, as the other side last acknowledged it; 0
    /// while unknown.
    ///
    /// [`Direction`]: crate::flow::Direction
    pub expect: [u32; 2],
    /// TCP: the window scale each side's SYN announced.
    pub scales: Scales,
    /// For shared source NAT: the mapping the flow holds a share of.
    pub snat: Option<Inside>,
    /// Whether anyone inside answered a flow opened from the public side:
    /// unanswered flows have a share of the tenant's quota of their own,
    /// so that a flood of them cannot take the rest (issue 9, defect 6).
    pub answered: Answered,
    /// Where the tenant-side host's MAC was last found in the neighbour
    /// table, for gretap tunnels ([`crate::neighbour::Neighbours::get_hinted`]).
    pub inner: u16,
    /// A key of the flow on the public side has one of the gateway's own
    /// addresses for source: a hairpinned flow, whose packets the gateway
    /// turns around inside and never receives on a port
    /// ([`crate::martian::hairpinned`]).
    pub hairpin: bool,
    /// Where the flow is with the NIC: whether the worker asked for it to
    /// be offloaded, so that its end is told (docs/offload.md).
    pub offload: Offload,
}

// A packet of the flow reads one cache line for it (issue 4's budget).
const _: () = assert!(std::mem::size_of::<Conn>() == 64);

/// A flow's part in offload, as its worker sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Offload {
    /// Not offered yet: offered once established both ways, if the worker
    /// offloads.
    #[default]
    Unoffered,
    /// Offered to the offload manager: when the flow ends, the worker
    /// says so.
    Requested,
    /// Stays in software for good: the request queue was full, the flow
    /// was pulled back, or its connection left Established.
    Kept,
}

impl Conn {
    /// Whether the flow is established both ways after a packet going
    /// `from` (0 the opener's direction, 1 the answerer's): TCP once the
    /// handshake completed, other protocols at the answerer's packet (the
    /// first answer, as the flowtable offloads). What makes a flow a
    /// candidate for offload; the flow-hit fast path and the full path
    /// both ask it after [`Conn::on_packet`].
    #[inline(always)]
    pub fn established_both_ways(&self, from: usize) -> bool {
        if self.protocol == IpProtocol::TCP.0 {
            self.tcp == TcpState::Established
        } else {
            from & 1 == 1
        }
    }

    /// The tenant's slot.
    #[inline]
    pub fn tenant_id(&self) -> crate::tenant::TenantId {
        crate::tenant::TenantId(u32::from(self.tenant))
    }

    /// The tunnel toward the tenant's host.
    #[inline]
    pub fn tunnel_id(&self) -> crate::tables::TunnelId {
        crate::tables::TunnelId {
            tenant: self.tenant_id(),
            index: u32::from(self.tunnel),
        }
    }
}

/// Whether a flow opened from the public side has been answered from
/// inside. Flows opened from inside are [`Answered::Yes`] from the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Answered {
    #[default]
    Yes,
    No,
    /// Not answered, and opened while its tenant held half its share of
    /// unanswered flows: it lives [`Timeouts::unreplied`] at most, so that
    /// a flood recycles its own flows.
    NoUnderPressure,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: TcpFlags = TcpFlags::SYN;
    const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
    const ACK: TcpFlags = TcpFlags::ACK;
    const FIN_ACK: TcpFlags = TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0);
    const RST: TcpFlags = TcpFlags::RST;

    /// Runs `segments` (flags, from the opener, acknowledges exactly)
    /// from `state` and checks each step.
    fn walk(mut state: TcpState, segments: &[(TcpFlags, bool, bool, TcpState)]) {
        for &(flags, opener, acks, want) in segments {
            state = match state.step(flags, opener, acks) {
                Ok(Step::Move(next)) => next,
                Ok(Step::Ignore) => state,
                Ok(Step::Reopen) => TcpState::SynSent,
                Err(Invalid) => panic!("{flags:?} from opener {opener} invalid in {state:?}"),
            };
            assert_eq!(state, want, "{flags:?} from opener {opener}");
        }
    }

    #[test]
    fn a_handshake_a_close_and_a_reopen() {
        use TcpState::*;
        walk(
            SynSent,
            &[
                (SYN, true, false, SynSent),
                (SYN_ACK, false, true, SynReceived),
                (SYN, true, false, SynReceived),
                (ACK, true, true, Established),
                (ACK, false, true, Established),
                (FIN_ACK, false, true, CloseWait),
                (FIN_ACK, false, true, CloseWait),
                (FIN_ACK, true, true, Closing),
                (ACK, false, true, Closing),
                (SYN, true, false, SynSent),
            ],
        );
    }

    #[test]
    fn a_simultaneous_open_completes_either_way_round() {
        use TcpState::*;
        walk(
            SynSent,
            &[
                (SYN, false, false, SynSent2),
                (SYN_ACK, false, true, SynReceived),
                (SYN_ACK, true, true, Established),
            ],
        );
        walk(
            SynSent,
            &[
                (SYN, false, false, SynSent2),
                (SYN_ACK, true, true, SynReceived2),
                (SYN_ACK, false, true, Established),
            ],
        );
    }

    #[test]
    fn out_of_order_segments_are_invalid() {
        use TcpState::*;
        assert_eq!(SynSent.step(ACK, true, true), Err(Invalid));
        assert_eq!(SynSent.step(SYN_ACK, true, true), Err(Invalid));
        assert_eq!(SynSent.step(SYN_ACK, false, false), Err(Invalid));
        assert_eq!(SynReceived.step(ACK, true, false), Err(Invalid));
        assert_eq!(Established.step(SYN, false, false), Err(Invalid));
        assert_eq!(Closed.step(SYN, false, false), Err(Invalid));
        assert_eq!(
            Established.step(TcpFlags::empty(), true, true),
            Err(Invalid)
        );
        assert_eq!(Established.step(SYN, true, false), Ok(Step::Ignore));
        assert!(opens(SYN));
        assert!(!opens(SYN_ACK) && !opens(ACK) && !opens(RST));
    }

    #[test]
    fn window_scales_count_only_when_both_sides_announce_them() {
        let mut s = Scales::default();
        assert_eq!(s.window_max(0), 65535);
        s.set(0, 7);
        assert_eq!(s.window_max(0), 65535, "one side alone");
        s.set(1, 14);
        assert_eq!(
            (s.window_max(0), s.window_max(1)),
            (65535 << 7, 65535 << 14)
        );
        s.set(1, Scales::NONE);
        assert_eq!(s.window_max(0), 65535);
    }

    /// Issue 4's budget: 128 bytes of memory per flow, the table's own
    /// cost included.
    #[test]
    fn a_flow_costs_at_most_128_bytes() {
        let table = crate::flow::FlowTable::<Conn>::new(1 << 16).unwrap();
        let per_flow = table.memory_bytes() as f64 / table.capacity() as f64;
        assert!(per_flow <= 128.0, "{per_flow:.1} bytes a flow");
        assert!(std::mem::size_of::<Conn>() <= 64);
    }

    /// The per-packet update's shortcut for the fast path's row moves the
    /// connection exactly as the table does, and every other segment goes
    /// through the table.
    #[test]
    fn on_packet_moves_a_connection_as_track_tcp_does() {
        use TcpState::*;
        let life = Lifetimes::new(&Timeouts::default(), 1);
        for state in [SynSent, SynReceived, Established, FinWait, Closing, Closed] {
            for flags in [ACK, SYN, SYN_ACK, FIN_ACK, RST, TcpFlags::empty()] {
                for from in [0, 1] {
                    let conn = Conn {
                        protocol: IpProtocol::TCP.0,
                        tcp: state,
                        expect: [100, 200],
                        answered: Answered::No,
                        ..Conn::default()
                    };
                    let t = Tuple {
                        protocol: IpProtocol::TCP.0,
                        src: 1,
                        dst: 2,
                        sport: 3,
                        dport: 4,
                        flags,
                        seq: 200,
                        ack: 100,
                        wscale: Scales::NONE,
                        opens: opens(flags),
                    };
                    let (mut tracked, mut updated) = (conn, conn);
                    let want = tracked.track_tcp(from, &t);
                    let first = updated.first_answer(from);
                    assert_eq!(first, from == 1);
                    let got = updated.on_packet(from, &t, first, &life, 5);
                    if flags.0 == 0 {
                        // A later fragment: no TCP header, nothing moves.
                        assert!(got.is_ok());
                        assert_eq!((updated.tcp, updated.expect), (conn.tcp, conn.expect));
                    } else {
                        assert_eq!(got.is_ok(), want.is_ok(), "{state:?} {flags:?} {from}");
                        assert_eq!((updated.tcp, updated.expect), (tracked.tcp, tracked.expect));
                    }
                    match got {
                        Ok(deadline) => {
                            assert_eq!(updated.answered == Answered::Yes, first);
                            assert_eq!(deadline, 5 + life.of(&updated));
                        }
                        Err(_) => assert_eq!(updated, conn),
                    }
                }
            }
        }
    }

    /// What the fast path takes (an ACK of an established connection, a
    /// UDP datagram, an ICMP echo, never a first answer), from either side
    /// and whether the flow was answered: `on_plain` leaves the flow and
    /// its deadline as `on_packet` does.
    #[test]
    fn on_plain_updates_as_on_packet_does() {
        let life = Lifetimes::new(
            &Timeouts {
                unreplied: 3,
                ..Timeouts::default()
            },
            1,
        );
        for protocol in [IpProtocol::TCP.0, IpProtocol::UDP.0, IpProtocol::ICMP.0] {
            let tcp = protocol == IpProtocol::TCP.0;
            for answered in [Answered::Yes, Answered::No, Answered::NoUnderPressure] {
                for from in [0, 1] {
                    let conn = Conn {
                        protocol,
                        tcp: if tcp {
                            TcpState::Established
                        } else {
                            TcpState::None
                        },
                        expect: if tcp { [100, 200] } else { [0, 0] },
                        answered,
                        ..Conn::default()
                    };
                    let t = Tuple {
                        protocol,
                        src: 1,
                        dst: 2,
                        sport: 3,
                        dport: 4,
                        flags: if tcp { ACK } else { TcpFlags::empty() },
                        seq: if tcp { 200 } else { 0 },
                        ack: if tcp { 150 } else { 0 },
                        wscale: Scales::NONE,
                        opens: !tcp,
                    };
                    let (mut packet, mut plain) = (conn, conn);
                    let want = packet.on_packet(from, &t, false, &life, 5);
                    let got = plain.on_plain(from, t.ack, &life, 5);
                    let case = format!("{protocol} {answered:?} {from}");
                    assert_eq!(want, Ok(got), "{case}");
                    assert_eq!(plain, packet, "{case}");
                }
            }
        }
    }

    #[test]
    fn lifetimes_are_the_timeouts_in_ticks() {
        let t = Timeouts::default();
        let life = Lifetimes::new(&t, 1000);
        let mut conn = Conn {
            protocol: IpProtocol::TCP.0,
            ..Conn::default()
        };
        for state in [TcpState::SynSent, TcpState::Established, TcpState::Closed] {
            for answered in [Answered::Yes, Answered::No, Answered::NoUnderPressure] {
                (conn.tcp, conn.answered) = (state, answered);
                assert_eq!(
                    life.of(&conn),
                    t.ticks(&conn, 1000),
                    "{state:?} {answered:?}"
                );
            }
        }
        (conn.protocol, conn.answered) = (IpProtocol::ICMP.0, Answered::Yes);
        assert_eq!(life.of(&conn), 60_000);
        let huge = Lifetimes::new(&t, u64::MAX);
        assert_eq!(huge.of(&conn), u64::MAX);
    }

    #[test]
    fn timeouts_follow_the_rfcs() {
        let t = Timeouts::default();
        let tcp = IpProtocol::TCP.0;
        assert!(t.of(tcp, TcpState::Established) >= 2 * 3600 + 4 * 60);
        assert_eq!(t.of(tcp, TcpState::SynSent), 240);
        assert_eq!(t.of(tcp, TcpState::FinWait), 240);
        assert!(t.of(IpProtocol::UDP.0, TcpState::None) >= 120);
        assert_eq!(t.of(IpProtocol::ICMP.0, TcpState::None), 60);
    }
}
