//! Cancelling blocking calls from another thread or a signal handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag that stops blocking calls: once [`cancel`](Self::cancel) is called,
/// every blocking call of the connections and listeners made with this token
/// ([`Options::cancel_token`](crate::Options::cancel_token)), `connect` and
/// `accept` included (their handshakes too), returns
/// [`Error::Cancelled`](crate::Error::Cancelled) instead of waiting further,
/// within about [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) (the calls look at
/// the flag between their wait slices, never on the fast path). Calls that
/// need not wait (a message is there, the ring has room) still succeed, so
/// a receiver can drain what was sent before it stops.
///
/// Clones share the flag. [`cancel`](Self::cancel) is one atomic store:
/// async-signal-safe, so a SIGINT handler may call it (see
/// `examples/shutdown.rs`), and [`flag`](Self::flag) hands the flag itself to
/// crates such as `signal-hook` that set an `AtomicBool` from a handler.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

/// Two tokens are equal when they share one flag (one is a clone of the other).
impl PartialEq for CancelToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CancelToken {}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancel: blocking calls that use this token return `Cancelled`.
    /// Async-signal-safe (one atomic store). Cannot be undone.
    pub fn cancel(&self) {
        // Release: pairs with the Acquire in `is_cancelled`, so whatever the
        // canceller wrote before is visible to the thread that stops.
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`cancel`](Self::cancel) was called (on this token or a clone).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// The shared flag, for code that sets an `AtomicBool` itself (for
    /// example `signal_hook::flag::register(SIGINT, token.flag())`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
        let c = CancelToken::new();
        c.flag().store(true, Ordering::Relaxed);
        assert!(c.is_cancelled());
    }
}
