//! Argument checks and conversions shared by the entry points.

use crate::error::{invalid, Result};
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// `&*p`, or INVALID_ARGUMENT (`what`) if `p` is NULL.
///
/// # Safety
/// `p` is NULL or valid for reads of a `T` for `'a`, with no `&mut` to it alive.
#[inline(always)]
pub(crate) unsafe fn not_null<'a, T>(p: *const T, what: &'static str) -> Result<&'a T> {
    // SAFETY: the caller's contract; `as_ref` checks NULL.
    unsafe { p.as_ref() }.ok_or_else(|| invalid(what))
}

/// `&mut *p`, or INVALID_ARGUMENT (`what`) if `p` is NULL.
///
/// # Safety
/// `p` is NULL or valid for reads and writes of a `T` for `'a`, with no
/// other reference to it alive.
#[inline(always)]
pub(crate) unsafe fn not_null_mut<'a, T>(p: *mut T, what: &'static str) -> Result<&'a mut T> {
    // SAFETY: the caller's contract; `as_mut` checks NULL.
    unsafe { p.as_mut() }.ok_or_else(|| invalid(what))
}

/// A timeout option: negative is "no limit" (`Duration::MAX`, which the
/// deadlines saturate to "never").
pub(crate) fn duration_or_forever(ns: i64) -> Duration {
    u64::try_from(ns).map_or(Duration::MAX, Duration::from_nanos)
}

/// How long a call may wait, from its `timeout_ns`.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// 0: do not wait.
    Now,
    /// > 0: at most this long.
    For(Duration),
    /// < 0: no limit.
    Forever,
}

impl Wait {
    /// The time limit of a blocking call of the process API: `Duration::MAX`
    /// for no limit (its liveness slices never use it up), as good as `None`.
    #[inline(always)]
    pub(crate) fn or_max(self) -> Duration {
        match self {
            Wait::Now => Duration::ZERO,
            Wait::For(d) => d,
            Wait::Forever => Duration::MAX,
        }
    }

    #[inline(always)]
    pub(crate) fn from_ns(ns: i64) -> Self {
        match ns {
            0 => Wait::Now,
            n if n < 0 => Wait::Forever,
            n => Wait::For(Duration::from_nanos(n as u64)),
        }
    }
}

/// The longest address read: an address that has no NUL in its first
/// `MAX_ADDR` bytes is refused without reading further (a socket path is at
/// most 107 bytes anyway).
pub(crate) const MAX_ADDR: usize = 4096;

/// The NUL-terminated UTF-8 string at `p`, read up to [`MAX_ADDR`] bytes.
///
/// # Safety
/// `p` is NULL or points to readable bytes up to its NUL or [`MAX_ADDR`]
/// bytes, whichever comes first, that stay unchanged during the call.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &'static str) -> Result<&'a str> {
    if p.is_null() {
        return Err(invalid(what));
    }
    let mut n = 0;
    // SAFETY: the caller guarantees the bytes up to the NUL (or MAX_ADDR)
    // are readable; we stop at the first NUL.
    while n < MAX_ADDR && unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    if n == MAX_ADDR {
        return Err(invalid(
            "string has no NUL terminator within 4096 bytes (a socket address is at most 107)",
        ));
    }
    // SAFETY: the `n` bytes before the NUL were just read, so they are readable.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) };
    std::str::from_utf8(bytes).map_err(|_| invalid("string is not UTF-8"))
}

/// The `len` bytes at `p` (NULL allowed when `len` is 0).
///
/// # Safety
/// When `len > 0`, `p` is NULL or valid for reads of `len` bytes that are
/// not written during the call.
#[inline(always)]
pub(crate) unsafe fn bytes<'a>(p: *const c_void, len: usize) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(invalid("data is NULL but len > 0"));
    }
    if len > isize::MAX as usize {
        return Err(invalid("len is larger than any object"));
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}
