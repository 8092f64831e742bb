//! memtube's C ABI: `libmemtube.so` / `libmemtube.a` and `include/memtube.h`
//! (generated from this crate by cbindgen; `tests/header.rs` checks it).
//!
//! The rules every function follows (the header and `docs/c-abi.md` say
//! them to C users):
//! - Every entry point runs under `catch_unwind` ([`error::status`],
//!   [`error::value`]): no panic crosses into C; one becomes
//!   `MEMTUBE_PANIC`.
//! - Every failure is recorded as the thread's last error (its text is made
//!   only when asked for); every success clears it.
//! - Every pointer is checked for NULL; misuse (a commit of more than was
//!   reserved, a free of a borrowed handle, ...) is an error, never a panic.
//! - Lifetimes use ring-core's hooks, never a transmute: a received message
//!   is kept in place (`Message::keep`) and released by receiving it again;
//!   a reservation is detached (`Grant::detach`) and committed with
//!   `commit_detached`.
//! - The handles a connection lends (its sender and receiver) reach the
//!   connection through its root pointer, one field at a time (see
//!   `handles.rs`).

#![cfg(any(target_os = "linux", target_os = "macos"))]
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The boundary turns a panic into MEMTUBE_PANIC with catch_unwind, which
// catches nothing when panics abort: the process would die under its caller.
#[cfg(panic = "abort")]
compile_error!(
    "memtube-ffi needs panic = \"unwind\": its C ABI promises that a panic becomes MEMTUBE_PANIC"
);

// First: cbindgen then writes the version macros near the top of memtube.h.
mod version;

mod conn;
mod error;
mod exchange;
mod handles;
mod options;
mod peer;
mod recv;
mod region;
mod rpc;
mod send;
mod util;

pub use conn::*;
pub use error::memtube_status;
pub use exchange::*;
pub use handles::{memtube_connection, memtube_receiver, memtube_sender};
pub use options::*;
pub use peer::*;
pub use recv::*;
pub use region::*;
pub use rpc::*;
pub use send::*;
pub use version::*;

use std::ffi::c_char;

/// Wait without limit (any negative `timeout_ns` does).
pub const MEMTUBE_FOREVER: i64 = -1;

/// The text of this thread's last failure, NUL-terminated; "" when the
/// last memtube call on this thread succeeded. Owned by memtube, valid
/// until the next memtube call on this thread (do not free it). Calling
/// this, `memtube_last_os_error` or `memtube_status_name` does not change it.
///
/// Threads: per thread (the last error is thread-local).
#[no_mangle]
pub extern "C" fn memtube_last_error_message() -> *const c_char {
    std::panic::catch_unwind(error::last_message).unwrap_or(c"".as_ptr())
}

/// The errno behind this thread's last failure (status `MEMTUBE_OS`, and
/// some others such as NO_LISTENER), or 0.
///
/// Threads: per thread (the last error is thread-local).
#[no_mangle]
pub extern "C" fn memtube_last_os_error() -> i32 {
    std::panic::catch_unwind(error::last_os_error).unwrap_or(0)
}

/// The name of a status ("MEMTUBE_FULL"), static and NUL-terminated;
/// "MEMTUBE_UNKNOWN_STATUS" for a number that is not one.
///
/// Threads: any thread.
#[no_mangle]
pub extern "C" fn memtube_status_name(status: i32) -> *const c_char {
    std::panic::catch_unwind(|| match memtube_status::from_i32(status) {
        Some(s) => s.name().as_ptr().cast(),
        None => c"MEMTUBE_UNKNOWN_STATUS".as_ptr(),
    })
    .unwrap_or(c"MEMTUBE_UNKNOWN_STATUS".as_ptr())
}

/// The ABI version of the library loaded (`MEMTUBE_ABI_VERSION` of the
/// header it was built with): `major << 16 | minor`.
///
/// Threads: any thread.
#[no_mangle]
pub extern "C" fn memtube_abi_version() -> u32 {
    MEMTUBE_ABI_VERSION
}

/// The library's version ("0.1.0"), static and NUL-terminated.
///
/// Threads: any thread.
#[no_mangle]
pub extern "C" fn memtube_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}
