//! Wake channels (docs/PROTOCOL.md 3.7): a connected pair of `AF_UNIX`
//! sockets (`SOCK_SEQPACKET`; `SOCK_STREAM` on macOS) per ring and
//! direction of waking, made
//! by the listener when the connection asks for readiness
//! ([`Options::readiness`](crate::Options::readiness)). A waker that wakes
//! its peer through the futex also sends one byte on its end; the sleeper
//! may wait for its end to become readable instead, so that an event loop
//! (epoll, kqueue, tokio) can wait for a ring. The peer's death closes its
//! end: ours then reads end-of-file, readable too.
//!
//! Every send and receive passes `MSG_DONTWAIT`, so neither side depends on
//! the descriptor's file status flags, which a hostile peer holding the same
//! open file could change.

use crate::error::{HandshakeFailure, Result};
use crate::Os;
use memtube_ring::atomic::AtomicU32;
use memtube_ring::{SleepWord, Wait};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{RecvFlags, SendFlags, SocketType};
use std::time::Duration;

/// A ring handle's wait in a connection: the system's ([`Os::Wait`]), plus,
/// with readiness on, the sending end of the peer's wake channel, where
/// every wake also sends a byte.
pub struct ConnWait<O: Os> {
    inner: O::Wait,
    wake_tx: Option<OwnedFd>,
}

impl<O: Os> ConnWait<O> {
    pub(crate) fn new(wake_tx: Option<OwnedFd>) -> Self {
        ConnWait {
            inner: O::Wait::default(),
            wake_tx,
        }
    }
}

impl<O: Os> std::fmt::Debug for ConnWait<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnWait")
            .field("wake_channel", &self.wake_tx.is_some())
            .finish()
    }
}

impl<O: Os> Wait for ConnWait<O> {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        self.inner.wait(word, expected, timeout)
    }

    fn wake(&self, word: &AtomicU32) {
        self.inner.wake(word);
        if let Some(fd) = &self.wake_tx {
            // Full (the peer has not drained earlier bytes: it is awake or
            // about to look) or gone: either way nothing more to do.
            let _ = rustix::net::send(fd, &[1], SendFlags::DONTWAIT | O::SEND_FLAGS);
        }
    }

    #[inline]
    fn now(&self) -> Duration {
        self.inner.now()
    }

    fn wait_any(&self, words: &[SleepWord<'_>], timeout: Option<Duration>) {
        self.inner.wait_any(words, timeout)
    }

    fn light_wake(&self) -> bool {
        self.inner.light_wake()
    }

    fn barrier_light_wakers(&self) -> bool {
        self.inner.barrier_light_wakers()
    }
}

/// One ring's wake channels as the listener makes them: the ends it keeps
/// and the ends it sends, each as (readable end, sending end).
pub(crate) struct Channels {
    pub(crate) ours: (OwnedFd, OwnedFd),
    pub(crate) theirs: (OwnedFd, OwnedFd),
}

/// The two wake channels of one ring.
pub(crate) fn pair<O: Os>() -> Result<Channels> {
    let (a_send, a_recv) = channel_pair::<O>()?;
    let (b_send, b_recv) = channel_pair::<O>()?;
    // Channel a wakes the listener's peer (we send), b wakes us.
    Ok(Channels {
        ours: (b_recv, a_send),
        theirs: (a_recv, b_send),
    })
}

/// The wake channels' socket type: `SOCK_SEQPACKET` on Linux; macOS has
/// no Unix seqpacket sockets, so `SOCK_STREAM` there (the connections'
/// sockets follow the same rule, docs/PROTOCOL.md 4.1).
#[cfg(target_os = "linux")]
const CHANNEL_TYPE: SocketType = SocketType::SEQPACKET;
#[cfg(not(target_os = "linux"))]
const CHANNEL_TYPE: SocketType = SocketType::STREAM;

#[cfg(target_os = "linux")]
#[allow(clippy::extra_unused_type_parameters)] // the same signature everywhere
fn channel_pair<O: Os>() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags};
    Ok(socketpair(
        AddressFamily::UNIX,
        CHANNEL_TYPE,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

#[cfg(not(target_os = "linux"))]
fn channel_pair<O: Os>() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags};
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        CHANNEL_TYPE,
        SocketFlags::empty(),
        None,
    )?;
    for s in [&a, &b] {
        // Close-on-exec (the system's way), non-blocking, and no SIGPIPE on
        // a send to a closed channel.
        O::received_fd(s)?;
        rustix::io::ioctl_fionbio(s, true)?;
        rustix::net::sockopt::set_socket_nosigpipe(s, true)?;
    }
    Ok((a, b))
}

/// Check a wake channel end received in a handshake: a connected
/// `AF_UNIX` socket of the channels' type, not a listening one (anything
/// else would never become readable as the protocol says, or accept our
/// sends). On systems without a per-send `MSG_NOSIGNAL` it also gets
/// `SO_NOSIGPIPE`, whatever the sender set.
pub(crate) fn check_received(fd: BorrowedFd<'_>) -> Result<()> {
    use rustix::net::sockopt;
    let bad = |e| -> crate::error::Error { HandshakeFailure::NotWakeChannel(e).into() };
    let proto = rustix::io::Errno::PROTOTYPE;
    match sockopt::socket_type(fd) {
        Ok(t) if t == CHANNEL_TYPE => {}
        Ok(_) => return Err(bad(proto)),
        Err(e) => return Err(bad(e)),
    }
    // A Unix socket (its own address's family), connected (a listening or
    // unconnected one has no peer name).
    if rustix::net::getsockname(fd).map_err(bad)?.address_family()
        != rustix::net::AddressFamily::UNIX
    {
        return Err(bad(proto));
    }
    rustix::net::getpeername(fd).map_err(bad)?;
    #[cfg(not(target_os = "linux"))]
    sockopt::set_socket_nosigpipe(fd, true).map_err(bad)?;
    Ok(())
}

/// What [`drain`] found on a readable end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Nothing more to read now (or it stopped after a bounded number of
    /// reads: later sends make it readable again).
    Open,
    /// End-of-file or an error: the other end is closed (its process exited
    /// or dropped the handle), or this is no working channel.
    Closed,
}

/// Most reads of one [`drain`]: a peer that keeps sending cannot hold the
/// caller (bytes left behind only make the next wait return at once).
const DRAIN_MAX: usize = 64;

/// Read the bytes waiting on a readable end (never blocks, at most
/// [`DRAIN_MAX`] reads).
pub(crate) fn drain(fd: BorrowedFd<'_>) -> Drained {
    let mut b = [0u8; 16];
    for _ in 0..DRAIN_MAX {
        match rustix::net::recv(fd, &mut b, RecvFlags::DONTWAIT) {
            Ok((_, 0)) => return Drained::Closed,
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Drained::Open,
            Err(_) => return Drained::Closed,
        }
    }
    Drained::Open
}

/// Drain this handle's readable end, if it has one; at end-of-file probe
/// the peer (so its death is reported at once). `true` when the end is
/// closed while the peer lives: the channel will never signal again.
pub(crate) fn drain_end(end: &Option<OwnedFd>, link: &crate::liveness::Link) -> bool {
    match end {
        Some(fd) if drain(fd.as_fd()) == Drained::Closed => {
            link.probe() == crate::liveness::PeerState::Alive
        }
        _ => false,
    }
}

/// A readable end's descriptor, borrowed.
pub(crate) fn fd(end: &Option<OwnedFd>) -> Option<BorrowedFd<'_>> {
    end.as_ref().map(|f| f.as_fd())
}
