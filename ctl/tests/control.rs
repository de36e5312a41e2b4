//! `[control]`: where the control socket is, and the paths refused.

use std::path::Path;

use common::check;

mod common;

#[test]
fn the_default_socket_is_named_after_the_file_prefix() {
    let c = check("").unwrap();
    assert_eq!(c.control.socket, Path::new(ctl::api::DEFAULT_SOCKET));
    let c = check("file_prefix = \"blue-7\"\n").unwrap();
    assert_eq!(c.control.socket, Path::new("/run/tgw/blue-7.sock"));
    let c = check("[control]\n").unwrap();
    assert_eq!(c.control.socket, Path::new(ctl::api::DEFAULT_SOCKET));
}

#[test]
fn an_absolute_socket_path_is_taken_as_written() {
    let c = check("[control]\nsocket = \"/var/run/gw/ctl.sock\"\n").unwrap();
    assert_eq!(c.control.socket, Path::new("/var/run/gw/ctl.sock"));
}

#[test]
fn socket_paths_bind_cannot_take_are_refused_on_their_line() {
    let long = format!("/run/{}.sock", "x".repeat(100));
    for (socket, fragment) in [
        ("tgw.sock", "not an absolute path"),
        ("/run/tgw/", "names a directory"),
        (long.as_str(), "too long for a Unix socket"),
    ] {
        let errors = check(&format!("[control]\nsocket = \"{socket}\"\n")).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (line, message) = &errors[0];
        assert_eq!(*line, 18, "{message}");
        assert!(message.contains(fragment), "{message}");
        assert!(message.contains("[control] socket"), "{message}");
    }
}

#[test]
fn unknown_control_keys_are_refused() {
    let errors = check("[control]\nsokcet = \"/run/x.sock\"\n").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("unknown field `sokcet`"), "{errors:?}");
    assert!(errors[0].1.contains("socket"), "{errors:?}");
}
