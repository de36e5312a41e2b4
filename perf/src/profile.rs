//! Traffic profiles: the frames the generator cycles through, built with
//! `etherparse` (an independent library, not the parsers under test).

use std::fmt;
use std::str::FromStr;

use etherparse::PacketBuilder;

/// Bytes of a minimum Ethernet frame without its FCS (64 on the wire).
pub const MIN_FRAME: usize = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Ethernet / IPv4 / UDP from the Internet side: the client
    /// 1.1.1.7 talking to an elastic IP, one UDP source port per flow.
    Udp,
}

/// A profile: what kind of frame, how many distinct flows, what size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub kind: Kind,
    pub flows: u32,
    /// Frame size on the wire, FCS included (64 = the minimum).
    pub size: usize,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(Kind::Udp),
            _ => Err(format!("unknown profile {s:?}; known: udp")),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Udp => "udp",
        })
    }
}

impl Profile {
    /// One frame per flow (at most 65 536 distinct ones; more flows reuse
    /// the list), each exactly `size - 4` bytes.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let len = self.size.saturating_sub(4).max(MIN_FRAME);
        (0..self.flows.clamp(1, 65_536))
            .map(|flow| {
                let port = 1024 + (flow % 64_512) as u16;
                let builder =
                    PacketBuilder::ethernet2([0x02, 0, 0, 0, 0xee, 1], [0x02, 0, 0, 0, 0, 1])
                        .ipv4([1, 1, 1, 7], [2, 2, 2, 11], 64)
                        .udp(port, 5001);
                let payload = vec![0u8; len.saturating_sub(42)];
                let mut frame = Vec::with_capacity(len);
                builder
                    .write(&mut frame, &payload)
                    .expect("writing to a Vec cannot fail");
                frame
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_size_and_distinct_flows() {
        let p = Profile {
            kind: Kind::Udp,
            flows: 100,
            size: 64,
        };
        let frames = p.frames();
        assert_eq!(frames.len(), 100);
        assert!(frames.iter().all(|f| f.len() == 60));
        let sliced = etherparse::SlicedPacket::from_ethernet(&frames[7]).unwrap();
        let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
            panic!("not UDP")
        };
        assert_eq!(udp.source_port(), 1031);
        let big = Profile {
            kind: Kind::Udp,
            flows: 1,
            size: 1518,
        }
        .frames();
        assert_eq!(big[0].len(), 1514);
    }
}
