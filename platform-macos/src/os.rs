//! `impl Os for MacOs`: no `SOCK_CLOEXEC` / `SOCK_NONBLOCK` / `MSG_NOSIGNAL` /
//! `MSG_CMSG_CLOEXEC` (set with `fcntl`, `ioctl(FIONBIO)` and
//! `SO_NOSIGPIPE` instead), `getpeereid` plus `LOCAL_PEERPID` for the peer's
//! identity, no abstract names, a 104-byte `sun_path`, no `MAP_POPULATE`,
//! no memfds (regions are `shm_open` objects), and the `os_sync` /
//! `__ulock` wait ([`UlockWait`]).
//! References: unix(4), getpeereid(3), setsockopt(2) on macOS.

use crate::UlockWait;
use memtube_posix::{Backend, Error, HandshakeFailure, Os, PeerCred, Result};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::{Errno, FdFlags};
use rustix::mm::MapFlags;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType};
use std::ffi::CStr;
use std::path::Path;

/// macOS, for [`memtube_posix`]'s generic types: `Connection<MacOs>`, ...
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacOs;

fn setup(fd: OwnedFd) -> rustix::io::Result<OwnedFd> {
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&fd, true)?;
    rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
    Ok(fd)
}

const NO_MEMFD: &str = "memfd regions are Linux-only; use Backend::PosixShm";

impl Os for MacOs {
    type Wait = UlockWait;

    /// The only region backend: `shm_open` objects.
    const DEFAULT_BACKEND: Backend = Backend::PosixShm;
    const SUN_PATH_LEN: usize = 104;
    /// Sockets carry `SO_NOSIGPIPE` instead of a per-send flag.
    const SEND_FLAGS: SendFlags = SendFlags::empty();
    /// No `MSG_CMSG_CLOEXEC`: see [`received_fd`](Self::received_fd).
    const RECV_FLAGS: RecvFlags = RecvFlags::empty();
    /// Shared; macOS has no pre-faulting flag.
    const MAP_FLAGS: MapFlags = MapFlags::SHARED;

    /// `socket`, then `FD_CLOEXEC`, `FIONBIO` and `SO_NOSIGPIPE`. (Not
    /// atomic: a `fork` + `exec` in another thread between `socket` and
    /// `fcntl` would inherit it.)
    fn socket(ty: SocketType) -> Result<OwnedFd> {
        Ok(setup(rustix::net::socket(AddressFamily::UNIX, ty, None)?)?)
    }

    /// `accept`, then the same flags as [`socket`](Self::socket).
    fn accept(listener: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
        setup(rustix::net::accept(listener)?)
    }

    /// `FD_CLOEXEC` (macOS has no `MSG_CMSG_CLOEXEC`).
    fn received_fd(fd: &OwnedFd) -> rustix::io::Result<()> {
        rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)
    }

    /// `getpeereid` (uid, gid) and `getsockopt(SOL_LOCAL, LOCAL_PEERPID)` (pid).
    fn peer_cred(sock: BorrowedFd<'_>) -> rustix::io::Result<PeerCred> {
        let mut uid: libc::uid_t = 0;
        let mut gid: libc::gid_t = 0;
        // SAFETY: `sock` is a live descriptor for the call; `uid` and `gid` are
        // valid, writable locals of the types getpeereid(3) writes.
        if unsafe { libc::getpeereid(sock.as_raw_fd(), &mut uid, &mut gid) } != 0 {
            return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
        }
        let mut pid: libc::pid_t = 0;
        let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
        // SAFETY: `pid` is a writable `pid_t` and `len` its size, as
        // LOCAL_PEERPID requires; the kernel writes at most `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_LOCAL,
                libc::LOCAL_PEERPID,
                (&mut pid as *mut libc::pid_t).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
        }
        Ok(PeerCred { pid, uid, gid })
    }

    /// macOS has no abstract socket names.
    fn abstract_addr(_name: &[u8]) -> Result<SocketAddrUnix> {
        Err(Error::Unsupported(
            "abstract socket names (\"@name\") are Linux-only; use a path",
        ))
    }

    /// No socket table to read (a connection attempt decides).
    fn listed_as_listening(_path: &Path) -> bool {
        false
    }

    /// macOS's `fstat` of a shm object reports its size and owner but no
    /// reliable file type, so only the types it can never be are refused
    /// (socket, pipe, directory, device, link).
    fn is_shm_object(_fd: BorrowedFd<'_>, st: &rustix::fs::Stat) -> rustix::io::Result<bool> {
        use rustix::fs::FileType;
        Ok(matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::RegularFile | FileType::Unknown
        ))
    }

    fn memfd_create(_name: &CStr, _len: u64, _huge: bool) -> Result<OwnedFd> {
        Err(Error::Unsupported(NO_MEMFD))
    }

    fn memfd_seal(_fd: BorrowedFd<'_>, _future_write: bool) -> Result<()> {
        Err(Error::Unsupported(NO_MEMFD))
    }

    /// Nothing received on macOS is a memfd.
    fn memfd_check(
        _fd: BorrowedFd<'_>,
        _claimed: u64,
    ) -> std::result::Result<(), HandshakeFailure> {
        Err(HandshakeFailure::NotMemfd(Errno::NOSYS))
    }

    /// `proc_pidinfo(PROC_PIDTBSDINFO)`: the start time in microseconds
    /// since the epoch; `None` when there is no such process (`ESRCH`) or
    /// it is a zombie.
    fn process_start(pid: i32) -> rustix::io::Result<Option<u64>> {
        if pid <= 0 {
            return Ok(None);
        }
        // SAFETY: `proc_bsdinfo` is plain old data; all zeroes is a value.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // SAFETY: `info` is a writable `proc_bsdinfo` of `size` bytes, as
        // PROC_PIDTBSDINFO requires; the kernel writes at most `size` bytes.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            )
        };
        if n != size {
            let e = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO);
            return if n <= 0 && e == Errno::SRCH {
                Ok(None)
            } else {
                Err(e)
            };
        }
        // SZOMB in <sys/proc.h>.
        const SZOMB: u32 = 5;
        if info.pbi_status == SZOMB {
            return Ok(None);
        }
        Ok(Some(
            info.pbi_start_tvsec
                .wrapping_mul(1_000_000)
                .wrapping_add(info.pbi_start_tvusec),
        ))
    }
}
