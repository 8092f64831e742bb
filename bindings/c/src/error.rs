//! Status codes, the thread-local last error, and the boundary every entry
//! point goes through ([`status`], [`value`]): `catch_unwind`, error mapping,
//! and clearing the last error on success.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a memtube call returned. Every function that can fail returns one of
/// these as an `int32_t`. The numbers are stable: never reused, new ones
/// only appended (a minor ABI version). `memtube_status_name` names them and
/// `memtube_last_error_message` says more about the last failure.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum memtube_status {
    /// Success.
    MEMTUBE_OK = 0,
    /// Nothing to receive now (a receive with `timeout_ns == 0`).
    MEMTUBE_EMPTY = 1,
    /// No room in the ring now (a send or reserve with `timeout_ns == 0`).
    MEMTUBE_FULL = 2,
    /// The timeout elapsed (a blocking call, accept, connect or the handshake).
    MEMTUBE_TIMEOUT = 3,
    /// The peer closed cleanly; a receiver gets this after every message sent before.
    MEMTUBE_CLOSED = 4,
    /// The peer died (or closed its socket without a clean close); a
    /// receiver gets this after every message committed before.
    MEMTUBE_PEER_GONE = 5,
    /// The cancel token of the options was cancelled.
    MEMTUBE_CANCELLED = 6,
    /// The message exceeds the ring's maximum payload.
    MEMTUBE_TOO_LARGE = 7,
    /// The server's reply to this call did not fit in the ring.
    MEMTUBE_REPLY_TOO_LARGE = 8,
    /// The peer wrote invalid ring contents: this ring is poisoned, every
    /// later call on the handle returns this again.
    MEMTUBE_CORRUPT = 9,
    /// The handshake was refused (malformed, mismatched options, bad descriptors).
    MEMTUBE_HANDSHAKE = 10,
    /// The peer broke the call/serve protocol.
    MEMTUBE_PROTOCOL = 11,
    /// The peer's uid is not allowed by the uid policy.
    MEMTUBE_PERMISSION_DENIED = 12,
    /// A live listener owns the address.
    MEMTUBE_ADDR_IN_USE = 13,
    /// Nothing listens at the address.
    MEMTUBE_NO_LISTENER = 14,
    /// The path exists and is not a socket (memtube never replaces it).
    MEMTUBE_NOT_A_SOCKET = 15,
    /// The connection has no such handle (for example a sender on the
    /// receiving side of a one-way connection, or `call` on a one-way connection).
    MEMTUBE_NO_SUCH_HANDLE = 16,
    /// Not available on this system or with these handles (abstract names on
    /// macOS, huge pages when the kernel has none, call/serve on a region ring).
    MEMTUBE_UNSUPPORTED = 17,
    /// A system call failed: `memtube_last_os_error()` gives the errno.
    MEMTUBE_OS = 18,
    /// A NULL pointer, a bad string, a bad option value, a commit of more
    /// than was reserved, a free of a borrowed handle, ...
    MEMTUBE_INVALID_ARGUMENT = 19,
    /// A grant is outstanding on this sender (commit or abort it first).
    MEMTUBE_BUSY = 20,
    /// A region refused by `memtube_ring_*`: too small, misaligned, bad
    /// magic, version, layout or capacity.
    MEMTUBE_BAD_REGION = 21,
    /// The region's producer or consumer role is already taken.
    MEMTUBE_ROLE_TAKEN = 22,
    /// A bug inside memtube, caught at the boundary (never a crash); the
    /// handle it happened on should be freed.
    MEMTUBE_PANIC = 23,
}

use memtube_status::*;

