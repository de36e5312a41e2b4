//! Shared by the `wire_*` tests: a deterministic PRNG, builders of valid
//! frames (through etherparse wherever etherparse knows the header), and
//! `touch_all`, which reads every accessor of every view that accepts a
//! buffer.
#![allow(dead_code)]

use dataplane::wire::{
    clamp_mss, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, GrePacket, GreRepr,
    IcmpPacket, IcmpRepr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, TcpOption, TcpPacket,
    TcpRepr, UdpPacket, UdpRepr,
};
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, TcpOptionElement};

/// xorshift64*: tiny, deterministic, good enough to pick bytes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    pub fn u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    pub fn u8(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }

    pub fn addr(&mut self) -> [u8; 4] {
        self.u32().to_be_bytes()
    }

    pub fn mac(&mut self) -> [u8; 6] {
        let mut m = [0u8; 6];
        for b in &mut m {
            *b = self.u8();
        }
        m
    }
}

pub const CLIENT: [u8; 4] = [1, 1, 1, 7];
pub const EIP1: [u8; 4] = [2, 2, 2, 11];
pub const UNDERLAY_GW: [u8; 4] = [172, 168, 0, 1];
pub const HOST1: [u8; 4] = [172, 168, 0, 11];
pub const TENANT_IP: [u8; 4] = [10, 0, 0, 7];
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

pub fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// Ethernet + IPv4 + TCP SYN with MSS, window scale, SACK-permitted and
/// timestamps, as Linux sends it.
pub fn tcp_syn_frame(mss: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(CLIENT, EIP1, 64)
        .tcp(40000, 22, 0x1234_5678, 64240)
        .syn()
        .options(&[
            TcpOptionElement::MaximumSegmentSize(mss),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(1, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
    write(b, &[])
}

/// Tagged Ethernet + IPv4 + UDP with a payload.
pub fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(100).unwrap())
        .ipv4(TENANT_IP, CLIENT, 63)
        .udp(5353, 53);
    write(b, payload)
}

pub fn icmp_echo_frame(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(CLIENT, EIP1, 64)
        .icmpv4_echo_request(id, seq);
    write(b, data)
}

/// An IPv4 + TCP datagram of 1500 bytes, as quoted by an ICMP error: the
/// header and the first 8 bytes of the segment.
pub fn quoted_datagram() -> Vec<u8> {
    let b = PacketBuilder::ipv4(TENANT_IP, CLIENT, 1)
        .tcp(40000, 22, 7, 1000)
        .ack(9);
    let full = write(b, &[0x55; 1460]);
    full[..28].to_vec()
}

pub fn icmp_error_frame(icmp_type: etherparse::Icmpv4Type) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(UNDERLAY_GW, TENANT_IP, 64)
        .icmpv4(icmp_type);
    write(b, &quoted_datagram())
}

pub fn frag_needed_frame(mtu: u16) -> Vec<u8> {
    icmp_error_frame(etherparse::Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
    ))
}

/// An ARP request from the client for EIP1, in an Ethernet frame written by
/// etherparse (etherparse 0.16 has no ARP, so the body follows RFC 826 by
/// hand).
pub fn arp_frame() -> Vec<u8> {
    let eth = etherparse::Ethernet2Header {
        source: MAC_A,
        destination: [0xff; 6],
        ether_type: etherparse::EtherType::ARP,
    };
    let mut v = eth.to_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&CLIENT);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&EIP1);
    v
}

