//! Listening, connecting, and the connection handle.

use crate::error::{invalid, status, value, Fail, Result};
use crate::handles::{conn_of, memtube_connection, memtube_receiver, memtube_sender};
use crate::handles::{RxKind, TxKind};
use crate::options::memtube_options;
use crate::peer::{memtube_peer_cred, state_code};
use crate::util::{c_str, not_null, not_null_mut, Wait};
use std::cell::Cell;
use std::ffi::c_char;
use std::os::fd::AsRawFd;
use std::ptr::{self, addr_of_mut};
use std::time::Duration;

/// A listening socket (opaque), from `memtube_listen`.
pub struct memtube_listener {
    l: mt::Listener,
}

/// The options behind `o`, or the defaults when `o` is NULL.
///
/// # Safety
/// `o` is NULL or a live `memtube_options`.
unsafe fn opts_or_default(o: *const memtube_options) -> mt::Options {
    // SAFETY: the caller's contract.
    match unsafe { o.as_ref() } {
        Some(o) => o.opts.clone(),
        None => mt::Options::new(),
    }
}

/// Box a Rust connection as a `memtube_connection` whose borrowed handles
/// point back at it.
fn boxed(conn: mt::Connection) -> *mut memtube_connection {
    let root = Box::into_raw(Box::new(memtube_connection {
        conn,
        tx: memtube_sender {
            kind: TxKind::Conn(ptr::null_mut()),
            grant: None,
        },
        rx: memtube_receiver {
            kind: RxKind::Conn(ptr::null_mut()),
            held: false,
        },
        serving: Cell::new(false),
    }));
    // SAFETY: `root` is the fresh allocation's pointer, valid and not yet
    // shared; the handles keep this root pointer (not a reference), from
    // which every later access derives.
    unsafe {
        (*root).tx.kind = TxKind::Conn(root);
        (*root).rx.kind = RxKind::Conn(root);
    }
    root
}

/// Listen on `addr`: a NUL-terminated UTF-8 path (a socket file, created
/// mode 0600) or `"@name"` (a Linux abstract name). `opts` NULL: defaults.
/// The listener's options decide the rings of the connections it accepts
/// (capacity, duplex, pure spin, isolation, huge pages). On success
/// `*out` is a listener the caller owns (`memtube_listener_free`); on
/// failure NULL. ADDR_IN_USE when a live listener owns the address,
/// NOT_A_SOCKET when something else is at the path, INVALID_ARGUMENT for a
/// NULL, non-UTF-8 or too long address.
/// Threads: any thread; the listener is Send, not Sync.
///
/// # Safety
/// `addr` is NULL or a NUL-terminated string; `opts` is NULL or live;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_listen(
    addr: *const c_char,
    opts: *const memtube_options,
    out: *mut *mut memtube_listener,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        // SAFETY: the caller's contract.
        let addr = unsafe { c_str(addr, "addr is NULL")? };
        // SAFETY: the caller's contract.
        let o = unsafe { opts_or_default(opts) };
        let l = mt::listen(addr, &o)?;
        *out = Box::into_raw(Box::new(memtube_listener { l }));
        Ok(())
    })
}

/// Accept one connection: wait for a peer, check its uid, create its rings,
/// hand them over and wait (up to the handshake timeout) for it to attach.
/// `opts` NULL: the listener's options; else these for this one connection.
/// `timeout_ns`: how long to wait for a peer; 0 accepts only a peer already
/// waiting (TIMEOUT otherwise), `MEMTUBE_FOREVER` waits without limit.
/// A failure (PERMISSION_DENIED, HANDSHAKE, ...) refuses this one peer; the
/// listener keeps working. On success `*out` is a connection the caller
/// owns (`memtube_connection_free`); on failure NULL.
/// Threads: one thread at a time per listener (Send, not Sync).
///
/// # Safety
/// `l` is NULL or a live listener; `opts` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_listener_accept(
    l: *const memtube_listener,
    opts: *const memtube_options,
    timeout_ns: i64,
    out: *mut *mut memtube_connection,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        // SAFETY: the caller's contract.
        let l = &unsafe { not_null(l, "listener is NULL")? }.l;
        // SAFETY: the caller's contract.
        let o = unsafe { opts.as_ref() }.map(|o| &o.opts);
        let wait = match Wait::from_ns(timeout_ns) {
            Wait::Now => {
                // The listener's own deadline of "now" would not look even
                // once: poll it here, then give a waiting peer a moment.
                let mut fds = [rustix::event::PollFd::from_borrowed_fd(
                    l.as_fd(),
                    rustix::event::PollFlags::IN,
                )];
                let zero = rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                match rustix::event::poll(&mut fds, Some(&zero)) {
                    Ok(0) => return Err(Fail::Mt(mt::Error::Timeout)),
                    Ok(_) => Some(Duration::from_millis(10)),
                    Err(e) => return Err(Fail::Mt(mt::Error::Os(e))),
                }
            }
            Wait::For(d) => Some(d),
            Wait::Forever => None,
        };
        let conn = match (o, wait) {
            (Some(o), w) => l.accept_with(o, w)?,
            (None, Some(d)) => l.accept_timeout(d)?,
            (None, None) => l.accept()?,
        };
        *out = boxed(conn);
        Ok(())
    })
}