impl memtube_status {
    /// The name, NUL-terminated.
    pub(crate) fn name(self) -> &'static [u8] {
        match self {
            MEMTUBE_OK => b"MEMTUBE_OK\0",
            MEMTUBE_EMPTY => b"MEMTUBE_EMPTY\0",
            MEMTUBE_FULL => b"MEMTUBE_FULL\0",
            MEMTUBE_TIMEOUT => b"MEMTUBE_TIMEOUT\0",
            MEMTUBE_CLOSED => b"MEMTUBE_CLOSED\0",
            MEMTUBE_PEER_GONE => b"MEMTUBE_PEER_GONE\0",
            MEMTUBE_CANCELLED => b"MEMTUBE_CANCELLED\0",
            MEMTUBE_TOO_LARGE => b"MEMTUBE_TOO_LARGE\0",
            MEMTUBE_REPLY_TOO_LARGE => b"MEMTUBE_REPLY_TOO_LARGE\0",
            MEMTUBE_CORRUPT => b"MEMTUBE_CORRUPT\0",
            MEMTUBE_HANDSHAKE => b"MEMTUBE_HANDSHAKE\0",
            MEMTUBE_PROTOCOL => b"MEMTUBE_PROTOCOL\0",
            MEMTUBE_PERMISSION_DENIED => b"MEMTUBE_PERMISSION_DENIED\0",
            MEMTUBE_ADDR_IN_USE => b"MEMTUBE_ADDR_IN_USE\0",
            MEMTUBE_NO_LISTENER => b"MEMTUBE_NO_LISTENER\0",
            MEMTUBE_NOT_A_SOCKET => b"MEMTUBE_NOT_A_SOCKET\0",
            MEMTUBE_NO_SUCH_HANDLE => b"MEMTUBE_NO_SUCH_HANDLE\0",
            MEMTUBE_UNSUPPORTED => b"MEMTUBE_UNSUPPORTED\0",
            MEMTUBE_OS => b"MEMTUBE_OS\0",
            MEMTUBE_INVALID_ARGUMENT => b"MEMTUBE_INVALID_ARGUMENT\0",
            MEMTUBE_BUSY => b"MEMTUBE_BUSY\0",
            MEMTUBE_BAD_REGION => b"MEMTUBE_BAD_REGION\0",
            MEMTUBE_ROLE_TAKEN => b"MEMTUBE_ROLE_TAKEN\0",
            MEMTUBE_PANIC => b"MEMTUBE_PANIC\0",
        }
    }

    /// The status numbered `n`, if any.
    pub(crate) fn from_i32(n: i32) -> Option<Self> {
        const ALL: [memtube_status; 24] = [
            MEMTUBE_OK,
            MEMTUBE_EMPTY,
            MEMTUBE_FULL,
            MEMTUBE_TIMEOUT,
            MEMTUBE_CLOSED,
            MEMTUBE_PEER_GONE,
            MEMTUBE_CANCELLED,
            MEMTUBE_TOO_LARGE,
            MEMTUBE_REPLY_TOO_LARGE,
            MEMTUBE_CORRUPT,
            MEMTUBE_HANDSHAKE,
            MEMTUBE_PROTOCOL,
            MEMTUBE_PERMISSION_DENIED,
            MEMTUBE_ADDR_IN_USE,
            MEMTUBE_NO_LISTENER,
            MEMTUBE_NOT_A_SOCKET,
            MEMTUBE_NO_SUCH_HANDLE,
            MEMTUBE_UNSUPPORTED,
            MEMTUBE_OS,
            MEMTUBE_INVALID_ARGUMENT,
            MEMTUBE_BUSY,
            MEMTUBE_BAD_REGION,
            MEMTUBE_ROLE_TAKEN,
            MEMTUBE_PANIC,
        ];
        usize::try_from(n).ok().and_then(|i| ALL.get(i).copied())
    }
}

