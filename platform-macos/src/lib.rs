//! memtube's macOS system crate: [`MacOs`], the [`Os`](memtube_posix::Os)
//! under `memtube-posix`'s process IPC, with what is macOS's own:
//! `getpeereid` / `LOCAL_PEERPID`, `SO_NOSIGPIPE` and `fcntl` socket
//! flags, and the `os_sync` / `__ulock` wait ([`UlockWait`]). The API is
//! the same as on Linux: most programs use `memtube`, which names the types
//! for the system it is built for.
//!
//! ```no_run
//! // Compiled (not run) on macOS; compiled to nothing elsewhere.
//! # #[cfg(target_os = "macos")] {
//! use memtube_macos::MacOs;
//! use memtube_posix::{connect, listen, Connection, Listener, Options};
//! use std::time::Duration;
//!
//! let addr = std::env::temp_dir().join("memtube-doc.sock"); // at most 103 bytes
//! let opts = Options::new().duplex(true).capacity(4096);
//! let listener: Listener<MacOs> = listen(addr.as_path(), &opts)?;
//! let server = std::thread::spawn(move || -> Result<(), memtube_posix::Error> {
//!     let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
//!     conn.serve(|_ty, req, reply| {
//!         reply.extend(req.iter().rev());
//!         7
//!     })
//! });
//! let mut conn: Connection<MacOs> = connect(addr.as_path(), &opts)?;
//! let reply = conn.call_timeout(1, b"abc", Duration::from_secs(10))?;
//! assert_eq!((reply.type_id(), reply.payload()), (7, &b"cba"[..]));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What differs from Linux
//!
//! - Regions are `shm_open` objects (`memtube_posix::region::shm`): unique
//!   unguessable name, `O_CREAT | O_EXCL`, mode 0600, `ftruncate`, unlinked before
//!   anything is mapped or sent (the window and a death inside it are
//!   documented there). No seals exist: the handshake checks each received
//!   descriptor's `fstat` size and type instead. The peer's pages are sent
//!   as a read-only descriptor, so the peer can map them only read-only.
//! - Sockets are `SOCK_STREAM` (macOS has no Unix `SOCK_SEQPACKET`); the
//!   handshake is read to its fixed length and one byte more is refused.
//!   Paths are limited to 103 bytes (`Error::PathTooLong`); there are no
//!   abstract names (`Error::Unsupported`).
//! - Peer identity: `getpeereid` and `LOCAL_PEERPID`, same `UidPolicy`.
//! - Waiting: [`UlockWait`]: `os_sync_wait_on_address` (macOS 14.4+, public)
//!   when present, else the private `__ulock_wait` / `__ulock_wake`, both in
//!   their process-shared variants.
//! - Liveness: the same socket channel as on Linux (`PeerGone` within about
//!   `LIVENESS_SLICE`, committed messages delivered first).
//!
//! # What has been tested where
//!
//! The POSIX code (shm regions, stream handshake, liveness, the handles)
//! runs end to end in the Linux test suite (`Backend::PosixShm`, futex wait).
//! This crate is type-checked and linted for `x86_64-apple-darwin` and
//! `aarch64-apple-darwin`, and has not yet run on a real Mac. See the README's table.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]
// Elsewhere the crate is empty and the links above have nothing to point
// at; its documentation is built for the Apple targets (docs.rs metadata,
// and CI's `cargo doc --target *-apple-darwin`), where they are checked.
#![cfg_attr(not(target_os = "macos"), allow(rustdoc::broken_intra_doc_links))]
#![cfg(target_os = "macos")]

mod os;
mod ulock;
mod wait;

pub use os::MacOs;
pub use wait::UlockWait;
