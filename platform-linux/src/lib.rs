//! memtube's Linux shim: ready-made process-to-process IPC over ring-core.
//!
//! `listen` in one process, `connect` in another, then send and receive
//! through a lock-free ring in shared memory with no system call while both
//! sides are busy:
//!
//! ```
//! use memtube_linux::{connect, listen, Options};
//! use std::time::Duration;
//!
//! let addr = format!("@memtube-doc-crate-{}", std::process::id());
//! let opts = Options::new().duplex(true).capacity(4096);
//! let listener = listen(addr.as_str(), &opts)?;
//! // The server: here a thread; normally another process.
//! let server = std::thread::spawn(move || -> Result<(), memtube_linux::Error> {
//!     let mut conn = listener.accept(Some(Duration::from_secs(10)))?;
//!     conn.serve(|_ty, req, reply| {
//!         reply.extend(req.iter().rev()); // reply: the request reversed
//!         7 // the reply's type id
//!     })
//! });
//! let mut conn = connect(addr.as_str(), &opts)?;
//! let reply = conn.call(1, b"abc", Some(Duration::from_secs(10)))?;
//! assert_eq!((reply.type_id(), reply.payload()), (7, &b"cba"[..]));
//! drop(reply);
//! drop(conn); // clean close: the server's `serve` returns Ok(())
//! server.join().unwrap()?;
//! # Ok::<(), memtube_linux::Error>(())
//! ```
//!
//! The POSIX parts (regions, handshake, peer identity, liveness, the
//! handles) live in the internal crate `platform-posix`, shared with
//! `platform-macos`; this crate fixes their [`Wait`](memtube_ring::Wait) to the
//! futex ([`FutexWait`]) and names the types, so that code written against
//! `memtube` compiles unchanged on both systems.
//!
//! # How a connection is made
//!
//! 1. The listener accepts on a Unix `SOCK_SEQPACKET` socket (a path created
//!    mode 0600, or an abstract name) and checks the peer's uid
//!    (`SO_PEERCRED`, [`UidPolicy`]); the connector checks the listener's.
//! 2. The listener creates each ring's regions ([`region`]: `memfd_create`,
//!    sized, sealed against shrink, grow and further sealing; mapped shared
//!    and pre-faulted), lays the rings with `memtube_ring::init` and sends one
//!    message: ring-core's [`Handshake`](memtube_ring::handshake::Handshake)
//!    struct plus the descriptors (`SCM_RIGHTS`).
//! 3. The connector validates all of it ([`handshake`]), maps the regions,
//!    attaches (ring-core validates the layout) and answers with one byte.
//!
//! # Isolation
//!
//! By default ([`Options::isolation`]) the rings use ring-core's split
//! layout: the producer's pages (control block and data) and the consumer's
//! block are separate memfds. Each side maps writable only the pages it
//! writes and the peer's pages read-only, and the writer seals its pages
//! with `F_SEAL_FUTURE_WRITE` before sending them, so the kernel refuses the
//! peer any writable mapping of them: a write through the peer's mapping
//! faults (tested). Futex waits work on the read-only mappings.
//!
//! # Waiting and liveness
//!
//! Blocking calls spin, then sleep on a futex ([`FutexWait`],
//! process-shared); the wake system call happens only when the other side
//! announced that it sleeps. They wait in slices of at most
//! [`LIVENESS_SLICE`] (50 ms) and probe the connection's socket between
//! slices: when the peer process dies, however it dies, the kernel closes
//! its socket, so a blocked call returns [`Error::PeerGone`] within about
//! 50 ms, after every message committed before the death was delivered. A
//! clean close (handles dropped) sends a close byte first and is reported
//! as [`Error::Closed`]. `is_peer_alive()` reads a cached flag: no system call.
//!
//! Nothing is left behind on disk or in `/dev/shm` when either side dies:
//! memfds vanish with their last descriptor and mapping. (A path socket file
//! stays if the listener is killed; the next `listen` replaces it.)

#![cfg(target_os = "linux")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod wait;

pub use memtube_posix::{handshake, region};
pub use memtube_posix::{
    Addr, Backend, Direction, Error, HandshakeFailure, Options, PeerCred, PeerState, Result,
    UidPolicy, CLOSE_BYTE, LIVENESS_SLICE,
};
pub use wait::FutexWait;

/// A listening socket; see [`memtube_posix::Listener`].
pub type Listener = memtube_posix::Listener<FutexWait>;
/// A connection: one ring or two; see [`memtube_posix::Connection`].
pub type Connection = memtube_posix::Connection<FutexWait>;
/// The writing end of a ring; see [`memtube_posix::Sender`].
///
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<memtube_linux::Sender>();
/// ```
pub type Sender = memtube_posix::Sender<FutexWait>;
/// The reading end of a ring; see [`memtube_posix::Receiver`].
///
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<memtube_linux::Receiver>();
/// ```
pub type Receiver = memtube_posix::Receiver<FutexWait>;
/// A reply to [`Connection::call`](memtube_posix::Connection::call).
pub type Reply<'r> = memtube_posix::Reply<'r, FutexWait>;
/// A reservation in a [`Sender`]'s ring.
pub type Grant<'s> = memtube_posix::Grant<'s, FutexWait>;
/// A message in place in a [`Receiver`]'s ring.
pub type Message<'r> = memtube_posix::Message<'r, FutexWait>;

/// Listen on `addr` (a path, or `"@name"` for an abstract name); see
/// [`memtube_posix::listen`] and the crate example.
pub fn listen(addr: impl Into<Addr>, opts: &Options) -> Result<Listener> {
    memtube_posix::listen(addr, opts)
}

/// Connect to a listener at `addr`; see [`memtube_posix::connect`] and the
/// crate example.
pub fn connect(addr: impl Into<Addr>, opts: &Options) -> Result<Connection> {
    memtube_posix::connect(addr, opts)
}
