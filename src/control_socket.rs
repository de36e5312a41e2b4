//! The control socket's transport (docs/api.md): a root-only Unix socket
//! whose clients send one JSON request per line and get one response per
//! line.
//!
//! Everything here runs off the workers: one thread accepts, one thread
//! per connection (at most [`Limits::connections`]) reads, checks and
//! parses requests, and hands the valid ones to the control loop through
//! a bounded queue ([`ControlSocket::take`]); the control loop applies them
//! one at a time and answers through [`Pending::answer`]. What the
//! transport can answer itself (too large, not JSON, another version, not
//! allowed, busy) never reaches the control loop.

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::logs::Throttle;
use ctl::api::{ApiError, ErrorCode, Request, Response, MAX_REQUEST, VERSION};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::sys::stat::{umask, Mode};
use serde_json::Value;
use tracing::{debug, info, warn};

/// Held while the process umask is narrowed for a bind.
static UMASK: Mutex<()> = Mutex::new(());

/// The bounds of the transport; [`Limits::default`] is what the daemon
/// uses, tests shorten the times.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; one more is answered
    /// [`ErrorCode::Unavailable`] and closed.
    pub connections: usize,
    /// Requests waiting for the control loop; one more is answered
    /// [`ErrorCode::Unavailable`].
    pub queue: usize,
    /// A connection whose next request has not arrived whole this long
    /// after the previous answer (or after it connected) is closed, so
    /// that a stuck client, or one that trickles a byte at a time, does
    /// not hold a slot for ever; also how long writing one response may
    /// take.
    pub idle: Duration,
    /// How long a request may wait for the control loop's answer before
    /// the client is told [`ErrorCode::Unavailable`].
    pub answer: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 16,
            queue: 64,
            idle: Duration::from_secs(60),
            answer: Duration::from_secs(10),
        }
    }
}

/// A valid request waiting for the control loop.
pub struct Pending {
    pub request: Request,
    reply: SyncSender<Response>,
}

impl Pending {
    /// Sends `response` to the client that asked (its `id` is set to the
    /// request's). A client that gave up waiting is not an error.
    pub fn answer(self, mut response: Response) {
        response.id = self.request.id;
        let _ = self.reply.try_send(response);
    }
}

