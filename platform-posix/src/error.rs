//! The crate's error type.

use memtube_ring::handshake::HandshakeError;
use std::fmt;

/// Everything `listen`, `connect` and the handles can fail with.
///
/// - Transient, try again: `Full`, `Empty`, `Timeout`.
/// - The peer ended: `Closed` is a clean close (it dropped its handle or
///   connection; a receiver gets it after every message sent before);
///   `PeerGone` is a peer that died, panicked or vanished (its socket
///   closed without a clean close). Both are final for the handle.
/// - `Cancelled`: the [`CancelToken`](crate::CancelToken) of the connection
///   or listener was cancelled.
/// - Setup errors, from `listen`, `connect` and `accept`: `AddrInUse`,
///   `NotASocket`, `ForeignLockFile`, `NoListener`, `PathTooLong`, `PermissionDenied`,
///   `Handshake`, `HugePagesUnavailable`, `Unsupported`, `Os`. The
///   handshake and permission errors refuse one connection; a
///   [`Listener`](crate::Listener) keeps accepting after them.
/// - Misuse: `NoSuchHandle`, and `Ring` with `TooLarge` (a message larger
///   than the ring's maximum payload).
/// - A broken peer: `Protocol`, `ReplyTooLarge`, and `Ring` with `Corrupt`
///   (the ring is poisoned).
///
/// [`source`](std::error::Error::source) gives the underlying ring or
/// handshake error where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    Os(rustix::io::Errno),
    /// The peer process died (or closed its socket without a clean close).
    PeerGone,
    /// The peer closed cleanly; for a receiver, after every message it sent was delivered.
    Closed,
    /// A timeout elapsed (accept, connect, handshake or a blocking call).
    Timeout,
    /// No room in the ring now (non-blocking send / reserve).
    Full,
    /// No message now (non-blocking receive).
    Empty,
    /// The handshake was refused; the string says why.
    Handshake(HandshakeFailure),
    /// The ring refused an operation or found the shared region corrupt.
    Ring(memtube_ring::Error),
    /// The peer's uid is not allowed by the [`UidPolicy`](crate::UidPolicy).
    PermissionDenied {
        /// The peer's uid (from `SO_PEERCRED` / `getpeereid`).
        uid: u32,
    },
    /// A live listener already owns the socket path or name: it is never stolen.
    AddrInUse,
    /// The socket path exists and is not a socket (a regular file, a
    /// directory, a symbolic link, ...): `listen` never replaces it.
    NotASocket(std::path::PathBuf),
    /// `listen` on a path keeps a lock file at `<path>.lock`; a file of
    /// that name exists that memtube did not make. It is left alone.
    ForeignLockFile(std::path::PathBuf),
    /// Nothing listens at the address (`ECONNREFUSED` or `ENOENT` from `connect`).
    NoListener {
        /// The address, as given.
        addr: String,
        /// What the system said.
        errno: rustix::io::Errno,
    },
    /// A blocking call, `accept` or `serve` was stopped by the
    /// [`CancelToken`](crate::CancelToken) of its connection or listener.
    Cancelled,
    /// The server's reply to this `call` did not fit in the ring: the server
    /// sent an error reply instead (and keeps serving).
    ReplyTooLarge {
        /// Bytes the reply body needed.
        len: u64,
        /// The largest reply body the ring carries.
        max: u32,
    },
    /// Huge pages were requested but the kernel has none to give
    /// (`/proc/sys/vm/nr_hugepages` is 0 or exhausted). No fallback is made.
    HugePagesUnavailable(rustix::io::Errno),
    /// The peer broke the message protocol of `call` / `serve` (the string says how).
    Protocol(&'static str),
    /// The handle is not available on this connection (for example the
    /// sender of a connection whose direction makes this side the receiver).
    NoSuchHandle,
    /// Not available on this system (the string says what: abstract socket
    /// names or memfds on macOS, huge pages with `shm_open` regions).
    Unsupported(&'static str),
    /// A socket path too long for `sockaddr_un` (104 bytes on macOS, 108 on
    /// Linux, including the terminating NUL).
    PathTooLong {
        /// Bytes in the path.
        len: usize,
        /// The most this system takes.
        max: usize,
    },
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The handshake struct itself is invalid.
    Format(HandshakeError),
    /// The control message was truncated (`MSG_CTRUNC`): too many descriptors.
    ControlTruncated,
    /// The message was longer than a handshake (`MSG_TRUNC`).
    MessageTruncated,
    /// The number of descriptors received differs from the count claimed.
    FdCount {
        /// Descriptors the handshake claims.
        expected: u32,
        /// Descriptors received.
        got: usize,
    },
    /// A descriptor is not a sealable memfd (`F_GET_SEALS` failed).
    NotMemfd(rustix::io::Errno),
    /// A descriptor is not a POSIX shared-memory object (`shm` backend:
    /// `fstat` failed, or it is a socket, pipe, directory, device, or on
    /// Linux not a regular file on tmpfs).
    NotShm(rustix::io::Errno),
    /// A memfd lacks a required seal (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`).
    MissingSeals,
    /// A memfd's size differs from the length the handshake claims.
    Size {
        /// Length claimed.
        claimed: u64,
        /// `fstat` size.
        actual: u64,
    },
    /// The peer's options disagree with ours (direction, duplex or readiness).
    Mismatch(&'static str),
    /// A wake channel descriptor is not a socket of the channels' type
    /// (`SOCK_SEQPACKET` on Linux, `SOCK_STREAM` on macOS).
    NotWakeChannel(rustix::io::Errno),
    /// A ring is larger than this side accepts
    /// ([`Options::max_capacity`](crate::Options::max_capacity)).
    CapacityTooLarge {
        /// Capacity the handshake claims.
        claimed: u32,
        /// The largest this side accepts.
        max: u32,
    },
    /// The ring in the region failed to attach.
    Attach(memtube_ring::Error),
    /// The peer closed the socket during the handshake (or refused ours).
    PeerClosed,
    /// An unexpected reply byte.
    Protocol,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os(e) => write!(f, "system call failed: {e}"),
            Error::PeerGone => {
                f.write_str("peer process is gone (it died or panicked without closing)")
            }
            Error::Closed => f.write_str("peer closed the connection"),
            Error::Timeout => f.write_str("timed out"),
            Error::Full => f.write_str(
                "ring is full: try again, or use the blocking call that waits for room",
            ),
            Error::Empty => f.write_str(
                "no message now: try again, or use the blocking call that waits for one",
            ),
            Error::Handshake(h) => write!(f, "handshake refused: {h}"),
            Error::Ring(e) => write!(f, "ring error: {e}"),
            Error::PermissionDenied { uid } => write!(
                f,
                "peer uid {uid} is not allowed by this side's uid policy (see `Options::uid_policy`)"
            ),
            Error::AddrInUse => f.write_str(
                "a live listener owns this address: stop it or choose another address",
            ),
            Error::NotASocket(p) => write!(
                f,
                "{} exists and is not a socket: memtube does not replace it; remove it or choose another path",
                p.display()
            ),
            Error::ForeignLockFile(p) => write!(
                f,
                "{} exists and was not made by memtube (listen keeps its lock file there): memtube does not replace it; remove it or choose another path",
                p.display()
            ),
            Error::NoListener { addr, errno } => write!(
                f,
                "no listener at {addr} ({errno}): start the listening process first"
            ),
            Error::Cancelled => f.write_str("cancelled by the cancel token"),
            Error::ReplyTooLarge { len, max } => write!(
                f,
                "the server's reply of {len} bytes exceeds the ring's {max}-byte maximum: \
                 use a larger capacity"
            ),
            Error::HugePagesUnavailable(e) => write!(f, "huge pages unavailable: {e}"),
            Error::Protocol(what) => write!(f, "protocol violation: {what}"),
            Error::NoSuchHandle => f.write_str(
                "this side of the connection has no such handle: a one-way connection \
                 has a sender on one side and a receiver on the other (see \
                 `Options::direction`); use `Options::duplex(true)` for both",
            ),
            Error::Unsupported(what) => write!(f, "unsupported on this system: {what}"),
            Error::PathTooLong { len, max } => {
                write!(
                    f,
                    "socket path is {len} bytes, this system takes at most {max}"
                )
            }
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Format(e) => write!(f, "{e}"),
            HandshakeFailure::ControlTruncated => {
                f.write_str("control message truncated (too many descriptors)")
            }
            HandshakeFailure::MessageTruncated => f.write_str("message longer than a handshake"),
            HandshakeFailure::FdCount { expected, got } => {
                write!(f, "expected {expected} descriptors, received {got}")
            }
            HandshakeFailure::NotMemfd(e) => write!(f, "descriptor is not a sealable memfd: {e}"),
            HandshakeFailure::NotShm(e) => {
                write!(f, "descriptor is not a shared-memory object: {e}")
            }
            HandshakeFailure::MissingSeals => f.write_str("memfd lacks the required seals"),
            HandshakeFailure::Size { claimed, actual } => {
                write!(f, "memfd is {actual} bytes, handshake claims {claimed}")
            }
            HandshakeFailure::Mismatch(what) => write!(f, "peer's options differ: {what}"),
            HandshakeFailure::NotWakeChannel(e) => {
                write!(f, "wake channel descriptor is not a socket of the right type: {e}")
            }
            HandshakeFailure::CapacityTooLarge { claimed, max } => write!(
                f,
                "the peer's ring of {claimed} bytes is larger than this side accepts ({max}; see Options::max_capacity)"
            ),
            HandshakeFailure::Attach(e) => write!(f, "ring refused to attach: {e}"),
            HandshakeFailure::PeerClosed => f.write_str("peer closed the socket"),
            HandshakeFailure::Protocol => f.write_str("unexpected handshake reply"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handshake(h) => Some(h),
            Error::Ring(e) => Some(e),
            Error::Os(e) | Error::HugePagesUnavailable(e) | Error::NoListener { errno: e, .. } => {
                Some(e)
            }
            _ => None,
        }
    }
}

impl std::error::Error for HandshakeFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeFailure::Format(e) => Some(e),
            HandshakeFailure::Attach(e) => Some(e),
            HandshakeFailure::NotMemfd(e)
            | HandshakeFailure::NotShm(e)
            | HandshakeFailure::NotWakeChannel(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// Whether this is [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// Whether the peer is finished: it closed ([`Error::Closed`]) or is gone
    /// ([`Error::PeerGone`]). Nothing more will arrive from it.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Closed | Error::PeerGone)
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Os(e)
    }
}

impl From<std::io::Error> for Error {
    /// An I/O error as the system error it carries (`EIO` if none).
    fn from(e: std::io::Error) -> Self {
        Error::Os(rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
    }
}

impl From<HandshakeFailure> for Error {
    fn from(h: HandshakeFailure) -> Self {
        Error::Handshake(h)
    }
}

impl From<memtube_ring::Error> for Error {
    /// Transient ring errors map to their own variants; the rest to `Ring`.
    fn from(e: memtube_ring::Error) -> Self {
        match e {
            memtube_ring::Error::Full => Error::Full,
            memtube_ring::Error::Empty => Error::Empty,
            memtube_ring::Error::Timeout => Error::Timeout,
            memtube_ring::Error::Closed => Error::Closed,
            other => Error::Ring(other),
        }
    }
}

/// The crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
