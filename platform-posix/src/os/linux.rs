//! Linux: `SOCK_CLOEXEC | SOCK_NONBLOCK` at creation, `MSG_NOSIGNAL`,
//! `MSG_CMSG_CLOEXEC`, `SO_PEERCRED`, abstract names, `MAP_POPULATE`, and
//! shm objects on tmpfs (`/dev/shm`). References: unix(7), socket(2),
//! statfs(2).

use crate::error::Result;
use crate::peer::PeerCred;
use crate::region::Backend;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::FileType;
use rustix::mm::MapFlags;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// The default region backend: sealed memfds.
pub(crate) const DEFAULT_BACKEND: Backend = Backend::Memfd;
/// Bytes of `sockaddr_un.sun_path` (the path plus its NUL must fit).
pub(crate) const SUN_PATH_LEN: usize = 108;
/// Flags of every send: no `SIGPIPE` when the peer is gone.
pub(crate) const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
/// Flags of the handshake `recvmsg`: received descriptors are close-on-exec atomically.
pub(crate) const RECV_FLAGS: RecvFlags = RecvFlags::CMSG_CLOEXEC;
/// Flags of every region mapping: shared, pre-faulted.
pub(crate) const MAP_FLAGS: MapFlags = MapFlags::SHARED.union(MapFlags::POPULATE);

/// A new non-blocking, close-on-exec `AF_UNIX` socket (atomically).
pub(crate) fn socket(ty: SocketType) -> Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        ty,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)`.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    rustix::net::accept_with(listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)
}

/// Nothing to do: `MSG_CMSG_CLOEXEC` already marked received descriptors.
pub(crate) fn received_fd(_fd: &OwnedFd) -> rustix::io::Result<()> {
    Ok(())
}

/// `SO_PEERCRED`: pid, uid and gid the kernel recorded at connect / listen.
pub(crate) fn peer_cred(sock: BorrowedFd<'_>) -> rustix::io::Result<PeerCred> {
    let c = rustix::net::sockopt::socket_peercred(sock)?;
    Ok(PeerCred {
        pid: c.pid.as_raw_nonzero().get(),
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// A Linux abstract socket name.
pub(crate) fn abstract_addr(name: &[u8]) -> Result<SocketAddrUnix> {
    Ok(SocketAddrUnix::new_abstract_name(name)?)
}

/// Whether `fd` looks like a POSIX shm object: a regular file on tmpfs
/// (where glibc's and rustix's `shm_open` create them, `/dev/shm`).
pub(crate) fn is_shm_object(fd: BorrowedFd<'_>, st: &rustix::fs::Stat) -> rustix::io::Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(false);
    }
    let fs = rustix::fs::fstatfs(fd)?;
    // The field's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let magic = i64::from(fs.f_type as i64);
    Ok(magic == TMPFS_MAGIC)
}
