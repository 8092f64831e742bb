//! The one switch between real atomics and loom's model-checked ones.
//!
//! Every atomic the protocol touches comes from here, so `--cfg loom` swaps
//! them all at once (tokio's `src/loom` habit).

#[cfg(loom)]
pub use loom::sync::atomic::AtomicU32;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use portable_atomic::AtomicU32;
#[cfg(not(loom))]
pub(crate) use portable_atomic::{fence, AtomicU64, Ordering};

/// Tell the CPU (or loom's scheduler) that we are busy-waiting.
#[inline(always)]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
