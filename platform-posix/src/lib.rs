//! memtube's POSIX shim, shared by `platform-linux` and `platform-macos`
//! (an internal crate: use it through `memtube` or an OS crate).
//!
//! Everything of a process connection that POSIX defines lives here, once:
//! the regions, the `SCM_RIGHTS` handshake and its validation, peer identity
//! and the uid policy, the liveness channel, `listen` / `connect` and the
//! handles. The types are generic over the [`Wait`](memtube_ring::Wait) the
//! handles block with ([`OsWait`]); each OS crate fixes it (the futex on
//! Linux, `__ulock` / `os_sync` on macOS) with type aliases, so the public
//! API is the same on both.
//!
//! ```
//! use memtube_posix::{connect, listen, Connection, Listener, Options};
//! use memtube_ring::SpinWait; // portable: polls, never sleeps in the kernel
//! use std::time::Duration;
//!
//! let addr = std::env::temp_dir().join(format!("mt-doc-posix-{}", std::process::id()));
//! let opts = Options::new().duplex(true).capacity(4096);
//! let listener: Listener<SpinWait> = listen(addr.as_path(), &opts)?;
//! let server = std::thread::spawn(move || -> Result<(), memtube_posix::Error> {
//!     let mut conn = listener.accept(Some(Duration::from_secs(10)))?;
//!     conn.serve(|_ty, req, reply| {
//!         reply.extend(req.iter().rev());
//!         7
//!     })
//! });
//! let mut conn: Connection<SpinWait> = connect(addr.as_path(), &opts)?;
//! let reply = conn.call(1, b"abc", Some(Duration::from_secs(10)))?;
//! assert_eq!((reply.type_id(), reply.payload()), (7, &b"cba"[..]));
//! drop(reply);
//! drop(conn);
//! server.join().unwrap()?;
//! # Ok::<(), memtube_posix::Error>(())
//! ```

#![cfg(any(target_os = "linux", target_os = "macos"))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod conn;
mod connect;
mod error;
pub mod handshake;
mod listen;
mod liveness;
mod options;
mod os;
mod peer;
pub mod region;
mod rings;
mod sock;

pub use conn::{Connection, Grant, Message, Receiver, Reply, Sender, LIVENESS_SLICE};
pub use connect::connect;
pub use error::{Error, HandshakeFailure, Result};
pub use listen::{listen, Listener};
pub use liveness::{PeerState, CLOSE_BYTE};
pub use options::{Direction, Options};
pub use peer::{PeerCred, UidPolicy};
pub use region::Backend;
pub use sock::Addr;

/// What the handles need of their [`Wait`](memtube_ring::Wait): process-shared
/// waiting (the word is in shared memory, possibly mapped read-only), a
/// fresh value per handle (`Default`), and `Send` handles.
pub trait OsWait: memtube_ring::Wait + Default + Send + Sync + 'static {}

impl<W: memtube_ring::Wait + Default + Send + Sync + 'static> OsWait for W {}
