//! Peer liveness through the connection's socket.
//!
//! After the handshake the Unix socket stays open and carries at most one
//! more message per side: [`CLOSE_BYTE`], sent when a side drops its
//! connection cleanly. The kernel closes a process's sockets when it dies,
//! however it dies, so the other side then reads end-of-file (or
//! `ECONNRESET`) without a close byte first: that is a death. A probe is one
//! `recv(MSG_PEEK | MSG_DONTWAIT)`; it runs only on slow paths (a blocking
//! call between wait slices, or [`probe`](Link::probe) on demand), and its
//! result is cached in an atomic that [`state`](Link::state) reads with no
//! system call. Where the system can watch a process (a pidfd on Linux:
//! [`Os::watch_process`](crate::Os::watch_process) of the connecting
//! process for a listener, [`Os::sender_watch`](crate::Os::sender_watch) of
//! the handshake's sender for a connector), a probe that finds the socket
//! open also polls the peer process, because the socket outlives it when a
//! child it forked holds it.
//! Reference: unix(7), recv(2), pidfd_open(2).

use crate::cancel::CancelToken;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};
use std::sync::atomic::{AtomicU8, Ordering};

/// The byte a side sends when it drops its connection cleanly.
pub const CLOSE_BYTE: u8 = 0xC1;
/// The byte a side sends when a thread panicked while it held one of the
/// connection's handles: the peer reads it as gone (any byte other than
/// [`CLOSE_BYTE`] is), as if the process had died.
pub const ABORT_BYTE: u8 = 0xAB;

/// What is known about the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// The socket is open: the peer process is alive (as of the last probe).
    Alive,
    /// The peer dropped its connection cleanly.
    Closed,
    /// The peer's socket closed without a clean close: it died.
    Gone,
}

/// The liveness channel: the connected socket plus the cached state.
#[derive(Debug)]
pub struct Link {
    sock: OwnedFd,
    /// 0 alive, 1 closed cleanly, 2 gone. Only moves away from 0.
    state: AtomicU8,
    /// The system's flags of every send ([`Os::SEND_FLAGS`](crate::Os::SEND_FLAGS)).
    send_flags: SendFlags,
    /// Stops the connection's blocking calls ([`Options::cancel_token`](crate::Options::cancel_token)).
    cancel: Option<CancelToken>,
    /// The process that made the connection.
    owner: u32,
    /// Readable once the peer process exits ([`Os::watch_process`](crate::Os::watch_process),
    /// [`Os::sender_watch`](crate::Os::sender_watch)).
    watch: Option<OwnedFd>,
}

impl Link {
    pub(crate) fn new(
        sock: OwnedFd,
        send_flags: SendFlags,
        cancel: Option<CancelToken>,
        watch: Option<OwnedFd>,
    ) -> Self {
        Link {
            watch,
            sock,
            state: AtomicU8::new(0),
            send_flags,
            cancel,
            owner: std::process::id(),
        }
    }

    /// Whether this is a forked child's copy of another process's
    /// connection (one `getpid`; for drops, never on the path of a message).
    /// Such a copy must not close, abort or touch the rings: they are its
    /// parent's.
    pub(crate) fn is_inherited(&self) -> bool {
        std::process::id() != self.owner
    }

    /// Tell the peer that this side is gone (a handle was dropped while its
    /// thread panicked): the peer's next probe reads [`ABORT_BYTE`] first and
    /// reports `PeerGone`. Best effort and never blocking, like the close.
    pub(crate) fn abort(&self) {
        let _ = rustix::net::send(
            &self.sock,
            &[ABORT_BYTE],
            SendFlags::DONTWAIT | self.send_flags,
        );
    }

    /// Whether the connection's cancel token was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// The cached state: a relaxed load, no system call. May be stale.
    #[inline]
    pub(crate) fn state(&self) -> PeerState {
        decode(self.state.load(Ordering::Relaxed))
    }

