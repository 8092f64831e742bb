//! memtube: messages between threads and processes on one machine through a
//! lock-free single-producer single-consumer ring in shared memory: zero
//! copy, no serialization, no system call while both sides are busy.
//!
//! - The crate root is the **process API**: [`listen`] in one process,
//!   [`connect`] in another, then a [`Sender`] / [`Receiver`] pair (one-way)
//!   or [`Connection::call`] / [`Connection::serve`] (duplex). Linux and
//!   macOS; errors are [`Error`].
//! - [`ring`] is the **ring** itself, for threads ([`ring::channel`]), for
//!   memory you own ([`ring::split`]) and for regions you map yourself
//!   ([`ring::init`], [`ring::attach_producer`], [`ring::attach_consumer`]);
//!   errors are [`ring::Error`]. It is also published alone, `no_std`, as
//!   `memtube-ring`.
//! - [`typed`] sends and reads `#[repr(C)]` values in place.
//!
//! Blocking follows std and crossbeam: `recv()` blocks, `try_recv()` does
//! not, `recv_timeout(d)` waits at most `d`; the same for `send` and
//! `reserve`. Zero copy is the fast path: `reserve` space, write in place,
//! `commit`; a received [`Message`] is a view into the ring, released when
//! dropped.
//!
//! ```
//! # #[cfg(any(target_os = "linux", target_os = "macos"))] {
//! use memtube::{connect, listen, Options};
//! use std::time::Duration;
//!
//! let addr = std::env::temp_dir().join(format!("memtube-doc-{}.sock", std::process::id()));
//! let opts = Options::new().duplex(true);
//! let listener = listen(addr.as_path(), &opts)?;
//! // The server; normally another process.
//! let server = std::thread::spawn(move || -> memtube::Result<()> {
//!     let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
//!     conn.serve(|_type_id, request, reply| {
//!         reply.extend(request.iter().rev()); // the reply: the request reversed
//!         7 // the reply's type id
//!     })
//! });
//! let mut conn = connect(addr.as_path(), &opts)?;
//! let reply = conn.call(1, b"abc")?;
//! assert_eq!((reply.type_id(), reply.payload()), (7, &b"cba"[..]));
//! drop(reply);
//! drop(conn); // a clean close: the server's `serve` returns Ok(())
//! server.join().unwrap()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The wire format (region layout, records, handshake) is specified in
//! `docs/PROTOCOL.md`, so peers in other languages can implement it.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod ring;
pub mod typed;

// The README's Rust examples run as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The one switch of the OS shim: Linux re-exports memtube-linux, macOS
// memtube-macos, with the same names (both name memtube-posix's types).
cfg_if::cfg_if! {
    if #[cfg(target_os = "linux")] {
        pub use memtube_linux::{
            connect, listen, Addr, Backend, Connection, Direction, Error, FutexWait,
            HandshakeFailure, Listener, Options, PeerCred, PeerState, Receiver, Reply, Result,
            Sender, UidPolicy, LIVENESS_SLICE,
        };
        /// The Linux shim in full (regions, handshake messages, ...).
        pub use memtube_linux as linux;
        pub(crate) type NativeWait = memtube_linux::FutexWait;
    } else if #[cfg(target_os = "macos")] {
        pub use memtube_macos::{
            connect, listen, Addr, Backend, Connection, Direction, Error, HandshakeFailure,
            Listener, Options, PeerCred, PeerState, Receiver, Reply, Result, Sender, UidPolicy,
            UlockWait, LIVENESS_SLICE,
        };
        /// The macOS shim in full (regions, handshake messages, ...).
        pub use memtube_macos as macos;
        pub(crate) type NativeWait = memtube_macos::UlockWait;
    } else {
        // No shim: the ring over memory the caller maps, with its own Wait.
        pub(crate) type NativeWait = memtube_ring::SpinWait;
    }
}
