//! memtube's macOS shim: ready-made process-to-process IPC over ring-core,
//! with the same API as `platform-linux` (both name the types of the
//! internal crate `platform-posix`), so code written against `memtube`
//! compiles unchanged on either system.
//!
//! ```no_run
//! // Compiled (not run) on macOS; compiled to nothing elsewhere.
//! # #[cfg(target_os = "macos")] {
//! use memtube_macos::{connect, listen, Options};
//! use std::time::Duration;
//!
//! let addr = std::env::temp_dir().join("memtube-doc.sock"); // at most 103 bytes
//! let opts = Options::new().duplex(true).capacity(4096);
//! let listener = listen(addr.as_path(), &opts)?;
//! let server = std::thread::spawn(move || -> Result<(), memtube_macos::Error> {
//!     let mut conn = listener.accept(Some(Duration::from_secs(10)))?;
//!     conn.serve(|_ty, req, reply| {
//!         reply.extend(req.iter().rev());
//!         7
//!     })
//! });
//! let mut conn = connect(addr.as_path(), &opts)?;
//! let reply = conn.call(1, b"abc", Some(Duration::from_secs(10)))?;
//! assert_eq!((reply.type_id(), reply.payload()), (7, &b"cba"[..]));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What differs from Linux
//!
//! - Regions are `shm_open` objects ([`region::shm`]): unique unguessable
//!   name, `O_CREAT | O_EXCL`, mode 0600, `ftruncate`, unlinked before
//!   anything is mapped or sent (the window and a death inside it are
//!   documented there). No seals exist: the handshake checks each received
//!   descriptor's `fstat` size and type instead. The peer's pages are sent
//!   as a read-only descriptor, so the peer can map them only read-only.
//! - Sockets are `SOCK_STREAM` (macOS has no Unix `SOCK_SEQPACKET`); the
//!   handshake is read to its fixed length and one byte more is refused.
//!   Paths are limited to 103 bytes ([`Error::PathTooLong`]); there are no
//!   abstract names ([`Error::Unsupported`]).
//! - Peer identity: `getpeereid` and `LOCAL_PEERPID`, same [`UidPolicy`].
//! - Waiting: [`UlockWait`]: `os_sync_wait_on_address` (macOS 14.4+, public)
//!   when present, else the private `__ulock_wait` / `__ulock_wake`, both in
//!   their process-shared variants.
//! - Liveness: the same socket channel as on Linux (`PeerGone` within about
//!   [`LIVENESS_SLICE`], committed messages delivered first).
//!
//! # What has been tested where
//!
//! The POSIX code (shm regions, stream handshake, liveness, the handles)
//! runs end to end in the Linux test suite (`Backend::PosixShm`, futex wait).
//! This crate and the macOS parts of `platform-posix` are type-checked and
//! linted for `x86_64-apple-darwin` and `aarch64-apple-darwin`, and have
//! not yet run on a real Mac. See the README's table.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]
#![cfg(target_os = "macos")]

mod ulock;
mod wait;

pub use memtube_posix::{handshake, region};
pub use memtube_posix::{
    Addr, Backend, Direction, Error, HandshakeFailure, Options, PeerCred, PeerState, Result,
    UidPolicy, CLOSE_BYTE, LIVENESS_SLICE,
};
pub use wait::UlockWait;

/// A listening socket; see [`memtube_posix::Listener`].
pub type Listener = memtube_posix::Listener<UlockWait>;
/// A connection: one ring or two; see [`memtube_posix::Connection`].
pub type Connection = memtube_posix::Connection<UlockWait>;
/// The writing end of a ring; see [`memtube_posix::Sender`].
pub type Sender = memtube_posix::Sender<UlockWait>;
/// The reading end of a ring; see [`memtube_posix::Receiver`].
pub type Receiver = memtube_posix::Receiver<UlockWait>;
/// A reply to [`Connection::call`](memtube_posix::Connection::call).
pub type Reply<'r> = memtube_posix::Reply<'r, UlockWait>;
/// A reservation in a [`Sender`]'s ring.
pub type Grant<'s> = memtube_posix::Grant<'s, UlockWait>;
/// A message in place in a [`Receiver`]'s ring.
pub type Message<'r> = memtube_posix::Message<'r, UlockWait>;

/// Listen on the socket path `addr`; see [`memtube_posix::listen`].
pub fn listen(addr: impl Into<Addr>, opts: &Options) -> Result<Listener> {
    memtube_posix::listen(addr, opts)
}

/// Connect to a listener at the socket path `addr`; see [`memtube_posix::connect`].
pub fn connect(addr: impl Into<Addr>, opts: &Options) -> Result<Connection> {
    memtube_posix::connect(addr, opts)
}