/// GRE header bytes (RFC 2784/2890) for the given flags; the checksum is
/// left zero and filled by `gre_frame`.
pub fn gre_header(c: bool, key: Option<u32>, seq: Option<u32>, proto: u16) -> Vec<u8> {
    let mut flags = 0u8;
    if c {
        flags |= 0x80;
    }
    if key.is_some() {
        flags |= 0x20;
    }
    if seq.is_some() {
        flags |= 0x10;
    }
    let mut v = vec![flags, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    if c {
        v.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        v.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        v.extend_from_slice(&s.to_be_bytes());
    }
    v
}

/// The inner packet of a tunnel: an Ethernet frame (gretap) or an IPv4
/// packet, both carrying a TCP SYN from tenant 1's host.
pub fn tunnel_inner(teb: bool) -> Vec<u8> {
    let opts = [TcpOptionElement::MaximumSegmentSize(1460)];
    if teb {
        let b = PacketBuilder::ethernet2(MAC_B, MAC_A)
            .ipv4(TENANT_IP, CLIENT, 64)
            .tcp(40000, 22, 1, 64240)
            .syn()
            .options(&opts)
            .unwrap();
        write(b, &[])
    } else {
        let b = PacketBuilder::ipv4(TENANT_IP, CLIENT, 64)
            .tcp(40000, 22, 1, 64240)
            .syn()
            .options(&opts)
            .unwrap();
        write(b, &[])
    }
}

/// Ethernet + outer IPv4 (protocol 47, written by etherparse) + GRE + inner.
/// With `c`, the GRE checksum is computed with etherparse's checksum code.
pub fn gre_frame(c: bool, key: Option<u32>, seq: Option<u32>, teb: bool) -> Vec<u8> {
    let proto = if teb { 0x6558 } else { 0x0800 };
    let mut gre = gre_header(c, key, seq, proto);
    gre.extend_from_slice(&tunnel_inner(teb));
    if c {
        let sum = etherparse::checksum::Sum16BitWords::new()
            .add_slice(&gre)
            .ones_complement()
            // etherparse sums in native byte order, as its own callers do.
            .to_be();
        gre[4..6].copy_from_slice(&sum.to_be_bytes());
    }
    let mut ipv4 =
        Ipv4Header::new(gre.len() as u16, 64, IpNumber::GRE, HOST1, UNDERLAY_GW).unwrap();
    ipv4.header_checksum = ipv4.calc_header_checksum();
    let eth = etherparse::Ethernet2Header {
        source: MAC_B,
        destination: MAC_A,
        ether_type: etherparse::EtherType::IPV4,
    };
    let mut v = eth.to_bytes().to_vec();
    v.extend_from_slice(&ipv4.to_bytes());
    v.extend_from_slice(&gre);
    v
}

pub fn write<B>(builder: PacketBuilderStep<B>, payload: &[u8]) -> Vec<u8>
where
    PacketBuilderStep<B>: Writable,
{
    let mut v = Vec::new();
    builder.write_to(&mut v, payload);
    v
}

pub use etherparse::PacketBuilderStep;

/// The `write`/`size` pair of the final PacketBuilder steps, which
/// etherparse implements per step type rather than through a trait.
pub trait Writable {
    fn write_to(self, out: &mut Vec<u8>, payload: &[u8]);
}

impl Writable for PacketBuilderStep<etherparse::TcpHeader> {
    fn write_to(self, out: &mut Vec<u8>, payload: &[u8]) {
        self.write(out, payload).unwrap()
    }
}

impl Writable for PacketBuilderStep<etherparse::UdpHeader> {
    fn write_to(self, out: &mut Vec<u8>, payload: &[u8]) {
        self.write(out, payload).unwrap()
    }
}

impl Writable for PacketBuilderStep<etherparse::Icmpv4Header> {
    fn write_to(self, out: &mut Vec<u8>, payload: &[u8]) {
        self.write(out, payload).unwrap()
    }
}

/// Valid frames of every kind tgw parses, for truncation and fuzzing.
pub fn corpus() -> Vec<Vec<u8>> {
    let mut v = vec![
        tcp_syn_frame(1460),
        udp_frame(b"hello, tenant"),
        udp_frame(&[]),
        icmp_echo_frame(7, 1, b"ping payload"),
        frag_needed_frame(1476),
        icmp_error_frame(etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
        )),
        arp_frame(),
    ];
    for bits in 0..8u32 {
        for teb in [false, true] {
            v.push(gre_frame(
                bits & 1 != 0,
                (bits & 2 != 0).then_some(1000),
                (bits & 4 != 0).then_some(42),
                teb,
            ));
        }
    }
    v
}

// Every read below feeds `acc`, so that nothing is optimised away and a
// panic anywhere in an accessor is reached.

fn mix(acc: &mut u64, v: u64) {
    *acc = acc.rotate_left(5) ^ v;
}

