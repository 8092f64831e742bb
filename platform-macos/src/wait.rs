//! ring-core's [`Wait`] on macOS: `os_sync_wait_on_address` (public, macOS
//! 14.4+) when the running system has it, else the private `__ulock_wait`
//! ([`crate::ulock`]); both in their process-shared variants, since the word
//! lives in memory shared between processes (and may be mapped read-only).
//!
//! Availability is decided once, at the first wait or wake, with
//! `dlsym(RTLD_DEFAULT, ...)`: Rust has no stable weak linking, and a
//! direct reference to `os_sync_*` would fail to load on macOS < 14.4.
//! Both sides of a connection may use different mechanisms (one has
//! os_sync, the other not): the kernel keys both on the same shared memory
//! object and offset, so a `__ulock_wake` wakes an os_sync waiter and the
//! reverse (os_sync is implemented on the same ulock machinery; untested on
//! a real Mac).
//!
//! Constants of the public API, from `<os/os_sync_wait_on_address.h>` and
//! `<os/clock.h>` (macOS 14.4 SDK): `OS_SYNC_WAIT_ON_ADDRESS_SHARED = 1`,
//! `OS_SYNC_WAKE_BY_ADDRESS_SHARED = 1`, `OS_CLOCK_MACH_ABSOLUTE_TIME = 32`;
//! the timeout of `os_sync_wait_on_address_with_timeout` is relative, in
//! nanoseconds.
//!
//! References: xnu `bsd/sys/ulock.h`, `<os/os_sync_wait_on_address.h>`.

use crate::ulock::{
    __ulock_wait, __ulock_wake, ULF_NO_ERRNO, ULF_WAKE_ALL, UL_COMPARE_AND_WAIT_SHARED,
};
use memtube_ring::atomic::AtomicU32;
use memtube_ring::Wait;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const OS_SYNC_WAIT_ON_ADDRESS_SHARED: u32 = 1;
const OS_SYNC_WAKE_BY_ADDRESS_SHARED: u32 = 1;
const OS_CLOCK_MACH_ABSOLUTE_TIME: u32 = 32;

type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32) -> c_int;
type OsSyncWaitTimeout = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;

/// The os_sync entry points, if this macOS has them.
#[derive(Clone, Copy)]
struct OsSync {
    wait: OsSyncWait,
    wait_timeout: OsSyncWaitTimeout,
    wake_all: OsSyncWake,
}

fn os_sync() -> Option<OsSync> {
    static FNS: OnceLock<Option<OsSync>> = OnceLock::new();
    *FNS.get_or_init(|| {
        let find = |name: &std::ffi::CStr| {
            // SAFETY: `name` is a NUL-terminated C string; RTLD_DEFAULT
            // searches the images already loaded; dlsym has no other
            // precondition.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let wait = find(c"os_sync_wait_on_address")?;
        let wait_timeout = find(c"os_sync_wait_on_address_with_timeout")?;
        let wake_all = find(c"os_sync_wake_by_address_all")?;
        // SAFETY: each symbol is the libSystem function of that name, whose
        // C signature (from <os/os_sync_wait_on_address.h>) is exactly the
        // function-pointer type it is converted to; a data pointer returned
        // by dlsym for a function is its address.
        unsafe {
            Some(OsSync {
                wait: std::mem::transmute::<*mut c_void, OsSyncWait>(wait),
                wait_timeout: std::mem::transmute::<*mut c_void, OsSyncWaitTimeout>(wait_timeout),
                wake_all: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_all),
            })
        }
    })
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The macOS [`Wait`]: sleeps in the kernel on the shared word until the
/// peer wakes it or the timeout passes; `now` reads the monotonic clock
/// (`mach_absolute_time`, no system call).
///
/// Spurious returns (`EFAULT`, an unknown error) are allowed by
/// [`Wait`]'s contract: ring-core re-checks. `EINTR` sleeps again for what
/// is left; `ETIMEDOUT` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UlockWait;

impl UlockWait {
    /// Whether this system has the public `os_sync_*` API (macOS 14.4+),
    /// which is then used instead of the private `__ulock_*`.
    pub fn uses_os_sync() -> bool {
        os_sync().is_some()
    }
}

impl Wait for UlockWait {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let addr = word.as_ptr().cast::<c_void>();
        let deadline = timeout.map(|t| self.now().saturating_add(t));
        loop {
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_sub(self.now());
                    if left.is_zero() {
                        return;
                    }
                    Some(left)
                }
                None => None,
            };
            let interrupted = match os_sync() {
                Some(f) => {
                    let r = match left {
                        // SAFETY: `addr` is a live, aligned 4-byte word for
                        // the borrow of `word`; the kernel only reads it.
                        None => unsafe {
                            (f.wait)(addr, expected.into(), 4, OS_SYNC_WAIT_ON_ADDRESS_SHARED)
                        },
                        // SAFETY: as above; the timeout is relative, in ns.
                        Some(l) => unsafe {
                            (f.wait_timeout)(
                                addr,
                                expected.into(),
                                4,
                                OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                                OS_CLOCK_MACH_ABSOLUTE_TIME,
                                u64::try_from(l.as_nanos()).unwrap_or(u64::MAX).max(1),
                            )
                        },
                    };
                    r < 0 && errno() == libc::EINTR
                }
                None => {
                    // Microseconds, 0 meaning no limit: round up, clamp.
                    let us = left.map_or(0, |l| {
                        u32::try_from(l.as_micros()).unwrap_or(u32::MAX).max(1)
                    });
                    // SAFETY: `addr` is a live, aligned 4-byte word for the
                    // borrow of `word`; the kernel only reads it.
                    let r = unsafe {
                        __ulock_wait(
                            UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                            addr,
                            expected.into(),
                            us,
                        )
                    };
                    r == -libc::EINTR
                }
            };
            if !interrupted {
                // Woken, the word differed, timed out, or a spurious error.
                return;
            }
        }
    }

    fn wake(&self, word: &AtomicU32) {
        let addr = word.as_ptr().cast::<c_void>();
        match os_sync() {
            Some(f) => loop {
                // SAFETY: `addr` is a live, aligned 4-byte word for the
                // borrow of `word`.
                let r = unsafe { (f.wake_all)(addr, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED) };
                // ENOENT: nobody waits.
                if !(r < 0 && errno() == libc::EINTR) {
                    return;
                }
            },
            None => loop {
                // SAFETY: as above.
                let r = unsafe {
                    __ulock_wake(
                        UL_COMPARE_AND_WAIT_SHARED | ULF_WAKE_ALL | ULF_NO_ERRNO,
                        addr,
                        0,
                    )
                };
                if r != -libc::EINTR {
                    return;
                }
            },
        }
    }

    fn now(&self) -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}