/// The listening socket; the socket file is removed when it is dropped.
pub struct ControlSocket {
    path: PathBuf,
    /// The socket file's device and inode, so that `Drop` removes only the
    /// file this process made.
    file: (u64, u64),
    queue: Receiver<Pending>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// Why the socket could not be set up; every message names the path.
#[derive(Debug)]
pub struct BindError(pub String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BindError {}

impl ControlSocket {
    /// Listens on `path`: its directory private to tgw's user, the socket
    /// 0600, a stale socket from a dead tgw replaced, a live one refused.
    pub fn bind(path: &Path, limits: Limits) -> Result<ControlSocket, BindError> {
        let shown = path.display();
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            BindError(format!("control socket {shown}: {what}: {e}"))
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or_else(|| BindError(format!("control socket {shown}: not an absolute path")))?;
        private_directory(dir).map_err(|e| fail("its directory", &e))?;
        clear_stale(path)?;

        // The socket is created with the process umask: narrow it while
        // binding so that no client can connect before the chmod. The
        // umask is the process's: two binds at once (tests) must not
        // restore each other's.
        let bound = {
            let _one = UMASK.lock().unwrap_or_else(|e| e.into_inner());
            let old = umask(Mode::from_bits_truncate(0o177));
            let bound = UnixListener::bind(path);
            umask(old);
            bound
        };
        let listener = bound.map_err(|e| fail("cannot listen", &e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("cannot make it 0600", &e))?;
        let meta = fs::symlink_metadata(path).map_err(|e| fail("cannot stat it", &e))?;

        let (sender, queue) = mpsc::sync_channel(limits.queue);
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("tgw-ctl-accept".into())
                .spawn(move || accept(listener, sender, limits, &stop))
                .map_err(|e| fail("cannot start its thread", &e))?
        };
        Ok(ControlSocket {
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            queue,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The next request for the control loop, if one waits; never blocks.
    pub fn take(&self) -> Option<Pending> {
        self.queue.try_recv().ok()
    }

    /// Answers the requests that wait with `handle` until none is left or
    /// `budget` has passed (one at least), so that the control loop's
    /// other work (the resolver's punts and timers, metrics, the
    /// watchdogs, the stop check) runs in between; how many it answered.
    /// A client sends its next request as soon as it has its answer, so
    /// with two busy clients the queue never empties: drained whole, it
    /// held the control loop for as long as they kept asking.
    pub fn serve(&self, budget: Duration, mut handle: impl FnMut(&Request) -> Response) -> usize {
        let until = Instant::now() + budget;
        let mut answered = 0;
        while let Some(pending) = self.take() {
            let response = handle(&pending.request);
            pending.answer(response);
            answered += 1;
            if Instant::now() >= until {
                break;
            }
        }
        answered
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The acceptor sleeps in accept(): a connection wakes it to see
        // `stop`. If none can be made it is left to end with the process.
        if UnixStream::connect(&self.path).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The socket's directory: made 0700 if missing; an existing one must be
/// tgw's user's and writable by no one else, or another user could swap
/// the socket for their own.
fn private_directory(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // The umask may have taken bits from 0700; it must be exactly
            // that, or tgw's own user cannot enter it.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
        Ok(meta) => {
            let euid = nix::unistd::geteuid().as_raw();
            if !meta.is_dir() {
                Err(io::Error::other(format!(
                    "{} is not a directory",
                    dir.display()
                )))
            } else if meta.uid() != euid {
                Err(io::Error::other(format!(
                    "{} belongs to uid {}, not to tgw's uid {euid}; remove it or chown it",
                    dir.display(),
                    meta.uid()
                )))
            } else if meta.mode() & 0o022 != 0 {
                Err(io::Error::other(format!(
                    "{} is writable by group or others (mode {:o}); chmod go-w it",
                    dir.display(),
                    meta.mode() & 0o7777
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// Removes a socket file nobody listens on (a tgw that died); refuses a
/// live one (another tgw) and anything that is not a socket.
fn clear_stale(path: &Path) -> Result<(), BindError> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BindError(format!("control socket {shown}: {e}"))),
        Ok(meta) => meta,
    };
    if !meta.file_type().is_socket() {
        return Err(BindError(format!(
            "control socket {shown}: exists and is not a socket; remove it or set [control] socket"
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(BindError(format!(
            "control socket {shown}: another tgw is listening on it; stop it, or give this one its own [eal] file_prefix or [control] socket"
        ))),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            debug!("control socket {shown}: removing the stale socket of a tgw that is gone");
            fs::remove_file(path)
                .map_err(|e| BindError(format!("control socket {shown}: cannot remove the stale socket: {e}")))
        }
        Err(e) => Err(BindError(format!("control socket {shown}: {e}"))),
    }
}

/// The acceptor: checks each client and gives it a thread of its own, or
/// refuses it.
fn accept(listener: UnixListener, queue: SyncSender<Pending>, limits: Limits, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    // A client can cause each of these as often as it connects.
    let mut failing = Throttle::per_minute();
    let mut refusing = Throttle::per_minute();
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, say: do not spin on it.
                if let Some(suppressed) = failing.admit(Instant::now()) {
                    warn!(suppressed, "control socket: accept: {e}");
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // A refusal is one short line into an empty socket buffer; the
        // timeout only guards against the impossible.
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        if let Err(refusal) = peer_allowed(&stream) {
            refuse(&mut stream, refusal, &mut refusing);
            continue;
        }
        if active.load(Ordering::Acquire) >= limits.connections {
            refuse(
                &mut stream,
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "{} clients are connected already; retry later",
                        limits.connections
                    ),
                ),
                &mut refusing,
            );
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(&active));
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("tgw-ctl-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(stream, &queue, limits);
            });
        if let Err(e) = spawned {
            if let Some(suppressed) = failing.admit(Instant::now()) {
                warn!(
                    suppressed,
                    "control socket: cannot start a connection thread: {e}"
                );
            }
        }
    }
}

/// A connection's place among [`Limits::connections`], given back when
/// its thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Only root and tgw's own user may drive tgw: the socket's mode says so
/// too, this holds even if someone loosens it.
fn peer_allowed(stream: &UnixStream) -> Result<(), ApiError> {
    let uid = getsockopt(stream, PeerCredentials)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Permission,
                format!("cannot tell who you are: {e}"),
            )
        })?
        .uid();
    let euid = nix::unistd::geteuid().as_raw();
    if uid == 0 || uid == euid {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Permission,
            format!("uid {uid} may not use the control socket: run as root"),
        ))
    }
}

fn refuse(stream: &mut UnixStream, error: ApiError, throttle: &mut Throttle) {
    if let Some(suppressed) = throttle.admit(Instant::now()) {
        info!(suppressed, "control socket: refused a client: {error}");
    }
    let _ = send(stream, &Response::err(None, error));
}

fn send(stream: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// One client: requests read one line at a time, each answered before the
/// next is read.
fn serve(stream: UnixStream, queue: &SyncSender<Pending>, limits: Limits) {
    // Reads are timed against each request's deadline (`Deadlined`).
    if stream.set_write_timeout(Some(limits.idle)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(Deadlined {
        stream,
        deadline: Instant::now(),
    });
    let mut line = Vec::new();
    loop {
        line.clear();
        reader.get_mut().deadline = Instant::now() + limits.idle;
        match read_line(&mut reader, &mut line) {
            Ok(Line::End) => return,
            Ok(Line::Blank) => continue,
            Ok(Line::TooLong) => {
                let error = ApiError::new(
                    ErrorCode::TooLarge,
                    format!("a request may be at most {MAX_REQUEST} bytes with its newline"),
                );
                let _ = send(&mut writer, &Response::err(None, error));
                return;
            }
            Ok(Line::Request) => {}
            Err(e) => {
                // The idle time over, or the client went away.
                debug!("control socket: connection closed: {e}");
                return;
            }
        }
        let (response, close) = match parse(&line) {
            Ok(request) => (submit(request, queue, limits), false),
            // Whoever sent that is not speaking this protocol: what it
            // sends next means nothing either.
            Err((id, error)) => (Response::err(id, error), true),
        };
        if send(&mut writer, &response).is_err() || close {
            return;
        }
    }
}

/// A client's stream read against a deadline for the whole of a request:
/// the socket's own timeout is per read, so a client that sent a byte
/// just inside it each time kept its slot for as long as it went on.
struct Deadlined {
    stream: UnixStream,
    deadline: Instant,
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "the request did not arrive whole within the idle time",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

enum Line {
    Request,
    Blank,
    TooLong,
    End,
}

/// Reads one line into `line` (without its newline), never more than
/// [`MAX_REQUEST`] bytes of it: a longer one is not read further.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Line> {
    let n = reader
        .by_ref()
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', line)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if n == MAX_REQUEST {
        return Ok(Line::TooLong);
    }
    // Otherwise the client ended its last request with the connection
    // instead of a newline: it is still a request.
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Line::Blank);
    }
    Ok(Line::Request)
}

/// A request, or the refusal to send (with the request's id when it had
/// one to echo).
fn parse(line: &[u8]) -> Result<Request, (Option<u64>, ApiError)> {
    let bad = |e: serde_json::Error| ApiError::new(ErrorCode::BadRequest, e.to_string());
    let value: Value = serde_json::from_slice(line).map_err(|e| (None, bad(e)))?;
    let id = value.get("id").and_then(Value::as_u64);
    // The version first: a newer client's request may hold ops this
    // build has never heard of, and "unknown op" would mislead.
    match value.get("version") {
        Some(v) if v.as_u64() != Some(u64::from(VERSION)) => {
            let error = ApiError::new(
                ErrorCode::UnsupportedVersion,
                format!("this tgw speaks version {VERSION} of the control protocol, the request is version {v}"),
            )
            .field("version");
            return Err((id, error));
        }
        _ => {}
    }
    serde_json::from_value(value).map_err(|e| (id, bad(e)))
}

/// Hands `request` to the control loop and waits for its answer.
fn submit(request: Request, queue: &SyncSender<Pending>, limits: Limits) -> Response {
    let id = request.id;
    let busy = |message: &str| Response::err(id, ApiError::new(ErrorCode::Unavailable, message));
    let (reply, answer) = mpsc::sync_channel(1);
    match queue.try_send(Pending { request, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return busy("tgw has too many requests waiting; retry");
        }
        Err(TrySendError::Disconnected(_)) => return busy("tgw is stopping"),
    }
    match answer.recv_timeout(limits.answer) {
        Ok(response) => response,
        Err(RecvTimeoutError::Timeout) => busy(&format!(
            "tgw did not answer within {} s; the request may still be applied: check before retrying",
            limits.answer.as_secs_f32()
        )),
        Err(RecvTimeoutError::Disconnected) => Response::err(
            id,
            ApiError::new(ErrorCode::Internal, "the request was dropped unanswered"),
        ),
    }
}
