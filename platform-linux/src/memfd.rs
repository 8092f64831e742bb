//! Linux: `memfd_create`, `ftruncate`, `F_ADD_SEALS`: shared regions that
//! live only as long as a descriptor or a mapping of them does.
//!
//! A region is an anonymous memory file (nothing in the file system or in
//! `/dev/shm`, so nothing is left behind when a process dies), sized, then
//! sealed against shrinking and growing (a peer cannot make our mapping
//! SIGBUS) and, once set up, against further sealing. The pages a side writes
//! are also sealed with `F_SEAL_FUTURE_WRITE`, so the peer can only map them
//! read-only: the kernel enforces that each side writes only its own pages.
//!
//! References: memfd_create(2), fcntl(2) "File Sealing", mmap(2), mlock(2).

use memtube_posix::region::{check_size, huge_err};
use memtube_posix::{HandshakeFailure, Result};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{MemfdFlags, SealFlags};
use std::ffi::CStr;

/// Seals every region carries before it is sent.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Create a memfd of `len` bytes (`MFD_CLOEXEC | MFD_ALLOW_SEALING`, plus
/// `MFD_HUGETLB` with `huge`), sealed against shrink and grow. Further
/// sealing stays allowed until [`seal`].
///
/// With `huge`, `len` must be a multiple of the huge page size; a kernel
/// without huge pages gives [`Error::HugePagesUnavailable`](memtube_posix::Error::HugePagesUnavailable) (here or when
/// mapping), never a silent fallback.
pub fn create(name: &CStr, len: u64, huge: bool) -> Result<OwnedFd> {
    let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    if huge {
        flags |= MemfdFlags::HUGETLB;
    }
    let fd = rustix::fs::memfd_create(name, flags).map_err(|e| huge_err(huge, e))?;
    rustix::fs::ftruncate(&fd, len).map_err(|e| huge_err(huge, e))?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)?;
    Ok(fd)
}

/// Finish sealing: `F_SEAL_SEAL`, and `F_SEAL_FUTURE_WRITE` first when
/// `future_write` (no new writable mapping of the file can be made, by
/// anyone; existing ones stay writable).
pub fn seal(fd: BorrowedFd<'_>, future_write: bool) -> Result<()> {
    if future_write {
        rustix::fs::fcntl_add_seals(fd, SealFlags::FUTURE_WRITE)?;
    }
    rustix::fs::fcntl_add_seals(fd, SealFlags::SEAL)?;
    Ok(())
}

/// Check a received descriptor: a memfd (sealing supported), carrying
/// [`REQUIRED_SEALS`], exactly `claimed` bytes long (`fstat`).
pub fn check(fd: BorrowedFd<'_>, claimed: u64) -> std::result::Result<(), HandshakeFailure> {
    // Only shmem and hugetlbfs files answer F_GET_SEALS; anything else
    // (regular file, pipe, socket) fails with EINVAL.
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(HandshakeFailure::NotMemfd)?;
    if !seals.contains(REQUIRED_SEALS) {
        return Err(HandshakeFailure::MissingSeals);
    }
    let st = rustix::fs::fstat(fd).map_err(HandshakeFailure::NotMemfd)?;
    check_size(&st, claimed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Linux;
    use memtube_posix::region::Mapping;
    use memtube_posix::Error;
    use rustix::fd::AsFd;
    use rustix::io::Errno;

    #[test]
    fn created_region_passes_check_and_is_zeroed() {
        let fd = create(c"t", 8192, false).unwrap();
        seal(fd.as_fd(), false).unwrap();
        check(fd.as_fd(), 8192).unwrap();
        assert_eq!(
            check(fd.as_fd(), 4096),
            Err(HandshakeFailure::Size {
                claimed: 4096,
                actual: 8192
            })
        );
        let m = Mapping::new::<Linux>(fd.as_fd(), 8192, true, false).unwrap();
        // SAFETY: within the fresh, writable 8192-byte mapping.
        unsafe {
            assert_eq!(*m.as_ptr().add(8191), 0);
            *m.as_ptr() = 7;
        }
        // The size is sealed.
        assert_eq!(rustix::fs::ftruncate(&fd, 4096), Err(Errno::PERM));
        assert_eq!(rustix::fs::ftruncate(&fd, 16384), Err(Errno::PERM));
    }

    #[test]
    fn unsealed_and_non_memfd_are_refused() {
        let fd = rustix::fs::memfd_create(c"t", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        assert_eq!(check(fd.as_fd(), 4096), Err(HandshakeFailure::MissingSeals));
        let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(
            check(r.as_fd(), 4096),
            Err(HandshakeFailure::NotMemfd(_))
        ));
    }

    #[test]
    fn huge_pages_work_or_fail_clearly() {
        let reserved = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let len = 2 << 20;
        let r = create(c"huge", len, true).and_then(|fd| {
            seal(fd.as_fd(), false)?;
            Mapping::new::<Linux>(fd.as_fd(), len as usize, true, true)
        });
        if reserved == 0 {
            // No huge pages reserved: a clear error, no silent fallback.
            assert!(matches!(r, Err(Error::HugePagesUnavailable(_))), "{r:?}");
        } else if let Ok(m) = r {
            assert_eq!(m.len(), len as usize);
        }
    }

    #[test]
    fn future_write_seal_forbids_new_writable_mappings() {
        let fd = create(c"t", 4096, false).unwrap();
        let mine = Mapping::new::<Linux>(fd.as_fd(), 4096, true, false).unwrap();
        seal(fd.as_fd(), true).unwrap();
        // Our existing mapping stays writable.
        // SAFETY: within the writable 4096-byte mapping.
        unsafe { *mine.as_ptr() = 1 };
        assert_eq!(
            Mapping::new::<Linux>(fd.as_fd(), 4096, true, false).err(),
            Some(Error::Os(Errno::PERM))
        );
        let ro = Mapping::new::<Linux>(fd.as_fd(), 4096, false, false).unwrap();
        // SAFETY: within the readable 4096-byte mapping.
        assert_eq!(unsafe { *ro.as_ptr() }, 1);
    }
}
