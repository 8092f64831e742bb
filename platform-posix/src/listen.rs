//! `socket` / `bind` / `listen` / `accept`: the listening side, which
//! creates each connection's rings and sends the handshake.
//!
//! A path socket is created mode 0600 (`fchmod` on the socket before `bind`,
//! which Linux applies to the new file, then `chmod` of the path after it).
//! Listeners on a path serialize through a lock file beside it
//! (`<path>.lock`, `flock`ed for the listener's whole life): a second memtube
//! listener gets [`Error::AddrInUse`] without touching the socket, so a
//! socket that is bound but not yet listening is never taken for stale. With
//! the lock held, if the path exists, `/proc/net/unix` and then a connection
//! attempt decide (for listeners of other programs): a live listener
//! answers and its socket is left alone ([`Error::AddrInUse`]); a stale
//! socket file (nobody listening: `ECONNREFUSED`) is removed and replaced.
//! A file at the path that is not a socket is never removed. The socket file
//! is removed when the [`Listener`] drops, if it is still ours.
//! Reference: unix(7), bind(2), listen(2), accept(2).

use crate::conn::Connection;
use crate::error::{Error, Result};
use crate::handshake;
use crate::liveness::Link;
use crate::options::Options;
use crate::peer;
use crate::rings;
use crate::sock::{self, Addr};
use crate::Os;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use std::marker::PhantomData;
use std::time::Duration;

/// A listening socket. Accepts connections one after another, each with its
/// own rings.
pub struct Listener<O: Os> {
    sock: OwnedFd,
    addr: Addr,
    opts: Options,
    /// Device and inode of the socket file we created (path addresses).
    file: Option<(u64, u64)>,
    /// The `flock`ed `<path>.lock` (path addresses), held while we live.
    lock: Option<PathLock>,
    /// The system whose connections it accepts.
    os: PhantomData<fn() -> O>,
}

impl<O: Os> std::fmt::Debug for Listener<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("sock", &self.sock)
            .field("addr", &self.addr)
            .field("opts", &self.opts)
            .finish()
    }
}

// The field types differ between targets (u64 here, narrower on some 32-bit ones).
#[allow(clippy::unnecessary_cast)]
fn dev_ino(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Listen on `addr` (a path, or `"@name"` for an abstract name) with `opts`.
///
/// Errors: [`Error::AddrInUse`] if a live listener owns the address,
/// [`Error::NotASocket`] if something that is not a socket (a file, a
/// directory, a symbolic link) is at the path, [`Error::Os`] otherwise.
///
/// ```
/// use memtube_posix::{connect, listen, Connection, Listener, Options, Os, Result};
/// use std::time::Duration;
///
/// // One message from a connecting process, on any system `O`.
/// fn first_message<O: Os>(path: &std::path::Path) -> Result<Vec<u8>> {
///     let listener: Listener<O> = listen(path, &Options::new().capacity(4096))?;
///     let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
///     let msg = conn.receiver()?.recv_timeout(Duration::from_secs(10))?;
///     Ok(msg.payload().to_vec())
/// }
///
/// // Its peer.
/// fn say_hello<O: Os>(path: &std::path::Path) -> Result<()> {
///     let mut conn: Connection<O> = connect(path, &Options::new().capacity(4096))?;
///     conn.sender()?.send_timeout(b"hello", 1, Duration::from_secs(10))
/// }
/// /// ```
pub fn listen<O: Os>(addr: impl Into<Addr>, opts: &Options) -> Result<Listener<O>> {
    let addr = addr.into();
    // Fail early on options that can never work.
    if memtube_ring::region_size(opts.capacity).is_none() {
        return Err(Error::Ring(memtube_ring::Error::BadCapacity(opts.capacity)));
    }
    let ty = sock::socket_type(opts.backend_for::<O>());
    let sa = addr.sockaddr::<O>()?;
    let s = sock::socket::<O>(ty)?;
    let mut file = None;
    let mut lock = None;
    if let Addr::Path(path) = &addr {
        lock = Some(PathLock::acquire(path)?);
        // The bound file takes the socket inode's mode (less the umask).
        let _ = rustix::fs::fchmod(&s, Mode::from_raw_mode(0o600));
        match rustix::net::bind(&s, &sa) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                replace_if_stale::<O>(path, &sa, ty)?;
                rustix::net::bind(&s, &sa).map_err(|e| match e {
                    Errno::ADDRINUSE => Error::AddrInUse,
                    e => Error::Os(e),
                })?;
            }
            Err(e) => return Err(Error::Os(e)),
        }
        rustix::fs::chmod(path.as_path(), Mode::from_raw_mode(0o600))?;
        file = Some(dev_ino(&rustix::fs::stat(path.as_path())?));
    } else {
        rustix::net::bind(&s, &sa).map_err(|e| match e {
            Errno::ADDRINUSE => Error::AddrInUse,
            e => Error::Os(e),
        })?;
    }
    rustix::net::listen(&s, 128)?;
    Ok(Listener {
        sock: s,
        addr,
        opts: opts.clone(),
        file,
        lock,
        os: PhantomData,
    })
}

