//! tgw's telemetry commands through DPDK's own telemetry socket: what a
//! client such as `dpdk-telemetry.py` reads is the tree the closure
//! answered, whole, or an error saying why not; never a cut answer.
//!
//! Its own test binary: EAL is initialised once per process, and this one
//! needs its telemetry socket (`--no-huge --no-shconf` still makes it,
//! under /var/run/dpdk/PREFIX, removed at the end).

use std::time::Duration;

use rte::telemetry::{self, limits, Dict, Value};
use rte::Eal;
use serde_json::{json, Value as Json};

/// A client of the telemetry socket (SOCK_SEQPACKET, which std lacks).
struct Client(libc::c_int);

impl Client {
    fn connect(path: &str) -> Client {
        // SAFETY: plain socket calls on a zeroed sockaddr_un whose path
        // fits (checked); the fd is closed on drop.
        unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0);
            assert!(fd >= 0, "socket");
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            assert!(path.len() < addr.sun_path.len());
            for (d, s) in addr.sun_path.iter_mut().zip(path.bytes()) {
                *d = s as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            let ret = libc::connect(fd, std::ptr::addr_of!(addr).cast(), len);
            assert_eq!(
                ret,
                0,
                "connect {path}: {}",
                std::io::Error::last_os_error()
            );
            let tv = libc::timeval {
                tv_sec: 10,
                tv_usec: 0,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
            Client(fd)
        }
    }

    fn recv(&self) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n > 0, "recv: {}", std::io::Error::last_os_error());
        buf.truncate(n as usize);
        String::from_utf8(buf).expect("telemetry sends UTF-8")
    }

    /// Sends `line` (a command, optionally `,PARAM`) and returns the value
    /// under the command's name, and the raw reply.
    fn ask(&self, line: &str) -> (Json, String) {
        // SAFETY: the bytes are valid for their length.
        let n = unsafe { libc::send(self.0, line.as_ptr().cast(), line.len(), 0) };
        assert_eq!(n, line.len() as isize);
        let raw = self.recv();
        let reply: Json = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
        let cmd = line.split(',').next().unwrap();
        (reply[cmd].clone(), raw)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: our own fd, closed once.
        unsafe { libc::close(self.0) };
    }
}

fn tree() -> Value {
    Value::Dict(
        Dict::new()
            .with("u", u64::MAX)
            .with("i", -7)
            .with("s", "quote \" backslash \\ tab\t é")
            .with("list", vec![1u64, 2, 3])
            .with("names", vec!["a", "b"])
            .with(
                "inner",
                Dict::new()
                    .with("x", 1u64)
                    .with("deeper", Dict::new().with("y", 2u64)),
            ),
    )
}

#[test]
fn commands_answer_through_dpdks_telemetry_socket() {
    sweep_stale_runtime_dirs();
    let prefix = format!("rte-teltest-{}", std::process::id());
    let eal = Eal::init(&[
        "-l",
        "0",
        "--no-huge",
        "-m",
        "64",
        "--no-shconf",
        "--no-pci",
        "--log-level=lib.eal:error",
        &format!("--file-prefix={prefix}"),
    ])
    .expect("EAL init");
    let dir = format!("/var/run/dpdk/{prefix}");
    let _cleanup = RemoveDir(dir.clone());

    telemetry::register("/t/tree", "a tree of every kind", |_| tree()).unwrap();
    telemetry::register("/t/param", "echoes its parameter", |p| {
        Value::Dict(Dict::new().with("param", p.unwrap_or("(none)")))
    })
    .unwrap();
    telemetry::register("/t/panic", "panics", |_| panic!("on purpose")).unwrap();
    telemetry::register("/t/big", "more than 16 KiB", |_| {
        Value::Dict((0..250).fold(Dict::new(), |d, i| {
            d.with(&format!("k{i}"), "x".repeat(100))
        }))
    })
    .unwrap();
    telemetry::register("/t/string", "one string", |_| Value::from("just this")).unwrap();
    telemetry::register("/t/arrays", "arrays of arrays", |_| {
        Value::Array(vec![Value::from(vec![1u64, 2]), Value::from(vec![3u64])])
    })
    .unwrap();
    // Registering again replaces the handler (no second DPDK entry).
    telemetry::register("/t/string", "one string", |_| Value::from("this instead")).unwrap();
    for bad in ["t/x", "/t-x", &format!("/{}", "a".repeat(limits::COMMAND))] {
        assert!(
            telemetry::register(bad, "", |_| Value::from("")).is_err(),
            "{bad}"
        );
    }
    assert!(telemetry::register("/t/help", &"h".repeat(128), |_| Value::from("")).is_err());

    let client = Client::connect(&format!("{dir}/dpdk_telemetry.v2"));
    let hello: Json = serde_json::from_str(&client.recv()).unwrap();
    assert_eq!(hello["max_output_len"], limits::OUTPUT);

    let (v, _) = client.ask("/t/tree");
    assert_eq!(
        v,
        json!({
            "u": u64::MAX, "i": -7,
            // The tab and the é are not sent as they are (DPDK 22.11 would
            // drop the one and mis-read the other).
            "s": "quote \" backslash \\ tab? ?",
            "list": [1, 2, 3], "names": ["a", "b"],
            "inner": {"x": 1, "deeper": {"y": 2}},
        })
    );
    // What the trampoline sends is what `reply` says it sends.
    let (_, raw) = client.ask("/t/tree");
    assert_eq!(raw, telemetry::reply("/t/tree", tree()));

    assert_eq!(client.ask("/t/param,page=3").0, json!({"param": "page=3"}));
    assert_eq!(client.ask("/t/param").0, json!({"param": "(none)"}));
    assert_eq!(client.ask("/t/string").0, json!("this instead"));
    assert_eq!(client.ask("/t/arrays").0, json!([[1, 2], [3]]));

    let (v, _) = client.ask("/t/panic");
    assert!(v["error"].as_str().unwrap().contains("panicked"), "{v}");
    // The telemetry thread survived the panic.
    let (v, raw) = client.ask("/t/big");
    // Without the check DPDK sends the first 149 entries as if they were
    // all.
    let why = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error ({} bytes): {:.300}", raw.len(), raw));
    assert!(why.contains("16 KiB") || why.contains("at most"), "{why}");
    assert_eq!(client.ask("/t/string").0, json!("this instead"));

    // DPDK lists each command once, with its help.
    let (list, _) = client.ask("/");
    let ours: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .filter(|c| c.starts_with("/t/"))
        .collect();
    assert_eq!(
        ours,
        [
            "/t/arrays",
            "/t/big",
            "/t/panic",
            "/t/param",
            "/t/string",
            "/t/tree"
        ]
    );
    assert_eq!(
        client.ask("/help,/t/big").0,
        json!({"/t/big": "more than 16 KiB"})
    );

    drop(client);
    std::thread::sleep(Duration::from_millis(10));
    drop(eal);
}

/// The runtime directory, removed even when the test fails.
struct RemoveDir(String);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runtime directories of earlier runs whose process is gone (killed
/// before it could remove its own).
fn sweep_stale_runtime_dirs() {
    let Ok(entries) = std::fs::read_dir("/var/run/dpdk") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("rte-teltest-") else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
