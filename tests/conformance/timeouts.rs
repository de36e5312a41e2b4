//! The idle timeouts' floors, which the RFCs set and tgw's config
//! validator holds: `tgw --check` refuses anything lower. That each
//! timeout ends its flows on time is the dataplane's own clock-driven test
//! (`flows_expire_by_protocol_and_state_on_a_fake_clock`,
//! dataplane/tests/pipeline.rs); here, that no configuration can go below.

use crate::common::{Scratch, TGW};

/// `tgw --check` on reference.toml with `setting` replaced.
fn check(dir: &Scratch, name: &str, from: &str, to: &str) -> (bool, String) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/reference.toml"
    ))
    .unwrap();
    assert!(text.contains(from), "reference.toml has {from:?}");
    let path = dir.path(name);
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let out = std::process::Command::new(TGW)
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// RFC 4787 REQ-5 (UDP ≥ 2 min), RFC 5382 REQ-5 (established ≥ 2 h 4 min,
/// transitory ≥ 4 min), RFC 5508 REQ-2 (ICMP queries ≥ 60 s): one second
/// below each floor is refused, the floor itself accepted.
#[test]
fn rfc4787_req5_rfc5382_req5_rfc5508_req2_timeout_floors() {
    let dir = Scratch::new("conformance-timeouts");
    for (key, floor) in [
        ("tcp_established_s", 7440),
        ("tcp_transitory_s", 240),
        ("udp_s", 120),
        ("icmp_s", 60),
    ] {
        let line = format!("{key} = ");
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/reference.toml"
        ))
        .unwrap();
        let at = text
            .find(&line)
            .unwrap_or_else(|| panic!("reference.toml sets {key}"));
        let current = &text[at..at + text[at..].find('\n').unwrap()];
        let (ok, log) = check(
            &dir,
            "below.toml",
            current,
            &format!("{key} = {}", floor - 1),
        );
        assert!(!ok, "{key} = {} accepted", floor - 1);
        assert!(
            log.contains(key) && log.contains("RFC"),
            "the refusal names the setting and its RFC: {log}"
        );
        let (ok, log) = check(&dir, "floor.toml", current, &format!("{key} = {floor}"));
        assert!(ok, "{key} = {floor} refused: {log}");
    }
}