/// Why a call failed. Kept as a value (no formatting, no allocation for the
/// common `Full` / `Empty` / `Timeout`); the text is made only when
/// `memtube_last_error_message` asks for it.
#[derive(Debug)]
pub(crate) enum Fail {
    /// From the process API.
    Mt(mt::Error),
    /// From a region ring (`memtube_ring_*` handles).
    Ring(mt::ring::Error),
    /// Misuse found at the boundary, or another status with a fixed text.
    Misuse(memtube_status, &'static str),
    /// A panic caught at the boundary, with its message.
    Panic(String),
}

pub(crate) type Result<T, E = Fail> = std::result::Result<T, E>;

impl From<mt::Error> for Fail {
    #[cold]
    fn from(e: mt::Error) -> Self {
        Fail::Mt(e)
    }
}

impl From<mt::ring::Error> for Fail {
    #[cold]
    fn from(e: mt::ring::Error) -> Self {
        Fail::Ring(e)
    }
}

/// A misuse failure: [`MEMTUBE_INVALID_ARGUMENT`] with `why`.
#[cold]
pub(crate) fn invalid(why: &'static str) -> Fail {
    Fail::Misuse(MEMTUBE_INVALID_ARGUMENT, why)
}

/// [`MEMTUBE_BUSY`]: a grant is outstanding on the sender.
#[cold]
pub(crate) fn busy() -> Fail {
    Fail::Misuse(
        MEMTUBE_BUSY,
        "a grant is outstanding on this sender: memtube_commit or memtube_abort it first",
    )
}

fn ring_status(e: &mt::ring::Error) -> memtube_status {
    use mt::ring::Error as R;
    match e {
        R::Full => MEMTUBE_FULL,
        R::Empty => MEMTUBE_EMPTY,
        R::Timeout => MEMTUBE_TIMEOUT,
        R::Closed => MEMTUBE_CLOSED,
        R::TooLarge { .. } => MEMTUBE_TOO_LARGE,
        R::Corrupt(_) => MEMTUBE_CORRUPT,
        R::RoleTaken => MEMTUBE_ROLE_TAKEN,
        R::RegionTooSmall { .. }
        | R::Misaligned
        | R::BadCapacity(_)
        | R::BadMagic
        | R::VersionMismatch { .. }
        | R::LayoutMismatch => MEMTUBE_BAD_REGION,
        // A variant added later (the enum is non-exhaustive).
        _ => MEMTUBE_BAD_REGION,
    }
}

impl Fail {
    pub(crate) fn status(&self) -> memtube_status {
        use mt::Error as E;
        match self {
            Fail::Mt(e) => match e {
                E::Os(_) => MEMTUBE_OS,
                E::PeerGone => MEMTUBE_PEER_GONE,
                E::Closed => MEMTUBE_CLOSED,
                E::Timeout => MEMTUBE_TIMEOUT,
                E::Full => MEMTUBE_FULL,
                E::Empty => MEMTUBE_EMPTY,
                E::Handshake(_) => MEMTUBE_HANDSHAKE,
                E::Ring(r) => ring_status(r),
                E::PermissionDenied { .. } => MEMTUBE_PERMISSION_DENIED,
                E::AddrInUse => MEMTUBE_ADDR_IN_USE,
                // Something memtube did not make is in the way (the path, or
                // its lock file name): the same remedy.
                E::NotASocket(_) | E::ForeignLockFile(_) => MEMTUBE_NOT_A_SOCKET,
                E::NoListener { .. } => MEMTUBE_NO_LISTENER,
                E::Cancelled => MEMTUBE_CANCELLED,
                E::ReplyTooLarge { .. } => MEMTUBE_REPLY_TOO_LARGE,
                E::HugePagesUnavailable(_) => MEMTUBE_UNSUPPORTED,
                E::Protocol(_) => MEMTUBE_PROTOCOL,
                E::NoSuchHandle => MEMTUBE_NO_SUCH_HANDLE,
                E::Unsupported(_) => MEMTUBE_UNSUPPORTED,
                E::PathTooLong { .. } => MEMTUBE_INVALID_ARGUMENT,
                // A variant added later (the enum is non-exhaustive); its
                // text still says what it is.
                _ => MEMTUBE_UNSUPPORTED,
            },
            Fail::Ring(e) => ring_status(e),
            Fail::Misuse(s, _) => *s,
            Fail::Panic(_) => MEMTUBE_PANIC,
        }
    }

    /// The errno behind it, or 0.
    fn os_error(&self) -> i32 {
        match self {
            Fail::Mt(
                mt::Error::Os(e)
                | mt::Error::HugePagesUnavailable(e)
                | mt::Error::NoListener { errno: e, .. },
            ) => e.raw_os_error(),
            _ => 0,
        }
    }

    fn text(&self) -> String {
        match self {
            Fail::Mt(e) => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(inner) = src {
                    let t = inner.to_string();
                    if !s.contains(&t) {
                        let _ = write!(s, ": {t}");
                    }
                    src = inner.source();
                }
                s
            }
            Fail::Ring(e) => e.to_string(),
            Fail::Misuse(_, why) => (*why).to_string(),
            Fail::Panic(m) => format!("panic inside memtube (a bug; please report it): {m}"),
        }
    }
}

/// The last failure of this thread: `SET` says whether the last call failed
/// (one `Cell<bool>` with a `const` initializer: the success path touches
/// nothing else), `LAST` holds the failure and its text, made on demand.
struct Last {
    fail: Option<Fail>,
    text: Option<CString>,
}

thread_local! {
    static SET: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Last> = const { RefCell::new(Last { fail: None, text: None }) };
}

/// A call succeeded: the last error is cleared.
#[inline(always)]
pub(crate) fn clear() {
    SET.with(|s| {
        if s.get() {
            s.set(false)
        }
    });
}

/// A call failed with `f`: record it; return its status.
#[cold]
#[inline(never)]
pub(crate) fn record(f: Fail) -> i32 {
    let status = f.status() as i32;
    // `try_with`: a call made while the thread's locals are being destroyed
    // (from another thread-local's destructor) still returns its status.
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            l.fail = Some(f);
            l.text = None;
        }
    });
    let _ = SET.try_with(|s| s.set(true));
    status
}