/// Reads every accessor of every view that accepts `buf`, following the
/// headers down (Ethernet, ARP, IPv4, GRE, inner Ethernet or IPv4, ICMP with
/// its quoted datagram, UDP, TCP with its options). Returns a digest.
pub fn touch_all(buf: &[u8]) -> u64 {
    let mut acc = 0u64;
    touch_ethernet(buf, &mut acc, 2);
    touch_arp(buf, &mut acc);
    touch_ipv4(buf, &mut acc, 2);
    touch_gre(buf, &mut acc, 2);
    touch_icmp(buf, &mut acc);
    touch_udp(buf, ip(CLIENT), ip(EIP1), &mut acc);
    touch_tcp(buf, ip(CLIENT), ip(EIP1), &mut acc);
    acc
}

pub fn touch_ethernet(buf: &[u8], acc: &mut u64, depth: u32) {
    let Ok(f) = EthernetFrame::new_checked(buf) else {
        return;
    };
    mix(
        acc,
        u64::from(f.dst_addr().0[5]) + u64::from(f.src_addr().0[0]),
    );
    mix(acc, u64::from(f.is_tagged()));
    mix(acc, u64::from(f.vlan_tci().unwrap_or(0)));
    mix(acc, u64::from(f.vlan_id().unwrap_or(0)));
    mix(acc, f.header_len() as u64 + f.payload_offset() as u64);
    mix(acc, f.payload().len() as u64);
    let r = EthernetRepr::parse(&f).unwrap();
    assert_eq!(r.header_len(), f.header_len());
    match f.ethertype() {
        EtherType::IPV4 => touch_ipv4(f.payload(), acc, depth),
        EtherType::ARP => touch_arp(f.payload(), acc),
        t => mix(acc, u64::from(t.0)),
    }
}

pub fn touch_arp(buf: &[u8], acc: &mut u64) {
    let Ok(p) = ArpPacket::new_checked(buf) else {
        return;
    };
    mix(
        acc,
        u64::from(p.hardware_type()) + u64::from(p.protocol_type().0),
    );
    mix(
        acc,
        u64::from(p.hardware_len()) + u64::from(p.protocol_len()),
    );
    mix(acc, u64::from(p.operation().0));
    mix(acc, u64::from(p.source_hardware_addr().0[1]));
    mix(acc, u64::from(u32::from(p.source_protocol_addr())));
    mix(acc, u64::from(p.target_hardware_addr().0[2]));
    mix(acc, u64::from(u32::from(p.target_protocol_addr())));
    let r = ArpRepr::parse(&p).unwrap();
    mix(acc, r.buffer_len() as u64);
}

fn touch_ipv4_fields<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, acc: &mut u64) {
    mix(acc, u64::from(p.version()) + u64::from(p.ihl()));
    mix(acc, p.header_len() as u64);
    mix(acc, u64::from(p.dscp()) + u64::from(p.ecn()));
    mix(acc, u64::from(p.total_len()) + u64::from(p.ident()));
    mix(acc, u64::from(p.dont_frag()) + u64::from(p.more_frags()));
    mix(acc, u64::from(p.frag_offset()) + u64::from(p.is_fragment()));
    mix(acc, u64::from(p.ttl()) + u64::from(p.protocol().0));
    mix(acc, u64::from(p.checksum()));
    mix(
        acc,
        u64::from(u32::from(p.src_addr())) ^ u64::from(u32::from(p.dst_addr())),
    );
    mix(acc, u64::from(p.has_options()) + p.options().len() as u64);
    // The options walk is bounded by the list: a byte at least a step.
    let mut steps = 0;
    for o in p.option_iter() {
        steps += 1;
        mix(
            acc,
            o.map_or(1, |o| u64::from(o.kind) + o.data.len() as u64),
        );
    }
    assert!(
        steps <= p.options().len(),
        "{steps} steps over {:?}",
        p.options()
    );
    mix(
        acc,
        u64::from(dataplane::ip_options::decide(p.options()).is_ok()),
    );
    mix(acc, u64::from(p.verify_checksum()));
    mix(acc, p.payload().len() as u64);
}

