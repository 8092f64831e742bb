//! [`Os`]: the few things POSIX leaves to each system, implemented once per
//! system by its OS crate (`memtube-linux`, `memtube-macos`). Everything
//! else in this crate is the same code on every system, generic over `O: Os`.
//!
//! The trait has no methods on values and no objects: every call is a
//! static, monomorphized call into the OS crate, and none of them is on the
//! path of a message (the ring handles use only [`Os::Wait`], whose calls
//! are ring-core's, exactly as before the cut).

use crate::error::{HandshakeFailure, Result};
use crate::peer::PeerCred;
use crate::region::Backend;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::mm::MapFlags;
use rustix::net::{RecvFlags, SendFlags, SocketAddrUnix, SocketType};
use std::ffi::CStr;
use std::path::Path;

/// One operating system under the POSIX code: its waiting, its socket and
/// mapping flags, peer credentials, abstract names, and memfd regions.
///
/// Implemented by `memtube_linux::Linux` and `memtube_macos::MacOs`; the
/// `memtube` facade picks one and names the types (`Connection<Sys>`, ...).
pub trait Os: 'static {
    /// How blocked handles wait: process-shared (the word is in shared
    /// memory, possibly mapped read-only), a fresh value per handle
    /// (`Default`), usable from any thread.
    type Wait: memtube_ring::Wait + Default + Send + Sync + 'static;

    /// The region backend when [`Options::backend`](crate::Options::backend)
    /// is not set.
    const DEFAULT_BACKEND: Backend;
    /// Bytes of `sockaddr_un.sun_path` (a path plus its NUL must fit).
    const SUN_PATH_LEN: usize;
    /// Flags of every `send` / `sendmsg` (for example `MSG_NOSIGNAL`, or
    /// none where sockets carry `SO_NOSIGPIPE`).
    const SEND_FLAGS: SendFlags;
    /// Flags of the handshake's `recvmsg` (for example `MSG_CMSG_CLOEXEC`).
    const RECV_FLAGS: RecvFlags;
    /// Flags of every region mapping: `MAP_SHARED` plus any pre-faulting.
    const MAP_FLAGS: MapFlags;

    /// A new non-blocking, close-on-exec `AF_UNIX` socket of `ty` that
    /// never raises `SIGPIPE` (with [`SEND_FLAGS`](Self::SEND_FLAGS)).
    fn socket(ty: SocketType) -> Result<OwnedFd>;

    /// Accept one connection, with the same properties as [`socket`](Self::socket).
    fn accept(listener: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd>;

    /// Make a descriptor received with `SCM_RIGHTS` close-on-exec, if
    /// [`RECV_FLAGS`](Self::RECV_FLAGS) did not already.
    fn received_fd(fd: &OwnedFd) -> rustix::io::Result<()>;

    /// The peer's pid, uid and gid, as the kernel recorded them at connect
    /// or listen.
    fn peer_cred(sock: BorrowedFd<'_>) -> rustix::io::Result<PeerCred>;

    /// The socket address of an abstract name (the bytes after `@`), or
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    fn abstract_addr(name: &[u8]) -> Result<SocketAddrUnix>;

    /// Whether the system's socket table lists a listening socket bound to
    /// `path`, so that a live listener is recognized without connecting to
    /// it; `false` when there is no such table (a connection attempt then
    /// decides).
    fn listed_as_listening(path: &Path) -> bool;

    /// Whether `fd` (whose `fstat` is `st`) may be a POSIX shared-memory
    /// object, as `shm_open` creates them on this system.
    fn is_shm_object(fd: BorrowedFd<'_>, st: &rustix::fs::Stat) -> rustix::io::Result<bool>;

    /// [`Backend::Memfd`]: a new region of `len` bytes named `name`
    /// (huge pages with `huge`), sealed against shrink and grow; further
    /// sealing stays allowed until [`memfd_seal`](Self::memfd_seal).
    /// [`Error::Unsupported`](crate::Error::Unsupported) where there are no memfds.
    fn memfd_create(name: &CStr, len: u64, huge: bool) -> Result<OwnedFd>;

    /// [`Backend::Memfd`]: finish sealing (`F_SEAL_FUTURE_WRITE` first with
    /// `future_write`, then `F_SEAL_SEAL`).
    fn memfd_seal(fd: BorrowedFd<'_>, future_write: bool) -> Result<()>;

    /// [`Backend::Memfd`]: check a received descriptor: a memfd carrying the
    /// required seals, exactly `claimed` bytes long.
    fn memfd_check(fd: BorrowedFd<'_>, claimed: u64) -> std::result::Result<(), HandshakeFailure>;

    /// A descriptor that becomes readable when process `pid` exits (Linux
    /// `pidfd_open`, 5.3 and later), so that liveness does not depend on the
    /// peer's socket alone (a child it forked may hold that open). `None`
    /// where there is none: liveness then follows the socket only.
    fn watch_process(_pid: i32) -> Option<OwnedFd> {
        None
    }

    /// When process `pid` started, in a unit of the system's own (Linux:
    /// clock ticks since boot; macOS: microseconds since the epoch), so
    /// that a pid and its start name one process even after the pid is
    /// reused. `Ok(None)`: no such process runs (it never existed in this
    /// pid namespace, has exited, or is a zombie). `Err`: the system would
    /// not tell.
    fn process_start(pid: i32) -> rustix::io::Result<Option<u64>>;

    /// On a connecting socket, before `connect`: ask the kernel to attach
    /// to every message that arrives the identity of the process that sent
    /// it (Linux: `SO_PASSPIDFD`, 6.5 and later, else `SO_PASSCRED`), so
    /// that the connector can watch the process that sent the handshake.
    /// Returns the bytes of control-message room one received message's
    /// identity takes; 0 where the system has no such means (liveness then
    /// follows the socket only).
    fn pass_sender(_sock: BorrowedFd<'_>) -> usize {
        0
    }

    /// A control message other than `SCM_RIGHTS` that arrived with the
    /// handshake: a descriptor that becomes readable when its sender exits
    /// (as [`watch_process`](Self::watch_process) gives), if the message
    /// names its sender (Linux: `SCM_PIDFD`, or `SCM_CREDENTIALS` then
    /// `pidfd_open` of its pid); `None` for any other message or when there
    /// is no usable identity. Only what the kernel vouches for counts: never
    /// a claim in the handshake's bytes.
    ///
    /// # Safety
    ///
    /// `data` is the payload (possibly truncated) of a control message of
    /// `level` and `ty` that `recvmsg` delivered to this process just now,
    /// and each message is passed here at most once: a descriptor it
    /// carries is owned by nobody else, and the implementation takes it
    /// (closing it if unused).
    unsafe fn sender_watch(_level: i32, _ty: i32, _data: &[u8]) -> Option<OwnedFd> {
        None
    }
}