fn replace_if_stale<O: Os>(
    path: &std::path::Path,
    sa: &rustix::net::SocketAddrUnix,
    ty: rustix::net::SocketType,
) -> Result<()> {
    // `lstat`: a symbolic link at the path is itself "not a socket", so it
    // is never followed, and never unlinked below.
    let st = rustix::fs::lstat(path)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(Error::NotASocket(path.to_path_buf()));
    }
    if O::listed_as_listening(path) {
        return Err(Error::AddrInUse);
    }
    // Not listed (or /proc unavailable): ask the socket itself. A live
    // listener then sees one connection that closes at once; `accept` skips those.
    let probe = sock::socket::<O>(ty)?;
    match rustix::net::connect(&probe, sa) {
        // Someone answers (or its backlog is full): a live listener.
        Ok(()) | Err(Errno::AGAIN) => Err(Error::AddrInUse),
        Err(Errno::CONNREFUSED) => {
            rustix::fs::unlink(path)?;
            Ok(())
        }
        Err(e) => Err(Error::Os(e)),
    }
}

/// Whether an accepted socket's peer already closed without sending anything.
fn closed_before_handshake(s: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    matches!(
        rustix::net::recv(
            s,
            &mut b[..],
            rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT
        ),
        Ok((_, 0))
    )
}

impl<O: Os> Listener<O> {
    /// Accept one connection: wait for a peer, check its uid, create and
    /// send its rings, and wait (up to the handshake timeout) for it to
    /// attach.
    ///
    /// An error refuses this one peer ([`Error::PermissionDenied`],
    /// [`Error::Handshake`], ...); the listener keeps working, so a server
    /// loops on `accept`. With a [`CancelToken`](crate::CancelToken) in the
    /// listener's options, a cancelled token ends the wait (for a peer, or
    /// for its answer to the handshake) with [`Error::Cancelled`].
    pub fn accept(&self) -> Result<Connection<O>> {
        self.accept_with(&self.opts, None)
    }

    /// [`accept`](Self::accept), waiting at most `timeout` for a peer
    /// ([`Error::Timeout`]).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection<O>> {
        self.accept_with(&self.opts, Some(timeout))
    }

    /// [`accept`](Self::accept) with other options for this one connection
    /// (capacity, duplex, pure spin, uid policy, cancel token, ...) than the
    /// listener's, waiting at most `timeout` (`None`: no limit).
    pub fn accept_with(&self, opts: &Options, timeout: Option<Duration>) -> Result<Connection<O>> {
        if memtube_ring::region_size(opts.capacity).is_none() {
            return Err(Error::Ring(memtube_ring::Error::BadCapacity(opts.capacity)));
        }
        let deadline = sock::deadline(timeout);
        let s = loop {
            sock::wait_readable(self.sock.as_fd(), deadline, opts.cancel.as_ref())?;
            match O::accept(self.sock.as_fd()) {
                // A peer that left before the handshake (for example another
                // `listen` probing whether we are alive) is skipped.
                Ok(s) if closed_before_handshake(&s) => continue,
                Ok(s) => break s,
                Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
                Err(e) => return Err(Error::Os(e)),
            }
        };
        let cred = peer::check::<O>(s.as_fd(), &opts.uid_policy)?;
        let hs_deadline = sock::deadline(Some(opts.handshake_timeout));
        let created = rings::create::<O>(opts)?;
        let fds: Vec<BorrowedFd<'_>> = created.fds.iter().map(|f| f.as_fd()).collect();
        handshake::send::<O>(s.as_fd(), &created.hs, &fds)?;
        // Our copies of the descriptors are no longer needed: the mappings
        // keep the memory alive.
        drop(fds);
        drop(created.fds);
        // The wait for the answer, cancellable (`recv_ack` then reads at once).
        sock::wait_readable(s.as_fd(), hs_deadline, opts.cancel.as_ref())?;
        handshake::recv_ack(s.as_fd(), hs_deadline)?;
        // SO_PEERCRED's pid is the process that connected: watch it too.
        let watch = O::watch_process(cred.pid);
        Connection::new(
            created.ours,
            Link::new(s, O::SEND_FLAGS, opts.cancel.clone(), watch),
            cred,
        )
    }

    /// The address listened on.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The listening socket (to poll it with other descriptors).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl<O: Os> Drop for Listener<O> {
    fn drop(&mut self) {
        // A forked child's copy: the socket file is its parent's (the lock
        // checks the same for itself).
        let inherited = self
            .lock
            .as_ref()
            .is_some_and(|l| std::process::id() != l.owner);
        if let (Addr::Path(p), Some(ours), false) = (&self.addr, self.file, inherited) {
            // Remove the file only if it is still the one we bound.
            if rustix::fs::stat(p.as_path()).is_ok_and(|st| dev_ino(&st) == ours) {
                let _ = rustix::fs::unlink(p.as_path());
            }
        }
        // Then the lock (removed while still held; see `PathLock`).
        self.lock.take();
    }
}

