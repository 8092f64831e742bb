//! PRIVATE Apple API: `__ulock_wait` / `__ulock_wake` (libsystem_kernel).
//!
//! Not in any public header; declared here and only here. Stable since
//! macOS 10.12 and used by libc++, Rust's std (before os_sync) and others,
//! but Apple may change it and App Store review may object. The public
//! replacement, `os_sync_wait_on_address` (macOS 14.4+), is preferred by
//! [`UlockWait`](crate::UlockWait) when the running system has it.
//!
//! Constants from xnu `bsd/sys/ulock.h`:
//! `UL_COMPARE_AND_WAIT_SHARED = 3` (compare a 32-bit word, process-shared:
//! keyed by the memory object, so two processes mapping the same pages
//! meet), `ULF_WAKE_ALL = 0x0000_0100`, `ULF_NO_ERRNO = 0x0100_0000`
//! (return `-errno` instead of setting `errno`; used on every call here).
//! `timeout` is in microseconds, 0 meaning none.

use std::ffi::{c_int, c_void};

/// Compare-and-wait on a 32-bit word in memory shared between processes.
pub(crate) const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
/// Wake every waiter (not only one).
pub(crate) const ULF_WAKE_ALL: u32 = 0x0000_0100;
/// Return `-errno` rather than `-1` with `errno` set.
pub(crate) const ULF_NO_ERRNO: u32 = 0x0100_0000;

extern "C" {
    /// Sleep while `*addr == value`, for at most `timeout_us` µs (0: no limit).
    pub(crate) fn __ulock_wait(
        operation: u32,
        addr: *mut c_void,
        value: u64,
        timeout_us: u32,
    ) -> c_int;
    /// Wake waiters on `addr`.
    pub(crate) fn __ulock_wake(operation: u32, addr: *mut c_void, wake_value: u64) -> c_int;
}
