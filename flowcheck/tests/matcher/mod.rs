//! A NIC's reading of a rule's pattern, written from the RFCs and DPDK's
//! item semantics (a field matches when `field & mask == spec & mask`),
//! independently of tgw: whether a recorded [`Rule`] would take a frame.
//! Enough for the items tgw's full shapes use: ETH, IPV4, GRE, GRE_KEY,
//! TCP, UDP.

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

/// Whether `rule`'s pattern takes `frame`, its headers read item by item
/// from the start of the frame.
pub fn matches(rule: &Rule, frame: &[u8]) -> bool {
    let mut at = 0;
    // Where the key of the last GRE header is (after its checksum word,
    // RFC 2890 §2), if it has one.
    let mut gre_key_at = None;
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
            Item::Mark(_) | Item::Meta(_) => return false,
        }
    }
    true
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
