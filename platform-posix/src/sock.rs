//! Unix `SOCK_SEQPACKET` sockets: addresses, creation, waiting with a deadline.
//!
//! Sequenced packets keep message boundaries (a handshake is one message,
//! so a truncated or oversized one is detected) and report end-of-file when
//! the peer closes. Every socket is `SOCK_CLOEXEC | SOCK_NONBLOCK`; blocking
//! is done with `poll` against a deadline. Reference: unix(7), poll(2).

use crate::error::{Error, Result};
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a listener listens.
///
/// From a string: a leading `@` names a Linux abstract socket (`"@memtube-demo"`:
/// no file, gone with the listener); anything else is a file-system path.
///
/// ```
/// use platform_posix::Addr;
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

impl Addr {
    pub(crate) fn sockaddr(&self) -> Result<SocketAddrUnix> {
        Ok(match self {
            Addr::Path(p) => SocketAddrUnix::new(p.as_path())?,
            Addr::Abstract(n) => SocketAddrUnix::new_abstract_name(n)?,
        })
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

/// A new non-blocking, close-on-exec `AF_UNIX` `SOCK_SEQPACKET` socket.
pub(crate) fn seqpacket() -> Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// `deadline` for a timeout counted from now (`None`: never).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Wait until `fd` is readable (or hung up), or fail with `Timeout` at `deadline`.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    loop {
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                Some(rustix::time::Timespec {
                    tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
            None => None,
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue, // loop re-checks the deadline
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::Os(e)),
        }
    }
}
