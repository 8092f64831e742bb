//! `socket` / `connect`: the connecting side, which receives the handshake,
//! validates it, maps and attaches the rings, and answers.
//! Reference: unix(7), connect(2).

use crate::cancel::CancelToken;
use crate::conn::Connection;
use crate::error::{Error, HandshakeFailure, Result};
use crate::handshake;
use crate::liveness::Link;
use crate::options::Options;
use crate::peer;
use crate::rings;
use crate::sock::{self, Addr};
use crate::Os;
use rustix::fd::AsFd;
use rustix::io::Errno;
use std::time::{Duration, Instant};

/// Connect to a listener at `addr` (a path, or `"@name"`).
///
/// Waits up to the connect timeout for room in the listener's backlog and
/// up to the handshake timeout for its handshake ([`Error::Timeout`]: a
/// listener that accepts and never answers does not hang the caller). With
/// no listener: [`Error::NoListener`] (`ECONNREFUSED` or `ENOENT`). The listener's
/// uid is checked against `opts`' policy; its handshake is validated in
/// full ([`Error::Handshake`]). A [`CancelToken`] in `opts` ends both waits
/// (each piece of a stream handshake included) with [`Error::Cancelled`]
/// within about [`LIVENESS_SLICE`](crate::LIVENESS_SLICE).
///
/// See [`listen`](crate::listen) for an example.
pub fn connect<O: Os>(addr: impl Into<Addr>, opts: &Options) -> Result<Connection<O>> {
    let addr = addr.into();
    let backend = opts.backend_for::<O>();
    let sa = addr.sockaddr::<O>()?;
    let s = sock::socket::<O>(sock::socket_type(backend))?;
    // Before connecting, so that the kernel attaches the identity of the
    // process that sends the handshake to it (see below).
    let sender_room = O::pass_sender(s.as_fd());
    let deadline = sock::deadline(Some(opts.connect_timeout));
    loop {
        match rustix::net::connect(&s, &sa) {
            Ok(()) => break,
            Err(Errno::INTR) => continue,
            // The listener's backlog is full: retry until the deadline.
            Err(Errno::AGAIN) => {
                if opts.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                    return Err(Error::Cancelled);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::Timeout);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e @ (Errno::CONNREFUSED | Errno::NOENT)) => {
                return Err(Error::NoListener {
                    addr: addr.to_string(),
                    errno: e,
                })
            }
            Err(e) => return Err(Error::Os(e)),
        }
    }
    let cred = peer::check::<O>(s.as_fd(), &opts.uid_policy)?;
    let got = handshake::recv_cancellable::<O>(
        s.as_fd(),
        sock::deadline(Some(opts.handshake_timeout)),
        opts.cancel.as_ref(),
        backend,
        sender_room,
    )?;
    let maps = rings::map_received::<O>(&got.hs, &got.fds, opts)?;
    drop(got.fds);
    // The process to watch besides the socket (a child it forked may hold
    // that open) is the one that sent the handshake, as the kernel names it:
    // it accepted, made the rings and serves them (a connection never moves
    // to another process). Not SO_PEERCRED's pid: on this side that is the
    // process that called `listen`, which in a pre-forking server is not
    // the one serving. Without an identity (no means on this system, or the
    // sender already gone when it was read) liveness follows the socket.
    let link = Link::new(s, O::SEND_FLAGS, opts.cancel.clone(), got.sender);
    let conn = Connection::new(maps, link, cred).map_err(|e| match e {
        Error::Ring(r) => Error::Handshake(HandshakeFailure::Attach(r)),
        e => e,
    })?;
    handshake::send_ack::<O>(conn_fd(&conn))?;
    Ok(conn)
}

fn conn_fd<O: Os>(c: &Connection<O>) -> rustix::fd::BorrowedFd<'_> {
    c.link_fd()
}
