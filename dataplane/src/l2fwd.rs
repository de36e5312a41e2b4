//! The L2 skeleton: every frame leaves by the port paired with the one it
//! came in on, with its MAC addresses rewritten for that hop.
//!
//! It is the first node of the pipeline and the shape the rest plugs into: a
//! node takes a frame and returns a [`Verdict`]; the worker does the I/O.

use crate::counters::{DropReason, MAX_PORTS};
use crate::{Frame, Verdict};

/// Where frames from one port go, and the L2 header they leave with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Egress {
    pub port: u16,
    /// The egress port's own MAC.
    pub src: [u8; 6],
    /// The next hop's MAC; `None` sends the frame back to the MAC it came
    /// from (testpmd's macswap), until neighbours are resolved.
    pub dst: Option<[u8; 6]>,
}

/// Port-to-port forwarding with MAC rewrite.
#[derive(Clone, Debug)]
pub struct L2Forward {
    egress: [Option<Egress>; MAX_PORTS],
}

impl Default for L2Forward {
    fn default() -> Self {
        L2Forward {
            egress: [None; MAX_PORTS],
        }
    }
}

impl L2Forward {
    /// Frames received on `ingress` leave by `egress`.
    pub fn connect(&mut self, ingress: u16, egress: Egress) {
        if let Some(slot) = self.egress.get_mut(usize::from(ingress)) {
            *slot = Some(egress);
        }
    }

    #[inline]
    pub fn process<F: Frame>(&self, frame: &mut F) -> Verdict {
        let Some(Some(out)) = self.egress.get(usize::from(frame.in_port())) else {
            return Verdict::Drop(DropReason::NoEgress);
        };
        let Some(macs) = frame.data_mut().get_mut(..12) else {
            return Verdict::Drop(DropReason::Runt);
        };
        match out.dst {
            Some(dst) => macs[..6].copy_from_slice(&dst),
            None => macs.copy_within(6..12, 0),
        }
        macs[6..].copy_from_slice(&out.src);
        Verdict::Forward(out.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecFrame;

    #[test]
    fn rewrites_macs_and_picks_the_paired_port() {
        let mut fwd = L2Forward::default();
        fwd.connect(
            0,
            Egress {
                port: 1,
                src: [2, 0, 0, 0, 0, 1],
                dst: Some([2, 0, 0, 0, 0, 9]),
            },
        );
        let payload: Vec<u8> = (0u8..60).collect();
        let mut f = VecFrame::new(&payload, 0);
        assert_eq!(fwd.process(&mut f), Verdict::Forward(1));
        assert_eq!(&f.data()[..12], &[2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1]);
        assert_eq!(&f.data()[12..], &payload[12..], "only the MACs change");
    }

    #[test]
    fn without_a_peer_the_frame_returns_to_its_sender() {
        let mut fwd = L2Forward::default();
        fwd.connect(
            3,
            Egress {
                port: 3,
                src: [2, 0, 0, 0, 0, 1],
                dst: None,
            },
        );
        let mut bytes = [0u8; 60];
        bytes[6..12].copy_from_slice(&[0xaa; 6]);
        let mut f = VecFrame::new(&bytes, 3);
        assert_eq!(fwd.process(&mut f), Verdict::Forward(3));
        assert_eq!(
            &f.data()[..12],
            &[0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 2, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn unconnected_ports_and_runts_are_dropped_with_a_reason() {
        let mut fwd = L2Forward::default();
        fwd.connect(
            0,
            Egress {
                port: 1,
                src: [0; 6],
                dst: None,
            },
        );
        assert_eq!(
            fwd.process(&mut VecFrame::new(&[0; 60], 1)),
            Verdict::Drop(DropReason::NoEgress)
        );
        assert_eq!(
            fwd.process(&mut VecFrame::new(&[0; 11], 0)),
            Verdict::Drop(DropReason::Runt)
        );
        assert_eq!(
            fwd.process(&mut VecFrame::new(&[0; 60], 4000)),
            Verdict::Drop(DropReason::NoEgress)
        );
    }
}
