//! `impl Os for Linux`: `SOCK_CLOEXEC | SOCK_NONBLOCK` at creation,
//! `MSG_NOSIGNAL`, `MSG_CMSG_CLOEXEC`, `SO_PEERCRED`, abstract names,
//! `/proc/net/unix`, `MAP_POPULATE`, shm objects on tmpfs (`/dev/shm`),
//! memfd regions ([`crate::memfd`]) and the futex ([`FutexWait`]).
//! References: unix(7), socket(2), statfs(2), proc(5).

use crate::{memfd, FutexWait};
use memtube_posix::{Backend, HandshakeFailure, Os, PeerCred, Result};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::FileType;
use rustix::mm::MapFlags;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use std::ffi::CStr;
use std::path::Path;

/// Linux, for [`memtube_posix`]'s generic types: `Connection<Linux>`, ...
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Linux;

impl Os for Linux {
    type Wait = FutexWait;

    /// Sealed memfds.
    const DEFAULT_BACKEND: Backend = Backend::Memfd;
    const SUN_PATH_LEN: usize = 108;
    /// No `SIGPIPE` when the peer is gone.
    const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
    /// Received descriptors are close-on-exec atomically.
    const RECV_FLAGS: RecvFlags = RecvFlags::CMSG_CLOEXEC;
    /// Shared, pre-faulted.
    const MAP_FLAGS: MapFlags = MapFlags::SHARED.union(MapFlags::POPULATE);

    /// `SOCK_CLOEXEC | SOCK_NONBLOCK`, atomically.
    fn socket(ty: SocketType) -> Result<OwnedFd> {
        Ok(rustix::net::socket_with(
            AddressFamily::UNIX,
            ty,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?)
    }

    /// `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)`.
    fn accept(listener: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
        rustix::net::accept_with(listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)
    }

    /// Nothing to do: `MSG_CMSG_CLOEXEC` already marked it.
    fn received_fd(_fd: &OwnedFd) -> rustix::io::Result<()> {
        Ok(())
    }

    /// `SO_PEERCRED`, read into a plain `struct ucred`: its pid is 0 when
    /// the peer is in a pid namespace this process cannot see.
    fn peer_cred(sock: BorrowedFd<'_>) -> rustix::io::Result<PeerCred> {
        use rustix::fd::AsRawFd;
        let mut c = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `c` is a writable `ucred` of `len` bytes, every bit
        // pattern of which is valid; the descriptor is borrowed for the call.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut c as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(
                rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                    .unwrap_or(rustix::io::Errno::IO),
            );
        }
        Ok(PeerCred {
            pid: c.pid,
            uid: c.uid,
            gid: c.gid,
        })
    }

    fn abstract_addr(name: &[u8]) -> Result<SocketAddrUnix> {
        Ok(SocketAddrUnix::new_abstract_name(name)?)
    }

    /// A line of `/proc/net/unix` with the path and the `__SO_ACCEPTCON`
    /// flag (0x10000).
    fn listed_as_listening(path: &Path) -> bool {
        let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
            return false;
        };
        let Some(want) = path.to_str() else {
            return false;
        };
        table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8
                && f[7] == want
                && u32::from_str_radix(f[3], 16).is_ok_and(|flags| flags & 0x10000 != 0)
        })
    }

    /// A regular file on tmpfs (where glibc's and rustix's `shm_open`
    /// create them, `/dev/shm`).
    fn is_shm_object(fd: BorrowedFd<'_>, st: &rustix::fs::Stat) -> rustix::io::Result<bool> {
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

    fn memfd_create(name: &CStr, len: u64, huge: bool) -> Result<OwnedFd> {
        memfd::create(name, len, huge)
    }

    fn memfd_seal(fd: BorrowedFd<'_>, future_write: bool) -> Result<()> {
        memfd::seal(fd, future_write)
    }

    fn memfd_check(fd: BorrowedFd<'_>, claimed: u64) -> std::result::Result<(), HandshakeFailure> {
        memfd::check(fd, claimed)
    }

    /// `pidfd_open(pid, 0)`: readable once the process exits. `None` for pid
    /// 0 (a peer in a pid namespace we cannot see), before Linux 5.3
    /// (`ENOSYS`), or if the process is already gone (`ESRCH`: the socket
    /// then tells).
    fn watch_process(pid: i32) -> Option<OwnedFd> {
        let pid = rustix::process::Pid::from_raw(pid)?;
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    }

    /// Field 22 (`starttime`, clock ticks after boot) of `/proc/<pid>/stat`;
    /// `None` when the file is missing or the state (field 3) is `Z` or `X`.
    fn process_start(pid: i32) -> rustix::io::Result<Option<u64>> {
        if pid <= 0 {
            return Ok(None);
        }
        let stat = match std::fs::read(format!("/proc/{pid}/stat")) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // ESRCH: the process went away while the file was read.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => {
                return Err(rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
            }
        };
        Ok(parse_stat(&stat))
    }

    /// `SO_PASSPIDFD` (Linux 6.5+): each message arrives with an
    /// `SCM_PIDFD`, a pidfd of the process that sent it, taken by the kernel
    /// from the sender's struct pid (no pid is looked up again, so no race
    /// with pid reuse). Before 6.5, `SO_PASSCRED`: an `SCM_CREDENTIALS`
    /// whose pid the kernel checked (the sender's own unless it has
    /// `CAP_SYS_ADMIN`), opened with `pidfd_open` on receipt.
    fn pass_sender(sock: BorrowedFd<'_>) -> usize {
        pass_sender_with(sock, true)
    }

    /// `SCM_PIDFD`: the descriptor itself (none if the kernel put an error
    /// in its place: the sender was already reaped on kernels that cannot
    /// make a pidfd for it). `SCM_CREDENTIALS`: read as plain bytes (pid 0,
    /// a sender in a pid namespace this process cannot see, is allowed and
    /// gives nothing), then [`watch_process`](Os::watch_process) of the pid.
    unsafe fn sender_watch(level: i32, ty: i32, data: &[u8]) -> Option<OwnedFd> {
        use rustix::fd::FromRawFd;
        if level != libc::SOL_SOCKET {
            return None;
        }
        let first = || Some(i32::from_ne_bytes(data.get(..4)?.try_into().ok()?));
        match ty {
            SCM_PIDFD => {
                let fd = first()?;
                // SAFETY: the caller passes a control message `recvmsg` just
                // delivered, once: an `SCM_PIDFD` of 0 or more is a
                // descriptor the kernel installed for it, owned by nobody.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            }
            // `struct ucred` begins with the pid.
            libc::SCM_CREDENTIALS => Self::watch_process(first()?),
            _ => None,
        }
    }
}

