//! The session stage: flows, NAT and the firewall. A packet from either
//! side finds its flow or opens one (through the tenant's rules, an
//! elastic IP, a shared pool or the tenant's own public address), is
//! translated, and goes on to the tunnel or the public side; hairpinned
//! packets and ICMP errors about a flow (RFC 5508) are handled here too.

use super::*;

/// How a new flow from a tenant is translated.
#[derive(Clone, Copy)]
pub(super) enum Outbound {
    /// Not at all: the source is one of the tenant's public addresses.
    Own,
    /// To the source's elastic IP.
    Eip(u32),
    /// To an address and port of the tenant's pool (its index).
    Pool(u32),
}

impl Pipeline {
    /// Flows from the public side: a packet of a known flow, or one that
    /// opens a flow toward an elastic IP, is translated into its tenant.
    /// `None` leaves the packet to the stateless ingress. The frame still
    /// has its Ethernet header.
    pub(super) fn public_flow<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        origin: Origin,
    ) -> Option<Verdict> {
        let Cx { t, c } = cx;
        let now = self.now;
        // Only an elastic IP, a shared NAT address or a tenant's public
        // address has flows: anything else skips the parse and the lookup.
        let (_, dst) = addrs(f.data().get(ETH..)?)?;
        let own = t.ingress.lookup(dst).map(TenantId);
        // Asked once: a new flow's opening below needs the answer again.
        let eip = t.eips.inbound(dst);
        if eip.is_none() && own.is_none() && t.pools.of_addr(dst).is_none() {
            return None;
        }
        if let Some((quoted, at)) = Tuple::parse_quoted(f.data().get(ETH..)?) {
            return self.public_icmp_error(cx, f, &quoted, at);
        }
        let owner = || inbound_owner(t, dst);
        let ip = f.data().get(ETH..)?;
        let tuple = match self.fragment_tuple(c, Zone::PUBLIC, ip, owner, Resume::Public, now) {
            Ok(tuple) => tuple?,
            Err(v) => return Some(v),
        };
        let key = tuple.key(Zone::PUBLIC);
        let conn = match self.find(cx, &key) {
            Err(reason) => return Some(Verdict::Drop(reason)),
            Ok(Some((id, dir))) => match self.advance(c, id, dir, &tuple) {
                Some(conn) => conn,
                None => return Some(Verdict::Drop(D::InvalidState)),
            },
            Ok(None) => {
                // `tuple.dst` is `dst`: both are read from this header.
                let opened = match (eip, own) {
                    (Some((tenant, private)), _) => {
                        self.open_inbound(cx, &tuple, key, tenant, private, origin)
                    }
                    // A tenant's own public address: a flow that
                    // translates nothing, for its firewall's sake.
                    (None, Some(tenant)) => {
                        self.open_inbound(cx, &tuple, key, tenant, tuple.dst, origin)
                    }
                    (None, None) => {
                        let (_, pool) = t.pools.of_addr(tuple.dst)?;
                        if pool.eif {
                            let tenant = pool.tenant;
                            self.open_through_mapping(cx, &tuple, key, tenant, origin)
                        } else {
                            Err(D::NatFiltered)
                        }
                    }
                };
                match opened {
                    Ok((_, conn)) => conn,
                    Err(reason) => return Some(Verdict::Drop(reason)),
                }
            }
        };
        let owner = Owner {
            tenant: u32::from(conn.tenant),
            inbound: true,
        };
        let ip = f.data().get(ETH..)?;
        if let Err(v) = self.first_passed(Zone::PUBLIC, ip, &tuple, owner, now) {
            return Some(v);
        }
        if !f.adj(ETH) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        if t.tunnel(conn.tunnel_id()).is_none() {
            return Some(Verdict::Drop(D::NoRoute));
        }
        Some(self.tunnel_entry(cx, f, conn.tunnel_id(), conn.to_tenant))
    }

    /// Flows from a tenant (the frame starts at the inner IPv4 header): a
    /// packet of a known flow, or one that opens a flow from an address
    /// with an elastic IP toward the public side, is translated out.
    /// `None` leaves the packet to the stateless routing.
    pub(super) fn tenant_flow<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        from: FromTenant<'_>,
        f: &mut F,
    ) -> Option<Verdict> {
        let Cx { t, c } = cx;
        let now = self.now;
        let tenant = from.tenant;
        // Only an address with an elastic IP, one of the tenant's public
        // addresses, or any of a tenant with a pool, has flows: the rest
        // skips the parse and the lookup.
        let (src, _) = addrs(f.data())?;
        let own = t.ingress.lookup(src) == Some(tenant.id.0);
        // Asked once: a new flow's opening below needs the answers again.
        let (eip, pool) = (
            t.eips.outbound(tenant.id, src),
            t.pools.of_tenant(tenant.id),
        );
        if eip.is_none() && pool.is_none() && !own {
            return None;
        }
        if let Some((quoted, at)) = Tuple::parse_quoted(f.data()) {
            return self.tenant_icmp_error(cx, from, f, &quoted, at);
        }
        if later_fragment_inside(t, tenant, f.data()) {
            return None;
        }
        let zone = Zone::tenant(tenant.id.index())?;
        let resume = Resume::Tenant {
            tenant: tenant.id,
            underlay_mtu: from.underlay_mtu,
        };
        let owner = || Some(outbound_owner(tenant.id));
        let tuple = match self.fragment_tuple(c, zone, f.data(), owner, resume, now) {
            Ok(tuple) => tuple?,
            Err(v) => return Some(v),
        };
        let key = tuple.key(zone);
        let (id, conn, opened) = match self.find(cx, &key) {
            Err(reason) => return Some(Verdict::Drop(reason)),
            Ok(Some((id, dir))) => match self.advance(c, id, dir, &tuple) {
                Some(conn) => (id, conn, false),
                None => return Some(Verdict::Drop(D::InvalidState)),
            },
            Ok(None) => {
                if t.route(tenant, tuple.dst) != Some(NextHop::Public) {
                    return None;
                }
                // The gateway's own addresses are its alone to send from
                // (RFC 1812 §5.3.7), whatever prefixes a tenant was
                // given: a pool address would map onto itself.
                if !own && martian::is_own(t, src) {
                    return Some(Verdict::Drop(D::SpoofedOwnAddress));
                }
                // A tenant's own public addresses go out as they are, but
                // through a flow, so that its firewall decides.
                // `tuple.src` is `src`: both are read from this header.
                let nat = match eip {
                    _ if own => Outbound::Own,
                    Some(eip) => Outbound::Eip(eip),
                    None => Outbound::Pool(pool?.0),
                };
                match self.open_outbound(cx, &tuple, key, tenant, nat) {
                    Ok((id, conn)) => (id, conn, true),
                    Err(reason) => return Some(Verdict::Drop(reason)),
                }
            }
        };
        let owner = outbound_owner(tenant.id);
        if let Err(v) = self.first_passed(zone, f.data(), &tuple, owner, now) {
            return Some(v);
        }
        // A flow this packet opened was marked hairpinned by its reply
        // key's source, `tuple.dst`, asked of these very tables
        // (`martian::hairpinned`, a superset of `turns_around`): unmarked,
        // the question is answered.
        debug_assert!(!opened || conn.hairpin || !martian::turns_around(t, tuple.dst));
        if (!opened || conn.hairpin) && martian::turns_around(t, tuple.dst) {
            return Some(self.hairpin(cx, id, opened, f));
        }
        let exit = Exit {
            from,
            nat: conn.to_public,
        };
        Some(self.public_exit(cx, &exit, f))
    }

    /// RFC 4787 REQ-9, hairpinning: a tenant's packet to an elastic IP or a
    /// shared NAT address (its own or another tenant's) turns around inside
    /// the gateway, source translated by flow `id`'s rewrite, and comes
    /// back in on the public port as if from the Internet, where the
    /// destination's inbound rules decide it. `opened` says the packet
    /// opened `id`. The frame starts at its IPv4 header.
    pub(super) fn hairpin<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        id: FlowId,
        opened: bool,
        f: &mut F,
    ) -> Verdict {
        let Some(&conn) = self.flows.get(id) else {
            return Verdict::Drop(D::NoRoute);
        };
        if ipv4(f.data()).ttl() <= 1 {
            return Verdict::Drop(D::TtlExceeded);
        }
        let ihl = ipv4(f.data()).header_len();
        if !conn.to_public.forward(f.data_mut(), ihl) {
            return Verdict::Drop(D::Ipv4Invalid);
        }
        if let Err(reason) = self.hairpin_to_itself(cx, id, &conn, opened, f.data()) {
            return Verdict::Drop(reason);
        }
        self.turn_around(cx, f)
    }

    /// Sends a translated packet (the frame at its IPv4 header) back in on
    /// the public port, as if it came from the Internet.
    pub(super) fn turn_around<F: Frame>(&mut self, cx: Cx<'_>, f: &mut F) -> Verdict {
        let Some((port, pe)) = public_port(cx.t) else {
            return Verdict::Drop(D::NoRoute);
        };
        match f.prepend(ETH) {
            Some(h) => h.copy_from_slice(&eth_header(pe.mac, pe.mac, EtherType::IPV4)),
            None => return Verdict::Drop(D::NoHeadroom),
        }
        f.set_in_port(port);
        self.public_input(cx, pe, f, Origin::Gateway)
    }

    /// A hairpinned packet (translated, at its IPv4 header) sent to the
    /// very address and port it leaves from — always so for an echo to
    /// one's own elastic IP, whose identifier is both "ports" — has its
    /// own flow's reply key: back on the public side it would pass as that
    /// flow's reply, past the inbound rules. Its inbound decision is
    /// therefore taken here, when it opens the flow; refused, the flow
    /// goes. Other hairpinned packets meet the rules on the public side.
    pub(super) fn hairpin_to_itself(
        &mut self,
        cx: Cx<'_>,
        id: FlowId,
        conn: &Conn,
        opened: bool,
        ip: &[u8],
    ) -> Result<(), DropReason> {
        let Some(tuple) = Tuple::parse(ip) else {
            return Ok(());
        };
        let to_itself = self
            .flows
            .keys(id)
            .is_some_and(|k| k[1] == tuple.key(Zone::PUBLIC));
        if !(to_itself && opened) {
            return Ok(());
        }
        let (private, port) = (conn.to_tenant.addr(), conn.to_tenant.port());
        let tenant = conn.tenant_id();
        let dport = port.unwrap_or(tuple.dport);
        let decided = firewall(cx, tenant, FwDir::In, &tuple.seen(private, dport));
        if decided.is_err() {
            if let Some(gone) = self.flows.remove(id) {
                ended(&mut self.snat, &cx.t.pools, cx.c, &gone.value);
                offload::removed(self.offload.as_deref(), cx.c, &gone);
            }
        }
        decided
    }

    /// An ICMP error from the Internet about a datagram of a translated
    /// flow (RFC 5508): into the tenant, its destination and the quoted
    /// source translated back. The frame still has its Ethernet header;
    /// the quote starts `at` bytes into the IPv4 packet.
    pub(super) fn public_icmp_error<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        f: &mut F,
        quoted: &Tuple,
        at: usize,
    ) -> Option<Verdict> {
        let Cx { t, c } = cx;
        let now = self.now;
        // The quoted datagram left from an elastic IP; its answers would
        // arrive with the addresses and ports turned around.
        let key = quoted.reply_key(Zone::PUBLIC, quoted.dst, quoted.src);
        let (id, _) = self.flows.lookup(&key, now).hit()?;
        if let Err(reason) = self.current(t, c, id) {
            return Some(Verdict::Drop(reason));
        }
        let conn = *self.flows.get(id)?;
        if ip_dst(f.data().get(ETH..)?) != quoted.src {
            return None;
        }
        if !f.adj(ETH) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        if let Err(reason) = icmp_error_sound(f.data(), at) {
            return Some(Verdict::Drop(reason));
        }
        let (private, port) = (conn.to_tenant.addr(), conn.to_tenant.port());
        let icmp_at = at - 8;
        if !translate_quoted(&mut f.data_mut()[icmp_at..], true, private, port) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        let nat = conn.to_tenant.address_only();
        Some(self.tunnel_entry(cx, f, conn.tunnel_id(), nat))
    }

    /// An ICMP error from a tenant about a datagram of a translated flow
    /// (RFC 5508): out of the public side, its source and the quoted
    /// destination translated to the elastic IP. The frame starts at the
    /// IPv4 header; the quote starts `at` bytes into it.
    pub(super) fn tenant_icmp_error<F: Frame>(
        &mut self,
        cx: Cx<'_>,
        from: FromTenant<'_>,
        f: &mut F,
        quoted: &Tuple,
        at: usize,
    ) -> Option<Verdict> {
        let Cx { t, c } = cx;
        let now = self.now;
        let tenant = from.tenant;
        let zone = Zone::tenant(tenant.id.index())?;
        let key = quoted.reply_key(zone, quoted.dst, quoted.src);
        let (id, _) = self.flows.lookup(&key, now).hit()?;
        if let Err(reason) = self.current(t, c, id) {
            return Some(Verdict::Drop(reason));
        }
        let conn = *self.flows.get(id)?;
        if ip_src(f.data()) != quoted.dst {
            return None;
        }
        if let Err(reason) = icmp_error_sound(f.data(), at) {
            return Some(Verdict::Drop(reason));
        }
        let (public, port) = (conn.to_public.addr(), conn.to_public.port());
        if !translate_quoted(&mut f.data_mut()[at - 8..], false, public, port) {
            return Some(Verdict::Drop(D::Ipv4Invalid));
        }
        // RFC 5508 REQ-7: an error about a hairpinned packet goes back to
        // its sender through the gateway, as the packet came.
        if martian::turns_around(t, ip_dst(f.data())) {
            if ipv4(f.data()).ttl() <= 1 {
                return Some(Verdict::Drop(D::TtlExceeded));
            }
            let ihl = ipv4(f.data()).header_len();
            if !conn.to_public.address_only().forward(f.data_mut(), ihl) {
                return Some(Verdict::Drop(D::Ipv4Invalid));
            }
            return Some(self.turn_around(cx, f));
        }
        let exit = Exit {
            from,
            nat: conn.to_public.address_only(),
        };
        Some(self.public_exit(cx, &exit, f))
    }

    /// The worker that owns the connection of a packet from the public
    /// side, if it is another (the frame still has its Ethernet header).
    pub(super) fn public_owner<F: Frame>(&self, t: &Tables, f: &F) -> Option<u16> {
        // A lone worker owns every connection: nothing to parse or ask
        // (a new flow's second parse of its tuple, docs/perf.md).
        let steer = self.steer.filter(|s| s.workers() > 1)?;
        let ip = f.data().get(ETH..)?;
        // (protocol, remote, the gateway's public end, its port if known)
        let (proto, remote, local, lport) = match Tuple::parse_quoted(ip) {
            // An error about what the gateway sent.
            Some((q, _)) => (q.protocol, q.dst, q.src, Some(q.sport)),
            None => match Tuple::parse(ip) {
                Some(p) => (p.protocol, p.src, p.dst, Some(p.dport)),
                // A later fragment: addresses only.
                None => {
                    let (src, dst) = addrs(ip)?;
                    (*ip.get(9)?, src, dst, None)
                }
            },
        };
        if t.eips.inbound(local).is_some() || t.ingress.lookup(local).is_some() {
            // Without ports, so that fragments find their owner too.
            return steer.elsewhere(proto, remote, 0, local, 0);
        }
        // A shared NAT address: the port's block names the worker. (A
        // later fragment to one stays where it arrived: see decisions.md.)
        let (_, pool) = t.pools.of_addr(local)?;
        let owner = pool.owner_of_port(lport?, steer.workers())?;
        (owner != steer.me()).then_some(owner)
    }

    /// The worker that owns the connection of a tenant's IPv4 packet `ip`,
    /// if it is another: the one its translated form belongs to.
    pub(super) fn tenant_owner(&self, t: &Tables, tenant: &Tenant, ip: &[u8]) -> Option<u16> {
        // A lone worker owns every connection.
        let steer = self.steer.filter(|s| s.workers() > 1)?;
        // (protocol, remote, the private end)
        let (proto, remote, private) = match Tuple::parse_quoted(ip) {
            // An error about what the Internet sent in.
            Some((q, _)) => (q.protocol, q.src, q.dst),
            None => {
                let (src, dst) = addrs(ip)?;
                (*ip.get(9)?, dst, src)
            }
        };
        if let Some(eip) = t.eips.outbound(tenant.id, private) {
            return steer.elsewhere(proto, remote, 0, eip, 0);
        }
        // A public address of the tenant's own: as the public side steers
        // it.
        if t.ingress.lookup(private) == Some(tenant.id.0) {
            return steer.elsewhere(proto, remote, 0, private, 0);
        }
        t.pools.of_tenant(tenant.id)?;
        // The private address alone decides: all of a host's mappings live
        // with one worker, which hands out ports from its own blocks.
        steer.elsewhere(0, private, 0, tenant.id.0, 0)
    }

    /// The live flow of `key`, brought up to its tenant's epoch; an
    /// expired one is removed on the way, and one that is no longer
    /// admitted ends with the packet's drop reason (redecide.rs).
    pub(super) fn find(
        &mut self,
        cx: Cx<'_>,
        key: &FlowKey,
    ) -> Result<Option<(FlowId, Direction)>, DropReason> {
        let Cx { t, c } = cx;
        let now = self.now;
        match self.flows.lookup(key, now) {
            FlowLookup::Hit(id, dir) => {
                self.current(t, c, id)?;
                Ok(Some((id, dir)))
            }
            FlowLookup::Expired(id, _) => {
                if let Some(gone) = self.flows.remove(id) {
                    ended(&mut self.snat, &t.pools, c, &gone.value);
                    offload::removed(self.offload.as_deref(), c, &gone);
                }
                Ok(None)
            }
            FlowLookup::Miss => Ok(None),
        }
    }

    /// Moves flow `id`'s TCP state for a packet going `dir` and extends its
    /// life ([`Conn::on_packet`], as the fast path does). `None` if the
    /// segment does not fit the connection.
    pub(super) fn advance(
        &mut self,
        c: &WorkerCounters,
        id: FlowId,
        dir: Direction,
        tuple: &Tuple,
    ) -> Option<Conn> {
        let (life, now) = (&self.life, self.now);
        let conn = self.flows.get_mut(id)?;
        let first_answer = conn.first_answer(dir.index());
        let deadline = conn
            .on_packet(dir.index(), tuple, first_answer, life, now)
            .ok()?;
        if first_answer {
            c.unreplied_done.inc();
            if let Some(tc) = c.tenant(usize::from(conn.tenant)) {
                tc.unreplied_done.inc();
            }
        }
        let conn = *conn;
        self.flows.set_deadline(id, deadline);
        if self.offload.is_some() {
            self.offload_step(c, id, dir);
        }
        Some(conn)
    }

    /// A new flow from the Internet to elastic IP `tuple.dst`, which stands
    /// for `private` in `tenant`.
    pub(super) fn open_inbound(
        &mut self,
        cx: Cx<'_>,
        tuple: &Tuple,
        key: FlowKey,
        tenant: TenantId,
        private: u32,
        origin: Origin,
    ) -> Result<(FlowId, Conn), DropReason> {
        let t = cx.t;
        if !tuple.opens {
            return Err(D::InvalidState);
        }
        let ten = t.tenants.get(tenant).ok_or(D::NoRoute)?;
        let reply = inbound_reply(tuple, tenant, private).ok_or(D::NoRoute)?;
        // The tenant's rules see its own address (after DNAT).
        firewall(cx, tenant, FwDir::In, &tuple.seen(private, tuple.dport))?;
        let tunnel = tunnel_to(t, ten, private)?;
        let conn = Conn {
            tenant: tenant.slot16(),
            tunnel,
            epoch: ten.epoch,
            to_tenant: Rewrite::dst(tuple.dst, private),
            to_public: Rewrite::src(private, tuple.dst),
            protocol: tuple.protocol,
            tcp: TcpState::opened_by(tuple.protocol),
            expect: opening_expect(tuple),
            scales: Scales::default(),
            snat: None,
            answered: Answered::No,
            inner: 0,
            hairpin: martian::hairpinned_from(t, origin, [&key, &reply]),
            offload: Offload::Unoffered,
        };
        self.insert(cx, tuple, key, reply, conn)
    }

    /// A new flow from `tuple.src` in `tenant`, which has elastic IP `eip`,
    /// toward the public side.
    pub(super) fn open_outbound(
        &mut self,
        cx: Cx<'_>,
        tuple: &Tuple,
        key: FlowKey,
        tenant: &Tenant,
        nat: Outbound,
    ) -> Result<(FlowId, Conn), DropReason> {
        let t = cx.t;
        if !tuple.opens {
            return Err(D::InvalidState);
        }
        // Before a port is taken: a denied flow holds nothing.
        firewall(cx, tenant.id, FwDir::Out, tuple)?;
        // Replies go back to the host the tenant routes its address to.
        let tunnel = tunnel_to(t, tenant, tuple.src)?;
        let (to_tenant, to_public, reply, snat) = match nat {
            Outbound::Own => (
                Rewrite::dst(tuple.src, tuple.src),
                Rewrite::src(tuple.src, tuple.src),
                tuple.reply_key(Zone::PUBLIC, tuple.dst, tuple.src),
                None,
            ),
            Outbound::Pool(_) if !has_ports(tuple.protocol) => return Err(D::NatProtocol),
            Outbound::Eip(eip) => (
                Rewrite::dst(eip, tuple.src),
                Rewrite::src(tuple.src, eip),
                tuple.reply_key(Zone::PUBLIC, tuple.dst, eip),
                None,
            ),
            Outbound::Pool(pool) => {
                let inside = Inside {
                    pool,
                    private: tuple.src,
                    port: tuple.sport,
                };
                let Ok(Outside { addr, port }) = self.snat.map(&t.pools, inside) else {
                    // The ports of ended flows come back with the sweep.
                    self.wanted += 1;
                    return Err(D::NoNatPort);
                };
                // An echo reply carries the translated identifier in both
                // of its "ports".
                let their_port = if tuple.protocol == IpProtocol::ICMP.0 {
                    port
                } else {
                    tuple.dport
                };
                let reply = FlowKey::new(
                    Zone::PUBLIC,
                    tuple.protocol,
                    tuple.dst,
                    their_port,
                    addr,
                    port,
                );
                (
                    Rewrite::dst(addr, tuple.src).with_port(port, tuple.sport),
                    Rewrite::src(tuple.src, addr).with_port(tuple.sport, port),
                    reply,
                    Some(inside),
                )
            }
        };
        let conn = Conn {
            tenant: tenant.id.slot16(),
            tunnel,
            epoch: tenant.epoch,
            to_tenant,
            to_public,
            protocol: tuple.protocol,
            tcp: TcpState::opened_by(tuple.protocol),
            expect: opening_expect(tuple),
            scales: Scales::default(),
            snat,
            answered: Answered::Yes,
            inner: 0,
            hairpin: martian::hairpinned(t, [&key, &reply]),
            offload: Offload::Unoffered,
        };
        self.insert(cx, tuple, key, reply, conn)
    }

    /// A new flow from the Internet through a shared NAT address's mapped
    /// port, which endpoint-independent filtering lets in.
    pub(super) fn open_through_mapping(
        &mut self,
        cx: Cx<'_>,
        tuple: &Tuple,
        key: FlowKey,
        tenant: TenantId,
        origin: Origin,
    ) -> Result<(FlowId, Conn), DropReason> {
        let t = cx.t;
        if !tuple.opens || tuple.protocol == IpProtocol::ICMP.0 {
            return Err(D::NatFiltered);
        }
        let outside = Outside {
            addr: tuple.dst,
            port: tuple.dport,
        };
        let inside = self.snat.join(outside).ok_or(D::NatFiltered)?;
        let seen = tuple.seen(inside.private, inside.port);
        let allowed = firewall(cx, tenant, FwDir::In, &seen);
        if let Err(reason) = allowed {
            self.snat.release(&t.pools, inside);
            return Err(reason);
        }
        let conn = (|| {
            let ten = t.tenants.get(tenant).ok_or(D::NoRoute)?;
            let zone = Zone::tenant(tenant.index()).ok_or(D::NoRoute)?;
            let tunnel = tunnel_to(t, ten, inside.private)?;
            let reply = FlowKey::new(
                zone,
                tuple.protocol,
                inside.private,
                inside.port,
                tuple.src,
                tuple.sport,
            );
            let conn = Conn {
                tenant: tenant.slot16(),
                tunnel,
                epoch: ten.epoch,
                to_tenant: Rewrite::dst(tuple.dst, inside.private)
                    .with_port(tuple.dport, inside.port),
                to_public: Rewrite::src(inside.private, tuple.dst)
                    .with_port(inside.port, tuple.dport),
                protocol: tuple.protocol,
                tcp: TcpState::opened_by(tuple.protocol),
                expect: opening_expect(tuple),
                scales: Scales::default(),
                snat: Some(inside),
                answered: Answered::No,
                inner: 0,
                hairpin: martian::hairpinned_from(t, origin, [&key, &reply]),
                offload: Offload::Unoffered,
            };
            Ok((conn, reply))
        })();
        match conn {
            Ok((conn, reply)) => self.insert(cx, tuple, key, reply, conn),
            Err(reason) => {
                self.snat.release(&t.pools, inside);
                Err(reason)
            }
        }
    }

    /// Adds a flow whose forward key `find` has just missed, opened by the
    /// packet `tuple`, and returns it as that packet leaves it (what
    /// [`Pipeline::advance`] gives a flow found). Its opener has marked it
    /// hairpinned or not ([`martian::hairpinned_from`]). If it cannot be
    /// added, the NAT mapping it took is given back.
    pub(super) fn insert(
        &mut self,
        cx: Cx<'_>,
        tuple: &Tuple,
        forward: FlowKey,
        reply: FlowKey,
        conn: Conn,
    ) -> Result<(FlowId, Conn), DropReason> {
        let Cx { t, c } = cx;
        let now = self.now;
        // Created or refused, the flow paces the next sweep: the flows a
        // quota or the table refuses for want of room wait on it, expired
        // ones included, until it ends them.
        self.wanted += 1;
        // The tenant's live flows here: this worker's own counters.
        let tc = c.tenant(usize::from(conn.tenant));
        let live = tc.map_or(0, TenantCounters::live_flows);
        let mut conn = conn;
        debug_assert_eq!(conn.hairpin, martian::hairpinned(t, [&forward, &reply]));
        if conn.answered == Answered::No {
            // The tenant's share, and all tenants' together: spoofed SYNs
            // toward a few tenants' shares would otherwise fill the table
            // for every tenant, outbound flows and all.
            let unanswered = tc.map_or(0, TenantCounters::live_unreplied);
            let all = c.live_unreplied();
            if unanswered >= self.unreplied_quota || all >= self.unreplied_total {
                if let Some(inside) = conn.snat {
                    self.snat.release(&t.pools, inside);
                }
                if let Some(tc) = tc {
                    tc.unreplied_refused.inc();
                }
                return Err(D::UnrepliedQuota);
            }
            if unanswered >= self.unreplied_quota / 2 || all >= self.unreplied_total / 2 {
                conn.answered = Answered::NoUnderPressure;
            }
        }
        // The opening packet is the flow's first, from its opener (never
        // an answer): applied before the flow is placed, the deadline is
        // set once and the caller needs no lookup to advance the flow. It
        // fits: `opens` admits a SYN alone, which SYN-SENT takes.
        let Ok(deadline) = conn.on_packet(0, tuple, false, &self.life, now) else {
            if let Some(inside) = conn.snat {
                self.snat.release(&t.pools, inside);
            }
            return Err(D::InvalidState);
        };
        let result = if live >= self.quota {
            Err(InsertError::Full)
        } else {
            // `find` looked the forward key up and missed just before.
            self.flows.insert_missing(forward, reply, deadline, conn)
        };
        if let (Err(_), Some(inside)) = (&result, conn.snat) {
            self.snat.release(&t.pools, inside);
        }
        match result {
            Ok(id) => {
                if conn.answered != Answered::Yes {
                    c.unreplied_opened.inc();
                }
                if let Some(tc) = tc {
                    tc.flows_opened[FlowProto::of(conn.protocol) as usize].inc();
                    if conn.answered != Answered::Yes {
                        tc.unreplied_opened.inc();
                    }
                }
                if self.offload.is_some() {
                    self.offload_step(c, id, Direction::Forward);
                }
                Ok((id, conn))
            }
            Err(InsertError::Full) if live >= self.quota => {
                if let Some(tc) = tc {
                    tc.quota_refused.inc();
                }
                Err(D::Quota)
            }
            Err(InsertError::Full | InsertError::NoRoom) => Err(D::FlowTableFull),
            // The reply key is taken: another flow already owns this
            // mapping (e.g. opened from the other side first).
            Err(InsertError::Exists(..) | InsertError::SameKey) => Err(D::InvalidState),
        }
    }
}