    /// Ask the kernel (one `recv` with `MSG_PEEK | MSG_DONTWAIT`) and cache the answer.
    pub(crate) fn probe(&self) -> PeerState {
        let cached = self.state();
        if cached != PeerState::Alive {
            return cached;
        }
        let mut b = [0u8; 1];
        let now = match rustix::net::recv(
            &self.sock,
            &mut b[..],
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        ) {
            Ok((_, 0)) => PeerState::Gone,
            Ok(_) if b[0] == CLOSE_BYTE => PeerState::Closed,
            // Any other byte: the peer broke the protocol; treat it as gone.
            Ok(_) => PeerState::Gone,
            Err(Errno::AGAIN) | Err(Errno::INTR) => PeerState::Alive,
            Err(_) => PeerState::Gone,
        };
        // The socket may outlive the peer (a child it forked holds it): the
        // process itself, where the system can watch it.
        let now = if now == PeerState::Alive && self.process_exited() {
            PeerState::Gone
        } else {
            now
        };
        self.state.store(encode(now), Ordering::Relaxed);
        now
    }
}

/// Probe many links with one `poll` of all their descriptors (sockets and
/// process watches, without waiting), then a full [`Link::probe`] only of
/// those where something happened (a close byte, end of file, an exited
/// process): a poll set's liveness check between its sleep slices, one
/// system call for any number of idle connections.
pub(crate) fn probe_all<'l>(links: impl Iterator<Item = &'l Link>) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = Vec::new();
    // Each live link and how many descriptors it put in `fds`.
    let mut asked = Vec::new();
    for l in links.filter(|l| l.state() == PeerState::Alive) {
        fds.push(PollFd::new(&l.sock, PollFlags::IN));
        if let Some(w) = &l.watch {
            fds.push(PollFd::new(w, PollFlags::IN));
        }
        asked.push((l, 1 + usize::from(l.watch.is_some())));
    }
    if fds.is_empty() {
        return;
    }
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let all = match poll(&mut fds, Some(&zero)) {
        Ok(0) => return,
        Ok(_) => false,
        // Could not ask all at once: ask each.
        Err(_) => true,
    };
    let mut at = 0;
    for (l, n) in asked {
        if all || fds[at..at + n].iter().any(|f| !f.revents().is_empty()) {
            l.probe();
        }
        at += n;
    }
}

impl Link {
    /// Whether the watched peer process has exited (one `poll` of its
    /// descriptor; `false` when none is watched).
    fn process_exited(&self) -> bool {
        let Some(fd) = &self.watch else {
            return false;
        };
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
            && fds[0].revents().contains(rustix::event::PollFlags::IN)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A thread that panics while it holds the last handle has not closed
        // cleanly: no close byte, so the peer sees the socket close without
        // one and reports `PeerGone`, as for a crash.
        if std::thread::panicking() || self.is_inherited() {
            return;
        }
        // A clean close: tell the peer before the socket closes. Best effort
        // (the peer may be gone already); never blocks (the socket is non-blocking).
        let _ = rustix::net::send(
            &self.sock,
            &[CLOSE_BYTE],
            SendFlags::DONTWAIT | self.send_flags,
        );
    }
}

fn encode(s: PeerState) -> u8 {
    match s {
        PeerState::Alive => 0,
        PeerState::Closed => 1,
        PeerState::Gone => 2,
    }
}

fn decode(v: u8) -> PeerState {
    match v {
        0 => PeerState::Alive,
        1 => PeerState::Closed,
        _ => PeerState::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    fn raw_pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .unwrap()
    }

    fn pair() -> (Link, Link) {
        let (a, b) = raw_pair();
        (
            Link::new(a, SendFlags::empty(), None, None),
            Link::new(b, SendFlags::empty(), None, None),
        )
    }

    #[test]
    fn clean_close_and_death_differ() {
        let (a, b) = pair();
        assert_eq!(a.probe(), PeerState::Alive);
        assert_eq!(a.state(), PeerState::Alive);
        drop(b); // sends the close byte
        assert_eq!(a.state(), PeerState::Alive); // cached until probed
        assert_eq!(a.probe(), PeerState::Closed);

        let (a, b) = raw_pair();
        let a = Link::new(a, SendFlags::empty(), None, None);
        // Death: the socket closes without the close byte.
        drop(b);
        assert_eq!(a.probe(), PeerState::Gone);
        assert_eq!(a.state(), PeerState::Gone);
    }
}
