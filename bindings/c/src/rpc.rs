//! Request/reply on a duplex connection: `memtube_call`, `memtube_serve_one`,
//! `memtube_serve`.

use crate::error::{busy, invalid, status, value, Fail, Result};
use crate::handles::{conn_of, memtube_connection};
use crate::recv::memtube_message;
use crate::util::{bytes, not_null_mut, Wait};
use std::ffi::c_void;
use std::ptr::addr_of_mut;
use std::time::Duration;

/// The reply a serve handler fills (opaque): append with
/// `memtube_reply_write` or `memtube_reply_extend`. Valid only during the
/// handler's call.
pub struct memtube_reply {
    buf: *mut Vec<u8>,
}

/// A request handler for `memtube_serve_one` / `memtube_serve`: called with
/// `ctx` as given, the request's type id and body (`len` bytes at `req`,
/// in place in the ring, valid only during the call), and an empty `reply`
/// to fill; returns the reply's type id (`UINT32_MAX` is reserved: the
/// caller then gets PROTOCOL). It must not call memtube functions on the
/// connection being served or its handles (they return BUSY), must not
/// unwind or `longjmp` out, and runs on the serving thread.
pub type memtube_handler = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        type_id: u32,
        req: *const u8,
        len: usize,
        reply: *mut memtube_reply,
    ) -> u32,
>;

/// Release the held message of the connection's receiver, refuse when a
/// grant is outstanding on its sender.
///
/// # Safety
/// `c` is a live connection used by this thread only, outside a handler
/// (checked by `conn_of` before).
unsafe fn prepare(c: *mut memtube_connection, conn: &mut mt::Connection) -> Result<()> {
    // SAFETY: the `tx` and `rx` fields, disjoint from `conn`, of a live connection.
    let (tx, rx) = unsafe { (&mut *addr_of_mut!((*c).tx), &mut *addr_of_mut!((*c).rx)) };
    if tx.grant.is_some() {
        return Err(busy());
    }
    // (`call` and `serve_one` report NO_SUCH_HANDLE themselves, before
    // sending anything.)
    if rx.held {
        rx.held = false;
        drop(conn.receiver()?.try_recv()?);
    }
    Ok(())
}

/// Send a request (type `type_id`, `len` bytes at `req`) on a duplex
/// connection and wait for its reply, which `*reply` then describes (the
/// body, after the hidden 8-byte correlation id; `reply->type_id` is the
/// server's). `timeout_ns` bounds the whole call (> 0; 0 returns TIMEOUT
/// unless the reply is there at once; `MEMTUBE_FOREVER` no limit); a reply
/// that comes after a timeout is skipped by the next call. TOO_LARGE when
/// the body exceeds `memtube_max_request`; REPLY_TOO_LARGE when the
/// server's reply did not fit; NO_SUCH_HANDLE on a one-way connection; BUSY
/// while a grant is outstanding on the connection's sender.
///
/// Lifetime: the reply is held like a received message, until
/// `memtube_release(memtube_connection_receiver(c))`, the next
/// `memtube_call`, `memtube_serve_one` or `memtube_recv` on the
/// connection's receiver, or the free of the connection. A message held on
/// that receiver is released at the start of the call.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection; `req` readable for `len` bytes;
/// `reply` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_call(
    c: *mut memtube_connection,
    type_id: u32,
    req: *const c_void,
    len: usize,
    timeout_ns: i64,
    reply: *mut memtube_message,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(reply, "reply is NULL")? };
        *out = memtube_message::EMPTY;
        if c.is_null() {
            return Err(invalid("connection is NULL"));
        }
        // SAFETY: the caller's contract.
        let req = unsafe { bytes(req, len)? };
        // SAFETY: live (the caller's contract), this thread's, not in a handler.
        let conn = unsafe { conn_of(c)? };
        // SAFETY: as above.
        unsafe { prepare(c, conn)? };
        let r = match Wait::from_ns(timeout_ns) {
            Wait::Now => conn.call_timeout(type_id, req, Duration::ZERO)?,
            Wait::For(d) => conn.call_timeout(type_id, req, d)?,
            Wait::Forever => conn.call(type_id, req)?,
        };
        let body = r.payload();
        *out = memtube_message {
            data: body.as_ptr(),
            len: body.len(),
            type_id: r.type_id(),
        };
        r.keep();
        // SAFETY: the `rx` field of the live connection; `conn` is not used after.
        unsafe { (*addr_of_mut!((*c).rx)).held = true };
        Ok(())
    })
}

/// `*out` = the largest request body `memtube_call` sends (the ring's
/// maximum payload less the 8-byte id; 0 on a connection that cannot send).
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_max_request(c: *mut memtube_connection, out: *mut u32) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        if c.is_null() {
            return Err(invalid("connection is NULL"));
        }
        // SAFETY: live (the caller's contract), this thread's.
        *out = unsafe { conn_of(c)? }.max_request();
        Ok(())
    })
}