pub fn touch_ipv4(buf: &[u8], acc: &mut u64, depth: u32) {
    let Ok(p) = Ipv4Packet::new_checked(buf) else {
        if let Ok(q) = Ipv4Packet::new_checked_quoted(buf) {
            touch_ipv4_fields(&q, acc);
        }
        return;
    };
    touch_ipv4_fields(&p, acc);
    let r = Ipv4Repr::parse(&p).unwrap();
    assert_eq!(r.payload_len, p.payload().len());
    let (src, dst) = (p.src_addr(), p.dst_addr());
    match p.protocol() {
        IpProtocol::TCP => touch_tcp(p.payload(), src, dst, acc),
        IpProtocol::UDP => touch_udp(p.payload(), src, dst, acc),
        IpProtocol::ICMP => touch_icmp(p.payload(), acc),
        IpProtocol::GRE => touch_gre(p.payload(), acc, depth),
        _ => {}
    }
}

pub fn touch_gre(buf: &[u8], acc: &mut u64, depth: u32) {
    let Ok(p) = GrePacket::new_checked(buf) else {
        return;
    };
    mix(
        acc,
        u64::from(p.checksum_present()) + u64::from(p.key_present()),
    );
    mix(acc, u64::from(p.seq_present()) + u64::from(p.version()));
    mix(acc, u64::from(p.protocol_type().0) + p.header_len() as u64);
    mix(acc, u64::from(p.checksum().unwrap_or(1)));
    mix(acc, u64::from(p.reserved1().unwrap_or(1)));
    mix(acc, u64::from(p.key().unwrap_or(1)));
    mix(acc, u64::from(p.sequence().unwrap_or(1)));
    mix(acc, u64::from(p.verify_checksum()));
    mix(acc, p.payload().len() as u64);
    if let Ok(r) = GreRepr::parse(&p) {
        assert_eq!(r.header_len(), p.header_len());
        if depth > 0 {
            match r.protocol {
                EtherType::IPV4 => touch_ipv4(p.payload(), acc, depth - 1),
                _ => touch_ethernet(p.payload(), acc, depth - 1),
            }
        }
    }
}

pub fn touch_icmp(buf: &[u8], acc: &mut u64) {
    let Ok(p) = IcmpPacket::new_checked(buf) else {
        return;
    };
    mix(acc, u64::from(p.msg_type().0) + u64::from(p.msg_code()));
    mix(acc, u64::from(p.checksum()));
    mix(acc, u64::from(p.echo_ident()) + u64::from(p.echo_seq_no()));
    mix(acc, u64::from(p.next_hop_mtu()) + u64::from(p.is_error()));
    mix(acc, u64::from(p.verify_checksum()));
    mix(acc, p.payload().len() as u64);
    if let Ok(q) = p.quoted_ipv4() {
        touch_ipv4_fields(&q, acc);
        // RFC 792 quotes 8 bytes of the transport header: the ports.
        mix(acc, q.payload().len() as u64);
    }
    if let Ok(r) = IcmpRepr::parse(&p) {
        assert_eq!(r.buffer_len(), buf.len());
    }
}

pub fn touch_udp(buf: &[u8], src: Ipv4Addr, dst: Ipv4Addr, acc: &mut u64) {
    let Ok(p) = UdpPacket::new_checked(buf) else {
        return;
    };
    mix(acc, u64::from(p.src_port()) + u64::from(p.dst_port()));
    mix(acc, u64::from(p.len()) + u64::from(p.is_empty()));
    mix(acc, u64::from(p.checksum()));
    mix(acc, u64::from(p.verify_checksum(src, dst)));
    mix(acc, p.payload().len() as u64);
    let r = UdpRepr::parse(&p).unwrap();
    assert_eq!(r.payload_len, p.payload().len());
}

