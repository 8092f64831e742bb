//! Receiving: a message held in place until released.

use crate::error::{invalid, status, value, Result};
use crate::handles::{memtube_receiver, RxKind, RxRef};
use crate::peer::{memtube_stats, ring_state, state_code};
use crate::util::{not_null_mut, Wait};
use mt::ring::Wait as RingWait;

/// A received message, filled by `memtube_recv` (or a reply, by
/// `memtube_call`): `len` bytes at `data` (8-byte aligned) in the shared
/// ring, of type `type_id`. No copy and no allocation per message.
///
/// Lifetime: valid until `memtube_release` or the next `memtube_recv` on
/// the same receiver (or, for a reply, the next `memtube_call` /
/// `memtube_serve_one` on its connection), or the free of the receiver or
/// connection, whichever comes first. The bytes are the peer's: a hostile
/// peer can change them while you read (never the length memtube checked).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct memtube_message {
    /// The payload.
    pub data: *const u8,
    /// Its length in bytes.
    pub len: usize,
    /// The type id the sender gave it.
    pub type_id: u32,
}

impl memtube_message {
    pub(crate) const EMPTY: memtube_message = memtube_message {
        data: std::ptr::null(),
        len: 0,
        type_id: 0,
    };
}

/// Describe `m` in `out` and leave it in the ring, unreleased (`keep`).
#[inline(always)]
fn hold<W: RingWait>(m: mt::ring::Message<'_, '_, W>, out: &mut memtube_message) {
    let p = m.payload();
    *out = memtube_message {
        data: p.as_ptr(),
        len: p.len(),
        type_id: m.type_id(),
    };
    m.keep();
}

/// The receiver behind `rx`, for one call.
///
/// # Safety
/// `rx` is NULL or a live receiver handle used by this thread only.
#[inline(always)]
unsafe fn handle<'a>(rx: *mut memtube_receiver) -> Result<&'a mut memtube_receiver> {
    // SAFETY: the caller's contract.
    unsafe { not_null_mut(rx, "receiver is NULL") }
}

/// Receive the next message into `*out`, in place. The message held before
/// (if any) is released first. `timeout_ns`: 0 does not wait (EMPTY when
/// nothing is there now), > 0 waits at most that long (TIMEOUT),
/// `MEMTUBE_FOREVER` (any negative) waits until a message comes, the peer
/// closes (CLOSED, after every message it sent) or dies (PEER_GONE, after
/// every message it committed). On failure `*out` is {NULL, 0, 0}.
///
/// Lifetime: `out->data` stays valid, and the message's ring space
/// unreleased, until `memtube_release(rx)`, the next `memtube_recv(rx)`, or
/// the free of the receiver (or its connection).
/// Threads: one thread at a time per receiver (Send, not Sync).
///
/// # Safety
/// `rx` is NULL or a live receiver; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_recv(
    rx: *mut memtube_receiver,
    timeout_ns: i64,
    out: *mut memtube_message,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = memtube_message::EMPTY;
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx)? };
        // SAFETY: a live handle, this thread's.
        let (mut r, held) = unsafe { h.parts()? };
        if *held {
            *held = false;
            r.release()?;
        }
        match (r, Wait::from_ns(timeout_ns)) {
            (RxRef::Proc(r), Wait::Now) => hold(r.try_recv()?, out),
            // One blocking call site, as in `memtube_send`.
            (RxRef::Proc(r), w) => hold(r.recv_timeout(w.or_max())?, out),
            (RxRef::Ring(c), Wait::Now) => hold(c.try_recv()?, out),
            (RxRef::Ring(c), Wait::For(d)) => hold(c.recv_timeout(d)?, out),
            (RxRef::Ring(c), Wait::Forever) => hold(c.recv()?, out),
        }
        *held = true;
        Ok(())
    })
}

/// Copy `m` out (see `memtube_recv_copy`): released when it fits, kept in
/// the ring when it does not.
#[inline(always)]
fn copy_out<W: RingWait>(
    m: mt::ring::Message<'_, '_, W>,
    dst: &mut [u8],
    len: &mut usize,
    type_id: &mut u32,
) -> Result<()> {
    *len = m.len();
    *type_id = m.type_id();
    match m.copy_to(dst) {
        Ok(_) => Ok(()),
        Err(e) => {
            m.keep();
            Err(e.into())
        }
    }
}

