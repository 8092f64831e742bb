//! memtube: lock-free single-producer single-consumer message rings in
//! shared memory, for zero-copy messaging between threads and, once the OS
//! shims land, between processes on one machine.
//!
//! This crate is the facade. Today it re-exports all of [`ring_core`] (the
//! `no_std`, allocation-free ring over a byte region you supply) with its
//! `std` feature on, so [`SpinWait::std`] and `std::error::Error` are
//! available. The protocol, the trust model and the byte-level region
//! layout are documented in [`ring_core`]'s crate docs.
//!
//! # Threads today
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
//! # Processes: not yet
//!
//! Process-to-process IPC (`memtube::listen` / `memtube::connect`, a shared
//! region, a handshake over a Unix socket, futex-style waiting and peer
//! liveness) arrives with the OS shim crates, which this facade will select
//! with `cfg-if`:
//!
//! - Linux: `platform-linux` (memfd region, `SCM_RIGHTS` handshake, futex
//!   [`Wait`]). Not written yet.
//! - macOS: `platform-macos` (`shm_open` region, the same handshake,
//!   `__ulock` [`Wait`]). Not written yet.
//! - Other targets: ring-core only.
//!
//! Until then, processes that map a region themselves can already use
//! [`init`], [`attach_producer`] and [`attach_consumer`] with [`SpinWait`]
//! or their own [`Wait`].

#![forbid(unsafe_code)]

pub use ring_core::*;

// The README's Rust example runs as a doc test, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The one switch of the OS shim: Linux re-exports platform-linux; the other
// branches are empty until their shims exist.
cfg_if::cfg_if! {
    if #[cfg(target_os = "linux")] {
        pub use platform_linux::{
            connect, listen, Addr, Connection, Direction, FutexWait, HandshakeFailure,
            Listener, Options, PeerCred, PeerState, Receiver, Reply, Sender, UidPolicy,
            LIVENESS_SLICE,
        };
        /// Process IPC errors (`listen`, `connect` and the process handles);
        /// ring-core's own [`Error`] stays at `memtube::Error`.
        pub use platform_linux::Error as IpcError;
        /// The Linux shim in full (regions, handshake messages, ...).
        pub use platform_linux as linux;
    } else if #[cfg(target_os = "macos")] {
        // Will re-export platform-macos: listen, connect, the __ulock Wait.
    } else {
        // No shim: ring-core over memory the caller maps, with its own Wait.
    }
}
