//! The control socket's transport on a real Unix socket: who may connect,
//! what it answers by itself (too large, garbage, another version, busy),
//! how many clients it serves, and the socket file's life. A handler
//! thread stands in for the control loop and echoes each request's op.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ctl::api::{ErrorCode, Op, Request, Response, MAX_REQUEST, VERSION};
use serde_json::json;
use tgw::control_socket::{ControlSocket, Limits};

/// A scratch directory under /tmp (readable by all, so that a child of
/// another uid can reach into it), removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tgw-cs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    /// A socket path inside a directory that `bind` will make.
    fn socket(&self) -> PathBuf {
        self.0.join("run").join("tgw.sock")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn quick() -> Limits {
    Limits {
        answer: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// A bound socket and a thread in the control loop's place that answers
/// every request with its op's name; both end on drop.
struct Server {
    stop: Arc<AtomicBool>,
    handler: Option<JoinHandle<()>>,
}

impl Server {
    fn start(path: &Path, limits: Limits) -> Server {
        let socket = ControlSocket::bind(path, limits).expect("bind");
        Server::answering(socket)
    }

    fn answering(socket: ControlSocket) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let handler = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match socket.take() {
                        Some(pending) => {
                            let op =
                                serde_json::to_value(&pending.request.op).unwrap()["op"].clone();
                            pending.answer(Response::ok(None, json!({ "op": op })));
                        }
                        None => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                drop(socket);
            })
        };
        Server {
            stop,
            handler: Some(handler),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handler.take() {
            let _ = h.join();
        }
    }
}

/// A raw client: bytes out, response lines in.
struct Raw {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let stream = UnixStream::connect(path).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        // A refused client may find the socket closed before it wrote:
        // the answer is read all the same.
        let _ = self.writer.write_all(bytes);
    }

    fn request(&mut self, op: Op, id: Option<u64>) -> Response {
        let mut request = Request::new(op);
        request.id = id;
        let mut line = serde_json::to_vec(&request).unwrap();
        line.push(b'\n');
        self.send(&line);
        self.response()
    }

    fn response(&mut self) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a response line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Whether tgw closed the connection: the next read ends (EOF, or a
    /// reset when it closed with our bytes unread).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }
}

fn code(response: &Response) -> ErrorCode {
    assert!(!response.ok, "{response:?}");
    response.error.as_ref().expect("an error").code
}

fn stats() -> Op {
    Op::Stats {}
}

#[test]
fn the_socket_is_0600_in_a_0700_directory_and_gone_after_stop() {
    let scratch = Scratch::new("modes");
    let path = scratch.socket();
    // A permissive umask must not widen the socket even for a moment.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let server = Server::start(&path, quick());
    nix::sys::stat::umask(old);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert!(Raw::connect(&path).request(stats(), None).ok);
    drop(server);
    assert!(!path.exists(), "the socket outlived tgw");

    // A narrow umask must not leave the directory without its x bit.
    let path = scratch.0.join("narrow").join("tgw.sock");
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let socket = ControlSocket::bind(&path, quick());
    nix::sys::stat::umask(old);
    let _server = Server::answering(socket.expect("bind"));
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn an_unsafe_directory_is_refused() {
    let scratch = Scratch::new("dir");
    let path = scratch.socket();
    let dir = path.parent().unwrap();
    std::fs::create_dir(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = ControlSocket::bind(&path, quick()).err().expect("refused");
    assert!(e.0.contains("writable by group or others"), "{e}");
    assert!(e.0.contains(&path.display().to_string()), "{e}");
    assert!(!path.exists());

    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
        let e = ControlSocket::bind(&path, quick()).err().expect("refused");
        assert!(e.0.contains("belongs to uid 65534"), "{e}");
    }
}

/// What [`child_client`] prints when run as another user.
fn run_as_nobody(path: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_client", "--nocapture", "--test-threads=1"])
        .env("TGW_CS_CHILD", path)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, said)| said))
        .unwrap_or_else(|| panic!("child said nothing: {out:?}"))
        .to_owned()
}

