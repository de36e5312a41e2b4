//! `[metrics]`: where Prometheus's `/metrics` is served, and the
//! addresses refused.

use std::net::SocketAddr;

use common::check;
use ctl::config::{parse, CpuSet};

mod common;

/// The line the first key after `[metrics]` is on (after `common::BASE`'s 16).
const KEY_LINE: usize = 18;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn without_listen_there_is_no_endpoint() {
    assert_eq!(check("").unwrap().metrics.listen, None);
    let c = check("[metrics]\n").unwrap();
    assert_eq!(c.metrics.listen, None);
    assert!(!c.metrics.allow_remote);
}

#[test]
fn a_loopback_address_is_taken_as_written() {
    for listen in ["127.0.0.1:9400", "127.0.0.2:80", "[::1]:9400"] {
        let c = check(&format!("[metrics]\nlisten = \"{listen}\"\n")).unwrap();
        assert_eq!(c.metrics.listen, Some(addr(listen)));
    }
}

#[test]
fn another_hosts_address_needs_allow_remote() {
    for listen in ["0.0.0.0:9400", "10.0.0.1:9400", "[::]:9400"] {
        let errors = check(&format!("[metrics]\nlisten = \"{listen}\"\n")).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (line, message) = &errors[0];
        assert_eq!(*line, KEY_LINE, "{message}");
        assert!(message.contains("not a loopback address"), "{message}");
        assert!(message.contains("allow_remote = true"), "{message}");
        assert!(message.contains("127.0.0.1:9400"), "{message}");

        let c = check(&format!(
            "[metrics]\nlisten = \"{listen}\"\nallow_remote = true\n"
        ))
        .unwrap();
        assert_eq!(c.metrics.listen, Some(addr(listen)));
        assert!(c.metrics.allow_remote);
    }
}

#[test]
fn what_bind_cannot_take_is_refused_on_its_line() {
    for (listen, fragment) in [
        ("9400", "not an address and port"),
        ("localhost:9400", "not an address and port"),
        ("127.0.0.1", "not an address and port"),
        ("127.0.0.1:70000", "not an address and port"),
        ("127.0.0.1:0", "port 0"),
    ] {
        let errors = check(&format!("[metrics]\nlisten = \"{listen}\"\n")).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (line, message) = &errors[0];
        assert_eq!(*line, KEY_LINE, "{message}");
        assert!(message.contains(fragment), "{listen}: {message}");
        assert!(message.contains("[metrics] listen"), "{message}");
    }
}

#[test]
fn unknown_metrics_keys_are_refused() {
    let errors = check("[metrics]\nlisen = \"127.0.0.1:9400\"\n").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("unknown field `lisen`"), "{errors:?}");
    assert!(errors[0].1.contains("listen"), "{errors:?}");
}

#[test]
fn the_endpoint_comes_back_from_config_show() {
    for extra in [
        "",
        "[metrics]\nlisten = \"127.0.0.1:9400\"\n",
        "[metrics]\nlisten = \"[::]:9400\"\nallow_remote = true\n",
    ] {
        let c = check(extra).unwrap();
        let text = c.to_toml();
        let cpus: CpuSet = "0-1".parse().unwrap();
        let back = parse(&text, "shown.toml", &cpus).unwrap();
        assert_eq!(back.metrics, c.metrics, "{text}");
    }
}

#[test]
fn an_unreadable_allow_remote_is_one_error_not_two() {
    let errors =
        check("[metrics]\nlisten = \"0.0.0.0:9400\"\nallow_remote = \"yes\"\n").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, KEY_LINE + 1, "{errors:?}");
    assert!(errors[0].1.contains("allow_remote"), "{errors:?}");
}
