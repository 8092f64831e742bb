//! `memtube_options` and `memtube_cancel_token`.

use crate::error::{invalid, status, value, Result};
use crate::util::{duration_or_forever, not_null, not_null_mut};
use std::ptr;

/// Connection options (opaque). Made by `memtube_options_new`, freed by
/// `memtube_options_free`; a listen, connect or accept copies what it needs,
/// so the options may be freed or changed right after.
pub struct memtube_options {
    pub(crate) opts: mt::Options,
}

/// A cancel token (opaque): once cancelled, the blocking calls of every
/// listener and connection made with options holding it return
/// `MEMTUBE_CANCELLED` within about 50 ms.
pub struct memtube_cancel_token {
    pub(crate) token: mt::CancelToken,
}

/// The connecting process sends, the listener receives (the default).
pub const MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER: i32 = 0;
/// The listener sends, the connecting process receives.
pub const MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR: i32 = 1;

/// Only processes of this process's effective uid may connect (the default).
pub const MEMTUBE_UID_POLICY_SAME_UID: i32 = 0;
/// Anyone who can reach the socket may connect.
pub const MEMTUBE_UID_POLICY_ANY: i32 = 1;
/// Only the uids listed may connect.
pub const MEMTUBE_UID_POLICY_UIDS: i32 = 2;

/// New options with the defaults: the connector sends, 64 KiB rings, not
/// duplex, isolation on, spin-then-sleep waiting, same uid only, 5 s
/// connect and handshake timeouts.
///
/// Ownership: the caller owns the result and frees it with
/// `memtube_options_free`. Returns NULL only when out of memory.
/// Threads: Send, not Sync (one thread at a time; may move between threads).
#[no_mangle]
pub extern "C" fn memtube_options_new() -> *mut memtube_options {
    value(ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(memtube_options {
            opts: mt::Options::new(),
        })))
    })
}

/// Free options made by `memtube_options_new`. NULL is ignored. Listeners and
/// connections made with them keep their own copy.
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// `o` is NULL or a live pointer from `memtube_options_new`, not used after.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_free(o: *mut memtube_options) {
    value((), || {
        if !o.is_null() {
            // SAFETY: the caller passes a pointer from `Box::into_raw` in
            // `memtube_options_new` and gives up ownership.
            drop(unsafe { Box::from_raw(o) });
        }
        Ok(())
    })
}

/// Run `f` on the options behind `o` (INVALID_ARGUMENT if NULL), under the
/// boundary of [`status`].
///
/// # Safety
/// `o` is NULL or a live `memtube_options` not used by another thread now.
unsafe fn set(o: *mut memtube_options, f: impl FnOnce(mt::Options) -> Result<mt::Options>) -> i32 {
    status(|| {
        // SAFETY: the caller's contract: NULL (refused) or live and unshared.
        let o = unsafe { not_null_mut(o, "options is NULL")? };
        o.opts = f(o.opts.clone())?;
        Ok(())
    })
}

/// Data-area bytes of each ring: a power of two from 64 to 2^31; the largest
/// message is half of it less 8 bytes. INVALID_ARGUMENT (and no change)
/// otherwise.
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// `o` is NULL or a live `memtube_options`, used by no other thread now.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_capacity(o: *mut memtube_options, bytes: u32) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        set(o, |opts| {
            if mt::ring::region_size(bytes).is_none() {
                return Err(invalid(
                    "capacity must be a power of two from 64 to 2^31 bytes",
                ));
            }
            Ok(opts.capacity(bytes))
        })
    }
}

/// The largest ring capacity a connector accepts from a listener (default
/// 64 MiB, and never less than the capacity set): a handshake with a larger
/// ring fails with HANDSHAKE before anything is mapped, so that a hostile
/// listener cannot make this process map gigabytes. Any value is accepted.
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// `o` is NULL or a live `memtube_options`, used by no other thread now.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_max_capacity(
    o: *mut memtube_options,
    bytes: u32,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { set(o, |opts| Ok(opts.max_capacity(bytes))) }
}

/// Two rings, one each way (`memtube_call` / `memtube_serve` need it).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_duplex(o: *mut memtube_options, on: bool) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { set(o, |opts| Ok(opts.duplex(on))) }
}

/// Kernel-enforced isolation (default on): each side maps the other's pages
/// read-only. Off is faster for round trips of a few hundred bytes.
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_isolation(o: *mut memtube_options, on: bool) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { set(o, |opts| Ok(opts.isolation(on))) }
}

/// Blocked calls only spin, never sleep (lowest latency; burns a core each).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_pure_spin(o: *mut memtube_options, on: bool) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { set(o, |opts| Ok(opts.pure_spin(on))) }
}

/// Back the rings with 2 MiB huge pages (UNSUPPORTED from listen/accept when
/// the kernel has none reserved; no silent fallback).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_huge_pages(o: *mut memtube_options, on: bool) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { set(o, |opts| Ok(opts.huge_pages(on))) }
}

/// `mlock` this side's mappings (needs RLIMIT_MEMLOCK room).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_mlock(o: *mut memtube_options, on: bool) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { set(o, |opts| Ok(opts.mlock(on))) }
}

/// Which side sends in a one-way connection: `MEMTUBE_DIRECTION_*`
/// (INVALID_ARGUMENT otherwise). Ignored in duplex mode.
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_direction(
    o: *mut memtube_options,
    direction: i32,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        set(o, |opts| match direction {
            MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER => {
                Ok(opts.direction(mt::Direction::ConnectorToListener))
            }
            MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR => {
                Ok(opts.direction(mt::Direction::ListenerToConnector))
            }
            _ => Err(invalid("direction must be MEMTUBE_DIRECTION_*")),
        })
    }
}