/// The text of the last failure of this thread ("" after a success).
pub(crate) fn last_message() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    if !SET.try_with(Cell::get).unwrap_or(false) {
        return EMPTY.as_ptr().cast();
    }
    LAST.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return EMPTY.as_ptr().cast();
        };
        if l.text.is_none() {
            let text = l.fail.as_ref().map(Fail::text).unwrap_or_default();
            // Interior NULs cannot come from our texts, but a path can hold
            // anything: cut the text there rather than lose it.
            let bytes: Vec<u8> = text
                .into_bytes()
                .into_iter()
                .take_while(|&b| b != 0)
                .collect();
            l.text = CString::new(bytes).ok();
        }
        l.text
            .as_ref()
            .map_or(EMPTY.as_ptr().cast(), |t| t.as_ptr())
    })
    .unwrap_or(EMPTY.as_ptr().cast())
}

/// The errno of the last failure of this thread (0 after a success, or when
/// the failure had none).
pub(crate) fn last_os_error() -> i32 {
    if !SET.try_with(Cell::get).unwrap_or(false) {
        return 0;
    }
    LAST.try_with(|l| {
        l.try_borrow()
            .ok()
            .and_then(|l| l.fail.as_ref().map(Fail::os_error))
            .unwrap_or(0)
    })
    .unwrap_or(0)
}

#[cold]
#[inline(never)]
fn panic_text(p: Box<dyn Any + Send>) -> Fail {
    let msg = if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    };
    Fail::Panic(msg)
}

/// The boundary of every entry point that returns a status: runs `f` under
/// `catch_unwind` (no panic crosses into C), records a failure as the
/// thread's last error, clears it on success.
#[inline(always)]
pub(crate) fn status(f: impl FnOnce() -> Result<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            clear();
            MEMTUBE_OK as i32
        }
        Ok(Err(e)) => record(e),
        Err(p) => record(panic_text(p)),
    }
}

/// The boundary of an entry point that returns a value (a pointer, a size):
/// as [`status`], returning `fallback` on failure.
#[inline(always)]
pub(crate) fn value<T>(fallback: T, f: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            clear();
            v
        }
        Ok(Err(e)) => {
            record(e);
            fallback
        }
        Err(p) => {
            record(panic_text(p));
            fallback
        }
    }
}

/// The boundary of `memtube_cancel_token_cancel`, which a signal handler
/// may call: `catch_unwind` only, no thread-local touched. `f` returns
/// false for a NULL argument.
#[inline(always)]
pub(crate) fn status_signal_safe(f: impl FnOnce() -> bool) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(true) => MEMTUBE_OK as i32,
        Ok(false) => MEMTUBE_INVALID_ARGUMENT as i32,
        Err(_) => MEMTUBE_PANIC as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// `memtube_last_error_message()`, as C reads it.
    fn last_message() -> String {
        let p = crate::memtube_last_error_message();
        assert!(!p.is_null());
        // SAFETY: a NUL-terminated string owned by this thread's last error,
        // valid until the next memtube call on this thread; copied at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// A panic inside an entry point's closure comes out of the boundary
    /// every entry point uses as MEMTUBE_PANIC, the thread's last error
    /// names it, and the next successful call clears it.
    #[test]
    fn a_panic_becomes_memtube_panic_and_the_last_error() {
        let st = status(|| panic!("test panic inside status"));
        assert_eq!(st, MEMTUBE_PANIC as i32);
        let m = last_message();
        assert!(
            m.starts_with("panic inside memtube") && m.ends_with(": test panic inside status"),
            "{m}"
        );
        assert_eq!(crate::memtube_last_os_error(), 0);
        // SAFETY: memtube_status_name returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(crate::memtube_status_name(st)) };
        assert_eq!(name.to_str(), Ok("MEMTUBE_PANIC"));
        // Asking for the message does not change it.
        assert_eq!(last_message(), m);

        assert_eq!(status(|| Ok(())), MEMTUBE_OK as i32);
        assert_eq!(last_message(), "", "a success clears the last error");

        // The boundary of the entry points that return a value: the fallback.
        let n = 7;
        let v = value(usize::MAX, || -> Result<usize> {
            panic!("formatted panic {n}")
        });
        assert_eq!(v, usize::MAX);
        assert!(last_message().ends_with(": formatted panic 7"));
        assert_eq!(value(0, || Ok(42)), 42);
        assert_eq!(last_message(), "");

        // A payload that is not a string still becomes a status.
        assert_eq!(
            status(|| std::panic::panic_any(17_u8)),
            MEMTUBE_PANIC as i32
        );
        assert!(last_message().ends_with(": unknown panic payload"));

        // memtube_cancel_token_cancel's boundary touches no thread-local.
        assert_eq!(
            status_signal_safe(|| panic!("test panic inside status_signal_safe")),
            MEMTUBE_PANIC as i32
        );
        assert!(last_message().ends_with(": unknown panic payload"));
    }
}
