//! `tgw-perf scenario --fragments`: fragments between real Linux stacks
//! (issue 9, defect 13). Only on ports that do not reassemble: af_packet's
//! fanout defragments in the kernel, so tgw would never see a fragment
//! there; run it with `--pmd af_xdp`.
//!
//! - Out of order: host 1 opens a UDP flow to the client (its "hello"),
//!   and the client answers with a datagram whose two fragments it writes
//!   itself and sends last first, so that tgw gets the later fragment
//!   before the first. Host 1's socket must receive the datagram whole.
//! - Too big without DF: the client then answers with a 3000-byte
//!   datagram through its ordinary socket with path MTU discovery off; its
//!   stack sends it in 1500-byte fragments, each too big for the tunnel
//!   (1458), which tgw must cut again. Host 1's socket must receive it
//!   whole.
//! - The issue's own example: a 3000-byte ping without DF to 2.2.2.11
//!   answered, payload intact.
//!
//! The stacks at both ends reassemble; nothing in between does, so a lost
//! or mangled piece shows as a missing or different datagram.

use serde_json::Value;

use super::checks::Checks;
use super::live::Attempts;
use super::world::{py, World};
use super::{u, CLIENT, HOSTS};

/// The UDP port both ends use.
const PORT: &str = "5555";
/// The datagram sent in pieces out of order, and the big one.
const OUT_OF_ORDER_BYTES: u64 = 1200;
const BIG_BYTES: u64 = 3000;
/// The ping's ICMP payload: a 3000-byte IPv4 datagram.
const PING_PAYLOAD: u64 = 3000 - 28;

/// Runs the fragment checks, counting the flows they open in `attempts`
/// (host 1's UDP flow out, the client's ping in) so that the flow and
/// firewall checks still add up.
pub(super) fn checks(w: &World, checks: &mut Checks, attempts: &mut Attempts) {
    let host = &HOSTS[0];
    attempts.opened_out[0] += 1;
    let (client, host_side) = std::thread::scope(|s| {
        let host_side = s.spawn(|| {
            py(
                w,
                &w.hosts[0],
                "frag_host.py",
                &[PORT, &CLIENT.to_string(), "10"],
            )
        });
        // The host says hello until the client answers: the client may
        // start after it.
        let client = py(
            w,
            &w.client,
            "frag_client.py",
            &[
                PORT,
                &CLIENT.to_string(),
                &BIG_BYTES.to_string(),
                &OUT_OF_ORDER_BYTES.to_string(),
            ],
        );
        let host_side = host_side
            .join()
            .unwrap_or_else(|_| Err("frag_host.py panicked".into()));
        (client, host_side)
    });
    let sent = |i: usize| -> Option<Value> { client.as_ref().ok()?["sent"].get(i).cloned() };
    let received = |want: &Value| -> Result<(), String> {
        let got = host_side.as_ref().map_err(Clone::clone)?;
        let list = got["received"].as_array().cloned().unwrap_or_default();
        if list.contains(want) {
            Ok(())
        } else {
            Err(format!("{} received {list:?}, not {want}", host.name))
        }
    };
    for (i, (name, bytes)) in [
        (
            format!(
                "fragments out of order: a UDP datagram from the client reaches {}'s socket whole",
                host.name
            ),
            OUT_OF_ORDER_BYTES,
        ),
        (
            format!(
                "too big for the tunnel without DF: a {BIG_BYTES}-byte UDP datagram reaches {}'s socket whole",
                host.name
            ),
            BIG_BYTES,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let result = match (&client, sent(i)) {
            (Err(e), _) => Err(e.clone()),
            (Ok(v), None) => Err(format!("frag_client.py sent nothing: {v}")),
            (Ok(v), Some(want)) => received(&want).map(|()| {
                format!(
                    "{bytes} bytes from {}:{PORT} to {}:{PORT}, sha256 {} on both sides",
                    CLIENT,
                    v["peer"].as_str().unwrap_or_default(),
                    want[1].as_str().unwrap_or_default()
                )
            }),
        };
        checks.record(&name, result);
    }

    attempts.pings[0] += 1;
    let result = py(
        w,
        &w.client,
        "bigping.py",
        &[&host.public.to_string(), &PING_PAYLOAD.to_string()],
    )
    .and_then(|v| {
        if v["intact"] == true {
            Ok(format!(
                "{} bytes answered intact in {} ms",
                u(&v, "bytes"),
                v["rtt_ms"]
            ))
        } else {
            Err(format!("no intact reply: {v}"))
        }
    });
    checks.record(
        &format!(
            "a {BIG_BYTES}-byte ping without DF to {} answered",
            host.public
        ),
        result,
    );
}