/// The listening socket's file descriptor, to `poll()` it with others
/// (readable: a peer is waiting). Owned by the listener: do not close it.
/// -1 (and INVALID_ARGUMENT) when `l` is NULL.
/// Threads: one thread at a time per listener (Send, not Sync).
///
/// # Safety
/// `l` is NULL or a live listener.
#[no_mangle]
pub unsafe extern "C" fn memtube_listener_fd(l: *const memtube_listener) -> i32 {
    value(-1, || {
        // SAFETY: the caller's contract.
        let l = unsafe { not_null(l, "listener is NULL")? };
        Ok(l.l.as_fd().as_raw_fd())
    })
}

/// Free a listener: its socket closes and its socket file (if a path) is
/// removed. Connections accepted from it live on. NULL is ignored.
/// Threads: one thread at a time per listener (Send, not Sync).
///
/// # Safety
/// `l` is NULL or a live listener, not used after.
#[no_mangle]
pub unsafe extern "C" fn memtube_listener_free(l: *mut memtube_listener) {
    value((), || {
        if !l.is_null() {
            // SAFETY: from `Box::into_raw` in `memtube_listen`; ownership given up.
            drop(unsafe { Box::from_raw(l) });
        }
        Ok(())
    })
}

/// Connect to the listener at `addr` (as for `memtube_listen`). `opts`
/// NULL: defaults; the direction and duplex mode must match the
/// listener's (HANDSHAKE otherwise). NO_LISTENER when nobody listens there.
/// On success `*out` is a connection the caller owns
/// (`memtube_connection_free`); on failure NULL.
/// Threads: any thread; the connection is Send, not Sync.
///
/// # Safety
/// `addr` is NULL or a NUL-terminated string; `opts` NULL or live; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_connect(
    addr: *const c_char,
    opts: *const memtube_options,
    out: *mut *mut memtube_connection,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        // SAFETY: the caller's contract.
        let addr = unsafe { c_str(addr, "addr is NULL")? };
        // SAFETY: the caller's contract.
        let o = unsafe { opts_or_default(opts) };
        let conn = mt::connect(addr, &o)?;
        *out = boxed(conn);
        Ok(())
    })
}

/// The connection behind `c`: its root pointer, checked.
#[inline(always)]
fn root(c: *mut memtube_connection) -> Result<*mut memtube_connection> {
    if c.is_null() {
        Err(invalid("connection is NULL"))
    } else {
        Ok(c)
    }
}

/// Free a connection: its rings close cleanly (the peer gets CLOSED after
/// the last message; staged messages are published first). Its borrowed
/// sender and receiver die with it, and with them an outstanding grant
/// (nothing committed) and a held message or reply. NULL is ignored.
/// Refused (nothing freed, error recorded) from inside a serve handler of
/// this connection.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection, not used after (nor its borrowed handles).
#[no_mangle]
pub unsafe extern "C" fn memtube_connection_free(c: *mut memtube_connection) {
    value((), || {
        if c.is_null() {
            return Ok(());
        }
        // SAFETY: live (the caller's contract): the check fails inside a handler.
        unsafe { conn_of(c)? };
        // SAFETY: from `Box::into_raw` in `boxed`; the caller gives it up, with
        // its borrowed handles.
        drop(unsafe { Box::from_raw(c) });
        Ok(())
    })
}