/// An exclusive `flock` on `<path>.lock`, so that at most one memtube
/// listener at a time owns a socket path.
///
/// The lock file is removed while the lock is held, when the listener drops.
/// A process that opened it just before waits, then finds after locking that
/// the path no longer names the inode it locked, and starts over; so two
/// holders never coexist. Reference: flock(2).
///
/// memtube never takes over or removes a file it did not make: a lock file
/// holds [`LOCK_MAGIC`] from the moment it appears (written under a private
/// name, then hard-linked into place). A file at that name without it (a
/// user's, or an empty one) is refused with [`Error::ForeignLockFile`] and
/// left as it is; a stale memtube lock file (its process died) is reused.
#[derive(Debug)]
struct PathLock {
    fd: OwnedFd,
    path: std::path::PathBuf,
    /// The process that took it: a forked child's copy removes nothing.
    owner: u32,
}

impl PathLock {
    fn acquire(socket_path: &std::path::Path) -> Result<Self> {
        use rustix::fs::{FlockOperation, OFlags};
        let mut name = socket_path.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        // A few rounds at most: each retry means a holder just removed it.
        for _ in 0..16 {
            // Ours appears whole: written under a private name, then linked
            // into place (EEXIST: there is one already). So a lock file is
            // never seen empty, and an empty one is nobody's.
            let fd = match Self::create_marked(&path)? {
                Some(fd) => fd,
                None => match rustix::fs::open(&path, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => continue,
                    // A symbolic link (O_NOFOLLOW), or a directory.
                    Err(Errno::LOOP) | Err(Errno::ISDIR) => {
                        return Err(Error::ForeignLockFile(path))
                    }
                    Err(e) => return Err(Error::Os(e)),
                },
            };
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => return Err(Error::AddrInUse),
                Err(e) => return Err(Error::Os(e)),
            }
            let st = rustix::fs::fstat(&fd)?;
            let locked = dev_ino(&st);
            match rustix::fs::lstat(&path) {
                Ok(st) if dev_ino(&st) == locked => {}
                Ok(_) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::Os(e)),
            }
            // Ours or a stale one of memtube's (its listener died): marked.
            // Anything else is someone's file.
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || !holds_magic(&fd)? {
                return Err(Error::ForeignLockFile(path));
            }
            return Ok(PathLock {
                fd,
                path,
                owner: std::process::id(),
            });
        }
        Err(Error::AddrInUse)
    }

    /// Make the lock file at `path`, already marked: a private file
    /// (`O_EXCL`, next to it) written with [`LOCK_MAGIC`], hard-linked to
    /// `path`, then unlinked. `None` if `path` exists already.
    fn create_marked(path: &std::path::Path) -> Result<Option<OwnedFd>> {
        use rustix::fs::OFlags;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let tmp = std::path::PathBuf::from(tmp);
        let fd = rustix::fs::open(
            &tmp,
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        )?;
        let linked = write_all(&fd, LOCK_MAGIC).and_then(|()| match rustix::fs::link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(Error::Os(e)),
        });
        let _ = rustix::fs::unlink(&tmp);
        Ok(linked?.then_some(fd))
    }
}

/// The contents of every lock file memtube makes (see [`PathLock`]).
const LOCK_MAGIC: &[u8] = b"memtube listener lock\n";

fn write_all(fd: &OwnedFd, mut b: &[u8]) -> Result<()> {
    while !b.is_empty() {
        match rustix::io::write(fd, b) {
            Ok(0) => return Err(Error::Os(Errno::IO)),
            Ok(n) => b = &b[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::Os(e)),
        }
    }
    Ok(())
}

/// Whether the file holds exactly [`LOCK_MAGIC`].
fn holds_magic(fd: &OwnedFd) -> Result<bool> {
    let mut buf = [0u8; 64];
    let mut got = 0;
    loop {
        match rustix::io::pread(fd, &mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got == buf.len() {
                    break;
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::Os(e)),
        }
    }
    Ok(&buf[..got] == LOCK_MAGIC)
}

impl Drop for PathLock {
    fn drop(&mut self) {
        // Still ours: nobody else can have replaced it while we hold the lock
        // (a replacement would itself have had to lock the file we hold).
        // A forked child shares the lock with its parent, whose it is.
        if std::process::id() == self.owner
            && rustix::fs::fstat(&self.fd)
                .ok()
                .zip(rustix::fs::lstat(&self.path).ok())
                .is_some_and(|(a, b)| dev_ino(&a) == dev_ino(&b))
        {
            let _ = rustix::fs::unlink(&self.path);
        }
    }
}