pub fn touch_tcp(buf: &[u8], src: Ipv4Addr, dst: Ipv4Addr, acc: &mut u64) {
    let Ok(p) = TcpPacket::new_checked(buf) else {
        return;
    };
    mix(acc, u64::from(p.src_port()) + u64::from(p.dst_port()));
    mix(acc, u64::from(p.seq_number()) + u64::from(p.ack_number()));
    mix(acc, u64::from(p.data_offset()) + p.header_len() as u64);
    mix(acc, u64::from(p.flags().0));
    let bits = [
        p.fin(),
        p.syn(),
        p.rst(),
        p.psh(),
        p.ack(),
        p.urg(),
        p.ece(),
        p.cwr(),
        p.ns(),
    ];
    mix(acc, bits.iter().filter(|b| **b).count() as u64);
    mix(acc, u64::from(p.window_len()) + u64::from(p.urgent_ptr()));
    mix(acc, u64::from(p.checksum()));
    mix(acc, p.options_raw().len() as u64);
    for o in p.options() {
        match o {
            Ok((at, o)) => {
                assert!(at >= 20 && at < p.header_len());
                let v = match o {
                    TcpOption::NoOp => 1,
                    TcpOption::Mss(m) => u64::from(m),
                    TcpOption::WindowScale(s) => u64::from(s),
                    TcpOption::SackPermitted => 4,
                    TcpOption::Timestamps { tsval, tsecr } => u64::from(tsval ^ tsecr),
                    TcpOption::Unknown { kind, data } => u64::from(kind) + data.len() as u64,
                };
                mix(acc, at as u64 + v);
            }
            Err(e) => mix(acc, e as u64),
        }
    }
    mix(
        acc,
        p.mss_option().map_or(0, |(at, m)| at as u64 + u64::from(m)),
    );
    mix(acc, u64::from(p.verify_checksum(src, dst)));
    mix(acc, p.payload().len() as u64);
    if let Ok(r) = TcpRepr::parse(&p) {
        mix(acc, r.buffer_len() as u64);
    }
}

/// Runs the content-dependent writers (TTL decrement, NAT rewrites, MSS
/// clamp, checksum fills) on whatever views accept `buf`, following
/// Ethernet into IPv4 and GRE into its payload.
pub fn mutate_all(buf: &mut [u8]) {
    mutate_ethernet(buf, 2);
    mutate_ipv4(buf, 2);
    if let Ok(mut t) = TcpPacket::new_checked(&mut buf[..]) {
        clamp_mss(&mut t, 536);
        t.fill_checksum(ip(CLIENT), ip(EIP1));
    }
    if let Ok(mut g) = GrePacket::new_checked(&mut buf[..]) {
        g.set_key(1);
        g.fill_checksum();
    }
}

fn mutate_ethernet(buf: &mut [u8], depth: u32) {
    if let Ok(mut f) = EthernetFrame::new_checked(&mut buf[..]) {
        let t = f.ethertype();
        f.set_ethertype(t);
        let tci = f.vlan_tci().unwrap_or(0);
        f.set_vlan_tci(tci);
        f.set_src_addr(dataplane::wire::MacAddr(MAC_B));
        if t == EtherType::IPV4 {
            mutate_ipv4(f.payload_mut(), depth);
        }
    }
}

fn mutate_ipv4(buf: &mut [u8], depth: u32) {
    let Ok(mut p) = Ipv4Packet::new_checked(&mut buf[..]) else {
        return;
    };
    p.decrement_ttl();
    let old = p.rewrite_src_addr(ip(EIP1));
    let proto = p.protocol();
    let new = p.src_addr();
    let payload = p.payload_mut();
    match proto {
        IpProtocol::TCP => {
            if let Ok(mut t) = TcpPacket::new_checked(&mut payload[..]) {
                t.update_checksum_for_addr(old, new);
                t.rewrite_src_port(1024);
                clamp_mss(&mut t, 1400);
            }
        }
        IpProtocol::UDP => {
            if let Ok(mut u) = UdpPacket::new_checked(&mut payload[..]) {
                u.update_checksum_for_addr(old, new);
                u.rewrite_dst_port(1024);
            }
        }
        IpProtocol::ICMP => {
            if let Ok(mut i) = IcmpPacket::new_checked(&mut payload[..]) {
                i.rewrite_echo_ident(9);
                if let Ok(mut q) = i.quoted_ipv4_mut() {
                    q.rewrite_dst_addr(ip(TENANT_IP));
                    q.decrement_ttl();
                }
                i.fill_checksum();
            }
        }
        IpProtocol::GRE => {
            if let Ok(mut g) = GrePacket::new_checked(&mut payload[..]) {
                g.set_key(2000);
                g.set_sequence(1);
                if depth > 0 {
                    let inner_is_ip = g.protocol_type() == EtherType::IPV4;
                    let inner = g.payload_mut();
                    if inner_is_ip {
                        mutate_ipv4(inner, depth - 1);
                    } else {
                        mutate_ethernet(inner, depth - 1);
                    }
                }
                g.fill_checksum();
            }
        }
        _ => {}
    }
    p.fill_checksum();
}
