//! `shm_open`, `ftruncate`, `shm_unlink`: POSIX shared-memory objects, the
//! region backend of macOS (and of Linux on request).
//!
//! An object is created under a fresh unguessable name (`/mt` and 24 hex
//! digits from `/dev/urandom`: 27 bytes, within macOS's 31-byte
//! `PSHMNAMLEN`) with `O_RDWR | O_CREAT | O_EXCL`, mode 0600, sized with
//! `ftruncate`, opened a second time `O_RDONLY`, and unlinked at once, all
//! inside [`create`], before anything is mapped or sent: from then on the
//! object lives only through descriptors and mappings, as a memfd does.
//!
//! The window: between `shm_open` and `shm_unlink` (a few system calls) the
//! name exists. If the process dies inside it, the object stays in the
//! namespace, empty or of the ring's size, until `shm_unlink` of its name or
//! a reboot (on Linux it is a file `/dev/shm/mt…` one can remove; on macOS
//! it can only be unlinked by name). Every error path inside the window
//! unlinks it. Another process of the same uid that guesses the name inside
//! the window could open it; 96 random bits make that impractical.
//!
//! Isolation: the peer receives the read-only descriptor for pages it must
//! not write, so it can only map them `PROT_READ` (`mmap` of a read-only
//! descriptor with `PROT_WRITE | MAP_SHARED` fails with `EACCES`, tested).
//! There are no seals: on Linux a same-uid peer can still reopen the object
//! read-write through `/proc/self/fd` (its mode is 0600 and it owns it), and
//! it could `ftruncate` an object it holds read-write; on macOS the name is
//! gone, objects cannot be reopened without it, and their size cannot change
//! after the first `ftruncate`. So on Linux this backend protects against
//! accidents, not a hostile same-uid peer; the memfd backend is the
//! enforced one there. On macOS the read-only descriptor is the best the
//! system offers (untested on a real Mac).
//!
//! References: shm_open(3), shm_unlink(3), ftruncate(2), fstat(2).

use crate::error::{Error, HandshakeFailure, Result};
use crate::Os;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::Mode;
use rustix::shm;
use std::io::Read;

/// A fresh unguessable object name: `/mt` and 24 hex digits (96 random bits).
pub fn unique_name() -> Result<String> {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            Error::Os(rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
        })?;
    let mut name = String::with_capacity(27);
    name.push_str("/mt");
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    Ok(name)
}

/// Removes the name when dropped (every path out of [`create`]).
struct Unlink<'a>(&'a str);

impl Drop for Unlink<'_> {
    fn drop(&mut self) {
        let _ = shm::unlink(self.0);
    }
}

/// Create an object of `len` bytes; returns a read-write and a read-only
/// descriptor of it. The name is already unlinked when this returns.
pub fn create(len: u64) -> Result<(OwnedFd, OwnedFd)> {
    let name = unique_name()?;
    let rw = shm::open(
        name.as_str(),
        shm::OFlags::RDWR | shm::OFlags::CREATE | shm::OFlags::EXCL,
        Mode::from_raw_mode(0o600),
    )?;
    let _unlink = Unlink(&name);
    rustix::fs::ftruncate(&rw, len)?;
    let ro = shm::open(name.as_str(), shm::OFlags::RDONLY, Mode::empty())?;
    Ok((rw, ro))
}

/// Check a received descriptor: a shared-memory object by
/// [`Os::is_shm_object`] (on Linux a regular file on tmpfs; on macOS not a
/// socket, pipe, directory or device) whose
/// `fstat` size is exactly `claimed`. There are no seals to check.
pub fn check<O: Os>(fd: BorrowedFd<'_>, claimed: u64) -> std::result::Result<(), HandshakeFailure> {
    let st = rustix::fs::fstat(fd).map_err(HandshakeFailure::NotShm)?;
    if !O::is_shm_object(fd, &st).map_err(HandshakeFailure::NotShm)? {
        return Err(HandshakeFailure::NotShm(rustix::io::Errno::INVAL));
    }
    super::check_size(&st, claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fit_macos() {
        let a = unique_name().unwrap();
        let b = unique_name().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 27);
        assert!(a.starts_with("/mt"));
    }
}
