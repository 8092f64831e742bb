//! Sending: copying, batched, and zero-copy through a grant.

use crate::error::{busy, invalid, status, value, Result};
use crate::handles::{memtube_sender, TxKind, TxRef};
use crate::peer::{memtube_stats, ring_state, state_code};
use crate::util::{bytes, not_null_mut, Wait};
use std::ffi::c_void;

/// A reservation in a sender's ring, filled by `memtube_reserve`: `len`
/// writable bytes at `data` (8-byte aligned), valid until `memtube_commit`,
/// `memtube_abort` or the free of the sender (or of its connection).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct memtube_grant {
    /// The reserved bytes, in the shared ring.
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

/// The sender behind `tx`, for one call.
///
/// # Safety
/// `tx` is NULL or a live sender handle used by this thread only.
#[inline(always)]
unsafe fn handle<'a>(tx: *mut memtube_sender) -> Result<&'a mut memtube_sender> {
    // SAFETY: the caller's contract.
    unsafe { not_null_mut(tx, "sender is NULL") }
}

/// Copy `len` bytes at `data` into the ring as one message of type
/// `type_id` and publish it. `timeout_ns`: 0 does not wait (FULL when there
/// is no room now), > 0 waits at most that long for room (TIMEOUT),
/// `MEMTUBE_FOREVER` (any negative) waits until there is room, the peer
/// closes (CLOSED) or dies (PEER_GONE). TOO_LARGE above the maximum payload;
/// BUSY while a grant is outstanding. `data` may be NULL when `len` is 0.
///
/// Ownership: `data` is only read during the call.
/// Threads: one thread at a time per sender (Send, not Sync).
///
/// # Safety
/// `tx` is NULL or a live sender; `data` is readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn memtube_send(
    tx: *mut memtube_sender,
    data: *const c_void,
    len: usize,
    type_id: u32,
    timeout_ns: i64,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(data, len)? };
        // SAFETY: a live handle (above), this thread's.
        let (t, grant) = unsafe { h.parts()? };
        if grant.is_some() {
            return Err(busy());
        }
        match (t, Wait::from_ns(timeout_ns)) {
            (TxRef::Proc(s), Wait::Now) => s.try_send(data, type_id)?,
            // One blocking call site: `Duration::MAX` waits as long as no
            // limit (the liveness slices are subtracted from it forever).
            (TxRef::Proc(s), w) => s.send_timeout(data, type_id, w.or_max())?,
            (TxRef::Ring(p), Wait::Now) => p.try_send(data, type_id)?,
            (TxRef::Ring(p), Wait::For(d)) => p.send_timeout(data, type_id, d)?,
            (TxRef::Ring(p), Wait::Forever) => p.send(data, type_id)?,
        }
        Ok(())
    })
}

/// Copy a message in without publishing it (never waits: FULL when there
/// is no room). Staged messages become visible together at the next
/// `memtube_publish` or publishing send/commit. BUSY while a grant is
/// outstanding.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// As for `memtube_send`.
#[no_mangle]
pub unsafe extern "C" fn memtube_send_staged(
    tx: *mut memtube_sender,
    data: *const c_void,
    len: usize,
    type_id: u32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: the caller's contract.
        let data = unsafe { bytes(data, len)? };
        // SAFETY: a live handle, this thread's.
        let (t, grant) = unsafe { h.parts()? };
        if grant.is_some() {
            return Err(busy());
        }
        match t {
            TxRef::Proc(s) => s.send_staged(data, type_id)?,
            TxRef::Ring(p) => p.send_staged(data, type_id)?,
        }
        Ok(())
    })
}

/// Publish the staged messages (one Release store and one wake-up check for
/// the batch). BUSY while a grant is outstanding.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender.
#[no_mangle]
pub unsafe extern "C" fn memtube_publish(tx: *mut memtube_sender) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        let (t, grant) = unsafe { h.parts()? };
        if grant.is_some() {
            return Err(busy());
        }
        match t {
            TxRef::Proc(s) => s.publish(),
            TxRef::Ring(p) => p.publish(),
        }
        Ok(())
    })
}

