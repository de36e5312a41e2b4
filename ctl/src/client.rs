//! A client of tgw's control socket (docs/api.md): `tgwctl` uses it, and
//! so can a controller written in Rust.
//!
//! ```no_run
//! let mut tgw = ctl::client::Client::connect(ctl::api::DEFAULT_SOCKET.as_ref())?;
//! let tenants = tgw.call(ctl::api::Op::TenantShow { name: None })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::api::{ApiError, ErrorCode, Op, Request, Response};

/// The longest response line read: a `config.show` of a large gateway
/// (1M global routes) fits; a longer line means the peer is not tgw.
pub const MAX_RESPONSE: usize = 256 << 20;

/// How long a response may take: longer than tgw's own wait for its
/// control loop (10 s), so that its `unavailable` arrives first.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why tgw could not be asked: it is not there, it may not be used, or
/// the connection broke. (A refusal by tgw is an [`ApiError`] instead.)
#[derive(Debug)]
pub struct ClientError {
    pub kind: ClientErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// Nothing listens at the path.
    NotRunning,
    /// The socket's or its directory's modes keep this user out.
    Permission,
    /// The connection failed, broke or timed out, or the answer was not a
    /// response.
    Transport,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, e.message)
    }
}

/// One connection to tgw; requests on it are answered in turn.
pub struct Client {
    path: PathBuf,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let shown = path.display();
        let stream = UnixStream::connect(path).map_err(|e| {
            let (kind, message) = match e.kind() {
                ErrorKind::PermissionDenied => (
                    ClientErrorKind::Permission,
                    format!("permission denied on {shown}: tgwctl must run as root"),
                ),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => (
                    ClientErrorKind::NotRunning,
                    format!(
                        "no tgw listening on {shown} (is it running? --socket / [control] socket)"
                    ),
                ),
                _ => (
                    ClientErrorKind::Transport,
                    format!("cannot connect to {shown}: {e}"),
                ),
            };
            ClientError { kind, message }
        })?;
        let transport = |e: io::Error| ClientError {
            kind: ClientErrorKind::Transport,
            message: format!("{shown}: {e}"),
        };
        stream
            .set_read_timeout(Some(RESPONSE_TIMEOUT))
            .map_err(transport)?;
        stream
            .set_write_timeout(Some(RESPONSE_TIMEOUT))
            .map_err(transport)?;
        let writer = stream.try_clone().map_err(transport)?;
        Ok(Client {
            path: path.to_owned(),
            writer,
            reader: BufReader::new(stream),
            next_id: 1,
        })
    }

    /// Asks for `op`: its result, or tgw's refusal. A broken connection is
    /// an [`ErrorCode::Unavailable`] naming the socket; use
    /// [`Client::request`] to tell the two apart.
    pub fn call(&mut self, op: Op) -> Result<Value, ApiError> {
        let response = self.request(op)?;
        match response.error {
            Some(error) => Err(error),
            None if response.ok => Ok(response.result),
            None => Err(ApiError::new(
                ErrorCode::Internal,
                "tgw refused the request without saying why",
            )),
        }
    }

    /// Sends `op` and reads tgw's response, whatever it says.
    pub fn request(&mut self, op: Op) -> Result<Response, ClientError> {
        let mut request = Request::new(op);
        request.id = Some(self.next_id);
        self.next_id += 1;
        let mut line = serde_json::to_vec(&request).map_err(|e| self.broken(e.into()))?;
        line.push(b'\n');
        // tgw may have refused the connection already (not allowed, too
        // many clients, a request too large) and closed it: its answer is
        // still there to read, and says more than EPIPE would.
        // A failed write shows as the read's error ("closed without
        // answering"), which says more than EPIPE.
        let _ = self.writer.write_all(&line);
        self.read_response().map_err(|e| self.broken(e))
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let hung_up = || {
            io::Error::new(
                ErrorKind::UnexpectedEof,
                "tgw closed the connection without answering",
            )
        };
        let mut line = Vec::new();
        let n = match (&mut self.reader)
            .take(MAX_RESPONSE as u64)
            .read_until(b'\n', &mut line)
        {
            // A reset is how a close with our request unread arrives.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(hung_up()),
            other => other?,
        };
        if n == 0 {
            return Err(hung_up());
        }
        if line.last() != Some(&b'\n') {
            let why = if n == MAX_RESPONSE {
                format!("a response longer than {MAX_RESPONSE} bytes")
            } else {
                "the connection closed in the middle of a response".to_owned()
            };
            return Err(io::Error::new(ErrorKind::InvalidData, why));
        }
        serde_json::from_slice(&line).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("not a response from tgw: {e}"),
            )
        })
    }

    fn broken(&self, e: io::Error) -> ClientError {
        let what = if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            format!("no answer within {} s", RESPONSE_TIMEOUT.as_secs())
        } else {
            e.to_string()
        };
        ClientError {
            kind: ClientErrorKind::Transport,
            message: format!("{}: {what}", self.path.display()),
        }
    }
}