/// `(state, starttime)` from a `/proc/<pid>/stat` line: the command name
/// (field 2) is in parentheses and may hold anything, so the fields are
/// counted from its last `)`. `None` for a zombie or dead process, or a
/// line that does not parse.
fn parse_stat(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the first after the name; field 22 is 19 further.
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// `SCM_PIDFD` (include/linux/socket.h; the same on every architecture).
const SCM_PIDFD: i32 = 0x04;

/// `SO_PASSPIDFD` (asm/socket.h: 76 except on the architectures below).
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PASSPIDFD: i32 = 0x55;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PASSPIDFD: i32 = 76;

/// [`Os::pass_sender`], with `SO_PASSPIDFD` tried first only if `pidfd`
/// (the tests reach the `SO_PASSCRED` fallback through `false`).
fn pass_sender_with(sock: BorrowedFd<'_>, pidfd: bool) -> usize {
    use rustix::fd::AsRawFd;
    let on: libc::c_int = 1;
    let set = |opt: libc::c_int| {
        // SAFETY: `on` is a readable `int` of the given length; the
        // descriptor is borrowed for the call.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    let space = |n: usize| unsafe { libc::CMSG_SPACE(n as libc::c_uint) } as usize;
    if pidfd && set(SO_PASSPIDFD) {
        space(std::mem::size_of::<libc::c_int>())
    } else if set(libc::SO_PASSCRED) {
        space(std::mem::size_of::<libc::ucred>())
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memtube_posix::region::{shm, Mapping};
    use memtube_posix::Error;
    use rustix::fd::AsFd;
    use rustix::io::Errno;

    #[test]
    fn process_start_names_one_process() {
        let me = std::process::id() as i32;
        let start = Linux::process_start(me)
            .unwrap()
            .expect("this process runs");
        assert_eq!(Linux::process_start(me).unwrap(), Some(start));
        // A child started later, then reaped: gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert_eq!(Linux::process_start(pid).unwrap(), None);
        assert_eq!(Linux::process_start(0).unwrap(), None);
        assert_eq!(Linux::process_start(-1).unwrap(), None);
        // The name may hold spaces and parentheses.
        let line = b"42 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20\n";
        assert_eq!(parse_stat(line), Some(777));
        assert_eq!(
            parse_stat(b"42 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 1"),
            None
        );
        assert_eq!(parse_stat(b"42 (x) S 1 2"), None);
    }

    #[test]
    fn peer_cred_is_this_process() {
        let me = rustix::process::geteuid().as_raw();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = Linux::peer_cred(a.as_fd()).unwrap();
        assert_eq!((c.uid, c.pid as u32), (me, std::process::id()));
        assert_eq!(c.gid, rustix::process::getegid().as_raw());
    }

    /// One message from a forked child to `b` (prepared by
    /// `pass_sender_with(b, pidfd)`): the watch `sender_watch` makes of
    /// what the kernel attached, readable only once that child exited.
    #[test]
    fn the_sender_of_a_message_is_watched() {
        use rustix::fd::AsRawFd;
        use rustix::net::{socketpair, SocketFlags, SocketType};
        // SO_PASSPIDFD (this kernel permitting), then the SO_PASSCRED fallback.
        for pidfd in [true, false] {
            let (a, b) = socketpair(
                AddressFamily::UNIX,
                SocketType::SEQPACKET,
                SocketFlags::CLOEXEC,
                None,
            )
            .unwrap();
            let room = pass_sender_with(b.as_fd(), pidfd);
            assert!(room > 0, "no identity passing");
            // The child waits on `hold` until its write end closes.
            let mut hold = [0; 2];
            // SAFETY: `hold` has room for the two descriptors.
            let r = unsafe { libc::pipe2(hold.as_mut_ptr(), libc::O_CLOEXEC) };
            assert_eq!(r, 0);
            // SAFETY: the child calls only async-signal-safe functions
            // (send, read, _exit) before it exits.
            let child = unsafe { libc::fork() };
            assert!(child >= 0);
            if child == 0 {
                // SAFETY: async-signal-safe calls on descriptors we hold.
                unsafe {
                    libc::close(hold[1]);
                    libc::send(a.as_raw_fd(), b"x".as_ptr().cast(), 1, 0);
                    let mut c = 0u8;
                    libc::read(hold[0], (&mut c as *mut u8).cast(), 1);
                    libc::_exit(0);
                }
            }
            let mut buf = [0u8; 8];
            let mut space = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: all zeroes is a valid `msghdr`; fields set below.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = space.as_mut_ptr().cast();
            msg.msg_controllen = room as _;
            // SAFETY: `msg` names `buf` and `room` bytes of `space`, live
            // for the call.
            let n = unsafe { libc::recvmsg(b.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            assert_eq!(n, 1);
            assert_eq!(msg.msg_flags & libc::MSG_CTRUNC, 0);
            let mut watch = None;
            // SAFETY: the kernel wrote well-formed control messages into
            // `space`, walked with the libc macros within `msg_controllen`.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let data = std::slice::from_raw_parts(libc::CMSG_DATA(c), len);
                    if let Some(w) = Linux::sender_watch((*c).cmsg_level, (*c).cmsg_type, data) {
                        assert!(watch.replace(w).is_none());
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let watch = watch.expect("no sender identity");
            let exited = |w: &OwnedFd| {
                let mut p = libc::pollfd {
                    fd: w.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid `pollfd`, no waiting.
                unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 }
            };
            assert!(!exited(&watch), "pidfd {pidfd}");
            // SAFETY: our own pipe's descriptors, closed once each.
            unsafe {
                libc::close(hold[0]);
                libc::close(hold[1]);
            }
            let mut status = 0;
            // SAFETY: `child` is our child; `status` is a valid out-pointer.
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            assert!(exited(&watch), "pidfd {pidfd}");
        }
    }

    #[test]
    fn only_usable_identities_are_watched() {
        let cred = |pid: i32| {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&pid.to_ne_bytes());
            b
        };
        // SAFETY: none of these messages carries a descriptor that anything
        // else owns (an error in place of a pidfd, pids, truncated
        // payloads, other types).
        unsafe {
            // pid 0: a sender in a pid namespace we cannot see.
            assert!(
                Linux::sender_watch(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &cred(0)).is_none()
            );
            // This process: watchable.
            let me = std::process::id() as i32;
            assert!(
                Linux::sender_watch(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &cred(me)).is_some()
            );
            // The kernel's error in place of a pidfd (sender already reaped).
            let e = (-libc::ESRCH).to_ne_bytes();
            assert!(Linux::sender_watch(libc::SOL_SOCKET, SCM_PIDFD, &e).is_none());
            assert!(Linux::sender_watch(libc::SOL_SOCKET, SCM_PIDFD, &e[..2]).is_none());
            assert!(Linux::sender_watch(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &[]).is_none());
            assert!(Linux::sender_watch(libc::SOL_IP, SCM_PIDFD, &cred(me)).is_none());
            assert!(Linux::sender_watch(libc::SOL_SOCKET, 99, &cred(me)).is_none());
        }
    }

    #[test]
    fn abstract_names_are_abstract() {
        let a = Linux::abstract_addr(b"memtube-test").unwrap();
        assert_eq!(a.abstract_name(), Some(&b"memtube-test"[..]));
    }

    #[test]
    fn a_bound_listening_socket_is_listed() {
        let path = std::env::temp_dir().join(format!("mt-proc-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        assert!(!Linux::listed_as_listening(&path));
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // /proc may be missing in a sandbox: then nothing is listed.
        if std::fs::metadata("/proc/net/unix").is_ok() {
            assert!(Linux::listed_as_listening(&path));
        }
        drop(l);
        std::fs::remove_file(&path).unwrap();
    }

    // The POSIX shm backend under Linux's rules (`is_shm_object`: tmpfs).

    #[test]
    fn shm_object_is_unlinked_sized_and_read_only_through_ro() {
        let (rw, ro) = shm::create(8192).unwrap();
        shm::check::<Linux>(rw.as_fd(), 8192).unwrap();
        shm::check::<Linux>(ro.as_fd(), 8192).unwrap();
        assert_eq!(
            shm::check::<Linux>(ro.as_fd(), 4096),
            Err(HandshakeFailure::Size {
                claimed: 4096,
                actual: 8192
            })
        );
        let w = Mapping::new::<Linux>(rw.as_fd(), 8192, true, false).unwrap();
        // SAFETY: within the fresh, writable 8192-byte mapping.
        unsafe { *w.as_ptr().add(8191) = 9 };
        // The read-only descriptor maps only read-only.
        assert_eq!(
            Mapping::new::<Linux>(ro.as_fd(), 8192, true, false).err(),
            Some(Error::Os(Errno::ACCESS))
        );
        let r = Mapping::new::<Linux>(ro.as_fd(), 8192, false, false).unwrap();
        // SAFETY: within the readable 8192-byte mapping.
        assert_eq!(unsafe { *r.as_ptr().add(8191) }, 9);
        // Nothing is left in the namespace.
        let left: Vec<_> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("mt"))
            .filter(|e| {
                rustix::fs::stat(e.path())
                    .is_ok_and(|st| st.st_ino == rustix::fs::fstat(&rw).unwrap().st_ino)
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn shm_check_refuses_sockets_and_wrong_sizes() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(
            shm::check::<Linux>(a.as_fd(), 4096),
            Err(HandshakeFailure::NotShm(_))
        ));
        let (rw, _ro) = shm::create(4096).unwrap();
        assert!(matches!(
            shm::check::<Linux>(rw.as_fd(), 8192),
            Err(HandshakeFailure::Size { .. })
        ));
    }
}