/// The reply key of the flow `tuple` opens from the public side toward
/// `private` in `tenant` (an elastic IP's DNAT, or the tenant's own
/// address): the private host answering the client. `None` for a tenant
/// without a zone.
#[inline]
pub(super) fn inbound_reply(tuple: &Tuple, tenant: TenantId, private: u32) -> Option<FlowKey> {
    let zone = Zone::tenant(tenant.index())?;
    Some(tuple.reply_key(zone, private, tuple.src))
}

/// The tenant's firewall rules for the first packet of a flow, `seen` in
/// the tenant's address space (its destination and port after DNAT,
/// before SNAT: [`Tuple::seen`]); the decision is counted per rule.
pub(super) fn firewall(
    cx: Cx<'_>,
    tenant: TenantId,
    dir: FwDir,
    seen: &Tuple,
) -> Result<(), DropReason> {
    let Cx { t, c } = cx;
    let (src, dst, dport) = (seen.src, seen.dst, seen.dport);
    let tuple = seen;
    let p = match IpProtocol(tuple.protocol) {
        IpProtocol::TCP => Packet5::tcp(src, dst, tuple.sport, dport),
        IpProtocol::UDP => Packet5::udp(src, dst, tuple.sport, dport),
        // Only echo requests open flows.
        IpProtocol::ICMP => Packet5::icmp(src, dst, 8, 0),
        _ => Packet5::other(tuple.protocol, src, dst),
    };
    let decision = match t.tenants.get(tenant) {
        Some(ten) => ten.firewall.evaluate(dir, &p),
        None => return Err(D::Firewall),
    };
    c.rules.count(tenant, dir, decision);
    if decision.allowed() {
        Ok(())
    } else {
        Err(D::Firewall)
    }
}