/// Reserve `len` bytes in place (zero copy): `*out` gets the writable bytes.
/// Write them, then `memtube_commit` (publishes) or `memtube_abort`
/// (nothing sent). `timeout_ns` as for `memtube_send`. At most one grant per
/// sender: while it is outstanding every other call on the sender that
/// writes to the ring (send, send_staged, publish, reserve, the setters,
/// call, serve) returns BUSY; the queries (max_payload, capacity, stats,
/// peer_state) still work. On failure `*out` is {NULL, 0}.
///
/// Lifetime: `out->data` is valid until the commit, the abort, or the free
/// of the sender (which commits nothing).
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_reserve(
    tx: *mut memtube_sender,
    len: usize,
    timeout_ns: i64,
    out: *mut memtube_grant,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = memtube_grant {
            data: std::ptr::null_mut(),
            len: 0,
        };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        let (t, grant) = unsafe { h.parts()? };
        if grant.is_some() {
            return Err(busy());
        }
        let g = match (t, Wait::from_ns(timeout_ns)) {
            (TxRef::Proc(s), Wait::Now) => s.try_reserve(len)?.detach(),
            (TxRef::Proc(s), Wait::For(d)) => s.reserve_timeout(len, d)?.detach(),
            (TxRef::Proc(s), Wait::Forever) => s.reserve(len)?.detach(),
            (TxRef::Ring(p), Wait::Now) => p.try_reserve(len)?.detach(),
            (TxRef::Ring(p), Wait::For(d)) => p.reserve_timeout(len, d)?.detach(),
            (TxRef::Ring(p), Wait::Forever) => p.reserve(len)?.detach(),
        };
        *out = memtube_grant {
            data: g.as_mut_ptr(),
            len: g.len(),
        };
        *grant = Some(g);
        Ok(())
    })
}

/// Commit the first `used` bytes of the outstanding grant as one message of
/// type `type_id` and publish it. INVALID_ARGUMENT when no grant is
/// outstanding, or when `used` exceeds the reserved length (the grant then
/// stays outstanding: commit again or abort).
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender.
#[no_mangle]
pub unsafe extern "C" fn memtube_commit(tx: *mut memtube_sender, used: usize, type_id: u32) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        let (t, grant) = unsafe { h.parts()? };
        let Some(g) = grant.take() else {
            return Err(invalid("no grant is outstanding on this sender"));
        };
        if used > g.len() {
            *grant = Some(g);
            return Err(invalid(
                "commit of more bytes than reserved (the grant stays outstanding)",
            ));
        }
        match t {
            // SAFETY: `g` was detached from a grant of this very sender, and
            // while it was outstanding every other writing call returned BUSY.
            TxRef::Proc(s) => unsafe { s.commit_detached(g, used, type_id) },
            // SAFETY: as above, for the region producer.
            TxRef::Ring(p) => unsafe { p.commit_detached(g, used, type_id) },
        }
        Ok(())
    })
}

/// Drop the outstanding grant: nothing is sent. OK also when none is outstanding.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender.
#[no_mangle]
pub unsafe extern "C" fn memtube_abort(tx: *mut memtube_sender) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        h.grant = None;
        Ok(())
    })
}

/// `*out` = the largest payload this sender's ring takes.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_max_payload(tx: *mut memtube_sender, out: *mut u32) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        *out = match unsafe { h.parts()? }.0 {
            TxRef::Proc(s) => s.max_payload(),
            TxRef::Ring(p) => p.max_payload(),
        };
        Ok(())
    })
}

/// `*out` = the data-area bytes of this sender's ring.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_capacity(tx: *mut memtube_sender, out: *mut u32) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        *out = match unsafe { h.parts()? }.0 {
            TxRef::Proc(s) => s.capacity(),
            TxRef::Ring(p) => p.capacity(),
        };
        Ok(())
    })
}

