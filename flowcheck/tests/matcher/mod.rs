//! A NIC's reading of a rule's pattern, written from the RFCs and DPDK's
//! item semantics (a field matches when `field & mask == spec & mask`),
//! independently of tgw: whether a recorded [`Rule`] would take a frame.
//! Enough for the items tgw's full shapes use: ETH, IPV4, GRE, GRE_KEY,
//! TCP, UDP, INTEGRITY (the checks computed here, per RFC 1071 and RFC
//! 1812, not taken from the frame's builder).

use rte::flow::{Item, Masked, Rule};

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether `value` matches a field of the pattern (`None` matches all).
fn ok<T>(m: Option<Masked<T>>, value: T) -> bool
where
    T: Copy + std::ops::BitAnd<Output = T> + PartialEq,
{
    m.is_none_or(|m| value & m.mask == m.spec & m.mask)
}

fn ok_mac(m: Option<Masked<[u8; 6]>>, value: &[u8]) -> bool {
    m.is_none_or(|m| (0..6).all(|i| value[i] & m.mask[i] == m.spec[i] & m.mask[i]))
}

/// RFC 1071: the one's complement sum of `header`'s 16-bit words, folded.
fn ones_complement_sum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether the IPv4 header at the start of `h` passes an integrity
/// item's checks: `ipv4_csum_ok`, its checksum verifies (the sum over
/// the header, checksum included, is all ones: RFC 1071 §1); `l3_ok`,
/// RFC 1812 §5.2.2's validation (version 4, a header length of at least
/// 20 bytes, a total length covering the header and within the bytes
/// received, the checksum).
fn ipv4_passes(h: &[u8], l3_ok: bool, ipv4_csum_ok: bool) -> bool {
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h.len() < 20 || h.len() < ihl {
        return false;
    }
    let csum = ones_complement_sum(&h[..ihl]) == 0xffff;
    let total = usize::from(be16(h, 2));
    let l3 = h[0] >> 4 == 4 && ihl >= 20 && total >= ihl && total <= h.len() && csum;
    (!ipv4_csum_ok || csum) && (!l3_ok || l3)
}

/// Whether `rule`'s pattern takes `frame`, its headers read item by item
/// from the start of the frame.
pub fn matches(rule: &Rule, frame: &[u8]) -> bool {
    let mut at = 0;
    // Where the key of the last GRE header is (after its checksum word,
    // RFC 2890 §2), if it has one.
    let mut gre_key_at = None;
    // The encapsulation level of the headers being read (1 the outermost,
    // one more after each tunnel header), and where each level's IPv4
    // header starts: integrity items, which may stand before the header
    // they check (but not before the tunnel header of an inner one), are
    // checked against them at the end.
    let mut level = 1;
    let mut ipv4_at = Vec::new();
    for item in &rule.pattern {
        let h = &frame[at.min(frame.len())..];
        match *item {
            // IEEE 802.3: dst 0..6, src 6..12, type 12..14.
            Item::Eth {
                dst,
                src,
                ether_type,
            } => {
                if h.len() < 14
                    || !ok_mac(dst, &h[0..6])
                    || !ok_mac(src, &h[6..12])
                    || ether_type.is_some_and(|t| t != be16(h, 12))
                {
                    return false;
                }
                at += 14;
            }
            // RFC 791.
            Item::Ipv4 {
                version_ihl,
                tos,
                fragment_offset,
                ttl,
                src,
                dst,
                protocol,
            } => {
                if h.len() < 20
                    || version_ihl.is_some_and(|v| v != h[0])
                    || !ok(tos, h[1])
                    || !ok(fragment_offset, be16(h, 6))
                    || !ok(ttl, h[8])
                    || protocol.is_some_and(|p| p != h[9])
                    || !ok(src, be32(h, 12))
                    || !ok(dst, be32(h, 16))
                {
                    return false;
                }
                ipv4_at.push((level, at));
                at += usize::from(h[0] & 0x0f) * 4;
            }
            // RFC 2784/2890: C 0x8000, K 0x2000, S 0x1000; then the
            // checksum and reserved word, the key, the sequence number.
            Item::Gre {
                protocol,
                checksum_present,
                key_present,
                sequence_present,
            } => {
                if h.len() < 4 {
                    return false;
                }
                let word = be16(h, 0);
                let (c, k, s) = (word & 0x8000 != 0, word & 0x2000 != 0, word & 0x1000 != 0);
                if checksum_present.is_some_and(|v| v != c)
                    || key_present.is_some_and(|v| v != k)
                    || sequence_present.is_some_and(|v| v != s)
                    || protocol.is_some_and(|p| p != be16(h, 2))
                {
                    return false;
                }
                let mut len = 4;
                if c {
                    len += 4;
                }
                gre_key_at = k.then_some(at + len);
                if k {
                    len += 4;
                }
                if s {
                    len += 4;
                }
                at += len;
                level += 1;
            }
            Item::GreKey(key) => {
                let Some(k) = gre_key_at.take() else {
                    return false;
                };
                if frame.len() < k + 4 || be32(frame, k) != key {
                    return false;
                }
            }
            // RFC 9293: ports 0..4, flags 13.
            Item::Tcp { src, dst, flags } => {
                if h.len() < 20 || !ok(src, be16(h, 0)) || !ok(dst, be16(h, 2)) || !ok(flags, h[13])
                {
                    return false;
                }
                at += usize::from(h[12] >> 4) * 4;
            }
            // RFC 768.
            Item::Udp { src, dst } => {
                if h.len() < 8 || !ok(src, be16(h, 0)) || !ok(dst, be16(h, 2)) {
                    return false;
                }
                at += 8;
            }
            // Where it stands must say the level it names: mlx5's HW
            // steering takes an item after a tunnel item as inner,
            // whatever its level (DPDK 22.11,
            // `mlx5dr_definer_conv_item_integrity`).
            Item::Integrity { level: l, .. } => {
                if l != level {
                    return false;
                }
            }
            Item::Mark(_) | Item::Meta(_) => return false,
        }
    }
    rule.pattern.iter().all(|item| match *item {
        // The headers an integrity item checks must be in the pattern
        // (mlx5 refuses the rule otherwise); level 0, "the PMD's
        // default", is not guessed at.
        Item::Integrity {
            level,
            l3_ok,
            ipv4_csum_ok,
        } => ipv4_at
            .iter()
            .find(|&&(l, _)| l == level)
            .is_some_and(|&(_, at)| ipv4_passes(&frame[at..], l3_ok, ipv4_csum_ok)),
        _ => true,
    })
}

/// The rule a NIC holding `rules` (all on the port the frame arrives on)
/// applies to `frame`, as rte_flow's groups say: in group 0, the matching
/// rule of lowest priority (then the first made); if its actions jump,
/// the same in the group it names, and so on; `None` on a miss anywhere
/// (the frame goes to software). A group is entered at most once, so a
/// loop of jumps is a miss rather than a hang.
pub fn applied<'r>(rules: &'r [Rule], frame: &[u8]) -> Option<&'r Rule> {
    use rte::flow::Action;
    let mut group = 0;
    let mut entered = Vec::new();
    loop {
        if entered.contains(&group) {
            return None;
        }
        entered.push(group);
        let rule = rules
            .iter()
            .filter(|r| r.attr.group == group && matches(r, frame))
            .min_by_key(|r| r.attr.priority)?;
        match rule.actions.iter().find_map(|a| match a {
            Action::Jump(g) => Some(*g),
            _ => None,
        }) {
            Some(next) => group = next,
            None => return Some(rule),
        }
    }
}