/// Counts a tenant's packet out of its tunnel (`len` bytes of IPv4): the
/// fast path's and the full path's one count.
#[inline]
pub(super) fn count_from_tunnel(c: &WorkerCounters, tenant: TenantId, len: usize) {
    if let Some(tc) = c.tenant(tenant.index()) {
        tc.from_tunnel_packets.inc();
        tc.from_tunnel_bytes.add(len as u64);
    }
}

/// Accounts for a flow that ended: its tenant's count, and its share of
/// a source NAT mapping.
pub(super) fn ended(snat: &mut Snat, pools: &Pools, c: &WorkerCounters, conn: &Conn) {
    if conn.answered != Answered::Yes {
        c.unreplied_done.inc();
    }
    if let Some(tc) = c.tenant(usize::from(conn.tenant)) {
        tc.flows_ended[FlowProto::of(conn.protocol) as usize].inc();
        if conn.answered != Answered::Yes {
            tc.unreplied_done.inc();
        }
    }
    if let Some(inside) = conn.snat {
        snat.release(pools, inside);
    }
}

/// What a flow opened by `tuple` expects next from its opener: a SYN
/// counts one.
pub(super) fn opening_expect(tuple: &Tuple) -> [u32; 2] {
    if tuple.protocol == IpProtocol::TCP.0 {
        [tuple.seq.wrapping_add(1), 0]
    } else {
        [0, 0]
    }
}