/// How long `memtube_connect` waits for the listener's backlog to have room
/// (`MEMTUBE_FOREVER` or any negative value: no limit).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_connect_timeout_ns(
    o: *mut memtube_options,
    timeout_ns: i64,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        set(o, |opts| {
            Ok(opts.connect_timeout(duration_or_forever(timeout_ns)))
        })
    }
}

/// How long either side waits for the other's handshake message
/// (`MEMTUBE_FOREVER` or any negative value: no limit).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_handshake_timeout_ns(
    o: *mut memtube_options,
    timeout_ns: i64,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        set(o, |opts| {
            Ok(opts.handshake_timeout(duration_or_forever(timeout_ns)))
        })
    }
}

/// Who may be at the other end: `MEMTUBE_UID_POLICY_SAME_UID` or `_ANY`
/// (`uids` ignored), or `_UIDS` with the `n` uids at `uids` (copied; `uids`
/// may be NULL only when `n` is 0, which lets nobody in).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`; `uids` points to `n` readable
/// `uint32_t` (when the kind is `_UIDS` and `n > 0`).
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_uid_policy(
    o: *mut memtube_options,
    kind: i32,
    uids: *const u32,
    n: usize,
) -> i32 {
    let f = move |opts: mt::Options| {
        let policy = match kind {
            MEMTUBE_UID_POLICY_SAME_UID => mt::UidPolicy::SameUid,
            MEMTUBE_UID_POLICY_ANY => mt::UidPolicy::Any,
            MEMTUBE_UID_POLICY_UIDS if n == 0 => mt::UidPolicy::Uids(Vec::new()),
            MEMTUBE_UID_POLICY_UIDS if uids.is_null() => {
                return Err(invalid("uids is NULL but n > 0"))
            }
            MEMTUBE_UID_POLICY_UIDS if n > isize::MAX as usize / 4 => {
                return Err(invalid("n is larger than any array"))
            }
            MEMTUBE_UID_POLICY_UIDS => {
                // SAFETY: non-null, and the caller guarantees `n` readable u32s.
                let list = unsafe { std::slice::from_raw_parts(uids, n) };
                mt::UidPolicy::Uids(list.to_vec())
            }
            _ => return Err(invalid("kind must be MEMTUBE_UID_POLICY_*")),
        };
        Ok(opts.uid_policy(policy))
    };
    // SAFETY: forwarded contract.
    unsafe { set(o, f) }
}

/// Stop the blocking calls of listeners and connections made with these
/// options when `token` is cancelled. The options share the token's flag
/// (the token may be freed afterwards; cancelling needs a live token).
/// Threads: one thread at a time per options (Send, not Sync).
///
/// # Safety
/// As for `memtube_options_set_capacity`; `token` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn memtube_options_set_cancel_token(
    o: *mut memtube_options,
    token: *const memtube_cancel_token,
) -> i32 {
    let f = |opts: mt::Options| {
        // SAFETY: the caller's contract: NULL (refused) or a live token.
        let t = unsafe { not_null(token, "token is NULL")? };
        Ok(opts.cancel_token(t.token.clone()))
    };
    // SAFETY: forwarded contract.
    unsafe { set(o, f) }
}

/// A new cancel token, not cancelled. The caller owns it and frees it with
/// `memtube_cancel_token_free`; NULL only when out of memory.
/// Threads: `memtube_cancel_token_cancel` may be called from any thread.
#[no_mangle]
pub extern "C" fn memtube_cancel_token_new() -> *mut memtube_cancel_token {
    value(ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(memtube_cancel_token {
            token: mt::CancelToken::new(),
        })))
    })
}

/// Cancel: the blocking calls using this token return `MEMTUBE_CANCELLED`
/// within about 50 ms (calls that need not wait still succeed). Cannot be
/// undone. Async-signal-safe and thread-safe: it is one atomic store (no
/// allocation, no lock, no thread-local), so a SIGINT handler or another
/// thread may call it while the owner uses the token's connections; it does
/// not touch the last error (its status is returned only).
///
/// # Safety
/// `t` is NULL (INVALID_ARGUMENT) or a live token (not being freed).
#[no_mangle]
pub unsafe extern "C" fn memtube_cancel_token_cancel(t: *const memtube_cancel_token) -> i32 {
    // The boundary without the last error: thread-locals are not for
    // signal handlers. `cancel` is one atomic store.
    crate::error::status_signal_safe(|| {
        if t.is_null() {
            return false;
        }
        // SAFETY: non-null, and the caller guarantees a live token; `cancel`
        // only needs a shared reference.
        unsafe { (*t).token.cancel() };
        true
    })
}

/// Free a cancel token. NULL is ignored. Options, listeners and connections
/// that were given it keep sharing its flag (which lives on); only this
/// handle goes.
/// Threads: any thread (the token is shared by whoever was given it).
///
/// # Safety
/// `t` is NULL or a live pointer from `memtube_cancel_token_new`, not used after.
#[no_mangle]
pub unsafe extern "C" fn memtube_cancel_token_free(t: *mut memtube_cancel_token) {
    value((), || {
        if !t.is_null() {
            // SAFETY: a pointer from `Box::into_raw`, ownership given up.
            drop(unsafe { Box::from_raw(t) });
        }
        Ok(())
    })
}
