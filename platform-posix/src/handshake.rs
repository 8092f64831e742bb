//! The handshake message: ring-core's [`Handshake`] struct plus the region
//! descriptors, in one `sendmsg` with `SCM_RIGHTS`; and its validation on
//! receipt.
//!
//! The receiver checks, in order: the message length (exactly
//! [`Handshake::LEN`], no `MSG_TRUNC`), `MSG_CTRUNC` (more descriptors than
//! any handshake carries: the kernel closed the ones that did not fit, the
//! rest are closed here), the struct ([`Handshake::decode`]), the exact
//! descriptor count (extras are closed), then each descriptor: a memfd with
//! the required seals, or a shm object (shm backend: no seals exist), whose
//! `fstat` size equals the claimed length. On a `SOCK_STREAM` (shm backend)
//! the message is exactly [`Handshake::LEN`] bytes, read in pieces if the
//! kernel splits it; one byte more is refused. The ring
//! layout itself is validated by ring-core when attaching.
//! Reference: unix(7) `SCM_RIGHTS`, sendmsg(2), recvmsg(2).

use crate::cancel::CancelToken;
use crate::error::{Error, HandshakeFailure, Result};
use crate::region::{self, Backend};
use crate::sock;
use crate::Os;
use memtube_ring::handshake::{Handshake, MAX_FDS, NO_FD};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketType};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::time::Instant;

/// The byte the receiver answers with once it has attached.
pub const ACK_BYTE: u8 = 0xA4;

/// Room for this many descriptors is offered to the kernel, so that a few
/// too many arrive (and are counted and closed) rather than truncate.
const FD_ROOM: usize = MAX_FDS + 4;

/// Send `bytes` (normally an encoded [`Handshake`]) with `fds` in one message.
pub fn send_raw<O: Os>(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Error::Os(Errno::TOOBIG));
    }
    let iov = [IoSlice::new(bytes)];
    let n = rustix::net::sendmsg(sock, &iov, &mut control, O::SEND_FLAGS)?;
    if n != bytes.len() {
        return Err(Error::Os(Errno::MSGSIZE));
    }
    Ok(())
}

/// Send an encoded handshake with its descriptors.
pub fn send<O: Os>(sock: BorrowedFd<'_>, hs: &Handshake, fds: &[BorrowedFd<'_>]) -> Result<()> {
    send_raw::<O>(sock, &hs.encode(), fds)
}

/// A validated handshake and its descriptors, indexed as the handshake names them.
#[derive(Debug)]
pub struct Received {
    /// The decoded handshake.
    pub hs: Handshake,
    /// Exactly `hs.fd_count` descriptors, each checked.
    pub fds: Vec<OwnedFd>,
    /// A descriptor that becomes readable when the process that sent the
    /// handshake exits, as the kernel identified it
    /// ([`Os::sender_watch`]; [`recv_watching`] only).
    pub sender: Option<OwnedFd>,
}

/// Receive and validate one handshake, waiting until `deadline`.
///
/// `backend` decides how the descriptors are checked and how the message
/// is framed: one `SOCK_SEQPACKET` message (memfd), or exactly
/// [`Handshake::LEN`] bytes of a `SOCK_STREAM` (shm), read in as many
/// pieces as the kernel delivers, descriptors counted from all of them.
pub fn recv<O: Os>(
    sock: BorrowedFd<'_>,
    deadline: Option<Instant>,
    backend: Backend,
) -> Result<Received> {
    recv_watching::<O>(sock, deadline, backend, 0)
}

/// [`recv`] on a socket that [`Os::pass_sender`] prepared: `sender_room` is
/// what it returned, the control-message room for the sender's identity
/// (offered on top of the descriptors' room, so that the descriptor limit
/// stays exact). The first identity that arrives becomes
/// [`Received::sender`]; any later one (a stream read in pieces) is closed.
pub fn recv_watching<O: Os>(
    sock: BorrowedFd<'_>,
    deadline: Option<Instant>,
    backend: Backend,
    sender_room: usize,
) -> Result<Received> {
    recv_cancellable::<O>(sock, deadline, None, backend, sender_room)
}