/// Whether `protocol` has ports that a shared NAT address can tell its
/// hosts apart by (an echo's identifier counts).
pub(super) fn has_ports(protocol: u8) -> bool {
    matches!(
        IpProtocol(protocol),
        IpProtocol::TCP | IpProtocol::UDP | IpProtocol::ICMP
    )
}

/// Whether the ICMP error `ip` (trimmed to its total length, its quote
/// `at` bytes in) is sound enough to translate: its checksum (RFC 5508
/// REQ-3) and its quoted IPv4 header's (REQ-3a) verify. Translation sums
/// the error anew, so a corrupt one would otherwise leave looking sound.
pub(super) fn icmp_error_sound(ip: &[u8], at: usize) -> Result<(), DropReason> {
    let icmp = ip.get(at - 8..).ok_or(D::Ipv4Invalid)?;
    if checksum::checksum(icmp) != 0 {
        return Err(D::IcmpChecksum);
    }
    let quoted_ihl = usize::from(*ip.get(at).ok_or(D::Ipv4Invalid)? & 0xf) * 4;
    match ip.get(at..at + quoted_ihl) {
        Some(header) if checksum::checksum(header) != 0 => Err(D::IcmpQuoteChecksum),
        _ => Ok(()),
    }
}

/// The tunnel `tenant` routes `addr` to, by its index among the tenant's.
pub(super) fn tunnel_to(t: &Tables, tenant: &Tenant, addr: u32) -> Result<u16, DropReason> {
    match t.route(tenant, addr) {
        // The builder gives a tenant at most `u16::MAX` tunnels.
        Some(NextHop::Tunnel(i)) => u16::try_from(i).map_err(|_| D::NoRoute),
        Some(NextHop::Blackhole) => Err(D::Blackhole),
        _ => Err(D::NoRoute),
    }
}
