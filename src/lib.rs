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
