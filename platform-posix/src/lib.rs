//! memtube's POSIX shim, shared by `memtube-linux` and `memtube-macos`
//! (use it through `memtube`, which picks the system for you).
//!
//! Everything of a process connection that POSIX defines lives here, once:
//! `shm_open` regions and [`Mapping`](region::Mapping)s, the `SCM_RIGHTS`
//! handshake and its validation, the uid policy, the liveness channel,
//! `listen` / `connect` and the handles. What POSIX leaves to each system
//! (how handles wait, socket and mapping flags, peer credentials, abstract
//! names, memfd regions) is the trait [`Os`], implemented by one OS crate
//! per system (`memtube_linux::Linux`, `memtube_macos::MacOs`). Every type
//! and function here is generic over it, so the same code serves both and
//! the public API is the same on both.
//!
//! Code generic over the system:
//!
//! ```
//! use memtube_posix::{connect, Listener, Options, Os, Result};
//! use std::time::Duration;
//!
//! /// Answer every request with its bytes reversed, until the peer closes.
//! fn serve_reversed<O: Os>(listener: &Listener<O>) -> Result<()> {
//!     let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
//!     conn.serve(|_ty, req, reply| {
//!         reply.extend(req.iter().rev());
//!         7 // the reply's type id
//!     })
//! }
//!
//! /// One request, one reply.
//! fn ask<O: Os>(path: &std::path::Path) -> Result<Vec<u8>> {
//!     let opts = Options::new().duplex(true);
//!     let mut conn = connect::<O>(path, &opts)?;
//!     let reply = conn.call_timeout(1, b"abc", Duration::from_secs(10))?;
//!     Ok(reply.payload().to_vec())
//! }
//! ```
//!
//! A program names one system: `memtube_posix::Connection<memtube_linux::Linux>`,
//! or simply `memtube::Connection`.

#![cfg(any(target_os = "linux", target_os = "macos"))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod cancel;
mod conn;
mod connect;
mod error;
pub mod handshake;
pub mod holder;
mod listen;
mod liveness;
mod options;
mod os;
mod peer;
mod poll;
pub mod region;
mod rings;
mod sock;
mod wake;

pub use cancel::CancelToken;
pub use conn::{
    Connection, Grant, Message, Receiver, Reply, Sender, ERROR_REPLY, LIVENESS_SLICE, PING,
    PROBE_EVERY,
};
pub use connect::connect;
pub use error::{Error, HandshakeFailure, Result};
pub use listen::{listen, Listener};
pub use liveness::{PeerState, CLOSE_BYTE};
pub use options::{Direction, Options};
pub use os::Os;
pub use peer::{PeerCred, UidPolicy};
pub use poll::{Event, Events, Interest, PollSet, Pollable};
pub use region::Backend;
pub use sock::Addr;
pub use wake::ConnWait;