/// [`recv_watching`], ended by `cancel` too: [`Error::Cancelled`] within
/// about [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) of its cancel, in every
/// wait (each piece of a stream handshake included).
pub(crate) fn recv_cancellable<O: Os>(
    sock: BorrowedFd<'_>,
    deadline: Option<Instant>,
    cancel: Option<&CancelToken>,
    backend: Backend,
    sender_room: usize,
) -> Result<Received> {
    let stream = crate::sock::socket_type(backend) == SocketType::STREAM;
    let mut buf = [0u8; Handshake::LEN + 1];
    let mut got = 0;
    // Every descriptor that arrives is owned here first, so that each early
    // return below closes them all.
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut sender = None;
    loop {
        sock::wait_readable(sock, deadline, cancel)?;
        let before = fds.len();
        let piece = recvmsg::<O>(sock, &mut buf[got..], sender_room, &mut fds, &mut sender);
        for fd in &fds[before..] {
            O::received_fd(fd)?;
        }
        let piece = match piece {
            Ok(p) => p,
            // Readable but nothing yet (a stream woken early): wait again.
            Err(Errno::AGAIN) | Err(Errno::INTR) if stream => continue,
            Err(Errno::CONNRESET) => return Err(HandshakeFailure::PeerClosed.into()),
            Err(e) => return Err(Error::Os(e)),
        };
        if piece.bytes == 0 && fds.len() == before {
            return Err(HandshakeFailure::PeerClosed.into());
        }
        if piece.ctrunc {
            return Err(HandshakeFailure::ControlTruncated.into());
        }
        got += piece.bytes;
        if piece.trunc || got > Handshake::LEN {
            return Err(HandshakeFailure::MessageTruncated.into());
        }
        if !stream || got == Handshake::LEN {
            break;
        }
    }
    let hs = Handshake::decode(&buf[..got]).map_err(HandshakeFailure::Format)?;
    if fds.len() != hs.fd_count as usize {
        return Err(HandshakeFailure::FdCount {
            expected: hs.fd_count,
            got: fds.len(),
        }
        .into());
    }
    for r in hs.rings() {
        region::check_received::<O>(backend, fds[r.main_fd as usize].as_fd(), r.main_len)?;
        if r.consumer_fd != NO_FD {
            region::check_received::<O>(
                backend,
                fds[r.consumer_fd as usize].as_fd(),
                r.consumer_len,
            )?;
        }
    }
    for fd in &fds[hs.region_fd_count() as usize..] {
        crate::wake::check_received(fd.as_fd())?;
    }
    Ok(Received { hs, fds, sender })
}

/// What one `recvmsg` of the handshake read.
struct Piece {
    bytes: usize,
    /// `MSG_TRUNC`: the message was longer than the buffer.
    trunc: bool,
    /// `MSG_CTRUNC`: control messages (descriptors) did not fit.
    ctrunc: bool,
}

