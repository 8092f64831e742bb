//! Shared regions: where a ring's pages come from, how the peer's copy of
//! them is restricted, how a received one is checked, and [`Mapping`].
//!
//! Two backends ([`Backend`]):
//! - memfd (Linux, the default there): anonymous sealed memory files;
//!   the kernel enforces size and the peer's read-only access (seals).
//!   Created, sealed and checked by the [`Os`] (`memtube_linux::memfd`).
//! - [`shm`] (any POSIX system, the only one on macOS; on Linux selectable
//!   with [`Options::backend`](crate::Options::backend), which is how its
//!   code runs in the Linux test suite): `shm_open` objects, unlinked at once.
//!
//! References: mmap(2), mlock(2), shm_open(3).

use crate::error::{Error, HandshakeFailure, Result};
use crate::Os;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::mm::ProtFlags;
use std::ptr::NonNull;

/// The descriptor's `fstat` size must be exactly what the handshake claims
/// (a smaller file would SIGBUS later, a larger one hides data).
pub fn check_size(
    st: &rustix::fs::Stat,
    claimed: u64,
) -> std::result::Result<(), HandshakeFailure> {
    let actual = u64::try_from(st.st_size).unwrap_or(0);
    if actual != claimed {
        return Err(HandshakeFailure::Size { claimed, actual });
    }
    Ok(())
}

pub mod shm;

/// Where a connection's regions come from. Both sides must use the same
/// one (the connector validates what it receives as its own backend's
/// objects); on Linux the socket type follows it too (see
/// [`Options::backend`](crate::Options::backend)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Sealed memfds (Linux only; the default there).
    Memfd,
    /// `shm_open` objects (any POSIX system; the default and only one on macOS).
    PosixShm,
}

/// A new region of `len` bytes, before the peer's access is decided.
#[derive(Debug)]
pub(crate) struct NewRegion {
    /// Read-write descriptor (mapped by its creator).
    pub(crate) rw: OwnedFd,
    /// `shm` only: a read-only descriptor of the same object.
    pub(crate) ro: Option<OwnedFd>,
    backend: Backend,
}

impl NewRegion {
    /// Create one with `backend` (huge pages: memfd only; `name` names a
    /// memfd in `/proc/<pid>/maps`, shm names are random).
    pub(crate) fn create<O: Os>(
        backend: Backend,
        name: &std::ffi::CStr,
        len: u64,
        huge: bool,
    ) -> Result<NewRegion> {
        match backend {
            Backend::Memfd => Ok(NewRegion {
                rw: O::memfd_create(name, len, huge)?,
                ro: None,
                backend,
            }),
            Backend::PosixShm if huge => {
                Err(Error::Unsupported("huge pages need memfd regions (Linux)"))
            }
            Backend::PosixShm => {
                let (rw, ro) = shm::create(len)?;
                Ok(NewRegion {
                    rw,
                    ro: Some(ro),
                    backend,
                })
            }
        }
    }

    /// Finish it and return the descriptor for the peer: writable only if
    /// `peer_writes`. memfd: seals (`F_SEAL_FUTURE_WRITE` when the peer
    /// must not write; enforced). shm: the read-only descriptor when the
    /// peer must not write.
    pub(crate) fn finish<O: Os>(self, peer_writes: bool) -> Result<OwnedFd> {
        match self.backend {
            Backend::Memfd => {
                O::memfd_seal(rustix::fd::AsFd::as_fd(&self.rw), !peer_writes)?;
                Ok(self.rw)
            }
            _ => match (peer_writes, self.ro) {
                (false, Some(ro)) => Ok(ro),
                _ => Ok(self.rw),
            },
        }
    }
}

/// Check a received descriptor against `backend`'s rules and the claimed size.
pub(crate) fn check_received<O: Os>(
    backend: Backend,
    fd: BorrowedFd<'_>,
    claimed: u64,
) -> std::result::Result<(), HandshakeFailure> {
    match backend {
        Backend::Memfd => O::memfd_check(fd, claimed),
        _ => shm::check::<O>(fd, claimed),
    }
}

/// The error of a failed region allocation or mapping: with `huge`, the
/// errors the kernel gives when it has no huge pages to give are
/// [`Error::HugePagesUnavailable`]; anything else is [`Error::Os`].
pub fn huge_err(huge: bool, e: Errno) -> Error {
    if huge && matches!(e, Errno::NOMEM | Errno::INVAL | Errno::NOSPC) {
        Error::HugePagesUnavailable(e)
    } else {
        Error::Os(e)
    }
}