/// The connection's sender: a BORROWED handle owned by the connection (do
/// not free it), the same pointer every time, valid until the connection
/// is freed or split. NULL (and NO_SUCH_HANDLE) when this side only
/// receives. It moves between threads only with its connection.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn memtube_connection_sender(
    c: *mut memtube_connection,
) -> *mut memtube_sender {
    value(ptr::null_mut(), || {
        let c = root(c)?;
        // SAFETY: live (the caller's contract), this thread's; the reference
        // to `conn` ends here.
        unsafe { conn_of(c)? }.sender()?;
        // SAFETY: a field of the live connection, from its root pointer.
        Ok(unsafe { addr_of_mut!((*c).tx) })
    })
}

/// The connection's receiver: a BORROWED handle (see
/// `memtube_connection_sender`). NULL (and NO_SUCH_HANDLE) when this side
/// only sends.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn memtube_connection_receiver(
    c: *mut memtube_connection,
) -> *mut memtube_receiver {
    value(ptr::null_mut(), || {
        let c = root(c)?;
        // SAFETY: as in `memtube_connection_sender`.
        unsafe { conn_of(c)? }.receiver()?;
        // SAFETY: a field of the live connection, from its root pointer.
        Ok(unsafe { addr_of_mut!((*c).rx) })
    })
}

/// Split the connection into OWNED handles that may move to other threads
/// independently: `*tx` and `*rx` get the sender and the receiver (NULL for
/// a side this end does not have). The connection is consumed and freed,
/// even on failure; its borrowed handle pointers die, but an outstanding
/// grant and a held message carry over to the new handles. `call` and
/// `serve` are no longer available. The peer watch lives until both
/// handles are freed. INVALID_ARGUMENT (everything freed) when `tx` or `rx`
/// is NULL. The one failure that frees nothing: BUSY from inside a serve
/// handler of this connection.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection, not used after; `tx`, `rx` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_connection_split(
    c: *mut memtube_connection,
    tx: *mut *mut memtube_sender,
    rx: *mut *mut memtube_receiver,
) -> i32 {
    status(|| {
        let c = root(c)?;
        // SAFETY: live (the caller's contract): the check fails inside a handler.
        unsafe { conn_of(c)? };
        // SAFETY: from `Box::into_raw`; consumed here, on every path below.
        let b = unsafe { Box::from_raw(c) };
        let memtube_connection {
            conn, tx: t, rx: r, ..
        } = *b;
        // SAFETY: the caller's contract.
        let tx = unsafe { not_null_mut(tx, "tx is NULL") };
        // SAFETY: the caller's contract.
        let rx = unsafe { not_null_mut(rx, "rx is NULL") };
        let (tx, rx) = match (tx, rx) {
            (Ok(tx), Ok(rx)) => (tx, rx),
            (Err(e), _) | (_, Err(e)) => {
                drop(conn);
                return Err(e);
            }
        };
        let (s, rcv) = conn.into_split();
        *tx = s.map_or(ptr::null_mut(), |s| {
            Box::into_raw(Box::new(memtube_sender {
                kind: TxKind::Proc(s),
                grant: t.grant,
            }))
        });
        *rx = rcv.map_or(ptr::null_mut(), |r2| {
            Box::into_raw(Box::new(memtube_receiver {
                kind: RxKind::Proc(r2),
                held: r.held,
            }))
        });
        Ok(())
    })
}

/// `*out` = the peer's credentials (pid, uid, gid when it connected).
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_connection_peer_cred(
    c: *mut memtube_connection,
    out: *mut memtube_peer_cred,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        // SAFETY: live (the caller's contract), this thread's.
        let p = unsafe { conn_of(root(c)?)? }.peer_cred();
        *out = memtube_peer_cred {
            pid: p.pid,
            uid: p.uid,
            gid: p.gid,
        };
        Ok(())
    })
}

/// `*state` = the peer's state, `MEMTUBE_PEER_STATE_*`: with `probe`, one
/// system call asks now; without, the cached state (no system call).
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection; `state` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_connection_peer_state(
    c: *mut memtube_connection,
    probe: bool,
    state: *mut i32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(state, "state is NULL")? };
        // SAFETY: live (the caller's contract), this thread's.
        let conn = unsafe { conn_of(root(c)?)? };
        *out = state_code(if probe || !conn.is_peer_alive() {
            conn.probe_peer()
        } else {
            mt::PeerState::Alive
        });
        Ok(())
    })
}