/// Receive the next message and copy it into `buf` (`cap` bytes), then
/// release it: for a receiver that does not trust its sender. `memtube_recv`
/// gives a view of bytes the sender can still change while you read them;
/// here each byte is read from the ring exactly once, and the copy in `buf`
/// is yours. `*len` = the payload's length, `*type_id` its type.
/// TOO_LARGE when `cap < *len`: nothing is copied and the message stays in
/// the ring (the next `memtube_recv` or `memtube_recv_copy` returns it
/// again; `*len` says how much room it needs). The message held before (if
/// any) is released first. `timeout_ns` as for `memtube_recv`.
/// Threads: one thread at a time per receiver (Send, not Sync).
///
/// # Safety
/// `rx` is NULL or a live receiver; `buf` is NULL (only with `cap == 0`) or
/// `cap` writable bytes; `len` and `type_id` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_recv_copy(
    rx: *mut memtube_receiver,
    timeout_ns: i64,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    type_id: *mut u32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let len = unsafe { not_null_mut(len, "len is NULL")? };
        // SAFETY: the caller's contract.
        let type_id = unsafe { not_null_mut(type_id, "type_id is NULL")? };
        (*len, *type_id) = (0, 0);
        let dst: &mut [u8] = if cap == 0 {
            &mut []
        } else if buf.is_null() {
            return Err(invalid("buf is NULL"));
        } else if cap > isize::MAX as usize {
            return Err(invalid("cap is larger than any object"));
        } else {
            // SAFETY: the caller's contract: `cap` writable bytes, ours for
            // the call.
            unsafe { std::slice::from_raw_parts_mut(buf, cap) }
        };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx)? };
        // SAFETY: a live handle, this thread's.
        let (mut r, held) = unsafe { h.parts()? };
        if *held {
            *held = false;
            r.release()?;
        }
        match (r, Wait::from_ns(timeout_ns)) {
            (RxRef::Proc(r), Wait::Now) => copy_out(r.try_recv()?, dst, len, type_id),
            (RxRef::Proc(r), w) => copy_out(r.recv_timeout(w.or_max())?, dst, len, type_id),
            (RxRef::Ring(c), Wait::Now) => copy_out(c.try_recv()?, dst, len, type_id),
            (RxRef::Ring(c), Wait::For(d)) => copy_out(c.recv_timeout(d)?, dst, len, type_id),
            (RxRef::Ring(c), Wait::Forever) => copy_out(c.recv()?, dst, len, type_id),
        }
    })
}

/// Release the held message (or call reply): its pointer dies, its ring
/// space goes back to the sender. OK also when nothing is held (so a
/// second release is harmless).
/// Threads: one thread at a time per receiver (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `rx` is NULL or a live receiver.
#[no_mangle]
pub unsafe extern "C" fn memtube_release(rx: *mut memtube_receiver) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx)? };
        // SAFETY: a live handle, this thread's.
        let (mut r, held) = unsafe { h.parts()? };
        if *held {
            *held = false;
            r.release()?;
        }
        Ok(())
    })
}

/// `*out` = the largest payload this receiver's ring carries.
/// Threads: one thread at a time per receiver (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `rx` is NULL or a live receiver; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_receiver_max_payload(
    rx: *mut memtube_receiver,
    out: *mut u32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx)? };
        // SAFETY: a live handle, this thread's.
        *out = match unsafe { h.parts()? }.0 {
            RxRef::Proc(r) => r.max_payload(),
            RxRef::Ring(c) => c.max_payload(),
        };
        Ok(())
    })
}

/// `*out` = the ring's counters (may be slightly stale).
/// Threads: one thread at a time per receiver (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `rx` is NULL or a live receiver; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_receiver_stats(
    rx: *mut memtube_receiver,
    out: *mut memtube_stats,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx)? };
        // SAFETY: a live handle, this thread's.
        let s = match unsafe { h.parts()? }.0 {
            RxRef::Proc(r) => r.stats(),
            RxRef::Ring(c) => c.stats(),
        };
        *out = s.into();
        Ok(())
    })
}

/// `*state` = the peer's state, `MEMTUBE_PEER_STATE_*` (see
/// `memtube_sender_peer_state`; a region receiver reports CLOSED once the
/// producer role closed, and with `probe` GONE once the producer's process
/// has exited).
/// Threads: one thread at a time per receiver (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `rx` is NULL or a live receiver; `state` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_receiver_peer_state(
    rx: *mut memtube_receiver,
    probe: bool,
    state: *mut i32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(state, "state is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(rx)? };
        // SAFETY: a live handle, this thread's.
        *out = match unsafe { h.parts()? }.0 {
            RxRef::Proc(r) => state_code(if probe || !r.is_peer_alive() {
                r.probe_peer()
            } else {
                mt::PeerState::Alive
            }),
            RxRef::Ring(c) => ring_state(c.is_producer_closed(), probe, c.producer_holder()),
        };
        Ok(())
    })
}

/// Free an owned receiver (from `memtube_connection_split` or
/// `memtube_ring_attach_consumer`): a held message is released (its pointer
/// dies with the handle) and the ring closed (the peer's sender gets
/// CLOSED). NULL is ignored. A borrowed receiver
/// (`memtube_connection_receiver`) is left alone and the misuse reported
/// through `memtube_last_error_message`.
/// Threads: one thread at a time per receiver (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `rx` is NULL or a live receiver, not used after (if owned).
#[no_mangle]
pub unsafe extern "C" fn memtube_receiver_free(rx: *mut memtube_receiver) {
    value((), || {
        if rx.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle (the caller's contract); only its kind is read.
        if matches!(unsafe { &(*rx).kind }, RxKind::Conn(_)) {
            return Err(invalid(
                "memtube_receiver_free of a borrowed receiver (memtube_connection_receiver): \
                 it belongs to its connection; free the connection instead",
            ));
        }
        // SAFETY: an owned handle comes from `Box::into_raw`; the caller gives it up.
        let mut b = unsafe { Box::from_raw(rx) };
        // SAFETY: owned (not `Conn`), so no connection is involved.
        let released = match unsafe { b.parts() } {
            Ok((mut r, held)) if *held => {
                *held = false;
                r.release()
            }
            _ => Ok(()),
        };
        drop(b);
        released
    })
}
