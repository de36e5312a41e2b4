//! The input stage: a frame is dispatched by the role of the port it came
//! in by and its ethertype — to the public side (its flow-hit fast path
//! first), the underlay, or ARP — and an IPv4 packet to one of the
//! gateway's own addresses is checked before anything reads past its
//! header.

use super::hit::Stage;
use super::*;

impl Pipeline {
    /// Processes one frame received on `frame.in_port()` at TSC time `now`.
    pub fn process<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        now: u64,
    ) -> Verdict {
        self.process_staged(t, c, f, now, &Hint::default())
    }

    /// [`Pipeline::process`] for a frame of a burst that went through
    /// [`Pipeline::stage_public`], with its hint.
    pub fn process_staged<F: Frame>(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        f: &mut F,
        now: u64,
        hint: &Hint,
    ) -> Verdict {
        self.now = now;
        let cx = Cx { t, c };
        // A frame its burst's stage found plain, on the port the stage was
        // given: the stage read its Ethernet and IPv4 headers and asked
        // the port's role, so its hit goes first, without reading them
        // again (callgrind, `pipeline_staged`: 36-45 instructions a frame).
        let staged = match hint.0 {
            Stage::Plain(..) => self.public_hit(cx, f, hint),
            Stage::Tunnel(..) => self.underlay_hit(cx, f, hint),
            _ => None,
        };
        if let Some(v) = staged {
            return v;
        }
        let port = f.in_port();
        if port & TURNED_AROUND != 0 {
            return self.turned_around_elsewhere(cx, f, port & !TURNED_AROUND);
        }
        let Some(pe) = t.ports.get(usize::from(port)) else {
            return Verdict::Drop(D::NoEgress);
        };
        let ethertype = {
            let Ok(eth) = EthernetFrame::new_checked(f.data()) else {
                return Verdict::Drop(D::Runt);
            };
            if eth.is_tagged() {
                return Verdict::Drop(D::Vlan);
            }
            eth.ethertype()
        };
        let m = Meta {
            port,
            pe,
            hint,
            ip_at: ETH,
            outer_ecn: 0,
        };
        match (pe.role, ethertype) {
            // An unstaged frame's hit (a staged one's was tried above).
            (Some(Role::Public), EtherType::IPV4)
                if matches!(hint.0, Stage::Unstaged) && self.may_hit(t) =>
            {
                match self.public_hit(cx, f, hint) {
                    Some(v) => v,
                    None => self.public_input(cx, pe, f, Origin::Port),
                }
            }
            (Some(_), EtherType::ARP) => arp_input(t, pe, port, f, c),
            (Some(Role::Underlay), EtherType::IPV4) => self.underlay_input(cx, m, f),
            (Some(Role::Public), EtherType::IPV4) => self.public_input(cx, pe, f, Origin::Port),
            (None, _) => Verdict::Drop(D::NoEgress),
            _ => Verdict::Drop(D::EtherType),
        }
    }
}

/// Set in the port of a frame the gateway turned around (hairpinned) and
/// hands to the worker owning its public side: that worker takes it in on
/// the public port as the gateway's own, as the one that turned it around
/// would have, not as a packet from the Internet whose source is the
/// gateway's address (`spoofed_own_address`). Port ids are below
/// `MAX_PORTS`, so no port has the bit, and only a worker sets it.
pub(super) const TURNED_AROUND: u16 = 0x8000;

impl Pipeline {
    /// A frame another worker turned around on public port `port` and
    /// handed over ([`TURNED_AROUND`]).
    #[cold]
    fn turned_around_elsewhere<F: Frame>(&mut self, cx: Cx<'_>, f: &mut F, port: u16) -> Verdict {
        f.set_in_port(port);
        match cx.t.ports.get(usize::from(port)) {
            Some(pe) if pe.role == Some(Role::Public) => {
                self.public_input(cx, pe, f, Origin::Gateway)
            }
            _ => Verdict::Drop(D::NoEgress),
        }
    }
}

/// Validates an IPv4 packet addressed to one of the port's addresses;
/// trims Ethernet padding. Returns the protocol and header length.
pub(super) fn check_local_ipv4<F: Frame>(
    pe: &PortEntry,
    f: &mut F,
) -> Result<(IpProtocol, usize), Verdict> {
    let data = f.data();
    let ip = Ipv4Packet::new_checked(&data[ETH..]).map_err(|_| Verdict::Drop(D::Ipv4Invalid))?;
    if !stage::checksum_ok(f, &ip) {
        return Err(Verdict::Drop(D::Ipv4Checksum));
    }
    if !pe.is_local(u32::from(ip.dst_addr())) {
        return Err(Verdict::Drop(D::NotLocal));
    }
    if ip.is_fragment() || ip.has_options() {
        return Err(Verdict::Drop(D::SlowPath));
    }
    let (protocol, ihl) = (ip.protocol(), ip.header_len());
    let tail = data.len() - ETH - usize::from(ip.total_len());
    if !f.trim(tail) {
        return Err(Verdict::Drop(D::Ipv4Invalid));
    }
    Ok((protocol, ihl))
}