/// `*out` = the ring's counters (may be slightly stale).
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_stats(
    tx: *mut memtube_sender,
    out: *mut memtube_stats,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        let s = match unsafe { h.parts()? }.0 {
            TxRef::Proc(s) => s.stats(),
            TxRef::Ring(p) => p.stats(),
        };
        *out = s.into();
        Ok(())
    })
}

/// `*state` = the peer's state, `MEMTUBE_PEER_STATE_*`: with `probe`, one
/// system call asks now; without, the state cached by the last probe (no
/// system call; may be stale). A region sender reports CLOSED once the
/// consumer role closed; with `probe`, GONE once the consumer's process
/// (recorded when it attached) has exited; else ALIVE.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender; `state` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_peer_state(
    tx: *mut memtube_sender,
    probe: bool,
    state: *mut i32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(state, "state is NULL")? };
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        *out = match unsafe { h.parts()? }.0 {
            TxRef::Proc(s) => state_code(if probe || !s.is_peer_alive() {
                s.probe_peer()
            } else {
                mt::PeerState::Alive
            }),
            TxRef::Ring(p) => ring_state(p.is_consumer_closed(), probe, p.consumer_holder()),
        };
        Ok(())
    })
}

/// Copying sends of payloads of at least `bytes` bytes use non-temporal
/// stores (x86-64; the default depends on the processor: 16 KiB on AMD and
/// Hygon, and 2 KiB there for sends that follow each other back to back, a
/// stream; off elsewhere; `UINT32_MAX` turns it off; a threshold set here
/// applies to every send). BUSY while a grant is outstanding.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender.
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_set_nontemporal_threshold(
    tx: *mut memtube_sender,
    bytes: u32,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        let (t, grant) = unsafe { h.parts()? };
        if grant.is_some() {
            return Err(busy());
        }
        match t {
            TxRef::Proc(s) => s.set_nontemporal_threshold(bytes),
            TxRef::Ring(p) => p.set_nontemporal_threshold(bytes),
        }
        Ok(())
    })
}

/// Pad small published messages to the end of their cache line (on by
/// default in duplex connections and with isolation). BUSY while a grant is
/// outstanding.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender.
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_set_line_padding(tx: *mut memtube_sender, on: bool) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(tx)? };
        // SAFETY: a live handle, this thread's.
        let (t, grant) = unsafe { h.parts()? };
        if grant.is_some() {
            return Err(busy());
        }
        match t {
            TxRef::Proc(s) => s.set_line_padding(on),
            TxRef::Ring(p) => p.set_line_padding(on),
        }
        Ok(())
    })
}

/// Free an owned sender (from `memtube_connection_split` or
/// `memtube_ring_attach_producer`): staged messages are published, then the
/// ring is closed cleanly (the peer's receiver gets CLOSED after the last
/// message); an outstanding grant is dropped (nothing committed) and its
/// pointer dies. NULL is ignored. A borrowed sender
/// (`memtube_connection_sender`) is left alone: it is the connection's, and
/// the misuse is reported through `memtube_last_error_message`.
/// Threads: one thread at a time per sender (Send, not Sync); a borrowed one moves only
/// with its connection.
///
/// # Safety
/// `tx` is NULL or a live sender, not used after (if owned).
#[no_mangle]
pub unsafe extern "C" fn memtube_sender_free(tx: *mut memtube_sender) {
    value((), || {
        if tx.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle (the caller's contract); only its kind is read.
        if matches!(unsafe { &(*tx).kind }, TxKind::Conn(_)) {
            return Err(invalid(
                "memtube_sender_free of a borrowed sender (memtube_connection_sender): \
                 it belongs to its connection; free the connection instead",
            ));
        }
        // SAFETY: an owned handle comes from `Box::into_raw`; the caller gives it up.
        let b = unsafe { Box::from_raw(tx) };
        // The grant (a description only: dropping it commits nothing) and
        // the Rust sender (which closes the ring) go with the box.
        drop(b);
        Ok(())
    })
}