/// Not a test on its own: the client half of
/// `a_client_of_another_user_is_refused`, run in a child process of uid
/// 65534.
#[test]
fn child_client() {
    let Some(path) = std::env::var_os("TGW_CS_CHILD") else {
        return;
    };
    let result = match UnixStream::connect(&path) {
        Err(e) => format!("connect {:?}", e.kind()),
        Ok(stream) => {
            let mut line = serde_json::to_vec(&Request::new(stats())).unwrap();
            line.push(b'\n');
            let _ = (&stream).write_all(&line);
            let mut answer = String::new();
            let _ = BufReader::new(stream).read_line(&mut answer);
            answer.trim().to_owned()
        }
    };
    println!("\nCHILD {result}");
}

#[test]
fn a_client_of_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as uid 65534");
        return;
    }
    let scratch = Scratch::new("peer");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    // The file modes keep it out first.
    assert_eq!(run_as_nobody(&path), "connect PermissionDenied");
    // Loosened by hand, the modes let it connect: the peer check still
    // refuses it.
    std::fs::set_permissions(
        path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer: Response = serde_json::from_str(&run_as_nobody(&path)).expect("a response");
    assert_eq!(code(&answer), ErrorCode::Permission);
    assert!(answer.error.unwrap().message.contains("uid 65534"));
    // Root still gets through.
    assert!(Raw::connect(&path).request(stats(), Some(1)).ok);
}

#[test]
fn requests_on_one_connection_are_answered_in_turn_with_their_ids() {
    let scratch = Scratch::new("turns");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    let mut c = Raw::connect(&path);
    let r = c.request(Op::TenantShow { name: None }, Some(7));
    assert!(r.ok, "{r:?}");
    assert_eq!(r.id, Some(7));
    assert_eq!(r.version, VERSION);
    assert_eq!(r.result, json!({"op": "tenant.show"}));
    // Two requests in one write, and blank lines between: two answers.
    c.send(b"{\"version\":1,\"id\":8,\"op\":\"stats\",\"args\":{}}\n\n{\"version\":1,\"id\":9,\"op\":\"config.show\",\"args\":{}}\n");
    let (a, b) = (c.response(), c.response());
    assert_eq!((a.id, b.id), (Some(8), Some(9)));
    assert_eq!(b.result, json!({"op": "config.show"}));
    // The last request may end with the client's sending side instead of
    // a newline (`printf '%s' ... | socat`).
    let mut c = Raw::connect(&path);
    c.send(b"{\"version\":1,\"id\":10,\"op\":\"stats\",\"args\":{}}");
    c.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.response().id, Some(10));
    assert!(c.closed());
}

