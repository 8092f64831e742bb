//! macOS: no `SOCK_CLOEXEC` / `SOCK_NONBLOCK` / `MSG_NOSIGNAL` /
//! `MSG_CMSG_CLOEXEC` (set with `fcntl`, `ioctl(FIONBIO)` and
//! `SO_NOSIGPIPE` instead), `getpeereid` plus `LOCAL_PEERPID` for the peer's
//! identity, no abstract names, a 104-byte `sun_path`, no `MAP_POPULATE`.
//! References: unix(4), getpeereid(3), setsockopt(2) on macOS.

use crate::error::{Error, Result};
use crate::peer::PeerCred;
use crate::region::Backend;
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::{Errno, FdFlags};
use rustix::mm::MapFlags;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType};

/// The only region backend: `shm_open` objects.
pub(crate) const DEFAULT_BACKEND: Backend = Backend::PosixShm;
/// Bytes of `sockaddr_un.sun_path` (the path plus its NUL must fit).
pub(crate) const SUN_PATH_LEN: usize = 104;
/// Sockets carry `SO_NOSIGPIPE` instead of a per-send flag.
pub(crate) const SEND_FLAGS: SendFlags = SendFlags::empty();
/// No `MSG_CMSG_CLOEXEC`: see [`received_fd`].
pub(crate) const RECV_FLAGS: RecvFlags = RecvFlags::empty();
/// Shared; macOS has no pre-faulting flag.
pub(crate) const MAP_FLAGS: MapFlags = MapFlags::SHARED;

fn setup(fd: OwnedFd) -> rustix::io::Result<OwnedFd> {
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&fd, true)?;
    rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
    Ok(fd)
}

/// A new non-blocking, close-on-exec `AF_UNIX` socket without `SIGPIPE`.
/// (Not atomic: a `fork` + `exec` in another thread between `socket` and
/// `fcntl` would inherit it.)
pub(crate) fn socket(ty: SocketType) -> Result<OwnedFd> {
    Ok(setup(rustix::net::socket(AddressFamily::UNIX, ty, None)?)?)
}

/// `accept`, then the same flags as [`socket`].
pub(crate) fn accept(listener: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    setup(rustix::net::accept(listener)?)
}

/// Mark a received descriptor close-on-exec (macOS has no `MSG_CMSG_CLOEXEC`).
pub(crate) fn received_fd(fd: &OwnedFd) -> rustix::io::Result<()> {
    rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)
}

/// `getpeereid` (uid, gid) and `getsockopt(SOL_LOCAL, LOCAL_PEERPID)` (pid),
/// as recorded by the kernel at connect / listen.
pub(crate) fn peer_cred(sock: BorrowedFd<'_>) -> rustix::io::Result<PeerCred> {
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
pub(crate) fn abstract_addr(_name: &[u8]) -> Result<SocketAddrUnix> {
    Err(Error::Unsupported(
        "abstract socket names (\"@name\") are Linux-only; use a path",
    ))
}

/// Whether `fd` may be a POSIX shm object. macOS's `fstat` of one reports
/// its size and owner but no reliable file type, so only the types it can
/// never be are refused (socket, pipe, directory, device, link).
pub(crate) fn is_shm_object(
    _fd: BorrowedFd<'_>,
    st: &rustix::fs::Stat,
) -> rustix::io::Result<bool> {
    use rustix::fs::FileType;
    Ok(matches!(
        FileType::from_raw_mode(st.st_mode),
        FileType::RegularFile | FileType::Unknown
    ))
}
