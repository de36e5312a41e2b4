//! Frames a worker hands to the control plane, and why.
//!
//! The reason travels in the frame itself, in a small header prepended in
//! the headroom (VPP keeps it in the buffer's opaque area; in-band keeps
//! `rte` free of per-application mbuf fields). The control plane strips it
//! first thing. Punting is for the rare frame: ARP to learn from, frames
//! whose next hop is not resolved yet, and datagrams to cut into fragments.

use crate::neighbour::NeighKey;
use crate::tenant::TenantId;
use crate::Frame;

/// Bytes the punt header takes in front of the frame.
pub const HEADER_LEN: usize = 16;

/// Why a frame was punted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punt {
    /// Ready to leave `port`, but for the Ethernet destination: the MAC of
    /// `key`, which goes in the first six bytes.
    Resolve { port: u16, key: NeighKey },
    /// Encapsulated for gretap tunnel `tunnel` (an index into the tunnels
    /// of `key`'s tenant), but for the inner destination: the MAC of host
    /// `key`.
    ResolveInner { tunnel: u32, key: NeighKey },
    /// An ARP frame received on `port` to learn from (a reply, or an
    /// announcement).
    Arp { port: u16 },
    /// An ARP frame inside `tenant`'s gretap tunnel, received on `port` with
    /// its outer headers: a request from a host not known yet, or a reply.
    TunnelArp { port: u16, tenant: TenantId },
    /// Ready to leave `port` but too big for it, without DF: the IPv4
    /// packet after `prefix` bytes of headers is to be cut into fragments
    /// of at most `mtu` bytes ([`crate::fragments::split`]).
    Fragment { port: u16, prefix: u16, mtu: u16 },
}

const RESOLVE: u8 = 1;
const RESOLVE_INNER: u8 = 2;
const ARP: u8 = 3;
const TUNNEL_ARP: u8 = 4;
const FRAGMENT: u8 = 5;

impl Punt {
    /// Prepends the header. `false` if the headroom is too small.
    pub fn write<F: Frame>(self, f: &mut F) -> bool {
        let (kind, port, word, key) = match self {
            Punt::Resolve { port, key } => (RESOLVE, port, 0, key.to_bits()),
            Punt::ResolveInner { tunnel, key } => (RESOLVE_INNER, 0, tunnel, key.to_bits()),
            Punt::Arp { port } => (ARP, port, 0, 0),
            Punt::TunnelArp { port, tenant } => (TUNNEL_ARP, port, tenant.0, 0),
            Punt::Fragment { port, prefix, mtu } => {
                (FRAGMENT, port, u32::from(prefix) << 16 | u32::from(mtu), 0)
            }
        };
        let Some(h) = f.prepend(HEADER_LEN) else {
            return false;
        };
        h[0] = kind;
        h[1] = 0;
        h[2..4].copy_from_slice(&port.to_be_bytes());
        h[4..8].copy_from_slice(&word.to_be_bytes());
        h[8..16].copy_from_slice(&key.to_be_bytes());
        true
    }

    /// Strips the header and returns it; `None` (frame unchanged) if the
    /// frame carries none.
    pub fn read<F: Frame>(f: &mut F) -> Option<Punt> {
        let h: &[u8; HEADER_LEN] = f.data().get(..HEADER_LEN)?.try_into().ok()?;
        let port = u16::from_be_bytes([h[2], h[3]]);
        let word = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let key = NeighKey::from_bits(u64::from_be_bytes([
            h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15],
        ]));
        let punt = match h[0] {
            RESOLVE => Punt::Resolve { port, key: key? },
            RESOLVE_INNER => Punt::ResolveInner {
                tunnel: word,
                key: key?,
            },
            ARP => Punt::Arp { port },
            TUNNEL_ARP => Punt::TunnelArp {
                port,
                tenant: TenantId(word),
            },
            FRAGMENT => Punt::Fragment {
                port,
                prefix: (word >> 16) as u16,
                mtu: word as u16,
            },
            _ => return None,
        };
        f.adj(HEADER_LEN).then_some(punt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecFrame;

    #[test]
    fn every_reason_survives_the_trip_and_leaves_the_frame_as_it_was() {
        let reasons = [
            Punt::Resolve {
                port: 3,
                key: NeighKey::port(3, 0x0101_01fe),
            },
            Punt::ResolveInner {
                tunnel: 7,
                key: NeighKey::inner(TenantId(1), 0x0a00_0007),
            },
            Punt::Arp { port: 1 },
            Punt::TunnelArp {
                port: 2,
                tenant: TenantId(9),
            },
            Punt::Fragment {
                port: 1,
                prefix: 56,
                mtu: 1458,
            },
        ];
        for p in reasons {
            let mut f = VecFrame::new(&[1, 2, 3, 4], 0);
            assert!(p.write(&mut f));
            assert_eq!(f.len(), 4 + HEADER_LEN);
            assert_eq!(Punt::read(&mut f), Some(p));
            assert_eq!(f.data(), &[1, 2, 3, 4]);
        }
    }

    #[test]
    fn a_frame_without_a_header_is_refused_unchanged() {
        let mut f = VecFrame::new(&[0; 20], 0);
        assert_eq!(Punt::read(&mut f), None);
        assert_eq!(f.len(), 20);
        let mut short = VecFrame::new(&[RESOLVE; 8], 0);
        assert_eq!(Punt::read(&mut short), None);
    }
}