#[test]
fn a_request_too_large_is_refused_without_being_read_whole() {
    let scratch = Scratch::new("large");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    let mut c = Raw::connect(&path);
    // Sixteen times the limit, no newline: tgw must stop reading at the
    // limit, answer and close, so that the writer is cut off early.
    let mut writer = c.writer.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0usize;
        while sent < 16 * MAX_REQUEST {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let r = c.response();
    assert_eq!(code(&r), ErrorCode::TooLarge);
    assert!(r.error.unwrap().message.contains(&MAX_REQUEST.to_string()));
    let sent = sender.join().unwrap();
    assert!(
        sent < 2 * MAX_REQUEST,
        "tgw kept reading: {sent} bytes taken"
    );
    assert!(c.closed());

    // Exactly at the limit, newline included, is still a request.
    let mut c = Raw::connect(&path);
    let request = serde_json::to_vec(&Request::new(stats())).unwrap();
    let mut line = request.clone();
    line.resize(MAX_REQUEST - 1, b' ');
    line.push(b'\n');
    c.send(&line);
    assert!(c.response().ok);
}

#[test]
fn garbage_is_a_bad_request_naming_what_serde_saw() {
    let scratch = Scratch::new("garbage");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    for (line, fragment) in [
        (&b"\xff\xfe\x00garbage\n"[..], "expected value"),
        (b"{\"version\":1,\"op\":\"stats\"\n", "EOF"),
        (
            b"{\"version\":1,\"op\":\"tenant.frob\",\"args\":{}}\n",
            "unknown variant `tenant.frob`",
        ),
        (
            b"{\"version\":1,\"op\":\"tenant.del\",\"args\":{\"name\":\"a\",\"force\":true}}\n",
            "unknown field `force`",
        ),
        (
            b"{\"version\":1,\"id\":3,\"op\":\"stats\",\"args\":{},\"extra\":1}\n",
            "unknown field",
        ),
        (
            b"{\"op\":\"stats\",\"args\":{}}\n",
            "missing field `version`",
        ),
        (
            b"{\"version\":1,\"op\":\"tenant.show\",\"args\":{\"name\":\"\xc3\x28\"}}\n",
            "unicode",
        ),
    ] {
        let mut c = Raw::connect(&path);
        c.send(line);
        let r = c.response();
        assert_eq!(code(&r), ErrorCode::BadRequest, "{line:?}");
        let message = r.error.unwrap().message;
        assert!(message.contains(fragment), "{line:?}: {message}");
        assert!(c.closed(), "{line:?}: the connection stayed open");
    }
}

#[test]
fn another_version_is_refused_before_its_op_is_read() {
    let scratch = Scratch::new("version");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    let mut c = Raw::connect(&path);
    c.send(b"{\"version\":2,\"id\":5,\"op\":\"tenant.teleport\",\"args\":{}}\n");
    let r = c.response();
    assert_eq!(code(&r), ErrorCode::UnsupportedVersion);
    assert_eq!(r.id, Some(5));
    let e = r.error.unwrap();
    assert_eq!(e.field.as_deref(), Some("version"));
    assert!(
        e.message.contains("version 1") && e.message.contains("version 2"),
        "{}",
        e.message
    );
    assert!(c.closed());
}

#[test]
fn sixteen_clients_are_served_and_the_seventeenth_is_told_to_retry() {
    let scratch = Scratch::new("many");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    let mut clients: Vec<Raw> = (0..16).map(|_| Raw::connect(&path)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(c.request(stats(), Some(i as u64)).ok);
    }
    let mut extra = Raw::connect(&path);
    extra.send(b"{\"version\":1,\"op\":\"stats\",\"args\":{}}\n");
    assert_eq!(code(&extra.response()), ErrorCode::Unavailable);
    assert!(extra.closed());
    // A slot given back is taken again (the thread ends soon after the
    // client hangs up: poll for it, boundedly).
    drop(clients.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = Raw::connect(&path).request(stats(), None);
        if r.ok {
            break;
        }
        assert_eq!(code(&r), ErrorCode::Unavailable);
        assert!(Instant::now() < deadline, "the slot was never given back");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The others were never disturbed.
    assert!(clients[0].request(stats(), None).ok);
}

#[test]
fn an_idle_client_loses_its_slot() {
    let scratch = Scratch::new("idle");
    let path = scratch.socket();
    let limits = Limits {
        connections: 1,
        idle: Duration::from_millis(200),
        ..quick()
    };
    let _server = Server::start(&path, limits);
    let mut silent = Raw::connect(&path);
    // Said nothing: closed after the idle time, and the slot is free.
    let start = Instant::now();
    assert!(silent.closed());
    assert!(start.elapsed() < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(50));
    assert!(Raw::connect(&path).request(stats(), None).ok);
}

/// A client that sends its request a byte at a time, each just inside
/// the idle time, is closed once the request has taken the idle time in
/// all: the socket's timeout is per read, and alone it let such a client
/// keep its slot for as long as it went on.
#[test]
fn a_client_trickling_its_request_loses_its_slot() {
    let scratch = Scratch::new("trickle");
    let path = scratch.socket();
    let limits = Limits {
        connections: 1,
        idle: Duration::from_millis(300),
        ..quick()
    };
    let _server = Server::start(&path, limits);
    let mut slow = Raw::connect(&path);
    let mut writer = slow.writer.try_clone().unwrap();
    // A byte every 50 ms for at most 4 s: the request never ends.
    let trickle = std::thread::spawn(move || {
        for _ in 0..80 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let start = Instant::now();
    assert!(slow.closed());
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "a trickling client kept its slot for {took:?} (idle 300 ms)"
    );
    trickle.join().unwrap();
    assert!(Raw::connect(&path).request(stats(), None).ok);
}

/// Two clients that ask again as soon as they are answered keep the
/// queue from ever emptying. The control loop answers them for its
/// budget and goes on with the rest of its round; drained whole, the
/// queue held it for as many of the clients' requests as came (here up
/// to 2 x 100 at 2 ms each), and with it the resolver, the metrics, the
/// watchdogs and the stop check.
#[test]
fn busy_clients_get_a_budget_of_the_control_loop_not_all_of_it() {
    let scratch = Scratch::new("budget");
    let path = scratch.socket();
    let socket = ControlSocket::bind(&path, quick()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut c = Raw::connect(&path);
                for _ in 0..100 {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    assert!(c.request(stats(), None).ok);
                }
            })
        })
        .collect();
    let slow = |_: &Request| {
        std::thread::sleep(Duration::from_millis(2));
        Response::ok(None, json!({}))
    };
    // The first request answered by hand: the clients are asking.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(p) = socket.take() {
            break p;
        }
        assert!(Instant::now() < deadline, "no client asked");
        std::thread::sleep(Duration::from_millis(1));
    };
    first.answer(Response::ok(None, json!({})));
    let start = Instant::now();
    let answered = socket.serve(Duration::from_millis(20), slow);
    let took = start.elapsed();
    assert!(answered >= 2, "{answered}");
    assert!(
        took < Duration::from_millis(150),
        "{answered} answered in {took:?}"
    );
    // The clients were still asking: they end once told to.
    stop.store(true, Ordering::Release);
    while !clients.iter().all(|c| c.is_finished()) {
        assert!(Instant::now() < deadline, "the clients did not end");
        socket.serve(Duration::from_millis(5), slow);
        std::thread::sleep(Duration::from_millis(1));
    }
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_full_queue_and_a_silent_control_loop_are_unavailable_not_a_hang() {
    let scratch = Scratch::new("queue");
    let path = scratch.socket();
    let limits = Limits {
        queue: 1,
        answer: Duration::from_millis(500),
        ..Limits::default()
    };
    // Bound, but nobody takes the requests.
    let socket = ControlSocket::bind(&path, limits).unwrap();
    let mut first = Raw::connect(&path);
    first.send(b"{\"version\":1,\"id\":1,\"op\":\"stats\",\"args\":{}}\n");
    std::thread::sleep(Duration::from_millis(100));
    // The queue holds the first: the second is turned away at once.
    let start = Instant::now();
    let r = Raw::connect(&path).request(stats(), Some(2));
    assert_eq!(code(&r), ErrorCode::Unavailable);
    assert!(r.error.unwrap().message.contains("too many requests"));
    assert!(start.elapsed() < Duration::from_millis(400));
    // The first waited its time and was told so.
    let r = first.response();
    assert_eq!(code(&r), ErrorCode::Unavailable);
    assert_eq!(r.id, Some(1));
    assert!(r.error.unwrap().message.contains("did not answer"));
    // The control loop takes it late: the answer goes nowhere, harmlessly.
    socket
        .take()
        .expect("still queued")
        .answer(Response::ok(None, json!({})));
    assert!(socket.take().is_none());
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let scratch = Scratch::new("stale");
    let path = scratch.socket();
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    // A tgw that died left its socket behind.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let _server = Server::start(&path, quick());
    assert!(Raw::connect(&path).request(stats(), None).ok);

    // A second tgw on the same path is refused, naming it, and the first
    // goes on.
    let e = ControlSocket::bind(&path, quick()).err().expect("refused");
    assert!(e.0.contains("another tgw is listening"), "{e}");
    assert!(e.0.contains(&path.display().to_string()), "{e}");
    assert!(Raw::connect(&path).request(stats(), None).ok);
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let scratch = Scratch::new("file");
    let path = scratch.socket();
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(&path, "precious").unwrap();
    let e = ControlSocket::bind(&path, quick()).err().expect("refused");
    assert!(e.0.contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn ctl_client_speaks_to_the_real_socket_even_when_refused_mid_request() {
    let scratch = Scratch::new("client");
    let path = scratch.socket();
    let _server = Server::start(&path, quick());
    let mut client = ctl::client::Client::connect(&path).expect("connect");
    let result = client
        .call(Op::TenantShow { name: None })
        .expect("answered");
    assert_eq!(result, json!({"op": "tenant.show"}));
    assert_eq!(client.call(stats()).unwrap(), json!({"op": "stats"}));
    // A config too large: tgw stops reading, answers and hangs up while
    // the client is still writing; the client still reads why.
    let error = client
        .call(Op::ConfigApply {
            text: "#".repeat(MAX_REQUEST + (1 << 20)),
            file: "big.toml".into(),
            dry_run: true,
        })
        .expect_err("too large");
    assert_eq!(error.code, ErrorCode::TooLarge, "{error}");
}
