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
//! - [`PollSet`] waits on many connections at once (a server with many
//!   clients), with no system call while they are busy but a liveness
//!   check each 50 ms.
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
#[cfg(all(feature = "tokio", any(target_os = "linux", target_os = "macos")))]
pub mod tokio;
pub mod typed;

// The README's Rust examples run as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The one switch of the OS shim: `Sys` is the system under memtube-posix's
// generic types (`memtube_linux::Linux` or `memtube_macos::MacOs`), and the
// public names below are defined once, for both. Only the Wait differs:
// `FutexWait` on Linux, `UlockWait` on macOS.
cfg_if::cfg_if! {
    if #[cfg(any(target_os = "linux", target_os = "macos"))] {
        cfg_if::cfg_if! {
            if #[cfg(target_os = "linux")] {
                type Sys = memtube_linux::Linux;
                pub(crate) type NativeWait = memtube_linux::FutexWait;
                pub use memtube_linux::FutexWait;
                /// The Linux system crate (memfd regions, the futex, `SO_PEERCRED`, ...).
                pub use memtube_linux as linux;
            } else {
                type Sys = memtube_macos::MacOs;
                pub(crate) type NativeWait = memtube_macos::UlockWait;
                pub use memtube_macos::UlockWait;
                /// The macOS system crate (`getpeereid`, the `os_sync` / `__ulock` wait, ...).
                pub use memtube_macos as macos;
            }
        }
        pub use memtube_posix::{
            Addr, Backend, Direction, HandshakeFailure, Options, PeerCred, PeerState, UidPolicy,
            LIVENESS_SLICE, PROBE_EVERY,
        };
        pub use memtube_posix::{CancelToken, Error, Result};
        pub use memtube_posix::{Event, Events, Interest, Pollable};
        /// The wait of a connection's ring handles (the system's, plus the
        /// wake channel of [`Options::readiness`]); see [`memtube_posix::ConnWait`].
        pub type ConnWait = memtube_posix::ConnWait<Sys>;
        /// One wait across many receivers, senders or connections; see
        /// [`memtube_posix::PollSet`].
        ///
        /// ```
        /// # #[cfg(any(target_os = "linux", target_os = "macos"))] {
        /// use memtube::{connect, listen, Events, Options, PollSet};
        /// use std::time::Duration;
        ///
        /// let addr = std::env::temp_dir().join(format!("memtube-doc-poll-{}.sock", std::process::id()));
        /// let opts = Options::new();
        /// let listener = listen(addr.as_path(), &opts)?;
        /// // Three clients, normally other processes.
        /// let a = addr.clone();
        /// let clients = std::thread::spawn(move || -> memtube::Result<Vec<memtube::Connection>> {
        ///     (0..3).map(|_| connect(a.as_path(), &Options::new())).collect()
        /// });
        /// let mut set: PollSet<memtube::Receiver> = PollSet::new();
        /// for _ in 0..3 {
        ///     let conn = listener.accept_timeout(Duration::from_secs(5))?;
        ///     set.insert(conn.into_split().1.unwrap()); // its receiver
        /// }
        /// let mut clients = clients.join().unwrap()?;
        /// clients[1].sender()?.send(b"hi", 7)?;
        /// let mut events = Events::new();
        /// set.wait(&mut events, Some(Duration::from_secs(5)))?;
        /// let ev = events.iter().next().unwrap();
        /// assert!(ev.is_readable());
        /// let msg = set.get_mut(ev.key()).unwrap().try_recv()?;
        /// assert_eq!((msg.type_id(), msg.payload()), (7, &b"hi"[..]));
        /// # }
        /// # Ok::<(), memtube::Error>(())
        /// ```
        pub type PollSet<T = Connection> = memtube_posix::PollSet<T>;
        /// A listening socket; see [`memtube_posix::Listener`].
        pub type Listener = memtube_posix::Listener<Sys>;
        /// A connection: one ring or two; see [`memtube_posix::Connection`].
        pub type Connection = memtube_posix::Connection<Sys>;
        /// The writing end of a ring to the peer process; see [`memtube_posix::Sender`].
        ///
        /// ```compile_fail
        /// fn is_sync<T: Sync>() {}
        /// is_sync::<memtube::Sender>();
        /// ```
        pub type Sender = memtube_posix::Sender<Sys>;
        /// The reading end of a ring from the peer process; see [`memtube_posix::Receiver`].
        ///
        /// ```compile_fail
        /// fn is_sync<T: Sync>() {}
        /// is_sync::<memtube::Receiver>();
        /// ```
        pub type Receiver = memtube_posix::Receiver<Sys>;
        /// A reply to [`Connection::call`](memtube_posix::Connection::call).
        pub type Reply<'r> = memtube_posix::Reply<'r, Sys>;
        /// A reservation in a [`Sender`]'s ring: write in place, then `commit`.
        pub type Grant<'s> = memtube_posix::Grant<'s, Sys>;
        /// A message in place in a [`Receiver`]'s ring, released when dropped.
        pub type Message<'r> = memtube_posix::Message<'r, Sys>;

        /// Listen on `addr` (a path, or `"@name"` for a Linux abstract
        /// name); see [`memtube_posix::listen`].
        pub fn listen(
            addr: impl Into<Addr>,
            opts: &Options,
        ) -> std::result::Result<Listener, Error> {
            memtube_posix::listen(addr, opts)
        }

        /// Connect to a listener at `addr`; see [`memtube_posix::connect`].
        pub fn connect(
            addr: impl Into<Addr>,
            opts: &Options,
        ) -> std::result::Result<Connection, Error> {
            memtube_posix::connect(addr, opts)
        }
    } else {
        // No shim: the ring over memory the caller maps, with its own Wait.
        pub(crate) type NativeWait = memtube_ring::SpinWait;
    }
}
