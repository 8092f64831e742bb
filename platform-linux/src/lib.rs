//! memtube's Linux system crate: [`Linux`], the [`Os`](memtube_posix::Os)
//! under `memtube-posix`'s process IPC, with what is Linux's own: sealed
//! memfd regions ([`memfd`]), `SO_PEERCRED`, abstract socket names,
//! `MAP_POPULATE`, `/proc/net/unix`, and the process-shared futex
//! ([`FutexWait`]).
//!
//! Most programs use `memtube`, which names the types for the system it is
//! built for. With this crate directly, the types are `memtube-posix`'s,
//! with `Linux` as their parameter:
//!
//! ```
//! use memtube_linux::Linux;
//! use memtube_posix::{connect, listen, Connection, Listener, Options};
//! use std::time::Duration;
//!
//! let addr = format!("@memtube-doc-crate-{}", std::process::id());
//! let opts = Options::new().duplex(true).capacity(4096);
//! let listener: Listener<Linux> = listen(addr.as_str(), &opts)?;
//! // The server: here a thread; normally another process.
//! let server = std::thread::spawn(move || -> Result<(), memtube_posix::Error> {
//!     let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
//!     conn.serve(|_ty, req, reply| {
//!         reply.extend(req.iter().rev()); // reply: the request reversed
//!         7 // the reply's type id
//!     })
//! });
//! let mut conn: Connection<Linux> = connect(addr.as_str(), &opts)?;
//! let reply = conn.call_timeout(1, b"abc", Duration::from_secs(10))?;
//! assert_eq!((reply.type_id(), reply.payload()), (7, &b"cba"[..]));
//! drop(reply);
//! drop(conn); // clean close: the server's `serve` returns Ok(())
//! server.join().unwrap()?;
//! # Ok::<(), memtube_posix::Error>(())
//! ```
//!
//! # How a connection is made
//!
//! 1. The listener accepts on a Unix `SOCK_SEQPACKET` socket (a path created
//!    mode 0600, or an abstract name) and checks the peer's uid
//!    (`SO_PEERCRED`, `UidPolicy`); the connector checks the listener's.
//! 2. The listener creates each ring's regions ([`memfd`]: `memfd_create`,
//!    sized, sealed against shrink, grow and further sealing; mapped shared
//!    and pre-faulted), lays the rings with `memtube_ring::init` and sends one
//!    message: ring-core's [`Handshake`](memtube_ring::handshake::Handshake)
//!    struct plus the descriptors (`SCM_RIGHTS`).
//! 3. The connector validates all of it (`memtube_posix::handshake`), maps the regions,
//!    attaches (ring-core validates the layout) and answers with one byte.
//!
//! # Isolation
//!
//! By default (`Options::isolation`) the rings use ring-core's split
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
//! `LIVENESS_SLICE` (50 ms) and probe the connection's socket between
//! slices: when the peer process dies, however it dies, the kernel closes
//! its socket, so a blocked call returns `Error::PeerGone` within about
//! 50 ms, after every message committed before the death was delivered. A
//! clean close (handles dropped) sends a close byte first and is reported
//! as `Error::Closed`. `is_peer_alive()` reads a cached flag: no system call.
//!
//! Nothing is left behind on disk or in `/dev/shm` when either side dies:
//! memfds vanish with their last descriptor and mapping. (A path socket file
//! stays if the listener is killed; the next `listen` replaces it.)

#![cfg(target_os = "linux")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod memfd;
mod os;
mod wait;

pub use os::Linux;
pub use wait::FutexWait;