/// Serve requests with `handler` on the connection at `c`, one
/// (`timeout` `Some`) or until the peer closes (`None`).
///
/// # Safety
/// `c` is NULL or a live connection; `handler`'s contract as documented.
unsafe fn serve(
    c: *mut memtube_connection,
    timeout: Option<Wait>,
    handler: memtube_handler,
    ctx: *mut c_void,
) -> Result<()> {
    if c.is_null() {
        return Err(invalid("connection is NULL"));
    }
    let Some(h) = handler else {
        return Err(invalid("handler is NULL"));
    };
    // SAFETY: live (the caller's contract), this thread's, not in a handler.
    let conn = unsafe { conn_of(c)? };
    // SAFETY: as above.
    unsafe { prepare(c, conn)? };
    let f = |ty: u32, body: &[u8], reply: &mut Vec<u8>| -> u32 {
        let mut r = memtube_reply { buf: reply };
        // SAFETY: the handler's contract (documented on `memtube_handler`):
        // it reads `len` bytes at `req` and writes `reply` through the
        // functions below, during the call only.
        unsafe { h(ctx, ty, body.as_ptr(), body.len(), &mut r) }
    };
    // SAFETY: the `serving` field of the live connection (a `Cell`, shared).
    let serving = unsafe { &*std::ptr::addr_of!((*c).serving) };
    /// Clears the flag however the serve ends (a panic included).
    struct Serving<'a>(&'a std::cell::Cell<bool>);
    impl Drop for Serving<'_> {
        fn drop(&mut self) {
            self.0.set(false);
        }
    }
    serving.set(true);
    let _guard = Serving(serving);
    let result = match timeout {
        None => conn.serve(f),
        Some(Wait::Now) => {
            // Serve only a request that is there (its reply waits for room).
            match conn.receiver().and_then(|r| r.peek().map(|_| ())) {
                Ok(()) => conn.serve_one(None, f),
                Err(e) => Err(e),
            }
        }
        Some(Wait::For(d)) => conn.serve_one(Some(d), f),
        Some(Wait::Forever) => conn.serve_one(None, f),
    };
    result.map_err(Fail::from)
}

/// Serve one request on a duplex connection: wait for it (`timeout_ns`: 0
/// serves only a request already there, EMPTY otherwise; > 0 at most that
/// long, TIMEOUT; `MEMTUBE_FOREVER` no limit), call `handler` with it, send
/// the reply it wrote with the type id it returned and the request's
/// correlation id. A reply larger than the ring takes is not sent: the
/// caller gets REPLY_TOO_LARGE and serving goes on. CLOSED when the peer
/// closed. BUSY while a grant is outstanding on the connection's sender; a
/// message held on its receiver is released first.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// `c` is NULL or a live connection; `handler` follows `memtube_handler`'s
/// rules; `ctx` is whatever the handler expects.
#[no_mangle]
pub unsafe extern "C" fn memtube_serve_one(
    c: *mut memtube_connection,
    timeout_ns: i64,
    handler: memtube_handler,
    ctx: *mut c_void,
) -> i32 {
    // SAFETY: the caller's contract.
    status(|| unsafe { serve(c, Some(Wait::from_ns(timeout_ns)), handler, ctx) })
}

/// Serve requests until the peer closes (then OK) or an error (PEER_GONE,
/// CANCELLED, ...). As `memtube_serve_one` otherwise.
/// Threads: one thread at a time per connection, its borrowed handles included (Send, not
/// Sync).
///
/// # Safety
/// As for `memtube_serve_one`.
#[no_mangle]
pub unsafe extern "C" fn memtube_serve(
    c: *mut memtube_connection,
    handler: memtube_handler,
    ctx: *mut c_void,
) -> i32 {
    // SAFETY: the caller's contract.
    status(|| unsafe { serve(c, None, handler, ctx) })
}

/// The reply buffer behind `r`, checked.
///
/// # Safety
/// `r` is NULL or the `reply` argument of a handler that is running.
unsafe fn reply_buf<'a>(r: *mut memtube_reply) -> Result<&'a mut Vec<u8>> {
    // SAFETY: the caller's contract.
    let r = unsafe { not_null_mut(r, "reply is NULL")? };
    // SAFETY: `buf` is the serve's reply buffer, alive and not otherwise
    // used while the handler runs.
    Ok(unsafe { &mut *r.buf })
}

#[cold]
fn out_of_memory() -> Fail {
    Fail::Mt(mt::Error::Os(rustix::io::Errno::NOMEM))
}

/// Append `len` bytes at `data` to the reply. OS (ENOMEM) when out of memory.
/// Threads: the serving thread, inside the handler only.
///
/// # Safety
/// `r` is NULL or the `reply` of the running handler; `data` readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn memtube_reply_write(
    r: *mut memtube_reply,
    data: *const c_void,
    len: usize,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let buf = unsafe { reply_buf(r)? };
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(data, len)? };
        buf.try_reserve(data.len()).map_err(|_| out_of_memory())?;
        buf.extend_from_slice(data);
        Ok(())
    })
}

/// Append `n` zero bytes to the reply and return a pointer to them, to fill
/// in place; valid until the next `memtube_reply_*` call or the handler's
/// return. NULL when out of memory or `r` is NULL.
/// Threads: the serving thread, inside the handler only.
///
/// # Safety
/// `r` is NULL or the `reply` of the running handler.
#[no_mangle]
pub unsafe extern "C" fn memtube_reply_extend(r: *mut memtube_reply, n: usize) -> *mut u8 {
    value(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract.
        let buf = unsafe { reply_buf(r)? };
        buf.try_reserve(n).map_err(|_| out_of_memory())?;
        let at = buf.len();
        buf.resize(at + n, 0);
        Ok(buf[at..].as_mut_ptr())
    })
}