/// An owned shared mapping of a region; unmapped on drop.
///
/// Invariant: `ptr..ptr + len` is a live `MAP_SHARED` mapping made by
/// [`Mapping::new`] and unmapped only by `Drop`.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    /// The process that mapped it (see [`Mapping::dont_fork`]).
    owner: u32,
}

// SAFETY: a mapping is plain memory owned by this value; the ring handles
// that use it synchronize through atomics. Moving or sharing the owner
// across threads does not touch the memory.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only exposes the address and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ [| PROT_WRITE], MAP_SHARED, fd, 0)`: map
    /// `len` bytes of `fd` with [`Os::MAP_FLAGS`] (`MAP_POPULATE` on Linux,
    /// so the first messages take no page faults).
    ///
    /// The mapping belongs to this process: on Linux it is `MADV_DONTFORK`
    /// (a child forked later does not have it), and a copy of the value in
    /// such a child unmaps nothing when dropped.
    pub fn new<O: Os>(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        huge: bool,
    ) -> Result<Mapping> {
        Self::map(fd, len, writable, huge, O::MAP_FLAGS)
    }

    fn map(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        huge: bool,
        flags: rustix::mm::MapFlags,
    ) -> Result<Mapping> {
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel chooses
        // (`ptr` null, no MAP_FIXED) cannot alias any Rust object.
        let p = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) }
            .map_err(|e| huge_err(huge, e))?;
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(Error::Os(Errno::NOMEM))?;
        let m = Mapping {
            ptr,
            len,
            writable,
            owner: std::process::id(),
        };
        m.dont_fork();
        Ok(m)
    }

    /// `mlock`: keep the pages resident (needs `RLIMIT_MEMLOCK` or `CAP_IPC_LOCK`).
    pub fn lock(&self) -> Result<()> {
        // SAFETY: the range is this live mapping (type invariant); mlock
        // does not change its contents.
        unsafe { rustix::mm::mlock(self.ptr.as_ptr().cast(), self.len) }?;
        Ok(())
    }

    /// The start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// [`new`](Self::new) without pre-faulting (no `MAP_POPULATE`): for a
    /// region received from a peer, whose contents are validated before any
    /// page but the header's is touched ([`populate`](Self::populate) then).
    pub fn new_lazy<O: Os>(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        huge: bool,
    ) -> Result<Mapping> {
        #[cfg(target_os = "linux")]
        let flags = O::MAP_FLAGS.difference(rustix::mm::MapFlags::POPULATE);
        #[cfg(not(target_os = "linux"))]
        let flags = O::MAP_FLAGS;
        Self::map(fd, len, writable, huge, flags)
    }

    /// Keep the mapping out of child processes (`MADV_DONTFORK`, Linux):
    /// a ring belongs to the process that connected, and a child forked
    /// later that used an inherited handle would be a second producer or
    /// consumer behind its parent's back. Without the mapping, such a use
    /// faults in the child instead of corrupting the parent's stream;
    /// dropping inherited handles in the child does nothing (see `Drop`).
    fn dont_fork(&self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the range is this live mapping (type invariant); the
            // advice changes only what a future fork inherits.
            let _ = unsafe {
                rustix::mm::madvise(
                    self.ptr.as_ptr().cast(),
                    self.len,
                    rustix::mm::Advice::LinuxDontFork,
                )
            };
        }
    }

    /// Fault every page in now (as `MAP_POPULATE` does at `mmap`), so that
    /// the first messages take no page faults. Best effort: on Linux
    /// `MADV_POPULATE_WRITE` / `_READ` (5.14+); elsewhere, or if that
    /// fails, one read of each page.
    pub fn populate(&self) {
        #[cfg(target_os = "linux")]
        {
            let advice = if self.writable {
                rustix::mm::Advice::LinuxPopulateWrite
            } else {
                rustix::mm::Advice::LinuxPopulateRead
            };
            // SAFETY: the range is this live mapping (type invariant); the
            // advice only faults its pages in, it changes no contents.
            if unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), self.len, advice) }.is_ok() {
                return;
            }
        }
        for off in (0..self.len).step_by(4096) {
            // SAFETY: `off < len`: inside this live, readable mapping; a
            // volatile read of a byte another process may write is a plain
            // load, whatever its value.
            unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off)) };
        }
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a ring).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this side mapped it writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // In a forked child the range is not this mapping (`dont_fork`): it
        // may hold anything the child mapped since. Leave it alone.
        if std::process::id() != self.owner {
            return;
        }
        // SAFETY: the range is this live mapping (type invariant), and every
        // handle borrowing it was dropped before its owner drops it.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
