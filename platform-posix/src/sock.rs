//! Unix sockets: addresses, creation, waiting with a deadline.
//!
//! `SOCK_SEQPACKET` (memfd backend) keeps message boundaries (a handshake
//! is one message, so a truncated or oversized one is detected);
//! `SOCK_STREAM` (shm backend; macOS has no Unix seqpacket) is read to the
//! handshake's fixed length, and one byte more is refused. Both report
//! end-of-file when the peer closes. Every socket is close-on-exec and
//! non-blocking ([`Os::socket`]); blocking is done with `poll` against a deadline. Reference: unix(7), poll(2).

use crate::cancel::CancelToken;
use crate::conn::LIVENESS_SLICE;
use crate::error::{Error, Result};
use crate::region::Backend;
use crate::Os;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{SocketAddrUnix, SocketType};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a listener listens.
///
/// From a string: a leading `@` names a Linux abstract socket (`"@memtube-demo"`:
/// no file, gone with the listener; [`Error::Unsupported`] on macOS); anything
/// else is a file-system path (at most 103 bytes on macOS, 107 on Linux:
/// [`Error::PathTooLong`] otherwise).
///
/// ```
/// use memtube_posix::Addr;
/// assert_eq!(Addr::from("@demo"), Addr::Abstract(b"demo".to_vec()));
/// assert_eq!(Addr::from("/tmp/demo.sock"), Addr::Path("/tmp/demo.sock".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A socket file, created mode 0600.
    Path(PathBuf),
    /// A Linux abstract name (no file; the bytes after the leading NUL).
    Abstract(Vec<u8>),
}

/// A path as itself, an abstract name as `@name` (bytes that are not UTF-8
/// escaped), as `Addr::from` reads them.
impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Path(p) => write!(f, "{}", p.display()),
            Addr::Abstract(n) => write!(f, "@{}", n.escape_ascii()),
        }
    }
}

impl Addr {
    /// The socket address; [`Error::PathTooLong`] for a path that does not
    /// fit `sun_path` with its NUL, [`Error::Unsupported`] for an abstract
    /// name on macOS.
    pub(crate) fn sockaddr<O: Os>(&self) -> Result<SocketAddrUnix> {
        match self {
            Addr::Path(p) => {
                let len = p.as_os_str().len();
                let max = O::SUN_PATH_LEN - 1;
                if len > max {
                    return Err(Error::PathTooLong { len, max });
                }
                Ok(SocketAddrUnix::new(p.as_path())?)
            }
            Addr::Abstract(n) => O::abstract_addr(n),
        }
    }
}

impl From<&str> for Addr {
    fn from(s: &str) -> Self {
        match s.strip_prefix('@') {
            Some(name) => Addr::Abstract(name.as_bytes().to_vec()),
            None => Addr::Path(PathBuf::from(s)),
        }
    }
}

impl From<String> for Addr {
    fn from(s: String) -> Self {
        Addr::from(s.as_str())
    }
}

impl From<&Path> for Addr {
    fn from(p: &Path) -> Self {
        Addr::Path(p.to_path_buf())
    }
}

impl From<PathBuf> for Addr {
    fn from(p: PathBuf) -> Self {
        Addr::Path(p)
    }
}

impl From<&Addr> for Addr {
    fn from(a: &Addr) -> Self {
        a.clone()
    }
}

/// The socket type of a backend: `SOCK_SEQPACKET` with memfds,
/// `SOCK_STREAM` with shm (macOS has no Unix `SOCK_SEQPACKET`).
pub(crate) fn socket_type(b: Backend) -> SocketType {
    match b {
        Backend::Memfd => SocketType::SEQPACKET,
        _ => SocketType::STREAM,
    }
}

/// A new non-blocking, close-on-exec `AF_UNIX` socket of `ty`.
pub(crate) fn socket<O: Os>(ty: SocketType) -> Result<OwnedFd> {
    O::socket(ty)
}

/// `deadline` for a timeout counted from now (`None`: never).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Wait until `fd` is readable (or hung up), or fail with `Timeout` at
/// `deadline`, or with `Cancelled` within about [`LIVENESS_SLICE`] of
/// `cancel` being cancelled.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    cancel: Option<&CancelToken>,
) -> Result<()> {
    loop {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::Cancelled);
        }
        let mut left = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                Some(left)
            }
            None => None,
        };
        if cancel.is_some() {
            left = Some(left.map_or(LIVENESS_SLICE, |l| l.min(LIVENESS_SLICE)));
        }
        let timeout = left.map(|l| rustix::time::Timespec {
            tv_sec: i64::try_from(l.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: l.subsec_nanos().into(),
        });
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue, // loop re-checks the deadline and the token
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::Os(e)),
        }
    }
}
