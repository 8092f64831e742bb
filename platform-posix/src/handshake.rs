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

use crate::error::{Error, HandshakeFailure, Result};
use crate::region::{self, Backend};
use crate::sock;
use crate::Os;
use memtube_ring::handshake::{Handshake, MAX_FDS, NO_FD};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketType,
};
use std::io::{IoSlice, IoSliceMut};
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
    let stream = crate::sock::socket_type(backend) == SocketType::STREAM;
    let mut buf = [0u8; Handshake::LEN + 1];
    let mut got = 0;
    // Every descriptor that arrives is owned here first, so that each early
    // return below closes them all.
    let mut fds: Vec<OwnedFd> = Vec::new();
    loop {
        sock::wait_readable(sock, deadline, None)?;
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(FD_ROOM))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        let msg = match rustix::net::recvmsg(
            sock,
            &mut iov,
            &mut control,
            O::RECV_FLAGS | RecvFlags::DONTWAIT,
        ) {
            Ok(m) => m,
            // Readable but nothing yet (a stream woken early): wait again.
            Err(Errno::AGAIN) | Err(Errno::INTR) if stream => continue,
            Err(Errno::CONNRESET) => return Err(HandshakeFailure::PeerClosed.into()),
            Err(e) => return Err(Error::Os(e)),
        };
        let before = fds.len();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(it) = m {
                fds.extend(it);
            }
        }
        for fd in &fds[before..] {
            O::received_fd(fd)?;
        }
        if msg.bytes == 0 && fds.len() == before {
            return Err(HandshakeFailure::PeerClosed.into());
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            return Err(HandshakeFailure::ControlTruncated.into());
        }
        got += msg.bytes;
        if msg.flags.contains(ReturnFlags::TRUNC) || got > Handshake::LEN {
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
    Ok(Received { hs, fds })
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