/// One non-blocking `recvmsg` into `buf`, with control room for
/// [`FD_ROOM`] descriptors plus `sender_room` bytes. Every descriptor of an
/// `SCM_RIGHTS` message is appended to `fds` (owned at once, so closed on
/// any error later); any other control message goes to
/// [`Os::sender_watch`], whose first answer is kept in `sender`.
///
/// Plain `libc` rather than rustix's ancillary buffer: that one neither
/// hands out the control messages it does not know (an `SCM_PIDFD`
/// descriptor would leak) nor reads `SCM_CREDENTIALS` soundly (its `UCred`
/// cannot hold the pid 0 the kernel reports for a sender in a pid
/// namespace this process cannot see).
fn recvmsg<O: Os>(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    sender_room: usize,
    fds: &mut Vec<OwnedFd>,
    sender: &mut Option<OwnedFd>,
) -> rustix::io::Result<Piece> {
    use rustix::fd::{AsRawFd, FromRawFd};
    const INT: usize = std::mem::size_of::<libc::c_int>();
    // 8-byte aligned for `cmsghdr`, and zeroed: only what the kernel wrote
    // is read, but never uninitialized memory.
    let mut space = [0u64; 32];
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    let rights_room = unsafe { libc::CMSG_SPACE((FD_ROOM * INT) as libc::c_uint) } as usize;
    let room = (rights_room + sender_room).min(std::mem::size_of_val(&space));
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `msghdr` is a plain C struct for which all zeroes is valid
    // (no name, no iovecs, no control); the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = room as _;
    let flags = O::RECV_FLAGS.bits() as libc::c_int | libc::MSG_DONTWAIT;
    // SAFETY: `msg` points to one iovec over `buf` (writable, `buf.len()`
    // bytes) and to `room` writable bytes of `space`, all of which outlive
    // the call; the descriptor is borrowed for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(
            rustix::io::Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO),
        );
    }
    // Walk the control messages the kernel wrote, each length clamped to
    // what is there (macOS may report a truncated message's full length).
    // SAFETY: `space` is initialized (zeroed, then written by the kernel)
    // and `room` bytes long at most.
    let control: &[u8] = unsafe { std::slice::from_raw_parts(space.as_ptr().cast::<u8>(), room) };
    let written = (msg.msg_controllen as usize).min(room);
    // SAFETY: CMSG_LEN / CMSG_SPACE are arithmetic only.
    let (head, align) = unsafe {
        (
            libc::CMSG_LEN(0) as usize,
            (libc::CMSG_SPACE(1) - libc::CMSG_SPACE(0)) as usize,
        )
    };
    let mut off = 0;
    while off + std::mem::size_of::<libc::cmsghdr>() <= written {
        // SAFETY: a whole `cmsghdr` lies within `control` at `off` (checked
        // above); read unaligned, so no alignment is assumed.
        let h: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control[off..].as_ptr().cast()) };
        let len = (h.cmsg_len as usize).min(written - off);
        if len < head {
            break;
        }
        let data = &control[off + head..off + len];
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            for d in data.chunks_exact(INT) {
                let raw = libc::c_int::from_ne_bytes(d.try_into().unwrap_or([0xff; INT]));
                if raw >= 0 {
                    // SAFETY: the kernel installed this descriptor in our
                    // table for this message just now; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        } else {
            // SAFETY: a control message `recvmsg` just delivered, passed once.
            let w = unsafe { O::sender_watch(h.cmsg_level, h.cmsg_type, data) };
            if sender.is_none() {
                *sender = w;
            }
        }
        // The next header starts at the aligned end of this message.
        off += len.next_multiple_of(align);
    }
    Ok(Piece {
        bytes: n as usize,
        trunc: msg.msg_flags & libc::MSG_TRUNC != 0,
        ctrunc: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// Wait for the receiver's one-byte answer.
pub fn recv_ack(sock: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<()> {
    sock::wait_readable(sock, deadline, None)?;
    let mut b = [0u8; 1];
    match rustix::net::recv(sock, &mut b[..], RecvFlags::DONTWAIT) {
        Ok((_, 0)) | Err(Errno::CONNRESET) => Err(HandshakeFailure::PeerClosed.into()),
        Ok(_) if b[0] == ACK_BYTE => Ok(()),
        // The receiver refused the handshake and dropped its half cleanly.
        Ok(_) if b[0] == crate::liveness::CLOSE_BYTE => Err(HandshakeFailure::PeerClosed.into()),
        Ok(_) => Err(HandshakeFailure::Protocol.into()),
        Err(e) => Err(Error::Os(e)),
    }
}

/// Send the one-byte answer.
pub fn send_ack<O: Os>(sock: BorrowedFd<'_>) -> Result<()> {
    rustix::net::send(sock, &[ACK_BYTE], O::SEND_FLAGS | SendFlags::DONTWAIT)?;
    Ok(())
}
