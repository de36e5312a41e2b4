//! `[control]`: how tgw is reached while it runs.

use super::Report;
use crate::config::raw::{RawControl, Section};
use crate::config::{Control, Eal, SOCKET_PATH_MAX};

/// `[control]`: the socket must be a path `bind` can take, the same
/// wherever tgw was started from.
pub(super) fn control(
    raw: Option<&Section<RawControl>>,
    eal: Option<&Eal>,
    r: &mut Report,
) -> Option<Control> {
    let default = || eal.map(|e| Control::default_for(&e.file_prefix));
    let Some(section) = raw else {
        return default();
    };
    let Some(v) = &section.value.socket else {
        return section.sound().then(default).flatten();
    };
    let s = v.get_ref();
    let problem = if !s.starts_with('/') {
        Some("is not an absolute path")
    } else if s.ends_with('/') {
        Some("names a directory; end it with the socket's file name")
    } else if s.contains('\0') {
        Some("contains a NUL byte")
    } else if s.len() > SOCKET_PATH_MAX {
        Some("is too long for a Unix socket")
    } else {
        None
    };
    if let Some(problem) = problem {
        r.at(
            v.span().start,
            format!("[control] socket {s:?} {problem}; use an absolute path of at most {SOCKET_PATH_MAX} bytes such as \"/run/tgw/tgw.sock\""),
        );
        return None;
    }
    section.sound().then(|| Control { socket: s.into() })
}
