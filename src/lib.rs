//! memtube: lock-free single-producer single-consumer message rings in
//! shared memory, for zero-copy messaging between threads and between
//! processes on one machine.
//!
//! This crate is the facade. It re-exports all of [`memtube_ring`] (the
//! `no_std`, allocation-free ring over a byte region you supply) with its
//! `std` feature on, so [`SpinWait::std`] and `std::error::Error` are
//! available, and on Linux the process shim `platform-linux`. The protocol,
//! the trust model and the byte-level region layout are documented in
//! [`memtube_ring`]'s crate docs.
//!
//! # Threads
//!
//! [`split`] lays a ring over memory you own (for example a boxed
//! [`RegionBuf`]) and returns a `Send` [`Producer`] and [`Consumer`]:
//!
//! ```
//! use memtube::{region_size, split, Config, Error, RegionBuf, SpinWait};
//! use std::time::Duration;
//!
//! const CAP: u32 = 4096;
//! const SIZE: usize = match region_size(CAP) {
//!     Some(n) => n, // control block + data area
//!     None => panic!("capacity must be a power of two"),
//! };
//! let mut region = Box::new(RegionBuf::<SIZE>::new());
//! let (mut tx, mut rx) = split(region.as_mut_slice(), Config::new(CAP), SpinWait::std())?;
//!
//! std::thread::scope(|s| {
//!     s.spawn(move || {
//!         for i in 0u64..100 {
//!             // Zero copy: write the payload in place, then commit it.
//!             let mut grant = tx.reserve_blocking(8, Some(Duration::from_secs(10))).unwrap();
//!             grant.copy_from_slice(&i.to_ne_bytes());
//!             grant.commit(8, 1);
//!         }
//!         // Dropping the producer closes the ring.
//!     });
//!     for i in 0u64..100 {
//!         let msg = rx.recv_blocking(Some(Duration::from_secs(10))).unwrap();
//!         assert_eq!(msg.type_id(), 1);
//!         assert_eq!(u64::from_ne_bytes(msg.payload().try_into().unwrap()), i);
//!     } // each message's space is released when it is dropped
//!     assert_eq!(rx.recv_blocking(None).err(), Some(Error::Closed));
//! });
//! # Ok::<(), memtube::Error>(())
//! ```
//!
//! # Processes (Linux)
//!
//! On Linux the facade re-exports `platform-linux`: [`listen`] in one
//! process, [`connect`] in another, then a [`Sender`] / [`Receiver`] pair
//! (one-way) or [`Connection::call`] / [`Connection::serve`] (duplex). The
//! regions are sealed memfds passed with `SCM_RIGHTS`, waiting is a
//! process-shared futex ([`FutexWait`]), each side maps the other's pages
//! read-only, and a blocked call reports a dead peer within about 50 ms.
//! Process errors are [`IpcError`] (ring-core's [`Error`] keeps its name);
//! the whole shim is at [`linux`].
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use memtube::{connect, listen, Direction, Options};
//! use std::time::Duration;
//!
//! let addr = format!("@memtube-facade-doc-{}", std::process::id());
//! let opts = Options::new().direction(Direction::ListenerToConnector);
//! let listener = listen(addr.as_str(), &opts)?;
//! // The peer would normally be another process.
//! let peer = std::thread::spawn(move || -> Result<u32, memtube::IpcError> {
//!     let mut conn = connect(addr.as_str(), &opts)?;
//!     let rx = conn.receiver()?;
//!     let mut sum = 0;
//!     loop {
//!         match rx.recv_blocking(Some(Duration::from_secs(10))) {
//!             Ok(m) => sum += u32::from(m[0]),
//!             Err(memtube::IpcError::Closed) => return Ok(sum), // clean close
//!             Err(e) => return Err(e),
//!         }
//!     }
//! });
//! let mut conn = listener.accept(Some(Duration::from_secs(10)))?;
//! let tx = conn.sender()?;
//! for i in 1..=10u8 {
//!     let mut grant = tx.reserve_blocking(1, Some(Duration::from_secs(10)))?;
//!     grant[0] = i; // zero copy: written in place
//!     grant.commit(1, 0);
//! }
//! drop(conn);
//! assert_eq!(peer.join().unwrap()?, 55);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - macOS: `platform-macos`, re-exported with the same names (`listen`,
//!   `connect`, `Options`, `IpcError`, ...): `shm_open` regions, the same
//!   handshake over `SOCK_STREAM`, `os_sync` / `__ulock` waiting
//!   (`UlockWait`). Type-checked from Linux, not yet run on a Mac: see the
//!   README's table. On Linux the same POSIX code runs with
//!   `Options::new().backend(Backend::PosixShm)`.
//! - Other targets: ring-core only. Processes that map a region themselves
//!   can use [`init`], [`attach_producer`] and [`attach_consumer`] with
//!   [`SpinWait`] or their own [`Wait`].

#![forbid(unsafe_code)]

pub use memtube_ring::*;

// The README's Rust example runs as a doc test, so it stays true.
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
                pub use memtube_linux::FutexWait;
                /// The Linux system crate (memfd regions, the futex, `SO_PEERCRED`, ...).
                pub use memtube_linux as linux;
            } else {
                type Sys = memtube_macos::MacOs;
                pub use memtube_macos::UlockWait;
                /// The macOS system crate (`getpeereid`, the `os_sync` / `__ulock` wait, ...).
                pub use memtube_macos as macos;
            }
        }
        pub use memtube_posix::{
            Addr, Backend, Direction, HandshakeFailure, Options, PeerCred, PeerState, UidPolicy,
            LIVENESS_SLICE,
        };
        /// Process IPC errors (`listen`, `connect` and the process handles);
        /// ring-core's own [`Error`] stays at `memtube::Error`.
        pub use memtube_posix::Error as IpcError;
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

        /// Listen on `addr` (a path, or `"@name"` for a Linux abstract
        /// name); see [`memtube_posix::listen`].
        pub fn listen(
            addr: impl Into<Addr>,
            opts: &Options,
        ) -> std::result::Result<Listener, IpcError> {
            memtube_posix::listen(addr, opts)
        }

        /// Connect to a listener at `addr`; see [`memtube_posix::connect`].
        pub fn connect(
            addr: impl Into<Addr>,
            opts: &Options,
        ) -> std::result::Result<Connection, IpcError> {
            memtube_posix::connect(addr, opts)
        }
    } else {
        // No shim: ring-core over memory the caller maps, with its own Wait.
    }
}
