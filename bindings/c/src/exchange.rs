//! Send, then receive, in one call: the lockstep exchange (MPI's
//! `MPI_Sendrecv`), for bindings whose every call into native code costs
//! (cgo, JNI, N-API) and for C programs that ping-pong.

use crate::handles::{memtube_receiver, memtube_sender};
use crate::recv::{memtube_message, memtube_recv};
use crate::send::memtube_send;
use std::ffi::c_void;

/// Send `len` bytes at `data` as one message of type `type_id` on `tx`
/// (exactly as `memtube_send`), then receive the next message on `rx` into
/// `*out` (exactly as `memtube_recv`): one call instead of two, for
/// request/reply in lockstep and for echoes. `timeout_ns` applies to each
/// of the two waits (0: neither waits; negative: no limit).
///
/// `data` may point into the message `rx` holds (an echo sends back what it
/// received, with no copy of its own): that message is released only after
/// the send, at the start of the receive.
///
/// Returns `MEMTUBE_OK` when both happened; otherwise the status of the
/// step that failed, and `*sent` (when not NULL) says which: false when the
/// send failed (nothing was sent, nothing received, the message `rx` held
/// is still held and valid, `*out` is {NULL, 0, 0}), true when the message
/// went out and the receive failed (as `memtube_recv` fails; retry with
/// `memtube_recv`, not with this call, or the message goes out twice).
///
/// Lifetime: `out->data` as for `memtube_recv`.
/// Threads: one thread at a time for `tx` and for `rx` (each is Send, not
/// Sync); they may belong to one duplex connection or to two.
///
/// # Safety
/// `tx` is NULL or a live sender; `rx` is NULL or a live receiver; `data`
/// is readable for `len` bytes (NULL when `len` is 0); `out` is NULL or
/// writable; `sent` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_sendrecv(
    tx: *mut memtube_sender,
    data: *const c_void,
    len: usize,
    type_id: u32,
    rx: *mut memtube_receiver,
    timeout_ns: i64,
    out: *mut memtube_message,
    sent: *mut bool,
) -> i32 {
    // SAFETY: `sent` is NULL or writable (the caller's contract).
    let mark = |v: bool| unsafe {
        if !sent.is_null() {
            *sent = v;
        }
    };
    mark(false);
    if !out.is_null() {
        // SAFETY: `out` is writable (the caller's contract).
        unsafe { *out = memtube_message::EMPTY };
    }
    // Check the receive's arguments before anything goes out, so that a
    // NULL `rx` or `out` fails with nothing sent.
    if rx.is_null() || out.is_null() {
        // SAFETY: memtube_recv with a NULL argument only records and
        // returns INVALID_ARGUMENT; `out` is NULL or writable.
        return unsafe { memtube_recv(rx, 0, out) };
    }
    // SAFETY: the caller's contract for `tx`, `data` and `len`. Each call
    // catches its own panics and records its own error.
    let st = unsafe { memtube_send(tx, data, len, type_id, timeout_ns) };
    if st != 0 {
        return st;
    }
    mark(true);
    // SAFETY: the caller's contract for `rx` and `out`. The message `data`
    // pointed into (if any) is released here, after the send copied it.
    unsafe { memtube_recv(rx, timeout_ns, out) }
}
